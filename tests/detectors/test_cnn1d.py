import numpy as np
import pytest
import torch

from napari_micromotion.detectors.cnn1d import (
    CNN1DParams,
    build_cnn1d,
    count_parameters,
    normalise_columns,
    predict_cnn1d,
    predict_reference,
    receptive_field,
    training_windows,
)
from napari_micromotion.detectors.training import train_cnn1d


def test_table1_layers_and_parameters():
    net = build_cnn1d(0)
    convs = list(net.body) + [net.head]
    assert len(convs) == 22                                   # Conv1 .. Conv22
    assert [c.out_channels for c in convs] == [8] * 20 + [3, 1]
    assert [c.in_channels for c in convs] == [1] + [8] * 20 + [3]
    assert [c.kernel_size[0] for c in convs] == [3] * 20 + [1, 1]
    assert [c.dilation[0] for c in convs] == [1] * 16 + [2, 4, 8, 16] + [1, 1]
    assert [c.padding[0] for c in convs] == [1] * 16 + [2, 4, 8, 16] + [0, 0]  # 'same'
    assert count_parameters(net) == 3863 == 32 + 15 * 200 + 4 * 200 + 27 + 4
    assert receptive_field() == 93


@pytest.mark.parametrize("t", [1, 7, 93, 256, 1001])
def test_output_length_equals_input_length(t):
    net = build_cnn1d(1)
    with torch.no_grad():
        y = net(torch.randn(3, 1, t))
        f = net.features(torch.randn(3, 1, t))
    assert y.shape == (3, 1, t) and f.shape == (3, 3, t)
    assert (f >= 0).all()  # Conv21 is ReLU; Conv22 is linear


def test_glorot_uniform_init_and_seed():
    a, b, c = build_cnn1d(5), build_cnn1d(5), build_cnn1d(6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.body[3].weight, c.body[3].weight)
    for conv in list(a.body) + [a.head]:
        fan_in = conv.in_channels * conv.kernel_size[0]
        fan_out = conv.out_channels * conv.kernel_size[0]
        limit = np.sqrt(6 / (fan_in + fan_out))
        w = conv.weight.detach().numpy()
        assert np.abs(w).max() <= limit + 1e-7
        if w.size >= 192:  # Conv2-20: uniform on [-limit, limit] has SD limit / sqrt(3)
            assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.2)
        assert np.all(conv.bias.detach().numpy() == 0)


def test_linear_output_can_be_negative():
    net = build_cnn1d(0)
    with torch.no_grad():
        net.head.bias.fill_(-5.0)
        assert (net(torch.zeros(1, 1, 10)) < 0).all()


def test_fused_kernel_equals_torch_reference():
    net = build_cnn1d(2)
    g = torch.Generator().manual_seed(2)  # the global RNG's seed varies between pytest runs
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    x = np.random.default_rng(0).standard_normal((1500, 70)).astype(np.float32)
    ref = predict_reference(net, x)
    fast = predict_cnn1d(net, x, device="cpu", edges="zero")
    assert np.abs(fast - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    feats = predict_cnn1d(net, x, device="cpu", features=True, edges="zero")
    with torch.no_grad():
        rf = net.features(torch.from_numpy(x.T.copy()).unsqueeze(1)).permute(2, 0, 1).numpy()
    assert np.abs(feats - rf).max() <= 1e-4 * max(1.0, np.abs(rf).max())


def test_training_windows_tile_segments():
    w = training_windows([(0, 100), (300, 2500)], 1024)
    assert w[0] == (0, 100)                        # short segment, but longer than the receptive field
    assert (300, 1324) in w and w[-1] == (1476, 2500)
    assert training_windows([(0, 50)], 1024) == []  # shorter than the receptive field


def _planted(n_pix=64, t=3000, seed=0):
    rng = np.random.default_rng(seed)
    target = np.zeros(t, np.float32)
    onsets = np.arange(50, t - 100, 140)
    for s in onsets:
        target[s:s + 60] += np.exp(-np.arange(60) / 15.0)
    burst = np.sin(np.arange(12) * np.pi / 6)
    x = rng.normal(size=(n_pix, t)).astype(np.float32) * 0.3
    amp = rng.uniform(0.3, 2.0, n_pix)
    for s in onsets:
        x[:, s:s + 12] += amp[:, None] * burst
    return x, (target - target.mean()) / target.std()


def test_training_reduces_the_loss_and_is_deterministic():
    x, y = _planted()
    params = CNN1DParams(epochs=3, n_pixels=64, window=512, batch_size=8, seed=3, device="cpu")
    net, losses, epochs = train_cnn1d(x, y, [(0, 3000)], params)
    assert epochs[-1] < 0.6 * epochs[0] and epochs[-1] < 0.5
    net2, losses2, _ = train_cnn1d(x, y, [(0, 3000)], params)
    assert losses == losses2
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_noise_normalisation_is_signal_to_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 3)).astype(np.float32) * np.array([1.0, 10.0, 0.0], np.float32)
    x[1000:1010, 0] += 50
    z = normalise_columns(x, np.ones(3), "noise")
    quiet = np.r_[0:990, 1020:5000]
    np.testing.assert_allclose(z[quiet, :2].std(axis=0), [1.0, 1.0], rtol=0.1)  # the burst does not set the scale
    assert z[1005, 0] > 30
    assert np.all(z[:, 2] == 0)
    rel = normalise_columns(x, np.array([2.0, 2.0, 2.0]), "relative")
    np.testing.assert_allclose(rel, x / 2)
