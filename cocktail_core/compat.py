"""Preflight compatibility checks: everything that would make a merge fail or be wrong, found before any weight is read.

Only ``config.json``, the safetensors headers (local, or from the Hub's metadata endpoints) and the
tiny integer buffers of local models are read. Every problem is collected, so the user fixes them
all in one go instead of meeting them one download at a time.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cocktail_core import methods, settings
from cocktail_core.errors import CocktailError, PreflightError
from cocktail_core.io.header import DTYPES
from cocktail_core.io.reader import TensorReader
from cocktail_core.io.sources import ModelSource, detect_kind, inspect
from cocktail_core.recipe import Recipe
from cocktail_core.units import human_bytes, human_count

_DTYPE_CODE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
_MAX_LISTED = 8


@dataclass
class PreflightReport:
    """What the preflight found.

    Attributes:
        recipe: the recipe checked.
        sources: metadata of each model that could be read (None where it could not).
        kind: the model kind (the recipe's, else detected).
        problems: reasons the merge would fail or be wrong; empty when it can go ahead.
        warnings: things worth knowing that do not block the merge.
        output_bytes: size of the merged weights.
        download_bytes: bytes to fetch from the Hub for all inputs.
    """

    recipe: Recipe
    sources: list[ModelSource | None]
    kind: str | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    output_bytes: int = 0
    download_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`PreflightError` listing every problem, if there are any."""
        if self.problems:
            raise PreflightError(self.problems, hint="Fix these and run the preflight again.")

    def rows(self) -> list[dict[str, Any]]:
        """One row per model for tables (CLI and UI)."""
        rows = []
        for entry, src in zip(self.recipe.models, self.sources):
            if src is None:
                rows.append({"model": str(entry.model), "weight": entry.weight, "architecture": "unreadable",
                             "parameters": "", "dtype": "", "download": ""})
                continue
            rows.append({
                "model": str(entry.model), "weight": entry.weight, "architecture": src.architecture,
                "parameters": human_count(src.num_parameters), "dtype": str(DTYPES.get(src.dtype, src.dtype)).replace("torch.", ""),
                "download": human_bytes(src.download_bytes) if not src.is_local else "local",
            })
        return rows

    def render(self) -> str:
        """A plain-text report: the models table, then problems and warnings."""
        rows = self.rows()
        cols = ["model", "weight", "architecture", "parameters", "dtype", "download"]
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
        lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
        lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
        lines.append("")
        lines.append(f"kind: {self.kind or 'unknown'}   method: {self.recipe.method}   "
                     f"output: {human_bytes(self.output_bytes)}   download: {human_bytes(self.download_bytes)}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  - {p}" for p in self.problems]
        else:
            lines.append("OK: these models can be merged.")
        return "\n".join(lines)


def output_dtype_code(recipe: Recipe, ref_meta_dtype: str) -> str:
    """The safetensors dtype of a float output tensor (``auto`` keeps the reference tensor's)."""
    return ref_meta_dtype if recipe.dtype == "auto" else _DTYPE_CODE[recipe.dtype]


def reference_index(recipe: Recipe) -> int:
    """Index of the model whose layout, config and int buffers define the output: the base, else the first."""
    if recipe.base is not None:
        return recipe.refs.index(recipe.base)
    return 0


def preflight(
    recipe: Recipe,
    *,
    output_dir: str | Path | None = None,
    token: str | None = None,
    sources: list[ModelSource] | None = None,
) -> PreflightReport:
    """Check that ``recipe`` can be merged, reading only configs and safetensors headers.

    Args:
        recipe: the merge recipe.
        output_dir: where the output will go; its filesystem's free space is checked.
        token: Hub token for private or gated inputs.
        sources: already inspected sources (same order as the recipe), to avoid re-reading.

    Returns:
        A :class:`PreflightReport`; call ``raise_for_problems()`` to stop on problems.

    Example:
        >>> report = preflight(Recipe.from_lists(["./a", "./b"], [0.5, 0.5]))
        >>> print(report.render())
    """
    problems: list[str] = []
    warnings: list[str] = []
    cfg = settings.get()
    if len(recipe.models) > cfg.max_models:
        problems.append(f"{len(recipe.models)} models given; this installation allows at most {cfg.max_models}")

    found: list[ModelSource | None] = []
    if sources is None:
        for ref in recipe.refs:
            try:
                found.append(inspect(ref, token=token))
            except CocktailError as exc:
                found.append(None)
                problems.append(str(exc))
    else:
        found = list(sources)

    method = methods.get(recipe.method)
    problems += method.check_weights(recipe.weights, recipe.params)
    if method.needs_base and len(recipe.models) < method.min_models:
        problems.append(f"method '{method.name}' needs the base plus at least {method.min_models - 1} other models")
    if method.max_models is not None and len(recipe.models) > method.max_models:
        problems.append(f"method '{method.name}' merges exactly {method.max_models} models (the base and one other); "
                        f"got {len(recipe.models)}")

    report = PreflightReport(recipe=recipe, sources=found, kind=recipe.kind, problems=problems, warnings=warnings)
    ok_sources = [(e, s) for e, s in zip(recipe.models, found) if s is not None]
    if len(ok_sources) == len(found) and found:
        _compare(recipe, found, report)
    report.download_bytes = sum(s.download_bytes for _, s in ok_sources if not s.is_local)
    total_bytes = sum(s.weights_bytes for _, s in ok_sources)
    if cfg.max_total_gb and total_bytes > cfg.max_total_gb * 10**9:
        problems.append(f"the inputs total {human_bytes(total_bytes)}; "
                        f"this installation allows {cfg.max_total_gb} GB")
    if output_dir is not None and report.output_bytes:
        _check_disk(Path(output_dir), report)
    return report


def _compare(recipe: Recipe, sources: list[ModelSource], report: PreflightReport) -> None:
    problems, warnings = report.problems, report.warnings
    ri = reference_index(recipe)
    ref = sources[ri]
    name = [str(e.model) for e in recipe.models]

    archs = {s.architecture for s in sources}
    if len(archs) > 1:
        listing = ", ".join(f"{n}: {s.architecture}" for n, s in zip(name, sources))
        problems.append(f"the models have different architectures ({listing}); merge models of one architecture")
    detected = {detect_kind(s.config) for s in sources}
    report.kind = recipe.kind or (detected.pop() if len(detected) == 1 else detect_kind(ref.config))

    vocab = {n: s.config.get("vocab_size") for n, s in zip(name, sources) if s.config.get("vocab_size") is not None}
    if len(set(vocab.values())) > 1:
        problems.append("vocabulary sizes differ (" + ", ".join(f"{n}: {v}" for n, v in vocab.items()) +
                        "); embeddings of different vocabularies cannot be averaged")
    tied = {n: _is_tied(s) for n, s in zip(name, sources)}
    if len(set(tied.values())) > 1:
        problems.append("some models tie the input and output embeddings and some do not (" +
                        ", ".join(f"{n}: {'tied' if t else 'untied'}" for n, t in tied.items()) + ")")

    ref_names = set(ref.tensors)
    for n, s in zip(name, sources):
        if s is ref:
            continue
        missing = sorted(ref_names - set(s.tensors))
        extra = sorted(set(s.tensors) - ref_names)
        if missing:
            problems.append(f"{n} lacks {len(missing)} tensor(s) that {name[ri]} has: {_listing(missing)}")
        if extra:
            problems.append(f"{n} has {len(extra)} tensor(s) that {name[ri]} lacks: {_listing(extra)}")
        shape_bad = [t for t in sorted(ref_names & set(s.tensors)) if ref.tensors[t].shape != s.tensors[t].shape]
        for t in shape_bad[:_MAX_LISTED]:
            problems.append(f"tensor {t} has shape {list(ref.tensors[t].shape)} in {name[ri]} "
                            f"but {list(s.tensors[t].shape)} in {n}")
        if len(shape_bad) > _MAX_LISTED:
            problems.append(f"... and {len(shape_bad) - _MAX_LISTED} more tensors with mismatched shapes in {n}")
        kind_bad = [t for t in sorted(ref_names & set(s.tensors)) if ref.tensors[t].is_float != s.tensors[t].is_float]
        if kind_bad:
            problems.append(f"{n} stores {_listing(kind_bad)} as a different kind (integer vs float) than {name[ri]}")

    dtypes = {s.dtype for s in sources}
    if len(dtypes) > 1:
        warnings.append("the inputs have different dtypes (" + ", ".join(f"{n}: {s.dtype}" for n, s in zip(name, sources))
                        + "); they are merged in float32" + ("" if recipe.dtype != "auto" else f" and written as {ref.dtype}"))
    _check_int_buffers(name, sources, ri, problems)

    report.output_bytes = sum(
        (math.prod(m.shape) * DTYPES[output_dtype_code(recipe, m.dtype)].itemsize) if m.is_float else m.nbytes
        for m in ref.tensors.values()
    )


def _is_tied(source: ModelSource) -> bool:
    explicit = source.config.get("tie_word_embeddings")
    if explicit is not None:
        return bool(explicit)
    return not any(n.endswith("lm_head.weight") for n in source.tensors)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _check_int_buffers(names: list[str], sources: list[ModelSource], ri: int, problems: list[str]) -> None:
    """Integer buffers (position ids, token type ids...) must be equal: they cannot be averaged."""
    ref = sources[ri]
    int_names = [t for t, m in ref.tensors.items() if not m.is_float and m.nbytes <= 16 * 2**20]
    if not int_names or ref.folder is None:
        return
    with TensorReader(ref.folder, ref.tensors) as ref_reader:
        ref_values = {t: ref_reader.read(t) for t in int_names}
    for n, s in zip(names, sources):
        if s is ref or s.folder is None:
            continue
        with TensorReader(s.folder, s.tensors) as reader:
            for t in int_names:
                meta = s.tensors.get(t)
                if meta is None or meta.shape != ref.tensors[t].shape or meta.is_float:
                    continue
                if not torch.equal(reader.read(t), ref_values[t]):
                    problems.append(f"integer buffer {t} differs between {names[ri]} and {n}; integer buffers "
                                    "cannot be averaged (the output would silently take one of them)")


def _check_disk(output_dir: Path, report: PreflightReport) -> None:
    probe = output_dir.expanduser().resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = report.output_bytes + sum(
        s.download_bytes for s in report.sources if s is not None and not s.is_local and s.folder is None)
    if need > free:
        report.problems.append(f"not enough free disk at {probe}: the merge needs {human_bytes(need)} "
                               f"but only {human_bytes(free)} is free; free space or choose another --out")


__all__ = ["PreflightReport", "preflight", "human_bytes", "human_count", "reference_index", "output_dtype_code"]
