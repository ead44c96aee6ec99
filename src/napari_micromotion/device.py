"""Where the networks run: ``auto`` (a CUDA GPU when there is one), ``cpu`` or ``cuda``."""

from __future__ import annotations

from typing import Any

from .errors import check

__all__ = ["resolve_device", "torch_threads"]


class torch_threads:
    """``with torch_threads(n):`` run torch on *n* CPU threads, then restore the previous count (``n <= 0``: leave it)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __enter__(self) -> "torch_threads":
        import torch

        self.before = torch.get_num_threads()
        if self.n > 0:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.n > 0:
            torch.set_num_threads(self.before)


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
