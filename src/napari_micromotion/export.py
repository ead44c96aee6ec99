"""Writing results: the CLI's output layout, always complete or not at all.

Layout of an output folder::

    scores/<method>.tif     float32 (Y, X) score map over the validation frames
    lags/<method>.tif       float32 (Y, X) lag at the maximum, seconds (delay map)
    maps/still.tif          mean transmission image
    maps/energy.tif         band-pass RMS of dI/I per pixel (works without fluorescence)
    maps/activity.tif       fluorescence activity: score of each fluorescence pixel
    weights/<roi>.tif       float32 (3, h, w) dense weights of the 3D network ("attention")
    models/                 cnn1d.safetensors/.json, cnn3d_<roi>.safetensors/.json
    roi_scores.csv          roi,kind,method,score,lag_s,p_value,n_pixels
    traces.csv              frame,time_s,fluorescence,<roi>/<method>...,<roi>/cnn3d_sd,<roi>/fluorescence
    beats.csv, beat_rates.csv, limits.csv
    run.json                parameters, versions, input checksums, timings, warnings
    report.png              score maps and ROI traces (paper Figs. 3 and 4)

Everything is written into a temporary sibling folder that is renamed into place
only when complete; an existing folder is replaced only with ``overwrite``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import MicromotionError, check

__all__ = ["prepare_output_dir", "commit_output_dir", "write_results", "traces_table", "write_csv",
           "run_record", "safe_name"]


def prepare_output_dir(out: Path, overwrite: bool) -> Path:
    """Check that *out* may be (re)written and return a fresh temporary sibling folder.

    Nothing at *out* changes until :func:`commit_output_dir`.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        check(overwrite, f"output folder {out} exists; pass --overwrite (overwrite=True) to replace it.")
        check(out.is_dir(), f"output path {out} exists and is not a folder.")
    parent = out.absolute().parent
    check(parent.is_dir(), f"cannot create {out}: folder {parent} does not exist.")
    check(os.access(parent, os.W_OK | os.X_OK), f"cannot write into {parent} (permission denied).")
    remove_stale_siblings(out)
    try:
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise MicromotionError(f"cannot create a folder in {parent} ({exc.strerror or exc}).") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_siblings(out: Path) -> list[Path]:
    """Delete temporary siblings of *out* left by a run that crashed (its process is gone)."""
    removed = []
    out = Path(out)
    parent = out.absolute().parent
    for tag in ("old", "tmp"):
        for cand in sorted(parent.glob(f".{out.name}.{tag}-*")):
            parts = cand.name.rsplit(f".{tag}-", 1)[-1].split("-")
            if not (parts and parts[0].isdigit() and not _pid_alive(int(parts[0])) and cand.is_dir()):
                continue
            if tag == "old" and not out.exists():
                os.replace(cand, out)  # a crash between the two renames of a commit: restore the previous results
                continue
            shutil.rmtree(cand, ignore_errors=True)
            removed.append(cand)
    return removed


def commit_output_dir(tmp: Path, out: Path) -> None:
    """Move the complete *tmp* folder to *out*, replacing an old *out* only now."""
    out = Path(out)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.absolute().parent))
        os.rmdir(old)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)  # put the previous results back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(out, 0o777 & ~mask)


def safe_name(name: str) -> str:
    """A file-name-safe version of an ROI name."""
    keep = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name.strip())
    return keep or "roi"


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return f"{v:.7g}"
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write dict rows as CSV with the given column order."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            w.writerow([_fmt(row.get(c, "")) for c in columns])


def traces_table(results: Any) -> tuple[list[str], np.ndarray]:
    """Column names and a ``(T, n_columns)`` float64 table of every trace (as in ``traces.csv``)."""
    cols = ["frame", "time_s", "fluorescence"]
    data = [np.arange(results.n_frames, dtype=np.float64), results.time_s(),
            results.truth.astype(np.float64) if results.truth is not None else np.full(results.n_frames, np.nan)]
    from .pipeline import METHODS

    for name in results.roi_names:
        for m in METHODS:
            tr = results.roi_traces.get((name, m))
            if tr is not None:
                cols.append(f"{name}/{m}")
                data.append(np.asarray(tr, dtype=np.float64))
            sd = results.roi_sd.get((name, m))
            if sd is not None:
                cols.append(f"{name}/{m}_sd")
                data.append(np.asarray(sd, dtype=np.float64))
        if name in results.roi_truth:
            cols.append(f"{name}/fluorescence")
            data.append(np.asarray(results.roi_truth[name], dtype=np.float64))
    return cols, np.column_stack(data)


def _write_traces(path: Path, results: Any) -> None:
    cols, table = traces_table(results)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for row in table:
            w.writerow([int(row[0])] + [_fmt(v) for v in row[1:]])


def run_record(results: Any, inputs: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``run.json`` holds: enough to reproduce a result."""
    from .detectors.models import package_versions

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv[:],
        "package_versions": package_versions(),
        "inputs": inputs or {},
        "recording": {"n_frames": results.n_frames, "frame_shape": list(results.frame_shape), "fps": results.fps,
                      "pixel_size_um": results.pixel_size_um},
        "parameters": results.params.to_dict(),
        "methods": results.methods,
        "validation_frames": list(results.validation),
        "training_frames": [list(s) for s in results.training],
        "passband": results.passband,
        "device": results.device,
        "rois": [r.to_dict() for r in results.rois] if getattr(results, "rois", None)
        else [{"name": n, "kind": k} for n, k in zip(results.roi_names, results.roi_kinds)],
        "timings_s": {k: round(v, 4) for k, v in results.timings_s.items()},
        "warnings": results.warnings,
        **(extra or {}),
    }


def write_results(results: Any, out: str | os.PathLike, *, overwrite: bool = False, inputs: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None, report: bool = True, save_models: bool = True,
                  move_in: dict[str, Path] | None = None) -> Path:
    """Write *results* into folder *out* atomically (see module docstring for the layout).

    *move_in* maps names inside the output folder to existing files or folders (e.g. zarr
    stores written during the analysis) that are moved in before the folder is committed.
    """
    import tifffile

    from .detectors.models import save_cnn1d, save_cnn3d

    out = Path(out)
    tmp = prepare_output_dir(out, overwrite)
    try:
        for sub in ("scores", "lags", "maps"):
            (tmp / sub).mkdir()
        for m, arr in results.score_maps.items():
            tifffile.imwrite(tmp / "scores" / f"{m}.tif", np.asarray(arr, np.float32), metadata={"method": m})
        for m, arr in results.lag_maps.items():
            tifffile.imwrite(tmp / "lags" / f"{m}.tif", np.asarray(arr, np.float32), metadata={"method": m, "unit": "s"})
        tifffile.imwrite(tmp / "maps" / "still.tif", results.still.astype(np.float32))
        tifffile.imwrite(tmp / "maps" / "energy.tif", results.energy_map.astype(np.float32))
        if results.activity_map is not None:
            tifffile.imwrite(tmp / "maps" / "activity.tif", results.activity_map.astype(np.float32))
        if results.weights:
            (tmp / "weights").mkdir()
            for name, (box, w) in results.weights.items():
                tifffile.imwrite(tmp / "weights" / f"{safe_name(name)}.tif", np.asarray(w, np.float32),
                                 metadata={"roi": name, "box_row0_row1_col0_col1": list(box), "axes": "CYX"})
        write_csv(tmp / "roi_scores.csv", results.roi_scores,
                  ["roi", "kind", "method", "score", "lag_s", "p_value", "n_pixels"])
        _write_traces(tmp / "traces.csv", results)
        write_csv(tmp / "beats.csv", results.beats, ["roi", "kind", "source", "beat", "time_s", "rr_s"])
        write_csv(tmp / "beat_rates.csv", results.beat_rates,
                  ["roi", "kind", "source", "n_beats", "rate_bpm", "rr_mean_s", "rr_sd_s", "rmssd_s", "rr_cv"])
        if results.limits:
            write_csv(tmp / "limits.csv", results.limits, ["roi", "kind"] + [k for k in results.limits[0] if k not in ("roi", "kind")])
        if save_models and (results.cnn1d is not None or results.cnn3d):
            (tmp / "models").mkdir()
            if results.cnn1d is not None:
                save_cnn1d(results.cnn1d, tmp / "models" / "cnn1d.safetensors")
            for name, mdl in results.cnn3d.items():
                save_cnn3d(mdl, tmp / "models" / f"cnn3d_{safe_name(name)}.safetensors", fps=results.fps,
                           passband_hz=(results.passband["low_hz"], results.passband["high_hz"]),
                           normalisation=results.cnn1d.normalisation, training_frames=results.training)
        (tmp / "run.json").write_text(json.dumps(run_record(results, inputs, extra), indent=1, default=_json_default) + "\n")
        if report:
            from .report import save_report

            save_report(results, tmp / "report.png")
        for name, src in (move_in or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(target))
        commit_output_dir(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MicromotionError(f"could not write results to {out} ({exc.strerror or exc}).") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
