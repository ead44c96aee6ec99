"""The project's own exception types.

Everything a user can cause (bad files, bad parameters, too little data) raises
:class:`MicromotionError` with one clear sentence; the CLI prints it as
``error: <sentence>`` and exits with status 2, the napari widgets show it as a
notification.  Anything else escaping the library is a bug.
"""

from __future__ import annotations

import os

__all__ = ["MicromotionError", "Cancelled", "check", "check_file", "check_folder"]


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


def _why_not(path: "os.PathLike | str", what: str, want: str) -> str:
    """Why *path* is not the *want* (``"file"`` or ``"folder"``) a user named: the sentence to show."""
    from pathlib import Path

    p = Path(path)
    if want == "file" and p.is_dir():
        return f"{what} {p} is a folder, not a file."
    if want == "folder" and p.exists():
        return f"{what} {p} is a file, not a folder."
    for up in p.absolute().parents:            # /etc/passwd/x: a file where a folder should be
        if up.exists():
            if not up.is_dir():
                return f"{what} {p} cannot exist: {up} is a file, not a folder."
            break
    return f"{what} {p} does not exist."


def check_file(path: "os.PathLike | str", what: str = "file") -> None:
    """Refuse a *path* that is not an existing file, saying what it is instead (a folder, under a file, missing)."""
    from pathlib import Path

    if not Path(path).is_file():
        raise MicromotionError(_why_not(path, what, "file"))


def check_folder(path: "os.PathLike | str", what: str = "folder") -> None:
    """Refuse a *path* that is not an existing folder, saying what it is instead (a file, under a file, missing)."""
    from pathlib import Path

    if not Path(path).is_dir():
        raise MicromotionError(_why_not(path, what, "folder"))
