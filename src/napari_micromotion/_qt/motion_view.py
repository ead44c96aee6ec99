"""The motion tool's result in the inspector: a region's contraction trace beside the beat parameters.

* Left: the contraction trace (mean displacement, µm when the pixel size is known) with
  each beat's onset and peak, and the speed below; the canvas follows napari's theme
  and time slider, a click on it moves the time slider there, and the region follows
  the ROI selected in the viewer.  *Save figure* renders it at publication size on
  white; *Export CSV* writes the plotted numbers.
* Right: one row per beat and region (timing, amplitude, speeds, intervals), sortable;
  choosing a row shows that region and moves the time slider to the beat's peak.

Drawing is :func:`napari_micromotion.report_motion.draw_contraction_panel` (no Qt).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from .._layers import KIND_COLOURS, plugin_meta
from ..errors import MicromotionError, check
from ..results import WHOLE_FIELD
from ._tasks import notify_error
from .inspector import SortItem
from .plots import WHOLE, PlotView

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["MotionView", "BEAT_COLUMNS"]


#: (header, field, numeric, tooltip); px fields switch to µm when the pixel size is known
BEAT_COLUMNS = [
    ("ROI", "roi", False, "Region (frame: the whole field)"),
    ("beat", "beat", True, "Beat number in the region"),
    ("onset (s)", "onset_s", True, "Where the contraction crosses 10 % of the beat's amplitude"),
    ("peak (s)", "peak_time_s", True, "Time of maximum contraction"),
    ("peak ({u})", "peak_displacement_{u}", True, "Mean displacement of the region at the peak"),
    ("to peak (ms)", "time_to_peak_s", True, "Onset to peak"),
    ("RT50 (ms)", "relaxation_50_s", True, "Peak to 50 % relaxation"),
    ("RT90 (ms)", "relaxation_90_s", True, "Peak to 90 % relaxation"),
    ("duration (ms)", "duration_s", True, "Onset to 90 % relaxation"),
    ("contraction ({u}/s)", "max_contraction_speed_{u}_s", True, "Largest speed while contracting"),
    ("relaxation ({u}/s)", "max_relaxation_speed_{u}_s", True, "Largest speed while relaxing"),
    ("RR (s)", "rr_s", True, "Interval from the previous beat's peak"),
]
_MS = {"time_to_peak_s", "relaxation_50_s", "relaxation_90_s", "duration_s"}


class MotionView(PlotView):
    """Contraction trace (left) and beat parameters (right) of one motion result."""

    file_stem = "contraction"
    figure_height_in = 3.2
    empty_text = "no contraction traces yet: run the motion tool (ROIs optional)"
    nothing_text = "there is no contraction trace yet; run the motion tool first."

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent,
                         region_tip="The region whose contraction is shown (follows the ROI selected in the viewer).")
        self.result: Any = None
        self._columns: list[tuple[str, str, bool, str]] = []
        self.canvas.mpl_connect("button_press_event", self._on_canvas_click)
        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._on_row)
        self.table_button = QPushButton("Export beat table...")
        self.table_button.setToolTip("The beat table in its current order.")
        self.table_button.clicked.connect(self._table_dialog)
        self.note.setText("Run the motion tool: its contraction traces and beats appear here.")

        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(2, 2, 2, 2)
        llay.addLayout(self.top_row())
        llay.addWidget(self.canvas, 1)
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(2, 2, 2, 2)
        rlay.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.note, 1)
        bottom.addWidget(self.table_button)
        rlay.addLayout(bottom)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)

        self.session.roi_selected.connect(self.show_region)
        self.redraw()

    def set_result(self, result: Any) -> None:
        """Show *result* (a :class:`~napari_micromotion.tools.motion.MotionResult`)."""
        self.result = result
        self.set_regions(list(result.regions))
        self._fill_table()
        n = len(result.beat_params)
        unit = "µm" if result.pixel_size_um else "px (set the pixel size for µm)"
        self.note.setText(f"{n} beat{'s' * (n != 1)} in {len(result.regions)} region"
                          f"{'s' * (len(result.regions) != 1)}; displacement against frame {result.reference_frame}, "
                          f"in {unit}.")
        self.redraw()

    def fps(self) -> float | None:
        return self.result.fps if self.result is not None else None

    # ------------------------------------------------------------ table
    def _fill_table(self) -> None:
        result = self.result
        u = "um" if result.pixel_size_um else "px"
        shown = "µm" if result.pixel_size_um else "px"
        self._columns = [(h.format(u=shown), k.format(u=u), num, tip) for h, k, num, tip in BEAT_COLUMNS]
        rows = result.beat_params
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(self._columns))
        self.table.setHorizontalHeaderLabels([c[0] for c in self._columns])
        for j, c in enumerate(self._columns):
            self.table.horizontalHeaderItem(j).setToolTip(c[3])
        self.table.setRowCount(len(rows))
        kinds = dict(zip(result.regions, result.kinds))
        for i, row in enumerate(rows):
            for j, (_, key, numeric, _t) in enumerate(self._columns):
                value = row.get(key, float("nan"))
                text = None
                if key in _MS and np.isfinite(value):
                    text = f"{1000 * value:.0f}"
                if key == "roi":
                    text = WHOLE if value == WHOLE_FIELD else None
                item = SortItem(value, numeric, text)
                if key == "roi":
                    item.setForeground(QColor(KIND_COLOURS.get(kinds.get(value, "other"), "#999999")))
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.table_button.setEnabled(bool(rows))

    def rows(self) -> list[dict[str, Any]]:
        """The beat table as shown (current order), raw values."""
        return [{key: self.table.item(i, j).value for j, (_, key, _n, _t) in enumerate(self._columns)}
                for i in range(self.table.rowCount())]

    def _on_row(self) -> None:
        items = self.table.selectedItems()
        if not items or self.result is None:
            return
        row = self.rows()[items[0].row()]
        self.show_region(str(row["roi"]))
        self.go_to_frame(int(round(float(row["peak_time_s"]) * self.result.fps)))

    # ------------------------------------------------------------ time
    def slider_layer(self) -> Any:
        """The arrows layer: it sits on the video motion ran on (which may not be the transmission) in time."""
        for layer in self.viewer.layers:
            if plugin_meta(layer).get("tool") == "motion" and getattr(layer, "ndim", 0) >= 3:
                return layer
        return None

    def go_to_frame(self, frame: int) -> None:
        """Move napari's time slider to *frame* of the video motion ran on."""
        trans = self.slider_layer() or self.session.transmission_layer()
        if trans is None or self.viewer.dims.ndim < 3:
            return
        frame = int(np.clip(frame, 0, self.result.n_frames - 1)) if self.result is not None else int(frame)
        world = float(trans.translate[0]) + frame * float(trans.scale[0])
        step = float(self.viewer.dims.range[0][2]) or 1.0
        self.viewer.dims.set_current_step(0, int(round((world - float(self.viewer.dims.range[0][0])) / step)))

    def _on_canvas_click(self, event: Any) -> None:
        if self.result is None or event.xdata is None or self.toolbar.mode:   # zooming or panning
            return
        self.go_to_frame(int(round(float(event.xdata) * self.result.fps)))

    # ------------------------------------------------------------ drawing
    def draw(self, figure: Any, colours: dict[str, str] | None = None, fontsize: float = 8) -> Any:
        from ..report_motion import draw_contraction_panel

        if self.result is None or self.region_combo.count() == 0:
            self.draw_empty(figure, colours)
            return None
        # a short canvas (a small window) has no room for the speed axis: its labels would overlap the first's
        return draw_contraction_panel(figure, self.result, self.region, colours=colours, fontsize=fontsize,
                                      show_speed=self.is_tall(figure))

    # ------------------------------------------------------------ export
    def _table_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export beat parameters", "beat_params.csv", "CSV (*.csv)")
        if path:
            self.export_table(path)

    def export_table(self, path: str | Path) -> Path | None:
        """The beat table in its current order, with the output folder's column names."""
        from ._files import write_csv_atomic

        try:
            rows = self.rows()
            check(rows, "there are no beats to export yet.")
            keys = [c[1] for c in self._columns]
            return write_csv_atomic(path, keys, [[r[k] for k in keys] for r in rows])
        except MicromotionError as exc:
            notify_error(exc)
            return None
