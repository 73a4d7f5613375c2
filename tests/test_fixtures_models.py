"""The tiny-model builders and fixtures in tests/fixtures/models.py produce real, loadable checkpoints."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import torch

from tests.fixtures.models import (
    BPE_VOCAB_SIZE,
    load_state_dict,
    make_tiny_bert,
    make_tiny_llama,
    make_tiny_qwen2,
    make_tokenizer_bpe,
    make_tokenizer_chatml,
    make_tokenizer_t5,
    make_tokenizer_wordpiece,
    safetensors_dtypes,
    safetensors_files,
)


@pytest.fixture
def offline(monkeypatch):
    """HF offline mode plus a socket guard: any attempt to reach the network fails the test."""
    import huggingface_hub
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    # huggingface_hub reads the flag at import time into the module that defines is_offline_mode.
    offline_globals = huggingface_hub.is_offline_mode.__globals__
    if "HF_HUB_OFFLINE" in offline_globals:
        monkeypatch.setitem(offline_globals, "HF_HUB_OFFLINE", True)

    def no_network(self, address, *args, **kwargs):
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    assert huggingface_hub.is_offline_mode()


def _assert_sharded(path: Path, n: int | None = None) -> None:
    index_file = path / "model.safetensors.index.json"
    assert index_file.is_file()
    files = safetensors_files(path)
    assert len(files) > 1
    if n is not None:
        assert len(files) == n
    weight_map = json.loads(index_file.read_text())["weight_map"]
    assert set(weight_map.values()) == {f.name for f in files}
    assert set(weight_map) == set(load_state_dict(path))
    assert not (path / "model.safetensors").exists()


def _diff_stats(a: Path, b: Path) -> tuple[float, float]:
    sa, sb = load_state_dict(a), load_state_dict(b)
    assert sa.keys() == sb.keys()
    diffs = []
    for k in sa:
        assert sa[k].shape == sb[k].shape, k
        diffs.append((sb[k].float() - sa[k].float()).flatten())
    d = torch.cat(diffs)
    return d.std().item(), d.abs().max().item()


# --------------------------------------------------------------------------- tokenizers


def test_decoder_tokenizer_llama3_style(tmp_path, offline):
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    tok = make_tokenizer_bpe(tmp_path / "tok")
    assert time.perf_counter() - t0 < 5
    assert tok.pad_token is None and tok.pad_token_id is None
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>" and tok.unk_token == "<unk>"
    assert tok.chat_template
    assert 200 <= len(tok) <= BPE_VOCAB_SIZE

    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.pad_token is None
    assert loaded.chat_template == tok.chat_template
    text = "The quick brown fox jumps over 42 lazy dogs!\nNew line."
    ids = loaded(text)["input_ids"]
    assert ids == tok(text)["input_ids"]
    assert ids[0] == loaded.bos_token_id
    assert loaded.decode(ids, skip_special_tokens=True) == text

    messages = [{"role": "user", "content": "Hello there"}]
    prompt = loaded.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "Hello there" in prompt and prompt.endswith("<|assistant|>\n")
    no_prompt = loaded.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
    assert not no_prompt.endswith("<|assistant|>\n")


def test_tokenizer_is_deterministic():
    a, b = make_tokenizer_bpe(), make_tokenizer_bpe()
    assert a.get_vocab() == b.get_vocab()


def test_wordpiece_tokenizer(tmp_path, offline):
    from transformers import AutoTokenizer

    make_tokenizer_wordpiece(tmp_path / "wp")
    tok = AutoTokenizer.from_pretrained(tmp_path / "wp")
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [
        0,
        1,
        2,
        3,
        4,
    ]
    enc = tok("Merging models", "is fun", padding="max_length", max_length=16)
    assert enc["input_ids"][0] == tok.cls_token_id
    assert enc["input_ids"].count(tok.sep_token_id) == 2
    assert enc["input_ids"][-1] == tok.pad_token_id
    assert set(enc["token_type_ids"]) == {0, 1}


def test_t5_tokenizer(tmp_path, offline):
    from transformers import AutoTokenizer

    make_tokenizer_t5(tmp_path / "t5tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "t5tok")
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1
    assert tok("translate this")["input_ids"][-1] == tok.eos_token_id


def test_chatml_tokenizer_survives_qwen2_rebuild(tmp_path, offline):
    from transformers import AutoTokenizer

    q = make_tiny_qwen2(tmp_path / "q")
    tok = AutoTokenizer.from_pretrained(q)  # transformers 5 rebuilds a Qwen2Tokenizer here
    orig = make_tokenizer_chatml()
    assert len(tok) == len(orig) == BPE_VOCAB_SIZE
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>" and tok.bos_token is None
    for text in ["Hello  world, it's 2024!\n\nok", "The quick brown fox"]:
        assert tok(text)["input_ids"] == orig(text)["input_ids"]
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# --------------------------------------------------------------------------- decoders


def test_llama_base_loads(tiny_llama_base, offline):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    names = {p.name for p in tiny_llama_base.iterdir()}
    expected = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert expected <= names
    assert "license: apache-2.0" in (tiny_llama_base / "README.md").read_text()

    cfg = AutoConfig.from_pretrained(tiny_llama_base)
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers) == ("llama", 64, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (4, 2, 128)
    assert cfg.max_position_embeddings == 128 and cfg.tie_word_embeddings is False

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_base)
    tok = AutoTokenizer.from_pretrained(tiny_llama_base)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert len(tok) <= cfg.vocab_size
    assert "lm_head.weight" in load_state_dict(tiny_llama_base)
    gen = GenerationConfig.from_pretrained(tiny_llama_base)
    assert gen.eos_token_id == tok.eos_token_id and gen.bos_token_id == tok.bos_token_id

    enc = tok(["a language model"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], cfg.vocab_size)
    assert torch.isfinite(logits).all()
    out = model.generate(**enc, max_new_tokens=3, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3


def test_llama_finetunes_are_small_noise_of_base(tiny_llama_base, tiny_llama_ft1, tiny_llama_ft2):
    for ft in (tiny_llama_ft1, tiny_llama_ft2):
        std, max_abs = _diff_stats(tiny_llama_base, ft)
        assert 0.015 < std < 0.025, std
        assert max_abs < 0.2, max_abs
    std12, _ = _diff_stats(tiny_llama_ft1, tiny_llama_ft2)
    assert 0.02 < std12 < 0.035  # independent noises: sqrt(2) * 0.02


def test_llama_ft2_sharded(tiny_llama_ft2, offline):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _assert_sharded(tiny_llama_ft2, 3)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_ft2)
    sd = load_state_dict(tiny_llama_ft2)
    for k, v in model.state_dict().items():
        if k in sd:
            assert torch.equal(v, sd[k]), k
    assert AutoTokenizer.from_pretrained(tiny_llama_ft2).pad_token is None


def test_llama_bf16_trio(tiny_llama_bf16_trio, offline):
    from transformers import AutoConfig, AutoModelForCausalLM

    assert len(tiny_llama_bf16_trio) == 3
    base, ft_a, ft_b = tiny_llama_bf16_trio
    for p in tiny_llama_bf16_trio:
        assert set(safetensors_dtypes(p).values()) == {"BF16"}
        assert AutoConfig.from_pretrained(p).dtype == torch.bfloat16
        assert AutoModelForCausalLM.from_pretrained(p, dtype="auto").dtype == torch.bfloat16
    assert len(safetensors_files(base)) == 1
    _assert_sharded(ft_b)
    for ft in (ft_a, ft_b):
        std, _ = _diff_stats(base, ft)
        assert 0.015 < std < 0.025


def test_llama_builder_options(tmp_path):
    a = make_tiny_llama(tmp_path / "a", seed=5)
    b = make_tiny_llama(tmp_path / "b", seed=5)
    c = make_tiny_llama(tmp_path / "c", seed=6)
    sa, sb, sc = load_state_dict(a), load_state_dict(b), load_state_dict(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])

    tied = make_tiny_llama(tmp_path / "tied", tie_word_embeddings=True, vocab_size=384, hidden_size=32, num_layers=1)
    st = load_state_dict(tied)
    assert "lm_head.weight" not in st
    assert st["model.embed_tokens.weight"].shape == (384, 32)
    assert not any(k.startswith("model.layers.1.") for k in st)

    tied_ft = make_tiny_llama(tmp_path / "tied_ft", base_from=tied, noise=0.01, seed=1, shards=4)
    _assert_sharded(tied_ft, 4)
    assert json.loads((tied_ft / "config.json").read_text())["tie_word_embeddings"] is True

    with pytest.raises(ValueError):
        make_tiny_llama(tmp_path / "small", vocab_size=100)


def test_qwen2(tiny_qwen2, offline):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(tiny_qwen2)
    assert cfg.model_type == "qwen2" and cfg.tie_word_embeddings is True
    sd = load_state_dict(tiny_qwen2)
    assert "lm_head.weight" not in sd
    assert "model.layers.0.self_attn.q_proj.bias" in sd
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert "license: apache-2.0" in (tiny_qwen2 / "README.md").read_text()


# --------------------------------------------------------------------------- encoders / seq2seq


def test_bert_pair(tiny_bert_pair, offline):
    from transformers import AutoModel, AutoTokenizer

    a, b = tiny_bert_pair
    _assert_sharded(b)
    assert len(safetensors_files(a)) == 1
    for p in (a, b):
        modules = json.loads((p / "modules.json").read_text())
        assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
        pooling = json.loads((p / "1_Pooling" / "config.json").read_text())
        assert pooling["pooling_mode_mean_tokens"] is True and pooling["pooling_mode_cls_token"] is False
        assert pooling["word_embedding_dimension"] == 64
        model = AutoModel.from_pretrained(p)
        tok = AutoTokenizer.from_pretrained(p)
        assert type(model).__name__ == "BertModel"
        enc = tok(["a query", "a longer passage about models"], padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        assert hidden.shape == (2, enc["input_ids"].shape[1], 64)
    std, _ = _diff_stats(a, b)
    assert 0.015 < std < 0.025


def test_bert_cls_pooling(tmp_path):
    p = make_tiny_bert(tmp_path / "cls", pooling="cls", normalize=False)
    pooling = json.loads((p / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_cls_token"] is True and pooling["pooling_mode_mean_tokens"] is False
    assert len(json.loads((p / "modules.json").read_text())) == 2
    with pytest.raises(ValueError):
        make_tiny_bert(tmp_path / "bad", pooling="max")


def test_reranker_pair(tiny_reranker_pair, offline):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    a, b = tiny_reranker_pair
    for p in (a, b):
        model = AutoModelForSequenceClassification.from_pretrained(p)
        tok = AutoTokenizer.from_pretrained(p)
        assert model.config.num_labels == 1
        queries, passages = ["what is paris?", "what is paris?"], ["Paris is a city.", "Cats sleep."]
        enc = tok(queries, passages, padding=True, return_tensors="pt")
        assert set(enc["token_type_ids"].flatten().tolist()) == {0, 1}
        with torch.no_grad():
            assert model(**enc).logits.shape == (2, 1)
    assert "classifier.weight" in load_state_dict(a)
    std, _ = _diff_stats(a, b)
    assert 0.015 < std < 0.025


def test_t5_pair(tiny_t5_pair, offline):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    a, b = tiny_t5_pair
    for p in (a, b):
        model = AutoModelForSeq2SeqLM.from_pretrained(p)
        tok = AutoTokenizer.from_pretrained(p)
        assert type(model).__name__ == "T5ForConditionalGeneration"
        assert model.config.pad_token_id == 0 == tok.pad_token_id
        assert model.config.decoder_start_token_id == tok.pad_token_id
        assert model.config.eos_token_id == tok.eos_token_id == 1
        enc = tok(["translate: hello"], return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=4, do_sample=False)
        assert out.shape[0] == 1 and out[0, 0].item() == tok.pad_token_id
    std, _ = _diff_stats(a, b)
    assert 0.015 < std < 0.025
