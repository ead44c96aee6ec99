"""Fused CPU training of the Table 1 network (numba forward + backward + Adam).

:func:`iter_train_fast` is a drop-in replacement for
:func:`~napari_micromotion.detectors.cnn1d.iter_train_cnn1d_torch` on CPU: same
arguments, same :class:`~napari_micromotion.progress.Progress` events, same
return value ``(net, losses, epoch_losses)``, and the *same batches in the same
order* for a given seed, so that its loss curve can be compared with the
PyTorch reference step by step.

Why a hand-written kernel
-------------------------
The network has 8 channels and 3863 weights; per sample (one pixel at one
frame) a training step is ~22 kFLOP spread over 22 tiny layers.  PyTorch's
``Conv1d`` (oneDNN) spends most of its time on per-layer overheads, layout
conversions and memory traffic.  Here one numba kernel does a whole Adam step's
gradient:

* **layout** - a block of 16 training windows (``LANES``) is stored channel-major,
  ``plane[channel][frame * 16 + lane]``: every tap of a (dilated) convolution is
  a contiguous shifted run of the plane, so the inner loops are plain unit-stride
  loops that LLVM vectorises (AVX2/AVX-512), with no gathers;
* **time tiles with a halo** - each window is cut into tiles of <= ``TILE``
  output frames; a tile is computed on its frames plus ``HALO`` = 46 frames
  either side (the receptive-field half-width; zero 'same' padding only at the
  true window ends).  Back-propagating only the loss of the tile's own frames
  then gives that tile's *exact* share of the gradient (every activation the
  backward pass touches is one the halo makes exact), so tiles are independent
  work items; they run in parallel over the cores (``numba.prange``) and their
  activations (~6 MB for 21 layers) stay in L2/L3;
* **per-item gradient buffers** - each (block, tile) item writes its own
  float64 gradient; items are summed in a fixed order afterwards, so the result
  is bit-identical for a given seed whatever the number of threads;
* **Adam** - the PyTorch update (``torch.optim.Adam`` defaults: betas
  0.9/0.999, eps 1e-8, no weight decay) on one flat float32 parameter vector,
  same operation order.

Numerics: float32 activations and gradients (as PyTorch), float32 SIMD partial
sums of each weight gradient over one tile, then float64 over tiles and windows
(PyTorch: float32 throughout).  Losses are summed in float64.  Gradients agree
with float64 autograd to ~1e-7 relative; over hundreds of Adam steps the
trajectory drifts from PyTorch's exactly as much as PyTorch's own run on a
different thread count does (summation order), see
``benchmarks/bench_cnn1d_train.py --spread``.

Measured on the 2-core AVX-512 Xeon, machine otherwise idle, 10570-frame
windows of 1024 frames: 4.9 M samples/s at batch 16 (PyTorch path 0.71 M/s,
6.9x) and 5.3 M/s at batch 128 (PyTorch 1.18 M/s).  LLVM targets this CPU with
256-bit vectors; ``NUMBA_CPU_FEATURES=<host features>,-prefer-256-bit`` gives
512-bit code and ~25 % more single-thread throughput (changes rounding, so it
is not set here).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np
from numba import njit, prange, uintp

from ..errors import MicromotionError, check
from ..progress import Progress
from .cnn1d import (
    DILATIONS,
    N_FEATURES,
    N_FILTERS,
    N_PLAIN,
    CNN1DParams,
    build_cnn1d,
    receptive_field,
    training_windows,
)

__all__ = ["HALO", "LANES", "N_PARAMS", "TILE", "adam_step", "batch_plan", "gradient", "iter_train_fast", "load_theta",
           "pairs_of", "theta_of", "train_fast"]

LANES = 16          # training windows per SIMD block
HALO = 46           # receptive-field half-width of Table 1
PAD = 16            # largest dilation: zero border of every plane
TILE = 512          # output frames per time tile (a work item)

N_MID = N_PLAIN - 1 + len(DILATIONS)      # Conv2 .. Conv20: 19 layers 8 -> 8, width 3
# flat parameter vector (our order; see theta_of / load_theta for the mapping to torch)
O_W1 = 0                                   # (8, 3)        Conv1 weight
O_B1 = O_W1 + N_FILTERS * 3                # (8,)          Conv1 bias
O_W = O_B1 + N_FILTERS                     # (19, 8, 8, 3) Conv2-20 weights
O_B = O_W + N_MID * N_FILTERS * N_FILTERS * 3   # (19, 8) Conv2-20 biases
O_W21 = O_B + N_MID * N_FILTERS            # (3, 8)        Conv21 weight
O_B21 = O_W21 + N_FEATURES * N_FILTERS     # (3,)          Conv21 bias
O_W22 = O_B21 + N_FEATURES                 # (3,)          Conv22 weight
O_B22 = O_W22 + N_FEATURES                 # ()            Conv22 bias
N_PARAMS = O_B22 + 1                       # 3863
N_ACT = N_MID + 2                          # stored activations: Conv1 .. Conv21
N_PLANES = 1 + N_ACT * N_FILTERS + 2 * N_FILTERS + 2   # x, activations, two gradient sets, target, dy

DIL = np.array([1] * (N_PLAIN - 1) + list(DILATIONS), dtype=np.int64)


# ---------------------------------------------------------------- parameters


def theta_of(net: Any) -> np.ndarray:
    """The network's 3863 parameters as one float32 vector in this module's order."""
    convs = list(net.body)

    def arr(t: Any) -> np.ndarray:
        return t.detach().cpu().numpy().astype(np.float32).ravel()

    parts = [arr(convs[0].weight), arr(convs[0].bias)]
    parts += [arr(c.weight) for c in convs[1:1 + N_MID]]
    parts += [arr(c.bias) for c in convs[1:1 + N_MID]]
    parts += [arr(convs[-1].weight), arr(convs[-1].bias), arr(net.head.weight), arr(net.head.bias)]
    theta = np.concatenate(parts)
    assert theta.size == N_PARAMS
    return theta


def load_theta(net: Any, theta: np.ndarray) -> Any:
    """Copy a flat parameter vector (this module's order) into *net* (in place); returns *net*."""
    import torch

    convs = list(net.body)
    theta = np.asarray(theta, dtype=np.float32)

    def put(param: Any, a: int, b: int) -> None:
        with torch.no_grad():
            param.copy_(torch.from_numpy(theta[a:b].copy()).reshape(param.shape))

    put(convs[0].weight, O_W1, O_B1)
    put(convs[0].bias, O_B1, O_W)
    k = N_FILTERS * N_FILTERS * 3
    for i, c in enumerate(convs[1:1 + N_MID]):
        put(c.weight, O_W + i * k, O_W + (i + 1) * k)
        put(c.bias, O_B + i * N_FILTERS, O_B + (i + 1) * N_FILTERS)
    put(convs[-1].weight, O_W21, O_B21)
    put(convs[-1].bias, O_B21, O_W22)
    put(net.head.weight, O_W22, O_B22)
    put(net.head.bias, O_B22, N_PARAMS)
    return net


# ---------------------------------------------------------------- kernels
# Module-level functions (not closures) so that numba's on-disk cache is hit across
# processes: closure cells holding other dispatchers change their pickled bytes in
# every process and force a recompilation (~15 s).  Module constants are frozen
# into the compiled code.

# no nnan/ninf: a diverging loss must stay visible as inf/nan
_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Index arithmetic uses uintp so that numba emits no negative-index wraparound
# inside the vectorised loops (that would turn contiguous loads into gathers).


@njit(fastmath=_FM, cache=True, nogil=True)
def _fwd8(ws, src, dst, th, ow, ob, d, m0, m1, n):  # pragma: no cover - numba
    """dst[co] = relu(b[co] + sum_{ci,k} w[co,ci,k] * src[ci] shifted by (k-1)*d frames)."""
    dd = d * LANES
    z = np.float32(0.0)
    for co in range(8):
        bias = th[ob + co]
        w = ow + co * 24
        out = dst + co * n
        for m in range(m0, m1):
            s = bias
            for ci in range(8):
                base = src + ci * n + m
                s += th[w + ci * 3] * ws[uintp(base - dd)]
                s += th[w + ci * 3 + 1] * ws[uintp(base)]
                s += th[w + ci * 3 + 2] * ws[uintp(base + dd)]
            ws[uintp(out + m)] = max(s, z)


@njit(fastmath=_FM, cache=True, nogil=True)
def _bwd8(ws, g, act_in, g_out, th, ow, d, m0, m1, n, gw, gb):  # pragma: no cover - numba
    """Backward of one 8 -> 8 layer.

    ``g``: gradient w.r.t. the layer's pre-activation (zero outside [m0, m1));
    ``act_in``: the layer's input (post-ReLU output of the layer below).
    Writes ``g_out`` = gradient w.r.t. the pre-activation of the layer below, adds
    the layer's weight gradients to ``gw[0:192]`` and the *layer below's* bias
    gradients (the sums of ``g_out``) to ``gb[0:8]``.
    """
    dd = d * LANES
    z = np.float32(0.0)
    # input gradient, gated by the ReLU of the layer below
    for ci in range(8):
        out = g_out + ci * n
        a = act_in + ci * n
        sb = z
        for m in range(m0, m1):
            s = z
            for co in range(8):
                base = g + co * n + m
                w = ow + co * 24 + ci * 3
                s += th[w] * ws[uintp(base + dd)]
                s += th[w + 1] * ws[uintp(base)]
                s += th[w + 2] * ws[uintp(base - dd)]
            v = s if ws[uintp(a + m)] > z else z
            ws[uintp(out + m)] = v
            sb += v
        gb[ci] += sb
    # weight gradients gw[co, ci, k] = sum_m g[co, m] * act_in[ci, m + (k - 1) d]:
    # for one ci, 24 accumulators share the three shifted loads of act_in
    for ci in range(8):
        a = act_in + ci * n
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = s10 = s11 = z
        s12 = s13 = s14 = s15 = s16 = s17 = s18 = s19 = s20 = s21 = s22 = s23 = z
        for m in range(m0, m1):
            a0 = ws[uintp(a + m - dd)]
            a1 = ws[uintp(a + m)]
            a2 = ws[uintp(a + m + dd)]
            g0 = ws[uintp(g + m)]
            g1 = ws[uintp(g + n + m)]
            g2 = ws[uintp(g + 2 * n + m)]
            g3 = ws[uintp(g + 3 * n + m)]
            g4 = ws[uintp(g + 4 * n + m)]
            g5 = ws[uintp(g + 5 * n + m)]
            g6 = ws[uintp(g + 6 * n + m)]
            g7 = ws[uintp(g + 7 * n + m)]
            s0 += g0 * a0
            s1 += g0 * a1
            s2 += g0 * a2
            s3 += g1 * a0
            s4 += g1 * a1
            s5 += g1 * a2
            s6 += g2 * a0
            s7 += g2 * a1
            s8 += g2 * a2
            s9 += g3 * a0
            s10 += g3 * a1
            s11 += g3 * a2
            s12 += g4 * a0
            s13 += g4 * a1
            s14 += g4 * a2
            s15 += g5 * a0
            s16 += g5 * a1
            s17 += g5 * a2
            s18 += g6 * a0
            s19 += g6 * a1
            s20 += g6 * a2
            s21 += g7 * a0
            s22 += g7 * a1
            s23 += g7 * a2
        o = ci * 3
        gw[o] += s0
        gw[o + 1] += s1
        gw[o + 2] += s2
        gw[o + 24] += s3
        gw[o + 25] += s4
        gw[o + 26] += s5
        gw[o + 48] += s6
        gw[o + 49] += s7
        gw[o + 50] += s8
        gw[o + 72] += s9
        gw[o + 73] += s10
        gw[o + 74] += s11
        gw[o + 96] += s12
        gw[o + 97] += s13
        gw[o + 98] += s14
        gw[o + 120] += s15
        gw[o + 121] += s16
        gw[o + 122] += s17
        gw[o + 144] += s18
        gw[o + 145] += s19
        gw[o + 146] += s20
        gw[o + 168] += s21
        gw[o + 169] += s22
        gw[o + 170] += s23


@njit(fastmath=_FM, cache=True, nogil=True)
def _item_grad(x, target, pix, starts, b0, nl, o0, o1, e0, e1, th, dil, scale, ws, n, gw):  # pragma: no cover
    """Gradient (added to gw, float64) and summed squared error of one (block, tile) item."""
    z = np.float32(0.0)
    nfr = e1 - e0
    m0 = PAD * LANES
    m1 = (PAD + nfr) * LANES
    # plane offsets inside ws
    px = 0
    pa = n                                   # activations: layer l channel c at pa + (l*8 + c)*n
    pg0 = pa + N_ACT * 8 * n                 # gradient set 0 (8 planes)
    pg1 = pg0 + 8 * n                        # gradient set 1
    pt = pg1 + 8 * n                         # target plane
    pdy = pt + n                             # d loss / d output
    n_planes = pdy // n + 1
    # zero the borders every plane may read: [0, m0) and [m1, m1 + PAD*LANES)
    for p in range(n_planes):
        for m in range(m0):
            ws[uintp(p * n + m)] = z
        for m in range(m1, m1 + PAD * LANES):
            ws[uintp(p * n + m)] = z
    # input and target planes
    for j in range(LANES):
        if j < nl:
            row = pix[b0 + j]
            s0 = starts[b0 + j] + e0
            for t in range(nfr):
                ws[uintp(px + m0 + t * LANES + j)] = x[row, s0 + t]
                ws[uintp(pt + m0 + t * LANES + j)] = target[s0 + t]
        else:
            for t in range(nfr):
                ws[uintp(px + m0 + t * LANES + j)] = z
                ws[uintp(pt + m0 + t * LANES + j)] = z
    # ---- forward
    for co in range(8):
        b = th[O_B1 + co]
        w0 = th[O_W1 + co * 3]
        w1 = th[O_W1 + co * 3 + 1]
        w2 = th[O_W1 + co * 3 + 2]
        out = pa + co * n
        for m in range(m0, m1):
            s = b + w0 * ws[uintp(px + m - LANES)] + w1 * ws[uintp(px + m)] + w2 * ws[uintp(px + m + LANES)]
            ws[uintp(out + m)] = max(s, z)
    for l in range(N_MID):
        _fwd8(ws, pa + l * 8 * n, pa + (l + 1) * 8 * n, th, O_W + l * 192, O_B + l * 8, dil[l], m0, m1, n)
    p20 = pa + N_MID * 8 * n          # Conv20 output (input of Conv21)
    p21 = pa + (N_MID + 1) * 8 * n    # Conv21 output (3 planes)
    for c in range(N_FEATURES):
        out = p21 + c * n
        b = th[O_B21 + c]
        for m in range(m0, m1):
            s = b
            for ci in range(8):
                s += th[O_W21 + c * 8 + ci] * ws[uintp(p20 + ci * n + m)]
            ws[uintp(out + m)] = max(s, z)
    # ---- output and residual
    b22 = th[O_B22]
    for m in range(m0, m1):
        y = b22
        for c in range(N_FEATURES):
            y += th[O_W22 + c] * ws[uintp(p21 + c * n + m)]
        ws[uintp(pdy + m)] = y - ws[uintp(pt + m)]
    # ---- loss (float64) and its gradient: only frames [o0, o1) of lanes < nl count
    sse = 0.0
    t0 = PAD + o0 - e0
    t1 = PAD + o1 - e0
    for t in range(t0, t1):
        for j in range(nl):
            r = np.float64(ws[uintp(pdy + t * LANES + j)])
            sse += r * r
    for m in range(m0, t0 * LANES):
        ws[uintp(pdy + m)] = z
    for m in range(t0 * LANES, t1 * LANES):
        ws[uintp(pdy + m)] *= scale
    for m in range(t1 * LANES, m1):
        ws[uintp(pdy + m)] = z
    if nl < LANES:
        for t in range(t0, t1):
            for j in range(nl, LANES):
                ws[uintp(pdy + t * LANES + j)] = z
    # ---- backward: Conv22 (linear) and Conv21
    for c in range(N_FEATURES):
        s = z
        wc = th[O_W22 + c]
        out = pg0 + c * n
        a = p21 + c * n
        for m in range(m0, m1):
            dy = ws[uintp(pdy + m)]
            av = ws[uintp(a + m)]
            s += dy * av
            ws[uintp(out + m)] = wc * dy if av > z else z
        gw[O_W22 + c] += s
    sb = z
    for m in range(m0, m1):
        sb += ws[uintp(pdy + m)]
    gw[O_B22] += sb
    for c in range(N_FEATURES):
        gc = pg0 + c * n
        sb = z
        for m in range(m0, m1):
            sb += ws[uintp(gc + m)]
        gw[O_B21 + c] += sb
        for ci in range(8):
            s = z
            a = p20 + ci * n
            for m in range(m0, m1):
                s += ws[uintp(gc + m)] * ws[uintp(a + m)]
            gw[O_W21 + c * 8 + ci] += s
    for ci in range(8):
        out = pg1 + ci * n
        a = p20 + ci * n
        sb = z
        for m in range(m0, m1):
            s = z
            for c in range(N_FEATURES):
                s += th[O_W21 + c * 8 + ci] * ws[uintp(pg0 + c * n + m)]
            v = s if ws[uintp(a + m)] > z else z
            ws[uintp(out + m)] = v
            sb += v
        gw[O_B + (N_MID - 1) * 8 + ci] += sb
    # ---- backward: Conv20 .. Conv2 (each also gives the bias gradient of the layer below)
    cur = pg1
    nxt = pg0
    lw = np.zeros(192, np.float32)
    lb = np.zeros(8, np.float32)
    for l in range(N_MID - 1, -1, -1):
        lw[:] = 0.0
        lb[:] = 0.0
        _bwd8(ws, cur, pa + l * 8 * n, nxt, th, O_W + l * 192, dil[l], m0, m1, n, lw, lb)
        for i in range(192):
            gw[O_W + l * 192 + i] += lw[i]
        ob_below = O_B + (l - 1) * 8 if l > 0 else O_B1
        for i in range(8):
            gw[ob_below + i] += lb[i]
        cur, nxt = nxt, cur
    # ---- Conv1 weights (no input gradient needed)
    for co in range(8):
        gc = cur + co * n
        s0 = z
        s1 = z
        s2 = z
        for m in range(m0, m1):
            gv = ws[uintp(gc + m)]
            s0 += gv * ws[uintp(px + m - LANES)]
            s1 += gv * ws[uintp(px + m)]
            s2 += gv * ws[uintp(px + m + LANES)]
        gw[O_W1 + co * 3] += s0
        gw[O_W1 + co * 3 + 1] += s1
        gw[O_W1 + co * 3 + 2] += s2
    return sse


@njit(parallel=True, fastmath=_FM, cache=True, nogil=True)
def _batch_grad(x, target, pix, starts, length, tile, th, dil, ws, n, gparts, sse_parts, grad):  # pragma: no cover
    """Mean-square-error loss and its gradient (float32, into grad) for one batch of windows."""
    nb = pix.size
    n_blocks = (nb + LANES - 1) // LANES
    n_tiles = (length + tile - 1) // tile
    n_items = n_blocks * n_tiles
    n_ws = ws.shape[0]
    scale = np.float32(2.0 / (nb * length))
    for w in prange(n_ws):
        for item in range(w, n_items, n_ws):
            blk = item // n_tiles
            ti = item % n_tiles
            b0 = blk * LANES
            nl = min(LANES, nb - b0)
            o0 = ti * tile
            o1 = min(length, o0 + tile)
            e0 = max(0, o0 - HALO)
            e1 = min(length, o1 + HALO)
            gparts[item, :] = 0.0
            sse_parts[item] = _item_grad(x, target, pix, starts, b0, nl, o0, o1, e0, e1, th, dil, scale,
                                        ws[w], n, gparts[item])
    total = 0.0
    for i in range(grad.size):
        s = 0.0
        for item in range(n_items):
            s += gparts[item, i]
        grad[i] = np.float32(s)
    for item in range(n_items):
        total += sse_parts[item]
    return total / (nb * length)


@njit(cache=True, nogil=True)
def _adam(th, grad, m, v, step, lr, beta1, beta2, eps):  # pragma: no cover - numba
    """torch.optim.Adam (single-tensor path, no weight decay / amsgrad) in float32."""
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    step_size = np.float32(lr / bc1)
    bc2_sqrt = np.float32(math.sqrt(bc2))
    w1 = np.float32(1.0 - beta1)
    b2 = np.float32(beta2)
    w2 = np.float32(1.0 - beta2)
    e = np.float32(eps)
    for i in range(th.size):
        g = grad[i]
        mi = m[i] + w1 * (g - m[i])
        vi = v[i] * b2 + w2 * (g * g)
        m[i] = mi
        v[i] = vi
        denom = np.sqrt(vi) / bc2_sqrt + e
        th[i] = th[i] + (-step_size) * (mi / denom)


# ---------------------------------------------------------------- the gradient of one batch


def kernels_ready() -> bool:
    """Whether the fused training kernels are compiled or cached (else the first call compiles them)."""
    from ..jit import ready

    return ready(_batch_grad, _adam)


class _Workspace:
    """Per-thread scratch planes and per-item gradient buffers, reused across steps."""

    def __init__(self) -> None:
        self.ws = np.zeros((0, 0), np.float32)
        self.gparts = np.zeros((0, N_PARAMS))
        self.sse = np.zeros(0)

    def get(self, n_threads: int, n: int, n_items: int):
        size = N_PLANES * n
        if self.ws.shape != (n_threads, size):
            self.ws = np.zeros((n_threads, size), np.float32)
        if self.gparts.shape[0] < n_items:
            self.gparts = np.zeros((n_items, N_PARAMS))
            self.sse = np.zeros(n_items)
        return self.ws, self.gparts, self.sse


def _tile_for(length: int, tile: int) -> int:
    """Equal tiles of at most *tile* output frames."""
    n_tiles = max(1, math.ceil(length / tile))
    return math.ceil(length / n_tiles)


def _plane_size(length: int, tile: int) -> int:
    """Elements of one plane: the largest tile plus halos and zero borders, times the lanes."""
    ext = min(length, tile + 2 * HALO)
    return (ext + 2 * PAD) * LANES


def gradient(theta: np.ndarray, inputs: np.ndarray, target: np.ndarray, pix: np.ndarray, starts: np.ndarray,
             length: int, *, tile: int = TILE, n_threads: int | None = None,
             workspace: _Workspace | None = None) -> tuple[float, np.ndarray]:
    """MSE loss and its gradient (flat, this module's order) for windows ``inputs[pix[i], starts[i]:+length]``.

    ``inputs`` is ``(n_pixels, T)``, ``target`` ``(T,)``; the loss is the mean over all
    ``len(pix) * length`` samples, as ``torch.mean((net(x) - y) ** 2)``.
    """
    import numba

    n_threads = int(n_threads or numba.get_num_threads())
    length = int(length)
    t = _tile_for(length, int(tile))
    n_items = math.ceil(len(pix) / LANES) * math.ceil(length / t)
    n = _plane_size(length, t)
    wsp = workspace or _Workspace()
    ws, gparts, sse = wsp.get(n_threads, n, n_items)
    grad = np.empty(N_PARAMS, np.float32)
    loss = _batch_grad(np.ascontiguousarray(inputs, dtype=np.float32), np.ascontiguousarray(target, dtype=np.float32),
                       np.ascontiguousarray(pix, dtype=np.int64),
                       np.ascontiguousarray(starts, dtype=np.int64), length, int(t),
                       np.ascontiguousarray(theta, dtype=np.float32), DIL, ws, n, gparts, sse, grad)
    return float(loss), grad


def adam_step(theta: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """One ``torch.optim.Adam`` update of the flat float32 vectors (in place); *step* counts from 1."""
    _adam(theta, grad, m, v, int(step), float(lr), float(betas[0]), float(betas[1]), float(eps))


# ---------------------------------------------------------------- batches (same as iter_train_cnn1d_torch)


def batch_plan(n_pix: int, windows: Sequence[tuple[int, int]], batch_size: int, epochs: int,
               seed: int) -> Iterator[tuple[int, list[np.ndarray], np.ndarray]]:
    """Yield ``(epoch, batches, batch_order)`` exactly as :func:`~napari_micromotion.detectors.cnn1d.iter_train_cnn1d_torch` draws them.

    ``batches[i]`` indexes :func:`pairs_of`; the rng calls and their order are the
    reference's (``default_rng(seed + 1)``; per epoch one permutation of the pairs,
    then one of the batches).
    """
    rng = np.random.default_rng(seed + 1)
    _, lengths = pairs_of(n_pix, windows)
    uniq = np.unique(lengths)
    for epoch in range(epochs):
        order = rng.permutation(lengths.size)
        batches: list[np.ndarray] = []
        for L in uniq:
            idx = order[lengths[order] == L]
            batches += [idx[i:i + batch_size] for i in range(0, idx.size, batch_size)]
        yield epoch, batches, rng.permutation(len(batches))


def pairs_of(n_pix: int, windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """All (pixel, window) pairs, pixel-major (the reference's order), and each pair's window length."""
    nw = len(windows)
    pairs = np.empty((n_pix * nw, 2), np.int64)
    pairs[:, 0] = np.repeat(np.arange(n_pix, dtype=np.int64), nw)
    pairs[:, 1] = np.tile(np.arange(nw, dtype=np.int64), n_pix)
    wl = np.array([b - a for a, b in windows], dtype=np.int64)
    return pairs, wl[pairs[:, 1]]


# ---------------------------------------------------------------- training


def iter_train_fast(inputs: np.ndarray, target: np.ndarray, segments: Sequence[tuple[int, int]],
                    params: CNN1DParams, *, init: Any = None, tile: int = TILE, restarts: int = 0,
                    dead_steps: int = 100) -> Iterator[Progress | Any]:
    """Train the 1D CNN on CPU with the fused kernel; same contract as :func:`~napari_micromotion.detectors.cnn1d.iter_train_cnn1d_torch`.

    A generator of :class:`Progress` whose return value is ``(net, losses, epoch_losses)``;
    ``net`` is a :func:`build_cnn1d` module (on CPU, eval mode) carrying the trained
    weights (*init* itself, updated in place, when given).  ``params.device`` is
    not used: this backend always runs on the CPU.

    restarts
        Opt-in guard against the *dead network* failure (every ReLU of Conv21 off for
        every input, so the prediction is a constant and no gradient but the output
        bias's is ever non-zero again): when all other gradients have been exactly
        zero for *dead_steps* consecutive steps, training starts over from a fresh
        Glorot init with seed ``params.seed + 7919 * k`` (its own batch order too), at
        most *restarts* times.  The returned curves are those of the last attempt.
        With ``restarts=0`` (default) the behaviour is exactly the reference's.
    """
    params.validate()
    windows = training_windows(segments, params.window)
    check(windows, f"the training frames are shorter than the network's receptive field ({receptive_field()} frames).")
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    check(x.ndim == 2, "inputs must be (n_pixels, T).")
    n_pix = x.shape[0]
    check(n_pix >= 1, "no training pixels.")
    y = np.ascontiguousarray(target, dtype=np.float32)
    check(y.ndim == 1 and y.size == x.shape[1], "target must be (T,) with T = inputs.shape[1].")
    net = init if init is not None else build_cnn1d(params.seed)
    net = net.cpu()
    pairs, lengths = pairs_of(n_pix, windows)
    win_start = np.array([a for a, _ in windows], dtype=np.int64)
    win_len = np.array([b - a for a, b in windows], dtype=np.int64)
    bs = params.batch_size
    n_steps_epoch = sum(math.ceil(int((lengths == L).sum()) / bs) for L in np.unique(lengths))
    total = params.epochs * n_steps_epoch
    wsp = _Workspace()
    done_before = 0                       # steps of abandoned attempts (for the progress fraction)
    for attempt in range(int(restarts) + 1):
        seed = params.seed + 7919 * attempt
        theta = theta_of(net) if attempt == 0 else theta_of(build_cnn1d(seed))
        m = np.zeros_like(theta)
        v = np.zeros_like(theta)
        losses: list[float] = []
        epoch_losses: list[float] = []
        step = 0
        dead_run = 0
        prefix = f"restart {attempt}/{restarts} (the network had died), " if attempt else ""
        for epoch, batches, batch_order in batch_plan(n_pix, windows, bs, params.epochs, seed):
            running, count = 0.0, 0
            for bi in batch_order:
                sel = pairs[batches[bi]]
                length = int(win_len[sel[0, 1]])
                loss, grad = gradient(theta, x, y, sel[:, 0], win_start[sel[:, 1]], length, tile=tile, workspace=wsp)
                if not (math.isfinite(loss) and abs(loss) < 3e38 and np.isfinite(grad).all()):
                    raise MicromotionError("1D CNN training diverged (loss is not finite); lower the learning rate.")
                val = float(np.float32(loss))       # the reference reports the batch's float32 loss
                step += 1
                adam_step(theta, grad, m, v, step, params.learning_rate)
                losses.append(val)
                running += val * len(sel)
                count += len(sel)
                dead_run = dead_run + 1 if not grad[:O_B22].any() else 0
                if attempt < restarts and dead_run >= dead_steps:
                    break
                if step % 10 == 0 or step == total:
                    frac = (done_before + step) / (done_before + total)
                    recent = float(np.mean(losses[-10:]))
                    yield Progress("train cnn1d", frac, f"{prefix}epoch {epoch + 1}/{params.epochs}, loss {recent:.4f}",
                                   values={"loss": recent, "step": done_before + step, "epoch": epoch + 1})
            else:
                epoch_losses.append(running / max(count, 1))
                continue
            break                                   # dead: abandon this attempt
        else:
            break                                   # finished all epochs
        done_before += step
    load_theta(net, theta)
    net.eval()
    return net, losses, epoch_losses


def train_fast(inputs: np.ndarray, target: np.ndarray, segments: Sequence[tuple[int, int]],
               params: CNN1DParams = CNN1DParams(), *, init: Any = None, tile: int = TILE, restarts: int = 0,
               dead_steps: int = 100):
    """Synchronous :func:`iter_train_fast`; returns ``(net, losses, epoch_losses)``."""
    gen = iter_train_fast(inputs, target, segments, params, init=init, tile=tile, restarts=restarts,
                          dead_steps=dead_steps)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
