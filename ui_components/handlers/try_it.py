"""Try it: run the merged model (on disk, or re-merged in memory) next to one of its ingredients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocktail_core.errors import format_error
from cocktail_core.recipe import ModelRef, Recipe

from ui_components.handlers.preflight import require_mergeable
from ui_components.handlers.recipe_form import rows_from_recipe
from ui_components.handlers.rows import same_ref
from ui_components.handlers.sources import check_local
from ui_components.handlers.tokens import scrub
from ui_components.session import Session, SessionError, SessionStore


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
            view = require_mergeable(rows_from_recipe(recipe), session=session, store=store, method=recipe.method,
                                     params=recipe.params, base=str(recipe.base) if recipe.base else None,
                                     dtype=recipe.dtype, token=token)
            live = LiveMerge.create(recipe, token=token, sources=view.sources_for(recipe))
            with session.lock:
                session.live = live
                session.live_error = None
    except Exception as exc:  # the status line says why; the page never breaks over it
        with session.lock:
            session.live = None
            session.live_error = "In-memory re-merge is off: " + scrub(format_error(exc), token)
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
        if not any(same_ref(ingredient, r) for r in merged_refs):
            raise SessionError(f"{ingredient} is not an ingredient of this merge.",
                               hint=f"Compare with one of: {', '.join(merged_refs)}.")
        parsed = ModelRef.parse(ingredient)
        loader_arg: Any = Path(parsed.path).expanduser() if parsed.is_local else str(parsed)
        ing = session.cached_model(f"ingredient:{parsed}",
                                   lambda: load_model(loader_arg, kind=merged_model.kind, token=token))
        other = try_model(ing, text, text_b or "", max_new_tokens=max_new_tokens)
    return TryView(merged=merged, ingredient=other, note=note)
