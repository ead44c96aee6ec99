"""Fused CPU inference of the Table 1 network (numba).

The network has only 8 channels, so PyTorch's ``Conv1d`` spends its time on
overheads and memory traffic (about 3 % of the machine's GEMM throughput).  This
kernel instead

* puts ``LANES`` pixels side by side in SIMD lanes: every activation buffer is laid
  out ``[time, channel * LANES + lane]``, so one row of a buffer holds the 8
  channels of one frame for a block of pixels;
* computes the 8 output channels of a layer together (register blocking): for
  each frame and SIMD vector of lanes it keeps 8 accumulators, loads each of the
  24 inputs (8 channels x 3 taps) once and does 8 fused multiply-adds with it;
  the weights enter as 8-tuples (``to_fixed_tuple``), i.e. as values rather than
  memory, so LLVM needs no run-time alias checks and vectorises the lane loop
  (the stores of 8 channels per iteration would otherwise defeat it);
* runs all 22 layers on a *time tile* of one pixel block before moving on, so the
  activations stay in the core's L2 cache; tiles overlap by the receptive-field
  half-width (46 frames) so every output sample sees exactly the inputs it would
  see in the untiled network;
* keeps 'same' zero padding at the ends of the recording exactly as PyTorch does
  (a zero border of ``PAD`` rows around each tile);
* stages each tile's input (one 64-byte line per frame) in a separate tight loop and
  writes the outputs from a small per-thread buffer, so the strided reads and writes
  of the ``(T, P)`` arrays do not stall the arithmetic;
* gives each thread its own two ping-pong buffers and a contiguous share of the
  pixel blocks (``prange`` over threads), so nothing is allocated per tile and no
  two threads write into the same cache line.

Results equal :func:`~napari_micromotion.detectors.cnn1d.predict_reference` to
float32 rounding (the order of additions differs; ``fastmath`` only reassociates).
No C compiler is needed: numba compiles with its bundled LLVM and caches the
machine code (``cache=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numba import njit, prange
from numba.np.unsafe.ndarray import to_fixed_tuple

__all__ = ["CNNWeights", "weights_of", "cnn1d_forward", "extend_edges", "on_reflected_edges", "LANES", "HALO", "TILE"]

LANES = 16          # pixels per SIMD block (two 256-bit or one 512-bit vector of float32)
HALO = 46           # receptive-field half-width of Table 1 (1 + 15 * 1 + 2 + 4 + 8 + 16)
PAD = 16            # largest dilation: zero border inside the tile buffers
TILE = 2048         # output frames per time tile (halo overhead 2 * 46 / 2048 = 4.5 %)


@dataclass(frozen=True)
class CNNWeights:
    """Table 1 weights as float32 arrays for the kernel."""

    w1: np.ndarray      # (8, 3)
    b1: np.ndarray      # (8,)
    w: np.ndarray       # (19, 8, 8, 3) Conv2-20, [layer, out, in, tap]
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


# The kernels live at module level (this module is imported lazily, only when a
# network runs): numba's on-disk cache misses every time for functions that close over
# other jitted functions (the closure is part of the cache key and differs per process),
# which cost a recompilation of ~10 s in every new process.
L = LANES
pad = PAD


@njit(fastmath=True, inline="always", nogil=True)
def tap(s, x, w):  # pragma: no cover - numba
    # s[co] += w[co] * x for the 8 output channels (w: an 8-tuple, i.e. values, not memory)
    return (s[0] + w[0] * x, s[1] + w[1] * x, s[2] + w[2] * x, s[3] + w[3] * x,
            s[4] + w[4] * x, s[5] + w[5] * x, s[6] + w[6] * x, s[7] + w[7] * x)


@njit(fastmath=True, inline="always", nogil=True)
def chan(s, rm, r0, rp, i, wa, wb, wc):  # pragma: no cover - numba
    # one input channel at taps t - d, t, t + d
    return tap(tap(tap(s, rm[i], wa), r0[i], wb), rp[i], wc)


# Found by reading LLVM's vectoriser remarks (llvmlite set_option -pass-remarks*):
# tuples are indexed with literal indices only (a computed index into a long tuple
# compiles, with cache=True, to a call per access), and the 8 stores stay in the
# loop body itself (moved into an inlined helper they defeat the dependence analysis).
@njit(fastmath=True, nogil=True, cache=True)
def conv8(bi, bo, wm, brow, d, t0, t1):  # pragma: no cover - numba
    """Rows t0..t1 of an 8 -> 8 channel, width-3 convolution with dilation d and ReLU, bi -> bo.

    Rows of bi/bo: [channel * L + lane]; ``wm``: (24, 8) weights [in channel * 3 + tap, out channel].
    (An in-place variant - output of row t into row t - d - does not vectorise: LLVM
    cannot bound the distance between the stores and the loads of rows t and t + d.)
    """
    z = np.float32(0.0)
    b = to_fixed_tuple(brow, 8)
    w0 = to_fixed_tuple(wm[0], 8)
    w1 = to_fixed_tuple(wm[1], 8)
    w2 = to_fixed_tuple(wm[2], 8)
    w3 = to_fixed_tuple(wm[3], 8)
    w4 = to_fixed_tuple(wm[4], 8)
    w5 = to_fixed_tuple(wm[5], 8)
    w6 = to_fixed_tuple(wm[6], 8)
    w7 = to_fixed_tuple(wm[7], 8)
    w8 = to_fixed_tuple(wm[8], 8)
    w9 = to_fixed_tuple(wm[9], 8)
    w10 = to_fixed_tuple(wm[10], 8)
    w11 = to_fixed_tuple(wm[11], 8)
    w12 = to_fixed_tuple(wm[12], 8)
    w13 = to_fixed_tuple(wm[13], 8)
    w14 = to_fixed_tuple(wm[14], 8)
    w15 = to_fixed_tuple(wm[15], 8)
    w16 = to_fixed_tuple(wm[16], 8)
    w17 = to_fixed_tuple(wm[17], 8)
    w18 = to_fixed_tuple(wm[18], 8)
    w19 = to_fixed_tuple(wm[19], 8)
    w20 = to_fixed_tuple(wm[20], 8)
    w21 = to_fixed_tuple(wm[21], 8)
    w22 = to_fixed_tuple(wm[22], 8)
    w23 = to_fixed_tuple(wm[23], 8)
    for t in range(t0, t1):
        rm = bi[t - d]
        r0 = bi[t]
        rp = bi[t + d]
        ro = bo[t]
        for j in range(L):
            s = chan(b, rm, r0, rp, j, w0, w1, w2)
            s = chan(s, rm, r0, rp, L + j, w3, w4, w5)
            s = chan(s, rm, r0, rp, 2 * L + j, w6, w7, w8)
            s = chan(s, rm, r0, rp, 3 * L + j, w9, w10, w11)
            s = chan(s, rm, r0, rp, 4 * L + j, w12, w13, w14)
            s = chan(s, rm, r0, rp, 5 * L + j, w15, w16, w17)
            s = chan(s, rm, r0, rp, 6 * L + j, w18, w19, w20)
            s = chan(s, rm, r0, rp, 7 * L + j, w21, w22, w23)
            ro[j] = max(s[0], z)
            ro[L + j] = max(s[1], z)
            ro[2 * L + j] = max(s[2], z)
            ro[3 * L + j] = max(s[3], z)
            ro[4 * L + j] = max(s[4], z)
            ro[5 * L + j] = max(s[5], z)
            ro[6 * L + j] = max(s[6], z)
            ro[7 * L + j] = max(s[7], z)


@njit(fastmath=True, nogil=True, cache=True)
def stage_input(x, xin, a, n, p0, nl):  # pragma: no cover - numba
    """Copy frames a..a+n of pixels p0..p0+nl of ``x`` into rows 1..n+1 of ``xin``; row 0,
    row n + 1 and unused lanes are zero (the first layer's 'same' padding).

    A separate tight loop: reading ``x`` (one 64-byte line per frame, a page apart for
    wide frames) interleaved with Conv1's arithmetic costs twice as much.
    """
    for j in range(L):
        xin[0, j] = 0.0
        xin[n + 1, j] = 0.0
    for t in range(n):
        src = x[a + t]
        row = xin[t + 1]
        for j in range(nl):
            row[j] = src[p0 + j]
        for j in range(nl, L):
            row[j] = 0.0


@njit(fastmath=True, nogil=True, cache=True)
def conv_first(xin, bo, wm, brow, n, r0):  # pragma: no cover - numba
    """Conv1 (1 -> 8 channels, width 3, ReLU) of the n staged frames into rows r0..r0+n of ``bo``."""
    z = np.float32(0.0)
    b = to_fixed_tuple(brow, 8)
    w0 = to_fixed_tuple(wm[0], 8)
    w1 = to_fixed_tuple(wm[1], 8)
    w2 = to_fixed_tuple(wm[2], 8)
    for t in range(n):
        xm = xin[t]
        x0 = xin[t + 1]
        xp = xin[t + 2]
        ro = bo[r0 + t]
        for j in range(L):
            s = tap(tap(tap(b, xm[j], w0), x0[j], w1), xp[j], w2)
            ro[j] = max(s[0], z)
            ro[L + j] = max(s[1], z)
            ro[2 * L + j] = max(s[2], z)
            ro[3 * L + j] = max(s[3], z)
            ro[4 * L + j] = max(s[4], z)
            ro[5 * L + j] = max(s[5], z)
            ro[6 * L + j] = max(s[6], z)
            ro[7 * L + j] = max(s[7], z)


@njit(fastmath=True, inline="always", nogil=True)
def head_of(r, j, wa, wb, wc, bb):  # pragma: no cover - numba
    z = np.float32(0.0)
    x0 = r[j]
    x1 = r[L + j]
    x2 = r[2 * L + j]
    x3 = r[3 * L + j]
    x4 = r[4 * L + j]
    x5 = r[5 * L + j]
    x6 = r[6 * L + j]
    x7 = r[7 * L + j]
    f0 = max(bb[0] + wa[0] * x0 + wa[1] * x1 + wa[2] * x2 + wa[3] * x3
             + wa[4] * x4 + wa[5] * x5 + wa[6] * x6 + wa[7] * x7, z)
    f1 = max(bb[1] + wb[0] * x0 + wb[1] * x1 + wb[2] * x2 + wb[3] * x3
             + wb[4] * x4 + wb[5] * x5 + wb[6] * x6 + wb[7] * x7, z)
    f2 = max(bb[2] + wc[0] * x0 + wc[1] * x1 + wc[2] * x2 + wc[3] * x3
             + wc[4] * x4 + wc[5] * x5 + wc[6] * x6 + wc[7] * x7, z)
    return f0, f1, f2


@njit(fastmath=True, nogil=True, cache=True)
def conv_head(bi, r0, n, w21, b21, w22, b22, hb):  # pragma: no cover - numba
    """Conv21 (8 -> 3, ReLU) and Conv22 (3 -> 1) of rows r0..r0+n into ``hb[t, f * L + lane]``
    (f = 0, 1, 2: features, 3: output)."""
    wa = to_fixed_tuple(w21[0], 8)
    wb = to_fixed_tuple(w21[1], 8)
    wc = to_fixed_tuple(w21[2], 8)
    bb = to_fixed_tuple(b21, 3)
    wo = to_fixed_tuple(w22, 3)
    for t in range(n):
        r = bi[r0 + t]
        ho = hb[t]
        for j in range(L):
            f0, f1, f2 = head_of(r, j, wa, wb, wc, bb)
            ho[j] = f0
            ho[L + j] = f1
            ho[2 * L + j] = f2
            ho[3 * L + j] = b22 + wo[0] * f0 + wo[1] * f1 + wo[2] * f2


@njit(fastmath=True, nogil=True, cache=True)
def emit(hb, out, feats, want_features, ts, n, p0, nl):  # pragma: no cover - numba
    """Copy n head rows (features or output) of the lanes in use into the result arrays."""
    if want_features:
        for t in range(n):
            ho = hb[t]
            fo = feats[ts + t]
            for j in range(nl):
                fo[p0 + j, 0] = ho[j]
                fo[p0 + j, 1] = ho[L + j]
                fo[p0 + j, 2] = ho[2 * L + j]
    else:
        for t in range(n):
            ho = hb[t]
            oo = out[ts + t]
            for j in range(nl):
                oo[p0 + j] = ho[3 * L + j]


@njit(fastmath=True, nogil=True, cache=True)
def zero_rows(buf, r0, r1):  # pragma: no cover - numba
    for r in range(r0, r1):
        row = buf[r]
        for j in range(8 * L):
            row[j] = 0.0


@njit(parallel=True, fastmath=True, nogil=True, cache=True)
def forward(x, w1, b1, wl, bl, dil, w21, b21, w22, b22, tile, halo, out, feats, want_features,
            scratch, xbuf, hbuf):  # pragma: no cover - numba
    n_t, n_p = x.shape
    n_blocks = (n_p + L - 1) // L
    n_layers = wl.shape[0]
    n_threads = scratch.shape[0]
    for th in prange(n_threads):
        buf_a = scratch[th, 0]
        buf_b = scratch[th, 1]
        xin = xbuf[th]
        hb = hbuf[th]
        # a contiguous share of the pixel blocks per thread (interleaved blocks would
        # share cache lines of the output between threads)
        per = (n_blocks + n_threads - 1) // n_threads
        for ib in range(th * per, min(n_blocks, (th + 1) * per)):
            p0 = ib * L
            nl = min(L, n_p - p0)
            for ts in range(0, n_t, tile):
                te = min(ts + tile, n_t)
                a = max(ts - halo, 0)
                e = min(te + halo, n_t)
                n = e - a
                lo = pad + 0 * n   # a plain int64: a literal start specialises (and slows) conv8
                # rows pad..pad+n hold frames a..e; the zero rows around them are the
                # layers' 'same' padding (exact at the recording ends; inside the
                # recording the halo absorbs the difference).  Rows past pad + n may
                # still hold the previous tile's activations.
                zero_rows(buf_a, pad + n, pad + n + pad)
                zero_rows(buf_b, pad + n, pad + n + pad)
                stage_input(x, xin, a, n, p0, nl)
                conv_first(xin, buf_a, w1, b1, n, lo)
                for k in range(n_layers):
                    if k % 2 == 0:
                        conv8(buf_a, buf_b, wl[k], bl[k], dil[k], lo, lo + n)
                    else:
                        conv8(buf_b, buf_a, wl[k], bl[k], dil[k], lo, lo + n)
                last = buf_b if n_layers % 2 == 1 else buf_a
                conv_head(last, lo + ts - a, te - ts, w21, b21, w22, b22, hb)
                emit(hb, out, feats, want_features, ts, te - ts, p0, nl)


_KERNELS: dict[str, Any] = {"forward": forward, "conv8": conv8, "conv_first": conv_first, "conv_head": conv_head}


def _kernel() -> Any:
    return forward


def kernels_ready() -> bool:
    """Whether the fused inference kernel is compiled or cached (else the first call compiles it)."""
    from ..jit import ready

    return ready(forward)


def check_edges(edges: str) -> None:
    if edges not in ("zero", "reflect"):
        raise ValueError(f"edges must be 'zero' or 'reflect', got {edges!r}.")


def extend_edges(x: np.ndarray, frames: int = HALO) -> np.ndarray:
    """``(T, P)`` -> ``(T + 2 frames, P)`` float32: each end continued by its mirror image (no repeated edge frame)."""
    x = np.asarray(x, dtype=np.float32)
    return np.pad(x, ((frames, frames), (0, 0)), mode="reflect" if x.shape[0] > 1 else "edge")


def on_reflected_edges(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``run`` on :func:`extend_edges` of ``x``, the extension cropped from its result again."""
    out = run(extend_edges(x, HALO))
    return np.ascontiguousarray(out[HALO:out.shape[0] - HALO])


def cnn1d_forward(weights: CNNWeights, x: np.ndarray, *, features: bool = False, tile: int = TILE,
                  edges: str = "zero") -> np.ndarray:
    """Run the Table 1 network on every column of ``x`` (``(T, P)``, cast to float32).

    Returns ``(T, P)`` predictions, or ``(T, P, 3)`` Conv21 features when *features*.
    Threads: numba's (``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``).

    *edges*: ``"zero"`` is Table 1's 'same' zero padding in every layer (equal to the PyTorch
    network).  ``"reflect"`` first continues the series by its mirror image for the receptive
    field's half-width (46 frames) at both ends and crops the result: a recording's first and
    last 46 outputs then see data-like context instead of zeros, which a trained network
    answers with a transient many times its normal output range.
    """
    check_edges(edges)
    if edges == "reflect":
        return on_reflected_edges(lambda xe: cnn1d_forward(weights, xe, features=features, tile=tile), x)
    forward = _kernel()
    import numba

    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"cnn1d_forward expects a (T, P) array, got shape {x.shape}.")
    if x.dtype != np.float32 or x.strides[1] != 4 or x.strides[0] < 0:
        x = np.ascontiguousarray(x, dtype=np.float32)
    elif not x.flags.c_contiguous:  # rows of a wider array: fine as they are, but numba wants one layout
        x = np.ascontiguousarray(x)
    n_t, n_p = x.shape
    tile = max(int(tile), 1)
    out = np.empty((n_t, n_p) if not features else (1, 1), np.float32)
    feats = np.empty((n_t, n_p, 3) if features else (1, 1, 3), np.float32)
    if n_t == 0 or n_p == 0:
        return feats if features else out
    wt = weights
    dil = np.ascontiguousarray(wt.dil, np.int64)
    halo = 1 + int(dil.sum())                  # receptive-field half-width (46 for Table 1)
    n_blocks = -(-n_p // LANES)
    n_threads = max(1, min(numba.get_num_threads(), n_blocks))
    if int(dil.max(initial=0)) > PAD:
        raise ValueError(f"dilations up to {PAD} are supported, got {int(dil.max())}.")
    rows = PAD + min(tile + 2 * halo, n_t) + PAD
    scratch = np.zeros((n_threads, 2, rows, 8 * LANES), np.float32)
    xbuf = np.zeros((n_threads, rows, LANES), np.float32)
    hbuf = np.zeros((n_threads, min(tile, n_t), 4 * LANES), np.float32)
    # Conv2-20 weights as [layer, in * 3 + tap, out] (the kernel's accumulation order)
    wl = np.ascontiguousarray(np.asarray(wt.w, np.float32).transpose(0, 2, 3, 1).reshape(-1, 24, 8))
    w1 = np.ascontiguousarray(np.asarray(wt.w1, np.float32).T)          # [tap, out]
    forward(x, w1, np.ascontiguousarray(wt.b1, np.float32), wl, np.ascontiguousarray(wt.b, np.float32).reshape(-1, 8),
            dil, np.ascontiguousarray(wt.w21, np.float32), np.ascontiguousarray(wt.b21, np.float32),
            np.ascontiguousarray(wt.w22, np.float32), np.float32(wt.b22), tile, halo, out, feats, bool(features),
            scratch, xbuf, hbuf)
    return feats if features else out
