"""The merge panel: output name and dtype, the merge button with progress, the result, the recipe
download, and a recipe upload that fills the whole form."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from cocktail_core.recipe import DTYPES


@dataclass
class MergePanel:
    """Handles of the merge panel."""

    name: gr.Textbox
    dtype: gr.Dropdown
    merge: gr.Button
    result: gr.Markdown
    download: gr.DownloadButton
    upload: gr.UploadButton


def build_merge_panel() -> MergePanel:
    """Draw the merge panel (inside a Blocks context)."""
    gr.Markdown("### 4 · Merge")
    with gr.Row():
        name = gr.Textbox(value="cocktail", label="Output name", max_lines=1, elem_id="merge-name", scale=2)
        dtype = gr.Dropdown(choices=list(DTYPES), value="auto", label="Output dtype",
                            info="auto keeps the inputs' dtype.", elem_id="merge-dtype", scale=1)
    with gr.Row():
        merge = gr.Button("Merge", variant="primary", elem_id="merge-btn", scale=2)
        upload = gr.UploadButton("Load a recipe", file_types=[".yaml", ".yml", ".json"], type="filepath",
                                 elem_id="recipe-upload", scale=1, size="md")
        download = gr.DownloadButton("Download recipe (YAML)", visible=False, elem_id="recipe-download", scale=1,
                                     size="md")
    result = gr.Markdown("", elem_id="merge-result")
    return MergePanel(name=name, dtype=dtype, merge=merge, result=result, download=download, upload=upload)
