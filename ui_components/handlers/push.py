"""Pushing the session's last merge to the Hub: repo name, model card license, the upload."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from cocktail_core.card import split_front_matter
from cocktail_core.errors import CocktailError

from ui_components.handlers.progress import Progress, noop
from ui_components.handlers.tokens import on_space
from ui_components.session import Session

#: licenses offered in the push panel ("" keeps what the card says)
LICENSES = ("", "apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "openrail", "llama3",
            "llama3.1", "gemma", "other")


def set_card_license(folder: Path, license: str) -> None:
    """Set ``license`` in the model card's front matter (``README.md``) of a merged folder."""
    readme = folder / "README.md"
    meta, body = split_front_matter(readme.read_text(encoding="utf-8") if readme.is_file() else "")
    meta["license"] = license
    readme.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---\n\n" + body, encoding="utf-8")


def default_repo_name(name: str, token: str | None) -> str:
    """``user/<name>`` when the token's user is known, else ``<name>``."""
    name = name or "cocktail"
    if not token:
        return name
    try:
        from cocktail_core.hub import whoami_name

        return f"{whoami_name(token)}/{name}"
    except CocktailError:
        return name


def push_form(
    *,
    session: Session,
    repo_name: str = "",
    private: bool = False,
    license: str = "",
    overwrite: bool = False,
    token: str | None = None,
    progress: Progress | None = None,
) -> str:
    """Push the session's last merge to the Hub; returns the repo URL.

    ``overwrite`` replaces the files of an existing repo; without it a non-empty repo is refused.

    Raises:
        HubUnauthorizedError: no token (signed out) or a token that cannot write there.
        SessionError: nothing merged yet.
        HubError: the push failed (nothing was committed).
    """
    from cocktail_core.errors import HubUnauthorizedError
    from cocktail_core.hub import push

    progress = progress or noop
    if not token:
        where = "Sign in with Hugging Face" if on_space() else "Paste a Hub token with write access (or set HF_TOKEN)"
        raise HubUnauthorizedError("You are signed out: pushing to the Hub needs your token.",
                                   hint=f"{where}, then push again.")
    record = session.require_merge()
    license = (license or "").strip()
    folder = record.path
    if license:
        # push a copy so the session's merge keeps its own card
        staged = session.folder / "push-staging" / record.name
        shutil.rmtree(staged.parent, ignore_errors=True)
        shutil.copytree(record.path, staged)
        set_card_license(staged, license)
        folder = staged
    repo_name = (repo_name or "").strip() or record.name

    def on_bytes(done: float, total: float, message: str = "") -> None:
        progress(min(1.0, done / total) if total else 0.0, message or "uploading")

    try:
        url = push(folder, repo_name, token=token, private=bool(private), overwrite=bool(overwrite), progress=on_bytes)
    finally:
        if folder != record.path:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return url
