"""Classical interpolators: ``linear`` and ``flow`` (motion-compensated), on NumPy and OpenCV.

Both synthesize the frame at time ``t`` in (0, 1) between frames ``a`` (t = 0) and ``b`` (t = 1)
and give a per-pixel *disagreement* ``|P0 - P1|`` of the two one-sided predictions (``a`` and
``b`` themselves for ``linear``; the two frames warped to ``t`` for ``flow``): where the two
views of the missing frame differ, the synthesized value is a guess.

``flow``: the bidirectional dense flow ``F01`` (content at ``x`` in ``a`` is at ``x + F01(x)`` in
``b``) and ``F10`` comes from the motion tool's estimator
(:class:`~napari_micromotion.kernels.flow.FlowEstimator`); the flows from the frame at ``t``
back to ``a`` and ``b`` are the quadratic approximations of Super SloMo (Jiang et al. 2018)::

    F_t0 = -(1 - t) t F01 + t^2 F10        F_t1 = (1 - t)^2 F01 - t (1 - t) F10

Both frames are backward-warped to ``t`` (``cv2.remap``, bilinear) and blended with weights
``(1 - t) v0`` and ``t v1``, where the visibilities ``v = exp(-(e / 1 px)^2)`` come from the
forward-backward inconsistency ``e`` of each flow (``|F01(x) + F10(x + F01(x))|``), warped to
``t`` like the frames: a pixel that one frame does not show (occluded, or badly matched) is
taken from the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels.flow import ENGINES, FlowEstimator, FlowParams, require_cv2

__all__ = ["PairFlow", "pair_flow", "time_flows", "warp", "linear_frame", "flow_frame", "ENGINES",
           "VISIBILITY_PX", "VISIBILITY_FLOOR"]

#: forward-backward inconsistency (px) at which a frame's visibility falls to 1/e
VISIBILITY_PX = 1.0
#: visibility floor: where both frames are occluded the blend falls back to time weights
VISIBILITY_FLOOR = 0.05


@dataclass
class PairFlow:
    """Bidirectional flow of a frame pair and its forward-backward inconsistency (pixels).

    ``f01``, ``f10``: ``(2, Y, X)`` float32 ``(dy, dx)``; ``e0``, ``e1``: ``(Y, X)`` float32,
    the inconsistency of ``f01`` at the pixels of ``a`` and of ``f10`` at the pixels of ``b``.
    """

    f01: np.ndarray
    f10: np.ndarray
    e0: np.ndarray
    e1: np.ndarray


def flow_params(engine: str) -> FlowParams:
    """The estimator's settings for frame pairs: no drift removal, no smoothing, one more pyramid level."""
    return FlowParams(engine=engine, remove_drift=False, smooth_px=0.0, levels=4, iterations=3,
                      reference_frames=1)


def warp(img: np.ndarray, flow: np.ndarray, grid: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """*img* sampled at ``x + flow(x)`` (bilinear, edges replicated); *flow* ``(2, Y, X)`` ``(dy, dx)``."""
    cv2 = require_cv2()
    ny, nx = img.shape
    if grid is None:
        gy, gx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    else:
        gy, gx = grid
    return cv2.remap(np.asarray(img, np.float32), gx + flow[1], gy + flow[0], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def pair_flow(a: np.ndarray, b: np.ndarray, engine: str = "lk") -> PairFlow:
    """Bidirectional flow between frames *a* and *b* (any dtype, same shape) and its inconsistency."""
    params = flow_params(engine)
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    f01 = FlowEstimator(a, params)(b)          # b(x + f01) ~ a(x)
    f10 = FlowEstimator(b, params)(a)
    ny, nx = a.shape
    grid = tuple(np.mgrid[0:ny, 0:nx].astype(np.float32))
    e0 = np.hypot(f01[0] + warp(f10[0], f01, grid), f01[1] + warp(f10[1], f01, grid)).astype(np.float32)
    e1 = np.hypot(f10[0] + warp(f01[0], f10, grid), f10[1] + warp(f01[1], f10, grid)).astype(np.float32)
    return PairFlow(f01.astype(np.float32), f10.astype(np.float32), e0, e1)


def time_flows(f01: Any, f10: Any, t: float) -> tuple[Any, Any]:
    """``(F_t0, F_t1)``: flows from the frame at *t* to ``a`` and to ``b`` (NumPy arrays or torch tensors)."""
    return (-(1 - t) * t * f01 + t * t * f10, (1 - t) ** 2 * f01 - t * (1 - t) * f10)


def linear_frame(a: np.ndarray, b: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """``((1 - t) a + t b, |a - b|)`` in float32."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    return (np.float32(1 - t) * a + np.float32(t) * b), np.abs(a - b)


def flow_frame(a: np.ndarray, b: np.ndarray, t: float, pf: PairFlow) -> tuple[np.ndarray, np.ndarray]:
    """The motion-compensated frame at *t* and the disagreement ``|W0 - W1|`` of the two warped frames."""
    ny, nx = a.shape
    grid = tuple(np.mgrid[0:ny, 0:nx].astype(np.float32))
    ft0, ft1 = time_flows(pf.f01, pf.f10, t)
    w0 = warp(a, ft0, grid)
    w1 = warp(b, ft1, grid)
    v0 = np.exp(-(warp(pf.e0, ft0, grid) / VISIBILITY_PX) ** 2) + VISIBILITY_FLOOR
    v1 = np.exp(-(warp(pf.e1, ft1, grid) / VISIBILITY_PX) ** 2) + VISIBILITY_FLOOR
    k0 = np.float32(1 - t) * v0
    k1 = np.float32(t) * v1
    return ((k0 * w0 + k1 * w1) / (k0 + k1)).astype(np.float32), np.abs(w0 - w1)
