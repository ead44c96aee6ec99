import json
import re

import numpy as np
import pytest
import tifffile

from napari_micromotion.errors import MicromotionError
from napari_micromotion.io import read_recording
from napari_micromotion.rois import rasterize, read_rois
from napari_micromotion.simulate import simulate


def test_deterministic_per_seed():
    a = simulate(n_frames=60, size=64, seed=5)
    b = simulate(n_frames=60, size=64, seed=5)
    c = simulate(n_frames=60, size=64, seed=6)
    np.testing.assert_array_equal(a.transmission, b.transmission)
    np.testing.assert_array_equal(a.fluorescence, b.fluorescence)
    assert a.truth == b.truth
    assert not np.array_equal(a.transmission, c.transmission)


def test_rois_and_truth(small_sim):
    kinds = {r.kind for r in small_sim.rois}
    assert kinds == {"strong", "weak", "silent", "other"}
    t = small_sim.truth
    assert t["amplitude_px"]["strong"] == pytest.approx(2.0)
    assert 0 < t["amplitude_px"]["weak"] < 1 and t["amplitude_px"]["silent"] == 0
    assert t["has_calcium"]["silent"] and not t["has_calcium"]["other"]
    assert len(t["calcium_onsets_s"]) >= 8  # ~2.8 s period over 30 s
    masks = rasterize(small_sim.rois, (64, 64))
    assert not (masks.masks.sum(axis=0) > 1).any()  # test regions do not overlap


def test_physics_shot_noise_and_motion(small_sim):
    p = small_sim.params
    tr = small_sim.transmission.astype(np.float64)
    gain = small_sim.truth["gain_e_per_adu"]
    # shot noise at ~0.6 full well: frame-to-frame differences of still pixels match sqrt(N_e)
    masks = rasterize(small_sim.rois, (p.size, p.size))
    silent = masks.masks[[r.kind for r in small_sim.rois].index("silent")]
    e = (tr[:, silent] - p.offset_adu) * gain
    d = np.diff(e, axis=0)
    expected = np.sqrt(2 * e.mean(axis=0))
    ratio = np.median(d.std(axis=0) / expected)
    assert ratio == pytest.approx(1.0, abs=0.1)
    assert 0.45 * p.full_well_e < e.mean() < 0.75 * p.full_well_e
    # the strong cell moves more than the silent one
    strong = masks.masks[[r.kind for r in small_sim.rois].index("strong")]
    var_strong = np.percentile(np.var(np.diff(tr[:, strong], axis=0), axis=0), 95)
    var_silent = np.percentile(np.var(np.diff(tr[:, silent], axis=0), axis=0), 95)
    assert var_strong > 1.5 * var_silent  # membrane pixels of the contracting cell
    # calcium transients and bleaching in fluorescence
    f = small_sim.fluorescence.reshape(p.n_frames, -1).sum(axis=1).astype(float)
    assert f.max() > 1.2 * np.median(f)


def test_written_files_are_imagej_with_metadata(sim_dir, small_sim):
    rec = read_recording(sim_dir / "transmission.tif", sim_dir / "fluorescence.tif")
    assert rec.fps == pytest.approx(50.0)
    assert rec.pixel_size_um == pytest.approx(small_sim.params.pixel_size_um, rel=1e-4)
    np.testing.assert_array_equal(rec.transmission, small_sim.transmission)
    np.testing.assert_array_equal(rec.fluorescence, small_sim.fluorescence)
    assert [r.name for r in read_rois(sim_dir / "rois.json")] == [r.name for r in small_sim.rois]
    truth = json.loads((sim_dir / "truth.json").read_text())
    assert truth["calcium_onsets_s"] == small_sim.truth["calcium_onsets_s"]
    with tifffile.TiffFile(sim_dir / "transmission.tif") as tf:
        assert tf.is_imagej and tf.imagej_metadata["finterval"] == pytest.approx(0.02)


def test_bad_parameters():
    with pytest.raises(MicromotionError, match="48-4096"):
        simulate(n_frames=100, size=20)
    with pytest.raises(MicromotionError, match="at least 16 frames"):
        simulate(n_frames=3, size=64)
    with pytest.raises(MicromotionError, match="unknown simulation parameter"):
        simulate(n_frames=100, size=64, colour="red")


# ---------------------------------------------------------------- cell-finding options (issue 15)
def test_independent_firing_decorrelates_cells():
    from napari_micromotion.simulate import SimulationParams, Simulator

    sync = Simulator(SimulationParams(n_frames=1500, size=96, seed=4))
    ind = Simulator(SimulationParams(n_frames=1500, size=96, seed=4, firing="independent"))
    for sim, low, high in ((sync, 0.9, 1.01), (ind, -1.0, 0.5)):
        cal = sim.calcium[sim.has_calcium]
        corr = np.corrcoef(cal)
        off = corr[~np.eye(len(cal), dtype=bool)]
        assert low <= np.median(off) <= high
    # every calcium cell still fires, on its own beat, and the roles keep their meaning
    assert (ind.calcium[ind.has_calcium].max(axis=1) > 0.5).all()
    assert not ind.has_calcium[ind.roles["other"]] and ind.has_calcium[ind.roles["silent"]]
    # the layout and the layout's random numbers are untouched
    np.testing.assert_array_equal(sync.labels, ind.labels)


def test_inactive_cells_never_fire_and_truth():
    sim = simulate(n_frames=100, size=96, seed=2, inactive_cells=3, firing="independent")
    t = sim.truth
    assert len(t["inactive_cells"]) == 3
    assert not set(t["inactive_cells"]) & set(t["active_cells"])
    assert not set(t["inactive_cells"]) & set(t["roles"].values())
    assert sorted(t["active_cells"]) == [int(c) for c in sim.active_cells]
    assert sim.cell_labels.dtype == np.int32 and sim.cell_labels.shape == (96, 96)
    assert sim.cell_labels.min() >= 1 and sim.cell_labels.max() == t["n_cells"]
    assert t["params"]["firing"] == "independent" and t["params"]["inactive_cells"] == 3
    assert set(t["role_onsets_s"]) == {"strong", "weak", "silent"}

    from napari_micromotion.simulate import SimulationParams, Simulator

    s = Simulator(SimulationParams(n_frames=100, size=96, seed=2, inactive_cells=3))
    assert (s.calcium[s.inactive] == 0).all() and (s.amplitude_px[s.inactive] == 0).all()


def test_default_output_unchanged_by_cell_options():
    a = simulate(n_frames=40, size=64, seed=5)
    b = simulate(n_frames=40, size=64, seed=5, firing="synchronous", inactive_cells=0)
    np.testing.assert_array_equal(a.transmission, b.transmission)
    np.testing.assert_array_equal(a.fluorescence, b.fluorescence)
    assert a.truth == b.truth
    for key in ("active_cells", "inactive_cells", "role_onsets_s"):
        assert key not in a.truth
    assert "firing" not in a.truth["params"] and "inactive_cells" not in a.truth["params"]
    # the in-memory label map is always there
    assert a.cell_labels.shape == (64, 64) and len(a.active_cells) == a.truth["n_cells"] - 1


def test_labels_tif_written_with_cell_options(tmp_path):
    from napari_micromotion.simulate import write_simulation

    plain = write_simulation(tmp_path / "plain", n_frames=20, size=64, seed=1)
    assert not (plain / "labels.tif").exists()
    cells = write_simulation(tmp_path / "cells", n_frames=20, size=64, seed=1, inactive_cells=1)
    forced = write_simulation(tmp_path / "forced", n_frames=20, size=64, seed=1, labels=True)
    lab = tifffile.imread(cells / "labels.tif")
    assert lab.dtype == np.int32 and lab.shape == (64, 64)
    np.testing.assert_array_equal(lab, tifffile.imread(forced / "labels.tif"))
    assert "active_cells" in json.loads((cells / "truth.json").read_text())


@pytest.mark.parametrize("overrides, message", [
    ({"spike_period_s": 0}, "spike period (s) must be a positive number"),       # looped for ever
    ({"spike_period_s": 0.01}, "at least two frames"),
    ({"fps": "50"}, "fps must be a positive number"),
    ({"contraction_rise_s": 0}, "contraction rise (s) must be a positive number"),  # divided by zero
    ({"bleach_tau_s": 0}, "bleach tau (s)"),
    ({"dff_amplitude": float("nan")}, "dff amplitude must be a non-negative number"),
    ({"background_px": (0.8, 0.2)}, "low <= high"),
    ({"cells_across": 100}, "less than the 8 px a cell needs"),
    ({"read_noise_e": -3}, "read noise (electrons)"),
    ({"cell_diameter_um": 0}, "cell diameter (um)"),
    ({"spike_jitter": True}, "spike jitter must be a number from 0 to 1"),
])
def test_every_number_is_checked_before_any_work(overrides, message):
    with pytest.raises(MicromotionError, match=re.escape(message)):
        simulate(n_frames=400, size=48, **overrides)


def test_bad_cell_options():
    with pytest.raises(MicromotionError, match="firing must be one of"):
        simulate(n_frames=20, size=64, firing="random")
    with pytest.raises(MicromotionError, match="inactive cells must be a non-negative integer"):
        simulate(n_frames=20, size=64, inactive_cells=-1)


@pytest.mark.parametrize("frames_before_full", [0, 3])
@pytest.mark.parametrize("clean", [False, True])
def test_write_simulation_on_a_full_disk(tmp_path, monkeypatch, frames_before_full, clean):
    """A write that fails (disk full) ends in one sentence and leaves nothing; it used to hang its writer threads."""
    import errno
    import threading

    from napari_micromotion import simulate as sim_module

    real = tifffile.imwrite

    def full_disk(path, data=None, **kw):
        if str(path).endswith("transmission.tif"):
            for k, _ in enumerate(data):
                if k >= frames_before_full:
                    break
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, **kw)

    monkeypatch.setattr(tifffile, "imwrite", full_disk)
    caught = []

    def run():
        try:
            sim_module.write_simulation(tmp_path / "sim", n_frames=80, size=48, seed=1, clean=clean)
        except BaseException as exc:  # noqa: BLE001 - examined below
            caught.append(exc)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout=60)
    assert not th.is_alive(), "write_simulation hung"
    assert len(caught) == 1 and isinstance(caught[0], MicromotionError)
    assert "could not write the simulation" in str(caught[0]) and "No space left" in str(caught[0])
    assert list(tmp_path.iterdir()) == []          # no output and no temporary folder left behind


def test_more_special_cells_than_the_frame_holds_is_one_sentence():
    """Asking for more cells without dye (or that never fire) than there are free cells: an error, not a silent cut."""
    for kw in ({"unloaded_cells": 1000}, {"inactive_cells": 1000}):
        with pytest.raises(MicromotionError, match="interior cells"):
            simulate(n_frames=20, size=64, seed=1, **kw)
