"""The named API endpoints: ``preflight``, ``compute_weights``, ``merge``, ``try_merged``, ``push``.

They are registered with ``gr.api`` (typed signatures, JSON in and out) so ``gradio_client`` users
get plain arguments instead of the page's component values. Each ``Client`` is one session: a merge
made through a client is what that client's ``try_merged`` and ``push`` use, and no other client
can see it. Hub tokens come from ``Client(url, oauth_token=...)`` (the endpoint receives it as a
``gr.OAuthToken``), or locally from ``HF_TOKEN``.

Example:
    >>> from gradio_client import Client
    >>> c = Client("http://127.0.0.1:7860")
    >>> c.predict(models=["org/a", "org/b"], api_name="/preflight")["ok"]
    True
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from cocktail_core.errors import CocktailError
from ui_components import handlers
from ui_components.events import fail as _fail
from ui_components.session import Session, SessionStore


class Api:
    """The endpoint functions, bound to one :class:`SessionStore`."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def _session(self, request: gr.Request | None) -> Session:
        return self.store.get(getattr(request, "session_hash", None))

    @staticmethod
    def _token(oauth_token: Any) -> str | None:
        return handlers.token_for(oauth_token)

    def register(self) -> None:
        """Register the five endpoints on the Blocks being built."""
        gr.api(self.preflight, api_name="preflight", concurrency_limit=None)
        gr.api(self.compute_weights, api_name="compute_weights", concurrency_id="heavy")
        gr.api(self.merge, api_name="merge", concurrency_id="heavy")
        gr.api(self.try_merged, api_name="try_merged", concurrency_id="heavy")
        gr.api(self.push, api_name="push", concurrency_limit=4)

    def preflight(
        self,
        models: list[str],
        weights: list[float] | None = None,
        method: str = "linear",
        base: str = "",
        params: dict | None = None,
        dtype: str = "auto",
        request: gr.Request = None,  # type: ignore[assignment]
        oauth_token: gr.OAuthToken | None = None,
    ) -> dict:
        """Check that models can be merged, from configs and safetensors headers only (nothing downloads).

        Returns ``{"ok", "kind", "models": [{"model", "info", "problem"}], "rows", "problems", "warnings",
        "download_bytes", "output_bytes", "summary"}``.
        """
        token = self._token(oauth_token)
        try:
            view = handlers.preflight_form(handlers.rows_for(models, weights), session=self._session(request),
                                           store=self.store, method=method, params=params, base=base or None,
                                           dtype=dtype, token=token)
        except Exception as exc:
            raise _fail(exc, token) from None
        return view.as_dict()

    def compute_weights(
        self,
        models: list[str],
        examples: str | list[dict],
        temperature: float = 5.0,
        optimize: bool = False,
        method: str = "linear",
        base: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
        oauth_token: gr.OAuthToken | None = None,
    ) -> dict:
        """Compute mixing weights from a few examples (JSON/JSONL text or a list of dicts).

        Returns ``{"models", "losses", "weights", "merged_loss_softmax", "merged_loss_optimized", "n_examples",
        "recipe_yaml"}``.
        """
        token = self._token(oauth_token)
        try:
            result = handlers.compute_weights_form(handlers.rows_for(models, None), session=self._session(request),
                                                   store=self.store, examples=examples, method=method,
                                                   base=base or None, temperature=temperature, optimize=optimize,
                                                   token=token)
        except Exception as exc:
            raise _fail(exc, token) from None
        return result.as_dict()

    def merge(
        self,
        models: list[str] | None = None,
        weights: list[float] | None = None,
        method: str = "linear",
        base: str = "",
        params: dict | None = None,
        dtype: str = "auto",
        name: str = "cocktail",
        recipe_yaml: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
        oauth_token: gr.OAuthToken | None = None,
    ) -> dict:
        """Merge the models (or the recipe given as YAML) into this client's session.

        Returns ``{"name", "kind", "seconds", "bytes_written", "files", "recipe_yaml"}``.
        """
        token = self._token(oauth_token)
        try:
            session = self._session(request)
            if recipe_yaml.strip():
                form = handlers.form_from_recipe(recipe_yaml)
                recipe = handlers.build_recipe(form.rows, method=form.method, params=form.params, base=form.base,
                                               dtype=form.dtype, extras=form.extras)
            else:
                recipe = handlers.build_recipe(handlers.rows_for(models, weights), method=method, params=params,
                                               base=base or None, dtype=dtype)
            record = handlers.merge_form(recipe, session=session, store=self.store, name=name, token=token)
        except Exception as exc:
            raise _fail(exc, token) from None
        return {"name": record.name, "kind": record.kind, "seconds": record.seconds,
                "bytes_written": record.bytes_written, "files": record.files(),
                "recipe_yaml": record.recipe_yaml}

    def try_merged(
        self,
        text: str,
        text_b: str = "",
        ingredient: str = "",
        weights: list[float] | None = None,
        max_new_tokens: int = 32,
        request: gr.Request = None,  # type: ignore[assignment]
        oauth_token: gr.OAuthToken | None = None,
    ) -> dict:
        """Run this session's merged model (and optionally one ingredient) on a prompt or text pair.

        With ``weights``, the last merge's models are re-merged in memory with those weights first
        (nothing is written); ``remerge_seconds`` says how long that took.

        Returns ``{"kind", "merged", "merged_text", "merged_score", "ingredient", "ingredient_score", "note",
        "remerge_seconds"}``.
        """
        token = self._token(oauth_token)
        try:
            session = self._session(request)
            remerge = None
            if weights is not None:
                record = session.require_merge()
                from cocktail_core.recipe import Recipe

                recipe = Recipe.from_yaml(record.recipe_yaml).with_weights(list(weights))
                status = handlers.live_remerge(recipe, session=session, store=self.store, token=token)
                if session.live is None:
                    raise CocktailError(status)
                remerge = session.live.last_seconds
            view = handlers.try_form(session=session, store=self.store, text=text, text_b=text_b,
                                     ingredient=ingredient, use_live=weights is not None,
                                     max_new_tokens=max_new_tokens, token=token)
        except Exception as exc:
            raise _fail(exc, token) from None
        return {**view.as_dict(), "remerge_seconds": remerge}

    def push(
        self,
        repo_name: str = "",
        private: bool = True,
        license: str = "",
        overwrite: bool = False,
        request: gr.Request = None,  # type: ignore[assignment]
        oauth_token: gr.OAuthToken | None = None,
    ) -> dict:
        """Push this session's last merge to the Hub (token: ``Client(..., oauth_token=...)``).

        Returns ``{"url", "repo_id"}``.
        """
        token = self._token(oauth_token)
        try:
            url = handlers.push_form(session=self._session(request), repo_name=repo_name, private=private,
                                     license=license, overwrite=overwrite, token=token)
        except Exception as exc:
            raise _fail(exc, token) from None
        repo_id = "/".join(url.rstrip("/").split("/")[-2:])
        return {"url": url, "repo_id": repo_id}
