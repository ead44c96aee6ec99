"""Per-ROI statistics and re-tracing of edited ROIs (no Qt).

* :func:`iter_score_rois` scores every ROI trace of every method against the ground
  truth (the paper's score, its lag and a circular-shift p-value), the same way for
  all methods;
* :func:`beats_and_limits` finds beats (from the motion energy and from the calcium)
  and the shot-noise detection limit of every ROI (or of the whole frame without ROIs);
* :func:`iter_retrace` updates a result after ROIs were moved, added, removed or
  re-labelled: it runs the analysis again for the changed ROIs only, over their rows
  only, with the methods' fitted states (the same band-pass, spikes, trained 1D CNN),
  and refits region methods (the 3D network) for them; everything else is kept.  This
  is what napari runs when ROIs are edited, so the numbers always equal those of a
  fresh analysis.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Generator, Sequence

import numpy as np

from .beats import beat_stats, beats_from_energy, beats_from_fluorescence
from .limits import detection_limit
from .methods import METHODS, AnalysisContext
from .progress import Progress
from .recording import Recording
from .results import BeatRateRow, BeatRow, LimitRow, Results, ScoreRow
from .rois import ROI, rasterize
from .scoring import score_columns, surrogate_p_value

__all__ = ["iter_score_rois", "beats_and_limits", "iter_retrace", "changed_rois"]


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

    Without ROIs the whole frame is one region called ``frame``.
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
        regions.append(("frame", "other", frame_energy, frame_filtered / (ny * nx), np.ones((ny, nx), bool)))
    beats: list[BeatRow] = []
    rates: list[BeatRateRow] = []
    limits: list[LimitRow] = []
    for name, kind, energy_tr, filt_mean, mask in regions:
        sources = [("transmission", beats_from_energy(energy_tr, fps, params.beats))]
        ftrace = ctx.roi_truth.get(name, ctx.truth)
        if rec.has_fluorescence and ftrace is not None:
            sources.append(("fluorescence", beats_from_fluorescence(
                ftrace, fps, params.beats, baseline_window_s=params.baseline_window_s,
                already_dff=params.ground_truth == "dff")))
        for source, times in sources:
            rr = np.diff(times)
            for k, tb in enumerate(times):
                beats.append(BeatRow(roi=name, kind=kind, source=source, beat=k + 1, time_s=float(tb),
                                     rr_s=float(rr[k - 1]) if k > 0 else float("nan")))
            rates.append(BeatRateRow(roi=name, kind=kind, source=source, **beat_stats(times)))
        lim = detection_limit(still, mask, filt_mean, ctx.design, rec.pixel_size_um, params.camera)
        limits.append(LimitRow(roi=name, kind=kind, **lim))
    return beats, rates, limits


def changed_rois(results: Results, rois: Sequence[ROI], frame_shape: tuple[int, int]) -> list[str]:
    """Names of *rois* whose pixels differ from those analysed in *results* (new ones included)."""
    masks = rasterize(list(rois), frame_shape) if rois else None
    old = {} if results.roi_masks is None else dict(zip(results.roi_names, results.roi_masks))
    if masks is None:
        return []
    return [n for i, n in enumerate(masks.names) if n not in old or not np.array_equal(old[n], masks.masks[i])]


def iter_retrace(rec: Recording, rois: Sequence[ROI], results: Results) -> Generator[Progress, None, Results]:
    """Yield progress; return a copy of *results* whose ROI numbers match *rois*.

    ROIs whose pixels did not change keep every number (a new kind is only relabelled);
    changed and new ROIs are computed by the analysis itself, restricted to them, with
    the fitted states of *results* (restored from its folder's models when it was read
    back); removed ROIs disappear.
    """
    from .pipeline import iter_analysis

    rois = list(rois)
    names = [r.name for r in rois]
    kinds = {r.name: r.kind for r in rois}
    changed = changed_rois(results, rois, rec.frame_shape)
    keep = [n for n in names if n not in changed]
    fitted = {m: s for m, s in results.fits.items()
              if s is not None and m in METHODS and METHODS[m].kind == "pixel"}
    sub = None
    if changed:
        params = replace(results.params, methods=tuple(results.methods), validation=tuple(results.validation))
        sub = yield from iter_analysis(rec, rois, params, fitted=fitted, only_rois=changed, maps=False)

    def pick(old: dict, new: dict | None) -> dict:
        out = {k: v for k, v in old.items() if k[0] in keep}
        if new is not None:
            out.update({k: v for k, v in new.items() if k[0] in changed})
        return out

    def rows_of(old: list, new: list | None) -> list:
        by_roi: dict[str, list] = {}
        for row in old:
            if row.roi in keep:
                by_roi.setdefault(row.roi, []).append(replace(row, kind=kinds[row.roi]))
        for row in new or []:
            by_roi.setdefault(row.roi, []).append(row)
        return [row for n in names for row in by_roi.get(n, [])]

    warnings = list(results.warnings)
    region_maps = {k: v for k, v in results.region_maps.items() if k[1] in keep}
    roi_truth = {k: v for k, v in results.roi_truth.items() if k in keep}
    fits = dict(results.fits)
    if sub is not None:
        region_maps.update({k: v for k, v in sub.region_maps.items() if k[1] in changed})
        roi_truth.update({k: v for k, v in sub.roi_truth.items() if k in changed})
        for w in sub.warnings:
            if w not in warnings:
                warnings.append(w)
        for m, state in sub.fits.items():
            if isinstance(state, dict) and isinstance(fits.get(m), dict):   # region methods: per-ROI models
                fits[m] = {**{k: v for k, v in fits[m].items() if k in keep}, **state}
    masks = rasterize(rois, rec.frame_shape) if rois else None
    return replace(
        results,
        rois=rois, roi_names=names, roi_kinds=[kinds[n] for n in names],
        roi_masks=masks.masks if masks is not None else None,
        roi_truth=roi_truth,
        roi_traces=pick(results.roi_traces, sub.roi_traces if sub else None),
        roi_sd=pick(results.roi_sd, sub.roi_sd if sub else None),
        roi_scores=rows_of(results.roi_scores, sub.roi_scores if sub else None),
        beats=rows_of(results.beats, sub.beats if sub else None),
        beat_rates=rows_of(results.beat_rates, sub.beat_rates if sub else None),
        limits=rows_of(results.limits, sub.limits if sub else None),
        region_maps=region_maps, fits=fits, warnings=warnings,
    )
