"""The denoiser's result in the inspector: a region's raw and denoised dF/F0 with the 90 % corridor.

The region follows the ROI selected in the viewer (or the combo box); a marker follows the
time slider; below the trace, the training loss per report and the held-out loss per epoch.
*Export CSV* writes the plotted numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from .._layers import plugin_meta
from ..errors import MicromotionError, check
from ._state import get_session, unwrap_viewer
from ._tasks import notify_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["DenoiseView"]


class DenoiseView(QWidget):
    """``set_result(DenoiseResult)``: traces with corridors per region, loss curves."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.result: Any = None
        self.current_frame = 0
        self.n_draws = 0
        self.marker: Any = None
        self.figure = Figure(figsize=(8, 3.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(180)
        self.region_combo = QComboBox()
        self.region_combo.setToolTip("The region whose trace is shown (follows the ROI selected in the viewer).")
        self.region_combo.currentTextChanged.connect(lambda *_: self.redraw())
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.setToolTip("The plotted trace, corridor and raw trace, one row per frame.")
        self.csv_button.clicked.connect(self._csv_dialog)
        top = QHBoxLayout()
        top.addWidget(QLabel("region"))
        top.addWidget(self.region_combo, 1)
        top.addWidget(self.csv_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.summary)
        self.session.roi_selected.connect(self.show_region)
        napari_viewer.dims.events.current_step.connect(self._on_step)
        napari_viewer.events.theme.connect(lambda *_: self.redraw())

    @property
    def region(self) -> str:
        return self.region_combo.currentText()

    def set_result(self, result: Any) -> None:
        self.result = result
        self.region_combo.blockSignals(True)
        self.region_combo.clear()
        self.region_combo.addItems(list(result.regions))
        self.region_combo.blockSignals(False)
        m = result.metrics
        cal = m.get("calibration", {})
        self.summary.setText(
            f"{m.get('training_frames', 0)} training frames, held-out residual / noise "
            f"{m.get('heldout_residual_over_noise', float('nan')):.3f} (1 is ideal), calibration factor "
            f"{cal.get('overall_factor', float('nan')):.2f}, guard flagged "
            f"{100 * m.get('guard', {}).get('flagged_fraction', 0.0):.2g} % of pixels, "
            f"{m.get('inference_frames_per_s', 0.0):.0f} frames/s.")
        self.redraw()

    def show_region(self, name: str) -> None:
        i = self.region_combo.findText(name)
        if i >= 0:
            self.region_combo.setCurrentIndex(i)

    def _denoised_layer(self) -> Any:
        for layer in self.viewer.layers:
            meta = plugin_meta(layer)
            if meta.get("tool") == "denoise" and getattr(layer, "ndim", 0) >= 3:
                return layer
        return None

    def _on_step(self, event: Any = None) -> None:
        frame = self.session.slider_frame(self._denoised_layer())
        if frame is not None:
            self.current_frame = frame
            if self.marker is not None and self.result is not None:
                t = self.current_frame / self.result.fps
                self.marker.set_xdata([t, t])
                self.canvas.draw_idle()

    def theme_colours(self) -> dict[str, str]:
        from napari.utils.theme import get_theme

        theme = get_theme(self.viewer.theme)
        return {"background": theme.background.as_hex(), "text": theme.text.as_hex()}

    def redraw(self) -> None:
        fig = self.figure
        fig.clear()
        self.marker = None
        if self.result is None or self.region not in self.result.traces:
            self.canvas.draw_idle()
            return
        c = self.theme_colours()
        fig.set_facecolor(c["background"])
        tr = self.result.traces[self.region]
        t = self.result.time_s()
        ax, axl = fig.subplots(1, 2, width_ratios=(4, 1))
        for a in (ax, axl):
            a.set_facecolor(c["background"])
            a.tick_params(colors=c["text"], labelsize=7)
            for s in a.spines.values():
                s.set_color(c["text"])
        ax.plot(t, tr["raw"], color="#888888", lw=0.6, label="raw")
        ax.fill_between(t, tr["lo90"], tr["hi90"], color="#2ca02c", alpha=0.35, lw=0, label="90 % corridor")
        ax.plot(t, tr["denoised"], color="#2ca02c", lw=1.0, label="denoised")
        ax.set_xlabel("time (s)", color=c["text"], fontsize=8)
        ax.set_ylabel("dF/F0", color=c["text"], fontsize=8)
        ax.set_title(self.region, color=c["text"], fontsize=8)
        ax.legend(fontsize=7, loc="upper right", frameon=False, labelcolor=c["text"])
        self.marker = ax.axvline(self.current_frame / self.result.fps, color=c["text"], lw=0.6, alpha=0.6)
        m = self.result.metrics
        if m.get("loss_curve"):
            axl.plot(np.arange(len(m["loss_curve"])) + 1, m["loss_curve"], color="#1f77b4", lw=0.8, label="training")
        if m.get("val_mse"):
            per = len(m.get("loss_curve", [])) / max(1, len(m["val_mse"]))
            axl.plot(per * (np.arange(len(m["val_mse"])) + 1), m["val_mse"], "o-", color="#ff7f0e", ms=3, lw=0.8,
                     label="held-out")
        axl.set_title("loss (noise units)", color=c["text"], fontsize=8)
        axl.legend(fontsize=6, frameon=False, labelcolor=c["text"])
        self.n_draws += 1
        self.canvas.draw_idle()

    def _csv_dialog(self) -> None:
        path = QFileDialog.getSaveFileName(self, "Export the trace", f"denoised-{self.region}.csv", "CSV (*.csv)")[0]
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> Path | None:
        """The region's trace and corridor as CSV (``frame,time_s,raw,denoised,lo90,hi90``), atomically."""
        from ._files import write_panel_csv

        try:
            check(self.result is not None and self.region in self.result.traces, "there is no trace to export yet.")
            tr = self.result.traces[self.region]
            columns = {"time_s": self.result.time_s(), **{k: tr[k] for k in ("raw", "denoised", "lo90", "hi90")}}
            return write_panel_csv(path, np.arange(self.result.n_frames), columns)
        except (MicromotionError, OSError) as exc:
            notify_error(exc if isinstance(exc, MicromotionError) else MicromotionError(f"could not write {path}: {exc}"))
            return None
