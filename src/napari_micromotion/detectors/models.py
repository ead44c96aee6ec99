"""Trained models on disk: safetensors weights plus a JSON sidecar (never pickle).

``model.safetensors`` holds the tensors; ``model.json`` (same stem) holds the
architecture name and version, fps, passband, normalisation, training frames,
ROI box, loss curve and package versions.  Loading checks all of these before a
single weight is used, and refuses files that are not safetensors (a pickle is
never unpickled).
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import MicromotionError, check, check_file, check_folder
from .cnn1d import ARCHITECTURE, ARCHITECTURE_VERSION, Normalisation, TrainedCNN1D, build_cnn1d, count_parameters

__all__ = ["save_cnn1d", "load_cnn1d", "save_cnn3d", "load_cnn3d_weights", "package_versions", "ARCH_3D",
           "write_pair", "check_safetensors", "read_pair", "load_state"]

ARCH_3D = "rinner2020-cnn3d"
_SAFETENSORS_MAX_HEADER = 100 << 20


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape results."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("napari-micromotion", "numpy", "scipy", "torch", "numba", "tifffile", "safetensors", "napari"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _check_safetensors(path: Path) -> None:
    """Refuse anything that is not a well-formed safetensors file (pickles included)."""
    check_file(path, "model file")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise MicromotionError(f"{path.name} is not a safetensors model file (too short).")
        n = int.from_bytes(head, "little")
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise MicromotionError(f"{path.name} looks like a pickle/zip (e.g. torch.save) file; only safetensors "
                                   "models are loaded, pickles are never unpickled.")
        if not 2 <= n <= min(_SAFETENSORS_MAX_HEADER, path.stat().st_size - 8):
            raise MicromotionError(f"{path.name} is not a safetensors model file.")
        if fh.read(1) != b"{":
            raise MicromotionError(f"{path.name} is not a safetensors model file.")


def _canonical_safetensors(blob: bytes) -> bytes:
    """*blob* (a safetensors file) with its JSON header's keys sorted, so identical tensors give identical bytes.

    safetensors writes the ``__metadata__`` entries in a per-process hash order; the header's
    length (and so every tensor's offset) does not change with the order of its keys.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return blob[:8] + text.ljust(n, b" ") + blob[8 + n:] if len(text) <= n else blob


def _write_pair(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    from safetensors.numpy import save

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    check_folder(path.parent)
    # .copy(order="C"), not np.ascontiguousarray: the latter turns 0-d tensors (BN counters) into shape (1,)
    blob = save({k: np.asarray(v).copy(order="C") for k, v in tensors.items()},
                metadata={"architecture": str(meta["architecture"]),
                          "architecture_version": str(meta["architecture_version"])})
    text = json.dumps(meta, indent=1, default=_json_default) + "\n"
    # each through a temporary sibling of a short name of its own (any model name the file system takes fits)
    atomic_write(path, lambda tmp: tmp.write_bytes(_canonical_safetensors(blob)))
    atomic_write(_sidecar(path), lambda tmp: tmp.write_text(text))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj).__name__)


def _model_in_folder(folder: Path, architecture: str, what: str) -> Path:
    """The single ``.safetensors`` model of *architecture* in *folder* or its ``models/``; one sentence otherwise."""
    found = []
    for cand in sorted(folder.glob("*.safetensors")) + sorted((folder / "models").glob("*.safetensors")):
        try:
            meta = json.loads(_sidecar(cand).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("architecture") == architecture:
            found.append(cand)
    check(len(found) == 1, f"{folder} is a folder with {'no' if not found else len(found)} {what or 'model'} "
                           f"file(s){': ' + ', '.join(p.name for p in found) if found else ''}; choose the model "
                           "file (.safetensors).")
    return found[0]


def read_pair(path: str | os.PathLike, architecture: str, version: int = ARCHITECTURE_VERSION, what: str = ""
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors and sidecar of a model pair written by :func:`write_pair`; anything else is refused in one sentence.

    *path* may name the ``.safetensors`` file, its ``.json`` sidecar or their common stem.
    The sidecar must say *architecture* and *version*; *what* names the model in messages
    ("a denoiser").
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if path.is_dir():       # an output folder: the one model of this architecture in it (or in its models/)
        path = _model_in_folder(path, architecture, what)
    if path.suffix == ".json" or (path.suffix == "" and not path.is_file()):   # the sidecar or the common stem
        path = path.with_suffix(".safetensors")
    _check_safetensors(path)
    side = _sidecar(path)
    check(side.is_file(), f"model sidecar {side.name} is missing next to {path.name}.")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        raise MicromotionError(f"model sidecar {side.name} is not valid JSON.") from None
    check(isinstance(meta, dict), f"model sidecar {side.name} is not a JSON object.")
    what = what or f"a {architecture!r} model"
    arch = meta.get("architecture")
    check(arch == architecture, f"{path.name} is not {what} (its architecture is {arch!r}, not {architecture!r}).")
    got = meta.get("architecture_version")
    check(got == version, f"{path.name} has architecture version {got!r}; this release reads version {version}.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MicromotionError(f"{path.name} is not a readable safetensors file ({str(exc)[:100]}).") from None
    return tensors, meta


def load_state(net: Any, tensors: dict[str, np.ndarray], name: str, what: str) -> Any:
    """Load *tensors* into the torch module *net* after checking names and shapes (one sentence if they differ)."""
    import torch

    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    check(got == expected, f"{name} does not match {what}'s architecture (tensor names or shapes differ).")
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    net.eval()
    return net


#: the same for other models (the denoiser): weights + sidecar written atomically, pickles refused
write_pair = _write_pair
check_safetensors = _check_safetensors


def save_cnn1d(model: TrainedCNN1D, path: str | os.PathLike) -> Path:
    """Save a trained 1D CNN as ``<path>.safetensors`` + ``<path>.json``."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}
    meta = {
        "architecture": ARCHITECTURE,
        "architecture_version": ARCHITECTURE_VERSION,
        "n_parameters": count_parameters(model.net),
        "fps": model.fps,
        "passband_hz": list(model.passband_hz),
        "filter_order": model.filter_order,
        "normalisation": model.normalisation.to_dict(),
        "training_frames": [list(s) for s in model.training_frames],
        "trained_on": model.trained_on,
        "n_training_pixels": model.n_training_pixels,
        "loss_curve": [float(v) for v in model.loss_curve],
        "epoch_loss": [float(v) for v in model.epoch_loss],
        "training_params": model.params,
        "training_device": model.device,
        "training_seconds": model.seconds,
        "package_versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_pair(path, tensors, meta)
    return path


def load_cnn1d(path: str | os.PathLike) -> TrainedCNN1D:
    """Load a model written by :func:`save_cnn1d`; wrong architecture, version or shapes are refused."""
    import torch

    tensors, meta = read_pair(Path(path), ARCHITECTURE)
    net = build_cnn1d(None)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    check(got == expected, f"{Path(path).name} does not match the Table 1 architecture (tensor names or shapes differ).")
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    net.eval()
    try:
        nd = dict(meta["normalisation"])
        check(nd.get("mode", "noise") in ("noise", "relative"), f"{Path(path).name}: unknown input normalisation.")
        norm = Normalisation(**nd)
        return TrainedCNN1D(
            net=net, normalisation=norm, fps=float(meta["fps"]), passband_hz=tuple(meta["passband_hz"]),
            filter_order=int(meta["filter_order"]), training_frames=[tuple(s) for s in meta["training_frames"]],
            loss_curve=list(meta.get("loss_curve", [])), epoch_loss=list(meta.get("epoch_loss", [])),
            params=dict(meta.get("training_params", {})), device=str(meta.get("training_device", "cpu")),
            n_training_pixels=int(meta.get("n_training_pixels", 0)), seconds=float(meta.get("training_seconds", 0.0)),
            trained_on=str(meta.get("trained_on") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MicromotionError(f"model sidecar of {Path(path).name} lacks a field ({exc}).") from None


def save_cnn3d(model: Any, path: str | os.PathLike, *, fps: float, passband_hz: tuple[float, float],
               normalisation: Normalisation, training_frames: list[tuple[int, int]]) -> Path:
    """Save a region-specific network (dense weights; in paper mode also the trained Cv1-21)."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {"dense.weight": model.weights, "dense.bias": np.array([model.bias], np.float32)}
    if getattr(model, "mask", None) is not None:
        tensors["region_mask"] = np.asarray(model.mask, np.uint8)
    if model.net is not None:
        tensors.update({f"net.{k}": v.detach().cpu().numpy() for k, v in model.net.state_dict().items()})
    meta = {
        "architecture": ARCH_3D,
        "architecture_version": ARCHITECTURE_VERSION,
        "roi": model.roi,
        "roi_box": list(model.box),
        "fps": fps,
        "passband_hz": list(passband_hz),
        "normalisation": normalisation.to_dict(),
        "target_mean": model.target_mean,
        "target_sd": model.target_sd,
        "training_frames": [list(s) for s in training_frames],
        "loss_curve": [float(v) for v in model.loss_curve],
        "training_params": model.params,
        "ridge_alpha": model.ridge_alpha,
        "package_versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_pair(path, tensors, meta)
    return path


def load_cnn3d_weights(path: str | os.PathLike) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Dense weights ``(3, h, w)``, bias and sidecar of a saved 3D network."""
    tensors, meta = read_pair(Path(path), ARCH_3D)
    check("dense.weight" in tensors and tensors["dense.weight"].ndim == 3 and tensors["dense.weight"].shape[0] == 3,
          f"{Path(path).name} has no (3, h, w) dense layer.")
    return tensors["dense.weight"], float(tensors["dense.bias"][0]), meta
