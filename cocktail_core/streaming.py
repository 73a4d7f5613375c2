"""The tensor loop of the engine: read, merge and write one tensor (or row slice) at a time.

Memory stays flat whatever the model size: every buffer is allocated once, sized for the largest
slice, and reused for every tensor (fresh large allocations cost page faults on every tensor).
Writing runs on a background thread so the disk and the arithmetic overlap; two output buffers
alternate so one can be written while the next is filled.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from cocktail_core import methods
from cocktail_core.io.header import DTYPES, TensorMeta
from cocktail_core.io.reader import TensorReader
from cocktail_core.io.writer import PlannedTensor, ShardedWriter, plan_shards
from cocktail_core.recipe import Recipe

#: big tensors of element-wise methods are read and written in row slices of at most this many elements
SLICE_ELEMENTS = 8 * 2**20
#: element-wise methods compute in blocks this small on the CPU, so the float32 intermediates stay in
#: the CPU cache: the merge is bound by memory bandwidth, and whole-slice passes cost ~10x more
CPU_BLOCK_ELEMENTS = 2**18


@dataclass(frozen=True)
class Job:
    """One output tensor: where it comes from and how it is written."""

    meta: TensorMeta
    planned: PlannedTensor


def slices(shape: tuple[int, ...], elementwise: bool) -> list[tuple[int, int | None]]:
    """Row ranges covering a tensor; one range unless the method is element-wise and it is big."""
    numel = 1
    for s in shape:
        numel *= s
    if not elementwise or not shape or numel <= SLICE_ELEMENTS or shape[0] < 2:
        return [(0, None)]
    rows = max(1, SLICE_ELEMENTS // (numel // shape[0]))
    return [(r, min(r + rows, shape[0])) for r in range(0, shape[0], rows)]


def merge_tensor(recipe: Recipe, name: str, tensors: list[torch.Tensor], *, base_index: int | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Merge one tensor given every model's float32 version of it (in recipe order).

    The engine calls it for each slice, and in-memory merges (interactive sliders, weight
    optimization) call it too, so every path computes exactly the same numbers. Randomness (DARE)
    is seeded from the recipe seed and the tensor name.
    """
    method = methods.get(recipe.method)
    weights = recipe.weights
    base = None
    if method.needs_base:
        bi = recipe.refs.index(recipe.base) if base_index is None else base_index
        base = tensors[bi]
        tensors = [t for i, t in enumerate(tensors) if i != bi]
        weights = [w for i, w in enumerate(weights) if i != bi]
    generator = torch.Generator().manual_seed((recipe.seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
    return method.merge(tensors, weights, base, recipe.params, generator=generator, out=out)


def write_merged(
    recipe: Recipe,
    readers: list[TensorReader],
    jobs: list[Job],
    folder: Path,
    *,
    reference: int,
    shard_bytes: int,
    device: torch.device,
    on_tensor: Callable[[str, int, int], None],
) -> int:
    """Merge every job into sharded safetensors in ``folder``; returns the bytes written.

    ``on_tensor(name, bytes_queued, total_bytes)`` is called after each tensor is merged.
    """
    return _StreamingMerge(recipe, readers, jobs, reference, device).run(folder, shard_bytes, on_tensor)


class _StreamingMerge:
    """Buffers sized once for the largest slice, reused for every tensor."""

    def __init__(self, recipe: Recipe, readers: list[TensorReader], jobs: list[Job], reference: int,
                 device: torch.device) -> None:
        method = methods.get(recipe.method)
        self.recipe, self.readers, self.jobs, self.reference = recipe, readers, jobs, reference
        self.base_index = reference if method.needs_base else None
        self.plans = {j.meta.name: slices(j.meta.shape, method.elementwise) for j in jobs if j.meta.is_float}
        largest = max((_slice_numel(j.meta.shape, self.plans[j.meta.name]) for j in jobs if j.meta.is_float), default=1)
        self.block = CPU_BLOCK_ELEMENTS if method.elementwise and device.type == "cpu" else largest
        small = min(self.block, largest)
        # Blocks are independent, so they are shared among worker threads (torch releases the GIL);
        # each worker has its own cache-sized scratch.
        self.workers = min(4, os.cpu_count() or 1) if self.block < largest else 1
        itemsizes = [max((DTYPES[m.dtype].itemsize for m in r.metas.values() if m.is_float), default=4)
                     for r in readers]
        self.raw = [bytearray(largest * size) for size in itemsizes]
        self.scratch = [[torch.empty(small, dtype=torch.float32, device=device) for _ in readers]
                        for _ in range(self.workers)]
        self.acc = [torch.empty(small, dtype=torch.float32, device=device) for _ in range(self.workers)]
        # Output bytes are staged in float32-sized buffers (no output dtype is wider); two of them
        # alternate so the writer thread writes one while the next is filled.
        self.staging = [torch.empty(largest, dtype=torch.float32) for _ in range(2)]
        self.largest = largest

    def run(self, folder: Path, shard_bytes: int, on_tensor: Callable[[str, int, int], None]) -> int:
        threads = torch.get_num_threads()
        if self.block < self.largest:
            # Cache-sized blocks are too small to split across cores: intra-op threads only add
            # barrier waits (20x slower when another process holds a core). The writer thread
            # keeps another core busy.
            torch.set_num_threads(1)
        try:
            return self._run(folder, shard_bytes, on_tensor)
        finally:
            torch.set_num_threads(threads)

    def _run(self, folder: Path, shard_bytes: int, on_tensor: Callable[[str, int, int], None]) -> int:
        shards = plan_shards([j.planned for j in self.jobs], shard_bytes)
        total = sum(j.planned.nbytes for j in self.jobs) or 1
        pending: list[Future] = []
        in_flight: list[Future | None] = [None, None]
        queued, turn = 0, 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cocktail-writer") as pool, \
                ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cocktail-merge") as self._compute:
            with ShardedWriter(folder, shards) as writer:
                for job in self.jobs:
                    name = job.meta.name
                    if not job.meta.is_float:
                        pending.append(pool.submit(writer.write, name, self.readers[self.reference].read(name)))
                    for start, end in self.plans.get(name, []):
                        sources = [r.read_into(name, buf, start, end) for r, buf in zip(self.readers, self.raw)]
                        if in_flight[turn] is not None:
                            in_flight[turn].result()
                        staged = self._merge_slice(name, sources, DTYPES[job.planned.dtype], self.staging[turn])
                        in_flight[turn] = pool.submit(writer.write, name, staged)
                        pending.append(in_flight[turn])
                        turn = 1 - turn
                    queued += job.planned.nbytes
                    on_tensor(name, queued, total)
                for future in pending:
                    future.result()
                return writer.bytes_written

    def _merge_slice(self, name: str, sources: list[torch.Tensor], out_dtype: torch.dtype,
                     staging: torch.Tensor) -> torch.Tensor:
        n, shape = sources[0].numel(), sources[0].shape
        staged = staging.view(torch.uint8)[: n * out_dtype.itemsize].view(out_dtype)
        if self.block >= n:
            parts = [sc[:n].view(shape).copy_(src) for sc, src in zip(self.scratch[0], sources)]
            merged = merge_tensor(self.recipe, name, parts, base_index=self.base_index, out=self.acc[0][:n].view(shape))
            staged.copy_(merged.reshape(-1))
        else:
            flat = [src.reshape(-1) for src in sources]
            starts = range(0, n, self.block)

            def run_blocks(worker: int) -> None:
                scratch, acc = self.scratch[worker], self.acc[worker]
                for b in starts[worker::self.workers]:
                    e = min(b + self.block, n)
                    parts = [sc[: e - b].copy_(f[b:e]) for sc, f in zip(scratch, flat)]
                    staged[b:e].copy_(merge_tensor(self.recipe, name, parts, base_index=self.base_index,
                                                   out=acc[: e - b]))

            for done in [self._compute.submit(run_blocks, w) for w in range(self.workers)]:
                done.result()
        return staged.view(shape)


def _slice_numel(shape: tuple[int, ...], ranges: list[tuple[int, int | None]]) -> int:
    numel = 1
    for s in shape:
        numel *= s
    if len(ranges) == 1:
        return numel
    row = numel // shape[0]
    return max(((end if end is not None else shape[0]) - start) * row for start, end in ranges)
