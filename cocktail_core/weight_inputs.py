"""Checking and resolving :func:`~cocktail_core.weights.compute_weights`' inputs.

The models (a list or a recipe), the base and alpha models among them, the model kind, the weight
constraint and the recipe the optimizer merges with — all before any model is downloaded or loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from cocktail_core import settings
from cocktail_core.errors import RecipeError, ScoringError
from cocktail_core.examples import RetrievalExample, TextExample
from cocktail_core.recipe import ModelRef, Recipe


def is_parsed(examples: Any) -> bool:
    """True when ``examples`` is a non-empty list of already-parsed examples."""
    return isinstance(examples, (list, tuple)) and bool(examples) and all(
        isinstance(e, (TextExample, RetrievalExample)) for e in examples)


def resolve_models(models: Sequence[str | ModelRef] | Recipe, base_recipe: Recipe | None
                   ) -> tuple[Recipe | None, list[ModelRef]]:
    """The recipe the weights are for (``None`` without one) and the model references, checked.

    Raises:
        RecipeError: two different recipes, a method that does not use weights, fewer than two models,
            a model listed twice, more models than allowed, or ``base_recipe`` lists other models.
    """
    if isinstance(models, Recipe):
        if base_recipe is not None and base_recipe.refs != models.refs:
            raise RecipeError("Give the models either as a recipe or with base_recipe, not two different recipes.")
        base_recipe = models
    if base_recipe is not None:
        from cocktail_core import methods

        if not methods.get(base_recipe.method).uses_weights:
            raise RecipeError(f"Method '{base_recipe.method}' does not use weights, so examples cannot set them.",
                              hint="Use linear (LM-Cocktail), task_arithmetic, ties or dare_* with examples.")
    if isinstance(models, Recipe):
        return models, list(models.refs)
    if isinstance(models, (str, ModelRef)):
        models = [models]
    refs = [ModelRef.parse(m) for m in models]
    if len(refs) < 2:
        raise RecipeError(f"Weights need at least two models to mix; got {len(refs)}.",
                          hint="Give the base and its fine-tunes, e.g. --models org/base org/chat ./my-finetune.")
    seen: set[str] = set()
    for r in refs:
        if str(r) in seen:
            raise RecipeError(f"Model {r} is listed twice.")
        seen.add(str(r))
    limit = settings.get().max_models
    if len(refs) > limit:
        raise RecipeError(f"{len(refs)} models given; this installation allows at most {limit}.")
    if base_recipe is not None:
        if [str(r) for r in base_recipe.refs] != [str(r) for r in refs]:
            raise RecipeError("base_recipe lists other models (or another order) than models.",
                              hint="Pass the recipe itself as models.")
        return base_recipe, refs
    return None, refs


def index_of(ref: str | ModelRef, refs: list[ModelRef], what: str) -> int:
    """Where ``ref`` stands in ``refs`` (a reference without revision, or a folder spelled otherwise, matches).

    Raises:
        RecipeError: ``ref`` is not one of ``refs`` (``what`` names the option in the message).
    """
    r = ModelRef.parse(ref)
    for i, x in enumerate(refs):
        if x == r or str(x) == str(r) or (r.revision is None and x.path == r.path):
            return i
    for i, x in enumerate(refs):  # a folder given by another spelling of its path
        if x.is_local and r.is_local and Path(x.path).expanduser().resolve() == Path(r.path).expanduser().resolve():
            return i
    raise RecipeError(f"{what} {r} is not one of the models ({', '.join(str(x) for x in refs)}).")


def resolve_kind(kind: str | None, sources: list[Any]) -> str:
    """``kind`` when given (checked), else the kind detected from the models' configs.

    Raises:
        RecipeError: an unknown kind.
        ScoringError: the models are of different kinds.
    """
    from cocktail_core.io.sources import detect_kind
    from cocktail_core.recipe import KINDS

    if kind is not None:
        if kind not in KINDS:
            raise RecipeError(f"Unknown model kind {kind!r}.", hint=f"Expected one of: {', '.join(KINDS)}.")
        return kind
    kinds = {detect_kind(s.config): str(s.ref) for s in sources}
    if len(kinds) > 1:
        listing = ", ".join(f"{r} is {k}" for k, r in kinds.items())
        raise ScoringError(f"The models are of different kinds ({listing}).",
                           hint="Mix models of one kind, or give the kind explicitly (--kind).")
    return next(iter(kinds))


def check_constraint(constraint: str, optimize: bool, recipe: Recipe | None) -> None:
    """Check the optimizer's ``constraint`` (``"simplex"`` or ``"free"``) before anything is loaded.

    Raises:
        RecipeError: an unknown constraint, or ``"free"`` without ``optimize`` or with a method other than
            linear (free weights are merged as exactly ``sum(w_i * theta_i)``).
    """
    from cocktail_core.optimize.options import CONSTRAINTS

    if constraint not in CONSTRAINTS:
        raise RecipeError(f"Unknown weight constraint {constraint!r}.",
                          hint=f"Expected one of: {', '.join(CONSTRAINTS)}.")
    if constraint == "free" and not optimize:
        raise RecipeError("Free weights (constraint 'free') need the optimizer (optimize=True / --optimize).",
                          hint="The softmax weights alone are always non-negative and sum to 1.")
    if constraint == "free" and recipe is not None and recipe.method != "linear":
        raise RecipeError(f"Free weights are merged as sum(w_i * theta_i), which is method linear; the recipe uses "
                          f"'{recipe.method}'.", hint="Use method linear, or keep the weights on the simplex.")


def optimizer_recipe(recipe: Recipe | None, names: list[str], kind: str, base_index: int | None,
                     constraint: str = "simplex") -> Recipe:
    """The recipe the optimizer merges with: ``recipe`` with its kind filled, else a linear one of ``names``.

    With free weights it is linear with ``normalize: false`` (the merge is exactly ``sum(w_i * theta_i)``).
    """
    if recipe is None:
        extra: dict[str, Any] = {"kind": kind}
        if base_index is not None:
            extra["base"] = names[base_index]
        recipe = Recipe.from_lists(names, None, **extra)
    elif not recipe.kind:
        recipe = Recipe.validated({**recipe.to_dict(), "kind": kind})
    if constraint == "free":
        recipe = Recipe.validated({**recipe.to_dict(), "params": {**recipe.params, "normalize": False}})
    return recipe


__all__ = ["is_parsed", "resolve_models", "index_of", "resolve_kind", "check_constraint", "optimizer_recipe"]
