"""Plots of the workbench (matplotlib on Qt): live loss curves and the inspector's region panels.

:class:`PlotView` is what the inspector's pages share (the analysis' traces, the motion
tool's contraction, the denoiser's corridors): a canvas that follows napari's theme and
time slider, a region chooser that follows the ROI selected in the viewer, matplotlib's
zoom toolbar, *Save figure* (the same drawing at publication size on white) and *Export
CSV* (the plotted numbers).  A page implements :meth:`PlotView.draw` with a drawing
function of the core (no Qt there) that returns a
:class:`~napari_micromotion.report.TracePanel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..errors import MicromotionError, check
from ..results import WHOLE_FIELD
from ._state import get_session, unwrap_viewer
from ._tasks import notify_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["LossPlot", "PlotView", "WHOLE", "theme_colours"]

#: how the whole field is named in the region choosers
WHOLE = "whole field"


def theme_colours(viewer: Any) -> dict[str, str]:
    """Background, foreground, text and marker colours of *viewer*'s napari theme (the light one without a viewer)."""
    from napari.utils.theme import get_theme

    theme = get_theme("light" if viewer is None else viewer.theme)
    return {"background": theme.background.as_hex(), "foreground": theme.foreground.as_hex(),
            "text": theme.text.as_hex(), "marker": theme.text.as_hex()}


class LossPlot(QWidget):
    """The training loss of each network while it trains, one line per stage ("train cnn1d", "cnn3d <roi>").

    With a *viewer* the plot takes napari's theme colours and follows a change of theme.
    """

    def __init__(self, parent: QWidget | None = None, *, viewer: Any = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.viewer = viewer
        self.figure = Figure(figsize=(3, 1.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(110)
        self.canvas.setMaximumHeight(140)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        self.series: dict[str, list[float]] = {}
        #: the plot's title (a tool whose loss is not the usual one sets its own)
        self.title = "training loss (mean square error, z units)"
        self._last = 0.0
        self._pending = False
        self.reset()
        if viewer is not None:
            viewer.events.theme.connect(lambda *_: self._draw())

    def reset(self) -> None:
        self.series = {}
        self._draw()

    def add(self, stage: str, loss: float) -> None:
        """Append one loss value of *stage* and redraw, at most every 0.3 s (shown at the first value)."""
        import time

        self.series.setdefault(stage, []).append(float(loss))
        self.setVisible(True)
        now = time.perf_counter()
        if now - self._last >= 0.3:
            self._last = now
            self._draw()
        elif not self._pending:
            from qtpy.QtCore import QTimer

            self._pending = True
            QTimer.singleShot(350, self._flush)

    def _flush(self) -> None:
        import time

        self._pending = False
        self._last = time.perf_counter()
        self._draw()

    def _draw(self) -> None:
        c = theme_colours(self.viewer)
        fig = self.figure
        fig.clear()
        fig.set_facecolor(c["background"])
        ax = fig.add_subplot(1, 1, 1)
        ax.set_facecolor(c["background"])
        for stage, values in self.series.items():
            ax.plot(range(1, len(values) + 1), values, lw=1, label=stage)
        ax.set_ylabel("loss", fontsize=7, color=c["text"])
        ax.set_xlabel("updates reported", fontsize=7, color=c["text"])
        ax.tick_params(labelsize=6, colors=c["text"])
        for spine in ax.spines.values():
            spine.set_color(c["foreground"])
        if self.series:
            ax.legend(fontsize=6, frameon=False, loc="upper right", labelcolor=c["text"])
            ax.set_title(self.title, fontsize=7, color=c["text"])
        self.canvas.draw_idle()


class PlotView(QWidget):
    """A region's panel in the inspector (see the module docstring).

    Subclasses set :attr:`file_stem` (default file names), :attr:`figure_height_in`,
    :attr:`empty_text`, :attr:`nothing_text`, lay the parts out (``top_row()``,
    :attr:`canvas`, :attr:`note`) and implement :meth:`draw` and :meth:`fps`; the layer
    whose frame the marker shows is the transmission unless :meth:`slider_layer` says
    otherwise.
    """

    file_stem = "plot"
    figure_height_in = 3.2
    empty_text = "nothing to show yet"
    nothing_text = "there is nothing to show yet."

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None, *, region_tip: str,
                 csv_tip: str = "The plotted numbers, one row per frame.", min_height: int = 150) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(self.viewer)
        self.panel: Any = None
        self.current_frame = 0
        self.n_draws = 0
        self.figure = Figure(figsize=(8, 2.6), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(min_height)
        self.toolbar = NavigationToolbar2QT(self.canvas, self, coordinates=False)
        self.toolbar.setIconSize(self.toolbar.iconSize() * 0.7)
        self.region_combo = QComboBox()
        self.region_combo.setToolTip(region_tip)
        self.region_combo.currentTextChanged.connect(lambda *_: self.redraw())
        self.fig_button = QPushButton("Save figure...")
        self.fig_button.setToolTip("The plot at publication size on white (PNG, SVG or PDF).")
        self.fig_button.clicked.connect(self._fig_dialog)
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.setToolTip(csv_tip)
        self.csv_button.clicked.connect(self._csv_dialog)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.viewer.events.theme.connect(lambda *_: self.redraw())
        self._tall: bool | None = None
        self.canvas.mpl_connect("resize_event", self._on_resize)

    #: canvases shorter than this (px) draw a compact plot (see :meth:`is_tall`)
    TALL_PX = 260

    def is_tall(self, figure: Any) -> bool:
        """Whether *figure* has room for a second axis under the first (a small window's canvas has not)."""
        return figure.get_figheight() * figure.dpi >= self.TALL_PX

    def _on_resize(self, event: Any = None) -> None:
        tall = self.is_tall(self.figure)
        if tall != self._tall:        # drawn for the other size: draw again
            self._tall = tall
            self.redraw()

    def top_row(self, *extras: Any) -> QHBoxLayout:
        """The control row: region chooser, *extras* (widgets or layouts), toolbar, figure and CSV buttons."""
        top = QHBoxLayout()
        top.addWidget(QLabel("Region"))
        top.addWidget(self.region_combo, 1)
        for extra in extras:
            if isinstance(extra, QWidget):
                top.addWidget(extra)
            else:
                top.addLayout(extra)
        for w in (self.toolbar, self.fig_button, self.csv_button):
            top.addWidget(w)
        return top

    def plot_column(self) -> QVBoxLayout:
        """The usual layout: the control row, the canvas, the note."""
        lay = QVBoxLayout()
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(self.top_row())
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.note)
        return lay

    # ------------------------------------------------------------ regions
    @property
    def region(self) -> str:
        text = self.region_combo.currentText()
        return WHOLE_FIELD if text == WHOLE else text

    def set_regions(self, names: list[str]) -> None:
        """Offer *names* (:data:`~napari_micromotion.results.WHOLE_FIELD` shown as "whole field"), keeping the choice."""
        previous = self.region_combo.currentText()
        self.region_combo.blockSignals(True)
        self.region_combo.clear()
        self.region_combo.addItems([WHOLE if r == WHOLE_FIELD else r for r in names])
        idx = self.region_combo.findText(previous)
        self.region_combo.setCurrentIndex(idx if idx >= 0 else 0)
        self.region_combo.blockSignals(False)

    def show_region(self, name: str) -> None:
        """Show ROI *name* (or :data:`~napari_micromotion.results.WHOLE_FIELD`)."""
        idx = self.region_combo.findText(WHOLE if name == WHOLE_FIELD else name)
        if idx >= 0:
            self.region_combo.setCurrentIndex(idx)

    # ------------------------------------------------------------ drawing
    def fps(self) -> float | None:
        """Frames per second of what is shown (``None``: nothing shown)."""
        raise NotImplementedError

    def draw(self, figure: Any, colours: dict[str, str] | None = None, fontsize: float = 8) -> Any:
        """Draw the current region on *figure*; return its :class:`~napari_micromotion.report.TracePanel` or ``None``."""
        raise NotImplementedError

    def draw_empty(self, figure: Any, colours: dict[str, str] | None, text: str | None = None) -> None:
        ax = figure.add_subplot(1, 1, 1)
        ax.set_facecolor((colours or {}).get("background", "white"))
        ax.text(0.5, 0.5, text or self.empty_text, ha="center", va="center", color=(colours or {}).get("text", "k"),
                transform=ax.transAxes)
        ax.set_axis_off()

    def theme_colours(self) -> dict[str, str]:
        return theme_colours(self.viewer)

    def redraw(self) -> None:
        colours = self.theme_colours()
        self.figure.clear()
        self.figure.set_facecolor(colours["background"])
        self.panel = self.draw(self.figure, colours)
        self._place_marker()
        self.n_draws += 1
        self.canvas.draw_idle()

    def _place_marker(self) -> None:
        fps = self.fps()
        if self.panel is None or not fps:
            return
        x = self.current_frame / fps
        frames = self.panel.frames
        inside = bool(frames.size) and frames[0] <= self.current_frame <= frames[-1]
        for m in self.panel.markers:
            m.set_xdata([x, x])
            m.set_visible(inside)

    # ------------------------------------------------------------ time
    def slider_layer(self) -> Any:
        """The layer whose frame the marker shows (``None``: the transmission)."""
        return None

    def _on_step(self, event: Any = None) -> None:
        frame = self.session.slider_frame(self.slider_layer())
        if frame is not None:
            self.set_frame(frame)

    def set_frame(self, frame: int) -> None:
        """Move the marker to *frame*."""
        self.current_frame = int(frame)
        self._place_marker()
        self.canvas.draw_idle()

    # ------------------------------------------------------------ export
    def _fig_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save figure", f"{self.file_stem}-{self.region}.png",
                                              "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)")
        if path:
            self.save_figure(path)

    def save_figure(self, path: str | Path, width_in: float = 7.2, dpi: int = 300) -> Path | None:
        """The shown plot at publication size on white (PNG, SVG or PDF by extension), written atomically."""
        from ._files import save_figure_atomic

        try:
            return save_figure_atomic(path, lambda fig: self.draw(fig, colours=None, fontsize=7),
                                      height_in=self.figure_height_in, width_in=width_in, dpi=dpi,
                                      empty=None if self.fps() else self.nothing_text)
        except MicromotionError as exc:
            notify_error(exc)
            return None

    def _csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the plotted numbers", f"{self.file_stem}-{self.region}.csv",
                                              "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> Path | None:
        """The plotted numbers (one row per frame shown: ``frame``, ``time_s``, ...) as CSV, atomically."""
        from ._files import write_panel_csv

        try:
            check(self.panel is not None and len(self.panel.columns) > 1, self.nothing_text)
            return write_panel_csv(path, self.panel.frames, self.panel.columns)
        except (MicromotionError, OSError) as exc:
            notify_error(exc if isinstance(exc, MicromotionError) else MicromotionError(f"could not write {path}: {exc}"))
            return None
