"""``micromotion view``: napari with a recording, its ROIs, an analysis folder and the workbench docked.

:func:`load_inputs` reads everything first (so a bad file is a one-line CLI error
before any window opens), :func:`populate_viewer` puts it into a viewer (testable
without an event loop), :func:`launch_viewer` does both and runs napari.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import check

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..pipeline import Results
    from ..recording import Recording
    from ..rois import ROI

__all__ = ["Inputs", "load_inputs", "populate_viewer", "launch_viewer", "PLUGIN"]

PLUGIN = "napari-micromotion"


@dataclass
class Inputs:
    """What :func:`load_inputs` read."""

    recording: "Recording | None" = None
    rois: "list[ROI]" = field(default_factory=list)
    rois_name: str = "ROIs"
    results: "Results | None" = None
    results_path: str | None = None


def load_inputs(transmission: str | Path | None = None, *, fluorescence: str | Path | None = None,
                rois: str | Path | None = None, results: str | Path | None = None,
                fps: float | None = None) -> Inputs:
    """Read the recording, ROIs and results folder (raises a one-sentence ``MicromotionError``)."""
    from ..io import read_recording
    from ..results_io import read_results
    from ..rois import read_rois

    out = Inputs()
    check(transmission is not None or fluorescence is None, "give the transmission recording with --fluorescence.")
    if transmission is not None:
        out.recording = read_recording(transmission, fluorescence, fps=fps)
    if rois is not None:
        out.rois = read_rois(rois)
        out.rois_name = Path(rois).stem.split(".")[0] or "ROIs"
    if results is not None:
        out.results = read_results(results)
        out.results_path = str(Path(results).resolve())
        if out.recording is not None:
            rec, res = out.recording, out.results
            check(rec.frame_shape == tuple(res.frame_shape),
                  f"the results in {results} are for {res.frame_shape[0]} x {res.frame_shape[1]} px frames, "
                  f"the recording has {rec.frame_shape[0]} x {rec.frame_shape[1]} px.")
    return out


def populate_viewer(viewer: "napari.Viewer", inputs: Inputs, *, dock: bool = True) -> dict[str, Any]:
    """Add the inputs' layers to *viewer*, dock the workbench, show the results; returns its parts by name.

    Names: ``Workbench``, its tabs ``Data`` (also ``Recording``), ``ROIs``, ``Analysis``, ``Results`` and
    one per tool, and the bottom dock's ``Inspector``, ``Traces``, ``Score table``, ``Beats``.
    """
    from .._layers import recording_layers
    from ._state import get_session
    from .rois_widget import add_rois_layer

    session = get_session(viewer)
    trans = None
    if inputs.recording is not None:
        for data, kwargs, _ in recording_layers(inputs.recording):
            layer = viewer.add_image(data, **kwargs)
            trans = layer if trans is None else trans
        session.choice.transmission = trans.name
    if inputs.rois:
        layer = add_rois_layer(viewer, inputs.rois, name=inputs.rois_name, transmission=trans)
        session.rois_layer_name = layer.name
    widgets: dict[str, Any] = {}
    if dock:
        _, bench = viewer.window.add_plugin_dock_widget(PLUGIN, "Workbench")
        insp = bench.inspector
        widgets = {"Workbench": bench, "Data": bench.data, "Recording": bench.data, "ROIs": bench.rois,
                   "Analysis": bench.analysis, "Results": bench.results, "Inspector": insp,
                   "Traces": insp.traces, "Score table": insp.scores, "Beats": insp.beats, **bench.tools}
    if inputs.results is not None:
        session.adopt_results(inputs.results, source=inputs.results_path or "")
        if inputs.results_path:
            from .result_layers import add_zarr_stacks

            add_zarr_stacks(viewer, inputs.results_path, inputs.results)
    if viewer.dims.ndim >= 3:
        viewer.dims.set_current_step(0, 0)
    viewer.reset_view()
    return widgets


def launch_viewer(transmission: str | Path | None = None, *, fluorescence: str | Path | None = None,
                  rois: str | Path | None = None, results: str | Path | None = None,
                  fps: float | None = None) -> "napari.Viewer":
    """Open napari with the recording, ROIs and results and the workbench docked, then run the event loop."""
    import napari

    inputs = load_inputs(transmission, fluorescence=fluorescence, rois=rois, results=results, fps=fps)
    viewer = napari.Viewer(title="napari-micromotion")
    populate_viewer(viewer, inputs)
    napari.run()
    return viewer
