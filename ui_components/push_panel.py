"""The push panel: publish the last merge to the Hub.

On a Space the user signs in with Hugging Face (``gr.LoginButton``, OAuth) and the merge is pushed
with their own token; locally the token comes from a password field or ``HF_TOKEN``. The token is
never shown, logged or returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui_components import handlers


@dataclass
class PushPanel:
    """Handles of the push panel (``login`` is None when not on a Space)."""

    login: gr.LoginButton | None
    token: gr.Textbox
    repo: gr.Textbox
    private: gr.Checkbox
    license: gr.Dropdown
    overwrite: gr.Checkbox
    push: gr.Button
    result: gr.Markdown


def oauth_available() -> bool:
    """Whether Gradio's "Sign in with Hugging Face" can run here (the ``gradio[oauth]`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("itsdangerous", "authlib"))


def build_push_panel(*, space: bool | None = None) -> PushPanel:
    """Draw the push panel (inside a Blocks context).

    The sign-in button appears on a Space when ``gradio[oauth]`` is installed; otherwise (and
    locally) the token field is the way in.
    """
    space = handlers.on_space() if space is None else space
    gr.Markdown("### 6 · Push to the Hub")
    login = None
    sign_in = space and oauth_available()
    with gr.Row():
        if sign_in:
            login = gr.LoginButton(elem_id="hf-login", scale=1)
        token = gr.Textbox(label="Hub token" + (" (or sign in)" if sign_in else
                                                 "" if space else " (or set HF_TOKEN)"), type="password",
                           placeholder="hf_…", max_lines=1, elem_id="push-token", scale=2)
        repo = gr.Textbox(label="Repository", placeholder="user/<name> (your namespace when left bare)", max_lines=1,
                          elem_id="push-repo", scale=2)
    with gr.Row():
        private = gr.Checkbox(value=True, label="Private", elem_id="push-private")
        license = gr.Dropdown(choices=list(handlers.LICENSES), value="", label="License",
                              info="Empty keeps the card's (the ingredients' shared license).", elem_id="push-license",
                              allow_custom_value=True)
        overwrite = gr.Checkbox(value=False, label="Replace the files of an existing repo", elem_id="push-overwrite")
    push = gr.Button("Push", variant="primary", elem_id="push-btn")
    result = gr.Markdown("", elem_id="push-result")
    return PushPanel(login=login, token=token, repo=repo, private=private, license=license, overwrite=overwrite,
                     push=push, result=result)
