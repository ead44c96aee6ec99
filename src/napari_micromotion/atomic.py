"""Atomic file writing (a file is replaced only by a complete new one) and safe file names (no Qt).

Temporary siblings (of a file being replaced, of an output folder being written) have short
names of their own, ``.mm-<tag>-...``, whatever the length of the final name: a final name
near the file system's 255-byte limit would not leave room for a suffix.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import MicromotionError, check, check_folder

__all__ = ["atomic_write", "safe_name", "current_umask", "temp_sibling_dir", "temp_siblings", "TEMP_PREFIX"]

#: how the name of every temporary sibling starts (hidden, so folder readers skip it)
TEMP_PREFIX = ".mm-"


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
        # a short name of its own (a writer may go by the suffix): '.<name>.' + mkstemp's token overflowed long names
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}tmp-", suffix=p.suffix if len(p.suffix) <= 16 else "",
                                    dir=parent)
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


def _sibling_key(path: Path) -> str:
    """12 hex digits that stand for *path*'s name in its temporary siblings' names."""
    return hashlib.sha256(os.fsencode(path.name)).hexdigest()[:12]


def temp_sibling_dir(path: str | os.PathLike, tag: str) -> Path:
    """A new empty folder beside *path*: ``.mm-<tag>-<pid>-<key>-<random>``, about 40 characters long.

    *key* stands for *path*'s name (:func:`temp_siblings` finds the folder by it) and the
    process id tells whether the process that made it is still running.
    """
    p = Path(path)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{tag}-{os.getpid()}-{_sibling_key(p)}-", dir=p.absolute().parent))


def temp_siblings(path: str | os.PathLike, tag: str) -> list[tuple[Path, int]]:
    """The temporary siblings of *path* that :func:`temp_sibling_dir` made with *tag*, each with its process id.

    Also those named ``.<name>.<tag>-<pid>-...`` (as earlier versions named them).
    """
    p = Path(path)
    parent = p.absolute().parent
    found = []
    ours, theirs = f"{TEMP_PREFIX}{tag}-", f".{p.name}.{tag}-"
    for prefix, pattern in ((ours, f"{ours}*-{_sibling_key(p)}-*"), (theirs, f"{glob.escape(theirs)}*")):
        for cand in sorted(parent.glob(pattern)):
            pid = cand.name[len(prefix):].split("-")[0]
            if pid.isdigit():
                found.append((cand, int(pid)))
    return found


def current_umask() -> int:
    """The process' file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_name(name: str) -> str:
    """A file-name-safe version of an ROI or method name."""
    keep = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name.strip())
    return keep or "roi"
