"""Regions of interest: polygons with a kind, their files, and their pixel masks.

File format (what the napari widget saves and loads)::

    [{"name": "cell A", "kind": "strong", "polygon": [[row, col], ...]}, ...]

Coordinates are in pixels of the full frame, ``row`` then ``col``, with pixel
centres at integer coordinates (napari's convention).  ImageJ ``.roi`` files and
``RoiSet.zip`` archives are read and written with :mod:`roifile` (ImageJ puts pixel
corners at integers, so its coordinates are shifted by half a pixel).

A pixel belongs to an ROI when its centre lies inside the polygon.  ROIs become
masks once, in :func:`rasterize`; everything downstream takes the
:class:`RoiMasks` it returns.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .atomic import atomic_write
from .errors import MicromotionError, check, check_file

__all__ = ["KINDS", "KIND_COLOURS", "ROI", "RoiMasks", "read_rois", "write_rois", "rasterize", "roi_mask", "parse_rois",
           "as_rois"]

#: Allowed ROI kinds: test regions of the paper (Fig. 3f) plus anything else.
KINDS = ("strong", "weak", "silent", "other")
#: one colour per kind, for the napari layers and the reports alike (each at least 3.5:1 against napari's dark and
#: light theme backgrounds and against white paper)
KIND_COLOURS = {"strong": "#e6550d", "weak": "#3182bd", "silent": "#238b45", "other": "#8c6bb1"}
_MAX_ROI_FILE_BYTES = 64 << 20


@dataclass(frozen=True)
class ROI:
    """A named polygon region, or a composite of several polygons.

    Parameters
    ----------
    name
        Unique, non-empty label (used in column names such as ``<name>/cnn1d``).
    kind
        One of :data:`KINDS`.
    polygon
        ``(N, 2)`` vertices as ``(row, col)`` in pixels, N >= 3, not self-intersecting.
    parts
        Further outlines of a composite ROI (an ImageJ shape ROI: several pieces, or a piece with holes), each
        like *polygon*.  A pixel belongs to a composite ROI when its centre lies inside an odd number of its
        outlines (ImageJ's even-odd rule): separate pieces add up, an outline inside another is a hole.
    """

    name: str
    kind: str
    polygon: np.ndarray
    parts: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        check_roi_name(self.name)
        check(self.kind in KINDS, f"ROI {self.name!r} has unknown kind {self.kind!r}; use one of {', '.join(KINDS)}.")
        object.__setattr__(self, "polygon", _outline(self.name, self.polygon))
        try:
            parts = tuple(self.parts)
        except TypeError:
            raise MicromotionError(f"ROI {self.name!r}: parts must be a list of polygons.") from None
        object.__setattr__(self, "parts", tuple(_outline(self.name, p, k) for k, p in enumerate(parts, start=2)))

    @property
    def rings(self) -> tuple[np.ndarray, ...]:
        """All outlines: *polygon*, then *parts*."""
        return (self.polygon, *self.parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind,
                               "polygon": [[float(r), float(c)] for r, c in self.polygon]}
        if self.parts:
            out["parts"] = [[[float(r), float(c)] for r, c in p] for p in self.parts]
        return out

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(row_min, col_min, row_max, col_max)`` of all its outlines."""
        pts = np.concatenate(self.rings)
        r, c = pts[:, 0], pts[:, 1]
        return float(r.min()), float(c.min()), float(r.max()), float(c.max())


def _outline(name: str, polygon: Any, part: int | None = None) -> np.ndarray:
    """One outline of ROI *name* as a clean ``(N, 2)`` float array; one sentence if it cannot be a region.

    *part* (2, 3, ...) numbers the outlines of a composite ROI after the first, for the messages.
    """
    what = f"ROI {name!r}" if part is None else f"ROI {name!r} (part {part})"
    try:
        poly = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise MicromotionError(f"{what}: polygon must be a list of [row, col] pairs.") from None
    check(poly.ndim == 2 and poly.shape[1] == 2, f"{what}: polygon must be a list of [row, col] pairs.")
    if len(poly) > 1 and np.isfinite(poly).all():
        # a vertex given twice in a row (napari's double-click that ends a polygon adds one), and a
        # closed ring written with its first vertex repeated at the end
        # (within 1e-4 px: ImageJ stores polygons in float32, so an oval's closing vertex is off by ~2e-6)
        poly = poly[np.r_[True, np.abs(np.diff(poly, axis=0)).max(axis=1) > _SAME_VERTEX_PX]]
        if len(poly) > 3 and np.abs(poly[0] - poly[-1]).max() <= _SAME_VERTEX_PX:
            poly = poly[:-1]
    check(len(poly) >= 3, f"{what} has {len(poly)} vertices; a polygon needs at least 3.")
    check(np.isfinite(poly).all(), f"{what} has non-finite coordinates.")
    check(not self_intersects(poly), f"{what} is self-intersecting; draw its outline without crossings.")
    check(abs(polygon_area(poly)) > 1e-9, f"{what} has zero area.")
    return poly


#: vertices closer than this (px) are one vertex (napari's double-click; float32 round-off in ImageJ files)
_SAME_VERTEX_PX = 1e-4


def check_roi_name(name: Any) -> None:
    """Refuse a name that cannot label an ROI: empty, or with '/', ',' or a line break (they separate CSV columns)."""
    check(isinstance(name, str) and name.strip() != "", "every ROI needs a non-empty name.")
    check(not any(ch in name for ch in "/,\n\r"),
          f"ROI name {name!r} may not contain '/', ',' or line breaks (they separate CSV columns).")


def polygon_area(poly: np.ndarray) -> float:
    """Signed area (shoelace formula) in square pixels."""
    r, c = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(r, np.roll(c, -1)) - np.dot(c, np.roll(r, -1)))


def self_intersects(poly: np.ndarray) -> bool:
    """True if any two non-adjacent edges of the closed polygon cross or touch."""
    n = len(poly)
    a = poly
    b = np.roll(poly, -1, axis=0)
    for i in range(n):
        # compare edge i with edges j > i+1, skipping the edge adjacent through the wrap
        js = np.arange(i + 2, n)
        if i == 0:
            js = js[js != n - 1]
        if js.size == 0:
            continue
        p, q = a[i], b[i]
        r, s = a[js], b[js]
        d1 = _cross(r - p, q - p)
        d2 = _cross(s - p, q - p)
        d3 = _cross(p - r, s - r)
        d4 = _cross(q - r, s - r)
        proper = (d1 * d2 < 0) & (d3 * d4 < 0)
        if proper.any():
            return True
        # collinear overlaps / touching vertices
        for k in np.nonzero((d1 == 0) | (d2 == 0) | (d3 == 0) | (d4 == 0))[0]:
            if _segments_touch(p, q, r[k], s[k]):
                return True
    return False


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = np.atleast_2d(u)
    v = np.atleast_2d(v)
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _on_segment(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> bool:
    return (min(p[0], q[0]) - 1e-12 <= x[0] <= max(p[0], q[0]) + 1e-12
            and min(p[1], q[1]) - 1e-12 <= x[1] <= max(p[1], q[1]) + 1e-12
            and abs(float(_cross(q - p, x - p)[0])) <= 1e-12)


def _segments_touch(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> bool:
    return _on_segment(p, q, r) or _on_segment(p, q, s) or _on_segment(r, s, p) or _on_segment(r, s, q)


# ---------------------------------------------------------------- masks
@dataclass(frozen=True)
class RoiMasks:
    """ROIs rasterised on one frame size, computed once by :func:`rasterize`.

    Attributes
    ----------
    rois
        The ROIs, in order.
    masks
        ``(n_roi, Y, X)`` boolean masks.
    clipped
        What was cut off: one sentence per ROI that reaches past the frame.
    """

    rois: tuple[ROI, ...]
    masks: np.ndarray
    #: one sentence per ROI that reaches past the frame (clipped), for the warnings of the result that uses them
    clipped: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rois]

    @property
    def kinds(self) -> list[str]:
        return [r.kind for r in self.rois]

    @property
    def n_pixels(self) -> np.ndarray:
        return self.masks.reshape(len(self.rois), -1).sum(axis=1)

    def __len__(self) -> int:
        return len(self.rois)

    def weight_matrix(self, dtype: Any = np.float32) -> np.ndarray:
        """``(Y*X, n_roi)`` matrix that sums a flattened frame over each ROI (for GEMM)."""
        return self.masks.reshape(len(self.rois), -1).T.astype(dtype)

    def box(self, i: int) -> tuple[slice, slice]:
        """Tight bounding box (row slice, col slice) of mask *i*."""
        rows = np.nonzero(self.masks[i].any(axis=1))[0]
        cols = np.nonzero(self.masks[i].any(axis=0))[0]
        return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)

    def index(self, name: str) -> int:
        return self.names.index(name)


def polygon_mask(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside *poly* (``(row, col)`` vertices)."""
    from matplotlib.path import Path as MplPath

    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    r0 = max(int(np.floor(poly[:, 0].min())), 0)
    r1 = min(int(np.ceil(poly[:, 0].max())) + 1, ny)
    c0 = max(int(np.floor(poly[:, 1].min())), 0)
    c1 = min(int(np.ceil(poly[:, 1].max())) + 1, nx)
    if r1 <= r0 or c1 <= c0:
        return mask
    rr, cc = np.mgrid[r0:r1, c0:c1]
    pts = np.column_stack([rr.ravel(), cc.ravel()]).astype(np.float64)
    inside = MplPath(poly).contains_points(pts, radius=0.0)
    # contains_points is ambiguous exactly on edges; count edge points as inside
    if not inside.all():
        on_edge = MplPath(poly).contains_points(pts, radius=1e-9) | MplPath(poly).contains_points(pts, radius=-1e-9)
        inside |= on_edge
    mask[r0:r1, c0:c1] = inside.reshape(r1 - r0, c1 - c0)
    return mask


def roi_mask(roi: ROI, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels of *roi* on a frame of *shape* ``(Y, X)``: those whose centres lie inside an odd
    number of its outlines (one outline: inside its polygon, as :func:`polygon_mask`)."""
    mask = polygon_mask(roi.polygon, shape)
    for part in roi.parts:
        mask ^= polygon_mask(part, shape)
    return mask


#: how far (px) an ROI may reach past the frame's edge without a warning (an outline drawn onto the edge)
_EDGE_SLACK_PX = 1.0


def _area_outside(roi: ROI, frame_shape: tuple[int, int]) -> tuple[float, float, float]:
    """``(area, outside, past_slack)`` of *roi* in px²: all of it, the part outside the frame, and the part more
    than :data:`_EDGE_SLACK_PX` past the frame's edge (sampled on a grid of at most 0.25 px, ~1e6 points)."""
    from matplotlib.path import Path as MplPath

    ny, nx = frame_shape
    r0, c0, r1, c1 = roi.bbox
    step = max(0.25, float(np.sqrt((r1 - r0) * (c1 - c0) / 1e6)))
    rr = np.arange(r0 + step / 2, r1, step)
    cc = np.arange(c0 + step / 2, c1, step)
    pts = np.column_stack([np.repeat(rr, len(cc)), np.tile(cc, len(rr))])
    inside = np.zeros(len(pts), dtype=bool)
    for ring in roi.rings:
        inside ^= MplPath(ring).contains_points(pts)
    pts = pts[inside]

    def beyond(margin_px: float) -> int:
        lo = -0.5 - margin_px
        return int(((pts[:, 0] < lo) | (pts[:, 0] > ny - 1 - lo) | (pts[:, 1] < lo) | (pts[:, 1] > nx - 1 - lo)).sum())

    return len(pts) * step ** 2, beyond(0.0) * step ** 2, beyond(_EDGE_SLACK_PX) * step ** 2


def _clipping(roi: ROI, frame_shape: tuple[int, int]) -> str | None:
    """The warning when a meaningful part of *roi* (>= 1 px² and >= 1 % of it, beyond a 1 px slack) lies outside
    the frame, which the analysis ignores; ``None`` otherwise (an outline drawn onto the frame's edge passes)."""
    ny, nx = frame_shape
    r0, c0, r1, c1 = roi.bbox
    lo = -0.5 - _EDGE_SLACK_PX
    if r0 >= lo and c0 >= lo and r1 <= ny - 1 - lo and c1 <= nx - 1 - lo:
        return None
    area, outside, past = _area_outside(roi, frame_shape)
    if area > 0 and past >= 1.0 and past >= 0.01 * area:
        return (f"ROI {roi.name!r} reaches past the {ny} x {nx} px frame; {100 * outside / area:.0f} % of its "
                "area is outside and ignored (redraw it inside the frame to analyse all of it).")
    return None


def repeated_names(names: Sequence[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    from collections import Counter

    return sorted(n for n, count in Counter(names).items() if count > 1)


def rasterize(rois: Sequence[ROI], frame_shape: tuple[int, int]) -> RoiMasks:
    """Turn ROIs into masks on a frame of *frame_shape* ``(Y, X)``; refuse empty or outside ROIs.

    An ROI that reaches past the frame is clipped to it; :attr:`RoiMasks.clipped` names each such ROI and the
    share of its area left out (not for an outline drawn onto the frame's edge), for the warnings of the analysis
    or tool that uses the masks (a Python warning would be lost in a worker thread, and said again by every call).
    """
    from .atomic import safe_name
    from .results import WHOLE_FIELD

    names = [r.name for r in rois]
    dupes = repeated_names(names)
    check(not dupes, f"ROI names must be unique; repeated: {', '.join(dupes)}.")
    check(WHOLE_FIELD not in names, f"an ROI may not be called {WHOLE_FIELD!r}: that name stands for the whole field "
                                    "in the traces and beat tables; rename it.")
    files: dict[str, str] = {}
    for n in names:        # ROI names become file names (weights/<roi>.tif, models/...): they must stay apart
        other = files.setdefault(safe_name(n).lower(), n)
        check(other == n, f"the ROI names {other!r} and {n!r} become the same file name ({safe_name(n)}); "
                          "rename one.")
    ny, nx = frame_shape
    masks = np.zeros((len(rois), ny, nx), dtype=bool)
    clipped = []
    for i, roi in enumerate(rois):
        r0, c0, r1, c1 = roi.bbox
        check(not (r1 < -0.5 or c1 < -0.5 or r0 > ny - 0.5 or c0 > nx - 0.5),
              f"ROI {roi.name!r} lies outside the {ny} x {nx} px frame.")
        masks[i] = roi_mask(roi, frame_shape)
        check(masks[i].any(), f"ROI {roi.name!r} covers no pixel centre of the {ny} x {nx} px frame.")
        note = _clipping(roi, frame_shape)
        if note:
            clipped.append(note)
    return RoiMasks(tuple(rois), masks, tuple(clipped))


# ---------------------------------------------------------------- files
def parse_rois(obj: Any, source: str = "ROI data") -> list[ROI]:
    """Build ROIs from the JSON structure, with one-sentence errors for malformed data.

    A composite ROI's further outlines are in its optional ``"parts"`` (a list of polygons).
    """
    if isinstance(obj, dict) and "rois" in obj:
        obj = obj["rois"]
    check(isinstance(obj, list), f"{source} must be a JSON list of ROI objects.")
    rois = []
    for i, entry in enumerate(obj, start=1):
        check(isinstance(entry, dict), f"{source}: entry {i} is not an object with name, kind and polygon.")
        for key in ("name", "polygon"):
            check(key in entry, f"{source}: entry {i} has no {key!r}.")
        name = entry["name"]
        check(isinstance(name, str), f"{source}: entry {i} has a name that is not text.")
        poly = entry["polygon"]
        check(_is_point_list(poly), f"{source}: ROI {name!r} polygon must be a list of [row, col] number pairs.")
        parts = entry.get("parts", [])
        check(isinstance(parts, list) and all(_is_point_list(p) for p in parts),
              f"{source}: ROI {name!r} parts must be a list of polygons, each a list of [row, col] number pairs.")
        rois.append(ROI(name=name, kind=str(entry.get("kind", "other")), polygon=np.array(poly, dtype=float),
                        parts=tuple(np.array(p, dtype=float) for p in parts)))
    return rois


def _is_point_list(obj: Any) -> bool:
    """True for a JSON list of ``[row, col]`` number pairs."""
    return isinstance(obj, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in obj)


#: the ImageJ ROI property that holds an ROI's kind (strong, weak, ...) in ``.roi`` and ``RoiSet.zip`` files
KIND_PROPERTY = "micromotion_kind"


def as_rois(rois: Any) -> list[ROI]:
    """ROIs given to the Python API: :class:`ROI` objects, or the file format's dicts
    (``{"name", "kind", "polygon"}``, or ``{"rois": [...]}``); one sentence for anything else."""
    if rois is None:
        return []
    if isinstance(rois, ROI):
        return [rois]
    if isinstance(rois, dict):
        return parse_rois(rois, "the ROIs")
    check(not isinstance(rois, (str, bytes, os.PathLike)),
          f"ROIs must be ROI objects or dicts, got a path ({rois!s}); read them with read_rois first.")
    try:
        items = list(rois)
    except TypeError:
        raise MicromotionError(f"ROIs must be a list of ROI objects, got {type(rois).__name__}.") from None
    if all(isinstance(r, ROI) for r in items):
        return items
    check(all(isinstance(r, (ROI, dict)) for r in items),
          "ROIs must be a list of ROI objects or of {name, kind, polygon} dicts.")
    return [r if isinstance(r, ROI) else parse_rois([r], "the ROIs")[0] for r in items]


def _kind_from_name(name: str) -> str:
    low = name.lower()
    for kind in KINDS:
        if kind in low:
            return kind
    return "other"


def _read_imagej(path: Path) -> list[ROI]:
    try:
        import roifile
    except ImportError:  # pragma: no cover - roifile is a dependency
        raise MicromotionError("reading ImageJ ROIs needs the 'roifile' package.") from None
    if path.suffix.lower() == ".zip":
        items = _read_roiset(path, roifile)
    else:
        try:
            items = [roifile.ImagejRoi.fromfile(path)]
        except Exception as exc:
            raise MicromotionError(f"{path.name} is not a readable ImageJ ROI file ({str(exc)[:120]}).") from None
    rois = []
    for k, item in enumerate(items, start=1):
        name = item.name or f"roi{k}"
        not_area = _imagej_not_an_area(item, roifile)
        check(not_area is None, f"ROI {name!r} in {path.name} is {not_area}, not an area; "
                                "draw it as an oval, polygon or freehand ROI.")
        if item.composite:
            rings = _imagej_path_rings(np.asarray(item.multi_coordinates, dtype=np.float64), name, path.name)
        else:
            rings = [np.asarray(item.coordinates(), dtype=float)]
        check(all(xy.ndim == 2 and len(xy) for xy in rings), f"ROI {name!r} in {path.name} holds no outline.")
        kind = (item.properties or {}).get(KIND_PROPERTY) if isinstance(item.properties, dict) else None
        # ImageJ: integer coordinates are pixel corners; ours are pixel centres
        polys = [np.column_stack([xy[:, 1] - 0.5, xy[:, 0] - 0.5]) for xy in rings]
        polys.sort(key=lambda poly: -abs(polygon_area(poly)) if len(poly) >= 3 else 0.0)  # the largest first
        rois.append(ROI(name=name, kind=kind if kind in KINDS else _kind_from_name(name), polygon=polys[0],
                        parts=tuple(polys[1:])))
    return rois


def _imagej_not_an_area(item: Any, roifile: Any) -> str | None:
    """What an ImageJ ROI that is no area is ("a point selection", ...), or None for an area."""
    t = roifile.ROI_TYPE
    lines = {t.POINT: "a point selection", t.LINE: "a straight-line selection", t.POLYLINE: "a segmented-line selection",
             t.FREELINE: "a freehand-line selection", t.ANGLE: "an angle selection", t.NOROI: "an empty selection"}
    if item.roitype in lines:
        return lines[item.roitype]
    overlays = {roifile.ROI_SUBTYPE.TEXT: "a text label", roifile.ROI_SUBTYPE.IMAGE: "an image overlay"}
    return overlays.get(item.subtype)


#: straight segments per Bezier curve of an ImageJ shape ROI's path
_CURVE_SEGMENTS = 16


def _imagej_path_rings(path: np.ndarray, name: str, file_name: str) -> list[np.ndarray]:
    """The closed outlines ``(x, y)`` of an ImageJ composite (shape) ROI's path.

    The path is java.awt's: ``0 x y`` move to, ``1 x y`` line to, ``2`` / ``3`` quadratic / cubic Bezier curve to
    (flattened here), ``4`` close.  Outlines of fewer than 3 points or no area (slivers of ImageJ's shape
    arithmetic) carry no pixel and are left out.
    """
    sizes = {0: 2, 1: 2, 2: 4, 3: 6, 4: 0}
    rings: list[list[np.ndarray]] = []
    i = 0
    while i < len(path):
        op = int(path[i]) if np.isfinite(path[i]) else -1
        n = sizes.get(op)
        check(n is not None and op == path[i] and i + 1 + n <= len(path) and np.isfinite(path[i + 1:i + 1 + n]).all(),
              f"ROI {name!r} in {file_name} is a composite ROI whose outline is damaged.")
        pts = path[i + 1:i + 1 + n].reshape(-1, 2)
        i += 1 + n
        if op == 0 or (op != 4 and not rings):
            rings.append([pts[-1]])
        elif op == 1:
            rings[-1].append(pts[0])
        elif op in (2, 3):
            ctrl = np.vstack([rings[-1][-1], pts])
            t = np.linspace(0, 1, _CURVE_SEGMENTS + 1)[1:, None]
            if op == 2:
                curve = (1 - t) ** 2 * ctrl[0] + 2 * (1 - t) * t * ctrl[1] + t ** 2 * ctrl[2]
            else:
                curve = ((1 - t) ** 3 * ctrl[0] + 3 * (1 - t) ** 2 * t * ctrl[1] + 3 * (1 - t) * t ** 2 * ctrl[2]
                         + t ** 3 * ctrl[3])
            rings[-1].extend(curve)
        # op 4 (close): every outline is closed anyway
    out = [np.array(r) for r in rings]
    out = [xy for xy in out if len(xy) >= 3 and abs(polygon_area(xy)) > 1e-9]
    check(out, f"ROI {name!r} in {file_name} is a composite ROI without any area.")
    return out


def _read_roiset(path: Path, roifile: Any) -> list[Any]:
    """The members of an ImageJ ``RoiSet.zip`` that can be read; a warning names those that cannot."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            members = [(n, zf.read(n)) for n in zf.namelist() if n.lower().endswith(".roi")]
    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
        raise MicromotionError(f"{path.name} is not a readable ImageJ ROI set ({str(exc)[:120]}).") from None
    items, bad = [], []
    for name, data in members:
        try:
            items.append(roifile.ImagejRoi.frombytes(data))
        except Exception:
            bad.append(name)
    check(items, f"{path.name} holds no readable ImageJ ROIs" + (f" ({', '.join(bad[:5])} are damaged)." if bad
                                                                   else "."))
    if bad:
        warnings.warn(f"{path.name}: {len(bad)} damaged ROI(s) left out ({', '.join(bad[:5])}); "
                      f"{len(items)} read.", UserWarning, stacklevel=3)
    return items


def read_rois(path: str | os.PathLike) -> list[ROI]:
    """Read ROIs from JSON, an ImageJ ``.roi`` or an ImageJ ``RoiSet.zip``.

    A file that holds no ROI is refused; repeated names are named in a warning (rename them
    before an analysis, which needs unique names).
    """
    p = Path(path)
    check_file(p, "ROI file")
    if p.suffix.lower() in (".roi", ".zip"):
        rois = _read_imagej(p)
    else:
        check(p.stat().st_size <= _MAX_ROI_FILE_BYTES, f"ROI file {p.name} is too large to be an ROI list.")
        try:
            obj = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise MicromotionError(f"ROI file {p.name} is not valid JSON ({str(exc)[:100]}).") from None
        rois = parse_rois(obj, f"ROI file {p.name}")
    check(rois, f"ROI file {p.name} holds no ROIs.")
    repeated = repeated_names([r.name for r in rois])
    if repeated:
        warnings.warn(f"{p.name}: ROI names repeat ({', '.join(repeated[:5])}); rename them before an analysis.",
                      UserWarning, stacklevel=2)
    return rois


def _imagej_roi(roi: ROI, roifile: Any) -> Any:
    """*roi* as an ImageJ polygon ROI, or a composite (shape) ROI when it has parts."""
    rings = [np.column_stack([p[:, 1] + 0.5, p[:, 0] + 0.5]) for p in roi.rings]  # pixel centres -> ImageJ
    if len(rings) == 1:
        ij = roifile.ImagejRoi.frompoints(rings[0])
        ij.roitype = roifile.ROI_TYPE.POLYGON
    else:   # java.awt path: 0 x y (move to), 1 x y (line to), 4 (close); ImageJ reads it with the even-odd rule
        path = np.concatenate([np.r_[0.0, xy[0], np.column_stack([np.ones(len(xy) - 1), xy[1:]]).ravel(), 4.0]
                               for xy in rings]).astype(np.float32)
        lo = np.floor(np.concatenate(rings).min(axis=0)).astype(int)
        hi = np.ceil(np.concatenate(rings).max(axis=0)).astype(int)
        ij = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.RECT, left=int(lo[0]), top=int(lo[1]), right=int(hi[0]),
                               bottom=int(hi[1]), shape_roi_size=len(path), multi_coordinates=path)
    ij.name = roi.name
    return ij


def write_rois(rois: Iterable[ROI], path: str | os.PathLike) -> Path:
    """Write ROIs as JSON (or ImageJ ``.zip``/``.roi``), atomically."""
    p = Path(path)
    rois = as_rois(rois)
    check(rois, f"there are no ROIs to save in {p.name}; draw or load some first.")
    if p.suffix.lower() in (".zip", ".roi"):
        import roifile

        check(p.suffix.lower() == ".zip" or len(rois) == 1, "a single .roi file holds exactly one ROI; use .zip.")

        def write(tmp: Path) -> None:
            tmp.unlink()  # roifile appends to an existing .zip; start from none
            for roi in rois:
                ij = _imagej_roi(roi, roifile)
                ij.properties = {KIND_PROPERTY: roi.kind}     # ImageJ keeps it (Roi.getProperty) and so do we
                ij.tofile(tmp, name=roi.name) if p.suffix.lower() == ".zip" else ij.tofile(tmp)

        return atomic_write(p, write)
    text = json.dumps([r.to_dict() for r in rois], indent=1) + "\n"
    return atomic_write(p, lambda tmp: tmp.write_text(text))
