"""What every tool checks for a script, as the command line and the napari tab do (Tool.validate)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_micromotion import Recording
from napari_micromotion.errors import MicromotionError
from napari_micromotion.simulate import simulate
from napari_micromotion.tools import TOOLS
from napari_micromotion.tools.cells import CellsParams
from napari_micromotion.tools.denoise import DenoiseParams
from napari_micromotion.tools.interpolate import InterpolateParams
from napari_micromotion.tools.motion import MotionParams


@pytest.fixture(scope="module")
def rec():
    return simulate(n_frames=120, size=48, seed=2).recording()


@pytest.mark.parametrize("tool, params, message", [
    ("interpolate", InterpolateParams(factor=2.5, method="linear"), "factor must be an integer"),
    ("denoise", DenoiseParams(prior="median"), "prior must be one of"),
    ("motion", MotionParams(block_frames=0), "frames per block must be at least 1"),
    ("motion", MotionParams(flow=dataclasses.replace(MotionParams().flow, levels=0)), "pyramid levels"),
])
def test_run_refuses_what_the_command_line_refuses(rec, tool, params, message):
    gen = TOOLS[tool].iter_run(rec, params)
    with pytest.raises(MicromotionError, match=message):
        next(gen)          # before any work: the first step


def test_run_checks_the_input_and_its_rois(rec):
    with pytest.raises(MicromotionError, match="works on a Recording"):
        TOOLS["motion"].run(np.zeros((50, 32, 32), np.float32))
    small = Recording(rec.transmission[:, :8, :8], rec.fps)
    with pytest.raises(MicromotionError, match="too small to interpolate"):
        TOOLS["interpolate"].run(small, InterpolateParams(method="linear"))
    with pytest.raises(MicromotionError, match="needs a fluorescence video"):
        TOOLS["cells"].run(Recording(rec.transmission, rec.fps))
    with pytest.raises(MicromotionError, match="outside the 48 x 48 px frame"):
        TOOLS["motion"].run(rec, rois=[{"name": "far", "polygon": [[100, 100], [100, 110], [110, 110]]}])


def test_rois_as_the_files_dicts_are_taken(rec):
    rois = [{"name": r.name, "kind": r.kind, "polygon": r.polygon.tolist()} for r in simulate(
        n_frames=120, size=48, seed=2).rois]
    res = TOOLS["motion"].run(rec, MotionParams(denoise_traces=False), rois=rois)
    assert set(res.regions) >= {r["name"] for r in rois}


@pytest.mark.parametrize("tool, params, says", [
    ("motion", MotionParams(denoise_traces=False), "displacements and beat times"),
    ("denoise", DenoiseParams(epochs=1, steps_per_epoch=2, width=4, patch_px=32, mc_passes=0, samples=20, threads=1),
     "noise model, the uncertainty"),
    ("cells", CellsParams(finetune_seconds=0.0), "traces that include frames"),
])
def test_a_tool_on_an_interpolated_video_says_what_it_measured(rec, tool, params, says):
    marked = rec.with_(provenance={"synthesized_frames": {"factor": 2, "synthesized_frames": 59}})
    res = TOOLS[tool].run(marked, params)
    assert any("synthesized (interpolated) frames" in w and "one frame in 2" in w and says in w for w in res.warnings)
    plain = TOOLS[tool].run(rec, params)
    assert not any("synthesized" in w for w in plain.warnings)


def test_the_run_records_list_the_readers_warnings_too(rec):
    """A lossy video's warning (the reader's) was kept only under the record's source/recording_provenance, not in its
    ``warnings`` beside the tool's or the analysis' own."""
    from napari_micromotion.export import run_record
    from napari_micromotion.pipeline import AnalysisParams, run_analysis

    said = "v.mp4 is a compressed video (mpeg4); lossy codecs smear ..."
    lossy = rec.with_(provenance={"warnings": [said]})
    tool = TOOLS["motion"]
    res = tool.run(lossy, MotionParams(denoise_traces=False))
    record = tool.record(res)
    assert record["warnings"][0] == said and record["warnings"].count(said) == 1
    assert set(res.warnings) <= set(record["warnings"])
    results = run_analysis(lossy, [], AnalysisParams(methods=("bandpass",), n_surrogates=9))
    run = run_record(results, extra={"recording_provenance": lossy.provenance})
    assert run["warnings"][0] == said and set(results.warnings) <= set(run["warnings"])
