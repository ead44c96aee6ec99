"""Command line: ``micromotion analyze | train | methods | simulate | batch | view | <tool>``.

The options of ``analyze``, ``train``, ``batch`` and of every tool are generated from the
parameter schema (:mod:`napari_micromotion.schema`): each method's and tool's parameter
dataclass, with the same defaults as the Python API and the napari forms.

Every user error prints one line ``error: <sentence>`` on stderr and exits with
status 2; outputs appear only when complete.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
import warnings
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


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
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


def _add_interleaved(p: argparse.ArgumentParser, which: str) -> None:
    """``--interleaved N``; *which* says how the channels are assigned, in the words of the command's own options."""
    p.add_argument("--interleaved", type=int, default=1, metavar="N",
                   help="the file holds N channels taken in turn, saved as one time series (frame k is channel k mod "
                        "N, e.g. brightfield and fluorescence with alternating light): read it as N channels "
                        f"({which}); --fps is then each channel's rate")


def _add_recording_args(p: argparse.ArgumentParser, tool: bool = False) -> None:
    if tool:
        p.add_argument("transmission", metavar="VIDEO",
                       help="the video: TIFF, OME-TIFF, ImageJ hyperstack, folder of TIFFs, or mp4/avi/mov")
    else:
        p.add_argument("transmission",
                       help="transmission stack: TIFF, OME-TIFF, ImageJ hyperstack, folder of TIFFs, or video")
    p.add_argument("--fluorescence", "-f", help="fluorescence stack (or CSV trace); default: the other channel of a two-channel file")
    p.add_argument("--channel", type=_channel, help="transmission channel (index or name) in a multi-channel file")
    p.add_argument("--fluorescence-channel", type=_channel, help="fluorescence channel (index or name)")
    _add_interleaved(p, "channel 0 the transmission, 1 the fluorescence, unless --channel/--fluorescence-channel "
                        "say otherwise")
    p.add_argument("--fps", type=_positive_float, help="frame rate in frames/s (overrides metadata)")
    p.add_argument("--pixel-size", type=_positive_float, metavar="UM", help="pixel size in micrometres (overrides metadata)")
    p.add_argument("--rois", help="ROI file: JSON, ImageJ .roi or RoiSet.zip")
    p.add_argument("--frames", metavar="START:STOP",
                   help="analyse only these frames (0-based, half-open; START: runs to the end), e.g. 12: to drop a "
                        "fade-in; the outputs count "
                        "frames and times from START (frame 0, 0 s), and the run record keeps START:STOP")


def _add_analysis_args(p: argparse.ArgumentParser) -> None:
    """``--methods``, every analysis and method parameter (from the schema) and each method's model option."""
    from . import schema
    from .methods import METHODS
    from .pipeline import AnalysisParams, analysis_specs

    default = ",".join(AnalysisParams().methods)
    p.add_argument("--methods", default=default,
                   help=f"comma-separated subset of {','.join(METHODS.names())} (default {default}; "
                        "'micromotion methods' describes them)")
    groups = schema.add_arguments(p, analysis_specs())
    for m in METHODS:
        if m.model_flag:
            target = groups.get(m.label) or groups.setdefault(m.label, p.add_argument_group(m.label))
            target.add_argument(m.model_flag, dest=f"model__{m.name}", metavar="MODEL", help=m.model_help)


def _add_tool_parser(sub: Any, tool: Any) -> None:
    """``micromotion <tool>``: its input, its parameters (from the schema), ``--out``."""
    from . import schema

    # argparse %-formats help strings ("90 % corridors" would break the top-level --help)
    p = sub.add_parser(tool.command, help=tool.description.replace("%", "%%"),
                       description=f"{tool.label}: {tool.description}.")
    if tool.input == "image":
        p.add_argument("image", help="image or stack (TIFF); a stack's frame is chosen with --frame")
        p.add_argument("--frame", type=int, default=0, help="frame of a stack to use (default 0)")
    elif tool.input == "fluorescence":
        p.add_argument("fluorescence", metavar="FLUORESCENCE",
                       help="the fluorescence video: TIFF, OME-TIFF, ImageJ hyperstack, folder of TIFFs, or video")
        p.add_argument("--transmission", "-t", help="the brightfield video of the same field (optional)")
        p.add_argument("--channel", type=_channel, help="fluorescence channel (index or name) in a multi-channel file")
        _add_interleaved(p, "--channel names the fluorescence")
        p.add_argument("--fps", type=_positive_float, help="frame rate in frames/s (overrides metadata)")
        p.add_argument("--pixel-size", type=_positive_float, metavar="UM", help="pixel size in micrometres")
        p.add_argument("--rois", help="ROIs drawn by hand, added as candidates: JSON, ImageJ .roi or RoiSet.zip")
    else:
        _add_recording_args(p, tool=True)
    schema.add_arguments(p, schema.specs(tool.Params))
    p.add_argument("--out", "-o", required=True, help="output folder (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(tool=tool.name)


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
    a.add_argument("--workers", type=_positive_int, default=2, help="LocalCluster workers with --scheduler local (default 2)")
    a.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")

    from .methods import METHODS
    from .tools import TOOLS

    trainable = [m.name for m in METHODS if m.model_flag]
    t = sub.add_parser("train", help="train a method's model and save it (no scoring)",
                       description="Train a method's model on the training frames and save it as safetensors + JSON "
                                   "(apply it later with its model option, e.g. --model-1d).")
    _add_recording_args(t)
    _add_analysis_args(t)
    t.add_argument("--method", choices=trainable, default=trainable[0] if trainable else None,
                   help=f"the method to train (default {trainable[0] if trainable else 'none'})")
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
    s.add_argument("--low-light", type=_positive_float, nargs="?", const=20.0, metavar="PHOTONS",
                   help="low-light fluorescence: mean photo-electrons per pixel and frame at rest (20 when given "
                        "without a number)")
    s.add_argument("--low-light-transmission", type=_positive_float, metavar="PHOTONS",
                   help="low-light brightfield: mean photo-electrons per pixel and frame")
    s.add_argument("--rare-events", type=int, default=0, metavar="N",
                   help="extra calcium transients, each in one cell alone (default 0)")
    s.add_argument("--unloaded-cells", type=int, default=0, metavar="N",
                   help="cells without dye, whose fluorescence holds no signal (default 0)")
    s.add_argument("--firing", choices=("synchronous", "independent"), default="synchronous",
                   help="synchronous: all calcium cells fire together (a cardiac syncytium, default); independent: "
                        "every cell on its own rhythm (for cell finding by PCA/ICA); writes labels.tif")
    s.add_argument("--inactive-cells", type=int, default=0, metavar="N",
                   help="dye-loaded cells that never fire (default 0); writes labels.tif")
    s.add_argument("--clean", action="store_true",
                   help="also write the noise-free movies transmission_clean.tif and fluorescence_clean.tif")
    s.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    s.add_argument("--quiet", "-q", action="store_true")

    b = sub.add_parser("batch", help="analyse many recordings in parallel on dask",
                       description="Analyse every recording matching a glob on a dask.distributed cluster.")
    b.add_argument("pattern", nargs="+", help="transmission files or frame folders, or globs of them, e.g. "
                                              "'recordings/*.tif' (quoted or not)")
    b.add_argument("--out", "-o", required=True, help="output folder: one sub-folder per recording")
    b.add_argument("--scheduler", help="dask scheduler address tcp://HOST:PORT (default: a LocalCluster)")
    b.add_argument("--workers", type=_positive_int, default=2, help="LocalCluster workers (default 2)")
    b.add_argument("--fluorescence-suffix", default=None,
                   help="find each fluorescence file by replacing 'transmission' with this in the name")
    b.add_argument("--fps", type=_positive_float)
    _add_interleaved(b, "channel 0 the transmission, 1 the fluorescence")
    b.add_argument("--rois", help="one ROI file for all recordings (or rois.json next to each)")
    _add_analysis_args(b)
    b.add_argument("--overwrite", action="store_true")
    b.add_argument("--quiet", "-q", action="store_true")

    sub.add_parser("methods", help="list every analysis method and tool, one line each",
                   description="List every registered analysis method and tool: name, kind, what it does.")
    for tool in TOOLS:
        _add_tool_parser(sub, tool)

    from .blurflow.train import add_train_arguments

    tb = sub.add_parser("train-blur-flow", help="retrain the blur-flow network on synthetic motion-blurred images",
                        description="Train the blur-flow network (Shajkofci & Liebling 2021) from scratch on "
                                    "synthetic motion-blurred images (Eq. 5) and save it as safetensors + JSON; "
                                    "apply it with micromotion blur-flow --model PATH. The shipped model: "
                                    "--steps 4000 --seed 0 --threads 1.")
    add_train_arguments(tb)

    from .interpolate.pretrain import add_train_arguments as add_interp_arguments

    ti = sub.add_parser("train-interpolator", help="pretrain the learned frame interpolator from scratch",
                        description="Pretrain the learned frame interpolator (micromotion interpolate --method learned) "
                                    "on simulated recordings and the even frames of the shared real recordings, and "
                                    "save it as safetensors + JSON; use it with micromotion interpolate --weights "
                                    "PATH. The shipped model: --steps 6000 --seed 0 --threads 1.")
    add_interp_arguments(ti)

    from .cells.pretrain import add_train_arguments as add_cells_arguments

    tc = sub.add_parser("train-cells", help="train the cell classifier (3CNet) on simulated labelled candidates",
                        description="Train the cell classifier of 'micromotion cells' on labelled candidates from "
                                    "simulated recordings (both firing modes) and save it as safetensors + JSON; "
                                    "use it with micromotion cells --model PATH. --arch exact trains the report's "
                                    "3CNet (27.3 M parameters); the defaults reproduce the shipped compact model.")
    add_cells_arguments(tc)

    v = sub.add_parser("view", help="open a recording (and results) in napari",
                       description="Open a recording, its ROIs and an analysis folder in napari with the plugin's widgets.")
    v.add_argument("transmission", nargs="?", help="transmission stack")
    v.add_argument("--fluorescence", "-f")
    v.add_argument("--rois")
    v.add_argument("--results", help="analysis output folder to show")
    v.add_argument("--fps", type=_positive_float)
    return parser


def _analysis_params(args: argparse.Namespace) -> Any:
    from . import schema
    from .pipeline import AnalysisParams, analysis_specs

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    return AnalysisParams(methods=methods).replace_values(schema.values_from_args(args, analysis_specs()))


def _fitted_models(args: argparse.Namespace) -> dict[str, Any]:
    """States of methods whose saved model was given (``--model-1d``)."""
    from .methods import METHODS

    return {m.name: m.load_model(getattr(args, f"model__{m.name}")) for m in METHODS
            if m.model_flag and getattr(args, f"model__{m.name}", None)}


def _describe(rec: Any) -> str:
    """The ``recording:`` line: size, rate and where the rate came from (a wrong rate in a file's metadata shows)."""
    came = rec.provenance.get("fps_from") if isinstance(rec.provenance, dict) else None
    return rec.describe() + (f"; frame rate from {came}" if came else "")


def _load_inputs(args: argparse.Namespace):
    from .io import read_recording
    from .recording import FADE_IN_WORDS, frames_to_skip
    from .rois import read_rois

    with warnings.catch_warnings(record=True) as caught:     # said below, once --frames is known
        warnings.simplefilter("always")
        rec = read_recording(args.transmission, args.fluorescence, channel=args.channel,
                             fluorescence_channel=args.fluorescence_channel, fps=args.fps, pixel_size_um=args.pixel_size,
                             interleaved=args.interleaved)
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    rois = read_rois(args.rois) if args.rois else []
    if getattr(args, "frames", None):
        from .pipeline import parse_validation

        a, b = parse_validation(args.frames, rec.n_frames)
        rec = rec.keep_frames(a, b)
        if not frames_to_skip(rec.provenance):        # the reader's advice to skip a fade-in is followed
            said = [w for w in said if FADE_IN_WORDS not in w]
    for w in said:
        _warn(args, w)
    return rec, rois


def _load_fluorescence(args: argparse.Namespace):
    """A tool's fluorescence video (positional) and optional ``--transmission`` as a recording."""
    from .io import read_recording
    from .rois import read_rois

    if args.transmission:
        rec = read_recording(args.transmission, args.fluorescence, fluorescence_channel=args.channel, fps=args.fps,
                             pixel_size_um=args.pixel_size, interleaved=args.interleaved)
    else:
        rec = read_recording(args.fluorescence, None, channel=args.channel, fps=args.fps,
                             pixel_size_um=args.pixel_size, interleaved=args.interleaved)
        if rec.fluorescence is not None and rec.fluorescence.ndim == 3:
            # a multi-channel file: --channel named the fluorescence, so the other one is the transmission
            if args.channel is not None:
                rec = rec.with_(transmission=rec.fluorescence, fluorescence=rec.transmission)
        else:
            # one video: the fluorescence alone (the recording's transmission slot holds it too, flagged)
            rec = rec.with_(fluorescence=rec.transmission, provenance={**rec.provenance, "no_transmission": True})
    return rec, (read_rois(args.rois) if args.rois else [])


def _input_checksums(args: argparse.Namespace) -> dict[str, Any]:
    from .io import file_checksum

    out = {}
    keys = ["transmission", "fluorescence", "image", "rois"] + [k for k in vars(args) if k.startswith("model__")]
    for key in keys:
        path = getattr(args, key, None)
        if path:
            name = f"model_{key[len('model__'):]}" if key.startswith("model__") else key
            out[name] = {"path": str(Path(path).resolve()), "checksum": file_checksum(path)}
    if "image" in out:
        out["image"]["frame"] = args.frame
    return out


def _command(args: argparse.Namespace) -> list[str]:
    """The command line that made this run, as given (``run.json``/the tool's record; see ``working_folder``)."""
    return ["micromotion", *getattr(args, "_argv", sys.argv[1:])]


def _given_paths(args: argparse.Namespace) -> list[Path]:
    """Every existing file or folder named on the command line except ``--out``: the inputs to protect."""
    return [Path(v) for k, v in vars(args).items()
            if k != "out" and isinstance(v, str) and v and os.path.lexists(v)]


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .export import prepare_output_dir, write_results
    from .methods import METHODS
    from .pipeline import iter_analysis
    from .progress import drive

    out = Path(args.out)
    # refuse a bad output folder before any work
    tmp = prepare_output_dir(out, args.overwrite, _given_paths(args))
    tmp.rmdir()
    params = _analysis_params(args)
    rec, rois = _load_inputs(args)
    fitted = _fitted_models(args)
    progress = StderrProgress(args.quiet)
    if not args.quiet:
        print(f"recording: {_describe(rec)}", file=sys.stderr)
        if any(getattr(METHODS.get(m), "uses_device", False) for m in params.methods):
            from .device import resolve_device

            print(f"device: {resolve_device(params.device)}", file=sys.stderr)
        for w in rec.provenance.get("warnings", []):
            _warn(args, w)
    stores: dict[str, Path] = {}
    kwargs: dict[str, Any] = {}
    client = None
    scratch = None
    try:
        if args.save_filtered or args.save_predictions:
            from .atomic import temp_sibling_dir
            from .distributed import open_zarr_stack
            from .pipeline import row_chunks

            scratch = temp_sibling_dir(out, "tmp")        # a short name (any output name fits), cleaned after a crash
            rows = row_chunks(rec.n_frames, rec.frame_shape, params.chunk_mb)[0]
            shape = (rec.n_frames, *rec.frame_shape)
            if args.save_filtered:
                stores["filtered.zarr"] = scratch / "filtered.zarr"
                kwargs["filtered_out"] = open_zarr_stack(stores["filtered.zarr"], shape, rows[1] - rows[0])
            if args.save_predictions:
                kwargs["predictions_out"] = {}
                for m in params.methods:
                    if m in METHODS and METHODS[m].kind == "pixel":
                        stores[f"predictions/{m}.zarr"] = scratch / f"{m}.zarr"
                        kwargs["predictions_out"][m] = open_zarr_stack(scratch / f"{m}.zarr", shape, rows[1] - rows[0])
        if args.scheduler:
            from .distributed import dask_chunks, make_client

            client = make_client(None if args.scheduler == "local" else args.scheduler, args.workers)
            kwargs["run_chunks"] = dask_chunks(client)
        results = drive(iter_analysis(rec, rois, params, fitted=fitted, **kwargs), progress=progress)
        for w in results.warnings:
            _warn(args, w)
        write_results(results, out, overwrite=args.overwrite, inputs=_input_checksums(args),
                      extra={"recording_provenance": rec.provenance, "command": _command(args)},
                      report=not args.no_report, move_in=stores)
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
    rows = [r for r in results.roi_scores if isinstance(r.score, float) and math.isfinite(r.score)]
    if not rows:
        return
    print(f"{'roi':<14s}{'kind':<8s}{'method':<10s}{'score':>7s}{'lag_s':>8s}{'p':>8s}", file=sys.stderr)
    for r in rows:
        print(f"{r.roi:<14s}{r.kind:<8s}{r.method:<10s}{r.score:7.3f}{r.lag_s:8.2f}{r.p_value:8.3g}", file=sys.stderr)


def _cmd_train(args: argparse.Namespace) -> int:
    from .methods import METHODS
    from .pipeline import iter_fit
    from .progress import drive

    method = METHODS[args.method]
    model_path = Path(args.model).with_suffix(".safetensors")
    if model_path.exists() and not args.overwrite:
        raise MicromotionError(f"model file {model_path} exists; pass --overwrite to replace it.")
    if not model_path.parent.is_dir():
        raise MicromotionError(f"folder {model_path.parent} does not exist.")
    if not os.access(model_path.parent, os.W_OK):
        raise MicromotionError(f"cannot write into {model_path.parent} (permission denied).")
    params = _analysis_params(args)
    rec, _ = _load_inputs(args)
    state = drive(iter_fit(rec, params, method.name), progress=StderrProgress(args.quiet))
    method.save_model(state, model_path)
    if not args.quiet:
        print(f"wrote {model_path} ({method.describe_model(state)})", file=sys.stderr)
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS
    from .tools import TOOLS

    rows = [(m.name, f"{m.kind} method", m.description) for m in METHODS]
    rows += [(t.command, f"tool ({t.kind})", t.description) for t in TOOLS]
    width = max(len(r[0]) for r in rows) + 2
    kw = max(len(r[1]) for r in rows) + 2
    for name, kind, text in rows:
        print(f"{name:<{width}s}{kind:<{kw}s}{text}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import SimulationParams, write_simulation

    overrides: dict[str, Any] = {"n_frames": args.frames, "size": args.size, "seed": args.seed, "fps": args.fps}
    if args.weak_px is not None:
        overrides["weak_px"] = args.weak_px
    if args.strong_px is not None:
        overrides["strong_px"] = args.strong_px
    for key, value in (("photons_per_pixel", args.low_light), ("transmission_photons_per_pixel",
                                                                  args.low_light_transmission),
                       ("rare_events", args.rare_events or None), ("unloaded_cells", args.unloaded_cells or None),
                       ("firing", None if args.firing == "synchronous" else args.firing),
                       ("inactive_cells", args.inactive_cells or None)):
        if value is not None:
            overrides[key] = value
    t0 = time.perf_counter()
    progress = StderrProgress(args.quiet)
    from .progress import Progress

    write_simulation(args.out, SimulationParams(), overwrite=args.overwrite, clean=args.clean,
                     progress=lambda f: progress(Progress("simulate", f, "")), **overrides)
    if not args.quiet:
        print(f"wrote {args.out} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from .distributed import BatchInterrupted, run_batch

    params = _analysis_params(args)
    try:
        return run_batch(args.pattern, Path(args.out), params, scheduler=args.scheduler, n_workers=args.workers,
                         fps=args.fps, rois=args.rois, fluorescence_suffix=args.fluorescence_suffix,
                         overwrite=args.overwrite, quiet=args.quiet, fitted=_fitted_models(args),
                         interleaved=args.interleaved)
    except BatchInterrupted as exc:     # some recordings' folders and the summary were written: say so
        print(f"\nerror: {exc}", file=sys.stderr)
        return 143 if isinstance(exc.__cause__, Terminated) else 130


def _cmd_view(args: argparse.Namespace) -> int:
    from ._qt.launch import launch_viewer

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        raise MicromotionError("micromotion view opens a napari window, but there is no display here (DISPLAY is "
                               "not set); run it on a desktop, or under xvfb-run for screenshots.")

    launch_viewer(args.transmission, fluorescence=args.fluorescence, rois=args.rois, results=args.results, fps=args.fps)
    return 0


def _cmd_tool(args: argparse.Namespace) -> int:
    from . import schema
    from .progress import drive
    from .tools import TOOLS

    tool = TOOLS[args.tool]
    out = Path(args.out)
    from .export import prepare_output_dir

    prepare_output_dir(out, args.overwrite, _given_paths(args)).rmdir()   # refuse a bad output folder before any work
    params = schema.replace_path(tool.Params(), schema.values_from_args(args, schema.specs(tool.Params)))
    schema.check_ranges(params)
    if tool.input == "image":
        from .io import read_image_with_metadata
        from .tools.base import with_source_pixel_size

        data, meta = read_image_with_metadata(args.image, frame=args.frame)
        source, rois = data, []
        px = meta["pixel_size_um"]
        given = with_source_pixel_size(params, px)          # the file's pixel size, unless given
        if given is not None:
            params = given
            meta["warnings"].append(f"using the pixel size {Path(args.image).name} records, {px:g} um; give "
                                    "--pixel-size to override it.")
        elif px and getattr(params, "pixel_size_um", "absent") is None:
            meta["warnings"].append(f"{Path(args.image).name} records a pixel size of {px:g} um, which cannot "
                                    "be right; it was not used (give --pixel-size).")
        for w in meta["warnings"]:
            _warn(args, w)
    elif tool.input == "fluorescence":
        source, rois = _load_fluorescence(args)
        if not args.quiet:
            print(f"recording: {_describe(source)}", file=sys.stderr)
    else:
        source, rois = _load_inputs(args)
        if not args.quiet:
            print(f"recording: {_describe(source)}", file=sys.stderr)
    # iter_run's first step checks the input, the tool's own conditions and the ROIs (Tool.validate)
    result = drive(tool.iter_run(source, params, rois=rois), progress=StderrProgress(args.quiet))
    if tool.input == "image" and meta["warnings"]:      # what the file's reader said, kept in the run record too
        result.source = {**result.source, "warnings": meta["warnings"]}
    for w in result.warnings:
        _warn(args, w)
    tool.write(result, out, overwrite=args.overwrite,
               extra={"inputs": _input_checksums(args), "command": _command(args),
                      "working_folder": os.getcwd()})
    if not args.quiet:
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_train_blur_flow(args: argparse.Namespace) -> int:
    from .blurflow.train import run_training

    run_training(args)
    return 0


def _cmd_train_interpolator(args: argparse.Namespace) -> int:
    from .interpolate.pretrain import run_training

    run_training(args, progress=StderrProgress(args.quiet))
    return 0


def _cmd_train_cells(args: argparse.Namespace) -> int:
    from .cells.pretrain import run_from_args

    cmd = "micromotion train-cells " + " ".join(sys.argv[2:])
    summary = run_from_args(args, cmd.strip(), progress=StderrProgress(args.quiet))
    if not args.quiet:
        print(f"validation: {summary['validation']}", file=sys.stderr)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a cluster's time limit) raised in the main thread, so that every cleanup runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``micromotion`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (already printed as one line), --help, --version
        return int(exc.code or 0)
    args.__dict__["_argv"] = list(argv) if argv is not None else sys.argv[1:]   # for the run records
    import logging

    # tifffile logs what it finds wrong in a damaged file; the reader turns that into the command's own sentence
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main else None
    try:
        return _run(args)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _warn(args: argparse.Namespace, text: str) -> None:
    """One ``warning: ...`` line on stderr (not with --quiet), each text once per command."""
    seen = args.__dict__.setdefault("_warned", set())
    if text not in seen and not getattr(args, "quiet", False):
        seen.add(text)
        print(f"warning: {text}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        # Python warnings (e.g. a lossy video codec) as the command's own one-line warnings, not source lines
        warnings.showwarning = lambda message, *rest, **kw: _warn(args, str(message))
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    commands = {"analyze": _cmd_analyze, "train": _cmd_train, "simulate": _cmd_simulate, "batch": _cmd_batch,
                "view": _cmd_view, "methods": _cmd_methods, "train-blur-flow": _cmd_train_blur_flow,
                "train-interpolator": _cmd_train_interpolator, "train-cells": _cmd_train_cells}
    try:
        return commands.get(args.command, _cmd_tool)(args)
    except MicromotionError as exc:
        print(f"error: {exc.for_cli()}", file=sys.stderr)
        return 2
    except Cancelled:
        print("error: cancelled; no output was written.", file=sys.stderr)
        return 130
    except Terminated:
        print("\nerror: terminated; no output was written and earlier results are untouched.", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("\nerror: interrupted; no output was written and earlier results are untouched.", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; lower --chunk-mb or --cnn-n-pixels.", file=sys.stderr)
        return 2
    except BrokenPipeError:      # `micromotion methods | head`: the reader went away; that is not an error
        try:
            sys.stdout = open(os.devnull, "w")     # so that Python's own flush at exit does not complain
        except OSError:
            pass
        return 0
    except OSError as exc:       # a write to stdout/stderr (or a file) the system refused, e.g. /dev/full
        print(f"error: {exc.strerror or exc}.", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
