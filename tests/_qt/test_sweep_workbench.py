"""The workbench sweep's findings: keys while an ROI layer is active, renamed candidates, the form's words in
warnings, kind colours on both themes, a failed training run, and the shared export guard."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from .conftest import add_recording, dock_all, n_notifications, notifications_since
from .test_cells_tab import fake_shipped  # noqa: F401 - the cell finder's stand-in classifier (a fixture)


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


def test_a_renamed_candidates_layer_is_kept_and_the_page_follows_the_new_run(make_napari_viewer):
    from napari_micromotion._layers import renamed_by_user

    from .test_cells_tab import fake_result, press, show_fake

    viewer = make_napari_viewer()
    tab, view = show_fake(viewer, fake_result(n=8))
    mine = viewer.layers["cell candidates"]
    mine.name = "my candidates"                      # the user keeps this run's candidates
    assert renamed_by_user(mine) and not renamed_by_user(viewer.layers["cells: mean image"])
    view.select(2, zoom=False)                       # the page follows the layer object, not its name
    assert view.layer() is mine and mine.selected_data == {2}
    again = fake_result(n=5, probs=[0.5, 0.6, 0.7, 0.8, 0.9])
    tab.result = again
    n0 = n_notifications()
    tab.show_result(again)
    assert tab.show_view(again) is view
    new = viewer.layers["cell candidates"]
    assert new is not mine and mine in viewer.layers            # the renamed layer is kept as it was
    assert len(mine.data) == 8 and len(new.data) == 5
    assert view.layer() is new and view.table.rowCount() == 5
    view.select(3, zoom=False)
    assert new.selected_data == {3} and mine.selected_data == {2}
    assert any("'my candidates'" in m and "keeps the earlier candidates" in m for _, m in notifications_since(n0))
    # the renamed layer's keys are its own again: A there is the shapes layer's "select all", no decision
    viewer.layers.selection.active = mine
    press(viewer, "a")
    assert not any(c.labelled_by == "user" for c in again.candidates)
    assert mine.selected_data == set(range(8))


def _contrast_ratio(a, b) -> float:
    """WCAG 2 contrast ratio of two RGB(A) colours (0-1 floats)."""
    import numpy as np

    def luminance(rgb):
        c = np.asarray(rgb, float)[:3]
        c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(c @ [0.2126, 0.7152, 0.0722])

    lo, hi = sorted((luminance(a), luminance(b)))
    return (hi + 0.05) / (lo + 0.05)


def test_every_kind_colour_reads_on_the_dark_and_the_light_theme():
    from napari.utils.colormaps.standardize_color import transform_color
    from napari.utils.theme import get_theme

    from napari_micromotion._layers import KIND_COLOURS
    from napari_micromotion.report import ROI_COLOURS
    from napari_micromotion.rois import KINDS

    assert set(KIND_COLOURS) == set(KINDS) and ROI_COLOURS == KIND_COLOURS      # the reports draw the same colours
    for kind, colour in ROI_COLOURS.items():                                      # ... on white paper
        assert _contrast_ratio(transform_color(colour)[0], (1, 1, 1)) >= 3.0, kind
    assert _contrast_ratio((1, 1, 1), (0, 0, 0)) == 21.0
    for theme in ("dark", "light"):
        background = transform_color(get_theme(theme).background.as_hex())[0]
        for kind, colour in KIND_COLOURS.items():
            ratio = _contrast_ratio(transform_color(colour)[0], background)
            assert ratio >= 3.0, f"{kind} {colour} on the {theme} theme: {ratio:.2f}"


def test_a_failed_training_run_takes_its_loss_plot_away_and_says_it_failed(make_napari_viewer, qtbot, qt_sim,
                                                                            monkeypatch):
    from napari_micromotion.errors import MicromotionError
    from napari_micromotion.progress import Progress

    from .conftest import wait_task

    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim)
    tab = dock_all(viewer)["Workbench"].tools["denoise"]
    losses = []

    def trains_then_fails(rec, params, rois=()):
        for k in range(losses.pop() if losses else 0):
            yield Progress("train denoiser", (k + 1) / 10, values={"loss": 1.0 / (k + 1)})
        raise MicromotionError("the network's loss became NaN at epoch 3; lower the learning rate.")

    monkeypatch.setattr(tab.tool, "iter_run", trains_then_fails)
    for n_losses in (3, 0):      # a run that trained a while; one that failed before its first loss value
        losses.append(n_losses)
        shown = []
        task = tab.run()
        assert task is not None, tab.status.text()
        task.progressed.connect(lambda *_: shown.append(not tab.loss_plot.isHidden()))
        if n_losses == 0:        # what the earlier run left: the plot, which this run empties
            assert tab.loss_plot.series == {}
        n0 = n_notifications()
        wait_task(qtbot, task)
        assert shown == [True] * n_losses           # the live loss while it trained
        assert tab.loss_plot.isHidden() and tab.loss_plot.series == {}
        assert tab.status.text().startswith("Denoise failed: The network's loss became NaN")
        assert tab.progress.value() == 0 and tab.run_button.isEnabled()
        assert any("NaN" in m for _, m in notifications_since(n0))
        tab.loss_plot.setVisible(True)     # as after a run that showed its loss


def test_the_decision_keys_work_while_an_roi_layer_was_active_and_leave_its_own_keys(make_napari_viewer, qtbot,
                                                                                     qt_sim):
    from qtpy.QtCore import Qt

    from .test_cells_tab import fake_result, press, show_fake

    viewer = make_napari_viewer(show=True)
    _, rois = add_recording(viewer, qt_sim)
    tab, view = show_fake(viewer, fake_result(n=8))
    candidates = viewer.layers["cell candidates"]
    # curating starts again (a new run) while the ROI layer is the active one
    viewer.layers.selection.active = rois
    again = fake_result(n=8, probs=[0.1, 0.45, 0.9, 0.55, 0.3, 0.7, 0.52, 0.02])
    tab.result = again
    n0 = n_notifications()
    tab.show_result(again)
    tab.show_view(again)
    assert viewer.layers["cell candidates"] is candidates and viewer.layers.selection.active is candidates
    assert any("'cell candidates' is the active layer now" in m for _, m in notifications_since(n0))
    first = view.current
    press(viewer, "a")
    assert (again.candidates[first].label, again.candidates[first].labelled_by) == ("cell", "user")
    # the user goes back to drawing ROIs: the ROI layer's own A and R stay its own, and the page says so
    viewer.layers.selection.active = rois
    assert view.keys_taken() == ["a", "r"] and not view.keys_hint.isHidden()
    assert "'ROIs' keeps A and R for drawing" in view.keys_hint.text()
    second = view.current
    press(viewer, "r")
    assert rois.mode == "add_rectangle" and again.candidates[second].labelled_by == "classifier"
    press(viewer, "a")
    assert rois.selected_data == set(range(len(rois.data)))
    press(viewer, "n")                              # N is nobody else's: the next undecided candidate
    third = view.current
    assert third != second
    # on the page the keys are the page's, whatever layer is active
    rois.mode = "pan_zoom"
    rois.selected_data = set()
    window = viewer.window._qt_window
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    view.table.setFocus()
    qtbot.waitUntil(view.table.hasFocus, timeout=5000)
    qtbot.keyClick(view.table, Qt.Key.Key_R)
    assert (again.candidates[third].label, again.candidates[third].labelled_by) == ("not_cell", "user")
    assert rois.mode == "pan_zoom" and rois.selected_data == set()
    viewer.layers.selection.active = candidates
    assert view.keys_taken() == [] and view.keys_hint.isHidden()


def test_warnings_in_the_gui_name_the_forms_settings_not_the_command_line_flags(make_napari_viewer, qtbot, qt_sim):
    """Two real warnings of the core that name flags: an analysis on synthesized frames (--use-interpolated)."""
    from napari_micromotion._layers import META_KEY
    from napari_micromotion._qt.forms import flag_labels, in_gui_words
    from napari_micromotion.tools.denoise import DenoiseParams

    from .conftest import run_analysis_widget

    labels = flag_labels(DenoiseParams)
    assert labels["--use-interpolated"] == "use synthesized frames" and labels["--fps"] == "frame rate"
    assert labels["--model"] == "saved model" and flag_labels()["--passband"] == "band-pass low edge and band-pass high edge"
    assert in_gui_words("a.tif does not record its frame rate; give it with --fps.") == \
        "a.tif does not record its frame rate; set 'frame rate'."
    assert in_gui_words("/data/run--2 and --no-such-flag stay") == "/data/run--2 and --no-such-flag stay"

    viewer = make_napari_viewer()
    trans, _ = add_recording(viewer, qt_sim)
    for layer in viewer.layers:   # a video the interpolate tool made: every other frame synthesized
        meta = layer.metadata[META_KEY]
        if "provenance" in meta:
            meta["provenance"] = {**meta["provenance"], "synthesized_frames": {
                "channel": "transmission", "factor": 2, "synthesized_frames": qt_sim.transmission.shape[0] // 2}}
    widgets = dock_all(viewer)
    analysis = widgets["Analysis"]
    analysis.set_methods(("bandpass",))
    analysis.set_value("n_surrogates", 19)
    analysis.set_value("use_interpolated", True)
    n0 = n_notifications()
    task = run_analysis_widget(qtbot, analysis)
    assert task.error is None, task.error
    core = [w for w in analysis.session.results.warnings if "--" in w]
    assert core and any("(--use-interpolated)" in w for w in core)     # the core's words: the command line's
    shown = [m for s, m in notifications_since(n0) if s == "warning"]
    assert any("('use synthesized frames')" in m for m in shown), shown
    assert not any("--" in m for m in shown), shown
    page = widgets["Workbench"].results.warnings.text()
    assert "'use synthesized frames'" in page and "--" not in page


@pytest.mark.usefixtures("fake_shipped")
def test_the_cell_finders_warning_names_no_flag(make_napari_viewer, qtbot, tmp_path):
    """The second real warning: accepted cells the analysis named in 'kinds from analysis' did not score.  It said
    'run analyze with --rois cells.json', which the GUI's translation made "run analyze with 'ROI layer' cells.json":
    it now says what to do in words both read."""
    from napari_micromotion.simulate import simulate

    from .conftest import wait_task

    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "roi_scores.csv").write_text("roi,method,score,p_value\nnobody,bandpass,0.8,0.01\n")
    viewer = make_napari_viewer()
    add_recording(viewer, simulate(n_frames=300, size=96, seed=1), rois=False)
    tab = dock_all(viewer)["Workbench"].tools["cells"]
    tab.form.set_values({"threads": 1, "kinds_from": str(folder)})
    n0 = n_notifications()
    task = tab.run()
    assert task is not None, tab.status.text()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    assert not any("--" in w for w in tab.result.warnings)
    shown = [m for s, m in notifications_since(n0) if s == "warning"]
    assert any("no score in" in m and "with these cells as its ROIs" in m for m in shown), shown
    assert not any("--" in m for m in shown), shown


def test_the_score_tables_p_values_use_the_shifts_that_fit(make_napari_viewer, qt_sim):
    """On a short validation range only a few time shifts exist (p >= 1/(n + 1)); the table read p against the
    surrogates asked for, and showed a floor p as 'p = 0.017' instead of '<= 0.017'."""
    from napari_micromotion.pipeline import AnalysisParams, run_analysis
    from napari_micromotion.report import surrogates_used

    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim, rois=True)
    widgets = dock_all(viewer)
    res = run_analysis(qt_sim.recording(), qt_sim.rois, AnalysisParams(methods=("bandpass",), validation=(0, 120),
                                                                        n_surrogates=199))
    n = surrogates_used(res)
    assert n < 199
    widgets["Analysis"].session.set_results(res)
    table = widgets["Score table"]
    floor = next(r for r in res.roi_scores if r.p_value <= 1 / (n + 1) * (1 + 1e-6))
    assert table.text_of(floor, "p_value") == f"\u2264 {1 / (n + 1):.2g}"
