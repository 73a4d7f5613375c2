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

With ``constraint="free"`` (the user allows it; CLI ``--free-weights``) the weights are unconstrained
real numbers instead — negative, or summing to more or less than 1 — searched directly (Adam on the
weights, or coordinate steps), starting from the softmax weights, with the pull measured as the squared
L2 distance to them. The merge is then exactly ``sum(w_i * theta_i)``: method linear with
``normalize: false``, which the returned recipe records. Extrapolating past a fine-tune (e.g. ``[-0.5,
1.5]`` on base and fine-tune) can lower the loss where no weighted average does.

Only the models with a softmax weight above 0 are tuned (``top_k`` stays honoured) and an ``alpha``
share stays fixed: the optimizer splits the rest.

Five examples are easy to overfit, and a merge that only minimizes their loss drifts to the fine-tune,
which forgets (``real-model-findings``). Two guards:

1. a pull toward the softmax weights: ``objective = loss + pull * KL(q || q_softmax)`` (squared L2 for
   free weights);
2. for decoders with a known base model, a drift guard: the base's own greedy answers to a few built-in
   general prompts, whose loss under the merge ("self-NLL") measures forgetting; self-NLL above the
   softmax merge's (plus a small relative tolerance) is penalized during the search, and a candidate
   over it is never kept. The optimizer therefore never returns a merge that forgets more than
   LM-Cocktail's own mix.

Among the candidates the search visits, the one with the lowest ``loss + pull * KL`` (or L2) that
passes the guards is taken.

The optimized weights are kept only when the merge they give — computed exactly as the written merge
(:func:`~cocktail_core.engine.merge_tensor`, cast to the output dtype) — has an example loss no worse
than the softmax merge's; otherwise the softmax weights stay. Both losses are reported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from cocktail_core.drift import GENERAL_PROMPTS, drift_ok, greedy_answers, make_drift_task
from cocktail_core.examples import Example, ExamplesLike, TextExample, load_examples
from cocktail_core.optimize.evaluators import InMemoryEvaluator, make_evaluator
from cocktail_core.optimize.options import Constraint, OptimizeOptions
from cocktail_core.optimize.problem import Problem
# Called through these module-level names, so a search can be swapped in (the tests replace one).
from cocktail_core.optimize.search import gradient_search as _gradient_search
from cocktail_core.optimize.search import pattern_search as _pattern_search
from cocktail_core.recipe import ModelRef, Recipe
from cocktail_core.softmax import DEFAULT_TEMPERATURE, check_softmax_args, softmax_weights
from cocktail_core.weight_inputs import (check_constraint, index_of, is_parsed, optimizer_recipe, resolve_kind,
                                         resolve_models)
from cocktail_core.weights_result import WeightsResult

ProgressFn = Callable[[Any], None]


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
    constraint: Constraint = "simplex",
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
    sources: Sequence[Any] | None = None,
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
        constraint: what the optimizer may do with the weights. ``"simplex"`` (default): non-negative,
            summing to 1. ``"free"`` (needs ``optimize``; method linear): any real weights, negative ones
            and any sum, merged without normalization as exactly ``sum(w_i * theta_i)`` — the result's
            recipe is linear with ``normalize: false``.
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
        sources: the models' already inspected sources (:func:`cocktail_core.io.sources.inspect`), in
            order, so their configs and headers are not read again.

    Returns:
        A :class:`WeightsResult`: every model's loss, the weights, and the merged losses when optimizing.

    Raises:
        ExamplesError: malformed examples, a format that does not fit the kind, examples longer than
            the context — raised before any model is loaded.
        ScoringError: a model cannot be scored (an answer truncated away, a non-finite loss, models of
            different kinds).
        RecipeError: bad options (temperature, top_k, alpha, fewer than two models, a ``"free"``
            constraint without ``optimize`` or with a method other than linear).
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
    recipe, refs = resolve_models(models, base_recipe)
    names = [str(r) for r in refs]
    alpha_index = index_of(alpha_model, refs, "alpha_model") if alpha_model is not None else None
    check_softmax_args(len(refs), temperature, top_k, alpha, alpha_index)
    check_constraint(constraint, optimize, recipe)
    base_ref = base if base is not None else (recipe.base if recipe is not None else None)
    base_index = index_of(base_ref, refs, "base") if base_ref is not None else None

    parsed = load_examples(examples) if not is_parsed(examples) else list(examples)  # type: ignore[arg-type]
    from cocktail_core.io.sources import inspect, materialize

    if sources is None or len(sources) != len(refs) or any(s is None for s in sources):
        sources = [inspect(r, token=token) for r in refs]
    sources = list(sources)
    kind = resolve_kind(kind or (recipe.kind if recipe is not None else None), sources)
    parsed = load_examples(parsed, kind=kind)  # the format must fit the kind: checked before any loading

    merge_recipe: Recipe | None = None
    if optimize:
        merge_recipe = optimizer_recipe(recipe, names, kind, base_index, constraint)
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
        alpha_model=names[alpha_index] if alpha_index is not None else None, constraint=constraint,
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


def _build_tasks(sources: list[Any], examples: list[Example], kind: str, **options: Any) -> list[Any]:
    """Each model's scoring task: the examples encoded with its own tokenizer."""
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
    """One model's per-example losses and, with ``drift`` (the base model), its greedy answers."""
    from cocktail_core.scoring import task_losses

    then = (lambda loaded: greedy_answers(loaded, task, drift)) if drift is not None else None
    per, answers = task_losses(folder, task, kind, device=device, trust_remote_code=trust_remote_code, then=then)
    return [float(x) for x in per], answers


def _optimize(result: WeightsResult, recipe: Recipe, sources: list[Any], tasks: list[Any],
              drift_examples: list[TextExample] | None, options: OptimizeOptions, *, alpha_index: int | None,
              chat_template: bool, device: str | None, trust_remote_code: bool, token: str | None,
              report: ProgressFn) -> None:
    """Fill ``result`` with the merged losses and, when better, the optimized weights."""
    from cocktail_core import methods
    from cocktail_core.engine import ProgressUpdate

    soft = result.softmax_weights
    free = [i for i, w in enumerate(soft) if w > 0 and i != alpha_index]
    problem = Problem(soft, free, alpha_index, result.alpha, result.constraint)
    donor = recipe.refs.index(recipe.tokenizer_donor())
    task = tasks[donor]
    drift_task = make_drift_task(drift_examples, task, sources[donor], chat_template) if drift_examples else None
    method = methods.get(recipe.method)
    evaluator = make_evaluator(recipe, sources, task, drift_task, device, trust_remote_code, token)
    in_memory = isinstance(evaluator, InMemoryEvaluator)
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
        within_drift = drift_ok(final, base_eval, options)
        if final.loss <= base_eval.loss and within_drift:
            result.weights = w
            result.method = "softmax+optimized"
        elif not within_drift:
            result.notes.append(f"the optimized merge drifts more from the base ({final.drift:.4f} > "
                                f"{base_eval.drift:.4f}); kept the softmax weights")
        else:
            result.notes.append(f"the optimized merge's loss {final.loss:.4f} is above the softmax merge's "
                                f"{base_eval.loss:.4f}; kept the softmax weights")
        tick(total, "done")
    finally:
        evaluator.close()


__all__ = ["compute_weights", "softmax_weights", "WeightsResult", "OptimizeOptions", "Constraint", "GENERAL_PROMPTS",
           "DEFAULT_TEMPERATURE"]
