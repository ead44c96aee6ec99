"""The interpolator's result in the inspector: which frame under the time slider is measured or synthesized.

While scrubbing, a text overlay on the canvas (and a line here) says whether the interpolated
layer's current frame was measured or synthesized (with the input frames it lies between);
*Side by side* shows the original and the interpolated video next to each other (napari's
grid), their frames lined up in time (the interpolated layer's time scale is 1/K of the
original's).  Below: held-out PSNR/SSIM of every method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .._layers import plugin_meta
from ._state import get_session, unwrap_viewer

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["InterpolateView", "frame_text", "text_overlay", "grid"]


def text_overlay(viewer: Any) -> Any:
    """The canvas' text overlay (napari >= 0.9: ``viewer.canvas.overlays``; older: ``viewer.text_overlay``)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays["text"] if canvas is not None else viewer.text_overlay


def grid(viewer: Any) -> Any:
    """The viewer's grid settings (napari >= 0.9: ``viewer.canvas.grid``)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None else viewer.grid


def frame_text(measured: Any, j: int, factor: int) -> str:
    """``"frame j: MEASURED (input frame i)"`` or ``"frame j: SYNTHESIZED (between input frames i and i+1)"``."""
    if measured[j]:
        return f"interpolated frame {j}: MEASURED (input frame {j // factor})"
    i = j // factor
    return f"interpolated frame {j}: SYNTHESIZED (t = {j % factor}/{factor} between input frames {i} and {i + 1})"


class InterpolateView(QWidget):
    """``set_result(InterpolateResult)``: per-frame measured/synthesized flag, side-by-side comparison, scores."""

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.session = get_session(napari_viewer)
        self.result: Any = None
        self.frame_label = QLabel("")
        self.frame_label.setWordWrap(True)
        self.side_button = QPushButton("Side by side")
        self.side_button.setCheckable(True)
        self.side_button.setToolTip("Show the original and the interpolated video next to each other (grid), "
                                    "frames lined up in time.")
        self.side_button.toggled.connect(self.side_by_side)
        self.scores = QLabel("")
        self.scores.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.frame_label, 1)
        top.addWidget(self.side_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.scores)
        lay.addStretch(1)
        self._hidden: list[Any] = []
        napari_viewer.dims.events.current_step.connect(self._on_step)
        napari_viewer.layers.events.removed.connect(self._on_step)     # the flag goes with its layer

    # ------------------------------------------------------------ layers
    def layer(self) -> Any:
        """The interpolated video's layer (the first with this tool's frame flags)."""
        for la in self.viewer.layers:
            meta = plugin_meta(la)
            if meta.get("tool") == "interpolate" and "measured" in meta and la.name.startswith("interpolated x"):
                return la
        return None

    def current_frame(self) -> int | None:
        la = self.layer()
        if la is None or self.result is None:
            return None
        j = self.session.slider_frame(la)
        return None if j is None else int(np.clip(j, 0, self.result.n_frames - 1))

    # ------------------------------------------------------------ result
    def set_result(self, result: Any) -> None:
        self.result = result
        ev = result.evaluation.get("methods", {})
        rows = [f"<tr><td>{name}</td><td align='right'>{v['psnr_db']:.2f}</td><td align='right'>{v['ssim']:.4f}</td></tr>"
                for name, v in ev.items()]
        held = result.evaluation.get("heldout_frames", [])
        self.scores.setText(
            f"x{result.factor}: {int(result.measured.sum())} measured and {int((~result.measured).sum())} synthesized "
            f"frames at {result.fps:g} fps; method <b>{result.evaluation.get('chosen', '')}</b>.<br>"
            f"Held-out frames ({len(held)}, reconstructed from their neighbours, never used for fine-tuning):"
            f"<table><tr><th>method</th><th>PSNR (dB)</th><th>SSIM</th></tr>{''.join(rows)}</table>")
        self._on_step()

    def _on_step(self, *_: Any) -> None:
        j = self.current_frame()
        overlay = text_overlay(self.viewer)
        if j is None:
            if self.result is not None and self.layer() is None and overlay.visible:
                # the interpolated layer is gone: its frame flag must not stay on the measured video
                overlay.visible = False
                self.frame_label.setText("The interpolated layer was removed.")
            return
        text = frame_text(self.result.measured, j, self.result.factor)
        self.frame_label.setText(text)
        overlay.text = text
        overlay.color = "lime" if self.result.measured[j] else "orange"
        overlay.font_size = 14
        overlay.position = "top_left"
        overlay.visible = True

    def side_by_side(self, on: bool = True) -> None:
        """Grid view of the original (the tool's input) and the interpolated layer; *on* False restores the view."""
        grid_ = grid(self.viewer)
        if not on:
            for la in self._hidden:
                la.visible = True
            self._hidden = []
            grid_.enabled = False
            self.viewer.reset_view()
            return
        mine = self.layer()
        if mine is None:
            from napari.utils.notifications import show_info

            self.side_button.blockSignals(True)
            self.side_button.setChecked(False)
            self.side_button.blockSignals(False)
            show_info("There is no interpolated layer to show side by side; run the interpolation again.")
            return
        original = self.original_layer()
        keep = {id(mine), id(original)}
        self._hidden = [la for la in self.viewer.layers if la.visible and id(la) not in keep]
        for la in self._hidden:
            la.visible = False
        mine.visible = True
        if original is not None:
            original.visible = True
        grid_.stride = 1
        grid_.enabled = True
        self.viewer.reset_view()

    def original_layer(self) -> Any:
        """The layer interpolated: the transmission, or the image layer with the same frame size listed first."""
        mine = self.layer()
        name = (self.result.source or {}).get("layer") if self.result is not None else None
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        la = self.session.transmission_layer()
        if la is not None and la is not mine:
            return la
        for la in self.viewer.layers:
            if la is not mine and getattr(la, "ndim", 0) == 3 and mine is not None and \
                    tuple(la.data.shape[1:]) == tuple(mine.data.shape[1:]):
                return la
        return None
