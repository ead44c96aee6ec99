"""The region-specific 3D network of Rinner et al. 2020 (Fig. 2e, Table 2).

Architecture (Table 2), for an ROI bounding box of ``h x w`` pixels::

    input (B, 1, T, h, w) -> Dropout 20%
    Cv1 .. Cv21: Table 1 layers 1-21 as Conv3d with kernel (3, 1, 1) (Cv21: (1, 1, 1)),
                 dilations 2, 4, 8, 16 in time for Cv17-20, ReLU     -> (B, 3, T, h, w)
    Dropout 20%
    Cv22: Conv3d 3 -> 1 with kernel (1, h, w): a dense layer over all pixels x 3
          features at each time step, linear                      -> (B, 1, T, 1, 1)

Trained on 256-frame windows.  Transfer learning: Cv1-21 start from the trained
1D CNN; the dense weights start as the 1D CNN's three Conv22 weights divided by
``h * w`` (so the untrained 3D network predicts the ROI mean of the 1D
prediction), its bias as the 1D bias.

Modes
-----
``"fast"`` (default)
    Cv1-21 frozen: their features are computed once with the fused CPU kernel and
    only the dense layer is fitted.  Input dropout is not applied (the features are
    fixed).  Two solvers:

    ``solver="ridge"`` (default)
        closed-form ridge regression of the target on all ``3 h w`` features, shrunk
        towards the transfer-learning initialisation, with the penalty chosen on the
        last 20 % of the training frames.  It reaches the optimum of the dense layer,
        which the paper's Adam at lr 8e-7 does not approach in 60 epochs (the weights
        move ~1e-3 from their start); on simulated recordings this is what turns the
        3D network from "marginally better than 1D" into a clear gain where the motion
        is weak.
    ``solver="adam"``
        the paper's optimiser on the dense layer: Adam lr 8e-7, 60 epochs of 256-frame
        windows, 20 % feature dropout, from the transfer-learning initialisation.

    Frozen because the paper's 1D layers barely move at lr 8e-7 (measured by
    ``benchmarks/reproduce_paper.py``) while training all of them for 60 epochs costs
    hours per ROI on a CPU.
``"paper"``
    The paper's procedure: all layers trainable, both dropouts, Adam lr 8e-7,
    60 epochs of 256-frame windows (``solver`` is ignored).  Use on a GPU.

Uncertainty: Monte-Carlo dropout - the mean and SD of ``mc_passes`` predictions
with dropout active (feature dropout in fast mode, both dropouts in paper mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..device import torch_threads
from ..errors import MicromotionError, check
from ..progress import Progress
from ..schema import param
from .cnn1d import DILATIONS, N_FEATURES, N_FILTERS, N_PLAIN, WIDTH, receptive_field, resolve_device

__all__ = ["CNN3DParams", "TrainedCNN3D", "build_cnn3d", "iter_train_cnn3d", "dense_init"]


@dataclass(frozen=True)
class CNN3DParams:
    """Settings of the region-specific 3D network (see module docstring)."""

    mode: str = param("fast", label="mode", choices=("fast", "paper"), flag="--cnn3d-mode",
                      help="fast: the 1D layers stay as the 1D CNN learned them and only the dense layer is fitted "
                           "(seconds); paper: every layer is trained as in the paper (hours per ROI on a CPU).")
    solver: str = param("ridge", label="solver", choices=("ridge", "adam"), flag="--cnn3d-solver",
                        help="How fast mode fits the dense layer: closed-form ridge regression (default, reaches the "
                             "optimum) or the paper's Adam optimiser at its tiny learning rate.")
    epochs: int = param(60, label="epochs", min=1, max=100000, flag="--cnn3d-epochs", advanced=True,
                        help="Training passes with Adam (the paper: 60).")
    learning_rate: float = param(8e-7, label="learning rate", min=1e-15, max=1.0, flag="--cnn3d-lr", advanced=True,
                                 help="Adam step size (the paper: 8e-7).")
    window: int = param(256, label="window", unit="frames", min=93, max=10**7, flag="--cnn3d-window", advanced=True,
                        help="Length of the training stretches (the paper: 256 frames).")
    batch_size: int = param(1, label="batch size", min=1, max=10000, flag="--cnn3d-batch", advanced=True,
                            help="Training stretches per Adam step.")
    dropout: float = param(0.2, label="dropout", min=0.0, max=0.99, flag="--cnn3d-dropout", advanced=True, decimals=2,
                           help="Fraction of inputs and features dropped while training and for the Monte-Carlo "
                                "uncertainty band (the paper: 0.2).")
    mc_passes: int = param(20, label="Monte-Carlo passes", min=2, max=10000, flag="--mc-passes", advanced=True,
                           help="Predictions with dropout whose spread gives the uncertainty band of the 3D trace.")
    ridge_alphas: tuple[float, ...] = param((1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4), label="ridge penalties",
                                            flag="--cnn3d-ridge-alphas", advanced=True, min=0.0,
                                            help="Penalties tried by the ridge solver (relative to the features' "
                                                 "scale); the one that predicts held-out training frames best wins.")
    margin_px: int = param(0, label="margin", unit="px", min=0, max=1000, flag="--cnn3d-margin",
                           help="Pixels around the drawn outline the network may also use; 0 keeps it strictly "
                                "inside the ROI so that neighbouring cells cannot take part.")
    seed: int = param(0, label="seed", inherit=True, help="Set from the analysis seed.")
    device: str = param("auto", label="device", inherit=True, help="Set from the analysis device.")

    def validate(self) -> None:
        check(self.mode in ("fast", "paper"), f"3D network mode must be 'fast' or 'paper', got {self.mode!r}.")
        check(self.solver in ("adam", "ridge"), f"3D network solver must be 'adam' or 'ridge', got {self.solver!r}.")
        check(isinstance(self.epochs, (int, np.integer)) and self.epochs >= 1, "3D network epochs must be a positive integer.")
        check(self.learning_rate > 0 and math.isfinite(self.learning_rate), "3D network learning rate must be positive.")
        check(isinstance(self.window, (int, np.integer)) and self.window >= receptive_field(),
              f"3D network windows must be at least {receptive_field()} frames.")
        check(isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 1, "3D batch size must be a positive integer.")
        check(0 <= self.dropout < 1, "dropout must be in [0, 1).")
        check(isinstance(self.mc_passes, (int, np.integer)) and self.mc_passes >= 2, "Monte-Carlo dropout needs at least 2 passes.")
        check(len(self.ridge_alphas) >= 1 and all(a > 0 and math.isfinite(a) for a in self.ridge_alphas),
              "the ridge penalties must be positive numbers.")
        check(isinstance(self.margin_px, (int, np.integer)) and self.margin_px >= 0,
              "the 3D network's margin must be a whole number of pixels >= 0.")


def build_cnn3d(h: int, w: int, dropout: float = 0.2):
    """The Table 2 network for an ``h x w`` box (weights uninitialised; see :func:`init_from_cnn1d`)."""
    import torch
    from torch import nn

    class CNN3D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.h, self.w = h, w
            self.drop_in = nn.Dropout(dropout)
            convs = [nn.Conv3d(1, N_FILTERS, (WIDTH, 1, 1), padding=(1, 0, 0))]
            convs += [nn.Conv3d(N_FILTERS, N_FILTERS, (WIDTH, 1, 1), padding=(1, 0, 0)) for _ in range(N_PLAIN - 1)]
            convs += [nn.Conv3d(N_FILTERS, N_FILTERS, (WIDTH, 1, 1), padding=(d, 0, 0), dilation=(d, 1, 1))
                      for d in DILATIONS]
            convs += [nn.Conv3d(N_FILTERS, N_FEATURES, (1, 1, 1))]
            self.body = nn.ModuleList(convs)            # Cv1 .. Cv21
            self.drop_feat = nn.Dropout(dropout)
            self.dense = nn.Conv3d(N_FEATURES, 1, (1, h, w))  # Cv22

        def features(self, x: "torch.Tensor") -> "torch.Tensor":
            for conv in self.body:
                x = torch.relu(conv(x))
            return x

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            """(B, 1, T, h, w) -> (B, T)."""
            f = self.drop_feat(self.features(self.drop_in(x)))
            return self.dense(f)[:, 0, :, 0, 0]

    return CNN3D()


def dense_init(w22: np.ndarray, b22: float, h: int, w: int) -> tuple[np.ndarray, float]:
    """Paper's rule: dense weights = the 1D CNN's final 3 weights / (h * w), bias = the 1D bias."""
    weights = np.broadcast_to((np.asarray(w22, np.float32) / (h * w))[:, None, None], (N_FEATURES, h, w)).copy()
    return weights, float(b22)


def init_from_cnn1d(net3d: Any, net1d: Any, mask: np.ndarray | None = None) -> Any:
    """Copy Table 1 layers 1-21 into Cv1-21 and apply :func:`dense_init` over the *mask* pixels (default: all)."""
    import torch

    with torch.no_grad():
        for c3, c1 in zip(net3d.body, net1d.body):
            c3.weight.copy_(c1.weight.detach().reshape(c3.weight.shape))
            c3.bias.copy_(c1.bias.detach())
        mask = np.ones((net3d.h, net3d.w), bool) if mask is None else np.asarray(mask, bool)
        w0, b0 = dense_init(net1d.head.weight.detach().cpu().numpy()[0, :, 0], float(net1d.head.bias.detach()[0]),
                            1, int(mask.sum()))
        w0 = np.where(mask[None], w0[:, :, :1], 0).astype(np.float32)
        net3d.dense.weight.copy_(torch.from_numpy(w0)[None, :, None])
        net3d.dense.bias.fill_(b0)
    return net3d


@dataclass
class TrainedCNN3D:
    """A region-specific network, its attention maps and its prediction."""

    roi: str
    box: tuple[int, int, int, int]          # row0, row1, col0, col1 (half-open)
    weights: np.ndarray                      # (3, h, w) dense weights ("attention")
    bias: float
    prediction: np.ndarray                   # (T,) in target z units (deterministic pass)
    mc_mean: np.ndarray                      # (T,)
    mc_sd: np.ndarray                        # (T,)
    loss_curve: list[float] = field(default_factory=list)
    target_mean: float = 0.0
    target_sd: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    net: Any = None                          # paper mode: the whole trained network
    ridge_alpha: float | None = None
    mask: np.ndarray | None = None           # (h, w) bool: the pixels the network sees (None: the whole box)


def _windows(segments: Sequence[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    out = []
    for a, b in segments:
        if b - a < window:
            if b - a >= receptive_field():
                out.append((a, b))
            continue
        starts = list(range(a, b - window + 1, window))
        if starts[-1] + window < b:
            starts.append(b - window)
        out += [(s, s + window) for s in starts]
    return out


def iter_train_cnn3d(roi: str, box: tuple[int, int, int, int], inputs: np.ndarray, target: np.ndarray,
                     segments: Sequence[tuple[int, int]], net1d: Any, params: CNN3DParams, *,
                     mask: np.ndarray | None = None) -> Iterator[Progress | Any]:
    """Train one region-specific network; a generator of :class:`Progress` returning :class:`TrainedCNN3D`.

    Only the pixels of *mask* take part: their features feed the dense layer, whose
    weights are zero everywhere else (the ROI's outline, not its bounding box, is the region).

    Parameters
    ----------
    roi
        ROI name.
    box
        ``(row0, row1, col0, col1)`` of the bounding box in the frame.
    inputs
        ``(T, h, w)`` normalised band-passed transmission in the box (as for the 1D CNN).
    target
        ``(T,)`` ground truth, z-normalised over the training frames.
    segments
        Training frame ranges.
    net1d
        The trained 1D CNN (transfer learning).
    params
        :class:`CNN3DParams`.
    mask
        ``(h, w)`` bool, the region inside the box (default: every pixel of the box).
    """
    params.validate()
    t_len, h, w = inputs.shape
    mask = np.ones((h, w), bool) if mask is None else np.asarray(mask, bool)
    check(mask.shape == (h, w) and mask.any(), f"ROI {roi!r}: its region mask is empty or does not fit its box.")
    wins = _windows(segments, params.window)
    check(wins, f"ROI {roi!r}: the training frames are shorter than the network's receptive field.")
    stage = f"cnn3d {roi}"
    if params.mode == "fast":
        result = yield from _train_fast(roi, box, inputs, target, segments, wins, net1d, params, stage, mask)
    else:
        result = yield from _train_paper(roi, box, inputs, target, wins, net1d, params, stage, mask)
    result.mask = mask
    return result


def _train_fast(roi, box, inputs, target, segments, wins, net1d, params, stage, mask):
    import torch

    from . import fast

    t_len, h, w = inputs.shape
    inside = mask.ravel()
    n_in = int(inside.sum())
    yield Progress(stage, 0.0, "computing frozen 1D features")
    cols = np.ascontiguousarray(inputs.reshape(t_len, h * w)[:, inside])
    feats = fast.cnn1d_forward(fast.weights_of(net1d), cols, features=True, edges="reflect")  # (T, P_in, 3)
    del cols
    feats = np.ascontiguousarray(feats.transpose(0, 2, 1).reshape(t_len, N_FEATURES * n_in))  # (T, 3*P_in)
    # the paper's transfer rule over the region's pixels: the untrained network predicts the region mean
    w0, b0 = dense_init(net1d.head.weight.detach().cpu().numpy()[0, :, 0], float(net1d.head.bias.detach()[0]), 1, n_in)
    losses: list[float] = []
    alpha = None
    if params.solver == "ridge":
        wvec, bias, alpha = _ridge(feats, target, segments, params.ridge_alphas, w0.reshape(-1))
        yield Progress(stage, 0.8, f"ridge alpha {alpha:g}")
    else:
        device = resolve_device(params.device)
        gen = torch.Generator().manual_seed(int(params.seed))  # on the CPU: same batches and masks on any device
        X = torch.from_numpy(feats).to(device)
        y = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)).to(device)
        wt = torch.nn.Parameter(torch.from_numpy(w0.reshape(-1).copy()).to(device))
        bt = torch.nn.Parameter(torch.tensor(b0, dtype=torch.float32, device=device))
        opt = torch.optim.Adam([wt, bt], lr=params.learning_rate, weight_decay=0.0)
        keep = 1.0 - params.dropout
        total = params.epochs
        with torch_threads(1):  # thousands of small steps: thread synchronisation costs more than it saves
            yield from _adam_epochs(X, y, wt, bt, opt, wins, params, gen, keep, losses, stage, total)
        wvec, bias = wt.detach().cpu().numpy().copy(), float(bt.detach().cpu())
        if not np.all(np.isfinite(wvec)):
            raise MicromotionError(f"3D network training for ROI {roi!r} diverged.")
    pred = feats @ wvec + bias
    mc = _mc_fast(feats, wvec, bias, params)
    yield Progress(stage, 1.0, "done")
    weights = np.zeros((N_FEATURES, h * w), np.float32)
    weights[:, inside] = wvec.reshape(N_FEATURES, n_in)
    return TrainedCNN3D(roi=roi, box=box, weights=weights.reshape(N_FEATURES, h, w), bias=bias,
                        prediction=pred.astype(np.float32), mc_mean=mc[0], mc_sd=mc[1], loss_curve=losses,
                        params=_asdict(params), ridge_alpha=alpha)


def _adam_epochs(X, y, wt, bt, opt, wins, params, gen, keep, losses, stage, total):
    """The dense layer's Adam epochs over 256-frame windows with feature dropout (fast mode)."""
    import torch

    for epoch in range(params.epochs):
        order = torch.randperm(len(wins), generator=gen).tolist()
        for i in range(0, len(order), params.batch_size):
            batch = [wins[k] for k in order[i:i + params.batch_size]]
            xb = torch.cat([X[a:b] for a, b in batch])
            yb = torch.cat([y[a:b] for a, b in batch])
            if params.dropout > 0:
                mask = (torch.rand(xb.shape, generator=gen) < keep).to(device=xb.device, dtype=xb.dtype) / keep
                xb = xb * mask
            loss = torch.mean((xb @ wt + bt - yb) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        yield Progress(stage, 0.05 + 0.75 * (epoch + 1) / total, f"epoch {epoch + 1}/{total}, loss {losses[-1]:.4f}",
                       values={"loss": float(np.mean(losses[-len(wins):])), "epoch": epoch + 1})


def _mc_fast(feats: np.ndarray, wvec: np.ndarray, bias: float, params: CNN3DParams) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo feature dropout: mean and SD over passes, streamed over time chunks."""
    rng = np.random.default_rng(params.seed + 7)
    keep = 1.0 - params.dropout
    t_len = feats.shape[0]
    s1 = np.zeros(t_len)
    s2 = np.zeros(t_len)
    for _ in range(params.mc_passes):
        for a in range(0, t_len, 2048):
            block = feats[a:a + 2048]
            mask = rng.random(block.shape, dtype=np.float32) < keep
            p = (block * mask) @ (wvec / keep) + bias
            s1[a:a + 2048] += p
            s2[a:a + 2048] += p * p
    n = params.mc_passes
    mean = s1 / n
    sd = np.sqrt(np.maximum(s2 / n - mean**2, 0) * n / (n - 1))
    return mean.astype(np.float32), sd.astype(np.float32)


def _ridge(feats: np.ndarray, target: np.ndarray, segments, alphas, w0: np.ndarray):
    """Ridge regression shrunk towards the transfer-learning initialisation *w0*.

    Dual form (more features than frames): one Gram matrix per row set, one Cholesky
    factorisation per penalty.  The penalty (relative to the mean diagonal of the Gram
    matrix) is chosen on the last 20 % of the training frames, then refitted on all.
    """
    from scipy.linalg import cho_factor, cho_solve

    idx = np.concatenate([np.arange(a, b) for a, b in segments])
    n_hold = max(1, idx.size // 5)
    fit_idx, hold_idx = idx[:-n_hold], idx[-n_hold:]

    def prepare(rows: np.ndarray):
        X = feats[rows]
        mu_x = X.mean(axis=0, dtype=np.float64)
        Xc = (X - mu_x.astype(np.float32)).astype(np.float32)
        y = target[rows].astype(np.float64)
        r = y - y.mean() - Xc.astype(np.float64) @ w0
        K = (Xc @ Xc.T).astype(np.float64)
        return Xc, mu_x, float(y.mean()), r, K, max(float(np.trace(K)) / K.shape[0], 1e-12)

    def solve(prep, alpha: float) -> tuple[np.ndarray, float]:
        Xc, mu_x, mu_y, r, K, scale = prep
        a = cho_solve(cho_factor(K + alpha * scale * np.eye(K.shape[0]), lower=True, check_finite=False), r,
                      check_finite=False)
        wv = w0 + (Xc.T @ a.astype(np.float32)).astype(np.float64)
        return wv, mu_y - float(mu_x @ wv)

    prep = prepare(fit_idx)
    best = None
    for alpha in alphas:
        wv, b = solve(prep, alpha)
        err = float(np.mean((feats[hold_idx] @ wv.astype(np.float32) + b - target[hold_idx]) ** 2))
        if best is None or err < best[0]:
            best = (err, alpha)
    alpha = best[1]
    wv, b = solve(prepare(idx), alpha)
    return wv.astype(np.float32), b, alpha


def _train_paper(roi, box, inputs, target, wins, net1d, params, stage, mask):
    import torch

    from . import fast

    t_len, h, w = inputs.shape
    device = resolve_device(params.device)
    torch.manual_seed(int(params.seed))
    inputs = inputs * mask[None]                 # the region only: outside pixels carry no signal
    net = init_from_cnn1d(build_cnn3d(h, w, params.dropout), net1d, mask=mask).to(device)
    region = torch.from_numpy(np.broadcast_to(mask, (N_FEATURES, h, w)).astype(np.float32))[None, :, None].to(device)
    opt = torch.optim.Adam(net.parameters(), lr=params.learning_rate, weight_decay=0.0)
    X = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
    gen = torch.Generator().manual_seed(int(params.seed))
    losses: list[float] = []
    net.train()
    for epoch in range(params.epochs):
        order = torch.randperm(len(wins), generator=gen).tolist()
        for i in range(0, len(order), params.batch_size):
            batch = [wins[k] for k in order[i:i + params.batch_size]]
            lengths = {b - a for a, b in batch}
            if len(lengths) > 1:  # a short segment window cannot stack with full ones
                batch = [bw for bw in batch if bw[1] - bw[0] == max(lengths)]
            xb = torch.stack([X[a:b] for a, b in batch])[:, None].to(device)
            yb = torch.stack([y[a:b] for a, b in batch]).to(device)
            loss = torch.mean((net(xb) - yb) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                net.dense.weight.mul_(region)   # dense weights stay zero outside the region
            losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise MicromotionError(f"3D network training for ROI {roi!r} diverged.")
        yield Progress(stage, (epoch + 1) / params.epochs * 0.85, f"epoch {epoch + 1}/{params.epochs}, loss {losses[-1]:.4f}",
                       values={"loss": float(np.mean(losses[-len(wins):])), "epoch": epoch + 1})
    net.eval()
    net = net.cpu()
    weights = net.dense.weight.detach().numpy()[0, :, 0]  # (3, h, w)
    bias = float(net.dense.bias.detach())
    body = _body_weights(net)
    flat = inputs.reshape(t_len, h * w)
    wvec = weights.reshape(-1)

    def dense_of(x: np.ndarray, drop_rng: np.random.Generator | None) -> np.ndarray:
        feats = fast.cnn1d_forward(body, x, features=True, edges="reflect").transpose(0, 2, 1).reshape(t_len, -1)
        if drop_rng is not None:
            feats = feats * (drop_rng.random(feats.shape, dtype=np.float32) < keep) / keep
        return feats @ wvec + bias

    keep = 1.0 - params.dropout
    pred = dense_of(flat, None)
    # Monte-Carlo dropout: both dropout layers active
    rng = np.random.default_rng(params.seed + 7)
    s1 = np.zeros(t_len)
    s2 = np.zeros(t_len)
    for k in range(params.mc_passes):
        xin = flat * (rng.random(flat.shape, dtype=np.float32) < keep) / keep
        p = dense_of(np.ascontiguousarray(xin, dtype=np.float32), rng).astype(np.float64)
        s1 += p
        s2 += p * p
        yield Progress(stage, 0.85 + 0.15 * (k + 1) / params.mc_passes, "Monte-Carlo dropout")
    n = params.mc_passes
    mean = s1 / n
    sd = np.sqrt(np.maximum(s2 / n - mean**2, 0) * n / (n - 1))
    return TrainedCNN3D(roi=roi, box=box, weights=weights.astype(np.float32), bias=bias,
                        prediction=pred.astype(np.float32), mc_mean=mean.astype(np.float32), mc_sd=sd.astype(np.float32),
                        loss_curve=losses, params=_asdict(params), net=net)


def _body_weights(net3d: Any):
    """Cv1-21 of a 3D network as fused-kernel weights (they are per-pixel 1D convolutions)."""
    from . import fast

    convs = list(net3d.body)

    def arr(t: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

    return fast.CNNWeights(
        w1=arr(convs[0].weight)[:, 0, :, 0, 0].copy(), b1=arr(convs[0].bias),
        w=np.stack([arr(c.weight)[:, :, :, 0, 0] for c in convs[1:20]]), b=np.stack([arr(c.bias) for c in convs[1:20]]),
        dil=np.array([c.dilation[0] for c in convs[1:20]], dtype=np.int64),
        w21=arr(convs[20].weight)[:, :, 0, 0, 0].copy(), b21=arr(convs[20].bias),
        w22=np.zeros(N_FEATURES, np.float32), b22=0.0,
    )


def _asdict(params: CNN3DParams) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(params)
    d["ridge_alphas"] = list(d["ridge_alphas"])
    return d
