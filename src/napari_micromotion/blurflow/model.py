"""The blur-flow network: a small U-Net with a ResNet-style encoder (Shajkofci & Liebling, Section 2.3).

Architecture (``"shajkofci2021-blurflow-unet"``, version 1)::

    input  (B, 1, Y, X) robustly normalised image (:func:`normalise_image`)
    stem   conv3x3 1 -> w0, BN, ReLU                         full resolution
    enc0   residual block w0 -> w0                           full     -> skip
    enc1   residual block w0 -> w1, stride 2 (+ blocks)      1/2      -> skip
    enc2   residual block w1 -> w2, stride 2                 1/4      -> skip
    enc3   residual block w2 -> w3, stride 2                 1/8      -> skip
    enc4   residual block w3 -> w4, stride 2, + one block    1/16     (receptive field > 200 px)
    dec    4 x (bilinear up x2, concat skip, conv3x3 + BN + ReLU, residual block)
    head   conv1x1 w0 -> 5: (a, b, v3, z0, validity logit)

A residual block is ResNet's basic block (two 3x3 convolutions with batch
normalisation, identity or 1x1 projection shortcut).  The paper used an
ImageNet-pretrained ResNet encoder; no downloadable weights exist here, so the
network is trained from scratch and kept small enough for a CPU.

Lateral direction: the sign ambiguity
-------------------------------------
A straight blur along ``+u`` and along ``-u`` differ only by a point reflection
of the PSF (``h_{-u}(s) = h_u(-s)``); on a textured sample, whose phase is
unknown, the two are indistinguishable.  The paper's loss (Eq. 6) therefore
compares ``|v_u|``, which however also forgets whether the streak runs along
``/`` or ``\\`` (``|v1|, |v2|`` are the same for both).  Here the network predicts
the lateral motion as an *axis*: the doubled-angle vector

    ``a = |u| cos 2 theta``,  ``b = |u| sin 2 theta``,  ``theta = atan2(v1, v2)``,

which is unchanged by ``u -> -u``, keeps the axis, and is continuous (no wrap at
+-90 degrees).  :func:`decode_output` turns it back into ``(v1, v2)`` with the
sign convention of the paper's code: ``v2`` (x) >= 0, i.e. the direction angle
in (-90, 90] degrees from the x axis (``v2 = 0`` gives ``v1 >= 0``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MicromotionError, check, check_folder

__all__ = [
    "ARCHITECTURE",
    "ARCHITECTURE_VERSION",
    "OUTPUTS",
    "NetConfig",
    "TrainedBlurFlow",
    "axis_angle_deg",
    "build_net",
    "canonical_lateral",
    "count_parameters",
    "decode_output",
    "encode_targets",
    "load_blur_flow",
    "normalise_image",
    "save_blur_flow",
]

ARCHITECTURE = "shajkofci2021-blurflow-unet"
ARCHITECTURE_VERSION = 1
#: channels of :func:`decode_output` / the predicted map
OUTPUTS = ("v1", "v2", "v3", "z0", "validity")


@dataclass(frozen=True)
class NetConfig:
    """Widths of the U-Net levels (full resolution to 1/16) and residual blocks per encoder level."""

    widths: tuple[int, int, int, int, int] = field(default=(16, 32, 64, 96, 128), metadata={
        "label": "channel widths", "unit": "", "help": "Feature channels at the five levels (1/r ... 1/(16 r) resolution)."})
    blocks: tuple[int, int, int, int, int] = field(default=(1, 1, 1, 1, 2), metadata={
        "label": "residual blocks", "unit": "", "help": "Residual blocks at each encoder level."})

    spectrum: tuple[float, ...] = field(default=(0.6, 1.0, 1.7, 2.8, 4.5), metadata={
        "label": "local-spectrum scales", "unit": "px",
        "help": "Derivative scales of the fixed local-spectrum input features (empty: image only)."})
    pools_px: tuple[float, ...] = field(default=(4.0, 12.0, 32.0), metadata={
        "label": "local-spectrum windows", "unit": "px",
        "help": "Gaussian window sizes (sigma) over which the local spectrum is averaged."})
    unshuffle: int = field(default=2, metadata={
        "label": "input folding", "unit": "px",
        "help": "The input's r x r pixel blocks are folded into r^2 channels (lossless) before the first "
                "convolution, and the output is up-sampled by r at the end."})

    def validate(self) -> None:
        check(len(self.widths) == 5 and all(isinstance(w, int) and 4 <= w <= 512 for w in self.widths),
              "the network needs five channel widths of 4-512.")
        check(len(self.blocks) == 5 and all(isinstance(b, int) and 1 <= b <= 8 for b in self.blocks),
              "the network needs 1-8 residual blocks at each of its five levels.")
        check(self.unshuffle in (1, 2, 4), f"input folding must be 1, 2 or 4, got {self.unshuffle!r}.")
        check(not self.spectrum or self.unshuffle == 2, "the local-spectrum features need input folding 2.")
        check(sorted(self.spectrum) == list(self.spectrum), "local-spectrum scales must be increasing.")
        check(len(self.spectrum) <= 8 and all(0.3 <= s_ <= 8 for s_ in self.spectrum),
              "local-spectrum scales must be 0-8 values of 0.3-8 px.")
        check(1 <= len(self.pools_px) <= 4 and all(1 <= p <= 64 for p in self.pools_px),
              "local-spectrum windows must be 1-4 values of 1-64 px.")

    def to_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "blocks": list(self.blocks), "spectrum": list(self.spectrum),
                "pools_px": list(self.pools_px), "unshuffle": self.unshuffle}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        return cls(widths=tuple(int(x) for x in d["widths"]), blocks=tuple(int(x) for x in d["blocks"]),
                   spectrum=tuple(float(x) for x in d["spectrum"]), pools_px=tuple(float(x) for x in d["pools_px"]),
                   unshuffle=int(d["unshuffle"]))


def build_net(config: NetConfig = NetConfig(), seed: int | None = 0):
    """The blur-flow U-Net as a ``torch.nn.Module`` (Kaiming-normal convolutions, seeded)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    config.validate()

    class ResBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.proj is None else self.proj(x)))

    class Up(nn.Module):
        def __init__(self, cin: int, cskip: int, cout: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin + cskip, cout, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(cout)
            self.block = ResBlock(cout, cout)

        def forward(self, x, skip):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            return self.block(F.relu(self.bn(self.conv(torch.cat([x, skip], dim=1)))))

    class LocalSpectrum(nn.Module):
        """Fixed features: a coarse local power spectrum, log energies of oriented derivatives.

        For each derivative scale ``s`` the structure tensor ``J = G_p * (grad_s I grad_s I^T)``
        gives the energy along orientation ``theta`` as ``cos^2 J_xx + sin^2 J_yy + 2 sin cos J_xy``
        (4 orientations).  ``J`` is pooled over Gaussian windows of every size in ``pools``
        (the larger ones on a 1/8 grid): a blur is only measurable over an area where the
        sample's own structures point every way, so wide windows give steadier estimates and
        narrow ones sharper borders; the network weighs them.  Logarithms turn a change of
        contrast into an offset common to all channels; each pooling size gives the
        spectrum's shape (channels minus their mean) and its level.  Output at 1/r resolution.
        No trainable weights.
        """

        EPS = 1e-6
        COARSE = 8

        def __init__(self, scales: tuple[float, ...], pools: tuple[float, ...], r: int) -> None:
            super().__init__()
            self.scales, self.pools, self.r = scales, pools, r
            self.pad = 2 * int(np.ceil((3 * max(scales) + 3 * pools[0]) / 2))     # even: aligns the half grid
            for k, p in enumerate(pools[1:], start=1):
                self.register_buffer(f"pool{k}", torch.from_numpy(_gauss_kernels(p / self.COARSE)[0]),
                                     persistent=False)
            th = np.deg2rad([0.0, 45.0, 90.0, 135.0])
            steer = np.stack([np.cos(th) ** 2, np.sin(th) ** 2, 2 * np.sin(th) * np.cos(th)], axis=1)
            # block-diagonal: 4 orientations from the (Jxx, Jyy, Jxy) of every derivative scale
            self.register_buffer("steer", torch.from_numpy(np.kron(np.eye(len(scales)), steer).astype(np.float32)),
                                 persistent=False)

        @staticmethod
        def _sep(x, ky, kx, mode="reflect"):
            """Separable 'same' filtering of every channel: ky along y, kx along x."""
            c = x.shape[1]
            py, px = ky.numel() // 2, kx.numel() // 2
            x = F.pad(x, (px, px, py, py), mode=mode)
            x = F.conv2d(x, ky.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
            return F.conv2d(x, kx.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)

        def _structure_tensors(self, x):
            """``(B, 3 S, Y/2, X/2)``: ``G_p * (gx^2, gy^2, gx gy)`` for every derivative scale, via FFTs.

            Derivatives at scales below 1.5 px are taken at full resolution and their
            products averaged 2 x 2; the wider (low-pass) ones directly on a half-resolution
            grid (Fourier cropping), which is 4x cheaper and loses nothing.  The image is
            mirror-padded by the filters' reach first, so the periodic FFT convolution
            behaves like reflecting borders.
            """
            p = self.pad
            h, w = x.shape[-2:]
            hp, wp = 2 * _fft_size((h + 2 * p + 1) // 2), 4 * _fft_size((w + 2 * p + 3) // 4)
            pads = (p, wp - w - p, p, hp - h - p)
            xp = F.pad(x, pads, mode="reflect") if min(h, w) > max(pads) else F.pad(x, pads, mode="replicate")
            spec = torch.fft.rfft2(xp)                                                   # (B, 1, hp, wp//2+1)
            fy = torch.fft.fftfreq(hp, dtype=x.dtype, device=x.device)[:, None]
            fx = torch.fft.rfftfreq(wp, dtype=x.dtype, device=x.device)[None, :]
            fine = [s_ for s_ in self.scales if s_ < 1.5]
            coarse = [s_ for s_ in self.scales if s_ >= 1.5]
            prods = []
            if fine:
                sig = torch.tensor(fine, dtype=x.dtype, device=x.device)[:, None, None]
                g = torch.exp(-2 * math.pi ** 2 * sig ** 2 * (fy * fy + fx * fx))
                gx = torch.fft.irfft2(spec * (2j * math.pi * fx) * g, s=(hp, wp))
                gy = torch.fft.irfft2(spec * (2j * math.pi * fy) * g, s=(hp, wp))
                prods.append(F.avg_pool2d(torch.stack([gx * gx, gy * gy, gx * gy], dim=2).flatten(1, 2), 2))
            h2, w2 = hp // 2, wp // 2
            if coarse:
                # keep |f| < 1/4 cycle per pixel: the spectrum of the 2x coarser grid
                sub = torch.cat([spec[..., : h2 // 2, : w2 // 2 + 1], spec[..., hp - h2 // 2:, : w2 // 2 + 1]], dim=-2)
                fy2 = torch.cat([fy[: h2 // 2], fy[hp - h2 // 2:]], dim=0)
                fx2 = fx[:, : w2 // 2 + 1]
                sig = torch.tensor(coarse, dtype=x.dtype, device=x.device)[:, None, None]
                g = torch.exp(-2 * math.pi ** 2 * sig ** 2 * (fy2 * fy2 + fx2 * fx2))
                gx = torch.fft.irfft2(sub * (2j * math.pi * fx2) * g, s=(h2, w2)) * 0.25
                gy = torch.fft.irfft2(sub * (2j * math.pi * fy2) * g, s=(h2, w2)) * 0.25
                prods.append(torch.stack([gx * gx, gy * gy, gx * gy], dim=2).flatten(1, 2))
            prods = torch.cat(prods, dim=1)
            # order the channels as self.scales (fine scales first, then coarse: keep that order fixed)
            fy3 = torch.fft.fftfreq(h2, dtype=x.dtype, device=x.device)[:, None]
            fx3 = torch.fft.rfftfreq(w2, dtype=x.dtype, device=x.device)[None, :]
            pool = torch.exp(-2 * math.pi ** 2 * (self.pools[0] / 2) ** 2 * (fy3 * fy3 + fx3 * fx3))
            j = torch.fft.irfft2(torch.fft.rfft2(prods) * pool, s=(h2, w2))
            return j[..., p // 2:p // 2 + h // 2, p // 2:p // 2 + w // 2]

        def _log_spectrum(self, j):
            f = torch.log(torch.einsum("oc,bchw->bohw", self.steer, j).clamp_min(0) + self.EPS)
            level = f.mean(dim=1, keepdim=True)
            return torch.cat([(f - level) * 0.5, (level + 8.0) * 0.25], dim=1)

        def forward(self, x):
            j = self._structure_tensors(x)                        # at 1/2 resolution (= 1/r, r = 2)
            size = j.shape[-2:]
            feats = [self._log_spectrum(j)]
            if len(self.pools) > 1:
                jc = F.avg_pool2d(j, self.COARSE // 2, ceil_mode=True)
                for k in range(1, len(self.pools)):
                    pk = getattr(self, f"pool{k}")
                    jk = self._sep(jc, pk, pk, mode="replicate")
                    feats.append(self._log_spectrum(F.interpolate(jk, size=size, mode="bilinear", align_corners=False)))
            return torch.cat(feats, dim=1)

    class BlurFlowNet(nn.Module):
        def __init__(self, cfg: NetConfig) -> None:
            super().__init__()
            w, nb = cfg.widths, cfg.blocks
            self.r = cfg.unshuffle
            self.spectrum = LocalSpectrum(cfg.spectrum, cfg.pools_px, self.r) if cfg.spectrum else None
            n_feat = (4 * len(cfg.spectrum) + 1) * len(cfg.pools_px) if cfg.spectrum else 0
            n_in = self.r ** 2 + n_feat
            self.unshuffle = nn.PixelUnshuffle(self.r)
            self.stem = nn.Sequential(nn.Conv2d(n_in, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
            levels = []
            for i in range(5):
                cin = w[0] if i == 0 else w[i - 1]
                blocks = [ResBlock(cin, w[i], 1 if i == 0 else 2)] + [ResBlock(w[i], w[i]) for _ in range(nb[i] - 1)]
                levels.append(nn.Sequential(*blocks))
            self.enc = nn.ModuleList(levels)
            self.dec = nn.ModuleList([Up(w[i + 1], w[i], w[i]) for i in range(3, -1, -1)])
            self.head = nn.Conv2d(w[0], 5, 1)
            # a linear read-out of the local spectrum straight into the outputs (the U-Net learns the rest)
            self.linear = nn.Conv2d(n_feat, 5, 1) if n_feat else None

        def forward(self, x):
            size = x.shape[-2:]
            inputs = [self.unshuffle(x)]
            spec = None
            if self.spectrum is not None:
                spec = self.spectrum(x)
                inputs.append(spec)
            x = self.stem(torch.cat(inputs, dim=1))
            skips = []
            for lev in self.enc:
                x = lev(x)
                skips.append(x)
            x = skips.pop()
            for up in self.dec:
                x = up(x, skips.pop())
            x = self.head(x)
            if self.linear is not None:
                x = x + self.linear(spec)
            if self.r > 1:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            return x

    if seed is not None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
    try:
        net = BlurFlowNet(config)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in net.modules():   # zero-init the last BN of every residual block (starts as identity)
            if isinstance(m, ResBlock):
                nn.init.zeros_(m.bn2.weight)
        nn.init.normal_(net.head.weight, std=1e-3)
        nn.init.zeros_(net.head.bias)
        if net.linear is not None:
            nn.init.zeros_(net.linear.weight)
            nn.init.zeros_(net.linear.bias)
    finally:
        if seed is not None:
            torch.random.set_rng_state(gen_state)
    return net


def _fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT lengths)."""
    m = n
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 1


def _gauss_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Sampled Gaussian (sum 1) and its derivative (odd, sum of x * d = -1) of width ``2 ceil(3 sigma) + 1``."""
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    d = -x / sigma ** 2 * g
    d /= -(x * d).sum()
    return g.astype(np.float32), d.astype(np.float32)


def count_parameters(net: Any) -> int:
    return int(sum(p.numel() for p in net.parameters()))


# ---------------------------------------------------------------- input and targets
def normalise_image(image: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    """Robust intensity normalisation: percentile *lo_pct* -> 0 and *hi_pct* -> 1 (float32).

    The same mapping is used in training (per crop) and prediction (per image),
    so a camera offset, the gain and the bit depth do not matter.  A constant
    image maps to zeros.
    """
    x = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(x, [lo_pct, hi_pct])
    span = float(hi - lo)
    if not span > 0:
        return np.zeros_like(x)
    return (x - np.float32(lo)) / np.float32(span)


def encode_targets(truth: np.ndarray) -> np.ndarray:
    """``(..., 5, Y, X)`` truth ``(v1, v2, v3, z0, w)`` -> network targets ``(a, b, v3, z0, w)``.

    ``a = (v2^2 - v1^2) / |u|``, ``b = 2 v1 v2 / |u|`` (the doubled-angle axis vector of
    length ``|u|``); see the module docstring.
    """
    t = np.asarray(truth, dtype=np.float32)
    v1, v2 = t[..., 0, :, :], t[..., 1, :, :]
    r = np.sqrt(v1 * v1 + v2 * v2)
    safe = np.where(r > 0, r, 1.0)
    a = np.where(r > 0, (v2 * v2 - v1 * v1) / safe, 0.0)
    b = np.where(r > 0, 2 * v1 * v2 / safe, 0.0)
    return np.stack([a, b, t[..., 2, :, :], t[..., 3, :, :], t[..., 4, :, :]], axis=-3).astype(np.float32)


def decode_output(out: np.ndarray) -> np.ndarray:
    """Network output ``(..., 5, Y, X)`` (a, b, v3, z0, logit) -> ``(v1, v2, v3, z0, validity)``.

    ``v2 >= 0`` (direction angle in (-90, 90] degrees from x); ``validity`` is the
    sigmoid of the logit, in [0, 1].
    """
    o = np.asarray(out, dtype=np.float32)
    a, b = o[..., 0, :, :], o[..., 1, :, :]
    r = np.sqrt(a * a + b * b)
    th = 0.5 * np.arctan2(b, a)
    v1, v2 = r * np.sin(th), r * np.cos(th)
    v1, v2 = canonical_lateral(v1, v2)
    with np.errstate(over="ignore"):
        w = 1.0 / (1.0 + np.exp(-o[..., 4, :, :]))
    return np.stack([v1, v2, o[..., 2, :, :], o[..., 3, :, :], w], axis=-3).astype(np.float32)


def canonical_lateral(v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``(v1, v2)`` to the half-plane ``v2 > 0`` (or ``v2 == 0, v1 >= 0``): the reported sign convention."""
    v1 = np.asarray(v1, dtype=np.float32)
    v2 = np.asarray(v2, dtype=np.float32)
    flip = (v2 < 0) | ((v2 == 0) & (v1 < 0))
    return np.where(flip, -v1, v1), np.where(flip, -v2, v2)


def axis_angle_deg(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Direction of the blur axis in degrees from the x axis towards +y, in (-90, 90]."""
    v1c, v2c = canonical_lateral(v1, v2)
    return np.degrees(np.arctan2(v1c, v2c))


# ---------------------------------------------------------------- trained model and its files
@dataclass
class TrainedBlurFlow:
    """A trained blur-flow network with everything needed to apply and describe it.

    Attributes
    ----------
    net
        The ``torch.nn.Module`` (eval mode, CPU).
    config
        Its :class:`NetConfig`.
    optics
        The :class:`~napari_micromotion.blurflow.psf.Optics` its training images were made for
        (gives the physical meaning of the normalised outputs).
    params
        The training parameters (a plain dict, as in the sidecar).
    loss_curve
        Eq. 6 training loss of every step.
    validation
        ``[(step, mean R^2), ...]`` on a small held-out validation stream.
    seconds
        Training wall time.
    """

    net: Any
    config: NetConfig
    optics: Any
    params: dict[str, Any] = field(default_factory=dict)
    loss_curve: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0
    n_images: int = 0
    threads: int = 0
    created: str = ""


def save_blur_flow(model: TrainedBlurFlow, path: str | os.PathLike) -> Path:
    """Save as ``<path>.safetensors`` (weights) + ``<path>.json`` (architecture, optics, training record).

    Both files are written to temporaries and renamed into place, the sidecar last.
    """
    from dataclasses import asdict

    from ..detectors.models import package_versions, write_pair

    path = Path(path)
    path = path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")
    check_folder(path.parent)
    tensors = {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}
    meta = {
        "architecture": ARCHITECTURE,
        "architecture_version": ARCHITECTURE_VERSION,
        "net_config": model.config.to_dict(),
        "n_parameters": count_parameters(model.net),
        "outputs": list(OUTPUTS),
        "units": {"v1": "blur_px_per_unit px over the exposure (y)", "v2": "blur_px_per_unit px (x), >= 0",
                  "v3": "defocus waves (axial_unit_um) over the exposure",
                  "z0": "defocus waves (axial_unit_um) from focus at the start of the exposure", "validity": "0-1"},
        "optics": asdict(model.optics),
        "axial_unit_um": model.optics.axial_unit_um,
        "training_params": model.params,
        "seed": model.seed,
        "n_training_images": model.n_images,
        "training_seconds": model.seconds,
        "training_threads": model.threads,
        "loss_curve": [float(v) for v in model.loss_curve],
        "validation_r2": [[int(s), float(r)] for s, r in model.validation],
        "package_versions": package_versions(),
        "created": model.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_pair(path, tensors, meta)
    return path


def load_blur_flow(path: str | os.PathLike) -> TrainedBlurFlow:
    """Load a model written by :func:`save_blur_flow`; other architectures, versions or shapes are refused."""
    from ..detectors.models import load_state, read_pair
    from .psf import Optics

    path = Path(path)
    tensors, meta = read_pair(path, ARCHITECTURE, ARCHITECTURE_VERSION, "a blur-flow model")
    try:
        config = NetConfig.from_dict(meta["net_config"])
        optics = Optics(**meta["optics"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MicromotionError(f"model sidecar of {path.name} lacks a valid field ({exc}).") from None
    net = load_state(build_net(config, seed=None), tensors, path.name, "the blur-flow network its sidecar describes")
    return TrainedBlurFlow(
        net=net, config=config, optics=optics, params=dict(meta.get("training_params", {})),
        loss_curve=[float(v) for v in meta.get("loss_curve", [])],
        validation=[(int(s), float(r)) for s, r in meta.get("validation_r2", [])],
        seconds=float(meta.get("training_seconds", 0.0)), seed=int(meta.get("seed", 0)),
        n_images=int(meta.get("n_training_images", 0)), threads=int(meta.get("training_threads", 0)),
        created=str(meta.get("created", "")))
