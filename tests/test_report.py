"""The one-page report's layout: what a reader sees on the page."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from napari_micromotion.report import draw_weights, weights_per_row


def _results(names, n_feat=3):
    rng = np.random.default_rng(0)
    maps = {("cnn3d", n): SimpleNamespace(box=(4 * k, 4 * k + 30, 10, 40), data=rng.normal(size=(n_feat, 30, 30)))
            for k, n in enumerate(sorted(names))}          # stored in another order than the ROIs'
    return SimpleNamespace(region_maps=maps, still=rng.random((64, 64)), roi_names=list(names),
                           roi_kinds=list(names))


def test_weight_maps_fill_the_page_width_in_the_rois_order():
    names = ["strong", "weak", "silent", "other"]
    assert weights_per_row(4, 3) == 2 and weights_per_row(4, 1) == 4 and weights_per_row(1, 3) == 1
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = draw_weights(fig, _results(names))
    fig.canvas.draw()
    assert len(axes) == 12
    boxes = [ax.get_position() for ax in axes]
    # two regions side by side: the maps span most of the width, in two rows, not four
    assert min(b.x0 for b in boxes) < 0.1 and max(b.x1 for b in boxes) > 0.8
    assert len({round(b.y0, 2) for b in boxes}) == 2
    # each region's first map is titled with its name, in the order of the ROIs (the traces' order)
    firsts = [ax.get_title(loc="left").split(":")[0] for ax in axes[::3]]
    assert firsts == names
    one = Figure(figsize=(9, 8), layout="constrained")
    FigureCanvasAgg(one)
    axes = draw_weights(one, _results(names[:3]), per_row=1)
    one.canvas.draw()
    assert len({round(ax.get_position().y0, 2) for ax in axes}) == 3     # one region per row when asked


def test_weight_colour_bars_say_what_they_measure():
    """Each region's colour bar was labelled 'max 0.27' (the range its ticks show), not what the colours are."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = draw_weights(fig, _results(["strong", "weak"]))
    bars = [ax for ax in fig.axes if ax not in axes]
    assert len(bars) == 2
    for bar in bars:
        assert "weight" in bar.get_ylabel() and not bar.get_ylabel().startswith("max")
        assert bar.yaxis.label.get_fontsize() <= 8 and all(t.get_fontsize() <= 8 for t in bar.get_yticklabels())


def test_direction_key_reads_as_the_motion_maps_angle():
    """The wheel's colour on each side is the hue the direction map gives a pixel moving that way."""
    from matplotlib.colors import rgb_to_hsv

    from napari_micromotion.report_motion import direction_wheel

    w = direction_wheel(65)
    hue = rgb_to_hsv(w[..., :3])[..., 0]
    mid = 32
    # angle = atan2(-dy, dx) with rows pointing down: right 0, up 90, left 180, down 270 degrees
    for (r, c), deg in {(mid, 62): 0, (2, mid): 90, (mid, 2): 180, (62, mid): 270}.items():
        assert min(abs(hue[r, c] * 360 - deg), 360 - abs(hue[r, c] * 360 - deg)) < 3, (r, c)
    assert w[0, 0, 3] == 0 and w[mid, mid, 3] == 1          # clear outside the disc
    assert w[mid, mid, :3].max() < 0.1 < w[mid, 62, :3].max()   # dark at the centre: no displacement
