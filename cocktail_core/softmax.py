"""LM-Cocktail's rule: mixing weights ``softmax(-loss / T)``, with optional top-k and a fixed alpha share."""

from __future__ import annotations

import math
from typing import Sequence

from cocktail_core.errors import RecipeError

DEFAULT_TEMPERATURE = 5.0


def softmax_weights(
    losses: Sequence[float],
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = None,
    alpha: float | None = None,
    alpha_index: int | None = None,
) -> list[float]:
    """LM-Cocktail's weights: ``softmax(-loss_i / temperature)``, optionally top-k and a fixed share.

    Args:
        losses: each model's loss (finite).
        temperature: > 0; ``0`` is the limit (the best model, ties shared); ``inf`` gives equal weights.
        top_k: keep only the ``k`` lowest-loss models (among those the softmax is over), renormalized.
        alpha: the two-step recipe: model ``alpha_index`` (the fine-tune) gets exactly ``alpha`` and the
            others share ``1 - alpha`` by their losses.
        alpha_index: index of the model that gets ``alpha``.

    Returns:
        Non-negative weights summing to 1, in the order of ``losses``.

    Raises:
        RecipeError: a loss is not finite, the temperature is negative / NaN, ``top_k < 1``, ``alpha``
            outside [0, 1], or ``alpha`` without ``alpha_index``.

    Example:
        >>> softmax_weights([0.5, 1.0], temperature=5.0)
        [0.52497918747894, 0.47502081252106]
        >>> softmax_weights([0.5, 1.0, 2.0], temperature=1e-9)
        [1.0, 0.0, 0.0]
    """
    losses = [float(x) for x in losses]
    check_softmax_args(len(losses), temperature, top_k, alpha, alpha_index)
    bad = [i for i, x in enumerate(losses) if not math.isfinite(x)]
    if bad:
        raise RecipeError(f"The loss of model #{bad[0] + 1} is {losses[bad[0]]}; weights need finite losses.")
    pool = [i for i in range(len(losses)) if alpha is None or i != alpha_index]
    if top_k is not None and top_k < len(pool):
        pool = sorted(pool, key=lambda i: (losses[i], i))[:top_k]
    best = min(losses[i] for i in pool)
    if temperature == 0:
        raw = {i: 1.0 if losses[i] == best else 0.0 for i in pool}
    elif math.isinf(temperature):
        raw = {i: 1.0 for i in pool}
    else:
        raw = {i: math.exp(-(losses[i] - best) / temperature) for i in pool}  # exponents <= 0: no overflow
    total = sum(raw.values())
    share = 1.0 - alpha if alpha is not None else 1.0
    out = [0.0] * len(losses)
    for i, r in raw.items():
        out[i] = share * r / total
    if alpha is not None and alpha_index is not None:
        out[alpha_index] = float(alpha)
    return out


def check_softmax_args(n: int, temperature: float, top_k: int | None, alpha: float | None,
                       alpha_index: int | None) -> None:
    """Check :func:`softmax_weights`' options for ``n`` models (before any model is scored).

    Raises:
        RecipeError: as :func:`softmax_weights` says.
    """
    if n < 1:
        raise RecipeError("No losses given.")
    if not isinstance(temperature, (int, float)) or math.isnan(temperature) or temperature < 0:
        raise RecipeError(f"The temperature must be a number >= 0, got {temperature!r}.",
                          hint="5 is LM-Cocktail's default; smaller favours the best model, larger evens out.")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise RecipeError(f"top_k must be a whole number >= 1, got {top_k!r}.")
    if alpha is not None:
        if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise RecipeError(f"alpha must be between 0 and 1, got {alpha!r}.",
                              hint="alpha is the fixed share of the named fine-tune, e.g. 0.5.")
        if alpha_index is None or not 0 <= alpha_index < n:
            raise RecipeError("alpha needs the model that gets it (alpha_model).")
        if n < 2:
            raise RecipeError("alpha needs at least one other model to share 1 - alpha.")
    elif alpha_index is not None:
        raise RecipeError("alpha_model is given without alpha.", hint="Give both, e.g. alpha=0.5.")


__all__ = ["softmax_weights", "check_softmax_args", "DEFAULT_TEMPERATURE"]
