"""Results read back from an analysis output folder.

The inverse of :func:`napari_micromotion.export.write_results` for what the
viewer shows: score and delay maps, still/energy/activity maps, 3D weights with
their ROI boxes, ROI traces (``traces.csv``), ROI scores (``roi_scores.csv``) and
the parameters (``run.json``).  Models are loaded when present so edited ROIs can
be re-traced with the same 1D CNN.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MicromotionError, check

__all__ = ["read_results", "params_from_dict"]


def params_from_dict(d: dict[str, Any]) -> Any:
    """:class:`~napari_micromotion.pipeline.AnalysisParams` from ``run.json``'s ``parameters``."""
    from .pipeline import AnalysisParams

    def build(cls: Any, values: dict[str, Any]) -> Any:
        defaults = cls()
        kwargs = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            v = values[f.name]
            default = getattr(defaults, f.name)
            if is_dataclass(default) and isinstance(v, dict):
                v = build(type(default), v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return build(AnalysisParams, d)


def _float(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    check(rows, f"{path.name} is empty.")
    return rows[0], rows[1:]


def read_results(folder: str | Path) -> Any:
    """A :class:`~napari_micromotion.pipeline.Results` from an output folder of ``micromotion analyze``."""
    import tifffile

    from .pipeline import METHODS, AnalysisParams, Results
    from .rois import ROI, rasterize

    out = Path(folder)
    check(out.is_dir(), f"results folder {out} does not exist.")
    run_path = out / "run.json"
    check(run_path.is_file(), f"{out} is not an analysis output folder (no run.json).")
    try:
        run = json.loads(run_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise MicromotionError(f"{run_path} is not readable JSON ({str(exc)[:80]}).") from None
    warnings = list(run.get("warnings", []))
    try:
        params = params_from_dict(run.get("parameters", {}))
    except (TypeError, ValueError) as exc:
        params = AnalysisParams()
        warnings.append(f"parameters in run.json could not be read back ({str(exc)[:80]}); defaults shown.")
    recd = run.get("recording", {})

    def tif(path: Path) -> np.ndarray:
        try:
            return np.asarray(tifffile.imread(path), np.float32)
        except Exception as exc:
            raise MicromotionError(f"{path} is not a readable TIFF ({str(exc)[:80]}).") from None

    maps = out / "maps"
    still = tif(maps / "still.tif") if (maps / "still.tif").is_file() else None
    score_maps = {p.stem: tif(p) for p in sorted((out / "scores").glob("*.tif"))} if (out / "scores").is_dir() else {}
    lag_maps = {p.stem: tif(p) for p in sorted((out / "lags").glob("*.tif"))} if (out / "lags").is_dir() else {}
    any_map = still if still is not None else next(iter(score_maps.values()), None)
    check(any_map is not None, f"{out} holds no maps (maps/still.tif or scores/*.tif).")
    frame_shape = tuple(recd.get("frame_shape") or any_map.shape)
    if still is None:
        still = np.zeros(frame_shape, np.float32)
    energy = tif(maps / "energy.tif") if (maps / "energy.tif").is_file() else np.zeros(frame_shape, np.float32)
    activity = tif(maps / "activity.tif") if (maps / "activity.tif").is_file() else None

    weights: dict[str, tuple[tuple[int, int, int, int], np.ndarray]] = {}
    if (out / "weights").is_dir():
        for p in sorted((out / "weights").glob("*.tif")):
            try:
                with tifffile.TiffFile(p) as tf:
                    meta = (tf.shaped_metadata or [{}])[0] or {}
                    w = np.asarray(tf.asarray(), np.float32)
            except Exception as exc:
                raise MicromotionError(f"{p} is not a readable TIFF ({str(exc)[:80]}).") from None
            box = meta.get("box_row0_row1_col0_col1")
            if box is None or w.ndim != 3:
                warnings.append(f"{p.name}: no ROI box in its metadata; not shown.")
                continue
            weights[str(meta.get("roi", p.stem))] = (tuple(int(v) for v in box), w)

    fps = float(recd.get("fps") or 1.0)
    n_frames = int(recd.get("n_frames") or 0)
    truth = None
    roi_traces: dict[tuple[str, str], np.ndarray] = {}
    roi_sd: dict[tuple[str, str], np.ndarray] = {}
    roi_truth: dict[str, np.ndarray] = {}
    if (out / "traces.csv").is_file():
        header, rows = _read_csv(out / "traces.csv")
        table = np.array([[_float(v) for v in row] for row in rows], dtype=np.float64).reshape(len(rows), len(header))
        n_frames = n_frames or table.shape[0]
        for j, col in enumerate(header):
            values = table[:, j].astype(np.float32)
            if col == "fluorescence":
                truth = None if np.isnan(values).all() else values
            elif "/" in col:
                roi, series = col.split("/", 1)
                if series == "fluorescence":
                    roi_truth[roi] = values
                elif series.endswith("_sd") and series[:-3] in METHODS:
                    roi_sd[(roi, series[:-3])] = values
                elif series in METHODS:
                    roi_traces[(roi, series)] = values
    roi_scores: list[dict[str, Any]] = []
    if (out / "roi_scores.csv").is_file():
        header, rows = _read_csv(out / "roi_scores.csv")
        for row in rows:
            d = dict(zip(header, row))
            rec = {"roi": d.get("roi", ""), "kind": d.get("kind", "other"), "method": d.get("method", "")}
            for key in ("score", "lag_s", "p_value"):
                rec[key] = _float(d.get(key, "nan"))
            n = _float(d.get("n_pixels", "nan"))
            rec["n_pixels"] = int(n) if math.isfinite(n) else 0
            roi_scores.append(rec)
    rois = run.get("rois") or []
    roi_names = [r["name"] for r in rois] if rois else list(dict.fromkeys(r for r, _ in roi_traces))
    kind_of = {r["name"]: r.get("kind", "other") for r in rois}
    roi_objs: list[Any] = []
    roi_masks = None
    if rois and all("polygon" in r for r in rois):  # written since ROI polygons are kept in run.json
        try:
            roi_objs = [ROI(r["name"], r.get("kind", "other"), np.asarray(r["polygon"], float)) for r in rois]
            roi_masks = rasterize(roi_objs, (int(frame_shape[0]), int(frame_shape[1]))).masks
        except MicromotionError as exc:
            warnings.append(f"ROI polygons in run.json could not be used ({exc}).")
            roi_objs = []
    kind_of.update({row["roi"]: row["kind"] for row in roi_scores if row["roi"] not in kind_of})
    cnn1d = None
    model_path = out / "models" / "cnn1d.safetensors"
    if model_path.is_file():
        try:
            from .detectors.models import load_cnn1d

            cnn1d = load_cnn1d(model_path)
        except MicromotionError as exc:
            warnings.append(f"models/cnn1d.safetensors was not loaded ({exc}).")
    validation = tuple(run.get("validation_frames") or (0, n_frames))
    return Results(
        params=params, fps=fps, n_frames=n_frames, frame_shape=(int(frame_shape[0]), int(frame_shape[1])),
        pixel_size_um=recd.get("pixel_size_um"), validation=(int(validation[0]), int(validation[1])),
        training=[tuple(s) for s in run.get("training_frames", [])], passband=dict(run.get("passband", {})),
        methods=list(run.get("methods", [m for m in METHODS if m in score_maps])), still=still, energy_map=energy,
        score_maps=score_maps, lag_maps=lag_maps, activity_map=activity, truth=truth,
        roi_names=roi_names, roi_kinds=[kind_of.get(n, "other") for n in roi_names], roi_masks=roi_masks, rois=roi_objs,
        roi_truth=roi_truth, roi_traces=roi_traces, roi_sd=roi_sd, roi_scores=roi_scores, weights=weights,
        cnn1d=cnn1d, warnings=warnings, device=str(run.get("device", "cpu")),
        timings_s={k: float(v) for k, v in (run.get("timings_s") or {}).items()},
    )
