"""Edited ROIs update the traces and scores; the traces follow napari's theme; the screenshot."""

from __future__ import annotations

import os
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
    assert traces.data.rois == ["strong", "weak", "silent", "other"]

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
    sl = slice(int(traces.data.frames[0]), int(traces.data.frames[-1]) + 1)
    np.testing.assert_array_equal(traces.data.raw[("weak", "bandpass")], res.roi_traces[("weak", "bandpass")][sl])
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
    assert traces.data.rois == ["strong", "weak", "silent"] and traces.data.kinds == ["strong", "weak", "weak"]
    # the ROI layer stays selectable from the table
    table.table.selectRow(next(i for i, r in enumerate(table.rows()) if r["roi"] == "silent"))
    assert rois.selected_data == {2}


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
        assert to_hex(traces.axes[0].title.get_color()) == "#e6550d"  # strong ROI title in its kind colour
    traces.roi_combo.setCurrentText("weak")
    assert traces.data.rois == ["weak"] and len(traces.axes) == 1
    traces.window_s.setValue(0)  # the whole recording
    assert traces.data.frames.size == qt_sim.params.n_frames


def test_screenshot_of_docked_widgets_after_a_run(make_napari_viewer, qtbot, qt_sim, tmp_path):
    """The docked widgets render (not blank) after a run; MICROMOTION_SCREENSHOT=path also saves the README image."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    from napari_micromotion.simulate import simulate

    sim = simulate(n_frames=1000, size=96, seed=1)  # big enough to look like the paper's Fig. 3
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    add_recording(viewer, sim, rois=True)
    widgets = dock_all(viewer)
    docks = [viewer.window._qt_window.findChild(type(d), d.objectName()) for d in
             [w.parentWidget() for w in (widgets["Analysis"], widgets["Traces"])]]
    viewer.window._qt_window.resizeDocks([d for d in docks if d is not None], [620, 620], Qt.Orientation.Horizontal)
    widgets["Analysis"].set_value("n_surrogates", 49)
    run_analysis_widget(qtbot, widgets["Analysis"])
    viewer.dims.set_current_step(0, 150)
    viewer.reset_view()
    viewer.layers.selection.active = viewer.layers["ROIs"]
    QApplication.processEvents()
    qtbot.wait(300)
    widgets["Traces"].canvas.draw()
    for name in ("Analysis", "Traces", "Score table"):
        img = widgets[name].grab().toImage()
        arr = np.array([[img.pixel(x, y) & 0xFFFFFF for x in range(0, img.width(), 4)]
                        for y in range(0, img.height(), 4)])
        assert img.width() > 50 and img.height() > 50
        assert len(np.unique(arr)) > 20, f"{name} looks blank"
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[0] > 400 and shot.shape[1] > 800
    rgb = shot[..., :3].reshape(-1, 3)
    assert rgb.std() > 20 and len(np.unique(rgb[:: 97], axis=0)) > 100
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas[..., :3].std() > 10  # the score map and ROIs are drawn (OpenGL under Xvfb)
    from PIL import Image

    out = Path(os.environ.get("MICROMOTION_SCREENSHOT", tmp_path / "screenshot.png"))
    img = Image.fromarray(shot[..., :3])
    img.thumbnail((1200, 1200))
    img.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    assert out.is_file() and out.stat().st_size < 300_000
