"""Environment settings, parsed in one place.

Modules read ``settings.get()`` at call time, so tests change behaviour by setting environment
variables (or patching :func:`get`) without reloading modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        from cocktail_core.errors import SettingsError

        raise SettingsError(f"Environment variable {name}={raw!r} must be an integer.") from None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Limits and switches, mostly for a shared Space.

    Attributes:
        max_models: most models in one recipe (``COCKTAIL_MAX_MODELS``, default 10).
        max_total_gb: most total input size in GB (``COCKTAIL_MAX_TOTAL_GB``, 0 = no limit).
        max_examples: most examples for weight computation (``COCKTAIL_MAX_EXAMPLES``, 50).
        merge_concurrency: merges running at once in the app (``COCKTAIL_MERGE_CONCURRENCY``, 1).
        work_dir: where the app keeps per-session folders (``COCKTAIL_WORK_DIR``).
        device: force a torch device, e.g. ``cpu`` (``COCKTAIL_DEVICE``; default: accelerate's).
        in_memory_max_mb: largest total model size the app re-merges in memory (``COCKTAIL_IN_MEMORY_MAX_MB``).
        allow_local_paths: model references may be local folders (``COCKTAIL_ALLOW_LOCAL_PATHS``, default on).
        hub_cache_fallback: when the Hub cannot be reached, serve models from the local cache
            (``COCKTAIL_HUB_CACHE_FALLBACK``; default on, off on a Space, where the cache is shared by
            visitors and a cached private model must not skip the Hub's access check).
    """

    max_models: int
    max_total_gb: int
    max_examples: int
    merge_concurrency: int
    work_dir: str | None
    device: str | None
    in_memory_max_mb: int
    allow_local_paths: bool
    hub_cache_fallback: bool


def get() -> Settings:
    """Read the current settings from the environment."""
    return Settings(
        max_models=_int("COCKTAIL_MAX_MODELS", 10),
        max_total_gb=_int("COCKTAIL_MAX_TOTAL_GB", 0),
        max_examples=_int("COCKTAIL_MAX_EXAMPLES", 50),
        merge_concurrency=_int("COCKTAIL_MERGE_CONCURRENCY", 1),
        work_dir=os.environ.get("COCKTAIL_WORK_DIR") or None,
        device=os.environ.get("COCKTAIL_DEVICE") or None,
        in_memory_max_mb=_int("COCKTAIL_IN_MEMORY_MAX_MB", 2048),
        allow_local_paths=_bool("COCKTAIL_ALLOW_LOCAL_PATHS", True),
        hub_cache_fallback=_bool("COCKTAIL_HUB_CACHE_FALLBACK", not os.environ.get("SPACE_ID")),
    )
