"""A trained denoiser on disk: ``model.safetensors`` (weights, error kernel) + ``model.json`` (never pickle).

The sidecar holds the architecture and its version, the context, prior, camera model,
normaliser, calibration, training frames and loss curves; loading checks the architecture,
version and tensor shapes before a single weight is used.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import MicromotionError, check
from .data import PRIORS, CameraModel, Normaliser, n_input_channels
from .model import ARCHITECTURE, ARCHITECTURE_VERSION, build_unet
from .predict import Calibration
from .train import TrainedDenoiser

__all__ = ["save_denoiser", "load_denoiser", "KERNEL_KEY"]

#: the calibration's spatial error kernel, stored beside the weights
KERNEL_KEY = "calibration.kernel"


def save_denoiser(model: TrainedDenoiser, calibration: Calibration | None, path: str | os.PathLike) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json`` (each replaced atomically)."""
    from ..detectors.models import package_versions, write_pair

    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}
    if calibration is not None and calibration.kernel is not None:
        tensors[KERNEL_KEY] = np.asarray(calibration.kernel, np.float32)
    meta = {
        "architecture": ARCHITECTURE, "architecture_version": ARCHITECTURE_VERSION,
        "n_parameters": model.n_parameters, "context": model.context, "prior": model.prior,
        "width": model.width, "dropout": model.dropout, "camera": model.camera.to_dict(),
        "normaliser": model.norm.to_dict(),
        "calibration": calibration.to_dict() if calibration is not None else None,
        "training_frames_runs": model.training_frames, "heldout_frames": model.heldout_frames,
        "loss_curve": model.loss_curve, "epoch_loss": model.epoch_loss, "val_loss": model.val_loss,
        "val_mse": model.val_mse, "best_epoch": model.best_epoch, "training_seconds": model.seconds,
        "steps": model.steps, "settings": model.settings, "stopped_early": model.stopped_early,
        "package_versions": package_versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_pair(path, tensors, meta)
    return path


def load_denoiser(path: str | os.PathLike) -> tuple[TrainedDenoiser, Calibration | None]:
    """A model written by :func:`save_denoiser` (and its calibration); anything else is refused in one sentence."""
    from ..detectors.models import load_state, read_pair

    path = Path(path)
    tensors, meta = read_pair(path, ARCHITECTURE, ARCHITECTURE_VERSION, "a denoiser model")
    try:
        context, prior = int(meta["context"]), str(meta["prior"])
        check(prior in PRIORS and context >= 1, f"{path.name}: unknown prior {prior!r} or context {context}.")
        kernel = tensors.pop(KERNEL_KEY, None)
        net = load_state(build_unet(n_input_channels(context, prior), int(meta["width"]), float(meta["dropout"])),
                         tensors, path.name, "the denoiser")
        model = TrainedDenoiser(
            net=net, context=context, prior=prior, camera=CameraModel.from_dict(meta["camera"]),
            norm=Normaliser.from_dict(meta["normaliser"]), width=int(meta["width"]), dropout=float(meta["dropout"]),
            training_frames=list(meta.get("training_frames_runs", [])), heldout_frames=list(meta.get("heldout_frames", [])),
            loss_curve=list(meta.get("loss_curve", [])), epoch_loss=list(meta.get("epoch_loss", [])),
            val_loss=list(meta.get("val_loss", [])), val_mse=list(meta.get("val_mse", [])),
            best_epoch=int(meta.get("best_epoch", 0)), seconds=float(meta.get("training_seconds", 0.0)),
            steps=int(meta.get("steps", 0)), settings=dict(meta.get("settings", {})),
            stopped_early=str(meta.get("stopped_early", "")))
        cal = meta.get("calibration")
        calibration = Calibration.from_dict(cal, kernel) if cal else None
    except (KeyError, TypeError, ValueError) as exc:
        raise MicromotionError(f"model sidecar of {path.name} lacks a field or has a bad value ({exc}).") from None
    return model, calibration
