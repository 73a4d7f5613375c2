"""cocktail_core.playground: trying models and re-merging them in memory."""

from __future__ import annotations

import json

import pytest
import torch

from cocktail_core import Recipe, merge
from cocktail_core.errors import CocktailError
from cocktail_core.playground import (
    LiveMerge,
    generate,
    load_model,
    read_pooling,
    rerank_score,
    similarity,
    try_model,
)
from tests.fixtures.models import load_state_dict, make_tiny_bert


def _assert_same_weights(live: LiveMerge, folder) -> None:
    """The live model holds exactly what a merge to disk wrote (compared in float32)."""
    disk = load_state_dict(folder)
    model_sd = live.loaded.model.state_dict()
    for name, target in live._key_map.items():  # noqa: SLF001 - the mapping is what we check
        assert torch.equal(model_sd[target].cpu(), disk[name].to(torch.float32)), name


def test_generate_is_greedy_and_returns_only_new_text(tiny_llama_base):
    model = load_model(tiny_llama_base)
    assert model.kind == "decoder"
    first = generate(model, "The capital of France is", max_new_tokens=6)
    assert first == generate(model, "The capital of France is", max_new_tokens=6)
    assert "capital of France" not in first


def test_try_model_dispatches_by_kind(tiny_llama_base, tiny_reranker_pair, tiny_t5_pair, tiny_bert_pair):
    text = try_model(load_model(tiny_llama_base), "Hello", max_new_tokens=4)
    assert text.kind == "decoder" and isinstance(text.text, str) and text.score is None
    seq2seq = try_model(load_model(tiny_t5_pair[0]), "translate: hello", max_new_tokens=4)
    assert seq2seq.kind == "encoder-decoder" and isinstance(seq2seq.text, str)
    emb = try_model(load_model(tiny_bert_pair[0]), "a cat", "a dog")
    assert emb.kind == "encoder" and -1.0 <= emb.score <= 1.0 and "cosine similarity" in emb.display()
    rr = try_model(load_model(tiny_reranker_pair[0]), "capital of France", "Paris is the capital.")
    assert rr.kind == "reranker" and isinstance(rr.score, float) and "relevance score" in rr.display()


def test_wrong_inputs_are_readable_errors(tiny_llama_base, tiny_bert_pair):
    decoder = load_model(tiny_llama_base)
    with pytest.raises(CocktailError, match="empty"):
        try_model(decoder, "   ")
    with pytest.raises(CocktailError, match="does not generate"):
        generate(load_model(tiny_bert_pair[0]), "hi")
    with pytest.raises(CocktailError, match="second text"):
        try_model(load_model(tiny_bert_pair[0]), "a cat", "")
    with pytest.raises(CocktailError, match="reranker"):
        rerank_score(decoder, "q", "p")
    with pytest.raises(CocktailError, match="not found|does not exist"):
        load_model("./no/such/model-folder")


def test_similarity_follows_the_sentence_transformers_pooling(tmp_path):
    mean = make_tiny_bert(tmp_path / "mean", seed=3, pooling="mean")
    cls = make_tiny_bert(tmp_path / "cls", seed=3, pooling="cls")  # same weights, other pooling
    assert read_pooling(mean) == "mean" and read_pooling(cls) == "cls"
    m, c = load_model(mean), load_model(cls)
    assert m.pooling == "mean" and c.pooling == "cls"
    assert similarity(m, "the same text", "the same text") == pytest.approx(1.0, abs=1e-5)
    a, b = "the cat sleeps all day", "rain is expected tomorrow"
    assert similarity(m, a, b) != pytest.approx(similarity(c, a, b), abs=1e-6)
    # without sentence-transformers files, CLS pooling, as in scoring (LM-Cocktail pools with CLS)
    (mean / "modules.json").unlink()
    (mean / "1_Pooling" / "config.json").unlink()
    assert read_pooling(mean) == "cls"


def test_read_pooling_uses_the_module_path_from_modules_json(tmp_path):
    folder = make_tiny_bert(tmp_path / "m", pooling="cls")
    (folder / "1_Pooling").rename(folder / "pool")
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["path"] = "pool"
    (folder / "modules.json").write_text(json.dumps(modules))
    assert read_pooling(folder) == "cls"


def test_live_merge_equals_the_merge_on_disk(tmp_path, tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    recipe = Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1), str(tiny_llama_ft2)], [0.5, 0.3, 0.2])
    live = LiveMerge.create(recipe)
    _assert_same_weights(live, merge(recipe, tmp_path / "a").path)
    assert live.last_seconds > 0

    changed = recipe.with_weights([0.1, 0.1, 0.8])
    seconds = live.remerge(changed)
    assert seconds == live.last_seconds and seconds > 0
    _assert_same_weights(live, merge(changed, tmp_path / "b").path)
    # the merged model answers like the disk merge does
    disk = load_model(tmp_path / "b")
    assert generate(live.loaded, "Hello there", max_new_tokens=5) == generate(disk, "Hello there", max_new_tokens=5)
    # nothing was written by the live merge
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_live_merge_task_arithmetic_and_bf16_rounding(tmp_path, tiny_llama_bf16_trio):
    base, a, b = map(str, tiny_llama_bf16_trio)
    recipe = Recipe.from_lists([base, a, b], [1.0, 0.7, 0.4], method="task_arithmetic", base=base)
    live = LiveMerge.create(recipe)
    _assert_same_weights(live, merge(recipe, tmp_path / "ta").path)
    as_fp16 = Recipe.from_lists([base, a, b], [1.0, 0.7, 0.4], method="task_arithmetic", base=base, dtype="float16")
    live16 = LiveMerge.create(as_fp16)
    _assert_same_weights(live16, merge(as_fp16, tmp_path / "fp16").path)


@pytest.mark.parametrize("pair", ["tiny_bert_pair", "tiny_reranker_pair", "tiny_t5_pair"])
def test_live_merge_other_kinds(pair, request, tmp_path):
    folders = [str(p) for p in request.getfixturevalue(pair)]
    recipe = Recipe.from_lists(folders, [0.25, 0.75])
    live = LiveMerge.create(recipe)
    _assert_same_weights(live, merge(recipe, tmp_path / "out").path)


def test_live_merge_refuses_models_over_the_budget(tiny_llama_base, tiny_llama_ft1, monkeypatch):
    recipe = Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1)])
    with pytest.raises(CocktailError, match="COCKTAIL_IN_MEMORY_MAX_MB"):
        LiveMerge.create(recipe, max_mb=0)
    monkeypatch.setenv("COCKTAIL_IN_MEMORY_MAX_MB", "0")
    with pytest.raises(CocktailError, match="limit is 0 MB"):
        LiveMerge.create(recipe)


def test_live_merge_rejects_a_recipe_over_other_models(tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    live = LiveMerge.create(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1)]))
    assert live.compatible(live.recipe.with_weights([0.9, 0.1]))
    other = Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft2)])
    assert not live.compatible(other)
    with pytest.raises(CocktailError, match="other models"):
        live.remerge(other)
    with pytest.raises(CocktailError):
        live.remerge([0.5])  # wrong number of weights


def test_load_model_from_the_hub(local_hub, tiny_llama_ft1):
    local_hub.seed_repo("alice/tiny-ft", tiny_llama_ft1)
    model = load_model("alice/tiny-ft")
    assert model.kind == "decoder"
    assert generate(model, "Hi", max_new_tokens=3) == generate(load_model(tiny_llama_ft1), "Hi", max_new_tokens=3)
