"""The request handler: every route area combined, and the URL -> route table."""
from __future__ import annotations

from tests.hubserver.errors import _HttpError
from tests.hubserver.routes_commit import _CommitRoutes
from tests.hubserver.routes_files import _FileRoutes
from tests.hubserver.routes_repos import _RepoRoutes


class _Handler(_RepoRoutes, _FileRoutes, _CommitRoutes):
    def _route(self, method: str, seg: list[str]) -> None:
        hub = self.server_hub
        if seg[:2] == ["api", "whoami-v2"] and method == "GET":
            return self._whoami()
        if seg[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if seg[:3] == ["api", "repos", "delete"] and method == "DELETE":
            return self._delete_repo()
        if seg[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if len(seg) >= 4 and seg[:2] == ["api", "models"]:
            repo_id = f"{seg[2]}/{seg[3]}"
            rest = seg[4:]
            if not rest and method == "GET":
                return self._model_info(repo_id, "main")
            action = rest[0] if rest else ""
            if action == "revision" and method == "GET":
                rev, _ = _take_rev(rest, 1)
                return self._model_info(repo_id, rev)
            if action == "tree" and method == "GET":
                rev, i = _take_rev(rest, 1)
                return self._tree(repo_id, rev, "/".join(rest[i:]))
            if action == "paths-info" and method == "POST":
                rev, _ = _take_rev(rest, 1)
                return self._paths_info(repo_id, rev)
            if action == "preupload" and method == "POST":
                rev, _ = _take_rev(rest, 1)
                return self._preupload(repo_id, rev)
            if action == "commit" and method == "POST":
                rev, _ = _take_rev(rest, 1)
                return self._commit(repo_id, rev)
            if action == "refs" and method == "GET":
                return self._refs(repo_id)
            if action == "commits" and method == "GET":
                rev, _ = _take_rev(rest, 1) if len(rest) > 1 else ("main", 1)
                return self._commits(repo_id, rev)
            if action == "auth-check" and method == "GET":
                return self._auth_check(repo_id, write=rest[1:2] == ["write"])
            if action == "settings" and method == "PUT":
                return self._settings(repo_id)
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            rev, i = _take_rev(seg, 3)
            return self._resolve_file(f"{seg[0]}/{seg[1]}", rev, "/".join(seg[i:]))
        hub.unhandled.append((method, self._raw_path))
        raise _HttpError(404, f"Local hub: no route for {method} {self._raw_path}")


def _take_rev(seg: list[str], i: int) -> tuple[str, int]:
    """Revision at ``seg[i]`` (already unquoted); also accepts an unencoded ``refs/pr/N``."""
    if i >= len(seg):
        return "main", i
    if seg[i] == "refs" and i + 2 < len(seg) and seg[i + 1] in ("pr", "heads", "tags", "convert"):
        return "/".join(seg[i:i + 3]), i + 3
    return seg[i], i + 1
