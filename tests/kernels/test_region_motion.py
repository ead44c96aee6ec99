"""Region traces from block fields with the noise components removed, against planted motions."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_micromotion.kernels.contraction import find_contraction_beats
from napari_micromotion.kernels.region_motion import RegionFields, low_rank

FPS = 50.0
N = 64


def _beats(onsets_s, n):
    t = np.arange(n) / FPS
    y = np.zeros(n)
    for o in onsets_s:
        dt = np.maximum(t - o, 0)
        y += (1 - np.exp(-dt / 0.05)) * np.exp(-dt / 0.15)
    return y / y.max()


def _disc(cy, cx, r):
    yy, xx = np.mgrid[0:N, 0:N].astype(float)
    return np.hypot(yy - cy, xx - cx) <= r, yy - cy, xx - cx


def _radial(cy, cx, r, amp_px):
    """A cell contracting towards its centre: amp_px at its rim (2, Y, X)."""
    inside, dy, dx = _disc(cy, cx, r)
    return -amp_px * np.stack([dy, dx]) / r * inside


def _noise(n, sd_px, seed):
    """Field noise as optical flow gives it: correlated over a few pixels, white in time."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((n, 2, N, N)), (0, 0, 3, 3))
    return sd_px * f / f.std()


def _traces(fields, mask, denoise=True):
    region = RegionFields(mask[None], fields.shape[0])
    for a in range(0, fields.shape[0], 100):
        region.add(a, fields[a:a + 100].astype(np.float32))
    disp, speed, kept = region.traces(FPS, denoise=denoise)
    return disp[0], speed[0], kept[0]


def test_a_small_contraction_keeps_its_beats_and_loses_the_noise_floor():
    n = 1500
    onsets = np.arange(0.5, 29, 1.1)
    course = _beats(onsets, n)
    mask, _, _ = _disc(32, 32, 16)
    pattern = _radial(32, 32, 16, 0.08)
    fields = course[:, None, None, None] * pattern[None] + _noise(n, 0.025, 0)
    truth = course * np.hypot(*pattern)[mask].mean()
    clean, _, kept = _traces(fields, mask)
    plain = np.hypot(fields[:, 0], fields[:, 1])[:, mask].mean(axis=1)
    assert kept.rank == 1 and kept.singular_values[0] > 1.2 * kept.noise_edge and kept.above_noise
    err_clean = np.sqrt(np.mean((clean - truth) ** 2))
    err_plain = np.sqrt(np.mean((plain - truth) ** 2))
    assert err_clean < 0.35 * err_plain            # measured: 0.24
    # the plain mean magnitude sits on a floor of noise; the kept field at rest is near zero
    rest = course < 0.01
    assert np.median(plain[rest]) > 0.5 * truth.max() and np.median(clean[rest]) < 0.2 * truth.max()
    found = find_contraction_beats(clean, FPS)
    assert len(found) == len(onsets)
    # the plain magnitudes of the same fields without denoising (what --no-denoise-traces gives, on 4 px blocks)
    blocks, _, none = _traces(fields, mask, denoise=False)
    assert none is None and np.median(blocks[rest]) > 5 * np.median(clean[rest])


def test_a_region_where_nothing_stands_out_of_the_noise_says_so():
    """Noise alone keeps its strongest pattern for the trace (as a matched filter would), but is marked as not
    standing out of the noise: the motion tool and the flow method flag beats found there (a silent cell's trace
    showed 2 % echoes of its strong neighbour's beats through the flow window, and some cleared 8 SD)."""
    n = 1500
    mask, _, _ = _disc(32, 32, 16)
    _, _, kept = _traces(_noise(n, 0.025, 2), mask)
    assert kept.rank == 1 and not kept.above_noise and kept.singular_values[0] <= 1.2 * kept.noise_edge
    # the same region with a 0.08 px contraction in it: above the noise
    fields = _beats(np.arange(0.5, 29, 1.1), n)[:, None, None, None] * _radial(32, 32, 16, 0.08)[None]
    _, _, kept = _traces(fields + _noise(n, 0.025, 2), mask)
    assert kept.above_noise


def test_two_cells_beating_on_their_own_keep_two_components():
    n = 1500
    a, b = _beats(np.arange(0.5, 29, 1.3), n), _beats(np.arange(0.9, 29, 0.9), n)
    pa, pb = _radial(20, 20, 12, 0.8), _radial(44, 44, 12, 0.5)
    fields = a[:, None, None, None] * pa + b[:, None, None, None] * pb + _noise(n, 0.03, 1)
    mask = np.ones((N, N), bool)
    clean, _, kept = _traces(fields, mask)
    assert kept.rank >= 2
    truth = (a[:, None] * np.hypot(*pa).ravel() + b[:, None] * np.hypot(*pb).ravel()).mean(axis=1)
    # both cells' contractions survive (a rank-1 field would lose most of the second's)
    assert np.corrcoef(clean, truth)[0, 1] > 0.99
    one = low_rank(fields_to_blocks(fields, mask), np.ones(fields_to_blocks(fields, mask).shape[2]), max_rank=1)
    assert one.rank == 1


def fields_to_blocks(fields, mask):
    region = RegionFields(mask[None], fields.shape[0])
    region.add(0, fields.astype(np.float32))
    return region.data[0]


def test_large_regions_get_larger_blocks_and_bounded_memory():
    region = RegionFields(np.ones((1, 256, 256), bool), 10, max_dims=2048)
    assert region.block_px[0] >= 8 and region.data[0].shape[1] * region.data[0].shape[2] <= 2048
    small = RegionFields(_disc(32, 32, 10)[0][None], 10)
    assert small.block_px[0] == 4
    # block means: a uniform shift reads back exactly
    f = np.zeros((10, 2, N, N), np.float32)
    f[:, 0] = 0.3
    small.add(0, f)
    np.testing.assert_allclose(small.data[0][:, 0], 0.3, rtol=1e-6)
    np.testing.assert_allclose(small.data[0][:, 1], 0.0, atol=1e-7)


def test_an_interpolated_fields_noise_edge_comes_from_its_measured_frames():
    """Pure noise, every second frame synthesized (the mean of its neighbours): one component, as measured."""
    x = np.random.default_rng(4).normal(0, 1, (400, 2, 30)).astype(np.float32)
    interp = np.empty((799, 2, 30), np.float32)
    interp[0::2] = x
    interp[1::2] = 0.5 * (x[:-1] + x[1:])
    w = np.ones(30)
    assert low_rank(x, w).rank == 1
    assert low_rank(interp, w, measured_every=2).rank == 1
    assert low_rank(interp, w).rank > 10          # the synthesized frames' differences understate the noise
