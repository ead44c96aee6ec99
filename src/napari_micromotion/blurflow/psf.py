"""Image formation of a moving thin manifold (Shajkofci & Liebling, ISBI 2021, Eqs. 1-4).

The object is a thin sheet ``o(s, s3) = o0(s) delta(s3 - z(s))`` (Eq. 1).  During
one camera exposure every point of it moves along a straight 3D line; the camera
integrates the widefield 3D PSF along that line (Eqs. 2-3), so each point is
imaged through a *motion-blur PSF*

.. math::  h_{\\Delta t}(s) = \\frac{1}{\\Delta t}\\int_0^{\\Delta t} h_{3D}(s - u\\,(t - \\Delta t/2),\\; z_0 + v_3 t)\\,dt

(Eq. 4; we take the lateral position relative to *mid*-exposure, so a blurred
structure stays centred on where it was half-way through the exposure and the
label maps line up with the image; the paper's start-of-exposure reference only
adds a shift of ``u/2``).

Units (the paper's normalised parameters, made physical here)
-------------------------------------------------------------
``v1, v2`` (lateral, ``v_y, v_x``)
    1.0 = :attr:`Optics.blur_px_per_unit` pixels of blur over the exposure
    (default 12 px = 7.8 um at 0.65 um/px, about six Airy radii of the default
    10x/0.3 objective).  The paper draws ``v1, v2`` uniformly in [-1, 1].
``v3`` (axial) and ``z0`` (depth of the manifold at the start of the exposure)
    1.0 = one *defocus wave*, :attr:`Optics.axial_unit_um`: the distance from
    focus at which the wavefront error at the pupil edge is one wavelength,
    ``lambda / (n - sqrt(n^2 - NA^2))`` = 13.0 um for the default optics, about
    two classical depths of field ``lambda n / NA^2`` (6.7 um).  The paper draws
    ``v3`` and ``z0`` uniformly in [0, 1].  Why not one depth of field: within
    half a depth of field of focus a widefield PSF hardly changes, so with that
    unit most of the paper's [0, 1] range would be invisible in the image.
    A scalar defocus-only PSF is symmetric in depth, so ``z`` and ``-z`` look
    alike; only ``|z|`` matters.

The 3D PSF is a scalar pupil-function model: a circular pupil of radius
``NA / lambda`` carrying the Zernike defocus term ``c4 * sqrt(3) (2 rho^2 - 1)``
with ``c4 = W20 / (2 sqrt 3)`` and ``W20 = z (n - sqrt(n^2 - NA^2))`` (the exact
pupil-edge optical path difference of a defocus ``z``).  The field is computed
on a 3x finer grid and the intensity is binned 3x3 into camera pixels (pixel
integration).  Defocused PSFs are precomputed once per :class:`Optics` at fine
depth steps and kept as OTFs; a motion PSF is then a sum of depth-interpolated
OTFs times sub-pixel shift phases, which costs about a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import check

__all__ = [
    "BlurParams",
    "Optics",
    "PSFBank",
    "defocus_psf",
    "form_image",
    "motion_psf",
    "psf_bank",
]


@dataclass(frozen=True)
class Optics:
    """A widefield microscope and the physical meaning of the normalised blur parameters.

    The defaults describe the paper's set-up: a 10x/0.3 air objective, ~600 nm
    emission, 6.5 um camera pixels (0.65 um in the sample).
    """

    na: float = field(default=0.3, metadata={
        "label": "numerical aperture", "unit": "",
        "help": "Numerical aperture (NA) of the objective, e.g. 0.3 for a 10x/0.3 air objective."})
    wavelength_um: float = field(default=0.6, metadata={
        "label": "emission wavelength", "unit": "um",
        "help": "Wavelength of the detected light, in micrometres (0.6 for a red dye such as Alexa 635)."})
    refractive_index: float = field(default=1.0, metadata={
        "label": "immersion refractive index", "unit": "",
        "help": "Refractive index of the objective's immersion medium (1.0 air, 1.33 water, 1.518 oil)."})
    pixel_size_um: float = field(default=0.65, metadata={
        "label": "pixel size", "unit": "um",
        "help": "Size of one camera pixel in the sample, in micrometres (camera pixel / magnification)."})
    blur_px_per_unit: float = field(default=12.0, metadata={
        "label": "lateral blur per unit", "unit": "px",
        "help": "Length of the motion streak, in pixels, that a lateral speed of 1.0 (normalised) leaves "
                "during one exposure."})

    def validate(self) -> None:
        check(0 < self.na < self.refractive_index,
              f"the numerical aperture must be positive and below the refractive index, got NA {self.na!r}.")
        check(0.2 <= self.wavelength_um <= 2.0, f"the wavelength must be 0.2-2 um, got {self.wavelength_um!r}.")
        check(1.0 <= self.refractive_index <= 2.0, f"the refractive index must be 1-2, got {self.refractive_index!r}.")
        check(self.pixel_size_um > 0 and math.isfinite(self.pixel_size_um),
              f"the pixel size must be positive, got {self.pixel_size_um!r}.")
        check(self.pixel_size_um <= self.wavelength_um / (2 * self.na) * 1.5,
              f"pixels of {self.pixel_size_um} um are far too coarse for NA {self.na} at {self.wavelength_um} um.")
        check(0 < self.blur_px_per_unit <= 64, f"blur_px_per_unit must be 0-64 px, got {self.blur_px_per_unit!r}.")

    @property
    def axial_unit_um(self) -> float:
        """Micrometres of defocus per normalised axial unit: one defocus wave ``lambda / (n - sqrt(n^2 - NA^2))``."""
        n, na = self.refractive_index, self.na
        return self.wavelength_um / (n - math.sqrt(n * n - na * na))

    @property
    def depth_of_field_um(self) -> float:
        """The classical depth of field ``lambda n / NA^2`` (about half an axial unit)."""
        return self.wavelength_um * self.refractive_index / self.na ** 2

    @property
    def waves_per_axial_unit(self) -> float:
        """Pupil-edge wavefront error (in wavelengths) of one axial unit of defocus: 1 by definition."""
        n, na = self.refractive_index, self.na
        return self.axial_unit_um * (n - math.sqrt(n * n - na * na)) / self.wavelength_um

    @property
    def cutoff_cycles_per_px(self) -> float:
        """Incoherent cut-off frequency ``2 NA / lambda`` in cycles per pixel."""
        return 2 * self.na / self.wavelength_um * self.pixel_size_um


@dataclass(frozen=True)
class BlurParams:
    """The local motion of the manifold during one exposure (normalised units, see module docstring).

    Attributes
    ----------
    v1, v2
        Lateral displacement over the exposure along y (rows) and x (columns);
        1.0 = :attr:`Optics.blur_px_per_unit` px.
    v3
        Axial displacement over the exposure; 1.0 = :attr:`Optics.axial_unit_um`.
    z0
        Distance of the manifold from the focal plane at the start of the exposure,
        in the same axial units.
    """

    v1: float = 0.0
    v2: float = 0.0
    v3: float = 0.0
    z0: float = 0.0

    def as_array(self) -> np.ndarray:
        return np.array([self.v1, self.v2, self.v3, self.z0], dtype=np.float64)


# ---------------------------------------------------------------- defocused PSFs
_OVERSAMPLE = 3          # field computed on a 3x finer grid, intensity binned 3x3 (odd: centres stay aligned)


def defocus_psf(optics: Optics, z: float, size_px: int = 65) -> np.ndarray:
    """The 2D widefield PSF at defocus *z* (axial units), ``(size_px, size_px)``, sum 1, centred.

    Parameters
    ----------
    optics
        Microscope description.
    z
        Defocus in normalised axial units (1.0 = :attr:`Optics.axial_unit_um`).
    size_px
        Odd grid size in camera pixels; the PSF's centre is pixel ``size_px // 2``.
    """
    return _defocus_stack(optics, np.array([float(z)]), size_px)[0]


def _defocus_stack(optics: Optics, z_units: np.ndarray, size_px: int) -> np.ndarray:
    optics.validate()
    check(size_px % 2 == 1 and size_px >= 9, f"the PSF grid must be odd and >= 9 px, got {size_px!r}.")
    m = size_px * _OVERSAMPLE
    dx = optics.pixel_size_um / _OVERSAMPLE
    f = np.fft.fftfreq(m, d=dx)                                   # cycles / um
    fy, fx = np.meshgrid(f, f, indexing="ij")
    rho = np.sqrt(fy ** 2 + fx ** 2) / (optics.na / optics.wavelength_um)   # 1 at the pupil edge
    # circular pupil with a one-sample anti-aliased rim (a hard square-grid edge leaves star-shaped artefacts)
    rim_samples = (optics.na / optics.wavelength_um) * m * dx
    pupil = np.clip((1.0 - rho) * rim_samples + 0.5, 0.0, 1.0)
    zernike_defocus = math.sqrt(3.0) * (2 * rho ** 2 - 1) * pupil
    w20_per_unit_um = optics.waves_per_axial_unit * optics.wavelength_um     # pupil-edge OPD of one unit
    # centre the PSF on the middle of the fine grid (phase ramp = shift by m // 2 samples)
    k = np.arange(m)
    ramp = np.exp(-2j * np.pi * np.add.outer(k, k) * (m // 2) / m) * pupil
    out = np.empty((len(z_units), size_px, size_px), dtype=np.float64)
    for i, z in enumerate(z_units):
        c4_um = z * w20_per_unit_um / (2 * math.sqrt(3.0))
        field_ = np.fft.ifft2(ramp * np.exp(2j * np.pi / optics.wavelength_um * c4_um * zernike_defocus))
        inten = np.abs(field_) ** 2
        binned = inten.reshape(size_px, _OVERSAMPLE, size_px, _OVERSAMPLE).sum(axis=(1, 3))
        out[i] = binned / binned.sum()
    return out


@dataclass(frozen=True)
class PSFBank:
    """Precomputed OTFs of defocused PSFs at depths ``0, dz, 2 dz, ... z_max`` (axial units).

    Build one with :func:`psf_bank` (cached per optics, grid size and depth range).
    """

    optics: Optics
    size_px: int
    dz: float
    z_max: float
    otf: np.ndarray          # (n_z, size, size // 2 + 1) complex64, PSFs with their centre at [0, 0]

    def otf_at(self, z: np.ndarray) -> np.ndarray:
        """Depth-interpolated OTFs for the depths *z* (any sign, ``|z|`` is used), ``(len(z), size, size//2+1)``, a new array."""
        zz = np.clip(np.abs(np.asarray(z, dtype=np.float64)) / self.dz, 0, self.otf.shape[0] - 1)
        i0 = np.minimum(np.floor(zz).astype(np.int64), self.otf.shape[0] - 2)
        a = (zz - i0).astype(np.float32)[:, None, None]
        out = self.otf[i0] * (1 - a)
        out += self.otf[i0 + 1] * a
        return out


@lru_cache(maxsize=8)
def psf_bank(optics: Optics = Optics(), size_px: int = 65, dz: float = 0.01, z_max: float = 4.0) -> PSFBank:
    """Defocused PSFs (as OTFs) of *optics* from focus to *z_max* axial units in steps of *dz*.

    Takes ~0.5 s the first time per argument set, then comes from a cache.
    """
    check(0 < dz <= 0.1 and 0 < z_max <= 10, "the PSF bank needs 0 < dz <= 0.1 and 0 < z_max <= 10 axial units.")
    n_z = math.ceil(z_max / dz) + 1
    zs = np.arange(n_z) * dz
    stack = _defocus_stack(optics, zs, size_px)
    otf = np.fft.rfft2(np.fft.ifftshift(stack, axes=(1, 2)), axes=(1, 2)).astype(np.complex64)
    otf.setflags(write=False)
    return PSFBank(optics=optics, size_px=size_px, dz=dz, z_max=float(zs[-1]), otf=otf)


# ---------------------------------------------------------------- motion PSFs
def motion_psf(params: BlurParams | Sequence[float], optics: Optics = Optics(), *, size_px: int = 65,
               n_time: int | None = None, bank: PSFBank | None = None) -> np.ndarray:
    """The motion-blur PSF ``h_dt`` of Eq. 4 on a ``(size_px, size_px)`` grid, sum 1, centred.

    Parameters
    ----------
    params
        :class:`BlurParams` or ``(v1, v2, v3, z0)`` in normalised units.
    optics
        Microscope description (ignored when *bank* is given).
    size_px
        Odd grid size in pixels (ignored when *bank* is given).
    n_time
        Time samples over the exposure; default enough for steps of <= 0.25 px and
        <= 0.02 axial units (at least 32).
    bank
        A :class:`PSFBank` to use (default: the cached one for *optics* and *size_px*).

    Notes
    -----
    The trajectory is ``(v1, v2) * (t - 1/2)`` laterally (in px after scaling by
    ``blur_px_per_unit``) and ``z0 + v3 t`` axially, ``t`` in [0, 1].  Sub-pixel
    positions are bilinear shifts (applied in the Fourier domain, see
    :func:`_bilinear_shift`), depths are linearly interpolated in the PSF bank.
    """
    bank = bank if bank is not None else psf_bank(optics, size_px)
    v1, v2, v3, z0 = (float(x) for x in (params.as_array() if isinstance(params, BlurParams) else params))
    check(all(math.isfinite(x) for x in (v1, v2, v3, z0)), "blur parameters must be finite numbers.")
    ppu = bank.optics.blur_px_per_unit
    length_px = math.hypot(v1, v2) * ppu
    half = bank.size_px // 2
    z_end = max(abs(z0), abs(z0 + v3))
    check(length_px / 2 <= half - 2, f"a blur of {length_px:.1f} px does not fit a {bank.size_px} px PSF grid.")
    check(z_end <= bank.z_max + 1e-9, f"a depth of {z_end:.2f} axial units is beyond the PSF bank's {bank.z_max:.2f}.")
    if n_time is None:
        n_time = max(32, math.ceil(4 * length_px) + 1, math.ceil(abs(v3) / 0.02) + 1)
    t = (np.arange(n_time) + 0.5) / n_time
    dy, dx = v1 * ppu * (t - 0.5), v2 * ppu * (t - 0.5)
    otf = bank.otf_at(z0 + v3 * t)
    n = bank.size_px
    otf *= _bilinear_shift(np.fft.fftfreq(n), dy)[:, :, None]
    otf *= _bilinear_shift(np.fft.rfftfreq(n), dx)[:, None, :]
    h = np.fft.irfft2(otf.mean(axis=0, dtype=np.complex128), s=(n, n))
    h = np.fft.fftshift(np.clip(h, 0, None))        # clips only rounding errors (~1e-17)
    return h / h.sum()


def _bilinear_shift(freq: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Transfer functions ``(len(shift), len(freq))`` of bilinear sub-pixel shifts along one axis.

    Shifting by ``n + f`` (integer ``n``, fraction ``f``) with the two-tap kernel
    ``(1 - f, f)`` at ``(n, n + 1)``: a non-negative kernel, so unlike an exact
    Fourier shift of the (slightly aliased) pixel-sampled PSF it leaves no ringing.
    It adds at most ``f (1 - f) <= 1/4`` px^2 of variance (1/6 on average along a streak).
    """
    n = np.floor(shift)
    f = (shift - n)[:, None]
    e1 = np.exp(-2j * np.pi * freq)[None, :]
    return (np.exp(-2j * np.pi * freq[None, :] * n[:, None]) * ((1 - f) + f * e1)).astype(np.complex64)


def form_image(obj: np.ndarray, labels: np.ndarray, params: Sequence[BlurParams | Sequence[float]],
               optics: Optics = Optics(), *, size_px: int = 65, bank: PSFBank | None = None) -> np.ndarray:
    """Noise-free image of a manifold whose regions move differently (Eqs. 4 and 5 without noise).

    ``sum_n h_n * (m_n o0)`` with ``m_n = (labels == n)``: each region is blurred by
    its own motion PSF in the Fourier domain.  The object is extended by mirroring
    beyond its border (by half the PSF grid), so edges do not wrap around.

    Parameters
    ----------
    obj
        ``(Y, X)`` sharp object intensity ``o0``.
    labels
        ``(Y, X)`` integer region index ``n`` of every pixel, 0 .. len(params) - 1.
    params
        The :class:`BlurParams` (or ``(v1, v2, v3, z0)``) of every region.

    Returns
    -------
    ``(Y, X)`` float64 expected image.
    """
    obj = np.asarray(obj, dtype=np.float64)
    labels = np.asarray(labels)
    check(obj.ndim == 2 and labels.shape == obj.shape, "object and labels must be 2D arrays of the same shape.")
    check(labels.min() >= 0 and labels.max() < len(params), "every label must index one of the blur parameters.")
    bank = bank if bank is not None else psf_bank(optics, size_px)
    pad = bank.size_px // 2 + 1
    o = np.pad(obj, pad, mode="reflect")
    lab = np.pad(labels, pad, mode="reflect")
    shape = o.shape
    acc = np.zeros((shape[0], shape[1] // 2 + 1), dtype=np.complex128)
    for n, p in enumerate(params):
        if not np.any(lab == n):
            continue
        acc += np.fft.rfft2(np.where(lab == n, o, 0.0)) * otf_on_grid(motion_psf(p, bank=bank), shape)
    out = np.fft.irfft2(acc, s=shape)[pad:pad + obj.shape[0], pad:pad + obj.shape[1]]
    return np.clip(out, 0, None)


def otf_on_grid(h: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of a centred PSF embedded (centre at [0, 0], wrapped) in a grid of *shape*."""
    n = h.shape[0]
    c = n // 2
    grid = np.zeros(shape, dtype=np.float64)
    idx_y = (np.arange(n) - c) % shape[0]
    idx_x = (np.arange(n) - c) % shape[1]
    grid[np.ix_(idx_y, idx_x)] = h
    return np.fft.rfft2(grid)
