"""What the merge optimizer searches: the free weights on a simplex, and one merge's evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass
class Eval:
    """One merge's mean example loss and, when the drift guard runs, the base's self-NLL under it."""

    loss: float
    drift: float | None


class Problem:
    """The merged-model loss as a function of the free weights, for one recipe.

    The weights are ``w = fixed + share * q`` where ``q`` lives on the simplex of the ``free`` models
    (those with a softmax weight > 0 and not the alpha model); ``fixed`` holds the alpha share.
    """

    def __init__(self, soft: list[float], free: list[int], alpha_index: int | None, alpha: float | None) -> None:
        self.soft = soft
        self.free = free
        self.share = 1.0 - alpha if alpha is not None else 1.0
        self.fixed = [0.0] * len(soft)
        if alpha is not None and alpha_index is not None:
            self.fixed[alpha_index] = float(alpha)
        total = sum(soft[i] for i in free)
        self.q_soft = [soft[i] / total for i in free]

    def weights(self, q: Sequence[float]) -> list[float]:
        """Every model's weight for the free weights ``q``."""
        w = list(self.fixed)
        for i, qi in zip(self.free, q):
            w[i] = self.share * float(qi)
        return w

    def kl(self, q: Sequence[float]) -> float:
        """``KL(q || q_softmax)``: how far ``q`` strays from the softmax weights."""
        return sum(float(a) * math.log(max(float(a), 1e-12) / b) for a, b in zip(q, self.q_soft) if a > 0)


__all__ = ["Eval", "Problem"]
