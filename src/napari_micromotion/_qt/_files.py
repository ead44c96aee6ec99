"""Atomic file writing for the widgets' exports (no Qt): complete files or nothing."""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MicromotionError, check

__all__ = ["atomic_write", "write_csv_atomic", "fmt"]


def fmt(v: Any) -> Any:
    """A CSV cell: floats with 7 significant digits, NaN as ``nan``."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "nan" if math.isnan(v) else f"{v:.7g}"
    if isinstance(v, np.integer):
        return int(v)
    return v


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of *path*, then rename it over *path*.

    An existing file at *path* changes only when the new one is complete.
    """
    p = Path(path)
    check(str(p.name) != "", "choose a file name.")
    parent = p.absolute().parent
    check(parent.is_dir(), f"folder {parent} does not exist.")
    check(not p.is_dir(), f"{p} is a folder; choose a file name.")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=parent)
    except OSError as exc:
        raise MicromotionError(f"cannot write into {parent} ({exc.strerror or exc}).") from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, p)
    except OSError as exc:
        raise MicromotionError(f"could not write {p} ({exc.strerror or exc}).") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def write_csv_atomic(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write rows (sequences in *columns* order) as CSV, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(columns))
    for row in rows:
        w.writerow([fmt(v) for v in row])
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_text(text))
