"""Helpers shared by the Hub modules: the endpoint, the worker count and progress reporting."""

from __future__ import annotations

import threading
from typing import Callable

ProgressFn = Callable[[int, int, str], None]

_DOWNLOAD_WORKERS = 4


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


class _Progress:
    """Aggregates per-file byte counts into ``progress(done, total, message)`` calls."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self.total = 0
        self.message = ""
        self.per_file: dict[str, int] = {}
        self.lock = threading.Lock()
        self.cancelled = False  # set when the caller is interrupted: worker downloads stop at the next chunk

    def _emit(self) -> None:
        if self.fn is None:
            return
        done = min(max(sum(self.per_file.values()), 0), self.total) if self.total else 0
        self.fn(done, self.total, self.message)

    def start(self, total: int, message: str) -> None:
        with self.lock:
            self.total, self.message = total, message
            self._emit()

    def add(self, name: str, n: int) -> None:
        with self.lock:
            self.per_file[name] = self.per_file.get(name, 0) + n
            self._emit()

    def finished(self, name: str, size: int) -> None:
        with self.lock:
            self.per_file[name] = size
            self._emit()

    def done(self, message: str) -> None:
        with self.lock:
            self.message = message
            self.per_file = {"*": self.total}
            if self.fn is not None:
                self.fn(self.total, self.total, message)
