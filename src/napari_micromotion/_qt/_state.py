"""One :class:`Session` per viewer: what the widgets share.

The widgets are independent npe2 dock widgets; they meet here:

* the Recording widget edits :class:`RecordingChoice` (which layers, fps, pixel
  size, channel) and :meth:`Session.build_recording` turns it into a
  :class:`~napari_micromotion.recording.Recording` (layers chosen automatically
  when the widget was never opened);
* the ROIs widget names the ROI layer; :meth:`Session.build_rois` converts its
  shapes to pixel coordinates of the transmission layer;
* the Analysis widget hands finished :class:`~napari_micromotion.pipeline.Results`
  to :meth:`Session.set_results`, which updates the result layers by name and
  emits :attr:`Session.results_changed` for the Traces and Score table widgets;
* edits of the analysed ROI layer re-compute the ROI traces and scores in the
  background (:func:`napari_micromotion.retrace.iter_retrace`, the core's own).

The session holds the viewer only weakly, and is dropped with it.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from .._layers import plugin_meta, rois_from_shapes, spatial_transform
from ..errors import MicromotionError, check

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..pipeline import Results
    from ..recording import Recording
    from ..rois import ROI

__all__ = ["Session", "RecordingChoice", "get_session", "unwrap_viewer", "plugin_meta", "spatial_transform", "layer_array"]

log = logging.getLogger("napari_micromotion")
_SESSIONS: dict[int, "Session"] = {}


def layer_array(layer: Any) -> Any:
    """*layer*'s data at full resolution (the first level of a multiscale layer)."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    return data


@dataclass
class RecordingChoice:
    """What the Recording widget chose (``None``: automatic / from the layer's metadata)."""

    transmission: str | None = None
    fluorescence: str | None = None   # layer name; "" means no fluorescence
    fps: float | None = None
    pixel_size_um: float | None = None
    channel: int | None = None        # channel of a (T, C, Y, X) transmission layer
    fluorescence_channel: int | None = None


@dataclass
class Provenance:
    """Where a result came from (stored in layer metadata and exports)."""

    run: int
    created: str
    transmission_layer: str | None
    fluorescence_layer: str | None
    rois_layer: str | None
    recording: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {"run": self.run, "created": self.created, "napari_micromotion_version": __version__,
                "transmission_layer": self.transmission_layer, "fluorescence_layer": self.fluorescence_layer,
                "rois_layer": self.rois_layer, "recording": self.recording, "note": self.note}


class Session(QObject):
    """Shared state of the plugin's widgets in one viewer."""

    #: new Results (or None); emitted after the result layers were updated
    results_changed = Signal(object)
    #: the recording choice changed (layers, fps, ...)
    recording_changed = Signal()
    #: an analysis started (True) or ended (False)
    busy_changed = Signal(bool)
    #: ROI traces are being recomputed (True) or done (False)
    retracing_changed = Signal(bool)
    #: the user picked an ROI (by selecting its shape or a table row): its name
    roi_selected = Signal(str)
    #: a pixel was inspected: Results holding its traces (region named "pixel r.. c..")
    pixel_inspected = Signal(object)
    #: progress of whatever long task runs (analysis or tool), for the workbench's footer
    progressed = Signal(object)
    #: a long task failed or was cancelled: the sentence the footer shows instead of its last progress
    task_ended = Signal(str)

    def __init__(self, viewer: "napari.Viewer") -> None:
        super().__init__()
        self._viewer = weakref.ref(viewer)
        self.choice = RecordingChoice()
        self.rois_layer_name: str | None = None
        self.results: Results | None = None
        self.recording: Recording | None = None   # what self.results were computed from
        self.provenance: Provenance | None = None
        self.runs = 0
        self.busy = False
        self.retrace_task: Any = None
        self.bandpass_task: Any = None
        self.pixel_task: Any = None
        self.selected_roi: str | None = None
        self._watched: weakref.ref | None = None
        self._retrace_timer = QTimer(self)
        self._retrace_timer.setSingleShot(True)
        self._retrace_timer.setInterval(400)
        self._retrace_timer.timeout.connect(self.retrace)
        self.auto_retrace = True

    # ------------------------------------------------------------ viewer and layers
    @property
    def viewer(self) -> "napari.Viewer | None":
        return self._viewer()

    def _layers(self) -> list[Any]:
        v = self.viewer
        return list(v.layers) if v is not None else []

    def layer(self, name: str | None) -> Any:
        if not name:
            return None
        for layer in self._layers():
            if layer.name == name:
                return layer
        return None

    def image_layers(self, min_ndim: int = 3) -> list[Any]:
        """Grey-level image layers that are not results, of at least *min_ndim* dimensions (3: stacks)."""
        from napari.layers import Image

        return [la for la in self._layers() if isinstance(la, Image) and not la.rgb
                and plugin_meta(la).get("role") != "result" and la.ndim >= min_ndim]

    def _why_no_video(self) -> str:
        """Why the image layer that is open cannot be a recording (``" ('x' is ...)"``), or ``""``."""
        from napari.layers import Image

        for la in self._layers():
            if isinstance(la, Image) and plugin_meta(la).get("role") != "result":
                if la.rgb:
                    return f" ({la.name!r} is a colour (RGB) image; a grey-level video is needed)"
                if la.ndim < 3:
                    return f" ({la.name!r} is a single 2D image, not a video)"
        return ""

    def shapes_layers(self) -> list[Any]:
        """Shapes layers that can hold ROIs: not a tool's result (the cell finder's candidates)."""
        from napari.layers import Shapes

        return [la for la in self._layers() if isinstance(la, Shapes) and plugin_meta(la).get("role") != "result"]

    def slider_frame(self, layer: Any = None) -> int | None:
        """The frame of *layer* (default: the transmission) under napari's time slider.

        ``None`` when the viewer has no time axis; the layer's time scale and offset are
        taken into account, so a layer recorded at another rate shows its own frame
        (not clipped to the layer's frames).
        """
        step = self.viewer.dims.current_step
        if len(step) < 3:
            return None
        layer = layer if layer is not None else self.transmission_layer()
        if layer is None or not float(layer.scale[0]):
            return int(step[0])
        return self._slider_index(layer, 0)

    def transmission_layer(self) -> Any:
        """The chosen transmission layer, else the plugin's, else the first (T, Y, X) image layer."""
        chosen = self.layer(self.choice.transmission)
        if chosen is not None:
            return chosen
        images = self.image_layers()
        for layer in images:
            if plugin_meta(layer).get("role") == "transmission":
                return layer
        for layer in images:
            if plugin_meta(layer).get("role") != "fluorescence":
                return layer
        return None

    def fluorescence_layer(self) -> Any:
        """The chosen fluorescence layer; automatic: the plugin's fluorescence layer of the same size."""
        if self.choice.fluorescence == "":
            return None
        chosen = self.layer(self.choice.fluorescence)
        if chosen is not None:
            return chosen
        trans = self.transmission_layer()
        for layer in self.image_layers():
            if layer is not trans and plugin_meta(layer).get("role") == "fluorescence":
                return layer
        return None

    def rois_layer(self) -> Any:
        """The chosen ROI layer, else the plugin's ROI layer, else the only shapes layer that is not a result.

        A tool's shapes (the cell finder's candidates) are results, never taken for the ROIs.
        """
        chosen = self.layer(self.rois_layer_name)
        if chosen is not None:
            return chosen
        shapes = self.shapes_layers()
        for layer in shapes:
            if plugin_meta(layer).get("role") == "rois":
                return layer
        return shapes[0] if len(shapes) == 1 else None

    def layer_fps(self, layer: Any) -> float | None:
        fps = plugin_meta(layer).get("fps") if layer is not None else None
        return float(fps) if fps else None

    def layer_pixel_size(self, layer: Any) -> float | None:
        if layer is None:
            return None
        px = plugin_meta(layer).get("pixel_size_um")
        if px:
            return float(px)
        scale = np.asarray(layer.scale, float)[-2:]
        return float(scale[0]) if scale[0] != 1.0 and np.isclose(scale[0], scale[1]) else None

    # ------------------------------------------------------------ building core inputs
    def channel_view(self, layer: Any, channel: int | None, what: str) -> Any:
        """*layer*'s (T, Y, X) data; of a (T, C, Y, X) layer the *channel* (*what* names it in messages)."""
        data = layer_array(layer)
        if data.ndim == 4:
            n = data.shape[1]
            c = 0 if channel is None else int(channel)
            check(-n <= c < n, f"the {what} layer {layer.name!r} has {n} channels (axis 1); channel {c} does not exist.")
            return data[:, c]
        check(channel in (None, 0), f"the {what} layer {layer.name!r} has one channel; channel {channel} does not "
                                    "exist (set the channel to auto).")
        return data

    def build_recording(self) -> "Recording":
        """A :class:`Recording` from the chosen layers (one-sentence :class:`MicromotionError` if impossible)."""
        from ..recording import Recording

        trans = self.transmission_layer()
        check(trans is not None, "open a recording first: no (T, Y, X) image layer to use as transmission"
                                 + self._why_no_video() + ".")
        fl_layer = self.fluorescence_layer()
        check(fl_layer is not trans, "transmission and fluorescence must be different layers.")
        fps = self.choice.fps or self.layer_fps(trans)
        check(fps is not None, f"the frame rate of {trans.name!r} is unknown; enter it (fps) in the Recording widget.")
        px = self.choice.pixel_size_um or self.layer_pixel_size(trans)
        data = self.channel_view(trans, self.choice.channel, "transmission")
        fl = None
        if fl_layer is not None:
            fl = self.channel_view(fl_layer, self.choice.fluorescence_channel, "fluorescence")
        elif layer_array(trans).ndim == 4 and layer_array(trans).shape[1] == 2:
            c = 0 if self.choice.channel is None else int(self.choice.channel) % 2
            fl = layer_array(trans)[:, 1 - c]
        prov = dict(plugin_meta(trans).get("provenance") or {})
        prov.update({"transmission_layer": trans.name,
                     "fluorescence_layer": fl_layer.name if fl_layer is not None else None,
                     "fps_source": "user" if self.choice.fps else "layer metadata"})
        return Recording(transmission=data, fps=fps, fluorescence=fl, pixel_size_um=px, provenance=prov)

    def recording_from_layer(self, layer: Any) -> "Recording":
        """A transmission-only :class:`Recording` of any (T, Y, X) image layer (a tool's input)."""
        from ..recording import Recording

        check(layer is not None, "choose an image layer first.")
        fps = (self.choice.fps if layer is self.transmission_layer() else None) or self.layer_fps(layer)
        check(fps is not None, f"the frame rate of {layer.name!r} is unknown; enter it in the Data tab.")
        data = self.channel_view(layer, None, "input")
        return Recording(transmission=data, fps=fps, pixel_size_um=self.layer_pixel_size(layer),
                         provenance={**(plugin_meta(layer).get("provenance") or {}), "layer": layer.name})

    def image_from_layer(self, layer: Any) -> tuple[np.ndarray, int]:
        """The frame of *layer* under napari's time slider, as ``(Y, X)`` float32, and its index (an image tool's input)."""
        check(layer is not None, "choose an image layer first.")
        data = layer_array(layer)
        check(data.dtype.kind in "iuf", f"{layer.name!r} holds {'true/false values (a mask)' if data.dtype.kind == 'b' else data.dtype}, "
                                        "not an image's intensities.")
        if data.ndim == 2:
            return np.asarray(data, np.float32), 0
        check(data.ndim in (3, 4), f"{layer.name!r} is not an image, a stack or a (T, C, Y, X) stack.")
        if data.ndim == 4:       # the channel under napari's slider for axis 1, as the canvas shows it
            data = data[:, self._slider_index(layer, 1, data.shape[1])]
        frame = self._slider_index(layer, 0, data.shape[0])
        return np.asarray(data[frame], np.float32), frame

    def _slider_index(self, layer: Any, axis: int, n: int | None = None) -> int:
        """The index along *layer*'s *axis* at napari's current slider position (clipped to ``0..n-1`` given *n*)."""
        dims = self.viewer.dims
        world_axis = dims.ndim - layer.ndim + axis
        world = dims.point[world_axis] if 0 <= world_axis < dims.ndim else 0.0
        idx = int(round((world - float(layer.translate[axis])) / (float(layer.scale[axis]) or 1.0)))
        return idx if n is None else int(np.clip(idx, 0, n - 1))

    def rois_to_pixels(self, layer: Any) -> list[np.ndarray]:
        """Vertices of every shape of *layer* as (row, col) pixels of the transmission layer."""
        trans = self.transmission_layer()
        s_scale, s_trans = spatial_transform(layer)
        if trans is not None:
            t_scale, t_trans = spatial_transform(trans)
        else:
            t_scale, t_trans = np.ones(2), np.zeros(2)
        out = []
        for pts in layer.data:
            xy = np.asarray(pts, float)[:, -2:]
            world = xy * s_scale + s_trans
            out.append((world - t_trans) / t_scale)
        return out

    def build_rois(self, layer: Any = None) -> list["ROI"]:
        """ROIs of the ROI layer in pixel coordinates (``[]`` without a layer)."""
        layer = layer if layer is not None else self.rois_layer()
        if layer is None or len(layer.data) == 0:
            return []
        return rois_from_shapes(self.rois_to_pixels(layer), list(layer.shape_type), layer.features)

    # ------------------------------------------------------------ results
    def new_provenance(self, rec: "Recording", rois_layer: Any = "auto", note: str = "") -> Provenance:
        """Provenance of a new result from *rec* and the ROIs of *rois_layer* (``"auto"``: the current one)."""
        self.runs += 1
        rois = self.rois_layer() if isinstance(rois_layer, str) else rois_layer
        return Provenance(run=self.runs, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          transmission_layer=rec.provenance.get("transmission_layer"),
                          fluorescence_layer=rec.provenance.get("fluorescence_layer"),
                          rois_layer=rois.name if rois is not None else None,
                          recording={k: v for k, v in rec.provenance.items() if k not in ("simulated",)}, note=note)

    def set_results(self, results: "Results | None", recording: "Recording | None" = None,
                    provenance: Provenance | None = None, *, keep_bandpassed: bool = False) -> None:
        """Make *results* current: update the result layers by name, then tell the widgets."""
        from .result_layers import apply_results

        self.results = results
        if recording is not None:
            self.recording = recording
        if provenance is not None:
            self.provenance = provenance
        viewer = self.viewer
        if viewer is not None and results is not None:
            trans = self.layer(self.provenance.transmission_layer if self.provenance else None)
            if trans is None:
                trans = self.transmission_layer()
            if trans is not None and tuple(trans.data.shape[-2:]) != tuple(results.frame_shape):
                trans = None
            apply_results(viewer, results, self.provenance_dict(), transmission=trans, keep_bandpassed=keep_bandpassed)
        if provenance is not None:  # a new result: follow the ROI layer it was computed from (if any)
            self.watch_rois(self.layer(provenance.rois_layer))
        self.results_changed.emit(results)

    def adopt_results(self, results: "Results", *, source: str) -> None:
        """Make results read from a folder current, tied to matching layers of the viewer when possible.

        The recording layers are used for the band-passed stack and ROI re-tracing when
        their size matches; an ROI layer with the same ROI names becomes the analysed one.
        """
        from ..results_io import results_mismatch
        from ..rois import rasterize

        rec = None
        try:
            rec = self.build_recording()
        except MicromotionError:
            rec = None
        if rec is not None:
            reasons = results_mismatch(results, rec)
            if reasons:
                from napari.utils.notifications import show_warning

                show_warning("These results may not belong to the open recording: " + "; ".join(reasons)
                             + ". They are shown, but not linked to it.")
                rec = None
        rois_layer = self.rois_layer()
        if rois_layer is not None:
            try:
                rois = self.build_rois(rois_layer)
                if [r.name for r in rois] == list(results.roi_names):
                    if results.roi_masks is None:
                        results.roi_masks = rasterize(rois, tuple(results.frame_shape)).masks
                else:
                    rois_layer = None
            except MicromotionError:
                rois_layer = None
        self.runs += 1
        trans = self.transmission_layer() if rec is not None else None
        fl = self.fluorescence_layer() if rec is not None else None
        prov = Provenance(run=self.runs, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          transmission_layer=trans.name if trans is not None else None,
                          fluorescence_layer=fl.name if fl is not None else None,
                          rois_layer=rois_layer.name if rois_layer is not None else None,
                          recording={"results_folder": source}, note="loaded from a results folder")
        self.recording = rec
        self.set_results(results, provenance=prov)

    def provenance_dict(self) -> dict[str, Any]:
        return self.provenance.as_dict() if self.provenance is not None else {}

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)

    # ------------------------------------------------------------ ROI edits -> traces
    def watch_rois(self, layer: Any) -> None:
        """Recompute ROI traces (debounced) when *layer*'s shapes or kinds change."""
        old = self._watched() if self._watched is not None else None
        if old is layer:
            return
        if old is not None:
            for ev, cb in ((old.events.data, self._on_rois_edited), (old.events.features, self._on_rois_edited),
                           (old.events.highlight, self._on_roi_highlight)):
                try:
                    ev.disconnect(cb)
                except Exception:  # pragma: no cover
                    pass
        self._watched = weakref.ref(layer) if layer is not None else None
        if layer is not None:
            layer.events.data.connect(self._on_rois_edited)
            layer.events.features.connect(self._on_rois_edited)
            layer.events.highlight.connect(self._on_roi_highlight)

    # ------------------------------------------------------------ linked inspection
    def _on_roi_highlight(self, event: Any = None) -> None:
        layer = self.watched_rois_layer()
        if layer is None or "name" not in layer.features:
            return
        sel = sorted(layer.selected_data)
        if len(sel) == 1 and sel[0] < len(layer.features):
            name = str(layer.features["name"].iloc[sel[0]])
            if name != self.selected_roi:
                self.selected_roi = name
                self.roi_selected.emit(name)

    def select_roi(self, name: str) -> None:
        """Select ROI *name* everywhere: its shape in the analysed ROI layer, the traces, the tables."""
        layer = self.watched_rois_layer()
        if layer is not None and "name" in layer.features:
            names = [str(v) for v in layer.features["name"]]
            if name in names and set(layer.selected_data) != {names.index(name)}:
                layer.selected_data = {names.index(name)}
        if name != self.selected_roi:
            self.selected_roi = name
            self.roi_selected.emit(name)

    def inspect_pixel(self, row: int, col: int) -> Any:
        """Trace one pixel with the current result's pixel methods in the background; returns the task."""
        from ..retrace import iter_pixel_traces
        from ._tasks import Task

        if self.results is None or self.recording is None:
            return None
        if self.pixel_task is not None and self.pixel_task.running:
            self.pixel_task.cancel()
        results, rec = self.results, self.recording
        task = Task(lambda: iter_pixel_traces(rec, results, int(row), int(col)), what="tracing the pixel",
                    title="micromotion pixel", progress_bars=False, parent=self)
        task.succeeded.connect(lambda sub: self.pixel_inspected.emit(sub) if self.results is results else None)
        self.pixel_task = task
        return task.start()

    def _on_rois_edited(self, event: Any = None) -> None:
        action = getattr(event, "action", None)
        if action is not None and str(action).lower().endswith(("adding", "removing", "changing")):
            return  # wait for the completed edit
        if self.auto_retrace and not self.busy:  # edits during a run are checked when it ends
            self.schedule_retrace()

    def schedule_retrace(self) -> None:
        """Recompute the ROI traces shortly (after edits settle)."""
        if self.results is not None and self.recording is not None:
            self._retrace_timer.start()

    def watched_rois_layer(self) -> Any:
        return self._watched() if self._watched is not None else None

    def retrace(self) -> Any:
        """Recompute ROI traces and scores for the edited ROIs in the background; returns the task."""
        from ..retrace import iter_retrace
        from ._tasks import Task, notify_error

        layer = self.watched_rois_layer()
        if layer is None or self.results is None or self.recording is None:
            return None
        if self.retrace_task is not None and self.retrace_task.running:
            self.retrace_task.cancel()
        try:
            rois = self.build_rois(layer)
        except MicromotionError as exc:
            notify_error(exc)
            return None
        results, rec, prov = self.results, self.recording, self.provenance
        task = Task(lambda: iter_retrace(rec, rois, results), what="updating the ROI traces",
                    title="micromotion ROI traces", parent=self)

        def done(new: Any) -> None:
            if self.results is not results:  # a new analysis finished meanwhile
                return
            if prov is not None:
                prov.note = "ROI traces and scores recomputed after ROI edits"
            self.set_results(new, keep_bandpassed=True)

        task.succeeded.connect(done)
        task.finished.connect(lambda: self.retracing_changed.emit(False))
        self.retrace_task = task
        self.retracing_changed.emit(True)
        task.start()
        return task

    # ------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        try:
            self._retrace_timer.stop()
            for task in (self.retrace_task, self.bandpass_task, self.pixel_task):
                if task is not None and task.running:
                    task.cancel()
        except RuntimeError:  # Qt objects already deleted (interpreter exit)
            pass


def unwrap_viewer(viewer: Any) -> "napari.Viewer":
    """The viewer itself (npe2 hands widgets a ``PublicOnlyProxy``; layers compare by identity here)."""
    return getattr(viewer, "__wrapped__", viewer)


def get_session(viewer: "napari.Viewer") -> Session:
    """The session of *viewer* (created on first use, dropped with the viewer)."""
    viewer = unwrap_viewer(viewer)
    key = id(viewer)
    sess = _SESSIONS.get(key)
    if sess is not None and sess.viewer is viewer:
        return sess
    sess = Session(viewer)
    _SESSIONS[key] = sess
    weakref.finalize(viewer, _drop, key, weakref.ref(sess))
    return sess


def _drop(key: int, ref: weakref.ref) -> None:
    sess = _SESSIONS.get(key)
    if sess is not None and sess is ref():
        sess.shutdown()
        del _SESSIONS[key]
