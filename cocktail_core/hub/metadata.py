"""What a Hub model is (config, tensor names/dtypes/shapes, download size) without downloading its weights."""

from __future__ import annotations

import contextlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocktail_core import settings
from cocktail_core.errors import HubError, HubUnreachableError, NoSafetensorsError
from cocktail_core.hub._client import _DOWNLOAD_WORKERS
from cocktail_core.hub.cache import _cached_files, _cached_snapshot
from cocktail_core.hub.errors import _hub_errors
from cocktail_core.hub.files import (
    INDEX_FILE,
    _read_json,
    _repo_sizes,
    _require_config,
    _weight_map,
    select_merge_files,
)


@dataclass(frozen=True)
class HubModelMeta:
    """What :func:`fetch_metadata` learns about a Hub model without downloading its weights.

    Attributes:
        repo_id: ``namespace/name``.
        revision: the revision asked for (``None`` = the default branch).
        sha: the commit that revision resolved to; pass it on to :func:`download_model` so the
            weights downloaded are the ones inspected.
        config: parsed ``config.json``.
        tensors: tensor name -> ``(dtype, shape, file)``; dtype as in the safetensors header
            (``"BF16"``, ``"F32"``...), ``file`` the safetensors file holding it.  Empty when the
            repo has no safetensors weights.
        download_bytes: total size of the files a merge needs (:attr:`files`).
        files: the files :func:`download_model` will fetch (weights, config, tokenizer, card...).
        license: ``license`` from the model card front matter, if any.
        gated: the repo is gated (access must be requested).
        private: the repo is private.
        from_cache: the metadata came from the local cache (offline or Hub unreachable).
    """

    repo_id: str
    revision: str | None
    sha: str
    config: dict[str, Any]
    tensors: dict[str, tuple[str, tuple[int, ...], str]]
    download_bytes: int
    files: list[str]
    license: str | None = None
    gated: bool = False
    private: bool = False
    from_cache: bool = False
    sizes: dict[str, int] = field(default_factory=dict, repr=False)


def fetch_metadata(repo_id: str, *, revision: str | None = None, token: str | None = None) -> HubModelMeta:
    """Read a Hub model's config and safetensors headers, without downloading any weight.

    Calls ``model_info(files_metadata=True)`` (commit sha, file sizes, card data, gated/private),
    downloads ``config.json`` (and ``model.safetensors.index.json`` for sharded models) and reads
    the safetensors headers with HTTP Range requests (``parse_safetensors_file_metadata``, what
    ``get_safetensors_metadata`` uses).  Offline (``HF_HUB_OFFLINE=1``) or when the Hub cannot be
    reached, a model already in the cache is read from there.

    Args:
        repo_id: ``namespace/name`` on the Hub.
        revision: branch, tag, commit sha or ``refs/pr/N``; ``None`` = the default branch.
        token: Hub token for private or gated repos (``None``: HF_TOKEN / saved login, if any).

    Returns:
        A :class:`HubModelMeta`.

    Raises:
        HubRepoNotFoundError: no such repo, or private and the token cannot see it.
        HubRevisionNotFoundError: the revision does not exist.
        HubGatedError: gated repo and the token's user has no access.
        HubUnauthorizedError: the token was rejected.
        HubUnreachableError: the Hub cannot be reached and the model is not in the cache.
        HubError: the repo has no ``config.json``, or another Hub failure.

    Example:
        >>> meta = fetch_metadata("Qwen/Qwen2-0.5B")
        >>> meta.tensors["model.embed_tokens.weight"]
        ('BF16', (151936, 896), 'model.safetensors')
    """
    from huggingface_hub import HfApi, constants, hf_hub_download

    if constants.is_offline_mode():
        return _meta_from_cache(repo_id, revision, token, reason="offline mode (HF_HUB_OFFLINE=1) is on")
    api = HfApi(token=token)
    try:
        with _hub_errors(repo_id=repo_id, revision=revision, token=token):
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
            sha = info.sha
            sizes = _repo_sizes(info)
            _require_config(repo_id, revision, sizes)
            config_path = Path(hf_hub_download(repo_id, "config.json", revision=revision, token=token))
            if config_path.parent.name != sha:  # the branch moved since model_info: stick to `sha`
                config_path = Path(hf_hub_download(repo_id, "config.json", revision=sha, token=token))
            # (Downloading by the requested revision records branch -> commit in the cache, so the
            # model is found offline by its branch name once download_model(revision=sha) ran.)
            config = _read_json(config_path, f"config.json of {repo_id}")
            weight_map = _weight_map(
                sizes, repo_id, lambda: Path(hf_hub_download(repo_id, INDEX_FILE, revision=sha, token=token))
            )
            weight_files = [f for f in select_merge_files(sizes, weight_map) if f.endswith(".safetensors")]
            tensors = _remote_headers(api, repo_id, sha, weight_files, token)
    except HubUnreachableError as exc:
        if not settings.get().hub_cache_fallback:
            raise
        try:
            return _meta_from_cache(repo_id, revision, token, reason="the Hub cannot be reached")
        except HubError:
            raise exc from None
    files = select_merge_files(sizes, weight_map)
    card = getattr(info, "card_data", None)
    license_ = card.get("license") if card is not None else None
    return HubModelMeta(
        repo_id=repo_id,
        revision=revision,
        sha=str(sha),
        config=config,
        tensors=tensors,
        download_bytes=sum(sizes.get(f, 0) for f in files),
        files=files,
        license=str(license_) if license_ else None,
        gated=bool(info.gated),
        private=bool(info.private),
        sizes={f: sizes.get(f, 0) for f in files},
    )


def _remote_headers(
    api: Any, repo_id: str, sha: str, files: list[str], token: str | None
) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """Tensor metadata from the safetensors headers, read with HTTP Range requests (like
    ``get_safetensors_metadata``, but for exactly ``files``, without its progress bar)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(fname: str) -> tuple[str, Any]:
        return fname, api.parse_safetensors_file_metadata(repo_id, fname, revision=sha, token=token)

    tensors: dict[str, tuple[str, tuple[int, ...], str]] = {}
    if not files:
        return tensors
    with ThreadPoolExecutor(max_workers=max(1, min(_DOWNLOAD_WORKERS, len(files)))) as pool:
        for fname, fmeta in pool.map(one, files):
            for name, t in fmeta.tensors.items():
                tensors[name] = (str(t.dtype), tuple(int(d) for d in t.shape), fname)
    return tensors


def _meta_from_cache(repo_id: str, revision: str | None, token: str | None, *, reason: str) -> HubModelMeta:
    folder = _cached_snapshot(repo_id, revision, token, reason=reason)
    files = select_merge_files(*_cached_files(folder, repo_id))
    tensors: dict[str, tuple[str, tuple[int, ...], str]] = {}
    for f in files:
        if f.endswith(".safetensors"):
            for name, (dtype, shape) in _local_header(folder / f).items():
                tensors[name] = (dtype, shape, f)
    license_ = None
    if (folder / "README.md").is_file():
        from huggingface_hub.repocard import metadata_load

        with contextlib.suppress(Exception):
            license_ = (metadata_load(folder / "README.md") or {}).get("license")
    sizes = {f: (folder / f).stat().st_size for f in files}
    return HubModelMeta(
        repo_id=repo_id, revision=revision, sha=folder.name,
        config=_read_json(folder / "config.json", f"config.json of {repo_id}"),
        tensors=tensors, download_bytes=sum(sizes.values()), files=files,
        license=str(license_) if license_ else None, from_cache=True, sizes=sizes,
    )


def _local_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as exc:
        raise NoSafetensorsError(f"Cached weights file {path.name} is unreadable ({exc}).",
                                 hint="Delete it from the HF cache and download the model again.") from None
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"}
