import numpy as np
import pytest
from scipy import signal

from napari_micromotion import filters as F
from napari_micromotion.errors import MicromotionError


@pytest.mark.parametrize("fps,low,high,order", [(50, 2, 15, 2), (50, 2, 15, 4), (100, 1, 30, 3), (18.168, 1, 7, 2)])
def test_effective_3db_points_match_design(fps, low, high, order):
    d = F.design_bandpass(fps, low, high, order)
    gain_db = 20 * np.log10(F.effective_response(d, np.array([low, high])))
    np.testing.assert_allclose(gain_db, [-3.0103, -3.0103], atol=1e-3)
    # inside the band it passes, far outside it stops
    mid = np.sqrt(low * high)
    assert 20 * np.log10(F.effective_response(d, np.array([mid]))[0]) > -1.0
    assert 20 * np.log10(F.effective_response(d, np.array([low / 8]))[0]) < -20
    # the zero-phase design edges sit outside the requested passband
    assert d.design_low_hz < low and d.design_high_hz > high


def test_design_edges_mode_is_textbook_single_pass():
    d = F.design_bandpass(50, 2, 15, 2, zero_phase=False, edges="design")
    gain_db = 20 * np.log10(F.effective_response(d, np.array([2.0, 15.0])))
    np.testing.assert_allclose(gain_db, [-3.0103, -3.0103], atol=1e-3)


def test_measured_response_of_the_applied_filter():
    """Filter sinusoids with the kernel: the amplitude ratio at the edges is -3 dB."""
    fps = 50.0
    d = F.design_bandpass(fps, 2, 15, 2)
    t = np.arange(4000) / fps
    x = np.column_stack([np.sin(2 * np.pi * f * t) for f in (2.0, 15.0, 6.0)])
    y = F.bandpass(x, d)[500:-500]
    amp = np.sqrt(2) * y.std(axis=0)
    np.testing.assert_allclose(20 * np.log10(amp), [-3.0103, -3.0103, 0.0], atol=0.05)


@pytest.mark.parametrize("padtype", ["odd", "mean"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64, np.int16])
def test_kernel_equals_reference(padtype, dtype):
    rng = np.random.default_rng(0)
    x = (rng.normal(1000, 30, size=(400, 37)) + 50 * np.sin(np.arange(400) / 3)[:, None]).astype(dtype)
    d = F.design_bandpass(50, 2, 15, 2, padtype=padtype)
    y = F.bandpass(x, d)
    ref = F.bandpass_reference(x, d)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, ref, atol=1e-4 * np.abs(ref).max())


def test_odd_padtype_is_scipy_sosfiltfilt():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    d = F.design_bandpass(50, 2, 15, 2, padtype="odd")
    np.testing.assert_allclose(F.bandpass(x, d), signal.sosfiltfilt(d.sos, x, axis=0), atol=1e-5)


def test_mean_padding_keeps_edge_noise_flat():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 20000)) + 100
    var_mean = (F.bandpass(x, F.design_bandpass(50, padtype="mean")) ** 2).mean(axis=1)
    var_odd = (F.bandpass(x, F.design_bandpass(50, padtype="odd")) ** 2).mean(axis=1)
    interior = var_mean[150:250].mean()
    assert var_odd[1:4].max() > 2.0 * interior  # scipy's odd extension inflates the first frames
    assert var_mean[:10].max() < 1.15 * interior


def test_strided_memmap_view_is_filtered_without_copy(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 4000, size=(200, 8, 9), dtype=np.uint16)
    path = tmp_path / "x.raw"
    data.tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r", shape=data.shape)
    view = mm[:, 2:5, :].reshape(200, -1)
    d = F.design_bandpass(50)
    np.testing.assert_allclose(F.bandpass(view, d), F.bandpass_reference(data[:, 2:5, :].reshape(200, -1), d),
                               atol=1e-3)


@pytest.mark.parametrize("fps,low,high,msg", [
    (50, 2, 25, "Nyquist"), (50, 2, 30, "Nyquist"), (50, 15, 2, "below the high edge"), (50, 5, 5, "below the high edge"),
    (0, 2, 15, "positive"), (-5, 2, 15, "positive"), (50, 0, 15, "above 0"), (float("nan"), 2, 15, "finite"),
])
def test_bad_passbands_are_refused(fps, low, high, msg):
    with pytest.raises(MicromotionError, match=msg):
        F.design_bandpass(fps, low, high)


def test_too_few_frames():
    d = F.design_bandpass(50, padtype="odd")
    with pytest.raises(MicromotionError, match="too few"):
        F.bandpass(np.zeros((10, 3)), d)


def test_dff_removes_bleaching_and_keeps_transients():
    fps = 50
    t = np.arange(6000) / fps
    f0 = 1000 * np.exp(-t / 100)
    spikes = np.zeros_like(t)
    for s in np.arange(2, 118, 3.0):
        sel = t >= s
        spikes[sel] += np.exp(-(t[sel] - s) / 0.4)
    y = F.dff(f0 * (1 + 0.5 * spikes), fps, window_s=10)
    # the baseline follows the bleaching: dF/F0 between spikes ~ 0, peaks ~ 0.5
    peaks = y[np.searchsorted(t, np.arange(2, 118, 3.0))]
    assert np.median(peaks) == pytest.approx(0.5, abs=0.12)
    assert abs(np.percentile(y, 10)) < 0.05


def test_detect_spikes_finds_planted_onsets():
    fps = 50.0
    rng = np.random.default_rng(4)
    t = np.arange(3000) / fps
    onsets = np.array([1.3, 4.1, 6.8, 9.9, 13.0, 15.7, 18.9, 22.2, 25.0, 28.4, 31.0, 34.6, 37.9, 41.2, 44.0, 47.5, 52.3, 55.1])
    y = np.zeros_like(t)
    for s in onsets:
        sel = t >= s
        y[sel] += (1 - np.exp(-(t[sel] - s) / 0.03)) * np.exp(-(t[sel] - s) / 0.4)
    y += rng.normal(0, 0.02, t.size)
    sp = F.detect_spikes(y, fps, threshold_sd=5, refractory_s=0.5)
    assert len(sp) == onsets.size
    # the half-maximum crossing lies a few frames after the true start
    err = sp.onsets / fps - onsets
    assert np.all(err > -0.02) and np.all(err < 0.08)


def test_a_passband_far_below_the_frame_rate_is_refused_in_one_sentence():
    """Found by the random-input test: at 6e8 fps a 1-2 Hz band has no finite starting point."""
    with pytest.raises(MicromotionError, match="cannot be built at 5.96314e\\+08 fps"):
        F.design_bandpass(596313654.0, 1.0, 2.0, 2)
