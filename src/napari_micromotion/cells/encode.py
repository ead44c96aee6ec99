"""The classifier's input: one ``2 x 92 x 92`` array per candidate (Woo & Kim, section 4.2).

Channel 0, the candidate's image
    A 92 x 92 patch of the recording's image (the mean fluorescence image, usually) centred on
    the candidate's centroid, multiplied by a *soft* version of the candidate's own mask
    ``w = 0.25 + 0.75 * gaussian(mask, 1.5 px)`` (or of its footprint, scaled to peak 1).
    The report's ROI images are the candidate's own image (a PCA/ICA filter), so its shape is what
    the network sees; a plain mean-image patch would look the same for a whole cell, a fragment of
    it and a merge of it with its neighbours, which are exactly the candidates to tell apart.  The
    0.25 floor keeps the surroundings visible at reduced contrast, so the network can compare the
    mask's outline with the membranes of the image (a fragment ends inside a cell, a cell's outline
    runs along its membrane).  The image is zero-centred and scaled per recording, before the
    weighting: ``(image - median) / (1.4826 MAD)`` (a robust z-score; the same for every
    candidate of a recording, so brightness differences between candidates stay); the patch is
    zero outside the frame.

Channel 1, the trace
    ``dF/F = (F - F0) / F0`` with a robust slowly varying baseline ``F0`` (the 10th percentile
    in blocks of :data:`BASELINE_BLOCK` samples, linearly interpolated: follows bleaching, ignores
    transients), divided by :data:`DFF_SCALE` and clipped to +-:data:`CLIP`.  A fixed scale, not a
    per-trace z-score: the amplitude of dF/F is informative (a patch of background or an inactive
    cell stays flat, a z-score would blow its noise up to look like activity).  Then one of
    :data:`TRACE_ENCODINGS`:

    ``"middle"`` (the report's)
        The middle 8464 = 92 x 92 samples, reshaped row-major to 92 x 92.  Shorter traces are
        zero-padded symmetrically (zero = baseline after the normalisation), not resampled: the
        time scale stays that of the recording, so a transient has the same width in samples for
        every recording length, which is what the report wanted by refusing to resample
        ("this may distort the signals").
    ``"resample"``
        The whole trace resampled (FFT, band-limited so anti-aliased) to 8464 samples, then reshaped: sees
        all of a long recording, at the price of a time scale that varies with its length.
    ``"spectrogram"``
        Log power spectrogram (Hann windows of 184 samples, half overlapping) of dF/F, frequency
        bins 0-91 as rows, time resampled linearly to 92 columns.

:func:`encode` is vectorised over candidates (one recording's candidates share a trace length);
it costs ~0.4-0.55 ms per candidate with a zoomed patch (2 cores; ``benchmarks/bench_cells.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import check
from .candidate import Candidate

__all__ = ["encode", "TRACE_ENCODINGS", "PATCH", "N_SAMPLES", "normalise_image", "normalise_traces",
           "encode_traces", "image_patches", "take_middle", "patch_scale"]

#: the input's side, pixels
PATCH = 92
#: samples of the trace channel (92 x 92)
N_SAMPLES = PATCH * PATCH
#: how the trace becomes the second channel
TRACE_ENCODINGS = ("middle", "resample", "spectrogram")
#: samples per block of the baseline estimate
BASELINE_BLOCK = 250
#: dF/F is divided by this (a transient of dF/F 0.8 becomes 1.6)
DFF_SCALE = 0.5
#: normalised image and trace values are clipped to +-CLIP
CLIP = 10.0
#: channel 0 is multiplied by this after centring (relative brightness x weight spans ~ +-0.5)
IMAGE_GAIN = 4.0
#: weight of the surroundings in channel 0 (1 inside the candidate)
CONTEXT_WEIGHT = 0.25
#: blur of the mask in channel 0, pixels
MASK_SIGMA_PX = 1.5
#: spectrogram window, samples
SPEC_WINDOW = 2 * PATCH


def normalise_image(image: np.ndarray) -> np.ndarray:
    """The image over its median (relative brightness: ~1 on dye-loaded cells, below 1 between them), float32."""
    img = np.asarray(image, np.float32)
    check(img.ndim == 2 and img.size > 0, f"the candidates' image must be 2-D, got shape {img.shape}.")
    med = float(np.median(img))
    scale = med if abs(med) > 1e-12 else (float(np.abs(img).max()) or 1.0)
    return np.clip(img / scale, -CLIP, CLIP).astype(np.float32)


def _soft_weight(c: Candidate) -> np.ndarray:
    """The candidate's soft mask in its box padded by 4 px: ``CONTEXT + (1 - CONTEXT) * blur(mask)``."""
    import cv2

    sub = c.submask
    m = np.zeros((sub.shape[0] + 8, sub.shape[1] + 8), np.float32)
    if c.footprint is not None:
        fp = np.clip(np.asarray(c.footprint, np.float32), 0, None)
        m[4:-4, 4:-4] = fp / fp.max() if fp.max() > 0 else sub
    else:
        m[4:-4, 4:-4] = sub
    # scipy.ndimage.gaussian_filter(mode="constant", truncate=4) at a tenth of its cost per call
    k = 2 * int(4.0 * MASK_SIGMA_PX + 0.5) + 1
    m = cv2.GaussianBlur(m, (k, k), MASK_SIGMA_PX, MASK_SIGMA_PX, borderType=cv2.BORDER_CONSTANT)
    return CONTEXT_WEIGHT + (1 - CONTEXT_WEIGHT) * np.minimum(m / max(float(m.max()), 1e-6), 1.0)


def image_patches(candidates: Sequence[Candidate], image: np.ndarray, *, normalised: bool = False,
                  scale: float = 1.0, masks: np.ndarray | None = None) -> np.ndarray:
    """Channel 0 for every candidate, ``(N, 92, 92)`` float32 (see the module's docstring).

    Parameters
    ----------
    candidates
        Candidates of one recording.
    image
        ``(Y, X)`` image of that recording (the mean fluorescence image).
    normalised
        *image* is already the output of :func:`normalise_image`.
    scale
        Zoom of the patch (output pixels per image pixel): 1 is the report's native crop; a
        patch of ``92 / scale`` image pixels is cut and resized (linear) to 92 otherwise.
    masks
        When given, an ``(N, 92, 92)`` float32 array that receives each candidate's own mask
        (0 / 1, cut and zoomed like the image: the third input channel of the hybrid model).

    Notes
    -----
    Per candidate, with ``P`` the image in the window (zero outside the frame), ``w`` the weight
    and ``F`` the window's part inside the frame: ``IMAGE_GAIN * F * (P w - mean_F(P w))``.  The
    context weight is a constant, so only the soft mask's box is weighted pixel by pixel, the mean
    comes from an integral image plus that box, and since ``F`` is a rectangle its zoom is an outer
    product: the loop touches each window once.
    """
    check(scale > 0 and np.isfinite(scale), f"the patch scale must be positive, got {scale!r}.")
    z = np.asarray(image, np.float32) if normalised else normalise_image(image)
    side = max(8, int(round(PATCH / scale)))
    pad = max(side, PATCH) + 8
    zp = np.pad(z, pad)
    integral = np.zeros((zp.shape[0] + 1, zp.shape[1] + 1), np.float64)
    integral[1:, 1:] = zp.cumsum(axis=0, dtype=np.float64).cumsum(axis=1)
    zm = _zoom_matrix(side, PATCH) if side != PATCH else None
    out = np.empty((len(candidates), PATCH, PATCH), np.float32)
    for k0 in range(0, len(candidates), _CHUNK):   # windows in chunks: bounded memory, warm caches
        k1 = min(k0 + _CHUNK, len(candidates))
        out[k0:k1] = _patch_chunk(candidates[k0:k1], zp, integral, z.shape, side, pad, zm,
                                  None if masks is None else masks[k0:k1])
    return out


#: candidates per block of :func:`image_patches`
_CHUNK = 64


def _patch_chunk(candidates: Sequence[Candidate], zp: np.ndarray, integral: np.ndarray, shape: tuple[int, int],
                 side: int, pad: int, zm: np.ndarray | None, masks: np.ndarray | None) -> np.ndarray:
    n_y, n_x = shape
    h = side // 2
    n_c = len(candidates)
    vs = np.empty((n_c, side, side), np.float32)
    rows = np.zeros((n_c, side), np.float32)     # the window's rows / columns inside the frame
    cols = np.zeros((n_c, side), np.float32)
    means = np.zeros(n_c, np.float64)
    mks = np.zeros((n_c, side, side), np.float32) if masks is not None else None
    for k, c in enumerate(candidates):
        cy, cx = c.centroid
        r0, c0 = int(round(cy)) - h, int(round(cx)) - h
        a, b = r0 + pad, c0 + pad
        win = zp[a:a + side, b:b + side]
        v = np.multiply(win, CONTEXT_WEIGHT, out=vs[k])
        total = CONTEXT_WEIGHT * (integral[a + side, b + side] - integral[a, b + side]
                                  - integral[a + side, b] + integral[a, b])
        sw = _soft_weight(c)
        # the soft mask's box (padded by 4) in window coordinates, cropped to the window
        br0, bc0 = c.box[0] - 4 - r0, c.box[1] - 4 - c0
        a0, b0 = max(br0, 0), max(bc0, 0)
        a1, b1 = min(br0 + sw.shape[0], side), min(bc0 + sw.shape[1], side)
        if a1 > a0 and b1 > b0:
            sub = win[a0:a1, b0:b1]
            v[a0:a1, b0:b1] = sub * sw[a0 - br0:a1 - br0, b0 - bc0:b1 - bc0]
            total += float(v[a0:a1, b0:b1].sum(dtype=np.float64)) - CONTEXT_WEIGHT * float(sub.sum(dtype=np.float64))
        ry0, ry1 = min(max(-r0, 0), side), min(max(n_y - r0, 0), side)
        rx0, rx1 = min(max(-c0, 0), side), min(max(n_x - c0, 0), side)
        rows[k, ry0:ry1] = 1.0
        cols[k, rx0:rx1] = 1.0
        n_in = (ry1 - ry0) * (rx1 - rx0)
        means[k] = total / n_in if n_in else 0.0
        if mks is not None:
            mr0, mc0 = c.box[0] - r0, c.box[1] - c0
            a0, b0 = max(mr0, 0), max(mc0, 0)
            a1, b1 = min(mr0 + c.submask.shape[0], side), min(mc0 + c.submask.shape[1], side)
            if a1 > a0 and b1 > b0:
                mks[k, a0:a1, b0:b1] = c.submask[a0 - mr0:a1 - mr0, b0 - mc0:b1 - mc0]
    if zm is not None:
        # linear zoom (as scipy.ndimage.zoom(order=1, grid_mode=True, mode="grid-constant")): two large products
        vs = _zoom_stack(vs, zm)
        rows, cols = rows @ zm.T, cols @ zm.T
        if masks is not None:
            masks[:] = _zoom_stack(mks, zm)
    elif masks is not None:
        masks[:] = mks
    vs -= (means.astype(np.float32)[:, None, None] * rows[:, :, None] * cols[:, None, :])
    vs *= IMAGE_GAIN
    return vs


def _zoom_stack(stack: np.ndarray, zm: np.ndarray) -> np.ndarray:
    """``zm @ stack[k] @ zm.T`` for every k, as two large matrix products, float32."""
    n, side, _ = stack.shape
    p = zm.shape[0]
    a = (stack.reshape(n * side, side) @ zm.T).reshape(n, side, p)
    out = (a.transpose(0, 2, 1).reshape(n * p, side) @ zm.T).reshape(n, p, p)
    return np.ascontiguousarray(out.transpose(0, 2, 1), dtype=np.float32)


def _zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` linear interpolation matrix, pixel centres aligned, zero beyond the edges."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(pos).astype(int)
    f = pos - i0
    m = np.zeros((n_out, n_in + 2), np.float32)  # one zero column each side for the edges
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0 + 1), 1 - f)
    np.add.at(m, (rows, i0 + 2), f)
    return m[:, 1:-1]


def normalise_traces(traces: np.ndarray) -> np.ndarray:
    """``(N, T)`` raw traces -> dF/F / DFF_SCALE, clipped (float32); the baseline as in the module's docstring."""
    x = np.asarray(traces, np.float64)
    n, t = x.shape
    if t == 0:
        return np.zeros((n, 0), np.float32)
    nb = max(1, int(np.ceil(t / BASELINE_BLOCK)))
    edges = np.linspace(0, t, nb + 1).astype(int)
    base = np.stack([np.percentile(x[:, a:b], 10, axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    if nb > 1:
        centres = 0.5 * (edges[:-1] + edges[1:] - 1)
        tt = np.arange(t)
        f0 = np.stack([np.interp(tt, centres, row) for row in base])
    else:
        f0 = np.repeat(base, t, axis=1)
    # the floor: 1 % of the trace's median level (a dark or negative trace gives small dF/F, not inf)
    floor = np.maximum(0.01 * np.abs(np.median(x, axis=1, keepdims=True)), 1e-6)
    f0 = np.where(np.abs(f0) < floor, floor, np.abs(f0))
    dff = (x - f0) / f0 / DFF_SCALE
    return np.clip(np.nan_to_num(dff), -CLIP, CLIP).astype(np.float32)


def take_middle(x: np.ndarray) -> np.ndarray:
    """``(N, T)`` -> ``(N, 8464)``: the middle 8464 samples, or the trace zero-padded symmetrically if shorter."""
    n, t = x.shape
    if t >= N_SAMPLES:
        s = (t - N_SAMPLES) // 2
        return x[:, s:s + N_SAMPLES]
    out = np.zeros((n, N_SAMPLES), np.float32)
    s = (N_SAMPLES - t) // 2
    out[:, s:s + t] = x
    return out


def _resample(x: np.ndarray) -> np.ndarray:
    """FFT resampling (band-limited, so anti-aliased) after removing the end-to-end line (no wrap-around step)."""
    from scipy import signal

    n, t = x.shape
    if t == N_SAMPLES:
        return x
    if t < 2:
        return np.repeat(x[:, :1], N_SAMPLES, axis=1) if t else np.zeros((n, N_SAMPLES), np.float32)
    ramp = np.linspace(0.0, 1.0, t)
    a, b = x[:, :1].astype(np.float64), x[:, -1:].astype(np.float64)
    y = signal.resample(x - (a + (b - a) * ramp), N_SAMPLES, axis=1)
    return (y + a + (b - a) * np.linspace(0.0, 1.0, N_SAMPLES)).astype(np.float32)


def _spectrogram(x: np.ndarray) -> np.ndarray:
    from scipy import signal

    n, t = x.shape
    if t < SPEC_WINDOW:
        x = np.pad(x, ((0, 0), (0, SPEC_WINDOW - t)))
    _, _, p = signal.spectrogram(x, fs=1.0, window="hann", nperseg=SPEC_WINDOW, noverlap=SPEC_WINDOW // 2,
                                 axis=-1, mode="psd")  # (N, 93, S)
    logp = np.log10(p[:, :PATCH, :] + 1e-6) + 3.0  # ~0 for a flat trace, a few units for transients
    s = logp.shape[2]
    if s == 1:
        return np.repeat(logp, PATCH, axis=2).astype(np.float32)
    pos = np.linspace(0, s - 1, PATCH)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, s - 1)
    f = (pos - i0).astype(np.float32)
    return (logp[:, :, i0] * (1 - f) + logp[:, :, i1] * f).astype(np.float32)


def encode_traces(traces: np.ndarray, encoding: str = "middle") -> np.ndarray:
    """Channel 1 for ``(N, T)`` raw traces: ``(N, 92, 92)`` float32 (see the module's docstring)."""
    check(encoding in TRACE_ENCODINGS, f"trace encoding must be one of {', '.join(TRACE_ENCODINGS)}, got {encoding!r}.")
    x = normalise_traces(np.atleast_2d(traces))
    if encoding == "middle":
        flat = take_middle(x)
    elif encoding == "resample":
        flat = _resample(x)
    else:
        return _spectrogram(x)
    return flat.reshape(-1, PATCH, PATCH)


def encode(candidates: Sequence[Candidate], image: np.ndarray, encoding: str = "middle", *,
           scale: float = 1.0, mask_channel: bool = False) -> np.ndarray:
    """The classifier's input for the candidates of one recording.

    Parameters
    ----------
    candidates
        Candidates with traces of one length (one recording).
    image
        ``(Y, X)`` per-recording image, the mean fluorescence image.
    encoding
        Trace encoding, one of :data:`TRACE_ENCODINGS`.
    scale
        Zoom of the image patch (see :func:`image_patches`); :func:`patch_scale` gives the zoom
        that brings a recording's cells to a model's reference diameter.
    mask_channel
        Add a third channel, the candidate's binary mask cut and zoomed like the image (the
        hybrid model's input, :class:`~napari_micromotion.cells.model.CompactThreeCNet` ``shape=True``).

    Returns
    -------
    numpy.ndarray
        ``(N, 2, 92, 92)`` float32 (``(N, 3, 92, 92)`` with *mask_channel*): channel 0 the
        candidate's image, channel 1 its trace, channel 2 its mask.
    """
    check(encoding in TRACE_ENCODINGS, f"trace encoding must be one of {', '.join(TRACE_ENCODINGS)}, got {encoding!r}.")
    out = np.zeros((len(candidates), 3 if mask_channel else 2, PATCH, PATCH), np.float32)
    if not candidates:
        return out
    lengths = {c.trace.size for c in candidates}
    check(len(lengths) == 1, "encode the candidates of one recording at a time (their traces differ in length).")
    out[:, 0] = image_patches(candidates, image, scale=scale, masks=out[:, 2] if mask_channel else None)
    out[:, 1] = encode_traces(np.stack([c.trace for c in candidates]), encoding)
    return out


def patch_scale(cell_diameter_px: float | None, reference_px: float | None) -> float:
    """Zoom that shows a cell of *cell_diameter_px* as *reference_px* wide (1 when either is missing or 0)."""
    if not cell_diameter_px or not reference_px:
        return 1.0
    check(cell_diameter_px > 0 and reference_px > 0, "cell diameters must be positive.")
    return float(reference_px) / float(cell_diameter_px)
