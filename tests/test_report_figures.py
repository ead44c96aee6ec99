"""What a reader sees in report.png: units, legible labels, no text over text or over data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from napari_micromotion.report import build_report, draw_maps, draw_traces
from napari_micromotion.results import Results, ScoreRow
from napari_micromotion.rois import KIND_COLOURS, KINDS

from .conftest import page_note

METHODS = ["bandpass", "cnn1d"]


def _results(names, n_frames=1500, fps=50.0, n_surrogates=199, size=64):
    """A small analysis result: *names* ROIs (kinds in turn), two methods, p-values at the surrogate floor."""
    rng = np.random.default_rng(0)
    t = np.arange(n_frames) / fps
    truth = np.exp(-((t % 2.0) / 0.3))
    kinds = [KINDS[k % len(KINDS)] for k in range(len(names))]
    masks = np.zeros((len(names), size, size), bool)
    for k in range(len(names)):
        r, c = 4 + 14 * (k // 4), 4 + 14 * (k % 4)
        masks[k, r:r + 10, c:c + 10] = True
    traces = {(n, m): truth + 0.3 * rng.normal(size=n_frames) for n in names for m in METHODS}
    scores = [ScoreRow(roi=n, kind=k, method=m, score=0.8, p_value=1 / (n_surrogates + 1), n_pixels=100)
              for n, k in zip(names, kinds) for m in METHODS]
    return Results(params=SimpleNamespace(roi_truth=False, n_surrogates=n_surrogates, max_lag_s=1.0), fps=fps,
                   n_frames=n_frames,
                   frame_shape=(size, size), pixel_size_um=None, validation=(0, n_frames // 3),
                   training=[(n_frames // 3, n_frames)], passband={}, methods=list(METHODS),
                   still=rng.random((size, size)), energy_map=rng.random((size, size)),
                   score_maps={m: rng.random((size, size)) for m in METHODS}, activity_map=rng.random((size, size)),
                   truth=truth, roi_names=list(names), roi_kinds=kinds, roi_masks=masks, roi_traces=traces,
                   roi_scores=scores)


def _figure(w=12, h=5):
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_roi_scores_read_as_r_and_p_at_the_surrogate_floor_above_the_traces():
    """``p=0.005`` said the test found p = 0.005; with 199 surrogates that is only its floor (``p <= 0.005``)."""
    fig = _figure()
    axes = draw_traces(fig, _results(["strong cardiomyocyte cluster near the rim", "weak", "silent", "other"]))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert len(axes) == 8
    headings = [t for ax in axes for t in ax.texts if t.get_text()]
    assert [t.get_text().replace("\n", " ") for t in headings] == \
        ["strong cardiomyocyte cluster near the rim (strong)", "weak (weak)", "silent (silent)", "other (other)"]
    boxes = [t.get_window_extent(renderer) for t in headings]
    for ax in axes:
        score = ax.get_title(loc="right")
        assert score.startswith("r = 0.80") and "p \u2264 0.005" in score, score
        right = ax._right_title.get_window_extent(renderer)
        assert right.y0 >= ax.get_window_extent(renderer).y1 - 1          # above the plot, not over its peaks
        assert not [b for b in boxes if _overlaps(b, right)]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if _overlaps(a, b)]


def test_twelve_rois_keep_the_page_width_and_readable_traces():
    """With 12 ROIs the page was 38 inches wide (4224 px), the traces 1 inch tall under 7-point text on a wall."""
    names = [f"cell {k + 1}" for k in range(12)]
    fig = build_report(_results(names))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width_in, _ = fig.get_size_inches()
    assert width_in <= 14
    traces = [ax for ax in fig.axes if ax.get_title(loc="right").startswith("r = ")]
    assert len(traces) == 12 * len(METHODS)
    dpi = fig.dpi
    for ax in traces:
        box = ax.get_window_extent(renderer)
        assert box.width / dpi >= 2.0 and box.height / dpi >= 0.5, (box.width / dpi, box.height / dpi)
    # three rows of four ROIs, each ROI's heading clear of every other text
    assert len({round(ax.get_position().x0, 3) for ax in traces}) == 4
    headings = [t for ax in traces for t in ax.texts if t.get_text()]
    assert sorted(t.get_text().split(" (")[0] for t in headings) == sorted(names)
    texts = [t.get_window_extent(renderer) for t in headings] + \
        [ax._right_title.get_window_extent(renderer) for ax in traces] + \
        [ax.xaxis.label.get_window_extent(renderer) for ax in traces if ax.get_xlabel()]
    assert not [(a, b) for i, a in enumerate(texts) for b in texts[i + 1:] if _overlaps(a, b)]


def test_every_map_has_a_labelled_colour_bar_at_the_pages_text_size():
    """The score maps' colour bars ran 0 to 1 with no word of what was measured, in 10-point ticks beside 8-point text."""
    fig = _figure(14, 3.5)
    res = _results(["strong", "weak"])
    axes = draw_maps(fig, res)
    assert len(axes) == 2 + len(METHODS)
    bars = [ax for ax in fig.axes if ax not in axes]          # one colour bar per map beside the still frame
    assert len(bars) == 1 + len(METHODS)
    labels = [b.get_ylabel() for b in bars]
    assert all(labels) and all("r" in label for label in labels), labels
    assert all(t.get_fontsize() <= 8 for b in bars for t in b.get_yticklabels())
    res.score_maps, res.activity_map = {}, None                # no fluorescence: the motion energy instead
    fig = _figure(8, 3.5)
    axes = draw_maps(fig, res)
    assert [ax.get_ylabel() for ax in fig.axes if ax not in axes] == ["band-pass RMS (dI/I)"]


def test_roi_labels_stay_on_the_image_clear_of_its_title():
    """A ROI at the image's top edge had its name drawn above the image, over the panel's title; a long name ran off."""
    res = _results(["strong cardiomyocyte cluster near the rim", "weak", "silent", "the rightmost one of them all"])
    res.roi_masks[:] = False
    res.roi_masks[0, 0:12, 0:14] = True          # top-left corner
    res.roi_masks[1, 30:40, 28:36] = True        # middle
    res.roi_masks[2, 41:50, 28:36] = True        # right below it: the names must not meet
    res.roi_masks[3, 0:10, 54:64] = True         # top-right corner
    fig = _figure(12, 3.5)
    still = draw_maps(fig, res)[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    image = still.get_window_extent(renderer)
    title = still.title.get_window_extent(renderer)
    labels = [t for t in still.texts if t.get_text()]
    assert len(labels) == 4
    for t in labels:
        box = t.get_window_extent(renderer)
        assert image.x0 - 1 <= box.x0 and box.x1 <= image.x1 + 1 and image.y0 - 1 <= box.y0 and box.y1 <= image.y1 + 1, \
            (t.get_text(), box, image)
        assert not _overlaps(box, title)
        assert t.get_path_effects()                          # a halo: readable on dark and bright pixels
        assert t.get_text().count("\n") <= 1                 # two lines at most, not a block over its neighbours
    assert labels[0].get_text().replace("\n", " ").startswith("strong cardiomyocyte")
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if _overlaps(a, b)]


def test_the_whole_fields_trace_panel_is_not_coloured_as_an_other_roi():
    """The whole field ('frame') was titled 'frame (other)' in the purple of ROIs of kind 'other'."""
    from matplotlib.colors import to_hex

    from napari_micromotion.report import LIGHT, draw_trace_panel
    from napari_micromotion.results import WHOLE_FIELD
    from napari_micromotion.rois import KIND_COLOURS

    res = _results(["strong", "other"])
    res.roi_kinds = ["strong", "other"]
    res.motion_traces = {WHOLE_FIELD: np.ones(res.n_frames), "other": np.ones(res.n_frames)}
    panel = draw_trace_panel(_figure(), res, WHOLE_FIELD)
    title = panel.axes[0]._left_title
    assert title.get_text().startswith(f"{WHOLE_FIELD} (whole field)") and "(other)" not in title.get_text()
    assert to_hex(title.get_color()) == LIGHT["text"] != KIND_COLOURS["other"]
    panel = draw_trace_panel(_figure(), res, "other")                 # a ROI of kind 'other' keeps its colour
    assert to_hex(panel.axes[0]._left_title.get_color()) == KIND_COLOURS["other"]


def test_the_traces_have_a_key_saying_what_each_line_is_and_how_it_is_scaled():
    """Nothing said the grey line was the calcium, that both were z-scored, nor what r and p were."""
    from napari_micromotion.report import _label

    fig = build_report(_results(["strong", "weak", "silent", "other"], n_surrogates=99))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    keys = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None and not ax.axison]
    assert len(keys) == 1
    key = keys[0]
    assert [t.get_text() for t in key.get_texts()] == ["calcium"] + [_label(m) for m in METHODS]
    title = key.get_title().get_text()
    assert "z-scored" in title and "99 time-shifted surrogates" in title and "10 s" in title, title
    box, page = key.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1           # not cut off at the page's edge


def test_the_trace_panels_legend_leaves_the_traces_clear_and_motion_has_its_unit():
    """The inspector's legend (up to nine entries) lay over the traces' peaks; the motion axis had no unit."""
    from napari_micromotion.report import draw_trace_panel

    res = _results(["strong", "weak"])
    res.motion_traces = {"strong": np.ones(res.n_frames)}
    fig = _figure(10, 5)
    panel = draw_trace_panel(fig, res, "strong")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top, motion = panel.axes
    legend = top.get_legend().get_window_extent(renderer)
    assert legend.x0 >= top.get_window_extent(renderer).x1 - 1
    assert legend.x1 <= fig.bbox.x1 + 1                       # on the page
    assert motion.get_ylabel() == "motion (RMS, grey levels)"


def test_a_report_without_fluorescence_does_not_claim_scores():
    """Without fluorescence the page said 'scored on frames 0:581' and explained r and p that it did not show."""
    res = _results(["strong", "weak"])
    res.truth, res.score_maps, res.activity_map = None, {}, None      # (its score rows stay, as NaN, as written)
    res.roi_scores = [type(r)(roi=r.roi, kind=r.kind, method=r.method) for r in res.roi_scores]
    fig = build_report(res)
    fig.canvas.draw()
    assert "not scored" in fig.get_suptitle() and "scored on" not in fig.get_suptitle()
    key = next(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None and not ax.axison)
    assert "calcium" not in [t.get_text() for t in key.get_texts()]
    assert "surrogates" not in key.get_title().get_text() and "no fluorescence" in key.get_title().get_text()
    scored = build_report(_results(["strong"]))
    assert "scored on frames 0:500" in scored.get_suptitle()


def test_one_method_and_one_roi_still_get_a_readable_trace():
    """With one method the ROI trace was squeezed to a quarter inch under its heading, score and time axis."""
    res = _results(["strong"])
    for key in [k for k in res.roi_traces if k[1] != "bandpass"]:
        del res.roi_traces[key]
    fig = build_report(res)
    fig.canvas.draw()
    traces = [ax for ax in fig.axes if ax.get_title(loc="right").startswith("r = ")]
    assert len(traces) == 1
    assert traces[0].get_window_extent(fig.canvas.get_renderer()).height / fig.dpi >= 0.5


def test_a_row_of_many_maps_leaves_no_white_band_under_it():
    """Six small square maps sat in a 3.2-inch row, leaving an inch of blank page above and below them."""
    res = _results(["strong", "weak"])
    res.methods = ["bandpass", "matched", "cnn1d", "flow"]
    res.score_maps = {m: np.random.default_rng(1).random((64, 64)) for m in res.methods}
    fig = build_report(res)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    maps = [ax for ax in fig.axes if ax.get_title().startswith(("still", "fluorescence", "score"))]
    assert len(maps) == 6
    key = next(ax for ax in fig.axes if ax.get_legend() is not None and not ax.axison).get_legend()
    gap_in = (min(ax.get_window_extent(renderer).y0 for ax in maps) - key.get_window_extent(renderer).y1) / fig.dpi
    top_in = (fig.bbox.y1 - max(ax.get_tightbbox(renderer).y1 for ax in maps)) / fig.dpi
    assert gap_in < 0.5 and top_in < 0.5, (gap_in, top_in)


def test_the_still_frame_has_a_scale_bar_when_the_pixel_size_is_known():
    res = _results(["strong"])
    res.pixel_size_um = 0.5                         # 64 px = 32 µm wide: a 5 µm bar
    still = draw_maps(_figure(12, 3.5), res)[0]
    assert [t.get_text() for t in still.texts if t.get_text().endswith("\u00b5m")] == ["5 \u00b5m"]
    res.pixel_size_um = None
    still = draw_maps(_figure(12, 3.5), res)[0]
    assert not [t for t in still.texts if t.get_text().endswith("\u00b5m")]


def test_a_short_recordings_p_values_read_at_their_own_floor():
    """58 scored frames allow only 57 time shifts: p = 1/58 is that test's floor, yet read 'p = 0.017'."""
    from napari_micromotion.report import draw_trace_panel

    res = _results(["strong"], n_frames=174, n_surrogates=99)         # validation 0:58 at 50 fps, 1 s lag
    for row in res.roi_scores:
        row.p_value = 1 / 58
    fig = build_report(res)
    traces = [ax for ax in fig.axes if ax.get_title(loc="right").startswith("r = ")]
    assert traces and all("p \u2264 0.017" in ax.get_title(loc="right") for ax in traces)
    key = next(ax for ax in fig.axes if ax.get_legend() is not None and not ax.axison).get_legend()
    assert "from 57 time-shifted surrogates" in key.get_title().get_text()
    res.motion_traces = {"strong": np.ones(res.n_frames)}
    panel = draw_trace_panel(_figure(), res, "strong")
    assert "p \u2264 0.017" in panel.axes[0].get_title(loc="left")


def test_the_runs_warnings_are_on_the_page():
    """A warning (e.g. that p-values cannot go below 1/58) lived only in run.json, not on the figure passed around."""
    res = _results(["strong", "weak"])
    res.warnings = ["only 57 distinct time shifts fit in the 58 validation frames, so no p-value can be below "
                    "1/58 = 0.017 (not 1/100); a longer validation range gives finer p-values. " * 2,
                    "no fluorescence: predictions and beats only, no scores."]
    text = page_note(build_report(res), "validation range")
    assert "1/58 = 0.017" in text and "no fluorescence: predictions and beats only" in text
    assert not [t for ax in build_report(_results(["strong"])).axes for t in ax.texts if "\u26a0" in t.get_text()]


def test_a_run_without_rois_shows_the_whole_fields_traces_and_beats():
    """analyze without ROIs printed 'no ROI traces' under its maps, though it had found the whole field's beats."""
    from napari_micromotion.beats import beat_stats
    from napari_micromotion.results import WHOLE_FIELD, BeatRateRow, BeatRow

    res = _results([])
    res.truth, res.score_maps, res.roi_scores = None, {}, []
    t = res.time_s()
    res.motion_traces = {WHOLE_FIELD: 1e4 * (1 + np.cos(2 * np.pi * t) ** 8)}
    res.beats = [BeatRow(roi=WHOLE_FIELD, kind="other", source="transmission", beat=k + 1, time_s=float(k) + 0.9,
                         peak_time_s=float(k) + 1.0) for k in range(3)]
    res.beat_rates = [BeatRateRow(roi=WHOLE_FIELD, kind="other", source="transmission",
                                  **beat_stats(np.array([b.time_s for b in res.beats])))]
    fig = build_report(res)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert not any("no ROI traces" in s for s in texts)
    plotted = [ax for ax in fig.axes if ax.get_xlabel() == "time (s)"]
    assert len(plotted) == 1 and plotted[0].lines, [ax.get_xlabel() for ax in fig.axes]
    assert "motion-energy beats: 3, 60.0 bpm" in plotted[0].get_title(loc="left")
    assert [ax.get_title() for ax in fig.axes if ax.get_title() in ("still frame", "still frame + ROIs")] == \
        ["still frame"]


def test_method_colours_stand_apart_from_the_roi_kinds_and_the_calcium():
    """The band-pass line was the weak ROI's blue (CIEDE2000 4.2 apart), the matched filter's the strong ROI's orange
    (12.5), the 1D CNN's the silent ROI's green (9.3): a trace under a ROI's coloured heading read as that ROI's."""
    import itertools

    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab

    from napari_micromotion.methods import METHODS
    from napari_micromotion.report import TRUTH_COLOUR

    def lab(colour):
        return rgb2lab(np.array([[to_rgb(colour)]]))[0, 0]

    methods = {m.name: m.colour for m in METHODS}
    others = {**{f"ROI kind {k}": c for k, c in KIND_COLOURS.items()}, "calcium": TRUTH_COLOUR}
    pairs = [(a, b) for a in methods for b in others] + list(itertools.combinations(methods, 2))
    colour = {**methods, **others}
    close = [(a, b, round(float(deltaE_ciede2000(lab(colour[a]), lab(colour[b]))), 1)) for a, b in pairs]
    assert not [p for p in close if p[2] < 15], close
