"""The workbench at 1920x1080 under Xvfb: it fits the screen, shows honest defaults, works on brightfield alone.

``MICROMOTION_SCREENSHOTS=docs pytest tests/_qt/test_workbench.py`` also refreshes the README's
screenshots (data loaded, after a run, brightfield only).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from qtpy.QtWidgets import QApplication

from napari_micromotion._layers import META_KEY

from .conftest import add_recording, dock_all, n_notifications, notifications_since, run_analysis_widget, wait_task

SHOTS = os.environ.get("MICROMOTION_SCREENSHOTS")


def _screen(viewer, width=1920, height=1080):
    qw = viewer.window._qt_window
    qw.resize(width, height)
    QApplication.processEvents()
    return qw


def _shot(viewer, qtbot, name):
    """A screenshot of the whole window, checked not to be blank; saved for the README when asked."""
    QApplication.processEvents()
    qtbot.wait(300)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    rgb = shot[..., :3].reshape(-1, 3)
    assert shot.shape[0] >= 1000 and rgb.std() > 20 and len(np.unique(rgb[::97], axis=0)) > 100
    if SHOTS:
        from PIL import Image

        img = Image.fromarray(shot[..., :3])
        img.thumbnail((1600, 1600))
        out = Path(SHOTS) / f"workbench-{name}.png"
        img.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return shot


def _sample(viewer, qtbot, bench, n_frames=1000, size=96, seed=1):
    from napari_micromotion._qt.sample import load_sample

    task = load_sample(viewer, n_frames=n_frames, size=size, seed=seed)
    wait_task(qtbot, task)
    return task


def test_the_window_fits_a_laptop_screen_with_everything_open(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    qw = _screen(viewer)
    widgets = dock_all(viewer)
    bench = widgets["Workbench"]
    _sample(viewer, qtbot, bench, n_frames=400, size=64)
    for i in range(bench.tabs.count()):   # every tab, opened in turn
        bench.tabs.setCurrentIndex(i)
        QApplication.processEvents()
        assert qw.minimumSizeHint().height() <= 1000, bench.tabs.tabText(i)
    for section in bench.analysis.form.sections.values():   # even with every parameter section unfolded
        section.expand(animate=False)
    QApplication.processEvents()
    assert qw.minimumSizeHint().height() <= 1000
    assert qw.height() <= 1080 and qw.minimumSizeHint().height() <= 768   # and on a 1366x768 laptop
    _screen(viewer, 1366, 768)
    assert qw.height() <= 768
    analysis = bench.analysis
    bench.show_tab("Analyze")
    QApplication.processEvents()
    assert analysis.run_button.isVisible() and analysis.run_button.height() > 10   # Run stays in view
    assert all(b.isVisible() for b in analysis.method_boxes.values())
    _screen(viewer)
    if SHOTS:
        bench.show_tab("Data")
        _shot(viewer, qtbot, "data")


def test_every_parameter_has_a_plain_language_tooltip(make_napari_viewer):
    viewer = make_napari_viewer()
    widgets = dock_all(viewer)
    bench = widgets["Workbench"]
    forms = [bench.analysis.form] + [t.form for t in bench.tools.values()]
    n = 0
    for form in forms:
        for path, ed in form.editors.items():
            tip = ed.widget.toolTip()
            assert len(tip) > 30 and "Default:" in tip and "--" not in tip, path
            label, _ = form.rows[path]
            assert label.toolTip() == tip
            n += 1
    assert n >= 40
    for box in bench.analysis.method_boxes.values():
        assert len(box.toolTip()) > 20


def test_a_four_method_run_shows_the_best_score_map_and_hides_the_weights(make_napari_viewer, qtbot):
    from napari_micromotion.detectors.cnn3d import CNN3DParams

    viewer = make_napari_viewer(show=True)
    _screen(viewer)
    widgets = dock_all(viewer)
    bench = widgets["Workbench"]
    _sample(viewer, qtbot, bench)
    analysis = bench.analysis
    analysis.set_methods(("bandpass", "matched", "cnn1d", "cnn3d"))
    for path, value in (("cnn1d.epochs", 1), ("cnn1d.n_pixels", 512), ("cnn1d.window", 512),
                        ("cnn3d.mc_passes", 3), ("n_surrogates", 99), ("matched.min_spikes", 3)):
        analysis.set_value(path, value)
    assert analysis.params().cnn3d == CNN3DParams(mc_passes=3)
    overall = []
    bench.session.progressed.connect(lambda e: overall.append(e.overall))
    task = run_analysis_widget(qtbot, analysis)
    assert task.error is None, task.error
    res = bench.session.results
    # the whole run's progress went up to the end, never back
    seen = [v for v in overall if v is not None]
    assert seen[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(seen, seen[1:]))
    assert bench.overall.value() == 1000
    assert not analysis.loss_plot.isHidden() and analysis.loss_plot.series["train cnn1d"]
    visible = [la.name for la in viewer.layers if la.visible]
    assert not [n for n in visible if n.startswith("dense weights")]
    best = res.best_method(with_map=True)
    scores = [n for n in visible if n.startswith("score:")]
    assert len(scores) == 1 and viewer.layers[scores[0]].metadata[META_KEY]["method"] == best
    assert "still frame" in visible and not [n for n in visible if n.startswith("delay")]
    assert bench.tabs.tabText(bench.tabs.currentIndex()) == "Results"   # a finished run shows its results
    inspector = widgets["Inspector"]
    assert inspector.tables.currentWidget() is inspector.scores and inspector.scores.table.rowCount() == 16
    assert "smallest possible is 1/100" in inspector.scores.note.text()
    if SHOTS:
        inspector.traces.show_region("weak")
        inspector.traces.set_methods(["bandpass", "cnn3d"])
        viewer.layers.selection.active = viewer.layers["ROIs"]
        viewer.reset_view()
        _shot(viewer, qtbot, "run")


def test_a_transmission_only_recording_shows_motion_and_beats(make_napari_viewer, qtbot, qt_sim):
    viewer = make_napari_viewer(show=True)
    _screen(viewer)
    trans, _ = add_recording(viewer, qt_sim, rois=True)
    viewer.layers.remove("fluorescence")
    widgets = dock_all(viewer)
    bench = widgets["Workbench"]
    analysis = bench.analysis
    for name in ("matched", "cnn1d", "cnn3d"):   # they learn from calcium: greyed out, with the reason
        box = analysis.method_boxes[name]
        assert not box.isEnabled() and "Needs a fluorescence recording" in box.toolTip()
    assert analysis.methods() == ("bandpass",)
    task = run_analysis_widget(qtbot, analysis)
    assert task.error is None, task.error
    res = bench.session.results
    assert not res.has_fluorescence and not res.score_maps
    motion = viewer.layers["motion: band-pass RMS (dI/I)"]
    assert motion.visible
    np.testing.assert_array_equal(motion.data, res.energy_map)
    inspector = widgets["Inspector"]
    assert inspector.tables.currentWidget() is inspector.beats
    rows = inspector.beats.rows()
    assert {r["roi"] for r in rows} == {"strong", "weak", "silent", "other"}
    strong = next(r for r in rows if r["roi"] == "strong")
    assert strong["source"] == "motion" and strong["n_beats"] >= 5 and 10 < strong["rate_bpm"] < 40
    assert "nothing to score" in inspector.scores.note.text()
    traces = inspector.traces
    (ax,) = traces.panel.axes     # motion only, the whole recording, beats marked
    assert traces.panel.frames.size == qt_sim.params.n_frames
    assert "contraction beats" in ax.get_title(loc="left")
    if SHOTS:
        viewer.layers.selection.active = viewer.layers["ROIs"]
        viewer.reset_view()
        _shot(viewer, qtbot, "brightfield")


def test_clicking_a_pixel_traces_it(make_napari_viewer, qtbot, qt_sim):
    viewer = make_napari_viewer()
    trans, _ = add_recording(viewer, qt_sim, rois=True)
    widgets = dock_all(viewer)
    bench = widgets["Workbench"]
    bench.analysis.set_value("n_surrogates", 9)
    run_analysis_widget(qtbot, bench.analysis)
    row, col = 20, 22
    world = trans.data_to_world((0, row, col))
    task = bench.inspect_world(world)
    wait_task(qtbot, task)
    traces = widgets["Traces"]
    assert traces.region == f"pixel r{row} c{col}"
    from napari_micromotion.filters import bandpass, design_bandpass

    x = np.asarray(qt_sim.transmission[:, row, col], np.float64)[:, None]
    manual = bandpass(x, design_bandpass(qt_sim.params.fps))[:, 0] ** 2
    z = (manual - manual.mean()) / manual.std()
    np.testing.assert_allclose(traces.panel.columns[f"pixel r{row} c{col}/bandpass (z)"], z, rtol=1e-3, atol=1e-3)
    # an ROI is one click away again
    bench.session.select_roi("strong")
    assert traces.region == "strong"


def test_gui_errors_use_the_gui_words(make_napari_viewer, qtbot, qt_sim, tmp_path):
    """Errors raised in the core reach napari without command-line option names."""
    viewer = make_napari_viewer()
    widgets = dock_all(viewer)
    data = widgets["Data"]
    n0 = n_notifications()
    p = tmp_path / "nofps.tif"
    tifffile.imwrite(p, qt_sim.transmission[:200])   # no frame rate recorded
    data.open_path(p)
    assert widgets["Analysis"].run() is None
    p2 = tmp_path / "three.tif"
    tifffile.imwrite(p2, np.stack([qt_sim.transmission[:50]] * 3, axis=1), imagej=True,
                     metadata={"axes": "TCYX", "finterval": 0.02})
    from napari_micromotion.errors import MicromotionError
    from napari_micromotion.io import read_recording

    with pytest.raises(MicromotionError) as info:
        read_recording(p2)
    assert "--" not in str(info.value) and "--fluorescence-channel" in info.value.for_cli()
    data.set_fps(50.0)
    run_analysis_widget(qtbot, widgets["Analysis"])
    results_w = widgets["Results"]
    (tmp_path / "taken").mkdir()
    task = results_w.export_results(tmp_path / "taken")
    wait_task(qtbot, task)
    messages = [m for sev, m in notifications_since(n0) if sev == "error"]
    assert any("frame rate" in m for m in messages) and any("exists" in m for m in messages)
    for m in messages:
        assert "--" not in m, m


def test_a_results_folder_of_another_recording_is_flagged(make_napari_viewer, qtbot, qt_sim, tmp_path):
    from napari_micromotion.export import write_results
    from napari_micromotion.pipeline import AnalysisParams, run_analysis
    from napari_micromotion.simulate import simulate

    other = simulate(n_frames=300, size=64, seed=2)
    res = run_analysis(other.recording(), other.rois, AnalysisParams(n_surrogates=9))
    out = write_results(res, tmp_path / "other", report=False)
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim, rois=False)
    widgets = dock_all(viewer)
    n0 = n_notifications()
    widgets["Results"].open_results(out)
    warnings = [m for sev, m in notifications_since(n0) if sev == "warning"]
    assert any("64 x 64 px" in m and "48 x 48 px" in m and "300 frames" in m for m in warnings), warnings
    assert widgets["Workbench"].session.recording is None   # shown, but not linked to the open recording
