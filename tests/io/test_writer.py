"""Streaming sharded writer: files readable by safetensors, index layout, slices."""

import json

import torch
from safetensors.torch import load_file

from cocktail_core.io.header import read_header
from cocktail_core.io.reader import TensorReader
from cocktail_core.io.writer import PlannedTensor, ShardedWriter, plan_shards


def test_sharded_output_is_valid_safetensors_with_index(tmp_path):
    tensors = {f"t{i}": torch.randn(10, 7).to(torch.bfloat16) for i in range(5)}
    tensors["ids"] = torch.arange(12, dtype=torch.int64)
    planned = [PlannedTensor(n, {torch.bfloat16: "BF16", torch.int64: "I64"}[t.dtype], tuple(t.shape))
               for n, t in tensors.items()]
    shards = plan_shards(planned, 300)
    assert len(shards) > 1
    with ShardedWriter(tmp_path, shards) as w:
        for n, t in tensors.items():
            if n == "t2":  # in row slices
                w.write(n, t[:3]); w.write(n, t[3:])
            else:
                w.write(n, t)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(tensors)
    loaded = {}
    for f in sorted(set(index["weight_map"].values())):
        loaded.update(load_file(tmp_path / f))
    for n, t in tensors.items():
        assert torch.equal(loaded[n], t)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())


def test_single_shard_named_model_safetensors_and_reader_slices(tmp_path):
    t = torch.randn(9, 4)
    with ShardedWriter(tmp_path, plan_shards([PlannedTensor("w", "F32", (9, 4))], 10**9)) as w:
        w.write("w", t)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    metas = read_header(tmp_path / "model.safetensors")
    with TensorReader(tmp_path, metas) as r:
        assert torch.equal(r.read("w"), t)
        assert torch.equal(r.read("w", 2, 5), t[2:5])
