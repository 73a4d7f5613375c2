"""Weights from examples: score every model, set the sliders from the losses, and say how it went."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cocktail_core.errors import ExamplesError
from cocktail_core.recipe import Recipe

from ui_components.handlers.preflight import require_mergeable
from ui_components.handlers.progress import Progress, core_progress, noop
from ui_components.handlers.recipe_form import build_recipe
from ui_components.handlers.rows import decorate, row_label, set_weights
from ui_components.session import Session, SessionStore


@dataclass
class WeightsView:
    """Computed weights, ready to show."""

    rows: list[dict[str, Any]]
    extras: dict[str, Any]
    result: Any
    recipe: Recipe
    summary: str
    losses_frame: Any
    weights_frame: Any

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "models": [str(m) for m in r.models],
            "losses": [float(x) for x in r.losses],
            "weights": [float(x) for x in r.weights],
            "merged_loss_softmax": _maybe_float(getattr(r, "merged_loss_softmax", None)),
            "merged_loss_optimized": _maybe_float(getattr(r, "merged_loss_optimized", None)),
            "n_examples": int(r.n_examples),
            "recipe_yaml": self.recipe.to_yaml(),
        }


def _maybe_float(x: Any) -> float | None:
    return None if x is None else float(x)


def compute_weights_form(
    rows: list[dict[str, Any]],
    *,
    session: Session,
    store: SessionStore | None = None,
    examples: list[dict[str, Any]] | str,
    kind: str | None = None,
    method: str = "linear",
    params: dict[str, Any] | None = None,
    base: str | None = None,
    dtype: str = "auto",
    extras: dict[str, Any] | None = None,
    temperature: float = 5.0,
    optimize: bool = False,
    token: str | None = None,
    progress: Progress | None = None,
) -> WeightsView:
    """Score every model on the examples and set the weights from the losses.

    The models pass the preflight first (compatibility and this installation's limits), before
    anything downloads. Example text is always parsed as JSON/JSONL, never opened as a file path.

    Raises:
        ExamplesError: malformed examples, or more than ``COCKTAIL_MAX_EXAMPLES``.
        PreflightError: the models cannot be merged.
        CocktailError: the models cannot be loaded or scored.
    """
    import pandas as pd

    from cocktail_core.examples import load_examples, parse_examples
    from cocktail_core.weights import compute_weights

    progress = progress or noop
    recipe = build_recipe(rows, method=method, params=params, base=base, dtype=dtype, extras=extras)
    if temperature is None or not float(temperature) > 0:
        raise ExamplesError("the temperature must be a positive number.", field="temperature",
                            hint="5 is LM-Cocktail's default; lower values favor the best model more.")
    view = require_mergeable(rows, session=session, store=store, method=method, params=params, base=base,
                             dtype=dtype, extras=extras, token=token)
    kind = kind or view.kind
    parsed = parse_examples(examples, kind=kind) if isinstance(examples, str) else load_examples(examples, kind=kind)
    progress(0.0, f"scoring {len(recipe.models)} models on {len(parsed)} examples")
    result = compute_weights(recipe, parsed, kind=kind, temperature=float(temperature), optimize=bool(optimize),
                             token=token, progress=core_progress(progress), sources=view.sources_for(recipe))
    new_recipe = recipe.with_weights(list(result.weights), weights_from=result.provenance())
    new_rows = decorate(set_weights(rows, new_recipe.weights), method, base)
    extras = dict(extras or {})
    if new_recipe.weights_from is not None:
        extras["weights_from"] = new_recipe.weights_from.model_dump(exclude_none=True)
        extras["computed_weights"] = [round(w, 4) for w in new_recipe.weights]
    labels = [row_label(i, str(m)) for i, m in enumerate(recipe.refs)]
    losses = pd.DataFrame({"model": labels, "loss": [round(float(x), 4) for x in result.losses]})
    weights = pd.DataFrame({"model": labels, "weight": [round(float(x), 4) for x in new_recipe.weights]})
    summary = _summary(result, labels, new_recipe.weights, temperature, optimize)
    progress(1.0, "weights computed")
    return WeightsView(rows=new_rows, extras=extras, result=result, recipe=new_recipe, summary=summary,
                       losses_frame=losses, weights_frame=weights)


def _summary(result: Any, labels: list[str], weights: list[float], temperature: float, optimize: bool) -> str:
    """Markdown for the weights panel: each model's loss and weight, and the merge's loss."""
    lines = [f"Computed from **{result.n_examples}** examples at temperature {float(temperature):g}"
             + (" (optimized)" if optimize else "") + ":", "", "| model | loss | weight |", "|---|---|---|"]
    lines += [f"| {lab} | {loss:.4f} | {w:.3f} |" for lab, loss, w in zip(labels, result.losses, weights)]
    soft = getattr(result, "merged_loss_softmax", None)
    opt = getattr(result, "merged_loss_optimized", None)
    if soft is not None:
        lines.append(f"\nLoss of the merge with these weights: {float(soft):.4f}"
                     + (f" (optimized: {float(opt):.4f})" if opt is not None else ""))
    lines += [f"\n_{note}_" for note in getattr(result, "notes", [])]
    return "\n".join(lines)
