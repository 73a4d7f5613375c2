"""The "try it" panel: the merged model and a chosen ingredient side by side.

Decoders and encoder-decoders generate from a prompt; embedding models compare two texts;
rerankers score a passage for a query. With "re-merge in memory" on, moving a slider re-merges the
models in memory (no disk) and the next try uses that model; the time it took is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui_components import handlers

_LABELS = {
    "text": ("Prompt", None),
    "encoder": ("Text A", "Text B"),
    "reranker": ("Query", "Passage"),
}


@dataclass
class TryPanel:
    """Handles of the try-it panel."""

    text: gr.Textbox
    text_b: gr.Textbox
    ingredient: gr.Dropdown
    max_new_tokens: gr.Slider
    live: gr.Checkbox
    live_status: gr.Markdown
    run: gr.Button
    merged_out: gr.Textbox
    ingredient_out: gr.Textbox
    note: gr.Markdown


def inputs_for_kind(kind: str | None) -> tuple[gr.Textbox, gr.Textbox, gr.Slider]:
    """Updates of the two inputs and the token slider for ``kind``."""
    key = kind if kind in ("encoder", "reranker") else "text"
    first, second = _LABELS[key]
    return (gr.Textbox(label=first), gr.Textbox(label=second or "", visible=second is not None),
            gr.Slider(visible=key == "text"))


def build_try_panel() -> TryPanel:
    """Draw the try-it panel (inside a Blocks context)."""
    gr.Markdown("### 5 · Try it")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Prompt", lines=2, elem_id="try-text")
            text_b = gr.Textbox(label="", lines=2, visible=False, elem_id="try-text-b")
        with gr.Column(scale=2):
            ingredient = gr.Dropdown(choices=[""], value="", label="Compare with ingredient",
                                     elem_id="try-ingredient")
            max_new_tokens = gr.Slider(minimum=1, maximum=128, step=1, value=24, label="New tokens",
                                       elem_id="try-max-tokens")
            live = gr.Checkbox(value=False, label="Re-merge in memory when the mix changes",
                               info="Only when every model fits in memory (COCKTAIL_IN_MEMORY_MAX_MB).",
                               elem_id="try-live")
    live_status = gr.Markdown("", elem_id="live-status")
    run = gr.Button("Try", variant="primary", elem_id="try-btn")
    with gr.Row():
        merged_out = gr.Textbox(label="Merged model", lines=3, interactive=False, elem_id="try-merged-out")
        ingredient_out = gr.Textbox(label="Ingredient", lines=3, interactive=False, elem_id="try-ingredient-out")
    note = gr.Markdown("", elem_id="try-note")
    return TryPanel(text=text, text_b=text_b, ingredient=ingredient, max_new_tokens=max_new_tokens, live=live,
                    live_status=live_status, run=run, merged_out=merged_out, ingredient_out=ingredient_out, note=note)


def ingredient_choices(rows: list[dict]) -> list[str]:
    """Choices for the ingredient dropdown: none, then every filled model."""
    return [""] + handlers.refs_of(rows)
