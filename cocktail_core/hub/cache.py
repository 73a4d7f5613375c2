"""Models already in the local HF cache: used offline (``HF_HUB_OFFLINE=1``) or when the Hub is unreachable."""

from __future__ import annotations

from pathlib import Path

from cocktail_core.errors import HubUnreachableError
from cocktail_core.hub._client import _endpoint
from cocktail_core.hub.errors import _OFFLINE_HINT
from cocktail_core.hub.files import INDEX_FILE, _weight_map, select_merge_files


def _cached_files(folder: Path, repo_id: str) -> tuple[list[str], dict[str, str] | None]:
    """The files of a cached snapshot (relative posix paths) and its ``weight_map`` if sharded."""
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return names, _weight_map(names, repo_id, lambda: folder / INDEX_FILE)


def _cached_snapshot(repo_id: str, revision: str | None, token: str | None, *, reason: str) -> Path:
    """The cached snapshot of ``repo_id@revision`` if it has config.json and its weights."""
    from huggingface_hub import snapshot_download

    hint = (_OFFLINE_HINT if "offline" in reason else
            f"Check your connection to {_endpoint()}. Models downloaded before are used from the cache.")
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, token=token, local_files_only=True,
                                        allow_patterns=["config.json"]))
    except Exception:  # noqa: BLE001 - any cache miss reads the same to the user
        raise HubUnreachableError(
            f"Cannot get {repo_id}{'@' + revision if revision else ''}: {reason} and it is not in the local "
            "cache.",
            hint=hint,
        ) from None
    names, weight_map = _cached_files(folder, repo_id)
    needed = [f for f in select_merge_files(names, weight_map) if f.endswith(".safetensors")]
    missing = [f for f in (weight_map or {}).values() if not (folder / f).is_file()]
    if "config.json" not in names or not needed or missing:
        raise HubUnreachableError(
            f"Cannot get {repo_id}: {reason} and its cached copy is incomplete"
            + (f" (missing {', '.join(sorted(set(missing))[:3])})." if missing else " (no weights or config)."),
            hint=hint,
        )
    return folder
