"""A method registered from a test file shows up in the napari form, the result layers and the score table."""

from __future__ import annotations

from napari_micromotion.methods import METHODS

from ..test_registry import ToyEnvelopeParams, ToyParams
from .conftest import add_recording, dock_all, run_analysis_widget


def test_toy_method_in_the_analysis_form_and_score_table(make_napari_viewer, qtbot, qt_sim):
    METHODS.register(ToyEnvelopeParams)
    try:
        viewer = make_napari_viewer()
        add_recording(viewer, qt_sim, rois=True)
        widgets = dock_all(viewer)
        analysis = widgets["Analysis"]
        box = analysis.method_boxes["toy_envelope_p"]
        assert box.text() == "toy envelope (parameters)" and "Rectified" in box.toolTip()
        editor = analysis.editors["toy_envelope_p.power"]
        assert "raised to this power" in editor.widget.toolTip()
        assert "toy envelope (parameters)" in analysis.form.sections
        analysis.set_methods(("bandpass", "toy_envelope_p"))
        analysis.set_value("toy_envelope_p.power", 2.0)
        analysis.set_value("n_surrogates", 19)
        assert analysis.params().method("toy_envelope_p") == ToyParams(power=2.0)
        task = run_analysis_widget(qtbot, analysis)
        assert task.error is None, task.error
        res = analysis.session.results
        assert res.methods == ["bandpass", "toy_envelope_p"]
        assert "score: toy envelope (parameters)" in [la.name for la in viewer.layers]
        table = widgets["Score table"]
        shown = {table.table.item(i, 2).text() for i in range(table.table.rowCount())}
        assert shown == {"band-pass", "toy envelope (parameters)"}
        assert table.table.rowCount() == 2 * len(res.roi_names)
    finally:
        METHODS.unregister("toy_envelope_p")


def test_an_image_tool_runs_on_the_frame_under_the_time_slider(make_napari_viewer, qtbot, qt_sim):
    from dataclasses import dataclass

    import numpy as np

    from napari_micromotion.methods.base import NoParams
    from napari_micromotion.progress import Progress
    from napari_micromotion.tools import TOOLS
    from napari_micromotion.tools.base import Tool, ToolResult

    from .conftest import wait_task

    @dataclass
    class RowsResult(ToolResult):
        rows: np.ndarray | None = None

    class RowMeans(Tool):
        name = "toy_rows"
        label = "row means"
        description = "each row's mean of one image (a test tool)"
        kind = "image -> profile"
        input = "image"
        Params = NoParams
        result_type = RowsResult

        def iter_run(self, image, params, *, rois=()):
            yield Progress("rows", 1.0, "done")
            return RowsResult(params=params, rows=np.asarray(image).mean(axis=1))

    TOOLS.register(RowMeans)
    try:
        viewer = make_napari_viewer()
        trans, _ = add_recording(viewer, qt_sim, rois=False)
        viewer.add_image(np.asarray(qt_sim.transmission[0], np.float32), name="one image")
        tab = dock_all(viewer)["Workbench"].tools["toy_rows"]
        names = [tab.layer_combo.itemText(i) for i in range(tab.layer_combo.count())]
        assert "one image" in names and "transmission" in names   # single images are offered too
        viewer.dims.set_current_step(0, 7)
        tab.layer_combo.setCurrentText("transmission")
        wait_task(qtbot, tab.run())
        assert tab.frame == 7
        np.testing.assert_allclose(tab.result.rows, np.asarray(qt_sim.transmission[7], np.float32).mean(axis=1),
                                   rtol=1e-6)
    finally:
        TOOLS.unregister("toy_rows")
