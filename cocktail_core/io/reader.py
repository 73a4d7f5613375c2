"""Read tensors one at a time from a model folder.

Reads use ``os.pread`` on the byte range given by the safetensors header instead of a memory map:
mapped pages stay resident (and count in RSS) until the whole file is unmapped, while a pread
buffer is freed as soon as the tensor is merged, so peak memory stays at a few tensors whatever the
model size. The bytes and layout are exactly what ``safetensors.safe_open`` would return.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cocktail_core.io.header import DTYPES, TensorMeta


class TensorReader:
    """Lazy reader over a model folder's safetensors files.

    Example:
        >>> reader = TensorReader(folder, metas)
        >>> w = reader.read("model.embed_tokens.weight")            # whole tensor
        >>> rows = reader.read("model.embed_tokens.weight", 0, 128)  # rows 0..127 only
    """

    def __init__(self, folder: Path, metas: dict[str, TensorMeta]) -> None:
        self.folder = Path(folder)
        self.metas = metas
        self._fds: dict[str, int] = {}
        self.bytes_read = 0

    def _fd(self, file: str) -> int:
        fd = self._fds.get(file)
        if fd is None:
            fd = os.open(self.folder / file, os.O_RDONLY)
            self._fds[file] = fd
        return fd

    def read(self, name: str, row_start: int = 0, row_end: int | None = None) -> torch.Tensor:
        """Read tensor ``name`` (optionally only rows ``[row_start, row_end)`` of its first dim)."""
        _, _, nbytes, _ = self._locate(name, row_start, row_end)
        return self.read_into(name, bytearray(nbytes), row_start, row_end)

    def read_into(self, name: str, buffer: bytearray, row_start: int = 0, row_end: int | None = None) -> torch.Tensor:
        """Like :meth:`read`, but into the start of a reusable ``buffer``; returns a tensor viewing it.

        Reusing one buffer avoids a fresh allocation (and its page faults) for every tensor.
        """
        fd, offset, nbytes, shape = self._locate(name, row_start, row_end)
        dtype = DTYPES[self.metas[name].dtype]
        if nbytes == 0:
            return torch.empty(shape, dtype=dtype)
        view = memoryview(buffer)[:nbytes]
        got = 0
        while got < nbytes:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n <= 0:
                raise OSError(f"{self.folder / self.metas[name].file} ended early while reading tensor {name}")
            got += n
        self.bytes_read += nbytes
        return torch.frombuffer(view, dtype=dtype).reshape(shape)

    def _locate(self, name: str, row_start: int, row_end: int | None) -> tuple[int, int, int, list[int]]:
        meta = self.metas[name]
        shape = list(meta.shape)
        if shape and (row_start or row_end is not None):
            row_end = shape[0] if row_end is None else row_end
            row_bytes = meta.nbytes // shape[0] if shape[0] else 0
            shape[0] = row_end - row_start
            return self._fd(meta.file), meta.offset + row_start * row_bytes, shape[0] * row_bytes, shape
        return self._fd(meta.file), meta.offset, meta.nbytes, shape

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> "TensorReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
