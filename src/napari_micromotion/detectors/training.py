"""Training the 1D CNN: the fused CPU trainer or the PyTorch reference, by ``CNN1DParams.backend``."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from ..progress import Progress, drive
from .cnn1d import CNN1DParams, iter_train_cnn1d_torch, resolve_device
from .fast_train import iter_train_fast

__all__ = ["iter_train_cnn1d", "train_cnn1d"]


def iter_train_cnn1d(inputs: np.ndarray, target: np.ndarray, segments: Sequence[tuple[int, int]],
                     params: CNN1DParams, *, init: Any = None) -> Iterator[Progress | Any]:
    """Train the 1D CNN; a generator of :class:`Progress` whose return value is ``(net, losses, epoch_losses)``.

    Parameters
    ----------
    inputs
        ``(n_pixels, T)`` normalised band-passed pixel series (float32).
    target
        ``(T,)`` normalised ground truth.
    segments
        Training frame ranges ``[(start, stop), ...]`` (half-open).
    params
        :class:`~napari_micromotion.detectors.cnn1d.CNN1DParams`; ``backend="auto"`` uses the
        fused trainer (:mod:`.fast_train`) on the CPU and PyTorch on a GPU.
    init
        Optional network to continue from (otherwise Glorot-uniform with ``params.seed``).
    """
    params.validate()
    device = resolve_device(params.device)
    if params.backend == "fast" or (params.backend == "auto" and device == "cpu"):
        return (yield from iter_train_fast(inputs, target, segments, params, init=init, restarts=params.restarts))
    return (yield from iter_train_cnn1d_torch(inputs, target, segments, params, init=init))


def train_cnn1d(inputs: np.ndarray, target: np.ndarray, segments: Sequence[tuple[int, int]],
                params: CNN1DParams = CNN1DParams(), *, init: Any = None):
    """Synchronous :func:`iter_train_cnn1d`; returns ``(net, losses, epoch_losses)``."""
    return drive(iter_train_cnn1d(inputs, target, segments, params, init=init))
