"""Per-session working folders and in-memory state for the web app.

Each browser tab (and each ``gradio_client.Client``) has a Gradio session hash. A session gets a
folder under the store's root, named by a salted hash of the session hash (so knowing someone's
session hash does not reveal their folder), holding its merges and downloads; and in-memory state
(the last merge, a live in-memory merge, loaded models). :meth:`SessionStore.close` removes both;
the app calls it from ``demo.unload`` and :meth:`SessionStore.sweep` removes sessions idle for
too long (API clients never "close a tab").

A session only ever reads paths it owns: :meth:`SessionStore.check_path` rejects model paths inside
another session's folder (or anywhere in the store).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocktail_core import settings
from cocktail_core.errors import CocktailError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
#: sessions idle for longer than this are removed by sweep() (seconds)
DEFAULT_MAX_IDLE_S = 6 * 3600


class SessionError(CocktailError):
    """A request names something this session does not own, or has nothing to work on yet."""


@dataclass
class MergeRecord:
    """A merge made in this session.

    Attributes:
        name: the output name (folder name inside the session's ``merges`` folder).
        path: the merged model folder.
        recipe_yaml: the recipe written with it.
        kind: the model kind.
        seconds / bytes_written: how long it took and how much it wrote.
        refs: the ingredients, as written in the recipe the user gave.
    """

    name: str
    path: Path
    recipe_yaml: str
    kind: str | None
    seconds: float
    bytes_written: int
    refs: list[str]

    def files(self) -> list[str]:
        """The names in the merged folder, sorted."""
        return sorted(p.name for p in self.path.iterdir())


@dataclass
class Session:
    """One user's working state. Use :attr:`lock` around anything that changes it."""

    key: str
    folder: Path
    downloads_root: Path | None = None
    touched: float = field(default_factory=time.time)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    last_merge: MergeRecord | None = None
    live: Any = None  # cocktail_core.playground.LiveMerge
    live_error: str | None = None
    loaded: dict[str, Any] = field(default_factory=dict)  # folder/ref -> playground.LoadedModel
    sources: dict[str, Any] = field(default_factory=dict)  # ref -> io.sources.ModelSource (inspect cache)

    @property
    def merges_dir(self) -> Path:
        return self.folder / "merges"

    @property
    def downloads_dir(self) -> Path:
        """Where files offered for download go: under the system temp folder, which Gradio may serve
        from (the session folder itself may be on other storage, ``COCKTAIL_WORK_DIR``)."""
        path = (self.downloads_root or self.folder) / "downloads"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def merge_path(self, name: str) -> Path:
        """The folder for merge ``name`` inside this session (the name is checked: no paths)."""
        name = (name or "").strip()
        if not _NAME.match(name) or name in {".", ".."}:
            raise SessionError(f"Invalid output name {name!r}.",
                               hint="Use letters, digits, '-', '_' and '.', like my-cocktail.")
        return self.merges_dir / name

    def require_merge(self) -> MergeRecord:
        """The last merge of this session, or a readable error when there is none."""
        record = self.last_merge
        if record is None or not record.path.is_dir():
            raise SessionError("There is no merged model in this session yet.",
                               hint="Merge first (the Merge button, or the merge endpoint with this client).")
        return record

    def cached_model(self, key: str, loader: Any) -> Any:
        """A loaded model from the session's small cache (at most 3 kept), loading it when absent."""
        with self.lock:
            model = self.loaded.get(key)
        if model is None:
            model = loader()
            with self.lock:
                self.loaded[key] = model
                while len(self.loaded) > 3:
                    self.loaded.pop(next(iter(self.loaded)))
        return model

    def forget_models(self) -> None:
        with self.lock:
            self.loaded.clear()
            self.live = None
            self.live_error = None


class SessionStore:
    """All sessions of one app instance, with folders under ``root``.

    Args:
        root: parent folder; default ``COCKTAIL_WORK_DIR``, else the system temp folder. The store
            creates its own subfolder there and removes it in :meth:`close_all`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        base = Path(root or settings.get().work_dir or Path(tempfile.gettempdir()) / "cocktail-sessions")
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="app-", dir=base)).resolve()
        self.downloads = Path(tempfile.mkdtemp(prefix="cocktail-downloads-")).resolve()
        self._salt = secrets.token_bytes(16)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _key(self, session_hash: str) -> str:
        return hashlib.sha256(self._salt + session_hash.encode()).hexdigest()[:32]

    def get(self, session_hash: str | None) -> Session:
        """The session for ``session_hash``, created (with its folder) on first use.

        Raises:
            SessionError: no session hash (the request did not come through Gradio's queue).
        """
        if not session_hash:
            raise SessionError("This request has no session.", hint="Reload the page, or use gradio_client.")
        key = self._key(session_hash)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                folder = self.root / key
                folder.mkdir(parents=True, exist_ok=True)
                session = Session(key=key, folder=folder, downloads_root=self.downloads / key)
                self._sessions[key] = session
            session.touched = time.time()
        return session

    def peek(self, session_hash: str | None) -> Session | None:
        """The session if it exists (does not create one)."""
        if not session_hash:
            return None
        with self._lock:
            return self._sessions.get(self._key(session_hash))

    def close(self, session_hash: str | None) -> bool:
        """Forget a session and delete its folder; True when there was one."""
        if not session_hash:
            return False
        key = self._key(session_hash)
        with self._lock:
            session = self._sessions.pop(key, None)
        folder = self.root / key
        if session is not None:
            session.forget_models()
        existed = session is not None or folder.exists()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(self.downloads / key, ignore_errors=True)
        return existed

    def sweep(self, max_idle_s: float = DEFAULT_MAX_IDLE_S) -> int:
        """Remove sessions untouched for ``max_idle_s`` seconds; returns how many were removed."""
        now = time.time()
        with self._lock:
            stale = [k for k, s in self._sessions.items() if now - s.touched > max_idle_s]
            sessions = [self._sessions.pop(k) for k in stale]
        for s in sessions:
            s.forget_models()
            shutil.rmtree(s.folder, ignore_errors=True)
            shutil.rmtree(self.downloads / s.key, ignore_errors=True)
        return len(sessions)

    def close_all(self) -> None:
        """Remove every session and the store's folder."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.forget_models()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.downloads, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._sessions)

    def check_path(self, path: str | Path, session: Session) -> None:
        """Refuse a local model path that lies inside the store but outside ``session``'s folder.

        Raises:
            SessionError: the path belongs to another session (or to the store itself).
        """
        try:
            resolved = Path(path).expanduser().resolve()
        except (OSError, RuntimeError):
            return
        if resolved.is_relative_to(self.root) and not resolved.is_relative_to(session.folder):
            raise SessionError(f"Model {path} is not available to this session.",
                               hint="Use a Hub id or a folder of your own.")


__all__ = ["Session", "SessionStore", "SessionError", "MergeRecord", "DEFAULT_MAX_IDLE_S"]
