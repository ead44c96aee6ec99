"""Where the networks run: ``auto`` (a CUDA GPU when there is one), ``cpu`` or ``cuda``."""

from __future__ import annotations

from .errors import check

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is usable, else ``"cpu"``; other names are checked."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    check(device in ("cpu", "cuda") or str(device).startswith("cuda:"),
          f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if str(device).startswith("cuda"):
        check(torch.cuda.is_available(), "device 'cuda' was requested but no CUDA GPU is available here.")
    return str(device)
