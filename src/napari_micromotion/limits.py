"""Detection limit per region (the paper's Discussion).

The photon shot-noise floor of a signal binned over ``N_frames`` frames and
``N_px`` pixels is ``sigma_I / I = 1 / sqrt(N_frames * N_px * N_e)`` with ``N_e``
photo-electrons per pixel (the paper writes the full-well capacity ``N_FWC``;
we report both: the floor at full well, and the floor at the measured exposure
``N_e = (I - offset) * gain``).

A displacement ``d`` (pixels) of an image with relative gradient
``g_p = |grad I_p| / I_p`` changes pixel ``p`` by ``d * g_p`` (relative); the
optimally weighted (matched) combination of all pixels has unit SNR at::

    d_min = 1 / sqrt(N_frames * sum_p g_p**2 * N_e,p)       [px]

which reduces to ``(sigma_I / I) / g`` for uniform pixels.  ``d_min`` times the
pixel size is the smallest detectable displacement in nm.  The *measured* noise
(robust SD of the band-passed ROI-mean trace, corrected for the filter's noise
bandwidth) over the expected shot noise gives the excess-noise factor that scales
the shot-noise ``d_min`` to what this recording can achieve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .filters import BandpassDesign, effective_response
from .schema import param

__all__ = ["CameraParams", "detection_limit", "noise_bandwidth_fraction", "DARK_FRACTION"]

#: pixels whose light (grey level above the dark offset) is below this fraction of the region's median are dark:
#: their relative gradient ``|grad I| / I`` grows without bound as ``I`` goes to 0 (a black border, a masked or
#: clipped patch read as a 1e12 relative gradient and a 1e-18 px limit), where read noise, not shot noise, decides
DARK_FRACTION = 0.01


@dataclass(frozen=True)
class CameraParams:
    """Camera model.

    Attributes
    ----------
    gain_e_per_adu
        Photo-electrons per grey level; ``None``: assume pixels at full well.
    offset_adu
        Grey level of zero light (dark offset).
    full_well_e
        Full-well capacity in electrons (paper: 1e5).
    event_s
        Duration over which a micromotion event is binned (``N_frames = event_s * fps``).
    """

    gain_e_per_adu: float | None = param(None, label="camera gain", unit="e-/grey level", min=1e-9, flag="--gain",
                                         none_text="assume full well",
                                         help="Photo-electrons per grey level of the camera (from its data sheet); "
                                              "unknown: every pixel is assumed at full well.")
    offset_adu: float = param(0.0, label="dark offset", unit="grey levels", min=-1e9, max=1e9, flag="--offset",
                              advanced=True, decimals=2, help="Grey level the camera reports without light.")
    full_well_e: float = param(1e5, label="full-well capacity", unit="e-", min=1.0, max=1e9, flag="--full-well",
                               advanced=True, decimals=0,
                               help="Electrons a pixel holds before it saturates (the paper: 100000).")
    event_s: float = param(0.2, label="event duration", unit="s", min=1e-6, max=1e4, flag="--event-duration",
                           advanced=True, decimals=3,
                           help="Duration over which a micromotion event is summed for the detection limit.")


def noise_bandwidth_fraction(design: BandpassDesign, n: int = 4096) -> float:
    """Fraction of white-noise variance that passes the effective band-pass."""
    f = np.linspace(0, design.fps / 2, n)
    h = effective_response(design, f)
    return float(np.trapezoid(h**2, f) / (design.fps / 2))


def detection_limit(still_adu: np.ndarray, mask: np.ndarray, filtered_mean_trace: np.ndarray, design: BandpassDesign,
                    pixel_size_um: float | None, camera: CameraParams = CameraParams()) -> dict[str, Any]:
    """Detection-limit figures for one ROI.

    Parameters
    ----------
    still_adu
        Mean transmission image in grey levels.
    mask
        ROI mask.
    filtered_mean_trace
        Band-passed transmission averaged over the ROI, per frame (grey levels).
    design
        The band-pass used (for its noise bandwidth).
    pixel_size_um
        Pixel size; ``None`` leaves the nm columns empty.
    camera
        :class:`CameraParams`.
    """
    fps = design.fps
    n_frames = max(1, int(round(camera.event_s * fps)))
    img = np.asarray(still_adu, dtype=np.float64)
    signal = np.maximum(img - camera.offset_adu, 1e-9)
    if camera.gain_e_per_adu:
        n_e = signal * camera.gain_e_per_adu
    else:
        n_e = np.full_like(signal, camera.full_well_e)
    gy, gx = np.gradient(signal)
    g = np.hypot(gy, gx) / signal
    m = mask.astype(bool)
    n_px = int(m.sum())
    ne_mean = float(n_e[m].mean())
    floor = 1.0 / math.sqrt(n_frames * n_px * ne_mean)
    floor_fwc = 1.0 / math.sqrt(n_frames * n_px * camera.full_well_e)
    # the displacement limit from the lit pixels (see DARK_FRACTION)
    lit = m & (signal > DARK_FRACTION * float(np.median(signal[m]))) if n_px else m
    d_px = 1.0 / math.sqrt(n_frames * float(np.sum(g[lit] ** 2 * n_e[lit])) + 1e-300) if lit.any() else float("nan")
    # measured noise of the ROI mean, per frame, relative
    tr = np.asarray(filtered_mean_trace, dtype=np.float64)
    mad = 1.4826 * float(np.median(np.abs(tr - np.median(tr))))
    frac = noise_bandwidth_fraction(design)
    measured = mad / math.sqrt(frac) / float(signal[m].mean())
    expected = 1.0 / math.sqrt(n_px * ne_mean)
    excess = measured / expected if expected > 0 else float("nan")
    nm = pixel_size_um * 1e3 if pixel_size_um else float("nan")
    return {
        "n_px": n_px,
        "n_frames_binned": n_frames,
        "electrons_per_px": ne_mean,
        "shot_floor_rel": floor,
        "shot_floor_rel_at_full_well": floor_fwc,
        "measured_noise_rel_per_frame": measured,
        "expected_shot_noise_rel_per_frame": expected,
        "noise_excess": excess,
        "gradient_rel_per_px": float(np.sqrt(np.mean(g[lit] ** 2))) if lit.any() else float("nan"),
        "dark_px": int(n_px - lit.sum()),
        "min_displacement_px": d_px,
        "min_displacement_nm": d_px * nm,
        "min_displacement_nm_measured": d_px * max(excess, 1.0) * nm if math.isfinite(excess) else float("nan"),
    }
