"""Training, prediction, fine-tuning and saving of the cell classifier (3CNet or its compact variant).

As in Woo & Kim (section 3.2, 5.1): the multiclass hinge loss
``L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + 1)`` (:class:`torch.nn.MultiMarginLoss` with
margin 1 and ``p = 1``; torch divides by the number of classes, 2, so the report's loss is twice
torch's, which only rescales the gradients Adam normalises anyway: we use the report's sum),
Adam with lr 1e-3, betas (0.9, 0.999), eps 1e-8, mini-batches of 64, three epochs.

Scores and probabilities
    The network outputs two hinge scores ``(s_not_cell, s_cell)``; :meth:`CellClassifier.predict_proba`
    returns ``softmax(s / T)[cell]``, a monotone function of ``s_cell - s_not_cell``.  A hinge
    loss does not make the scores log-odds, so *T* (a temperature, 1 by default) is fitted on
    validation data when there is some (:meth:`CellClassifier.calibrate`, minimising the negative
    log likelihood): then P(cell) = 0.8 means about 80 % of such candidates are cells, on data
    like the validation data.  The decision threshold 0.5 (``s_cell > s_not_cell``) does not
    depend on *T*.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generator

import numpy as np

from ..device import torch_threads
from ..errors import check
from ..progress import Progress, drive
from .config import ARCHITECTURE_VERSION, ARCHITECTURES, SHIPPED, ClassifierConfig
from .encode import PATCH
from .model import build, count_parameters

__all__ = ["ClassifierConfig", "CellClassifier", "hinge_loss", "metrics", "uncertainty_order", "ARCHITECTURES",
           "ARCHITECTURE_VERSION", "SHIPPED"]

#: weight of the L2-SP penalty that keeps a fine-tuned head near its trained weights (:meth:`CellClassifier.iter_finetune`)
FINETUNE_ANCHOR = 1.0


def hinge_loss(scores, y):
    """The report's multiclass SVM loss, mean over the batch of ``sum_{j != y} max(0, s_j - s_y + 1)``."""
    import torch

    # MultiMarginLoss averages over the C classes: times C gives the report's sum
    return torch.nn.functional.multi_margin_loss(scores, y, p=1, margin=1.0) * scores.shape[1]


def metrics(y_true, y_pred) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 of the ``cell`` class and the confusion ``[[tn, fp], [fn, tp]]``.

    As in the report's Tables 3-4 (rows: truth not cell, cell; columns: prediction not cell, cell).
    Labels are 1 / True for cell.
    """
    t = np.asarray(y_true).astype(bool).ravel()
    p = np.asarray(y_pred).astype(bool).ravel()
    check(t.shape == p.shape, "truth and prediction differ in length.")
    tp = int(np.sum(t & p))
    tn = int(np.sum(~t & ~p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    n = tp + tn + fp + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / n if n else float("nan"), "precision": precision, "recall": recall, "f1": f1,
            "confusion": [[tn, fp], [fn, tp]], "n": n}


def uncertainty_order(prob) -> np.ndarray:
    """Indices of the candidates, most uncertain first (smallest ``|p - 0.5|``; ties by index; unknown (NaN) last)."""
    p = np.asarray(prob, np.float64).ravel()
    return np.argsort(np.abs(p - 0.5), kind="stable")


def _check_xy(x, y=None, channels: int = 2) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(x, np.float32)
    check(x.ndim == 4 and x.shape[1:] == (channels, PATCH, PATCH),
          f"this classifier's inputs are (N, {channels}, {PATCH}, {PATCH}) (CellClassifier.encode), got {x.shape}.")
    if y is None:
        return x, None
    y = np.asarray(y).astype(np.int64).ravel()
    check(y.shape[0] == x.shape[0], "inputs and labels differ in number.")
    check(np.isin(y, (0, 1)).all(), "labels must be 0 (not cell) or 1 (cell).")
    return x, y


def _batches(n: int, batch_size: int, gen):
    """One epoch's mini-batches: index tensors in a random order (a last batch of one is left out: batch norm)."""
    import torch

    order = torch.randperm(n, generator=gen)
    for b in range(0, n, batch_size):
        idx = order[b:b + batch_size]
        if idx.numel() >= 2:
            yield idx


def _augment(xb, gen):
    """One random symmetry of the square (of 8) applied to the image (and mask) channels of the whole batch."""
    import torch

    k = int(torch.randint(0, 8, (1,), generator=gen))
    if k == 0:
        return xb

    def sym(a):
        a = torch.rot90(a, k % 4, dims=(2, 3))
        return torch.flip(a, dims=(3,)) if k >= 4 else a

    parts = [sym(xb[:, :1]), xb[:, 1:2]]
    if xb.shape[1] > 2:
        parts.append(sym(xb[:, 2:]))
    return torch.cat(parts, dim=1)


class _Adam:
    """Adam (betas 0.9, 0.999, eps 1e-8) for a few parameters: :class:`torch.optim.Adam` takes ~5 s to
    construct the first time in a process (it imports torch's compiler), too long for a quick fine-tuning."""

    def __init__(self, params, lr: float) -> None:
        import torch

        self.params, self.lr, self.t = params, float(lr), 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                if p.grad is None:
                    continue
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.sub_(self.lr * (m / c1) / ((v / c2).sqrt() + eps))


class CellClassifier:
    """A cell / not-cell classifier of encoded candidates.

    Parameters
    ----------
    config
        :class:`ClassifierConfig`.
    """

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        import torch

        config.validate()
        self.config = config
        torch.manual_seed(int(config.seed))
        self.net = build(config.arch, config.bn_order, shape=config.shape, pool=int(config.pool),
                         reference_cell_px=config.reference_cell_px)
        self.net.eval()
        #: softmax temperature of :meth:`predict_proba` (see the module's docstring)
        self.temperature = 1.0
        #: per-step training losses, per-epoch validation results, training seconds
        self.loss_curve: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.info: dict[str, Any] = {}
        #: the sidecar's training record and benchmark (:mod:`.pretrain`), when loaded from a file
        self.training: dict[str, Any] = {}
        self.benchmark: dict[str, Any] = {}

    # ------------------------------------------------------------ training
    def _run(self, x: np.ndarray, y: np.ndarray, params, *, epochs: int, stage: str, max_seconds: float = math.inf,
             seed: int, x_val=None, y_val=None, train_features: bool = True) -> Generator[Progress, None, dict]:
        import torch

        cfg = self.config
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
        gen = torch.Generator().manual_seed(int(seed))
        n = x.shape[0]
        bs = int(cfg.batch_size)
        steps_per_epoch = max(1, math.ceil(n / bs))
        total = steps_per_epoch * epochs
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(y)
        self.net.to(memory_format=torch.channels_last)  # ~1.7x faster convolutions on CPU
        t0 = time.perf_counter()
        step = 0
        stopped = False
        with torch_threads(cfg.threads):
            for epoch in range(epochs):
                self.net.train()
                if not train_features:  # batch statistics of everything but the head stay as trained
                    self.net.eval()
                    self.net.classifier.train()
                for idx in _batches(n, bs, gen):
                    opt.zero_grad(set_to_none=True)
                    xb = xt[idx]
                    if cfg.augment:
                        xb = _augment(xb, gen)
                    loss = hinge_loss(self.net(xb.contiguous(memory_format=torch.channels_last)), yt[idx])
                    loss.backward()
                    opt.step()
                    step += 1
                    v = float(loss.detach())
                    self.loss_curve.append(v)
                    yield Progress(stage, step / total, f"epoch {epoch + 1} of {epochs}, loss {v:.3f}",
                                   values={"loss": v, "step": float(len(self.loss_curve))})
                    if time.perf_counter() - t0 > max_seconds:
                        stopped = True
                        break
                self.net.eval()
                rec: dict[str, Any] = {"epoch": epoch + 1, "stage": stage}
                if x_val is not None and y_val is not None:
                    rec.update(metrics(y_val, self.predict_proba(x_val) >= 0.5))
                    yield Progress(stage, step / total, f"epoch {epoch + 1}: validation accuracy {rec['accuracy']:.3f}",
                                   values={"val_accuracy": rec["accuracy"], "step": float(len(self.loss_curve))})
                self.history.append(rec)
                if stopped:
                    break
        self.net.eval()
        dt = time.perf_counter() - t0
        self.seconds += dt
        return {"seconds": dt, "steps": step, "history": self.history[-epochs:]}

    def iter_fit(self, x, y, *, x_val=None, y_val=None) -> Generator[Progress, None, dict]:
        """Train on encoded inputs *x* ``(N, 2, 92, 92)`` and labels *y* (1 = cell), yielding the loss per step.

        With validation data, reports its accuracy after each epoch and fits the temperature of
        :meth:`predict_proba` on it at the end.  Returns a summary (seconds, steps, history).
        """
        x, y = _check_xy(x, y, self.config.in_channels)
        if x_val is not None:
            x_val, y_val = _check_xy(x_val, y_val, self.config.in_channels)
        check(x.shape[0] >= 2, "training needs at least two labelled candidates.")
        out = yield from self._run(x, y, self.net.parameters(), epochs=int(self.config.epochs), stage="train classifier",
                                   seed=self.config.seed, x_val=x_val, y_val=y_val)
        if x_val is not None and len(np.unique(y_val)) == 2:
            self.calibrate(x_val, y_val)
        out["temperature"] = self.temperature
        self.info.update({"n_train": int(x.shape[0]), "n_train_cells": int(y.sum())})
        return out

    def fit(self, x, y, *, x_val=None, y_val=None, progress=None) -> "CellClassifier":
        """:meth:`iter_fit` run to the end (*progress* gets each :class:`Progress`)."""
        drive(self.iter_fit(x, y, x_val=x_val, y_val=y_val), progress=progress)
        return self

    def iter_finetune(self, x, y, *, max_seconds: float = 10.0, epochs: int = 30, lr: float | None = None,
                      anchor: float = FINETUNE_ANCHOR, seed: int = 0, threads: int = 0
                      ) -> Generator[Progress, None, dict]:
        """Adapt the fully connected head to a user's few labels (everything else stays as trained).

        Trains only the head, on *x*, *y* alone (nothing else mixed in), for at most *epochs*
        passes or *max_seconds*, with the configured batch size and Adam (*lr*: the config's by
        default; *threads*: CPU threads, 0 for the config's).  The frozen part runs once: the
        head's inputs are computed for every candidate (and, with the config's ``augment``, for
        the 8 symmetries of its image) and the head is trained on them, so tens of labels take
        well under a second.

        *anchor* weighs an L2-SP penalty (Li, Grandvalet & Davoine 2018), ``anchor * sum((w - w0)^2)``
        over the head's weights ``w`` and their values ``w0`` before fine-tuning: labels chosen
        most-uncertain-first are the hardest candidates, and a head fitted to them alone forgets
        the easy ones (on the benchmark's extracted candidates, 50 such labels took the accuracy
        from 91.6 % to 90.4 % without it, to 92.2 % with it).  0 switches it off.
        """
        import torch

        x, y = _check_xy(x, y, self.config.in_channels)
        check(x.shape[0] >= 2, "fine-tuning needs at least two labelled candidates.")
        check(int(epochs) >= 1, "fine-tuning needs at least one epoch.")
        cfg = self.config
        if threads:
            cfg = replace(cfg, threads=int(threads))
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(int(seed))
        self.net.eval()
        self.net.to(memory_format=torch.channels_last)
        head = self.net.classifier
        with torch_threads(cfg.threads):
            with torch.inference_mode():
                xt = torch.from_numpy(x)
                views = [xt]
                if cfg.augment:
                    for k in range(1, 8):
                        img = torch.rot90(xt[:, :1], k % 4, dims=(2, 3))
                        rest = [torch.rot90(xt[:, 2:], k % 4, dims=(2, 3))] if xt.shape[1] > 2 else []
                        if k >= 4:
                            img = torch.flip(img, dims=(3,))
                            rest = [torch.flip(r, dims=(3,)) for r in rest]
                        views.append(torch.cat([img, xt[:, 1:2], *rest], dim=1))
                emb = torch.cat([self.net.embed(v.contiguous(memory_format=torch.channels_last)) for v in views])
            emb = emb.clone()
            yt = torch.from_numpy(np.tile(y, len(views)))
            for prm in self.net.parameters():
                prm.requires_grad_(False)
            for prm in head.parameters():
                prm.requires_grad_(True)
            opt = _Adam(list(head.parameters()), lr=float(lr) if lr is not None else cfg.lr)
            w0 = [prm.detach().clone() for prm in head.parameters()]
            n = emb.shape[0]
            bs = int(cfg.batch_size)
            steps_per_epoch = max(1, math.ceil(n / bs))
            total = steps_per_epoch * int(epochs)
            step = 0
            try:
                head.train()
                for epoch in range(int(epochs)):
                    for idx in _batches(n, bs, gen):
                        opt.zero_grad(set_to_none=True)
                        loss = hinge_loss(head(emb[idx]), yt[idx])
                        v = float(loss.detach())       # the loss shown: the labels' hinge loss
                        if anchor > 0:
                            loss = loss + float(anchor) * sum(((p - p0) ** 2).sum()
                                                              for p, p0 in zip(head.parameters(), w0))
                        loss.backward()
                        opt.step()
                        step += 1
                        self.loss_curve.append(v)
                        yield Progress("fine-tune classifier", step / total, f"epoch {epoch + 1} of {epochs}, loss {v:.3f}",
                                       values={"loss": v, "step": float(len(self.loss_curve))})
                    if time.perf_counter() - t0 > max_seconds:
                        break
            finally:
                head.eval()
                self.net.eval()
                for prm in self.net.parameters():
                    prm.requires_grad_(True)
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.info["n_finetune"] = int(self.info.get("n_finetune", 0)) + int(x.shape[0])
        out = {"seconds": round(dt, 3), "steps": step, "epochs": epoch + 1, "n_labels": int(x.shape[0])}
        self.history.append({"stage": "fine-tune classifier", **out})
        return out

    def finetune(self, x, y, *, max_seconds: float = 10.0, progress=None, **kwargs) -> "CellClassifier":
        """:meth:`iter_finetune` run to the end."""
        drive(self.iter_finetune(x, y, max_seconds=max_seconds, **kwargs), progress=progress)
        return self

    # ------------------------------------------------------------ prediction
    def encode(self, candidates, image, cell_diameter_px: float | None = None) -> np.ndarray:
        """Inputs for this model: :func:`~napari_micromotion.cells.encode.encode` with its encoding and patch zoom.

        *cell_diameter_px* (the recording's typical cell diameter) is needed by models trained
        with ``reference_cell_px``; without it the patch stays at native scale.
        """
        from .encode import encode, patch_scale

        return encode(candidates, image, self.config.encoding,
                      scale=patch_scale(cell_diameter_px, self.config.reference_cell_px), mask_channel=self.config.shape)

    def scores(self, x, *, batch_size: int = 256) -> np.ndarray:
        """``(N, 2)`` float32 hinge scores (not_cell, cell)."""
        import torch

        x, _ = _check_xy(x, None, self.config.in_channels)
        out = np.zeros((x.shape[0], 2), np.float32)
        self.net.eval()
        self.net.to(memory_format=torch.channels_last)
        with torch_threads(self.config.threads), torch.inference_mode():
            for i in range(0, x.shape[0], batch_size):
                xb = torch.from_numpy(x[i:i + batch_size]).contiguous(memory_format=torch.channels_last)
                out[i:i + batch_size] = self.net(xb).numpy()
        return out

    def predict_proba(self, x) -> np.ndarray:
        """``(N,)`` P(cell): ``softmax(scores / temperature)[:, 1]``, a monotone score (see the module's docstring)."""
        s = self.scores(x).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-(s[:, 1] - s[:, 0]) / self.temperature))

    def predict(self, x) -> np.ndarray:
        """``(N,)`` int64, 1 = cell (``P(cell) >= 0.5``)."""
        return (self.predict_proba(x) >= 0.5).astype(np.int64)

    def calibrate(self, x, y) -> float:
        """Fit :attr:`temperature` on labelled data (minimum negative log likelihood); returns it."""
        x, y = _check_xy(x, y, self.config.in_channels)
        s = self.scores(x).astype(np.float64)
        margin = s[:, 1] - s[:, 0]
        sign = np.where(y == 1, 1.0, -1.0)
        grid = np.exp(np.linspace(np.log(0.02), np.log(50.0), 200))
        nll = [np.mean(np.logaddexp(0.0, -sign * margin / t)) for t in grid]
        self.temperature = float(grid[int(np.argmin(nll))])
        return self.temperature

    # ------------------------------------------------------------ files
    @property
    def architecture(self) -> str:
        return ARCHITECTURES[self.config.arch]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary of the model: architecture, inputs, parameters, temperature, training."""
        cfg = self.config
        variant = "exact 3CNet" if cfg.arch == "exact" else (
            "compact 3CNet (image + trace + shape hybrid)" if cfg.shape else "compact 3CNet")
        training = self.training if isinstance(self.training, dict) else {}
        val = training.get("validation") or {}
        return {"architecture": self.architecture, "variant": variant, "arch": cfg.arch, "encoding": cfg.encoding,
                "bn_order": cfg.bn_order, "shape_statistics": bool(cfg.shape), "input_pool": int(cfg.pool),
                "input": [cfg.in_channels, PATCH, PATCH], "n_parameters": count_parameters(self.net),
                "reference_cell_px": float(cfg.reference_cell_px), "temperature": float(self.temperature),
                "training": {"epochs": int(cfg.epochs), "batch_size": int(cfg.batch_size), "lr": float(cfg.lr),
                             "seed": int(cfg.seed), "seconds": round(float(self.seconds), 1),
                             "n_train": self.info.get("n_train"), "n_train_cells": self.info.get("n_train_cells"),
                             "n_finetune": int(self.info.get("n_finetune", 0)),
                             "validation_accuracy": val.get("accuracy"), "command": training.get("command")},
                "benchmark": self.benchmark.get("summary") if isinstance(self.benchmark, dict) else None}

    def save(self, path: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
        """Write ``<path>.safetensors`` + ``<path>.json`` (weights; config, temperature, loss curve, *extra*)."""
        from ..detectors.models import package_versions, write_pair

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        meta = {"architecture": self.architecture, "architecture_version": ARCHITECTURE_VERSION,
                "config": asdict(self.config), "temperature": self.temperature,
                "n_parameters": count_parameters(self.net), "input": [2, PATCH, PATCH],
                "classes": ["not_cell", "cell"], "loss_curve": [round(float(v), 5) for v in self.loss_curve],
                "history": self.history, "training_seconds": round(self.seconds, 2), "info": self.info,
                "package_versions": package_versions(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(extra or {})}
        write_pair(path, tensors, meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, threads: int = 0) -> "CellClassifier":
        """Read a model written by :meth:`save` (either architecture); anything else is refused in one sentence."""
        from ..detectors.models import check_safetensors, load_state, read_pair
        from ..errors import MicromotionError

        path = Path(path)
        if path.suffix in (".json", ""):
            path = path.with_suffix(".safetensors")
        check_safetensors(path)
        side = path.with_suffix(".json")
        check(side.is_file(), f"model sidecar {side.name} is missing next to {path.name}.")
        try:
            import json

            arch = json.loads(side.read_text()).get("architecture")
        except (ValueError, OSError, AttributeError):
            raise MicromotionError(f"model sidecar {side.name} is not valid JSON.") from None
        check(arch in ARCHITECTURES.values(), f"{path.name} is not a cell classifier (architecture {arch!r}).")
        tensors, meta = read_pair(path, arch, ARCHITECTURE_VERSION, what="a cell classifier")
        try:
            cfg = dict(meta["config"])
            cfg["threads"] = int(threads)
            config = ClassifierConfig(**cfg)
            config.validate()
        except (KeyError, TypeError) as exc:
            raise MicromotionError(f"model sidecar of {path.name} lacks a valid config ({exc}).") from None
        clf = cls(config)
        load_state(clf.net, tensors, path.name, "the cell classifier")
        clf.temperature = float(meta.get("temperature", 1.0))
        clf.loss_curve = list(meta.get("loss_curve", []))
        clf.history = list(meta.get("history", []))
        clf.seconds = float(meta.get("training_seconds", 0.0))
        clf.info = dict(meta.get("info", {}))
        clf.training = dict(meta.get("training") or {})
        clf.benchmark = dict(meta.get("benchmark") or {})
        return clf

    @classmethod
    def shipped(cls, *, threads: int = 0) -> "CellClassifier":
        """The compact classifier shipped with the package (trained on simulated recordings, :mod:`.pretrain`)."""
        return cls.load(SHIPPED, threads=threads)
