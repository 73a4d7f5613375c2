"""The streaming merge engine.

For each output tensor: read that tensor from every input (a row slice at a time for big tensors of
element-wise methods), accumulate in float32 on the compute device, cast, and append to the open
output shard. Peak memory is a few tensors, whatever the model size. Everything is written into a
hidden folder beside the target and renamed into place only once complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cocktail_core import methods, settings
from cocktail_core.card import render_card
from cocktail_core.errors import CocktailError, OutputExistsError, OutputPathError, RecipeError, SettingsError
from cocktail_core.io.header import DTYPES
from cocktail_core.io.reader import TensorReader
from cocktail_core.io.sources import SENTENCE_TRANSFORMERS_FILES, TOKENIZER_FILES, ModelSource, materialize
from cocktail_core.io.writer import PlannedTensor
from cocktail_core.compat import PreflightReport, output_dtype_code, preflight, reference_index
from cocktail_core.recipe import ModelRef, Recipe, parse_size
from cocktail_core.streaming import Job, merge_tensor, write_merged

RECIPE_FILE = "cocktail_recipe.yaml"


@dataclass
class ProgressUpdate:
    """One progress report: ``stage`` is preflight, download, merge, finalize or done."""

    stage: str
    done: float
    total: float
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if not self.total else min(1.0, self.done / self.total)


ProgressFn = Callable[[ProgressUpdate], None]


@dataclass
class MergeResult:
    """What a merge produced.

    Attributes:
        path: the output folder.
        recipe: the recipe as written to the output (Hub inputs pinned to the commit used).
        weights: the weights used, normalized to sum to 1 when the method normalizes.
        bytes_read / bytes_written: tensor bytes read from inputs and written to the output.
        seconds: wall time of the whole merge.
        report: the preflight report.
    """

    path: Path
    recipe: Recipe
    weights: list[float]
    bytes_read: int
    bytes_written: int
    seconds: float
    report: PreflightReport
    files: list[str] = field(default_factory=list)


def compute_device() -> torch.device:
    """The accelerate device (CUDA when present), unless ``COCKTAIL_DEVICE`` says otherwise."""
    forced = settings.get().device
    if forced:
        try:
            return torch.device(forced)
        except RuntimeError:
            raise SettingsError(f"COCKTAIL_DEVICE={forced!r} is not a torch device.",
                                hint="Use e.g. cpu, cuda or cuda:1, or unset it.") from None
    if torch.cuda.is_available():
        from accelerate import PartialState

        return PartialState().device
    return torch.device("cpu")


def merge(
    recipe: Recipe,
    output_dir: str | Path,
    *,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    token: str | None = None,
    device: str | torch.device | None = None,
) -> MergeResult:
    """Merge the recipe's models into ``output_dir``.

    Args:
        recipe: what to merge and how.
        output_dir: the folder to create. It appears only when the merge is complete.
        progress: called with :class:`ProgressUpdate` as the merge advances.
        overwrite: replace an existing ``output_dir`` (atomically, once the new one is complete).
        token: Hub token for private or gated inputs (else ``HF_TOKEN`` / the cached login).
        device: compute device; default :func:`compute_device`.

    Returns:
        A :class:`MergeResult`.

    Raises:
        OutputExistsError: ``output_dir`` exists and ``overwrite`` is False.
        PreflightError: the inputs cannot be merged (every reason listed).
        CocktailError: any other input problem (unknown model, Hub errors, ...).

    Example:
        >>> recipe = Recipe.from_lists(["org/base", "./finetune"], [0.3, 0.7], dtype="bfloat16")
        >>> result = merge(recipe, "out/cocktail")
        >>> result.bytes_written
        270000000
    """
    started = time.perf_counter()
    report_progress = progress or (lambda update: None)
    out = Path(output_dir).expanduser().resolve()
    _check_output_location(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"Output folder {out} already exists.",
                                hint="Choose another folder or pass --overwrite to replace it.")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path {out} is a file, not a folder.", hint="Choose a folder path.")

    report_progress(ProgressUpdate("preflight", 0, 1, "reading configs and safetensors headers"))
    report = preflight(recipe, output_dir=out, token=token)
    report.raise_for_problems()
    _refuse_input_as_output(out, report.sources)
    report_progress(ProgressUpdate("preflight", 1, 1, "preflight passed"))

    sources = _download(report.sources, token, report_progress)
    if any(not s.is_local for s in sources):
        # Integer buffers of Hub inputs can only be compared once downloaded.
        local_report = preflight(recipe, token=token, sources=sources)
        local_report.raise_for_problems()

    pinned = _pinned_recipe(recipe, sources)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.cocktail-partial-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise OutputPathError(f"Cannot create the output folder {out} ({exc.strerror}).",
                                hint="Choose a folder you can write to.") from None
    try:
        bytes_read, bytes_written = _write_weights(recipe, sources, tmp, device, report_progress)
        report_progress(ProgressUpdate("finalize", 0, 1, "writing config, tokenizer and model card"))
        _write_metadata(pinned, sources, report, tmp)
        _move_into_place(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # Disk full, a vanished input, permissions: the user's problem to fix, not a bug.
        raise CocktailError(f"Writing the merge to {out} failed ({exc.strerror or exc}); nothing was written there.",
                            hint="Check free disk space and permissions, then run the merge again.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    report_progress(ProgressUpdate("done", 1, 1, f"merged in {seconds:.1f} s"))
    method = methods.get(recipe.method)
    total = sum(recipe.weights)
    normalized = method.uses_weights and recipe.params.get("normalize", False) and total
    weights = [w / total for w in recipe.weights] if normalized else list(recipe.weights)
    return MergeResult(path=out, recipe=pinned, weights=weights, bytes_read=bytes_read, bytes_written=bytes_written,
                       seconds=seconds, report=report, files=sorted(p.name for p in out.iterdir()))


def _check_output_location(out: Path) -> None:
    """Fail before any work when the output cannot be created: a file in its path, or no write access."""
    probe = out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"Cannot create the output folder {out}: {probe} is a file.",
                                hint="Choose a path whose parent folders are folders.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(f"Cannot create the output folder {out}: {probe} is not writable.",
                                hint="Choose a folder you can write to.")


def _refuse_input_as_output(out: Path, sources: list[ModelSource | None]) -> None:
    for s in sources:
        if s is not None and s.folder is not None:
            folder = s.folder.resolve()
            if out == folder or folder.is_relative_to(out):
                raise RecipeError(f"The output folder {out} contains the input model {s.ref}.",
                                  hint="Write the merge to a new folder; overwriting an input would destroy it.")


def _download(sources: list[ModelSource | None], token: str | None, report_progress: ProgressFn) -> list[ModelSource]:
    done: list[ModelSource] = []
    remote = [s for s in sources if s is not None and not s.is_local]
    total = sum(s.download_bytes for s in remote) or 1
    offset = 0
    for s in sources:
        assert s is not None
        if s.is_local:
            done.append(s)
            continue

        def on_bytes(got: int, _total: int, message: str = "", _base: int = offset) -> None:
            report_progress(ProgressUpdate("download", _base + got, total, message or f"downloading {s.ref}"))

        report_progress(ProgressUpdate("download", offset, total, f"downloading {s.ref}"))
        done.append(materialize(s, token=token, progress=on_bytes))
        offset += s.download_bytes
        report_progress(ProgressUpdate("download", offset, total, f"downloaded {s.ref}"))
    return done


def _write_weights(recipe: Recipe, sources: list[ModelSource], folder: Path, device: Any,
                   report_progress: ProgressFn) -> tuple[int, int]:
    dev = torch.device(device) if device is not None else compute_device()
    ri = reference_index(recipe)
    ref = sources[ri]
    # The reference's on-disk order keeps its reads sequential.
    order = sorted(ref.tensors.values(), key=lambda m: (m.file, m.offset or 0))
    jobs = [Job(m, PlannedTensor(m.name, output_dtype_code(recipe, m.dtype) if m.is_float else m.dtype, m.shape))
            for m in order]
    readers = [TensorReader(s.folder, s.tensors) for s in sources]
    try:
        written = write_merged(
            recipe, readers, jobs, folder, reference=ri, shard_bytes=parse_size(recipe.shard_size), device=dev,
            on_tensor=lambda name, done, total: report_progress(ProgressUpdate("merge", done, total, name)),
        )
        return sum(r.bytes_read for r in readers), written
    finally:
        for r in readers:
            r.close()


def _pinned_recipe(recipe: Recipe, sources: list[ModelSource]) -> Recipe:
    """The recipe with each Hub input pinned to the commit actually used, so it reproduces exactly."""
    return replace_models(recipe, [str(ModelRef(path=s.ref.path, revision=s.sha)) if not s.is_local and s.sha else None
                                   for s in sources])


def replace_models(recipe: Recipe, new: list[str | None], *, keep_provenance: bool = True) -> Recipe:
    """``recipe`` with model ``i`` replaced by the reference ``new[i]`` (where not None); ``base`` and
    ``tokenizer_source`` follow their model. ``keep_provenance=False`` drops ``weights_from``."""
    data = recipe.to_dict()
    mapping: dict[str, str] = {}
    for entry, ref in zip(data["models"], new):
        if ref is not None:
            mapping[entry["model"]] = ref
            entry["model"] = ref
    for key in ("base", "tokenizer_source"):
        if data.get(key) in mapping:
            data[key] = mapping[data[key]]
    if not keep_provenance:
        data.pop("weights_from", None)
    return Recipe.validated(data)


def _write_metadata(recipe: Recipe, sources: list[ModelSource], report: PreflightReport, folder: Path) -> None:
    ri = reference_index(recipe)
    ref = sources[ri]
    donor = sources[recipe.refs.index(recipe.tokenizer_donor())]
    config = dict(ref.config)
    dtype_name = str(DTYPES[output_dtype_code(recipe, ref.dtype)]).removeprefix("torch.")
    config["dtype"] = dtype_name
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype_name
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES + SENTENCE_TRANSFORMERS_FILES:
        src = donor.folder / name
        if src.is_file():
            shutil.copy2(src, folder / name)
    # sentence-transformers module folders (pooling, normalize) define how embeddings are made.
    for sub in sorted(donor.folder.glob("[0-9]_*")):
        if sub.is_dir():
            shutil.copytree(sub, folder / sub.name)
    recipe.save(folder / RECIPE_FILE)
    (folder / "README.md").write_text(render_card(recipe, sources, report.kind), encoding="utf-8")


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.cocktail-old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


__all__ = ["merge", "merge_tensor", "replace_models", "MergeResult", "ProgressUpdate", "compute_device",
           "RECIPE_FILE", "CocktailError"]
