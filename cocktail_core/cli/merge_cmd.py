"""``merge``: merge models from the command line or a recipe file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cocktail_core.cli.common import TqdmProgress, add_token_file, read_token
from cocktail_core.errors import RecipeError
from cocktail_core.recipe import DTYPES, KINDS, Recipe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", allow_abbrev=False, help="merge models into a new folder",
                       description="Merge models given on the command line or in a recipe file.")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="Hub ids (org/name[@revision]) or local folders")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per model (default: equal)")
    p.add_argument("--recipe", type=Path, help="a recipe file (YAML or JSON) instead of --models")
    p.add_argument("--out", required=True, type=Path, help="output folder (created; must not exist unless --overwrite)")
    p.add_argument("--method", default=None, help="merge method (default linear)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="method parameter, repeatable")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="output dtype (default auto: the inputs')")
    p.add_argument("--base", default=None, help="base model (one of --models)")
    p.add_argument("--kind", choices=KINDS, default=None, help="model kind (default: detected from config)")
    p.add_argument("--tokenizer-source", default=None, help="model whose tokenizer is copied (default: base, else first)")
    p.add_argument("--shard-size", default=None, help="largest output shard, e.g. 2GB (default 2GB)")
    p.add_argument("--seed", type=int, default=None, help="seed for random methods (dare_*)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_token_file(p)
    extend_merge_parser(p)
    p.set_defaults(func=run)


def extend_merge_parser(p: argparse.ArgumentParser) -> None:
    """Options contributed by the features that hook into ``merge`` (push, examples)."""
    for module in _feature_modules():
        module.add_merge_options(p)


def _feature_modules() -> list:
    """The modules that hook into ``merge`` (``add_merge_options``, ``prepare_recipe``, ``after_merge``).

    Push first: its hook checks the token before the (slow) weights hook scores examples.
    """
    from cocktail_core.cli import push_cmd, weights_cmd

    return [push_cmd, weights_cmd]


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """Build the recipe from ``--recipe`` or ``--models``/``--weights`` plus overrides."""
    overrides = {k: v for k, v in {
        "method": args.method, "dtype": args.dtype, "base": args.base, "kind": args.kind,
        "tokenizer_source": args.tokenizer_source, "shard_size": args.shard_size, "seed": args.seed,
    }.items() if v is not None}
    params = _parse_params(args.param)
    if args.recipe is not None:
        if args.models or args.weights:
            raise RecipeError("Give either --recipe or --models/--weights, not both.")
        data = Recipe.from_file(args.recipe).to_dict()
        data.update(overrides)
        if params:
            data["params"] = {**data.get("params", {}), **params}
        return Recipe.validated(data, source=f"recipe {args.recipe.name}")
    if not args.models:
        raise RecipeError("No models given.", hint="Use --models A B [C ...] or --recipe recipe.yaml.")
    if params:
        overrides["params"] = params
    return Recipe.from_lists(args.models, args.weights, **overrides)


def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise RecipeError(f"--param {item!r} must look like NAME=VALUE (e.g. --param density=0.5).")
        params[name.strip()] = value.strip()
    return params


def run(args: argparse.Namespace) -> int:
    from cocktail_core.engine import merge
    from cocktail_core.compat import human_bytes

    token = read_token(args)
    recipe = recipe_from_args(args)
    for module in _feature_modules():
        recipe = module.prepare_recipe(args, recipe, token=token)
    bar = None if args.quiet else TqdmProgress()
    try:
        result = merge(recipe, args.out, progress=bar, overwrite=args.overwrite, token=token)
    finally:
        if bar is not None:
            bar.close()
    shares = ", ".join(f"{e.model.display_name} {w:.3g}" for e, w in zip(result.recipe.models, result.weights))
    print(f"Merged {len(recipe.models)} models ({recipe.method}: {shares}) into {result.path} "
          f"in {result.seconds:.1f} s; read {human_bytes(result.bytes_read)}, wrote {human_bytes(result.bytes_written)}.")
    for module in _feature_modules():
        module.after_merge(args, result, token=token)
    sys.stdout.flush()
    return 0
