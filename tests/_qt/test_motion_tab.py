"""The workbench's Motion tab: run on the ROIs, the inspector's Motion page follows the viewer and exports.

``MICROMOTION_SCREENSHOTS=docs pytest tests/_qt/test_motion_tab.py`` also refreshes docs/workbench-motion.png.
"""

from __future__ import annotations

import csv

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_micromotion._layers import META_KEY

from .conftest import SHOTS, add_recording, dock_all, save_screenshot, wait_task


def test_motion_tab_shows_contraction_beats_and_follows_the_viewer(make_napari_viewer, qtbot, tmp_path):
    from napari_micromotion.simulate import simulate

    sim = simulate(n_frames=600, size=96, seed=2)
    viewer = make_napari_viewer(show=bool(SHOTS))
    if SHOTS:
        viewer.window._qt_window.resize(1920, 1080)
    add_recording(viewer, sim)
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["motion"]
    bench.show_tab("Motion")
    task = tab.run()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    # layers: the largest-displacement map and arrows that move with time
    mine = [la for la in viewer.layers if la.metadata.get(META_KEY, {}).get("tool") == "motion"]
    kinds = sorted(la._type_string for la in mine)
    assert kinds == ["image", "vectors"]
    vectors = next(la for la in mine if la._type_string == "vectors")
    assert vectors.data.shape[1:] == (2, 3) and len(np.unique(vectors.data[:, 0, 0])) == sim.params.n_frames
    # the inspector's Motion page: regions, a beat table, the trace
    inspector = bench.inspector
    view = tab.view
    assert inspector.pages.currentWidget() is view and inspector.pages.tabText(1) == "Motion"
    regions = [view.region_combo.itemText(i) for i in range(view.region_combo.count())]
    assert regions == [r.name for r in sim.rois]
    rows = view.rows()
    strong = [r for r in rows if r["roi"] == "strong"]
    assert len(strong) >= 4 and all(np.isfinite(r["peak_displacement_um"]) for r in strong)
    assert not [r for r in rows if r["roi"] == "silent"]
    # selecting a ROI in the viewer shows its trace; choosing a beat moves the time slider to its peak
    bench.session.select_roi("other")
    assert view.region == "other"
    draws = view.n_draws
    beat = next(i for i, r in enumerate(rows) if r["roi"] == "strong" and r["beat"] == 3)
    view.table.selectRow(beat)
    QApplication.processEvents()
    peak_frame = int(round(strong[2]["peak_time_s"] * sim.params.fps))
    assert viewer.dims.current_step[0] == peak_frame and view.region == "strong" and view.n_draws > draws
    assert view.current_frame == peak_frame
    marker = view.panel.markers[0].get_xdata()[0]
    assert abs(marker - peak_frame / sim.params.fps) < 1e-9
    # exports: the plotted trace and the beat table
    out = view.export_csv(tmp_path / "trace.csv")
    with open(out) as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == sim.params.n_frames and "strong/displacement_um" in table[0]   # as in contraction.csv
    out = view.export_table(tmp_path / "beats.csv")
    assert len(out.read_text().splitlines()) == len(rows) + 1
    assert view.save_figure(tmp_path / "contraction.png").stat().st_size > 10_000
    if SHOTS:
        inspector.show_page("Motion")
        viewer.dims.set_current_step(0, peak_frame)
        save_screenshot(viewer, qtbot, "workbench-motion.png")
