"""GPU path check (run on a machine with CUDA): merge and score on the GPU, compare with the CPU.

Usage: python bench/gpu_check.py
Prints the device, merge seconds on each device, whether the outputs are bit-identical, and the
weights computed from examples on each device.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from cocktail_core import Recipe, merge  # noqa: E402
from tests.fixtures.models import load_state_dict, make_tiny_llama  # noqa: E402


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device; nothing to check")
        return 1
    print("device:", torch.cuda.get_device_name(0))
    root = Path(tempfile.mkdtemp())
    base = make_tiny_llama(root / "base", seed=0, hidden_size=512, num_layers=4, dtype=torch.bfloat16)
    fts = [make_tiny_llama(root / f"ft{i}", seed=i, base_from=base, noise=0.02, dtype=torch.bfloat16) for i in (1, 2)]
    recipe = Recipe.from_lists([str(base), *map(str, fts)], [0.5, 0.3, 0.2], dtype="bfloat16")
    timings = {}
    for dev in ("cpu", "cuda"):
        os.environ["COCKTAIL_DEVICE"] = dev
        t = time.perf_counter()
        merge(recipe, root / f"out-{dev}")
        timings[dev] = time.perf_counter() - t
    a, b = load_state_dict(root / "out-cpu"), load_state_dict(root / "out-cuda")
    identical = all(torch.equal(a[k], b[k]) for k in a)
    print(f"merge seconds: cpu {timings['cpu']:.2f}, cuda {timings['cuda']:.2f}; outputs bit-identical: {identical}")
    try:
        from cocktail_core.weights import compute_weights
    except ImportError:
        print("weights module not present; skipping scoring check")
        return 0 if identical else 2
    examples = [{"input": f"What is {i} plus {i}?", "output": f"{2 * i}"} for i in range(5)]
    for dev in ("cpu", "cuda"):
        os.environ["COCKTAIL_DEVICE"] = dev
        t = time.perf_counter()
        res = compute_weights([str(base), *map(str, fts)], examples)
        print(f"weights on {dev}: {[round(w, 4) for w in res.weights]} losses {[round(x, 4) for x in res.losses]} "
              f"({time.perf_counter() - t:.2f} s)")
    return 0 if identical else 2


if __name__ == "__main__":
    sys.exit(main())
