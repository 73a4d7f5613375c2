"""Free weights (``compute_weights(constraint="free")``): off the simplex, merged as exactly sum(w_i * theta_i)."""

from __future__ import annotations

import math
import shutil

import pytest

from cocktail_core import weights as weights_mod
from cocktail_core.engine import merge
from cocktail_core.errors import RecipeError
from cocktail_core.examples import load_examples
from cocktail_core.recipe import Recipe
from cocktail_core.scoring import score_model
from cocktail_core.weights import OptimizeOptions, compute_weights
from tests.fixtures.tuned import EXAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(tiny_llama_base, tuned_llama):
    return [str(tiny_llama_base), str(tuned_llama)]


def test_free_weights_go_past_the_fine_tune_and_the_recipe_merges_what_was_reported(tmp_path, pair):
    result = compute_weights(pair, EXAMPLES, temperature=1.0, optimize=True, constraint="free")
    simplex = compute_weights(pair, EXAMPLES, temperature=1.0, optimize=True)
    assert result.constraint == "free" and result.optimizer == "gradient" and result.optimized
    assert result.softmax_weights == simplex.softmax_weights
    # extrapolation beyond the fine-tune lowers the loss where no weighted average can
    assert result.weights[1] > 1.0
    assert result.merged_loss_optimized <= result.merged_loss_softmax
    assert result.merged_loss_softmax == pytest.approx(simplex.merged_loss_softmax, abs=1e-5)
    assert result.merged_loss_optimized < simplex.merged_loss_optimized
    assert result.merged_loss_optimized < min(result.losses)
    assert "free" in result.table() and result.to_dict()["constraint"] == "free"

    recipe = result.to_recipe()
    assert recipe.method == "linear" and recipe.params == {"normalize": False}
    assert recipe.weights == pytest.approx(result.weights)
    assert recipe.weights_from.constraint == "free" and recipe.weights_from.optimized
    saved = tmp_path / "free.yaml"
    recipe.save(saved)
    loaded = Recipe.from_file(saved)
    assert loaded == recipe and loaded.params == {"normalize": False}
    out = merge(loaded, tmp_path / "merged").path
    assert score_model(out, load_examples(EXAMPLES), kind="decoder").loss == pytest.approx(
        result.merged_loss_optimized, abs=1e-5)
    card = (out / "README.md").read_text()
    assert "weights unconstrained (may be negative; not normalized)" in card
    # a simplex result records no constraint and keeps the normalized average
    assert simplex.to_recipe().weights_from.constraint is None
    assert simplex.to_recipe().params == {"normalize": True}


def test_free_weights_fill_a_linear_recipe_and_refuse_other_methods(pair):
    result = compute_weights(pair, EXAMPLES, temperature=1.0, optimize=True, constraint="free",
                             optimize_options=OptimizeOptions(steps=3))
    filled = result.to_recipe(Recipe.from_lists(pair, None, base=pair[0], dtype="float32"))
    assert filled.params == {"normalize": False} and filled.base is not None and filled.dtype == "float32"
    with pytest.raises(RecipeError, match="method linear"):
        result.to_recipe(Recipe.from_lists(pair, None, method="task_arithmetic", base=pair[0]))


def test_free_weights_with_the_drift_guard_are_never_worse(pair):
    opts = OptimizeOptions(steps=10, drift_prompts=weights_mod.GENERAL_PROMPTS[:3], drift_new_tokens=8)
    result = compute_weights(pair, EXAMPLES, temperature=1.0, optimize=True, constraint="free", base=pair[0],
                             optimize_options=opts)
    assert result.drift_softmax is not None and math.isfinite(result.drift_softmax)
    if result.optimized:
        assert result.merged_loss_optimized <= result.merged_loss_softmax
        assert result.drift_optimized <= result.drift_softmax * (1 + opts.drift_tolerance) + 1e-6
    else:
        assert result.weights == result.softmax_weights


def test_free_streamed_search(pair, monkeypatch, tmp_path):
    monkeypatch.setenv("COCKTAIL_IN_MEMORY_MAX_MB", "0")
    result = compute_weights(pair, EXAMPLES, temperature=1.0, optimize=True, constraint="free",
                             optimize_options=OptimizeOptions(max_streamed_evals=3))
    assert result.optimizer == "streamed-search" and result.optimizer_steps <= 3
    if result.optimized:
        assert result.merged_loss_optimized <= result.merged_loss_softmax
        assert sum(result.weights) != pytest.approx(1.0) or any(w < 0 for w in result.weights)
        out = merge(result.to_recipe(), tmp_path / "m").path
        try:
            assert score_model(out, load_examples(EXAMPLES), kind="decoder").loss == pytest.approx(
                result.merged_loss_optimized, abs=1e-5)
        finally:
            shutil.rmtree(out)


def test_bad_constraints_fail_before_any_model_loads(pair, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("cocktail_core.scoring.load_model", boom)
    with pytest.raises(RecipeError, match="need the optimizer"):
        compute_weights(pair, EXAMPLES, constraint="free")
    with pytest.raises(RecipeError, match="Unknown weight constraint"):
        compute_weights(pair, EXAMPLES, optimize=True, constraint="box")  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="method linear"):
        compute_weights(Recipe.from_lists(pair, None, method="ties", base=pair[0]), EXAMPLES, optimize=True,
                        constraint="free")
