"""Merging the form to disk in the session's folder, the result summary and the recipe download."""

from __future__ import annotations

import secrets
from pathlib import Path

from cocktail_core.recipe import Recipe

from ui_components.handlers.progress import Progress, core_progress, noop
from ui_components.handlers.sources import check_local
from ui_components.session import MergeRecord, Session, SessionStore


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

    progress = progress or noop
    for ref in recipe.refs:
        check_local(str(ref), session, store)
    path = session.merge_path(name or "cocktail")
    with session.lock:
        # the merged model of the same name is about to change: forget what was loaded from it
        session.loaded.pop(str(path), None)
    result = merge(recipe, path, progress=core_progress(progress), overwrite=True, token=token)
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
    return (f"✓ Merged **{len(record.refs)} models** into `{record.name}` in **{record.seconds:.1f} s**.\n\n"
            f"- output size: **{human_bytes(size)}** ({human_bytes(record.bytes_written)} of weights)\n"
            f"- kind: {record.kind or 'unknown'}\n"
            f"- files: {', '.join(record.files())}")


def recipe_download(record: MergeRecord, session: Session) -> Path:
    """A copy of the merge's recipe in the session's downloads folder, for the download button."""
    folder = session.downloads_dir / secrets.token_hex(4)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.name}.cocktail_recipe.yaml"
    path.write_text(record.recipe_yaml, encoding="utf-8")
    return path
