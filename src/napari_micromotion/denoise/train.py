"""Training the denoiser on the recording itself (self-supervised, DeepInterpolation's scheme).

Each sample is a patch of frame ``t`` (the target) with its ``2N`` neighbours and the
leave-one-out mean/SD images as input; frame ``t`` itself never enters its own
prediction, so the network cannot learn the noise of ``t`` and its best guess is the
clean signal.  The loss is the Gaussian negative log-likelihood of the target with
variance ``sigma^2 + var_camera(mu)``: the camera model (measured on the movie) gives the
noise, and the network's ``sigma`` learns what remains, the uncertainty of the clean
signal itself.

:func:`iter_train` is a generator of :class:`~napari_micromotion.progress.Progress`
(``values={"loss": ...}``: the mean square error of the prediction against the noisy
target in units of the noise variance; 1 would be perfect) that returns a
:class:`TrainedDenoiser`.  The same seed, data and thread count give the same weights;
the time budget only stops a run early (and says so).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Sequence

import numpy as np

from ..device import torch_threads
from ..errors import check
from ..progress import Progress
from .data import CameraModel, Normaliser, Prior, make_inputs, n_input_channels, neighbours
from .model import build_unet, count_parameters

#: the training loss curve holds the mean of every this many optimiser steps (the report's x axis reads it)
LOSS_EVERY_STEPS = 10

__all__ = ["TrainedDenoiser", "TrainSettings", "EarlyStop", "early_stop_patience", "iter_train", "gather_patches",
           "frame_runs"]

#: held-out patches in the validation set (fewer when there are few held-out frames)
VALIDATION_PATCHES = 256
#: epochs in the running mean of the held-out loss that early stopping watches
STOP_WINDOW_EPOCHS = 3


@dataclass(frozen=True)
class TrainSettings:
    """How the network trains (the tool's parameters pass these on)."""

    context: int = 4
    prior: str = "mean+sd"
    epochs: int = 8
    steps_per_epoch: int | None = None
    batch_size: int = 16
    patch_px: int = 64
    learning_rate: float = 2e-3
    width: int = 8
    dropout: float = 0.1
    patience: int | None = None     # epochs without a better held-out loss; None: max(3, epochs // 5)
    max_minutes: float = 10.0
    seed: int = 0
    threads: int = 2


def early_stop_patience(settings: TrainSettings) -> int:
    """Epochs without a better held-out loss after which training stops.

    The held-out loss of one epoch is noisy (a few calcium upstrokes among the held-out
    frames move it by 1-2 %) while the trend keeps falling for tens of epochs, so a fixed
    patience of 3 stopped long runs early at a high learning rate: on one simulation, 37.9 dB
    after 6 of 40 epochs against 40.7 dB when the 8-minute budget ends it.  Long runs get a
    patience of a fifth of their epochs; the default 8 epochs keep 3.
    """
    if settings.patience is not None:
        return max(1, int(settings.patience))
    return max(3, int(settings.epochs) // 5)


class EarlyStop:
    """Whether to stop: for *patience* epochs neither a new lowest held-out loss nor a lower running mean of the last *window*.

    One epoch's held-out loss moves by about as much as the network improves over many
    epochs, so a single lucky epoch held the best value for longer than the patience and
    stopped a run that was still improving: on seed 15 of ``bench_denoise.py`` the best
    epoch was 6 and training stopped after epoch 14 at 42.7 dB; without early stopping the
    same training reached 44.7 dB by epoch 30.  A running mean of the last few epochs is not
    held by one of them; and a rule on the running mean alone stopped the same seed right
    after a new lowest loss (epoch 16, 43.9 dB), so either improving counts.
    """

    def __init__(self, patience: int, window: int = STOP_WINDOW_EPOCHS) -> None:
        self.patience = max(1, int(patience))
        self.window = max(1, int(window))
        self.losses: list[float] = []
        self.best = math.inf
        self.best_mean = math.inf
        self.since_best = 0

    def update(self, loss: float) -> bool:
        """Record one epoch's held-out loss; True when training should stop."""
        self.losses.append(float(loss))
        recent = float(np.mean(self.losses[-self.window:]))
        improved = self.losses[-1] < self.best or recent < self.best_mean
        self.best = min(self.best, self.losses[-1])
        self.best_mean = min(self.best_mean, recent)
        self.since_best = 0 if improved else self.since_best + 1
        return self.since_best >= self.patience


@dataclass
class TrainedDenoiser:
    """A trained network with everything needed to apply it (saved by :mod:`.files`)."""

    net: Any
    context: int
    prior: str
    camera: CameraModel
    norm: Normaliser
    width: int
    dropout: float
    training_frames: list[int] = field(default_factory=list)     # frames used as targets (run-length pairs)
    heldout_frames: list[int] = field(default_factory=list)
    loss_curve: list[float] = field(default_factory=list)        # per report: mean square error (noise units)
    epoch_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)          # held-out NLL per epoch
    val_mse: list[float] = field(default_factory=list)           # held-out mean square error (noise units)
    best_epoch: int = 0
    seconds: float = 0.0
    steps: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    stopped_early: str = ""

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.net)


def gather_patches(video: Any, prior: Prior, targets: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int,
                   context: int, prior_mode: str, norm: Normaliser, camera: CameraModel
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs ``(B, C, size, size)``, base and targets ``(B, size, size)`` (normalised) for patches of frames *targets*."""
    n = int(video.shape[0])
    b = len(targets)
    nbr = np.empty((b, 2 * context, size, size), np.float32)
    tgt = np.empty((b, size, size), np.float32)
    mean = np.empty((b, size, size), np.float32)
    sd = np.empty((b, size, size), np.float32)
    for i, (t, r, c) in enumerate(zip(targets, rows, cols)):
        ys, xs = slice(int(r), int(r) + size), slice(int(c), int(c) + size)
        idx = neighbours(int(t), n, context)
        nbr[i] = np.asarray(video[idx, ys, xs], dtype=np.float32)
        tgt[i] = np.asarray(video[int(t), ys, xs], dtype=np.float32)
        m = prior.total[ys, xs]
        q = prior.squares[ys, xs]
        k = prior.count
        if prior.member[int(t)]:
            f = tgt[i].astype(np.float64)
            m, q, k = m - f, q - f * f, k - 1
        mm = m / k
        mean[i] = mm
        sd[i] = np.sqrt(np.maximum(q / k - mm * mm, 0.0))
    inputs, base = make_inputs(nbr, mean, sd, prior_mode, norm, camera)
    return inputs, base, norm(tgt).astype(np.float32)


def _augment(arrays: Sequence[np.ndarray], k: int, flip: bool) -> list[np.ndarray]:
    """The same rotation by ``k`` quarter turns (and flip) of the last two axes of every array."""
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        if flip:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out


def _nll(mu: Any, sigma: Any, target: Any, norm: Normaliser, camera: CameraModel) -> tuple[Any, Any]:
    """Gaussian NLL of the noisy target (variance sigma^2 + camera noise at mu) and its square error."""
    noise = camera.var(norm.back(mu.detach())) / (norm.scale ** 2)
    var = sigma * sigma + noise
    err = target - mu
    nll = 0.5 * (var.log() + err * err / var)
    return nll.mean(), (err.detach() ** 2 / noise).mean()


def iter_train(video: Any, targets: Sequence[int], heldout: Sequence[int], prior: Prior, camera: CameraModel,
               norm: Normaliser, settings: TrainSettings = TrainSettings()) -> Generator[Progress, None, TrainedDenoiser]:
    """Train on patches of the frames *targets*; *heldout* frames give the validation loss of each epoch."""
    import torch

    s = settings
    n, ny, nx = (int(v) for v in video.shape)
    targets = np.asarray(sorted(set(int(t) for t in targets)), int)
    heldout = np.asarray(sorted(set(int(t) for t in heldout)), int)
    check(targets.size >= 2, f"only {targets.size} frame(s) to train on; the denoiser needs more.")
    check(n >= 2 * s.context + 2, f"the movie has {n} frames; {s.context} context frames on either side need "
                                  f"at least {2 * s.context + 2}.")
    size = int(min(s.patch_px, ny, nx))
    size -= size % 8
    check(size >= 16, f"frames of {ny} x {nx} px are too small to denoise (at least 16 x 16 px).")
    steps = s.steps_per_epoch or int(np.clip(targets.size * ny * nx / (s.batch_size * size * size), 50, 400))
    total = steps * s.epochs
    t0 = time.perf_counter()
    with torch_threads(s.threads):
        torch.manual_seed(s.seed)
        rng = np.random.default_rng(s.seed)
        net = build_unet(n_input_channels(s.context, s.prior), s.width, s.dropout)
        opt = torch.optim.Adam(net.parameters(), lr=s.learning_rate)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: min(1.0, (i + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(i, total) / total))))
        # a fixed validation set of held-out patches
        vrng = np.random.default_rng(s.seed + 1)
        nv = min(VALIDATION_PATCHES, max(8, heldout.size * 4)) if heldout.size else 0
        val = None
        if nv:
            vt = vrng.choice(heldout, nv)
            val = gather_patches(video, prior, vt, vrng.integers(0, ny - size + 1, nv), vrng.integers(0, nx - size + 1, nv),
                                 size, s.context, s.prior, norm, camera)
            val = tuple(torch.from_numpy(v) for v in val)
        result = TrainedDenoiser(net=net, context=s.context, prior=s.prior, camera=camera, norm=norm, width=s.width,
                                 dropout=s.dropout, training_frames=frame_runs(targets), heldout_frames=heldout.tolist(),
                                 settings={k: getattr(s, k) for k in s.__dataclass_fields__})
        best = (math.inf, None)
        stop = EarlyStop(early_stop_patience(s))
        stalled = False
        yield Progress("train denoiser", 0.0, f"{total} steps of {s.batch_size} patches of {size} px")
        step = 0
        for epoch in range(s.epochs):
            net.train()
            running, run_n, epoch_sum = 0.0, 0, 0.0
            for _ in range(steps):
                tb = rng.choice(targets, s.batch_size)
                rows = rng.integers(0, ny - size + 1, s.batch_size)
                cols = rng.integers(0, nx - size + 1, s.batch_size)
                x, base, y = gather_patches(video, prior, tb, rows, cols, size, s.context, s.prior, norm, camera)
                x, base, y = _augment((x, base, y), int(rng.integers(4)), bool(rng.integers(2)))
                xt, bt, yt = torch.from_numpy(x), torch.from_numpy(base), torch.from_numpy(y)
                delta, sigma = net(xt)
                loss, mse = _nll(bt + delta, sigma, yt, norm, camera)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                sched.step()
                step += 1
                running += float(mse)
                run_n += 1
                epoch_sum += float(mse)
                if run_n == LOSS_EVERY_STEPS or step == total:
                    result.loss_curve.append(running / run_n)
                    yield Progress("train denoiser", step / total,
                                   f"epoch {epoch + 1} of {s.epochs}, step {step} of {total}",
                                   values={"loss": running / run_n, "step": step})
                    running, run_n = 0.0, 0
                if time.perf_counter() - t0 > 60 * s.max_minutes:
                    result.stopped_early = (f"the time budget of {s.max_minutes:g} min ran out after {step} of "
                                            f"{total} steps")
                    break
            result.epoch_loss.append(epoch_sum / max(1, steps))
            if val is not None:
                vl, vm = _validation_loss(net, val, norm, camera)
                result.val_loss.append(vl)
                result.val_mse.append(vm)
                if vl < best[0]:
                    best = (vl, {k: v.detach().clone() for k, v in net.state_dict().items()})
                    result.best_epoch = epoch + 1
                stalled = stop.update(vl)
            if result.stopped_early:
                break
            if stalled:
                result.stopped_early = f"the held-out loss stopped improving after epoch {result.best_epoch}"
                break
        if best[1] is not None:
            net.load_state_dict(best[1])
        net.eval()
    result.steps = step
    result.seconds = time.perf_counter() - t0
    yield Progress("train denoiser", 1.0, f"trained in {result.seconds:.0f} s ({step} steps)")
    return result


def _validation_loss(net: Any, val: tuple[Any, Any, Any], norm: Normaliser, camera: CameraModel,
                     chunk: int = 64) -> tuple[float, float]:
    """Held-out NLL and square error, averaged over the validation patches (in chunks of *chunk*)."""
    import torch

    net.eval()
    tot_l, tot_m, count = 0.0, 0.0, 0
    with torch.no_grad():
        for a in range(0, int(val[0].shape[0]), chunk):
            x, base, y = (v[a:a + chunk] for v in val)
            d, sg = net(x)
            vl, vm = _nll(base + d, sg, y, norm, camera)
            tot_l += float(vl) * x.shape[0]
            tot_m += float(vm) * x.shape[0]
            count += int(x.shape[0])
    return tot_l / count, tot_m / count


def frame_runs(frames: np.ndarray) -> list[int]:
    """Sorted frames as flat ``[start, stop, start, stop, ...]`` runs (compact for the sidecar)."""
    out: list[int] = []
    for f in frames.tolist():
        if out and out[-1] == f:
            out[-1] = f + 1
        else:
            out += [f, f + 1]
    return out
