"""Publishing a merged folder to the Hub: the card made the repo's card, then one commit.

Shared by the CLI (``push``, ``merge --push-to-hub``) and the web app.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from cocktail_core.errors import HubError, HubPushError

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_REPO_RE = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")


def check_repo_id(repo: str) -> None:
    """Reject a malformed repo id before any work (the Hub applies the same rules)."""
    if not _REPO_RE.match(repo) or "--" in repo or ".." in repo or repo.endswith((".", "-")):
        raise HubError(f"'{repo}' is not a valid Hub repo id.",
                       hint="Use namespace/name (or just name, for your own namespace) with letters, digits, "
                            "'-', '_' or '.', e.g. alice/my-cocktail.")


def push_folder(
    folder: str | Path,
    repo_id: str | None,
    *,
    token: str,
    private: bool = False,
    overwrite: bool = False,
    create_pr: bool = False,
    commit_message: str | None = None,
    progress: Any = None,
    license: str | None = None,
) -> str:
    """Push a merged ``folder`` to ``repo_id`` in one commit, with its card made the repo's card.

    A card Cocktail wrote names no repo; the uploaded one names ``repo_id`` in its title and
    loading snippet, and carries ``license`` when one is given. The folder itself is never
    modified: the upload is made from a staging folder of hard links beside it.

    Args:
        folder: the output folder of a merge.
        repo_id: ``org/name``, a bare ``name`` or ``None`` (the token user's namespace, and the
            folder's name).
        token: a Hub token with write access.
        private: create the repo as private.
        overwrite: replace the files of an existing non-empty repo.
        create_pr: open a pull request instead of committing to the main branch.
        commit_message: the commit (or pull request) title.
        progress: ``progress(done_bytes, total_bytes, message)``.
        license: a license id to set in the card's front matter.

    Returns:
        The URL of the repo (or of the pull request).

    Raises:
        HubError: (subclasses) invalid repo id, bad token, non-empty repo, failed upload.

    Example:
        >>> push_folder("out/cocktail", "alice/cocktail", token=os.environ["HF_TOKEN"], license="apache-2.0")
        'https://huggingface.co/alice/cocktail'
    """
    from cocktail_core import hub
    from cocktail_core.card import retarget_card, with_license

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise HubPushError(f"Nothing to push: {folder} is not a folder.", hint="Give the output folder of a merge.")
    repo = (repo_id or "").strip()
    if repo:
        check_repo_id(repo)
    if "/" not in repo:
        repo = f"{hub.whoami_name(token)}/{repo or folder.resolve().name}"
        check_repo_id(repo)
    message = commit_message or f"Upload {folder.resolve().name} merged with Cocktail"
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else None
    card = retarget_card(text, repo) if text is not None else None
    if license:
        card = with_license(card or "", license)
    kwargs = dict(token=token, private=private, overwrite=overwrite, create_pr=create_pr,
                  commit_message=message, progress=progress)
    if card is None or card == text:
        return hub.push(folder, repo, **kwargs)
    with _staged(folder, {"README.md": card}) as staged:
        try:
            return hub.push(staged, repo, **kwargs)
        except HubError as exc:
            raise _renamed(exc, staged, folder) from None


@contextlib.contextmanager
def _staged(folder: Path, replace: dict[str, str]) -> Iterator[Path]:
    """A copy of ``folder`` (hard links, copies across filesystems) with ``replace`` files rewritten."""
    try:  # beside the folder, so hard links work
        staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}.cocktail-push-", dir=folder.resolve().parent))
    except OSError:
        staged = Path(tempfile.mkdtemp(prefix="cocktail-push-"))
    try:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            dst = staged / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel.as_posix() in replace:
                dst.write_text(replace[rel.as_posix()], encoding="utf-8")
                continue
            try:
                os.link(path, dst)
            except OSError:
                shutil.copy2(path, dst)
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _renamed(exc: HubError, staged: Path, folder: Path) -> HubError:
    """``exc`` with the staging folder's path replaced by the user's folder."""
    def fix(text: str | None) -> str | None:
        return text.replace(str(staged), str(folder)) if text else text

    err = type(exc)(fix(exc.message) or "", hint=fix(exc.hint))
    if hasattr(exc, "detail"):
        err.detail = fix(exc.detail)  # type: ignore[attr-defined]
    return err
