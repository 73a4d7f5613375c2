"""The form and the recipe: UI values to a :class:`~cocktail_core.Recipe` and back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocktail_core import methods, settings
from cocktail_core.errors import RecipeError
from cocktail_core.recipe import Recipe

from ui_components.handlers.rows import NO_BASE, chosen_base, decorate, filled, new_row, same_ref


def collect_params(method: str, values: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The chosen method's parameters out of every method's parameter values."""
    m = methods.get(method)
    given = (values or {}).get(method, {})
    return {p.name: given[p.name] for p in m.parameters if p.name in given and given[p.name] is not None}


def build_recipe(
    rows: list[dict[str, Any]],
    *,
    method: str = "linear",
    params: dict[str, Any] | None = None,
    base: str | None = None,
    dtype: str = "auto",
    extras: dict[str, Any] | None = None,
) -> Recipe:
    """The recipe the form describes.

    ``extras`` carries recipe fields the form does not show (shard size, seed, tokenizer source)
    and the weights' provenance when they were computed from examples and not moved since.

    Raises:
        RecipeError: fewer than two models, a duplicate, a method without its base...
    """
    models = filled(rows)
    data: dict[str, Any] = {
        "models": [{"model": r["ref"].strip(), "weight": float(r["weight"])} for r in models],
        "method": method or "linear",
        "params": dict(params or {}),
        "dtype": dtype or "auto",
    }
    if chosen_base(base):
        data["base"] = base
    extras = extras or {}
    for key in ("shard_size", "seed"):
        if extras.get(key) not in (None, ""):
            data[key] = extras[key]
    refs = [m["model"] for m in data["models"]]
    if extras.get("tokenizer_source") and any(same_ref(extras["tokenizer_source"], r) for r in refs):
        data["tokenizer_source"] = extras["tokenizer_source"]
    provenance, computed = extras.get("weights_from"), extras.get("computed_weights")
    if provenance and computed and len(computed) == len(models) and all(
            abs(float(a) - float(r["weight"])) < 5e-4 for a, r in zip(computed, models)):
        data["weights_from"] = provenance
    return Recipe.validated(data, source="form")


def rows_from_recipe(recipe: Recipe) -> list[dict[str, Any]]:
    """One row per model of ``recipe``, with its weight."""
    return [new_row(str(m.model), m.weight) for m in recipe.models]


@dataclass
class FormValues:
    """Everything a recipe sets in the form (for a recipe upload)."""

    rows: list[dict[str, Any]]
    method: str
    params: dict[str, Any]
    base: str
    dtype: str
    extras: dict[str, Any]


def form_from_recipe(text: str) -> FormValues:
    """Fill the form from a recipe's YAML (or JSON) text.

    Raises:
        RecipeError: the recipe is invalid, or has more models than this installation allows.
    """
    recipe = Recipe.from_yaml(text, source="uploaded recipe")
    limit = settings.get().max_models
    if len(recipe.models) > limit:
        raise RecipeError(f"The recipe has {len(recipe.models)} models; this installation merges at most {limit}.")
    extras: dict[str, Any] = {"shard_size": recipe.shard_size, "seed": recipe.seed}
    if recipe.tokenizer_source is not None:
        extras["tokenizer_source"] = str(recipe.tokenizer_source)
    if recipe.weights_from is not None:
        extras["weights_from"] = recipe.weights_from.model_dump(exclude_none=True)
        extras["computed_weights"] = list(recipe.weights)
    base = str(recipe.base) if recipe.base is not None else NO_BASE
    return FormValues(rows=decorate(rows_from_recipe(recipe), recipe.method, base), method=recipe.method,
                      params=dict(recipe.params), base=base, dtype=recipe.dtype, extras=extras)


def read_recipe_file(path: str | Path | None) -> str:
    """The text of an uploaded recipe file.

    Raises:
        RecipeError: no file, or not text.
    """
    if not path:
        raise RecipeError("No recipe file was uploaded.", hint="Choose a .yaml, .yml or .json recipe.")
    p = Path(path)
    try:
        if p.stat().st_size > 1_000_000:
            raise RecipeError(f"The recipe file {p.name} is larger than 1 MB; a recipe is a few lines of YAML.")
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"The recipe file {p.name} is not a text file ({exc}).") from None
