"""Users, tokens and access control, like the real Hub.

Unknown token -> 401 "Invalid credentials in Authorization header"; private repo -> 401
``RepoNotFound`` without a token, 404 ``RepoNotFound`` with a token that cannot see it; gated
repo -> metadata visible, file content 401/403 ``GatedRepo``.
"""
from __future__ import annotations

import secrets
import threading
from typing import Iterable

from tests.hubserver.errors import INVALID_CREDENTIALS, _HttpError
from tests.hubserver.storage import HubUser, _Repo


class _Access:
    """Users and access checks of :class:`~tests.hubserver.server.LocalHubServer` (a mixin: the
    attributes below are set by ``LocalHubServer.__init__``)."""

    url: str
    _lock: threading.RLock
    _users: dict[str, HubUser]
    _tokens: dict[str, HubUser]
    _repos: dict[str, _Repo]

    def add_user(
        self, name: str, token: str | None = None, *, orgs: Iterable[str] = (), can_write: bool = True
    ) -> str:
        """Register user ``name`` (member of ``orgs``) with ``token``; return the token.

        ``can_write=False`` makes it a read-only token (no repo creation, no commits).
        """
        token = token or f"hf_{name}_{secrets.token_hex(12)}"
        with self._lock:
            old = self._users.get(name)
            if old is not None:
                self._tokens.pop(old.token, None)
            user = HubUser(name=name, token=token, orgs=tuple(orgs), can_write=can_write)
            self._users[name] = user
            self._tokens[token] = user
        return token

    def _user_for(self, authorization: str | None) -> HubUser | None:
        """``None`` for anonymous; raises 401 for a token the server does not know."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        with self._lock:
            user = self._tokens.get(token)
        if user is None:
            raise _HttpError(401, INVALID_CREDENTIALS)
        return user

    def _is_member(self, user: HubUser | None, repo: _Repo) -> bool:
        return user is not None and repo.namespace in user.namespaces()

    def _repo_for_read(self, repo_id: str, user: HubUser | None) -> _Repo:
        with self._lock:
            repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not self._is_member(user, repo)):
            status = 401 if user is None else 404
            raise _HttpError(status, "Repository not found", "RepoNotFound")
        return repo

    def _check_content_access(self, repo: _Repo, user: HubUser | None) -> None:
        if not repo.gated or self._is_member(user, repo) or (user is not None and user.name in repo.granted):
            return
        if user is None:
            raise _HttpError(
                401, f"Access to model {repo.repo_id} is restricted. You must be authenticated to access it.",
                "GatedRepo",
            )
        raise _HttpError(
            403,
            f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
            f"Visit {self.url}/{repo.repo_id} to ask for access.",
            "GatedRepo",
        )
