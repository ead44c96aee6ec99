"""Reading files into layers: ROI files for napari's File > Open, recordings for the workbench's Data tab.

napari's own reader opens TIFF stacks and videos; this plugin claims only files that
reader cannot open (ImageJ ``.roi``, ``RoiSet.zip`` and the plugin's ROI ``.json``),
so napari never asks which plugin should read a plain TIFF.  Recordings with their
frame rate, pixel size and channels (ImageJ hyperstacks, OME-TIFF, TIFF folders,
videos, simulator folders) are opened by :func:`read_path`, which the Data tab's
*Open* buttons use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .errors import MicromotionError

__all__ = ["napari_get_reader", "read_path", "read_rois_path"]


def _is_sim_folder(p: Path) -> bool:
    return p.is_dir() and (p / "transmission.tif").is_file()


def _looks_like_rois(p: Path) -> bool:
    name = p.name.lower()
    if name.endswith(".roi"):
        return True
    if name.endswith(".zip"):
        import zipfile

        try:
            with zipfile.ZipFile(p) as zf:
                return any(n.lower().endswith(".roi") for n in zf.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    if name.endswith(".json"):
        try:
            obj = json.loads(p.read_text()[: 64 << 20])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(obj, list) and bool(obj) and all(isinstance(r, dict) and "polygon" in r for r in obj)
    return False


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    """Return :func:`read_rois_path` for ROI files, else ``None`` (napari's reader opens the rest)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    return read_rois_path if p.is_file() and _looks_like_rois(p) else None


def read_rois_path(path: str | list[str]) -> list:
    """An ROI shapes layer (kinds coloured, names shown), in pixels of the open transmission layer."""
    from ._layers import rois_layer
    from .rois import read_rois

    if isinstance(path, list):
        path = path[0]
    scale = None
    try:  # place the ROIs like the open recording (its pixel size)
        import napari

        viewer = napari.current_viewer()
        if viewer is not None:
            from ._layers import plugin_meta

            for layer in viewer.layers:
                if plugin_meta(layer).get("role") == "transmission":
                    scale = tuple(float(v) for v in layer.scale[-2:])
                    break
    except Exception:  # pragma: no cover - no viewer: pixels
        scale = None
    return [rois_layer(read_rois(path), name=Path(path).stem.split(".")[0] or "ROIs", scale=scale)]


def read_path(path: str | list[str], interleaved: int = 1) -> list:
    """Layer data tuples for a recording (and the ROIs of a simulator folder).

    *interleaved*: the file holds that many channels taken in turn (see
    :func:`~napari_micromotion.io.read_recording`).  Errors in the file become a napari
    notification (raised as ``ValueError`` with one sentence, which napari shows).
    """
    from ._layers import recording_layers, rois_layer
    from .io import read_recording
    from .rois import read_rois

    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    if _is_sim_folder(p):
        fl = p / "fluorescence.tif"
        rec = read_recording(p / "transmission.tif", fl if fl.is_file() else None)
        layers = recording_layers(rec)
        if (p / "rois.json").is_file():
            px = rec.pixel_size_um or 1.0
            layers.append(rois_layer(read_rois(p / "rois.json"), scale=(px, px)))
        return layers
    try:
        rec = read_recording(p, interleaved=interleaved)
    except MicromotionError as exc:
        if "frame rate" not in str(exc):
            raise
        # no frame rate in the file: open it anyway, the Recording widget asks for the fps
        return _layers_without_fps(p, interleaved)
    return recording_layers(rec)


def _layers_without_fps(p: Path, interleaved: int = 1) -> list:
    """Transmission (and the other channel of a two-channel file as fluorescence) without a frame rate."""
    import numpy as np

    from ._layers import META_KEY
    from .io import read_stack, select_channel

    info = read_stack(p, interleaved=interleaved)
    px = info.pixel_size_um
    scale = (1.0, px, px) if px else None
    channels = [("transmission", 0, "gray")]
    if info.n_channels == 2:
        channels.append(("fluorescence", 1, "magma"))
    layers = []
    for role, idx, cmap in channels:
        data, _ = select_channel(info, idx if "C" in info.axes else None, role)
        first = np.asarray(data[: min(20, data.shape[0])], dtype=np.float32)
        lo, hi = (float(v) for v in np.percentile(first, [0.5, 99.5]))
        kwargs = {"name": role, "colormap": cmap, "contrast_limits": (lo, hi if hi > lo else lo + 1),
                  "metadata": {META_KEY: {"fps": None, "pixel_size_um": px, "role": role,
                                          "provenance": {role: {"path": str(p), "channel": idx if "C" in info.axes else None}}}}}
        if scale is not None:
            kwargs["scale"] = scale
        if role == "fluorescence":
            kwargs.update(blending="additive", visible=False)
        layers.append((data, kwargs, "image"))
    return layers
