"""Calibration of the denoiser's uncertainty: the pixel factor's resolution rule and the ROI corridors' terms."""

from __future__ import annotations

import numpy as np
import pytest

from napari_micromotion.denoise.data import CameraModel
from napari_micromotion.denoise.predict import fit_calibration
from napari_micromotion.denoise.traces import roi_traces, slow_error_var, timing_var


def _held_out(error_var: float, noise_var: float, shape=(60, 64, 64), smooth_px: float = 3.0, seed=0):
    """Raw frames (truth + white camera noise) and a denoised movie whose error is spatially smooth."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    clean = np.full(shape, 100.0)
    err = ndimage.gaussian_filter(rng.standard_normal(shape), (0, smooth_px, smooth_px))
    err *= np.sqrt(error_var) / err.std()
    raw = clean + np.sqrt(noise_var) * rng.standard_normal(shape)
    return raw.astype(np.float32), (clean + err).astype(np.float32), clean


def test_the_error_is_sized_from_adjacent_residual_products_far_below_the_noise():
    # a 40 dB denoiser: error variance 0.6 % of the noise, which the residuals' mean square cannot resolve
    raw, mu, clean = _held_out(error_var=0.006, noise_var=1.0)
    for predicted in (0.0006, 0.06):                            # ten times too small or too large
        var = np.full(mu.shape, predicted, np.float32)
        cal = fit_calibration(raw, mu, var, range(mu.shape[0]), CameraModel(0.0, 1.0, 1e-6), radius=4)
        sd = cal.sd(var, mu, CameraModel(0.0, 1.0, 1e-6))
        assert float(np.mean(sd.astype(np.float64) ** 2)) == pytest.approx(0.006, rel=0.2), (predicted, cal.to_dict())
        assert 0.85 <= float(np.mean(np.abs(clean - mu) <= 1.6449 * sd)) <= 0.95


def test_the_camera_models_inaccuracy_does_not_change_the_size():
    raw, mu, _ = _held_out(error_var=0.006, noise_var=1.0, seed=2)
    var = np.full(mu.shape, 0.006, np.float32)
    factors = [fit_calibration(raw, mu, var, range(mu.shape[0]), CameraModel(0.0, v, 1e-6), radius=4).factors[0]
               for v in (0.98, 1.0, 1.02)]                    # the camera model 2 % off either way
    assert max(factors) - min(factors) < 1e-9
    cal = fit_calibration(raw, mu, var, range(mu.shape[0]), CameraModel(0.0, 1.02, 1e-6), radius=4)
    assert abs(cal.report["residual_mse_over_noise"]) < cal.report["residual_resolution_over_noise"] + 0.02


def test_the_noise_of_the_mean_image_prior_is_added_pixel_by_pixel():
    raw, mu, _ = _held_out(error_var=0.006, noise_var=1.0, seed=3)
    var = np.full(mu.shape, 0.006, np.float32)
    cam = CameraModel(0.5, 0.0, 1e-6)                            # noise variance = half the level
    without = fit_calibration(raw, mu, var, range(mu.shape[0]), cam, radius=4)
    with_prior = fit_calibration(raw, mu, var, range(mu.shape[0]), cam, prior_frames=401, radius=4)
    extra = with_prior.sd(var, mu, cam).astype(np.float64) ** 2 - without.sd(var, mu, cam).astype(np.float64) ** 2
    np.testing.assert_allclose(extra, cam.var(mu.astype(np.float64)) / 400, rtol=1e-3)


def test_training_frames_get_their_own_size_measured_on_them():
    from napari_micromotion.denoise.predict import Calibration

    # held-out frames err with variance 0.06, the frames the network trained on with 0.015
    raw_h, mu_h, clean_h = _held_out(error_var=0.06, noise_var=1.0, shape=(40, 64, 64), seed=4)
    raw_t, mu_t, clean_t = _held_out(error_var=0.015, noise_var=1.0, shape=(40, 64, 64), seed=5)
    raw, mu, clean = (np.concatenate(p) for p in ((raw_h, raw_t), (mu_h, mu_t), (clean_h, clean_t)))
    var = np.full(mu.shape, 0.1, np.float32)
    cam = CameraModel(0.0, 1.0, 1e-6)
    held, train = np.arange(40), np.arange(40, 80)
    cal = fit_calibration(raw, mu, var, held, cam, radius=4, in_sample_frames=train)
    assert cal.in_sample_factor / cal.factors[0] == pytest.approx(0.25, rel=0.25), cal.to_dict()
    sd_t = cal.sd(var[train], mu[train], cam, in_sample=True).astype(np.float64)
    assert float(np.mean(sd_t ** 2)) == pytest.approx(0.015, rel=0.25)
    assert 0.85 <= float(np.mean(np.abs(clean[train] - mu[train]) <= 1.6449 * sd_t)) <= 0.95
    # held-out frames keep the out-of-sample size; without training frames there is no second factor
    np.testing.assert_allclose(cal.sd(var[held], mu[held], cam), fit_calibration(raw, mu, var, held, cam, radius=4)
                               .sd(var[held], mu[held], cam), rtol=1e-6)
    assert fit_calibration(raw, mu, var, held, cam, radius=4).in_sample_factor is None
    back = Calibration.from_dict(cal.to_dict(), cal.kernel)
    assert back.in_sample_factor == pytest.approx(cal.in_sample_factor)
    np.testing.assert_allclose(back.sd(var[train], mu[train], cam, in_sample=True), sd_t, rtol=1e-6)


def test_timing_variance_is_that_of_a_value_spread_over_the_jump_between_the_neighbours():
    trace = np.r_[np.zeros(10), np.full(10, 6.0)]                     # a step between frames 9 and 10
    v = timing_var(trace)
    assert np.allclose(v[[9, 10]], 36.0 / 12.0)
    assert np.allclose(np.delete(v, [9, 10]), 0.0)


def _slow(n, var, tau, rng):
    """An AR(1) series of variance *var* and correlation time *tau* frames."""
    phi = np.exp(-1.0 / tau)
    x = np.empty(n)
    x[0] = rng.standard_normal() * np.sqrt(var)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + np.sqrt(var * (1 - phi * phi)) * rng.standard_normal()
    return x


def test_slow_error_variance_comes_from_lagged_products_free_of_the_noise():
    rng = np.random.default_rng(3)
    n = 20000
    slow = _slow(n, 0.2, 200.0, rng)
    for noise_var in (0.5, 5.0):                      # the noise's size (and any camera model) plays no part
        resid = slow + np.sqrt(noise_var) * rng.standard_normal(n)
        v, pairs = slow_error_var(resid, np.arange(n), range(5, 9))
        realised = np.mean([np.mean(slow[:-k] * slow[k:]) for k in range(5, 9)])    # the slow series' own
        assert v == pytest.approx(realised, abs=0.03), (noise_var, v, realised)
        assert pairs == sum(n - k for k in range(5, 9))
    white, _ = slow_error_var(np.sqrt(5.0) * rng.standard_normal(n), np.arange(n), range(5, 9))
    assert white < 0.02 * 5.0                         # no slow error: (almost) nothing


def _slow_bias_movie(n, scale, seed=5):
    """A flat 24 x 24 px movie with unit camera noise, denoised = truth + a slow AR(1) bias of SD ``0.1 scale``
    shared by a 16 x 16 px ROI (the network's own SD, 0.005, misses it).

    Returns ``raw, mu, sd, masks, truth, bias`` (``masks`` what roi_traces reads of RoiMasks, ``truth`` the
    ROI's clean mean).
    """
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    size = 24
    clean = np.full((n, size, size), 100.0)
    raw = (clean + rng.standard_normal(clean.shape)).astype(np.float32)
    bias = scale * _slow(n, 0.01, 60.0, rng)          # scale 1: SD ~0.1, far below one pixel's noise, ~1.6 x the ROI mean's
    mu = (clean + bias[:, None, None]).astype(np.float32)
    sd = np.full(mu.shape, 0.005, np.float32)
    mask = np.zeros((1, size, size), bool)
    mask[0, 4:20, 4:20] = True
    return raw, mu, sd, SimpleNamespace(names=["cell"], masks=mask), clean[:, mask[0]].mean(axis=1), bias


def _coverage(tr, truth):
    """Share of frames whose clean ROI mean lies within the corridor."""
    return float(np.mean((truth >= tr.mean_lo["cell"]) & (truth <= tr.mean_hi["cell"])))


@pytest.mark.parametrize("scale", [0.4, 3.0])
def test_corridors_sized_on_the_residuals_cover_a_gaussian_slow_bias_of_any_size(scale):
    """With a camera model the corridor is sized on the ROI's residuals; a slow bias that is Gaussian over
    time (0.6 or 5 times the ROI mean's noise SD) must be covered 87-93 %, on held-out and training frames.
    (A corridor that assumes the slow error is an offset of fixed size, lighter-tailed than a Gaussian,
    covers 77-85 % here.)"""
    n = 3000
    raw, mu, sd, masks, truth, _ = _slow_bias_movie(n, scale)
    held = np.arange(0, n, 2)
    in_sample = np.ones(n, bool)
    in_sample[held] = False
    tr = roi_traces(raw, mu, sd, masks, None, 50.0, n_samples=400,
                    heldout=held, context=4, camera=CameraModel(0.0, 1.0, 1e-6), in_sample=in_sample)
    coverage = _coverage(tr, truth)
    assert set(tr.factors["cell"]) == {"out of sample", "in sample"}
    assert 0.87 <= coverage <= 0.93, coverage


def test_slow_error_variance_uses_only_pairs_of_out_of_sample_frames():
    resid = np.ones(40)
    resid[10:20] = 100.0                              # a training block: its residuals must not count
    frames = np.r_[0:10, 20:30]
    v, pairs = slow_error_var(resid, frames, range(5, 9))
    assert pairs == 2 * (5 + 4 + 3 + 2) and v == 1.0


def test_corridors_cover_a_slow_shared_bias_the_pixel_sd_does_not_show():
    """Denoised = truth + a slow bias shared by the ROI: the corridor must widen to cover ~90 % of it."""
    n = 6000
    raw, mu, sd, masks, truth, bias = _slow_bias_movie(n, 1.0)

    def coverage(heldout):
        tr = roi_traces(raw, mu, sd, masks, None, 50.0, n_samples=400, heldout=heldout, context=4)
        return _coverage(tr, truth), tr

    without, _ = coverage(None)
    with_slow, tr = coverage(np.arange(n))
    assert without < 0.2
    assert 0.8 <= with_slow <= 0.97, with_slow
    realised = np.mean([np.mean(bias[:-k] * bias[k:]) for k in range(5, 9)])
    assert tr.slow_var["cell"] == pytest.approx(realised, rel=0.3)


def test_cross_fitted_frames_pair_only_with_frames_of_the_same_network():
    # two networks with opposite slow biases on alternating blocks of 10 frames
    n = 400
    groups = (np.arange(n) // 10) % 2
    resid = np.where(groups == 0, 0.3, -0.3) + np.random.default_rng(6).normal(0, 0.5, n)
    mixed, _ = slow_error_var(resid, np.arange(n), range(5, 9))
    same, pairs = slow_error_var(resid, np.arange(n), range(5, 9), groups)
    assert pairs == 40 * (5 + 4 + 3 + 2)
    assert same == pytest.approx(0.09, abs=0.03) and mixed < 0.05


def test_combined_estimate_weights_by_inverse_variance_and_beats_both():
    from napari_micromotion.denoise.traces import combine_estimates

    m, v = combine_estimates(np.array([1.0, 0.0]), np.array([1.0, 4.0]), np.array([3.0, 1.0]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(m, [2.0, 0.8])                 # equal variances: the midpoint; else 1/4 : 1
    np.testing.assert_allclose(v, [0.5, 0.8])                 # below both variances
    # on simulated estimates with independent errors the average's error is the smaller one
    rng = np.random.default_rng(0)
    truth = rng.normal(size=20000)
    a = truth + rng.normal(0, 2.0, truth.size)
    b = truth + rng.normal(0, 1.0, truth.size)
    c, vc = combine_estimates(a, np.full(truth.size, 4.0), b, np.full(truth.size, 1.0))
    assert np.std(c - truth) < 0.92 * np.std(b - truth)
    assert abs(np.std(c - truth) - np.sqrt(vc[0])) < 0.02


def test_corridor_terms_weigh_the_timing_term_by_the_residuals_and_fit_coverage_where_resolved():
    from napari_micromotion.denoise.traces import corridor_terms

    rng = np.random.default_rng(7)
    n = 4000
    raw_var = np.full(n, 0.01)
    base = np.full(n, 1.0)
    jump = np.where(rng.random(n) < 0.05, 20.0, 0.0)          # one frame in twenty is an upstroke
    # the network errs by SD 0.2 on most frames and by SD 3 on the upstrokes: heavy-tailed, resolved
    err = np.sqrt(0.04 + 0.45 * jump) * rng.standard_normal(n)
    resid = err + 0.1 * rng.standard_normal(n)
    a, b, how = corridor_terms(resid, base, jump, raw_var)
    assert how == "likelihood, coverage"
    var = a * base + b * jump
    assert 0.87 <= float(np.mean(np.abs(err) <= 1.6449 * np.sqrt(var))) <= 0.93
    assert 0.8 <= float(np.mean(np.abs(err[jump > 0]) <= 1.6449 * np.sqrt(var[jump > 0]))) <= 0.97
    assert 0.8 <= float(np.mean(np.abs(err[jump == 0]) <= 1.6449 * np.sqrt(var[jump == 0]))) <= 0.97
    # one factor on the model's sum instead: far too wide where nothing happens, too narrow at the upstrokes
    one = np.mean(err ** 2) / np.mean(base + jump) * (base + jump)
    assert float(np.mean(np.abs(err[jump == 0]) <= 1.6449 * np.sqrt(one[jump == 0]))) > 0.99
    assert float(np.mean(np.abs(err[jump > 0]) <= 1.6449 * np.sqrt(one[jump > 0]))) < 0.85
    # a network that has learnt the upstrokes: no timing term; error below the raw mean's noise: the mean square
    err = 0.05 * rng.standard_normal(n)
    a, b, how = corridor_terms(err + 0.1 * rng.standard_normal(n), base, jump, raw_var)
    assert how == "likelihood" and a == pytest.approx(0.0025, abs=0.0012) and b < 2e-4


def test_corridor_weights_by_likelihood_are_less_scattered_than_by_least_squares_on_squared_residuals():
    """Frames whose modelled error differs 50-fold: the likelihood weighs each by its precision, least squares alike."""
    from scipy.optimize import nnls

    from napari_micromotion.denoise.traces import RESOLUTION_SE, corridor_terms

    rng = np.random.default_rng(3)
    n = 320                                            # the training targets of the benchmark's movie
    base = np.exp(np.random.default_rng(0).uniform(-2, 2, n))
    jump = np.zeros(n)
    jump[::10] = 20.0
    raw_var = np.full(n, 2.0)                          # twice the error's mean variance: not resolved
    fits, squares = [], []
    for _ in range(150):
        err = np.sqrt(0.5 * base + 0.2 * jump) * rng.standard_normal(n)
        resid = err + np.sqrt(raw_var) * rng.standard_normal(n)
        a, _, how = corridor_terms(resid, base, jump, raw_var)
        assert how == "likelihood"                    # the residuals do not resolve the error: no coverage fit
        y = resid ** 2 - raw_var
        (a2, _), _ = nnls(np.stack([base, jump], axis=1), y)
        calm = jump <= np.median(jump)
        squares.append(max(a2, RESOLUTION_SE * np.std(y[calm]) / np.sqrt(calm.sum()) / np.mean(base[calm])))
        fits.append(a)
    rmse = np.sqrt(np.mean((np.array(fits) - 0.5) ** 2))
    rmse_squares = np.sqrt(np.mean((np.array(squares) - 0.5) ** 2))
    assert abs(np.median(fits) - 0.5) < 0.05
    assert rmse < 0.9 * rmse_squares                   # measured 0.106 against 0.125


def test_training_targets_get_narrower_corridors_sized_on_their_own_residuals():
    """A network fitted to its training frames errs 5 x less there: both sets' corridors still cover ~90 %."""
    from types import SimpleNamespace

    from napari_micromotion.denoise.data import CameraModel

    rng = np.random.default_rng(8)
    n, size = 2000, 16
    clean = np.full((n, size, size), 100.0)
    raw = (clean + rng.standard_normal(clean.shape)).astype(np.float32)
    in_sample = (np.arange(n) // 10) % 5 != 2                       # every fifth block of 10 frames is held out
    held = np.nonzero(~in_sample)[0]
    shared = np.where(in_sample, 0.1, 0.5) * rng.standard_normal(n)   # ROI-wide error, SD 0.1 or 0.5
    mu = (clean + shared[:, None, None]).astype(np.float32)
    sd = np.full(mu.shape, 0.3, np.float32)                          # the model: one SD for every frame
    mask = np.ones((1, size, size), bool)
    masks = SimpleNamespace(names=["cell"], masks=mask)
    cam = CameraModel(0.0, 1.0, 1e-6)
    tr = roi_traces(raw, mu, sd, masks, np.ones((3, 3), np.float32), 50.0, n_samples=400, heldout=held, context=4,
                    camera=cam, in_sample=in_sample)
    inside = (clean[:, 0, 0] >= tr.mean_lo["cell"]) & (clean[:, 0, 0] <= tr.mean_hi["cell"])
    for frames in (in_sample, ~in_sample):
        assert 0.85 <= float(inside[frames].mean()) <= 0.95, (float(inside[frames].mean()), tr.factors)
    width = tr.mean_hi["cell"] - tr.mean_lo["cell"]
    assert np.median(width[in_sample]) < 0.4 * np.median(width[~in_sample])
    assert set(tr.factors["cell"]) == {"out of sample", "in sample"}
    assert tr.factors["cell"]["in sample"]["base"] < 0.2 * tr.factors["cell"]["out of sample"]["base"]
