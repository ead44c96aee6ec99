"""``micromotion interpolate`` keeps the input's data type where ImageJ can open it.

uint32 and int32 (which tifffile's ImageJ mode refuses) keep their values bit for bit, also above
2^24 where float32 would round them; int16 stays int16; float16, which ImageJ cannot open, is
written as float32 without losing a value; float64 becomes float32 and says so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_micromotion.cli import main
from napari_micromotion.io import read_recording
from napari_micromotion.tools import TOOLS

N, SIZE, FPS = 16, 24, 20.0
FAST = ["--factor", "2", "--method", "linear", "--threads", "1", "--max-heldout", "2", "--finetune-epochs", "0"]


def _video(dtype):
    """A textured field with a bright blob moving across it, in *dtype*'s range (above 2^24 for 32-bit types)."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    texture = rng.integers(0, 1000, (SIZE, SIZE))
    frames = np.stack([texture + 3000 * np.exp(-((yy - 12) ** 2 + (xx - 4 - t) ** 2) / 18) for t in range(N)])
    if dtype in (np.uint32, np.int32):
        return (frames.round().astype(np.int64) + 2**30 + 12345).astype(dtype)   # odd low bits: float32 rounds them
    if dtype == np.int16:
        return (frames.round() - 2000).astype(np.int16)                             # negative values too
    return (frames / 7.0 + 0.3).astype(dtype)


@pytest.mark.parametrize("dtype, written, exact", [
    (np.uint32, np.uint32, True), (np.int32, np.int32, True), (np.int16, np.int16, True),
    (np.float16, np.float32, True), (np.float64, np.float32, False),
])
def test_interpolated_tif_keeps_the_input_data_type_and_its_measured_frames(tmp_path, dtype, written, exact):
    src = _video(dtype)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, src)
    out = tmp_path / "out"
    assert main(["interpolate", str(path), "--fps", str(FPS), "--pixel-size", "0.5", "--out", str(out), "-q",
                 *FAST]) == 0
    with tifffile.TiffFile(out / "interpolated.tif") as tf:
        got = tf.asarray()
        ij = tf.imagej_metadata
    assert got.dtype == written and got.shape == (2 * N - 1, SIZE, SIZE)
    if exact:                                   # measured frames bit for bit (as values of the written type)
        assert np.array_equal(got[::2], src.astype(written))
    else:
        np.testing.assert_allclose(got[::2], src, rtol=1e-6)
    blend = (src[:-1].astype(np.float64) + src[1:]) / 2                   # linear: the midpoint of its neighbours
    tol = 256 if np.dtype(dtype).itemsize == 4 and np.dtype(dtype).kind in "iu" else 0.02 * np.abs(blend).max()
    assert np.abs(got[1::2].astype(np.float64) - blend).max() <= tol
    assert ij["Labels"][:3] == ["measured", "synthesized", "measured"] and ij["finterval"] == pytest.approx(0.5 / FPS)
    assert ij["unit"] == "um"
    rec = read_recording(out / "interpolated.tif")                        # what analyze reads: rate, marker, type
    assert rec.fps == pytest.approx(2 * FPS) and rec.pixel_size_um == pytest.approx(0.5)
    assert rec.provenance["synthesized_frames"]["synthesized_frames"] == N - 1
    assert rec.transmission.dtype == written and np.array_equal(rec.transmission, got)
    back = TOOLS["interpolate"].read(out)
    assert back.frames.dtype == written and np.array_equal(back.frames, got)
    warnings = json.loads((out / "interpolate.json").read_text())["warnings"]
    assert any("written as float32" in w for w in warnings) == (not exact)
