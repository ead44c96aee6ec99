import csv
import json

import numpy as np
import pytest
import tifffile

from napari_micromotion.cli import main

from .conftest import assert_one_line_error


def _read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_simulate_then_analyze(tmp_path, capsys):
    sim = tmp_path / "sim"
    assert main(["simulate", str(sim), "--frames", "900", "--size", "64", "--seed", "2", "-q"]) == 0
    assert {p.name for p in sim.iterdir()} == {"transmission.tif", "fluorescence.tif", "rois.json", "truth.json"}
    out = tmp_path / "out"
    before = (sim / "transmission.tif").read_bytes()
    code = main(["analyze", str(sim / "transmission.tif"), "--fluorescence", str(sim / "fluorescence.tif"),
                 "--rois", str(sim / "rois.json"), "--methods", "bandpass", "--out", str(out), "--surrogates", "99"])
    assert code == 0
    err = capsys.readouterr().err
    assert "band-pass" in err and "wrote" in err  # progress on stderr
    assert (sim / "transmission.tif").read_bytes() == before  # inputs untouched
    score = tifffile.imread(out / "scores" / "bandpass.tif")
    assert score.shape == (64, 64) and score.dtype == np.float32
    assert tifffile.imread(out / "lags" / "bandpass.tif").shape == (64, 64)
    rows = _read_csv(out / "roi_scores.csv")
    assert list(rows[0])[:5] == ["roi", "kind", "method", "score", "lag_s"]
    assert {r["roi"] for r in rows} == {"strong", "weak", "silent", "other"}
    strong = next(r for r in rows if r["roi"] == "strong")
    assert float(strong["score"]) > 0.5
    with open(out / "traces.csv") as fh:
        header = fh.readline().strip().split(",")
        n_lines = 1 + sum(1 for _ in fh)
    assert header[:3] == ["frame", "time_s", "fluorescence"]
    assert "strong/bandpass" in header and "strong/fluorescence" in header
    assert n_lines == 901
    run = json.loads((out / "run.json").read_text())
    assert run["parameters"]["methods"] == ["bandpass"]
    assert run["command"][:2] == ["micromotion", "analyze"] and run["working_folder"]
    assert run["inputs"]["transmission"]["checksum"].startswith("sha256:")
    assert run["package_versions"]["numpy"] and run["timings_s"]["total"] > 0
    assert run["validation_frames"] == [0, 262]  # round(900 * 3072 / 10570)
    assert (out / "report.png").stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize("argv_tail,msg", [
    (["--validation", "0:99999"], "outside the recording"),
    (["--validation", "abc"], "START:STOP"),
    (["--passband", "2", "40"], "Nyquist"),
    (["--methods", "wavelets"], "unknown method"),
    (["--fps", "-3"], "positive"),
    (["--rois", "/nonexistent/rois.json"], "does not exist"),
    (["--workers", "0"], "at least 1"),
])
def test_analyze_errors_are_one_line(sim_dir, tmp_path, capsys, argv_tail, msg):
    out = tmp_path / "o"
    code = main(["analyze", str(sim_dir / "transmission.tif"), "--fluorescence", str(sim_dir / "fluorescence.tif"),
                 "--out", str(out), "-q", *argv_tail])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert msg in err
    assert not out.exists()


def test_existing_output_needs_overwrite(sim_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("previous results")
    (out / "run.json").write_text("{}")          # an earlier analysis's folder: --overwrite may replace it
    code = main(["analyze", str(sim_dir / "transmission.tif"), "--out", str(out), "-q"])
    assert_one_line_error(capsys.readouterr().err, code)
    assert (out / "keep.txt").read_text() == "previous results"
    code = main(["analyze", str(sim_dir / "transmission.tif"), "--fluorescence", str(sim_dir / "fluorescence.tif"),
                 "--out", str(out), "--overwrite", "-q", "--no-report"])
    assert code == 0 and not (out / "keep.txt").exists() and (out / "roi_scores.csv").exists()


def test_missing_input_and_usage_errors(tmp_path, capsys):
    code = main(["analyze", str(tmp_path / "none.tif"), "--out", str(tmp_path / "o")])
    assert_one_line_error(capsys.readouterr().err, code)
    assert main(["analyze"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_every_help_renders(capsys):
    """``micromotion --help`` and every sub-command's ``--help`` print their text and exit 0 (no traceback)."""
    from napari_micromotion.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.choices and hasattr(a, "_name_parser_map"))
    commands = list(sub.choices)
    assert {"analyze", "motion", "denoise", "interpolate", "cells", "blur-flow"} <= set(commands)
    for argv in [["--help"]] + [[c, "--help"] for c in commands]:
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        assert out.startswith("usage: micromotion"), argv
        if argv == ["--help"]:
            assert all(c in out for c in commands)
            assert "90 % corridors" in " ".join(out.split())   # the denoise tool's description, % and all


def test_train_then_apply_the_saved_model(sim_dir, tmp_path, capsys):
    model = tmp_path / "cnn.safetensors"
    common = [str(sim_dir / "transmission.tif"), "-f", str(sim_dir / "fluorescence.tif")]
    tiny = ["--cnn-epochs", "1", "--cnn-n-pixels", "64", "--cnn-window", "256", "-q"]
    assert main(["train", *common, "--model", str(model), *tiny]) == 0, capsys.readouterr().err
    assert model.is_file() and model.with_suffix(".json").is_file()
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["architecture"] == "rinner2020-cnn1d" and meta["training_params"]["epochs"] == 1
    out = tmp_path / "applied"
    assert main(["analyze", *common, "--rois", str(sim_dir / "rois.json"), "--methods", "cnn1d",
                 "--model-1d", str(model), "--surrogates", "9", "--out", str(out), "-q"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"]["model_cnn1d"]["checksum"] and "fit cnn1d" not in run["timings_s"]
    # the model knows which recording it learned from: scored on its own training frames, it says so
    assert meta["trained_on"].startswith("sha256:")
    assert not any("in-sample" in w for w in run["warnings"])      # the default validation frames: never trained on
    a, b = meta["training_frames"][0]
    own = tmp_path / "own-frames"
    assert main(["analyze", *common, "--rois", str(sim_dir / "rois.json"), "--methods", "cnn1d", "--model-1d",
                 str(model), "--validation", f"{a}:{a + 40}", "--surrogates", "9", "--out", str(own), "-q"]) == 0
    said = json.loads((own / "run.json").read_text())["warnings"]
    assert any("trained on this recording, on 40 of the 40 frames it is scored on" in w for w in said), said
    # training again over an existing model needs --overwrite
    assert main(["train", *common, "--model", str(model), *tiny]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train-blur-flow", "train-interpolator", "train-cells"])
@pytest.mark.parametrize("extra, message", [
    ([], "is a folder"),                       # --out names a folder: no model written beside it
    (["--seed", "-1"], "seed must be a non-negative integer"),
])
def test_train_commands_reject_bad_options_before_training(tmp_path, capsys, command, extra, message):
    folder = tmp_path / "models"
    folder.mkdir()
    out = folder if not extra else folder / "m.safetensors"
    code = main([command, "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert message in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["models"]


@pytest.mark.parametrize("option, value", [("--copies", "-1"), ("--scale-jitter", "5"), ("--scale-jitter", "-1"),
                                           ("--reference-cell-px", "-5")])
def test_train_cells_checks_its_options_before_building_the_training_set(tmp_path, capsys, option, value):
    code = main(["train-cells", "--out", str(tmp_path / "m.safetensors"), option, value])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert f"{option} must" in err and not list(tmp_path.iterdir())


def test_sigterm_cleans_up(tmp_path):
    """``kill`` (or a cluster's time limit) mid-way: exit 143, one line, no output and no temporary folder left."""
    import signal
    import subprocess
    import sys

    from napari_micromotion.atomic import TEMP_PREFIX

    proc = subprocess.Popen([sys.executable, "-c", "from napari_micromotion.cli import main; raise SystemExit(main())",
                             "simulate", str(tmp_path / "sim"), "--frames", "4000", "--size", "128"],
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:           # wait until frames are being written into the temporary folder
        seen.append(line)
        if "simulate" in line and "%" in line and " 0%" not in line:
            break
    assert any(p.name.startswith(TEMP_PREFIX) for p in tmp_path.iterdir()), seen      # the temporary folder
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 143, rest
    assert [ln for ln in rest.splitlines() if ln.strip()] == [
        "error: terminated; no output was written and earlier results are untouched."]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["denoise", "interpolate", "motion"])
def test_tools_refuse_an_roi_off_the_frames_before_any_work(sim_dir, tmp_path, capsys, command):
    rois = tmp_path / "rois.json"
    rois.write_text(json.dumps([{"name": "out", "kind": "other", "polygon": [[500, 500], [500, 520], [520, 520]]}]))
    video = sim_dir / ("fluorescence.tif" if command == "denoise" else "transmission.tif")
    code = main([command, str(video), "--rois", str(rois), "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert "lies outside" in err and not (tmp_path / "o").exists()


def test_python_warnings_are_one_warning_line_each(shared_mp4, tmp_path, capsys):
    """A lossy video's warning: one 'warning: ...' line (not a source line), not repeated by the command's own list."""
    assert main(["motion", str(shared_mp4), "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    lossy = [ln for ln in err.splitlines() if "lossy" in ln]
    assert len(lossy) == 1 and lossy[0].startswith("warning: adult.mp4 is a compressed video")
    assert "UserWarning" not in err and "read_stack(" not in err
    assert main(["motion", str(shared_mp4), "--out", str(tmp_path / "q"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_a_truncated_tiff_is_one_line(sim_dir, tmp_path, capsys):
    """A TIFF cut short (a copy that did not finish): the reader's sentence only, not tifffile's log lines too."""
    whole = (sim_dir / "transmission.tif").read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole[: len(whole) // 3])
    import subprocess
    import sys

    # a real process: under pytest, tifffile's log records go to pytest's log capture, not to stderr
    run = subprocess.run([sys.executable, "-c", "from napari_micromotion.cli import main; raise SystemExit(main())",
                          "motion", str(cut), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                         timeout=120)
    assert_one_line_error(run.stderr, run.returncode)
    assert "truncated or corrupt" in run.stderr


@pytest.mark.parametrize("command", ["denoise", "cells", "analyze"])
def test_errors_about_a_video_name_its_file(tmp_path, capsys, command):
    """A fluorescence video given to a tool is read into the recording's first slot: the error names the file,
    not 'transmission'."""
    short = tmp_path / "calcium.tif"
    tifffile.imwrite(short, np.ones((5, 32, 32), np.uint16), photometric="minisblack")
    code = main([command, str(short), "--fps", "20", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert err.startswith("error: calcium.tif has 5 frame(s)"), err


def test_view_without_a_display_and_a_closed_pipe(monkeypatch, capsys):
    """`micromotion view` with no display aborted in Qt (SIGABRT); `methods | head` gave a BrokenPipeError traceback."""
    import sys as _sys

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    if _sys.platform.startswith("linux"):
        code = main(["view", "x.tif"])
        assert_one_line_error(capsys.readouterr().err, code)

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(_sys, "stdout", Closed())
    assert main(["methods"]) == 0


def test_frames_is_taken_into_account_by_what_the_command_says(tmp_path, capsys):
    """--frames that skips a fade-in was still told to skip it; --frames leaving too few frames was called a short
    'transmission'; the recording line did not say where its frame rate came from."""
    import imageio.v3 as iio

    rng = np.random.default_rng(3)
    frames = rng.integers(90, 110, size=(40, 32, 32)).astype(np.float32)
    frames[:6] *= np.linspace(0.05, 0.85, 6)[:, None, None]
    video = tmp_path / "faded.avi"
    iio.imwrite(video, frames.astype(np.uint8), extension=".avi", fps=20, codec="mjpeg")
    args = ["motion", str(video), "--out"]
    assert main([*args, str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "fades in" in err and "recording: 40 frames" in err and "frame rate from video container" in err
    assert main([*args, str(tmp_path / "b"), "--frames", "6:40"]) == 0
    assert "fades in" not in capsys.readouterr().err
    # a slice's open end runs to the last frame, as in Python: 6: is 6:40 (it used to be refused)
    assert main([*args, str(tmp_path / "open"), "--frames", "6:"]) == 0
    assert "fades in" not in capsys.readouterr().err
    assert ((tmp_path / "open" / "contraction.csv").read_text() == (tmp_path / "b" / "contraction.csv").read_text())
    assert main([*args, str(tmp_path / "c"), "--frames", "0:12"]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, 2)
    assert "keeping frames 0:12 leaves 12 of the 40 frames of faded.avi; at least 16 are needed" in err


def test_an_interleaved_file_is_analysed_as_its_two_channels(small_sim, sim_dir, tmp_path, capsys):
    # brightfield and calcium taken in turn by one camera and saved as one series: --interleaved 2 gives the very
    # scores the two channels give as separate files (the file's rate, per frame, split between the channels)
    fps = small_sim.params.fps
    t, f = np.asarray(small_sim.transmission), np.asarray(small_sim.fluorescence)
    mixed = np.empty((2 * len(t), *t.shape[1:]), np.float32)
    mixed[0::2], mixed[1::2] = t, f
    tifffile.imwrite(tmp_path / "mixed.tif", mixed, imagej=True, metadata={"axes": "TYX", "finterval": 0.5 / fps})
    common = ["--rois", str(sim_dir / "rois.json"), "--methods", "bandpass", "--no-report", "-q"]
    assert main(["analyze", str(tmp_path / "mixed.tif"), "--interleaved", "2", "--out", str(tmp_path / "a"),
                 *common]) == 0
    tifffile.imwrite(tmp_path / "t.tif", t.astype(np.float32))
    tifffile.imwrite(tmp_path / "f.tif", f.astype(np.float32))
    assert main(["analyze", str(tmp_path / "t.tif"), "-f", str(tmp_path / "f.tif"), "--fps", str(fps),
                 "--out", str(tmp_path / "b"), *common]) == 0
    a, b = _read_csv(tmp_path / "a" / "roi_scores.csv"), _read_csv(tmp_path / "b" / "roi_scores.csv")
    assert [r["roi"] for r in a] == ["strong", "weak", "silent", "other"]
    assert [(r["roi"], r["score"]) for r in a] == [(r["roi"], r["score"]) for r in b]
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["recording"]["n_frames"] == len(t) and run["recording"]["fps"] == pytest.approx(fps)
    assert run["recording_provenance"]["transmission"]["interleaved_channels"] == 2
    capsys.readouterr()
    # the same file read as one series: the reader says its frames alternate, and how to read it
    code = main(["motion", str(tmp_path / "mixed.tif"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 0 and "its frames alternate" in err and "--interleaved 2" in err
    for bad in ("0", "17"):
        code = main(["analyze", str(tmp_path / "mixed.tif"), "--interleaved", bad, "--out", str(tmp_path / "x"), "-q"])
        assert_one_line_error(capsys.readouterr().err, code)
        assert not (tmp_path / "x").exists()
