"""dask: many recordings in parallel, and one recording split into pixel-chunk tasks (2-worker LocalCluster)."""

import csv
import shutil

import numpy as np
import pytest
import tifffile

from napari_micromotion.distributed import dask_chunks, make_client, open_zarr_stack, run_batch
from napari_micromotion.errors import MicromotionError
from napari_micromotion.filters import bandpass, design_bandpass
from napari_micromotion.io import read_recording
from napari_micromotion.pipeline import AnalysisParams, row_chunks, run_analysis
from napari_micromotion.recording import Recording
from napari_micromotion.rois import read_rois


@pytest.fixture(scope="module")
def client():
    c = make_client(None, n_workers=2)
    assert len(c.scheduler_info()["workers"]) == 2
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


def test_chunk_tasks_equal_the_local_run(client, sim_dir, tmp_path):
    rec = read_recording(sim_dir / "transmission.tif", sim_dir / "fluorescence.tif")
    rois = read_rois(sim_dir / "rois.json")
    params = AnalysisParams(methods=("bandpass", "matched"), chunk_mb=4, n_surrogates=99)
    assert len(row_chunks(rec.n_frames, rec.frame_shape, 4)) > 4  # really split into many tasks
    shape = (rec.n_frames, *rec.frame_shape)
    rows = row_chunks(rec.n_frames, rec.frame_shape, 4)[0]
    store = open_zarr_stack(tmp_path / "filtered.zarr", shape, rows[1] - rows[0])
    remote = run_analysis(rec, rois, params, run_chunks=dask_chunks(client), filtered_out=store)
    local = run_analysis(rec, rois, params)
    for m in ("bandpass", "matched"):
        # the per-pixel scores are matrix products: BLAS rounds them differently with one thread per dask
        # worker than with the local thread pool, in the 7th digit
        np.testing.assert_allclose(remote.score_maps[m], local.score_maps[m], rtol=1e-5, atol=1e-6)
        assert np.mean(remote.lag_maps[m] == local.lag_maps[m]) > 0.999
    for key in local.roi_traces:
        np.testing.assert_array_equal(remote.roi_traces[key], local.roi_traces[key])  # folded in chunk order
    assert [r["score"] for r in remote.roi_scores] == [r["score"] for r in local.roi_scores]
    # the band-passed video landed in the zarr store, chunk by chunk
    ref = bandpass(np.asarray(rec.transmission).reshape(rec.n_frames, -1), design_bandpass(50.0))
    np.testing.assert_array_equal(np.asarray(store[:]).reshape(rec.n_frames, -1), ref)


def test_in_memory_data_cannot_travel(client, small_sim):
    rec = Recording(np.array(small_sim.transmission), 50.0, np.array(small_sim.fluorescence))
    with pytest.raises(MicromotionError, match="memory-mapped"):
        run_analysis(rec, [], AnalysisParams(methods=("bandpass",)), run_chunks=dask_chunks(client))


def test_batch_of_recordings(client, sim_dir, tmp_path, capsys):
    recs = tmp_path / "recs"
    recs.mkdir()
    for k in range(2):
        shutil.copy(sim_dir / "transmission.tif", recs / f"day{k}_transmission.tif")
        shutil.copy(sim_dir / "fluorescence.tif", recs / f"day{k}_fluorescence.tif")
    shutil.copy(sim_dir / "rois.json", recs / "rois.json")
    (recs / "broken_transmission.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    params = AnalysisParams(methods=("bandpass",), n_surrogates=49)
    # '*.tif' matches the fluorescence files too: they belong to day0/day1 and are not recordings of their own
    code = run_batch(str(recs / "*.tif"), out, params, client=client)
    assert code == 2  # one recording is broken
    err = capsys.readouterr().err
    assert "skipped 2 fluorescence file(s) that belong to other recordings (e.g. day0_fluorescence.tif)" in err
    assert "[3/3]" in err and "[4/" not in err
    rows = list(csv.DictReader(open(out / "batch_summary.csv")))
    status = {r["recording"].split("/")[-1]: r for r in rows}
    assert sorted(status) == ["broken_transmission.tif", "day0_transmission.tif", "day1_transmission.tif"]
    # no day0_fluorescence/ folder (and none for the broken recording)
    assert sorted(p.name for p in out.iterdir()) == ["batch_summary.csv", "day0_transmission", "day1_transmission"]
    assert status["day0_transmission.tif"]["status"] == "ok" and status["day1_transmission.tif"]["status"] == "ok"
    assert status["broken_transmission.tif"]["status"] == "error"
    assert "TIFF" in status["broken_transmission.tif"]["message"]
    for k in range(2):
        folder = out / f"day{k}_transmission"
        assert tifffile.imread(folder / "scores" / "bandpass.tif").shape == (64, 64)
        assert (folder / "roi_scores.csv").is_file()   # ROIs found beside the recording, fluorescence by name
    a = tifffile.imread(out / "day0_transmission" / "scores" / "bandpass.tif")
    b = tifffile.imread(out / "day1_transmission" / "scores" / "bandpass.tif")
    np.testing.assert_array_equal(a, b)
    with pytest.raises(MicromotionError, match="allow replacing them") as info:
        run_batch(str(recs / "day*_transmission.tif"), out, params, client=client, quiet=True)
    assert "pass --overwrite" in info.value.for_cli()
    with pytest.raises(MicromotionError, match="no recordings"):
        run_batch(str(recs / "*.nothing"), out, params, client=client, quiet=True)


@pytest.mark.parametrize("params, message", [
    (AnalysisParams(methods=("foo",)), "unknown method"),
    (AnalysisParams(methods=("bandpass",), low_hz=10.0, high_hz=2.0), "must be below the high edge"),
])
def test_batch_checks_its_parameters_before_anything(sim_dir, tmp_path, params, message):
    """A mistake every recording would repeat is one error up front: no workers, no output folder."""
    out = tmp_path / "out"
    with pytest.raises(MicromotionError, match=message):
        run_batch(str(sim_dir / "transmission.tif"), out, params, client=object(), quiet=True)
    assert not out.exists()


def test_batch_refuses_named_inputs_it_cannot_find(sim_dir, tmp_path):
    """--rois and --fluorescence-suffix given by name but missing: one error up front, not a silent run without them."""
    out = tmp_path / "out"
    params = AnalysisParams(methods=("bandpass",))
    with pytest.raises(MicromotionError, match="ROI file .*nope.json does not exist"):
        run_batch(str(sim_dir / "transmission.tif"), out, params, client=object(), rois=str(tmp_path / "nope.json"))
    with pytest.raises(MicromotionError, match="no fluorescence file named with 'calcium'.* 1 of 1 recordings"):
        run_batch(str(sim_dir / "transmission.tif"), out, params, client=object(), fluorescence_suffix="calcium")
    assert not out.exists()


def test_fluorescence_files_matched_by_the_glob_are_not_counted_as_recordings(sim_dir, tmp_path):
    """With --fluorescence-suffix, a matched partner file is not a recording 'without its fluorescence'."""
    recs = tmp_path / "recs"
    recs.mkdir()
    for name in ("day0_transmission.tif", "day0_calcium.tif", "day1_transmission.tif"):
        shutil.copy(sim_dir / "transmission.tif", recs / name)
    with pytest.raises(MicromotionError, match="'calcium' .* for 1 of 2 recordings .*day1_transmission.tif"):
        run_batch(str(recs / "*.tif"), tmp_path / "out", AnalysisParams(methods=("bandpass",)), client=object(),
                  fluorescence_suffix="calcium", quiet=True)
    assert not (tmp_path / "out").exists()


class _Borrowed:
    """The module's client, handed to the command line as if it made it (closing it does nothing)."""

    cluster = None

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def close(self):
        pass


@pytest.fixture
def interrupted_after_first(monkeypatch):
    """Make run_batch's wait for results raise *exc* once the first recording's result is in."""
    import distributed

    def install(exc):
        def as_completed(futures):
            futures[0].result()
            yield futures[0]
            raise exc

        monkeypatch.setattr(distributed, "as_completed", as_completed)

    return install


def _three_recordings(sim_dir, tmp_path):
    recs = tmp_path / "recs"
    recs.mkdir()
    for k in range(3):
        shutil.copy(sim_dir / "transmission.tif", recs / f"day{k}_transmission.tif")
    return recs


def test_an_interrupted_batch_lists_what_finished_and_what_did_not(client, sim_dir, tmp_path, interrupted_after_first):
    """Ctrl-C said 'no output was written' beside the finished recordings' folders, and wrote no summary."""
    from napari_micromotion.distributed import BatchInterrupted

    recs = _three_recordings(sim_dir, tmp_path)
    out = tmp_path / "out"
    interrupted_after_first(KeyboardInterrupt())
    with pytest.raises(BatchInterrupted) as info:
        run_batch(str(recs / "*.tif"), out, AnalysisParams(methods=("bandpass",), n_surrogates=49), client=client,
                  quiet=True)
    assert isinstance(info.value, KeyboardInterrupt) and type(info.value.__cause__) is KeyboardInterrupt
    assert str(info.value) == (f"interrupted after 1 of 3 recordings finished; the results and batch_summary.csv "
                               f"are in {out}, the other 2 were not run.")
    rows = {r["recording"].split("/")[-1]: r for r in csv.DictReader(open(out / "batch_summary.csv"))}
    assert [rows[f"day{k}_transmission.tif"]["status"] for k in range(3)] == ["ok", "not run", "not run"]
    assert rows["day0_transmission.tif"]["out"] == str(out / "day0_transmission")
    assert "interrupted" in rows["day1_transmission.tif"]["message"]
    assert (out / "day0_transmission" / "run.json").is_file()
    # no half-written summary beside it (a temporary file; a recording still running on this test's shared client
    # may still have its temporary folder here, which its own run removes or commits)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.is_file()]


@pytest.mark.parametrize("terminated", [False, True])
def test_an_interrupted_batch_says_so_on_the_command_line(client, sim_dir, tmp_path, interrupted_after_first,
                                                          monkeypatch, capsys, terminated):
    from napari_micromotion import cli
    from napari_micromotion import distributed as batch

    recs = _three_recordings(sim_dir, tmp_path)
    out = tmp_path / "out"
    monkeypatch.setattr(batch, "make_client", lambda *a, **k: _Borrowed(client))
    interrupted_after_first(cli.Terminated() if terminated else KeyboardInterrupt())
    code = cli.main(["batch", str(recs / "*.tif"), "--out", str(out), "--methods", "bandpass",
                     "--surrogates", "49", "-q"])
    err = capsys.readouterr().err
    assert code == (143 if terminated else 130)
    assert err.strip() == (f"error: interrupted after 1 of 3 recordings finished; the results and "
                           f"batch_summary.csv are in {out}, the other 2 were not run.")
    assert len(list(csv.DictReader(open(out / "batch_summary.csv")))) == 3


def test_a_batch_output_on_a_read_only_file_system_is_one_sentence(sim_dir, tmp_path, capsys, monkeypatch):
    import pathlib

    from napari_micromotion.cli import main

    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.name == "out":
            raise OSError(30, "Read-only file system")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    code = main(["batch", str(sim_dir / "transmission.tif"), "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot create") and "Read-only file system" in err
    assert len(err.strip().splitlines()) == 1


def test_batch_of_interleaved_recordings(client, small_sim, sim_dir, tmp_path):
    # every file holds brightfield and calcium in turn: read each as its two channels, or refuse a bad count up front
    t, f = np.asarray(small_sim.transmission), np.asarray(small_sim.fluorescence)
    mixed = np.empty((2 * len(t), *t.shape[1:]), np.float32)
    mixed[0::2], mixed[1::2] = t, f
    recs = tmp_path / "recs"
    recs.mkdir()
    tifffile.imwrite(recs / "a.tif", mixed, imagej=True, metadata={"axes": "TYX", "finterval": 0.5 / small_sim.params.fps})
    shutil.copy(sim_dir / "rois.json", recs / "rois.json")
    params = AnalysisParams(methods=("bandpass",), n_surrogates=49)
    with pytest.raises(MicromotionError, match="interleaved channels must be a whole number from 1"):
        run_batch(str(recs / "*.tif"), tmp_path / "bad", params, client=object(), quiet=True, interleaved=0)
    assert not (tmp_path / "bad").exists()
    assert run_batch(str(recs / "*.tif"), tmp_path / "out", params, client=client, quiet=True, interleaved=2) == 0
    scores = tifffile.imread(tmp_path / "out" / "a" / "scores" / "bandpass.tif")
    single = tmp_path / "single"
    assert run_batch(str(sim_dir / "transmission.tif"), single, params, client=client, quiet=True) == 0
    np.testing.assert_allclose(scores, tifffile.imread(single / "transmission" / "scores" / "bandpass.tif"), atol=1e-6)


def test_batch_takes_several_recordings_as_an_unquoted_glob_gives_them(client, sim_dir, tmp_path, monkeypatch, capsys):
    """`micromotion batch recs/*.tif` without quotes: the shell gives each file, and argparse refused the second."""
    from napari_micromotion import cli
    from napari_micromotion import distributed as batch

    recs = _three_recordings(sim_dir, tmp_path)
    out = tmp_path / "out"
    monkeypatch.setattr(batch, "make_client", lambda *a, **k: _Borrowed(client))
    files = [str(recs / f"day{k}_transmission.tif") for k in (1, 0)]
    code = cli.main(["batch", *files, str(recs / "day0_*.tif"), "--out", str(out), "--methods", "bandpass",
                     "--surrogates", "49", "-q"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "batch_summary.csv")))
    assert [r["recording"].split("/")[-1] for r in rows] == ["day0_transmission.tif", "day1_transmission.tif"]
    assert sorted(p.name for p in out.iterdir()) == ["batch_summary.csv", "day0_transmission", "day1_transmission"]
    code = cli.main(["batch", files[0], str(recs / "day9_transmission.tif"), "--out", str(tmp_path / "o2"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: no recordings match {str(recs / 'day9_transmission.tif')!r}."
    assert not (tmp_path / "o2").exists()
