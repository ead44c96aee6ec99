"""One pixel chunk of the analysis as a picklable job: the unit of work for local runs and dask.

A :class:`ChunkJob` describes everything needed to process a band of frame rows
(all frames, rows ``r0:r1``): where the data lives (:class:`ArraySource`, which
re-opens memory-mapped files by path so a job can travel to another process or
machine), the band-pass design, the ground truth, the methods' predictors (what to
predict, score and sum over ROIs) and gatherers (what to collect for training).  :func:`process_chunk` returns a
:class:`ChunkResult` that the pipeline folds into its maps and traces.  Jobs for
different chunks are independent.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import check
from .filters import BandpassDesign, bandpass
from .methods.base import PixelChunk
from .scoring import score_columns

__all__ = ["ArraySource", "ChunkJob", "ChunkResult", "process_chunk", "NULL_STRIDE"]

#: every how many pixels of a chunk the chance level is sampled
NULL_STRIDE = 8


@dataclass
class ArraySource:
    """An array, or the recipe to re-open it read-only from a file (for other processes).

    ``of(array)`` keeps the array for local use and, when it is (a view of) a
    ``numpy.memmap``, also the file name, offset, dtype, shape and strides; pickling
    drops the in-memory array and keeps only the recipe.
    """

    array: np.ndarray | None
    path: str | None = None
    dtype: str = ""
    offset: int = 0
    shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    @classmethod
    def of(cls, arr: np.ndarray) -> "ArraySource":
        root = arr
        while isinstance(root.base, np.ndarray):  # views of a memmap are memmaps too; find the one owning the map
            root = root.base
        if isinstance(root, np.memmap) and getattr(root, "filename", None) and os.path.exists(root.filename):
            start = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
            return cls(arr, str(root.filename), arr.dtype.str, int(root.offset) + int(start), tuple(arr.shape),
                       tuple(arr.strides))
        return cls(arr)

    @property
    def reopenable(self) -> bool:
        return self.path is not None

    def open(self) -> np.ndarray:
        if self.array is not None:
            return self.array
        check(self.path is not None, "this array lives in memory only and cannot be re-opened in another process.")
        mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        return np.ndarray(buffer=mm, dtype=np.dtype(self.dtype), shape=self.shape, strides=self.strides,
                          offset=self.offset)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["array"] = None  # ship the recipe, not the data
        return state

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """``(T, (r1 - r0) * X)`` view of rows ``r0:r1`` of a ``(T, Y, X)`` array."""
        a = self.open()
        return a[:, r0:r1, :].reshape(a.shape[0], -1)


@dataclass
class ChunkJob:
    """Everything needed to process frame rows ``rows`` of the recording (picklable).

    ``predict`` maps method names to their predictors (called in this order),
    ``gather`` maps method names to their gatherers (see :mod:`napari_micromotion.methods.base`).
    """

    transmission: ArraySource
    rows: tuple[int, int]
    frame_shape: tuple[int, int]
    design: BandpassDesign
    validation: tuple[int, int]
    max_lag: int
    fps: float
    truth: np.ndarray | None = None
    predict: dict[str, Any] = field(default_factory=dict)
    scored: tuple[str, ...] = ()           # methods whose per-pixel score maps are wanted
    roi_methods: tuple[str, ...] = ()      # methods whose ROI sums are wanted
    roi_weights: np.ndarray | None = None  # (P_chunk, n_roi) 0/1 membership, or None
    gather: dict[str, Any] = field(default_factory=dict)
    fluorescence: ArraySource | None = None
    fl_baseline: np.ndarray | None = None
    basics: bool = True                    # mean, energy, frame traces, filtered ROI means
    null_shift: int = 0                    # > 0: also score every 8th pixel against the truth rolled by this
    filtered_store: Any = None             # optional zarr array (T, Y, X) to receive the band-passed rows
    prediction_stores: dict[str, Any] = field(default_factory=dict)  # method -> zarr array (T, Y, X)

    @property
    def nx(self) -> int:
        return self.frame_shape[1]


@dataclass
class ChunkResult:
    rows: tuple[int, int]
    mean: np.ndarray | None = None
    energy: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    lags_s: dict[str, np.ndarray] = field(default_factory=dict)
    roi_sums: dict[str, np.ndarray] = field(default_factory=dict)
    roi_filtered: np.ndarray | None = None
    roi_energy: np.ndarray | None = None
    frame_energy: np.ndarray | None = None
    frame_filtered: np.ndarray | None = None
    activity: np.ndarray | None = None
    null_scores: dict[str, np.ndarray] = field(default_factory=dict)
    gathered: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _score(job: ChunkJob, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v0, v1 = job.validation
    s, lag = score_columns(pred[v0:v1], job.truth[v0:v1], job.max_lag)
    return s, (lag / job.fps).astype(np.float32)


class _RoiSum:
    """Sum columns over each ROI in float64 with numpy's own (thread-independent) summation.

    A BLAS product would be faster but its rounding depends on the thread count, so a
    chunk processed on a single-threaded dask worker would differ in the last bit.
    """

    def __init__(self, membership: np.ndarray) -> None:
        self.cols = [np.nonzero(membership[:, i])[0] for i in range(membership.shape[1])]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], len(self.cols)))
        for i, c in enumerate(self.cols):
            if c.size:
                out[:, i] = x[:, c].sum(axis=1, dtype=np.float64)
        return out


def _store(job: ChunkJob, method: str, pred: np.ndarray) -> None:
    store = job.prediction_stores.get(method)
    if store is not None:
        r0, r1 = job.rows
        store[:, r0:r1, :] = pred.reshape(pred.shape[0], r1 - r0, job.nx)


def _emit(job: ChunkJob, out: ChunkResult, roi_sum: "_RoiSum | None", method: str, pred: np.ndarray) -> None:
    """One method's output for this chunk: its score map, its ROI sums and its stored stack, as asked for."""
    if job.truth is not None and method in job.scored:
        out.scores[method], out.lags_s[method] = _score(job, pred)
        if job.null_shift:  # chance level: the same scores against calcium shifted out of alignment
            v0, v1 = job.validation
            null, _ = score_columns(pred[v0:v1, ::NULL_STRIDE], np.roll(job.truth[v0:v1], job.null_shift), job.max_lag)
            out.null_scores[method] = null
    if roi_sum is not None and method in job.roi_methods:
        out.roi_sums[method] = roi_sum(pred)
    _store(job, method, pred)


def process_chunk(job: ChunkJob) -> ChunkResult:
    """Band-pass one chunk of rows, predict with each method, score, sum over ROIs, gather training data."""
    r0, r1 = job.rows
    nx = job.nx
    out = ChunkResult(rows=job.rows)
    sec: dict[str, float] = {}
    t0 = time.perf_counter()
    x = job.transmission.rows(r0, r1)
    n_t = x.shape[0]
    means = np.empty(x.shape[1], np.float64)
    filt = bandpass(x, job.design, means=means)  # the column means come from the same pass over x
    if job.filtered_store is not None:
        job.filtered_store[:, r0:r1, :] = filt.reshape(n_t, r1 - r0, nx)
    mean = means.astype(np.float32)
    chunk = PixelChunk(raw=x, filtered=filt, mean=mean, pixels=np.arange(r0 * nx, r1 * nx, dtype=np.int64),
                       frame_shape=job.frame_shape, fps=job.fps, rows=(r0, r1))
    w = _RoiSum(job.roi_weights) if (job.roi_weights is not None and job.roi_weights.any()) else None
    if job.basics:
        out.mean = mean
        out.frame_filtered = filt.sum(axis=1, dtype=np.float64)
        if w is not None:
            out.roi_filtered = w(filt)
        sq = chunk.squared()
        out.frame_energy = sq.sum(axis=1, dtype=np.float64)
        if w is not None:
            out.roi_energy = w(sq)
        # band-pass RMS in units of the mean intensity (dI/I)
        safe = np.where(np.abs(mean) > 0, np.abs(mean), 1).astype(np.float32)  # zero-mean data: plain RMS
        out.energy = (np.sqrt(sq.mean(axis=0)) / safe).astype(np.float32)
        del sq
    sec["band-pass filter"] = time.perf_counter() - t0
    for method, predict in job.predict.items():
        t1 = time.perf_counter()
        pred = predict(chunk)
        _emit(job, out, w, method, pred)
        del pred
        sec[method] = sec.get(method, 0.0) + time.perf_counter() - t1
    chunk.release("squared")
    for method, gather in job.gather.items():
        t1 = time.perf_counter()
        out.gathered[method] = gather(chunk)
        sec[method] = sec.get(method, 0.0) + time.perf_counter() - t1
    del chunk, filt
    if job.fluorescence is not None and job.truth is not None:
        f = np.asarray(job.fluorescence.rows(r0, r1), dtype=np.float32)
        f = f - f.mean(axis=0) * job.fl_baseline[:, None]
        v0, v1 = job.validation
        out.activity, _ = score_columns(f[v0:v1], job.truth[v0:v1], job.max_lag)
    out.seconds = sec
    return out
