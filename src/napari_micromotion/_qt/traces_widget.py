"""Traces widget: per ROI, the fluorescence and each method's prediction (paper Fig. 4).

One column per ROI, one row per method; in every panel the ground truth (grey)
and the method's ROI-summed prediction (filters squared, as in the paper) are
z-normalised over the shown window; the 3D network's Monte-Carlo SD is a band
around its prediction.  A dashed marker follows napari's time slider; with
*follow* on, the window scrolls with it.  The plotted numbers export to CSV
(z-normalised as plotted, and raw), the figure to PNG or SVG.  The canvas
follows napari's theme.  Edits of the analysed ROI layer update the traces (the
session recomputes them in the background).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..errors import MicromotionError, check
from ._state import get_session, unwrap_viewer
from ._tasks import notify_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..pipeline import Results

__all__ = ["TracesWidget", "TraceData", "trace_data"]
KIND_COLOURS = {"strong": "#e6550d", "weak": "#3182bd", "silent": "#31a354", "other": "#9e9ac8"}
ALL = "all ROIs"


def _z(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    x = np.asarray(x, dtype=np.float64)
    m, s = float(x.mean()), float(x.std())
    return ((x - m) / s if s > 0 else x - m), m, s


@dataclass
class TraceData:
    """What the Traces widget plots: a window of frames and, per ROI, raw and z-normalised series."""

    frames: np.ndarray
    time_s: np.ndarray
    rois: list[str]
    kinds: list[str]
    methods: list[str]
    raw: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)   # (roi, series) -> values
    z: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    scores: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def table(self) -> tuple[list[str], np.ndarray]:
        """Columns ``frame, time_s, <roi>/<series>`` (as plotted), ``<roi>/<series>_raw``; rows = frames."""
        cols = ["frame", "time_s"]
        data = [self.frames.astype(np.float64), self.time_s]
        for key in self.z:
            cols.append(f"{key[0]}/{key[1]}")
            data.append(self.z[key])
        for key in self.raw:
            cols.append(f"{key[0]}/{key[1]}_raw")
            data.append(np.asarray(self.raw[key], np.float64))
        return cols, np.column_stack(data) if data else np.zeros((0, 0))


def trace_data(results: "Results", rois: list[str] | None = None, window: slice | None = None) -> TraceData:
    """The series of :func:`TracesWidget` for *rois* over the frames *window* (default: all frames).

    Series per ROI: ``fluorescence`` (the reference the scores use: the whole-frame
    ground truth, or the ROI's own with ``roi_truth``), every method's ROI trace and
    ``cnn3d_sd``.  ``z`` holds them z-normalised over the window (the SD scaled like
    its prediction), as plotted.
    """
    rois = list(results.roi_names if rois is None else rois)
    sl = window if window is not None else slice(0, results.n_frames)
    frames = np.arange(results.n_frames)[sl]
    methods = [m for m in results.traced_methods() if any((r, m) in results.roi_traces for r in rois)]
    kinds = [results.roi_kinds[results.roi_names.index(r)] if r in results.roi_names else "other" for r in rois]
    out = TraceData(frames=frames, time_s=frames / results.fps, rois=rois, kinds=kinds, methods=methods)
    for roi in rois:
        ref = results.roi_truth.get(roi, results.truth) if results.params.roi_truth else results.truth
        if ref is not None:
            out.raw[(roi, "fluorescence")] = np.asarray(ref)[sl]
            out.z[(roi, "fluorescence")] = _z(np.asarray(ref)[sl])[0]
        for m in methods:
            tr = results.roi_traces.get((roi, m))
            if tr is None:
                continue
            seg = np.asarray(tr)[sl]
            z, _, s = _z(seg)
            out.raw[(roi, m)] = seg
            out.z[(roi, m)] = z
            sd = results.roi_sd.get((roi, m))
            if sd is not None:
                out.raw[(roi, f"{m}_sd")] = np.asarray(sd)[sl]
                out.z[(roi, f"{m}_sd")] = np.asarray(sd, np.float64)[sl] / (s if s > 0 else 1.0)
            row = results.score_of(roi, m)
            if row is not None:
                out.scores[(roi, m)] = row
    return out


class TracesWidget(QWidget):
    """Matplotlib traces docked in napari, following its theme and time slider."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.data: TraceData | None = None
        self.markers: list[Any] = []
        self.axes: list[Any] = []
        self.current_frame = 0
        self.n_draws = 0

        self.figure = Figure(figsize=(5, 4), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(260)
        self.roi_combo = QComboBox()
        self.roi_combo.addItem(ALL)
        self.roi_combo.currentTextChanged.connect(lambda *_: self.redraw())
        self.window_s = QDoubleSpinBox()
        self.window_s.setRange(0.0, 1e6)
        self.window_s.setDecimals(1)
        self.window_s.setValue(20.0)
        self.window_s.setSpecialValueText("all")
        self.window_s.setSuffix(" s")
        self.window_s.setToolTip("Length of the shown window (the paper shows 20 s of the validation frames).")
        self.window_s.valueChanged.connect(lambda *_: self.redraw())
        self.follow = QCheckBox("follow time")
        self.follow.setToolTip("Scroll the window with napari's time slider.")
        self.follow.toggled.connect(lambda *_: self.redraw())
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.clicked.connect(self._csv_dialog)
        self.fig_button = QPushButton("Save figure...")
        self.fig_button.clicked.connect(self._fig_dialog)
        self.note = QLabel("")
        self.note.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.roi_combo, 1)
        top.addWidget(self.window_s)
        top.addWidget(self.follow)
        bottom = QHBoxLayout()
        bottom.addWidget(self.csv_button)
        bottom.addWidget(self.fig_button)
        bottom.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.note)
        lay.addLayout(bottom)

        self.session.results_changed.connect(self._on_results)
        self.session.retracing_changed.connect(self._on_retracing)
        napari_viewer.dims.events.current_step.connect(self._on_step)
        napari_viewer.events.theme.connect(self._on_theme)
        self._on_results(self.session.results)

    # ------------------------------------------------------------ theme
    def theme_colours(self) -> dict[str, str]:
        from napari.utils.theme import get_theme

        theme = get_theme(self.viewer.theme)
        return {"background": theme.background.as_hex(), "foreground": theme.foreground.as_hex(),
                "text": theme.text.as_hex(), "highlight": theme.highlight.as_hex(),
                "truth": theme.text.as_hex() if self.viewer.theme != "light" else "#555555",
                "marker": theme.text.as_hex()}

    def _on_theme(self, event: Any = None) -> None:
        self.redraw()

    # ------------------------------------------------------------ data
    def _on_results(self, results: Any = None) -> None:
        results = self.session.results
        current = self.roi_combo.currentText()
        self.roi_combo.blockSignals(True)
        self.roi_combo.clear()
        self.roi_combo.addItem(ALL)
        if results is not None:
            self.roi_combo.addItems(results.roi_names)
        idx = self.roi_combo.findText(current)
        self.roi_combo.setCurrentIndex(idx if idx >= 0 else 0)
        self.roi_combo.blockSignals(False)
        self.note.setText("")
        self.redraw()

    def _on_retracing(self, busy: bool) -> None:
        self.note.setText("Updating the traces of edited ROIs..." if busy else "")

    def _window(self, results: "Results") -> slice:
        from ..report import excerpt

        length = self.window_s.value()
        n = results.n_frames
        if length <= 0:
            return slice(0, n)
        if not self.follow.isChecked():
            return excerpt(results, length)
        w = min(n, max(1, int(round(length * results.fps))))
        frames = self.data.frames if self.data is not None else np.zeros(0)
        if frames.size == w and frames[0] <= self.current_frame <= frames[-1]:
            return slice(int(frames[0]), int(frames[-1]) + 1)  # page-wise: keep the window while the frame is in it
        start = int(np.clip(self.current_frame - w // 10, 0, max(0, n - w)))
        return slice(start, start + w)

    def selected_rois(self) -> list[str] | None:
        results = self.session.results
        if results is None:
            return None
        sel = self.roi_combo.currentText()
        return list(results.roi_names) if sel in ("", ALL) else [sel]

    # ------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Rebuild the figure from the current results, ROI choice and window."""
        from ..methods import label_of
        from ..report import method_colour

        colours = self.theme_colours()
        fig = self.figure
        fig.clear()
        fig.set_facecolor(colours["background"])
        self.axes, self.markers = [], []
        results = self.session.results
        self.data = None
        if results is not None and results.roi_names and results.roi_traces:
            self.data = trace_data(results, self.selected_rois(), self._window(results))
        data = self.data
        if data is None or not data.methods:
            ax = fig.add_subplot(1, 1, 1)
            ax.set_facecolor(colours["background"])
            ax.text(0.5, 0.5, "no ROI traces yet:\ndraw ROIs and run an analysis", ha="center", va="center",
                    color=colours["text"], transform=ax.transAxes)
            ax.set_axis_off()
            self.axes = [ax]
            self._draw()
            return
        rows, cols = len(data.methods), len(data.rois)
        grid = fig.add_gridspec(rows, cols)
        t = data.time_s
        for j, roi in enumerate(data.rois):
            for i, m in enumerate(data.methods):
                ax = fig.add_subplot(grid[i, j], sharex=self.axes[0] if self.axes else None)
                self.axes.append(ax)
                ax.set_facecolor(colours["background"])
                for side in ax.spines.values():
                    side.set_color(colours["foreground"])
                ax.tick_params(colors=colours["text"], labelsize=7)
                if (roi, "fluorescence") in data.z:
                    ax.plot(t, data.z[(roi, "fluorescence")], color=colours["truth"], lw=0.8, alpha=0.7,
                            label="fluorescence")
                if (roi, m) in data.z:
                    z = data.z[(roi, m)]
                    ax.plot(t, z, color=method_colour(m), lw=0.9, label=label_of(m))
                    if (roi, f"{m}_sd") in data.z:
                        sd = data.z[(roi, f"{m}_sd")]
                        ax.fill_between(t, z - sd, z + sd, color=method_colour(m), alpha=0.3, lw=0)
                    row = data.scores.get((roi, m))
                    if row is not None and np.isfinite(row.get("score", np.nan)):
                        ax.text(0.99, 0.96, f"{row['score']:.2f} (p={row['p_value']:.2g})", transform=ax.transAxes,
                                ha="right", va="top", fontsize=7, color=colours["text"])
                else:
                    ax.text(0.5, 0.5, "re-run for this ROI", transform=ax.transAxes, ha="center", va="center",
                            fontsize=7, color=colours["text"])
                marker = ax.axvline(self.current_frame / results.fps, color=colours["marker"], lw=0.8, ls="--")
                marker.set_visible(bool(data.frames.size) and data.frames[0] <= self.current_frame <= data.frames[-1])
                self.markers.append(marker)
                ax.set_yticks([])
                if i == 0:
                    kind = data.kinds[j]
                    ax.set_title(f"{roi} ({kind})", fontsize=8, color=KIND_COLOURS.get(kind, colours["text"]))
                if j == 0:
                    ax.set_ylabel(label_of(m), fontsize=8, color=colours["text"])
                if i < rows - 1:
                    ax.tick_params(labelbottom=False)
                else:
                    ax.set_xlabel("time (s)", fontsize=8, color=colours["text"])
        if t.size:
            self.axes[0].set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
        self._draw()

    def _draw(self) -> None:
        self.n_draws += 1
        self.canvas.draw_idle()

    def _on_step(self, event: Any = None) -> None:
        step = self.viewer.dims.current_step
        trans = self.session.transmission_layer()
        frame = int(step[0]) if len(step) >= 3 else 0
        if trans is not None and len(step) >= 3:  # world step -> frame of the transmission layer
            t_scale, t_off = float(trans.scale[0]), float(trans.translate[0])
            world = self.viewer.dims.point[0]
            frame = int(round((world - t_off) / t_scale)) if t_scale else frame
        self.set_frame(frame)

    def set_frame(self, frame: int) -> None:
        """Move the marker to *frame* (scrolling the window when following)."""
        self.current_frame = int(frame)
        results = self.session.results
        if results is None or self.data is None:
            return
        if self.follow.isChecked():
            w = self._window(results)
            if self.data.frames.size == 0 or w.start != int(self.data.frames[0]):
                self.redraw()
                return
        x = self.current_frame / results.fps
        inside = bool(self.data.frames.size) and self.data.frames[0] <= self.current_frame <= self.data.frames[-1]
        for marker in self.markers:
            marker.set_xdata([x, x])
            marker.set_visible(inside)
        self._draw()

    # ------------------------------------------------------------ export
    def _csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plotted traces", "traces-plotted.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _fig_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save figure", "traces.png", "PNG (*.png);;SVG (*.svg)")
        if path:
            self.save_figure(path)

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the plotted numbers (one row per frame of the window) as CSV, atomically."""
        from ._files import write_csv_atomic

        try:
            check(self.data is not None and self.data.methods, "there are no traces to export; run an analysis first.")
            cols, table = self.data.table()
            rows = [[int(r[0])] + list(r[1:]) for r in table]
            return write_csv_atomic(path, cols, rows)
        except MicromotionError as exc:
            notify_error(exc)
            return None

    def save_figure(self, path: str | Path) -> Path | None:
        """Save the figure as PNG or SVG (by extension), atomically."""
        from ._files import atomic_write

        p = Path(path)
        try:
            fmt = p.suffix.lower().lstrip(".")
            check(fmt in ("png", "svg", "pdf"), f"save the figure as .png or .svg, not {p.suffix or 'no extension'}.")
            return atomic_write(p, lambda tmp: self.figure.savefig(tmp, format=fmt, dpi=150,
                                                                   facecolor=self.figure.get_facecolor()))
        except MicromotionError as exc:
            notify_error(exc)
            return None
