"""The errors a route raises: an HTTP error answer, or a dropped connection."""
from __future__ import annotations

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _DropConnection(Exception):
    """Raised inside a handler to close the socket without an answer."""
