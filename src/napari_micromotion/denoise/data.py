"""The denoiser's data: the camera model, the mean/SD prior, normalisation and training samples.

* :class:`CameraModel`: the variance of a pixel's noise as a function of its level,
  ``var(x) = gain * x + floor`` (shot noise plus read noise, in the movie's own units),
  measured on the recording itself from the second differences in time of every pixel
  (:func:`fit_camera_model`); frames and blocks where the signal itself bends (a
  calcium upstroke) are left out, so only the noise is measured.  The same second
  differences tell whether the noise of neighbouring pixels is correlated (a compressed
  video's 8 x 8 blocks, an EMCCD's row smear); where it is, the model keeps the
  correlation kernel, and the calibration, the guard and the ROI traces, which otherwise
  take camera noise as independent from pixel to pixel, use it.
* :class:`Prior`: running sums of the frames that form the prior; the mean and SD images
  *without* frame ``t`` (leave-one-out) are the extra input channels for frame ``t``, so
  nothing of frame ``t`` reaches its own prediction.
* :class:`Normaliser`: ``(x - centre) / scale`` with the noise SD at the mean level as scale
  (the network works in units of noise).
* :func:`neighbours`: frames ``t-N .. t-1, t+1 .. t+N`` (frame ``t`` left out; at the ends of
  the movie the missing side is mirrored about ``t``).
* :func:`make_inputs`: the network's input channels for a block of frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..errors import check

__all__ = ["CameraModel", "Prior", "Normaliser", "PRIORS", "fit_camera_model", "neighbours", "neighbour_table",
           "make_inputs", "n_input_channels", "as_float_frames",
           "box_correlation", "adjacent_correlation", "NOISE_KERNEL_RADIUS", "NOISE_CORRELATION_MIN"]

#: what the network is given besides the neighbouring frames
PRIORS = ("mean+sd", "mean", "none")
#: radius (px) of the camera noise's correlation kernel
NOISE_KERNEL_RADIUS = 8
#: camera noise counts as correlated between pixels from this mean correlation of horizontally and vertically
#: adjacent pixels; below it the pixels are taken as independent (on the simulator's independent noise the
#: measured correlation stays within 0.001 of 0; a compressed video's is 0.5-0.6)
NOISE_CORRELATION_MIN = 0.02
#: frames the camera noise's correlation is measured on (spread over the movie)
NOISE_KERNEL_FRAMES = 64


def as_float_frames(video: Any, idx: Any) -> np.ndarray:
    """Frames *idx* of *video* (any array-like, memory maps included) as float32."""
    return np.asarray(video[idx], dtype=np.float32)


# ---------------------------------------------------------------- camera model
@dataclass(frozen=True)
class CameraModel:
    """Noise variance ``gain * x + floor`` of a pixel at level ``x`` (movie units squared), at least ``min_var``."""

    gain: float
    floor: float
    min_var: float
    #: ``(2R+1, 2R+1)`` correlation of the noise of pixels at each offset, 1 at the centre; None: independent pixels
    kernel: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def adjacent_correlation(self) -> tuple[float, float]:
        """Correlation of the noise of vertically and horizontally adjacent pixels (0, 0 without a kernel)."""
        return adjacent_correlation(self.kernel)

    def var(self, x: Any) -> Any:
        """Noise variance at level *x* (array or torch tensor)."""
        v = self.gain * x + self.floor
        if hasattr(v, "clamp"):
            return v.clamp(min=self.min_var)
        return np.maximum(v, self.min_var)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gain": float(self.gain), "floor": float(self.floor), "min_var": float(self.min_var)}
        if self.kernel is not None:
            out["noise_kernel"] = np.round(self.kernel.astype(np.float64), 6).tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CameraModel":
        k = d.get("noise_kernel")
        return cls(float(d["gain"]), float(d["floor"]), float(d["min_var"]),
                   None if k is None else np.asarray(k, np.float32))


def fit_camera_model(video: Any, frames: Sequence[int] | None = None, *, max_frames: int = 400, block: int = 8,
                     n_bins: int = 24, seed: int = 0) -> tuple[CameraModel, dict[str, Any]]:
    """Measure the noise variance as a function of level from the movie itself.

    For frames ``t`` (up to *max_frames*, spread over *frames*) the second difference
    ``d = x_t - (x_{t-1} + x_{t+1}) / 2`` of every pixel has variance ``1.5 var(x)`` when the
    signal changes linearly over three frames.  Blocks of ``block x block`` pixels whose
    mean second difference stands out (a signal that bends: an upstroke, a moving edge) are
    left out.  The remaining pixels are binned by their level (the mean over the three
    frames and 3 x 3 pixels, nearly free of noise so that the bins do not mix levels), and
    ``var = gain * level + floor`` is fitted by weighted least squares.

    First, on up to :data:`NOISE_KERNEL_FRAMES` of the frames, the correlation of ``d``
    between pixels up to :data:`NOISE_KERNEL_RADIUS` apart (blocks whose mean stands out of
    the other blocks' left out), from the frames where ``d`` has the least power (within 10 %
    of the lowest tenth's; at least 8): a moving texture's second difference is itself
    correlated between pixels, and a beating sample moves in many frames.  Where adjacent pixels correlate by more than
    :data:`NOISE_CORRELATION_MIN` the model keeps it as its kernel, and a block's mean must
    stand out by as much more as correlated noise makes a block mean vary (else blocks of
    merely correlated noise would be left out, and the noise measured too small).

    Returns the model and a report (levels, measured variances, fraction of pixels kept,
    the noise's adjacent correlation).
    """
    n = int(video.shape[0])
    check(n >= 3, f"the movie has {n} frames; measuring its noise needs at least 3.")
    cand = np.arange(1, n - 1) if frames is None else np.array(sorted({int(f) for f in frames if 0 < int(f) < n - 1}))
    check(cand.size > 0, "no frames to measure the noise on (they must not be the first or last frame).")
    if cand.size > max_frames:
        cand = cand[np.linspace(0, cand.size - 1, max_frames).round().astype(int)]
    ny, nx = video.shape[1:]
    by, bx = max(1, ny // block), max(1, nx // block)
    levels, squares = [], []
    kept = total = 0
    corr = _Autocorrelation((int(ny), int(nx)), NOISE_KERNEL_RADIUS)
    for t in cand[np.linspace(0, cand.size - 1, min(cand.size, NOISE_KERNEL_FRAMES)).round().astype(int)]:
        x = np.asarray(video[t - 1:t + 2], dtype=np.float64)
        d = x[1] - 0.5 * (x[0] + x[2])
        keep = np.ones_like(d, bool)
        if by * block and bx * block and by * bx >= 4:
            bm = d[:by * block, :bx * block].reshape(by, block, bx, block).mean(axis=(1, 3))
            spread = 1.4826 * np.median(np.abs(bm - np.median(bm)))
            good = np.abs(bm - np.median(bm)) <= 4.0 * max(spread, 1e-12)
            keep[:by * block, :bx * block] = np.repeat(np.repeat(good, block, axis=0), block, axis=1)
        corr.add(d, keep)
    kernel = corr.kernel()
    adjacent = list(adjacent_correlation(kernel))
    correlated = kernel is not None and float(np.mean(adjacent)) > NOISE_CORRELATION_MIN
    # how much more than independent noise a block mean varies
    inflate = math.sqrt(block * block * box_correlation(kernel, block)) if correlated else 1.0
    for t in cand:
        x = np.asarray(video[t - 1:t + 2], dtype=np.float64)
        d = x[1] - 0.5 * (x[0] + x[2])
        # the level over 3 frames and 3 x 3 pixels: little noise, so binning by it does not flatten the fit
        lev = ndimage.uniform_filter(x.mean(axis=0), 3, mode="nearest")
        if by * block == 0 or bx * block == 0:
            keep = np.ones_like(d, bool)
        else:
            dd = d[:by * block, :bx * block].reshape(by, block, bx, block)
            bm = dd.mean(axis=(1, 3))
            spread = np.median(np.abs(dd - bm[:, None, :, None]), axis=(1, 3)) * 1.4826 / block
            good = np.abs(bm - np.median(bm)) <= 4.0 * inflate * np.maximum(spread, 1e-12)
            keep = np.zeros_like(d, bool)
            keep[:by * block, :bx * block] = np.repeat(np.repeat(good, block, axis=0), block, axis=1)
        total += d.size
        kept += int(keep.sum())
        levels.append(lev[keep].astype(np.float32))
        squares.append((d[keep] ** 2 / 1.5).astype(np.float32))
    lev = np.concatenate(levels).astype(np.float64)
    sq = np.concatenate(squares).astype(np.float64)
    check(lev.size >= 100, "too few pixels to measure the noise of this movie.")
    edges = np.unique(np.quantile(lev, np.linspace(0, 1, n_bins + 1)))
    if edges.size < 3:
        edges = np.array([lev.min(), lev.max() + 1e-6])
    which = np.clip(np.searchsorted(edges, lev, side="right") - 1, 0, edges.size - 2)
    counts = np.bincount(which, minlength=edges.size - 1).astype(np.float64)
    ok = counts >= 20
    mean_lev = np.bincount(which, lev, minlength=edges.size - 1)[ok] / counts[ok]
    mean_var = np.bincount(which, sq, minlength=edges.size - 1)[ok] / counts[ok]
    w = counts[ok]
    if mean_lev.size >= 2 and np.ptp(mean_lev) > 0:
        A = np.column_stack([mean_lev, np.ones_like(mean_lev)])
        sw = np.sqrt(w / np.maximum(mean_var, 1e-12) ** 2)       # relative errors of the bin variances
        gain, floor = np.linalg.lstsq(A * sw[:, None], mean_var * sw, rcond=None)[0]
    else:
        gain, floor = 0.0, float(np.average(mean_var, weights=w))
    if gain < 0:   # no shot noise visible (or a flat movie): a constant variance
        gain, floor = 0.0, float(np.average(mean_var, weights=w))
    overall = float(np.average(mean_var, weights=w))
    min_var = max(1e-3 * overall, 1e-12)
    check(math.isfinite(gain) and math.isfinite(floor) and overall > 0,
          "the movie shows no noise at all (constant frames?); there is nothing to denoise.")
    model = CameraModel(float(gain), float(floor), float(min_var), kernel if correlated else None)
    report = {"levels": mean_lev.tolist(), "variances": mean_var.tolist(), "pixels_kept": kept / max(total, 1),
              "frames_used": int(cand.size), "noise_adjacent_correlation_yx": adjacent,
              "noise_correlated": bool(correlated)}
    return model, report


def adjacent_correlation(kernel: np.ndarray | None) -> tuple[float, float]:
    """The correlation of vertically and horizontally adjacent pixels in a correlation *kernel* (0, 0 for None)."""
    if kernel is None or kernel.shape[0] < 3:
        return 0.0, 0.0
    r = (kernel.shape[0] - 1) // 2
    return float(kernel[r + 1, r]), float(kernel[r, r + 1])


def box_correlation(kernel: np.ndarray | None, box: int) -> float:
    """Mean correlation of two pixels of one ``box x box`` square, with *kernel* the correlation at each
    offset (None: independent pixels); ``box_correlation * var`` is the variance of the square's mean."""
    if kernel is None or kernel.size == 1:
        return 1.0 / (box * box)
    r = (kernel.shape[0] - 1) // 2
    ov = np.zeros_like(kernel, dtype=np.float64)
    for dy in range(-min(r, box - 1), min(r, box - 1) + 1):
        for dx in range(-min(r, box - 1), min(r, box - 1) + 1):
            ov[r + dy, r + dx] = (box - abs(dy)) * (box - abs(dx))
    return float((kernel * ov).sum() / box ** 4)


class _Autocorrelation:
    """Per field, the products of its (masked) values at each offset up to a radius (by FFT); the kernel
    combines the fields with the least power (where a second difference in time holds the least signal)."""

    def __init__(self, shape: tuple[int, int], radius: int) -> None:
        self.radius = int(min(radius, shape[0] // 2 - 1, shape[1] // 2 - 1))
        self.pad = (shape[0] + max(self.radius, 0), shape[1] + max(self.radius, 0))
        self.shape = shape
        self.sums: list[np.ndarray] = []       # per field: sums of products at each offset
        self.pairs: list[np.ndarray] = []      # per field: pixel pairs at each offset
        self.power: list[float] = []           # per field: mean square

    def _auto(self, a: np.ndarray) -> np.ndarray:
        z = np.zeros(self.pad)
        z[:self.shape[0], :self.shape[1]] = a
        f = np.fft.rfft2(z)
        full = np.fft.irfft2(f * np.conj(f), s=self.pad)
        lags = np.r_[-self.radius:self.radius + 1]
        return full[np.ix_(lags % self.pad[0], lags % self.pad[1])]

    def add(self, values: np.ndarray, mask: np.ndarray) -> None:
        if self.radius < 1 or not mask.any():
            return
        v = np.where(mask, values - values[mask].mean(), 0.0)
        self.sums.append(self._auto(v))
        self.pairs.append(self._auto(mask.astype(np.float64)))
        self.power.append(float(np.mean(v[mask] ** 2)))

    def kernel(self, within: float = 1.1, at_least: int = 8) -> np.ndarray | None:
        """``(2R+1, 2R+1)`` correlation at each offset (symmetrised, 1 at the centre) over the fields whose
        power is within *within* times the lowest tenth's (at least the *at_least* quietest), or None."""
        r = self.radius
        if r < 1 or not self.sums:
            return None
        power = np.asarray(self.power)
        order = np.argsort(power)
        quiet = np.nonzero(power <= within * np.quantile(power, 0.1))[0]
        if quiet.size < min(at_least, power.size):
            quiet = order[:min(at_least, power.size)]
        acc = np.sum([self.sums[i] for i in quiet], axis=0)
        pairs = np.sum([self.pairs[i] for i in quiet], axis=0)
        if pairs[r, r] < 1 or acc[r, r] <= 0:
            return None
        cov = acc / np.maximum(pairs, 1.0)
        k = cov / cov[r, r]
        k = 0.5 * (k + k[::-1, ::-1])
        k[r, r] = 1.0
        return k.astype(np.float32)


# ---------------------------------------------------------------- prior and normalisation
@dataclass
class Prior:
    """Sums over the prior's frames: mean and SD images with or without one frame."""

    total: np.ndarray          # (Y, X) float64 sum
    squares: np.ndarray        # (Y, X) float64 sum of squares
    count: int
    member: np.ndarray         # (T,) bool: frame is part of the sums

    @classmethod
    def of(cls, video: Any, frames: Sequence[int] | None = None, chunk: int = 64) -> "Prior":
        n = int(video.shape[0])
        member = np.zeros(n, bool)
        if frames is None:
            member[:] = True
        else:
            member[np.asarray(list(frames), int)] = True
        idx = np.nonzero(member)[0]
        check(idx.size >= 2, "the mean image needs at least 2 frames.")
        total = np.zeros(video.shape[1:], np.float64)
        squares = np.zeros(video.shape[1:], np.float64)
        # contiguous runs of member frames are read in chunks
        for a in range(0, n, chunk):
            sel = member[a:a + chunk]
            if not sel.any():
                continue
            block = np.asarray(video[a:a + chunk], dtype=np.float64)[sel]
            total += block.sum(axis=0)
            squares += np.einsum("tyx,tyx->yx", block, block)
        return cls(total, squares, int(idx.size), member)

    def mean(self) -> np.ndarray:
        return (self.total / self.count).astype(np.float32)

    def sd(self) -> np.ndarray:
        m = self.total / self.count
        return np.sqrt(np.maximum(self.squares / self.count - m * m, 0.0)).astype(np.float32)

    def without(self, t: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and SD images (float32) of the prior's frames other than *t* (*frame* = frame *t*)."""
        if not self.member[t]:
            return self.mean(), self.sd()
        f = frame.astype(np.float64)
        k = self.count - 1
        m = (self.total - f) / k
        var = (self.squares - f * f) / k - m * m
        return m.astype(np.float32), np.sqrt(np.maximum(var, 0.0)).astype(np.float32)


@dataclass(frozen=True)
class Normaliser:
    """``(x - centre) / scale``: the movie in units of its noise SD at the typical level."""

    centre: float
    scale: float

    @classmethod
    def of(cls, mean_image: np.ndarray, camera: CameraModel) -> "Normaliser":
        centre = float(np.median(mean_image))
        scale = float(math.sqrt(float(camera.var(centre))))
        return cls(centre, max(scale, 1e-12))

    def __call__(self, x: Any) -> Any:
        return (x - self.centre) / self.scale

    def back(self, y: Any) -> Any:
        return y * self.scale + self.centre

    def to_dict(self) -> dict[str, float]:
        return {"centre": self.centre, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normaliser":
        return cls(float(d["centre"]), float(d["scale"]))


# ---------------------------------------------------------------- samples
def neighbours(t: int, n_frames: int, context: int) -> np.ndarray:
    """Frames ``t-N .. t-1, t+1 .. t+N`` (never ``t``); beyond an end, the frame mirrored about ``t``."""
    offs = np.concatenate([np.arange(-context, 0), np.arange(1, context + 1)])
    idx = t + offs
    out = np.where((idx < 0) | (idx >= n_frames), t - offs, idx)
    return np.clip(out, 0, n_frames - 1)


def neighbour_table(n_frames: int, context: int) -> np.ndarray:
    """``(T, 2N)`` neighbours of every frame."""
    return np.stack([neighbours(t, n_frames, context) for t in range(n_frames)])


def n_input_channels(context: int, prior: str) -> int:
    return 2 * context + {"mean+sd": 2, "mean": 1, "none": 0}[prior]


def make_inputs(frames: np.ndarray, mean: np.ndarray, sd: np.ndarray | None, prior: str, norm: Normaliser,
                camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs and the base the network's output is added to.

    Parameters
    ----------
    frames
        ``(B, 2N, H, W)`` neighbouring frames (movie units).
    mean, sd
        ``(B, H, W)`` leave-one-out mean and SD images (movie units).

    Returns
    -------
    inputs ``(B, C, H, W)`` float32 and base ``(B, H, W)`` (normalised units): with a prior the
    neighbours enter relative to the mean image and the output is added to the mean image;
    without one the neighbours enter as they are and the output is added to their mean.
    """
    x = norm(frames)
    if prior == "none":
        return x.astype(np.float32, copy=False), x.mean(axis=1).astype(np.float32)
    m = norm(mean)
    chans = [x - m[:, None], m[:, None]]
    if prior == "mean+sd":
        noise_sd = np.sqrt(camera.var(mean))
        chans.append((sd / noise_sd - 1.0)[:, None])
    return np.concatenate(chans, axis=1).astype(np.float32, copy=False), m.astype(np.float32, copy=False)
