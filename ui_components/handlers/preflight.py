"""The preflight of the form: each model's inline info or problem, and the summary box."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cocktail_core.errors import CocktailError, format_error

from ui_components.handlers.recipe_form import build_recipe
from ui_components.handlers.rows import decorate, filled
from ui_components.handlers.sources import inspect_ref
from ui_components.handlers.tokens import scrub
from ui_components.session import Session, SessionStore

#: the summary's problem line when only rows have problems
_FIX_ROWS = "Fix the models marked above."


def _row_info(source: Any) -> str:
    from cocktail_core.compat import human_bytes, human_count
    from cocktail_core.io.header import DTYPES

    dtype = str(DTYPES.get(source.dtype, source.dtype)).replace("torch.", "")
    where = "local folder" if source.is_local else f"download {human_bytes(source.download_bytes)}"
    return f"{source.architecture} · {human_count(source.num_parameters)} params · {dtype} · {where}"


@dataclass
class PreflightView:
    """What the preflight found, ready to show.

    Attributes:
        rows: the rows with ``info`` / ``problem`` filled.
        kind: detected model kind (None until two models are readable).
        ok: the form can be merged as it is.
        problems / warnings: for the summary.
        summary: markdown for the summary box.
        report: the core report (None when it could not run).
    """

    rows: list[dict[str, Any]]
    kind: str | None
    ok: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    report: Any = None

    def sources_for(self, recipe: Any) -> list[Any] | None:
        """The models' sources this preflight read, in ``recipe``'s order (``None`` when it checked other
        models): handed on so that configs and headers are not read a second time."""
        report = self.report
        if report is None or [str(r) for r in report.recipe.refs] != [str(r) for r in recipe.refs]:
            return None
        return list(report.sources)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly result for the API."""
        report = self.report
        return {
            "ok": self.ok,
            "kind": self.kind,
            "models": [{"model": r["ref"], "info": r["info"], "problem": r["problem"]} for r in filled(self.rows)],
            "rows": report.rows() if report is not None else [],
            "problems": self.problems,
            "warnings": self.warnings,
            "download_bytes": report.download_bytes if report is not None else 0,
            "output_bytes": report.output_bytes if report is not None else 0,
            "summary": self.summary,
        }


def preflight_form(
    rows: list[dict[str, Any]],
    *,
    session: Session,
    store: SessionStore | None = None,
    method: str = "linear",
    params: dict[str, Any] | None = None,
    base: str | None = None,
    dtype: str = "auto",
    extras: dict[str, Any] | None = None,
    token: str | None = None,
) -> PreflightView:
    """Check every model of the form (configs and headers only; nothing downloads).

    Never raises for user mistakes: each model's problem goes to its row, the rest to ``problems``.
    """
    from cocktail_core.compat import human_bytes, preflight

    out = [dict(r, info="", problem=None) for r in rows]
    sources: dict[str, Any] = {}
    for r in out:
        ref = r["ref"].strip()
        if not ref:
            continue
        try:
            source = inspect_ref(ref, session, store, token)
        except Exception as exc:  # user mistakes, and bugs too: a bug must not break the page
            r["problem"] = scrub(format_error(exc), token)
            continue
        sources[r["key"]] = source
        r["info"] = _row_info(source)
    out = decorate(out, method, base)
    models = filled(out)
    problems: list[str] = []
    warnings: list[str] = []
    kind = None
    report = None
    if len(models) < 2:
        problems.append("Add at least two models (Hub ids like org/name, or local folders).")
    elif any(r["problem"] for r in models):
        problems.append(_FIX_ROWS)
    else:
        try:
            recipe = build_recipe(out, method=method, params=params, base=base, dtype=dtype, extras=extras)
            report = preflight(recipe, output_dir=session.merges_dir, token=token,
                               sources=[sources[r["key"]] for r in models])
            problems += report.problems
            warnings += report.warnings
            kind = report.kind
        except CocktailError as exc:
            problems.append(scrub(format_error(exc), token))
    if kind is None and sources:
        from cocktail_core.io.sources import detect_kind

        kinds = {detect_kind(s.config) for s in sources.values()}
        kind = kinds.pop() if len(kinds) == 1 else None
    ok = not problems and not any(r["problem"] for r in models)
    lines = []
    if report is not None:
        lines.append(f"**Kind:** {kind or 'unknown'} · **download:** {human_bytes(report.download_bytes)} · "
                     f"**output:** {human_bytes(report.output_bytes)}")
    elif kind:
        lines.append(f"**Kind:** {kind}")
    if ok:
        lines.append("✓ These models can be merged.")
    else:
        lines.append(f"✗ {len(problems)} problem(s):" if problems else f"✗ {_FIX_ROWS}")
        lines += [f"- {p}" for p in problems]
    lines += [f"- warning: {w}" for w in warnings]
    return PreflightView(rows=out, kind=kind, ok=ok, problems=problems, warnings=warnings,
                         summary="\n".join(lines), report=report)


def require_mergeable(rows: list[dict[str, Any]], **kwargs: Any) -> PreflightView:
    """The preflight view of the form, or :class:`PreflightError` listing every problem.

    Takes the keyword arguments of :func:`preflight_form`.
    """
    from cocktail_core.errors import PreflightError

    view = preflight_form(rows, **kwargs)
    if not view.ok:
        row_problems = [f"{r['ref']}: {r['problem']}" for r in filled(view.rows) if r["problem"]]
        problems = row_problems + [p for p in view.problems if p != _FIX_ROWS]
        raise PreflightError(problems, hint="Fix these and try again.")
    return view
