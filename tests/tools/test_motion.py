"""The motion tool: its command, output folder and the beats it finds on simulated and real recordings."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from napari_micromotion.cli import main
from napari_micromotion.kernels.contraction import find_contraction_beats
from napari_micromotion.rois import rasterize, read_rois
from napari_micromotion.tools import TOOLS
from napari_micromotion.tools.motion import MotionParams

from ..conftest import SHARED, assert_one_line_error


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def motion_sim(tmp_path_factory):
    """600 frames of 96 px: strong and 'other' cells contract visibly; the simulator's fields give the truth."""
    from napari_micromotion.simulate import SimulationParams, Simulator, write_simulation

    params = SimulationParams(n_frames=600, size=96, seed=2)
    folder = write_simulation(tmp_path_factory.mktemp("motion") / "sim", params)
    return folder, Simulator(params)


def _true_traces(sim, rois, reference):
    """Mean displacement magnitude per ROI from the simulator's own fields (in reference coordinates)."""
    p = sim.p
    yy, xx = np.mgrid[0:p.size, 0:p.size].astype(float)

    def field(i):
        return np.tensordot(sim._courses[:, i], sim._fields, axes=(0, 0)) + sim.stage[i][:, None, None]

    d0 = field(reference)
    masks = rasterize(rois, (p.size, p.size))
    out = {n: np.zeros(p.n_frames) for n in masks.names}
    for i in range(p.n_frames):
        D = field(i)
        d = D - d0
        for _ in range(4):  # frame(x + d) = reference(x): d = D(x + d) - D0(x)
            d = np.stack([ndimage.map_coordinates(D[c], [yy + d[0], xx + d[1]], order=1, mode="nearest")
                          for c in (0, 1)]) - d0
        d -= np.median(d.reshape(2, -1), axis=1)[:, None, None]
        mag = np.hypot(*d)
        for k, n in enumerate(masks.names):
            out[n][i] = mag[masks.masks[k]].mean()
    return out


def test_motion_command_writes_its_folder_and_finds_every_contraction(motion_sim, tmp_path, capsys):
    folder, sim = motion_sim
    out = tmp_path / "motion"
    code = main(["motion", str(folder / "transmission.tif"), "--rois", str(folder / "rois.json"), "--out", str(out),
                 "-q"])
    assert code == 0, capsys.readouterr().err
    for name in ("contraction.csv", "beats.csv", "beat_params.csv", "beat_rates.csv", "maps/displacement_max.tif",
                 "maps/direction.tif", "motion.json"):
        assert (out / name).is_file(), name
    rec = json.loads((out / "motion.json").read_text())
    assert rec["command"][:2] == ["micromotion", "motion"] and rec["working_folder"]     # a tool's run can be re-run
    ref = rec["result"]["reference_frame"]
    assert 0.001 < rec["result"]["flow_noise_px"] < 0.2         # the noise the maps' smoothing assumed
    header = (out / "contraction.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["frame", "time_s"]
    assert header[2:6] == ["strong/displacement_px", "strong/speed_px_s", "strong/displacement_um", "strong/speed_um_s"]
    beats = _rows(out / "beats.csv")
    assert list(beats[0]) == ["roi", "kind", "source", "beat", "time_s", "rr_s", "peak_time_s"]
    assert {b["source"] for b in beats} == {"motion"}
    params = _rows(out / "beat_params.csv")
    assert {"onset_s", "peak_time_s", "peak_displacement_px", "time_to_peak_s", "relaxation_50_s",
            "relaxation_90_s", "max_contraction_speed_px_s", "max_relaxation_speed_px_s", "duration_s", "rate_bpm",
            "rr_sd_s", "rmssd_s", "peak_displacement_um"} <= set(params[0])
    # every contraction of the cells that visibly contract is found once, its peak within a frame of the truth
    truth = _true_traces(sim, read_rois(folder / "rois.json"), ref)
    fps = sim.p.fps
    for roi in ("strong", "other", "weak"):
        true_peaks = np.array([b.peak_time_s for b in find_contraction_beats(truth[roi], fps)])
        found = np.array([float(b["peak_time_s"]) for b in beats if b["roi"] == roi])
        assert len(true_peaks) >= 5 and len(found) == len(true_peaks), roi
        np.testing.assert_allclose(found, true_peaks, atol=1.0 / fps)
    # the cell that does not move has no beats
    assert not [b for b in beats if b["roi"] == "silent"]
    assert not any("may be noise" in w for w in rec["warnings"])      # the silent ROI's trace has no beats
    # the maps: the contracting cell moves most, the direction is an angle
    back = TOOLS["motion"].read(out)
    masks = rasterize(read_rois(folder / "rois.json"), (sim.p.size, sim.p.size))
    dmax = back.displacement_max
    assert dmax[masks.masks[masks.index("strong")]].mean() > 5 * dmax[masks.masks[masks.index("silent")]].mean()
    assert np.all(np.abs(back.direction) <= 180)
    assert back.reference_frame == ref and back.regions == masks.names
    np.testing.assert_allclose(back.displacement["strong"],
                               np.array([float(r["strong/displacement_px"]) for r in _rows(out / "contraction.csv")]),
                               rtol=1e-5)


def test_reference_frame_drift_and_no_rois(motion_sim, tmp_path, capsys):
    from napari_micromotion.io import read_recording

    folder, sim = motion_sim
    rec = read_recording(folder / "transmission.tif")
    # the fields as measured (no trace denoising, which would fill a one-frame dip from the other frames)
    res = TOOLS["motion"].run(rec, MotionParams(reference="12", denoise_traces=False))
    assert res.reference_frame == 12 and res.regions == ["frame"]
    # the reference image averages 5 frames: the reference frame is no false dip in the trace ...
    assert res.displacement["frame"][12] > 0.5 * np.median(res.displacement["frame"])
    # ... which it is when it is compared with itself alone
    from napari_micromotion.kernels.flow import FlowParams

    alone = TOOLS["motion"].run(rec, MotionParams(reference="12", flow=FlowParams(reference_frames=1),
                                                  denoise_traces=False))
    assert alone.displacement["frame"][12] < 0.01 < alone.displacement["frame"].max()
    # the simulator's stage drift comes back as the removed drift (up to its value at the reference)
    true = sim.stage - sim.stage[12]
    np.testing.assert_allclose(res.drift_px, true, atol=0.08)
    assert_one_line_error(*_run_cli(capsys, [str(folder / "transmission.tif"), "--reference", "5000",
                                              "--out", str(tmp_path / "x")]))
    assert not (tmp_path / "x").exists()


def _run_cli(capsys, args):
    code = main(["motion", *args, "-q"])
    return capsys.readouterr().err, code


def test_a_real_microbundle_gives_its_four_beats(tmp_path):
    """Real brightfield frames (MIT, see SOURCE.md): maximum contraction near frames 7, 29, 50 and 71."""
    folder = SHARED / "microbundle-tif-series"
    assert folder.is_dir(), f"shared data missing: {folder}"
    from napari_micromotion.io import read_recording

    rec = read_recording(folder, fps=30.0)
    res = TOOLS["motion"].run(rec, MotionParams())
    peaks = np.array([b.peak_time_s for b in res.beats]) * 30
    np.testing.assert_allclose(peaks, [7, 29, 50, 71], atol=1.5)
    rate = res.beat_rates[0]
    assert rate.n_beats == 4 and rate.rate_bpm == pytest.approx(60 * 30 / 21.3, rel=0.05)
    # the tissue rests at its reference frame: no false 0.2 px floor (the frames' brightness was matched to the
    # pre-smoothed reference's mean, and the black bars' 0.03 % read as 0.19 px of drift, subtracted from all)
    trace = res.displacement["frame"]
    assert trace[res.reference_frame] < 0.05 and np.abs(res.drift_px).max() < 0.1
    assert trace.max() - np.percentile(trace, 10) > 0.4           # the beats' full height above the rest


def test_save_flow_writes_every_field_and_leaves_no_scratch(motion_sim, tmp_path, capsys):
    import gc
    import os

    import zarr

    from napari_micromotion.io import read_recording, scratch_dir

    def scratch():
        return {f for f in os.listdir(scratch_dir()) if f.startswith("micromotion-flow-zarr-")}

    folder, sim = motion_sim
    before = scratch()
    out = tmp_path / "flow"
    assert main(["motion", str(folder / "transmission.tif"), "--save-flow", "--out", str(out), "-q"]) == 0, \
        capsys.readouterr().err
    flow = zarr.open_array(str(out / "flow.zarr"), mode="r")
    assert flow.shape == (sim.p.n_frames, 2, sim.p.size, sim.p.size) and flow.dtype == np.float32
    back = TOOLS["motion"].read(out)
    # the stored fields are the ones the contraction trace was computed from: with the noise taken out ...
    from napari_micromotion.kernels.region_motion import RegionFields

    fields = np.asarray(flow[:])
    region = RegionFields(np.ones((1, sim.p.size, sim.p.size), bool), fields.shape[0])
    region.add(0, fields)
    disp, _, kept = region.traces(sim.p.fps)
    np.testing.assert_allclose(disp[0], back.displacement["frame"], rtol=1e-4, atol=1e-6)
    assert json.loads((out / "motion.json").read_text())["result"]["trace_components"] == {"frame": kept[0].rank}
    assert back.flow_store == out / "flow.zarr"
    # ... and as their plain mean magnitude without
    plain = tmp_path / "plain"
    assert main(["motion", str(folder / "transmission.tif"), "--save-flow", "--no-denoise-traces", "--out",
                 str(plain), "-q"]) == 0, capsys.readouterr().err
    flow = zarr.open_array(str(plain / "flow.zarr"), mode="r")
    np.testing.assert_allclose(np.hypot(flow[:, 0], flow[:, 1]).mean(axis=(1, 2)),
                               TOOLS["motion"].read(plain).displacement["frame"], rtol=1e-4, atol=1e-6)
    # a run that is never written does not leave its fields behind
    res = TOOLS["motion"].run(read_recording(folder / "transmission.tif"), MotionParams(save_flow=True))
    assert res.flow_store.is_dir() and scratch() > before
    del res
    gc.collect()
    assert scratch() <= before


def test_intensities_below_zero_are_not_matched_by_a_gain(motion_sim):
    """Offset-subtracted frames (mean near zero): no brightness gain (it flipped frames and made 50 px of 'motion'),
    a warning instead; a scaled or shifted positive copy gives the raw result."""
    import tifffile

    from napari_micromotion.recording import Recording

    folder, _ = motion_sim
    video = tifffile.imread(folder / "transmission.tif")[:300].astype(np.float32)
    raw = TOOLS["motion"].run(Recording(video, 50.0), MotionParams())
    assert not any("below zero" in w for w in raw.warnings)
    for copy in (video * 0.01, video + 1000.0):
        same = TOOLS["motion"].run(Recording(copy, 50.0), MotionParams())
        np.testing.assert_allclose(same.displacement["frame"], raw.displacement["frame"], atol=2e-3)
    centred = TOOLS["motion"].run(Recording(video - video.mean(), 50.0), MotionParams())
    assert any("below zero" in w for w in centred.warnings)
    d = centred.displacement["frame"]
    assert np.all(np.isfinite(d)) and float(d.max()) < 4 * float(raw.displacement["frame"].max()) < 2.0


def test_a_still_video_gives_zero_motion_not_nan():
    """A constant video: displacement and speed 0 everywhere (they were NaN, with a division warning)."""
    import warnings

    from napari_micromotion.recording import Recording

    video = np.full((60, 48, 48), 1000, np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = TOOLS["motion"].run(Recording(video, 50.0), MotionParams())
    assert np.array_equal(res.displacement["frame"], np.zeros(60)) and not res.beats
    assert np.all(np.isfinite(res.speed["frame"])) and np.all(res.speed["frame"] == 0)


def test_pixels_without_texture_are_left_out_of_the_maps(tmp_path):
    """A dark, textureless part of the frame gave 'largest displacements' of 30 px from noise alone (the shared
    sarcomere clip); it is now not measured: NaN in the maps, no arrows, its noise in maps/noise_px.tif."""
    import dataclasses

    from napari_micromotion.recording import Recording

    rng = np.random.default_rng(0)
    texture = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 2.0) * 400 + 1000
    shifts = 0.6 * np.sin(np.linspace(0, 6 * np.pi, 60)) ** 2
    video = np.stack([ndimage.shift(texture, (0, s), order=3, mode="nearest") for s in shifts])
    video[:, :, 36:] = 1000.0                                     # the right part: no texture, camera noise only
    video = (video + rng.normal(0, 2.0, video.shape)).astype(np.float32)
    res = TOOLS["motion"].run(Recording(video, 20.0), MotionParams())
    dmax, noise = res.displacement_max, res.noise_px
    assert np.isnan(dmax[:, 48:]).all() and np.isfinite(dmax[:, :24]).all()
    assert np.isnan(res.direction[:, 48:]).all()
    assert 0.3 < res.unmeasured_fraction < 0.6
    assert np.median(noise[:, 48:]) > 3 * np.median(noise[:, :24]) and np.median(noise[:, :24]) < 0.05
    assert len(res.arrow_points) and (res.arrow_points[:, 1] < 44).all()
    assert 0.4 < np.nanmedian(dmax[:, :24]) < 0.8                # the textured part's true peak: 0.6 px
    out = TOOLS["motion"].write(res, tmp_path / "m")
    back = TOOLS["motion"].read(out)
    np.testing.assert_array_equal(back.noise_px, noise)
    assert np.array_equal(np.isnan(back.displacement_max), np.isnan(dmax)) and back.unmeasured_fraction == \
        pytest.approx(res.unmeasured_fraction)
    every = TOOLS["motion"].run(Recording(video, 20.0), dataclasses.replace(MotionParams(), max_noise_ratio=0.0))
    assert np.isfinite(every.displacement_max).all() and every.unmeasured_fraction == 0.0


def test_beats_where_nothing_stands_out_of_the_noise_are_flagged(monkeypatch):
    """A region whose traces' strongest pattern does not stand out of the noise keeps its beats, but the run says
    they may be noise or a neighbour seen through the flow window (on 9000-frame simulations a silent cell next
    to a strong one had up to 5 such echoes as beats); such a region without beats is not mentioned."""
    import napari_micromotion.tools.motion as motion_tool
    from napari_micromotion.recording import Recording
    from napari_micromotion.rois import ROI

    n, size, fps = 400, 64, 20.0
    rng = np.random.default_rng(7)
    tex = ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.5)
    tex = 1000 + 300 * tex / tex.std()
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = yy - 20, xx - 20
    inside = np.hypot(dy, dx) < 12
    course = np.zeros(n)
    onsets = range(10, n - 20, 40)                                          # a beat every 2 s
    for onset in onsets:
        course[onset:onset + 12] = np.sin(np.linspace(0, np.pi, 12))
    frames = []
    for c in course:
        d = -1.5 * c * np.stack([dy, dx]) / 12 * inside                  # 1.5 px at the rim
        frames.append(ndimage.map_coordinates(tex, [yy - d[0], xx - d[1]], order=3, mode="mirror"))
    video = (np.stack(frames) + rng.normal(0, 10.0, (n, size, size))).astype(np.float32)
    rois = [ROI(name="cell", kind="strong", polygon=np.array([[10, 10], [10, 30], [30, 30], [30, 10]], float)),
            ROI(name="far", kind="silent", polygon=np.array([[46, 46], [46, 62], [62, 62], [62, 46]], float))]
    rec = Recording(video, fps)
    res = TOOLS["motion"].run(rec, MotionParams(), rois=rois)
    assert len([b for b in res.beats if b.roi == "cell"]) == len(onsets)
    assert not [b for b in res.beats if b.roi == "far"]
    assert not [w for w in res.warnings if "may be noise" in w]            # 'far' is quiet, but has no beats
    # the same run had 'cell' stood below the noise edge: its beats are kept and flagged
    seen = {}

    def quiet(names, kept):
        seen.update(zip(names, (lr.above_noise for lr in kept)))
        return {"cell": 1.1}

    monkeypatch.setattr(motion_tool, "quiet_regions", quiet)
    res = TOOLS["motion"].run(rec, MotionParams(), rois=rois)
    assert seen == {"cell": True, "far": False}
    assert len([b for b in res.beats if b.roi == "cell"]) == len(onsets)
    said = [w for w in res.warnings if "may be noise" in w]
    assert len(said) == 1 and said[0].startswith(f"the beats of cell ({len(onsets)} beats; 1.10x) may be noise")
