"""Sizes and counts: parsing ``2GB`` / ``500MiB`` and printing bytes and parameter counts for people.

No heavy imports, so the CLI's push can print sizes without loading torch.
"""

from __future__ import annotations

import re

from cocktail_core.errors import RecipeError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | int) -> int:
    """Parse a size such as ``"2GB"``, ``"500MiB"`` or ``1000000`` into bytes.

    Example:
        >>> parse_size("2GB")
        2000000000
    """
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise RecipeError(f"Invalid size {text!r}.", hint="Write it like 2GB, 500MB or 1GiB.")
    unit = (m.group(2) or "B").lower()
    return int(float(m.group(1)) * _UNITS[unit])


def human_bytes(n: int | float) -> str:
    """``1.23 GB`` (decimal units, B to TB).

    Example:
        >>> human_bytes(2_500_000)
        '2.50 MB'
    """
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n} B"


def human_count(n: int) -> str:
    """``494.03M``: a parameter count with a K / M / B suffix."""
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


__all__ = ["parse_size", "human_bytes", "human_count"]
