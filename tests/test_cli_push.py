"""``push`` and ``merge --push-to-hub`` against the local Hub: one commit, a card made for the repo,
tokens from HF_TOKEN / --token-file only and never echoed, and every refusal and failure path."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cocktail_core.card import LOCAL_PLACEHOLDER, LOCAL_TITLE
from cocktail_core.cli import main
from cocktail_core.engine import RECIPE_FILE, merge
from cocktail_core.recipe import Recipe

from tests.helpers import assert_no_token, folder_files

BAD_TOKEN = "hf_ThisIsNotAValidToken1234567890"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _no_staging_left(folder: Path) -> bool:
    return not [p for p in folder.parent.iterdir() if ".cocktail-push-" in p.name]


@pytest.fixture(scope="module")
def merged_dir(tmp_path_factory, tiny_llama_base, tiny_llama_ft2) -> Path:
    """A sharded merge output (3 shards + index, config, tokenizer, generation config, recipe, card)."""
    out = tmp_path_factory.mktemp("push") / "my-cocktail"
    merge(Recipe.from_lists([str(tiny_llama_base), str(tiny_llama_ft2)], [1, 1], shard_size="200KB"), out)
    return out


@pytest.fixture
def hf_token(local_hub, monkeypatch) -> str:
    monkeypatch.setenv("HF_TOKEN", local_hub.token)
    return local_hub.token


def _hub_card(local_hub, repo: str, revision: str = "main"):
    """The pushed card, downloaded from the Hub with huggingface_hub and parsed by its ModelCard."""
    from huggingface_hub import ModelCard, hf_hub_download

    path = hf_hub_download(repo, "README.md", revision=revision, token=local_hub.token)
    assert Path(path).read_bytes() == local_hub.read_file(repo, "README.md", revision)
    return ModelCard.load(path)


def test_push_happy_path_one_commit(local_hub, hf_token, merged_dir, capsys):
    before = folder_files(merged_dir)
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/cocktail")
    assert code == 0, err
    url = f"{local_hub.url}/alice/cocktail"
    assert out.strip() == url
    assert local_hub.commit_count("alice/cocktail") == 2  # the repo's initial commit + ONE upload
    assert len(local_hub.requests_to("/commit/", "POST")) == 1
    files = local_hub.list_files("alice/cocktail")
    assert files == sorted([".gitattributes", *before])
    for name in ("model-00001-of-00003.safetensors", "model.safetensors.index.json", "config.json", "tokenizer.json",
                 "tokenizer_config.json", "generation_config.json", RECIPE_FILE, "README.md"):
        assert name in files
    for name, data in before.items():
        if name != "README.md":
            assert local_hub.read_file("alice/cocktail", name) == data, name
    # The card on the Hub names the repo; the local one is untouched and no staging folder is left.
    card = _hub_card(local_hub, "alice/cocktail")
    assert "# cocktail\n" in card.text and 'from_pretrained("alice/cocktail"' in card.text
    assert LOCAL_PLACEHOLDER not in card.text
    data = card.data.to_dict()
    assert "merge" in data["tags"] and data["library_name"] == "transformers" and "base_model" not in data
    card.validate()
    assert folder_files(merged_dir) == before
    assert f"# {LOCAL_TITLE}" in before["README.md"].decode()
    assert _no_staging_left(merged_dir)
    assert local_hub.state()["alice/cocktail"]["private"] is False
    assert_no_token(hf_token, out, err, card.content, folders=(merged_dir,))


def test_push_token_sources_and_repo_names(local_hub, merged_dir, capsys, tmp_path, monkeypatch):
    # No token at all: a clear error before any request, saying where a token comes from.
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/x")
    assert code == 2 and err.startswith("error: ") and "HF_TOKEN" in err and "--token-file" in err
    assert local_hub.requests == [] and not local_hub.repo_exists("alice/x")
    # There is no --token argument: refused without echoing it (nor read as an abbreviation of --token-file).
    for argv in (["push", str(merged_dir), "--token", local_hub.token], [f"--token={local_hub.token}"],
                 ["merge", "--models", "a", "b", "--out", str(tmp_path / "o"), "--token", local_hub.token]):
        argv = argv if argv[0] in ("push", "merge") else ["push", str(merged_dir), *argv]
        with pytest.raises(SystemExit) as ei:
            main(argv)
        assert ei.value.code == 2
        out, err = capsys.readouterr()
        assert "not accepted on the command line" in err and "HF_TOKEN" in err
        assert_no_token(local_hub.token, out, err)
    assert local_hub.requests == [] and not (tmp_path / "o").exists()
    # --token-file, a bare name (the token user's namespace), --private.
    token_file = tmp_path / "token"
    token_file.write_text(local_hub.token + "\n")
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "mine", "--private", "--token-file", str(token_file))
    assert code == 0, err
    assert out.strip() == f"{local_hub.url}/alice/mine"
    assert local_hub.state()["alice/mine"]["private"] is True
    assert "# mine\n" in _hub_card(local_hub, "alice/mine").text
    # No --repo: the folder's name, in the token user's namespace (HF_TOKEN this time).
    monkeypatch.setenv("HF_TOKEN", local_hub.token)
    code, out, err = _run(capsys, "push", str(merged_dir), "--quiet")
    assert code == 0 and out.strip() == f"{local_hub.url}/alice/my-cocktail" and err == ""
    assert 'from_pretrained("alice/my-cocktail"' in _hub_card(local_hub, "alice/my-cocktail").text
    assert_no_token(local_hub.token, out, err, folders=(merged_dir,))


def test_push_bad_token_creates_nothing(local_hub, merged_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", BAD_TOKEN)
    state = local_hub.state()
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/cocktail")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "rejected the token" in err and "settings/tokens" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert local_hub.state() == state and not local_hub.requests_to("/api/repos/create")
    assert_no_token(BAD_TOKEN, out, err, folders=(merged_dir,))
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "bad name!")
    assert code == 2 and "not a valid Hub repo id" in err


def test_push_refuses_non_empty_repo_unless_overwrite_or_pr(local_hub, hf_token, merged_dir, capsys, tiny_llama_base):
    main_sha = local_hub.seed_repo("alice/taken", tiny_llama_base)
    state = local_hub.state()
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/taken")
    assert code == 2 and out == ""
    assert "already holds" in err and "nothing was pushed" in err and "--overwrite" in err and "--create-pr" in err
    assert local_hub.state() == state
    # --create-pr: a pull request, main untouched.
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/taken", "--create-pr")
    assert code == 0, err
    assert out.strip() == f"{local_hub.url}/alice/taken/discussions/1"
    assert local_hub.head("alice/taken") == main_sha
    assert "model.safetensors.index.json" in local_hub.list_files("alice/taken", "refs/pr/1")
    assert "# taken\n" in _hub_card(local_hub, "alice/taken", "refs/pr/1").text
    # --overwrite: one commit; the repo then holds exactly the folder (the old model.safetensors is gone).
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/taken", "--overwrite")
    assert code == 0, err
    assert local_hub.list_files("alice/taken") == sorted([".gitattributes", *folder_files(merged_dir)])
    assert local_hub.commit_count("alice/taken") == len(state["alice/taken"]["commits"]) + 2  # PR + overwrite
    assert_no_token(hf_token, out, err)


def test_network_error_mid_upload_commits_nothing(local_hub, hf_token, merged_dir, capsys):
    local_hub.create_repo("alice/flaky")
    state = local_hub.state()
    local_hub.fail_next_commit(after_bytes=50_000)
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/flaky")
    assert code != 0 and out == ""
    assert "failed midway" in err and "Nothing was committed" in err and "unchanged" in err and "Retry" in err
    assert ".cocktail-push-" not in err  # the staging folder is never shown
    assert local_hub.state() == state and local_hub.list_files("alice/flaky") == [".gitattributes"]
    assert _no_staging_left(merged_dir)
    assert_no_token(hf_token, out, err, folders=(merged_dir,))
    code, out, err = _run(capsys, "push", str(merged_dir), "--repo", "alice/flaky")  # a retry works
    assert code == 0 and "model.safetensors.index.json" in local_hub.list_files("alice/flaky")


def test_merge_push_to_hub_from_hub_inputs(local_hub, hf_token, capsys, tmp_path, tiny_llama_base, tiny_llama_ft1):
    base_sha = local_hub.seed_repo("alice/base", tiny_llama_base)
    ft_sha = local_hub.seed_repo("alice/ft", tiny_llama_ft1)
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "merge", "--models", "alice/base", f"alice/ft@{ft_sha}", "--weights", "0.6", "0.4",
                          "--out", str(out_dir), "--push-to-hub", "alice/cocktail", "--private", "--quiet")
    assert code == 0, err
    url = f"{local_hub.url}/alice/cocktail"
    assert "Merged 2 models" in out and out.strip().splitlines()[-1] == f"Pushed to {url}"
    assert local_hub.state()["alice/cocktail"]["private"] is True
    assert local_hub.commit_count("alice/cocktail") == 2
    local = folder_files(out_dir)
    assert local_hub.list_files("alice/cocktail") == sorted([".gitattributes", *local])
    assert local_hub.read_file("alice/cocktail", "model.safetensors") == local["model.safetensors"]
    # The pushed card: Hub ids as base models, the commits used in the body, the repo in title and snippet.
    card = _hub_card(local_hub, "alice/cocktail")
    data = card.data.to_dict()
    assert data["base_model"] == ["alice/base", "alice/ft"] and data["base_model_relation"] == "merge"
    assert data["license"] == "apache-2.0" and data["pipeline_tag"] == "text-generation"
    assert f"`{base_sha}`" in card.text and f"`{ft_sha}`" in card.text
    assert "# cocktail\n" in card.text and 'from_pretrained("alice/cocktail"' in card.text
    recipe = Recipe.from_yaml(local_hub.read_file("alice/cocktail", RECIPE_FILE).decode())
    assert [str(e.model) for e in recipe.models] == [f"alice/base@{base_sha}", f"alice/ft@{ft_sha}"]
    # The local output keeps its local card.
    assert f"# {LOCAL_TITLE}" in local["README.md"].decode() and _no_staging_left(out_dir)
    assert_no_token(hf_token, out, err, card.content, folders=(out_dir,))


def test_merge_push_to_hub_checks_the_token_before_merging(local_hub, capsys, tmp_path, monkeypatch,
                                                           tiny_llama_base, tiny_llama_ft1):
    models = ["--models", str(tiny_llama_base), str(tiny_llama_ft1), "--quiet"]
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "merge", *models, "--out", str(out_dir), "--push-to-hub", "alice/c")
    assert code == 2 and "HF_TOKEN" in err and "--token-file" in err and not out_dir.exists()
    monkeypatch.setenv("HF_TOKEN", BAD_TOKEN)
    code, out, err = _run(capsys, "merge", *models, "--out", str(out_dir), "--push-to-hub", "alice/c")
    assert code == 2 and "rejected the token" in err and not out_dir.exists()
    assert not local_hub.repo_exists("alice/c") and not local_hub.requests_to("/api/repos/create")
    assert_no_token(BAD_TOKEN, out, err)
    code, out, err = _run(capsys, "merge", *models, "--out", str(out_dir), "--private")
    assert code == 2 and "--private needs --push-to-hub" in err and not out_dir.exists()
    code, out, err = _run(capsys, "merge", *models, "--out", str(out_dir), "--push-to-hub", "a/b/c")
    assert code == 2 and "not a valid Hub repo id" in err and not out_dir.exists()


def test_merge_push_to_hub_refused_keeps_the_merge(local_hub, hf_token, capsys, tmp_path, tiny_llama_base,
                                                   tiny_llama_ft1):
    local_hub.seed_repo("alice/taken", tiny_llama_base)
    state = local_hub.state()
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, "merge", "--models", str(tiny_llama_base), str(tiny_llama_ft1), "--out",
                          str(out_dir), "--push-to-hub", "taken", "--quiet")
    assert code == 2 and "Merged 2 models" in out
    assert "already holds" in err and f"The merged model is saved in {out_dir}." in err and "--overwrite" in err
    assert err.rstrip().endswith(f"To push the saved model: python -m cocktail_core push {out_dir} --repo alice/taken")
    assert local_hub.state() == state
    assert (out_dir / "model.safetensors").is_file() and _no_staging_left(out_dir)
    # ... and the suggested command does push it.
    code, out, err = _run(capsys, "push", str(out_dir), "--repo", "alice/taken", "--overwrite")
    assert code == 0 and out.strip() == f"{local_hub.url}/alice/taken"
    assert_no_token(hf_token, out, err, folders=(out_dir,))


def test_real_process_push(local_hub, hf_token, merged_dir):
    env = dict(os.environ, PYTHONPATH=os.getcwd())  # HF_ENDPOINT, HF_HOME, HF_TOKEN... set by the fixtures
    cmd = [sys.executable, "-m", "cocktail_core", "push", str(merged_dir), "--repo", "alice/from-process"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{local_hub.url}/alice/from-process"
    assert "Uploading" in proc.stderr and "Traceback" not in proc.stderr
    assert "model.safetensors.index.json" in local_hub.list_files("alice/from-process")
    assert_no_token(hf_token, proc.stdout, proc.stderr, folders=(merged_dir,))


def test_push_embedding_model_keeps_module_folders(local_hub, hf_token, capsys, tmp_path, tiny_bert_pair):
    out_dir = tmp_path / "emb"
    merge(Recipe.from_lists([str(p) for p in tiny_bert_pair], [1, 1]), out_dir)
    code, out, err = _run(capsys, "push", str(out_dir), "--repo", f"{local_hub.org}/emb")
    assert code == 0, err
    files = local_hub.list_files(f"{local_hub.org}/emb")
    assert "1_Pooling/config.json" in files and "modules.json" in files
    assert local_hub.read_file(f"{local_hub.org}/emb", "1_Pooling/config.json") == \
        (out_dir / "1_Pooling" / "config.json").read_bytes()
    card = _hub_card(local_hub, f"{local_hub.org}/emb")
    assert card.data.to_dict()["library_name"] == "sentence-transformers"
    assert f'AutoModel.from_pretrained("{local_hub.org}/emb")' in card.text
    assert _no_staging_left(out_dir)
    assert_no_token(hf_token, out, err, card.content, folders=(out_dir,))
