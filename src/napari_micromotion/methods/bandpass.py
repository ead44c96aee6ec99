"""Band-pass filtering (Fig. 2b): every pixel's band-passed transmission, squared.

The zero-phase Butterworth band-pass itself runs once per chunk for every method
(:func:`napari_micromotion.filters.bandpass`); this method only squares it.  It needs
no training and no fluorescence, so it also runs on brightfield-only recordings.
"""

from __future__ import annotations

import numpy as np

from . import METHODS
from .base import Method, PixelChunk

__all__ = ["Bandpass"]


class _Squared:
    """Predictor: the chunk's band-passed signal squared (shared with the energy map)."""

    def __call__(self, chunk: PixelChunk) -> np.ndarray:
        return chunk.squared()


@METHODS.register
class Bandpass(Method):
    name = "bandpass"
    label = "band-pass"
    description = "zero-phase Butterworth band-pass of each pixel, squared (paper Fig. 2b); no training"
    squared = True
    colour = "#17becf"     # cyan: apart from the ROI kinds' colours (rois.KIND_COLOURS), which head the trace columns
    default = True

    def predictor(self, state: object, device: str = "cpu") -> _Squared:
        return _Squared()
