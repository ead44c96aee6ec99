"""3D motion from one motion-blurred frame: apply a trained blur-flow network to an image.

:func:`predict_blur_flow` returns a :class:`BlurFlowResult` whose ``flow`` is a
``(5, Y, X)`` float32 array:

========  ==========================================================================
channel   meaning
========  ==========================================================================
``v_y``   lateral blur along y (rows) over the exposure, in **pixels**
``v_x``   lateral blur along x (columns) over the exposure, in pixels, always >= 0:
          a straight blur has no visible direction, only an axis, so the sign is
          fixed by ``v_x >= 0`` (``v_x == 0`` gives ``v_y >= 0``)
``v_z``   axial motion over the exposure, in *defocus waves* (the defocus at which the
          pupil-edge wavefront error is one wavelength, about two depths of field
          ``lambda n / NA^2``; :attr:`BlurFlowResult.axial_unit_um` micrometres per
          unit, 13.0 um for the shipped model's 10x/0.3 objective at 600 nm)
``z0``    distance from focus at the start of the exposure, same axial unit
          (defocus is symmetric: above and below focus look alike)
validity  0-1: how confident the network is that the area has enough texture to
          measure a blur (the paper's ``w``); ignore the other channels where it
          is low
========  ==========================================================================

To turn pixels of blur into a speed, divide by the exposure time (and multiply
by the pixel size for micrometres): ``speed_um_per_s = v_px * pixel_size_um / exposure_s``.

Large images are processed in overlapping tiles (blended with a smooth weight,
so no seams), each cut on the network's stride grid with 160 px of the image
around it as context, so the tile size changes memory and time, not the maps
(within 0.003 px); the intensity is normalised once for the whole image (robust
percentiles), so tiles see the same scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..device import torch_threads
from ..errors import MicromotionError, check
from ..progress import Progress, drive
from ..schema import param
from .model import TrainedBlurFlow, decode_output, load_blur_flow, normalise_image

__all__ = [
    "CHANNELS",
    "BlurFlowParams",
    "BlurFlowResult",
    "check_image",
    "default_model_path",
    "iter_predict_blur_flow",
    "load_default_model",
    "predict_blur_flow",
]

#: names of the channels of :attr:`BlurFlowResult.flow`
CHANNELS = ("v_y", "v_x", "v_z", "z0", "validity")
DEFAULT_WEIGHTS = "blur_flow.safetensors"
MIN_SIDE_PX = 16
#: image around each tile the network is given as context (px): with 160 px, 64 px tiles give the whole image's
#: lateral blur within 0.003 px (96 px: up to 1.7 px; the local-spectrum front end pools over 32 px and the U-Net
#: reaches further); tested in tests/blurflow/test_predict.py
CONTEXT_PX = 160


@dataclass(frozen=True)
class BlurFlowParams:
    """Settings of a blur-flow prediction."""

    tile_px: int = param(512, label="tile size", unit="px", min=64, max=8192, flag="--tile", advanced=True,
                         help="Large images are processed in square tiles of this size (smaller tiles use less memory; each "
                              "also reads 160 px of context around it, so the maps do not depend on it).")
    overlap_px: int = param(64, label="tile overlap", unit="px", min=0, max=2048, flag="--tile-overlap",
                            advanced=True, help="Overlap between neighbouring tiles; their predictions are blended across it so no "
                                 "seams appear.")
    threads: int = param(0, label="CPU threads", min=0, max=256, flag="--threads", advanced=True,
                         help="Threads for PyTorch (0: leave PyTorch's setting).")

    def validate(self) -> None:
        check(isinstance(self.tile_px, (int, np.integer)) and 64 <= self.tile_px <= 8192,
              f"the tile size must be 64-8192 px, got {self.tile_px!r}.")
        check(isinstance(self.overlap_px, (int, np.integer)) and 0 <= self.overlap_px <= self.tile_px // 4,
              f"the tile overlap must be 0 to a quarter of the tile size, got {self.overlap_px!r}.")
        check(isinstance(self.threads, (int, np.integer)) and 0 <= self.threads <= 256, "threads must be 0-256.")


@dataclass
class BlurFlowResult:
    """The predicted motion of every pixel during the exposure.

    Attributes
    ----------
    flow
        ``(5, Y, X)`` float32: ``v_y, v_x`` (px of blur), ``v_z, z0`` (defocus waves), validity (0-1).
    pixel_size_um, axial_unit_um, blur_px_per_unit
        The optics the model was trained for (pixel size, micrometres per axial unit,
        pixels of blur per normalised lateral unit).
    model
        Architecture, training seed and creation time of the model used.
    params
        The :class:`BlurFlowParams` used, as a dict.
    seconds
        Wall time of the prediction.
    """

    flow: np.ndarray
    pixel_size_um: float
    axial_unit_um: float
    blur_px_per_unit: float
    model: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def v_y_px(self) -> np.ndarray:
        return self.flow[0]

    @property
    def v_x_px(self) -> np.ndarray:
        return self.flow[1]

    @property
    def v_z(self) -> np.ndarray:
        return self.flow[2]

    @property
    def z0(self) -> np.ndarray:
        return self.flow[3]

    @property
    def validity(self) -> np.ndarray:
        return self.flow[4]

    @property
    def lateral_px(self) -> np.ndarray:
        """Length of the lateral blur streak in pixels."""
        return np.hypot(self.flow[0], self.flow[1])

    @property
    def axis_deg(self) -> np.ndarray:
        """Axis of the lateral blur in degrees from the x axis towards +y, in (-90, 90]."""
        return np.degrees(np.arctan2(self.flow[0], self.flow[1]))

    @property
    def v_z_um(self) -> np.ndarray:
        """Axial motion over the exposure in micrometres (unsigned: towards or away from focus)."""
        return self.flow[2] * self.axial_unit_um

    @property
    def normalised(self) -> np.ndarray:
        """``(5, Y, X)`` in the paper's normalised units (lateral divided by ``blur_px_per_unit``)."""
        out = self.flow.copy()
        out[:2] /= self.blur_px_per_unit
        return out


def default_model_path() -> Path:
    """Where the shipped model lives (package data)."""
    return Path(str(resources.files("napari_micromotion.blurflow").joinpath("weights", DEFAULT_WEIGHTS)))


def load_default_model() -> TrainedBlurFlow:
    """The shipped blur-flow model (trained on synthetic images for a 10x/0.3 objective, 0.65 um pixels)."""
    path = default_model_path()
    if not path.is_file():
        raise MicromotionError(f"the default blur-flow model is not installed ({path} is missing); "
                               "train one with `python -m napari_micromotion.blurflow.train --out PATH`.")
    return load_blur_flow(path)


def check_image(image: Any) -> np.ndarray:
    """The image as ``(Y, X)`` float32 (leading singleton axes dropped), or a one-sentence error."""
    try:
        a = np.asarray(image)
    except Exception:  # noqa: BLE001 - anything unconvertible is a user error
        raise MicromotionError("the image could not be read as an array.") from None
    check(a.size > 0, "the image is empty.")
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    check(a.ndim == 2, f"blur flow needs one 2D image (Y, X), got an array of shape {tuple(a.shape)}; "
                       "pick a single frame and channel first.")
    check(a.dtype.kind in "iuf", "the image holds true/false values (a mask), not intensities." if a.dtype.kind == "b"
          else f"the image must hold real numbers, got dtype {a.dtype}.")
    check(min(a.shape) >= MIN_SIDE_PX, f"the image is {a.shape[0]} x {a.shape[1]} px; blur flow needs at least "
                                       f"{MIN_SIDE_PX} x {MIN_SIDE_PX} px.")
    a = a.astype(np.float32, copy=False)
    check(bool(np.isfinite(a).all()), "the image contains NaN or infinite values; replace them before blur flow.")
    return a


def _taper(n: int, overlap: int, lo_edge: bool, hi_edge: bool) -> np.ndarray:
    """1D blending weight of a tile: raised-cosine ramps over *overlap* px on sides that touch another tile."""
    w = np.ones(n, dtype=np.float32)
    if overlap > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)).astype(np.float32)
        if not lo_edge:
            w[:overlap] = ramp
        if not hi_edge:
            w[-overlap:] = ramp[::-1]
    return w


def _grid_starts(n: int, tile: int, overlap: int, grid: int) -> list[int]:
    """Tile starts on multiples of *grid* covering ``0..n`` (*n*, *tile* multiples of *grid*), overlapping by at
    least *overlap*."""
    if n <= tile:
        return [0]
    step = max(grid, (tile - overlap) // grid * grid)
    return sorted(set(list(range(0, n - tile, step)) + [n - tile]))


def _textured(img: np.ndarray, window_px: int = 7) -> np.ndarray:
    """``(Y, X)`` float32, 0 where the image is flat over *window_px* (a blank or clipped area), else 1.

    Flat means a local SD below 1e-4 of the image's 1-99 percentile range: no blur can be
    read there, whatever the network says (it has never seen a perfectly flat patch).
    """
    from scipy import ndimage

    a = np.asarray(img, np.float64)
    lo, hi = np.percentile(a, [1, 99])
    span = max(float(hi - lo), float(np.ptp(a)), 1e-12)
    mean = ndimage.uniform_filter(a, window_px)
    var = ndimage.uniform_filter(a * a, window_px) - mean * mean
    return (np.sqrt(np.maximum(var, 0.0)) > 1e-4 * span).astype(np.float32)


def iter_predict_blur_flow(image: np.ndarray, model: TrainedBlurFlow | None = None,
                           params: BlurFlowParams = BlurFlowParams()) -> Generator[Progress, None, BlurFlowResult]:
    """Predict the blur flow of one image; a generator of :class:`Progress` returning a :class:`BlurFlowResult`."""
    import torch

    params.validate()
    t0 = time.perf_counter()
    img = check_image(image)
    model = model if model is not None else load_default_model()
    net = model.net.eval()
    multiple = 16 * model.config.unshuffle
    x_full = normalise_image(img)
    ny, nx = x_full.shape
    # the whole image, reflect-padded to a multiple of the network's stride (and at least its context); tiles are
    # cut from it on that stride's grid, with the image around them as context, so that each tile's strided and
    # pooled features fall on the whole image's grid: tiling changes the maps by float rounding only
    ph = max(-(-ny // multiple) * multiple, 2 * multiple) - ny
    pw = max(-(-nx // multiple) * multiple, 2 * multiple) - nx
    py0, px0 = ph // 2, pw // 2
    padded = np.pad(x_full, ((py0, ph - py0), (px0, pw - px0)), mode="symmetric")
    hp, wp = padded.shape
    tile = max(multiple * 2, params.tile_px // multiple * multiple)
    overlap = min(params.overlap_px, tile // 4)
    ys, xs = _grid_starts(hp, tile, overlap, multiple), _grid_starts(wp, tile, overlap, multiple)
    margin = -(-CONTEXT_PX // multiple) * multiple if len(ys) * len(xs) > 1 else 0
    acc = np.zeros((5, hp, wp), dtype=np.float32)
    wsum = np.zeros((hp, wp), dtype=np.float32)
    with torch_threads(params.threads):        # 0: leave PyTorch's setting
        n_tiles, done = len(ys) * len(xs), 0
        yield Progress("blur flow", 0.0, f"{n_tiles} tile(s)")
        for y0 in ys:
            for x0 in xs:
                h, w = min(tile, hp - y0), min(tile, wp - x0)
                a0, a1 = max(0, y0 - margin), min(hp, y0 + h + margin)
                b0, b1 = max(0, x0 - margin), min(wp, x0 + w + margin)
                with torch.inference_mode():
                    window = np.ascontiguousarray(padded[a0:a1, b0:b1])
                    raw = net(torch.from_numpy(window)[None, None]).numpy()[0]
                raw = raw[:, y0 - a0:y0 - a0 + h, x0 - b0:x0 - b0 + w]
                wy = _taper(h, overlap, y0 == 0, y0 + h >= hp)
                wx = _taper(w, overlap, x0 == 0, x0 + w >= wp)
                wt = wy[:, None] * wx[None, :]
                # blend in the network's continuous output space (a, b, v3, z0, logit), decode once at the end
                acc[:, y0:y0 + h, x0:x0 + w] += raw * wt
                wsum[y0:y0 + h, x0:x0 + w] += wt
                done += 1
                yield Progress("blur flow", done / n_tiles, f"tile {done}/{n_tiles}")
    acc, wsum = acc[:, py0:py0 + ny, px0:px0 + nx], wsum[py0:py0 + ny, px0:px0 + nx]
    flow = decode_output(acc / np.maximum(wsum, 1e-12))
    flow[4] *= _textured(img)                # no texture at all (blank or saturated): nothing to measure there
    ppu = float(model.optics.blur_px_per_unit)
    flow[:2] *= ppu
    from dataclasses import asdict

    return BlurFlowResult(
        flow=flow.astype(np.float32), pixel_size_um=float(model.optics.pixel_size_um),
        axial_unit_um=float(model.optics.axial_unit_um), blur_px_per_unit=ppu,
        model={"architecture": "shajkofci2021-blurflow-unet", "seed": model.seed, "created": model.created,
               "n_training_images": model.n_images},
        params=asdict(params), seconds=time.perf_counter() - t0)


def predict_blur_flow(image: np.ndarray, model: TrainedBlurFlow | None = None, *, tile_px: int = 512,
                      overlap_px: int = 64, threads: int = 0,
                      progress: Callable[[Progress], None] | None = None) -> BlurFlowResult:
    """Predict the 3D motion of every pixel from one motion-blurred image.

    Parameters
    ----------
    image
        ``(Y, X)`` image of any real dtype (leading singleton axes are dropped).
    model
        A :class:`~napari_micromotion.blurflow.model.TrainedBlurFlow`; default the shipped model.
    tile_px, overlap_px
        Tiling of large images (see :class:`BlurFlowParams`).
    threads
        PyTorch CPU threads (0: PyTorch's setting).

    Returns
    -------
    :class:`BlurFlowResult` with ``flow`` ``(5, Y, X)``: ``v_y, v_x`` in px of blur, ``v_z, z0`` in
    defocus waves (``result.axial_unit_um`` micrometres each), validity 0-1.
    """
    params = BlurFlowParams(tile_px=tile_px, overlap_px=overlap_px, threads=threads)
    return drive(iter_predict_blur_flow(image, model, params), progress=progress)
