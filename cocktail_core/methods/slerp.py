"""SLERP: spherical interpolation between the base and one other model."""

from __future__ import annotations

from typing import Any

import torch

from cocktail_core.methods.base import MergeMethod, Param

_DOT_THRESHOLD = 0.9995


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Interpolate along the great circle between ``v0`` (t=0) and ``v1`` (t=1).

    Nearly parallel tensors fall back to linear interpolation, where slerp is numerically unstable.
    """
    u0 = v0 / (v0.norm() + eps)
    u1 = v1 / (v1.norm() + eps)
    dot = float((u0 * u1).sum().clamp(-1.0, 1.0))
    if abs(dot) > _DOT_THRESHOLD:
        return (1 - t) * v0 + t * v1
    theta = torch.arccos(torch.tensor(dot, dtype=torch.float64))
    sin_theta = torch.sin(theta)
    s0 = float(torch.sin((1 - t) * theta) / sin_theta)
    s1 = float(torch.sin(t * theta) / sin_theta)
    return s0 * v0 + s1 * v1


class Slerp(MergeMethod):
    name = "slerp"
    pretty_name = "SLERP"
    reference_url = "https://en.wikipedia.org/wiki/Slerp"
    description = "Spherical interpolation between the base (t=0) and the other model (t=1)."
    parameters = (Param("t", 0.5, "position between the base (0) and the other model (1)", 0.0, 1.0),)
    needs_base = True
    uses_weights = False
    max_models = 2

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        assert base is not None and len(tensors) == 1
        return slerp(params["t"], base, tensors[0])
