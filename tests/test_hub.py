"""cocktail_core.hub against the local Hub server: metadata, downloads, pushes and every failure path."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from cocktail_core import hub
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
)

from tests.helpers import dead_endpoint

JUNK = {
    "pytorch_model.bin": b"pickle" * 100,
    "onnx/model.onnx": b"onnx" * 100,
    "tf_model.h5": b"h5" * 100,
    "consolidated.safetensors": b"not used by transformers" * 10,
    "extra/model.safetensors": b"sub-folder weights" * 10,
    "notes.txt": b"hello",
}


def _header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in h.items() if k != "__metadata__"}


def _expected_tensors(folder: Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        for k, (dtype, shape) in _header(f).items():
            out[k] = (dtype, shape, f.name)
    return out


def _merge_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _cached_weights(local_hub) -> list[Path]:
    return [p for p in local_hub.cached_files() if p.name.endswith(".safetensors")]


@pytest.fixture
def seeded(local_hub, tiny_llama_base, tiny_llama_ft2):
    """alice/single (one weights file + junk) and alice/sharded (3 shards + index + junk)."""
    single = local_hub.seed_repo("alice/single", tiny_llama_base, files=JUNK)
    sharded = local_hub.seed_repo("alice/sharded", tiny_llama_ft2, files=JUNK)
    return {"alice/single": (tiny_llama_base, single), "alice/sharded": (tiny_llama_ft2, sharded)}


@pytest.fixture
def merged_dir(tmp_path, tiny_llama_base) -> Path:
    """A folder shaped like a merge output (weights, config, tokenizer, README card)."""
    out = tmp_path / "my-cocktail"
    shutil.copytree(tiny_llama_base, out)
    return out


# --------------------------------------------------------------------------- fetch_metadata


@pytest.mark.parametrize("repo", ["alice/single", "alice/sharded"])
def test_fetch_metadata_reads_headers_without_weights(local_hub, seeded, repo):
    folder, sha = seeded[repo]
    meta = hub.fetch_metadata(repo)
    assert meta.repo_id == repo and meta.revision is None and meta.sha == sha
    assert meta.config == json.loads((folder / "config.json").read_text())
    assert meta.tensors == _expected_tensors(folder)
    assert meta.files == _merge_files(folder)  # no junk, no .bin/.onnx/.h5, no stray safetensors
    assert meta.download_bytes == sum((folder / f).stat().st_size for f in meta.files)
    assert meta.license == ("apache-2.0" if repo == "alice/single" else "mit")
    assert meta.gated is False and meta.private is False and meta.from_cache is False
    # Nothing but config.json (and the shard index) was downloaded.
    assert _cached_weights(local_hub) == []
    assert not [r for r in local_hub.requests_to(".safetensors", "GET") if r[1].endswith(".safetensors") and r[2] == 200]


def test_fetch_metadata_revisions(local_hub, seeded, tmp_path):
    folder, old_sha = seeded["alice/single"]
    cfg = json.loads((folder / "config.json").read_text())
    new_sha = local_hub.commit_files("alice/single", {"config.json": json.dumps({**cfg, "rope_theta": 1.0}).encode()})
    assert hub.fetch_metadata("alice/single").sha == new_sha
    old = hub.fetch_metadata("alice/single", revision=old_sha)
    assert old.sha == old_sha and old.revision == old_sha and old.config == cfg
    with pytest.raises(HubRevisionNotFoundError) as ei:
        hub.fetch_metadata("alice/single", revision="no-such-branch")
    assert "no-such-branch" in str(ei.value) and "alice/single" in str(ei.value)


def test_fetch_metadata_repo_not_found(local_hub):
    with pytest.raises(HubRepoNotFoundError) as ei:
        hub.fetch_metadata("alice/does-not-exist")
    assert "alice/does-not-exist" in str(ei.value) and ei.value.hint


def test_fetch_metadata_no_safetensors_and_no_config(local_hub):
    local_hub.seed_repo("alice/pickled", files={"config.json": b"{}", "pytorch_model.bin": b"x"})
    meta = hub.fetch_metadata("alice/pickled")
    assert meta.tensors == {} and meta.files == ["config.json"]
    local_hub.seed_repo("alice/noconfig", files={"model.safetensors": b"x"})
    with pytest.raises(HubError, match="config.json"):
        hub.fetch_metadata("alice/noconfig")


def test_private_input_repo(local_hub, tiny_llama_base):
    bob = local_hub.add_user("bob")
    local_hub.seed_repo("alice/private", tiny_llama_base, private=True)
    for token in (None, bob):
        with pytest.raises(HubRepoNotFoundError) as ei:
            hub.fetch_metadata("alice/private", token=token)
        assert ("no token was given" if token is None else "token cannot see it") in str(ei.value)
        with pytest.raises(HubRepoNotFoundError):
            hub.download_model("alice/private", token=token)
    meta = hub.fetch_metadata("alice/private", token=local_hub.token)
    assert meta.private is True
    folder = hub.download_model("alice/private", revision=meta.sha, token=local_hub.token)
    assert (folder / "model.safetensors").read_bytes() == (tiny_llama_base / "model.safetensors").read_bytes()


def test_gated_input_repo(local_hub, tiny_llama_base):
    bob = local_hub.add_user("bob")
    dave = local_hub.add_user("dave")
    local_hub.seed_repo("alice/gated", tiny_llama_base, gated=True)
    local_hub.set_gated("alice/gated", granted_users=["dave"])
    for token in (None, bob):
        with pytest.raises(HubGatedError) as ei:
            hub.fetch_metadata("alice/gated", token=token)
        msg = str(ei.value)
        assert f"{local_hub.url}/alice/gated" in msg and "accept the conditions" in msg
        assert ("not logged in" in msg) if token is None else ("not been granted" in msg)
        with pytest.raises(HubGatedError):
            hub.download_model("alice/gated", token=token)
    meta = hub.fetch_metadata("alice/gated", token=dave)
    assert meta.gated is True and meta.tensors == _expected_tensors(tiny_llama_base)
    assert (hub.download_model("alice/gated", token=dave) / "config.json").is_file()


# --------------------------------------------------------------------------- download_model


@pytest.mark.parametrize("repo", ["alice/single", "alice/sharded"])
def test_download_model_fetches_only_merge_files(local_hub, seeded, repo):
    folder, sha = seeded[repo]
    meta = hub.fetch_metadata(repo)
    calls: list[tuple[int, int, str]] = []
    out = hub.download_model(repo, revision=meta.sha, progress=lambda d, t, m: calls.append((d, t, m)))
    assert out.name == sha and out.parent.name == "snapshots"
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == meta.files == _merge_files(folder)
    for name in got:
        assert (out / name).read_bytes() == (folder / name).read_bytes()
    # No junk requested at all.
    for junk in JUNK:
        assert not local_hub.requests_to(junk.split("/")[-1] if "/" not in junk else junk, "GET")
    # Progress: total = download_bytes, done never decreases past the total and ends complete.
    assert calls and all(t == meta.download_bytes for _, t, _ in calls)
    assert calls[-1][0] == calls[-1][1] == meta.download_bytes
    assert all(0 <= d <= t for d, t, _ in calls)
    # A second call is served from the cache (no GET of file content).
    n_get = len(local_hub.requests_to("/resolve/", "GET"))
    assert hub.download_model(repo, revision=meta.sha) == out
    assert len(local_hub.requests_to("/resolve/", "GET")) == n_get


def test_offline_mode_uses_the_cache(local_hub, seeded):
    # The app's flow: inspect, then download exactly the inspected commit.
    online_meta = hub.fetch_metadata("alice/sharded")
    folder = hub.download_model("alice/sharded", revision=online_meta.sha)
    n = len(local_hub.requests)
    with local_hub.offline():
        assert hub.download_model("alice/sharded") == folder  # found by branch name too
        assert hub.download_model("alice/sharded", revision=online_meta.sha) == folder
        meta = hub.fetch_metadata("alice/sharded")
        assert meta.from_cache and meta.sha == online_meta.sha
        assert meta.tensors == online_meta.tensors and meta.files == online_meta.files
        assert meta.download_bytes == online_meta.download_bytes and meta.license == "mit"
        # Not cached -> clear error that mentions offline mode.
        with pytest.raises(HubUnreachableError) as ei:
            hub.download_model("alice/single")
        assert "HF_HUB_OFFLINE" in str(ei.value)
        with pytest.raises(HubUnreachableError):
            hub.fetch_metadata("alice/single")
    assert len(local_hub.requests) == n  # nothing reached the server


def test_download_by_branch_then_offline(local_hub, seeded):
    folder = hub.download_model("alice/single")  # by branch name: the cache records main -> sha
    with local_hub.offline():
        assert hub.download_model("alice/single") == folder
        assert hub.fetch_metadata("alice/single").sha == folder.name


def test_unreachable_hub(local_hub, seeded):
    folder = hub.download_model("alice/single")
    local_hub.point_to(dead_endpoint())
    # Cached: served from the cache.
    assert hub.download_model("alice/single") == folder
    assert hub.fetch_metadata("alice/single").from_cache
    # Not cached: an error that suggests offline mode.
    for call in (lambda: hub.fetch_metadata("alice/sharded"), lambda: hub.download_model("alice/sharded")):
        with pytest.raises(HubUnreachableError) as ei:
            call()
        assert "cannot be reached" in str(ei.value) or "Could not reach" in str(ei.value)
        assert "HF_HUB_OFFLINE=1" in ei.value.hint or "cache" in ei.value.hint
    with pytest.raises(HubUnreachableError) as ei:
        hub.push(Path(folder), "alice/x", token=local_hub.token)
    assert "HF_HUB_OFFLINE=1" in str(ei.value)


# --------------------------------------------------------------------------- push


def test_push_creates_repo_in_one_commit(local_hub, merged_dir):
    url = hub.push(merged_dir, "merged", token=local_hub.token, commit_message="Cocktail merge")
    assert url == f"{local_hub.url}/alice/merged"
    assert local_hub.list_files("alice/merged") == sorted([".gitattributes", *_merge_files(merged_dir)])
    for name in _merge_files(merged_dir):
        assert local_hub.read_file("alice/merged", name) == (merged_dir / name).read_bytes()
    assert local_hub.commit_count("alice/merged") == 2  # the initial .gitattributes commit + ours
    assert len(local_hub.requests_to("/commit/", "POST")) == 1
    assert local_hub.state()["alice/merged"]["private"] is False


def test_push_name_defaults_and_private(local_hub, merged_dir):
    assert hub.push(merged_dir, None, token=local_hub.token, private=True) == f"{local_hub.url}/alice/my-cocktail"
    assert local_hub.state()["alice/my-cocktail"]["private"] is True
    org_repo = f"{local_hub.org}/team-merge"
    assert hub.push(merged_dir, org_repo, token=local_hub.token) == f"{local_hub.url}/{org_repo}"
    with pytest.raises(HubUnauthorizedError) as ei:
        hub.push(merged_dir, "someone-else/merge", token=local_hub.token)
    assert "someone-else" in str(ei.value) and not local_hub.repo_exists("someone-else/merge")
    with pytest.raises(HubError, match="not a valid"):
        hub.push(merged_dir, "alice/bad name!", token=local_hub.token)


def test_push_bad_token_creates_nothing(local_hub, merged_dir):
    state = local_hub.state()
    bad = "hf_ThisIsNotAValidToken1234567890"
    with pytest.raises(HubUnauthorizedError) as ei:
        hub.push(merged_dir, "alice/merged", token=bad)
    assert "rejected the token" in str(ei.value) and "settings/tokens" in str(ei.value)
    assert bad not in str(ei.value) and bad not in repr(ei.value) and bad not in getattr(ei.value, "detail", "")
    assert ei.value.__cause__ is None and ei.value.__suppress_context__
    assert local_hub.state() == state
    assert not local_hub.requests_to("/api/repos/create")
    with pytest.raises(HubUnauthorizedError):
        hub.push(merged_dir, "alice/merged", token=None)
    with pytest.raises(HubUnauthorizedError):
        hub.push(merged_dir, "alice/merged", token="")


def test_push_read_only_token(local_hub, merged_dir):
    ro = local_hub.add_user("reader", can_write=False)
    with pytest.raises(HubUnauthorizedError, match="read-only"):
        hub.push(merged_dir, "reader/merged", token=ro)
    assert not local_hub.repo_exists("reader/merged")


def test_push_validates_folder_first(local_hub, merged_dir, tmp_path):
    (merged_dir / "README.md").unlink()
    with pytest.raises(HubPushError, match="README.md"):
        hub.push(merged_dir, "alice/merged", token=local_hub.token)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HubPushError, match="safetensors"):
        hub.push(empty, "alice/merged", token=local_hub.token)
    with pytest.raises(HubPushError):
        hub.push(tmp_path / "missing", "alice/merged", token=local_hub.token)
    assert local_hub.requests == []  # refused before any network call


def test_push_refuses_non_empty_repo_then_overwrite(local_hub, merged_dir, tiny_llama_ft2):
    local_hub.seed_repo("alice/taken", tiny_llama_ft2)
    state = local_hub.state()
    with pytest.raises(HubRepoNotEmptyError) as ei:
        hub.push(merged_dir, "alice/taken", token=local_hub.token)
    assert "--overwrite" in str(ei.value) and "--create-pr" in str(ei.value)
    assert local_hub.state() == state
    # overwrite: one commit; the repo then holds exactly the new files (old shards deleted).
    hub.push(merged_dir, "alice/taken", token=local_hub.token, overwrite=True)
    assert local_hub.list_files("alice/taken") == sorted([".gitattributes", *_merge_files(merged_dir)])
    assert local_hub.commit_count("alice/taken") == len(state["alice/taken"]["commits"]) + 1
    # An empty existing repo (only .gitattributes) needs no flag.
    local_hub.create_repo("alice/empty")
    hub.push(merged_dir, "alice/empty", token=local_hub.token)
    assert "model.safetensors" in local_hub.list_files("alice/empty")


def test_push_create_pr(local_hub, merged_dir, tiny_llama_ft2):
    main_sha = local_hub.seed_repo("alice/base", tiny_llama_ft2)
    url = hub.push(merged_dir, "alice/base", token=local_hub.token, create_pr=True)
    assert url == f"{local_hub.url}/alice/base/discussions/1"
    assert local_hub.head("alice/base") == main_sha
    assert local_hub.list_files("alice/base", "refs/pr/1") == sorted([".gitattributes", *_merge_files(merged_dir)])
    # Anyone who can read a public repo can propose a merge as a PR, but not push to main.
    bob = local_hub.add_user("bob")
    with pytest.raises(HubUnauthorizedError):
        hub.push(merged_dir, "alice/base", token=bob)
    (merged_dir / "extra.txt").write_text("from bob")
    assert hub.push(merged_dir, "alice/base", token=bob, create_pr=True).endswith("/discussions/2")
    with pytest.raises(HubUnauthorizedError):  # no repo is created in a foreign namespace
        hub.push(merged_dir, "alice/nothing-here", token=bob, create_pr=True)
    assert not local_hub.repo_exists("alice/nothing-here")
    assert local_hub.head("alice/base") == main_sha


@pytest.mark.parametrize("status", [None, 500])
def test_network_error_mid_upload_commits_nothing(local_hub, merged_dir, status):
    local_hub.create_repo("alice/flaky")
    state = local_hub.state()
    local_hub.fail_next_commit(after_bytes=20_000, status=status)
    with pytest.raises(HubPushError) as ei:
        hub.push(merged_dir, "alice/flaky", token=local_hub.token)
    msg = str(ei.value)
    assert "Nothing was committed" in msg and "unchanged" in msg and "Retry" in msg
    assert local_hub.token not in msg and local_hub.token not in getattr(ei.value, "detail", "")
    assert local_hub.state() == state
    assert local_hub.list_files("alice/flaky") == [".gitattributes"]
    # Retrying works.
    hub.push(merged_dir, "alice/flaky", token=local_hub.token)
    assert "model.safetensors" in local_hub.list_files("alice/flaky")


def test_whoami_name(local_hub):
    assert hub.whoami_name(local_hub.token) == "alice"
    with pytest.raises(HubUnauthorizedError):
        hub.whoami_name("hf_wrong_token_value_123")
    with pytest.raises(HubUnauthorizedError):
        hub.whoami_name("")


# --------------------------------------------------------------------------- token hygiene


def test_token_never_in_messages(local_hub, merged_dir, tiny_llama_base, caplog):
    caplog.set_level("DEBUG")
    token = local_hub.token
    bob = local_hub.add_user("bob")
    local_hub.seed_repo("alice/secret", tiny_llama_base, private=True)
    local_hub.seed_repo("alice/gated", tiny_llama_base, gated=True)
    errors: list[CocktailError] = []
    for call in (
        lambda: hub.fetch_metadata("alice/secret", token=bob),
        lambda: hub.fetch_metadata("alice/gated", token=bob),
        lambda: hub.fetch_metadata("alice/secret", revision="nope", token=token),
        lambda: hub.download_model("alice/gated", token=bob),
        lambda: hub.push(merged_dir, "bob/x", token=token),
        lambda: hub.push(merged_dir, "alice/x", token=token + "x"),
        lambda: hub.whoami_name(token + "x"),
    ):
        with pytest.raises(CocktailError) as ei:
            call()
        errors.append(ei.value)
    local_hub.fail_next_commit()
    with pytest.raises(HubPushError) as ei:
        hub.push(merged_dir, "alice/x2", token=token)
    errors.append(ei.value)
    for err in errors:
        for text in (str(err), repr(err), err.message, err.hint or "", getattr(err, "detail", "")):
            assert token not in text and bob not in text
    assert token not in caplog.text and bob not in caplog.text
    # Defensive scrubbing of token-shaped strings coming back from a server message.
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(400, request=httpx2.Request("GET", f"{local_hub.url}/api/models/a/b"))
    exc = HfHubHTTPError(f"server says {token} and Bearer {token}", response=response)
    err = hub._translate(exc, repo_id="a/b", token=token, revision=None, action="read")
    assert token not in str(err) and token not in err.detail
    assert hub.scrub_token("x hf_abcdefghijkl y", None) == "x hf_*** y"


def test_module_imports_no_hub_eagerly():
    import subprocess
    import sys

    code = "import sys, cocktail_core.hub; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_progress_callback_error_stops_download(local_hub, seeded):
    from cocktail_core.errors import MergeInterruptedError

    def progress(done, total, message):
        if done > 0:
            raise MergeInterruptedError("stopped by the user")

    with pytest.raises(MergeInterruptedError):
        hub.download_model("alice/sharded", progress=progress)
    # The cache holds no half-written weights posing as complete files.
    for p in _cached_weights(local_hub):
        assert p.stat().st_size in {f.stat().st_size for f in seeded["alice/sharded"][0].glob("*.safetensors")}
