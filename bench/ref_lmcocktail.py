"""Run lm-cocktail 0.0.4 the way a user would; meant for bench/.venv-ref/bin/python.

    ref_lmcocktail.py mix  --models A B C --weights 0.5 0.3 0.2 --out DIR
    ref_lmcocktail.py data --models A B C --examples ex.jsonl --out DIR [--temperature 5]
    (--load-dtype float32: force fp32 loading, the transformers 4.x default)

The library's own functions are called unchanged; its internal steps are wrapped only to time
them (load = reading every model into RAM, scoring = compute_weights, merge = merge_param,
save = the rest: load_state_dict + save_pretrained + tokenizer). The last stdout line is
``LMC_RESULT {json}`` with the weights and the phase times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import LM_Cocktail
import LM_Cocktail.cocktail as cocktail

PHASES: dict[str, float] = {}


def _timed(name, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - t
    return wrapper


cocktail.get_model_param_list = _timed("load_models", cocktail.get_model_param_list)
cocktail.load_model = _timed("load_first_model", cocktail.load_model)
cocktail.compute_weights = _timed("scoring", cocktail.compute_weights)
cocktail.merge_param = _timed("merge", cocktail.merge_param)

_captured: dict = {}
_orig_compute = cocktail.compute_weights


def _capture_weights(*args, **kwargs):
    w = _orig_compute(*args, **kwargs)
    _captured["weights"] = w
    return w


cocktail.compute_weights = _capture_weights


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["mix", "data"])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--weights", nargs="+", type=float)
    ap.add_argument("--examples")
    ap.add_argument("--temperature", type=float, default=5.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--load-dtype", choices=["default", "float32"], default="default",
                    help="float32: load models in fp32 as transformers 4.x did by default "
                         "(transformers 5 loads the checkpoint's dtype)")
    a = ap.parse_args()
    if a.load_dtype == "float32":
        import torch
        from transformers import AutoModelForCausalLM

        orig = AutoModelForCausalLM.from_pretrained.__func__

        def from_pretrained_fp32(cls, *args, **kwargs):
            kwargs["dtype"] = torch.float32
            return orig(cls, *args, **kwargs)

        AutoModelForCausalLM.from_pretrained = classmethod(from_pretrained_fp32)

    t0 = time.perf_counter()
    if a.mode == "mix":
        model = LM_Cocktail.mix_models(model_names_or_paths=a.models, model_type="decoder",
                                       weights=a.weights, output_path=a.out)
        weights = a.weights
    else:
        with open(a.examples) as fh:
            examples = [json.loads(line) for line in fh if line.strip()]
        # lm-cocktail 0.0.4 spells the data argument ``example_ata``.
        model = LM_Cocktail.mix_models_with_data(model_names_or_paths=a.models, model_type="decoder",
                                                 example_ata=examples, temperature=a.temperature,
                                                 output_path=a.out)
        weights = _captured.get("weights")
    total = time.perf_counter() - t0
    dtype = str(next(model.parameters()).dtype)
    known = sum(v for k, v in PHASES.items())
    PHASES["save_and_other"] = max(0.0, total - known)
    print("LMC_RESULT " + json.dumps({"weights": weights, "phases_s": {k: round(v, 3) for k, v in PHASES.items()},
                                      "total_s": round(total, 3), "model_dtype": dtype}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
