"""ui_components.handlers (and session): the app's logic as plain functions, without a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cocktail_core.errors import CocktailError, ExamplesError, HubUnauthorizedError, RecipeError
from cocktail_core.recipe import Recipe
from tests.fixtures.models import load_state_dict
from ui_components import handlers as h
from ui_components.session import SessionError, SessionStore

EXAMPLES = [("What is the capital of France?", "Paris."), ("2 + 2 =", "4"), ("Say hello in French.", "Bonjour."),
            ("What color is the sky?", "Blue."), ("The opposite of hot is", "cold.")]


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "work")
    yield s
    s.close_all()


@pytest.fixture
def session(store):
    return store.get("session-a")


def rows_for(*refs, weights=None):
    weights = weights or [1.0] * len(refs)
    return [h.new_row(str(r), w) for r, w in zip(refs, weights)]


# --------------------------------------------------------------------------- rows, shares, recipe


def test_rows_add_and_remove_within_limits(monkeypatch):
    rows = h.initial_rows()
    assert len(rows) == 2 and len({r["key"] for r in rows}) == 2
    with pytest.raises(RecipeError, match="at least two models"):
        h.remove_row(rows, rows[0]["key"])
    monkeypatch.setenv("COCKTAIL_MAX_MODELS", "3")
    rows = h.add_row(rows)
    assert len(rows) == 3
    with pytest.raises(RecipeError, match="at most 3 models"):
        h.add_row(rows)
    rows = h.remove_row(rows, rows[1]["key"])
    assert len(rows) == 2


def test_set_ref_and_weight_keep_other_rows():
    rows = rows_for("a/one", "b/two")
    rows[0]["info"] = "checked"
    out = h.set_ref(rows, rows[0]["key"], "  c/three ")
    assert out[0]["ref"] == "c/three" and out[0]["info"] == "" and out[1] == rows[1]
    same = h.set_ref(out, out[0]["key"], "c/three")
    assert same[0] == out[0]
    out = h.set_weight(out, out[1]["key"], 0.25)
    assert out[1]["weight"] == 0.25
    assert h.set_weight(out, out[1]["key"], float("nan")) == out


def test_shares_follow_the_method_and_base():
    rows = rows_for("org/base", "org/a", "org/b", weights=[1.0, 0.3, 0.1])
    assert h.shares(rows, "linear", None) == pytest.approx([1 / 1.4, 0.3 / 1.4, 0.1 / 1.4])
    ta = h.shares(rows, "task_arithmetic", "org/base")
    assert ta[0] is None and ta[1:] == pytest.approx([0.75, 0.25])
    shown = [r["share"] for r in h.decorate(rows, "task_arithmetic", "org/base")]
    assert shown == ["base", "75%", "25%"]
    assert [r["share"] for r in h.decorate(rows, "slerp", "org/base")][1] == "not used by slerp"
    frame = h.chart_frame(rows, "linear", None)
    assert list(frame["model"]) == ["1. org/base", "2. org/a", "3. org/b"]
    assert frame["share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert h.pick_base(rows, "ties", h.NO_BASE) == "org/base"
    assert h.pick_base(rows, "linear", h.NO_BASE) == h.NO_BASE
    assert h.pick_base(rows, "linear", "org/gone") == h.NO_BASE


def test_build_recipe_keeps_provenance_only_while_weights_are_unchanged():
    rows = rows_for("org/a", "org/b", weights=[0.6, 0.4])
    prov = {"n_examples": 5, "temperature": 5.0, "losses": [1.0, 2.0]}
    extras = {"weights_from": prov, "computed_weights": [0.6, 0.4], "shard_size": "1GB", "seed": 3}
    recipe = h.build_recipe(rows, method="linear", params={"normalize": True}, dtype="bfloat16", extras=extras)
    assert recipe.weights_from is not None and recipe.shard_size == "1GB" and recipe.seed == 3
    assert recipe.dtype == "bfloat16"
    moved = h.set_weight(rows, rows[0]["key"], 0.9)
    assert h.build_recipe(moved, extras=extras).weights_from is None
    with pytest.raises(RecipeError, match="at least two models"):
        h.build_recipe(rows_for("org/a", ""))
    with pytest.raises(RecipeError, match="needs a base"):
        h.build_recipe(rows, method="ties")


def test_collect_params_takes_only_the_chosen_method():
    values = {"linear": {"normalize": False}, "ties": {"density": 0.3, "lambda": 1.0, "normalize": True}}
    assert h.collect_params("ties", values) == {"density": 0.3, "lambda": 1.0, "normalize": True}
    assert h.collect_params("linear", values) == {"normalize": False}


def test_recipe_upload_fills_the_whole_form():
    recipe = Recipe.from_lists(["org/base", "org/a", "org/b"], [1.0, 0.5, 0.25], method="ties", base="org/base",
                               params={"density": 0.4}, dtype="float16", shard_size="500MB", seed=7)
    form = h.form_from_recipe(recipe.to_yaml())
    assert [r["ref"] for r in form.rows] == ["org/base", "org/a", "org/b"]
    assert [r["weight"] for r in form.rows] == [1.0, 0.5, 0.25]
    assert form.method == "ties" and form.params["density"] == 0.4 and form.base == "org/base"
    assert form.dtype == "float16" and form.extras["shard_size"] == "500MB" and form.extras["seed"] == 7
    rebuilt = h.build_recipe(form.rows, method=form.method, params=form.params, base=form.base, dtype=form.dtype,
                             extras=form.extras)
    assert rebuilt == recipe
    with pytest.raises(RecipeError, match="not valid YAML|Invalid"):
        h.form_from_recipe("models: [")
    with pytest.raises(RecipeError, match="Unknown merge method"):
        h.form_from_recipe("method: lin\nmodels: [{model: a/b}, {model: c/d}]")


def test_read_recipe_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("method: linear\n")
    assert h.read_recipe_file(path) == "method: linear\n"
    with pytest.raises(RecipeError, match="No recipe file"):
        h.read_recipe_file(None)


# --------------------------------------------------------------------------- preflight


def test_preflight_two_compatible_models(session, store, tiny_llama_base, tiny_llama_ft1):
    view = h.preflight_form(rows_for(tiny_llama_base, tiny_llama_ft1), session=session, store=store)
    assert view.ok and view.kind == "decoder" and not view.problems
    assert all("LlamaForCausalLM" in r["info"] and "params" in r["info"] and "float32" in r["info"]
               and "local folder" in r["info"] for r in view.rows)
    assert "can be merged" in view.summary and "**Kind:** decoder" in view.summary
    assert [r["share"] for r in view.rows] == ["50%", "50%"]
    data = view.as_dict()
    assert data["ok"] and data["output_bytes"] > 0 and len(data["rows"]) == 2


def test_preflight_reports_unknown_and_mismatched_models(session, store, tiny_llama_base, tiny_bert_pair):
    view = h.preflight_form(rows_for(tiny_llama_base, "./no/such/folder"), session=session, store=store)
    assert not view.ok and view.rows[0]["problem"] is None
    assert "not found" in view.rows[1]["problem"] and "Traceback" not in view.rows[1]["problem"]
    mismatch = h.preflight_form(rows_for(tiny_llama_base, tiny_bert_pair[0]), session=session, store=store)
    assert not mismatch.ok and any("different architectures" in p for p in mismatch.problems)
    assert "problem(s)" in mismatch.summary
    single = h.preflight_form(rows_for(tiny_llama_base, ""), session=session, store=store)
    assert not single.ok and "at least two models" in single.summary
    dup = h.preflight_form(rows_for(tiny_llama_base, tiny_llama_base), session=session, store=store)
    assert not dup.ok and any("listed twice" in p for p in dup.problems)


def test_preflight_refuses_local_folders_when_disabled(session, store, tiny_llama_base, tiny_llama_ft1, monkeypatch):
    monkeypatch.setenv("COCKTAIL_ALLOW_LOCAL_PATHS", "0")
    view = h.preflight_form(rows_for(tiny_llama_base, tiny_llama_ft1), session=session, store=store)
    assert not view.ok and all("local folders are disabled" in r["problem"] for r in view.rows)
    monkeypatch.delenv("COCKTAIL_ALLOW_LOCAL_PATHS")
    assert h.local_paths_allowed()
    monkeypatch.setenv("SPACE_ID", "someone/cocktail")  # a Space refuses them unless asked
    assert not h.local_paths_allowed()
    monkeypatch.setenv("COCKTAIL_ALLOW_LOCAL_PATHS", "1")
    assert h.local_paths_allowed()


def test_preflight_of_hub_models_downloads_nothing(session, store, local_hub, tiny_llama_base, tiny_llama_ft1):
    local_hub.seed_repo("alice/base", tiny_llama_base)
    local_hub.seed_repo("alice/ft", tiny_llama_ft1)
    view = h.preflight_form(rows_for("alice/base", "alice/ft"), session=session, store=store)
    assert view.ok, view.summary
    assert "download" in view.rows[0]["info"] and "KB" in view.rows[0]["info"]
    assert not [p for p in local_hub.cached_files() if p.name.endswith(".safetensors")]
    missing = h.preflight_form(rows_for("alice/base", "alice/nope"), session=session, store=store)
    assert missing.rows[1]["problem"] and "alice/nope" in missing.rows[1]["problem"]


# --------------------------------------------------------------------------- examples and weights


def _table(pairs):
    return [list(p) for p in pairs]


def test_examples_from_the_table_and_the_paste_box():
    records = h.examples_from_form("decoder", _table(EXAMPLES[:3]) + [["", ""], ["", ""]], "")
    assert records == [{"input": p, "output": a} for p, a in EXAMPLES[:3]]
    pasted = '{"input": "a", "output": "b"}\n{"prompt": "c", "answer": "d"}'
    both = h.examples_from_form("decoder", _table(EXAMPLES[:1]), pasted)
    assert len(both) == 3 and both[-1] == {"input": "c", "output": "d"}
    retrieval = h.examples_from_form("reranker", [["q", "good", "bad"], ["q2", "good2", ""]], "")
    assert retrieval == [{"query": "q", "pos": ["good"], "neg": ["bad"]}, {"query": "q2", "pos": ["good2"], "neg": []}]


def test_malformed_examples_are_readable_errors():
    with pytest.raises(ExamplesError, match="row 2"):
        h.examples_from_form("decoder", [["p", "a"], ["only a prompt", ""]], "")
    with pytest.raises(ExamplesError, match="line 2"):
        h.examples_from_form("decoder", [], '{"input": "a", "output": "b"}\n{"input": "c", "output": ')
    with pytest.raises(ExamplesError, match="no examples"):
        h.examples_from_form("decoder", [["", ""]], "  ")
    with pytest.raises(ExamplesError, match="positive"):
        h.examples_from_form("encoder", [["q", "", "n"]], "")


def test_compute_weights_sets_the_rows_and_the_provenance(session, store, tiny_llama_base, tiny_llama_ft1):
    rows = rows_for(tiny_llama_base, tiny_llama_ft1, weights=[0.2, 0.9])
    seen = []
    view = h.compute_weights_form(rows, session=session, store=store, kind="decoder",
                                  examples=h.examples_from_form("decoder", _table(EXAMPLES), ""),
                                  temperature=5.0, progress=lambda f, d: seen.append((f, d)))
    weights = [r["weight"] for r in view.rows]
    assert sum(weights) == pytest.approx(1.0, abs=1e-3) and weights != [0.2, 0.9]
    assert [r["share"] for r in view.rows] == [f"{w:.0%}" for w in weights]
    assert view.extras["weights_from"]["n_examples"] == 5
    assert list(view.losses_frame["model"]) == ["1. llama-base", "2. llama-ft1"]
    assert "Computed from **5** examples" in view.summary
    recipe = h.build_recipe(view.rows, extras=view.extras)
    assert recipe.weights_from is not None and recipe.weights_from.n_examples == 5
    assert seen and seen[-1][0] == 1.0
    data = view.as_dict()
    assert data["weights"] == pytest.approx(weights, abs=1e-3) and "weights_from" in data["recipe_yaml"]


def test_compute_weights_rejects_a_bad_temperature(session, store, tiny_llama_base, tiny_llama_ft1):
    with pytest.raises(ExamplesError, match="temperature"):
        h.compute_weights_form(rows_for(tiny_llama_base, tiny_llama_ft1), session=session, store=store,
                               examples=[{"input": "a", "output": "b"}], temperature=0)


def test_compute_weights_never_opens_example_text_as_a_file(session, store, tiny_llama_base, tiny_llama_ft1,
                                                             tmp_path):
    secret = tmp_path / "examples.jsonl"
    secret.write_text('{"input": "a", "output": "b"}\n')
    with pytest.raises(ExamplesError, match="line 1"):
        h.compute_weights_form(rows_for(tiny_llama_base, tiny_llama_ft1), session=session, store=store,
                               examples=str(secret))


def test_compute_weights_checks_the_models_first(session, store, tiny_llama_base, tiny_bert_pair):
    from cocktail_core.errors import PreflightError

    with pytest.raises(PreflightError, match="different architectures"):
        h.compute_weights_form(rows_for(tiny_llama_base, tiny_bert_pair[0]), session=session, store=store,
                               examples=[{"input": "a", "output": "b"}])
    with pytest.raises(PreflightError, match="not found"):
        h.compute_weights_form(rows_for(tiny_llama_base, "./missing"), session=session, store=store,
                               examples=[{"input": "a", "output": "b"}])


# --------------------------------------------------------------------------- merge, try, live


def test_merge_into_the_session_folder(session, store, tiny_llama_base, tiny_llama_ft1):
    recipe = h.build_recipe(rows_for(tiny_llama_base, tiny_llama_ft1, weights=[0.3, 0.7]))
    progress = []
    record = h.merge_form(recipe, session=session, store=store, name="my-mix",
                          progress=lambda f, d: progress.append((f, d)))
    assert record.path == session.folder / "merges" / "my-mix" and (record.path / "model.safetensors").is_file()
    assert session.last_merge is record and record.kind == "decoder"
    stages = {d.split(":")[0] for _, d in progress}
    assert {"preflight", "merge", "done"} <= stages and progress[-1][0] == 1.0
    summary = h.merge_summary(record)
    assert "into `my-mix`" in summary and "output size" in summary and " s**" in summary
    download = h.recipe_download(record, session)
    assert Recipe.from_yaml(download.read_text()).weights == [0.3, 0.7]
    # merging again under the same name replaces it
    again = h.merge_form(recipe.with_weights([0.5, 0.5]), session=session, store=store, name="my-mix")
    assert again.path == record.path
    with pytest.raises(SessionError, match="Invalid output name"):
        h.merge_form(recipe, session=session, store=store, name="../escape")


def test_try_merged_next_to_an_ingredient(session, store, tiny_llama_base, tiny_llama_ft1):
    with pytest.raises(SessionError, match="no merged model"):
        h.try_form(session=session, store=store, text="Hello")
    recipe = h.build_recipe(rows_for(tiny_llama_base, tiny_llama_ft1))
    h.merge_form(recipe, session=session, store=store)
    view = h.try_form(session=session, store=store, text="Hello", ingredient=str(tiny_llama_base), max_new_tokens=4)
    assert isinstance(view.merged.text, str) and isinstance(view.ingredient.text, str)
    assert "cocktail" in view.note
    data = view.as_dict()
    assert data["kind"] == "decoder" and data["ingredient"] == view.ingredient.text
    with pytest.raises(SessionError, match="not an ingredient of this merge"):
        h.try_form(session=session, store=store, text="Hello", ingredient="org/some-70b-model")


def test_live_remerge_follows_the_sliders(session, store, tiny_llama_base, tiny_llama_ft1, tmp_path):
    from cocktail_core import merge

    rows = rows_for(tiny_llama_base, tiny_llama_ft1, weights=[0.2, 0.8])
    status = h.live_remerge(h.build_recipe(rows), session=session, store=store)
    assert "re-merged in" in status and session.live is not None
    first = session.live
    moved = h.set_weight(rows, rows[0]["key"], 0.9)
    status = h.live_remerge(h.build_recipe(moved), session=session, store=store)
    assert session.live is first and "ms" in status  # same models: re-merged, not reloaded
    expected = load_state_dict(merge(h.build_recipe(moved), tmp_path / "check").path)
    got = session.live.loaded.model.state_dict()
    assert all(got[k].cpu().equal(expected[k]) for k in expected)
    view = h.try_form(session=session, store=store, text="Hello", use_live=True, max_new_tokens=3)
    assert "in memory" in view.note


def test_live_remerge_over_the_budget_says_why(session, store, tiny_llama_base, tiny_llama_ft1, monkeypatch):
    monkeypatch.setenv("COCKTAIL_IN_MEMORY_MAX_MB", "0")
    status = h.live_remerge(h.build_recipe(rows_for(tiny_llama_base, tiny_llama_ft1)), session=session, store=store)
    assert status.startswith("In-memory re-merge is off") and "COCKTAIL_IN_MEMORY_MAX_MB" in status
    assert session.live is None


def test_live_remerge_of_mismatched_models_says_why(session, store, tiny_llama_base, tiny_bert_pair):
    status = h.live_remerge(h.build_recipe(rows_for(tiny_llama_base, tiny_bert_pair[0])), session=session,
                            store=store)
    assert status.startswith("In-memory re-merge is off") and "different architectures" in status
    assert session.live is None


# --------------------------------------------------------------------------- sessions


def test_sessions_are_isolated(store, tiny_llama_base, tiny_llama_ft1):
    alice, bob = store.get("alice-tab"), store.get("bob-tab")
    assert alice.folder != bob.folder and alice.folder.parent == bob.folder.parent == store.root
    assert "alice-tab" not in alice.folder.name  # folder names do not reveal the session hash
    record = h.merge_form(h.build_recipe(rows_for(tiny_llama_base, tiny_llama_ft1)), session=alice, store=store)
    # bob has nothing to try or push, and cannot read alice's merge as an input model
    with pytest.raises(SessionError, match="no merged model"):
        h.try_form(session=bob, store=store, text="Hello")
    with pytest.raises(SessionError, match="no merged model"):
        h.push_form(session=bob, token="hf_anything")
    view = h.preflight_form(rows_for(record.path, tiny_llama_base), session=bob, store=store)
    assert "not available to this session" in view.rows[0]["problem"]
    with pytest.raises(SessionError, match="not available"):
        h.merge_form(h.build_recipe(rows_for(record.path, tiny_llama_base)), session=bob, store=store, name="x")
    with pytest.raises(SessionError, match="not available"):
        h.try_form(session=alice, store=store, text="hi", ingredient=str(bob.folder / "merges" / "x"))
    # alice may use her own merge as an ingredient of a new mix
    assert h.preflight_form(rows_for(record.path, tiny_llama_base), session=alice, store=store).ok


def test_closing_and_sweeping_sessions(store):
    import tempfile

    a = store.get("a")
    (a.folder / "merges").mkdir()
    downloads = a.downloads_dir
    assert downloads.is_relative_to(Path(tempfile.gettempdir()).resolve())  # Gradio may serve it
    assert store.close("a") and not a.folder.exists() and not downloads.exists() and store.peek("a") is None
    assert not store.close("a")
    b = store.get("b")
    b.touched -= 10_000
    store.get("c")
    assert store.sweep(max_idle_s=3600) == 1 and not b.folder.exists() and len(store) == 1
    with pytest.raises(SessionError):
        store.get(None)


# --------------------------------------------------------------------------- push


def test_token_resolution_never_uses_the_server_token_on_a_space(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_server_secret_token")
    assert h.resolve_token("hf_oauth", "hf_typed", space=True) == "hf_oauth"
    assert h.resolve_token(None, " hf_typed ", space=True) == "hf_typed"
    assert h.resolve_token(None, "", space=True) is None
    assert h.resolve_token(None, "", space=False) == "hf_server_secret_token"
    monkeypatch.setenv("SPACE_ID", "someone/cocktail")
    assert h.on_space() and h.resolve_token(None, None) is None


def test_push_while_signed_out_is_a_readable_error(session):
    with pytest.raises(HubUnauthorizedError, match="signed out") as info:
        h.push_form(session=session, token=None)
    assert "token" in str(info.value)


def test_push_to_the_hub(session, store, local_hub, tiny_llama_base, tiny_llama_ft1):
    record = h.merge_form(h.build_recipe(rows_for(tiny_llama_base, tiny_llama_ft1)), session=session, store=store,
                          name="my-cocktail")
    assert h.default_repo_name(record.name, local_hub.token) == "alice/my-cocktail"
    assert h.default_repo_name(record.name, None) == "my-cocktail"
    seen = []
    url = h.push_form(session=session, repo_name="my-cocktail", private=True, license="mit", token=local_hub.token,
                      progress=lambda f, d: seen.append(f))
    assert url.endswith("alice/my-cocktail")
    files = local_hub.list_files("alice/my-cocktail")
    assert {"model.safetensors", "config.json", "README.md", "cocktail_recipe.yaml"} <= set(files)
    card = local_hub.read_file("alice/my-cocktail", "README.md").decode()
    assert "license: mit" in card
    assert "# my-cocktail" in card and 'from_pretrained("alice/my-cocktail"' in card  # the card names the repo
    assert "license: mit" not in (record.path / "README.md").read_text()  # the session's copy is untouched
    assert seen
    # a second push to the same, now non-empty, repo needs "replace"
    with pytest.raises(CocktailError):
        h.push_form(session=session, repo_name="my-cocktail", token=local_hub.token)
    h.push_form(session=session, repo_name="my-cocktail", token=local_hub.token, overwrite=True)


def test_push_errors_never_show_the_token(session, store, local_hub, tiny_llama_base, tiny_llama_ft1):
    h.merge_form(h.build_recipe(rows_for(tiny_llama_base, tiny_llama_ft1)), session=session, store=store)
    bad = "hf_not_a_real_token_1234567890"
    with pytest.raises(CocktailError) as info:
        h.push_form(session=session, token=bad)
    assert bad not in h.safe_error(info.value, bad)


def test_card_license_is_set_in_the_front_matter():
    from cocktail_core.card import with_license

    text = with_license("---\nlicense: apache-2.0\ntags:\n- merge\n---\n\n# Title\n", "mit")
    meta = yaml.safe_load(text.split("---")[1])
    assert meta == {"license": "mit", "tags": ["merge"]} and text.rstrip().endswith("# Title")
    assert "license: mit" in with_license("", "mit")


def test_examples_headers_follow_the_kind():
    assert h.example_headers("decoder") == ["prompt", "answer"]
    assert h.example_headers("encoder-decoder") == ["prompt", "answer"]
    assert h.example_headers("encoder") == ["query", "positive", "negative"]
    assert h.example_headers("reranker") == ["query", "positive", "negative"]
    assert len(h.empty_table("reranker")) == h.EXAMPLE_ROWS


def test_pasted_json_array_works_like_jsonl():
    text = json.dumps([{"input": p, "output": a} for p, a in EXAMPLES])
    assert h.examples_from_form("decoder", [], text) == [{"input": p, "output": a} for p, a in EXAMPLES]


# --------------------------------------------------------------------------- page wiring (no browser)


def test_page_follows_the_model_kind(store):
    import gradio as gr

    from ui_components.events import Events
    from ui_components.weights_panel import build_weights_panel

    with gr.Blocks():
        weights = build_weights_panel()
    ev = Events(store, weights)
    table, text, text_b, tokens = ev.kind_changed("reranker", h.empty_table("decoder"))
    assert table.headers == h.RETRIEVAL_HEADERS and text.label == "Query" and text_b.label == "Passage"
    assert text_b.visible and tokens.visible is False
    table, text, text_b, tokens = ev.kind_changed("encoder", h.empty_table("reranker"))
    assert table is gr.skip() or getattr(table, "__class__", None).__name__ != "Dataframe"  # same columns: kept
    assert text.label == "Text A" and text_b.label == "Text B"
    table, text, text_b, tokens = ev.kind_changed("decoder", h.empty_table("encoder"))
    assert table.headers == h.TEXT_HEADERS and text.label == "Prompt" and text_b.visible is False and tokens.visible
    rows = h.decorate(rows_for("org/a", "org/b", weights=[0.25, 0.75]), "linear", None)
    chart, base, ingredient = ev.refresh_views(rows, "linear", h.NO_BASE, "")
    assert list(chart["share"]) == [0.25, 0.75] and base.choices and ingredient.value == "org/b"
    by_method = weights.values_by_method([c.value for c in weights.param_components])
    assert by_method["ties"]["density"] == 1.0 and by_method["linear"]["normalize"] is True


def test_login_button_only_on_a_space(monkeypatch, tmp_path):
    import gradio as gr
    import gradio.routes

    import app
    from ui_components import push_panel

    def login_buttons(demo):
        return [b for b in demo.blocks.values() if isinstance(b, gr.LoginButton)]

    demos = [app.build_demo(SessionStore(tmp_path / "local"))]
    assert not login_buttons(demos[0])
    monkeypatch.setenv("SPACE_ID", "someone/cocktail")
    monkeypatch.setattr(push_panel, "oauth_available", lambda: False)  # no gradio[oauth]: token field only
    demos.append(app.build_demo(SessionStore(tmp_path / "no-oauth")))
    assert not login_buttons(demos[-1])
    monkeypatch.setattr(push_panel, "oauth_available", lambda: True)
    monkeypatch.setattr(gradio.routes, "attach_oauth", lambda _app: None)  # the OAuth routes need gradio[oauth]
    demos.append(app.build_demo(SessionStore(tmp_path / "space")))
    assert len(login_buttons(demos[-1])) == 1 and demos[-1].expects_oauth
    for demo in demos:
        demo.cocktail_store.close_all()


def test_page_errors_are_readable_and_token_free(caplog):
    from ui_components.events import fail

    token = "hf_secretsecretsecret123"
    known = fail(RecipeError("Unknown merge method 'lin'.", hint="Expected one of: linear."), token)
    assert str(known.message) == "Unknown merge method 'lin'. Expected one of: linear."
    try:
        raise ValueError(f"boom with {token}")
    except ValueError as exc:
        bug = fail(exc, token)
    assert "Internal error (ValueError" in bug.message and token not in bug.message
    assert "Traceback" not in bug.message and "server log" in bug.message
    assert "Traceback" in caplog.text and token not in caplog.text  # the server log has it, scrubbed
