"""Write sharded safetensors output by streaming, without holding a shard in memory.

Every output tensor's name, dtype and shape are known before the merge starts (from the input
headers), so the shard layout and each shard's header are planned up front; tensors (or slices of
them) are then appended to the open shard as they are merged. The files are byte-compatible with
``safetensors.torch.save_file`` and ``model.safetensors.index.json`` follows transformers' layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cocktail_core.io.header import CODES, DTYPES

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass
class PlannedTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = DTYPES[self.dtype].itemsize
        for s in self.shape:
            n *= s
        return n


@dataclass
class Shard:
    file: str
    tensors: list[PlannedTensor] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def plan_shards(tensors: list[PlannedTensor], max_bytes: int) -> list[Shard]:
    """Group tensors, in order, into shards of at most ``max_bytes`` (a bigger tensor gets its own)."""
    shards: list[Shard] = []
    current = Shard("")
    for t in tensors:
        if current.tensors and current.nbytes + t.nbytes > max_bytes:
            shards.append(current)
            current = Shard("")
        current.tensors.append(t)
    if current.tensors:
        shards.append(current)
    if len(shards) == 1:
        shards[0].file = SINGLE_FILE
    else:
        for i, s in enumerate(shards, 1):
            s.file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
    return shards


def _header_bytes(shard: Shard) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in shard.tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
    return len(raw).to_bytes(8, "little") + raw


class ShardedWriter:
    """Append tensors in planned order; each tensor may arrive in several row slices.

    Example:
        >>> with ShardedWriter(out_dir, plan_shards(planned, 2 * 10**9)) as w:
        ...     for t in planned:
        ...         w.write(t.name, merged[t.name])
    """

    def __init__(self, folder: Path, shards: list[Shard]) -> None:
        self.folder = Path(folder)
        self.shards = shards
        self._order = [(s, t) for s in shards for t in s.tensors]
        self._pos = 0
        self._written_in_tensor = 0
        self._file = None
        self._shard: Shard | None = None
        self.bytes_written = 0

    def __enter__(self) -> "ShardedWriter":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if exc_type is None:
            self.finish()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write ``tensor`` (the whole tensor or its next row slice) for output tensor ``name``."""
        shard, planned = self._order[self._pos]
        if planned.name != name:
            raise RuntimeError(f"writer expected tensor {planned.name!r} next, got {name!r}")
        if CODES[tensor.dtype] != planned.dtype:
            raise RuntimeError(f"tensor {name} has dtype {tensor.dtype}, planned {planned.dtype}")
        if self._shard is not shard:
            if self._file is not None:
                self._file.close()
            self._file = open(self.folder / shard.file, "wb")
            self._file.write(_header_bytes(shard))
            self._shard = shard
        data = tensor.detach().contiguous().cpu()
        if data.numel():
            # Viewing as bytes keeps bf16 (which numpy lacks) exact.
            self._file.write(memoryview(data.view(torch.uint8).numpy()))
        self._written_in_tensor += data.numel() * data.element_size()
        self.bytes_written += data.numel() * data.element_size()
        if self._written_in_tensor > planned.nbytes:
            raise RuntimeError(f"too many bytes written for tensor {name}")
        if self._written_in_tensor == planned.nbytes:
            self._pos += 1
            self._written_in_tensor = 0

    def finish(self) -> None:
        """Check every planned tensor was written; write the index for sharded output."""
        if self._pos != len(self._order):
            missing = self._order[self._pos][1].name
            raise RuntimeError(f"output incomplete: tensor {missing} and later were not written")
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": sum(s.nbytes for s in self.shards)},
                "weight_map": {t.name: s.file for s in self.shards for t in s.tensors},
            }
            (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
