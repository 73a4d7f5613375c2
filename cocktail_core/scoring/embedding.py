"""Embedding-model loss: contrastive cross-entropy of each query against its positive and negatives.

Texts are embedded with the model's own pooling — the sentence-transformers ``Pooling`` config when the
folder has one (CLS, mean, max, last token, mean-sqrt-len), else CLS as LM-Cocktail does — and
L2-normalized. For every positive of an example: ``scores = [q.p, q.n_1, ..., q.n_k] / temperature``
(0.05 by default) and the loss is the cross-entropy with the positive as target; an example's loss is
the mean over its positives.

Negatives: up to ``neg_number`` (7) of the example's own ``neg``, sampled with ``random.Random`` seeded
by ``(seed, example index)`` when there are more; an example without negatives uses the other
examples' positives instead (sampled the same way). Fewer negatives than ``neg_number`` is fine.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from cocktail_core.errors import ExamplesError
from cocktail_core.examples import RetrievalExample
from cocktail_core.scoring.base import Task, call_model, fallback_pad_id, in_example_order, model_device, pad_batch

POOLING_MODES = ("cls", "mean", "max", "lasttoken", "mean_sqrt_len")
DEFAULT_TEMPERATURE = 0.05
DEFAULT_NEG_NUMBER = 7


def read_pooling(folder: str | Path | None, default: str = "cls") -> str:
    """The pooling a sentence-transformers folder declares (``modules.json`` -> Pooling config), one of
    :data:`POOLING_MODES`; ``default`` when none (CLS, as LM-Cocktail pools embedding models).

    Example:
        >>> read_pooling("./bge-small")
        'cls'
    """
    if folder is None:
        return default
    folder = Path(folder)
    modules_file = folder / "modules.json"
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8")) if modules_file.is_file() else []
    except ValueError:
        modules = []
    paths = [m["path"] for m in modules
             if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling") and m.get("path")]
    candidates = [folder / p / "config.json" for p in paths] + [folder / "1_Pooling" / "config.json"]
    for cfg_file in candidates:
        if cfg_file.is_file():
            try:
                cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if "pooling_mode" in cfg and cfg["pooling_mode"] in POOLING_MODES:
                return str(cfg["pooling_mode"])
            for mode, key in (("cls", "pooling_mode_cls_token"), ("mean", "pooling_mode_mean_tokens"),
                              ("max", "pooling_mode_max_tokens"), ("lasttoken", "pooling_mode_lasttoken"),
                              ("mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens")):
                if cfg.get(key):
                    return mode
    return default


def _st_max_seq_length(folder: Path | None) -> int | None:
    if folder is None:
        return None
    f = folder / "sentence_bert_config.json"
    try:
        value = json.loads(f.read_text(encoding="utf-8")).get("max_seq_length") if f.is_file() else None
    except ValueError:
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token states ``[B, L, H]`` into ``[B, H]`` (right-padded ``mask``)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    if mode == "mean_sqrt_len":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1).sqrt()
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
    if mode == "lasttoken":
        last = mask.sum(1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {mode!r}")


def sample_negatives(examples: Sequence[RetrievalExample], seed: int, neg_number: int) -> list[list[str]]:
    """Each example's negatives: its own (or, without any, the other examples' positives), at most
    ``neg_number``, sampled reproducibly from ``seed``.

    Raises:
        ExamplesError: an example has no negative at all (one example without ``neg``).
    """
    out: list[list[str]] = []
    for ex in examples:
        pool_ = list(ex.neg) or [p for other in examples if other is not ex for p in other.pos if p not in ex.pos]
        if not pool_:
            raise ExamplesError(f"{ex.where} has no negatives, and no other example gives positives to use instead.",
                                line=ex.line, field="neg",
                                hint="Give 'neg' passages (irrelevant to the query), or more examples.")
        if len(pool_) > neg_number:
            pool_ = random.Random(f"{seed}:{ex.index}").sample(pool_, neg_number)
        out.append(pool_)
    return out


def listwise_losses(score_lists: Iterable[Iterable[torch.Tensor]]) -> torch.Tensor:
    """Each example's loss: the mean, over its score vectors (positive first, then the negatives), of
    the cross-entropy with the positive as target."""
    losses = []
    for lists in score_lists:
        terms = [F.cross_entropy(s[None], torch.zeros(1, dtype=torch.long, device=s.device)) for s in lists]
        losses.append(torch.stack(terms).mean())
    return torch.stack(losses)


class RetrievalTask(Task):
    """Shared by embedding models and rerankers: checks the examples, samples the negatives, encodes
    texts (or query-passage pairs) with their token types, and runs the model on padded batches of them."""

    def __init__(self, examples: Sequence[RetrievalExample], *, tokenizer: Any, config: Any,
                 folder: str | Path | None = None, name: str = "the model", max_length: int | None = None,
                 seed: int = 0, neg_number: int = DEFAULT_NEG_NUMBER, **_: Any) -> None:
        super().__init__(examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                         max_length=max_length, seed=seed)
        self.require(RetrievalExample, f"input/output examples do not fit a {self.kind} model.", "input",
                     'Embedding models and rerankers take {"query": "...", "pos": ["..."], "neg": ["..."]}.')
        if neg_number < 1:
            raise ExamplesError(f"neg_number must be at least 1, got {neg_number}.")
        self.negatives = sample_negatives(self.examples, seed, neg_number)
        self.pad_id = fallback_pad_id(tokenizer, getattr(tokenizer, "eos_token_id", None))

    def encode(self, texts: tuple[str, ...], ex: RetrievalExample, field: str, what: str,
               truncation: bool | str) -> tuple[list[int], list[int] | None]:
        """Token ids (and token types, when the tokenizer gives them) of one text or one (query, passage)
        pair; longer than the limit is an error naming ``what``, unless truncating (``truncation``)."""
        enc = self.tokenizer(*texts)
        limit = self.limit
        if limit is not None and len(enc["input_ids"]) > limit:
            if not self.truncates:
                raise self.too_long(ex, len(enc["input_ids"]), what, field)
            enc = self.tokenizer(*texts, truncation=truncation, max_length=limit)
        types = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
        return list(enc["input_ids"]), types

    def run_batches(self, model: Any, params: Mapping[str, torch.Tensor] | None,
                    encoded: list[tuple[list[int], list[int] | None]],
                    output: Callable[[Any, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``output(model_output, attention_mask)`` for every encoded row, in order, computed on right-padded
        batches of similar length."""
        device = model_device(model)

        def step(batch: list[int]) -> torch.Tensor:
            rows = [encoded[i] for i in batch]
            has_types = all(t is not None for _, t in rows)
            ids, mask, types = pad_batch([r[0] for r in rows], self.pad_id,
                                         extra=[r[1] for r in rows] if has_types else None)  # type: ignore[misc]
            kwargs: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if types is not None:
                kwargs["token_type_ids"] = types.to(device)
            return output(call_model(model, params, **kwargs), kwargs["attention_mask"])

        return in_example_order([len(e[0]) for e in encoded], step, device)


class EmbeddingTask(RetrievalTask):
    """Contrastive loss of an embedding model (see the module docstring).

    Args:
        examples: :class:`~cocktail_core.examples.RetrievalExample` list.
        tokenizer / config / folder: the model's; ``folder`` supplies the sentence-transformers pooling.
        pooling: override the pooling (``cls``, ``mean``, ...); default read from ``folder``.
        temperature: similarity temperature (0.05).
        neg_number: most negatives per example (7).
        seed: seed of the negative sampling.
        max_length: truncate texts to this many tokens; default the sentence-transformers
            ``max_seq_length`` when present (as sentence-transformers does), else longer texts are an error.
    """

    kind = "encoder"

    def __init__(self, examples: Sequence[RetrievalExample], *, tokenizer: Any, config: Any,
                 folder: str | Path | None = None, name: str = "the model", max_length: int | None = None,
                 seed: int = 0, neg_number: int = DEFAULT_NEG_NUMBER, pooling: str | None = None,
                 temperature: float = DEFAULT_TEMPERATURE, **_: Any) -> None:
        folder = Path(folder) if folder is not None else None
        if max_length is None:
            max_length = _st_max_seq_length(folder)
        super().__init__(examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                         max_length=max_length, seed=seed, neg_number=neg_number)
        self.pooling = pooling or read_pooling(folder)
        if self.pooling not in POOLING_MODES:
            raise ExamplesError(f"unknown pooling {self.pooling!r}; expected one of {', '.join(POOLING_MODES)}.")
        if temperature <= 0:
            raise ExamplesError(f"the similarity temperature must be positive, got {temperature}.")
        self.temperature = temperature
        texts: list[str] = []
        where: dict[str, tuple[Any, str]] = {}
        index: dict[str, int] = {}

        def add(text: str, ex: RetrievalExample, field: str) -> int:
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
                where[text] = (ex, field)
            return index[text]

        self.groups: list[tuple[int, list[int], list[int]]] = []
        for ex, negs in zip(self.examples, self.negatives):
            q = add(ex.query, ex, "query")
            pos = [add(p, ex, "pos") for p in ex.pos]
            neg = [add(n, ex, "neg") for n in negs]
            self.groups.append((q, pos, neg))
        self.texts = texts
        self.encoded = []
        for text in texts:
            ex, field = where[text]
            self.encoded.append(self.encode((text,), ex, field, f"its {field} text", truncation=True))

    def embeddings(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L2-normalized embeddings of every distinct text, ``[n_texts, H]`` float32."""
        return self.run_batches(model, params, self.encoded, lambda out, mask: F.normalize(
            pool(out.last_hidden_state.float(), mask, self.pooling), dim=-1))

    def example_losses(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        emb = self.embeddings(model, params)
        return listwise_losses([(emb[[p] + neg] @ emb[q]) / self.temperature for p in pos]
                               for q, pos, neg in self.groups)


__all__ = ["EmbeddingTask", "RetrievalTask", "read_pooling", "pool", "sample_negatives", "listwise_losses",
           "POOLING_MODES"]
