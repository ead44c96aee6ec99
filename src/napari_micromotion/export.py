"""Writing results: the CLI's output layout, always complete or not at all.

The files are described once, in :data:`napari_micromotion.layout.ANALYSIS_LAYOUT`
(which :func:`napari_micromotion.results_io.read_results` reads back); each method
writes its models (``models/``); ``run.json`` records parameters, versions, input
checksums, timings and warnings; ``report.png`` shows the score maps and ROI traces.

Everything is written into a temporary sibling folder that is renamed into place
only when complete; an existing folder is replaced only with ``overwrite``, and only if it
is one this package wrote (or empty), holds none of the inputs and is not the current folder:
replacing a folder deletes everything in it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .atomic import current_umask, temp_sibling_dir, temp_siblings
from .errors import MicromotionError, check, check_folder

__all__ = ["prepare_output_dir", "commit_output_dir", "write_results", "run_record", "readers_first",
           "remove_stale_siblings", "is_output_folder", "paths_in", "OUTPUT_MARKERS"]

#: files by which a folder is known as one this package wrote: the analysis's run record, the simulator's
#: truth, a batch's summary (a tool's run record ``<tool>.json`` is recognised by its content)
OUTPUT_MARKERS = ("run.json", "truth.json", "batch_summary.csv")


def is_output_folder(folder: Path) -> bool:
    """Whether *folder* is an output folder of this package (so that replacing it loses only its results)."""
    folder = Path(folder)
    if any((folder / name).is_file() for name in OUTPUT_MARKERS):
        return True
    for record in folder.glob("*.json"):          # a tool's run record: {"tool": ..., "package_versions": ...}
        try:
            if record.stat().st_size > (1 << 20):
                continue
            obj = json.loads(record.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(obj, dict) and "tool" in obj and "package_versions" in obj:
            return True
    return False


def paths_in(record: Any) -> list[Path]:
    """Every ``"path"`` string in a (nested) inputs or provenance record."""
    found: list[Path] = []
    if isinstance(record, dict):
        for key, value in record.items():
            if key == "path" and isinstance(value, (str, os.PathLike)) and str(value):
                found.append(Path(value))
            else:
                found += paths_in(value)
    elif isinstance(record, (list, tuple)):
        for value in record:
            found += paths_in(value)
    return found


def prepare_output_dir(out: Path, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that *out* may be (re)written and return a fresh temporary sibling folder.

    Nothing at *out* changes until :func:`commit_output_dir`.  *inputs*: the paths the
    results come from; a folder holding one of them is never replaced.
    """
    out = Path(out)
    where = out.resolve()
    here = Path.cwd().resolve()
    check(where != here and where not in here.parents,
          f"the output folder {out} is the current folder or holds it; name a new folder for the results.")
    for path in inputs:
        p = Path(path).resolve()
        check(p != where and where not in p.parents,
              f"the output folder {out} holds the input {Path(path).name}; replacing it would delete that: "
              "name another folder for the results.")
    if out.exists() or out.is_symlink():
        check(overwrite, f"output folder {out} exists; choose another folder or allow replacing it.",
              cli=f"output folder {out} exists; pass --overwrite to replace it.")
        check(out.is_dir(), f"output path {out} exists and is not a folder.")
        check(not any(out.iterdir()) or is_output_folder(out),
              f"folder {out} holds files that micromotion did not write; replacing it would delete them: "
              "name a new or empty folder for the results.")
    parent = out.absolute().parent
    check_folder(parent)
    check(os.access(parent, os.W_OK | os.X_OK), f"cannot write into {parent} (permission denied).")
    remove_stale_siblings(out)
    try:
        return temp_sibling_dir(out, "tmp")
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
    for tag in ("old", "tmp"):
        for cand, pid in temp_siblings(out, tag):
            if _pid_alive(pid) or not cand.is_dir():
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
        old = temp_sibling_dir(out, "old")
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
    os.chmod(out, 0o777 & ~current_umask())


def readers_first(source: Any, own: Sequence[str]) -> list[str]:
    """The warnings a run record lists: the reader's (``source["warnings"]``: a lossy video, a channel picked by
    its name, ...) first, then *own* (the analysis' or a tool's) that are not among them."""
    read = source.get("warnings", []) if isinstance(source, dict) else []
    said = [str(w) for w in read] if isinstance(read, list) else []
    return said + [w for w in own if w not in said]


def run_record(results: Any, inputs: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``run.json`` holds: enough to reproduce a result.

    Its ``warnings`` are everything the user was warned of: the reader's (a lossy video, a
    channel picked by its name, ...; from ``extra["recording_provenance"]``) and the analysis'.
    """
    from .detectors.models import package_versions

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv[:],
        "working_folder": os.getcwd(),      # the command's relative paths are relative to it
        "package_versions": package_versions(),
        "inputs": inputs or dict(getattr(results, "inputs", None) or {}),
        "recording": {"n_frames": results.n_frames, "frame_shape": list(results.frame_shape), "fps": results.fps,
                      "pixel_size_um": results.pixel_size_um},
        "parameters": results.params.to_dict(),
        "methods": results.methods,
        "validation_frames": list(results.validation),
        "training_frames": [list(s) for s in results.training],
        "passband": results.passband,
        "chance_scores": results.chance_scores,
        "device": results.device,
        "rois": [r.to_dict() for r in results.rois] if getattr(results, "rois", None)
        else [{"name": n, "kind": k} for n, k in zip(results.roi_names, results.roi_kinds)],
        "timings_s": {k: round(v, 4) for k, v in results.timings_s.items()},
        "warnings": readers_first((extra or {}).get("recording_provenance"), results.warnings),
        **(extra or {}),
    }


def write_results(results: Any, out: str | os.PathLike, *, overwrite: bool = False, inputs: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None, report: bool = True, save_models: bool = True,
                  move_in: dict[str, Path] | None = None) -> Path:
    """Write *results* into folder *out* atomically (files: :data:`napari_micromotion.layout.ANALYSIS_LAYOUT`).

    *move_in* maps names inside the output folder to existing files or folders (e.g. zarr
    stores written during the analysis) that are moved in before the folder is committed.
    """
    from .layout import ANALYSIS_LAYOUT
    from .methods import METHODS

    out = Path(out)
    # the files the results come from, however they were given: never in a folder this replaces
    sources = paths_in(inputs) + paths_in(getattr(results, "inputs", None)) + paths_in(extra)
    tmp = prepare_output_dir(out, overwrite, sources)
    try:
        for entry in ANALYSIS_LAYOUT:
            entry.write(results, tmp)
        if save_models:
            for name, state in results.fits.items():
                if name in METHODS and state is not None:
                    METHODS[name].save(state, tmp, results)
        record = run_record(results, inputs, extra)
        (tmp / "run.json").write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
        if report:
            from .report import save_report

            save_report(results, tmp / "report.png", warnings=record["warnings"])
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
