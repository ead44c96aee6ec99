"""A method or tool registered from outside the package appears everywhere, without editing any module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from napari_micromotion import schema
from napari_micromotion.cli import main
from napari_micromotion.layout import ImageEntry
from napari_micromotion.methods import METHODS, Method, PixelChunk
from napari_micromotion.pipeline import AnalysisParams, analysis_specs, run_analysis
from napari_micromotion.progress import Progress
from napari_micromotion.results_io import read_results
from napari_micromotion.schema import param
from napari_micromotion.tools import TOOLS, Tool, ToolResult


@dataclass(frozen=True)
class ToyParams:
    power: float = param(1.0, label="power", min=0.1, max=4.0, flag="--toy-power", decimals=2,
                         help="The band-passed signal is raised to this power.")
    smooth_frames: int = param(3, label="smoothing", unit="frames", min=1, max=100, advanced=True,
                               help="Frames averaged after rectification.")


@dataclass
class _ToyPredict:
    power: float
    smooth: int

    def __call__(self, chunk: PixelChunk) -> np.ndarray:
        from scipy import ndimage

        x = np.abs(chunk.filtered) ** self.power
        return ndimage.uniform_filter1d(x, self.smooth, axis=0).astype(np.float32)


class ToyEnvelope(Method):
    name = "toy_envelope"
    label = "toy envelope"
    description = "rectified, smoothed band-pass (a test method registered from a test file)"
    colour = "#8c564b"

    def predictor(self, state, device="cpu"):
        return _ToyPredict(1.0, 3)


class ToyEnvelopeParams(ToyEnvelope):
    """The same, with its parameters applied through a state made in prepare."""

    name = "toy_envelope_p"
    label = "toy envelope (parameters)"
    Params = ToyParams

    def prepare(self, ctx, params):
        yield Progress("toy", 1.0, "ready")
        return (params.power, params.smooth_frames)

    def predictor(self, state, device="cpu"):
        return None if state is None else _ToyPredict(*state)


@pytest.fixture
def toy():
    METHODS.register(ToyEnvelope)
    METHODS.register(ToyEnvelopeParams)
    yield METHODS["toy_envelope"]
    METHODS.unregister("toy_envelope")
    METHODS.unregister("toy_envelope_p")


def test_toy_method_in_cli_listing_and_help(toy, capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("toy_envelope "))
    assert "pixel method" in line and "rectified, smoothed band-pass" in line
    assert main(["analyze", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--toy-power" in help_text and "toy_envelope" in help_text
    assert "--toy-envelope-p-smooth-frames" in help_text   # no flag declared: one is made from the path
    assert any(s.path == "toy_envelope_p.power" for s in analysis_specs())


def test_toy_method_runs_and_lands_in_the_output_folder(toy, sim_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["analyze", str(sim_dir / "transmission.tif"), "-f", str(sim_dir / "fluorescence.tif"),
                 "--rois", str(sim_dir / "rois.json"), "--methods", "bandpass,toy_envelope_p", "--toy-power", "2",
                 "--surrogates", "19", "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["methods"] == ["bandpass", "toy_envelope_p"]
    assert run["parameters"]["toy_envelope_p"] == {"power": 2.0, "smooth_frames": 3}
    assert (out / "scores" / "toy_envelope_p.tif").is_file() and (out / "lags" / "toy_envelope_p.tif").is_file()
    header = (out / "traces.csv").read_text().splitlines()[0].split(",")
    assert "strong/toy_envelope_p" in header
    rows = (out / "roi_scores.csv").read_text().splitlines()
    assert sum(",toy_envelope_p," in r for r in rows) == 4
    back = read_results(out)
    assert back.params.method("toy_envelope_p") == ToyParams(power=2.0)
    # squaring the band-pass (power 2, smoothed) moves with calcium in the strong cell like the band-pass does
    strong = back.score_of("strong", "toy_envelope_p")
    assert strong.score > 0.4 and strong.p_value < 0.1


def test_toy_method_prediction_is_what_it_declares(toy, small_sim):
    params = AnalysisParams(methods=("toy_envelope",), n_surrogates=9)
    res = run_analysis(small_sim.recording(), small_sim.rois, params)
    from scipy import ndimage

    from napari_micromotion.filters import bandpass, design_bandpass
    from napari_micromotion.rois import rasterize

    rec = small_sim.recording()
    mask = rasterize(small_sim.rois, rec.frame_shape).masks[0]
    x = np.asarray(rec.transmission)[:, mask]
    manual = ndimage.uniform_filter1d(np.abs(bandpass(x, design_bandpass(rec.fps))), 3, axis=0).sum(axis=1)
    np.testing.assert_allclose(res.roi_traces[(small_sim.rois[0].name, "toy_envelope")], manual, rtol=1e-4)
    assert res.methods == ["toy_envelope"] and "toy_envelope" in res.score_maps


def test_schema_generates_options_and_refuses_out_of_range(toy, capsys):
    specs = schema.specs(ToyParams, prefix="toy.")
    assert [s.path for s in specs] == ["toy.power", "toy.smooth_frames"]
    assert specs[0].tooltip().startswith("The band-passed signal is raised") and "Range 0.1-4" in specs[0].tooltip()
    p = AnalysisParams(methods=("toy_envelope_p",)).replace_values({"toy_envelope_p.power": 9.0})
    from napari_micromotion.errors import MicromotionError
    from napari_micromotion.pipeline import plan_analysis
    from napari_micromotion.simulate import simulate

    rec = simulate(n_frames=300, size=48, seed=1).recording()
    with pytest.raises(MicromotionError, match="power .toy envelope .parameters.. must be at most 4"):
        plan_analysis(rec, [], p)
    code = main(["analyze", "x.tif", "--methods", "toy_envelope_p", "--toy-power", "9", "--out", "o"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: argument --toy-power: ") and "at most 4" in err


# ---------------------------------------------------------------- tools
@dataclass(frozen=True)
class FlipParams:
    axis: str = param("rows", label="axis", choices=("rows", "cols"), help="Flip the frames up-down or left-right.")


@dataclass
class FlipResult(ToolResult):
    video: np.ndarray | None = None


class FlipTool(Tool):
    name = "toy_flip"
    label = "flip"
    description = "mirror every frame (a test tool registered from a test file)"
    kind = "video -> video"
    Params = FlipParams
    result_type = FlipResult
    layout = [ImageEntry("flipped.tif", "video", "the mirrored video")]

    def iter_run(self, recording, params, *, rois=()):
        out = np.asarray(recording.transmission, np.float32)
        yield Progress("flip", 0.5, "flipping")
        out = out[:, ::-1] if params.axis == "rows" else out[:, :, ::-1]
        return FlipResult(params=params, source={"frames": recording.n_frames}, video=np.ascontiguousarray(out))


@pytest.fixture
def flip_tool():
    TOOLS.register(FlipTool)
    yield TOOLS["toy_flip"]
    TOOLS.unregister("toy_flip")


def test_toy_tool_gets_a_subcommand_and_writes_atomically(flip_tool, sim_dir, tmp_path, capsys):
    assert main(["methods"]) == 0
    assert any(ln.startswith("toy-flip") and "tool (video -> video)" in ln for ln in capsys.readouterr().out.splitlines())
    out = tmp_path / "flipped"
    assert main(["toy-flip", str(sim_dir / "transmission.tif"), "--axis", "cols", "--out", str(out), "-q"]) == 0
    back = flip_tool.read(out)
    assert isinstance(back, FlipResult) and back.params == FlipParams(axis="cols")
    import tifffile

    src = tifffile.imread(sim_dir / "transmission.tif")
    np.testing.assert_array_equal(back.video, src[:, :, ::-1].astype(np.float32))
    record = json.loads((out / "toy_flip.json").read_text())
    assert record["parameters"] == {"axis": "cols"} and "inputs" in record
    # an existing folder is refused without --overwrite, and nothing changes
    before = sorted(p.name for p in out.iterdir())
    code = main(["toy-flip", str(sim_dir / "transmission.tif"), "--out", str(out), "-q"])
    assert code == 2 and "exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]     # no temporary leftovers


def test_frame_ranges_read_like_python_slices():
    from napari_micromotion.errors import MicromotionError

    assert schema.parse_frame_range("6:40") == (6, 40)
    assert schema.parse_frame_range(" 12 : ", 48) == (12, 48) and schema.parse_frame_range(":30", 48) == (0, 30)
    with pytest.raises(MicromotionError, match="needs its STOP here"):
        schema.parse_frame_range("12:")            # nothing to run to: a parameter read before the video is
    for bad in ("6-40", ":", "a:b", "1:2:3", ""):
        with pytest.raises(MicromotionError, match="must look like START:STOP"):
            schema.parse_frame_range(bad, 48)
