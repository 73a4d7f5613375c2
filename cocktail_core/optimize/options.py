"""Knobs of the merge optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cocktail_core.drift import GENERAL_PROMPTS

#: What the optimizer may do with the weights: ``"simplex"`` keeps them non-negative and summing to 1
#: (a weighted average); ``"free"`` searches any real weights (negative ones, any sum), merged as exactly
#: ``sum(w_i * theta_i)`` (method linear with ``normalize: false``).
Constraint = Literal["simplex", "free"]
CONSTRAINTS: tuple[str, ...] = ("simplex", "free")


@dataclass(frozen=True)
class OptimizeOptions:
    """Knobs of the merge optimizer (the defaults suit ~5 examples).

    Attributes:
        steps: Adam steps of the gradient optimizer.
        lr: Adam learning rate on the weight logits (constraint ``"simplex"``).
        free_lr: Adam learning rate on the weights themselves (constraint ``"free"``).
        pull: weight of the pull toward the softmax weights in the objective: ``KL(q || q_softmax)`` on
            the simplex, ``||q - q_softmax||^2`` for free weights.
        drift_tolerance: a candidate's base self-NLL may exceed the softmax merge's by this fraction.
        drift_prompts: prompts answered greedily by the base model to measure drift.
        drift_new_tokens: longest greedy answer.
        max_evals: merge evaluations of the gradient-free search (in-memory merges).
        max_streamed_evals: merge evaluations when each one is a streamed merge to disk.
    """

    steps: int = 30
    lr: float = 0.1
    free_lr: float = 0.03
    pull: float = 0.1
    drift_tolerance: float = 0.02
    drift_prompts: tuple[str, ...] = GENERAL_PROMPTS
    drift_new_tokens: int = 24
    max_evals: int = 24
    max_streamed_evals: int = 8


__all__ = ["OptimizeOptions", "Constraint", "CONSTRAINTS"]
