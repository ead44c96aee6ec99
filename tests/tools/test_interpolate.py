"""``micromotion interpolate``: the output folder's contract, refusals, and ``analyze`` with synthesized frames.

A small simulated uint16 recording (ImageJ TIFF at 25 fps) is interpolated once with the
learned method (a tiny fine-tuning) and once linearly; the tests look at what was written.
Torch runs on one thread (the machine is shared).
"""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import tifffile

from napari_micromotion.cli import main
from napari_micromotion.io import read_recording

from ..conftest import assert_one_line_error

FPS, N, SIZE = 25.0, 20, 48
TINY = ["--finetune-epochs", "1", "--steps-per-epoch", "4", "--threads", "1", "--max-heldout", "3"]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from napari_micromotion.simulate import simulate

    sim = simulate(n_frames=N, size=SIZE, seed=12, strong_px=3.0)
    data = np.asarray(sim.transmission)
    assert data.dtype == np.uint16
    path = tmp_path_factory.mktemp("interp") / "movie.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX", "finterval": 1 / FPS})
    return path


@pytest.fixture(scope="module")
def outputs(video, tmp_path_factory):
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    base = tmp_path_factory.mktemp("interp-out")
    out = {}
    for method, factor in (("learned", 2), ("linear", 3)):
        folder = base / method
        assert main(["interpolate", str(video), "--factor", str(factor), "--method", method, "--out", str(folder),
                     "-q", *TINY]) == 0
        out[method] = (folder, factor)
    assert hashlib.sha256(video.read_bytes()).hexdigest() == digest   # the input is never changed
    return out


@pytest.mark.parametrize("method", ["learned", "linear"])
def test_output_folder_contract(outputs, video, method):
    folder, k = outputs[method]
    src = tifffile.imread(video)
    with tifffile.TiffFile(folder / "interpolated.tif") as tf:
        got = tf.asarray()
        ij = tf.imagej_metadata
    assert got.shape == ((N - 1) * k + 1, SIZE, SIZE) and got.dtype == src.dtype
    assert np.array_equal(got[::k], src)                                       # measured frames bit for bit
    assert not all(np.array_equal(got[j], got[j - 1]) for j in range(1, k))    # something was synthesized
    assert ij["finterval"] == pytest.approx(1 / (FPS * k))
    assert ij["Labels"][:k + 1] == ["measured"] + ["synthesized"] * (k - 1) + ["measured"]
    rec = read_recording(folder / "interpolated.tif")                          # the frame rate reads back K-fold
    assert rec.fps == pytest.approx(FPS * k)
    assert rec.provenance["synthesized_frames"]["synthesized_frames"] == (N - 1) * (k - 1)
    with open(folder / "synthesized.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["frame", "time_s", "measured"] and len(rows) == got.shape[0]
    assert [r["measured"] for r in rows[:k + 1]] == ["1"] + ["0"] * (k - 1) + ["1"]
    assert float(rows[1]["time_s"]) == pytest.approx(1 / (FPS * k))
    unc = tifffile.imread(folder / "uncertainty.tif")
    assert unc.shape == got.shape and np.all(unc[::k] == 0) and unc[1::k].max() > 0
    rec = json.loads((folder / "interpolate.json").read_text())
    res = rec["result"]
    assert res["contains_synthesized_frames"] is True and res["factor"] == k and res["n_synthesized"] == (N - 1) * (k - 1)
    methods = res["evaluation"]["methods"]
    assert {"linear", "flow", "learned (pretrained)"} <= set(methods)
    assert ("learned (fine-tuned)" in methods) == (method == "learned")
    assert all(np.isfinite(v["psnr_db"]) and 0 < v["ssim"] <= 1 for v in methods.values())
    assert rec["timings_s"]["total"] > 0 and rec["parameters"]["method"] == method


def test_tool_reads_its_folder_back(outputs):
    from napari_micromotion.tools import TOOLS

    folder, k = outputs["linear"]
    res = TOOLS["interpolate"].read(folder)
    assert res.factor == k and res.fps == pytest.approx(FPS * k) and res.measured.sum() == N
    assert res.frames.shape[0] == (N - 1) * k + 1


@pytest.mark.parametrize("args, words", [
    (["--factor", "1"], "factor"), (["--factor", "0"], "factor"), (["--method", "cubic"], "cubic"),
])
def test_bad_parameters_exit_2_and_write_nothing(video, tmp_path, capsys, args, words):
    out = tmp_path / "out"
    code = main(["interpolate", str(video), "--out", str(out), "-q", *args])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert words in err and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []          # no half-written folder beside it


def test_a_one_frame_video_is_refused(tmp_path, capsys):
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, np.zeros((1, 32, 32), np.uint16), imagej=True, metadata={"axes": "TYX", "finterval": 0.04})
    code = main(["interpolate", str(one), "--out", str(tmp_path / "out"), "-q"])
    assert_one_line_error(capsys.readouterr().err, code)
    assert not (tmp_path / "out").exists()


def test_interpolating_an_interpolated_video_is_refused(outputs, tmp_path, capsys):
    folder, _ = outputs["linear"]
    code = main(["interpolate", str(folder / "interpolated.tif"), "--out", str(tmp_path / "again"), "-q"])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert "synthesized" in err and not (tmp_path / "again").exists()


def test_analyze_refuses_synthesized_frames_unless_asked(outputs, tmp_path, capsys):
    folder, _ = outputs["linear"]
    code = main(["analyze", str(folder / "interpolated.tif"), "--methods", "bandpass", "--out", str(tmp_path / "a"),
                 "-q", "--no-report"])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert "--use-interpolated" in err and "synthesized" in err and not (tmp_path / "a").exists()
    # a copy without the metadata is still recognised by the synthesized.csv beside it
    plain = tmp_path / "copy" / "interpolated.tif"
    plain.parent.mkdir()
    tifffile.imwrite(plain, tifffile.imread(folder / "interpolated.tif"))
    (plain.parent / "synthesized.csv").write_text((folder / "synthesized.csv").read_text())
    rec = read_recording(plain, fps=75.0)
    assert rec.provenance["synthesized_frames"]["marked_by"] == "synthesized.csv beside it"


def test_analysis_with_use_interpolated_says_so(outputs):
    from napari_micromotion.pipeline import AnalysisParams, plan_analysis

    folder, _ = outputs["linear"]
    rec = read_recording(folder / "interpolated.tif")
    plan = plan_analysis(rec, [], AnalysisParams(methods=("bandpass",), use_interpolated=True))
    assert any("synthesized" in w and "--use-interpolated" in w for w in plan.ctx.warnings)
    from napari_micromotion.errors import MicromotionError

    with pytest.raises(MicromotionError, match="synthesized"):
        plan_analysis(rec, [], AnalysisParams(methods=("bandpass",)))
    measured = read_recording(folder.parent / "learned" / "interpolated.tif").with_(provenance={})
    assert not any("synthesized" in w for w in plan_analysis(measured, [], AnalysisParams(methods=("bandpass",)))
                   .ctx.warnings)


def test_the_automatic_band_stays_below_the_measured_frames_nyquist(video, outputs, tmp_path):
    """Synthesized frames hold nothing measured above the input's Nyquist: the default band ends where the input's would."""
    from napari_micromotion.pipeline import AnalysisParams, measured_fps, plan_analysis

    folder, factor = outputs["linear"]
    rec = read_recording(folder / "interpolated.tif")
    assert rec.fps == pytest.approx(FPS * factor) and measured_fps(rec) == pytest.approx(FPS)
    assert rec.measured_every == factor and read_recording(video).measured_every == 1
    plan = plan_analysis(rec, [], AnalysisParams(methods=("bandpass",), use_interpolated=True))
    assert plan.ctx.design.high_hz == pytest.approx(0.4 * FPS)          # 10 Hz, not the 15 Hz default
    assert any("measured frames" in w for w in plan.ctx.warnings)
    # the measured recording at its own rate gets that band too
    original = read_recording(video)
    assert plan_analysis(original, [], AnalysisParams(methods=("bandpass",))).ctx.design.high_hz == pytest.approx(
        0.4 * FPS)
    # marked only by the synthesized.csv beside a copy (no factor recorded): the same from the frame counts
    plain = tmp_path / "copy" / "interpolated.tif"
    plain.parent.mkdir()
    tifffile.imwrite(plain, tifffile.imread(folder / "interpolated.tif"))
    (plain.parent / "synthesized.csv").write_text((folder / "synthesized.csv").read_text())
    copy = read_recording(plain, fps=FPS * factor)
    assert measured_fps(copy) == pytest.approx(FPS) and copy.measured_every == factor
    assert plan_analysis(copy, [], AnalysisParams(methods=("bandpass",), use_interpolated=True)).ctx.design.high_hz \
        == pytest.approx(0.4 * FPS)
    # a high edge the user chose is kept, and a measured video at the same rate keeps the 15 Hz default
    chosen = plan_analysis(rec, [], AnalysisParams(methods=("bandpass",), use_interpolated=True, high_hz=14.0))
    assert chosen.ctx.design.high_hz == pytest.approx(14.0)
    # ... and said to reach past the measured frames' Nyquist frequency (12.5 Hz), where one below it is not
    assert any("above 12.5 Hz, the Nyquist frequency of this video's measured frames" in w for w in chosen.ctx.warnings)
    below = plan_analysis(rec, [], AnalysisParams(methods=("bandpass",), use_interpolated=True, high_hz=12.0))
    assert not any("Nyquist" in w for w in below.ctx.warnings)
    measured = rec.with_(provenance={})
    assert plan_analysis(measured, [], AnalysisParams(methods=("bandpass",))).ctx.design.high_hz == pytest.approx(15.0)


def test_a_still_video_and_a_float64_one(tmp_path, capsys):
    """A constant video reconstructs exactly: its PSNR (+inf) is null in strict JSON, without warnings on stderr;
    a float64 video is written as float32 and says so."""
    still = tmp_path / "still.tif"
    tifffile.imwrite(still, np.full((40, 32, 32), 500, np.uint16))
    assert main(["interpolate", str(still), "--fps", "20", "--factor", "2", "--method", "linear",
                 "--out", str(tmp_path / "a"), "-q"]) == 0
    assert "Warning" not in capsys.readouterr().err

    def strict(c):
        raise ValueError(c)

    rec = json.loads((tmp_path / "a" / "interpolate.json").read_text(), parse_constant=strict)
    assert rec["result"]["evaluation"]["methods"]["linear"]["psnr_db"] is None
    wide = tmp_path / "wide.tif"
    tifffile.imwrite(wide, np.random.default_rng(0).normal(100, 5, (40, 32, 32)))     # float64
    assert main(["interpolate", str(wide), "--fps", "20", "--factor", "2", "--method", "linear",
                 "--out", str(tmp_path / "b")]) == 0
    assert "written as float32" in capsys.readouterr().err
