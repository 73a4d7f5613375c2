"""Benchmark: weights from examples (issue #3), ours vs lm-cocktail's mix_models_with_data.

    bash bench/setup_reference.sh && .venv/bin/python bench/bench_weights.py

Three small fp32 Llama models (hidden 512, 4 layers, vocab 32000, 44M params; A trained a few
steps on the examples, B the untrained base, C the base plus noise) sharing one tokenizer with a
pad token, and five {"input", "output"} examples (bench/make_models.py).

* ours:       ``.venv/bin/python -m cocktail_core weights --models A B C --examples ex.jsonl --json``
              (scoring only: prints the weights).
* ours_e2e:   ours, then ``cocktail_core merge`` with those weights (what lm-cocktail's one call
              does: score + merge + save), timed as the sum of the two commands.
* lmcocktail: ``LM_Cocktail.mix_models_with_data(model_names_or_paths=[A, B, C],
              model_type='decoder', example_ata=examples, temperature=5.0, output_path=...)``
              in the reference venv (bench/ref_lmcocktail.py); it always merges and saves too,
              so its scoring phase (compute_weights) is timed separately as well.

Results: a table on stdout and ``bench/_work/results_weights.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import make_models  # noqa: E402
from bench_merge import MAIN_PY, REF_PY, machine_info, ours_available, versions  # noqa: E402
from measure import measure  # noqa: E402

WORK = HERE / "_work"
TEMPERATURE = 5.0


def parse_ours(stdout: str) -> dict:
    """Find the JSON document in the command's output (it may be preceded by log lines)."""
    start = stdout.find("{")
    while start != -1:
        try:
            return json.JSONDecoder().raw_decode(stdout[start:])[0]
        except json.JSONDecodeError:
            start = stdout.find("{", start + 1)
    raise ValueError("no JSON in output")


def extract_weights(doc: dict, n: int) -> list[float]:
    w = doc.get("weights")
    if isinstance(w, dict):
        w = list(w.values())
    if not (isinstance(w, list) and len(w) == n):
        raise ValueError(f"unexpected weights field: {w!r}")
    return [float(x) for x in w]


def rel_losses_from_weights(w: list[float], t: float) -> list[float]:
    """softmax(-loss/T) = w  =>  loss_i - loss_0 = -T (log w_i - log w_0)."""
    return [round(-t * (math.log(x) - math.log(w[0])), 4) for x in w]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="ours,ours_e2e,lmcocktail")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--max-rss", type=float, default=20.0)
    ap.add_argument("--idle-wait", type=float, default=120.0)
    ap.add_argument("--json", default=str(WORK / "results_weights.json"))
    a = ap.parse_args(argv)
    tools = [t.strip() for t in a.only.split(",") if t.strip()]

    models = make_models.write_small_models()
    examples = make_models.SMALL_DIR / "examples.jsonl"
    inputs = [str(f) for m in models for f in m.glob("*.safetensors")]
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    if why := ours_available("weights"):
        skipped["ours"] = skipped["ours_e2e"] = why
    if not REF_PY.exists():
        skipped["lmcocktail"] = "reference venv missing: run bash bench/setup_reference.sh"

    results: dict[str, dict] = {}
    for tool in tools:
        if tool in skipped:
            print(f"[bench] {tool}: skipped ({skipped[tool]})")
            results[tool] = {"skipped": skipped[tool]}
            continue
        runs = []
        for rep in range(a.repeat):
            log = WORK / "logs" / f"weights_{tool}_{rep}.log"
            if tool in ("ours", "ours_e2e"):
                cmd = [str(MAIN_PY), "-m", "cocktail_core", "weights", "--models", *map(str, models),
                       "--examples", str(examples), "--temperature", str(TEMPERATURE), "--json"]
                r = measure(cmd, max_rss_gib=a.max_rss, inputs=inputs, cwd=str(REPO), log_path=str(log),
                            label=f"{tool}#{rep + 1} (weights)", idle_wait_s=a.idle_wait)
                if r["ok"]:
                    doc = parse_ours(log.read_text(errors="replace"))
                    r["weights"] = extract_weights(doc, len(models))
                    r["losses"] = doc.get("losses")
                    r["scoring_wall_s"] = r["wall_s"]
                if tool == "ours_e2e" and r["ok"]:
                    out = WORK / "out_weights_ours"
                    mcmd = [str(MAIN_PY), "-m", "cocktail_core", "merge", "--models", *map(str, models),
                            "--weights", *[repr(x) for x in r["weights"]], "--out", str(out),
                            "--overwrite", "--quiet"]
                    m = measure(mcmd, max_rss_gib=a.max_rss, inputs=inputs, outputs=[out], cwd=str(REPO),
                                log_path=str(log.with_suffix(".merge.log")), label=f"{tool}#{rep + 1} (merge)",
                                idle_wait_s=a.idle_wait)
                    r = {**r, "scoring_wall_s": r["wall_s"], "merge_wall_s": m["wall_s"],
                         "wall_s": round(r["wall_s"] + m["wall_s"], 3),
                         "peak_rss_gib": max(r["peak_rss_gib"], m["peak_rss_gib"]),
                         "peak_anon_gib": max(r["peak_anon_gib"], m["peak_anon_gib"]),
                         "cpu_user_s": r["cpu_user_s"] + m["cpu_user_s"],
                         "cpu_sys_s": r["cpu_sys_s"] + m["cpu_sys_s"],
                         "other_cpu_s": r["other_cpu_s"] + m["other_cpu_s"],
                         "output_gib": m["output_gib"], "ok": m["ok"], "merge": m}
            else:
                out = WORK / "out_weights_lmcocktail"
                if out.exists():
                    shutil.rmtree(out)
                cmd = [str(REF_PY), str(HERE / "ref_lmcocktail.py"), "data", "--models", *map(str, models),
                       "--examples", str(examples), "--temperature", str(TEMPERATURE), "--out", str(out)]
                r = measure(cmd, max_rss_gib=a.max_rss, inputs=inputs, outputs=[out], cwd=str(REPO),
                            log_path=str(log), label=f"{tool}#{rep + 1}", idle_wait_s=a.idle_wait)
                for line in log.read_text(errors="replace").splitlines():
                    if line.startswith("LMC_RESULT "):
                        lmc = json.loads(line[len("LMC_RESULT "):])
                        r["lmcocktail"] = lmc
                        r["weights"] = lmc["weights"]
                        r["scoring_wall_s"] = lmc["phases_s"].get("scoring")
            if not r["ok"]:
                r["log_tail"] = log.read_text(errors="replace")[-1500:]
                print(f"[bench] {tool} failed; log tail:\n{r['log_tail']}")
            runs.append(r)
            if not r["ok"]:
                break
        ok = [r for r in runs if r["ok"]]
        best = dict(min(ok, key=lambda r: r["wall_s"]) if ok else runs[-1])
        best["wall_all_s"] = [r["wall_s"] for r in runs]
        results[tool] = best

    # ------------------------------------------------------------------ report
    ours = results.get("ours", {})
    hdr = ("tool", "status", "wall s", "median s", "scoring s", "peak RSS GiB", "anon GiB", "cpu s", "other cpu s",
           "wall/ours", "RSS/ours")
    rows = []
    for tool in tools:
        r = results[tool]
        if "skipped" in r:
            rows.append((tool, "skipped") + ("-",) * (len(hdr) - 2))
            continue
        st = "ok" if r["ok"] else (r.get("killed") or f"exit {r.get('returncode')}")
        wr = rr = "-"
        if ours.get("ok") and r["ok"]:
            wr = f"{r['wall_s'] / ours['wall_s']:.2f}x"
            rr = f"{r['peak_rss_gib'] / ours['peak_rss_gib']:.1f}x"
        sc = r.get("scoring_wall_s")
        rows.append((tool, st, f"{r['wall_s']:.1f}", f"{statistics.median(r['wall_all_s']):.1f}", "-" if sc is None else f"{sc:.1f}",
                     f"{r['peak_rss_gib']:.2f}", f"{r['peak_anon_gib']:.2f}",
                     f"{r['cpu_user_s'] + r['cpu_sys_s']:.1f}", f"{r['other_cpu_s']:.1f}", wr, rr))
    widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    print(f"\nWeights from 5 examples, 3 x 44M-param fp32 Llama (hidden 512, 4 layers), "
          f"temperature {TEMPERATURE}; best of {a.repeat}")
    print(line(hdr))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    lmc = results.get("lmcocktail", {}).get("lmcocktail")
    if lmc:
        print(f"lm-cocktail phases (s): {lmc['phases_s']} (scoring = compute_weights; the rest loads "
              f"all models, merges and saves)")

    print("\nWeights side by side (model: ours | lm-cocktail), and losses relative to model A "
          "(from the weights: -T log(w_i / w_A)):")
    names = [m.name for m in models]
    wo = results.get("ours", {}).get("weights") or results.get("ours_e2e", {}).get("weights")
    wl = results.get("lmcocktail", {}).get("weights")
    for i, n in enumerate(names):
        a_ = f"{wo[i]:.6f}" if wo else "-"
        b_ = f"{wl[i]:.6f}" if wl else "-"
        print(f"  {n}: {a_} | {b_}")
    comparison = {}
    if wo and wl:
        comparison = {"max_abs_weight_diff": max(abs(x - y) for x, y in zip(wo, wl)),
                      "rel_losses_ours": rel_losses_from_weights(wo, TEMPERATURE),
                      "rel_losses_lmcocktail": rel_losses_from_weights(wl, TEMPERATURE),
                      "same_ranking": sorted(range(len(wo)), key=lambda i: -wo[i])
                      == sorted(range(len(wl)), key=lambda i: -wl[i])}
        print(f"  max |weight diff| {comparison['max_abs_weight_diff']:.4f}; same ranking: "
              f"{comparison['same_ranking']}")
        print(f"  relative losses ours {comparison['rel_losses_ours']} | lm-cocktail "
              f"{comparison['rel_losses_lmcocktail']}")
    if ours.get("losses"):
        print(f"  ours absolute mean losses: {[round(x, 4) for x in ours['losses']]}")

    doc = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(), "versions": versions(),
           "models": [str(m) for m in models], "examples": make_models.EXAMPLES, "temperature": TEMPERATURE,
           "results": results, "comparison": comparison}
    Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
