"""``analyze --denoise fluorescence``: the denoiser (trained on the training frames only) feeds the ground truth.

One small low-light recording, analysed with and without denoising; the silent ROI and the
cell that moves without calcium must not become significant.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_micromotion.cli import main


@pytest.fixture(scope="module")
def low_light_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("denoise-analysis") / "sim"
    assert main(["simulate", str(folder), "--frames", "800", "--size", "48", "--low-light", "20", "--seed", "3",
                 "-q"]) == 0
    return folder


def _scores(out):
    rows = (out / "roi_scores.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","))) for r in rows[1:]]
    return {r["roi"]: r for r in table if r["method"] == "bandpass"}


def test_analyze_with_denoised_fluorescence_end_to_end(low_light_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    common = [str(low_light_dir / "transmission.tif"), "--fluorescence", str(low_light_dir / "fluorescence.tif"),
              "--rois", str(low_light_dir / "rois.json"), "--methods", "bandpass", "--surrogates", "199", "-q"]
    assert main(["analyze", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["analyze", *common, "--denoise", "fluorescence", "--denoise-epochs", "1",
                 "--out", str(tmp_path / "denoised")]) == 0
    plain, den = _scores(tmp_path / "plain"), _scores(tmp_path / "denoised")
    assert set(den) == {"strong", "weak", "silent", "other"}
    assert float(den["strong"]["p_value"]) < 0.01
    assert float(den["silent"]["p_value"]) > 0.05 and float(den["other"]["p_value"]) > 0.05
    assert float(den["strong"]["score"]) == pytest.approx(float(plain["strong"]["score"]), abs=0.1)
    assert float(den["silent"]["score"]) < float(den["strong"]["score"]) - 0.3
    run = json.loads((tmp_path / "denoised" / "run.json").read_text())
    text = json.dumps(run)
    assert "fluorescence was denoised before scoring" in text and '"denoise": "fluorescence"' in text
    assert np.isfinite(float(den["weak"]["score"]))
