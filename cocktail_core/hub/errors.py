"""huggingface_hub / network exceptions -> :mod:`cocktail_core.errors` Hub errors, and token scrubbing.

Every Hub/network failure is turned into a :class:`~cocktail_core.errors.HubError` subclass with a
message that says what happened and a hint that says what to do; a token never appears in any
message (it is scrubbed defensively, and the original exception is not chained).
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

from cocktail_core.errors import (
    CocktailError,
    HubError,
    HubGatedError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
    HubUnauthorizedError,
    HubUnreachableError,
)
from cocktail_core.hub._client import _endpoint

_TOKEN_RE = re.compile(r"\b(hf_|api_org_)[A-Za-z0-9_\-]{6,}")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)\S+")
_OFFLINE_HINT = "Run once with network access so the model is cached, or unset HF_HUB_OFFLINE."


def scrub_token(text: str, token: str | None = None) -> str:
    """Remove ``token`` and anything token-shaped (``hf_...``, ``Bearer ...``) from ``text``.

    Example:
        >>> scrub_token("failed with hf_abcdefghijklmnop")
        'failed with hf_***'
    """
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    text = _TOKEN_RE.sub(lambda m: m.group(1) + "***", text)
    return _BEARER_RE.sub(lambda m: m.group(1) + "***", text)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network-level exception classes of httpx2 (used by huggingface_hub 2) and httpx."""
    out: list[type[BaseException]] = []
    for mod in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            m = __import__(mod)
            out.append(m.TransportError)
    return tuple(out)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


@contextlib.contextmanager
def _hub_errors(
    *, repo_id: str | None, token: str | None, revision: str | None = None, action: str = "read"
) -> Iterator[None]:
    """Translate huggingface_hub / network exceptions raised inside into :class:`HubError`s."""
    try:
        yield
    except CocktailError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _translate(exc, repo_id=repo_id, token=token, revision=revision, action=action) from None


def _translate(
    exc: BaseException, *, repo_id: str | None, token: str | None, revision: str | None, action: str
) -> HubError:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = _endpoint()
    what = repo_id or "the Hub"
    status = _http_status(exc)
    detail = scrub_token(f"{type(exc).__name__}: {exc}", token)
    err: HubError
    if isinstance(exc, GatedRepoError):
        who = "you are not logged in (no token was given)" if not token else \
            "the account of this token has not been granted access"
        err = HubGatedError(
            f"{what} is a gated model and {who}.",
            hint=f"Visit {endpoint}/{repo_id}, log in and accept the conditions to request access; once "
            "granted, retry with a token of that account (HF_TOKEN, or --token-file on the command line).",
        )
    elif isinstance(exc, RepositoryNotFoundError):
        who = "no token was given" if not token else "the token cannot see it"
        err = HubRepoNotFoundError(
            f"Hub repo {what} was not found at {endpoint}, or it is private and {who}.",
            hint="Check the spelling (namespace/name). For a private repo pass a token with read access "
            "(HF_TOKEN, or --token-file on the command line).",
        )
    elif isinstance(exc, RevisionNotFoundError):
        err = HubRevisionNotFoundError(
            f"Revision '{revision or 'main'}' does not exist in Hub repo {what}.",
            hint="Use a branch name (e.g. main), a tag, a full 40-character commit sha or refs/pr/N.",
        )
    elif isinstance(exc, OfflineModeIsEnabled) or (
        isinstance(exc, LocalEntryNotFoundError) and _offline()
    ):
        err = HubUnreachableError(
            f"Cannot get {what}: offline mode (HF_HUB_OFFLINE=1) is on and it is not in the local cache.",
            hint=_OFFLINE_HINT,
        )
    elif isinstance(exc, LocalEntryNotFoundError) or isinstance(exc, _transport_errors()):
        err = HubUnreachableError(
            f"Could not reach the Hub at {endpoint} to {action} {what if repo_id else ''}".rstrip()
            + f" ({_short_reason(exc, token)}).",
            hint="Check your connection and retry. To work with models downloaded before, set HF_HUB_OFFLINE=1 "
            "to use the local cache.",
        )
    elif isinstance(exc, EntryNotFoundError):
        err = HubError(
            f"A file is missing from Hub repo {what} ({_short_reason(exc, token)}).",
            hint="The repo may have changed since it was inspected; retry.",
        )
    elif isinstance(exc, LocalTokenNotFoundError) or status == 401:
        if token:
            msg = "The Hub rejected the token (invalid, expired or revoked)."
        else:
            msg = f"The Hub requires a token to {action} {what}."
        err = HubUnauthorizedError(
            msg,
            hint=f"Create a token at {endpoint}/settings/tokens and set HF_TOKEN (or use --token-file on the command line).",
        )
    elif status == 403:
        err = HubUnauthorizedError(
            f"The token is not allowed to {action} {what}.",
            hint="Use a token with write access to that namespace (fine-grained tokens need the repo "
            f"permission); manage tokens at {endpoint}/settings/tokens.",
        )
    elif isinstance(exc, HFValidationError):
        err = HubRepoNotFoundError(
            f"'{repo_id}' is not a valid Hub repo id.",
            hint="Use namespace/name, e.g. Qwen/Qwen2-0.5B.",
        )
    elif status is not None and status >= 500:
        err = HubUnreachableError(
            f"The Hub at {endpoint} answered with an error ({status}) while trying to {action} {what}.",
            hint="The Hub may be having trouble: retry in a moment. Models downloaded before work with "
            "HF_HUB_OFFLINE=1.",
        )
    elif status == 429:
        err = HubError(f"The Hub rate-limited this request ({action} {what}).",
                       hint="Wait a minute and retry; a token raises the limits.")
    elif isinstance(exc, HfHubHTTPError):
        err = HubError(f"The Hub refused to {action} {what} ({_short_reason(exc, token)}).")
    else:
        err = HubError(f"Unexpected error while trying to {action} {what} ({_short_reason(exc, token)}).")
    err.message = scrub_token(err.message, token)
    err.args = (err.message,)
    if err.hint:
        err.hint = scrub_token(err.hint, token)
    err.detail = detail  # type: ignore[attr-defined]
    return err


def _short_reason(exc: BaseException, token: str | None) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return scrub_token(f"{type(exc).__name__}{': ' + first if first else ''}", token)[:300]


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())
