"""Pieces shared by subcommands: token lookup and a tqdm view of engine progress."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cocktail_core.errors import CocktailError


class _RefuseToken(argparse.Action):
    """``--token`` is refused without echoing its value: a token on the command line leaks into the
    shell history and process listings. Declared (hidden) so that ``--token X`` is never taken as an
    abbreviation of ``--token-file X`` nor echoed back as an unrecognized argument."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        parser.error("a Hub token is not accepted on the command line (it would stay in the shell history); "
                     "set the HF_TOKEN environment variable or pass --token-file FILE")


def add_token_file(parser: argparse.ArgumentParser) -> None:
    """``--token-file FILE`` plus a hidden ``--token`` that refuses, for every command that talks to the Hub."""
    parser.add_argument("--token-file", type=Path, default=None,
                        help="file holding a Hugging Face token (default: the HF_TOKEN variable or your login)")
    parser.add_argument("--token", action=_RefuseToken, nargs="?", help=argparse.SUPPRESS)


def read_token(args: argparse.Namespace) -> str | None:
    """The Hub token from ``--token-file``, else ``HF_TOKEN``; never from the command line itself."""
    path = getattr(args, "token_file", None)
    if path is not None:
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CocktailError(f"Cannot read the token file {path} ({exc.strerror}).") from None
        if not token:
            raise CocktailError(f"The token file {path} is empty.")
        return token
    return os.environ.get("HF_TOKEN") or None


class TqdmProgress:
    """Turns :class:`~cocktail_core.engine.ProgressUpdate` events into one tqdm bar per stage."""

    def __init__(self) -> None:
        self._bar = None
        self._stage = None

    def __call__(self, update) -> None:  # noqa: ANN001 - ProgressUpdate, imported lazily
        from tqdm import tqdm

        if update.stage != self._stage:
            self.close()
            self._stage = update.stage
            unit_bytes = update.stage in {"merge", "download"}
            self._bar = tqdm(total=update.total, desc=update.stage, unit="B" if unit_bytes else "step",
                             unit_scale=unit_bytes, leave=False, dynamic_ncols=True)
        self._bar.n = update.done
        if update.message:
            self._bar.set_postfix_str(update.message[-40:], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
