"""Train the shipped compact cell classifier on simulated recordings.

``python -m napari_micromotion.cells.pretrain`` (``--help`` for options) simulates the training
recordings (:mod:`.dataset`), encodes them (:mod:`.encode`), trains
:class:`~napari_micromotion.cells.model.CompactThreeCNet` with the report's loss and optimiser
(:mod:`.train`), fits the probability temperature on held-out recordings and writes
``cells/weights/cells_compact.safetensors`` + ``.json``; the sidecar records the command, the data
(seeds, sizes, frames, counts) and the validation metrics.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import MicromotionError, check
from ..progress import Progress, drive
from .config import SHIPPED, SHIPPED_CONFIG, ClassifierConfig
from .dataset import EXTRACTION_VARIANTS

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import Recording
    from .train import CellClassifier

__all__ = ["run_training", "SHIPPED_CONFIG", "DEFAULT_TRAIN_SEEDS", "DEFAULT_SIZES", "DEFAULT_FRAMES", "main"]

#: simulator seeds of the shipped model's training recordings (tests and benchmarks use others)
DEFAULT_TRAIN_SEEDS = tuple(range(100, 172))
#: frame sides (px) and firing modes, cycled over the seeds
DEFAULT_SIZES = (96, 128, 160)
DEFAULT_FIRING = ("synchronous", "independent")
#: lengths (frames) per seed: 48 recordings of 2000-5000 frames, then 24 short ones of 500-1500 (users
#: often record 10-30 s; the ``middle`` trace of a short recording is mostly padding, the model must know it)
LONG_FRAMES = (2000, 3000, 4000, 5000)
SHORT_FRAMES = (500, 750, 1000, 1250, 1500)
DEFAULT_FRAMES = tuple(LONG_FRAMES[i % 4] if i < 48 else SHORT_FRAMES[i % 5] for i in range(len(DEFAULT_TRAIN_SEEDS)))
#: dye-loaded cells that never fire, per recording (each an ``inactive`` not-cell)
DEFAULT_INACTIVE = 3
#: perturbed extractions per cell (negatives alike): three times the examples per rendered recording
DEFAULT_COPIES = 3
#: every recording also goes through the real extraction four times (the default, the other method, the
#: diameter estimate 20 % low and 25 % high), whose candidates are labelled by the truth
DEFAULT_EXTRACTED = len(EXTRACTION_VARIANTS)


def run_training(out_path: str | Path | None = SHIPPED, *, seeds: Sequence[int] = DEFAULT_TRAIN_SEEDS,
                 sizes: Sequence[int] = DEFAULT_SIZES, n_frames: Sequence[int] = DEFAULT_FRAMES,
                 firing: Sequence[str] | str = DEFAULT_FIRING, inactive_cells: int = DEFAULT_INACTIVE,
                 copies: int = DEFAULT_COPIES, extracted: int = DEFAULT_EXTRACTED,
                 val_fraction: float = 0.1, config: ClassifierConfig = SHIPPED_CONFIG,
                 command: str = "", progress: Callable[[Progress], None] | None = None,
                 recordings: Sequence[Recording] | None = None) -> tuple[CellClassifier, dict]:
    """Simulate, encode, train and (when *out_path*) save a classifier; returns it and a summary.

    Parameters
    ----------
    out_path
        Where to write the model pair (``None``: do not write).
    seeds, sizes, n_frames, firing, inactive_cells, copies, extracted
        The training recordings (see :func:`~napari_micromotion.cells.dataset.iter_training_set`).
    val_fraction
        Share of the recordings held out for validation and the temperature, spread evenly over
        them (first to last), so that every kind of recording is in both parts.
    config
        Architecture, encoding and training settings.
    command
        The command line to record in the sidecar.
    recordings
        Already simulated recordings (what :func:`~napari_micromotion.cells.dataset.iter_training_set`
        returned for these arguments) instead of simulating them again.
    """
    from .dataset import encode_recording, iter_training_set
    from .train import CellClassifier, metrics

    t0 = time.perf_counter()
    if recordings is None:
        recs = drive(iter_training_set(seeds, sizes, n_frames, firing=firing, inactive_cells=inactive_cells,
                                       copies=copies, extracted=extracted), progress=progress)
    else:
        recs = list(recordings)
    t_data = time.perf_counter() - t0
    n_val = int(round(val_fraction * len(recs))) if len(recs) > 1 else 0
    is_val = np.zeros(len(recs), bool)
    if n_val:
        is_val[np.unique(np.round(np.linspace(0, len(recs) - 1, n_val)).astype(int))] = True
    train = [r for r, v in zip(recs, is_val) if not v]
    val = [r for r, v in zip(recs, is_val) if v]
    def enc(r: Recording, jitter: float) -> np.ndarray:
        return encode_recording(r, config.encoding, reference_cell_px=config.reference_cell_px,
                                mask_channel=config.shape, scale_jitter=jitter, seed=config.seed)

    x = np.concatenate([enc(r, config.scale_jitter) for r in train])
    y = np.concatenate([r.y for r in train])
    xv = np.concatenate([enc(r, 0.0) for r in val]) if val else None
    yv = np.concatenate([r.y for r in val]) if val else None
    clf = CellClassifier(config)
    drive(clf.iter_fit(x, y, x_val=xv, y_val=yv), progress=progress)
    summary: dict[str, Any] = {
        "command": command,
        "data": {"source": "napari_micromotion.cells.dataset (simulated, no downloads)",
                 "train_seeds": [r.info["seed"] for r in train], "val_seeds": [r.info["seed"] for r in val],
                 "recordings": [r.info for r in recs],
                 "n_train": int(len(y)), "n_train_cells": int(y.sum()),
                 "n_val": int(len(yv)) if yv is not None else 0},
        "validation": metrics(yv, clf.predict_proba(xv) >= 0.5) if xv is not None else None,
        "data_seconds": round(t_data, 1),
        "training_seconds": round(clf.seconds, 1),
    }
    clf.training = summary
    if out_path is not None:
        clf.save(out_path, extra={"training": summary})
    return clf, summary


def add_train_arguments(ap: argparse.ArgumentParser, *, out_required: bool = True) -> None:
    """Options of ``micromotion train-cells`` (and ``python -m napari_micromotion.cells.pretrain``)."""
    if out_required:
        ap.add_argument("--out", "-o", required=True, help="model path (.safetensors; the .json is written beside it)")
    else:
        ap.add_argument("--out", default=str(SHIPPED), help="model path (.safetensors; the .json is written beside "
                                                            "it; default: the model shipped in the package, replaced "
                                                            "only with --overwrite)")
    ap.add_argument("--arch", default="compact", choices=("compact", "exact"),
                    help="compact (shipped) or exact (the report's 3CNet, 27.3 M parameters)")
    ap.add_argument("--encoding", default=SHIPPED_CONFIG.encoding, choices=("middle", "resample", "spectrogram"),
                    help="trace encoding (middle: the report's 8464 middle samples)")
    ap.add_argument("--epochs", type=int, default=SHIPPED_CONFIG.epochs)
    ap.add_argument("--reference-cell-px", type=float, default=SHIPPED_CONFIG.reference_cell_px,
                    help="zoom patches so cells are this wide (0: native scale, the report's)")
    ap.add_argument("--shape", type=int, default=int(SHIPPED_CONFIG.shape), choices=(0, 1),
                    help="1: the hybrid model (mask channel + shape statistics in the head)")
    ap.add_argument("--pool", type=int, default=SHIPPED_CONFIG.pool, choices=(1, 2),
                    help="average pooling of the input before the compact model's convolutions")
    ap.add_argument("--scale-jitter", type=float, default=SHIPPED_CONFIG.scale_jitter,
                    help="training zooms multiplied by a factor in 1 +- this (robust to the cell-size estimate)")
    ap.add_argument("--copies", type=int, default=DEFAULT_COPIES, help="perturbed extractions per cell")
    ap.add_argument("--extractions", type=int, default=DEFAULT_EXTRACTED,
                    help=f"extractions per recording whose candidates join the training set (0-{len(EXTRACTION_VARIANTS)}: "
                         "the tool's default, the other method, the diameter estimate 20 %% low and 25 %% high)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-recordings", type=int, default=len(DEFAULT_TRAIN_SEEDS),
                    help="simulated training recordings (seeds 100 onwards)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")


def run_from_args(a: argparse.Namespace, command: str, progress: Callable[[Progress], None] | None = None) -> dict:
    """Train as *a* (from :func:`add_train_arguments`) says and save; returns the training summary."""
    check(not Path(a.out).is_dir(), f"--out {a.out} is a folder; give the model's file name (.safetensors).")
    out = Path(a.out).with_suffix(".safetensors")
    # the shipped model too: by default this entry point writes the package's own weights, which a user repeating the
    # recipe should not replace without saying so
    check(a.overwrite or not out.exists(), f"model file {out} exists; pass --overwrite to replace it"
                                           + (" (it is the model shipped in the package)." if out.resolve()
                                              == SHIPPED.resolve() else "."))
    check(out.parent.is_dir(), f"folder {out.parent} does not exist.")
    check(1 <= a.n_recordings <= len(DEFAULT_TRAIN_SEEDS) and a.epochs >= 1 and a.threads >= 1,
          f"--n-recordings must be 1-{len(DEFAULT_TRAIN_SEEDS)}, --epochs and --threads at least 1.")
    check(0 <= a.extractions <= len(EXTRACTION_VARIANTS), f"--extractions must be 0-{len(EXTRACTION_VARIANTS)}.")
    check(a.copies >= 1, f"--copies must be at least 1, got {a.copies}.")
    check(0 <= a.scale_jitter < 1, f"--scale-jitter must be at least 0 and below 1, got {a.scale_jitter:g}.")
    check(a.reference_cell_px >= 0, f"--reference-cell-px must be 0 (native scale) or positive, got "
                                    f"{a.reference_cell_px:g}.")
    check(a.seed >= 0, f"--seed must be a non-negative integer, got {a.seed}.")
    cfg = ClassifierConfig(arch=a.arch, encoding=a.encoding, epochs=a.epochs, seed=a.seed, threads=a.threads,
                           reference_cell_px=a.reference_cell_px, shape=bool(a.shape) and a.arch == "compact",
                           pool=a.pool if a.arch == "compact" else 1, scale_jitter=a.scale_jitter)
    _, summary = run_training(out, seeds=DEFAULT_TRAIN_SEEDS[:a.n_recordings], n_frames=DEFAULT_FRAMES[:a.n_recordings],
                              config=cfg, command=command, copies=a.copies, extracted=a.extractions, progress=progress)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m napari_micromotion.cells.pretrain", description=__doc__.split("\n")[0])
    add_train_arguments(ap, out_required=False)
    a = ap.parse_args(argv)

    def show(ev: Progress) -> None:
        if not a.quiet:
            print(f"\r{ev.stage}: {100 * ev.fraction:5.1f} % {ev.message}".ljust(80), end="", file=sys.stderr)

    cmd = "python -m napari_micromotion.cells.pretrain " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        summary = run_from_args(a, cmd.strip(), progress=show)
    except MicromotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(summary["validation"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
