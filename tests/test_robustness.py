"""Bad input, faults and cancellation (issue 6): one sentence, nothing written, inputs untouched."""

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_micromotion.cli import main
from napari_micromotion.detectors.cnn1d import CNN1DParams
from napari_micromotion.detectors.cnn3d import CNN3DParams
from napari_micromotion.errors import MicromotionError
from napari_micromotion.export import remove_stale_siblings
from napari_micromotion.io import read_recording
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.recording import Recording

from .conftest import assert_one_line_error

FAST_CNN = ["--cnn-epochs", "1", "--cnn-n-pixels", "64", "--cnn-window", "256", "--cnn3d-epochs", "2",
            "--mc-passes", "2", "--surrogates", "19"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _ij(path, data, fps=50.0):
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX", "finterval": 1 / fps})
    return str(path)


@pytest.fixture()
def bad(tmp_path, sim_dir):
    """Builds one bad input per case; returns (argv, expected text)."""
    rng = np.random.default_rng(0)
    t = str(sim_dir / "transmission.tif")
    f = str(sim_dir / "fluorescence.tif")
    frames = rng.integers(1000, 2000, size=(300, 16, 16), dtype=np.uint16)

    def roi_file(obj):
        p = tmp_path / "rois.json"
        p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return str(p)

    def tif(name, data, **kw):
        return _ij(tmp_path / name, data, **kw)

    def raw_tif(name, data, **kw):
        kw.setdefault("photometric", "minisblack")
        tifffile.imwrite(tmp_path / name, data, **kw)
        return str(tmp_path / name)

    def truncated():
        p = tmp_path / "trunc.tif"
        _ij(p, frames)
        raw = p.read_bytes()
        p.write_bytes(raw[: len(raw) // 3])
        return str(p)

    def model(kind):
        from napari_micromotion.detectors.cnn1d import Normalisation, TrainedCNN1D, build_cnn1d
        from napari_micromotion.detectors.models import save_cnn1d

        p = save_cnn1d(TrainedCNN1D(build_cnn1d(0), Normalisation(1, 0, 1), 50.0, (2, 15), 2, [(0, 10)]),
                       tmp_path / "m.safetensors")
        meta = json.loads(p.with_suffix(".json").read_text())
        if kind == "version":
            meta["architecture_version"] = 7
        elif kind == "arch":
            meta["architecture"] = "unet"
        elif kind == "pickle":
            p.write_bytes(pickle.dumps({"w": np.zeros(3)}))
        p.with_suffix(".json").write_text(json.dumps(meta))
        return str(p)

    poly = [[2, 2], [2, 10], [10, 10], [10, 2]]
    cases = {
        "frames differ": (lambda: [tif("a.tif", frames), "-f", tif("b.tif", frames[:290])], "290 frames"),
        "sizes differ": (lambda: [tif("a.tif", frames), "-f", tif("b.tif", frames[:, :12])], "same field"),
        "2D image": (lambda: [raw_tif("img.tif", frames[0]), "--fps", "50"], "single image"),
        # two samples per pixel: neither grey nor RGB (an RGB stack is read as grey levels)
        "RGB video": (lambda: [raw_tif("two.tif", np.zeros((30, 8, 8, 2), np.uint8), photometric="minisblack",
                                       planarconfig="contig", extrasamples=["unspecified"]), "--fps", "50"],
                      "multi-sample"),
        "NaN pixels": (lambda: [raw_tif("nan.tif", np.where(np.arange(300 * 256).reshape(300, 16, 16) == 777, np.nan,
                                                            frames.astype(np.float32)).astype(np.float32)),
                                "--fps", "50"], "NaN"),
        "Inf pixels": (lambda: [raw_tif("inf.tif", np.full((300, 4, 4), np.inf, np.float32)), "--fps", "50"], "infinite"),
        "constant video": (lambda: [tif("const.tif", np.full((300, 8, 8), 7, np.uint16))], "constant video"),
        "too few frames": (lambda: [tif("short.tif", frames[:10])], "at least 16"),
        "shorter than the 3D window": (lambda: [tif("s.tif", frames[:200]), "-f", tif("sf.tif", frames[:200]),
                                                "--methods", "cnn3d", "--rois", roi_file(
                                                    [{"name": "a", "kind": "strong", "polygon": poly}])], "256 frames"),
        "passband above Nyquist": (lambda: [t, "-f", f, "--passband", "2", "25"], "Nyquist"),
        "low >= high": (lambda: [t, "-f", f, "--passband", "9", "3"], "below the high edge"),
        "fps <= 0": (lambda: [t, "--fps", "0"], "positive"),
        "validation outside": (lambda: [t, "-f", f, "--validation", "1000:2000"], "outside"),
        "no training frames": (lambda: [t, "-f", f, "--methods", "matched", "--validation", "0:1500"], "training frames"),
        "learned method without fluorescence": (lambda: [t, "--methods", "cnn1d"], "fluorescence"),
        "ROI empty": (lambda: [t, "--rois", roi_file([{"name": "a", "kind": "weak",
                                                        "polygon": [[3.1, 3.1], [3.1, 3.3], [3.3, 3.3]]}])], "no pixel"),
        "ROI outside": (lambda: [t, "--rois", roi_file([{"name": "a", "kind": "weak",
                                                          "polygon": [[500, 500], [500, 510], [510, 510]]}])], "outside"),
        "ROI self-intersecting": (lambda: [t, "--rois", roi_file([{"name": "a", "kind": "weak",
                                                                    "polygon": [[0, 0], [0, 9], [9, 0], [9, 9]]}])],
                                  "self-intersecting"),
        "ROI unknown kind": (lambda: [t, "--rois", roi_file([{"name": "a", "kind": "loud", "polygon": poly}])],
                             "unknown kind"),
        "ROI file malformed": (lambda: [t, "--rois", roi_file('[{"name": "a", "polygon": [[0, 0], [1')], "not valid JSON"),
        "no spikes for the matched filter": (
            lambda: [tif("m.tif", frames), "-f", tif("flat.tif", rng.integers(1000, 1010, (300, 16, 16), dtype=np.uint16)),
                     "--methods", "matched"], "spike"),
        "truncated TIFF": (lambda: [truncated()], "truncated"),
        "corrupted TIFF": (lambda: [str(_write(tmp_path / "c.tif", b"II*\x00" + os.urandom(300)))], "TIFF"),
        "missing path": (lambda: [str(tmp_path / "nowhere.tif")], "does not exist"),
        "model of another version": (lambda: [t, "-f", f, "--methods", "cnn1d", "--model-1d", model("version")],
                                     "version 7"),
        "model of another architecture": (lambda: [t, "-f", f, "--methods", "cnn1d", "--model-1d", model("arch")],
                                          "unet"),
        "pickle posing as a model": (lambda: [t, "-f", f, "--methods", "cnn1d", "--model-1d", model("pickle")],
                                     "pickle"),
    }
    return cases


def _write(path, data):
    path.write_bytes(data)
    return path


CASES = ["frames differ", "sizes differ", "2D image", "RGB video", "NaN pixels", "Inf pixels", "constant video",
         "too few frames", "shorter than the 3D window", "passband above Nyquist", "low >= high", "fps <= 0",
         "validation outside", "no training frames", "learned method without fluorescence", "ROI empty", "ROI outside",
         "ROI self-intersecting", "ROI unknown kind", "ROI file malformed", "no spikes for the matched filter",
         "truncated TIFF", "corrupted TIFF", "missing path", "model of another version", "model of another architecture",
         "pickle posing as a model"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_sentence_and_writes_nothing(case, bad, tmp_path, sim_dir, capsys):
    argv_in, expected = bad[case]
    argv_in = argv_in()
    before = _digest(sim_dir)
    inputs = [Path(a) for a in argv_in if isinstance(a, str) and Path(a).is_file()]
    input_bytes = {p: p.read_bytes() for p in inputs}
    out = tmp_path / "out"
    code = main(["analyze", *argv_in, "--out", str(out), "-q", *FAST_CNN])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert expected.lower() in err.lower(), err
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))
    assert _digest(sim_dir) == before
    for p, data in input_bytes.items():
        assert p.read_bytes() == data


def test_unreadable_input_and_unwritable_output(sim_dir, tmp_path, capsys, monkeypatch):
    real_access = os.access
    target = str(sim_dir / "transmission.tif")
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == target else real_access(p, mode, **kw))
    code = main(["analyze", target, "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert "not readable" in err
    monkeypatch.undo()
    code = main(["analyze", target, "--out", "/proc/micromotion-out", "-q"])
    err = capsys.readouterr().err
    assert_one_line_error(err, code)
    assert "/proc" in err


def test_existing_output_is_refused_without_overwrite(sim_dir, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    code = main(["analyze", str(sim_dir / "transmission.tif"), "--out", str(out), "-q"])
    assert_one_line_error(capsys.readouterr().err, code)
    assert (out / "old.txt").read_text() == "keep"


@pytest.mark.parametrize("command", ["analyze", "motion"])
def test_overwrite_never_deletes_inputs_or_foreign_files(command, sim_dir, tmp_path, capsys, monkeypatch):
    """--overwrite replaces only an output folder of ours: never one holding an input, the current folder or a
    folder of other files (replacing a folder deletes everything in it)."""
    data = tmp_path / "data"
    shutil.copytree(sim_dir, data)
    (data / "notes.txt").write_text("keep")
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.docx").write_text("keep")
    video = str(data / "transmission.tif")
    for out, message in ((data, "holds the input transmission.tif"), (tmp_path, "holds the input transmission.tif"),
                         (other, "did not write")):
        code = main([command, video, "--out", str(out), "--overwrite", "-q"])
        err = capsys.readouterr().err
        assert_one_line_error(err, code)
        assert message in err
    monkeypatch.chdir(other)
    for out in (".", "", ".."):
        code = main([command, video, "--out", out, "--overwrite", "-q"])
        err = capsys.readouterr().err
        assert_one_line_error(err, code)
        assert "current folder" in err
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    assert (other / "thesis.docx").read_text() == "keep" and len(list(other.iterdir())) == 1
    # an output folder of ours (and an empty one) may be replaced
    for out in (tmp_path / "res", tmp_path / "res", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert main([command, video, "--out", str(out), "--overwrite", "-q", "--methods", "bandpass"]
                    if command == "analyze" else [command, video, "--out", str(out), "--overwrite", "-q"]) == 0
    # a result folder that holds a later step's input is kept: interpolate, then analyse what it wrote into it
    interp = tmp_path / "interp"
    assert main(["interpolate", video, "--factor", "2", "--method", "linear", "--out", str(interp), "-q"]) == 0
    code = main([command, str(interp / "interpolated.tif"), "--out", str(interp), "--overwrite", "-q"])
    assert_one_line_error(capsys.readouterr().err, code)
    assert (interp / "interpolated.tif").is_file()


def test_python_write_results_never_replaces_the_folder_of_its_recording(sim_dir, tmp_path):
    """``write_results(res, folder, overwrite=True)`` from a script knows the inputs from the recording itself."""
    from napari_micromotion.export import write_results
    from napari_micromotion.io import read_recording
    from napari_micromotion.pipeline import AnalysisParams, run_analysis

    data = tmp_path / "project" / "data"
    shutil.copytree(sim_dir, data)            # a simulation's folder: truth.json marks it as micromotion's
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    rec = read_recording(data / "transmission.tif", data / "fluorescence.tif")
    res = run_analysis(rec, [], AnalysisParams(methods=("bandpass",), n_surrogates=19))
    assert res.inputs["transmission"]["path"] == str(data / "transmission.tif")
    (tmp_path / "project" / "run.json").write_text("{}")       # an old analysis written over the project
    for out in (data, tmp_path / "project"):
        with pytest.raises(MicromotionError, match="holds the input transmission.tif"):
            write_results(res, out, overwrite=True, report=False)
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    out = write_results(res, tmp_path / "res", report=False)
    assert json.loads((out / "run.json").read_text())["inputs"]["fluorescence"]["path"].endswith("fluorescence.tif")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    dtype=st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64", "bool", "complex64", "object"]),
    fps=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 500)),
    low=st.floats(-5, 60), high=st.floats(-5, 60), order=st.integers(-1, 10),
    v0=st.integers(-10, 60), v1=st.integers(-10, 60),
    max_lag=st.one_of(st.none(), st.floats(-1, 5)),
    seed=st.integers(0, 2**31),
)
def test_random_inputs_work_or_raise_our_error(shape, dtype, fps, low, high, order, v0, v1, max_lag, seed):
    """Whatever the shapes, dtypes and parameters: a result, or a MicromotionError, never anything else."""
    rng = np.random.default_rng(seed)
    if dtype == "object":
        data = np.empty(shape, dtype=object)
    else:
        data = (rng.random(shape) * 100).astype(dtype)
    try:
        rec = Recording(data, fps)
        params = AnalysisParams(methods=("bandpass",), low_hz=low, high_hz=high, filter_order=order,
                                validation=(v0, v1), max_lag_s=max_lag, n_surrogates=5)
        res = run_analysis(rec, [], params)
    except MicromotionError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert res.energy_map.shape == data.shape[1:]


def _wait_for(proc, text, timeout=240):
    start = time.time()
    seen = ""
    while time.time() - start < timeout:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}; stderr so far:\n{seen}")


def test_ctrl_c_keeps_previous_results_and_leaves_no_partial_files(sim_dir, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "napari_micromotion.cli", "analyze", str(sim_dir / "transmission.tif"),
            "-f", str(sim_dir / "fluorescence.tif"), "--rois", str(sim_dir / "rois.json"), "--out", str(out),
            "--surrogates", "19", "--no-report"]
    assert subprocess.run(args, capture_output=True, timeout=600).returncode == 0
    before = _digest(out)
    # again, with the slow 1D CNN, interrupted while it trains
    # Ctrl-C as at a terminal: a job started in the background by a non-interactive shell (as CI may start
    # the tests) inherits SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler at all
    proc = subprocess.Popen(args + ["--overwrite", "--methods", "bandpass,cnn1d", "--cnn-epochs", "50", "--chunk-mb", "1"],
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(proc, "train cnn1d")
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in rest
    assert _digest(out) == before                      # previous results intact
    assert not list(tmp_path.glob(".out.*"))           # no partial files


def test_a_killed_run_leaves_a_sibling_that_the_next_run_removes(sim_dir, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "napari_micromotion.cli", "analyze", str(sim_dir / "transmission.tif"),
            "-f", str(sim_dir / "fluorescence.tif"), "--out", str(out), "--methods", "bandpass,cnn1d",
            "--cnn-epochs", "50", "--no-report"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(proc, "train cnn1d")
        proc.kill()  # a crash: no clean-up code runs
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    # the analysis writes its temporary folder only at the end, so a crash during training leaves nothing;
    # simulate a crash during writing by leaving a sibling of a dead process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.tmp-{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "half.csv").write_text("partial")
    assert remove_stale_siblings(out) == [stale] and not stale.exists()


def test_inputs_are_never_modified(sim_dir, tmp_path, capsys):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sim_dir.iterdir()}
    mtimes = {p: p.stat().st_mtime_ns for p in sim_dir.iterdir()}
    code = main(["analyze", str(sim_dir / "transmission.tif"), "-f", str(sim_dir / "fluorescence.tif"),
                 "--rois", str(sim_dir / "rois.json"), "--methods", "bandpass,matched,cnn1d,cnn3d",
                 "--out", str(tmp_path / "o"), "-q", *FAST_CNN])
    assert code == 0, capsys.readouterr().err
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sim_dir.iterdir()} == before
    assert {p: p.stat().st_mtime_ns for p in sim_dir.iterdir()} == mtimes
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["inputs"]["transmission"]["checksum"] == "sha256:" + before[sim_dir / "transmission.tif"]
    assert run["parameters"]["seed"] == 0 and run["package_versions"]["torch"]


def test_same_inputs_and_seed_give_the_same_outputs(small_sim):
    params = AnalysisParams(methods=("bandpass", "matched", "cnn1d", "cnn3d"), n_surrogates=19, seed=11,
                            method_params={"cnn1d": CNN1DParams(epochs=1, n_pixels=128, window=256),
                                           "cnn3d": CNN3DParams(epochs=3, mc_passes=3)})
    a = run_analysis(small_sim.recording(), small_sim.rois, params)
    b = run_analysis(small_sim.recording(), small_sim.rois, params)
    for m in a.score_maps:
        np.testing.assert_array_equal(a.score_maps[m], b.score_maps[m])
    for k in a.roi_traces:
        np.testing.assert_array_equal(a.roi_traces[k], b.roi_traces[k])
    for k in a.roi_sd:
        np.testing.assert_array_equal(a.roi_sd[k], b.roi_sd[k])
    assert a.roi_scores == b.roi_scores
    for pa, pb in zip(a.fits["cnn1d"].net.parameters(), b.fits["cnn1d"].net.parameters()):
        assert np.array_equal(pa.detach().numpy(), pb.detach().numpy())
    assert a.region_maps.keys() == b.region_maps.keys() and a.region_maps
    for key in a.region_maps:
        np.testing.assert_array_equal(a.region_maps[key].data, b.region_maps[key].data)


def test_larger_than_the_memory_budget_is_processed_from_scratch(tmp_path, monkeypatch, small_sim):
    path = tmp_path / "compressed.tif"
    tifffile.imwrite(path, small_sim.transmission[:400], compression="zlib", imagej=True,
                     metadata={"axes": "TYX", "finterval": 0.02})
    monkeypatch.setenv("MICROMOTION_MEMORY_BUDGET", str(1 << 20))   # 1 MiB: far below the 3 MiB decoded stack
    monkeypatch.setenv("MICROMOTION_SCRATCH", str(tmp_path))
    rec = read_recording(path)
    assert isinstance(rec.transmission, np.memmap)
    np.testing.assert_array_equal(rec.transmission, small_sim.transmission[:400])
    res = run_analysis(rec, [], AnalysisParams(methods=("bandpass",), chunk_mb=1))
    assert res.energy_map.shape == (64, 64)
    assert not list(tmp_path.glob("micromotion-*"))  # the scratch file is already unlinked
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 1000))
    with pytest.raises(MicromotionError, match="scratch folder"):
        read_recording(path)


def test_paths_of_the_wrong_kind_are_named_as_such(tmp_path):
    """A file where a model, a folder where a file, a file where a folder: never 'does not exist'."""
    from napari_micromotion.atomic import atomic_write
    from napari_micromotion.detectors.models import read_pair
    from napari_micromotion.results_io import read_results

    notes = tmp_path / "passwd"
    notes.write_text("root:x:0:0")
    with pytest.raises(MicromotionError, match="passwd is not a safetensors model file"):
        read_pair(notes, "rinner2020-cnn1d")          # not 'passwd.safetensors does not exist'
    with pytest.raises(MicromotionError, match="is a file, not a folder"):
        atomic_write(notes / "x.json", lambda tmp: tmp.write_text("{}"))
    with pytest.raises(MicromotionError, match="results folder .*passwd is a file, not a folder"):
        read_results(notes)
    assert notes.read_text() == "root:x:0:0"


def test_files_written_atomically_have_ordinary_permissions(tmp_path):
    """Exports were written 0600 (mkstemp's mode), and overwriting a 0644 file made it 0600."""
    from napari_micromotion.atomic import atomic_write

    mask = os.umask(0o022)
    try:
        new = atomic_write(tmp_path / "new.csv", lambda t: t.write_text("a\n"))
        assert new.stat().st_mode & 0o777 == 0o644
        old = tmp_path / "shared.csv"
        old.write_text("x\n")
        os.chmod(old, 0o640)
        atomic_write(old, lambda t: t.write_text("y\n"))
        assert old.stat().st_mode & 0o777 == 0o640 and old.read_text() == "y\n"
    finally:
        os.umask(mask)


def test_names_near_the_file_system_limit_can_be_written(sim_dir, tmp_path, capsys, monkeypatch):
    """Output names over ~234 characters were refused: the temporary sibling's name added a suffix to them."""
    from napari_micromotion.atomic import atomic_write, temp_sibling_dir
    from napari_micromotion.export import commit_output_dir, prepare_output_dir

    long = "r" * 250                      # the file system takes 255 bytes
    target = atomic_write(tmp_path / f"{long}.csv", lambda t: t.write_text("a\n"))
    assert target.read_text() == "a\n"
    out = tmp_path / long
    args = ["analyze", str(sim_dir / "transmission.tif"), "--methods", "bandpass", "--surrogates", "19",
            "--no-report", "--out", str(out), "-q"]
    assert main(args) == 0, capsys.readouterr().err
    first = (out / "run.json").read_text()
    assert main([*args, "--overwrite", "--save-filtered"]) == 0, capsys.readouterr().err   # old folder's sibling,
    assert (out / "run.json").read_text() != first and (out / "filtered.zarr").is_dir()     # the zarr scratch too
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, target.name])   # nothing left beside
    # a crash leaves short-named siblings: the next run still finds them by the folder they belong to
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    monkeypatch.setattr(os, "getpid", lambda: int(dead.stdout))
    stale = temp_sibling_dir(out, "tmp")
    other = temp_sibling_dir(tmp_path / "other", "tmp")            # another folder's: not this one's to remove
    monkeypatch.undo()
    assert len(stale.name) < 50
    tmp = prepare_output_dir(out, overwrite=True)
    assert not stale.exists() and other.exists()
    (tmp / "run.json").write_text("{}")
    commit_output_dir(tmp, out)
    assert (out / "run.json").read_text() == "{}"
    # a crash between the two renames of a commit: the previous results come back from their short-named sibling
    monkeypatch.setattr(os, "getpid", lambda: int(dead.stdout))
    moved = temp_sibling_dir(out, "old")
    monkeypatch.undo()
    moved.rmdir()
    os.replace(out, moved)
    remove_stale_siblings(out)
    assert (out / "run.json").read_text() == "{}" and not moved.exists()


def test_an_output_folder_given_as_a_model_finds_its_model(tmp_path):
    """A denoiser's or analysis' output folder picked as 'saved model' gave '<folder>.safetensors does not exist'."""
    import shutil

    from napari_micromotion.detectors.models import read_pair

    demo_like = tmp_path / "out"
    (demo_like / "models").mkdir(parents=True)
    for name, arch in (("cnn1d", "rinner2020-cnn1d"), ("other", "something-else")):
        (demo_like / "models" / f"{name}.safetensors").write_bytes(b"x")
        (demo_like / "models" / f"{name}.json").write_text(json.dumps({"architecture": arch}))
    with pytest.raises(MicromotionError, match="cnn1d.safetensors is not a safetensors model file"):
        read_pair(demo_like, "rinner2020-cnn1d")              # found (and then checked as any model is)
    shutil.rmtree(demo_like / "models")
    with pytest.raises(MicromotionError, match="is a folder with no .*choose the model file"):
        read_pair(demo_like, "rinner2020-cnn1d", what="1D CNN")
