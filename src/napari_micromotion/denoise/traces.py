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
* Shared error beyond the kernel's radius (cells that fire together err together): one
  factor, pooled over the ROIs, scales the kernel variance so that on held-out frames the
  ROI means' residuals against the raw movie, standardised by the camera noise of the mean
  plus the corridor's variance, have the median of a standard normal (0.674), and at least 1:
  shared error can only add to the kernel's variance (a factor below 1 would come from a camera
  model that overstates the noise, not from the denoiser).  There the
  camera noise averages down while the shared error does not; the median, unlike the mean
  square, is not carried away by the one or two beat onsets a held-out block may contain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal

__all__ = ["RoiTraces", "roi_traces", "roi_mean_sd", "timing_var"]


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
    variance_factor: float = 1.0                                          # ROI-level factor of the kernel variance


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


def timing_var(mean: np.ndarray) -> np.ndarray:
    """Variance of each frame's ROI mean from not knowing where within a jump between its neighbours it lies."""
    jump = np.zeros_like(mean, dtype=np.float64)
    if mean.size >= 3:
        jump[1:-1] = mean[2:] - mean[:-2]
    if mean.size >= 2:
        jump[0], jump[-1] = mean[1] - mean[0], mean[-1] - mean[-2]
    return jump ** 2 / 12.0


def _median_factor(resid: np.ndarray, noise: np.ndarray, kern: np.ndarray, step: np.ndarray,
                   lo: float = 1.0, hi: float = 1e4) -> float:
    """The factor ``f`` in ``[lo, hi]`` with ``median(|resid| / sqrt(noise + f kern + step)) = 0.674``."""
    target = 0.6744897501960817          # median of |N(0, 1)|

    def med(f: float) -> float:
        return float(np.median(resid / np.sqrt(np.maximum(noise + f * kern + step, 1e-30))))

    if med(lo) <= target:
        return lo
    if med(hi) >= target:
        return hi
    a, b = np.log(lo), np.log(hi)
    for _ in range(50):
        c = 0.5 * (a + b)
        a, b = (c, b) if med(float(np.exp(c))) > target else (a, c)
    return float(np.exp(0.5 * (a + b)))


def roi_traces(raw: Any, mu: np.ndarray, sd: np.ndarray, masks: Any, kernel: np.ndarray | None, fps: float, *,
               n_samples: int = 200, level: float = 0.9, seed: int = 0, baseline_s: float = 10.0,
               chunk: int = 256, heldout: Any = None, camera: Any = None) -> RoiTraces:
    """dF/F0 traces of every ROI of *masks* (:class:`~napari_micromotion.rois.RoiMasks`) with corridors.

    Parameters
    ----------
    raw, mu, sd
        ``(T, Y, X)`` raw movie, denoised movie and calibrated SD of the clean signal.
    kernel
        Spatial correlation of the errors (centre 1), or ``None`` for independent pixels.
    n_samples, level, seed
        Monte-Carlo samples per ROI and frame, the corridor's coverage, the generator's seed.
    heldout, camera
        Frames never used for training and the :class:`~napari_micromotion.denoise.data.CameraModel`:
        with both, the kernel variance is scaled on the held-out ROI means (module docstring).
    """
    from ..filters import baseline

    rng = np.random.default_rng(seed)
    out = RoiTraces(names=list(masks.names))
    n = mu.shape[0]
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    means = []
    for i, name in enumerate(masks.names):
        m = masks.masks[i]
        npx = max(int(m.sum()), 1)
        mr = np.empty(n)
        md = np.empty(n)
        for a in range(0, n, chunk):
            mr[a:a + chunk] = (np.asarray(raw[a:a + chunk], dtype=np.float64) * m).sum(axis=(1, 2)) / npx
            md[a:a + chunk] = (mu[a:a + chunk].astype(np.float64) * m).sum(axis=(1, 2)) / npx
        s = np.concatenate([roi_mean_sd(sd[a:a + chunk], m, kernel) for a in range(0, n, chunk)])
        means.append((mr, md, s))
    steps = [timing_var(md) for _, md, _ in means]
    if heldout is not None and camera is not None and len(heldout):
        h = np.asarray(list(heldout), int)
        z, noise, kern, step = [], [], [], []
        for i, (mr, md, s) in enumerate(means):
            m = masks.masks[i]
            npx = max(int(m.sum()), 1)
            z.append(np.abs(mr[h] - md[h]))
            noise.append([float(camera.var(mu[t][m].astype(np.float64)).sum()) / npx ** 2 for t in h])
            kern.append(s[h] ** 2)
            step.append(steps[i][h])
        out.variance_factor = _median_factor(*(np.concatenate([np.ravel(v) for v in a]) for a in (z, noise, kern, step)))
    for i, name in enumerate(masks.names):
        mr, md, s = means[i]
        s = np.sqrt(out.variance_factor * s ** 2 + steps[i])
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
    return out
