"""Preflight: every incompatibility reported at once, from configs and headers only."""

import shutil
from collections import namedtuple

import pytest
import torch

from cocktail_core import Recipe, merge, preflight
from cocktail_core.errors import NoSafetensorsError, PreflightError, SourceNotFoundError
from tests.fixtures.models import load_state_dict, make_tiny_llama
from tests.helpers import copy_model, rewrite_weights


def _recipe(*paths, weights=None, **kw):
    return Recipe.from_lists([str(p) for p in paths], weights or [1.0] * len(paths), **kw)


def _problems(*paths, **kw):
    return preflight(_recipe(*paths, **kw)).problems


def test_compatible_models_pass_with_summary(tiny_llama_base, tiny_llama_ft2):
    report = preflight(_recipe(tiny_llama_base, tiny_llama_ft2))
    assert report.ok and report.kind == "decoder"
    assert report.rows()[0]["architecture"] == "LlamaForCausalLM"
    assert "OK" in report.render()


def test_different_architectures(tiny_llama_base, tiny_qwen2):
    problems = _problems(tiny_llama_base, tiny_qwen2)
    assert any("different architectures" in p and "Qwen2ForCausalLM" in p for p in problems)


def test_missing_and_extra_tensors(tmp_path, tiny_llama_base):
    fewer = copy_model(tiny_llama_base, tmp_path / "fewer")
    rewrite_weights(fewer, lambda s: s.pop("model.norm.weight"))
    more = copy_model(tiny_llama_base, tmp_path / "more")
    rewrite_weights(more, lambda s: s.__setitem__("extra.weight", torch.zeros(3)))
    problems = _problems(tiny_llama_base, fewer, more)
    assert any("fewer lacks 1 tensor" in p and "model.norm.weight" in p for p in problems)
    assert any("more has 1 tensor" in p and "extra.weight" in p for p in problems)


def test_shape_vocab_and_tied_mismatch_all_reported_together(tmp_path, tiny_llama_base):
    other = make_tiny_llama(tmp_path / "bigvocab", vocab_size=384, tie_word_embeddings=True)
    problems = _problems(tiny_llama_base, other)
    text = "\n".join(problems)
    assert "vocabulary sizes differ" in text
    assert "tie the input and output embeddings" in text
    assert "tensor model.embed_tokens.weight has shape" in text and "[384, 64]" in text
    assert "lacks 1 tensor" in text and "lm_head.weight" in text


def test_negative_and_all_zero_weights(tiny_llama_base, tiny_llama_ft1):
    assert any("negative" in p for p in _problems(tiny_llama_base, tiny_llama_ft1, weights=[1.0, -0.5]))
    assert any("all weights are zero" in p for p in _problems(tiny_llama_base, tiny_llama_ft1, weights=[0.0, 0.0]))
    normalized = {"params": {"normalize": True}}
    assert any("negative" in p for p in _problems(tiny_llama_base, tiny_llama_ft1, weights=[1.5, -0.5], **normalized))


def test_linear_without_normalization_allows_negative_weights(tmp_path, tiny_llama_base, tiny_llama_ft1):
    plain = {"params": {"normalize": False}}
    assert _problems(tiny_llama_base, tiny_llama_ft1, weights=[1.5, -0.5], **plain) == []
    assert _problems(tiny_llama_base, tiny_llama_ft1, weights=[0.0, 0.0], **plain) == []
    out = merge(_recipe(tiny_llama_base, tiny_llama_ft1, weights=[1.5, -0.5], **plain), tmp_path / "x")
    assert out.weights == [1.5, -0.5]
    a, b, merged = (load_state_dict(p) for p in (tiny_llama_base, tiny_llama_ft1, out.path))
    for name, t in merged.items():  # exactly sum(w_i * theta_i), extrapolating past the base
        assert torch.equal(t.float(), a[name].float() * 1.5 + b[name].float() * -0.5), name


def test_integer_buffers_that_differ(tmp_path, tiny_llama_base):
    a = copy_model(tiny_llama_base, tmp_path / "a")
    rewrite_weights(a, lambda s: s.__setitem__("model.position_ids", torch.arange(8)))
    b = copy_model(tiny_llama_base, tmp_path / "b")
    rewrite_weights(b, lambda s: s.__setitem__("model.position_ids", torch.arange(8).flip(0)))
    assert any("integer buffer model.position_ids differs" in p for p in _problems(a, b))
    same = copy_model(a, tmp_path / "same")
    assert _problems(a, same) == []


def test_not_enough_disk(monkeypatch, tmp_path, tiny_llama_base, tiny_llama_ft1):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    report = preflight(_recipe(tiny_llama_base, tiny_llama_ft1), output_dir=tmp_path / "out")
    assert any("not enough free disk" in p and "--out" in p for p in report.problems)


def test_unreadable_inputs_are_problems_not_crashes(tmp_path, tiny_llama_base):
    empty = tmp_path / "nosafetensors"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    (empty / "pytorch_model.bin").write_bytes(b"x")
    report = preflight(_recipe(tiny_llama_base, empty, tmp_path / "missing"))
    text = "\n".join(report.problems)
    assert "no safetensors weights" in text and "pytorch_model.bin" in text
    assert "not found" in text


def test_merge_raises_before_creating_output(tmp_path, tiny_llama_base):
    other = make_tiny_llama(tmp_path / "bigvocab", vocab_size=384)
    with pytest.raises(PreflightError) as e:
        merge(_recipe(tiny_llama_base, other), tmp_path / "out")
    assert len(e.value.problems) >= 2
    assert not (tmp_path / "out").exists()


def test_source_errors_have_types(tmp_path, tiny_llama_base):
    from cocktail_core.io.sources import inspect

    with pytest.raises(SourceNotFoundError, match="not found"):
        inspect(str(tmp_path / "nope"))
    (tmp_path / "nosafe").mkdir()
    (tmp_path / "nosafe" / "config.json").write_text("{}")
    with pytest.raises(NoSafetensorsError, match="save_pretrained|Convert"):
        inspect(str(tmp_path / "nosafe"))
