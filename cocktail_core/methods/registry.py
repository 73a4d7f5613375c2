"""The explicit list of merge methods, by name."""

from __future__ import annotations

from cocktail_core.errors import RecipeError
from cocktail_core.methods.base import MergeMethod
from cocktail_core.methods.dare import DareLinear, DareTies
from cocktail_core.methods.linear import Linear
from cocktail_core.methods.model_stock import ModelStock
from cocktail_core.methods.slerp import Slerp
from cocktail_core.methods.task_arithmetic import TaskArithmetic
from cocktail_core.methods.ties import Ties

_METHODS: dict[str, MergeMethod] = {
    m.name: m for m in (Linear(), TaskArithmetic(), Ties(), DareLinear(), DareTies(), Slerp(), ModelStock())
}


def available() -> list[str]:
    """Names of every merge method, ``linear`` first."""
    return list(_METHODS)


def get(name: str) -> MergeMethod:
    """The method called ``name``.

    Raises:
        RecipeError: for an unknown name, listing the valid ones.
    """
    try:
        return _METHODS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), list(_METHODS), n=1)
        did_you = f" Did you mean '{close[0]}'?" if close else ""
        raise RecipeError(
            f"Unknown merge method {name!r}.{did_you}", hint=f"Expected one of: {', '.join(_METHODS)}."
        ) from None
