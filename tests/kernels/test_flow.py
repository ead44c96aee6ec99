"""Displacement fields: sign convention, sub-pixel accuracy on textured warps, drift removal, the stream."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import ndimage

from napari_micromotion.errors import MicromotionError
from napari_micromotion.kernels.flow import ENGINES, FlowEstimator, FlowParams, FlowStream, most_relaxed_frame

N = 96


@pytest.fixture(scope="module")
def texture():
    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.standard_normal((N, N)), 1.5)
    return (1000 + 400 * img / img.std()).astype(np.float64)


def _warp(img, d):
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    return ndimage.map_coordinates(img, [yy - d[0], xx - d[1]], order=3, mode="mirror")


def _contraction(amp):
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    dy, dx = yy - N / 2, xx - N / 2
    g = np.exp(-(dy**2 + dx**2) / (2 * 25**2))
    d = -np.stack([dy, dx]) / 25 * g
    return amp * d / np.abs(d).max()


@pytest.mark.parametrize("engine", ENGINES)
def test_content_moved_by_d_gives_d(texture, engine):
    d = np.array([0.7, -1.2])[:, None, None] * np.ones((2, N, N))
    est = FlowEstimator(texture, FlowParams(engine=engine, remove_drift=False))(_warp(texture, d))
    inner = (slice(10, -10), slice(10, -10))
    err = np.hypot(*(est - d))[inner]
    assert np.median(err) < 0.08, engine


@pytest.mark.parametrize("amp,tol", [(0.05, 0.01), (0.2, 0.02), (1.0, 0.06), (3.0, 0.2)])
def test_lk_is_sub_pixel_accurate_on_a_smooth_contraction(texture, amp, tol):
    d = _contraction(amp)
    est = FlowEstimator(texture, FlowParams())(_warp(texture, d))   # noise-free: the method's own error
    m = np.hypot(*d) > 0.3 * amp
    err = np.hypot(*(est - d))[m]
    assert np.median(err) < tol


def test_drift_is_removed(texture):
    d = _contraction(1.0) + np.array([1.5, -0.5])[:, None, None]
    est = FlowEstimator(texture, FlowParams(remove_drift=True))
    field, drift = est.without_drift(est(_warp(texture, d)))
    np.testing.assert_allclose(drift, [1.5, -0.5], atol=0.05)
    inner = (slice(10, -10), slice(10, -10))
    assert np.median(np.hypot(*(field - _contraction(1.0)))[inner]) < 0.1   # the contraction stays


def test_frames_of_another_size_are_refused(texture):
    with pytest.raises(MicromotionError, match="does not match"):
        FlowEstimator(texture)(np.zeros((10, 10)))
    with pytest.raises(MicromotionError, match="flow engine"):
        FlowEstimator(texture, FlowParams(engine="magic"))


def test_stream_gives_each_frame_its_field_on_any_number_of_threads(texture):
    amps = np.zeros(40)
    amps[10:20] = np.concatenate([np.linspace(0.1, 1, 5), np.linspace(1, 0.1, 5)])   # one beat among rest
    video = np.stack([_warp(texture, _contraction(a)) for a in amps]).astype(np.float32)
    ref = most_relaxed_frame(video)
    assert amps[ref] == 0
    out = {}
    for threads in (1, 2, 3):
        fields = np.zeros((len(amps), 2, N, N), np.float32)
        previous_of = {}
        for first, block, previous in FlowStream(video, ref, FlowParams(), block=7, threads=threads).blocks():
            fields[first:first + len(block)] = block
            previous_of[first] = previous
        out[threads] = fields
        assert previous_of.pop(0) is None and len(previous_of) >= 4
        for first, previous in previous_of.items():   # the field before each block is the previous frame's
            np.testing.assert_allclose(previous, fields[first - 1], atol=1e-5)
    np.testing.assert_allclose(out[2], out[1], atol=1e-4)
    np.testing.assert_allclose(out[3], out[1], atol=1e-4)
    peak = np.hypot(*out[1][14]).max()
    assert peak == pytest.approx(1.0, rel=0.15)


def test_stream_removes_slow_drift_but_keeps_a_brief_translation(texture):
    """Stage drift (slow) is subtracted; a 0.2 s whole-field jerk (a beat pulling the sheet) is not drift."""
    fps, n = 20.0, 120
    drift = np.stack([np.linspace(0, 1.5, n), np.linspace(0, -1.0, n)], axis=1)   # px over 6 s
    jerk = np.zeros(n)
    jerk[60:64] = [0.4, 0.8, 0.8, 0.4]                                            # 0.2 s along y
    video = np.stack([_warp(texture, drift[i] + [jerk[i], 0]) for i in range(n)]).astype(np.float32)
    stream = FlowStream(video, 0, FlowParams(drift_window_s=2.0), fps=fps)
    fields = np.zeros((n, 2, N, N), np.float32)
    for first, block, _ in stream.blocks():
        fields[first:first + len(block)] = block
    np.testing.assert_allclose(stream.drift, drift, atol=0.08)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    median_dy = np.median(fields[:, 0][inner].reshape(n, -1), axis=1)
    np.testing.assert_allclose(median_dy, jerk, atol=0.08)
    still = FlowStream(video, 0, FlowParams(remove_drift=False), fps=fps)
    assert not still.drift.any()


def test_a_drift_window_longer_than_the_video_is_cut_to_it(texture):
    """At 1e6 fps the 2 s drift window is 2e6 frames: the median filter cost that per frame (40 s for 300 frames).
    It is cut to 2n + 1 frames, which gives the same drift (a shorter cut would not: this guards the cut)."""
    n = 40
    drift = np.stack([np.linspace(0, 1.0, n), np.zeros(n)], axis=1)
    video = np.stack([_warp(texture, drift[i]) for i in range(n)]).astype(np.float32)

    def drift_at(fps, window_s):
        stream = FlowStream(video, 0, FlowParams(drift_window_s=window_s), fps=fps)
        for _ in stream.blocks():
            pass
        return stream.drift

    capped = drift_at(1.0, 2 * n + 1.0)       # a window of exactly 2n + 1 frames
    np.testing.assert_array_equal(drift_at(1e6, 2.0), capped)


def test_adaptive_smoothing_removes_noise_but_keeps_a_moving_cells_edge(texture):
    """A 3 px step (a cell that moved) plus 0.05 px noise: flat parts get quieter, the step stays sharp."""
    rng = np.random.default_rng(4)
    truth = np.zeros((2, N, N), np.float32)
    truth[1, :, N // 2:] = 3.0
    noisy = truth + rng.normal(0, 0.05, truth.shape).astype(np.float32)
    est = FlowEstimator(texture, FlowParams(smooth_px=8.0))
    out = est.smooth(noisy, 0.05)
    flat = (slice(8, -8), slice(4, N // 2 - 24))          # two smoothing widths from the step
    assert np.std(out[1][flat]) < 0.4 * np.std(noisy[1][flat])
    # across the step the field keeps its 3 px jump within two pixels of the edge
    row = out[1].mean(axis=0)
    assert row[N // 2 - 2] < 0.3 and row[N // 2 + 1] > 2.7
    # off, or no noise to remove: the field itself
    assert FlowEstimator(texture, FlowParams(smooth_px=0.0)).smooth(noisy, 0.05) is noisy
    assert est.smooth(noisy, 0.0) is noisy
    with pytest.raises(MicromotionError, match="confidence"):
        FlowParams(smooth_confidence=0.0).validate()


def test_adaptive_smoothing_quiets_still_and_slowly_varying_parts_but_keeps_a_contracting_cell(texture):
    """Lucas-Kanade fields of a disc contracting by 0.6 px at its rim, in a noisy video."""
    from napari_micromotion.kernels.flow import smoothing_scales

    assert smoothing_scales(8.0) == [2.0, 4.0, 8.0] and smoothing_scales(1.5) == [1.5]
    truth, inside = _disc_contraction(0.6)
    rng = np.random.default_rng(6)
    still = [texture + rng.normal(0, 20.0, (N, N)) for _ in range(6)]
    video = np.stack(still + [_warp(texture, truth) + rng.normal(0, 20.0, (N, N))]).astype(np.float32)
    stream = FlowStream(video, 0, FlowParams(remove_drift=False), fps=10.0)
    est = stream.estimators[0]
    measured = est(video[-1])
    out = est.smooth(measured, stream.noise_px)
    wide = ndimage.gaussian_filter(measured, (0, 8, 8))
    rim = inside & ~ndimage.binary_erosion(inside, iterations=4)
    core = ndimage.binary_erosion(inside, iterations=8)
    away = ~ndimage.binary_dilation(inside, iterations=8) & np.pad(np.ones((N - 16, N - 16), bool), 8)

    def err(f, where):
        return float(np.median(np.hypot(*(f - truth))[where]))

    assert err(out, away) < 0.7 * err(measured, away)        # still surroundings: the noise averaged away
    assert err(out, core) < err(measured, core)               # inside the cell the field varies slowly
    assert err(out, rim) < 1.3 * err(measured, rim)           # and the moving rim keeps its motion
    assert err(wide, rim) > 1.5 * err(measured, rim)          # (which one 8 px average would flatten)


def test_stream_measures_the_noise_of_its_fields(texture):
    """The noise the smoothing assumes is the frame-to-frame scatter of the fields of a still, noisy video."""
    rng = np.random.default_rng(7)
    video = (texture[None] + rng.normal(0, 25.0, (24, N, N))).astype(np.float32)
    stream = FlowStream(video, 0, FlowParams(remove_drift=False), fps=10.0, block=8)
    fields = np.concatenate([f for _, f, _ in stream.blocks()])[:, :, 10:-10, 10:-10]
    scatter = float(np.std(fields - fields.mean(axis=0)))      # per component, the reference's share removed
    assert 0.7 * scatter < stream.noise_px < 1.3 * scatter
    quiet = FlowStream(np.repeat(texture[None], 4, axis=0).astype(np.float32), 0, FlowParams(remove_drift=False))
    assert quiet.noise_px < 1e-3


def test_an_interpolated_videos_field_noise_comes_from_its_measured_frames(texture):
    """Every second frame the mean of its neighbours (x2 interpolation): their fields differ by less than the noise."""
    rng = np.random.default_rng(7)
    measured = (texture[None] + rng.normal(0, 25.0, (17, N, N))).astype(np.float32)
    video = np.empty((33, N, N), np.float32)
    video[0::2] = measured
    video[1::2] = 0.5 * (measured[:-1] + measured[1:])
    truth = FlowStream(measured, 0, FlowParams(remove_drift=False), fps=10.0).noise_px
    asked = FlowStream(video, 0, FlowParams(remove_drift=False), fps=20.0, measured_every=2).noise_px
    streamed = FlowStream(video, 0, FlowParams(remove_drift=False), fps=20.0, block=8, measured_every=2)
    list(streamed.blocks(smoothed=True))                        # the first block measures it on the way
    naive = FlowStream(video, 0, FlowParams(remove_drift=False), fps=20.0).noise_px
    assert 0.8 * truth < asked < 1.25 * truth
    assert 0.8 * truth < streamed.noise_px < 1.25 * truth
    assert naive < 0.7 * truth


def test_a_failing_first_block_stops_the_stream_instead_of_hanging_it(texture):
    """The other parts wait for the first block's noise; when reading that block fails, they are released."""
    video = np.stack([texture] * 40).astype(np.float32)

    class Failing:
        shape, dtype = video.shape, video.dtype

        def __getitem__(self, key):
            if isinstance(key, slice) and (key.start or 0) == 0:
                raise OSError("disk error")
            return video[key]

    stream = FlowStream(video, 0, FlowParams(remove_drift=False), fps=10.0, block=8, threads=2)
    assert len(stream.parts) == 2
    stream.video = Failing()
    raised = []

    def consume():
        try:
            for _ in stream.blocks(smoothed=True):
                pass
        except OSError as exc:
            raised.append(str(exc))

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(timeout=60)            # a hang would otherwise stall the whole test run
    assert not worker.is_alive(), "the stream hung after its first block failed"
    assert raised == ["disk error"]


def _disc_contraction(amp):
    """A cell of radius 20 px contracting towards its centre, amp px at its rim, its still neighbours around it."""
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    dy, dx = yy - N / 2, xx - N / 2
    inside = np.hypot(dy, dx) <= 20
    return -amp * np.stack([dy, dx]) / 20 * inside, inside


def test_large_motion_is_refined_over_the_small_window_at_a_cells_outline(texture):
    d, inside = _disc_contraction(3.0)
    frame = _warp(texture, d) + np.random.default_rng(5).normal(0, 2.0, (N, N))
    rim = inside & ~ndimage.binary_erosion(inside, iterations=4)            # the 4 px inside the outline
    errs = {}
    for fine in (1.5, 0.0):
        est = FlowEstimator(texture, FlowParams(fine_window_px=fine, remove_drift=False))(frame)
        errs[fine] = np.median(np.hypot(*(est - d))[rim] / np.hypot(*d)[rim])
    assert errs[1.5] < 0.7 * errs[0.0]
    # small motions are left to the large window: the same field with the refinement on or off
    small, _ = _disc_contraction(0.4)
    frame = _warp(texture, small)
    on = FlowEstimator(texture, FlowParams(remove_drift=False))(frame)
    off = FlowEstimator(texture, FlowParams(fine_window_px=0.0, remove_drift=False))(frame)
    np.testing.assert_array_equal(on, off)
    with pytest.raises(MicromotionError, match="large motion"):
        FlowParams(fine_window_px=-1.0).validate()


def test_strain_correction_takes_out_the_bias_of_a_window_whose_texture_sits_on_one_side():
    """One refinement step on a slow stretch: left of the middle textured, right of it nearly flat.

    The frame is shifted by 0.8 px plus a stretch; the step starts from the shift (as it starts
    from a coarser level's estimate), so only the stretch is left to find.  A window just right
    of the middle draws its gradient energy from the left, so without the correction it reads
    the displacement a few pixels to the left (too small for a stretch growing to the right).
    """
    rng = np.random.default_rng(0)
    tex = 1000 + 200 * ndimage.gaussian_filter(rng.standard_normal((N, N)), 1.5)
    tex[:, N // 2:] = 1000 + 2 * ndimage.gaussian_filter(rng.standard_normal((N, N // 2)), 1.5)
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    moved = 0.8 + 0.005 * (xx - N / 2)                   # frame(x) = tex(x - moved(x))
    frame = ndimage.map_coordinates(tex, [yy, xx - moved], order=3, mode="mirror")
    truth_x = moved.copy()                                # content at x in the reference is at x + truth_x
    for _ in range(20):
        truth_x = ndimage.map_coordinates(moved, [yy, xx + truth_x], order=1, mode="nearest")
    init = np.stack([np.zeros((N, N)), np.full((N, N), 0.8)]).astype(np.float32)
    near = (slice(16, -16), slice(N // 2 + 1, N // 2 + 6))
    bias = {}
    for on in (False, True):
        est = FlowEstimator(tex, FlowParams(strain_correction=on, remove_drift=False, levels=1, iterations=1,
                                            fine_window_px=0.0))(frame, init=init)
        bias[on] = float(np.abs(np.median((est[1] - truth_x)[near])))
    assert bias[True] < 0.85 * bias[False]
    # small motion is left as measured (below 0.3 px the correction's own noise outweighs the bias it removes)
    small = ndimage.map_coordinates(tex, [yy, xx - 0.05], order=3, mode="mirror")
    np.testing.assert_array_equal(FlowEstimator(tex, FlowParams(remove_drift=False))(small),
                                  FlowEstimator(tex, FlowParams(remove_drift=False, strain_correction=False))(small))


def test_strain_correction_lowers_the_error_on_the_simulators_contracting_cells():
    """Noise-free simulated frames: the error at the cells' steep rims falls (0.23 -> 0.19 when written)."""
    from napari_micromotion.simulate import SimulationParams, Simulator, simulate

    sp = SimulationParams(n_frames=100, size=128, seed=4, strong_px=4.0)
    clean = simulate(sp, clean=True).transmission_clean.astype(np.float32)
    sim = Simulator(sp)

    def field(i):
        return np.tensordot(sim._courses[:, i], sim._fields, axes=(0, 0)) + sim.stage[i][:, None, None]

    amp = np.array([np.abs(field(i) - sim.stage[i][:, None, None]).max() for i in range(sp.n_frames)])
    r = int(np.argmin(amp))
    assert amp[r] < 0.01 and amp.max() > 2.0
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    d0 = field(r)
    frames = [i for i in range(sp.n_frames) if amp[i] > 1.0][::3]
    truths = []
    for i in frames:                      # frame(x + d) = reference(x): d = D(x + d) - d0, by fixed point
        D = field(i)
        d = D - d0
        for _ in range(5):
            d = np.stack([ndimage.map_coordinates(D[c], [yy + d[0], xx + d[1]], order=1, mode="nearest")
                          for c in (0, 1)]) - d0
        truths.append(d)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    errs = {}
    for on in (False, True):
        est = FlowEstimator(clean[r], FlowParams(strain_correction=on, remove_drift=False, smooth_px=0.0))
        rel = []
        for i, d in zip(frames, truths):
            mag = np.hypot(*d[inner])
            sel = (mag >= 0.5) & (mag < 2.0)
            rel.append((np.hypot(*(est(clean[i]) - d)[inner]) / np.maximum(mag, 1e-9))[sel])
        errs[on] = float(np.median(np.concatenate(rel)))
    assert errs[True] < 0.9 * errs[False]
    assert errs[True] < 0.22


def test_the_small_windows_refinement_does_not_run_off_to_another_stripe():
    """Striated muscle (the shared sarcomere clip) moved 7 px and read 35 px in single frames: the small window's
    refinement of large motion had jumped to another stripe.  A refinement beyond the main window is not taken."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    stripes = np.sin(2 * np.pi * (xx + 3 * np.sin(yy / 17.0)) / 5)            # bent stripes, 5 px apart
    ref = 1000 + 300 * stripes * (0.6 + 1.2 * ndimage.gaussian_filter(rng.random((128, 128)), 6))
    ref += ndimage.gaussian_filter(rng.normal(size=(128, 128)), 1.5) * 60
    frame = ndimage.shift(ref, (0, 3.0), order=3, mode="reflect")             # content moves 3 px along x
    est = FlowEstimator((ref + rng.normal(0, 3, ref.shape)).astype(np.float32), FlowParams())
    d = est((frame + rng.normal(0, 3, ref.shape)).astype(np.float32))[:, 16:-16, 16:-16]
    length = np.hypot(d[0], d[1])
    assert length.max() < 30 and (length > 9).mean() < 0.025                # was 90 px and 3.7 % above 9 px
    assert (np.hypot(d[0], d[1] - 3.0) > 1.5).mean() < 0.085                # and no more pixels wrong (8.1 %)


@pytest.mark.parametrize("start", ["dis", "auto"])
def test_a_large_shift_started_from_dense_inverse_search_is_refined_by_lk(texture, start):
    """--flow-start dis/auto: the frame's field starts from OpenCV's DIS (a patch search) and lk refines it."""
    frame = ndimage.shift(texture, (0.0, 6.0), order=3, mode="reflect")       # content moves 6 px along x
    est = FlowEstimator(texture, FlowParams(start=start))
    d = est(frame)[:, 12:-12, 12:-12]
    assert np.median(np.abs(d[1] - 6.0)) < 0.05 and np.median(np.abs(d[0])) < 0.05
    with pytest.raises(MicromotionError, match="starting estimate must be one of pyramid, dis, auto"):
        FlowEstimator(texture, FlowParams(start="sift"))


@pytest.mark.parametrize("engine", ["lk", "dis"])
def test_a_frame_like_the_reference_does_not_move(texture, engine):
    """A frame identical to the reference read as moving: its brightness was matched to the mean of the
    pre-smoothed reference, which the smoothing moves at hard borders (the shared microbundle's black bars:
    0.03 %), and the lk engine took that gain for motion (up to 0.06 px there; 0.19 px of false drift).
    (OpenCV's Farneback, the baseline's estimator, reads 1.2 px on this pair by itself.)"""
    img = 40000 + 30 * (texture - 1000)        # a bright 16-bit frame ...
    img[:, :12] = 0.0                          # ... between black bars, as a microscope's cropped field
    img[:, -9:] = 0.0
    d = FlowEstimator(img, FlowParams(engine=engine, remove_drift=False))(img.copy())
    assert np.abs(d).max() < 1e-3, engine
    video = np.stack([img] * 24).astype(np.float32)
    stream = FlowStream(video, 0, FlowParams(engine=engine), fps=20.0)
    fields = np.concatenate([block for _, block, _ in stream.blocks()])
    assert np.abs(stream.drift).max() < 1e-3 and np.abs(fields).max() < 1e-3, engine
