"""What a reader sees in the motion tool's report.png and contraction panels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from napari_micromotion.report import LIGHT
from napari_micromotion.report_motion import build_motion_report, draw_contraction_panel
from napari_micromotion.results import WHOLE_FIELD
from napari_micromotion.rois import KIND_COLOURS

from .conftest import page_note


def _beat(roi, k, period_s=1.0):
    onset = 0.2 + k * period_s
    return SimpleNamespace(roi=roi, onset_s=onset, peak_time_s=onset + 0.1, peak_displacement_px=1.0,
                           peak_displacement_um=float("nan"), time_to_peak_s=0.1, relaxation_50_s=0.1,
                           relaxation_90_s=0.2)


def _motion(regions, kinds, n_beats, n_frames=300, fps=30.0):
    t = np.arange(n_frames) / fps
    disp = {r: np.exp(-((t - 0.3) % 1.0) / 0.1) for r in regions}
    return SimpleNamespace(
        n_frames=n_frames, fps=fps, pixel_size_um=None, regions=list(regions), kinds=list(kinds), reference_frame=0,
        displacement_max=np.random.default_rng(0).random((32, 32)), direction=np.zeros((32, 32)),
        displacement=disp, speed={r: np.abs(np.gradient(d)) * fps for r, d in disp.items()},
        beat_params=[_beat(r, k) for r in regions for k in range(n_beats)],
        beat_rates=[SimpleNamespace(roi=r, n_beats=n_beats, rate_bpm=60.0 if n_beats > 1 else float("nan"),
                                    rr_sd_s=float("nan")) for r in regions])


def _figure(w=10, h=4):
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def test_the_whole_field_is_not_coloured_as_an_other_roi_and_one_beat_is_one_beat():
    """Without ROIs the whole field's title was purple, the colour of ROIs of kind 'other', and read '1 beats'."""
    res = _motion([WHOLE_FIELD], ["other"], n_beats=1)
    panel = draw_contraction_panel(_figure(), res, WHOLE_FIELD)
    title = panel.axes[0].title if panel.axes[0].get_title() else panel.axes[0]._left_title
    assert to_hex(title.get_color()) != KIND_COLOURS["other"]
    assert to_hex(title.get_color()) == LIGHT["text"]
    assert ": 1 beat," in title.get_text(), title.get_text()
    res = _motion(["cell"], ["other"], n_beats=3)                 # a ROI of kind 'other' keeps its colour
    panel = draw_contraction_panel(_figure(), res, "cell")
    assert to_hex(panel.axes[0]._left_title.get_color()) == KIND_COLOURS["other"]
    assert ": 3 beats," in panel.axes[0].get_title(loc="left")


def test_the_regions_traces_share_one_time_axis():
    """Every region's trace repeated its own 'time (s)' axis under it; they now share one, read at the bottom."""
    regions = ["strong", "weak", "silent", "other"]
    fig = build_motion_report(_motion(regions, regions, n_beats=3))
    fig.canvas.draw()
    traces = [ax for ax in fig.axes if ax.get_ylabel().startswith("displacement")]
    assert len(traces) == 4
    assert [ax.get_xlabel() for ax in traces] == ["", "", "", "time (s)"]
    assert len({ax.get_xlim() for ax in traces}) == 1
    shown = [ax for ax in traces if any(t.get_visible() and t.get_text() for t in ax.get_xticklabels())]
    assert shown == traces[-1:]


def test_one_legend_for_all_regions_traces():
    """Each of 12 regions repeated the same legend (displacement, peak, onset) above its trace."""
    regions = ["silent", "strong", "weak"]
    res = _motion(regions, regions, n_beats=3)
    res.beat_params = [b for b in res.beat_params if b.roi != "silent"]       # the first region has no beats
    fig = build_motion_report(res)
    fig.canvas.draw()
    traces = [ax for ax in fig.axes if ax.get_ylabel().startswith("displacement")]
    legends = [ax.get_legend() for ax in traces if ax.get_legend() is not None]
    assert len(legends) == 1
    assert [t.get_text() for t in legends[0].get_texts()] == ["displacement", "peak", "onset"]


def test_the_maps_colour_keys_are_labelled_at_the_pages_text_size():
    """The displacement bar's label was 10-point beside 8-point titles; the direction wheel had no words at all."""
    from napari_micromotion.report_motion import draw_motion_maps

    fig = _figure(12, 4)
    res = _motion(["cell"], ["strong"], n_beats=3)
    res.pixel_size_um = 0.5
    axes = draw_motion_maps(fig, res, still=np.random.default_rng(1).random((32, 32)))
    fig.canvas.draw()
    bar = next(ax for ax in fig.axes if ax not in axes and ax.get_ylabel())
    assert bar.get_ylabel() == "largest displacement (µm)" and bar.yaxis.label.get_fontsize() <= 8
    wheel = axes[-1].child_axes[0]
    words = wheel._left_title
    assert "direction" in words.get_text() and "brighter" in words.get_text()
    renderer = fig.canvas.get_renderer()
    box = words.get_window_extent(renderer)
    assert box.x1 <= fig.bbox.x1 + 1                                                # on the page
    assert not box.overlaps(axes[-1].get_window_extent(renderer))                  # not over the map


def test_the_reference_frame_has_a_scale_bar_when_the_pixel_size_is_known():
    """The reference frame had no scale: a reader could not tell a cell's size nor compare recordings."""
    from napari_micromotion.report_motion import draw_motion_maps

    still = np.random.default_rng(1).random((32, 40))
    res = _motion(["cell"], ["strong"], n_beats=3)
    res.pixel_size_um = 0.65                        # 40 px = 26 µm wide: a 5 µm bar (a fifth, rounded down)
    ax = draw_motion_maps(_figure(12, 4), res, still=still)[0]
    bars = [t.get_text() for t in ax.texts if t.get_text().endswith("\u00b5m")]
    assert bars == ["5 \u00b5m"]
    (x0, x1), _ = ax.lines[-1].get_data()
    assert abs(abs(x1 - x0) - 5 / 0.65) < 1e-6
    assert ax.get_xlim() == (-0.5, 39.5) and ax.get_ylim() == (31.5, -0.5)     # the image's own extent
    res.pixel_size_um = None                        # unknown pixel size: no bar, rather than a false one
    ax = draw_motion_maps(_figure(12, 4), res, still=still)[0]
    assert not [t for t in ax.texts if t.get_text().endswith("\u00b5m")] and not ax.lines


def test_the_runs_warnings_are_on_the_page():
    """A video with repeated frames (its clock wrong) gave a clean-looking page: the warning was only in motion.json."""
    repeat = "sample_2.avi repeats 20 of its 146 frames exactly: times, rates and intervals measured from it are off."
    res = _motion(["strong", "weak"], ["strong", "weak"], n_beats=3)
    res.source = {"warnings": [repeat]}
    res.warnings = [repeat, "no contraction stood out of the noise in any region."]       # as the tool's result
    text = page_note(build_motion_report(res), "\u26a0")
    assert text.count("repeats 20 of its 146 frames") == 1 and "no contraction stood out" in text


def test_pixels_too_plain_to_measure_are_grey_on_both_maps_and_counted_in_the_title():
    res = _motion([WHOLE_FIELD], ["other"], n_beats=3)
    res.displacement_max[:8] = np.nan                    # a quarter of the frame: no texture
    res.direction = np.where(np.isnan(res.displacement_max), np.nan, 30.0)
    fig = build_motion_report(res)
    maps = [ax for ax in fig.axes if ax.get_title().startswith(("largest displacement", "direction"))]
    assert maps[0].get_title() == "largest displacement (grey: too little texture, 25%)"
    shown = maps[0].images[0]
    grey = shown.cmap.get_bad()
    assert grey[0] == grey[1] == grey[2] and 0.3 < grey[0] < 0.8                 # neither black nor white
    rgb = maps[1].images[0].get_array()
    np.testing.assert_allclose(rgb[0, 0][:3], grey[:3], atol=1e-6)
    assert np.isfinite(rgb).all()
    res.displacement_max[:8] = 1.0
    res.displacement_max[0, :2] = np.nan                 # two pixels in 1024
    titles = [ax.get_title() for ax in build_motion_report(res).axes]
    assert "largest displacement (grey: too little texture, 0.2%)" in titles, titles
