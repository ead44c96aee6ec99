"""Interpolators behind one interface, the held-out evaluation, and the whole run (:func:`iter_interpolate`).

An :class:`Interpolator` synthesizes the frames at times ``ts`` (each in (0, 1)) between two
frames ``a`` and ``b`` and a per-pixel uncertainty of each (input units):

``linear``
    ``(1 - t) a + t b``; uncertainty ``|a - b| / 2``.
``flow``
    motion-compensated (:mod:`.flows`); uncertainty ``|W0 - W1| / 2``, half the disagreement
    of the two frames warped to ``t``.
``learned``
    the IFNet-like network (:mod:`.model`), pretrained (shipped weights) and fine-tuned on
    the recording; uncertainty ``max(|W0 - W1| / 2, |learned - flow|)``: where the two warped
    views or the network and the classical estimate disagree, the frame is a guess.

:func:`iter_interpolate` raises a video's frame rate by an integer factor ``K``: output frame
``K i`` is input frame ``i`` exactly, the ``K - 1`` frames between are synthesized.  Before that
it evaluates every method by CAFI's protocol within the recording: frames spread over the
video are held out (never a fine-tuning input or target) and reconstructed from their two
neighbours; PSNR and SSIM against the held-out frames are recorded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Iterator, Sequence

import numpy as np

from ..device import torch_threads
from ..errors import check
from ..progress import Progress
from .flows import PairFlow, flow_frame, linear_frame, pair_flow

__all__ = ["METHODS", "Normaliser", "Interpolator", "LinearInterpolator", "FlowInterpolator", "LearnedInterpolator",
           "heldout_frames", "psnr_ssim", "iter_interpolate", "Interpolation", "make_interpolator", "output_times",
           "synthesize", "better_method", "BETTER_BY_DB"]

METHODS = ("linear", "flow", "learned")


@dataclass(frozen=True)
class Normaliser:
    """Intensities to about [0, 1]: ``(v - lo) / (hi - lo)`` with the video's 0.1 and 99.9 percentiles."""

    lo: float
    hi: float

    @classmethod
    def of(cls, video: Any, max_frames: int = 32) -> "Normaliser":
        n = int(video.shape[0])
        idx = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
        sample = np.asarray(video[idx], np.float32)[:, ::2, ::2]
        lo, hi = (float(v) for v in np.percentile(sample, [0.1, 99.9]))
        return cls(lo, hi if hi > lo else lo + 1.0)

    @property
    def range(self) -> float:
        return self.hi - self.lo

    def __call__(self, x: Any) -> np.ndarray:
        return ((np.asarray(x, np.float32) - np.float32(self.lo)) * np.float32(1.0 / self.range)).astype(np.float32)

    def back(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) * np.float32(self.range) + np.float32(self.lo)).astype(np.float32)


class Interpolator:
    """Frames between two frames: :meth:`between` returns ``(frames, uncertainty)``, each ``(len(ts), Y, X)`` float32."""

    name = ""
    needs_flow = False

    def between(self, a: np.ndarray, b: np.ndarray, ts: Sequence[float], pf: PairFlow | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class LinearInterpolator(Interpolator):
    name = "linear"

    def between(self, a, b, ts, pf=None):
        out = [linear_frame(a, b, t) for t in ts]
        return np.stack([o[0] for o in out]), np.stack([0.5 * o[1] for o in out])


class FlowInterpolator(Interpolator):
    name = "flow"
    needs_flow = True

    def __init__(self, engine: str = "dis") -> None:
        self.engine = engine

    def between(self, a, b, ts, pf=None):
        pf = pf if pf is not None else pair_flow(a, b, self.engine)
        out = [flow_frame(a, b, t, pf) for t in ts]
        return np.stack([o[0] for o in out]), np.stack([0.5 * o[1] for o in out])


class LearnedInterpolator(Interpolator):
    """The network *net* on frames normalised by *norm* (flows from *engine*)."""

    name = "learned"
    needs_flow = True

    def __init__(self, net: Any, norm: Normaliser, engine: str = "dis", threads: int = 1) -> None:
        self.net = net
        self.norm = norm
        self.engine = engine
        self.threads = threads

    def between(self, a, b, ts, pf=None):
        import torch

        pf = pf if pf is not None else pair_flow(a, b, self.engine)
        with torch_threads(max(1, self.threads)):
            with torch.no_grad():
                n = len(ts)

                def ten(x: np.ndarray) -> "torch.Tensor":
                    x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
                    x = x[None, None] if x.ndim == 2 else x[None]
                    return x.expand(n, *x.shape[1:])

                t = torch.tensor(list(ts), dtype=torch.float32).view(-1, 1, 1, 1)
                out, ex = self.net(ten(self.norm(a)), ten(self.norm(b)), ten(pf.f01), ten(pf.f10), ten(pf.e0),
                                   ten(pf.e1), t)
        frames = self.norm.back(out[:, 0].numpy())
        scale = np.float32(self.norm.range)
        half = 0.5 * np.abs(ex["w0"][:, 0].numpy() - ex["w1"][:, 0].numpy()) * scale
        gap = np.abs(out[:, 0].numpy() - ex["classic"][:, 0].numpy()) * scale      # learned vs flow
        return frames, np.maximum(half, gap).astype(np.float32)


def make_interpolator(method: str, *, engine: str = "dis", net: Any = None, norm: Normaliser | None = None,
                      threads: int = 1) -> Interpolator:
    check(method in METHODS, f"unknown interpolation method {method!r}; choose from {', '.join(METHODS)}.")
    if method == "linear":
        return LinearInterpolator()
    if method == "flow":
        return FlowInterpolator(engine)
    check(net is not None and norm is not None, "the learned interpolator needs its network and normaliser.")
    return LearnedInterpolator(net, norm, engine, threads)


def heldout_frames(n_frames: int, every: int = 8, max_frames: int = 16) -> np.ndarray:
    """Frames held out for evaluation: every *every*-th frame from 2 on (at most *max_frames*, spread evenly)."""
    cand = np.arange(2, n_frames - 2, max(3, every))
    if cand.size > max_frames:
        cand = cand[np.unique(np.linspace(0, cand.size - 1, max_frames).round().astype(int))]
    return cand.astype(int)


def psnr_ssim(truth: np.ndarray, pred: np.ndarray, data_range: float) -> tuple[float, float]:
    """PSNR (dB) and SSIM (scikit-image) of one frame against the truth, on the given intensity range."""
    import warnings

    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    truth = np.asarray(truth, np.float64)
    pred = np.asarray(pred, np.float64)
    win = min(7, min(truth.shape) // 2 * 2 - 1)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)       # an exact reconstruction: PSNR +inf, said so
        p = float(peak_signal_noise_ratio(truth, pred, data_range=data_range))
        s = float(structural_similarity(truth, pred, data_range=data_range, win_size=max(3, win)))
    return p, s


def output_times(n_frames: int, factor: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(time_s, measured)`` of every output frame: ``(N - 1) K + 1`` frames at ``K fps``."""
    n_out = (n_frames - 1) * factor + 1
    idx = np.arange(n_out)
    return idx / (fps * factor), (idx % factor == 0)


@dataclass
class Interpolation:
    """What :func:`iter_interpolate` made."""

    frames: np.ndarray                     # (M, Y, X), the input's dtype
    uncertainty: np.ndarray                # (M, Y, X) float32, 0 for measured frames
    measured: np.ndarray                   # (M,) bool
    time_s: np.ndarray                     # (M,)
    factor: int
    fps_in: float
    evaluation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    net: Any = None


def _to_dtype(frames: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(frames), info.min, info.max).astype(dtype)
    return frames.astype(dtype)


def synthesize(video: Any, interp: Interpolator, factor: int, engine: str = "dis"
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(i, frames, uncertainty)`` for every pair ``(i, i + 1)`` of *video*: the ``factor - 1`` frames between.

    With a flow-based interpolator the next pair's flow is computed in a background thread
    (OpenCV releases the GIL) while the current pair is synthesized, so flow and network
    run on two cores at once (torch gets one thread fewer meanwhile).
    """
    n = int(video.shape[0])
    ts = [k / factor for k in range(1, factor)]

    def pair(i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(video[i], np.float32), np.asarray(video[i + 1], np.float32)

    if not interp.needs_flow:
        for i in range(n - 1):
            a, b = pair(i)
            yield (i, *interp.between(a, b, ts))
        return
    threads = getattr(interp, "threads", None)
    if threads is not None:      # the flow thread takes one core: torch gets the others (oversubscribing is slower)
        interp.threads = max(1, threads - 1)
    try:
        yield from _prefetched(video, interp, n, ts, pair, engine)
    finally:
        if threads is not None:
            interp.threads = threads


def _prefetched(video: Any, interp: Interpolator, n: int, ts: list[float], pair: Any, engine: str
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    from concurrent.futures import ThreadPoolExecutor

    def read_and_flow(j: int) -> tuple[np.ndarray, np.ndarray, PairFlow]:
        a, b = pair(j)
        return a, b, pair_flow(a, b, engine)

    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(read_and_flow, 0)
        for i in range(n - 1):
            a, b, pf = nxt.result()          # the frames the flow was computed on: each pair is read once
            if i + 1 < n - 1:
                nxt = pool.submit(read_and_flow, i + 1)
            yield (i, *interp.between(a, b, ts, pf))


def evaluate(video: Any, held: np.ndarray, interps: dict[str, Interpolator], data_range: float, engine: str
             ) -> Generator[Progress, None, dict[str, Any]]:
    """Held-out PSNR/SSIM (mean over *held*) of each interpolator, reconstructing ``h`` from ``h - 1`` and ``h + 1``."""
    scores: dict[str, dict[str, list[float]]] = {k: {"psnr_db": [], "ssim": [], "r": []} for k in interps}
    for j, h in enumerate(held):
        a, m, b = (np.asarray(video[f], np.float32) for f in (h - 1, h, h + 1))
        pf = pair_flow(a, b, engine) if any(i.needs_flow for i in interps.values()) else None
        for name, it in interps.items():
            pred, unc = it.between(a, b, [0.5], pf)
            p, s = psnr_ssim(m, pred[0], data_range)
            scores[name]["psnr_db"].append(p)
            scores[name]["ssim"].append(s)
            scores[name]["r"].append(error_correlation(np.abs(pred[0] - m), unc[0]))
        yield Progress("evaluate", (j + 1) / len(held), f"held-out frame {int(h)} ({j + 1}/{len(held)})")
    return {name: {"psnr_db": float(np.mean(v["psnr_db"])), "ssim": float(np.mean(v["ssim"])),
                   "uncertainty_error_correlation": float(np.nanmean(v["r"])) if np.isfinite(v["r"]).any() else None,
                   "psnr_db_per_frame": [round(x, 3) for x in v["psnr_db"]]} for name, v in scores.items()}


#: a method beats the chosen one on the held-out frames, for a warning, when its mean PSNR is this much higher (dB):
#: a few held-out frames' means differ by tenths of a dB from frame to frame alone
BETTER_BY_DB = 0.5
#: how to choose each evaluated method on the command line
_CHOOSE = {"linear": "--method linear", "flow": "--method flow", "learned (pretrained)": "--finetune-epochs 0",
           "learned (fine-tuned)": "--method learned"}


def better_method(scores: dict[str, dict[str, Any]], chosen: str) -> str | None:
    """A warning when a method other than *chosen* reconstructed the held-out frames clearly better (mean PSNR
    :data:`BETTER_BY_DB` higher and better on most frames), else ``None``; *scores*: ``evaluation["methods"]``."""
    mine = scores.get(chosen)
    if not mine or not math.isfinite(mine.get("psnr_db", math.nan)):
        return None
    rivals = {k: v for k, v in scores.items() if k != chosen and math.isfinite(v.get("psnr_db", math.nan))}
    if not rivals:
        return None
    best = max(rivals, key=lambda k: rivals[k]["psnr_db"])
    gain = rivals[best]["psnr_db"] - mine["psnr_db"]
    ours, theirs = np.asarray(mine.get("psnr_db_per_frame", [])), np.asarray(rivals[best].get("psnr_db_per_frame", []))
    most = ours.size == theirs.size and ours.size > 0 and np.mean(theirs > ours) > 0.5
    if gain < BETTER_BY_DB or not most:
        return None
    how = _CHOOSE.get(best, "another --method")
    return (f"on this recording's held-out frames {best} interpolation did better than the chosen {chosen} "
            f"({rivals[best]['psnr_db']:.1f} against {mine['psnr_db']:.1f} dB PSNR, better on "
            f"{int(np.sum(theirs > ours))} of {ours.size} frames); {how} may suit it better.")


def error_correlation(err: np.ndarray, unc: np.ndarray, box_px: int = 5) -> float:
    """Pearson correlation of the absolute error and the stated uncertainty, both averaged over *box_px* boxes.

    Single-pixel errors are mostly the held-out frame's own noise, which no uncertainty can
    predict; over small boxes it averages out and what is left is where the frame was guessed.
    """
    import cv2

    e = cv2.blur(np.asarray(err, np.float32), (box_px, box_px))
    u = cv2.blur(np.asarray(unc, np.float32), (box_px, box_px))
    if e.std() == 0 or u.std() == 0:
        return float("nan")
    return float(np.corrcoef(e.ravel(), u.ravel())[0, 1])


def iter_interpolate(video: Any, fps: float, *, factor: int = 2, method: str = "learned", engine: str = "dis",
                     finetune_epochs: int = 8, steps_per_epoch: int = 50, max_minutes: float = 5.0,
                     heldout_every: int = 8, max_heldout: int = 16, evaluate_methods: bool = True,
                     weights: str = "", seed: int = 0, threads: int = 1
                     ) -> Generator[Progress, None, Interpolation]:
    """Raise the frame rate of *video* ``(T, Y, X)`` by *factor* (see the module docstring).

    Parameters
    ----------
    video, fps
        The recording and its frame rate (frames/s).
    factor
        Output frames per input interval (2: double the frame rate).
    method
        ``linear``, ``flow`` or ``learned``.
    engine
        Flow engine of :mod:`napari_micromotion.kernels.flow` for ``flow`` and ``learned``.
    finetune_epochs, steps_per_epoch, max_minutes
        Fine-tuning of ``learned`` on the recording (0 epochs: the pretrained network as is).
    heldout_every, max_heldout
        Frames held out for the evaluation (never fine-tuning data).
    evaluate_methods
        Evaluate every method on the held-out frames (else only the chosen one).
    weights
        A ``.safetensors`` of ``micromotion train-interpolator`` instead of the shipped weights.
    seed, threads
        Seed of fine-tuning; CPU threads torch uses.
    """
    from .train import TrainSettings, choose_windows, finetune_windows, iter_train, make_samples, mean_loss

    t_all = time.perf_counter()
    n, ny, nx = (int(v) for v in video.shape)
    check(n >= 2, f"the video has {n} frame(s); interpolation needs at least 2.")
    check(factor >= 2, f"the factor must be at least 2 (got {factor}).")
    check(method in METHODS, f"unknown interpolation method {method!r}; choose from {', '.join(METHODS)}.")
    timings: dict[str, float] = {}
    warnings: list[str] = []
    norm = Normaliser.of(video)
    held = heldout_frames(n, heldout_every, max_heldout) if n >= 5 else np.zeros(0, int)
    training: dict[str, Any] = {}
    net = None
    interps: dict[str, Interpolator] = {"linear": LinearInterpolator(), "flow": FlowInterpolator(engine)}
    if method == "learned" or evaluate_methods:
        import copy

        from .files import load_default_interpolator, load_interpolator

        t0 = time.perf_counter()
        net0, meta = load_interpolator(weights) if weights else load_default_interpolator()
        training["pretrained"] = {"weights": weights or "shipped", "steps": meta.get("steps"),
                                  "data": meta.get("data"), "n_parameters": meta.get("n_parameters")}
        interps["learned (pretrained)"] = LearnedInterpolator(net0, norm, engine, threads)
        net = net0
        if method == "learned" and finetune_epochs > 0:
            spans = (2, 4) if factor > 2 else (2,)
            windows = finetune_windows(n, held, spans)
            if not windows:
                warnings.append("the video is too short to fine-tune on; the pretrained network is used as is.")
            else:
                windows = choose_windows(video, windows, 48, np.random.default_rng(seed))
                samples = yield from make_samples(video, windows, norm, engine=engine, crop_px=160, seed=seed)
                net = copy.deepcopy(net0)
                before = mean_loss(net, samples[:8])
                settings = TrainSettings(steps=finetune_epochs * steps_per_epoch, batch=8, patch_px=64, lr=3e-4,
                                         seed=seed, threads=threads, max_minutes=max_minutes)
                rec = yield from iter_train(net, samples, settings, stage="fine-tune")
                after = mean_loss(net, samples[:8])
                training["finetune"] = {"windows": len(windows), "steps": rec.steps, "seconds": rec.seconds,
                                        "loss_curve": rec.loss_curve, "loss_before": before, "loss_after": after,
                                        "stopped_early": rec.stopped_early, "heldout_frames_excluded": held.tolist()}
                if rec.stopped_early:
                    warnings.append(f"fine-tuning stopped early: {rec.stopped_early}.")
                interps["learned (fine-tuned)"] = LearnedInterpolator(net, norm, engine, threads)
        timings["finetune"] = time.perf_counter() - t0
    chosen = {"linear": "linear", "flow": "flow"}.get(method) or (
        "learned (fine-tuned)" if "learned (fine-tuned)" in interps else "learned (pretrained)")
    evaluation: dict[str, Any] = {"heldout_frames": held.tolist(), "data_range": norm.range, "chosen": chosen,
                                  "protocol": "each held-out frame h reconstructed at t = 0.5 from frames h - 1 and "
                                              "h + 1; held-out frames are never fine-tuning inputs or targets"}
    if held.size:
        t0 = time.perf_counter()
        which = interps if evaluate_methods else {chosen: interps[chosen]}
        evaluation["methods"] = yield from evaluate(video, held, which, norm.range, engine)
        timings["evaluate"] = time.perf_counter() - t0
        better = better_method(evaluation["methods"], chosen)
        if better:
            warnings.append(better)
    else:
        warnings.append("the video is too short to hold out frames; no held-out PSNR/SSIM.")
    # the output
    t0 = time.perf_counter()
    interp = interps[chosen]
    time_s, measured = output_times(n, factor, fps)
    m = time_s.size
    dtype = np.dtype(video.dtype) if np.dtype(video.dtype).kind in "uif" else np.dtype(np.float32)
    frames = np.empty((m, ny, nx), dtype)
    unc = np.zeros((m, ny, nx), np.float32)
    for i, syn, u in synthesize(video, interp, factor, engine):
        frames[i * factor] = np.asarray(video[i])
        frames[i * factor + 1:(i + 1) * factor] = _to_dtype(syn, dtype)
        unc[i * factor + 1:(i + 1) * factor] = u
        if i % 4 == 0 or i == n - 2:
            yield Progress("interpolate", (i + 1) / (n - 1), f"pair {i + 1}/{n - 1}")
    frames[-1] = np.asarray(video[n - 1])
    timings["interpolate"] = time.perf_counter() - t0
    n_syn = int((~measured).sum())
    timings["synthesized_frames_per_s"] = n_syn / max(timings["interpolate"], 1e-9)
    timings["total"] = time.perf_counter() - t_all
    return Interpolation(frames=frames, uncertainty=unc, measured=measured, time_s=time_s, factor=factor, fps_in=fps,
                         evaluation=evaluation, training=training, timings_s=timings, warnings=warnings, net=net)


