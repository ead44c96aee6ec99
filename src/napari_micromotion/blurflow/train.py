"""Training the blur-flow network on synthetic images (Shajkofci & Liebling, Section 2.3, Eq. 6).

Training images are generated on the fly (:func:`~.synth.iter_training_batches`,
nothing is stored), each batch from the seed and the batch index, so a run is
reproducible from its :class:`BlurFlowTrainParams` and seed (bit for bit on the
same machine and thread count).  Optimiser: RAdam (as the paper), a short linear
warm-up and a cosine decay of the learning rate over ``steps``.

Loss (Eq. 6 with ``gamma = 1``, ``U = 3``), per pixel, averaged::

    E = gamma (w - w~)^2 + w / (U + 1) * [ (a - a~)^2 + (b - b~)^2 + (v3 - v3~)^2 + (z0 - z0~)^2 ]

Options for shorter runs (off by default: the defaults reproduce the shipped model):
``axial_weight`` multiplies the ``v3`` and ``z0`` errors; 4 is Eq. 6 with the axial
parameters rescaled from [0, 1] to the lateral parameters' [-1, 1] (``2 v - 1``), since
with equal weights the lateral targets ``(a, b)`` (variance ~1/3 each) outweigh ``v3``
and ``z0`` (variance 1/12) four to one.  ``reuse`` makes half of every batch the
previous batch's fresh images under a random flip or transpose
(:func:`~.synth.dihedral`, an exactly labelled new view at no synthesis cost).
Smaller crops (``crop_px`` 64 or 96) give more independent regions per CPU second.
See docs/blurflow.md for what these bought (the same two-zone accuracy as the 1350-step recipe in 14-20 minutes;
the shipped model, 4000 steps of the default recipe with ``threads=1``, trained in 23 minutes).

``w~`` is the sigmoid of the validity output; ``(a, b)`` is the doubled-angle
axis vector that replaces the paper's ``(|v1|, |v2|)`` (both are blind to the
sign of the blur, but ``(a, b)`` keeps the axis; see :mod:`.model`).  The paper
prints the regression weight as ``(1 - w)``, which reads as if its ``w`` flagged
*invalid* pixels (its released code writes an ``invalid`` flag); here ``w`` is
the validity (1 = textured), so the regression is learned where texture exists.

Command line (the project later wraps it as ``micromotion train-blur-flow``)::

    python -m napari_micromotion.blurflow.train --out PATH [--minutes M | --steps N] [--seed S] [--threads T]

``--minutes`` times a few steps on this machine and sets ``steps`` so that the
run takes about that long; the chosen ``steps`` is printed and stored in the
sidecar, and ``--steps`` with it reproduces the run exactly.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .. import schema
from ..device import torch_threads
from ..errors import MicromotionError, check
from ..progress import Progress, drive
from ..schema import param
from .model import (
    ARCHITECTURE,
    NetConfig,
    TrainedBlurFlow,
    build_net,
    decode_output,
    encode_targets,
    load_blur_flow,
    normalise_image,
    save_blur_flow,
)
from .synth import Batch, SynthParams, dihedral, iter_training_batches, two_zone_sample

__all__ = [
    "BlurFlowTrainParams",
    "eq6_loss",
    "iter_train_blur_flow",
    "load_blur_flow",
    "main",
    "save_blur_flow",
    "train_blur_flow",
]

STREAM_VALIDATION_SEED_OFFSET = 1_000_003   # validation images: two-zone stream of seed + offset


@dataclass(frozen=True)
class BlurFlowTrainParams:
    """How the blur-flow network is trained (defaults: the shipped model)."""

    steps: int = param(4000, label="training steps", unit="batches", min=1, flag="--steps",
                       help="Number of optimiser steps; each uses a fresh batch of synthetic blurred images.")
    batch_size: int = param(12, label="batch size", unit="images", min=1, max=512, flag="--batch-size",
                            help="Synthetic images per optimiser step.")
    crop_px: int = param(128, label="training image size", unit="px", min=32, max=1024, flag="--crop-px",
                         help="Side of the square synthetic training images, a multiple of 32 px (16 x the "
                              "network's input folding).")
    learning_rate: float = param(2e-3, label="learning rate", min=1e-6, max=0.5, flag="--lr",
                                 help="Peak learning rate of RAdam (cosine decay to 2 % of it).")
    warmup_steps: int = param(0, label="warm-up steps", unit="batches", min=0, flag="--warmup-steps", advanced=True,
                              help="Steps of linear learning-rate warm-up (RAdam already warms up by itself).")
    beta2: float = param(0.99, label="RAdam beta2", min=0.5, max=0.99999, flag="--beta2", advanced=True,
                         help="Decay of RAdam's second-moment average; 0.99 (instead of 0.999) shortens RAdam's "
                              "built-in warm-up from thousands of steps to about a hundred, which matters for short "
                              "CPU runs.")
    gamma: float = param(1.0, label="validity weight", min=0.0, flag="--gamma", advanced=True,
                         help="Weight gamma of the validity term of the loss (Eq. 6).")
    axial_weight: float = param(1.0, label="axial weight", min=0.0, flag="--axial-weight",
                                help="Weight of the v3 and z0 errors in the loss relative to the lateral ones; 4 = "
                                     "Eq. 6 with v3 and z0 rescaled from [0, 1] to the lateral parameters' [-1, 1] "
                                     "(equal spread, so the axial outputs are not starved of gradient); 1 = Eq. 6 as "
                                     "printed.")
    reuse: bool = param(False, label="reuse images", flag="--reuse",
                        help="Half of every batch is the previous batch's fresh images, flipped or transposed (a "
                             "different but exactly labelled view): halves the cost of synthesis per training image; "
                             "needs an even batch size.")
    net: NetConfig = field(default_factory=NetConfig, metadata={
        "label": "network", "unit": "", "help": "Channel widths and residual blocks of the U-Net."})
    synth: SynthParams = field(default_factory=SynthParams, metadata={
        "label": "synthetic images", "unit": "", "help": "Optics, textures and noise of the training images."})
    validation_every: int = param(500, label="validation interval", unit="batches", min=0,
                                  flag="--validation-every", advanced=True,
                                  help="Score the network on held-out two-zone images every this many steps (0: never).")
    validation_images: int = param(8, label="validation images", unit="images", min=1, max=1024,
                                   flag="--validation-images", advanced=True,
                                   help="Held-out two-zone images (128 px) per validation.")
    threads: int = param(0, label="CPU threads", min=0, max=256, flag="--threads",
                         help="Threads for PyTorch (0: leave PyTorch's setting).  Leave one core for the image "
                              "synthesis thread: on a 2-core CPU 1 thread trains several times faster than 2.")
    prefetch: bool = param(True, label="prefetch", flag="--prefetch", advanced=True,
                           help="Generate the next batch in a background thread while the network trains (same "
                                "batches).")

    def validate(self) -> None:
        check(isinstance(self.steps, (int, np.integer)) and self.steps >= 1, f"steps must be >= 1, got {self.steps!r}.")
        check(isinstance(self.batch_size, (int, np.integer)) and 1 <= self.batch_size <= 512,
              f"the batch size must be 1-512, got {self.batch_size!r}.")
        r = 16 * self.net.unshuffle
        check(isinstance(self.crop_px, (int, np.integer)) and self.crop_px >= 2 * r and self.crop_px % r == 0,
              f"training images must be a multiple of {r} px and at least {2 * r} px, got {self.crop_px!r}.")
        check(0 < self.learning_rate < 1, f"the learning rate must be in (0, 1), got {self.learning_rate!r}.")
        check(self.warmup_steps >= 0 and self.gamma >= 0 and self.axial_weight >= 0,
              "warm-up steps, gamma and the axial weight must be non-negative.")
        check(not self.reuse or self.batch_size % 2 == 0 or self.batch_size == 1,
              f"reusing images needs an even batch size, got {self.batch_size!r}.")
        check(0 < self.beta2 < 1, f"RAdam's beta2 must be in (0, 1), got {self.beta2!r}.")
        check(self.validation_every >= 0 and self.validation_images >= 1, "validation settings must be positive.")
        check(isinstance(self.threads, (int, np.integer)) and 0 <= self.threads <= 256, "threads must be 0-256.")
        self.net.validate()
        self.synth.validate()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["net"] = self.net.to_dict()
        return d


def learning_rate_at(step: int, params: BlurFlowTrainParams) -> float:
    """Linear warm-up, then cosine decay from the peak to 2 % of it at the last step."""
    if params.warmup_steps and step < params.warmup_steps:
        return params.learning_rate * (step + 1) / params.warmup_steps
    span = max(1, params.steps - params.warmup_steps)
    frac = min(1.0, (step - params.warmup_steps) / span)
    return params.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def eq6_loss(out: Any, target: Any, gamma: float = 1.0, axial_weight: float = 1.0) -> Any:
    """Eq. 6 (mean over pixels): ``gamma (w - sigmoid(logit))^2 + w/4 * sum of the 4 squared errors``.

    *axial_weight* multiplies the squared errors of ``v3`` and ``z0`` (1: Eq. 6 as printed).
    """
    import torch

    w = target[:, 4]
    w_hat = torch.sigmoid(out[:, 4])
    err = (out[:, :4] - target[:, :4]) ** 2
    if axial_weight == 1.0:
        reg = err.sum(dim=1)
    else:
        reg = err[:, 0] + err[:, 1] + axial_weight * (err[:, 2] + err[:, 3])
    return (gamma * (w - w_hat) ** 2 + w * reg / 4.0).mean()


def iter_batches(params: BlurFlowTrainParams, seed: int) -> Generator[Batch, None, None]:
    """The training batches of a run: fresh synthetic images, and with ``params.reuse`` half fresh, half
    the previous batch's fresh images under a random flip/transpose (:func:`~.synth.dihedral`)."""
    if not params.reuse or params.batch_size == 1:
        yield from iter_training_batches(seed, params.batch_size, params.crop_px, params.synth, n_batches=params.steps)
        return
    half = params.batch_size // 2
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(99,)))
    prev = None
    for b in iter_training_batches(seed, half, params.crop_px, params.synth, n_batches=params.steps):
        src = b if prev is None else prev
        views = [dihedral(im, tr, int(rng.integers(1, 8))) for im, tr in zip(src.images, src.truth)]
        prev = b
        yield Batch(images=np.concatenate([b.images, np.stack([v[0] for v in views])]),
                    truth=np.concatenate([b.truth, np.stack([v[1] for v in views])]), index=b.index)


def _prepare(images: np.ndarray, truth: np.ndarray):
    import torch

    x = np.stack([normalise_image(im) for im in images])[:, None]
    t = encode_targets(truth)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(t))


def _validation_set(params: BlurFlowTrainParams, seed: int) -> list[Any]:
    return [two_zone_sample(seed + STREAM_VALIDATION_SEED_OFFSET, k, 128, params.synth)
            for k in range(params.validation_images)]


def _validate(net: Any, samples: Sequence[Any]) -> float:
    import torch

    from .metrics import R2Accumulator

    acc = R2Accumulator()
    net.eval()
    with torch.inference_mode():
        for s in samples:
            x = torch.from_numpy(normalise_image(s.image)[None, None])
            acc.add(decode_output(net(x).numpy())[0], s.truth)
    net.train()
    return float(acc.scores()["mean"])


def iter_train_blur_flow(params: BlurFlowTrainParams = BlurFlowTrainParams(), *, seed: int = 0,
                         init: TrainedBlurFlow | None = None) -> Generator[Progress, None, TrainedBlurFlow]:
    """Train the network; a generator of :class:`Progress` returning a :class:`TrainedBlurFlow`.

    Parameters
    ----------
    params
        :class:`BlurFlowTrainParams`.
    seed
        Seeds the network's initial weights and the stream of training images
        (the two-zone/cylinder test streams are disjoint from it by construction).
    init
        Optional trained model to continue from (its architecture must match ``params.net``).
    """
    import torch

    params.validate()
    check(isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}.")
    with torch_threads(params.threads):        # 0: leave PyTorch's setting
        threads = torch.get_num_threads()
        if init is not None:
            check(init.config == params.net, "the model to continue from has a different network configuration.")
            net = init.net
        else:
            net = build_net(params.net, seed=seed)
        net = net.to(memory_format=torch.channels_last)
        net.train()
        opt = torch.optim.RAdam(net.parameters(), lr=params.learning_rate, betas=(0.9, params.beta2))
        val_set = _validation_set(params, seed) if params.validation_every else []
        batches = iter_batches(params, seed)
        pool = ThreadPoolExecutor(max_workers=1) if params.prefetch else None
        losses: list[float] = []
        validation: list[tuple[int, float]] = []
        t0 = time.perf_counter()
        yield Progress("train blur-flow", 0.0, f"{params.steps} steps of {params.batch_size} images, {threads} threads")
        pending = pool.submit(next, batches) if pool else None
        for step in range(params.steps):
            batch = pending.result() if pending is not None else next(batches)
            if pool is not None and step + 1 < params.steps:
                pending = pool.submit(next, batches)
            x, t = _prepare(batch.images, batch.truth)
            x = x.contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = learning_rate_at(step, params)
            opt.zero_grad(set_to_none=True)
            loss = eq6_loss(net(x), t, params.gamma, params.axial_weight)
            loss.backward()
            opt.step()
            val = float(loss.detach())
            if not math.isfinite(val):
                raise MicromotionError("blur-flow training diverged (the loss is not finite); lower the learning rate.")
            losses.append(val)
            if val_set and ((step + 1) % params.validation_every == 0 or step + 1 == params.steps):
                validation.append((step + 1, _validate(net, val_set)))
            if (step + 1) % 10 == 0 or step + 1 == params.steps:
                recent = float(np.mean(losses[-50:]))
                extra = f", validation R^2 {validation[-1][1]:.3f}" if validation else ""
                yield Progress("train blur-flow", (step + 1) / params.steps,
                               f"step {step + 1}/{params.steps}, loss {recent:.4f}{extra}, "
                               f"{time.perf_counter() - t0:.0f} s")
        if pool is not None:
            pool.shutdown(wait=True)
        seconds = time.perf_counter() - t0
        net = net.to(memory_format=torch.contiguous_format).eval()
        return TrainedBlurFlow(net=net, config=params.net, optics=params.synth.optics, params=params.to_dict(),
                               loss_curve=losses, validation=validation, seconds=seconds, seed=int(seed),
                               n_images=params.steps * params.batch_size, threads=threads,
                               created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def train_blur_flow(params: BlurFlowTrainParams = BlurFlowTrainParams(), *, seed: int = 0,
                    init: TrainedBlurFlow | None = None,
                    progress: Callable[[Progress], None] | None = None) -> TrainedBlurFlow:
    """Synchronous :func:`iter_train_blur_flow`."""
    return drive(iter_train_blur_flow(params, seed=seed, init=init), progress=progress)


def steps_for_minutes(minutes: float, params: BlurFlowTrainParams, *, seed: int = 0) -> int:
    """Steps that fill about *minutes* of wall time on this machine.

    Runs 20 real training steps (same settings, no validation) and times the last
    10 of them (the first ones pay for caches and memory allocation); validation
    passes and the final save add a few per cent, hence the 0.95.
    """
    check(minutes > 0 and math.isfinite(minutes), f"minutes must be positive, got {minutes!r}.")
    stamps: dict[int, float] = {}
    for ev in iter_train_blur_flow(replace(params, steps=20, validation_every=0), seed=seed):
        stamps[round(ev.fraction * 20)] = time.perf_counter()
    per_step = (stamps[20] - stamps[10]) / 10
    return max(1, int(minutes * 60 * 0.95 / per_step))


def train_specs() -> list[schema.ParamSpec]:
    """The command-line parameters of :class:`BlurFlowTrainParams` (the network and the synthesis are fixed)."""
    return schema.specs(BlurFlowTrainParams)


def add_train_arguments(ap: argparse.ArgumentParser) -> None:
    """The training options (shared by ``micromotion train-blur-flow`` and ``python -m ...blurflow.train``).

    The run's own options (output, duration, seed) are written here; the training
    parameters come from :class:`BlurFlowTrainParams`' schema.
    """
    ap.add_argument("--out", "-o", required=True,
                    help="output path (.safetensors; the .json sidecar goes next to it)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="train for about this many minutes (sets the training steps; not with --steps)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (network weights and training images)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress")
    schema.add_arguments(ap, train_specs())


def run_training(args: argparse.Namespace) -> Path:
    """Train and save as the parsed options of :func:`add_train_arguments` say; returns the weights' path.

    Raises :class:`~napari_micromotion.errors.MicromotionError` (one sentence) on bad options,
    before any training.
    """
    check(not Path(args.out).is_dir(), f"--out {args.out} is a folder; give the model's file name (.safetensors).")
    out = Path(args.out)
    out = out if out.suffix == ".safetensors" else out.with_name(out.name + ".safetensors")
    values = schema.values_from_args(args, train_specs())
    check(args.minutes is None or "steps" not in values, "give either --minutes or --steps, not both.")
    check(args.minutes is None or (math.isfinite(args.minutes) and args.minutes > 0),
          f"--minutes must be positive, got {args.minutes}.")
    check(out.parent.is_dir(), f"folder {out.parent} does not exist.")
    check(args.overwrite or not (out.exists() or out.with_suffix(".json").exists()),
          f"{out} already exists; pass --overwrite to replace it.")
    params = schema.build(BlurFlowTrainParams, values)
    schema.check_ranges(params, train_specs())
    params.validate()
    if args.minutes is not None:
        n = steps_for_minutes(args.minutes, params, seed=args.seed)
        params = replace(params, steps=n)
        if not args.quiet:
            print(f"--minutes {args.minutes:g}: {n} steps (rerun with --steps {n} to reproduce)", flush=True)
    last = [0.0]

    def show(ev: Progress) -> None:
        now = time.perf_counter()
        if not args.quiet and (now - last[0] > 10 or ev.fraction >= 1):
            print(f"[{ev.fraction * 100:5.1f} %] {ev.message}", flush=True)
            last[0] = now

    model = train_blur_flow(params, seed=args.seed, progress=show)
    path = save_blur_flow(model, out)
    if not args.quiet:
        val = f", validation R^2 {model.validation[-1][1]:.3f}" if model.validation else ""
        print(f"saved {ARCHITECTURE} model to {path} ({model.seconds / 60:.1f} min, "
              f"{model.n_images} images, final loss {np.mean(model.loss_curve[-50:]):.4f}{val})")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_micromotion.blurflow.train",
                                 description="Train the blur-flow network (Shajkofci & Liebling 2021) on synthetic "
                                             "motion-blurred images and save it as safetensors + JSON.")
    add_train_arguments(ap)
    args = ap.parse_args(argv)
    try:
        run_training(args)
    except MicromotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
