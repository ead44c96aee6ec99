import numpy as np
import pytest

from napari_micromotion.errors import Cancelled, MicromotionError
from napari_micromotion.filters import bandpass, design_bandpass, dff
from napari_micromotion.pipeline import (
    AnalysisParams,
    default_validation,
    iter_analysis,
    parse_validation,
    run_analysis,
)
from napari_micromotion.progress import Progress
from napari_micromotion.recording import Recording
from napari_micromotion.rois import rasterize
from napari_micromotion.scoring import score_columns


def test_default_validation_follows_the_paper():
    assert default_validation(10570) == (0, 3072)
    assert default_validation(20000) == (0, 3072)
    assert default_validation(1000) == (0, 291)
    assert parse_validation("10:500") == (10, 500)
    with pytest.raises(MicromotionError, match="START:STOP"):
        parse_validation("10-500")


@pytest.fixture(scope="module")
def bp_results(small_sim):
    events = []
    res = run_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=199),
                       progress=events.append)
    return res, events


def test_bandpass_end_to_end(small_sim, bp_results):
    res, events = bp_results
    assert isinstance(events[0], Progress) and events[-1].stage == "done"
    assert res.score_maps["bandpass"].shape == (64, 64) and res.score_maps["bandpass"].dtype == np.float32
    assert res.lag_maps["bandpass"].shape == (64, 64)
    assert np.all(np.abs(res.lag_maps["bandpass"]) <= 1.0 + 1e-6)   # within +-max_lag_s
    by = {r["roi"]: r for r in res.roi_scores}
    assert by["strong"]["score"] > 0.5 and by["strong"]["p_value"] < 0.01
    assert by["strong"]["score"] > by["silent"]["score"] + 0.3
    # the score map shows the strong cell
    masks = rasterize(small_sim.rois, (64, 64))
    strong = masks.masks[masks.names.index("strong")]
    silent = masks.masks[masks.names.index("silent")]
    assert np.percentile(res.score_maps["bandpass"][strong], 90) > 2 * np.percentile(res.score_maps["bandpass"][silent], 90)


def test_roi_trace_is_the_sum_of_squared_band_pass(small_sim, bp_results):
    res, _ = bp_results
    d = design_bandpass(50.0)
    x = small_sim.transmission.reshape(small_sim.params.n_frames, -1)
    sq = bandpass(x, d).astype(np.float64) ** 2
    masks = rasterize(small_sim.rois, (64, 64))
    for i, name in enumerate(masks.names):
        manual = sq[:, masks.masks[i].ravel()].sum(axis=1)
        np.testing.assert_allclose(res.roi_traces[(name, "bandpass")], manual, rtol=1e-4)
    # the ground truth is the dF/F0 of the whole-frame fluorescence sum
    raw = small_sim.fluorescence.reshape(small_sim.params.n_frames, -1).sum(axis=1).astype(np.float64)
    np.testing.assert_allclose(res.truth, dff(raw, 50.0), rtol=1e-5, atol=1e-6)
    # and the per-pixel map is the score of each pixel's squared band-pass
    v0, v1 = res.validation
    s, _ = score_columns(sq[v0:v1, :50], res.truth[v0:v1], 50)
    np.testing.assert_allclose(res.score_maps["bandpass"].ravel()[:50], s, atol=1e-4)


def test_transmission_only_recording(small_sim):
    rec = Recording(small_sim.transmission, 50.0)
    res = run_analysis(rec, [], AnalysisParams(methods=("bandpass",)))
    assert res.score_maps == {} and res.truth is None
    assert res.energy_map.shape == (64, 64)
    # beats from contraction (the whole field's displacement), not from bursts of band-pass energy
    assert res.beat_rates and {r["source"] for r in res.beat_rates} == {"motion"}
    assert res.beat_rates[0]["roi"] == "frame" and "flow" not in res.score_maps and "flow" not in res.fits
    assert any("no fluorescence" in w for w in res.warnings)


def test_short_transmission_only_recording_needs_no_validation_frames(small_sim):
    # a 40-frame video without fluorescence: the default validation (12 frames) scores nothing, so it is no error
    rec = Recording(small_sim.transmission[:40], 50.0)
    res = run_analysis(rec, [], AnalysisParams(methods=("bandpass",)))
    assert res.score_maps == {} and np.isfinite(res.energy_map).all()


def test_generator_can_be_cancelled(small_sim):
    calls = []
    with pytest.raises(Cancelled):
        run_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass",), chunk_mb=1),
                     progress=calls.append, cancel=lambda: len(calls) >= 3)
    gen = iter_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass",)))
    next(gen)
    gen.close()  # closing mid-way is clean


@pytest.mark.parametrize("params,msg", [
    (AnalysisParams(methods=("bandpass",), validation=(0, 5000)), "outside the recording"),
    (AnalysisParams(methods=("bandpass",), validation=(100, 50)), "100:50 are reversed"),
    (AnalysisParams(methods=("bandpass",), validation=(10, 10)), "10:10 are empty"),
    (AnalysisParams(methods=("bandpass",), validation=5), r"\(start, stop\) frame numbers, got 5"),
    (AnalysisParams(methods=("bandpass",), validation=(0.5, 200.7)), "frame numbers"),
    (AnalysisParams(methods=("bandpass",), validation=(0, 10)), "too short to score"),
    (AnalysisParams(methods=("matched",), validation=(0, 1500)), "matched filter needs training frames"),
    (AnalysisParams(methods=("matched", "cnn1d"), validation=(0, 1500)), "1D CNN need training frames"),
    (AnalysisParams(methods=("bandpass",), low_hz=2, high_hz=30), "Nyquist"),
    (AnalysisParams(methods=("bandpass",), low_hz=10, high_hz=5), "below the high edge"),
    (AnalysisParams(methods=("nonsense",)), "unknown method"),
    (AnalysisParams(methods=()), "at least one method"),
    (AnalysisParams(methods=("bandpass",), max_lag_s=-1), "max lag"),
])
def test_bad_parameters_are_refused_before_work(small_sim, params, msg):
    with pytest.raises(MicromotionError, match=msg):
        run_analysis(small_sim.recording(), small_sim.rois, params)


def test_what_a_script_passes_is_taken_or_refused_in_one_sentence(small_sim):
    rec = small_sim.recording()
    dicts = [r.to_dict() for r in small_sim.rois]
    res = run_analysis(rec, dicts, AnalysisParams(methods="bandpass", n_surrogates=19), only_rois="weak",
                       fitted={"cnn1d": None})       # None: fit it; a string is one method, one ROI
    assert res.methods == ["bandpass"] and [r.roi for r in res.roi_scores] == ["weak"]
    # a Results' fits of the 3D network (one network per ROI) are trained again, with a word, not applied
    from napari_micromotion.pipeline import plan_analysis

    plan = plan_analysis(rec, dicts, AnalysisParams(methods=("bandpass", "cnn3d")), fitted={"cnn3d": {"weak": 1}})
    assert "cnn3d" not in plan.fitted and any("not reused" in w for w in plan.ctx.warnings)
    with pytest.raises(MicromotionError, match="no ROI named 'wek'"):
        run_analysis(rec, dicts, AnalysisParams(methods="bandpass"), only_rois=["wek"])
    with pytest.raises(MicromotionError, match="must be an AnalysisParams"):
        run_analysis(rec, dicts, None)
    with pytest.raises(MicromotionError, match="needs a Recording"):
        run_analysis(small_sim.transmission, dicts, AnalysisParams(methods="bandpass"))


def test_output_arrays_are_checked_before_the_long_work(small_sim):
    rec = small_sim.recording()
    shape = (rec.n_frames, *rec.frame_shape)
    ro = np.zeros(shape, np.float32)
    ro.setflags(write=False)
    for kwargs, message in (({"filtered_out": np.zeros((3, 4, 5), np.float32)}, "must have the recording's shape"),
                            ({"filtered_out": np.zeros(shape, np.int16)}, "integers would truncate"),
                            ({"filtered_out": ro}, "is read-only"),
                            ({"predictions_out": {"cnn1d": np.zeros(shape, np.float32)}}, "not among the chosen")):
        gen = iter_analysis(rec, [], AnalysisParams(methods=("bandpass",)), **kwargs)
        with pytest.raises(MicromotionError, match=message):
            next(gen)               # the first step: before any pass over the video


def test_a_short_validation_range_says_how_small_a_p_value_can_be(small_sim):
    from napari_micromotion.cells.kinds import p_value_floor

    rec = Recording(small_sim.transmission[:400], 50.0, small_sim.fluorescence[:400])
    res = run_analysis(rec, small_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=199))
    said = [w for w in res.warnings if "distinct time shifts" in w]
    assert len(said) == 1 and "not 1/200" in said[0]
    floor = p_value_floor(res)
    assert 0.005 < floor < 1 and min(r.p_value for r in res.roi_scores) >= floor - 1e-12


def test_frames_too_small_for_optical_flow_take_energy_beats_with_auto(small_sim):
    rec = Recording(small_sim.transmission[:400, :5, :5], 50.0, small_sim.fluorescence[:400, :5, :5])
    res = run_analysis(rec, [], AnalysisParams(methods=("bandpass",), n_surrogates=9))     # beats_from auto
    assert res.warnings == ["frames of 5 x 5 px are too small to measure contraction; the beats come from "
                            "band-pass energy."]
    assert not res.contraction_traces
    with pytest.raises(MicromotionError, match="at least 8 x 8 px"):   # asked for explicitly: refused
        run_analysis(rec, [], AnalysisParams(methods=("bandpass",), beats_from="contraction"))


@pytest.mark.parametrize("device, warned", [("cuda", True), ("cpu", False)])
def test_a_device_that_no_method_uses_is_named_in_a_warning(small_sim, device, warned):
    res = run_analysis(small_sim.recording(), [], AnalysisParams(methods=("bandpass",), device=device))
    said = [w for w in res.warnings if "device" in w]
    assert bool(said) == warned
    assert all("cuda" in w and "ignored" in w for w in said)


def test_slow_camera_lowers_the_default_high_edge(small_sim):
    rec = Recording(small_sim.transmission[:400], 18.0, small_sim.fluorescence[:400])
    res = run_analysis(rec, [], AnalysisParams(methods=("bandpass",)))
    assert res.passband["high_hz"] == pytest.approx(7.2)
    assert any("Nyquist" in w for w in res.warnings)


def test_cnn_roi_traces_have_no_edge_transient(small_sim):
    # the recording's first and last frames lie in the validation (0:...) and training segments; the
    # network's zero padding used to put a transient there many times the traces' normal range
    from napari_micromotion.detectors.cnn1d import CNN1DParams
    from napari_micromotion.detectors.fast import HALO

    params = AnalysisParams(methods=("cnn1d",), seed=0,
                            method_params={"cnn1d": CNN1DParams(epochs=1, n_pixels=256, window=256)})
    res = run_analysis(small_sim.recording(), small_sim.rois, params)
    for (roi, method), trace in res.roi_traces.items():
        if method != "cnn1d":
            continue
        inner = trace[2 * HALO:-2 * HALO]
        lo, hi = inner.min(), inner.max()
        span = hi - lo
        edges = np.r_[trace[:HALO], trace[-HALO:]]
        assert lo - 0.5 * span <= edges.min() and edges.max() <= hi + 0.5 * span, roi


def test_a_first_run_says_that_kernels_compile(small_sim, monkeypatch):
    """When a kernel has no compiled or cached code yet, the run says so before it starts compiling."""
    from napari_micromotion import filters
    from napari_micromotion.progress import Progress

    events: list[Progress] = []
    run_analysis(small_sim.recording(), [], AnalysisParams(methods=("bandpass",)), progress=events.append)
    assert not [e for e in events if e.stage == "compiling kernels"]      # compiled (or cached) by now
    monkeypatch.setattr(filters, "kernels_ready", lambda: False)
    events.clear()
    run_analysis(small_sim.recording(), [], AnalysisParams(methods=("bandpass",)), progress=events.append)
    notice = [e for e in events if e.stage == "compiling kernels"]
    assert len(notice) == 1 and "band-pass" in notice[0].message and "first run" in notice[0].message
    assert events.index(notice[0]) < [e.stage for e in events].index("band-pass")   # before the long work


def test_a_rate_too_low_for_any_band_says_to_check_it_and_where_it_came_from(small_sim):
    """An ImageJ file with a wrong frame interval (1 s) was told only to choose a lower band-pass edge."""
    rec = small_sim.recording()
    slow = Recording(rec.transmission, 1.0, provenance={"fps_from": "ImageJ frame interval (1 s)"})
    with pytest.raises(MicromotionError, match=r"or check the frame rate \(it came from ImageJ frame interval"):
        run_analysis(slow, [], AnalysisParams(methods=("bandpass",)))


def test_a_recording_without_any_beat_says_so():
    """With no beat anywhere the analysis said the beats 'come from bursts of band-pass energy' beside an empty
    beats table."""
    noise = np.random.default_rng(0).normal(100, 5, (300, 32, 32)).astype(np.float32)
    res = run_analysis(Recording(noise, 20.0), [], AnalysisParams(methods=("bandpass",), n_surrogates=9))
    assert not [b for b in res.beats if b.source == "transmission"]
    assert any(w.startswith("no beat was found in the transmission") for w in res.warnings), res.warnings
    assert not any("come from bursts of band-pass energy" in w for w in res.warnings)
