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


def test_a_composite_roi_keeps_its_pieces_and_holes_in_napari(make_napari_viewer, qtbot, qt_sim, tmp_path):
    """A composite ROI (two pieces, one with a hole) loaded in the workbench kept only its main outline: napari showed,
    analysed and saved the ROI without its other pieces and its hole."""
    import json

    from napari_micromotion.rois import ROI, read_rois, write_rois

    def square(r0, c0, r1, c1):
        return [[r0, c0], [r0, c1], [r1, c1], [r1, c0]]

    pair = ROI(name="pair", kind="weak", polygon=square(4, 4, 24, 24),
               parts=[square(10, 10, 18, 18), square(30, 30, 40, 44)])
    plain = ROI(name="plain", kind="strong", polygon=square(28, 4, 40, 16))
    path = write_rois([pair, plain], tmp_path / "rois.json")
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim, rois=False)
    rw = dock_all(viewer)["ROIs"]
    layer = rw.load(path)
    assert len(layer.data) == 4 and list(layer.features["part"]) == [0, 1, 2, 0]
    assert rw.info.text().startswith("2 ROI(s)")
    session = rw.session
    built = session.build_rois(layer)
    assert [r.name for r in built] == ["pair", "plain"]
    np.testing.assert_allclose(built[0].parts[1], pair.parts[1], atol=1e-6)
    assert len(built[0].parts) == 2 and built[1].parts == ()
    # a new shape is an ROI of its own (the parts keep the composite's name)
    layer.add([np.array(square(42, 4, 46, 10), float)], shape_type="polygon")
    qtbot.wait(20)
    names = [str(v) for v in layer.features["name"]]
    assert names[:4] == ["pair", "pair", "pair", "plain"] and names[4] not in names[:4]
    assert len(session.build_rois(layer)) == 3
    # renaming the composite renames its outlines together; its kind follows too
    layer.selected_data = {0}
    rw.rename_selected("twin")
    rw.set_kind("silent")
    assert [str(v) for v in layer.features["name"]][:3] == ["twin"] * 3
    assert list(layer.features["kind"])[:3] == ["silent"] * 3
    out = rw.save(tmp_path / "back.json")
    back = {r.name: r for r in read_rois(out)}
    assert len(back["twin"].parts) == 2 and back["twin"].kind == "silent"
    assert json.loads(out.read_text())[0]["name"] == "twin"
