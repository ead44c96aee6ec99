"""Analysis widget: methods, their parameters (the paper's defaults), Run and Cancel.

The method boxes come from the method registry and the form from the parameter
schema (:func:`napari_micromotion.pipeline.analysis_specs`), so it always shows every
parameter the CLI has, with the same defaults and the schema's help as tooltips.  Run builds the recording and ROIs
from the other widgets' choices and runs
:func:`~napari_micromotion.pipeline.iter_analysis` in a background worker
(:class:`._tasks.Task`): a napari progress bar per stage, Cancel stops at the next
chunk or training step, and results are applied only when the run completes, so a
cancelled or failed run changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ..errors import MicromotionError, check
from ..methods import label_of
from ..progress import Progress
from ._state import get_session, unwrap_viewer
from ._tasks import Task, TaskHost, capitalised, notify_error
from .forms import ParamForm, in_gui_words
from .plots import LossPlot

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..pipeline import AnalysisParams, Results

__all__ = ["AnalysisWidget"]

class AnalysisWidget(TaskHost, QWidget):
    """Choose methods and parameters; run the analysis in the background; cancel it."""

    #: emitted with the Results of a completed run (after the layers were updated)
    finished_run = Signal(object)

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        from ..methods import METHODS
        from ..pipeline import AnalysisParams, analysis_specs

        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.task: Task | None = None
        self.last_results: Results | None = None
        defaults = AnalysisParams()

        self.method_boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        for i, m in enumerate(METHODS):
            box = QCheckBox(m.label)
            box.setChecked(m.name in defaults.methods)
            box.setObjectName(f"method_{m.name}")
            box.setToolTip(m.description[:1].upper() + m.description[1:] + ".")
            self.method_boxes[m.name] = box
            grid.addWidget(box, i // 2, i % 2)

        self.form = ParamForm(analysis_specs(), expanded=("General",))
        self.editors = self.form.editors
        self.section_widgets = self.form.sections
        self.validation_hint = QLabel("")
        self.validation_hint.setWordWrap(True)
        self.model_paths: dict[str, QLineEdit] = {}
        models = QFormLayout()
        for m in METHODS:
            if not m.model_flag:
                continue
            edit = QLineEdit()
            edit.setPlaceholderText(f"fit a new {m.label}")
            edit.setToolTip(f"A saved {m.label} (.safetensors) to apply instead of fitting one.")
            browse = QPushButton("...")
            browse.setMaximumWidth(30)
            browse.clicked.connect(lambda _=False, e=edit, label=m.label: self._browse_model(e, label))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(browse)
            models.addRow(f"saved {m.label}", row)
            self.model_paths[m.name] = edit

        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)

        self.loss_plot = LossPlot(viewer=self.viewer)
        self.loss_plot.setVisible(False)

        content = QWidget()
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.form)
        if models.rowCount():
            inner.addLayout(models)
        inner.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumHeight(80)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        title = QLabel("Methods")
        title.setStyleSheet("font-weight: bold;")
        lay.addWidget(title)
        lay.addLayout(grid)
        lay.addWidget(self.validation_hint)
        lay.addWidget(scroll, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.loss_plot)

        self.session.recording_changed.connect(self._update_availability)
        napari_viewer.layers.events.inserted.connect(self._update_availability)
        napari_viewer.layers.events.removed.connect(self._update_availability)
        self.session.recording_changed.connect(self._update_hint)
        napari_viewer.layers.events.inserted.connect(self._update_hint)
        napari_viewer.layers.events.removed.connect(self._update_hint)
        self.editors["validation"].widget.textChanged.connect(self._update_hint)
        self._update_hint()
        self._update_availability()

    # ------------------------------------------------------------ parameters
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, box in self.method_boxes.items() if box.isChecked())

    def set_methods(self, methods: tuple[str, ...] | list[str]) -> None:
        for m, box in self.method_boxes.items():
            box.setChecked(m in methods)

    def params(self) -> "AnalysisParams":
        """The :class:`AnalysisParams` in the form (raises :class:`MicromotionError` for bad entries)."""
        from ..pipeline import AnalysisParams

        return AnalysisParams(methods=self.methods()).replace_values(self.form.values())

    def set_params(self, params: "AnalysisParams") -> None:
        """Show *params* in the form."""
        self.form.set_from(params)
        self.set_methods(params.methods)

    def set_value(self, path: str, value: Any) -> None:
        """Set one parameter by its dotted name (``"cnn1d.epochs"``)."""
        self.editors[path].set(value)

    def _update_availability(self, *_: Any) -> None:
        """Grey out the methods this recording cannot run, and say why."""
        from ..methods import METHODS

        has_fl = self.session.fluorescence_layer() is not None or self._two_channel()
        for name, box in self.method_boxes.items():
            m = METHODS.get(name)
            needs = m is not None and m.requires.fluorescence
            ok = has_fl or not needs
            box.setEnabled(ok)
            tip = m.description[:1].upper() + m.description[1:] + "." if m is not None else name
            if not ok:
                box.setChecked(False)
                tip = f"Needs a fluorescence recording (this one has none): it learns from the calcium. {tip}"
            box.setToolTip(tip)
        if not any(b.isChecked() for b in self.method_boxes.values()):
            for name, box in self.method_boxes.items():
                if box.isEnabled() and METHODS.get(name) is not None and METHODS[name].default:
                    box.setChecked(True)

    def _two_channel(self) -> bool:
        layer = self.session.transmission_layer()
        return layer is not None and getattr(layer.data, "ndim", 0) == 4 and layer.data.shape[1] == 2

    def _update_hint(self, *_: Any) -> None:
        from ..pipeline import default_validation

        layer = self.session.transmission_layer()
        if layer is None:
            self.validation_hint.setText("auto: the paper's split (frames 0:3072 of >= 10570, else the first 29 %).")
            return
        n = int(layer.data.shape[0])
        v0, v1 = default_validation(n)
        self.validation_hint.setText(f"auto: frames {v0}:{v1} of {n} are scored, the rest trains.")

    def _browse_model(self, edit: QLineEdit, label: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Saved {label}", "", "Models (*.safetensors)")
        if path:
            edit.setText(path)

    # ------------------------------------------------------------ running
    def run(self) -> Task | None:
        """Start the analysis in the background; returns the task (``None`` if it could not start)."""
        from ..pipeline import iter_analysis

        if self.running:
            notify_error(MicromotionError("an analysis is already running; cancel it or wait."))
            return None
        try:
            params = self.params()
            check(params.methods, "choose at least one method.")
            rec = self.session.build_recording()
            rois = self.session.build_rois()
            from ..methods import METHODS

            fitted = {name: METHODS[name].load_model(edit.text().strip())
                      for name, edit in self.model_paths.items() if edit.text().strip()}
        except MicromotionError as exc:
            notify_error(exc)
            self.status.setText(capitalised(str(exc)))
            return None
        rois_layer = self.session.rois_layer()

        task = Task(lambda: iter_analysis(rec, rois, params, fitted=fitted), what="the analysis",
                    title="micromotion", parent=self)
        task.finished.connect(self._on_finished)
        self.session.set_busy(True)
        return self.launch(task, button=self.run_button, on_success=lambda res: self._on_success(res, rec, rois_layer, rois),
                           status=f"Running {', '.join(label_of(m) for m in params.methods)} on {rec.describe()}",
                           cancelled="Cancelled; the previous results are unchanged.")

    def _on_success(self, results: "Results", rec: Any, rois_layer: Any, rois: list) -> None:
        from napari.utils.notifications import show_info, show_warning

        if rois_layer is not None and rois_layer not in self.viewer.layers:
            rois_layer = None
        prov = self.session.new_provenance(rec, rois_layer)
        self.session.set_results(results, recording=rec, provenance=prov)
        if rois_layer is not None and self._rois_changed_since(rois_layer, rois):
            self.session.schedule_retrace()  # ROIs were edited while the analysis ran
        self.last_results = results
        self.progress.setValue(1000)
        total = results.timings_s.get("total", float("nan"))
        self.status.setText(f"Done in {total:.1f} s: {', '.join(label_of(m) for m in results.methods)}.")
        self.session.progressed.emit(Progress("done", 1.0, f"analysis finished in {total:.1f} s", overall=1.0))
        for w in results.warnings:
            show_warning(in_gui_words(w))
        show_info(f"Micromotion analysis finished in {total:.1f} s.")
        self.finished_run.emit(results)

    def _rois_changed_since(self, layer: Any, rois: list) -> bool:
        try:
            now = self.session.build_rois(layer)
        except MicromotionError:
            return True
        return [(r.name, r.kind) for r in now] != [(r.name, r.kind) for r in rois] or not all(
            a.polygon.shape == b.polygon.shape and np.allclose(a.polygon, b.polygon) for a, b in zip(now, rois))

    def _on_finished(self) -> None:
        self.session.set_busy(False)
        if self.task is not None and self.task.result is None:
            self.progress.setValue(0)
