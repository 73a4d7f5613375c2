"""Task-vector sparsification shared by TIES and DARE (magnitude trim, random drop, sign election)."""

from __future__ import annotations

import torch


def trim_by_magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``density`` fraction of entries with the largest magnitude, zero the rest."""
    if density >= 1:
        return delta
    k = int(density * delta.numel())
    if k <= 0:
        return torch.zeros_like(delta)
    threshold_idx = torch.topk(delta.abs().flatten(), k, sorted=False).indices
    mask = torch.zeros(delta.numel(), dtype=torch.bool, device=delta.device)
    mask[threshold_idx] = True
    return delta * mask.view_as(delta)


def random_drop(delta: torch.Tensor, density: float, generator: torch.Generator | None, rescale: bool) -> torch.Tensor:
    """Drop each entry with probability ``1 - density``; rescale so the L1 norm is preserved.

    The mask is drawn on the CPU from the seeded generator so a recipe gives the same result on
    any device.
    """
    if density >= 1:
        return delta
    mask = torch.bernoulli(torch.full(delta.shape, density, dtype=torch.float32), generator=generator)
    kept = delta * mask.to(delta.device)
    if rescale:
        norm_kept = kept.abs().sum()
        if norm_kept > 0:
            kept = kept * (delta.abs().sum() / norm_kept)
    return kept


def sign_consensus_merge(deltas: list[torch.Tensor], weights: list[float], normalize: bool) -> torch.Tensor:
    """TIES: elect a sign per entry from the weighted sum, merge only the agreeing entries."""
    stacked = torch.stack([d * w for d, w in zip(deltas, weights)])
    elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    mask = torch.stack([d.sign() for d in deltas]) == elected
    mixed = (stacked * mask).sum(0)
    if normalize:
        w = torch.tensor(weights, dtype=stacked.dtype, device=stacked.device).view(-1, *([1] * elected.dim()))
        divisor = (w * mask).sum(0)
        divisor[divisor == 0] = 1
        mixed = mixed / divisor
    return mixed
