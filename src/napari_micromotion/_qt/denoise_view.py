"""The denoiser's result in the inspector: a region's raw, denoised and combined dF/F0 with the 90 % corridors.

The region follows the ROI selected in the viewer (or the combo box); a marker follows the
denoised layer's frame under the time slider; beside the trace, the training loss per
report and the held-out loss per epoch.  *Save figure* renders it at publication size on
white; *Export CSV* writes the plotted numbers (``frame,time_s,raw,denoised,lo90,hi90,combined,
combined_lo90,combined_hi90``).
Drawing is :func:`napari_micromotion.report_denoise.draw_denoise_panel` (no Qt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QWidget

from .._layers import plugin_meta
from .plots import PlotView

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["DenoiseView"]


class DenoiseView(PlotView):
    """``set_result(DenoiseResult)``: traces with corridors per region, loss curves."""

    file_stem = "denoised"
    figure_height_in = 3.0
    empty_text = "no denoised traces yet: run the denoiser with ROIs"
    nothing_text = "there is no trace to export yet."

    def __init__(self, napari_viewer: "napari.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent, min_height=180,
                         region_tip="The region whose trace is shown (follows the ROI selected in the viewer).",
                         csv_tip="The plotted traces and corridors and the raw trace, one row per frame.")
        self.result: Any = None
        self.setLayout(self.plot_column())
        self.session.roi_selected.connect(self.show_region)

    def set_result(self, result: Any) -> None:
        self.result = result
        self.set_regions(list(result.regions))
        m = result.metrics
        cal = m.get("calibration", {})
        slow = m.get("trace_slow_error_sd", {})
        nets = "2 cross-fitted networks, " if m.get("folds", 1) == 2 else ""
        self.note.setText(
            f"{nets}{m.get('training_frames', 0)} training frames, out-of-sample residual / noise "
            f"{m.get('heldout_residual_over_noise', float('nan')):.3f} (1 is ideal), error variance "
            f"{100 * cal.get('error_over_noise_estimate', float('nan')):.2g} % of the noise's, slow shared error of "
            f"the ROI means up to "
            f"{max(slow.values(), default=0.0):.3g} (SD, input units), "
            f"guard flagged {100 * m.get('guard', {}).get('flagged_fraction', 0.0):.2g} % of pixels, "
            f"{m.get('inference_frames_per_s', 0.0):.0f} frames/s.")
        self.redraw()

    def show_region(self, name: str) -> None:
        """Show ROI *name*; one the run did not denoise (drawn since) is named as such, not replaced by another."""
        if self.result is not None and self.region_combo.findText(name) < 0 and name not in self.result.regions:
            from napari.utils.notifications import show_info

            show_info(f"ROI {name!r} was drawn or renamed after this denoising run; run the denoiser again for "
                      "its trace.")
            return
        super().show_region(name)

    def fps(self) -> float | None:
        return self.result.fps if self.result is not None else None

    def slider_layer(self) -> Any:
        for layer in self.viewer.layers:
            if plugin_meta(layer).get("tool") == "denoise" and getattr(layer, "ndim", 0) >= 3:
                return layer
        return None

    def draw(self, figure: Any, colours: dict[str, str] | None = None, fontsize: float = 8) -> Any:
        from ..report_denoise import draw_denoise_panel

        if self.result is None or self.region not in self.result.traces:
            self.draw_empty(figure, colours)
            return None
        return draw_denoise_panel(figure, self.result, self.region, colours=colours, fontsize=fontsize)
