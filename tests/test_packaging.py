"""The core imports without Qt/napari; no import circles; the npe2 manifest is valid."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = ["napari_micromotion", "napari_micromotion.io", "napari_micromotion.recording", "napari_micromotion.rois",
        "napari_micromotion.filters", "napari_micromotion.scoring", "napari_micromotion.simulate",
        "napari_micromotion.pipeline", "napari_micromotion.export", "napari_micromotion.report",
        "napari_micromotion.cli", "napari_micromotion.detectors.cnn1d", "napari_micromotion.detectors.cnn3d",
        "napari_micromotion.detectors.matched", "napari_micromotion.detectors.models", "napari_micromotion.beats",
        "napari_micromotion.limits", "napari_micromotion._layers", "napari_micromotion.methods",
        "napari_micromotion.methods.cnn3d", "napari_micromotion.tools", "napari_micromotion.retrace",
        "napari_micromotion.layout", "napari_micromotion.results_io", "napari_micromotion.schema",
        "napari_micromotion.kernels.flow", "napari_micromotion.kernels.contraction", "napari_micromotion.methods.flow",
        "napari_micromotion.tools.motion", "napari_micromotion.tools.blurflow", "napari_micromotion.tools.denoise",
        "napari_micromotion.report_motion", "napari_micromotion.blurflow.train", "napari_micromotion.blurflow.evaluate",
        "napari_micromotion.denoise.train", "napari_micromotion.denoise.predict", "napari_micromotion.denoise.traces",
        "napari_micromotion.report_denoise", "napari_micromotion.device", "napari_micromotion.tools.interpolate",
        "napari_micromotion.interpolate.core", "napari_micromotion.interpolate.train",
        "napari_micromotion.interpolate.pretrain", "napari_micromotion.interpolate.files",
        "napari_micromotion.tools.cells", "napari_micromotion.cells.candidates", "napari_micromotion.cells.train",
        "napari_micromotion.cells.encode", "napari_micromotion.cells.interop", "napari_micromotion.cells.kinds",
        "napari_micromotion.cells.dataset", "napari_micromotion.cells.baseline", "napari_micromotion.cells.config"]


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


def _import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Imports between the package's modules (function-level ones too) and private names imported across them."""
    import napari_micromotion

    root = Path(napari_micromotion.__file__).parent
    mods = {}
    for p in root.rglob("*.py"):
        parts = p.relative_to(root.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)] if node.level else []
                src = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
                for alias in node.names:
                    target = f"{src}.{alias.name}" if f"{src}.{alias.name}" in mods else src
                    if target in mods and target != mod:
                        edges[mod].add(target)
                        if target == src and alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append((mod, target, alias.name))
            elif isinstance(node, ast.Import):
                edges[mod] |= {a.name for a in node.names if a.name in mods and a.name != mod}
    return edges, private


def test_no_import_circles_and_no_private_imports_across_modules():
    edges, private = _import_graph()
    assert "napari_micromotion.pipeline" in edges["napari_micromotion.retrace"]   # the graph sees imports
    cycles = []
    for start in edges:   # depth-first search for a path back to the start
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    cycles.append(" -> ".join(path + (start,)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + (nxt,)))
    assert not cycles, cycles[:5]
    assert not private, private


def test_command_line_builds_without_torch():
    """Every ``micromotion`` command builds its parser first: importing torch there costs seconds each time."""
    code = "import sys, napari_micromotion.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
