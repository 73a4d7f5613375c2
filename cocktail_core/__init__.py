"""Cocktail core: merge language models LM-Cocktail style.

Example:
    >>> from cocktail_core import Recipe, merge
    >>> recipe = Recipe.from_lists(["org/base", "./my-finetune"], [0.4, 0.6], dtype="bfloat16")
    >>> result = merge(recipe, "out/cocktail")

Heavy modules (torch, huggingface_hub) load on first use, so the CLI starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cocktail_core.errors import CocktailError, PreflightError, RecipeError, format_error
from cocktail_core.recipe import ModelRef, Recipe

if TYPE_CHECKING:
    from cocktail_core.engine import MergeResult, ProgressUpdate, merge
    from cocktail_core.compat import PreflightReport, preflight
    from cocktail_core.weights import WeightsResult, compute_weights

_LAZY = {
    "merge": "cocktail_core.engine", "MergeResult": "cocktail_core.engine", "ProgressUpdate": "cocktail_core.engine",
    "preflight": "cocktail_core.compat", "PreflightReport": "cocktail_core.compat",
    "compute_weights": "cocktail_core.weights", "WeightsResult": "cocktail_core.weights",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["Recipe", "ModelRef", "merge", "MergeResult", "ProgressUpdate", "preflight", "PreflightReport",
           "compute_weights", "WeightsResult", "CocktailError", "RecipeError", "PreflightError", "format_error"]
