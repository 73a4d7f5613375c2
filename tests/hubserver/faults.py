"""Fault injection: make matching requests fail (dropped connection or an error status)."""
from __future__ import annotations

import dataclasses
import re
import threading


@dataclasses.dataclass
class _Fault:
    method: str | None
    pattern: re.Pattern
    status: int | None  # None -> drop the connection
    after_bytes: int | None  # bytes of request body read (POST) / response body sent (GET)
    times: int


class _Faults:
    """Fault injection of :class:`~tests.hubserver.server.LocalHubServer` (a mixin: ``_faults``
    and ``_lock`` are set by ``LocalHubServer.__init__``)."""

    _lock: threading.RLock
    _faults: list[_Fault]

    def add_fault(
        self,
        path_regex: str,
        *,
        method: str | None = None,
        status: int | None = None,
        after_bytes: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` matching requests fail.

        ``status=None`` drops the connection without an answer, after reading ``after_bytes`` of
        the request body (requests with a body) or after sending the headers and ``after_bytes``
        of the response body (GET downloads).  ``status=500`` (etc.) answers that status after
        reading ``after_bytes`` of the body (all of it when ``None``).
        """
        with self._lock:
            self._faults.append(_Fault(method, re.compile(path_regex), status, after_bytes, times))

    def fail_next_commit(self, *, after_bytes: int | None = None, status: int | None = None) -> None:
        """The next commit POST fails mid-body: connection dropped (default) or ``status`` answered.

        ``after_bytes=None`` reads half of the body before failing.
        """
        self.add_fault(r"^/api/models/[^/]+/[^/]+/commit/", method="POST", status=status, after_bytes=after_bytes)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method) and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
