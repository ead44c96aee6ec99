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
