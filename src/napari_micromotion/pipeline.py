"""The analysis: every method, streamed over pixel chunks, as a generator of progress.

:func:`iter_analysis` is a generator that yields
:class:`~napari_micromotion.progress.Progress` events and returns
:class:`Results`; :func:`run_analysis` is its synchronous wrapper (scripts, tests,
CLI), napari runs the generator in a ``thread_worker``.  Closing the generator
(napari's cancel, or :func:`~napari_micromotion.progress.drive` with ``cancel``)
stops it between chunks; nothing outside it has changed by then.

Data flow
---------
1. ROIs become masks once; the ground truth is the fluorescence summed over the
   frame (and over each ROI), as dF/F0 with a running baseline (default) or raw.
2. Pass A over pixel chunks (rows of the frame; memory ~ chunk x frames): band-pass
   every pixel, then per method predict, score the validation frames against the
   ground truth (score and lag maps), and sum predictions over ROIs.  The same pass
   gathers training pixels for the 1D CNN and the ROI boxes for the 3D network.
3. The 1D CNN is trained on the training frames (or a saved model is used); pass B
   applies it to every pixel.
4. One region-specific 3D network per ROI, initialised from the 1D CNN.
5. ROI scores with circular-shift p-values, beats, detection limits.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Generator, Sequence

import numpy as np

from .chunks import ArraySource, ChunkJob, ChunkResult, CNNSpec, GatherSpec, MatchedSpec, process_chunk
from .beats import BeatParams, beat_stats, beats_from_energy, beats_from_fluorescence
from .detectors.cnn1d import (CNN1DParams, Normalisation, TrainedCNN1D, build_cnn1d, initial_feature_rms,
                              iter_train_cnn1d, resolve_device)
from .detectors.cnn3d import CNN3DParams, TrainedCNN3D, iter_train_cnn3d
from .detectors.matched import MatchedParams, find_training_spikes
from .errors import MicromotionError, check
from .filters import BandpassDesign, baseline, design_bandpass, dff, min_frames_for
from .limits import CameraParams, detection_limit
from .progress import Progress, drive
from .recording import Recording
from .rois import ROI, RoiMasks, rasterize
from .scoring import max_lag_frames, score_columns, surrogate_p_value

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "AnalysisParams",
    "Results",
    "iter_analysis",
    "run_analysis",
    "default_validation",
    "parse_validation",
    "training_segments",
]

METHODS = ("bandpass", "matched", "cnn1d", "cnn3d")
METHOD_LABELS = {"bandpass": "band-pass", "matched": "matched filter", "cnn1d": "1D CNN", "cnn3d": "3D network"}
#: methods whose output is squared before scoring (filters; Fig. 4)
SQUARED = ("bandpass", "matched")
PAPER_FRAMES = 10570
PAPER_VALIDATION = 3072


def default_validation(n_frames: int) -> tuple[int, int]:
    """Frames 0:3072 (the paper's frames 1-3072) for >= 10570 frames, else the first 29 %."""
    if n_frames >= PAPER_FRAMES:
        return 0, PAPER_VALIDATION
    return 0, int(round(n_frames * PAPER_VALIDATION / PAPER_FRAMES))


def parse_validation(text: str) -> tuple[int, int]:
    """Parse ``START:STOP`` (0-based, half-open frames)."""
    parts = str(text).split(":")
    check(len(parts) == 2 and all(p.strip().lstrip("-").isdigit() for p in parts),
          f"validation range must look like START:STOP in frames (e.g. 0:3072), got {text!r}.")
    return int(parts[0]), int(parts[1])


def training_segments(n_frames: int, validation: tuple[int, int]) -> list[tuple[int, int]]:
    """Frame ranges outside the validation range."""
    v0, v1 = validation
    return [(a, b) for a, b in ((0, v0), (v1, n_frames)) if b > a]


@dataclass(frozen=True)
class AnalysisParams:
    """Everything that shapes a result (recorded in ``run.json`` and layer metadata).

    Attributes
    ----------
    methods
        Subset of :data:`METHODS`.
    low_hz, high_hz, filter_order
        Band-pass (3 dB edges of the zero-phase response, Butterworth order).
        ``None``: 2 Hz and 15 Hz (the paper), the high edge lowered to 80 % of Nyquist
        for slow cameras (with a warning).
    padtype
        Band-pass edge extension, ``"mean"`` or ``"odd"`` (see :func:`~napari_micromotion.filters.design_bandpass`).
    validation
        ``(start, stop)`` frames scored (0-based, half-open); ``None``: :func:`default_validation`.
        Everything else is training.
    max_lag_s
        Lag window of the score in seconds (``None``: full cross-correlation).
    ground_truth
        ``"dff"``: dF/F0 with a running baseline (bleaching removed); ``"sum"``: raw sum.
    baseline_window_s
        Window of the running baseline.
    roi_truth
        Score ROI traces against the fluorescence of the ROI itself (else of the whole frame).
    seed
        Seed of every random choice (network weights, pixel sampling, surrogates).
    n_surrogates
        Circular-shift surrogates per ROI p-value.
    chunk_mb
        Working memory per pixel chunk in MiB.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"`` for the networks.
    """

    methods: tuple[str, ...] = ("bandpass",)
    low_hz: float | None = None
    high_hz: float | None = None
    filter_order: int = 2
    padtype: str = "mean"
    validation: tuple[int, int] | None = None
    max_lag_s: float | None = 1.0
    ground_truth: str = "dff"
    baseline_window_s: float = 10.0
    roi_truth: bool = False
    seed: int = 0
    n_surrogates: int = 999
    chunk_mb: int = 256
    device: str = "auto"
    matched: MatchedParams = MatchedParams()
    cnn1d: CNN1DParams = CNN1DParams()
    cnn3d: CNN3DParams = CNN3DParams()
    beats: BeatParams = BeatParams()
    camera: CameraParams = CameraParams()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["cnn3d"]["ridge_alphas"] = list(self.cnn3d.ridge_alphas)
        return d


@dataclass
class Results:
    """Everything an analysis produced (see :mod:`napari_micromotion.export` for files)."""

    params: AnalysisParams
    fps: float
    n_frames: int
    frame_shape: tuple[int, int]
    pixel_size_um: float | None
    validation: tuple[int, int]
    training: list[tuple[int, int]]
    passband: dict[str, Any]
    methods: list[str]
    still: np.ndarray
    energy_map: np.ndarray
    score_maps: dict[str, np.ndarray] = field(default_factory=dict)
    lag_maps: dict[str, np.ndarray] = field(default_factory=dict)
    activity_map: np.ndarray | None = None
    truth: np.ndarray | None = None
    roi_names: list[str] = field(default_factory=list)
    roi_kinds: list[str] = field(default_factory=list)
    roi_masks: np.ndarray | None = None
    rois: list[ROI] = field(default_factory=list)
    roi_truth: dict[str, np.ndarray] = field(default_factory=dict)
    roi_traces: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    roi_sd: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    roi_scores: list[dict[str, Any]] = field(default_factory=list)
    beats: list[dict[str, Any]] = field(default_factory=list)
    beat_rates: list[dict[str, Any]] = field(default_factory=list)
    limits: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[str, tuple[tuple[int, int, int, int], np.ndarray]] = field(default_factory=dict)
    cnn1d: TrainedCNN1D | None = None
    cnn3d: dict[str, TrainedCNN3D] = field(default_factory=dict)
    spikes_s: list[float] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps

    def scored_methods(self) -> list[str]:
        return [m for m in self.methods if m in self.score_maps or any(k[1] == m for k in self.roi_traces)]

    def score_of(self, roi: str, method: str) -> dict[str, Any] | None:
        for row in self.roi_scores:
            if row["roi"] == roi and row["method"] == method:
                return row
        return None


# ---------------------------------------------------------------- planning
@dataclass
class _Plan:
    design: BandpassDesign
    validation: tuple[int, int]
    training: list[tuple[int, int]]
    methods: list[str]
    masks: RoiMasks | None
    warnings: list[str]
    device: str


def _plan(rec: Recording, rois: Sequence[ROI], params: AnalysisParams, model_1d: TrainedCNN1D | None) -> _Plan:
    warn: list[str] = []
    methods = list(dict.fromkeys(params.methods))
    check(methods, "choose at least one method.")
    unknown = [m for m in methods if m not in METHODS]
    check(not unknown, f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}.")
    check(params.ground_truth in ("dff", "sum"), f"ground truth must be 'dff' or 'sum', got {params.ground_truth!r}.")
    check(params.baseline_window_s > 0, "the baseline window must be positive.")
    check(isinstance(params.n_surrogates, (int, np.integer)) and params.n_surrogates >= 1,
          "the number of surrogates must be a positive integer.")
    check(params.chunk_mb >= 1, "chunk_mb must be at least 1.")
    check(params.max_lag_s is None or (math.isfinite(params.max_lag_s) and params.max_lag_s >= 0),
          f"max lag must be >= 0 seconds, got {params.max_lag_s!r}.")
    fps = rec.fps
    nyq = fps / 2
    low = 2.0 if params.low_hz is None else params.low_hz
    if params.high_hz is None:
        high = 15.0
        if high >= 0.8 * nyq:
            high = round(0.8 * nyq, 3)
            warn.append(f"the default 15 Hz high edge is above 80% of Nyquist at {fps:g} fps; using {high:g} Hz.")
            check(low < high, f"at {fps:g} fps no band-pass above {low:g} Hz fits below Nyquist; set --passband.")
    else:
        high = params.high_hz
    design = design_bandpass(fps, low, high, params.filter_order, padtype=params.padtype)
    n = rec.n_frames
    need = min_frames_for(design)
    check(n >= need, f"the recording has {n} frames; the {low:g}-{high:g} Hz band-pass needs at least {need}.")
    validation = tuple(params.validation) if params.validation is not None else default_validation(n)
    check(len(validation) == 2, "validation must be (start, stop).")
    v0, v1 = int(validation[0]), int(validation[1])
    check(0 <= v0 < v1 <= n, f"validation frames {v0}:{v1} lie outside the recording's {n} frames (0:{n}).")
    if rec.has_fluorescence:  # without a ground truth nothing is scored, so any range will do
        check(v1 - v0 >= 16, f"validation range {v0}:{v1} is too short to score (needs at least 16 frames).")
    training = training_segments(n, (v0, v1))
    needs_training = [m for m in methods if m in ("matched", "cnn3d") or (m == "cnn1d" and model_1d is None)]
    if needs_training:
        check(training, f"validation {v0}:{v1} covers the whole recording; {', '.join(needs_training)} need training frames.")
    if not rec.has_fluorescence:
        check(not [m for m in needs_training],
              f"{', '.join(needs_training)} must be trained on a fluorescence ground truth, which this recording lacks.")
        warn.append("no fluorescence: predictions and beats only, no scores.")
    masks = rasterize(list(rois), rec.frame_shape) if rois else None
    if "cnn3d" in methods:
        check(masks is not None, "the 3D network is region-specific: draw or load at least one ROI.")
        check(any(b - a >= params.cnn3d.window for a, b in training) or
              sum(b - a for a, b in training) >= params.cnn3d.window,
              f"the 3D network needs training windows of {params.cnn3d.window} frames; the training frames are shorter.")
    if model_1d is not None:
        if abs(model_1d.fps - fps) > 1e-3 * fps:
            warn.append(f"the 1D model was trained at {model_1d.fps:g} fps; this recording is at {fps:g} fps.")
        if tuple(model_1d.passband_hz) != (low, high):
            warn.append(f"the 1D model was trained with a {model_1d.passband_hz[0]:g}-{model_1d.passband_hz[1]:g} Hz "
                        f"passband; this analysis uses {low:g}-{high:g} Hz.")
    params.matched.validate()
    params.cnn1d.validate()
    params.cnn3d.validate()
    device = resolve_device(params.device) if any(m in methods for m in ("cnn1d", "cnn3d")) else "cpu"
    return _Plan(design, (v0, v1), training, methods, masks, warn, device)


# ---------------------------------------------------------------- helpers
def row_chunks(n_frames: int, shape: tuple[int, int], chunk_mb: int, arrays: int = 8) -> list[tuple[int, int]]:
    ny, nx = shape
    per_row = n_frames * nx * 4 * arrays
    rows = max(1, int(chunk_mb * 2**20 // max(per_row, 1)))
    return [(r, min(r + rows, ny)) for r in range(0, ny, rows)]


def _ground_truth(rec: Recording, masks: RoiMasks | None, params: AnalysisParams, chunk_frames: int = 256):
    """Whole-frame and per-ROI fluorescence sums (float64), streamed over time."""
    fl = rec.fluorescence
    if fl.ndim == 1:
        return np.asarray(fl, dtype=np.float64), {}
    n = rec.n_frames
    total = np.zeros(n)
    per_roi = np.zeros((n, len(masks))) if masks is not None else None
    wm = masks.weight_matrix(np.float64) if masks is not None else None
    for a in range(0, n, chunk_frames):
        block = np.asarray(fl[a:a + chunk_frames], dtype=np.float64).reshape(-1, rec.frame_shape[0] * rec.frame_shape[1])
        total[a:a + chunk_frames] = block.sum(axis=1)
        if wm is not None:
            per_roi[a:a + chunk_frames] = block @ wm
    rois = {name: per_roi[:, i] for i, name in enumerate(masks.names)} if masks is not None else {}
    return total, rois


def _as_truth(trace: np.ndarray, fps: float, params: AnalysisParams) -> np.ndarray:
    if params.ground_truth == "dff":
        return dff(trace, fps, params.baseline_window_s)
    return np.asarray(trace, dtype=np.float64)


class _TopK:
    """Keep the k columns with the largest key seen so far (for variance-ranked pixel sampling)."""

    def __init__(self, k: int, n_t: int) -> None:
        self.k = k
        self.keys = np.full(0, -np.inf)
        self.idx = np.zeros(0, np.int64)
        self.data = np.zeros((0, n_t), np.float32)

    def offer_rows(self, keys: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> None:
        """Merge candidates (``rows``: one series per candidate) and keep the best k."""
        if self.k <= 0 or keys.size == 0:
            return
        all_keys = np.concatenate([self.keys, keys])
        all_idx = np.concatenate([self.idx, idx])
        all_data = np.concatenate([self.data, rows])
        keep = np.argsort(all_keys, kind="stable")[::-1][: self.k]
        self.keys, self.idx, self.data = all_keys[keep], all_idx[keep], all_data[keep]


def _cnn_spec(model: TrainedCNN1D, device: str) -> CNNSpec:
    from .detectors import fast

    return CNNSpec(weights=fast.weights_of(model.net), input_scale=model.normalisation.input_scale,
                   mode=model.normalisation.mode, device=device, net=model.net if device != "cpu" else None)


def local_chunks(jobs: Sequence[ChunkJob]):
    """Process chunk jobs one after the other in this process."""
    for job in jobs:
        yield process_chunk(job)


# ---------------------------------------------------------------- the analysis
def iter_analysis(recording: Recording, rois: Sequence[ROI] = (), params: AnalysisParams = AnalysisParams(), *,
                  model_1d: TrainedCNN1D | None = None, train_only: bool = False,
                  run_chunks: Callable[[Sequence[ChunkJob]], Any] = local_chunks,
                  filtered_out: Any = None, predictions_out: dict[str, Any] | None = None
                  ) -> Generator[Progress, None, Results]:
    """Run the chosen methods; yields :class:`Progress`, returns :class:`Results`.

    Parameters
    ----------
    recording
        The :class:`~napari_micromotion.recording.Recording`.
    rois
        Regions of interest (optional; the 3D network needs at least one).
    params
        :class:`AnalysisParams`.
    model_1d
        A trained 1D CNN to apply instead of training one.
    train_only
        Only train the 1D CNN (``Results.cnn1d``); skip scoring, ROI traces and beats.
    run_chunks
        Maps :func:`~napari_micromotion.chunks.process_chunk` over a list of jobs and yields
        the results in any order: :func:`local_chunks` (default) or a dask client's
        (:func:`napari_micromotion.distributed.dask_chunks`).
    filtered_out
        Optional ``(T, Y, X)`` array-like (e.g. a zarr array) that receives the band-passed video.
    predictions_out
        Optional ``{method: (T, Y, X) array-like}`` receiving per-pixel predictions (filters squared).

    Raises
    ------
    MicromotionError
        Any problem with the input, raised before long work starts where possible.
    """
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    rec = recording
    if train_only:
        check(model_1d is None, "train_only needs no model_1d.")
        params = replace(params, methods=("cnn1d",))
    plan = _plan(rec, rois, params, model_1d)
    design, (v0, v1), training = plan.design, plan.validation, plan.training
    methods, masks = plan.methods, plan.masks
    fps, n_t = rec.fps, rec.n_frames
    ny, nx = rec.frame_shape
    n_pix = ny * nx
    rng = np.random.default_rng(params.seed)
    warn = list(plan.warnings)
    max_lag = max_lag_frames(params.max_lag_s, fps, v1 - v0)

    # ------------------------------------------------------------ ground truth
    t0 = time.perf_counter()
    yield Progress("ground truth", 0.0, "summing fluorescence")
    truth = None
    roi_truth: dict[str, np.ndarray] = {}
    fl_baseline = None
    if rec.has_fluorescence:
        raw, roi_raw = _ground_truth(rec, masks, params)
        truth = _as_truth(raw, fps, params)
        roi_truth = {k: _as_truth(v, fps, params) for k, v in roi_raw.items()}
        b = baseline(raw, fps, params.baseline_window_s)
        fl_baseline = (b / b.mean()).astype(np.float32)
        if np.std(truth[v0:v1]) == 0:
            raise MicromotionError("the fluorescence ground truth is constant over the validation frames; nothing to score.")
    timings["ground truth"] = time.perf_counter() - t0
    yield Progress("ground truth", 1.0, "done")

    # ------------------------------------------------------------ matched-filter spikes
    onsets = None
    spikes_s: list[float] = []
    pre = int(round(params.matched.pre_s * fps))
    post = int(round(params.matched.post_s * fps))
    if "matched" in methods:
        onsets, spikes = find_training_spikes(truth, fps, training, params.matched)
        spikes_s = [float(v) / fps for v in spikes.onsets]

    # ------------------------------------------------------------ accumulators
    energy = np.zeros(n_pix, np.float32)
    pix_mean = np.zeros(n_pix, np.float32)
    score_maps: dict[str, np.ndarray] = {}
    lag_maps: dict[str, np.ndarray] = {}
    activity = np.zeros(n_pix, np.float32) if (rec.has_fluorescence and rec.fluorescence.ndim == 3
                                               and not train_only) else None
    roi_w = masks.weight_matrix(np.float32) if masks is not None else None
    n_roi = len(masks) if masks is not None else 0
    roi_sums: dict[str, np.ndarray] = {}
    roi_filtered_mean = np.zeros((n_t, n_roi), np.float64) if masks is not None else None
    frame_energy = np.zeros(n_t, np.float64)      # whole-frame traces for beats without ROIs
    frame_filtered = np.zeros(n_t, np.float64)
    cnn_in_pass_a = "cnn1d" in methods and model_1d is not None
    cnn_train = model_1d is None and ("cnn1d" in methods or "cnn3d" in methods)
    scored = [] if train_only else (
        [m for m in methods if m in ("bandpass", "matched")] + (["cnn1d"] if cnn_in_pass_a else []))
    for m in scored:
        score_maps[m] = np.zeros(n_pix, np.float32)
        lag_maps[m] = np.zeros(n_pix, np.float32)
    if n_roi and not train_only:
        for m in ["bandpass"] + [m for m in methods if m == "matched"] + (["cnn1d"] if cnn_in_pass_a else []):
            roi_sums[m] = np.zeros((n_t, n_roi), np.float64)
    # training pixels for the 1D CNN
    cp = replace(params.cnn1d, seed=params.seed, device=plan.device)
    cnn_mode = model_1d.normalisation.mode if model_1d is not None else cp.input_norm
    n_random = n_top = 0
    random_idx = np.zeros(0, np.int64)
    if cnn_train:
        if cp.pixels == "all":
            need = n_pix * n_t * 4
            from .io import default_memory_budget

            check(need <= default_memory_budget(), f"training on all {n_pix} pixels needs {need / 2**30:.1f} GiB; "
                  "sample pixels instead (--cnn-pixels variance --cnn-n-pixels N).")
            random_idx = np.arange(n_pix)
        else:
            k = min(cp.n_pixels, n_pix)
            n_top = {"random": 0, "variance": k, "mixed": k // 2}[cp.pixels]
            n_random = k - n_top
            random_idx = np.sort(rng.choice(n_pix, size=n_random, replace=False)) if n_random else random_idx
    top = _TopK(n_top, n_t)
    random_cols = np.zeros((random_idx.size, n_t), np.float32)
    train_mask = np.zeros(n_t, bool)
    for a, b in training:
        train_mask[a:b] = True
    boxes: dict[str, tuple[int, int, int, int]] = {}
    box_data: dict[str, np.ndarray] = {}
    if "cnn3d" in methods:
        for i, name in enumerate(masks.names):
            rs, cs = masks.box(i)
            boxes[name] = (rs.start, rs.stop, cs.start, cs.stop)
            box_data[name] = np.zeros((n_t, rs.stop - rs.start, cs.stop - cs.start), np.float32)

    # ------------------------------------------------------------ pass A (chunk jobs)
    chunks = row_chunks(n_t, (ny, nx), params.chunk_mb)
    t0 = time.perf_counter()
    method_time: dict[str, float] = {m: 0.0 for m in methods}
    src = ArraySource.of(rec.transmission)
    fl_src = ArraySource.of(rec.fluorescence) if activity is not None else None
    gather_boxes = {k: v for k, v in boxes.items()}
    cnn_spec = _cnn_spec(model_1d, plan.device) if cnn_in_pass_a else None

    def job_for(r0: int, r1: int, **kw: Any) -> ChunkJob:
        lo, hi = r0 * nx, r1 * nx
        return ChunkJob(transmission=src, rows=(r0, r1), nx=nx, design=design, validation=(v0, v1), max_lag=max_lag,
                        fps=fps, truth=truth, roi_weights=roi_w[lo:hi] if roi_w is not None else None, **kw)

    jobs_a = []
    for r0, r1 in chunks:
        lo, hi = r0 * nx, r1 * nx
        gather = None
        if cnn_train or gather_boxes:
            sel = random_idx[(random_idx >= lo) & (random_idx < hi)] if cnn_train else np.zeros(0, np.int64)
            gather = GatherSpec(random_idx=sel, n_top=n_top if cnn_train else 0, train_mask=train_mask,
                                boxes={k: b for k, b in gather_boxes.items() if b[0] < r1 and b[1] > r0}, mode=cnn_mode)
        jobs_a.append(job_for(
            r0, r1, scored=tuple(scored), roi_methods=tuple(m for m in roi_sums), cnn=cnn_spec, gather=gather,
            matched=MatchedSpec(onsets, pre, post) if "matched" in methods and not train_only else None,
            fluorescence=fl_src, fl_baseline=fl_baseline, filtered_store=filtered_out,
            prediction_stores={m: v for m, v in (predictions_out or {}).items() if m in ("bandpass", "matched")
                               or (m == "cnn1d" and cnn_in_pass_a)}))
    random_pos = {int(g): k for k, g in enumerate(random_idx)}
    # partial sums are folded in chunk order after the pass, so results do not depend on completion order
    partial: dict[int, ChunkResult] = {}
    for ci, res in enumerate(run_chunks(jobs_a)):
        r0, r1 = res.rows
        sl = slice(r0 * nx, r1 * nx)
        pix_mean[sl] = res.mean
        energy[sl] = res.energy
        partial[r0] = ChunkResult(rows=res.rows, roi_sums=res.roi_sums, roi_filtered=res.roi_filtered,
                                  frame_energy=res.frame_energy, frame_filtered=res.frame_filtered)
        for m, v in res.scores.items():
            score_maps[m][sl] = v
            lag_maps[m][sl] = res.lags_s[m]
        if res.activity is not None:
            activity[sl] = res.activity
        if res.random_cols is not None:
            random_cols[[random_pos[int(g)] for g in res.random_idx]] = res.random_cols
        if res.top_cols is not None:
            top.offer_rows(res.top_keys, res.top_idx, res.top_cols)
        for name, (a, b, blk) in res.boxes.items():
            box_data[name][:, a:b, :] = blk
        for m, v in res.seconds.items():
            method_time[m] = method_time.get(m, 0.0) + v
        yield Progress("band-pass", (ci + 1) / len(chunks), f"rows {r0}-{r1} of {ny}")
    for r0 in sorted(partial):
        res = partial[r0]
        frame_energy += res.frame_energy
        frame_filtered += res.frame_filtered
        if res.roi_filtered is not None:
            roi_filtered_mean += res.roi_filtered
        for m, v in res.roi_sums.items():
            roi_sums[m] += v
    del partial
    timings["pass A (band-pass, matched, maps)"] = time.perf_counter() - t0
    check(energy.max() > 0, "the transmission never changes in any pixel (a constant video); there is no motion to detect.")
    n_const = int(np.count_nonzero(energy == 0))
    if n_const:
        warn.append(f"{n_const} pixel(s) never change over time; they score 0.")

    # ------------------------------------------------------------ 1D CNN training
    cnn_model = model_1d
    if cnn_train:
        t0 = time.perf_counter()
        cols = np.concatenate([random_cols, top.data]) if top.data.size else random_cols
        check(cols.shape[0] > 0, "no pixels to train the 1D CNN on.")
        train_vals = cols[:, train_mask]
        input_scale = float(np.sqrt(np.mean(train_vals.astype(np.float64) ** 2)))
        check(input_scale > 0, "the band-passed transmission is zero in every training pixel; nothing to learn.")
        tm, ts = float(truth[train_mask].mean()), float(truth[train_mask].std())
        check(ts > 0, "the fluorescence ground truth is constant over the training frames; nothing to learn.")
        target = ((truth - tm) / ts).astype(np.float32)
        net0 = build_cnn1d(cp.seed)
        # the Glorot-initialised ReLU stack attenuates by ~1e-4..1e-5; an input gain that gives the
        # untrained network unit-RMS features (exact: zero biases make it positively homogeneous)
        # shortens the initial plateau of the loss
        input_scale *= initial_feature_rms(net0, cols[: min(256, cols.shape[0])] / input_scale)
        inputs = (cols / input_scale).astype(np.float32)
        del cols, train_vals, random_cols
        net, losses, epoch_losses = yield from iter_train_cnn1d(inputs, target, training, cp, init=net0)
        cnn_model = TrainedCNN1D(
            net=net, normalisation=Normalisation(input_scale, tm, ts, mode=cnn_mode), fps=fps,
            passband_hz=(design.low_hz, design.high_hz), filter_order=design.order, training_frames=list(training),
            loss_curve=losses, epoch_loss=epoch_losses, params={**asdict(cp), "ground_truth": params.ground_truth},
            device=plan.device, n_training_pixels=int(inputs.shape[0]), seconds=time.perf_counter() - t0)
        del inputs
        timings["train cnn1d"] = time.perf_counter() - t0
        method_time["cnn1d"] = method_time.get("cnn1d", 0.0) + timings["train cnn1d"]
    if train_only:
        timings["total"] = time.perf_counter() - t_all
        return Results(params=params, fps=fps, n_frames=n_t, frame_shape=(ny, nx), pixel_size_um=rec.pixel_size_um,
                       validation=(v0, v1), training=training, passband=design.as_dict(), methods=["cnn1d"],
                       still=rec.still_frame(), energy_map=energy.reshape(ny, nx), truth=truth.astype(np.float32),
                       cnn1d=cnn_model, timings_s=timings, warnings=warn, device=plan.device)

    # ------------------------------------------------------------ pass B: 1D CNN everywhere
    if "cnn1d" in methods and not cnn_in_pass_a:
        t0 = time.perf_counter()
        score_maps["cnn1d"] = np.zeros(n_pix, np.float32)
        lag_maps["cnn1d"] = np.zeros(n_pix, np.float32)
        if n_roi:
            roi_sums["cnn1d"] = np.zeros((n_t, n_roi), np.float64)
        spec = _cnn_spec(cnn_model, plan.device)
        stores = {m: v for m, v in (predictions_out or {}).items() if m == "cnn1d"}
        jobs_b = [job_for(r0, r1, scored=("cnn1d",), roi_methods=("cnn1d",), cnn=spec, basics=False,
                          prediction_stores=stores) for r0, r1 in chunks]
        sums_b: dict[int, np.ndarray] = {}
        for ci, res in enumerate(run_chunks(jobs_b)):
            r0, r1 = res.rows
            sl = slice(r0 * nx, r1 * nx)
            if "cnn1d" in res.scores:
                score_maps["cnn1d"][sl] = res.scores["cnn1d"]
                lag_maps["cnn1d"][sl] = res.lags_s["cnn1d"]
            if "cnn1d" in res.roi_sums:
                sums_b[r0] = res.roi_sums["cnn1d"]
            yield Progress("cnn1d", (ci + 1) / len(chunks), f"rows {r0}-{r1} of {ny}")
        for r0 in sorted(sums_b):
            roi_sums["cnn1d"] += sums_b[r0]
        timings["pass B (1D CNN inference)"] = time.perf_counter() - t0
        method_time["cnn1d"] = method_time.get("cnn1d", 0.0) + timings["pass B (1D CNN inference)"]

    # ------------------------------------------------------------ 3D networks
    cnn3d_models: dict[str, TrainedCNN3D] = {}
    roi_traces: dict[tuple[str, str], np.ndarray] = {}
    roi_sd: dict[tuple[str, str], np.ndarray] = {}
    if "cnn3d" in methods:
        t0 = time.perf_counter()
        p3 = replace(params.cnn3d, seed=params.seed, device=plan.device)
        norm = cnn_model.normalisation
        for name, box in boxes.items():
            tgt_raw = roi_truth[name] if params.roi_truth else truth
            tm, ts = float(tgt_raw[train_mask].mean()), float(tgt_raw[train_mask].std())
            check(ts > 0, f"the ground truth for ROI {name!r} is constant over the training frames.")
            target = ((tgt_raw - tm) / ts).astype(np.float32)
            inputs = box_data[name] / np.float32(norm.input_scale)
            model = yield from iter_train_cnn3d(name, box, inputs, target, training, cnn_model.net, p3)
            model.target_mean, model.target_sd = tm, ts
            cnn3d_models[name] = model
            roi_traces[(name, "cnn3d")] = model.prediction
            roi_sd[(name, "cnn3d")] = model.mc_sd
            del inputs
        timings["cnn3d"] = time.perf_counter() - t0
        method_time["cnn3d"] = timings["cnn3d"]
    del box_data

    # ------------------------------------------------------------ ROI scores
    t0 = time.perf_counter()
    roi_scores: list[dict[str, Any]] = []
    if masks is not None:
        for m, sums in roi_sums.items():
            for i, name in enumerate(masks.names):
                roi_traces[(name, m)] = sums[:, i].astype(np.float32)
        order = [m for m in METHODS if m in methods]
        n_jobs = len(masks.names) * len(order)
        done = 0
        for i, (name, kind) in enumerate(zip(masks.names, masks.kinds)):
            ref = roi_truth[name] if (params.roi_truth and name in roi_truth) else truth
            for m in order:
                done += 1
                tr = roi_traces.get((name, m))
                if tr is None:
                    continue
                row: dict[str, Any] = {"roi": name, "kind": kind, "method": m, "n_pixels": int(masks.n_pixels[i])}
                if ref is not None:
                    p, s = surrogate_p_value(tr[v0:v1], ref[v0:v1], max_lag, n_surrogates=params.n_surrogates,
                                             seed=params.seed + i)
                    _, lag = score_columns(tr[v0:v1, None], ref[v0:v1], max_lag)
                    row.update(score=s, lag_s=float(lag[0]) / fps, p_value=p)
                else:
                    row.update(score=float("nan"), lag_s=float("nan"), p_value=float("nan"))
                roi_scores.append(row)
                yield Progress("roi scores", done / max(n_jobs, 1), f"{name} / {m}")
    timings["roi scores"] = time.perf_counter() - t0

    # ------------------------------------------------------------ beats and limits
    t0 = time.perf_counter()
    beats: list[dict[str, Any]] = []
    beat_rates: list[dict[str, Any]] = []
    limits: list[dict[str, Any]] = []
    still = rec.still_frame()
    regions: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray | None]] = []
    if masks is not None:
        for i, (name, kind) in enumerate(zip(masks.names, masks.kinds)):
            regions.append((name, kind, roi_sums["bandpass"][:, i], roi_filtered_mean[:, i] / masks.n_pixels[i],
                            masks.masks[i]))
    else:
        regions.append(("frame", "other", frame_energy, frame_filtered / n_pix, np.ones((ny, nx), bool)))
    for name, kind, energy_tr, filt_mean, mask in regions:
        sources = [("transmission", beats_from_energy(energy_tr, fps, params.beats))]
        if rec.has_fluorescence and (name in roi_truth or truth is not None):
            ftrace = roi_truth.get(name, truth)
            sources.append(("fluorescence", beats_from_fluorescence(ftrace, fps, params.beats,
                                                                    already_dff=params.ground_truth == "dff")))
        for source, times in sources:
            rr = np.diff(times)
            for k, tb in enumerate(times):
                beats.append({"roi": name, "kind": kind, "source": source, "beat": k + 1, "time_s": float(tb),
                              "rr_s": float(rr[k - 1]) if k > 0 else float("nan")})
            beat_rates.append({"roi": name, "kind": kind, "source": source, **beat_stats(times)})
        lim = detection_limit(still, mask, filt_mean, design, rec.pixel_size_um, params.camera)
        limits.append({"roi": name, "kind": kind, **lim})
    timings["beats and limits"] = time.perf_counter() - t0
    timings.update({f"method {m}": v for m, v in method_time.items()})
    timings["total"] = time.perf_counter() - t_all
    yield Progress("done", 1.0, f"finished in {timings['total']:.1f} s")

    weights = {name: (mdl.box, mdl.weights) for name, mdl in cnn3d_models.items()}
    return Results(
        params=params, fps=fps, n_frames=n_t, frame_shape=(ny, nx), pixel_size_um=rec.pixel_size_um,
        validation=(v0, v1), training=training, passband=design.as_dict(), methods=methods, still=still,
        energy_map=energy.reshape(ny, nx),
        score_maps={m: v.reshape(ny, nx) for m, v in score_maps.items()} if truth is not None else {},
        lag_maps={m: v.reshape(ny, nx) for m, v in lag_maps.items()} if truth is not None else {},
        activity_map=activity.reshape(ny, nx) if activity is not None else None,
        truth=truth.astype(np.float32) if truth is not None else None,
        roi_names=masks.names if masks is not None else [], roi_kinds=masks.kinds if masks is not None else [],
        roi_masks=masks.masks if masks is not None else None, rois=list(masks.rois) if masks is not None else [],
        roi_truth={k: v.astype(np.float32) for k, v in roi_truth.items()},
        roi_traces=roi_traces, roi_sd=roi_sd, roi_scores=roi_scores, beats=beats, beat_rates=beat_rates,
        limits=limits, weights=weights, cnn1d=cnn_model if "cnn1d" in methods or "cnn3d" in methods else None,
        cnn3d=cnn3d_models, spikes_s=spikes_s, timings_s=timings, warnings=warn, device=plan.device,
    )


def run_analysis(recording: Recording, rois: Sequence[ROI] = (), params: AnalysisParams = AnalysisParams(), *,
                 model_1d: TrainedCNN1D | None = None, progress: Callable[[Progress], None] | None = None,
                 cancel: Callable[[], bool] | None = None, **kwargs: Any) -> Results:
    """Synchronous :func:`iter_analysis` for scripts and tests (keyword arguments are passed on)."""
    return drive(iter_analysis(recording, rois, params, model_1d=model_1d, **kwargs), progress=progress, cancel=cancel)
