"""Try a model: generate, compare embeddings or score a passage, and re-merge in memory.

This is the core of the web app's "Try it" panel, with no UI code:

* :func:`load_model` loads a merged folder or an ingredient (local folder or Hub id) for its kind.
* :func:`generate` (decoders and encoder-decoders, greedy), :func:`similarity` (embedding models,
  pooled the way the folder's sentence-transformers config says), :func:`rerank_score` (rerankers)
  and :func:`try_model`, which picks the right one for the model's kind.
* :class:`LiveMerge` (:mod:`cocktail_core.live_merge`, re-exported here) keeps every ingredient's
  weights in memory and re-merges them into a loaded model whenever the weights change, without
  writing anything to disk, exactly as a merge to disk would.

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

from cocktail_core.errors import CocktailError
from cocktail_core.recipe import ModelRef
from cocktail_core.scoring.embedding import pool
# One pooling reader for scoring and trying, so "try it" embeds exactly as the weights were scored.
from cocktail_core.scoring.embedding import read_pooling
from cocktail_core.scoring.loading import AUTO_CLASSES

#: model kinds that produce text
TEXT_KINDS = ("decoder", "encoder-decoder")


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
    pooling: str = "cls"
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
    if not kind:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CocktailError(f"Cannot read config.json of {model} ({exc}).") from None
        kind = detect_kind(config, folder)
    try:
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        net = getattr(transformers, AUTO_CLASSES[kind]).from_pretrained(str(folder), dtype=dtype)
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
    return pool(hidden, enc["attention_mask"], loaded.pooling)


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


# LiveMerge lives in its own module; it loads models with load_model above.
from cocktail_core.live_merge import LiveMerge  # noqa: E402

__all__ = ["LoadedModel", "TryResult", "LiveMerge", "load_model", "model_folder", "read_pooling", "generate",
           "embed", "similarity", "rerank_score", "try_model", "TEXT_KINDS"]
