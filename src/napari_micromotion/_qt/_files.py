"""Atomic file writing for the widgets' exports (no Qt): complete files or nothing."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_write
from ..layout import fmt

__all__ = ["atomic_write", "write_csv_atomic", "fmt"]


def write_csv_atomic(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write rows (sequences in *columns* order) as CSV, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(columns))
    for row in rows:
        w.writerow([fmt(v) for v in row])
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_text(text))
