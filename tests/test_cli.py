"""The command line: exact forms from the docs, exit codes, one-paragraph errors."""

import os
import subprocess
import sys

import pytest
import torch

from cocktail_core.cli import main
from tests.fixtures.models import load_state_dict
from tests.helpers import independent_linear


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_merge_from_models_and_weights(tmp_path, capsys, tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    paths = [tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2]
    code, out, err = _run(capsys, "merge", "--models", *map(str, paths), "--weights", "0.5", "0.3", "0.2",
                          "--out", str(tmp_path / "o"), "--dtype", "bfloat16", "--base", str(tiny_llama_base),
                          "--shard-size", "2GB", "--quiet")
    assert code == 0, err
    assert "Merged 3 models" in out
    expected = independent_linear(paths, [0.5, 0.3, 0.2])
    got = load_state_dict(tmp_path / "o")
    assert all(torch.equal(got[k], v.to(torch.bfloat16)) for k, v in expected.items())


def test_merge_from_recipe_file(tmp_path, capsys, tiny_llama_base, tiny_llama_ft1):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"models:\n  - model: {tiny_llama_base}\n    weight: 2\n  - model: {tiny_llama_ft1}\n    weight: 1\n")
    code, out, err = _run(capsys, "merge", "--recipe", str(recipe), "--out", str(tmp_path / "o"), "--quiet")
    assert code == 0, err
    assert (tmp_path / "o" / "cocktail_recipe.yaml").exists()


def test_preflight_exit_codes(tmp_path, capsys, tiny_llama_base, tiny_llama_ft1, tiny_qwen2):
    code, out, _ = _run(capsys, "preflight", "--models", str(tiny_llama_base), str(tiny_llama_ft1))
    assert code == 0 and "OK" in out
    code, out, _ = _run(capsys, "preflight", "--models", str(tiny_llama_base), str(tiny_qwen2))
    assert code == 1 and "different architectures" in out


@pytest.mark.parametrize("case", ["unknown", "nosafetensors", "mismatch", "misspelt", "one_model", "weights_len",
                                  "exists", "bad_method"])
def test_bad_input_gives_one_paragraph_and_no_output(case, tmp_path, capsys, tiny_llama_base, tiny_qwen2):
    out_dir = tmp_path / "out"
    base = str(tiny_llama_base)
    nosafe = tmp_path / "nosafe"
    nosafe.mkdir()
    (nosafe / "config.json").write_text("{}")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"models:\n  - model: {base}\n    weight: 1\n  - model: {tiny_qwen2}\n    weight: 1\nmethdo: linear\n")
    argv = {
        "unknown": ["--models", base, str(tmp_path / "does-not-exist")],
        "nosafetensors": ["--models", base, str(nosafe)],
        "mismatch": ["--models", base, str(tiny_qwen2)],
        "misspelt": ["--recipe", str(recipe)],
        "one_model": ["--models", base],
        "weights_len": ["--models", base, str(tiny_qwen2), "--weights", "1", "2", "3"],
        "exists": ["--models", base, str(tiny_qwen2)],
        "bad_method": ["--models", base, str(tiny_qwen2), "--method", "avg"],
    }[case]
    expected = {
        "unknown": "not found", "nosafetensors": "no safetensors", "mismatch": "different architectures",
        "misspelt": "did you mean 'method'", "one_model": "at least two models", "weights_len": "3 weight(s)",
        "exists": "already exists", "bad_method": "Expected one of",
    }[case]
    if case == "exists":
        out_dir.mkdir()
    code, out, err = _run(capsys, "merge", *argv, "--out", str(out_dir), "--quiet")
    assert code != 0
    assert expected in err
    assert "Traceback" not in err and err.startswith("error: ")
    assert out_dir.exists() == (case == "exists")
    if case == "exists":
        assert list(out_dir.iterdir()) == []


def test_real_process_exit_code_and_debug_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    cmd = [sys.executable, "-m", "cocktail_core", "merge", "--models", "./nope-a", "./nope-b", "--out", str(tmp_path / "o")]
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert plain.returncode == 1 and "not found" in plain.stderr and "Traceback" not in plain.stderr
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("command", ["merge", "preflight", "weights", "push"])
def test_token_on_command_line_is_refused_without_echo(command, capsys, tmp_path):
    secret = "hf_secretvalue123"
    argv = {"merge": ["merge", "--models", "a/b", "c/d", "--out", str(tmp_path / "o")],
            "preflight": ["preflight", "--models", "a/b", "c/d"],
            "weights": ["weights", "--models", "a/b", "c/d", "--examples", "x.jsonl"],
            "push": ["push", str(tmp_path)]}[command]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--token", secret])
    out, err = capsys.readouterr()
    assert e.value.code != 0 and "HF_TOKEN" in err
    assert secret not in out + err
