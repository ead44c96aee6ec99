"""npe2 writer: a shapes layer as an ROI file (JSON, or ImageJ RoiSet.zip)."""

from __future__ import annotations

from typing import Any

__all__ = ["write_rois"]


def write_rois(path: str, data: Any, attributes: dict) -> list[str]:
    """Write the shapes of one layer as ROIs; returns the written path."""
    from ._layers import rois_from_shapes
    from .errors import MicromotionError
    from .rois import write_rois as _write

    try:
        rois = rois_from_shapes(data, attributes.get("shape_type", ["polygon"] * len(data)),
                                attributes.get("features"))
        out = _write(rois, path if path.lower().endswith((".json", ".zip")) else path + ".json")
    except MicromotionError as exc:
        # napari reports a writer's exception only as "not a valid writer"; say why, then write nothing
        from napari.utils.notifications import show_error

        from ._qt._tasks import capitalised

        show_error(capitalised(str(exc)))
        return []
    return [str(out)]
