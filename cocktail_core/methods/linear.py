"""Linear: the weighted average of LM-Cocktail and mergekit's ``linear``.

With ``normalize`` (the default) the result is ``sum(w_i * theta_i) / sum(w_i)`` and the weights must be
non-negative, not all zero. With ``normalize: false`` it is exactly ``sum(w_i * theta_i)``: the weights
are used as given and may be negative (extrapolation, e.g. ``[1.5, -0.5]`` moves past the first model
away from the second), which is what free weights optimized on examples produce.
"""

from __future__ import annotations

from typing import Any

import torch

from cocktail_core.methods.base import MergeMethod, Param


class Linear(MergeMethod):
    name = "linear"
    pretty_name = "Linear (weighted average)"
    reference_url = "https://arxiv.org/abs/2311.13534"
    description = "sum(w_i * theta_i) / sum(w_i): the LM-Cocktail weighted average."
    parameters = (Param("normalize", True, "divide by the sum of the weights (false: use the weights as "
                                           "given, which may then be negative)"),)
    elementwise = True
    allows_negative_weights = False  # when normalizing; see check_weights

    def check_weights(self, weights: list[float], params: dict[str, Any] | None) -> list[str]:
        if not self.validate_params(params)["normalize"]:
            return []  # exactly sum(w_i * theta_i): any finite weights, negative ones included
        problems = []
        negative = [i for i, w in enumerate(weights) if w < 0]
        if negative:
            problems.append(f"method 'linear' forbids negative weights when it normalizes (model "
                            f"#{', #'.join(str(i + 1) for i in negative)}); set normalize: false to use the weights "
                            "as given (sum(w_i * theta_i)), or use task_arithmetic to subtract a model")
        if all(w == 0 for w in weights):
            problems.append("all weights are zero; give at least one model a positive weight")
        return problems

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        # Multiply, then add (never a fused multiply-add), so results equal the plain formula
        # sum(w_i * theta_i) / sum(w_i) bit for bit.
        if out is None:
            out = tensors[0] * weights[0]
            for t, w in zip(tensors[1:], weights[1:]):
                out.add_(t * w)
        else:  # engine scratch inputs: scale them in place, no allocation
            torch.mul(tensors[0], weights[0], out=out)
            for t, w in zip(tensors[1:], weights[1:]):
                out.add_(t.mul_(w))
        if params["normalize"]:
            out.div_(sum(weights))
        return out
