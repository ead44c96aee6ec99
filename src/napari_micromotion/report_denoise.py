"""Figure of the denoiser: one region's raw, denoised and combined dF/F0 with their 90 % corridors, and the losses.

Like :mod:`napari_micromotion.report`, it draws on a matplotlib
:class:`~matplotlib.figure.Figure` it is given (no pyplot state), so the napari page and
scripts share one drawing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .denoise.train import LOSS_EVERY_STEPS
from .report import LIGHT, TracePanel, style_axes

__all__ = ["draw_denoise_panel", "DENOISED", "RAW", "COMBINED"]

DENOISED = "#2ca02c"
RAW = "#888888"
COMBINED = "#9467bd"


def draw_denoise_panel(fig: Any, result: Any, region: str, colours: dict[str, str] | None = None,
                       fontsize: float = 8) -> TracePanel:
    """*region*'s trace from a :class:`~napari_micromotion.tools.denoise.DenoiseResult` (left) and the losses (right).

    Returns the axes, the current-frame marker and the plotted columns (``time_s``, ``raw``,
    ``denoised``, ``lo90``, ``hi90`` and, when the result has it, ``combined``,
    ``combined_lo90``, ``combined_hi90``: the CSV export of the napari page).  The combined
    trace (raw and denoised ROI means weighted by their error variances) is the better
    amplitude for a ROI of many pixels, the denoised one for peak times and small regions.
    """
    c = {**LIGHT, **(colours or {})}
    frames = np.arange(result.n_frames)
    t = result.time_s()
    panel = TracePanel(frames=frames)
    tr = result.traces[region]
    keys = ("raw", "denoised", "lo90", "hi90") + tuple(k for k in ("combined", "combined_lo90", "combined_hi90")
                                                       if k in tr)
    panel.columns = {"time_s": t, **{k: np.asarray(tr[k]) for k in keys}}
    ax, axl = fig.subplots(1, 2, width_ratios=(4, 1))
    for a in (ax, axl):
        style_axes(a, c, fontsize)
    ax.plot(t, tr["raw"], color=RAW, lw=0.6, label="raw")
    ax.fill_between(t, tr["lo90"], tr["hi90"], color=DENOISED, alpha=0.35, lw=0, label="90 % corridor")
    ax.plot(t, tr["denoised"], color=DENOISED, lw=1.0, label="denoised")
    if "combined" in tr:
        ax.fill_between(t, tr["combined_lo90"], tr["combined_hi90"], color=COMBINED, alpha=0.3, lw=0,
                        label="combined's 90 % corridor")
        ax.plot(t, tr["combined"], color=COMBINED, lw=0.8, label="combined (raw + denoised)")
    ax.set_xlabel("time (s)", fontsize=fontsize)
    ax.set_ylabel("dF/F0", fontsize=fontsize)
    ax.set_title(region, color=c["text"], fontsize=fontsize, loc="left")
    # above the plot, not over the peaks it is about
    ax.legend(fontsize=fontsize - 1, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False,
              labelcolor=c["text"], borderaxespad=0.1)
    if t.size:
        ax.set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
    panel.markers.append(ax.axvline(t[0] if t.size else 0, color=c["marker"], lw=0.6, alpha=0.6))
    m = result.metrics
    if m.get("loss_curve"):
        axl.plot(LOSS_EVERY_STEPS * (np.arange(len(m["loss_curve"])) + 1), m["loss_curve"], color="#1f77b4", lw=0.8,
                 label="training")
    if m.get("val_mse"):
        per = LOSS_EVERY_STEPS * len(m.get("loss_curve", [])) / max(1, len(m["val_mse"]))
        axl.plot(per * (np.arange(len(m["val_mse"])) + 1), m["val_mse"], "o-", color="#ff7f0e", ms=3, lw=0.8,
                 label="held-out")
    axl.set_title("loss (noise units)", color=c["text"], fontsize=fontsize)
    axl.set_xlabel("training steps", fontsize=fontsize)
    if axl.lines:
        axl.legend(fontsize=fontsize - 2, frameon=False, labelcolor=c["text"])
    panel.axes = [ax, axl]
    return panel
