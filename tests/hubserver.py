"""A small, local, Hub-compatible HTTP server for tests (never part of the app).

It speaks the subset of the Hugging Face Hub HTTP API that ``huggingface_hub`` 2.x (and
``transformers`` on top of it) use to create repos, commit files, read metadata and download
files, with ``HF_HUB_DISABLE_XET=1`` (every file is uploaded in "regular" mode, base64 in the
NDJSON commit body; no LFS, no Xet).

Design:

* stdlib :class:`http.server.ThreadingHTTPServer` on ``127.0.0.1`` with a free port, served
  from a daemon thread; starts in milliseconds, :meth:`LocalHubServer.stop` closes every open
  keep-alive connection too.
* Storage: content-addressed blobs on disk (``<root>/blobs/<sha256>``) plus, per repo, commit
  objects (``commits/<sha>.json``) and a ``refs.json``.  A commit is fully parsed and its blobs
  written first; only then, under the state lock, does the branch ref move (in memory, then
  ``refs.json`` via :func:`os.replace`).  A malformed, truncated or interrupted body commits
  nothing.
* Access control like the real Hub: unknown token -> 401 "Invalid credentials in Authorization
  header"; private repo -> 401 ``RepoNotFound`` without a token, 404 ``RepoNotFound`` with a
  token that cannot see it; gated repo -> metadata visible, file content 401/403 ``GatedRepo``.
* Fault injection: :meth:`LocalHubServer.fail_next_commit` and :meth:`LocalHubServer.add_fault`
  (drop the connection after N bytes of the request body / response body, or answer a status).

Every error response carries ``X-Error-Code`` / ``X-Error-Message`` and ``{"error": ...}`` as
``huggingface_hub.utils.hf_raise_for_status`` expects, so the client raises the same exception
classes as against huggingface.co.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import struct
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["LocalHubServer", "HubUser", "git_blob_oid"]

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
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


# --------------------------------------------------------------------------- state objects


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


@dataclasses.dataclass
class _Fault:
    method: str | None
    pattern: re.Pattern
    status: int | None  # None -> drop the connection
    after_bytes: int | None  # bytes of request body read (POST) / response body sent (GET)
    times: int


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _DropConnection(Exception):
    """Raised inside a handler to close the socket without an answer."""


# --------------------------------------------------------------------------- the server


class LocalHubServer:
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

    # ------------------------------------------------------------------ users and repos

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

    # ------------------------------------------------------------------ fault injection

    def add_fault(
        self,
        path_regex: str,
        *,
        method: str | None = None,
        status: int | None = None,
        after_bytes: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` matching requests fail.

        ``status=None`` drops the connection without an answer, after reading ``after_bytes`` of
        the request body (requests with a body) or after sending the headers and ``after_bytes``
        of the response body (GET downloads).  ``status=500`` (etc.) answers that status after
        reading ``after_bytes`` of the body (all of it when ``None``).
        """
        with self._lock:
            self._faults.append(_Fault(method, re.compile(path_regex), status, after_bytes, times))

    def fail_next_commit(self, *, after_bytes: int | None = None, status: int | None = None) -> None:
        """The next commit POST fails mid-body: connection dropped (default) or ``status`` answered.

        ``after_bytes=None`` reads half of the body before failing.
        """
        self.add_fault(r"^/api/models/[^/]+/[^/]+/commit/", method="POST", status=status, after_bytes=after_bytes)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.method is None or fault.method == method) and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ internals

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

    def _revision_sha(self, repo: _Repo, revision: str) -> str:
        with self._lock:
            sha = self._resolve(repo, revision)
        if sha is None:
            raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha


def _gated_value(gated: bool | str) -> bool | str:
    if gated is True:
        return "auto"
    return gated or False


def _front_matter(readme: bytes) -> dict | None:
    import yaml

    text = readme.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.S)
    if m is None:
        return None
    data = yaml.safe_load(m.group(1))
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- HTTP handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms stalls
    server_hub: LocalHubServer  # set by LocalHubServer.start
    timeout = 30  # idle keep-alive connections die eventually

    # -- plumbing ---------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        with self.server_hub._lock:
            self.server_hub._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server_hub._lock:
                self.server_hub._conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        hub = self.server_hub
        split = urlsplit(self.path)
        self._raw_path = split.path
        self._query = parse_qs(split.query, keep_blank_values=True)
        self._status = 0
        self._body_consumed = False
        with hub._lock:  # logged before the answer goes out, so a client never sees an unlogged request
            hub.requests.append((method, self._raw_path, 0))
            self._log_index = len(hub.requests) - 1
        fault = hub._take_fault(method, split.path)
        try:
            if fault is not None:
                self._apply_fault(method, fault)
            else:
                self._route(method, [unquote(s) for s in split.path.split("/")[1:]])
        except _DropConnection:
            self._log_status(-1)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._status = -1
        except _HttpError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self._status = -1
        except Exception as e:  # a bug in the server: say so loudly
            import traceback

            traceback.print_exc()
            self._error(_HttpError(500, f"Local hub server error: {type(e).__name__}: {e}"))
        finally:
            if not self._body_consumed and method in ("POST", "PUT", "DELETE") and self._status != -1:
                self.close_connection = True  # unread body would corrupt the keep-alive stream

    def send_response(self, code: int, message: str | None = None) -> None:
        self._log_status(code)
        super().send_response(code, message)

    def _log_status(self, status: int) -> None:
        index = getattr(self, "_log_index", None)
        if index is not None:
            hub = self.server_hub
            with hub._lock:
                method, path, _ = hub.requests[index]
                hub.requests[index] = (method, path, status)

    def _apply_fault(self, method: str, fault: _Fault) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if fault.status is not None:
            n = length if fault.after_bytes is None else min(fault.after_bytes, length)
            self.rfile.read(n)
            self._body_consumed = n == length
            self.close_connection = True
            raise _HttpError(fault.status, "Injected failure (local hub fault injection)")
        if length or method in ("POST", "PUT"):
            n = length // 2 if fault.after_bytes is None else min(fault.after_bytes, length)
            self.rfile.read(n)
            raise _DropConnection()
        # GET/HEAD: answer normally but cut the response body short.
        self._cut_response_after = fault.after_bytes or 0
        self._route(method, [unquote(s) for s in self._raw_path.split("/")[1:]])

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    raise _DropConnection()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                if len(data) < size:
                    raise _DropConnection()
                chunks.append(data)
                self.rfile.readline()
            self._body_consumed = True
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if len(data) < length:  # the client went away mid-body
            raise _DropConnection()
        self._body_consumed = True
        return data

    def _json_body(self) -> Any:
        data = self._read_body()
        try:
            return json.loads(data or b"{}")
        except ValueError:
            raise _HttpError(400, "Invalid JSON body") from None

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json") -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        rid = self.headers.get("X-Amzn-Trace-Id") or self.headers.get("X-Request-Id")
        if rid:
            self.send_header("X-Request-Id", rid)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, e: _HttpError) -> None:
        headers = dict(e.headers)
        if e.code:
            headers["X-Error-Code"] = e.code
        headers["X-Error-Message"] = e.message
        try:
            self._json({"error": e.message}, e.status, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _user(self) -> HubUser | None:
        return self.server_hub._user_for(self.headers.get("Authorization"))

    # -- routing ----------------------------------------------------------------------------

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

    # -- endpoints --------------------------------------------------------------------------

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

    def _files_at(self, repo: _Repo, sha: str) -> dict[str, _Blob]:
        with self.server_hub._lock:
            return dict(repo.commits[sha].files)

    def _model_info(self, repo_id: str, revision: str) -> None:
        hub = self.server_hub
        user = self._user()
        repo = hub._repo_for_read(repo_id, user)
        sha = hub._revision_sha(repo, revision)
        files = self._files_at(repo, sha)
        with hub._lock:
            commit = repo.commits[sha]
        blobs = "blobs" in self._query and self._query["blobs"][0].lower() not in ("0", "false")
        siblings = []
        for path in sorted(files):
            s: dict[str, Any] = {"rfilename": path}
            if blobs:
                s.update(size=files[path].size, blobId=files[path].oid)
            siblings.append(s)
        card = None
        if "README.md" in files:
            try:
                card = _front_matter(hub._blob_path(files["README.md"].sha256).read_bytes())
            except Exception:
                card = None
        config = None
        if "config.json" in files:
            try:
                full = json.loads(hub._blob_path(files["config.json"].sha256).read_bytes())
                config = {k: full[k] for k in ("architectures", "model_type") if k in full}
            except ValueError:
                config = None
        info: dict[str, Any] = {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo.namespace,
            "sha": sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list((card or {}).get("tags") or []),
            "library_name": (card or {}).get("library_name"),
            "pipeline_tag": (card or {}).get("pipeline_tag"),
            "siblings": siblings,
            "spaces": [],
        }
        if card is not None:
            info["cardData"] = card
        if config is not None:
            info["config"] = config
        st = self._safetensors_summary(files)
        if st is not None:
            info["safetensors"] = st
        self._json(info)

    def _safetensors_summary(self, files: dict[str, _Blob]) -> dict | None:
        params: dict[str, int] = {}
        found = False
        for path, blob in files.items():
            if not path.endswith(".safetensors"):
                continue
            found = True
            try:
                with open(self.server_hub._blob_path(blob.sha256), "rb") as f:
                    (n,) = struct.unpack("<Q", f.read(8))
                    header = json.loads(f.read(n))
            except Exception:
                continue
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                count = 1
                for d in t["shape"]:
                    count *= d
                params[t["dtype"]] = params.get(t["dtype"], 0) + count
        if not found:
            return None
        return {"parameters": params, "total": sum(params.values())}

    def _entry(self, path: str, blob: _Blob | None) -> dict:
        if blob is None:
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
        return {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}

    def _tree(self, repo_id: str, revision: str, path: str) -> None:
        hub = self.server_hub
        repo = hub._repo_for_read(repo_id, self._user())
        sha = hub._revision_sha(repo, revision)
        files = self._files_at(repo, sha)
        recursive = (self._query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        prefix = path.strip("/")
        entries: dict[str, dict] = {}
        for fpath, blob in files.items():
            if prefix:
                if not fpath.startswith(prefix + "/"):
                    continue
                rel = fpath[len(prefix) + 1:]
            else:
                rel = fpath
            parts = rel.split("/")
            base = prefix + "/" if prefix else ""
            for depth in range(1, len(parts)):  # intermediate folders
                if not recursive and depth > 1:
                    break
                d = base + "/".join(parts[:depth])
                entries.setdefault(d, self._entry(d, None))
            if recursive or len(parts) == 1:
                entries[fpath] = self._entry(fpath, blob)
        if prefix and not entries:
            raise _HttpError(404, f"{prefix} does not exist on \"{revision}\"", "EntryNotFound",
                             {"X-Repo-Commit": sha})
        self._json([entries[k] for k in sorted(entries)])

    def _paths_info(self, repo_id: str, revision: str) -> None:
        hub = self.server_hub
        body = self._read_body()
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode(), keep_blank_values=True).get("paths", [])
        repo = hub._repo_for_read(repo_id, self._user())
        sha = hub._revision_sha(repo, revision)
        files = self._files_at(repo, sha)
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append(self._entry(p, None))
        self._json(out)

    def _require_write(self, repo: _Repo, user: HubUser | None, *, pr: bool) -> None:
        if user is None:
            raise _HttpError(401, "You must be authenticated to write to a repo")
        if not user.can_write:
            raise _HttpError(403, "This token is read-only: it cannot write to repos")
        if not pr and not self.server_hub._is_member(user, repo):
            raise _HttpError(403, f"You don't have the rights to push to {repo.repo_id}. Open a pull request instead.")

    def _preupload(self, repo_id: str, revision: str) -> None:
        hub = self.server_hub
        payload = self._json_body()
        user = self._user()
        repo = hub._repo_for_read(repo_id, user)
        create_pr = (self._query.get("create_pr") or ["0"])[0] == "1"
        self._require_write(repo, user, pr=create_pr or bool(_PR_RE.match(revision)))
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
        repo = hub._repo_for_read(repo_id, user)
        create_pr = (self._query.get("create_pr") or ["0"])[0] == "1"
        pr_match = _PR_RE.match(revision)
        self._require_write(repo, user, pr=create_pr or bool(pr_match))
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

    def _resolve_file(self, repo_id: str, revision: str, path: str) -> None:
        hub = self.server_hub
        user = self._user()
        repo = hub._repo_for_read(repo_id, user)
        hub._check_content_access(repo, user)
        sha = hub._revision_sha(repo, revision)
        files = self._files_at(repo, sha)
        blob = files.get(path)
        if blob is None:
            raise _HttpError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        size = blob.size
        start, end = 0, size - 1
        status = 200
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{blob.oid}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if m is None or (m.group(1) == "" and m.group(2) == ""):
                raise _HttpError(416, "Invalid range", headers={"Content-Range": f"bytes */{size}"})
            if m.group(1) == "":
                n = int(m.group(2))
                start, end = max(0, size - n), size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start >= size or start > end:
                raise _HttpError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = getattr(self, "_cut_response_after", None)
        with open(hub._blob_path(blob.sha256), "rb") as f:
            f.seek(start)
            remaining = length if cut is None else min(cut, length)
            while remaining > 0:
                chunk = f.read(min(1 << 20, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if cut is not None:
            self.wfile.flush()
            raise _DropConnection()


def _take_rev(seg: list[str], i: int) -> tuple[str, int]:
    """Revision at ``seg[i]`` (already unquoted); also accepts an unencoded ``refs/pr/N``."""
    if i >= len(seg):
        return "main", i
    if seg[i] == "refs" and i + 2 < len(seg) and seg[i + 1] in ("pr", "heads", "tags", "convert"):
        return "/".join(seg[i:i + 3]), i + 3
    return seg[i], i + 1
