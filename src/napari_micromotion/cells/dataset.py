"""Labelled training candidates from the simulator (no downloads).

For one simulated recording (a confluent Voronoi sheet, :class:`~napari_micromotion.simulate.Simulator`)
the candidates are

``cell``
    every calcium-active, dye-loaded cell (``labels == c``), also when the frame's edge cuts it
    (down to the extraction's smallest candidate), its mask perturbed like a real extraction's:
    eroded or dilated by 0-2 px and its outline jittered (a smooth random field added to the
    blurred mask before thresholding);
``not_cell``
    * ``fragment``: part of a cell, 10-40 % of it (a half-plane cut or a disk inside it);
    * ``merge``: a cell with one or two adjacent cells;
    * ``background``: inter-cell patches (a disk centred on a membrane, covering parts of two or
      three cells, or along the frame's edge);
    * ``blob``: a small irregular blob (2-5 px radius) anywhere;
    * ``inactive``: a whole dye-loaded cell that never fires (zero calcium: the simulator's
      ``other`` cell or the ``inactive_cells`` of :class:`~napari_micromotion.simulate.SimulationParams`),
      perturbed like the cells.

With ``extracted`` > 0 the rendered movie also goes through the real candidate extraction
(:func:`~napari_micromotion.cells.candidates.iter_extract`), and its candidates join the set
labelled by the truth: ``cell`` when a candidate is the best match of an active cell at IoU >= 0.5
(the benchmark's rule), else ``unmatched`` (a not-cell).  These are the shapes, footprints and
traces the classifier meets in use (watershed basins, ICA filters, the estimated cell size);
perturbed true masks alone miss them.  ``extracted`` is the number of extractions, taken in the
order of :data:`EXTRACTION_VARIANTS`: the tool's default (``auto``, estimated diameter), then the
method ``auto`` did not pick, then the default with the diameter estimate 20 % too small and 25 %
too large.  The variants split and merge cells in the ways the default does on other recordings,
so the set holds many candidates near the IoU 0.5 boundary; a candidate that overlaps one already
kept at IoU >= 0.9 is dropped.

about two not-cells per cell, as in the report's data (1 : 2.00).  With ``copies > 1`` every cell
(and inactive cell) is extracted that many times with independent perturbations and the other
not-cells are multiplied alike: masks are nearly free once a recording is rendered, so one
simulation gives several times the examples.  Traces are the mean of the
simulated fluorescence (uint16 ADU, shot and read noise) over each mask; the image is the mean
fluorescence image.  Only the fluorescence is rendered (the transmission is not needed), frame by
frame with :meth:`Simulator.fluorescence_mean_e`, shot noise drawn as Gaussian (thousands of
photo-electrons per pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generator, Sequence

import numpy as np

from ..errors import check
from ..progress import Progress, scaled
from .candidate import Candidate

__all__ = ["Recording", "NEGATIVE_KINDS", "EXTRACTION_VARIANTS", "simulate_recording", "make_candidates", "iter_training_set",
           "training_set", "encode_recording"]

#: the kinds of not-cell candidates
NEGATIVE_KINDS = ("fragment", "merge", "background", "blob", "inactive", "unmatched")
#: share of the not-cells per kind (inactive cells first take what the recording has)
_NEG_SHARE = {"fragment": 0.35, "merge": 0.25, "background": 0.2, "blob": 0.2}
#: the extractions of a training recording, in order: (method, factor on the estimated diameter);
#: ``None`` is the tool's default ``auto``, ``"other"`` the method ``auto`` did not pick
EXTRACTION_VARIANTS = ((None, 1.0), ("other", 1.0), (None, 0.8), (None, 1.25))
#: a candidate overlapping an already kept one of the same recording at this IoU is a duplicate
_DUPLICATE_IOU = 0.9


@dataclass
class Recording:
    """One simulated recording's labelled candidates.

    Attributes
    ----------
    candidates
        Candidates with ``label`` ``"cell"`` or ``"not_cell"`` and ``source="synthetic"``.
    image
        ``(Y, X)`` float32 mean fluorescence image, ADU.
    kinds
        Per candidate: ``"cell"`` or one of :data:`NEGATIVE_KINDS`.
    info
        Seed, size, frames, firing mode, counts; ``cell_diameter_px`` is the simulator's,
        ``estimated_diameter_px`` the extraction's estimate (the patches' zoom, as in use).
    """

    candidates: list[Candidate]
    image: np.ndarray
    kinds: list[str]
    info: dict = field(default_factory=dict)

    @property
    def extracted(self) -> np.ndarray:
        """``(N,)`` bool: the candidate came from the extraction (not from the simulator's masks)."""
        return np.array([c.source != "synthetic" for c in self.candidates], bool)

    @property
    def y(self) -> np.ndarray:
        """``(N,)`` int64 labels, 1 = cell."""
        return np.array([c.label == "cell" for c in self.candidates], np.int64)


def _sim_params(size: int, seed: int, n_frames: int, firing: str, inactive_cells: int, sim_params: dict | None = None):
    from ..simulate import SimulationParams

    check(firing in ("synchronous", "independent"), f"firing must be 'synchronous' or 'independent', got {firing!r}.")
    extra = {} if (firing == "synchronous" and inactive_cells == 0) else {"firing": firing,
                                                                            "inactive_cells": int(inactive_cells)}
    extra.update(sim_params or {})
    return SimulationParams(n_frames=int(n_frames), size=int(size), seed=int(seed), **extra)


def _box(mask: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    rr, cc = np.nonzero(mask)
    box = (int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1)
    return box, mask[box[0]:box[2], box[1]:box[3]]


def _largest(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == int(np.argmax(sizes)) + 1


def _perturb(mask: np.ndarray, rng: np.random.Generator, max_px: int = 2) -> np.ndarray:
    """Erode or dilate by 0-*max_px* pixels and jitter the outline; the largest component."""
    from scipy import ndimage

    k = int(rng.integers(-max_px, max_px + 1))
    m = mask
    if k > 0:
        m = ndimage.binary_dilation(m, iterations=k)
    elif k < 0:
        er = ndimage.binary_erosion(m, iterations=-k)
        m = er if er.sum() >= 0.4 * m.sum() else m
    noise = ndimage.gaussian_filter(rng.standard_normal(m.shape), 3.0)
    noise /= noise.std() + 1e-12
    soft = ndimage.gaussian_filter(m.astype(np.float64), 1.0) + 0.12 * noise
    out = _largest(soft > 0.5)
    return out if out.sum() >= 0.5 * mask.sum() else mask


def _fragment(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    rr, cc = np.nonzero(mask)
    n = rr.size
    target = rng.uniform(0.1, 0.4)
    if rng.random() < 0.5:  # half-plane cut: keep the pixels beyond a quantile along a random direction
        th = rng.uniform(0, 2 * math.pi)
        proj = rr * math.cos(th) + cc * math.sin(th)
        thr = np.quantile(proj, 1 - target)
        keep = proj >= thr
    else:  # a disk inside the cell
        k = int(rng.integers(n))
        r = math.sqrt(target * n / math.pi)
        keep = (rr - rr[k]) ** 2 + (cc - cc[k]) ** 2 <= r * r
    if keep.sum() < 8:
        return None
    out = np.zeros_like(mask)
    out[rr[keep], cc[keep]] = True
    return _largest(out)


def _disk(shape: tuple[int, int], cy: float, cx: float, r: float, rng: np.random.Generator, wobble: float) -> np.ndarray:
    from scipy import ndimage

    yy, xx = np.ogrid[:shape[0], :shape[1]]
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    noise /= noise.std() + 1e-12
    return _largest(d + wobble * r * noise < r)


def simulate_recording(size: int, seed: int, n_frames: int, *, firing: str = "synchronous", inactive_cells: int = 0,
                       sim_params: dict | None = None):
    """A :class:`~napari_micromotion.simulate.Simulator` for one recording (layout and time courses only).

    *sim_params*: further :class:`~napari_micromotion.simulate.SimulationParams` fields (e.g. low
    light, ``photons_per_pixel``, or weaker transients, ``dff_amplitude``).
    """
    from ..simulate import Simulator

    return Simulator(_sim_params(size, seed, n_frames, firing, inactive_cells, sim_params))


def _render(sim, masks: list[np.ndarray], rng: np.random.Generator, chunk: int = 256, keep_movie: bool = False
            ) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Traces ``(N, T)`` (mean ADU over each mask), the mean image ``(Y, X)`` of the simulated
    fluorescence and (*keep_movie*) the movie ``(T, Y, X)`` uint16."""
    from scipy import sparse

    p = sim.p
    n_px = p.size * p.size
    rows, cols, vals = [], [], []
    for k, m in enumerate(masks):
        idx = np.flatnonzero(m)
        rows.append(np.full(idx.size, k))
        cols.append(idx)
        vals.append(np.full(idx.size, 1.0 / idx.size))
    w = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(masks), n_px))
    g = sim.gain_e_per_adu
    traces = np.zeros((len(masks), p.n_frames), np.float32)
    total = np.zeros(n_px)
    buf = np.empty((chunk, n_px))
    movie = np.empty((p.n_frames, p.size, p.size), np.uint16) if keep_movie else None
    for i0 in range(0, p.n_frames, chunk):
        i1 = min(i0 + chunk, p.n_frames)
        for j, i in enumerate(range(i0, i1)):
            fe0 = sim.fluorescence_mean_e(i).ravel()
            fe = fe0 + np.sqrt(fe0 + p.read_noise_e ** 2) * rng.standard_normal(n_px)
            buf[j] = np.clip(np.rint(fe / g + p.offset_adu), 0, 65535)
        block = buf[:i1 - i0]
        if movie is not None:
            movie[i0:i1] = block.reshape(-1, p.size, p.size)
        traces[:, i0:i1] = (w @ block.T).astype(np.float32)
        total += block.sum(axis=0)
        yield Progress("simulate", i1 / p.n_frames, f"frame {i1} of {p.n_frames}")
    return traces, (total / p.n_frames).reshape(p.size, p.size).astype(np.float32), movie


def _active(sim) -> np.ndarray:
    """Per cell: has calcium transients (:attr:`Simulator.active_cells
    <napari_micromotion.simulate.Simulator.active_cells>`) and dye to show them."""
    out = np.zeros(sim.loading.size, bool)
    out[sim.active_cells] = True
    return out & (sim.loading > 0)


def make_candidates(sim, rng: np.random.Generator, *, negatives_per_cell: float = 2.0, copies: int = 1
                    ) -> tuple[list[np.ndarray], list[str]]:
    """Full-frame masks and kinds (``"cell"`` or one of :data:`NEGATIVE_KINDS`) for a simulator's sheet.

    *copies*: perturbed extractions per cell (and per inactive cell); the other not-cells are
    multiplied alike, so the ratio stays *negatives_per_cell*.
    """
    labels = sim.labels
    shape = labels.shape
    n_cells = int(labels.max()) + 1
    area = np.bincount(labels.ravel(), minlength=n_cells)
    typical = float(np.median(area))
    loaded = sim.loading > 0
    active = _active(sim)
    # cells cut by the frame's edge are cells (partly out of view) down to the extraction's smallest
    # candidate (0.15 of a cell-sized disc); fragments and merges are made of whole cells only
    seen = area >= 0.15 * typical
    big = area >= 0.3 * typical
    masks: list[np.ndarray] = []
    kinds: list[str] = []
    cells = [c for c in range(n_cells) if active[c] and seen[c]]
    copies = max(1, int(copies))
    for c in cells:
        for _ in range(copies):
            masks.append(_perturb(labels == c, rng))
            kinds.append("cell")
    n_neg = int(round(negatives_per_cell * len(cells) * copies))
    inactive = [c for c in range(n_cells) if loaded[c] and not active[c] and seen[c]]
    inactive_masks = [_perturb(labels == c, rng) for c in inactive for _ in range(copies)][:n_neg]
    masks.extend(inactive_masks)
    kinds.extend(["inactive"] * len(inactive_masks))
    rest = max(0, n_neg - len(inactive_masks))
    quota = {k: int(round(rest * s)) for k, s in _NEG_SHARE.items()}
    membrane = np.zeros(shape, bool)
    membrane[:-1] |= labels[:-1] != labels[1:]
    membrane[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    mem_pts = np.argwhere(membrane)
    d = math.sqrt(typical)
    pool = [c for c in range(n_cells) if big[c]]
    for kind, count in quota.items():
        made = tries = 0
        while made < count and tries < 20 * count + 20:
            tries += 1
            if kind == "fragment":
                m = _fragment(labels == int(rng.choice(pool)), rng)
            elif kind == "merge":
                c = int(rng.choice(pool))
                nb = sorted(sim._adjacent[c])
                if not nb:
                    continue
                k = int(rng.integers(1, 3))
                m = labels == c
                for o in rng.choice(nb, size=min(k, len(nb)), replace=False):
                    m = m | (labels == int(o))
                m = _perturb(m, rng, 1)
            elif kind == "background":
                cy, cx = mem_pts[int(rng.integers(len(mem_pts)))]
                m = _disk(shape, cy, cx, rng.uniform(0.2, 0.4) * d, rng, 0.15)
                # mostly one cell would be a (large) fragment: keep patches split between cells
                counts = np.bincount(labels[m], minlength=n_cells)
                if counts.max() > 0.75 * m.sum():
                    continue
            else:  # blob
                cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
                m = _disk(shape, cy, cx, rng.uniform(2.0, 5.0), rng, 0.25)
            if m is None or m.sum() < 8:
                continue
            masks.append(m)
            kinds.append(kind)
            made += 1
    return masks, kinds


def _extracted(sim, movie: np.ndarray, seed: int, n_variants: int = 1
               ) -> Generator[Progress, None, tuple[list[Candidate], list[str], float]]:
    """The candidates of *n_variants* extractions (:data:`EXTRACTION_VARIANTS`) of a rendered movie,
    each labelled by the truth, without duplicates, and the default extraction's diameter estimate."""
    from .candidates import CandidateParams, iter_extract, mask_iou, match_cells

    active = np.flatnonzero(_active(sim))
    shape = tuple(movie.shape[1:])
    out: list[Candidate] = []
    kinds: list[str] = []
    kept: list[np.ndarray] = []
    diameter = float("nan")
    method = "auto"
    variants = EXTRACTION_VARIANTS[:max(1, int(n_variants))]
    for v, (which, factor) in enumerate(variants):
        if v == 0:
            params = CandidateParams()
        else:
            m = method if which is None else ("ica" if method == "segment" else "segment")
            params = CandidateParams(method=m, diameter_px=factor * diameter)
        ex = yield from scaled(iter_extract(movie, sim.p.fps, params), v / len(variants), (v + 1) / len(variants))
        if v == 0:
            diameter, method = float(ex.diameter_px), ex.method
        if len(ex.candidates) == 0 or active.size == 0:
            continue
        _, matches = match_cells(ex.candidates, sim.labels + 1, active + 1)
        cells = {name for name, _ in matches.values()}
        for k, c in enumerate(ex.candidates):
            full = c.mask(shape)
            if any(mask_iou(full, o) >= _DUPLICATE_IOU for o in kept):
                continue
            kept.append(full)
            is_cell = c.name in cells
            out.append(Candidate(name=f"s{seed}_x{v}_{k:04d}", box=c.box, submask=c.submask, trace=c.trace,
                                 source=c.source, footprint=c.footprint, label="cell" if is_cell else "not_cell",
                                 labelled_by="user"))
            kinds.append("cell" if is_cell else "unmatched")
    return out, kinds, diameter


def iter_recording(size: int, seed: int, n_frames: int, *, firing: str = "synchronous", inactive_cells: int = 0,
                   negatives_per_cell: float = 2.0, copies: int = 1, sim_params: dict | None = None,
                   extracted: int = 0) -> Generator[Progress, None, Recording]:
    """Simulate one recording and return its labelled candidates (a :class:`Recording`).

    *sim_params*: further simulator settings (see :func:`simulate_recording`); *extracted*: add
    the candidates of that many extractions (:data:`EXTRACTION_VARIANTS`; ``True`` is the tool's
    default one), labelled by the truth (see the module's docstring).
    """
    sim = simulate_recording(size, seed, n_frames, firing=firing, inactive_cells=inactive_cells, sim_params=sim_params)
    rng = np.random.default_rng([int(seed), int(size), int(n_frames), 17])
    masks, kinds = make_candidates(sim, rng, negatives_per_cell=negatives_per_cell, copies=copies)
    # one fraction for the recording: the rendering, then the extractions (each restarts its stages)
    traces, image, movie = yield from scaled(_render(sim, masks, rng, keep_movie=bool(extracted)),
                                             0.0, 0.5 if extracted else 1.0)
    cands = []
    for k, (m, kind) in enumerate(zip(masks, kinds)):
        box, sub = _box(m)
        cands.append(Candidate(name=f"s{seed}_{k:04d}", box=box, submask=sub, trace=traces[k], source="synthetic",
                               label="cell" if kind == "cell" else "not_cell", labelled_by="user"))
    info = {"seed": int(seed), "size": int(size), "n_frames": int(n_frames), "firing": firing,
            "cell_diameter_px": float(sim.p.cell_diameter_px),
            "inactive_cells": int(inactive_cells), "copies": int(copies), **({"sim_params": dict(sim_params)} if sim_params else {})}
    if movie is not None:
        ex_cands, ex_kinds, diameter = yield from scaled(_extracted(sim, movie, seed, int(extracted)), 0.5, 1.0)
        del movie
        cands += ex_cands
        kinds += ex_kinds
        info.update(n_extracted=len(ex_cands), n_extracted_cell=ex_kinds.count("cell"))
    else:
        from .candidates import estimate_diameter_px

        diameter = estimate_diameter_px(image)
    info["estimated_diameter_px"] = round(float(diameter), 3)
    info.update(n_cell=kinds.count("cell"), n_not_cell=len(kinds) - kinds.count("cell"))
    return Recording(cands, image, kinds, info)


def encode_recording(rec: Recording, encoding: str = "middle", *, reference_cell_px: float = 0.0,
                     mask_channel: bool = False, scale_jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """The classifier's inputs of a :class:`Recording`, in its candidates' order.

    Patches are zoomed by the recording's *estimated* cell diameter, as the tool does in use
    (the estimate is 0.83-0.99 of the simulator's diameter); see
    :func:`~napari_micromotion.cells.encode.encode`.

    Parameters
    ----------
    scale_jitter
        Training augmentation: each candidate's zoom is multiplied by one of five factors evenly
        spaced in ``1 +- scale_jitter`` (drawn per candidate with *seed*), so the classifier does
        not hang on the diameter estimate being exact.
    """
    from .encode import PATCH, encode, patch_scale

    diameter = rec.info.get("estimated_diameter_px") or rec.info.get("cell_diameter_px")
    n = len(rec.candidates)
    out = np.zeros((n, 3 if mask_channel else 2, PATCH, PATCH), np.float32)
    levels = np.linspace(1 - scale_jitter, 1 + scale_jitter, 5) if scale_jitter > 0 else np.ones(1)
    pick = np.random.default_rng([int(seed), int(rec.info.get("seed", 0)), n]).integers(len(levels), size=n)
    for j, f in enumerate(levels):
        idx = np.flatnonzero(pick == j)
        if idx.size:
            out[idx] = encode([rec.candidates[i] for i in idx], rec.image, encoding, mask_channel=mask_channel,
                              scale=f * patch_scale(diameter, reference_cell_px))
    return out


def iter_training_set(seeds: Sequence[int], sizes: Sequence[int], n_frames: Sequence[int] | int, *,
                      firing: Sequence[str] | str = "synchronous", inactive_cells: int = 0,
                      negatives_per_cell: float = 2.0, copies: int = 1, extracted: int = 0
                      ) -> Generator[Progress, None, list[Recording]]:
    """Labelled candidates of several simulated recordings.

    Parameters
    ----------
    seeds
        One simulator seed per recording.
    sizes, n_frames, firing
        Frame side (px), frames and firing mode per recording, cycled over *seeds* (a single value
        applies to all).
    inactive_cells
        The simulator's option: dye-loaded cells that never fire (each becomes an ``inactive``
        not-cell).
    negatives_per_cell
        Not-cells per cell (the report's data: 2.0).
    copies
        Perturbed extractions per cell (see :func:`make_candidates`).
    extracted
        Extractions whose candidates join the set, labelled by the truth (0: none; ``True``: the
        tool's default one; up to ``len(EXTRACTION_VARIANTS)``).

    Returns
    -------
    list of Recording
        Encode each with :func:`encode_recording`.
    """
    def cyc(v, i):
        return v if isinstance(v, (int, str, np.integer)) else v[i % len(v)]

    seeds = list(seeds)
    check(len(seeds) > 0, "a training set needs at least one seed.")
    out = []
    done = 0.0
    for i, s in enumerate(seeds):
        gen = iter_recording(int(cyc(sizes, i)), int(s), int(cyc(n_frames, i)), firing=str(cyc(firing, i)),
                             inactive_cells=inactive_cells, negatives_per_cell=negatives_per_cell, copies=copies,
                             extracted=extracted)
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                out.append(stop.value)
                break
            done = max(done, (i + ev.fraction) / len(seeds))  # an extraction's stages each restart at 0
            yield Progress("training set", done, f"recording {i + 1} of {len(seeds)}")
    return out


def training_set(seeds: Sequence[int], sizes: Sequence[int], n_frames: Sequence[int] | int, *,
                 encoding: str = "middle", reference_cell_px: float = 0.0, mask_channel: bool = False, **kwargs
                 ) -> tuple[np.ndarray, np.ndarray, list[Recording]]:
    """``(x, y, recordings)``: encoded inputs ``(N, 2, 92, 92)``, labels ``(N,)`` (1 = cell) and the recordings.

    *reference_cell_px*: zoom the patches so that cells are this wide (0: native scale);
    *mask_channel*: add the mask channel of the hybrid model (:func:`~napari_micromotion.cells.encode.encode`).
    """
    from ..progress import drive

    recs = drive(iter_training_set(seeds, sizes, n_frames, **kwargs))
    x = np.concatenate([encode_recording(r, encoding, reference_cell_px=reference_cell_px, mask_channel=mask_channel)
                        for r in recs])
    y = np.concatenate([r.y for r in recs])
    return x, y, recs
