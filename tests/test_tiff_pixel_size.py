"""Output TIFFs record the pixel size, so Fiji measures maps in micrometres, and still read back unchanged.

2D maps become ImageJ TIFFs (``unit=um``, pixels per micrometre in the resolution tags); stacks
whose JSON metadata matters (region maps with their box, blur flow's five named channels) stay
plain TIFFs with the resolution tags in pixels per centimetre.  An unknown pixel size writes
nothing about it.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from napari_micromotion.layout import ImageEntry, MapsEntry, RegionMapsEntry, read_tif
from napari_micromotion.results import RegionMap
from napari_micromotion.tools import TOOLS

PX_UM = 0.65


def _scale(path):
    """``(pixel size in um or None, ImageJ metadata, shaped metadata)`` as a TIFF reader sees them."""
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        num, den = page.tags["XResolution"].value
        unit = int(page.tags["ResolutionUnit"].value)
        ij, shaped = tf.imagej_metadata, (tf.shaped_metadata or [None])[0]
    if ij and ij.get("unit") == "um":
        return den / num, ij, shaped
    if unit == 3:                                                # centimetre
        return 1e4 * den / num, ij, shaped
    return None, ij, shaped


def _ramp(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_images_and_maps_are_imagej_tiffs_in_micrometres_and_read_back_bit_for_bit(tmp_path):
    still, score = _ramp((24, 32), 1), _ramp((24, 32), 2)
    res = SimpleNamespace(pixel_size_um=PX_UM, still=still, lag_maps={"bandpass": score})
    ImageEntry("maps/still.tif", "still").write(res, tmp_path)
    MapsEntry("lags/{method}.tif", "lag_maps", unit="s").write(res, tmp_path)
    px, ij, _ = _scale(tmp_path / "maps/still.tif")
    assert px == pytest.approx(PX_UM, rel=1e-6) and ij["unit"] == "um"
    px, ij, _ = _scale(tmp_path / "lags/bandpass.tif")
    assert px == pytest.approx(PX_UM, rel=1e-6)
    assert ij["vunit"] == "s" and ij["method"] == "bandpass"      # the values' unit is not the pixels' unit
    for path, want in ((tmp_path / "maps/still.tif", still), (tmp_path / "lags/bandpass.tif", score)):
        back = read_tif(path)
        assert back.dtype == np.float32 and back.shape == want.shape and np.array_equal(back, want)
        with tifffile.TiffFile(path) as tf:
            assert tf.series[0].axes == "YX"
    fields: dict = {}
    MapsEntry("lags/{method}.tif", "lag_maps", unit="s").read(tmp_path, fields)
    assert list(fields["lag_maps"]) == ["bandpass"] and np.array_equal(fields["lag_maps"]["bandpass"], score)


def test_an_unknown_pixel_size_writes_nothing_about_it(tmp_path):
    res = SimpleNamespace(pixel_size_um=None, still=_ramp((16, 16)), lag_maps={"bandpass": _ramp((16, 16))})
    ImageEntry("maps/still.tif", "still").write(res, tmp_path)
    MapsEntry("lags/{method}.tif", "lag_maps", unit="s").write(res, tmp_path)
    for name in ("maps/still.tif", "lags/bandpass.tif"):
        px, ij, _ = _scale(tmp_path / name)
        assert px is None and ij is None
    assert _scale(tmp_path / "lags/bandpass.tif")[2]["unit"] == "s"     # as before: JSON metadata


def test_region_maps_keep_their_box_and_axes_and_get_the_resolution_tags(tmp_path):
    data = _ramp((3, 10, 12))
    res = SimpleNamespace(pixel_size_um=PX_UM, region_maps={("cnn3d", "cell 1"): RegionMap((4, 14, 2, 14), data)})
    RegionMapsEntry().write(res, tmp_path)
    path = next(tmp_path.rglob("*.tif"))
    px, ij, shaped = _scale(path)
    assert px == pytest.approx(PX_UM, rel=1e-6) and ij is None
    assert shaped["axes"] == "CYX" and shaped["box_row0_row1_col0_col1"] == [4, 14, 2, 14]
    fields = {"methods": ["cnn3d"]}
    RegionMapsEntry().read(tmp_path, fields)
    got = fields["region_maps"][("cnn3d", "cell 1")]
    assert got.box == (4, 14, 2, 14) and np.array_equal(got.data, data)
    from napari_micromotion.io import _imagej_pixel_size  # what micromotion itself reads from such a file

    with tifffile.TiffFile(path) as tf:
        assert _imagej_pixel_size(tf) == pytest.approx(PX_UM, rel=1e-6)


def test_an_analysis_folder_has_its_maps_in_micrometres_and_reads_back_unchanged(small_sim, tmp_path):
    from napari_micromotion.export import write_results
    from napari_micromotion.pipeline import AnalysisParams, run_analysis
    from napari_micromotion.results_io import read_results

    rec = small_sim.recording()
    assert rec.pixel_size_um
    res = run_analysis(rec, small_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=9, seed=1))
    write_results(res, tmp_path / "out", report=False)
    for name in ("scores/bandpass.tif", "lags/bandpass.tif", "maps/still.tif", "maps/energy.tif"):
        px, ij, _ = _scale(tmp_path / "out" / name)
        assert px == pytest.approx(rec.pixel_size_um, rel=1e-6) and ij["unit"] == "um", name
    back = read_results(tmp_path / "out")
    assert np.array_equal(back.score_maps["bandpass"], res.score_maps["bandpass"])
    assert np.array_equal(back.lag_maps["bandpass"], res.lag_maps["bandpass"])
    assert np.array_equal(back.still, res.still) and back.still.dtype == np.float32
    assert np.array_equal(back.energy_map, res.energy_map)
    assert not back.warnings or all("could not read" not in w for w in back.warnings)


def test_motion_maps_are_in_micrometres(tmp_path):
    from napari_micromotion.simulate import simulate
    from napari_micromotion.tools.motion import MotionParams

    rec = simulate(n_frames=40, size=48, seed=5).recording()
    rec = replace(rec, pixel_size_um=0.5)
    tool = TOOLS["motion"]
    res = tool.run(rec, MotionParams())
    tool.write(res, tmp_path / "motion")
    for name, field in (("displacement_max", "displacement_max"), ("direction", "direction"),
                        ("reference", "reference_image")):
        px, ij, _ = _scale(tmp_path / "motion" / "maps" / f"{name}.tif")
        assert px == pytest.approx(0.5, rel=1e-6) and ij["unit"] == "um", name
    back = tool.read(tmp_path / "motion")
    assert np.array_equal(back.displacement_max, np.asarray(res.displacement_max, np.float32))
    assert np.array_equal(back.direction, np.asarray(res.direction, np.float32))
    assert back.displacement_max.shape == rec.frame_shape


@pytest.mark.parametrize("pixel_size_um", [0.4, None])
def test_blur_flow_stack_keeps_its_channels_and_gets_the_pixel_size_given(tmp_path, pixel_size_um):
    from napari_micromotion.tools.blurflow import CHANNEL_UNITS, BlurFlowToolParams, BlurFlowToolResult

    flow = _ramp((5, 20, 24))
    res = BlurFlowToolResult(params=BlurFlowToolParams(pixel_size_um=pixel_size_um), flow=flow)
    tool = TOOLS["blur_flow"]
    tool.write(res, tmp_path / "bf")
    px, ij, shaped = _scale(tmp_path / "bf" / "blur_flow.tif")
    assert ij is None and shaped["channels"] == list(CHANNEL_UNITS) and shaped["axes"] == "CYX"
    assert px == (pytest.approx(pixel_size_um, rel=1e-6) if pixel_size_um else None)
    back = tool.read(tmp_path / "bf")
    assert back.flow.shape == (5, 20, 24) and np.array_equal(back.flow, flow)


def test_cells_images_are_in_micrometres_and_the_pixel_size_reads_back(tmp_path):
    from napari_micromotion.tools.cells import CellsResult

    tool = TOOLS["cells"]
    mean, corr = _ramp((32, 40), 3), _ramp((32, 40), 4)
    res = CellsResult(params=tool.Params(), frame_shape=(32, 40), fps=10.0, pixel_size_um=0.8, mean_image=mean,
                      correlation_image=corr)
    tool.write(res, tmp_path / "cells")
    for name in ("mean_image.tif", "correlation_image.tif"):
        px, ij, _ = _scale(tmp_path / "cells" / name)
        assert px == pytest.approx(0.8, rel=1e-6) and ij["unit"] == "um", name
    back = tool.read(tmp_path / "cells")
    assert back.pixel_size_um == pytest.approx(0.8)
    assert np.array_equal(back.mean_image, mean) and np.array_equal(back.correlation_image, corr)
    # the run itself takes the recording's pixel size
    from napari_micromotion.simulate import simulate

    rec = simulate(n_frames=300, size=48, seed=7, firing="independent").recording()
    assert rec.pixel_size_um
    ran = tool.run(rec, tool.Params(threads=1))
    assert ran.pixel_size_um == pytest.approx(rec.pixel_size_um)


def test_interpolation_uncertainty_is_an_imagej_video_with_the_pixel_size(tmp_path):
    from napari_micromotion.tools.interpolate import InterpolateParams, InterpolateResult

    frames = np.arange(5 * 16 * 16, dtype=np.uint16).reshape(5, 16, 16)
    unc = _ramp((5, 16, 16))
    res = InterpolateResult(params=InterpolateParams(), fps=50.0, factor=2, frames=frames, uncertainty=unc,
                            measured=np.array([1, 0, 1, 0, 1], bool), pixel_size_um=0.3)
    tool = TOOLS["interpolate"]
    tool.write(res, tmp_path / "ip")
    px, ij, _ = _scale(tmp_path / "ip" / "uncertainty.tif")
    assert px == pytest.approx(0.3, rel=1e-6) and ij["finterval"] == pytest.approx(1 / 50.0)
    assert np.array_equal(read_tif(tmp_path / "ip" / "uncertainty.tif"), unc)
    back = tool.read(tmp_path / "ip")
    assert np.array_equal(back.uncertainty, unc) and back.uncertainty.shape == (5, 16, 16)
