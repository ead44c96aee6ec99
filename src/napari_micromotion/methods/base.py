"""The method interface: what one prediction method of the analysis declares and does.

A method turns the transmission video into a prediction of the calcium activity,
per pixel (``kind = "pixel"``: band-pass, matched filter, 1D CNN, ...) or per ROI
(``kind = "region"``: the 3D network).  The analysis
(:func:`napari_micromotion.pipeline.iter_analysis`) drives every method through the
same life cycle, in stages it plans from the methods' :class:`Requirements`:

1. :meth:`Method.check` - refuse impossible settings before any long work;
2. :meth:`Method.prepare` - set up from the ground truth (e.g. spike onsets);
3. pass A over pixel chunks: :meth:`Method.predictor` (ready methods predict every
   pixel, which is scored and summed over ROIs) and :meth:`Method.gatherer`
   (methods that learn collect training data; :meth:`Method.fold` merges it);
4. :meth:`Method.fit` - train on what was gathered (generator of progress);
5. pass B: pixel methods that became ready predict every pixel;
6. :meth:`Method.fit_regions` - region methods, one fit per ROI;
7. the analysis scores every ROI trace the same way, whatever the method.

Predictors and gatherers are small picklable objects (a pass may run on dask
workers); they receive a :class:`PixelChunk`.  The state a method returns from
``prepare``/``fit`` is kept in ``Results.fits[name]``: it is what re-tracing edited
ROIs reuses and what :meth:`Method.save` writes into the output folder.  The state of
a region method is a ``{roi name: fitted model}`` dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator

import numpy as np

from ..progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from ..filters import BandpassDesign
    from ..recording import Recording
    from ..rois import RoiMasks

__all__ = ["Method", "Requirements", "AnalysisContext", "PixelChunk", "RegionFit", "NoParams", "no_progress"]


@dataclass(frozen=True)
class NoParams:
    """Parameters of a method that has none."""


@dataclass(frozen=True)
class Requirements:
    """What a method needs; the analysis plans its stages and checks inputs from this.

    Attributes
    ----------
    fluorescence
        It learns from the fluorescence ground truth (cannot run on brightfield alone).
    training
        It needs training frames outside the validation range.
    rois
        It works per ROI (at least one ROI must be drawn).
    uses
        Other methods whose fitted state it builds on (they are fitted too, but only
        scored when chosen).
    """

    fluorescence: bool = False
    training: bool = False
    rois: bool = False
    uses: tuple[str, ...] = ()


@dataclass
class AnalysisContext:
    """What every method may read during an analysis (built by the pipeline)."""

    recording: "Recording"
    params: Any                          # AnalysisParams
    design: "BandpassDesign"
    validation: tuple[int, int]
    training: list[tuple[int, int]]
    masks: "RoiMasks | None"
    device: str
    max_lag: int
    truth: np.ndarray | None = None      # (T,) whole-frame ground truth
    roi_truth: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)   # prepared / fitted method states
    warnings: list[str] = field(default_factory=list)
    only_rois: frozenset[str] | None = None                # re-tracing: the ROIs to (re)compute
    #: methods measured for their beats alone (not scored: no per-pixel predictions needed)
    beats_only: frozenset[str] = frozenset()
    #: ``beats_from`` is auto: a method measured for its beats alone first checks, cheaply, that it will find any
    probe_beats: bool = False

    @property
    def fps(self) -> float:
        return self.recording.fps

    @property
    def n_frames(self) -> int:
        return self.recording.n_frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.recording.frame_shape

    @property
    def train_mask(self) -> np.ndarray:
        m = np.zeros(self.n_frames, bool)
        for a, b in self.training:
            m[a:b] = True
        return m

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def reference(self, roi: str | None) -> np.ndarray | None:
        """The ground truth an ROI is scored (and trained) against."""
        if roi is not None and self.params.roi_truth and roi in self.roi_truth:
            return self.roi_truth[roi]
        return self.truth

    def roi_names(self) -> list[str]:
        """ROIs to compute (all of them, or the edited ones when re-tracing)."""
        if self.masks is None:
            return []
        return [n for n in self.masks.names if self.only_rois is None or n in self.only_rois]


class PixelChunk:
    """A set of pixels of the recording, band-passed, as a method's predictor sees it.

    Attributes
    ----------
    raw
        ``(T, P)`` transmission of the pixels (may be a read-only view).
    filtered
        ``(T, P)`` float32 band-passed transmission.
    mean
        ``(P,)`` float32 mean intensity of each pixel.
    pixels
        ``(P,)`` flat indices of the pixels in the frame (row * X + col).
    rows
        ``(r0, r1)`` when the chunk is whole frame rows ``r0:r1`` (pass chunks), else ``None``.
    frame_shape, fps
        Of the recording.
    """

    def __init__(self, raw: np.ndarray, filtered: np.ndarray, mean: np.ndarray, pixels: np.ndarray,
                 frame_shape: tuple[int, int], fps: float, rows: tuple[int, int] | None = None) -> None:
        self.raw = raw
        self.filtered = filtered
        self.mean = mean
        self.pixels = pixels
        self.frame_shape = frame_shape
        self.fps = fps
        self.rows = rows
        self._cache: dict[Any, Any] = {}

    @property
    def n_frames(self) -> int:
        return int(self.filtered.shape[0])

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """A value derived from the chunk, computed once and shared by all methods."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def squared(self) -> np.ndarray:
        """``filtered ** 2`` (the band-pass output and the energy maps share it)."""
        return self.cached("squared", lambda: self.filtered * self.filtered)

    def release(self, key: Any) -> None:
        self._cache.pop(key, None)


@dataclass
class RegionFit:
    """What a region method gives for one ROI."""

    trace: np.ndarray                      # (T,) prediction
    sd: np.ndarray | None = None           # (T,) its uncertainty (e.g. Monte-Carlo dropout SD)
    box: tuple[int, int, int, int] | None = None   # row0, row1, col0, col1 of the map below
    map: np.ndarray | None = None          # (C, h, w) e.g. dense weights ("attention", Fig. 5)
    model: Any = None                      # the fitted model (kept in Results.fits)


def no_progress(value: Any = None) -> Generator[Progress, None, Any]:
    """A generator that yields nothing and returns *value* (default hook bodies)."""
    return value
    yield  # pragma: no cover


class Method:
    """Base class of analysis methods (see the module docstring for the life cycle).

    Class attributes
    ----------------
    name
        Identifier used on the command line, in file and column names (``bandpass``).
    label
        Name shown to people ("band-pass").
    description
        One line for ``micromotion methods`` and tooltips.
    kind
        ``"pixel"`` or ``"region"``.
    Params
        Frozen dataclass of the method's parameters, declared with
        :func:`napari_micromotion.schema.param` (forms and options come from it).
    requires
        :class:`Requirements`.
    squared
        The prediction is a squared filter output (plots say so).
    colour
        Colour of its traces in figures.
    default
        Chosen when the user chooses nothing.
    predict_cost, fit_cost, prepare_cost
        Rough cost of predicting every pixel, of fitting and of preparing (a band-pass
        pass over the whole recording costs 3; a region method's fit_cost is for four
        ROIs), only to report the progress of the whole run.
    uses_device
        It runs networks on the analysis device (``auto``/``cpu``/``cuda``).
    model_flag, model_help
        A command-line option to apply a saved model instead of fitting one
        (``--model-1d``); see :meth:`load_model`.
    region_map_path, region_map_label
        Where a region method's maps go in the output folder (``{roi}`` is replaced)
        and what they are called.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "pixel"
    Params: ClassVar[type] = NoParams
    requires: ClassVar[Requirements] = Requirements()
    squared: ClassVar[bool] = False
    colour: ClassVar[str] = "#7f7f7f"
    model_flag: ClassVar[str | None] = None
    model_help: ClassVar[str] = ""
    region_map_path: ClassVar[str] = ""
    region_map_label: ClassVar[str] = "weights"
    uses_device: ClassVar[bool] = False
    default: ClassVar[bool] = False
    predict_cost: ClassVar[float] = 0.3
    fit_cost: ClassVar[float] = 0.2
    prepare_cost: ClassVar[float] = 0.0

    # ------------------------------------------------------------ planning
    def params_of(self, analysis_params: Any) -> Any:
        """This method's parameters in *analysis_params*, with inherited fields (seed, device) filled in."""
        from dataclasses import fields, replace

        p = analysis_params.method(self.name)
        inherited = {f.name: getattr(analysis_params, f.name) for f in fields(p)
                     if f.metadata.get("napari_micromotion", {}).get("inherit")}
        return replace(p, **inherited) if inherited else p

    def check(self, ctx: AnalysisContext, params: Any, fitted: Any = None) -> None:
        """Refuse impossible settings (raise :class:`~napari_micromotion.errors.MicromotionError`);
        ``ctx.warn`` what is possible but doubtful.  *fitted*: a state given by the caller."""

    def coerce_fitted(self, obj: Any) -> Any:
        """A state from what a caller passes as already fitted (e.g. a model object); default: as is."""
        return obj

    def kernels_ready(self, state: Any) -> bool:
        """False when compiled kernels will have to be built before this method runs (a notice is shown)."""
        return True

    def rows_needed(self, state: Any) -> tuple[int, int] | None:
        """Frame rows the gatherer needs when only some ROIs are recomputed (``None``: no more than theirs)."""
        return None

    # ------------------------------------------------------------ fitting
    def prepare(self, ctx: AnalysisContext, params: Any) -> Generator[Progress, None, Any]:
        """Set up before pass A (the ground truth is known); returns the state."""
        return no_progress(None)

    def gatherer(self, ctx: AnalysisContext, params: Any, state: Any) -> Callable[[PixelChunk], Any] | None:
        """A picklable callable collecting training data from each chunk of pass A (``None``: nothing)."""
        return None

    def fold(self, state: Any, part: Any, chunk_rows: tuple[int, int]) -> None:
        """Merge what the gatherer returned for one chunk into *state* (main process)."""

    def fit(self, ctx: AnalysisContext, params: Any, state: Any) -> Generator[Progress, None, Any]:
        """Learn from what was gathered; returns the fitted state."""
        return no_progress(state)

    def fit_regions(self, ctx: AnalysisContext, params: Any, state: Any
                    ) -> Generator[Progress, None, dict[str, RegionFit]]:
        """Region methods: one :class:`RegionFit` per ROI of ``ctx.roi_names()``."""
        return no_progress({})

    # ------------------------------------------------------------ predicting
    def predictor(self, state: Any, device: str = "cpu") -> Callable[[PixelChunk], np.ndarray] | None:
        """A picklable callable ``chunk -> (T, P)`` prediction on *device*, or ``None`` while not fitted."""
        return None

    def beat_rows(self, ctx: AnalysisContext, params: Any, state: Any) -> tuple[list[Any], list[Any]]:
        """Beats this method finds itself (from contraction), as ``(BeatRow list, BeatRateRow list)``.

        Called when the analysis takes its transmission beats from contraction (they then
        replace the band-pass energy beats of the regions they cover).
        """
        return [], []

    def beat_traces(self, ctx: AnalysisContext, params: Any, state: Any) -> dict[str, np.ndarray]:
        """``{region: (T,)}`` the traces :meth:`beat_rows` finds its beats in (contraction, px)."""
        return {}

    # ------------------------------------------------------------ files
    def save(self, state: Any, folder: Path, results: Any) -> None:
        """Write the fitted state (models) into an output folder (``models/`` by convention)."""

    def restore(self, folder: Path | None, results: Any) -> Any:
        """The fitted state of *results* read back from *folder* (``None`` if it cannot be)."""
        return None

    def load_model(self, path: str) -> Any:
        """A state from a saved model file (the option named :attr:`model_flag`)."""
        raise NotImplementedError

    def save_model(self, state: Any, path: Path) -> Path:
        """Write the fitted state as a model file ``micromotion train`` produces."""
        raise NotImplementedError

    def describe_model(self, state: Any) -> str:
        """One line about a fitted state (printed by ``micromotion train``)."""
        return ""

    def __repr__(self) -> str:
        return f"<method {self.name}: {self.label}>"
