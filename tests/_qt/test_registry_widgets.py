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
