"""The whole interactive flow in a real viewer: sample -> ROIs -> Run (band-pass, 1D CNN, 3D) -> layers, traces, table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qtpy.QtCore import QTimer

from napari_micromotion._layers import META_KEY
from napari_micromotion.pipeline import AnalysisParams, run_analysis

from .conftest import (
    TINY_CNN1D,
    TINY_CNN3D,
    add_recording,
    dock_all,
    n_notifications,
    notifications_since,
    run_analysis_widget,
    square,
    wait_task,
)


def _draw_rois(widgets, viewer):
    """Draw two ROIs programmatically through the ROIs widget (one strong, one silent)."""
    rw = widgets["ROIs"]
    layer = rw.new_layer()
    rw.set_kind("strong")
    layer.add_polygons([square(18, 18, 10, 10)])
    rw.set_kind("silent")
    layer.add_rectangles([square(2, 30, 8, 12)])
    layer.selected_data = set()
    return layer


def test_bandpass_run_through_widgets(make_napari_viewer, qtbot, qt_sim, tmp_path, monkeypatch):
    from napari.utils import progress

    import napari_micromotion._sample_data as sample

    # the plugin's sample (smaller: the same simulation as qt_sim), without its ROIs: we draw our own
    monkeypatch.setattr(sample, "SAMPLE", {"n_frames": 1000, "size": 48, "seed": 5})
    viewer = make_napari_viewer()
    viewer.open_sample("napari-micromotion", "simulated")
    from napari_micromotion._qt._state import get_session

    wait_task(qtbot, get_session(viewer).sample_task)
    trans = viewer.layers["transmission"]
    np.testing.assert_array_equal(trans.data, qt_sim.transmission)
    viewer.layers.remove("ROIs")
    widgets = dock_all(viewer)
    rois = _draw_rois(widgets, viewer)
    assert list(rois.features["name"]) == ["roi1", "roi2"]
    assert list(rois.features["kind"]) == ["strong", "silent"]

    analysis = widgets["Analysis"]
    assert analysis.methods() == ("bandpass",)
    defaults = analysis.params()
    assert defaults == AnalysisParams(methods=("bandpass",))  # the form shows the core's (paper's) defaults
    analysis.set_value("n_surrogates", 49)

    # the viewer stays responsive while the worker runs: a Qt timer keeps ticking
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    bars = []  # napari progress bars (activity dock), one per stage
    progress._all_instances.events.changed.connect(lambda e: bars.extend(p.desc for p in e.added))
    task = run_analysis_widget(qtbot, analysis)
    timer.stop()
    assert task.error is None, task.error
    assert len(ticks) >= 3
    assert {e.stage for e in task.events} >= {"ground truth", "band-pass", "roi scores"}
    # one bar per stage, in order; stages that end while napari is still creating a bar are not given one
    stages = [f"micromotion: {s}" for s in dict.fromkeys(e.stage for e in task.events if e.stage != "done")]
    assert bars and bars[0] == "micromotion: ground truth"
    assert bars == [s for s in stages if s in bars]
    assert not [p for p in progress._all_instances if p.desc.startswith("micromotion")]  # all closed

    session = analysis.session
    res = session.results
    assert res is not None and res.methods == ["bandpass"]
    assert res.roi_names == ["roi1", "roi2"] and res.roi_kinds == ["strong", "silent"]
    # the same numbers as the core run directly on the same inputs
    ref = run_analysis(qt_sim.recording(), session.build_rois(rois), analysis.params())
    np.testing.assert_allclose(res.score_maps["bandpass"], ref.score_maps["bandpass"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.roi_traces[("roi1", "bandpass")], ref.roi_traces[("roi1", "bandpass")], rtol=1e-5)

    # layers: score map (magma, additive), delay map, still frame, placed like the transmission
    names = [layer.name for layer in viewer.layers]
    for name in ("still frame", "score: band-pass", "delay: band-pass", "fluorescence activity",
                 "motion: band-pass RMS (dI/I)"):
        assert name in names
    assert not viewer.layers["motion: band-pass RMS (dI/I)"].visible   # with scores, the score map is shown
    assert names[-1] == rois.name  # ROI outlines stay on top
    score = viewer.layers["score: band-pass"]
    assert score.data.shape == (48, 48)
    np.testing.assert_array_equal(score.data, res.score_maps["bandpass"])
    assert score.colormap.name == "magma" and score.blending == "additive"
    chance = res.chance_scores["bandpass"]
    assert 0 < chance < 0.5   # the scale starts at the chance level: pixels below it stay dark
    assert score.contrast_limits[0] == pytest.approx(chance)
    assert score.contrast_limits[1] == pytest.approx(float(res.score_maps["bandpass"].max()))
    assert score.visible and score.colorbar.visible
    np.testing.assert_allclose(score.scale, trans.scale[1:])
    meta = score.metadata[META_KEY]
    assert meta["role"] == "result" and meta["result"] == "score" and meta["method"] == "bandpass"
    assert meta["parameters"]["n_surrogates"] == 49 and meta["parameters"]["methods"] == ["bandpass"]
    assert meta["validation_frames"] == list(res.validation) and meta["passband"]["low_hz"] == 2.0
    assert meta["provenance"]["run"] == 1 and meta["provenance"]["transmission_layer"] == "transmission"
    assert meta["provenance"]["rois_layer"] == rois.name
    delay = viewer.layers["delay: band-pass"]
    assert delay.contrast_limits == [-1.0, 1.0] and not delay.visible
    above = res.score_maps["bandpass"] > chance          # delays only where the score beats chance
    np.testing.assert_array_equal(delay.data[above], res.lag_maps["bandpass"][above])
    assert np.isnan(delay.data[~above]).all() and above.any() and (~above).any()

    # traces: one region over the whole recording, the region's calcium, the whole field's and the method
    traces = widgets["Traces"]
    assert traces.region == "roi1" and traces.selected_methods() == ["bandpass"]
    cols = traces.panel.columns
    raw = res.roi_traces[("roi1", "bandpass")].astype(np.float64)
    np.testing.assert_allclose(cols["roi1/bandpass (z)"], (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-6)
    own = res.roi_truth["roi1"].astype(np.float64)
    np.testing.assert_allclose(cols["roi1/calcium (z)"], (own - own.mean()) / own.std(), rtol=1e-5, atol=1e-6)
    assert "whole field/calcium (z)" in cols          # what the score is computed against, labelled as such
    assert traces.panel.frames.size == res.n_frames   # the whole recording
    top, motion = traces.panel.axes
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert labels[:2] == ["calcium, roi1", "calcium, whole field"] and "band-pass (squared)" in labels
    assert top.get_ylabel() == "z-score" and motion.get_xlabel() == "time (s)"
    assert "r = " in top.get_title(loc="left") and "p \u2264 0.02" in top.get_title(loc="left")   # floor 1/50
    # the cells contract: the default (auto) takes the transmission's beats from contraction
    assert "contraction beats" in motion.get_title(loc="left")
    # and the trace they were found in, on a second axis in px
    np.testing.assert_allclose(cols["roi1/contraction (mean displacement in px)"], res.contraction_traces["roi1"],
                               rtol=1e-6)
    assert any(ax.get_ylabel() == "contraction (px)" for ax in motion.figure.axes)
    # another region: the table row and the trace follow
    session.select_roi("roi2")
    assert traces.region == "roi2"
    assert {table_row for table_row in widgets["Score table"].selected_rows()} == {
        i for i, r in enumerate(widgets["Score table"].rows()) if r["roi"] == "roi2"}
    # export of the plotted numbers and the figure (publication size, on white)
    out_csv = traces.export_csv(tmp_path / "plotted.csv")
    table = np.genfromtxt(out_csv, delimiter=",", names=True)
    raw2 = res.roi_traces[("roi2", "bandpass")].astype(np.float64)
    np.testing.assert_allclose(table["roi2bandpass_z"], (raw2 - raw2.mean()) / raw2.std(), rtol=1e-5, atol=1e-5)
    assert table["frame"][0] == 0 and len(table) == res.n_frames
    for ext in ("png", "svg", "pdf"):
        p = traces.save_figure(tmp_path / f"traces.{ext}")
        assert p.is_file() and p.stat().st_size > 1000
    import imageio.v3 as iio

    png = iio.imread(tmp_path / "traces.png")
    assert png.shape[1] == 2160 and (png[0, 0, :3] == 255).all()   # 7.2 in at 300 dpi, white

    # score table: one row per ROI and method, sortable, exportable
    table_w = widgets["Score table"]
    rows = table_w.rows()
    assert len(rows) == 2
    assert {(r["roi"], r["method"]) for r in rows} == {(r["roi"], r["method"]) for r in res.roi_scores}
    table_w.sort_by("score", descending=True)
    scores = [r["score"] for r in table_w.rows()]
    assert scores == sorted(scores, reverse=True)
    table_w.sort_by("score", descending=False)
    assert [r["score"] for r in table_w.rows()] == sorted(scores)
    out = table_w.export_csv(tmp_path / "scores.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "roi,kind,method,score,lag_s,p_value,n_pixels" and len(lines) == 3

    # re-running updates layers by name rather than piling up copies
    n_layers = len(viewer.layers)
    score_layer = viewer.layers["score: band-pass"]
    analysis.set_value("high_hz", 10.0)
    task = run_analysis_widget(qtbot, analysis)
    assert task.error is None
    assert len(viewer.layers) == n_layers
    assert viewer.layers["score: band-pass"] is score_layer
    meta = score_layer.metadata[META_KEY]
    assert meta["provenance"]["run"] == 2 and meta["parameters"]["high_hz"] == 10.0
    np.testing.assert_array_equal(score_layer.data, session.results.score_maps["bandpass"])
    assert [la.name for la in viewer.layers].count("score: band-pass") == 1

    # results export: the CLI's layout, with the napari provenance in run.json
    results_w = widgets["Results"]
    task = results_w.export_results(tmp_path / "export")
    wait_task(qtbot, task)
    assert task.error is None
    folder = tmp_path / "export"
    for rel in ("scores/bandpass.tif", "lags/bandpass.tif", "traces.csv", "roi_scores.csv", "run.json", "report.png"):
        assert (folder / rel).is_file(), rel
    run = json.loads((folder / "run.json").read_text())
    assert run["parameters"]["high_hz"] == 10.0 and run["napari"]["run"] == 2
    # exporting again into the same folder without overwrite: a notification, the folder untouched
    before = (folder / "run.json").read_text()
    n0 = n_notifications()
    task = results_w.export_results(folder)
    wait_task(qtbot, task)
    assert task.result is None and "exists" in task.error
    assert any(sev == "error" and "exists" in msg for sev, msg in notifications_since(n0))
    assert (folder / "run.json").read_text() == before


def test_cnn_and_3d_through_widgets(make_napari_viewer, qtbot, qt_sim):
    """1D CNN and 3D network: score maps, weight layers per ROI (Fig. 5), uncertainty band, time marker."""
    viewer = make_napari_viewer()
    trans, rois = add_recording(viewer, qt_sim, rois=True)
    widgets = dock_all(viewer)
    assert widgets["ROIs"].layer is rois
    # keep two ROIs: strong and silent
    rois.selected_data = {1, 3}
    rois.remove_selected()
    assert list(rois.features["name"]) == ["strong", "silent"]

    analysis = widgets["Analysis"]
    analysis.set_methods(("bandpass", "cnn1d", "cnn3d"))
    analysis.set_params(AnalysisParams(methods=("bandpass", "cnn1d", "cnn3d"), n_surrogates=19, device="cpu",
                                       method_params={"cnn1d": TINY_CNN1D, "cnn3d": TINY_CNN3D}))
    params = analysis.params()
    assert params.cnn1d == TINY_CNN1D and params.cnn3d == TINY_CNN3D and params.device == "cpu"
    task = run_analysis_widget(qtbot, analysis)
    assert task.error is None, task.error
    stages = {e.stage for e in task.events}
    assert "train cnn1d" in stages and "predict 1D CNN" in stages and any(s.startswith("cnn3d") for s in stages)
    res = analysis.session.results
    assert set(res.score_maps) == {"bandpass", "cnn1d"}

    cnn = viewer.layers["score: 1D CNN"]
    np.testing.assert_array_equal(cnn.data, res.score_maps["cnn1d"])
    best = res.best_method(with_map=True)   # the map of the method with the best ROI scores is shown, alone
    assert [m for m in ("bandpass", "cnn1d") if viewer.layers[f"score: {'1D CNN' if m == 'cnn1d' else 'band-pass'}"]
            .visible] == [best]
    assert cnn.metadata[META_KEY]["parameters"]["cnn1d"]["epochs"] == 1
    # one shared upper end of the colour scale; each map starts at its own chance level
    assert viewer.layers["score: band-pass"].contrast_limits[1] == cnn.contrast_limits[1]
    assert cnn.contrast_limits[0] == pytest.approx(res.chance_scores["cnn1d"])

    # 3D weights (Fig. 5): one layer per feature with every ROI's weights at its place, each ROI on its own
    # symmetric scale (divided by its largest weight), transparent elsewhere; hidden until asked for
    for k in (1, 2, 3):
        layer = viewer.layers[f"dense weights [{k}]"]
        assert not layer.visible and layer.colormap.name == "RdBu_r" and layer.contrast_limits == [-1.0, 1.0]
        np.testing.assert_allclose(layer.scale, trans.scale[1:])
        meta = layer.metadata[META_KEY]
        assert meta["result"] == "weights" and meta["feature"] == k
        for roi in ("strong", "silent"):
            rm = res.region_maps[("cnn3d", roi)]
            (r0, r1, c0, c1), w = rm.box, rm.data
            vmax = float(np.abs(w).max())
            assert meta["rois"][roi]["vmax"] == pytest.approx(vmax)
            assert meta["rois"][roi]["box_row0_row1_col0_col1"] == [r0, r1, c0, c1]
            tile = layer.data[r0:r1, c0:c1]
            inside = w[k - 1] != 0
            np.testing.assert_allclose(tile[inside], w[k - 1][inside] / vmax, rtol=1e-6)
        assert np.isnan(layer.data).sum() > 0
    widgets["Results"].show_weights(True)
    assert viewer.layers["dense weights [1]"].visible and not viewer.layers["dense weights [2]"].visible
    widgets["Results"].show_weights(False)
    assert not any(la.visible for la in viewer.layers if la.name.startswith("dense weights"))

    # traces: the chosen methods over the region's calcium; the 3D network's Monte-Carlo SD as a band
    traces = widgets["Traces"]
    assert list(traces.method_buttons) == ["bandpass", "cnn1d", "cnn3d"]
    assert traces.selected_methods() == [res.best_method()]   # the best method first, the others one click away
    traces.set_methods(["cnn1d", "cnn3d"])
    for roi in ("strong", "silent"):
        traces.show_region(roi)
        cols = traces.panel.columns
        tr = res.roi_traces[(roi, "cnn3d")].astype(np.float64)
        np.testing.assert_allclose(cols[f"{roi}/cnn3d (z)"], (tr - tr.mean()) / tr.std(), rtol=1e-5, atol=1e-5)
        assert f"{roi}/cnn1d (z)" in cols and f"{roi}/bandpass (z)" not in cols
        bands = [c for c in traces.panel.axes[0].collections if "Monte-Carlo" in str(c.get_label())]
        assert len(bands) == 1
        path = bands[0].get_paths()[0].vertices
        s = tr.std()
        sd = res.roi_sd[(roi, "cnn3d")].astype(np.float64) / s
        z = (tr - tr.mean()) / s
        assert path[:, 1].max() == pytest.approx(float((z + sd).max()), rel=1e-4)   # z +- SD in the prediction's units

    # the marker follows the time slider
    frame = 140
    viewer.dims.set_current_step(0, frame)
    qtbot.waitUntil(lambda: traces.current_frame == frame, timeout=5000)
    for marker in traces.panel.markers:
        assert marker.get_xdata()[0] == pytest.approx(frame / res.fps)
        assert marker.get_visible()
    traces.window_combo.setCurrentIndex(1)   # 20 s that follow the slider
    viewer.dims.set_current_step(0, 900)
    qtbot.waitUntil(lambda: traces.current_frame == 900, timeout=5000)
    assert traces.panel.frames[0] <= 900 <= traces.panel.frames[-1] and traces.panel.frames.size <= 20 * 50
    # the score table lists every ROI x method
    assert len(widgets["Score table"].rows()) == 2 * 3


def test_cancel_keeps_previous_results(make_napari_viewer, qtbot, qt_sim):
    viewer = make_napari_viewer()
    add_recording(viewer, qt_sim, rois=True)
    widgets = dock_all(viewer)
    analysis = widgets["Analysis"]
    analysis.set_value("n_surrogates", 19)
    run_analysis_widget(qtbot, analysis)
    session = analysis.session
    before = session.results
    layers_before = {la.name: la.data for la in viewer.layers if la._type_string == "image"}
    score_meta = dict(viewer.layers["score: band-pass"].metadata[META_KEY])

    # a slow run (1D CNN, more training), cancelled once training has started
    analysis.set_methods(("bandpass", "cnn1d"))
    analysis.set_value("cnn1d.epochs", 50)
    analysis.set_value("cnn1d.n_pixels", 256)
    analysis.set_value("cnn1d.window", 256)
    task = analysis.run()
    assert task is not None and analysis.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: task.last is not None and task.last.stage == "train cnn1d", timeout=180_000)
    t_cancel = __import__("time").perf_counter()
    analysis.cancel()
    with qtbot.waitSignal(task.finished, timeout=60_000):
        pass
    stopped_after = __import__("time").perf_counter() - t_cancel
    assert stopped_after < 30  # stops at the next training step (generous on a shared machine)
    assert task.cancel_requested and task.result is None and task.error is None
    assert "Cancelled" in analysis.status.text()
    # nothing changed
    assert session.results is before
    assert {la.name for la in viewer.layers if la._type_string == "image"} == set(layers_before)
    assert "score: 1D CNN" not in [la.name for la in viewer.layers]
    for name, data in layers_before.items():
        assert viewer.layers[name].data is data
    assert viewer.layers["score: band-pass"].metadata[META_KEY] == score_meta
    assert analysis.run_button.isEnabled() and not analysis.cancel_button.isEnabled()
    # the viewer is still usable: another run works
    analysis.set_methods(("bandpass",))
    task = run_analysis_widget(qtbot, analysis)
    assert task.error is None and session.results is not before


def test_errors_become_notifications(make_napari_viewer, qtbot, qt_sim):
    viewer = make_napari_viewer()
    widgets = dock_all(viewer)
    analysis = widgets["Analysis"]
    # nothing open
    n0 = n_notifications()
    assert analysis.run() is None
    msgs = notifications_since(n0)
    assert msgs and msgs[-1][0] == "error" and "open a recording" in msgs[-1][1].lower()

    add_recording(viewer, qt_sim, rois=False)
    # a 3D network without ROIs: refused in the worker's planning step, a one-sentence error
    analysis.set_methods(("cnn3d",))
    n0 = n_notifications()
    task = run_analysis_widget(qtbot, analysis)
    assert task.result is None and "draw or load at least one ROI" in task.error
    assert [m for m in notifications_since(n0) if m[0] == "error"] == [("error", task.error)]
    assert analysis.session.results is None
    assert not [la for la in viewer.layers if la.name.startswith("score")]

    # a bad entry in the form
    analysis.set_methods(("bandpass",))
    analysis.editors["validation"].widget.setText("abc")
    n0 = n_notifications()
    assert analysis.run() is None
    assert any("START:STOP" in m for _, m in notifications_since(n0))
    analysis.editors["validation"].widget.setText("900:2000")
    task = run_analysis_widget(qtbot, analysis)
    assert "outside the recording" in task.error
    # an unexpected exception inside the worker: a short sentence, not a traceback dialog
    analysis.editors["validation"].widget.setText("")

    def broken(*a, **k):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    import napari_micromotion.pipeline as pipeline

    original = pipeline.iter_analysis
    pipeline.iter_analysis = broken
    try:
        n0 = n_notifications()
        task = run_analysis_widget(qtbot, analysis)
    finally:
        pipeline.iter_analysis = original
    assert task.error.startswith("The analysis failed unexpectedly (RuntimeError: boom)")
    assert notifications_since(n0)[-1] == ("error", task.error)
    assert analysis.session.results is None
