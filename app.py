"""Cocktail web app: mix language models in the browser, LM-Cocktail style (``python app.py``).

Pick 2 to 10 models, set the mix with sliders or compute it from a few examples, merge, try the
result next to an ingredient, and push it to the Hub. Runs locally or as a Hugging Face Space.

``build_demo()`` draws every panel (``ui_components/*``), then wires all events here in one place.
Environment (see :mod:`cocktail_core.settings`): ``COCKTAIL_MAX_MODELS``, ``COCKTAIL_MAX_TOTAL_GB``,
``COCKTAIL_MAX_EXAMPLES``, ``COCKTAIL_MERGE_CONCURRENCY``, ``COCKTAIL_WORK_DIR``,
``COCKTAIL_IN_MEMORY_MAX_MB``, ``COCKTAIL_ALLOW_LOCAL_PATHS``; ``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT`` as usual.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from cocktail_core import settings  # noqa: E402
from ui_components.api import Api  # noqa: E402
from ui_components.events import Events  # noqa: E402
from ui_components.examples_panel import ExamplesPanel, build_examples_panel  # noqa: E402
from ui_components.merge_panel import MergePanel, build_merge_panel  # noqa: E402
from ui_components.models_panel import ModelRow, ModelsPanel, build_models_panel  # noqa: E402
from ui_components.push_panel import PushPanel, build_push_panel  # noqa: E402
from ui_components.session import SessionStore  # noqa: E402
from ui_components.try_panel import TryPanel, build_try_panel  # noqa: E402
from ui_components.weights_panel import WeightsPanel, build_weights_panel  # noqa: E402

TITLE = "Cocktail"
INTRO = ("# Cocktail\nMerge language models LM-Cocktail style: pick a base model and its fine-tunes, set the mix "
         "with sliders or let a few examples compute it, merge, try the result, and push it to the Hub.")
CSS = """
#model-rows .model-info { font-size: 0.85em; opacity: 0.85; margin-top: -0.4em; }
#model-rows .model-share { min-width: 4em; text-align: center; align-self: center; }
"""
#: gradio's cached output files (recipe downloads) are deleted hourly once a day old
DELETE_CACHE = (3600, 86400)


def build_demo(store: SessionStore | None = None) -> gr.Blocks:
    """Build the app's Blocks (not launched). ``store`` holds the per-session folders."""
    store = SessionStore() if store is None else store
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(INTRO)
        models = build_models_panel()
        weights = build_weights_panel()
        examples = build_examples_panel()
        merge = build_merge_panel()
        trying = build_try_panel()
        push = build_push_panel()
        Api(store).register()
        _wire(demo, store, models, weights, examples, merge, trying, push)
    # merges (and other heavy jobs, which share the "heavy" concurrency id) run this many at a time
    demo.queue(default_concurrency_limit=settings.get().merge_concurrency)
    demo.cocktail_store = store  # type: ignore[attr-defined]  (tests and main() reach it here)
    return demo


def _wire(demo: gr.Blocks, store: SessionStore, models: ModelsPanel, weights: WeightsPanel, examples: ExamplesPanel,
          merge: MergePanel, trying: TryPanel, push: PushPanel) -> None:
    """Every event of the page, in one place."""
    ev = Events(store, weights)
    params = weights.param_components
    light = {"concurrency_limit": None, "api_visibility": "private"}
    heavy = {"concurrency_id": "heavy", "api_visibility": "private"}
    form = [models.rows, weights.method, models.base, merge.dtype, models.extras, push.token]
    checked = [models.rows, models.base, models.summary, models.kind]
    live_inputs = [models.rows, weights.method, models.base, merge.dtype, models.extras, trying.live, push.token]

    def wire_row(row: ModelRow) -> None:
        for trigger in (row.ref.submit, row.ref.blur):
            trigger(ev.ref_handler(row.key), [models.rows, row.ref, *form[1:], *params], checked,
                    show_progress="minimal", **light)
        row.weight.release(ev.weight_handler(row.key), [models.rows, row.weight, weights.method, models.base],
                           models.rows, show_progress="hidden", **light).then(
            ev.live, [*live_inputs, *params], trying.live_status, show_progress="minimal", **heavy)
        row.remove.click(ev.remove_handler(row.key), [*form, *params], checked, **light)

    models.row_hooks.append(wire_row)
    models.add.click(ev.add_row, [models.rows, weights.method, models.base], models.rows, **light)
    for trigger in (models.base.input, merge.dtype.input, *(c.input for c in params)):
        trigger(ev.recheck, [*form, *params], checked, show_progress="minimal", **light)
    weights.method.input(ev.method_changed, [weights.method, models.rows, models.base, merge.dtype, models.extras,
                                             push.token, *params],
                         [*weights.groups.values(), weights.description, *checked], **light).then(
        ev.live, [*live_inputs, *params], trying.live_status, **heavy)
    models.rows.change(ev.refresh_views, [models.rows, weights.method, models.base, trying.ingredient],
                       [weights.chart, models.base, trying.ingredient], show_progress="hidden", **light)
    models.kind.change(ev.kind_changed, [models.kind, examples.table],
                       [examples.table, trying.text, trying.text_b, trying.max_new_tokens], **light)

    examples.compute.click(
        ev.compute, [models.rows, models.kind, examples.table, examples.paste, examples.temperature,
                     examples.optimize, weights.method, models.base, merge.dtype, models.extras, push.token, *params],
        [models.rows, models.extras, examples.losses, examples.weights, examples.summary], **heavy).success(
        ev.live, [*live_inputs, *params], trying.live_status, **heavy)

    merge.merge.click(ev.merge, [models.rows, weights.method, models.base, merge.dtype, models.extras, merge.name,
                                 push.token, *params],
                      [merge.result, merge.download, push.repo, trying.note], **heavy)
    merge.upload.upload(ev.load_recipe, merge.upload,
                        [models.rows, weights.method, weights.description, *weights.groups.values(), *params,
                         models.base, merge.dtype, models.extras], **light).success(
        ev.recheck, [*form, *params], checked, **light)

    trying.live.change(ev.live, [*live_inputs, *params], trying.live_status, **heavy)
    trying.run.click(ev.try_it, [trying.text, trying.text_b, trying.ingredient, trying.max_new_tokens, trying.live,
                                 push.token],
                     [trying.merged_out, trying.ingredient_out, trying.note], **heavy)
    push.token.blur(ev.token_entered, [push.token, push.repo], push.repo, show_progress="hidden", **light)
    push.push.click(ev.push, [push.repo, push.private, push.license, push.overwrite, push.token], push.result,
                    concurrency_limit=4, api_visibility="private")

    demo.load(ev.on_load, None, None, **light)
    demo.unload(ev.on_unload)


def launch_kwargs() -> dict[str, Any]:
    """Look and feel, passed to ``launch()`` (Gradio 6 takes theme and CSS there)."""
    return {"css": CSS, "theme": gr.themes.Soft()}


def main() -> None:
    """Launch the app (``python app.py``); on a Space, Gradio picks the host and port."""
    demo = build_demo()
    atexit.register(demo.cocktail_store.close_all)  # type: ignore[attr-defined]
    demo.launch(**launch_kwargs())

if __name__ == "__main__":
    main()
