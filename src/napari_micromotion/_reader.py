"""npe2 reader: recordings (TIFF, OME-TIFF, TIFF folders, videos) and simulator folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .errors import MicromotionError
from .io import TIFF_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["napari_get_reader", "read_path"]


def _is_sim_folder(p: Path) -> bool:
    return p.is_dir() and (p / "transmission.tif").is_file()


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list] | None:
    """Return :func:`read_path` for paths this plugin can read, else ``None``."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        if _is_sim_folder(p) or any(f.name.lower().endswith(TIFF_SUFFIXES) for f in p.iterdir() if f.is_file()):
            return read_path
        return None
    if name.endswith(TIFF_SUFFIXES) or name.endswith(VIDEO_SUFFIXES):
        return read_path
    return None


def read_path(path: str | list[str]) -> list:
    """Layer data tuples for a recording (and the ROIs of a simulator folder).

    Errors in the file become a napari notification (raised as ``ValueError`` with
    one sentence, which napari shows).
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
        rec = read_recording(p)
    except MicromotionError as exc:
        if "frame rate" not in str(exc):
            raise
        # no frame rate in the file: open it anyway, the Recording widget asks for the fps
        return _layers_without_fps(p)
    return recording_layers(rec)


def _layers_without_fps(p: Path) -> list:
    """Transmission (and the other channel of a two-channel file as fluorescence) without a frame rate."""
    import numpy as np

    from ._layers import META_KEY
    from .io import read_stack, select_channel

    info = read_stack(p)
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
