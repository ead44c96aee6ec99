"""Evaluation: R^2 bookkeeping, the classical baseline, and the shipped model against a trivial baseline."""

import math

import numpy as np
import pytest

from napari_micromotion.blurflow.evaluate import (
    TABLE1,
    EvaluationParams,
    evaluate_blur_flow,
    structure_tensor_baseline,
)
from napari_micromotion.blurflow.metrics import R2Accumulator, pearson_r2, r2_scores
from napari_micromotion.blurflow.predict import load_default_model
from napari_micromotion.blurflow.synth import two_zone_sample


def test_pearson_r2_and_accumulator():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    assert pearson_r2(x, 3 * x + 2) == pytest.approx(1.0)
    assert pearson_r2(x, rng.normal(size=1000)) < 0.02
    assert math.isnan(pearson_r2(x, np.ones(1000)))
    truth = np.zeros((5, 8, 8), np.float32)
    truth[0, :, :4], truth[1, :, :4], truth[2, :, :4], truth[3, :, :4] = 0.5, -0.3, 0.2, 0.1
    truth[0, :, 4:], truth[1, :, 4:], truth[2, :, 4:], truth[3, :, 4:] = -0.1, 0.9, 0.7, 0.6
    truth[4] = 1
    perfect = truth.copy()
    perfect[:2] *= -1                       # the opposite sign is the same blur
    s = r2_scores(perfect[None], truth[None])
    assert s["mean"] == pytest.approx(1.0) and s["mean_axis"] == pytest.approx(1.0)
    acc = R2Accumulator()
    acc.add(truth, truth, mask=np.zeros((8, 8), bool))
    assert acc.n_pixels == 0 and math.isnan(acc.scores()["mean"])


def test_structure_tensor_baseline_sees_the_blur_axis():
    s = two_zone_sample(0, 3, 128)
    b = structure_tensor_baseline(s.image)
    assert b.shape == (5, 128, 128) and np.isfinite(b).all()


@pytest.fixture(scope="module")
def shipped():
    return load_default_model()


def test_shipped_model_beats_trivial_and_classical_baselines(shipped):
    # 12 two-zone test images (stream disjoint from training); the full 1000-image run is the benchmark
    rep = evaluate_blur_flow(shipped, EvaluationParams(n_two_zone=12, size_px=160, n_cylinder=1, n_held_out=2,
                                                       seed=0))
    ours = rep.two_zone["mean"]
    base = rep.baseline["two_zone"]["mean"]
    # a constant prediction scores R^2 = 0, the structure-tensor baseline ~0.1; the shipped model
    # is still far from the paper's 0.92 (0.29 on 1000 images; see docs/blurflow.md)
    assert ours > 0.1, rep.two_zone
    assert ours > base, (ours, base)
    assert rep.two_zone["r2"]["z0"] > 0.2
    assert rep.failure["textured_predicted_valid"] > 0.7
    assert len(rep.table1) == len(TABLE1) and all(len(r["beads"]) == 4 for r in rep.table1)
