"""Temporal filters: the zero-phase Butterworth band-pass, dF/F0 and spike detection.

Band-pass design
----------------
The paper specifies the band-pass by its 3 dB passband (2-15 Hz at 50 fps).  We
filter forwards and backwards (zero phase, no delay between prediction and
ground truth), which squares the magnitude response.  :func:`design_bandpass`
therefore solves for the Butterworth design edges at which the *effective*
two-pass response is exactly -3 dB at ``low_hz`` and ``high_hz``
(``edges="effective"``, default); ``edges="design"`` gives the textbook
single-pass design instead.

Implementation
--------------
:func:`bandpass` is numerically the same as :func:`scipy.signal.sosfiltfilt`
(odd extension, steady-state initial conditions) but runs a fused numba kernel
over ``(T, P)`` pixel blocks with pixels in SIMD lanes, in float64 internally
and float32 out, reading integer memory maps directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, signal

from .errors import check

__all__ = [
    "BandpassDesign",
    "design_bandpass",
    "bandpass",
    "bandpass_reference",
    "effective_response",
    "dff",
    "baseline",
    "detect_spikes",
    "SpikeTrain",
    "min_frames_for",
]


@dataclass(frozen=True)
class BandpassDesign:
    """A designed zero-phase band-pass.

    Attributes
    ----------
    sos
        Second-order sections (float64) of the single-pass filter.
    fps, low_hz, high_hz, order
        What was asked for (3 dB edges of the effective response when ``zero_phase``).
    design_low_hz, design_high_hz
        Edges handed to the Butterworth design.
    zero_phase
        Filter forwards and backwards.
    padtype
        Extension at the recording ends: ``"mean"`` (constant at the mean of the first/last
        ``anchor`` samples; no noise mirrored into the padding, flat noise up to the edges)
        or ``"odd"`` (:func:`scipy.signal.sosfiltfilt`'s default: point reflection about the
        first/last sample, which doubles that sample's noise and inflates the squared
        output over the first few frames).
    padlen
        Samples of extension at each end.
    anchor
        Samples averaged for the ``"mean"`` extension (half a period of ``low_hz``).
    """

    sos: np.ndarray
    fps: float
    low_hz: float
    high_hz: float
    order: int
    design_low_hz: float
    design_high_hz: float
    zero_phase: bool
    padlen: int
    padtype: str = "mean"
    anchor: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"fps": self.fps, "low_hz": self.low_hz, "high_hz": self.high_hz, "order": self.order,
                "design_low_hz": self.design_low_hz, "design_high_hz": self.design_high_hz,
                "zero_phase": self.zero_phase, "padtype": self.padtype, "padlen": self.padlen, "anchor": self.anchor}


def _validate_band(fps: float, low_hz: float, high_hz: float, order: int) -> None:
    for name, v in (("fps", fps), ("low_hz", low_hz), ("high_hz", high_hz)):
        check(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v)),
              f"{name} must be a finite number, got {v!r}.")
    check(fps > 0, f"frame rate must be positive, got {fps:g} fps.")
    nyq = fps / 2.0
    check(low_hz > 0, f"the band-pass low edge must be above 0 Hz, got {low_hz:g} Hz.")
    check(low_hz < high_hz, f"the band-pass low edge ({low_hz:g} Hz) must be below the high edge ({high_hz:g} Hz).")
    check(high_hz < nyq, f"the band-pass high edge ({high_hz:g} Hz) must be below the Nyquist frequency "
          f"({nyq:g} Hz at {fps:g} fps).")
    check(isinstance(order, (int, np.integer)) and 1 <= order <= 8, f"filter order must be an integer 1-8, got {order!r}.")


def effective_response(design: BandpassDesign, freqs_hz: np.ndarray) -> np.ndarray:
    """Magnitude of the effective response (squared for zero-phase) at *freqs_hz*."""
    _, h = signal.sosfreqz(design.sos, worN=np.asarray(freqs_hz, dtype=float), fs=design.fps)
    mag = np.abs(h)
    return mag**2 if design.zero_phase else mag


def design_bandpass(fps: float, low_hz: float = 2.0, high_hz: float = 15.0, order: int = 2, *,
                    zero_phase: bool = True, edges: str = "effective", padtype: str = "mean") -> BandpassDesign:
    """Design a Butterworth band-pass (second-order sections).

    Parameters
    ----------
    fps
        Frame rate in frames per second.
    low_hz, high_hz
        3 dB edges in Hz (default 2-15 Hz, the paper's passband).
    order
        Butterworth order of each edge (the band-pass has ``2 * order`` poles).
    zero_phase
        Filter forwards and backwards.
    edges
        ``"effective"``: the 3 dB points of the response actually applied (two passes
        when ``zero_phase``) sit at ``low_hz``/``high_hz``; ``"design"``: the
        single-pass design edges are ``low_hz``/``high_hz``.
    padtype
        ``"mean"`` (default) or ``"odd"`` (exactly :func:`scipy.signal.sosfiltfilt`);
        see :class:`BandpassDesign`.

    Raises
    ------
    MicromotionError
        Edges outside ``(0, fps/2)``, ``low >= high``, or an edge too close to Nyquist.
    """
    _validate_band(fps, low_hz, high_hz, order)
    check(edges in ("effective", "design"), f"edges must be 'effective' or 'design', got {edges!r}.")
    check(padtype in ("mean", "odd"), f"padtype must be 'mean' or 'odd', got {padtype!r}.")
    nyq = fps / 2.0
    lo, hi = float(low_hz), float(high_hz)
    if zero_phase and edges == "effective":
        target = 2.0 ** -0.25  # single-pass gain whose square is -3 dB

        def gains(log_edges: np.ndarray) -> np.ndarray:
            l_, h_ = np.exp(log_edges)
            if not (0 < l_ < h_ < nyq):
                return np.array([10.0, 10.0])
            sos_ = signal.butter(order, [l_, h_], btype="bandpass", fs=fps, output="sos")
            _, resp = signal.sosfreqz(sos_, worN=np.array([low_hz, high_hz], dtype=float), fs=fps)
            return np.log(np.maximum(np.abs(resp), 1e-300) / target)   # a zero response: far off, but finite

        k = (math.sqrt(2.0) - 1.0) ** (-1.0 / (2 * order))
        guess = np.log([lo / k, min(hi * k, 0.5 * (hi + nyq))])
        try:
            sol = optimize.least_squares(gains, guess, xtol=1e-14, ftol=1e-14, gtol=1e-14)
            ok = bool(sol.success)
        except ValueError:   # no finite start (an edge at the very bottom of the spectrum)
            sol, ok = None, False
        lo_d, hi_d = (float(v) for v in np.exp(sol.x)) if sol is not None else (lo, hi)
        check(ok and np.max(np.abs(gains(sol.x))) < 1e-6 and hi_d < nyq,
              f"a zero-phase {low_hz:g}-{high_hz:g} Hz band-pass cannot be built at {fps:g} fps: both edges must "
              f"lie well inside 0-{nyq:g} Hz, neither a tiny fraction of the frame rate nor close to its half; "
              "check the frame rate, or use edges='design'.")
        lo, hi = lo_d, hi_d
    sos = signal.butter(order, [lo, hi], btype="bandpass", fs=fps, output="sos")
    ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    if padtype == "odd":
        padlen, anchor = 3 * ntaps, 1
    else:  # long enough for the forward response to die out before the backward pass starts
        padlen = max(3 * ntaps, int(round(3 * fps / low_hz)))
        anchor = max(1, int(round(fps / (2 * low_hz))))
    return BandpassDesign(sos=sos, fps=float(fps), low_hz=float(low_hz), high_hz=float(high_hz), order=int(order),
                          design_low_hz=lo, design_high_hz=hi, zero_phase=zero_phase, padlen=padlen,
                          padtype=padtype, anchor=anchor)


def min_frames_for(design: BandpassDesign) -> int:
    """Fewest frames the filter accepts."""
    return design.padlen + 1 if design.padtype == "odd" else max(design.anchor, 16)


# ---------------------------------------------------------------- kernels
def _numba_kernel():  # compiled lazily on first use
    import numba

    @numba.njit(parallel=True, fastmath=False, cache=True, nogil=True)
    def filtfilt_blocks(x, sos, zi, padlen, zero_phase, odd, anchor, out, block, means):  # pragma: no cover - numba
        n_t, n_p = x.shape
        n_sec = sos.shape[0]
        n_ext = n_t + 2 * padlen
        n_blocks = (n_p + block - 1) // block
        for ib in numba.prange(n_blocks):
            p0 = ib * block
            pb = min(block, n_p - p0)
            buf = np.empty((n_ext, block), dtype=np.float64)
            x0 = np.empty(block, dtype=np.float64)
            xl = np.empty(block, dtype=np.float64)
            z0 = np.empty((n_sec, block), dtype=np.float64)
            z1 = np.empty((n_sec, block), dtype=np.float64)
            v = np.empty(block, dtype=np.float64)
            a0 = np.zeros(block, dtype=np.float64)
            a1 = np.zeros(block, dtype=np.float64)
            acc = np.zeros(block, dtype=np.float64)
            # offset: the first sample (the filter has no DC gain, so this only helps precision)
            for j in range(pb):
                x0[j] = x[0, p0 + j]
                xl[j] = x[n_t - 1, p0 + j] - x0[j]
            if not odd:
                for k in range(anchor):
                    for j in range(pb):
                        a0[j] += x[k, p0 + j] - x0[j]
                        a1[j] += x[n_t - 1 - k, p0 + j] - x0[j]
                for j in range(pb):
                    a0[j] /= anchor
                    a1[j] /= anchor
            # extension into buf (relative to x0): odd reflection or constant anchors
            for t in range(n_ext):
                if t < padlen:
                    if odd:
                        src = padlen - t
                        for j in range(pb):
                            buf[t, j] = -(x[src, p0 + j] - x0[j])
                    else:
                        for j in range(pb):
                            buf[t, j] = a0[j]
                elif t < padlen + n_t:
                    src = t - padlen
                    for j in range(pb):
                        v0 = x[src, p0 + j] - x0[j]
                        buf[t, j] = v0
                        acc[j] += v0
                else:
                    if odd:
                        src = n_t - 2 - (t - padlen - n_t)
                        for j in range(pb):
                            buf[t, j] = 2.0 * xl[j] - (x[src, p0 + j] - x0[j])
                    else:
                        for j in range(pb):
                            buf[t, j] = a1[j]
            passes = 2 if zero_phase else 1
            for ps in range(passes):
                # initial conditions: steady state for the first sample of this pass
                t_first = 0 if ps == 0 else n_ext - 1
                for s in range(n_sec):
                    for j in range(pb):
                        z0[s, j] = zi[s, 0] * buf[t_first, j]
                        z1[s, j] = zi[s, 1] * buf[t_first, j]
                for k in range(n_ext):
                    t = k if ps == 0 else n_ext - 1 - k
                    for j in range(pb):
                        v[j] = buf[t, j]
                    for s in range(n_sec):
                        b0 = sos[s, 0]
                        b1 = sos[s, 1]
                        b2 = sos[s, 2]
                        a1 = sos[s, 4]
                        a2 = sos[s, 5]
                        for j in range(pb):
                            xin = v[j]
                            y = b0 * xin + z0[s, j]
                            z0[s, j] = b1 * xin - a1 * y + z1[s, j]
                            z1[s, j] = b2 * xin - a2 * y
                            v[j] = y
                    for j in range(pb):
                        buf[t, j] = v[j]
            for t in range(n_t):
                for j in range(pb):
                    out[t, p0 + j] = buf[t + padlen, j]
            for j in range(pb):
                means[p0 + j] = x0[j] + acc[j] / n_t

    return filtfilt_blocks


_KERNEL: Any = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = _numba_kernel()
    return _KERNEL


def kernels_ready() -> bool:
    """Whether the band-pass kernel is compiled or cached (else the first call compiles it, ~10 s)."""
    from .jit import ready

    return ready(_kernel())


def bandpass(x: np.ndarray, design: BandpassDesign, out: np.ndarray | None = None, *, block: int = 16,
             means: np.ndarray | None = None) -> np.ndarray:
    """Apply *design* along axis 0 of a ``(T, P)`` array (pixels in columns).

    Parameters
    ----------
    x
        ``(T, P)`` array of any real dtype (a strided view of a memmap is fine).
    design
        From :func:`design_bandpass`.
    out
        Optional float32 ``(T, P)`` output array.
    block
        Pixels processed together in SIMD lanes.
    means
        Optional float64 ``(P,)`` array that receives each column's mean (read in the same pass).

    Returns
    -------
    numpy.ndarray
        float32 ``(T, P)``; equal to ``scipy.signal.sosfiltfilt(design.sos, x, axis=0)``
        up to float32 rounding.
    """
    check(x.ndim == 2, f"bandpass expects a (T, P) array, got shape {x.shape}.")
    n_t = x.shape[0]
    need = min_frames_for(design)
    check(n_t >= need,
          f"{n_t} frames are too few for a {design.low_hz:g}-{design.high_hz:g} Hz band-pass of order "
          f"{design.order}; it needs at least {need}.")
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    check(out.shape == x.shape, "output array has the wrong shape.")
    if x.shape[1] == 0:
        return out
    zi = signal.sosfilt_zi(design.sos)
    # numba specialises on dtype and layout; float16/bool are not among its types
    xin = x if x.dtype.kind in "uif" and x.dtype.itemsize >= 1 and x.dtype != np.float16 else x.astype(np.float32)
    if means is None:
        means = np.empty(x.shape[1], np.float64)
    check(means.shape == (x.shape[1],) and means.dtype == np.float64, "means must be a float64 (P,) array.")
    _kernel()(xin, np.ascontiguousarray(design.sos), zi, design.padlen if design.zero_phase else 0,
              design.zero_phase, design.padtype == "odd", design.anchor, out, block, means)
    return out


def bandpass_reference(x: np.ndarray, design: BandpassDesign) -> np.ndarray:
    """The textbook reference: :func:`scipy.signal.sosfiltfilt` (or ``sosfilt``) in float64."""
    xf = np.asarray(x, dtype=np.float64)
    if design.zero_phase and design.padtype == "odd":
        return signal.sosfiltfilt(design.sos, xf, axis=0)
    if design.zero_phase:
        n = design.padlen
        left = np.repeat(xf[: design.anchor].mean(axis=0, keepdims=True), n, axis=0)
        right = np.repeat(xf[-design.anchor:].mean(axis=0, keepdims=True), n, axis=0)
        ext = np.concatenate([left, xf, right])
        return signal.sosfiltfilt(design.sos, ext, axis=0, padtype=None)[n:n + xf.shape[0]]
    return signal.sosfilt(design.sos, xf, axis=0, zi=signal.sosfilt_zi(design.sos)[:, :, None] * xf[:1])[0]


# ---------------------------------------------------------------- fluorescence
def baseline(trace: np.ndarray, fps: float, window_s: float = 10.0, percentile: float = 10.0) -> np.ndarray:
    """Slow baseline F0 of a trace: running *percentile* over *window_s*, then smoothed.

    Follows bleaching and drift but not transients shorter than the window.
    """
    from scipy import ndimage

    trace = np.asarray(trace, dtype=np.float64)
    n = trace.size
    win = int(round(window_s * fps))
    win = max(3, min(win | 1, (n // 2) * 2 - 1 if n > 3 else 3))
    low = ndimage.percentile_filter(trace, percentile, size=win, mode="nearest")
    return ndimage.uniform_filter1d(low, size=win, mode="nearest")


def dff(trace: np.ndarray, fps: float, window_s: float = 10.0, percentile: float = 10.0) -> np.ndarray:
    """dF/F0 with a slow running baseline removed (bleaching, drift)."""
    f0 = baseline(trace, fps, window_s, percentile)
    check(np.all(f0 > 0), "the fluorescence baseline is not positive, so dF/F0 is undefined; use the raw sum "
          "(ground truth 'sum') or subtract the camera offset so that intensities are positive.")
    return (np.asarray(trace, dtype=np.float64) - f0) / f0


@dataclass(frozen=True)
class SpikeTrain:
    """Spikes found in a trace.

    Attributes
    ----------
    onsets
        Frame of the half-maximum crossing on each rising flank (float, sub-frame).
    peaks
        Frame index of each maximum.
    amplitudes
        Height of each peak above the median.
    threshold
        Detection threshold used (trace units).
    noise
        Robust noise estimate (trace units).
    """

    onsets: np.ndarray
    peaks: np.ndarray
    amplitudes: np.ndarray
    threshold: float
    noise: float

    def __len__(self) -> int:
        return int(self.peaks.size)


def robust_noise(trace: np.ndarray) -> float:
    """Noise sigma from the median absolute first difference (insensitive to spikes)."""
    d = np.diff(np.asarray(trace, dtype=np.float64))
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def detect_spikes(trace: np.ndarray, fps: float, *, threshold_sd: float = 5.0, min_height: float | None = None,
                  refractory_s: float = 0.5, rel_height: float = 0.5, rel_prominence: float = 0.0) -> SpikeTrain:
    """Find transient onsets in a (dF/F0) trace.

    A spike is a local maximum at least ``threshold_sd`` robust noise SDs (and
    ``min_height``, if given) above the trace median, separated from the previous one
    by ``refractory_s``.  Its onset is the sub-frame time where the rising flank
    crosses ``rel_height`` of the way from the median to the peak.

    Parameters
    ----------
    trace
        1D trace, e.g. from :func:`dff`.
    fps
        Frame rate in frames per second.
    threshold_sd
        Threshold in robust noise standard deviations above the median.
    min_height
        Absolute minimum height above the median (trace units).
    refractory_s
        Minimum time between spikes in seconds.
    rel_height
        Fraction of the peak height that defines the onset.
    rel_prominence
        Minimum prominence as a fraction of the peak's height above the median; a hump
        on the flank of a larger peak (e.g. relaxation after contraction) is not a spike.
    """
    y = np.asarray(trace, dtype=np.float64)
    check(y.ndim == 1 and y.size >= 3, "spike detection needs a 1D trace of at least 3 samples.")
    med = float(np.median(y))
    noise = robust_noise(y)
    thr = threshold_sd * noise
    if min_height is not None:
        thr = max(thr, float(min_height))
    thr = max(thr, 1e-12)
    distance = max(1, int(round(refractory_s * fps)))
    peaks, props = signal.find_peaks(y - med, height=thr, distance=distance, prominence=thr)
    if rel_prominence > 0 and peaks.size:
        keep = props["prominences"] >= rel_prominence * (y[peaks] - med)
        peaks = peaks[keep]
    onsets = np.empty(peaks.size)
    for i, p in enumerate(peaks):
        level = med + rel_height * (y[p] - med)
        k = p
        stop = peaks[i - 1] if i > 0 else 0
        while k > stop and y[k] > level:
            k -= 1
        if y[k] > level:  # no crossing found before the previous spike
            onsets[i] = float(k)
        else:
            frac = (level - y[k]) / (y[k + 1] - y[k]) if y[k + 1] != y[k] else 0.0
            onsets[i] = k + frac
    return SpikeTrain(onsets=onsets, peaks=peaks.astype(np.int64), amplitudes=y[peaks] - med,
                      threshold=med + thr, noise=noise)
