import json

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
