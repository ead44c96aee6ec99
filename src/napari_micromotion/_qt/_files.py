"""Atomic file writing for the widgets' exports (no Qt): complete files or nothing."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ..atomic import atomic_write
from ..errors import check
from ..layout import fmt

__all__ = ["atomic_write", "write_csv_atomic", "fmt", "save_figure_atomic", "write_panel_csv"]


def write_csv_atomic(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write rows (sequences in *columns* order) as CSV, atomically (a ``.csv`` or ``.txt`` name, or none:
    ``.csv`` is added; micrometres are written ``um`` in the header, as in the output folders)."""
    p = Path(path)
    check(not p.is_dir(), f"{p} is a folder; give the CSV file a name.")
    if p.suffix == "":
        p = p.with_name(p.name + ".csv")
    check(p.suffix.lower() in (".csv", ".txt"), f"save the table as .csv (or .txt), not {p.suffix}.")
    path = p
    columns = [str(c).replace("µm", "um") for c in columns]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(columns))
    for row in rows:
        w.writerow([fmt(v) for v in row])
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_figure_atomic(path: str | os.PathLike, draw: Callable[[Any], Any], *, height_in: float,
                       width_in: float = 7.2, dpi: int = 300, empty: str | None = None) -> Path:
    """A plot at publication size on white (PNG, SVG or PDF by extension), written atomically.

    *draw* draws into a matplotlib figure; *empty*, when given, is the one-sentence reason there is
    nothing to draw (raised after the extension is checked).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p = Path(path)
    check(not p.is_dir(), f"{p} is a folder; give the figure a file name (.png, .svg or .pdf).")
    if p.suffix == "":
        p = p.with_name(p.name + ".png")
    kind = p.suffix.lower().lstrip(".")
    check(kind in ("png", "svg", "pdf"), f"save the figure as .png, .svg or .pdf, not {p.suffix}.")
    check(empty is None, empty or "")
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    fig.set_facecolor("white")
    draw(fig)
    return atomic_write(p, lambda tmp: fig.savefig(tmp, format=kind, dpi=dpi, facecolor="white"))


def write_panel_csv(path: str | os.PathLike, frames: Any, columns: dict[str, Any]) -> Path:
    """A drawn panel's numbers, one row per frame (``frame`` then its columns), atomically."""
    import numpy as np

    table = np.column_stack([frames, *columns.values()])
    return write_csv_atomic(path, ["frame", *columns], [[int(r[0]), *r[1:]] for r in table])
