"""Figures in the spirit of the paper: score maps (Fig. 3), ROI traces (Fig. 4), 3D weights (Fig. 5).

All functions draw on a :class:`matplotlib.figure.Figure` they create or are
given; pyplot's global state is never touched, so they run in worker threads
and without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["draw_maps", "draw_traces", "draw_weights", "save_report", "excerpt", "ROI_COLOURS", "TRUTH_COLOUR",
           "method_colour"]

ROI_COLOURS = {"strong": "#e6550d", "weak": "#3182bd", "silent": "#31a354", "other": "#9e9ac8"}
TRUTH_COLOUR = "#444444"


def method_colour(m: str) -> str:
    """The colour of method *m*'s traces (its ``colour``; grey when it is not installed)."""
    from .methods import METHODS

    method = METHODS.get(m)
    return method.colour if method is not None else "#7f7f7f"


def _label(m: str) -> str:
    from .methods import label_of

    return label_of(m)


def excerpt(results: Any, length_s: float = 20.0) -> slice:
    """A window of *length_s* seconds inside the validation frames (the paper shows 20 s)."""
    v0, v1 = results.validation
    n = int(round(length_s * results.fps))
    if v1 - v0 <= n:
        return slice(v0, v1)
    return slice(v0, v0 + n)


def _outline(ax: Any, mask: np.ndarray, colour: str, label: str | None = None) -> None:
    ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
    if label:
        r, c = np.nonzero(mask)
        ax.text(c.mean(), r.min() - 1, label, color=colour, fontsize=7, ha="center", va="bottom")


def draw_maps(fig: Any, results: Any, axes: Sequence[Any] | None = None) -> list[Any]:
    """Fig. 3: still frame with ROIs, fluorescence activity, and one score map per method."""
    panels: list[tuple[str, np.ndarray, str]] = [("still frame + ROIs", results.still, "gray")]
    if results.activity_map is not None:
        panels.append(("fluorescence activity", results.activity_map, "magma"))
    maps = [(f"score: {_label(m)}", results.score_maps[m], "magma") for m in results.methods
            if m in results.score_maps]
    if not maps:
        maps = [("band-pass RMS dI/I", results.energy_map, "magma")]
    panels += maps
    if axes is None:
        axes = fig.subplots(1, len(panels))
    axes = list(np.atleast_1d(axes))
    vmax = max([float(np.nanmax(p[1])) for p in panels[1:]] + [1e-6]) if len(panels) > 1 else 1.0
    for ax, (title, img, cmap) in zip(axes, panels):
        if cmap == "gray":
            lo, hi = np.percentile(img, [1, 99])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            if results.roi_masks is not None:
                for mask, name, kind in zip(results.roi_masks, results.roi_names, results.roi_kinds):
                    _outline(ax, mask, ROI_COLOURS.get(kind, "w"), name)
        else:
            im = ax.imshow(img, cmap=cmap, vmin=0, vmax=vmax if "score" in title or "activity" in title else None)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()


def draw_traces(fig: Any, results: Any, rois: Sequence[str] | None = None, length_s: float = 20.0,
                gs: Any = None, current_frame: int | None = None) -> list[Any]:
    """Fig. 4: per ROI (columns) each method's prediction (rows) over the fluorescence, z-normalised."""
    rois = list(rois if rois is not None else results.roi_names)
    methods = [m for m in results.traced_methods() if any((r, m) in results.roi_traces for r in rois)]
    if not rois or not methods:
        ax = fig.add_subplot(gs) if gs is not None else fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no ROI traces", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return [ax]
    sl = excerpt(results, length_s)
    t = results.time_s()[sl]
    sub = gs.subgridspec(len(methods), len(rois), hspace=0.15, wspace=0.12) if gs is not None else \
        fig.add_gridspec(len(methods), len(rois), hspace=0.15, wspace=0.12)
    axes = []
    for j, roi in enumerate(rois):
        ref = results.roi_truth.get(roi, results.truth) if results.params.roi_truth else results.truth
        for i, m in enumerate(methods):
            ax = fig.add_subplot(sub[i, j])
            axes.append(ax)
            tr = results.roi_traces.get((roi, m))
            if ref is not None:
                ax.plot(t, _z(ref[sl]), color=TRUTH_COLOUR, lw=0.8, label="fluorescence")
            if tr is not None:
                z = _z(tr[sl])
                ax.plot(t, z, color=method_colour(m), lw=0.9, label=_label(m))
                sd = results.roi_sd.get((roi, m))
                if sd is not None:
                    scale = np.asarray(tr[sl], dtype=np.float64).std() or 1.0
                    ax.fill_between(t, z - sd[sl] / scale, z + sd[sl] / scale, color=method_colour(m), alpha=0.25, lw=0)
                row = results.score_of(roi, m)
                if row is not None and np.isfinite(row.get("score", np.nan)):
                    ax.text(0.99, 0.95, f"{row['score']:.2f} (p={row['p_value']:.3g})", transform=ax.transAxes,
                            ha="right", va="top", fontsize=7)
            if current_frame is not None and sl.start <= current_frame < sl.stop:
                ax.axvline(current_frame / results.fps, color="k", lw=0.8, ls="--")
            if i == 0:
                kind = results.roi_kinds[results.roi_names.index(roi)] if roi in results.roi_names else ""
                ax.set_title(f"{roi} ({kind})", fontsize=9, color=ROI_COLOURS.get(kind, "k"))
            if j == 0:
                ax.set_ylabel(_label(m), fontsize=8)
            ax.set_yticks([])
            if i < len(methods) - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel("time (s)", fontsize=8)
            ax.tick_params(labelsize=7)
    return axes


def draw_weights(fig: Any, results: Any, gs: Any = None) -> list[Any]:
    """Fig. 5: region maps (the 3D network's dense weights) per ROI over the still frame, one colour scale per ROI."""
    keys = list(results.region_maps)
    if not keys:
        return []
    n_feat = max(rm.data.shape[0] for rm in results.region_maps.values())
    sub = gs.subgridspec(len(keys), n_feat, hspace=0.25, wspace=0.05) if gs is not None else \
        fig.add_gridspec(len(keys), n_feat, hspace=0.25, wspace=0.05)
    axes = []
    for i, (method, name) in enumerate(keys):
        rm = results.region_maps[(method, name)]
        (r0, r1, c0, c1), w = rm.box, rm.data
        still = results.still[r0:r1, c0:c1]
        vmax = float(np.abs(w).max()) or 1.0
        lo, hi = np.percentile(still, [1, 99])
        for f in range(w.shape[0]):
            ax = fig.add_subplot(sub[i, f])
            ax.imshow(still, cmap="gray", vmin=lo, vmax=hi)
            im = ax.imshow(w[f], cmap="RdBu_r", vmin=-vmax, vmax=vmax, alpha=0.75)
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:
                ax.set_ylabel(f"{name}\n{_label(method)}" if len({k[0] for k in keys}) > 1 else name, fontsize=8)
            if i == 0:
                ax.set_title(f"feature {f + 1}", fontsize=8)
            axes.append(ax)
        fig.colorbar(im, ax=axes[-w.shape[0]:], fraction=0.03, pad=0.01, label=f"max {vmax:.2g}")
    return axes


def save_report(results: Any, path: str | Path, dpi: int = 110) -> Path:
    """The one-page report: maps on top, ROI traces below (and 3D weights when present)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rois = max(1, len(results.roi_names))
    has_w = bool(results.region_maps)
    n_methods = max(1, len({m for (_, m) in results.roi_traces}))
    height = 3.2 + 1.1 * n_methods + (1.6 * len(results.region_maps) if has_w else 0)
    fig = Figure(figsize=(max(12, 3.2 * n_rois), height), layout="constrained")
    FigureCanvasAgg(fig)
    ratios = [3.2, 1.1 * n_methods] + ([1.6 * len(results.region_maps)] if has_w else [])
    gs = fig.add_gridspec(len(ratios), 1, height_ratios=ratios)
    top = gs[0].subgridspec(1, 1 + (results.activity_map is not None) + max(1, len(results.score_maps)))
    draw_maps(fig, results, axes=[fig.add_subplot(top[0, k]) for k in range(top.ncols)])
    draw_traces(fig, results, gs=gs[1])
    if has_w:
        draw_weights(fig, results, gs=gs[2])
    v0, v1 = results.validation
    fig.suptitle(f"napari-micromotion: {results.n_frames} frames at {results.fps:g} fps, scored on frames {v0}:{v1}",
                 fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path
