"""What the workbench says when a run is cancelled, an export fails, a name is refused (the GUI sweep's findings)."""

from __future__ import annotations

from napari_micromotion.progress import Progress

from .conftest import add_recording, dock_all, n_notifications, notifications_since, wait_task


def test_a_cancel_that_comes_too_late_still_says_cancelled(qtbot):
    """quit() can race the worker's last step: the run returns, is dropped, and must say 'cancelled', not 'done'."""
    from napari_micromotion._qt._tasks import Task

    def work():
        yield Progress("x", 0.5)
        return 42

    task = Task(work, progress_bars=False)
    seen = []
    task.cancelled.connect(lambda: seen.append("cancelled"))
    task.succeeded.connect(seen.append)
    task.cancel_requested = True        # the request arrived after the last yield
    task._on_returned(42)
    assert seen == ["cancelled"] and task.result is None


def test_error_messages_keep_file_names_as_written():
    from napari_micromotion._qt._tasks import error_message
    from napari_micromotion.errors import MicromotionError

    assert error_message(MicromotionError("one.tif holds a single image.")) == "one.tif holds a single image."
    assert error_message(MicromotionError("/etc/passwd is not valid JSON.")).startswith("/etc/passwd")
    assert error_message(MicromotionError("the video has 3 frames.")) == "The video has 3 frames."


def test_cancel_export_failure_and_rename_say_what_happened(make_napari_viewer, qtbot, qt_sim, tmp_path):
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    widgets = dock_all(viewer)
    bench = widgets["Workbench"]
    tab = bench.tools["motion"]
    # a cancelled run: the tab and the footer say so, the bars start again
    task = tab.run()
    qtbot.waitUntil(lambda: task.last is not None, timeout=60_000)
    tab.cancel()
    wait_task(qtbot, task)
    assert "Cancelled" in tab.status.text() and "Cancelled" in bench.footer.text()
    assert bench.overall.value() == 0 and tab.progress.value() == 0
    # an export that fails replaces the last 'Written to ...'
    wait_task(qtbot, tab.run())
    out = tmp_path / "motion-out"
    wait_task(qtbot, tab.export(out))
    assert tab.status.text() == f"Written to {out}."
    failed = tab.export(out)               # exists: refused
    wait_task(qtbot, failed)
    assert tab.status.text().startswith("Not exported:") and "exists" in tab.status.text()
    # a second export while one is being written is refused, not raced into the same folder
    first = tab.export(tmp_path / "again")
    assert tab.export(tmp_path / "again") is None
    wait_task(qtbot, first)
    # ROIs: a name with a line break is refused by the rename, as Run would refuse it
    rois = widgets["ROIs"]
    layer = viewer.layers["ROIs"]
    layer.selected_data = {0}
    before = list(layer.features["name"])
    rois.rename_selected("two\nlines")
    assert list(layer.features["name"]) == before


def test_opening_a_damaged_results_folder_warns_instead_of_a_traceback(make_napari_viewer, qt_sim, tmp_path):
    from napari_micromotion.export import write_results
    from napari_micromotion.pipeline import AnalysisParams, run_analysis

    res = run_analysis(qt_sim.recording(), qt_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=9))
    out = write_results(res, tmp_path / "out", report=False)
    (out / "traces.csv").write_text("garbage,\n1,2,3\n")
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    widgets = dock_all(viewer)
    n0 = n_notifications()
    back = widgets["Results"].open_results(out)
    assert back is not None and "score: band-pass" in [la.name for la in viewer.layers]
    said = notifications_since(n0)
    assert len(said) == 1 and said[0][1].startswith("Could not read traces.csv in out (")


def test_the_roi_writer_and_the_rois_tab_say_why(make_napari_viewer, qt_sim, tmp_path):
    import zipfile

    import numpy as np

    from napari_micromotion._writer import write_rois as napari_writer
    from napari_micromotion.rois import write_rois

    n0 = n_notifications()
    # napari's File > Save: its own message would only be "not a valid writer"
    line = [np.array([[0.0, 0.0], [5.0, 5.0]])]
    assert napari_writer(str(tmp_path / "x.json"), line, {"shape_type": ["line"]}) == []
    assert napari_writer(str(tmp_path / "e.zip"), [], {"shape_type": []}) == []
    said = [m for _, m in notifications_since(n0)]
    assert said == ["Shape 1 is a line; ROIs must be polygons, rectangles or ellipses.",
                    "There are no ROIs to save in e.zip; draw or load some first."]
    assert not list(tmp_path.iterdir())
    # ROIs > Load of a set with a damaged member: the good ROIs, and a warning naming the bad one
    good = write_rois(qt_sim.rois, tmp_path / "RoiSet.zip")
    with zipfile.ZipFile(good) as zf, zipfile.ZipFile(tmp_path / "mixed.zip", "w") as out:
        for name in zf.namelist():
            out.writestr(name, zf.read(name))
        out.writestr("bad.roi", b"Iout")
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim, rois=False)
    rois_tab = dock_all(viewer)["ROIs"]
    n0 = n_notifications()
    layer = rois_tab.load(tmp_path / "mixed.zip")
    assert layer is not None and len(layer.data) == len(qt_sim.rois)
    assert any("bad.roi" in m for _, m in notifications_since(n0))
    assert rois_tab.save(tmp_path) is None                  # a folder: refused, nothing written beside it
    assert not (tmp_path.parent / f"{tmp_path.name}.json").exists()


def test_camera_gain_takes_small_gains_and_refuses_zero(make_napari_viewer, qt_sim):
    """The gain was a 4-decimal spin box: 0.0000 was offered (and refused at Run), 5e-5 became 1e-4."""
    import pytest

    from napari_micromotion.errors import MicromotionError

    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    analysis = dock_all(viewer)["Analysis"]
    editor = analysis.editors["camera.gain_e_per_adu"]
    assert analysis.params().camera.gain_e_per_adu is None          # empty: assume full well
    editor.widget.setText("5e-5")
    assert analysis.params().camera.gain_e_per_adu == 5e-5
    editor.widget.setText("0.23")
    assert analysis.params().camera.gain_e_per_adu == 0.23
    editor.widget.setText("0")
    with pytest.raises(MicromotionError, match="camera gain must be at least"):
        analysis.params()
    assert analysis.run() is None and "Camera gain must be at least" in analysis.status.text()   # as notified
    with pytest.raises(MicromotionError, match="must be a number"):
        editor.widget.setText("fast")
        analysis.params()


def test_an_image_tool_takes_the_frame_and_channel_under_the_sliders(make_napari_viewer):
    import numpy as np
    import pytest

    from napari_micromotion._qt._state import get_session
    from napari_micromotion.errors import MicromotionError

    viewer = make_napari_viewer()
    data = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    layer = viewer.add_image(data, name="tczyx")
    viewer.dims.set_point(0, 2)
    viewer.dims.set_point(1, 1)
    session = get_session(viewer)
    img, frame = session.image_from_layer(layer)
    assert frame == 2 and np.array_equal(img, data[2, 1])          # not channel 0
    mask = viewer.add_image(np.zeros((32, 32), bool), name="mask")
    with pytest.raises(MicromotionError, match="true/false values"):
        session.image_from_layer(mask)


def test_the_sample_opened_twice_leaves_no_placeholder(make_napari_viewer, qtbot, monkeypatch):
    from napari_micromotion import _sample_data
    from napari_micromotion._qt.sample import PLACEHOLDER_KEY

    monkeypatch.setitem(_sample_data.SAMPLE, "n_frames", 300)
    monkeypatch.setitem(_sample_data.SAMPLE, "size", 48)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-micromotion", "simulated")
    viewer.open_sample("napari-micromotion", "simulated")      # while the first is still simulating
    qtbot.waitUntil(lambda: sum(la.name.startswith("fluorescence") for la in viewer.layers) == 2, timeout=120_000)
    qtbot.wait(50)
    assert not [la.name for la in viewer.layers if PLACEHOLDER_KEY in la.metadata or "simulating" in la.name]
    assert all(la.data.shape[0] == 300 for la in viewer.layers if la.name.startswith("transmission"))


def test_a_result_layer_the_user_renamed_is_kept_and_the_list_follows(make_napari_viewer, qtbot, qt_sim):
    from .conftest import run_analysis_widget

    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    widgets = dock_all(viewer)
    analysis, results = widgets["Analysis"], widgets["Results"]
    analysis.set_value("n_surrogates", 9)
    run_analysis_widget(qtbot, analysis)
    viewer.layers["score: band-pass"].name = "score run 1 (keep)"
    run_analysis_widget(qtbot, analysis)
    names = [la.name for la in viewer.layers]
    assert "score run 1 (keep)" in names and "score: band-pass" in names
    listed = lambda: [results.layer_list.item(i).text() for i in range(results.layer_list.count())]  # noqa: E731
    assert "still frame" in listed()
    viewer.layers.remove("still frame")
    assert "still frame" not in listed() and "score: band-pass" in listed()


def test_the_data_tab_says_why_a_layer_is_no_recording(make_napari_viewer, qt_sim):
    import numpy as np
    import pytest

    from napari_micromotion._qt._state import get_session
    from napari_micromotion.errors import MicromotionError

    viewer = make_napari_viewer()
    session = get_session(viewer)
    viewer.add_image(np.zeros((32, 32), np.float32), name="one frame")
    with pytest.raises(MicromotionError, match="'one frame' is a single 2D image, not a video"):
        session.build_recording()
    add_recording(viewer, qt_sim, rois=False)
    session.choice.channel = 3                       # a channel the (T, Y, X) layer does not have
    with pytest.raises(MicromotionError, match="has one channel; channel 3 does not exist"):
        session.build_recording()
    session.choice.channel = None
    assert session.build_recording().n_frames == qt_sim.transmission.shape[0]


def test_a_tool_rerun_shows_its_own_layers_placed_like_its_input(make_napari_viewer, qtbot):
    """Motion on a still video, then on a moving one placed in seconds with an offset: the second run's layers
    carry its own contrast and arrow length, sit on the input in space and time, and nothing of the first
    run's is left."""
    import numpy as np

    from napari_micromotion.simulate import simulate

    viewer = make_napari_viewer()
    trans, rois = add_recording(viewer, simulate(n_frames=300, size=48, seed=3))
    px = float(trans.scale[1])
    data = np.asarray(trans.data)
    still = data[:1].repeat(100, axis=0) + np.random.default_rng(0).normal(0, 0.5, (100, *data.shape[1:]))
    viewer.add_image(still, name="still", metadata={"napari_micromotion": {"fps": 50.0}})
    tab = dock_all(viewer)["Workbench"].tools["motion"]
    tab.form.set_values({"threads": 1})
    tab.layer_combo.setCurrentText("still")
    wait_task(qtbot, tab.run())
    for la in (viewer.layers["transmission"], viewer.layers["fluorescence"]):
        la.scale, la.translate = (0.02, px, px), (5.0, 30.0, 40.0)
    rois.translate = (30.0, 40.0)
    tab.layer_combo.setCurrentText("transmission")
    wait_task(qtbot, tab.run())
    fresh = {kw["name"]: kw for _, kw, _ in tab.tool.layer_data(tab.result)}
    img = viewer.layers["motion: largest displacement (px)"]
    vec = viewer.layers["motion: displacement arrows"]
    np.testing.assert_allclose(img.contrast_limits, fresh[img.name]["contrast_limits"], rtol=1e-3)
    assert np.isclose(vec.length, fresh[vec.name]["length"], rtol=1e-3)
    np.testing.assert_allclose(img.translate, (30, 40))
    assert np.isclose(vec.scale[0], 0.02) and np.isclose(vec.translate[0], 5.0)
    assert sum(la.name.startswith("motion:") for la in viewer.layers) == 2


def test_table_and_figure_exports_check_their_file_names(tmp_path):
    """CSV text was written into .png or .svg names; a name without extension gave '... not no extension'."""
    import pytest

    from napari_micromotion._qt._files import save_figure_atomic, write_csv_atomic
    from napari_micromotion.errors import MicromotionError

    out = write_csv_atomic(tmp_path / "trace", ["frame", "strong/displacement_µm"], [[0, 1.5]])
    assert out.name == "trace.csv" and out.read_text().splitlines()[0] == "frame,strong/displacement_um"
    for name, message in (("trace.png", "save the table as .csv"), ("", "is a folder")):
        with pytest.raises(MicromotionError, match=message):
            write_csv_atomic(tmp_path / name, ["a"], [[1]])
    fig = save_figure_atomic(tmp_path / "plot", lambda f: f.add_subplot().plot([0, 1]), height_in=2)
    assert fig.name == "plot.png" and fig.stat().st_size > 1000
    with pytest.raises(MicromotionError, match="is a folder"):
        save_figure_atomic(tmp_path, lambda f: None, height_in=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "trace.csv"]


def test_cells_export_writes_the_files_ticked_after_the_run(make_napari_viewer, qtbot, tmp_path):
    """'write ImageJ RoiSet.zip' and 'write suite2p files' ticked after the run were ignored by Export."""
    from napari_micromotion.simulate import simulate

    viewer = make_napari_viewer()
    add_recording(viewer, simulate(n_frames=300, size=64, seed=1), rois=False)
    tab = dock_all(viewer)["Workbench"].tools["cells"]
    tab.form.set_values({"threads": 1})
    wait_task(qtbot, tab.run())
    assert not tab.result.params.imagej
    tab.form.set_values({"imagej": True, "suite2p": True})
    out = tmp_path / "cells-out"
    wait_task(qtbot, tab.export(out))
    assert (out / "RoiSet.zip").is_file() and (out / "suite2p").is_dir()
    assert not tab.result.params.imagej             # the run's own record is unchanged


def test_one_inspector_whichever_opens_first_and_after_it_is_closed(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication

    from napari_micromotion._qt.inspector import InspectorWidget
    from napari_micromotion.simulate import simulate

    viewer = make_napari_viewer()
    add_recording(viewer, simulate(n_frames=300, size=48, seed=5))

    def inspectors():
        return [w for w in viewer.window.dock_widgets.values() if isinstance(w, InspectorWidget)]

    viewer.window.add_plugin_dock_widget("napari-micromotion", "Traces and scores")   # before the workbench
    _, bench = viewer.window.add_plugin_dock_widget("napari-micromotion", "Workbench")
    assert len(inspectors()) == 1
    tab = bench.tools["motion"]
    tab.form.set_values({"threads": 1})
    wait_task(qtbot, tab.run())
    assert inspectors()[0].page("Motion") is not None
    inspectors()[0].parent().destroyOnClose()              # the user closes its dock with its x
    QApplication.processEvents()
    wait_task(qtbot, tab.run())                             # the next run brings it back, with its page
    assert len(inspectors()) == 1 and inspectors()[0].page("Motion") is not None


def test_the_synthesized_flag_goes_with_the_interpolated_layer(make_napari_viewer, qtbot, qt_sim):
    from napari_micromotion._qt.interpolate_view import grid, text_overlay

    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["interpolate"]
    tab.form.set_values({"factor": 2, "method": "linear"})
    wait_task(qtbot, tab.run())
    view = tab.view
    viewer.dims.set_current_step(0, 3)
    assert text_overlay(viewer).visible and "SYNTHESIZED" in text_overlay(viewer).text
    viewer.layers.remove(view.layer())
    viewer.dims.set_current_step(0, 5)
    assert not text_overlay(viewer).visible
    view.side_button.setChecked(True)                     # nothing to show: refused, not left pressed
    assert not view.side_button.isChecked() and not grid(viewer).enabled


def test_a_motion_beat_row_moves_the_slider_on_the_video_motion_ran_on(make_napari_viewer, qtbot):
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_micromotion.simulate import simulate

    viewer = make_napari_viewer()
    trans, _ = add_recording(viewer, simulate(n_frames=300, size=48, seed=2))
    viewer.add_image(np.asarray(trans.data), name="copy2x", scale=(2.0, *trans.scale[1:]),
                     metadata={"napari_micromotion": {"fps": 50.0}})      # the same video on a half-speed axis
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["motion"]
    tab.form.set_values({"threads": 1})
    tab.layer_combo.setCurrentText("copy2x")
    wait_task(qtbot, tab.run())
    view = tab.view
    row = view.rows()[1]
    view.table.selectRow(1)
    QApplication.processEvents()
    peak = int(round(row["peak_time_s"] * 50))
    assert bench.session.slider_frame(viewer.layers["copy2x"]) == peak and view.current_frame == peak


def test_a_short_plot_canvas_draws_one_axis(make_napari_viewer, qtbot, qt_sim):
    """In a small window the Motion page's displacement and speed labels overlapped; a short canvas draws one axis
    and draws again with both when it grows."""
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    tab = dock_all(viewer)["Workbench"].tools["motion"]
    tab.form.set_values({"threads": 1})
    wait_task(qtbot, tab.run())
    view = tab.view
    for height_px, n_axes in ((150, 1), (400, 2)):
        view.figure.set_size_inches(6, height_px / view.figure.dpi)   # what the canvas' resize does
        view._on_resize()
        assert len(view.panel.axes) == n_axes, (height_px, view.figure.get_figheight() * view.figure.dpi)


def test_a_tool_refuses_an_roi_off_the_frames_before_its_worker_starts(make_napari_viewer, qt_sim):
    import numpy as np

    viewer = make_napari_viewer()
    _, rois = add_recording(viewer, qt_sim)
    px = float(rois.scale[-1])
    rois.add_polygons([np.array([[200.0, 200.0], [200.0, 210.0], [210.0, 210.0]]) * px])   # far off the 48 px frame
    features = rois.features.copy()
    features.loc[features.index[-1], "name"] = "far"
    rois.features = features
    tab = dock_all(viewer)["Workbench"].tools["motion"]
    assert tab.run() is None and not tab.running
    assert "'far' lies outside the 48 x 48 px frame" in tab.status.text()
