"""Edited ROIs update the traces and scores; the traces follow napari's theme; the screenshot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_micromotion.detectors.cnn1d import Normalisation, TrainedCNN1D, build_cnn1d
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.progress import drive
from napari_micromotion.rois import ROI

from .conftest import add_recording, dock_all, run_analysis_widget, square, wait_task

ROOT = Path(__file__).resolve().parents[2]


def _random_model(fps: float, mode: str = "noise") -> TrainedCNN1D:
    """An untrained (random) 1D CNN: enough to check that edited ROIs are re-traced like the pipeline does."""
    try:
        norm = Normalisation(input_scale=1.0, target_mean=0.0, target_sd=1.0, mode=mode)
    except TypeError:  # older cores: relative intensity only
        norm = Normalisation(input_scale=0.01, target_mean=0.0, target_sd=1.0)
    return TrainedCNN1D(net=build_cnn1d(3), normalisation=norm, fps=fps, passband_hz=(2.0, 15.0), filter_order=2,
                        training_frames=[])


def test_retrace_matches_the_pipeline():
    """Moving, adding, removing and re-labelling ROIs gives the numbers a fresh analysis gives."""
    from napari_micromotion._qt._retrace import iter_retrace
    from napari_micromotion.simulate import simulate

    qt_sim = simulate(n_frames=400, size=48, seed=5)
    rec = qt_sim.recording()
    params = AnalysisParams(methods=("bandpass", "cnn1d"), n_surrogates=29, device="cpu")
    model = _random_model(rec.fps)
    rois = qt_sim.rois
    res = run_analysis(rec, rois, params, model_1d=model)
    assert res.roi_traces[("strong", "cnn1d")].std() > 0
    edited = [
        rois[0],                                                   # unchanged
        ROI("weak", "silent", rois[1].polygon + [2.0, -1.0]),      # moved and re-labelled
        ROI("new", "other", square(2, 2, 9, 7)),                   # added
    ]                                                               # silent and other: removed
    new = drive(iter_retrace(rec, edited, res))
    ref = run_analysis(rec, edited, params, model_1d=model)
    assert new.roi_names == ["strong", "weak", "new"] and new.roi_kinds == ["strong", "silent", "other"]
    for key, tr in ref.roi_traces.items():
        np.testing.assert_allclose(new.roi_traces[key], tr, rtol=2e-4, atol=1e-6 * float(np.abs(tr).max()))
    assert new.roi_traces[("strong", "bandpass")] is res.roi_traces[("strong", "bandpass")]  # kept as is
    got = {(r["roi"], r["method"]): r for r in new.roi_scores}
    assert set(got) == {(r["roi"], r["method"]) for r in ref.roi_scores}
    for row in ref.roi_scores:
        g = got[(row["roi"], row["method"])]
        assert g["kind"] == row["kind"] and g["n_pixels"] == row["n_pixels"]
        assert g["score"] == pytest.approx(row["score"], abs=1e-4)
        assert g["lag_s"] == pytest.approx(row["lag_s"])
        assert g["p_value"] == pytest.approx(row["p_value"], abs=0.05)
    # the maps do not depend on ROIs and are untouched
    assert new.score_maps is res.score_maps


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
    from qtpy.QtWidgets import QApplication

    from qtpy.QtCore import Qt

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
