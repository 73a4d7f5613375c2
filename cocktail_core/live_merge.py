"""Re-merging in memory: every ingredient's weights held, merged again into one loaded model on demand.

:class:`LiveMerge` keeps every ingredient's weights in memory (when they fit under
``COCKTAIL_IN_MEMORY_MAX_MB``) and re-merges them into a model loaded by
:func:`cocktail_core.playground.load_model` with :func:`cocktail_core.engine.merge_tensor` whenever the
weights change, without writing anything to disk. It computes exactly what a merge to disk writes
(same math, same output dtype rounding). Also importable from :mod:`cocktail_core.playground`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cocktail_core import settings
from cocktail_core.errors import CocktailError
from cocktail_core.recipe import Recipe
from cocktail_core.state_keys import model_key_map

if TYPE_CHECKING:
    from cocktail_core.playground import LoadedModel


class LiveMerge:
    """Every ingredient's weights in memory, re-merged into one loaded model on demand.

    Create it with :meth:`create` (which checks the memory budget first), then call
    :meth:`remerge` with a recipe over the same models (new weights, method or params). The merged
    model is :attr:`loaded`, ready for :func:`cocktail_core.playground.try_model`.

    Attributes:
        recipe: the recipe last merged.
        loaded: the merged model.
        last_seconds: how long the last re-merge took.
        nbytes: memory held (ingredient weights plus the merged model).
    """

    def __init__(self, recipe: Recipe, loaded: LoadedModel, state_dicts: list[dict[str, torch.Tensor]],
                 key_map: dict[str, str], out_dtypes: dict[str, torch.dtype], nbytes: int) -> None:
        self.recipe = recipe
        self.loaded = loaded
        self._state_dicts = state_dicts
        self._key_map = key_map
        self._out_dtypes = out_dtypes
        self.nbytes = nbytes
        self.last_seconds = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def needed_bytes(sources: list[Any]) -> int:
        """Memory a live merge of these sources needs: every ingredient plus a float32 merged model."""
        weights = sum(s.weights_bytes for s in sources)
        merged = max(sum(t.numel * 4 if t.is_float else t.nbytes for t in s.tensors.values()) for s in sources)
        return weights + merged

    @classmethod
    def create(cls, recipe: Recipe, *, token: str | None = None, max_mb: int | None = None,
               sources: list[Any] | None = None) -> "LiveMerge":
        """Load every ingredient of ``recipe`` into memory and merge it once.

        Args:
            recipe: the recipe (its models must pass the preflight).
            token: Hub token for private or gated inputs.
            max_mb: memory budget; default ``settings.in_memory_max_mb``.
            sources: already inspected (or downloaded) sources, in recipe order.

        Raises:
            CocktailError: the models do not fit in the budget (checked before anything is loaded),
                cannot be merged (preflight problems) or cannot be loaded.
        """
        from safetensors.torch import load_file

        from cocktail_core.compat import output_dtype_code, preflight, reference_index
        from cocktail_core.io.header import DTYPES
        from cocktail_core.io.sources import detect_kind, materialize
        from cocktail_core.playground import load_model

        budget = (settings.get().in_memory_max_mb if max_mb is None else max_mb) * 2**20
        if sources is None or any(s is None for s in sources):
            report = preflight(recipe, token=token)
            report.raise_for_problems()
            sources = list(report.sources)
        need = cls.needed_bytes(sources)
        if need > budget:
            raise CocktailError(
                f"These models need about {need / 2**20:.0f} MB to re-merge in memory; the limit is "
                f"{budget / 2**20:.0f} MB (COCKTAIL_IN_MEMORY_MAX_MB).",
                hint="Merge to disk instead, or raise the limit on a machine with more memory.")
        sources = [materialize(s, token=token) for s in sources]
        ri = reference_index(recipe)
        ref = sources[ri]
        state_dicts = []
        for s in sources:
            sd: dict[str, torch.Tensor] = {}
            for f in s.weight_files:
                sd.update(load_file(str(s.folder / f)))
            state_dicts.append(sd)
        kind = recipe.kind or detect_kind(ref.config, ref.folder)
        loaded = load_model(Path(ref.folder), kind=kind, dtype=torch.float32)
        key_map, unmapped = model_key_map([name for name, meta in ref.tensors.items() if meta.is_float], loaded.model)
        if unmapped:
            raise CocktailError(
                f"Cannot re-merge in memory: {len(unmapped)} tensor(s) of {ref.ref} have no place in the loaded "
                f"model ({', '.join(unmapped[:5])}).", hint="Merge to disk instead.")
        out_dtypes = {name: DTYPES[output_dtype_code(recipe, meta.dtype)] for name, meta in ref.tensors.items()
                      if meta.is_float}
        live = cls(recipe, loaded, state_dicts, key_map, out_dtypes, need)
        live.remerge(recipe)
        return live

    def compatible(self, recipe: Recipe) -> bool:
        """True when ``recipe`` merges the same models (in the same order), so :meth:`remerge` accepts it."""
        return [str(r) for r in recipe.refs] == [str(r) for r in self.recipe.refs] and recipe.dtype == self.recipe.dtype

    def remerge(self, recipe: Recipe | list[float]) -> float:
        """Merge again in memory with ``recipe`` (or just new weights); returns the seconds it took.

        Raises:
            CocktailError: the recipe names other models than the ones held.
        """
        from cocktail_core.engine import compute_device, merge_tensor

        if not isinstance(recipe, Recipe):
            recipe = self.recipe.with_weights(list(recipe))
        if not self.compatible(recipe):
            raise CocktailError("This in-memory merge holds other models (or another dtype).",
                                hint="Start a new live merge for the new models.")
        dev = compute_device()  # the engine's, so both compute exactly the same numbers
        with self._lock, self.loaded.lock:
            started = time.perf_counter()
            merged: dict[str, torch.Tensor] = {}
            for name, target in self._key_map.items():
                parts = [sd[name].to(dev, torch.float32) for sd in self._state_dicts]
                out = merge_tensor(recipe, name, parts)
                merged[target] = out.to(self._out_dtypes[name])
            result = self.loaded.model.load_state_dict(merged, strict=False)
            if result.unexpected_keys:  # cannot happen with the key map; guard against silent no-ops
                raise CocktailError(f"In-memory merge produced unknown tensors: {result.unexpected_keys[:5]}")
            self.last_seconds = time.perf_counter() - started
            self.recipe = recipe
        return self.last_seconds


__all__ = ["LiveMerge"]
