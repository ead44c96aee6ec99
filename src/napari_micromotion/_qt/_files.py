"""Atomic file writing for the widgets' exports (no Qt): complete files or nothing."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_write

__all__ = ["atomic_write", "write_csv_atomic", "fmt"]


def fmt(v: Any) -> Any:
    """A CSV cell: floats with 7 significant digits, NaN as ``nan``."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "nan" if math.isnan(v) else f"{v:.7g}"
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_csv_atomic(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write rows (sequences in *columns* order) as CSV, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(columns))
    for row in rows:
        w.writerow([fmt(v) for v in row])
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_text(text))
