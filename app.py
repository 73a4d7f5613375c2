"""Cocktail web app: merge language models in the browser (run `python app.py`)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Cocktail") as demo:
        gr.Markdown("# Cocktail\nMerge language models, LM-Cocktail style. Use the CLI: `python -m cocktail_core --help`.")
    return demo


if __name__ == "__main__":
    build_demo().launch()
