"""The ``learned`` interpolator's network: IFNet-like refinement of the classical bidirectional flow.

RIFE's IFNet (Huang et al. 2022) estimates the intermediate flows coarse to fine with a stack
of small convolutional blocks, each seeing both frames warped by the current estimate, and
predicts a fusion mask; a small network refines the fused frame.  Here, to train on a CPU in
minutes, the flows start from the classical estimate (:mod:`.flows`: ``F_t0``, ``F_t1`` and the
forward-backward visibilities) instead of zero, and two blocks (1/4 and 1/2 resolution) refine
them.  The fusion chooses per pixel between three candidates with softmax weights: frame ``a``
warped to ``t``, frame ``b`` warped to ``t``, and the linear blend ``(1 - t) a + t b`` (where the
flow is not to be trusted, e.g. on textureless or noise-dominated pixels).  A full-resolution
residual network (three thin convolutions) corrects the fused frame.

The last layer of every block and of the residual network starts at zero, and the mask
starts at the classical visibility weights, so the untrained network *is* the ``flow``
interpolator; training only moves it from there.

Inputs are intensities normalised to about [0, 1] (:class:`~.core.Normaliser`), flows in
pixels ``(dy, dx)``, the time ``t`` as a ``(B, 1, 1, 1)`` tensor.  Inside, each sample is
standardised by the mean and SD of its two frames (and the output mapped back), so that what
the network learns does not depend on a recording's contrast; the training loss is measured in
these units too (``extras["scale"]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_net", "count_parameters", "ARCHITECTURE", "ARCHITECTURE_VERSION", "torch_warp", "PAD_TO"]

ARCHITECTURE = "micromotion-interp-ifnet"
ARCHITECTURE_VERSION = 1
#: frame sides are padded to a multiple of this (the coarsest level is 1/4)
PAD_TO = 4
#: log-weight of the linear blend in the untrained fusion (its share ~ e^-6)
LINEAR_LOGIT0 = -6.0
#: added to each sample's intensity SD before dividing by it (normalised units)
CONTRAST_EPS = 1e-3


def torch_warp(img: Any, flow: Any) -> Any:
    """*img* ``(B, C, H, W)`` sampled at ``x + flow(x)`` (``flow`` ``(B, 2, H, W)`` ``(dy, dx)``; bilinear, edges kept)."""
    import torch
    from torch.nn import functional as F

    b, _, h, w = img.shape
    gy = torch.arange(h, dtype=img.dtype, device=img.device).view(1, h, 1)
    gx = torch.arange(w, dtype=img.dtype, device=img.device).view(1, 1, w)
    y = (gy + flow[:, 0]) * (2.0 / max(h - 1, 1)) - 1.0
    x = (gx + flow[:, 1]) * (2.0 / max(w - 1, 1)) - 1.0
    return F.grid_sample(img, torch.stack([x, y], dim=-1), mode="bilinear", padding_mode="border", align_corners=True)


def build_net(width: int = 16) -> Any:
    """The network (a ``torch.nn.Module``); *width* channels in the coarse blocks, *width* // 2 at full resolution."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from .flows import VISIBILITY_FLOOR, VISIBILITY_PX, time_flows

    def conv(ci: int, co: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))

    def zero_last(seq: nn.Sequential) -> nn.Sequential:
        nn.init.zeros_(seq[-1].weight)
        nn.init.zeros_(seq[-1].bias)
        return seq

    class IFBlock(nn.Module):
        """Flow residuals ``(dF_t0, dF_t1)`` and fusion-logit residuals (3) from 12 channels at one scale."""

        def __init__(self, c: int) -> None:
            super().__init__()
            self.body = zero_last(nn.Sequential(conv(12, c), conv(c, c), conv(c, c), nn.Conv2d(c, 7, 3, padding=1)))

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.body(x)

    class InterpNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.width = width
            self.blocks = nn.ModuleList([IFBlock(width), IFBlock(width)])
            self.scales = (4, 2)
            c = max(4, width // 2)
            self.refine = zero_last(nn.Sequential(conv(8, c), conv(c, c), nn.Conv2d(c, 1, 3, padding=1)))

        def forward(self, i0: "torch.Tensor", i1: "torch.Tensor", f01: "torch.Tensor", f10: "torch.Tensor",
                    e0: "torch.Tensor", e1: "torch.Tensor", t: "torch.Tensor") -> tuple["torch.Tensor", dict]:
            h, w = i0.shape[-2:]
            ph, pw = (-h) % PAD_TO, (-w) % PAD_TO
            if ph or pw:   # replicate-pad to a multiple of PAD_TO, crop back at the end
                i0, i1, f01, f10, e0, e1 = (F.pad(v, (0, pw, 0, ph), mode="replicate") for v in (i0, i1, f01, f10, e0, e1))
            # contrast normalisation per sample: corrections and loss relative to the frames' own contrast
            both = 0.5 * (i0 + i1)
            mu = both.mean(dim=(1, 2, 3), keepdim=True)
            sd = both.std(dim=(1, 2, 3), keepdim=True) + CONTRAST_EPS
            i0, i1 = (i0 - mu) / sd, (i1 - mu) / sd
            ft0, ft1 = time_flows(f01, f10, t)
            v0 = torch.exp(-(torch_warp(e0, ft0) / VISIBILITY_PX) ** 2) + VISIBILITY_FLOOR
            v1 = torch.exp(-(torch_warp(e1, ft1) / VISIBILITY_PX) ** 2) + VISIBILITY_FLOOR
            logits = torch.cat([torch.log((1 - t) * v0), torch.log(t * v1),
                                torch.full_like(v0, LINEAR_LOGIT0)], dim=1)
            lin = (1 - t) * i0 + t * i1
            m0 = torch.softmax(logits, dim=1)    # the classical (flow) interpolator's frame, for the uncertainty
            classic = m0[:, 0:1] * torch_warp(i0, ft0) + m0[:, 1:2] * torch_warp(i1, ft1) + m0[:, 2:3] * lin
            tmap = t.expand_as(i0)
            for s, block in zip(self.scales, self.blocks):
                a0, a1 = F.avg_pool2d(i0, s), F.avg_pool2d(i1, s)
                g0, g1 = F.avg_pool2d(ft0, s) / s, F.avg_pool2d(ft1, s) / s
                x = torch.cat([a0, a1, torch_warp(a0, g0), torch_warp(a1, g1), g0, g1,
                               F.avg_pool2d(logits, s), F.avg_pool2d(tmap, s)], dim=1)
                d = F.interpolate(block(x), scale_factor=float(s), mode="bilinear", align_corners=False)
                ft0 = ft0 + s * d[:, 0:2]
                ft1 = ft1 + s * d[:, 2:4]
                logits = logits + d[:, 4:7]
            w0, w1 = torch_warp(i0, ft0), torch_warp(i1, ft1)
            m = torch.softmax(logits, dim=1)
            fused = m[:, 0:1] * w0 + m[:, 1:2] * w1 + m[:, 2:3] * lin
            out = fused + self.refine(torch.cat([i0, i1, w0, w1, lin, fused, m[:, 2:3], tmap], dim=1))
            out = out * sd + mu
            extras = {"w0": w0 * sd + mu, "w1": w1 * sd + mu, "fused": fused * sd + mu, "mask": m, "scale": sd,
                      "classic": classic * sd + mu}
            if ph or pw:
                out = out[..., :h, :w]
                extras = {k: (v[..., :h, :w] if k != "scale" else v) for k, v in extras.items()}
            return out, extras

    return InterpNet()


def count_parameters(net: Any) -> int:
    return int(sum(p.numel() for p in net.parameters()))
