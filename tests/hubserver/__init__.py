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

Layout: :mod:`.server` (:class:`LocalHubServer`: lifecycle and the test-facing API),
:mod:`.storage` (blobs, commits, refs), :mod:`.access` (users, tokens, access control),
:mod:`.faults` (fault injection), :mod:`.handler` (HTTP plumbing), :mod:`.routing` (URL -> route)
and the routes by API area: :mod:`.routes_repos`, :mod:`.routes_files`, :mod:`.routes_commit`.
"""
from __future__ import annotations

from tests.hubserver.server import LocalHubServer
from tests.hubserver.storage import HubUser, git_blob_oid

__all__ = ["LocalHubServer", "HubUser", "git_blob_oid"]
