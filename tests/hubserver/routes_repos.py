"""Routes about accounts and repos: whoami, create/delete, settings, refs, commit log, auth-check."""
from __future__ import annotations

import hashlib

from tests.hubserver.errors import INVALID_CREDENTIALS, _HttpError
from tests.hubserver.handler import _BaseHandler
from tests.hubserver.routes_files import _front_matter
from tests.hubserver.storage import _gated_value


class _RepoRoutes(_BaseHandler):
    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise _HttpError(401, INVALID_CREDENTIALS)
        self._json(
            {
                "type": "user",
                "id": hashlib.md5(user.name.encode()).hexdigest()[:24],
                "name": user.name,
                "fullname": user.name.title(),
                "email": f"{user.name}@example.com",
                "emailVerified": True,
                "isPro": False,
                "canPay": False,
                "avatarUrl": "",
                "orgs": [
                    {"type": "org", "name": org, "fullname": org, "roleInOrg": "write" if user.can_write else "read"}
                    for org in user.orgs
                ],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "write" if user.can_write else "read"},
                },
            }
        )

    def _create_repo(self) -> None:
        hub = self.server_hub
        payload = self._json_body()
        user = self._user()
        if user is None:
            raise _HttpError(401, "You must be authenticated to create a repo")
        if payload.get("type") not in (None, "model"):
            raise _HttpError(400, "Only model repos are supported by the local hub")
        namespace = payload.get("organization") or user.name
        repo_id = f"{namespace}/{payload.get('name')}"
        if namespace not in user.namespaces() or not user.can_write:
            raise _HttpError(403, f"You don't have the rights to create a model under the namespace \"{namespace}\"")
        visibility = payload.get("visibility")
        private = bool(payload.get("private")) if visibility is None else visibility == "private"
        url = f"{hub.url}/{repo_id}"
        with hub._lock:
            if repo_id in hub._repos:
                return self._json({"error": "You already created this model repo", "url": url}, 409,
                                  {"X-Error-Message": "You already created this model repo"})
            hub.create_repo(repo_id, private=private)
        self._json({"url": url, "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()[:24]})

    def _delete_repo(self) -> None:
        hub = self.server_hub
        payload = self._json_body()
        user = self._user()
        namespace = payload.get("organization") or (user.name if user else "")
        repo_id = f"{namespace}/{payload.get('name')}"
        repo = hub._repo_for_read(repo_id, user)
        if not hub._is_member(user, repo) or not user.can_write:
            raise _HttpError(403, "You don't have the rights to delete this repo")
        hub.delete_repo(repo_id)
        self._json({})

    def _validate_yaml(self) -> None:
        payload = self._json_body()
        try:
            _front_matter(str(payload.get("content", "")).encode())
        except Exception as e:  # yaml.YAMLError
            raise _HttpError(400, f"Invalid YAML in README.md metadata: {e}") from None
        self._json({"errors": [], "warnings": []})

    def _refs(self, repo_id: str) -> None:
        hub = self.server_hub
        repo = hub._repo_for_read(repo_id, self._user())
        with hub._lock:
            data = {
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in repo.branches.items()],
                "converts": [],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in repo.tags.items()],
            }
            if "include_prs" in self._query:
                data["pullRequests"] = [
                    {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": s} for n, s in sorted(repo.prs.items())
                ]
        self._json(data)

    def _commits(self, repo_id: str, revision: str) -> None:
        hub = self.server_hub
        repo = hub._repo_for_read(repo_id, self._user())
        sha: str | None = hub._revision_sha(repo, revision)
        out = []
        with hub._lock:
            while sha is not None:
                c = repo.commits[sha]
                out.append({
                    "id": c.sha, "title": c.title, "message": c.message,
                    "authors": [{"user": c.author}], "date": c.date,
                })
                sha = c.parent
        self._json(out)

    def _auth_check(self, repo_id: str, *, write: bool) -> None:
        hub = self.server_hub
        user = self._user()
        repo = hub._repo_for_read(repo_id, user)
        if write:
            self._require_write(repo, user, pr=False)
        else:
            hub._check_content_access(repo, user)
        self._json({})

    def _settings(self, repo_id: str) -> None:
        hub = self.server_hub
        payload = self._json_body()
        user = self._user()
        repo = hub._repo_for_read(repo_id, user)
        self._require_write(repo, user, pr=False)
        with hub._lock:
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "gated" in payload:
                repo.gated = _gated_value(payload["gated"])
        self._json({})
