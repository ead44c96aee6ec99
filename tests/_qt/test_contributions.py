"""npe2 contributions in a real viewer: reader, writer, sample data, the Plugins menu, ``micromotion view``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_micromotion._layers import KIND_COLOURS, META_KEY
from napari_micromotion.errors import MicromotionError
from napari_micromotion.rois import read_rois

from .conftest import dock_all, n_notifications, notifications_since, wait_task

PLUGIN = "napari-micromotion"


def _stack(t=40, y=16, x=20, seed=0):
    return np.random.default_rng(seed).integers(100, 4000, size=(t, y, x), dtype=np.uint16)


def _z(x):
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / x.std()


def _assert_kind_colours(layer):
    from napari.utils.colormaps.standardize_color import transform_color

    for i, kind in enumerate(layer.features["kind"]):
        np.testing.assert_allclose(layer.edge_color[i], transform_color(KIND_COLOURS[kind])[0], atol=1e-6)


def test_npe2_manifest_validates_and_widgets_are_in_the_plugins_menu(make_napari_viewer, qtbot):
    npe2 = Path(sys.executable).with_name("npe2")
    out = subprocess.run([str(npe2), "validate", PLUGIN], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "valid" in (out.stdout + out.stderr).lower(), out.stdout + out.stderr

    viewer = make_napari_viewer()
    menu = [a for a in viewer.window.plugins_menu.actions() if a.text() == "Micromotion"]
    assert menu and menu[0].menu() is not None
    entries = [a for a in menu[0].menu().actions() if a.text()]
    assert [a.text() for a in entries] == ["Workbench", "Traces and scores"]
    # choosing the workbench docks it, and the traces and tables below the canvas
    next(a for a in entries if a.text() == "Workbench").trigger()
    qtbot.waitUntil(lambda: any("Workbench" in name for name in viewer.window.dock_widgets), timeout=10_000)
    from napari_micromotion._qt.inspector import InspectorWidget
    from napari_micromotion._qt.workbench import INSPECTOR, Workbench

    bench = viewer.window.dock_widgets[next(n for n in viewer.window.dock_widgets if "Workbench" in n)]
    assert isinstance(bench, Workbench)
    assert [bench.tabs.tabText(i) for i in range(bench.tabs.count())] == ["Data", "ROIs", "Analyze", "Results", "Tools"]
    # every tool sits behind the Tools tab's chooser, so the tab bar fits the dock however many there are
    assert bench.tabs.tabBar().sizeHint().width() <= bench.minimumWidth()
    choices = [bench.tool_panel.chooser.itemData(i) for i in range(bench.tool_panel.chooser.count())]
    assert choices == list(bench.tools) and {"motion", "blur_flow", "denoise"} <= set(choices)
    bench.show_tab("Blur flow")
    assert bench.current_tab == "blur flow" and bench.tool_panel.current is bench.tools["blur_flow"]
    inspector = viewer.window.dock_widgets[INSPECTOR]
    assert isinstance(inspector, InspectorWidget) and inspector.scores.table.rowCount() == 0
    from qtpy.QtCore import Qt

    dock = inspector.parent()
    while dock is not None and not hasattr(dock, "allowedAreas"):
        dock = dock.parent()
    assert viewer.window._qt_window.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea


def test_plain_tiffs_and_videos_open_without_a_choose_reader_dialog(make_napari_viewer, tmp_path):
    """The plugin claims only ROI files; napari's own reader is the only candidate for recordings."""
    from napari.plugins import _npe2

    for name in ("movie.tif", "movie.tiff", "x.ome.tif", "clip.mp4", "clip.avi", "clip.mov"):
        assert list(_npe2.get_readers(name)) == ["napari"], name
    assert list(_npe2.get_readers("rois.json")) == [PLUGIN] and list(_npe2.get_readers("RoiSet.zip")) == [PLUGIN]
    # a plain TIFF opens with napari's reader straight away
    viewer = make_napari_viewer()
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, _stack())
    layers = viewer.open(str(p))
    assert len(layers) == 1 and layers[0].data.shape == (40, 16, 20)
    # an ROI file opens with the plugin's reader (no dialog either), coloured by kind
    from napari_micromotion.rois import ROI, write_rois

    write_rois([ROI("c1", "strong", np.array([[1, 1], [1, 8], [8, 8]], float))], tmp_path / "cells.json")
    (shapes,) = viewer.open(str(tmp_path / "cells.json"), plugin=PLUGIN)
    assert shapes.name == "cells" and list(shapes.features["kind"]) == ["strong"]
    _assert_kind_colours(shapes)


def test_sample_data_with_rois(make_napari_viewer, qtbot, monkeypatch):
    """File > Open Sample returns at once (a placeholder) and simulates in the background."""
    import napari_micromotion._sample_data as sample
    from napari_micromotion._qt._state import get_session
    from napari_micromotion._qt.sample import PLACEHOLDER

    monkeypatch.setitem(sample.SAMPLE, "n_frames", 300)
    monkeypatch.setitem(sample.SAMPLE, "size", 48)
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "simulated")
    assert [la.name for la in viewer.layers] == [PLACEHOLDER]
    task = get_session(viewer).sample_task
    wait_task(qtbot, task)
    assert task.events and task.events[-1].fraction == 1.0   # progress was reported
    names = [la.name for la in viewer.layers]
    assert names == ["transmission", "fluorescence", "ROIs"]
    trans, fl, rois = viewer.layers
    assert trans.data.shape == (300, 48, 48) and fl.data.shape == (300, 48, 48)
    meta = trans.metadata[META_KEY]
    assert meta["fps"] == 50.0 and meta["role"] == "transmission" and meta["pixel_size_um"] > 0
    np.testing.assert_allclose(trans.scale, [1.0, meta["pixel_size_um"], meta["pixel_size_um"]])
    assert list(rois.features["kind"]) == ["strong", "weak", "silent", "other"]
    _assert_kind_colours(rois)
    np.testing.assert_allclose(rois.scale, trans.scale[1:])
    from napari_micromotion.simulate import simulate

    np.testing.assert_array_equal(trans.data, simulate(n_frames=300, size=48, seed=0).transmission)


def test_reader_formats(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rec_w = dock_all(viewer)["Data"]
    # ImageJ stack with frame interval and pixel size
    data = _stack()
    p = tmp_path / "imagej.tif"
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TYX", "finterval": 0.02, "unit": "um"},
                     resolution=(1 / 0.5, 1 / 0.5))
    layers = rec_w.open_path(p)
    assert [la.name for la in layers] == ["transmission"]
    assert layers[0].metadata[META_KEY]["fps"] == pytest.approx(50.0)
    np.testing.assert_allclose(layers[0].scale, [1, 0.5, 0.5])
    np.testing.assert_array_equal(layers[0].data, data)
    viewer.layers.clear()
    # two-channel TIFF: transmission and fluorescence layers
    trans, fluo = _stack(seed=1), _stack(seed=2)
    p = tmp_path / "both.tif"
    tifffile.imwrite(p, np.stack([trans, fluo], axis=1), imagej=True, metadata={"axes": "TCYX", "finterval": 0.04})
    layers = rec_w.open_path(p)
    assert [la.name for la in layers] == ["transmission", "fluorescence"]
    np.testing.assert_array_equal(layers[0].data, trans)
    np.testing.assert_array_equal(layers[1].data, fluo)
    assert layers[1].metadata[META_KEY]["role"] == "fluorescence" and layers[1].metadata[META_KEY]["fps"] == 25.0
    viewer.layers.clear()
    # OME-TIFF with channel names, TimeIncrement and PhysicalSize
    p = tmp_path / "x.ome.tif"
    tifffile.imwrite(p, np.stack([trans, fluo], axis=1), ome=True,
                     metadata={"axes": "TCYX", "TimeIncrement": 20.0, "TimeIncrementUnit": "ms",
                               "PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.25,
                               "PhysicalSizeYUnit": "µm", "Channel": {"Name": ["Brightfield", "Cal520"]}})
    layers = rec_w.open_path(p)
    assert [la.name for la in layers] == ["transmission", "fluorescence"]
    assert layers[0].metadata[META_KEY]["fps"] == pytest.approx(50.0)
    np.testing.assert_allclose(layers[0].scale, [1, 0.25, 0.25])
    viewer.layers.clear()
    # a folder of TIFF frames with a sidecar
    folder = tmp_path / "series"
    folder.mkdir()
    for i, frame in enumerate(data[:20]):
        tifffile.imwrite(folder / f"frame{i}.tif", frame)
    (folder / "videoinfos.txt").write_text("{'fps': 18.5, 'microns_per_pixel': 0.65}")
    layers = rec_w.open_path(folder)
    assert layers[0].data.shape == (20, 16, 20) and layers[0].metadata[META_KEY]["fps"] == pytest.approx(18.5)
    viewer.layers.clear()
    # no frame rate in the file: still opens (both channels); the Recording widget asks for the fps
    p = tmp_path / "nofps.tif"
    tifffile.imwrite(p, np.stack([trans, fluo], axis=1), imagej=True, metadata={"axes": "TCYX"})
    layers = rec_w.open_path(p)
    assert [la.name for la in layers] == ["transmission", "fluorescence"]
    assert layers[0].metadata[META_KEY]["fps"] is None
    assert "frame rate" in rec_w.summary.text()
    with pytest.raises(MicromotionError, match="frame rate"):
        rec_w.recording()
    rec_w.set_fps(40.0)
    rec = rec_w.recording()
    assert rec.fps == 40.0 and rec.n_frames == 40
    np.testing.assert_array_equal(rec.transmission, trans)
    np.testing.assert_array_equal(rec.fluorescence, fluo)
    assert layers[0].metadata[META_KEY]["fps"] == 40.0  # the entered rate travels with the layer
    assert "40 fps" in rec_w.summary.text()


def test_simulator_folder_reader_and_rois_writer_round_trip(make_napari_viewer, tmp_path):
    from napari_micromotion.simulate import write_simulation

    folder = write_simulation(tmp_path / "sim", n_frames=200, size=48, seed=2)
    viewer = make_napari_viewer()
    widgets = dock_all(viewer)
    layers = widgets["Data"].open_path(folder)
    assert [la.name for la in layers] == ["transmission", "fluorescence", "ROIs"]
    rois_layer = layers[2]
    _assert_kind_colours(rois_layer)
    original = read_rois(folder / "rois.json")
    before = (folder / "rois.json").read_bytes()
    for ext in ("json", "zip"):
        out = tmp_path / f"saved.{ext}"
        written = rois_layer.save(str(out), plugin=PLUGIN)
        assert Path(written[0]) == out and out.is_file()
        back = read_rois(out)
        assert [r.name for r in back] == [r.name for r in original]
        if ext == "json":
            assert [r.kind for r in back] == [r.kind for r in original]
        for a, b in zip(back, original):
            np.testing.assert_allclose(a.polygon, b.polygon, atol=1e-3 if ext == "zip" else 1e-9)
    assert (folder / "rois.json").read_bytes() == before  # inputs never change
    # the ROIs widget saves and loads the same files
    rw = widgets["ROIs"]
    assert rw.layer is rois_layer
    out = rw.save(tmp_path / "widget.json")
    assert [r.name for r in read_rois(out)] == [r.name for r in original]
    loaded = rw.load(tmp_path / "saved.zip")
    assert loaded.name == "saved" and list(loaded.features["name"]) == [r.name for r in original]
    assert list(loaded.features["kind"]) == ["strong", "weak", "silent", "other"]  # ImageJ: kind from the name
    _assert_kind_colours(loaded)
    n0 = n_notifications()
    assert rw.load(tmp_path / "missing.json") is None
    assert any("does not exist" in m for _, m in notifications_since(n0))


def test_launch_loads_a_results_folder(make_napari_viewer, qtbot, qt_sim, tmp_path):
    """``micromotion view`` without the event loop: recording, ROIs, results folder, widgets."""
    from napari_micromotion._qt.launch import load_inputs, populate_viewer
    from napari_micromotion.export import write_results
    from napari_micromotion.pipeline import AnalysisParams, run_analysis
    from napari_micromotion.simulate import write_simulation

    folder = write_simulation(tmp_path / "sim", n_frames=600, size=48, seed=4)
    from napari_micromotion.io import read_recording

    rec = read_recording(folder / "transmission.tif", folder / "fluorescence.tif")
    rois = read_rois(folder / "rois.json")
    res = run_analysis(rec, rois, AnalysisParams(methods=("bandpass",), n_surrogates=19))
    out = write_results(res, tmp_path / "out")

    with pytest.raises(MicromotionError, match="not an analysis output folder"):
        load_inputs(folder / "transmission.tif", results=folder)
    inputs = load_inputs(folder / "transmission.tif", fluorescence=folder / "fluorescence.tif",
                         rois=folder / "rois.json", results=out)
    viewer = make_napari_viewer()
    widgets = populate_viewer(viewer, inputs)
    assert {"Workbench", "Data", "ROIs", "Analysis", "Results", "Traces", "Score table", "Beats"} <= set(widgets)
    names = [la.name for la in viewer.layers]
    assert names[:2] == ["transmission", "fluorescence"] and names[-1] == "rois"
    assert "score: band-pass" in names and "delay: band-pass" in names and "still frame" in names
    np.testing.assert_allclose(viewer.layers["score: band-pass"].data, res.score_maps["bandpass"])
    meta = viewer.layers["score: band-pass"].metadata[META_KEY]
    assert meta["parameters"]["n_surrogates"] == 19
    assert meta["provenance"]["recording"]["results_folder"] == str(out.resolve())
    session = widgets["Traces"].session
    loaded = session.results
    assert loaded.roi_names == res.roi_names and loaded.roi_kinds == res.roi_kinds
    for key, tr in res.roi_traces.items():
        np.testing.assert_allclose(loaded.roi_traces[key], tr, rtol=1e-6)
    traces = widgets["Traces"]
    assert [traces.region_combo.itemText(i) for i in range(traces.region_combo.count())][:4] == res.roi_names
    assert list(traces.method_buttons) == ["bandpass"] and traces.selected_methods() == ["bandpass"]
    np.testing.assert_allclose(traces.panel.columns[f"{res.roi_names[0]}/bandpass (z)"],
                               _z(res.roi_traces[(res.roi_names[0], "bandpass")]), rtol=1e-5, atol=1e-6)
    rows = widgets["Score table"].rows()
    assert len(rows) == len(res.roi_scores)
    for row, ref in zip(sorted(rows, key=lambda r: r["roi"]), sorted(res.roi_scores, key=lambda r: r["roi"])):
        assert row["score"] == pytest.approx(ref["score"], rel=1e-6) and row["p_value"] == pytest.approx(ref["p_value"])
    # the recording layers match the results: the band-passed stack is available
    assert session.recording is not None and session.watched_rois_layer() is viewer.layers["rois"]
    task = widgets["Results"].compute_bandpassed()
    wait_task(qtbot, task)
    from napari_micromotion.filters import bandpass, design_bandpass

    bp = viewer.layers["band-passed"]
    assert bp.data.shape == rec.transmission.shape
    d = design_bandpass(rec.fps, 2.0, 15.0, 2, padtype="mean")
    ref = bandpass(np.asarray(rec.transmission).reshape(rec.n_frames, -1), d).reshape(rec.transmission.shape)
    np.testing.assert_allclose(bp.data, ref, rtol=1e-5, atol=1e-3)
    assert bp.metadata[META_KEY]["result"] == "bandpassed" and bp.metadata[META_KEY]["passband"]["high_hz"] == 15.0
    np.testing.assert_allclose(bp.scale, viewer.layers["transmission"].scale)


def test_recording_widget_layers_files_and_channels(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widgets = dock_all(viewer)
    rec_w = widgets["Data"]
    # a (T, C, Y, X) layer from another reader: channel picks the transmission, the other is fluorescence
    trans, fluo = _stack(seed=3), _stack(seed=4)
    viewer.add_image(np.stack([fluo, trans], axis=1), name="hyperstack", scale=(1, 1, 0.4, 0.4), channel_axis=None)
    rec_w.select(transmission="hyperstack")
    rec_w.set_fps(30.0)
    rec_w.channel.setValue(1)
    rec = rec_w.recording()
    np.testing.assert_array_equal(rec.transmission, trans)
    np.testing.assert_array_equal(rec.fluorescence, fluo)
    assert rec.fps == 30.0 and rec.pixel_size_um == pytest.approx(0.4)
    rec_w.channel.setValue(5)
    with pytest.raises(MicromotionError, match="channel 5 does not exist"):
        rec_w.recording()
    assert "channel 5" in rec_w.summary.text()
    rec_w.channel.setValue(-1)
    # files: a transmission stack and a separate fluorescence stack
    p1, p2 = tmp_path / "t.tif", tmp_path / "f.tif"
    tifffile.imwrite(p1, trans, imagej=True, metadata={"axes": "TYX", "finterval": 0.02})
    tifffile.imwrite(p2, fluo, imagej=True, metadata={"axes": "TYX", "finterval": 0.02})
    added = rec_w.open_files(p1, p2)
    assert [la.name for la in added] == ["transmission", "fluorescence"]
    assert rec_w.transmission.currentText() == "transmission" and rec_w.fluorescence.currentText() == "fluorescence"
    rec = rec_w.recording()
    assert rec.fps == pytest.approx(50.0)
    np.testing.assert_array_equal(rec.fluorescence, fluo)
    assert rec.provenance["transmission"]["path"] == str(p1.resolve())
    # no fluorescence
    rec_w.select(fluorescence="")
    assert rec_w.recording().fluorescence is None
    # a bad file: a notification, no new layer
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    n_layers = len(viewer.layers)
    n0 = n_notifications()
    assert rec_w.open_files(bad) == []
    assert len(viewer.layers) == n_layers
    assert [sev for sev, _ in notifications_since(n0)] == ["error"]
    assert bad.read_bytes() == b"not a tiff"


def test_micromotion_view_command(make_napari_viewer, monkeypatch, tmp_path, capsys):
    """``micromotion view`` opens napari with the recording, ROIs and every widget (event loop stubbed)."""
    import napari

    from napari_micromotion.cli import main
    from napari_micromotion.simulate import write_simulation

    folder = write_simulation(tmp_path / "sim", n_frames=300, size=48, seed=6)
    viewers = []

    def fake_viewer(**kwargs):
        kwargs.pop("title", None)
        viewers.append(make_napari_viewer(**kwargs))
        return viewers[-1]

    monkeypatch.setattr(napari, "Viewer", fake_viewer)
    monkeypatch.setattr(napari, "run", lambda *a, **k: None)
    # a bad input is a one-line error before any window opens
    assert main(["view", str(tmp_path / "missing.tif")]) == 2
    assert "error:" in capsys.readouterr().err and not viewers
    assert main(["view", str(folder / "transmission.tif"), "--fluorescence", str(folder / "fluorescence.tif"),
                 "--rois", str(folder / "rois.json")]) == 0
    (viewer,) = viewers
    assert [la.name for la in viewer.layers] == ["transmission", "fluorescence", "rois"]
    docked = " ".join(viewer.window.dock_widgets)
    for name in ("Workbench", "Traces and scores"):
        assert name in docked


def test_entered_fps_survives_new_layers(make_napari_viewer):
    """A frame rate typed for a layer without metadata stays when other layers (e.g. results) are added."""
    viewer = make_napari_viewer()
    viewer.add_image(_stack(seed=7), name="movie")  # another reader: no plugin metadata at all
    rec_w = dock_all(viewer)["Data"]
    assert rec_w.transmission.currentText() == "(automatic)" and rec_w.fps.value() == 0
    rec_w.set_fps(12.5)
    viewer.add_image(np.zeros((8, 8)), name="other 2D")
    viewer.add_image(_stack(seed=8), name="second movie")
    assert rec_w.fps.value() == 12.5
    assert rec_w.recording().fps == 12.5
    rec_w.select(transmission="second movie")
    assert rec_w.fps.value() == 0  # a different layer: its own (unknown) rate


def test_zarr_stacks_open_lazily(make_napari_viewer, tmp_path, qt_sim):
    """--save-filtered / --save-predictions stacks show as lazy (dask) layers when a results folder opens."""
    import dask.array as da

    from napari_micromotion._qt.launch import load_inputs, populate_viewer
    from napari_micromotion.cli import main
    from napari_micromotion.simulate import write_simulation

    sim = tmp_path / "sim"
    write_simulation(sim, qt_sim.params)
    out = tmp_path / "out"
    assert main(["analyze", str(sim / "transmission.tif"), "-f", str(sim / "fluorescence.tif"), "--methods",
                 "bandpass,matched", "--save-filtered", "--save-predictions", "--out", str(out), "-q",
                 "--no-report", "--surrogates", "9"]) == 0
    viewer = make_napari_viewer()
    populate_viewer(viewer, load_inputs(sim / "transmission.tif", results=out), dock=False)
    names = [layer.name for layer in viewer.layers]
    assert "band-passed (zarr)" in names and "prediction: band-pass" in names and "prediction: matched filter" in names
    layer = viewer.layers["band-passed (zarr)"]
    assert isinstance(layer.data, da.Array) and layer.data.shape == qt_sim.transmission.shape
    assert layer.metadata[META_KEY]["lazy"] and layer.metadata[META_KEY]["role"] == "bandpassed"
    from napari_micromotion.filters import bandpass, design_bandpass

    ref = bandpass(qt_sim.transmission[:, :2, :].reshape(qt_sim.params.n_frames, -1), design_bandpass(50.0))
    np.testing.assert_array_equal(np.asarray(layer.data[:, :2, :]).reshape(qt_sim.params.n_frames, -1), ref)


def test_the_data_tab_keeps_the_frames_after_a_fade_in(make_napari_viewer, tmp_path):
    """The reader's advice to analyse from frame N on named --frames, which napari did not have."""
    import imageio.v3 as iio

    viewer = make_napari_viewer()
    rec_w = dock_all(viewer)["Data"]
    rng = np.random.default_rng(3)
    frames = rng.integers(90, 110, size=(40, 32, 32)).astype(np.float32)
    frames[:6] *= np.linspace(0.05, 0.85, 6)[:, None, None]
    iio.imwrite(tmp_path / "faded.avi", frames.astype(np.uint8), extension=".avi", fps=20, codec="mjpeg")
    n0 = n_notifications()
    (trans,) = rec_w.open_path(tmp_path / "faded.avi")
    said = notifications_since(n0)
    assert any("fades in" in m and "('keep frames' 6:40)" in m and "--frames" not in m for _, m in said), said
    # the fields offer the frames after the fade; too few frames is one sentence and changes nothing
    assert rec_w.frame_range.text() == "6:40"
    assert trans.contrast_limits[0] > 90          # grey levels from past the fade (its dark frames saturated the rest)
    fluo = viewer.add_image(np.arange(40 * 32 * 32, dtype=np.float32).reshape(40, 32, 32), name="calcium")
    rec_w.select(fluorescence="calcium")
    n0, n_layers = n_notifications(), len(viewer.layers)
    assert rec_w.keep_frames(0, 12) == []
    assert len(viewer.layers) == n_layers and any("Keeping frames 0:12 leaves 12 of the 40 frames" in m
                                                  for _, m in notifications_since(n0))
    # kept: both channels cut alike, the originals hidden and left as they were, the cut ones analysed
    cut_t, cut_f = rec_w.keep_frames()
    assert (cut_t.name, cut_f.name) == ("transmission [6:40]", "calcium [6:40]")
    np.testing.assert_array_equal(cut_t.data, trans.data[6:])
    np.testing.assert_array_equal(cut_f.data, fluo.data[6:])
    assert not trans.visible and trans.data.shape[0] == 40 and cut_t.visible
    assert cut_t.contrast_limits[0] > 90 and cut_f.contrast_limits[0] > 6 * 32 * 32
    rec = rec_w.recording()
    assert rec.n_frames == 34 and rec.fps == pytest.approx(20.0) and rec.provenance["frames"] == [6, 40]
    assert not any("fades in" in w for w in rec.provenance["warnings"])
    assert rec_w.frame_range.text() == "0:34"       # nothing more to drop
    rec_w.frame_range.setText("6-40")
    n0, n_layers = n_notifications(), len(viewer.layers)
    assert rec_w.keep_frames() == [] and len(viewer.layers) == n_layers
    assert any("must look like START:STOP" in m for _, m in notifications_since(n0))
    rec_w.frame_range.setText("4:")               # an open end runs to the last frame, as in a Python slice
    again_t, _ = rec_w.keep_frames()
    assert again_t.data.shape[0] == 30 and rec_w.recording().provenance["frames"] == [10, 40]


def test_the_data_tab_opens_interleaved_channels_and_says_what_the_reader_warns(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    rec_w = dock_all(viewer)["Data"]
    rng = np.random.default_rng(7)                       # a still scene in each channel, with camera noise
    trans = (1000 + 300 * rng.random((1, 16, 20)) + rng.normal(0, 3, (40, 16, 20))).astype(np.uint16)
    fluo = (200 + 50 * rng.random((1, 16, 20)) + rng.normal(0, 3, (40, 16, 20))).astype(np.uint16)
    mixed = np.empty((2 * len(trans), *trans.shape[1:]), trans.dtype)
    mixed[0::2], mixed[1::2] = trans, fluo
    p = tmp_path / "mixed.tif"
    tifffile.imwrite(p, mixed, imagej=True, metadata={"axes": "TYX", "finterval": 0.01})
    # opened as it is: one channel, and the reader's warning shown in the GUI's words, not the command line's
    seen = len(notification_manager.records)
    layers = rec_w.open_path(p)
    assert [la.name for la in layers] == ["transmission"]
    said = [str(n.message) for n in notification_manager.records[seen:]]
    assert any("frames alternate" in m and "'interleaved channels'" in m and "--interleaved" not in m for m in said)
    viewer.layers.clear()
    # with the field set: two layers, each channel's frames, each at half the file's rate
    rec_w.interleaved.setValue(2)
    seen = len(notification_manager.records)
    layers = rec_w.open_path(p)
    assert [la.name for la in layers] == ["transmission", "fluorescence"]
    np.testing.assert_array_equal(layers[0].data, trans)
    np.testing.assert_array_equal(layers[1].data, fluo)
    assert layers[0].metadata[META_KEY]["fps"] == pytest.approx(50.0)
    assert not any("alternate" in str(n.message) for n in notification_manager.records[seen:])
    rec = rec_w.recording()
    assert rec.fps == pytest.approx(50.0) and rec.n_frames == len(trans)
