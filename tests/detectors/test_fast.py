"""The fused CPU kernel of the Table 1 network equals the PyTorch network (random weights).

Shapes cover: fewer frames than a tile and than the receptive field, frame counts
that are not a multiple of the tile, several tiles, pixel counts that are not a
multiple of the SIMD lanes; features mode; the 'same' zero padding at both ends;
inputs that are not contiguous float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_micromotion.detectors import cnn1d, fast


def _random_net(seed: int):
    net = cnn1d.build_cnn1d(seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)   # weights and (non-zero) biases
    return net.eval()


def _torch(net, x: np.ndarray, features: bool = False) -> np.ndarray:
    xb = torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).T))[:, None]
    with torch.no_grad():
        if features:
            return net.features(xb).permute(2, 0, 1).numpy()      # (T, P, 3)
        return net(xb)[:, 0].T.numpy()                             # (T, P)


@pytest.fixture(scope="module")
def net():
    return _random_net(7)


@pytest.mark.parametrize("n_t,n_p,tile", [
    (1, 1, 2048),        # a single frame: everything is padding
    (5, 3, 2048),        # far fewer frames than the receptive field
    (93, 17, 2048),      # exactly one receptive field, P not a multiple of the lanes
    (300, 16, 2048),     # one tile, one full block
    (1000, 33, 256),     # several tiles, T not a multiple of the tile, a partial block
    (2049, 40, 2048),    # one frame more than a tile
    (700, 70, 93),       # tiles shorter than the halo on each side
])
def test_kernel_equals_torch(net, n_t, n_p, tile):
    x = np.random.default_rng(n_t + n_p).standard_normal((n_t, n_p)).astype(np.float32)
    got = fast.cnn1d_forward(fast.weights_of(net), x, tile=tile)
    ref = _torch(net, x)
    assert got.shape == (n_t, n_p) and got.dtype == np.float32
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("n_t,n_p,tile", [(50, 5, 2048), (1500, 19, 512)])
def test_features_equal_torch(net, n_t, n_p, tile):
    x = np.random.default_rng(1).standard_normal((n_t, n_p)).astype(np.float32)
    got = fast.cnn1d_forward(fast.weights_of(net), x, features=True, tile=tile)
    ref = _torch(net, x, features=True)
    assert got.shape == (n_t, n_p, 3)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_zero_padding_at_both_ends(net):
    """A step at the very first/last frame: the ends see zeros beyond the recording, as in PyTorch."""
    x = np.zeros((400, 4), np.float32)
    x[0] = 3.0
    x[-1] = -2.0
    x[:, 3] = 1.0
    got = fast.cnn1d_forward(fast.weights_of(net), x, tile=128)
    ref = _torch(net, x)
    np.testing.assert_allclose(got[:60], ref[:60], atol=1e-5)
    np.testing.assert_allclose(got[-60:], ref[-60:], atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda a: a[:, ::2],                        # strided columns
    lambda a: a[10:-10, 3:40],                  # a window of a wider array (row stride > width)
    lambda a: np.asfortranarray(a),             # column-major
    lambda a: a.astype(np.float64),             # another dtype
    lambda a: a[::-1],                          # negative strides
])
def test_inputs_that_are_not_contiguous_float32(net, make):
    base = np.random.default_rng(2).standard_normal((600, 80)).astype(np.float32)
    x = make(base)
    got = fast.cnn1d_forward(fast.weights_of(net), x, tile=256)
    ref = _torch(net, np.asarray(x, np.float32))
    assert np.abs(got - ref).max() <= 1e-4


def test_memmap_view(net, tmp_path):
    data = np.random.default_rng(3).standard_normal((300, 6, 7)).astype(np.float32)
    path = tmp_path / "x.raw"
    data.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=data.shape)
    view = mm[:, 1:4, :].reshape(300, -1)
    got = fast.cnn1d_forward(fast.weights_of(net), view)
    assert np.abs(got - _torch(net, data[:, 1:4, :].reshape(300, -1))).max() <= 1e-4


def test_same_result_with_one_or_two_threads(net):
    import numba

    x = np.random.default_rng(4).standard_normal((500, 50)).astype(np.float32)
    w = fast.weights_of(net)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fast.cnn1d_forward(w, x)
        numba.set_num_threads(max(1, min(2, numba.config.NUMBA_NUM_THREADS)))
        two = fast.cnn1d_forward(w, x)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_empty_inputs(net):
    w = fast.weights_of(net)
    assert fast.cnn1d_forward(w, np.zeros((0, 5), np.float32)).shape == (0, 5)
    assert fast.cnn1d_forward(w, np.zeros((10, 0), np.float32), features=True).shape == (10, 0, 3)
    with pytest.raises(ValueError):
        fast.cnn1d_forward(w, np.zeros(10, np.float32))


def test_predict_cnn1d_uses_the_kernel_on_cpu(net):
    x = np.random.default_rng(5).standard_normal((200, 9)).astype(np.float32)
    np.testing.assert_allclose(cnn1d.predict_cnn1d(net, x, device="cpu", edges="zero"), _torch(net, x), atol=1e-4)


@pytest.mark.parametrize("t", [300, 40, 2])
def test_reflected_edges_are_the_network_on_the_mirrored_series(net, t):
    x = np.random.default_rng(6).standard_normal((t, 5)).astype(np.float32)
    ext = fast.extend_edges(x)
    assert ext.shape == (t + 2 * fast.HALO, 5)
    np.testing.assert_array_equal(ext[fast.HALO:fast.HALO + t], x)
    if t > 1:  # mirrored without repeating the edge frame
        np.testing.assert_array_equal(ext[fast.HALO - 1], x[1])
    ref = _torch(net, ext)[fast.HALO:fast.HALO + t]
    w = fast.weights_of(net)
    np.testing.assert_allclose(fast.cnn1d_forward(w, x, edges="reflect"), ref, atol=1e-4)
    np.testing.assert_allclose(cnn1d.predict_cnn1d(net, x), ref, atol=1e-4)  # reflect is the default
    np.testing.assert_allclose(cnn1d.predict_torch(net, x, device="cpu", chunk_pixels=3, features=False,
                                                    edges="reflect"), ref, atol=1e-4)
    feats = fast.cnn1d_forward(w, x, features=True, edges="reflect")
    assert feats.shape == (t, 5, 3)
    with pytest.raises(ValueError, match="edges"):
        fast.cnn1d_forward(w, x, edges="wrap")


def test_reflected_edges_remove_the_padding_transient(net):
    # a stationary input: with zero padding the first and last outputs leave the range of the rest,
    # with reflected edges they stay inside it
    x = np.random.default_rng(7).standard_normal((1200, 64)).astype(np.float32)
    w = fast.weights_of(net)
    h = fast.HALO

    def edge_excess(y):
        mid = y[2 * h:-2 * h]
        z = (y - mid.mean(axis=0)) / mid.std(axis=0)
        return np.abs(np.r_[z[:h // 2], z[-h // 2:]].mean(axis=1)).max()

    zero, refl = edge_excess(fast.cnn1d_forward(w, x)), edge_excess(fast.cnn1d_forward(w, x, edges="reflect"))
    assert refl < 1.0 < zero
