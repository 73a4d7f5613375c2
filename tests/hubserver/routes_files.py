"""Routes that read a revision: model info, tree, paths-info and file downloads (with Range)."""
from __future__ import annotations

import hashlib
import json
import re
import struct
from typing import Any
from urllib.parse import parse_qs, quote

from tests.hubserver.errors import _DropConnection, _HttpError
from tests.hubserver.handler import _BaseHandler
from tests.hubserver.storage import _Blob


class _FileRoutes(_BaseHandler):
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
