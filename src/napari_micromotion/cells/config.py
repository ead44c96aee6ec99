"""The cell classifier's configuration and the shipped model's recipe (no torch: the command line builds on it).

:class:`ClassifierConfig` says how a classifier is built and trained (:mod:`.train` builds it,
:mod:`.model` holds the networks); :data:`SHIPPED_CONFIG` is the recipe of the shipped compact
model, :data:`SHIPPED` its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import check
from .encode import TRACE_ENCODINGS

__all__ = ["ClassifierConfig", "ARCHITECTURES", "ARCHITECTURE_VERSION", "BN_ORDERS", "SHIPPED", "SHIPPED_CONFIG"]

#: the two placements of batch normalisation in a CRB block (see :class:`~.model.ThreeCNet`)
BN_ORDERS = ("relu_bn", "bn_relu")
#: architecture names in the model files, per ``arch``
ARCHITECTURES = {"exact": "3cnet", "compact": "3cnet-compact"}
ARCHITECTURE_VERSION = 1
#: the shipped compact model (safetensors + JSON sidecar)
SHIPPED = Path(__file__).resolve().parent / "weights" / "cells_compact.safetensors"


@dataclass(frozen=True)
class ClassifierConfig:
    """How a classifier is built and trained.

    Attributes
    ----------
    arch
        ``"exact"`` (the report's 3CNet, 27.3 M parameters) or ``"compact"`` (~40 k).
    bn_order
        ``"relu_bn"`` or ``"bn_relu"`` (see :class:`~napari_micromotion.cells.model.ThreeCNet`).
    encoding
        Trace encoding of the inputs the model expects (:data:`~napari_micromotion.cells.encode.TRACE_ENCODINGS`).
    epochs, batch_size, lr
        The report's: 3, 64, 1e-3.
    seed
        Seeds the weights' initialisation and the batches' order.
    threads
        CPU threads for torch (0: leave torch's setting).
    augment
        Flip and rotate the image channel of each mini-batch at random (8 symmetries of the
        square; a cell stays a cell): more data for free, no cost at inference.
    scale_jitter
        Training augmentation: each training candidate's zoom is multiplied by a factor in
        ``1 +- scale_jitter`` (:func:`~napari_micromotion.cells.dataset.encode_recording`), so
        the model does not rely on the estimated cell diameter being exact.
    reference_cell_px
        When positive, inputs are encoded with the recording's cell diameter brought to this
        width (:meth:`CellClassifier.encode`), so that a candidate's size relative to a cell is
        visible in the patch whatever the magnification; 0 keeps the report's native crop.
    """

    arch: str = "compact"
    bn_order: str = "relu_bn"
    encoding: str = "middle"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0
    #: random flips and 90-degree rotations of the image channel during training (the trace stays)
    augment: bool = True
    #: image patches zoomed so that a cell is this many pixels wide (0: native scale, the report's)
    reference_cell_px: float = 0.0
    #: training zooms multiplied by 1 +- this (the diameter estimate's own error is ~10 %)
    scale_jitter: float = 0.0
    #: the hybrid compact model: mask channel + shape statistics in the head (model.CompactThreeCNet)
    shape: bool = False
    #: average pooling of the input before the compact model's convolutions (1 or 2)
    pool: int = 1

    @property
    def in_channels(self) -> int:
        """Channels of the inputs the model expects (3 with the mask channel of the hybrid model)."""
        return 3 if self.shape else 2

    def validate(self) -> None:
        check(self.arch in ARCHITECTURES, f"arch must be 'exact' or 'compact', got {self.arch!r}.")
        check(self.bn_order in BN_ORDERS, f"bn_order must be one of {', '.join(BN_ORDERS)}, got {self.bn_order!r}.")
        check(self.encoding in TRACE_ENCODINGS,
              f"encoding must be one of {', '.join(TRACE_ENCODINGS)}, got {self.encoding!r}.")
        check(self.arch == "compact" or (not self.shape and int(self.pool) == 1),
              "the exact 3CNet has no shape statistics or input pooling (compact options).")
        check(int(self.pool) in (1, 2), f"input pooling must be 1 or 2, got {self.pool!r}.")
        check(0.0 <= self.scale_jitter < 0.5, f"the scale jitter must be in [0, 0.5), got {self.scale_jitter!r}.")
        check(int(self.epochs) >= 1 and int(self.batch_size) >= 2 and self.lr > 0,
              "epochs must be >= 1, batch size >= 2 and the learning rate positive.")


#: the shipped model's settings: the hybrid compact model (mask channel and shape statistics in the head)
#: with its convolutions on the 2 x 2 pooled input (4x fewer operations), patches zoomed to 24 px cells (by
#: the extraction's estimate of the cell size, jittered by +-10 % in training), the report's optimiser and
#: batch, 8 epochs over the ~19,000 candidates of 72 recordings (:mod:`.pretrain`: both firing modes,
#: 500-5000 frames, perturbed true masks and the candidates of four extractions labelled by the truth).
#: The hybrid beat the image + trace model on both held-out sets of extracted candidates (97.6 against
#: 95.2 % and 97.8 against 92.7 %, same training set).
SHIPPED_CONFIG = ClassifierConfig(arch="compact", encoding="middle", epochs=8, seed=0, threads=2, reference_cell_px=24.0,
                                  pool=2, scale_jitter=0.1, shape=True)
