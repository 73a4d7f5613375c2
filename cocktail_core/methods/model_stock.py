"""Model Stock: interpolate between the mean of the fine-tunes and the base by their agreement."""

from __future__ import annotations

from typing import Any

import torch

from cocktail_core.methods.base import MergeMethod, Param


class ModelStock(MergeMethod):
    name = "model_stock"
    pretty_name = "Model Stock"
    reference_url = "https://arxiv.org/abs/2403.19522"
    description = "t = N cos / (1 + (N-1) cos) from the task vectors' mean cosine; t * mean + (1 - t) * base."
    parameters = (Param("filter_wise", False, "compute the cosine per row instead of per tensor"),)
    needs_base = True
    uses_weights = False
    min_models = 3  # the base plus at least two fine-tunes

    def merge(self, tensors: list[torch.Tensor], weights: list[float], base: torch.Tensor | None,
              params: dict[str, Any], *, generator: torch.Generator | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
        assert base is not None and len(tensors) >= 2
        n = len(tensors)
        deltas = [t - base for t in tensors]
        if params["filter_wise"] and base.dim() >= 2:
            flat = [d.reshape(d.shape[0], -1) for d in deltas]
        else:
            flat = [d.reshape(1, -1) for d in deltas]
        cos_sum = torch.zeros(flat[0].shape[0], dtype=base.dtype, device=base.device)
        pairs = 0
        for i in range(n):
            for j in range(i + 1, n):
                cos_sum += torch.nn.functional.cosine_similarity(flat[i], flat[j], dim=1, eps=1e-8)
                pairs += 1
        cos = (cos_sum / pairs).clamp(-1.0, 1.0)
        t = (n * cos) / (1 + (n - 1) * cos)
        t = torch.nan_to_num(t, nan=0.0)
        mean = torch.stack(tensors).mean(0)
        shape = (-1,) + (1,) * (base.dim() - 1) if params["filter_wise"] and base.dim() >= 2 else ()
        t = t.view(shape) if shape else t.squeeze()
        return t * mean + (1 - t) * base
