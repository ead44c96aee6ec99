"""Per-ROI statistics (no Qt).

* :func:`iter_score_rois` scores every ROI trace of every method against the ground
  truth (the paper's score, its lag and a circular-shift p-value), the same way for
  all methods;
* :func:`beats_and_limits` finds beats (from the motion energy and from the calcium)
  and the shot-noise detection limit of every ROI (or of the whole frame without ROIs);

Both are used by the analysis and, through it, by :mod:`napari_micromotion.retrace`.
"""

from __future__ import annotations

from typing import Generator, Sequence

import numpy as np

from .beats import beat_stats, energy_beats, fluorescence_beats
from .limits import detection_limit
from .methods import AnalysisContext
from .progress import Progress
from .results import WHOLE_FIELD, BeatRateRow, BeatRow, LimitRow, ScoreRow
from .scoring import n_surrogates_used, score_columns, surrogate_p_value

__all__ = ["iter_score_rois", "beats_and_limits"]


def iter_score_rois(ctx: AnalysisContext, roi_traces: dict[tuple[str, str], np.ndarray], methods: Sequence[str]
                    ) -> Generator[Progress, None, list[ScoreRow]]:
    """Score rows for every ROI (in ROI order) and method (in *methods* order) that has a trace.

    The p-value's surrogates are seeded with the analysis seed plus the ROI's position
    in the full ROI list, so a re-traced ROI gets exactly the p-value of a fresh run.
    """
    rows: list[ScoreRow] = []
    masks = ctx.masks
    if masks is None:
        return rows
    params = ctx.params
    v0, v1 = ctx.validation
    used = n_surrogates_used(v1 - v0, ctx.max_lag, params.n_surrogates)
    if ctx.truth is not None and used < params.n_surrogates:
        ctx.warn(f"only {used} distinct time shifts fit in the {v1 - v0} validation frames, so no p-value can be "
                 f"below 1/{used + 1} = {1 / (used + 1):.2g} (not 1/{params.n_surrogates + 1}); a longer validation "
                 "range gives finer p-values.")
    todo = ctx.roi_names()
    n_jobs = max(len(todo) * len(methods), 1)
    done = 0
    for i, (name, kind) in enumerate(zip(masks.names, masks.kinds)):
        if name not in todo:
            continue
        ref = ctx.reference(name)
        for m in methods:
            done += 1
            tr = roi_traces.get((name, m))
            if tr is None:
                continue
            row = ScoreRow(roi=name, kind=kind, method=m, n_pixels=int(masks.n_pixels[i]))
            if ref is not None:
                p, s = surrogate_p_value(tr[v0:v1], ref[v0:v1], ctx.max_lag, n_surrogates=params.n_surrogates,
                                         seed=params.seed + i)
                _, lag = score_columns(tr[v0:v1, None], ref[v0:v1], ctx.max_lag)
                row.score, row.lag_s, row.p_value = s, float(lag[0]) / ctx.fps, p
            rows.append(row)
            yield Progress("roi scores", done / n_jobs, f"{name} / {m}")
    return rows


def beats_and_limits(ctx: AnalysisContext, still: np.ndarray, roi_energy: np.ndarray | None,
                     roi_filtered: np.ndarray | None, frame_energy: np.ndarray, frame_filtered: np.ndarray
                     ) -> tuple[list[BeatRow], list[BeatRateRow], list[LimitRow]]:
    """Beats from the band-pass energy (and from calcium), rates and detection limits per ROI.

    Without ROIs the whole frame is one region called ``frame`` (:data:`~napari_micromotion.results.WHOLE_FIELD`).
    """
    params = ctx.params
    fps = ctx.fps
    rec = ctx.recording
    masks = ctx.masks
    regions: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]] = []
    if masks is not None:
        for i, (name, kind) in enumerate(zip(masks.names, masks.kinds)):
            if name in ctx.roi_names():
                regions.append((name, kind, roi_energy[:, i], roi_filtered[:, i] / masks.n_pixels[i], masks.masks[i]))
    else:
        ny, nx = ctx.frame_shape
        regions.append((WHOLE_FIELD, "other", frame_energy, frame_filtered / (ny * nx), np.ones((ny, nx), bool)))
    beats: list[BeatRow] = []
    rates: list[BeatRateRow] = []
    limits: list[LimitRow] = []
    for name, kind, energy_tr, filt_mean, mask in regions:
        sources = [("transmission", energy_beats(energy_tr, fps, params.beats))]
        ftrace = ctx.roi_truth.get(name, ctx.truth)
        if rec.has_fluorescence and ftrace is not None:
            sources.append(("fluorescence", fluorescence_beats(
                ftrace, fps, params.beats, baseline_window_s=params.baseline_window_s,
                already_dff=params.ground_truth == "dff")))
        for source, (times, peaks) in sources:
            rr = np.diff(times)
            for k, tb in enumerate(times):
                beats.append(BeatRow(roi=name, kind=kind, source=source, beat=k + 1, time_s=float(tb),
                                     rr_s=float(rr[k - 1]) if k > 0 else float("nan"), peak_time_s=float(peaks[k])))
            rates.append(BeatRateRow(roi=name, kind=kind, source=source, **beat_stats(times)))
        lim = detection_limit(still, mask, filt_mean, ctx.design, rec.pixel_size_um, params.camera)
        limits.append(LimitRow(roi=name, kind=kind, **lim))
    return beats, rates, limits
