"""safetensors headers: tensor names, dtypes, shapes and byte ranges, without reading weights."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from cocktail_core.errors import CocktailError

#: safetensors dtype codes -> torch dtypes (and back)
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
CODES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
FLOAT_CODES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_MAX_HEADER = 100 * 2**20


@dataclass(frozen=True)
class TensorMeta:
    """Where one tensor lives and what it looks like.

    Attributes:
        name: tensor name in the state dict.
        dtype: safetensors dtype code, e.g. ``"BF16"``.
        shape: tensor shape.
        file: the safetensors file name (relative to the model folder).
        offset: absolute byte offset of the data in the file (after the header), when known.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    offset: int | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.dtype].itemsize if self.dtype in DTYPES else 0

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_CODES


def read_header(path: Path) -> dict[str, TensorMeta]:
    """Parse the header of one safetensors file.

    Raises:
        CocktailError: when the file is not a valid safetensors file (names it).
    """
    try:
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise ValueError("file is shorter than a safetensors header")
            (n,) = struct.unpack("<Q", raw_len)
            if n > _MAX_HEADER:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise CocktailError(
            f"{path} is not a readable safetensors file ({exc}).",
            hint="Re-download the model or re-save it with safetensors.",
        ) from None
    start = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, _end = info["data_offsets"]
        out[name] = TensorMeta(name, info["dtype"], tuple(info["shape"]), path.name, start + begin)
    return out
