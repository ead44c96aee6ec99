"""Score table widget: per ROI and method the score, lag and p-value; sortable and exportable."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import MicromotionError, check
from ..methods import label_of
from ._state import get_session, unwrap_viewer
from ._tasks import notify_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["ScoreTableWidget", "COLUMNS"]

#: (header, key in Results.roi_scores rows, numeric)
COLUMNS = [("ROI", "roi", False), ("kind", "kind", False), ("method", "method", False), ("score", "score", True),
           ("lag (s)", "lag_s", True), ("p-value", "p_value", True), ("pixels", "n_pixels", True)]
KIND_COLOURS = {"strong": "#e6550d", "weak": "#3182bd", "silent": "#31a354", "other": "#9e9ac8"}


class _Item(QTableWidgetItem):
    """A cell that sorts numerically (NaN last) when it holds a number."""

    def __init__(self, value: Any, numeric: bool) -> None:
        if numeric:
            v = float(value) if value is not None else float("nan")
            text = "nan" if math.isnan(v) else (f"{int(v)}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.4g}")
            super().__init__(text)
            self.key = (1, 0.0) if math.isnan(v) else (0, v)
        else:
            super().__init__(str(value))
            self.key = (0, str(value).lower())
        self.value = value
        self.setFlags(self.flags() & ~Qt.ItemFlag.ItemIsEditable)
        if numeric:
            self.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))

    def __lt__(self, other: Any) -> bool:  # type: ignore[override]
        if isinstance(other, _Item):
            return self.key < other.key
        return super().__lt__(other)


class ScoreTableWidget(QWidget):
    """The ROI scores of the current result, one row per ROI and method."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # ROI order until sorted
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._select_roi)
        self.export_button = QPushButton("Export CSV...")
        self.export_button.clicked.connect(self._export_dialog)
        self.note = QLabel("p-value: circular-shift surrogates; lag > 0: prediction after fluorescence.")
        self.note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.note)
        row = QHBoxLayout()
        row.addWidget(self.export_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.session.results_changed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        results = self.session.results
        rows = list(results.roi_scores) if results is not None else []
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, (_, key, numeric) in enumerate(COLUMNS):
                value = row.get(key, float("nan") if numeric else "")
                item = _Item(value, numeric)
                if key == "method":
                    item.setText(label_of(str(value)))
                    item.setData(Qt.ItemDataRole.UserRole, value)
                if key == "kind":
                    item.setForeground(QColor(KIND_COLOURS.get(str(value), "#999999")))
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        self.export_button.setEnabled(bool(rows))

    def rows(self) -> list[dict[str, Any]]:
        """The table as shown (current sort order), one dict per row with the raw values."""
        out = []
        for i in range(self.table.rowCount()):
            out.append({key: self.table.item(i, j).value for j, (_, key, _n) in enumerate(COLUMNS)})
        return out

    def sort_by(self, key: str, descending: bool = True) -> None:
        j = [c[1] for c in COLUMNS].index(key)
        self.table.sortItems(j, Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder)

    def _select_roi(self) -> None:
        """Selecting a row selects the ROI's shape in the analysed ROI layer."""
        items = self.table.selectedItems()
        layer = self.session.watched_rois_layer()
        if not items or layer is None or "name" not in layer.features:
            return
        roi = self.table.item(items[0].row(), 0).value
        names = list(layer.features["name"])
        if roi in names:
            layer.selected_data = {names.index(roi)}

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export ROI scores", "roi_scores.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the table (in its current order) as CSV with the CLI's ``roi_scores.csv`` columns."""
        from ._files import write_csv_atomic

        try:
            rows = self.rows()
            check(rows, "there are no scores to export; run an analysis with ROIs first.")
            keys = ["roi", "kind", "method", "score", "lag_s", "p_value", "n_pixels"]
            return write_csv_atomic(path, keys, [[r[k] for k in keys] for r in rows])
        except MicromotionError as exc:
            notify_error(exc)
            return None
