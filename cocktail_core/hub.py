"""Everything Cocktail does with the Hugging Face Hub, and the only module that imports huggingface_hub.

* :func:`fetch_metadata` -- config, tensor names/dtypes/shapes and download size of a Hub model,
  without downloading any weight (``config.json`` + Range reads of the safetensors headers).
* :func:`download_model` -- only the files a merge needs (safetensors weights, config, tokenizer,
  sentence-transformers pooling files, model card), into the standard HF cache; served from the
  cache when ``HF_HUB_OFFLINE=1`` or when the Hub cannot be reached.
* :func:`push` -- upload a merged model folder as ONE commit (or one pull request).
* :func:`whoami_name` -- the user a token belongs to.

``huggingface_hub`` is imported inside the functions, so importing this module is cheap.  Every
Hub/network failure is turned into a :class:`~cocktail_core.errors.HubError` subclass with a
message that says what happened and a hint that says what to do; a token never appears in any
message (it is scrubbed defensively, and the original exception is not chained).

Tokens: ``token=None`` in the read functions means "whatever huggingface_hub finds" (``HF_TOKEN``
or ``hf auth login``), as for any HF tool.  :func:`push` never falls back to an ambient token: a
web app must not push with the server's own credentials on behalf of a logged-out visitor.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from cocktail_core.errors import (
    CocktailError,
    HubError,
    HubGatedError,
    HubPushError,
    HubRepoNotEmptyError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
    HubUnauthorizedError,
    HubUnreachableError,
    NoSafetensorsError,
)

__all__ = [
    "HubModelMeta",
    "MERGE_FILES",
    "fetch_metadata",
    "download_model",
    "push",
    "whoami_name",
    "scrub_token",
    "select_merge_files",
]

ProgressFn = Callable[[int, int, str], None]

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

#: Files (besides the safetensors weights) a merge reads or copies to its output.  Only these, at
#: these exact paths, are ever downloaded: never ``*.bin``/``*.pt``/``*.onnx``/``*.gguf``/``*.h5``/
#: ``*.msgpack`` nor weights in sub-folders.
MERGE_FILES: frozenset[str] = frozenset({
    "config.json", "generation_config.json", INDEX_FILE,
    # tokenizer
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.txt", "merges.txt", "vocab.json", "added_tokens.json", "spiece.model",
    "chat_template.jinja", "chat_template.json",
    # sentence-transformers
    "modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    # model card (license)
    "README.md",
})
_NEVER = (".bin", ".pt", ".pth", ".ckpt", ".onnx", ".gguf", ".h5", ".msgpack", ".ot", ".tflite")
_TOKEN_RE = re.compile(r"\b(hf_|api_org_)[A-Za-z0-9_\-]{6,}")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)\S+")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_DOWNLOAD_WORKERS = 4


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


# --------------------------------------------------------------------------- public API


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
            sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
            if "config.json" not in sizes:
                raise HubError(
                    f"Hub repo {repo_id} has no config.json at revision {revision or 'main'}: it is not a "
                    "transformers model.",
                    hint="Pick a repo saved with save_pretrained() (it has config.json and *.safetensors).",
                )
            config_path = Path(hf_hub_download(repo_id, "config.json", revision=revision, token=token))
            if config_path.parent.name != sha:  # the branch moved since model_info: stick to `sha`
                config_path = Path(hf_hub_download(repo_id, "config.json", revision=sha, token=token))
            # (Downloading by the requested revision records branch -> commit in the cache, so the
            # model is found offline by its branch name once download_model(revision=sha) ran.)
            config = _read_json(config_path, f"config.json of {repo_id}")
            weight_map: dict[str, str] | None = None
            if SINGLE_FILE not in sizes and INDEX_FILE in sizes:
                index_path = hf_hub_download(repo_id, INDEX_FILE, revision=sha, token=token)
                weight_map = _read_json(Path(index_path), f"{INDEX_FILE} of {repo_id}").get("weight_map") or {}
            weight_files = [f for f in select_merge_files(sizes, weight_map) if f.endswith(".safetensors")]
            tensors = _remote_headers(api, repo_id, sha, weight_files, token)
    except HubUnreachableError as exc:
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
        try:
            folder = _cached_snapshot(repo_id, revision, token, reason="the Hub cannot be reached")
        except HubError:
            raise exc from None
        report.done(f"{repo_id}: Hub unreachable, using the cached copy")
        return folder
    sha = str(info.sha)
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    if "config.json" not in sizes:
        raise HubError(
            f"Hub repo {repo_id} has no config.json at revision {revision or 'main'}: it is not a "
            "transformers model.",
            hint="Pick a repo saved with save_pretrained() (it has config.json and *.safetensors).",
        )
    with _hub_errors(repo_id=repo_id, revision=revision, token=token):
        weight_map = None
        if SINGLE_FILE not in sizes and INDEX_FILE in sizes:
            index_path = hf_hub_download(repo_id, INDEX_FILE, revision=sha, token=token)
            weight_map = _read_json(Path(index_path), f"{INDEX_FILE} of {repo_id}").get("weight_map") or {}
        files = select_merge_files(sizes, weight_map)
        report.start(sum(sizes.get(f, 0) for f in files), f"Downloading {repo_id} ({len(files)} files)")
        paths = _download_files(repo_id, sha, files, sizes, token, report)
        if revision is None or not _COMMIT_RE.match(revision):
            # Record branch -> commit in the cache (refs/<branch>) so offline mode finds this snapshot.
            hf_hub_download(repo_id, "config.json", revision=revision, token=token)
    folder = _snapshot_root(paths)
    report.done(f"Downloaded {repo_id}")
    return folder


def push(
    output_dir: str | Path,
    repo_id: str | None = None,
    *,
    token: str | None,
    private: bool = False,
    overwrite: bool = False,
    create_pr: bool = False,
    commit_message: str | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Upload a merged model folder to the Hub as one commit (or one pull request).

    Everything is checked before anything is created: the folder (weights, ``config.json``,
    ``README.md`` card), the token (``whoami``; a rejected token creates no repo) and the target
    namespace.  The repo is created if missing (``private`` applies to new repos only).  If it
    exists and holds files other than ``.gitattributes``, the push is refused unless
    ``overwrite`` or ``create_pr``; then the commit makes the repo (or the PR) hold exactly the
    folder's files -- stale files such as old shards are deleted in the same commit.

    Args:
        output_dir: the folder a merge wrote.
        repo_id: ``namespace/name``, a bare ``name`` (the token user's namespace) or ``None``
            (the token user's namespace and the folder's name).
        token: a Hub token with write access.  Required: there is no fallback to ``HF_TOKEN``.
        private: create the repo as private.
        overwrite: replace the content of an existing non-empty repo.
        create_pr: open a pull request instead of committing to ``main``.
        commit_message: commit (or PR) title; a default names the folder.
        progress: ``progress(done_bytes, total_bytes, message)`` at start and end.

    Returns:
        The repo URL, or the pull request URL with ``create_pr``.

    Raises:
        HubPushError: the folder is not a complete model, or the upload failed (the message
            says whether the repo is unchanged, which it is when the Hub can confirm it).
        HubUnauthorizedError: no token, a rejected or read-only token, or a namespace the token
            cannot write to.
        HubRepoNotEmptyError: the repo holds files and neither ``overwrite`` nor ``create_pr``.
        HubUnreachableError: the Hub cannot be reached.

    Example:
        >>> push("out/cocktail", "my-cocktail", token=os.environ["HF_TOKEN"])
        'https://huggingface.co/alice/my-cocktail'
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    folder = Path(output_dir).expanduser()
    local_files = _check_push_folder(folder)
    if not token:
        raise HubUnauthorizedError(
            "Pushing to the Hub needs a token with write access; none was given.",
            hint=f"Create a write token at {_endpoint()}/settings/tokens and set HF_TOKEN "
            "(or use --token-file on the command line).",
        )
    user, orgs = _whoami(token, need_write=True)
    repo_id = _target_repo(repo_id, user, folder)
    namespace = repo_id.split("/", 1)[0]
    own_namespace = namespace == user or namespace in orgs
    not_yours = HubUnauthorizedError(
        f"The token belongs to '{user}', who cannot write to the namespace '{namespace}'.",
        hint=f"Push to {user}/<name>" + (f" or to an organization you belong to ({', '.join(orgs)})"
                                          if orgs else "") + ", or open a pull request with --create-pr.",
    )
    if not own_namespace and not create_pr:  # a PR to someone else's public repo is fine
        raise not_yours

    api = HfApi(token=token)
    url = f"{_endpoint()}/{repo_id}"
    remote_files: list[str] = []
    with _hub_errors(repo_id=repo_id, token=token):
        try:
            info = api.model_info(repo_id, token=token)
            head = str(info.sha)
            remote_files = [s.rfilename for s in info.siblings or []]
        except RepositoryNotFoundError:
            if not own_namespace:
                raise not_yours from None
            api.create_repo(repo_id, private=private, exist_ok=True, token=token)
            head = str(api.model_info(repo_id, token=token).sha)
    existing = [f for f in remote_files if f != ".gitattributes"]
    if existing and not (overwrite or create_pr):
        shown = ", ".join(sorted(existing)[:4]) + (", ..." if len(existing) > 4 else "")
        raise HubRepoNotEmptyError(
            f"The Hub repo {repo_id} already holds {len(existing)} file(s) ({shown}); nothing was pushed.",
            hint="Pass --overwrite to replace its content in one commit, or --create-pr to propose the "
            "merge as a pull request.",
        )

    total = sum(p.stat().st_size for p in local_files.values())
    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in sorted(local_files.items())
    ]
    operations += [CommitOperationDelete(path_in_repo=f) for f in sorted(existing) if f not in local_files]
    report = _Progress(progress)
    report.start(total, f"Uploading {len(local_files)} files to {repo_id}" + (" (pull request)" if create_pr else ""))
    message = commit_message or f"Upload {folder.name} merged with Cocktail"
    try:
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            create_pr=create_pr,
            parent_commit=head,
            token=token,
        )
    except Exception as exc:  # noqa: BLE001 - every failure is translated below
        raise _push_failure(exc, api=api, repo_id=repo_id, head=head, token=token, create_pr=create_pr) from None
    report.done(f"Pushed to {repo_id}")
    if create_pr:
        return str(commit.pr_url) if commit.pr_url else url  # None: nothing differed, no PR opened
    return url


def whoami_name(token: str) -> str:
    """Return the user name a token belongs to.

    Args:
        token: a Hub token.

    Returns:
        The user name (``whoami()["name"]``).

    Raises:
        HubUnauthorizedError: no token, or the Hub rejected it.
        HubUnreachableError: the Hub cannot be reached.

    Example:
        >>> whoami_name(os.environ["HF_TOKEN"])
        'alice'
    """
    if not token:
        raise HubUnauthorizedError("No Hub token was given.",
                                   hint=f"Create one at {_endpoint()}/settings/tokens.")
    return _whoami(token, need_write=False)[0]


def scrub_token(text: str, token: str | None = None) -> str:
    """Remove ``token`` and anything token-shaped (``hf_...``, ``Bearer ...``) from ``text``.

    Example:
        >>> scrub_token("failed with hf_abcdefghijklmnop")
        'failed with hf_***'
    """
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    text = _TOKEN_RE.sub(lambda m: m.group(1) + "***", text)
    return _BEARER_RE.sub(lambda m: m.group(1) + "***", text)


def select_merge_files(names: Any, weight_map: dict[str, str] | None = None) -> list[str]:
    """The files of a repo a merge needs, from the repo's file names.

    Weights: ``model.safetensors`` if present (as ``transformers`` and ``get_safetensors_metadata``
    prefer it), else the shards named by ``model.safetensors.index.json``'s ``weight_map`` (pass
    it), else none.  Other safetensors files (``consolidated.safetensors``, sub-folders...) are
    skipped.  Plus every :data:`MERGE_FILES` entry that exists.

    Example:
        >>> select_merge_files(["model.safetensors", "pytorch_model.bin", "config.json"])
        ['config.json', 'model.safetensors']
    """
    names = set(names)
    if SINGLE_FILE in names:
        weights = {SINGLE_FILE}
    elif INDEX_FILE in names and weight_map:
        weights = {f for f in set(weight_map.values()) if f.endswith(".safetensors")}
    else:
        weights = set()
    aux = {n for n in names if n in MERGE_FILES and not n.endswith(_NEVER)}
    if SINGLE_FILE in names:
        aux.discard(INDEX_FILE)
    return sorted(weights | aux)


# --------------------------------------------------------------------------- helpers


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubError(f"{what} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise HubError(f"{what} is not a JSON object.")
    return data


class _DownloadCancelled(Exception):
    """Raised inside a worker download when another one failed or the caller was interrupted."""


class _Progress:
    """Aggregates per-file byte counts into ``progress(done, total, message)`` calls."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self.total = 0
        self.message = ""
        self.per_file: dict[str, int] = {}
        self.lock = threading.Lock()
        self.cancelled = False  # set when the caller is interrupted: worker downloads stop at the next chunk

    def _emit(self) -> None:
        if self.fn is None:
            return
        done = min(max(sum(self.per_file.values()), 0), self.total) if self.total else 0
        self.fn(done, self.total, self.message)

    def start(self, total: int, message: str) -> None:
        with self.lock:
            self.total, self.message = total, message
            self._emit()

    def add(self, name: str, n: int) -> None:
        with self.lock:
            self.per_file[name] = self.per_file.get(name, 0) + n
            self._emit()

    def finished(self, name: str, size: int) -> None:
        with self.lock:
            self.per_file[name] = size
            self._emit()

    def done(self, message: str) -> None:
        with self.lock:
            self.message = message
            self.per_file = {"*": self.total}
            if self.fn is not None:
                self.fn(self.total, self.total, message)


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


def _cached_snapshot(repo_id: str, revision: str | None, token: str | None, *, reason: str) -> Path:
    """The cached snapshot of ``repo_id@revision`` if it has config.json and its weights."""
    from huggingface_hub import snapshot_download

    hint = ("Run once with network access so the model is cached, or unset HF_HUB_OFFLINE."
            if "offline" in reason else
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
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    weight_map = None
    if INDEX_FILE in names and SINGLE_FILE not in names:
        weight_map = _read_json(folder / INDEX_FILE, f"{INDEX_FILE} of {repo_id}").get("weight_map") or {}
    needed = [f for f in select_merge_files(names, weight_map) if f.endswith(".safetensors")]
    missing = [f for f in (weight_map or {}).values() if not (folder / f).is_file()]
    if "config.json" not in names or not needed or missing:
        raise HubUnreachableError(
            f"Cannot get {repo_id}: {reason} and its cached copy is incomplete"
            + (f" (missing {', '.join(sorted(set(missing))[:3])})." if missing else " (no weights or config)."),
            hint=hint,
        )
    return folder


def _meta_from_cache(repo_id: str, revision: str | None, token: str | None, *, reason: str) -> HubModelMeta:
    folder = _cached_snapshot(repo_id, revision, token, reason=reason)
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    weight_map = None
    if INDEX_FILE in names and SINGLE_FILE not in names:
        weight_map = _read_json(folder / INDEX_FILE, f"{INDEX_FILE} of {repo_id}").get("weight_map") or {}
    files = select_merge_files(names, weight_map)
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


def _check_push_folder(folder: Path) -> dict[str, Path]:
    """Files to upload (relative posix path -> path); raises if the folder is not a full model."""
    if not folder.is_dir():
        raise HubPushError(f"Nothing to push: {folder} is not a folder.",
                           hint="Give the output folder of a merge.")
    files = {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }
    missing = []
    if not any(f.endswith(".safetensors") and "/" not in f for f in files):
        missing.append("safetensors weights")
    if "config.json" not in files:
        missing.append("config.json")
    if "README.md" not in files:
        missing.append("a README.md model card")
    if missing:
        raise HubPushError(
            f"{folder} is not ready to push: it has no {', no '.join(missing)}. Nothing was pushed.",
            hint="Push the folder a Cocktail merge wrote: it holds the weights, config.json and the model card.",
        )
    return files


def _target_repo(repo_id: str | None, user: str, folder: Path) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id = (repo_id or "").strip() or folder.resolve().name
    if "/" not in repo_id:
        repo_id = f"{user}/{repo_id}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(
            f"'{repo_id}' is not a valid Hub repo id.",
            hint="Use namespace/name with letters, digits, '-', '_' or '.', e.g. alice/my-cocktail.",
        ) from None
    if repo_id.count("/") != 1:
        raise HubError(f"'{repo_id}' is not a valid Hub repo id.", hint="Use namespace/name.")
    return repo_id


def _whoami(token: str, *, need_write: bool) -> tuple[str, list[str]]:
    from huggingface_hub import HfApi

    with _hub_errors(repo_id=None, token=token, action="check the token"):
        info = HfApi(token=token).whoami(token=token)
    name = str(info.get("name") or "")
    orgs = [str(o.get("name")) for o in info.get("orgs") or [] if o.get("name")]
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if need_write and role == "read":
        raise HubUnauthorizedError(
            f"The token of '{name}' is read-only: it cannot create repos or push.",
            hint=f"Create a token with write access at {_endpoint()}/settings/tokens.",
        )
    return name, orgs


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network-level exception classes of httpx2 (used by huggingface_hub 2) and httpx."""
    out: list[type[BaseException]] = []
    for mod in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            m = __import__(mod)
            out.append(m.TransportError)
    return tuple(out)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


@contextlib.contextmanager
def _hub_errors(
    *, repo_id: str | None, token: str | None, revision: str | None = None, action: str = "read"
) -> Iterator[None]:
    """Translate huggingface_hub / network exceptions raised inside into :class:`HubError`s."""
    try:
        yield
    except CocktailError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _translate(exc, repo_id=repo_id, token=token, revision=revision, action=action) from None


def _translate(
    exc: BaseException, *, repo_id: str | None, token: str | None, revision: str | None, action: str
) -> HubError:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = _endpoint()
    what = repo_id or "the Hub"
    status = _http_status(exc)
    detail = scrub_token(f"{type(exc).__name__}: {exc}", token)
    err: HubError
    if isinstance(exc, GatedRepoError):
        who = "you are not logged in (no token was given)" if not token else \
            "the account of this token has not been granted access"
        err = HubGatedError(
            f"{what} is a gated model and {who}.",
            hint=f"Visit {endpoint}/{repo_id}, log in and accept the conditions to request access; once "
            "granted, retry with a token of that account (HF_TOKEN, or --token-file on the command line).",
        )
    elif isinstance(exc, RepositoryNotFoundError):
        who = "no token was given" if not token else "the token cannot see it"
        err = HubRepoNotFoundError(
            f"Hub repo {what} was not found at {endpoint}, or it is private and {who}.",
            hint="Check the spelling (namespace/name). For a private repo pass a token with read access "
            "(HF_TOKEN, or --token-file on the command line).",
        )
    elif isinstance(exc, RevisionNotFoundError):
        err = HubRevisionNotFoundError(
            f"Revision '{revision or 'main'}' does not exist in Hub repo {what}.",
            hint="Use a branch name (e.g. main), a tag, a full 40-character commit sha or refs/pr/N.",
        )
    elif isinstance(exc, OfflineModeIsEnabled) or (
        isinstance(exc, LocalEntryNotFoundError) and _offline()
    ):
        err = HubUnreachableError(
            f"Cannot get {what}: offline mode (HF_HUB_OFFLINE=1) is on and it is not in the local cache.",
            hint="Run once with network access so the model is cached, or unset HF_HUB_OFFLINE.",
        )
    elif isinstance(exc, LocalEntryNotFoundError) or isinstance(exc, _transport_errors()):
        err = HubUnreachableError(
            f"Could not reach the Hub at {endpoint} to {action} {what if repo_id else ''}".rstrip()
            + f" ({_short_reason(exc, token)}).",
            hint="Check your connection and retry. To work with models downloaded before, set HF_HUB_OFFLINE=1 "
            "to use the local cache.",
        )
    elif isinstance(exc, EntryNotFoundError):
        err = HubError(
            f"A file is missing from Hub repo {what} ({_short_reason(exc, token)}).",
            hint="The repo may have changed since it was inspected; retry.",
        )
    elif isinstance(exc, LocalTokenNotFoundError) or status == 401:
        if token:
            msg = "The Hub rejected the token (invalid, expired or revoked)."
        else:
            msg = f"The Hub requires a token to {action} {what}."
        err = HubUnauthorizedError(
            msg,
            hint=f"Create a token at {endpoint}/settings/tokens and set HF_TOKEN (or use --token-file on the command line).",
        )
    elif status == 403:
        err = HubUnauthorizedError(
            f"The token is not allowed to {action} {what}.",
            hint="Use a token with write access to that namespace (fine-grained tokens need the repo "
            f"permission); manage tokens at {endpoint}/settings/tokens.",
        )
    elif isinstance(exc, HFValidationError):
        err = HubRepoNotFoundError(
            f"'{repo_id}' is not a valid Hub repo id.",
            hint="Use namespace/name, e.g. Qwen/Qwen2-0.5B.",
        )
    elif status is not None and status >= 500:
        err = HubUnreachableError(
            f"The Hub at {endpoint} answered with an error ({status}) while trying to {action} {what}.",
            hint="The Hub may be having trouble: retry in a moment. Models downloaded before work with "
            "HF_HUB_OFFLINE=1.",
        )
    elif status == 429:
        err = HubError(f"The Hub rate-limited this request ({action} {what}).",
                       hint="Wait a minute and retry; a token raises the limits.")
    elif isinstance(exc, HfHubHTTPError):
        err = HubError(f"The Hub refused to {action} {what} ({_short_reason(exc, token)}).")
    else:
        err = HubError(f"Unexpected error while trying to {action} {what} ({_short_reason(exc, token)}).")
    err.message = scrub_token(err.message, token)
    err.args = (err.message,)
    if err.hint:
        err.hint = scrub_token(err.hint, token)
    err.detail = detail  # type: ignore[attr-defined]
    return err


def _short_reason(exc: BaseException, token: str | None) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return scrub_token(f"{type(exc).__name__}{': ' + first if first else ''}", token)[:300]


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def _push_failure(exc: BaseException, *, api: Any, repo_id: str, head: str, token: str, create_pr: bool) -> HubError:
    """Turn a failed commit into an error that says whether the repo is unchanged."""
    status = _http_status(exc)
    network = isinstance(exc, _transport_errors())
    if not network and (status is None or status < 500) and status != 412:
        return _translate(exc, repo_id=repo_id, token=token, revision=None, action="push to")
    if status == 412:
        return HubPushError(
            f"{repo_id} changed on the Hub while pushing; nothing was committed.",
            hint="Retry the push (check first what changed in the repo).",
        )
    unchanged: bool | None = None
    if not create_pr:
        with contextlib.suppress(Exception):
            unchanged = str(api.model_info(repo_id, token=token).sha) == head
    reason = _short_reason(exc, token) if network else f"the Hub answered {status}"
    if unchanged is False:
        msg = (f"The upload to {repo_id} failed at the very end ({reason}), but the Hub did record a new commit; "
               "check the repo before retrying.")
        hint = f"See {_endpoint()}/{repo_id}."
    else:
        state = "the repository is unchanged" if unchanged else "a Hub commit is all-or-nothing"
        msg = f"The upload to {repo_id} failed midway ({reason}). Nothing was committed: {state}."
        hint = "Retry the push."
    err = HubPushError(scrub_token(msg, token), hint=hint)
    err.detail = scrub_token(f"{type(exc).__name__}: {exc}", token)  # type: ignore[attr-defined]
    return err
