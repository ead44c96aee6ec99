"""Goal 6: ``make demo`` - every method on the default sample, and the motion tool - against its 3-minute budget.

Times exactly the three commands of ``make demo`` (each in its own process, as ``make``
runs them): ``micromotion simulate <data> --frames 4000 --size 128 --seed 0 --overwrite``,
``micromotion analyze <data>/transmission.tif --fluorescence <data>/fluorescence.tif
--rois <data>/rois.json --methods bandpass,matched,cnn1d,cnn3d,flow --out <out>
--overwrite`` and ``micromotion motion <data>/transmission.tif --rois <data>/rois.json
--out <out>/motion --overwrite``, with the data and results under ``benchmark-output/demo``
(never the repository's ``demo-data``).  Prints the per-stage breakdown from
``run.json``'s ``timings_s``.  ``--quick``: a small recording and the band-pass only.

Usage: ``python benchmarks/bench_demo.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

BUDGET_S = 180.0


def cli() -> list[str]:
    exe = Path(sys.executable).with_name("micromotion")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from napari_micromotion.cli import main; main()"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small recording, band-pass only (CI smoke test)")
    args = ap.parse_args(argv)
    state = C.machine_state()
    base = C.OUT_DIR / ("demo-quick" if args.quick else "demo")
    data, out = base / "demo-data", base / "demo-output"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    sim_args = ["--frames", "400" if args.quick else "4000", "--size", "48" if args.quick else "128", "--seed", "0"]
    methods = "bandpass" if args.quick else "bandpass,matched,cnn1d,cnn3d,flow"
    cmds = {
        "simulate": cli() + ["simulate", str(data), *sim_args, "--overwrite"],
        "analyze": cli() + ["analyze", str(data / "transmission.tif"), "--fluorescence", str(data / "fluorescence.tif"),
                            "--rois", str(data / "rois.json"), "--methods", methods, "--out", str(out), "--overwrite"],
        "motion": cli() + ["motion", str(data / "transmission.tif"), "--rois", str(data / "rois.json"),
                           "--out", str(out / "motion"), "--overwrite"],
    }
    walls = {}
    for name, cmd in cmds.items():
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        walls[name] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    total = sum(walls.values())
    run_json = out / "run.json"
    timings = json.loads(run_json.read_text()).get("timings_s", {}) if run_json.exists() else {}
    stages = {k: round(float(v), 2) for k, v in timings.items()}
    known = sum(v for k, v in stages.items() if not k.startswith("method ") and k != "total")
    details = {"command_wall_s": {k: round(v, 2) for k, v in walls.items()},
               "analyze_timings_s (run.json)": stages,
               "analyze_outside_pipeline_s (start-up, reading, writing results)":
                   round(walls["analyze"] - float(timings.get("total", 0.0)), 2),
               "largest_stage": max(((k, v) for k, v in stages.items() if not k.startswith("method ") and k != "total"),
                                    key=lambda kv: kv[1], default=("-", 0)),
               "stages_sum_s": round(known, 2), "simulate_args": " ".join(sim_args), "methods": methods}
    return C.report("demo", goal="make demo (every method and the motion tool, default sample) <= 3 min", ours=total, baseline=BUDGET_S,
                    ratio=BUDGET_S / total, unit="s", baseline_label="budget (goal)", met=bool(total <= BUDGET_S),
                    details=details, quick=args.quick, state_before=state, ratio_label="budget / ours")


if __name__ == "__main__":
    main()
