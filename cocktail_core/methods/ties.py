"""TIES: trim task vectors by magnitude, elect a sign, merge the agreeing entries."""

from __future__ import annotations

from typing import Any

import torch

from cocktail_core.methods.base import MergeMethod, Param
from cocktail_core.methods.sparsify import sign_consensus_merge, trim_by_magnitude


class Ties(MergeMethod):
    name = "ties"
    pretty_name = "TIES"
    reference_url = "https://arxiv.org/abs/2306.01708"
    description = "Trim each task vector to its largest entries, elect signs, average the agreeing entries."
    parameters = (
        Param("density", 1.0, "fraction of each task vector kept (largest magnitudes)", 0.0, 1.0),
        Param("lambda", 1.0, "scale of the merged task vector", 0.0, 10.0),
        Param("normalize", True, "divide by the weights of the agreeing models"),
    )
    needs_base = True

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        assert base is not None
        deltas = [trim_by_magnitude(t - base, params["density"]) for t in tensors]
        return base + params["lambda"] * sign_consensus_merge(deltas, weights, params["normalize"])
