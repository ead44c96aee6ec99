"""Self-supervised denoising with a mean-image prior and calibrated uncertainty (issue 13).

``micromotion denoise VIDEO [--channel C] [--fps F] [--context N] [--epochs E] [--model M] [--rois R] --out DIR``

A compact U-Net learns on the recording itself to predict frame ``t`` from its ``N``
neighbours on either side (frame ``t`` left out, DeepInterpolation's scheme) plus the
leave-one-out mean and SD images (the prior); its loss is the Gaussian likelihood of the
noisy frame with the camera's noise (measured on the movie) plus a learned per-pixel SD of
the clean signal.  Monte-Carlo dropout adds the network's own uncertainty; blocks of
held-out frames (never a training target) calibrate the predicted SD and measure the
spatial correlation of the errors, which the ROI corridors keep (:mod:`napari_micromotion.denoise`);
the training targets, where the network's error is smaller, get their own size, measured
the same way on them.

Output folder (written atomically):

* ``denoised.tif``: float32, the input's shape and units;
* ``uncertainty.tif``: float32, calibrated predictive SD of the clean signal (same units);
* ``guard.tif``: float32 ``(Y, X)``, the fraction of frames in which a pixel's 5 x 5 box departs
  from the raw data by more than noise and stated uncertainty allow (hallucination guard);
* ``roi_traces.csv``: ``frame,time_s`` then per ROI (or ``frame``, the whole field)
  ``<roi>/raw``, ``<roi>/denoised``, ``<roi>/lo90``, ``<roi>/hi90`` as dF/F0, then
  ``<roi>/combined``, ``<roi>/combined_lo90``, ``<roi>/combined_hi90``: the raw and denoised
  ROI means averaged by their error variances (the network never sees frame t, so the two
  errors are independent), the better trace for ROIs of many pixels
  (:mod:`napari_micromotion.denoise.traces`);
* ``model.safetensors`` + ``model.json``: the network, camera model, calibration (``--model``
  applies it to another recording without training);
* ``denoise.json``: parameters, loss curve, held-out metrics, calibration, guard, timings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from ..errors import check
from ..layout import Entry, ImageEntry, VideoEntry, read_number_table, write_frame_table
from ..progress import Progress, scaled
from ..results import WHOLE_FIELD
from ..schema import param
from . import TOOLS
from .base import RecordEntry, Tool, ToolResult, synthesized_warning

__all__ = ["Denoise", "DenoiseParams", "DenoiseResult", "split_frames", "iter_denoise", "iter_denoise_checked"]


@dataclass(frozen=True)
class DenoiseParams:
    """Settings of the denoising tool."""

    context: int = param(4, label="context frames", unit="frames", min=1, max=16, flag="--context",
                         help="Frames on either side of a frame that predict it (the frame itself is left out).")
    epochs: int = param(8, label="epochs", min=1, max=200, flag="--epochs",
                        help="Passes over the training frames (training stops earlier when held-out frames stop "
                             "improving or the time budget runs out).")
    model: str = param("", label="saved model", flag="--model", metavar="MODEL",
                       help="A model.safetensors written by an earlier run: apply it without training (empty: train "
                            "on this recording).")
    prior: str = param("mean+sd", label="prior", choices=("mean+sd", "mean", "none"), flag="--prior",
                       help="What the network sees besides the neighbouring frames: the recording's mean and SD "
                            "images, the mean only, or nothing.")
    folds: int = param(1, label="cross-fitting folds", min=1, max=2, flag="--folds", advanced=True,
                       help="2: two networks, each trained on half the frames (alternating blocks) and applied to "
                            "the other half, so every frame is denoised out of sample and the whole movie "
                            "calibrates the uncertainty (each network gets half the time budget); 1: one network "
                            "with held-out blocks.")
    heldout_fraction: float = param(0.2, label="held-out frames", min=0.05, max=0.5, flag="--heldout-fraction",
                                    advanced=True, help="Share of the frames (in blocks) never used as training "
                                                        "targets: they stop training and calibrate the uncertainty.")
    max_minutes: float = param(10.0, label="time budget", unit="min", min=0.05, max=1440.0, flag="--max-minutes",
                               advanced=True, help="Training stops after this long (and says so).")
    steps_per_epoch: int = param(0, label="steps per epoch", min=0, max=100000, flag="--steps-per-epoch",
                                 advanced=True, help="Batches per epoch; 0 chooses from the movie's size.")
    patch_px: int = param(64, label="patch size", unit="px", min=16, max=512, flag="--patch", advanced=True,
                          help="Side of the square patches the network trains on.")
    width: int = param(8, label="network width", min=4, max=64, flag="--width", advanced=True,
                       help="Channels at full resolution (2x, 4x, 4x below).")
    mc_passes: int = param(0, label="Monte-Carlo passes", min=0, max=64, flag="--mc-passes", advanced=True,
                           help="Dropout passes per frame for the network's own uncertainty; 0 uses their exact "
                                "limit (the dropout sits before the linear head), 1 leaves it out.")
    samples: int = param(200, label="trace samples", min=20, max=10000, flag="--samples", advanced=True,
                         help="Monte-Carlo samples per ROI and frame for the 90 % corridor.")
    guard_z: float = param(4.0, label="guard threshold", unit="SD", min=1.0, max=20.0, flag="--guard-z",
                           advanced=True, help="A 5 x 5 px box is flagged when denoised and raw differ by more "
                                               "than this many SD of what noise and uncertainty allow.")
    seed: int = param(0, label="seed", min=0, max=2**31 - 1, flag="--seed", advanced=True,
                      help="Seed of training and sampling (same seed, data and threads: same result).")
    threads: int = param(2, label="threads", min=1, max=64, flag="--threads", advanced=True,
                         help="CPU threads torch uses.")


@dataclass
class DenoiseResult(ToolResult):
    """What the denoiser made (see the module docstring)."""

    fps: float = 1.0
    pixel_size_um: float | None = None
    n_frames: int = 0
    frame_shape: tuple[int, int] = (0, 0)
    denoised: np.ndarray | None = None            # (T, Y, X) float32, input units
    uncertainty: np.ndarray | None = None         # (T, Y, X) float32, calibrated SD
    guard: np.ndarray | None = None               # (Y, X) fraction of frames flagged
    regions: list[str] = field(default_factory=list)
    traces: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)   # roi -> raw/denoised/lo90/hi90 (dF/F0)
    model: Any = None                             # TrainedDenoiser (not read back)
    calibration: Any = None                       # Calibration (not read back)
    metrics: dict[str, Any] = field(default_factory=dict)

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps


TRACE_KINDS = ("raw", "denoised", "lo90", "hi90", "combined", "combined_lo90", "combined_hi90")


class RoiTracesEntry(Entry):
    """``roi_traces.csv`` <-> ``traces``."""

    path = "roi_traces.csv"
    what = ("per frame and ROI: raw and denoised dF/F0, the denoised trace's 90 % corridor (lo90, hi90), and the "
            "raw and denoised means combined by their error variances with its corridor (combined*)")

    def write(self, result: DenoiseResult, folder: Path) -> None:

        cols = ["frame", "time_s"]
        data = [np.arange(result.n_frames, dtype=np.float64), result.time_s()]
        for r in result.regions:
            for k in TRACE_KINDS:
                cols.append(f"{r}/{k}")
                data.append(np.asarray(result.traces[r][k], np.float64))
        write_frame_table(folder / self.path, cols, np.column_stack(data))

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        read = read_number_table(folder / self.path)
        if read is None:
            return
        header, table = read
        traces: dict[str, dict[str, np.ndarray]] = {}
        regions: list[str] = []
        for j, col in enumerate(header[2:], start=2):
            roi, _, kind = col.rpartition("/")
            if roi not in traces:
                traces[roi] = {}
                regions.append(roi)
            traces[roi][kind] = table[:, j]
        fields.update(traces=traces, regions=regions, n_frames=table.shape[0])


class ModelEntry(Entry):
    """``model.safetensors`` + ``model.json`` (written, not read back: load them with ``--model``)."""

    path = "model.safetensors"
    what = "the trained network, camera model and calibration (model.json beside it); --model applies it"

    def write(self, result: DenoiseResult, folder: Path) -> None:
        from ..denoise.files import save_denoiser

        if result.model is not None:
            save_denoiser(result.model, result.calibration, folder / self.path)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        pass


def _block_frames(context: int) -> int:
    """Frames per block of held-out or cross-fitted frames: at least 10, and ``2N + 2`` for a context of ``N``."""
    return max(10, 2 * context + 2)


def split_frames(n_frames: int, heldout_fraction: float, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Training targets and held-out frames: every ``round(1/f)``-th block of ``max(10, 2N+2)`` frames is held out."""
    block = _block_frames(context)
    period = max(2, int(round(1.0 / max(heldout_fraction, 1e-6))))
    blocks = np.arange(n_frames) // block
    held = (blocks % period) == (period // 2)
    if not held.any() and n_frames >= 2:      # a short movie: hold out its middle block
        held[(n_frames // 2):(n_frames // 2) + max(1, min(block, n_frames // 5))] = True
    return np.nonzero(~held)[0], np.nonzero(held)[0]


class _WholeField:
    def __init__(self, shape: tuple[int, int]) -> None:
        self.names = [WHOLE_FIELD]
        self.masks = np.ones((1, *shape), bool)
        self.clipped: tuple[str, ...] = ()          # as RoiMasks: nothing cut off at the frame's edge


def cross_fit_folds(n_frames: int, context: int) -> np.ndarray:
    """Fold (0 or 1) of every frame: alternating blocks of ``max(10, 2N+2)`` frames (as :func:`split_frames`)."""
    return (np.arange(n_frames) // _block_frames(context)) % 2


def iter_denoise(video: Any, fps: float, params: DenoiseParams | None = None, rois: Sequence[Any] = (), *,
                 train_frames: Sequence[int] | None = None) -> Generator[Progress, None, DenoiseResult]:
    """Denoise *video* ``(T, Y, X)``; *train_frames* limits training targets (and the prior) to these frames.

    With ``params.folds == 2`` (cross-fitting) two networks train on alternating blocks of
    frames, each denoises the other's frames, and every frame calibrates the uncertainty;
    the first network is the one saved.  Returns a :class:`DenoiseResult`; progress:
    ``values={"loss": ...}`` while training.  Everything is checked first, as the tool does
    (one-sentence :class:`~napari_micromotion.errors.MicromotionError`).
    """
    from ..recording import Recording

    params = DenoiseParams() if params is None else params
    rec = Recording(video, fps)                  # a (T, Y, X) video of finite numbers and a positive frame rate
    rois = Denoise().validate(rec, params, rois)
    if train_frames is not None:
        frames = np.asarray(list(train_frames))
        check(frames.size > 0 and frames.dtype.kind in "iu" and frames.min() >= 0 and frames.max() < rec.n_frames,
              f"training frames must be frame numbers from 0 to {rec.n_frames - 1}.")
    return (yield from iter_denoise_checked(rec.transmission, rec.fps, params, rois, train_frames=train_frames))


class DistinctFrames:
    """The frames *index* of *video* as a lazy ``(len(index), Y, X)`` array: indexing reads only those frames."""

    def __init__(self, video: Any, index: np.ndarray) -> None:
        self.video = video
        self.index = np.asarray(index, int)
        self.shape = (int(self.index.size), *(int(v) for v in video.shape[1:]))
        self.dtype = video.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.video[(self.index[key[0]], *key[1:])])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self.video[self.index])
        return out if dtype is None else out.astype(dtype)


def iter_denoise_checked(video: Any, fps: float, params: DenoiseParams, rois: Sequence[Any] = (), *,
                         train_frames: Sequence[int] | None = None) -> Generator[Progress, None, DenoiseResult]:
    """:func:`iter_denoise` on input the caller has checked (a :class:`~napari_micromotion.Recording`'s channel,
    parameters and ROIs checked by :meth:`Denoise.validate`): what the tool and the analysis run.

    Frames that copy the frame before exactly (a re-timed or frame-dropping export) are one
    camera frame: the denoiser learns, calibrates and predicts on the distinct frames only, and
    every copy gets the result of the frame it copies.  Otherwise a copy would sit among the
    neighbours that predict its original, and the network would learn to pass the copy's
    noise through (on a simulation with 14 % repeated frames: 32.6 dB where the distinct frames
    give 38.5 dB, and 90 % intervals covering 66 % instead of 88 %).
    """
    from ..denoise.train import frame_runs
    from ..io import frame_list, repeated_frames

    repeats = repeated_frames(video)
    n = int(video.shape[0])
    if repeats.size == 0:
        return (yield from _denoise_distinct(video, fps, params, rois, train_frames=train_frames))
    same = np.zeros(n, bool)
    same[repeats] = True
    keep = np.nonzero(~same)[0]                 # the first frame of every run of identical frames
    which = np.cumsum(~same) - 1                # every frame's distinct frame
    need = 2 * params.context + 2
    check(keep.size >= max(3, need), f"the movie has only {keep.size} distinct frames (its other {repeats.size} "
                                     f"copy the frame before); denoising with {params.context} context frames on "
                                     f"either side needs at least {max(3, need)}.")
    sub_train = None
    if train_frames is not None:
        allowed = np.zeros(n, bool)
        allowed[np.asarray(list(train_frames), int)] = True
        # a distinct frame trains only if every copy of it may (no copy of a training target is scored)
        sub_train = np.nonzero(np.bincount(which, weights=~allowed, minlength=keep.size) == 0)[0]
    res = yield from _denoise_distinct(DistinctFrames(video, keep), fps, params, rois, train_frames=sub_train)
    # every frame gets its distinct frame's results
    res.denoised = res.denoised[which]
    res.uncertainty = res.uncertainty[which]
    res.traces = {r: {k: np.asarray(v)[which] for k, v in tr.items()} for r, tr in res.traces.items()}
    res.n_frames = n
    m = res.metrics
    held_sub = np.asarray(m["heldout_frames"], int)
    held = np.nonzero(np.isin(which, held_sub))[0]
    m["heldout_frames"] = held.tolist()
    m["guard_flagged_per_frame"] = np.asarray(m["guard_flagged_per_frame"])[which].tolist()
    m["repeated_frames"] = repeats.tolist()
    m["distinct_frames"] = int(keep.size)
    if res.model is not None and not params.model:
        runs = np.asarray(res.model.training_frames, int).reshape(-1, 2)
        sub = np.concatenate([np.arange(a, b) for a, b in runs]) if runs.size else np.zeros(0, int)
        res.model.training_frames = frame_runs(np.nonzero(np.isin(which, sub))[0])
        res.model.heldout_frames = held.tolist()
    res.warnings.insert(0, f"{repeats.size} of the {n} frames copy the frame before exactly (frames "
                           f"{frame_list(repeats)}): the "
                           f"denoiser learned from the {keep.size} distinct frames, and each copy has the denoised "
                           "frame, uncertainty and trace values of the frame it copies.")
    return res


def _denoise_distinct(video: Any, fps: float, params: DenoiseParams, rois: Sequence[Any] = (), *,
                      train_frames: Sequence[int] | None = None) -> Generator[Progress, None, DenoiseResult]:
    """:func:`iter_denoise_checked` on a movie without repeated frames."""
    from ..denoise.data import Normaliser, Prior, fit_camera_model
    from ..denoise.files import load_denoiser
    from ..denoise.predict import fit_calibration, guard_frames, iter_predict
    from ..denoise.traces import roi_traces
    from ..denoise.train import TrainSettings, iter_train
    from ..rois import rasterize

    t_start = time.perf_counter()
    n, ny, nx = (int(v) for v in video.shape)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    allowed = np.ones(n, bool)
    if train_frames is not None:
        allowed[:] = False
        allowed[np.asarray(list(train_frames), int)] = True
    cross = params.folds == 2 and not params.model
    if cross:
        fold = cross_fit_folds(n, params.context)
        parts = [np.nonzero(allowed & (fold == k))[0] for k in (0, 1)]
        check(min(p.size for p in parts) >= 2, "too few training frames to cross-fit the denoiser (each half needs "
                                                "at least 2); use one fold.")
        held = np.nonzero(allowed)[0]                           # every allowed frame is denoised out of sample
        jobs = [(parts[0], parts[1]), (parts[1], parts[0])]    # (targets, validation) of each network
    else:
        targets, held = split_frames(n, params.heldout_fraction, params.context)
        targets, held = targets[allowed[targets]], held[allowed[held]]
        if train_frames is not None:
            check(held.size >= 1 and targets.size >= 2, "too few training frames to train and calibrate the denoiser.")
        jobs = [(targets, held)]
    calibration = None
    fold_info: list[dict[str, Any]] = []
    if params.model:
        yield Progress("denoise", 0.0, f"loading {params.model}")
        model, calibration = load_denoiser(params.model)
        check(n >= 2 * model.context + 2, f"the movie has {n} frames; the model's {model.context} context frames on "
                                          f"either side need at least {2 * model.context + 2}.")
        prior = Prior.of(video, None if train_frames is None else np.nonzero(allowed)[0])
        if calibration is not None and calibration.prior_white > 0:    # the noise of this recording's mean image
            calibration.prior_white = 1.0 / max(prior.count - 1, 1)
        models = [model]
        # the saved model fixes its context, prior and width: say so if other values were asked for, and record
        # the ones used
        defaults = DenoiseParams()
        used = {"context": model.context, "prior": model.prior, "width": model.width}
        asked = {k: getattr(params, k) for k in used if getattr(params, k) != getattr(defaults, k)}
        ignored = [f"{k} {v}" for k, v in asked.items() if v != used[k]]
        if ignored:
            warnings.append(f"the saved model sets its own {', '.join(used)} ({', '.join(f'{k} {v}' for k, v in used.items())}); "
                            f"{', '.join(ignored)} did not apply.")
        params = replace(params, **used)
    else:
        t0 = time.perf_counter()
        yield Progress("denoise", 0.0, "measuring the camera noise")
        camera, cam_report = fit_camera_model(video, np.concatenate([j[0] for j in jobs]), seed=params.seed)
        prior = Prior.of(video, None if train_frames is None else np.nonzero(allowed)[0])
        norm = Normaliser.of(prior.mean(), camera)
        timings["camera_model"] = time.perf_counter() - t0
        models = []
        for k, (tg, val) in enumerate(jobs):
            settings = TrainSettings(context=params.context, prior=params.prior, epochs=params.epochs,
                                     steps_per_epoch=params.steps_per_epoch or None, patch_px=params.patch_px,
                                     width=params.width, max_minutes=params.max_minutes / len(jobs),
                                     seed=params.seed + k, threads=params.threads)
            train = iter_train(video, tg, val, prior, camera, norm, settings)
            if len(jobs) > 1:
                train = scaled(train, k / len(jobs), (k + 1) / len(jobs), f" {k + 1} of {len(jobs)}")
            m = yield from train
            models.append(m)
            fold_info.append({"targets": int(tg.size), "best_epoch": m.best_epoch, "epochs_run": len(m.epoch_loss),
                              "steps": m.steps, "seconds": m.seconds, "stopped_early": m.stopped_early,
                              "epoch_loss": m.epoch_loss, "val_loss": m.val_loss, "val_mse": m.val_mse})
            if m.stopped_early.startswith("the time budget"):
                warnings.append(f"training stopped early{f' (network {k + 1})' if len(jobs) > 1 else ''}: "
                                f"{m.stopped_early}.")
        model = models[0]
        timings["train"] = float(sum(m.seconds for m in models))
    mu = np.empty((n, ny, nx), np.float32)
    var = np.empty((n, ny, nx), np.float32)
    pred: dict[str, float] = {"seconds": 0.0}
    shares = []
    for k, net in enumerate(models):
        # cross-fitting: network k denoises the other fold's frames (and, of frames outside both, fold k's)
        frames = None if len(models) == 1 else np.nonzero(fold != k)[0]
        info = yield from iter_predict(video, net, prior, mu, var, frames=frames, mc_passes=params.mc_passes,
                                       threads=params.threads, seed=params.seed)
        pred["seconds"] += info["seconds"]
        shares.append(info["mc_share_of_variance"])
    pred["frames_per_s"] = n / max(pred["seconds"], 1e-9)
    pred["mc_share_of_variance"] = float(np.mean(shares))
    timings["predict"] = pred["seconds"]
    t0 = time.perf_counter()
    # the network's own training targets are sized by their own factor (it fitted their signal)
    in_sample = np.zeros(n, bool)
    if not cross and not params.model:
        in_sample[jobs[0][0]] = True
    if calibration is None:
        yield Progress("calibrate", 0.0, f"on {held.size} {'out-of-sample' if cross else 'held-out'} frames")
        calibration = fit_calibration(video, mu, var, held, model.camera,
                                      prior_frames=prior.count if model.prior != "none" else 0,
                                      in_sample_frames=np.nonzero(in_sample)[0])
        calibration.report["cross_fitted"] = bool(cross)
    sd = var
    for a in range(0, n, 64):                         # in place: var becomes the calibrated SD
        for flag in (False, True):
            idx = a + np.nonzero(in_sample[a:a + 64] == flag)[0]
            if idx.size:
                sd[idx] = calibration.sd(var[idx], mu[idx], model.camera, in_sample=flag)
    timings["calibrate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    flags = np.zeros((n, ny, nx), np.uint8)
    guard = yield from guard_frames(video, mu, sd, model.camera, calibration.kernel, params.guard_z, flags)
    guard_map = flags.mean(axis=0, dtype=np.float32)
    del flags
    timings["guard"] = time.perf_counter() - t0
    if guard["flagged_fraction"] > 10 * guard["expected_fraction_if_honest"] + 1e-4:
        warnings.append(f"the denoised movie departs from the raw data more than noise allows in "
                        f"{100 * guard['flagged_fraction']:.2g} % of pixels (see guard.tif).")
    t0 = time.perf_counter()
    yield Progress("traces", 0.0, "ROI traces and corridors")
    masks = rasterize(list(rois), (ny, nx)) if rois else _WholeField((ny, nx))
    warnings.extend(masks.clipped)
    tr = roi_traces(video, mu, sd, masks, calibration.kernel, fps, n_samples=params.samples, seed=params.seed,
                    heldout=held, context=model.context, groups=fold if cross else None, camera=model.camera,
                    in_sample=in_sample)
    traces = {r: {"raw": tr.raw[r], "denoised": tr.denoised[r], "lo90": tr.lo[r], "hi90": tr.hi[r],
                  "combined": tr.combined[r], "combined_lo90": tr.combined_lo[r], "combined_hi90": tr.combined_hi[r]}
              for r in tr.names}
    timings["traces"] = time.perf_counter() - t0
    # held-out metrics: the residual against the raw frames, in units of the camera noise (1 = perfect)
    res = [float(np.mean((np.asarray(video[int(t)], np.float64) - mu[t]) ** 2 / model.camera.var(mu[t].astype(np.float64))))
           for t in held[:: max(1, held.size // 100)]]
    metrics = {
        "n_parameters": model.n_parameters, "training_frames": int(sum(j[0].size for j in jobs)), "heldout_frames": held.tolist(),
        "folds": len(models), "networks": fold_info,
        "loss_curve": model.loss_curve, "epoch_loss": model.epoch_loss, "val_loss": model.val_loss,
        "val_mse": model.val_mse, "best_epoch": model.best_epoch, "stopped_early": model.stopped_early,
        "heldout_residual_over_noise": float(np.mean(res)) if res else None,
        "camera": model.camera.to_dict(), "calibration": calibration.to_dict(),
        "inference_frames_per_s": pred["frames_per_s"], "mc_share_of_variance": pred["mc_share_of_variance"],
        "guard": {k: v for k, v in guard.items() if k != "flagged_per_frame"},
        "guard_flagged_per_frame": guard["flagged_per_frame"], "applied_saved_model": bool(params.model),
        "trace_slow_error_sd": {r: float(np.sqrt(v)) for r, v in tr.slow_var.items()},
        "trace_slow_error_pairs": tr.slow_pairs, "trace_corridor_factors": tr.factors,
    }
    if not params.model:
        metrics["camera_fit"] = cam_report
    timings["total"] = time.perf_counter() - t_start
    yield Progress("denoise", 1.0, f"done in {timings['total']:.0f} s")
    return DenoiseResult(params=params, timings_s=timings, warnings=warnings, fps=fps, n_frames=n,
                         frame_shape=(ny, nx), denoised=mu, uncertainty=sd, guard=guard_map, regions=list(tr.names),
                         traces=traces, model=model, calibration=calibration, metrics=metrics)


@TOOLS.register
class Denoise(Tool):
    name = "denoise"
    label = "denoise"
    description = ("self-supervised denoising of a video trained on the recording itself, with a mean-image prior, "
                   "calibrated per-pixel uncertainty and ROI dF/F0 traces with 90 % corridors")
    kind = "video -> video"
    Params = DenoiseParams
    result_type = DenoiseResult
    result_view = "napari_micromotion._qt.denoise_view:DenoiseView"
    layout = [
        VideoEntry("denoised.tif", "denoised", "the denoised video (float32, the input's shape and units)"),
        VideoEntry("uncertainty.tif", "uncertainty", "calibrated predictive SD of the clean signal (same units)"),
        ImageEntry("guard.tif", "guard", "fraction of frames in which each pixel was flagged by the hallucination guard"),
        RoiTracesEntry(),
        ModelEntry(),
        RecordEntry("denoise.json", "parameters, loss curve, held-out metrics, calibration, hallucination guard, timings"),
    ]

    def check(self, recording: Any, params: DenoiseParams) -> None:
        n, (ny, nx) = recording.n_frames, recording.frame_shape
        need = 2 * params.context + 2
        check(params.model or n >= max(need, 20), f"the video has {n} frames; denoising with {params.context} context "
                                                  f"frames needs at least {max(need, 20)}.")
        check(min(ny, nx) >= 16, f"frames of {ny} x {nx} px are too small to denoise (at least 16 x 16 px).")
        if params.model:
            from ..denoise.files import load_denoiser

            model, _ = load_denoiser(params.model)      # refuses a missing, foreign or pickled file in one sentence
            check(n >= 2 * model.context + 2, f"the video has {n} frames; the model's {model.context} context "
                                              f"frames on either side need at least {2 * model.context + 2}.")

    def compute(self, recording: Any, params: DenoiseParams, *, rois: Sequence[Any] = ()) -> Generator[Progress, None, Any]:
        result = yield from iter_denoise_checked(recording.transmission, recording.fps, params, rois)
        synth = synthesized_warning(recording, "the denoiser took them for measured frames (each is a blend of its "
                                               "neighbours, which the network predicts it from), so the noise model, "
                                               "the uncertainty and the hallucination guard do not hold for them; "
                                               "denoise the measured recording, then interpolate the denoised one.")
        if synth:
            result.warnings.insert(0, synth)
        result.source = dict(recording.provenance)
        result.pixel_size_um = recording.pixel_size_um     # for the written videos' ImageJ scale
        return result

    def result_record(self, result: DenoiseResult) -> dict[str, Any]:
        return {"fps": result.fps, "pixel_size_um": result.pixel_size_um, "frame_shape": list(result.frame_shape),
                "n_frames": result.n_frames, "regions": result.regions, "metrics": result.metrics}

    def fields_from_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        px = rec.get("pixel_size_um")
        return {"fps": float(rec.get("fps", 1.0)), "frame_shape": tuple(rec.get("frame_shape", (0, 0))),
                "pixel_size_um": float(px) if isinstance(px, (int, float)) and px > 0 else None,
                "metrics": dict(rec.get("metrics", {}))}

    def layer_data(self, result: DenoiseResult) -> list[tuple[Any, dict[str, Any], str]]:
        from .._layers import META_KEY

        meta = {META_KEY: {"role": "result", "tool": self.name}}
        out: list[tuple[Any, dict[str, Any], str]] = []
        if result.denoised is not None:
            lo, hi = (float(v) for v in np.percentile(result.denoised[: min(50, result.n_frames)], [0.5, 99.9]))
            out.append((result.denoised, {"name": "denoised", "colormap": "gray", "contrast_limits": (lo, hi or lo + 1),
                                          "metadata": meta}, "image"))
        if result.uncertainty is not None:
            hi = float(np.percentile(result.uncertainty[: min(50, result.n_frames)], 99.5)) or 1.0
            out.append((result.uncertainty, {"name": "uncertainty", "colormap": "magma", "contrast_limits": (0.0, hi),
                                             "visible": False, "metadata": meta}, "image"))
        return out
