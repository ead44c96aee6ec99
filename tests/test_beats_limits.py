import numpy as np
import pytest

from napari_micromotion.beats import beat_stats, beats_from_fluorescence, match_times
from napari_micromotion.filters import bandpass, design_bandpass
from napari_micromotion.limits import CameraParams, detection_limit, noise_bandwidth_fraction
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.recording import Recording
from napari_micromotion.rois import rasterize

from .conftest import SHARED


@pytest.mark.parametrize("beats_from, source", [("energy", "transmission"), ("contraction", "motion"),
                                                ("auto", "motion")])
def test_transmission_beats_match_planted_onsets(small_sim, beats_from, source):
    """Beats from the transmission video alone (no fluorescence) against the simulator's truth."""
    rec = Recording(small_sim.transmission, 50.0)  # transmission only: auto takes contraction beats
    res = run_analysis(rec, small_sim.rois, AnalysisParams(methods=("bandpass",), beats_from=beats_from))
    assert {b["source"] for b in res.beats} == {source} and {r["source"] for r in res.beat_rates} == {source}
    truth = np.array(small_sim.truth["calcium_onsets_s"]) + small_sim.truth["contraction_delay_s"]
    strong = np.array([b["time_s"] for b in res.beats if b["roi"] == "strong" and b["source"] == source])
    matched, err = match_times(strong, truth, tolerance_s=0.15)
    assert matched >= 0.9 * truth.size
    assert strong.size <= truth.size + 1              # no double counting of contraction and relaxation
    # zero-phase filtering moves the energy onset slightly earlier, the 10 % level of contraction slightly
    # later, by a constant: RR intervals are exact
    assert np.std(err) < 0.02
    rate = next(r for r in res.beat_rates if r["roi"] == "strong" and r["source"] == source)
    true_rate = 60 / np.mean(np.diff(truth))
    assert rate["rate_bpm"] == pytest.approx(true_rate, rel=0.05)
    assert rate["rr_sd_s"] == pytest.approx(np.std(np.diff(truth), ddof=1), abs=0.05)
    # the cell that beats on its own rhythm is found at its own rate
    other_truth = np.array(small_sim.truth["other_onsets_s"]) + small_sim.truth["contraction_delay_s"]
    other = np.array([b["time_s"] for b in res.beats if b["roi"] == "other" and b["source"] == source])
    assert match_times(other, other_truth, 0.15)[0] >= 0.8 * other_truth.size


def test_a_real_brightfield_video_gives_one_beat_per_contraction():
    """The microbundle (MIT, see its SOURCE.md) at 20 fps: four contractions, peaks near frames 7, 29, 50, 71.

    Band-pass energy bursts at contraction and again at relaxation; analyze's beats on brightfield
    alone come from the displacement, once per cycle.
    """
    from napari_micromotion.io import read_recording

    folder = SHARED / "microbundle-tif-series"
    assert folder.is_dir(), f"shared data missing: {folder}"
    res = run_analysis(read_recording(folder, fps=20.0), [], AnalysisParams(methods=("bandpass",)))
    assert {b.source for b in res.beats} == {"motion"}
    peaks = np.array([b.peak_time_s for b in res.beats]) * 20
    np.testing.assert_allclose(peaks, [7, 29, 50, 71], atol=1.5)
    (rate,) = res.beat_rates
    assert rate.n_beats == 4 and rate.rr_cv < 0.05


def test_fluorescence_beats(small_sim):
    trace = small_sim.fluorescence.reshape(small_sim.params.n_frames, -1).sum(axis=1).astype(float)
    times = beats_from_fluorescence(trace, 50.0)
    truth = np.array(small_sim.truth["calcium_onsets_s"])
    matched, err = match_times(times, truth, 0.1)
    assert matched == truth.size == times.size
    assert np.all(np.abs(err) < 0.08)


def test_beat_stats():
    s = beat_stats(np.array([0.0, 1.0, 2.0, 3.5]))
    assert s["n_beats"] == 4 and s["rr_mean_s"] == pytest.approx(7 / 6) and s["rate_bpm"] == pytest.approx(60 / (7 / 6))
    assert s["rmssd_s"] == pytest.approx(np.sqrt(np.mean(np.array([0.0, 0.5]) ** 2)))
    assert np.isnan(beat_stats(np.array([1.0]))["rate_bpm"])


def _silent_cell(sim):
    """What detection_limit takes for the simulated silent cell: still image, mask, band-passed ROI mean, band-pass,
    pixel size and the simulator's camera."""
    p = sim.params
    d = design_bandpass(50.0)
    masks = rasterize(sim.rois, (p.size, p.size))
    mask = masks.masks[masks.names.index("silent")]
    trace = bandpass(sim.transmission.reshape(p.n_frames, -1)[:, mask.ravel()], d).mean(axis=1)
    still = sim.transmission[:50].astype(np.float64).mean(axis=0)
    cam = CameraParams(gain_e_per_adu=sim.truth["gain_e_per_adu"], offset_adu=p.offset_adu, full_well_e=1e5,
                       event_s=0.2)
    return still, mask, trace, d, p.pixel_size_um, cam


def test_detection_limit_follows_the_shot_noise_formula(small_sim):
    still, mask, trace, d, px, cam = _silent_cell(small_sim)
    lim = detection_limit(still, mask, trace, d, px, cam)
    n_px = int(mask.sum())
    assert lim["n_px"] == n_px and lim["n_frames_binned"] == 10
    assert lim["shot_floor_rel_at_full_well"] == pytest.approx(1 / np.sqrt(10 * n_px * 1e5))
    assert lim["electrons_per_px"] == pytest.approx(0.6 * 1e5, rel=0.2)
    # the silent cell has no motion: its measured noise is shot noise (excess ~1)
    assert lim["noise_excess"] == pytest.approx(1.0, abs=0.25)
    assert 0 < lim["min_displacement_nm"] < 50
    assert 0 < noise_bandwidth_fraction(d) < 1


def test_beat_functions_refuse_a_rate_that_is_no_rate():
    from napari_micromotion.beats import beats_from_energy, beats_from_fluorescence
    from napari_micromotion.errors import MicromotionError

    trace = np.abs(np.random.default_rng(0).normal(size=500))
    assert beats_from_energy(trace, 50.0).ndim == 1
    for fps in (0, -1.0, float("nan"), "50", True):
        with pytest.raises(MicromotionError, match="frame rate must be a positive number"):
            beats_from_energy(trace, fps)
        with pytest.raises(MicromotionError, match="frame rate must be a positive number"):
            beats_from_fluorescence(trace + 1, fps)
    with pytest.raises(MicromotionError, match=r"one trace \(T,\)"):
        beats_from_energy(trace.reshape(50, 10), 50.0)


def test_a_black_patch_does_not_make_the_displacement_limit_vanish(small_sim):
    """The microbundle's black pixels (0 grey levels) gave a relative gradient of 1e12 and a 1e-18 px limit."""
    still, mask, trace, d, px, cam = _silent_cell(small_sim)
    clean = detection_limit(still, mask, trace, d, px, cam)
    rows, cols = np.nonzero(mask)
    dark = still.copy()
    dark[rows[:6], cols[:6]] = cam.offset_adu                 # six pixels without light
    lim = detection_limit(dark, mask, trace, d, px, cam)
    assert lim["dark_px"] == 6 and clean["dark_px"] == 0
    assert lim["gradient_rel_per_px"] < 3 * clean["gradient_rel_per_px"]
    assert 0.3 * clean["min_displacement_px"] < lim["min_displacement_px"] < 3 * clean["min_displacement_px"]
