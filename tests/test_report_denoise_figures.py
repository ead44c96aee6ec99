"""What a reader sees in the denoiser's panel (saved as PNG from napari)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from napari_micromotion.report_denoise import draw_denoise_panel


def _result(n_frames=500, fps=50.0):
    t = np.arange(n_frames) / fps
    clean = np.exp(-((t % 2.0) / 0.3))
    raw = clean + 0.1 * np.random.default_rng(0).normal(size=n_frames)
    traces = {"cell": {"raw": raw, "denoised": clean, "lo90": clean - 0.05, "hi90": clean + 0.05,
                       "combined": clean, "combined_lo90": clean - 0.04, "combined_hi90": clean + 0.04}}
    return SimpleNamespace(n_frames=n_frames, time_s=lambda: t, traces=traces,
                           metrics={"loss_curve": list(np.linspace(1.4, 1.0, 25)), "val_mse": [1.0, 0.98]})


def test_the_legend_leaves_the_traces_clear_and_the_loss_has_its_axis():
    """The five-entry legend covered the traces' peaks (upper right), and the loss panel's x axis had no label."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    panel = draw_denoise_panel(fig, _result(), "cell")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax, loss = panel.axes
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y0 >= ax.get_window_extent(renderer).y1 - 1
    assert not legend.overlaps(ax.title.get_window_extent(renderer) if ax.get_title() else
                               ax._left_title.get_window_extent(renderer))
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "dF/F0"
    assert "step" in loss.get_xlabel()
    # the training curve and the held-out points on one axis of steps: the last held-out point at the end
    train, held = loss.lines[0].get_xdata(), loss.lines[1].get_xdata()
    assert held[-1] == train[-1]
