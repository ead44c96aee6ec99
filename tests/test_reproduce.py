"""The paper reproduction runs end to end at its --quick size (a smoke test; the numbers are not checked here)."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reproduce_quick(tmp_path):
    out = tmp_path / "repro"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce_paper.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("fig3_score_maps.png", "fig4_traces.png", "fig5_weights.png", "real_data.png", "table.csv",
                 "table.md", "reproduce.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 500, name
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert {r["setting"] for r in rows} == {"fast", "paper"}
    assert {r["method"] for r in rows} == {"bandpass", "matched", "cnn1d", "cnn3d"}
    assert {r["kind"] for r in rows} >= {"strong", "weak", "silent"}
    for r in rows:
        assert -1.0 <= float(r["score"]) <= 1.0 and 0 < float(r["p_value"]) <= 1.0
        assert float(r["wall_s"]) > 0 and float(r["peak_rss_mib"]) > 50
    md = (out / "table.md").read_text()
    assert "paper settings" in md and "frozen 1D layers" in md and "Pixel level" in md
    px = list(csv.DictReader(open(out / "table_pixels.csv")))
    assert {(r["setting"], r["method"]) for r in px} == {(s, m) for s in ("fast", "paper")
                                                         for m in ("bandpass", "matched", "cnn1d")}
    for r in px:
        assert -1.0 <= float(r["median"]) <= float(r["p99"]) <= float(r["max"]) <= 1.0 and int(r["pixels"]) > 0

    # a second call keeps the analyses (same data, same options) and rebuilds the tables
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce_paper.py"), "--quick", "--out", str(out),
                            "--reuse-runs", "--no-real"], capture_output=True, text=True, timeout=1500)
    assert again.returncode == 0, again.stderr[-3000:]
    # the simulated data, then fast: 4 methods, paper: 1D CNN and 3D network (the filters' runs serve both)
    assert again.stderr.count("reusing") == 7, again.stderr
    assert list(csv.DictReader(open(out / "table.csv"))) == rows
