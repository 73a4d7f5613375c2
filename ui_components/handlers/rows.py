"""Model rows: the form's list of models and weights, and what the page shows of them.

Model rows are plain dicts ``{"key", "ref", "weight", "info", "problem", "share"}``: ``key`` is a
stable id for ``gr.render(key=...)``; ``info``/``problem`` are the row's inline preflight result;
``share`` is the normalized share shown beside the slider.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from cocktail_core import methods, settings
from cocktail_core.errors import CocktailError, RecipeError
from cocktail_core.recipe import ModelRef

#: the base dropdown's "no base model" choice
NO_BASE = "(none)"


def new_row(ref: str = "", weight: float = 1.0) -> dict[str, Any]:
    """A fresh model row with a new stable key."""
    return {"key": secrets.token_hex(4), "ref": ref, "weight": float(weight), "info": "", "problem": None,
            "share": ""}


def initial_rows() -> list[dict[str, Any]]:
    """The form's starting rows: two empty models."""
    return [new_row(), new_row()]


def rows_for(models: list[str] | None, weights: list[float] | None) -> list[dict[str, Any]]:
    """Rows for ``models`` with ``weights`` (all 1.0 when None), as the API takes them.

    Raises:
        CocktailError: not one weight per model.
    """
    models = [str(m) for m in (models or [])]
    if weights is not None and len(weights) != len(models):
        raise CocktailError(f"Got {len(models)} model(s) but {len(weights)} weight(s).",
                            hint="Give exactly one weight per model, in the same order (or no weights).")
    weights = list(weights) if weights is not None else [1.0] * len(models)
    return [new_row(m, float(w)) for m, w in zip(models, weights)]


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


def chosen_base(base: str | None) -> str | None:
    """The base dropdown's value as a model reference (None for no base)."""
    return None if base in (None, "", NO_BASE) else base


def method_of(name: str | None) -> Any:
    """The merge method ``name`` (linear when unknown or unset)."""
    try:
        return methods.get(name or "linear")
    except CocktailError:
        return methods.get("linear")


def same_ref(a: str | None, b: str | None) -> bool:
    """Whether two model references name the same model."""
    if not a or not b:
        return False
    try:
        ra, rb = ModelRef.parse(a), ModelRef.parse(b)
    except CocktailError:
        return a.strip() == b.strip()
    return str(ra) == str(rb) or ra.path == rb.path


def shares(rows: list[dict[str, Any]], method: str | None, base: str | None) -> list[float | None]:
    """Each row's normalized share of the mix (None where it does not count).

    Methods built on task vectors ignore the base's weight; slerp and model_stock ignore weights.
    """
    m = method_of(method)
    base = chosen_base(base)
    counted = [bool(r["ref"].strip()) and m.uses_weights and not (m.needs_base and same_ref(r["ref"], base))
               for r in rows]
    total = sum(abs(r["weight"]) for r, c in zip(rows, counted) if c)
    return [(r["weight"] / total if total else 0.0) if c else None for r, c in zip(rows, counted)]


def decorate(rows: list[dict[str, Any]], method: str | None, base: str | None) -> list[dict[str, Any]]:
    """Rows with their ``share`` text filled for the current method and base."""
    m = method_of(method)
    base = chosen_base(base)
    out = []
    for r, s in zip(rows, shares(rows, method, base)):
        r = dict(r)
        if not r["ref"].strip():
            r["share"] = ""
        elif m.needs_base and same_ref(r["ref"], base):
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
    if chosen_base(base) and any(same_ref(base, r) for r in refs):
        return next(r for r in refs if same_ref(base, r))
    if method_of(method).needs_base and refs:
        return refs[0]
    return NO_BASE
