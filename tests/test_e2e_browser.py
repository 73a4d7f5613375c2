"""End to end in a real headless Chromium: the whole page flow, from two models to a pushed merge.

Fill two models (after an unknown and a mismatched one), move a slider, compute weights from five
examples (after malformed ones), merge, try a prompt next to an ingredient, push to the local Hub
(after trying while signed out), asserting what the page shows at each step. Saves
``docs/screenshot.png`` for the README.

Debian chromium + the playwright package; never skipped when ``COCKTAIL_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"
EXAMPLES = [("What is the capital of France?", "Paris."), ("2 + 2 =", "4"), ("Say hello in French.", "Bonjour."),
            ("What color is the sky on a clear day?", "Blue."), ("The opposite of hot is", "cold.")]
TIMEOUT = 60_000  # ms, per wait; each step takes a second or two on two CPU cores


def _browser_or_skip() -> None:
    required = os.environ.get("COCKTAIL_REQUIRE_BROWSER") == "1"
    if not CHROMIUM.exists():
        if required:
            pytest.fail(f"COCKTAIL_REQUIRE_BROWSER=1 but {CHROMIUM} is missing: install Debian's chromium "
                        "(apt-get install -y chromium).", pytrace=False)
        pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
def app_url(tmp_path, local_hub):
    import app
    from ui_components.session import SessionStore

    store = SessionStore(tmp_path / "work")
    demo = app.build_demo(store)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs())
    try:
        yield url, store
    finally:
        demo.close()
        store.close_all()


def test_whole_flow_in_chromium(app_url, local_hub, tiny_llama_base, tiny_llama_ft1, tiny_bert_pair, monkeypatch,
                                tmp_path):
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright  # a missing package fails loudly, never skips

    url, store = app_url
    # the app runs in this process: relative model paths (as a user would type them) resolve here
    monkeypatch.chdir(tiny_llama_base.parent)
    base, ft, bert = (f"./{p.name}" for p in (tiny_llama_base, tiny_llama_ft1, tiny_bert_pair[0]))
    recipe = tmp_path / "task-arithmetic.yaml"
    recipe.write_text(f"method: task_arithmetic\nbase: {base}\nparams: {{lambda: 0.8}}\nmodels:\n"
                      f"  - model: {base}\n    weight: 1.0\n  - model: {ft}\n    weight: 0.7\n")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="cocktail-chromium-"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            _flow(page, expect, url, store, local_hub, base, ft, bert, recipe)
        finally:
            context.close()


def _flow(page, expect, url, store, local_hub, base, ft, bert, recipe) -> None:
    expect.set_options(timeout=TIMEOUT)
    page.goto(url)

    def ref(i: int):
        return page.locator(f"#model-ref-{i} textarea, #model-ref-{i} input").first

    def enter_model(i: int, value: str) -> None:
        ref(i).fill(value)
        ref(i).press("Enter")

    def toast_says(pattern: str) -> None:
        toast = page.locator('[data-testid="toast-body"]').filter(has_text=re.compile(pattern))
        expect(toast.first).to_be_visible()
        assert "Traceback" not in toast.first.inner_text()
        page.locator('[data-testid="toast-close"]').first.click()
        expect(page.locator('[data-testid="toast-body"]')).to_have_count(0)

    def share(i: int) -> int:
        return int(page.locator(f"#model-share-{i}").inner_text().strip().rstrip("%"))

    # 1. models: an unknown one, a mismatched one, then the right two -----------------------------
    expect(ref(0)).to_be_visible()
    enter_model(0, "./no/such/model")
    expect(page.locator("#model-info-0")).to_contain_text("not found")
    enter_model(0, str(base))
    expect(page.locator("#model-info-0")).to_contain_text("LlamaForCausalLM")
    enter_model(1, str(bert))
    expect(page.locator("#model-info-1")).to_contain_text("BertModel")  # the rows are redrawn: safe to type again
    expect(page.locator("#preflight-summary")).to_contain_text("different architectures")
    enter_model(1, str(ft))
    expect(page.locator("#model-info-1")).to_contain_text("LlamaForCausalLM")
    expect(page.locator("#preflight-summary")).to_contain_text("These models can be merged")
    expect(page.locator("#preflight-summary")).to_contain_text("decoder")
    expect(page.locator("#model-info-0")).to_contain_text("params")
    expect(page.locator("#model-info-0")).to_contain_text("float32")
    expect(page.locator("#model-share-0")).to_have_text("50%")

    # 2. move a slider: model 1 goes to about 0.2 ---------------------------------------------------
    track = page.locator("#model-weight-0 input[type=range]")
    box = track.bounding_box()
    track.click(position={"x": box["width"] * 0.2, "y": box["height"] / 2})
    expect(page.locator("#model-share-0")).not_to_have_text("50%")
    moved = float(page.locator("#model-weight-0 input[type=number]").input_value())
    assert 0.05 < moved < 0.4, moved
    assert abs(share(0) - 100 * moved / (moved + 1.0)) <= 1
    assert share(0) + share(1) in (99, 100, 101)
    expect(page.locator("#weights-chart")).to_contain_text("share")

    # 3. weights from examples: malformed paste first, then the five table rows --------------------
    page.locator("#examples-paste textarea").fill('{"input": "a", "output": "b"}\n{"input": "broken')
    page.locator("#compute-weights").click()
    toast_says("line 2")
    page.locator("#examples-paste textarea").fill("")
    for r, (prompt, answer) in enumerate(EXAMPLES):
        for c, value in enumerate((prompt, answer)):
            cell = page.locator(f'#examples-table [data-testid="cell-{r}-{c}"]')
            cell.dblclick()
            editor = cell.locator("textarea, input").first
            editor.fill(value)
            editor.press("Enter")
    expect(page.locator("#examples-table")).to_contain_text(EXAMPLES[-1][0])
    page.locator("#compute-weights").click()
    expect(page.locator("#weights-summary")).to_contain_text("Computed from 5 examples", timeout=TIMEOUT)
    expect(page.locator("#weights-summary")).to_contain_text("llama-ft1")
    expect(page.locator("#losses-chart")).to_contain_text("loss")
    # the sliders now hold the computed weights (the two tiny models are near-equal: about 50/50)
    page.wait_for_function(
        "([moved]) => { const v = parseFloat(document.querySelector('#model-weight-0 input[type=number]').value);"
        " return Math.abs(v - moved) > 0.05; }", arg=[moved], timeout=TIMEOUT)
    computed = float(page.locator("#model-weight-0 input[type=number]").input_value())
    assert 0.3 < computed < 0.7, (moved, computed)
    other = float(page.locator("#model-weight-1 input[type=number]").input_value())
    expect(page.locator("#model-share-0")).not_to_have_text(f"{round(100 * moved / (moved + 1.0))}%")
    assert abs(share(0) - 100 * computed / (computed + other)) <= 1 and share(0) + share(1) in (99, 100, 101)

    # 4. merge --------------------------------------------------------------------------------------
    page.locator("#merge-btn").click()
    result = page.locator("#merge-result")
    expect(result).to_contain_text("Merged 2 models", timeout=TIMEOUT)
    expect(result).to_contain_text("output size")
    expect(result).to_contain_text("model.safetensors")
    expect(page.locator("#recipe-download")).to_be_visible()
    session_dirs = [p for p in store.root.iterdir() if p.is_dir()]
    assert len(session_dirs) == 1 and (session_dirs[0] / "merges" / "cocktail" / "model.safetensors").is_file()

    # 5. try a prompt, merged model next to an ingredient -------------------------------------------
    page.locator("#try-text textarea").fill("The capital of France is")
    page.locator("#try-btn").click()
    expect(page.locator("#try-note")).to_contain_text("Merged model: cocktail (merged in", timeout=TIMEOUT)
    expect(page.locator("#try-note")).to_contain_text("ingredient")
    merged_text = page.locator("#try-merged-out textarea").input_value()
    ingredient_text = page.locator("#try-ingredient-out textarea").input_value()
    assert merged_text and ingredient_text

    # 6. push: signed out first, then with a token -------------------------------------------------
    page.locator("#push-btn").click()
    toast_says("signed out")
    expect(page.locator("#push-result")).not_to_contain_text("Pushed")
    page.locator("#push-token input").fill(local_hub.token)
    page.locator("#push-token input").press("Tab")
    expect(page.locator("#push-repo input")).to_have_value("alice/cocktail")
    page.locator("#push-btn").click()
    expect(page.locator("#push-result")).to_contain_text("Pushed to", timeout=TIMEOUT)
    expect(page.locator("#push-result a")).to_have_attribute("href", re.compile(r"alice/cocktail$"))
    assert {"model.safetensors", "README.md", "cocktail_recipe.yaml"} <= set(local_hub.list_files("alice/cocktail"))
    assert local_hub.token not in page.content()

    # the page for the README ------------------------------------------------------------------------
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # a recipe upload fills the whole form --------------------------------------------------------------
    page.locator("input[type=file][data-testid='Load a recipe-upload-button']").set_input_files(str(recipe))
    expect(page.locator("#method input")).to_have_value("task_arithmetic")
    expect(page.locator("#params-task_arithmetic").first).to_be_visible()
    expect(page.locator("#param-task_arithmetic-lambda input[type=number]")).to_have_value("0.8")
    expect(page.locator("#base-model input")).to_have_value(base)
    expect(page.locator("#model-share-0")).to_have_text("base")
    expect(page.locator("#model-share-1")).to_have_text("100%")
    expect(ref(1)).to_have_value(ft)
    expect(page.locator("#model-weight-1 input[type=number]")).to_have_value("0.7")
    expect(page.locator("#preflight-summary")).to_contain_text("These models can be merged")

    # closing the tab ends the session: its folder goes away -----------------------------------------
    page.close()
    deadline = time.time() + 30
    while any(p.is_dir() for p in store.root.iterdir()) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(p.is_dir() for p in store.root.iterdir()), "the session folder outlived its tab"
