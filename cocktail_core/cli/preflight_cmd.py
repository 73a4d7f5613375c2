"""``preflight``: check that models can be merged, from configs and headers only."""

from __future__ import annotations

import argparse

from cocktail_core.cli.common import add_token_file, read_token
from cocktail_core.recipe import Recipe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preflight", allow_abbrev=False, help="check models can be merged (exit 1 when they cannot)",
                       description="Read configs and safetensors headers (no weights) and report every problem.")
    p.add_argument("--models", nargs="+", required=True, metavar="MODEL")
    p.add_argument("--weights", nargs="+", type=float, metavar="W")
    p.add_argument("--method", default="linear")
    p.add_argument("--base", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--out", default=None, help="planned output folder (checks free disk)")
    add_token_file(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cocktail_core.compat import preflight

    recipe = Recipe.from_lists(args.models, args.weights, method=args.method, base=args.base, dtype=args.dtype)
    report = preflight(recipe, output_dir=args.out, token=read_token(args))
    print(report.render())
    return 0 if report.ok else 1
