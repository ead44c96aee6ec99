"""A workbench tab for a registered tool, generated from its parameter schema.

Pick the input layer, set the parameters (the schema's help as tooltips, advanced ones
folded), run in the background with progress, a live loss plot when the tool trains a
network, and Cancel; the result appears as the layers the tool describes
(:meth:`~napari_micromotion.tools.base.Tool.layer_data`), and *Export* writes the
tool's output folder (the same as its command-line sub-command).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .._layers import META_KEY, plugin_meta, renamed_by_user
from ..errors import MicromotionError, check
from ..progress import Progress
from ._state import get_session, unwrap_viewer
from ._tasks import Task, TaskHost, capitalised, export_running, notify_error
from .forms import ParamForm, in_gui_words
from .plots import LossPlot

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["ToolTab"]

AUTO = "(the recording's transmission)"
#: the automatic entry of a tool that works on the fluorescence video (``Tool.input == "fluorescence"``)
AUTO_FLUORESCENCE = "(the recording's fluorescence)"


class ToolTab(TaskHost, QWidget):
    """Run one tool on a layer of the viewer."""

    def __init__(self, napari_viewer: "napari.Viewer", tool: Any, parent: QWidget | None = None) -> None:
        from ..schema import specs

        super().__init__(parent)
        self.viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(self.viewer)
        self.tool = tool
        self.task: Task | None = None
        self.result: Any = None
        self.export_task: Task | None = None
        self.view: Any = None            # the tool's page in the inspector, once it has a result
        self.frame: int | None = None    # the frame an image tool last ran on
        self._inspector: Any = None
        about = QLabel(f"<b>{tool.label}</b>: {tool.description}.")
        about.setWordWrap(True)
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The image this tool works on: the frame under the time slider."
                                    if tool.input == "image" else
                                    "The fluorescence video this tool works on (the recording's transmission, if "
                                    "any, goes with it)." if tool.input == "fluorescence" else
                                    "The video this tool works on.")
        self.form = ParamForm(specs(tool.Params), expanded=tuple({s.section for s in specs(tool.Params)}))
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export...")
        self.export_button.setEnabled(False)
        self.export_button.setToolTip(f"Write the output folder of 'micromotion {tool.command}'.")
        self.export_button.clicked.connect(self._export_dialog)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.loss_plot = LossPlot(viewer=self.viewer)
        self.loss_plot.title = getattr(tool, "loss_title", "") or self.loss_plot.title
        self.loss_plot.setVisible(False)

        content = QWidget()
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.form)
        inner.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        top = QFormLayout()
        top.addRow("input", self.layer_combo)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(about)
        lay.addLayout(top)
        lay.addWidget(scroll, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.loss_plot)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------ input
    def _refresh_layers(self, *_: Any) -> None:
        current = self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItem(self.auto_entry)
        self.layer_combo.addItems([la.name for la in self.session.image_layers(2 if self.tool.input == "image" else 3)])
        idx = self.layer_combo.findText(current)
        self.layer_combo.setCurrentIndex(idx if idx >= 0 else 0)
        self.layer_combo.blockSignals(False)

    @property
    def auto_entry(self) -> str:
        """The layer chooser's automatic entry (the recording's transmission, or fluorescence)."""
        return AUTO_FLUORESCENCE if self.tool.input == "fluorescence" else AUTO

    def input_layer(self) -> Any:
        name = self.layer_combo.currentText()
        if name not in ("", AUTO, AUTO_FLUORESCENCE):
            return self.session.layer(name)
        if self.tool.input != "fluorescence":
            return self.session.transmission_layer()
        layer = self.session.fluorescence_layer()
        if layer is None:   # one video open, not tagged as fluorescence: that is the one
            stacks = self.session.image_layers(3)
            layer = stacks[0] if len(stacks) == 1 else None
        check(layer is not None, "the recording has no fluorescence video; choose the fluorescence layer as input.")
        return layer

    def fluorescence_recording(self, layer: Any) -> Any:
        """A tool's Recording with *layer* as fluorescence and the session's transmission, if any, beside it.

        Without a transmission of the same size the fluorescence fills both slots and
        ``provenance["no_transmission"]`` says so (as ``micromotion <tool> FLUORESCENCE`` does).
        """
        rec = self.session.recording_from_layer(layer)   # fps, pixel size, provenance of the layer
        fl = rec.transmission
        prov = {**rec.provenance, "fluorescence_layer": layer.name}
        trans_layer = self.session.transmission_layer()
        trans = None
        if trans_layer is not None and trans_layer is not layer:
            data = self.session.channel_view(trans_layer, self.session.choice.channel, "transmission")
            if tuple(data.shape) == tuple(fl.shape):
                trans = data
        if trans is None:
            return rec.with_(fluorescence=fl, provenance={**prov, "no_transmission": True})
        return rec.with_(transmission=trans, fluorescence=fl, provenance={**prov, "transmission_layer": trans_layer.name})

    def params(self) -> Any:
        from ..schema import check_ranges, replace_path

        params = replace_path(self.tool.Params(), self.form.values())
        check_ranges(params)
        return params

    # ------------------------------------------------------------ running
    def run(self) -> Task | None:
        if self.running:
            notify_error(MicromotionError(f"the {self.tool.label} is already running; cancel it or wait."))
            return None
        try:
            params = self.params()
            layer = self.input_layer()
            if self.tool.input == "image":   # the frame under the time slider
                rec, frame = self.session.image_from_layer(layer)
                rois = []
                self.frame = frame
                params = self._with_layer_pixel_size(params, layer)
            elif self.tool.input == "fluorescence":
                rec = self.fluorescence_recording(layer)
                # ROIs drawn by hand join the tool's input; ROIs it made itself earlier (same names) do not
                earlier = {c.name for c in getattr(self.result, "candidates", None) or []}
                rois = [r for r in self.session.build_rois() if r.name not in earlier]
            else:
                rec = self.session.recording_from_layer(layer)
                rois = self.session.build_rois()
            rois = self.tool.validate(rec, params, rois)     # refused here, in the GUI's thread, not in the worker
        except MicromotionError as exc:
            notify_error(exc)
            self.status.setText(capitalised(str(exc)))
            return None
        task = Task(lambda: self.tool.iter_run(rec, params, rois=rois), what=f"the {self.tool.label}",
                    title=f"micromotion {self.tool.label}", parent=self)
        return self.launch(task, button=self.run_button, on_success=lambda res: self._on_success(res, layer),
                           status=f"Running the {self.tool.label} on {layer.name}...",
                           failed=f"{capitalised(self.tool.label)} failed")

    def _with_layer_pixel_size(self, params: Any, layer: Any) -> Any:
        """*params* with the layer's pixel size when the form leaves it to the tool (an image tool's 'pixel size'
        empty), as the command line takes the file's; said in a notification."""
        from napari.utils.notifications import show_info

        from ..tools.base import with_source_pixel_size

        px = self.session.layer_pixel_size(layer)
        given = with_source_pixel_size(params, px)
        if given is None:
            return params
        show_info(f"The {self.tool.label} uses the pixel size of {layer.name!r}, {px:g} µm (set 'pixel size' to "
                  "override it).")
        return given

    def _on_success(self, result: Any, layer: Any) -> None:
        from napari.utils.notifications import show_info, show_warning

        self.result = result
        self.show_result(result, layer)
        self.show_view(result)
        self.progress.setValue(1000)
        self.export_button.setEnabled(True)
        self.status.setText(f"Done: {self.tool.label}.")
        self.session.task_ended.emit(f"{self.tool.label[:1].upper()}{self.tool.label[1:]} finished.")   # the footer
        for w in result.warnings:
            show_warning(in_gui_words(w, self.tool.Params))
        show_info(f"{self.tool.label} finished.")

    def show_result(self, result: Any, source_layer: Any = None) -> list[Any]:
        """Add or update the tool's layers (placed like the input layer, in space and time).

        A layer of an earlier run is updated with every property the tool asks for (not only its
        data); earlier layers this run does not make are removed, except those the user renamed.
        """
        made = []
        for data, kwargs, kind in self.tool.layer_data(result):
            kwargs = dict(kwargs)
            name = kwargs.get("name")
            meta = {**(kwargs.pop("metadata", {}) or {}).get(META_KEY, {}), "role": "result", "tool": self.tool.name,
                    "layer_name": name}
            stretch = float(kwargs.pop("time_stretch", 1) or 1)   # K frames per input frame interval
            nd = _layer_ndim(data, kind)
            if source_layer is not None and 0 < nd <= source_layer.ndim:
                # placed like the input layer (an image tool's 2D result: like its last two axes); the tool's own
                # scale (its pixel size) only places it when there is no input layer to follow
                kwargs["scale"], kwargs["translate"] = source_layer.scale[-nd:], source_layer.translate[-nd:]
                if stretch != 1 and nd == source_layer.ndim:   # a faster video: frames line up in time
                    kwargs["scale"] = [source_layer.scale[0] / stretch, *kwargs["scale"][1:]]
            existing = [la for la in self.viewer.layers if la.name == name and plugin_meta(la).get("tool") == self.tool.name
                        and not renamed_by_user(la)]
            if existing:
                layer = existing[0]
                layer.data = data
                for key, value in kwargs.items():
                    if key == "name":
                        continue
                    if key == "contrast_limits":
                        layer.contrast_limits_range = value
                    setattr(layer, key, value)
                layer.metadata = {**layer.metadata, META_KEY: meta}
                made.append(layer)
            else:
                made.append(getattr(self.viewer, f"add_{kind}")(data, metadata={META_KEY: meta}, **kwargs))
        for layer in list(self.viewer.layers):     # what an earlier run showed and this one does not (no arrows now)
            m = plugin_meta(layer)
            if (m.get("tool") == self.tool.name and m.get("role") == "result" and layer not in made
                    and not renamed_by_user(layer)):
                self.viewer.layers.remove(layer)
        return made

    def show_view(self, result: Any) -> Any:
        """Show *result* in the tool's page of the inspector (its :attr:`~Tool.result_view`), if it has one."""
        if not self.tool.result_view:
            return None
        from .inspector import dock_inspector

        inspector = dock_inspector(self.viewer)     # the one docked now (the user may have closed the first)
        if self.view is None or inspector is not self._inspector:
            import importlib

            module, _, cls = self.tool.result_view.partition(":")
            view = getattr(importlib.import_module(module), cls)(self.viewer)
            self.view = inspector.add_page(self.tool.label[:1].upper() + self.tool.label[1:], view)
            self._inspector = inspector
        self.view.set_result(result)
        self._inspector.show_page(self.tool.label[:1].upper() + self.tool.label[1:])
        return self.view

    # ------------------------------------------------------------ export
    def _export_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, f"Export the {self.tool.label} results", f"{self.tool.name}-output")[0]
        if path:
            self.export(path, overwrite=Path(path).exists())

    def export(self, path: str | Path, *, overwrite: bool = False) -> Any:
        """Write the tool's output folder in the background; returns the task."""
        if self.result is None:
            notify_error(MicromotionError(f"run the {self.tool.label} first; there is nothing to export."))
            return None
        if export_running(self.export_task):
            return None
        result, tool = self.result, self.tool
        if tool.export_options:     # what to write is chosen now, in the form as it is (not frozen at the run)
            import dataclasses

            from ..schema import replace_path

            values = self.form.values()
            chosen = {k: values[k] for k in tool.export_options if k in values}
            result = dataclasses.replace(result, params=replace_path(result.params, chosen))

        def work():
            yield Progress("export", 0.0, str(path))
            out = tool.write(result, path, overwrite=overwrite)
            yield Progress("export", 1.0, str(out))
            return out

        task = Task(work, what="the export", title="micromotion", parent=self)
        task.succeeded.connect(lambda out: self.status.setText(f"Written to {out}."))
        task.failed.connect(lambda msg: self.status.setText(f"Not exported: {msg}"))
        self.export_task = task
        self.status.setText(f"Writing {path}...")
        return task.start()


def _layer_ndim(data: Any, kind: str) -> int:
    """Dimensions of the layer *data* makes (vectors, points and shapes: their coordinates' length)."""
    if kind == "shapes" and isinstance(data, (list, tuple)):   # a list of (N, D) vertex arrays
        return int(np.asarray(data[0]).shape[-1]) if len(data) else 0
    shape = getattr(data, "shape", ())
    if kind in ("vectors", "points"):
        return int(shape[-1]) if len(shape) >= 2 else 0
    return len(shape)
