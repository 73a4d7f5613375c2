"""``push``: upload a merged model folder to the Hub in one commit; and ``merge --push-to-hub``.

    python -m cocktail_core push DIR [--repo org/name] [--private] [--overwrite] [--create-pr] [--token-file F]
    python -m cocktail_core merge --models A B --out DIR --push-to-hub org/name [--private]

The token comes from the ``HF_TOKEN`` variable or ``--token-file``, never from a command-line
argument (it would end up in the shell history and in every process listing).  Pushing never falls
back to a saved ``hf auth login`` token: the user says which token may write.

A model card written by Cocktail names no repo (``# Cocktail merge``, ``path/to/this/model``); the
card uploaded names the target repo in its title and loading snippet.  The local folder is left
untouched: the upload is made from a staging folder of hard links beside it, with the retargeted
``README.md``, removed afterwards.  With ``merge --push-to-hub`` the token is checked before the
merge starts, and if the push fails the merged folder stays where it is, with the command that
pushes it again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cocktail_core.cli.common import add_token_file, read_token
from cocktail_core.errors import HubError, HubUnauthorizedError, RecipeError
from cocktail_core.publish import check_repo_id, push_folder
from cocktail_core.recipe import Recipe
from cocktail_core.units import human_bytes



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", allow_abbrev=False, help="upload a merged model folder to the Hub (one commit)",
        description="Upload the folder a merge wrote (weights, index, config, tokenizer, generation config, "
                    "recipe and model card) to a Hub model repo as one commit, and print the repo URL. "
                    "The token is read from HF_TOKEN or --token-file.")
    p.add_argument("dir", type=Path, metavar="DIR", help="the folder a merge wrote")
    p.add_argument("--repo", default=None, metavar="ORG/NAME",
                   help="target repo; a bare NAME goes to your namespace (default: your namespace and DIR's name)")
    p.add_argument("--private", action="store_true", help="create the repo as private (applies to new repos)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the content of an existing non-empty repo (one commit; stale files are deleted)")
    p.add_argument("--create-pr", action="store_true",
                   help="open a pull request instead of committing to main (works on repos you cannot write to)")
    p.add_argument("--message", default=None, metavar="TEXT", help="commit (or pull request) title")
    p.add_argument("--quiet", action="store_true", help="print only the URL")
    add_token_file(p)
    p.set_defaults(func=run)


def add_merge_options(p: argparse.ArgumentParser) -> None:
    """``merge ... --push-to-hub org/name [--private]``."""
    p.add_argument("--push-to-hub", default=None, metavar="ORG/NAME",
                   help="after the merge, upload the output folder to this Hub repo in one commit "
                        "(token from HF_TOKEN or --token-file)")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo as private")


def run(args: argparse.Namespace) -> int:
    token = require_token(read_token(args))
    folder = Path(args.dir).expanduser()
    quiet = args.quiet

    def progress(done: int, total: int, message: str) -> None:
        if not quiet and done == 0 and message:
            print(f"{message} ({human_bytes(total)})...", file=sys.stderr, flush=True)

    url = push_folder(folder, args.repo, token=token, private=args.private, overwrite=args.overwrite,
                      create_pr=args.create_pr, commit_message=args.message, progress=progress)
    print(url)
    sys.stdout.flush()
    return 0


def prepare_recipe(args: argparse.Namespace, recipe: Recipe, *, token: str | None = None) -> Recipe:
    """``merge`` hook: with ``--push-to-hub``, check the repo id and the token before merging."""
    repo = getattr(args, "push_to_hub", None)
    if not repo:
        if getattr(args, "private", False):
            raise RecipeError("--private needs --push-to-hub.", hint="Add --push-to-hub org/name, or drop --private.")
        return recipe
    check_repo_id(repo)
    from cocktail_core import hub

    user = hub.whoami_name(require_token(token))  # a rejected token stops here, before any work
    args.push_repo = repo if "/" in repo else f"{user}/{repo}"
    return recipe


def after_merge(args: argparse.Namespace, result: Any, *, token: str | None = None) -> None:
    """``merge`` hook: push the merged folder; on failure say where it is and how to push it again."""
    repo = getattr(args, "push_repo", None) or getattr(args, "push_to_hub", None)
    if not repo:
        return
    out = Path(result.path)
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(f"Pushing {out} to {repo}...", file=sys.stderr, flush=True)
    try:
        url = push_folder(out, repo, token=require_token(token), private=args.private,
                          commit_message=f"Upload {out.name} merged with Cocktail")
    except HubError as exc:
        again = f"python -m cocktail_core push {out} --repo {repo}" + (" --private" if args.private else "")
        hint = f"{exc.hint + ' ' if exc.hint else ''}To push the saved model: {again}"
        err = type(exc)(f"{exc.message} The merged model is saved in {out}.", hint=hint)
        if hasattr(exc, "detail"):
            err.detail = exc.detail  # type: ignore[attr-defined]
        raise err from None
    print(f"Pushed to {url}")


# --------------------------------------------------------------------------- helpers


def require_token(token: str | None) -> str:
    """``token``, or a clear error saying how to give one (HF_TOKEN / --token-file)."""
    if token:
        return token
    from cocktail_core import hub

    raise HubUnauthorizedError(
        "Pushing to the Hub needs a token with write access; none was given.",
        hint="Set the HF_TOKEN environment variable, or pass --token-file FILE (a file holding the token). "
             f"Create a write token at {hub._endpoint()}/settings/tokens.",
    )
