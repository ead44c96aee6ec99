"""Dense displacement of video frames against one reference frame (optical flow, on OpenCV).

Three engines behind one interface, all on OpenCV (``opencv-python-headless``):

``"lk"`` (default)
    Iterative Lucas-Kanade against a *fixed* reference: the reference's gradients and
    structure tensor (Gaussian window ``window_px``) are computed once; each frame is
    warped onto the reference with the current estimate (``cv2.remap``, cubic) and the
    2x2 normal equations are solved per pixel, a few Gauss-Newton steps, started from
    the previous frame's field (consecutive frames differ by little) or, without one,
    coarse to fine over an image pyramid.  The first step at full resolution is
    strain-corrected (``strain_correction``, :meth:`FlowEstimator._unstrain`): a window
    reads a displacement that changes across it as its gradient-energy-weighted mean, and
    that first-order bias is taken out.  It is the estimator scikit-image's
    ``optical_flow_ilk`` implements, specialised to a fixed reference: measured on
    synthetic warps it is as accurate as Farneback and several times faster (see
    ``benchmarks/bench_flow.py``).
``"farneback"``
    ``cv2.calcOpticalFlowFarneback`` (polynomial expansion), the estimator mps_motion
    and MUSCLEMOTION-like tools use; warm-started like ``lk``.
``"dis"``
    ``cv2.DISOpticalFlow`` (dense inverse search, medium preset) on 8-bit images.

:meth:`FlowEstimator.smooth` takes the noise out pixel by pixel with an adaptive scale
(``smooth_px``, ``smooth_confidence``): the field is averaged over Gaussian neighbourhoods
from 2 px up to ``smooth_px`` (octave steps), and each pixel keeps the largest
neighbourhood whose average agrees with every smaller one's within their noise (the
intersection-of-confidence-intervals rule of Katkovnik's adaptive smoothing).  Where the
motion is uniform the widest average wins; at a contracting cell's edge, or where the field
bends, a smaller one does, whatever the size of the motion.  The noise is measured on the
video (:meth:`FlowStream.noise_px`).  On the project's simulator the median error fell, against
the earlier sigma filter with a fixed 0.25 px gate, from 0.024 to 0.020 px at 0.05-0.2 px and
from 19.1 / 18.1 / 14.2 / 10.8 % to 18.5 / 14.9 / 10.3 / 7.2 % at 0.2-0.5 / 0.5-1 / 1-2 / 2-5 px
(``benchmarks/bench_flow.py``: 400 frames, seed 4).  It is for per-pixel
products (maps, arrows): it also spreads a cell's small displacements onto its neighbours, so
region averages (contraction traces) and per-pixel scores are taken from the fields as measured.

Conventions: a field ``d`` of shape ``(2, Y, X)`` holds ``(dy, dx)`` in pixels such that
the content at ``x`` in the reference is at ``x + d(x)`` in the frame (``frame(x + d) ~
reference(x)``).  Each frame is scaled to the reference's mean intensity first, so slow
illumination changes do not read as motion.  With ``remove_drift``, :class:`FlowStream`
subtracts the stage drift: the field's spatial median per frame, measured on a coarse
copy of the video and median-filtered over ``drift_window_s`` (a contraction moves the
median too, but only for a fraction of a second, so it is not taken for drift).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MicromotionError, check
from ..schema import param

__all__ = ["FlowParams", "FlowEstimator", "ENGINES", "most_relaxed_frame", "require_cv2", "FlowStream", "reference_image",
           "smoothing_scales", "texture_noise_factor", "structure_tensor"]

ENGINES = ("lk", "farneback", "dis")
#: how the lk engine starts a frame without an estimate (FlowParams.start)
STARTS = ("pyramid", "dis", "auto")
#: with start "auto", a frame whose coarsest pyramid estimate moves this far (px, 99th percentile) starts from DIS
DIS_FROM_PX = 1.0
#: the smallest frame side (px) optical flow measures on
MIN_FRAME_PX = 8
#: Gaussian pre-smoothing of the frames for the ``lk`` engine, in pixels
PRESMOOTH_PX = 1.0
#: median length of the difference of two 2D vectors with independent unit-SD Gaussian components, sqrt(4 ln 2)
RAYLEIGH_MEDIAN = math.sqrt(4.0 * math.log(2.0))
#: Gaussian SD (px) of the smoothing before the gradient of an update is read (strain correction)
STRAIN_SMOOTH_PX = 1.0
#: the strain correction blends in from this displacement (px), fully from twice it: below, its own noise
#: outweighs the bias it removes (on the simulator it cost 0.5 points at 0.2-0.5 px and 0.0007 px below)
STRAIN_FROM_PX = 0.3
#: ratio of neighbouring smoothing scales
SCALE_STEP = 2.0



def structure_tensor(image: np.ndarray, window_px: float) -> tuple[np.ndarray, ...]:
    """``(gx, gy, sxx, syy, sxy)``: *image*'s gradients (Sobel, per pixel) and their products averaged over a
    Gaussian window of SD *window_px*: what a Lucas-Kanade displacement is read from (:class:`FlowEstimator`)."""
    cv2 = require_cv2()
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    sxx = cv2.GaussianBlur(gx * gx, (0, 0), window_px)
    syy = cv2.GaussianBlur(gy * gy, (0, 0), window_px)
    sxy = cv2.GaussianBlur(gx * gy, (0, 0), window_px)
    return gx, gy, sxx, syy, sxy


def texture_noise_factor(reference: np.ndarray, window_px: float) -> np.ndarray:
    """``(Y, X)`` float32: how much noisier each pixel's displacement is than the typical (median) pixel's, from
    the texture of *reference* alone.

    A displacement is read from the image's gradients within a window (Gaussian SD *window_px*); its noise goes
    as ``1 / sqrt(lambda_min)``, the smaller eigenvalue of the window's gradient structure tensor (the
    weakest direction: no texture, or stripes in one direction only; OpenCV's ``calcOpticalFlowPyrLK`` drops
    points on the same eigenvalue, ``minEigThreshold``).  The factor is ``sqrt(median(lambda_min) /
    lambda_min)``, capped at 1000: 1 for a typical pixel, 3 where the displacement is three times as noisy.
    """
    cv2 = require_cv2()
    ref = cv2.GaussianBlur(np.asarray(reference, np.float32), (0, 0), PRESMOOTH_PX)
    _, _, sxx, syy, sxy = structure_tensor(ref, window_px)
    lam = 0.5 * (sxx + syy - np.sqrt((sxx - syy) ** 2 + 4.0 * sxy * sxy))
    typical = float(np.median(lam))
    if not typical > 0:
        return np.ones(ref.shape, np.float32)
    return np.sqrt(typical / np.maximum(lam, typical * 1e-6)).astype(np.float32)


def require_cv2() -> Any:
    """OpenCV, or a one-sentence error saying how to install it."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise MicromotionError("optical flow needs OpenCV: pip install opencv-python-headless.") from None
    return cv2


def _magnitude(d: np.ndarray) -> np.ndarray:
    """Length of every vector of a ``(2, Y, X)`` field."""
    return require_cv2().magnitude(np.ascontiguousarray(d[0], np.float32), np.ascontiguousarray(d[1], np.float32))


def smoothing_scales(smooth_px: float) -> list[float]:
    """Gaussian SDs of the averages :meth:`FlowEstimator.smooth` chooses from, narrowest first.

    *smooth_px* halved down to 2 px (or *smooth_px* alone below that).  A 1 px average was
    measured to change nothing (a field measured over a 4 px window is already smooth on that
    scale), and half-octave steps 0.7 points at 1-2 px, for twice the cost.
    """
    out = [float(smooth_px)]
    while out[-1] / SCALE_STEP >= 2.0 - 1e-6:
        out.append(out[-1] / SCALE_STEP)
    return out[::-1]


_ICI: Any = None
_UNSTRAIN: Any = None
_ICI_LOCK = threading.Lock()


def _unstrain_kernel() -> Any:
    """``u -= w (A_x de/dx + A_y de/dy)`` in place, per pixel (numba; see :meth:`FlowEstimator._unstrain`).

    ``de/dx``, ``de/dy`` of the smoothed update ``(ex, ey)`` are central differences
    (edge pixels: one-sided); *strain* holds ``A_x``, ``A_y`` as
    :meth:`FlowEstimator._strain_operator` returns them.  ``w`` is 0 where the field after
    the update, ``(dx + ux, dy + uy)``, is at most *start* px long, 1 from twice that.
    """
    global _UNSTRAIN
    with _ICI_LOCK:
        if _UNSTRAIN is None:
            import numba

            @numba.njit(cache=True, nogil=True, fastmath=True)
            def unstrain(ex, ey, strain, ux, uy, dx, dy, start):  # pragma: no cover
                ny, nx = ex.shape
                half = np.float32(0.5)
                inv = np.float32(1.0 / start)
                start2 = np.float32(start * start)
                for y in range(ny):
                    y0, y1 = max(y - 1, 0), min(y + 1, ny - 1)
                    hy = half if y1 - y0 == 2 else np.float32(1.0 if y1 > y0 else 0.0)
                    ax0, ax1, ax4, ax5 = strain[0, y], strain[1, y], strain[4, y], strain[5, y]
                    ay2, ay3, ay6, ay7 = strain[2, y], strain[3, y], strain[6, y], strain[7, y]
                    exr, eyr, exa, exb, eya, eyb = ex[y], ey[y], ex[y0], ex[y1], ey[y0], ey[y1]
                    uxr, uyr, dxr, dyr = ux[y], uy[y], dx[y], dy[y]
                    for x in range(nx):
                        tx, ty = dxr[x] + uxr[x], dyr[x] + uyr[x]
                        m2 = tx * tx + ty * ty
                        if m2 <= start2:
                            continue          # small motion: left as measured (the correction carries noise)
                        w = min(math.sqrt(m2) * inv - np.float32(1.0), np.float32(1.0))
                        if 0 < x < nx - 1:
                            exx = (exr[x + 1] - exr[x - 1]) * half
                            eyx = (eyr[x + 1] - eyr[x - 1]) * half
                        elif nx > 1:
                            x0, x1 = max(x - 1, 0), min(x + 1, nx - 1)
                            exx = exr[x1] - exr[x0]
                            eyx = eyr[x1] - eyr[x0]
                        else:
                            exx = eyx = np.float32(0.0)
                        exy = (exb[x] - exa[x]) * hy
                        eyy = (eyb[x] - eya[x]) * hy
                        uxr[x] -= w * (ax0[x] * exx + ax1[x] * eyx + ax4[x] * exy + ax5[x] * eyy)
                        uyr[x] -= w * (ay2[x] * exx + ay3[x] * eyx + ay6[x] * exy + ay7[x] * eyy)

            _UNSTRAIN = unstrain
    return _UNSTRAIN


def _ici_kernel() -> Any:
    """The per-pixel interval intersection (numba, compiled once per process and cached on disk)."""
    global _ICI
    with _ICI_LOCK:
        if _ICI is None:
            import numba

            @numba.njit(cache=True, nogil=True, fastmath=True)
            def ici(d0, d1, averages, scales, sd, window, fine_window, fine_from, out0, out1):  # pragma: no cover
                n_s, ny, nx = averages.shape[0], d0.shape[0], d0.shape[1]
                plain = np.empty(n_s)              # the interval half-widths at the plain window
                for k in range(n_s):
                    plain[k] = sd * window / math.sqrt(window * window + scales[k] * scales[k])
                from2 = fine_from * fine_from
                for y in range(ny):
                    for x in range(nx):
                        a0, a1 = d0[y, x], d1[y, x]
                        # the window this pixel was measured over (FlowEstimator._refine_large) and its noise
                        m2 = a0 * a0 + a1 * a1
                        w = window
                        if fine_window > 0 and m2 > from2:
                            b = min(math.sqrt(m2) / fine_from - 1.0, 1.0)
                            w = window - b * (window - fine_window)
                        h = sd * window / w
                        lo0, hi0, lo1, hi1 = a0 - h, a0 + h, a1 - h, a1 + h
                        for k in range(n_s):
                            hk = plain[k] if w == window else h * w / math.sqrt(w * w + scales[k] * scales[k])
                            e0, e1 = averages[k, y, x, 0], averages[k, y, x, 1]
                            lo0, hi0 = max(lo0, e0 - hk), min(hi0, e0 + hk)
                            lo1, hi1 = max(lo1, e1 - hk), min(hi1, e1 + hk)
                            if lo0 > hi0 or lo1 > hi1:
                                break
                            a0, a1 = e0, e1
                        out0[y, x], out1[y, x] = a0, a1

            _ICI = ici
    return _ICI


@dataclass(frozen=True)
class FlowParams:
    """How displacement fields are estimated."""

    engine: str = param("lk", label="flow engine", choices=ENGINES, flag="--flow-engine", advanced=True,
                        help="lk: Lucas-Kanade against the fixed reference (fast, accurate for the small "
                             "displacements of beating cells); farneback: OpenCV's polynomial expansion (what "
                             "mps_motion uses); dis: OpenCV's dense inverse search.")
    window_px: float = param(4.0, label="flow window", unit="px", min=1.0, max=50.0, flag="--flow-window",
                             advanced=True, decimals=1,
                             help="Size (Gaussian SD) of the neighbourhood each displacement is averaged over: larger "
                                  "is less noisy but blurs the motion at cell borders.")
    fine_window_px: float = param(1.5, label="window for large motion", unit="px", min=0.0, max=50.0,
                                  flag="--flow-fine-window", advanced=True, decimals=2,
                                  help="Where a pixel moves by more than the next setting, its displacement is refined "
                                       "over this smaller window (Gaussian SD): large motions stand well above the "
                                       "noise, and a small window keeps the edges of contracting cells sharp (0: off).")
    fine_from_px: float = param(1.0, label="large motion from", unit="px", min=0.01, max=100.0,
                                flag="--flow-fine-from", advanced=True, decimals=2,
                                help="Displacements from this size on blend towards the small window's estimate, "
                                     "reaching it at twice this size.")
    strain_correction: bool = param(True, label="strain correction", flag="--flow-strain-correction", advanced=True,
                                    help="Correct the bias a window takes from a displacement that changes across it "
                                         "(a contracting cell is compressed, not shifted): the first refinement step "
                                         "at full resolution subtracts the part of its update that the field's local "
                                         "gradient and the texture's uneven weight within the window explain (from "
                                         "0.3 px of displacement on, fully from 0.6 px).")
    iterations: int = param(2, label="flow iterations", min=1, max=50, flag="--flow-iterations", advanced=True,
                            help="Refinement steps per frame.")
    levels: int = param(3, label="pyramid levels", min=1, max=6, flag="--flow-levels", advanced=True,
                        help="Coarse-to-fine levels for frames without a good starting estimate (large motion).")
    start: str = param("pyramid", label="starting estimate", choices=STARTS, flag="--flow-start", advanced=True,
                       help="How the lk engine starts a frame: pyramid: coarse to fine over an image pyramid; dis: "
                            "from OpenCV's dense inverse search (a patch search), refined by lk; auto: dis where the "
                            "pyramid's coarsest level sees more than 1 px of motion.  On the shared sarcomere clip "
                            "(7-9 px) dis or auto left far fewer pixels at a wrong striation; on stripes with little "
                            "other texture the patch search can take the neighbouring stripe everywhere.")
    reference_frames: int = param(5, label="frames in the reference", min=1, max=101, flag="--reference-frames",
                                  advanced=True,
                                  help="The reference image is the mean of this many frames centred on the reference "
                                       "frame: less noise in every displacement, and no false dip at the reference "
                                       "frame itself (1: the frame alone).")
    smooth_px: float = param(8.0, label="noise smoothing", unit="px", min=0.0, max=100.0, flag="--flow-smooth",
                             advanced=True, decimals=1,
                             help="Widest neighbourhood (Gaussian SD) the field is averaged over to remove its noise; "
                                  "each pixel keeps the widest average that agrees with the narrower ones, so the "
                                  "edges of moving cells stay sharp (0: off).")
    smooth_confidence: float = param(2.0, label="smoothing confidence", unit="SD", min=0.1, max=100.0,
                                     flag="--flow-smooth-confidence", advanced=True, decimals=2,
                                     help="How far (in SDs of the measured noise) two neighbourhood averages may differ "
                                          "and still count as agreeing: larger smooths more, also across real "
                                          "changes of the motion.")
    remove_drift: bool = param(True, label="remove drift", flag="--remove-drift",
                               help="Subtract the slow translation of the whole field (stage drift), so it does not "
                                    "count as contraction.")
    drift_window_s: float = param(2.0, label="drift window", unit="s", min=0.1, max=1e4, flag="--drift-window",
                                  advanced=True, decimals=2,
                                  help="The drift is the whole field's median displacement, median-filtered over this "
                                       "long: slower than the beats, so contractions are not taken for drift.")

    def validate(self) -> None:
        check(self.engine in ENGINES, f"flow engine must be one of {', '.join(ENGINES)}, got {self.engine!r}.")
        check(self.start in STARTS, f"the starting estimate must be one of {', '.join(STARTS)}, got {self.start!r}.")
        check(self.window_px > 0 and math.isfinite(self.window_px), "the flow window must be a positive size.")
        check(self.fine_window_px >= 0 and math.isfinite(self.fine_window_px),
              "the window for large motion must be 0 or a positive size.")
        check(self.fine_from_px > 0 and math.isfinite(self.fine_from_px), "'large motion from' must be positive.")
        check(self.smooth_px >= 0 and math.isfinite(self.smooth_px), "the noise smoothing must be 0 or a positive size.")
        check(self.smooth_confidence > 0 and math.isfinite(self.smooth_confidence),
              "the smoothing confidence must be positive.")


class FlowEstimator:
    """Displacement of frames against one reference image (see the module docstring).

    Parameters
    ----------
    reference
        ``(Y, X)`` reference image (any dtype).
    params
        :class:`FlowParams`.
    """

    def __init__(self, reference: np.ndarray, params: FlowParams = FlowParams()) -> None:
        params.validate()
        cv2 = require_cv2()
        self.cv2 = cv2
        self.params = params
        ref = np.asarray(reference, np.float32)
        check(ref.ndim == 2 and min(ref.shape) >= MIN_FRAME_PX,
              f"optical flow needs frames of at least {MIN_FRAME_PX} x {MIN_FRAME_PX} px.")
        # the brightness a frame is matched to, taken before the pre-smoothing as the frame's own mean is: the
        # smoothing moves an image's mean at its borders (0.03 % on the shared microbundle recording), and a frame
        # identical to the reference then read as moving (up to 0.06 px, 0.16 px on the drift's coarse copy)
        self.mean = float(ref.mean()) or 1.0
        ref = self._smooth(ref)
        self.shape = ref.shape
        #: frames are brought to the reference's brightness (lamp flicker) by a gain, if one applies (gain_applies)
        self.gain_matched = gain_applies(ref)
        self.ref = ref
        ny, nx = ref.shape
        self.grid_y, self.grid_x = np.mgrid[0:ny, 0:nx].astype(np.float32)
        self._levels: list[tuple[np.ndarray, ...]] = []
        self._fine: tuple[np.ndarray, ...] | None = None
        if params.engine == "lk":
            level = ref
            for _ in range(params.levels):
                # only full resolution takes a final step (the strain correction's)
                self._levels.append(self._lk_prepare(level, params.window_px, final=not self._levels))
                if min(level.shape) < 32:
                    break
                level = cv2.pyrDown(level)
            if params.fine_window_px > 0:
                self._fine = self._lk_prepare(ref, params.fine_window_px, final=True)
        if params.engine == "dis" or (params.engine == "lk" and params.start != "pyramid"):
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            self._lo, self._hi = (float(v) for v in np.percentile(ref, [0.1, 99.9]))
            if self._hi <= self._lo:
                self._hi = self._lo + 1.0
            self._ref8 = self._to8(ref)

    # ------------------------------------------------------------ engines
    def _smooth(self, img: np.ndarray) -> np.ndarray:
        """Light pre-smoothing (SD ``PRESMOOTH_PX``): shot noise would otherwise dominate sub-pixel gradients."""
        if self.params.engine != "lk":
            return img
        return self.cv2.GaussianBlur(img, (0, 0), PRESMOOTH_PX)

    def _lk_prepare(self, ref: np.ndarray, s: float, final: bool = False) -> tuple[Any, ...]:
        """The reference's gradients and inverse structure tensor over a Gaussian window of SD *s* (px).

        *final*: a level whose first step is strain-corrected (full resolution), which also
        needs :meth:`_strain_operator`.
        """
        gx, gy, sxx, syy, sxy = structure_tensor(ref, s)
        det = sxx * syy - sxy * sxy
        eps = 1e-6 * float(np.median(sxx + syy)) ** 2 + 1e-12   # textureless pixels: no update
        inv = 1.0 / np.maximum(det, eps)
        ny, nx = ref.shape
        gyy, gxx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        sxx_i, syy_i, sxy_i = sxx * inv, syy * inv, sxy * inv
        strain = (self._strain_operator(gx, gy, s, sxx_i, syy_i, sxy_i)
                  if final and self.params.strain_correction else None)
        return ref, gx, gy, sxx_i, syy_i, sxy_i, gyy, gxx, s, strain

    def _strain_operator(self, gx: np.ndarray, gy: np.ndarray, s: float, sxx_i: np.ndarray, syy_i: np.ndarray,
                         sxy_i: np.ndarray) -> np.ndarray:
        """``(8, Y, X)``: how a field's gradient biases one Lucas-Kanade update, per pixel.

        Over a window ``w`` the update is ``H^-1 sum_u w(u) g g^T e(x + u)``, ``e`` the
        displacement still to be found and ``H = sum w g g^T`` the structure tensor.  With
        ``e(x + u) ~ e(x) + u_x de/dx + u_y de/dy`` that is ``e(x) + H^-1 (M_x de/dx + M_y de/dy)``,
        ``M_k = sum_u w(u) u_k g g^T``: zero where the texture's gradient energy sits evenly
        around the pixel, but not at a cell's textured rim or a bright spot off-centre, where
        a compressed field reads as the displacement a pixel or two away.  Returned are the
        entries of ``H^-1 M_x`` and ``H^-1 M_y`` (rows x, y; columns x, y).
        """
        cv2 = self.cv2
        r = int(math.ceil(4 * s))
        u = np.arange(-r, r + 1, dtype=np.float64)
        w = np.exp(-0.5 * (u / s) ** 2)
        w /= w.sum()
        w1, uw = w.astype(np.float32), (u * w).astype(np.float32)
        out = np.empty((8, *gx.shape), np.float32)
        for k, (kx, ky) in enumerate(((uw, w1), (w1, uw))):            # the moments along x, then along y
            mxx, mxy, myy = (cv2.sepFilter2D(p, -1, kx, ky, borderType=cv2.BORDER_REFLECT)
                             for p in (gx * gx, gx * gy, gy * gy))
            # H^-1 = [[syy, -sxy], [-sxy, sxx]] / det in (x, y) order
            out[4 * k + 0] = syy_i * mxx - sxy_i * mxy               # row x, column x
            out[4 * k + 1] = syy_i * mxy - sxy_i * myy               # row x, column y
            out[4 * k + 2] = sxx_i * mxy - sxy_i * mxx               # row y, column x
            out[4 * k + 3] = sxx_i * myy - sxy_i * mxy               # row y, column y
        return out

    def _lk_level(self, level: tuple[np.ndarray, ...], frame: np.ndarray, d: np.ndarray, iterations: int,
                  final: bool = True, refine: bool = True) -> np.ndarray:
        """*iterations* Gauss-Newton steps from *d* on one level; *final*: at full resolution.

        *refine*: *d* is an estimate already (a coarser level's, the previous frame's, the
        main window's), so the first step is a small correction and the strain correction
        applies to it; not from zero, where one step's update is far from linear.
        """
        cv2 = self.cv2
        ref, gx, gy, sxx_i, syy_i, sxy_i, gyy, gxx, s, strain = level
        for k in range(iterations):
            # cheap cubic warps to converge, the last step with Lanczos (its sub-pixel bias is ~10x smaller)
            interp = cv2.INTER_LANCZOS4 if k == iterations - 1 and final else cv2.INTER_CUBIC
            warped = cv2.remap(frame, gxx + d[1], gyy + d[0], interp, borderMode=cv2.BORDER_REFLECT)
            err = warped - ref
            bx = cv2.GaussianBlur(gx * err, (0, 0), s)
            by = cv2.GaussianBlur(gy * err, (0, 0), s)
            ux = sxy_i * by - syy_i * bx
            uy = sxy_i * bx - sxx_i * by
            if k == 0 and final and refine and strain is not None:
                ux, uy = self._unstrain(ux, uy, strain, d)
            d[1] += ux
            d[0] += uy
        return d

    def _unstrain(self, ux: np.ndarray, uy: np.ndarray, strain: np.ndarray, d: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """An update with its first-order window bias taken out (see :meth:`_strain_operator`).

        The gradient of the displacement still to be found is read from the update itself
        (lightly smoothed: ``STRAIN_SMOOTH_PX``).  Only the first step at full resolution is
        corrected: it carries nearly all of the update, the later ones only its remainder.
        The gradient read from the update is itself biased (where the texture sits to
        one side the update hardly changes), so a quarter to a half of the bias goes (a
        one-sided texture, ``tests/kernels/test_flow.py``), not all of it; a second pass or a
        wider smoothing gained little more.  At a simulated cell's
        rim, where the field bends within the window, the true field's gradient did not
        help (0.5-1 px: 14.2 % against 12.8 % with the update's own, every 8th frame): there the correction
        works as a sharpening of the update weighted by the texture, beyond the first-order
        term it is derived from.  On the project's
        simulator (``benchmarks/bench_flow.py``, noisy frames) the median error went from
        14.9 / 10.3 / 7.2 % to 12.7 / 8.8 / 6.5 % at 0.5-1 / 1-2 / 2-5 px, 0.2-0.5 px and
        below unchanged (the correction blends in from ``STRAIN_FROM_PX``: applied at every
        displacement it cost 0.5 points at 0.2-0.5 px and 0.0007 px below), and on its
        noise-free frames from 16.3 / 11.9 % to 12.8 / 9.5 % at 0.5-1 / 1-2 px.
        """
        cv2 = self.cv2
        bound = math.sqrt(2.0) * (float(np.max(np.abs(d))) + max(float(np.max(np.abs(ux))), float(np.max(np.abs(uy)))))
        if bound <= STRAIN_FROM_PX:
            return ux, uy                   # nothing moves far enough anywhere: nothing to correct
        ex = cv2.GaussianBlur(ux, (0, 0), STRAIN_SMOOTH_PX)
        ey = cv2.GaussianBlur(uy, (0, 0), STRAIN_SMOOTH_PX)
        _unstrain_kernel()(ex, ey, strain, ux, uy, np.ascontiguousarray(d[1]), np.ascontiguousarray(d[0]),
                           float(STRAIN_FROM_PX))
        return ux, uy

    def _lk(self, frame: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        return self._refine_large(frame, self._lk_window(frame, init))

    def _refine_large(self, frame: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Blend large displacements towards their estimate over the small window (``fine_window_px``).

        Weight 0 below ``fine_from_px``, 1 from twice that.  The Gaussian window of SD
        ``window_px`` averages a contracting cell's displacement with its still neighbour's
        across the cell's outline; where the motion is large the noise is small against it,
        so a smaller window can be afforded there (on the project's simulator the median
        error at 2-5 px fell from 16.6 % to 9.8 %).  Frames without such motion cost nothing.
        """
        if self._fine is None:
            return d
        mag = self.cv2.magnitude(d[1], d[0])
        lo = self.params.fine_from_px
        if float(mag.max()) < lo:
            return d
        fine = self._lk_level(self._fine, frame, d.copy(), self.params.iterations)
        w = np.clip(mag * np.float32(1.0 / lo) - 1.0, 0.0, 1.0)
        # the small window corrects the main window's bias, which is smaller than the main window: a refinement that
        # moves further has left the small window's linear range (on striped texture it ran off to another stripe:
        # on the shared sarcomere clip 7 -> 35 px) and is not taken
        jump = self.cv2.magnitude(fine[1] - d[1], fine[0] - d[0])
        w[jump > self.params.window_px] = 0.0
        return d + w[None] * (fine - d)

    def _lk_window(self, frame: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        cv2 = self.cv2
        it = self.params.iterations
        if init is None and self.params.start == "dis":
            init = self._dis_flow(frame, None)
        if init is not None:
            return self._lk_level(self._levels[0], frame, np.array(init, np.float32, copy=True), it)
        frames = [frame]
        for _ in range(len(self._levels) - 1):
            frames.append(cv2.pyrDown(frames[-1]))
        d = np.zeros((2, *frames[-1].shape), np.float32)
        for k in range(len(frames) - 1, -1, -1):
            d = self._lk_level(self._levels[k], frames[k], d, it, final=k == 0, refine=k < len(frames) - 1)
            if k == len(frames) - 1 and k > 0 and self.params.start == "auto":
                far = float(np.percentile(cv2.magnitude(d[1], d[0]), 99)) * 2 ** k
                if far > DIS_FROM_PX:
                    return self._lk_level(self._levels[0], frame, self._dis_flow(frame, None), it)
            if k:
                shape = frames[k - 1].shape
                d = np.stack([cv2.resize(c, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) * 2 for c in d])
        return d

    def _farneback(self, frame: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        cv2 = self.cv2
        flow = None if init is None else np.ascontiguousarray(np.asarray(init, np.float32)[::-1].transpose(1, 2, 0))
        flags = cv2.OPTFLOW_USE_INITIAL_FLOW if flow is not None else 0
        levels = 1 if flow is not None else self.params.levels
        win = max(5, int(round(4 * self.params.window_px)) | 1)
        out = cv2.calcOpticalFlowFarneback(self.ref, frame, flow, 0.5, levels, win, self.params.iterations, 5, 1.2, flags)
        return np.ascontiguousarray(out[..., ::-1].transpose(2, 0, 1))

    def _to8(self, img: np.ndarray) -> np.ndarray:
        return np.clip((img - self._lo) * (255.0 / (self._hi - self._lo)), 0, 255).astype(np.uint8)

    def _dis_flow(self, frame: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        flow = None if init is None else np.ascontiguousarray(np.asarray(init, np.float32)[::-1].transpose(1, 2, 0))
        out = self._dis.calc(self._ref8, self._to8(frame), flow)
        return np.ascontiguousarray(out[..., ::-1].transpose(2, 0, 1))

    # ------------------------------------------------------------ public
    def __call__(self, frame: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        """``(2, Y, X)`` float32 displacement ``(dy, dx)`` of *frame* against the reference.

        *init*: a field to start from (the previous frame's, before drift removal).
        The returned field is the raw estimate; :meth:`without_drift` removes the drift and
        :meth:`smooth` the noise.
        """
        f = np.asarray(frame, np.float32)
        check(f.shape == self.shape, f"frame of {f.shape} px does not match the reference's {self.shape} px.")
        m = float(f.mean())
        if self.gain_matched and m > 0 and GAIN_RANGE[0] <= self.mean / m <= GAIN_RANGE[1]:
            f = f * np.float32(self.mean / m)
        f = self._smooth(f)
        engine = self.params.engine
        if engine == "lk":
            d = self._lk(f, init)
        elif engine == "farneback":
            d = self._farneback(f, init)
        else:
            d = self._dis_flow(f, init)
        return d

    def smooth(self, d: np.ndarray, noise_px: float) -> np.ndarray:
        """The field with its noise averaged away at an adaptive scale (*d* itself when off or noise-free).

        *noise_px*: the SD of each component's measurement noise (:meth:`FlowStream.noise_px`).

        Gaussian averages of the field with SDs ``s`` from 2 px up to ``smooth_px`` (octave
        steps, :func:`smoothing_scales`) have the noise SD ``sigma w / sqrt(w^2 + s^2)``, ``w``
        the window the pixel was measured over (the measured field's noise is correlated over
        it: ``window_px``, or down to ``fine_window_px`` where the motion is large) and
        ``sigma = noise * window_px / w`` its own noise (a Lucas-Kanade estimate's SD scales
        with one over its window).  Each pixel keeps the widest average whose interval
        ``+- smooth_confidence`` SDs overlaps the intervals of the field itself and of every
        narrower average, component by component (intersection of confidence intervals).
        """
        s_max = self.params.smooth_px
        if s_max <= 0 or not noise_px > 0:
            return d
        cv2 = self.cv2
        ny, nx = d.shape[1:]
        both = cv2.merge([d[0], d[1]])
        scales = smoothing_scales(s_max)
        averages = np.empty((len(scales), ny, nx, 2), np.float32)
        grids = {1: both}
        for k, s in enumerate(scales):
            # an average over s px is smooth on that scale: computed on a grid up to s px apart (at most 4), then
            # interpolated back (a quarter or a sixteenth of the work)
            f = 1
            while 2 * f <= min(s, 4.0) and ny // (2 * f) >= 8 and nx // (2 * f) >= 8:
                f *= 2
            if f not in grids:
                grids[f] = cv2.resize(both, (nx // f, ny // f), interpolation=cv2.INTER_AREA)
            avg = cv2.GaussianBlur(grids[f], (0, 0), s / f, borderType=cv2.BORDER_REFLECT)
            averages[k] = avg if f == 1 else cv2.resize(avg, (nx, ny), interpolation=cv2.INTER_LINEAR)
        p = self.params
        fine = p.fine_window_px if self._fine is not None else 0.0     # the small window _refine_large measured with
        out = np.empty_like(d, dtype=np.float32)
        _ici_kernel()(np.ascontiguousarray(d[0], np.float32), np.ascontiguousarray(d[1], np.float32), averages,
                      np.asarray(scales, np.float64), float(p.smooth_confidence * noise_px), float(p.window_px),
                      float(fine), float(p.fine_from_px), out[0], out[1])
        return out

    def without_drift(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The field with its spatial median removed (when ``remove_drift``), and that median ``(dy, dx)``.

        For a single pair of images; a video's drift is best measured by :class:`FlowStream`.
        """
        if not self.params.remove_drift:
            return d, np.zeros(2, np.float32)
        med = np.median(d.reshape(2, -1), axis=1).astype(np.float32)
        return d - med[:, None, None], med


def pair_starts(n_frames: int, n_pairs: int, measured_every: int = 1) -> np.ndarray:
    """First frames ``t`` of up to *n_pairs* pairs ``(t, t + K)`` spread evenly over *n_frames* frames.

    ``K`` = *measured_every*; every ``t`` is a multiple of ``K``, so on an interpolated
    video both frames of a pair were measured.  Needs ``n_frames > K``.
    """
    k = max(1, int(measured_every))
    return np.unique(np.linspace(0, (n_frames - 1 - k) // k, min(n_pairs, (n_frames - 1) // k)).round().astype(int)) * k


def most_relaxed_frame(video: Any, max_samples: int = 400, max_side_px: int = 96) -> int:
    """The frame closest to the temporal median image (cells spend most of the time relaxed).

    At most *max_samples* frames, evenly spread, are compared (mean square difference
    after scaling each to the median's mean intensity), on copies averaged down to at
    most *max_side_px* pixels a side (faster, and less shot noise); the result is the
    best of them.
    """
    cv2 = require_cv2()
    n = int(video.shape[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(int))
    ny, nx = (int(v) for v in video.shape[1:3])
    k = max(1, int(np.ceil(max(ny, nx) / max_side_px)))
    size = (max(1, nx // k), max(1, ny // k))
    sample = np.empty((len(idx), size[1], size[0]), np.float32)
    for a in range(0, len(idx), 64):
        block = np.asarray(video[idx[a:a + 64]], np.float32)
        for i, frame in enumerate(block):
            sample[a + i] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if k > 1 else frame
    med = np.median(sample, axis=0)
    mm = float(med.mean()) or 1.0
    means = sample.reshape(len(idx), -1).mean(axis=1)
    scale = np.where(means != 0, mm / np.where(means != 0, means, 1), 1.0).astype(np.float32)
    if not gain_applies(med):
        scale = np.ones_like(scale)
    scale = np.where((scale >= GAIN_RANGE[0]) & (scale <= GAIN_RANGE[1]), scale, 1.0).astype(np.float32)
    err = (((sample * scale[:, None, None]) - med) ** 2).reshape(len(idx), -1).mean(axis=1)
    return int(idx[int(np.argmin(err))])


#: a frame's brightness is matched to the reference's by a gain only within this range (lamp flicker is a few %)
GAIN_RANGE = (0.5, 2.0)


def gain_applies(image: np.ndarray) -> bool:
    """Whether brightness can be matched by a gain: intensities above a dark level of zero (a few noisy pixels
    below it allowed).  Data that straddle zero (offset-subtracted) have no such level: a gain there flips and
    blows up frames whose mean is near zero."""
    mean = float(np.mean(image))
    return bool(mean > 0 and float(np.percentile(image, 1.0)) >= -0.05 * mean)


def reference_image(video: Any, frame: int, n_frames: int = 1) -> np.ndarray:
    """The mean of *n_frames* frames centred on *frame* (shifted inwards at the video's ends), float32."""
    n = int(video.shape[0])
    k = max(1, min(int(n_frames), n))
    a = int(np.clip(frame - (k - 1) // 2, 0, n - k))
    return np.asarray(video[a:a + k], np.float32).mean(axis=0)


class FlowStream:
    """Displacement fields of every frame of a video, in blocks, on two threads.

    With ``params.remove_drift`` the stage drift is measured first (a quick pass over a
    coarse copy) and subtracted; :attr:`drift` holds it ``(T, 2)``.  The frames are split in *threads* contiguous parts processed side by side (OpenCV
    and numpy release the GIL); within a part each frame starts from the previous
    frame's field.  :meth:`blocks` yields ``(first_frame, fields, previous)``: the
    fields ``(n, 2, Y, X)`` of frames ``first_frame .. first_frame + n - 1`` with the
    drift removed, and the field of the frame before them (``None`` at the start), so a
    consumer can take time derivatives.  Memory: ``2 * threads * block`` fields (the next
    round is estimated while the consumer works on the current one).  *measured_every*: ``K``
    when only frames ``0, K, 2K, ...`` were measured (an interpolated video): the fields' noise
    is measured on those frames (a synthesized frame is a blend of its neighbours, so its
    field differs from theirs by less than the noise).
    """

    def __init__(self, video: Any, reference_frame: int, params: FlowParams = FlowParams(), *, fps: float = 1.0,
                 block: int = 32, threads: int = 2, warm_start: bool = False, measured_every: int = 1) -> None:
        self.warm_start = warm_start
        self.measured_every = max(1, int(measured_every))
        self.fps = float(fps)
        n = int(video.shape[0])
        check(0 <= reference_frame < n, f"reference frame {reference_frame} lies outside the video's {n} frames.")
        self.video = video
        self.params = params
        self.block = max(1, int(block))
        self.reference_frame = int(reference_frame)
        reference = reference_image(video, reference_frame, params.reference_frames)
        self.reference = reference
        threads = max(1, min(int(threads), n // (2 * self.block) or 1))
        bounds = np.linspace(0, n, threads + 1).round().astype(int)
        self.parts = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self.estimators = [FlowEstimator(reference, params) for _ in self.parts]
        self.drift = np.zeros((n, 2), np.float32)
        self._drift_done = not params.remove_drift
        self._noise: float | None = None
        self._noise_factor: np.ndarray | None = None
        self._noise_ready = threading.Event()

    def _measure_drift(self) -> None:
        """The slow whole-field translation of every frame, from a coarse copy of the video (see module docstring)."""
        from scipy import ndimage

        cv2 = require_cv2()
        ny, nx = self.estimators[0].shape
        k = max(1, min(ny, nx) // 64)
        small = (max(8, nx // k), max(8, ny // k))
        ref = cv2.resize(self.reference, small, interpolation=cv2.INTER_AREA)
        med = np.zeros((self.n_frames, 2), np.float32)
        scale = np.array([ny / small[1], nx / small[0]], np.float32)

        def part(start: int, stop: int) -> None:
            # the drift is the field's median: the strain correction would change nothing there but the cost
            est = FlowEstimator(ref, FlowParams(window_px=2.0, levels=2, remove_drift=False, smooth_px=0.0,
                                                fine_window_px=0.0, strain_correction=False))
            for a in range(start, stop, 256):
                block = np.asarray(self.video[a:min(a + 256, stop)], np.float32)
                for i, frame in enumerate(block):
                    d = est(cv2.resize(frame, small, interpolation=cv2.INTER_AREA))
                    med[a + i] = np.median(d.reshape(2, -1), axis=1) * scale

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(self.parts)) as pool:   # the stream's parts, side by side
            for job in [pool.submit(part, a, b) for a, b in self.parts]:
                job.result()
        size = max(1, int(round(self.params.drift_window_s * self.fps)) | 1)
        # a window far longer than the video (a huge frame rate) costs its length per frame and means nothing more
        size = min(size, 2 * self.n_frames + 1)
        self.drift = np.stack([ndimage.median_filter(med[:, c], size=size, mode="nearest") for c in (0, 1)],
                              axis=1).astype(np.float32)
        self._drift_done = True

    @property
    def noise_px(self) -> float:
        """SD of each component's measurement noise in the fields (px), measured on the video once.

        From consecutive frames (consecutive measured ones, see *measured_every*): their fields
        differ by the noise of both (and by real motion
        where something moves between the two frames).  The difference of two fields with
        independent noise of SD ``sigma`` per component has a Rayleigh-distributed length with
        median ``1.665 sigma``; the median over the pixels ignores the few that move, and the
        median over the pairs the pairs taken during a beat.  The noise of the reference image,
        common to both fields, cancels, so this is the part of the noise that changes from
        frame to frame (on the simulator 0.037 of 0.041 px).  :meth:`blocks` takes the pairs of
        the first block it estimates (at no extra cost); asked before, up to 9 pairs spread
        over the video are estimated for it.
        """
        if self._noise is None:
            self._measure_noise()
        return float(self._noise)

    @property
    def noise_factor(self) -> np.ndarray:
        """``(Y, X)``: each pixel's displacement noise relative to the typical pixel's (:func:`texture_noise_factor`
        of the reference over the flow window), computed once."""
        if self._noise_factor is None:
            self._noise_factor = texture_noise_factor(self.reference, self.params.window_px)
        return self._noise_factor

    @staticmethod
    def _pair_noise(a: np.ndarray, b: np.ndarray) -> float:
        diff = b - a
        return float(np.median(_magnitude(diff))) / RAYLEIGH_MEDIAN

    def _measure_noise(self, n_pairs: int = 9) -> None:
        """Up to *n_pairs* pairs of consecutive frames spread over the video, on an estimator of its own.

        Its own estimator, not the stream's: this may run beside the parts (OpenCV's DIS
        object is not to be shared between threads).
        """
        n = self.n_frames
        if n < 2:
            self._noise = 0.0
            self._noise_ready.set()
            return
        est = FlowEstimator(self.reference, self.params)
        k = self.measured_every if n > self.measured_every else 1
        starts = pair_starts(n, n_pairs, k)
        per_pair = [self._pair_noise(*(est(np.asarray(self.video[int(i)], np.float32)) for i in (t, t + k)))
                    for t in starts]
        self._noise = float(np.median(per_pair))
        self._noise_ready.set()

    @property
    def n_frames(self) -> int:
        return int(self.video.shape[0])

    def _run(self, k: int, a: int, b: int, state: dict[str, Any]) -> tuple[int, np.ndarray, np.ndarray | None]:
        measures = state.get("smoothed") and k == 0 and self._noise is None   # the video's first block: the noise
        try:
            est = self.estimators[k]
            if "raw" not in state and a > 0:   # a later part: start from the frame before it (warm start, derivatives)
                raw = est(np.asarray(self.video[a - 1], np.float32))
                state["raw"], state["field"] = raw, raw - self.drift[a - 1][:, None, None]
            frames = np.asarray(self.video[a:b], np.float32)
            out = np.empty((b - a, 2, *est.shape), np.float32)
            raw = state.get("raw")
            previous = state.get("field")
            for i in range(b - a):
                raw = est(frames[i], raw if self.warm_start else None)
                out[i] = raw - self.drift[a + i][:, None, None]
            state["raw"], state["field"] = raw, out[-1]
            if measures:          # part 0 starts at frame 0, a measured one
                step = self.measured_every
                if b - a > step:
                    self._noise = float(np.median([self._pair_noise(out[i], out[i + step])
                                                   for i in range(0, b - a - step, step)]))
                else:
                    self._measure_noise()
        finally:
            if measures:          # the other parts wait for the noise: released even when this block failed
                self._noise_ready.set()
        if state.get("smoothed"):
            self._noise_ready.wait()
            noise = self._noise or 0.0
            return a, out, previous, np.stack([est.smooth(f, noise) for f in out])
        return a, out, previous

    def blocks(self, smoothed: bool = False):
        """Yield ``(first_frame, fields, previous_field)`` for every block (parts interleaved).

        With *smoothed* each tuple also holds the block's fields after :meth:`FlowEstimator.smooth`
        (``(first_frame, fields, previous_field, smoothed_fields)``): less noisy pixel by pixel,
        but a cell's small displacements spread onto its neighbours, so region averages are best
        taken from the fields as measured.
        """
        from concurrent.futures import ThreadPoolExecutor

        if not self._drift_done:
            self._measure_drift()
        cursors = [a for a, _ in self.parts]
        states: list[dict[str, Any]] = [{"smoothed": True} if smoothed else {} for _ in self.parts]

        def submit(pool: ThreadPoolExecutor) -> list[Any]:
            jobs = []
            for k, (c, (_, b)) in enumerate(zip(cursors, self.parts)):
                if c < b:
                    stop = min(b, c + self.block)
                    jobs.append(pool.submit(self._run, k, c, stop, states[k]))
                    cursors[k] = stop
            return jobs

        with ThreadPoolExecutor(max_workers=len(self.parts)) as pool:
            jobs = submit(pool)
            while jobs:
                done = [job.result() for job in jobs]
                # the next round starts before this one is handed over: the consumer's work on these
                # blocks overlaps the estimation of the next ones (each part's state is up to date)
                jobs = submit(pool)
                yield from done
