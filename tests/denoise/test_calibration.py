"""Calibration of the denoiser's uncertainty: the pixel factor's resolution rule and the ROI corridors' terms."""

from __future__ import annotations

import numpy as np

from napari_micromotion.denoise.data import CameraModel
from napari_micromotion.denoise.predict import fit_calibration
from napari_micromotion.denoise.traces import _median_factor, timing_var


def _held_out(error_var: float, noise_var: float, shape=(40, 48, 48), seed=0):
    rng = np.random.default_rng(seed)
    clean = np.full(shape, 100.0)
    mu = clean + np.sqrt(error_var) * rng.standard_normal(shape)
    raw = clean + np.sqrt(noise_var) * rng.standard_normal(shape)
    return raw.astype(np.float32), mu.astype(np.float32)


def test_a_far_too_small_predicted_variance_is_raised_to_what_the_residuals_show():
    raw, mu = _held_out(error_var=0.5, noise_var=1.0)
    var = np.full(mu.shape, 0.05, np.float32)                  # ten times too small
    cal = fit_calibration(raw, mu, var, range(mu.shape[0]), CameraModel(0.0, 1.0, 1e-6), radius=4)
    assert 8.0 <= cal.factors[0] <= 10.5, cal.to_dict()
    assert cal.report["verdict"].startswith("raised")


def test_a_right_predicted_variance_is_kept():
    raw, mu = _held_out(error_var=0.5, noise_var=1.0, seed=1)
    var = np.full(mu.shape, 0.5, np.float32)
    cal = fit_calibration(raw, mu, var, range(mu.shape[0]), CameraModel(0.0, 1.0, 1e-6), radius=4)
    assert cal.factors[0] == 1.0 and cal.report["verdict"].startswith("kept")


def test_an_error_far_below_the_camera_models_accuracy_does_not_collapse_the_variance():
    # a 40 dB denoiser: error variance 0.6 % of the noise; the camera model 0.9 % too high
    raw, mu = _held_out(error_var=0.006, noise_var=1.0, shape=(40, 96, 96), seed=2)
    var = np.full(mu.shape, 0.006, np.float32)
    cal = fit_calibration(raw, mu, var, range(mu.shape[0]), CameraModel(0.0, 1.009, 1e-6), radius=4)
    assert cal.report["residual_estimate_of_factor"] < 0.3            # what the residuals alone would say
    assert cal.factors[0] == 1.0


def test_timing_variance_is_that_of_a_value_spread_over_the_jump_between_the_neighbours():
    trace = np.r_[np.zeros(10), np.full(10, 6.0)]                     # a step between frames 9 and 10
    v = timing_var(trace)
    assert np.allclose(v[[9, 10]], 36.0 / 12.0)
    assert np.allclose(np.delete(v, [9, 10]), 0.0)


def test_median_factor_recovers_the_scale_of_the_kernel_variance_and_ignores_a_few_outliers():
    rng = np.random.default_rng(3)
    n = 4000
    noise, kern, step = np.full(n, 0.5), np.full(n, 0.2), np.zeros(n)
    resid = np.abs(np.sqrt(noise + 3.0 * kern) * rng.standard_normal(n))
    resid[:40] = 50.0                                                 # a beat onset's worth of huge residuals
    f = _median_factor(resid, noise, kern, step)
    assert 2.5 <= f <= 3.6, f


def test_median_factor_never_shrinks_the_kernel_variance_when_the_camera_model_overstates_the_noise():
    rng = np.random.default_rng(4)
    n = 4000
    noise, kern, step = np.full(n, 1.0), np.full(n, 0.05), np.zeros(n)
    resid = np.abs(np.sqrt(0.9) * rng.standard_normal(n))          # less than the stated noise alone
    assert _median_factor(resid, noise, kern, step) == 1.0
