"""Training the ``learned`` interpolator: CAFI's protocol (drop frames, learn to reconstruct them).

A *window* is three frames of a video: ``a`` and ``b`` (``span`` frames apart) and the frame
``k`` frames after ``a`` that is to be reconstructed at ``t = k / span``.  For each window the
bidirectional flow of ``a`` and ``b`` is computed once (:func:`.flows.pair_flow`, on a crop of at
most ``crop_px``); training draws random patches with flips, transposes and time reversal
(flows transformed with them) and minimises the Charbonnier distance of the network's frame
to the dropped one.  The same loop pretrains on many recordings
(``micromotion train-interpolator``) and fine-tunes on the recording at hand
(:func:`finetune_windows` leaves out every frame held out for evaluation; of a long recording
:func:`choose_windows` keeps the windows that change most, the recording's fastest events, and as
many again at random).

Runs are reproducible from the seed (bit for bit with the same thread count).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Iterable, Sequence

import numpy as np

from ..device import torch_threads
from ..progress import Progress
from .flows import pair_flow

__all__ = ["Window", "Sample", "TrainSettings", "TrainRecord", "make_samples", "iter_train", "finetune_windows",
           "choose_windows", "pretrain_windows"]


@dataclass(frozen=True)
class Window:
    """Frames ``a``, ``a + k`` (the target, at ``t = k / span``) and ``a + span``."""

    a: int
    k: int
    span: int

    @property
    def frames(self) -> tuple[int, int, int]:
        return self.a, self.a + self.k, self.a + self.span

    @property
    def t(self) -> float:
        return self.k / self.span


@dataclass
class Sample:
    """One window's normalised crops and its flows (float32)."""

    i0: np.ndarray
    it: np.ndarray
    i1: np.ndarray
    f01: np.ndarray
    f10: np.ndarray
    e0: np.ndarray
    e1: np.ndarray
    t: float


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 200
    batch: int = 8
    patch_px: int = 64
    lr: float = 1e-3
    seed: int = 0
    threads: int = 1
    max_minutes: float = 5.0


@dataclass
class TrainRecord:
    steps: int = 0
    seconds: float = 0.0
    loss_curve: list[float] = field(default_factory=list)
    first_loss: float = float("nan")
    last_loss: float = float("nan")
    stopped_early: str = ""


def finetune_windows(n_frames: int, heldout: Iterable[int], spans: Sequence[int] = (2,)) -> list[Window]:
    """Every window of the video whose three frames are all outside *heldout* (CAFI within the recording)."""
    held = set(int(h) for h in heldout)
    out = []
    for span in spans:
        for a in range(0, n_frames - span):
            for k in range(1, span):
                w = Window(a, k, span)
                if not held.intersection(w.frames):
                    out.append(w)
    return out


def choose_windows(video: Any, windows: Sequence[Window], n: int, rng: np.random.Generator,
                   step_px: int = 4) -> list[Window]:
    """At most *n* of *windows* of *video* ``(T, Y, X)``: half those whose end frames differ most, half at random.

    The difference is the mean absolute difference of frames ``a`` and ``a + span``, on every
    *step_px*-th pixel.  A recording's fastest events (a calcium transient's rise, a
    contraction) fill a few percent of its windows; drawn at random, a few dozen windows often
    miss them all, and the network fine-tuned on the rest then guesses how such a frame looks
    (on a simulated calcium movie a random draw left transients' rising flanks 1.3-2.8x as far
    from the truth as linear interpolation in three of five draws).  Returned in time order.
    """
    windows = list(windows)
    if len(windows) <= n:
        return windows
    # one pass over the frames, keeping only the last max(span) + 1 subsampled ones (memory bounded)
    by_end: dict[int, list[int]] = {}
    for j, w in enumerate(windows):
        by_end.setdefault(w.a + w.span, []).append(j)
    keep = max(w.span for w in windows) + 1
    first = min(w.a for w in windows)
    recent: dict[int, np.ndarray] = {}
    change = np.zeros(len(windows))
    for f in range(first, max(by_end) + 1):
        recent[f] = np.asarray(video[f], np.float32)[::step_px, ::step_px]
        recent.pop(f - keep, None)
        for j in by_end.get(f, ()):
            change[j] = float(np.mean(np.abs(recent[f] - recent[windows[j].a])))
    top = np.argsort(-change, kind="stable")[: n // 2]
    rest = np.setdiff1d(np.arange(len(windows)), top)
    pick = np.sort(np.concatenate([top, rng.choice(rest, n - top.size, replace=False)]))
    return [windows[i] for i in pick]


def pretrain_windows(n_frames: int, spans: Sequence[int] = (2, 3, 4), step: int = 1, only_even: bool = False
                     ) -> list[Window]:
    """Windows for pretraining; *only_even*: frames at even indices only (the odd ones stay unseen)."""
    out = []
    unit = 2 if only_even else 1
    for span in spans:
        for a in range(0, n_frames - span * unit, step * unit):
            for k in range(1, span):
                out.append(Window(a, k * unit, span * unit))
    return out


def make_samples(video: Any, windows: Sequence[Window], norm: Any, *, engine: str = "dis", crop_px: int = 192,
                 seed: int = 0) -> Generator[Progress, None, list[Sample]]:
    """Crops and flows of *windows* of *video* ``(T, Y, X)`` (progress: ``"flows"``)."""
    rng = np.random.default_rng(seed)
    ny, nx = (int(v) for v in video.shape[1:3])
    cy, cx = min(crop_px, ny), min(crop_px, nx)
    out = []
    for j, w in enumerate(windows):
        y0 = int(rng.integers(0, ny - cy + 1))
        x0 = int(rng.integers(0, nx - cx + 1))
        a, m, b = (np.asarray(video[f][y0:y0 + cy, x0:x0 + cx], np.float32) for f in w.frames)
        pf = pair_flow(a, b, engine)
        out.append(Sample(norm(a), norm(m), norm(b), pf.f01, pf.f10, pf.e0, pf.e1, w.t))
        if j % 8 == 0 or j == len(windows) - 1:
            yield Progress("flows", (j + 1) / len(windows), f"flows of {j + 1}/{len(windows)} training windows")
    return out


def _augment(s: Sample, rng: np.random.Generator, patch: int) -> tuple[np.ndarray, ...]:
    ny, nx = s.i0.shape
    py, px = min(patch, ny), min(patch, nx)
    y0 = int(rng.integers(0, ny - py + 1))
    x0 = int(rng.integers(0, nx - px + 1))
    sl = (slice(y0, y0 + py), slice(x0, x0 + px))
    i0, it, i1, e0, e1 = (v[sl] for v in (s.i0, s.it, s.i1, s.e0, s.e1))
    f01, f10 = s.f01[(slice(None), *sl)], s.f10[(slice(None), *sl)]
    t = s.t
    if rng.random() < 0.5:                                      # time reversal
        i0, i1, f01, f10, e0, e1, t = i1, i0, f10, f01, e1, e0, 1.0 - t
    if rng.random() < 0.5:                                      # flip x
        i0, it, i1, e0, e1 = (v[:, ::-1] for v in (i0, it, i1, e0, e1))
        f01, f10 = (np.stack([f[0][:, ::-1], -f[1][:, ::-1]]) for f in (f01, f10))
    if rng.random() < 0.5:                                      # flip y
        i0, it, i1, e0, e1 = (v[::-1] for v in (i0, it, i1, e0, e1))
        f01, f10 = (np.stack([-f[0][::-1], f[1][::-1]]) for f in (f01, f10))
    if py == px and rng.random() < 0.5:                         # transpose
        i0, it, i1, e0, e1 = (v.T for v in (i0, it, i1, e0, e1))
        f01, f10 = (np.stack([f[1].T, f[0].T]) for f in (f01, f10))
    return tuple(np.ascontiguousarray(v, np.float32) for v in (i0, it, i1, f01, f10, e0, e1)) + (t,)


def batch_tensors(samples: Sequence[Sample], idx: Sequence[int], rng: np.random.Generator, patch: int) -> dict:
    """A training batch (random patches, augmented) as torch tensors."""
    import torch

    parts = [_augment(samples[i], rng, patch) for i in idx]
    shapes = {p[0].shape for p in parts}
    if len(shapes) > 1:   # crops of different sizes: cut all to the smallest
        py, px = min(s[0] for s in shapes), min(s[1] for s in shapes)
        parts = [tuple(v[..., :py, :px] if isinstance(v, np.ndarray) else v for v in p) for p in parts]

    def stack(j: int) -> "torch.Tensor":
        arr = np.stack([p[j] for p in parts])
        return torch.from_numpy(arr[:, None] if arr.ndim == 3 else arr)

    return {"i0": stack(0), "it": stack(1), "i1": stack(2), "f01": stack(3), "f10": stack(4), "e0": stack(5),
            "e1": stack(6), "t": torch.tensor([p[7] for p in parts], dtype=torch.float32).view(-1, 1, 1, 1)}


def charbonnier(x: Any, y: Any, eps: float = 1e-2) -> Any:
    import torch

    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def iter_train(net: Any, samples: Sequence[Sample], settings: TrainSettings, *, stage: str = "train interpolator"
               ) -> Generator[Progress, None, TrainRecord]:
    """Train *net* in place on *samples*; progress carries ``values={"loss": ...}``."""
    import torch

    if not samples:
        return TrainRecord(stopped_early="no training windows")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    with torch_threads(max(1, settings.threads)):
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, settings.steps)))))
        rec = TrainRecord()
        t0 = time.perf_counter()
        run = 0.0
        patch = max(8, settings.patch_px // 4 * 4)
        report = max(1, settings.steps // 50)
        try:
            for step in range(settings.steps):
                if time.perf_counter() - t0 > 60 * settings.max_minutes:
                    rec.stopped_early = f"the time budget of {settings.max_minutes:g} min ran out after {step} steps"
                    break
                idx = rng.integers(0, len(samples), settings.batch)
                b = batch_tensors(samples, idx, rng, patch)
                out, ex = net(b["i0"], b["i1"], b["f01"], b["f10"], b["e0"], b["e1"], b["t"])
                loss = charbonnier(out / ex["scale"], b["it"] / ex["scale"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                v = float(loss.detach())
                run = v if step == 0 else 0.9 * run + 0.1 * v
                if step == 0:
                    rec.first_loss = v
                rec.steps = step + 1
                if step % report == 0 or step == settings.steps - 1:
                    rec.loss_curve.append(run)
                    yield Progress(stage, (step + 1) / settings.steps, f"step {step + 1}/{settings.steps}, loss {run:.4g}",
                                   values={"loss": run, "step": step + 1})
            rec.last_loss = run
        finally:
            net.eval()
    rec.seconds = time.perf_counter() - t0
    return rec


def mean_loss(net: Any, samples: Sequence[Sample]) -> float:
    """Charbonnier loss of *net* on whole *samples* (no augmentation): a fixed yardstick for tests and records."""
    import torch

    tot = 0.0
    with torch.no_grad():
        for s in samples:
            ten = [torch.from_numpy(np.ascontiguousarray(v))[None] for v in (s.i0, s.it, s.i1, s.e0, s.e1)]
            i0, it, i1, e0, e1 = (v[None] for v in ten)
            f01, f10 = (torch.from_numpy(v)[None] for v in (s.f01, s.f10))
            t = torch.tensor([[[[s.t]]]], dtype=torch.float32)
            out, ex = net(i0, i1, f01, f10, e0, e1, t)
            tot += float(charbonnier(out / ex["scale"], it / ex["scale"]))
    return tot / max(1, len(samples))
