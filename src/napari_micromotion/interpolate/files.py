"""The learned interpolator on disk: ``<name>.safetensors`` (weights) + ``<name>.json`` (never pickle).

The package ships pretrained weights (``weights/interpolator.safetensors``, made by
``micromotion train-interpolator``; the sidecar records how).  Loading checks the
architecture, its version and every tensor's name and shape before a weight is used.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import MicromotionError, check
from .model import ARCHITECTURE, ARCHITECTURE_VERSION, build_net, count_parameters

__all__ = ["save_interpolator", "load_interpolator", "default_weights_path", "load_default_interpolator"]

DEFAULT_WEIGHTS = "interpolator.safetensors"


def default_weights_path() -> Path:
    """The pretrained weights inside the package."""
    from importlib import resources

    return Path(str(resources.files("napari_micromotion.interpolate").joinpath("weights", DEFAULT_WEIGHTS)))


def save_interpolator(net: Any, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json`` (each replaced atomically); *meta*: training record."""
    from ..detectors.models import package_versions, write_pair

    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    record = {"architecture": ARCHITECTURE, "architecture_version": ARCHITECTURE_VERSION, "width": int(net.width),
              "n_parameters": count_parameters(net), **(meta or {}), "package_versions": package_versions(),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_pair(path, tensors, record)
    return path


def load_interpolator(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """``(net, sidecar)`` from a file written by :func:`save_interpolator`; anything else is refused in one sentence."""
    from ..detectors.models import load_state, read_pair

    path = Path(path)
    tensors, meta = read_pair(path, ARCHITECTURE, ARCHITECTURE_VERSION, "an interpolator model")
    try:
        net = build_net(int(meta["width"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MicromotionError(f"model sidecar of {path.name} lacks a field or has a bad value ({exc}).") from None
    net = load_state(net, tensors, path.name, "the interpolator")
    return net, meta


def load_default_interpolator() -> tuple[Any, dict[str, Any]]:
    """The shipped pretrained network (a one-sentence error if the package lacks it)."""
    path = default_weights_path()
    check(path.is_file(), f"the pretrained interpolator {path} is missing from the installation; reinstall "
                          "napari-micromotion or make it with 'micromotion train-interpolator'.")
    return load_interpolator(path)
