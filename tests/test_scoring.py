"""Scoring: each kind's loss equals an independent computation on the same token ids."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from cocktail_core.errors import ExamplesError, ScoringError
from cocktail_core.examples import load_examples
from cocktail_core.scoring import (
    DecoderTask,
    EmbeddingTask,
    RerankerTask,
    Seq2SeqTask,
    context_length,
    load_model,
    make_task,
    read_pooling,
    score_model,
)
from cocktail_core.scoring.embedding import sample_negatives
from tests.fixtures.models import make_tiny_bert, make_tiny_llama

TEXT = [
    {"input": "What is the capital of France?", "output": "The answer is Paris."},
    {"input": "Translate this sentence into French.", "output": "Bonjour"},
    {"input": "Write a short poem about the moon and the quiet stars, please.", "output": "Quiet moon, quiet stars"},
]
RETRIEVAL = [
    {"query": "capital of France", "pos": ["What is the capital city of France? The answer is Paris."],
     "neg": ["Cats sleep for most of the day.", "Rain is expected tomorrow.", "The library closes at eight."]},
    {"query": "green tea", "pos": ["Every morning she drinks a cup of green tea with honey.", "tea with honey"],
     "neg": ["The train to London leaves at noon."]},
    {"query": "embedding model", "pos": ["The embedding model maps a sentence to a vector of numbers."]},
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _decoder_task(folder, examples=TEXT, **kw):
    tok = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    return DecoderTask(load_examples(examples, kind="decoder"), tokenizer=tok, config=config, name=folder.name, **kw)


def _independent_decoder_loss(model, ids, n_prompt):
    """Plain unpadded forward of one sequence and a hand-written cross-entropy over ids[n_prompt:]."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    nll = [-logp[t - 1, ids[t]] for t in range(n_prompt, len(ids))]
    return float(torch.stack(nll).mean())


@pytest.mark.parametrize("chat_template", [True, False])
def test_decoder_loss_equals_independent_computation(tiny_llama_ft1, chat_template):
    task = _decoder_task(tiny_llama_ft1, chat_template=chat_template)
    assert task.tokenizer.pad_token is None  # no pad token needed: dynamic padding with any id
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_ft1)
    with torch.no_grad():
        ours = task.example_losses(model)
    assert len({len(e.ids) for e in task.encoded}) >= 2  # the batch really is padded
    for got, enc in zip(ours.tolist(), task.encoded):
        assert got == pytest.approx(_independent_decoder_loss(model, list(enc.ids), enc.n_prompt), abs=1e-5)
    score = score_model(tiny_llama_ft1, load_examples(TEXT), kind="decoder", chat_template=chat_template)
    assert score.per_example == pytest.approx(ours.tolist(), abs=1e-6)
    assert score.loss == pytest.approx(sum(score.per_example) / 3)


def test_exactly_the_answer_tokens_and_eos_carry_loss_with_chat_template(tiny_llama_base):
    task = _decoder_task(tiny_llama_base)
    tok = task.tokenizer
    assert task.use_template
    for ex, enc in zip(TEXT, task.encoded):
        rendered = tok.apply_chat_template([{"role": "user", "content": ex["input"]}], tokenize=False,
                                           add_generation_prompt=True)
        assert rendered.endswith("<|assistant|>\n")
        prompt_ids = tok(rendered, add_special_tokens=False)["input_ids"]
        answer_ids = tok(ex["output"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert list(enc.ids[: enc.n_prompt]) == prompt_ids
        assert list(enc.answer_ids) == answer_ids
        assert tok.decode(enc.answer_ids) == ex["output"] + "</s>"


def test_exactly_the_answer_tokens_and_eos_carry_loss_without_template(tiny_llama_base):
    task = _decoder_task(tiny_llama_base, chat_template=False)
    tok = task.tokenizer
    for ex, enc in zip(TEXT, task.encoded):
        assert list(enc.ids[: enc.n_prompt]) == tok(ex["input"])["input_ids"]  # BOS + prompt
        assert enc.ids[0] == tok.bos_token_id
        assert list(enc.answer_ids) == tok(" " + ex["output"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert tok.decode(enc.ids, skip_special_tokens=True) == ex["input"] + " " + ex["output"]


def test_only_answer_positions_change_the_loss(tiny_llama_base):
    """Moving the boundary by one token in either direction changes the loss: nothing extra, nothing missing."""
    task = _decoder_task(tiny_llama_base, examples=TEXT[:1])
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_base)
    enc = task.encoded[0]
    with torch.no_grad():
        ours = float(task.example_losses(model)[0])
    assert ours == pytest.approx(_independent_decoder_loss(model, list(enc.ids), enc.n_prompt), abs=1e-5)
    assert ours != pytest.approx(_independent_decoder_loss(model, list(enc.ids), enc.n_prompt - 1), abs=1e-4)
    assert ours != pytest.approx(_independent_decoder_loss(model, list(enc.ids), enc.n_prompt + 1), abs=1e-4)


def test_decoder_too_long_for_context_and_truncation(tiny_llama_base):
    long_prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 20)
    examples = [TEXT[0], {"input": long_prompt, "output": "Yes."}]
    with pytest.raises(ExamplesError, match=r"example 2 is \d+ tokens long .* 128-token context of llama-base") as err:
        _decoder_task(tiny_llama_base, examples=examples)
    assert err.value.field == "input"
    with pytest.raises(ScoringError, match="example 2: its prompt alone is .* cuts its whole answer away"):
        _decoder_task(tiny_llama_base, examples=examples, max_length=64)
    # A prompt that fits leaves part of the answer: scored, finite, on the kept tokens only.
    short = [{"input": "Hello there.", "output": long_prompt}]
    task = _decoder_task(tiny_llama_base, examples=short, max_length=40)
    assert len(task.encoded[0].ids) == 40
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_base)
    with torch.no_grad():
        assert torch.isfinite(task.example_losses(model)).all()


def test_decoder_rejects_retrieval_examples(tiny_llama_base):
    tok = AutoTokenizer.from_pretrained(tiny_llama_base)
    with pytest.raises(ExamplesError, match="do not fit a decoder model"):
        make_task("decoder", load_examples(RETRIEVAL), tokenizer=tok, config={}, name="x")


def test_embedding_pooling_comes_from_the_sentence_transformers_config(tmp_path, tiny_bert_pair):
    assert read_pooling(tiny_bert_pair[0]) == "mean"
    cls = make_tiny_bert(tmp_path / "cls", pooling="cls")
    assert read_pooling(cls) == "cls"
    (cls / "modules.json").unlink()
    (cls / "1_Pooling" / "config.json").unlink()
    assert read_pooling(cls) == "cls"  # no sentence-transformers config: CLS, as LM-Cocktail


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_embedding_loss_equals_independent_computation(tmp_path, tiny_bert_pair, pooling):
    folder = tiny_bert_pair[1] if pooling == "mean" else make_tiny_bert(tmp_path / "cls", pooling="cls", seed=3)
    tok = AutoTokenizer.from_pretrained(folder)
    examples = load_examples(RETRIEVAL, kind="encoder")
    task = EmbeddingTask(examples, tokenizer=tok, config={}, folder=folder, neg_number=7, seed=0)
    assert task.pooling == pooling
    model = AutoModel.from_pretrained(folder)
    with torch.no_grad():
        ours = task.example_losses(model)

    def embed(text):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0]
        v = h.mean(0) if pooling == "mean" else h[0]
        return v / v.norm()

    negatives = sample_negatives(examples, 0, 7)
    assert negatives[2] == [p for ex in RETRIEVAL[:2] for p in ex["pos"]]  # no own negatives: others' positives
    for got, ex, negs in zip(ours.tolist(), RETRIEVAL, negatives):
        q = embed(ex["query"])
        terms = []
        for p in ex["pos"]:
            cands = torch.stack([embed(t) for t in [p] + negs])
            scores = cands @ q / 0.05
            terms.append(-torch.log_softmax(scores, 0)[0])
        assert got == pytest.approx(float(torch.stack(terms).mean()), abs=1e-4)


def test_embedding_negatives_are_seeded():
    many = [{"query": "q", "pos": ["p"], "neg": [f"negative {i}" for i in range(12)]}]
    ex = load_examples(many, kind="encoder")
    assert sample_negatives(ex, 0, 3) == sample_negatives(ex, 0, 3)
    assert sample_negatives(ex, 0, 3) != sample_negatives(ex, 1, 3)
    assert len(sample_negatives(ex, 0, 3)[0]) == 3
    assert len(sample_negatives(ex, 0, 50)[0]) == 12  # fewer negatives than asked is fine
    with pytest.raises(ExamplesError, match="no negatives"):
        sample_negatives(load_examples([{"query": "q", "pos": ["p"]}], kind="encoder"), 0, 3)


def test_reranker_loss_equals_independent_computation(tiny_reranker_pair):
    folder = tiny_reranker_pair[1]
    tok = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    examples = load_examples(RETRIEVAL, kind="reranker")
    task = RerankerTask(examples, tokenizer=tok, config=config, folder=folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        ours = task.example_losses(model)

    def score(q, p):
        with torch.no_grad():
            return model(**tok(q, p, return_tensors="pt")).logits[0, 0]

    for got, ex, negs in zip(ours.tolist(), RETRIEVAL, sample_negatives(examples, 0, 7)):
        terms = [-torch.log_softmax(torch.stack([score(ex["query"], t) for t in [p] + negs]), 0)[0]
                 for p in ex["pos"]]
        assert got == pytest.approx(float(torch.stack(terms).mean()), abs=1e-4)
    assert score_model(folder, examples, kind="reranker").loss == pytest.approx(float(ours.mean()), abs=1e-5)


def test_seq2seq_loss_equals_independent_computation(tiny_t5_pair):
    folder = tiny_t5_pair[1]
    tok = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    task = Seq2SeqTask(load_examples(TEXT), tokenizer=tok, config=config)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    with torch.no_grad():
        ours = task.example_losses(model)
        for got, ex in zip(ours.tolist(), TEXT):
            src = tok(ex["input"], return_tensors="pt")
            labels = tok(ex["output"], return_tensors="pt")["input_ids"]  # the T5 tokenizer appends </s>
            assert labels[0, -1] == tok.eos_token_id
            ref = model(**src, labels=labels).loss  # transformers' own shift-right and mean CE
            assert got == pytest.approx(float(ref), abs=1e-5)


def test_seq2seq_too_long(tiny_t5_pair):
    tok = AutoTokenizer.from_pretrained(tiny_t5_pair[0])
    config = json.loads((tiny_t5_pair[0] / "config.json").read_text())
    long = [{"input": "word " * 400, "output": "ok"}]
    with pytest.raises(ExamplesError, match="example 1 is .* tokens long"):
        Seq2SeqTask(load_examples(long), tokenizer=tok, config=config)


def test_load_model_keeps_the_checkpoint_dtype(tmp_path):
    folder = make_tiny_llama(tmp_path / "bf16", dtype=torch.bfloat16)
    loaded = load_model(folder, "decoder")
    try:
        assert next(loaded.model.parameters()).dtype == torch.bfloat16
        assert loaded.device == torch.device("cpu") and not loaded.model.training
        task = _decoder_task(folder)
        with torch.no_grad():
            assert torch.isfinite(task.example_losses(loaded.model)).all()
    finally:
        loaded.close()
    with pytest.raises(ScoringError, match="Cannot load"):
        load_model(folder, "encoder-decoder")


def test_context_length():
    assert context_length({"max_position_embeddings": 2048}) == 2048
    assert context_length({"text_config": {"max_position_embeddings": 512}}) == 512
    assert context_length({}) is None

    class Tok:
        model_max_length = 10**30

    assert context_length({"n_positions": 1024}, Tok()) == 1024


@pytest.mark.parametrize(("free", "expected"), [(10**9, {"": 0}), (10**3, "auto")])
def test_gpu_placement_uses_accelerate_big_model_loading_when_it_does_not_fit(monkeypatch, tiny_llama_base,
                                                                              free, expected):
    """No GPU here: check the placement decision with a fake CUDA device and a fake loader."""
    import transformers

    class Fake(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(2, 2)

        def get_input_embeddings(self):
            return self.emb

    seen = {}

    def fake_from_pretrained(path, **kwargs):
        seen.update(kwargs)
        return Fake()

    monkeypatch.setattr("cocktail_core.engine.compute_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=None: (free, 2 * free))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", staticmethod(fake_from_pretrained))
    loaded = load_model(tiny_llama_base, "decoder")
    assert seen["device_map"] == expected and seen["dtype"] == "auto"
    assert seen["use_safetensors"] is True and seen["trust_remote_code"] is False
    if expected == "auto":
        assert loaded.offloaded and seen["offload_folder"]
        from pathlib import Path

        offload = Path(seen["offload_folder"])
        assert offload.is_dir()
        loaded.close()
        assert not offload.exists()
    else:
        assert not loaded.offloaded and "offload_folder" not in seen
        loaded.close()
