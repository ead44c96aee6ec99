"""Analysis widget: methods, their parameters (the paper's defaults), Run and Cancel.

Defaults are read from the core's parameter dataclasses
(:class:`~napari_micromotion.pipeline.AnalysisParams` and the per-method ones), so
the form always shows what the CLI would use.  Run builds the recording and ROIs
from the other widgets' choices and runs
:func:`~napari_micromotion.pipeline.iter_analysis` in a background worker
(:class:`._tasks.Task`): a napari progress bar per stage, Cancel stops at the next
chunk or training step, and results are applied only when the run completes, so a
cancelled or failed run changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout,
                            QLabel, QLineEdit, QProgressBar, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from ..errors import MicromotionError, check
from ..progress import Progress
from ._state import get_session, unwrap_viewer
from ._tasks import Task, notify_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..pipeline import AnalysisParams, Results

__all__ = ["AnalysisWidget", "PARAMETERS"]

#: (section, dotted field of AnalysisParams, label, editor, options) - rows whose field the
#: installed core lacks are skipped.
PARAMETERS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("General", "low_hz", "band-pass low edge (Hz)", "float", {"min": 0.01, "max": 1e4, "none": 2.0, "decimals": 2}),
    ("General", "high_hz", "band-pass high edge (Hz)", "float?", {"min": 0.0, "max": 1e4, "none_text": "auto (15 Hz)",
                                                                   "decimals": 2}),
    ("General", "filter_order", "filter order", "int", {"min": 1, "max": 8}),
    ("General", "padtype", "edge padding", "choice", {"choices": ("mean", "odd")}),
    ("General", "validation", "validation frames", "validation", {}),
    ("General", "max_lag_s", "max lag (s)", "float?", {"min": -1.0, "max": 1e4, "none_text": "full", "none_at": -1.0,
                                                        "decimals": 3}),
    ("General", "ground_truth", "ground truth", "choice", {"choices": ("dff", "sum")}),
    ("General", "baseline_window_s", "baseline window (s)", "float", {"min": 0.01, "max": 1e5, "decimals": 2}),
    ("General", "roi_truth", "per-ROI ground truth", "bool", {}),
    ("General", "seed", "seed", "int", {"min": 0, "max": 2**31 - 1}),
    ("General", "n_surrogates", "p-value surrogates", "int", {"min": 1, "max": 1_000_000}),
    ("General", "device", "device", "choice", {"choices": ("auto", "cpu", "cuda")}),
    ("General", "chunk_mb", "memory per chunk (MiB)", "int", {"min": 1, "max": 1_000_000}),
    ("Matched filter", "matched.pre_s", "template before onset (s)", "float", {"min": 0.0, "max": 100, "decimals": 3}),
    ("Matched filter", "matched.post_s", "template after onset (s)", "float", {"min": 0.001, "max": 100, "decimals": 3}),
    ("Matched filter", "matched.min_spikes", "min. training spikes", "int", {"min": 1, "max": 100000}),
    ("Matched filter", "matched.threshold_sd", "spike threshold (SD)", "float", {"min": 0.1, "max": 1000, "decimals": 2}),
    ("Matched filter", "matched.refractory_s", "refractory period (s)", "float", {"min": 0.0, "max": 100, "decimals": 3}),
    ("1D CNN", "cnn1d.epochs", "epochs", "int", {"min": 1, "max": 10000}),
    ("1D CNN", "cnn1d.learning_rate", "learning rate", "sci", {}),
    ("1D CNN", "cnn1d.pixels", "training pixels", "choice", {"choices": ("variance", "mixed", "random", "all")}),
    ("1D CNN", "cnn1d.n_pixels", "pixels sampled", "int", {"min": 1, "max": 10**9}),
    ("1D CNN", "cnn1d.window", "window (frames)", "int", {"min": 16, "max": 10**7}),
    ("1D CNN", "cnn1d.batch_size", "batch size", "int", {"min": 1, "max": 100000}),
    ("1D CNN", "cnn1d.input_norm", "input normalisation", "choice", {"choices": ("noise", "relative")}),
    ("1D CNN", "cnn1d.backend", "training backend", "choice", {"choices": ("auto", "fast", "torch")}),
    ("1D CNN", "cnn1d.restarts", "restarts of a dead network", "int", {"min": 0, "max": 100}),
    ("3D network", "cnn3d.mode", "mode", "choice", {"choices": ("fast", "paper")}),
    ("3D network", "cnn3d.solver", "solver", "choice", {"choices": ("adam", "ridge")}),
    ("3D network", "cnn3d.epochs", "epochs", "int", {"min": 1, "max": 100000}),
    ("3D network", "cnn3d.learning_rate", "learning rate", "sci", {}),
    ("3D network", "cnn3d.window", "window (frames)", "int", {"min": 16, "max": 10**7}),
    ("3D network", "cnn3d.dropout", "dropout", "float", {"min": 0.0, "max": 0.99, "decimals": 2}),
    ("3D network", "cnn3d.mc_passes", "MC-dropout passes", "int", {"min": 2, "max": 10000}),
]

_MISSING = object()


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _set(params: Any, values: dict[str, Any]) -> Any:
    """``params`` with dotted *values* replaced (nested frozen dataclasses rebuilt)."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, v in values.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = v
        else:
            top[head] = v
    for head, sub in nested.items():
        top[head] = _set(getattr(params, head), sub)
    return replace(params, **top)


class _Editor:
    """One parameter row: a Qt editor that reads and writes a Python value."""

    def __init__(self, path: str, label: str, kind: str, opts: dict[str, Any], default: Any) -> None:
        self.path, self.label, self.kind, self.opts, self.default = path, label, kind, opts, default
        if kind == "int":
            w = QSpinBox()
            w.setRange(int(opts.get("min", 0)), int(min(opts.get("max", 2**31 - 1), 2**31 - 1)))
        elif kind in ("float", "float?"):
            w = QDoubleSpinBox()
            w.setDecimals(int(opts.get("decimals", 3)))
            w.setRange(float(opts.get("min", 0.0)), float(opts.get("max", 1e9)))
            if kind == "float?":
                w.setSpecialValueText(opts.get("none_text", "auto"))
                w.setMinimumWidth(w.fontMetrics().horizontalAdvance(opts.get("none_text", "auto")) + 50)
        elif kind == "choice":
            w = QComboBox()
            w.addItems(list(opts["choices"]))
        elif kind == "bool":
            w = QCheckBox()
        elif kind == "validation":
            w = QLineEdit()
            w.setPlaceholderText("auto")
            w.setToolTip("START:STOP in frames (0-based, stop excluded); empty: the paper's split.")
        else:  # "sci": a float typed as text (learning rates like 8e-7)
            w = QLineEdit()
        self.widget = w
        w.setObjectName(path)
        self.set(default)

    def set(self, value: Any) -> None:
        w, kind = self.widget, self.kind
        if kind == "int":
            w.setValue(int(value))
        elif kind == "float":
            w.setValue(float(self.opts.get("none", 0.0) if value is None else value))
        elif kind == "float?":
            w.setValue(float(self.opts.get("none_at", w.minimum())) if value is None else float(value))
        elif kind == "choice":
            idx = w.findText(str(value))
            if idx < 0:
                w.addItem(str(value))
                idx = w.findText(str(value))
            w.setCurrentIndex(idx)
        elif kind == "bool":
            w.setChecked(bool(value))
        elif kind == "validation":
            w.setText("" if value is None else f"{int(value[0])}:{int(value[1])}")
        else:
            w.setText(f"{float(value):g}")

    def get(self) -> Any:
        w, kind = self.widget, self.kind
        if kind == "int":
            return int(w.value())
        if kind == "float":
            v = float(w.value())
            # a core default of None means "the paper's value", shown as that value: keep None
            return None if self.default is None and "none" in self.opts and v == float(self.opts["none"]) else v
        if kind == "float?":
            v = float(w.value())
            return None if v <= float(self.opts.get("none_at", w.minimum())) else v
        if kind == "choice":
            return w.currentText()
        if kind == "bool":
            return bool(w.isChecked())
        if kind == "validation":
            from ..pipeline import parse_validation

            text = w.text().strip()
            return None if text.lower() in ("", "auto") else parse_validation(text)
        try:
            v = float(w.text())
        except ValueError:
            raise MicromotionError(f"{self.label} must be a number, got {w.text()!r}.") from None
        check(math.isfinite(v) and v > 0, f"{self.label} must be a positive number, got {w.text()!r}.")
        return v


class AnalysisWidget(QWidget):
    """Choose methods and parameters; run the analysis in the background; cancel it."""

    #: emitted with the Results of a completed run (after the layers were updated)
    finished_run = Signal(object)

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        from ..pipeline import METHOD_LABELS, METHODS, AnalysisParams

        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.task: Task | None = None
        self.last_results: Results | None = None
        defaults = AnalysisParams()

        self.method_boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        for i, m in enumerate(METHODS):
            box = QCheckBox(METHOD_LABELS[m])
            box.setChecked(m in defaults.methods)
            box.setObjectName(f"method_{m}")
            self.method_boxes[m] = box
            grid.addWidget(box, i // 2, i % 2)
        self.method_boxes["cnn3d"].setToolTip("Region-specific network per ROI (draw ROIs first).")

        self.editors: dict[str, _Editor] = {}
        sections: dict[str, QFormLayout] = {}
        self.section_widgets: dict[str, QWidget] = {}
        for section, path, label, kind, opts in PARAMETERS:
            default = _get(defaults, path)
            if default is _MISSING:
                continue
            ed = _Editor(path, label, kind, opts, default)
            self.editors[path] = ed
            if section not in sections:
                sections[section] = QFormLayout()
            sections[section].addRow(label, ed.widget)
        self.validation_hint = QLabel("")
        self.validation_hint.setWordWrap(True)
        if "validation" in self.editors:
            sections["General"].addRow("", self.validation_hint)
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("train a new 1D CNN")
        self.model_path.setToolTip("A saved 1D CNN (.safetensors) to apply instead of training one.")
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse_model)
        row = QHBoxLayout()
        row.addWidget(self.model_path, 1)
        row.addWidget(browse)
        if "1D CNN" in sections:
            sections["1D CNN"].addRow("saved model", row)

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

        content = QWidget()
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(QLabel("Methods"))
        inner.addLayout(grid)
        try:
            from superqt import QCollapsible
        except ImportError:  # pragma: no cover
            QCollapsible = None
        for name, form in sections.items():
            holder = QWidget()
            holder.setLayout(form)
            if QCollapsible is not None:
                coll = QCollapsible(f"{name} parameters")
                coll.addWidget(holder)
                if name == "General":
                    coll.expand(animate=False)
                inner.addWidget(coll)
                self.section_widgets[name] = coll
            else:  # pragma: no cover
                inner.addWidget(QLabel(name))
                inner.addWidget(holder)
                self.section_widgets[name] = holder
        inner.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        lay = QVBoxLayout(self)
        lay.addWidget(scroll, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)

        self.session.recording_changed.connect(self._update_hint)
        napari_viewer.layers.events.inserted.connect(self._update_hint)
        napari_viewer.layers.events.removed.connect(self._update_hint)
        if "validation" in self.editors:
            self.editors["validation"].widget.textChanged.connect(self._update_hint)
        self._update_hint()

    # ------------------------------------------------------------ parameters
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, box in self.method_boxes.items() if box.isChecked())

    def set_methods(self, methods: tuple[str, ...] | list[str]) -> None:
        for m, box in self.method_boxes.items():
            box.setChecked(m in methods)

    def params(self) -> "AnalysisParams":
        """The :class:`AnalysisParams` in the form (raises :class:`MicromotionError` for bad entries)."""
        from ..pipeline import AnalysisParams

        values = {path: ed.get() for path, ed in self.editors.items()}
        values["methods"] = self.methods()
        return _set(AnalysisParams(), values)

    def set_params(self, params: "AnalysisParams") -> None:
        """Show *params* in the form."""
        for path, ed in self.editors.items():
            v = _get(params, path)
            if v is not _MISSING:
                ed.set(v)
        self.set_methods(params.methods)

    def set_value(self, path: str, value: Any) -> None:
        """Set one parameter by its dotted name (``"cnn1d.epochs"``)."""
        self.editors[path].set(value)

    def _update_hint(self, *_: Any) -> None:
        from ..pipeline import default_validation

        layer = self.session.transmission_layer()
        if layer is None:
            self.validation_hint.setText("auto: the paper's split (frames 0:3072 of >= 10570, else the first 29 %).")
            return
        n = int(layer.data.shape[0])
        v0, v1 = default_validation(n)
        self.validation_hint.setText(f"auto: frames {v0}:{v1} of {n} are scored, the rest trains.")

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Saved 1D CNN", "", "Models (*.safetensors)")
        if path:
            self.model_path.setText(path)

    # ------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

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
            model = None
            if self.model_path.text().strip():
                from ..detectors.models import load_cnn1d

                model = load_cnn1d(self.model_path.text().strip())
        except MicromotionError as exc:
            notify_error(exc)
            self.status.setText(str(exc))
            return None
        rois_layer = self.session.rois_layer()

        task = Task(lambda: iter_analysis(rec, rois, params, model_1d=model), what="the analysis",
                    title="micromotion", parent=self)
        task.progressed.connect(self._on_progress)
        task.succeeded.connect(lambda res: self._on_success(res, rec, rois_layer, rois))
        task.failed.connect(lambda msg: self.status.setText(f"Failed: {msg}"))
        task.cancelled.connect(self._on_cancelled)
        task.finished.connect(self._on_finished)
        self.task = task
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(f"Running {', '.join(params.methods)} on {rec.describe()}")
        self.session.set_busy(True)
        task.start()
        return task

    def cancel(self) -> None:
        """Stop the running analysis at its next step; earlier results stay."""
        if self.running:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling...")

    def _on_progress(self, event: Progress) -> None:
        if not self.running:
            return
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, event.fraction)))))
        self.status.setText(f"{event.stage}: {event.message}" if event.message else event.stage)

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
        self.status.setText(f"Done in {total:.1f} s: {', '.join(results.methods)}.")
        for w in results.warnings:
            show_warning(w)
        show_info(f"Micromotion analysis finished in {total:.1f} s.")
        self.finished_run.emit(results)

    def _rois_changed_since(self, layer: Any, rois: list) -> bool:
        try:
            now = self.session.build_rois(layer)
        except MicromotionError:
            return True
        return [(r.name, r.kind) for r in now] != [(r.name, r.kind) for r in rois] or not all(
            a.polygon.shape == b.polygon.shape and np.allclose(a.polygon, b.polygon) for a, b in zip(now, rois))

    def _on_cancelled(self) -> None:
        self.status.setText("Cancelled; the previous results are unchanged.")

    def _on_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.session.set_busy(False)
        if self.task is not None and self.task.result is None:
            self.progress.setValue(0)
