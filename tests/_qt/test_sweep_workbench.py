"""The workbench sweep's findings: keys while an ROI layer is active, renamed candidates, the form's words in
warnings, kind colours on both themes, a failed training run, and the shared export guard."""

from __future__ import annotations

from types import SimpleNamespace

from .conftest import add_recording, dock_all, n_notifications, notifications_since


def test_a_second_export_is_refused_by_the_tools_and_the_results_alike(make_napari_viewer, qt_sim, tmp_path):
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    widgets = dock_all(viewer)
    tab, results_w = widgets["Workbench"].tools["motion"], widgets["Workbench"].results
    writing = SimpleNamespace(running=True)       # an export still being written
    tab.result = object()
    tab.export_task = writing
    results_w.session.results = object()
    results_w.export_task = writing
    for export in (lambda: tab.export(tmp_path / "a"), lambda: results_w.export_results(tmp_path / "b")):
        n0 = n_notifications()
        assert export() is None
        assert notifications_since(n0) == [("error", "An export is already being written; wait for it to finish.")]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

