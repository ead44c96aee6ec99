import json
import shutil

import numpy as np
import pytest

from napari_micromotion.errors import MicromotionError
from napari_micromotion.export import write_results
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.results_io import read_results


def test_output_folder_reads_back(small_sim, tmp_path):
    res = run_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass", "matched"),
                                                                            n_surrogates=19, seed=4))
    write_results(res, tmp_path / "out", report=False)
    back = read_results(tmp_path / "out")
    for m in res.score_maps:
        np.testing.assert_array_equal(back.score_maps[m], res.score_maps[m])
        np.testing.assert_array_equal(back.lag_maps[m], res.lag_maps[m])
    assert back.roi_names == res.roi_names and back.roi_kinds == res.roi_kinds
    np.testing.assert_array_equal(back.roi_masks, res.roi_masks)   # polygons travel in run.json
    for key, tr in res.roi_traces.items():
        np.testing.assert_allclose(back.roi_traces[key], tr, rtol=1e-6)
    np.testing.assert_allclose(back.truth, res.truth, rtol=1e-6, atol=1e-9)
    assert [(r["roi"], r["method"]) for r in back.roi_scores] == [(r["roi"], r["method"]) for r in res.roi_scores]
    np.testing.assert_allclose([r["score"] for r in back.roi_scores], [r["score"] for r in res.roi_scores], rtol=1e-6)
    assert back.params.seed == 4 and back.params.methods == ("bandpass", "matched")
    assert back.validation == res.validation and back.fps == res.fps
    # everything else the layout table writes comes back too
    assert back.params == res.params
    for name in ("beats", "beat_rates", "limits"):
        a, b = getattr(res, name), getattr(back, name)
        assert [r.roi for r in a] == [r.roi for r in b] and len(a) > 0
        np.testing.assert_allclose([r.get("time_s", r.get("n_beats", 0)) for r in a],
                                   [r.get("time_s", r.get("n_beats", 0)) for r in b], rtol=1e-6)
    assert set(back.motion_traces) == set(res.motion_traces) == {*res.roi_names, "frame"}
    for key, tr in res.motion_traces.items():
        np.testing.assert_allclose(back.motion_traces[key], tr, rtol=1e-6)
    # the cells contract: the traces the contraction beats were found in (px) come back too
    assert set(back.contraction_traces) == set(res.contraction_traces) == set(res.roi_names)
    for key, tr in res.contraction_traces.items():
        np.testing.assert_allclose(back.contraction_traces[key], tr, rtol=1e-6)
    assert back.chance_scores == res.chance_scores and set(res.chance_scores) == {"bandpass", "matched"}
    assert "matched" in back.fits   # the matched filter's spikes are restored for re-tracing
    np.testing.assert_array_equal(back.fits["matched"].onsets, res.fits["matched"].onsets)


def test_chance_level_separates_moving_cells_from_noise(small_sim):
    res = run_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=9))
    chance = res.chance_scores["bandpass"]
    smap = res.score_maps["bandpass"]
    strong = res.roi_masks[res.roi_names.index("strong")]
    assert 0 < chance < 0.5
    assert np.mean(smap[strong] > chance) > 0.3          # a moving, calcium-active cell: many pixels above chance
    assert np.mean(smap > chance) < 0.5                   # most of the field is not


def test_a_damaged_folder_opens_with_what_is_left_and_says_what_is_not(small_sim, tmp_path):
    res = run_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=19))
    good = write_results(res, tmp_path / "good", report=False)
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    (bad / "traces.csv").write_text("garbage,\n1,2,3\n")          # edited in a spreadsheet
    (bad / "scores" / "bandpass.tif").unlink()
    (bad / "beats.csv").write_text("")                                   # emptied
    (bad / "limits.csv").write_text("a;b\n1;2\n")                      # another program's table
    (bad / "maps" / "still.tif").write_bytes(b"II*\x00garbage")      # truncated copy
    run = json.loads((bad / "run.json").read_text())
    run["validation_frames"] = [5]
    run["parameters"]["low_hz"] = "abc"
    (bad / "run.json").write_text(json.dumps(run))
    back = read_results(bad)
    said = " | ".join(back.warnings)
    assert "could not read traces.csv" in said and "scores/bandpass.tif) is missing" in said
    assert "low edge must be a number, got 'abc'" in said and back.params == AnalysisParams()
    assert "beats.csv is empty" in said and "limits.csv has no 'roi' column" in said
    assert not back.beats and not back.limits and back.beat_rates
    assert "validation frames" in said and "still" in said
    assert back.still.shape == res.still.shape and back.validation == (0, res.n_frames)
    assert back.roi_scores and not back.roi_traces
    (bad / "run.json").write_text("[1, 2]")
    with pytest.raises(MicromotionError, match="not an analysis record"):
        read_results(bad)


def test_a_runs_page_lists_the_readers_warnings_first(small_sim, tmp_path, monkeypatch):
    """report.png listed only the analysis' warnings; the reader's (a lossy video, ...) were in run.json alone."""
    from napari_micromotion import report

    from .conftest import page_note

    pages = []

    def keep(results, path, dpi=110, warnings=None):
        pages.append(report.build_report(results, warnings))
        return path

    monkeypatch.setattr(report, "save_report", keep)
    res = run_analysis(small_sim.recording(), small_sim.rois, AnalysisParams(methods=("bandpass",), n_surrogates=19,
                                                                            seed=4))
    res.warnings = ["no fluorescence: predictions and beats only, no scores."]
    lossy = "clip.mp4 is a lossy video (h264): compression blurs the smallest motions."
    out = write_results(res, tmp_path / "run", extra={"recording_provenance": {"warnings": [lossy]}},
                        save_models=False)
    text = page_note(pages[0], "lossy video")
    assert text.index("lossy video") < text.index("no fluorescence")
    assert json.loads((out / "run.json").read_text())["warnings"] == [lossy, res.warnings[0]]
