"""The output folder's layout, described once: :data:`ANALYSIS_LAYOUT` writes and reads an analysis.

Each :class:`Entry` knows the files of one kind of result and how they map to fields
of :class:`~napari_micromotion.results.Results` (or, for tools, of their own result
type): :meth:`Entry.write` puts them into a folder, :meth:`Entry.read` fills a
dict of fields back from one.  :func:`napari_micromotion.export.write_results` and
:func:`napari_micromotion.results_io.read_results` only loop over the table, so a
file cannot be written one way and read another.  Methods add their own files
(models) through :meth:`~napari_micromotion.methods.base.Method.save` and
:meth:`~napari_micromotion.methods.base.Method.restore`; region maps go where the
method's ``region_map_path`` says.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import safe_name
from .errors import MicromotionError, check
from .results import WHOLE_FIELD, BeatRateRow, BeatRow, LimitRow, RegionMap, ScoreRow

__all__ = ["Entry", "ImageEntry", "MapsEntry", "TableEntry", "TracesEntry", "RegionMapsEntry", "ANALYSIS_LAYOUT",
           "safe_name", "write_csv", "read_csv", "read_tif", "fmt", "layout_rows", "imagej_video_meta",
           "pixel_size_meta"]


def fmt(v: Any) -> Any:
    """A CSV cell: floats with 7 significant digits, NaN as ``nan``."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return f"{v:.7g}"
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_csv(path: Path, rows: Sequence[Any], columns: Sequence[str]) -> None:
    """Write rows (typed rows or dicts) as CSV with the given column order."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            w.writerow([fmt(row.get(c, "")) for c in columns])


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file (one-sentence error if it is empty or unreadable)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MicromotionError(f"{path.name} is not a readable CSV file ({str(exc)[:80]}).") from None
    check(rows, f"{path.name} is empty.")
    return rows[0], rows[1:]


def write_frame_table(path: Path, columns: list[str], table: np.ndarray) -> None:
    """A per-frame CSV: *columns* as header, the first column written as the integer frame, the rest via :func:`fmt`."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in table:
            w.writerow([int(row[0])] + [fmt(v) for v in row[1:]])


def read_number_table(path: Path, number: Any = float) -> tuple[list[str], np.ndarray] | None:
    """Header and ``(rows, columns)`` float64 values of a numeric CSV (``None`` if there is no file).

    *number* converts one cell (``float``: a cell that is not a number is an error).
    """
    if not path.is_file():
        return None
    header, rows = read_csv(path)
    return header, np.array([[number(v) for v in row] for row in rows], np.float64).reshape(len(rows), len(header))


def read_tif(path: Path, with_meta: bool = False) -> Any:
    """A TIFF as float32 (and its shaped metadata), or a one-sentence error."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            data = np.asarray(tf.asarray(), np.float32)
            meta = (tf.shaped_metadata or [{}])[0] or {}
    except Exception as exc:
        raise MicromotionError(f"{path} is not a readable TIFF ({str(exc)[:80]}).") from None
    return (data, dict(meta)) if with_meta else data


def pixel_size_meta(pixel_size_um: float | None, *, imagej: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metadata, keywords)`` that record the pixel size in a ``tifffile.imwrite`` call; both empty when unknown.

    ImageJ TIFFs (*imagej*) get ``unit=um`` and pixels per micrometre, so Fiji measures in
    micrometres; plain TIFFs (whose description is tifffile's JSON, e.g. a ``(C, Y, X)`` stack with
    its channel names) get pixels per centimetre with the TIFF unit CENTIMETER, which ImageJ and
    :func:`~napari_micromotion.io.read_recording` read as well.
    """
    try:
        px_um = float(pixel_size_um) if pixel_size_um else 0.0
    except (TypeError, ValueError):
        px_um = 0.0
    if not (math.isfinite(px_um) and px_um > 0):
        return {}, {}
    if imagej:
        return {"unit": "um"}, {"resolution": (1.0 / px_um, 1.0 / px_um)}
    return {}, {"resolution": (1e4 / px_um, 1e4 / px_um), "resolutionunit": "CENTIMETER"}


def _write_tif(path: Path, data: np.ndarray, pixel_size_um: float | None = None, **meta: Any) -> None:
    """A float32 TIFF with *meta*; with a known pixel size, a 2D image is an ImageJ TIFF in micrometres (a ``unit``
    in *meta*, the unit of the values, becomes ImageJ's ``vunit``) and a stack keeps its JSON metadata and gets the
    TIFF resolution tags."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data, np.float32)
    scale, kwargs = pixel_size_meta(pixel_size_um)
    if kwargs and data.ndim == 2:
        value_unit = meta.pop("unit", None)
        ij = {"axes": "YX", **meta, **({"vunit": value_unit} if value_unit else {}), **scale}
        tifffile.imwrite(path, data, imagej=True, metadata=ij, **kwargs)
        return
    _, kwargs = pixel_size_meta(pixel_size_um, imagej=False)
    tifffile.imwrite(path, data, metadata=meta or None, photometric="minisblack" if data.ndim == 3 else None,
                     **kwargs)


class Entry:
    """One kind of file in an output folder (``path``: its name pattern, ``what``: a description)."""

    path: str
    what: str

    def write(self, results: Any, folder: Path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, folder: Path, fields: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ImageEntry(Entry):
    """One float32 image (``maps/still.tif``) <-> one array field (``None`` is not written); the pixel size
    (``results.pixel_size_um``), when known, is written so that Fiji measures the image in micrometres."""

    path: str
    field: str
    what: str = ""

    def write(self, results: Any, folder: Path) -> None:
        data = getattr(results, self.field)
        if data is not None:
            _write_tif(folder / self.path, data, getattr(results, "pixel_size_um", None))

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        p = folder / self.path
        if p.is_file():
            fields[self.field] = read_tif(p)


def imagej_video_meta(fps: float | None, pixel_size_um: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metadata, keywords)`` for ``tifffile.imwrite(..., imagej=True)`` of a ``(T, Y, X)`` video: the frame
    interval and, when known, the pixel size, so that Fiji and :func:`~napari_micromotion.io.read_recording`
    read them back."""
    meta: dict[str, Any] = {"axes": "TYX"}
    if fps and fps > 0:
        meta["finterval"] = 1.0 / float(fps)
    scale, kwargs = pixel_size_meta(pixel_size_um)
    return {**meta, **scale}, kwargs


@dataclass
class VideoEntry(ImageEntry):
    """A float32 ``(T, Y, X)`` video as an ImageJ TIFF that records the frame interval (``results.fps``) and, when
    known, the pixel size (``results.pixel_size_um``), so Fiji and ``micromotion analyze`` read them back."""

    def write(self, results: Any, folder: Path) -> None:
        import tifffile

        data = getattr(results, self.field)
        if data is None:
            return
        meta, kwargs = imagej_video_meta(getattr(results, "fps", None), getattr(results, "pixel_size_um", None))
        (folder / self.path).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / self.path, np.asarray(data, np.float32), imagej=True, metadata=meta, **kwargs)


@dataclass
class MapsEntry(Entry):
    """One image per key of a dict field (``scores/{method}.tif`` <-> ``score_maps``), with the pixel size as
    :class:`ImageEntry` writes it."""

    path: str
    field: str
    what: str = ""
    unit: str | None = None

    def write(self, results: Any, folder: Path) -> None:
        for key, arr in getattr(results, self.field).items():
            meta = {"method": key, **({"unit": self.unit} if self.unit else {})}
            _write_tif(folder / self.path.format(method=key), arr, getattr(results, "pixel_size_um", None), **meta)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        sub = folder / Path(self.path).parent
        pattern = Path(self.path).name.replace("{method}", "*")
        fields[self.field] = {p.stem: read_tif(p) for p in sorted(sub.glob(pattern))} if sub.is_dir() else {}


@dataclass
class TableEntry(Entry):
    """A CSV file <-> a list of typed rows (their fields are the columns)."""

    path: str
    field: str
    row: type
    what: str = ""
    always: bool = True            # written even when empty (header only)

    def write(self, results: Any, folder: Path) -> None:
        rows = getattr(results, self.field)
        if rows or self.always:
            write_csv(folder / self.path, rows, self.row.column_names())

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        p = folder / self.path
        if not p.is_file():
            return
        header, rows = read_csv(p)
        key = self.row.column_names()[0]
        check(key in header, f"{p.name} has no {key!r} column; it is not a table micromotion wrote.")
        k = header.index(key)
        fields[self.field] = [self.row.from_text(dict(zip(header, r))) for r in rows if len(r) > k and r[k].strip()]


class TracesEntry(Entry):
    """``traces.csv``: ``frame,time_s,fluorescence``, then per ROI ``<roi>/<method>``, ``<roi>/<method>_sd``,
    ``<roi>/fluorescence``, ``<roi>/motion_energy``, ``<roi>/displacement_px`` (the contraction trace, when
    the beats come from contraction); last the whole field's ``motion_energy`` (and ``displacement_px``)."""

    path = "traces.csv"
    what = "ROI traces of every method and the ground truth, per frame"

    @staticmethod
    def table(results: Any) -> tuple[list[str], np.ndarray]:
        """Column names and a ``(T, n_columns)`` float64 table of every trace."""
        cols = ["frame", "time_s", "fluorescence"]
        data = [np.arange(results.n_frames, dtype=np.float64), results.time_s(),
                results.truth.astype(np.float64) if results.truth is not None else np.full(results.n_frames, np.nan)]
        methods = results.traced_methods()
        for name in results.roi_names:
            for m in methods:
                tr = results.roi_traces.get((name, m))
                if tr is not None:
                    cols.append(f"{name}/{m}")
                    data.append(np.asarray(tr, dtype=np.float64))
                sd = results.roi_sd.get((name, m))
                if sd is not None:
                    cols.append(f"{name}/{m}_sd")
                    data.append(np.asarray(sd, dtype=np.float64))
            if name in results.roi_truth:
                cols.append(f"{name}/fluorescence")
                data.append(np.asarray(results.roi_truth[name], dtype=np.float64))
            if name in results.motion_traces:
                cols.append(f"{name}/motion_energy")
                data.append(np.asarray(results.motion_traces[name], dtype=np.float64))
            if name in results.contraction_traces:
                cols.append(f"{name}/displacement_px")
                data.append(np.asarray(results.contraction_traces[name], dtype=np.float64))
        if WHOLE_FIELD in results.motion_traces:
            cols.append("motion_energy")
            data.append(np.asarray(results.motion_traces[WHOLE_FIELD], dtype=np.float64))
        if WHOLE_FIELD in results.contraction_traces:
            cols.append("displacement_px")
            data.append(np.asarray(results.contraction_traces[WHOLE_FIELD], dtype=np.float64))
        return cols, np.column_stack(data)

    def write(self, results: Any, folder: Path) -> None:
        write_frame_table(folder / self.path, *self.table(results))

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        def num(v: str) -> float:
            try:
                return float(v)
            except ValueError:
                return float("nan")

        read = read_number_table(folder / self.path, num)
        if read is None:
            return
        header, table = read
        methods = set(fields.get("methods") or [])
        traces: dict[tuple[str, str], np.ndarray] = {}
        sds: dict[tuple[str, str], np.ndarray] = {}
        roi_truth: dict[str, np.ndarray] = {}
        motion: dict[str, np.ndarray] = {}
        contraction: dict[str, np.ndarray] = {}
        for j, col in enumerate(header):
            values = table[:, j].astype(np.float32)
            if col == "fluorescence":
                fields["truth"] = None if np.isnan(values).all() else values
            elif col == "motion_energy":
                motion[WHOLE_FIELD] = values
            elif col == "displacement_px":
                contraction[WHOLE_FIELD] = values
            elif "/" in col:
                roi, series = col.split("/", 1)
                if series == "fluorescence":
                    roi_truth[roi] = values
                elif series == "motion_energy":
                    motion[roi] = values
                elif series == "displacement_px":
                    contraction[roi] = values
                elif series.endswith("_sd") and (series[:-3] in methods or not methods):
                    sds[(roi, series[:-3])] = values
                else:
                    traces[(roi, series)] = values
        fields.update(roi_traces=traces, roi_sd=sds, roi_truth=roi_truth, motion_traces=motion,
                      contraction_traces=contraction)
        fields.setdefault("n_frames", table.shape[0])


class RegionMapsEntry(Entry):
    """Region methods' maps per ROI at the method's ``region_map_path`` (``weights/{roi}.tif``), with their box."""

    path = "weights/{roi}.tif"
    what = "dense weights (3, h, w) of each ROI's 3D network, placed by the box in their metadata"

    @staticmethod
    def _pattern(method: str) -> str:
        from .methods import METHODS

        m = METHODS.get(method)
        return (m.region_map_path if m is not None and m.region_map_path else f"maps/{method}/{{roi}}.tif")

    def write(self, results: Any, folder: Path) -> None:
        for (method, roi), rm in results.region_maps.items():
            _write_tif(folder / self._pattern(method).format(roi=safe_name(roi)), rm.data,
                       getattr(results, "pixel_size_um", None), roi=roi, method=method,
                       box_row0_row1_col0_col1=list(rm.box), axes="CYX")

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        out: dict[tuple[str, str], RegionMap] = {}
        warnings = fields.setdefault("warnings", [])
        for method in fields.get("methods") or []:
            pattern = self._pattern(method)
            sub = folder / Path(pattern).parent
            if not sub.is_dir():
                continue
            for p in sorted(sub.glob(Path(pattern).name.replace("{roi}", "*"))):
                data, meta = read_tif(p, with_meta=True)
                box = meta.get("box_row0_row1_col0_col1")
                if box is None or data.ndim != 3:
                    warnings.append(f"{p.name}: no ROI box in its metadata; not shown.")
                    continue
                out[(str(meta.get("method", method)), str(meta.get("roi", p.stem)))] = \
                    RegionMap(tuple(int(v) for v in box), data)
        fields["region_maps"] = out


#: The files of an analysis output folder (run.json, models and report.png are written around them).
ANALYSIS_LAYOUT: list[Entry] = [
    MapsEntry("scores/{method}.tif", "score_maps", "float32 (Y, X) score map over the validation frames"),
    MapsEntry("lags/{method}.tif", "lag_maps", "float32 (Y, X) lag at the maximum in seconds (delay map)", unit="s"),
    ImageEntry("maps/still.tif", "still", "mean transmission image"),
    ImageEntry("maps/energy.tif", "energy_map", "band-pass RMS of dI/I per pixel (works without fluorescence)"),
    ImageEntry("maps/activity.tif", "activity_map", "fluorescence activity: score of each fluorescence pixel"),
    RegionMapsEntry(),
    TableEntry("roi_scores.csv", "roi_scores", ScoreRow, "score, lag and p-value per ROI and method"),
    TracesEntry(),
    TableEntry("beats.csv", "beats", BeatRow, "beat times and RR intervals per ROI and source"),
    TableEntry("beat_rates.csv", "beat_rates", BeatRateRow, "rate (bpm), RR SD, RMSSD per ROI and source"),
    TableEntry("limits.csv", "limits", LimitRow, "shot-noise floor and smallest detectable displacement per ROI",
               always=False),
]


def layout_rows(layout: Sequence[Entry]) -> list[tuple[str, str]]:
    """``(path, description)`` of each entry (for documentation)."""
    return [(e.path, e.what) for e in layout]

