"""Synthetic correlative recordings: a beating cell sheet in transmission and calcium fluorescence.

The simulator stands in for the paper's HL-1 recording (no paired public dataset
exists).  One call gives a deterministic (per seed) recording at 50 fps with

* a confluent sheet of cells (Voronoi tessellation) rendered as a brightfield
  image: dark membranes with bright halos, nuclei with nucleoli, granules,
  cytoplasmic texture and vignetting;
* cells that *contract* when their calcium fires: each moving cell pulls its
  material towards its centre by a displacement that is largest at its rim
  (``strong_px`` ~ 2 px in the strong ROI, sub-pixel ``weak_px`` in the weak ROI),
  rendered by cubic-spline resampling of the still image;
* a *silent* cell with calcium transients but no motion, and *other* cells that
  beat on their own rhythm without calcium;
* calcium transients with a fast rise and slower decay (Cal-520-like),
  spontaneous and quasi-periodic (~2.8 s, jittered), dye loading varying per cell;
* photon shot noise at a full-well capacity of 1e5 e- (transmission) and at a
  few thousand e- (fluorescence), read noise, camera offset, 16-bit output;
* slow illumination drift and sub-pixel stage drift in transmission, and
  photobleaching in fluorescence.

Outputs of :func:`write_simulation`: ``transmission.tif`` and ``fluorescence.tif``
(ImageJ hyperstacks with frame interval and pixel size), ``rois.json`` (strong,
weak, silent and other ROIs) and ``truth.json`` (spike onsets, amplitudes, ...).
"""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from scipy import ndimage, spatial

from .errors import Cancelled, MicromotionError, check
from .recording import MIN_FRAMES, Recording
from .rois import ROI

#: calcium firing modes of :attr:`SimulationParams.firing`
FIRING_MODES = ("synchronous", "independent")

__all__ = ["FIRING_MODES", "SimulationParams", "Simulation", "Simulator", "simulate", "iter_simulate", "write_simulation"]


#: parameters that must be finite and positive, non-negative, or within 0-1 (:meth:`SimulationParams.validate`)
_POSITIVE = ("fps", "cell_diameter_um", "full_well_e", "spike_period_s", "calcium_rise_s", "calcium_decay_s",
             "contraction_rise_s", "contraction_decay_s", "other_period_s", "bleach_tau_s")
_NON_NEGATIVE = ("offset_adu", "read_noise_e", "fluorescence_e", "fluorescence_background_e", "dff_amplitude",
                 "contraction_delay_s", "strong_px", "weak_px", "other_px", "illumination_drift", "stage_drift_px")
_FRACTIONS = ("spike_jitter", "background_moving_fraction", "transmission_level")


def _label(name: str) -> str:
    """``contraction_rise_s`` -> ``contraction rise (s)``: a parameter's name with its unit, for messages."""
    for suffix, unit in (("_s", "s"), ("_px", "px"), ("_um", "um"), ("_e", "electrons"), ("_adu", "ADU")):
        if name.endswith(suffix):
            return f"{name[:-len(suffix)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _is_real(v: Any) -> bool:
    """A real number (not a bool, not a string)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class SimulationParams:
    """Parameters of a simulated recording (all times in seconds, lengths in pixels unless named).

    The defaults give the demo recording: 4000 frames (80 s) of 128 x 128 px at 50 fps.
    """

    n_frames: int = 4000
    size: int = 128
    fps: float = 50.0
    seed: int = 0
    #: cell diameter in micrometres (HL-1 cells ~15-20 um); sets the pixel size
    cell_diameter_um: float = 17.0
    #: cells across the frame; default ``max(4.6, size / 56)`` (~56 px cells at 256 px)
    cells_across: float | None = None
    full_well_e: float = 1e5
    #: mean transmission as a fraction of the full well
    transmission_level: float = 0.6
    offset_adu: float = 100.0
    read_noise_e: float = 3.0
    #: mean photo-electrons per pixel of a dye-loaded cell at rest (before bleaching)
    fluorescence_e: float = 2000.0
    fluorescence_background_e: float = 300.0
    dff_amplitude: float = 0.8
    spike_period_s: float = 2.8
    spike_jitter: float = 0.12
    calcium_rise_s: float = 0.03
    calcium_decay_s: float = 0.45
    contraction_delay_s: float = 0.04
    contraction_rise_s: float = 0.05
    contraction_decay_s: float = 0.15
    #: contraction amplitudes at the cell rim, in pixels
    strong_px: float = 2.0
    weak_px: float = 0.12
    other_px: float = 1.5
    other_period_s: float = 2.1
    #: fraction of the remaining cells that beat with calcium, and their amplitude range
    background_moving_fraction: float = 0.35
    background_px: tuple[float, float] = (0.2, 0.8)
    illumination_drift: float = 0.02
    stage_drift_px: float = 0.3
    bleach_tau_s: float = 400.0
    #: low light: scale the fluorescence so that a resting frame holds this many photo-electrons per pixel on
    #: average (e.g. 20); ``None`` keeps ``fluorescence_e`` and ``fluorescence_background_e``
    photons_per_pixel: float | None = None
    #: low light in transmission: mean photo-electrons per pixel of the brightfield (``None``: the full-well level)
    transmission_photons_per_pixel: float | None = None
    #: extra calcium transients, each in one cell alone at a random time (rare single-cell events)
    rare_events: int = 0
    #: cells without dye: regions whose fluorescence holds no signal (background only)
    unloaded_cells: int = 0
    #: ``"synchronous"``: every calcium cell fires with the same beat (a syncytium, the default);
    #: ``"independent"``: each calcium cell has its own spike train (own period, uniform 0.6-1.6 x
    #: ``spike_period_s``, own phase and jitter) and contracts on its own spikes (cell finding, issue 15)
    firing: str = "synchronous"
    #: dye-loaded interior cells (none of the four test ROIs) that never fire: no calcium, no motion
    inactive_cells: int = 0

    def validate(self) -> None:
        """Refuse, in one sentence, any value the simulator cannot use (before any work)."""
        check(isinstance(self.n_frames, (int, np.integer)) and self.n_frames >= MIN_FRAMES,
              f"a simulation needs at least {MIN_FRAMES} frames, got {self.n_frames!r}.")
        check(isinstance(self.size, (int, np.integer)) and 48 <= self.size <= 4096,
              f"simulated frames must be 48-4096 px wide (room for four ROI cells), got {self.size!r}.")
        for names, ok, what in ((_POSITIVE, lambda v: v > 0, "a positive number"),
                                (_NON_NEGATIVE, lambda v: v >= 0, "a non-negative number"),
                                (_FRACTIONS, lambda v: 0 <= v <= 1, "a number from 0 to 1")):
            for name in names:
                v = getattr(self, name)
                check(_is_real(v) and math.isfinite(v) and ok(v), f"{_label(name)} must be {what}, got {v!r}.")
        bg = self.background_px
        check(isinstance(bg, (tuple, list)) and len(bg) == 2 and all(_is_real(v) and math.isfinite(v) and v >= 0
                                                                      for v in bg) and bg[0] <= bg[1],
              f"background (px) must be (low, high) contraction amplitudes with 0 <= low <= high, got {bg!r}.")
        for name in ("spike_period_s", "other_period_s"):
            check(getattr(self, name) >= 2 / self.fps, f"{_label(name)} must span at least two frames "
                  f"({2 / self.fps:g} s at {self.fps:g} fps), got {getattr(self, name)!r}.")
        c = self.cells_across
        check(c is None or (_is_real(c) and math.isfinite(c) and c >= 3),
              f"cells across must be at least 3 (room for the four ROI cells), got {c!r}.")
        check(isinstance(self.seed, (int, np.integer)) and self.seed >= 0, f"seed must be a non-negative integer, got {self.seed!r}.")
        check(self.full_well_e > 0 and 0 < self.transmission_level <= 1, "full well and transmission level must be positive.")
        for name in ("photons_per_pixel", "transmission_photons_per_pixel"):
            v = getattr(self, name)
            check(v is None or (math.isfinite(v) and v > 0), f"{name.replace('_', ' ')} must be positive, got {v!r}.")
        check(self.firing in FIRING_MODES,
              f"firing must be one of {', '.join(FIRING_MODES)}, got {self.firing!r}.")
        for name in ("rare_events", "unloaded_cells", "inactive_cells"):
            v = getattr(self, name)
            check(isinstance(v, (int, np.integer)) and v >= 0,
                  f"{name.replace('_', ' ')} must be a non-negative integer, got {v!r}.")

        check(self.cell_diameter_px >= 8,
              f"simulated cells would be {self.cell_diameter_px:.1f} px wide; {self.n_cells_across:g} cells across "
              f"{self.size} px leave less than the 8 px a cell needs.")

    @property
    def n_cells_across(self) -> float:
        return self.cells_across if self.cells_across else max(4.6, self.size / 56.0)

    @property
    def cell_diameter_px(self) -> float:
        return self.size / self.n_cells_across

    @property
    def pixel_size_um(self) -> float:
        return self.cell_diameter_um / self.cell_diameter_px


@dataclass
class Simulation:
    """An in-memory simulated recording with its ground truth."""

    params: SimulationParams
    transmission: np.ndarray
    fluorescence: np.ndarray
    rois: list[ROI]
    truth: dict[str, Any]
    #: noise-free movies in the same units (ADU, float32), when simulated with ``clean=True``
    transmission_clean: np.ndarray | None = None
    fluorescence_clean: np.ndarray | None = None
    #: the true cells: int32 ``(Y, X)``, cell index + 1 per pixel (the sheet is confluent: no 0)
    cell_labels: np.ndarray | None = None
    #: indices of the cells whose calcium has at least one transient (``cell_labels`` value - 1)
    active_cells: np.ndarray | None = None

    def recording(self) -> Recording:
        return Recording(self.transmission, self.params.fps, self.fluorescence, self.params.pixel_size_um,
                         provenance={"simulated": asdict(self.params)})


# ---------------------------------------------------------------- waveforms
def _kernel(t: np.ndarray, rise: float, decay: float) -> np.ndarray:
    """(1 - exp(-t/rise)) exp(-t/decay) for t >= 0, normalised to peak 1."""
    out = np.zeros_like(t)
    pos = t > 0
    out[pos] = (1 - np.exp(-t[pos] / rise)) * np.exp(-t[pos] / decay)
    tp = rise * math.log(1 + decay / rise)  # time of the maximum
    peak = (1 - math.exp(-tp / rise)) * math.exp(-tp / decay)
    return out / peak


def _spike_train(rng: np.random.Generator, duration_s: float, period_s: float, jitter: float,
                 first_s: float) -> np.ndarray:
    times = []
    t = first_s
    while t < duration_s:
        times.append(t)
        t += period_s * max(0.4, 1 + jitter * rng.standard_normal())
    return np.array(times)


def _waveform(times_s: np.ndarray, onsets_s: np.ndarray, rise: float, decay: float) -> np.ndarray:
    out = np.zeros_like(times_s)
    span = 10 * decay + 5 * rise
    for t0 in onsets_s:
        sel = (times_s > t0) & (times_s < t0 + span)
        out[sel] += _kernel(times_s[sel] - t0, rise, decay)
    return out


def _smooth_walk(rng: np.random.Generator, n: int, smooth: int) -> np.ndarray:
    """A slow random walk with unit peak-to-peak range."""
    w = np.cumsum(rng.standard_normal(n + 2 * smooth))
    w = ndimage.uniform_filter1d(w, size=max(1, smooth))[smooth:smooth + n]
    w -= w.min()
    rng_ = w.max()
    return w / rng_ if rng_ > 0 else w


class Simulator:
    """Builds the cell sheet and time courses once, then renders frames on demand."""

    def __init__(self, params: SimulationParams = SimulationParams()) -> None:
        params.validate()
        self.p = params
        root = np.random.default_rng(params.seed)
        self._rng_layout, self._rng_time, self._rng_noise = (np.random.default_rng(s) for s in root.spawn(3))
        self._build_layout()
        self._build_time_courses()

    # ------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        p, rng = self.p, self._rng_layout
        n = p.size
        d = p.cell_diameter_px
        # jittered hexagonal lattice covering the frame plus a margin
        dy = d * math.sqrt(3) / 2
        seeds = []
        for i, y in enumerate(np.arange(-d, n + d, dy)):
            for x in np.arange(-d + (d / 2 if i % 2 else 0), n + d, d):
                seeds.append((y, x))
        seeds = np.array(seeds) + rng.uniform(-0.22, 0.22, size=(len(seeds), 2)) * d
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
        pts = np.column_stack([yy.ravel(), xx.ravel()])
        tree = spatial.cKDTree(seeds)
        dist, idx = tree.query(pts, k=2)
        s1, s2 = seeds[idx[:, 0]], seeds[idx[:, 1]]
        # distance to the bisector between the nearest two seeds = distance to the membrane
        membrane = ((dist[:, 1] ** 2 - dist[:, 0] ** 2) / (2 * np.linalg.norm(s2 - s1, axis=1))).reshape(n, n)
        labels = idx[:, 0].reshape(n, n)
        used = np.unique(labels)
        remap = -np.ones(len(seeds), dtype=np.int64)
        remap[used] = np.arange(used.size)
        labels = remap[labels]
        seeds = seeds[used]
        self.labels = labels
        self.seeds = seeds
        n_cells = seeds.shape[0]

        img = np.ones((n, n))
        # membranes: a dark line with a bright halo either side
        img += -0.10 * np.exp(-0.5 * (membrane / 0.9) ** 2) + 0.035 * np.exp(-0.5 * ((membrane - 2.0) / 1.0) ** 2)
        # nuclei with a dark rim and nucleoli
        nuc_mask = np.zeros((n, n))
        radius = d / 2
        for c in range(n_cells):
            cy, cx = seeds[c] + rng.normal(0, 0.08 * d, 2)
            a, b = radius * rng.uniform(0.26, 0.34), radius * rng.uniform(0.2, 0.27)
            th = rng.uniform(0, math.pi)
            ry = (yy - cy) * math.cos(th) + (xx - cx) * math.sin(th)
            rx = -(yy - cy) * math.sin(th) + (xx - cx) * math.cos(th)
            rr = np.sqrt((ry / a) ** 2 + (rx / b) ** 2)
            inside = (labels == c)
            img += inside * (-0.03 * (rr < 1) - 0.05 * np.exp(-0.5 * ((rr - 1) * min(a, b) / 0.8) ** 2))
            nuc_mask += inside * (rr < 1)
            for _ in range(rng.integers(1, 3)):
                oy, ox = rng.normal(0, 0.3, 2) * np.array([a, b])
                img += inside * -0.06 * np.exp(-0.5 * (((yy - cy - oy) ** 2 + (xx - cx - ox) ** 2) / 1.0 ** 2))
        self.nucleus = nuc_mask > 0
        # granules (dark and bright vesicles) and smooth cytoplasmic texture
        for sign, density, amp in ((-1, 0.010, 0.05), (1, 0.004, 0.03)):
            g = (rng.random((n, n)) < density).astype(np.float64)
            img += sign * amp * 2 * math.pi * 0.8**2 * ndimage.gaussian_filter(g, 0.8)  # peak ~amp per granule
        tex = ndimage.gaussian_filter(rng.standard_normal((n, n)), 2.0)
        img += 0.02 * tex / (tex.std() + 1e-12)
        # per-cell brightness and vignetting
        img += rng.normal(0, 0.012, n_cells)[labels]
        r2 = ((yy - n / 2) ** 2 + (xx - n / 2) ** 2) / (n / 2) ** 2
        img *= 1 - 0.08 * r2
        self.still = img
        self._still_spline = ndimage.spline_filter(img, order=3, mode="mirror")

        # cell centres: every cell contracts towards its own
        centroids = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(n_cells)))
        self.centroids = centroids
        self._adjacent = self._adjacency(labels, n_cells)
        self._yy, self._xx = yy, xx

    @staticmethod
    def _adjacency(labels: np.ndarray, n_cells: int) -> list[set[int]]:
        adj: list[set[int]] = [set() for _ in range(n_cells)]
        for a, b in ((labels[:-1, :], labels[1:, :]), (labels[:, :-1], labels[:, 1:])):
            diff = a != b
            for u, v in zip(a[diff], b[diff]):
                adj[int(u)].add(int(v))
                adj[int(v)].add(int(u))
        return adj

    def _cell_field(self, c: int) -> np.ndarray:
        """(2, Y, X) displacement of unit contraction of cell *c* (1 px at its rim)."""
        n = self.p.size
        env = ndimage.gaussian_filter((self.labels == c).astype(np.float64), 1.5)
        cy, cx = self.centroids[c]
        area = float((self.labels == c).sum())
        rim = math.sqrt(area / math.pi)
        return np.stack([-(self._yy - cy) / rim * env, -(self._xx - cx) / rim * env]).reshape(2, n, n)

    # ------------------------------------------------------------ roles and time
    def _interior_cells(self) -> list[int]:
        n = self.p.size
        border = set(np.unique(np.concatenate([self.labels[0], self.labels[-1], self.labels[:, 0], self.labels[:, -1]])))
        return [c for c in range(len(self.seeds)) if c not in border and (self.labels == c).sum() > 0.3 * (n / self.p.n_cells_across) ** 2]

    def _pick_roles(self) -> dict[str, int]:
        n = self.p.size
        interior = self._interior_cells()
        check(len(interior) >= 4, f"a {n} px frame has too few whole cells for the four test ROIs; simulate 64 px or more.",
              cli=f"a {n} px frame has too few whole cells for the four test ROIs; use --size 64 or more.")
        targets = {"strong": (0.5, 0.45), "silent": (0.15, 0.5), "weak": (0.82, 0.8), "other": (0.6, 0.12)}
        roles: dict[str, int] = {}
        for role in ("strong", "silent", "weak", "other"):
            ty, tx = targets[role]
            taken = set(roles.values())
            near = set().union(*(self._adjacent[c] for c in taken)) if taken else set()
            cands = [c for c in interior if c not in taken and c not in near] or [c for c in interior if c not in taken]
            best = min(cands, key=lambda c: (self.centroids[c][0] - ty * n) ** 2 + (self.centroids[c][1] - tx * n) ** 2)
            roles[role] = best
        return roles

    def _build_time_courses(self) -> None:
        p, rng = self.p, self._rng_time
        n_cells = len(self.seeds)
        t = np.arange(p.n_frames) / p.fps
        self.t = t
        duration = p.n_frames / p.fps
        self.roles = self._pick_roles()
        spikes = _spike_train(rng, duration, p.spike_period_s, p.spike_jitter, rng.uniform(0.4, 1.2))
        other_beats = _spike_train(rng, duration, p.other_period_s, p.spike_jitter, rng.uniform(0.2, 1.0))
        # per-cell calcium delay (a slow propagating wave), dye loading and dF/F0
        pace = np.array([0.0, rng.uniform(0, p.size)])
        delay = 0.015 * np.linalg.norm(self.centroids - pace, axis=1) / max(p.size, 1) + rng.uniform(0, 0.01, n_cells)
        loading = rng.uniform(0.6, 1.4, n_cells)
        dff = p.dff_amplitude * rng.uniform(0.7, 1.3, n_cells)
        has_calcium = np.ones(n_cells, bool)
        has_calcium[self.roles["other"]] = False
        # motion amplitudes
        amp = np.zeros(n_cells)
        amp[self.roles["strong"]] = p.strong_px
        amp[self.roles["weak"]] = p.weak_px
        amp[self.roles["other"]] = p.other_px
        protected = {self.roles["silent"], self.roles["weak"]}
        protected |= self._adjacent[self.roles["silent"]] | self._adjacent[self.roles["weak"]]
        for c in range(n_cells):
            if c in self.roles.values() or c in protected:
                continue
            if rng.random() < p.background_moving_fraction:
                amp[c] = rng.uniform(*p.background_px)
        self.amplitude_px, self.has_calcium, self.loading, self.dff = amp, has_calcium, loading, dff
        self.calcium_onsets_s = spikes
        self.other_onsets_s = other_beats
        # calcium per cell (peak 1) and contraction per moving cell (peak 1)
        cal = np.zeros((n_cells, t.size))
        # onsets of each cell's calcium transients (delay included): one shared beat, or each cell its own
        cell_onsets = {c: spikes + delay[c] for c in range(n_cells)}
        if p.firing == "independent":
            cell_onsets = self._independent_onsets(duration, n_cells)
            self.calcium_onsets_s = cell_onsets[self.roles["strong"]]
        self.cell_onsets_s = cell_onsets
        for c in range(n_cells):
            if has_calcium[c]:
                cal[c] = _waveform(t, cell_onsets[c], p.calcium_rise_s, p.calcium_decay_s)
        self.calcium = cal
        self.rare_events: list[dict[str, Any]] = []
        self.unloaded: list[int] = []
        if p.rare_events or p.unloaded_cells:
            self._add_extras(t, spikes, delay)
        self.inactive: list[int] = []
        if p.inactive_cells:
            self._add_inactive()
        fields, courses = [], []
        for c in np.nonzero(amp > 0)[0]:
            onsets = (other_beats if not has_calcium[c] else cell_onsets[c]) + p.contraction_delay_s
            courses.append(amp[c] * _waveform(t, onsets, p.contraction_rise_s, p.contraction_decay_s))
            fields.append(self._cell_field(int(c)))
        self._fields = np.array(fields) if fields else np.zeros((0, 2, p.size, p.size))
        self._courses = np.array(courses) if courses else np.zeros((0, t.size))
        # drifts
        self.illumination = 1 + p.illumination_drift * (_smooth_walk(rng, t.size, max(1, int(20 * p.fps))) - 0.5)
        ang = rng.uniform(0, 2 * math.pi)
        walk = _smooth_walk(rng, t.size, max(1, int(30 * p.fps)))
        self.stage = p.stage_drift_px * np.column_stack([walk * math.cos(ang), walk * math.sin(ang)])
        self.bleach = np.exp(-t / p.bleach_tau_s)
        # fluorescence: dye per cell (nuclei brighter), slightly blurred
        base = self.loading[self.labels] * (1 + 0.3 * self.nucleus)
        self._fl_cells = [ndimage.gaussian_filter((self.labels == c) * base, 0.7) for c in range(n_cells)]
        self._fl_rest = ndimage.gaussian_filter(base, 0.7)
        self.fl_background_e, self.fl_e = p.fluorescence_background_e, p.fluorescence_e
        if p.photons_per_pixel is not None:   # low light: the resting frame averages photons_per_pixel
            scale = p.photons_per_pixel / float(np.mean(p.fluorescence_background_e + p.fluorescence_e * self._fl_rest))
            self.fl_background_e, self.fl_e = p.fluorescence_background_e * scale, p.fluorescence_e * scale
        self.tr_scale = 1.0
        if p.transmission_photons_per_pixel is not None:
            self.tr_scale = p.transmission_photons_per_pixel / (p.full_well_e * p.transmission_level * float(np.mean(self.still)))

    def _independent_onsets(self, duration_s: float, n_cells: int) -> dict[int, np.ndarray]:
        """Each cell's own spike train (own random stream: the default path's numbers are untouched)."""
        p = self.p
        rng = np.random.default_rng([p.seed, 104729])
        out = {}
        for c in range(n_cells):
            period = p.spike_period_s * rng.uniform(0.6, 1.6)
            jitter = p.spike_jitter * rng.uniform(0.5, 1.5)
            out[c] = _spike_train(rng, duration_s, period, jitter, rng.uniform(0.0, period))
        return out

    def _add_inactive(self) -> None:
        """Dye-loaded interior cells that never fire (own random stream): calcium 0, no motion."""
        p = self.p
        rng = np.random.default_rng([p.seed, 15485863])
        taken = set(self.roles.values()) | set(self.unloaded) | {e["cell"] for e in self.rare_events}
        free = [c for c in self._interior_cells() if c not in taken]
        check(len(free) >= p.inactive_cells, f"only {len(free)} interior cells are left for {p.inactive_cells} cells "
                                             "that never fire; ask for fewer, or for larger frames.")
        rng.shuffle(free)
        self.inactive = sorted(int(c) for c in free[:p.inactive_cells])
        self.calcium[self.inactive] = 0.0
        self.has_calcium = self.has_calcium.copy()
        self.has_calcium[self.inactive] = False
        self.amplitude_px = self.amplitude_px.copy()
        self.amplitude_px[self.inactive] = 0.0

    @property
    def cell_labels(self) -> np.ndarray:
        """int32 ``(Y, X)`` true cell map: cell index + 1 per pixel."""
        return (self.labels + 1).astype(np.int32)

    @property
    def active_cells(self) -> np.ndarray:
        """Indices of the cells whose calcium has at least one transient."""
        return np.nonzero(self.calcium.max(axis=1) > 0)[0] if self.calcium.size else np.zeros(0, int)

    def _add_extras(self, t: np.ndarray, spikes: np.ndarray, delay: np.ndarray) -> None:
        """Rare single-cell transients and cells without dye (their own random stream: the rest is unchanged)."""
        p = self.p
        rng = np.random.default_rng([p.seed, 7919])
        roles = set(self.roles.values())
        free = [c for c in self._interior_cells() if c not in roles]
        check(len(free) >= p.unloaded_cells, f"only {len(free)} interior cells are free for {p.unloaded_cells} cells "
                                             "without dye; ask for fewer, or for larger frames.")
        rng.shuffle(free)
        self.unloaded = sorted(int(c) for c in free[:p.unloaded_cells])
        self.loading = self.loading.copy()
        self.loading[self.unloaded] = 0.0
        self.calcium[self.unloaded] = 0.0
        cands = [c for c in free[p.unloaded_cells:]] or [c for c in self._interior_cells() if c not in self.unloaded]
        duration = t[-1] if t.size else 0.0
        regular = np.sort(spikes)
        gaps = [(a, b) for a, b in zip(regular[:-1], regular[1:]) if b < duration]
        order = rng.permutation(len(gaps)) if gaps else np.zeros(0, int)
        for k in range(p.rare_events):
            c = int(cands[k % len(cands)]) if cands else 0
            # midway between two regular beats (a different gap each while there are enough), so it stands alone
            if gaps:
                a, b = gaps[int(order[k % len(order)])]
                onset = float(a + (b - a) * rng.uniform(0.4, 0.6))
            else:
                onset = float(rng.uniform(0.2, 0.8) * duration)
            self.calcium[c] += _waveform(t, np.array([onset]), p.calcium_rise_s, p.calcium_decay_s)
            self.rare_events.append({"cell": c, "onset_s": round(onset, 5),
                                     "centroid_yx": [round(float(v), 2) for v in self.centroids[c]]})

    # ------------------------------------------------------------ rendering
    @property
    def gain_e_per_adu(self) -> float:
        return self.p.full_well_e / (65535.0 - self.p.offset_adu)

    def transmission_mean_e(self, i: int) -> np.ndarray:
        """Noise-free transmission of frame *i* in photo-electrons."""
        p = self.p
        disp = np.tensordot(self._courses[:, i], self._fields, axes=(0, 0)) if len(self._courses) else 0.0
        coords = np.stack([self._yy, self._xx]) - disp - self.stage[i][:, None, None]
        img = ndimage.map_coordinates(self._still_spline, coords, order=3, mode="mirror", prefilter=False)
        return p.full_well_e * p.transmission_level * self.tr_scale * self.illumination[i] * img

    def fluorescence_mean_e(self, i: int) -> np.ndarray:
        """Noise-free fluorescence of frame *i* in photo-electrons."""
        img = self._fl_rest.copy()
        for c in np.nonzero(self.calcium[:, i] > 1e-4)[0]:
            img += self._fl_cells[c] * self.dff[c] * self.calcium[c, i]
        return self.fl_background_e + self.fl_e * img * self.bleach[i]

    def frames(self, clean: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield ``(transmission, fluorescence)`` uint16 frames in order (deterministic per seed).

        With *clean*, also the noise-free frames in the same units (ADU, float32):
        ``(transmission, fluorescence, transmission_clean, fluorescence_clean)``.
        """
        p = self.p
        rng = np.random.default_rng(self._rng_noise.integers(2**63))
        g = self.gain_e_per_adu
        for i in range(p.n_frames):
            te0 = self.transmission_mean_e(i)
            fe0 = self.fluorescence_mean_e(i)
            te = te0 + np.sqrt(te0 + p.read_noise_e**2) * rng.standard_normal(te0.shape)
            fe = rng.poisson(fe0) + p.read_noise_e * rng.standard_normal(te0.shape)
            tr = np.clip(np.rint(te / g + p.offset_adu), 0, 65535).astype(np.uint16)
            fl = np.clip(np.rint(fe / g + p.offset_adu), 0, 65535).astype(np.uint16)
            if clean:
                yield tr, fl, (te0 / g + p.offset_adu).astype(np.float32), (fe0 / g + p.offset_adu).astype(np.float32)
            else:
                yield tr, fl

    # ------------------------------------------------------------ truth and ROIs
    def rois(self) -> list[ROI]:
        """One polygon per test cell (its convex outline, grown by 1.5 px to include the membrane)."""
        out = []
        names = {"strong": "strong", "weak": "weak", "silent": "silent", "other": "other"}
        for role in ("strong", "weak", "silent", "other"):
            c = self.roles[role]
            pts = np.argwhere(self.labels == c).astype(float)
            hull = spatial.ConvexHull(pts)
            poly = pts[hull.vertices]
            cen = pts.mean(axis=0)
            vec = poly - cen
            norm = np.linalg.norm(vec, axis=1, keepdims=True)
            poly = cen + vec * (norm + 1.5) / np.maximum(norm, 1e-9)
            poly = np.clip(poly, -0.5, self.p.size - 0.5)
            out.append(ROI(name=names[role], kind=role, polygon=np.round(poly, 2)))
        return out

    def truth(self) -> dict[str, Any]:
        p = self.p
        return {
            "fps": p.fps,
            "pixel_size_um": p.pixel_size_um,
            "calcium_onsets_s": [round(float(v), 5) for v in self.calcium_onsets_s if v < p.n_frames / p.fps],
            "contraction_delay_s": p.contraction_delay_s,
            "other_onsets_s": [round(float(v), 5) for v in self.other_onsets_s if v < p.n_frames / p.fps],
            "roles": {k: int(v) for k, v in self.roles.items()},
            "amplitude_px": {k: float(self.amplitude_px[v]) for k, v in self.roles.items()},
            "has_calcium": {k: bool(self.has_calcium[v]) for k, v in self.roles.items()},
            "n_cells": int(len(self.seeds)),
            "n_moving_cells": int((self.amplitude_px > 0).sum()),
            "gain_e_per_adu": self.gain_e_per_adu,
            "offset_adu": p.offset_adu,
            "full_well_e": p.full_well_e,
            "params": _jsonable({k: v for k, v in asdict(p).items() if k not in _OPTIONAL or v != _OPTIONAL[k]}),
            **self._extra_truth(),
        }

    def _extra_truth(self) -> dict[str, Any]:
        """Truth of the optional features (absent by default, so default outputs stay as they were)."""
        p, out = self.p, {}
        if p.photons_per_pixel is not None:
            out["fluorescence_e"] = float(self.fl_e)
            out["fluorescence_background_e"] = float(self.fl_background_e)
        if p.transmission_photons_per_pixel is not None:
            out["transmission_scale"] = float(self.tr_scale)
        if p.rare_events:
            out["rare_events"] = self.rare_events
        if p.unloaded_cells:
            out["unloaded_cells"] = self.unloaded
            out["unloaded_centroids_yx"] = [[round(float(v), 2) for v in self.centroids[c]] for c in self.unloaded]
        if out:
            out["read_noise_e"] = p.read_noise_e
        if p.firing != "synchronous" or p.inactive_cells:
            out["active_cells"] = [int(c) for c in self.active_cells]
            out["inactive_cells"] = self.inactive
        if p.firing != "synchronous":
            end = p.n_frames / p.fps
            out["role_onsets_s"] = {k: [round(float(v), 5) for v in self.cell_onsets_s[c] if v < end]
                                    for k, c in self.roles.items() if self.has_calcium[c]}
        return out


#: parameters added with the low-light, rare-event and cell-finding options: left out of truth.json at their defaults
_OPTIONAL = {"photons_per_pixel": None, "transmission_photons_per_pixel": None, "rare_events": 0, "unloaded_cells": 0,
             "firing": "synchronous", "inactive_cells": 0}


def _uses_cell_options(params: SimulationParams) -> bool:
    return params.firing != "synchronous" or params.inactive_cells > 0


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def iter_simulate(params: SimulationParams | None = None, *, clean: bool = False, **overrides: Any):
    """:func:`simulate` as a generator of :class:`~napari_micromotion.progress.Progress`; returns the :class:`Simulation`."""
    from .progress import Progress

    params = _params(params, overrides)
    sim = Simulator(params)
    shape = (params.n_frames, params.size, params.size)
    trans = np.empty(shape, np.uint16)
    fluo = np.empty(shape, np.uint16)
    trans_clean = np.empty(shape, np.float32) if clean else None
    fluo_clean = np.empty(shape, np.float32) if clean else None
    for i, frames in enumerate(sim.frames(clean=clean)):
        trans[i], fluo[i] = frames[:2]
        if clean:
            trans_clean[i], fluo_clean[i] = frames[2:]
        if i % 64 == 0:
            yield Progress("simulate", i / params.n_frames, f"frame {i} of {params.n_frames}")
    yield Progress("simulate", 1.0, "done")
    return Simulation(params, trans, fluo, sim.rois(), sim.truth(), trans_clean, fluo_clean,
                      sim.cell_labels, sim.active_cells)


def simulate(params: SimulationParams | None = None, *, progress: Callable[[float], None] | None = None,
             cancel: Callable[[], bool] | None = None, clean: bool = False, **overrides: Any) -> Simulation:
    """Simulate a recording in memory.

    Parameters
    ----------
    params
        :class:`SimulationParams`; keyword *overrides* replace single fields
        (``simulate(n_frames=2000, size=64, seed=3)``).
    progress
        Called with the fraction done (0-1) every few frames.
    cancel
        Returns True to stop (raises :class:`~napari_micromotion.errors.Cancelled`).
    clean
        Also keep the noise-free movies (``transmission_clean``, ``fluorescence_clean``: float32, ADU).
    """
    from .progress import drive

    try:
        return drive(iter_simulate(params, clean=clean, **overrides),
                     progress=(lambda e: progress(e.fraction)) if progress else None, cancel=cancel)
    except Cancelled:
        raise Cancelled("simulation cancelled") from None


def _params(params: SimulationParams | None, overrides: dict[str, Any]) -> SimulationParams:
    params = params or SimulationParams()
    if overrides:
        unknown = set(overrides) - set(SimulationParams.__dataclass_fields__)
        check(not unknown, f"unknown simulation parameter(s): {', '.join(sorted(unknown))}.")
        params = SimulationParams(**{**asdict(params), **overrides})
    params.validate()
    return params


#: how often (s) a simulation writer thread waiting for frames checks whether the main write failed
POLL_S = 0.2


def write_simulation(out_dir: str | os.PathLike, params: SimulationParams | None = None, *, overwrite: bool = False,
                     progress: Callable[[float], None] | None = None, clean: bool = False,
                     labels: bool | None = None, **overrides: Any) -> Path:
    """Stream a simulated recording to *out_dir* (created atomically).

    Writes ``transmission.tif``, ``fluorescence.tif`` (ImageJ TIFF, uint16, frame
    interval and pixel size in the metadata), ``rois.json`` and ``truth.json``; with
    *clean* also the noise-free ``transmission_clean.tif`` and ``fluorescence_clean.tif``
    (float32, same units).  Memory use stays at a few frames whatever the length.

    *labels* writes ``labels.tif``, the true cell map (int32, cell index + 1 per pixel);
    ``None`` (the default) writes it only when the cell-finding options are used
    (``firing="independent"`` or ``inactive_cells > 0``), so default outputs stay as they were.
    """
    import tifffile

    from .export import commit_output_dir, prepare_output_dir
    from .layout import imagej_video_meta

    params = _params(params, overrides)
    out = Path(out_dir)
    tmp = prepare_output_dir(out, overwrite)
    try:
        sim = Simulator(params)
        shape = (params.n_frames, params.size, params.size)
        meta, scale = imagej_video_meta(params.fps, params.pixel_size_um)
        errors: list[BaseException] = []
        stop = object()
        # the transmission is written here; every other movie by its own thread, fed through a queue
        others = [("fluorescence.tif", "uint16")]
        if clean:
            others += [("transmission_clean.tif", "float32"), ("fluorescence_clean.tif", "float32")]
        queues = [queue.Queue(maxsize=32) for _ in others]

        # a failed or interrupted main write sets *abort*: the writers then stop within POLL_S even if a stop
        # marker never reached them (an exception raised by a signal handler inside a queue operation can lose
        # a wake-up)
        abort = threading.Event()

        def next_item(q: queue.Queue) -> Any:
            while True:
                try:
                    return q.get(timeout=POLL_S)
                except queue.Empty:
                    if abort.is_set():
                        return stop

        def write_other(name: str, dtype: str, q: queue.Queue) -> None:
            stopped = False

            def frames() -> Iterator[np.ndarray]:
                nonlocal stopped
                while (item := next_item(q)) is not stop:
                    yield item
                stopped = True

            try:
                tifffile.imwrite(tmp / name, frames(), shape=shape, dtype=dtype, imagej=True, metadata=meta,
                                 **scale)
            except BaseException as exc:  # re-raised in the main thread
                errors.append(exc)
                while not stopped and next_item(q) is not stop:  # drain so the producer never blocks
                    pass

        def trans_frames() -> Iterator[np.ndarray]:
            for i, frames in enumerate(sim.frames(clean=clean)):
                # frames: transmission, fluorescence[, transmission_clean, fluorescence_clean]
                for q, frame in zip(queues, frames[1:]):
                    q.put(frame)
                if progress is not None and i % 64 == 0:
                    progress(i / params.n_frames)
                yield frames[0]

        threads = [threading.Thread(target=write_other, args=(name, dtype, q), name=f"simulate-writer-{name}",
                                    daemon=True) for (name, dtype), q in zip(others, queues)]
        for th in threads:
            th.start()
        written = False
        try:
            tifffile.imwrite(tmp / "transmission.tif", trans_frames(), shape=shape, dtype="uint16",
                             imagej=True, metadata=meta, **scale)
            written = True
        finally:
            if not written:       # this write failed (disk full) or was interrupted: the writers stop too
                abort.set()
            for q in queues:
                if written:
                    q.put(stop)   # after the frames still queued
                else:
                    try:
                        q.put_nowait(stop)
                    except queue.Full:
                        pass      # the writer is aborting anyway
            for th in threads:
                th.join()
        if errors:
            raise errors[0]
        (tmp / "rois.json").write_text(json.dumps([r.to_dict() for r in sim.rois()], indent=1) + "\n")
        (tmp / "truth.json").write_text(json.dumps(sim.truth(), indent=1) + "\n")
        if labels or (labels is None and _uses_cell_options(params)):
            tifffile.imwrite(tmp / "labels.tif", sim.cell_labels)
        commit_output_dir(tmp, out)
    except OSError as exc:              # disk full, quota, a vanished folder: one sentence, nothing left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise MicromotionError(f"could not write the simulation to {out} ({exc.strerror or exc}).") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
