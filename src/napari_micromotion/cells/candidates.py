"""Candidate cells from a calcium fluorescence movie: PCA/ICA or segmentation (issue 15).

Two extractors, both returning :class:`~napari_micromotion.cells.candidate.Candidate` objects
(a mask in a box, the mean raw fluorescence over it per frame):

``ica``
    After Mukamel, Nimmerjahn & Schnitzer (2009): the movie is binned in space (cells ~10 px
    across) and time (at most ``max_frames`` frames), turned into dF/F, reduced by a
    randomized PCA to ``n_pcs`` components and unmixed by FastICA on the spatio-temporal
    concatenation of the principal filters and traces (weight ``mu`` on the temporal part,
    0 = spatial ICA).  Each independent component's filter is sign-corrected to positive
    skew; components whose activity (dF/F projected on the filter) is not skewed
    (``min_activity_skew``: no transients) are noise and dropped.  A filter is smoothed and
    thresholded at ``threshold_sd`` robust standard deviations; each connected segment of
    allowed size becomes a candidate whose footprint is the filter in its box; with
    ``ica_basins`` the segment is replaced by the ``segment`` watershed basins it covers at
    least half of (touching cells that one component caught together come apart).
    Works when cells fire independently; it cannot separate cells that fire together.
``segment``
    For syncytia, where all cells fire together: the mean image and the activity image (the
    detrended standard deviation over the mean, i.e. dF/F amplitude, which is flat within a
    cell) give two gradient images, each divided by its median and summed into an edge map;
    markers are the minima of the smoothed edge map (0.6 cell diameters apart unless an edge
    lies between them: measured best of 1/3, 1/2, 0.6, 0.7 on the simulator) and a marker-based
    watershed splits the field.  Basins that split one cell are then merged: adjacent basins
    whose shared boundary is weak along at least a tenth of its length (``merge_level``) and
    whose median brightness and activity agree within ``merge_tolerance`` (one cell, one dye
    loading); on the benchmark's recordings this removed 58 of 65 fragments (inside one cell,
    less than half of it) without losing a cell.  With a brightfield still (``transmission``)
    and ``use_transmission`` its dark membranes (Sato ridge filter) are added to the edge map;
    :attr:`Extraction.reason` says which images were used.
``auto``
    Measures whether distant regions' activity is correlated (median correlation of binned
    dF/F traces more than 1.5 cell diameters apart, relative to that of neighbouring bins):
    correlated -> ``segment``, otherwise ``ica``; :attr:`Extraction.reason` says why.

The movie is read in blocks of frames (uint16 stays uint16; only a block at a time is
converted to float32), so memory stays at the binned movie plus a few frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Sequence

import numpy as np
from scipy import ndimage

from ..errors import check
from ..progress import Progress, drive
from ..schema import param
from .candidate import Candidate

__all__ = ["CandidateParams", "Extraction", "METHODS", "iter_extract", "extract", "match_cells",
           "estimate_diameter_px", "mask_iou", "carry_labels"]

#: extraction methods of :attr:`CandidateParams.method`
METHODS = ("auto", "ica", "segment")
MIN_FRAMES_CANDIDATES = 20
_BLOCK_FRAMES = 256


@dataclass(frozen=True)
class CandidateParams:
    """Parameters of candidate extraction (lengths in pixels of the full frame).

    Attributes
    ----------
    method
        ``"auto"``, ``"ica"`` or ``"segment"`` (see the module docstring).
    n_pcs, n_ics
        Principal and independent components; ``None``: from the expected number of cells
        in the frame (``n_pcs`` = 1.5 x + 10, ``n_ics`` = ``n_pcs`` - 5).
    mu
        Temporal weight of the spatio-temporal ICA (0: spatial ICA, 1: temporal ICA).
    diameter_px
        Typical cell diameter; ``None``: estimated from the mean image.
    min_area_px, max_area_px
        Allowed candidate areas; ``None``: 0.15 x and 3 x the area of a disc of ``diameter_px``.
    threshold_sd
        Threshold of an IC filter, in robust standard deviations above its median.
    seed
        Seed of the randomized PCA and of FastICA.
    max_frames
        Frames kept for PCA/ICA (longer movies are averaged in time bins).
    min_activity_skew
        ``ica`` keeps components whose activity (the dF/F movie projected on the filter) has at
        least this skewness: calcium transients are skewed, noise components are not.
    ica_basins
        ``ica``: replace each IC segment by the watershed basins (of ``segment``'s edge map) it
        covers at least half of, so touching cells caught by one component come apart.
    use_transmission
        Add the brightfield still's membranes to the edges of ``segment`` when one is given.
    membrane_weight
        Weight of the membrane edges relative to the fluorescence edges.
    merge_level, merge_tolerance
        Watershed basins (``segment``, and ``ica``'s basins) merge when the edges along at least
        a tenth of their shared boundary stay below ``merge_level`` x the edge map's median and
        their median brightness and activity each differ by less than ``merge_tolerance`` (a
        fraction); ``merge_level`` 0 never merges.
    sync_threshold
        ``auto`` picks ``segment`` when distant regions correlate at least this much
        (relative to neighbouring regions).
    """

    method: str = param("auto", label="candidates by", choices=METHODS, flag="--method",
                        help="ica: PCA/ICA (Mukamel et al. 2009), for cells that fire independently (neurons); "
                             "segment: watershed of the mean and activity images (and the brightfield still), for "
                             "syncytia that fire together (cardiac monolayers); auto: chosen from the data.")
    n_pcs: int | None = param(None, label="principal components", min=2, max=2000, flag="--n-pcs", advanced=True,
                              none_text="auto", none_words=("auto",),
                              help="PCA components kept for ICA (auto: 1.5 x the expected cells + 10).")
    n_ics: int | None = param(None, label="independent components", min=2, max=2000, flag="--n-ics", advanced=True,
                              none_text="auto", none_words=("auto",),
                              help="Independent components (auto: principal components - 5).")
    mu: float = param(0.1, label="ICA temporal weight", min=0.0, max=1.0, decimals=2, flag="--mu", advanced=True,
                      help="Spatio-temporal ICA: 0 is spatial ICA, 1 temporal ICA (Mukamel et al. use 0.1-0.2).")
    diameter_px: float | None = param(None, label="cell diameter", unit="px", min=3.0, max=4096.0, flag="--diameter",
                                      none_text="estimated", none_words=("auto",), decimals=1,
                                      help="Typical cell diameter (estimated from the mean image when empty).")
    min_area_px: float | None = param(None, label="smallest candidate", unit="px", min=1.0, max=1e8,
                                      flag="--min-area", advanced=True, none_text="auto", none_words=("auto",),
                                      help="Smaller candidates are dropped (auto: 0.15 x a cell-sized disc).")
    max_area_px: float | None = param(None, label="largest candidate", unit="px", min=1.0, max=1e8,
                                      flag="--max-area", advanced=True, none_text="auto", none_words=("auto",),
                                      help="Larger candidates are dropped (auto: 3 x a cell-sized disc).")
    threshold_sd: float = param(3.0, label="IC filter threshold", unit="robust SD", min=0.1, max=50.0, decimals=1,
                                flag="--threshold-sd", advanced=True,
                                help="An independent component's filter is cut at its median plus this many robust SDs.")
    seed: int = param(0, label="seed", min=0, max=2**31 - 1, flag="--seed", advanced=True,
                      help="Seed of the randomized PCA and FastICA (same seed and data: same candidates).")
    max_frames: int = param(2000, label="frames for PCA/ICA", min=MIN_FRAMES_CANDIDATES, max=10**7,
                            flag="--max-frames", advanced=True,
                            help="Longer movies are averaged in time bins down to this many frames for PCA/ICA.")
    use_transmission: bool = param(True, label="use the brightfield membranes", flag="--use-transmission",
                                   advanced=True, help="segment: add the membranes of the brightfield still to the "
                                                       "edges when a transmission video is given.")
    ica_basins: bool = param(True, label="ICA segments as basins", flag="--ica-basins", advanced=True,
                             help="Replace each ICA segment by the watershed basins it covers at least half of (one "
                                  "component often catches two touching cells).")
    min_activity_skew: float = param(0.5, label="least IC activity skew", min=0.0, max=100.0, decimals=2,
                                     flag="--min-activity-skew", advanced=True,
                                     help="Independent components whose activity is less skewed are noise, dropped.")
    membrane_weight: float = param(1.0, label="membrane weight", min=0.0, max=100.0, decimals=2,
                                   flag="--membrane-weight", advanced=True,
                                   help="Weight of the brightfield membranes relative to the fluorescence edges.")
    merge_level: float = param(2.0, label="merge weak boundaries", min=0.0, max=100.0, decimals=2,
                               flag="--merge-level", advanced=True,
                               help="Adjacent watershed basins are merged (one cell split in two by the watershed) "
                                    "when the edges along at least a tenth of their shared boundary stay below this "
                                    "many times the edge map's median; 0: never.")
    merge_tolerance: float = param(0.015, label="merge tolerance", min=0.0, max=1.0, decimals=3,
                                   flag="--merge-tolerance", advanced=True,
                                   help="Basins merge only when their median brightness and median activity each "
                                        "differ by less than this fraction (one cell, one dye loading).")
    sync_threshold: float = param(0.5, label="synchrony for segment", min=0.0, max=1.0, decimals=2,
                                  flag="--sync-threshold", advanced=True,
                                  help="auto picks segment when distant regions correlate at least this much "
                                       "(relative to neighbouring ones), ica otherwise.")

    def validate(self) -> None:
        check(self.method in METHODS, f"candidate method must be one of {', '.join(METHODS)}, got {self.method!r}.")
        for name in ("n_pcs", "n_ics"):
            v = getattr(self, name)
            check(v is None or (isinstance(v, (int, np.integer)) and v >= 2),
                  f"{name.replace('_', ' ')} must be an integer of at least 2, got {v!r}.")
        check(0.0 <= self.mu <= 1.0, f"mu must be between 0 and 1, got {self.mu!r}.")
        check(self.diameter_px is None or (math.isfinite(self.diameter_px) and self.diameter_px >= 3),
              f"the cell diameter must be at least 3 px, got {self.diameter_px!r}.")
        check(self.threshold_sd > 0, f"threshold_sd must be positive, got {self.threshold_sd!r}.")
        if self.min_area_px is not None and self.max_area_px is not None:
            check(self.min_area_px <= self.max_area_px, f"the smallest candidate area ({self.min_area_px:g} px) must "
                                                        f"not exceed the largest ({self.max_area_px:g} px).")
        check(isinstance(self.seed, (int, np.integer)) and self.seed >= 0,
              f"seed must be a non-negative integer, got {self.seed!r}.")
        check(isinstance(self.max_frames, (int, np.integer)) and self.max_frames >= MIN_FRAMES_CANDIDATES,
              f"max_frames must be at least {MIN_FRAMES_CANDIDATES}, got {self.max_frames!r}.")


@dataclass
class Extraction:
    """The result of :func:`extract`.

    Attributes
    ----------
    candidates
        Candidates named ``c0001``, ``c0002`` ... by centroid row then column.
    method
        The method used (``"ica"`` or ``"segment"``).
    reason
        Why that method, and for ``segment`` which image was segmented.
    mean_image, correlation_image
        float32 ``(Y, X)``: the mean frame and the local correlation image (mean correlation
        of each pixel's linearly detrended trace with its 8 neighbours).
    timings_s
        Seconds per stage.
    diameter_px
        The cell diameter used.
    sync_index
        The synchrony measure of ``auto`` (NaN when not measured).
    """

    candidates: list[Candidate]
    method: str
    reason: str
    mean_image: np.ndarray
    correlation_image: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)
    diameter_px: float = float("nan")
    sync_index: float = float("nan")


# ---------------------------------------------------------------- helpers
def _blocks(n: int, size: int = _BLOCK_FRAMES) -> list[tuple[int, int]]:
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def estimate_diameter_px(image: np.ndarray) -> float:
    """Typical cell diameter from an image of a cell sheet (mean fluorescence or brightfield).

    The image is high-passed and its radially averaged autocorrelation measured; the radius at
    which it falls to 0.25 scales with the size of the mosaic's tiles (factor calibrated on the
    simulator's Voronoi sheets, 28 and 56 px cells).
    """
    img = np.asarray(image, np.float64)
    img = img - ndimage.gaussian_filter(img, max(img.shape) / 8)
    img = (img - img.mean()) / (img.std() + 1e-12)
    f = np.fft.rfft2(img, s=[2 * s for s in img.shape])
    ac = np.fft.irfft2(np.abs(f) ** 2, s=[2 * s for s in img.shape])
    ac = np.fft.fftshift(ac)
    cy, cx = ac.shape[0] // 2, ac.shape[1] // 2
    ac = ac / ac[cy, cx]
    yy, xx = np.indices(ac.shape)
    r = np.hypot(yy - cy, xx - cx).astype(int)
    rmax = min(img.shape) // 2
    prof = np.bincount(r.ravel(), ac.ravel(), minlength=rmax + 1)[:rmax + 1] / np.maximum(
        np.bincount(r.ravel(), minlength=rmax + 1)[:rmax + 1], 1)
    below = np.nonzero(prof < 0.25)[0]
    r25 = float(below[0]) if below.size else float(rmax)
    return float(np.clip(_DIAMETER_PER_R25 * r25, 6.0, min(img.shape) / 1.5))


#: diameter / radius where the high-passed mean image's autocorrelation falls to 0.25 (simulator calibration)
_DIAMETER_PER_R25 = 2.3


@dataclass
class _Stats:
    mean: np.ndarray
    sd_detrended: np.ndarray
    correlation: np.ndarray
    binned: np.ndarray       # (Tb, Yb, Xb) float32 mean of raw values in bins
    bin_px: int
    bin_frames: int


def _pass_stats(movie: np.ndarray, bin_px: int, bin_frames: int) -> Generator[Progress, None, _Stats]:
    """One pass over the movie in blocks: mean, detrended SD, local correlation, binned movie."""
    n_t, n_y, n_x = movie.shape
    # centre on a rough mean (few frames) to keep the float64 sums accurate
    ref = np.asarray(movie[:: max(1, n_t // 16)], np.float32).mean(axis=0)
    tc = np.arange(n_t, dtype=np.float64) - (n_t - 1) / 2
    s1 = np.zeros((n_y, n_x))
    s2 = np.zeros((n_y, n_x))
    st = np.zeros((n_y, n_x))
    shifts = [(0, 1), (1, 0), (1, 1), (1, -1)]
    sp = [np.zeros((n_y - dy, n_x - abs(dx))) for dy, dx in shifts]
    yb, xb = n_y // bin_px, n_x // bin_px
    tb = n_t // bin_frames
    binned = np.empty((tb, yb, xb), np.float32)
    blocks = _blocks(n_t, max(bin_frames, (_BLOCK_FRAMES // bin_frames) * bin_frames))
    for k, (a, b) in enumerate(blocks):
        # sums over a block in float32 (values centred, a few hundred frames), accumulated in float64
        x = np.asarray(movie[a:b], np.float32) - ref
        s1 += x.sum(axis=0)
        s2 += np.einsum("tyx,tyx->yx", x, x)
        st += np.tensordot(tc[a:b].astype(np.float32), x, axes=(0, 0))
        for (dy, dx), acc in zip(shifts, sp):
            if dx >= 0:
                acc += np.einsum("tyx,tyx->yx", x[:, : n_y - dy, : n_x - dx], x[:, dy:, dx:])
            else:
                acc += np.einsum("tyx,tyx->yx", x[:, : n_y - dy, -dx:], x[:, dy:, : n_x + dx])
        # binned movie (frames inside whole time bins only)
        a2, b2 = a, min(b, tb * bin_frames)
        if b2 > a2:
            blk = x[: b2 - a2, : yb * bin_px, : xb * bin_px] + ref[: yb * bin_px, : xb * bin_px]
            blk = blk.reshape((b2 - a2) // bin_frames, bin_frames, yb, bin_px, xb, bin_px).mean(axis=(1, 3, 5))
            binned[a2 // bin_frames: b2 // bin_frames] = blk
        yield Progress("statistics", (k + 1) / len(blocks), f"frames {b} of {n_t}")
    m = s1 / n_t
    var_t = float((tc ** 2).sum())
    slope = st / var_t                       # per-pixel linear trend (bleaching, drift)
    cov0 = s2 / n_t - m * m - slope * slope * var_t / n_t
    var = np.maximum(cov0, 1e-12)
    sd = np.sqrt(var)
    corr_sum = np.zeros((n_y, n_x))
    count = np.zeros((n_y, n_x))
    for (dy, dx), acc in zip(shifts, sp):
        if dx >= 0:
            i_sl, j_sl = (slice(0, n_y - dy), slice(0, n_x - dx)), (slice(dy, None), slice(dx, None))
        else:
            i_sl, j_sl = (slice(0, n_y - dy), slice(-dx, None)), (slice(dy, None), slice(0, n_x + dx))
        cov = acc / n_t - m[i_sl] * m[j_sl] - slope[i_sl] * slope[j_sl] * var_t / n_t
        c = cov / (sd[i_sl] * sd[j_sl])
        corr_sum[i_sl] += c
        corr_sum[j_sl] += c
        count[i_sl] += 1
        count[j_sl] += 1
    corr = (corr_sum / np.maximum(count, 1)).astype(np.float32)
    return _Stats((m + ref).astype(np.float32), sd.astype(np.float32), corr, binned, bin_px, bin_frames)


def _dff(binned: np.ndarray, fps_binned: float) -> np.ndarray:
    """(T, P) float32 dF/F of the binned movie, baseline = 10 s running mean (slow drift removed)."""
    t = binned.shape[0]
    x = binned.reshape(t, -1)
    win = int(max(3, min(t, round(10 * fps_binned))))
    base = ndimage.uniform_filter1d(x, win, axis=0, mode="nearest")
    base = np.maximum(base, 1e-3 * max(float(np.abs(base).max()), 1e-12))
    return ((x - base) / base).astype(np.float32)


def _sync_index(z: np.ndarray, shape: tuple[int, int], dist_bins: float, rng: np.random.Generator) -> float:
    """Median correlation of distant active bins relative to that of neighbouring bins."""
    zz = z - z.mean(axis=0)
    zz /= np.linalg.norm(zz, axis=0) + 1e-12
    sd = z.std(axis=0)
    active = np.nonzero(sd >= np.percentile(sd, 50))[0]
    yy, xx = np.unravel_index(active, shape)
    n = min(4000, active.size * 4)
    i = rng.integers(0, active.size, n)
    j = rng.integers(0, active.size, n)
    d = np.hypot(yy[i] - yy[j], xx[i] - xx[j])
    far = d > dist_bins
    if far.sum() < 20:
        return float("nan")
    c_far = np.median(np.einsum("tp,tp->p", zz[:, active[i[far]]], zz[:, active[j[far]]]))
    # neighbours: the bin to the right
    a = active[xx < shape[1] - 1]
    c_near = np.median(np.einsum("tp,tp->p", zz[:, a], zz[:, a + 1]))
    return float(c_far / max(c_near, 1e-6))


def _upsample(img: np.ndarray, bin_px: int, shape: tuple[int, int], order: int) -> np.ndarray:
    """A binned image back to the full frame (pixel centres aligned; edges repeated)."""
    if bin_px == 1:
        out = img
    elif order == 0:
        out = np.repeat(np.repeat(img, bin_px, axis=0), bin_px, axis=1)
    else:
        yb, xb = img.shape
        ry = (np.arange(yb * bin_px) + 0.5) / bin_px - 0.5
        rx = (np.arange(xb * bin_px) + 0.5) / bin_px - 0.5
        coords = np.meshgrid(ry, rx, indexing="ij")
        out = ndimage.map_coordinates(img, coords, order=order, mode="nearest")
    pad = ((0, max(0, shape[0] - out.shape[0])), (0, max(0, shape[1] - out.shape[1])))
    return np.pad(out, pad, mode="edge")[: shape[0], : shape[1]]


# ---------------------------------------------------------------- ICA
def _ica_masks(z: np.ndarray, shape_b: tuple[int, int], params: CandidateParams, n_pcs: int, n_ics: int,
               ) -> list[tuple[np.ndarray, float, float]]:
    """IC filters on the binned grid: (filter (Yb, Xb) sign-corrected, spatial skewness, activity skewness)."""
    from scipy import stats
    from sklearn.decomposition import PCA, FastICA
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):   # small matrices: one BLAS thread is faster, and immune to a busy machine
        return _ica_filters(z, shape_b, params, n_pcs, n_ics, PCA, FastICA, stats.skew)


def _ica_filters(z, shape_b, params, n_pcs, n_ics, PCA, FastICA, skew) -> list[tuple[np.ndarray, float, float]]:
    """:func:`_ica_masks` inside its thread limit (classes and ``skew`` passed in, imported there)."""
    t, p = z.shape
    k = int(min(n_pcs, t - 1, p - 1))
    pca = PCA(n_components=k, svd_solver="randomized", random_state=params.seed)
    scores = pca.fit_transform(z)                       # (T, k) temporal
    filters = pca.components_.T                         # (P, k) spatial, orthonormal
    u = (filters - filters.mean(axis=0)) / (filters.std(axis=0) + 1e-12)
    v = (scores - scores.mean(axis=0)) / (scores.std(axis=0) + 1e-12)
    mu = params.mu
    sig = u if mu == 0 else (v if mu == 1 else np.vstack([(1 - mu) * u, mu * v]))
    ica = FastICA(n_components=int(min(n_ics, k)), whiten="unit-variance", random_state=params.seed,
                  max_iter=400, tol=1e-4)
    sources = ica.fit_transform(sig.astype(np.float64))
    # spatial filters: the spatial rows of the sources (temporal ICA: the spatial PCs unmixed alike)
    spatial = sources[:p] if mu < 1 else u @ ica.components_.T
    out = []
    for i in range(spatial.shape[1]):
        f = spatial[:, i]
        sk = float(skew(f))
        if sk < 0:
            f, sk = -f, -sk
        # the component's activity: the dF/F movie projected on the filter's positive part
        trace = z @ np.maximum(f, 0).astype(np.float32)
        out.append((f.reshape(shape_b).astype(np.float32), sk, float(skew(trace))))
    return out


def _segment_filter(f: np.ndarray, threshold_sd: float, smooth_px: float) -> list[np.ndarray]:
    fs = ndimage.gaussian_filter(f, smooth_px)
    med = float(np.median(fs))
    sd = 1.4826 * float(np.median(np.abs(fs - med))) + 1e-12
    lab, n = ndimage.label(fs > med + threshold_sd * sd)
    return [lab == i for i in range(1, n + 1)]


# ---------------------------------------------------------------- segmentation
def _basins(edges: np.ndarray, diameter_px: float, edge_level: float = 5.0, near_fraction: float = 0.6,
            merge_level: float = 0.0, max_area_px: float = float("inf"),
            images: Sequence[np.ndarray] = (), merge_tolerance: float = 0.015) -> np.ndarray:
    """Marker-based watershed of an edge map.

    Markers are the local minima of the edge map smoothed over ~1/10 cell, deepest first; a
    minimum closer than *near_fraction* cell diameters to an accepted marker is dropped unless an edge
    (a value above *edge_level* x the median) lies on the straight line between them, so
    small cells next to smooth ones keep their own marker.  With *merge_level* > 0 the basins
    are then merged along weak boundaries when they look alike in *images* (:func:`_merge_basins`).
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    sm = ndimage.gaussian_filter(edges, max(1.0, diameter_px / 10))
    pk = peak_local_max(-sm, min_distance=max(1, int(diameter_px / 10)), exclude_border=False)
    pk = pk[np.argsort(sm[tuple(pk.T)], kind="stable")]
    level = edge_level * float(np.median(edges))
    near = max(2.0, diameter_px * near_fraction)
    kept: list[np.ndarray] = []
    for p in pk:
        ok = True
        for q in kept:
            dist = float(np.hypot(*(p - q)))
            if dist >= near:
                continue
            n = int(dist) + 2
            rr = np.rint(np.linspace(p[0], q[0], n)).astype(int)
            cc = np.rint(np.linspace(p[1], q[1], n)).astype(int)
            if edges[rr, cc].max() < level:
                ok = False
                break
        if ok:
            kept.append(p)
    markers = np.zeros(edges.shape, np.int32)
    for i, p in enumerate(kept, start=1):
        markers[p[0], p[1]] = i
    lab = watershed(edges, markers)
    if merge_level > 0:
        lab = _merge_basins(lab, edges, merge_level * float(np.median(edges)), max_area_px, images, merge_tolerance)
    return lab


#: the quantile of the edge values along a shared boundary that decides a merge
_MERGE_QUANTILE = 0.1


def _merge_basins(lab: np.ndarray, edges: np.ndarray, level: float, max_area_px: float,
                  images: Sequence[np.ndarray] = (), tolerance: float = 0.015) -> np.ndarray:
    """Merge adjacent basins that the watershed split inside one cell.

    Two basins are one cell when (a) their shared boundary is weak somewhere: its
    :data:`_MERGE_QUANTILE` quantile of edge values is below *level* (a membrane is an edge
    along its whole length; a line drawn through one cell is not, even where it runs along the
    nucleus' outline), and (b) their interiors look alike in every one of *images* (the mean and
    activity images: one cell has one dye loading and one calcium amplitude; two neighbours
    rarely match in both): the basins' medians differ by less than *tolerance* of their mean.
    Pairs are merged weakest boundary first, as long as the merged basin stays within
    *max_area_px*; the medians of a merged basin are those of its first part.  Labels are
    renumbered 1..n.
    """
    n = int(lab.max()) + 1
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()]).astype(np.int64)
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()]).astype(np.int64)
    v = np.concatenate([np.maximum(edges[:, :-1], edges[:, 1:]).ravel(), np.maximum(edges[:-1, :], edges[1:, :]).ravel()])
    cross = a != b
    if not cross.any():
        return lab
    lo, hi, v = np.minimum(a[cross], b[cross]), np.maximum(a[cross], b[cross]), v[cross]
    code = lo * n + hi
    order = np.lexsort((v, code))
    code, v = code[order], v[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    counts = np.diff(np.r_[starts, code.size])
    med = v[starts + (counts * _MERGE_QUANTILE).astype(np.int64)]     # the quantile of each sorted group
    pairs = code[starts]
    area = np.bincount(lab.ravel(), minlength=n).astype(np.float64)
    medians = [np.nan_to_num(np.asarray(ndimage.median(img, lab, np.arange(n)), np.float64)) for img in images]
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for k in np.argsort(med, kind="stable"):
        if med[k] >= level:
            break
        ra, rb = root(int(pairs[k] // n)), root(int(pairs[k] % n))
        if ra == rb or area[ra] + area[rb] > max_area_px:
            continue
        if any(abs(m[ra] - m[rb]) > tolerance * 0.5 * abs(m[ra] + m[rb]) for m in medians):
            continue
        parent[rb] = ra
        area[ra] += area[rb]
    roots = np.array([root(i) for i in range(n)])
    _, rank = np.unique(roots, return_inverse=True)    # label 0 (never a basin) keeps rank 0
    return rank[lab].astype(lab.dtype)


def _activity(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The activity image: detrended SD over the mean (the dF/F amplitude, flat within a cell)."""
    return sd / np.maximum(mean, 1e-6)


def _merge_images(mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images whose basin medians must agree for a merge: the mean and the activity."""
    m = np.asarray(mean, np.float64)
    return m, _activity(m, np.asarray(sd, np.float64))


def _fluorescence_edges(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Summed gradients of log(mean) and of the activity (detrended SD / mean), each over its median."""
    from skimage.filters import sobel

    m = ndimage.gaussian_filter(mean.astype(np.float64), 1.0)
    act = ndimage.gaussian_filter(_activity(mean, sd), 1.0)
    g1, g2 = sobel(np.log(np.maximum(m, 1e-6))), sobel(act)
    return g1 / (np.median(g1) + 1e-12) + g2 / (np.median(g2) + 1e-12)


def _membrane_edges(still: np.ndarray, diameter_px: float) -> np.ndarray:
    """Dark membranes of a brightfield still (Sato ridge filter), over the median response."""
    from skimage.filters import sato

    img = np.asarray(still, np.float64)
    img = img / (ndimage.gaussian_filter(img, diameter_px) + 1e-12)   # flatten vignetting
    ridge = sato(img, sigmas=(1.0, 2.0), black_ridges=True)
    return ridge / (np.median(ridge) + 1e-12)


# ---------------------------------------------------------------- candidates and traces
def _masks_to_candidates(masks: Sequence[np.ndarray], footprints: Sequence[np.ndarray | None], source: str,
                         ) -> list[Candidate]:
    order = []
    for i, mk in enumerate(masks):
        rr, cc = np.nonzero(mk)
        order.append((float(rr.mean()), float(cc.mean()), i))
    order.sort()
    out = []
    for n, (_, _, i) in enumerate(order, start=1):
        rr, cc = np.nonzero(masks[i])
        box = (int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1)
        sub = masks[i][box[0]:box[2], box[1]:box[3]]
        fp = footprints[i]
        out.append(Candidate(name=f"c{n:04d}", box=box, submask=sub, trace=np.zeros(0, np.float32), source=source,
                             footprint=None if fp is None else fp[box[0]:box[2], box[1]:box[3]].astype(np.float32)))
    return out


def _traces(movie: np.ndarray, cands: list[Candidate]) -> Generator[Progress, None, None]:
    """Mean raw fluorescence over each mask per frame (one pass in blocks: gather, then sums by segment)."""
    n_t, n_y, n_x = movie.shape
    if not cands:
        return
    idx, counts = [], []
    for c in cands:
        rr, cc = np.nonzero(c.submask)
        idx.append((rr + c.box[0]) * n_x + cc + c.box[1])
        counts.append(rr.size)
    flat = np.concatenate(idx)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty((len(cands), n_t), np.float32)
    blocks = _blocks(n_t)
    for k, (a, b) in enumerate(blocks):
        x = np.asarray(movie[a:b]).reshape(b - a, -1)[:, flat].astype(np.float32)
        out[:, a:b] = (np.add.reduceat(x, starts, axis=1) / np.asarray(counts, np.float32)).T
        yield Progress("traces", (k + 1) / len(blocks), f"frames {b} of {n_t}")
    for j, c in enumerate(cands):
        c.trace = out[j]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (0 when both are empty)."""
    inter = np.logical_and(a, b).sum()
    return float(inter / max(1, np.logical_or(a, b).sum()))


def carry_labels(old: Sequence[Candidate], new: Sequence[Candidate], shape: tuple[int, int],
                 min_iou: float = 0.5) -> tuple[int, int]:
    """Give each candidate of *new* the decision the user made on the *old* candidate covering the same pixels
    (IoU >= *min_iou*, best match first); returns ``(carried, lost)`` counts of the user's decisions."""
    mine = [c for c in old if c.labelled_by == "user" and c.label]
    if not mine or not new:
        return 0, len(mine)
    masks = [c.mask(shape) for c in new]
    taken: set[int] = set()
    carried = 0
    for c in mine:
        m = c.mask(shape)
        ious = [(mask_iou(m, n), j) for j, n in enumerate(masks) if j not in taken]
        best = max(ious, default=(0.0, -1))
        if best[0] >= min_iou:
            taken.add(best[1])
            new[best[1]].label, new[best[1]].labelled_by = c.label, "user"
            carried += 1
    return carried, len(mine) - carried


def match_cells(candidates: Sequence[Candidate], cell_labels: np.ndarray, cell_ids: Sequence[int] | None = None,
                min_iou: float = 0.5, min_area_px: float = 0.0) -> tuple[float, dict[int, tuple[str, float]]]:
    """Recall of true cells by candidates at IoU >= *min_iou*.

    Parameters
    ----------
    candidates
        The candidates (their masks are compared).
    cell_labels
        int ``(Y, X)`` true label map (0 = no cell), e.g. :attr:`Simulation.cell_labels
        <napari_micromotion.simulate.Simulation.cell_labels>` (cell index + 1).
    cell_ids
        The label values to find (e.g. ``sim.active_cells + 1``); ``None``: every label > 0.
    min_iou
        Intersection over union needed for a match.
    min_area_px
        Leave out cells with fewer pixels in the frame (slivers cut by the frame's edge).

    Returns
    -------
    recall, matches
        The fraction of *cell_ids* matched, and for each matched id ``(candidate name, IoU)``
        of its best candidate (a candidate may match one cell only: IoU > 0.5 is unique anyway).
    """
    labels = np.asarray(cell_labels)
    areas = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    ids = np.unique(labels[labels > 0]) if cell_ids is None else np.asarray(list(cell_ids), int)
    ids = ids[areas[ids] >= min_area_px]
    check(ids.size > 0, "there are no cells to match.")
    best: dict[int, tuple[str, float]] = {}
    for c in candidates:
        r0, c0, r1, c1 = c.box
        sub = labels[r0:r1, c0:c1]
        got = sub[c.submask]
        if got.size == 0:
            continue
        inter = np.bincount(got, minlength=areas.size)
        for cid in np.nonzero(inter)[0]:
            if cid == 0:
                continue
            iou = inter[cid] / (areas[cid] + c.area_px - inter[cid])
            if iou >= min_iou and iou > best.get(int(cid), ("", -1.0))[1]:
                best[int(cid)] = (c.name, float(iou))
    matches = {int(i): best[int(i)] for i in ids if int(i) in best}
    return len(matches) / ids.size, matches


# ---------------------------------------------------------------- driver
def iter_extract(fluorescence: np.ndarray, fps: float, params: CandidateParams = CandidateParams(), *,
                 transmission: np.ndarray | None = None) -> Generator[Progress, None, Extraction]:
    """Extract cell candidates from a fluorescence movie, as a generator of :class:`Progress`.

    Parameters
    ----------
    fluorescence
        ``(T, Y, X)`` movie (any real dtype; uint16 is read a block of frames at a time).
    fps
        Frame rate.
    params
        :class:`CandidateParams`.
    transmission
        Optional brightfield still ``(Y, X)`` (or a movie, whose mean frame is used) for ``segment``.

    Returns
    -------
    Extraction
    """
    check(hasattr(fluorescence, "shape") and len(fluorescence.shape) == 3,
          "the fluorescence movie must be 3D (frames, rows, columns).")
    n_t, n_y, n_x = (int(v) for v in fluorescence.shape)
    check(n_t >= MIN_FRAMES_CANDIDATES,
          f"candidate extraction needs at least {MIN_FRAMES_CANDIDATES} frames, got {n_t}.")
    check(n_y >= 16 and n_x >= 16, f"frames must be at least 16 x 16 px for candidate extraction, got {n_y} x {n_x}.")
    check(isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0,
          f"fps must be positive, got {fps!r}.")
    params.validate()
    still = None
    if transmission is not None:
        still = np.asarray(transmission)
        if still.ndim == 3:
            still = np.mean(still, axis=0, dtype=np.float64)
        check(still.shape == (n_y, n_x), "the transmission image must have the fluorescence frames' shape.")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    yield Progress("statistics", 0.0, "estimating the cell size")
    # cell size from a few frames' mean, then bins: ~10 px cells, at most max_frames frames
    sub = np.asarray(fluorescence[:: max(1, n_t // 64)], np.float32).mean(axis=0)
    diameter = float(params.diameter_px) if params.diameter_px else estimate_diameter_px(sub)
    check(diameter <= min(n_y, n_x),
          f"a cell diameter of {diameter:.0f} px is larger than the {n_y} x {n_x} px frames"
          + ("." if params.diameter_px else " (estimated from the mean image): set the cell diameter."))
    bin_px = max(1, int(diameter // 10))
    bin_frames = max(1, math.ceil(n_t / params.max_frames))
    stats_ = yield from _pass_stats(fluorescence, bin_px, bin_frames)
    timings["statistics"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    shape_b = stats_.binned.shape[1:]
    z = _dff(stats_.binned, fps / bin_frames)
    area_disc = math.pi * diameter ** 2 / 4
    min_area = params.min_area_px if params.min_area_px is not None else 0.15 * area_disc
    max_area = params.max_area_px if params.max_area_px is not None else 3.0 * area_disc
    rng = np.random.default_rng(params.seed)
    sync = _sync_index(z, shape_b, 1.5 * diameter / bin_px, rng)
    method = params.method
    if method == "auto":
        if np.isfinite(sync) and sync >= params.sync_threshold:
            method, reason = "segment", (f"distant regions fire together (synchrony {sync:.2f} >= "
                                         f"{params.sync_threshold}): segmentation")
        else:
            method, reason = "ica", (f"distant regions fire independently (synchrony {sync:.2f} < "
                                     f"{params.sync_threshold}): PCA/ICA")
    else:
        reason = f"{method} requested (synchrony {sync:.2f})"
    timings["decide"] = time.perf_counter() - t1
    yield Progress("candidates", 0.0, reason)

    t2 = time.perf_counter()
    masks: list[np.ndarray] = []
    footprints: list[np.ndarray | None] = []
    if method == "ica":
        n_cells = n_y * n_x / (0.87 * diameter ** 2)
        n_pcs = params.n_pcs or int(round(1.5 * n_cells + 10))
        n_ics = params.n_ics or max(2, n_pcs - 5)
        ics = _ica_masks(z, shape_b, params, n_pcs, n_ics)
        yield Progress("candidates", 0.6, f"{len(ics)} independent components")
        basins = None
        if params.ica_basins:   # cell borders from the image: one IC segment may cover two touching cells
            edges = _fluorescence_edges(stats_.mean, stats_.sd_detrended)
            if still is not None and params.use_transmission:
                edges = edges + params.membrane_weight * _membrane_edges(still, diameter)
            basins = _basins(edges, diameter, merge_level=params.merge_level, max_area_px=max_area,
                             images=_merge_images(stats_.mean, stats_.sd_detrended),
                             merge_tolerance=params.merge_tolerance)
            basin_area = np.bincount(basins.ravel())
        kept: list[tuple[float, np.ndarray, np.ndarray]] = []
        for f, sk, tsk in ics:
            if tsk < params.min_activity_skew:   # no transients: a noise component
                continue
            for seg in _segment_filter(f, params.threshold_sd, 0.7):
                full = _upsample(seg.astype(np.float32), bin_px, (n_y, n_x), 0) > 0.5
                if not (min_area <= int(full.sum()) <= max_area):   # specks and global components
                    continue
                fp = _upsample(np.where(seg, f, 0.0).astype(np.float32), bin_px, (n_y, n_x), 0)
                parts = [full]
                if basins is not None:
                    ids, counts = np.unique(basins[full], return_counts=True)
                    covered = ids[counts >= 0.5 * basin_area[ids]]
                    if covered.size:
                        parts = [basins == b for b in covered]
                for part in parts:
                    area = int(part.sum())
                    if min_area <= area <= max_area:
                        kept.append((sk * float(f[seg].mean()) * float((fp * part).sum() / max(1, area)),
                                     part, np.where(part, fp, 0.0).astype(np.float32)))
        kept.sort(key=lambda k: -k[0])
        for score, full, fp in kept:     # duplicates (IoU > 0.5): keep the stronger component's
            if any(mask_iou(full, m) > 0.5 for m in masks):
                continue
            masks.append(full)
            footprints.append(fp)
        source = "ica"
        reason += f"; {len(ics)} ICs of {min(n_pcs, z.shape[0] - 1, z.shape[1] - 1)} PCs, mu {params.mu}"
    else:
        edges = _fluorescence_edges(stats_.mean, stats_.sd_detrended)
        if still is not None and params.use_transmission:
            edges = edges + params.membrane_weight * _membrane_edges(still, diameter)
            source = "brightfield"
            reason += "; watershed of the mean and activity images and the brightfield membranes (ridge filter)"
        else:
            source = "segment"
            reason += "; watershed of the mean and activity images"
        lab = _basins(edges, diameter, merge_level=params.merge_level, max_area_px=max_area,
                      images=_merge_images(stats_.mean, stats_.sd_detrended), merge_tolerance=params.merge_tolerance)
        areas = np.bincount(lab.ravel())
        for i in np.nonzero((areas >= min_area) & (areas <= max_area))[0]:
            if i == 0:
                continue
            masks.append(lab == i)
            footprints.append(None)
    cands = _masks_to_candidates(masks, footprints, source)
    timings["candidates"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    yield from _traces(fluorescence, cands)
    timings["traces"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    yield Progress("candidates", 1.0, f"{len(cands)} candidates ({method})")
    return Extraction(cands, method, reason, stats_.mean, stats_.correlation, timings, diameter, sync)


def extract(fluorescence: np.ndarray, fps: float, params: CandidateParams = CandidateParams(), *,
            transmission: np.ndarray | None = None, progress: Any = None, cancel: Any = None) -> Extraction:
    """:func:`iter_extract` run to completion (*progress* gets each :class:`Progress`; *cancel* returns True to stop)."""
    return drive(iter_extract(fluorescence, fps, params, transmission=transmission), progress=progress, cancel=cancel)
