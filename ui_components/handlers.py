"""Plain functions behind the web app: UI values in, core calls, displayable values out.

Nothing here builds components and nothing computes merge math: the functions convert what the
page holds (model rows, dropdown values, table rows) into a :class:`~cocktail_core.Recipe` and call
the core (:mod:`cocktail_core.compat`, :mod:`cocktail_core.engine`, :mod:`cocktail_core.weights`,
:mod:`cocktail_core.playground`, :mod:`cocktail_core.hub`). They raise
:class:`~cocktail_core.errors.CocktailError` for anything a user can cause; the event layer turns
that into ``gr.Error(format_error(exc))``. Tests call them directly, without a browser.

Model rows are plain dicts ``{"key", "ref", "weight", "info", "problem", "share"}``: ``key`` is a
stable id for ``gr.render(key=...)``; ``info``/``problem`` are the row's inline preflight result;
``share`` is the normalized share shown beside the slider.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from cocktail_core import methods, settings
from cocktail_core.errors import CocktailError, ExamplesError, RecipeError, format_error
from cocktail_core.recipe import ModelRef, Recipe

from ui_components.session import MergeRecord, Session, SessionError, SessionStore

#: progress callback of the event layer: ``progress(fraction, description)``
Progress = Callable[[float, str], None]

#: licenses offered in the push panel ("" keeps what the card says)
LICENSES = ("", "apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "openrail", "llama3",
            "llama3.1", "gemma", "other")
TEXT_HEADERS = ["prompt", "answer"]
RETRIEVAL_HEADERS = ["query", "positive", "negative"]
EXAMPLE_ROWS = 5
NO_BASE = "(none)"


def _noop(_fraction: float, _desc: str) -> None:
    return None


# --------------------------------------------------------------------------- model rows


def new_row(ref: str = "", weight: float = 1.0) -> dict[str, Any]:
    """A fresh model row with a new stable key."""
    return {"key": secrets.token_hex(4), "ref": ref, "weight": float(weight), "info": "", "problem": None,
            "share": ""}


def initial_rows() -> list[dict[str, Any]]:
    """The form's starting rows: two empty models."""
    return [new_row(), new_row()]


def add_row(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows plus one empty row.

    Raises:
        RecipeError: already at ``COCKTAIL_MAX_MODELS``.
    """
    limit = settings.get().max_models
    if len(rows) >= limit:
        raise RecipeError(f"This installation merges at most {limit} models.",
                          hint="Remove a model first (COCKTAIL_MAX_MODELS sets the limit).")
    return [dict(r) for r in rows] + [new_row(weight=1.0)]


def remove_row(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows without the row ``key``.

    Raises:
        RecipeError: only two rows are left (a merge needs two models).
    """
    if len(rows) <= 2:
        raise RecipeError("A merge needs at least two models; this row cannot be removed.",
                          hint="Change its model instead.")
    return [dict(r) for r in rows if r["key"] != key]


def set_ref(rows: list[dict[str, Any]], key: str, ref: str) -> list[dict[str, Any]]:
    """Rows with row ``key``'s model set to ``ref`` (its preflight info cleared when it changed)."""
    out = []
    for r in rows:
        r = dict(r)
        if r["key"] == key and r["ref"] != (ref or "").strip():
            r.update(ref=(ref or "").strip(), info="", problem=None)
        out.append(r)
    return out


def set_weight(rows: list[dict[str, Any]], key: str, weight: float | None) -> list[dict[str, Any]]:
    """Rows with row ``key``'s weight set."""
    if weight is None or not math.isfinite(float(weight)):
        return rows
    return [dict(r, weight=float(weight)) if r["key"] == key else dict(r) for r in rows]


def set_weights(rows: list[dict[str, Any]], weights: list[float]) -> list[dict[str, Any]]:
    """Rows with the filled rows' weights replaced, in order."""
    it = iter(weights)
    out = []
    for r in rows:
        r = dict(r)
        if r["ref"].strip():
            r["weight"] = round(float(next(it)), 4)
        out.append(r)
    return out


def filled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that name a model."""
    return [r for r in rows if (r.get("ref") or "").strip()]


def refs_of(rows: list[dict[str, Any]]) -> list[str]:
    return [r["ref"].strip() for r in filled(rows)]


def _method(name: str | None) -> Any:
    try:
        return methods.get(name or "linear")
    except CocktailError:
        return methods.get("linear")


def _same_ref(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return str(ModelRef.parse(a)) == str(ModelRef.parse(b)) or ModelRef.parse(a).path == ModelRef.parse(b).path
    except CocktailError:
        return a.strip() == b.strip()


def shares(rows: list[dict[str, Any]], method: str | None, base: str | None) -> list[float | None]:
    """Each row's normalized share of the mix (None where it does not count).

    Methods built on task vectors ignore the base's weight; slerp and model_stock ignore weights.
    """
    m = _method(method)
    base = None if base in (None, "", NO_BASE) else base
    counted = [bool(r["ref"].strip()) and m.uses_weights and not (m.needs_base and _same_ref(r["ref"], base))
               for r in rows]
    total = sum(abs(r["weight"]) for r, c in zip(rows, counted) if c)
    return [(r["weight"] / total if total else 0.0) if c else None for r, c in zip(rows, counted)]


def decorate(rows: list[dict[str, Any]], method: str | None, base: str | None) -> list[dict[str, Any]]:
    """Rows with their ``share`` text filled for the current method and base."""
    m = _method(method)
    base = None if base in (None, "", NO_BASE) else base
    out = []
    for r, s in zip(rows, shares(rows, method, base)):
        r = dict(r)
        if not r["ref"].strip():
            r["share"] = ""
        elif m.needs_base and _same_ref(r["ref"], base):
            r["share"] = "base"
        elif s is None:
            r["share"] = f"not used by {m.name}"
        else:
            r["share"] = f"{s:.0%}"
        out.append(r)
    return out


def row_label(index: int, ref: str) -> str:
    """``"1. name"``: a short unique label for charts and dropdowns."""
    try:
        name = ModelRef.parse(ref).display_name
    except CocktailError:
        name = ref
    return f"{index + 1}. {name}"


def chart_frame(rows: list[dict[str, Any]], method: str | None, base: str | None) -> Any:
    """The mix as a DataFrame (``model``, ``share``) for the weights bar chart."""
    import pandas as pd

    data = [(row_label(i, r["ref"]), round(float(s), 4))
            for i, (r, s) in enumerate(zip(filled(rows), shares(filled(rows), method, base))) if s is not None]
    return pd.DataFrame(data, columns=["model", "share"])


def base_choices(rows: list[dict[str, Any]]) -> list[str]:
    """Choices of the base dropdown: none, then every filled model."""
    return [NO_BASE] + refs_of(rows)


def pick_base(rows: list[dict[str, Any]], method: str | None, base: str | None) -> str:
    """The base to show: kept when still a model; the first model when the method needs one."""
    refs = refs_of(rows)
    if base and base != NO_BASE and any(_same_ref(base, r) for r in refs):
        return next(r for r in refs if _same_ref(base, r))
    if _method(method).needs_base and refs:
        return refs[0]
    return NO_BASE


# --------------------------------------------------------------------------- recipe


def collect_params(method: str, values: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The chosen method's parameters out of every method's parameter values."""
    m = methods.get(method)
    given = (values or {}).get(method, {})
    return {p.name: given[p.name] for p in m.parameters if p.name in given and given[p.name] is not None}


def build_recipe(
    rows: list[dict[str, Any]],
    *,
    method: str = "linear",
    params: dict[str, Any] | None = None,
    base: str | None = None,
    dtype: str = "auto",
    extras: dict[str, Any] | None = None,
) -> Recipe:
    """The recipe the form describes.

    ``extras`` carries recipe fields the form does not show (shard size, seed, tokenizer source)
    and the weights' provenance when they were computed from examples and not moved since.

    Raises:
        RecipeError: fewer than two models, a duplicate, a method without its base...
    """
    models = filled(rows)
    data: dict[str, Any] = {
        "models": [{"model": r["ref"].strip(), "weight": float(r["weight"])} for r in models],
        "method": method or "linear",
        "params": dict(params or {}),
        "dtype": dtype or "auto",
    }
    if base and base != NO_BASE:
        data["base"] = base
    extras = extras or {}
    for key in ("shard_size", "seed"):
        if extras.get(key) not in (None, ""):
            data[key] = extras[key]
    refs = [m["model"] for m in data["models"]]
    if extras.get("tokenizer_source") and any(_same_ref(extras["tokenizer_source"], r) for r in refs):
        data["tokenizer_source"] = extras["tokenizer_source"]
    provenance, computed = extras.get("weights_from"), extras.get("computed_weights")
    if provenance and computed and len(computed) == len(models) and all(
            abs(float(a) - float(r["weight"])) < 5e-4 for a, r in zip(computed, models)):
        data["weights_from"] = provenance
    return Recipe.validated(data, source="form")


@dataclass
class FormValues:
    """Everything a recipe sets in the form (for a recipe upload)."""

    rows: list[dict[str, Any]]
    method: str
    params: dict[str, Any]
    base: str
    dtype: str
    extras: dict[str, Any]


def form_from_recipe(text: str) -> FormValues:
    """Fill the form from a recipe's YAML (or JSON) text.

    Raises:
        RecipeError: the recipe is invalid, or has more models than this installation allows.
    """
    recipe = Recipe.from_yaml(text, source="uploaded recipe")
    limit = settings.get().max_models
    if len(recipe.models) > limit:
        raise RecipeError(f"The recipe has {len(recipe.models)} models; this installation merges at most {limit}.")
    rows = [new_row(str(m.model), m.weight) for m in recipe.models]
    extras: dict[str, Any] = {"shard_size": recipe.shard_size, "seed": recipe.seed}
    if recipe.tokenizer_source is not None:
        extras["tokenizer_source"] = str(recipe.tokenizer_source)
    if recipe.weights_from is not None:
        extras["weights_from"] = recipe.weights_from.model_dump(exclude_none=True)
        extras["computed_weights"] = list(recipe.weights)
    base = str(recipe.base) if recipe.base is not None else NO_BASE
    return FormValues(rows=decorate(rows, recipe.method, base), method=recipe.method, params=dict(recipe.params),
                      base=base, dtype=recipe.dtype, extras=extras)


def read_recipe_file(path: str | Path | None) -> str:
    """The text of an uploaded recipe file.

    Raises:
        RecipeError: no file, or not text.
    """
    if not path:
        raise RecipeError("No recipe file was uploaded.", hint="Choose a .yaml, .yml or .json recipe.")
    p = Path(path)
    if p.stat().st_size > 1_000_000:
        raise RecipeError(f"The recipe file {p.name} is larger than 1 MB; a recipe is a few lines of YAML.")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"The recipe file {p.name} is not a text file ({exc}).") from None


# --------------------------------------------------------------------------- preflight


def local_paths_allowed() -> bool:
    """Whether model references may be local folders.

    ``COCKTAIL_ALLOW_LOCAL_PATHS`` decides; when it is unset, a Space refuses them (a visitor must not
    read the server's disk) and a local run allows them.
    """
    if "COCKTAIL_ALLOW_LOCAL_PATHS" not in os.environ and on_space():
        return False
    return settings.get().allow_local_paths


def check_local(ref: str, session: Session, store: SessionStore | None) -> None:
    """Refuse local folders when the installation forbids them, and folders of other sessions.

    Raises:
        SessionError: the reference is a local path that this session may not read.
    """
    try:
        parsed = ModelRef.parse(ref)
    except CocktailError:
        return
    if not parsed.is_local:
        return
    if not local_paths_allowed():
        raise SessionError(f"Model {ref}: local folders are disabled here.",
                           hint="Give a Hub id like org/name (COCKTAIL_ALLOW_LOCAL_PATHS=0 on this installation).")
    if store is not None:
        store.check_path(parsed.path, session)


def inspect_ref(ref: str, session: Session, store: SessionStore | None, token: str | None) -> Any:
    """A model's metadata (config, tensor headers); Hub models' are cached in the session.

    Raises:
        CocktailError: unknown model, no safetensors, Hub errors, a path this session may not read.
    """
    from cocktail_core.io.sources import inspect

    check_local(ref, session, store)
    parsed = ModelRef.parse(ref)
    if parsed.is_local:  # cheap to read again, and the folder may have changed
        return inspect(parsed, token=token)
    key = str(parsed)
    cached = session.sources.get(key)
    if cached is not None:
        return cached
    source = inspect(parsed, token=token)
    with session.lock:
        session.sources[key] = source
    return source


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
        except CocktailError as exc:
            r["problem"] = _scrub(format_error(exc), token)
            continue
        except Exception as exc:  # a bug must not break the page
            r["problem"] = _scrub(format_error(exc), token)
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
        problems.append("Fix the models marked above.")
    else:
        try:
            recipe = build_recipe(out, method=method, params=params, base=base, dtype=dtype, extras=extras)
            report = preflight(recipe, output_dir=session.merges_dir, token=token,
                               sources=[sources[r["key"]] for r in models])
            problems += report.problems
            warnings += report.warnings
            kind = report.kind
        except CocktailError as exc:
            problems.append(_scrub(format_error(exc), token))
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
        lines.append(f"✗ {len(problems)} problem(s):" if problems else "✗ Fix the models marked above.")
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
        problems = row_problems + [p for p in view.problems if p != "Fix the models marked above."]
        raise PreflightError(problems, hint="Fix these and try again.")
    return view


# --------------------------------------------------------------------------- examples and weights


def kind_format(kind: str | None) -> str:
    """``"text"`` (prompt/answer) or ``"retrieval"`` (query/positive/negative)."""
    return "retrieval" if kind in ("encoder", "reranker") else "text"


def example_headers(kind: str | None) -> list[str]:
    return RETRIEVAL_HEADERS if kind_format(kind) == "retrieval" else TEXT_HEADERS


def empty_table(kind: str | None) -> list[list[str]]:
    return [["" for _ in example_headers(kind)] for _ in range(EXAMPLE_ROWS)]


def _table_rows(table: Any) -> list[list[str]]:
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):  # pandas DataFrame
        table = table.values.tolist()
    rows = []
    for row in table:
        rows.append(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip() for v in row])
    return rows


def examples_from_form(kind: str | None, table: Any, paste: str | None) -> list[dict[str, Any]] | str:
    """The examples the form holds: the table's filled rows plus the pasted JSON/JSONL.

    Returns a list of example dicts (the table, plus pasted records), or the pasted text alone.

    Raises:
        ExamplesError: a half-filled table row, or no examples at all.
    """
    from cocktail_core.examples import parse_examples

    fmt = kind_format(kind)
    records: list[dict[str, Any]] = []
    for i, row in enumerate(_table_rows(table), start=1):
        cells = (row + ["", "", ""])[:3]
        if not any(cells):
            continue
        if fmt == "text":
            prompt, answer = cells[0], cells[1]
            if not answer:
                raise ExamplesError("the answer is empty.", line=None, field="answer",
                                    hint=f"Examples table, row {i}: give the answer the model should give.")
            records.append({"input": prompt, "output": answer})
        else:
            query, pos, neg = cells
            if not query or not pos:
                missing = "query" if not query else "positive"
                raise ExamplesError(f"the {missing} is empty.", field=missing,
                                    hint=f"Examples table, row {i}: a query needs at least one positive passage.")
            records.append({"query": query, "pos": [pos], "neg": [neg] if neg else []})
    paste = (paste or "").strip()
    if paste:
        from cocktail_core.examples import examples_to_dicts

        records += examples_to_dicts(parse_examples(paste, kind=kind, max_examples=10**6))
    if not records:
        raise ExamplesError("there are no examples.",
                            hint="Fill rows of the examples table or paste JSON/JSONL examples.")
    return records


@dataclass
class WeightsView:
    """Computed weights, ready to show."""

    rows: list[dict[str, Any]]
    extras: dict[str, Any]
    result: Any
    recipe: Recipe
    summary: str
    losses_frame: Any
    weights_frame: Any

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "models": [str(m) for m in r.models],
            "losses": [float(x) for x in r.losses],
            "weights": [float(x) for x in r.weights],
            "merged_loss_softmax": _maybe_float(getattr(r, "merged_loss_softmax", None)),
            "merged_loss_optimized": _maybe_float(getattr(r, "merged_loss_optimized", None)),
            "n_examples": int(r.n_examples),
            "recipe_yaml": self.recipe.to_yaml(),
        }


def _maybe_float(x: Any) -> float | None:
    return None if x is None else float(x)


def compute_weights_form(
    rows: list[dict[str, Any]],
    *,
    session: Session,
    store: SessionStore | None = None,
    examples: list[dict[str, Any]] | str,
    kind: str | None = None,
    method: str = "linear",
    params: dict[str, Any] | None = None,
    base: str | None = None,
    dtype: str = "auto",
    extras: dict[str, Any] | None = None,
    temperature: float = 5.0,
    optimize: bool = False,
    token: str | None = None,
    progress: Progress | None = None,
) -> WeightsView:
    """Score every model on the examples and set the weights from the losses.

    The models pass the preflight first (compatibility and this installation's limits), before
    anything downloads. Example text is always parsed as JSON/JSONL, never opened as a file path.

    Raises:
        ExamplesError: malformed examples, or more than ``COCKTAIL_MAX_EXAMPLES``.
        PreflightError: the models cannot be merged.
        CocktailError: the models cannot be loaded or scored.
    """
    import pandas as pd

    from cocktail_core.examples import load_examples, parse_examples
    from cocktail_core.weights import compute_weights

    progress = progress or _noop
    recipe = build_recipe(rows, method=method, params=params, base=base, dtype=dtype, extras=extras)
    if temperature is None or not float(temperature) > 0:
        raise ExamplesError("the temperature must be a positive number.", field="temperature",
                            hint="5 is LM-Cocktail's default; lower values favor the best model more.")
    view = require_mergeable(rows, session=session, store=store, method=method, params=params, base=base,
                             dtype=dtype, extras=extras, token=token)
    kind = kind or view.kind
    parsed = parse_examples(examples, kind=kind) if isinstance(examples, str) else load_examples(examples, kind=kind)

    def on_progress(update: Any) -> None:
        progress(_fraction(update), _describe(update))

    progress(0.0, f"scoring {len(recipe.models)} models on {len(parsed)} examples")
    result = compute_weights(recipe, parsed, kind=kind, temperature=float(temperature), optimize=bool(optimize),
                             token=token, progress=on_progress)
    new_recipe = recipe.with_weights(list(result.weights), weights_from=result.provenance())
    new_rows = decorate(set_weights(rows, new_recipe.weights), method, base)
    extras = dict(extras or {})
    if new_recipe.weights_from is not None:
        extras["weights_from"] = new_recipe.weights_from.model_dump(exclude_none=True)
        extras["computed_weights"] = [round(w, 4) for w in new_recipe.weights]
    labels = [row_label(i, str(m)) for i, m in enumerate(recipe.refs)]
    losses = pd.DataFrame({"model": labels, "loss": [round(float(x), 4) for x in result.losses]})
    weights = pd.DataFrame({"model": labels, "weight": [round(float(x), 4) for x in new_recipe.weights]})
    lines = [f"Computed from **{result.n_examples}** examples at temperature {float(temperature):g}"
             + (" (optimized)" if optimize else "") + ":", "", "| model | loss | weight |", "|---|---|---|"]
    lines += [f"| {lab} | {loss:.4f} | {w:.3f} |" for lab, loss, w in zip(labels, result.losses, new_recipe.weights)]
    soft = getattr(result, "merged_loss_softmax", None)
    opt = getattr(result, "merged_loss_optimized", None)
    if soft is not None:
        lines.append(f"\nLoss of the merge with these weights: {float(soft):.4f}"
                     + (f" (optimized: {float(opt):.4f})" if opt is not None else ""))
    lines += [f"\n_{note}_" for note in getattr(result, "notes", [])]
    progress(1.0, "weights computed")
    return WeightsView(rows=new_rows, extras=extras, result=result, recipe=new_recipe, summary="\n".join(lines),
                       losses_frame=losses, weights_frame=weights)


# --------------------------------------------------------------------------- merge

_STAGES = {"preflight": (0.0, 0.05), "download": (0.05, 0.45), "merge": (0.45, 0.95), "finalize": (0.95, 0.99),
           "done": (1.0, 1.0)}


def _fraction(update: Any) -> float:
    stage = getattr(update, "stage", None)
    if stage is None and isinstance(update, tuple):
        return 0.0
    lo, hi = _STAGES.get(stage, (0.0, 1.0))
    frac = getattr(update, "fraction", None)
    if frac is None:
        total = getattr(update, "total", 0) or 0
        frac = min(1.0, (getattr(update, "done", 0) or 0) / total) if total else 0.0
    return lo + (hi - lo) * float(frac)


def _describe(update: Any) -> str:
    stage = getattr(update, "stage", "")
    message = getattr(update, "message", "") or ""
    return f"{stage}: {message}" if stage and message else (stage or message)


def merge_form(
    recipe: Recipe,
    *,
    session: Session,
    store: SessionStore | None = None,
    name: str = "cocktail",
    token: str | None = None,
    progress: Progress | None = None,
) -> MergeRecord:
    """Merge ``recipe`` into the session's folder ``merges/<name>`` (replacing an earlier one).

    Raises:
        CocktailError: preflight problems, unknown models, Hub errors, an invalid name.
    """
    from cocktail_core.engine import merge

    progress = progress or _noop
    for ref in recipe.refs:
        check_local(str(ref), session, store)
    path = session.merge_path(name or "cocktail")
    with session.lock:
        # the merged model of the same name is about to change: forget what was loaded from it
        session.loaded.pop(str(path), None)
    result = merge(recipe, path, progress=lambda u: progress(_fraction(u), _describe(u)), overwrite=True, token=token)
    record = MergeRecord(name=path.name, path=result.path, recipe_yaml=result.recipe.to_yaml(), kind=result.report.kind,
                         seconds=result.seconds, bytes_written=result.bytes_written,
                         refs=[str(r) for r in recipe.refs])
    with session.lock:
        session.last_merge = record
        session.loaded.pop(str(result.path), None)
    return record


def merge_summary(record: MergeRecord) -> str:
    """Markdown for the result panel."""
    from cocktail_core.compat import human_bytes

    size = sum(p.stat().st_size for p in record.path.rglob("*") if p.is_file())
    files = sorted(p.name for p in record.path.iterdir())
    return (f"✓ Merged **{len(record.refs)} models** into `{record.name}` in **{record.seconds:.1f} s**.\n\n"
            f"- output size: **{human_bytes(size)}** ({human_bytes(record.bytes_written)} of weights)\n"
            f"- kind: {record.kind or 'unknown'}\n"
            f"- files: {', '.join(files)}")


def recipe_download(record: MergeRecord, session: Session) -> Path:
    """A copy of the merge's recipe in the session's downloads folder, for the download button."""
    folder = session.downloads_dir / secrets.token_hex(4)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.name}.cocktail_recipe.yaml"
    path.write_text(record.recipe_yaml, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- try it


@dataclass
class TryView:
    """Outputs of the merged model and of an ingredient, side by side."""

    merged: Any
    ingredient: Any | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.merged.kind,
            "merged": self.merged.display(),
            "merged_text": self.merged.text,
            "merged_score": self.merged.score,
            "ingredient": self.ingredient.display() if self.ingredient is not None else None,
            "ingredient_score": self.ingredient.score if self.ingredient is not None else None,
            "note": self.note,
        }


def live_status(session: Session) -> str:
    live = session.live
    if live is None:
        return session.live_error or ""
    return f"In-memory merge: re-merged in **{live.last_seconds * 1000:.0f} ms** (nothing written to disk)."


def live_remerge(
    recipe: Recipe,
    *,
    session: Session,
    store: SessionStore | None = None,
    token: str | None = None,
) -> str:
    """Re-merge the session's in-memory model with ``recipe``; start one when needed and it fits.

    Never raises for user mistakes: returns the status line (with the reason when it cannot run).
    """
    from cocktail_core.playground import LiveMerge

    try:
        for ref in recipe.refs:
            check_local(str(ref), session, store)
        live = session.live
        if live is not None and live.compatible(recipe):
            live.remerge(recipe)
        else:
            with session.lock:
                session.live = None
            rows = [new_row(str(m.model), m.weight) for m in recipe.models]
            require_mergeable(rows, session=session, store=store, method=recipe.method, params=recipe.params,
                              base=str(recipe.base) if recipe.base else None, dtype=recipe.dtype, token=token)
            sources = [inspect_ref(str(r), session, store, token) for r in recipe.refs]
            live = LiveMerge.create(recipe, token=token, sources=sources)
            with session.lock:
                session.live = live
                session.live_error = None
    except Exception as exc:  # the status line says why; the page never breaks over it
        with session.lock:
            session.live = None
            session.live_error = "In-memory re-merge is off: " + _scrub(format_error(exc), token)
        return session.live_error
    return live_status(session)


def try_form(
    *,
    session: Session,
    store: SessionStore | None = None,
    text: str,
    text_b: str = "",
    ingredient: str | None = None,
    use_live: bool = False,
    max_new_tokens: int = 32,
    token: str | None = None,
) -> TryView:
    """Run the merged model (in memory when live, else the last merge on disk) and an ingredient.

    Raises:
        SessionError: nothing merged yet (and no live merge).
        CocktailError: empty input, an ingredient that cannot be loaded.
    """
    from cocktail_core.playground import load_model, try_model

    max_new_tokens = max(1, min(int(max_new_tokens or 32), 256))
    live = session.live if use_live else None
    if live is not None:
        merged_model = live.loaded
        note = f"Merged model: in memory, re-merged in {live.last_seconds * 1000:.0f} ms."
    else:
        record = session.require_merge()
        merged_model = session.cached_model(str(record.path), lambda: load_model(record.path, kind=record.kind))
        note = f"Merged model: `{record.name}` (merged in {record.seconds:.1f} s)."
    merged = try_model(merged_model, text, text_b or "", max_new_tokens=max_new_tokens)
    other = None
    ingredient = (ingredient or "").strip()
    if ingredient:
        check_local(ingredient, session, store)
        merged_refs = [str(r) for r in live.recipe.refs] if live is not None else session.require_merge().refs
        if not any(_same_ref(ingredient, r) for r in merged_refs):
            raise SessionError(f"{ingredient} is not an ingredient of this merge.",
                               hint=f"Compare with one of: {', '.join(merged_refs)}.")
        parsed = ModelRef.parse(ingredient)
        loader_arg: Any = Path(parsed.path).expanduser() if parsed.is_local else str(parsed)
        ing = session.cached_model(f"ingredient:{parsed}",
                                   lambda: load_model(loader_arg, kind=merged_model.kind, token=token))
        other = try_model(ing, text, text_b or "", max_new_tokens=max_new_tokens)
    return TryView(merged=merged, ingredient=other, note=note)


# --------------------------------------------------------------------------- push


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


def scrub(text: str, token: str | None) -> str:
    """``text`` with ``token`` (and anything token-shaped) removed."""
    return _scrub(text, token)


def _scrub(text: str, token: str | None) -> str:
    try:
        from cocktail_core.hub import scrub_token

        return scrub_token(text, token)
    except ImportError:  # pragma: no cover - hub module always present in the app
        return text.replace(token, "***") if token else text


def safe_error(exc: BaseException, token: str | None = None) -> str:
    """``format_error`` with any token removed: what the page may show."""
    text = format_error(exc).replace("rerun with --debug for the traceback and report it",
                                     "the server log has the details; please report it")
    return _scrub(text, token)


def set_card_license(folder: Path, license: str) -> None:
    """Set ``license`` in the model card's front matter (``README.md``) of a merged folder."""
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end >= 0:
            meta = yaml.safe_load(text[3:end]) or {}
            body = text[end + 4:].lstrip("\n")
    meta["license"] = license
    readme.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---\n\n" + body, encoding="utf-8")


def default_repo_name(name: str, token: str | None) -> str:
    """``user/<name>`` when the token's user is known, else ``<name>``."""
    name = name or "cocktail"
    if not token:
        return name
    try:
        from cocktail_core.hub import whoami_name

        return f"{whoami_name(token)}/{name}"
    except CocktailError:
        return name


def push_form(
    *,
    session: Session,
    repo_name: str = "",
    private: bool = False,
    license: str = "",
    overwrite: bool = False,
    token: str | None = None,
    progress: Progress | None = None,
) -> str:
    """Push the session's last merge to the Hub; returns the repo URL.

    ``overwrite`` replaces the files of an existing repo; without it a non-empty repo is refused.

    Raises:
        HubUnauthorizedError: no token (signed out) or a token that cannot write there.
        SessionError: nothing merged yet.
        HubError: the push failed (nothing was committed).
    """
    from cocktail_core.errors import HubUnauthorizedError
    from cocktail_core.hub import push

    progress = progress or _noop
    if not token:
        where = "Sign in with Hugging Face" if on_space() else "Paste a Hub token with write access (or set HF_TOKEN)"
        raise HubUnauthorizedError("You are signed out: pushing to the Hub needs your token.",
                                   hint=f"{where}, then push again.")
    record = session.require_merge()
    license = (license or "").strip()
    folder = record.path
    if license:
        # push a copy so the session's merge keeps its own card
        staged = session.folder / "push-staging" / record.name
        shutil.rmtree(staged.parent, ignore_errors=True)
        shutil.copytree(record.path, staged)
        set_card_license(staged, license)
        folder = staged
    repo_name = (repo_name or "").strip() or record.name

    def on_bytes(done: float, total: float, message: str = "") -> None:
        progress(min(1.0, done / total) if total else 0.0, message or "uploading")

    try:
        url = push(folder, repo_name, token=token, private=bool(private), overwrite=bool(overwrite), progress=on_bytes)
    finally:
        if folder != record.path:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return url

