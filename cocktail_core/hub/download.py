"""Download only the files a merge needs into the standard HF cache."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cocktail_core import settings
from cocktail_core.errors import HubError, HubUnreachableError
from cocktail_core.hub._client import _DOWNLOAD_WORKERS, ProgressFn, _Progress
from cocktail_core.hub.cache import _cached_snapshot
from cocktail_core.hub.errors import _hub_errors
from cocktail_core.hub.files import INDEX_FILE, _repo_sizes, _require_config, _weight_map, select_merge_files

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def download_model(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Download the files a merge needs into the HF cache and return the snapshot folder.

    Only the safetensors weights the model uses (``model.safetensors`` or the shards listed in
    ``model.safetensors.index.json``) plus :data:`MERGE_FILES` are fetched -- never pickled or
    other-framework weights.  Files already in the cache are not fetched again.  With
    ``HF_HUB_OFFLINE=1``, or when the Hub cannot be reached, the cached copy is returned.

    Args:
        repo_id: ``namespace/name`` on the Hub.
        revision: branch, tag, commit sha or ``refs/pr/N``; ``None`` = the default branch.  Pass
            :attr:`HubModelMeta.sha` to get exactly the commit that was inspected.
        token: Hub token for private or gated repos (``None``: HF_TOKEN / saved login, if any).
        progress: ``progress(done_bytes, total_bytes, message)``, called as bytes arrive (calls
            are serialized, but may come from worker threads).

    Returns:
        The local snapshot folder (``.../models--ns--name/snapshots/<sha>``).

    Raises:
        HubRepoNotFoundError, HubRevisionNotFoundError, HubGatedError, HubUnauthorizedError:
            as for :func:`fetch_metadata`.
        HubUnreachableError: the Hub cannot be reached (or offline mode is on) and the model is
            not (completely) in the cache.
        HubError: a file vanished from the repo, or another Hub failure.

    Example:
        >>> folder = download_model("Qwen/Qwen2-0.5B", revision=meta.sha)
        >>> sorted(p.name for p in folder.iterdir())[:2]
        ['config.json', 'generation_config.json']
    """
    from huggingface_hub import HfApi, constants, hf_hub_download

    report = _Progress(progress)
    if constants.is_offline_mode():
        folder = _cached_snapshot(repo_id, revision, token, reason="offline mode (HF_HUB_OFFLINE=1) is on")
        report.done(f"{repo_id}: using the cached copy (offline mode)")
        return folder
    api = HfApi(token=token)
    try:
        with _hub_errors(repo_id=repo_id, revision=revision, token=token):
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except HubUnreachableError as exc:
        if not settings.get().hub_cache_fallback:
            raise
        try:
            folder = _cached_snapshot(repo_id, revision, token, reason="the Hub cannot be reached")
        except HubError:
            raise exc from None
        report.done(f"{repo_id}: Hub unreachable, using the cached copy")
        return folder
    sha = str(info.sha)
    sizes = _repo_sizes(info)
    _require_config(repo_id, revision, sizes)
    with _hub_errors(repo_id=repo_id, revision=revision, token=token):
        weight_map = _weight_map(
            sizes, repo_id, lambda: Path(hf_hub_download(repo_id, INDEX_FILE, revision=sha, token=token))
        )
        files = select_merge_files(sizes, weight_map)
        report.start(sum(sizes.get(f, 0) for f in files), f"Downloading {repo_id} ({len(files)} files)")
        paths = _download_files(repo_id, sha, files, sizes, token, report)
        if revision is None or not _COMMIT_RE.match(revision):
            # Record branch -> commit in the cache (refs/<branch>) so offline mode finds this snapshot.
            hf_hub_download(repo_id, "config.json", revision=revision, token=token)
    folder = _snapshot_root(paths)
    report.done(f"Downloaded {repo_id}")
    return folder


class _DownloadCancelled(Exception):
    """Raised inside a worker download when another one failed or the caller was interrupted."""


def _tqdm_for(report: _Progress, name: str) -> Any:
    """A tqdm class whose ``update`` feeds ``report`` (bars stay as huggingface_hub configures them)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _ReportingTqdm(hf_tqdm):  # type: ignore[misc, valid-type]
        def update(self, n: float | None = 1) -> Any:
            if report.cancelled:
                raise _DownloadCancelled(name)
            if n:
                report.add(name, int(n))
            return super().update(n)

    return _ReportingTqdm


def _download_files(
    repo_id: str, sha: str, files: list[str], sizes: dict[str, int], token: str | None, report: _Progress
) -> list[Path]:
    from concurrent.futures import ThreadPoolExecutor

    from huggingface_hub import hf_hub_download

    def one(name: str) -> Path:
        path = hf_hub_download(repo_id, name, revision=sha, token=token, tqdm_class=_tqdm_for(report, name))
        report.finished(name, sizes.get(name, 0))
        return Path(path)

    # Largest first, so the long transfers start early.
    order = sorted(files, key=lambda f: -sizes.get(f, 0))
    pool = ThreadPoolExecutor(max_workers=max(1, min(_DOWNLOAD_WORKERS, len(order))))
    futures = [pool.submit(one, f) for f in order]
    try:
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C or a failed file: stop the other transfers at their next chunk, not at their end.
        report.cancelled = True
        for f in futures:
            f.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _snapshot_root(paths: list[Path]) -> Path:
    """The snapshot folder the downloaded files live in (``.../snapshots/<sha>``)."""
    for p in paths:
        if p.parent.parent.name == "snapshots":
            return p.parent
    p = paths[0]
    while p.parent.name != "snapshots":
        p = p.parent
    return p
