"""The analysis: the registered methods, streamed over pixel chunks, as a generator of progress.

:func:`iter_analysis` yields :class:`~napari_micromotion.progress.Progress` events and
returns :class:`~napari_micromotion.results.Results`; :func:`run_analysis` is its
synchronous wrapper (scripts, tests, CLI) and napari runs the generator in a worker.
Closing the generator (napari's cancel, or :func:`~napari_micromotion.progress.drive`
with ``cancel``) stops it between chunks; nothing outside it has changed by then.

It reads as its stages::

    plan -> ground truth -> prepare -> pass A -> fit -> pass B -> regions -> ROI statistics

* plan: check the parameters, the band-pass, the validation/training split and every
  chosen method's requirements (and of the methods they build on), before long work;
* ground truth: the fluorescence summed over the frame and each ROI (dF/F0 by default);
* prepare: each method sets up from the ground truth (e.g. spike onsets);
* pass A over pixel chunks (rows of the frame; memory ~ chunk x frames): band-pass every
  pixel once; methods that are ready predict (score and delay maps, ROI sums), methods
  that learn gather training data;
* fit: methods that gathered learn (the 1D CNN trains);
* pass B: methods that became ready predict every pixel;
* regions: region methods fit one model per ROI (the 3D network);
* ROI statistics: every ROI trace is scored the same way (:mod:`napari_micromotion.roi_stats`),
  beats and detection limits per ROI.

The pipeline holds no method names: it loops over :data:`napari_micromotion.methods.METHODS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Generator, Mapping, Sequence

import numpy as np

from . import schema
from .beats import BeatParams
from .chunks import ArraySource, ChunkJob, ChunkResult, process_chunk
from .errors import MicromotionError, check
from .filters import baseline, design_bandpass, dff, min_frames_for
from .limits import CameraParams
from .methods import METHODS, AnalysisContext, Method
from .progress import Progress, StagePlan, drive
from .recording import Recording
from .results import WHOLE_FIELD, RegionMap, Results
from .roi_stats import beats_and_limits, iter_score_rois
from .rois import ROI, RoiMasks, as_rois, rasterize
from .schema import param
from .scoring import max_lag_frames

__all__ = [
    "AnalysisParams",
    "check_params",
    "Results",
    "analysis_specs",
    "iter_analysis",
    "run_analysis",
    "iter_fit",
    "default_validation",
    "parse_validation",
    "training_segments",
    "row_chunks",
    "local_chunks",
    "plan_analysis",
    "Plan",
]

PAPER_FRAMES = 10570
PAPER_VALIDATION = 3072


def default_validation(n_frames: int) -> tuple[int, int]:
    """Frames 0:3072 (the paper's frames 1-3072) for >= 10570 frames, else the first 29 %."""
    if n_frames >= PAPER_FRAMES:
        return 0, PAPER_VALIDATION
    return 0, int(round(n_frames * PAPER_VALIDATION / PAPER_FRAMES))


def parse_validation(text: str, n_frames: int | None = None) -> tuple[int, int]:
    """Parse ``START:STOP`` (0-based, half-open frames; ``START:`` or ``:STOP`` when *n_frames* is known)."""
    return schema.parse_frame_range(text, n_frames)


def training_segments(n_frames: int, validation: tuple[int, int]) -> list[tuple[int, int]]:
    """Frame ranges outside the validation range."""
    v0, v1 = validation
    return [(a, b) for a, b in ((0, v0), (v1, n_frames)) if b > a]


# ---------------------------------------------------------------- parameters
def default_methods() -> tuple[str, ...]:
    """The methods run when none are chosen: those registered with ``default = True``."""
    return tuple(m.name for m in METHODS if m.default)


#: channels ``--denoise`` can denoise before the analysis
DENOISE_CHANNELS = ("none", "fluorescence", "transmission")

#: where transmission beats come from (:attr:`AnalysisParams.beats_from`)
BEATS_FROM = ("auto", "contraction", "energy")
#: the method whose state gives contraction beats
CONTRACTION_METHOD = "flow"


@dataclass(frozen=True, eq=False)
class AnalysisParams:
    """Everything that shapes a result (recorded in ``run.json`` and layer metadata).

    The common fields below are declared with :func:`napari_micromotion.schema.param`
    (label, help, unit, range, flag); each method's own parameters live in
    ``method_params`` (``{name: its Params dataclass}``, defaults for the others) and
    read as attributes: ``params.cnn1d.epochs``.  :meth:`with_method` replaces them.

    Attributes
    ----------
    methods
        Names of registered methods to run.
    """

    methods: tuple[str, ...] = field(default_factory=lambda: default_methods())
    low_hz: float = param(2.0, label="band-pass low edge", unit="Hz", min=0.01, max=1e4, flag="--passband",
                          flag_part=0, metavar="LOW", decimals=2,
                                 help="Motion slower than this is ignored (drift, focus changes); the paper: 2 Hz.")
    high_hz: float | None = param(None, label="band-pass high edge", unit="Hz", min=0.01, max=1e4, flag="--passband",
                                  flag_part=1, metavar="HIGH", none_text="auto (15 Hz)", decimals=2,
                                  help="Motion faster than this is ignored (camera noise); the paper: 15 Hz, lowered "
                                       "to 80 % of the Nyquist frequency for slow cameras.")
    filter_order: int = param(2, label="filter order", min=1, max=8, flag="--order", advanced=True,
                              help="Steepness of the band-pass edges (Butterworth order per edge).")
    padtype: str = param("mean", label="edge padding", choices=("mean", "odd"), flag="--padtype", advanced=True,
                         help="How the recording is extended at its ends before filtering: mean avoids the noise "
                              "doubling of odd padding at the first frames, where scoring begins.")
    validation: tuple[int, int] | None = param(None, label="validation frames", unit="frames", flag="--validation",
                                               metavar="START:STOP", none_text="auto (the paper's split)",
                                               help="Frames that are scored, START:STOP counted from 0 (STOP not "
                                                    "included); every other frame trains the learned methods.")
    max_lag_s: float | None = param(1.0, label="max lag", unit="s", min=0.0, max=1e4, flag="--max-lag",
                                    none_text="full", none_words=("full", "all"), decimals=3,
                                    help="How far motion and calcium may be shifted against each other when scored; "
                                         "'full' allows any shift as in the paper.")
    ground_truth: str = param("dff", label="ground truth", choices=("dff", "sum"), flag="--ground-truth",
                              help="Calcium as dF/F0 with a running baseline (removes bleaching; default) or the raw "
                                   "fluorescence sum.")
    baseline_window_s: float = param(10.0, label="baseline window", unit="s", min=0.01, max=1e5,
                                     flag="--baseline-window", advanced=True, decimals=2,
                                     help="Length of the running 10th-percentile baseline F0 of dF/F0.")
    roi_truth: bool = param(False, label="per-ROI ground truth", flag="--roi-truth",
                            help="Score each ROI against the calcium of the ROI itself instead of the whole field "
                                 "(needs a fluorescence video).")
    seed: int = param(0, label="seed", min=0, max=2**31 - 1, flag="--seed",
                      help="Seed of every random choice (network weights, pixel sampling, surrogates): the same seed "
                           "gives the same result.")
    n_surrogates: int = param(999, label="p-value surrogates", min=1, max=1_000_000, flag="--surrogates",
                              advanced=True,
                              help="Time-shifted copies of each ROI prediction scored to get its p-value; the "
                                   "smallest p-value possible is 1 / (surrogates + 1).")
    chunk_mb: int = param(256, label="memory per chunk", unit="MiB", min=1, max=1_000_000, flag="--chunk-mb",
                          advanced=True, help="Working memory for one block of pixels; lower it on small machines.")
    device: str = param("auto", label="device", choices=("auto", "cpu", "cuda"), flag="--device", advanced=True,
                        help="Where the networks run: auto picks a CUDA GPU when there is one.")
    beats_from: str = param("auto", label="motion beats from", choices=BEATS_FROM, flag="--beats-from",
                            help="Where beats in the transmission come from: contraction (the displacement of each "
                                 "region, one beat per contraction-relaxation cycle; costs an optical-flow pass), "
                                 "energy (bursts of band-pass energy: fast, but contraction and relaxation can each "
                                 "give a burst), or auto: contraction when the cells visibly contract (a quick look "
                                 "at 64 pairs of frames decides whether the optical-flow pass runs), else energy.")
    beats: BeatParams = param(default_factory=BeatParams, label="Beats",
                              help="Finding beats in the motion and calcium traces.")
    denoise: str = param("none", label="denoise first", choices=DENOISE_CHANNELS, flag="--denoise",
                         help="Denoise a channel with the self-supervised denoiser (trained on the training frames "
                              "only) before the analysis: fluorescence scores against the denoised ground truth; "
                              "transmission denoises the brightfield the methods see (with a warning).")
    denoise_epochs: int = param(8, label="denoiser epochs", min=1, max=200, flag="--denoise-epochs", advanced=True,
                                help="Epochs of the denoiser's training when a channel is denoised first (it stops "
                                     "earlier when held-out frames stop improving or after 10 minutes).")
    camera: CameraParams = param(default_factory=CameraParams, label="Camera (detection limit)",
                                 help="Camera model for the shot-noise detection limit.")
    use_interpolated: bool = param(False, label="use synthesized frames", flag="--use-interpolated", advanced=True,
                                   help="Analyse a video made by the interpolate tool, synthesized frames included "
                                        "(they then train and score like measured ones, and every output says so); "
                                        "without it such a video is refused.")
    method_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        methods = self.methods
        if isinstance(methods, str):      # "bandpass" or "bandpass,cnn1d", as on the command line
            methods = [m.strip() for m in methods.split(",") if m.strip()]
        object.__setattr__(self, "methods", tuple(methods))
        mp = dict(self.method_params or {})
        for name, p in mp.items():
            m = METHODS.get(name)
            if m is not None and isinstance(p, dict):
                mp[name] = schema.build(m.Params, p)
        object.__setattr__(self, "method_params", mp)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "method_params":
            raise AttributeError(name)
        if name in self.__dict__.get("method_params", {}) or name in METHODS:
            return self.method(name)
        raise AttributeError(f"AnalysisParams has no field or method {name!r}")

    def method(self, name: str) -> Any:
        """The parameters of method *name* (its defaults unless set)."""
        p = self.method_params.get(name)
        return p if p is not None else METHODS[name].Params()

    def with_method(self, name: str, params: Any) -> "AnalysisParams":
        """A copy with the parameters of method *name* replaced."""
        return replace(self, method_params={**self.method_params, name: params})

    def replace_values(self, values: Mapping[str, Any]) -> "AnalysisParams":
        """A copy with dotted values replaced (``{"low_hz": 3, "cnn1d.epochs": 5, "beats.smooth_s": 0.1}``)."""
        own = {f.name for f in fields(self)}
        common = {k: v for k, v in values.items() if k.partition(".")[0] in own}
        out = schema.replace_path(self, common) if common else self
        by_method: dict[str, dict[str, Any]] = {}
        for k, v in values.items():
            head, _, rest = k.partition(".")
            if head in own:
                continue
            check(head in METHODS and rest, f"unknown parameter {k!r}.")
            by_method.setdefault(head, {})[rest] = v
        for name, vals in by_method.items():
            out = out.with_method(name, schema.replace_path(out.method(name), vals))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: schema.to_dict(getattr(self, f.name)) for f in fields(self) if f.name != "method_params"}
        for name in list(dict.fromkeys([*METHODS.names(), *self.method_params])):
            d[name] = schema.to_dict(self.method(name)) if name in METHODS else schema.to_dict(self.method_params[name])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AnalysisParams":
        """Parameters read back from ``to_dict`` (``run.json``); unknown methods' settings are dropped."""
        own = {f.name for f in fields(cls)} - {"method_params"}
        common = {k: v for k, v in d.items() if k in own}
        inst = schema.build(cls, common)
        mp = {k: schema.build(METHODS[k].Params, v) for k, v in d.items()
              if k not in own and k in METHODS and isinstance(v, dict)}
        return replace(inst, method_params=mp) if mp else inst

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnalysisParams) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def analysis_specs(methods: Sequence[Method] | None = None) -> list[schema.ParamSpec]:
    """Every analysis parameter: the common ones, then each method's (``cnn1d.epochs``), one section each."""
    out = schema.specs(AnalysisParams)
    for m in (methods if methods is not None else list(METHODS)):
        out += schema.specs(m.Params, prefix=f"{m.name}.", section=m.label)
    return out


# ---------------------------------------------------------------- planning
@dataclass
class Plan:
    """What the analysis will do: the chosen methods, those they build on (in fitting order), the context."""

    chosen: list[str]
    active: list[str]
    ctx: AnalysisContext
    fitted: dict[str, Any] = field(default_factory=dict)
    maps: bool = True
    #: methods run only for their beats (contraction): not scored, their state not kept in the results
    for_beats: tuple[str, ...] = ()

    def method_params(self, name: str) -> Any:
        return METHODS[name].params_of(self.ctx.params)


def _with_dependencies(names: Sequence[str]) -> list[str]:
    out: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        check(name not in path, f"methods {' -> '.join(path + (name,))} depend on each other in a circle.")
        if name in out:
            return
        for dep in METHODS[name].requires.uses:
            visit(dep, path + (name,))
        out.append(name)

    for n in names:
        visit(n, ())
    return out


def measured_fps(rec: Recording) -> float | None:
    """The rate of the measured frames of a video that holds synthesized (interpolated) ones, else ``None``.

    ``fps / K`` with ``K`` = :attr:`Recording.measured_every` (the interpolation factor the
    marker records, or one derived from the count of synthesized frames).
    """
    k = rec.measured_every
    return rec.fps / k if k >= 2 else None


def _design(rec: Recording, params: AnalysisParams, warn: list[str]):
    fps = rec.fps
    low = params.low_hz
    if params.high_hz is None:
        high = 15.0
        # synthesized frames hold nothing above the measured frames' Nyquist frequency, only what the interpolator
        # made up there: the automatic band stays where the measured recording's would be
        measured = measured_fps(rec)
        limit = 0.8 * (measured if measured is not None else fps) / 2
        if high >= limit:
            high = round(limit, 3)
            if measured is not None:
                warn.append(f"the measured frames of this video come at {measured:g} fps (the others are synthesized), "
                            f"so the default high edge is {high:g} Hz, 80% of their Nyquist frequency: above it the "
                            "synthesized frames carry nothing that was measured.")
            else:
                warn.append(f"the default 15 Hz high edge is above 80% of Nyquist at {fps:g} fps; using {high:g} Hz.")
            rate = f"{measured:g} measured frames/s" if measured is not None else f"{fps:g} fps"
            came = rec.provenance.get("fps_from") if isinstance(rec.provenance, dict) else None
            check(low < high, f"at {rate} no band-pass above {low:g} Hz fits below the Nyquist frequency; "
                              "choose a lower band-pass low edge, or check the frame rate"
                              + (f" (it came from {came})." if came and came != "user" else "."))
    else:
        high = params.high_hz
        measured = measured_fps(rec)
        if measured is not None and high > measured / 2:
            warn.append(f"the band-pass high edge of {high:g} Hz is above {measured / 2:g} Hz, the Nyquist frequency of "
                        f"this video's measured frames ({measured:g} fps; the others are synthesized): what the band "
                        "holds above it was made up by the interpolator, not measured.")
    return design_bandpass(fps, low, high, params.filter_order, padtype=params.padtype)


def contraction_beats_wanted(params: "AnalysisParams") -> bool:
    """Whether this analysis measures contraction for its transmission beats (see ``beats_from``).

    With ``auto`` it does, and keeps the band-pass energy beats when no region's contraction
    shows a beat (:func:`_with_contraction_beats`).
    """
    return params.beats_from != "energy"


def _methods_to_run(params: AnalysisParams, fit_only: str | None) -> tuple[list[str], list[str], tuple[str, ...]]:
    """``(chosen, active, for_beats)``: the scored methods, every method that runs, those run for the beats alone."""
    if fit_only is not None:
        check(fit_only in METHODS, f"unknown method {fit_only!r}; choose from {', '.join(METHODS.names())}.")
        return [], _with_dependencies([fit_only]), ()
    chosen = list(dict.fromkeys(params.methods))
    check(chosen, "choose at least one method.")
    unknown = [m for m in chosen if m not in METHODS]
    check(not unknown, f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS.names())}.")
    chosen = METHODS.order(chosen)
    active = _with_dependencies(chosen)
    if contraction_beats_wanted(params) and CONTRACTION_METHOD in METHODS and CONTRACTION_METHOD not in active:
        return chosen, METHODS.order([*active, CONTRACTION_METHOD]), (CONTRACTION_METHOD,)   # for its beats only
    return chosen, active, ()


def check_params(params: AnalysisParams, fit_only: str | None = None
                 ) -> tuple[list[str], list[str], tuple[str, ...]]:
    """Check what can be checked without a recording: the methods, every value's range, the band's edges.

    :func:`plan_analysis` runs it first; a batch runs it once before it creates anything.
    Returns ``(chosen, active, for_beats)``: the scored methods, every method that runs, and
    those run for the beats alone.
    """
    chosen, active, for_beats = _methods_to_run(params, fit_only)
    schema.check_ranges(params, schema.specs(AnalysisParams))
    for name in active:
        schema.check_ranges(params.method(name), schema.specs(METHODS[name].Params), METHODS[name].label)
    if params.high_hz is not None:
        check(params.low_hz < params.high_hz,
              f"the band-pass low edge ({params.low_hz:g} Hz) must be below the high edge ({params.high_hz:g} Hz).")
    return chosen, active, for_beats


def plan_analysis(rec: Recording, rois: Sequence[ROI], params: AnalysisParams, fitted: Mapping[str, Any] | None = None,
                  *, only_rois: Sequence[str] | None = None, fit_only: str | None = None) -> Plan:
    """Check everything that can be checked before the long work and decide the stages."""
    warn: list[str] = []
    check(isinstance(rec, Recording), f"the analysis needs a Recording (napari_micromotion.Recording(video, fps)), "
                                      f"got {type(rec).__name__}.")
    check(isinstance(params, AnalysisParams), f"the analysis' parameters must be an AnalysisParams, "
                                              f"got {type(params).__name__}.")
    rois = as_rois(rois)
    check(fitted is None or isinstance(fitted, Mapping), "fitted must be a dict {method: fitted state or model}.")
    fitted = {k: v for k, v in (fitted or {}).items() if v is not None}     # None: fit it
    for name in [k for k in fitted if k in METHODS and METHODS[k].kind == "region"]:
        del fitted[name]    # trained on this run's ROIs each time (Results.fits holds one network per ROI)
        warn.append(f"the {METHODS[name].label} trains on each analysis' ROIs; the fitted one given was not reused.")
    if isinstance(only_rois, str):
        only_rois = [only_rois]
    if only_rois is not None:
        names = {r.name for r in rois}
        missing = [n for n in only_rois if n not in names]
        check(not missing, f"no ROI named {', '.join(map(repr, missing))}; the ROIs are "
                           f"{', '.join(sorted(names)) or 'none'}.")
    chosen, active, for_beats = check_params(params, fit_only)
    if CONTRACTION_METHOD in for_beats and params.beats_from == "auto":
        from .kernels.flow import MIN_FRAME_PX

        if min(rec.frame_shape) < MIN_FRAME_PX:     # too small to measure contraction: energy beats, as asked by auto
            active = [m for m in active if m != CONTRACTION_METHOD]
            for_beats = ()
            warn.append(f"frames of {rec.frame_shape[0]} x {rec.frame_shape[1]} px are too small to measure "
                        "contraction; the beats come from band-pass energy.")
    synth = rec.synthesized
    if synth:
        what = f"{synth.get('synthesized_frames') or 'some'} synthesized (interpolated) frames"
        check(params.use_interpolated,
              f"this {synth.get('channel', 'transmission')} video contains {what}, made by the interpolate tool; "
              "analyse the measured recording, or allow synthesized frames (use synthesized frames).",
              cli=f"this {synth.get('channel', 'transmission')} video contains {what}, made by micromotion "
                  "interpolate; analyse the measured recording, or pass --use-interpolated to train and score on "
                  "them too.")
        warn.append(f"the recording contains {what}; they were used for training and scoring (--use-interpolated), "
                    "so these results rest partly on frames that were not measured.")
    design = _design(rec, params, warn)
    n = rec.n_frames
    need = min_frames_for(design)
    check(n >= need, f"the recording has {n} frames; the {design.low_hz:g}-{design.high_hz:g} Hz band-pass "
                     f"needs at least {need}.")
    validation = params.validation if params.validation is not None else default_validation(n)
    check(isinstance(validation, (tuple, list)) and len(validation) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in validation),
          f"validation must be (start, stop) frame numbers, got {validation!r}.")
    v0, v1 = int(validation[0]), int(validation[1])
    check(v0 < v1, f"validation frames {v0}:{v1} are {'empty' if v0 == v1 else 'reversed'}; the first frame "
                   "must come before the stop.")
    check(0 <= v0 < v1 <= n, f"validation frames {v0}:{v1} lie outside the recording's {n} frames (0:{n}).")
    if rec.has_fluorescence:  # without a ground truth nothing is scored, so any range will do
        check(v1 - v0 >= 16, f"validation range {v0}:{v1} is too short to score (needs at least 16 frames).")
    training = training_segments(n, (v0, v1))
    to_fit = [m for m in active if m not in fitted]
    needs_training = [METHODS[m].label for m in to_fit if METHODS[m].requires.training]
    if needs_training:
        check(training, f"the validation frames {v0}:{v1} cover the whole recording; "
                        f"{', '.join(needs_training)} need{'s' if len(needs_training) == 1 else ''} training "
                        "frames.")
    if not rec.has_fluorescence:
        need_fl = [METHODS[m].label for m in to_fit if METHODS[m].requires.fluorescence]
        check(not need_fl, f"{', '.join(need_fl)} learn from the fluorescence, which this recording lacks; "
                           "choose methods that work on brightfield alone.")
        warn.append("no fluorescence: predictions and beats only, no scores.")
    masks = rasterize(list(rois), rec.frame_shape) if rois else None
    if masks is not None:
        warn.extend(masks.clipped)
    for m in active:
        if METHODS[m].requires.rois:
            check(masks is not None, f"the {METHODS[m].label} is region-specific: draw or load at least one ROI.")
    device = "cpu"
    if any(getattr(METHODS[m], "uses_device", False) for m in active):
        from .device import resolve_device

        device = resolve_device(params.device)
    elif params.device not in (None, "", "auto", "cpu"):
        nets = " and ".join(m.label for m in METHODS if getattr(m, "uses_device", False))
        warn.append(f"the device ({params.device}) applies only to the {nets}; none of them runs here, so it was ignored.")
    ctx = AnalysisContext(recording=rec, params=params, design=design, validation=(v0, v1), training=training,
                          masks=masks, device=device, max_lag=max_lag_frames(params.max_lag_s, rec.fps, v1 - v0),
                          warnings=warn, only_rois=frozenset(only_rois) if only_rois is not None else None,
                          beats_only=frozenset(for_beats), probe_beats=params.beats_from == "auto")
    for name in active:
        method = METHODS[name]
        state = fitted.get(name)
        if state is not None:
            state = method.coerce_fitted(state)
            fitted[name] = state
        method.check(ctx, method.params_of(params), state)
    return Plan(chosen=chosen, active=active, ctx=ctx, fitted=fitted, for_beats=for_beats)


# ---------------------------------------------------------------- helpers
def row_chunks(n_frames: int, shape: tuple[int, int], chunk_mb: int, arrays: int = 8,
               rows: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Bands of frame rows whose ``arrays`` float32 working copies fit in *chunk_mb* (within *rows*)."""
    ny, nx = shape
    lo, hi = rows if rows is not None else (0, ny)
    per_row = n_frames * nx * 4 * arrays
    step = max(1, int(chunk_mb * 2**20 // max(per_row, 1)))
    return [(r, min(r + step, hi)) for r in range(lo, hi, step)]


def local_chunks(jobs: Sequence[ChunkJob]):
    """Process chunk jobs one after the other in this process."""
    for job in jobs:
        yield process_chunk(job)


def _as_truth(trace: np.ndarray, fps: float, params: AnalysisParams) -> np.ndarray:
    if params.ground_truth == "dff":
        return dff(trace, fps, params.baseline_window_s)
    return np.asarray(trace, dtype=np.float64)


def _fluorescence_sums(rec: Recording, masks: RoiMasks | None, chunk_frames: int = 256):
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


@dataclass
class _Accumulators:
    """What the passes add up (whole-frame maps, ROI sums, frame traces)."""

    n_t: int
    n_pix: int
    n_roi: int
    energy: np.ndarray
    score_maps: dict[str, np.ndarray] = field(default_factory=dict)
    lag_maps: dict[str, np.ndarray] = field(default_factory=dict)
    null_scores: dict[str, list[np.ndarray]] = field(default_factory=dict)
    activity: np.ndarray | None = None
    roi_sums: dict[str, np.ndarray] = field(default_factory=dict)
    roi_filtered: np.ndarray | None = None
    roi_energy: np.ndarray | None = None
    frame_energy: np.ndarray | None = None
    frame_filtered: np.ndarray | None = None
    method_time: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- stages
def _ground_truth(plan: Plan) -> Generator[Progress, None, np.ndarray | None]:
    """Fill ``ctx.truth`` and ``ctx.roi_truth``; returns the relative baseline (for the activity map)."""
    ctx, params = plan.ctx, plan.ctx.params
    rec = ctx.recording
    yield Progress("ground truth", 0.0, "summing fluorescence")
    fl_baseline = None
    if rec.has_fluorescence:
        raw, roi_raw = _fluorescence_sums(rec, ctx.masks)
        ctx.truth = _as_truth(raw, rec.fps, params)
        ctx.roi_truth = {k: _as_truth(v, rec.fps, params) for k, v in roi_raw.items()}
        b = baseline(raw, rec.fps, params.baseline_window_s)
        fl_baseline = (b / b.mean()).astype(np.float32)
        v0, v1 = ctx.validation
        if np.std(ctx.truth[v0:v1]) == 0:
            raise MicromotionError("the fluorescence ground truth is constant over the validation frames; "
                                   "nothing to score.")
    yield Progress("ground truth", 1.0, "done")
    return fl_baseline


def _prepare(plan: Plan) -> Generator[Progress, None, None]:
    ctx = plan.ctx
    for name in plan.active:
        if name in plan.fitted:
            ctx.states[name] = plan.fitted[name]
        else:
            ctx.states[name] = yield from METHODS[name].prepare(ctx, plan.method_params(name))


def _predictors(plan: Plan, names: Sequence[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        m = METHODS[name]
        if m.kind == "pixel":
            p = m.predictor(plan.ctx.states.get(name), plan.ctx.device)
            if p is not None:
                out[name] = p
    return out


def _band(plan: Plan) -> tuple[int, int] | None:
    """Rows a re-trace must pass over: those of the ROIs to recompute and of what methods gather."""
    ctx = plan.ctx
    if ctx.only_rois is None or ctx.masks is None:
        return None
    rows = [np.nonzero(ctx.masks.masks[ctx.masks.index(n)].any(axis=1))[0] for n in ctx.roi_names()]
    spans = [(int(r[0]), int(r[-1]) + 1) for r in rows if r.size]
    for name in plan.active:
        need = METHODS[name].rows_needed(ctx.states.get(name))
        if need is not None:
            spans.append(need)
    if not spans:
        return (0, 0)
    return min(a for a, _ in spans), max(b for _, b in spans)


def _pass(plan: Plan, acc: _Accumulators, stage: str, *, predict: dict[str, Any], gather: dict[str, Any],
          basics: bool, fl_baseline: np.ndarray | None, run_chunks: Callable, filtered_out: Any,
          predictions_out: Mapping[str, Any] | None) -> Generator[Progress, None, None]:
    """One pass over the pixel chunks: predictions scored and summed, training data gathered."""
    ctx = plan.ctx
    rec = ctx.recording
    ny, nx = rec.frame_shape
    masks = ctx.masks
    roi_w = None
    if masks is not None:
        keep = np.array([ctx.only_rois is None or n in ctx.only_rois for n in masks.names])
        roi_w = (masks.masks.reshape(len(masks), -1).T * keep[None, :]).astype(np.float32)
    scored = tuple(m for m in predict if plan.maps and ctx.truth is not None)
    for m in scored:
        acc.score_maps.setdefault(m, np.zeros(acc.n_pix, np.float32))
        acc.lag_maps.setdefault(m, np.zeros(acc.n_pix, np.float32))
    if acc.n_roi:
        for m in predict:
            acc.roi_sums[m] = np.zeros((acc.n_t, acc.n_roi), np.float64)
    src = ArraySource.of(rec.transmission)
    fl_src = ArraySource.of(rec.fluorescence) if (basics and acc.activity is not None) else None
    stores = {m: v for m, v in (predictions_out or {}).items() if m in predict}
    chunks = row_chunks(acc.n_t, (ny, nx), ctx.params.chunk_mb, rows=_band(plan))
    v0, v1 = ctx.validation
    null_shift = (v1 - v0) // 2 if (v1 - v0) // 2 > ctx.max_lag else 0
    jobs = []
    for r0, r1 in chunks:
        lo, hi = r0 * nx, r1 * nx
        jobs.append(ChunkJob(
            transmission=src, rows=(r0, r1), frame_shape=(ny, nx), design=ctx.design, validation=ctx.validation,
            max_lag=ctx.max_lag, fps=rec.fps, truth=ctx.truth, predict=predict, scored=scored,
            roi_methods=tuple(predict) if acc.n_roi else (), roi_weights=roi_w[lo:hi] if roi_w is not None else None,
            gather=gather, fluorescence=fl_src, fl_baseline=fl_baseline, basics=basics,
            filtered_store=filtered_out if basics else None, prediction_stores=stores,
            null_shift=null_shift if scored else 0))
    # partial sums are folded in chunk order after the pass, so results do not depend on completion order
    partial: dict[int, ChunkResult] = {}
    for ci, res in enumerate(run_chunks(jobs)):
        r0, r1 = res.rows
        sl = slice(r0 * nx, r1 * nx)
        partial[r0] = ChunkResult(rows=res.rows, roi_sums=res.roi_sums, roi_filtered=res.roi_filtered,
                                  roi_energy=res.roi_energy, frame_energy=res.frame_energy,
                                  frame_filtered=res.frame_filtered)
        if res.energy is not None:
            acc.energy[sl] = res.energy
        for m, v in res.scores.items():
            acc.score_maps[m][sl] = v
            acc.lag_maps[m][sl] = res.lags_s[m]
        for m, v in res.null_scores.items():
            acc.null_scores.setdefault(m, []).append(v)
        if res.activity is not None:
            acc.activity[sl] = res.activity
        for m, part in res.gathered.items():
            METHODS[m].fold(ctx.states[m], part, res.rows)
        for m, v in res.seconds.items():
            acc.method_time[m] = acc.method_time.get(m, 0.0) + v
        yield Progress(stage, (ci + 1) / len(chunks), f"rows {r0}-{r1} of {ny}")
    for r0 in sorted(partial):
        res = partial[r0]
        if basics:
            acc.frame_energy += res.frame_energy
            acc.frame_filtered += res.frame_filtered
            if res.roi_filtered is not None:
                acc.roi_filtered += res.roi_filtered
                acc.roi_energy += res.roi_energy
        for m, v in res.roi_sums.items():
            if m in acc.roi_sums:
                acc.roi_sums[m] += v


def _with_contraction_beats(plan: Plan, beats: list, beat_rates: list) -> tuple[list, list, dict]:
    """Replace the band-pass energy beats by contraction beats in every region the contraction covers.

    With ``beats_from`` auto the energy beats stay when no region's contraction shows a beat
    (cells that do not contract, such as neurons' micromotion, give bursts of band-pass energy
    but no displacement above its noise).  Returns the beats, the rates and ``{region: (T,)}``
    the contraction traces the beats were found in (empty when energy beats stay).
    """
    ctx = plan.ctx
    more, more_rates, traces = [], [], {}
    for m in plan.active:
        b, r = METHODS[m].beat_rows(ctx, plan.method_params(m), ctx.states.get(m))
        more += b
        more_rates += r
        traces.update(METHODS[m].beat_traces(ctx, plan.method_params(m), ctx.states.get(m)))
    if not more and ctx.params.beats_from == "auto" and CONTRACTION_METHOD in plan.active:
        if any(b.source == "transmission" for b in beats):
            ctx.warn("no region's displacement rose clearly above its noise, so the transmission's beats come from "
                     "bursts of band-pass energy (choose contraction as the beats' source to use contraction "
                     "anyway).")
        else:
            ctx.warn("no beat was found in the transmission: no region's displacement rose clearly above its "
                     "noise, and no burst of band-pass energy stood out; is the frame rate right, and does the "
                     "recording hold a beat?")
        return beats, beat_rates, {}
    covered = {r.roi for r in more_rates}
    keep = [b for b in beats if not (b.source == "transmission" and b.roi in covered)]
    keep_rates = [r for r in beat_rates if not (r.source == "transmission" and r.roi in covered)]
    return keep + more, keep_rates + more_rates, traces


def _fit(plan: Plan, timings: dict[str, float], acc: _Accumulators, stages: StagePlan | None = None
         ) -> Generator[Progress, None, None]:
    ctx = plan.ctx
    for name in plan.active:
        if name in plan.fitted:
            continue
        t0 = time.perf_counter()
        gen = METHODS[name].fit(ctx, plan.method_params(name), ctx.states[name])
        ctx.states[name] = yield from (stages.track(f"fit {name}", gen) if stages else gen)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            timings[f"fit {name}"] = dt
        acc.method_time[name] = acc.method_time.get(name, 0.0) + dt


def _regions(plan: Plan, timings: dict[str, float], acc: _Accumulators, roi_traces: dict, roi_sd: dict,
             region_maps: dict, stages: StagePlan) -> Generator[Progress, None, None]:
    ctx = plan.ctx
    for name in plan.chosen:
        method = METHODS[name]
        if method.kind != "region":
            continue
        t0 = time.perf_counter()
        fits = yield from stages.track(f"regions {name}", method.fit_regions(ctx, plan.method_params(name),
                                                                             ctx.states[name]))
        for roi, fit in fits.items():
            roi_traces[(roi, name)] = np.asarray(fit.trace, np.float32)
            if fit.sd is not None:
                roi_sd[(roi, name)] = np.asarray(fit.sd, np.float32)
            if fit.map is not None and fit.box is not None:
                region_maps[(name, roi)] = RegionMap(tuple(int(v) for v in fit.box), np.asarray(fit.map, np.float32))
        ctx.states[name] = {roi: fit.model for roi, fit in fits.items()}
        timings[f"regions {name}"] = time.perf_counter() - t0
        acc.method_time[name] = acc.method_time.get(name, 0.0) + timings[f"regions {name}"]


def _stage_plan(plan: Plan) -> StagePlan:
    """Rough relative costs of the stages (a pass over every pixel = 3), for the whole-run progress."""
    active = [METHODS[m] for m in plan.active]
    fitting = [m for m in active if m.name not in plan.fitted]
    preparing = sum(m.prepare_cost for m in fitting)
    weights = [("ground truth", 0.5 if plan.ctx.recording.has_fluorescence else 0.1), ("prepare", 0.2 + preparing),
               ("pass A", 3.0 + sum(m.predict_cost for m in active if m.name in plan.chosen and m.kind == "pixel"
                                    and m.name in plan.fitted) + sum(0.5 for m in fitting if m.kind == "pixel"))]
    weights += [(f"fit {m.name}", m.fit_cost) for m in fitting]
    weights.append(("pass B", sum(m.predict_cost for m in fitting if m.name in plan.chosen and m.kind == "pixel")))
    n_roi = len(plan.ctx.roi_names())
    weights += [(f"regions {m.name}", m.fit_cost * max(n_roi, 1) / 4) for m in active
                if m.kind == "region" and m.name in plan.chosen]
    weights.append(("roi scores", 0.3))
    return StagePlan(weights)


def _cold_kernels(plan: Plan) -> list[str]:
    """Labels of what will compile its kernels before it runs (first run after installation)."""
    from .filters import kernels_ready

    cold = [] if kernels_ready() else ["band-pass"]
    return cold + [METHODS[m].label for m in plan.active if not METHODS[m].kernels_ready(plan.ctx.states.get(m))]


# ---------------------------------------------------------------- denoising first
def _denoise_channel(rec: Recording, params: AnalysisParams, training: Sequence[tuple[int, int]]
                     ) -> Generator[Progress, None, tuple[Recording, str]]:
    """The recording with one channel denoised (the denoiser trained on the *training* frames only) and a note."""
    import torch

    from .tools.denoise import DenoiseParams, iter_denoise_checked

    which = params.denoise
    video = rec.fluorescence if which == "fluorescence" else rec.transmission
    check(video is not None and np.ndim(video) == 3,
          "denoising the fluorescence first needs a fluorescence video (not a trace or nothing).")
    frames = [t for a, b in training for t in range(a, b)]
    check(len(frames) >= 20, f"denoising first needs at least 20 training frames outside the validation range, "
                             f"got {len(frames)}.")
    dp = DenoiseParams(epochs=params.denoise_epochs, seed=params.seed, threads=min(2, torch.get_num_threads()),
                       mc_passes=1, samples=20)     # the analysis uses the denoised movie, not its uncertainty
    res = yield from iter_denoise_checked(video, rec.fps, dp, train_frames=frames)   # the recording is checked
    m = res.metrics
    stats = (f"trained on {m['training_frames']} training frames in {res.timings_s.get('train', 0):.0f} s, held-out "
             f"residual / noise {m['heldout_residual_over_noise']:.3f}")
    if which == "fluorescence":
        out = replace(rec, fluorescence=res.denoised)
        note = f"the fluorescence was denoised before scoring ({stats}); scores are against the denoised ground truth."
    else:
        out = replace(rec, transmission=res.denoised)
        note = (f"the transmission was denoised before the analysis ({stats}); the denoiser keeps what neighbouring "
                "frames predict and may smooth fast motion or borrow structure from the mean image, so compare "
                "with an analysis without denoising before trusting a change in the scores.")
    return out, note


# ---------------------------------------------------------------- the analysis
def iter_analysis(recording: Recording, rois: Sequence[ROI] = (), params: AnalysisParams = AnalysisParams(), *,
                  fitted: Mapping[str, Any] | None = None,
                  run_chunks: Callable[[Sequence[ChunkJob]], Any] = local_chunks,
                  filtered_out: Any = None, predictions_out: dict[str, Any] | None = None,
                  only_rois: Sequence[str] | None = None, maps: bool = True
                  ) -> Generator[Progress, None, Results]:
    """Run the chosen methods; yields :class:`Progress`, returns :class:`~napari_micromotion.results.Results`.

    Parameters
    ----------
    recording
        The :class:`~napari_micromotion.recording.Recording`.
    rois
        Regions of interest (optional; region methods need at least one).
    params
        :class:`AnalysisParams`.
    fitted
        ``{method: fitted state or model}`` to apply instead of fitting (e.g. a saved
        model, keyed by the method's name).
    run_chunks
        Maps :func:`~napari_micromotion.chunks.process_chunk` over a list of jobs and yields
        the results in any order: :func:`local_chunks` (default) or a dask client's
        (:func:`napari_micromotion.distributed.dask_chunks`).
    filtered_out
        Optional ``(T, Y, X)`` array-like (e.g. a zarr array) that receives the band-passed video.
    predictions_out
        Optional ``{method: (T, Y, X) array-like}`` receiving per-pixel predictions.
    only_rois
        Compute ROI statistics for these ROIs only, passing over their rows only
        (re-tracing edited ROIs; see :func:`napari_micromotion.retrace.iter_retrace`).
    maps
        Compute the per-pixel score, delay and activity maps.

    Raises
    ------
    MicromotionError
        Any problem with the input, raised before long work starts where possible.
    """
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    plan = plan_analysis(recording, rois, params, fitted, only_rois=only_rois)
    shape = (recording.n_frames, *recording.frame_shape)
    _check_output_array(filtered_out, shape, "filtered_out")
    check(predictions_out is None or isinstance(predictions_out, Mapping),
          "predictions_out must be a dict {method: (T, Y, X) array}.")
    for m, arr in (predictions_out or {}).items():
        check(m in plan.chosen, f"predictions_out names {m!r}, which is not among the chosen methods.")
        _check_output_array(arr, shape, f"predictions_out[{m!r}]")
    if params.denoise != "none":
        t0 = time.perf_counter()
        recording, note = yield from _denoise_channel(recording, params, plan.ctx.training)
        timings["denoise"] = time.perf_counter() - t0
        plan = plan_analysis(recording, rois, params, fitted, only_rois=only_rois)
        plan.ctx.warnings.append(note)
    plan.maps = maps and only_rois is None
    ctx = plan.ctx
    rec = recording
    ny, nx = rec.frame_shape
    n_roi = len(ctx.masks) if ctx.masks is not None else 0

    stages = _stage_plan(plan)
    t0 = time.perf_counter()
    fl_baseline = yield from stages.track("ground truth", _ground_truth(plan))
    timings["ground truth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    yield from stages.track("prepare", _prepare(plan))
    timings["prepare"] = time.perf_counter() - t0
    cold = _cold_kernels(plan)
    if cold:
        yield stages.event("prepare", Progress(
            "compiling kernels", 1.0, f"compiling the fast {', '.join(cold)} code (first run after installation "
                                      "only; about a minute)"))

    acc = _Accumulators(
        n_t=rec.n_frames, n_pix=ny * nx, n_roi=n_roi, energy=np.zeros(ny * nx, np.float32),
        activity=np.zeros(ny * nx, np.float32) if (plan.maps and rec.has_fluorescence and rec.fluorescence.ndim == 3)
        else None,
        roi_filtered=np.zeros((rec.n_frames, n_roi)) if n_roi else None,
        roi_energy=np.zeros((rec.n_frames, n_roi)) if n_roi else None,
        frame_energy=np.zeros(rec.n_frames), frame_filtered=np.zeros(rec.n_frames))
    common = dict(fl_baseline=fl_baseline, run_chunks=run_chunks, filtered_out=filtered_out,
                  predictions_out=predictions_out)
    first = _predictors(plan, plan.chosen)
    gather = {}
    for name in plan.active:
        if name not in plan.fitted:
            g = METHODS[name].gatherer(ctx, plan.method_params(name), ctx.states[name])
            if g is not None:
                gather[name] = g
    t0 = time.perf_counter()
    yield from stages.track("pass A", _pass(plan, acc, "band-pass", predict=first, gather=gather, basics=True,
                                            **common))
    timings["pass A"] = time.perf_counter() - t0
    check(only_rois is not None or acc.energy.max() > 0,
          "the transmission never changes in any pixel (a constant video); there is no motion to detect.")
    n_const = int(np.count_nonzero(acc.energy == 0)) if only_rois is None else 0
    if n_const:
        ctx.warn(f"{n_const} pixel(s) never change over time; they score 0.")

    yield from _fit(plan, timings, acc, stages)
    later = {m: p for m, p in _predictors(plan, plan.chosen).items() if m not in first}
    if later:
        t0 = time.perf_counter()
        labels = ", ".join(METHODS[m].label for m in later)
        yield from stages.track("pass B", _pass(plan, acc, f"predict {labels}", predict=later, gather={},
                                                basics=False, **common))
        timings["pass B"] = time.perf_counter() - t0

    roi_traces: dict[tuple[str, str], np.ndarray] = {}
    roi_sd: dict[tuple[str, str], np.ndarray] = {}
    region_maps: dict[tuple[str, str], RegionMap] = {}
    yield from _regions(plan, timings, acc, roi_traces, roi_sd, region_maps, stages)

    t0 = time.perf_counter()
    names = ctx.roi_names()
    if ctx.masks is not None:
        for m, sums in acc.roi_sums.items():
            for i, name in enumerate(ctx.masks.names):
                if name in names:
                    roi_traces[(name, m)] = sums[:, i].astype(np.float32)
    roi_scores = yield from stages.track("roi scores", iter_score_rois(ctx, roi_traces, plan.chosen))
    timings["roi scores"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    still = rec.still_frame()
    beats, beat_rates, limits = beats_and_limits(ctx, still, acc.roi_energy, acc.roi_filtered, acc.frame_energy,
                                                 acc.frame_filtered)
    contraction: dict[str, np.ndarray] = {}
    if contraction_beats_wanted(params):
        beats, beat_rates, contraction = _with_contraction_beats(plan, beats, beat_rates)
    timings["beats and limits"] = time.perf_counter() - t0
    timings.update({f"method {m}": v for m, v in acc.method_time.items()})
    timings["total"] = time.perf_counter() - t_all
    yield Progress("done", 1.0, f"finished in {timings['total']:.1f} s", overall=1.0)

    masks = ctx.masks
    scored_maps = plan.maps and ctx.truth is not None
    return Results(
        params=params, fps=rec.fps, n_frames=rec.n_frames, frame_shape=(ny, nx), pixel_size_um=rec.pixel_size_um,
        validation=ctx.validation, training=ctx.training, passband=ctx.design.as_dict(), methods=plan.chosen,
        still=still, energy_map=acc.energy.reshape(ny, nx),
        score_maps={m: v.reshape(ny, nx) for m, v in acc.score_maps.items()} if scored_maps else {},
        lag_maps={m: v.reshape(ny, nx) for m, v in acc.lag_maps.items()} if scored_maps else {},
        chance_scores={m: float(np.percentile(np.concatenate(v), 99)) for m, v in acc.null_scores.items()}
        if scored_maps else {},
        activity_map=acc.activity.reshape(ny, nx) if acc.activity is not None else None,
        truth=ctx.truth.astype(np.float32) if ctx.truth is not None else None,
        rois=list(masks.rois) if masks is not None else [], roi_names=masks.names if masks is not None else [],
        roi_kinds=masks.kinds if masks is not None else [], roi_masks=masks.masks if masks is not None else None,
        roi_truth={k: v.astype(np.float32) for k, v in ctx.roi_truth.items()},
        motion_traces=_motion_traces(ctx, acc), contraction_traces=contraction,
        roi_traces=roi_traces, roi_sd=roi_sd, roi_scores=roi_scores, beats=beats, beat_rates=beat_rates,
        limits=limits, region_maps=region_maps, fits={m: ctx.states[m] for m in plan.active if m not in plan.for_beats},
        timings_s=timings, warnings=ctx.warnings, device=ctx.device, inputs=recording_sources(rec),
    )


def _check_output_array(arr: Any, shape: tuple[int, ...], name: str) -> None:
    """Refuse, before the long work, an array that cannot receive a ``(T, Y, X)`` float video."""
    if arr is None:
        return
    got = tuple(getattr(arr, "shape", ()))
    check(got == tuple(shape), f"{name} must have the recording's shape {tuple(shape)}, got {got}.")
    dtype = np.dtype(getattr(arr, "dtype", np.float64))
    check(dtype.kind == "f", f"{name} must hold floats (e.g. float32), got {dtype}: integers would truncate the video.")
    flags = getattr(arr, "flags", None)
    check(flags is None or getattr(flags, "writeable", True), f"{name} is read-only.")
    check(not hasattr(arr, "read_only") or not arr.read_only, f"{name} is read-only.")


def recording_sources(rec: Recording) -> dict[str, Any]:
    """``{channel: {"path": ...}}`` of the files a recording was read from (its provenance), for ``run.json``
    and so that writing results never replaces a folder that holds them."""
    prov = rec.provenance if isinstance(rec.provenance, dict) else {}
    return {key: {"path": str(prov[key]["path"])} for key in ("transmission", "fluorescence")
            if isinstance(prov.get(key), dict) and prov[key].get("path")}


def _motion_traces(ctx: AnalysisContext, acc: _Accumulators) -> dict[str, np.ndarray]:
    """Band-pass energy per ROI (to compute) and, in a full analysis, of the whole field."""
    out = {}
    if ctx.masks is not None:
        out = {n: acc.roi_energy[:, i].astype(np.float32) for i, n in enumerate(ctx.masks.names)
               if n in ctx.roi_names()}
    if ctx.only_rois is None:
        out[WHOLE_FIELD] = acc.frame_energy.astype(np.float32)
    return out


def run_analysis(recording: Recording, rois: Sequence[ROI] = (), params: AnalysisParams = AnalysisParams(), *,
                 progress: Callable[[Progress], None] | None = None, cancel: Callable[[], bool] | None = None,
                 **kwargs: Any) -> Results:
    """Synchronous :func:`iter_analysis` for scripts and tests (keyword arguments are passed on)."""
    return drive(iter_analysis(recording, rois, params, **kwargs), progress=progress, cancel=cancel)


def iter_fit(recording: Recording, params: AnalysisParams, method: str) -> Generator[Progress, None, Any]:
    """Fit one method (and what it builds on) without scoring; returns its fitted state.

    The ``micromotion train`` command saves the result with the method's ``save_model``.
    """
    plan = plan_analysis(recording, [], params, fit_only=method)
    ctx = plan.ctx
    yield from _ground_truth(plan)
    yield from _prepare(plan)
    ny, nx = recording.frame_shape
    acc = _Accumulators(n_t=recording.n_frames, n_pix=ny * nx, n_roi=0, energy=np.zeros(ny * nx, np.float32),
                        frame_energy=np.zeros(recording.n_frames), frame_filtered=np.zeros(recording.n_frames))
    gather = {n: g for n in plan.active
              if (g := METHODS[n].gatherer(ctx, plan.method_params(n), ctx.states[n])) is not None}
    plan.maps = False
    yield from _pass(plan, acc, "band-pass", predict={}, gather=gather, basics=False, fl_baseline=None,
                     run_chunks=local_chunks, filtered_out=None, predictions_out=None)
    yield from _fit(plan, {}, acc)
    return ctx.states[method]

