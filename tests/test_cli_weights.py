"""CLI: ``weights`` and ``merge --examples``; bad examples exit non-zero and write nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from cocktail_core.cli import build_parser, main

EXAMPLES = [
    {"input": "What is the capital of France?", "output": "The answer is Paris."},
    {"input": "Translate this sentence into French.", "output": "Bonjour"},
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def models(tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    return [str(tiny_llama_base), str(tiny_llama_ft1), str(tiny_llama_ft2)]


@pytest.fixture
def examples_file(tmp_path):
    p = tmp_path / "ex.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES), encoding="utf-8")
    return p


def _write(tmp_path, text, name="bad.jsonl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_weights_json(models, examples_file, capsys):
    assert main(["weights", "--models", *models, "--examples", str(examples_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data)[:3] == ["models", "losses", "weights"]
    assert data["models"] == models and len(data["losses"]) == 3
    assert sum(data["weights"]) == pytest.approx(1.0) and data["n_examples"] == 2 and data["method"] == "softmax"


def test_weights_table_options_and_saved_recipe(models, examples_file, tmp_path, capsys):
    saved = tmp_path / "recipe.yaml"
    code = main(["weights", "--models", *models, "--examples", str(examples_file), "--temperature", "0.5",
                 "--top-k", "2", "--seed", "4", "--kind", "decoder", "--no-chat-template", "--quiet",
                 "--save-recipe", str(saved)])
    assert code == 0
    out = capsys.readouterr().out
    assert "llama-base" in out and "T=0.5" in out and "top-k 2" in out and "merge --recipe" in out
    recipe = yaml.safe_load(saved.read_text())
    assert recipe["weights_from"]["n_examples"] == 2 and recipe["weights_from"]["top_k"] == 2
    assert recipe["weights_from"]["seed"] == 4
    assert sorted(m["weight"] for m in recipe["models"])[0] == 0.0


def test_weights_optimize_with_alpha(models, examples_file, capsys):
    code = main(["weights", "--models", *models, "--examples", str(examples_file), "--alpha", "0.5",
                 "--alpha-model", models[2], "--optimize", "--base", models[0], "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alpha"] == 0.5 and data["weights"][2] == pytest.approx(0.5)
    assert data["merged_loss_softmax"] is not None
    if data["merged_loss_optimized"] is not None and data["method"] == "softmax+optimized":
        assert data["merged_loss_optimized"] <= data["merged_loss_softmax"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"input": "a", "output": "b"}\n{"input": "c", "output": "d"\n', "line 2, column 29"),
        ('{"input": "a"}\n', "line 1, field 'output'"),
        ('{"input": "a", "output": ""}\n', "'output' is empty"),
        ('{"query": "q", "pos": ["p"], "neg": ["n"]}\n', "do not fit a decoder model"),
        (json.dumps({"input": "word " * 300, "output": "b"}) + "\n", "tokens long"),
    ],
)
def test_bad_examples_exit_nonzero_and_write_nothing(models, tmp_path, capsys, text, expected):
    bad = _write(tmp_path, text)
    assert main(["weights", "--models", *models, "--examples", str(bad), "--quiet"]) != 0
    assert expected in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["merge", "--models", *models, "--examples", str(bad), "--out", str(out), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no partial folder either
    saved = tmp_path / "r.yaml"
    assert main(["weights", "--models", *models, "--examples", str(bad), "--save-recipe", str(saved)]) != 0
    assert not saved.exists()


def test_merge_with_examples_records_them_in_the_card(models, examples_file, tmp_path, capsys):
    out = tmp_path / "cocktail"
    code = main(["merge", "--models", *models, "--examples", str(examples_file), "--out", str(out),
                 "--temperature", "2", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "llama-ft1" in printed and "Merged 3 models" in printed and "2 example(s)" in printed
    recipe = yaml.safe_load((out / "cocktail_recipe.yaml").read_text())
    assert recipe["weights_from"]["n_examples"] == 2 and recipe["weights_from"]["temperature"] == 2.0
    card = (out / "README.md").read_text()
    assert "Weights from examples" in card and "**2 example(s)**" in card


def test_merge_optimize(models, examples_file, tmp_path, capsys):
    out = tmp_path / "opt"
    code = main(["merge", "--models", *models, "--examples", str(examples_file), "--out", str(out), "--optimize",
                 "--base", models[0], "--quiet"])
    assert code == 0
    recipe = yaml.safe_load((out / "cocktail_recipe.yaml").read_text())
    prov = recipe["weights_from"]
    assert prov["merged_loss_softmax"] is not None
    if prov["optimized"]:
        assert prov["merged_loss_optimized"] <= prov["merged_loss_softmax"]
        assert "optimized merge" in (out / "README.md").read_text()


def test_merge_option_conflicts(models, examples_file, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["merge", "--models", *models, "--weights", "1", "1", "1", "--examples", str(examples_file),
                 "--out", str(out)]) != 0
    assert "either --weights or --examples" in capsys.readouterr().err
    assert main(["merge", "--models", *models, "--optimize", "--out", str(out)]) != 0
    assert "--optimize needs --examples" in capsys.readouterr().err
    out.mkdir()
    assert main(["merge", "--models", *models, "--examples", str(examples_file), "--out", str(out), "--quiet"]) != 0
    assert "already exists" in capsys.readouterr().err
    assert not any(out.iterdir())


def test_parser_has_the_options():
    parser = build_parser()
    args = parser.parse_args(["weights", "--models", "a", "b", "--examples", "e.jsonl"])
    assert args.func is not None and args.temperature == 5.0 and args.seed == 0 and args.chat_template
    args = parser.parse_args(["merge", "--models", "a", "b", "--examples", "e.jsonl", "--out", "o", "--optimize"])
    assert args.examples == "e.jsonl" and args.optimize and args.temperature == 5.0


def test_free_weights(models, examples_file, tmp_path, capsys):
    saved = tmp_path / "free.yaml"
    code = main(["weights", "--models", *models, "--examples", str(examples_file), "--optimize", "--free-weights",
                 "--json", "--save-recipe", str(saved)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["constraint"] == "free" and data["merged_loss_softmax"] is not None
    if data["method"] == "softmax+optimized":
        assert data["merged_loss_optimized"] <= data["merged_loss_softmax"]
    recipe = yaml.safe_load(saved.read_text())
    assert recipe["method"] == "linear" and recipe["params"] == {"normalize": False}
    assert recipe["weights_from"]["constraint"] == "free"
    assert [m["weight"] for m in recipe["models"]] == pytest.approx(data["weights"])

    out = tmp_path / "merged"
    code = main(["merge", "--models", *models, "--examples", str(examples_file), "--out", str(out), "--optimize",
                 "--free-weights", "--quiet"])
    assert code == 0
    assert "free: may be negative, not normalized" in capsys.readouterr().out
    recipe = yaml.safe_load((out / "cocktail_recipe.yaml").read_text())
    assert recipe["params"] == {"normalize": False} and recipe["weights_from"]["constraint"] == "free"
    assert "weights unconstrained (may be negative; not normalized)" in (out / "README.md").read_text()


def test_free_weights_flag_errors(models, examples_file, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["weights", "--models", *models, "--examples", str(examples_file), "--free-weights"]) != 0
    assert "--free-weights needs --optimize" in capsys.readouterr().err
    assert main(["merge", "--models", *models, "--examples", str(examples_file), "--out", str(out),
                 "--free-weights"]) != 0
    assert "--free-weights needs --optimize" in capsys.readouterr().err
    assert main(["merge", "--models", *models, "--out", str(out), "--free-weights"]) != 0
    assert "--free-weights needs --optimize" in capsys.readouterr().err
    assert main(["merge", "--models", *models, "--out", str(out), "--optimize", "--free-weights"]) != 0
    assert "--optimize needs --examples" in capsys.readouterr().err
    assert main(["merge", "--models", *models, "--examples", str(examples_file), "--out", str(out), "--optimize",
                 "--free-weights", "--method", "ties", "--base", models[0], "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "method linear" in err and "Traceback" not in err
    assert not out.exists()


def test_free_weights_help(capsys):
    with pytest.raises(SystemExit):
        main(["weights", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--free-weights" in help_text and "may then be negative and need not sum to 1" in help_text
    args = build_parser().parse_args(["merge", "--models", "a", "b", "--examples", "e", "--out", "o", "--optimize",
                                      "--free-weights"])
    assert args.free_weights and args.optimize
