import numpy as np

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
