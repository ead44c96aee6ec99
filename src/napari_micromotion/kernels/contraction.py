"""Beats and beat parameters from a contraction (displacement) trace, as cardiac motion tools report them.

A contraction trace is the mean displacement magnitude of a region against the relaxed
reference frame: near zero at rest, one peak per beat (contraction then relaxation).
Each beat is found once (a peak standing out of the noise by ``threshold_sd`` robust
SDs and by ``rel_prominence`` of the largest beat), and measured like MUSCLEMOTION,
BeatProfiler and mps_motion do:

* onset: where the rise crosses ``onset_fraction`` (10 %) of the beat's amplitude above
  its own baseline (the 10th percentile since the previous beat), interpolated between frames;
* peak: the maximum, refined by a cubic through the frames around it.  On noisy traces
  (noise SD above ``align_noise`` of the median beat amplitude) the top of a beat is too
  flat for that: a noise sample decides which frame is highest.  There every beat is
  aligned (sub-frame, by cross-correlation) to the region's average beat, and its peak is
  the average beat's peak at that alignment, so the whole beat, its steep rise above all,
  places it (on the simulator's weak cell: 15 of 22 peaks within one frame of the truth
  before, 22 of 22 after); the onset of such a beat is likewise the average beat's onset
  at its alignment;
* time to peak, relaxation time to 50 % and to 90 % (from the peak to where the trace
  falls to 50 % / 10 % of the amplitude above baseline), beat duration (onset to 90 %
  relaxation), maximum contraction and relaxation speed (from the region's speed trace);
* per region: rate, RR SD (SDNN) and RMSSD of the peak-to-peak intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from ..schema import param

__all__ = ["ContractionBeatParams", "ContractionBeat", "difference_sd", "find_contraction_beats"]


@dataclass(frozen=True)
class ContractionBeatParams:
    """How beats are found in a contraction trace."""

    threshold_sd: float = param(8.0, label="beat threshold", unit="SD", min=0.5, max=1000.0, flag="--beat-threshold",
                                decimals=1,
                                help="A contraction must rise this many robust noise SDs above the resting trace.")
    rel_prominence: float = param(0.2, label="smallest beat", min=0.0, max=1.0, flag="--smallest-beat", decimals=2,
                                  help="A contraction must reach this fraction of the largest one (so that small "
                                       "wobbles after a beat are not counted as beats).")
    refractory_s: float = param(0.25, label="shortest beat interval", unit="s", min=0.0, max=100.0,
                                flag="--beat-refractory", decimals=3,
                                help="Two contraction peaks closer than this count as one beat.")
    min_width_s: float = param(0.06, label="shortest contraction", unit="s", min=0.0, max=100.0,
                               flag="--beat-min-width", advanced=True, decimals=3,
                               help="A contraction must last at least this long at half its height; shorter peaks "
                                    "are noise (a single bright frame), not beats.")
    align_noise: float = param(0.02, label="align noisy beats", min=0.0, max=10.0, flag="--beat-align-noise",
                               advanced=True, decimals=3,
                               help="When the trace's noise SD exceeds this fraction of the median beat amplitude, "
                                    "peak and onset times come from aligning every beat to the average beat (0: "
                                    "always; 10: never).")
    onset_fraction: float = param(0.1, label="onset level", min=0.01, max=0.9, flag="--onset-level", advanced=True,
                                  decimals=2,
                                  help="A beat starts where the rise crosses this fraction of its amplitude.")


@dataclass
class ContractionBeat:
    """One contraction-relaxation cycle (times in seconds, displacements in the trace's unit)."""

    onset_s: float
    peak_time_s: float
    peak_displacement: float
    baseline: float
    time_to_peak_s: float
    relaxation_50_s: float
    relaxation_90_s: float
    duration_s: float
    max_contraction_speed: float
    max_relaxation_speed: float


def difference_sd(d: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Robust noise SD of a trace from differences *d* of pairs of its samples (each with its own noise).

    The median absolute deviation of the differences, scaled to an SD and divided by
    sqrt(2); the few differences taken across a beat do not move it.
    """
    d = np.asarray(d, np.float64)
    return 1.4826 * np.median(np.abs(d - np.median(d, axis=axis, keepdims=True)), axis=axis) / math.sqrt(2)


def _robust_sd(x: np.ndarray) -> float:
    d = np.diff(x)
    return float(difference_sd(d)) if d.size else 0.0


def _span_above(y: np.ndarray, p: int, level: float) -> tuple[int, int]:
    """First and last index of the run of samples at or above *level* around index *p*."""
    lo = hi = p
    while lo > 0 and y[lo - 1] >= level:
        lo -= 1
    while hi < y.size - 1 and y[hi + 1] >= level:
        hi += 1
    return lo, hi


def _poly_max(y: np.ndarray, lo: int, hi: int, origin: int, degree: int, n_grid: int) -> float:
    """Position of the maximum of a polynomial of *degree* fitted to ``y[lo:hi + 1]`` (searched on *n_grid* points)."""
    x = np.arange(lo, hi + 1, dtype=np.float64) - origin
    coef = np.polyfit(x, y[lo:hi + 1], degree)
    grid = np.linspace(x[0], x[-1], n_grid)
    return origin + float(grid[int(np.argmax(np.polyval(coef, grid)))])


def _peak_time(y: np.ndarray, p: int, base: float, amp: float, noise: float) -> float:
    """Sub-frame time (in frames) of the maximum near frame *p*.

    A cubic (contraction peaks are skewed: fast rise, slower relaxation) is fitted to the
    frames around the peak that stay above a level, and its maximum taken.  The level is
    high (90 % of the amplitude) on clean traces and drops towards 50 % as the noise grows
    relative to the amplitude, so that noisy small beats are located from more frames.
    """
    n = y.size
    frac = float(np.clip(1.0 - 4.0 * noise / amp, 0.5, 0.9)) if amp > 0 else 0.9
    lo, hi = _span_above(y, p, base + frac * amp)
    a, b = lo, hi + 1
    if b - a < 5:
        a, b = max(0, p - 2), min(n, p + 3)
    if b - a < 4:   # at the very ends of the recording
        return float(p)
    return _poly_max(y, a, b - 1, p, 3, 8 * (b - a) + 1)


def _template_peak(template: np.ndarray) -> float:
    """Sub-sample position of the maximum of an average beat (first 3 samples: its baseline).

    A quartic through the samples above half the amplitude: the average beat has little noise,
    so more of its top is used than on a single noisy beat, and a quartic follows a fast rise
    and a slower decay with less bias than a cubic over that range.
    """
    base = float(template[:3].mean())
    top = int(np.argmax(template))
    lo, hi = _span_above(template, top, base + 0.5 * (float(template[top]) - base))
    while hi - lo < 5 and (lo > 0 or hi < template.size - 1):
        lo, hi = max(0, lo - 1), min(template.size - 1, hi + 1)
    return _poly_max(template, lo, hi, top, min(4, hi - lo - 1), 20 * (hi - lo) + 1)


def _aligned_peaks(y: np.ndarray, peaks: np.ndarray, onsets: np.ndarray, relax: np.ndarray,
                   onset_fraction: float = 0.1, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Peak and onset times (frames) of beats aligned to their average beat (see the module docstring).

    Returns the peaks (first estimates where a beat could not be aligned) and the onsets of
    the aligned beats: where the average beat's rise crosses *onset_fraction* of its
    amplitude, at each beat's alignment (NaN where a beat was not aligned).

    *peaks*: first estimates (frames); *onsets*, *relax*: onset and 90 % relaxation (frames,
    NaN where unknown), which size the window: from 1.5 times the median rise before the
    peak to the median relaxation after it, but shorter than the closest two beats are
    apart.  The average beat is taken over the beats whose window lies in the trace; a beat
    at either end is aligned on the part it has, and keeps its first estimate when its rise
    or top is cut off.
    """
    from scipy.interpolate import CubicSpline

    out = np.asarray(peaks, np.float64).copy()
    aligned_onsets = np.full(out.size, np.nan)
    if out.size < 3:
        return out, aligned_onsets
    n = y.size
    rise = peaks - onsets
    rise = float(np.nanmedian(rise)) if np.isfinite(rise).any() else 3.0
    fall = relax - peaks
    fall = float(np.nanmedian(fall)) if np.isfinite(fall).any() else 2.0 * rise
    gap = float(np.min(np.diff(np.sort(out))))
    pre = max(3.0, math.ceil(1.5 * rise))
    post = max(3.0, math.ceil(fall))
    if pre + post > gap - 1:                 # never reach into the neighbouring beats
        post = max(2.0, gap - 1 - pre)
        pre = min(pre, max(2.0, gap - 1 - post))
    reach = max(2.0, 0.5 * rise)
    rel = np.arange(-pre, post + 1.0)
    # the average beat from the beats whose whole window lies in the trace; every beat whose rise and top do
    # (the first and last beats may be cut off after their peak) is aligned to it on the frames it has
    full = (out - pre - reach - 1 >= 0) & (out + post + reach + 1 <= n - 1)
    usable = (out - pre - reach - 1 >= 0) & (out + 3 + reach + 1 <= n - 1)
    if full.sum() < 3:
        return out, aligned_onsets
    f = CubicSpline(np.arange(n, dtype=np.float64), y)
    shifts = np.linspace(-reach, reach, int(round(2 * reach / 0.05)) + 1)
    fine = np.linspace(rel[0], rel[-1], 20 * (rel.size - 1) + 1)
    def average(at: np.ndarray) -> np.ndarray:
        win = f(at[full][:, None] + rel[None, :])                              # (beats, window)
        return (win - win[:, :3].mean(axis=1, keepdims=True)).mean(axis=0)

    at = out.copy()
    for _ in range(iterations):
        template = average(at)
        for j in np.nonzero(usable)[0]:
            pos = at[j] + shifts[:, None] + rel[None, :]                       # (shifts, window)
            ok = (pos >= 0) & (pos <= n - 1)
            vals = np.where(ok, f(np.clip(pos, 0, n - 1)), 0.0)
            cnt = ok.sum(axis=1, keepdims=True)
            tm = np.where(ok, template[None, :], 0.0)
            score = (vals * tm).sum(axis=1) - vals.sum(axis=1) * tm.sum(axis=1) / cnt[:, 0]
            at[j] += shifts[int(np.argmax(score))]
        # keep the windows centred on the average beat's peak
        at[usable] += fine[int(np.argmax(CubicSpline(rel, template)(fine)))]
    # the peak: the maximum of the average of the aligned beats (1/sqrt(beats) of their noise), and the onset
    # where its rise crosses the onset level (the same for every beat, as their own crossings scatter with the noise)
    template = average(at)
    top = int(np.argmax(template))
    base = float(template[:3].mean())
    onset = _crossing(template, base + onset_fraction * (float(template[top]) - base), top, 0, -1)
    if math.isfinite(onset):
        aligned_onsets[usable] = at[usable] + onset + rel[0]
    at[usable] += _template_peak(template) + rel[0]
    out[usable] = at[usable]
    return out, aligned_onsets


def _crossing(y: np.ndarray, level: float, start: int, stop: int, step: int) -> float:
    """Sub-frame index where *y* crosses *level* walking from *start* towards *stop* (NaN if never)."""
    k = start
    while k != stop:
        nxt = k + step
        if (y[k] - level) * (y[nxt] - level) <= 0 and y[k] != y[nxt]:
            return k + step * (level - y[k]) / (y[nxt] - y[k])
        k = nxt
    return float("nan")


def find_contraction_beats(trace: np.ndarray, fps: float, params: ContractionBeatParams = ContractionBeatParams(),
                           speed: np.ndarray | None = None, measured_every: int = 1) -> list[ContractionBeat]:
    """Every contraction-relaxation cycle of a contraction *trace* ``(T,)`` (see the module docstring).

    Parameters
    ----------
    trace
        Mean displacement magnitude of the region per frame.
    fps
        Frame rate.
    params
        :class:`ContractionBeatParams`.
    speed
        ``(T,)`` the region's speed (displacement per second); default: the trace's derivative.
    measured_every
        ``K`` when only frames ``0, K, 2K, ...`` were measured (an interpolated video,
        :attr:`~napari_micromotion.recording.Recording.measured_every`): the noise is measured
        on those frames alone, since a synthesized frame halves its differences to its
        neighbours and the threshold would fall with them.
    """
    y = np.asarray(trace, np.float64)
    n = y.size
    if n < 5 or not np.isfinite(y).all():
        return []
    signed = speed is None          # the derivative: rising is contraction, falling relaxation
    v = np.gradient(y) * fps if signed else np.asarray(speed, np.float64)
    rest = float(np.percentile(y, 20))
    noise = _robust_sd(y[::max(1, int(measured_every))])
    top = float(y.max() - rest)
    height = max(params.threshold_sd * noise, params.rel_prominence * top, 1e-12)
    distance = max(1, int(round(params.refractory_s * fps)))
    width = params.min_width_s * fps
    peaks, props = signal.find_peaks(y, prominence=height, distance=distance,
                                     width=(width, None) if width > 0 else None)
    found: list[tuple[int, int, float, float, float]] = []
    prev = 0
    for i, p in enumerate(peaks):
        lo = int(props["left_bases"][i]) if "left_bases" in props else prev
        lo = max(lo, prev)
        # the rest level before the beat: a low percentile, not the minimum (one noisy frame would drag the
        # onset level, and with it the onset, down to it)
        base = float(np.percentile(y[prev:p + 1], 10)) if p > prev else float(y[p])
        amp = float(y[p] - base)
        if amp <= 0:
            continue
        found.append((int(p), lo, base, amp, _peak_time(y, p, base, amp, noise)))
        prev = p
    if not found:
        return []
    tps = np.array([f[4] for f in found])
    amps = np.array([f[3] for f in found])
    nexts = [f[0] for f in found[1:]] + [n - 1]           # each beat ends at the next one's peak
    onsets, r50s, r90s = [], [], []
    for (p, lo, base, amp, _), nxt in zip(found, nexts):
        onsets.append(_crossing(y, base + params.onset_fraction * amp, p, max(lo, 0), -1))
        r50s.append(_crossing(y, base + 0.5 * amp, p, nxt, 1))
        r90s.append(_crossing(y, base + 0.1 * amp, p, nxt, 1))
    if noise > params.align_noise * float(np.median(amps)):
        tps, aligned = _aligned_peaks(y, tps, np.array(onsets), np.array(r90s), params.onset_fraction)
        onsets = [float(a) if math.isfinite(a) else o for a, o in zip(aligned, onsets)]
    beats: list[ContractionBeat] = []
    for i, ((p, lo, base, amp, _), nxt) in enumerate(zip(found, nexts)):
        tp, onset, r50, r90 = float(tps[i]), onsets[i], r50s[i], r90s[i]
        a, b = (int(math.floor(onset)) if math.isfinite(onset) else lo), p
        c = int(math.ceil(r90)) if math.isfinite(r90) else nxt
        beats.append(ContractionBeat(
            onset_s=onset / fps, peak_time_s=tp / fps, peak_displacement=float(y[p]), baseline=base,
            time_to_peak_s=(tp - onset) / fps, relaxation_50_s=(r50 - tp) / fps, relaxation_90_s=(r90 - tp) / fps,
            duration_s=(r90 - onset) / fps,
            max_contraction_speed=float(np.max(v[a:b + 1])) if b >= a else float("nan"),
            max_relaxation_speed=(float(-np.min(v[b:c + 1])) if signed else float(np.max(v[b:c + 1])))
            if c >= b else float("nan")))
    return beats
