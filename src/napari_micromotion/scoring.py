"""The paper's correlation score (Fig. 3a), per pixel and per ROI, with significance.

Definition
----------
Over the scored segment of ``N`` frames, prediction ``p`` and fluorescence ``f`` are
z-normalised (mean 0, population SD 1).  Their full cross-correlation divided by
``N``::

    c[k] = (1/N) * sum_n p[n + k] * f[n]        (terms outside 0..N-1 are zero)

is maximised over lags ``|k| <= max_lag`` (all lags when ``max_lag`` is ``None``).
The maximum is the score (1 = perfect, at ``k = 0`` it is Pearson's r); the lag at
the maximum, ``k / fps`` seconds, is positive when the prediction comes *after*
the fluorescence.

Per-pixel maps are vectorised: for small lag windows as one matrix product with
the Toeplitz matrix of the reference (BLAS), otherwise by FFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft

from .errors import check

__all__ = [
    "zscore",
    "xcorr_full",
    "score",
    "ScoreResult",
    "score_columns",
    "max_lag_frames",
    "surrogate_p_value",
]


def zscore(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Subtract the mean and divide by the population SD along *axis* (constant -> zeros)."""
    x = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype == np.float64 else np.float32)
    mu = x.mean(axis=axis, keepdims=True)
    d = x - mu
    sd = np.sqrt((d * d).mean(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sd > 0, d / np.where(sd > 0, sd, 1), 0)
    return out.astype(x.dtype, copy=False)


def max_lag_frames(max_lag_s: float | None, fps: float, n: int) -> int:
    """Lag window in frames for *max_lag_s* seconds (``None``: all lags, ``n - 1``)."""
    if max_lag_s is None:
        return n - 1
    check(max_lag_s >= 0 and math.isfinite(max_lag_s), f"max_lag_s must be >= 0 seconds, got {max_lag_s!r}.")
    return int(min(n - 1, round(max_lag_s * fps)))


def xcorr_full(p: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full normalised cross-correlation of two 1D series (z-normalised inside).

    Returns ``(lags, c)`` with ``lags = -(N-1) .. N-1`` in frames.
    """
    p = zscore(np.asarray(p, dtype=np.float64))
    f = zscore(np.asarray(f, dtype=np.float64))
    check(p.shape == f.shape and p.ndim == 1, "prediction and fluorescence must be 1D series of equal length.")
    n = p.size
    # numpy: correlate(a, v, 'full')[k + n - 1] = sum_n a[n + k] v[n]
    c = np.correlate(p, f, mode="full") / n
    return np.arange(-(n - 1), n), c


@dataclass(frozen=True)
class ScoreResult:
    """Score of one series: maximum correlation and its lag."""

    score: float
    lag_frames: int
    lag_s: float


def score(p: np.ndarray, f: np.ndarray, fps: float, max_lag_s: float | None = 1.0) -> ScoreResult:
    """The paper's score for one prediction *p* against fluorescence *f*."""
    s, lag = score_columns(np.asarray(p)[:, None], np.asarray(f), max_lag_frames(max_lag_s, fps, len(f)))
    return ScoreResult(float(s[0]), int(lag[0]), float(lag[0]) / fps)


def _toeplitz_scores(z: np.ndarray, fz: np.ndarray, max_lag: int) -> np.ndarray:
    n = fz.size
    lags = np.arange(-max_lag, max_lag + 1)
    # R[m, j] = f[m - lag_j]  =>  (R^T z)[j] = sum_m f[m - k] p[m] = N * c[k]
    idx = np.arange(n)[:, None] - lags[None, :]
    valid = (idx >= 0) & (idx < n)
    r = np.where(valid, fz[np.clip(idx, 0, n - 1)], 0).astype(z.dtype)
    return (r.T @ z) / n


def _fft_scores(z: np.ndarray, fz: np.ndarray, max_lag: int) -> np.ndarray:
    n = fz.size
    nfft = sfft.next_fast_len(2 * n - 1, real=True)
    fp = sfft.rfft(z, n=nfft, axis=0, workers=-1)
    ff = sfft.rfft(fz.astype(z.dtype), n=nfft)
    cc = sfft.irfft(fp * np.conj(ff)[:, None], n=nfft, axis=0, workers=-1)
    # cc[k] = sum_n p[n + k] f[n] for k >= 0, negative k wrap to the end
    pos = cc[: max_lag + 1]
    neg = cc[nfft - max_lag:] if max_lag > 0 else cc[:0]
    return np.concatenate([neg, pos], axis=0) / n


def score_columns(pred: np.ndarray, fluo: np.ndarray, max_lag: int, *, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Scores of many predictions at once.

    Parameters
    ----------
    pred
        ``(N, P)`` predictions, one column per pixel (or ROI), over the scored segment.
    fluo
        ``(N,)`` fluorescence over the same frames.
    max_lag
        Largest lag in frames (``N - 1`` for the full cross-correlation).
    method
        ``"toeplitz"`` (matrix product, fast for small lag windows), ``"fft"`` or ``"auto"``.

    Returns
    -------
    scores, lags
        ``(P,)`` float32 maximum correlation and ``(P,)`` int lag in frames at the maximum.
        Constant columns score 0 at lag 0.
    """
    pred = np.asarray(pred)
    check(pred.ndim == 2 and pred.shape[0] == len(fluo), "predictions must be (N, P) with N = len(fluorescence).")
    n = pred.shape[0]
    max_lag = int(min(max(max_lag, 0), n - 1))
    dtype = np.float64 if pred.dtype == np.float64 else np.float32
    z = zscore(pred.astype(dtype, copy=False), axis=0)
    fz = zscore(np.asarray(fluo, dtype=np.float64)).astype(dtype)
    if method == "auto":
        method = "toeplitz" if (2 * max_lag + 1) <= 256 else "fft"
    c = _toeplitz_scores(z, fz, max_lag) if method == "toeplitz" else _fft_scores(z, fz, max_lag)
    best = np.argmax(c, axis=0)
    scores = c[best, np.arange(c.shape[1])]
    lags = best - max_lag
    const = ~np.any(z != 0, axis=0)
    scores = np.where(const, 0.0, scores).astype(np.float32)
    lags = np.where(const, 0, lags).astype(np.int64)
    return scores, lags


def shift_range(n: int, max_lag: int, min_shift: int | None = None) -> tuple[int, int]:
    """The admissible circular shifts ``lo..hi`` of :func:`surrogate_p_value` for *n* frames."""
    lo = max_lag + 1 if min_shift is None else int(min_shift)
    hi = n - lo
    if hi <= lo:  # segment too short for shifts outside the lag window
        lo, hi = 1, n - 1
    return lo, hi


def n_surrogates_used(n: int, max_lag: int, n_surrogates: int, min_shift: int | None = None) -> int:
    """How many distinct shifts :func:`surrogate_p_value` uses: the smallest p-value is ``1 / (1 + that)``."""
    lo, hi = shift_range(n, max_lag, min_shift)
    return int(min(max(hi - lo + 1, 0), n_surrogates))


def surrogates_of(results: Any) -> int | None:
    """How many distinct time shifts an analysis' ROI p-values came from (its validation frames, maximum lag,
    frame rate and surrogate count); ``None`` when *results* do not say."""
    params = getattr(results, "params", None)
    validation = getattr(results, "validation", None)
    if params is None or not validation or not getattr(results, "fps", None):
        return None
    v0, v1 = validation
    return n_surrogates_used(v1 - v0, max_lag_frames(params.max_lag_s, results.fps, v1 - v0), params.n_surrogates)


def surrogate_p_value(pred: np.ndarray, fluo: np.ndarray, max_lag: int, *, n_surrogates: int = 999,
                      min_shift: int | None = None, seed: int = 0) -> tuple[float, float]:
    """Significance of a score by circular-shift surrogates.

    The prediction is rotated in time by random shifts of at least ``min_shift``
    frames (default: ``max_lag + 1``, so no surrogate reproduces a scored alignment);
    this keeps its spectrum and autocorrelation but breaks its timing relative to the
    fluorescence.  Each surrogate is scored like the original.  Distinct shifts are
    drawn without replacement; when there are fewer admissible shifts than
    ``n_surrogates``, all of them are used.

    Returns
    -------
    p_value, observed
        ``(1 + #{surrogate >= observed}) / (1 + n_surrogates)`` and the observed score.
    """
    pred = np.asarray(pred, dtype=np.float64)
    n = pred.size
    check(n_surrogates >= 1, "n_surrogates must be at least 1.")
    obs, _ = score_columns(pred[:, None], fluo, max_lag, method="auto")
    lo, hi = shift_range(n, max_lag, min_shift)
    rng = np.random.default_rng(seed)
    candidates = np.arange(lo, hi + 1)
    # every admissible shift once when there are few (an exact test), else a random subset
    shifts = candidates if candidates.size <= n_surrogates else rng.choice(candidates, n_surrogates, replace=False)
    n_surrogates = shifts.size
    idx = (np.arange(n)[:, None] - shifts[None, :]) % n
    surr = pred[idx]
    s, _ = score_columns(surr, fluo, max_lag)
    p = (1.0 + float(np.sum(s >= obs[0] - 1e-7))) / (1.0 + n_surrogates)
    return p, float(obs[0])
