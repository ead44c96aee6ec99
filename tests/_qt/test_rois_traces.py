"""Edited ROIs update the traces and scores; the traces follow napari's theme; the screenshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_micromotion.pipeline import run_analysis

from .conftest import add_recording, dock_all, run_analysis_widget, wait_task

ROOT = Path(__file__).resolve().parents[2]


def test_editing_rois_updates_traces_and_table(make_napari_viewer, qtbot, qt_sim):
    viewer = make_napari_viewer()
    _, rois = add_recording(viewer, qt_sim, rois=True)
    widgets = dock_all(viewer)
    analysis = widgets["Analysis"]
    analysis.set_value("n_surrogates", 29)
    run_analysis_widget(qtbot, analysis)
    session = analysis.session
    first = session.results
    traces, table = widgets["Traces"], widgets["Score table"]
    regions = lambda: [traces.region_combo.itemText(i) for i in range(traces.region_combo.count())]  # noqa: E731
    assert regions() == ["strong", "weak", "silent", "other", "whole field"]

    # move "weak": the edit is picked up (debounced) and re-traced in the background
    data = list(rois.data)
    data[1] = data[1] + np.array([3.0, 2.0])
    rois.data = data
    qtbot.waitUntil(lambda: session.results is not first, timeout=120_000)
    wait_task(qtbot, session.retrace_task)
    res = session.results
    ref = run_analysis(qt_sim.recording(), session.build_rois(rois), analysis.params())
    np.testing.assert_allclose(res.roi_traces[("weak", "bandpass")], ref.roi_traces[("weak", "bandpass")], rtol=2e-4)
    assert not np.allclose(res.roi_traces[("weak", "bandpass")], first.roi_traces[("weak", "bandpass")])
    assert res.roi_traces[("strong", "bandpass")] is first.roi_traces[("strong", "bandpass")]
    traces.show_region("weak")
    tr = res.roi_traces[("weak", "bandpass")].astype(np.float64)
    np.testing.assert_allclose(traces.panel.columns["weak/bandpass (z)"], (tr - tr.mean()) / tr.std(), rtol=1e-5,
                               atol=1e-5)
    row = next(r for r in table.rows() if r["roi"] == "weak")
    assert row["score"] == pytest.approx(next(r for r in ref.roi_scores if r["roi"] == "weak")["score"], abs=1e-4)

    # re-label "silent" through the ROIs widget and delete "other": table and traces follow
    rw = widgets["ROIs"]
    rois.selected_data = {2}
    rw.set_kind("weak")
    rois.selected_data = {3}
    rois.remove_selected()
    before = session.results
    qtbot.waitUntil(lambda: session.results is not before and session.results.roi_names == ["strong", "weak", "silent"],
                    timeout=120_000)
    wait_task(qtbot, session.retrace_task)
    assert session.results.roi_kinds == ["strong", "weak", "weak"]
    assert {(r["roi"], r["kind"]) for r in table.rows()} == {("strong", "strong"), ("weak", "weak"), ("silent", "weak")}
    assert regions() == ["strong", "weak", "silent", "whole field"]
    traces.show_region("silent")
    assert "silent (weak)" in traces.panel.axes[0].get_title(loc="left")
    # linked: a table row selects the shape and shows its traces; a selected shape highlights its rows
    table.table.selectRow(next(i for i, r in enumerate(table.rows()) if r["roi"] == "strong"))
    assert rois.selected_data == {0} and traces.region == "strong"
    rois.selected_data = {1}
    qtbot.waitUntil(lambda: traces.region == "weak", timeout=5000)
    assert [table.rows()[i]["roi"] for i in table.selected_rows()] == ["weak"]


def test_traces_follow_the_theme(make_napari_viewer, qtbot, qt_sim):
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim, rois=True)
    widgets = dock_all(viewer)
    traces = widgets["Traces"]
    run_analysis_widget(qtbot, widgets["Analysis"])
    for theme in ("light", "dark"):
        viewer.theme = theme
        qtbot.wait(10)
        assert to_hex(traces.figure.get_facecolor()) == get_theme(theme).background.as_hex()
        assert to_hex(traces.panel.axes[0].get_facecolor()) == get_theme(theme).background.as_hex()
        assert to_hex(traces.panel.axes[0]._left_title.get_color()) == "#e6550d"  # strong ROI: its kind colour
    traces.show_region("weak")
    assert traces.region == "weak" and len(traces.panel.axes) == 2
    traces.window_combo.setCurrentIndex(2)  # the validation frames
    res = widgets["Analysis"].session.results
    assert traces.panel.frames[0] == res.validation[0] and traces.panel.frames.size == res.validation[1]


def test_loss_plot_follows_the_theme(make_napari_viewer, qtbot):
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    from napari_micromotion._qt.plots import LossPlot

    viewer = make_napari_viewer()
    plot = LossPlot(viewer=viewer)
    qtbot.addWidget(plot)
    for v in (1.0, 0.5, 0.25):
        plot.add("train", v)
    for theme in ("light", "dark"):
        viewer.theme = theme
        qtbot.wait(10)
        want = get_theme(theme).background.as_hex()
        ax = plot.figure.axes[0]
        assert to_hex(plot.figure.get_facecolor()) == want and to_hex(ax.get_facecolor()) == want
        assert to_hex(ax.title.get_color()) == get_theme(theme).text.as_hex()
        assert len(ax.lines[0].get_ydata()) == 3
