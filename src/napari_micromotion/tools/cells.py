"""Cell finding (issue 15): candidate ROIs from the fluorescence video, classified by 3CNet, typed by micromotion.

``micromotion cells FLUORESCENCE [--transmission T] [--fps F] [--method ica|segment|auto] [--model M] --out DIR``

Stages (:mod:`napari_micromotion.cells`): candidates are extracted (PCA/ICA for independently
firing cells, segmentation of the mean/correlation image or the brightfield still for
syncytia), or imported (``--candidates``: a ``candidates.json`` of an earlier run, suite2p's
``stat.npy`` or an ImageJ ``RoiSet.zip``); a 3CNet classifier (the shipped compact one or
``--model``) gives each candidate P(cell); candidates labelled by a person in an imported
``candidates.json`` first fine-tune the classifier and keep their labels; with
``--kinds-from ANALYSIS`` the accepted cells are typed strong / weak / silent from that
analysis' micromotion scores.

Output folder (written atomically):

* ``candidates.json``: every candidate in the ROI format plus ``probability``, ``label``
  (``cell``/``not_cell``), ``labelled_by`` (``classifier``/``user``/``suite2p``), ``source``, ``area_px``
  and, for independent components, ``footprint`` (``box`` and ``weights``: the spatial filter the
  classifier weights the patch with, so re-classifying the file gives the same probabilities);
* ``cells.json``: the accepted cells (label ``cell``) in the ROI format, for ``analyze --rois``;
* ``cells.csv``: one row per candidate: name, area_px, centroid_row, centroid_col, probability,
  label, labelled_by, source, kind;
* ``traces.tif``: float32 ``(N, T)``, each candidate's mean fluorescence (rows in
  ``candidates.json`` order), so a run can be re-classified and curated later;
* ``mean_image.tif``, ``correlation_image.tif``: the images candidates were found on (ImageJ
  TIFFs in micrometres when the pixel size is known);
* ``classifier.json``: the model, threshold, counts, fine-tuning record and, when labels by
  a person exist, accuracy, precision, recall, F1 and the confusion matrix against them;
* ``suite2p/stat.npy`` + ``iscell.npy`` (``--suite2p``) and ``RoiSet.zip`` of the cells
  (``--imagej``) on request; ``run.json`` (the run record).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from ..cells.candidate import LABELS, Candidate, from_roi
from ..cells.candidates import CandidateParams
from ..errors import MicromotionError, check, check_file
from ..layout import Entry, ImageEntry, read_tif, write_csv
from ..progress import Progress
from ..schema import param
from . import TOOLS
from .base import RecordEntry, Tool, ToolResult, json_default, synthesized_warning

__all__ = ["Cells", "CellsParams", "CellsResult", "read_candidates"]

KIND_METHODS = ("auto", "cnn3d", "cnn1d", "matched", "flow", "bandpass")
CSV_COLUMNS = ["name", "area_px", "centroid_row", "centroid_col", "probability", "label", "labelled_by", "source",
               "kind"]


@dataclass(frozen=True)
class CellsParams:
    """Settings of the cell-finding tool."""

    model: str | None = param(None, label="classifier", flag="--model", metavar="MODEL",
                              none_text="the shipped compact 3CNet",
                       help="A cell classifier (safetensors + JSON) saved by the Cells tab or 'micromotion "
                            "train-cells'.")
    threshold: float = param(0.5, label="accept when P(cell) >=", min=0.0, max=1.0, decimals=2, flag="--threshold",
                             help="Candidates the classifier gives at least this probability are labelled cell.")
    candidates: str | None = param(None, label="candidates from", flag="--candidates", metavar="FILE", advanced=True,
                                   none_text="extract them",
                            help="Classify these candidates instead of extracting new ones: a candidates.json of an "
                                 "earlier run (its labels by a person fine-tune the classifier first and are kept), "
                                 "suite2p's stat.npy (and iscell.npy beside it) or an ImageJ RoiSet.zip.")
    finetune_seconds: float = param(10.0, label="fine-tuning budget", unit="s", min=0.0, max=3600.0,
                                    flag="--finetune-seconds", advanced=True,
                                    help="Longest fine-tuning on the labels given by a person.")
    kinds_from: str | None = param(None, label="kinds from analysis", flag="--kinds-from", metavar="DIR",
                                   advanced=True, none_text="no analysis",
                            help="An analyze output folder run with these cells as ROIs: propose strong / weak / "
                                 "silent from its micromotion scores.")
    kind_method: str = param("auto", label="kinds from method", choices=KIND_METHODS, flag="--kind-method",
                             advanced=True, help="Whose scores type the cells (auto: cnn3d, cnn1d, matched, flow, "
                                                 "bandpass, the first the analysis has).")
    significance: float = param(0.05, label="motion significant when p <", min=1e-6, max=0.5, decimals=3,
                                flag="--significance", advanced=True,
                                help="A cell whose micromotion score has a p-value below this moves with its calcium "
                                     "(strong or weak); otherwise it is silent.")
    strong_score: float = param(0.5, label="strong when score >=", min=0.0, max=1.0, decimals=2,
                                flag="--strong-score", advanced=True,
                                help="Significant cells scoring at least this are strong, the others weak.")
    suite2p: bool = param(False, label="write suite2p files", flag="--suite2p", advanced=True,
                          help="Also write suite2p/stat.npy and iscell.npy of every candidate.")
    imagej: bool = param(False, label="write ImageJ RoiSet.zip", flag="--imagej", advanced=True,
                         help="Also write RoiSet.zip with the accepted cells.")
    extraction: CandidateParams = param(label="candidates", default_factory=CandidateParams,
                                        help="How candidates are found.")
    threads: int = param(2, label="threads", min=1, max=64, flag="--threads", advanced=True,
                         help="CPU threads torch uses.")


@dataclass
class CellsResult(ToolResult):
    """Candidates with their class, the images they were found on, and the classifier's record."""

    candidates: list[Candidate] = field(default_factory=list)
    frame_shape: tuple[int, int] = (0, 0)
    fps: float = 1.0
    pixel_size_um: float | None = None            # of the recording, if known (written into the images' TIFFs)
    mean_image: np.ndarray | None = None
    correlation_image: np.ndarray | None = None
    extraction: dict[str, Any] = field(default_factory=dict)
    classifier: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, Any] = field(default_factory=dict)
    #: the classifier that labelled them (in memory only: the Cells tab fine-tunes it on your labels)
    model: Any = field(default=None, repr=False)

    def classifier_model(self) -> Any:
        """The classifier that labelled the candidates (loaded again for a result read from a folder)."""
        if self.model is None:
            from ..cells.train import CellClassifier

            model = getattr(self.params, "model", None)
            self.model = CellClassifier.load(model) if model else CellClassifier.shipped()
        return self.model

    def encode(self) -> np.ndarray:
        """The classifier's inputs of every candidate (patches zoomed by the recording's cell diameter)."""
        return self.classifier_model().encode(self.candidates, self.mean_image,
                                              cell_diameter_px=self.extraction.get("diameter_px"))

    @property
    def cells(self) -> list[Candidate]:
        """The accepted candidates (label ``cell``)."""
        return [c for c in self.candidates if c.label == "cell"]

    def traces(self) -> np.ndarray:
        """``(N, T)`` float32 traces of all candidates."""
        if not self.candidates:
            return np.zeros((0, 0), np.float32)
        return np.stack([c.trace for c in self.candidates]).astype(np.float32)


# ---------------------------------------------------------------- files
class CandidatesEntry(Entry):
    """``candidates.json`` + ``traces.tif`` <-> ``candidates``."""

    path = "candidates.json"
    what = "every candidate: the ROI format plus probability, label, labelled_by, source, area_px"

    def write(self, result: CellsResult, folder: Path) -> None:
        (folder / self.path).write_text(json.dumps([c.to_dict() for c in result.candidates], indent=1) + "\n")

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        traces = read_tif(folder / "traces.tif") if (folder / "traces.tif").is_file() else None
        shape = tuple(fields.get("frame_shape") or ())
        if len(shape) != 2:
            mean = folder / "mean_image.tif"
            shape = read_tif(mean).shape if mean.is_file() else None
        fields["candidates"] = read_candidates(folder / self.path, shape, traces=traces)


class TracesEntry(Entry):
    path = "traces.tif"
    what = "float32 (N, T): each candidate's mean fluorescence, rows in candidates.json order"

    def write(self, result: CellsResult, folder: Path) -> None:
        import tifffile

        tifffile.imwrite(folder / self.path, result.traces())

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        """Read with ``candidates.json``."""


class CellsJsonEntry(Entry):
    path = "cells.json"
    what = "the accepted cells in the ROI format (analyze --rois reads it)"

    def write(self, result: CellsResult, folder: Path) -> None:
        rois = [c.roi().to_dict() for c in result.cells]
        (folder / self.path).write_text(json.dumps(rois, indent=1) + "\n")

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        """The cells are the candidates labelled cell."""


class CellsCsvEntry(Entry):
    path = "cells.csv"
    what = "one row per candidate: " + ", ".join(CSV_COLUMNS)

    def write(self, result: CellsResult, folder: Path) -> None:
        rows = []
        for c in result.candidates:
            r, col = c.centroid
            values = [c.name, c.area_px, round(r, 2), round(col, 2),
                      round(float(c.probability), 5) if np.isfinite(c.probability) else "", c.label,
                      c.labelled_by, c.source, c.kind]
            rows.append(dict(zip(CSV_COLUMNS, values)))
        write_csv(folder / self.path, rows, CSV_COLUMNS)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        """Everything in it is in ``candidates.json``."""


class ClassifierEntry(Entry):
    path = "classifier.json"
    what = "classifier, threshold, counts, fine-tuning and metrics against labels by a person"

    def write(self, result: CellsResult, folder: Path) -> None:
        (folder / self.path).write_text(json.dumps(result.classifier, indent=1, default=json_default) + "\n")

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        p = folder / self.path
        if p.is_file():
            fields["classifier"] = json.loads(p.read_text())


class InteropEntry(Entry):
    path = "suite2p/, RoiSet.zip"
    what = "suite2p stat.npy + iscell.npy of every candidate (--suite2p); ImageJ RoiSet.zip of the cells (--imagej)"

    def write(self, result: CellsResult, folder: Path) -> None:
        from ..cells.interop import write_imagej, write_suite2p

        if result.params.suite2p:
            write_suite2p(result.candidates, folder / "suite2p")
        if result.params.imagej and result.cells:
            write_imagej(result.cells, folder / "RoiSet.zip")

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        """Exports only."""


def read_candidates(path: str | Path, frame_shape: tuple[int, int] | None, *, traces: np.ndarray | None = None,
                    movie: np.ndarray | None = None) -> list[Candidate]:
    """Candidates from a ``candidates.json`` (masks from the polygons; traces from *traces* rows or *movie*)."""
    from ..rois import parse_rois

    path = Path(path)
    check_file(path, "candidates file")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MicromotionError(f"{path.name} is not valid JSON ({str(exc)[:80]}).") from None
    rois = parse_rois(obj, f"candidates file {path.name}")
    if frame_shape is None:
        hi = max((r.polygon.max(axis=0) for r in rois), key=lambda v: v.sum(), default=np.zeros(2))
        frame_shape = (int(np.ceil(hi[0])) + 2, int(np.ceil(hi[1])) + 2)
    check(traces is None or len(traces) == len(rois),
          f"{path.name} lists {len(rois)} candidates but the traces file has {0 if traces is None else len(traces)}.")
    out = []
    for i, (roi, entry) in enumerate(zip(rois, obj if isinstance(obj, list) else obj["rois"])):
        c = from_roi(roi, movie, frame_shape, source=str(entry.get("source", "user")))
        if traces is not None:
            c.trace = np.asarray(traces[i], np.float32)
        p = entry.get("probability")
        c.probability = float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else float("nan")
        label = entry.get("label", "")
        check(label in LABELS, f"{path.name}: candidate {roi.name!r} has unknown label {label!r}.")
        c.label = label
        c.labelled_by = str(entry.get("labelled_by", "user" if label else ""))
        c.set_footprint(entry.get("footprint"))
        out.append(c)
    return out


# ---------------------------------------------------------------- the tool
@TOOLS.register
class Cells(Tool):
    name = "cells"
    label = "cells"
    description = ("find the cells: candidate ROIs by PCA/ICA or segmentation, classified by 3CNet (image + trace), "
                   "fine-tuned on your labels, typed strong / weak / silent by their micromotion")
    kind = "video -> ROIs"
    input = "fluorescence"
    Params = CellsParams
    result_type = CellsResult
    result_view = "napari_micromotion._qt.cells_view:CellsView"
    loss_title = "fine-tuning loss (multiclass hinge)"
    record_file = "run.json"   # cells.json holds the accepted cells
    export_options = ("suite2p", "imagej")
    layout = [
        CandidatesEntry(), TracesEntry(), CellsJsonEntry(), CellsCsvEntry(), ClassifierEntry(),
        ImageEntry("mean_image.tif", "mean_image", "the fluorescence's mean image"),
        ImageEntry("correlation_image.tif", "correlation_image", "each pixel's correlation with its neighbours"),
        InteropEntry(),
        RecordEntry("run.json", "parameters, extraction method and why, counts, timings"),
    ]

    def check(self, recording: Any, params: CellsParams) -> None:
        fl = recording.fluorescence
        check(fl is not None, "cell finding needs a fluorescence video; none was given.")
        check(fl.ndim == 3, "cell finding needs the fluorescence as a video, not a single trace.")
        n, (ny, nx) = recording.n_frames, recording.frame_shape
        check(n >= 20, f"the video has {n} frames; finding cells needs at least 20.")
        check(min(ny, nx) >= 16, f"frames of {ny} x {nx} px are too small to find cells in (at least 16 x 16 px).")
        if params.model:
            from ..cells.train import CellClassifier

            CellClassifier.load(params.model)   # a missing, foreign or pickled file: one sentence
        if params.candidates:
            check(Path(params.candidates).exists(), f"candidates file {params.candidates} does not exist.")
        if params.kinds_from:
            from ..cells.kinds import check_significance, p_value_floor_of_folder

            check((Path(params.kinds_from) / "roi_scores.csv").is_file(),
                  f"{params.kinds_from} is not an analysis output folder (no roi_scores.csv).")
            # a significance level its p-values cannot reach: refused now, not after finding the cells
            check_significance(params.significance, p_value_floor_of_folder(params.kinds_from))

    def compute(self, recording: Any, params: CellsParams, *, rois: Sequence[Any] = ()
                ) -> Generator[Progress, None, Any]:
        from ..cells.candidates import iter_extract
        from ..cells.train import CellClassifier

        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        warnings: list[str] = []
        synth = synthesized_warning(recording, "the cells were found and classified on traces that include frames "
                                               "that were not measured; find cells on the measured recording.")
        if synth:
            warnings.append(synth)
        movie = recording.fluorescence
        shape = tuple(movie.shape[1:])
        transmission = None if recording.provenance.get("no_transmission") else recording.transmission
        # 1. candidates
        if params.candidates:
            yield Progress("candidates", 0.0, f"reading {Path(params.candidates).name}")
            candidates = _import_candidates(params.candidates, shape, movie)
            extraction = {"method": "imported", "from": str(params.candidates)}
            ex = None
        else:
            ex = yield from iter_extract(movie, recording.fps, params.extraction, transmission=transmission)
            candidates = list(ex.candidates)
            extraction = {"method": ex.method, "reason": ex.reason, "timings_s": ex.timings_s}
        candidates += [from_roi(r, movie, shape, source="user") for r in rois]
        timings["candidates"] = time.perf_counter() - t0
        check(len({c.name for c in candidates}) == len(candidates), "candidate names repeat; rename the ROIs.")
        mean_image = ex.mean_image if ex is not None else _mean_image(movie)
        corr_image = ex.correlation_image if ex is not None else None
        if ex is not None:
            diameter_px = float(ex.diameter_px)
        else:
            from ..cells.candidates import estimate_diameter_px

            diameter_px = float(params.extraction.diameter_px or estimate_diameter_px(mean_image))
        extraction["diameter_px"] = round(diameter_px, 2)
        # 2. classifier: fine-tuned on labels by a person, then applied
        t1 = time.perf_counter()
        clf = CellClassifier.load(params.model) if params.model else CellClassifier.shipped()
        record: dict[str, Any] = {"model": params.model or "shipped compact 3CNet", "config": clf.describe(),
                                  "threshold": params.threshold}
        trained = [r.get("n_frames") for r in ((clf.training or {}).get("data") or {}).get("recordings", [])
                   if isinstance(r, dict) and r.get("n_frames")]
        if trained and movie.shape[0] < min(trained):
            warnings.append(f"the classifier was trained on recordings of {min(trained)}-{max(trained)} frames; this "
                            f"one has {movie.shape[0]}, and on short traces it rejects true cells; check its labels "
                            "(or retrain it on your labels).")
        if candidates:
            yield Progress("classify", 0.0, f"{len(candidates)} candidates")
            x = clf.encode(candidates, mean_image, cell_diameter_px=diameter_px)
            user = np.array([c.labelled_by == "user" and c.label in ("cell", "not_cell") for c in candidates])
            if user.any():
                y = np.array([c.label == "cell" for c in candidates], np.int64)
                before = clf.predict_proba(x[user])
                tuned = yield from clf.iter_finetune(x[user], y[user], max_seconds=params.finetune_seconds,
                                                     threads=params.threads)
                after = clf.predict_proba(x[user])
                from ..cells.train import metrics

                record["user_labels"] = int(user.sum())
                record["finetune"] = tuned
                record["against_user_labels_before_finetune"] = metrics(y[user], before >= params.threshold)
                record["against_user_labels_after_finetune"] = metrics(y[user], after >= params.threshold)
            prob = clf.predict_proba(x)
            # suite2p's labels (iscell.npy beside stat.npy: its classifier's, or a person's curation in its GUI)
            # are kept, like a person's; the probability is ours
            kept = np.array([c.labelled_by == "suite2p" and c.label in ("cell", "not_cell") for c in candidates])
            for c, p, u, k in zip(candidates, prob, user, kept):
                c.probability = float(p)
                if not (u or k):
                    c.label = "cell" if p >= params.threshold else "not_cell"
                    c.labelled_by = "classifier"
            if kept.any():
                differ = sum((c.label == "cell") != (c.probability >= params.threshold)
                             for c, k in zip(candidates, kept) if k)
                record["suite2p_labels"] = {"kept": int(kept.sum()), "classifier_disagrees": int(differ)}
                warnings.append(f"{int(kept.sum())} candidate(s) keep the labels of suite2p's iscell.npy; this "
                                f"classifier would label {differ} of them otherwise (its probabilities are in "
                                "candidates.json); to have them classified here, import stat.npy without iscell.npy.")
        timings["classify"] = time.perf_counter() - t1
        record["counts"] = {"candidates": len(candidates), "cells": sum(c.label == "cell" for c in candidates),
                            "not_cells": sum(c.label == "not_cell" for c in candidates)}
        record["ms_per_candidate"] = 1000 * timings["classify"] / max(1, len(candidates))
        # 3. kinds from an analysis
        kinds: dict[str, Any] = {}
        if params.kinds_from:
            from ..cells.kinds import KindRule, pick_method, propose_kinds, read_scores

            scores = read_scores(params.kinds_from)
            rule = KindRule(params.kind_method, params.significance, params.strong_score)   # its floor: in check()
            proposed = propose_kinds([c for c in candidates if c.label == "cell"], scores, rule)
            missing = sum(c.label == "cell" and c.name not in proposed for c in candidates)
            if missing:
                warnings.append(f"{missing} accepted cell(s) have no score in {params.kinds_from}; their kind is "
                                "left open (analyse the recording with these cells as its ROIs, then type them).")
            kinds = {"from": str(params.kinds_from), "method": pick_method(scores, params.kind_method),
                     "significance": params.significance, "strong_score": params.strong_score,
                     "kinds": proposed}
        timings["total"] = time.perf_counter() - t0
        yield Progress("cells", 1.0, f"{record['counts']['cells']} cells among {len(candidates)} candidates")
        return CellsResult(params=params, source=dict(recording.provenance), timings_s=timings, warnings=warnings,
                           candidates=candidates, frame_shape=shape, fps=recording.fps,
                           pixel_size_um=recording.pixel_size_um, mean_image=np.asarray(mean_image, np.float32),
                           correlation_image=None if corr_image is None else np.asarray(corr_image, np.float32),
                           extraction=extraction, classifier=record, kinds=kinds, model=clf)

    def result_record(self, result: CellsResult) -> dict[str, Any]:
        return {"frame_shape": list(result.frame_shape), "fps": result.fps, "pixel_size_um": result.pixel_size_um,
                "extraction": result.extraction, "counts": result.classifier.get("counts", {}), "kinds": result.kinds}

    def fields_from_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"extraction": dict(rec.get("extraction", {})), "kinds": dict(rec.get("kinds", {}))}
        if rec.get("frame_shape"):
            fields["frame_shape"] = tuple(int(v) for v in rec["frame_shape"])
        if rec.get("fps"):
            fields["fps"] = float(rec["fps"])
        px = rec.get("pixel_size_um")
        if isinstance(px, (int, float)) and not isinstance(px, bool) and px > 0:
            fields["pixel_size_um"] = float(px)
        return fields

    def layer_data(self, result: CellsResult) -> list[tuple[Any, dict[str, Any], str]]:
        from .._layers import META_KEY

        cands = result.candidates
        meta = {META_KEY: {"role": "result", "tool": self.name}}
        out: list[tuple[Any, dict[str, Any], str]] = []
        if result.mean_image is not None:
            lo, hi = (float(v) for v in np.percentile(result.mean_image, [0.5, 99.8]))
            out.append((result.mean_image, {"name": "cells: mean image", "colormap": "gray",
                                            "contrast_limits": (lo, hi if hi > lo else lo + 1), "metadata": meta},
                        "image"))
        if cands:
            prob = np.array([c.probability if np.isfinite(c.probability) else 0.5 for c in cands])
            props = {"name": [c.name for c in cands], "probability": prob,
                     "label": [c.label or "undecided" for c in cands]}
            out.append(([c.polygon for c in cands],
                        {"name": "cell candidates", "shape_type": "polygon", "properties": props,
                         "face_color": "transparent", "edge_color": "probability", "edge_colormap": "RdYlGn",
                         "edge_contrast_limits": (0.0, 1.0), "edge_width": 1.0, "metadata": meta}, "shapes"))
        return out


def _mean_image(movie: np.ndarray, max_frames: int = 2000) -> np.ndarray:
    step = max(1, movie.shape[0] // max_frames)
    return np.asarray(movie[::step], np.float32).mean(axis=0)


def _import_candidates(path: str, shape: tuple[int, int], movie: np.ndarray) -> list[Candidate]:
    from ..cells.interop import read_imagej, read_suite2p

    p = Path(path)
    if p.is_dir() or p.suffix.lower() == ".npy":
        return read_suite2p(p, shape, movie)
    if p.suffix.lower() in (".zip", ".roi"):
        return read_imagej(p, shape, movie)
    return read_candidates(p, shape, movie=movie)
