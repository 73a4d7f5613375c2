"""Which files of a Hub model repo a merge needs (and never more)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from cocktail_core.errors import HubError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

#: Files (besides the safetensors weights) a merge reads or copies to its output.  Only these, at
#: these exact paths, are ever downloaded: never ``*.bin``/``*.pt``/``*.onnx``/``*.gguf``/``*.h5``/
#: ``*.msgpack`` nor weights in sub-folders.
MERGE_FILES: frozenset[str] = frozenset({
    "config.json", "generation_config.json", INDEX_FILE,
    # tokenizer
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.txt", "merges.txt", "vocab.json", "added_tokens.json", "spiece.model",
    "chat_template.jinja", "chat_template.json",
    # sentence-transformers
    "modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    # model card (license)
    "README.md",
})
_NEVER = (".bin", ".pt", ".pth", ".ckpt", ".onnx", ".gguf", ".h5", ".msgpack", ".ot", ".tflite")


def select_merge_files(names: Any, weight_map: dict[str, str] | None = None) -> list[str]:
    """The files of a repo a merge needs, from the repo's file names.

    Weights: ``model.safetensors`` if present (as ``transformers`` and ``get_safetensors_metadata``
    prefer it), else the shards named by ``model.safetensors.index.json``'s ``weight_map`` (pass
    it), else none.  Other safetensors files (``consolidated.safetensors``, sub-folders...) are
    skipped.  Plus every :data:`MERGE_FILES` entry that exists.

    Example:
        >>> select_merge_files(["model.safetensors", "pytorch_model.bin", "config.json"])
        ['config.json', 'model.safetensors']
    """
    names = set(names)
    if SINGLE_FILE in names:
        weights = {SINGLE_FILE}
    elif INDEX_FILE in names and weight_map:
        weights = {f for f in set(weight_map.values()) if f.endswith(".safetensors")}
    else:
        weights = set()
    aux = {n for n in names if n in MERGE_FILES and not n.endswith(_NEVER)}
    if SINGLE_FILE in names:
        aux.discard(INDEX_FILE)
    return sorted(weights | aux)


def _weight_map(names: Any, repo_id: str, index_file: Callable[[], Path]) -> dict[str, str] | None:
    """The ``weight_map`` of a sharded model; ``None`` when there is ``model.safetensors`` or no index.

    ``index_file`` downloads (or locates) ``model.safetensors.index.json``; it is called only when
    the index is needed.
    """
    if SINGLE_FILE in names or INDEX_FILE not in names:
        return None
    return _read_json(index_file(), f"{INDEX_FILE} of {repo_id}").get("weight_map") or {}


def _repo_sizes(info: Any) -> dict[str, int]:
    """File name -> size in bytes, from a ``model_info(files_metadata=True)`` answer."""
    return {s.rfilename: int(s.size or 0) for s in info.siblings or []}


def _require_config(repo_id: str, revision: str | None, names: Any) -> None:
    """Refuse a repo without ``config.json``: it is not a transformers model."""
    if "config.json" not in names:
        raise HubError(
            f"Hub repo {repo_id} has no config.json at revision {revision or 'main'}: it is not a "
            "transformers model.",
            hint="Pick a repo saved with save_pretrained() (it has config.json and *.safetensors).",
        )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubError(f"{what} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise HubError(f"{what} is not a JSON object.")
    return data
