"""Small helpers shared by core tests: independent merges, folder surgery, token leaks, a dead endpoint."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.fixtures.models import load_state_dict


def independent_linear(paths: list[Path], weights: list[float]) -> dict[str, torch.Tensor]:
    """sum(w_i * theta_i) / sum(w_i) in float32, computed from plain safetensors loads."""
    states = [load_state_dict(p) for p in paths]
    total = sum(weights)
    return {name: sum(w * s[name].float() for w, s in zip(weights, states)) / total for name in states[0]}


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rewrite_weights(folder: Path, edit) -> None:
    """Load every tensor of a single-file model, apply ``edit(state)`` and save it back unsharded."""
    state = load_state_dict(folder)
    for f in list(folder.glob("*.safetensors")) + list(folder.glob("*.index.json")):
        f.unlink()
    edit(state)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors", metadata={"format": "pt"})


def set_config(folder: Path, **values) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(values)
    (folder / "config.json").write_text(json.dumps(cfg))


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative POSIX path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_no_token(token: str, *texts: str, folders: tuple[Path, ...] = ()) -> None:
    """The token string appears in none of ``texts`` nor in any file under ``folders``."""
    for text in texts:
        assert token not in text
    for folder in folders:
        for name, data in folder_files(folder).items():
            assert token.encode() not in data, name


def dead_endpoint() -> str:
    """The URL of a local port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


__all__ = ["independent_linear", "copy_model", "rewrite_weights", "set_config", "load_file", "folder_files",
           "assert_no_token", "dead_endpoint"]
