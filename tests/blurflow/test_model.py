"""The blur-flow U-Net: output shape, size limits, target encoding, save/load and refusals."""

import json
import pickle

import numpy as np
import pytest
import torch

from napari_micromotion.blurflow.model import (
    ARCHITECTURE,
    NetConfig,
    TrainedBlurFlow,
    build_net,
    count_parameters,
    decode_output,
    encode_targets,
    load_blur_flow,
    normalise_image,
    save_blur_flow,
)
from napari_micromotion.blurflow.psf import Optics
from napari_micromotion.errors import MicromotionError


def _trained(seed=0):
    net = build_net(NetConfig(), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    return TrainedBlurFlow(net=net.eval(), config=NetConfig(), optics=Optics(), params={"steps": 3},
                           loss_curve=[0.5, 0.4, 0.3], validation=[(3, 0.1)], seconds=1.5, seed=seed, n_images=48)


def test_output_shape_any_size_and_parameter_budget():
    net = build_net(NetConfig()).eval()
    for shape in ((64, 64), (96, 160)):
        with torch.inference_mode():
            out = net(torch.rand(2, 1, *shape))
        assert out.shape == (2, 5, *shape)
    n = count_parameters(net)
    assert 200_000 < n < 2_500_000          # float32: < 10 MB of weights
    a = build_net(NetConfig(), seed=1).state_dict()
    b = build_net(NetConfig(), seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)      # seeded initialisation


def test_target_encoding_is_sign_free_and_decodes_to_the_half_plane():
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, (2, 4, 4)).astype(np.float32)
    truth = np.concatenate([v, rng.uniform(0, 1, (3, 4, 4)).astype(np.float32)])
    flipped = truth.copy()
    flipped[:2] *= -1
    np.testing.assert_allclose(encode_targets(truth), encode_targets(flipped), atol=1e-6)
    enc = encode_targets(truth)
    out = enc.copy()
    out[4] = 10.0                            # validity logit -> ~1
    dec = decode_output(out)
    assert np.all(dec[1] >= 0)
    np.testing.assert_allclose(np.abs(dec[:2]), np.abs(v), atol=1e-5)                           # |v1|, |v2| kept
    np.testing.assert_allclose(dec[0] * dec[1], v[0] * v[1], atol=1e-5)                          # axis kept
    np.testing.assert_allclose(dec[2:4], truth[2:4], atol=1e-6)
    assert np.all(dec[4] > 0.99)


def test_normalisation_is_robust_to_offset_gain_and_dtype():
    rng = np.random.default_rng(1)
    img = rng.poisson(100, (50, 60)).astype(np.float64)
    a = normalise_image(img)
    b = normalise_image((img * 3 + 1000).astype(np.uint16))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert normalise_image(np.full((8, 8), 7)).max() == 0


def test_save_load_round_trip_and_file_size(tmp_path):
    m = _trained()
    path = save_blur_flow(m, tmp_path / "bf")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    assert path.stat().st_size <= 10 * 2 ** 20
    back = load_blur_flow(path)
    sa, sb = m.net.state_dict(), back.net.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        assert torch.equal(m.net(x), back.net(x))
    assert back.loss_curve == [0.5, 0.4, 0.3] and back.validation == [(3, 0.1)] and back.optics == Optics()
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["architecture"] == ARCHITECTURE and side["architecture_version"] == 1
    assert side["n_parameters"] == count_parameters(m.net) and "torch" in side["package_versions"]
    assert side["training_params"] == {"steps": 3} and side["optics"]["na"] == 0.3


def test_wrong_architecture_pickles_and_mismatched_shapes_are_refused(tmp_path):
    path = save_blur_flow(_trained(), tmp_path / "bf.safetensors")
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, "architecture": "rinner2020-cnn1d"}))
    with pytest.raises(MicromotionError, match="rinner2020-cnn1d") as exc:
        load_blur_flow(path)
    assert "\n" not in str(exc.value)
    side.write_text(json.dumps({**meta, "architecture_version": 7}))
    with pytest.raises(MicromotionError, match="version 7"):
        load_blur_flow(path)
    side.write_text(json.dumps({**meta, "net_config": {**meta["net_config"], "widths": [8, 16, 32, 64, 64]}}))
    with pytest.raises(MicromotionError, match="does not match"):
        load_blur_flow(path)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"w": [1, 2]}))
    evil.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(MicromotionError, match="pickle"):
        load_blur_flow(evil)
    with pytest.raises(MicromotionError, match="does not exist"):
        load_blur_flow(tmp_path / "missing.safetensors")
