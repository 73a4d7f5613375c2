"""The streaming merge engine on tiny decoder and encoder models."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cocktail_core import Recipe, merge
from cocktail_core.engine import RECIPE_FILE
from cocktail_core.errors import OutputExistsError, RecipeError
from tests.fixtures.models import load_state_dict, make_tiny_llama
from tests.helpers import independent_linear


def _assert_equal_state(out_dir, expected, dtype):
    got = load_state_dict(out_dir)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == dtype, name
        assert torch.equal(got[name], value.to(dtype)), name


def test_fp32_sharded_and_unsharded_inputs(tmp_path, tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    paths = [tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2]  # ft2 is sharded
    weights = [0.5, 0.3, 0.2]
    updates = []
    result = merge(Recipe.from_lists([str(p) for p in paths], weights), tmp_path / "out", progress=updates.append)
    _assert_equal_state(result.path, independent_linear(paths, weights), torch.float32)
    assert json.loads((result.path / "config.json").read_text())["dtype"] == "float32"
    assert result.bytes_written == sum(f.stat().st_size for f in result.path.glob("*.safetensors")) - \
        sum(8 + int.from_bytes(open(f, "rb").read(8), "little") for f in result.path.glob("*.safetensors"))
    assert result.bytes_read == 3 * result.bytes_written
    stages = [u.stage for u in updates]
    assert stages[0] == "preflight" and stages[-1] == "done" and "merge" in stages
    merge_updates = [u for u in updates if u.stage == "merge"]
    assert merge_updates[-1].done == merge_updates[-1].total
    assert result.weights == pytest.approx([0.5, 0.3, 0.2])


def test_bf16_inputs_cast_and_sharded_output(tmp_path, tiny_llama_bf16_trio):
    weights = [0.2, 0.5, 0.3]
    recipe = Recipe.from_lists([str(p) for p in tiny_llama_bf16_trio], weights, shard_size="60KB")
    result = merge(recipe, tmp_path / "out")
    assert len(list(result.path.glob("model-*-of-*.safetensors"))) > 1
    index = json.loads((result.path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(load_state_dict(tiny_llama_bf16_trio[0]))
    _assert_equal_state(result.path, independent_linear(tiny_llama_bf16_trio, weights), torch.bfloat16)
    assert json.loads((result.path / "config.json").read_text())["dtype"] == "bfloat16"


def test_output_loads_offline_and_matches_independent_logits(tmp_path, monkeypatch, tiny_llama_base, tiny_llama_ft2):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    paths = [tiny_llama_base, tiny_llama_ft2]
    result = merge(Recipe.from_lists([str(p) for p in paths], [0.6, 0.4], dtype="bfloat16"), tmp_path / "out")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForCausalLM.from_pretrained(result.path)
    assert model.dtype == torch.bfloat16
    tok = AutoTokenizer.from_pretrained(result.path)
    assert tok.chat_template == AutoTokenizer.from_pretrained(tiny_llama_base).chat_template
    expected = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_llama_base), dtype=torch.bfloat16)
    expected.load_state_dict({k: v.to(torch.bfloat16) for k, v in independent_linear(paths, [0.6, 0.4]).items()})
    ids = tok("the quick brown fox", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, expected.eval()(ids).logits)


def test_encoder_merge_keeps_pooling_files(tmp_path, tiny_bert_pair):
    from transformers import AutoModel

    result = merge(Recipe.from_lists([str(p) for p in tiny_bert_pair], [0.5, 0.5]), tmp_path / "out")
    assert (result.path / "modules.json").is_file() and (result.path / "1_Pooling" / "config.json").is_file()
    assert result.report.kind == "encoder"
    _assert_equal_state(result.path, independent_linear(tiny_bert_pair, [0.5, 0.5]), torch.float32)
    AutoModel.from_pretrained(result.path)
    card = (result.path / "README.md").read_text()
    assert "library_name: sentence-transformers" in card


def test_card_parses_and_records_recipe(tmp_path, tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    from huggingface_hub import ModelCard

    both_apache = merge(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1)], [1, 1]), tmp_path / "a")
    card = ModelCard.load(both_apache.path / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"
    assert data["library_name"] == "transformers" and "merge" in data["tags"]
    assert data["pipeline_tag"] == "text-generation"
    assert "base_model" not in data  # local inputs are never listed as Hub base models
    assert Recipe.from_file(both_apache.path / RECIPE_FILE) == both_apache.recipe
    assert "method: linear" in card.text
    mixed = merge(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft2)], [1, 1]), tmp_path / "b")
    assert "license" not in ModelCard.load(mixed.path / "README.md").data.to_dict()  # apache-2.0 vs mit


def test_recipe_file_reproduces_bit_for_bit(tmp_path, tiny_llama_bf16_trio):
    first = merge(Recipe.from_lists([str(p) for p in tiny_llama_bf16_trio], [0.1, 0.6, 0.3], method="dare_ties",
                                    base=str(tiny_llama_bf16_trio[0]), params={"density": 0.5}, seed=3), tmp_path / "a")
    again = merge(Recipe.from_file(first.path / RECIPE_FILE), tmp_path / "b")
    for f in first.path.glob("*.safetensors"):
        assert f.read_bytes() == (again.path / f.name).read_bytes()


def test_existing_output_needs_overwrite_and_is_replaced_atomically(tmp_path, tiny_llama_base, tiny_llama_ft1):
    recipe = Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1)], [0.5, 0.5])
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        merge(recipe, out)
    assert (out / "keep.txt").exists()
    merge(recipe, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_refuses_to_overwrite_an_input(tmp_path, tiny_llama_base):
    other = make_tiny_llama(tmp_path / "other", base_from=tiny_llama_base, noise=0.01)
    with pytest.raises(RecipeError, match="contains the input model"):
        merge(Recipe.from_lists([str(tiny_llama_base), str(other)], [1, 1]), other, overwrite=True)
    assert (other / "config.json").exists()


def test_interrupted_merge_leaves_nothing(tmp_path, tiny_llama_base, tiny_llama_ft2):
    def stop(update):
        if update.stage == "merge" and update.done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        merge(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft2)], [1, 1]), tmp_path / "out", progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_killed_process_never_leaves_a_finished_looking_folder(tmp_path):
    big = [make_tiny_llama(tmp_path / f"m{i}", seed=i, hidden_size=512, num_layers=4) for i in range(2)]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-m", "cocktail_core", "merge", "--models", *map(str, big),
                             "--out", str(out), "--shard-size", "1MB", "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".out.cocktail-partial") for p in tmp_path.iterdir()):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()


@pytest.mark.parametrize("method", ["linear", "task_arithmetic"])
def test_row_slices_and_parallel_blocks_give_the_same_bytes(method, tmp_path, monkeypatch, tiny_llama_bf16_trio):
    """Big tensors are read in row slices and merged in cache-sized blocks on worker threads."""
    from cocktail_core import streaming

    kwargs = {"base": str(tiny_llama_bf16_trio[0])} if method != "linear" else {}
    recipe = Recipe.from_lists([str(p) for p in tiny_llama_bf16_trio], [0.2, 0.5, 0.3], method=method, **kwargs)
    whole = merge(recipe, tmp_path / "whole")
    monkeypatch.setattr(streaming, "SLICE_ELEMENTS", 3000)
    monkeypatch.setattr(streaming, "CPU_BLOCK_ELEMENTS", 700)
    sliced = merge(recipe, tmp_path / "sliced")
    for f in whole.path.glob("*.safetensors"):
        assert f.read_bytes() == (sliced.path / f.name).read_bytes()
    if method == "linear":
        _assert_equal_state(sliced.path, independent_linear(tiny_llama_bf16_trio, [0.2, 0.5, 0.3]), torch.bfloat16)


def test_output_path_under_a_file_fails_before_any_work(tmp_path, tiny_llama_base, tiny_llama_ft1):
    from cocktail_core.errors import OutputPathError

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    updates = []
    with pytest.raises(OutputPathError, match="is a file"):
        merge(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1)], [1, 1]), blocker / "out",
              progress=updates.append)
    assert updates == []  # refused before the preflight started


def test_disk_errors_while_writing_are_reported_and_leave_nothing(tmp_path, monkeypatch, tiny_llama_base, tiny_llama_ft1):
    import errno

    from cocktail_core.errors import CocktailError
    from cocktail_core.io import writer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.ShardedWriter, "write", full)
    with pytest.raises(CocktailError, match="No space left on device.*nothing was written"):
        merge(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft1)], [1, 1]), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
