"""Reading recordings: TIFF stacks, ImageJ hyperstacks, OME-TIFF, TIFF folders, videos.

The entry point is :func:`read_recording`, which returns a validated
:class:`~napari_micromotion.recording.Recording`.  :func:`read_stack` reads one
file or folder and reports its axes and metadata without choosing channels.

Rules
-----
* Uncompressed, contiguous TIFF data is memory-mapped read-only (``mode="r"``);
  everything else is read once into memory, after checking that the size the
  header declares fits the memory budget (no huge allocation from a bad header).
* Frame rate comes from, in this order: the ``fps`` argument, OME ``TimeIncrement``
  (or the planes' ``DeltaT``), ImageJ ``finterval`` (in its time unit ``tunit``) or,
  with a warning, ImageJ's animation speed ``fps``, a sidecar (``videoinfos.txt`` in
  the folder, or ``<file>.json``), a video container.  Pixel size likewise from
  the argument, OME ``PhysicalSizeX``, TIFF resolution tags with an ImageJ unit,
  or the sidecar.  The provenance says which (``fps_from``, ``pixel_size_from``).
* Units the reader does not know are not guessed: the value is left out, with a warning.
* Input files are never written to.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import MicromotionError, check, check_folder
from .recording import FADE_IN_WORDS, Recording

__all__ = [
    "StackInfo",
    "read_stack",
    "read_recording",
    "read_image",
    "read_image_with_metadata",
    "select_channel",
    "natural_key",
    "repeated_frames",
    "frame_list",
    "default_memory_budget",
    "file_checksum",
    "TIFF_SUFFIXES",
    "VIDEO_SUFFIXES",
]

TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".tf8")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv")
TRACE_SUFFIXES = (".csv", ".txt", ".tsv")
#: video codecs (FFmpeg's names) that keep every grey level: uncompressed AVI (ImageJ's, many cameras'), FFV1, PNG...
LOSSLESS_CODECS = ("rawvideo", "ffv1", "png", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "qtrle", "tiff", "zlib",
                   "lagarith", "v210", "v410", "r210")
LOSSY_WARNING = (
    "{name} is a compressed video ({codec}); lossy codecs smear and quantise the "
    "sub-pixel intensity changes that micromotion produces, so record raw TIFF where you can."
)

_UNIT_TO_UM = {
    "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3,
    "cm": 1e4, "m": 1e6, "meter": 1e6, "pm": 1e-6, "\u00c5": 1e-4, "\u212b": 1e-4,
}
_TIME_TO_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
              "millisecond": 1e-3, "milliseconds": 1e-3, "us": 1e-6, "µs": 1e-6, "\u03bcs": 1e-6, "usec": 1e-6,
              "microsecond": 1e-6, "microseconds": 1e-6, "min": 60.0, "minute": 60.0, "minutes": 60.0,
              "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0, "ns": 1e-9}


def default_memory_budget() -> int:
    """Bytes a single in-memory array may take: 60% of physical memory (env ``MICROMOTION_MEMORY_BUDGET``)."""
    env = os.environ.get("MICROMOTION_MEMORY_BUDGET")
    if env:
        try:
            budget = int(float(env))
        except ValueError:
            raise MicromotionError(f"MICROMOTION_MEMORY_BUDGET={env!r} is not a number of bytes.") from None
        check(budget > 0, f"MICROMOTION_MEMORY_BUDGET={env!r} must be a positive number of bytes.")
        return budget
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    return int(total * 0.6)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256", chunk_bytes: int = 1 << 22) -> str:
    """Hex digest of a file, or of what a folder of frames is read from (its TIFF frames in natural order and its
    ``videoinfos.txt``), so that notes, a licence or hidden files beside the frames do not change it."""
    p = Path(path)
    h = hashlib.new(algorithm)
    files = sorted((f for f in p.iterdir() if _is_frame_file(f) or (f.name == "videoinfos.txt" and f.is_file())),
                   key=lambda f: natural_key(f.name)) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(chunk_bytes):
                h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


@dataclass
class StackInfo:
    """One image stack as read from disk, before choosing channels.

    Attributes
    ----------
    data
        Array with axes ``axes`` (``"TYX"`` or ``"TCYX"``); may be a read-only memmap.
    axes
        Axis letters of ``data``.
    fps, pixel_size_um
        Metadata, ``None`` when the file does not say.
    channel_names
        Names of the channels (``[]`` for single-channel data).
    source
        Path read.
    metadata
        What else was found (format, sidecar, warnings, memory-mapped or not).
    """

    data: np.ndarray
    axes: str
    fps: float | None = None
    pixel_size_um: float | None = None
    channel_names: list[str] = field(default_factory=list)
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        return self.data.shape[self.axes.index("C")] if "C" in self.axes else 1


# ---------------------------------------------------------------- sidecars
def _read_sidecar(path: Path) -> dict[str, Any]:
    """fps / pixel size from ``videoinfos.txt`` (OpenHeartWare style) or ``<file>.json``."""
    candidates = []
    folder = path if path.is_dir() else path.parent
    candidates.append(folder / "videoinfos.txt")
    if path.is_file():
        candidates.append(path.with_name(path.name + ".json"))
        candidates.append(path.with_suffix(".json"))
    for cand in candidates:
        if not cand.is_file():
            continue
        text = cand.read_text(errors="replace").strip()
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            try:
                info = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                warnings.warn(f"ignoring sidecar {cand.name}: neither JSON nor a Python dict literal", stacklevel=3)
                continue
        if not isinstance(info, dict):
            continue
        out: dict[str, Any] = {"sidecar": str(cand)}
        for name, keys in (("fps", ("fps", "frame_rate", "framerate")),
                           ("pixel_size_um", ("pixel_size_um", "microns_per_pixel", "um_per_px"))):
            key = next((k for k in keys if info.get(k) is not None), None)     # null: not recorded
            if key is None:
                continue
            value = info[key]
            ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
            try:
                number = float(value) if ok else math.nan
            except ValueError:
                number = math.nan
            check(math.isfinite(number) and number > 0,
                  f"sidecar {cand.name} gives {key} = {value!r}; it must be a positive number (fix or remove the file).")
            out[name] = number
        return out
    return {}


# ---------------------------------------------------------------- TIFF
def _normalise_axes(data: np.ndarray, axes: str, source: str) -> tuple[np.ndarray, str]:
    """Reduce tifffile's axes to ``TYX`` or ``TCYX`` (views only, no copies)."""
    axes = axes.upper()
    if "S" in axes and data.shape[axes.index("S")] > 1:
        raise MicromotionError(
            f"{source} holds RGB/multi-sample pixels (axes {axes}, shape {data.shape}); "
            "a grey-level video is needed."
        )
    # drop singleton axes other than Y and X
    index: list[Any] = []
    kept = ""
    for ax, n in zip(axes, data.shape):
        if n == 1 and ax not in "YX":
            index.append(0)
        else:
            index.append(slice(None))
            kept += ax
    data = data[tuple(index)]
    # the time axis may be labelled T, or Z / I / Q for plain stacks
    time_like = [ax for ax in kept if ax in "TZIQ"]
    if len(time_like) > 1:
        raise MicromotionError(
            f"{source} has several stack axes ({kept}, shape {data.shape}); "
            "only one time axis (plus optional channels) can be analysed."
        )
    other = [ax for ax in kept if ax not in "TZIQCYX"]
    if other:
        raise MicromotionError(f"{source} has unsupported axes {kept} (shape {data.shape}).")
    if not time_like:
        raise MicromotionError(
            f"{source} holds a single image of shape {data.shape}; a time series of frames is needed."
        )
    kept = kept.replace(time_like[0], "T")
    if kept not in ("TYX", "TCYX", "CTYX"):
        raise MicromotionError(f"{source} has axes {kept}; expected TYX, TCYX or CTYX.")
    if kept == "CTYX":
        data = np.moveaxis(data, 0, 1)
        kept = "TCYX"
    return data, kept


def _imagej_fps(ij: dict[str, Any], name: str, meta: dict[str, Any]) -> float | None:
    """Frame rate from ImageJ metadata: ``finterval`` in ImageJ's time unit ``tunit`` (seconds when absent), else
    ``fps``.  A time unit this reader does not know gives ``None`` and a warning in ``meta["warnings"]``."""
    if ij.get("finterval"):
        unit = str(ij.get("tunit") or "sec").encode().decode("unicode_escape").strip()
        scale = _TIME_TO_S.get(unit.lower()) or _TIME_TO_S.get(unit)
        if scale is None:
            msg = (f"{name} gives its frame interval as {ij['finterval']} {unit!r}, a time unit this reader does not "
                   "know; its frame rate is not used, so give it yourself (--fps).")
            warnings.warn(msg, UserWarning, stacklevel=4)
            meta.setdefault("warnings", []).append(msg)
            return None
        try:
            interval_s = float(ij["finterval"]) * scale
        except (TypeError, ValueError):
            return None
        if not (math.isfinite(interval_s) and interval_s > 0):
            return None
        meta["fps_from"] = f"ImageJ frame interval ({float(ij['finterval']):.6g} {unit})"
        return 1.0 / interval_s
    if ij.get("fps"):
        # ImageJ writes 'fps' for the speed a stack plays at (Animation Options), which may not be the camera's
        meta["fps_from"] = "ImageJ fps (its animation speed)"
        msg = (f"{name} gives no frame interval, only ImageJ's animation speed ({float(ij['fps']):g} fps), which is "
               "taken as the frame rate; check it, or give the rate yourself (--fps).")
        warnings.warn(msg, UserWarning, stacklevel=4)
        meta.setdefault("warnings", []).append(msg)
        return float(ij["fps"])
    return None


def _imagej_pixel_size(tf: Any) -> float | None:
    ij = tf.imagej_metadata or {}
    page = tf.pages[0]
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    if not num or not den:
        return None
    px_per_unit = num / den
    unit = str(ij.get("unit", "")).encode().decode("unicode_escape") if ij.get("unit") else ""
    unit = unit.strip().lower()
    if unit in _UNIT_TO_UM:
        return _UNIT_TO_UM[unit] / px_per_unit
    res_unit = page.tags.get("ResolutionUnit")
    if res_unit is not None and int(res_unit.value) == 3 and not ij:  # centimetre, plain TIFF
        return 1e4 / px_per_unit
    return None


def _ome_metadata(xml: str) -> dict[str, Any]:
    out: dict[str, Any] = {"channel_names": []}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return out
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None)
    if pixels is None:
        return out

    def number(key: str, unit_key: str, default_unit: str, table: dict[str, float]) -> float | None:
        """*key* in the units of *table*; ``None`` (with a warning) for a unit or value this reader cannot use."""
        text, unit = pixels.get(key), pixels.get(unit_key, default_unit)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if unit not in table or not (math.isfinite(value) and value > 0):
            out.setdefault("warnings", []).append(f"its OME {key} = {text!r} {unit} is not used (not a positive "
                                                  "length or time in a unit this reader knows).")
            return None
        return value * table[unit]

    dt = number("TimeIncrement", "TimeIncrementUnit", "s", _TIME_TO_S)
    if dt:
        out["fps"] = 1.0 / dt
    else:
        plane_times = _ome_plane_times(pixels)
        out.update({k: v for k, v in plane_times.items() if k != "warnings"})
        out.setdefault("warnings", []).extend(plane_times.get("warnings", []))
    px = number("PhysicalSizeX", "PhysicalSizeXUnit", "µm", _UNIT_TO_UM)
    if px:
        out["pixel_size_um"] = px
    for ch in pixels:
        if ch.tag.endswith("Channel"):
            out["channel_names"].append(ch.get("Name") or ch.get("ID") or "")
    return out


def _ome_plane_times(pixels: ET.Element) -> dict[str, Any]:
    """Frame rate from the planes' ``DeltaT`` (what Bio-Formats and Micro-Manager write instead of
    ``TimeIncrement``): the median interval between frames of the first channel and plane, with a warning when the
    intervals vary by more than 10 %."""
    times: dict[int, float] = {}
    for plane in pixels:
        if not plane.tag.endswith("Plane") or plane.get("DeltaT") is None:
            continue
        if plane.get("TheC", "0") != "0" or plane.get("TheZ", "0") != "0":
            continue
        text, unit = plane.get("DeltaT"), plane.get("DeltaTUnit", "s")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if unit not in _TIME_TO_S:
            return {"warnings": [f"its OME plane times (DeltaT) are in {unit!r}, a unit this reader does not know; "
                                 "they are not used."]}
        if not math.isfinite(value):
            return {"warnings": [f"its OME plane time DeltaT = {text!r} is not a number; the plane times are not "
                                 "used."]}
        try:
            times[int(plane.get("TheT", "0"))] = value * _TIME_TO_S[unit]
        except ValueError:
            return {}
    if len(times) < 2:
        return {}
    steps = np.diff([times[t] for t in sorted(times)])
    dt = float(np.median(steps))
    if not (math.isfinite(dt) and dt > 0):
        return {}
    out: dict[str, Any] = {"fps": 1.0 / dt, "fps_from": "OME plane times (DeltaT)"}
    if np.abs(steps - dt).max() > 0.1 * dt:
        out["warnings"] = [f"the frame times (OME DeltaT) are irregular, {steps.min() * 1e3:.4g} to "
                           f"{steps.max() * 1e3:.4g} ms apart: frames were dropped or the timing jittered; the median "
                           f"interval ({dt * 1e3:.4g} ms, {1 / dt:.4g} fps) is used."]
    return out


#: key of the ImageJ metadata of ``interpolate``'s output that marks a video containing synthesized frames
INTERPOLATED_KEY = "micromotion_interpolated"


def synthesized_marker(path: str | os.PathLike, imagej_metadata: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What marks *path* as containing synthesized (interpolated) frames, or ``None``.

    ``micromotion interpolate`` writes the ImageJ key :data:`INTERPOLATED_KEY` into
    ``interpolated.tif``; a file named ``interpolated.tif`` with a ``synthesized.csv`` beside it
    (e.g. re-saved without the metadata) counts too.
    """
    ij = imagej_metadata or {}
    if str(ij.get(INTERPOLATED_KEY, "")).lower() in ("true", "1"):
        return {"factor": int(ij.get("interpolation_factor", 0) or 0),
                "synthesized_frames": int(ij.get("synthesized_frames", 0) or 0), "marked_by": "tiff metadata"}
    p = Path(path)
    side = p.parent / "synthesized.csv"
    if p.name == "interpolated.tif" and side.is_file():
        try:
            flags = [ln.split(",")[2].strip() for ln in side.read_text().splitlines()[1:] if ln.count(",") >= 2]
        except (OSError, UnicodeDecodeError):
            flags = []
        return {"factor": 0, "synthesized_frames": sum(f == "0" for f in flags), "marked_by": "synthesized.csv beside it"}
    return None


def _read_tiff(path: Path, max_bytes: int) -> StackInfo:
    import tifffile

    meta: dict[str, Any] = {"format": "tiff"}
    try:
        tf = tifffile.TiffFile(path, mode="rb")
    except Exception as exc:  # tifffile raises many types for bad files
        raise MicromotionError(f"could not read {path.name} as a TIFF file ({_short(exc)}).") from None
    try:
        try:
            series = tf.series[0]
            shape, dtype, axes = tuple(series.shape), np.dtype(series.dtype), series.axes
        except Exception as exc:
            raise MicromotionError(f"{path.name} is not a readable TIFF image stack ({_short(exc)}).") from None
        nbytes = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
        file_size = path.stat().st_size
        fps = pixel = None
        names: list[str] = []
        if tf.is_ome and tf.ome_metadata:
            ome = _ome_metadata(tf.ome_metadata)
            fps, pixel, names = ome.get("fps"), ome.get("pixel_size_um"), ome["channel_names"]
            meta["format"] = "ome-tiff"
            if fps:
                meta["fps_from"] = ome.get("fps_from", "OME TimeIncrement")
            for msg in ome.get("warnings", []):
                msg = f"{path.name}: {msg}"
                warnings.warn(msg, UserWarning, stacklevel=3)
                meta.setdefault("warnings", []).append(msg)
            if pixel:
                meta["pixel_size_from"] = "OME PhysicalSizeX"
        if tf.is_imagej:
            ij = tf.imagej_metadata or {}
            meta["format"] = "imagej-tiff"
            announced = int(ij.get("images", 0) or 0)
            n_planes = int(np.prod(shape[: len(shape) - 2 - ("S" in axes)], dtype=np.int64)) if len(shape) > 2 else 1
            check(announced <= 1 or n_planes >= announced,
                  f"{path.name} is truncated or corrupt: its ImageJ header announces {announced} images "
                  f"but the file holds {n_planes}.")
            marker = synthesized_marker(path, ij)
            if marker:
                meta["synthesized_frames"] = marker
            if not fps:
                fps = _imagej_fps(ij, path.name, meta)
            labels = ij.get("Labels") or ij.get("labels")
            if isinstance(labels, (list, tuple)) and "C" in axes:
                names = names or [str(s) for s in labels[: shape[axes.index("C")]]]
        if not pixel:
            pixel = _imagej_pixel_size(tf)
            if pixel:
                meta["pixel_size_from"] = "TIFF resolution tags"
        offset = series.dataoffset
        if offset is not None:
            check(
                offset + nbytes <= file_size,
                f"{path.name} is truncated or corrupt: its header promises {nbytes:,} bytes of pixels "
                f"but the file holds {max(file_size - offset, 0):,}.",
            )
            try:
                data = tifffile.memmap(path, series=0, mode="r")
            except Exception as exc:
                raise MicromotionError(f"could not memory-map {path.name} ({_short(exc)}).") from None
            meta["memory_mapped"] = True
        else:
            _check_compressed_sizes(tf, path)
            if nbytes <= max_bytes:
                try:
                    data = series.asarray()
                except Exception as exc:
                    raise MicromotionError(f"{path.name} is truncated or corrupt ({_short(exc)}).") from None
                meta["memory_mapped"] = False
            else:  # larger than the memory budget: decode page by page into a scratch file
                data = _decode_to_scratch(tf, series, path, shape, dtype, nbytes)
                meta["memory_mapped"] = True
                meta["scratch_copy"] = str(getattr(data, "filename", ""))
    finally:
        tf.close()
    if "S" in axes.upper() and data.shape[axes.upper().index("S")] in (3, 4):
        data, axes = _grey_from_samples(data, axes, path.name, meta, max_bytes)
    try:
        data, axes = _normalise_axes(data, axes, path.name)
    except MicromotionError as exc:
        siblings = [f for f in path.parent.iterdir() if _is_frame_file(f)]
        if "single image" not in str(exc) or len(siblings) < 2:
            raise
        # one frame of a series saved as one file per frame: the video is the folder
        raise MicromotionError(f"{str(exc).rstrip('.')}; it is one of {len(siblings)} TIFF files in "
                               f"{path.parent.name}, so open that folder to read them as one video.") from None
    return StackInfo(data, axes, fps, pixel, names, str(path), meta)


def _grey_from_samples(data: np.ndarray, axes: str, name: str, meta: dict[str, Any],
                       max_bytes: int) -> tuple[np.ndarray, str]:
    """An RGB(A) TIFF as grey levels: one sample when the three colours are equal (a grey video saved as RGB, a
    view), else their mean (as :func:`read_image` takes a colour image), with a warning in ``meta``."""
    s = axes.upper().index("S")
    rgb = np.moveaxis(data, s, -1)[..., :3]
    out_axes = axes[:s] + axes[s + 1:]
    lead = list(np.ndindex(rgb.shape[:-3]))       # compared plane by plane: no full-size temporaries
    if all(np.array_equal(rgb[i][..., 0], rgb[i][..., c]) for i in lead for c in (1, 2)):
        meta["rgb"] = "grey stored as 3 equal colour samples; one is used"
        return rgb[..., 0], out_axes
    nbytes = int(np.prod(rgb.shape[:-1], dtype=np.float64)) * 4
    check(nbytes <= max_bytes, f"{name} is a colour (RGB) stack whose grey levels take {nbytes / 2**30:.1f} GiB, more "
          "than the memory budget; convert it to grey (ImageJ: Image > Type > 16-bit) and save it again.")
    grey = np.empty(rgb.shape[:-1], np.float32)
    for i in lead:
        grey[i] = rgb[i].mean(axis=-1, dtype=np.float32)
    msg = (f"{name} holds colour (RGB) pixels; they are averaged to grey levels. If one colour holds the signal, "
           "split the channels (ImageJ: Image > Color > Split Channels) and open that one.")
    warnings.warn(msg, UserWarning, stacklevel=4)
    meta.setdefault("warnings", []).append(msg)
    meta["rgb"] = "colour samples averaged"
    return grey, out_axes


#: largest plausible ratio of decoded to compressed page bytes; beyond it the header lies
_MAX_COMPRESSION_RATIO = 1e5


def _check_compressed_sizes(tf: Any, path: Path) -> None:
    """Refuse headers whose declared page size no real compressed stream could produce."""
    page = tf.pages[0]
    counts = getattr(page, "databytecounts", None) or ()
    stored = int(sum(counts))
    declared = int(np.prod(page.shape, dtype=np.float64) * np.dtype(page.dtype).itemsize)
    if stored <= 0 or declared / stored > _MAX_COMPRESSION_RATIO:
        raise MicromotionError(
            f"{path.name} is corrupt: its first page claims {page.shape} pixels ({declared / 2**20:,.0f} MiB) "
            f"from {stored:,} stored bytes."
        )


def scratch_dir() -> Path:
    """Where large decoded stacks are spilled (``MICROMOTION_SCRATCH`` or the system temp folder)."""
    import tempfile

    env = os.environ.get("MICROMOTION_SCRATCH")
    if env:
        check_folder(env, "MICROMOTION_SCRATCH")
        return Path(env)
    return Path(tempfile.gettempdir())


def _decode_to_scratch(tf: Any, series: Any, path: Path, shape: tuple[int, ...], dtype: np.dtype,
                       nbytes: int) -> np.ndarray:
    """Decode a compressed stack that exceeds the memory budget into a read-only scratch memmap."""
    import shutil
    import tempfile

    folder = scratch_dir()
    free = shutil.disk_usage(folder).free
    check(nbytes < 0.9 * free,
          f"{path.name} decodes to {nbytes / 2**30:.1f} GiB, more than the memory budget, and the scratch folder "
          f"{folder} has only {free / 2**30:.1f} GiB free; set MICROMOTION_SCRATCH or save the file uncompressed.")
    fd, name = tempfile.mkstemp(prefix="micromotion-", suffix=".raw", dir=folder)
    os.close(fd)
    try:
        out = np.memmap(name, dtype=dtype, mode="w+", shape=shape)
        flat = out.reshape(-1, *series.keyframe.shape) if len(series.pages) > 1 else out.reshape(1, *out.shape)
        for k, page in enumerate(series.pages):
            flat[k] = page.asarray()
        out.flush()
        del out, flat
        ro = np.memmap(name, dtype=dtype, mode="r", shape=shape)
    except Exception as exc:
        os.unlink(name)
        raise MicromotionError(f"{path.name} is truncated or corrupt ({_short(exc)}).") from None
    os.unlink(name)  # the mapping stays valid; the space is freed when the array goes away (POSIX)
    return ro


def _is_frame_file(f: Path) -> bool:
    """Whether *f* is a TIFF a folder of frames is read from: not hidden (macOS's ``._frame_1.tif`` AppleDouble
    companions are not frames)."""
    return f.name.lower().endswith(TIFF_SUFFIXES) and not f.name.startswith(".") and f.is_file()


def _holds_tiffs(folder: Path) -> bool:
    """Whether *folder* holds a frame file (:func:`_is_frame_file`); ``False`` when it cannot be listed."""
    try:
        return any(_is_frame_file(f) for f in folder.iterdir())
    except OSError:
        return False


def _read_tiff_folder(folder: Path, max_bytes: int) -> StackInfo:
    import tifffile

    files = sorted((f for f in folder.iterdir() if _is_frame_file(f)), key=lambda f: natural_key(f.name))
    if not files:
        inner = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and _holds_tiffs(d)),
                       key=lambda d: natural_key(d.name))
        where = (f"; its subfolder {inner[0].name} does: give {inner[0]}" if len(inner) == 1 else
                 f"; its subfolders {', '.join(d.name for d in inner[:4])}{', ...' if len(inner) > 4 else ''} do: "
                 "give one of them" if inner else "")
        raise MicromotionError(f"folder {folder} holds no .tif/.tiff files{where}.")
    first = _read_tiff_page(files[0])
    check(first.ndim == 2, f"{files[0].name} is not a single 2D frame (shape {first.shape}); "
          "a folder must hold one frame per file.")
    nbytes = len(files) * first.nbytes
    check(nbytes <= max_bytes, f"folder {folder.name} holds {nbytes / 2**30:.1f} GiB of frames, more than the "
          f"memory budget of {max_bytes / 2**30:.1f} GiB.")
    data = np.empty((len(files), *first.shape), dtype=first.dtype)
    data[0] = first
    for i, f in enumerate(files[1:], start=1):
        frame = _read_tiff_page(f)
        check(frame.shape == first.shape and frame.dtype == first.dtype,
              f"{f.name} is {frame.shape} {frame.dtype} but {files[0].name} is {first.shape} {first.dtype}; "
              "all frames of a folder must match.")
        data[i] = frame
    fps = pixel = None
    meta: dict[str, Any] = {"format": "tiff-folder", "files": len(files), "first": files[0].name,
                            "last": files[-1].name, "memory_mapped": False}
    try:
        with tifffile.TiffFile(files[0]) as tf:
            if tf.is_imagej:
                fps = _imagej_fps(tf.imagej_metadata or {}, files[0].name, meta)
            pixel = _imagej_pixel_size(tf)
            if pixel:
                meta["pixel_size_from"] = f"TIFF resolution tags of {files[0].name}"
    except Exception:  # metadata is optional; the pixels were readable
        pass
    return StackInfo(data, "TYX", fps, pixel, [], str(folder), meta)


def _read_tiff_page(path: Path) -> np.ndarray:
    import tifffile

    try:
        arr = tifffile.imread(path)
    except Exception as exc:
        raise MicromotionError(f"could not read {path.name} as a TIFF frame ({_short(exc)}).") from None
    return np.squeeze(arr)


# ---------------------------------------------------------------- video
def _read_video(path: Path, max_bytes: int, interleaved: int = 1) -> StackInfo:
    try:
        import imageio.v3 as iio
    except ImportError:
        raise MicromotionError(
            f"reading {path.suffix} videos needs the optional 'video' extra: pip install 'napari-micromotion[video]'."
        ) from None
    try:
        meta_raw = iio.immeta(path)
        frames = iio.imread(path)
    except Exception as exc:
        raise MicromotionError(f"could not decode video {path.name} ({_short(exc)}).") from None
    check(frames.nbytes <= max_bytes, f"video {path.name} decodes to {frames.nbytes / 2**30:.1f} GiB, more than "
          "the memory budget.")
    if frames.ndim == 4:
        if frames.shape[-1] >= 3 and np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(
                frames[..., 0], frames[..., 2]):
            frames = frames[..., 0]
        else:
            rgb = frames[..., :3].astype(np.float32)
            frames = (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)
    codec = str(meta_raw.get("codec", "unknown codec"))
    meta = {"format": "video", "codec": codec, "warnings": [], "memory_mapped": False,
            "lossless": codec.lower() in LOSSLESS_CODECS}
    if not meta["lossless"]:
        msg = LOSSY_WARNING.format(name=path.name, codec=codec)
        warnings.warn(msg, UserWarning, stacklevel=3)
        meta["warnings"].append(msg)
    fps = meta_raw.get("fps")
    if fps:
        meta["fps_from"] = f"video container ({codec})"
    repeats = repeated_frames(frames).tolist()
    if repeats and len(repeats) < len(frames) - 1:       # a still video is not re-timed, it just does not move
        shown = frame_list(repeats)
        rate = f"{float(fps):g} fps" if fps else "frame"
        dup = (f"{path.name} repeats {len(repeats)} of its {len(frames)} frames exactly (frames {shown} copy the frame "
               f"before): it was re-timed or dropped frames, so its {rate} clock is not the camera's and times, rates "
               "and intervals measured from it are off; use the original recording or frames without repeats (--frames).")
        warnings.warn(dup, UserWarning, stacklevel=3)
        meta["warnings"].append(dup)
        meta["repeated_frames"] = repeats
    means = frames.mean(axis=(1, 2))
    fade = _fade_in_frames(means)
    if fade:
        # with interleaved channels --frames counts each channel's frames (the file's frames k n ... k n + n - 1)
        n = max(1, int(interleaved))
        first, last = -(-fade // n), len(frames) // n
        whose = "" if n == 1 else f" of each of its {n} interleaved channels"
        msg = (f"{path.name}{FADE_IN_WORDS}its first {fade} frames are darker than the rest (mean grey level "
               f"{means[0]:.3g} rising to {float(np.median(means)):.3g}), as an edited clip does; "
               f"that change is not motion, so analyse from frame {first}{whose} on (--frames {first}:{last}).")
        warnings.warn(msg, UserWarning, stacklevel=3)
        meta["warnings"].append(msg)
        meta["fade_in_frames"] = first
    return StackInfo(np.ascontiguousarray(frames), "TYX", float(fps) if fps else None, None, [], str(path), meta)


def repeated_frames(video: Any, chunk: int = 64) -> np.ndarray:
    """Frames that are exact copies of the frame before them (indices >= 1), read *chunk* frames at a time.

    A re-timed or frame-dropping export repeats camera frames to fill its clock; a camera never
    records two identical noisy frames.
    """
    n = int(video.shape[0])
    out: list[int] = []
    prev = None
    for a in range(0, n, chunk):
        block = np.asarray(video[a:a + chunk])
        if prev is not None and np.array_equal(block[0], prev):
            out.append(a)
        same = (block[1:] == block[:-1]).reshape(block.shape[0] - 1, -1).all(axis=1)
        out.extend((a + 1 + np.nonzero(same)[0]).tolist())
        prev = block[-1]
    return np.asarray(out, int)


def frame_list(frames: Sequence[int], limit: int = 8) -> str:
    """The first *limit* of *frames* for a message, ``"12, 15, 28, ..."``."""
    return ", ".join(map(str, list(frames)[:limit])) + (", ..." if len(frames) > limit else "")


def _fade_in_frames(means: np.ndarray, level: float = 0.95) -> int:
    """How many leading frames (of mean grey levels *means*) are darker than *level* x the median (a fade-in from
    black, as edited clips start); 0 when fewer than two are, or the dark start covers half of the video or more."""
    median = float(np.median(means))
    n = 0
    while n < len(means) and means[n] < level * median:
        n += 1
    return n if 2 <= n < len(means) // 2 else 0


def check_interleaved(n: Any) -> None:
    """One sentence unless *n* is a channel count :func:`read_stack` can de-interleave (1: none, up to 16)."""
    check(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and 1 <= n <= 16,
          f"interleaved channels must be a whole number from 1 (none) to 16, got {n!r}.")


def _deinterleave(info: StackInfo, n: int, name: str) -> None:
    """Make a ``TYX`` stack of *n* channels taken in turn a ``TCYX`` one (in place, a view of the same data)."""
    check(info.axes == "TYX", f"{name} already holds {info.n_channels} channels on their own axis; interleaved "
          "channels are for a file whose channels alternate frame by frame.")
    data = info.data
    total = int(data.shape[0])
    usable = total - total % n
    check(usable >= 2 * n, f"{name} has {total} frames, too few to hold {n} interleaved channels.")
    if usable < total:
        extra = total - usable
        msg = (f"{name} has {total} frames, not a whole number of cycles of {n} interleaved channels; its last "
               f"{extra} frame{'s' if extra > 1 else ''} (an incomplete cycle) {'are' if extra > 1 else 'is'} left out.")
        warnings.warn(msg, UserWarning, stacklevel=4)
        info.metadata.setdefault("warnings", []).append(msg)
    info.data = data[:usable].reshape(usable // n, n, *data.shape[1:])
    info.axes = "TCYX"
    info.channel_names = []
    if info.fps:
        info.fps = info.fps / n
        info.metadata["fps_from"] = (f"{info.metadata.get('fps_from', 'metadata')}, divided by {n} interleaved "
                                     "channels")
    info.metadata["interleaved_channels"] = n


#: an alternation check looks at up to this many consecutive frames from the middle of the stack ...
ALTERNATION_FRAMES = 41
#: ... within a central crop of at most this many pixels a side
ALTERNATION_CROP_PX = 512
#: frames alternate when frames two apart differ (mean square) by less than this fraction of neighbours
ALTERNATION_RATIO = 0.5


def alternation_ratio(frames: Any) -> tuple[float, float, float]:
    """``(D2 / D1, D2, D1)``: median mean-square difference of frames two apart (D2) and of neighbours (D1).

    *frames* ``(T, Y, X)`` with ``T >= 4``.  A video of one scene has ``D2 >= D1`` (camera noise
    alike, and motion grows with the gap); a stack that interleaves two kinds of frame (two
    channels taken in turn, a re-timed clip) has frames two apart more alike than neighbours,
    ``D2 << D1``.  ``nan`` when neighbours do not differ at all.
    """
    prev2 = prev1 = None
    d1: list[float] = []
    d2: list[float] = []
    for frame in frames:
        f = np.asarray(frame, np.float32)
        if prev1 is not None:
            d1.append(float(np.mean((f - prev1) ** 2)))
        if prev2 is not None:
            d2.append(float(np.mean((f - prev2) ** 2)))
        prev2, prev1 = prev1, f
    m1, m2 = float(np.median(d1)), float(np.median(d2))
    return (m2 / m1 if m1 > 0 else float("nan")), m2, m1


def _warn_if_alternating(info: StackInfo, name: str) -> None:
    """Warn (and record ``metadata["alternating_frames"]``) when the stack's frames alternate (two interleaved
    channels saved as one time series, or a re-timed clip); see :func:`alternation_ratio`."""
    data = info.data
    n = int(data.shape[0]) if data.ndim >= 3 else 0
    if n < 6:
        return
    m = min(n, ALTERNATION_FRAMES)
    start = (n - m) // 2
    starts = [max(0, (size - ALTERNATION_CROP_PX) // 2) for size in data.shape[-2:]]
    ys, xs = (slice(a, a + ALTERNATION_CROP_PX) for a in starts)       # a central crop
    channels = range(data.shape[1]) if info.axes == "TCYX" else [None]
    for c in channels:
        frames = (data[start + k, ys, xs] if c is None else data[start + k, c, ys, xs] for k in range(m))
        ratio, d2, d1 = alternation_ratio(frames)
        if not ratio < ALTERNATION_RATIO:
            continue
        where = "" if c is None else f" (channel {info.channel_names[c] if c < len(info.channel_names) else c})"
        msg = (f"{name}{where}: its frames alternate: each frame is more like the one two before it than like its "
               f"neighbours (mean square difference {d2:.3g} against {d1:.3g}, frames {start}-{start + m - 1}), as a "
               "stack that interleaves two channels taken in turn (or a re-timed clip) is; motion, beats and rates "
               "read from it are wrong, so read it as two interleaved channels (--interleaved 2) or split it "
               "first (ImageJ: Image > Stacks > Tools > Deinterleave).")
        warnings.warn(msg, UserWarning, stacklevel=3)
        info.metadata.setdefault("warnings", []).append(msg)
        info.metadata["alternating_frames"] = {"ratio": round(ratio, 4), "frames": [start, start + m]}
        return


# ---------------------------------------------------------------- public API
def read_stack(path: str | os.PathLike, max_bytes: int | None = None, *, interleaved: int = 1) -> StackInfo:
    """Read one stack (file or folder of frames) with its metadata.

    Parameters
    ----------
    path
        A TIFF/OME-TIFF/ImageJ file, a folder of single-frame TIFFs, or a video file.
    max_bytes
        Largest array that may be loaded into memory (memory-mapped data is exempt).
        Defaults to :func:`default_memory_budget`.
    interleaved
        Number of channels taken in turn and saved as one time series (frame ``k`` belongs to
        channel ``k mod interleaved``); with 2 or more the stack is returned as ``TCYX`` (a
        view of the same data), its recorded frame rate divided by that number (each channel's).

    Raises
    ------
    MicromotionError
        Missing, unreadable, truncated or unsupported input.
    """
    p = Path(path)
    budget = default_memory_budget() if max_bytes is None else int(max_bytes)
    check_interleaved(interleaved)
    if not p.exists():
        raise MicromotionError(f"{p} does not exist.")
    if not os.access(p, os.R_OK):
        raise MicromotionError(f"{p} is not readable (permission denied).")
    name = p.name.lower()
    if p.is_dir():
        info = _read_tiff_folder(p, budget)
    elif name.endswith(TIFF_SUFFIXES):
        info = _read_tiff(p, budget)
    elif name.endswith(VIDEO_SUFFIXES):
        info = _read_video(p, budget, interleaved)
    else:
        raise MicromotionError(
            f"{p.name} has an unsupported type; use a TIFF stack, a folder of TIFF frames or a video "
            f"({', '.join(VIDEO_SUFFIXES)})."
        )
    if interleaved > 1:
        _deinterleave(info, int(interleaved), p.name)
    _warn_if_alternating(info, p.name)
    side = _read_sidecar(p)
    if side:
        info.metadata["sidecar"] = side["sidecar"]
        for key, what in (("fps", "fps_from"), ("pixel_size_um", "pixel_size_from")):
            if not getattr(info, key) and side.get(key):
                split = interleaved if key == "fps" else 1     # the file's frame rate, shared by the channels
                setattr(info, key, side[key] / split)
                info.metadata[what] = f"sidecar {Path(side['sidecar']).name}" + (
                    f", divided by {split} interleaved channels" if split > 1 else "")
    return info


#: channel names (lower case, any part) that say brightfield/transmission, and fluorescence
_TRANSMISSION_WORDS = ("brightfield", "bright field", "bright-field", "transmission", "transmitted", "trans", "dic",
                       "phase", "bf", "ph3", "tl")
_FLUORESCENCE_WORDS = ("gcamp", "cal", "fluo", "fura", "oregon", "rhod", "ca2", "calcium", "gfp", "fitc", "rcamp",
                       "jrgeco", "fl")


def _channel_by_name(names: Sequence[str], what: str) -> int:
    """The default channel for *what*: the one named like brightfield (transmission), or like a calcium dye
    (fluorescence), when the file names its channels so; else 0 for transmission."""
    def looks(name: str, words: Sequence[str]) -> bool:
        tokens = re.split(r"[^a-z0-9]+", name.lower())
        return any(w in name.lower() if " " in w or "-" in w else (w in tokens or (len(w) > 3 and w in name.lower()))
                   for w in words)

    names = [str(n) for n in (names or [])]
    trans = [i for i, n in enumerate(names) if looks(n, _TRANSMISSION_WORDS)]
    fluo = [i for i, n in enumerate(names) if looks(n, _FLUORESCENCE_WORDS)]
    if what == "transmission":
        if len(trans) == 1:
            return trans[0]
        if len(fluo) == 1 and len(names) == 2:
            return 1 - fluo[0]
    return 0


def select_channel(info: StackInfo, channel: int | str | None, what: str = "transmission") -> tuple[np.ndarray, int | None]:
    """Pick one ``(T, Y, X)`` channel of *info* by index or name (a view, never a copy).

    Returns the array and the channel index used (``None`` for single-channel data).
    """
    if "C" not in info.axes:
        if channel not in (None, 0, "0"):
            raise MicromotionError(f"{Path(info.source).name} has a single channel; cannot select channel {channel!r} for {what}.")
        return info.data, None
    n = info.n_channels
    if channel is None:
        idx = _channel_by_name(info.channel_names, what)
    elif isinstance(channel, (int, np.integer)) or (isinstance(channel, str) and channel.lstrip("-").isdigit()):
        idx = int(channel)
        check(-n <= idx < n, f"channel {idx} does not exist for {what}; {Path(info.source).name} has {n} channels.")
        idx %= n
    else:
        names = [s.lower() for s in info.channel_names]
        check(str(channel).lower() in names,
              f"no channel named {channel!r} for {what}; channels are {info.channel_names or list(range(n))}.")
        idx = names.index(str(channel).lower())
    return info.data[:, idx], idx


def read_trace(path: str | os.PathLike) -> np.ndarray:
    """Read a 1D fluorescence trace from a CSV/TXT file (one value per frame).

    A header line is allowed; with several columns the one named ``fluorescence``
    (or else the last) is used.
    """
    p = Path(path)
    try:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise MicromotionError(f"could not read trace {p.name} ({_short(exc)}).") from None
    except UnicodeDecodeError:
        raise MicromotionError(f"trace file {p.name} is not text (one number per line, or CSV).") from None
    check(lines, f"trace file {p.name} is empty.")
    delim = next((d for d in (",", "\t", ";") if d in lines[0]), None)
    header = lines[0].split(delim)
    has_header = any(not _is_number(tok) for tok in header)
    col = -1
    if has_header:
        names = [h.strip().lower() for h in header]
        col = names.index("fluorescence") if "fluorescence" in names else len(names) - 1
        lines = lines[1:]
    if len(header) > 1 and not (has_header and "fluorescence" in names):
        which = f"the last, {header[-1].strip()!r}" if has_header else "the last"
        warnings.warn(f"{p.name} has {len(header)} columns; {which} is taken as the fluorescence trace (name a "
                      "column 'fluorescence' to choose it).", UserWarning, stacklevel=2)
    try:
        values = np.array([float(ln.split(delim)[col]) for ln in lines], dtype=np.float64)
    except (ValueError, IndexError):
        raise MicromotionError(f"trace file {p.name} has a non-numeric or missing value.") from None
    check(np.isfinite(values).all(), f"trace file {p.name} contains NaN or infinite values.")
    return values


def read_recording(
    transmission: str | os.PathLike,
    fluorescence: str | os.PathLike | None = None,
    *,
    channel: int | str | None = None,
    fluorescence_channel: int | str | None = None,
    fps: float | None = None,
    pixel_size_um: float | None = None,
    max_bytes: int | None = None,
    interleaved: int = 1,
) -> Recording:
    """Read a recording from disk.

    Parameters
    ----------
    transmission
        Transmission stack (TIFF, OME-TIFF, ImageJ hyperstack, TIFF folder, video).  A
        two-channel file may hold both channels.
    fluorescence
        Separate fluorescence stack, or a CSV/TXT trace (one value per frame).
        ``None`` with a two-channel *transmission* file takes the other channel.
    channel, fluorescence_channel
        Channel index or name in multi-channel files (default for transmission: the channel
        named like brightfield, or the other of one named like a calcium dye in a two-channel
        file, else 0; for fluorescence: the other channel of a two-channel file).
    fps
        Frame rate in frames per second; overrides (and is checked against) the file's metadata.
    pixel_size_um
        Pixel size in micrometres; overrides the file's metadata.
    max_bytes
        Memory budget for data that cannot be memory-mapped.
    interleaved
        The *transmission* file holds this many channels taken in turn (frame ``k`` is channel
        ``k mod interleaved``, e.g. brightfield and fluorescence with alternating light): it is
        read as that many channels, chosen as in a multi-channel file (default: channel 0 the
        transmission, channel 1 the fluorescence of two).  *fps* is then each channel's frame
        rate, and a rate the file records is divided by *interleaved*.  The fluorescence frames
        are taken a fraction of a frame after the transmission ones; delays are counted in
        frames of the channels.

    Returns
    -------
    Recording
    """
    check(isinstance(transmission, (str, os.PathLike)),
          f"read_recording takes a file or folder path, got {type(transmission).__name__}; wrap arrays in "
          "Recording(video, fps) instead.")
    for name, value in (("fps", fps), ("pixel size (um)", pixel_size_um)):
        if value is not None:
            try:
                ok = not isinstance(value, bool) and math.isfinite(float(value)) and float(value) > 0
            except (TypeError, ValueError):
                ok = False
            check(ok, f"{name} must be a positive number, got {value!r}.")
    info = read_stack(transmission, max_bytes, interleaved=interleaved)
    trans, t_idx = select_channel(info, channel, "transmission")
    prov: dict[str, Any] = {
        "transmission": {"path": str(Path(transmission).resolve()), "channel": t_idx, "axes": info.axes,
                         **info.metadata},
        "warnings": list(info.metadata.get("warnings", [])),
    }

    def warn(text: str) -> None:
        """A warning of the recording as a whole: in its provenance, and said (as the readers' own are)."""
        warnings.warn(text, UserWarning, stacklevel=3)
        prov["warnings"].append(text)

    if channel is None and t_idx:      # chosen by the channels' names, not by position: say so
        warn(f"channel {t_idx} ({info.channel_names[t_idx]!r}) of {Path(transmission).name} is "
             "taken as the transmission (brightfield) by its name; choose the channel to override.")
    fl = None
    if fluorescence is not None:
        fpath = Path(fluorescence)
        if fpath.is_file() and fpath.name.lower().endswith(TRACE_SUFFIXES):
            fl = read_trace(fpath)
            prov["fluorescence"] = {"path": str(fpath.resolve()), "kind": "trace"}
        else:
            finfo = read_stack(fpath, max_bytes)
            fl, f_idx = select_channel(finfo, fluorescence_channel, "fluorescence")
            prov["fluorescence"] = {"path": str(fpath.resolve()), "channel": f_idx, "axes": finfo.axes,
                                    **finfo.metadata}
            prov["warnings"] += finfo.metadata.get("warnings", [])
            if info.fps and finfo.fps and abs(info.fps - finfo.fps) > 1e-3 * info.fps:
                raise MicromotionError(
                    f"transmission is recorded at {info.fps:g} fps but fluorescence at {finfo.fps:g} fps; "
                    "both channels must share one frame clock."
                )
            if not info.fps and finfo.fps:
                info.fps = finfo.fps
                prov["transmission"]["fps_from"] = f"{fpath.name}: {finfo.metadata.get('fps_from', 'metadata')}"
    elif "C" in info.axes:
        n = info.n_channels
        if fluorescence_channel is not None:
            fl, f_idx = select_channel(info, fluorescence_channel, "fluorescence")
        elif n == 2:
            f_idx = 1 - (t_idx or 0)
            fl = info.data[:, f_idx]
        else:
            raise MicromotionError(
                f"{Path(transmission).name} has {n} channels; choose which one is the fluorescence.",
                cli=f"{Path(transmission).name} has {n} channels; say which one is fluorescence (--fluorescence-channel).")
        check(f_idx != t_idx, "transmission and fluorescence cannot be the same channel.")
        prov["fluorescence"] = {"path": prov["transmission"]["path"], "channel": f_idx}
    for key in ("transmission", "fluorescence"):
        marker = (prov.get(key) or {}).get("synthesized_frames")
        if marker is None and key in prov and prov[key].get("path"):
            marker = synthesized_marker(prov[key]["path"])
        if marker:
            prov["synthesized_frames"] = {**marker, "channel": key}
            break
    rate = fps if fps is not None else info.fps
    if rate is None:
        raise MicromotionError(
            f"{Path(transmission).name} does not record its frame rate; enter it (frames per second).",
            cli=f"{Path(transmission).name} does not record its frame rate; give it with --fps.")
    if fps is not None and info.fps and abs(float(fps) - info.fps) > 1e-3 * info.fps:
        said = prov["transmission"].get("fps_from", "its metadata")
        warn(f"frame rate {float(fps):g} fps given; {Path(transmission).name} says {info.fps:g} fps ({said}).")
    prov["fps_source"] = "user" if fps is not None else "metadata"
    px = pixel_size_um if pixel_size_um is not None else info.pixel_size_um
    # where each number came from, in words: 'user', or the metadata field, sidecar or container that gave it
    prov["fps_from"] = "user" if fps is not None else prov["transmission"].get("fps_from", "metadata")
    prov["pixel_size_from"] = ("user" if pixel_size_um is not None else
                               prov["transmission"].get("pixel_size_from", "metadata") if px is not None else None)
    try:
        return Recording(transmission=trans, fps=rate, fluorescence=fl, pixel_size_um=px, provenance=prov)
    except MicromotionError as exc:
        # name the file, not the slot: a tool reads a fluorescence video into the recording's first slot too
        def named(text: str | None) -> str | None:
            return f"{Path(transmission).name} {text[len('transmission '):]}" if text and text.startswith(
                "transmission ") else text

        raise MicromotionError(named(str(exc)), named(exc.cli)) from None


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def read_image(path: str | os.PathLike, frame: int = 0) -> np.ndarray:
    """One grey-level image ``(Y, X)`` as float32: a single image (TIFF, PNG, JPEG) or frame *frame* of a stack.

    Colour images are averaged over their channels.
    """
    return read_image_with_metadata(path, frame)[0]


def read_image_with_metadata(path: str | os.PathLike, frame: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`read_image` and what the file says besides its pixels, from the same reading: ``pixel_size_um``
    (``None`` when it does not say) and the reader's ``warnings`` (a lossy video, ...; none for plain images)."""
    meta: dict[str, Any] = {"pixel_size_um": None, "warnings": []}
    p = Path(path)
    check(isinstance(frame, (int, np.integer)) and not isinstance(frame, bool),
          f"the frame must be a whole number, got {frame!r}.")
    check(p.exists(), f"{p} does not exist.")
    check(os.access(p, os.R_OK), f"{p} is not readable (permission denied).")
    name = p.name.lower()
    if p.is_dir() or name.endswith(TIFF_SUFFIXES + VIDEO_SUFFIXES):
        try:
            info = read_stack(p)
            data, _ = select_channel(info, None)
            check(0 <= frame < data.shape[0],
                  f"frame {frame} does not exist; {p.name} has {data.shape[0]} frames (0 to {data.shape[0] - 1}).")
            meta = {"pixel_size_um": info.pixel_size_um, "warnings": list(info.metadata.get("warnings", []))}
            return np.asarray(data[frame], np.float32), meta
        except MicromotionError as exc:
            # a single grey image, or colour (RGB) pixels, which a video may not have but an image may
            if not any(k in str(exc) for k in ("single image", "RGB/multi-sample")) or not name.endswith(TIFF_SUFFIXES):
                raise
            import tifffile

            img = np.asarray(tifffile.imread(p))
            if img.ndim == 4 and img.shape[-1] in (3, 4):     # a stack of colour frames
                check(0 <= frame < img.shape[0],
                      f"frame {frame} does not exist; {p.name} has {img.shape[0]} frames (0 to {img.shape[0] - 1}).")
                img, frame = img[frame], 0
    else:
        try:
            import imageio.v3 as iio

            img = np.asarray(iio.imread(p))
        except Exception as exc:
            raise MicromotionError(f"{p.name} is not a readable image ({_short(exc)}).") from None
    check(frame == 0, f"{p.name} holds a single image; there is no frame {frame}.")
    while img.ndim > 2 and img.shape[0] == 1:     # a stack of one frame
        img = img[0]
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].mean(axis=-1)
    check(img.ndim == 2, f"{p.name} has shape {img.shape}; a grey-level image (Y, X) is needed.")
    check(np.isfinite(img).all(), f"{p.name} has NaN or infinite pixels.")
    return np.asarray(img, np.float32), meta
