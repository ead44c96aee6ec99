"""Candidates to and from suite2p (``stat.npy`` + ``iscell.npy``) and ImageJ (``RoiSet.zip``).

suite2p keeps one dict per ROI in ``stat.npy`` (an object array, i.e. a pickle) with at least
``ypix``, ``xpix`` (pixel rows and columns), ``lam`` (pixel weights), ``med`` (median
centre), ``npix``, ``radius``, ``aspect_ratio``, ``compact``, ``skew``, ``std``,
``footprint``; ``iscell.npy`` is ``(N, 2)``: ``[is cell (0/1), probability]``.  A pickle can
run code when loaded, so :func:`read_suite2p` unpickles with an allow-list (NumPy arrays and
scalars, dicts, lists, numbers, text) and refuses anything else in one sentence.

ImageJ ``RoiSet.zip`` files go through :mod:`napari_micromotion.rois` (roifile).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_write
from ..errors import MicromotionError, check
from ..rois import read_rois, write_rois
from .candidate import Candidate, from_roi

__all__ = ["write_suite2p", "read_suite2p", "write_imagej", "read_imagej", "suite2p_stat"]

_MAX_STAT_BYTES = 2 << 30


def suite2p_stat(c: Candidate) -> dict[str, Any]:
    """suite2p's ``stat`` entry of one candidate (pixel lists, weights, shape statistics, trace skew)."""
    from scipy import stats

    rr, cc = np.nonzero(c.submask)
    ypix = (rr + c.box[0]).astype(np.int32)
    xpix = (cc + c.box[1]).astype(np.int32)
    if c.footprint is not None:
        lam = np.clip(np.asarray(c.footprint, np.float32)[rr, cc], 0, None)
        lam = lam if lam.sum() > 0 else np.ones(ypix.size, np.float32)
    else:
        lam = np.ones(ypix.size, np.float32)
    lam = (lam / lam.sum()).astype(np.float32)
    med = [float(np.median(ypix)), float(np.median(xpix))]
    # suite2p's compactness: mean distance to the centre over that of a disk of the same area (1 for a disk)
    d = np.hypot(ypix - med[0], xpix - med[1])
    disk_mean = (2.0 / 3.0) * np.sqrt(ypix.size / np.pi)
    cov = np.cov(np.vstack([ypix, xpix])) if ypix.size > 2 else np.eye(2)
    ev = np.sort(np.linalg.eigvalsh(cov))
    radius = float(np.sqrt(max(ev[-1], 1e-12)) * 2.0) if ypix.size > 2 else 1.0
    trace = np.asarray(c.trace, np.float64)
    skew = float(stats.skew(trace)) if trace.size > 2 and trace.std() > 0 else 0.0
    return {"ypix": ypix, "xpix": xpix, "lam": lam, "med": med, "npix": int(ypix.size),
            "radius": radius, "aspect_ratio": float(np.sqrt(ev[-1] / max(ev[0], 1e-12))),
            "compact": float(d.mean() / max(disk_mean, 1e-12)), "skew": skew,
            "std": float(trace.std()) if trace.size else 0.0, "footprint": 1.0,
            "name": c.name, "source": c.source}


def write_suite2p(candidates: Sequence[Candidate], folder: str | os.PathLike) -> Path:
    """Write ``stat.npy`` and ``iscell.npy`` (each atomically) into *folder* (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stat = np.empty(len(candidates), dtype=object)
    for i, c in enumerate(candidates):
        stat[i] = suite2p_stat(c)
    iscell = np.zeros((len(candidates), 2), np.float64)
    for i, c in enumerate(candidates):
        p = c.probability if np.isfinite(c.probability) else (1.0 if c.label == "cell" else 0.0)
        iscell[i] = (1.0 if c.label == "cell" else 0.0, p)

    def save(arr: np.ndarray, allow_pickle: bool):
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=allow_pickle)
        return write

    atomic_write(folder / "stat.npy", save(stat, True))
    atomic_write(folder / "iscell.npy", save(iscell, False))
    return folder


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, dtypes, scalars and plain containers only."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"), ("builtins", "dict"), ("builtins", "list"),
        ("builtins", "tuple"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
        ("_codecs", "encode"), ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def _load_object_npy(path: Path) -> np.ndarray:
    """An object ``.npy`` (suite2p's ``stat.npy``) read with the allow-list unpickler."""
    from numpy.lib import format as npy_format

    check(path.stat().st_size <= _MAX_STAT_BYTES, f"{path.name} is too large to be a suite2p stat file.")
    with open(path, "rb") as fh:
        try:
            version = npy_format.read_magic(fh)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
        except ValueError:
            raise MicromotionError(f"{path.name} is not a NumPy .npy file.") from None
        if not dtype.hasobject:
            raise MicromotionError(f"{path.name} holds a {dtype} array, not suite2p's list of ROI dicts.")
        try:
            arr = _AllowListUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as exc:
            raise MicromotionError(f"{path.name} is not a plain suite2p stat file ({str(exc)[:80]}); "
                                   "refused to unpickle it.") from None
    return np.asarray(arr, dtype=object).reshape(shape)


def read_suite2p(path: str | os.PathLike, frame_shape: tuple[int, int], movie: np.ndarray | None = None
                 ) -> list[Candidate]:
    """Candidates from suite2p's ``stat.npy`` (a file or the folder holding it) and ``iscell.npy`` beside it.

    Pixels outside *frame_shape* are dropped; the trace is the mean of *movie* ``(T, Y, X)`` over the
    ROI's pixels (suite2p's ``F.npy`` is not read: it comes from a registered movie this one may not be).
    ``iscell`` becomes the label (``cell``/``not_cell``, by suite2p) and its probability.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "stat.npy"
    check(p.is_file(), f"suite2p file {p} does not exist.")
    stat = _load_object_npy(p)
    iscell = None
    ic_path = p.with_name("iscell.npy")
    if ic_path.is_file():
        try:
            iscell = np.load(ic_path, allow_pickle=False)
        except ValueError:
            raise MicromotionError(f"{ic_path.name} is not a numeric NumPy array.") from None
        check(iscell.ndim == 2 and iscell.shape[0] == stat.size,
              f"{ic_path.name} has {iscell.shape[0] if iscell.ndim else 0} rows but stat.npy has {stat.size} ROIs.")
    out: list[Candidate] = []
    ny, nx = frame_shape
    for i, st in enumerate(stat.ravel()):
        check(isinstance(st, dict) and "ypix" in st and "xpix" in st,
              f"{p.name}: entry {i} has no ypix/xpix pixel lists; is it suite2p's stat.npy?")
        y = np.asarray(st["ypix"], np.int64).ravel()
        x = np.asarray(st["xpix"], np.int64).ravel()
        check(y.size == x.size, f"{p.name}: entry {i} has ypix and xpix of different lengths.")
        keep = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
        if not keep.any():
            continue
        y, x = y[keep], x[keep]
        lam = st.get("lam")
        box = (int(y.min()), int(x.min()), int(y.max()) + 1, int(x.max()) + 1)
        sub = np.zeros((box[2] - box[0], box[3] - box[1]), bool)
        sub[y - box[0], x - box[1]] = True
        foot = None
        if lam is not None and np.asarray(lam).size == keep.size:
            foot = np.zeros(sub.shape, np.float32)
            foot[y - box[0], x - box[1]] = np.asarray(lam, np.float32).ravel()[keep]
        trace = (np.asarray(movie[:, box[0]:box[2], box[1]:box[3]], np.float32)[:, sub].mean(axis=1)
                 if movie is not None else np.zeros(0, np.float32))
        name = str(st.get("name") or f"s2p{i:04d}")
        label, prob = "", float("nan")
        if iscell is not None:
            label = "cell" if iscell[i, 0] > 0.5 else "not_cell"
            prob = float(iscell[i, 1]) if iscell.shape[1] > 1 else float(iscell[i, 0])
        out.append(Candidate(name=name, box=box, submask=sub, trace=trace, source="suite2p", footprint=foot,
                             probability=prob, label=label, labelled_by="suite2p" if label else ""))
    return out


def write_imagej(candidates: Sequence[Candidate], path: str | os.PathLike) -> Path:
    """An ImageJ ``RoiSet.zip`` of the candidates' outlines (names kept)."""
    return write_rois([c.roi() for c in candidates], path)


def read_imagej(path: str | os.PathLike, frame_shape: tuple[int, int], movie: np.ndarray | None = None
                ) -> list[Candidate]:
    """Candidates from an ImageJ ``.roi`` or ``RoiSet.zip`` (traces from *movie* when given)."""
    p = Path(path)
    if p.suffix.lower() == ".zip":
        check(zipfile.is_zipfile(p), f"{p.name} is not a zip archive.")
    return [from_roi(r, movie, frame_shape, source="imagej") for r in read_rois(p)]
