"""Background tasks: a core generator in a napari thread worker.

A :class:`Task` runs a generator that yields
:class:`~napari_micromotion.progress.Progress` and returns a value (the core's
``iter_*`` functions) in a ``napari.qt.threading`` worker:

* every stage gets its own napari progress bar (activity dock), closed when the
  next stage starts or the task ends;
* :meth:`Task.cancel` asks the worker to quit; it stops at the next yield
  (between pixel chunks or training steps) and the generator is closed, so its
  ``finally`` blocks run.  ``returned`` is not emitted for a cancelled task, so
  nothing downstream changes;
* errors become one-sentence notifications: a
  :class:`~napari_micromotion.errors.MicromotionError` as it is, anything else
  as a short sentence (the traceback goes to the log), never a traceback dialog.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Generator

from qtpy.QtCore import QObject, Signal
from superqt.utils import GeneratorWorker

from ..errors import Cancelled, MicromotionError
from ..progress import Progress

__all__ = ["Task", "TaskFailed", "TaskHost", "export_running", "notify_error"]

log = logging.getLogger("napari_micromotion")


class TaskFailed(Exception):
    """An unexpected exception inside a task, carried to the main thread with a readable message.

    (Not a ``RuntimeError``: superqt's worker loop treats those as a deleted worker and drops them.)
    """

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


class _QuietGeneratorWorker(GeneratorWorker):
    """superqt's generator worker without napari's relay of errors to the traceback notification."""


def error_message(exc: BaseException, what: str = "the task") -> str:
    """The one sentence shown for *exc*."""
    if isinstance(exc, MicromotionError):
        msg = str(exc)
    elif isinstance(exc, TaskFailed):
        msg = str(exc)
    elif isinstance(exc, MemoryError):
        msg = f"{what} ran out of memory; lower the memory per chunk or the number of training pixels."
    else:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        msg = f"{what} failed unexpectedly ({type(exc).__name__}{': ' + detail if detail else ''}); details are in the log."
    return capitalised(msg)


def capitalised(msg: str) -> str:
    """*msg* with a capital first letter, unless it starts with a file or folder name (``one.tif``, ``/data``,
    ``run_2``): a name keeps its case, or it would name another file."""
    first = msg.split(" ", 1)[0]
    if any(ch in first for ch in "./\\_-~0123456789") or first.startswith("'"):
        return msg
    return msg[:1].upper() + msg[1:]


def notify_error(exc: BaseException, what: str = "the task") -> str:
    """Show *exc* as a one-sentence napari error notification, in the forms' words (and log unexpected ones)."""
    from napari.utils.notifications import show_error

    from .forms import in_gui_words

    msg = in_gui_words(error_message(exc, what))
    if not isinstance(exc, MicromotionError):
        original = exc.original if isinstance(exc, TaskFailed) and exc.original is not None else exc
        log.error("napari-micromotion: %s", msg, exc_info=(type(original), original, original.__traceback__))
    show_error(msg)
    return msg


def export_running(task: "Task | None") -> bool:
    """Whether *task*, a panel's last export, is still writing (then a notification says to wait).

    A panel refuses a second export while one is written: both would write the same folder.
    """
    if task is not None and task.running:
        notify_error(MicromotionError("an export is already being written; wait for it to finish."))
        return True
    return False


def _guarded(gen: Generator[Any, Any, Any], what: str) -> Generator[Any, Any, Any]:
    try:
        result = yield from gen
    except (MicromotionError, TaskFailed):
        raise
    except Cancelled:
        raise TaskFailed(f"{what} was cancelled.") from None
    except MemoryError as exc:
        raise TaskFailed(error_message(exc, what), exc) from None
    except Exception as exc:  # becomes a notification in the main thread
        raise TaskFailed(error_message(exc, what), exc) from exc
    return result


class Task(QObject):
    """One background run of a progress generator.

    Signals
    -------
    progressed(Progress)
        Every progress event (main thread).
    succeeded(object)
        The generator's return value; not emitted when cancelled or failed.
    failed(str)
        The one-sentence error message (already shown as a notification).
    cancelled()
        The task stopped on request.
    finished()
        Always last.
    """

    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, make_generator: Callable[[], Generator[Any, Any, Any]], *, what: str = "the analysis",
                 title: str = "micromotion", progress_bars: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._make = make_generator
        self.what = what
        self.title = title
        self.progress_bars = progress_bars
        self.worker: Any = None
        self._gen: Any = None
        self._bar: Any = None
        self._stage: str | None = None
        self._creating = False
        self._waiting: Progress | None = None
        self.last: Progress | None = None
        self.events: list[Progress] = []
        self.running = False
        self.cancel_requested = False
        self.error: str | None = None
        self.result: Any = None
        self.t_start = 0.0
        self.seconds = 0.0

    # ------------------------------------------------------------ control
    def start(self) -> "Task":
        from napari.qt.threading import create_worker

        self._gen = _guarded(self._make(), self.what)
        gen = self._gen

        def run():  # the worker's generator function: delegates to ours (so we can close it)
            return (yield from gen)

        self.worker = create_worker(run, _start_thread=False, _worker_class=_QuietGeneratorWorker,
                                    _ignore_errors=True)
        self.worker.yielded.connect(self._on_yielded)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_errored)
        self.worker.aborted.connect(self._on_aborted)
        self.worker.finished.connect(self._on_finished)
        self.running = True
        self.t_start = time.perf_counter()
        self.worker.start()
        return self

    def cancel(self) -> None:
        """Ask the worker to stop at its next yield (within one chunk or training step)."""
        if self.running and self.worker is not None and not self.cancel_requested:
            self.cancel_requested = True
            self.worker.quit()

    # ------------------------------------------------------------ progress bars
    def _close_bar(self) -> None:
        if self._bar is not None:
            try:
                self._bar.close()
            except Exception:  # pragma: no cover - the activity dock may be gone with the viewer
                pass
            self._bar = None

    def _show(self, event: Progress) -> None:
        if not self.progress_bars or event.stage == "done":
            return
        from napari.utils import progress

        if self._creating:   # napari processes queued events while it creates a bar: the last one waits
            self._waiting = event
            return
        if event.stage != self._stage or self._bar is None:
            self._close_bar()
            self._stage = event.stage
            self._creating = True
            try:
                bar = progress(total=1000, desc=f"{self.title}: {event.stage}")
            finally:
                self._creating = False
            if self._bar is not None and self._bar is not bar:  # pragma: no cover - defensive
                bar.close()
                bar = self._bar
            self._bar = bar
            if not self.running:  # the task ended during the re-entrant event processing
                self._close_bar()
                return
        n = int(round(max(0.0, min(1.0, float(event.fraction))) * 1000))
        if self._bar is not None and n > self._bar.n:
            self._bar.update(n - self._bar.n)
        waiting, self._waiting = self._waiting, None
        if waiting is not None and self.running:
            self._show(waiting)

    # ------------------------------------------------------------ worker signals (main thread)
    def _on_yielded(self, event: Any) -> None:
        if not isinstance(event, Progress):
            return
        if not self.running:
            return
        self.last = event
        self.events.append(event)
        self.progressed.emit(event)
        self._show(event)  # last: creating a napari progress bar may process queued events

    def _on_returned(self, value: Any) -> None:
        if self.cancel_requested:  # quit() raced with the last step: a cancelled run changes nothing, and says so
            self.cancelled.emit()
            return
        self.result = value
        self.succeeded.emit(value)

    def _on_errored(self, exc: Exception) -> None:
        self.error = notify_error(exc, self.what)
        self.failed.emit(self.error)

    def _on_aborted(self) -> None:
        self.cancelled.emit()

    def _on_finished(self) -> None:
        self.running = False
        self.seconds = time.perf_counter() - self.t_start
        self._close_bar()
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.close()  # the worker thread is done with it: run the core's cleanup now
            except Exception:  # pragma: no cover
                log.debug("closing a finished task raised", exc_info=True)
        self.finished.emit()


class TaskHost:
    """What a panel that runs one core generator at a time shares with the others.

    The panel has a status label ``status``, a ``cancel_button`` and, optionally, a
    ``progress`` bar (0-1000) and a ``loss_plot``; its ``session`` relays progress to the
    viewer.  :meth:`launch` wires a :class:`Task` to them (the button that started it is
    disabled until the task finishes); :meth:`cancel` stops it at its next step.
    """

    task: Task | None = None
    _task_button: Any = None

    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def cancel(self) -> None:
        """Stop the running task at its next step; what it would have changed stays as it was."""
        if self.running:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling...")

    def launch(self, task: Task, *, button: Any, status: str, on_success: Callable[[Any], None],
               failed: str = "Failed", cancelled: str = "Cancelled; nothing changed.") -> Task:
        """Start *task*: progress, loss and status go to this panel; *on_success* gets its result."""
        task.progressed.connect(self._task_progressed)
        task.succeeded.connect(on_success)
        task.failed.connect(lambda msg: self._task_ended(f"{failed}: {msg}"))
        task.cancelled.connect(lambda: self._task_ended(cancelled))
        task.finished.connect(self._task_finished)
        self.task, self._task_button = task, button
        button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if getattr(self, "progress", None) is not None:
            self.progress.setValue(0)
        self._hide_loss()          # shown again at the run's first loss value
        self.status.setText(status)
        return task.start()

    def _task_progressed(self, event: Progress) -> None:
        if not self.running:        # a late event of a task that has ended
            return
        if getattr(self, "progress", None) is not None:
            whole = event.overall if event.overall is not None else event.fraction
            self.progress.setValue(int(round(1000 * max(0.0, min(1.0, whole)))))
        self.status.setText(f"{event.stage}: {event.message}" if event.message else event.stage)
        if event.values and "loss" in event.values and getattr(self, "loss_plot", None) is not None:
            self.loss_plot.add(event.stage, float(event.values["loss"]))
        self.session.progressed.emit(event)

    def _hide_loss(self) -> None:
        if getattr(self, "loss_plot", None) is not None:
            self.loss_plot.reset()
            self.loss_plot.setVisible(False)

    def _task_ended(self, text: str) -> None:
        """A failed or cancelled run: the panel and the workbench's footer say so, the bars start again and the
        loss plot goes (a run that trained nothing to the end leaves no curve behind)."""
        self.status.setText(text)
        if getattr(self, "progress", None) is not None:
            self.progress.setValue(0)
        self._hide_loss()
        self.session.task_ended.emit(text)

    def _task_finished(self) -> None:
        if self._task_button is not None:
            self._task_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
