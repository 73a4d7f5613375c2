"""Merges whose inputs come from the (local) Hub: same bytes as from folders, metadata-only preflight,
private / gated / missing inputs, offline and unreachable Hub, and the model card for Hub inputs."""
from __future__ import annotations

from pathlib import Path

import pytest

from cocktail_core import hub
from cocktail_core.card import LOCAL_PLACEHOLDER, LOCAL_TITLE, render_card, retarget_card
from cocktail_core.compat import human_bytes, preflight
from cocktail_core.engine import RECIPE_FILE, merge
from cocktail_core.errors import (
    HubGatedError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
    HubUnreachableError,
    PreflightError,
)
from cocktail_core.io.sources import inspect, materialize
from cocktail_core.recipe import Recipe, WeightsProvenance

from tests.helpers import assert_no_token, dead_endpoint, folder_files

WEIGHTS = [0.5, 0.3, 0.2]


@pytest.fixture
def hub_models(local_hub, tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    """alice/base (main), alice/ft (ft1 at ``ft_sha``; main has since moved to other weights) and
    alice/ft2 (the sharded ft2, on branch ``v2`` only)."""
    base_sha = local_hub.seed_repo("alice/base", tiny_llama_base)
    ft_sha = local_hub.seed_repo("alice/ft", tiny_llama_ft1)
    # main moves on: the pinned sha must still give ft1's weights
    local_hub.commit_files("alice/ft", {"model.safetensors": (tiny_llama_base / "model.safetensors").read_bytes()})
    v2_sha = local_hub.seed_repo("alice/ft2", tiny_llama_ft2, branch="v2")
    return {"base": base_sha, "ft": ft_sha, "v2": v2_sha,
            "folders": [tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2]}


def _hub_recipe(hub_models, **kw) -> Recipe:
    return Recipe.from_lists(["alice/base", f"alice/ft@{hub_models['ft']}", "alice/ft2@v2"], WEIGHTS, **kw)


def test_hub_merge_equals_local_merge_bit_for_bit(local_hub, hub_models, tmp_path):
    from huggingface_hub import ModelCard

    updates = []
    from_hub = merge(_hub_recipe(hub_models), tmp_path / "hub", progress=updates.append, token=local_hub.token)
    local = merge(Recipe.from_lists([str(p) for p in hub_models["folders"]], WEIGHTS), tmp_path / "local")
    hub_files, local_files = folder_files(from_hub.path), folder_files(local.path)
    assert set(hub_files) == set(local_files)
    for name in set(hub_files) - {"README.md", RECIPE_FILE}:
        assert hub_files[name] == local_files[name], name  # weights, config, tokenizer: identical bytes
    assert from_hub.bytes_written == local.bytes_written

    # Downloads were reported, totalling the preflight's download size.
    downloads = [u for u in updates if u.stage == "download"]
    assert downloads and downloads[-1].done == downloads[-1].total == from_hub.report.download_bytes > 0

    # The pinned recipe records the exact commits used (the branch resolved to its sha).
    pinned = Recipe.from_file(from_hub.path / RECIPE_FILE)
    assert [str(e.model) for e in pinned.models] == [
        f"alice/base@{hub_models['base']}", f"alice/ft@{hub_models['ft']}", f"alice/ft2@{hub_models['v2']}"]
    assert pinned == from_hub.recipe

    # The card: plain Hub ids as base_model, the commits in its body, valid for the Hub.
    card = ModelCard.load(from_hub.path / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == ["alice/base", "alice/ft", "alice/ft2"]
    assert data["base_model_relation"] == "merge"
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-generation"
    assert "merge" in data["tags"]
    assert "license" not in data  # apache-2.0, apache-2.0 and mit
    for sha in (hub_models["base"], hub_models["ft"], hub_models["v2"]):
        assert f"`{sha}`" in card.text  # ingredients table
        assert f"@{sha}" in card.text  # recipe
    assert str(hub_models["folders"][0]) not in card.content
    card.validate()  # the Hub's YAML validation endpoint (the local server's)
    assert_no_token(local_hub.token, card.content, folders=(from_hub.path,))


def test_card_license_from_hub_inputs_and_mixed_local(local_hub, hub_models, tmp_path):
    from huggingface_hub import ModelCard

    both = merge(Recipe.from_lists(["alice/base", f"alice/ft@{hub_models['ft']}"], [1, 1]), tmp_path / "a")
    data = ModelCard.load(both.path / "README.md").data.to_dict()
    assert data["license"] == "apache-2.0"
    # A local input is never listed as a Hub base model; the same repo twice is listed once.
    mixed = merge(Recipe.from_lists(["alice/ft", f"alice/ft@{hub_models['ft']}", str(hub_models["folders"][0])],
                                    [1, 1, 1]), tmp_path / "b")
    data = ModelCard.load(mixed.path / "README.md").data.to_dict()
    assert data["base_model"] == ["alice/ft"]
    assert all("/tmp" not in str(v) and "pytest" not in str(v) for v in data.values())


def test_preflight_of_hub_inputs_reads_metadata_only(local_hub, hub_models):
    report = preflight(_hub_recipe(hub_models))
    assert report.ok, report.problems
    assert not [p for p in local_hub.cached_files() if p.name.endswith(".safetensors")]
    weight_reads = [r for r in local_hub.requests_to("/resolve/", "GET") if r[1].endswith(".safetensors")]
    assert len(weight_reads) == 5 and all(status == 206 for _, _, status in weight_reads)  # header Range reads
    expected = []
    for folder in hub_models["folders"]:
        names = [p.name for p in folder.iterdir() if p.is_file()]
        expected.append(sum((folder / f).stat().st_size for f in hub.select_merge_files(
            names, _weight_map(folder))))
    rows = report.rows()
    assert [r["download"] for r in rows] == [human_bytes(n) for n in expected]
    assert report.download_bytes == sum(expected)
    text = report.render()
    assert f"download: {human_bytes(sum(expected))}" in text
    assert all(human_bytes(n) in text for n in expected)
    assert [r["model"] for r in rows] == ["alice/base", f"alice/ft@{hub_models['ft']}", "alice/ft2@v2"]


def _weight_map(folder: Path) -> dict[str, str] | None:
    import json

    index = folder / "model.safetensors.index.json"
    return json.loads(index.read_text())["weight_map"] if index.is_file() else None


def test_private_input_needs_a_token_that_sees_it(local_hub, hub_models, tiny_llama_base, tmp_path):
    local_hub.seed_repo("alice/secret", tiny_llama_base, private=True)
    bob = local_hub.add_user("bob")
    recipe = Recipe.from_lists(["alice/secret", f"alice/ft@{hub_models['ft']}"], [1, 1])
    for token in (None, bob):
        with pytest.raises(HubRepoNotFoundError) as ei:
            inspect("alice/secret", token=token)
        assert "private" in str(ei.value) and "HF_TOKEN" in str(ei.value)
        with pytest.raises(PreflightError) as ei:
            merge(recipe, tmp_path / "out", token=token)
        assert "alice/secret" in str(ei.value) and "not found" in str(ei.value)
        assert_no_token(bob, str(ei.value))
        assert not (tmp_path / "out").exists()
    result = merge(recipe, tmp_path / "out", token=local_hub.token)
    assert (result.path / "model.safetensors").is_file()
    assert_no_token(local_hub.token, folders=(result.path,))


def test_gated_input_says_how_to_request_access(local_hub, hub_models, tiny_llama_base, tmp_path):
    local_hub.seed_repo("alice/gated", tiny_llama_base, gated=True)
    bob = local_hub.add_user("bob")
    recipe = Recipe.from_lists(["alice/gated", f"alice/ft@{hub_models['ft']}"], [1, 1])
    for token in (None, bob):
        with pytest.raises(HubGatedError) as ei:
            inspect("alice/gated", token=token)
        msg = str(ei.value)
        assert "gated" in msg and "request access" in msg and f"{local_hub.url}/alice/gated" in msg
        with pytest.raises(PreflightError, match="request access"):
            merge(recipe, tmp_path / "out", token=token)
        assert not (tmp_path / "out").exists()
    local_hub.grant_access("alice/gated", "bob")
    result = merge(recipe, tmp_path / "out", token=bob)
    assert result.recipe.models[0].model.revision == local_hub.head("alice/gated")
    assert_no_token(bob, folders=(result.path,))


@pytest.mark.parametrize("ref, error, text", [
    ("alice/base@no-such-branch", HubRevisionNotFoundError, "Revision 'no-such-branch' does not exist"),
    ("alice/nothing-here", HubRepoNotFoundError, "was not found"),
])
def test_missing_revision_or_repo(local_hub, hub_models, tmp_path, ref, error, text):
    with pytest.raises(error, match=text):
        inspect(ref, token=local_hub.token)
    with pytest.raises(PreflightError) as ei:
        merge(Recipe.from_lists([ref, "alice/base"], [1, 1]), tmp_path / "out", token=local_hub.token)
    assert text in str(ei.value) and len(ei.value.problems) == 1
    assert not (tmp_path / "out").exists()
    assert not [p for p in local_hub.cached_files() if p.name.endswith(".safetensors")]


def test_unreachable_hub_suggests_offline_mode(local_hub, hub_models, tmp_path):
    local_hub.point_to(dead_endpoint())
    with pytest.raises(HubUnreachableError) as ei:
        inspect("alice/base", token=local_hub.token)
    assert "Could not reach the Hub" in str(ei.value) and "HF_HUB_OFFLINE=1" in str(ei.value)
    with pytest.raises(PreflightError) as ei:
        merge(_hub_recipe(hub_models), tmp_path / "out", token=local_hub.token)
    msg = str(ei.value)
    assert "Could not reach the Hub" in msg and "HF_HUB_OFFLINE=1" in msg and "cache" in msg
    assert_no_token(local_hub.token, msg)
    assert not (tmp_path / "out").exists()


def test_offline_merge_is_served_from_the_cache(local_hub, hub_models, tiny_llama_base, tmp_path):
    first = merge(_hub_recipe(hub_models), tmp_path / "online", token=local_hub.token)
    n_requests = len(local_hub.requests)
    with local_hub.offline():
        again = merge(_hub_recipe(hub_models), tmp_path / "offline")
        pinned = merge(Recipe.from_file(first.path / RECIPE_FILE), tmp_path / "pinned")
        local_hub.seed_repo("alice/never-downloaded", tiny_llama_base)
        with pytest.raises(PreflightError) as ei:
            merge(Recipe.from_lists(["alice/never-downloaded", "alice/base"], [1, 1]), tmp_path / "nope")
        assert "offline mode (HF_HUB_OFFLINE=1)" in str(ei.value) and "not in the local cache" in str(ei.value)
    assert len(local_hub.requests) == n_requests  # not a single request reached the server
    reference = folder_files(first.path)
    for result in (again, pinned):
        got = folder_files(result.path)
        assert {k: v for k, v in got.items() if k.endswith(".safetensors")} == \
            {k: v for k, v in reference.items() if k.endswith(".safetensors")}
    assert again.recipe == first.recipe  # branch names resolved offline to the same commits
    # A Hub that cannot be reached falls back to the cache as well.
    local_hub.point_to(dead_endpoint())
    unreachable = merge(_hub_recipe(hub_models), tmp_path / "unreachable", token=local_hub.token)
    assert folder_files(unreachable.path)["model.safetensors"] == reference["model.safetensors"]


def test_card_records_example_losses_for_hub_inputs(local_hub, hub_models, tmp_path):
    from huggingface_hub import ModelCard

    prov = WeightsProvenance(n_examples=4, temperature=5.0, losses=[2.25, 1.5, 1.75], merged_loss_softmax=1.4)
    result = merge(_hub_recipe(hub_models, weights_from=prov), tmp_path / "out")
    card = ModelCard.load(result.path / "README.md")
    assert "## Weights from examples" in card.text and "**4 example(s)**" in card.text
    for loss in ("2.2500", "1.5000", "1.7500", "1.4000"):
        assert loss in card.text
    assert card.data.to_dict()["base_model"] == ["alice/base", "alice/ft", "alice/ft2"]
    assert Recipe.from_file(result.path / RECIPE_FILE).weights_from == prov


def test_retargeted_card_equals_card_rendered_for_the_repo(local_hub, hub_models, tiny_bert_pair, tmp_path):
    hub_merge = merge(_hub_recipe(hub_models), tmp_path / "hub")
    sources = [materialize(s) for s in hub_merge.report.sources]
    local_card = (hub_merge.path / "README.md").read_text()
    assert f"# {LOCAL_TITLE}" in local_card and LOCAL_PLACEHOLDER in local_card
    expected = render_card(hub_merge.recipe, sources, hub_merge.report.kind, repo_id="alice/my-cocktail")
    assert retarget_card(local_card, "alice/my-cocktail") == expected
    assert "# my-cocktail\n" in expected and 'from_pretrained("alice/my-cocktail"' in expected
    assert LOCAL_PLACEHOLDER not in expected
    # An embedding model's snippet too; and cards not written by Cocktail are left alone.
    bert = merge(Recipe.from_lists([str(p) for p in tiny_bert_pair], [1, 1]), tmp_path / "bert")
    bert_sources = [inspect(str(p)) for p in tiny_bert_pair]
    assert retarget_card((bert.path / "README.md").read_text(), "org/emb") == \
        render_card(bert.recipe, bert_sources, bert.report.kind, repo_id="org/emb")
    foreign = (tiny_bert_pair[0] / "README.md").read_text() if (tiny_bert_pair[0] / "README.md").exists() else "# x"
    assert retarget_card(foreign, "org/emb") == foreign
    assert retarget_card("# Cocktail merge\n", "org/emb") == "# Cocktail merge\n"


def test_shared_space_never_serves_the_cache_when_the_hub_is_unreachable(local_hub, hub_models, tmp_path, monkeypatch):
    merge(_hub_recipe(hub_models), tmp_path / "online", token=local_hub.token)
    local_hub.point_to(dead_endpoint())
    monkeypatch.setenv("SPACE_ID", "org/cocktail")  # a Space: the cache is shared by visitors
    with pytest.raises(PreflightError, match="Could not reach the Hub"):
        merge(_hub_recipe(hub_models), tmp_path / "space")
    assert not (tmp_path / "space").exists()
