import json

import numpy as np
import pytest

from napari_micromotion.errors import MicromotionError
from napari_micromotion.rois import ROI, as_rois, parse_rois, polygon_mask, rasterize, read_rois, write_rois


def test_rectangle_mask_counts_pixel_centres():
    roi = ROI("box", "strong", [[2, 3], [2, 7], [5, 7], [5, 3]])
    masks = rasterize([roi], (10, 12))
    m = masks.masks[0]
    assert m.sum() == 4 * 5  # rows 2..5, cols 3..7 inclusive (edges count as inside)
    assert m[2:6, 3:8].all() and not m[:2].any() and not m[:, 8:].any()
    assert masks.box(0) == (slice(2, 6), slice(3, 8))
    w = masks.weight_matrix()
    assert w.shape == (120, 1) and w.sum() == 20


def test_triangle_and_partial_outside_frame():
    tri = ROI("t", "weak", [[0, 0], [0, 8], [8, 0]])
    m = polygon_mask(tri.polygon, (10, 10))
    assert m[1, 1] and not m[7, 7]
    assert m.sum() == sum(1 for r in range(10) for c in range(10) if r + c <= 8)
    clipped = rasterize([ROI("c", "other", [[-5, -5], [-5, 3], [3, 3], [3, -5]])], (10, 10))
    assert clipped.masks[0].sum() == 16
    assert len(clipped.clipped) == 1
    assert clipped.clipped[0].startswith("ROI 'c' reaches past the 10 x 10 px frame; 81 % of its area is outside")


@pytest.mark.parametrize("poly,msg", [
    ([[0, 0], [0, 4], [4, 0], [4, 4]], "self-intersecting"),   # a bow tie
    ([[0, 0], [1, 1]], "at least 3"),
    ([[0, 0], [1, 1], [2, 2]], "zero area"),
    ([[0, 0], [0, float("nan")], [3, 3]], "non-finite"),
])
def test_bad_polygons(poly, msg):
    with pytest.raises(MicromotionError, match=msg):
        ROI("x", "strong", poly)


def test_unknown_kind_outside_and_empty():
    with pytest.raises(MicromotionError, match="unknown kind"):
        ROI("x", "medium", [[0, 0], [0, 3], [3, 3]])
    with pytest.raises(MicromotionError, match="outside"):
        rasterize([ROI("far", "weak", [[50, 50], [50, 60], [60, 60]])], (10, 10))
    with pytest.raises(MicromotionError, match="covers no pixel"):
        rasterize([ROI("thin", "weak", [[2.1, 2.1], [2.1, 2.4], [2.4, 2.4]])], (10, 10))
    with pytest.raises(MicromotionError, match="unique"):
        r = ROI("a", "weak", [[0, 0], [0, 3], [3, 3]])
        rasterize([r, r], (10, 10))


@pytest.mark.parametrize("text,msg", [
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "JSON list"),
    ('[{"kind": "strong", "polygon": [[0,0],[0,3],[3,3]]}]', "no 'name'"),
    ('[{"name": "a", "kind": "strong"}]', "no 'polygon'"),
    ('[{"name": "a", "kind": "strong", "polygon": [[0,0],[0,"x"],[3,3]]}]', "number pairs"),
    ('[{"name": "a", "kind": "huge", "polygon": [[0,0],[0,3],[3,3]]}]', "unknown kind"),
    ('[3]', "not an object"),
])
def test_malformed_roi_files(tmp_path, text, msg):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(MicromotionError, match=msg):
        read_rois(path)


def test_json_round_trip(tmp_path):
    rois = [ROI("cell A", "strong", [[1.5, 2], [1.5, 9], [8, 9.25]]), ROI("b", "silent", [[0, 0], [0, 3], [3, 3], [3, 0]])]
    path = write_rois(rois, tmp_path / "rois.json")
    back = read_rois(path)
    assert [r.name for r in back] == ["cell A", "b"] and [r.kind for r in back] == ["strong", "silent"]
    np.testing.assert_allclose(back[0].polygon, rois[0].polygon)
    assert json.loads(path.read_text())[0]["kind"] == "strong"


def test_imagej_roiset_round_trip(tmp_path):
    rois = [ROI("strong cell", "strong", [[2, 3], [2, 7], [5, 7], [5, 3]]), ROI("quiet", "other", [[0, 0], [0, 4], [4, 0]])]
    path = write_rois(rois, tmp_path / "RoiSet.zip")
    back = read_rois(path)
    assert [r.name for r in back] == ["strong cell", "quiet"]
    assert back[0].kind == "strong"  # kind recovered from the ImageJ name
    m0 = rasterize(rois, (10, 10)).masks
    m1 = rasterize(back, (10, 10)).masks
    np.testing.assert_array_equal(m0, m1)


def test_parse_accepts_wrapped_list():
    rois = parse_rois({"rois": [{"name": "a", "kind": "weak", "polygon": [[0, 0], [0, 3], [3, 3]]}]})
    assert rois[0].kind == "weak"


def test_imagej_files_keep_the_kind_whatever_the_name(tmp_path):
    rois = [ROI("cell 1", "strong", [[2, 3], [2, 7], [5, 7]]), ROI("cell 2", "silent", [[0, 0], [0, 4], [4, 0]])]
    for name in ("RoiSet.zip", "one.roi"):
        given = rois if name.endswith(".zip") else rois[:1]
        back = read_rois(write_rois(given, tmp_path / name))
        assert [(r.name, r.kind) for r in back] == [(r.name, r.kind) for r in given]


def test_a_vertex_given_twice_in_a_row_is_one_vertex():
    """napari's double-click that closes a polygon repeats its last vertex."""
    roi = ROI("a", "weak", [[0, 0], [0, 10], [0, 10], [10, 10], [10, 0], [10, 0], [0, 0]])
    assert roi.polygon.tolist() == [[0, 0], [0, 10], [10, 10], [10, 0]]
    with pytest.raises(MicromotionError, match="2 vertices"):
        ROI("b", "weak", [[0, 0], [0, 10], [0, 10]])


def test_nothing_to_save_and_rois_as_dicts(tmp_path):
    for name in ("e.zip", "e.json"):
        with pytest.raises(MicromotionError, match="no ROIs to save"):
            write_rois([], tmp_path / name)
        assert not (tmp_path / name).exists()
    rois = as_rois([{"name": "a", "kind": "weak", "polygon": [[0, 0], [0, 3], [3, 3]]},
                    ROI("b", "other", [[5, 5], [5, 8], [8, 8]])])
    assert [(r.name, r.kind) for r in rois] == [("a", "weak"), ("b", "other")]
    with pytest.raises(MicromotionError, match="read them with read_rois"):
        as_rois("rois.json")
    with pytest.raises(MicromotionError, match="ROI objects or of"):
        as_rois([1, 2])


def test_roi_files_that_are_folders_empty_damaged_or_repeat_names(tmp_path):
    import zipfile

    with pytest.raises(MicromotionError, match="is a folder, not a file"):
        read_rois(tmp_path)
    (tmp_path / "notes").write_text("x")
    with pytest.raises(MicromotionError, match="cannot exist: .*notes is a file, not a folder"):
        read_rois(tmp_path / "notes" / "rois.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(MicromotionError, match="holds no ROIs"):
        read_rois(tmp_path / "empty.json")
    # a RoiSet with one damaged member: the others are read, the damaged one is named
    rois = [ROI("a", "strong", [[2, 3], [2, 7], [5, 7]]), ROI("b", "weak", [[0, 0], [0, 4], [4, 0]])]
    good = write_rois(rois, tmp_path / "RoiSet.zip")
    with zipfile.ZipFile(good) as zf, zipfile.ZipFile(tmp_path / "mixed.zip", "w") as out:
        for name in zf.namelist():
            out.writestr(name, zf.read(name))
        out.writestr("c.roi", b"Iout" + b"\x00" * 10)
    with pytest.warns(UserWarning, match=r"1 damaged ROI\(s\) left out \(c.roi\); 2 read"):
        back = read_rois(tmp_path / "mixed.zip")
    assert [r.name for r in back] == ["a", "b"]
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as out:
        out.writestr("c.roi", b"Iout")
    with pytest.raises(MicromotionError, match="holds no readable ImageJ ROIs"):
        read_rois(tmp_path / "none.zip")
    (tmp_path / "twice.json").write_text(json.dumps([r.to_dict() for r in rois + rois[:1]]))
    with pytest.warns(UserWarning, match=r"ROI names repeat \(a\)"):
        assert len(read_rois(tmp_path / "twice.json")) == 3


def test_an_imagej_oval_the_usual_fiji_cell_roi_is_read(tmp_path):
    """Its polygon's closing vertex is off by ~2e-6 px (float32): it was refused as self-intersecting."""
    from roifile import ROI_TYPE, ImagejRoi

    (tmp_path / "oval.roi").write_bytes(ImagejRoi(roitype=ROI_TYPE.OVAL, top=16, left=16, bottom=30, right=28,
                                                  name="strong").tobytes())
    (roi,) = read_rois(tmp_path / "oval.roi")
    mask = rasterize([roi], (48, 48)).masks[0]
    assert roi.kind == "strong" and 0.7 < mask.sum() / (np.pi * 7 * 6) < 1.3


def test_names_that_would_collide_in_the_outputs_are_refused():
    """An ROI called 'frame' was written as the whole field's columns; 'cell:1' and 'cell?1' overwrote each other's
    weights and models (both become cell_1)."""
    square = [[0, 0], [0, 4], [4, 4], [4, 0]]
    with pytest.raises(MicromotionError, match="may not be called 'frame'"):
        rasterize([ROI("frame", "other", square)], (10, 10))
    with pytest.raises(MicromotionError, match="become the same file name"):
        rasterize([ROI("cell:1", "other", square), ROI("cell?1", "other", square)], (10, 10))
    assert rasterize([ROI("cell 1", "other", square), ROI("cell 2", "other", square)], (10, 10)).masks.shape[0] == 2


@pytest.mark.parametrize("roitype,points,what", [
    ("POINT", [[3, 4], [20, 6], [12, 18]], "a point selection"),
    ("POINT", [[3, 4]], "a point selection"),
    ("POLYLINE", [[3, 4], [20, 6], [12, 18]], "a segmented-line selection"),
    ("FREELINE", [[3, 4], [20, 6], [12, 18], [4, 16]], "a freehand-line selection"),
    ("ANGLE", [[3, 4], [20, 6], [12, 18]], "an angle selection"),
    ("LINE", [[3, 4], [20, 6]], "a straight-line selection"),
])
def test_imagej_points_and_lines_are_refused_by_name(tmp_path, roitype, points, what):
    """A multipoint selection was read as the polygon through its points; lines were refused without a name."""
    from roifile import ROI_TYPE, ImagejRoi

    ij = ImagejRoi.frompoints(np.array(points), name="cell 3")
    ij.roitype = ROI_TYPE[roitype]
    if roitype == "LINE":
        (ij.x1, ij.y1), (ij.x2, ij.y2) = points
    write_rois([ROI("cell 1", "strong", [[2, 3], [2, 9], [8, 9]])], tmp_path / "RoiSet.zip")
    ij.tofile(tmp_path / "RoiSet.zip", name="cell 3")
    with pytest.raises(MicromotionError, match=f"^ROI 'cell 3' in RoiSet.zip is {what}, not an area; draw it as an "
                                               "oval, polygon or freehand ROI.$"):
        read_rois(tmp_path / "RoiSet.zip")


def _composite(name, *rings_xy):
    """An ImageJ composite (shape) ROI made with roifile: each ring ``(x, y)`` a moveto, linetos and a close."""
    from roifile import ROI_TYPE, ImagejRoi

    path = np.concatenate([np.r_[0.0, xy[0], np.column_stack([np.ones(len(xy) - 1), xy[1:]]).ravel(), 4.0]
                           for xy in rings_xy]).astype(np.float32)
    lo, hi = np.floor(np.concatenate(rings_xy).min(axis=0)), np.ceil(np.concatenate(rings_xy).max(axis=0))
    return ImagejRoi(roitype=ROI_TYPE.RECT, left=int(lo[0]), top=int(lo[1]), right=int(hi[0]), bottom=int(hi[1]),
                     shape_roi_size=len(path), multi_coordinates=path, name=name)


def test_an_imagej_composite_roi_is_all_of_its_parts_with_its_holes(tmp_path):
    """A composite ROI (Fiji: two ovals combined with shift, or one with a hole cut with alt) kept only one part."""
    from roifile.roifile import oval

    one, two, hole = oval([[4, 4], [16, 16]], 64), oval([[28, 6], [44, 24]], 64), oval([[8, 8], [12, 12]], 32)
    _composite("two cells", one, two, hole).tofile(tmp_path / "two.roi")
    _composite("two cells", one, two, hole).tofile(tmp_path / "RoiSet.zip", name="two cells")
    # each outline alone, ImageJ (corners at integers) -> ours (centres at integers)
    alone = [rasterize([ROI(f"p{k}", "other", xy[:, ::-1] - 0.5)], (48, 48)).masks[0]
             for k, xy in enumerate((one, two, hole))]
    want = (alone[0] | alone[1]) & ~alone[2]
    assert alone[1].sum() > 150 and alone[2].sum() > 5 and (alone[2] <= alone[0]).all()
    for path in (tmp_path / "two.roi", tmp_path / "RoiSet.zip"):
        (roi,) = read_rois(path)
        np.testing.assert_array_equal(rasterize([roi], (48, 48)).masks[0], want)
        assert roi.name == "two cells" and len(roi.parts) == 2
    # saved again (ImageJ composite, or JSON "parts") it stays whole
    for name in ("again.zip", "again.roi", "again.json"):
        (back,) = read_rois(write_rois([roi], tmp_path / name))
        np.testing.assert_array_equal(rasterize([back], (48, 48)).masks[0], want)


def test_an_imagej_composite_roi_with_curves_is_read(tmp_path):
    """A shape ROI's path may hold Bezier curves (java.awt's QUADTO/CUBICTO): roifile cannot flatten them and its
    NotImplementedError came out as a traceback."""
    k = 0.5523 * 10            # four cubic arcs: a circle of radius 10 around (20, 20)
    path = np.array([0, 30, 20,
                     3, 30, 20 + k, 20 + k, 30, 20, 30,
                     3, 20 - k, 30, 10, 20 + k, 10, 20,
                     3, 10, 20 - k, 20 - k, 10, 20, 10,
                     3, 20 + k, 10, 30, 20 - k, 30, 20, 4], np.float32)
    from roifile import ROI_TYPE, ImagejRoi

    ImagejRoi(roitype=ROI_TYPE.RECT, left=10, top=10, right=30, bottom=30, shape_roi_size=len(path),
              multi_coordinates=path, name="round").tofile(tmp_path / "round.roi")
    (roi,) = read_rois(tmp_path / "round.roi")
    assert abs(rasterize([roi], (40, 40)).masks[0].sum() / (np.pi * 100) - 1) < 0.05


def test_a_composite_roi_comes_back_whole_from_an_output_folder(small_sim, tmp_path):
    """run.json keeps a composite ROI's parts; reading the folder back rebuilt the ROI from its first outline."""
    from napari_micromotion.export import write_results
    from napari_micromotion.pipeline import AnalysisParams, run_analysis
    from napari_micromotion.results_io import read_results

    both = ROI("both", "other", [[4, 4], [4, 20], [20, 20], [20, 4]], parts=([[40, 40], [40, 56], [56, 56], [56, 40]],
                                                                            [[8, 8], [8, 12], [12, 12], [12, 8]]))
    res = run_analysis(small_sim.recording(), [both], AnalysisParams(methods=("bandpass",), n_surrogates=9))
    assert res.roi_masks[0].sum() == 17 * 17 * 2 - 5 * 5
    write_results(res, tmp_path / "out", report=False)
    np.testing.assert_array_equal(read_results(tmp_path / "out").roi_masks, res.roi_masks)


def test_rois_reaching_past_the_frame_say_how_much_is_left_out(small_sim):
    """Clipping to the frame was silent: part of a cell went missing from its trace.  The sentence travels with the
    masks into the warnings of the analysis and of the tools (a Python warning was lost in napari's worker)."""
    import re

    from napari_micromotion.pipeline import AnalysisParams, run_analysis
    from napari_micromotion.tools import TOOLS
    from napari_micromotion.tools.motion import MotionParams

    half_out = ROI("cell 2", "strong", [[10, 240], [10, 280], [30, 280], [30, 240]])   # 15.5 of 40 columns inside
    masks = rasterize([ROI("cell 1", "weak", [[5, 5], [5, 20], [20, 20]]), half_out], (256, 256))
    assert len(masks.clipped) == 1 and re.match(
        rf"^ROI 'cell 2' reaches past the 256 x 256 px frame; {100 * 24.5 / 40:.0f} % of its area is outside and "
        r"ignored \(redraw it inside the frame", masks.clipped[0])
    assert masks.masks[1].sum() == 21 * 16
    two = ROI("two", "other", [[2, 2], [2, 10], [10, 10], [10, 2]], parts=([[2, 250], [2, 270], [10, 270], [10, 250]],))
    assert re.match(f"ROI 'two' reaches past .* {100 * 14.5 * 8 / (64 + 160):.0f} % of its area",
                    rasterize([two], (256, 256)).clipped[0])
    # drawn onto the edge (ImageJ's 256 is our 255.5; napari clicks land a little past): no warning
    for edge in (255.5, 256.0, 256.4):
        for poly in ([[10, 200], [10, edge], [30, edge], [30, 200]], [[200, 10], [edge, 10], [edge, 30]],
                     [[-0.5 - (edge - 255.5), 10], [-0.5 - (edge - 255.5), 30], [30, 30]]):
            assert rasterize([ROI("edge", "other", poly)], (256, 256)).clipped == ()
    # a big ROI with a sliver outside (below 1 % of it) neither
    assert rasterize([ROI("big", "other", [[0, 0], [0, 258], [250, 258], [250, 0]])], (256, 256)).clipped == ()
    # the analysis and the tools that take ROIs say it in their warnings, once
    rec = small_sim.recording()
    ny, nx = rec.frame_shape
    edge = ROI("edge cell", "other", [[5, nx - 10], [5, nx + 10], [20, nx + 10], [20, nx - 10]])
    res = run_analysis(rec, [edge], AnalysisParams(methods=("bandpass",), n_surrogates=9))
    assert [w for w in res.warnings if "reaches past" in w] == [rasterize([edge], (ny, nx)).clipped[0]]
    motion = TOOLS["motion"].run(rec, MotionParams(denoise_traces=False), rois=[edge])
    assert len([w for w in motion.warnings if "'edge cell' reaches past" in w]) == 1
    with pytest.raises(MicromotionError, match="ROI 'away' lies outside the 256 x 256 px frame"):
        rasterize([ROI("away", "other", [[300, 300], [300, 320], [320, 320]])], (256, 256))
