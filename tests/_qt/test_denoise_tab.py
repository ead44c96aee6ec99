"""The workbench's Denoise tab: train in the background with a live loss plot, denoised/uncertainty layers,
ROI traces with their corridor in the inspector.

``MICROMOTION_SCREENSHOTS=docs pytest tests/_qt/test_denoise_tab.py`` also writes docs/workbench-denoise.png.
"""

from __future__ import annotations

import csv

import numpy as np

from napari_micromotion._layers import META_KEY

from .conftest import SHOTS, add_recording, dock_all, save_screenshot, wait_task


def test_denoise_tab_trains_shows_layers_and_corridors(make_napari_viewer, qtbot, tmp_path):
    import torch

    from napari_micromotion.simulate import simulate

    torch.set_num_threads(1)
    sim = simulate(n_frames=160, size=48, seed=6, photons_per_pixel=20, clean=True)
    viewer = make_napari_viewer(show=bool(SHOTS))
    if SHOTS:
        viewer.window._qt_window.resize(1920, 1080)
    add_recording(viewer, sim)
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["denoise"]
    bench.show_tab("Denoise")
    assert bench.tabs.tabText(bench.tabs.currentIndex()) == "Tools" and bench.current_tab == "denoise"
    tab.layer_combo.setCurrentText("fluorescence")
    tab.form.set_values({"epochs": 3, "steps_per_epoch": 15, "patch_px": 48, "threads": 1, "mc_passes": 2,
                         "samples": 50})
    task = tab.run()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    # the live loss plot received the training reports
    assert len(tab.loss_plot.series.get("train denoiser", [])) >= 3 and not tab.loss_plot.isHidden()
    # layers: denoised and uncertainty, the input's shape, closer to the truth than the raw frames
    mine = {la.name: la for la in viewer.layers if la.metadata.get(META_KEY, {}).get("tool") == "denoise"}
    assert set(mine) == {"denoised", "uncertainty"}
    fl = viewer.layers["fluorescence"]
    den = np.asarray(mine["denoised"].data)
    assert den.shape == sim.fluorescence.shape and tuple(mine["denoised"].scale) == tuple(fl.scale)
    clean = sim.fluorescence_clean
    assert np.mean((den - clean) ** 2) < 0.5 * np.mean((sim.fluorescence - clean) ** 2)
    assert np.all(np.asarray(mine["uncertainty"].data) > 0)
    # the inspector's Denoise page: every ROI, its corridor around the denoised trace, following the selection
    view = tab.view
    assert bench.inspector.pages.currentWidget() is view
    regions = [view.region_combo.itemText(i) for i in range(view.region_combo.count())]
    assert regions == [r.name for r in sim.rois]
    bench.session.select_roi("strong")
    assert view.region == "strong" and view.n_draws >= 1
    # an ROI drawn after the run: named as such, and the page keeps the region it shows
    from .conftest import n_notifications, notifications_since

    n0 = n_notifications()
    bench.session.roi_selected.emit("drawn later")
    assert view.region == "strong" and "was drawn or renamed after this denoising run" in notifications_since(n0)[-1][1]
    # the trace's marker follows the denoised layer's own frame under the time slider, also when that
    # layer is placed on another time scale than the recording
    viewer.dims.set_point(0, float(fl.translate[0]) + 40 * float(fl.scale[0]))
    assert view.current_frame == 40
    mine["denoised"].scale = (2 * float(fl.scale[0]), *tuple(fl.scale)[1:])
    viewer.dims.set_point(0, float(fl.translate[0]) + 80 * float(fl.scale[0]))
    assert view.current_frame == 40
    mine["denoised"].scale = tuple(fl.scale)
    out = view.export_csv(tmp_path / "strong.csv")
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sim.params.n_frames
    assert all(float(r["lo90"]) <= float(r["denoised"]) <= float(r["hi90"]) for r in rows)
    assert all(float(r["combined_lo90"]) <= float(r["combined"]) <= float(r["combined_hi90"]) for r in rows)
    # export writes the command's folder
    export = tab.export(tmp_path / "denoise-out")
    wait_task(qtbot, export)
    assert (tmp_path / "denoise-out" / "denoised.tif").is_file()
    assert (tmp_path / "denoise-out" / "model.safetensors").is_file()
    if SHOTS:
        viewer.dims.set_current_step(0, 60)
        save_screenshot(viewer, qtbot, "workbench-denoise.png")
