"""Matched filtering (Fig. 2c): per-pixel templates averaged over the training spikes.

The kernels (spike finding, templates, the FFT correlation) are in
:mod:`napari_micromotion.detectors.matched`.  Preparing finds the calcium spike
onsets in the training frames of the ground truth; every pixel's template is then
averaged from its own band-passed series inside its chunk, so the method predicts
in the first pass and needs no gathering.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

import numpy as np

from ..detectors.matched import MatchedParams, find_training_spikes, matched_filter, templates
from ..progress import Progress
from . import METHODS
from .base import AnalysisContext, Method, PixelChunk, Requirements

__all__ = ["MatchedFilter", "MatchedState"]


@dataclass
class MatchedState:
    """Spike onsets (frames) inside the training frames and the template window in frames."""

    onsets: np.ndarray
    pre: int
    post: int
    spikes_s: list[float]


@dataclass
class _Predict:
    onsets: np.ndarray
    pre: int
    post: int

    def __call__(self, chunk: PixelChunk) -> np.ndarray:
        filt = chunk.filtered
        mf = matched_filter(filt, templates(filt, self.onsets, self.pre, self.post), self.pre)
        mf *= mf
        return mf


def _state(truth: np.ndarray, fps: float, training: list[tuple[int, int]], p: MatchedParams) -> MatchedState:
    onsets, spikes = find_training_spikes(truth, fps, training, p)
    return MatchedState(onsets=onsets, pre=int(round(p.pre_s * fps)), post=int(round(p.post_s * fps)),
                        spikes_s=[float(v) / fps for v in spikes.onsets])


@METHODS.register
class MatchedFilter(Method):
    name = "matched"
    label = "matched filter"
    description = "correlation of each pixel with its own template averaged over the training calcium spikes (Fig. 2c)"
    Params = MatchedParams
    requires = Requirements(fluorescence=True, training=True)
    squared = True
    predict_cost = 1.0
    colour = "#bcbd22"     # olive: apart from the ROI kinds' colours (rois.KIND_COLOURS)

    def check(self, ctx: AnalysisContext, params: MatchedParams, fitted: Any = None) -> None:
        params.validate()

    def prepare(self, ctx: AnalysisContext, params: MatchedParams) -> Generator[Progress, None, MatchedState]:
        yield Progress("matched filter", 0.0, "finding calcium spikes in the training frames")
        return _state(ctx.truth, ctx.fps, ctx.training, params)

    def predictor(self, state: MatchedState | None, device: str = "cpu") -> _Predict | None:
        return None if state is None else _Predict(state.onsets, state.pre, state.post)

    def restore(self, folder: Path | None, results: Any) -> MatchedState | None:
        if results.truth is None:
            return None
        return _state(np.asarray(results.truth, np.float64), results.fps, [tuple(s) for s in results.training],
                      self.params_of(results.params))
