"""Progress events shared by every long-running generator (CLI, napari workers, scripts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterator, TypeVar

from .errors import Cancelled

__all__ = ["Progress", "drive"]

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One step of progress.

    Attributes
    ----------
    stage
        Short name of the current stage (``"band-pass"``, ``"train cnn1d"``, ...).
    fraction
        Fraction of that stage done, 0-1.
    message
        Human-readable detail.
    """

    stage: str
    fraction: float
    message: str = ""


def drive(gen: Generator[Any, Any, R] | Iterator[Any], *, progress: Callable[[Progress], None] | None = None,
          cancel: Callable[[], bool] | None = None) -> R:
    """Run a progress generator to completion and return its return value.

    *progress* is called with every :class:`Progress` event; when *cancel* returns
    True the generator is closed and :class:`~napari_micromotion.errors.Cancelled`
    is raised.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Progress) and progress is not None:
            progress(event)
        if cancel is not None and cancel():
            close = getattr(gen, "close", None)
            if close is not None:
                close()
            raise Cancelled("cancelled")
