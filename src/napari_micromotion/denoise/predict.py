"""Applying the denoiser: batched inference with Monte-Carlo passes, calibration, hallucination guard.

* :func:`iter_predict`: every frame (in batches, large frames in overlapping tiles) gives the
  denoised value ``mu`` and the predicted variance of the clean signal: the network's own
  ``sigma^2`` (what the neighbours leave open) plus the spread of ``mu`` over Monte-Carlo
  dropout passes (what the network itself is unsure of).  Dropout sits before the linear
  1 x 1 head only, so the passes' mean and variance of ``mu`` have a closed form, the limit of
  infinitely many passes (``mc_passes=0``, the default): mean ``head(f)``, variance
  ``p / (1 - p) * sum_c w_c^2 f_c^2``; ``mc_passes >= 2`` samples them instead.
* :func:`fit_calibration`: the size of the error, measured where the residual
  ``r = x - mu`` of out-of-sample frames can resolve it.  Its mean square cannot: a good
  denoiser's error variance is below 1 % of the camera noise, while the camera model
  measured from the movie is only good to about :data:`CAMERA_VAR_ACCURACY`.  Two parts can:
  (1) the noise the mean-image prior carries, ``var_camera / (K - 1)`` per pixel for a
  prior of ``K`` frames, spatially white, which the output passes on where it leans on the
  prior; (2) the rest of the error, which the network makes over neighbourhoods: camera
  noise is independent from pixel to pixel and frame ``t`` is left out of its own prior
  and inputs, so the mean product of horizontally and vertically adjacent residuals is
  that error's covariance at one pixel, free of the camera noise.  (Where the camera model
  measured a correlation ``rho`` between neighbouring pixels' noise, as in a compressed
  video, ``rho`` times the residuals' own mean square is subtracted from the products
  first: :func:`camera_adjacent_share`.)  The network's
  predicted variance (likelihood plus dropout) gives part (2) its shape, scaled to that
  size.  On three simulated runs the sum came within 2-11 % of the true mean square error
  (11 % and 2 % below, 4 % above), where the network's own variance had been 1.6-3.1 x too
  large on average and unrelated to where the error was.  The correlation of neighbouring standardised
  residuals is the spatial correlation kernel that ROI corridors need.
  The frames the network trained on have a smaller error than the held-out ones (it has
  fitted their signal): on them the same adjacent-product measurement, made on the training
  frames themselves, sizes part (2) separately (:attr:`Calibration.in_sample_factor`).
* :func:`guard_frames`: where the denoised frame departs from the raw frame by more than
  the camera noise and the stated uncertainty allow (tested on 5 x 5 px boxes, where
  camera noise averages down but a made-up or erased structure does not; less so where the
  camera model says the noise of neighbouring pixels is correlated), pixels are flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generator, Sequence

import numpy as np
from scipy import ndimage

from ..device import torch_threads
from ..errors import check
from ..progress import Progress
from .data import CameraModel, Prior, box_correlation, make_inputs, neighbours
from .train import TrainedDenoiser

__all__ = ["Calibration", "iter_predict", "fit_calibration", "guard_frames", "GUARD_BOX", "CAMERA_VAR_ACCURACY",
           "tiles", "camera_adjacent_share"]

#: relative accuracy of the camera-noise variance measured from a movie: held-out residual power
#: within this of the camera model is no evidence about the denoiser's error (on the benchmark's
#: simulation the measured model was 0.7 % above the true variance)
CAMERA_VAR_ACCURACY = 0.01
#: the residuals' mean square sizes the error where it exceeds the adjacent products' reading by more than this
#: many times its own uncertainty ``eps`` (camera model accuracy and sampling), fully from 2 more; below, the
#: adjacent products alone (a camera model 2-3 % off then changes nothing)
RESOLVED_EPS = 3.0
#: side of the boxes the hallucination guard averages residuals over (px)
GUARD_BOX = 5
#: largest frame side processed in one piece; larger frames go in overlapping tiles
TILE = 512
TILE_MARGIN = 32


@dataclass
class Calibration:
    """Calibrated variance ``prior_white * var_camera(mu) + factor * predicted``, and the errors' correlation."""

    edges: list[float]                 # predicted-variance band edges (movie units^2)
    factors: list[float]               # variance factor per band on the predicted variance
    kernel: np.ndarray | None = None   # (2R+1, 2R+1) correlation of neighbouring errors, 1 at the centre
    n_pixels: int = 0
    report: dict[str, Any] = field(default_factory=dict)
    prior_white: float = 0.0           # share of the camera variance the mean-image prior passes on, 1 / (K - 1)
    in_sample_factor: float | None = None   # factor on the predicted variance of the frames the network trained on

    def factor(self, var: np.ndarray) -> np.ndarray:
        """The variance factor of each predicted variance (piecewise linear in log variance between bands)."""
        if len(self.factors) == 1:
            return np.full(np.shape(var), self.factors[0], np.float32)
        centres = np.sqrt(np.asarray(self.edges[:-1]) * np.asarray(self.edges[1:]))
        lv = np.log(np.maximum(var, 1e-30))
        return np.interp(lv, np.log(np.maximum(centres, 1e-30)), self.factors).astype(np.float32)

    def sd(self, var: np.ndarray, mu: np.ndarray | None = None, camera: CameraModel | None = None,
           in_sample: bool = False) -> np.ndarray:
        """Calibrated SD of the clean signal from the predicted variance (and the denoised value *mu*).

        *in_sample*: the frames are training targets of the network (:attr:`in_sample_factor`).
        """
        v = np.maximum(var, 0) * self.factor(var)
        if in_sample and self.in_sample_factor is not None:
            v = v * np.float32(self.in_sample_factor / max(float(np.mean(self.factors)), 1e-30))
        if self.prior_white > 0 and mu is not None and camera is not None:
            v = v + self.prior_white * camera.var(mu)
        return np.sqrt(v).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": [float(v) for v in self.edges], "factors": [float(v) for v in self.factors],
                "kernel_radius": (self.kernel.shape[0] - 1) // 2 if self.kernel is not None else 0,
                "n_pixels": self.n_pixels, "prior_white": float(self.prior_white),
                "in_sample_factor": None if self.in_sample_factor is None else float(self.in_sample_factor),
                **self.report}

    @classmethod
    def from_dict(cls, d: dict[str, Any], kernel: np.ndarray | None) -> "Calibration":
        own = ("edges", "factors", "kernel_radius", "n_pixels", "prior_white", "in_sample_factor")
        rep = {k: v for k, v in d.items() if k not in own}
        ins = d.get("in_sample_factor")
        return cls(list(d["edges"]), list(d["factors"]), kernel, int(d.get("n_pixels", 0)), rep,
                   float(d.get("prior_white", 0.0)), None if ins is None else float(ins))


def tiles(n: int, tile: int = TILE, margin: int = TILE_MARGIN) -> list[tuple[int, int, int, int]]:
    """``(read0, read1, keep0, keep1)`` spans covering ``0..n``: read with a margin, keep the middle."""
    if n <= tile:
        return [(0, n, 0, n)]
    out = []
    step = tile - 2 * margin
    for k0 in range(0, n, step):
        k1 = min(n, k0 + step)
        r0, r1 = max(0, k0 - margin), min(n, k1 + margin)
        out.append((r0, r1, k0, k1))
    return out


def _pad8(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        mode = "reflect" if (h > ph and w > pw) else "edge"
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode=mode)
    return x, h, w


def iter_predict(video: Any, model: TrainedDenoiser, prior: Prior, mu_out: np.ndarray, var_out: np.ndarray, *,
                 frames: Sequence[int] | None = None, mc_passes: int = 0, batch: int = 4, threads: int = 2,
                 seed: int = 0) -> Generator[Progress, None, dict[str, float]]:
    """Denoise *frames* (all by default) of *video* into ``mu_out`` and ``var_out`` (``(T, Y, X)`` float32).

    ``var_out`` is the predicted (not yet calibrated) variance of the clean signal in movie
    units squared.  Returns timings and the share of the variance from the Monte-Carlo passes.
    """
    import time

    import torch

    n, ny, nx = (int(v) for v in video.shape)
    check(n >= 2 * model.context + 2, f"the movie has {n} frames; the model's {model.context} context frames on "
                                      f"either side need at least {2 * model.context + 2}.")
    todo = np.arange(n) if frames is None else np.asarray(list(frames), int)
    norm, cam = model.norm, model.camera
    sc2 = norm.scale ** 2
    mean_all, sd_all = prior.mean(), prior.sd()
    net = model.net
    net.eval()
    passes = max(0, int(mc_passes))
    t0 = time.perf_counter()
    epi_sum = tot_sum = 0.0
    net = net.to(memory_format=torch.channels_last)       # ~1.5-2x faster convolutions on CPU
    w2 = (net.head.weight[0, :, 0, 0].detach() ** 2)[None, :, None, None]
    p_drop = float(net.p_drop)
    with torch_threads(threads), torch.inference_mode():
        torch.manual_seed(seed)
        for b0 in range(0, todo.size, batch):
            ts = todo[b0:b0 + batch]
            nbr = np.stack([np.asarray(video[neighbours(int(t), n, model.context)], dtype=np.float32) for t in ts])
            means, sds = [], []
            for t in ts:
                if prior.member[int(t)]:
                    m, sd = prior.without(int(t), np.asarray(video[int(t)], dtype=np.float32))
                else:
                    m, sd = mean_all, sd_all
                means.append(m)
                sds.append(sd)
            inputs, base = make_inputs(nbr, np.stack(means), np.stack(sds), model.prior, norm, cam)
            mu_b = np.empty((len(ts), ny, nx), np.float32)
            var_b = np.empty((len(ts), ny, nx), np.float32)
            for r0, r1, k0, k1 in tiles(ny):
                for c0, c1, j0, j1 in tiles(nx):
                    x, h, w = _pad8(inputs[:, :, r0:r1, c0:c1])
                    xt = torch.from_numpy(np.ascontiguousarray(x)).contiguous(memory_format=torch.channels_last)
                    feat = net.features(xt)
                    bs = torch.from_numpy(np.ascontiguousarray(base[:, r0:r1, c0:c1]))
                    if passes <= 1:
                        d, sg = net.head_out(feat, drop=False)
                        mu_t = bs + d[:, :h, :w]
                        ale = (sg[:, :h, :w] ** 2)
                        if passes == 0 and p_drop > 0:    # the exact variance over dropout masks
                            epi = (p_drop / (1 - p_drop)) * (feat * feat * w2).sum(dim=1)[:, :h, :w]
                        else:
                            epi = torch.zeros_like(ale)
                    else:
                        s1 = s2 = ale = None
                        for _ in range(passes):
                            d, sg = net.head_out(feat, drop=True)
                            m = bs + d[:, :h, :w]
                            s1 = m if s1 is None else s1 + m
                            s2 = m * m if s2 is None else s2 + m * m
                            a = sg[:, :h, :w] ** 2
                            ale = a if ale is None else ale + a
                        mu_t = s1 / passes
                        epi = (s2 / passes - mu_t * mu_t).clamp(min=0) * (passes / (passes - 1))
                        ale = ale / passes
                    keep = (slice(None), slice(k0 - r0, k1 - r0), slice(j0 - c0, j1 - c0))
                    tot = (ale + epi).numpy()[keep]
                    mu_b[:, k0:k1, j0:j1] = norm.back(mu_t.numpy()[keep])
                    var_b[:, k0:k1, j0:j1] = tot * sc2
                    epi_sum += float(epi.numpy()[keep].sum())
                    tot_sum += float(tot.sum())
            mu_out[ts] = mu_b
            var_out[ts] = var_b
            done = min(b0 + batch, todo.size)
            yield Progress("denoise", done / todo.size, f"{done} of {todo.size} frames")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "frames_per_s": todo.size / max(seconds, 1e-9),
            "mc_share_of_variance": epi_sum / max(tot_sum, 1e-30)}


def _residuals(video: Any, mu: np.ndarray, var: np.ndarray, frames: np.ndarray, camera: CameraModel):
    for t in frames:
        x = np.asarray(video[int(t)], dtype=np.float64)
        m = mu[int(t)].astype(np.float64)
        yield int(t), x - m, camera.var(m), var[int(t)].astype(np.float64)


def _spread(frames: Sequence[int], max_frames: int) -> np.ndarray:
    frames = np.asarray(list(frames), int)
    if frames.size > max_frames:
        frames = frames[np.linspace(0, frames.size - 1, max_frames).round().astype(int)]
    return frames


def adjacent_product(r: np.ndarray) -> tuple[float, int]:
    """Sum and count of the products of horizontally and vertically adjacent values of *r* ``(Y, X)``."""
    return (float((r[1:, :] * r[:-1, :]).sum() + (r[:, 1:] * r[:, :-1]).sum()),
            int(r[1:, :].size + r[:, 1:].size))


def camera_adjacent_share(r: np.ndarray, camera: CameraModel) -> tuple[float, float]:
    """What correlated camera noise adds to :func:`adjacent_product` of residuals *r* ``(Y, X)``.

    Returns ``(B, W)``: ``B`` the sum over the same adjacent pairs of ``rho (r_i^2 + r_j^2) / 2``
    and ``W`` the sum of ``rho``, with ``rho`` the camera noise's correlation of vertically or
    horizontally adjacent pixels (both 0 where the camera model takes pixels as independent).
    With residual = noise - error, ``E[sum r_i r_j] = rho V + C_1`` and ``E[B] = rho (V + C_0)``
    per pair (``V`` the noise variance, ``C_0``, ``C_1`` the error's variance and adjacent
    covariance), so ``(A - B) / (n - W)`` is the error's covariance where it is smooth over one
    pixel (``C_1 = C_0``), as the independent-noise reading ``A / n`` assumes, with no camera
    model variance in it (which is good to about 1 %, while the error is about 1 % of the noise).
    """
    ky, kx = camera.adjacent_correlation
    if ky == 0 and kx == 0:
        return 0.0, 0.0
    q = r * r
    b = ky * 0.5 * float((q[1:, :] + q[:-1, :]).sum()) + kx * 0.5 * float((q[:, 1:] + q[:, :-1]).sum())
    return b, ky * q[1:, :].size + kx * q[:, 1:].size


def fit_calibration(video: Any, mu: np.ndarray, var: np.ndarray, frames: Sequence[int], camera: CameraModel, *,
                    prior_frames: int = 0, n_bands: int = 8, radius: int = 24, max_frames: int = 200,
                    camera_accuracy: float = CAMERA_VAR_ACCURACY,
                    in_sample_frames: Sequence[int] | None = None) -> Calibration:
    """Size the predicted variance on out-of-sample *frames* and measure the errors' spatial correlation.

    ``prior_frames`` is the count ``K`` of frames in the mean image the network was given
    (0: no prior): its noise, ``var_camera / (K - 1)`` per pixel, is added as it is.  The
    factor on the predicted variance makes its mean equal to the mean product of adjacent
    residuals (module docstring).  The report keeps what the residuals' mean square would
    have said, with its resolution, for comparison.  With *in_sample_frames* (the network's
    training targets) the same measurement on them gives :attr:`Calibration.in_sample_factor`.
    """
    frames = _spread(frames, max_frames)
    check(frames.size >= 1, "no held-out frames to calibrate the uncertainty on.")
    white = 1.0 / (prior_frames - 1) if prior_frames > 1 else 0.0
    r2, nv, pv = [], [], []
    adj_sum = adj_n = 0.0
    for _, r, v_n, p in _residuals(video, mu, var, frames, camera):
        r2.append((r * r).ravel())
        nv.append(v_n.ravel())
        pv.append(p.ravel())
        s_, n_ = adjacent_product(r)
        b_, w_ = camera_adjacent_share(r, camera)             # correlated camera noise's own share
        adj_sum += s_ - b_
        adj_n += n_ - w_
    r2, nv, pv = (np.concatenate(a) for a in (r2, nv, pv))
    d = r2 - nv
    mean_noise = float(np.mean(nv))
    mean_pred = max(float(np.mean(pv)), 1e-30)
    shared = max(adj_sum / max(adj_n, 1), 0.0)            # the error's covariance between adjacent pixels
    # what the residuals' mean square says, and how well it can tell (camera model accuracy)
    excess = float(np.mean(d))
    eps = math.hypot(float(np.std(d)) / math.sqrt(d.size), camera_accuracy * mean_noise)
    # where the mean square says more than the adjacent products by more than it can be wrong, it sizes the error:
    # they read only the part of the error that is smooth over one pixel, and a moving edge's error is not
    # (from RESOLVED_EPS to RESOLVED_EPS + 2 eps more: from one to the other)
    rest = excess - white * mean_noise
    w = min(1.0, max(0.0, ((rest - shared) / eps - RESOLVED_EPS) / 2.0)) if eps > 0 else 0.0
    size = shared + w * (rest - shared)
    factor = max(size / mean_pred, 1e-6)
    in_sample: dict[str, Any] = {}
    ins_factor = None
    if in_sample_frames is not None and len(in_sample_frames):
        fr = _spread(in_sample_frames, max_frames)
        s_in = n_in = p_in = 0.0
        for _, r, _, p in _residuals(video, mu, var, fr, camera):
            s_, n_ = adjacent_product(r)
            b_, w_ = camera_adjacent_share(r, camera)
            s_in += s_ - b_
            n_in += n_ - w_
            p_in += float(np.mean(p))
        shared_in = max(s_in / max(n_in, 1), 0.0)
        ins_factor = max(shared_in / max(p_in / fr.size, 1e-30), 1e-6)
        if size > shared:      # the mean square sized the error: the training frames keep their ratio to it
            ins_factor = ins_factor * size / shared if shared > 0.1 * size else factor
        in_sample = {"in_sample_shared_error_over_noise": shared_in / mean_noise, "in_sample_frames": int(fr.size)}
    qs = np.unique(np.quantile(pv, np.linspace(0, 1, n_bands + 1)))
    if qs.size < 3:
        qs = np.array([pv.min(), pv.max() + 1e-12])
    which = np.clip(np.searchsorted(qs, pv, side="right") - 1, 0, qs.size - 2)
    bands = [(float(np.mean(d[which == b])) / float(np.mean(nv[which == b])),
              float(np.mean(pv[which == b])) / float(np.mean(nv[which == b])))
             for b in range(qs.size - 1) if np.any(which == b)]
    cal = Calibration(edges=[float(pv.min()), float(pv.max())], factors=[float(factor)], n_pixels=int(r2.size),
                      prior_white=white, in_sample_factor=ins_factor,
                      report={"overall_factor": float(factor), "adjacent_residual_product": shared,
                              "prior_noise_over_noise": white, "shared_error_over_noise": shared / mean_noise,
                              "error_over_noise_estimate": white + size / mean_noise,
                              "mean_square_weight": w,
                              "residual_mse_over_noise": excess / mean_noise,
                              "residual_resolution_over_noise": 2.0 * eps / mean_noise,
                              "predicted_over_noise": mean_pred / mean_noise,
                              "mse_over_noise_by_band": [b[0] for b in bands],
                              "predicted_over_noise_by_band": [b[1] for b in bands],
                              "camera_accuracy": camera_accuracy, "heldout_frames": int(frames.size),
                              **in_sample})
    cal.kernel = _error_kernel(video, mu, var, frames[: min(frames.size, 64)], camera, cal, radius)
    return cal


def _error_kernel(video: Any, mu: np.ndarray, var: np.ndarray, frames: np.ndarray, camera: CameraModel,
                  cal: Calibration, radius: int) -> np.ndarray:
    """Correlation of the errors of neighbouring pixels, from the residuals' correlation at non-zero lags.

    Where the camera model has a noise kernel ``rho``, the residuals' correlation at a lag
    holds ``rho`` times the noise variance: as in :func:`camera_adjacent_share`, ``rho`` times
    the standardised residuals' own mean square at that lag is taken off, and ``rho`` (the
    error's variance, 1 in these units) put back, with no camera model variance in it.
    """
    ny, nx = mu.shape[1:]
    radius = int(min(radius, ny // 2 - 1, nx // 2 - 1))
    if radius < 1:
        return np.ones((1, 1), np.float32)
    fy, fx = ny + radius, nx + radius
    acc = np.zeros((fy, fx))
    ones = np.zeros((fy, fx))
    ones[:ny, :nx] = 1
    Fo = np.fft.rfft2(ones)
    count = np.fft.irfft2(Fo * np.conj(Fo), s=(fy, fx))
    acc_q = np.zeros((fy, fx)) if camera.kernel is not None else None
    for t, r, _, p in _residuals(video, mu, var, frames, camera):
        z = np.zeros((fy, fx))
        z[:ny, :nx] = r / cal.sd(p, mu[t], camera)
        z[:ny, :nx] -= z[:ny, :nx].mean()
        F = np.fft.rfft2(z)
        acc += np.fft.irfft2(F * np.conj(F), s=(fy, fx))
        if acc_q is not None:              # sums of z_i^2 over the pairs at each lag
            acc_q += np.fft.irfft2(np.fft.rfft2(z * z) * np.conj(Fo), s=(fy, fx))
    lags = np.r_[0:radius + 1, -radius:0]
    norm = np.maximum(count * len(frames), 1)
    k = np.fft.fftshift((acc / norm)[np.ix_(lags % fy, lags % fx)])          # centre at (radius, radius)
    if acc_q is not None:
        sq = np.fft.fftshift((acc_q / norm)[np.ix_(lags % fy, lags % fx)])
        sq = 0.5 * (sq + sq[::-1, ::-1])            # (z_i^2 + z_j^2) / 2 over the pairs at each lag
        kc = np.zeros_like(k)
        rc = (camera.kernel.shape[0] - 1) // 2
        c = min(rc, radius)
        kc[radius - c:radius + c + 1, radius - c:radius + c + 1] = camera.kernel[rc - c:rc + c + 1, rc - c:rc + c + 1]
        k = k - kc * (sq - 1.0)
    k = 0.5 * (k + k[::-1, ::-1])
    k[radius, radius] = 1.0
    # taper to zero at the radius, then keep it a valid (positive semi-definite) correlation
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    rr = np.hypot(yy, xx) / (radius + 1)
    k = k * np.where(rr < 1, 0.5 * (1 + np.cos(np.pi * rr)), 0.0)
    k[radius, radius] = 1.0
    size = 4 * radius + 2
    emb = np.zeros((size, size))
    emb[:2 * radius + 1, :2 * radius + 1] = k
    emb = np.roll(emb, (-radius, -radius), axis=(0, 1))
    spec = np.maximum(np.fft.rfft2(emb).real, 0)
    emb = np.fft.irfft2(spec, s=(size, size))
    emb = np.roll(emb, (radius, radius), axis=(0, 1))[:2 * radius + 1, :2 * radius + 1]
    return (emb / emb[radius, radius]).astype(np.float32)


def guard_frames(video: Any, mu: np.ndarray, sd: np.ndarray, camera: CameraModel, kernel: np.ndarray | None,
                 z_max: float, out: np.ndarray, *, box: int = GUARD_BOX, frames: Sequence[int] | None = None
                 ) -> Generator[Progress, None, dict[str, Any]]:
    """Flag pixels where ``x - mu``, averaged over ``box x box`` px, exceeds *z_max* SD of what noise and
    the stated uncertainty allow; ``out`` (``(T, Y, X)`` uint8) receives 1 where flagged."""
    n = mu.shape[0]
    todo = np.arange(n) if frames is None else np.asarray(list(frames), int)
    rho = box_correlation(kernel, box)
    rho_noise = box_correlation(camera.kernel, box)          # 1 / box^2 for independent pixels
    per_frame = np.zeros(n, np.int64)
    for i, t in enumerate(todo):
        x = np.asarray(video[int(t)], dtype=np.float32)
        m = mu[int(t)]
        r = ndimage.uniform_filter(x - m, box, mode="reflect")
        v_noise = ndimage.uniform_filter(camera.var(m), box, mode="reflect") * rho_noise
        s = ndimage.uniform_filter(sd[int(t)], box, mode="reflect")
        z = r / np.sqrt(v_noise + rho * s * s)
        flag = np.abs(z) > z_max
        out[int(t)] = flag
        per_frame[int(t)] = int(flag.sum())
        if i % 32 == 0 or i == todo.size - 1:
            yield Progress("guard", (i + 1) / todo.size, f"{i + 1} of {todo.size} frames checked")
    # the false-alarm rate of a Gaussian test at z_max, for comparison
    expected = math.erfc(z_max / math.sqrt(2))
    total = int(per_frame.sum())
    return {"flagged_pixels": total, "flagged_fraction": total / max(1, todo.size * mu.shape[1] * mu.shape[2]),
            "expected_fraction_if_honest": expected, "flagged_per_frame": per_frame.tolist(), "box_px": box,
            "z_max": z_max}
