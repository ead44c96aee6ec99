"""The workbench's Blur flow tab: runs on the frame under the time slider, shows vectors, v_z and validity.

``MICROMOTION_SCREENSHOTS=docs pytest tests/_qt/test_blurflow_tab.py`` also writes docs/workbench-blur-flow.png.
"""

from __future__ import annotations

import numpy as np

from napari_micromotion._layers import META_KEY

from .conftest import SHOTS, dock_all, save_screenshot, wait_task


def test_blur_flow_tab_runs_on_the_current_frame_and_places_its_layers(make_napari_viewer, qtbot):
    from napari_micromotion.blurflow.synth import two_zone_sample
    from napari_micromotion.tools import TOOLS

    frames = [two_zone_sample(seed=11, index=i, size_px=128).image for i in range(3)]
    stack = np.stack(frames).astype(np.float32)
    viewer = make_napari_viewer(show=bool(SHOTS))
    if SHOTS:
        viewer.window._qt_window.resize(1920, 1080)
    layer = viewer.add_image(stack, name="blurred", scale=(1.0, 0.65, 0.65), translate=(0.0, 10.0, 20.0))
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["blur_flow"]
    bench.show_tab(tab.tool.label.capitalize())
    tab.layer_combo.setCurrentText("blurred")
    viewer.dims.set_current_step(0, 2)
    task = tab.run()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    assert tab.frame == 2
    expected = TOOLS["blur_flow"].run(frames[2].astype(np.float32))
    np.testing.assert_allclose(tab.result.flow, expected.flow, atol=1e-4)
    mine = [la for la in viewer.layers if la.metadata.get(META_KEY, {}).get("tool") == "blur_flow"]
    assert sorted(la._type_string for la in mine) == ["image", "image", "vectors"]
    for la in mine:   # 2D results sit on the input's pixels (its last two axes' scale and offset)
        np.testing.assert_allclose(la.scale, layer.scale[-2:])
        np.testing.assert_allclose(la.translate, layer.translate[-2:])
    vectors = next(la for la in mine if la._type_string == "vectors")
    centres = vectors.data[:, 0] + vectors.data[:, 1] / 2
    assert len(vectors.data) > 10 and np.all((centres >= 0) & (centres < 128))
    validity = next(la for la in mine if "validity" in la.name)
    assert validity.data.min() >= 0 and validity.data.max() <= 1
    # a second run replaces the layers instead of adding more
    viewer.dims.set_current_step(0, 0)
    wait_task(qtbot, tab.run())
    again = [la for la in viewer.layers if la.metadata.get(META_KEY, {}).get("tool") == "blur_flow"]
    assert len(again) == 3 and tab.frame == 0
    if SHOTS:
        save_screenshot(viewer, qtbot, "workbench-blur-flow.png")


def test_the_layers_pixel_size_is_used_when_the_form_leaves_it_empty(make_napari_viewer, qtbot):
    """The tab took every image at the model's 0.65 um per pixel, whatever the layer's scale said (the command line
    now takes the file's)."""
    from napari_micromotion.blurflow.synth import two_zone_sample
    from napari_micromotion.tools import TOOLS
    from napari_micromotion.tools.blurflow import BlurFlowToolParams

    from .conftest import n_notifications, notifications_since

    image = two_zone_sample(seed=11, index=0, size_px=96).image.astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="coarse", scale=(1.3, 1.3))
    tab = dock_all(viewer)["Workbench"].tools["blur_flow"]
    tab.layer_combo.setCurrentText("coarse")
    n0 = n_notifications()
    task = tab.run()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    assert tab.result.params.pixel_size_um == 1.3
    np.testing.assert_allclose(tab.result.flow, TOOLS["blur_flow"].run(image, BlurFlowToolParams(pixel_size_um=1.3)).flow,
                               atol=1e-4)
    assert any("pixel size of 'coarse', 1.3" in m for _, m in notifications_since(n0))
