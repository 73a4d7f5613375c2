"""Merge methods: one module each, behind :class:`MergeMethod`."""

from cocktail_core.methods.base import MergeMethod, Param
from cocktail_core.methods.registry import available, get

__all__ = ["MergeMethod", "Param", "available", "get"]
