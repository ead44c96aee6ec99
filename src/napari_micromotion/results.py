"""Typed results of an analysis: table rows as dataclasses, and :class:`Results` itself.

Table rows (:class:`ScoreRow`, :class:`BeatRow`, :class:`BeatRateRow`,
:class:`LimitRow`) are dataclasses whose field order is the column order of their
CSV file; they also read like mappings (``row["score"]``, ``row.get(...)``), so code
and tests can treat a table as a list of records.  :mod:`napari_micromotion.layout`
writes and reads them from their fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator

import numpy as np

__all__ = ["Row", "ScoreRow", "BeatRow", "BeatRateRow", "LimitRow", "RegionMap", "Results", "WHOLE_FIELD"]

#: the region name of the whole field of view (beats and motion without ROIs)
WHOLE_FIELD = "frame"


class Row:
    """A table row: a dataclass that also reads like a mapping of its columns."""

    @classmethod
    def column_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def keys(self) -> list[str]:
        return self.column_names()

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((k, getattr(self, k)) for k in self.column_names())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.column_names()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_text(cls, values: dict[str, str]) -> "Row":
        """A row from CSV text (missing or unreadable numbers become NaN / 0)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            raw = values.get(f.name)
            default = f.default
            if isinstance(default, bool) or f.type in ("bool",):
                kwargs[f.name] = str(raw).strip().lower() in ("1", "true", "yes")
            elif f.type in ("int",):
                v = _float(raw)
                kwargs[f.name] = int(v) if math.isfinite(v) else 0
            elif f.type in ("float",):
                kwargs[f.name] = _float(raw)
            else:
                kwargs[f.name] = "" if raw is None else str(raw)
        return cls(**kwargs)


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


NAN = float("nan")


@dataclass
class ScoreRow(Row):
    """One ROI x method score (``roi_scores.csv``)."""

    roi: str
    kind: str
    method: str
    score: float = NAN
    lag_s: float = NAN
    p_value: float = NAN
    n_pixels: int = 0


@dataclass
class BeatRow(Row):
    """One beat (``beats.csv``): its onset, the interval from the previous one, and its peak."""

    roi: str
    kind: str
    source: str
    beat: int
    time_s: float
    rr_s: float = NAN
    peak_time_s: float = NAN


@dataclass
class BeatRateRow(Row):
    """Rate and variability of one ROI's beats from one source (``beat_rates.csv``)."""

    roi: str
    kind: str
    source: str
    n_beats: int = 0
    rate_bpm: float = NAN
    rr_mean_s: float = NAN
    rr_sd_s: float = NAN
    rmssd_s: float = NAN
    rr_cv: float = NAN


@dataclass
class LimitRow(Row):
    """Shot-noise detection limit of one ROI (``limits.csv``; see :func:`napari_micromotion.limits.detection_limit`)."""

    roi: str
    kind: str
    n_px: int = 0
    n_frames_binned: int = 0
    electrons_per_px: float = NAN
    shot_floor_rel: float = NAN
    shot_floor_rel_at_full_well: float = NAN
    measured_noise_rel_per_frame: float = NAN
    expected_shot_noise_rel_per_frame: float = NAN
    noise_excess: float = NAN
    gradient_rel_per_px: float = NAN
    min_displacement_px: float = NAN
    min_displacement_nm: float = NAN
    min_displacement_nm_measured: float = NAN
    dark_px: int = 0                     # pixels too dark to count in the displacement limit (limits.DARK_FRACTION)


@dataclass
class RegionMap:
    """A map a region method made for one ROI (the 3D network's dense weights), placed at *box*."""

    box: tuple[int, int, int, int]     # row0, row1, col0, col1 (half-open) in the frame
    data: np.ndarray                   # (C, h, w)


@dataclass
class Results:
    """Everything an analysis produced (written by :func:`napari_micromotion.export.write_results`).

    Attributes
    ----------
    params
        The :class:`~napari_micromotion.pipeline.AnalysisParams` of the run.
    methods
        The methods chosen (in registry order).
    score_maps, lag_maps
        ``{method: (Y, X)}`` score and delay (s) maps of pixel methods (with fluorescence).
    chance_scores
        ``{method: score}`` a pixel reaches by chance: the 99th percentile of the scores of
        every 8th pixel against the calcium shifted by half the validation range (the delay
        of a pixel below it means nothing).
    still, energy_map, activity_map
        Mean image; band-pass RMS of dI/I; score of each fluorescence pixel.
    truth, roi_truth
        Whole-frame and per-ROI ground truth (dF/F0 or raw sum).
    motion_traces
        ``{region: (T,)}`` band-pass energy (the motion energy beats are found in) of each ROI,
        and of the whole field under :data:`WHOLE_FIELD`; needs no fluorescence.
    contraction_traces
        ``{region: (T,)}`` mean displacement (px) against the most relaxed frame of each ROI
        (or of the whole field) whose transmission beats come from contraction: the trace
        those beats were found in.  Empty when the beats come from band-pass energy.
    roi_traces, roi_sd
        ``{(roi, method): (T,)}`` ROI predictions and their uncertainty.
    roi_scores, beats, beat_rates, limits
        Tables (lists of typed rows).
    region_maps
        ``{(method, roi): RegionMap}``.
    fits
        ``{method: fitted state}`` of every method the run fitted (chosen ones and those
        they build on); re-tracing edited ROIs reuses them.
    """

    params: Any
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
    chance_scores: dict[str, float] = field(default_factory=dict)
    activity_map: np.ndarray | None = None
    truth: np.ndarray | None = None
    rois: list[Any] = field(default_factory=list)
    roi_names: list[str] = field(default_factory=list)
    roi_kinds: list[str] = field(default_factory=list)
    roi_masks: np.ndarray | None = None
    roi_truth: dict[str, np.ndarray] = field(default_factory=dict)
    motion_traces: dict[str, np.ndarray] = field(default_factory=dict)
    contraction_traces: dict[str, np.ndarray] = field(default_factory=dict)
    roi_traces: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    roi_sd: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    roi_scores: list[ScoreRow] = field(default_factory=list)
    beats: list[BeatRow] = field(default_factory=list)
    beat_rates: list[BeatRateRow] = field(default_factory=list)
    limits: list[LimitRow] = field(default_factory=list)
    region_maps: dict[tuple[str, str], RegionMap] = field(default_factory=dict)
    fits: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"
    inputs: dict[str, Any] = field(default_factory=dict)   # files read back: paths and checksums (run.json)

    def time_s(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps

    @property
    def has_fluorescence(self) -> bool:
        return self.truth is not None or bool(self.roi_truth)

    def score_of(self, roi: str, method: str) -> ScoreRow | None:
        for row in self.roi_scores:
            if row.roi == roi and row.method == method:
                return row
        return None

    def best_method(self, with_map: bool = False) -> str | None:
        """The method whose ROI scores are highest on average (else whose score map reaches highest).

        *with_map*: among the methods with a score map only (pixel methods).
        """
        import math

        def mean_score(m: str) -> float:
            return float(np.mean([r.score for r in self.roi_scores if r.method == m and math.isfinite(r.score)]))

        scored = [m for m in self.methods if any(r.method == m and math.isfinite(r.score) for r in self.roi_scores)
                  and (not with_map or m in self.score_maps)]
        if scored:
            return max(scored, key=mean_score)
        maps = [m for m in self.methods if m in self.score_maps]
        if maps:
            return max(maps, key=lambda m: float(np.nanpercentile(self.score_maps[m], 99)))
        traced = self.traced_methods()
        return traced[-1] if traced else None

    def traced_methods(self) -> list[str]:
        """Methods with at least one ROI trace, in the order of :attr:`methods`."""
        have = {m for _, m in self.roi_traces}
        return [m for m in self.methods if m in have] + sorted(have - set(self.methods))
