"""The cell finder's result in the inspector: the curation page.

A table of every candidate (name, P(cell), label, who decided, kind, area), most uncertain
first; selecting a row selects, highlights and zooms to its shape in the "cell candidates"
layer, and clicking a shape in the viewer selects its row.  *Accept (A)*, *Reject (R)* and
*Undecided (U)* (buttons, or the keys; *N* skips to the next most uncertain candidate you have
not decided) record your decision and move on.  The keys work in the viewer while the candidates
layer (made active when curating starts) or a layer without keys of its own is active, and on
this page whatever layer is active; an ROI layer keeps its own A and R (select all, rectangle)
for drawing, and the page says so while one is active.  Shapes are
outlined by P(cell) (red - yellow - green); those you decided are drawn thicker and filled
(green: cell, red: not a cell); the selected one is cyan.

*Retrain on my labels* fine-tunes the classifier on your decisions in the background (live
loss, cancellable) and re-classifies the others at the threshold; *Accepted cells -> ROIs*
puts the cells into the ROI layer, ready for the Analyze tab; after that analysis
*Propose kinds* types them strong / weak / silent from their micromotion scores
(:func:`napari_micromotion.cells.kinds.propose_kinds`) and writes the kinds into the ROI
layer.  Below the table: the selected candidate's trace.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QShortcut,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._layers import plugin_meta, renamed_by_user, spatial_transform
from ..errors import MicromotionError, check
from ..progress import Progress
from ._state import get_session, unwrap_viewer
from ._tasks import Task, TaskHost, notify_error
from .plots import LossPlot, PlotView

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CellsView", "CandidateTracePlot", "CANDIDATES_LAYER", "SORTS"]

#: the tool's shapes layer of candidates
CANDIDATES_LAYER = "cell candidates"
#: the page's keys: decision (``None``: the next undecided candidate)
KEYS = {"a": "cell", "r": "not_cell", "u": "", "n": None}
#: the table's orders
SORTS = ("most uncertain first", "name", "P(cell), highest first")
COLUMNS = ("name", "P(cell)", "label", "by", "kind", "area (px)")
#: shapes you decided: thicker outline and a light fill
USER_EDGE, OTHER_EDGE, SELECTED_EDGE = 2.5, 1.0, 4.0
SELECTED_COLOUR = (0.2, 0.9, 1.0, 1.0)
USER_FILL = {"cell": (0.15, 0.85, 0.25, 0.30), "not_cell": (0.95, 0.2, 0.15, 0.25)}


def _label_text(label: str) -> str:
    return {"cell": "cell", "not_cell": "not a cell"}.get(label, "undecided")


class CandidateTracePlot(PlotView):
    """The selected candidate's mean fluorescence, its P(cell) and label in the title."""

    file_stem = "candidate"
    figure_height_in = 2.4
    empty_text = "select a candidate to see its trace"
    nothing_text = "there is no candidate trace to export; select a candidate first."

    def __init__(self, owner: "CellsView", napari_viewer: "napari.Viewer") -> None:
        super().__init__(napari_viewer, owner, min_height=120,
                         region_tip="The candidate shown (the row selected in the table).",
                         csv_tip="The candidate's mean fluorescence, one row per frame.")
        self.owner = owner
        self.region_combo.setVisible(False)
        row = QHBoxLayout()
        row.addStretch(1)
        for w in (self.toolbar, self.fig_button, self.csv_button):
            row.addWidget(w)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.canvas, 1)

    @property
    def region(self) -> str:
        c = self.owner.selected_candidate()
        return c.name if c is not None else "none"

    def fps(self) -> float | None:
        res = self.owner.result
        return float(res.fps) if res is not None and self.owner.selected_candidate() is not None else None

    def slider_layer(self) -> Any:
        return self.owner.fluorescence_layer()

    def draw(self, figure: Any, colours: dict[str, str] | None = None, fontsize: float = 8) -> Any:
        from ..report import TracePanel

        c = self.owner.selected_candidate()
        if c is None or len(c.trace) == 0:
            self.draw_empty(figure, colours)
            return None
        col = {"background": "white", "text": "black", "foreground": "#444444", "marker": "black", **(colours or {})}
        fps = float(self.owner.result.fps) or 1.0
        frames = np.arange(len(c.trace))
        t = frames / fps
        ax = figure.add_subplot(1, 1, 1)
        ax.set_facecolor(col["background"])
        ax.plot(t, c.trace, lw=0.8, color="#3182bd" if colours is None else "#6baed6")
        marker = ax.axvline(0.0, color=col["marker"], lw=0.8, alpha=0.6)
        p = "unknown" if not math.isfinite(c.probability) else f"{c.probability:.2f}"
        who = {"user": "you", "classifier": "the classifier"}.get(c.labelled_by, c.labelled_by or "nobody")
        kind = f", {c.kind}" if c.kind else ""
        ax.set_title(f"{c.name}: P(cell) = {p}; {_label_text(c.label)} (by {who}{kind})", fontsize=fontsize,
                     color=col["text"])
        ax.set_xlabel("time (s)", fontsize=fontsize, color=col["text"])
        ax.set_ylabel("mean fluorescence", fontsize=fontsize, color=col["text"])
        ax.tick_params(labelsize=fontsize - 1, colors=col["text"])
        for spine in ax.spines.values():
            spine.set_color(col["foreground"])
        ax.set_xlim(t[0], t[-1] if len(t) > 1 else 1.0)
        return TracePanel(axes=[ax], markers=[marker], frames=frames,
                          columns={"time_s": t, "fluorescence": np.asarray(c.trace, float)})


class CellsView(TaskHost, QWidget):
    """``set_result(CellsResult)``: curate the candidates (see the module docstring)."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.result: Any = None
        self.current: int | None = None      # index of the selected candidate
        self.order: list[int] = []           # table row -> candidate index
        self.task: Task | None = None
        self._x: Any = None                  # the classifier's inputs of this result (encoded once)
        self._syncing = False
        self._layer_ref: weakref.ref | None = None

        # ---- the table and decisions
        self.counter = QLabel("")
        self.counter.setWordWrap(True)
        self.sort_combo = QComboBox()
        self.sort_combo.addItems(SORTS)
        self.sort_combo.setToolTip("Order of the table; most uncertain first puts the candidates whose label you "
                                   "can teach the classifier most at the top.")
        self.sort_combo.currentIndexChanged.connect(lambda *_: self.fill_table())
        self.zoom_check = QCheckBox("zoom to it")
        self.zoom_check.setChecked(True)
        self.zoom_check.setToolTip("Centre and zoom the viewer on the candidate selected in the table.")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.accept_button = QPushButton("Accept (A)")
        self.accept_button.setToolTip("This candidate is a cell (key A); then the next most uncertain one.")
        self.accept_button.clicked.connect(lambda: self.decide("cell"))
        self.reject_button = QPushButton("Reject (R)")
        self.reject_button.setToolTip("This candidate is not a cell (key R); then the next most uncertain one.")
        self.reject_button.clicked.connect(lambda: self.decide("not_cell"))
        self.undecided_button = QPushButton("Undecided (U)")
        self.undecided_button.setToolTip("Take back your decision: the classifier's label applies again (key U).")
        self.undecided_button.clicked.connect(lambda: self.decide(""))
        self.next_button = QPushButton("Next (N)")
        self.next_button.setToolTip("The next most uncertain candidate you have not decided (key N).")
        self.next_button.clicked.connect(self.next_candidate)
        self.plot = CandidateTracePlot(self, napari_viewer)

        # ---- the classifier
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.5)
        self.threshold.setToolTip("Candidates you have not decided are cells when P(cell) is at least this.")
        self.threshold.valueChanged.connect(self._on_threshold)
        self.retrain_button = QPushButton("Retrain on my labels")
        self.retrain_button.setToolTip("Fine-tune the classifier on the candidates you accepted or rejected (in the "
                                       "background), then re-classify the others.")
        self.retrain_button.clicked.connect(self.retrain)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.loss_plot = LossPlot(viewer=self.viewer)
        try:
            from ..tools.cells import Cells

            self.loss_plot.title = Cells.loss_title
        except ImportError:  # pragma: no cover
            pass
        self.loss_plot.setVisible(False)

        # ---- ROIs and kinds
        self.to_rois_button = QPushButton("Accepted cells → ROIs")
        self.to_rois_button.setToolTip("Put the candidates labelled cell into the ROI layer (replacing earlier ones "
                                       "of the same name); then run the analysis in the Analyze tab.")
        self.to_rois_button.clicked.connect(self.cells_to_rois)
        self.kind_method = QComboBox()
        self.kind_method.addItem("auto")
        self.kind_method.setToolTip("Whose micromotion scores type the cells (auto: cnn3d, cnn1d, matched, flow, "
                                    "bandpass, the first the analysis has).")
        self.significance = QDoubleSpinBox()
        self.significance.setRange(0.001, 0.5)
        self.significance.setDecimals(3)
        self.significance.setSingleStep(0.01)
        self.significance.setValue(0.05)
        self.significance.setToolTip("A cell whose score has a p-value below this moves with its calcium "
                                     "(strong or weak); otherwise it is silent.")
        self.strong_score = QDoubleSpinBox()
        self.strong_score.setRange(0.0, 1.0)
        self.strong_score.setDecimals(2)
        self.strong_score.setSingleStep(0.05)
        self.strong_score.setValue(0.5)
        self.strong_score.setToolTip("Significant cells scoring at least this are strong, the others weak.")
        self.kinds_button = QPushButton("Propose kinds")
        self.kinds_button.setToolTip("Strong / weak / silent for the accepted cells from the analysis' scores; "
                                     "shown in the table and written into the ROI layer.")
        self.kinds_button.clicked.connect(self.propose_kinds)
        self.status = QLabel("Run the cell finder (Tools tab, Cells) to curate its candidates.")
        self.status.setWordWrap(True)
        self.keys_hint = QLabel("")      # which keys the active layer takes for itself
        self.keys_hint.setWordWrap(True)
        self.keys_hint.setVisible(False)

        # ---- layout: table | trace | actions
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Sort"))
        top.addWidget(self.sort_combo, 1)
        top.addWidget(self.zoom_check)
        lv.addLayout(top)
        lv.addWidget(self.table, 1)
        keys = QHBoxLayout()
        for b in (self.accept_button, self.reject_button, self.undecided_button, self.next_button):
            keys.addWidget(b)
        lv.addLayout(keys)
        lv.addWidget(self.keys_hint)
        lv.addWidget(self.counter)
        lv.addWidget(self.status)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(2, 0, 2, 0)
        clf = QGroupBox("Classifier")
        cf = QFormLayout(clf)
        cf.addRow("cell when P(cell) ≥", self.threshold)
        row = QHBoxLayout()
        row.addWidget(self.retrain_button, 1)
        row.addWidget(self.cancel_button)
        cf.addRow(row)
        cf.addRow(self.loss_plot)
        rv.addWidget(clf)
        kinds = QGroupBox("ROIs and kinds")
        kf = QFormLayout(kinds)
        kf.addRow(self.to_rois_button)
        kf.addRow("scores of", self.kind_method)
        kf.addRow("significant when p <", self.significance)
        kf.addRow("strong when score ≥", self.strong_score)
        kf.addRow(self.kinds_button)
        rv.addWidget(kinds)
        rv.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(right)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(max(300, right.minimumSizeHint().width() + 18))

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.plot)
        split.addWidget(scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 4)
        split.setStretchFactor(2, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)

        self.session.results_changed.connect(self._on_results)
        self._on_results()
        self._bound: list[tuple[Any, str]] = []
        self._bind_keys(self.viewer)
        for key in KEYS:    # on this page the keys are the page's, whatever layer is active
            shortcut = QShortcut(QKeySequence(key.upper()), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda key=key: self._on_key(key))
        self._active_cb = _make_active_callback(weakref.ref(self))
        self.viewer.layers.selection.events.active.connect(self._active_cb)
        self._click_cb = _make_click_callback(weakref.ref(self))
        self.viewer.mouse_drag_callbacks.append(self._click_cb)
        self.destroyed.connect(_make_cleanup(weakref.ref(self.viewer), self._bound, self._click_cb, self._active_cb))

    # ------------------------------------------------------------ keys and clicks
    def _bind_keys(self, provider: Any) -> None:
        """Bind A / R / U / N on *provider* (the viewer, and the candidates layer, whose own keys come first)."""
        ref = weakref.ref(self)

        def bind(key: str) -> None:
            def on_key(*_: Any) -> None:
                view = ref()
                if view is not None:
                    view._on_key(key)
            provider.bind_key(key, on_key, overwrite=True)
            self._bound.append((weakref.ref(provider), key))

        for key in KEYS:
            bind(key)

    def _on_key(self, key: str) -> None:
        if KEYS[key] is None:
            self.next_candidate()
        else:
            self.decide(KEYS[key])

    def keys_taken(self, layer: Any = None) -> list[str]:
        """The page's keys that *layer* (default: the active one) keeps for itself (an ROI layer: A and R)."""
        layer = self.viewer.layers.selection.active if layer is None else layer
        if layer is None or layer is self.layer():
            return []
        own = {str(k).lower() for k in {**getattr(layer, "class_keymap", {}), **getattr(layer, "keymap", {})}}
        return [k for k in KEYS if k in own]

    def _on_active_layer(self, *_: Any) -> None:
        """Say which keys the active layer keeps, while there are candidates to curate."""
        taken = self.keys_taken() if self.result is not None and self.result.candidates else []
        active = self.viewer.layers.selection.active
        if taken:
            keys = " and ".join(k.upper() for k in taken)
            self.keys_hint.setText(f"The active layer {active.name!r} keeps {keys} for drawing; to decide by key, "
                                   f"click this table or select {CANDIDATES_LAYER!r}.")
        self.keys_hint.setVisible(bool(taken))

    def activate_layer(self) -> bool:
        """Make the candidates layer the active one (its keys then decide); ``True`` if that changed it."""
        la = self.layer()
        if la is None or self.viewer.layers.selection.active is la:
            return False
        self.viewer.layers.selection.active = la
        return True

    def unbind_keys(self) -> None:
        """Give A / R / U / N back (the page closes)."""
        _unbind(self._bound)

    def _on_canvas_click(self, position: Any, event: Any) -> None:
        la = self.layer()
        if la is None or not la.visible or self.result is None:
            return
        try:
            value = la.get_value(position, view_direction=getattr(event, "view_direction", None),
                                 dims_displayed=getattr(event, "dims_displayed", None), world=True)
        except Exception:  # pragma: no cover - napari versions differ; a click then does nothing
            return
        idx = value[0] if isinstance(value, tuple) else value
        if idx is not None and 0 <= int(idx) < len(self.result.candidates):
            self.select(int(idx), zoom=False)

    # ------------------------------------------------------------ result
    def set_result(self, result: Any) -> None:
        """Curate *result* (a :class:`~napari_micromotion.tools.cells.CellsResult`)."""
        if self.task is not None and self.task.running:
            self.task.cancel()
        carried_note = ""
        previous = self.result
        if previous is not None and previous is not result and previous.candidates is not result.candidates:
            # a new run of the cell finder: the user's decisions follow the cells they were made on
            from ..cells.candidates import carry_labels

            carried, lost = carry_labels(previous.candidates, result.candidates, tuple(result.frame_shape))
            if carried or lost:
                carried_note = (f" {carried} of your decisions carried over to the same cells"
                                + (f"; {lost} matched no new candidate and were dropped" if lost else "") + ".")
        self.result = result
        self._x = None
        self.current = None
        self.threshold.blockSignals(True)
        self.threshold.setValue(float(getattr(result.params, "threshold", 0.5)))
        self.threshold.blockSignals(False)
        self.loss_plot.reset()
        self.loss_plot.setVisible(False)
        carried_note += self._attach_layer()
        before = self.viewer.layers.selection.active
        if result.candidates and self.activate_layer() and before is not None:
            carried_note += (f" {CANDIDATES_LAYER!r} is the active layer now, so A and R accept and reject in the "
                             f"viewer ({before.name!r} was).")
        self._on_active_layer()
        self.restyle()
        self.fill_table()
        order = self.uncertain_order()
        n = len(result.candidates)
        self.status.setText((f"{n} candidates, {len(result.cells)} labelled cell. Decide the uncertain ones "
                             "(A / R), retrain, then put the cells into the ROIs." if n else
                             "The cell finder found no candidate.") + carried_note)
        if carried_note:
            from napari.utils.notifications import show_info

            show_info(carried_note.strip())
        if order:
            self.select(order[0], zoom=False)
        else:
            self.plot.redraw()

    def selected_candidate(self) -> Any:
        if self.result is None or self.current is None or self.current >= len(self.result.candidates):
            return None
        return self.result.candidates[self.current]

    def uncertain_order(self, undecided_only: bool = False) -> list[int]:
        """Candidate indices, most uncertain first (*undecided_only*: those you have not decided)."""
        from ..cells.train import uncertainty_order

        if self.result is None:
            return []
        cands = self.result.candidates
        order = uncertainty_order([c.probability for c in cands]).tolist()
        if undecided_only:
            order = [i for i in order if cands[i].labelled_by != "user"]
        return order

    # ------------------------------------------------------------ layer
    def layer(self) -> Any:
        """The "cell candidates" shapes layer of this result (``None`` when removed).

        The page follows the layer object it curates, whatever the user renames it to; without
        one, the layer the last run made (named as the run named it, not renamed by the user).
        """
        la = self._layer_ref() if self._layer_ref is not None else None
        if la is not None and la in self.viewer.layers:
            return la
        for la in self.viewer.layers:
            if la.name == CANDIDATES_LAYER and plugin_meta(la).get("tool") == "cells" and not renamed_by_user(la):
                return la
        return None

    def fluorescence_layer(self) -> Any:
        src = (self.result.source or {}) if self.result is not None else {}
        la = self.session.layer(src.get("fluorescence_layer") or src.get("layer"))
        return la if la is not None else self.session.fluorescence_layer()

    def _attach_layer(self) -> str:
        """Curate the layer of the result just set; returns a note when a renamed layer is left to the user.

        A layer the user renamed keeps the earlier run's candidates (the run left it alone and made a
        new "cell candidates" layer): the page lets go of it, its keys included, and curates the new one.
        """
        old = self._layer_ref() if self._layer_ref is not None else None
        note = ""
        if old is not None and renamed_by_user(old):
            self._layer_ref = None
            if old in self.viewer.layers:
                note = (f" The layer {old.name!r}, which you renamed, keeps the earlier candidates; this run's are in "
                        f"{CANDIDATES_LAYER!r}.")
        la = self.layer()
        if old is la:
            return note
        if old is not None:
            try:
                old.events.highlight.disconnect(self._on_layer_highlight)
            except Exception:  # pragma: no cover
                pass
            _unbind([b for b in self._bound if b[0]() is old])
            self._bound[:] = [b for b in self._bound if b[0]() is not old]
        self._layer_ref = weakref.ref(la) if la is not None else None
        if la is not None:
            la.events.highlight.connect(self._on_layer_highlight)
            self._bind_keys(la)
        return note

    def _layer_matches(self, la: Any) -> bool:
        return la is not None and self.result is not None and len(la.data) == len(self.result.candidates)

    def restyle(self) -> None:
        """Outline by P(cell) (RdYlGn); your decisions thicker and filled; the selected one thickest, in cyan."""
        from matplotlib import colormaps

        la = self.layer()
        if not self._layer_matches(la):
            return
        cands = self.result.candidates
        prob = np.array([c.probability if math.isfinite(c.probability) else 0.5 for c in cands], float)
        self._syncing = True
        try:
            la.features = pd.DataFrame({"name": [c.name for c in cands], "probability": prob,
                                        "label": [c.label or "undecided" for c in cands],
                                        "by": [c.labelled_by for c in cands],
                                        # while it is the only shapes layer the ROIs widget reads kinds from it
                                        "kind": [c.kind or "other" for c in cands]})
            edges = colormaps["RdYlGn"](np.clip(prob, 0.0, 1.0))
            if self.current is not None and self.current < len(cands):
                edges[self.current] = SELECTED_COLOUR
            la.edge_color = edges
            widths = [SELECTED_EDGE if i == self.current else USER_EDGE if c.labelled_by == "user" else OTHER_EDGE
                      for i, c in enumerate(cands)]
            la.edge_width = widths
            face = np.zeros((len(cands), 4))
            for i, c in enumerate(cands):
                if c.labelled_by == "user" and c.label in USER_FILL:
                    face[i] = USER_FILL[c.label]
            if len(cands):
                la.face_color = face
        finally:
            self._syncing = False

    def _on_layer_highlight(self, event: Any = None) -> None:
        la = self.layer()
        if self._syncing or not self._layer_matches(la):
            return
        sel = sorted(la.selected_data)
        if len(sel) == 1 and sel[0] != self.current:
            self.select(sel[0], zoom=False)

    # ------------------------------------------------------------ table
    def fill_table(self) -> None:
        """Rows in the chosen order (the selection kept)."""
        if self.result is None:
            self.table.setRowCount(0)
            return
        cands = self.result.candidates
        how = self.sort_combo.currentText()
        if how == "name":
            self.order = sorted(range(len(cands)), key=lambda i: cands[i].name)
        elif how.startswith("P(cell)"):
            self.order = sorted(range(len(cands)), key=lambda i: -(cands[i].probability
                                                                   if math.isfinite(cands[i].probability) else -1))
        else:
            self.order = self.uncertain_order()
        self._syncing = True
        try:
            self.table.setRowCount(len(self.order))
            for row, i in enumerate(self.order):
                self._fill_row(row, cands[i])
            if self.current is not None and self.current in self.order:
                self.table.selectRow(self.order.index(self.current))
        finally:
            self._syncing = False
        self._update_counter()

    def _fill_row(self, row: int, c: Any) -> None:
        from matplotlib import colormaps

        p = c.probability
        texts = (c.name, "–" if not math.isfinite(p) else f"{p:.3f}", _label_text(c.label),
                 {"user": "you"}.get(c.labelled_by, c.labelled_by), c.kind, str(c.area_px))
        for col, text in enumerate(texts):
            item = QTableWidgetItem(text)
            if col in (1, 5):
                item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
            self.table.setItem(row, col, item)
        if math.isfinite(p):
            r, g, b, _ = colormaps["RdYlGn"](float(p))
            self.table.item(row, 1).setBackground(QColor.fromRgbF(r, g, b, 0.55))
        if c.labelled_by == "user":
            font = self.table.item(row, 2).font()
            font.setBold(True)
            for col in (2, 3):
                self.table.item(row, col).setFont(font)

    def _update_row(self, i: int) -> None:
        if i in self.order:
            self._syncing = True
            try:
                self._fill_row(self.order.index(i), self.result.candidates[i])
            finally:
                self._syncing = False

    def _update_counter(self) -> None:
        if self.result is None:
            self.counter.setText("")
            return
        cands = self.result.candidates
        mine = [c for c in cands if c.labelled_by == "user" and c.label]
        k = sum(c.label == "cell" for c in mine)
        self.counter.setText(f"{len(mine)} labelled by you ({k} cell{'' if k == 1 else 's'}); "
                             f"{sum(c.label == 'cell' for c in cands)} of {len(cands)} candidates are cells.")

    def _on_table_selection(self) -> None:
        if self._syncing:
            return
        rows = {ix.row() for ix in self.table.selectedIndexes()}
        if len(rows) == 1:
            row = rows.pop()
            if row < len(self.order) and self.order[row] != self.current:
                self.select(self.order[row], zoom=self.zoom_check.isChecked())

    # ------------------------------------------------------------ selection
    def select(self, i: int, *, zoom: bool = True) -> None:
        """Make candidate *i* current: its row, its shape (selected, thickest outline), its trace; *zoom* to it."""
        if self.result is None or not 0 <= i < len(self.result.candidates):
            return
        self.current = int(i)
        self._syncing = True
        try:
            if i in self.order:
                row = self.order.index(i)
                self.table.selectRow(row)
                self.table.scrollToItem(self.table.item(row, 0))
            la = self.layer()
            if self._layer_matches(la):
                la.selected_data = {int(i)}
        finally:
            self._syncing = False
        self.restyle()
        if zoom:
            self.zoom_to(i)
        self.plot.redraw()

    def zoom_to(self, i: int) -> None:
        """Centre the viewer on candidate *i*, zoomed so it fills about a quarter of the canvas."""
        la = self.layer()
        c = self.result.candidates[i]
        if la is not None:
            scale, translate = np.asarray(la.scale[-2:], float), np.asarray(la.translate[-2:], float)
        else:
            scale, translate = np.ones(2), np.zeros(2)
        r0, c0, r1, c1 = c.box
        centre = (np.array([(r0 + r1) / 2, (c0 + c1) / 2]) - 0.5) * scale + translate
        extent = max((r1 - r0) * scale[0], (c1 - c0) * scale[1], 1e-9)
        camera = _camera(self.viewer)
        camera.center = tuple(float(v) for v in centre)
        canvas = getattr(self.viewer, "canvas", None)   # napari >= 0.9; older: viewer._canvas_size
        size = getattr(canvas, "size", None) if canvas is not None else getattr(self.viewer, "_canvas_size", None)
        if size is not None and min(size) > 10:
            camera.zoom = float(min(size)) / (4.0 * extent)

    def next_candidate(self) -> None:
        """The next most uncertain candidate you have not decided (after the current one, wrapping)."""
        order = self.uncertain_order(undecided_only=True)
        if not order:
            if self.result is not None and self.result.candidates:
                self.status.setText("You have decided every candidate.")
            return
        nxt = order[0]
        if self.current in order:
            nxt = order[(order.index(self.current) + 1) % len(order)]
        self.select(nxt, zoom=self.zoom_check.isChecked())

    # ------------------------------------------------------------ decisions
    def decide(self, label: str) -> None:
        """Your decision on the current candidate: ``"cell"``, ``"not_cell"`` or ``""`` (back to the classifier)."""
        c = self.selected_candidate()
        if c is None:
            notify_error(MicromotionError("select a candidate first (a row of the table or a shape in the viewer)."
                                          if self.result is not None else "run the cell finder first; there are no "
                                                                          "candidates to label yet."))
            return
        if label:
            c.label, c.labelled_by = label, "user"
        else:
            c.label, c.labelled_by = self._threshold_label(c.probability), "classifier"
        self._update_row(self.current)
        self._update_counter()
        if label:
            self.next_candidate()   # also restyles and redraws
        else:
            self.restyle()
            self.plot.redraw()

    def _threshold_label(self, p: float) -> str:
        return "" if not math.isfinite(p) else ("cell" if p >= self.threshold.value() else "not_cell")

    def _on_threshold(self, *_: Any) -> None:
        if self.result is None:
            return
        self.relabel()

    def relabel(self) -> None:
        """Label the candidates you have not decided at the threshold."""
        for c in self.result.candidates:
            if c.labelled_by != "user" and math.isfinite(c.probability):
                c.label, c.labelled_by = self._threshold_label(c.probability), "classifier"
        self.restyle()
        self.fill_table()
        self.plot.redraw()

    # ------------------------------------------------------------ retraining
    def retrain(self) -> Task | None:
        """Fine-tune the classifier on your labels in the background; then new P(cell) for every candidate."""
        try:
            check(self.result is not None, "run the cell finder first; there is nothing to retrain on.")
            check(not self.running, "the classifier is already retraining; wait or cancel it.")
            model = self.result.classifier_model()
            cands = self.result.candidates
            user = [i for i, c in enumerate(cands) if c.labelled_by == "user" and c.label in ("cell", "not_cell")]
            check(bool(user), "label some candidates first: accept (A) or reject (R) them, then retrain.")
            y = np.array([cands[i].label == "cell" for i in user], np.int64)
            check(0 < int(y.sum()) < len(y), "retraining needs both kinds of example: accept at least one cell and "
                                            "reject at least one candidate.")
        except MicromotionError as exc:
            notify_error(exc)
            return None
        params = self.result.params
        result, x_cached = self.result, self._x
        seconds = float(params.finetune_seconds)
        threads = int(params.threads)
        idx = np.asarray(user, int)

        def work():
            x = x_cached
            if x is None:
                yield Progress("encode", 0.0, f"{len(cands)} candidates")
                x = result.encode()
            record = yield from model.iter_finetune(x[idx], y, max_seconds=seconds, threads=threads)
            yield Progress("classify", 0.0, f"{len(cands)} candidates")
            prob = np.asarray(model.predict_proba(x), float).ravel()
            yield Progress("classify", 1.0, f"{len(cands)} candidates re-classified")
            return x, record, prob

        task = Task(work, what="retraining the classifier", title="micromotion cells", parent=self)
        return self.launch(task, button=self.retrain_button, on_success=lambda out: self._on_retrained(out, user),
                           status=f"Retraining on {len(user)} candidates you labelled ({int(y.sum())} cells)...",
                           failed="Retraining failed",
                           cancelled="Retraining cancelled; the probabilities are unchanged.")

    def _on_retrained(self, out: Any, user: list[int]) -> None:
        x, record, prob = out
        cands = self.result.candidates
        if len(prob) != len(cands):   # pragma: no cover - a classifier that skipped candidates
            notify_error(MicromotionError("the classifier returned a probability per candidate only for some of "
                                          "them; nothing changed."))
            return
        self._x = x
        for c, p in zip(cands, prob):
            c.probability = float(p)
        rec = self.result.classifier if isinstance(self.result.classifier, dict) else {}
        rec.setdefault("finetune_in_napari", []).append({"user_labels": len(user), "record": record})
        self.relabel()
        self.status.setText(f"Retrained on {len(user)} labels; {len(self.result.cells)} of {len(cands)} candidates "
                            "are cells now.")

    # ------------------------------------------------------------ ROIs and kinds
    def cells_to_rois(self) -> Any:
        """Put the accepted cells into the ROI layer (made if there is none) with their kinds; returns the layer."""
        from .rois_widget import add_rois_layer, set_features, style_rois_layer

        try:
            check(self.result is not None, "run the cell finder first; there are no cells yet.")
            cells = self.result.cells
            check(bool(cells), "no candidate is labelled cell yet: accept some (A) or lower the threshold.")
        except MicromotionError as exc:
            notify_error(exc)
            return None
        layer = self.session.rois_layer()
        if layer is not None and plugin_meta(layer).get("role") == "result":
            layer = None   # the candidates themselves (the only shapes layer) are no ROI layer
        if layer is None:
            layer = add_rois_layer(self.viewer, [], transmission=self.session.transmission_layer()
                                   or self.fluorescence_layer())
        elif "name" not in layer.features or "kind" not in layer.features:
            style_rois_layer(layer)
        names = [c.name for c in cells]
        existing = [str(v) for v in layer.features["name"]]
        drop = {i for i, n in enumerate(existing) if n in set(names)}
        if drop:
            layer.selected_data = drop
            layer.remove_selected()
        src = self.layer()
        if src is not None:
            s_scale, s_trans = np.asarray(src.scale[-2:], float), np.asarray(src.translate[-2:], float)
        else:
            s_scale, s_trans = spatial_transform(self.fluorescence_layer()) if self.fluorescence_layer() is not None \
                else (np.ones(2), np.zeros(2))
        d_scale, d_trans = spatial_transform(layer)
        polys = []
        for c in cells:
            pts = (np.asarray(c.polygon, float) * s_scale + s_trans - d_trans) / d_scale
            if layer.ndim > 2:
                pts = np.column_stack([np.zeros((len(pts), layer.ndim - 2)), pts])
            polys.append(pts)
        n0 = len(layer.data)
        layer.add(polys, shape_type="polygon")
        df = layer.features.copy()
        df["name"] = df["name"].astype(object)
        df["kind"] = df["kind"].astype(object)
        df.loc[df.index[n0:], "name"] = names
        df.loc[df.index[n0:], "kind"] = [c.kind or "other" for c in cells]
        set_features(layer, df)
        layer.selected_data = set()
        self.session.rois_layer_name = layer.name
        from napari.utils.notifications import show_info

        show_info(f"{len(cells)} cells are in the ROI layer {layer.name!r}; run the analysis in the Analyze tab, "
                  "then propose their kinds here.")
        self.status.setText(f"{len(cells)} cells → ROI layer {layer.name!r}.")
        return layer

    def _on_results(self, *_: Any) -> None:
        from ..cells.kinds import scores_from_results

        methods = sorted(scores_from_results(self.session.results))
        current = self.kind_method.currentText()
        self.kind_method.clear()
        self.kind_method.addItems(["auto", *methods])
        idx = self.kind_method.findText(current)
        self.kind_method.setCurrentIndex(idx if idx >= 0 else 0)

    def propose_kinds(self) -> dict[str, str] | None:
        """Strong / weak / silent for the accepted cells from the analysis in the session; returns them."""
        from ..cells.kinds import KindRule, p_value_floor, propose_kinds, scores_from_results

        try:
            check(self.result is not None, "run the cell finder first; there are no cells to type.")
            cells = self.result.cells
            check(bool(cells), "no candidate is labelled cell yet; accept some first.")
            scores = scores_from_results(self.session.results)
            check(bool(scores), "there is no analysis with ROI scores yet: put the accepted cells into the ROIs, "
                                "run the analysis (Analyze tab), then propose kinds.")
            rule = KindRule(self.kind_method.currentText(), float(self.significance.value()),
                            float(self.strong_score.value()))
            proposed = propose_kinds(cells, scores, rule, p_floor=p_value_floor(self.session.results))
            check(bool(proposed), "the analysis scored none of the accepted cells: put them into the ROIs "
                                  "(Accepted cells → ROIs) and run the analysis again.")
        except MicromotionError as exc:
            notify_error(exc)
            return None
        self._push_kinds(proposed)
        self.fill_table()
        self.plot.redraw()
        counts = {k: sum(v == k for v in proposed.values()) for k in ("strong", "weak", "silent")}
        missing = len(cells) - len(proposed)
        self.status.setText("Kinds: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                            + (f"; {missing} accepted cells were not analysed." if missing else "."))
        return proposed

    def _push_kinds(self, kinds: dict[str, str]) -> None:
        from .rois_widget import set_features

        layer = self.session.rois_layer()
        if layer is None or plugin_meta(layer).get("role") == "result" or "name" not in layer.features or "kind" not in layer.features:
            return
        df = layer.features.copy()
        df["kind"] = df["kind"].astype(object)
        for i, name in enumerate(str(v) for v in df["name"]):
            if name in kinds:
                df.loc[df.index[i], "kind"] = kinds[name]
        set_features(layer, df)


# ---------------------------------------------------------------- helpers (no reference to the view)
def _camera(viewer: Any) -> Any:
    """The viewer's camera (napari >= 0.9: ``viewer.scene.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _unbind(bound: list[tuple[weakref.ref, str]]) -> None:
    for ref, key in bound:
        provider = ref()
        if provider is not None:
            try:
                provider.bind_key(key, None)
            except Exception:  # pragma: no cover - already gone
                pass
    bound.clear()


def _make_click_callback(ref: weakref.ref) -> Any:
    """A viewer mouse callback: a click (no drag) on a candidate selects its row."""
    def on_click(viewer: Any, event: Any):
        start = np.asarray(event.position, float)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or bool(np.abs(np.asarray(event.position, float) - start).max() > 0)
            yield
        view = ref()
        if view is not None and not moved:
            view._on_canvas_click(start, event)
    return on_click


def _make_active_callback(ref: weakref.ref) -> Any:
    """A callback for a change of the active layer: the page says which of its keys that layer keeps."""
    def on_active(*_: Any) -> None:
        view = ref()
        if view is not None:
            try:
                view._on_active_layer()
            except RuntimeError:  # pragma: no cover - the page's Qt widgets are gone
                pass
    return on_active


def _make_cleanup(viewer_ref: weakref.ref, bound: list, callback: Any, on_active: Any = None) -> Any:
    def cleanup(*_: Any) -> None:
        _unbind(bound)
        viewer = viewer_ref()
        if viewer is not None and callback in viewer.mouse_drag_callbacks:
            viewer.mouse_drag_callbacks.remove(callback)
        if viewer is not None and on_active is not None:
            viewer.layers.selection.events.active.disconnect(on_active)
    return cleanup
