"""Reading models for a session: the local-folder guard and the session's metadata cache."""

from __future__ import annotations

import os
from typing import Any

from cocktail_core import settings
from cocktail_core.errors import CocktailError
from cocktail_core.recipe import ModelRef

from ui_components.handlers.tokens import on_space
from ui_components.session import Session, SessionError, SessionStore


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
