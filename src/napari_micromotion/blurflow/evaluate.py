"""The paper's evaluation of blur flow (Shajkofci & Liebling, Section 3 and Table 1), on synthetic data.

* **two-zone test** (Section 3.1, Fig. 2): ``n`` 224 x 224 images, each blurred by
  two random PSFs in two zones; pooled R^2 per component (paper: 0.92 averaged);
* **cylinder flow** (Section 3.2, Figs. 3-4): a gradient of PSFs, lateral motion
  largest at the bottom, axial at the top (paper: 0.91);
* **held-out photographs**: the two-zone test on scikit-image pictures never
  used in training (a cross-data-set check, as the paper tested on HeLa images
  after training on Places);
* **axial vs lateral error** (Section 4: the axial component has the larger error);
* **Table 1** a-e: fixed ``(v1, v2, v3, z0)`` on a bead image and on a textured
  image, our median prediction beside the paper's;
* **failure analysis**: validity map against the true texture map, scores where
  the network says valid / invalid, near zone borders, by light level;
* a **classical baseline** (structure tensor and sharpness, no learning) scored
  the same way, so the network's numbers have a floor to be read against.

Test images come from random streams disjoint from the training stream
(:mod:`~napari_micromotion.blurflow.synth`).  Scores use the conventions of
:mod:`~napari_micromotion.blurflow.metrics`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import check
from ..progress import Progress, drive
from .metrics import R2Accumulator
from .model import TrainedBlurFlow, canonical_lateral
from .predict import BlurFlowParams, iter_predict_blur_flow
from .psf import psf_bank
from .synth import (
    STREAM_TABLE1,
    SynthParams,
    bead_image,
    cylinder_sample,
    held_out_sample,
    margin_px,
    stream_rng,
    texture,
    two_zone_sample,
    uniform_sample,
)

__all__ = [
    "PAPER",
    "TABLE1",
    "EvaluationParams",
    "EvaluationReport",
    "evaluate_blur_flow",
    "iter_evaluate_blur_flow",
    "predict_normalised",
    "structure_tensor_baseline",
]

#: the paper's numbers
PAPER = {"two_zone_r2": 0.92, "cylinder_r2": 0.91, "n_two_zone": 1000, "size_px": 224}
#: Table 1: case -> (truth (v1, v2, v3, z0), the paper's prediction)
TABLE1 = {
    "a": ((0.30, 0.30, 0.00, 0.00), (0.38, 0.31, 0.01, 0.05)),
    "b": ((0.30, 0.30, 0.80, 0.00), (0.35, 0.29, 0.71, 0.08)),
    "c": ((0.30, 0.30, 0.80, 0.30), (0.35, 0.31, 0.77, 0.41)),
    "d": ((-0.30, 0.60, 0.80, 0.10), (-0.28, 0.51, 0.96, 0.15)),
    "e": ((0.00, 0.40, 1.20, 0.00), (0.10, 0.35, 0.98, 0.06)),
}


@dataclass(frozen=True)
class EvaluationParams:
    """Size of the evaluation (defaults: the paper's 1000 two-zone images)."""

    n_two_zone: int = field(default=1000, metadata={
        "label": "two-zone images", "unit": "images", "help": "Images in the two-zone test (the paper: 1000)."})
    size_px: int = field(default=224, metadata={
        "label": "test image size", "unit": "px", "help": "Side of the square test images (the paper: 224)."})
    n_cylinder: int = field(default=50, metadata={
        "label": "cylinder images", "unit": "images", "help": "Images in the cylinder-flow test."})
    n_held_out: int = field(default=100, metadata={
        "label": "held-out photo images", "unit": "images",
        "help": "Two-zone images on photographs never used in training."})
    baseline: bool = field(default=True, metadata={
        "label": "classical baseline", "unit": "", "help": "Also score the structure-tensor baseline."})
    seed: int = field(default=0, metadata={
        "label": "seed", "unit": "", "help": "Seed of the test streams (disjoint from training whatever its value)."})

    def validate(self) -> None:
        check(self.n_two_zone >= 1 and self.n_cylinder >= 0 and self.n_held_out >= 0,
              "the evaluation needs at least one two-zone image.")
        check(64 <= self.size_px <= 2048, f"test images must be 64-2048 px, got {self.size_px!r}.")


@dataclass
class EvaluationReport:
    """All numbers of :func:`evaluate_blur_flow` (plain dicts, JSON-ready)."""

    params: dict[str, Any]
    two_zone: dict[str, Any]
    cylinder: dict[str, Any]
    held_out: dict[str, Any]
    axial_vs_lateral: dict[str, Any]
    table1: list[dict[str, Any]]
    failure: dict[str, Any]
    baseline: dict[str, Any]
    seconds: float = 0.0
    predict_seconds_per_image: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_normalised(model: TrainedBlurFlow, image: np.ndarray) -> np.ndarray:
    """``(5, Y, X)`` prediction in the paper's normalised units (lateral / blur_px_per_unit)."""
    return drive(iter_predict_blur_flow(image, model, BlurFlowParams())).normalised


# ---------------------------------------------------------------- classical baseline
def structure_tensor_baseline(image: np.ndarray, sigma_px: float = 6.0) -> np.ndarray:
    """A learning-free stand-in for the network, ``(5, Y, X)`` like a prediction (arbitrary scale).

    Lateral: a straight blur removes gradients along its axis, so the eigenvector
    of the smallest eigenvalue of the local structure tensor (Gaussian window
    *sigma_px*) gives the axis and the coherence ``(l1 - l2) / (l1 + l2)`` grows with
    the blur length.  Axial / depth: defocus removes fine detail isotropically, so
    the ratio of coarse to fine gradient energy serves for both ``v3`` and ``z0``.
    R^2 is invariant to the scale and offset of a prediction, so these proxies need
    no calibration.
    """
    from .model import normalise_image

    x = normalise_image(image).astype(np.float64)
    gy = ndimage.sobel(x, 0)
    gx = ndimage.sobel(x, 1)
    jyy = ndimage.gaussian_filter(gy * gy, sigma_px)
    jxx = ndimage.gaussian_filter(gx * gx, sigma_px)
    jxy = ndimage.gaussian_filter(gx * gy, sigma_px)
    tr = jxx + jyy + 1e-12
    diff = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2)
    coherence = diff / tr
    # dominant gradient direction (largest eigenvalue) -> blur axis is perpendicular to it
    grad_angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)          # from x towards y
    axis = grad_angle + np.pi / 2
    v1, v2 = coherence * np.sin(axis), coherence * np.cos(axis)
    v1, v2 = canonical_lateral(v1, v2)
    fine = ndimage.gaussian_filter(ndimage.laplace(x) ** 2, sigma_px)
    coarse = ndimage.gaussian_filter(ndimage.laplace(ndimage.gaussian_filter(x, 2.0)) ** 2, sigma_px)
    defocus = np.log((coarse + 1e-9) / (fine + 1e-9))
    valid = np.clip(tr / (np.median(tr) + 1e-12), 0, 1)
    return np.stack([v1, v2, defocus, defocus, valid]).astype(np.float32)


# ---------------------------------------------------------------- helpers
def _border_distance(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    if not edge.any():
        return np.full(labels.shape, np.inf)
    return ndimage.distance_transform_edt(~edge)


def _table1_image(kind: str, size_px: int, synth: SynthParams, seed: int) -> np.ndarray:
    m = margin_px(psf_bank(synth.optics))
    shape = (size_px + 2 * m, size_px + 2 * m)
    rng = stream_rng(seed, STREAM_TABLE1, 1 if kind == "beads" else 2)
    if kind == "beads":
        return bead_image(rng, shape, n_beads=int(size_px * size_px / 1200))
    return texture(rng, shape, "cells")


def _median_where(pred: np.ndarray, mask: np.ndarray) -> list[float]:
    if not mask.any():
        return [float("nan")] * 4
    return [float(np.median(pred[c][mask])) for c in range(4)]


# ---------------------------------------------------------------- the evaluation
def iter_evaluate_blur_flow(model: TrainedBlurFlow, params: EvaluationParams = EvaluationParams(),
                            synth: SynthParams | None = None) -> Generator[Progress, None, EvaluationReport]:
    """Run the whole evaluation; a generator of :class:`Progress` returning an :class:`EvaluationReport`."""
    params.validate()
    synth = synth or SynthParams(optics=model.optics)
    t_start = time.perf_counter()
    n, size = params.n_two_zone, params.size_px

    # --- two-zone test + failure analysis
    acc, acc_base = R2Accumulator(), R2Accumulator()
    acc_pred_valid, acc_pred_invalid = R2Accumulator(), R2Accumulator()
    acc_near, acc_far = R2Accumulator(), R2Accumulator()
    by_family: dict[str, R2Accumulator] = {}
    by_light = {k: R2Accumulator() for k in ("dim", "medium", "bright")}
    confusion = np.zeros((2, 2), dtype=np.int64)       # [true w][predicted valid]
    textureless_validity: list[float] = []
    predict_time = 0.0
    for k in range(n):
        s = two_zone_sample(params.seed, k, size, synth)
        t0 = time.perf_counter()
        pred = predict_normalised(model, s.image)
        predict_time += time.perf_counter() - t0
        acc.add(pred, s.truth)
        if params.baseline:
            acc_base.add(structure_tensor_baseline(s.image), s.truth)
        w_true = s.truth[4] > 0.5
        w_pred = pred[4] > 0.5
        for a in (0, 1):
            for b in (0, 1):
                confusion[a, b] += int(np.sum((w_true == bool(a)) & (w_pred == bool(b))))
        if (~w_true).any():
            textureless_validity.append(float(pred[4][~w_true].mean()))
        acc_pred_valid.add(pred, s.truth, w_true & w_pred)
        acc_pred_invalid.add(pred, s.truth, w_true & ~w_pred)
        dist = _border_distance(s.labels)
        acc_near.add(pred, s.truth, w_true & (dist < 10))
        acc_far.add(pred, s.truth, w_true & (dist >= 10))
        by_family.setdefault(s.family, R2Accumulator()).add(pred, s.truth)
        level = float(np.percentile(s.image, 99))
        by_light["dim" if level < 50 else "medium" if level < 500 else "bright"].add(pred, s.truth)
        if (k + 1) % 10 == 0 or k + 1 == n:
            yield Progress("evaluate two-zone", (k + 1) / n, f"{k + 1}/{n} images, R^2 {acc.scores()['mean']:.3f}")
    two_zone = acc.scores()
    two_zone["n_images"] = n
    two_zone["paper_mean"] = PAPER["two_zone_r2"]
    baseline = {"two_zone": acc_base.scores()} if params.baseline else {}

    # --- cylinder flow
    acc_cyl, acc_cyl_base = R2Accumulator(), R2Accumulator()
    profile_rows: list[np.ndarray] = []
    truth_rows = None
    for k in range(params.n_cylinder):
        s = cylinder_sample(params.seed, k, size, synth)
        pred = predict_normalised(model, s.image)
        acc_cyl.add(pred, s.truth)
        if params.baseline:
            acc_cyl_base.add(structure_tensor_baseline(s.image), s.truth)
        w = s.truth[4] > 0.5
        with np.errstate(invalid="ignore"):
            lat = np.where(w, np.hypot(pred[0], pred[1]), np.nan)
            ax = np.where(w, pred[2], np.nan)
        profile_rows.append(np.stack([np.nanmean(lat, axis=1), np.nanmean(ax, axis=1)]))
        if truth_rows is None:
            truth_rows = np.stack([np.hypot(s.truth[0], s.truth[1])[:, 0], s.truth[2][:, 0]])
        yield Progress("evaluate cylinder", (k + 1) / max(params.n_cylinder, 1), f"{k + 1}/{params.n_cylinder}")
    cylinder = acc_cyl.scores() if params.n_cylinder else {}
    if params.n_cylinder:
        prof = np.nanmean(np.stack(profile_rows), axis=0)
        step = max(1, size // 8)
        cylinder["profile_rows"] = list(range(0, size, step))
        cylinder["profile_true_lateral"] = truth_rows[0, ::step].round(3).tolist()
        cylinder["profile_pred_lateral"] = prof[0, ::step].round(3).tolist()
        cylinder["profile_true_axial"] = truth_rows[1, ::step].round(3).tolist()
        cylinder["profile_pred_axial"] = prof[1, ::step].round(3).tolist()
        cylinder["n_images"] = params.n_cylinder
        cylinder["paper_mean"] = PAPER["cylinder_r2"]
        if params.baseline:
            baseline["cylinder"] = acc_cyl_base.scores()

    # --- held-out photographs
    acc_held = R2Accumulator()
    for k in range(params.n_held_out):
        s = held_out_sample(params.seed, k, size, synth)
        acc_held.add(predict_normalised(model, s.image), s.truth)
        if (k + 1) % 10 == 0 or k + 1 == params.n_held_out:
            yield Progress("evaluate held-out photos", (k + 1) / params.n_held_out, f"{k + 1}/{params.n_held_out}")
    held_out = acc_held.scores() if params.n_held_out else {}

    # --- axial vs lateral
    rm, r2 = two_zone["rmse"], two_zone["r2"]
    axial_vs_lateral = {
        "rmse_lateral": float(np.mean([rm["|v1|"], rm["|v2|"]])), "rmse_axial_v3": rm["v3"], "rmse_z0": rm["z0"],
        "r2_lateral": float(np.mean([r2["|v1|"], r2["|v2|"]])), "r2_axial_v3": r2["v3"], "r2_z0": r2["z0"],
        "axial_error_larger": bool(rm["v3"] > np.mean([rm["|v1|"], rm["|v2|"]])),
        "note": "RMSE in normalised units; |v1|, |v2| are uniform on [0, 1] and v3, z0 on [0, 1], so their "
                "spreads are equal and the errors comparable",
    }

    # --- Table 1
    table1 = []
    for case, (truth, paper_pred) in TABLE1.items():
        row: dict[str, Any] = {"case": case, "truth": list(truth), "paper": list(paper_pred)}
        for kind in ("beads", "texture"):
            obj = _table1_image(kind, size, synth, params.seed)
            s = uniform_sample(obj, truth, synth, seed=params.seed, photons=3000.0 if kind == "beads" else 2000.0,
                               beta=0.8, background=0.01, family=kind)
            pred = predict_normalised(model, s.image)
            w = s.truth[4] > 0.5
            med = _median_where(pred, w)
            v1c, v2c = canonical_lateral(np.float32(med[0]), np.float32(med[1]))
            row[kind] = [round(float(v1c), 3), round(float(v2c), 3), round(med[2], 3), round(med[3], 3)]
            row[f"{kind}_valid_fraction_true"] = round(float(w.mean()), 3)
            row[f"{kind}_valid_fraction_pred"] = round(float((pred[4] > 0.5).mean()), 3)
        table1.append(row)
        yield Progress("evaluate Table 1", len(table1) / len(TABLE1), f"case {case}")

    tot = confusion.sum()
    failure = {
        "validity_accuracy": float((confusion[0, 0] + confusion[1, 1]) / tot) if tot else float("nan"),
        "true_textured_fraction": float(confusion[1].sum() / tot) if tot else float("nan"),
        "textured_predicted_valid": float(confusion[1, 1] / max(confusion[1].sum(), 1)),
        "textureless_predicted_valid": float(confusion[0, 1] / max(confusion[0].sum(), 1)),
        "mean_validity_on_textureless": float(np.mean(textureless_validity)) if textureless_validity else float("nan"),
        "r2_where_predicted_valid": acc_pred_valid.scores()["mean"],
        "r2_where_predicted_invalid": acc_pred_invalid.scores()["mean"],
        "fraction_textured_predicted_invalid": float(confusion[1, 0] / max(confusion[1].sum(), 1)),
        "r2_near_zone_border_lt10px": acc_near.scores()["mean"],
        "r2_far_from_border": acc_far.scores()["mean"],
        "r2_by_family": {f: a.scores()["mean"] for f, a in by_family.items()},
        "r2_by_light_p99_counts": {k: a.scores()["mean"] for k, a in by_light.items() if a.n_pixels},
    }
    return EvaluationReport(params=asdict(params), two_zone=two_zone, cylinder=cylinder, held_out=held_out,
                            axial_vs_lateral=axial_vs_lateral, table1=table1, failure=failure, baseline=baseline,
                            seconds=time.perf_counter() - t_start, predict_seconds_per_image=predict_time / n)


def evaluate_blur_flow(model: TrainedBlurFlow, params: EvaluationParams = EvaluationParams(), *,
                       synth: SynthParams | None = None,
                       progress: Callable[[Progress], None] | None = None) -> EvaluationReport:
    """Synchronous :func:`iter_evaluate_blur_flow`."""
    return drive(iter_evaluate_blur_flow(model, params, synth), progress=progress)


def _fmt(x: float) -> str:
    return "  nan" if not (isinstance(x, float) and math.isfinite(x)) else f"{x:5.3f}"
