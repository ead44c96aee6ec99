"""Fixtures for the widget tests: a small simulated recording in a real napari viewer (Xvfb).

Run with ``.venv/bin/python -m pytest tests/_qt``; pytest-xvfb starts the X server
(the offscreen Qt platform has no OpenGL for napari's canvas).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from napari_micromotion.detectors.cnn1d import CNN1DParams
from napari_micromotion.detectors.cnn3d import CNN3DParams

#: ``MICROMOTION_SCREENSHOTS=docs`` makes the tool-tab tests save their screenshots there
SHOTS = os.environ.get("MICROMOTION_SCREENSHOTS")

#: generous: other jobs may share the two CPU cores
TIMEOUT_MS = 180_000

#: the smallest 1D CNN / 3D network training that exercises every step
TINY_CNN1D = CNN1DParams(epochs=1, n_pixels=64, window=256, batch_size=16)
TINY_CNN3D = CNN3DParams(epochs=2, mc_passes=2)


@pytest.fixture(scope="session")
def qt_sim():
    """1000 frames of 48 x 48 px at 50 fps with strong/weak/silent/other ROIs."""
    from napari_micromotion.simulate import simulate

    return simulate(n_frames=1000, size=48, seed=5)


def add_recording(viewer, sim, rois: bool = True):
    """Add the simulation's layers as the plugin's reader/sample would; returns (transmission, rois layer)."""
    from napari_micromotion._layers import recording_layers, rois_layer

    rec = sim.recording()
    layers = recording_layers(rec)
    if rois:
        px = rec.pixel_size_um
        layers.append(rois_layer(sim.rois, scale=(px, px)))
    added = [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layers]
    return added[0], (added[-1] if rois else None)


def dock(viewer, name):
    """Open a widget the way the Plugins menu does; returns the widget."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-micromotion", name)
    return widget


def dock_all(viewer):
    from napari_micromotion._qt.launch import Inputs, populate_viewer

    return populate_viewer(viewer, Inputs())


def wait_task(qtbot, task, timeout=TIMEOUT_MS):
    """Wait until a background task has finished (all its signals delivered)."""
    assert task is not None
    qtbot.waitUntil(lambda: not task.running, timeout=timeout)
    qtbot.wait(20)
    return task


def run_analysis_widget(qtbot, analysis, timeout=TIMEOUT_MS):
    """Press Run, wait for the result; returns the task."""
    task = analysis.run()
    assert task is not None, analysis.status.text()
    with qtbot.waitSignal(task.finished, timeout=timeout):
        pass
    qtbot.wait(20)
    return task


def notifications_since(n0):
    from napari.utils.notifications import notification_manager

    return [(str(r.severity), r.message) for r in notification_manager.records[n0:]]


def n_notifications():
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def square(r, c, h=8, w=8):
    return np.array([[r, c], [r, c + w], [r + h, c + w], [r + h, c]], float)


@pytest.fixture
def timer():
    """Wall-clock helper: ``t = timer(); ...; t()`` seconds elapsed."""
    def start():
        t0 = time.perf_counter()
        return lambda: time.perf_counter() - t0
    return start


def save_screenshot(viewer, qtbot, name: str) -> Path:
    """The whole window (1920 x 1080 under Xvfb) as ``<SHOTS>/<name>``, reduced to 1600 px and 192 colours."""
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    qtbot.wait(400)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    img = Image.fromarray(shot[..., :3])
    img.thumbnail((1600, 1600))
    out = Path(SHOTS) / name
    img.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out
