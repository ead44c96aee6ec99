"""The core imports without Qt/napari; the npe2 manifest is valid."""

import subprocess
import sys
from pathlib import Path

CORE = ["napari_micromotion", "napari_micromotion.io", "napari_micromotion.recording", "napari_micromotion.rois",
        "napari_micromotion.filters", "napari_micromotion.scoring", "napari_micromotion.simulate",
        "napari_micromotion.pipeline", "napari_micromotion.export", "napari_micromotion.report",
        "napari_micromotion.cli", "napari_micromotion.detectors.cnn1d", "napari_micromotion.detectors.cnn3d",
        "napari_micromotion.detectors.matched", "napari_micromotion.detectors.models", "napari_micromotion.beats",
        "napari_micromotion.limits", "napari_micromotion._layers"]


def test_core_imports_without_qt_or_napari():
    code = (
        "import sys\n"
        "for blocked in ('PyQt6', 'PyQt5', 'PySide6', 'PySide2', 'qtpy', 'napari', 'magicgui', 'vispy'):\n"
        "    sys.modules[blocked] = None\n"
        f"import importlib\nfor m in {CORE!r}:\n    importlib.import_module(m)\n"
        "from napari_micromotion.simulate import simulate\n"
        "from napari_micromotion.pipeline import run_analysis, AnalysisParams\n"
        "sim = simulate(n_frames=200, size=48, seed=1)\n"
        "res = run_analysis(sim.recording(), sim.rois, AnalysisParams(methods=('bandpass',), n_surrogates=9))\n"
        "assert res.roi_scores\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('PyQt6','qtpy','napari','vispy') and sys.modules[m] is not None]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_npe2_manifest_validates():
    from npe2 import PluginManifest

    import napari_micromotion

    path = Path(napari_micromotion.__file__).with_name("napari.yaml")
    manifest = PluginManifest.from_file(path)
    assert manifest.name == "napari-micromotion"
    out = subprocess.run([str(Path(sys.executable).with_name("npe2")), "validate", "napari-micromotion"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in (out.stdout + out.stderr).lower()


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "napari-micromotion"]
    assert eps and eps[0].value == "napari_micromotion:napari.yaml"
