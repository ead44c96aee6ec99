"""The denoising network: a compact 2D U-Net with a heteroscedastic head and Monte-Carlo dropout.

Input: the ``2N`` neighbouring frames (relative to the mean image when there is a prior),
the mean image and the SD image (see :func:`napari_micromotion.denoise.data.make_inputs`).
Four levels (full, 1/2, 1/4, 1/8 resolution) with additive skip connections keep the work
at full resolution to two thin convolutions, so that a 256 x 256 frame takes ~15 ms on two
CPU cores; the coarse levels see ~70 px around each pixel (a whole cell).

Output per pixel: the change ``delta`` added to the base (the mean image, or the mean of the
neighbours without a prior) and the SD of the clean signal ``sigma`` (softplus), both in
units of the noise SD.  Dropout sits before the 1 x 1 head only: Monte-Carlo passes
re-run the head on the same features with new dropout masks, so they cost almost nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_unet", "count_parameters", "ARCHITECTURE", "ARCHITECTURE_VERSION", "SIGMA_MIN"]

ARCHITECTURE = "micromotion-denoise-unet"
ARCHITECTURE_VERSION = 1
#: smallest clean-signal SD the head can give (noise-SD units)
SIGMA_MIN = 1e-3


def build_unet(in_channels: int, width: int = 8, dropout: float = 0.1) -> Any:
    """The network (a ``torch.nn.Module``); *width* channels at full resolution, 2x, 4x, 4x below."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(ci: int, co: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))

    c0, c1, c2, c3 = width, 2 * width, 4 * width, 4 * width

    class LeanUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.in_channels = in_channels
            self.width = width
            self.p_drop = float(dropout)
            self.e0 = conv(in_channels, c0)
            self.e1 = conv(c0, c1)
            self.e2 = nn.Sequential(conv(c1, c2), conv(c2, c2))
            self.e3 = nn.Sequential(conv(c2, c3), conv(c3, c3))
            self.u3 = nn.Conv2d(c3, c2, 1)
            self.d2 = conv(c2, c2)
            self.u2 = nn.Conv2d(c2, c1, 1)
            self.d1 = conv(c1, c1)
            self.u1 = nn.Conv2d(c1, c0, 1)
            self.d0 = conv(c0, c0)
            self.head = nn.Conv2d(c0, 2, 1)

        def features(self, x: "torch.Tensor") -> "torch.Tensor":
            x0 = self.e0(x)
            x1 = self.e1(F.avg_pool2d(x0, 2))
            x2 = self.e2(F.avg_pool2d(x1, 2))
            x3 = self.e3(F.avg_pool2d(x2, 2))
            y = self.d2(F.interpolate(self.u3(x3), scale_factor=2.0, mode="nearest") + x2)
            y = self.d1(F.interpolate(self.u2(y), scale_factor=2.0, mode="nearest") + x1)
            return self.d0(F.interpolate(self.u1(y), scale_factor=2.0, mode="nearest") + x0)

        def head_out(self, feat: "torch.Tensor", drop: bool) -> tuple["torch.Tensor", "torch.Tensor"]:
            """``(delta, sigma)`` from the features; *drop*: a dropout mask (training, MC passes)."""
            if drop and self.p_drop > 0:
                feat = F.dropout(feat, self.p_drop, training=True)
            out = self.head(feat)
            return out[:, 0], F.softplus(out[:, 1]) + SIGMA_MIN

        def forward(self, x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
            return self.head_out(self.features(x), self.training)

    net = LeanUNet()
    with torch.no_grad():   # start as "the base, with a modest SD": delta 0
        net.head.weight.mul_(0.1)
        net.head.bias.zero_()
    return net


def count_parameters(net: Any) -> int:
    return int(sum(p.numel() for p in net.parameters()))
