"""The app's named API endpoints, called with gradio_client against a running app (tiny local models).

Endpoints: /preflight, /compute_weights, /merge, /try_merged, /push. Each Client is one session.
"""

from __future__ import annotations

import json

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from ui_components.session import SessionStore

ENDPOINTS = {"/preflight", "/compute_weights", "/merge", "/try_merged", "/push"}
EXAMPLES = [{"input": "What is the capital of France?", "output": "Paris."}, {"input": "2 + 2 =", "output": "4"},
            {"input": "Say hello in French.", "output": "Bonjour."}, {"input": "Sky color?", "output": "Blue."},
            {"input": "The opposite of hot is", "output": "cold."}]


@pytest.fixture(scope="module")
def running_app(tmp_path_factory):
    import app

    store = SessionStore(tmp_path_factory.mktemp("app-work"))
    demo = app.build_demo(store)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield demo, url
    finally:
        demo.close()
        store.close_all()


@pytest.fixture
def url(running_app):
    return running_app[1]


@pytest.fixture
def store(running_app) -> SessionStore:
    return running_app[0].cocktail_store


def client(url: str, **kwargs) -> Client:
    return Client(url, verbose=False, **kwargs)


def test_the_five_endpoints_are_named_and_typed(url):
    info = client(url).view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == ENDPOINTS  # the page's own events are private
    params = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in info["named_endpoints"].items()}
    assert params["/preflight"] == ["models", "weights", "method", "base", "params", "dtype"]
    assert params["/compute_weights"][:4] == ["models", "examples", "temperature", "optimize"]
    assert params["/merge"] == ["models", "weights", "method", "base", "params", "dtype", "name", "recipe_yaml"]
    assert params["/try_merged"] == ["text", "text_b", "ingredient", "weights", "max_new_tokens"]
    assert params["/push"] == ["repo_name", "private", "license", "overwrite"]
    assert info["named_endpoints"]["/push"].get("oauth_token") == "optional"


def test_preflight(url, tiny_llama_base, tiny_llama_ft1, tiny_bert_pair):
    c = client(url)
    ok = c.predict(models=[str(tiny_llama_base), str(tiny_llama_ft1)], weights=[0.3, 0.7], api_name="/preflight")
    assert ok["ok"] and ok["kind"] == "decoder" and ok["output_bytes"] > 0
    assert [r["architecture"] for r in ok["rows"]] == ["LlamaForCausalLM"] * 2
    unknown = c.predict(models=[str(tiny_llama_base), "./no/such/model"], api_name="/preflight")
    assert not unknown["ok"] and "not found" in unknown["models"][1]["problem"]
    mismatched = c.predict(models=[str(tiny_llama_base), str(tiny_bert_pair[0])], api_name="/preflight")
    assert not mismatched["ok"] and any("different architectures" in p for p in mismatched["problems"])


def test_compute_weights(url, tiny_llama_base, tiny_llama_ft1):
    c = client(url)
    models = [str(tiny_llama_base), str(tiny_llama_ft1)]
    jsonl = "\n".join(json.dumps(e) for e in EXAMPLES)
    result = c.predict(models=models, examples=jsonl, temperature=5.0, api_name="/compute_weights")
    assert result["n_examples"] == 5 and sum(result["weights"]) == pytest.approx(1.0, abs=1e-6)
    assert len(result["losses"]) == 2 and "weights_from" in result["recipe_yaml"]
    as_list = c.predict(models=models, examples=EXAMPLES, api_name="/compute_weights")
    assert as_list["weights"] == pytest.approx(result["weights"])
    with pytest.raises(AppError, match="line 2") as info:
        c.predict(models=models, examples='{"input": "a", "output": "b"}\n{"input": ', api_name="/compute_weights")
    assert "Traceback" not in str(info.value)
    with pytest.raises(AppError, match="line 1"):  # example text is parsed, never opened as a server path
        c.predict(models=models, examples="/etc/hostname", api_name="/compute_weights")


def test_merge_then_try_in_the_same_session_only(url, store, tiny_llama_base, tiny_llama_ft1):
    alice, bob = client(url), client(url)
    models = [str(tiny_llama_base), str(tiny_llama_ft1)]
    merged = alice.predict(models=models, weights=[0.4, 0.6], name="mix", api_name="/merge")
    assert merged["name"] == "mix" and merged["kind"] == "decoder" and "model.safetensors" in merged["files"]
    assert merged["bytes_written"] > 0 and "weight: 0.6" in merged["recipe_yaml"]

    tried = alice.predict(text="Hello", ingredient=models[0], max_new_tokens=4, api_name="/try_merged")
    assert tried["kind"] == "decoder" and isinstance(tried["merged"], str) and isinstance(tried["ingredient"], str)
    assert tried["remerge_seconds"] is None
    live = alice.predict(text="Hello", weights=[0.9, 0.1], max_new_tokens=4, api_name="/try_merged")
    assert live["remerge_seconds"] > 0 and "in memory" in live["note"]

    # bob's session has no merge, and alice's merged folder is not an input bob may use
    with pytest.raises(AppError, match="no merged model in this session"):
        bob.predict(text="Hello", api_name="/try_merged")
    session = store.peek(alice.session_hash)
    assert session is not None and session.last_merge.path.is_dir()
    with pytest.raises(AppError, match="not available to this session"):
        bob.predict(models=[str(session.last_merge.path), models[0]], api_name="/merge")
    # closing alice's session deletes her folder
    folder = session.folder
    assert store.close(alice.session_hash) and not folder.exists()


def test_merge_from_a_recipe_and_readable_errors(url, tiny_llama_base, tiny_llama_ft1):
    c = client(url)
    recipe = (f"method: task_arithmetic\nbase: {tiny_llama_base}\nmodels:\n  - model: {tiny_llama_base}\n"
              f"    weight: 1.0\n  - model: {tiny_llama_ft1}\n    weight: 0.5\n")
    merged = c.predict(recipe_yaml=recipe, name="ta", api_name="/merge")
    assert "task_arithmetic" in merged["recipe_yaml"]
    with pytest.raises(AppError, match="Unknown merge method 'lin'") as info:
        c.predict(models=[str(tiny_llama_base), str(tiny_llama_ft1)], method="lin", api_name="/merge")
    assert "Traceback" not in str(info.value)
    with pytest.raises(AppError, match="not found"):
        c.predict(models=[str(tiny_llama_base), "./missing-model"], api_name="/merge")
    with pytest.raises(AppError, match="Invalid output name"):
        c.predict(models=[str(tiny_llama_base), str(tiny_llama_ft1)], name="../../etc", api_name="/merge")


def test_push(url, local_hub, tiny_llama_base, tiny_llama_ft1):
    signed_out = client(url)
    signed_out.predict(models=[str(tiny_llama_base), str(tiny_llama_ft1)], name="pushed", api_name="/merge")
    with pytest.raises(AppError, match="signed out"):
        signed_out.predict(repo_name="pushed", api_name="/push")

    c = client(url, oauth_token=local_hub.token)
    c.predict(models=[str(tiny_llama_base), str(tiny_llama_ft1)], name="pushed", api_name="/merge")
    result = c.predict(repo_name="pushed", private=True, license="apache-2.0", api_name="/push")
    assert result["repo_id"] == "alice/pushed" and result["url"].endswith("alice/pushed")
    assert {"model.safetensors", "README.md", "cocktail_recipe.yaml"} <= set(local_hub.list_files("alice/pushed"))
    with pytest.raises(AppError, match="pushed") as info:  # not empty any more: refused without overwrite
        c.predict(repo_name="pushed", api_name="/push")
    assert local_hub.token not in str(info.value)


def test_hub_models_through_the_api(url, local_hub, tiny_llama_base, tiny_llama_ft1):
    local_hub.seed_repo("alice/base", tiny_llama_base)
    local_hub.seed_repo("alice/ft", tiny_llama_ft1)
    c = client(url)
    report = c.predict(models=["alice/base", "alice/ft"], api_name="/preflight")
    assert report["ok"] and report["download_bytes"] > 0
    merged = c.predict(models=["alice/base", "alice/ft@main"], api_name="/merge")
    assert "alice/ft@" in merged["recipe_yaml"]  # pinned to the commit used
    unknown = c.predict(models=["alice/base", "alice/does-not-exist"], api_name="/preflight")
    assert not unknown["ok"] and "alice/does-not-exist" in unknown["models"][1]["problem"]
