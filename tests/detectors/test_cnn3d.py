import numpy as np
import pytest
import torch

from napari_micromotion.detectors.cnn1d import build_cnn1d, count_parameters, predict_cnn1d
from napari_micromotion.detectors.cnn3d import CNN3DParams, build_cnn3d, dense_init, init_from_cnn1d, iter_train_cnn3d
from napari_micromotion.progress import drive


def _net1d(seed=0):
    net = build_cnn1d(seed)
    g = torch.Generator().manual_seed(seed)  # the global RNG's seed varies between pytest runs
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("h,w", [(5, 7), (16, 16)])
def test_table2_layers_shapes_and_parameters(h, w):
    net = build_cnn3d(h, w)
    body = list(net.body)
    assert len(body) == 21 and all(isinstance(c, torch.nn.Conv3d) for c in body)
    assert [c.kernel_size for c in body] == [(3, 1, 1)] * 20 + [(1, 1, 1)]
    assert [c.dilation[0] for c in body] == [1] * 16 + [2, 4, 8, 16] + [1]
    assert net.dense.kernel_size == (1, h, w) and net.dense.in_channels == 3 and net.dense.out_channels == 1
    assert net.drop_in.p == pytest.approx(0.2) and net.drop_feat.p == pytest.approx(0.2)
    assert count_parameters(net) == (3863 - 4) + 3 * h * w + 1
    net.eval()
    with torch.no_grad():
        y = net(torch.randn(2, 1, 256, h, w))
    assert y.shape == (2, 256)


def test_3d_body_is_the_1d_network_per_pixel_and_init_rule():
    h, w = 4, 6
    n1 = _net1d(1)
    n3 = init_from_cnn1d(build_cnn3d(h, w), n1).eval()
    x = torch.randn(1, 1, 300, h, w)
    with torch.no_grad():
        f3 = n3.features(x)                                   # (1, 3, T, h, w)
        per_pixel = x[0, 0].permute(1, 2, 0).reshape(h * w, 1, 300)
        f1 = n1.features(per_pixel).reshape(h, w, 3, 300).permute(2, 3, 0, 1)
        np.testing.assert_allclose(f3[0].numpy(), f1.numpy(), atol=1e-5)
        # dense weights = the 1D CNN's final 3 weights / (h * w); bias = the 1D bias
        w22 = n1.head.weight[0, :, 0].numpy()
        dw = n3.dense.weight[0, :, 0].numpy()
        for k in range(3):
            np.testing.assert_allclose(dw[k], np.full((h, w), w22[k] / (h * w)), rtol=1e-6)
        assert n3.dense.bias.item() == pytest.approx(n1.head.bias.item())
        # so the untrained 3D network predicts the ROI mean of the 1D prediction
        y3 = n3(x)[0].numpy()
        y1 = n1(per_pixel)[:, 0].mean(dim=0).numpy()
        np.testing.assert_allclose(y3, y1, atol=1e-5)
    weights, bias = dense_init(w22, 0.5, h, w)
    assert weights.shape == (3, h, w) and bias == 0.5


def _roi_problem(t=2400, h=8, w=8, seed=0):
    rng = np.random.default_rng(seed)
    target = np.zeros(t, np.float32)
    onsets = np.arange(40, t - 100, 150)
    for s in onsets:
        target[s:s + 50] += np.exp(-np.arange(50) / 12.0)
    target = (target - target.mean()) / target.std()
    x = rng.normal(size=(t, h, w)).astype(np.float32)
    burst = np.sin(np.arange(10) * np.pi / 5) * 4
    for s in onsets:
        x[s:s + 10, :3, :3] += burst[:, None, None]   # only a corner of the box moves
    return x, target


@pytest.fixture(scope="module")
def trained_1d():
    """A 1D CNN trained on the pixels of the ROI problem (as the pipeline does before the 3D network)."""
    from napari_micromotion.detectors.cnn1d import CNN1DParams
    from napari_micromotion.detectors.training import train_cnn1d

    x, y = _roi_problem()
    cols = x.reshape(x.shape[0], -1).T
    net, _, epochs = train_cnn1d(cols, y, [(600, 2400)], CNN1DParams(epochs=6, window=600, batch_size=4, seed=0,
                                                                     device="cpu"))
    assert epochs[-1] < 0.95 * epochs[0]  # it learned the burst
    return net


@pytest.mark.parametrize("solver", ["adam", "ridge"])
def test_fast_mode_learns_attention_and_reduces_loss(solver, trained_1d):
    x, y = _roi_problem()
    net1d = trained_1d
    params = CNN3DParams(mode="fast", solver=solver, epochs=60, learning_rate=2e-4, mc_passes=5, seed=1)
    model = drive(iter_train_cnn3d("r", (0, 8, 0, 8), x, y, [(600, 2400)], net1d, params))
    assert model.weights.shape == (3, 8, 8) and model.prediction.shape == (2400,)
    assert model.mc_sd.shape == (2400,) and (model.mc_sd >= 0).all() and model.mc_sd.mean() > 0
    # the moving corner gets more weight than the still rest of the box
    mag = np.abs(model.weights).sum(axis=0)
    assert mag[:3, :3].mean() > 1.5 * mag[4:, 4:].mean()
    if solver == "adam":
        assert np.mean(model.loss_curve[-20:]) < np.mean(model.loss_curve[:20])
    # better than the initial (ROI-mean of 1D) prediction on the held-out frames
    feats_mean = predict_cnn1d(net1d, x.reshape(2400, -1)).mean(axis=1)
    err_init = np.mean((feats_mean[:600] - y[:600]) ** 2)
    err_model = np.mean((model.prediction[:600] - y[:600]) ** 2)
    assert err_model < err_init


def test_paper_mode_trains_all_layers():
    x, y = _roi_problem(t=600, h=4, w=4)
    net1d = _net1d(4)
    params = CNN3DParams(mode="paper", epochs=2, learning_rate=1e-3, mc_passes=2, seed=0, device="cpu")
    model = drive(iter_train_cnn3d("r", (0, 4, 0, 4), x, y, [(100, 600)], net1d, params))
    assert model.net is not None and len(model.loss_curve) > 0
    assert not torch.equal(model.net.body[0].weight.detach(), net1d.body[0].weight.detach().reshape(8, 1, 3, 1, 1))
    assert model.prediction.shape == (600,) and model.weights.shape == (3, 4, 4)
