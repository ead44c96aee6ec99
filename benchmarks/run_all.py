"""Run every goal's benchmark (``--quick`` for CI sizes) and print a markdown table.

Each benchmark runs in its own process (as it would on its own) and writes
``benchmark-output/<name>[-quick].json``; this script collects them into
``benchmark-output/results.json`` and prints the table that the README's
"Performance" section shows.

Usage: ``python benchmarks/run_all.py [--quick] [--only cnn1d_infer,bandpass_scores,...]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

BENCHMARKS = {
    "cnn1d_infer": ("bench_cnn1d_infer.py", "1. 1D CNN inference (CPU)"),
    "cnn1d_train": ("bench_cnn1d_train.py", "2. 1D CNN training (CPU)"),
    "bandpass_scores": ("bench_bandpass_scores.py", "3. band-pass + score maps, paper size"),
    "cnn3d_fast": ("bench_cnn3d_fast.py", "4. 3D network fast mode, 64x64 ROI"),
    "flow": ("bench_flow.py", "7. motion: displacement, speed at 256x256 vs mps_motion, beats"),
    "demo": ("bench_demo.py", "6. make demo"),
    "denoise": ("bench_denoise.py", "8. denoising at 20 photons/px: PSNR vs N2V at equal training time"),
    "interpolate": ("bench_interpolate.py", "10. frame interpolation x2, CAFI protocol on the real recordings: learned "
                                            "vs linear (and flow), downstream, cost"),
    "cells": ("bench_cells.py", "11. cell finding: candidates recall, 3CNet vs suite2p-feature baseline, labels needed, "
                                "cost"),
}


def fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def table(results: list[dict]) -> str:
    rows = ["| goal | ours | baseline | ratio | met | machine load (1 min) |", "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['title']} | failed: {r['error'][:60]} | | | | |")
            continue
        met = "n/a" if r.get("goal_met") is None else ("yes" if r["goal_met"] else "**no**")
        load = (r.get("state_before") or {}).get("load_avg_1_5_15", ["?"])[0]
        rows.append(f"| {r['title']} | {fmt(r['ours'])} {r['unit']} | {fmt(r['baseline'])} {r['unit']} "
                    f"({r['baseline_label']}) | {r['ratio_label']} {fmt(r['ratio'])} | {met} | {load} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated benchmark names to run; the others' latest "
                    "results are kept in the table")
    args = ap.parse_args(argv)
    chosen = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    results = []
    for name in BENCHMARKS:
        script, title = BENCHMARKS[name]
        if name not in chosen:  # keep the latest result of a benchmark not re-run now
            path = C.OUT_DIR / f"{name}{'-quick' if args.quick else ''}.json"
            if path.exists():
                res = json.loads(path.read_text())
                res["title"] = title + f" (result of {res.get('when', '?')})"
                results.append(res)
            continue
        cmd = [sys.executable, str(HERE / script)] + (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        path = C.OUT_DIR / f"{name}{'-quick' if args.quick else ''}.json"
        if proc.returncode != 0 or not path.exists():
            results.append({"name": name, "title": title, "error": (proc.stderr or proc.stdout).strip()[-300:]})
            continue
        res = json.loads(path.read_text())
        res["title"] = title
        res["bench_wall_s"] = time.perf_counter() - t0
        results.append(res)
    md = table(results)
    info = C.machine_info()
    print()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, {info['mem_total_gib']} GiB; "
          f"torch {info['versions'].get('torch')}, numba {info['versions'].get('numba')}")
    print(md)
    C.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (C.OUT_DIR / "results.json").write_text(json.dumps({"quick": args.quick, "machine": info, "table_markdown": md,
                                                         "results": results}, indent=1, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
