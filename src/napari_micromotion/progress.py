"""Progress events shared by every long-running generator (CLI, napari workers, scripts)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Generator, Iterator, Mapping, Sequence, TypeVar

from .errors import Cancelled

__all__ = ["Progress", "drive", "StagePlan", "scaled"]

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
    overall
        Fraction of the whole run done, 0-1, when the generator knows it (the analysis does).
    values
        Numbers worth plotting live, e.g. ``{"loss": 0.12, "step": 40}`` while a network trains.
    """

    stage: str
    fraction: float
    message: str = ""
    overall: float | None = None
    values: Mapping[str, float] | None = None


def scaled(gen: Generator[Any, Any, R], lo: float, hi: float, suffix: str = "") -> Generator[Any, Any, R]:
    """Run *gen*, mapping its events' fractions into ``[lo, hi]`` (a part of a larger stage).

    A *suffix* is appended to every stage name (``"train denoiser 1 of 2"``: its own loss series).
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Progress):
            event = replace(event, fraction=lo + (hi - lo) * max(0.0, min(1.0, float(event.fraction))),
                            stage=event.stage + suffix)
        yield event


class StagePlan:
    """Weights of the stages of a long run, to report how much of the *whole* run is done.

    ``plan.track(key, gen)`` runs generator *gen* as stage *key* and re-yields its
    events with ``overall`` set from the stage's own fraction; ``plan.done(key)``
    marks a stage without events finished.  Unknown keys weigh nothing.
    """

    def __init__(self, weights: Sequence[tuple[str, float]]) -> None:
        total = sum(w for _, w in weights) or 1.0
        self.start: dict[str, float] = {}
        self.weight: dict[str, float] = {}
        acc = 0.0
        for key, w in weights:
            self.start[key] = acc / total
            self.weight[key] = w / total
            acc += w

    def at(self, key: str, fraction: float) -> float | None:
        if key not in self.start:
            return None
        return min(1.0, self.start[key] + self.weight[key] * max(0.0, min(1.0, float(fraction))))

    def event(self, key: str, event: Progress) -> Progress:
        return replace(event, overall=self.at(key, event.fraction))

    def track(self, key: str, gen: Generator[Any, Any, R]) -> Generator[Any, Any, R]:
        """Run *gen* as stage *key* (a ``yield from`` that sets ``overall``)."""
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            yield self.event(key, event) if isinstance(event, Progress) else event


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
