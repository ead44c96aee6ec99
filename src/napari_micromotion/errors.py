"""The project's own exception types.

Everything a user can cause (bad files, bad parameters, too little data) raises
:class:`MicromotionError` with one clear sentence; the CLI prints it as
``error: <sentence>`` and exits with status 2, the napari widgets show it as a
notification.  Anything else escaping the library is a bug.
"""

from __future__ import annotations

__all__ = ["MicromotionError", "Cancelled", "check"]


class MicromotionError(ValueError):
    """A problem with the user's input or parameters, stated in one sentence.

    ``str(exc)`` is worded for any front end (napari shows it as it is); *cli* is the
    same sentence in the command line's words (with its option names), which the
    CLI prints instead when given.
    """

    def __init__(self, message: str, cli: str | None = None) -> None:
        super().__init__(message)
        self.cli = cli

    def for_cli(self) -> str:
        return self.cli or str(self)


class Cancelled(Exception):
    """Raised inside long-running work when the caller asked it to stop."""


def check(condition: object, message: str, cli: str | None = None) -> None:
    """Raise :class:`MicromotionError` with *message* (and its command-line wording *cli*) unless *condition* holds."""
    if not condition:
        raise MicromotionError(message, cli)
