"""Load a model folder for scoring: the right Auto class per kind, the model's own dtype, the
accelerate device, and accelerate's big-model placement when the model does not fit the device.

Only safetensors weights are loaded, and remote code only when asked (``trust_remote_code=True``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from cocktail_core.errors import ScoringError

#: transformers Auto class name per model kind
AUTO_CLASSES: dict[str, str] = {
    "decoder": "AutoModelForCausalLM",
    "encoder": "AutoModel",
    "reranker": "AutoModelForSequenceClassification",
    "encoder-decoder": "AutoModelForSeq2SeqLM",
}
#: share of free accelerator memory a model may take before it is placed with device_map="auto"
_FIT_SHARE = 0.85
#: models bigger than this are garbage-collected as soon as they are closed
_COLLECT_BYTES = 64 * 2**20


@dataclass
class LoadedModel:
    """A model ready to score.

    Attributes:
        model: the transformers model, in eval mode.
        tokenizer: its tokenizer.
        folder: the local folder it was loaded from.
        kind: decoder, encoder, reranker or encoder-decoder.
        device: where inputs go (the device of the input embeddings).
        offloaded: True when accelerate split the model across devices / disk.
    """

    model: Any
    tokenizer: Any
    folder: Path
    kind: str
    device: torch.device
    offloaded: bool = False
    _offload_dir: str | None = field(default=None, repr=False)

    def close(self) -> None:
        """Free the model (and any offload folder) now."""
        big = False
        if self.model is not None:
            big = sum(p.numel() * p.element_size() for p in self.model.parameters()) > _COLLECT_BYTES
        self.model = None
        if self._offload_dir:
            shutil.rmtree(self._offload_dir, ignore_errors=True)
            self._offload_dir = None
        _free_accelerator(collect=big)


def load_tokenizer(folder: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer saved in ``folder``.

    Raises:
        ScoringError: the folder has no usable tokenizer.
    """
    from transformers import AutoTokenizer

    try:
        with _quiet():
            return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types here
        raise ScoringError(f"Cannot load the tokenizer of {folder} ({type(exc).__name__}: {exc}).",
                           hint="Scoring needs the model's tokenizer files next to its weights.") from None


def load_model(
    folder: str | Path,
    kind: str,
    *,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    tokenizer: Any | None = None,
) -> LoadedModel:
    """Load the model in ``folder`` for scoring examples of ``kind``.

    Args:
        folder: a local model folder (config.json, safetensors weights, tokenizer).
        kind: ``decoder``, ``encoder``, ``reranker`` or ``encoder-decoder``.
        dtype: ``"auto"`` keeps the checkpoint's dtype; or a torch dtype (the optimizer uses float32).
        device: where to run; default the accelerate device (CUDA when present, ``COCKTAIL_DEVICE``).
        trust_remote_code: allow the model's own Python code (off unless asked).
        tokenizer: an already loaded tokenizer to reuse.

    Returns:
        A :class:`LoadedModel`. On an accelerator a model that does not fit in free memory is spread
        by accelerate (``device_map="auto"``) over the GPU, the CPU and, if needed, a temporary folder.

    Raises:
        ScoringError: the model cannot be loaded as ``kind``.

    Example:
        >>> loaded = load_model("./my-finetune", "decoder")
        >>> loaded.model.config.model_type
        'llama'
    """
    import transformers

    from cocktail_core.engine import compute_device

    folder = Path(folder)
    if kind not in AUTO_CLASSES:
        raise ScoringError(f"Unknown model kind {kind!r}.", hint=f"Expected one of: {', '.join(AUTO_CLASSES)}.")
    auto = getattr(transformers, AUTO_CLASSES[kind])
    dev = torch.device(device) if device is not None else compute_device()
    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    offload_dir = None
    offloaded = False
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        need = _weights_bytes(folder) * (2 if dtype in (torch.float32, "float32") else 1) * 1.1
        if need <= free * _FIT_SHARE:
            kwargs["device_map"] = {"": index}
        else:
            offload_dir = tempfile.mkdtemp(prefix="cocktail-offload-")
            kwargs.update(device_map="auto", offload_folder=offload_dir)
            offloaded = True
    try:
        with _quiet():
            model = auto.from_pretrained(str(folder), **kwargs)
    except Exception as exc:  # noqa: BLE001 - report any loading failure as one clear error
        if offload_dir:
            shutil.rmtree(offload_dir, ignore_errors=True)
        raise ScoringError(f"Cannot load {folder.name} as a {kind} model ({type(exc).__name__}: {exc}).",
                           hint="Check --kind, and that the folder holds a complete safetensors checkpoint.") from None
    if "device_map" not in kwargs and dev.type != "cpu":
        model.to(dev)
    model.eval()
    tok = tokenizer if tokenizer is not None else load_tokenizer(folder, trust_remote_code=trust_remote_code)
    return LoadedModel(model=model, tokenizer=tok, folder=folder, kind=kind, device=input_device(model),
                       offloaded=offloaded, _offload_dir=offload_dir)


def input_device(model: Any) -> torch.device:
    """The device inputs must be on: that of the input embeddings."""
    try:
        emb = model.get_input_embeddings()
        if emb is not None and emb.weight.device.type != "meta":
            return emb.weight.device
    except (AttributeError, NotImplementedError):
        pass
    for p in model.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def _free_accelerator(*, collect: bool = True) -> None:
    import gc

    if collect:  # transformers models hold reference cycles; a full collection costs ~0.3 s
        gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No "Loading weights" progress bars from transformers while loading."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


__all__ = ["LoadedModel", "load_model", "load_tokenizer", "input_device", "AUTO_CLASSES"]
