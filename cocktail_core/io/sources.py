"""Where a model comes from: a local folder or a Hub repo, and what it contains.

:func:`inspect` reads metadata only (config, safetensors headers, license) — from disk for local
folders, from the Hub's metadata endpoints for repo ids — so the preflight runs before any weight is
downloaded. :func:`materialize` returns a local folder with the files a merge needs, downloading
them through :mod:`cocktail_core.hub` when the model is on the Hub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cocktail_core.errors import CocktailError, NoSafetensorsError, SourceNotFoundError
from cocktail_core.io.header import TensorMeta, read_header
from cocktail_core.recipe import ModelRef

INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")

#: files copied from the tokenizer donor into the output (those that exist)
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "spiece.model",
    "chat_template.jinja", "chat_template.json", "generation_config.json",
)
#: sentence-transformers files that tell how an embedding model pools
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


@dataclass
class ModelSource:
    """Metadata of one input model.

    Attributes:
        ref: the reference as the user gave it.
        config: parsed ``config.json``.
        tensors: every tensor's metadata, by name.
        weight_files: the safetensors files (relative names).
        download_bytes: bytes a merge must fetch (0 for local folders).
        sha: resolved Hub commit (None for local folders).
        license: license from the model card front matter, when it has one.
        folder: the local folder (None until a Hub model is materialized).
    """

    ref: ModelRef
    config: dict[str, Any]
    tensors: dict[str, TensorMeta]
    weight_files: list[str]
    download_bytes: int = 0
    sha: str | None = None
    license: str | None = None
    folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.ref.is_local

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or []
        return archs[0] if archs else str(self.config.get("model_type", "unknown"))

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values() if t.is_float)

    @property
    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def dtype(self) -> str:
        """The dominant float dtype code of the weights (by bytes)."""
        by: dict[str, int] = {}
        for t in self.tensors.values():
            if t.is_float:
                by[t.dtype] = by.get(t.dtype, 0) + t.nbytes
        return max(by, key=by.__getitem__) if by else "F32"


def inspect(ref: ModelRef | str, *, token: str | None = None) -> ModelSource:
    """Read a model's metadata without reading (or downloading) its weights.

    Raises:
        SourceNotFoundError: no such folder, and not a Hub repo id.
        NoSafetensorsError: the folder has no safetensors weights.
        HubError: (subclasses) for Hub failures.
    """
    ref = ModelRef.parse(ref)
    if ref.is_local:
        return _inspect_local(ref)
    from cocktail_core import hub

    meta = hub.fetch_metadata(ref.path, revision=ref.revision, token=token)
    tensors = {name: TensorMeta(name, dtype, tuple(shape), file) for name, (dtype, shape, file) in meta.tensors.items()}
    if not tensors:
        raise NoSafetensorsError(
            f"Hub model {ref} has no safetensors weights.",
            hint="Cocktail reads only safetensors; pick a repo or revision that has them.",
        )
    return ModelSource(
        ref=ref, config=meta.config, tensors=tensors,
        weight_files=sorted({t.file for t in tensors.values()}),
        download_bytes=meta.download_bytes, sha=meta.sha, license=meta.license,
    )


def materialize(
    source: ModelSource, *, token: str | None = None, progress: Callable[[int, int, str], None] | None = None
) -> ModelSource:
    """Make sure ``source`` has a local folder with its weights, downloading Hub files if needed.

    Local byte offsets are read from the downloaded headers, so the returned source can be read.
    """
    if source.folder is not None and all(t.offset is not None for t in source.tensors.values()):
        return source
    if source.is_local:
        return _inspect_local(source.ref)
    from cocktail_core import hub

    folder = hub.download_model(source.ref.path, revision=source.sha or source.ref.revision, token=token,
                                progress=progress)
    local = _read_folder(source.ref, Path(folder))
    local.download_bytes, local.sha, local.license = source.download_bytes, source.sha, source.license
    return local


def _inspect_local(ref: ModelRef) -> ModelSource:
    folder = Path(ref.path).expanduser()
    if not folder.exists():
        raise SourceNotFoundError(
            f"Model {ref} not found: there is no such local folder, and it is not a Hub repo id (org/name).",
            hint="Check the spelling, or give the path of a folder that holds config.json and *.safetensors.",
        )
    if not folder.is_dir():
        raise SourceNotFoundError(f"Model {ref} is a file, not a model folder.",
                                  hint="Give the folder that holds config.json and the safetensors weights.")
    return _read_folder(ref, folder.resolve())


def _read_folder(ref: ModelRef, folder: Path) -> ModelSource:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SourceNotFoundError(f"Model {ref} has no config.json in {folder}.",
                                  hint="Save the model with save_pretrained() so the folder has config.json.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CocktailError(f"config.json of model {ref} is not valid JSON ({exc}).") from None
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as exc:
            raise CocktailError(f"{INDEX_FILE} of model {ref} is malformed ({exc}).") from None
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise NoSafetensorsError(f"Model {ref}: its index lists {', '.join(missing)}, which is missing.",
                                     hint="Re-download the model; a shard is missing.")
    else:
        files = sorted(p.name for p in folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        detail = f" (it has {', '.join(pickled)}, which Cocktail does not load)" if pickled else ""
        raise NoSafetensorsError(
            f"Model {ref} has no safetensors weights in {folder}{detail}.",
            hint="Convert it: AutoModel.from_pretrained(path).save_pretrained(path, safe_serialization=True).",
        )
    tensors: dict[str, TensorMeta] = {}
    for f in files:
        tensors.update(read_header(folder / f))
    return ModelSource(ref=ref, config=config, tensors=tensors, weight_files=files,
                       license=_card_license(folder / "README.md"), folder=folder)


def _card_license(readme: Path) -> str | None:
    """The ``license`` of a model card's YAML front matter, if any."""
    if not readme.is_file():
        return None
    from cocktail_core.card import split_front_matter

    lic = split_front_matter(readme.read_text(encoding="utf-8", errors="replace"))[0].get("license")
    return str(lic) if lic else None


def detect_kind(config: dict[str, Any], folder: Path | None = None) -> str:
    """Model kind from a config: decoder, encoder, reranker or encoder-decoder.

    Example:
        >>> detect_kind({"architectures": ["LlamaForCausalLM"]})
        'decoder'
    """
    archs = config.get("architectures") or []
    arch = archs[0] if archs else ""
    if config.get("is_encoder_decoder") or arch.endswith("ForConditionalGeneration") and "T5" in arch:
        return "encoder-decoder"
    if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
        return "decoder"
    if arch.endswith("ForSequenceClassification"):
        return "reranker"
    if arch.endswith("ForConditionalGeneration"):
        return "encoder-decoder"
    return "encoder"
