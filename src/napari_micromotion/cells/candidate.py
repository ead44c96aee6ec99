"""A cell candidate: a pixel mask in a bounding box, its outline, its trace, its class.

Coordinates follow :mod:`napari_micromotion.rois`: pixels of the full frame, ``row`` then
``col``, pixel centres at integers.  A candidate's mask is kept inside its bounding box
(``box`` = ``(row0, col0, row1, col1)``, half-open), so thousands of candidates of a large
frame stay small; :meth:`Candidate.mask` paints it into a full frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import check
from ..rois import ROI, roi_mask, self_intersects

__all__ = ["Candidate", "LABELS", "mask_polygon", "from_roi"]

#: a candidate's label: undecided, or decided (by a person or by the classifier's threshold)
LABELS = ("", "cell", "not_cell")


@dataclass
class Candidate:
    """One cell candidate.

    Parameters
    ----------
    name
        Unique label (``c0001`` ...); becomes the ROI name.
    box
        ``(row0, col0, row1, col1)`` of :attr:`submask` in the frame (half-open).
    submask
        Boolean pixel mask inside the box.
    trace
        Mean fluorescence over the mask per frame (float32, the recording's units).
    source
        Where it came from: ``"ica"``, ``"segment"``, ``"brightfield"``, ``"user"``, ``"synthetic"``, ``"suite2p"``, ``"imagej"``.
    footprint
        Optional float32 spatial weights in the box (an independent component's filter); ``None`` for masks.
    probability
        P(cell) from the classifier (NaN before classification).
    label
        One of :data:`LABELS`: ``""`` undecided, ``"cell"`` or ``"not_cell"``.
    labelled_by
        ``""``, ``"classifier"`` or ``"user"``: who set :attr:`label`.
    kind
        Micromotion kind when typed (``strong``, ``weak``, ``silent``, ``other``); ``""`` before.
    """

    name: str
    box: tuple[int, int, int, int]
    submask: np.ndarray
    trace: np.ndarray
    source: str = "segment"
    footprint: np.ndarray | None = None
    probability: float = float("nan")
    label: str = ""
    labelled_by: str = ""
    kind: str = ""
    _polygon: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: further outlines of a composite ROI it was made from (:attr:`ROI.parts`); :attr:`polygon` is the first
    _parts: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        self.box = tuple(int(v) for v in self.box)
        self.submask = np.asarray(self.submask, dtype=bool)
        r0, c0, r1, c1 = self.box
        check(self.submask.shape == (r1 - r0, c1 - c0), f"candidate {self.name!r}: mask shape does not match its box.")
        check(self.label in LABELS, f"candidate {self.name!r}: unknown label {self.label!r}.")
        self.trace = np.asarray(self.trace, dtype=np.float32).ravel()

    # ------------------------------------------------------------ geometry
    @property
    def area_px(self) -> int:
        return int(self.submask.sum())

    @property
    def centroid(self) -> tuple[float, float]:
        """``(row, col)`` of the mask's centre of mass in the frame."""
        rr, cc = np.nonzero(self.submask)
        return float(rr.mean() + self.box[0]), float(cc.mean() + self.box[1])

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask painted into a full frame of *shape*."""
        out = np.zeros(shape, bool)
        r0, c0, r1, c1 = self.box
        out[r0:r1, c0:c1] = self.submask[: max(0, min(r1, shape[0]) - r0), : max(0, min(c1, shape[1]) - c0)]
        return out

    @property
    def polygon(self) -> np.ndarray:
        """``(N, 2)`` outline (row, col) around the mask's largest component; cached."""
        if self._polygon is None:
            self._polygon = mask_polygon(self.submask) + np.array(self.box[:2], float)
        return self._polygon

    def roi(self, kind: str | None = None) -> ROI:
        """The candidate as an :class:`~napari_micromotion.rois.ROI` (kind: *kind*, its own, or ``other``)."""
        return ROI(name=self.name, kind=kind or self.kind or "other", polygon=self.polygon, parts=self._parts)

    def to_dict(self) -> dict[str, Any]:
        """The ROI file format plus ``probability``, ``label``, ``labelled_by``, ``source``, ``area_px``."""
        d = self.roi().to_dict()
        p = self.probability
        d.update({"probability": None if not np.isfinite(p) else round(float(p), 5), "label": self.label,
                  "labelled_by": self.labelled_by, "source": self.source, "area_px": self.area_px})
        if self.footprint is not None:     # the ICA filter the classifier weights the patch with: keep it
            d["footprint"] = {"box": list(self.box),
                              "weights": np.round(np.asarray(self.footprint, np.float64), 6).tolist()}
        return d

    def set_footprint(self, record: Any) -> None:
        """The :attr:`footprint` from :meth:`to_dict`'s ``footprint`` record, placed in this candidate's box."""
        if not isinstance(record, dict) or "box" not in record or "weights" not in record:
            return
        try:
            w = np.asarray(record["weights"], np.float32)
            b0, b1, _, _ = (int(v) for v in record["box"])
        except (TypeError, ValueError):
            return
        if w.ndim != 2 or not np.isfinite(w).all():
            return
        r0, c0, r1, c1 = self.box
        out = np.zeros((r1 - r0, c1 - c0), np.float32)
        rr0, cc0 = max(r0, b0), max(c0, b1)
        rr1, cc1 = min(r1, b0 + w.shape[0]), min(c1, b1 + w.shape[1])
        if rr1 > rr0 and cc1 > cc0:
            out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = w[rr0 - b0:rr1 - b0, cc0 - b1:cc1 - b1]
            self.footprint = out


def mask_polygon(mask: np.ndarray, tolerance_px: float = 0.35) -> np.ndarray:
    """Outline of a boolean mask's largest connected component as a simple polygon ``(N, 2)`` (row, col).

    The contour runs through the pixel edges (scikit-image's marching squares at level 0.5 on the
    zero-padded mask), so rasterising it with :func:`~napari_micromotion.rois.polygon_mask`
    (pixel centres inside) gives back the component; *tolerance_px* simplifies it slightly.
    """
    from scipy import ndimage
    from skimage import measure

    mask = np.asarray(mask, bool)
    check(mask.any(), "a candidate mask is empty.")
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())[1:]
        mask = lab == (int(np.argmax(sizes)) + 1)
    # fill holes: an outline cannot describe them
    mask = ndimage.binary_fill_holes(mask)
    padded = np.pad(mask.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    ring = max(contours, key=len) - 1.0
    if tolerance_px > 0 and len(ring) > 8:
        simple = measure.approximate_polygon(ring, tolerance_px)
        if len(simple) >= 5 and not self_intersects(simple[:-1]):
            ring = simple
    if len(ring) > 3 and np.allclose(ring[0], ring[-1]):
        ring = ring[:-1]
    return ring.astype(np.float64)


def from_roi(roi: ROI, movie: np.ndarray | None, frame_shape: tuple[int, int], *, source: str = "user",
             name: str | None = None) -> Candidate:
    """A candidate from a drawn or imported ROI (its trace from *movie* ``(T, Y, X)`` when given)."""
    full = roi_mask(roi, frame_shape)          # every outline of a composite ROI, its holes left out
    check(full.any(), f"ROI {roi.name!r} covers no pixel of the {frame_shape[0]} x {frame_shape[1]} frame.")
    rr, cc = np.nonzero(full)
    box = (int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1)
    sub = full[box[0]:box[2], box[1]:box[3]]
    if movie is not None:
        block = np.asarray(movie[:, box[0]:box[2], box[1]:box[3]], dtype=np.float32)
        trace = block[:, sub].mean(axis=1)
    else:
        trace = np.zeros(0, np.float32)
    c = Candidate(name=name or roi.name, box=box, submask=sub, trace=trace, source=source,
                  kind=roi.kind if roi.kind != "other" else "")
    c._polygon = np.asarray(roi.polygon, float)
    c._parts = tuple(np.asarray(p, float) for p in roi.parts)
    return c
