"""The server's data model (users, repos, commits, blobs) and its storage of blobs, commits and refs.

Blobs live on disk at ``<root>/blobs/<sha>``; per repo, commit objects (``commits/<sha>.json``)
and a ``refs.json`` are written as a debug view.  A commit's blobs are written first; only then,
under the state lock, does a ref move (in memory, then ``refs.json`` via :func:`os.replace`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.hubserver.errors import _HttpError

GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pt filter=lfs diff=lfs merge=lfs -text\n"
    b"*.gguf filter=lfs diff=lfs merge=lfs -text\n"
    b"*tfevents* filter=lfs diff=lfs merge=lfs -text\n"
)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_PR_RE = re.compile(r"^refs/pr/(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def git_blob_oid(data: bytes) -> str:
    """Git blob SHA-1 of ``data`` (what the Hub uses as ``oid``/``ETag`` for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


@dataclasses.dataclass
class HubUser:
    name: str
    token: str
    orgs: tuple[str, ...] = ()
    can_write: bool = True  # False: a "read" token

    def namespaces(self) -> set[str]:
        return {self.name, *self.orgs}


@dataclasses.dataclass(frozen=True)
class _Blob:
    sha256: str
    size: int
    oid: str  # git blob sha1


@dataclasses.dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, _Blob]
    title: str
    message: str
    author: str
    date: str


@dataclasses.dataclass
class _Repo:
    repo_id: str
    private: bool = False
    gated: bool | str = False  # False, "auto" or "manual"
    granted: set[str] = dataclasses.field(default_factory=set)
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    prs: dict[int, str] = dataclasses.field(default_factory=dict)
    commits: dict[str, _Commit] = dataclasses.field(default_factory=dict)
    created_at: str = dataclasses.field(default_factory=_now)
    next_discussion: int = 1

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/", 1)[0]


def _gated_value(gated: bool | str) -> bool | str:
    if gated is True:
        return "auto"
    return gated or False


class _Store:
    """Blobs, commits and refs of :class:`~tests.hubserver.server.LocalHubServer` (a mixin: the
    attributes below are set by ``LocalHubServer.__init__``)."""

    root: Path
    _lock: threading.RLock
    _repos: dict[str, _Repo]
    _counter: itertools.count

    def _check_repo_id(self, repo_id: str) -> None:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_NAME_RE.match(p) for p in parts):
            raise _HttpError(400, f"Invalid repo name: {repo_id}")

    def _get_repo(self, repo_id: str) -> _Repo:
        try:
            return self._repos[repo_id]
        except KeyError:
            raise KeyError(f"no repo {repo_id}") from None

    def _blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def _store_blob(self, data: bytes) -> _Blob:
        sha = hashlib.sha256(data).hexdigest()
        path = self._blob_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root / "staging")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return _Blob(sha256=sha, size=len(data), oid=git_blob_oid(data))

    def _new_commit(
        self, repo: _Repo, parent: str | None, files: dict[str, _Blob], title: str, message: str, author: str
    ) -> _Commit:
        h = hashlib.sha1()
        h.update(f"{repo.repo_id}\0{parent}\0{title}\0{next(self._counter)}\0{time.time_ns()}".encode())
        for path in sorted(files):
            h.update(f"{path}\0{files[path].oid}\0".encode())
        return _Commit(h.hexdigest(), parent, dict(files), title, message, author, _now())

    def _persist(self, repo: _Repo, commit: _Commit) -> None:
        """Write the commit object, then swap ``refs.json`` atomically (debug view of the state)."""
        d = self.root / "repos" / repo.repo_id
        (d / "commits").mkdir(parents=True, exist_ok=True)
        obj = dataclasses.asdict(commit)
        (d / "commits" / f"{commit.sha}.json").write_text(json.dumps(obj))
        refs = {"branches": repo.branches, "tags": repo.tags, "prs": {str(k): v for k, v in repo.prs.items()}}
        fd, tmp = tempfile.mkstemp(dir=self.root / "staging")
        with os.fdopen(fd, "w") as f:
            json.dump(refs, f)
        os.replace(tmp, d / "refs.json")

    def _resolve(self, repo: _Repo, revision: str) -> str | None:
        if revision in repo.branches:
            return repo.branches[revision]
        if revision.startswith("refs/heads/") and revision[11:] in repo.branches:
            return repo.branches[revision[11:]]
        if revision in repo.tags:
            return repo.tags[revision]
        m = _PR_RE.match(revision)
        if m:
            return repo.prs.get(int(m.group(1)))
        if _COMMIT_RE.match(revision) and revision in repo.commits:
            return revision
        return None

    def _revision_sha(self, repo: _Repo, revision: str) -> str:
        with self._lock:
            sha = self._resolve(repo, revision)
        if sha is None:
            raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha
