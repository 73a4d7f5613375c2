"""Upload a merged model folder to the Hub, and tell whose a token is.

:func:`push` never falls back to an ambient token: a web app must not push with the server's own
credentials on behalf of a logged-out visitor.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from cocktail_core.errors import (
    HubError,
    HubPushError,
    HubRepoNotEmptyError,
    HubUnauthorizedError,
)
from cocktail_core.hub._client import ProgressFn, _endpoint, _Progress
from cocktail_core.hub.errors import (
    _http_status,
    _hub_errors,
    _short_reason,
    _transport_errors,
    _translate,
    scrub_token,
)


def push(
    output_dir: str | Path,
    repo_id: str | None = None,
    *,
    token: str | None,
    private: bool = False,
    overwrite: bool = False,
    create_pr: bool = False,
    commit_message: str | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Upload a merged model folder to the Hub as one commit (or one pull request).

    Everything is checked before anything is created: the folder (weights, ``config.json``,
    ``README.md`` card), the token (``whoami``; a rejected token creates no repo) and the target
    namespace.  The repo is created if missing (``private`` applies to new repos only).  If it
    exists and holds files other than ``.gitattributes``, the push is refused unless
    ``overwrite`` or ``create_pr``; then the commit makes the repo (or the PR) hold exactly the
    folder's files -- stale files such as old shards are deleted in the same commit.

    Args:
        output_dir: the folder a merge wrote.
        repo_id: ``namespace/name``, a bare ``name`` (the token user's namespace) or ``None``
            (the token user's namespace and the folder's name).
        token: a Hub token with write access.  Required: there is no fallback to ``HF_TOKEN``.
        private: create the repo as private.
        overwrite: replace the content of an existing non-empty repo.
        create_pr: open a pull request instead of committing to ``main``.
        commit_message: commit (or PR) title; a default names the folder.
        progress: ``progress(done_bytes, total_bytes, message)`` at start and end.

    Returns:
        The repo URL, or the pull request URL with ``create_pr``.

    Raises:
        HubPushError: the folder is not a complete model, or the upload failed (the message
            says whether the repo is unchanged, which it is when the Hub can confirm it).
        HubUnauthorizedError: no token, a rejected or read-only token, or a namespace the token
            cannot write to.
        HubRepoNotEmptyError: the repo holds files and neither ``overwrite`` nor ``create_pr``.
        HubUnreachableError: the Hub cannot be reached.

    Example:
        >>> push("out/cocktail", "my-cocktail", token=os.environ["HF_TOKEN"])
        'https://huggingface.co/alice/my-cocktail'
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    folder = Path(output_dir).expanduser()
    local_files = _check_push_folder(folder)
    if not token:
        raise HubUnauthorizedError(
            "Pushing to the Hub needs a token with write access; none was given.",
            hint=f"Create a write token at {_endpoint()}/settings/tokens and set HF_TOKEN "
            "(or use --token-file on the command line).",
        )
    user, orgs = _whoami(token, need_write=True)
    repo_id = _target_repo(repo_id, user, folder)
    namespace = repo_id.split("/", 1)[0]
    own_namespace = namespace == user or namespace in orgs
    not_yours = HubUnauthorizedError(
        f"The token belongs to '{user}', who cannot write to the namespace '{namespace}'.",
        hint=f"Push to {user}/<name>" + (f" or to an organization you belong to ({', '.join(orgs)})"
                                          if orgs else "") + ", or open a pull request with --create-pr.",
    )
    if not own_namespace and not create_pr:  # a PR to someone else's public repo is fine
        raise not_yours

    api = HfApi(token=token)
    url = f"{_endpoint()}/{repo_id}"
    remote_files: list[str] = []
    with _hub_errors(repo_id=repo_id, token=token):
        try:
            info = api.model_info(repo_id, token=token)
            head = str(info.sha)
            remote_files = [s.rfilename for s in info.siblings or []]
        except RepositoryNotFoundError:
            if not own_namespace:
                raise not_yours from None
            api.create_repo(repo_id, private=private, exist_ok=True, token=token)
            head = str(api.model_info(repo_id, token=token).sha)
    existing = [f for f in remote_files if f != ".gitattributes"]
    if existing and not (overwrite or create_pr):
        shown = ", ".join(sorted(existing)[:4]) + (", ..." if len(existing) > 4 else "")
        raise HubRepoNotEmptyError(
            f"The Hub repo {repo_id} already holds {len(existing)} file(s) ({shown}); nothing was pushed.",
            hint="Pass --overwrite to replace its content in one commit, or --create-pr to propose the "
            "merge as a pull request.",
        )

    total = sum(p.stat().st_size for p in local_files.values())
    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in sorted(local_files.items())
    ]
    operations += [CommitOperationDelete(path_in_repo=f) for f in sorted(existing) if f not in local_files]
    report = _Progress(progress)
    report.start(total, f"Uploading {len(local_files)} files to {repo_id}" + (" (pull request)" if create_pr else ""))
    message = commit_message or f"Upload {folder.name} merged with Cocktail"
    try:
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            create_pr=create_pr,
            parent_commit=head,
            token=token,
        )
    except Exception as exc:  # noqa: BLE001 - every failure is translated below
        raise _push_failure(exc, api=api, repo_id=repo_id, head=head, token=token, create_pr=create_pr) from None
    report.done(f"Pushed to {repo_id}")
    if create_pr:
        return str(commit.pr_url) if commit.pr_url else url  # None: nothing differed, no PR opened
    return url


def whoami_name(token: str) -> str:
    """Return the user name a token belongs to.

    Args:
        token: a Hub token.

    Returns:
        The user name (``whoami()["name"]``).

    Raises:
        HubUnauthorizedError: no token, or the Hub rejected it.
        HubUnreachableError: the Hub cannot be reached.

    Example:
        >>> whoami_name(os.environ["HF_TOKEN"])
        'alice'
    """
    if not token:
        raise HubUnauthorizedError("No Hub token was given.",
                                   hint=f"Create one at {_endpoint()}/settings/tokens.")
    return _whoami(token, need_write=False)[0]


def _check_push_folder(folder: Path) -> dict[str, Path]:
    """Files to upload (relative posix path -> path); raises if the folder is not a full model."""
    if not folder.is_dir():
        raise HubPushError(f"Nothing to push: {folder} is not a folder.",
                           hint="Give the output folder of a merge.")
    files = {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }
    missing = []
    if not any(f.endswith(".safetensors") and "/" not in f for f in files):
        missing.append("safetensors weights")
    if "config.json" not in files:
        missing.append("config.json")
    if "README.md" not in files:
        missing.append("a README.md model card")
    if missing:
        raise HubPushError(
            f"{folder} is not ready to push: it has no {', no '.join(missing)}. Nothing was pushed.",
            hint="Push the folder a Cocktail merge wrote: it holds the weights, config.json and the model card.",
        )
    return files


def _target_repo(repo_id: str | None, user: str, folder: Path) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id = (repo_id or "").strip() or folder.resolve().name
    if "/" not in repo_id:
        repo_id = f"{user}/{repo_id}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(
            f"'{repo_id}' is not a valid Hub repo id.",
            hint="Use namespace/name with letters, digits, '-', '_' or '.', e.g. alice/my-cocktail.",
        ) from None
    if repo_id.count("/") != 1:
        raise HubError(f"'{repo_id}' is not a valid Hub repo id.", hint="Use namespace/name.")
    return repo_id


def _whoami(token: str, *, need_write: bool) -> tuple[str, list[str]]:
    from huggingface_hub import HfApi

    with _hub_errors(repo_id=None, token=token, action="check the token"):
        info = HfApi(token=token).whoami(token=token)
    name = str(info.get("name") or "")
    orgs = [str(o.get("name")) for o in info.get("orgs") or [] if o.get("name")]
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if need_write and role == "read":
        raise HubUnauthorizedError(
            f"The token of '{name}' is read-only: it cannot create repos or push.",
            hint=f"Create a token with write access at {_endpoint()}/settings/tokens.",
        )
    return name, orgs


def _push_failure(exc: BaseException, *, api: Any, repo_id: str, head: str, token: str, create_pr: bool) -> HubError:
    """Turn a failed commit into an error that says whether the repo is unchanged."""
    status = _http_status(exc)
    network = isinstance(exc, _transport_errors())
    if not network and (status is None or status < 500) and status != 412:
        return _translate(exc, repo_id=repo_id, token=token, revision=None, action="push to")
    if status == 412:
        return HubPushError(
            f"{repo_id} changed on the Hub while pushing; nothing was committed.",
            hint="Retry the push (check first what changed in the repo).",
        )
    unchanged: bool | None = None
    if not create_pr:
        with contextlib.suppress(Exception):
            unchanged = str(api.model_info(repo_id, token=token).sha) == head
    reason = _short_reason(exc, token) if network else f"the Hub answered {status}"
    if unchanged is False:
        msg = (f"The upload to {repo_id} failed at the very end ({reason}), but the Hub did record a new commit; "
               "check the repo before retrying.")
        hint = f"See {_endpoint()}/{repo_id}."
    else:
        state = "the repository is unchanged" if unchanged else "a Hub commit is all-or-nothing"
        msg = f"The upload to {repo_id} failed midway ({reason}). Nothing was committed: {state}."
        hint = "Retry the push."
    err = HubPushError(scrub_token(msg, token), hint=hint)
    err.detail = scrub_token(f"{type(exc).__name__}: {exc}", token)  # type: ignore[attr-defined]
    return err
