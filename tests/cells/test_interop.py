"""suite2p and ImageJ round trips of candidates; the allow-list unpickler refuses code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from napari_micromotion.cells.candidate import Candidate, mask_polygon
from napari_micromotion.cells.interop import read_imagej, read_suite2p, suite2p_stat, write_imagej, write_suite2p
from napari_micromotion.errors import MicromotionError
from napari_micromotion.rois import polygon_mask

SHAPE = (64, 80)


def _disk(cy, cx, r, name, label="cell", prob=0.9):
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    full = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    rr, cc = np.nonzero(full)
    box = (rr.min(), cc.min(), rr.max() + 1, cc.max() + 1)
    return Candidate(name, box, full[box[0]:box[2], box[1]:box[3]], np.arange(30, dtype=np.float32) ** 2,
                     probability=prob, label=label, labelled_by="classifier")


@pytest.fixture
def cands():
    return [_disk(20, 20, 8, "c1"), _disk(40, 55, 6, "c2", "not_cell", 0.2), _disk(15, 60, 4.5, "c3")]


def test_mask_polygon_rasterises_back_to_the_mask():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    for _ in range(5):
        m = ndimage.gaussian_filter(rng.random((40, 40)), 4) > 0.5
        lab, n = ndimage.label(m)
        if n == 0:
            continue
        big = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
        big = ndimage.binary_fill_holes(big)
        back = polygon_mask(mask_polygon(big, tolerance_px=0), big.shape)
        assert (back == big).all()


def test_suite2p_round_trip(tmp_path, cands):
    movie = np.random.default_rng(1).random((30, *SHAPE)).astype(np.float32)
    write_suite2p(cands, tmp_path / "s2p")
    stat = np.load(tmp_path / "s2p" / "stat.npy", allow_pickle=True)
    iscell = np.load(tmp_path / "s2p" / "iscell.npy")
    assert stat.shape == (3,) and iscell.shape == (3, 2)
    assert iscell[:, 0].tolist() == [1.0, 0.0, 1.0] and iscell[1, 1] == pytest.approx(0.2)
    assert stat[0]["npix"] == cands[0].area_px and abs(stat[0]["compact"] - 1.0) < 0.1   # a disk is compact
    back = read_suite2p(tmp_path / "s2p", SHAPE, movie)
    assert [c.name for c in back] == ["c1", "c2", "c3"]
    for a, b in zip(cands, back):
        assert (a.mask(SHAPE) == b.mask(SHAPE)).all()
        assert b.labelled_by == "suite2p" and b.label == a.label
        assert np.allclose(b.trace, movie[:, a.mask(SHAPE)].mean(axis=1), atol=1e-5)


def test_suite2p_skew_follows_the_trace():
    c = _disk(20, 20, 5, "s")
    c.trace = np.r_[np.zeros(95), np.ones(5) * 10].astype(np.float32)   # rare large events: positive skew
    assert suite2p_stat(c)["skew"] > 2


def test_stat_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    arr = np.empty(1, dtype=object)
    arr[0] = {"ypix": np.array([1]), "xpix": np.array([1]), "x": Evil()}
    np.save(tmp_path / "stat.npy", arr, allow_pickle=True)
    with pytest.raises(MicromotionError, match="refused to unpickle"):
        read_suite2p(tmp_path, SHAPE)
    np.save(tmp_path / "stat.npy", np.zeros(3))
    with pytest.raises(MicromotionError, match="not suite2p"):
        read_suite2p(tmp_path, SHAPE)
    assert pickle   # the module under test relies on pickle's allow-list, not on np.load


def test_imagej_round_trip(tmp_path, cands):
    write_imagej(cands, tmp_path / "RoiSet.zip")
    back = read_imagej(tmp_path / "RoiSet.zip", SHAPE)
    assert [c.name for c in back] == ["c1", "c2", "c3"]
    for a, b in zip(cands, back):
        assert (a.mask(SHAPE) == b.mask(SHAPE)).mean() > 0.995


def test_a_composite_roi_is_a_candidate_with_all_its_parts_and_holes(tmp_path):
    """An ImageJ composite (two pieces, one with a hole) stays whole as a candidate, in candidates.json and back."""
    import json

    from napari_micromotion.cells.candidate import from_roi
    from napari_micromotion.rois import ROI, roi_mask
    from napari_micromotion.tools.cells import read_candidates

    def square(r0, c0, r1, c1):
        return [[r0, c0], [r0, c1], [r1, c1], [r1, c0]]

    roi = ROI(name="pair", kind="other", polygon=square(5, 5, 25, 25),
              parts=[square(10, 10, 20, 20), square(30, 40, 50, 60)])      # a hole in the first, a second piece
    movie = np.zeros((3, *SHAPE), np.float32)
    movie[:, polygon_mask(roi.parts[1], SHAPE)] = 10.0    # only the second piece is bright: the first outline reads 0
    c = from_roi(roi, movie, SHAPE)
    expected = roi_mask(roi, SHAPE)
    first, hole, second = (int(polygon_mask(np.array(p, float), SHAPE).sum()) for p in roi.rings)
    assert c.area_px == int(expected.sum()) == first - hole + second
    assert np.array_equal(c.mask(SHAPE), expected)
    assert np.allclose(c.trace, 10.0 * second / (first - hole + second))
    path = tmp_path / "candidates.json"
    path.write_text(json.dumps([c.to_dict()]))
    back = read_candidates(path, SHAPE)[0]
    assert np.array_equal(back.mask(SHAPE), expected) and len(back.roi().parts) == 2
