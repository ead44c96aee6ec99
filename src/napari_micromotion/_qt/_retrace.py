"""ROI traces and scores for edited ROIs, from an existing result (no Qt).

When ROIs are moved, added, removed or re-labelled after an analysis, the
per-ROI numbers can be updated without re-running it: ROIs whose mask did not
change keep everything; for new or changed ROIs the per-pixel predictions of the
one-dimensional methods are recomputed on the ROI's pixels only, with the same
band-pass design, matched-filter spikes and trained 1D CNN as the analysis, then
summed and scored exactly as :func:`napari_micromotion.pipeline.iter_analysis`
does.  The region-specific 3D network is trained per ROI, so edited ROIs lose its
trace and weights until the next run (a warning says so), as do their beats and
detection limits.

Recommended home in the core: ``pipeline.iter_roi_traces`` (see the report).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Generator, Sequence

import numpy as np

from ..filters import bandpass, design_bandpass, dff
from ..progress import Progress
from ..recording import Recording
from ..rois import ROI, rasterize
from ..scoring import max_lag_frames, score_columns, surrogate_p_value

__all__ = ["iter_retrace", "roi_pixel_traces"]


def _truth_of(trace: np.ndarray, fps: float, params: Any) -> np.ndarray:
    if params.ground_truth == "dff":
        return dff(trace, fps, params.baseline_window_s)
    return np.asarray(trace, dtype=np.float64)


def roi_pixel_traces(rec: Recording, mask: np.ndarray, results: Any) -> dict[str, np.ndarray]:
    """Per-method ROI sums (T,) of the 1D methods for the pixels of *mask*, as in the analysis."""
    params = results.params
    pb = results.passband
    design = design_bandpass(results.fps, pb["low_hz"], pb["high_hz"], int(pb["order"]),
                             padtype=pb.get("padtype", params.padtype))
    rows, cols = np.nonzero(mask)
    x = np.asarray(rec.transmission[:, rows, cols])  # (T, P), without copying the whole stack
    filt = bandpass(x, design)
    out: dict[str, np.ndarray] = {}
    sq = filt * filt
    out["bandpass"] = sq.sum(axis=1, dtype=np.float64).astype(np.float32)
    methods = list(results.methods)
    if "matched" in methods and results.truth is not None:
        from ..detectors.matched import find_training_spikes, matched_filter, templates

        fps = results.fps
        onsets, _ = find_training_spikes(np.asarray(results.truth, np.float64), fps, results.training, params.matched)
        pre = int(round(params.matched.pre_s * fps))
        post = int(round(params.matched.post_s * fps))
        mf = matched_filter(filt, templates(filt, onsets, pre, post), pre)
        out["matched"] = (mf * mf).sum(axis=1, dtype=np.float64).astype(np.float32)
    if "cnn1d" in methods and results.cnn1d is not None:
        from ..detectors.cnn1d import predict_cnn1d

        norm = results.cnn1d.normalisation
        mean = np.asarray(x, dtype=np.float32).mean(axis=0)
        mode = getattr(norm, "mode", "relative")
        try:  # the pipeline's per-pixel input normalisation (newer cores)
            from ..detectors.cnn1d import normalise_columns
        except ImportError:  # pragma: no cover - older cores: relative intensity only
            normalise_columns = None
        if normalise_columns is not None:
            cnn_x = normalise_columns(filt, mean, mode)
        else:  # pragma: no cover
            safe = np.where(np.abs(mean) > 0, mean, 1).astype(np.float32)
            cnn_x = filt / safe
        cnn_x /= np.float32(norm.input_scale)
        pred = predict_cnn1d(results.cnn1d.net, cnn_x, device=results.device if results.device == "cuda" else "cpu")
        out["cnn1d"] = pred.sum(axis=1, dtype=np.float64).astype(np.float32)
    return out


def iter_retrace(rec: Recording, rois: Sequence[ROI], results: Any) -> Generator[Progress, None, Any]:
    """Yield progress; return a copy of *results* whose ROI numbers match *rois*."""
    from ..pipeline import METHODS

    params = results.params
    fps = results.fps
    rois = list(rois)
    masks = rasterize(rois, rec.frame_shape) if rois else None
    old_masks = {} if results.roi_masks is None else dict(zip(results.roi_names, results.roi_masks))
    v0, v1 = results.validation
    max_lag = max_lag_frames(params.max_lag_s, fps, v1 - v0)
    truth = None if results.truth is None else np.asarray(results.truth, np.float64)
    names = [r.name for r in rois]
    kinds = [r.kind for r in rois]
    unchanged = {n for i, n in enumerate(names) if n in old_masks and np.array_equal(old_masks[n], masks.masks[i])}
    changed = [n for n in names if n not in unchanged]
    roi_traces: dict[tuple[str, str], np.ndarray] = {}
    roi_sd: dict[tuple[str, str], np.ndarray] = {}
    roi_truth: dict[str, np.ndarray] = {}
    for (name, m), tr in results.roi_traces.items():
        if name in unchanged:
            roi_traces[(name, m)] = tr
    for (name, m), sd in results.roi_sd.items():
        if name in unchanged:
            roi_sd[(name, m)] = sd
    for name, tr in results.roi_truth.items():
        if name in unchanged:
            roi_truth[name] = tr
    fl = rec.fluorescence
    for k, name in enumerate(changed):
        i = names.index(name)
        mask = masks.masks[i]
        for m, tr in roi_pixel_traces(rec, mask, results).items():
            roi_traces[(name, m)] = tr
        if fl is not None and fl.ndim == 3:
            rows, cols = np.nonzero(mask)
            raw = np.asarray(fl[:, rows, cols], np.float64).sum(axis=1)
            roi_truth[name] = _truth_of(raw, fps, params).astype(np.float32)
        yield Progress("roi traces", (k + 1) / max(len(changed), 1), name)
    old_rows = {(row["roi"], row["method"]): row for row in results.roi_scores}
    rows: list[dict[str, Any]] = []
    order = [m for m in METHODS if m in results.methods]
    n_jobs = max(len(names) * len(order), 1)
    done = 0
    for i, (name, kind) in enumerate(zip(names, kinds)):
        ref = roi_truth.get(name) if params.roi_truth else truth
        for m in order:
            done += 1
            tr = roi_traces.get((name, m))
            if tr is None:
                continue
            if name in unchanged and (name, m) in old_rows:
                rows.append({**old_rows[(name, m)], "kind": kind})
                continue
            row: dict[str, Any] = {"roi": name, "kind": kind, "method": m, "n_pixels": int(masks.masks[i].sum())}
            if ref is not None:
                ref64 = np.asarray(ref, np.float64)
                p, s = surrogate_p_value(tr[v0:v1], ref64[v0:v1], max_lag, n_surrogates=params.n_surrogates,
                                         seed=params.seed + i)
                _, lag = score_columns(np.asarray(tr[v0:v1], np.float64)[:, None], ref64[v0:v1], max_lag)
                row.update(score=s, lag_s=float(lag[0]) / fps, p_value=p)
            else:
                row.update(score=float("nan"), lag_s=float("nan"), p_value=float("nan"))
            rows.append(row)
            yield Progress("roi scores", done / n_jobs, f"{name} / {m}")
    warnings = list(results.warnings)
    lost_3d = [n for n in changed if "cnn3d" in results.methods]
    if lost_3d:
        msg = f"3D network: re-run the analysis for the edited ROI(s) {', '.join(lost_3d)}."
        if msg not in warnings:
            warnings.append(msg)
    keep = set(unchanged)
    return replace(
        results,
        roi_names=names, roi_kinds=kinds, roi_masks=masks.masks if masks is not None else None,
        roi_truth=roi_truth, roi_traces=roi_traces, roi_sd=roi_sd, roi_scores=rows,
        weights={n: w for n, w in results.weights.items() if n in keep},
        cnn3d={n: mdl for n, mdl in results.cnn3d.items() if n in keep},
        beats=[b for b in results.beats if b["roi"] in keep],
        beat_rates=[b for b in results.beat_rates if b["roi"] in keep],
        limits=[b for b in results.limits if b["roi"] in keep],
        warnings=warnings,
    )
