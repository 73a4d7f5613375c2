"""The small interface every merge method implements.

A method is pure tensor math: it receives one float32 tensor per model (already on the compute
device), the mixing weights and, when it needs one, the base model's tensor, and returns the merged
tensor. It never touches files, the Hub or the UI, so the engine never branches on method names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cocktail_core.errors import RecipeError


@dataclass(frozen=True)
class Param:
    """A declared method parameter.

    Attributes:
        name: key in the recipe's ``params``.
        default: value used when the recipe omits it; its type is the parameter's type.
        help: one line for the CLI, the UI and the card.
        minimum / maximum: inclusive bounds for numbers.
    """

    name: str
    default: float | bool | int
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any, method: str) -> float | bool | int:
        kind = type(self.default)
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "false"}:
                return value.lower() == "true"
            raise RecipeError(f"Parameter '{self.name}' of method '{method}' must be true or false, got {value!r}.")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise RecipeError(f"Parameter '{self.name}' of method '{method}' must be a number, got {value!r}.") from None
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise RecipeError(
                f"Parameter '{self.name}' of method '{method}' is {number}; "
                f"it must be between {self.minimum} and {self.maximum}."
            )
        return number


class MergeMethod:
    """Base class of merge methods. Subclasses set the class attributes and implement :meth:`merge`."""

    name: ClassVar[str]
    pretty_name: ClassVar[str]
    reference_url: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[Param, ...]] = ()
    #: the engine passes the base tensor separately and the other models' tensors in ``tensors``
    needs_base: ClassVar[bool] = False
    #: the result of each element depends only on the same element of the inputs, so the engine may
    #: merge big tensors in slices to keep memory flat
    elementwise: ClassVar[bool] = False
    #: the method reads the per-model weights (slerp and model_stock do not)
    uses_weights: ClassVar[bool] = True
    allows_negative_weights: ClassVar[bool] = True
    min_models: ClassVar[int] = 2
    max_models: ClassVar[int | None] = None

    def validate_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Return the params with defaults filled in; unknown names are an error listing the valid ones."""
        params = dict(params or {})
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            expected = ", ".join(known) or "none"
            raise RecipeError(
                f"Method '{self.name}' has no parameter(s) {', '.join(map(repr, unknown))}; expected: {expected}."
            )
        return {name: p.coerce(params[name], self.name) if name in params else p.default for name, p in known.items()}

    def check_weights(self, weights: list[float], params: dict[str, Any] | None) -> list[str]:
        """Problems with the mixing weights for this method and these ``params`` (empty when fine).

        ``params`` are the recipe's method parameters (defaults filled in when omitted); a method may
        accept weights under some parameters and not others (``linear`` allows negative weights only
        without normalization).
        """
        problems = []
        if self.uses_weights and not self.allows_negative_weights:
            negative = [i for i, w in enumerate(weights) if w < 0]
            if negative:
                problems.append(
                    f"method '{self.name}' forbids negative weights (model #{', #'.join(str(i + 1) for i in negative)}); "
                    "use task_arithmetic to subtract a model"
                )
        return problems

    def merge(
        self,
        tensors: list[torch.Tensor],
        weights: list[float],
        base: torch.Tensor | None,
        params: dict[str, Any],
        *,
        generator: torch.Generator | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Merge float32 tensors of equal shape into one float32 tensor.

        ``out``, when given, is a preallocated float32 buffer of the result's shape that the method
        may write the result into (and return). The engine passes it together with input tensors
        that are its own scratch copies, which the method may then overwrite; methods that do not
        use ``out`` simply return a new tensor.
        """
        raise NotImplementedError
