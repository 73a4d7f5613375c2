"""The local Hub test server is faithful enough: huggingface_hub and transformers, unmodified,
behave against it as against huggingface.co (same calls succeed, same exception classes)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    get_safetensors_metadata,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hubserver import LocalHubServer, git_blob_oid


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }


@pytest.fixture
def small_folder(tmp_path) -> Path:
    d = tmp_path / "small"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    (d / "README.md").write_text("---\nlicense: mit\ntags: [merge]\nlibrary_name: transformers\n---\n# Small\n")
    (d / "sub" / "a.txt").write_text("alpha")
    (d / "sub" / "deeper" / "b.bin").write_bytes(bytes(range(256)) * 40)
    (d / "empty.txt").write_bytes(b"")
    return d


# --------------------------------------------------------------------------- lifecycle


def test_server_starts_and_stops_fast(tmp_path):
    t0 = time.perf_counter()
    server = LocalHubServer(tmp_path / "srv").start()
    started = time.perf_counter() - t0
    url = server.url
    with httpx2.Client() as client:  # a keep-alive connection must not keep the server alive
        assert client.get(url + "/api/whoami-v2").status_code == 401
        t1 = time.perf_counter()
        server.stop()
        stopped = time.perf_counter() - t1
        assert started < 0.5 and stopped < 1.0
        with pytest.raises(httpx2.TransportError):
            client.get(url + "/api/whoami-v2")
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(url + "/api/whoami-v2")


def test_fixture_environment(local_hub):
    from huggingface_hub import constants, hf_api

    assert constants.ENDPOINT == local_hub.url
    assert hf_api.api.endpoint == local_hub.url
    assert constants.HF_HUB_DISABLE_XET is True
    assert constants.HF_HUB_OFFLINE is False
    assert Path(constants.HF_HUB_CACHE) == local_hub.cache_dir
    from huggingface_hub.utils import get_token

    assert get_token() is None


# --------------------------------------------------------------------------- auth


def test_whoami(local_hub):
    info = HfApi().whoami(token=local_hub.token)
    assert info["name"] == "alice"
    assert [o["name"] for o in info["orgs"]] == [local_hub.org]
    assert info["auth"]["accessToken"]["role"] == "write"


def test_bad_token_is_401(local_hub):
    with pytest.raises(HfHubHTTPError) as ei:
        HfApi().whoami(token="hf_not_a_real_token_123456")
    assert ei.value.response.status_code == 401
    assert "hf_not_a_real_token_123456" not in str(ei.value)
    # A bad token is rejected everywhere, even on public repos, and creates nothing.
    with pytest.raises(HfHubHTTPError) as ei:
        HfApi(token="hf_not_a_real_token_123456").create_repo("alice/nope")
    assert ei.value.response.status_code == 401
    assert not local_hub.repo_exists("alice/nope")


def test_read_only_token_cannot_write(local_hub, small_folder):
    ro = local_hub.add_user("reader", can_write=False)
    with pytest.raises(HfHubHTTPError) as ei:
        HfApi(token=ro).create_repo("reader/x")
    assert ei.value.response.status_code == 403
    local_hub.create_repo("reader/y")
    with pytest.raises(HfHubHTTPError) as ei:
        HfApi(token=ro).upload_folder(folder_path=small_folder, repo_id="reader/y")
    assert ei.value.response.status_code == 403


# --------------------------------------------------------------------------- repos


def test_create_repo_conflict_and_exist_ok(local_hub):
    api = HfApi(token=local_hub.token)
    url = api.create_repo("alice/dup")
    assert url == f"{local_hub.url}/alice/dup" and url.repo_id == "alice/dup"
    with pytest.raises(HfHubHTTPError) as ei:
        api.create_repo("alice/dup")
    assert ei.value.response.status_code == 409
    again = api.create_repo("alice/dup", exist_ok=True)
    assert again.repo_id == "alice/dup"
    # Fresh repos hold one initial commit with .gitattributes, as on the Hub.
    assert local_hub.list_files("alice/dup") == [".gitattributes"]
    # Bare name -> the user's namespace; another namespace needs membership.
    assert api.create_repo("bare").repo_id == "alice/bare"
    assert api.create_repo(f"{local_hub.org}/shared").repo_id == f"{local_hub.org}/shared"
    with pytest.raises(HfHubHTTPError) as ei:
        api.create_repo("someone-else/x")
    assert ei.value.response.status_code == 403


def test_upload_folder_then_snapshot_download_identical(local_hub, small_folder, tiny_llama_ft2):
    api = HfApi(token=local_hub.token)
    for name, folder in (("small", small_folder), ("llama", tiny_llama_ft2)):
        repo = f"alice/{name}"
        api.create_repo(repo)
        info = api.upload_folder(folder_path=folder, repo_id=repo, commit_message=f"add {name}")
        assert info.oid == local_hub.head(repo)
        path = Path(snapshot_download(repo, token=local_hub.token))
        got = _files(path)
        got.pop(".gitattributes")
        assert got == _files(folder)
        assert path.name == info.oid


def test_upload_is_one_commit(local_hub, tiny_llama_ft2):
    api = HfApi(token=local_hub.token)
    api.create_repo("alice/one")
    before = local_hub.commit_count("alice/one")
    api.upload_folder(folder_path=tiny_llama_ft2, repo_id="alice/one")
    assert local_hub.commit_count("alice/one") == before + 1
    assert len(local_hub.requests_to("/commit/", "POST")) == 1


def test_repo_not_found(local_hub):
    api = HfApi(token=local_hub.token)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/missing", "config.json", token=local_hub.token)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("alice/missing")  # anonymous: 401 + RepoNotFound


def test_revision_and_entry_not_found(local_hub, small_folder):
    local_hub.seed_repo("alice/revs", small_folder)
    api = HfApi(token=local_hub.token)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/revs", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/revs", "config.json", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download("alice/revs", revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/revs", "nope.json")
    assert not api.file_exists("alice/revs", "nope.json")
    assert api.file_exists("alice/revs", "sub/a.txt")


def test_private_repo_visibility(local_hub, small_folder):
    bob = local_hub.add_user("bob")
    carol = local_hub.add_user("carol", orgs=[local_hub.org])
    local_hub.seed_repo("alice/secret", small_folder, private=True)
    local_hub.seed_repo(f"{local_hub.org}/team-secret", small_folder, private=True)

    assert HfApi(token=local_hub.token).model_info("alice/secret").private is True
    for token in (bob, None):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=token).model_info("alice/secret")
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("alice/secret", "config.json", token=token)
        with pytest.raises(RepositoryNotFoundError):
            snapshot_download("alice/secret", token=token)
    # Org members see the org's private repos.
    assert HfApi(token=carol).model_info(f"{local_hub.org}/team-secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=bob).model_info(f"{local_hub.org}/team-secret")
    # Creating a repo through the API honours private=True.
    HfApi(token=local_hub.token).create_repo("alice/priv2", private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=bob).model_info("alice/priv2")


def test_gated_repo(local_hub, small_folder):
    bob = local_hub.add_user("bob")
    dave = local_hub.add_user("dave")
    local_hub.seed_repo("alice/gated", small_folder, gated=True)
    local_hub.set_gated("alice/gated", granted_users=["dave"])

    # Metadata stays visible; content does not.
    info = HfApi(token=bob).model_info("alice/gated", files_metadata=True)
    assert info.gated == "auto"
    for token in (bob, None):
        with pytest.raises(GatedRepoError):
            hf_hub_download("alice/gated", "config.json", token=token)
        with pytest.raises(GatedRepoError):
            HfApi(token=token).auth_check("alice/gated")
    assert Path(hf_hub_download("alice/gated", "config.json", token=dave)).read_bytes() == (
        small_folder / "config.json"
    ).read_bytes()
    HfApi(token=dave).auth_check("alice/gated")
    HfApi(token=local_hub.token).auth_check("alice/gated")  # the owner


# --------------------------------------------------------------------------- metadata


def test_model_info_files_metadata(local_hub, tiny_llama_ft2):
    sha = local_hub.seed_repo("alice/meta", tiny_llama_ft2)
    info = HfApi().model_info("alice/meta", files_metadata=True)
    assert info.sha == sha
    sizes = {s.rfilename: s.size for s in info.siblings}
    for name, data in _files(tiny_llama_ft2).items():
        assert sizes[name] == len(data)
    blob_ids = {s.rfilename: s.blob_id for s in info.siblings}
    assert blob_ids["config.json"] == git_blob_oid((tiny_llama_ft2 / "config.json").read_bytes())
    assert info.card_data is not None and info.card_data.license == "mit"
    assert info.safetensors is not None and info.safetensors.total > 0
    # Without files_metadata: names only.
    plain = HfApi().model_info("alice/meta")
    assert all(s.size is None for s in plain.siblings)
    # By commit sha too.
    assert HfApi().model_info("alice/meta", revision=sha).sha == sha


def test_get_safetensors_metadata_uses_ranges(local_hub, tiny_llama_base, tiny_llama_ft2):
    from safetensors import safe_open

    for name, folder in (("single", tiny_llama_base), ("sharded", tiny_llama_ft2)):
        repo = f"alice/{name}"
        local_hub.seed_repo(repo, folder)
        meta = get_safetensors_metadata(repo)
        assert meta.sharded is (name == "sharded")
        expected = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), "pt") as sf:
                for k in sf.keys():
                    sl = sf.get_slice(k)
                    expected[k] = (sl.get_dtype(), tuple(sl.get_shape()))
        got = {
            k: (t.dtype, tuple(t.shape))
            for fm in meta.files_metadata.values()
            for k, t in fm.tensors.items()
        }
        assert got == expected
        # Headers were read with Range requests (206), no full download of the weights.
        gets = [r for r in local_hub.requests_to(f"/{repo}/resolve/", "GET") if r[1].endswith(".safetensors")]
        assert gets and all(status == 206 for _, _, status in gets)
    assert not [p for p in local_hub.cached_files() if p.name.endswith(".safetensors")]


def test_range_requests(local_hub):
    data = bytes(range(256)) * 4
    local_hub.seed_repo("alice/ranges", files={"w.bin": data})
    url = f"{local_hub.url}/alice/ranges/resolve/main/w.bin"
    r = httpx2.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert httpx2.get(url, headers={"Range": "bytes=1000-"}).content == data[1000:]
    assert httpx2.get(url, headers={"Range": "bytes=-5"}).content == data[-5:]
    assert httpx2.get(url, headers={"Range": "bytes=0-100000"}).content == data
    assert httpx2.get(url, headers={"Range": "bytes=5000-"}).status_code == 416
    head = httpx2.head(url)
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["ETag"] == f'"{git_blob_oid(data)}"'
    assert head.headers["X-Repo-Commit"] == local_hub.head("alice/ranges")


def test_tree_paths_info_refs_commits(local_hub, small_folder):
    sha = local_hub.seed_repo("alice/tree", small_folder)
    api = HfApi()
    everything = {e.path for e in api.list_repo_tree("alice/tree", recursive=True)}
    assert {"sub", "sub/deeper", "sub/deeper/b.bin", "config.json", ".gitattributes"} <= everything
    top = {e.path for e in api.list_repo_tree("alice/tree")}
    assert top == {".gitattributes", "README.md", "config.json", "empty.txt", "sub"}
    assert {e.path for e in api.list_repo_tree("alice/tree", path_in_repo="sub")} == {"sub/a.txt", "sub/deeper"}
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("alice/tree", path_in_repo="nope"))
    infos = api.get_paths_info("alice/tree", ["config.json", "sub", "missing"])
    assert [i.path for i in infos] == ["config.json", "sub"]
    assert infos[0].size == (small_folder / "config.json").stat().st_size
    refs = api.list_repo_refs("alice/tree", include_pull_requests=True)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", sha)]
    commits = api.list_repo_commits("alice/tree")
    assert commits[0].commit_id == sha and commits[-1].title == "initial commit"
    assert sorted(api.list_repo_files("alice/tree")) == sorted(local_hub.list_files("alice/tree"))


# --------------------------------------------------------------------------- commits


def test_create_pr(local_hub, small_folder, tmp_path):
    main_sha = local_hub.seed_repo("alice/pr", small_folder)
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "config.json").write_text('{"model_type": "changed"}')
    bob = local_hub.add_user("bob")
    # Anyone who can read a public repo may open a PR.
    info = HfApi(token=bob).upload_folder(folder_path=changed, repo_id="alice/pr", create_pr=True)
    assert info.pr_url == f"{local_hub.url}/alice/pr/discussions/1"
    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1
    assert local_hub.head("alice/pr") == main_sha  # main untouched
    got = hf_hub_download("alice/pr", "config.json", revision="refs/pr/1")
    assert Path(got).read_text() == '{"model_type": "changed"}'
    assert json.loads(Path(hf_hub_download("alice/pr", "config.json")).read_text())["model_type"] == "llama"
    refs = HfApi().list_repo_refs("alice/pr", include_pull_requests=True)
    assert [(p.ref, p.target_commit) for p in refs.pull_requests] == [("refs/pr/1", info.oid)]
    assert HfApi().model_info("alice/pr", revision="refs/pr/1").sha == info.oid
    # Pushing again to the PR branch updates it.
    (changed / "extra.txt").write_text("x")
    again = HfApi(token=bob).upload_folder(folder_path=changed, repo_id="alice/pr", revision="refs/pr/1")
    assert local_hub.pull_requests("alice/pr") == {1: again.oid}
    # Bob cannot push to main.
    with pytest.raises(HfHubHTTPError) as ei:
        HfApi(token=bob).upload_folder(folder_path=changed, repo_id="alice/pr")
    assert ei.value.response.status_code == 403


def test_deletions_and_parent_commit(local_hub, small_folder):
    sha = local_hub.seed_repo("alice/del", small_folder)
    api = HfApi(token=local_hub.token)
    api.create_commit(
        "alice/del",
        [CommitOperationDelete("empty.txt"), CommitOperationDelete("sub/", is_folder=True),
         CommitOperationAdd("new.txt", b"new")],
        commit_message="prune",
        parent_commit=sha,
    )
    assert local_hub.list_files("alice/del") == [".gitattributes", "README.md", "config.json", "new.txt"]
    # A stale parent commit is refused (412) and changes nothing.
    state = local_hub.state()
    with pytest.raises(HfHubHTTPError) as ei:
        api.create_commit("alice/del", [CommitOperationAdd("x.txt", b"x")], commit_message="m", parent_commit=sha)
    assert ei.value.response.status_code == 412
    assert local_hub.state() == state
    with pytest.raises(EntryNotFoundError):
        api.create_commit("alice/del", [CommitOperationDelete("ghost.txt")], commit_message="m")
    assert local_hub.state() == state


@pytest.mark.parametrize("status", [None, 500])
def test_commit_is_atomic_under_injected_failure(local_hub, tiny_llama_ft2, status):
    api = HfApi(token=local_hub.token)
    local_hub.seed_repo("alice/atomic", files={"old.txt": b"old"})
    state = local_hub.state()
    local_hub.fail_next_commit(after_bytes=5000, status=status)
    expected = HfHubHTTPError if status else (httpx2.TransportError,)
    with pytest.raises(expected):
        api.upload_folder(folder_path=tiny_llama_ft2, repo_id="alice/atomic")
    assert local_hub.state() == state
    assert local_hub.list_files("alice/atomic") == [".gitattributes", "old.txt"]
    # The client recovers: the same upload then succeeds in one commit.
    api.upload_folder(folder_path=tiny_llama_ft2, repo_id="alice/atomic")
    assert set(_files(tiny_llama_ft2)) <= set(local_hub.list_files("alice/atomic"))


def test_malformed_or_truncated_commit_body_commits_nothing(local_hub):
    local_hub.seed_repo("alice/raw", files={"a.txt": b"a"})
    state = local_hub.state()
    url = f"{local_hub.url}/api/models/alice/raw/commit/main"
    headers = {"Authorization": f"Bearer {local_hub.token}", "Content-Type": "application/x-ndjson"}
    good = json.dumps({"key": "file", "value": {"path": "b.txt", "content": "Yg==", "encoding": "base64"}})
    header = json.dumps({"key": "header", "value": {"summary": "s", "description": ""}})
    for body in (
        header + "\n" + good + "\n" + '{"key": "file", "value": {"path": "c.txt", "cont',  # truncated line
        good + "\n",  # no header
        header + "\n" + json.dumps({"key": "file", "value": {"path": "c.txt", "content": "!!", "encoding": "base64"}}),
    ):
        r = httpx2.post(url, content=body.encode(), headers=headers)
        assert r.status_code == 400, r.text
    assert local_hub.state() == state
    r = httpx2.post(url, content=(header + "\n" + good + "\n").encode(), headers=headers)
    assert r.status_code == 200 and r.json()["commitOid"] == local_hub.head("alice/raw")
    assert local_hub.read_file("alice/raw", "b.txt") == b"b"


def test_interrupted_download_is_retried(local_hub, tiny_llama_base):
    local_hub.seed_repo("alice/resume", tiny_llama_base)
    local_hub.add_fault(r"/resolve/.*/model\.safetensors$", method="GET", after_bytes=1000)
    path = hf_hub_download("alice/resume", "model.safetensors")
    assert Path(path).read_bytes() == (tiny_llama_base / "model.safetensors").read_bytes()
    statuses = [s for m, p, s in local_hub.requests_to("model.safetensors", "GET")]
    # Dropped mid-body, then fetched again: huggingface_hub resumes with a Range request only past
    # its 10 MB read chunk, so for a small file the retry is a full 200.
    assert statuses in ([-1, 200], [-1, 206])


def test_offline_mode_serves_cache(local_hub, small_folder):
    local_hub.seed_repo("alice/off", small_folder)
    online = snapshot_download("alice/off")
    n = len(local_hub.requests)
    with local_hub.offline():
        assert snapshot_download("alice/off") == online
        assert Path(hf_hub_download("alice/off", "config.json")).parent == Path(online)
    assert len(local_hub.requests) == n  # nothing reached the server


# --------------------------------------------------------------------------- transformers


def test_transformers_from_pretrained_and_push_to_hub(local_hub, tiny_llama_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_hub.seed_repo("alice/tiny-llama", tiny_llama_base)
    model = AutoModelForCausalLM.from_pretrained("alice/tiny-llama")
    tok = AutoTokenizer.from_pretrained("alice/tiny-llama")
    ref = AutoModelForCausalLM.from_pretrained(str(tiny_llama_base))
    ids = torch.tensor([tok("hello world")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)

    model.push_to_hub("alice/pushed", token=local_hub.token, private=True)
    tok.push_to_hub("alice/pushed", token=local_hub.token)
    files = local_hub.list_files("alice/pushed")
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files
    with pytest.raises(OSError):  # private: invisible without the token
        AutoModelForCausalLM.from_pretrained("alice/pushed")
    back = AutoModelForCausalLM.from_pretrained("alice/pushed", token=local_hub.token)
    with torch.no_grad():
        assert torch.equal(back(ids).logits, ref(ids).logits)
    assert not local_hub.unhandled, local_hub.unhandled
