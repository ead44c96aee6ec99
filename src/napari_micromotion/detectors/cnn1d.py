"""The time-domain 1D CNN of Rinner et al. 2020 (Fig. 2d, Table 1).

Architecture (exactly Table 1; 'same' padding, so output length = input length)::

    Conv1      1 -> 8, width 3, ReLU
    Conv2-16   8 -> 8, width 3, ReLU
    Conv17-20  8 -> 8, width 3, dilation 2, 4, 8, 16, ReLU
    Conv21     8 -> 3, width 1, ReLU
    Conv22     3 -> 1, width 1, linear

3863 parameters; receptive field 93 frames (1.86 s at 50 fps).  Weights are
Glorot-uniform, biases zero (Keras defaults); training uses Adam (lr 1e-3, no
weight decay) on the mean-square error for 3 epochs.

Normalisation (stored with the model)
-------------------------------------
* input: the band-passed pixel series in units of its own noise (``"noise"``,
  default: divided by the robust SD of the pixel's band-passed signal, so that a
  pixel with sub-pixel motion and a pixel with large motion differ only in
  signal-to-noise ratio, whatever the illumination) or as relative intensity change
  (``"relative"``: divided by the pixel's mean intensity, dI/I); then divided by one
  global ``input_scale``: the RMS over the training pixels and frames, times the RMS of
  the untrained network's Conv21 features on such unit-RMS inputs.  The Glorot-initialised
  stack of 21 ReLU layers shrinks its input ~1e4-1e5 fold (each ReLU halves the power), so
  an untrained network predicts a constant and Adam sits on a long plateau; with zero
  biases the network is positively homogeneous, so this gain gives it unit-RMS features at
  the start without touching the initialisation;
* target: the ground-truth trace z-normalised over the training frames
  (``target_mean``, ``target_sd``); predictions are in those units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..device import resolve_device
from ..errors import MicromotionError, check
from ..progress import Progress
from ..schema import param

__all__ = [
    "ARCHITECTURE",
    "ARCHITECTURE_VERSION",
    "CNN1DParams",
    "Normalisation",
    "TrainedCNN1D",
    "build_cnn1d",
    "count_parameters",
    "receptive_field",
    "iter_train_cnn1d_torch",
    "predict_cnn1d",
    "predict_torch",
    "resolve_device",
    "training_windows",
    "normalise_columns",
    "initial_feature_rms",
]

ARCHITECTURE = "rinner2020-cnn1d"
ARCHITECTURE_VERSION = 1
N_FILTERS = 8
N_PLAIN = 16
DILATIONS = (2, 4, 8, 16)
N_FEATURES = 3
WIDTH = 3


def normalise_columns(filtered: np.ndarray, mean_intensity: np.ndarray, mode: str) -> np.ndarray:
    """Per-pixel input normalisation of band-passed ``(T, P)`` columns (before the global scale).

    ``"noise"``: divide by the robust noise SD, 1.4826 * MAD of the column's first
    differences / sqrt(2) (insensitive to the rare motion bursts); ``"relative"``: divide
    by the pixel's mean intensity.  Columns with zero scale become zeros.
    """
    x = np.asarray(filtered, dtype=np.float32)
    if mode == "relative":
        scale = np.asarray(mean_intensity, dtype=np.float32)
    else:
        d = np.diff(x, axis=0)
        scale = (1.4826 / math.sqrt(2.0)) * np.median(np.abs(d - np.median(d, axis=0)), axis=0)
        scale = scale.astype(np.float32)
    ok = np.abs(scale) > 0
    return np.where(ok, x / np.where(ok, scale, 1), 0).astype(np.float32)


def initial_feature_rms(net: Any, inputs: np.ndarray) -> float:
    """RMS of the Conv21 features of *net* on ``(n, T)`` *inputs* (1.0 if they are all zero)."""
    import torch

    with torch.inference_mode():
        f = net.features(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).unsqueeze(1))
        rms = float(f.double().pow(2).mean().sqrt())
    return rms if rms > 0 and math.isfinite(rms) else 1.0


def receptive_field() -> int:
    """Frames that influence one output sample (93)."""
    return 1 + (WIDTH - 1) * N_PLAIN + sum((WIDTH - 1) * d for d in DILATIONS)


def build_cnn1d(seed: int | None = 0):
    """The Table 1 network as a ``torch.nn.Module`` with Glorot-uniform weights and zero biases."""
    import torch
    from torch import nn

    class CNN1D(nn.Module):
        """Table 1.  ``forward``: (B, 1, T) -> (B, 1, T); ``features``: layers 1-21 -> (B, 3, T)."""

        def __init__(self) -> None:
            super().__init__()
            convs: list[nn.Conv1d] = [nn.Conv1d(1, N_FILTERS, WIDTH, padding=1)]
            convs += [nn.Conv1d(N_FILTERS, N_FILTERS, WIDTH, padding=1) for _ in range(N_PLAIN - 1)]
            convs += [nn.Conv1d(N_FILTERS, N_FILTERS, WIDTH, padding=d, dilation=d) for d in DILATIONS]
            convs += [nn.Conv1d(N_FILTERS, N_FEATURES, 1)]
            self.body = nn.ModuleList(convs)  # Conv1 .. Conv21, each followed by ReLU
            self.head = nn.Conv1d(N_FEATURES, 1, 1)  # Conv22, linear

        def features(self, x: "torch.Tensor") -> "torch.Tensor":
            for conv in self.body:
                x = torch.relu(conv(x))
            return x

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.head(self.features(x))

    gen_state = None
    if seed is not None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(int(seed))
    try:
        net = CNN1D()
        for m in net.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    finally:
        if gen_state is not None:
            torch.random.set_rng_state(gen_state)
    return net


def count_parameters(net: Any) -> int:
    return int(sum(p.numel() for p in net.parameters()))


@dataclass(frozen=True)
class CNN1DParams:
    """Training and inference settings of the 1D CNN.

    Attributes
    ----------
    epochs
        Passes over the sampled training data (paper: 3).
    learning_rate
        Adam learning rate (paper: 1e-3, no weight decay).
    pixels
        ``"all"`` (the paper), ``"random"``, ``"variance"`` (the pixels with the highest
        band-pass energy in noise units; default) or ``"mixed"`` (half highest-energy, half
        random).  On simulated recordings 2048 highest-energy pixels beat mixed, random and
        even all pixels in the weak region (see the project's benchmarks).
    n_pixels
        Size of the pixel subset when not ``"all"``.
    window
        Frames per training window (longer than the 93-frame receptive field).
    batch_size
        Windows per Adam step.
    seed
        Seed of weights, pixel choice and shuffling (same seed, same weights on CPU).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    chunk_pixels
        Pixels per inference batch.
    backend
        ``"auto"`` (the fused numba trainer of :mod:`.fast_train` on CPU, PyTorch on CUDA),
        ``"fast"`` or ``"torch"`` (the plain PyTorch reference).
    restarts
        Fused trainer only: when a network dies (Conv21 all off, constant prediction) within
        the first steps, start again from a fresh Glorot init, at most this many times.
    input_norm
        ``"noise"``: each band-passed pixel series divided by its own robust noise SD
        (signal-to-noise units; default) or ``"relative"``: divided by the pixel's mean
        intensity (dI/I).  Either is then divided by one global ``input_scale``.
    """

    epochs: int = param(3, label="epochs", min=1, max=10000, flag="--cnn-epochs",
                        help="Passes over the training pixels (the paper trained 3).")
    learning_rate: float = param(1e-3, label="learning rate", min=1e-12, max=1.0, flag="--cnn-lr", advanced=True,
                                 help="Step size of the Adam optimiser (the paper: 0.001).")
    pixels: str = param("variance", label="training pixels", choices=("variance", "mixed", "random", "all"),
                        flag="--cnn-pixels",
                        help="Which pixels the network learns from: those whose brightness changes most "
                             "(variance, fast and best on simulations), half of those and half random (mixed), "
                             "random ones, or all pixels as in the paper (slow, much memory).")
    n_pixels: int = param(2048, label="pixels sampled", min=1, max=10**9, flag="--cnn-n-pixels",
                          help="How many pixels are used for training unless all pixels are.")
    window: int = param(1024, label="window", unit="frames", min=93, max=10**7, flag="--cnn-window", advanced=True,
                        help="Length of the stretches of recording the network sees per training example "
                             "(at least its 93-frame receptive field).")
    batch_size: int = param(16, label="batch size", min=1, max=100000, flag="--cnn-batch", advanced=True,
                            help="Training examples per optimiser step.")
    seed: int = param(0, label="seed", inherit=True, help="Set from the analysis seed.")
    device: str = param("auto", label="device", inherit=True, help="Set from the analysis device.")
    chunk_pixels: int = param(2048, label="pixels per inference batch", min=1, max=10**7, advanced=True,
                              flag="--cnn-chunk-pixels",
                              help="Pixels sent to a GPU at once; lower it if the GPU runs out of memory.")
    input_norm: str = param("noise", label="input normalisation", choices=("noise", "relative"),
                            flag="--cnn-input-norm", advanced=True,
                            help="Scale each pixel by its own noise level (noise: signal-to-noise units, default) "
                                 "or by its brightness (relative: dI/I).")
    backend: str = param("auto", label="training backend", choices=("auto", "fast", "torch"), flag="--cnn-backend",
                         advanced=True,
                         help="auto: the fused CPU trainer on a CPU, PyTorch on a GPU; fast or torch force one.")
    restarts: int = param(2, label="restarts of a dead network", min=0, max=100, flag="--cnn-restarts", advanced=True,
                          help="If the network stops learning at once (a known failure of deep ReLU stacks), "
                               "start again from new random weights at most this many times.")

    def validate(self) -> None:
        check(isinstance(self.epochs, (int, np.integer)) and 1 <= self.epochs <= 10000, f"epochs must be a positive integer, got {self.epochs!r}.")
        check(self.learning_rate > 0 and math.isfinite(self.learning_rate), f"learning rate must be positive, got {self.learning_rate!r}.")
        check(self.pixels in ("all", "random", "variance", "mixed"), f"pixel sampling must be all, random, variance or mixed, got {self.pixels!r}.")
        check(isinstance(self.n_pixels, (int, np.integer)) and self.n_pixels >= 1, f"n_pixels must be a positive integer, got {self.n_pixels!r}.")
        check(isinstance(self.window, (int, np.integer)) and self.window >= receptive_field(),
              f"training windows must be at least {receptive_field()} frames (the receptive field), got {self.window!r}.")
        check(isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 1, f"batch size must be a positive integer, got {self.batch_size!r}.")
        check(self.input_norm in ("noise", "relative"), f"input normalisation must be 'noise' or 'relative', got {self.input_norm!r}.")
        check(self.backend in ("auto", "fast", "torch"), f"backend must be 'auto', 'fast' or 'torch', got {self.backend!r}.")
        check(isinstance(self.restarts, (int, np.integer)) and self.restarts >= 0, f"restarts must be >= 0, got {self.restarts!r}.")


@dataclass(frozen=True)
class Normalisation:
    """How inputs and target were scaled for training (see module docstring)."""

    input_scale: float
    target_mean: float
    target_sd: float
    mode: str = "noise"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainedCNN1D:
    """A trained 1D CNN with everything needed to apply it to another recording."""

    net: Any
    normalisation: Normalisation
    fps: float
    passband_hz: tuple[float, float]
    filter_order: int
    training_frames: list[tuple[int, int]]
    loss_curve: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    n_training_pixels: int = 0
    seconds: float = 0.0
    #: :meth:`Recording.fingerprint` of the recording it learned from ("" when unknown: models saved before it)
    trained_on: str = ""


def training_windows(segments: Sequence[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """Tile training segments with windows of *window* frames (the last aligned to the segment end).

    Segments shorter than *window* give one window of their own length if they are at
    least a receptive field long, else none.
    """
    out: list[tuple[int, int]] = []
    for a, b in segments:
        n = b - a
        if n < receptive_field():
            continue
        w = min(window, n)
        starts = list(range(a, b - w + 1, w))
        if starts[-1] + w < b:
            starts.append(b - w)
        out += [(s, s + w) for s in starts]
    return out


def iter_train_cnn1d_torch(inputs: np.ndarray, target: np.ndarray, segments: Sequence[tuple[int, int]],
                           params: CNN1DParams, *, init: Any = None) -> Iterator[Progress | Any]:
    """Train the 1D CNN with plain PyTorch (the reference; any device).

    A generator of :class:`Progress` whose return value is ``(net, losses, epoch_losses)``.
    :func:`napari_micromotion.detectors.training.iter_train_cnn1d` chooses between this
    and the fused CPU trainer.

    Parameters
    ----------
    inputs
        ``(n_pixels, T)`` normalised band-passed pixel series (float32).
    target
        ``(T,)`` normalised ground truth.
    segments
        Training frame ranges ``[(start, stop), ...]`` (half-open).
    params
        :class:`CNN1DParams`.
    init
        Optional network to continue from (otherwise Glorot-uniform with ``params.seed``).
    """
    import torch

    params.validate()
    device = resolve_device(params.device)
    windows = training_windows(segments, params.window)
    check(windows, f"the training frames are shorter than the network's receptive field ({receptive_field()} frames).")
    n_pix = inputs.shape[0]
    check(n_pix >= 1, "no training pixels.")
    net = init if init is not None else build_cnn1d(params.seed)
    net = net.to(device)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=params.learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(params.seed + 1)
    x_all = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    y_all = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
    # group windows by length so batches stack
    pairs = np.array([(p, w) for p in range(n_pix) for w in range(len(windows))], dtype=np.int64)
    lengths = np.array([windows[w][1] - windows[w][0] for w in pairs[:, 1]])
    losses: list[float] = []
    epoch_losses: list[float] = []
    n_steps_epoch = sum(math.ceil((lengths == L).sum() / params.batch_size) for L in np.unique(lengths))
    total = params.epochs * n_steps_epoch
    step = 0
    for epoch in range(params.epochs):
        order = rng.permutation(len(pairs))
        batches = []
        for L in np.unique(lengths):
            idx = order[lengths[order] == L]
            batches += [idx[i:i + params.batch_size] for i in range(0, idx.size, params.batch_size)]
        batch_order = rng.permutation(len(batches))
        running, count = 0.0, 0
        for bi in batch_order:
            sel = pairs[batches[bi]]
            starts = np.array([windows[w][0] for w in sel[:, 1]])
            L = windows[sel[0, 1]][1] - windows[sel[0, 1]][0]
            tidx = torch.from_numpy(starts[:, None] + np.arange(L)[None, :])
            xb = x_all[torch.from_numpy(sel[:, 0])[:, None], tidx].unsqueeze(1).to(device)
            yb = y_all[tidx].unsqueeze(1).to(device)
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((net(xb) - yb) ** 2)
            loss.backward()
            opt.step()
            val = float(loss.detach())
            if not math.isfinite(val):
                raise MicromotionError("1D CNN training diverged (loss is not finite); lower the learning rate.")
            losses.append(val)
            running += val * len(sel)
            count += len(sel)
            step += 1
            if step % 10 == 0 or step == total:
                recent = float(np.mean(losses[-10:]))
                yield Progress("train cnn1d", step / total, f"epoch {epoch + 1}/{params.epochs}, loss {recent:.4f}",
                               values={"loss": recent, "step": step, "epoch": epoch + 1})
        epoch_losses.append(running / max(count, 1))
    net.eval()
    return net.cpu(), losses, epoch_losses


def predict_cnn1d(net: Any, inputs: np.ndarray, *, device: str = "cpu", chunk_pixels: int = 2048,
                  features: bool = False, edges: str = "reflect") -> np.ndarray:
    """Apply the network to normalised ``(T, P)`` columns; returns ``(T, P)`` (or ``(T, P, 3)`` features).

    Uses the fused CPU kernel (:mod:`napari_micromotion.detectors.fast`) on CPU and
    PyTorch on CUDA.  *edges*: ``"reflect"`` (default) continues each series by its mirror
    image over the receptive field's half-width before the network, so the recording's
    first and last 46 frames carry no padding transient; ``"zero"`` is the bare network.
    """
    from . import fast

    x = np.ascontiguousarray(inputs, dtype=np.float32)
    check(x.ndim == 2, "inputs must be (T, P).")
    if device == "cpu":
        return fast.cnn1d_forward(fast.weights_of(net), x, features=features, edges=edges)
    return predict_torch(net, x, device=device, chunk_pixels=chunk_pixels, features=features, edges=edges)


def predict_torch(net: Any, x: np.ndarray, *, device: str, chunk_pixels: int, features: bool,
                  edges: str = "zero") -> np.ndarray:
    """The network in PyTorch on *device* over ``(T, P)`` columns (``edges`` as in :func:`predict_cnn1d`)."""
    from . import fast

    fast.check_edges(edges)
    if edges == "reflect":
        return fast.on_reflected_edges(
            lambda xe: predict_torch(net, xe, device=device, chunk_pixels=chunk_pixels, features=features), x)
    import torch

    t, p = x.shape
    out = np.empty((t, p, N_FEATURES) if features else (t, p), dtype=np.float32)
    net = net.to(device).eval()
    with torch.inference_mode():
        for a in range(0, p, chunk_pixels):
            xb = torch.from_numpy(np.ascontiguousarray(x[:, a:a + chunk_pixels].T)).unsqueeze(1).to(device)
            if features:
                out[:, a:a + chunk_pixels] = net.features(xb).permute(2, 0, 1).cpu().numpy()
            else:
                out[:, a:a + chunk_pixels] = net(xb)[:, 0].T.cpu().numpy()
    net.cpu()
    return out


def predict_reference(net: Any, inputs: np.ndarray, chunk_pixels: int = 1024) -> np.ndarray:
    """The plain PyTorch forward pass (reference for the fused kernel)."""
    return predict_torch(net, np.ascontiguousarray(inputs, dtype=np.float32), device="cpu",
                          chunk_pixels=chunk_pixels, features=False)
