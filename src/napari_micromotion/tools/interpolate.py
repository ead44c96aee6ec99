"""Content-aware frame interpolation (issue 14): raise a video's frame rate, never mistaken for measured frames.

``micromotion interpolate VIDEO --factor K [--method linear|flow|learned] [--finetune-epochs E] --out DIR``

Output frame ``K i`` is input frame ``i`` exactly (bit for bit); the ``K - 1`` frames between are
synthesized by the chosen interpolator (:mod:`napari_micromotion.interpolate`).  Before that,
every method is evaluated by CAFI's protocol within the recording: spread-out frames are held
out (never fine-tuning inputs or targets) and reconstructed from their neighbours.

Output folder (written atomically):

* ``interpolated.tif``: ``(N - 1) K + 1`` frames in the input's data type (ImageJ TIFF: frame
  interval divided by ``K``, each frame labelled ``measured`` or ``synthesized``, and the key
  ``micromotion_interpolated`` that ``analyze`` recognises); synthesized integer frames are rounded
  and clipped to the type's range.  uint32 and int32 are kept too (with the same ImageJ
  description, written by hand: tifffile's ImageJ mode refuses them; ImageJ opens them as
  32-bit signed integers, so Fiji shows uint32 values above 2^31 as negative).  ImageJ cannot open 16-bit float, signed 8-bit or 64-bit TIFFs, so
  float16, int8 and bool videos are written as float32, which holds each of their values
  exactly, and float64 and 64-bit integer videos as float32, which does not (the run record
  warns);
* ``synthesized.csv``: ``frame,time_s,measured`` (1 for input frames, 0 for synthesized ones);
* ``uncertainty.tif``: float32, per-pixel uncertainty of each synthesized frame in input units
  (0 for measured frames; ImageJ TIFF with the same frame interval and pixel size);
* ``interpolate.json``: parameters, held-out PSNR/SSIM of every method (and how well each
  method's uncertainty map follows its actual error there: the correlation over 5 x 5 px boxes),
  fine-tuning record, timings, and ``contains_synthesized_frames: true``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from ..errors import check
from ..interpolate.core import METHODS
from ..io import INTERPOLATED_KEY
from ..kernels.flow import ENGINES
from ..layout import Entry, VideoEntry, imagej_video_meta, read_number_table, write_frame_table
from ..progress import Progress
from ..schema import param
from . import TOOLS
from .base import RecordEntry, Tool, ToolResult, finite_or_none

__all__ = ["Interpolate", "InterpolateParams", "InterpolateResult"]



@dataclass(frozen=True)
class InterpolateParams:
    """Settings of the interpolation tool."""

    factor: int = param(2, label="factor", min=2, max=16, flag="--factor",
                        help="Output frames per input frame interval: 2 doubles the frame rate (one synthesized frame "
                             "between every two measured ones).")
    method: str = param("learned", label="method", choices=METHODS, flag="--method",
                        help="linear: blend of the two frames; flow: both frames warped along the optical flow, "
                             "occlusion-aware; learned: a compact network refining the flow, pretrained and "
                             "fine-tuned on this recording.")
    finetune_epochs: int = param(8, label="fine-tuning epochs", min=0, max=100, flag="--finetune-epochs",
                                 help="Passes of fine-tuning the learned interpolator on this recording (drop frames, "
                                      "learn to reconstruct them); 0 uses the pretrained network as is.")
    flow_engine: str = param("dis", label="flow engine", choices=ENGINES, flag="--flow-engine", advanced=True,
                             help="Optical flow of the flow and learned methods: dis (OpenCV's dense inverse search; "
                                  "best and fastest on the shared recordings), lk or farneback.")
    steps_per_epoch: int = param(50, label="steps per epoch", min=1, max=10000, flag="--steps-per-epoch",
                                 advanced=True, help="Batches of 8 patches per fine-tuning epoch.")
    max_minutes: float = param(5.0, label="fine-tuning budget", unit="min", min=0.05, max=1440.0,
                               flag="--max-minutes", advanced=True, help="Fine-tuning stops after this long (and says so).")
    heldout_every: int = param(8, label="held-out spacing", unit="frames", min=3, max=1000, flag="--heldout-every",
                               advanced=True, help="Every this many frames one is held out to measure the methods "
                                                   "(never used for fine-tuning).")
    max_heldout: int = param(16, label="held-out frames", min=1, max=1000, flag="--max-heldout", advanced=True,
                             help="At most this many held-out frames (spread over the video).")
    weights: str = param("", label="pretrained weights", flag="--weights", metavar="MODEL", advanced=True,
                         help="A model of 'micromotion train-interpolator' instead of the shipped one (empty: shipped).")
    seed: int = param(0, label="seed", min=0, max=2**31 - 1, flag="--seed", advanced=True,
                      help="Seed of fine-tuning (same seed, data and threads: same result).")
    threads: int = param(2, label="threads", min=1, max=64, flag="--threads", advanced=True,
                         help="CPU threads torch uses.")


@dataclass
class InterpolateResult(ToolResult):
    """What the interpolator made (see the module docstring)."""

    fps: float = 1.0                               # output frame rate
    factor: int = 2
    frames: np.ndarray | None = None               # (M, Y, X), input dtype
    uncertainty: np.ndarray | None = None          # (M, Y, X) float32
    measured: np.ndarray | None = None             # (M,) bool
    evaluation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    pixel_size_um: float | None = None

    @property
    def n_frames(self) -> int:
        return 0 if self.measured is None else int(self.measured.size)

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps


#: data types tifffile writes in ImageJ mode
IMAGEJ_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
#: data types tifffile's ImageJ mode refuses but ImageJ opens (as 32-bit signed integers): written with the same
#: ImageJ description and labels, so their values stay bit for bit
IMAGEJ_READABLE_DTYPES = (np.uint32, np.int32)


def written_dtype(dtype: Any) -> np.dtype:
    """The data type ``interpolated.tif`` holds for a video of *dtype*: the same when ImageJ can open it, else
    float32 (ImageJ opens no 16-bit float, signed 8-bit or 64-bit TIFFs; float32 holds float16, int8 and bool
    values exactly, float64 and 64-bit integers not)."""
    dtype = np.dtype(dtype)
    return dtype if dtype in IMAGEJ_DTYPES + IMAGEJ_READABLE_DTYPES else np.dtype(np.float32)


class InterpolatedEntry(Entry):
    """``interpolated.tif`` <-> ``frames`` (ImageJ TIFF, the input's dtype as :func:`written_dtype` says, frame
    interval, pixel size and per-frame labels)."""

    path = "interpolated.tif"
    what = ("the video at K times the frame rate: frame K*i is input frame i exactly; ImageJ labels say which "
            "frames are measured and which synthesized; the input's data type (float16, int8, float64 and "
            "64-bit integers as float32: ImageJ opens none of them)")

    def write(self, result: InterpolateResult, folder: Path) -> None:
        import tifffile

        data = result.frames
        dtype = written_dtype(data.dtype)
        labels = ["measured" if m else "synthesized" for m in result.measured]
        meta, kw = imagej_video_meta(result.fps, result.pixel_size_um)
        meta.update({INTERPOLATED_KEY: "true", "interpolation_factor": int(result.factor),
                     "synthesized_frames": int((~result.measured).sum())})
        if dtype in IMAGEJ_READABLE_DTYPES:        # ImageJ mode refuses them: its description and labels by hand
            desc = tifffile.imagej_description(data.shape, **meta)
            tifffile.imwrite(folder / self.path, data, description=desc, metadata=None, photometric="minisblack",
                             byteorder="<", contiguous=True,
                             extratags=tifffile.imagej_metadata_tag({"Labels": labels}, "<"), **kw)
            return
        tifffile.imwrite(folder / self.path, np.asarray(data, dtype), imagej=True, metadata={**meta, "Labels": labels},
                         **kw)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        import tifffile

        with tifffile.TiffFile(folder / self.path) as tf:
            fields["frames"] = tf.asarray()
            ij = tf.imagej_metadata or {}
        if ij.get("finterval"):
            fields["fps"] = 1.0 / float(ij["finterval"])


class SynthesizedEntry(Entry):
    """``synthesized.csv`` <-> ``measured``."""

    path = "synthesized.csv"
    what = "per output frame: frame, time_s, measured (1: an input frame, 0: synthesized)"

    def write(self, result: InterpolateResult, folder: Path) -> None:
        m = result.measured
        write_frame_table(folder / self.path, ["frame", "time_s", "measured"],    # fmt writes 1.0 / 0.0 as 1 / 0
                          np.column_stack([np.arange(m.size), result.time_s(), m.astype(np.float64)]))

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        got = read_number_table(folder / self.path)
        if got is not None:
            fields["measured"] = got[1][:, 2] > 0.5


@TOOLS.register
class Interpolate(Tool):
    name = "interpolate"
    label = "interpolate"
    description = ("raise a video's frame rate K-fold by linear, motion-compensated or learned frame interpolation "
                   "(fine-tuned on the recording, CAFI); measured frames kept exactly, synthesized ones marked, "
                   "with per-pixel uncertainty and held-out PSNR/SSIM")
    kind = "video -> video"
    Params = InterpolateParams
    result_type = InterpolateResult
    result_view = "napari_micromotion._qt.interpolate_view:InterpolateView"
    #: title of the workbench's live loss plot
    loss_title = "fine-tuning loss (Charbonnier, units of the frames' contrast)"
    layout = [
        InterpolatedEntry(),
        SynthesizedEntry(),
        VideoEntry("uncertainty.tif", "uncertainty", "per-pixel uncertainty of synthesized frames (input units; 0 "
                                                     "for measured frames)"),
        RecordEntry("interpolate.json", "parameters, held-out PSNR/SSIM of every method, fine-tuning record, timings; "
                                        "contains_synthesized_frames"),
    ]

    def check(self, recording: Any, params: InterpolateParams) -> None:
        n, (ny, nx) = recording.n_frames, recording.frame_shape
        check(n >= 2, f"the video has {n} frame(s); interpolation needs at least 2.")
        check(min(ny, nx) >= 16, f"frames of {ny} x {nx} px are too small to interpolate (at least 16 x 16 px).")
        check(params.factor >= 2, f"the factor must be at least 2 (got {params.factor}).")
        check(params.method in METHODS, f"unknown interpolation method {params.method!r}; choose from "
                                        f"{', '.join(METHODS)}.")
        synth = recording.synthesized
        check(not synth, "this video already contains synthesized frames (an output of interpolate); interpolate "
                         "the measured recording instead.")
        if params.weights:
            from ..interpolate.files import load_interpolator

            load_interpolator(params.weights)   # refuses a missing, foreign or pickled file in one sentence

    def compute(self, recording: Any, params: InterpolateParams, *, rois: Sequence[Any] = ()
                ) -> Generator[Progress, None, Any]:
        from ..interpolate.core import iter_interpolate

        got = yield from iter_interpolate(
            recording.transmission, recording.fps, factor=params.factor, method=params.method,
            engine=params.flow_engine, finetune_epochs=params.finetune_epochs, steps_per_epoch=params.steps_per_epoch,
            max_minutes=params.max_minutes, heldout_every=params.heldout_every, max_heldout=params.max_heldout,
            weights=params.weights, seed=params.seed, threads=params.threads)
        yield Progress("interpolate", 1.0, f"done in {got.timings_s['total']:.0f} s")
        warnings = list(got.warnings)
        dtype = np.dtype(got.frames.dtype)
        if written_dtype(dtype) != dtype and not np.can_cast(dtype, np.float32, "safe"):  # float32 is not exact
            warnings.append(f"the {dtype} video is written as float32 (ImageJ cannot open {dtype} TIFFs), so its "
                            "measured frames are kept to float32 precision, not bit for bit.")
        return InterpolateResult(params=params, source=dict(recording.provenance), timings_s=got.timings_s,
                                 warnings=warnings, fps=recording.fps * params.factor, factor=params.factor,
                                 frames=got.frames, uncertainty=got.uncertainty, measured=got.measured,
                                 evaluation=got.evaluation, training=got.training,
                                 pixel_size_um=recording.pixel_size_um)

    def result_record(self, result: InterpolateResult) -> dict[str, Any]:
        """(An exact reconstruction's PSNR, +inf, is written as null: strict JSON has no infinity.)"""
        m = result.measured
        return {"contains_synthesized_frames": True, "factor": result.factor, "fps": result.fps,
                "fps_in": result.fps / result.factor, "frame_interval_s": 1.0 / result.fps,
                "n_frames": int(m.size), "n_measured": int(m.sum()), "n_synthesized": int((~m).sum()),
                "frame_shape": list(result.frames.shape[1:]) if result.frames is not None else None,
                "evaluation": finite_or_none(result.evaluation), "training": result.training,
                "note": "frames whose measured flag is 0 in synthesized.csv are synthesized, not measured; "
                        "analyze refuses this video unless --use-interpolated is given"}

    def fields_from_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        fields = {"factor": int(rec.get("factor", 2)), "evaluation": dict(rec.get("evaluation", {})),
                  "training": dict(rec.get("training", {}))}
        if "fps" in rec:
            fields["fps"] = float(rec["fps"])
        return fields

    def layer_data(self, result: InterpolateResult) -> list[tuple[Any, dict[str, Any], str]]:
        from .._layers import META_KEY

        measured = [bool(v) for v in result.measured]
        meta = {META_KEY: {"role": "result", "tool": self.name, "measured": measured, "factor": result.factor,
                           "contains_synthesized_frames": True}}
        out: list[tuple[Any, dict[str, Any], str]] = []
        if result.frames is not None:
            sample = np.asarray(result.frames[:: max(1, result.n_frames // 20)], np.float32)
            lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.9]))
            out.append((result.frames, {"name": f"interpolated x{result.factor} (synthesized frames)",
                                        "colormap": "gray", "contrast_limits": (lo, hi if hi > lo else lo + 1),
                                        "metadata": meta, "time_stretch": result.factor}, "image"))
        if result.uncertainty is not None:
            hi = float(np.percentile(result.uncertainty[~result.measured], 99.5)) if (~result.measured).any() else 1.0
            out.append((result.uncertainty, {"name": "interpolation uncertainty", "colormap": "magma",
                                             "contrast_limits": (0.0, hi or 1.0), "visible": False, "metadata": meta,
                                             "time_stretch": result.factor}, "image"))
        return out
