"""Mixing weights from a handful of examples: LM-Cocktail's rule, and merges optimized on the examples.

LM-Cocktail scores every candidate model on ~5 examples of the target task and sets
``weights = softmax(-loss / T)`` (:func:`softmax_weights`). :func:`compute_weights` does that one model
at a time (never all in memory), in each model's own dtype, on the accelerate device, and returns a
:class:`WeightsResult` that fills a :class:`~cocktail_core.recipe.Recipe`.

With ``optimize=True`` it goes further and searches the weights that minimize the *merged* model's
own loss on the examples, starting from the softmax weights:

* **gradient descent** (method ``linear``, inputs fit in memory): every ingredient's float tensors are
  loaded once (float32); the weights are a softmax over logits (so they stay non-negative and sum to
  1), the merged parameters are their linear combination (what ``linear`` computes), and
  :func:`torch.func.functional_call` on one model skeleton gives the loss and its gradient w.r.t. the
  logits; a few dozen Adam steps (:class:`OptimizeOptions`).
* **gradient-free pattern search** otherwise: moves the weights toward one model at a time and halves
  the step when nothing improves. Other methods (ties, dare, task_arithmetic) are evaluated with
  in-memory merges through :func:`~cocktail_core.engine.merge_tensor`; inputs too big for memory with
  real merges streamed by the engine into a temporary folder, then loaded and scored (memory-flat,
  one model at a time, so only a handful of evaluations).

"Fits in memory" means: the inputs' float32 size together is at most ``COCKTAIL_IN_MEMORY_MAX_MB``
(2 GB by default); peak use is about that plus three float32 model copies (the skeleton, the merged
parameters and their gradient). On a GPU that lacks room for it the optimization runs on the CPU.

Only the models with a softmax weight above 0 are tuned (``top_k`` stays honoured) and an ``alpha``
share stays fixed: the optimizer splits the rest.

Five examples are easy to overfit, and a merge that only minimizes their loss drifts to the fine-tune,
which forgets (``real-model-findings``). Two guards:

1. a pull toward the softmax weights: ``objective = loss + pull * KL(q || q_softmax)``;
2. for decoders with a known base model, a drift guard: the base's own greedy answers to a few built-in
   general prompts, whose loss under the merge ("self-NLL") measures forgetting; self-NLL above the
   softmax merge's (plus a small relative tolerance) is penalized during the search, and a candidate
   over it is never kept. The optimizer therefore never returns a merge that forgets more than
   LM-Cocktail's own mix.

Among the candidates the search visits, the one with the lowest ``loss + pull * KL`` that passes the
guards is taken.

The optimized weights are kept only when the merge they give — computed exactly as the written merge
(:func:`~cocktail_core.engine.merge_tensor`, cast to the output dtype) — has an example loss no worse
than the softmax merge's; otherwise the softmax weights stay. Both losses are reported.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from cocktail_core import settings
from cocktail_core.errors import RecipeError, ScoringError
from cocktail_core.examples import Example, ExamplesLike, TextExample, load_examples
from cocktail_core.recipe import ModelRef, Recipe, WeightsProvenance

ProgressFn = Callable[[Any], None]

DEFAULT_TEMPERATURE = 5.0

#: general prompts whose greedy answers by the base model measure a merge's drift (decoders)
GENERAL_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "What is 7 plus 5?",
    "What colour is the sky on a clear day?",
    "Name three fruits.",
    "Who wrote Romeo and Juliet?",
    "What is the opposite of hot?",
    "Write one sentence about the ocean.",
    "How many days are in a week?",
)


@dataclass(frozen=True)
class OptimizeOptions:
    """Knobs of the merge optimizer (the defaults suit ~5 examples).

    Attributes:
        steps: Adam steps of the gradient optimizer.
        lr: Adam learning rate on the weight logits.
        pull: weight of ``KL(q || q_softmax)`` in the objective (pull toward the softmax weights).
        drift_tolerance: a candidate's base self-NLL may exceed the softmax merge's by this fraction.
        drift_prompts: prompts answered greedily by the base model to measure drift.
        drift_new_tokens: longest greedy answer.
        max_evals: merge evaluations of the gradient-free search (in-memory merges).
        max_streamed_evals: merge evaluations when each one is a streamed merge to disk.
    """

    steps: int = 30
    lr: float = 0.1
    pull: float = 0.1
    drift_tolerance: float = 0.02
    drift_prompts: tuple[str, ...] = GENERAL_PROMPTS
    drift_new_tokens: int = 24
    max_evals: int = 24
    max_streamed_evals: int = 8


@dataclass
class WeightsResult:
    """Weights computed from examples, with everything needed to judge and reproduce them.

    Attributes:
        models: the model references (``org/name@rev`` or folders), in order.
        losses: each model's mean loss on the examples.
        weights: the chosen weights (sum to 1): the optimized ones when kept, else the softmax ones.
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
            alpha_model=self.alpha_model,
        )

    def to_recipe(self, recipe: Recipe | None = None, **recipe_kwargs: Any) -> Recipe:
        """A recipe with these weights and ``weights_from`` filled.

        Args:
            recipe: the recipe to fill (its models must be ``models``, in order); ``None`` builds a
                linear recipe of ``models``.
            recipe_kwargs: other recipe fields (``dtype``, ``base``, ``method``, ...).

        Returns:
            The new :class:`~cocktail_core.recipe.Recipe` (the input is not modified).

        Raises:
            RecipeError: the recipe's models differ from ``models``, or a field is invalid.

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
                     + f", {self.seconds:.1f} s; weights: {self.method}.")
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


# -- the LM-Cocktail rule ---------------------------------------------------------------------------


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
    _check_softmax_args(len(losses), temperature, top_k, alpha, alpha_index)
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


def _check_softmax_args(n: int, temperature: float, top_k: int | None, alpha: float | None,
                        alpha_index: int | None) -> None:
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


# -- computing the weights --------------------------------------------------------------------------


def compute_weights(
    models: Sequence[str | ModelRef] | Recipe,
    examples: ExamplesLike,
    *,
    kind: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = None,
    alpha: float | None = None,
    alpha_model: str | ModelRef | None = None,
    optimize: bool = False,
    seed: int = 0,
    token: str | None = None,
    progress: ProgressFn | None = None,
    chat_template: bool = True,
    max_length: int | None = None,
    base_recipe: Recipe | None = None,
    base: str | ModelRef | None = None,
    neg_number: int = 7,
    trust_remote_code: bool = False,
    device: str | None = None,
    optimize_options: OptimizeOptions | None = None,
) -> WeightsResult:
    """Compute LM-Cocktail mixing weights for ``models`` from a few ``examples`` (and optionally optimize them).

    Args:
        models: model references (Hub ``org/name[@rev]`` or local folders), or a recipe (its models, base,
            method and kind are used).
        examples: a ``.json`` / ``.jsonl`` file, JSON / JSONL text, a list of dicts or parsed examples:
            ``{"input", "output"}`` for decoders and encoder-decoders, ``{"query", "pos", "neg"}`` for
            embedding models and rerankers (see :mod:`cocktail_core.examples`).
        kind: model kind; default the recipe's, else detected from the configs.
        temperature: softmax temperature (5, LM-Cocktail's default); smaller favours the best model.
        top_k: keep only the k lowest-loss models.
        alpha: fixed share of ``alpha_model`` (the fine-tune); the others share ``1 - alpha``.
        alpha_model: the model that gets ``alpha`` (one of ``models``).
        optimize: then search the weights minimizing the merged model's loss on the examples (guarded).
        seed: seed of the negative sampling (embedding models, rerankers).
        token: Hub token for private or gated models.
        progress: called with :class:`~cocktail_core.engine.ProgressUpdate` (stages ``score``, ``optimize``).
        chat_template: decoders: wrap prompts in the tokenizer's chat template when it has one.
        max_length: truncate longer examples to this many tokens; without it an example longer than a
            model's context is an error.
        base_recipe: the recipe the weights are for (method, base, dtype, tokenizer source); with a list
            of ``models`` its models must be the same, in order.
        base: the base model (one of ``models``), whose own answers guard the optimized merge against
            drift; default the recipe's base.
        neg_number: most negatives per example (embedding models, rerankers).
        trust_remote_code: allow models' own code (off unless asked).
        device: compute device (default the accelerate device).
        optimize_options: knobs of the optimizer (:class:`OptimizeOptions`).

    Returns:
        A :class:`WeightsResult`: every model's loss, the weights, and the merged losses when optimizing.

    Raises:
        ExamplesError: malformed examples, a format that does not fit the kind, examples longer than
            the context — raised before any model is loaded.
        ScoringError: a model cannot be scored (an answer truncated away, a non-finite loss, models of
            different kinds).
        RecipeError: bad options (temperature, top_k, alpha, fewer than two models).
        PreflightError: ``optimize`` and the models cannot be merged.

    Example:
        >>> result = compute_weights(["org/base", "org/chat", "./my-finetune"], "examples.jsonl")
        >>> result.weights
        [0.31, 0.33, 0.36]
        >>> recipe = result.to_recipe(dtype="bfloat16")
    """
    from cocktail_core.engine import ProgressUpdate

    started = time.perf_counter()
    report = progress or (lambda update: None)
    options = optimize_options or OptimizeOptions()
    recipe, refs = _resolve_models(models, base_recipe)
    names = [str(r) for r in refs]
    alpha_index = _index_of(alpha_model, refs, "alpha_model") if alpha_model is not None else None
    _check_softmax_args(len(refs), temperature, top_k, alpha, alpha_index)
    base_ref = base if base is not None else (recipe.base if recipe is not None else None)
    base_index = _index_of(base_ref, refs, "base") if base_ref is not None else None

    parsed = load_examples(examples) if not _is_parsed(examples) else list(examples)  # type: ignore[arg-type]
    from cocktail_core.io.sources import inspect, materialize

    sources = [inspect(r, token=token) for r in refs]
    kind = _resolve_kind(kind or (recipe.kind if recipe is not None else None), sources)
    parsed = load_examples(parsed, kind=kind)  # the format must fit the kind: checked before any loading

    merge_recipe: Recipe | None = None
    if optimize:
        merge_recipe = _merge_recipe(recipe, names, kind, base_index)
        from cocktail_core.compat import preflight

        preflight(merge_recipe, token=token, sources=sources).raise_for_problems()

    # Download, then encode the examples for every tokenizer (length problems surface before scoring).
    local = []
    for i, src in enumerate(sources):
        if not src.is_local:
            report(ProgressUpdate("score", i, len(sources), f"downloading {src.ref}"))
        local.append(materialize(src, token=token))
    tasks = _build_tasks(local, parsed, kind, chat_template=chat_template, max_length=max_length, seed=seed,
                         neg_number=neg_number, trust_remote_code=trust_remote_code)

    drift_examples: list[TextExample] | None = None
    want_drift = optimize and kind == "decoder" and base_index is not None and bool(options.drift_prompts)
    per_example: list[list[float]] = []
    for i, (src, task) in enumerate(zip(local, tasks)):
        report(ProgressUpdate("score", i, len(local), f"scoring {src.ref.display_name}"))
        per, answers = _score_one(src.folder, task, kind, device=device, trust_remote_code=trust_remote_code,
                                  drift=options if want_drift and i == base_index else None)
        per_example.append(per)
        if answers is not None:
            drift_examples = answers
    report(ProgressUpdate("score", len(local), len(local), "scored every model"))
    losses = [sum(p) / len(p) for p in per_example]
    soft = softmax_weights(losses, temperature, top_k, alpha, alpha_index)

    result = WeightsResult(
        models=names, losses=losses, weights=list(soft), method="softmax", temperature=float(temperature),
        seed=seed, seconds=0.0, n_examples=len(parsed), kind=kind, softmax_weights=list(soft),
        per_example_losses=per_example, top_k=top_k, alpha=alpha,
        alpha_model=names[alpha_index] if alpha_index is not None else None,
    )
    if optimize:
        assert merge_recipe is not None
        if want_drift and not drift_examples:
            result.notes.append("the base model gave no usable answers to the general prompts; drift guard off")
        elif kind == "decoder" and base_index is None:
            result.notes.append("no base model named, so the drift guard is off (only the pull toward the "
                                "softmax weights guards against overfitting); pass base= / --base to enable it")
        if drift_examples and base_index is not None:
            result.drift_reference = names[base_index]
        _optimize(result, merge_recipe, local, tasks, drift_examples, options, alpha_index=alpha_index,
                  chat_template=chat_template, device=device, trust_remote_code=trust_remote_code,
                  token=token, report=report)
    result.seconds = time.perf_counter() - started
    return result


def _is_parsed(examples: Any) -> bool:
    from cocktail_core.examples import RetrievalExample

    return isinstance(examples, (list, tuple)) and bool(examples) and all(
        isinstance(e, (TextExample, RetrievalExample)) for e in examples)


def _resolve_models(models: Sequence[str | ModelRef] | Recipe, base_recipe: Recipe | None
                    ) -> tuple[Recipe | None, list[ModelRef]]:
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


def _index_of(ref: str | ModelRef, refs: list[ModelRef], what: str) -> int:
    r = ModelRef.parse(ref)
    for i, x in enumerate(refs):
        if x == r or str(x) == str(r) or (r.revision is None and x.path == r.path):
            return i
    for i, x in enumerate(refs):  # a folder given by another spelling of its path
        if x.is_local and r.is_local and Path(x.path).expanduser().resolve() == Path(r.path).expanduser().resolve():
            return i
    raise RecipeError(f"{what} {r} is not one of the models ({', '.join(str(x) for x in refs)}).")


def _resolve_kind(kind: str | None, sources: list[Any]) -> str:
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


def _merge_recipe(recipe: Recipe | None, names: list[str], kind: str, base_index: int | None) -> Recipe:
    if recipe is None:
        extra: dict[str, Any] = {"kind": kind}
        if base_index is not None:
            extra["base"] = names[base_index]
        return Recipe.from_lists(names, None, **extra)
    return recipe if recipe.kind else Recipe.validated({**recipe.to_dict(), "kind": kind})


def _build_tasks(sources: list[Any], examples: list[Example], kind: str, **options: Any) -> list[Any]:
    from cocktail_core.scoring import load_tokenizer, make_task

    trust = options.pop("trust_remote_code", False)
    tasks = []
    for src in sources:
        tokenizer = load_tokenizer(src.folder, trust_remote_code=trust)
        tasks.append(make_task(kind, examples, tokenizer=tokenizer, config=src.config, folder=src.folder,
                               name=src.ref.display_name, **options))
    return tasks


def _score_one(folder: Path, task: Any, kind: str, *, device: str | None, trust_remote_code: bool,
               drift: OptimizeOptions | None) -> tuple[list[float], list[TextExample] | None]:
    import torch

    from cocktail_core.scoring import _check_finite, load_model

    loaded = load_model(folder, kind, device=device, trust_remote_code=trust_remote_code, tokenizer=task.tokenizer)
    try:
        with torch.no_grad():
            per = task.example_losses(loaded.model).detach().float().cpu()
            answers = _greedy_answers(loaded, task, drift) if drift is not None else None
    finally:
        loaded.close()
    _check_finite(per, folder.name, task)
    return [float(x) for x in per], answers


def _greedy_answers(loaded: Any, task: Any, options: OptimizeOptions) -> list[TextExample]:
    """The base model's own greedy answers to the general prompts (the drift probe)."""
    import torch

    model, tok = loaded.model, task.tokenizer
    eos = task.eos_id
    out: list[TextExample] = []
    for i, prompt in enumerate(options.drift_prompts):
        ids = task.prompt_ids(prompt)
        room = task.context - len(ids) - 1 if task.context else options.drift_new_tokens
        n_new = min(options.drift_new_tokens, room)
        if n_new < 1:
            continue
        inp = torch.tensor([ids], device=loaded.device)
        gen = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=n_new,
                             do_sample=False, pad_token_id=eos if eos is not None else 0,
                             eos_token_id=eos)
        new = gen[0, len(ids):].tolist()
        if eos is not None and eos in new:
            new = new[: new.index(eos)]
        text = tok.decode(new, skip_special_tokens=True)
        if text.strip():
            out.append(TextExample(prompt=prompt, answer=text, index=i))
    return out


# -- optimizing the merge ---------------------------------------------------------------------------


@dataclass
class _Eval:
    loss: float
    drift: float | None


class _Problem:
    """The merged-model loss as a function of the free weights, for one recipe.

    The weights are ``w = fixed + share * q`` where ``q`` lives on the simplex of the ``free`` models
    (those with a softmax weight > 0 and not the alpha model); ``fixed`` holds the alpha share.
    """

    def __init__(self, recipe: Recipe, soft: list[float], free: list[int], alpha_index: int | None,
                 alpha: float | None) -> None:
        self.recipe = recipe
        self.soft = soft
        self.free = free
        self.share = 1.0 - alpha if alpha is not None else 1.0
        self.fixed = [0.0] * len(soft)
        if alpha is not None and alpha_index is not None:
            self.fixed[alpha_index] = float(alpha)
        total = sum(soft[i] for i in free)
        self.q_soft = [soft[i] / total for i in free]

    def weights(self, q: Sequence[float]) -> list[float]:
        w = list(self.fixed)
        for i, qi in zip(self.free, q):
            w[i] = self.share * float(qi)
        return w

    def kl(self, q: Sequence[float]) -> float:
        return sum(float(a) * math.log(max(float(a), 1e-12) / b) for a, b in zip(q, self.q_soft) if a > 0)


def _optimize(result: WeightsResult, recipe: Recipe, sources: list[Any], tasks: list[Any],
              drift_examples: list[TextExample] | None, options: OptimizeOptions, *, alpha_index: int | None,
              chat_template: bool, device: str | None, trust_remote_code: bool, token: str | None,
              report: ProgressFn) -> None:
    """Fill ``result`` with the merged losses and, when better, the optimized weights."""
    import torch

    from cocktail_core import methods
    from cocktail_core.compat import reference_index
    from cocktail_core.engine import ProgressUpdate, compute_device

    soft = result.softmax_weights
    free = [i for i, w in enumerate(soft) if w > 0 and i != alpha_index]
    problem = _Problem(recipe, soft, free, alpha_index, result.alpha)
    donor = recipe.refs.index(recipe.tokenizer_donor())
    task = tasks[donor]
    drift_task = None
    if drift_examples:
        from cocktail_core.scoring import make_task

        drift_task = make_task("decoder", drift_examples, tokenizer=task.tokenizer, config=sources[donor].config,
                               name=sources[donor].ref.display_name, chat_template=chat_template,
                               max_length=task.context)
    method = methods.get(recipe.method)
    n_float = sum(t.numel for t in sources[reference_index(recipe)].tensors.values() if t.is_float)
    fp32_inputs = 4 * n_float * len(sources)
    in_memory = fp32_inputs <= settings.get().in_memory_max_mb * 2**20
    dev = torch.device(device) if device is not None else compute_device()
    if in_memory and dev.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(dev.index if dev.index is not None else torch.cuda.current_device())
        if 4 * n_float * (len(sources) + 3) > 0.85 * free_bytes:
            dev = torch.device("cpu")

    if in_memory:
        evaluator: Any = _InMemory(recipe, sources, task, drift_task, dev, trust_remote_code)
    else:
        evaluator = _Streamed(recipe, sources, task, drift_task, device, trust_remote_code, token)
    gradient = in_memory and method.name == "linear"
    budget = options.steps if gradient else (options.max_evals if in_memory else options.max_streamed_evals)
    total = budget + 2  # the softmax merge, the search, the final check

    def tick(done: int, message: str) -> None:
        report(ProgressUpdate("optimize", min(done, total), total, message))

    try:
        tick(0, "evaluating the softmax merge")
        base_eval = evaluator.evaluate(problem.weights(problem.q_soft))
        result.merged_loss_softmax = base_eval.loss
        result.drift_softmax = base_eval.drift
        if len(free) < 2:
            result.notes.append("nothing to optimize: one model carries all the free weight")
            tick(total, "done")
            return
        if gradient:
            result.optimizer = "gradient"
            best_q, steps = _gradient_search(evaluator, problem, base_eval, options, tick)
        else:
            result.optimizer = "search" if in_memory else "streamed-search"
            best_q, steps = _pattern_search(evaluator, problem, base_eval, options, budget, tick)
        result.optimizer_steps = steps
        if best_q is None:
            result.notes.append("the optimizer found no weights better than the softmax ones within the guards; "
                                "kept the softmax weights")
            tick(total, "done")
            return
        tick(budget + 1, "evaluating the optimized merge")
        w = problem.weights(best_q)
        final = evaluator.evaluate(w)
        result.merged_loss_optimized = final.loss
        result.drift_optimized = final.drift
        drift_ok = _drift_ok(final, base_eval, options)
        if final.loss <= base_eval.loss and drift_ok:
            result.weights = w
            result.method = "softmax+optimized"
        elif not drift_ok:
            result.notes.append(f"the optimized merge drifts more from the base ({final.drift:.4f} > "
                                f"{base_eval.drift:.4f}); kept the softmax weights")
        else:
            result.notes.append(f"the optimized merge's loss {final.loss:.4f} is above the softmax merge's "
                                f"{base_eval.loss:.4f}; kept the softmax weights")
        tick(total, "done")
    finally:
        evaluator.close()


def _drift_ok(cand: _Eval, ref: _Eval, options: OptimizeOptions) -> bool:
    if cand.drift is None or ref.drift is None:
        return True
    return cand.drift <= ref.drift * (1.0 + options.drift_tolerance) + 1e-6


def _gradient_search(evaluator: "_InMemory", problem: _Problem, start: _Eval, options: OptimizeOptions,
                     tick: Callable[[int, str], None]) -> tuple[list[float] | None, int]:
    """Adam on the weight logits; returns the best guarded candidate seen (None when none beats the start)."""
    import torch

    logits = torch.tensor([math.log(max(q, 1e-12)) for q in problem.q_soft], dtype=torch.float32,
                          requires_grad=True)
    q_soft = torch.tensor(problem.q_soft, dtype=torch.float32)
    opt = torch.optim.Adam([logits], lr=options.lr)
    best: tuple[float, list[float]] | None = None
    steps = 0
    for step in range(options.steps + 1):
        q = torch.softmax(logits, dim=0)
        loss, drift = evaluator.differentiable(problem, q)
        kl = (q * (q.clamp_min(1e-12).log() - q_soft.log())).sum()
        objective = loss + options.pull * kl
        if drift is not None and start.drift is not None:
            cap = start.drift * (1.0 + options.drift_tolerance)
            objective = objective + torch.relu(drift - cap)
        cand = _Eval(float(loss.detach()), float(drift.detach()) if drift is not None else None)
        value = float(loss.detach()) + options.pull * float(kl.detach())
        if step > 0 and cand.loss < start.loss and _drift_ok(cand, start, options):
            if best is None or value < best[0]:
                best = (value, q.detach().tolist())
        tick(step + 1, f"step {step}: merged loss {cand.loss:.4f}")
        if step == options.steps:
            break
        opt.zero_grad()
        objective.backward()
        opt.step()
        steps += 1
    return (best[1] if best is not None else None), steps


def _pattern_search(evaluator: Any, problem: _Problem, start: _Eval, options: OptimizeOptions, budget: int,
                    tick: Callable[[int, str], None]) -> tuple[list[float] | None, int]:
    """Gradient-free: move the free weights toward one model at a time, halving the step when stuck."""
    q = list(problem.q_soft)
    f_cur = start.loss
    best: list[float] | None = None
    step = 0.5
    evals = 0
    order = sorted(range(len(q)), key=lambda j: -q[j])  # the favoured models first
    while evals < budget and step >= 1 / 64:
        improved = False
        for j in order:
            if evals >= budget:
                break
            cand_q = [(1 - step) * x + (step if k == j else 0.0) for k, x in enumerate(q)]
            e = evaluator.evaluate(problem.weights(cand_q))
            evals += 1
            tick(evals + 1, f"evaluation {evals}: merged loss {e.loss:.4f}")
            value = e.loss + options.pull * problem.kl(cand_q)
            if e.loss < start.loss and _drift_ok(e, start, options) and value < f_cur - 1e-9:
                q, f_cur, best, improved = cand_q, value, cand_q, True
                break
        if not improved:
            step /= 2
    return best, evals


class _InMemory:
    """Every ingredient's float tensors in memory (float32) and one model skeleton to run them."""

    def __init__(self, recipe: Recipe, sources: list[Any], task: Any, drift_task: Any, dev: Any,
                 trust_remote_code: bool) -> None:
        import torch

        from cocktail_core.compat import output_dtype_code, reference_index
        from cocktail_core.io.header import DTYPES
        from cocktail_core.io.reader import TensorReader
        from cocktail_core.scoring import load_model

        self.recipe, self.task, self.drift_task = recipe, task, drift_task
        ri = reference_index(recipe)
        self.ri = ri
        self.needs_base = _needs_base(recipe)
        self.loaded = load_model(sources[ri].folder, recipe.kind or task.kind, dtype=torch.float32, device=dev,
                                 trust_remote_code=trust_remote_code, tokenizer=task.tokenizer)
        model = self.loaded.model
        for p in model.parameters():
            p.requires_grad_(False)
        keys = set(model.state_dict().keys())
        prefix = getattr(model, "base_model_prefix", "") or ""
        ref_meta = sources[ri].tensors
        self.names: dict[str, str] = {}  # checkpoint tensor name -> model parameter name
        self.out_dtype: dict[str, Any] = {}
        self.stacks: dict[str, Any] = {}
        readers = [TensorReader(s.folder, s.tensors) for s in sources]
        device = self.loaded.device
        try:
            for name, meta in ref_meta.items():
                if not meta.is_float:
                    continue
                target = _match_key(name, keys, prefix)
                if target is None:
                    continue
                self.names[name] = target
                self.out_dtype[name] = DTYPES[output_dtype_code(recipe, meta.dtype)]
                self.stacks[name] = torch.stack([r.read(name).to(device, torch.float32) for r in readers])
        finally:
            for r in readers:
                r.close()

    def _params(self, w: Any, exact: bool) -> dict[str, Any]:
        import torch

        from cocktail_core.engine import merge_tensor

        params = {}
        if exact:
            recipe = self.recipe.with_weights([float(x) for x in w])
            for name, stack in self.stacks.items():
                merged = merge_tensor(recipe, name, list(stack.unbind(0)),
                                      base_index=self.ri if self.needs_base else None)
                params[self.names[name]] = merged.to(self.out_dtype[name]).to(torch.float32)
        else:
            for name, stack in self.stacks.items():
                params[self.names[name]] = torch.tensordot(w, stack, dims=1)
        return params

    def evaluate(self, weights: list[float]) -> _Eval:
        """The example loss (and drift) of the merge with ``weights``, computed as the engine merges."""
        import torch

        with torch.no_grad():
            params = self._params(weights, exact=True)
            loss = float(self.task.loss(self.loaded.model, params))
            drift = float(self.drift_task.loss(self.loaded.model, params)) if self.drift_task else None
        return _Eval(loss, drift)

    def differentiable(self, problem: _Problem, q: Any) -> tuple[Any, Any]:
        """Loss (and drift) as tensors differentiable w.r.t. ``q`` (linear merges only)."""
        import torch

        device = self.loaded.device
        w = torch.zeros(len(problem.soft), dtype=torch.float32, device=device)
        w = w + torch.tensor(problem.fixed, dtype=torch.float32, device=device)
        w = w.index_add(0, torch.tensor(problem.free, device=device), problem.share * q.to(device))
        if self.recipe.params.get("normalize", True):
            w = w / w.sum()
        params = self._params(w, exact=False)
        loss = self.task.loss(self.loaded.model, params).cpu()
        drift = self.drift_task.loss(self.loaded.model, params).cpu() if self.drift_task else None
        return loss, drift

    def close(self) -> None:
        self.stacks.clear()
        self.loaded.close()


class _Streamed:
    """Each evaluation is a real merge written by the engine to a temporary folder, then scored."""

    def __init__(self, recipe: Recipe, sources: list[Any], task: Any, drift_task: Any, device: str | None,
                 trust_remote_code: bool, token: str | None) -> None:
        self.recipe, self.task, self.drift_task = recipe, task, drift_task
        self.device, self.trust, self.token = device, trust_remote_code, token
        self.local_recipe = _local_recipe(recipe, sources)
        self.tmp = Path(tempfile.mkdtemp(prefix="cocktail-optimize-", dir=settings.get().work_dir))

    def evaluate(self, weights: list[float]) -> _Eval:
        import torch

        from cocktail_core.engine import merge
        from cocktail_core.scoring import load_model

        out = self.tmp / "merge"
        merge(self.local_recipe.with_weights(weights), out, overwrite=True, token=self.token)
        loaded = load_model(out, self.recipe.kind or self.task.kind, device=self.device,
                            trust_remote_code=self.trust, tokenizer=self.task.tokenizer)
        try:
            with torch.no_grad():
                loss = float(self.task.loss(loaded.model))
                drift = float(self.drift_task.loss(loaded.model)) if self.drift_task else None
        finally:
            loaded.close()
        return _Eval(loss, drift)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _local_recipe(recipe: Recipe, sources: list[Any]) -> Recipe:
    """The recipe with Hub models replaced by their downloaded folders (nothing re-downloaded per merge)."""
    data = recipe.to_dict()
    mapping = {}
    for entry, src in zip(data["models"], sources):
        if not src.is_local:
            mapping[entry["model"]] = str(src.folder)
            entry["model"] = str(src.folder)
    for key in ("base", "tokenizer_source"):
        if data.get(key) in mapping:
            data[key] = mapping[data[key]]
    data.pop("weights_from", None)
    return Recipe.validated(data)


def _needs_base(recipe: Recipe) -> bool:
    from cocktail_core import methods

    return methods.get(recipe.method).needs_base


def _match_key(name: str, keys: set[str], prefix: str) -> str | None:
    """The model's state-dict key for checkpoint tensor ``name`` (base-model prefix added or removed)."""
    if name in keys:
        return name
    if prefix and name.startswith(prefix + ".") and name[len(prefix) + 1:] in keys:
        return name[len(prefix) + 1:]
    if prefix and f"{prefix}.{name}" in keys:
        return f"{prefix}.{name}"
    return None


__all__ = ["compute_weights", "softmax_weights", "WeightsResult", "OptimizeOptions", "GENERAL_PROMPTS",
           "DEFAULT_TEMPERATURE"]
