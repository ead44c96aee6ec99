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
for its beats alone (not scored) when ``beats_from`` asks for contraction beats.
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
from ..kernels.contraction import ContractionBeatParams, find_contraction_beats
from ..kernels.flow import FlowParams, FlowStream, most_relaxed_frame
from ..kernels.region_motion import RegionFields
from ..progress import Progress
from ..results import WHOLE_FIELD, BeatRateRow, BeatRow
from ..schema import param
from . import METHODS
from .base import AnalysisContext, Method, PixelChunk

__all__ = ["FlowMagnitude", "FlowMethodParams", "FlowState"]

SOURCE = "motion"


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

    path: str
    shape: tuple[int, int]              # (T, Y*X)
    reference_frame: int
    field_trace: np.ndarray             # (T,) the whole field's mean displacement
    #: region name -> (T,) contraction trace with the noise components removed (``denoise_traces``)
    region_traces: dict[str, np.ndarray] = field(default_factory=dict)
    _cleanup: Any = field(default=None, repr=False, compare=False)

    def magnitudes(self) -> np.ndarray:
        return np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)

    def region_means(self, masks: Any, block: int = 256) -> np.ndarray:
        """``(T, n_roi)`` mean displacement of each ROI of *masks* (read from the scratch file in frame blocks)."""
        weights = masks.weight_matrix() / np.maximum(masks.n_pixels, 1)
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

    def check(self, ctx: AnalysisContext, params: FlowMethodParams, fitted: Any = None) -> None:
        params.flow.validate()
        text = str(params.reference).strip().lower()
        if text not in ("", "auto"):
            check(text.isdigit() and int(text) < ctx.n_frames,
                  f"the reference frame must be 'auto' or a frame number below {ctx.n_frames}, got {params.reference!r}.")

    def prepare(self, ctx: AnalysisContext, params: FlowMethodParams) -> Generator[Progress, None, FlowState]:
        from ..io import scratch_dir

        video = ctx.recording.transmission
        n, (ny, nx) = ctx.n_frames, ctx.frame_shape
        text = str(params.reference).strip().lower()
        ref = most_relaxed_frame(video) if text in ("", "auto") else int(text)
        names = list(ctx.masks.names) if ctx.masks is not None else [WHOLE_FIELD]
        collector = RegionFields.of_rois(ctx.masks, (ny, nx), n) if params.denoise_traces else None
        fd, path = tempfile.mkstemp(prefix="micromotion-flow-", suffix=".f32", dir=scratch_dir())
        os.close(fd)
        try:
            mags = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, ny * nx))
            trace = np.zeros(n)
            done = 0
            smoothed = params.flow.smooth_px > 0
            stream = FlowStream(video, ref, params.flow, fps=ctx.fps, measured_every=ctx.recording.measured_every)
            for first, fields, _, *smooth in stream.blocks(smoothed):
                if collector is not None:          # the fields as measured, like the motion tool's traces
                    collector.add(first, fields)
                fields = smooth[0] if smoothed else fields
                m = fields.shape[0]
                mag = np.hypot(fields[:, 0], fields[:, 1]).reshape(m, -1)
                mags[first:first + m] = mag
                trace[first:first + m] = mag.mean(axis=1)
                done += m
                yield Progress("optical flow", done / n, f"{done} of {n} frames")
            mags.flush()
            del mags
        except BaseException:   # cancelled or failed: no scratch file stays behind
            _remove(path)
            raise
        traces: dict[str, np.ndarray] = {}
        if collector is not None:
            disp, _, _ = collector.traces(ctx.fps, measured_every=ctx.recording.measured_every)
            traces = {name: disp[k].astype(np.float32) for k, name in enumerate(names)}
        state = FlowState(path=path, shape=(n, ny * nx), reference_frame=ref, field_trace=trace.astype(np.float32),
                          region_traces=traces)
        state._cleanup = weakref.finalize(state, _remove, path)
        return state

    def predictor(self, state: FlowState | None, device: str = "cpu") -> _Read | None:
        return None if state is None else _Read(state.path, state.shape)

    def beat_rows(self, ctx: AnalysisContext, params: FlowMethodParams, state: FlowState | None
                  ) -> tuple[list[BeatRow], list[BeatRateRow]]:
        """Contraction beats per ROI (from its mean displacement), or of the whole field without ROIs."""
        from ..beats import beat_stats

        regions: list[tuple[str, str, np.ndarray]] = []
        if state is None:
            return [], []
        if ctx.masks is not None:
            means = state.region_means(ctx.masks) if not state.region_traces else None
            for i, (name, kind) in enumerate(zip(ctx.masks.names, ctx.masks.kinds)):
                if name in ctx.roi_names():
                    regions.append((name, kind, state.region_traces[name] if means is None else means[:, i]))
        else:
            regions.append((WHOLE_FIELD, "other", state.region_traces.get(WHOLE_FIELD, state.field_trace)))
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
        return beats, rates

    def restore(self, folder: Path | None, results: Any) -> None:
        return None   # the magnitudes are not kept in output folders: re-run to re-trace


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
