"""Pretraining the learned interpolator: ``micromotion train-interpolator`` (reproduces the shipped weights).

Training data (CAFI's protocol: drop a frame, reconstruct it from its neighbours):

* the project's simulator (:func:`napari_micromotion.simulate.simulate`): transmission movies of
  beating cells at 50 fps, several seeds and contraction amplitudes, one in low light;
* the shared real brightfield recordings (``../shared/data/real`` beside the project, or the
  folder ``MICROMOTION_SHARED_DATA`` names), downscaled to about 256 px, **even frames only**:
  the odd frames, which the benchmark reconstructs, are never seen in pretraining.  Missing
  recordings are skipped (and the sidecar says which were used).

Windows span 2-4 frames (targets at t = 1/4 ... 3/4).  The shipped model:
``micromotion train-interpolator --out src/napari_micromotion/interpolate/weights/interpolator --steps 6000 --seed 0 --threads 1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

import numpy as np

from .. import schema
from ..errors import check
from ..progress import Progress, drive
from ..schema import param

__all__ = ["real_recordings", "shared_data_dir", "add_train_arguments", "run_training", "iter_pretrain",
           "PretrainParams"]


@dataclass(frozen=True)
class PretrainParams:
    """How ``micromotion train-interpolator`` pretrains the network (defaults: the shipped weights)."""

    steps: int = param(6000, label="training steps", unit="batches", min=1, flag="--steps",
                       help="Optimiser steps (batches of 8 drop-a-frame windows).")
    threads: int = param(1, label="CPU threads", min=1, max=256, flag="--threads",
                         help="PyTorch CPU threads (the shipped weights: 1; the result depends on it).")
    real: bool = param(True, label="shared real recordings", flag="--real",
                       help="Also train on the even frames of the shared real recordings (--no-real: simulated "
                            "recordings only).")
    width: int = param(16, label="network width", unit="channels", min=4, max=128, flag="--width", advanced=True,
                       help="Feature channels of the network's first level.")
    windows_per_video: int = param(60, label="windows per video", min=4, max=10000, flag="--windows-per-video",
                                   advanced=True, help="Drop-a-frame training windows drawn from each video.")

#: the shared real recordings used: (name, path below real/, downscale factor, first frame)
REAL = (("ohw-tissue", "ohw-tissue-tif-series/sampletifseries", 4, 0),
        ("microbundle", "microbundle-tif-series", 2, 0),
        ("cm-monolayer-fetal", "cm-monolayer-phase-mp4/fetal.mp4", 1, 10),
        ("cm-monolayer-adult", "cm-monolayer-phase-mp4/adult.mp4", 1, 10),
        ("cm-monolayer-matrigel", "cm-monolayer-phase-mp4/matrigel.mp4", 1, 10))


def shared_data_dir() -> Path:
    """``$MICROMOTION_SHARED_DATA`` or ``../shared/data`` beside the project (source checkouts)."""
    env = os.environ.get("MICROMOTION_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def real_recordings(root: Path | None = None, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The shared real recordings as float32 ``(T, Y, X)`` (downscaled, fade-in dropped); missing ones are left out."""
    import warnings

    import cv2

    from ..io import read_stack

    root = (root or shared_data_dir()) / "real"
    out = {}
    for name, rel, ds, first in REAL:
        if names is not None and name not in names:
            continue
        path = root / rel
        if not path.exists():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asarray(read_stack(path).data, np.float32)
        if data.ndim == 4:
            data = data[:, 0]
        data = data[first:]
        if ds > 1:
            data = np.stack([cv2.resize(f, (f.shape[1] // ds, f.shape[0] // ds), interpolation=cv2.INTER_AREA)
                             for f in data])
        out[name] = data
    return out


def _simulated(seed: int) -> list[tuple[str, np.ndarray]]:
    from ..simulate import simulate

    specs = [dict(strong_px=2.0), dict(strong_px=4.0, other_px=3.0), dict(strong_px=3.0, transmission_photons_per_pixel=400.0)]
    out = []
    for j, kw in enumerate(specs):
        sim = simulate(n_frames=160, size=128, seed=seed + j, **kw)
        out.append((f"simulated-{j}", np.asarray(sim.transmission, np.float32)))
    return out


def iter_pretrain(out: Path, *, steps: int = 6000, seed: int = 0, threads: int = 1, width: int = 16,
                  real: bool = True, windows_per_video: int = 60) -> Generator[Progress, None, Path]:
    """Pretrain a network from scratch and save it to *out* (``.safetensors`` + ``.json``)."""
    import torch

    from .core import Normaliser
    from .files import save_interpolator
    from .model import build_net
    from .train import TrainSettings, iter_train, make_samples, mean_loss, pretrain_windows

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    videos = _simulated(seed)
    used_real = []
    if real:
        for name, vid in real_recordings().items():
            videos.append((name, vid))
            used_real.append(name)
    samples = []
    data = []
    for j, (name, vid) in enumerate(videos):
        only_even = not name.startswith("simulated")
        wins = pretrain_windows(vid.shape[0], spans=(2, 3, 4), only_even=only_even)
        if name.startswith("simulated"):   # the simulator at 50 fps moves little per frame: wider spans too
            wins += pretrain_windows(vid.shape[0], spans=(6, 8), step=2)
        if len(wins) > windows_per_video:
            wins = [wins[i] for i in np.sort(rng.choice(len(wins), windows_per_video, replace=False))]
        norm = Normaliser.of(vid[::2] if only_even else vid)
        got = yield from make_samples(vid, wins, norm, engine="dis", crop_px=160, seed=seed + j)
        samples += got
        data.append({"name": name, "frames": int(vid.shape[0]), "shape": list(vid.shape[1:]), "windows": len(wins),
                     "frames_used": "even only" if only_even else "all"})
    net = build_net(width)
    val = [samples[i] for i in rng.choice(len(samples), min(16, len(samples)), replace=False)]
    before = mean_loss(net, val)
    settings = TrainSettings(steps=steps, batch=8, patch_px=64, lr=1e-3, seed=seed, threads=threads, max_minutes=1e9)
    rec = yield from iter_train(net, samples, settings, stage="pretrain")
    after = mean_loss(net, val)
    meta = {"steps": rec.steps, "seed": seed, "threads": threads, "seconds": round(time.perf_counter() - t0, 1),
            "loss_curve": rec.loss_curve, "sample_loss_untrained_is_flow": before, "sample_loss_after": after,
            "data": data, "real_recordings": used_real, "settings": {"batch": 8, "patch_px": 64, "lr": 1e-3},
            "command": f"micromotion train-interpolator --out PATH --steps {steps} --seed {seed} --threads {threads}"
                       + ("" if real else " --no-real") + ("" if width == 16 else f" --width {width}")
                       + ("" if windows_per_video == 60 else f" --windows-per-video {windows_per_video}")}
    path = save_interpolator(net, out, meta)
    yield Progress("pretrain", 1.0, f"wrote {path}: loss {before:.4g} (flow) -> {after:.4g}")
    return path


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The run's own options (output, seed) and the :class:`PretrainParams` options."""
    p.add_argument("--out", "-o", required=True, help="output model path (.safetensors; a .json sidecar beside it)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.add_argument("--quiet", "-q", action="store_true")
    schema.add_arguments(p, schema.specs(PretrainParams))


def run_training(args: argparse.Namespace, progress: Any = None) -> Path:
    """``micromotion train-interpolator``: *args* from :func:`add_train_arguments`; *progress* receives the events."""
    check(not Path(args.out).is_dir(), f"--out {args.out} is a folder; give the model's file name (.safetensors).")
    check(args.seed >= 0, f"--seed must be a non-negative integer, got {args.seed}.")
    out = Path(args.out).with_suffix(".safetensors")
    check(args.overwrite or not out.exists(), f"model file {out} exists; pass --overwrite to replace it.")
    check(out.parent.is_dir(), f"folder {out.parent} does not exist.")
    specs = schema.specs(PretrainParams)
    params = schema.build(PretrainParams, schema.values_from_args(args, specs))
    schema.check_ranges(params, specs)
    path = drive(iter_pretrain(out, steps=params.steps, seed=args.seed, threads=params.threads, width=params.width,
                               real=params.real, windows_per_video=params.windows_per_video), progress=progress)
    if not args.quiet:
        print(f"wrote {path}", file=sys.stderr)
    return path

