"""Displacement magnitude (optical flow) as a prediction method: does the measured motion itself predict calcium?

Preparing estimates every frame's displacement field against the most relaxed frame
(:mod:`napari_micromotion.kernels.flow`, the motion tool's estimator), and stores each
pixel's displacement magnitude in a scratch file ``(T, Y*X)`` (memory stays bounded; the
file goes when the method's state does).  The pixel chunks of the first pass read their
columns from it, so the magnitudes are scored, summed over ROIs and mapped like every
other method's predictions, and the 1D-CNN-free question "does motion, measured in
pixels, follow the calcium?" gets the paper's score.

The method also gives beats: one per contraction-relaxation cycle, from each ROI's mean
displacement (``source`` = ``motion`` in ``beats.csv``), which do not double-count
contraction and relaxation as bursts of band-pass energy can.  The analysis measures it
for its beats alone (not scored, no scratch file) when ``beats_from`` asks for contraction
beats.  With ``beats_from`` auto it first looks whether the cells contract at all
(:func:`contraction_visible`: 64 pairs of frames, 1-1.5 s at 256 x 256 px) and skips
the full optical-flow pass when they do not.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import numpy as np

from ..errors import check
from ..kernels.contraction import ContractionBeatParams, difference_sd, find_contraction_beats
from ..kernels.flow import FlowEstimator, FlowParams, FlowStream, most_relaxed_frame, pair_starts, reference_image
from ..kernels.region_motion import RegionFields, quiet_regions, quiet_warning
from ..progress import Progress
from ..results import WHOLE_FIELD, BeatRateRow, BeatRow
from ..schema import param
from . import METHODS
from .base import AnalysisContext, Method, PixelChunk

__all__ = ["FlowMagnitude", "FlowMethodParams", "FlowState", "contraction_visible"]

SOURCE = "motion"
#: pairs of frames the quick look for contraction measures (:func:`contraction_visible`)
PROBE_PAIRS = 64
#: how far (robust noise SDs) a region's displacement must rise in the quick look.  Noise alone reaches 3.5-5 in
#: 128 samples (the simulator's cell that does not move: 3.5-4.9), its weakly contracting cell 8.8-9.8 (plain
#: means; the full pass's traces, with their noise components removed, show its beats far more clearly)
PROBE_THRESHOLD_SD = 6.0


@dataclass(frozen=True)
class FlowMethodParams:
    """Settings of the displacement-magnitude method."""

    reference: str = param("auto", label="reference frame", flag="--flow-reference", metavar="auto|N",
                           help="The frame displacements are measured against: auto picks the most relaxed frame, or "
                                "give a frame number counted from 0.")
    # no smoothing by default: it would spread a cell's small displacements onto its still neighbours,
    # whose pixels are scored on their own here (measured with the earlier sigma filter: the simulator's silent
    # cell 0.37 -> 0.54)
    flow: FlowParams = param(default_factory=lambda: FlowParams(smooth_px=0.0), label="Optical flow",
                             help="How displacement fields are estimated.")
    beats: ContractionBeatParams = param(default_factory=ContractionBeatParams, label="Contraction beats",
                                         help="How beats are found in the ROIs' displacement.")
    denoise_traces: bool = param(True, label="take the noise out of the traces", flag="--flow-denoise-traces",
                                 help="The ROIs' contraction traces (for beats) from each ROI's field with its noise "
                                      "components removed, as the motion tool does; off: the plain mean magnitude.")


@dataclass
class FlowState:
    """Where the magnitudes are (a scratch file), the reference frame, and the regions' contraction traces."""

    #: the scratch file of every pixel's magnitude ``(T, Y*X)``; ``None`` when measured for beats alone
    path: str | None
    shape: tuple[int, int]              # (T, Y*X)
    reference_frame: int
    field_trace: np.ndarray             # (T,) the whole field's mean displacement
    #: region name -> (T,) contraction trace: with the noise components removed (``denoise_traces``), else the
    #: region's mean displacement magnitude
    region_traces: dict[str, np.ndarray] = field(default_factory=dict)
    #: regions where no motion pattern stands out of the noise (:attr:`~..kernels.region_motion.LowRank.above_noise`),
    #: with that pattern's singular value over the noise edge: beats found there are flagged (noise, or a neighbour)
    quiet_regions: dict[str, float] = field(default_factory=dict)
    _cleanup: Any = field(default=None, repr=False, compare=False)

    def magnitudes(self) -> np.ndarray:
        return np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)

    def region_means(self, masks: Any, block: int = 256) -> np.ndarray:
        """``(T, n_roi)`` mean displacement of each ROI of *masks* (read from the scratch file in frame blocks)."""
        weights = _region_weights(masks)
        mags = self.magnitudes()
        out = np.zeros((self.shape[0], weights.shape[1]), np.float32)
        for a in range(0, self.shape[0], block):
            out[a:a + block] = np.asarray(mags[a:a + block]) @ weights
        return out

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_cleanup"] = None   # a copy (a dask worker, a pickle) does not own the file
        return d


@dataclass
class _Read:
    """Predictor: the chunk's columns of the stored magnitudes."""

    path: str
    shape: tuple[int, int]

    def __call__(self, chunk: PixelChunk) -> np.ndarray:
        mags = np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)
        if chunk.rows is not None:
            lo, hi = int(chunk.pixels[0]), int(chunk.pixels[-1]) + 1
            return np.array(mags[:, lo:hi])
        return np.array(mags[:, chunk.pixels])


@METHODS.register
class FlowMagnitude(Method):
    name = "flow"
    label = "displacement"
    description = ("each pixel's displacement magnitude against the most relaxed frame (optical flow), scored like "
                   "the other predictions; no training, no fluorescence needed")
    Params = FlowMethodParams
    colour = "#8c564b"
    predict_cost = 3.0
    prepare_cost = 12.0     # the optical-flow pass: on the demo 4-5x the band-pass pass (3)

    def check(self, ctx: AnalysisContext, params: FlowMethodParams, fitted: Any = None) -> None:
        params.flow.validate()
        text = str(params.reference).strip().lower()
        if text not in ("", "auto"):
            check(text.isdigit() and int(text) < ctx.n_frames,
                  f"the reference frame must be 'auto' or a frame number below {ctx.n_frames}, got {params.reference!r}.")

    def prepare(self, ctx: AnalysisContext, params: FlowMethodParams
                ) -> Generator[Progress, None, FlowState | None]:
        from ..io import scratch_dir

        video = ctx.recording.transmission
        n, (ny, nx) = ctx.n_frames, ctx.frame_shape
        every = ctx.recording.measured_every
        text = str(params.reference).strip().lower()
        ref = most_relaxed_frame(video) if text in ("", "auto") else int(text)
        scored = self.name not in ctx.beats_only        # for beats alone no pixel's magnitude is kept
        if not scored and ctx.probe_beats:
            seen = yield from contraction_visible(video, ref, params, ctx.masks, measured_every=every)
            if not seen:
                return None     # no beats to measure: the analysis keeps the band-pass energy beats
        names = list(ctx.masks.names) if ctx.masks is not None else [WHOLE_FIELD]
        collector = RegionFields.of_rois(ctx.masks, (ny, nx), n) if params.denoise_traces else None
        weights = _region_weights(ctx.masks) if collector is None and ctx.masks is not None else None
        means = np.zeros((n, weights.shape[1]), np.float32) if weights is not None else None
        path = None
        if scored:
            fd, path = tempfile.mkstemp(prefix="micromotion-flow-", suffix=".f32", dir=scratch_dir())
            os.close(fd)
        try:
            mags = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, ny * nx)) if scored else None
            trace = np.zeros(n)
            done = 0
            smoothed = params.flow.smooth_px > 0
            stream = FlowStream(video, ref, params.flow, fps=ctx.fps, measured_every=every)
            for first, fields, _, *smooth in stream.blocks(smoothed):
                if collector is not None:          # the fields as measured, like the motion tool's traces
                    collector.add(first, fields)
                fields = smooth[0] if smoothed else fields
                m = fields.shape[0]
                mag = np.hypot(fields[:, 0], fields[:, 1]).reshape(m, -1)
                if mags is not None:
                    mags[first:first + m] = mag
                if means is not None:
                    means[first:first + m] = mag @ weights
                trace[first:first + m] = mag.mean(axis=1)
                done += m
                yield Progress("optical flow", done / n, f"{done} of {n} frames")
            if mags is not None:
                mags.flush()
                del mags
        except BaseException:   # cancelled or failed: no scratch file stays behind
            if path is not None:
                _remove(path)
            raise
        if collector is not None:
            disp, _, kept = collector.traces(ctx.fps, measured_every=every)
            traces = {name: disp[k].astype(np.float32) for k, name in enumerate(names)}
            quiet = quiet_regions(names, kept)
        else:
            traces = {name: means[:, k] for k, name in enumerate(names)} if means is not None else {}
            quiet = {}
        state = FlowState(path=path, shape=(n, ny * nx), reference_frame=ref, field_trace=trace.astype(np.float32),
                          region_traces=traces, quiet_regions=quiet)
        if path is not None:
            state._cleanup = weakref.finalize(state, _remove, path)
        return state

    def predictor(self, state: FlowState | None, device: str = "cpu") -> _Read | None:
        return None if state is None or state.path is None else _Read(state.path, state.shape)

    def _regions(self, ctx: AnalysisContext, state: FlowState | None) -> list[tuple[str, str, np.ndarray]]:
        """``(name, kind, contraction trace)`` of every ROI to compute, or of the whole field without ROIs.

        ``None`` (the quick look found no contraction): none.  An ROI the state has no trace
        for (drawn after the flow was measured, when re-tracing) gets its plain mean
        displacement, read from the scratch file.
        """
        regions: list[tuple[str, str, np.ndarray]] = []
        if state is None:
            return regions
        if ctx.masks is not None:
            names = ctx.roi_names()
            new = any(n in names and n not in state.region_traces for n in ctx.masks.names)
            means = state.region_means(ctx.masks) if new and state.path is not None else None
            for i, (name, kind) in enumerate(zip(ctx.masks.names, ctx.masks.kinds)):
                if name in names:
                    trace = state.region_traces.get(name)
                    if trace is None and means is not None:
                        trace = means[:, i]
                    if trace is not None:
                        regions.append((name, kind, np.asarray(trace, np.float32)))
        else:
            trace = state.region_traces.get(WHOLE_FIELD, state.field_trace)
            regions.append((WHOLE_FIELD, "other", np.asarray(trace, np.float32)))
        return regions

    def beat_traces(self, ctx: AnalysisContext, params: FlowMethodParams, state: FlowState | None
                    ) -> dict[str, np.ndarray]:
        return {name: trace for name, _, trace in self._regions(ctx, state)}

    def beat_rows(self, ctx: AnalysisContext, params: FlowMethodParams, state: FlowState | None
                  ) -> tuple[list[BeatRow], list[BeatRateRow]]:
        """Contraction beats per ROI (from its mean displacement, :meth:`beat_traces`), or of the whole field."""
        from ..beats import beat_stats

        regions = self._regions(ctx, state)
        beats: list[BeatRow] = []
        rates: list[BeatRateRow] = []
        for name, kind, trace in regions:
            found = find_contraction_beats(np.asarray(trace, np.float64), ctx.fps, params.beats,
                                           measured_every=ctx.recording.measured_every)
            peaks = np.array([b.peak_time_s for b in found])
            rr = np.diff(peaks)
            for k, b in enumerate(found):
                beats.append(BeatRow(roi=name, kind=kind, source=SOURCE, beat=k + 1, time_s=b.onset_s,
                                     rr_s=float(rr[k - 1]) if k else float("nan"), peak_time_s=b.peak_time_s))
            rates.append(BeatRateRow(roi=name, kind=kind, source=SOURCE, **beat_stats(peaks)))
        echo = quiet_warning(state.quiet_regions, beats) if state is not None else ""
        if echo:
            ctx.warnings.append(echo)
        return beats, rates

    def restore(self, folder: Path | None, results: Any) -> None:
        return None   # the magnitudes are not kept in output folders: re-run to re-trace


def _region_weights(masks: Any) -> np.ndarray:
    """``(Y*X, n_roi)`` matrix that averages a flattened frame over each ROI."""
    return masks.weight_matrix() / np.maximum(masks.n_pixels, 1)


def contraction_visible(video: Any, reference_frame: int, params: FlowMethodParams = FlowMethodParams(),
                        masks: Any = None, *, measured_every: int = 1, n_pairs: int = PROBE_PAIRS, threads: int = 2
                        ) -> Generator[Progress, None, bool]:
    """Whether any region's displacement visibly rises above its noise: a quick look before a full flow pass.

    Displacement fields of *n_pairs* pairs of consecutive frames (frames ``t`` and ``t + K``
    with ``K`` = *measured_every*), spread evenly over the video, are measured against the
    reference like the full pass does (drift removed), and each region's mean displacement
    magnitude taken (the whole field without *masks*).  The noise of a region's trace is
    read from the differences within the pairs (robust SD: pairs caught during a beat are
    few); its rise is the largest sample above the resting level (the 20th percentile, as
    :func:`~napari_micromotion.kernels.contraction.find_contraction_beats` takes it).  The
    cells contract visibly when some region rises by more than :data:`PROBE_THRESHOLD_SD` (or
    the beat threshold ``params.beats.threshold_sd``, if lower) noise SDs.  A contraction that
    fills a few per cent of the time or more is caught: 128 frames sample it several times.

    Parameters
    ----------
    video
        ``(T, Y, X)`` transmission.
    reference_frame
        The frame displacements are measured against.
    params
        :class:`FlowMethodParams` (its flow settings and beat threshold).
    masks
        ``RoiMasks`` or ``None`` (the whole field).
    measured_every
        ``K`` for an interpolated video (only frames ``0, K, 2K, ...`` were measured).
    n_pairs
        Pairs of frames measured.
    threads
        Estimators run side by side (OpenCV releases the GIL).

    Returns
    -------
    bool
        (from the generator) ``True`` when some region visibly contracts.
    """
    from concurrent.futures import ThreadPoolExecutor

    n = int(video.shape[0])
    k = max(1, int(measured_every))
    if n <= k:
        return False
    starts = pair_starts(n, n_pairs, k)
    reference = reference_image(video, reference_frame, params.flow.reference_frames)
    weights = _region_weights(masks) if masks is not None else None
    parts = [p for p in np.array_split(starts, max(1, min(int(threads), starts.size))) if p.size]
    out = np.zeros((2, starts.size, weights.shape[1] if weights is not None else 1))

    def measure(part: int) -> None:
        est = FlowEstimator(reference, params.flow)     # one per thread: an estimator is not to be shared
        first = sum(p.size for p in parts[:part])
        for i, t in enumerate(parts[part]):
            for j, f in enumerate((int(t), int(t) + k)):
                d, _ = est.without_drift(est(np.asarray(video[f], np.float32)))
                mag = np.hypot(d[0], d[1]).ravel()
                out[j, first + i] = mag @ weights if weights is not None else mag.mean()

    # one stage with the flow pass that may follow: it stays at 0 % here, so the run's progress never goes back
    yield Progress("optical flow", 0.0, f"a quick look for contraction: {starts.size} pairs of frames")
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        for job in [pool.submit(measure, i) for i in range(len(parts))]:
            job.result()
    noise = difference_sd(out[1] - out[0], axis=0)
    samples = out.reshape(-1, out.shape[2])
    rise = samples.max(axis=0) - np.percentile(samples, 20, axis=0)
    seen = bool(np.any(rise > min(PROBE_THRESHOLD_SD, params.beats.threshold_sd) * noise))
    if not seen:
        yield Progress("optical flow", 1.0, "no contraction above the noise: no optical-flow pass needed")
    return seen


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
