"""Event functions of the page: Gradio values in, :mod:`ui_components.handlers` calls, updates out.

Each function takes the components' values positionally (then Gradio's injected request, OAuth
token and progress), resolves the session and the Hub token, calls a handler, and turns any error
into ``gr.Error`` with the text of :func:`cocktail_core.errors.format_error` (tokens scrubbed).
The wiring (which component feeds which function) is in ``app.py``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable

import gradio as gr

from cocktail_core.errors import CocktailError
from ui_components import handlers
from ui_components.session import Session, SessionStore
from ui_components.try_panel import ingredient_choices, inputs_for_kind
from ui_components.weights_panel import WeightsPanel, method_description


logger = logging.getLogger("cocktail.app")


def fail(exc: BaseException, token: str | None = None) -> gr.Error:
    """The ``gr.Error`` to raise for ``exc``: readable, no traceback, no token, kept on screen.

    Unexpected errors (bugs) are also logged on the server with their traceback, token removed.
    """
    if not isinstance(exc, CocktailError):
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        logger.error("internal error in an app action:\n%s", handlers.scrub(trace, token))
    return gr.Error(handlers.safe_error(exc, token), duration=None, print_exception=False)


def _progress(progress: Any) -> handlers.Progress:
    def report(fraction: float, desc: str) -> None:
        try:
            progress(max(0.0, min(1.0, fraction)), desc=desc)
        except Exception:  # progress is cosmetic; never fail an action over it
            pass

    return report


class Events:
    """The page's event functions, bound to one :class:`SessionStore`."""

    def __init__(self, store: SessionStore, weights: WeightsPanel) -> None:
        self.store = store
        self.weights = weights

    # ------------------------------------------------------------------ helpers

    def session(self, request: gr.Request | None) -> Session:
        return self.store.get(getattr(request, "session_hash", None))

    def _params(self, method: str, values: tuple[Any, ...]) -> dict[str, Any]:
        try:
            return handlers.collect_params(method, self.weights.values_by_method(values))
        except CocktailError:
            return {}

    def _preflight_outputs(self, rows: list[dict], method: str, base: str, dtype: str, extras: dict,
                           token: str | None, session: Session, values: tuple[Any, ...]) -> tuple[Any, ...]:
        base = handlers.pick_base(rows, method, base)
        view = handlers.preflight_form(rows, session=session, store=self.store, method=method,
                                       params=self._params(method, values), base=base, dtype=dtype, extras=extras,
                                       token=token)
        return (view.rows, gr.Dropdown(choices=handlers.base_choices(view.rows), value=base), view.summary, view.kind)

    # ------------------------------------------------------------------ page

    def on_load(self, request: gr.Request) -> None:
        """New page: sweep idle sessions and open this one."""
        self.store.sweep()
        self.session(request)

    def on_unload(self, request: gr.Request) -> None:
        """Tab closed: delete the session's folder and free its models."""
        self.store.close(getattr(request, "session_hash", None))

    # ------------------------------------------------------------------ model rows

    def ref_handler(self, key: str) -> Callable[..., Any]:
        """Row ``key``'s model was entered: set it and run the preflight."""

        def on_ref(rows: list[dict], value: str, method: str, base: str, dtype: str, extras: dict, token_box: str,
                   request: gr.Request, oauth_token: gr.OAuthToken | None, *values: Any) -> Any:
            row = next((r for r in rows if r["key"] == key), None)
            value = (value or "").strip()
            if row is None or (row["ref"] == value and (row.get("info") or not value)):
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            token = handlers.token_for(oauth_token, token_box)
            return self._preflight_outputs(handlers.set_ref(rows, key, value), method, base, dtype, extras, token,
                                           self.session(request), values)

        return on_ref

    def weight_handler(self, key: str) -> Callable[..., Any]:
        """Row ``key``'s slider was released: set its weight, refresh the shares."""

        def on_weight(rows: list[dict], value: float, method: str, base: str) -> Any:
            row = next((r for r in rows if r["key"] == key), None)
            if row is None or value is None or abs(float(row["weight"]) - float(value)) < 1e-9:
                return gr.skip()
            return handlers.decorate(handlers.set_weight(rows, key, value), method, base)

        return on_weight

    def remove_handler(self, key: str) -> Callable[..., Any]:
        """Row ``key``'s remove button: drop it and run the preflight again."""

        def on_remove(rows: list[dict], method: str, base: str, dtype: str, extras: dict, token_box: str,
                      request: gr.Request, oauth_token: gr.OAuthToken | None, *values: Any) -> Any:
            try:
                rows = handlers.remove_row(rows, key)
            except CocktailError as exc:
                raise fail(exc) from None
            token = handlers.token_for(oauth_token, token_box)
            return self._preflight_outputs(rows, method, base, dtype, extras, token, self.session(request), values)

        return on_remove

    def add_row(self, rows: list[dict], method: str, base: str) -> list[dict]:
        try:
            return handlers.decorate(handlers.add_row(rows), method, base)
        except CocktailError as exc:
            raise fail(exc) from None

    def recheck(self, rows: list[dict], method: str, base: str, dtype: str, extras: dict, token_box: str,
                request: gr.Request, oauth_token: gr.OAuthToken | None, *values: Any) -> Any:
        """Base, dtype or a parameter changed: run the preflight again."""
        token = handlers.token_for(oauth_token, token_box)
        return self._preflight_outputs(rows, method, base, dtype, extras, token, self.session(request), values)

    def method_changed(self, method: str, rows: list[dict], base: str, dtype: str, extras: dict, token_box: str,
                       request: gr.Request, oauth_token: gr.OAuthToken | None, *values: Any) -> Any:
        """Show the method's parameters and description; shares and preflight for the new method."""
        token = handlers.token_for(oauth_token, token_box)
        groups = self.weights.updates_for(method)
        checked = self._preflight_outputs(rows, method, base, dtype, extras, token, self.session(request), values)
        return (*groups, method_description(method), *checked)

    def refresh_views(self, rows: list[dict], method: str, base: str, ingredient: str) -> Any:
        """The rows changed: redraw the chart and the dropdowns that list the models."""
        choices = ingredient_choices(rows)
        return (handlers.chart_frame(rows, method, base),
                gr.Dropdown(choices=handlers.base_choices(rows), value=handlers.pick_base(rows, method, base)),
                gr.Dropdown(choices=choices, value=ingredient if ingredient and ingredient in choices else
                            (choices[-1] if len(choices) > 1 else "")))

    def kind_changed(self, kind: str | None, table: Any) -> Any:
        """The model kind changed: examples table columns and the try-it inputs follow it."""
        from ui_components.examples_panel import table_update

        columns = len(table[0]) if table else 0
        table_out = gr.skip() if columns == len(handlers.example_headers(kind)) else table_update(kind)
        return (table_out, *inputs_for_kind(kind))

    # ------------------------------------------------------------------ weights from examples

    def compute(self, rows: list[dict], kind: str | None, table: Any, paste: str, temperature: float,
                optimize: bool, method: str, base: str, dtype: str, extras: dict, token_box: str,
                request: gr.Request, oauth_token: gr.OAuthToken | None, progress: gr.Progress = gr.Progress(),
                *values: Any) -> Any:
        token = handlers.token_for(oauth_token, token_box)
        try:
            session = self.session(request)
            examples = handlers.examples_from_form(kind, table, paste)
            view = handlers.compute_weights_form(rows, session=session, store=self.store, examples=examples, kind=kind,
                                                 method=method, params=self._params(method, values), base=base,
                                                 dtype=dtype, extras=extras, temperature=temperature,
                                                 optimize=optimize, token=token, progress=_progress(progress))
        except Exception as exc:
            raise fail(exc, token) from None
        return view.rows, view.extras, view.losses_frame, view.weights_frame, view.summary

    # ------------------------------------------------------------------ merge

    def merge(self, rows: list[dict], method: str, base: str, dtype: str, extras: dict, name: str, token_box: str,
              request: gr.Request, oauth_token: gr.OAuthToken | None, progress: gr.Progress = gr.Progress(),
              *values: Any) -> Any:
        token = handlers.token_for(oauth_token, token_box)
        try:
            session = self.session(request)
            recipe = handlers.build_recipe(rows, method=method, params=self._params(method, values), base=base,
                                           dtype=dtype, extras=extras)
            record = handlers.merge_form(recipe, session=session, store=self.store, name=name, token=token,
                                         progress=_progress(progress))
            summary = handlers.merge_summary(record)
            download = handlers.recipe_download(record, session)
        except Exception as exc:
            raise fail(exc, token) from None
        return (summary, gr.DownloadButton(value=str(download), visible=True),
                handlers.default_repo_name(record.name, token), f"Merged model: `{record.name}`.")

    def load_recipe(self, path: str | None) -> Any:
        """A recipe file was uploaded: fill the whole form from it."""
        try:
            form = handlers.form_from_recipe(handlers.read_recipe_file(path))
        except Exception as exc:
            raise fail(exc) from None
        return (form.rows, gr.Dropdown(value=form.method), method_description(form.method),
                *self.weights.updates_for(form.method, form.params),
                gr.Dropdown(choices=handlers.base_choices(form.rows), value=form.base), gr.Dropdown(value=form.dtype),
                form.extras)

    # ------------------------------------------------------------------ try it

    def live(self, rows: list[dict], method: str, base: str, dtype: str, extras: dict, enabled: bool,
             token_box: str, request: gr.Request, oauth_token: gr.OAuthToken | None, *values: Any) -> str:
        """Re-merge in memory (when enabled) after the mix changed; returns the status line."""
        session = self.session(request)
        if not enabled:
            with session.lock:
                session.live = None
                session.live_error = None
            return ""
        token = handlers.token_for(oauth_token, token_box)
        try:
            recipe = handlers.build_recipe(rows, method=method, params=self._params(method, values), base=base,
                                           dtype=dtype, extras=extras)
        except CocktailError as exc:
            return "In-memory re-merge is waiting for a valid mix: " + handlers.safe_error(exc, token)
        return handlers.live_remerge(recipe, session=session, store=self.store, token=token)

    def try_it(self, text: str, text_b: str, ingredient: str, max_new_tokens: float, live: bool, token_box: str,
               request: gr.Request, oauth_token: gr.OAuthToken | None) -> Any:
        token = handlers.token_for(oauth_token, token_box)
        try:
            view = handlers.try_form(session=self.session(request), store=self.store, text=text or "",
                                     text_b=text_b or "", ingredient=ingredient, use_live=bool(live),
                                     max_new_tokens=int(max_new_tokens or 24), token=token)
        except Exception as exc:
            raise fail(exc, token) from None
        ing = view.ingredient.display() if view.ingredient is not None else ""
        timing = f" Merged: {view.merged.seconds:.2f} s" + (
            f", ingredient: {view.ingredient.seconds:.2f} s." if view.ingredient is not None else ".")
        return view.merged.display(), ing, view.note + timing

    # ------------------------------------------------------------------ push

    def token_entered(self, token_box: str, repo: str, request: gr.Request,
                      oauth_token: gr.OAuthToken | None) -> Any:
        """A token was typed: complete a bare repository name with the token's user."""
        token = handlers.token_for(oauth_token, token_box)
        repo = (repo or "").strip()
        if not token or "/" in repo:
            return gr.skip()
        record = self.session(request).last_merge
        name = repo or (record.name if record is not None else "")
        if not name:
            return gr.skip()
        full = handlers.default_repo_name(name, token)
        return full if "/" in full else gr.skip()

    def push(self, repo: str, private: bool, license: str, overwrite: bool, token_box: str, request: gr.Request,
             oauth_token: gr.OAuthToken | None, progress: gr.Progress = gr.Progress()) -> str:
        token = handlers.token_for(oauth_token, token_box)
        try:
            url = handlers.push_form(session=self.session(request), repo_name=repo, private=private, license=license,
                                     overwrite=overwrite, token=token, progress=_progress(progress))
        except Exception as exc:
            raise fail(exc, token) from None
        return f"✓ Pushed to [{url}]({url})"
