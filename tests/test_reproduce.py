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
    assert "paper settings" in md and "frozen 1D layers" in md
