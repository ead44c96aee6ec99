"""The workbench's Interpolate tool: run in the background, a time-stretched layer whose synthesized
frames are marked while scrubbing, and a side-by-side comparison with the original.

``MICROMOTION_SCREENSHOTS=docs pytest tests/_qt/test_interpolate_tab.py`` also writes docs/workbench-interpolate.png.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QApplication

from napari_micromotion._layers import META_KEY

from .conftest import SHOTS, add_recording, dock_all, save_screenshot, wait_task


def test_interpolate_tab_marks_synthesized_frames_and_compares(make_napari_viewer, qtbot, tmp_path):
    import torch

    from napari_micromotion.simulate import simulate

    torch.set_num_threads(1)
    sim = simulate(n_frames=24, size=96 if SHOTS else 48, seed=8, strong_px=3.0)
    viewer = make_napari_viewer(show=bool(SHOTS))
    if SHOTS:
        viewer.window._qt_window.resize(1920, 1080)
    add_recording(viewer, sim, rois=False)
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["interpolate"]
    bench.show_tab("Interpolate")
    assert bench.tabs.tabText(bench.tabs.currentIndex()) == "Tools" and bench.current_tab == "interpolate"
    tab.layer_combo.setCurrentText("transmission")
    tab.form.set_values({"factor": 3, "method": "learned", "finetune_epochs": 1, "steps_per_epoch": 4,
                         "max_heldout": 2, "threads": 1})
    task = tab.run()
    assert task is not None and task.running                       # in the background
    wait_task(qtbot, task)
    assert task.error is None, task.error
    mine = {la.name: la for la in viewer.layers if la.metadata.get(META_KEY, {}).get("tool") == "interpolate"}
    assert set(mine) == {"interpolated x3 (synthesized frames)", "interpolation uncertainty"}
    layer = mine["interpolated x3 (synthesized frames)"]
    src = viewer.layers["transmission"]
    data = np.asarray(layer.data)
    assert data.shape == ((24 - 1) * 3 + 1, *sim.transmission.shape[1:])
    assert np.array_equal(data[::3], np.asarray(src.data))
    assert layer.scale[0] == src.scale[0] / 3 and tuple(layer.scale[1:]) == tuple(src.scale[1:])   # lined up in time
    measured = layer.metadata[META_KEY]["measured"]
    assert measured[:4] == [True, False, False, True]
    # scrubbing: the overlay and the inspector say which frame is measured or synthesized
    from napari_micromotion._qt.interpolate_view import grid, text_overlay

    view = tab.view
    assert bench.inspector.pages.currentWidget() is view
    for j, word in ((3, "MEASURED"), (4, "SYNTHESIZED"), (5, "SYNTHESIZED"), (6, "MEASURED")):
        viewer.dims.set_point(0, j * layer.scale[0] + layer.translate[0])
        QApplication.processEvents()
        assert word in text_overlay(viewer).text and word in view.frame_label.text(), (j, text_overlay(viewer).text)
    assert text_overlay(viewer).visible
    assert "learned (fine-tuned)" in view.scores.text() and "PSNR" in view.scores.text()
    # side by side: the original and the interpolated video in napari's grid, other layers hidden
    view.side_button.setChecked(True)
    assert grid(viewer).enabled and src.visible and layer.visible
    assert all(not la.visible for la in viewer.layers if la not in (src, layer))
    assert "Charbonnier" in tab.loss_plot.title and len(tab.loss_plot.series.get("fine-tune", [])) >= 2
    if SHOTS:
        viewer.layers.selection.active = layer
        viewer.dims.set_point(0, 31 * layer.scale[0])
        save_screenshot(viewer, qtbot, "workbench-interpolate.png")
    view.side_button.setChecked(False)
    assert not grid(viewer).enabled and all(la.visible for la in (src,))
    export = tab.export(tmp_path / "interp-out")
    wait_task(qtbot, export)
    assert (tmp_path / "interp-out" / "synthesized.csv").is_file()
