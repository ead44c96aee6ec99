"""The Results widget: summary, result layers, band-passed stack, export and import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .._layers import plugin_meta
from ..errors import MicromotionError
from ..methods import label_of
from ..progress import Progress
from ._state import get_session, unwrap_viewer
from .forms import in_gui_words
from .result_layers import add_zarr_stacks, iter_bandpassed, show_bandpassed, show_region_maps

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..results import Results

__all__ = ["ResultsWidget"]


# ---------------------------------------------------------------- widget
class ResultsWidget(QWidget):
    """Summary of the current result, its layers, the band-passed stack, export and import."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.bandpass_task: Any = None
        self.export_task: Any = None
        self.last_export: Path | None = None

        self.summary = QLabel("No result yet: run an analysis or open a results folder.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #e6a23c;")
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(150)
        self.layer_list.itemClicked.connect(self._select_layer)
        self.weights_check = QCheckBox("show the 3D network's weights (Fig. 5)")
        self.weights_check.setChecked(False)
        self.weights_check.setToolTip("The dense weights of each ROI's 3D network over the ROI: where in the ROI the "
                                      "motion that predicts calcium comes from.")
        self.weights_check.toggled.connect(self.show_weights)
        self.bandpass_button = QPushButton("Show band-passed stack")
        self.bandpass_button.setToolTip("Band-pass the transmission with this result's passband (a new image layer).")
        self.bandpass_button.clicked.connect(self.compute_bandpassed)
        self.export_button = QPushButton("Export results...")
        self.export_button.setToolTip("Write the CLI's output folder: maps, traces.csv, roi_scores.csv, run.json, report.")
        self.export_button.clicked.connect(self._export_dialog)
        self.open_button = QPushButton("Open results folder...")
        self.open_button.clicked.connect(self._open_dialog)

        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.warnings)
        lay.addWidget(QLabel("Result layers:"))
        lay.addWidget(self.layer_list)
        lay.addWidget(self.weights_check)
        row = QHBoxLayout()
        row.addWidget(self.bandpass_button)
        row.addWidget(self.export_button)
        lay.addLayout(row)
        lay.addWidget(self.open_button)
        lay.addStretch(1)
        self.session.results_changed.connect(self.refresh)
        layers = napari_viewer.layers          # the list follows layers the user removes or renames
        layers.events.inserted.connect(self._refresh_list)
        layers.events.removed.connect(self._refresh_list)
        layers.events.inserted.connect(lambda e: e.value.events.name.connect(self._refresh_list))
        for layer in layers:
            layer.events.name.connect(self._refresh_list)
        self.refresh(self.session.results)

    # ------------------------------------------------------------ view
    def refresh(self, results: "Results | None" = None) -> None:
        results = self.session.results
        has = results is not None
        self.bandpass_button.setEnabled(has and self.session.recording is not None)
        self.export_button.setEnabled(has)
        self.layer_list.clear()
        if not has:
            self.summary.setText("No result yet: run an analysis or open a results folder.")
            self.warnings.setText("")
            return
        prov = self.session.provenance_dict()
        v0, v1 = results.validation
        pb = results.passband
        band = f"{pb.get('low_hz', float('nan')):g}-{pb.get('high_hz', float('nan')):g} Hz" if pb else "?"
        run = f"Run {prov['run']}: " if prov.get("run") else ""
        scored = f"scored on frames {v0}:{v1}" if results.has_fluorescence else "no fluorescence: motion and beats"
        self.summary.setText(
            f"{run}{', '.join(label_of(m) for m in results.methods)} on {results.n_frames} frames at "
            f"{results.fps:g} fps; {band}; {scored}; {len(results.roi_names)} ROI(s)"
            + (f"; {results.timings_s['total']:.1f} s" if "total" in results.timings_s else "") + ".")
        self.warnings.setText("\n".join(f"- {in_gui_words(w)}" for w in results.warnings))
        self._refresh_list()

    def _refresh_list(self, event: Any = None) -> None:
        """The result layers in the viewer now."""
        self.layer_list.clear()
        if self.session.results is None:
            return
        for layer in self.viewer.layers:
            meta = plugin_meta(layer)
            if meta.get("role") == "result" and not meta.get("tool"):     # the analysis' layers, not a tool's
                self.layer_list.addItem(layer.name)

    def _select_layer(self, item: Any) -> None:
        name = item.text()
        for layer in self.viewer.layers:
            if layer.name == name:
                self.viewer.layers.selection.active = layer

    def show_weights(self, visible: bool) -> None:
        """Show (first feature of each ROI) or hide the 3D weight layers."""
        show_region_maps(self.viewer, visible)

    # ------------------------------------------------------------ band-passed stack
    def compute_bandpassed(self) -> Any:
        """Band-pass the analysed recording in the background; shows ``band-passed`` when done."""
        from ._tasks import Task, notify_error

        results, rec = self.session.results, self.session.recording
        if results is None or rec is None:
            notify_error(MicromotionError("run an analysis first: the band-pass uses its passband and recording."))
            return None
        if self.bandpass_task is not None and self.bandpass_task.running:
            return self.bandpass_task
        prov = self.session.provenance_dict()
        trans = self.session.layer(prov.get("transmission_layer"))
        if trans is None:
            trans = self.session.transmission_layer()
        task = Task(lambda: iter_bandpassed(rec, results), what="the band-pass", title="micromotion", parent=self)
        task.succeeded.connect(lambda stack: (show_bandpassed(self.viewer, stack, results, prov, trans), self.refresh()))
        task.finished.connect(lambda: self.bandpass_button.setEnabled(self.session.results is not None))
        self.bandpass_button.setEnabled(False)
        self.bandpass_task = self.session.bandpass_task = task
        return task.start()

    # ------------------------------------------------------------ export / import
    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export results to a new folder", "micromotion-results")
        if not path:
            return
        overwrite = False
        if Path(path).exists():
            answer = QMessageBox.question(self, "Replace results?", f"{path} exists. Replace it?")
            if answer != QMessageBox.StandardButton.Yes:
                return
            overwrite = True
        self.export_results(path, overwrite=overwrite)

    def export_results(self, path: str | Path, *, overwrite: bool = False) -> Any:
        """Write the CLI's output layout to *path* in the background (atomically); returns the task."""
        from ._tasks import Task, export_running

        results = self.session.results
        if results is None:
            from ._tasks import notify_error

            notify_error(MicromotionError("there is no result to export; run an analysis first."))
            return None
        if export_running(self.export_task):
            return None
        prov = self.session.provenance_dict()
        rec = self.session.recording
        inputs = dict(rec.provenance) if rec is not None else {}

        def work() -> Generator[Progress, None, Path]:
            from ..export import write_results

            yield Progress("export", 0.0, str(path))
            out = write_results(results, path, overwrite=overwrite, inputs=inputs, extra={"napari": prov},
                                save_models=True)
            yield Progress("export", 1.0, str(out))
            return out

        task = Task(work, what="the export", title="micromotion", parent=self)

        def done(out: Path) -> None:
            from napari.utils.notifications import show_info

            self.last_export = Path(out)
            show_info(f"Results written to {out}.")

        task.succeeded.connect(done)
        self.export_task = task
        return task.start()

    def _open_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open an analysis output folder")
        if path:
            self.open_results(path)

    def open_results(self, path: str | Path) -> "Results | None":
        """Show the results of an output folder of ``micromotion analyze`` (errors as a notification)."""
        from ..results_io import read_results
        from ._tasks import notify_error

        try:
            results = read_results(path)
        except MicromotionError as exc:
            notify_error(exc)
            return None
        self.session.adopt_results(results, source=str(Path(path).resolve()))
        add_zarr_stacks(self.viewer, path, results)
        from napari.utils.notifications import show_warning

        from ..results_io import read_run_json
        from ._tasks import capitalised

        of_the_run = set(read_run_json(path).get("warnings", []))
        for text in results.warnings:          # what reading the folder found (damaged or missing files)
            if text not in of_the_run:
                show_warning(capitalised(in_gui_words(text)))
        return results
