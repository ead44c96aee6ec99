"""strong / weak / silent from an analysis' ROI scores."""

from __future__ import annotations

import numpy as np
import pytest

from napari_micromotion.cells.candidate import Candidate
from napari_micromotion.cells.kinds import KindRule, pick_method, propose_kinds, read_scores
from napari_micromotion.errors import MicromotionError


def _cell(name):
    return Candidate(name, (0, 0, 3, 3), np.ones((3, 3), bool), np.zeros(5), label="cell")


SCORES = {"cnn1d": {"a": (0.9, 0.001), "b": (0.3, 0.01), "c": (0.6, 0.4)},
          "bandpass": {"a": (0.2, 0.3), "b": (0.1, 0.5), "c": (0.1, 0.6)}}


def test_kinds_follow_the_thresholds():
    cells = [_cell("a"), _cell("b"), _cell("c"), _cell("d")]
    got = propose_kinds(cells, SCORES)
    assert got == {"a": "strong", "b": "weak", "c": "silent"}      # d has no score: left open
    assert [c.kind for c in cells] == ["strong", "weak", "silent", ""]
    # a stricter significance turns b silent; a lower strong score makes b strong
    assert propose_kinds([_cell("b")], SCORES, KindRule(significance=0.005)) == {"b": "silent"}
    assert propose_kinds([_cell("b")], SCORES, KindRule(strong_score=0.25)) == {"b": "strong"}
    assert propose_kinds([_cell("a")], SCORES, KindRule(method="bandpass")) == {"a": "silent"}


def test_method_choice():
    assert pick_method(SCORES) == "cnn1d"
    with pytest.raises(MicromotionError, match="no 'cnn3d' scores"):
        pick_method(SCORES, "cnn3d")


def test_read_scores(tmp_path):
    (tmp_path / "roi_scores.csv").write_text("roi,kind,method,score,lag_s,p_value,n_pixels\n"
                                             "a,strong,cnn1d,0.9,0,0.001,10\nb,weak,cnn1d,0.3,0,0.01,10\n")
    assert read_scores(tmp_path) == {"cnn1d": {"a": (0.9, 0.001), "b": (0.3, 0.01)}}
    with pytest.raises(MicromotionError, match="not an analysis output folder"):
        read_scores(tmp_path / "nope")


def test_a_significance_level_no_p_value_can_reach_is_refused():
    """With 15 shifts every p >= 1/16: at p < 0.05 every cell, the strongly moving one too, was typed silent."""
    from napari_micromotion.errors import MicromotionError

    with pytest.raises(MicromotionError, match="no p-value of this analysis can be below 0.062"):
        propose_kinds([_cell("b")], SCORES, KindRule(significance=0.05), p_floor=1 / 16)
    assert propose_kinds([_cell("b")], SCORES, KindRule(significance=0.05), p_floor=1 / 1000)


def test_the_users_decisions_follow_the_same_cells_into_a_new_run():
    """Running the cell finder again threw away every accept/reject without a word."""
    import numpy as np

    from napari_micromotion.cells.candidate import Candidate
    from napari_micromotion.cells.candidates import carry_labels

    def cand(name, r, c, label="", by=""):
        sub = np.ones((6, 6), bool)
        return Candidate(name, (r, c, r + 6, c + 6), sub, np.zeros(20, np.float32), label=label, labelled_by=by)

    old = [cand("a", 0, 0, "cell", "user"), cand("b", 20, 20, "not_cell", "user"), cand("c", 40, 40, "cell", "classifier"),
           cand("d", 50, 0, "cell", "user")]
    new = [cand("x", 21, 21), cand("y", 1, 0), cand("z", 40, 40)]      # a and b moved by a pixel; d is gone
    assert carry_labels(old, new, (64, 64)) == (2, 1)
    assert [(c.name, c.label, c.labelled_by) for c in new] == [("x", "not_cell", "user"), ("y", "cell", "user"),
                                                              ("z", "", "")]
