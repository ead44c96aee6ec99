"""Candidate extraction (issue 15): PCA/ICA for independent firing, segmentation for syncytia."""

import numpy as np
import pytest

from napari_micromotion.cells.candidates import CandidateParams, extract, iter_extract, match_cells
from napari_micromotion.errors import MicromotionError
from napari_micromotion.progress import Progress
from napari_micromotion.simulate import simulate


@pytest.fixture(scope="module")
def sync_sim():
    return simulate(n_frames=600, size=128, seed=1)


@pytest.fixture(scope="module")
def indep_sim():
    return simulate(n_frames=600, size=128, seed=1, firing="independent", inactive_cells=2)


def _whole_cells(sim):
    """Active cells with at least 30 % of the median cell area in the frame (not slivers at the edge)."""
    areas = np.bincount(sim.cell_labels.ravel())
    return sim.active_cells + 1, 0.3 * float(np.median(areas[1:]))


@pytest.fixture(scope="module")
def sync_auto(sync_sim):
    return extract(sync_sim.fluorescence, sync_sim.params.fps)


@pytest.fixture(scope="module")
def indep_auto(indep_sim):
    return extract(indep_sim.fluorescence, indep_sim.params.fps, CandidateParams(seed=3))


def test_auto_picks_segment_for_synchronous_and_ica_for_independent(sync_auto, indep_auto):
    assert sync_auto.method == "segment" and "fire together" in sync_auto.reason
    assert indep_auto.method == "ica" and "independently" in indep_auto.reason
    assert sync_auto.sync_index > 0.8 and indep_auto.sync_index < 0.3


def test_segment_recall_synchronous(sync_sim, sync_auto):
    ids, min_area = _whole_cells(sync_sim)
    recall, matches = match_cells(sync_auto.candidates, sync_sim.cell_labels, ids, min_area_px=min_area)
    assert recall >= 0.9
    assert all(iou >= 0.5 for _, iou in matches.values())


def test_ica_recall_independent(indep_sim, indep_auto):
    ids, min_area = _whole_cells(indep_sim)
    recall, _ = match_cells(indep_auto.candidates, indep_sim.cell_labels, ids, min_area_px=min_area)
    assert recall >= 0.8
    assert all(c.source == "ica" and c.footprint is not None and c.footprint.shape == c.submask.shape
               for c in indep_auto.candidates)


def test_candidates_are_named_ordered_and_traced(sync_sim, sync_auto):
    cands = sync_auto.candidates
    assert [c.name for c in cands] == [f"c{i:04d}" for i in range(1, len(cands) + 1)]
    cents = [c.centroid for c in cands]
    assert cents == sorted(cents)
    fl = sync_sim.fluorescence
    c = cands[len(cands) // 2]
    r0, c0, r1, c1 = c.box
    expected = fl[:, r0:r1, c0:c1][:, c.submask].astype(np.float64).mean(axis=1)
    assert c.trace.dtype == np.float32 and c.trace.shape == (fl.shape[0],)
    np.testing.assert_allclose(c.trace, expected, rtol=1e-5)
    assert sync_auto.mean_image.shape == fl.shape[1:] and sync_auto.mean_image.dtype == np.float32
    corr = sync_auto.correlation_image
    assert corr.dtype == np.float32 and np.nanmax(corr) <= 1.0001 and np.median(corr) > 0.5
    assert set(sync_auto.timings_s) >= {"statistics", "candidates", "traces", "total"}


def test_deterministic_per_seed(sync_sim, indep_sim, indep_auto):
    a = extract(sync_sim.fluorescence, 50.0, CandidateParams(method="segment"))
    b = extract(sync_sim.fluorescence, 50.0, CandidateParams(method="segment"))
    assert [x.box for x in a.candidates] == [x.box for x in b.candidates]
    again = extract(indep_sim.fluorescence, 50.0, CandidateParams(seed=3, method="ica"))
    assert [x.name for x in again.candidates] == [x.name for x in indep_auto.candidates]
    for x, y in zip(again.candidates, indep_auto.candidates):
        assert x.box == y.box and np.array_equal(x.submask, y.submask)
        np.testing.assert_array_equal(x.trace, y.trace)


def test_brightfield_segmentation_is_reported(sync_sim):
    still = sync_sim.transmission[:20]
    ex = extract(sync_sim.fluorescence, 50.0, CandidateParams(method="segment"), transmission=still)
    assert "brightfield" in ex.reason and {c.source for c in ex.candidates} == {"brightfield"}
    ids, min_area = _whole_cells(sync_sim)
    assert match_cells(ex.candidates, sync_sim.cell_labels, ids, min_area_px=min_area)[0] >= 0.85


def test_iter_extract_yields_progress(sync_sim):
    gen = iter_extract(sync_sim.fluorescence[:100], 50.0, CandidateParams(method="segment", diameter_px=28))
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert events and all(isinstance(e, Progress) and 0 <= e.fraction <= 1 for e in events)
    assert result.diameter_px == 28 and result.candidates


def _fragments(ex, labels):
    """Candidates that lie inside one cell (purity > 0.85) but cover less than half of it."""
    areas = np.bincount(labels.ravel())
    out = 0
    for c in ex.candidates:
        ids, counts = np.unique(labels[c.mask(labels.shape)], return_counts=True)
        j = int(np.argmax(counts))
        out += bool(ids[j] and counts[j] > 0.85 * counts.sum() and counts[j] < 0.5 * areas[ids[j]])
    return out


def test_merging_weak_boundaries_removes_fragments(sync_sim, sync_auto):
    split = extract(sync_sim.fluorescence, sync_sim.params.fps, CandidateParams(merge_level=0.0))
    ids, min_area = _whole_cells(sync_sim)
    assert _fragments(split, sync_sim.cell_labels) >= 3                  # the watershed alone splits cells
    assert _fragments(sync_auto, sync_sim.cell_labels) <= _fragments(split, sync_sim.cell_labels) - 3
    assert (match_cells(sync_auto.candidates, sync_sim.cell_labels, ids, min_area_px=min_area)[0]
            >= match_cells(split.candidates, sync_sim.cell_labels, ids, min_area_px=min_area)[0])


def test_merge_basins_follows_the_weakest_part_of_a_boundary():
    from napari_micromotion.cells.candidates import _merge_basins

    lab = np.ones((40, 60), np.int32)
    lab[:, 20:40], lab[:, 40:] = 2, 3
    edges = 1.0 + 0.1 * np.random.default_rng(0).random(lab.shape)
    edges[:24, 19:21] = 10.0          # 1 | 2: a nucleus-like edge along 60 % of the boundary, flat below
    edges[:, 39:41] = 10.0            # 2 | 3: a membrane along all of it
    merged = _merge_basins(lab, edges, level=2.0, max_area_px=np.inf)
    assert len(np.unique(merged)) == 2
    assert np.all(merged[:, :40] == merged[0, 0]) and np.all(merged[:, 40:] != merged[0, 0])
    assert merged.min() == 1 and merged.max() == 2
    capped = _merge_basins(lab, edges, level=2.0, max_area_px=1000)   # 800 + 800 px would exceed it
    assert len(np.unique(capped)) == 3
    np.testing.assert_array_equal(_merge_basins(lab, edges, level=20.0, max_area_px=np.inf), 1)
    # a weak boundary between two cells of different dye loading (brightness 2 % apart) stays
    bright = np.where(lab == 1, 1.0, 1.02)
    kept = _merge_basins(lab, edges, level=20.0, max_area_px=np.inf, images=[bright], tolerance=0.015)
    assert len(np.unique(kept)) == 2 and kept[0, 0] != kept[0, 25] and kept[0, 25] == kept[0, 45]
    assert len(np.unique(_merge_basins(lab, edges, level=20.0, max_area_px=np.inf, images=[bright],
                                       tolerance=0.03))) == 1


def test_match_cells_perfect_and_partial():
    from napari_micromotion.cells.candidate import Candidate

    labels = np.zeros((20, 20), np.int32)
    labels[:, :10], labels[:, 10:] = 1, 2
    whole = Candidate("a", (0, 0, 20, 10), np.ones((20, 10), bool), np.zeros(3))
    third = Candidate("b", (0, 10, 20, 13), np.ones((20, 3), bool), np.zeros(3))
    recall, matches = match_cells([whole, third], labels)
    assert recall == 0.5 and matches == {1: ("a", 1.0)}
    assert match_cells([whole], labels, [1])[0] == 1.0
    assert match_cells([third], labels, [2], min_iou=0.25)[0] == 1.0


@pytest.mark.parametrize("movie, fps, message", [
    (np.zeros((30, 32), np.uint16), 50.0, "must be 3D"),
    (np.zeros((10, 32, 32), np.uint16), 50.0, "at least 20 frames"),
    (np.zeros((30, 32, 32), np.uint16), 0.0, "fps must be positive"),
    (np.zeros((30, 32, 32), np.uint16), float("nan"), "fps must be positive"),
])
def test_bad_input(movie, fps, message):
    with pytest.raises(MicromotionError, match=message):
        extract(movie, fps)


def test_bad_params():
    movie = np.zeros((30, 32, 32), np.uint16)
    with pytest.raises(MicromotionError, match="candidate method"):
        extract(movie, 50.0, CandidateParams(method="nmf"))
    with pytest.raises(MicromotionError, match="mu must be between"):
        extract(movie, 50.0, CandidateParams(mu=2.0))
    # a diameter the frame cannot hold: one sentence, not a failure deep in the binning or the PCA
    noisy = np.random.default_rng(0).poisson(50, (30, 32, 32)).astype(np.uint16)
    for d in (33.0, 400.0, 1000.0):
        with pytest.raises(MicromotionError, match=f"cell diameter of {d:.0f} px is larger than the 32 x 32 px"):
            extract(noisy, 50.0, CandidateParams(diameter_px=d))
    assert extract(noisy, 50.0, CandidateParams(diameter_px=32.0)).diameter_px == 32.0   # one cell filling the frame


def test_smallest_area_above_largest_is_refused():
    with pytest.raises(MicromotionError, match="smallest candidate area"):
        extract(np.zeros((30, 32, 32), np.uint16), 50.0, CandidateParams(min_area_px=100.0, max_area_px=10.0))
