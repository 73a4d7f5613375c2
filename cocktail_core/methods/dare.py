"""DARE: randomly drop task-vector entries and rescale, then merge linearly or TIES-style."""

from __future__ import annotations

from typing import Any

import torch

from cocktail_core.methods.base import MergeMethod, Param
from cocktail_core.methods.sparsify import random_drop, sign_consensus_merge

_PARAMS = (
    Param("density", 0.5, "probability of keeping each task-vector entry", 0.0, 1.0),
    Param("lambda", 1.0, "scale of the merged task vector", 0.0, 10.0),
    Param("rescale", True, "rescale kept entries to preserve the task vector's L1 norm"),
)


class DareLinear(MergeMethod):
    name = "dare_linear"
    pretty_name = "DARE (linear)"
    reference_url = "https://arxiv.org/abs/2311.03099"
    description = "Drop task-vector entries at random, rescale, add the weighted sum to the base."
    parameters = _PARAMS + (Param("normalize", False, "divide by the sum of the weights"),)
    needs_base = True

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        assert base is not None
        delta = torch.zeros_like(base)
        for t, w in zip(tensors, weights):
            delta.add_(random_drop(t - base, params["density"], generator, params["rescale"]), alpha=w)
        if params["normalize"] and sum(weights) != 0:
            delta.div_(sum(weights))
        return base + params["lambda"] * delta


class DareTies(MergeMethod):
    name = "dare_ties"
    pretty_name = "DARE + TIES"
    reference_url = "https://arxiv.org/abs/2311.03099"
    description = "DARE's random drop and rescale, then TIES's sign election and disjoint merge."
    parameters = _PARAMS + (Param("normalize", False, "divide by the weights of the agreeing models"),)
    needs_base = True

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        assert base is not None
        deltas = [random_drop(t - base, params["density"], generator, params["rescale"]) for t in tensors]
        return base + params["lambda"] * sign_consensus_merge(deltas, weights, params["normalize"])
