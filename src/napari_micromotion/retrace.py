"""Re-tracing edited ROIs: a result updated after ROIs were moved, added, removed or re-labelled (no Qt).

:func:`iter_retrace` runs the analysis again for the changed ROIs only, over their rows
only, with the methods' fitted states (the same band-pass, spikes, trained 1D CNN), and
refits region methods (the 3D network) for them; everything else is kept.  This is
what napari runs when ROIs are edited, so the numbers always equal those of a fresh
analysis.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Generator, Sequence

import numpy as np

from .methods import METHODS
from .methods.flow import SOURCE as CONTRACTION_SOURCE
from .pipeline import CONTRACTION_METHOD, iter_analysis
from .progress import Progress
from .recording import Recording
from .results import WHOLE_FIELD, Results
from .rois import ROI, rasterize

__all__ = ["iter_retrace", "changed_rois", "iter_pixel_traces", "pixel_name"]


def changed_rois(results: Results, rois: Sequence[ROI], frame_shape: tuple[int, int]) -> list[str]:
    """Names of *rois* whose pixels differ from those analysed in *results* (new ones included)."""
    masks = rasterize(list(rois), frame_shape) if rois else None
    old = {} if results.roi_masks is None else dict(zip(results.roi_names, results.roi_masks))
    if masks is None:
        return []
    return [n for i, n in enumerate(masks.names) if n not in old or not np.array_equal(old[n], masks.masks[i])]


def _beats_from(results: Results) -> str:
    """Where the analysis of *results* took its transmission beats (``auto`` resolved): a re-trace takes them there.

    Auto looks at the whole recording once (does anything contract?); an edited ROI is
    re-traced with the same answer, so its beats come from the same source as the others'.
    """
    if results.params.beats_from != "auto":
        return results.params.beats_from
    return "contraction" if any(r.source == CONTRACTION_SOURCE for r in results.beat_rates) else "energy"


def iter_retrace(rec: Recording, rois: Sequence[ROI], results: Results) -> Generator[Progress, None, Results]:
    """Yield progress; return a copy of *results* whose ROI numbers match *rois*.

    ROIs whose pixels did not change keep every number (a new kind is only relabelled);
    changed and new ROIs are computed by the analysis itself, restricted to them, with
    the fitted states of *results* (restored from its folder's models when it was read
    back); removed ROIs disappear.
    """
    rois = list(rois)
    names = [r.name for r in rois]
    kinds = {r.name: r.kind for r in rois}
    changed = changed_rois(results, rois, rec.frame_shape)
    keep = [n for n in names if n not in changed]
    fitted = {m: s for m, s in results.fits.items()
              if s is not None and m in METHODS and METHODS[m].kind == "pixel"}
    sub = None
    if changed:
        params = replace(results.params, methods=tuple(results.methods), validation=tuple(results.validation),
                         beats_from=_beats_from(results))
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
    motion = {k: v for k, v in results.motion_traces.items() if k in keep or k == WHOLE_FIELD}
    contraction = {k: v for k, v in results.contraction_traces.items() if k in keep}
    fits = dict(results.fits)
    if sub is not None:
        region_maps.update({k: v for k, v in sub.region_maps.items() if k[1] in changed})
        roi_truth.update({k: v for k, v in sub.roi_truth.items() if k in changed})
        motion.update({k: v for k, v in sub.motion_traces.items() if k in changed})
        contraction.update({k: v for k, v in sub.contraction_traces.items() if k in changed})
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
        roi_truth=roi_truth, motion_traces=motion, contraction_traces=contraction,
        roi_traces=pick(results.roi_traces, sub.roi_traces if sub else None),
        roi_sd=pick(results.roi_sd, sub.roi_sd if sub else None),
        roi_scores=rows_of(results.roi_scores, sub.roi_scores if sub else None),
        beats=rows_of(results.beats, sub.beats if sub else None),
        beat_rates=rows_of(results.beat_rates, sub.beat_rates if sub else None),
        limits=rows_of(results.limits, sub.limits if sub else None),
        region_maps=region_maps, fits=fits, warnings=warnings,
    )


def pixel_name(row: int, col: int) -> str:
    """The name a single inspected pixel is traced under."""
    return f"pixel r{int(row)} c{int(col)}"


def iter_pixel_traces(rec: Recording, results: Results, row: int, col: int) -> Generator[Progress, None, Results]:
    """Every pixel method's prediction for the one pixel ``(row, col)``, scored like an ROI (linked inspection).

    Region methods are left out (they need a region); the fitted states of *results* are
    used, so the traces are those the analysis computed for that pixel.  Its motion beats
    come from band-pass energy unless the displacement was measured (scored) already: a
    pixel is no region whose contraction would be worth a whole optical-flow pass.
    """
    from .errors import check

    ny, nx = rec.frame_shape
    check(0 <= row < ny and 0 <= col < nx, f"pixel ({row}, {col}) lies outside the {ny} x {nx} px frame.")
    name = pixel_name(row, col)
    h = 0.49
    roi = ROI(name, "other", np.array([[row - h, col - h], [row - h, col + h], [row + h, col + h], [row + h, col - h]]))
    methods = tuple(m for m in results.methods if m in METHODS and METHODS[m].kind == "pixel")
    check(methods, "this result has no per-pixel method to trace a pixel with.")
    fitted = {m: s for m, s in results.fits.items() if s is not None and m in METHODS and METHODS[m].kind == "pixel"}
    beats_from = _beats_from(results) if CONTRACTION_METHOD in fitted else "energy"
    params = replace(results.params, methods=methods, validation=tuple(results.validation),
                     n_surrogates=min(results.params.n_surrogates, 199), beats_from=beats_from)
    return (yield from iter_analysis(rec, [roi], params, fitted=fitted, only_rois=[name], maps=False))
