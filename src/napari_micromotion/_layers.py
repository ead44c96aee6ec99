"""Conversions between the analysis core and napari layer data (no Qt, no napari import).

Everything here returns plain ``(data, kwargs, layer_type)`` tuples or takes
arrays, so it is testable without a viewer.  Plugin-owned layers carry the
namespaced metadata key :data:`META_KEY`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .recording import Recording, frames_to_skip
from .rois import KIND_COLOURS, KINDS, ROI

__all__ = ["META_KEY", "KIND_COLOURS", "PART_FEATURE", "is_part", "display_limits", "recording_layers", "rois_layer", "rois_from_shapes",
           "ellipse_polygon", "plugin_meta", "renamed_by_user", "spatial_transform"]

META_KEY = "napari_micromotion"
#: one colour per ROI kind; each has a contrast ratio of at least 3:1 against the backgrounds of napari's dark and
#: light themes (outlines on the canvas, names in the tables)


def plugin_meta(layer: Any) -> dict[str, Any]:
    """The plugin's namespaced metadata of *layer* (``{}`` when there is none)."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get(META_KEY)
    return value if isinstance(value, dict) else {}


def renamed_by_user(layer: Any) -> bool:
    """Whether the user renamed *layer*, a plugin's result layer, to keep it.

    The plugin writes the name it gives a layer into its metadata (``layer_name``); a layer
    whose name differs from it is the user's now, and a later run neither updates nor removes it.
    """
    meta = plugin_meta(layer)
    return "layer_name" in meta and meta["layer_name"] != layer.name


def spatial_transform(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, translate)`` of the last two (row, col) axes of *layer*."""
    return np.asarray(layer.scale, float)[-2:], np.asarray(layer.translate, float)[-2:]


def _scale(rec: Recording, ndim: int) -> tuple[float, ...]:
    px = rec.pixel_size_um or 1.0
    return (1.0, px, px) if ndim == 3 else (px, px)


def display_limits(video: Any, first: int = 0, role: str = "transmission") -> tuple[float, float]:
    """Contrast limits for a (T, Y, X) *video* from its frames at *first* on: the 0.5-99.5th percentile of the mean
    of 10 frames for transmission, the 0.5-99.9th of 50 frames themselves for fluorescence (its flashes in view)."""
    if role == "fluorescence":
        sample = np.asarray(video[first:first + 50], dtype=np.float32)
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.9]))
    else:
        sample = np.asarray(video[first:first + 10], dtype=np.float32).mean(axis=0)
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    return lo, (hi if hi > lo else lo + 1)


def recording_layers(rec: Recording, name_prefix: str = "") -> list[tuple[Any, dict[str, Any], str]]:
    """Image layers for a recording: ``transmission`` and, if present, ``fluorescence``.

    Layer metadata ``[META_KEY]`` holds fps, pixel size, role and provenance.
    """
    meta = {"fps": rec.fps, "pixel_size_um": rec.pixel_size_um, "provenance": rec.provenance}
    # grey levels for display from frames past a fade-in the reader found (its dark frames would saturate the rest)
    first = min(frames_to_skip(rec.provenance), rec.n_frames - 1)
    layers = [(rec.transmission, {"name": f"{name_prefix}transmission", "colormap": "gray",
                                  "contrast_limits": display_limits(rec.transmission, first),
                                  "scale": _scale(rec, 3), "metadata": {META_KEY: {**meta, "role": "transmission"}}},
               "image")]
    if rec.fluorescence is not None and rec.fluorescence.ndim == 3:
        layers.append((rec.fluorescence, {"name": f"{name_prefix}fluorescence", "colormap": "magma",
                                          "blending": "additive", "visible": False,
                                          "contrast_limits": display_limits(rec.fluorescence, first, "fluorescence"),
                                          "scale": _scale(rec, 3),
                                          "metadata": {META_KEY: {**meta, "role": "fluorescence"}}}, "image"))
    return layers


#: the shapes-layer feature that numbers the outlines of a composite ROI (0: its main outline; 1, 2, ...: its
#: further pieces and holes, which carry the ROI's name)
PART_FEATURE = "part"


def is_part(features: Any) -> np.ndarray:
    """``(n,)`` bool: which shapes are further outlines of a composite ROI, not ROIs of their own.

    A shape is a part when its ``part`` feature is above 0 and an earlier shape with part 0 has
    its name; a part whose main outline was deleted (or a new shape that inherited a part
    number) stands on its own.
    """
    n = len(features) if features is not None else 0
    if n == 0 or PART_FEATURE not in features or "name" not in features:
        return np.zeros(n, bool)
    names = [str(v) for v in features["name"]]
    parts = [int(v) if isinstance(v, (int, np.integer, float, np.floating)) and np.isfinite(v) else 0
             for v in features[PART_FEATURE]]
    out = np.zeros(n, bool)
    mains: set[str] = set()
    for i, (name, part) in enumerate(zip(names, parts)):
        if part > 0 and name in mains:
            out[i] = True
        else:
            mains.add(name)
    return out


def rois_layer(rois: Sequence[ROI], name: str = "ROIs", scale: tuple[float, float] | None = None,
               ndim: int = 2) -> tuple[Any, dict[str, Any], str]:
    """A shapes layer (polygons) with ``name``/``kind`` features, a colour per kind and labels."""
    # a composite ROI is one shape per outline, all with its name and kind: its main outline (part 0) first
    data = [np.asarray(ring, dtype=float) for r in rois for ring in r.rings]
    if ndim == 3:
        data = [np.column_stack([np.zeros(len(p)), p]) for p in data]
    features = {"name": [r.name for r in rois for _ in r.rings], "kind": [r.kind for r in rois for _ in r.rings],
                PART_FEATURE: [k for r in rois for k in range(len(r.rings))]}
    # napari maps a categorical colour cycle onto the *sorted* distinct values present
    present = sorted({r.kind for r in rois}) or ["other"]
    kwargs: dict[str, Any] = {
        "name": name,
        "shape_type": "polygon",
        "features": features,
        "edge_color": "kind",
        "edge_color_cycle": [KIND_COLOURS[k] for k in present],
        "face_color": "transparent",
        "edge_width": 1.5,
        "text": {"string": "{name}", "color": "white", "size": 9, "anchor": "upper_left"},
        "metadata": {META_KEY: {"role": "rois"}},
    }
    if scale is not None:
        kwargs["scale"] = scale
    return data, kwargs, "shapes"


def ellipse_polygon(corners: np.ndarray, n: int = 64) -> np.ndarray:
    """Polygon approximating a napari ellipse given by its 4 bounding-box corners."""
    c = np.asarray(corners, dtype=float)[:, -2:]
    centre = c.mean(axis=0)
    a = np.linalg.norm(c[1] - c[0]) / 2
    b = np.linalg.norm(c[3] - c[0]) / 2
    u = (c[1] - c[0]) / (2 * a) if a > 0 else np.array([1.0, 0.0])
    v = (c[3] - c[0]) / (2 * b) if b > 0 else np.array([0.0, 1.0])
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre + np.outer(a * np.cos(t), u) + np.outer(b * np.sin(t), v)


def rois_from_shapes(data: Sequence[np.ndarray], shape_types: Sequence[str], features: Any = None) -> list[ROI]:
    """ROIs from shapes-layer data (pixel coordinates; the last two columns are row, col).

    Names and kinds come from the ``name``/``kind`` features (defaults ``roi<k>``/``other``);
    rectangles and polygons are taken as drawn, ellipses become 64-gons; lines and paths are refused.
    The further outlines of a composite ROI (:func:`is_part`) join the ROI of their name.
    """
    from .errors import MicromotionError

    names = list(features["name"]) if features is not None and "name" in features else []
    kinds = list(features["kind"]) if features is not None and "kind" in features else []
    part_of = is_part(features) if features is not None and len(features) == len(data) else np.zeros(len(data), bool)
    out = []
    parts: dict[str, list[np.ndarray]] = {}
    for k, (pts, st) in enumerate(zip(data, shape_types)):
        pts = np.asarray(pts, dtype=float)[:, -2:]
        if st == "ellipse":
            pts = ellipse_polygon(pts)
        elif st not in ("polygon", "rectangle"):
            raise MicromotionError(f"shape {k + 1} is a {st}; ROIs must be polygons, rectangles or ellipses.")
        raw = names[k] if k < len(names) else None  # pandas fills missing names with NaN
        name = raw.strip() if isinstance(raw, str) and raw.strip() not in ("", "nan") else f"roi{k + 1}"
        if part_of[k]:
            parts.setdefault(name, []).append(pts)
            continue
        kind = str(kinds[k]) if k < len(kinds) and kinds[k] in KINDS else "other"
        out.append(ROI(name=name, kind=kind, polygon=pts))
    if parts:
        out = [ROI(name=r.name, kind=r.kind, polygon=r.polygon, parts=parts[r.name]) if r.name in parts else r
               for r in out]
    return out
