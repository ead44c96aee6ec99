"""Beats and beat parameters from contraction traces, against planted beats."""

from __future__ import annotations

import numpy as np
import pytest

from napari_micromotion.kernels.contraction import ContractionBeatParams, find_contraction_beats

FPS = 50.0


def _trace(onsets_s, n=1500, rise=0.05, decay=0.15, amp=1.0, noise=0.01, seed=0):
    t = np.arange(n) / FPS
    y = np.zeros(n)
    for o in onsets_s:
        dt = np.maximum(t - o, 0)
        y += amp * (1 - np.exp(-dt / rise)) * np.exp(-dt / decay)
    return y + np.random.default_rng(seed).normal(0, noise, n)


def test_every_planted_contraction_is_found_once_with_its_peak_time():
    onsets = np.cumsum(np.random.default_rng(1).uniform(0.7, 1.3, 25))
    onsets = onsets[onsets < 28]
    y = _trace(onsets, noise=0.01)
    beats = find_contraction_beats(y, FPS)
    assert len(beats) == len(onsets)
    t_peak = 0.05 * np.log(1 + 0.15 / 0.05)   # maximum of the kernel
    peaks = np.array([b.peak_time_s for b in beats])
    np.testing.assert_allclose(peaks, onsets + t_peak, atol=1.0 / FPS)
    # onset at 10 % of the amplitude: shortly after the true start of the rise, before the peak
    starts = np.array([b.onset_s for b in beats])
    assert np.all(starts > onsets - 1.0 / FPS) and np.all(starts < peaks)
    b = beats[3]
    assert b.time_to_peak_s == pytest.approx(b.peak_time_s - b.onset_s)
    assert 0 < b.relaxation_50_s < b.relaxation_90_s and b.duration_s > b.time_to_peak_s
    assert b.max_contraction_speed > b.max_relaxation_speed > 0     # a fast rise, a slower decay


def test_relaxation_times_match_an_exponential_decay():
    y = _trace([1.0], n=200, rise=0.005, decay=0.2, noise=0.0)
    (b,) = find_contraction_beats(y, FPS)
    # from the peak, an exponential reaches 50 % after tau ln 2 and 10 % after tau ln 10
    assert b.relaxation_50_s == pytest.approx(0.2 * np.log(2), abs=1.5 / FPS)
    assert b.relaxation_90_s == pytest.approx(0.2 * np.log(10), abs=1.5 / FPS)


def test_noise_and_small_wobbles_are_not_beats():
    y = _trace([], noise=0.02)
    assert find_contraction_beats(y, FPS) == []
    y = _trace([2.0, 4.0, 6.0]) + _trace([2.6, 4.6, 6.6], amp=0.1, noise=0.0)   # after-beats of 10 %
    assert len(find_contraction_beats(y, FPS, ContractionBeatParams(rel_prominence=0.2))) == 3


def test_a_single_bright_frame_is_not_a_beat():
    """Noise spikes one frame wide pass the height tests but not the shortest-contraction test."""
    fps = 50.0
    t = np.arange(1000) / fps
    rng = np.random.default_rng(1)
    y = 0.03 + rng.normal(0, 0.003, t.size)
    for c in (2.0, 8.0, 14.0):                       # three real contractions, ~0.2 s wide
        y += 0.2 * np.exp(-0.5 * ((t - c) / 0.08) ** 2)
    y[250] += 0.15                                   # a single-frame spike at 5 s
    found = [b.peak_time_s for b in find_contraction_beats(y, fps)]
    assert len(found) == 3 and all(abs(f - c) < 0.03 for f, c in zip(found, (2.0, 8.0, 14.0)))
    loose = find_contraction_beats(y, fps, ContractionBeatParams(min_width_s=0.0))
    assert len(loose) == 4


def _aligned_and_alone(attr):
    """60 beats at 3 % noise (and at 0.2 %): one time of each (*attr*) with and without aligning them to their average."""
    onsets = np.cumsum(np.random.default_rng(13).uniform(0.7, 1.3, 60))
    onsets = onsets[onsets < 58]
    out = {}
    for name, noise in (("noisy", 0.03), ("clean", 0.002)):
        y = _trace(onsets, n=3000, noise=noise, seed=3)
        out[name] = [np.array([getattr(b, attr) for b in find_contraction_beats(y, FPS, p)])
                     for p in (ContractionBeatParams(), ContractionBeatParams(align_noise=10.0))]
    return onsets, out["noisy"], out["clean"]


def test_noisy_flat_topped_beats_are_timed_by_their_average_beat():
    """At 3 % noise the top of a beat is flatter than the noise: its highest frame wanders; the aligned beats' do not."""
    t_peak = 0.05 * np.log(1 + 0.15 / 0.05)
    onsets, (aligned, alone), clean = _aligned_and_alone("peak_time_s")
    assert len(aligned) == len(alone) == len(onsets)
    err_aligned = np.abs(aligned - (onsets + t_peak)) * FPS
    err_alone = np.abs(alone - (onsets + t_peak)) * FPS
    assert err_aligned.max() < 0.8 and abs(np.median(aligned - onsets - t_peak)) * FPS < 0.2
    assert np.sum(err_alone > 1.0) >= 5          # what the beat-by-beat estimate gives on the same trace
    # a clean trace is not aligned: its peaks are the beat-by-beat ones
    np.testing.assert_array_equal(*clean)


def test_noisy_beats_take_their_onsets_from_their_average_beat():
    """At 3 % noise each beat's own 10 % crossing scatters; the average beat's, placed at each beat's alignment, less."""
    tt = np.linspace(0, 0.5, 500001)
    kernel = (1 - np.exp(-tt / 0.05)) * np.exp(-tt / 0.15)
    t_on = tt[np.argmax(kernel >= 0.1 * kernel.max())]          # where a beat crosses 10 % of its height
    onsets, (aligned, alone), clean = _aligned_and_alone("onset_s")
    assert len(aligned) == len(alone) == len(onsets)
    err_aligned = (aligned - onsets - t_on) * FPS
    err_alone = (alone - onsets - t_on) * FPS
    assert np.std(err_aligned) < 0.5 * np.std(err_alone)
    assert np.abs(err_aligned).max() < 1.0 and np.sum(np.abs(err_alone) > 1.0) >= 2
    assert abs(np.median(err_aligned) - np.median(err_alone)) < 0.2    # no shift of their own
    np.testing.assert_array_equal(*clean)                              # not aligned: the beats' own crossings


def _every_second_synthesized(y):
    """*y* with a linearly interpolated sample between each two (as ``interpolate --factor 2 --method linear``)."""
    out = np.empty(2 * y.size - 1)
    out[0::2] = y
    out[1::2] = 0.5 * (y[:-1] + y[1:])
    return out


def test_an_interpolated_trace_gives_the_beats_of_its_measured_frames():
    """A synthesized sample halves its differences to its neighbours, which would halve the noise read from them."""
    onsets = np.arange(1.0, 28.0, 2.0)
    measured = _trace(onsets, n=1500, amp=0.2, noise=0.01, seed=4)[::2]     # 25 fps, beats ~10 noise SDs high
    found = find_contraction_beats(measured, 25.0)
    assert len(found) == len(onsets)
    interp = _every_second_synthesized(measured)
    fixed = find_contraction_beats(interp, 50.0, measured_every=2)
    assert len(fixed) == len(found)
    assert np.max(np.abs(np.array([b.onset_s for b in fixed]) - [b.onset_s for b in found])) < 0.1   # the same beats
    # reading the noise from every frame lets noise through as beats
    assert len(find_contraction_beats(interp, 50.0)) > len(onsets)
