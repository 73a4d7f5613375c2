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
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from cocktail_core.errors import ExamplesError
from cocktail_core.examples import RetrievalExample
from cocktail_core.scoring.base import Task, batches_by_length, call_model, model_device, pad_batch

POOLING_MODES = ("cls", "mean", "max", "lasttoken", "mean_sqrt_len")
DEFAULT_TEMPERATURE = 0.05
DEFAULT_NEG_NUMBER = 7


def read_pooling(folder: str | Path | None) -> str:
    """The pooling a sentence-transformers folder declares (``modules.json`` -> Pooling config); ``cls`` when none.

    Example:
        >>> read_pooling("./bge-small")
        'cls'
    """
    if folder is None:
        return "cls"
    folder = Path(folder)
    modules_file = folder / "modules.json"
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8")) if modules_file.is_file() else []
    except ValueError:
        modules = []
    paths = [m.get("path", "") for m in modules if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling")]
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
    return "cls"


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


class RetrievalTask(Task):
    """Shared by embedding models and rerankers: checks the examples and samples the negatives."""

    def __init__(self, examples: Sequence[RetrievalExample], *, tokenizer: Any, config: Any,
                 folder: str | Path | None = None, name: str = "the model", max_length: int | None = None,
                 seed: int = 0, neg_number: int = DEFAULT_NEG_NUMBER, **_: Any) -> None:
        super().__init__(examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                         max_length=max_length, seed=seed)
        for ex in self.examples:
            if not isinstance(ex, RetrievalExample):
                raise ExamplesError(f"{ex.where}: input/output examples do not fit a {self.kind} model.",
                                    line=ex.line, field="input",
                                    hint='Embedding models and rerankers take {"query": "...", "pos": ["..."], '
                                         '"neg": ["..."]}.')
        if neg_number < 1:
            raise ExamplesError(f"neg_number must be at least 1, got {neg_number}.")
        self.negatives = sample_negatives(self.examples, seed, neg_number)
        self.pad_id = next(i for i in (getattr(tokenizer, "pad_token_id", None),
                                       getattr(tokenizer, "eos_token_id", None), 0) if i is not None)


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
        self.encoded = [self._encode(t, *where[t]) for t in texts]

    def _encode(self, text: str, ex: RetrievalExample, field: str) -> tuple[list[int], list[int] | None]:
        enc = self.tokenizer(text)
        ids = list(enc["input_ids"])
        limit = self.limit
        if limit is not None and len(ids) > limit:
            if not self.truncates:
                raise self.too_long(ex, len(ids), f"its {field} text", field)
            enc = self.tokenizer(text, truncation=True, max_length=limit)
            ids = list(enc["input_ids"])
        types = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
        return ids, types

    def embeddings(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L2-normalized embeddings of every distinct text, ``[n_texts, H]`` float32."""
        device = model_device(model)
        rows: list[torch.Tensor | None] = [None] * len(self.encoded)
        for batch in batches_by_length([len(e[0]) for e in self.encoded]):
            enc = [self.encoded[i] for i in batch]
            has_types = all(t is not None for _, t in enc)
            ids, mask, types = pad_batch([e[0] for e in enc], self.pad_id,
                                         extra=[e[1] for e in enc] if has_types else None)  # type: ignore[misc]
            kwargs: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if types is not None:
                kwargs["token_type_ids"] = types.to(device)
            hidden = call_model(model, params, **kwargs).last_hidden_state
            pooled = F.normalize(pool(hidden.float(), kwargs["attention_mask"], self.pooling), dim=-1)
            for j, i in enumerate(batch):
                rows[i] = pooled[j]
        return torch.stack(rows)  # type: ignore[arg-type]

    def example_losses(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        emb = self.embeddings(model, params)
        losses = []
        for q, pos, neg in self.groups:
            terms = []
            for p in pos:
                cand = emb[[p] + neg]
                scores = (cand @ emb[q]) / self.temperature
                terms.append(F.cross_entropy(scores[None], torch.zeros(1, dtype=torch.long, device=emb.device)))
            losses.append(torch.stack(terms).mean())
        return torch.stack(losses)


__all__ = ["EmbeddingTask", "RetrievalTask", "read_pooling", "pool", "sample_negatives", "POOLING_MODES"]
