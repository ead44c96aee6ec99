"""Figures in the spirit of the paper: score maps (Fig. 3), ROI traces (Fig. 4), 3D weights (Fig. 5).

All functions draw on a :class:`matplotlib.figure.Figure` they create or are
given; pyplot's global state is never touched, so they run in worker threads
and without a display.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .results import WHOLE_FIELD
from .rois import KIND_COLOURS

__all__ = ["draw_maps", "draw_traces", "draw_trace_key", "draw_weights", "save_report", "build_report", "excerpt", "ROI_COLOURS", "TRUTH_COLOUR",
           "method_colour", "draw_trace_panel", "scale_bar", "TracePanel", "format_p", "score_text", "style_axes",
           "surrogates_used", "warning_lines", "warnings_height", "draw_warnings"]

ROI_COLOURS = KIND_COLOURS          # the napari layers' colours
TRUTH_COLOUR = "#444444"
MOTION_BEAT = "#d62728"
CONTRACTION_BEAT = "#8c564b"
#: the contraction trace: the beats' brown, lighter, so that it reads on dark (napari) and white (report) backgrounds
CONTRACTION_LINE = "#c8875e"
#: a ROI's name over its column of traces wraps after this many characters (four columns share 12 inches)
ROI_HEADING_CHARS = 28
#: what a score map's colour means (scoring.py: the largest correlation over the allowed lags; Pearson's r at lag 0)
SCORE_UNIT = "score (r with calcium)"
#: the colour of the run's warnings at a page's foot (dark amber: reads on white, not an ROI kind's colour)
WARNING_TEXT = "#8a4b00"
#: a ROI's name on an image wraps after this many characters
ROI_LABEL_CHARS = 16
#: ROIs side by side in the report's traces; more continue below
TRACE_COLUMNS = 4


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


def outline(ax: Any, mask: np.ndarray, colour: str, label: str | None = None) -> None:
    """Outline *mask* on an image in *colour*, with *label* beside it.

    The label sits above the region (below it when the region touches the image's top or
    another region's name is there; inside it when neither side is free), flush with the
    region's side when it is near the image's left or right edge, wrapped
    after :data:`ROI_LABEL_CHARS` characters (two lines at most) and drawn with a white halo, so that it stays
    on the image (not over the panel's title) and reads on dark and bright pixels.
    """
    from matplotlib import patheffects

    ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
    if label:
        r, c = np.nonzero(mask)
        if r.size == 0:
            return
        ny, nx = mask.shape
        if c.mean() < nx / 4:
            x, ha = c.min(), "left"
        elif c.mean() > 3 * nx / 4:
            x, ha = c.max(), "right"
        else:
            x, ha = c.mean(), "center"
        above, below, inside = (r.min() - 1, "bottom"), (r.max() + 1, "top"), (r.mean(), "center")
        sides = ([above] if r.min() > 0.12 * ny else []) + ([below] if r.max() < 0.88 * ny else [])
        lines = textwrap.wrap(label, ROI_LABEL_CHARS) or [label]
        if len(lines) > 2:          # two lines at most: the full name heads the ROI's traces
            lines = [lines[0], lines[1][: ROI_LABEL_CHARS - 1] + "\u2026"]
        others = [t for t in ax.texts if t.get_text()]
        renderer = _renderer(ax)
        places = sides + [inside]   # inside the region when neither side is free and on the image
        for k, (y, va) in enumerate(places):
            text = ax.text(x, y, "\n".join(lines), color=colour, fontsize=7, ha=ha, va=va,
                           path_effects=[patheffects.withStroke(linewidth=2, foreground="white")])
            if k == len(places) - 1 or renderer is None:
                break
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(o.get_window_extent(renderer)) for o in others):
                break
            text.remove()           # on another ROI's name: try the next place


def scale_bar(ax: Any, pixel_size_um: float | None, shape: tuple[int, int]) -> None:
    """A white bar of a round length in µm (about a fifth of the image) in the lower right of an image of *shape*.

    Nothing is drawn when the pixel size is unknown.
    """
    from matplotlib import patheffects

    if not pixel_size_um or not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
        return
    ny, nx = shape
    target_um = nx * pixel_size_um / 5
    step = 10 ** np.floor(np.log10(target_um))
    length_um = max(m * step for m in (1, 2, 5) if m * step <= target_um)
    length_px = length_um / pixel_size_um
    x1, y = nx - 1 - 0.05 * nx, ny - 1 - 0.06 * ny
    halo = [patheffects.withStroke(linewidth=4, foreground="black")]
    ax.plot([x1 - length_px, x1], [y, y], color="white", lw=2.5, solid_capstyle="butt", path_effects=halo)
    ax.text(x1 - length_px / 2, y - 0.02 * ny, f"{length_um:g} \u00b5m", color="white", fontsize=7, ha="center",
            va="bottom", path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])


def _renderer(ax: Any) -> Any:
    """The renderer of *ax*'s canvas, or None when it has none (then labels are not checked for collisions)."""
    try:
        return ax.figure.canvas.get_renderer()
    except AttributeError:
        return None


def draw_maps(fig: Any, results: Any, axes: Sequence[Any] | None = None) -> list[Any]:
    """Fig. 3: still frame with ROIs, fluorescence activity, and one score map per method."""
    panels: list[tuple[str, np.ndarray, str]] = [("still frame + ROIs" if results.roi_names else "still frame", results.still, "gray")]
    if results.activity_map is not None:
        panels.append(("fluorescence activity", results.activity_map, "magma"))
    maps = [(f"score: {_label(m)}", results.score_maps[m], "magma") for m in results.methods
            if m in results.score_maps]
    if not maps:
        maps = [("band-pass RMS dI/I", results.energy_map, "magma")]
    panels += maps
    units = {"score": SCORE_UNIT, "fluorescence activity": SCORE_UNIT,
             "band-pass RMS dI/I": "band-pass RMS (dI/I)"}
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
                    outline(ax, mask, ROI_COLOURS.get(kind, "w"), name)
            scale_bar(ax, results.pixel_size_um, img.shape)
        else:
            im = ax.imshow(img, cmap=cmap, vmin=0, vmax=vmax if "score" in title or "activity" in title else None)
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            bar.set_label(units.get(title.split(":")[0], ""), fontsize=8)
            bar.ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


def _z(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()


def draw_traces(fig: Any, results: Any, rois: Sequence[str] | None = None, length_s: float = 20.0,
                gs: Any = None, current_frame: int | None = None, per_row: int = TRACE_COLUMNS) -> list[Any]:
    """Fig. 4: per ROI (columns) each method's prediction (rows) over the fluorescence, z-normalised.

    At most *per_row* ROIs stand side by side; more continue in further rows of columns
    below, so that many ROIs keep the page's width and their traces a readable size.
    """
    rois = list(rois if rois is not None else results.roi_names)
    methods = [m for m in results.traced_methods() if any((r, m) in results.roi_traces for r in rois)]
    if not rois or not methods:
        ax = fig.add_subplot(gs) if gs is not None else fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no ROI traces", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return [ax]
    sl = excerpt(results, length_s)
    t = results.time_s()[sl]
    n_cols = max(1, min(len(rois), int(per_row)))
    n_rows = len(methods) * -(-len(rois) // n_cols)
    sub = gs.subgridspec(n_rows, n_cols, hspace=0.15, wspace=0.12) if gs is not None else \
        fig.add_gridspec(n_rows, n_cols, hspace=0.15, wspace=0.12)
    axes = []
    for k, roi in enumerate(rois):
        j, top_row = k % n_cols, len(methods) * (k // n_cols)
        ref = results.roi_truth.get(roi, results.truth) if results.params.roi_truth else results.truth
        for i, m in enumerate(methods):
            ax = fig.add_subplot(sub[top_row + i, j])
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
                    # above the plot (not over its peaks), with p at its floor read as such
                    ax.set_title(score_text(row, surrogates_used(results)), fontsize=7, loc="right", pad=2)
            if current_frame is not None and sl.start <= current_frame < sl.stop:
                ax.axvline(current_frame / results.fps, color="k", lw=0.8, ls="--")
            if i == 0:
                kind = results.roi_kinds[results.roi_names.index(roi)] if roi in results.roi_names else ""
                # the column's heading, a line above the score (a title would share its line), wrapped to the column
                ax.annotate(textwrap.fill(f"{roi} ({kind})", ROI_HEADING_CHARS), xy=(0.5, 1.0),
                            xycoords="axes fraction", xytext=(0, 4 + 1.4 * 7 if ax.get_title(loc="right") else 4),
                            textcoords="offset points", ha="center", va="bottom", fontsize=9,
                            color=ROI_COLOURS.get(kind, "k"))
            if j == 0:
                ax.set_ylabel(_label(m), fontsize=8)
            ax.set_yticks([])
            if i < len(methods) - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel("time (s)", fontsize=8)
            ax.tick_params(labelsize=7)
    return axes


def draw_trace_key(ax: Any, results: Any, length_s: float = 20.0) -> None:
    """What :func:`draw_traces` draws, on *ax* (turned off): the calcium's and each method's line, and how they are scaled."""
    from matplotlib.lines import Line2D

    methods = results.traced_methods()
    handles = ([Line2D([], [], color=TRUTH_COLOUR, lw=0.8, label="calcium")] if results.has_fluorescence else []) + \
        [Line2D([], [], color=method_colour(m), lw=0.9, label=_label(m)) for m in methods]
    sl = excerpt(results, length_s)
    how = (f"r: score against the calcium, p: from {surrogates_used(results)} time-shifted surrogates"
           if results.has_fluorescence else "not scored (no fluorescence)")
    ax.set_axis_off()
    ax.legend(handles=handles, loc="center left", ncol=len(handles), frameon=False, fontsize=8,
              title=f"ROI traces, each z-scored, over {(sl.stop - sl.start) / results.fps:.3g} s of the "
                    f"{'scored' if results.has_fluorescence else 'validation'} frames; {how}",
              title_fontsize=8, alignment="left")


def format_p(p: float, n_surrogates: int) -> str:
    """A p-value as a person should read it: at the floor of its surrogate test, ``p <= 1/(n+1)``."""
    if not np.isfinite(p):
        return "p = n/a"
    floor = 1.0 / (int(n_surrogates) + 1)
    if p <= floor * (1 + 1e-6):
        return f"p \u2264 {floor:.2g}"
    return f"p = {p:.2g}"


def surrogates_used(results: Any) -> int:
    """How many distinct time shifts the ROI p-values of *results* came from (fewer than asked on short recordings)."""
    from .scoring import surrogates_of

    try:
        n = surrogates_of(results)
    except (AttributeError, TypeError, ValueError):
        n = None
    return int(n) if n else int(results.params.n_surrogates)


def score_text(row: Any, n_surrogates: int) -> str:
    """``r = 0.71, p <= 0.001`` for a score row."""
    if row is None or not np.isfinite(row.score):
        return "no score"
    return f"r = {row.score:.2f}, {format_p(row.p_value, n_surrogates)}"


LIGHT = {"background": "#ffffff", "foreground": "#333333", "text": "#111111", "truth": "#222222",
         "truth_field": "#888888", "marker": "#444444", "grid": "#dddddd"}


def style_axes(ax: Any, colours: dict[str, str], fontsize: float) -> None:
    """Background, spines, ticks and axis labels of *ax* in *colours* (``background``, ``foreground``, ``text``)."""
    ax.set_facecolor(colours["background"])
    for side in ax.spines.values():
        side.set_color(colours["foreground"])
    ax.tick_params(colors=colours["text"], labelsize=fontsize - 1)
    ax.yaxis.label.set_color(colours["text"])
    ax.xaxis.label.set_color(colours["text"])


@dataclass
class TracePanel:
    """What :func:`draw_trace_panel` drew: its axes, the lines that follow the current frame, the plotted data."""

    axes: list[Any] = field(default_factory=list)
    markers: list[Any] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def draw_trace_panel(fig: Any, results: Any, region: str, methods: Sequence[str] | None = None,
                     window: slice | None = None, colours: dict[str, str] | None = None, fontsize: float = 8,
                     gs: Any = None) -> TracePanel:
    """One region's traces over the whole recording (or *window*), with units, legend, scores and beats.

    Top (with fluorescence): the calcium of the region ("calcium, <roi>"), the whole
    field's when that is what the scores use ("calcium, whole field", dashed), and each
    method's prediction, all z-scored; the title gives ``r`` and ``p`` per method.  Bottom:
    the motion energy (band-pass RMS of the region) with the beats found in it, in the
    region's displacement (contraction beats: when the cells contract, or as ``beats_from`` says; the
    contraction trace then drawn on a second axis, in px) and in the calcium.  Without fluorescence only the motion row is drawn.
    """
    c = {**LIGHT, **(colours or {})}
    sl = window if window is not None else slice(0, results.n_frames)
    frames = np.arange(results.n_frames)[sl]
    t = frames / results.fps
    panel = TracePanel(frames=frames)
    panel.columns["time_s"] = t
    methods = [m for m in (methods if methods is not None else results.traced_methods())
               if (region, m) in results.roi_traces]
    own = results.roi_truth.get(region)
    field_truth = results.truth
    uses_field = not results.params.roi_truth or own is None
    top = own is not None or field_truth is not None
    motion = results.motion_traces.get(region)
    rows = int(top) + int(motion is not None)
    if rows == 0:
        ax = fig.add_subplot(gs) if gs is not None else fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, f"no traces for {region}", ha="center", va="center", transform=ax.transAxes, color=c["text"])
        ax.set_axis_off()
        panel.axes.append(ax)
        return panel
    ratios = ([3] if top else []) + ([1.3 if top else 3] if motion is not None else [])
    grid = (gs.subgridspec(rows, 1, height_ratios=ratios, hspace=0.08) if gs is not None
            else fig.add_gridspec(rows, 1, height_ratios=ratios, hspace=0.08))
    kind = results.roi_kinds[results.roi_names.index(region)] if region in results.roi_names else ""
    # the whole field is no ROI: not in the colour of the 'other' ROIs
    colour = ROI_COLOURS.get(kind, c["text"])
    what = f"{region} ({kind or 'whole field'})"
    beats = [b for b in results.beats if b.roi == region]

    axes = []
    if top:
        ax = fig.add_subplot(grid[0])
        style_axes(ax, c, fontsize)
        axes.append(ax)
        if own is not None:
            ax.plot(t, _z(own[sl]), color=c["truth"], lw=1.0, label=f"calcium, {region}")
            panel.columns[f"{region}/calcium (z)"] = _z(own[sl])
        if field_truth is not None and (uses_field or own is None):
            ax.plot(t, _z(field_truth[sl]), color=c["truth_field"], lw=0.8, ls="--", label="calcium, whole field")
            panel.columns["whole field/calcium (z)"] = _z(field_truth[sl])
        texts = []
        for m in methods:
            tr = np.asarray(results.roi_traces[(region, m)], np.float64)[sl]
            z = _z(tr)
            ax.plot(t, z, color=method_colour(m), lw=0.9, label=_label(m) + (" (squared)" if _squared(m) else ""))
            panel.columns[f"{region}/{m} (z)"] = z
            sd = results.roi_sd.get((region, m))
            if sd is not None:
                scale = tr.std() or 1.0
                band = np.asarray(sd, np.float64)[sl] / scale
                ax.fill_between(t, z - band, z + band, color=method_colour(m), alpha=0.25, lw=0,
                                label=f"{_label(m)}: Monte-Carlo SD")
            row = results.score_of(region, m)
            if row is not None and np.isfinite(row.score):
                texts.append(f"{_label(m)}: {score_text(row, surrogates_used(results))}")
        for b in beats:
            if b.source == "fluorescence" and sl.start <= b.time_s * results.fps < sl.stop:
                ax.axvline(b.time_s, color=c["truth"], lw=0.5, alpha=0.25)
        ax.set_ylabel("z-score", fontsize=fontsize)
        ref = "scored against the whole field's calcium" if uses_field else "scored against its own calcium"
        title = (f"{what}; {ref}" if methods else f"{what}: calcium") + (f"\n{'   '.join(texts)}" if texts else "")
        ax.set_title(title, fontsize=fontsize, color=colour, loc="left")
        # beside the plot, not over the traces it names
        ax.legend(fontsize=fontsize - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  labelcolor=c["text"], borderaxespad=0.0)
    if motion is not None:
        ax = fig.add_subplot(grid[rows - 1], sharex=axes[0] if axes else None)
        style_axes(ax, c, fontsize)
        axes.append(ax)
        if region in results.roi_names and results.roi_masks is not None:
            n_px = max(int(results.roi_masks[results.roi_names.index(region)].sum()), 1)
        else:
            n_px = int(np.prod(results.frame_shape))
        m_tr = np.sqrt(np.maximum(np.asarray(motion, np.float64)[sl], 0) / n_px)
        disp = results.contraction_traces.get(region)
        # under a contraction trace the energy steps back
        ax.plot(t, m_tr, color=c["text"], lw=0.8, alpha=0.55 if disp is not None else 1.0)
        panel.columns[f"{region}/motion (band-pass RMS in grey levels)"] = m_tr
        if disp is not None:            # the trace the contraction beats were found in, on its own scale
            d = np.asarray(disp, np.float64)[sl]
            twin = ax.twinx()
            style_axes(twin, c, fontsize)
            twin.patch.set_visible(False)
            twin.plot(t, d, color=CONTRACTION_LINE, lw=1.4)
            twin.set_ylabel("contraction (px)", fontsize=fontsize, color=CONTRACTION_LINE)
            panel.columns[f"{region}/contraction (mean displacement in px)"] = d
        marks = {"transmission": ("v", MOTION_BEAT), "motion": ("v", CONTRACTION_BEAT),
                 "fluorescence": ("^", c["truth_field"])}
        for b in beats:
            if sl.start <= b.time_s * results.fps < sl.stop:
                shape, colour = marks.get(b.source, ("v", c["text"]))
                ax.plot([b.time_s], [0.96 if shape == "v" else 0.04], marker=shape, color=colour, ms=5,
                        transform=ax.get_xaxis_transform(), ls="none")
        rates = {r.source: r for r in results.beat_rates if r.roi == region}
        bits = []
        for src, label in (("transmission", "\u25bc motion-energy beats"), ("motion", "\u25bc contraction beats"),
                           ("fluorescence", "\u25b2 calcium beats")):
            r = rates.get(src)
            if r is not None:
                rate = f", {r.rate_bpm:.1f} bpm" if np.isfinite(r.rate_bpm) else ""
                rate += f", RR SD {1000 * r.rr_sd_s:.0f} ms" if np.isfinite(r.rr_sd_s) else ""   # as the motion page
                bits.append(f"{label}: {r.n_beats}{rate}")
        ax.set_title("    ".join(bits), fontsize=fontsize - 1, color=c["text"], loc="left", pad=2)
        ax.set_ylabel("motion (RMS, grey levels)", fontsize=fontsize)
        if not top:
            ax.set_title(f"{what}: motion, no fluorescence", fontsize=fontsize, color=colour, loc="right", pad=2)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (s)", fontsize=fontsize)
    if t.size:
        axes[-1].set_xlim(t[0], t[-1] if t[-1] > t[0] else t[0] + 1)
    for ax in axes:
        panel.markers.append(ax.axvline(t[0] if t.size else 0, color=c["marker"], lw=0.8, ls=":"))
    panel.axes = axes
    return panel


def _squared(m: str) -> bool:
    from .methods import METHODS

    method = METHODS.get(m)
    return bool(method is not None and method.squared)


def weights_per_row(n_regions: int, n_features: int) -> int:
    """How many regions' weight maps share a row of the report: about six maps across the page."""
    return max(1, min(n_regions, 6 // max(1, n_features)))


def draw_weights(fig: Any, results: Any, gs: Any = None, per_row: int | None = None) -> list[Any]:
    """Fig. 5: region maps (the 3D network's dense weights) per ROI over the still frame, one colour scale per ROI.

    The regions are laid out side by side, *per_row* of them in a row (default:
    :func:`weights_per_row`), each with its features in a row and its own colour bar, so that
    the maps fill the page's width.
    """
    order = {name: k for k, name in enumerate(getattr(results, "roi_names", []) or [])}
    keys = sorted(results.region_maps, key=lambda k: (order.get(k[1], len(order)), k[1], k[0]))  # the traces' order
    if not keys:
        return []
    n_feat = max(rm.data.shape[0] for rm in results.region_maps.values())
    per_row = max(1, min(len(keys), int(per_row))) if per_row else weights_per_row(len(keys), n_feat)
    n_rows = -(-len(keys) // per_row)
    outer = gs.subgridspec(n_rows, per_row, hspace=0.15, wspace=0.12) if gs is not None else \
        fig.add_gridspec(n_rows, per_row, hspace=0.15, wspace=0.12)
    several_methods = len({k[0] for k in keys}) > 1
    axes = []
    for i, (method, name) in enumerate(keys):
        rm = results.region_maps[(method, name)]
        (r0, r1, c0, c1), w = rm.box, rm.data
        still = results.still[r0:r1, c0:c1]
        vmax = float(np.abs(w).max()) or 1.0
        lo, hi = np.percentile(still, [1, 99])
        block = outer[i // per_row, i % per_row].subgridspec(1, n_feat, wspace=0.05)
        for f in range(w.shape[0]):
            ax = fig.add_subplot(block[0, f])
            ax.imshow(still, cmap="gray", vmin=lo, vmax=hi)
            im = ax.imshow(w[f], cmap="RdBu_r", vmin=-vmax, vmax=vmax, alpha=0.75)
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:   # the region's name in its colour, as over its traces
                what = _label(method) if several_methods else "3D network"
                ax.set_title(f"{name}: {what} weights, feature 1", fontsize=8, loc="left",
                             color=ROI_COLOURS.get(_kind_of(results, name), "black"))
            else:
                ax.set_title(f"feature {f + 1}", fontsize=8)
            axes.append(ax)
        bar = fig.colorbar(im, ax=axes[-w.shape[0]:], fraction=0.05, pad=0.02)
        bar.set_label("dense-layer weight", fontsize=8)      # its range is the bar's ticks
        bar.ax.tick_params(labelsize=7)
    return axes


def _kind_of(results: Any, name: str) -> str:
    """The ROI's kind (strong, weak, ...) for its colour, or ``""``."""
    names = list(getattr(results, "roi_names", []) or [])
    kinds = list(getattr(results, "roi_kinds", []) or [])
    return kinds[names.index(name)] if name in names and names.index(name) < len(kinds) else ""


def warning_lines(warnings: Sequence[str], width_in: float) -> list[str]:
    """*warnings*, each marked with a warning sign and wrapped to a page *width_in* inches wide (8-point text)."""
    return [line for w in warnings for line in textwrap.wrap(f"\u26a0 {w}", int(width_in * 14), subsequent_indent="   ")]


def warnings_height(lines: Sequence[str]) -> float:
    """Inches of page the :func:`warning_lines` *lines* need (0 for none)."""
    return 0.17 * len(lines) + 0.1 if lines else 0.0


def draw_warnings(ax: Any, lines: Sequence[str]) -> None:
    """The :func:`warning_lines` *lines* on *ax* (turned off), from its top left."""
    ax.set_axis_off()
    ax.text(0.0, 1.0, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=8, color=WARNING_TEXT)


def save_report(results: Any, path: str | Path, dpi: int = 110, warnings: Sequence[str] | None = None) -> Path:
    """The one-page report: maps on top, ROI traces below (and 3D weights when present).

    *warnings* are listed at the page's foot (default: the analysis' own, ``results.warnings``; a run's folder
    passes its run record's, which put the reader's first).
    """
    fig = build_report(results, warnings)
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def build_report(results: Any, warnings: Sequence[str] | None = None) -> Any:
    """The :class:`~matplotlib.figure.Figure` :func:`save_report` writes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rois = max(1, len(results.roi_names))
    n_cols = min(n_rois, TRACE_COLUMNS)
    trace_blocks = -(-n_rois // n_cols)
    has_w = bool(results.region_maps)
    n_methods = max(1, len({m for (_, m) in results.roi_traces}))
    # without ROIs the whole field's traces (motion, contraction, calcium) and beats stand in for the ROI traces
    whole = not results.roi_traces and (WHOLE_FIELD in results.motion_traces or results.truth is not None)
    if has_w:
        n_feat = max(rm.data.shape[0] for rm in results.region_maps.values())
        w_rows = -(-len(results.region_maps) // weights_per_row(len(results.region_maps), n_feat))
    traces_in = (1.1 * n_methods + 0.9) * trace_blocks         # and per block of ROIs its headings and time axis
    if whole:                                                   # the calcium's row and the motion's, 1.4 in each
        traces_in = 1.4 * ((results.truth is not None) + (WHOLE_FIELD in results.motion_traces)) + 0.9
    width = max(12, 3.2 * n_cols)
    n_maps = 1 + (results.activity_map is not None) + max(1, len(results.score_maps))
    maps_in = min(3.2, 0.8 * width / n_maps + 0.5)     # square maps side by side, their titles: no white band
    # the run's warnings travel with the page (a figure is often passed on without its run.json)
    warned = warning_lines(list(warnings) if warnings is not None else getattr(results, "warnings", []) or [], width)
    warn_in = warnings_height(warned)
    height = maps_in + 0.3 + traces_in + (2.0 * w_rows if has_w else 0) + warn_in
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    ratios = [maps_in, 0.3, traces_in] + ([2.0 * w_rows] if has_w else []) + ([warn_in] if warned else [])
    gs = fig.add_gridspec(len(ratios), 1, height_ratios=ratios)
    if warned:
        draw_warnings(fig.add_subplot(gs[-1]), warned)
    top = gs[0].subgridspec(1, max(n_maps, 3))       # two maps keep to the left, not a page's width apart
    draw_maps(fig, results, axes=[fig.add_subplot(top[0, k]) for k in range(n_maps)])
    if whole:
        draw_trace_panel(fig, results, WHOLE_FIELD, gs=gs[2])
    else:
        traces = draw_traces(fig, results, gs=gs[2])
        if any(ax.lines for ax in traces):
            draw_trace_key(fig.add_subplot(gs[1]), results)
    if has_w:
        draw_weights(fig, results, gs=gs[3])
    v0, v1 = results.validation
    scored = f"scored on frames {v0}:{v1}" if results.has_fluorescence else \
        "not scored (no fluorescence)"
    fig.suptitle(f"napari-micromotion: {results.n_frames} frames at {results.fps:g} fps, {scored}", fontsize=10)
    return fig
