"""Figures of the motion tool: contraction traces with their beats, and the displacement maps.

Like :mod:`napari_micromotion.report`, every function draws on a matplotlib
:class:`~matplotlib.figure.Figure` it is given or creates (no pyplot state), so the
napari tab, the output folder's ``report.png`` and scripts share one drawing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .export import readers_first
from .report import (
    LIGHT,
    ROI_COLOURS,
    TracePanel,
    draw_warnings,
    outline,
    scale_bar,
    style_axes,
    warning_lines,
    warnings_height,
)
from .results import WHOLE_FIELD

__all__ = ["draw_contraction_panel", "draw_motion_maps", "save_motion_report", "build_motion_report", "beat_summary"]

DISPLACEMENT = "#8c564b"
SPEED = "#7f7f7f"
ONSET = "#d62728"


def beat_summary(result: Any, region: str) -> str:
    """One line: beats, rate, RR SD and the median beat's timing in *region*."""
    rate = next((r for r in result.beat_rates if r.roi == region), None)
    rows = [b for b in result.beat_params if b.roi == region]
    if rate is None or not rows:
        return f"{region}: no beats found"
    bits = [f"{region}: {rate.n_beats} beat{'' if rate.n_beats == 1 else 's'}"]
    if np.isfinite(rate.rate_bpm):
        bits.append(f"{rate.rate_bpm:.1f} bpm")
    if np.isfinite(rate.rr_sd_s):
        bits.append(f"RR SD {1000 * rate.rr_sd_s:.0f} ms")

    def med(key: str) -> float:
        v = np.array([getattr(b, key) for b in rows], np.float64)
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else float("nan")

    um = result.pixel_size_um
    amp = med("peak_displacement_um") if um else med("peak_displacement_px")
    if np.isfinite(amp):
        bits.append(f"peak {amp:.2f} {'µm' if um else 'px'}")
    for key, label in (("time_to_peak_s", "to peak"), ("relaxation_50_s", "RT50"), ("relaxation_90_s", "RT90")):
        v = med(key)
        if np.isfinite(v):
            bits.append(f"{label} {1000 * v:.0f} ms")
    return ", ".join(bits) + " (medians)"


def draw_contraction_panel(fig: Any, result: Any, region: str, window: slice | None = None,
                           colours: dict[str, str] | None = None, fontsize: float = 8, gs: Any = None,
                           show_speed: bool = True) -> TracePanel:
    """*region*'s contraction trace (mean displacement) with onsets and peaks, and its speed below.

    Units are µm when the recording's pixel size is known, else pixels.  Returns the
    axes, the current-frame markers and the plotted columns (for CSV export).
    """
    c = {**LIGHT, **(colours or {})}
    sl = window if window is not None else slice(0, result.n_frames)
    frames = np.arange(result.n_frames)[sl]
    t = frames / result.fps
    panel = TracePanel(frames=frames)
    panel.columns["time_s"] = t
    if region not in result.displacement:
        ax = fig.add_subplot(gs) if gs is not None else fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, f"no contraction trace for {region}", ha="center", va="center", transform=ax.transAxes,
                color=c["text"])
        ax.set_axis_off()
        panel.axes.append(ax)
        return panel
    um = result.pixel_size_um
    scale, unit = (um, "µm") if um else (1.0, "px")
    rows = 2 if show_speed else 1
    grid = (gs.subgridspec(rows, 1, height_ratios=[3, 1.2][:rows], hspace=0.08) if gs is not None
            else fig.add_gridspec(rows, 1, height_ratios=[3, 1.2][:rows], hspace=0.08))
    kind = result.kinds[result.regions.index(region)] if region in result.regions else "other"
    # the whole field is no ROI: not in the colour of the 'other' ROIs
    colour = c["text"] if region == WHOLE_FIELD else ROI_COLOURS.get(kind, c["text"])
    disp = np.asarray(result.displacement[region], np.float64) * scale
    ax = fig.add_subplot(grid[0])
    style_axes(ax, c, fontsize)
    ax.plot(t, disp[sl], color=DISPLACEMENT, lw=1.0, label="displacement")
    panel.columns[f"{region}/displacement_{unit}"] = disp[sl]
    inside = [b for b in result.beat_params if b.roi == region and sl.start <= b.peak_time_s * result.fps < sl.stop]
    if inside:
        pk = np.array([b.peak_time_s for b in inside])
        ax.plot(pk, np.interp(pk, np.arange(result.n_frames) / result.fps, disp), "o", color=DISPLACEMENT, ms=4,
                label="peak")
        on = np.array([b.onset_s for b in inside])
        ax.plot(on, np.interp(on, np.arange(result.n_frames) / result.fps, disp), "v", color=ONSET, ms=4,
                label="onset")
    ax.set_ylabel(f"displacement ({unit})", fontsize=fontsize)
    ax.set_title(beat_summary(result, region), fontsize=fontsize, loc="left", color=colour)
    ax.legend(fontsize=fontsize - 1, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False,
              labelcolor=c["text"], borderaxespad=0.1)
    axes = [ax]
    if show_speed:
        sp = np.asarray(result.speed[region], np.float64) * scale
        ax2 = fig.add_subplot(grid[1], sharex=ax)
        style_axes(ax2, c, fontsize)
        ax2.plot(t, sp[sl], color=SPEED, lw=0.8)
        ax2.set_ylabel(f"speed ({unit}/s)", fontsize=fontsize)
        panel.columns[f"{region}/speed_{unit}_s"] = sp[sl]
        axes.append(ax2)
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)", fontsize=fontsize)
    if t.size:
        axes[-1].set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
    for a in axes:
        panel.markers.append(a.axvline(t[0] if t.size else 0, color=c["marker"], lw=0.8, ls=":"))
    panel.axes = axes
    return panel


#: the maps' colour for pixels with too little texture to measure (a mid grey: neither no motion nor much)
UNMEASURED_COLOUR = "#9a9a9a"


def direction_wheel(n_px: int = 64) -> np.ndarray:
    """The direction map's colour key ``(n, n, 4)`` RGBA: hue = direction as the map encodes it, brightness = length.

    It uses the map's angle (``atan2(-dy, dx)``, rows pointing down), so that a colour on the
    map is the colour of the wheel on the side the pixel moved to; outside the disc it is clear.
    """
    from matplotlib.colors import hsv_to_rgb

    r = np.arange(n_px) - (n_px - 1) / 2
    dy, dx = np.meshgrid(r, r, indexing="ij")
    radius = np.hypot(dy, dx) / (n_px / 2)
    hue = (np.degrees(np.arctan2(-dy, dx)) % 360) / 360
    rgb = hsv_to_rgb(np.stack([hue, np.ones_like(hue), np.clip(radius, 0, 1)], axis=-1))
    return np.concatenate([rgb, (radius <= 1)[..., None].astype(float)], axis=-1)


def _direction_key(ax: Any) -> None:
    """The colour wheel beside the direction map's lower-right corner (outside the data)."""
    key = ax.inset_axes([1.03, 0.0, 0.22, 0.22])
    key.imshow(direction_wheel())
    key.set_axis_off()
    key.set_title("direction\n(brighter:\nfarther)", fontsize=7, pad=2, loc="left")   # not over the map


def draw_motion_maps(fig: Any, result: Any, still: np.ndarray | None = None, masks: Any = None,
                     axes: Any = None) -> list[Any]:
    """Largest displacement per pixel and its direction (hue), with the ROIs outlined."""
    if result.displacement_max is None:
        return []
    if axes is None:
        axes = [fig.add_subplot(1, 2 + (still is not None), k + 1) for k in range(2 + (still is not None))]
    axes = list(axes)
    um = result.pixel_size_um
    k = 0
    if still is not None:
        lo, hi = np.percentile(still, [1, 99])
        axes[k].imshow(still, cmap="gray", vmin=lo, vmax=hi)
        axes[k].set_title(f"reference frame {result.reference_frame}", fontsize=8)
        scale_bar(axes[k], um, still.shape)
        k += 1
    import matplotlib
    from matplotlib.colors import hsv_to_rgb, to_rgb

    dmax = result.displacement_max * (um or 1.0)
    unmeasured = ~np.isfinite(dmax)          # too little texture to measure (the tool's texture limit)
    top = (float(np.percentile(dmax[~unmeasured], 99.5)) if (~unmeasured).any() else 0.0) or 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=UNMEASURED_COLOUR)
    im = axes[k].imshow(dmax, cmap=cmap, vmin=0, vmax=top)
    bar = fig.colorbar(im, ax=axes[k], fraction=0.046, pad=0.02)
    bar.set_label(f"largest displacement ({'µm' if um else 'px'})", fontsize=8)     # the page's text size
    bar.ax.tick_params(labelsize=7)
    share = float(unmeasured.mean())
    pct = f"{share:.0%}" if share >= 0.01 else f"{share:.1%}" if share >= 0.001 else "< 0.1%"
    grey = f" (grey: too little texture, {pct})" if share > 0 else ""
    axes[k].set_title(f"largest displacement{grey}", fontsize=8)
    # direction as hue, brightness as displacement
    hue = (np.nan_to_num(np.asarray(result.direction, np.float64)) % 360) / 360
    val = np.clip(np.nan_to_num(dmax) / top, 0, 1)
    rgb = hsv_to_rgb(np.stack([hue, np.ones_like(hue), val], axis=-1))
    rgb[unmeasured] = to_rgb(UNMEASURED_COLOUR)
    axes[k + 1].imshow(rgb)
    axes[k + 1].set_title("direction at the largest displacement (hue)", fontsize=8)
    _direction_key(axes[k + 1])
    if masks is not None:
        for i, name in enumerate(masks.names):
            for ax in axes[: k + 2]:
                outline(ax, masks.masks[i], ROI_COLOURS.get(masks.kinds[i], "#ffffff"), name if ax is axes[0] else None)
    for ax in axes[: k + 2]:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes[: k + 2]


def save_motion_report(result: Any, path: str | Path, still: np.ndarray | None = None, masks: Any = None,
                       dpi: int = 110) -> Path:
    """One page: maps on top, every region's contraction trace below."""
    fig = build_motion_report(result, still, masks)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def build_motion_report(result: Any, still: np.ndarray | None = None, masks: Any = None) -> Any:
    """The :class:`~matplotlib.figure.Figure` :func:`save_motion_report` writes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, len(result.regions))
    # the reader's warnings (a lossy video, repeated frames, a frame rate that differs from the file's) and the
    # tool's own, as its run record lists them: they travel with the page
    warned = warning_lines(readers_first(getattr(result, "source", None), getattr(result, "warnings", []) or []), 12)
    warn_in = warnings_height(warned)
    fig = Figure(figsize=(12, 3.4 + 1.9 * n + warn_in), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1 + n + bool(warned), 1, height_ratios=[3.4] + [1.9] * n + ([warn_in] if warned else []))
    if warned:
        draw_warnings(fig.add_subplot(gs[-1]), warned)
    top = gs[0].subgridspec(1, 2 + (still is not None))
    draw_motion_maps(fig, result, still, masks, axes=[fig.add_subplot(top[0, k]) for k in range(top.ncols)])
    panels = [draw_contraction_panel(fig, result, region, gs=gs[1 + i], fontsize=8, show_speed=False)
              for i, region in enumerate(result.regions)]
    # the regions' traces share one time axis, read once at the bottom
    traces = [p.axes[0] for p in panels if p.axes and p.axes[0].axison]
    for ax in traces[:-1]:
        ax.sharex(traces[-1])
        ax.tick_params(labelbottom=False)
        ax.set_xlabel("")
    # and one legend (the fullest: a region with beats) says what the line and marks are, not one per region
    keep = max(traces, key=lambda a: len(a.get_legend().get_texts()) if a.get_legend() else 0, default=None)
    for ax in traces:
        if ax is not keep and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.suptitle(f"napari-micromotion motion: {result.n_frames} frames at {result.fps:g} fps, "
                 f"reference frame {result.reference_frame}", fontsize=10)
    return fig
