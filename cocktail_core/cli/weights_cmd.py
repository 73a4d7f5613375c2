"""``weights``: LM-Cocktail mixing weights from a few examples; and ``merge --examples``.

    python -m cocktail_core weights --models A B C --examples ex.jsonl [--temperature 5] [--optimize] [--json]
    python -m cocktail_core merge --models A B C --examples ex.jsonl --out DIR [--optimize [--free-weights]]

``--optimize --free-weights`` lets the optimizer leave the simplex: the weights may then be negative
and need not sum to 1 (the recipe merges them with linear, ``normalize: false``).

The examples are read and checked (and every model scored) before anything is written, so bad
examples stop the command with a message naming the line and field, and no output folder appears.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cocktail_core.cli.common import TqdmProgress, add_token_file, read_token
from cocktail_core.errors import OutputExistsError, RecipeError
from cocktail_core.recipe import KINDS, Recipe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights", allow_abbrev=False, help="compute mixing weights from a few examples (LM-Cocktail)",
        description="Score each model on a few examples of the target task and print LM-Cocktail weights, "
                    "softmax(-loss / T); --optimize then tunes them on the merged model's own loss.")
    p.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                   help="Hub ids (org/name[@revision]) or local folders")
    p.add_argument("--examples", required=True, metavar="FILE",
                   help='.jsonl / .json file ("-" for stdin): {"input", "output"} for decoders and '
                        'encoder-decoders, {"query", "pos", "neg"} for embedding models and rerankers')
    _add_weight_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the negative sampling (default 0)")
    p.add_argument("--kind", choices=KINDS, default=None, help="model kind (default: detected from config)")
    p.add_argument("--base", default=None,
                   help="the base model (one of --models); with --optimize its own answers guard against drift")
    p.add_argument("--json", action="store_true", help="print a JSON object (keys models, losses, weights, ...)")
    p.add_argument("--save-recipe", type=Path, default=None, metavar="FILE",
                   help="also write a recipe (.yaml or .json) with these weights, for merge --recipe")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_token_file(p)
    p.set_defaults(func=run)


def add_merge_options(p: argparse.ArgumentParser) -> None:
    """``merge --examples FILE [--optimize] [--temperature T] ...``: weights from examples, then the merge."""
    p.add_argument("--examples", default=None, metavar="FILE",
                   help="compute the weights from these examples (.jsonl / .json) instead of --weights")
    _add_weight_options(p)


def _add_weight_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=5.0,
                   help="softmax temperature (default 5): smaller favours the best model, larger evens out")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="keep only the K lowest-loss models")
    p.add_argument("--alpha", type=float, default=None,
                   help="fixed share of --alpha-model (the fine-tune); the others share 1 - alpha by loss")
    p.add_argument("--alpha-model", default=None, metavar="MODEL", help="the model that gets --alpha")
    p.add_argument("--optimize", action="store_true",
                   help="then optimize the weights on the merged model's own loss (guarded against overfitting)")
    p.add_argument("--free-weights", action="store_true",
                   help="with --optimize: search unconstrained weights; they may then be negative and need not "
                        "sum to 1 (merged as exactly sum(w_i * theta_i): linear, normalize false)")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="truncate longer examples to N tokens (default: longer than the context is an error)")
    p.add_argument("--no-chat-template", dest="chat_template", action="store_false",
                   help="score decoder prompts as plain text, without the tokenizer's chat template")
    p.add_argument("--neg-number", type=int, default=7, metavar="N",
                   help="most negatives per example for embedding models and rerankers (default 7)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the models' own Python code")


def _compute(args: argparse.Namespace, models: Any, *, token: str | None, quiet: bool, base: str | None = None,
             seed: int = 0, kind: str | None = None) -> Any:
    from cocktail_core.weights import compute_weights

    bar = None if quiet else TqdmProgress()
    try:
        return compute_weights(
            models, args.examples, kind=kind, temperature=args.temperature, top_k=args.top_k, alpha=args.alpha,
            alpha_model=args.alpha_model, optimize=args.optimize,
            constraint="free" if args.free_weights else "simplex", seed=seed, token=token, progress=bar,
            chat_template=args.chat_template, max_length=args.max_length, base=base, neg_number=args.neg_number,
            trust_remote_code=args.trust_remote_code)
    finally:
        if bar is not None:
            bar.close()


def _check_free_weights(args: argparse.Namespace) -> None:
    if getattr(args, "free_weights", False) and not args.optimize:
        raise RecipeError("--free-weights needs --optimize.",
                          hint="Free weights come from the optimizer; add --optimize (the softmax weights alone "
                               "are always non-negative and sum to 1).")


def run(args: argparse.Namespace) -> int:
    _check_free_weights(args)
    token = read_token(args)
    if args.save_recipe is not None and args.save_recipe.suffix not in (".yaml", ".yml", ".json"):
        raise RecipeError(f"--save-recipe {args.save_recipe} must end in .yaml, .yml or .json.")
    result = _compute(args, args.models, token=token, quiet=args.quiet or args.json, base=args.base,
                      seed=args.seed, kind=args.kind)
    if args.save_recipe is not None:
        extra = {"base": args.base} if args.base else {}
        result.to_recipe(**extra).save(args.save_recipe)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.table())
        if args.save_recipe is not None:
            print(f"Recipe written to {args.save_recipe}; merge it with: "
                  f"python -m cocktail_core merge --recipe {args.save_recipe} --out DIR")
    sys.stdout.flush()
    return 0


def prepare_recipe(args: argparse.Namespace, recipe: Recipe, *, token: str | None = None) -> Recipe:
    """``merge`` hook: with ``--examples``, replace the recipe's weights by weights from the examples."""
    _check_free_weights(args)
    if not getattr(args, "examples", None):
        for flag, value in (("--optimize", args.optimize), ("--free-weights", args.free_weights),
                            ("--top-k", args.top_k), ("--alpha", args.alpha),
                            ("--alpha-model", args.alpha_model)):
            if value not in (None, False):
                raise RecipeError(f"{flag} needs --examples.", hint="Give --examples FILE to compute the weights.")
        return recipe
    if getattr(args, "weights", None):
        raise RecipeError("Give either --weights or --examples, not both.",
                          hint="--examples computes the weights from the examples.")
    out = Path(args.out).expanduser()
    if out.exists() and not getattr(args, "overwrite", False):
        raise OutputExistsError(f"Output folder {out.resolve()} already exists.",
                                hint="Choose another folder or pass --overwrite to replace it.")
    result = _compute(args, recipe, token=token, quiet=getattr(args, "quiet", False), seed=recipe.seed)
    print(result.table())
    sys.stdout.flush()
    args.weights_result = result
    return result.to_recipe(recipe)


def after_merge(args: argparse.Namespace, result: Any, *, token: str | None = None) -> None:
    """``merge`` hook: say where the weights came from."""
    weights = getattr(args, "weights_result", None)
    if weights is not None:
        print(f"Weights from {weights.n_examples} example(s) ({weights.method}) are recorded in "
              f"{Path(result.path) / 'README.md'} and the recipe.")
