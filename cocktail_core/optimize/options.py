"""Knobs of the merge optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from cocktail_core.drift import GENERAL_PROMPTS


@dataclass(frozen=True)
class OptimizeOptions:
    """Knobs of the merge optimizer (the defaults suit ~5 examples).

    Attributes:
        steps: Adam steps of the gradient optimizer.
        lr: Adam learning rate on the weight logits.
        pull: weight of ``KL(q || q_softmax)`` in the objective (pull toward the softmax weights).
        drift_tolerance: a candidate's base self-NLL may exceed the softmax merge's by this fraction.
        drift_prompts: prompts answered greedily by the base model to measure drift.
        drift_new_tokens: longest greedy answer.
        max_evals: merge evaluations of the gradient-free search (in-memory merges).
        max_streamed_evals: merge evaluations when each one is a streamed merge to disk.
    """

    steps: int = 30
    lr: float = 0.1
    pull: float = 0.1
    drift_tolerance: float = 0.02
    drift_prompts: tuple[str, ...] = GENERAL_PROMPTS
    drift_new_tokens: int = 24
    max_evals: int = 24
    max_streamed_evals: int = 8


__all__ = ["OptimizeOptions"]
