"""Synthetic motion-blurred images with ground truth (Shajkofci & Liebling, Eq. 5).

Every image is built as the paper's Eq. 5:

1. a sharp *texture* ``o0`` (no Places data set here, see *Texture source*);
2. ``N`` non-overlapping masks ``m_n`` (a random partition of the field of view);
3. one motion PSF per mask with ``(v1, v2)`` uniform in [-1, 1], ``v3`` and ``z0``
   uniform in [0, 1] (units: :mod:`~napari_micromotion.blurflow.psf`);
4. ``lambda = sum_n h_n * (m_n o0)`` in the Fourier domain (:func:`~.psf.form_image`);
5. camera noise ``i = Poisson(beta * lambda) + |N(0, sigma_bg)|`` with quantum
   efficiency ``beta`` and a zero-mean half-normal background;
6. the validity map ``w`` (see :func:`validity_map`).

Texture source
--------------
The paper blurred natural photographs (Places, 400 000 images) and tested on
fluorescence images of HeLa cells.  Neither is available here, so textures are
procedural, drawn per image from six families:

* ``cells``: fluorescent cells (actin-like fibre bundles, a bright cortex, nuclei,
  puncta) on a flat dark background: the test material of the paper, and the
  source of textureless areas (``w = 0``);
* ``fibres``: anti-aliased random fibres 0.4-1.2 px wide (an actin/microtubule stand-in);
* ``beads``: sparse sub-resolution to 2 px spots (bead samples, Table 1 a-c);
* ``fractal``: 1/f^beta noise, sometimes thresholded or exponentiated (broad-band texture);
* ``polygons``: overlapping random polygons and ellipses (sharp edges at all angles);
* ``photo``: crops of the scikit-image photographs that ship with the package
  (no download), down-sampled 1-2x so that their own blur is below a pixel.

Procedural textures are *exactly sharp* (a blur label is only meaningful if the
object has no blur of its own), cover the spatial frequencies a motion PSF
removes, and cost milliseconds, so training data are generated on the fly and
never stored.  The photographs add natural statistics.  Four scikit-image
images (``cell``, ``immunohistochemistry``, ``hubble_deep_field``, ``retina``)
are kept out of training for the held-out test (:data:`HELD_OUT_PHOTOS`).

Randomness
----------
Every image ``k`` of stream ``s`` is drawn from
``numpy.random.SeedSequence(seed, spawn_key=(s, k))``: deterministic per seed
and index, independent of batch size, and the training, two-zone, cylinder and
held-out streams never share a random draw.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

from ..errors import check
from .psf import BlurParams, Optics, PSFBank, motion_psf, otf_on_grid, psf_bank

__all__ = [
    "HELD_OUT_PHOTOS",
    "STREAM_CYLINDER",
    "STREAM_HELD_OUT",
    "STREAM_TRAIN",
    "STREAM_TWO_ZONE",
    "TEXTURE_FAMILIES",
    "TRAIN_PHOTOS",
    "Batch",
    "Sample",
    "SynthParams",
    "cylinder_sample",
    "dihedral",
    "held_out_sample",
    "iter_training_batches",
    "iter_two_zone",
    "partition",
    "render_sample",
    "texture",
    "training_sample",
    "two_zone_sample",
    "validity_map",
]

TEXTURE_FAMILIES = ("cells", "fibres", "beads", "fractal", "polygons", "photo")
TRAIN_PHOTOS = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                "moon", "page", "rocket", "text")
HELD_OUT_PHOTOS = ("cell", "immunohistochemistry", "hubble_deep_field", "retina")

STREAM_TRAIN, STREAM_TWO_ZONE, STREAM_CYLINDER, STREAM_HELD_OUT, STREAM_TABLE1 = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SynthParams:
    """How training images are drawn (defaults follow the paper where it says; see the module docstring)."""

    optics: Optics = field(default_factory=Optics, metadata={
        "label": "microscope", "unit": "", "help": "Objective, wavelength and pixel size the PSFs are computed for."})
    max_masks: int = field(default=3, metadata={
        "label": "regions per image", "unit": "",
        "help": "Each training image is split into 1 to this many regions, each moving differently."})
    family_weights: tuple[float, ...] = field(default=(0.35, 0.2, 0.1, 0.1, 0.1, 0.15), metadata={
        "label": "texture mix", "unit": "",
        "help": "Relative frequency of the texture families cells, fibres, beads, fractal, polygons, photo."})
    photons: tuple[float, float] = field(default=(300.0, 30000.0), metadata={
        "label": "peak photons", "unit": "photons",
        "help": "Range (log-uniform) of the expected photon count of the brightest structures at full efficiency."})
    beta: tuple[float, float] = field(default=(0.1, 1.0), metadata={
        "label": "quantum efficiency", "unit": "",
        "help": "Range (uniform) of the camera's quantum efficiency beta of Eq. 5 (the paper: 0-1)."})
    background: tuple[float, float] = field(default=(0.0, 0.1), metadata={
        "label": "background noise", "unit": "fraction of peak",
        "help": "Range of the scale of the additive half-normal background, as a fraction of the detected peak."})
    validity_snr: float = field(default=1.0, metadata={
        "label": "texture threshold", "unit": "",
        "help": "A pixel counts as textured (w = 1) where the local fine detail of the sharp sample is at least "
                "this many times the local camera noise."})

    def validate(self) -> None:
        self.optics.validate()
        check(isinstance(self.max_masks, (int, np.integer)) and 1 <= self.max_masks <= 16,
              f"regions per image must be 1-16, got {self.max_masks!r}.")
        check(len(self.family_weights) == len(TEXTURE_FAMILIES) and min(self.family_weights) >= 0
              and sum(self.family_weights) > 0, f"texture mix needs {len(TEXTURE_FAMILIES)} non-negative weights.")
        check(0 < self.photons[0] <= self.photons[1], "the photon range must be positive and increasing.")
        check(0 < self.beta[0] <= self.beta[1] <= 1, "the quantum efficiency range must lie in (0, 1].")
        check(0 <= self.background[0] <= self.background[1], "the background range must be non-negative.")
        check(self.validity_snr >= 0, "the texture threshold must be non-negative.")


@dataclass
class Sample:
    """One synthetic image and its ground truth.

    Attributes
    ----------
    image
        ``(Y, X)`` float32 camera counts.
    truth
        ``(5, Y, X)`` float32: ``v1`` (y), ``v2`` (x), ``v3``, ``z0`` (normalised
        units, signed as drawn) and the validity ``w`` (0 or 1).
    labels
        ``(Y, X)`` int region index.
    params
        ``(n_regions, 4)`` the ``(v1, v2, v3, z0)`` of every region.
    family
        Texture family name.
    """

    image: np.ndarray
    truth: np.ndarray
    labels: np.ndarray
    params: np.ndarray
    family: str = ""


@dataclass
class Batch:
    """A stack of samples: ``images (B, Y, X)`` float32 counts, ``truth (B, 5, Y, X)`` float32."""

    images: np.ndarray
    truth: np.ndarray
    index: int = 0


def stream_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    check(isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}.")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(stream), int(index))))


# ---------------------------------------------------------------- textures
def _gauss_fft(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter with periodic borders in the Fourier domain (cost independent of *sigma*)."""
    fy = np.fft.fftfreq(x.shape[0])[:, None]
    fx = np.fft.rfftfreq(x.shape[1])[None, :]
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (fy ** 2 + fx ** 2))
    return np.fft.irfft2(np.fft.rfft2(x) * g, s=x.shape)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = _gauss_fft(rng.standard_normal(shape), sigma)
    return f / (f.std() + 1e-12)


def _fractal(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * f ** (-beta / 2)
    spec[0, 0] = 0
    x = np.fft.irfft2(spec, s=shape)
    return x / (x.std() + 1e-12)


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _draw_fibres(rng: np.random.Generator, shape: tuple[int, int], n: int, length: tuple[float, float],
                 orientation: np.ndarray | None = None) -> np.ndarray:
    """Random fibres (polylines of 3 slightly bent segments) of random brightness, ~1 px wide.

    Points every 0.5 px along each fibre are splatted bilinearly (sub-pixel exact,
    anti-aliased); crossings add up as overlapping fluorophores do.
    """
    h, w = shape
    if n <= 0:
        return np.zeros(shape)
    y, x = rng.uniform(0, h, n), rng.uniform(0, w, n)
    if orientation is None:
        th = rng.uniform(0, np.pi, n)
    else:
        th = orientation[y.astype(int) % h, x.astype(int) % w] + rng.normal(0, 0.15, n)
    seg = rng.uniform(*length, n) / 3
    amp = rng.uniform(0.3, 1.0, n)
    n_pts = max(2, int(np.ceil(length[1] / 3 / 0.5)))
    frac = np.linspace(0, 1, n_pts, endpoint=False)
    ys, xs, ws = [], [], []
    for _s in range(3):
        th = th + rng.normal(0, 0.15, n)
        dy, dx = seg * np.sin(th), seg * np.cos(th)
        ys.append((y[:, None] + frac[None, :] * dy[:, None]).ravel())        # spacing seg / n_pts <= 0.5 px
        xs.append((x[:, None] + frac[None, :] * dx[:, None]).ravel())
        ws.append(np.repeat(amp * seg / n_pts / 0.5, n_pts))               # brightness per unit length
        y, x = y + dy, x + dx
    ys, xs, ws = np.concatenate(ys), np.concatenate(xs), np.concatenate(ws)
    ok = (ys >= 0) & (ys < h - 1) & (xs >= 0) & (xs < w - 1)
    ys, xs, ws = ys[ok], xs[ok], ws[ok]
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    fy, fx = ys - y0, xs - x0
    img = np.zeros(h * w)
    for oy, ox, wt in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
        img += np.bincount((y0 + oy) * w + x0 + ox, weights=ws * wt, minlength=h * w)
    return img.reshape(shape)


def _cells(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    radius = rng.uniform(14, 45)
    # blobby cell bodies: thresholded smooth noise, covering 25-75 % of the field
    field_ = _smooth_noise(rng, shape, radius * 0.6)
    cover = rng.uniform(0.25, 0.75)
    body = field_ > np.quantile(field_, 1 - cover)
    soft = ndimage.gaussian_filter(body.astype(np.float64), rng.uniform(0.5, 1.5))
    orient = np.arctan2(*np.gradient(_gauss_fft(field_, radius)))  # fibres follow the cell shape
    n_fib = int(rng.uniform(0.5, 2.0) * h * w / 200)
    fib = _draw_fibres(rng, shape, n_fib, (10, 4 * radius), orientation=orient)
    fib = ndimage.gaussian_filter(fib, rng.uniform(0.3, 0.8))
    cortex = np.hypot(*np.gradient(ndimage.gaussian_filter(body.astype(np.float64), 1.5)))
    cortex /= cortex.max() + 1e-12
    puncta = ndimage.gaussian_filter((rng.random(shape) < rng.uniform(0.002, 0.02)).astype(np.float64), 0.7) * 4
    cyto = 0.15 + 0.1 * _unit(_fractal(rng, shape, 2.5))
    img = soft * (cyto + rng.uniform(0.5, 1.5) * fib + 0.6 * cortex + rng.uniform(0, 1) * puncta)
    # dark nuclei holes
    n_nuc = int(cover * h * w / (math.pi * radius ** 2) * 0.7)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n_nuc):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if not body[int(cy), int(cx)]:
            continue
        a, b = radius * rng.uniform(0.25, 0.45), radius * rng.uniform(0.2, 0.35)
        th = rng.uniform(0, np.pi)
        ry = (yy - cy) * math.cos(th) + (xx - cx) * math.sin(th)
        rx = -(yy - cy) * math.sin(th) + (xx - cx) * math.cos(th)
        img *= 1 - 0.8 * ndimage.gaussian_filter(((ry / a) ** 2 + (rx / b) ** 2 < 1).astype(np.float64), 1.0)
    return img


def _fibres(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    n = int(rng.uniform(0.3, 1.5) * shape[0] * shape[1] / 150)
    img = _draw_fibres(rng, shape, n, (15, 120))
    img = ndimage.gaussian_filter(img, rng.uniform(0.3, 0.8))
    return img + rng.uniform(0, 0.3) * _unit(_fractal(rng, shape, 3.0))


def _beads(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    n = int(rng.uniform(0.0015, 0.015) * h * w)
    img = np.zeros(shape)
    ys, xs = rng.uniform(0, h - 1, n), rng.uniform(0, w - 1, n)
    amp = rng.uniform(0.3, 1.0, n)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
        np.add.at(img, (y0 + dy, x0 + dx), amp * wgt)
    sigma = rng.uniform(0.3, 1.5)
    img = ndimage.gaussian_filter(img, sigma) * (2 * math.pi * sigma ** 2)
    return np.minimum(img, 1.5)


def _fractal_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    x = _fractal(rng, shape, rng.uniform(1.0, 3.0))
    kind = rng.integers(3)
    if kind == 1:
        x = (x > rng.uniform(-0.5, 0.5)).astype(np.float64) + 0.3 * x
    elif kind == 2:
        x = np.exp(rng.uniform(0.5, 1.5) * x)
    return _unit(x)


def _polygons(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    from skimage.draw import ellipse, polygon

    h, w = shape
    img = np.full(shape, rng.uniform(0, 0.5))
    for _ in range(int(rng.integers(8, 40))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, 40)
        if rng.random() < 0.5:
            k = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = r * rng.uniform(0.4, 1.0, k)
            rr, cc = polygon(cy + rad * np.sin(ang), cx + rad * np.cos(ang), shape)
        else:
            rr, cc = ellipse(cy, cx, r, r * rng.uniform(0.3, 1), shape, rotation=rng.uniform(0, np.pi))
        img[rr, cc] = rng.uniform(0, 1)
    return img


@lru_cache(maxsize=32)
def _photo(name: str) -> np.ndarray:
    import warnings

    from skimage import color, data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = getattr(data, name)()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = color.rgb2gray(a[..., :3] / 255.0) if a.max() > 1 else color.rgb2gray(a[..., :3])
    else:
        a = a / 255.0 if a.max() > 1 else a
    a.setflags(write=False)
    return a


def _photo_texture(rng: np.random.Generator, shape: tuple[int, int], names: Sequence[str]) -> np.ndarray:
    from skimage.transform import resize

    src = _photo(names[int(rng.integers(len(names)))])
    scale = rng.uniform(1.0, 2.0)
    need = (min(src.shape[0], math.ceil(shape[0] * scale)), min(src.shape[1], math.ceil(shape[1] * scale)))
    y0 = int(rng.integers(0, src.shape[0] - need[0] + 1))
    x0 = int(rng.integers(0, src.shape[1] - need[1] + 1))
    crop = src[y0:y0 + need[0], x0:x0 + need[1]]
    out = resize(crop, shape, order=1, anti_aliasing=True)
    if rng.random() < 0.5:
        out = 1 - out
    return _unit(out) ** rng.uniform(0.6, 2.0)


def texture(rng: np.random.Generator, shape: tuple[int, int], family: str,
            photos: Sequence[str] = TRAIN_PHOTOS) -> np.ndarray:
    """A sharp texture of one family, values in [0, 1], random orientation (see the module docstring)."""
    check(family in TEXTURE_FAMILIES, f"unknown texture family {family!r}; choose one of {', '.join(TEXTURE_FAMILIES)}.")
    square = (max(shape), max(shape))
    if family == "cells":
        t = _cells(rng, square)
    elif family == "fibres":
        t = _fibres(rng, square)
    elif family == "beads":
        t = _beads(rng, square)
    elif family == "fractal":
        t = _fractal_texture(rng, square)
    elif family == "polygons":
        t = _polygons(rng, square)
    else:
        t = _photo_texture(rng, square, photos)
    t = np.rot90(t, int(rng.integers(4)))
    if rng.random() < 0.5:
        t = t[:, ::-1]
    t = _unit(np.ascontiguousarray(t[:shape[0], :shape[1]]))
    if family in ("fractal", "polygons", "photo") and rng.random() < 0.3:
        # flat, textureless areas (empty background between structures)
        occ = _smooth_noise(rng, shape, rng.uniform(8, 30)) > rng.uniform(-0.5, 0.8)
        t = np.where(occ, t, rng.uniform(0, 0.5))
    return t


# ---------------------------------------------------------------- partitions
def partition(rng: np.random.Generator, shape: tuple[int, int], n: int, kind: str | None = None,
              min_fraction: float = 0.0) -> np.ndarray:
    """A random partition of *shape* into at most *n* regions, ``(Y, X)`` int labels 0 .. n - 1.

    ``kind``: ``"voronoi"`` (straight borders: nearest of *n* random points, two
    points give one straight border at a random angle) or ``"smooth"`` (wavy
    borders: arg-max of *n* smooth random fields); default random.  With
    *min_fraction* > 0 partitions are redrawn (up to 50 times) until every region
    covers at least that fraction of the image.
    """
    check(n >= 1, "a partition needs at least one region.")
    if n == 1:
        return np.zeros(shape, dtype=np.int64)
    kind = kind or ("voronoi" if rng.random() < 0.5 else "smooth")
    check(kind in ("voronoi", "smooth"), f"unknown partition kind {kind!r}.")
    h, w = shape
    for _ in range(50):
        if kind == "voronoi":
            pts = rng.uniform(0, 1, (n, 2)) * np.array([h, w])
            yy, xx = np.mgrid[0:h, 0:w]
            d = (yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2
            lab = np.argmin(d, axis=0)
        else:
            sigma = rng.uniform(0.15, 0.4) * max(h, w)
            lab = np.argmax(np.stack([_smooth_noise(rng, shape, sigma) for _ in range(n)]), axis=0)
        counts = np.bincount(lab.ravel(), minlength=n) / lab.size
        if counts.min() >= min_fraction:
            break
    return lab.astype(np.int64)


def validity_map(obj_photons: np.ndarray, background_var: float, snr: float = 1.0) -> np.ndarray:
    """The paper's ``w``: 1 where the *sharp* sample has enough texture to show a blur, else 0.

    The criterion is measurable and independent of the motion: the local RMS of
    the object's fine detail (object minus its Gaussian blur of sigma 2 px,
    RMS over a Gaussian window of sigma 4 px) must reach *snr* times the local
    camera noise (square root of the mean detected photons plus the background
    variance, over the same window).  Flat areas, smooth gradients and areas
    too dim for their detail to rise above the shot noise get ``w = 0``.

    Parameters
    ----------
    obj_photons
        ``(Y, X)`` sharp object in expected detected photons (``beta * lambda`` without blur).
    background_var
        Variance of the additive background (photons^2).
    snr
        Threshold.
    """
    o = np.asarray(obj_photons, dtype=np.float64)
    detail = o - ndimage.gaussian_filter(o, 2.0, mode="reflect")
    rms = np.sqrt(ndimage.gaussian_filter(detail ** 2, 4.0, mode="reflect"))
    noise = np.sqrt(ndimage.gaussian_filter(o, 4.0, mode="reflect") + background_var)
    return (rms >= snr * np.maximum(noise, 1e-12)).astype(np.float32)


# ---------------------------------------------------------------- rendering
def _random_params(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 4)`` draws of the paper: v1, v2 ~ U[-1, 1]; v3, z0 ~ U[0, 1]."""
    return np.column_stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0, 1, n), rng.uniform(0, 1, n)])


def render_sample(rng: np.random.Generator, obj: np.ndarray, labels: np.ndarray, params: np.ndarray,
                  synth: SynthParams, *, margin: int, bank: PSFBank | None = None, family: str = "",
                  photons: float | None = None, beta: float | None = None,
                  background: float | None = None) -> Sample:
    """Eq. 5 on an object and partition that include a *margin* (cropped away after blurring).

    ``obj`` values in [0, 1] are scaled to *photons* at the brightest point
    (drawn from ``synth.photons`` when None), blurred per region, then detected
    with efficiency *beta* and a half-normal background of scale
    ``background * beta * photons``.
    """
    bank = bank if bank is not None else psf_bank(synth.optics)
    photons = photons if photons is not None else float(np.exp(rng.uniform(*np.log(synth.photons))))
    beta = beta if beta is not None else float(rng.uniform(*synth.beta))
    background = background if background is not None else float(rng.uniform(*synth.background))
    offset = rng.uniform(0.0, 0.2) if family not in ("beads",) else rng.uniform(0.0, 0.05)
    o = photons * (offset + (1 - offset) * obj)
    shape = o.shape
    acc = np.zeros((shape[0], shape[1] // 2 + 1), dtype=np.complex128)
    for n, p in enumerate(params):
        sel = labels == n
        if not sel.any():
            continue
        acc += np.fft.rfft2(np.where(sel, o, 0.0)) * otf_on_grid(motion_psf(p, bank=bank), shape)
    lam = np.clip(np.fft.irfft2(acc, s=shape), 0, None)
    sl = (slice(margin, shape[0] - margin), slice(margin, shape[1] - margin))
    lam = lam[sl]
    sigma_bg = background * beta * photons
    counts = rng.poisson(beta * lam) + np.abs(rng.normal(0.0, 1.0, lam.shape)) * sigma_bg
    w = validity_map(beta * o, sigma_bg ** 2 * (1 - 2 / math.pi), synth.validity_snr)[sl]
    lab = labels[sl]
    truth = np.concatenate([params[lab].transpose(2, 0, 1), w[None]]).astype(np.float32)
    return Sample(image=counts.astype(np.float32), truth=truth, labels=lab, params=np.asarray(params, np.float64),
                  family=family)


def margin_px(bank: PSFBank) -> int:
    return bank.size_px // 2 + 1


def training_sample(seed: int, index: int, crop_px: int = 96, synth: SynthParams = SynthParams()) -> Sample:
    """Training image *index* of the stream of *seed* (``crop_px`` square)."""
    rng = stream_rng(seed, STREAM_TRAIN, index)
    bank = psf_bank(synth.optics)
    m = margin_px(bank)
    shape = (crop_px + 2 * m, crop_px + 2 * m)
    wts = np.asarray(synth.family_weights, dtype=np.float64)
    family = TEXTURE_FAMILIES[int(rng.choice(len(wts), p=wts / wts.sum()))]
    obj = texture(rng, shape, family, TRAIN_PHOTOS)
    n = int(rng.integers(1, synth.max_masks + 1))
    labels = partition(rng, shape, n)
    return render_sample(rng, obj, labels, _random_params(rng, n), synth, margin=m, bank=bank, family=family)


def iter_training_batches(seed: int, batch_size: int, crop_px: int = 96, synth: SynthParams = SynthParams(),
                          start: int = 0, n_batches: int | None = None) -> Iterator[Batch]:
    """Stream batches of training images (memory: one batch at a time).

    Batch ``b`` holds images ``(start + b) * batch_size ...`` of the stream, so a
    run is reproducible from its seed and any batch can be regenerated alone.
    """
    synth.validate()
    check(batch_size >= 1 and crop_px >= 32, "batches need at least one image of at least 32 px.")
    b = start
    while n_batches is None or b < start + n_batches:
        samples = [training_sample(seed, b * batch_size + i, crop_px, synth) for i in range(batch_size)]
        yield Batch(images=np.stack([s.image for s in samples]), truth=np.stack([s.truth for s in samples]), index=b)
        b += 1


def dihedral(image: np.ndarray, truth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips/transposes (``k`` = 0-7) of an image ``(Y, X)`` and its truth ``(5, Y, X)``.

    ``k & 1`` flips y (``v1 -> -v1``), ``k & 2`` flips x (``v2 -> -v2``), ``k & 4``
    transposes (``v1 <-> v2``); ``v3``, ``z0`` and ``w`` are unchanged.  The PSF bank
    is rotationally symmetric, so the transformed pair is exactly what Eq. 5 gives for
    the transformed texture and motion (training data augmentation).
    """
    im = np.asarray(image)
    tr = np.array(truth, copy=True)
    if k & 1:
        im, tr = im[::-1], tr[:, ::-1]
        tr[0] = -tr[0]
    if k & 2:
        im, tr = im[:, ::-1], tr[:, :, ::-1]
        tr[1] = -tr[1]
    if k & 4:
        im, tr = im.T, tr.transpose(0, 2, 1)[[1, 0, 2, 3, 4]]
    return np.ascontiguousarray(im), np.ascontiguousarray(tr)


# ---------------------------------------------------------------- evaluation sets
def two_zone_sample(seed: int, index: int, size_px: int = 224, synth: SynthParams = SynthParams(),
                    families: Sequence[str] = ("cells", "fibres"), stream: int = STREAM_TWO_ZONE,
                    photos: Sequence[str] = TRAIN_PHOTOS) -> Sample:
    """The paper's test (Section 3.1): one textured image blurred by two random PSFs in two zones.

    The texture is fluorescence-like (``cells`` or ``fibres`` family, the paper used
    HeLa actin and catenin images), drawn from a stream disjoint from training; the
    two zones are split by a straight line at a random angle, each covering >= 25 %.
    """
    rng = stream_rng(seed, stream, index)
    bank = psf_bank(synth.optics)
    m = margin_px(bank)
    shape = (size_px + 2 * m, size_px + 2 * m)
    family = families[int(rng.integers(len(families)))]
    obj = texture(rng, shape, family, photos)
    inner = (slice(m, m + size_px), slice(m, m + size_px))
    labels = np.zeros(shape, dtype=np.int64)
    for _ in range(50):
        labels = partition(rng, shape, 2, kind="voronoi")
        frac = labels[inner].mean()
        if 0.25 <= frac <= 0.75:
            break
    return render_sample(rng, obj, labels, _random_params(rng, 2), synth, margin=m, bank=bank, family=family)


def iter_two_zone(seed: int, n: int, size_px: int = 224, synth: SynthParams = SynthParams(),
                  families: Sequence[str] = ("cells", "fibres")) -> Iterator[Sample]:
    """*n* two-zone test images (stream disjoint from training)."""
    for k in range(n):
        yield two_zone_sample(seed, k, size_px, synth, families)


def held_out_sample(seed: int, index: int, size_px: int = 224, synth: SynthParams = SynthParams()) -> Sample:
    """A two-zone image on one of the photographs never used in training (:data:`HELD_OUT_PHOTOS`)."""
    return two_zone_sample(seed, index, size_px, synth, families=("photo",), stream=STREAM_HELD_OUT,
                           photos=HELD_OUT_PHOTOS)


def cylinder_sample(seed: int, index: int = 0, size_px: int = 224, synth: SynthParams = SynthParams(), *,
                    speed: float = 1.0, direction_deg: float = 30.0, z0: float = 0.2, n_bands: int = 56,
                    family: str = "cells") -> Sample:
    """The cylinder-flow test (Section 3.2, Fig. 3).

    A thin layer of material on the wall of a cylinder whose axis lies in the
    focal plane turns around that axis.  Across the image (top to bottom) the
    wall's tangent tilts from along the optical axis to parallel to the focal
    plane, so the local velocity ``speed * (cos phi, sin phi)`` (lateral, axial)
    has its lateral part largest at the bottom row (``phi = 0``) and its axial
    part largest at the top row (``phi = pi/2``), as in Fig. 3(b).  The lateral
    part points along *direction_deg* (degrees from the x axis towards +y).  As in
    the paper the wall's curvature across the shallow depth of field is
    neglected: ``z0`` is the same everywhere.  The image is rendered in
    *n_bands* horizontal bands, each with its own PSF.
    """
    rng = stream_rng(seed, STREAM_CYLINDER, index)
    bank = psf_bank(synth.optics)
    m = margin_px(bank)
    shape = (size_px + 2 * m, size_px + 2 * m)
    obj = texture(rng, shape, family)
    rows = np.clip(np.arange(shape[0]) - m, 0, size_px - 1)
    band = np.minimum(rows * n_bands // size_px, n_bands - 1)
    labels = np.repeat(band[:, None], shape[1], axis=1)
    centre_row = (np.arange(n_bands) + 0.5) * size_px / n_bands
    phi = (np.pi / 2) * (1 - centre_row / size_px)          # pi/2 at the top, 0 at the bottom
    a = math.radians(direction_deg)
    lat = speed * np.cos(phi)
    params = np.column_stack([lat * math.sin(a), lat * math.cos(a), speed * np.sin(phi), np.full(n_bands, z0)])
    return render_sample(rng, obj, labels, params, synth, margin=m, bank=bank, family=family)


def bead_image(rng: np.random.Generator, shape: tuple[int, int], n_beads: int = 40) -> np.ndarray:
    """Sparse sub-resolution beads on a black background, values in [0, 1] (Table 1 a-c)."""
    img = np.zeros(shape)
    ys = rng.uniform(8, shape[0] - 9, n_beads).astype(int)
    xs = rng.uniform(8, shape[1] - 9, n_beads).astype(int)
    img[ys, xs] = rng.uniform(0.6, 1.0, n_beads)
    return img


def uniform_sample(obj: np.ndarray, params: Sequence[float], synth: SynthParams = SynthParams(), *, seed: int = 0,
                   photons: float = 2000.0, beta: float = 0.8, background: float = 0.01,
                   family: str = "") -> Sample:
    """Blur a whole object (values in [0, 1], including its margin) by one PSF and add camera noise."""
    bank = psf_bank(synth.optics)
    m = margin_px(bank)
    rng = stream_rng(seed, STREAM_TABLE1, 0)
    labels = np.zeros(obj.shape, dtype=np.int64)
    return render_sample(rng, obj, labels, np.asarray([params], dtype=np.float64), synth, margin=m, bank=bank,
                         family=family, photons=photons, beta=beta, background=background)


def as_blur_params(row: Sequence[float]) -> BlurParams:
    return BlurParams(*(float(x) for x in row[:4]))
