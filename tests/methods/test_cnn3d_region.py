"""The region-specific 3D network sees the pixels inside its ROI's outline only."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_micromotion.detectors.cnn1d import CNN1DParams
from napari_micromotion.detectors.cnn3d import CNN3DParams
from napari_micromotion.methods.cnn3d import region_of
from napari_micromotion.pipeline import AnalysisParams, run_analysis
from napari_micromotion.rois import ROI, rasterize


def test_region_of_grows_the_mask_by_the_margin():
    mask = np.zeros((20, 20), bool)
    mask[8:12, 8:12] = True
    box, region = region_of(mask, 0)
    assert box == (8, 12, 8, 12) and region.all()
    box, region = region_of(mask, 2)
    assert box == (6, 14, 6, 14) and region.sum() > 16 and not region[0, 0]   # Euclidean: corners stay out


def _recording(seed: int = 0):
    """A textured field whose outer part moves with the calcium and whose central disk moves on its own rhythm.

    Motion is a horizontal sub-pixel shift (first order: ``I - dI/dx * d(t)``), so nothing of the outer motion
    leaks into the disk: inside it only calcium-unrelated motion exists, while the disk's bounding box holds
    calcium-driven pixels in its corners.
    """
    from napari_micromotion.recording import Recording

    rng = np.random.default_rng(seed)
    n_t, n, fps = 1500, 40, 50.0
    t = np.arange(n_t) / fps

    def transients(period_s: float) -> np.ndarray:
        onsets = np.cumsum(rng.uniform(0.8, 1.2, int(n_t / fps / period_s) + 2) * period_s)
        out = np.zeros(n_t)
        for o in onsets:
            dt = np.maximum(t - o, 0.0)
            out += (1 - np.exp(-dt / 0.03)) * np.exp(-dt / 0.3)
        return out

    calcium = transients(2.5)
    own = transients(1.9)
    img = 1e4 * (1 + 1.0 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.5))
    grad = np.gradient(img, axis=1)
    yy, xx = np.mgrid[0:n, 0:n]
    disk = (yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2
    shift = np.where(disk[None], own[:, None, None], calcium[:, None, None])
    video = img[None] - grad[None] * shift
    video = video + np.sqrt(video) * rng.standard_normal(video.shape)
    fluo = 1000 * (1 + calcium) + 10 * rng.standard_normal(n_t)
    return Recording(transmission=video.astype(np.float32), fps=fps, fluorescence=fluo)


def _circle(r0: float, c0: float, radius: float, n: int = 24) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r0 + radius * np.sin(a), c0 + radius * np.cos(a)])


def test_a_cell_moving_without_calcium_is_not_significant_when_its_box_holds_calcium_motion():
    rec = _recording()
    cell = ROI("cell", "other", _circle(20, 20, 10))            # the disk, drawn 2 px inside its edge
    box = ROI("box", "other", np.array([[9.5, 9.5], [9.5, 30.5], [30.5, 30.5], [30.5, 9.5]]))  # its bounding box
    params = AnalysisParams(methods=("cnn1d", "cnn3d"), n_surrogates=199, seed=0, device="cpu",
                            method_params={"cnn1d": CNN1DParams(epochs=2, n_pixels=512, window=512)})
    res = run_analysis(rec, [cell, box], params)
    row = res.score_of("cell", "cnn3d")
    assert row.p_value >= 0.05, row
    # what the network used to see (the whole bounding box) holds calcium-driven motion in its corners
    assert res.score_of("box", "cnn3d").p_value < 0.05 and res.score_of("box", "cnn3d").score > 0.5
    # the dense weights are zero outside the outline, and not inside
    mask = rasterize([cell], rec.frame_shape).masks[0]
    rm = res.region_maps[("cnn3d", "cell")]
    r0, r1, c0, c1 = rm.box
    inside = mask[r0:r1, c0:c1]
    assert rm.box == (10, 31, 10, 31) and not inside.all()
    assert not np.any(rm.data[:, ~inside]) and np.any(rm.data[:, inside])
    # a margin that reaches the outer, calcium-driven part lets the network use it again
    wide = params.with_method("cnn3d", CNN3DParams(margin_px=5))
    res_wide = run_analysis(rec, [cell], wide, fitted={"cnn1d": res.fits["cnn1d"]})
    assert res_wide.score_of("cell", "cnn3d").p_value < 0.05
