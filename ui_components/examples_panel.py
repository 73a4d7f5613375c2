"""The examples panel: a few examples of the target task set the weights (LM-Cocktail's "mix by data").

A five-row editable table (prompt/answer, or query/positive/negative for embedding models and
rerankers), a paste box for more as JSON or JSONL, the softmax temperature, the optimize option,
and charts of every model's loss and weight once computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui_components import handlers

PASTE_PLACEHOLDER = ('{"input": "What is the capital of France?", "output": "Paris."}\n'
                     '{"input": "2 + 2 =", "output": "4"}\n'
                     'or, for embedding models and rerankers:\n'
                     '{"query": "capital of France", "pos": ["Paris is the capital of France."], "neg": ["Berlin ..."]}')


@dataclass
class ExamplesPanel:
    """Handles of the examples panel."""

    table: gr.Dataframe
    paste: gr.Textbox
    temperature: gr.Slider
    optimize: gr.Checkbox
    compute: gr.Button
    summary: gr.Markdown
    losses: gr.BarPlot
    weights: gr.BarPlot


def table_update(kind: str | None) -> gr.Dataframe:
    """The table emptied and re-headed for ``kind``."""
    headers = handlers.example_headers(kind)
    return gr.Dataframe(value=handlers.empty_table(kind), headers=headers, column_count=len(headers))


def build_examples_panel() -> ExamplesPanel:
    """Draw the examples panel (inside a Blocks context)."""
    gr.Markdown("### 3 · Weights from examples\nGive about five examples of what the merged model should do; "
                "each model's loss on them sets its weight (softmax of −loss / temperature).")
    headers = handlers.example_headers("decoder")
    with gr.Row():
        with gr.Column(scale=3):
            table = gr.Dataframe(value=handlers.empty_table("decoder"), headers=headers, row_count=handlers.EXAMPLE_ROWS,
                                 column_count=len(headers), datatype="str", interactive=True,
                                 type="array", label="Examples", elem_id="examples-table", wrap=True)
            paste = gr.Textbox(label="…or paste JSON / JSONL", lines=3, placeholder=PASTE_PLACEHOLDER,
                               elem_id="examples-paste")
            with gr.Row():
                temperature = gr.Slider(minimum=0.1, maximum=20.0, step=0.1, value=5.0, label="Temperature",
                                        info="Lower favors the best model more.", elem_id="temperature")
                optimize = gr.Checkbox(value=False, label="Optimize",
                                       info="Refine the weights by gradient descent on the examples.",
                                       elem_id="optimize")
            compute = gr.Button("Compute weights", variant="primary", elem_id="compute-weights")
        with gr.Column(scale=2):
            summary = gr.Markdown("", elem_id="weights-summary")
            losses = gr.BarPlot(value=None, x="model", y="loss", title="Loss on the examples", height=180,
                                elem_id="losses-chart", sort=None)
            weights = gr.BarPlot(value=None, x="model", y="weight", title="Computed weight", height=180,
                                 y_lim=[0, 1], elem_id="computed-weights-chart", sort=None)
    return ExamplesPanel(table=table, paste=paste, temperature=temperature, optimize=optimize, compute=compute,
                         summary=summary, losses=losses, weights=weights)
