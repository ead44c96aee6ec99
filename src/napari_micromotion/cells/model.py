"""3CNet (Woo & Kim, "Automatic neuronal cell classification in calcium imaging with CNNs") and a compact variant.

Both take the ``(N, 2, 92, 92)`` input of :mod:`.encode` (channel 0 the candidate's image,
channel 1 its trace) and return two scores per candidate, ``(not_cell, cell)``.

:class:`ThreeCNet` is the report's network exactly (section 3.1)::

    INPUT-[CRB x2]-MP-[CRB x2]-MP-CRB-MP-[FC x3]

CRB = 3 x 3 convolution (stride 1, no padding), ReLU and batch normalisation, with 16, 16, 32,
32 and 64 filters; MP = 2 x 2 max pooling, stride 2; FC 5184 -> 5184 -> 72 -> 2 with ReLU
between them.  Spatial sizes 92 -> 90 -> 88 -> 44 -> 42 -> 40 -> 20 -> 18 -> 9, so the last
feature map holds 64 x 9 x 9 = 5184 values; 27.3 M parameters, 99 % of them in the first FC.

:class:`CompactThreeCNet` keeps the five convolutions and replaces the 27 M-parameter head by
global average and max pooling and a 128 -> 32 -> 2 head (~ 40 k parameters): it needs far fewer
examples to train, and the shipped weights stay small.  Two options of it (both off by default):

``shape=True`` (the *hybrid* image + trace + shape model)
    The input has a third channel, the candidate's binary mask (:func:`.encode.encode` with
    ``mask_channel=True``), seen by the convolutions too; and the head also gets
    :data:`N_SHAPE` statistics computed from the input itself, those that decide suite2p's
    classifier and that the convolutions with global pooling cannot measure well: the mask's
    area relative to a cell of the reference diameter (log), its compactness (mean distance
    to its centroid over a disk's), and the trace channel's standard deviation, skewness and
    maximum (activity).  They are batch-normalised and concatenated to the pooled features.
``pool=2``
    The convolutions run on the input average-pooled 2 x 2 (46 x 46; sizes 44, 42, 21, 19, 17,
    8, 6, 3), four times fewer operations; the shape statistics still come from the full input.
"""

from __future__ import annotations

from ..errors import check
from .config import BN_ORDERS

__all__ = ["ThreeCNet", "CompactThreeCNet", "BN_ORDERS", "INPUT_SIZE", "N_SHAPE", "count_parameters", "build",
           "shape_statistics"]

#: the report's input: 92 x 92 pixels, two channels
INPUT_SIZE = 92
#: filters of the five convolutions
_FILTERS = (16, 16, 32, 32, 64)


def _torch():
    import torch

    return torch


def _crb(c_in: int, c_out: int, bn_order: str):
    """One CRB block: 3 x 3 convolution (no padding) then ReLU and batch norm in *bn_order*."""
    nn = _torch().nn
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=0)
    if bn_order == "relu_bn":
        return nn.Sequential(conv, nn.ReLU(inplace=True), nn.BatchNorm2d(c_out))
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


#: shape and activity statistics of the hybrid model's head (see the module's docstring)
N_SHAPE = 5


def shape_statistics(x, reference_cell_px: float):
    """``(N, N_SHAPE)`` statistics of ``(N, 3, H, W)`` inputs (channel 2 the mask), a torch tensor.

    log(area / area of a disk of *reference_cell_px*), compactness - 1, and the trace channel's
    standard deviation, skewness / 5 and maximum / 5.
    """
    torch = _torch()
    m = x[:, 2]
    n, h, w = m.shape
    area = m.sum(dim=(1, 2)).clamp_min(1.0)
    yy = torch.arange(h, dtype=x.dtype).view(1, h, 1)
    xx = torch.arange(w, dtype=x.dtype).view(1, 1, w)
    cy = (m * yy).sum(dim=(1, 2)) / area
    cx = (m * xx).sum(dim=(1, 2)) / area
    dist = torch.sqrt((yy - cy.view(n, 1, 1)) ** 2 + (xx - cx.view(n, 1, 1)) ** 2 + 1e-6)
    mean_d = (m * dist).sum(dim=(1, 2)) / area
    disk = (2.0 / 3.0) * torch.sqrt(area / torch.pi)
    ref = float(reference_cell_px) if reference_cell_px and reference_cell_px > 0 else 24.0
    rel = torch.log(area / (torch.pi * (ref / 2) ** 2))
    t = x[:, 1].reshape(n, -1)
    mu = t.mean(dim=1, keepdim=True)
    sd = t.std(dim=1).clamp_min(1e-6)
    skew = ((t - mu) ** 3).mean(dim=1) / sd ** 3
    return torch.stack([rel, mean_d / disk.clamp_min(1e-6) - 1.0, sd, (skew / 5).clamp(-4, 4),
                        t.amax(dim=1) / 5], dim=1)


def _features(bn_order: str, in_channels: int = 2):
    """The report's convolutional trunk: [CRB x2]-MP-[CRB x2]-MP-CRB-MP, (N, 2, 92, 92) -> (N, 64, 9, 9)."""
    nn = _torch().nn
    check(bn_order in BN_ORDERS, f"bn_order must be one of {', '.join(BN_ORDERS)}, got {bn_order!r}.")
    f = _FILTERS
    return nn.Sequential(
        _crb(in_channels, f[0], bn_order), _crb(f[0], f[1], bn_order), nn.MaxPool2d(2, 2),
        _crb(f[1], f[2], bn_order), _crb(f[2], f[3], bn_order), nn.MaxPool2d(2, 2),
        _crb(f[3], f[4], bn_order), nn.MaxPool2d(2, 2),
    )


def _module_base():
    return _torch().nn.Module


class ThreeCNet(_module_base()):  # type: ignore[misc]
    """The report's 3CNet: five CRB blocks, three max poolings, FC 5184 -> 5184 -> 72 -> 2.

    Parameters
    ----------
    bn_order
        ``"relu_bn"`` (default): Conv-ReLU-BatchNorm, as the report's Figure 1 and its "CRB" name
        draw it; ``"bn_relu"``: Conv-BatchNorm-ReLU, as its text (section 3.1.2, after Ioffe &
        Szegedy) says.  The figure is the default because it lists every layer with its output
        size, i.e. it is what was built; both train equally well here (see the tests and the
        benchmark in :mod:`.pretrain`).
    """

    def __init__(self, bn_order: str = "relu_bn") -> None:
        super().__init__()
        nn = _torch().nn
        self.bn_order = bn_order
        self.features = _features(bn_order)
        n_flat = _FILTERS[-1] * 9 * 9
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_flat, n_flat), nn.ReLU(inplace=True),
                                  nn.Linear(n_flat, 72), nn.ReLU(inplace=True), nn.Linear(72, 2))

    def forward(self, x):
        """``(N, 2, 92, 92)`` -> ``(N, 2)`` scores (not_cell, cell)."""
        return self.head(self.features(x))

    def embed(self, x):
        """The head's input (the last feature maps): ``forward(x) == classifier(embed(x))``."""
        return self.features(x)

    @property
    def classifier(self):
        """The fully connected layers (what fine-tuning adapts)."""
        return self.head


class CompactThreeCNet(_module_base()):  # type: ignore[misc]
    """3CNet's convolutions with global average + max pooling and a small head (128 -> 32 -> 2).

    Parameters
    ----------
    bn_order
        As for :class:`ThreeCNet`.
    hidden
        Width of the hidden fully connected layer.
    shape
        The hybrid model: a third input channel (the mask) and :func:`shape_statistics` in the head.
    pool
        Average pooling of the input before the convolutions (1 or 2).
    reference_cell_px
        Cell diameter in the input's patches (for the relative area; 0: 24 px).
    """

    def __init__(self, bn_order: str = "relu_bn", hidden: int = 32, *, shape: bool = False, pool: int = 1,
                 reference_cell_px: float = 0.0) -> None:
        super().__init__()
        nn = _torch().nn
        check(pool in (1, 2), f"input pooling must be 1 or 2, got {pool!r}.")
        self.bn_order = bn_order
        self.shape = bool(shape)
        self.pool = int(pool)
        self.reference_cell_px = float(reference_cell_px)
        self.in_channels = 3 if shape else 2
        self.features = _features(bn_order, self.in_channels)
        c = _FILTERS[-1]
        n_in = 2 * c + (N_SHAPE if shape else 0)
        self.shape_norm = nn.BatchNorm1d(N_SHAPE) if shape else None
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def forward(self, x):
        """``(N, C, 92, 92)`` -> ``(N, 2)`` scores (not_cell, cell)."""
        return self.head(self.embed(x))

    def embed(self, x):
        """The head's input (pooled features and normalised statistics): ``forward(x) == classifier(embed(x))``."""
        torch = _torch()
        xin = torch.nn.functional.avg_pool2d(x, self.pool) if self.pool > 1 else x
        f = self.features(xin)
        parts = [f.mean(dim=(2, 3)), f.amax(dim=(2, 3))]
        if self.shape:
            parts.append(self.shape_norm(shape_statistics(x, self.reference_cell_px)))
        return torch.cat(parts, dim=1)

    @property
    def classifier(self):
        """The fully connected head: what fine-tuning adapts."""
        return self.head


def build(arch: str, bn_order: str = "relu_bn", *, shape: bool = False, pool: int = 1, reference_cell_px: float = 0.0):
    """``"exact"`` -> :class:`ThreeCNet`, ``"compact"`` -> :class:`CompactThreeCNet` (with its options)."""
    check(arch in ("exact", "compact"), f"arch must be 'exact' or 'compact', got {arch!r}.")
    if arch == "exact":
        check(not shape and pool == 1, "the exact 3CNet has no shape statistics or input pooling.")
        return ThreeCNet(bn_order)
    return CompactThreeCNet(bn_order, shape=shape, pool=pool, reference_cell_px=reference_cell_px)


def count_parameters(net) -> int:
    """Number of trainable parameters of a torch module."""
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))
