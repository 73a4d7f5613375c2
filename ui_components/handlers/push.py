"""Pushing the session's last merge to the Hub: repo name, model card license, the upload."""

from __future__ import annotations

from cocktail_core.errors import CocktailError

from ui_components.handlers.progress import Progress, noop
from ui_components.handlers.tokens import on_space
from ui_components.session import Session

#: licenses offered in the push panel ("" keeps what the card says)
LICENSES = ("", "apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "openrail", "llama3",
            "llama3.1", "gemma", "other")


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
    from cocktail_core.publish import push_folder

    progress = progress or noop
    if not token:
        where = "Sign in with Hugging Face" if on_space() else "Paste a Hub token with write access (or set HF_TOKEN)"
        raise HubUnauthorizedError("You are signed out: pushing to the Hub needs your token.",
                                   hint=f"{where}, then push again.")
    record = session.require_merge()

    def on_bytes(done: float, total: float, message: str = "") -> None:
        progress(min(1.0, done / total) if total else 0.0, message or "uploading")

    # The card is made the repo's card (title, loading snippet, license) in the uploaded copy only:
    # the session's merge keeps its own.
    return push_folder(record.path, (repo_name or "").strip() or record.name, token=token, private=bool(private),
                       overwrite=bool(overwrite), progress=on_bytes, license=(license or "").strip() or None)
