"""Strong, weak or silent: a cell's kind proposed from the micromotion scores of an analysis.

After ``micromotion analyze VIDEO --rois cells.json`` every accepted cell has, per method, a
score (the paper's correlation of prediction and calcium) and a p-value from circular-shift
surrogates.  A cell is

* ``strong``: significant (p < ``significance``) and score >= ``strong_score``;
* ``weak``: significant but below ``strong_score``;
* ``silent``: calcium-active but no significant motion.

The method is the one named, or (``auto``) the first of ``cnn3d, cnn1d, matched, flow,
bandpass`` the analysis ran, the networks being the most sensitive detectors in the paper.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import MicromotionError, check
from .candidate import Candidate

__all__ = ["KindRule", "propose_kinds", "read_scores", "scores_from_results", "METHOD_PREFERENCE"]

#: ``auto``: the first of these the analysis holds
METHOD_PREFERENCE = ("cnn3d", "cnn1d", "matched", "flow", "bandpass")


@dataclass(frozen=True)
class KindRule:
    """Thresholds of :func:`propose_kinds` (see the module docstring)."""

    method: str = "auto"
    significance: float = 0.05
    strong_score: float = 0.5


def read_scores(folder: str | os.PathLike) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {roi: (score, p_value)}}`` from an analysis output folder's ``roi_scores.csv``."""
    from ..layout import read_csv

    path = Path(folder) / "roi_scores.csv"
    check(path.is_file(), f"{folder} is not an analysis output folder (no roi_scores.csv).")
    header, rows = read_csv(path)
    need = ("roi", "method", "score", "p_value")
    check(all(k in header for k in need), f"{path} lacks the columns {', '.join(need)}.")
    col = {k: header.index(k) for k in need}
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        try:
            score, p = float(r[col["score"]]), float(r[col["p_value"]])
        except ValueError:
            continue
        out.setdefault(r[col["method"]], {})[r[col["roi"]]] = (score, p)
    return out


def scores_from_results(results: Any) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {roi: (score, p_value)}}`` from an analysis in memory (its ``roi_scores`` rows).

    The same table as :func:`read_scores` of the analysis' output folder; rows whose score
    and p-value are both missing are left out.

    Parameters
    ----------
    results
        A :class:`~napari_micromotion.results.Results` (anything with ``roi_scores`` rows
        having ``roi``, ``method``, ``score``, ``p_value``); ``None`` gives ``{}``.
    """
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for r in getattr(results, "roi_scores", None) or []:
        score, p = float(r.score), float(r.p_value)
        if math.isnan(score) and math.isnan(p):
            continue
        out.setdefault(str(r.method), {})[str(r.roi)] = (score, p)
    return out


def pick_method(scores: dict[str, dict[str, tuple[float, float]]], method: str = "auto") -> str:
    """The method whose scores type the cells (one sentence if it is not there)."""
    if method != "auto":
        check(method in scores, f"the analysis has no {method!r} scores; it has {', '.join(sorted(scores)) or 'none'}.")
        return method
    for m in METHOD_PREFERENCE:
        if m in scores:
            return m
    check(bool(scores), "the analysis holds no ROI scores.")
    return sorted(scores)[0]


def p_value_floor(results: Any) -> float | None:
    """The smallest p-value an analysis' ROI scores can have: ``1 / (1 + distinct time shifts)`` (``None``: unknown)."""
    from ..scoring import surrogates_of

    n = surrogates_of(results)
    return 1.0 / (1 + n) if n else None


def p_value_floor_of_folder(folder: str | os.PathLike) -> float | None:
    """:func:`p_value_floor` of an analysis output folder (from its ``run.json``; ``None`` when it cannot tell)."""
    from types import SimpleNamespace

    from ..results_io import params_from_dict, read_run_json

    try:
        run = read_run_json(Path(folder))
        v = run.get("validation_frames")
        params = params_from_dict(run.get("parameters", {}))
        fps = float((run.get("recording") or {}).get("fps") or 0)
    except (MicromotionError, TypeError, ValueError):
        return None
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v)):
        return None
    return p_value_floor(SimpleNamespace(validation=tuple(v), params=params, fps=fps))


def check_significance(significance: float, p_floor: float | None = None) -> None:
    """Refuse a significance level outside (0, 1), or one no p-value of the analysis can reach (*p_floor*)."""
    check(0 < significance < 1, f"the significance level must lie in (0, 1), got {significance}.")
    if p_floor is not None:
        check(p_floor < significance,
              f"no p-value of this analysis can be below {p_floor:.2g} (its validation frames fit too few time shifts), "
              f"so at p < {significance:g} every cell would be silent: raise the significance level above "
              f"{p_floor:.2g} or analyse with a longer validation range.")


def propose_kinds(cells: Sequence[Candidate], scores: dict[str, dict[str, tuple[float, float]]],
                  rule: KindRule = KindRule(), *, p_floor: float | None = None) -> dict[str, str]:
    """``{cell name: kind}`` for the *cells* the analysis scored (others are left out); sets ``cell.kind``.

    Parameters
    ----------
    cells
        Accepted cells (their names are the analysis' ROI names).
    scores
        :func:`read_scores` of the analysis.
    rule
        Method and thresholds.
    p_floor
        The smallest p-value the analysis could give (``1 / (1 + shifts)``); a significance level
        at or below it would type every cell silent, and is refused.
    """
    check_significance(rule.significance, p_floor)
    method = pick_method(scores, rule.method)
    table = scores[method]
    out: dict[str, str] = {}
    for c in cells:
        if c.name not in table:
            continue
        score, p = table[c.name]
        significant = math.isfinite(p) and p < rule.significance and math.isfinite(score)
        kind = ("strong" if score >= rule.strong_score else "weak") if significant else "silent"
        c.kind = kind
        out[c.name] = kind
    return out
