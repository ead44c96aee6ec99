import numpy as np
import pytest

from napari_micromotion import scoring as S


def hand_xcorr(p, f):
    """The paper's score by hand: z-normalise, full cross-correlation / N, loops only."""
    n = len(p)
    p = (p - p.mean()) / p.std()
    f = (f - f.mean()) / f.std()
    out = {}
    for k in range(-(n - 1), n):
        s = 0.0
        for i in range(n):
            if 0 <= i + k < n:
                s += p[i + k] * f[i]
        out[k] = s / n
    return out


def test_score_matches_hand_computed_cross_correlation():
    rng = np.random.default_rng(0)
    f = rng.normal(size=60)
    p = np.roll(f, 3) + 0.5 * rng.normal(size=60)
    c = hand_xcorr(p, f)
    for max_lag in (0, 5, 59):
        best = max((k for k in c if abs(k) <= max_lag), key=lambda k: c[k])
        for method in ("toeplitz", "fft"):
            s, lag = S.score_columns(p[:, None], f, max_lag, method=method)
            assert s[0] == pytest.approx(c[best], abs=1e-5)
            assert lag[0] == best
    lags, full = S.xcorr_full(p, f)
    np.testing.assert_allclose(full, [c[k] for k in lags], atol=1e-10)


def test_positive_lag_means_prediction_after_fluorescence():
    rng = np.random.default_rng(1)
    f = rng.normal(size=500)
    delayed = np.concatenate([np.zeros(7), f[:-7]])
    r = S.score(delayed, f, fps=50, max_lag_s=1.0)
    assert r.lag_frames == 7 and r.lag_s == pytest.approx(0.14)
    assert r.score > 0.95


def test_lag_window_limits_the_search():
    rng = np.random.default_rng(2)
    f = rng.normal(size=400)
    far = np.roll(f, 80)
    assert S.score(far, f, fps=50, max_lag_s=1.0).score < 0.3   # 80 frames = 1.6 s lies outside +-1 s
    assert S.score(far, f, fps=50, max_lag_s=None).score > 0.7


def test_columns_constant_and_agreement():
    rng = np.random.default_rng(3)
    f = rng.normal(size=300)
    P = np.column_stack([f, -f, np.ones(300), rng.normal(size=300)])
    s1, l1 = S.score_columns(P, f, 20, method="toeplitz")
    s2, l2 = S.score_columns(P, f, 20, method="fft")
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    np.testing.assert_array_equal(l1, l2)
    assert s1[0] == pytest.approx(1.0, abs=1e-6)
    assert s1[2] == 0 and l1[2] == 0          # constant prediction: defined as 0
    assert s1[1] < 0.3                        # anti-correlated: the maximum is not taken in absolute value


def test_surrogate_p_values():
    rng = np.random.default_rng(4)
    f = np.convolve(rng.normal(size=1200), np.ones(10) / 10, mode="same")
    good = f + 0.5 * rng.normal(size=f.size) * f.std()
    p_good, s_good = S.surrogate_p_value(good, f, 50, n_surrogates=199, seed=1)
    assert p_good == pytest.approx(1 / 200) and s_good > 0.8
    # under the null, p-values are roughly uniform: not all small
    ps = [S.surrogate_p_value(rng.normal(size=f.size), f, 50, n_surrogates=99, seed=k)[0] for k in range(20)]
    assert np.mean(np.array(ps) < 0.05) < 0.3
    assert np.median(ps) > 0.2


def test_surrogates_use_each_shift_once_when_few():
    f = np.sin(np.arange(100) / 3.0)
    p, _ = S.surrogate_p_value(f, f, 10, n_surrogates=999, seed=0)
    # 100 - 2 * 11 + 1 = 79 admissible shifts: p is a multiple of 1/80
    assert p * 80 == pytest.approx(round(p * 80))
