"""ROIs widget: a shapes layer whose shapes carry ``name`` and ``kind`` features.

Each kind (strong / weak / silent / other, the paper's test regions) has a fixed
edge colour; every shape shows its name.  The kind selector sets the kind of new
shapes and of the selected ones; new shapes get unique names ``roi<k>``.  ROI files
are JSON or ImageJ ``RoiSet.zip`` (:mod:`napari_micromotion.rois`), in pixel
coordinates of the transmission layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .._layers import KIND_COLOURS, META_KEY, PART_FEATURE, is_part, rois_layer
from ..errors import MicromotionError, check
from ..rois import KINDS, check_roi_name
from ._state import get_session, plugin_meta, spatial_transform, unwrap_viewer
from ._tasks import capitalised, notify_error
from .forms import in_gui_words

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["RoisWidget", "style_rois_layer", "add_rois_layer"]


def _kind_colour_map() -> dict[str, np.ndarray]:
    from napari.utils.colormaps.standardize_color import transform_color

    return {k: transform_color(KIND_COLOURS[k])[0] for k in KINDS}


def _unique_name(existing: set[str]) -> str:
    k = 1
    while f"roi{k}" in existing:
        k += 1
    return f"roi{k}"


def _valid(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != "" and v != "nan"


def set_features(layer: Any, df: pd.DataFrame, kind: str | None = None) -> None:
    """Replace the features, keeping the defaults of new shapes (napari resets them to the last row)."""
    if kind is None:
        defaults = layer.feature_defaults
        kind = str(defaults["kind"].iloc[0]) if "kind" in defaults and len(defaults) else "other"
    layer.features = df
    layer.feature_defaults["name"] = ""
    layer.feature_defaults["kind"] = kind if kind in KINDS else "other"
    if PART_FEATURE in layer.features:
        layer.feature_defaults[PART_FEATURE] = 0       # a new shape is an ROI of its own
    layer.edge_color_cycle_map = _kind_colour_map()
    layer.refresh_colors()


def style_rois_layer(layer: Any, kind: str = "other") -> Any:
    """Give a shapes layer ``name``/``kind`` features, a colour per kind, labels and the plugin's tag."""
    df = layer.features.copy() if len(layer.features.columns) else pd.DataFrame(index=range(len(layer.data)))
    n = len(layer.data)
    names = [str(v) if _valid(v) else "" for v in (df["name"] if "name" in df else [""] * n)]
    used = {v for v in names if v}
    for i, v in enumerate(names):
        if not v:
            names[i] = _unique_name(used)
            used.add(names[i])
    kinds = [str(v) if v in KINDS else "other" for v in (df["kind"] if "kind" in df else ["other"] * n)]
    df["name"] = pd.Series(names, dtype=object, index=df.index) if n else pd.Series([], dtype=object)
    df["kind"] = pd.Series(kinds, dtype=object, index=df.index) if n else pd.Series([], dtype=object)
    parts = df[PART_FEATURE] if PART_FEATURE in df else [0] * n
    df[PART_FEATURE] = pd.Series([int(v) if pd.notna(v) else 0 for v in parts], dtype=int, index=df.index)
    set_features(layer, df, kind)
    layer.edge_color = "kind"
    layer.edge_color_cycle_map = _kind_colour_map()
    layer.refresh_colors()
    if n:
        layer.face_color = "transparent"
    layer.current_face_color = "transparent"
    layer.text = {"string": "{name}", "color": "white", "size": 9, "anchor": "upper_left"}
    meta = dict(layer.metadata.get(META_KEY) or {})
    meta["role"] = "rois"
    layer.metadata = {**layer.metadata, META_KEY: meta}
    return layer


def add_rois_layer(viewer: "napari.Viewer", rois: list = (), name: str = "ROIs", transmission: Any = None) -> Any:
    """Add a styled ROI layer (2D, so it shows on every frame) placed like *transmission*."""
    data, kwargs, _ = rois_layer(list(rois), name=name)
    if transmission is not None:
        scale, translate = spatial_transform(transmission)
        kwargs["scale"] = tuple(scale)
        kwargs["translate"] = tuple(translate)
    if not data:
        kwargs.pop("edge_color", None)
        kwargs.pop("edge_color_cycle", None)
        kwargs.pop("text", None)
        layer = viewer.add_shapes(ndim=2, name=name, scale=kwargs.get("scale"), translate=kwargs.get("translate"),
                                  features={"name": np.array([], dtype=object), "kind": np.array([], dtype=object)},
                                  edge_width=kwargs.get("edge_width", 1.5), face_color="transparent",
                                  metadata=kwargs["metadata"])
    else:
        layer = viewer.add_shapes(data, **kwargs)
    return style_rois_layer(layer)


class RoisWidget(QWidget):
    """Create and edit the ROI layer; load and save ROI files."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self._layer: Any = None
        self._updating = False

        self.layer_combo = QComboBox()
        self.new_button = QPushButton("New ROI layer")
        self.new_button.clicked.connect(self.new_layer)
        self.kind = QComboBox()
        for k in KINDS:
            pix = QPixmap(12, 12)
            pix.fill(QColor(KIND_COLOURS[k]))
            self.kind.addItem(QIcon(pix), k)
        self.kind.setToolTip("Kind of new shapes and of the selected ones (strong / weak / silent motion, other).")
        self.name = QLineEdit()
        self.name.setPlaceholderText("name of the selected ROI")
        self.name.returnPressed.connect(lambda: self.rename_selected(self.name.text()))
        self.load_button = QPushButton("Load...")
        self.load_button.clicked.connect(self._load_dialog)
        self.save_button = QPushButton("Save...")
        self.save_button.clicked.connect(self._save_dialog)
        self.info = QLabel("")
        self.info.setWordWrap(True)

        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.layer_combo, 1)
        row.addWidget(self.new_button)
        form.addRow("layer", row)
        form.addRow("kind", self.kind)
        form.addRow("name", self.name)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.load_button)
        row.addWidget(self.save_button)
        lay.addLayout(row)
        lay.addWidget(self.info)
        hint = QLabel("Draw polygons, rectangles or ellipses with the layer's tools; "
                      "files are JSON or ImageJ RoiSet.zip.")
        hint.setWordWrap(True)
        lay.addWidget(hint)
        lay.addStretch(1)

        self.kind.currentTextChanged.connect(self.set_kind)
        self.layer_combo.currentTextChanged.connect(self._on_layer)
        napari_viewer.layers.events.inserted.connect(self._refresh_layers)
        napari_viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------ layer handling
    @property
    def layer(self) -> Any:
        return self._layer

    def _refresh_layers(self, event: Any = None) -> None:
        names = [la.name for la in self.session.shapes_layers()]
        current = self.layer_combo.currentText()
        self._updating = True
        try:
            self.layer_combo.clear()
            self.layer_combo.addItems(names)
            chosen = self.session.rois_layer()
            want = current if current in names else (chosen.name if chosen is not None else "")
            if want in names:
                self.layer_combo.setCurrentText(want)
        finally:
            self._updating = False
        self._on_layer(self.layer_combo.currentText())

    def _on_layer(self, name: str) -> None:
        if self._updating:
            return
        layer = self.session.layer(name)
        if layer is self._layer:
            self._update_info()
            return
        if self._layer is not None:
            self._disconnect(self._layer)
        self._layer = layer
        self.session.rois_layer_name = name or None
        if layer is not None:
            if plugin_meta(layer).get("role") != "rois" or "kind" not in layer.features:
                style_rois_layer(layer, self.kind.currentText())
            else:
                layer.edge_color_cycle_map = _kind_colour_map()
                layer.refresh_colors()
                layer.feature_defaults["kind"] = self.kind.currentText()
                layer.feature_defaults["name"] = ""
            layer.events.data.connect(self._on_data)
            layer.selected_data.events.items_changed.connect(self._on_selection)
        self._update_info()

    def _disconnect(self, layer: Any) -> None:
        for ev, cb in ((layer.events.data, self._on_data), (layer.selected_data.events.items_changed, self._on_selection)):
            try:
                ev.disconnect(cb)
            except Exception:  # pragma: no cover
                pass

    def new_layer(self) -> Any:
        """Add an empty ROI layer placed like the transmission layer and select it."""
        layer = add_rois_layer(self.viewer, [], name="ROIs", transmission=self.session.transmission_layer())
        layer.feature_defaults["kind"] = self.kind.currentText()
        self.layer_combo.setCurrentText(layer.name)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_polygon"
        return layer

    # ------------------------------------------------------------ edits
    def _on_data(self, event: Any) -> None:
        action = str(getattr(event, "action", "")).lower()
        if not action.endswith("added"):
            self._update_info()
            return
        layer = self._layer
        df = layer.features.copy()
        names = [str(v) if _valid(v) else "" for v in df["name"]]
        part = is_part(df)                  # a composite ROI's further outlines carry its name
        seen: set[str] = set()
        changed = False
        for i, v in enumerate(names):  # new shapes: empty or repeated names become roi<k>
            if part[i] and v:
                continue
            if not v or v in seen:
                names[i] = _unique_name(set(names) | seen)
                changed = True
            seen.add(names[i])
        if changed:
            df["name"] = pd.Series(names, dtype=object, index=df.index)
            set_features(layer, df, self.kind.currentText())
        self._update_info()

    def _selected(self) -> list[int]:
        return sorted(self._layer.selected_data) if self._layer is not None else []

    def _on_selection(self, *args: Any) -> None:
        sel = self._selected()
        if not sel:
            return
        df = self._layer.features
        self._updating = True
        try:
            kinds = {df["kind"].iloc[i] for i in sel}
            if len(kinds) == 1 and next(iter(kinds)) in KINDS:
                self.kind.setCurrentText(next(iter(kinds)))
            self.name.setText(str(df["name"].iloc[sel[0]]) if len(sel) == 1 else "")
        finally:
            self._updating = False

    def set_kind(self, kind: str, indices: list[int] | None = None) -> None:
        """Kind of new shapes, and of the selected shapes (or of *indices*)."""
        if self._updating or kind not in KINDS:
            return
        if self.kind.currentText() != kind:
            self._updating = True
            self.kind.setCurrentText(kind)
            self._updating = False
        layer = self._layer
        if layer is None:
            return
        layer.feature_defaults["kind"] = kind
        idx = self._selected() if indices is None else list(indices)
        if idx:                                           # with the further outlines of a composite ROI
            idx = sorted(set().union(*(self._outlines_of(str(layer.features["name"].iloc[i])) for i in idx)) | set(idx))
            df = layer.features.copy()
            df.loc[df.index[idx], "kind"] = kind
            set_features(layer, df, kind)
        self._update_info()

    def rename_selected(self, name: str) -> None:
        """Rename the one selected shape (names must be unique and CSV-safe)."""
        layer = self._layer
        sel = self._selected()
        try:
            check(layer is not None and len(sel) == 1, "select exactly one ROI to rename.")
            name = name.strip()
            check(name != "", "an ROI name cannot be empty.")
            check_roi_name(name)          # the rule every ROI obeys: a name Run would refuse is refused now
            names = [str(v) for v in layer.features["name"]]
            old = names[sel[0]]
            mine = self._outlines_of(old)                # a composite ROI's outlines are renamed together
            others = [v for i, v in enumerate(names) if i not in mine]
            check(name not in others, f"another ROI is already called {name!r}.")
        except MicromotionError as exc:
            notify_error(exc)
            return
        df = layer.features.copy()
        df.loc[df.index[sorted(mine)], "name"] = name
        set_features(layer, df, self.kind.currentText())
        self._update_info()

    def _outlines_of(self, name: str) -> set[int]:
        """The shapes of ROI *name*: its main outline and, for a composite ROI, its further outlines."""
        df = self._layer.features
        names = [str(v) for v in df["name"]]
        part = is_part(df)
        main = next((i for i, v in enumerate(names) if v == name and not part[i]), None)
        return {i for i, v in enumerate(names) if v == name and (i == main or part[i])}

    def _update_info(self) -> None:
        layer = self._layer
        if layer is None:
            self.info.setText("No ROI layer: press 'New ROI layer' or load an ROI file.")
            return
        main = ~is_part(layer.features)
        kinds = [k for k, m in zip(layer.features["kind"], main) if m] if "kind" in layer.features else []
        counts = ", ".join(f"{k} {kinds.count(k)}" for k in KINDS if kinds.count(k))
        n = int(main.sum()) if len(main) == len(layer.data) else len(layer.data)
        self.info.setText(f"{n} ROI(s)" + (f": {counts}" if counts else "") + ".")

    # ------------------------------------------------------------ files
    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load ROIs", "", "ROIs (*.json *.zip *.roi);;All files (*)")
        if path:
            self.load(path)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save ROIs", "rois.json", "JSON (*.json);;ImageJ RoiSet (*.zip)")
        if path:
            self.save(path)

    def load(self, path: str | Path) -> Any:
        """Add the ROIs of a file as a new ROI layer (errors become a notification)."""
        import warnings

        from napari.utils.notifications import show_warning

        from ..rois import read_rois

        try:
            with warnings.catch_warnings(record=True) as caught:   # damaged members, repeated names
                warnings.simplefilter("always")
                rois = read_rois(path)
        except MicromotionError as exc:
            notify_error(exc)
            return None
        for w in caught:
            if issubclass(w.category, UserWarning):     # what the reader says, not a library's deprecations
                show_warning(capitalised(in_gui_words(str(w.message))))
        layer = add_rois_layer(self.viewer, rois, name=Path(path).stem.split(".")[0] or "ROIs",
                               transmission=self.session.transmission_layer())
        self._refresh_layers()
        self.layer_combo.setCurrentText(layer.name)
        return layer

    def save(self, path: str | Path) -> Path | None:
        """Write the layer's ROIs (pixel coordinates of the transmission) as JSON or RoiSet.zip."""
        from napari.utils.notifications import show_info

        from ..rois import write_rois

        try:
            check(self._layer is not None and len(self._layer.data) > 0, "there are no ROIs to save.")
            p = Path(path)
            check(not p.is_dir(), f"{p} is a folder; give the ROI file a name (.json, .zip or .roi).")
            if p.suffix.lower() not in (".json", ".zip", ".roi"):
                p = p.with_name(p.name + ".json")
            out = write_rois(self.session.build_rois(self._layer), p)
        except MicromotionError as exc:
            notify_error(exc)
            return None
        show_info(f"Saved {len(self._layer.data)} ROI(s) to {out}.")
        return Path(out)
