"""Result layers (updated by name) and the Results widget.

Layers made from :class:`~napari_micromotion.pipeline.Results` (paper Figs. 3 and 5):

``still frame``
    mean transmission image, grey;
``score: <method>``
    one per method, ``magma`` (perceptual), additive blending over the still frame,
    one colour scale shared by all methods (0 to the highest score);
``delay: <method>``
    lag at the score maximum in seconds, diverging ``RdBu_r`` symmetric around 0;
``fluorescence activity``
    score of each fluorescence pixel (the ground truth's map, Fig. 3e);
``weights: <roi> [1|2|3]``
    the 3D network's dense weights per ROI, three layers at the ROI's bounding box,
    ``RdBu_r`` with one symmetric colour scale per ROI (max |w| over its three maps), Fig. 5;
``band-passed``
    the band-passed transmission stack, computed on demand.

Every layer carries ``metadata["napari_micromotion"]`` with ``role="result"``, the
parameters and the provenance of the run.  Re-running replaces the data of layers
with the same name (and removes result layers the new run no longer makes)
instead of adding copies.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QMessageBox, QPushButton,
                            QVBoxLayout, QWidget)

from .._layers import META_KEY
from ..errors import MicromotionError, check
from ..progress import Progress
from ._state import get_session, unwrap_viewer, plugin_meta, spatial_transform

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..pipeline import Results
    from ..recording import Recording

__all__ = ["apply_results", "result_layer_names", "ResultsWidget", "iter_bandpassed", "STILL", "BANDPASSED",
           "score_name", "delay_name", "weights_name", "ACTIVITY"]

STILL = "still frame"
ACTIVITY = "fluorescence activity"
BANDPASSED = "band-passed"
SCORE_CMAP = "magma"
DIVERGING_CMAP = "RdBu_r"


def _label(method: str) -> str:
    from ..pipeline import METHOD_LABELS

    return METHOD_LABELS.get(method, method)


def score_name(method: str) -> str:
    return f"score: {_label(method)}"


def delay_name(method: str) -> str:
    return f"delay: {_label(method)}"


def weights_name(roi: str, feature: int) -> str:
    return f"weights: {roi} [{feature}]"


def _run_meta(results: "Results", provenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "result",
        "parameters": results.params.to_dict(),
        "methods": list(results.methods),
        "passband": dict(results.passband),
        "validation_frames": list(results.validation),
        "training_frames": [list(s) for s in results.training],
        "fps": results.fps,
        "pixel_size_um": results.pixel_size_um,
        "device": results.device,
        "warnings": list(results.warnings),
        "provenance": dict(provenance),
    }


def result_layer_names(results: "Results") -> list[str]:
    """Names of the layers :func:`apply_results` makes for *results* (bottom to top)."""
    from ..pipeline import METHODS

    names = [STILL]
    if results.activity_map is not None:
        names.append(ACTIVITY)
    names += [delay_name(m) for m in METHODS if m in results.lag_maps]
    names += [score_name(m) for m in METHODS if m in results.score_maps]
    for roi in results.weights:
        names += [weights_name(roi, k) for k in (1, 2, 3)]
    return names


def _upsert(viewer: "napari.Viewer", name: str, data: np.ndarray, *, meta: dict[str, Any],
            contrast_limits: tuple[float, float], scale: np.ndarray, translate: np.ndarray, **new_kwargs: Any) -> Any:
    """Update the plugin's layer called *name* in place, or add it."""
    for layer in viewer.layers:
        if layer.name == name and plugin_meta(layer).get("role") == "result":
            layer.data = data
            layer.scale = scale
            layer.translate = translate
            layer.contrast_limits_range = contrast_limits
            layer.contrast_limits = contrast_limits
            layer.metadata = {**{k: v for k, v in layer.metadata.items() if k != META_KEY}, META_KEY: meta}
            layer.refresh()
            return layer
    return viewer.add_image(data, name=name, contrast_limits=contrast_limits, scale=scale, translate=translate,
                            metadata={META_KEY: meta}, **new_kwargs)


def _limits(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def apply_results(viewer: "napari.Viewer", results: "Results", provenance: dict[str, Any] | None = None, *,
                  transmission: Any = None, keep_bandpassed: bool = False) -> list[Any]:
    """Show *results* as layers, updating existing ones by name; returns the result layers.

    Spatial placement follows the *transmission* layer (scale and translate of its
    row/column axes), else the pixel size of the results.
    """
    from ..pipeline import METHODS

    provenance = provenance or {}
    base = _run_meta(results, provenance)
    if transmission is not None:
        scale, translate = spatial_transform(transmission)
    else:
        px = results.pixel_size_um or 1.0
        scale, translate = np.array([px, px], float), np.zeros(2)
    active = viewer.layers.selection.active
    existing = {layer.name for layer in viewer.layers}
    made: list[Any] = []
    lo, hi = (float(v) for v in np.percentile(results.still, [0.5, 99.5]))
    # a dim still frame (at most half brightness), so the additive score maps stand out on it
    made.append(_upsert(viewer, STILL, np.asarray(results.still, np.float32), meta={**base, "result": "still"},
                        contrast_limits=_limits(lo, hi + (hi - lo)), scale=scale, translate=translate,
                        colormap="gray"))
    if results.activity_map is not None:
        amax = float(np.nanmax(results.activity_map)) if np.isfinite(results.activity_map).any() else 1.0
        made.append(_upsert(viewer, ACTIVITY, np.asarray(results.activity_map, np.float32),
                            meta={**base, "result": "activity"}, contrast_limits=_limits(0.0, amax),
                            scale=scale, translate=translate, colormap=SCORE_CMAP, blending="additive",
                            visible=False))
    max_lag = results.params.max_lag_s
    for m in METHODS:
        if m not in results.lag_maps:
            continue
        lag = np.asarray(results.lag_maps[m], np.float32)
        lim = float(max_lag) if max_lag else float(np.nanmax(np.abs(lag))) if lag.size else 1.0
        made.append(_upsert(viewer, delay_name(m), lag, meta={**base, "result": "delay", "method": m, "unit": "s"},
                            contrast_limits=_limits(-lim, lim), scale=scale, translate=translate,
                            colormap=DIVERGING_CMAP, visible=False))
    smax = max([float(np.nanmax(v)) for v in results.score_maps.values() if np.isfinite(v).any()] + [1e-6])
    shown = [m for m in METHODS if m in results.score_maps]
    top = shown[-1] if shown else None
    for m in shown:
        made.append(_upsert(viewer, score_name(m), np.asarray(results.score_maps[m], np.float32),
                            meta={**base, "result": "score", "method": m}, contrast_limits=_limits(0.0, smax),
                            scale=scale, translate=translate, colormap=SCORE_CMAP, blending="additive",
                            visible=(m == top), opacity=0.9))
    for roi, (box, w) in results.weights.items():
        r0, r1, c0, c1 = (int(v) for v in box)
        w = np.asarray(w, np.float32)
        vmax = float(np.abs(w).max()) if w.size and np.isfinite(w).all() else 1.0
        vmax = vmax or 1.0
        for k in range(w.shape[0]):
            made.append(_upsert(viewer, weights_name(roi, k + 1), w[k],
                                meta={**base, "result": "weights", "roi": roi, "feature": k + 1,
                                      "box_row0_row1_col0_col1": [r0, r1, c0, c1], "vmax": vmax},
                                contrast_limits=(-vmax, vmax), scale=scale,
                                translate=translate + np.array([r0, c0]) * scale, colormap=DIVERGING_CMAP,
                                opacity=0.8, visible=(k == 0)))
    keep = {layer.name for layer in made}
    for layer in list(viewer.layers):
        meta = plugin_meta(layer)
        if meta.get("role") != "result" or layer.name in keep:
            continue
        if layer.name == BANDPASSED and (keep_bandpassed or meta.get("passband") == dict(results.passband)):
            continue
        viewer.layers.remove(layer)
    _raise_shapes(viewer)
    if active is not None and active in viewer.layers and active.name in existing:
        viewer.layers.selection.active = active
    return made


def add_zarr_stacks(viewer: "napari.Viewer", folder: str | Path, results: "Results") -> list[Any]:
    """Show the chunked zarr stacks of an output folder lazily (band-passed video, per-pixel predictions).

    ``micromotion analyze --save-filtered/--save-predictions`` writes them; napari reads only the
    chunks it displays (dask), so stacks larger than memory open instantly.
    """
    import dask.array as da

    folder = Path(folder)
    stacks = []
    if (folder / "filtered.zarr").exists():
        stacks.append(("band-passed (zarr)", folder / "filtered.zarr", "bandpassed"))
    stacks += [(f"prediction: {_label(p.stem)}", p, "prediction") for p in sorted((folder / "predictions").glob("*.zarr"))]
    px = results.pixel_size_um or 1.0
    layers = []
    for name, path, role in stacks:
        arr = da.from_zarr(str(path))
        meta = {"role": role, "source": str(path), "lazy": True}
        existing = [lyr for lyr in viewer.layers if lyr.name == name and plugin_meta(lyr).get("role") == role]
        sample = np.asarray(arr[: min(50, arr.shape[0])])
        lo, hi = _limits(*np.percentile(sample, [0.5, 99.5]))
        if existing:
            existing[0].data = arr
            layers.append(existing[0])
            continue
        layers.append(viewer.add_image(arr, name=name, scale=(1.0, px, px), colormap="magma", visible=False,
                                       contrast_limits=(lo, hi), metadata={META_KEY: meta}))
    return layers


def _raise_shapes(viewer: "napari.Viewer") -> None:
    """Keep ROI outlines (shapes layers) above the result images."""
    from napari.layers import Shapes

    n = len(viewer.layers)
    for layer in [la for la in viewer.layers if isinstance(la, Shapes)]:
        i = viewer.layers.index(layer)
        if i != n - 1:
            viewer.layers.move(i, n)


# ---------------------------------------------------------------- band-passed stack
def iter_bandpassed(rec: "Recording", results: "Results", chunk_mb: int = 64) -> Generator[Progress, None, np.ndarray]:
    """The band-passed transmission ``(T, Y, X)`` float32 with the design of *results*, in row chunks."""
    from ..filters import bandpass, design_bandpass
    from ..io import default_memory_budget

    pb = results.passband
    design = design_bandpass(rec.fps, pb["low_hz"], pb["high_hz"], int(pb["order"]),
                             padtype=pb.get("padtype", results.params.padtype))
    n_t, (ny, nx) = rec.n_frames, rec.frame_shape
    need = n_t * ny * nx * 4
    check(need <= default_memory_budget(),
          f"the band-passed stack needs {need / 2**30:.1f} GiB, more than the memory budget; crop the recording first.")
    out = np.empty((n_t, ny, nx), np.float32)
    rows = max(1, int(chunk_mb * 2**20 // max(n_t * nx * 8, 1)))
    for r0 in range(0, ny, rows):
        r1 = min(r0 + rows, ny)
        x = np.asarray(rec.transmission[:, r0:r1, :]).reshape(n_t, -1)
        out[:, r0:r1, :] = bandpass(x, design).reshape(n_t, r1 - r0, nx)
        yield Progress("band-pass stack", r1 / ny, f"rows {r0}-{r1} of {ny}")
    return out


def show_bandpassed(viewer: "napari.Viewer", stack: np.ndarray, results: "Results", provenance: dict[str, Any],
                    transmission: Any = None) -> Any:
    """Add or update the ``band-passed`` layer."""
    if transmission is not None:
        scale, translate = spatial_transform(transmission)
        scale = np.concatenate([[np.asarray(transmission.scale, float)[0]], scale])
        translate = np.concatenate([[np.asarray(transmission.translate, float)[0]], translate])
    else:
        px = results.pixel_size_um or 1.0
        scale, translate = np.array([1.0, px, px]), np.zeros(3)
    sample = stack[:: max(1, stack.shape[0] // 50)]
    lim = float(np.percentile(np.abs(sample), 99.5)) if sample.size else 1.0
    meta = {**_run_meta(results, provenance), "result": "bandpassed"}
    active = viewer.layers.selection.active
    layer = _upsert(viewer, BANDPASSED, stack, meta=meta, contrast_limits=_limits(-lim, lim), scale=scale,
                    translate=translate, colormap="gray", visible=True)
    _raise_shapes(viewer)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer


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
        self.weights_check = QCheckBox("show 3D weights")
        self.weights_check.setChecked(True)
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
        self.summary.setText(
            f"{run}{', '.join(_label(m) for m in results.methods)} on {results.n_frames} frames at "
            f"{results.fps:g} fps; {band}; scored on frames {v0}:{v1}; {len(results.roi_names)} ROI(s)"
            + (f"; {results.timings_s['total']:.1f} s" if "total" in results.timings_s else "") + ".")
        self.warnings.setText("\n".join(f"- {w}" for w in results.warnings))
        for layer in self.viewer.layers:
            if plugin_meta(layer).get("role") == "result":
                self.layer_list.addItem(layer.name)

    def _select_layer(self, item: Any) -> None:
        name = item.text()
        for layer in self.viewer.layers:
            if layer.name == name:
                self.viewer.layers.selection.active = layer

    def show_weights(self, visible: bool) -> None:
        """Show (first feature of each ROI) or hide the 3D weight layers."""
        for layer in self.viewer.layers:
            meta = plugin_meta(layer)
            if meta.get("result") == "weights":
                layer.visible = bool(visible) and meta.get("feature") == 1

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
        from ._tasks import Task

        results = self.session.results
        if results is None:
            from ._tasks import notify_error

            notify_error(MicromotionError("there is no result to export; run an analysis first."))
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
        return results
