"""Scores of a blur-flow prediction against ground truth (the paper's R^2, Section 3).

The paper's metric is the squared Pearson correlation ``R^2`` between predicted
and true parameters, averaged over the parameters, pooled over all pixels of all
test images.  Because the sign of a lateral blur cannot be seen
(:mod:`~napari_micromotion.blurflow.model`), three variants are reported:

``mean`` (headline, compared with the paper's 0.92 / 0.91)
    over ``|v1|, |v2|, v3, z0``: exactly the quantities the paper's loss (Eq. 6)
    compares;
``mean_signed``
    over ``v1, v2, v3, z0`` with both truth and prediction in the reported sign
    convention (``v2 >= 0``): also checks the axis (``/`` vs ``\\``), but a motion
    near the y axis may flip sign between truth and prediction;
``mean_axis``
    over the doubled-angle axis vector ``(a, b)`` and ``v3, z0``: sign-free, keeps
    the axis, no wrap-around.

Pixels are scored where the true validity ``w`` is 1 (elsewhere the motion is
not defined by the image); components whose truth is constant over the scored
pixels (e.g. ``z0`` in the cylinder test) are reported as NaN and left out of
the means.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .model import canonical_lateral, encode_targets

__all__ = ["R2Accumulator", "pearson_r2", "r2_scores"]


def pearson_r2(x: np.ndarray, y: np.ndarray) -> float:
    """Squared Pearson correlation of two equally long vectors (NaN if either is constant)."""
    acc = _Moments()
    acc.add(np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel())
    return acc.r2()


class _Moments:
    __slots__ = ("n", "sse", "sx", "sxx", "sxy", "sy", "syy")

    def __init__(self) -> None:
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = self.sse = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.n += x.size
        self.sx += float(x.sum())
        self.sy += float(y.sum())
        self.sxx += float((x * x).sum())
        self.syy += float((y * y).sum())
        self.sxy += float((x * y).sum())
        self.sse += float(((x - y) ** 2).sum())

    def r2(self) -> float:
        if self.n < 2:
            return float("nan")
        vx = self.sxx - self.sx ** 2 / self.n
        vy = self.syy - self.sy ** 2 / self.n
        if vx <= 1e-12 * max(self.sxx, 1e-300) or vy <= 1e-12 * max(self.syy, 1e-300):
            return float("nan")
        cov = self.sxy - self.sx * self.sy / self.n
        return float(cov * cov / (vx * vy))

    def rmse(self) -> float:
        return math.sqrt(self.sse / self.n) if self.n else float("nan")


_COMPONENTS = ("v1", "v2", "|v1|", "|v2|", "a", "b", "v3", "z0")
_MEANS = {"mean": ("|v1|", "|v2|", "v3", "z0"), "mean_signed": ("v1", "v2", "v3", "z0"),
          "mean_axis": ("a", "b", "v3", "z0")}


class R2Accumulator:
    """Pooled R^2 (and RMSE) of every component over many images, one image at a time (bounded memory)."""

    def __init__(self) -> None:
        self._m = {c: _Moments() for c in _COMPONENTS}
        self.n_pixels = 0
        self.n_total = 0

    def add(self, pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one prediction ``(5, Y, X)`` (decoded: v1, v2, v3, z0, validity) and its truth ``(5, Y, X)``."""
        pred = np.asarray(pred, np.float64)
        truth = np.asarray(truth, np.float64)
        sel = (truth[4] > 0.5) if mask is None else np.asarray(mask, bool)
        self.n_total += sel.size
        if not sel.any():
            return
        self.n_pixels += int(sel.sum())
        t1, t2 = canonical_lateral(truth[0], truth[1])
        p1, p2 = pred[0], pred[1]
        ta = encode_targets(truth[None])[0]
        pa = encode_targets(pred[None])[0]
        pairs = {
            "v1": (t1, p1), "v2": (t2, p2), "|v1|": (np.abs(truth[0]), np.abs(p1)),
            "|v2|": (np.abs(truth[1]), np.abs(p2)), "a": (ta[0], pa[0]), "b": (ta[1], pa[1]),
            "v3": (truth[2], pred[2]), "z0": (truth[3], pred[3]),
        }
        for c, (t, p) in pairs.items():
            self._m[c].add(np.asarray(t, np.float64)[sel], np.asarray(p, np.float64)[sel])

    def scores(self) -> dict[str, Any]:
        """``{"r2": {component: R^2}, "rmse": {...}, "mean", "mean_signed", "mean_axis", "scored_fraction"}``."""
        r2 = {c: self._m[c].r2() for c in _COMPONENTS}
        out: dict[str, Any] = {"r2": r2, "rmse": {c: self._m[c].rmse() for c in _COMPONENTS}}
        for name, comps in _MEANS.items():
            vals = [r2[c] for c in comps if math.isfinite(r2[c])]
            out[name] = float(np.mean(vals)) if vals else float("nan")
        out["scored_fraction"] = self.n_pixels / self.n_total if self.n_total else float("nan")
        return out


def r2_scores(preds: np.ndarray, truths: np.ndarray) -> dict[str, Any]:
    """Pooled scores of ``(N, 5, Y, X)`` predictions against ``(N, 5, Y, X)`` truths (see the module docstring)."""
    acc = R2Accumulator()
    for p, t in zip(preds, truths):
        acc.add(p, t)
    return acc.scores()
