import numpy as np
import pytest

from napari_micromotion.detectors.matched import MatchedParams, find_training_spikes, matched_filter, templates
from napari_micromotion.errors import MicromotionError


def _planted(seed=0):
    rng = np.random.default_rng(seed)
    t, p = 4000, 6
    pre, post = 10, 40
    k = np.arange(pre + post)
    shape = np.sin((k - pre) * 2 * np.pi / 25) * np.exp(-np.maximum(k - pre, 0) / 15) * (k >= pre)
    sign = np.array([1, -1, 2, 0.5, -1.5, 0])  # per-pixel polarity, last pixel: no signal
    onsets = np.arange(100, t - 100, 97)
    x = rng.normal(0, 0.3, (t, p)).astype(np.float32)
    for s in onsets:
        x[s - pre:s + post] += np.outer(shape, sign)
    return x, onsets, shape, sign, pre, post


def test_templates_recover_the_planted_shape():
    x, onsets, shape, sign, pre, post = _planted()
    tmpl = templates(x, onsets, pre, post)
    assert tmpl.shape == (pre + post, 6)
    for j in range(5):
        r = np.corrcoef(tmpl[:, j], shape * sign[j])[0, 1]
        assert r > 0.9  # 40 spikes in noise of SD 0.3: the weakest pixel (amplitude 0.5) reaches ~0.93
    np.testing.assert_allclose(tmpl[:, 0], shape, atol=0.16)  # ~3 SD of 0.3 / sqrt(40)


def test_matched_filter_peaks_at_onsets():
    x, onsets, shape, sign, pre, post = _planted(1)
    y = matched_filter(x, templates(x, onsets, pre, post), pre)
    assert y.shape == x.shape and y.dtype == np.float32
    for j in (0, 1, 2, 4):  # |amplitude| >= 1 (weaker pixels may lock onto the template's side lobes)
        yy = y[:, j] ** 2
        near = np.array([yy[s - 2:s + 3].max() for s in onsets])
        assert np.median(near) > 10 * np.median(yy)
        # within half a period of the template's oscillation, the maximum sits on the onset
        peaks = np.array([s - 12 + int(np.argmax(yy[s - 12:s + 13])) for s in onsets])
        assert np.mean(np.abs(peaks - onsets) <= 2) > 0.9 and np.median(np.abs(peaks - onsets)) <= 1
    assert np.all(np.isfinite(y[:, 5]))


def test_too_few_spikes_is_a_clear_error():
    trace = np.zeros(3000)
    trace[500:520] = 5.0
    trace += np.random.default_rng(0).normal(0, 0.01, 3000)
    with pytest.raises(MicromotionError, match="needs at least 5"):
        find_training_spikes(trace, 50.0, [(0, 3000)], MatchedParams(min_spikes=5))
    onsets, spikes = find_training_spikes(trace, 50.0, [(0, 3000)], MatchedParams(min_spikes=1))
    assert onsets.size == 1 and 495 <= onsets[0] <= 505
