"""Command line: ``python -m cocktail_core {merge,preflight,weights,push} ...``.

Each subcommand lives in its own module with ``register(subparsers)``; errors are printed as one
paragraph through :func:`cocktail_core.errors.format_error` (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from cocktail_core.errors import CocktailError, format_error

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get one line naming the problem, not the whole usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"error: {message}. Run '{self.prog} --help' for usage.\n")


def build_parser() -> argparse.ArgumentParser:
    from cocktail_core.cli import merge_cmd, preflight_cmd, push_cmd, weights_cmd

    parser = _Parser(
        prog="python -m cocktail_core",
        allow_abbrev=False,
        description="Merge language models LM-Cocktail style: streaming merges, weights from examples, Hub push.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{merge,preflight,weights,push}")
    for module in (merge_cmd, preflight_cmd, push_cmd, weights_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("\nInterrupted; nothing was written at the output path.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error becomes one paragraph for the user
        if debug:
            traceback.print_exc()
        print(f"error: {format_error(exc)}", file=sys.stderr)
        from cocktail_core.errors import PreflightError

        return EXIT_PROBLEMS if isinstance(exc, PreflightError) else EXIT_ERROR


__all__ = ["main", "build_parser", "CocktailError"]
