"""The outcome of :func:`~cocktail_core.weights.compute_weights`: weights, losses and how they were chosen."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cocktail_core.errors import RecipeError
from cocktail_core.optimize.options import Constraint
from cocktail_core.recipe import ModelRef, Recipe, WeightsProvenance


@dataclass
class WeightsResult:
    """Weights computed from examples, with everything needed to judge and reproduce them.

    Attributes:
        models: the model references (``org/name@rev`` or folders), in order.
        losses: each model's mean loss on the examples.
        weights: the chosen weights: the optimized ones when kept, else the softmax ones. They sum to 1
            unless ``constraint`` is ``"free"`` (then they may also be negative).
        method: ``"softmax"`` or ``"softmax+optimized"``.
        temperature: the softmax temperature.
        seed: seed of the negative sampling (embedding models, rerankers).
        seconds: wall time.
        n_examples: how many examples.
        kind: the model kind.
        softmax_weights: LM-Cocktail's weights (equal to ``weights`` unless optimized).
        per_example_losses: ``[model][example]`` losses.
        top_k / alpha / alpha_model: the options used.
        merged_loss_softmax: example loss of the softmax-weighted merge (when optimizing).
        merged_loss_optimized: example loss of the best merge the optimizer found (when it found one;
            reported even when it was rejected, see ``notes``).
        drift_reference: the model whose own answers measure drift (the base), when the guard ran.
        drift_softmax / drift_optimized: self-NLL of the base's answers under the two merges.
        optimizer: ``"gradient"``, ``"search"`` or ``"streamed-search"`` when optimizing.
        optimizer_steps: steps or merge evaluations the optimizer used.
        constraint: ``"simplex"`` or ``"free"`` (the optimizer searched unconstrained weights; the recipe
            merges them with linear, ``normalize: false``).
        notes: what happened, in sentences (why an optimization was rejected, guards off, ...).
    """

    models: list[str]
    losses: list[float]
    weights: list[float]
    method: str
    temperature: float
    seed: int
    seconds: float
    n_examples: int
    kind: str
    softmax_weights: list[float] = field(default_factory=list)
    per_example_losses: list[list[float]] = field(default_factory=list)
    top_k: int | None = None
    alpha: float | None = None
    alpha_model: str | None = None
    merged_loss_softmax: float | None = None
    merged_loss_optimized: float | None = None
    drift_reference: str | None = None
    drift_softmax: float | None = None
    drift_optimized: float | None = None
    optimizer: str | None = None
    optimizer_steps: int = 0
    constraint: Constraint = "simplex"
    notes: list[str] = field(default_factory=list)

    @property
    def optimized(self) -> bool:
        """True when the optimized weights were kept."""
        return self.method == "softmax+optimized"

    def provenance(self) -> WeightsProvenance:
        """The :class:`~cocktail_core.recipe.WeightsProvenance` recorded in the recipe and the card."""
        return WeightsProvenance(
            n_examples=self.n_examples, temperature=self.temperature, losses=list(self.losses), seed=self.seed,
            optimized=self.optimized, merged_loss_softmax=self.merged_loss_softmax,
            merged_loss_optimized=self.merged_loss_optimized, top_k=self.top_k, alpha=self.alpha,
            alpha_model=self.alpha_model, constraint=self.constraint if self.constraint == "free" else None,
        )

    def to_recipe(self, recipe: Recipe | None = None, **recipe_kwargs: Any) -> Recipe:
        """A recipe with these weights and ``weights_from`` filled.

        With free weights (``constraint="free"``) the recipe is linear with ``normalize: false``, so that
        it merges exactly ``sum(w_i * theta_i)``.

        Args:
            recipe: the recipe to fill (its models must be ``models``, in order); ``None`` builds a
                linear recipe of ``models``.
            recipe_kwargs: other recipe fields (``dtype``, ``base``, ``method``, ...).

        Returns:
            The new :class:`~cocktail_core.recipe.Recipe` (the input is not modified).

        Raises:
            RecipeError: the recipe's models differ from ``models``, a field is invalid, or free weights
                for a method other than linear.

        Example:
            >>> result.to_recipe(dtype="bfloat16").weights_from.n_examples
            5
        """
        if recipe is None:
            recipe_kwargs.setdefault("kind", self.kind)
            recipe = Recipe.from_lists(list(self.models), list(self.weights), **recipe_kwargs)
        else:
            given = [str(r) for r in recipe.refs]
            if given != list(self.models):
                raise RecipeError(f"The recipe's models ({', '.join(given)}) are not the ones the weights were "
                                  f"computed for ({', '.join(self.models)}).",
                                  hint="Compute the weights for the recipe's models, in its order.")
            if recipe_kwargs:
                recipe = Recipe.validated({**recipe.to_dict(), **recipe_kwargs})
        if self.constraint == "free":
            if recipe.method != "linear":
                raise RecipeError(f"Free weights are merged as sum(w_i * theta_i) (method linear), not with "
                                  f"'{recipe.method}'.")
            recipe = Recipe.validated({**recipe.to_dict(), "params": {**recipe.params, "normalize": False}})
        return recipe.with_weights(list(self.weights), weights_from=self.provenance())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): ``models``, ``losses``, ``weights`` first, then the rest."""
        data = asdict(self)
        ordered = {k: data.pop(k) for k in ("models", "losses", "weights")}
        ordered.update(data)
        return ordered

    def table(self) -> str:
        """A text table of each model's loss and weight, and the merged losses when known."""
        names = [ModelRef.parse(m).display_name for m in self.models]
        width = max([len(n) for n in names] + [5])
        optimized = self.optimized
        head = f"{'model':<{width}}  {'loss':>9}  {'softmax':>8}" + (f"  {'weight':>8}" if optimized else "")
        lines = [head, "-" * len(head)]
        for name, loss, ws, w in zip(names, self.losses, self.softmax_weights or self.weights, self.weights):
            row = f"{name:<{width}}  {loss:>9.4f}  {ws:>8.4f}" + (f"  {w:>8.4f}" if optimized else "")
            lines.append(row)
        lines.append("")
        lines.append(f"{self.n_examples} example(s), {self.kind}, T={self.temperature:g}"
                     + (f", top-k {self.top_k}" if self.top_k else "")
                     + (f", alpha {self.alpha:g} for {self.alpha_model}" if self.alpha is not None else "")
                     + f", {self.seconds:.1f} s; weights: {self.method}"
                     + (" (free: may be negative, not normalized)." if self.constraint == "free" else "."))
        if self.merged_loss_softmax is not None:
            lines.append(f"merged loss on the examples: softmax {self.merged_loss_softmax:.4f}"
                         + (f", optimized {self.merged_loss_optimized:.4f}" if self.merged_loss_optimized is not None
                            else ""))
        if self.drift_softmax is not None:
            lines.append(f"drift (self-NLL of {ModelRef.parse(self.drift_reference or '').display_name}'s own "
                         f"answers): softmax {self.drift_softmax:.4f}"
                         + (f", optimized {self.drift_optimized:.4f}" if self.drift_optimized is not None else ""))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


__all__ = ["WeightsResult"]
