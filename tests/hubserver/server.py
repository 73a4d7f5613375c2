"""The server: lifecycle (a daemon-thread :class:`ThreadingHTTPServer`) and the test-facing API."""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable

from tests.hubserver.access import _Access
from tests.hubserver.faults import _Fault, _Faults
from tests.hubserver.routing import _Handler
from tests.hubserver.storage import GITATTRIBUTES, HubUser, _gated_value, _Repo, _Store


class LocalHubServer(_Access, _Faults, _Store):
    """Hub-compatible server on ``127.0.0.1:<free port>`` storing repos under ``root``.

    Example:
        >>> server = LocalHubServer(tmp_path).start()
        >>> token = server.add_user("alice", orgs=["acme"])
        >>> sha = server.seed_repo("acme/tiny", model_folder)
        >>> server.url            # set HF_ENDPOINT to this
        >>> server.stop()
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="localhub-"))
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(exist_ok=True)
        (self.root / "staging").mkdir(exist_ok=True)
        self._lock = threading.RLock()
        self._users: dict[str, HubUser] = {}
        self._tokens: dict[str, HubUser] = {}
        self._repos: dict[str, _Repo] = {}
        self._faults: list[_Fault] = []
        self._counter = itertools.count()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.unhandled: list[tuple[str, str]] = []  # routes the server does not know
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalHubServer":
        hub = self

        class Handler(_Handler):
            server_hub = hub

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="localhub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:  # keep-alive connections would otherwise outlive the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conn.close()
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalHubServer":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ repos (users: see access.py)

    def create_repo(
        self, repo_id: str, *, private: bool = False, gated: bool | str = False, exist_ok: bool = False
    ) -> str:
        """Create ``repo_id`` directly (initial commit with ``.gitattributes``); return its head sha."""
        with self._lock:
            if repo_id in self._repos:
                if not exist_ok:
                    raise ValueError(f"{repo_id} exists")
                return self._repos[repo_id].branches["main"]
            self._check_repo_id(repo_id)
            repo = _Repo(repo_id=repo_id, private=private, gated=_gated_value(gated))
            blob = self._store_blob(GITATTRIBUTES)
            commit = self._new_commit(repo, None, {".gitattributes": blob}, "initial commit", "", "system")
            repo.commits[commit.sha] = commit
            repo.branches["main"] = commit.sha
            self._repos[repo_id] = repo
            self._persist(repo, commit)
            return commit.sha

    def seed_repo(
        self,
        repo_id: str,
        folder: str | os.PathLike | None = None,
        *,
        files: dict[str, bytes] | None = None,
        private: bool = False,
        gated: bool | str = False,
        branch: str = "main",
        message: str = "Seed repo",
    ) -> str:
        """Create ``repo_id`` if needed and commit every file of ``folder`` (and ``files``) to it.

        Returns the new commit sha.  Hidden entries (``.git``, ``.cache``) are skipped.
        """
        content: dict[str, bytes] = {}
        if folder is not None:
            folder = Path(folder)
            for p in sorted(folder.rglob("*")):
                rel = p.relative_to(folder)
                if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                    content[rel.as_posix()] = p.read_bytes()
        content.update(files or {})
        with self._lock:
            if repo_id not in self._repos:
                self.create_repo(repo_id, private=private, gated=gated)
            else:
                self._repos[repo_id].private = private
                self._repos[repo_id].gated = _gated_value(gated)
        return self.commit_files(repo_id, content, branch=branch, message=message)

    def commit_files(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        delete: Iterable[str] = (),
        branch: str = "main",
        message: str = "Update files",
    ) -> str:
        """Commit ``files`` (path -> bytes) and deletions to ``branch`` directly; return the sha."""
        blobs = {path: self._store_blob(data) for path, data in files.items()}
        with self._lock:
            repo = self._get_repo(repo_id)
            parent = repo.branches.get(branch) or repo.branches["main"]
            tree = dict(repo.commits[parent].files)
            for path in delete:
                tree.pop(path, None)
            tree.update(blobs)
            commit = self._new_commit(repo, parent, tree, message, "", "system")
            repo.commits[commit.sha] = commit
            repo.branches[branch] = commit.sha
            self._persist(repo, commit)
            return commit.sha

    def set_private(self, repo_id: str, private: bool = True) -> None:
        with self._lock:
            self._get_repo(repo_id).private = private

    def set_gated(self, repo_id: str, granted_users: Iterable[str] = (), *, mode: str | bool = "auto") -> None:
        """Make ``repo_id`` gated; only ``granted_users`` (plus owners/org members) may download."""
        with self._lock:
            repo = self._get_repo(repo_id)
            repo.gated = _gated_value(mode)
            repo.granted = set(granted_users)

    def grant_access(self, repo_id: str, user: str) -> None:
        with self._lock:
            self._get_repo(repo_id).granted.add(user)

    def delete_repo(self, repo_id: str) -> None:
        with self._lock:
            self._repos.pop(repo_id, None)

    # ------------------------------------------------------------------ inspection

    def repo_exists(self, repo_id: str) -> bool:
        with self._lock:
            return repo_id in self._repos

    def head(self, repo_id: str, revision: str = "main") -> str:
        with self._lock:
            repo = self._get_repo(repo_id)
            sha = self._resolve(repo, revision)
            if sha is None:
                raise KeyError(revision)
            return sha

    def list_files(self, repo_id: str, revision: str = "main") -> list[str]:
        with self._lock:
            return sorted(self._get_repo(repo_id).commits[self.head(repo_id, revision)].files)

    def read_file(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        with self._lock:
            blob = self._get_repo(repo_id).commits[self.head(repo_id, revision)].files[path]
        return self._blob_path(blob.sha256).read_bytes()

    def commit_count(self, repo_id: str) -> int:
        with self._lock:
            return len(self._get_repo(repo_id).commits)

    def pull_requests(self, repo_id: str) -> dict[int, str]:
        with self._lock:
            return dict(self._get_repo(repo_id).prs)

    def state(self) -> dict[str, Any]:
        """Comparable snapshot of every repo's refs and commits (to assert "nothing changed")."""
        with self._lock:
            return {
                rid: {
                    "branches": dict(r.branches),
                    "prs": dict(r.prs),
                    "tags": dict(r.tags),
                    "commits": sorted(r.commits),
                    "private": r.private,
                }
                for rid, r in self._repos.items()
            }

    def requests_to(self, fragment: str, method: str | None = None) -> list[tuple[str, str, int]]:
        """Logged requests whose path contains ``fragment`` (and with ``method`` if given)."""
        return [r for r in list(self.requests) if fragment in r[1] and (method is None or r[0] == method)]
