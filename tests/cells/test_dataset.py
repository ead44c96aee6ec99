"""Simulator-labelled training candidates: kinds, cells cut by the frame's edge, the extraction's own candidates."""

from __future__ import annotations

import numpy as np
import pytest

from napari_micromotion.cells.candidates import mask_iou
from napari_micromotion.cells.dataset import (
    EXTRACTION_VARIANTS,
    NEGATIVE_KINDS,
    encode_recording,
    iter_recording,
    iter_training_set,
    make_candidates,
    simulate_recording,
)
from napari_micromotion.cells.encode import encode, patch_scale
from napari_micromotion.progress import drive

SIZE, SEED, FRAMES = 112, 4321, 600


@pytest.fixture(scope="module")
def sim():
    return simulate_recording(SIZE, SEED, FRAMES, firing="independent", inactive_cells=2)


@pytest.fixture(scope="module")
def built():
    """The recording with every extraction, made as a one-recording training set; and its progress."""
    events = []
    recs = drive(iter_training_set([SEED], [SIZE], [FRAMES], firing="independent", inactive_cells=2,
                                   extracted=len(EXTRACTION_VARIANTS)), progress=events.append)
    return recs[0], events


@pytest.fixture(scope="module")
def rec(built):
    return built[0]


def test_training_set_progress_never_steps_back(built):
    # the rendering and each extraction's stages (statistics, candidates, traces) each count from 0
    fractions = [e.fraction for e in built[1] if e.stage == "training set"]
    assert len(fractions) > 20 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))
    # spread over the run: the rendering fills the first half, the extractions the second
    assert fractions[0] < 0.5 and any(0.2 < f < 0.5 for f in fractions) and any(0.6 < f < 0.95 for f in fractions)


def test_cells_cut_by_the_frame_edge_are_cells(sim):
    masks, kinds = make_candidates(sim, np.random.default_rng(0))
    labels = sim.labels
    area = np.bincount(labels.ravel())
    typical = float(np.median(area))
    active = (sim.calcium.max(axis=1) > 0) & (sim.loading > 0)
    slivers = [c for c in range(area.size) if active[c] and 0.15 * typical <= area[c] < 0.3 * typical]
    assert slivers, "this layout should have active cells cut by the frame's edge"
    cell_masks = [m for m, k in zip(masks, kinds) if k == "cell"]
    for c in slivers:   # each sliver is one of the cells (a perturbed copy of its mask)
        assert max(mask_iou(m, labels == c) for m in cell_masks) >= 0.5, c
    assert set(kinds) <= {"cell", *NEGATIVE_KINDS}
    assert 1.5 <= (len(kinds) - kinds.count("cell")) / kinds.count("cell") <= 2.5


def test_extracted_candidates_are_labelled_by_the_truth(sim, rec):
    ext = rec.extracted
    assert ext.sum() >= 10 and (~ext).sum() >= 10
    assert rec.info["n_extracted"] == int(ext.sum())
    active = np.flatnonzero((sim.calcium.max(axis=1) > 0) & (sim.loading > 0))
    truth = [sim.labels == c for c in active]
    n_cells = 0
    for c, kind in zip(np.array(rec.candidates)[ext], np.array(rec.kinds)[ext]):
        assert c.source in ("ica", "segment") and c.trace.size == FRAMES
        best = max(mask_iou(c.mask(sim.labels.shape), t) for t in truth)
        if kind == "cell":
            n_cells += 1
            assert c.label == "cell" and best >= 0.5
        else:
            assert kind == "unmatched" and c.label == "not_cell"
    assert n_cells >= 0.5 * len(active)
    # every variant of the extraction contributed (both methods, three diameters), without duplicates
    variants = {c.name.split("_")[1] for c in np.array(rec.candidates)[ext]}
    assert variants == {f"x{v}" for v in range(len(EXTRACTION_VARIANTS))}
    assert {c.source for c in np.array(rec.candidates)[ext]} == {"ica", "segment"}
    masks = [c.mask(sim.labels.shape) for c in np.array(rec.candidates)[ext]]
    assert max(mask_iou(a, b) for i, a in enumerate(masks) for b in masks[:i]) < 0.9
    # the patches' zoom is the extraction's estimate of the cell size, near the simulator's
    assert 0.75 <= rec.info["estimated_diameter_px"] / rec.info["cell_diameter_px"] <= 1.1


def test_one_extraction_is_the_tools_default():
    one = drive(iter_recording(SIZE, SEED, FRAMES, firing="independent", inactive_cells=2, extracted=True))
    names = [c.name for c in one.candidates if c.source != "synthetic"]
    assert names and all(n.split("_")[1] == "x0" for n in names)
    assert {c.source for c in one.candidates if c.source != "synthetic"} == {"ica"}   # auto picks ica here


def test_encode_recording_zooms_by_the_estimate_and_jitters(rec):
    d = rec.info["estimated_diameter_px"]
    plain = encode_recording(rec, "middle", reference_cell_px=24.0)
    ref = encode(rec.candidates, rec.image, "middle", scale=patch_scale(d, 24.0))
    np.testing.assert_allclose(plain, ref, atol=1e-6)
    jit = encode_recording(rec, "middle", reference_cell_px=24.0, scale_jitter=0.15, seed=3)
    np.testing.assert_array_equal(jit[:, 1], plain[:, 1])          # the traces never change
    changed = np.abs(jit[:, 0] - plain[:, 0]).max(axis=(1, 2)) > 1e-3
    assert 0.5 <= changed.mean() <= 0.95                             # 4 of 5 zoom levels differ from 1
    np.testing.assert_array_equal(jit, encode_recording(rec, "middle", reference_cell_px=24.0, scale_jitter=0.15,
                                                        seed=3))
