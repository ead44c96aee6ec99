"""Recording widget: which layers (or files) are transmission and fluorescence, fps, pixel size, channel."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._layers import META_KEY, display_limits, recording_layers
from ..errors import MicromotionError
from ._state import get_session, layer_array, plugin_meta, unwrap_viewer
from ._tasks import notify_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..recording import Recording

__all__ = ["RecordingWidget"]

AUTO = "(automatic)"
NONE = "(none)"


def _frames_of(layer: Any) -> int:
    """How many frames (axis 0) *layer* has; 0 for no layer or one that is not a time series."""
    data = layer_array(layer) if layer is not None else None
    return int(data.shape[0]) if getattr(data, "ndim", 0) >= 3 else 0


@contextmanager
def said_in_gui() -> Iterator[None]:
    """What the readers warn about while a file opens (a lossy codec, a fade-in, frames that alternate), each as
    a napari warning in the forms' words, once; not left to napari's hook for Python warnings, which shows the
    command line's words, and only what the warning filter lets through."""
    from napari.utils.notifications import show_warning

    from .forms import in_gui_words

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    said: list[str] = []
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, UserWarning) and text not in said:
            said.append(text)
            show_warning(in_gui_words(text))


class RecordingWidget(QWidget):
    """Pick the transmission and fluorescence layers (or open files), fps, pixel size and channel.

    Values left at *unknown*/*auto* come from the layer's metadata
    (``metadata["napari_micromotion"]``, written by the plugin's reader).
    """

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self._updating = False
        self._shown_layer: Any = None  # the transmission layer whose fps / pixel size the fields show

        self.transmission = QComboBox()
        self.transmission.setToolTip("Brightfield (transmitted light) video, (T, Y, X) or (T, C, Y, X).")
        self.fluorescence = QComboBox()
        self.fluorescence.setToolTip("Calcium fluorescence video of the same frames: the ground truth.")
        self.open_transmission = QPushButton("Open...")
        self.open_transmission.setToolTip("Open a TIFF, OME-TIFF, two-channel TIFF, TIFF folder or video.")
        self.open_transmission.clicked.connect(lambda: self._open_dialog("transmission"))
        self.open_fluorescence = QPushButton("Open...")
        self.open_fluorescence.clicked.connect(lambda: self._open_dialog("fluorescence"))
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.0, 100000.0)
        self.fps.setDecimals(3)
        self.fps.setSpecialValueText("unknown")
        self.fps.setSuffix(" fps")
        self.fps.setToolTip("Frames per second; taken from the file when it records it.")
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 10000.0)
        self.pixel_size.setDecimals(4)
        self.pixel_size.setSpecialValueText("unknown")
        self.pixel_size.setSuffix(" um")
        self.channel = QSpinBox()
        self.channel.setRange(-1, 64)
        self.channel.setSpecialValueText("auto")
        self.channel.setValue(-1)
        self.channel.setToolTip("Transmission channel of a multi-channel file or (T, C, Y, X) layer; "
                                "the other channel of a two-channel file is the fluorescence.")
        self.interleaved = QSpinBox()
        self.interleaved.setRange(1, 16)
        self.interleaved.setSpecialValueText("none")
        self.interleaved.setToolTip("Set before opening a file whose channels alternate frame by frame (brightfield "
                                    "and fluorescence taken in turn, saved as one time series): it opens as this many "
                                    "channels, channel 0 the transmission and 1 the fluorescence, each at the file's "
                                    "frame rate divided by this.")
        self.frame_range = QLineEdit()
        self.frame_range.setPlaceholderText("START:STOP")
        self.frame_range.setToolTip("Frames to keep, START:STOP (0-based; STOP not included, so 6:40 of 40 frames "
                                    "keeps the last 34); filled in past a fade-in the reader found.")
        self.keep_button = QPushButton("Keep")
        self.keep_button.setToolTip("Add the chosen layers cut to these frames (their frame 0 is the first kept "
                                    "frame; frame rate, pixel size and the file they come from go with them), hide "
                                    "the originals and analyse the cut layers: e.g. to drop a fade-in.")
        self.keep_button.clicked.connect(lambda: self.keep_frames())
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.sample_button = QPushButton("Load the sample recording")
        self.sample_button.setToolTip("A simulated beating cell sheet in brightfield and calcium fluorescence with "
                                      "strong, weak and silent cells (40 s at 50 fps); simulated in the background.")
        self.sample_button.clicked.connect(self.load_sample)
        self.folder_button = QPushButton("Open a folder of frames...")
        self.folder_button.setToolTip("A folder of single-frame TIFFs (natural sort order), e.g. with a "
                                      "videoinfos.txt giving the frame rate.")
        self.folder_button.clicked.connect(self._open_folder_dialog)

        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.transmission, 1)
        row.addWidget(self.open_transmission)
        form.addRow("transmission", row)
        row = QHBoxLayout()
        row.addWidget(self.fluorescence, 1)
        row.addWidget(self.open_fluorescence)
        form.addRow("fluorescence", row)
        form.addRow("frame rate", self.fps)
        form.addRow("pixel size", self.pixel_size)
        form.addRow("channel", self.channel)
        form.addRow("interleaved channels", self.interleaved)
        row = QHBoxLayout()
        row.addWidget(self.frame_range, 1)
        row.addWidget(self.keep_button)
        form.addRow("keep frames", row)
        lay = QVBoxLayout(self)
        hint = QLabel("Choose the layers to analyse, or open files here: this reads the frame rate, pixel size "
                      "and channels that the files record (napari's own File > Open does not).")
        hint.setWordWrap(True)
        lay.addWidget(hint)
        lay.addLayout(form)
        lay.addWidget(self.summary)
        buttons = QHBoxLayout()
        buttons.addWidget(self.folder_button)
        buttons.addWidget(self.sample_button)
        lay.addLayout(buttons)
        lay.addStretch(1)

        self.transmission.currentTextChanged.connect(self._on_transmission)
        self.fluorescence.currentTextChanged.connect(self._on_choice)
        self.fps.valueChanged.connect(self._on_choice)
        self.pixel_size.valueChanged.connect(self._on_choice)
        self.channel.valueChanged.connect(self._on_choice)
        layers = napari_viewer.layers
        layers.events.inserted.connect(self._refresh_layers)
        layers.events.removed.connect(self._refresh_layers)
        layers.events.inserted.connect(self._connect_rename)
        for layer in layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------ layer lists
    def _connect_rename(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layers)

    def _refresh_layers(self, event: Any = None) -> None:
        images = [la.name for la in self.session.image_layers()]
        self._updating = True
        try:
            for combo, extra in ((self.transmission, AUTO), (self.fluorescence, AUTO)):
                current = combo.currentText()
                combo.clear()
                combo.addItem(extra)
                if combo is self.fluorescence:
                    combo.addItem(NONE)
                combo.addItems(images)
                idx = combo.findText(current)
                combo.setCurrentIndex(idx if idx >= 0 else 0)
        finally:
            self._updating = False
        self._on_transmission()

    def _on_transmission(self, *_: Any) -> None:
        if self._updating:
            return
        name = self.transmission.currentText()
        self.session.choice.transmission = None if name in ("", AUTO) else name
        layer = self.session.transmission_layer()
        if layer is not self._shown_layer:  # a different layer: its own metadata fills fps and pixel size
            self._shown_layer = layer
            self._updating = True
            try:
                self.fps.setValue(self.session.layer_fps(layer) or 0.0)
                self.pixel_size.setValue(self.session.layer_pixel_size(layer) or 0.0)
                self._show_frame_range(layer)
            finally:
                self._updating = False
        self._on_choice()

    def _on_choice(self, *_: Any) -> None:
        if self._updating:
            return
        c = self.session.choice
        t = self.transmission.currentText()
        f = self.fluorescence.currentText()
        c.transmission = None if t in ("", AUTO) else t
        c.fluorescence = None if f in ("", AUTO) else ("" if f == NONE else f)
        layer = self.session.transmission_layer()
        fps = self.fps.value() or None
        c.fps = fps if fps is not None and fps != self.session.layer_fps(layer) else None
        px = self.pixel_size.value() or None
        c.pixel_size_um = px if px is not None and px != self.session.layer_pixel_size(layer) else None
        c.channel = None if self.channel.value() < 0 else self.channel.value()
        if layer is not None and fps is not None and plugin_meta(layer).get("fps") is None and META_KEY in layer.metadata:
            layer.metadata[META_KEY]["fps"] = fps  # the fps the user entered travels with the layer
        self._update_summary()
        self.session.recording_changed.emit()

    def _update_summary(self) -> None:
        try:
            rec = self.recording()
        except MicromotionError as exc:
            self.summary.setText(str(exc))
            self.summary.setStyleSheet("color: #e6a23c;")
            return
        self.summary.setStyleSheet("")
        self.summary.setText(rec.describe())

    def _show_frame_range(self, layer: Any) -> None:
        """The keep-frames field for *layer*: all its frames, or those after a fade-in the reader found."""
        from ..recording import frames_to_skip

        n = _frames_of(layer)
        skip = frames_to_skip(plugin_meta(layer).get("provenance") if layer is not None else None)
        self.frame_range.setText(f"{min(skip, max(0, n - 1))}:{n}" if n else "")
        self.frame_range.setEnabled(n > 0)
        self.keep_button.setEnabled(n > 0)

    # ------------------------------------------------------------ API
    def keep_frames(self, start: int | None = None, stop: int | None = None) -> list[Any]:
        """Add the chosen transmission (and fluorescence) layers cut to frames ``start:stop`` (default: the
        fields'), hide the originals and choose the cut ones; returns the new layers (none, with a notification,
        when the range or the choice does not work)."""
        from ..recording import kept_frames_provenance
        from ..schema import parse_frame_range

        try:
            rec = self.recording()
            if start is None or stop is None:
                start, stop = parse_frame_range(self.frame_range.text(), rec.n_frames)
            rec = rec.keep_frames(start, stop)
        except MicromotionError as exc:
            notify_error(exc)
            return []
        trans, fl = self.session.transmission_layer(), self.session.fluorescence_layer()
        added = []
        for layer in [trans] + ([fl] if fl is not None and fl is not trans else []):
            data, state, kind = layer.as_layer_data_tuple()
            data = [d[start:stop] for d in data] if getattr(layer, "multiscale", False) else data[start:stop]
            meta = dict(state.get("metadata") or {})
            own = dict(meta.get(META_KEY) or {})
            own.update({"fps": rec.fps, "pixel_size_um": rec.pixel_size_um,
                        "provenance": kept_frames_provenance(own.get("provenance"), start, stop)})
            state.update(name=f"{layer.name} [{start}:{stop}]", metadata={**meta, META_KEY: own},
                         visible=layer is trans or bool(state.get("visible", True)))
            if kind == "image" and getattr(data, "ndim", 0) == 3:    # (T, Y, X): grey levels of the kept frames
                state["contrast_limits"] = display_limits(data, 0, "transmission" if layer is trans else "fluorescence")
            added.append(getattr(self.viewer, f"add_{kind}")(data, **state))
            layer.visible = False
        self.select(transmission=added[0].name, fluorescence=added[1].name if len(added) > 1 else None)
        return added

    def set_fps(self, fps: float) -> None:
        self.fps.setValue(float(fps))

    def set_pixel_size(self, px: float) -> None:
        self.pixel_size.setValue(float(px))

    def select(self, transmission: str | None = None, fluorescence: str | None = None) -> None:
        """Choose layers by name (``fluorescence=""`` for none)."""
        if transmission is not None:
            self.transmission.setCurrentText(transmission)
        if fluorescence is not None:
            self.fluorescence.setCurrentText(NONE if fluorescence == "" else fluorescence)

    def recording(self) -> "Recording":
        """The :class:`Recording` the analysis will see (raises :class:`MicromotionError`)."""
        return self.session.build_recording()

    def load_sample(self) -> Any:
        """Simulate the sample recording in the background and add its layers; returns the task."""
        from .sample import load_sample

        return load_sample(self.viewer)

    def _open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of TIFF frames")
        if path:
            self.open_path(path)

    def _open_dialog(self, role: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Open the {role} recording", "",
                                              "Recordings (*.tif *.tiff *.mp4 *.avi *.mov);;All files (*)")
        if path:
            self.open_path(path) if role == "transmission" else self.open_fluorescence_file(path)

    def open_files(self, transmission: str | Path, fluorescence: str | Path | None = None) -> list[Any]:
        """Read a recording from disk and add its layers (errors become a notification)."""
        from ..io import read_recording

        channel = None if self.channel.value() < 0 else self.channel.value()
        try:
            with said_in_gui():
                rec = read_recording(transmission, fluorescence, channel=channel, interleaved=self.interleaved.value())
        except MicromotionError as exc:  # no frame rate in the file: use the one entered here
            if "frame rate" in str(exc) and self.fps.value() > 0:
                try:
                    with said_in_gui():
                        rec = read_recording(transmission, fluorescence, channel=channel, fps=self.fps.value(),
                                             interleaved=self.interleaved.value())
                except MicromotionError as exc2:
                    notify_error(exc2)
                    return []
            else:
                notify_error(exc)
                return []
        added = []
        for data, kwargs, _ in recording_layers(rec):
            added.append(self.viewer.add_image(data, **kwargs))
        self.select(transmission=added[0].name, fluorescence=added[1].name if len(added) > 1 else "")
        return added

    def open_path(self, path: str | Path) -> list[Any]:
        """Open a recording file or folder with everything it records (frame rate, pixel size, channels; a
        simulator folder's ROIs); a file without a frame rate opens too and the fps field asks for it."""
        from .._reader import read_path
        from .rois_widget import style_rois_layer

        try:
            with said_in_gui():
                layer_data = read_path(str(path), interleaved=self.interleaved.value())
        except (MicromotionError, ValueError) as exc:
            notify_error(exc if isinstance(exc, MicromotionError) else MicromotionError(str(exc)))
            return []
        added = [getattr(self.viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layer_data]
        images = [la for la in added if plugin_meta(la).get("role") in ("transmission", "fluorescence")]
        for la in added:
            if plugin_meta(la).get("role") == "rois":
                style_rois_layer(la)
                self.session.rois_layer_name = la.name
        if images:
            self.select(transmission=images[0].name, fluorescence=images[1].name if len(images) > 1 else "")
        return added

    def open_fluorescence_file(self, path: str | Path) -> Any:
        """Read a fluorescence stack and add it as a layer."""
        from ..io import read_stack, select_channel

        try:
            with said_in_gui():
                info = read_stack(path)
            data, _ = select_channel(info, None, "fluorescence")
        except MicromotionError as exc:
            notify_error(exc)
            return None
        trans = self.session.transmission_layer()
        scale = tuple(trans.scale) if trans is not None and trans.ndim == 3 else None
        layer = self.viewer.add_image(data, name="fluorescence", colormap="magma", blending="additive", visible=False,
                                      scale=scale, metadata={META_KEY: {"role": "fluorescence", "fps": info.fps,
                                                                        "pixel_size_um": info.pixel_size_um,
                                                                        "provenance": {"fluorescence": {"path": str(path)}}}})
        self.select(fluorescence=layer.name)
        return layer
