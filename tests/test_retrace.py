"""Re-tracing edited ROIs in the core gives the numbers a fresh analysis gives (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_micromotion.detectors.cnn1d import CNN1DParams, Normalisation, TrainedCNN1D, build_cnn1d
from napari_micromotion.detectors.cnn3d import CNN3DParams
from napari_micromotion.detectors.matched import MatchedParams
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.progress import drive
from napari_micromotion.retrace import changed_rois, iter_retrace
from napari_micromotion.rois import ROI


def square(r, c, h=8, w=8):
    return np.array([[r, c], [r, c + w], [r + h, c + w], [r + h, c]], float)


def _random_model(fps: float) -> TrainedCNN1D:
    """An untrained 1D CNN: enough to check that re-tracing applies the analysis' own model."""
    return TrainedCNN1D(net=build_cnn1d(3), normalisation=Normalisation(1.0, 0.0, 1.0, mode="noise"), fps=fps,
                        passband_hz=(2.0, 15.0), filter_order=2, training_frames=[])


@pytest.fixture(scope="module")
def sim():
    from napari_micromotion.simulate import simulate

    return simulate(n_frames=400, size=48, seed=5)


def _assert_same(new, ref, p_tol=0.0):
    assert new.roi_names == ref.roi_names and new.roi_kinds == ref.roi_kinds
    assert set(new.roi_traces) == set(ref.roi_traces)
    for key, tr in ref.roi_traces.items():
        np.testing.assert_allclose(new.roi_traces[key], tr, rtol=2e-4, atol=1e-6 * float(np.abs(tr).max()))
    got = {(r.roi, r.method): r for r in new.roi_scores}
    assert set(got) == {(r.roi, r.method) for r in ref.roi_scores}
    for row in ref.roi_scores:
        g = got[(row.roi, row.method)]
        assert g.kind == row.kind and g.n_pixels == row.n_pixels
        assert g.score == pytest.approx(row.score, abs=1e-4)
        assert g.lag_s == pytest.approx(row.lag_s)
        assert g.p_value == pytest.approx(row.p_value, abs=p_tol)


def test_retrace_matches_a_fresh_analysis(sim):
    """Moving, adding, removing and re-labelling ROIs gives the numbers a fresh analysis gives."""
    rec = sim.recording()
    params = AnalysisParams(methods=("bandpass", "matched", "cnn1d"), n_surrogates=29, device="cpu",
                            method_params={"matched": MatchedParams(min_spikes=2)})
    fitted = {"cnn1d": _random_model(rec.fps)}
    rois = sim.rois
    res = run_analysis(rec, rois, params, fitted=fitted)
    assert res.roi_traces[("strong", "cnn1d")].std() > 0
    edited = [
        rois[0],                                                   # unchanged
        ROI("weak", "silent", rois[1].polygon + [2.0, -1.0]),      # moved and re-labelled
        ROI("new", "other", square(2, 2, 9, 7)),                   # added
    ]                                                              # silent and other: removed
    assert changed_rois(res, edited, rec.frame_shape) == ["weak", "new"]
    new = drive(iter_retrace(rec, edited, res))
    ref = run_analysis(rec, edited, params, fitted=fitted)
    _assert_same(new, ref)   # same ROI positions in the list: the same surrogates, the same p-values
    assert new.roi_traces[("strong", "bandpass")] is res.roi_traces[("strong", "bandpass")]  # kept as is
    assert new.score_maps is res.score_maps   # the maps do not depend on ROIs
    # beats and detection limits follow the edit too
    assert {b.roi for b in new.limits} == {"strong", "weak", "new"}
    lim = {b.roi: b for b in ref.limits}
    for row in new.limits:
        assert row.min_displacement_px == pytest.approx(lim[row.roi].min_displacement_px, rel=1e-4)


def test_retrace_with_a_fluorescence_trace_and_roi_truth(sim):
    """A (T,) fluorescence trace with per-ROI ground truth: an edited ROI is scored like a fresh run (was nan)."""
    full = sim.recording()
    trace = np.asarray(full.fluorescence, np.float64).sum(axis=(1, 2))
    rec = full.with_(fluorescence=trace)
    params = AnalysisParams(methods=("bandpass",), n_surrogates=29, roi_truth=True)
    rois = sim.rois
    res = run_analysis(rec, rois, params)
    edited = [rois[0], ROI("weak", "weak", rois[1].polygon + [1.0, 1.0])] + list(rois[2:])
    new = drive(iter_retrace(rec, edited, res))
    ref = run_analysis(rec, edited, params)
    _assert_same(new, ref)
    weak = next(r for r in new.roi_scores if r.roi == "weak")
    assert np.isfinite(weak.score) and weak.score > 0


def test_retrace_refits_the_3d_network_of_edited_rois(sim):
    rec = sim.recording()
    params = AnalysisParams(methods=("cnn3d",), n_surrogates=19, device="cpu",
                            method_params={"cnn3d": CNN3DParams(mc_passes=3, window=128),
                                           "cnn1d": CNN1DParams(epochs=1, n_pixels=64, window=128)})
    rois = sim.rois[:2]
    res = run_analysis(rec, rois, params)
    assert set(res.fits) == {"cnn1d", "cnn3d"}   # the 1D CNN was fitted because the 3D network builds on it
    edited = [rois[0], ROI("weak", "weak", rois[1].polygon + [1.0, 0.0])]
    new = drive(iter_retrace(rec, edited, res))
    ref = run_analysis(rec, edited, params, fitted={"cnn1d": res.fits["cnn1d"]})
    _assert_same(new, ref)
    assert new.region_maps[("cnn3d", "strong")] is res.region_maps[("cnn3d", "strong")]
    assert new.region_maps[("cnn3d", "weak")].box != res.region_maps[("cnn3d", "weak")].box
    assert set(new.fits["cnn3d"]) == {"strong", "weak"}


def test_edited_rois_take_their_beats_where_the_analysis_took_them(sim):
    """Auto found contraction: a moved ROI's beats come from contraction again, as a fresh analysis gives them;
    a traced pixel gets band-pass energy beats, without an optical-flow pass over the whole video."""
    from napari_micromotion.retrace import iter_pixel_traces

    rec = sim.recording()
    params = AnalysisParams(methods=("bandpass",), n_surrogates=29)
    res = run_analysis(rec, sim.rois, params)
    assert {r.source for r in res.beat_rates} == {"motion", "fluorescence"}      # the cells contract
    edited = [sim.rois[0], ROI("weak", "weak", sim.rois[1].polygon + [1.0, 1.0])]
    new = drive(iter_retrace(rec, edited, res))
    ref = run_analysis(rec, edited, params)

    def beats(r, roi):
        return [(b.source, round(b.time_s, 6), round(b.peak_time_s, 6)) for b in r.beats if b.roi == roi]

    assert beats(new, "weak") == beats(ref, "weak") and {s for s, *_ in beats(new, "weak")} == {"motion",
                                                                                                  "fluorescence"}
    stages = []
    pixel = drive(iter_pixel_traces(rec, res, 20, 20), progress=lambda p: stages.append(p.stage))
    assert "optical flow" not in stages
    assert {r.source for r in pixel.beat_rates} <= {"transmission", "fluorescence"}
