"""Motion and contraction from brightfield alone: displacement fields, contraction traces, beats and beat parameters.

``micromotion motion VIDEO [--fps F] [--pixel-size UM] [--rois R] [--reference auto|N] --out DIR``

Every frame's displacement field against a reference frame (the most relaxed one, found
automatically, or a frame the user names) is estimated with
:mod:`napari_micromotion.kernels.flow`, streamed in blocks on two threads (memory:
four blocks of fields: two in work, two being read); stage drift is removed.  Per
region (each ROI, or the whole field when there are none) the mean displacement magnitude is the *contraction trace*
and the mean speed its rate of change.  By default (``denoise_traces``) both are taken
from the region's field with its noise components removed
(:mod:`napari_micromotion.kernels.region_motion`): the plain mean magnitude of noisy
fields sits on a floor of noise that hides sub-pixel contractions.  Beats and their
parameters come from
:mod:`napari_micromotion.kernels.contraction`, as MUSCLEMOTION, BeatProfiler and
mps_motion report them.

Output folder (written atomically):

* ``contraction.csv``: ``frame,time_s`` then per region ``<roi>/displacement_px``,
  ``<roi>/speed_px_s`` (and ``_um``, ``_um_s`` when the pixel size is known);
* ``beats.csv``: the analysis' beat table (``source`` = ``motion``), ``time_s`` the
  contraction onset and ``peak_time_s`` the maximum contraction;
* ``beat_params.csv``: per region and beat onset, peak time, peak displacement, time to
  peak, relaxation time to 50 % and 90 %, maximum contraction and relaxation speed,
  duration, the interval from the previous beat, and the region's rate, RR SD and RMSSD;
* ``maps/displacement_max.tif`` (largest displacement of each pixel, px) and
  ``maps/direction.tif`` (its angle in degrees, 0 = +x, counter-clockwise with rows
  pointing down as in the image);
* ``maps/reference.tif``: the reference frame;
* ``flow.zarr`` ``(T, 2, Y, X)`` (dy, dx) with ``save_flow``: the fields as measured (the
  contraction traces are their region means); the maps and napari's arrows come from the
  fields after the adaptive smoothing of :meth:`~napari_micromotion.kernels.flow.FlowEstimator.smooth`
  (``--flow-smooth``, ``--flow-smooth-confidence``), less noisy pixel by pixel;
* ``report.png``: the maps and every region's contraction trace with onsets and peaks;
* ``motion.json``: parameters, reference frame, drift, the fields' measured noise (``flow_noise_px``), timings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from ..beats import beat_stats
from ..errors import check
from ..kernels.contraction import ContractionBeatParams, find_contraction_beats
from ..kernels.flow import FlowParams, FlowStream, most_relaxed_frame
from ..kernels.region_motion import RegionFields, quiet_regions, quiet_warning
from ..layout import Entry, ImageEntry, TableEntry, read_number_table, write_frame_table
from ..progress import Progress
from ..results import WHOLE_FIELD, BeatRateRow, BeatRow, Row
from ..rois import rasterize
from ..schema import param
from . import TOOLS
from .base import RecordEntry, Tool, ToolResult, synthesized_warning

__all__ = ["Motion", "MotionParams", "MotionResult", "BeatParamRow", "MOTION_SOURCE", "iter_motion"]

#: the ``source`` of beats found in contraction traces
MOTION_SOURCE = "motion"
#: every displacement field, with ``save_flow``
FLOW_ZARR = "flow.zarr"
NAN = float("nan")


@dataclass(frozen=True)
class MotionParams:
    """Settings of the motion tool."""

    reference: str = param("auto", label="reference frame", flag="--reference", metavar="auto|N",
                           help="The frame displacements are measured against: auto picks the most relaxed frame "
                                "(the one closest to the median image), or give a frame number counted from 0.")
    flow: FlowParams = param(default_factory=FlowParams, label="Optical flow",
                             help="How displacement fields are estimated.")
    beats: ContractionBeatParams = param(default_factory=ContractionBeatParams, label="Beats",
                                         help="How beats are found in the contraction traces.")
    denoise_traces: bool = param(True, label="take the noise out of the traces", flag="--denoise-traces",
                                 help="Region traces from each region's field with its noise components removed "
                                      "(principal components that do not stand out of the frame-to-frame noise): "
                                      "no noise floor under small motions.  Off: the plain mean magnitude of the "
                                      "fields as measured.")
    save_flow: bool = param(False, label="save every displacement field", flag="--save-flow",
                            help="Also write the displacement of every pixel in every frame (flow.zarr, T x 2 x Y x X; "
                                 "large).")
    max_noise_ratio: float = param(3.0, label="texture limit", unit="x typical noise", min=0.0, max=1000.0,
                                   flag="--max-noise-ratio", advanced=True, decimals=1,
                                   help="Pixels whose displacement is more than this many times as noisy as the "
                                        "typical pixel's (read from the reference frame's texture: none, or stripes "
                                        "in one direction only) are left out of the maps and arrows, shown as not "
                                        "measured; maps/noise_px.tif has every pixel's noise (0: keep every pixel).")
    arrows: int = param(16, label="arrows across", min=2, max=128, flag="--arrows", advanced=True,
                        help="Arrows per image width in napari's displacement layer.")
    block_frames: int = param(32, label="frames per block", min=1, max=4096, flag="--block-frames", advanced=True,
                              help="Frames processed at once (memory: four blocks of displacement fields, two in "
                                   "work and two being read).")
    threads: int = param(2, label="threads", min=1, max=64, flag="--threads", advanced=True,
                         help="Parts of the video processed side by side.")


@dataclass
class BeatParamRow(Row):
    """One beat of one region (``beat_params.csv``); rate, RR SD and RMSSD are the region's."""

    roi: str
    kind: str
    beat: int
    onset_s: float = NAN
    peak_time_s: float = NAN
    peak_displacement_px: float = NAN
    time_to_peak_s: float = NAN
    relaxation_50_s: float = NAN
    relaxation_90_s: float = NAN
    duration_s: float = NAN
    max_contraction_speed_px_s: float = NAN
    max_relaxation_speed_px_s: float = NAN
    rr_s: float = NAN
    rate_bpm: float = NAN
    rr_sd_s: float = NAN
    rmssd_s: float = NAN
    peak_displacement_um: float = NAN
    max_contraction_speed_um_s: float = NAN
    max_relaxation_speed_um_s: float = NAN


@dataclass
class MotionResult(ToolResult):
    """What the motion tool measured (see the module docstring)."""

    fps: float = 1.0
    pixel_size_um: float | None = None
    n_frames: int = 0
    frame_shape: tuple[int, int] = (0, 0)
    reference_frame: int = 0
    regions: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    displacement: dict[str, np.ndarray] = field(default_factory=dict)   # region -> (T,) px
    speed: dict[str, np.ndarray] = field(default_factory=dict)          # region -> (T,) px/s
    beats: list[BeatRow] = field(default_factory=list)
    beat_params: list[BeatParamRow] = field(default_factory=list)
    beat_rates: list[BeatRateRow] = field(default_factory=list)
    displacement_max: np.ndarray | None = None
    direction: np.ndarray | None = None
    drift_px: np.ndarray | None = None                                  # (T, 2) removed stage drift (dy, dx)
    arrows: np.ndarray | None = None                                    # (T, n_points, 2) sampled fields
    arrow_points: np.ndarray | None = None                              # (n_points, 2) row, col
    flow_store: Any = None                                              # path of flow.zarr (scratch, then folder)
    reference_image: np.ndarray | None = None                           # the reference frame (maps/reference.tif)
    masks: Any = None                                                   # the ROIs' RoiMasks (not written)
    trace_components: dict[str, int] = field(default_factory=dict)      # region -> components kept (denoise_traces)
    flow_noise_px: float | None = None                                  # measured noise of the fields (maps' smoothing)
    noise_px: np.ndarray | None = None                                  # (Y, X) each pixel's displacement noise SD
    unmeasured_fraction: float = 0.0                                    # share of pixels left out of the maps
    _cleanup: Any = field(default=None, repr=False, compare=False)

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps


class ContractionEntry(Entry):
    """``contraction.csv`` <-> ``displacement``, ``speed`` (plus µm columns when the pixel size is known)."""

    path = "contraction.csv"
    what = "per region and frame: mean displacement (px) and speed (px/s), and in µm when the pixel size is known"

    def write(self, result: MotionResult, folder: Path) -> None:

        cols = ["frame", "time_s"]
        data = [np.arange(result.n_frames, dtype=np.float64), result.time_s()]
        px = result.pixel_size_um
        for r in result.regions:
            cols += [f"{r}/displacement_px", f"{r}/speed_px_s"]
            data += [result.displacement[r], result.speed[r]]
            if px:
                cols += [f"{r}/displacement_um", f"{r}/speed_um_s"]
                data += [result.displacement[r] * px, result.speed[r] * px]
        write_frame_table(folder / self.path, cols, np.column_stack(data))

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        read = read_number_table(folder / self.path)
        if read is None:
            return
        header, table = read
        disp, speed, regions = {}, {}, []
        for j, col in enumerate(header):
            if col.endswith("/displacement_px"):
                regions.append(col[: -len("/displacement_px")])
                disp[regions[-1]] = table[:, j].astype(np.float32)
            elif col.endswith("/speed_px_s"):
                speed[col[: -len("/speed_px_s")]] = table[:, j].astype(np.float32)
        fields.update(displacement=disp, speed=speed, regions=regions, n_frames=table.shape[0])


class FlowEntry(Entry):
    """``flow.zarr`` (with ``save_flow``): moved from the scratch folder into the output folder."""

    path = FLOW_ZARR
    what = "every displacement field (T, 2, Y, X), (dy, dx) in px (with --save-flow)"

    def write(self, result: MotionResult, folder: Path) -> None:
        import shutil

        src = result.flow_store
        if src is None or not Path(src).exists():
            return
        if Path(src).parent.name.startswith("micromotion-flow-zarr-"):   # the run's own scratch copy: move it
            shutil.move(str(src), str(folder / self.path))
            result.flow_store = None
        else:                                                             # read from another folder: copy
            shutil.copytree(src, folder / self.path)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        if (folder / self.path).is_dir():
            fields["flow_store"] = folder / self.path


class _ReportEntry(Entry):
    """``report.png``: the maps and every region's contraction trace (written, not read back)."""

    path = "report.png"
    what = "one page: the displacement maps and every region's contraction trace with its beats"

    def write(self, result: MotionResult, folder: Path) -> None:
        from ..report_motion import save_motion_report

        if result.regions:
            save_motion_report(result, folder / self.path, still=result.reference_image, masks=result.masks)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        pass


def iter_motion(recording: Any, params: MotionParams, rois: Sequence[Any] = (), *, flow_out: Any = None
                ) -> Generator[Progress, None, MotionResult]:
    """Measure motion and contraction (see the module docstring); a generator of progress.

    *flow_out*: an optional ``(T, 2, Y, X)`` array-like (a zarr array) receiving every field.
    """
    t0 = time.perf_counter()
    video = recording.transmission
    n, (ny, nx) = recording.n_frames, recording.frame_shape
    fps = recording.fps
    # an interpolated video (only every K-th frame measured): noise is read from the measured frames
    every = recording.measured_every
    check(n >= 3, f"the video has {n} frames; motion needs at least 3.")
    yield Progress("motion", 0.0, "choosing the reference frame")
    if str(params.reference).strip().lower() in ("", "auto"):
        ref = most_relaxed_frame(video)
    else:
        text = str(params.reference).strip()
        check(text.lstrip("-").isdigit(), f"the reference frame must be 'auto' or a frame number, got {text!r}.")
        ref = int(text)
        check(0 <= ref < n, f"reference frame {ref} lies outside the video's {n} frames (0 to {n - 1}).")
    masks = rasterize(list(rois), (ny, nx)) if rois else None
    clipped = list(masks.clipped) if masks is not None else []
    regions, kinds = (masks.names, masks.kinds) if masks is not None else ([WHOLE_FIELD], ["other"])
    collector = weights = None
    if params.denoise_traces:
        collector = RegionFields.of_rois(masks, (ny, nx), n)
    elif masks is not None:          # the plain traces: region means of the pixel magnitudes
        weights = masks.weight_matrix() / np.maximum(masks.n_pixels, 1).astype(np.float32)   # (P, R)
    disp = np.zeros((len(regions), n))
    speed = np.zeros((len(regions), n))
    dmax = np.zeros(ny * nx, np.float32)
    angle = np.zeros(ny * nx, np.float32)
    stream = FlowStream(video, ref, params.flow, fps=fps, block=params.block_frames, threads=params.threads,
                        measured_every=every)
    # pixels with too little texture to measure (their displacement noise well above the typical pixel's)
    factor = stream.noise_factor
    unmeasured = factor > params.max_noise_ratio if params.max_noise_ratio > 0 else np.zeros((ny, nx), bool)
    step = max(1, nx // max(int(params.arrows), 1))
    pr, pc = np.meshgrid(np.arange(step // 2, ny, step), np.arange(step // 2, nx, step), indexing="ij")
    points = np.column_stack([pr.ravel(), pc.ravel()])
    points = points[~unmeasured[points[:, 0], points[:, 1]]]
    arrows = np.zeros((n, len(points), 2), np.float32)
    done = 0
    for first, fields, previous, smooth in stream.blocks(smoothed=True):
        m = fields.shape[0]
        if collector is not None:
            collector.add(first, fields)
        else:
            flat = fields.reshape(m, 2, -1)
            mag = np.sqrt(flat[:, 0] * flat[:, 0] + flat[:, 1] * flat[:, 1])                # (m, P)
            prev = np.concatenate([(fields[:1] if previous is None else previous[None]), fields[:-1]]
                                  ).reshape(m, 2, -1)
            step_y, step_x = flat[:, 0] - prev[:, 0], flat[:, 1] - prev[:, 1]
            vel = np.sqrt(step_y * step_y + step_x * step_x)
            vel *= np.float32(fps)
            if weights is None:
                disp[0, first:first + m] = mag.mean(axis=1)
                speed[0, first:first + m] = vel.mean(axis=1)
            else:
                disp[:, first:first + m] = (mag @ weights).T
                speed[:, first:first + m] = (vel @ weights).T
        # the maps and arrows from the smoothed fields; region traces (above) and flow.zarr as measured
        sflat = smooth.reshape(m, 2, -1)
        smag = np.sqrt(sflat[:, 0] * sflat[:, 0] + sflat[:, 1] * sflat[:, 1])
        for i in range(m):        # a running maximum frame by frame (an argmax across frames is a strided pass)
            idx = np.flatnonzero(smag[i] > dmax)
            if idx.size:
                dmax[idx] = smag[i, idx]
                angle[idx] = np.degrees(np.arctan2(-sflat[i, 0, idx], sflat[i, 1, idx]))   # rows point down: +y is up
        arrows[first:first + m] = smooth[:, :, points[:, 0], points[:, 1]].transpose(0, 2, 1)
        if flow_out is not None:   # as measured: the contraction traces are their region means
            flow_out[first:first + m] = fields
        done += m
        yield Progress("motion", 0.97 * done / n, f"{done} of {n} frames")
    dmax[unmeasured.ravel()] = np.nan
    angle[unmeasured.ravel()] = np.nan
    components: dict[str, int] = {}
    quiet: dict[str, float] = {}            # regions without motion above the noise: beats there may be echoes
    if collector is not None:
        yield Progress("motion", 0.97, "taking the noise out of the region traces")
        disp, speed, kept = collector.traces(fps, measured_every=every)
        components = {r: (lr.rank if lr is not None else 0) for r, lr in zip(regions, kept)}
        quiet = quiet_regions(regions, kept)
    beats: list[BeatRow] = []
    beat_params: list[BeatParamRow] = []
    rates: list[BeatRateRow] = []
    px = recording.pixel_size_um
    for k, (region, kind) in enumerate(zip(regions, kinds)):
        found = find_contraction_beats(disp[k], fps, params.beats, speed=speed[k], measured_every=every)
        peaks = np.array([b.peak_time_s for b in found])
        stats = beat_stats(peaks)
        rates.append(BeatRateRow(roi=region, kind=kind, source=MOTION_SOURCE, **stats))
        rr = np.diff(peaks)
        for i, b in enumerate(found):
            beats.append(BeatRow(roi=region, kind=kind, source=MOTION_SOURCE, beat=i + 1, time_s=b.onset_s,
                                 rr_s=float(rr[i - 1]) if i else NAN, peak_time_s=b.peak_time_s))
            row = BeatParamRow(roi=region, kind=kind, beat=i + 1, onset_s=b.onset_s, peak_time_s=b.peak_time_s,
                               peak_displacement_px=b.peak_displacement, time_to_peak_s=b.time_to_peak_s,
                               relaxation_50_s=b.relaxation_50_s, relaxation_90_s=b.relaxation_90_s,
                               duration_s=b.duration_s, max_contraction_speed_px_s=b.max_contraction_speed,
                               max_relaxation_speed_px_s=b.max_relaxation_speed,
                               rr_s=float(rr[i - 1]) if i else NAN, rate_bpm=stats["rate_bpm"],
                               rr_sd_s=stats["rr_sd_s"], rmssd_s=stats["rmssd_s"])
            if px:
                row.peak_displacement_um = b.peak_displacement * px
                row.max_contraction_speed_um_s = b.max_contraction_speed * px
                row.max_relaxation_speed_um_s = b.max_relaxation_speed * px
            beat_params.append(row)
    warnings: list[str] = list(clipped)      # ROIs cut off at the frame's edge first
    synth = synthesized_warning(recording, "displacements and beat times between measured frames are interpolated, "
                                           "not measured.")
    if synth:
        warnings.append(synth)
    if not stream.estimators[0].gain_matched:
        warnings.append("the frames' intensities go below zero (offset-subtracted data?), so changes in brightness "
                        "between frames (lamp flicker) could not be told from motion; if you can, use the raw camera "
                        "frames.")
    echo = quiet_warning(quiet, beats)
    if echo:
        warnings.append(echo)
    if not any(len([b for b in beats if b.roi == r]) for r in regions):
        warnings.append("no contraction stood out of the noise in any region; is the frame rate right, and does the "
                        "recording hold a beat?")
    yield Progress("motion", 1.0, f"done in {time.perf_counter() - t0:.1f} s")
    return MotionResult(
        params=params, source=dict(recording.provenance), timings_s={"total": time.perf_counter() - t0},
        warnings=warnings, fps=fps, pixel_size_um=px, n_frames=n, frame_shape=(ny, nx), reference_frame=ref,
        regions=list(regions), kinds=list(kinds),
        displacement={r: disp[k].astype(np.float32) for k, r in enumerate(regions)},
        speed={r: speed[k].astype(np.float32) for k, r in enumerate(regions)},
        beats=beats, beat_params=beat_params, beat_rates=rates,
        displacement_max=dmax.reshape(ny, nx), direction=angle.reshape(ny, nx), drift_px=stream.drift,
        arrows=arrows, arrow_points=points, reference_image=stream.reference, masks=masks,
        trace_components=components, flow_noise_px=stream.noise_px,
        noise_px=(stream.noise_px * factor).astype(np.float32), unmeasured_fraction=float(unmeasured.mean()))


def _beat_param_columns(result: MotionResult) -> list[str]:
    cols = BeatParamRow.column_names()
    return cols if result.pixel_size_um else [c for c in cols if "_um" not in c]


class _BeatParamsEntry(TableEntry):
    def write(self, result: Any, folder: Path) -> None:
        from ..layout import write_csv

        write_csv(folder / self.path, result.beat_params, _beat_param_columns(result))


@TOOLS.register
class Motion(Tool):
    name = "motion"
    label = "motion"
    description = ("displacement fields, contraction traces, beats and beat parameters from brightfield alone "
                   "(as MUSCLEMOTION, BeatProfiler and mps_motion report them)")
    kind = "video -> vectors"
    Params = MotionParams
    result_type = MotionResult
    result_view = "napari_micromotion._qt.motion_view:MotionView"
    layout = [
        ContractionEntry(),
        TableEntry("beats.csv", "beats", BeatRow, "beat onsets (time_s) and peaks (peak_time_s), source motion"),
        _BeatParamsEntry("beat_params.csv", "beat_params", BeatParamRow,
                         "per region and beat: timing, amplitude, speeds; the region's rate, RR SD, RMSSD"),
        TableEntry("beat_rates.csv", "beat_rates", BeatRateRow, "rate (bpm), RR SD, RMSSD per region"),
        ImageEntry("maps/displacement_max.tif", "displacement_max", "largest displacement of each pixel (px)"),
        ImageEntry("maps/direction.tif", "direction", "angle of that displacement (degrees, 0 = +x, counter-clockwise)"),
        ImageEntry("maps/noise_px.tif", "noise_px", "each pixel's displacement noise SD (px): the fields' measured "
                   "noise scaled by the reference frame's texture there; pixels above the texture limit are NaN "
                   "in the maps above"),
        ImageEntry("maps/reference.tif", "reference_image", "the reference frame"),
        FlowEntry(),
        _ReportEntry(),
        RecordEntry("motion.json", "parameters, reference frame, frame rate, pixel size, removed drift, the "
                                  "fields' measured noise, timings"),
    ]

    def check(self, recording: Any, params: MotionParams) -> None:
        params.flow.validate()
        check(recording.n_frames >= 3, f"the video has {recording.n_frames} frames; motion needs at least 3.")

    def compute(self, recording: Any, params: MotionParams, *, rois: Sequence[Any] = ()) -> Generator[Progress, None, Any]:
        if not params.save_flow:
            return (yield from iter_motion(recording, params, rois))
        import shutil
        import tempfile
        import weakref

        from ..distributed import require
        from ..io import scratch_dir

        zarr = require("zarr")
        n, (ny, nx) = recording.n_frames, recording.frame_shape
        scratch = Path(tempfile.mkdtemp(prefix="micromotion-flow-zarr-", dir=scratch_dir()))
        try:
            store = zarr.open_array(str(scratch / FLOW_ZARR), mode="w", shape=(n, 2, ny, nx),
                                    chunks=(max(1, params.block_frames), 2, ny, nx), dtype="float32")
            result = yield from iter_motion(recording, params, rois, flow_out=store)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        result.flow_store = scratch / FLOW_ZARR
        result._cleanup = weakref.finalize(result, shutil.rmtree, scratch, True)   # unless written
        return result

    def result_record(self, result: MotionResult) -> dict[str, Any]:
        return {"fps": result.fps, "pixel_size_um": result.pixel_size_um,
                "reference_frame": result.reference_frame, "kinds": result.kinds,
                "frame_shape": list(result.frame_shape), "n_frames": result.n_frames,
                "drift_px": result.drift_px.tolist() if result.drift_px is not None else None,
                "trace_components": dict(result.trace_components), "flow_noise_px": result.flow_noise_px,
                "unmeasured_fraction": result.unmeasured_fraction}

    def fields_from_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        fields = {"fps": float(rec.get("fps", 1.0)), "pixel_size_um": rec.get("pixel_size_um"),
                  "reference_frame": int(rec.get("reference_frame", 0)), "kinds": list(rec.get("kinds", [])),
                  "frame_shape": tuple(rec.get("frame_shape", (0, 0)))}
        if rec.get("drift_px") is not None:
            fields["drift_px"] = np.asarray(rec["drift_px"], np.float32)
        if rec.get("trace_components"):
            fields["trace_components"] = {str(k): int(v) for k, v in rec["trace_components"].items()}
        if rec.get("flow_noise_px") is not None:
            fields["flow_noise_px"] = float(rec["flow_noise_px"])
        fields["unmeasured_fraction"] = float(rec.get("unmeasured_fraction") or 0.0)
        return fields

    def write(self, result: MotionResult, out: Any, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
        folder = super().write(result, out, overwrite=overwrite, extra=extra)
        if (folder / FLOW_ZARR).is_dir():
            result.flow_store = folder / FLOW_ZARR
        return folder

    def layer_data(self, result: MotionResult) -> list[tuple[Any, dict[str, Any], str]]:
        from .._layers import META_KEY

        px = result.pixel_size_um or 1.0
        out: list[tuple[Any, dict[str, Any], str]] = []
        meta = {META_KEY: {"role": "result", "tool": self.name, "reference_frame": result.reference_frame}}
        if result.displacement_max is not None:
            hi = float(np.nanpercentile(result.displacement_max, 99.5)) or 1.0
            out.append((result.displacement_max, {"name": "motion: largest displacement (px)", "colormap": "inferno",
                                                  "contrast_limits": (0.0, hi), "blending": "additive",
                                                  "scale": (px, px), "metadata": meta}, "image"))
        if result.arrows is not None and result.arrow_points is not None:
            t, m = result.arrows.shape[:2]
            vec = np.zeros((t * m, 2, 3), np.float32)
            vec[:, 0, 0] = np.repeat(np.arange(t), m)
            vec[:, 0, 1:] = np.tile(result.arrow_points, (t, 1))
            vec[:, 1, 1:] = result.arrows.reshape(-1, 2)
            spacing = result.frame_shape[1] / max(int(math.sqrt(m)), 1)
            peak = float(np.percentile(np.hypot(*result.arrows.reshape(-1, 2).T), 99.5)) or 1.0
            out.append((vec, {"name": "motion: displacement arrows", "edge_color": "#ffdd55", "edge_width": 0.6,
                              "length": 0.8 * spacing / peak, "scale": (1.0, px, px), "metadata": meta}, "vectors"))
        return out
