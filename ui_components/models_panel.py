"""The models panel: 2 to 10 model rows (Hub id or local folder, weight slider, share, inline preflight).

The rows live in a ``gr.State`` list (see :mod:`ui_components.handlers.rows` for its shape) and are drawn
by ``@gr.render`` with a stable ``key=`` per row, so a row keeps what the user typed when others are
added or removed. The panel only draws; ``app.py`` attaches each row's events through
:attr:`ModelsPanel.row_hooks`, which the render calls for every row it draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from ui_components import handlers

PLACEHOLDER = "org/name, org/name@revision, or /path/to/local/folder"


@dataclass
class ModelRow:
    """Handles of one drawn model row (valid for one render)."""

    key: str
    index: int
    ref: gr.Textbox
    weight: gr.Slider
    remove: gr.Button


@dataclass
class ModelsPanel:
    """Handles of the models panel.

    Attributes:
        rows: the model rows (``gr.State``).
        extras: recipe fields the form does not show, and the weights' provenance (``gr.State``).
        kind: the detected model kind (``gr.State``).
        add: the "add a model" button.
        base: the base-model dropdown.
        summary: the preflight summary (kind, sizes, problems).
        row_hooks: called with each :class:`ModelRow` the render draws, to attach its events.
    """

    rows: gr.State
    extras: gr.State
    kind: gr.State
    add: gr.Button
    base: gr.Dropdown
    summary: gr.Markdown
    row_hooks: list[Callable[[ModelRow], None]] = field(default_factory=list)


def row_info_markdown(row: dict[str, Any]) -> str:
    """The inline preflight line under a row."""
    if row.get("problem"):
        return f"✗ {row['problem']}"
    if row.get("info"):
        return f"✓ {row['info']}"
    return ""


def build_models_panel() -> ModelsPanel:
    """Draw the models panel (inside a Blocks context).

    Components drawn by ``gr.render`` set ``interactive=True`` explicitly: Gradio 6 re-renders them
    as read-only otherwise (the inferred interactivity is lost on re-render).
    """
    rows = gr.State(handlers.initial_rows())
    extras = gr.State({})
    kind = gr.State(None)
    gr.Markdown("### 1 · Models\nA Hub id (optionally `@revision`) or a local folder per row; press Enter to check it. "
                "Nothing is downloaded until you merge.")
    panel = ModelsPanel(rows=rows, extras=extras, kind=kind, add=None, base=None, summary=None)  # type: ignore[arg-type]

    with gr.Column(elem_id="model-rows"):
        @gr.render(inputs=[rows])
        def _draw(current: list[dict[str, Any]]) -> None:
            n = len(current)
            for i, row in enumerate(current):
                key = row["key"]
                weight = float(row["weight"])
                with gr.Row(key=f"row-{key}", equal_height=True):
                    ref = gr.Textbox(value=row["ref"], label=f"Model {i + 1}", placeholder=PLACEHOLDER,
                                     key=f"ref-{key}", elem_id=f"model-ref-{i}", scale=6, max_lines=1,
                                     interactive=True)
                    slider = gr.Slider(minimum=min(0.0, weight), maximum=max(1.0, weight), step=0.01, value=weight,
                                       label="weight", key=f"weight-{key}", preserved_by_key=None,
                                       elem_id=f"model-weight-{i}", scale=3, interactive=True)
                    gr.Markdown(f"**{row.get('share') or ''}**", key=f"share-{key}", preserved_by_key=None,
                                elem_id=f"model-share-{i}", elem_classes=["model-share"])
                    remove = gr.Button("✕", key=f"remove-{key}", elem_id=f"model-remove-{i}", size="sm", scale=0,
                                       min_width=40, interactive=n > 2)
                gr.Markdown(row_info_markdown(row), key=f"info-{key}", preserved_by_key=None,
                            elem_id=f"model-info-{i}", elem_classes=["model-info"])
                handles = ModelRow(key=key, index=i, ref=ref, weight=slider, remove=remove)
                for hook in panel.row_hooks:
                    hook(handles)

    with gr.Row():
        panel.add = gr.Button("+ Add a model", elem_id="add-model", size="sm", scale=0, min_width=160)
        panel.base = gr.Dropdown(choices=[handlers.NO_BASE], value=handlers.NO_BASE, label="Base model",
                                 info="Task-vector methods subtract it; LM-Cocktail's linear mix may leave it unset.",
                                 elem_id="base-model", scale=2)
    panel.summary = gr.Markdown("Add at least two models.", elem_id="preflight-summary")
    return panel
