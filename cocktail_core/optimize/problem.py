"""What the merge optimizer searches: the tuned weights (on a simplex, or free), and one merge's evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from cocktail_core.optimize.options import Constraint


@dataclass
class Eval:
    """One merge's mean example loss and, when the drift guard runs, the base's self-NLL under it."""

    loss: float
    drift: float | None


class Problem:
    """The merged-model loss as a function of the tuned weights, for one recipe.

    The weights are ``w = fixed + share * q`` where ``q`` holds the weights of the ``free`` models (those
    with a softmax weight > 0 and not the alpha model); ``fixed`` holds the alpha share. With the
    ``"simplex"`` constraint ``q`` lives on the simplex (non-negative, summing to 1); with ``"free"`` it is
    any real vector (the merge is then ``sum(w_i * theta_i)``, not normalized). Both start at the softmax
    weights ``q_soft``.
    """

    def __init__(self, soft: list[float], free: list[int], alpha_index: int | None, alpha: float | None,
                 constraint: Constraint = "simplex") -> None:
        self.soft = soft
        self.free = free
        self.constraint = constraint
        self.share = 1.0 - alpha if alpha is not None else 1.0
        self.fixed = [0.0] * len(soft)
        if alpha is not None and alpha_index is not None:
            self.fixed[alpha_index] = float(alpha)
        total = sum(soft[i] for i in free)
        self.q_soft = [soft[i] / total for i in free]

    def weights(self, q: Sequence[float]) -> list[float]:
        """Every model's weight for the tuned weights ``q``."""
        w = list(self.fixed)
        for i, qi in zip(self.free, q):
            w[i] = self.share * float(qi)
        return w

    def kl(self, q: Sequence[float]) -> float:
        """``KL(q || q_softmax)``: how far ``q`` (on the simplex) strays from the softmax weights."""
        return sum(float(a) * math.log(max(float(a), 1e-12) / b) for a, b in zip(q, self.q_soft) if a > 0)

    def distance(self, q: Sequence[float]) -> float:
        """The pull's penalty: ``KL(q || q_softmax)`` on the simplex, ``||q - q_softmax||^2`` for free weights."""
        if self.constraint == "free":
            return sum((float(a) - b) ** 2 for a, b in zip(q, self.q_soft))
        return self.kl(q)


__all__ = ["Eval", "Problem"]
