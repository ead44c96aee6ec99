"""Smoke test of the benchmarks: each one's ``--quick`` mode runs and reports its three figures.

Never asserts a speed (timing goals live in the benchmarks, not in tests): only that
ours, the baseline and their ratio are printed and written as finite positive numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _check(out_dir: Path, name: str, stdout: str) -> None:
    lines = stdout.splitlines()
    assert any(ln.startswith("ours:") for ln in lines), stdout
    assert any(ln.startswith("baseline:") for ln in lines), stdout
    res = json.loads((out_dir / f"{name}-quick.json").read_text())
    for key in ("ours", "baseline", "ratio"):
        assert isinstance(res[key], float) and math.isfinite(res[key]) and res[key] > 0, (key, res[key])
    assert any(ln.startswith(res["ratio_label"] + ":") for ln in lines), stdout
    assert res["machine"]["cores"] and res["state_before"]["load_avg_1_5_15"] is not None


@pytest.mark.parametrize("name,script", [("cnn1d_infer", "bench_cnn1d_infer.py"), ("cnn3d_fast", "bench_cnn3d_fast.py")])
def test_quick_benchmark_in_process(tmp_path, monkeypatch, capsys, name, script):
    """The two in-process benchmarks run here (torch and numba are already loaded by other tests)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    monkeypatch.setattr(_common, "OUT_DIR", tmp_path / "out")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--quick"])
    _check(tmp_path / "out", name, capsys.readouterr().out)


@pytest.mark.parametrize("name,script", [("bandpass_scores", "bench_bandpass_scores.py"), ("demo", "bench_demo.py")])
def test_quick_benchmark_as_command(tmp_path, name, script):
    """These two start fresh processes anyway (per variant / per CLI command): run them as commands."""
    env = {**os.environ, "MICROMOTION_BENCH_OUT": str(tmp_path / "out"), "MICROMOTION_BENCH_DATA": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _check(tmp_path / "out", name, proc.stdout)


def test_run_all_table(tmp_path):
    """run_all collects the latest results into a markdown table and results.json (nothing re-run here)."""
    out = tmp_path / "out"
    out.mkdir()
    fake = {"name": "demo", "ours": 100.0, "baseline": 180.0, "ratio": 1.8, "unit": "s", "ratio_label": "budget / ours",
            "baseline_label": "budget (goal)", "goal_met": True, "state_before": {"load_avg_1_5_15": [0.5, 0.5, 0.5]},
            "when": "now"}
    (out / "demo-quick.json").write_text(json.dumps(fake))
    env = {**os.environ, "MICROMOTION_BENCH_OUT": str(out)}
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "none"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| 6. make demo" in proc.stdout and "budget / ours 1.8" in proc.stdout
    assert json.loads((out / "results.json").read_text())["results"][0]["ours"] == 100.0
