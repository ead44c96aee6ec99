"""Matched filtering (Fig. 2c): per-pixel templates averaged over the training spikes.

For every pixel, the band-passed transmission is cut into windows aligned on the
onsets of the calcium spikes found in the training frames (``pre_s`` before to
``post_s`` after each onset) and averaged into a template.  The prediction is the
correlation of the band-passed signal with the pixel's own (zero-mean,
unit-energy) template, placed so that a match peaks at the spike onset; it is
squared before scoring, like the band-pass output (Fig. 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import fft as sfft

from ..errors import MicromotionError, check
from ..filters import SpikeTrain, detect_spikes
from ..schema import param

__all__ = ["MatchedParams", "find_training_spikes", "templates", "matched_filter"]


@dataclass(frozen=True)
class MatchedParams:
    """Matched-filter settings (see :func:`napari_micromotion.schema.param` for the metadata)."""

    pre_s: float = param(0.2, label="template before onset", unit="s", min=0.0, max=100.0, flag="--template-window",
                         flag_part=0, metavar="PRE_S", decimals=3,
                         help="How much of the transmission before each calcium spike onset the template covers.")
    post_s: float = param(0.8, label="template after onset", unit="s", min=0.001, max=100.0, flag="--template-window",
                          flag_part=1, metavar="POST_S", decimals=3,
                          help="How much of the transmission after each calcium spike onset the template covers.")
    min_spikes: int = param(5, label="fewest training spikes", min=1, max=100000, flag="--min-spikes",
                            help="The matched filter refuses to run with fewer calcium spikes in the training frames "
                                 "(the paper averaged 51); too few make noisy templates.")
    threshold_sd: float = param(5.0, label="spike threshold", unit="SD", min=0.1, max=1000.0, flag="--spike-threshold",
                                decimals=2,
                                help="A calcium spike must rise this many robust noise standard deviations above the "
                                     "median of the fluorescence trace.")
    min_height: float | None = param(None, label="minimum spike height", min=0.0, advanced=True,
                                     none_text="none", flag="--min-spike-height", decimals=4,
                                     help="Optional absolute spike height above the median, in units of the ground "
                                          "truth (dF/F0 by default).")
    refractory_s: float = param(0.5, label="refractory period", unit="s", min=0.0, max=100.0, advanced=True,
                                flag="--refractory", decimals=3,
                                help="Two calcium spikes closer than this count as one.")

    def validate(self) -> None:
        check(self.pre_s >= 0 and self.post_s > 0, "matched-filter window needs pre_s >= 0 and post_s > 0 seconds.")
        check(isinstance(self.min_spikes, (int, np.integer)) and self.min_spikes >= 1, "min_spikes must be a positive integer.")
        check(self.threshold_sd > 0, "spike threshold must be positive.")
        check(self.refractory_s >= 0, "refractory period must be >= 0 seconds.")


def find_training_spikes(truth: np.ndarray, fps: float, segments: Sequence[tuple[int, int]],
                         params: MatchedParams) -> tuple[np.ndarray, SpikeTrain]:
    """Spike onsets (integer frames) inside the training segments whose template windows fit.

    Raises
    ------
    MicromotionError
        Fewer than ``params.min_spikes`` usable spikes.
    """
    params.validate()
    spikes = detect_spikes(truth, fps, threshold_sd=params.threshold_sd, min_height=params.min_height,
                           refractory_s=params.refractory_s)
    pre = int(round(params.pre_s * fps))
    post = int(round(params.post_s * fps))
    onsets = np.rint(spikes.onsets).astype(np.int64)
    keep = np.zeros(onsets.size, bool)
    for a, b in segments:
        keep |= (onsets - pre >= a) & (onsets + post <= b)
    usable = onsets[keep]
    if usable.size < params.min_spikes:
        raise MicromotionError(
            f"the matched filter found {usable.size} calcium spike(s) in the training frames "
            f"({len(spikes)} in the whole trace) but needs at least {params.min_spikes}; "
            "lower the spike threshold, use more training frames, or drop the matched filter."
        )
    return usable, spikes


def templates(filtered: np.ndarray, onsets: np.ndarray, pre: int, post: int) -> np.ndarray:
    """Average ``filtered[onset - pre : onset + post]`` over onsets: ``(pre + post, P)`` templates."""
    idx = onsets[:, None] + np.arange(-pre, post)[None, :]
    return filtered[idx].mean(axis=0, dtype=np.float64).astype(np.float32)


def matched_filter(filtered: np.ndarray, tmpl: np.ndarray, pre: int) -> np.ndarray:
    """Correlate each column of *filtered* ``(T, P)`` with its template ``(L, P)``.

    Templates are made zero-mean and unit-energy per pixel (flat templates give 0).
    Output ``y[t] = sum_k h[k] x[t - pre + k]`` peaks when a spike's onset is at ``t``.
    """
    n_t, n_p = filtered.shape
    length = tmpl.shape[0]
    h = tmpl.astype(np.float64) - tmpl.mean(axis=0, keepdims=True)
    norm = np.sqrt((h * h).sum(axis=0, keepdims=True))
    h = np.where(norm > 0, h / np.where(norm > 0, norm, 1), 0.0).astype(np.float32)
    nfft = sfft.next_fast_len(n_t + length - 1, real=True)
    fx = sfft.rfft(filtered, n=nfft, axis=0, workers=-1)
    fh = sfft.rfft(h, n=nfft, axis=0, workers=-1)
    # cross-correlation: c[m] = sum_k h[k] x[m + k]; y[t] = c[t - pre]
    c = sfft.irfft(fx * np.conj(fh), n=nfft, axis=0, workers=-1)
    # c[m] for m < 0 (partial overlap at the start) sits at the end of the buffer
    m = np.arange(n_t) - pre
    return np.ascontiguousarray(c[np.where(m >= 0, m, nfft + m)], dtype=np.float32)
