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
        from .io import read_stack, select_channel

        info = read_stack(p)
        data, _ = select_channel(info, None)
        from ._layers import META_KEY

        return [(data, {"name": "transmission", "colormap": "gray",
                        "metadata": {META_KEY: {"fps": None, "pixel_size_um": info.pixel_size_um, "role": "transmission",
                                                "provenance": {"transmission": {"path": str(p)}}}}}, "image")]
    return recording_layers(rec)
