"""Progress reporting: the event layer's ``progress(fraction, description)`` fed from core updates."""

from __future__ import annotations

from typing import Any, Callable

#: progress callback of the event layer: ``progress(fraction, description)``
Progress = Callable[[float, str], None]

#: the share of the bar each stage of a core run fills
_STAGES = {"preflight": (0.0, 0.05), "download": (0.05, 0.45), "merge": (0.45, 0.95), "finalize": (0.95, 0.99),
           "done": (1.0, 1.0)}


def noop(_fraction: float, _desc: str) -> None:
    return None


def fraction(update: Any) -> float:
    """How far along a core progress update is, 0 to 1."""
    stage = getattr(update, "stage", None)
    if stage is None and isinstance(update, tuple):
        return 0.0
    lo, hi = _STAGES.get(stage, (0.0, 1.0))
    frac = getattr(update, "fraction", None)
    if frac is None:
        total = getattr(update, "total", 0) or 0
        frac = min(1.0, (getattr(update, "done", 0) or 0) / total) if total else 0.0
    return lo + (hi - lo) * float(frac)


def describe(update: Any) -> str:
    """The text shown for a core progress update: ``"stage: message"``."""
    stage = getattr(update, "stage", "")
    message = getattr(update, "message", "") or ""
    return f"{stage}: {message}" if stage and message else (stage or message)


def core_progress(progress: Progress) -> Callable[[Any], None]:
    """A core ``progress(update)`` callback that reports to the event layer's ``progress``."""

    def on_update(update: Any) -> None:
        progress(fraction(update), describe(update))

    return on_update
