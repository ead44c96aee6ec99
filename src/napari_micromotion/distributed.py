"""Beyond one machine: many recordings, or one large recording, on a dask.distributed cluster.

* :func:`run_batch` (``micromotion batch "recs/*.tif" --out DIR [--scheduler tcp://HOST:PORT]``)
  analyses every matching recording as one task on the cluster (a ``LocalCluster``
  by default) and writes ``DIR/<name>/`` per recording plus ``DIR/batch_summary.csv``.
* :func:`dask_chunks` maps the pipeline's pixel-chunk jobs onto a cluster, so a single
  large recording is split into independent tasks (``micromotion analyze ... --scheduler``).
  Workers re-open memory-mapped inputs by path (read-only), so the files must be
  visible to the workers under the same path (a shared file system).
* :func:`open_zarr_stack` creates the chunked zarr store that receives a large
  intermediate stack (e.g. the band-passed video); napari shows it lazily.

dask, distributed and zarr are optional (``pip install 'napari-micromotion[dask]'``).
"""

from __future__ import annotations

import csv
import glob
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import MicromotionError, check, check_file

__all__ = ["run_batch", "BatchInterrupted", "dask_chunks", "make_client", "open_zarr_stack", "find_inputs"]


def require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MicromotionError(f"this needs the optional package {module.split('.')[0]!r}: "
                               "pip install 'napari-micromotion[dask]'.") from None


def make_client(scheduler: str | None = None, n_workers: int = 2, threads_per_worker: int = 1) -> Any:
    """A dask ``Client`` on *scheduler* (``tcp://HOST:PORT``), or on a new ``LocalCluster``."""
    distributed = require("distributed")
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise MicromotionError(f"cannot reach the dask scheduler at {scheduler} ({exc}).") from None
    check(n_workers >= 1, "the number of workers must be at least 1.")
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                                       dashboard_address=None, silence_logs=40)
    return distributed.Client(cluster)


def dask_chunks(client: Any):
    """A ``run_chunks`` for :func:`~napari_micromotion.pipeline.iter_analysis` that runs each chunk job on *client*.

    Results are yielded as they complete (any order).  Jobs whose data live only in
    this process' memory cannot travel; use memory-mapped (uncompressed TIFF) inputs.
    """
    from .chunks import process_chunk

    distributed = require("distributed")

    def run(jobs: Sequence[Any]) -> Iterator[Any]:
        for job in jobs:
            check(job.transmission.reopenable and (job.fluorescence is None or job.fluorescence.reopenable),
                  "splitting a recording over a dask cluster needs memory-mapped inputs (uncompressed TIFF files).")
        futures = client.map(process_chunk, list(jobs), pure=False)
        try:
            for fut in distributed.as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    return run


def open_zarr_stack(path: str | os.PathLike, shape: tuple[int, int, int], rows_per_chunk: int,
                    dtype: str = "float32") -> Any:
    """Create a zarr array ``(T, Y, X)`` chunked as ``(T, rows_per_chunk, X)`` (one pixel chunk per zarr chunk)."""
    zarr = require("zarr")
    t, y, x = shape
    return zarr.open_array(str(path), mode="w", shape=shape, chunks=(t, max(1, rows_per_chunk), x), dtype=dtype)


def find_inputs(transmission: Path, fluorescence_suffix: str | None, rois: str | None) -> tuple[Path | None, Path | None]:
    """Fluorescence and ROI files that belong to a transmission file.

    Fluorescence: the name with ``transmission`` replaced by *fluorescence_suffix*
    (default ``fluorescence``), if that file exists.  ROIs: *rois*, else a ``rois.json``
    beside the file.
    """
    fl = None
    name = transmission.name
    key = "transmission"
    if key in name:
        cand = transmission.with_name(name.replace(key, fluorescence_suffix or "fluorescence"))
        if cand.exists() and cand != transmission:
            fl = cand
    roi_path = Path(rois) if rois else (transmission.parent / "rois.json")
    return fl, roi_path if roi_path.is_file() else None


def _analyze_one(transmission: str, fluorescence: str | None, rois: str | None, fps: float | None, params: Any,
                 out: str, overwrite: bool, fitted: dict[str, Any] | None = None, interleaved: int = 1
                 ) -> dict[str, Any]:
    """One recording, run on a worker: analyse and write its folder; user errors come back as text."""
    from .errors import MicromotionError as _Err
    from .export import write_results
    from .io import file_checksum, read_recording
    from .pipeline import run_analysis
    from .rois import read_rois

    t0 = time.perf_counter()
    try:
        rec = read_recording(transmission, fluorescence, fps=fps, interleaved=interleaved)
        roi_list = read_rois(rois) if rois else []
        res = run_analysis(rec, roi_list, params, fitted=fitted)
        inputs = {k: {"path": v, "checksum": file_checksum(v)} for k, v in
                  (("transmission", transmission), ("fluorescence", fluorescence), ("rois", rois)) if v}
        write_results(res, out, overwrite=overwrite, inputs=inputs)
        best = {}
        for row in res.roi_scores:
            best[f"{row['roi']}/{row['method']}"] = row["score"]
        return {"recording": transmission, "status": "ok", "seconds": time.perf_counter() - t0, "out": out,
                "n_frames": rec.n_frames, "message": "", **{f"score:{k}": v for k, v in best.items()}}
    except _Err as exc:
        return {"recording": transmission, "status": "error", "seconds": time.perf_counter() - t0, "out": "",
                "message": exc.for_cli()}      # the summary is read beside the command line: name its options


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped :func:`run_batch`; ``batch_summary.csv`` lists what finished and what did not.

    ``str(exc)`` is the one sentence to show; the interruption it replaces is its ``__cause__``.
    """


#: ``status`` of a recording the batch did not finish because it was interrupted
NOT_RUN = "not run"


def partner_files(files: Sequence[Path], fluorescence_suffix: str | None) -> set[Path]:
    """Those of *files* that are the fluorescence file of another of *files* (see :func:`find_inputs`)."""
    matched = {f.absolute() for f in files}
    partners = set()
    for f in files:
        fl = find_inputs(f, fluorescence_suffix, None)[0]
        if fl is not None and fl.absolute() in matched:
            partners.add(fl.absolute())
    return partners


def write_summary(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write ``batch_summary.csv`` (one row per recording, sorted by recording) atomically."""
    from .atomic import atomic_write

    rows = sorted(rows, key=lambda r: r["recording"])
    cols = ["recording", "status", "seconds", "n_frames", "out", "message"]
    cols += sorted({k for r in rows for k in r if k.startswith("score:")})

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})

    return atomic_write(path, write)


def _interrupted_sentence(done: Sequence[dict[str, Any]], n_files: int, summary: Path) -> str:
    """What an interrupted batch did: how many recordings finished, where their results are, how many were not run."""
    if not done:
        return f"interrupted before any of the {n_files} recordings finished; {summary} lists them as not run."
    n_failed = sum(r["status"] != "ok" for r in done)
    failed = f" ({n_failed} of them failed)" if n_failed else ""
    rest = n_files - len(done)
    return (f"interrupted after {len(done)} of {n_files} recordings finished{failed}; the results and "
            f"{summary.name} are in {summary.parent}" + (f", the other {rest} were not run." if rest else "."))


def run_batch(pattern: str | Sequence[str], out_dir: Path, params: Any, *, scheduler: str | None = None, n_workers: int = 2,
              fps: float | None = None, rois: str | None = None, fluorescence_suffix: str | None = None,
              overwrite: bool = False, quiet: bool = False, client: Any = None,
              fitted: dict[str, Any] | None = None, interleaved: int = 1) -> int:
    """Analyse every file matching *pattern* in parallel; returns the exit status (0 ok, 2 if any failed).

    *pattern*: a glob of recordings (files or frame folders), or several globs or paths (what a shell makes of an
    unquoted glob); each must match something, and a recording matched twice is analysed once.

    Each recording's results go to ``out_dir/<file stem>/`` (atomically); a summary of
    all of them to ``out_dir/batch_summary.csv``.  A matched file that is another matched
    recording's fluorescence file is analysed with that recording, not on its own.

    Raises
    ------
    BatchInterrupted
        On Ctrl-C or SIGTERM (``KeyboardInterrupt``), after writing the summary: the
        recordings that finished, and the others with status ``"not run"``.

    *interleaved*: every recording holds that many channels taken in turn (see
    :func:`~napari_micromotion.io.read_recording`); its fluorescence is then its channel 1.
    """
    require("distributed")
    from .io import check_interleaved
    from .pipeline import check_params

    check_params(params)            # a mistake every recording would repeat stops here, before any folder is made
    check_interleaved(interleaved)
    patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    check(patterns, "give the recordings to analyse (files, folders or a glob such as 'recordings/*.tif').")
    found: dict[Path, Path] = {}                # each recording once, as its first glob wrote it
    for pat in patterns:
        matched = [Path(p) for p in glob.glob(os.path.expanduser(str(pat)))]
        matched = [f for f in matched if f.is_file() or f.is_dir()]
        check(matched, f"no recordings match {str(pat)!r}.")
        for f in matched:
            found.setdefault(f.absolute(), f)
    files = sorted(found.values())
    partners = partner_files(files, fluorescence_suffix)
    if partners:                # the glob matched a recording's fluorescence file too: it is not a recording itself
        skipped = [f for f in files if f.absolute() in partners]
        files = [f for f in files if f.absolute() not in partners]
        if not quiet:
            print(f"skipped {len(skipped)} fluorescence file(s) that belong to other recordings "
                  f"(e.g. {skipped[0].name}); each is analysed with its transmission file.", file=sys.stderr)
    if rois is not None:
        check_file(rois, "ROI file")
    if fluorescence_suffix is not None:      # asked for by name: every recording must have its fluorescence
        missing = [f for f in files if find_inputs(f, fluorescence_suffix, rois)[0] is None]
        check(not missing, f"no fluorescence file named with {fluorescence_suffix!r} in place of 'transmission' for "
                           f"{len(missing)} of {len(files)} recordings (e.g. {missing[0].name if missing else ''}).")
    out_dir = Path(out_dir)
    if out_dir.exists():
        check(out_dir.is_dir(), f"output path {out_dir} exists and is not a folder.")
    else:
        check(out_dir.absolute().parent.is_dir(), f"cannot create {out_dir}: its parent folder does not exist.")
        try:
            out_dir.mkdir()
        except OSError as exc:      # a read-only file system, no permission
            raise MicromotionError(f"cannot create {out_dir} ({exc.strerror or exc}).") from None
    check(os.access(out_dir, os.W_OK), f"cannot write into {out_dir} (permission denied).")
    stems = [f.name.split(".")[0] if f.is_file() else f.name for f in files]
    if len(set(stems)) < len(stems):  # same names in different folders: use the parent folder too
        stems = [f"{f.parent.name}_{s}" for f, s in zip(files, stems)]
    targets = [out_dir / s for s in stems]
    clash = [str(t) for t in targets if t.exists() and not overwrite]
    check(not clash, f"{len(clash)} output folder(s) exist (e.g. {clash[0] if clash else ''}); allow replacing them.",
          cli=f"{len(clash)} output folder(s) exist (e.g. {clash[0] if clash else ''}); pass --overwrite.")
    own_client = client is None
    done: list[dict[str, Any]] = []
    futures: list[Any] = []
    try:
        try:
            client = client or make_client(scheduler, n_workers)
            distributed = require("distributed")
            for f, target in zip(files, targets):
                fl, roi = find_inputs(f, fluorescence_suffix, rois)
                futures.append(client.submit(_analyze_one, str(f), str(fl) if fl else None, str(roi) if roi else None,
                                             fps, params, str(target), overwrite, fitted, interleaved, pure=False))
            for k, fut in enumerate(distributed.as_completed(futures), start=1):
                row = fut.result()
                done.append(row)
                if not quiet:
                    state = "ok" if row["status"] == "ok" else f"error: {row['message']}"
                    print(f"[{k}/{len(futures)}] {Path(row['recording']).name}: {state} ({row['seconds']:.1f} s)",
                          file=sys.stderr)
        except KeyboardInterrupt as exc:       # Ctrl-C, or SIGTERM as the command line raises it
            finished = {r["recording"] for r in done}
            rows = done + [{"recording": str(f), "status": NOT_RUN, "out": "",
                            "message": "the batch was interrupted before this recording finished"}
                           for f in files if str(f) not in finished]
            summary = write_summary(rows, out_dir / "batch_summary.csv")
            if not own_client and futures:     # a client of the caller's: its workers need not finish them
                try:
                    client.cancel(futures)
                except Exception:   # noqa: BLE001  (a broken connection: the scheduler drops them with it)
                    pass
            raise BatchInterrupted(_interrupted_sentence(done, len(files), summary)) from exc
    finally:
        if own_client and client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    summary = write_summary(done, out_dir / "batch_summary.csv")
    failed = [r for r in done if r["status"] != "ok"]
    if failed:
        print(f"error: {len(failed)} of {len(done)} recordings failed; see {summary}.", file=sys.stderr)
        return 2
    return 0
