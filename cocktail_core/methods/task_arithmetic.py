"""Task arithmetic: add weighted task vectors (model - base) to the base."""

from __future__ import annotations

from typing import Any

import torch

from cocktail_core.methods.base import MergeMethod, Param


class TaskArithmetic(MergeMethod):
    name = "task_arithmetic"
    pretty_name = "Task arithmetic"
    reference_url = "https://arxiv.org/abs/2212.04089"
    description = "base + lambda * sum(w_i * (theta_i - base)); negative weights subtract a skill."
    parameters = (
        Param("lambda", 1.0, "scale of the summed task vectors", 0.0, 10.0),
        Param("normalize", False, "divide the summed task vectors by the sum of the weights"),
    )
    needs_base = True
    elementwise = True

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        assert base is not None
        delta = torch.zeros_like(base)
        for t, w in zip(tensors, weights):
            delta.add_(t - base, alpha=w)
        if params["normalize"] and sum(weights) != 0:
            delta.div_(sum(weights))
        return base + params["lambda"] * delta
