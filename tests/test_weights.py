"""Weights from examples: the LM-Cocktail rule, the result object, and the guarded merge optimizer."""

from __future__ import annotations

import math
import shutil

import pytest

from cocktail_core import weights as weights_mod
from cocktail_core.engine import ProgressUpdate, merge
from cocktail_core.errors import ExamplesError, RecipeError, ScoringError
from cocktail_core.examples import load_examples
from cocktail_core.recipe import Recipe
from cocktail_core.scoring import score_model
from cocktail_core.weights import OptimizeOptions, WeightsResult, compute_weights, softmax_weights
from tests.fixtures.tuned import EXAMPLES

RETRIEVAL = [
    {"query": "capital of France", "pos": ["What is the capital city of France? The answer is Paris."],
     "neg": [f"negative passage number {i} about cats and rain" for i in range(6)]},
    {"query": "green tea", "pos": ["Every morning she drinks a cup of green tea with honey."],
     "neg": [f"the train {i} leaves from platform nine" for i in range(6)]},
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trio(tiny_llama_base, tiny_llama_ft1, tuned_llama):
    return [str(tiny_llama_base), str(tiny_llama_ft1), str(tuned_llama)]


# -- softmax_weights ----------------------------------------------------------------------------------


def test_softmax_weights_is_lm_cocktail_rule():
    w = softmax_weights([0.5, 1.0, 2.0], 5.0)
    expected = [math.exp(-x / 5) for x in (0.5, 1.0, 2.0)]
    assert w == pytest.approx([e / sum(expected) for e in expected])
    assert sum(w) == pytest.approx(1.0)


def test_temperature_limits():
    losses = [2.0, 0.7, 1.3]
    assert softmax_weights(losses, 1e-9) == [0.0, 1.0, 0.0]
    assert softmax_weights(losses, 0) == [0.0, 1.0, 0.0]
    assert softmax_weights([1.0, 1.0, 3.0], 0) == [0.5, 0.5, 0.0]  # ties share
    assert softmax_weights(losses, 1e12) == pytest.approx([1 / 3] * 3)
    assert softmax_weights(losses, math.inf) == pytest.approx([1 / 3] * 3)


def test_numerically_stable():
    w = softmax_weights([1e6, 1e6 + 1, 1e6 + 2], 1.0)
    assert all(math.isfinite(x) for x in w) and sum(w) == pytest.approx(1.0) and w[0] > w[1] > w[2]
    assert softmax_weights([1e-300, 5e3], 1e-3) == [1.0, 0.0]


def test_top_k_and_alpha():
    losses = [1.0, 2.0, 3.0, 0.5]
    w = softmax_weights(losses, 1.0, top_k=2)
    assert w[1] == w[2] == 0.0 and sum(w) == pytest.approx(1.0) and w[3] > w[0]
    w = softmax_weights(losses, 1.0, alpha=0.6, alpha_index=3)
    assert w[3] == 0.6 and sum(w[:3]) == pytest.approx(0.4)
    assert w[:3] == pytest.approx([0.4 * x for x in softmax_weights(losses[:3], 1.0)])
    w = softmax_weights(losses, 1.0, alpha=0.5, alpha_index=3, top_k=1)
    assert w == [0.5, 0.0, 0.0, 0.5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"losses": [1.0, float("nan")]}, "finite"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"alpha": 0.5}, "alpha_model"),
        ({"alpha": 1.5, "alpha_index": 0}, "between 0 and 1"),
        ({"alpha_index": 0}, "without alpha"),
    ],
)
def test_softmax_weights_rejects_bad_options(kwargs, message):
    args = {"losses": [1.0, 2.0], "temperature": 5.0, **kwargs}
    with pytest.raises(RecipeError, match=message):
        softmax_weights(**args)


# -- compute_weights ----------------------------------------------------------------------------------


def test_the_model_tuned_on_the_examples_gets_the_largest_weight(trio):
    updates: list[ProgressUpdate] = []
    result = compute_weights(trio, EXAMPLES, progress=updates.append)
    assert result.kind == "decoder" and result.n_examples == 5 and result.method == "softmax"
    assert result.losses[2] == min(result.losses)
    assert max(range(3), key=result.weights.__getitem__) == 2
    assert sum(result.weights) == pytest.approx(1.0)
    assert result.weights == softmax_weights(result.losses, 5.0)
    # each model's loss is exactly what scoring that model alone gives
    alone = score_model(trio[2], load_examples(EXAMPLES), kind="decoder")
    assert result.losses[2] == pytest.approx(alone.loss, abs=1e-6)
    assert result.per_example_losses[2] == pytest.approx(alone.per_example, abs=1e-6)
    assert {u.stage for u in updates} == {"score"} and updates[-1].fraction == 1.0
    # T -> 0 picks it alone; T -> infinity evens out
    assert compute_weights(trio, EXAMPLES, temperature=1e-6).weights == [0.0, 0.0, 1.0]
    assert compute_weights(trio, EXAMPLES, temperature=1e9).weights == pytest.approx([1 / 3] * 3)


def test_alpha_for_the_fine_tune(trio):
    result = compute_weights(trio, EXAMPLES, alpha=0.7, alpha_model=trio[2], top_k=1)
    assert result.weights[2] == 0.7 and sum(result.weights) == pytest.approx(1.0)
    assert sorted(result.weights[:2]) == pytest.approx([0.0, 0.3])
    assert result.alpha_model == trio[2]
    with pytest.raises(RecipeError, match="not one of the models"):
        compute_weights(trio, EXAMPLES, alpha=0.5, alpha_model="./elsewhere")


def test_to_recipe_and_to_dict(trio):
    result = compute_weights(trio, EXAMPLES, temperature=2.0, seed=3)
    recipe = result.to_recipe(dtype="bfloat16")
    assert recipe.weights == pytest.approx(result.weights) and recipe.dtype == "bfloat16"
    assert recipe.kind == "decoder"
    prov = recipe.weights_from
    assert prov.n_examples == 5 and prov.temperature == 2.0 and prov.seed == 3 and not prov.optimized
    assert prov.losses == pytest.approx(result.losses)
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    filled = result.to_recipe(Recipe.from_lists(trio, None, base=trio[0]))
    assert filled.base is not None and filled.weights_from is not None
    with pytest.raises(RecipeError, match="not the ones"):
        result.to_recipe(Recipe.from_lists(trio[::-1], None))
    data = result.to_dict()
    assert list(data)[:3] == ["models", "losses", "weights"]
    assert data["method"] == "softmax" and data["n_examples"] == 5 and data["temperature"] == 2.0
    assert "model" in result.table() and "T=2" in result.table()


def test_examples_that_do_not_fit_fail_before_any_model_loads(trio, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("cocktail_core.scoring.load_model", boom)
    with pytest.raises(ExamplesError, match="query/pos/neg examples do not fit a decoder model"):
        compute_weights(trio, RETRIEVAL)
    with pytest.raises(ExamplesError, match="line 2, column"):
        compute_weights(trio, '{"input": "a", "output": "b"}\n{"input": "c", "output": }\n')
    with pytest.raises(ExamplesError, match="'output' is empty"):
        compute_weights(trio, [{"input": "a", "output": ""}])
    with pytest.raises(ExamplesError, match="longer than|tokens long"):
        compute_weights(trio, [{"input": "word " * 300, "output": "b"}])


def test_bad_model_lists(trio, tiny_bert_pair):
    with pytest.raises(RecipeError, match="at least two"):
        compute_weights(trio[:1], EXAMPLES)
    with pytest.raises(RecipeError, match="twice"):
        compute_weights([trio[0], trio[0]], EXAMPLES)
    with pytest.raises(ScoringError, match="different kinds"):
        compute_weights([trio[0], str(tiny_bert_pair[0])], EXAMPLES)
    with pytest.raises(RecipeError, match="does not use weights"):
        compute_weights(Recipe.from_lists(trio[:2], None, method="slerp", base=trio[0]), EXAMPLES)


# -- the optimizer ------------------------------------------------------------------------------------


def _written_merge_loss(tmp_path, result, weights, name):
    recipe = Recipe.from_lists(result.models, weights, kind=result.kind)
    out = merge(recipe, tmp_path / name).path
    try:
        return score_model(out, load_examples(EXAMPLES if result.kind == "decoder" else RETRIEVAL),
                           kind=result.kind, seed=result.seed).loss
    finally:
        shutil.rmtree(out)


def test_optimized_merge_is_never_worse_and_means_the_written_merge(tmp_path, trio):
    updates: list[ProgressUpdate] = []
    result = compute_weights(trio, EXAMPLES, temperature=1.0, optimize=True, progress=updates.append)
    assert result.optimizer == "gradient" and result.optimizer_steps == OptimizeOptions().steps
    assert result.merged_loss_softmax is not None and result.merged_loss_optimized is not None
    assert result.merged_loss_optimized <= result.merged_loss_softmax
    assert result.method == "softmax+optimized"
    assert all(w >= 0 for w in result.weights) and sum(result.weights) == pytest.approx(1.0)
    assert result.weights != result.softmax_weights
    assert {"score", "optimize"} <= {u.stage for u in updates}
    assert [u.total for u in updates if u.stage == "optimize"] == [OptimizeOptions().steps + 2] * len(
        [u for u in updates if u.stage == "optimize"])
    # The in-memory merges compute exactly what the engine writes.
    assert _written_merge_loss(tmp_path, result, result.softmax_weights, "soft") == pytest.approx(
        result.merged_loss_softmax, abs=1e-5)
    assert _written_merge_loss(tmp_path, result, result.weights, "opt") == pytest.approx(
        result.merged_loss_optimized, abs=1e-5)
    prov = result.to_recipe().weights_from
    assert prov.optimized and prov.merged_loss_optimized == result.merged_loss_optimized


def test_drift_guard_with_a_base(trio):
    opts = OptimizeOptions(steps=10, drift_prompts=weights_mod.GENERAL_PROMPTS[:3], drift_new_tokens=8)
    result = compute_weights(trio, EXAMPLES, temperature=1.0, optimize=True, base=trio[0], optimize_options=opts)
    assert result.drift_reference == trio[0]
    assert result.drift_softmax is not None and math.isfinite(result.drift_softmax)
    assert result.merged_loss_optimized is None or result.merged_loss_optimized <= result.merged_loss_softmax
    if result.optimized:
        assert result.drift_optimized <= result.drift_softmax * (1 + opts.drift_tolerance) + 1e-6
    # a zero tolerance still never yields a merge that drifts more than the softmax one
    strict = compute_weights(trio, EXAMPLES, temperature=1.0, optimize=True, base=trio[0],
                             optimize_options=OptimizeOptions(steps=10, drift_tolerance=0.0,
                                                              drift_prompts=opts.drift_prompts, drift_new_tokens=8))
    if strict.optimized:
        assert strict.drift_optimized <= strict.drift_softmax + 1e-6


def test_a_worse_optimum_is_rejected(trio, monkeypatch):
    """If the search proposes weights whose merge is worse, the softmax weights stay."""

    def bad_search(evaluator, problem, start, options, tick):
        return [1.0] + [0.0] * (len(problem.free) - 1), 1  # everything on the untuned base

    monkeypatch.setattr(weights_mod, "_gradient_search", bad_search)
    result = compute_weights(trio, EXAMPLES, temperature=1.0, optimize=True)
    assert result.method == "softmax" and result.weights == result.softmax_weights
    assert result.merged_loss_optimized > result.merged_loss_softmax
    assert any("kept the softmax weights" in n for n in result.notes)


def test_gradient_free_search_for_other_methods(trio):
    recipe = Recipe.from_lists(trio, None, method="ties", base=trio[0], kind="decoder")
    result = compute_weights(recipe, EXAMPLES, temperature=1.0, optimize=True,
                             optimize_options=OptimizeOptions(max_evals=4))
    assert result.optimizer == "search" and result.optimizer_steps <= 4
    assert result.merged_loss_optimized is None or result.merged_loss_optimized <= result.merged_loss_softmax
    assert result.to_recipe(recipe).method == "ties"


def test_streamed_search_when_inputs_do_not_fit_in_memory(trio, monkeypatch):
    monkeypatch.setenv("COCKTAIL_IN_MEMORY_MAX_MB", "0")
    result = compute_weights(trio[1:], EXAMPLES, temperature=1.0, optimize=True,
                             optimize_options=OptimizeOptions(max_streamed_evals=2))
    assert result.optimizer == "streamed-search" and result.optimizer_steps <= 2
    assert result.merged_loss_optimized is None or result.merged_loss_optimized <= result.merged_loss_softmax


def test_nothing_to_optimize_when_one_model_takes_all(trio):
    result = compute_weights(trio, EXAMPLES, temperature=1e-6, optimize=True)
    assert result.weights == [0.0, 0.0, 1.0] and result.method == "softmax"
    assert any("nothing to optimize" in n for n in result.notes)


# -- other kinds --------------------------------------------------------------------------------------


def test_embedding_weights_same_seed_same_weights(tiny_bert_pair):
    models = [str(p) for p in tiny_bert_pair]
    a = compute_weights(models, RETRIEVAL, neg_number=2, seed=0)
    b = compute_weights(models, RETRIEVAL, neg_number=2, seed=0)
    c = compute_weights(models, RETRIEVAL, neg_number=2, seed=1)
    assert a.kind == "encoder" and a.weights == b.weights and a.losses == b.losses
    assert a.losses != c.losses  # other negatives were sampled


@pytest.mark.parametrize("pair", ["tiny_bert_pair", "tiny_reranker_pair", "tiny_t5_pair"])
def test_other_kinds_optimize_never_worse(request, pair):
    models = [str(p) for p in request.getfixturevalue(pair)]
    examples = EXAMPLES if pair == "tiny_t5_pair" else RETRIEVAL
    result = compute_weights(models, examples, temperature=0.5, optimize=True,
                             optimize_options=OptimizeOptions(steps=8))
    assert result.kind == {"tiny_bert_pair": "encoder", "tiny_reranker_pair": "reranker",
                           "tiny_t5_pair": "encoder-decoder"}[pair]
    assert all(math.isfinite(x) for x in result.losses) and sum(result.weights) == pytest.approx(1.0)
    assert result.merged_loss_softmax is not None and result.optimizer == "gradient"
    if pair != "tiny_reranker_pair":  # the tiny rerankers score every pair ~0: nothing to gain there
        assert result.optimized
    if result.optimized:
        assert result.merged_loss_optimized <= result.merged_loss_softmax
    else:
        assert result.weights == result.softmax_weights


def test_weights_result_table_mentions_everything():
    r = WeightsResult(models=["org/a", "./b"], losses=[1.0, 2.0], weights=[0.6, 0.4], method="softmax+optimized",
                      temperature=5.0, seed=0, seconds=1.0, n_examples=5, kind="decoder",
                      softmax_weights=[0.55, 0.45], merged_loss_softmax=1.2, merged_loss_optimized=1.1,
                      drift_reference="org/a", drift_softmax=0.7, drift_optimized=0.71, notes=["hello"])
    text = r.table()
    for piece in ("org/a", "b", "0.6000", "0.5500", "softmax 1.2000, optimized 1.1000", "drift", "note: hello"):
        assert piece in text


def test_weights_of_hub_models_match_local_folders(local_hub, tiny_llama_base, tiny_llama_ft1):
    local_hub.seed_repo("alice/base", tiny_llama_base)
    local_hub.seed_repo("alice/ft", tiny_llama_ft1)
    updates: list[ProgressUpdate] = []
    hub_result = compute_weights(["alice/base", "alice/ft"], EXAMPLES, token=local_hub.token,
                                 progress=updates.append)
    local = compute_weights([str(tiny_llama_base), str(tiny_llama_ft1)], EXAMPLES)
    assert hub_result.models == ["alice/base", "alice/ft"]
    assert hub_result.losses == pytest.approx(local.losses, abs=1e-6)
    assert any("downloading alice/base" in u.message for u in updates)
    assert hub_result.to_recipe().refs[0].path == "alice/base"
