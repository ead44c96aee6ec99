"""Contraction traces of regions from their displacement fields, with the measurement noise taken out.

The mean displacement *magnitude* of a region is what cardiac motion tools plot, but taken
over noisy fields it has a floor: every pixel's noise adds a positive length, so a cell
that moves a few hundredths of a pixel shows a trace that sits on that floor, compressed
and jittery (on the project's simulator the weak cell's 0.06 px beats rose 0.035 px out
of a 0.03 px floor, with 0.006 px of noise per frame).

:class:`RegionFields` keeps, while the fields stream past, each region's field averaged
in square blocks of ``block_px`` (the fields are smooth on the scale of the flow window,
so a 4 px block loses nothing but the noise it averages).  :func:`low_rank` then writes
each region's block fields ``X`` (frames x 2 blocks) as their temporal mean plus the
principal components that stand out of the noise, and drops the rest:

* the noise's largest singular value is predicted from the frame-to-frame differences
  ``(X[t+1] - X[t]) / sqrt(2)`` of the quiet frames (those whose difference energy is
  below three times the median: the upstrokes of a beat are left out).  Their covariance
  is the noise's covariance (white in time), so ``sqrt(T * largest eigenvalue)`` is where
  the noise's own components end;
* the prediction is made again with the motion found so far projected out of the
  differences (frequent strong beats would otherwise leak into the "quiet" ones);
* components above ``edge_factor`` times that edge are kept (at least one: a region whose
  motion hides in the noise keeps its strongest pattern, as a matched filter would, and is
  marked as such, :attr:`LowRank.above_noise`: the motion tool and the flow method warn about
  beats found there, which may be a neighbour's motion seen through the flow window; on
  9000-frame simulations a silent cell next to a strong one stood at 1.10-1.18 times the edge
  and had up to 5 such echoes counted as beats, but on short ones the weak cell, whose beats are
  real, stood as low as 1.21 and a silent cell as high as 1.45, so they are not dropped).

A region that contracts as one pattern keeps one component, two cells beating on their own
keep two, a propagating wave a few.  The contraction trace is the mean magnitude of the
kept field (blocks weighted by their pixel count), the speed the mean magnitude of its
frame-to-frame change times the frame rate.  Memory: ``frames x 2 blocks`` float32 per
region, the block size grown for large regions so that each keeps at most
``max_dims`` numbers per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["RegionFields", "LowRank", "low_rank", "EDGE_FACTOR", "quiet_regions", "quiet_warning"]

#: components whose singular value exceeds this multiple of the noise edge stand out of the noise
EDGE_FACTOR = 1.2


@dataclass
class LowRank:
    """A region's kept field and how it was chosen."""

    #: ``(T, 2, B)`` the block fields with the noise components removed (px)
    field: np.ndarray
    #: components kept
    rank: int
    #: the largest singular values of the centred block fields (up to 8)
    singular_values: np.ndarray
    #: the predicted largest singular value of the noise alone
    noise_edge: float
    #: whether any component stands out of the noise (the largest singular value above ``edge_factor`` times the
    #: edge); when none does, the strongest one is kept all the same (:func:`low_rank`), but the region shows no
    #: motion of its own that the noise could not also explain
    above_noise: bool = True


def low_rank(x: np.ndarray, weights: np.ndarray, *, edge_factor: float = EDGE_FACTOR, max_rank: int | None = None,
             measured_every: int = 1) -> LowRank:
    """Keep the principal components of block fields *x* ``(T, 2, B)`` that stand out of the noise.

    Parameters
    ----------
    x
        ``(T, 2, B)`` displacement ``(dy, dx)`` of each block in each frame.
    weights
        ``(B,)`` pixels per block: a block mean of ``n`` pixels has ``1/n`` of their noise
        variance, so blocks are scaled by ``sqrt(n)`` before the decomposition (every block's
        noise then counts alike).
    edge_factor
        Components whose singular value exceeds this multiple of the noise edge are kept.
    max_rank
        Keep at most this many (default: no limit).
    measured_every
        ``K`` when only frames ``0, K, 2K, ...`` were measured (an interpolated video): the
        noise edge comes from the differences of those frames (a synthesized frame's
        differences to its neighbours understate the noise).
    """
    t_len, two, n_blocks = x.shape
    if t_len < 3:
        return LowRank(np.asarray(x, np.float32), 0, np.zeros(0), float("nan"))
    scale = np.sqrt(np.tile(np.asarray(weights, np.float64), two)).astype(np.float32)
    xs = x.reshape(t_len, -1).astype(np.float32) * scale         # float32 copies: long recordings stay in memory
    mean = xs.mean(axis=0, dtype=np.float64).astype(np.float32)
    xc = xs - mean
    # the decomposition on the smaller side: (dims x dims) covariance or (T x T) Gram matrix
    basis = "space" if xc.shape[1] <= t_len else "time"
    gram = (xc.T @ xc) if basis == "space" else (xc @ xc.T)
    w, v = np.linalg.eigh(gram.astype(np.float64))
    order = np.argsort(w)[::-1]
    w, v = np.maximum(w[order], 0.0), v[:, order]
    s = np.sqrt(w)
    if not s[0] > 0:                    # no block ever moved (a still or constant video): nothing to decompose
        return LowRank(np.asarray(x, np.float32), 0, s[:8].copy(), 0.0)
    n_pos = int(np.sum(s > 1e-6 * max(float(s[0]), 1e-300))) or 1

    def patterns(k: int) -> np.ndarray:
        """(dims, k) orthonormal spatial patterns of the first k components."""
        if basis == "space":
            return v[:, :k].astype(np.float32)
        return ((xc.T @ v[:, :k].astype(np.float32)) / s[:k].astype(np.float32)).astype(np.float32)

    diff = np.diff(xs[::max(1, int(measured_every))], axis=0) * np.float32(1.0 / math.sqrt(2.0))
    k, edge = 1, 0.0
    for step in range(4):
        # the noise edge from the frame differences outside the motion found so far (without that, frequent
        # strong beats leak into the "quiet" differences and raise it)
        if step:
            found = patterns(k)
            rest = diff - (diff @ found) @ found.T
        else:
            rest = diff
        energy = np.einsum("ij,ij->i", rest, rest)
        quiet = rest[energy <= 3.0 * np.median(energy)]
        if quiet.shape[0] < 2:
            break
        small = quiet.T @ quiet if quiet.shape[1] <= quiet.shape[0] else quiet @ quiet.T
        edge = math.sqrt(t_len * float(np.linalg.eigvalsh(small.astype(np.float64))[-1]) / quiet.shape[0])
        new_k = min(max(1, int(np.sum(s > edge_factor * edge))), n_pos)
        if max_rank is not None:
            new_k = min(new_k, int(max_rank))
        if step and new_k == k:
            break
        k = new_k
    vk = patterns(k)
    kept = (xc @ vk) @ vk.T
    out = ((kept + mean) / scale).reshape(t_len, two, n_blocks)
    return LowRank(out, k, s[:8].copy(), float(edge), above_noise=bool(s[0] > edge_factor * edge))


def quiet_regions(names: Sequence[str], kept: Sequence[LowRank | None]) -> dict[str, float]:
    """The regions among *names* whose motion does not stand out of the noise (:attr:`LowRank.above_noise`), each
    with its strongest component's singular value over the noise edge."""
    return {name: float(lr.singular_values[0] / lr.noise_edge) for name, lr in zip(names, kept)
            if lr is not None and not lr.above_noise and lr.noise_edge > 0}


def quiet_warning(quiet: dict[str, float], beats: Sequence[Any]) -> str:
    """One sentence on the regions of :func:`quiet_regions` that *beats* (rows with a ``roi``) has beats in (empty
    when there are none)."""
    counts = {r: (v, sum(1 for b in beats if b.roi == r)) for r, v in quiet.items()}
    said = ", ".join(f"{r} ({n} beat{'s' if n != 1 else ''}; {v:.2f}x)" for r, (v, n) in counts.items() if n)
    if not said:
        return ""
    return (f"the beats of {said} may be noise or a neighbouring cell's motion seen through the flow window: no "
            f"motion pattern there stands out of the noise (its strongest is below {EDGE_FACTOR:g} times the "
            "noise's own).")


class RegionFields:
    """Block-averaged displacement fields of regions, collected frame block by frame block.

    Parameters
    ----------
    masks
        ``(R, Y, X)`` boolean masks, one per region.
    n_frames
        Frames that will be added.
    block_px
        Side of the square blocks a region's field is averaged in (grown for large regions).
    max_dims
        At most this many numbers (2 per block) per region and frame.
    """

    def __init__(self, masks: np.ndarray | Sequence[np.ndarray], n_frames: int, *, block_px: int = 4,
                 max_dims: int = 2048) -> None:
        masks = np.asarray(masks, bool)
        if masks.ndim == 2:
            masks = masks[None]
        self.shape = masks.shape[1:]
        ny, nx = self.shape
        self.counts: list[np.ndarray] = []           # pixels per kept block
        self.block_px: list[int] = []
        self.data: list[np.ndarray] = []
        # per region: its bounding box on the block grid, the mask there (None: all pixels), the kept blocks
        self._boxes: list[tuple[int, int, int, int]] = []
        self._weights: list[np.ndarray | None] = []
        self._keep: list[np.ndarray] = []
        self._buffers: list[np.ndarray | None] = []
        for m in masks:
            # grow the block until the region keeps at most max_dims numbers per frame (from the size its area needs)
            b = max(1, int(block_px), int(math.sqrt(2.0 * float(m.sum()) / max_dims)))
            while 2 * self._n_blocks(m, b) > max_dims and b < max(ny, nx):
                b += 1
            rows, cols = np.nonzero(m)
            if not rows.size:
                y0 = y1 = x0 = x1 = 0
            else:
                y0, x0 = (rows.min() // b) * b, (cols.min() // b) * b
                y1, x1 = min(ny, -(-(rows.max() + 1) // b) * b), min(nx, -(-(cols.max() + 1) // b) * b)
            h, w = -(-(y1 - y0) // b) * b, -(-(x1 - x0) // b) * b       # the box padded to whole blocks
            inside = np.zeros((h, w), np.float32)
            inside[:y1 - y0, :x1 - x0] = m[y0:y1, x0:x1]
            cnt = inside.reshape(h // b, b, w // b, b).sum(axis=(1, 3)).ravel()
            keep = np.nonzero(cnt > 0)[0]
            self._boxes.append((int(y0), int(y1), int(x0), int(x1)))
            full = (h, w) == (y1 - y0, x1 - x0) and bool(inside.all())
            self._weights.append(None if full else inside)
            self._buffers.append(None if full else np.zeros((h, w), np.float32))
            self._keep.append(keep)
            self.counts.append(cnt[keep].astype(np.float64))
            self.block_px.append(b)
            self.data.append(np.zeros((int(n_frames), 2, keep.size), np.float32))

    @classmethod
    def of_rois(cls, masks: Any, frame_shape: tuple[int, int], n_frames: int) -> "RegionFields":
        """One region per ROI of *masks* (:class:`~napari_micromotion.rois.RoiMasks`), or the whole frame
        when it is ``None`` (the tools' convention for "no ROIs")."""
        return cls(masks.masks if masks is not None else np.ones((1, *frame_shape), bool), n_frames)

    @staticmethod
    def _n_blocks(mask: np.ndarray, b: int) -> int:
        rows, cols = np.nonzero(mask)
        return int(np.unique((rows // b) * 100003 + cols // b).size) if rows.size else 0

    def add(self, first: int, fields: np.ndarray) -> None:
        """Add the fields ``(m, 2, Y, X)`` of frames ``first .. first + m - 1``.

        Block sums by OpenCV's area resampling (an exact mean over whole ``b x b`` blocks) of
        the region's box, masked and zero-padded to whole blocks where needed.
        """
        import cv2

        fields = np.asarray(fields, np.float32)
        for box, weight, buf, keep, cnt, b, out in zip(self._boxes, self._weights, self._buffers, self._keep,
                                                       self.counts, self.block_px, self.data):
            if not cnt.size:
                continue
            y0, y1, x0, x1 = box
            area = float(b * b)
            for i in range(fields.shape[0]):
                for c in (0, 1):
                    src = fields[i, c, y0:y1, x0:x1]
                    if buf is not None:
                        np.multiply(src, weight[:y1 - y0, :x1 - x0], out=buf[:y1 - y0, :x1 - x0])
                        src = buf
                    small = cv2.resize(src, (src.shape[1] // b, src.shape[0] // b), interpolation=cv2.INTER_AREA)
                    out[first + i, c] = small.ravel()[keep] * (area / cnt)

    def traces(self, fps: float, *, denoise: bool = True, edge_factor: float = EDGE_FACTOR, measured_every: int = 1
               ) -> tuple[np.ndarray, np.ndarray, list[LowRank | None]]:
        """``(R, T)`` contraction traces (mean displacement magnitude, px), ``(R, T)`` speeds (px/s), and per region
        the :class:`LowRank` it kept (``None`` without *denoise*; *measured_every*: see :func:`low_rank`)."""
        n_regions = len(self.data)
        t_len = self.data[0].shape[0] if n_regions else 0
        disp = np.zeros((n_regions, t_len))
        speed = np.zeros((n_regions, t_len))
        kept: list[LowRank | None] = []
        for r, (x, cnt) in enumerate(zip(self.data, self.counts)):
            if not cnt.size:
                kept.append(None)
                continue
            lr = low_rank(x, cnt, edge_factor=edge_factor, measured_every=measured_every) if denoise else None
            f = lr.field if lr is not None else x
            kept.append(lr)
            w = cnt / cnt.sum()
            disp[r] = np.hypot(f[:, 0], f[:, 1]) @ w
            step = np.diff(f, axis=0, prepend=f[:1])
            speed[r] = (np.hypot(step[:, 0], step[:, 1]) @ w) * fps
        return disp, speed, kept
