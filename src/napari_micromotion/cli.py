"""Command line: ``micromotion analyze | train | simulate | batch | view``.

Every user error prints one line ``error: <sentence>`` on stderr and exits with
status 2; outputs appear only when complete.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from .errors import Cancelled, MicromotionError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error contract."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help').\n")


class StderrProgress:
    """Progress on stderr: a rewritten line on a terminal, else a line per stage step of 10 %."""

    def __init__(self, quiet: bool = False, stream: Any = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last: tuple[str, int] | None = None
        self._t0 = time.perf_counter()

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        pct = int(event.fraction * 100)
        elapsed = time.perf_counter() - self._t0
        text = f"[{elapsed:7.1f} s] {event.stage:<14s} {pct:3d}%  {event.message}"
        if self.tty:
            self.stream.write("\r" + text[:110].ljust(110))
            if event.fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
            return
        key = (event.stage, pct // 10)
        if key != self._last:
            self._last = key
            self.stream.write(text + "\n")
            self.stream.flush()


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return v


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return v


def _lag(text: str) -> float | None:
    if text.lower() in ("none", "full", "all"):
        return None
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("max lag must be >= 0 seconds or 'none'")
    return v


def _channel(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def _add_recording_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("transmission", help="transmission stack: TIFF, OME-TIFF, ImageJ hyperstack, folder of TIFFs, or video")
    p.add_argument("--fluorescence", "-f", help="fluorescence stack (or CSV trace); default: the other channel of a two-channel file")
    p.add_argument("--channel", type=_channel, help="transmission channel (index or name) in a multi-channel file")
    p.add_argument("--fluorescence-channel", type=_channel, help="fluorescence channel (index or name)")
    p.add_argument("--fps", type=_positive_float, help="frame rate in frames/s (overrides metadata)")
    p.add_argument("--pixel-size", type=_positive_float, metavar="UM", help="pixel size in micrometres (overrides metadata)")
    p.add_argument("--rois", help="ROI file: JSON, ImageJ .roi or RoiSet.zip")
    p.add_argument("--frames", metavar="START:STOP",
                   help="analyse only these frames (0-based, half-open), e.g. to drop a fade-in")


def _add_analysis_args(p: argparse.ArgumentParser) -> None:
    from .pipeline import METHODS

    g = p.add_argument_group("analysis")
    g.add_argument("--methods", default="bandpass", help=f"comma-separated subset of {','.join(METHODS)} (default bandpass)")
    g.add_argument("--passband", nargs=2, type=_positive_float, metavar=("LOW", "HIGH"),
                   help="3 dB edges of the zero-phase band-pass in Hz (default 2 15)")
    g.add_argument("--order", type=int, default=2, help="Butterworth order per edge (default 2)")
    g.add_argument("--padtype", choices=("mean", "odd"), default="mean", help="band-pass edge extension (default mean)")
    g.add_argument("--validation", metavar="START:STOP",
                   help="scored frames, 0-based half-open (default 0:3072 for >= 10570 frames, else the first 29%%)")
    g.add_argument("--max-lag", type=_lag, default=1.0, metavar="S", help="score lag window in seconds, or 'none' (default 1)")
    g.add_argument("--ground-truth", choices=("dff", "sum"), default="dff", help="fluorescence as dF/F0 (default) or raw sum")
    g.add_argument("--baseline-window", type=_positive_float, default=10.0, metavar="S", help="dF/F0 baseline window (default 10 s)")
    g.add_argument("--roi-truth", action="store_true", help="score each ROI against its own fluorescence")
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument("--surrogates", type=int, default=999, help="circular-shift surrogates per ROI p-value (default 999)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    g.add_argument("--chunk-mb", type=int, default=256, help="working memory per pixel chunk in MiB (default 256)")
    m = p.add_argument_group("matched filter")
    m.add_argument("--spike-threshold", type=_positive_float, default=5.0, help="spike threshold in robust SDs (default 5)")
    m.add_argument("--min-spikes", type=int, default=5, help="fewest training spikes accepted (default 5)")
    m.add_argument("--template-window", nargs=2, type=_float, metavar=("PRE_S", "POST_S"), default=(0.2, 0.8),
                   help="template window around onsets in s (default 0.2 0.8)")
    c = p.add_argument_group("1D CNN")
    c.add_argument("--model-1d", help="use this trained 1D CNN (.safetensors) instead of training one")
    c.add_argument("--cnn-epochs", type=int, default=3, help="training epochs (default 3, the paper)")
    c.add_argument("--cnn-pixels", choices=("all", "random", "variance", "mixed"), default="variance",
                   help="training pixels: all (paper), random, highest band-pass energy (default), or mixed")
    c.add_argument("--cnn-n-pixels", type=int, default=2048, help="training pixels when sampling (default 2048)")
    c.add_argument("--cnn-window", type=int, default=1024, help="frames per training window (default 1024)")
    c.add_argument("--cnn-batch", type=int, default=16, help="windows per step (default 16)")
    c.add_argument("--cnn-lr", type=_positive_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    c.add_argument("--cnn-backend", choices=("auto", "fast", "torch"), default="auto",
                   help="training: fused CPU kernel (auto on CPU), or the plain PyTorch reference")
    c.add_argument("--cnn-restarts", type=int, default=2, help="restarts of a network that dies early (default 2)")
    d = p.add_argument_group("3D network")
    d.add_argument("--cnn3d-mode", choices=("fast", "paper"), default="fast", help="fast (frozen 1D layers, default) or paper")
    d.add_argument("--cnn3d-solver", choices=("adam", "ridge"), default="ridge",
                   help="fast-mode dense-layer fit: closed-form ridge (default) or the paper's Adam (lr 8e-7, 60 epochs)")
    d.add_argument("--cnn3d-epochs", type=int, default=60, help="epochs (default 60, the paper)")
    d.add_argument("--cnn3d-lr", type=_positive_float, default=8e-7, help="Adam learning rate (default 8e-7, the paper)")
    d.add_argument("--mc-passes", type=int, default=20, help="Monte-Carlo dropout passes (default 20)")
    k = p.add_argument_group("camera (detection limit)")
    k.add_argument("--gain", type=_positive_float, help="electrons per grey level (default: assume full well)")
    k.add_argument("--offset", type=_float, default=0.0, help="dark offset in grey levels (default 0)")
    k.add_argument("--full-well", type=_positive_float, default=1e5, help="full-well capacity in electrons (default 1e5)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="micromotion", description="Label-free detection of cellular micromotion (Rinner et al. 2020).")
    parser.add_argument("--version", action="version", version=f"napari-micromotion {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("analyze", help="score every pixel and ROI with the chosen methods",
                       description="Score every pixel and ROI of a recording with the chosen methods.")
    _add_recording_args(a)
    _add_analysis_args(a)
    a.add_argument("--out", "-o", required=True, help="output folder (written atomically)")
    a.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    a.add_argument("--no-report", action="store_true", help="skip report.png")
    a.add_argument("--save-filtered", action="store_true", help="write the band-passed video to filtered.zarr")
    a.add_argument("--save-predictions", action="store_true",
                   help="write per-pixel predictions to predictions/<method>.zarr")
    a.add_argument("--scheduler", help="split the recording into pixel-chunk tasks on this dask scheduler "
                   "(tcp://HOST:PORT, or 'local' for a LocalCluster)")
    a.add_argument("--workers", type=int, default=2, help="LocalCluster workers with --scheduler local (default 2)")
    a.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")

    t = sub.add_parser("train", help="train the 1D CNN and save it (no scoring)",
                       description="Train the 1D CNN on the training frames and save it as safetensors + JSON.")
    _add_recording_args(t)
    _add_analysis_args(t)
    t.add_argument("--model", "-o", required=True, help="output model path (.safetensors; a .json sidecar is written beside it)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    t.add_argument("--quiet", "-q", action="store_true")

    s = sub.add_parser("simulate", help="write a simulated correlative recording",
                       description="Write transmission.tif, fluorescence.tif, rois.json and truth.json.")
    s.add_argument("out", help="output folder")
    s.add_argument("--frames", type=int, default=4000, help="number of frames (default 4000)")
    s.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--fps", type=_positive_float, default=50.0, help="frame rate (default 50)")
    s.add_argument("--weak-px", type=_positive_float, help="contraction amplitude of the weak cell in px")
    s.add_argument("--strong-px", type=_positive_float, help="contraction amplitude of the strong cell in px")
    s.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    s.add_argument("--quiet", "-q", action="store_true")

    b = sub.add_parser("batch", help="analyse many recordings in parallel on dask",
                       description="Analyse every recording matching a glob on a dask.distributed cluster.")
    b.add_argument("pattern", help="glob of transmission files, e.g. 'recordings/*.tif' (quote it)")
    b.add_argument("--out", "-o", required=True, help="output folder: one sub-folder per recording")
    b.add_argument("--scheduler", help="dask scheduler address tcp://HOST:PORT (default: a LocalCluster)")
    b.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    b.add_argument("--fluorescence-suffix", default=None,
                   help="find each fluorescence file by replacing 'transmission' with this in the name")
    b.add_argument("--fps", type=_positive_float)
    b.add_argument("--rois", help="one ROI file for all recordings (or rois.json next to each)")
    _add_analysis_args(b)
    b.add_argument("--overwrite", action="store_true")
    b.add_argument("--quiet", "-q", action="store_true")

    v = sub.add_parser("view", help="open a recording (and results) in napari",
                       description="Open a recording, its ROIs and an analysis folder in napari with the plugin's widgets.")
    v.add_argument("transmission", nargs="?", help="transmission stack")
    v.add_argument("--fluorescence", "-f")
    v.add_argument("--rois")
    v.add_argument("--results", help="analysis output folder to show")
    v.add_argument("--fps", type=_positive_float)
    return parser


def _analysis_params(args: argparse.Namespace) -> Any:
    from .beats import BeatParams
    from .detectors.cnn1d import CNN1DParams
    from .detectors.cnn3d import CNN3DParams
    from .detectors.matched import MatchedParams
    from .limits import CameraParams
    from .pipeline import AnalysisParams, parse_validation

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    return AnalysisParams(
        methods=methods,
        low_hz=args.passband[0] if args.passband else None,
        high_hz=args.passband[1] if args.passband else None,
        filter_order=args.order,
        padtype=args.padtype,
        validation=parse_validation(args.validation) if args.validation else None,
        max_lag_s=args.max_lag,
        ground_truth=args.ground_truth,
        baseline_window_s=args.baseline_window,
        roi_truth=args.roi_truth,
        seed=args.seed,
        n_surrogates=args.surrogates,
        chunk_mb=args.chunk_mb,
        device=args.device,
        matched=MatchedParams(pre_s=args.template_window[0], post_s=args.template_window[1], min_spikes=args.min_spikes,
                              threshold_sd=args.spike_threshold),
        cnn1d=CNN1DParams(epochs=args.cnn_epochs, learning_rate=args.cnn_lr, pixels=args.cnn_pixels,
                          n_pixels=args.cnn_n_pixels, window=args.cnn_window, batch_size=args.cnn_batch,
                          backend=args.cnn_backend, restarts=args.cnn_restarts),
        cnn3d=CNN3DParams(mode=args.cnn3d_mode, solver=args.cnn3d_solver, epochs=args.cnn3d_epochs,
                          learning_rate=args.cnn3d_lr, mc_passes=args.mc_passes),
        beats=BeatParams(),
        camera=CameraParams(gain_e_per_adu=args.gain, offset_adu=args.offset, full_well_e=args.full_well),
    )


def _load_inputs(args: argparse.Namespace):
    from .io import read_recording
    from .rois import read_rois

    rec = read_recording(args.transmission, args.fluorescence, channel=args.channel,
                         fluorescence_channel=args.fluorescence_channel, fps=args.fps, pixel_size_um=args.pixel_size)
    rois = read_rois(args.rois) if args.rois else []
    if getattr(args, "frames", None):
        from .pipeline import parse_validation

        a, b = parse_validation(args.frames)
        if not 0 <= a < b <= rec.n_frames:
            raise MicromotionError(f"frames {a}:{b} lie outside the recording's {rec.n_frames} frames.")
        rec = rec.with_(transmission=rec.transmission[a:b],
                        fluorescence=rec.fluorescence[a:b] if rec.fluorescence is not None else None,
                        provenance={**rec.provenance, "frames": [a, b]})
    return rec, rois


def _input_checksums(args: argparse.Namespace) -> dict[str, Any]:
    from .io import file_checksum

    out = {}
    for key in ("transmission", "fluorescence", "rois", "model_1d"):
        path = getattr(args, key, None)
        if path:
            out[key] = {"path": str(Path(path).resolve()), "checksum": file_checksum(path)}
    return out


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .detectors.models import load_cnn1d
    from .export import prepare_output_dir, write_results
    from .pipeline import iter_analysis
    from .progress import drive

    out = Path(args.out)
    # refuse a bad output folder before any work
    tmp = prepare_output_dir(out, args.overwrite)
    tmp.rmdir()
    params = _analysis_params(args)
    rec, rois = _load_inputs(args)
    model = load_cnn1d(args.model_1d) if args.model_1d else None
    progress = StderrProgress(args.quiet)
    if not args.quiet:
        print(f"recording: {rec.describe()}", file=sys.stderr)
        if any(m in params.methods for m in ("cnn1d", "cnn3d")):
            from .detectors.cnn1d import resolve_device

            print(f"device: {resolve_device(params.device)}", file=sys.stderr)
        for w in rec.provenance.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)
    stores: dict[str, Path] = {}
    kwargs: dict[str, Any] = {}
    client = None
    scratch = None
    try:
        if args.save_filtered or args.save_predictions:
            import tempfile

            from .distributed import open_zarr_stack
            from .pipeline import row_chunks

            scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-zarr-", dir=out.absolute().parent))
            rows = row_chunks(rec.n_frames, rec.frame_shape, params.chunk_mb)[0]
            shape = (rec.n_frames, *rec.frame_shape)
            if args.save_filtered:
                stores["filtered.zarr"] = scratch / "filtered.zarr"
                kwargs["filtered_out"] = open_zarr_stack(stores["filtered.zarr"], shape, rows[1] - rows[0])
            if args.save_predictions:
                kwargs["predictions_out"] = {}
                for m in params.methods:
                    if m in ("bandpass", "matched", "cnn1d"):
                        stores[f"predictions/{m}.zarr"] = scratch / f"{m}.zarr"
                        kwargs["predictions_out"][m] = open_zarr_stack(scratch / f"{m}.zarr", shape, rows[1] - rows[0])
        if args.scheduler:
            from .distributed import dask_chunks, make_client

            client = make_client(None if args.scheduler == "local" else args.scheduler, args.workers)
            kwargs["run_chunks"] = dask_chunks(client)
        results = drive(iter_analysis(rec, rois, params, model_1d=model, **kwargs), progress=progress)
        for w in results.warnings:
            if not args.quiet:
                print(f"warning: {w}", file=sys.stderr)
        write_results(results, out, overwrite=args.overwrite, inputs=_input_checksums(args),
                      extra={"recording_provenance": rec.provenance}, report=not args.no_report, move_in=stores)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and args.scheduler == "local":
                cluster.close()
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    if not args.quiet:
        print(f"wrote {out} ({results.timings_s['total']:.1f} s)", file=sys.stderr)
        _print_scores(results)
    return 0


def _print_scores(results: Any) -> None:
    rows = [r for r in results.roi_scores if isinstance(r.get("score"), float) and math.isfinite(r["score"])]
    if not rows:
        return
    print(f"{'roi':<14s}{'kind':<8s}{'method':<10s}{'score':>7s}{'lag_s':>8s}{'p':>8s}", file=sys.stderr)
    for r in rows:
        print(f"{r['roi']:<14s}{r['kind']:<8s}{r['method']:<10s}{r['score']:7.3f}{r['lag_s']:8.2f}{r['p_value']:8.3g}",
              file=sys.stderr)


def _cmd_train(args: argparse.Namespace) -> int:
    from .detectors.models import save_cnn1d
    from .pipeline import iter_analysis
    from .progress import drive

    model_path = Path(args.model).with_suffix(".safetensors")
    if model_path.exists() and not args.overwrite:
        raise MicromotionError(f"model file {model_path} exists; pass --overwrite to replace it.")
    if not model_path.parent.is_dir():
        raise MicromotionError(f"folder {model_path.parent} does not exist.")
    if not os.access(model_path.parent, os.W_OK):
        raise MicromotionError(f"cannot write into {model_path.parent} (permission denied).")
    params = _analysis_params(args)
    params = replace(params, methods=("cnn1d",))
    rec, rois = _load_inputs(args)
    results = drive(iter_analysis(rec, [], params, train_only=True), progress=StderrProgress(args.quiet))
    save_cnn1d(results.cnn1d, model_path)
    if not args.quiet:
        losses = results.cnn1d.epoch_loss
        print(f"wrote {model_path} (epoch losses: {', '.join(f'{v:.4f}' for v in losses)})", file=sys.stderr)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import SimulationParams, write_simulation

    overrides: dict[str, Any] = {"n_frames": args.frames, "size": args.size, "seed": args.seed, "fps": args.fps}
    if args.weak_px is not None:
        overrides["weak_px"] = args.weak_px
    if args.strong_px is not None:
        overrides["strong_px"] = args.strong_px
    t0 = time.perf_counter()
    progress = StderrProgress(args.quiet)
    from .progress import Progress

    write_simulation(args.out, SimulationParams(), overwrite=args.overwrite,
                     progress=lambda f: progress(Progress("simulate", f, "")), **overrides)
    if not args.quiet:
        print(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from .distributed import run_batch

    params = _analysis_params(args)
    return run_batch(args.pattern, Path(args.out), params, scheduler=args.scheduler, n_workers=args.workers,
                     fps=args.fps, rois=args.rois, fluorescence_suffix=args.fluorescence_suffix,
                     overwrite=args.overwrite, quiet=args.quiet)


def _cmd_view(args: argparse.Namespace) -> int:
    from ._qt.launch import launch_viewer

    launch_viewer(args.transmission, fluorescence=args.fluorescence, rois=args.rois, results=args.results, fps=args.fps)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``micromotion`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (already printed as one line), --help, --version
        return int(exc.code or 0)
    commands = {"analyze": _cmd_analyze, "train": _cmd_train, "simulate": _cmd_simulate, "batch": _cmd_batch,
                "view": _cmd_view}
    try:
        return commands[args.command](args)
    except MicromotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("error: cancelled; no output was written.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nerror: interrupted; no output was written and earlier results are untouched.", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; lower --chunk-mb or --cnn-n-pixels.", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
