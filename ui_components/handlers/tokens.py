"""Hub tokens and what the page may show: which token acts, and errors with tokens removed."""

from __future__ import annotations

import os
from typing import Any

from cocktail_core.errors import format_error


def on_space() -> bool:
    """True when running on a Hugging Face Space."""
    return bool(os.environ.get("SPACE_ID"))


def resolve_token(oauth_token: str | None, typed: str | None, *, space: bool | None = None) -> str | None:
    """The Hub token to act with: the signed-in user's, else the one typed, else (locally only) HF_TOKEN.

    On a Space the server's own ``HF_TOKEN`` is never used for a visitor's action.
    """
    if oauth_token:
        return oauth_token
    if typed and typed.strip():
        return typed.strip()
    if space if space is not None else on_space():
        return None
    return os.environ.get("HF_TOKEN") or None


def token_for(oauth_token: Any, typed: str | None = None) -> str | None:
    """:func:`resolve_token` from Gradio's injected ``gr.OAuthToken`` (or None) and the token typed (if any)."""
    return resolve_token(getattr(oauth_token, "token", None), typed)


def scrub(text: str, token: str | None) -> str:
    """``text`` with ``token`` (and anything token-shaped) removed."""
    from cocktail_core.hub import scrub_token

    return scrub_token(text, token)


def safe_error(exc: BaseException, token: str | None = None) -> str:
    """``format_error`` with any token removed: what the page may show."""
    text = format_error(exc).replace("rerun with --debug for the traceback and report it",
                                     "the server log has the details; please report it")
    return scrub(text, token)
