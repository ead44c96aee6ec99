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

The pixel calibration cannot see how much of the error is shared over a whole region (the
kernel is measured within a radius and tapered), so with held-out frames and the camera model
the ROI-mean variance is calibrated once more, at the level of the ROI means themselves: there
the camera noise averages down (``sum var_camera / N^2``) while the shared error does not, so
``E[(raw ROI mean - denoised ROI mean)^2] - noise`` measures the error of the denoised ROI mean
well.  One factor, pooled over the ROIs, scales every corridor's variance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal

__all__ = ["RoiTraces", "roi_traces", "roi_mean_sd"]


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
    mean_sd: dict[str, np.ndarray] = field(default_factory=dict)         # SD of the denoised ROI mean, movie units
    mean_lo: dict[str, np.ndarray] = field(default_factory=dict)
    mean_hi: dict[str, np.ndarray] = field(default_factory=dict)
    variance_factor: float = 1.0                                          # the ROI-level calibration (1: none)


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
        with both, the corridors' variance is calibrated on the held-out ROI means (module docstring).
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
    if heldout is not None and camera is not None and len(heldout):
        h = np.asarray(list(heldout), int)
        excess = predicted = 0.0
        for i, (mr, md, s) in enumerate(means):
            m = masks.masks[i]
            npx = max(int(m.sum()), 1)
            noise = np.array([float(camera.var(mu[t][m].astype(np.float64)).sum()) / npx ** 2 for t in h])
            excess += float(np.sum((mr[h] - md[h]) ** 2 - noise))
            predicted += float(np.sum(s[h] ** 2))
        if predicted > 0:
            out.variance_factor = float(np.clip(excess / predicted, 1 / 25, 25))
    scale = np.sqrt(out.variance_factor)
    for i, name in enumerate(masks.names):
        mr, md, s = means[i]
        s = s * scale
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
