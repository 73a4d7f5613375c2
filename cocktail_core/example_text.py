"""Reading example text: a file (or standard input), a JSON array or JSONL, into ``(line, object)`` records.

Part of :mod:`cocktail_core.examples`: every problem is an :class:`~cocktail_core.errors.ExamplesError` naming
the line (and column, for malformed JSON); the records are validated there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cocktail_core.errors import ExamplesError


def looks_like_path(text: str) -> bool:
    """True for a one-line string that does not start like JSON: taken as a file name."""
    stripped = text.strip()
    if not stripped or stripped[0] in "[{" or "\n" in stripped:
        return False
    return True


def read_file(path: Path | None) -> str:
    """The text of an examples file (UTF-8, BOM allowed), or standard input for ``None``."""
    if path is None:
        import sys

        return sys.stdin.read()
    p = path.expanduser()
    if not p.is_file():
        raise ExamplesError(f"the examples file {p} does not exist." if not p.exists()
                            else f"{p} is not a file.",
                            hint="Give a .json or .jsonl file, one example per line for JSONL.")
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExamplesError(f"the examples file {p} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise ExamplesError(f"cannot read the examples file {p} ({exc.strerror}).") from None


def parse_text(text: str) -> list[tuple[int | None, Any]]:
    """``(line, object)`` records of a JSON array or of JSONL text (one object a line, or one object)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        return []
    if stripped[0] == "[":
        return _parse_array(text)
    return _parse_jsonl(text)


def _parse_array(text: str) -> list[tuple[int | None, Any]]:
    """A JSON array, element by element, so each element keeps the line it starts on."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise _json_error(exc) from None
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    out: list[tuple[int | None, Any]] = []
    while True:
        pos = _skip_ws(text, pos)
        if text[pos] == "]":
            break
        obj, end = decoder.raw_decode(text, pos)
        out.append((text.count("\n", 0, pos) + 1, obj))
        pos = _skip_ws(text, end)
        if text[pos] == ",":
            pos += 1
    return out


def _parse_jsonl(text: str) -> list[tuple[int | None, Any]]:
    """One JSON value a line; a single (possibly multi-line) JSON object is one example."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    else:
        if isinstance(whole, dict):
            first = text.count("\n", 0, len(text) - len(text.lstrip())) + 1
            return [(first, whole)]
    out: list[tuple[int | None, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ExamplesError(f"invalid JSON: {exc.msg}.", line=number, column=exc.colno,
                                hint="JSONL needs one complete JSON object per line; "
                                     "check quotes, commas and braces near that column.") from None
    return out


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n\ufeff":
        pos += 1
    return pos


def _json_error(exc: json.JSONDecodeError) -> ExamplesError:
    return ExamplesError(f"invalid JSON: {exc.msg}.", line=exc.lineno, column=exc.colno,
                         hint="Check quotes, commas and brackets near that position.")


__all__ = ["looks_like_path", "read_file", "parse_text"]
