"""Reranker (cross-encoder) loss: cross-entropy of the positive among the negatives on the model's scores.

Each (query, passage) pair is scored by the sequence-classification head: the single logit when
``num_labels == 1``, else ``logit[1] - logit[0]`` (the log-odds of "relevant"). For every positive of an
example the loss is ``cross_entropy([s(q, p), s(q, n_1), ..., s(q, n_k)], target=0)``; an example's loss
is the mean over its positives. Negatives are sampled as for embedding models (seeded, at most
``neg_number``, other examples' positives when an example has none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from cocktail_core.errors import ScoringError
from cocktail_core.examples import RetrievalExample
from cocktail_core.scoring.base import config_value
from cocktail_core.scoring.embedding import DEFAULT_NEG_NUMBER, RetrievalTask, listwise_losses


class RerankerTask(RetrievalTask):
    """Listwise cross-entropy of a cross-encoder (see the module docstring).

    Args:
        examples: :class:`~cocktail_core.examples.RetrievalExample` list.
        tokenizer / config: the model's.
        neg_number: most negatives per example (7).
        seed: seed of the negative sampling.
        max_length: truncate pairs (the passage side) to this many tokens; else a pair longer than
            the context is an error.

    Raises:
        ScoringError: the classification head has neither 1 nor 2 labels.
    """

    kind = "reranker"

    def __init__(self, examples: Sequence[RetrievalExample], *, tokenizer: Any, config: Any,
                 folder: str | Path | None = None, name: str = "the model", max_length: int | None = None,
                 seed: int = 0, neg_number: int = DEFAULT_NEG_NUMBER, **_: Any) -> None:
        super().__init__(examples, tokenizer=tokenizer, config=config, folder=folder, name=name,
                         max_length=max_length, seed=seed, neg_number=neg_number)
        labels = config_value(config, "num_labels") or len(config_value(config, "id2label") or {}) or 1
        if labels not in (1, 2):
            raise ScoringError(f"{name} has a {labels}-label classification head; a reranker needs 1 label "
                               "(a relevance score) or 2 (irrelevant / relevant).",
                               hint="Pass the model kind explicitly if this is not a reranker.")
        self.num_labels = int(labels)
        self.pairs: list[tuple[list[int], list[int] | None]] = []
        self.groups: list[tuple[list[int], list[int]]] = []
        for ex, negs in zip(self.examples, self.negatives):
            pos = [self._add(ex, p, "pos") for p in ex.pos]
            neg = [self._add(ex, n, "neg") for n in negs]
            self.groups.append((pos, neg))

    def _add(self, ex: RetrievalExample, passage: str, field: str) -> int:
        self.pairs.append(self.encode((ex.query, passage), ex, field, f"query + {field} passage",
                                      truncation="only_second"))
        return len(self.pairs) - 1

    def scores(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The relevance score of every (query, passage) pair, float32 ``[n_pairs]``."""
        return self.run_batches(model, params, self.pairs, lambda out, _mask: self._relevance(out.logits.float()))

    def _relevance(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, 0] if self.num_labels == 1 else logits[:, 1] - logits[:, 0]

    def example_losses(self, model: Any, params: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        s = self.scores(model, params)
        return listwise_losses([s[[p] + neg] for p in pos] for pos, neg in self.groups)


__all__ = ["RerankerTask"]
