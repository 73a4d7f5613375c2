"""Try a model: generate, compare embeddings or score a passage, and re-merge in memory.

This is the core of the web app's "Try it" panel, with no UI code:

* :func:`load_model` loads a merged folder or an ingredient (local folder or Hub id) for its kind.
* :func:`generate` (decoders and encoder-decoders, greedy), :func:`similarity` (embedding models,
  pooled the way the folder's sentence-transformers config says), :func:`rerank_score` (rerankers)
  and :func:`try_model`, which picks the right one for the model's kind.
* :class:`LiveMerge` keeps every ingredient's weights in memory (when they fit under
  ``COCKTAIL_IN_MEMORY_MAX_MB``) and re-merges them into a loaded model with
  :func:`cocktail_core.engine.merge_tensor` whenever the weights change, without writing anything
  to disk. It computes exactly what a merge to disk writes (same math, same output dtype rounding).

Example:
    >>> live = LiveMerge.create(recipe)
    >>> seconds = live.remerge(recipe.with_weights([0.2, 0.8]))
    >>> generate(live.loaded, "The capital of France is", max_new_tokens=8)
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cocktail_core import settings
from cocktail_core.errors import CocktailError
from cocktail_core.recipe import ModelRef, Recipe
from cocktail_core.state_keys import match_key

#: model kinds that produce text
TEXT_KINDS = ("decoder", "encoder-decoder")
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}


@dataclass
class LoadedModel:
    """A model ready to try.

    Attributes:
        model: the transformers model, in eval mode.
        tokenizer: its tokenizer.
        kind: decoder, encoder, reranker or encoder-decoder.
        folder: the folder it was loaded from.
        pooling: how an embedding model pools token vectors (cls, mean, max, lasttoken, mean_sqrt_len).
    """

    model: Any
    tokenizer: Any
    kind: str
    folder: Path
    pooling: str = "mean"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class TryResult:
    """What one model answered.

    Attributes:
        kind: the model kind.
        text: the generated text (decoders, encoder-decoders).
        score: cosine similarity (embedding models) or relevance score (rerankers).
        seconds: time taken.
    """

    kind: str
    text: str | None = None
    score: float | None = None
    seconds: float = 0.0

    def display(self) -> str:
        """One line for a text box."""
        if self.text is not None:
            return self.text or "(no new text: the model ended its answer at once)"
        if self.score is None:
            return ""
        label = "cosine similarity" if self.kind == "encoder" else "relevance score"
        return f"{label}: {self.score:.4f}"


# --------------------------------------------------------------------------- loading


def _device() -> torch.device:
    from cocktail_core.engine import compute_device

    return compute_device()


def model_folder(model: str | Path | ModelRef, *, token: str | None = None) -> Path:
    """A local folder holding ``model``: the folder itself, or the Hub files downloaded to the cache.

    Raises:
        SourceNotFoundError / HubError: the model cannot be found or fetched.
    """
    if isinstance(model, Path):
        if not model.is_dir():
            raise CocktailError(f"Model folder {model} does not exist.")
        return model.resolve()
    from cocktail_core.io.sources import inspect, materialize

    source = materialize(inspect(ModelRef.parse(model), token=token), token=token)
    assert source.folder is not None
    return source.folder


def _auto_class(kind: str) -> Any:
    import transformers

    return {
        "decoder": transformers.AutoModelForCausalLM,
        "encoder-decoder": transformers.AutoModelForSeq2SeqLM,
        "reranker": transformers.AutoModelForSequenceClassification,
        "encoder": transformers.AutoModel,
    }[kind]


def read_pooling(folder: Path) -> str:
    """The pooling of a sentence-transformers folder (``modules.json`` + pooling config); mean when absent."""
    modules_file = folder / "modules.json"
    candidates = []
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except ValueError:
            modules = []
        for module in modules:
            if str(module.get("type", "")).endswith("Pooling") and module.get("path"):
                candidates.append(folder / module["path"] / "config.json")
    candidates.append(folder / "1_Pooling" / "config.json")
    for cfg_path in candidates:
        if cfg_path.is_file():
            try:
                cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if cfg.get("pooling_mode"):
                return str(cfg["pooling_mode"])
            for key, mode in _POOLING_KEYS.items():
                if cfg.get(key):
                    return mode
    return "mean"


def load_model(
    model: str | Path | ModelRef,
    *,
    kind: str | None = None,
    token: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> LoadedModel:
    """Load a model folder or Hub model for trying.

    Args:
        model: a folder (``Path`` or path string) or a Hub id ``org/name@rev``.
        kind: decoder, encoder, reranker or encoder-decoder; detected from the config when omitted.
        token: Hub token for private or gated models.
        dtype: the dtype to run in (float32 by default: fast and exact on CPU).

    Raises:
        CocktailError: the model cannot be found, downloaded or loaded.
    """
    from cocktail_core.io.sources import detect_kind

    folder = model_folder(model, token=token)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CocktailError(f"Cannot read config.json of {model} ({exc}).") from None
    kind = kind or detect_kind(config, folder)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        net = _auto_class(kind).from_pretrained(str(folder), dtype=dtype)
    except Exception as exc:  # transformers raises many types; report them as one readable error
        raise CocktailError(f"Cannot load {model} as a {kind} model ({type(exc).__name__}: {exc}).",
                            hint="Check that the folder was saved with save_pretrained().") from None
    net.to(_device()).eval()
    return LoadedModel(model=net, tokenizer=tokenizer, kind=kind, folder=folder, pooling=read_pooling(folder))


# --------------------------------------------------------------------------- trying


def generate(loaded: LoadedModel, prompt: str, *, max_new_tokens: int = 32, use_chat_template: bool = True) -> str:
    """Greedy generation (decoders and encoder-decoders); returns only the new text.

    A decoder whose tokenizer has a chat template gets the prompt as one user message.
    """
    if loaded.kind not in TEXT_KINDS:
        raise CocktailError(f"A {loaded.kind} model does not generate text.",
                            hint="Use similarity() for embedding models and rerank_score() for rerankers.")
    tok = loaded.tokenizer
    text = prompt
    if loaded.kind == "decoder" and use_chat_template and getattr(tok, "chat_template", None):
        try:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        except Exception:  # a template that does not fit: fall back to the raw prompt
            text = prompt
    add_special = text is prompt
    inputs = tok(text, return_tensors="pt", add_special_tokens=add_special).to(loaded.device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with loaded.lock, torch.inference_mode():
        out = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                    pad_token_id=pad)
    new = out[0] if loaded.kind == "encoder-decoder" else out[0, inputs["input_ids"].shape[1]:]
    return tok.decode(new, skip_special_tokens=True).strip()


def embed(loaded: LoadedModel, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings (one row per text), pooled as the model's sentence-transformers config says."""
    enc = loaded.tokenizer(texts, return_tensors="pt", padding=True, truncation=True).to(loaded.device)
    with loaded.lock, torch.inference_mode():
        out = loaded.model(**enc)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    if loaded.pooling == "cls":
        return hidden[:, 0]
    if loaded.pooling == "max":
        return hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    if loaded.pooling == "lasttoken":
        last = enc["attention_mask"].sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1)
    if loaded.pooling == "mean_sqrt_len":
        return summed / counts.sqrt()
    return summed / counts


def similarity(loaded: LoadedModel, text_a: str, text_b: str) -> float:
    """Cosine similarity of two texts' embeddings."""
    if loaded.kind not in ("encoder",):
        raise CocktailError(f"Similarity needs an embedding model; this one is a {loaded.kind}.")
    vectors = embed(loaded, [text_a, text_b]).float()
    return float(torch.nn.functional.cosine_similarity(vectors[0:1], vectors[1:2]).item())


def rerank_score(loaded: LoadedModel, query: str, passage: str) -> float:
    """How relevant ``passage`` is to ``query``: the reranker's logit (probability of 'relevant' for 2 labels)."""
    if loaded.kind != "reranker":
        raise CocktailError(f"Scoring a passage needs a reranker; this one is a {loaded.kind}.")
    enc = loaded.tokenizer(query, passage, return_tensors="pt", truncation=True).to(loaded.device)
    with loaded.lock, torch.inference_mode():
        logits = loaded.model(**enc).logits.float()
    if logits.shape[-1] == 1:
        return float(logits[0, 0].item())
    return float(torch.softmax(logits[0], dim=-1)[-1].item())


def try_model(loaded: LoadedModel, text: str, text_b: str = "", *, max_new_tokens: int = 32) -> TryResult:
    """Run the model on the input its kind takes.

    Decoders and encoder-decoders generate from ``text``; embedding models compare ``text`` with
    ``text_b``; rerankers score passage ``text_b`` for query ``text``.
    """
    if not text.strip():
        raise CocktailError("The input text is empty.", hint="Type a prompt (or a query) first.")
    started = time.perf_counter()
    if loaded.kind in TEXT_KINDS:
        result = TryResult(loaded.kind, text=generate(loaded, text, max_new_tokens=max_new_tokens))
    else:
        if not text_b.strip():
            what = "second text" if loaded.kind == "encoder" else "passage"
            raise CocktailError(f"The {what} is empty.", hint=f"Type a {what} to compare with.")
        score = similarity(loaded, text, text_b) if loaded.kind == "encoder" else rerank_score(loaded, text, text_b)
        result = TryResult(loaded.kind, score=score)
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- in-memory merge


class LiveMerge:
    """Every ingredient's weights in memory, re-merged into one loaded model on demand.

    Create it with :meth:`create` (which checks the memory budget first), then call
    :meth:`remerge` with a recipe over the same models (new weights, method or params). The merged
    model is :attr:`loaded`, ready for :func:`try_model`.

    Attributes:
        recipe: the recipe last merged.
        loaded: the merged model.
        last_seconds: how long the last re-merge took.
        nbytes: memory held (ingredient weights plus the merged model).
    """

    def __init__(self, recipe: Recipe, loaded: LoadedModel, state_dicts: list[dict[str, torch.Tensor]],
                 key_map: dict[str, str], out_dtypes: dict[str, torch.dtype], nbytes: int) -> None:
        self.recipe = recipe
        self.loaded = loaded
        self._state_dicts = state_dicts
        self._key_map = key_map
        self._out_dtypes = out_dtypes
        self.nbytes = nbytes
        self.last_seconds = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def needed_bytes(sources: list[Any]) -> int:
        """Memory a live merge of these sources needs: every ingredient plus a float32 merged model."""
        weights = sum(s.weights_bytes for s in sources)
        merged = max(sum(t.numel * 4 if t.is_float else t.nbytes for t in s.tensors.values()) for s in sources)
        return weights + merged

    @classmethod
    def create(cls, recipe: Recipe, *, token: str | None = None, max_mb: int | None = None,
               sources: list[Any] | None = None) -> "LiveMerge":
        """Load every ingredient of ``recipe`` into memory and merge it once.

        Args:
            recipe: the recipe (its models must pass the preflight).
            token: Hub token for private or gated inputs.
            max_mb: memory budget; default ``settings.in_memory_max_mb``.
            sources: already inspected (or downloaded) sources, in recipe order.

        Raises:
            CocktailError: the models do not fit in the budget (checked before anything is loaded),
                cannot be merged (preflight problems) or cannot be loaded.
        """
        from safetensors.torch import load_file

        from cocktail_core.compat import output_dtype_code, preflight, reference_index
        from cocktail_core.io.header import DTYPES
        from cocktail_core.io.sources import materialize

        budget = (settings.get().in_memory_max_mb if max_mb is None else max_mb) * 2**20
        if sources is None or any(s is None for s in sources):
            report = preflight(recipe, token=token)
            report.raise_for_problems()
            sources = list(report.sources)
        need = cls.needed_bytes(sources)
        if need > budget:
            raise CocktailError(
                f"These models need about {need / 2**20:.0f} MB to re-merge in memory; the limit is "
                f"{budget / 2**20:.0f} MB (COCKTAIL_IN_MEMORY_MAX_MB).",
                hint="Merge to disk instead, or raise the limit on a machine with more memory.")
        sources = [materialize(s, token=token) for s in sources]
        ri = reference_index(recipe)
        ref = sources[ri]
        state_dicts = []
        for s in sources:
            sd: dict[str, torch.Tensor] = {}
            for f in s.weight_files:
                sd.update(load_file(str(s.folder / f)))
            state_dicts.append(sd)
        from cocktail_core.io.sources import detect_kind

        kind = recipe.kind or detect_kind(ref.config, ref.folder)
        loaded = load_model(Path(ref.folder), kind=kind, dtype=torch.float32)
        model_keys = set(loaded.model.state_dict().keys())
        prefix = getattr(loaded.model, "base_model_prefix", "") or ""
        key_map: dict[str, str] = {}
        unmapped = []
        for name, meta in ref.tensors.items():
            if not meta.is_float:
                continue
            target = match_key(name, model_keys, prefix)
            if target is None:
                unmapped.append(name)
            else:
                key_map[name] = target
        if unmapped:
            raise CocktailError(
                f"Cannot re-merge in memory: {len(unmapped)} tensor(s) of {ref.ref} have no place in the loaded "
                f"model ({', '.join(unmapped[:5])}).", hint="Merge to disk instead.")
        out_dtypes = {name: DTYPES[output_dtype_code(recipe, meta.dtype)] for name, meta in ref.tensors.items()
                      if meta.is_float}
        live = cls(recipe, loaded, state_dicts, key_map, out_dtypes, need)
        live.remerge(recipe)
        return live

    def compatible(self, recipe: Recipe) -> bool:
        """True when ``recipe`` merges the same models (in the same order), so :meth:`remerge` accepts it."""
        return [str(r) for r in recipe.refs] == [str(r) for r in self.recipe.refs] and recipe.dtype == self.recipe.dtype

    def remerge(self, recipe: Recipe | list[float]) -> float:
        """Merge again in memory with ``recipe`` (or just new weights); returns the seconds it took.

        Raises:
            CocktailError: the recipe names other models than the ones held.
        """
        from cocktail_core.engine import merge_tensor

        if not isinstance(recipe, Recipe):
            recipe = self.recipe.with_weights(list(recipe))
        if not self.compatible(recipe):
            raise CocktailError("This in-memory merge holds other models (or another dtype).",
                                hint="Start a new live merge for the new models.")
        dev = _device()  # the engine's compute device, so both compute exactly the same numbers
        with self._lock, self.loaded.lock:
            started = time.perf_counter()
            merged: dict[str, torch.Tensor] = {}
            for name, target in self._key_map.items():
                parts = [sd[name].to(dev, torch.float32) for sd in self._state_dicts]
                out = merge_tensor(recipe, name, parts)
                merged[target] = out.to(self._out_dtypes[name])
            result = self.loaded.model.load_state_dict(merged, strict=False)
            if result.unexpected_keys:  # cannot happen with the key map; guard against silent no-ops
                raise CocktailError(f"In-memory merge produced unknown tensors: {result.unexpected_keys[:5]}")
            self.last_seconds = time.perf_counter() - started
            self.recipe = recipe
        return self.last_seconds


__all__ = ["LoadedModel", "TryResult", "LiveMerge", "load_model", "model_folder", "read_pooling", "generate",
           "embed", "similarity", "rerank_score", "try_model", "TEXT_KINDS"]
