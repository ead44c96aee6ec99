"""The displacement-magnitude method: scored like the others, beats per contraction, no scratch file left behind."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from napari_micromotion.io import scratch_dir
from napari_micromotion.methods import METHODS
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.simulate import simulate


def _scratch_files() -> set[str]:
    return {f for f in os.listdir(scratch_dir()) if f.startswith("micromotion-flow-")}


@pytest.fixture(scope="module")
def sim():
    return simulate(n_frames=1200, size=64, seed=0)


@pytest.fixture(scope="module")
def results(sim):
    before = _scratch_files()
    res = run_analysis(sim.recording(), sim.rois, AnalysisParams(methods=("bandpass", "flow"), n_surrogates=199))
    return res, before


def _score(res, roi, method):
    return next(r for r in res.roi_scores if r.roi == roi and r.method == method)


def test_flow_is_registered_and_needs_no_fluorescence():
    assert "flow" in METHODS.names()
    assert not METHODS["flow"].requires.fluorescence


def test_displacement_predicts_the_moving_cells_calcium_and_not_the_others(results):
    res, _ = results
    strong = _score(res, "strong", "flow")
    assert strong.score > 0.75 and strong.p_value < 0.01
    # measured displacement follows calcium better than band-passed intensity on the strong cell
    assert strong.score > _score(res, "strong", "bandpass").score
    assert _score(res, "weak", "flow").p_value < 0.05
    assert _score(res, "other", "flow").p_value >= 0.05      # moves, but has no calcium
    # has calcium, does not move: far below the strong cell (not always at chance: the flow window, ~4 px,
    # carries motion of cells two neighbours away into the ROI's rim)
    assert _score(res, "silent", "flow").score < 0.5 * strong.score
    assert res.score_maps["flow"].shape == (64, 64)


def test_one_motion_beat_per_contraction(results, sim):
    res, _ = results
    fps = sim.params.fps
    onsets = np.array(sim.truth["calcium_onsets_s"]) + sim.truth["contraction_delay_s"]
    onsets = onsets[(onsets > 0.2) & (onsets < sim.params.n_frames / fps - 0.3)]
    found = np.array([b.time_s for b in res.beats if b.roi == "strong" and b.source == "motion"])
    assert abs(len(found) - len(onsets)) <= 1
    # every true contraction has a motion beat starting within 0.1 s of it
    nearest = np.abs(found[None, :] - onsets[:, None]).min(axis=1)
    assert np.median(nearest) < 0.05 and np.all(nearest < 0.15)
    rate = next(r for r in res.beat_rates if r.roi == "strong" and r.source == "motion")
    assert rate.n_beats == len(found)
    # they replace the band-pass energy beats (contraction and relaxation can each give a burst) ...
    assert not [b for b in res.beats if b.source == "transmission"]
    assert {b.source for b in res.beats} == {"motion", "fluorescence"}
    # ... and are the motion tool's on the same recording (the same fields and the same noise-free traces)
    from napari_micromotion.tools import TOOLS
    from napari_micromotion.tools.motion import MotionParams

    tool = TOOLS["motion"].run(sim.recording(), MotionParams(), rois=sim.rois)
    for roi in ("strong", "weak", "other", "silent"):
        ours = [b.peak_time_s for b in res.beats if b.roi == roi and b.source == "motion"]
        np.testing.assert_allclose(ours, [b.peak_time_s for b in tool.beats if b.roi == roi], atol=1e-6)
        # the results keep the trace those beats were found in: the motion tool's contraction trace
        np.testing.assert_allclose(res.contraction_traces[roi], tool.displacement[roi], rtol=1e-5, atol=1e-7)


def test_energy_beats_on_request(sim):
    res = run_analysis(sim.recording(), sim.rois[:1], AnalysisParams(methods=("flow",), beats_from="energy",
                                                                      n_surrogates=19))
    assert {b.source for b in res.beats} == {"transmission", "fluorescence"}


def test_the_scratch_file_goes_with_the_results(sim):
    before = _scratch_files()
    res = run_analysis(sim.recording(), sim.rois[:1], AnalysisParams(methods=("flow",), n_surrogates=19))
    assert res.roi_scores
    del res
    gc.collect()
    assert _scratch_files() <= before


def test_a_cancelled_analysis_leaves_no_scratch_file(sim):
    from napari_micromotion.pipeline import iter_analysis

    before = _scratch_files()
    gen = iter_analysis(sim.recording(), sim.rois, AnalysisParams(methods=("flow",)))
    for p in gen:
        if p.stage == "optical flow" and p.fraction > 0:
            assert _scratch_files() > before     # the magnitudes are being written
            break
    gen.close()                                  # what the GUI's cancel button does
    gc.collect()
    assert _scratch_files() <= before


def test_a_bad_reference_frame_is_one_sentence(sim):
    from napari_micromotion.errors import MicromotionError
    from napari_micromotion.methods.flow import FlowMethodParams

    params = AnalysisParams(methods=("flow",), method_params={"flow": FlowMethodParams(reference="5000")})
    with pytest.raises(MicromotionError, match="reference frame must be 'auto' or a frame number below 1200"):
        run_analysis(sim.recording(), sim.rois, params)


def test_the_quick_look_sees_the_contracting_cells_and_not_the_still_one(sim):
    """Each ROI alone: the strong, weak and other cells contract, the silent one does not move."""
    from napari_micromotion.kernels.flow import most_relaxed_frame
    from napari_micromotion.methods.flow import contraction_visible
    from napari_micromotion.progress import drive
    from napari_micromotion.rois import rasterize

    video = sim.transmission
    ref = most_relaxed_frame(video)
    seen = {roi.name: drive(contraction_visible(video, ref, masks=rasterize([roi], video.shape[1:])))
            for roi in sim.rois}
    assert seen == {"strong": True, "weak": True, "other": True, "silent": False}
    # a still recording (the reference frame again and again, with fresh camera noise) shows no contraction
    rng = np.random.default_rng(1)
    still = video[ref].astype(np.float32) + rng.normal(0, 0.02 * float(video.std()), (300, *video.shape[1:]))
    assert not drive(contraction_visible(still.astype(np.float32), 0))


def test_auto_beats_come_from_contraction_when_the_cells_contract(sim):
    """With fluorescence and band-pass alone: contraction beats, measured without a scratch file."""
    from napari_micromotion.pipeline import iter_analysis
    from napari_micromotion.progress import drive

    before = _scratch_files()
    flow = []

    def seen(p):
        if p.stage == "optical flow":
            flow.append(p.message)
            assert _scratch_files() <= before           # for beats alone no pixel's magnitude is stored

    res = drive(iter_analysis(sim.recording(), sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=19)),
                progress=seen)
    assert flow[0].startswith("a quick look for contraction") and flow[-1] == "1200 of 1200 frames"
    assert {b.source for b in res.beats} == {"motion", "fluorescence"}
    assert "flow" not in res.fits and not any("band-pass energy" in w for w in res.warnings)
    # the same beats as asked for explicitly
    explicit = run_analysis(sim.recording(), sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=19,
                                                                       beats_from="contraction"))
    assert [(b.roi, b.peak_time_s) for b in res.beats] == [(b.roi, b.peak_time_s) for b in explicit.beats]


def test_auto_beats_stay_band_pass_energy_when_nothing_contracts(sim):
    """The silent cell alone (no motion): the quick look says no, no flow pass runs, energy beats stay."""
    from napari_micromotion.pipeline import iter_analysis
    from napari_micromotion.progress import drive

    silent = [r for r in sim.rois if r.name == "silent"]
    flow = []
    res = drive(iter_analysis(sim.recording(), silent, AnalysisParams(methods=("bandpass",), n_surrogates=19)),
                progress=lambda p: flow.append((p.fraction, p.message)) if p.stage == "optical flow" else None)
    assert flow[0][1].startswith("a quick look") and flow[-1] == (1.0, "no contraction above the noise: no "
                                                                        "optical-flow pass needed")
    assert len(flow) == 2                                                         # no flow pass
    assert {b.source for b in res.beats} <= {"transmission", "fluorescence"}
    assert any("band-pass energy" in w for w in res.warnings) and res.contraction_traces == {}
    # asked for, contraction is measured all the same (and finds no beat in a cell that does not move)
    forced = run_analysis(sim.recording(), silent, AnalysisParams(methods=("bandpass",), n_surrogates=19,
                                                                  beats_from="contraction"))
    assert not [b for b in forced.beats if b.source == "transmission"]
    assert [r.source for r in forced.beat_rates if r.roi == "silent" and r.source != "fluorescence"] == ["motion"]


def test_motion_beats_where_the_traces_do_not_stand_out_of_the_noise_are_flagged():
    """Contraction beats in a region whose motion does not stand out of the noise are kept, and the run's warnings
    say they may be noise or a neighbour's echo (as the motion tool's do)."""
    from types import SimpleNamespace

    from napari_micromotion.methods.flow import FlowState

    fps, n = 20.0, 400
    t = np.arange(n) / fps
    beat = np.clip(np.sin(2 * np.pi * 0.5 * t), 0, None) ** 4          # a contraction every 2 s
    traces = {"cell": (0.5 * beat).astype(np.float32), "echo": (0.02 + 0.01 * beat).astype(np.float32)}
    state = FlowState(path=None, shape=(n, 16), reference_frame=0, field_trace=traces["cell"], region_traces=traces,
                      quiet_regions={"echo": 1.1})
    masks = SimpleNamespace(names=["cell", "echo"], kinds=["strong", "silent"])
    ctx = SimpleNamespace(masks=masks, fps=fps, warnings=[], recording=SimpleNamespace(measured_every=1),
                          roi_names=lambda: ["cell", "echo"])
    flow = METHODS["flow"]
    beats, rates = flow.beat_rows(ctx, flow.Params(), state)
    n_echo = len([b for b in beats if b.roi == "echo"])
    assert len([b for b in beats if b.roi == "cell"]) == 10 and n_echo == 10
    assert next(r for r in rates if r.roi == "echo").n_beats == n_echo
    assert len(ctx.warnings) == 1 and ctx.warnings[0].startswith("the beats of echo (10 beats; 1.10x) may be noise")
    state.quiet_regions = {}
    ctx.warnings.clear()
    flow.beat_rows(ctx, flow.Params(), state)
    assert not ctx.warnings
