"""Scoring a candidate merge on the examples (and the drift probe), the way the engine would write it.

* :class:`InMemoryEvaluator`: every ingredient's float tensors in memory (float32) and one model
  skeleton that the scoring tasks run with the merged parameters swapped in
  (:func:`torch.func.functional_call`); exact merges through
  :func:`~cocktail_core.engine.merge_tensor`, and differentiable linear merges for gradient descent.
* :class:`StreamedEvaluator`: inputs too big for memory; each evaluation is a real merge streamed by
  the engine into a temporary folder, then loaded and scored (memory-flat, but slow).

:func:`make_evaluator` picks one: in memory when the inputs' float32 size is at most
``COCKTAIL_IN_MEMORY_MAX_MB``, on the CPU when the GPU lacks room.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from cocktail_core import settings
from cocktail_core.optimize.problem import Eval, Problem
from cocktail_core.recipe import Recipe
from cocktail_core.state_keys import model_key_map


def make_evaluator(recipe: Recipe, sources: list[Any], task: Any, drift_task: Any, device: str | None,
                   trust_remote_code: bool, token: str | None) -> InMemoryEvaluator | StreamedEvaluator:
    """The evaluator for ``recipe``'s merges: in memory when the inputs fit, else streamed.

    Args:
        recipe: the merge recipe (its weights are replaced per evaluation).
        sources: the downloaded model sources, in the recipe's order.
        task: the example task (the tokenizer donor's).
        drift_task: the drift probe's task, or ``None`` without the drift guard.
        device: compute device (default the accelerate device).
        trust_remote_code: allow models' own code.
        token: Hub token (streamed merges).

    Returns:
        An :class:`InMemoryEvaluator` or a :class:`StreamedEvaluator`; close it when done.
    """
    import torch

    from cocktail_core.compat import reference_index
    from cocktail_core.engine import compute_device

    n_float = sum(t.numel for t in sources[reference_index(recipe)].tensors.values() if t.is_float)
    fp32_inputs = 4 * n_float * len(sources)
    in_memory = fp32_inputs <= settings.get().in_memory_max_mb * 2**20
    dev = torch.device(device) if device is not None else compute_device()
    if in_memory and dev.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(dev.index if dev.index is not None else torch.cuda.current_device())
        # the inputs plus three float32 model copies: the skeleton, the merged parameters, their gradient
        if 4 * n_float * (len(sources) + 3) > 0.85 * free_bytes:
            dev = torch.device("cpu")
    if in_memory:
        return InMemoryEvaluator(recipe, sources, task, drift_task, dev, trust_remote_code)
    return StreamedEvaluator(recipe, sources, task, drift_task, device, trust_remote_code, token)


class InMemoryEvaluator:
    """Every ingredient's float tensors in memory (float32) and one model skeleton to run them."""

    def __init__(self, recipe: Recipe, sources: list[Any], task: Any, drift_task: Any, dev: Any,
                 trust_remote_code: bool) -> None:
        import torch

        from cocktail_core.compat import output_dtype_code, reference_index
        from cocktail_core.io.header import DTYPES
        from cocktail_core.io.reader import TensorReader
        from cocktail_core.scoring import load_model

        self.recipe, self.task, self.drift_task = recipe, task, drift_task
        ri = reference_index(recipe)
        self.ri = ri
        self.needs_base = _needs_base(recipe)
        self.loaded = load_model(sources[ri].folder, recipe.kind or task.kind, dtype=torch.float32, device=dev,
                                 trust_remote_code=trust_remote_code, tokenizer=task.tokenizer)
        model = self.loaded.model
        for p in model.parameters():
            p.requires_grad_(False)
        ref_meta = sources[ri].tensors
        # checkpoint tensor name -> model parameter name (tensors without a place in the model are not merged)
        self.names, _ = model_key_map([name for name, meta in ref_meta.items() if meta.is_float], model)
        self.out_dtype: dict[str, Any] = {}
        self.stacks: dict[str, Any] = {}
        readers = [TensorReader(s.folder, s.tensors) for s in sources]
        device = self.loaded.device
        try:
            for name in self.names:
                self.out_dtype[name] = DTYPES[output_dtype_code(recipe, ref_meta[name].dtype)]
                self.stacks[name] = torch.stack([r.read(name).to(device, torch.float32) for r in readers])
        finally:
            for r in readers:
                r.close()

    def _params(self, w: Any, exact: bool) -> dict[str, Any]:
        import torch

        from cocktail_core.engine import merge_tensor

        params = {}
        if exact:
            recipe = self.recipe.with_weights([float(x) for x in w])
            for name, stack in self.stacks.items():
                merged = merge_tensor(recipe, name, list(stack.unbind(0)),
                                      base_index=self.ri if self.needs_base else None)
                params[self.names[name]] = merged.to(self.out_dtype[name]).to(torch.float32)
        else:
            for name, stack in self.stacks.items():
                params[self.names[name]] = torch.tensordot(w, stack, dims=1)
        return params

    def evaluate(self, weights: list[float]) -> Eval:
        """The example loss (and drift) of the merge with ``weights``, computed as the engine merges."""
        import torch

        with torch.no_grad():
            params = self._params(weights, exact=True)
            loss = float(self.task.loss(self.loaded.model, params))
            drift = float(self.drift_task.loss(self.loaded.model, params)) if self.drift_task else None
        return Eval(loss, drift)

    def differentiable(self, problem: Problem, q: Any) -> tuple[Any, Any]:
        """Loss (and drift) as tensors differentiable w.r.t. ``q`` (linear merges only)."""
        import torch

        device = self.loaded.device
        w = torch.zeros(len(problem.soft), dtype=torch.float32, device=device)
        w = w + torch.tensor(problem.fixed, dtype=torch.float32, device=device)
        w = w.index_add(0, torch.tensor(problem.free, device=device), problem.share * q.to(device))
        if self.recipe.params.get("normalize", True):
            w = w / w.sum()
        params = self._params(w, exact=False)
        loss = self.task.loss(self.loaded.model, params).cpu()
        drift = self.drift_task.loss(self.loaded.model, params).cpu() if self.drift_task else None
        return loss, drift

    def close(self) -> None:
        self.stacks.clear()
        self.loaded.close()


class StreamedEvaluator:
    """Each evaluation is a real merge written by the engine to a temporary folder, then scored."""

    def __init__(self, recipe: Recipe, sources: list[Any], task: Any, drift_task: Any, device: str | None,
                 trust_remote_code: bool, token: str | None) -> None:
        self.recipe, self.task, self.drift_task = recipe, task, drift_task
        self.device, self.trust, self.token = device, trust_remote_code, token
        self.local_recipe = _local_recipe(recipe, sources)
        self.tmp = Path(tempfile.mkdtemp(prefix="cocktail-optimize-", dir=settings.get().work_dir))

    def evaluate(self, weights: list[float]) -> Eval:
        import torch

        from cocktail_core.engine import merge
        from cocktail_core.scoring import load_model

        out = self.tmp / "merge"
        merge(self.local_recipe.with_weights(weights), out, overwrite=True, token=self.token)
        loaded = load_model(out, self.recipe.kind or self.task.kind, device=self.device,
                            trust_remote_code=self.trust, tokenizer=self.task.tokenizer)
        try:
            with torch.no_grad():
                loss = float(self.task.loss(loaded.model))
                drift = float(self.drift_task.loss(loaded.model)) if self.drift_task else None
        finally:
            loaded.close()
        return Eval(loss, drift)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _local_recipe(recipe: Recipe, sources: list[Any]) -> Recipe:
    """The recipe with Hub models replaced by their downloaded folders (nothing re-downloaded per merge)."""
    from cocktail_core.engine import replace_models

    return replace_models(recipe, [None if s.is_local else str(s.folder) for s in sources], keep_provenance=False)


def _needs_base(recipe: Recipe) -> bool:
    from cocktail_core import methods

    return methods.get(recipe.method).needs_base


__all__ = ["make_evaluator", "InMemoryEvaluator", "StreamedEvaluator"]
