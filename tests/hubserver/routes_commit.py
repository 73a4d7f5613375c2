"""Routes that write: preupload and the NDJSON commit (regular base64 files, deletions, pull requests)."""
from __future__ import annotations

import base64
import json
import re
from typing import Any

from tests.hubserver.errors import _HttpError
from tests.hubserver.handler import _BaseHandler
from tests.hubserver.storage import _PR_RE, HubUser, _Blob, _Repo


class _CommitRoutes(_BaseHandler):
    def _write_target(
        self, repo_id: str, revision: str, user: HubUser | None
    ) -> tuple[_Repo, bool, re.Match[str] | None]:
        """The repo to write to, whether this opens a PR (``?create_pr=1``) and the ``refs/pr/N`` match;
        raises unless ``user`` may write there (anyone with a write token may open or update a PR)."""
        repo = self.server_hub._repo_for_read(repo_id, user)
        create_pr = (self._query.get("create_pr") or ["0"])[0] == "1"
        pr_match = _PR_RE.match(revision)
        self._require_write(repo, user, pr=create_pr or bool(pr_match))
        return repo, create_pr, pr_match

    def _preupload(self, repo_id: str, revision: str) -> None:
        hub = self.server_hub
        payload = self._json_body()
        repo, _, _ = self._write_target(repo_id, revision, self._user())
        sha = hub._revision_sha(repo, revision)
        files = self._files_at(repo, sha)
        out = []
        for f in payload.get("files", []):
            existing = files.get(f["path"])
            out.append({
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": existing.oid if existing else None,
            })
        self._json({"files": out, "commitOid": sha})

    def _commit(self, repo_id: str, revision: str) -> None:
        hub = self.server_hub
        user = self._user()
        # Read the WHOLE body before touching anything: an interrupted upload commits nothing.
        body = self._read_body()
        repo, create_pr, pr_match = self._write_target(repo_id, revision, user)
        hub._revision_sha(repo, revision)

        header: dict | None = None
        ops: list[tuple[str, dict]] = []
        for n, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise _HttpError(400, f"Malformed commit payload at line {n + 1}") from None
            if key == "header":
                header = value
            else:
                ops.append((key, value))
        if header is None:
            raise _HttpError(400, "Commit payload has no header line")
        if not ops:
            raise _HttpError(400, "No files to commit")

        # Stage: decode and store every blob first (content-addressed, invisible until a ref moves).
        staged: list[tuple[str, str, _Blob | None]] = []
        for key, value in ops:
            path = str(value.get("path", "")).strip("/")
            if not path or ".." in path.split("/"):
                raise _HttpError(400, f"Invalid path in commit: {path!r}")
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise _HttpError(400, "Only base64 encoding is supported")
                try:
                    data = base64.b64decode(value["content"], validate=True)
                except Exception:
                    raise _HttpError(400, f"Invalid base64 content for {path}") from None
                staged.append(("add", path, hub._store_blob(data)))
            elif key in ("deletedFile", "deletedFolder"):
                staged.append((key, path, None))
            elif key == "lfsFile":
                raise _HttpError(400, "LFS uploads are not supported by the local hub (preupload says 'regular')")
            else:
                raise _HttpError(400, f"Unknown commit operation {key!r}")

        parent_commit = header.get("parentCommit")
        with hub._lock:
            head_now = hub._resolve(repo, revision)
            if head_now is None:
                raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            base_sha = head_now
            if parent_commit is not None:
                if parent_commit not in repo.commits:
                    raise _HttpError(404, f"Invalid rev id: {parent_commit}", "RevisionNotFound")
                if not create_pr and head_now != parent_commit:
                    raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
                base_sha = parent_commit
            tree = dict(repo.commits[base_sha].files)
            for kind, path, blob in staged:
                if kind == "add":
                    tree[path] = blob
                elif kind == "deletedFile":
                    if path not in tree:
                        raise _HttpError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                else:
                    doomed = [p for p in tree if p == path or p.startswith(path + "/")]
                    if not doomed:
                        raise _HttpError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del tree[p]
            commit = hub._new_commit(
                repo, base_sha, tree, str(header.get("summary") or "Commit"),
                str(header.get("description") or ""), user.name,
            )
            repo.commits[commit.sha] = commit
            pr_url = None
            if create_pr:
                num = repo.next_discussion
                repo.next_discussion += 1
                repo.prs[num] = commit.sha
                pr_url = f"{hub.url}/{repo_id}/discussions/{num}"
            elif pr_match:
                repo.prs[int(pr_match.group(1))] = commit.sha
            else:
                branch = revision[11:] if revision.startswith("refs/heads/") else revision
                if branch not in repo.branches:
                    raise _HttpError(400, f"Cannot commit to {revision}: not a branch")
                repo.branches[branch] = commit.sha
            hub._persist(repo, commit)
        out: dict[str, Any] = {
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{hub.url}/{repo_id}/commit/{commit.sha}",
            "hookOutput": "",
        }
        if pr_url is not None:
            out["pullRequestUrl"] = pr_url
        self._json(out)
