"""Early stopping of the denoiser: the patience grows with the number of epochs and watches a running mean."""

from __future__ import annotations

import numpy as np

from napari_micromotion.denoise.train import EarlyStop, TrainSettings, early_stop_patience


def test_short_runs_keep_a_patience_of_three_epochs():
    assert early_stop_patience(TrainSettings(epochs=8)) == 3
    assert early_stop_patience(TrainSettings(epochs=1)) == 3


def test_long_runs_wait_a_fifth_of_their_epochs_for_a_better_heldout_loss():
    assert early_stop_patience(TrainSettings(epochs=40)) == 8
    assert early_stop_patience(TrainSettings(epochs=100)) == 20


def test_an_explicit_patience_is_kept():
    assert early_stop_patience(TrainSettings(epochs=40, patience=2)) == 2
    assert early_stop_patience(TrainSettings(epochs=40, patience=0)) == 1


def _stopped_after(losses, patience=3):
    stop = EarlyStop(patience)
    for epoch, loss in enumerate(losses, 1):
        if stop.update(loss):
            return epoch
    return None


def test_one_lucky_epoch_does_not_stop_a_run_that_still_improves():
    # epoch 3 is a lucky low; the trend goes on falling below it only from epoch 9
    losses = [1.0, 0.9, 0.8, 0.86, 0.85, 0.84, 0.83, 0.82, 0.79, 0.78, 0.77]
    best_so_far = np.minimum.accumulate(losses)
    assert np.sum(best_so_far[3:8] == 0.8) == 5            # a rule on the single best epoch stalls 5 epochs
    assert _stopped_after(losses) is None


def test_a_run_that_stops_improving_still_stops():
    assert _stopped_after([1.0, 0.9, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85]) == 8
    assert _stopped_after([1.0, 0.9, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85], patience=5) is None
    assert _stopped_after([0.5] * 6, patience=2) == 3        # flat from the start


def test_a_new_lowest_loss_also_keeps_it_going():
    # the running mean stalls (a noisy plateau) while one epoch sets a new low: not the end yet
    losses = [1.0, 0.8, 0.8, 0.8, 0.9, 0.9, 0.79, 0.9, 0.9]
    assert _stopped_after(losses, patience=4) is None
    assert _stopped_after(losses + [0.9, 0.9], patience=4) == 11
