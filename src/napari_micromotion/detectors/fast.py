"""Fused CPU inference of the Table 1 network (numba).

The network has only 8 channels, so PyTorch's ``Conv1d`` spends its time on
overheads and memory traffic.  This kernel instead

* puts ``LANES`` pixels side by side in SIMD lanes (activations laid out
  ``[time, channel, lane]``),
* runs all 22 layers on a *time tile* of one pixel block before moving on, so the
  activations stay in L2 cache; tiles overlap by the receptive-field half-width
  (46 frames) so every output sample sees exactly the inputs it would see in the
  untiled network,
* keeps 'same' zero padding at the ends of the recording exactly as PyTorch does,
* spreads pixel blocks over all cores (``numba.prange``).

Results equal :func:`~napari_micromotion.detectors.cnn1d.predict_reference` to
float32 rounding (the order of additions differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CNNWeights", "weights_of", "cnn1d_forward", "LANES", "HALO"]

LANES = 32          # pixels per SIMD block
HALO = 46           # receptive-field half-width of Table 1 (16 * 1 + 2 + 4 + 8 + 16)
PAD = 16            # largest dilation: zero border inside the tile buffers
TILE = 1024         # output frames per tile


@dataclass(frozen=True)
class CNNWeights:
    """Table 1 weights as float32 arrays for the kernel."""

    w1: np.ndarray      # (8, 3)
    b1: np.ndarray      # (8,)
    w: np.ndarray       # (19, 8, 8, 3) Conv2-20
    b: np.ndarray       # (19, 8)
    dil: np.ndarray     # (19,) int64
    w21: np.ndarray     # (3, 8)
    b21: np.ndarray     # (3,)
    w22: np.ndarray     # (3,)
    b22: float


def weights_of(net: Any) -> CNNWeights:
    """Extract :class:`CNNWeights` from a :func:`~napari_micromotion.detectors.cnn1d.build_cnn1d` network."""
    convs = list(net.body)

    def arr(t: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

    return CNNWeights(
        w1=arr(convs[0].weight)[:, 0, :].copy(), b1=arr(convs[0].bias),
        w=np.stack([arr(c.weight) for c in convs[1:20]]), b=np.stack([arr(c.bias) for c in convs[1:20]]),
        dil=np.array([c.dilation[0] for c in convs[1:20]], dtype=np.int64),
        w21=arr(convs[20].weight)[:, :, 0].copy(), b21=arr(convs[20].bias),
        w22=arr(net.head.weight)[0, :, 0].copy(), b22=float(arr(net.head.bias)[0]),
    )


_KERNELS: dict[str, Any] = {}


def _build() -> dict[str, Any]:
    import numba
    from numba import njit, prange

    lanes, halo, pad = LANES, HALO, PAD

    @njit(fastmath=True, inline="always", nogil=True)
    def conv8(a_in, a_out, w, b, d, t0, t1):  # pragma: no cover - numba
        z = np.float32(0.0)
        for t in range(t0, t1):
            for co in range(8):
                for j in range(lanes):
                    s = b[co]
                    for ci in range(8):
                        for k in range(3):
                            s += w[co, ci, k] * a_in[t + (k - 1) * d, ci, j]
                    a_out[t, co, j] = max(s, z)

    @njit(parallel=True, fastmath=True, nogil=True, cache=True)
    def forward(x, w1, b1, w, b, dil, w21, b21, w22, b22, tile, out, feats, want_features):  # pragma: no cover
        n_t, n_p = x.shape
        n_blocks = (n_p + lanes - 1) // lanes
        n_layers = w.shape[0]
        z = np.float32(0.0)
        for ib in prange(n_blocks):
            p0 = ib * lanes
            nl = min(lanes, n_p - p0)
            size = tile + 2 * halo + 2 * pad
            buf_a = np.zeros((size, 8, lanes), np.float32)
            buf_b = np.zeros((size, 8, lanes), np.float32)
            xin = np.zeros((size, lanes), np.float32)
            for ts in range(0, n_t, tile):
                te = min(ts + tile, n_t)
                a = max(ts - halo, 0)
                e = min(te + halo, n_t)
                n = e - a
                # input tile with zero borders (the network's 'same' padding at the recording ends)
                xin[:] = 0.0
                for t in range(n):
                    for j in range(nl):
                        xin[pad + t, j] = x[a + t, p0 + j]
                buf_a[:] = 0.0
                buf_b[:] = 0.0
                for t in range(pad, pad + n):
                    for co in range(8):
                        for j in range(lanes):
                            s = b1[co] + w1[co, 0] * xin[t - 1, j] + w1[co, 1] * xin[t, j] + w1[co, 2] * xin[t + 1, j]
                            buf_a[t, co, j] = max(s, z)
                for l in range(n_layers):
                    if l % 2 == 0:
                        conv8(buf_a, buf_b, w[l], b[l], dil[l], pad, pad + n)
                    else:
                        conv8(buf_b, buf_a, w[l], b[l], dil[l], pad, pad + n)
                last = buf_b if n_layers % 2 == 1 else buf_a
                for t in range(ts - a, te - a):
                    tt = pad + t
                    for j in range(nl):
                        y = b22
                        for f in range(3):
                            s = b21[f]
                            for ci in range(8):
                                s += w21[f, ci] * last[tt, ci, j]
                            s = max(s, z)
                            if want_features:
                                feats[a + t, p0 + j, f] = s
                            y += w22[f] * s
                        out[a + t, p0 + j] = y

    return {"forward": forward, "numba": numba}


def cnn1d_forward(weights: CNNWeights, x: np.ndarray, *, features: bool = False, tile: int = TILE) -> np.ndarray:
    """Run the Table 1 network on every column of ``x`` (``(T, P)`` float32).

    Returns ``(T, P)`` predictions, or ``(T, P, 3)`` Conv21 features when *features*.
    """
    if "forward" not in _KERNELS:
        _KERNELS.update(_build())
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_t, n_p = x.shape
    out = np.empty((n_t, n_p), np.float32)
    feats = np.empty((n_t, n_p, 3) if features else (1, 1, 3), np.float32)
    wt = weights
    _KERNELS["forward"](x, wt.w1, wt.b1, wt.w, wt.b, wt.dil, wt.w21, wt.b21, wt.w22, np.float32(wt.b22),
                        int(tile), out, feats, bool(features))
    return feats if features else out
