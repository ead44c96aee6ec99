"""Prediction: any size and dtype, tiling without seams, one-sentence refusals, the shipped model."""

import numpy as np
import pytest

from napari_micromotion.blurflow.model import NetConfig, TrainedBlurFlow, build_net
from napari_micromotion.blurflow.predict import (
    CHANNELS,
    BlurFlowResult,
    default_model_path,
    load_default_model,
    predict_blur_flow,
)
from napari_micromotion.blurflow.psf import Optics
from napari_micromotion.errors import MicromotionError


@pytest.fixture(scope="module")
def random_model():
    import torch

    net = build_net(NetConfig(), seed=3)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return TrainedBlurFlow(net=net.eval(), config=NetConfig(), optics=Optics())


@pytest.mark.parametrize("shape,dtype", [((101, 77), np.uint16), ((16, 300), np.float64), ((64, 64), np.uint8)])
def test_any_size_and_dtype(random_model, shape, dtype):
    img = (np.random.default_rng(0).random(shape) * 200).astype(dtype)
    r = predict_blur_flow(img, random_model)
    assert isinstance(r, BlurFlowResult)
    assert r.flow.shape == (5, *shape) and r.flow.dtype == np.float32 and np.isfinite(r.flow).all()
    assert np.all(r.v_x_px >= 0) and np.all((r.validity >= 0) & (r.validity <= 1))
    assert len(CHANNELS) == 5 and r.axial_unit_um == pytest.approx(Optics().axial_unit_um)
    np.testing.assert_allclose(r.normalised[:2] * r.blur_px_per_unit, r.flow[:2], rtol=1e-6)


def test_tiles_blend_without_seams_and_give_the_whole_images_maps(random_model):
    img = np.random.default_rng(1).poisson(100, (200, 230)).astype(np.float32)
    whole = predict_blur_flow(img, random_model, tile_px=512).flow
    tiled = predict_blur_flow(img, random_model, tile_px=128, overlap_px=32).flow
    assert tiled.shape == whole.shape and np.isfinite(tiled).all()
    # tiles start at x = 0, 96, 102 and y = 0, 72: no step where one tile hands over to the next
    for c in (2, 3):
        jumps = np.abs(np.diff(tiled[c], axis=1))
        typical = np.percentile(jumps, 99)
        for seam in (96, 128, 192):
            assert jumps[:, seam - 2:seam + 2].max() <= 3 * typical + 1e-6
    # each tile reads its context on the network's grid: the tile size changes memory, not the maps
    # (without the context and the grid the lateral blur moved by 0.4 px on average and up to 2 px)
    np.testing.assert_allclose(tiled, whole, atol=5e-3)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 10)), "empty"),
    (np.full((40, 40), np.nan), "NaN"),
    (np.zeros((3, 40, 40)), "2D"),
    (np.zeros(50), "2D"),
    (np.zeros((8, 40)), "at least"),
    (np.zeros((40, 40), complex), "real numbers"),
])
def test_bad_images_are_refused_in_one_sentence(random_model, bad, match):
    with pytest.raises(MicromotionError, match=match) as exc:
        predict_blur_flow(bad, random_model)
    msg = str(exc.value)
    assert "\n" not in msg and msg.endswith(".")


def test_leading_singleton_axes_are_dropped(random_model):
    img = np.random.default_rng(2).random((1, 1, 48, 40))
    assert predict_blur_flow(img, random_model).flow.shape == (5, 48, 40)


def test_shipped_model_is_package_data_and_small():
    path = default_model_path()
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.stat().st_size <= 10 * 2 ** 20
    m = load_default_model()
    assert m.n_images > 0 and m.seconds > 0 and len(m.loss_curve) == m.params["steps"]
