"""Benchmark: linear merge of three ~0.84B bf16 Llama models, ours vs mergekit vs lm-cocktail.

    bash bench/setup_reference.sh && .venv/bin/python bench/bench_merge.py

Options: ``--only floor,floor_rw,ours,mergekit,lmcocktail,lmcocktail_fp32`` (any subset),
``--repeat N`` (the run with the best wall time is shown; ``peak_rss_max_gib`` in the JSON is
the max over runs), ``--cache warm|cold``, ``--max-rss GIB`` (watchdog, default 20),
``--idle-wait S`` (wait up to S s for other people's jobs to leave the CPUs idle; default 120).

Tools, all on the same three models with weights 0.5 / 0.3 / 0.2 and bf16 output:

* floor:    read every input safetensors byte once (16 MB sequential reads): no tool can be
            faster than reading its inputs.
* floor_rw: the floor plus writing one model's worth of bytes (copy of model 1's shards).
* ours:     ``.venv/bin/python -m cocktail_core merge --models M1 M2 M3 --weights 0.5 0.3 0.2
            --dtype bfloat16 --out bench/_work/out_ours --overwrite``
* mergekit: ``bench/.venv-ref/bin/mergekit-yaml cfg.yml OUT`` with ``merge_method: linear``,
            ``dtype: bfloat16``, default options (CPU, no lazy unpickle needed for safetensors,
            tokenizer copied, model card written, single writer thread).
* lmcocktail: ``LM_Cocktail.mix_models(..., model_type='decoder', weights=[0.5, 0.3, 0.2],
            output_path=...)`` in the reference venv (bench/ref_lmcocktail.py). With
            transformers 5 it loads (and so merges and saves) in the checkpoint's dtype, bf16.
* lmcocktail_fp32: the same with every model loaded in fp32, which is what lm-cocktail did with
            transformers 4.x (its default dtype was float32); output saved in fp32.

Results: a table on stdout and ``bench/_work/results_merge.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import make_models  # noqa: E402
from measure import GIB, measure  # noqa: E402

WORK = HERE / "_work"
MAIN_PY = REPO / ".venv" / "bin" / "python"
REF_PY = HERE / ".venv-ref" / "bin" / "python"
MERGEKIT = HERE / ".venv-ref" / "bin" / "mergekit-yaml"
WEIGHTS = [0.5, 0.3, 0.2]
ALL_TOOLS = ["floor", "floor_rw", "ours", "mergekit", "lmcocktail", "lmcocktail_fp32"]

FLOOR_SCRIPT = r"""
import sys, os, shutil
sys.path.insert(0, sys.argv[1])
from measure import read_fully
mode, out = sys.argv[2], sys.argv[3]
files = sys.argv[4:]
n = read_fully(files)
if mode == "rw":
    os.makedirs(out, exist_ok=True)
    first = os.path.dirname(files[0])
    for f in files:
        if os.path.dirname(f) == first:
            shutil.copyfile(f, os.path.join(out, os.path.basename(f)))
print(n)
"""


def ours_available(command: str = "merge") -> str | None:
    """Why our CLI's ``command`` cannot run, or None when it can."""
    if not (REPO / "cocktail_core" / "__main__.py").exists():
        return "cocktail_core/__main__.py missing"
    r = subprocess.run([str(MAIN_PY), "-m", "cocktail_core", command, "--help"], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"`python -m cocktail_core {command} --help` failed: {r.stderr.strip()[-300:]}"
    return None


def ref_available() -> str | None:
    if not REF_PY.exists() or not MERGEKIT.exists():
        return "reference venv missing: run bash bench/setup_reference.sh"
    return None


def safetensors_files(d: Path) -> list[Path]:
    return sorted(d.glob("*.safetensors"))


def write_mergekit_config(models: list[Path], path: Path) -> Path:
    lines = ["merge_method: linear", "dtype: bfloat16", "models:"]
    for m, w in zip(models, WEIGHTS):
        lines += [f"  - model: {m}", "    parameters:", f"      weight: {w}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def tool_command(tool: str, models: list[Path], out: Path) -> list[str]:
    files = [str(f) for m in models for f in safetensors_files(m)]
    if tool in ("floor", "floor_rw"):
        return [str(MAIN_PY), "-c", FLOOR_SCRIPT, str(HERE), "rw" if tool == "floor_rw" else "r",
                str(out), *files]
    if tool == "ours":
        return [str(MAIN_PY), "-m", "cocktail_core", "merge", "--models", *map(str, models),
                "--weights", *map(str, WEIGHTS), "--dtype", "bfloat16", "--out", str(out),
                "--overwrite", "--quiet"]
    if tool == "mergekit":
        cfg = write_mergekit_config(models, WORK / "mergekit_linear.yml")
        return [str(MERGEKIT), str(cfg), str(out), "--quiet"]
    if tool in ("lmcocktail", "lmcocktail_fp32"):
        extra = ["--load-dtype", "float32"] if tool == "lmcocktail_fp32" else []
        return [str(REF_PY), str(HERE / "ref_lmcocktail.py"), "mix", "--models", *map(str, models),
                "--weights", *map(str, WEIGHTS), "--out", str(out), *extra]
    raise ValueError(tool)


# ---------------------------------------------------------------------------------------------
# comparing outputs


def tensor_index(d: Path) -> dict[str, Path]:
    from safetensors import safe_open

    out: dict[str, Path] = {}
    for f in safetensors_files(d):
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():
                out[k] = f
    return out


MAG_FLOOR = 2.0 ** -16  # below this (cancellation to ~0) ulps are counted at this magnitude


def _ulps(a, b):
    """|a - b| in bf16 ulps of max(|a|, |b|) (magnitude floored at MAG_FLOOR), as fp64."""
    import torch

    a64, b64 = a.double(), b.double()
    mag = torch.maximum(a64.abs(), b64.abs()).clamp_min(MAG_FLOOR)
    exp = torch.frexp(mag)[1]  # mag = m * 2**exp, m in [0.5, 1)
    ulp = torch.ldexp(torch.ones_like(mag), exp - 8)  # bf16: 8 significant bits
    return (a64 - b64).abs() / ulp


def compare_dirs(a: Path, b: Path, models: list[Path] | None = None, exact_check: int = 6) -> dict:
    """Tensor-wise comparison of two output folders (bf16 expected).

    Reports max abs diff, elements differing, and the max distance in bf16 ulps of the values'
    own magnitude (floored at 2**-16 so that sums cancelling to ~0 do not read as huge ulp
    counts). For a few tensors also each side against the exact weighted sum (computed in
    float64, rounded once to bf16): fraction bit-identical and max ulps off.
    """
    import torch
    from safetensors import safe_open

    ia, ib = tensor_index(a), tensor_index(b)
    res: dict = {"a": str(a), "b": str(b), "keys_only_in_a": sorted(set(ia) - set(ib))[:10],
                 "keys_only_in_b": sorted(set(ib) - set(ia))[:10]}
    common = sorted(set(ia) & set(ib))
    max_abs = 0.0
    max_ulp = 0.0
    n_diff = n_total = 0
    tensors_diff = 0
    dtypes = set()
    shape_mismatch = []
    src_idx = [tensor_index(m) for m in models] if models else None
    exact: list[dict] = []
    pick = set(common[:: max(1, len(common) // exact_check)][:exact_check]) if models else set()
    for k in common:
        with safe_open(str(ia[k]), "pt") as fa, safe_open(str(ib[k]), "pt") as fb:
            ta, tb = fa.get_tensor(k), fb.get_tensor(k)
        dtypes.add((str(ta.dtype), str(tb.dtype)))
        if ta.shape != tb.shape:
            shape_mismatch.append(k)
            continue
        d = (ta.float() - tb.float()).abs()
        n_total += d.numel()
        nd = int((d > 0).sum())
        n_diff += nd
        tensors_diff += nd > 0
        max_abs = max(max_abs, float(d.max()))
        del d
        if nd:
            max_ulp = max(max_ulp, float(_ulps(ta, tb).max()))
        if k in pick:
            acc = None
            for w, idx in zip(WEIGHTS, src_idx):
                with safe_open(str(idx[k]), "pt") as fs:
                    t = fs.get_tensor(k).double().mul_(w)
                acc = t if acc is None else acc.add_(t)
            ref = acc.to(torch.bfloat16)  # one rounding of the exact (fp64) sum
            row = {"tensor": k}
            for side, t in (("a", ta), ("b", tb)):
                row[f"{side}_frac_equal_exact"] = round(float((t == ref).double().mean()), 6)
                row[f"{side}_max_ulp_vs_exact"] = round(float(_ulps(t, ref).max()), 3)
                row[f"{side}_mean_abs_err"] = float((t.double() - acc).abs().mean())
            exact.append(row)
            del acc, ref
        del ta, tb
    res.update({
        "tensors_compared": len(common),
        "tensors_differing": tensors_diff,
        "shape_mismatch": shape_mismatch[:10],
        "dtypes": sorted(f"{x}/{y}" for x, y in dtypes),
        "max_abs_diff": max_abs,
        "max_bf16_ulp_diff": max_ulp,
        "elements_differing": n_diff,
        "elements_total": n_total,
        "frac_bit_identical": round(1 - n_diff / max(1, n_total), 6),
        "vs_exact_sum": exact,
    })
    return res


# ---------------------------------------------------------------------------------------------


def machine_info() -> dict:
    import psutil

    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "disk_free_gib": round(shutil.disk_usage(WORK).free / GIB, 1)}


def versions() -> dict:
    out = {}
    for name, py, pkgs in (("main", MAIN_PY, ["torch", "transformers", "safetensors"]),
                           ("ref", REF_PY, ["torch", "transformers", "safetensors", "mergekit",
                                            "lm-cocktail", "sentence-transformers"])):
        if not Path(py).exists():
            continue
        r = subprocess.run([str(py), "-c",
                            "import importlib.metadata as m, json, sys; "
                            "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))", *pkgs],
                           capture_output=True, text=True)
        out[name] = json.loads(r.stdout) if r.returncode == 0 else r.stderr[-200:]
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    out["cocktail_git"] = r.stdout.strip()
    r = subprocess.run(["git", "status", "--porcelain", "cocktail_core"], cwd=REPO, capture_output=True, text=True)
    out["cocktail_core_uncommitted_changes"] = [l for l in r.stdout.splitlines() if l.strip()]
    import hashlib

    h = hashlib.sha256()
    for f in sorted((REPO / "cocktail_core").rglob("*.py")):
        h.update(str(f.relative_to(REPO)).encode())
        h.update(f.read_bytes())
    out["cocktail_core_sha256"] = h.hexdigest()[:16]
    return out


def fmt_gib(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(ALL_TOOLS), help="comma list of " + ",".join(ALL_TOOLS))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cache", choices=["warm", "cold"], default="warm")
    ap.add_argument("--max-rss", type=float, default=20.0, help="GiB: kill a tool above this")
    ap.add_argument("--idle-wait", type=float, default=120.0,
                    help="before each run wait up to S s for the CPUs to be idle (others' jobs)")
    ap.add_argument("--keep-outputs", action="store_true", help="keep lm-cocktail/floor outputs")
    ap.add_argument("--json", default=str(WORK / "results_merge.json"))
    ap.add_argument("--update", action="store_true",
                    help="keep the other tools' results already in --json; replace only those run now")
    a = ap.parse_args(argv)
    tools = [t.strip() for t in a.only.split(",") if t.strip()]
    for t in tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t}")

    WORK.mkdir(parents=True, exist_ok=True)
    models = make_models.write_big_models()
    inputs = [str(f) for m in models for f in safetensors_files(m)]
    (WORK / "logs").mkdir(exist_ok=True)

    unavailable: dict[str, str] = {}
    if "ours" in tools and (why := ours_available()):
        unavailable["ours"] = why
    for t in ("mergekit", "lmcocktail", "lmcocktail_fp32"):
        if t in tools and (why := ref_available()):
            unavailable[t] = why

    results: dict[str, dict] = {}
    for tool in tools:
        if tool in unavailable:
            print(f"[bench] {tool}: skipped ({unavailable[tool]})")
            results[tool] = {"skipped": unavailable[tool]}
            continue
        out = WORK / f"out_{tool}"
        runs = []
        for rep in range(a.repeat):
            if out.exists():
                shutil.rmtree(out)
            cmd = tool_command(tool, models, out)
            r = measure(cmd, max_rss_gib=a.max_rss, inputs=inputs, outputs=[out], cache=a.cache,
                        cwd=str(REPO), log_path=str(WORK / "logs" / f"merge_{tool}_{rep}.log"),
                        label=f"{tool}#{rep + 1}", idle_wait_s=a.idle_wait)
            if tool.startswith("lmcocktail"):
                log = Path(r["log"]).read_text(errors="replace")
                for line in log.splitlines():
                    if line.startswith("LMC_RESULT "):
                        r["lmcocktail"] = json.loads(line[len("LMC_RESULT "):])
            if not r["ok"]:
                tail = Path(r["log"]).read_text(errors="replace")[-1500:]
                r["log_tail"] = tail
                print(f"[bench] {tool} failed; log tail:\n{tail}")
            runs.append(r)
            if not r["ok"]:
                break
        ok_runs = [r for r in runs if r["ok"]]
        best = min(ok_runs, key=lambda r: r["wall_s"]) if ok_runs else runs[-1]
        summary = dict(best)
        summary["wall_all_s"] = [r["wall_s"] for r in runs]
        summary["peak_rss_max_gib"] = max(r["peak_rss_gib"] for r in runs)
        results[tool] = summary

    # ------------------------------------------------------------------ verification
    checks: dict[str, dict] = {}
    pairs = [("ours", "mergekit"), ("ours", "lmcocktail"), ("ours", "lmcocktail_fp32")]
    for x, y in pairs:
        if results.get(x, {}).get("ok") and results.get(y, {}).get("ok"):
            print(f"[bench] comparing {x} vs {y} tensor-wise ...", flush=True)
            checks[f"{x}_vs_{y}"] = compare_dirs(WORK / f"out_{x}", WORK / f"out_{y}", models)
    if not a.keep_outputs:
        for t in ("floor_rw", "lmcocktail", "lmcocktail_fp32"):
            if (WORK / f"out_{t}").exists():
                shutil.rmtree(WORK / f"out_{t}")

    # ------------------------------------------------------------------ table
    ours = results.get("ours", {})
    rows = []
    hdr = ("tool", "status", "wall s", "median s", "peak RSS GiB", "anon GiB", "rchar GiB", "disk rd GiB",
           "wchar GiB", "in GiB", "out GiB", "cpu s", "other cpu s", "wall/ours", "RSS/ours")
    for tool in tools:
        r = results[tool]
        if "skipped" in r:
            rows.append((tool, "skipped") + ("-",) * (len(hdr) - 2))
            continue
        status = "ok" if r["ok"] else (r["killed"] or f"exit {r['returncode']}")
        wr = rr = "-"
        if ours.get("ok") and r["ok"]:
            wr = f"{r['wall_s'] / ours['wall_s']:.2f}x"
            rr = f"{r['peak_rss_gib'] / ours['peak_rss_gib']:.1f}x" if ours["peak_rss_gib"] else "-"
        rows.append((tool, status, f"{r['wall_s']:.1f}", f"{statistics.median(r['wall_all_s']):.1f}", f"{r['peak_rss_gib']:.2f}",
                     f"{r['peak_anon_gib']:.2f}", fmt_gib(r["rchar_gib"]), fmt_gib(r["read_bytes_gib"]),
                     fmt_gib(r["wchar_gib"]), fmt_gib(r["input_gib"]), fmt_gib(r["output_gib"]),
                     f"{r['cpu_user_s'] + r['cpu_sys_s']:.1f}", f"{r['other_cpu_s']:.1f}", wr, rr))
    widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    print()
    in_gib = sum(Path(f).stat().st_size for f in inputs) / GIB
    print(f"Linear merge of 3 x {make_models.BIG_CONFIG['num_hidden_layers']}-layer Llama "
          f"(0.84B params, bf16, {in_gib:.2f} GiB of inputs); "
          f"weights {WEIGHTS}; page cache: {a.cache}; best of {a.repeat}")
    print(line(hdr))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    for t in ("lmcocktail", "lmcocktail_fp32"):
        lmc = results.get(t, {}).get("lmcocktail")
        if lmc:
            print(f"{t} phases (s): {lmc['phases_s']}, merged model dtype {lmc['model_dtype']}")

    for name, c in checks.items():
        print(f"\n{name}: {c['tensors_compared']} tensors, {c['tensors_differing']} differ; "
              f"max |diff| {c['max_abs_diff']:.3g}; max {c['max_bf16_ulp_diff']:.2f} bf16 ulp; "
              f"{c['elements_differing']}/{c['elements_total']} elements differ "
              f"({100 * (1 - c['frac_bit_identical']):.3f}%); dtypes {c['dtypes']}")
        if c["keys_only_in_a"] or c["keys_only_in_b"] or c["shape_mismatch"]:
            print(f"  keys only in a: {c['keys_only_in_a']}; only in b: {c['keys_only_in_b']}; "
                  f"shape mismatch: {c['shape_mismatch']}")
        for row in c["vs_exact_sum"]:
            print(f"  {row}")

    goals = {}
    mk = results.get("mergekit", {})
    if ours.get("ok"):
        goals["ours_peak_rss_lt_1GiB"] = {"value_gib": ours["peak_rss_gib"], "met": ours["peak_rss_gib"] < 1.0}
        if mk.get("ok"):
            ratio = ours["wall_s"] / mk["wall_s"]
            med = statistics.median(ours["wall_all_s"]) / statistics.median(mk["wall_all_s"])
            cpu = (ours["cpu_user_s"] + ours["cpu_sys_s"]) / (mk["cpu_user_s"] + mk["cpu_sys_s"])
            goals["ours_wall_le_half_mergekit"] = {"ratio": round(ratio, 3), "met": ratio <= 0.5,
                                                   "ratio_of_medians": round(med, 3),
                                                   "cpu_time_ratio": round(cpu, 3)}
        c = checks.get("ours_vs_mergekit")
        if c:
            goals["ours_equals_mergekit_within_1ulp"] = {"max_ulp": c["max_bf16_ulp_diff"],
                                                         "met": c["max_bf16_ulp_diff"] <= 1 and not c["shape_mismatch"]
                                                         and not c["keys_only_in_a"] and not c["keys_only_in_b"]}
    print("\nGoals:")
    if not goals:
        print("  (ours not measured)")
    for k, v in goals.items():
        print(f"  {k}: {'MET' if v['met'] else 'NOT MET'} {v}")

    when = time.strftime("%Y-%m-%d %H:%M:%S")
    for r in results.values():
        r.setdefault("measured_at", when)
    doc = {"when": when, "machine": machine_info(), "versions": versions(),
           "models": [str(m) for m in models], "weights": WEIGHTS, "cache": a.cache, "repeat": a.repeat,
           "results": results, "checks": checks, "goals": goals}
    if a.update and Path(a.json).exists():
        old = json.loads(Path(a.json).read_text())
        for key in ("results", "checks", "goals"):
            merged = dict(old.get(key, {}))
            merged.update(doc[key])
            doc[key] = merged
        doc["tool_order"] = list(doc["results"])
    Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
