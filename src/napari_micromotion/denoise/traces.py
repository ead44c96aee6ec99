"""ROI traces of the denoised movie with Monte-Carlo corridors that keep the errors' spatial correlation.

The error of the denoised movie at two pixels ``i, j`` of one frame is correlated (the
network sees neighbourhoods): ``cov(e_i, e_j) = sd_i sd_j k(i - j)`` with ``sd`` the
calibrated per-pixel SD and ``k`` the error kernel measured on held-out frames
(:func:`napari_micromotion.denoise.predict.fit_calibration`).  The mean of a ROI then has
the variance ``sum_ij m_i sd_i k(i - j) sd_j m_j / N^2`` (computed exactly with an FFT
convolution over the ROI's box), far above the independent ``sum sd_i^2 / N^2`` when the
errors are correlated.  Monte-Carlo samples of each ROI mean are drawn from that
distribution, turned into dF/F0 with the baseline F0 of the denoised trace, and their
5th and 95th percentiles form the 90 % corridor.

Two things the pixel calibration cannot see are added at the level of the ROI means:

* Timing: the network predicts frame ``t`` from its neighbours without frame ``t``, so when
  the signal jumps between frames ``t - 1`` and ``t + 1`` (a calcium upstroke) it cannot
  know where within that step frame ``t`` lies: the ROI mean gets the variance of a value
  spread evenly over the step, ``(mean_{t+1} - mean_{t-1})^2 / 12``.
* Slow shared error: a bias of the whole ROI that lasts many frames (a pull toward the
  mean-image prior, cells that fire together and err together), beyond the kernel's radius
  and far below the camera noise of one pixel.  It is measured per ROI from the products
  of the ROI mean's residuals ``r_t = raw_t - denoised_t`` on out-of-sample frames at lags
  ``N + 1 .. 2N`` (``N`` the context): there the camera noise of the two frames is
  independent and neither frame enters the other's prediction, so ``mean(r_t r_{t+k})``
  is the error's own autocovariance, free of the camera noise and of the camera model's
  inaccuracy (which swamp ``mean(r_t^2)`` at pixel level).  Its positive part is added to
  every frame's variance.  (At pixel level the same products are biased by the noise
  every frame leaves in the mean image the others are predicted from, of the size of the
  error itself; at ROI level that bias is divided by the ROI's pixel count.)

Sizing on the ROI's own residuals (with a camera model and held-out frames): the terms above
are a model; the residual of the ROI mean, ``r_t = raw_t - denoised_t``, measures its error
directly, because the camera noise of a mean over many pixels, ``v_t = sum_i var(mu_i) / N^2``,
is small and known.  Per ROI, and separately for the frames the network did not train on
(fitted on the held-out frames) and for its training targets (fitted on them), the variance
becomes ``a B_t + b J_t``, ``B_t`` the kernel and slow terms, ``J_t`` the timing term:
``a, b >= 0`` maximise the likelihood of the residuals, ``r_t ~ N(0, a B_t + b J_t + v_t)``
(started from the non-negative least-squares fit of ``r_t^2 - v_t``, which weighs every
frame alike, so a few upstroke frames inflated ``a`` for all; the likelihood weighs each
frame by its precision: on the saved arrays of five whole-benchmark runs the corridors then
covered 90.8-94.5 % instead of 89.1-95.8 %, the combined trace's 90.8-92.7 % instead of
89.9-93.1 %), with ``a`` at least 1.5 standard errors of the mean square of ``r_t^2 - v_t``
on the frames without a jump, where the residuals cannot tell.  So a network that has
learnt the upstrokes (of its training frames, or of a movie it denoises well) loses the
timing term, and one that has not keeps it.  Where the
residuals resolve the error (``mean(r^2 - v) > 2 mean(v)``) one more factor makes
``|r_t| <= z sqrt(a B_t + b J_t + v_t)`` hold on the corridor's share of the frames: those
errors are heavy-tailed, and a mean square alone would widen every frame's corridor for the
sake of a few.

Combined trace (with a camera model): the network never sees frame ``t`` (its input is the
neighbouring frames and the leave-one-out prior), so the denoised ROI mean and the raw ROI
mean are two estimates of the clean ROI mean of frame ``t`` with independent errors: the
corridor's variance ``s_t^2`` above, and the camera noise of the mean,
``sum_i var(mu_i) / N^2`` (``var = gain * x + floor``, pixels independent; where the camera
model has a noise kernel, the sum over pairs of pixels of their noise covariance).  Their
inverse-variance average has the variance ``1 / (1 / s_t^2 + 1 / v_raw)``, below both: a
ROI of thousands of pixels follows its raw mean (whose shot noise is already averaged away,
and which sees every upstroke in its own frame), a small ROI follows the denoised mean.
(On frames the network trained on it may have fitted some of their noise, which this
ignores.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal
from scipy.stats import norm

__all__ = ["RoiTraces", "combine_estimates", "roi_traces", "roi_mean_sd", "timing_var", "slow_error_var",
           "corridor_terms", "MIN_CALIBRATION_FRAMES", "RESOLVED_OVER_NOISE", "RESOLUTION_SE"]

#: fewest frames a corridor is fitted on; with fewer the model's variance is kept as it is
MIN_CALIBRATION_FRAMES = 20
#: residual excess (over the raw mean's camera noise) from which the corridor is also fitted by coverage
RESOLVED_OVER_NOISE = 2.0
#: ``a`` is at least this many standard errors of the residuals' mean square on calm frames, over the
#: mean of ``B`` (1, 1.5 and 2 were compared on the benchmark's four seeds; 1.5 kept every ROI above 85 %)
RESOLUTION_SE = 1.5


@dataclass
class RoiTraces:
    """Per ROI ``(T,)`` arrays: raw and denoised dF/F0, the corridor, and the ROI means in movie units."""

    names: list[str]
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    denoised: dict[str, np.ndarray] = field(default_factory=dict)
    lo: dict[str, np.ndarray] = field(default_factory=dict)
    hi: dict[str, np.ndarray] = field(default_factory=dict)
    mean_raw: dict[str, np.ndarray] = field(default_factory=dict)        # ROI mean, movie units
    mean_denoised: dict[str, np.ndarray] = field(default_factory=dict)
    mean_sd: dict[str, np.ndarray] = field(default_factory=dict)         # SD of its error (kernel, factor, timing)
    mean_lo: dict[str, np.ndarray] = field(default_factory=dict)
    mean_hi: dict[str, np.ndarray] = field(default_factory=dict)
    slow_var: dict[str, float] = field(default_factory=dict)             # slow shared error variance per ROI
    combined: dict[str, np.ndarray] = field(default_factory=dict)        # dF/F0 of the inverse-variance average
    combined_lo: dict[str, np.ndarray] = field(default_factory=dict)
    combined_hi: dict[str, np.ndarray] = field(default_factory=dict)
    mean_combined: dict[str, np.ndarray] = field(default_factory=dict)   # movie units
    mean_combined_lo: dict[str, np.ndarray] = field(default_factory=dict)
    mean_combined_hi: dict[str, np.ndarray] = field(default_factory=dict)
    raw_sd: dict[str, np.ndarray] = field(default_factory=dict)          # camera-noise SD of the raw ROI mean
    slow_pairs: int = 0                                                   # out-of-sample frame pairs it was measured on
    factors: dict[str, dict[str, Any]] = field(default_factory=dict)     # corridor weights fitted on the residuals


def roi_mean_sd(sd: np.ndarray, mask: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    """SD of the ROI mean's error in every frame; ``sd`` ``(T, Y, X)``, ``mask`` ``(Y, X)`` bool."""
    n_px = int(mask.sum())
    if n_px == 0:
        return np.full(sd.shape[0], np.nan)
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    a = sd[:, ys, xs].astype(np.float64) * mask[ys, xs]
    if kernel is None or kernel.size == 1:
        var = (a * a).sum(axis=(1, 2))
    else:
        conv = signal.fftconvolve(a, kernel[None].astype(np.float64), mode="same", axes=(1, 2))
        var = (a * conv).sum(axis=(1, 2))
    return np.sqrt(np.maximum(var, 0.0)) / n_px


def combine_estimates(a: np.ndarray, var_a: np.ndarray, b: np.ndarray, var_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance average of two estimates with independent errors, and its variance."""
    var_a = np.maximum(np.asarray(var_a, np.float64), 1e-300)
    var_b = np.maximum(np.asarray(var_b, np.float64), 1e-300)
    w = var_b / (var_a + var_b)                          # weight of a
    return w * a + (1 - w) * b, var_a * var_b / (var_a + var_b)


def timing_var(mean: np.ndarray) -> np.ndarray:
    """Variance of each frame's ROI mean from not knowing where within a jump between its neighbours it lies."""
    jump = np.zeros_like(mean, dtype=np.float64)
    if mean.size >= 3:
        jump[1:-1] = mean[2:] - mean[:-2]
    if mean.size >= 2:
        jump[0], jump[-1] = mean[1] - mean[0], mean[-1] - mean[-2]
    return jump ** 2 / 12.0


def slow_error_var(resid: np.ndarray, frames: np.ndarray, lags: range,
                   groups: np.ndarray | None = None) -> tuple[float, int]:
    """Autocovariance of the error of a ROI mean at *lags*, from residual products on pairs of *frames*.

    ``resid`` ``(T,)`` residuals of the ROI mean (raw minus denoised); only pairs ``(t, t + k)``
    with both frames in *frames* (out of sample) count, and with *groups* (``(T,)``, the
    network that denoised each frame when they were cross-fitted) only pairs from one
    network: two networks' slow errors differ, and a pair across them would measure how
    alike they are, not how large one is.  Returns the mean product (its positive part) and
    the number of pairs.
    """
    ok = np.zeros(resid.size, bool)
    ok[np.asarray(frames, int)] = True
    g = None if groups is None else np.asarray(groups)
    prods = []
    for k in lags:
        if k >= resid.size:
            break
        both = ok[:-k] & ok[k:]
        if g is not None:
            both &= g[:-k] == g[k:]
        prods.append(resid[:-k][both] * resid[k:][both])
    if not prods:
        return 0.0, 0
    allp = np.concatenate(prods)
    return (max(0.0, float(allp.mean())) if allp.size else 0.0), int(allp.size)


def corridor_terms(resid: np.ndarray, base: np.ndarray, jump: np.ndarray, raw_var: np.ndarray, level: float = 0.9
                   ) -> tuple[float, float, str]:
    """Weights ``(a, b, how)`` of a ROI mean's error variance ``a base_t + b jump_t``, from its residuals.

    ``resid`` = raw minus denoised ROI mean, ``base`` the kernel and slow terms, ``jump`` the
    timing term, ``raw_var`` the raw mean's camera-noise variance, per frame (module
    docstring).  *how* is ``"likelihood"`` or ``"likelihood, coverage"``.
    """
    from scipy.optimize import minimize, nnls

    resid, base, jump, raw_var = (np.asarray(v, np.float64) for v in (resid, base, jump, raw_var))
    ok = np.isfinite(resid) & np.isfinite(base) & np.isfinite(jump) & np.isfinite(raw_var)
    resid, base, jump, raw_var = resid[ok], base[ok], jump[ok], raw_var[ok]
    if resid.size < 2 or float(np.mean(base)) <= 0:
        return 1.0, 1.0, "kept"
    y = resid ** 2 - raw_var
    (a, b), _ = nnls(np.stack([base, jump], axis=1), y)
    # maximum likelihood of r_t ~ N(0, a B_t + b J_t + v_t), on log weights in units of the mean noise variance
    unit = float(np.mean(raw_var))
    scale = np.array([unit / float(np.mean(base)), unit / max(float(np.mean(jump)), 1e-300)])
    r2 = resid ** 2

    def nll(p: np.ndarray) -> float:
        wa, wb = np.exp(p) * scale
        var = wa * base + wb * jump + raw_var
        return 0.5 * float(np.sum(np.log(var) + r2 / var))

    start = np.log(np.maximum(np.array([a, b]) / scale, 1e-3))
    best = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400})
    a, b = (float(v) for v in np.exp(best.x) * scale)
    calm = jump <= np.median(jump)             # a's resolution: from the frames the timing term leaves alone
    a = max(a, RESOLUTION_SE * float(np.std(y[calm])) / np.sqrt(calm.sum()) / float(np.mean(base[calm])))
    if float(np.mean(y)) <= RESOLVED_OVER_NOISE * float(np.mean(raw_var)):
        return a, b, "likelihood"
    z = norm.ppf((1 + level) / 2)
    var = a * base + b * jump
    lo, hi = np.log(1e-4), np.log(1e4)
    for _ in range(50):                        # coverage grows with the factor: bisect on its log
        mid = 0.5 * (lo + hi)
        if np.mean(np.abs(resid) <= z * np.sqrt(np.exp(mid) * var + raw_var)) < level:
            lo = mid
        else:
            hi = mid
    c = float(np.exp(hi))
    return a * c, b * c, "likelihood, coverage"


def roi_traces(raw: Any, mu: np.ndarray, sd: np.ndarray, masks: Any, kernel: np.ndarray | None, fps: float, *,
               n_samples: int = 200, level: float = 0.9, seed: int = 0, baseline_s: float = 10.0,
               chunk: int = 256, heldout: Any = None, context: int = 4, groups: Any = None,
               camera: Any = None, in_sample: Any = None) -> RoiTraces:
    """dF/F0 traces of every ROI of *masks* (:class:`~napari_micromotion.rois.RoiMasks`) with corridors.

    Parameters
    ----------
    raw, mu, sd
        ``(T, Y, X)`` raw movie, denoised movie and calibrated SD of the clean signal.
    kernel
        Spatial correlation of the errors (centre 1), or ``None`` for independent pixels.
    n_samples, level, seed
        Monte-Carlo samples per ROI and frame, the corridor's coverage, the generator's seed.
    heldout, context
        Frames denoised out of sample (never a training target) and the denoiser's context
        ``N``: the slow shared error of each ROI is measured on their pairs at lags
        ``N + 1 .. 2N`` (module docstring); without *heldout* it is left out.
    groups
        ``(T,)`` which network denoised each frame (cross-fitting): pairs count within one only.
    camera
        The camera model (:class:`~napari_micromotion.denoise.data.CameraModel`); with it the
        combined trace of the raw and denoised ROI means is added, and (with *heldout*) each
        ROI's corridor is sized on its own residuals (module docstring).
    in_sample
        ``(T,)`` bool, the frames that were training targets of the network: their corridor
        is fitted on their own residuals.
    """
    from ..filters import baseline

    rng = np.random.default_rng(seed)
    out = RoiTraces(names=list(masks.names))
    n = mu.shape[0]
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    z = norm.ppf((1 + level) / 2)                       # half-width of the combined trace's band, in SDs
    means = []
    for i, name in enumerate(masks.names):
        m = masks.masks[i]
        npx = max(int(m.sum()), 1)
        mr = np.empty(n)
        md = np.empty(n)
        vr = np.full(n, np.nan)
        for a in range(0, n, chunk):
            mr[a:a + chunk] = (np.asarray(raw[a:a + chunk], dtype=np.float64) * m).sum(axis=(1, 2)) / npx
            block = mu[a:a + chunk].astype(np.float64)
            md[a:a + chunk] = (block * m).sum(axis=(1, 2)) / npx
            if camera is not None:     # the kernel: noise correlated between pixels (None: independent)
                vr[a:a + chunk] = roi_mean_sd(np.sqrt(camera.var(block)), m, camera.kernel) ** 2
        s = np.concatenate([roi_mean_sd(sd[a:a + chunk], m, kernel) for a in range(0, n, chunk)])
        means.append((mr, md, s))
        if camera is not None:
            out.raw_sd[name] = np.sqrt(vr)
    steps = [timing_var(md) for _, md, _ in means]
    held_mask = np.zeros(n, bool)
    if heldout is not None and len(heldout):
        held_mask[np.asarray(list(heldout), int)] = True
    if held_mask.any():
        h = np.nonzero(held_mask)[0]
        for i, name in enumerate(masks.names):
            mr, md, _ = means[i]
            out.slow_var[name], out.slow_pairs = slow_error_var(mr - md, h, range(context + 1, 2 * context + 1),
                                                                groups)
    fitted = np.zeros(n, bool) if in_sample is None else np.asarray(in_sample, bool)
    for i, name in enumerate(masks.names):
        mr, md, s = means[i]
        base = s ** 2 + out.slow_var.get(name, 0.0)
        s2 = base + steps[i]
        if camera is not None and held_mask.any():
            rep: dict[str, Any] = {}
            for label, frames, applies in (("out of sample", held_mask & ~fitted, ~fitted), ("in sample", fitted, fitted)):
                if frames.sum() >= MIN_CALIBRATION_FRAMES:
                    a, b, how = corridor_terms(mr[frames] - md[frames], base[frames], steps[i][frames],
                                               out.raw_sd[name][frames] ** 2, level)
                    s2 = np.where(applies, a * base + b * steps[i], s2)
                    rep[label] = {"base": a, "timing": b, "how": how, "frames": int(frames.sum())}
            out.factors[name] = rep
        s = np.sqrt(s2)
        samples = md[None] + s[None] * rng.standard_normal((n_samples, n))
        f0_raw = baseline(mr, fps, baseline_s)
        f0 = baseline(md, fps, baseline_s)
        f0_raw = np.where(np.abs(f0_raw) > 0, f0_raw, np.nan)
        f0 = np.where(np.abs(f0) > 0, f0, np.nan)
        lo_f, hi_f = np.percentile(samples, q, axis=0)
        out.raw[name] = (mr - f0_raw) / f0_raw
        out.denoised[name] = (md - f0) / f0
        out.lo[name] = (lo_f - f0) / f0
        out.hi[name] = (hi_f - f0) / f0
        out.mean_raw[name], out.mean_denoised[name], out.mean_sd[name] = mr, md, s
        out.mean_lo[name], out.mean_hi[name] = lo_f, hi_f
        if camera is not None:
            mc, vc = combine_estimates(md, s ** 2, mr, out.raw_sd[name] ** 2)
            half = z * np.sqrt(vc)
            f0c = baseline(mc, fps, baseline_s)
            f0c = np.where(np.abs(f0c) > 0, f0c, np.nan)
            out.combined[name] = (mc - f0c) / f0c
            out.combined_lo[name] = (mc - half - f0c) / f0c
            out.combined_hi[name] = (mc + half - f0c) / f0c
            out.mean_combined[name], out.mean_combined_lo[name], out.mean_combined_hi[name] = mc, mc - half, mc + half
    return out
