"""Beat timing per region: from transmission alone (band-pass energy) and from fluorescence.

Transmission: the band-passed, squared transmission summed over the ROI (the
same trace the band-pass method predicts) is smoothed over ``smooth_s`` and its
bursts are detected like calcium spikes (robust threshold, refractory period);
the beat time is the half-maximum crossing of the rising flank.  This needs no
fluorescence at all.  Fluorescence: spikes of the ROI's dF/F0 trace.

Statistics: beat rate (bpm) from the mean RR interval, RR SD (SDNN), RMSSD and
the coefficient of variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import MicromotionError, check
from .filters import detect_spikes, dff
from .schema import param

__all__ = ["BeatParams", "beats_from_energy", "beats_from_fluorescence", "energy_beats", "fluorescence_beats",
           "beat_stats"]


@dataclass(frozen=True)
class BeatParams:
    """Beat detection settings (seconds and noise SDs)."""

    smooth_s: float = param(0.2, label="smoothing", unit="s", min=0.0, max=100.0, flag="--beat-smooth",
                            advanced=True, decimals=3,
                            help="The motion-energy trace is averaged over this long before beats are found.")
    threshold_sd: float = param(5.0, label="beat threshold", unit="SD", min=0.1, max=1000.0, flag="--beat-threshold",
                                decimals=2,
                                help="A beat must rise this many robust noise standard deviations above the median "
                                     "(for motion and for calcium).")
    refractory_s: float = param(0.4, label="shortest beat interval", unit="s", min=0.0, max=100.0,
                                flag="--beat-refractory", decimals=3,
                                help="Two beats closer than this count as one (set it below the fastest expected "
                                     "beat interval).")
    #: a burst must stand out by this fraction of its height (contraction and relaxation are one beat)
    rel_prominence: float = param(0.6, label="beat prominence", min=0.0, max=1.0, flag="--beat-prominence",
                                  advanced=True, decimals=2,
                                  help="A burst of motion must stand out by this fraction of its height, so that the "
                                       "relaxation after a contraction does not count as a second beat.")


def _trace_and_rate(trace: Any, fps: Any, what: str) -> np.ndarray:
    """*trace* as a ``(T,)`` float64 array, after checking its shape and the frame rate (one sentence each)."""
    ok = isinstance(fps, (int, float, np.integer, np.floating)) and not isinstance(fps, bool)
    check(ok and math.isfinite(fps) and fps > 0, f"the frame rate must be a positive number, got {fps!r}.")
    try:
        y = np.asarray(trace, dtype=np.float64)
    except (TypeError, ValueError):
        raise MicromotionError(f"the {what} must be a sequence of numbers.") from None
    check(y.ndim == 1 and y.size >= 3, f"the {what} must be one trace (T,) of at least 3 values, got shape {y.shape}.")
    return y


def beats_from_energy(energy: np.ndarray, fps: float, params: BeatParams = BeatParams()) -> np.ndarray:
    """Beat times in seconds from a band-pass energy trace (``(T,)``, >= 0)."""
    return energy_beats(energy, fps, params)[0]


def energy_beats(energy: np.ndarray, fps: float, params: BeatParams = BeatParams()) -> tuple[np.ndarray, np.ndarray]:
    """Beat onsets and peak times in seconds from a band-pass energy trace."""
    e = _trace_and_rate(energy, fps, "energy trace")
    win = max(1, int(round(params.smooth_s * fps)))
    sm = ndimage.uniform_filter1d(e, size=win, mode="nearest")
    # energy is chi-square-like; the square root makes bursts and noise more symmetric
    sm = np.sqrt(np.maximum(sm, 0))
    spikes = detect_spikes(sm, fps, threshold_sd=params.threshold_sd * math.sqrt(win),
                           refractory_s=params.refractory_s, rel_prominence=params.rel_prominence)
    return spikes.onsets / fps, spikes.peaks / fps


def beats_from_fluorescence(trace: np.ndarray, fps: float, params: BeatParams = BeatParams(), *,
                            baseline_window_s: float = 10.0, already_dff: bool = False) -> np.ndarray:
    """Beat (calcium transient) times in seconds from a fluorescence trace."""
    return fluorescence_beats(trace, fps, params, baseline_window_s=baseline_window_s, already_dff=already_dff)[0]


def fluorescence_beats(trace: np.ndarray, fps: float, params: BeatParams = BeatParams(), *,
                       baseline_window_s: float = 10.0, already_dff: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Calcium transient onsets and peak times in seconds from a fluorescence trace."""
    y = _trace_and_rate(trace, fps, "fluorescence trace")
    y = y if already_dff else dff(y, fps, baseline_window_s)
    spikes = detect_spikes(y, fps, threshold_sd=params.threshold_sd, refractory_s=params.refractory_s)
    return spikes.onsets / fps, spikes.peaks / fps


def beat_stats(times_s: np.ndarray) -> dict[str, Any]:
    """Rate and variability of a beat train."""
    t = np.sort(np.asarray(times_s, dtype=np.float64))
    rr = np.diff(t)
    out: dict[str, Any] = {"n_beats": int(t.size)}
    if rr.size == 0:
        out.update(rate_bpm=float("nan"), rr_mean_s=float("nan"), rr_sd_s=float("nan"), rmssd_s=float("nan"),
                   rr_cv=float("nan"))
        return out
    mean = float(rr.mean())
    sd = float(rr.std(ddof=1)) if rr.size > 1 else float("nan")
    out.update(rate_bpm=60.0 / mean, rr_mean_s=mean, rr_sd_s=sd,
               rmssd_s=float(np.sqrt(np.mean(np.diff(rr) ** 2))) if rr.size > 1 else float("nan"),
               rr_cv=sd / mean if rr.size > 1 else float("nan"))
    return out


def match_times(detected_s: np.ndarray, truth_s: np.ndarray, tolerance_s: float) -> tuple[int, np.ndarray]:
    """Greedy one-to-one matching within *tolerance_s*; returns (matches, errors of the matches)."""
    det = list(np.sort(detected_s))
    errors = []
    for t in np.sort(truth_s):
        if not det:
            break
        k = int(np.argmin(np.abs(np.array(det) - t)))
        if abs(det[k] - t) <= tolerance_s:
            errors.append(det[k] - t)
            det.pop(k)
    return len(errors), np.array(errors)
