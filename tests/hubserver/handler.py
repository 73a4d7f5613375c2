"""HTTP plumbing shared by every route: dispatch, request log, fault application, bodies, answers."""
from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.hubserver.errors import _DropConnection, _HttpError
from tests.hubserver.faults import _Fault
from tests.hubserver.storage import HubUser, _Blob, _Repo

if TYPE_CHECKING:
    from tests.hubserver.server import LocalHubServer


class _BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms stalls
    server_hub: LocalHubServer  # set by LocalHubServer.start
    timeout = 30  # idle keep-alive connections die eventually

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

    # -- helpers for the routes ----------------------------------------------------------------

    def _user(self) -> HubUser | None:
        return self.server_hub._user_for(self.headers.get("Authorization"))

    def _require_write(self, repo: _Repo, user: HubUser | None, *, pr: bool) -> None:
        if user is None:
            raise _HttpError(401, "You must be authenticated to write to a repo")
        if not user.can_write:
            raise _HttpError(403, "This token is read-only: it cannot write to repos")
        if not pr and not self.server_hub._is_member(user, repo):
            raise _HttpError(403, f"You don't have the rights to push to {repo.repo_id}. Open a pull request instead.")

    def _files_at(self, repo: _Repo, sha: str) -> dict[str, _Blob]:
        with self.server_hub._lock:
            return dict(repo.commits[sha].files)

    def _route(self, method: str, seg: list[str]) -> None:
        raise NotImplementedError  # tests.hubserver.routing._Handler
