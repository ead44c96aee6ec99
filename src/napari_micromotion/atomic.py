"""Atomic file writing (a file is replaced only by a complete new one) and safe file names (no Qt)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import MicromotionError, check, check_folder

__all__ = ["atomic_write", "safe_name", "current_umask"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of *path*, then rename it over *path*.

    An existing file at *path* changes only when the new one is complete.
    """
    p = Path(path)
    check(str(p.name) != "", "choose a file name.")
    parent = p.absolute().parent
    check_folder(parent)
    check(not p.is_dir(), f"{p} is a folder; choose a file name.")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=parent)
    except OSError as exc:
        raise MicromotionError(f"cannot write into {parent} ({exc.strerror or exc}).") from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if tmp.exists():     # mkstemp makes it 0600: give it the mode of the file it replaces, or the umask's
            os.chmod(tmp, p.stat().st_mode & 0o7777 if p.exists() else 0o666 & ~current_umask())
        os.replace(tmp, p)
    except OSError as exc:
        raise MicromotionError(f"could not write {p} ({exc.strerror or exc}).") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def current_umask() -> int:
    """The process' file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_name(name: str) -> str:
    """A file-name-safe version of an ROI or method name."""
    keep = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name.strip())
    return keep or "roi"
