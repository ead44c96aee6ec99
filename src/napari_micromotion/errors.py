"""The project's own exception types.

Everything a user can cause (bad files, bad parameters, too little data) raises
:class:`MicromotionError` with one clear sentence; the CLI prints it as
``error: <sentence>`` and exits with status 2, the napari widgets show it as a
notification.  Anything else escaping the library is a bug.
"""

from __future__ import annotations

__all__ = ["MicromotionError", "Cancelled", "check"]


class MicromotionError(ValueError):
    """A problem with the user's input or parameters, stated in one sentence."""


class Cancelled(Exception):
    """Raised inside long-running work when the caller asked it to stop."""


def check(condition: object, message: str) -> None:
    """Raise :class:`MicromotionError` with *message* unless *condition* holds."""
    if not condition:
        raise MicromotionError(message)
