"""The inspector: a wide bottom dock with one region's traces beside the score and beat tables.

* Traces: one region at a time (an ROI, the whole field, or a pixel clicked in the
  viewer) over the whole recording, zoomable (matplotlib's toolbar): the region's
  calcium and the chosen methods' predictions (z-scored) with their ``r`` and ``p``,
  and below the motion energy with the beats found in motion and in calcium.  Without
  fluorescence only the motion row is shown.  The canvas follows napari's theme and
  time slider; *Save figure* renders the same plot at publication size on white.
* Scores: score (``r``), lag and p-value per ROI and method (p-values at the floor of
  their surrogate test read ``<= 1/(n+1)``).  Beats: rate, RR and variability per ROI.
* Linked: selecting a shape, a table row or clicking a pixel shows its traces;
  the table rows of the selected ROI are highlighted.

The figure itself is drawn by :func:`napari_micromotion.report.draw_trace_panel` (no Qt).
Tools that show their results here (the motion tool's contraction traces and beat
table) add a page beside the analysis; the page tabs appear when there is more than one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .._layers import KIND_COLOURS
from ..errors import MicromotionError, check
from ..methods import label_of
from ..results import WHOLE_FIELD
from ._state import get_session, unwrap_viewer
from ._tasks import notify_error
from .plots import WHOLE, PlotView

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..results import Results

__all__ = ["InspectorWidget", "INSPECTOR", "dock_inspector", "SortItem", "TracesView", "ScoresTable", "BeatsTable", "WINDOWS"]

#: the inspector's dock title
INSPECTOR = "Traces and scores"
#: what the time axis shows
WINDOWS = ("whole recording", "20 s at the time slider", "validation frames")


class TracesView(PlotView):
    """One region's traces (see the module docstring)."""

    file_stem = "traces"
    figure_height_in = 3.4
    empty_text = "no traces yet: open a recording, draw ROIs (optional) and run an analysis"
    nothing_text = "there are no traces yet; run an analysis first."

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent,
                         region_tip="The region whose traces are shown: an ROI, the whole field, or the last "
                                    "pixel clicked in the viewer.")
        self.pixel: "Results | None" = None     # the last inspected pixel
        self.method_buttons: dict[str, QToolButton] = {}
        self.methods_row = QHBoxLayout()
        self.methods_row.setSpacing(2)
        self.window_combo = QComboBox()
        self.window_combo.addItems(WINDOWS)
        self.window_combo.setToolTip("The whole recording (zoom with the toolbar), 20 s that follow napari's time "
                                     "slider, or the scored (validation) frames.")
        self.window_combo.currentTextChanged.connect(lambda *_: self.redraw())
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(self.top_row(self.methods_row, self.window_combo))
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.note)

        s = self.session
        s.results_changed.connect(self._on_results)
        s.retracing_changed.connect(lambda busy: self.note.setText("Updating the traces of edited ROIs..." if busy
                                                                   else ""))
        s.roi_selected.connect(self.show_region)
        s.pixel_inspected.connect(self.show_pixel)
        self._on_results(s.results)

    # ------------------------------------------------------------ state
    def _source(self) -> "Results | None":
        """The result the current region lives in (the pixel's own result for an inspected pixel)."""
        if self.pixel is not None and self.region in self.pixel.roi_names:
            return self.pixel
        return self.session.results

    def selected_methods(self) -> list[str]:
        return [m for m, b in self.method_buttons.items() if b.isChecked()]

    def set_methods(self, methods: list[str]) -> None:
        for m, b in self.method_buttons.items():
            b.setChecked(m in methods)

    def _on_results(self, results: Any = None) -> None:
        results = self.session.results
        current = self.region_combo.currentText()
        self.region_combo.blockSignals(True)
        self.region_combo.clear()
        if results is not None:
            self.region_combo.addItems(list(results.roi_names))
            if WHOLE_FIELD in results.motion_traces or not results.roi_names:
                self.region_combo.addItem(WHOLE)
            if self.pixel is not None and self.pixel.fps == results.fps:
                self.region_combo.addItems(self.pixel.roi_names)
        idx = self.region_combo.findText(current)
        self.region_combo.setCurrentIndex(idx if idx >= 0 else 0)
        self.region_combo.blockSignals(False)
        chosen = self.selected_methods()
        while self.methods_row.count():
            item = self.methods_row.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.method_buttons = {}
        if results is not None:
            from ..report import method_colour

            default = results.best_method()
            for m in results.traced_methods():
                b = QToolButton()
                b.setText(label_of(m))
                b.setCheckable(True)
                b.setChecked(m in chosen if chosen else m == default)
                b.setStyleSheet(f"QToolButton:checked {{ border-bottom: 3px solid {method_colour(m)}; }}")
                b.setToolTip(f"Show the {label_of(m)} prediction.")
                b.toggled.connect(lambda *_: self.redraw())
                self.methods_row.addWidget(b)
                self.method_buttons[m] = b
        self.redraw()

    def show_pixel(self, sub: "Results") -> None:
        """Show the traces of an inspected pixel (the result of ``Session.inspect_pixel``)."""
        self.pixel = sub
        self._on_results()
        self.show_region(sub.roi_names[0])

    def _window(self, results: "Results") -> slice:
        choice = self.window_combo.currentText()
        n = results.n_frames
        if choice == WINDOWS[1]:
            w = int(round(20 * results.fps))
            start = int(np.clip(self.current_frame - w // 4, 0, max(0, n - w)))
            return slice(start, min(n, start + w))
        if choice == WINDOWS[2]:
            return slice(*results.validation)
        return slice(0, n)

    # ------------------------------------------------------------ drawing
    def fps(self) -> float | None:
        results = self._source()
        return results.fps if results is not None else None

    def theme_colours(self) -> dict[str, str]:
        light = self.viewer.theme == "light"
        return {**super().theme_colours(), "truth": "#222222" if light else "#f0f0f0",
                "truth_field": "#888888" if light else "#a0a0a0"}

    def draw(self, figure: Any, colours: dict[str, str] | None = None, fontsize: float = 8) -> Any:
        from ..report import draw_trace_panel

        results = self._source()
        if results is None or self.region_combo.count() == 0:
            self.draw_empty(figure, colours)
            return None
        return draw_trace_panel(figure, results, self.region, self.selected_methods(), self._window(results),
                                colours=colours, fontsize=fontsize)

    def set_frame(self, frame: int) -> None:
        """Move the marker to *frame* (the 20 s window follows it)."""
        if self.window_combo.currentText() == WINDOWS[1]:
            self.current_frame = int(frame)
            self.redraw()
            return
        super().set_frame(frame)


class SortItem(QTableWidgetItem):
    """A cell that sorts numerically (NaN last) when it holds a number."""

    def __init__(self, value: Any, numeric: bool, text: str | None = None) -> None:
        if numeric:
            v = float(value) if value is not None else float("nan")
            if text is None:
                text = "n/a" if math.isnan(v) else (f"{int(v)}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.3g}")
            self.key = (1, 0.0) if math.isnan(v) else (0, v)
        else:
            text = str(value) if text is None else text
            self.key = (0, str(value).lower())
        super().__init__(text)
        self.value = value
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)
        if numeric:
            self.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))

    def __lt__(self, other: Any) -> bool:  # type: ignore[override]
        if isinstance(other, SortItem):
            return self.key < other.key
        return super().__lt__(other)


class _Table(QWidget):
    """A sortable table of typed rows; selecting a row selects its ROI everywhere."""

    #: (header, field, numeric, tooltip)
    COLUMNS: list[tuple[str, str, bool, str]] = []
    what = "rows"

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(self.viewer)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in self.COLUMNS])
        for j, c in enumerate(self.COLUMNS):
            self.table.horizontalHeaderItem(j).setToolTip(c[3])
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.export_button = QPushButton("Export CSV...")
        self.export_button.clicked.connect(self._export_dialog)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.note, 1)
        bottom.addWidget(self.export_button)
        lay.addLayout(bottom)
        self._selecting = False
        self.session.results_changed.connect(self.refresh)
        self.session.roi_selected.connect(self.highlight)
        self.refresh()

    def source_rows(self) -> list[Any]:  # pragma: no cover - overridden
        return []

    def text_of(self, row: Any, key: str) -> str | None:
        return label_of(str(row.method)) if key == "method" else None

    def refresh(self, *_: Any) -> None:
        rows = self.source_rows()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, (_, key, numeric, _t) in enumerate(self.COLUMNS):
                value = row.get(key, float("nan") if numeric else "")
                item = SortItem(value, numeric, self.text_of(row, key))
                if key == "kind":
                    item.setForeground(QColor(KIND_COLOURS.get(str(value), "#999999")))
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.export_button.setEnabled(bool(rows))
        self.update_note()

    def update_note(self) -> None:
        pass

    def rows(self) -> list[dict[str, Any]]:
        """The table as shown (current sort order), one dict per row with the raw values."""
        return [{key: self.table.item(i, j).value for j, (_, key, _n, _t) in enumerate(self.COLUMNS)}
                for i in range(self.table.rowCount())]

    def sort_by(self, key: str, descending: bool = True) -> None:
        j = [c[1] for c in self.COLUMNS].index(key)
        self.table.sortItems(j, Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder)

    def _on_selection(self) -> None:
        if self._selecting:
            return
        items = self.table.selectedItems()
        if items:
            self.session.select_roi(str(self.table.item(items[0].row(), 0).value))

    def highlight(self, name: str) -> None:
        """Select the rows of ROI *name*."""
        self._selecting = True
        try:
            self.table.clearSelection()
            mode = self.table.selectionMode()
            self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
            for i in range(self.table.rowCount()):
                if str(self.table.item(i, 0).value) == name:
                    self.table.selectRow(i)
            self.table.setSelectionMode(mode)
        finally:
            self._selecting = False

    def selected_rows(self) -> list[int]:
        return sorted({i.row() for i in self.table.selectedItems()})

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {self.what}", f"{self.what.replace(' ', '_')}.csv",
                                              "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the table (in its current order) as CSV with the output folder's column names."""
        from ._files import write_csv_atomic

        try:
            rows = self.rows()
            check(rows, f"there are no {self.what} to export yet.")
            keys = [c[1] for c in self.COLUMNS]
            return write_csv_atomic(path, keys, [[r[k] for k in keys] for r in rows])
        except MicromotionError as exc:
            notify_error(exc)
            return None


class ScoresTable(_Table):
    """Score, lag and p-value per ROI and method."""

    COLUMNS = [("ROI", "roi", False, "Region of interest"), ("kind", "kind", False, "strong, weak, silent or other"),
               ("method", "method", False, "Prediction method"),
               ("r", "score", True, "Score: the highest correlation of the ROI's prediction with the calcium within "
                                    "the lag window, over the validation frames"),
               ("lag (s)", "lag_s", True, "Delay at the highest correlation; > 0: the prediction comes after the "
                                          "calcium"),
               ("p-value", "p_value", True, "Share of time-shifted predictions that score as high (circular-shift "
                                            "surrogates)"),
               ("pixels", "n_pixels", True, "Pixels in the ROI")]
    what = "ROI scores"

    def source_rows(self) -> list[Any]:
        results = self.session.results
        return list(results.roi_scores) if results is not None else []

    def text_of(self, row: Any, key: str) -> str | None:
        if key == "p_value":
            from ..report import format_p, surrogates_used

            # the shifts that fit the validation range (fewer than asked on a short one): p >= 1/(n + 1)
            return format_p(row.p_value, surrogates_used(self.session.results)).replace("p = ", "").replace("p ", "")
        return super().text_of(row, key)

    def update_note(self) -> None:
        results = self.session.results
        if results is None:
            self.note.setText("No scores yet.")
        elif not results.has_fluorescence:
            self.note.setText("No fluorescence: nothing to score against; see the beats.")
        else:
            from ..scoring import surrogates_of

            v0, v1 = results.validation
            asked = results.params.n_surrogates
            n = surrogates_of(results)
            fewer = f" (all that fit in the {v1 - v0} validation frames; {asked} were asked for)" if n < asked else ""
            self.note.setText(f"p-values from {n} circular time shifts of each prediction{fewer}: the smallest "
                              f"possible is 1/{n + 1} = {1 / (n + 1):.2g}.")


class BeatsTable(_Table):
    """Beat rate, RR intervals and their variability per ROI (or the whole field) and source."""

    COLUMNS = [("ROI", "roi", False, "Region of interest (frame: the whole field)"),
               ("kind", "kind", False, "strong, weak, silent or other"),
               ("source", "source", False, "Where the beats were found: contraction (displacement), motion energy "
                                           "(band-pass) or calcium"),
               ("beats", "n_beats", True, "Number of beats"), ("rate (bpm)", "rate_bpm", True, "Beats per minute"),
               ("RR (s)", "rr_mean_s", True, "Mean interval between beats"),
               ("RR SD (s)", "rr_sd_s", True, "Standard deviation of the intervals (SDNN)"),
               ("RMSSD (s)", "rmssd_s", True, "Root mean square of successive interval differences"),
               ("CV", "rr_cv", True, "Coefficient of variation of the intervals")]
    what = "beat rates"

    def source_rows(self) -> list[Any]:
        results = self.session.results
        return list(results.beat_rates) if results is not None else []

    SOURCES = {"transmission": "motion energy", "motion": "contraction", "fluorescence": "calcium"}

    def text_of(self, row: Any, key: str) -> str | None:
        return self.SOURCES.get(str(row.source)) if key == "source" else None

    def update_note(self) -> None:
        self.note.setText("Contraction beats come from each region's displacement, motion-energy beats from bursts "
                          "of band-pass energy, calcium beats from dF/F0.")


class InspectorWidget(QWidget):
    """Traces (left) beside the Scores and Beats tables (right): the workbench's bottom dock."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(self.viewer)
        self.traces = TracesView(self.viewer)
        self.scores = ScoresTable(self.viewer)
        self.beats = BeatsTable(self.viewer)
        self.tables = QTabWidget()
        self.tables.addTab(self.scores, "Scores")
        self.tables.addTab(self.beats, "Beats")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.traces)
        split.addWidget(self.tables)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        self.analysis_page = split
        self.pages = QTabWidget()            # the analysis, then one page per tool that shows its result here
        self.pages.setTabBarAutoHide(True)
        self.pages.setDocumentMode(True)
        self.pages.addTab(split, "Analysis")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.pages)
        self.setMinimumHeight(200)
        self.session.results_changed.connect(self._on_results)
        self._on_results(self.session.results)

    def page(self, title: str) -> QWidget | None:
        for i in range(self.pages.count()):
            if self.pages.tabText(i) == title:
                return self.pages.widget(i)
        return None

    def add_page(self, title: str, widget: QWidget) -> QWidget:
        """Add *widget* as page *title* (once; returns the page shown under that title)."""
        existing = self.page(title)
        if existing is not None:
            return existing
        self.pages.addTab(widget, title)
        return widget

    def show_page(self, title: str) -> None:
        page = self.page(title)
        if page is not None:
            self.pages.setCurrentWidget(page)

    def _on_results(self, results: Any = None) -> None:
        results = self.session.results
        if results is not None:
            self.pages.setCurrentWidget(self.analysis_page)
        if results is not None and not results.has_fluorescence:
            self.tables.setCurrentWidget(self.beats)
        elif results is not None:
            self.tables.setCurrentWidget(self.scores)


def dock_inspector(viewer: "napari.Viewer") -> Any:
    """The inspector docked at the bottom of *viewer* (docked once; returns the widget)."""
    window = viewer.window
    existing = window.dock_widgets.get(INSPECTOR)
    if existing is not None:
        return existing
    for widget in window.dock_widgets.values():     # opened from the Plugins menu (another dock name): that one
        if isinstance(widget, InspectorWidget):
            return widget
    widget = InspectorWidget(viewer)
    window.add_dock_widget(widget, name=INSPECTOR, area="bottom")
    return widget
