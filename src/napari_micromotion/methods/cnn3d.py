"""The region-specific 3D network of Table 2 (Fig. 2e, Fig. 5) as an analysis method.

One network per ROI, built on the trained 1D CNN (transfer learning, so the 1D CNN is
fitted first even when it is not chosen itself).  The network sees the pixels inside
the ROI's outline only (optionally ``margin_px`` around it): pass A gathers the
normalised band-passed pixels of the region's bounding box, and everything outside
the region is left out of the dense layer, whose weights there are zero.  The
kernels are in :mod:`napari_micromotion.detectors.cnn3d`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import numpy as np
from scipy import ndimage

from ..atomic import safe_name
from ..detectors.cnn3d import CNN3DParams, TrainedCNN3D, iter_train_cnn3d
from ..detectors.models import save_cnn3d
from ..errors import check
from ..progress import Progress, scaled
from . import METHODS
from .base import AnalysisContext, Method, PixelChunk, RegionFit, Requirements, no_progress
from .cnn1d import cnn_columns

__all__ = ["CNN3D", "CNN3DState", "region_of"]

DEPENDS_ON = "cnn1d"


def region_of(mask: np.ndarray, margin_px: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The region of an ROI mask grown by *margin_px* (Euclidean): its box ``(r0, r1, c0, c1)`` and mask in it."""
    region = mask if margin_px <= 0 else ndimage.distance_transform_edt(~mask) <= margin_px
    rows = np.nonzero(region.any(axis=1))[0]
    cols = np.nonzero(region.any(axis=0))[0]
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (r0, r1, c0, c1), np.ascontiguousarray(region[r0:r1, c0:c1])


@dataclass
class CNN3DState:
    """Per ROI: the region (box and mask) and, while fitting, its gathered inputs."""

    mode: str
    boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    data: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _GatherBoxes:
    boxes: dict[str, tuple[int, int, int, int]]
    mode: str

    def __call__(self, chunk: PixelChunk) -> dict[str, tuple[int, int, np.ndarray]]:
        r0, r1 = chunk.rows
        nx = chunk.frame_shape[1]
        out = {}
        for name, (br0, br1, bc0, bc1) in self.boxes.items():
            a, b = max(r0, br0), min(r1, br1)
            if a < b:
                x = cnn_columns(chunk, self.mode).reshape(chunk.n_frames, r1 - r0, nx)
                out[name] = (a - br0, b - br0, np.ascontiguousarray(x[:, a - r0:b - r0, bc0:bc1]))
        return out


@METHODS.register
class CNN3D(Method):
    name = "cnn3d"
    label = "3D network"
    description = ("the region-specific 3D network of Table 2, one per ROI, transfer-learned from the 1D CNN; "
                   "its dense weights show where in the ROI the motion comes from (Fig. 5)")
    kind = "region"
    Params = CNN3DParams
    requires = Requirements(fluorescence=True, training=True, rois=True, uses=(DEPENDS_ON,))
    fit_cost = 3.0
    colour = "#f0027f"     # magenta: apart from the ROI kinds' colours (rois.KIND_COLOURS)
    region_map_path = "weights/{roi}.tif"
    region_map_label = "dense weights"
    uses_device = True

    def check(self, ctx: AnalysisContext, params: CNN3DParams, fitted: Any = None) -> None:
        params.validate()
        check(any(b - a >= params.window for a, b in ctx.training) or
              sum(b - a for a, b in ctx.training) >= params.window,
              f"the 3D network needs training windows of {params.window} frames; the training frames are shorter.")

    def prepare(self, ctx: AnalysisContext, params: CNN3DParams) -> Generator[Progress, None, CNN3DState]:
        state = CNN3DState(mode=ctx.states[DEPENDS_ON].mode)
        for name in ctx.roi_names():
            box, region = region_of(ctx.masks.masks[ctx.masks.index(name)], params.margin_px)
            r0, r1, c0, c1 = box
            state.boxes[name], state.regions[name] = box, region
            state.data[name] = np.zeros((ctx.n_frames, r1 - r0, c1 - c0), np.float32)
        return no_progress(state)

    def kernels_ready(self, state: CNN3DState | None) -> bool:
        from ..detectors import fast

        return fast.kernels_ready()

    def rows_needed(self, state: CNN3DState | None) -> tuple[int, int] | None:
        if not state or not state.boxes:
            return None
        return min(b[0] for b in state.boxes.values()), max(b[1] for b in state.boxes.values())

    def gatherer(self, ctx: AnalysisContext, params: CNN3DParams, state: CNN3DState) -> _GatherBoxes | None:
        return _GatherBoxes(dict(state.boxes), state.mode) if state.boxes else None

    def fold(self, state: CNN3DState, part: dict[str, tuple[int, int, np.ndarray]], chunk_rows: tuple[int, int]) -> None:
        for name, (a, b, blk) in part.items():
            state.data[name][:, a:b, :] = blk

    def fit_regions(self, ctx: AnalysisContext, params: CNN3DParams, state: CNN3DState
                    ) -> Generator[Progress, None, dict[str, RegionFit]]:
        net1d = ctx.states[DEPENDS_ON].model
        norm = net1d.normalisation
        train_mask = ctx.train_mask
        out: dict[str, RegionFit] = {}
        names = list(state.boxes)
        for k, name in enumerate(names):
            tgt_raw = ctx.reference(name)
            tm, ts = float(tgt_raw[train_mask].mean()), float(tgt_raw[train_mask].std())
            check(ts > 0, f"the ground truth for ROI {name!r} is constant over the training frames.")
            target = ((tgt_raw - tm) / ts).astype(np.float32)
            inputs = state.data.pop(name) / np.float32(norm.input_scale)
            model: TrainedCNN3D = yield from scaled(
                iter_train_cnn3d(name, state.boxes[name], inputs, target, ctx.training, net1d.net, params,
                                 mask=state.regions[name]), k / len(names), (k + 1) / len(names))
            del inputs
            model.target_mean, model.target_sd = tm, ts
            out[name] = RegionFit(trace=model.prediction, sd=model.mc_sd, box=model.box, map=model.weights,
                                  model=model)
        return out

    def save(self, state: dict[str, TrainedCNN3D], folder: Path, results: Any) -> None:
        if not state:
            return
        base = results.fits[DEPENDS_ON].model
        (folder / "models").mkdir(exist_ok=True)
        for name, model in state.items():
            save_cnn3d(model, folder / "models" / f"cnn3d_{safe_name(name)}.safetensors", fps=results.fps,
                       passband_hz=(results.passband["low_hz"], results.passband["high_hz"]),
                       normalisation=base.normalisation, training_frames=results.training)
