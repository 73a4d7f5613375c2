"""Generate synthetic Llama-style models for the benchmarks (offline, no Hub).

Two families:

* ``big``: three ~1B-parameter bf16 models (hidden 2048, 16 layers, intermediate 5632,
  32 heads, 4 kv heads, vocab 32000, untied embeddings), each sharded into several
  safetensors files (<= 500 MB each) with an index, config.json and a small tokenizer.
  Tensors are written directly with safetensors, one shard at a time (no model object, no slow
  init): model 1 = N(0, 0.02) per tensor with a seed derived from the tensor name, models 2 and 3
  = model 1 + N(0, 0.002) noise of their own seed. Peak memory is about one shard per model.

* ``small``: three small fp32 models (hidden 512, 4 layers, vocab 32000) sharing one tokenizer
  that has a pad token, for the weights-from-examples benchmark. Model A is trained a few steps on
  the examples (the "fine-tuned" one, lowest loss), B is the untrained base, C is the base plus
  noise (highest loss), so the weights from examples come out distinct.

Run: ``.venv/bin/python bench/make_models.py [big|small|all]``. Existing complete outputs are
kept (a ``.complete`` marker file is written last).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
BIG_DIR = WORK / "models_1b"
SMALL_DIR = WORK / "models_small"

BIG_NAMES = ["m1", "m2", "m3"]
SMALL_NAMES = ["A", "B", "C"]

TOKENIZER_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Model merging averages the parameters of fine-tuned language models.",
    "LM-Cocktail keeps the target skill and restores general ability.",
    "Question: what is the capital of France? Answer: Paris.",
    "Translate to French: good morning -> bonjour.",
    "def add(a, b):\n    return a + b\n",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000",
    "Weights come from a handful of examples of the target task.",
]

# The five examples of the weights benchmark (issue #3): {"input", "output"}.
EXAMPLES = [
    {"input": "Question: what is the capital of France? Answer:", "output": "Paris."},
    {"input": "Question: what is 2 + 3? Answer:", "output": "5."},
    {"input": "Translate to French: good morning ->", "output": "bonjour."},
    {"input": "Complete the code: def add(a, b): return", "output": "a + b"},
    {"input": "Question: what colour is the sky on a clear day? Answer:", "output": "Blue."},
]

BIG_CONFIG = dict(
    hidden_size=2048,
    num_hidden_layers=16,
    intermediate_size=5632,
    num_attention_heads=32,
    num_key_value_heads=4,
    vocab_size=32000,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
    rms_norm_eps=1e-5,
)

SMALL_CONFIG = dict(
    hidden_size=512,
    num_hidden_layers=4,
    intermediate_size=1376,
    num_attention_heads=8,
    num_key_value_heads=4,
    vocab_size=32000,
    max_position_embeddings=2048,
    tie_word_embeddings=False,
    rms_norm_eps=1e-5,
)


# ---------------------------------------------------------------------------------------------
# tokenizer


def make_tokenizer():
    """A ByteLevel BPE trained on a few lines, wrapped as PreTrainedTokenizerFast (with pad)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TOKENIZER_LINES + [e["input"] + " " + e["output"] for e in EXAMPLES],
                            trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )


def llama_config(cfg: dict, tokenizer, dtype: str):
    from transformers import LlamaConfig

    c = LlamaConfig(
        **cfg,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    c.architectures = ["LlamaForCausalLM"]  # mergekit picks the architecture from this
    # transformers 5 spells it ``dtype``; older readers look at ``torch_dtype``.
    try:
        c.dtype = dtype
    except Exception:  # pragma: no cover
        pass
    return c


# ---------------------------------------------------------------------------------------------
# big models, written tensor by tensor


def llama_tensor_shapes(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    h = cfg["hidden_size"]
    inter = cfg["intermediate_size"]
    n_heads = cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"]
    head_dim = h // n_heads
    v = cfg["vocab_size"]
    out = [("model.embed_tokens.weight", (v, h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (n_heads * head_dim, h)),
            (p + "self_attn.k_proj.weight", (kv * head_dim, h)),
            (p + "self_attn.v_proj.weight", (kv * head_dim, h)),
            (p + "self_attn.o_proj.weight", (h, n_heads * head_dim)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (inter, h)),
            (p + "mlp.up_proj.weight", (inter, h)),
            (p + "mlp.down_proj.weight", (h, inter)),
        ]
    out += [("model.norm.weight", (h,))]
    if not cfg.get("tie_word_embeddings", False):
        out += [("lm_head.weight", (v, h))]
    return out


def plan_shards(shapes, bytes_per_elem: int, max_shard_bytes: int):
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        n = bytes_per_elem
        for d in shape:
            n *= d
        if shards[-1] and size + n > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += n
    return shards


def _seed(name: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def _is_complete(d: Path) -> bool:
    return (d / ".complete").exists()


def write_big_models(root: Path = BIG_DIR, names=BIG_NAMES, cfg: dict = BIG_CONFIG,
                     max_shard_bytes: int = 500 * 1000 * 1000, noise: float = 0.002,
                     verbose: bool = True) -> list[Path]:
    import torch
    from safetensors.torch import save_file

    dirs = [root / n for n in names]
    tokenizer = make_tokenizer()
    config = llama_config(cfg, tokenizer, "bfloat16")
    if all(_is_complete(d) for d in dirs):
        for d in dirs:  # cheap: keep config/tokenizer in step with this script
            config.save_pretrained(d)
            tokenizer.save_pretrained(d)
        if verbose:
            print(f"[make_models] big models already in {root}")
        return dirs

    shapes = llama_tensor_shapes(cfg)
    shards = plan_shards(shapes, 2, max_shard_bytes)
    n_shards = len(shards)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        (d / ".complete").unlink(missing_ok=True)
        for old in d.glob("*.safetensors"):
            old.unlink()
    weight_map: dict[str, str] = {}
    total_size = 0
    for si, shard in enumerate(shards, start=1):
        fname = f"model-{si:05d}-of-{n_shards:05d}.safetensors"
        per_model: list[dict[str, torch.Tensor]] = [{} for _ in names]
        for name, shape in shard:
            g = torch.Generator().manual_seed(_seed(name, "base"))
            if name.endswith("norm.weight"):
                base = 1.0 + 0.05 * torch.randn(shape, generator=g, dtype=torch.float32)
            else:
                base = torch.randn(shape, generator=g, dtype=torch.float32).mul_(0.02)
            for mi, mname in enumerate(names):
                if mi == 0:
                    t = base.to(torch.bfloat16)
                else:
                    gn = torch.Generator().manual_seed(_seed(name, f"noise-{mname}"))
                    t = base.add(torch.randn(shape, generator=gn, dtype=torch.float32), alpha=noise)
                    t = t.to(torch.bfloat16)
                per_model[mi][name] = t
            del base
            weight_map[name] = fname
            total_size += 2 * int(torch.Size(shape).numel())
        for mi, d in enumerate(dirs):
            save_file(per_model[mi], str(d / fname), metadata={"format": "pt"})
        del per_model
        if verbose:
            print(f"[make_models] wrote shard {si}/{n_shards} ({len(shard)} tensors) x{len(names)}",
                  flush=True)

    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    for d in dirs:
        (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        config.save_pretrained(d)
        tokenizer.save_pretrained(d)
        (d / ".complete").write_text("ok\n")
    if verbose:
        n_params = total_size // 2
        print(f"[make_models] {len(dirs)} models x {n_params / 1e9:.3f}B params "
              f"({total_size / 2**30:.2f} GiB each) in {root}")
    return dirs


def verify_loads(model_dir: Path, dtype_name: str = "bfloat16") -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype_name))
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tok("Question: what is 2 + 3? Answer:", return_tensors="pt")
    with torch.no_grad():
        out = model(**ids)
    n = sum(p.numel() for p in model.parameters())
    assert torch.isfinite(out.logits.float()).all()
    print(f"[make_models] {model_dir.name}: loads with from_pretrained, {n / 1e9:.3f}B params, "
          f"dtype {next(model.parameters()).dtype}, logits {tuple(out.logits.shape)}, "
          f"tokenizer vocab {len(tok)}, pad {tok.pad_token!r}")


# ---------------------------------------------------------------------------------------------
# small models for the weights-from-examples benchmark


def write_examples(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    return path


def write_small_models(root: Path = SMALL_DIR, names=SMALL_NAMES, cfg: dict = SMALL_CONFIG,
                       train_steps: int = 6, verbose: bool = True) -> list[Path]:
    import torch
    from transformers import LlamaForCausalLM

    dirs = [root / n for n in names]
    write_examples(root / "examples.jsonl")
    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    config = llama_config(cfg, tokenizer, "float32")
    if all(_is_complete(d) for d in dirs):
        for d in dirs:
            config.save_pretrained(d)
            tokenizer.save_pretrained(d)
        if verbose:
            print(f"[make_models] small models already in {root}")
        return dirs

    base = LlamaForCausalLM(config).to(torch.float32)
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}

    # A: "fine-tuned" on the examples for a few steps (the same answer-only loss lm-cocktail uses).
    tuned = LlamaForCausalLM(config).to(torch.float32)
    tuned.load_state_dict(base_state)
    tuned.train()
    opt = torch.optim.AdamW(tuned.parameters(), lr=1e-3)
    batch_ids, batch_labels = [], []
    for e in EXAMPLES:
        p = tokenizer.encode(e["input"])
        full = tokenizer.encode(e["input"] + " " + e["output"]) + [tokenizer.eos_token_id]
        batch_ids.append(full)
        batch_labels.append([-100] * len(p) + full[len(p):])
    L = max(len(x) for x in batch_ids)
    ids = torch.tensor([x + [tokenizer.pad_token_id] * (L - len(x)) for x in batch_ids])
    labels = torch.tensor([y + [-100] * (L - len(y)) for y in batch_labels])
    mask = ids.ne(tokenizer.pad_token_id)
    for step in range(train_steps):
        loss = tuned(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    if verbose:
        print(f"[make_models] small A trained {train_steps} steps, final loss {loss.item():.3f}")
    tuned.eval()

    # C: base + noise.
    g = torch.Generator().manual_seed(1234)
    noisy_state = {k: (v + 0.02 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v
                   for k, v in base_state.items()}

    states = {"A": tuned.state_dict(), "B": base_state, "C": noisy_state}
    for name, d in zip(names, dirs):
        d.mkdir(parents=True, exist_ok=True)
        m = LlamaForCausalLM(config)
        m.load_state_dict(states[name])
        m.save_pretrained(d)
        tokenizer.save_pretrained(d)
        (d / ".complete").write_text("ok\n")
    if verbose:
        n = sum(p.numel() for p in base.parameters())
        print(f"[make_models] small models {names} ({n / 1e6:.1f}M params, fp32) in {root}")
    return dirs


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "all"
    if what in ("big", "all"):
        dirs = write_big_models()
        verify_loads(dirs[0])
    if what in ("small", "all"):
        dirs = write_small_models()
        verify_loads(dirs[0], "float32")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
