"""Early stopping of the denoiser: the patience grows with the number of epochs."""

from __future__ import annotations

from napari_micromotion.denoise.train import TrainSettings, early_stop_patience


def test_short_runs_keep_a_patience_of_three_epochs():
    assert early_stop_patience(TrainSettings(epochs=8)) == 3
    assert early_stop_patience(TrainSettings(epochs=1)) == 3


def test_long_runs_wait_a_fifth_of_their_epochs_for_a_better_heldout_loss():
    assert early_stop_patience(TrainSettings(epochs=40)) == 8
    assert early_stop_patience(TrainSettings(epochs=100)) == 20


def test_an_explicit_patience_is_kept():
    assert early_stop_patience(TrainSettings(epochs=40, patience=2)) == 2
    assert early_stop_patience(TrainSettings(epochs=40, patience=0)) == 1
