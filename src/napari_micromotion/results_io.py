"""Results read back from an analysis output folder.

The inverse of :func:`napari_micromotion.export.write_results`: the files are read by
the same layout table (:data:`napari_micromotion.layout.ANALYSIS_LAYOUT`), the
parameters and ROIs come from ``run.json``, and each method restores its fitted state
(the trained 1D CNN, the matched filter's spikes) so that edited ROIs can be re-traced
exactly as a fresh analysis would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MicromotionError, check, check_folder

__all__ = ["read_results", "params_from_dict", "read_run_json", "results_mismatch"]


def params_from_dict(d: dict[str, Any]) -> Any:
    """:class:`~napari_micromotion.pipeline.AnalysisParams` from ``run.json``'s ``parameters``."""
    from .pipeline import AnalysisParams

    return AnalysisParams.from_dict(d)


def read_run_json(folder: Path) -> dict[str, Any]:
    """``run.json`` of an output folder (one-sentence errors when it is missing or unreadable)."""
    out = Path(folder)
    check_folder(out, "results folder")
    run_path = out / "run.json"
    check(run_path.is_file(), f"{out} is not an analysis output folder (it has no run.json).")
    try:
        run = json.loads(run_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise MicromotionError(f"{run_path} is not readable JSON ({str(exc)[:80]}).") from None
    check(isinstance(run, dict), f"{run_path} is not an analysis record (a JSON object with the run's settings).")
    return run


def read_results(folder: str | Path) -> Any:
    """A :class:`~napari_micromotion.results.Results` from an output folder of ``micromotion analyze``."""
    from .layout import ANALYSIS_LAYOUT
    from .methods import METHODS
    from .pipeline import AnalysisParams
    from .results import Results
    from .rois import parse_rois, rasterize

    out = Path(folder)
    run = read_run_json(out)
    warnings = list(run.get("warnings", []))
    try:
        params = params_from_dict(run.get("parameters", {}))
        from .pipeline import analysis_specs
        from .schema import check_ranges

        check_ranges(params, analysis_specs())      # an edited run.json: its values as the analysis would check them
    except (TypeError, ValueError) as exc:
        params = AnalysisParams()
        warnings.append(f"parameters in run.json could not be read back ({str(exc)[:80]}); defaults shown.")
    recd = run.get("recording", {})
    fields: dict[str, Any] = {"methods": list(run.get("methods", [])), "warnings": warnings}
    for entry in ANALYSIS_LAYOUT:
        try:
            entry.read(out, fields)
        except Exception as exc:   # a damaged file (edited, truncated, emptied): show the rest, and say which
            detail = str(exc).strip().splitlines()[0][:80] if str(exc).strip() else type(exc).__name__
            warnings.append(f"could not read {entry.path} in {out.name} ({detail}); it is left out.")
            for name in (entry.field,) if isinstance(getattr(entry, "field", None), str) else ():
                fields.pop(name, None)
    for name in ("still", "energy_map", "activity_map"):
        img = fields.get(name)
        if img is not None and np.ndim(img) != 2:
            warnings.append(f"the {name.replace('_', ' ')} in {out.name} is damaged; it is left out.")
            fields.pop(name)
    score_maps = fields.get("score_maps", {})
    if not fields["methods"]:
        fields["methods"] = METHODS.order(score_maps)
    still = fields.get("still")
    any_map = still if still is not None else next(iter(score_maps.values()), None)
    check(any_map is not None or recd.get("frame_shape"), f"{out} holds no maps (maps/still.tif or scores/*.tif).")
    frame_shape = tuple(int(v) for v in (recd.get("frame_shape") or any_map.shape))
    if still is None:
        fields["still"] = np.zeros(frame_shape, np.float32)
    if fields.get("energy_map") is None:
        fields["energy_map"] = np.zeros(frame_shape, np.float32)
    rois = run.get("rois") or []
    roi_names = [r["name"] for r in rois] if rois else list(dict.fromkeys(r for r, _ in fields.get("roi_traces", {})))
    kind_of = {r["name"]: r.get("kind", "other") for r in rois}
    kind_of.update({row.roi: row.kind for row in fields.get("roi_scores", []) if row.roi not in kind_of})
    roi_objs: list[Any] = []
    roi_masks = None
    if rois and all("polygon" in r for r in rois):
        try:
            roi_objs = parse_rois(rois, "run.json")    # with a composite ROI's "parts"
            roi_masks = rasterize(roi_objs, frame_shape).masks
        except MicromotionError as exc:
            warnings.append(f"ROI polygons in run.json could not be used ({exc}).")
            roi_objs = []
    n_frames = int(recd.get("n_frames") or fields.pop("n_frames", 0) or 0)
    fields.pop("n_frames", None)
    validation = tuple(run.get("validation_frames") or (0, n_frames))
    if len(validation) != 2 or not all(isinstance(v, int) for v in validation):
        warnings.append(f"the validation frames in run.json ({validation!r}) are damaged; all frames are shown.")
        validation = (0, n_frames)
    for m in fields["methods"]:
        if m in METHODS and METHODS[m].kind == "pixel" and m in (run.get("chance_scores") or {}) and m not in score_maps:
            warnings.append(f"the {METHODS[m].label}'s score map (scores/{m}.tif) is missing; it is not shown.")
    results = Results(
        params=params, fps=float(recd.get("fps") or 1.0), n_frames=n_frames, frame_shape=frame_shape,
        pixel_size_um=recd.get("pixel_size_um"), validation=(int(validation[0]), int(validation[1])),
        training=[tuple(s) for s in run.get("training_frames", [])], passband=dict(run.get("passband", {})),
        rois=roi_objs, roi_names=roi_names, roi_kinds=[kind_of.get(n, "other") for n in roi_names],
        roi_masks=roi_masks, device=str(run.get("device", "cpu")),
        chance_scores={k: float(v) for k, v in (run.get("chance_scores") or {}).items()},
        inputs=dict(run.get("inputs") or {}),
        timings_s={k: float(v) for k, v in (run.get("timings_s") or {}).items()}, **fields)
    needed = [d for name in results.methods if name in METHODS for d in (*METHODS[name].requires.uses, name)]
    for name in dict.fromkeys([*needed, *results.methods]):
        m = METHODS.get(name)
        if m is None:
            warnings.append(f"method {name!r} is not installed; its results are shown but cannot be re-traced.")
            continue
        try:
            state = m.restore(out, results)
        except MicromotionError as exc:
            warnings.append(f"the fitted {m.label} could not be restored ({exc}).")
            state = None
        if state is not None:
            results.fits[name] = state
    return results


def results_mismatch(results: Any, recording: Any) -> list[str]:
    """Why *results* may not belong to *recording* (frame size, frame count, input checksum); empty if none."""
    out = []
    if tuple(results.frame_shape) != tuple(recording.frame_shape):
        out.append(f"the results are for {results.frame_shape[0]} x {results.frame_shape[1]} px frames, "
                   f"the open recording has {recording.frame_shape[0]} x {recording.frame_shape[1]} px")
    if results.n_frames and results.n_frames != recording.n_frames:
        out.append(f"the results cover {results.n_frames} frames, the open recording has {recording.n_frames}")
    theirs = (results.inputs.get("transmission") or {}).get("checksum")
    path = (recording.provenance.get("transmission") or {}).get("path")
    if theirs and path and Path(path).is_file():
        from .io import file_checksum

        if file_checksum(path) != theirs:
            out.append(f"the results were computed from another transmission file than {Path(path).name} "
                       "(its checksum differs)")
    return out
