"""The workbench's Cells tool and its curation page: run on the fluorescence, label by key, retrain,
accepted cells into the ROI layer, kinds from an analysis' scores.

``MICROMOTION_SCREENSHOTS=docs pytest tests/_qt/test_cells_tab.py`` also writes docs/workbench-cells.png.

The classifier is a small stand-in with the interface of
:class:`napari_micromotion.cells.train.CellClassifier` (``encode``, ``predict_proba``,
``iter_finetune``, ``save``), so the tests say exactly which candidates it was fine-tuned on;
the candidate extraction and everything else is the real tool's.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_micromotion._layers import META_KEY
from napari_micromotion.progress import Progress

from .conftest import SHOTS, add_recording, dock_all, n_notifications, notifications_since, save_screenshot, wait_task


class FakeClassifier:
    """P(cell) of candidate ``i`` is ``probs[i]`` (a fixed spread); fine-tuning records its inputs and then
    gives the labelled candidates 0.97 / 0.03 and squares every other probability."""

    def __init__(self, probs=None):
        self.probs = None if probs is None else np.asarray(probs, float)
        self.finetuned: list[tuple[np.ndarray, np.ndarray, dict]] = []
        self.encoded = 0
        self.training = {}       # what it was trained on: nothing recorded

    def describe(self):
        return {"arch": "fake"}

    def encode(self, candidates, image, cell_diameter_px=None):
        self.encoded += 1
        if self.probs is None or len(self.probs) != len(candidates):
            k = np.arange(len(candidates))
            self.probs = 0.02 + 0.96 * ((k * 0.618034) % 1.0)
        return np.arange(len(candidates), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)

    def predict_proba(self, x):
        return self.probs[np.asarray(x)[:, 0].astype(int)]

    def iter_finetune(self, x, y, *, max_seconds=10.0, threads=1):
        self.finetuned.append((np.asarray(x).copy(), np.asarray(y).copy(), {"max_seconds": max_seconds}))
        for k in range(4):
            yield Progress("fine-tune classifier", (k + 1) / 4, values={"loss": 1.0 / (k + 1)})
        new = self.probs ** 2
        rows = np.asarray(x)[:, 0].astype(int)
        new[rows] = np.where(np.asarray(y) == 1, 0.97, 0.03)
        self.probs = new
        return {"steps": 4}

    def save(self, path):
        return path


@pytest.fixture
def fake_shipped(monkeypatch):
    """The real tool with the stand-in classifier as its shipped model."""
    from napari_micromotion.cells import train

    fake = FakeClassifier()
    monkeypatch.setattr(train.CellClassifier, "shipped", classmethod(lambda cls, **kw: fake))
    return fake


def fake_result(n=8, size=48, probs=None, model=None):
    """A CellsResult of *n* square candidates on a grid (no tool run)."""
    from napari_micromotion.cells.candidate import Candidate
    from napari_micromotion.tools.cells import CellsParams, CellsResult

    rng = np.random.default_rng(0)
    probs = np.linspace(0.05, 0.95, n) if probs is None else np.asarray(probs, float)
    cands = []
    for i in range(n):
        r, c = 4 + 10 * (i // 4), 4 + 10 * (i % 4)
        cands.append(Candidate(name=f"c{i + 1:04d}", box=(r, c, r + 6, c + 6), submask=np.ones((6, 6), bool),
                               trace=rng.normal(100, 5, 60).astype(np.float32), probability=float(probs[i]),
                               label="cell" if probs[i] >= 0.5 else "not_cell", labelled_by="classifier"))
    model = model if model is not None else FakeClassifier(probs)
    return CellsResult(params=CellsParams(), candidates=cands, frame_shape=(size, size), fps=20.0,
                       mean_image=rng.normal(100, 3, (size, size)).astype(np.float32), model=model)


def show_fake(viewer, result):
    """The Cells tab shows *result* as if the tool had run; returns (tab, view)."""
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["cells"]
    tab.result = result
    tab.show_result(result)
    return tab, tab.show_view(result)


def press(viewer, key):
    """A key press as napari dispatches it (the active layer's keymap first, then the viewer's)."""
    from napari.utils.key_bindings import KeymapHandler

    handler = KeymapHandler()
    handler.keymap_providers = [p for p in (viewer.layers.selection.active, viewer) if p is not None]
    assert handler.press_key(key), key
    handler.release_key(key)


def uncertainty(view):
    return [abs(view.result.candidates[i].probability - 0.5) for i in view.order]


# ---------------------------------------------------------------- the tab and the real tool
def test_cells_tab_runs_on_the_fluorescence_and_curates(make_napari_viewer, qtbot, fake_shipped):
    from napari_micromotion.simulate import simulate

    sim = simulate(n_frames=300, size=96, seed=1)
    viewer = make_napari_viewer(show=bool(SHOTS))
    if SHOTS:
        viewer.window._qt_window.resize(1920, 1080)
    trans, _ = add_recording(viewer, sim, rois=False)
    bench = dock_all(viewer)["Workbench"]
    tab = bench.tools["cells"]
    bench.show_tab("Cells")
    assert tab.layer_combo.itemText(0) == "(the recording's fluorescence)"
    rec = tab.fluorescence_recording(tab.input_layer())
    assert tab.input_layer() is viewer.layers["fluorescence"]
    assert np.array_equal(np.asarray(rec.fluorescence), np.asarray(viewer.layers["fluorescence"].data))
    assert np.array_equal(np.asarray(rec.transmission), np.asarray(trans.data))
    assert not rec.provenance.get("no_transmission")
    tab.form.set_values({"threads": 1})
    task = tab.run()
    assert task is not None and task.running, tab.status.text()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    mine = {la.name: la for la in viewer.layers if la.metadata.get(META_KEY, {}).get("tool") == "cells"}
    assert set(mine) == {"cells: mean image", "cell candidates"}
    result = tab.result
    n = len(result.candidates)
    assert n >= 3 and len(mine["cell candidates"].data) == n
    # the outlines lie on the mean image (both placed like the fluorescence layer, in micrometres)
    assert np.allclose(mine["cell candidates"].scale, mine["cells: mean image"].scale)
    assert np.allclose(mine["cell candidates"].scale, viewer.layers["fluorescence"].scale[1:])
    # the candidates are a result, never taken for the ROIs (the accepted cells go to an ROI layer of their own)
    assert mine["cell candidates"].metadata[META_KEY]["role"] == "result"
    assert tab.session.rois_layer() is not mine["cell candidates"]
    assert fake_shipped.encoded == 1       # the tool classified with the shipped (stand-in) model
    view = tab.view
    assert type(view).__name__ == "CellsView" and bench.inspector.pages.currentWidget() is view
    # most uncertain first
    assert view.table.rowCount() == n and uncertainty(view) == sorted(uncertainty(view))
    first = view.order[0]
    assert view.current == first and view.table.item(0, 0).text() == result.candidates[first].name
    # accept by key: label cell by the user, then the next most uncertain
    press(viewer, "a")
    assert (result.candidates[first].label, result.candidates[first].labelled_by) == ("cell", "user")
    assert view.current == view.order[1]
    assert view.table.item(0, 3).text() == "you" and "1 labelled by you (1 cell)" in view.counter.text()
    # with the candidates layer active (its own A selects all shapes) the page's keys still win
    viewer.layers.selection.active = mine["cell candidates"]
    second = view.current
    press(viewer, "r")
    assert (result.candidates[second].label, result.candidates[second].labelled_by) == ("not_cell", "user")
    assert view.current == view.order[2]
    assert mine["cell candidates"].selected_data == {view.order[2]}
    widths = np.asarray(mine["cell candidates"].edge_width, float)
    assert widths[first] > widths[view.order[-1]] and widths[second] > widths[view.order[-1]]
    # a click on a shape (select mode) selects its row
    last = view.order[-1]
    mine["cell candidates"].selected_data = {last}
    mine["cell candidates"].events.highlight()
    assert view.current == last and view.table.currentRow() == n - 1
    assert result.candidates[last].name in view.plot.figure.axes[0].get_title()
    # retraining on the two decisions: exactly those candidates, then new probabilities for all
    task = view.retrain()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    x, y, _ = fake_shipped.finetuned[-1]
    assert sorted(x[:, 0].astype(int).tolist()) == sorted([first, second])
    assert result.candidates[first].probability == pytest.approx(0.97)
    if SHOTS:
        view.select(view.order[2], zoom=False)
        viewer.reset_view()
        viewer.layers.selection.active = mine["cell candidates"]
        save_screenshot(viewer, qtbot, "workbench-cells.png")


def test_fluorescence_alone_fills_both_slots(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).normal(100, 5, (30, 32, 32)).astype(np.float32)
    viewer.add_image(data, name="calcium", metadata={META_KEY: {"fps": 10.0}})
    tab = dock_all(viewer)["Workbench"].tools["cells"]
    layer = tab.input_layer()
    assert layer.name == "calcium"
    rec = tab.fluorescence_recording(layer)
    assert rec.provenance["no_transmission"] is True and rec.fps == 10.0
    assert np.array_equal(np.asarray(rec.fluorescence), data) and np.array_equal(np.asarray(rec.transmission), data)
    # other tools keep the transmission's entry
    assert dock_all(viewer)["Workbench"].tools["motion"].layer_combo.itemText(0) == "(the recording's transmission)"


# ---------------------------------------------------------------- curation without the tool
def test_decisions_retrain_and_threshold(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    probs = [0.1, 0.45, 0.9, 0.55, 0.3, 0.7, 0.52, 0.02]
    result = fake_result(probs=probs)
    tab, view = show_fake(viewer, result)
    cands = result.candidates
    assert [cands[i].name for i in view.order[:3]] == ["c0007", "c0002", "c0004"]   # |p - 0.5| smallest first
    n0 = n_notifications()
    assert view.retrain() is None                          # nothing labelled yet: one sentence, no task
    assert any("label some candidates first" in m.lower() for _, m in notifications_since(n0))
    view.accept_button.click()                             # c0007 -> cell, then c0002
    assert view.current == 1
    view.reject_button.click()                             # c0002 -> not cell, then c0004
    view.undecided_button.click()                          # c0004: back to the classifier (0.55 -> cell)
    assert (cands[3].label, cands[3].labelled_by) == ("cell", "classifier") and view.current == 3
    view.next_button.click()
    assert view.current == view.order[3]
    assert view.sort_combo.findText("name") >= 0
    view.sort_combo.setCurrentText("name")
    assert [view.table.item(r, 0).text() for r in range(3)] == ["c0001", "c0002", "c0003"]
    view.sort_combo.setCurrentText("most uncertain first")
    task = view.retrain()
    assert task is not None
    wait_task(qtbot, task)
    assert task.error is None, task.error
    x, y, _ = result.model.finetuned[-1]
    assert sorted(x[:, 0].astype(int).tolist()) == [1, 6] and y[np.argsort(x[:, 0])].tolist() == [0, 1]
    assert len(view.loss_plot.series["fine-tune classifier"]) == 4
    assert cands[6].probability == pytest.approx(0.97) and cands[1].probability == pytest.approx(0.03)
    assert cands[5].probability == pytest.approx(0.49)     # 0.7 squared: the classifier's label follows
    assert (cands[5].label, cands[5].labelled_by) == ("not_cell", "classifier")
    assert (cands[6].label, cands[6].labelled_by) == ("cell", "user")
    assert "2 labelled by you (1 cell)" in view.counter.text()
    view.threshold.setValue(0.45)                          # the threshold relabels what you did not decide
    assert cands[5].label == "cell" and cands[1].label == "not_cell"
    layer = viewer.layers["cell candidates"]
    assert list(layer.features["label"])[5] == "cell" and np.allclose(layer.features["probability"],
                                                                     [c.probability for c in cands])
    assert np.asarray(layer.face_color)[6, 3] > 0 and np.asarray(layer.face_color)[5, 3] == 0
    # a click (no drag) inside a candidate's outline in the viewer selects it: its row, a cyan outline
    from napari_micromotion._qt.cells_view import SELECTED_COLOUR

    view._on_canvas_click(np.array([6.5, 26.5]), SimpleNamespace(view_direction=None, dims_displayed=[0, 1]))
    assert view.current == 2 and view.order[view.table.currentRow()] == 2
    assert np.allclose(np.asarray(layer.edge_color)[2], SELECTED_COLOUR)
    assert not np.allclose(np.asarray(layer.edge_color)[6], SELECTED_COLOUR)


def test_cells_to_rois_and_kinds(make_napari_viewer, qtbot):
    from napari_micromotion.results import Results, ScoreRow

    viewer = make_napari_viewer()
    result = fake_result(probs=[0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.3, 0.4])
    tab, view = show_fake(viewer, result)
    n0 = n_notifications()
    assert view.propose_kinds() is None                    # no analysis yet
    assert any("no analysis with roi scores" in m.lower() for _, m in notifications_since(n0))
    layer = view.cells_to_rois()
    assert layer is not None and layer.metadata[META_KEY]["role"] == "rois"
    assert list(layer.features["name"]) == ["c0001", "c0002", "c0003", "c0004"]
    assert list(layer.features["kind"]) == ["other"] * 4
    rois = view.session.build_rois(layer)
    assert np.allclose(rois[0].polygon.mean(axis=0), np.asarray(result.candidates[0].polygon).mean(axis=0))
    # again, with one more cell: the earlier ones are replaced, not doubled
    view.select(4, zoom=False)
    view.decide("cell")
    layer = view.cells_to_rois()
    assert sorted(layer.features["name"]) == ["c0001", "c0002", "c0003", "c0004", "c0005"]
    assert len(layer.data) == 5
    # an analysis with known scores: strong (significant, high), weak (significant, low), silent (not significant)
    rows = [ScoreRow(roi="c0001", kind="other", method="cnn1d", score=0.8, p_value=0.001),
            ScoreRow(roi="c0002", kind="other", method="cnn1d", score=0.3, p_value=0.01),
            ScoreRow(roi="c0003", kind="other", method="cnn1d", score=0.6, p_value=0.2),
            ScoreRow(roi="c0004", kind="other", method="cnn1d", score=0.45, p_value=0.03),
            ScoreRow(roi="c0001", kind="other", method="bandpass", score=0.1, p_value=0.5)]
    z = np.zeros((48, 48), np.float32)
    view.session.results = Results(params=None, fps=20.0, n_frames=60, frame_shape=(48, 48), pixel_size_um=None,
                                   validation=(0, 60), training=[], passband={}, methods=["cnn1d", "bandpass"],
                                   still=z, energy_map=z, roi_scores=rows)
    view._on_results()     # what the session's results_changed does (the other widgets would draw the analysis)
    assert [view.kind_method.itemText(i) for i in range(view.kind_method.count())] == ["auto", "bandpass", "cnn1d"]
    view.strong_score.setValue(0.5)
    view.significance.setValue(0.05)
    kinds = view.propose_kinds()
    assert kinds == {"c0001": "strong", "c0002": "weak", "c0003": "silent", "c0004": "weak"}
    names = [str(v) for v in layer.features["name"]]
    got = dict(zip(names, (str(v) for v in layer.features["kind"])))
    assert got == {"c0001": "strong", "c0002": "weak", "c0003": "silent", "c0004": "weak", "c0005": "other"}
    row = view.order.index(0)
    assert view.table.item(row, 4).text() == "strong"
    # thresholds exposed: a lower strong score makes c0004 strong; bandpass' scores make c0001 silent
    view.strong_score.setValue(0.4)
    assert view.propose_kinds()["c0004"] == "strong"
    view.kind_method.setCurrentText("bandpass")
    assert view.propose_kinds() == {"c0001": "silent"}


def test_kinds_from_results_rows():
    from napari_micromotion.cells.kinds import scores_from_results
    from napari_micromotion.results import ScoreRow

    rows = [ScoreRow(roi="a", kind="other", method="flow", score=0.4, p_value=0.01),
            ScoreRow(roi="b", kind="other", method="flow"),   # no score, no p: left out
            ScoreRow(roi="a", kind="other", method="matched", score=0.2, p_value=float("nan"))]
    got = scores_from_results(SimpleNamespace(roi_scores=rows))
    assert set(got) == {"flow", "matched"} and got["flow"] == {"a": (0.4, 0.01)}
    assert got["matched"]["a"][0] == 0.2 and np.isnan(got["matched"]["a"][1])
    assert scores_from_results(None) == {}


def test_page_without_result_says_what_to_do(make_napari_viewer):
    from napari_micromotion._qt.cells_view import CellsView

    viewer = make_napari_viewer()
    view = CellsView(viewer)
    n0 = n_notifications()
    view.decide("cell")
    assert view.retrain() is None and view.cells_to_rois() is None and view.propose_kinds() is None
    msgs = [m for _, m in notifications_since(n0)]
    assert len(msgs) == 4 and all("run the cell finder first" in m.lower() for m in msgs), msgs
    assert not any("Traceback" in m for m in msgs)


def test_a_new_result_replaces_the_candidates(make_napari_viewer):
    viewer = make_napari_viewer()
    tab, view = show_fake(viewer, fake_result(n=8))
    view.select(5, zoom=True)
    from napari_micromotion._qt.cells_view import _camera

    assert np.allclose(_camera(viewer).center[-2:], np.asarray(view.result.candidates[5].box[:2]) + 2.5)
    again = fake_result(n=5, probs=[0.5, 0.6, 0.7, 0.8, 0.9])
    tab.result = again
    tab.show_result(again)
    assert tab.show_view(again) is view
    layer = viewer.layers["cell candidates"]
    assert len(layer.data) == 5 and list(layer.features["name"]) == [c.name for c in again.candidates]
    assert view.table.rowCount() == 5 and view.current == 0          # P = 0.5: the most uncertain
    assert [la.name for la in viewer.layers].count("cell candidates") == 1


def test_retrain_with_the_real_classifier(make_napari_viewer, qtbot):
    """The page drives napari_micromotion.cells.train.CellClassifier itself."""
    import torch

    from napari_micromotion.cells.train import CellClassifier

    torch.set_num_threads(1)
    viewer = make_napari_viewer()
    result = fake_result(n=8, model=CellClassifier())
    tab, view = show_fake(viewer, result)
    before = [c.probability for c in result.candidates]
    for i, label in ((0, "cell"), (1, "not_cell"), (2, "cell"), (3, "not_cell")):
        view.select(i, zoom=False)
        view.decide(label)
    task = view.retrain()
    wait_task(qtbot, task)
    assert task.error is None, task.error
    after = np.array([c.probability for c in result.candidates])
    assert np.all((after >= 0) & (after <= 1)) and not np.allclose(after, before)
    assert [c.labelled_by for c in result.candidates[:4]] == ["user"] * 4
