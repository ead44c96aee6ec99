"""3D motion from one motion-blurred frame (Shajkofci & Liebling, ISBI 2021) as a tool.

``micromotion blur-flow IMAGE [--frame N] [--model M] --out DIR``

The network of :mod:`napari_micromotion.blurflow` reads, at every pixel of one
long-exposure image, the local motion-blur PSF: the lateral blur over the exposure,
the axial motion, the starting depth, and whether the texture there is rich enough to
tell (validity).  Nothing but that one image is needed.

Output folder (written atomically):

* ``blur_flow.tif``: ``(5, Y, X)`` float32: ``v_y``, ``v_x`` (pixels of blur over the
  exposure, ``v_x >= 0``: a straight blur has an axis but no visible direction),
  ``v_z`` and ``z0`` (the paper's normalised axial unit, one defocus wave, about two
  depths of field; ``blur_flow.json`` gives micrometres per unit), validity (0-1);
* ``blur_flow.json``: parameters, the model used and its optics, the channels and
  their units, a summary (valid fraction, median lateral and axial blur over valid
  pixels), timings.

The shipped model was trained for a 10x/0.3 objective, ~600 nm light and 0.65 um
pixels; with ``--pixel-size`` the image is resampled to the model's pixel size before
the network reads it and the maps back to the image's pixels (lateral blur then in the
image's pixels).  For other optics retrain it (``micromotion train-blur-flow``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np

from ..blurflow.predict import BlurFlowParams
from ..errors import MicromotionError, check
from ..layout import Entry, pixel_size_meta, read_tif
from ..progress import Progress
from ..schema import param
from . import TOOLS
from .base import RecordEntry, Tool, ToolResult, finite_or_none

__all__ = ["BlurFlow", "BlurFlowToolParams", "BlurFlowToolResult", "CHANNEL_UNITS"]

#: the channels of ``blur_flow.tif`` and their units
CHANNEL_UNITS = {"v_y": "px of blur over the exposure", "v_x": "px of blur over the exposure (>= 0)",
                 "v_z": "defocus waves over the exposure", "z0": "defocus waves from focus at the start",
                 "validity": "0-1"}


#: said with every result of the shipped model (measured by benchmarks/bench_blur_flow.py)
SHIPPED_MODEL_CAVEAT = ("the shipped blur-flow model is approximate: mean R^2 0.29 on the paper's two-zone test "
                        "(the paper: 0.92); the validity map and the blur axis are usable, the lengths only roughly, "
                        "v_z hardly at all (see docs/blurflow.md).")


@dataclass(frozen=True)
class BlurFlowToolParams:
    """Settings of the blur-flow tool."""

    model: str | None = param(None, label="model", flag="--model", metavar="PATH", none_text="the shipped model",
                              help="A blur-flow model (.safetensors) made by micromotion train-blur-flow; by default "
                                   "the model shipped with the plug-in (10x/0.3 objective, 0.65 um pixels).")
    min_validity: float = param(0.5, label="arrows where validity", unit="", min=0.0, max=1.0, decimals=2,
                                flag="--min-validity",
                                help="Arrows in napari are drawn only where the validity map reaches this value "
                                     "(elsewhere the texture is too poor to measure a blur).")
    arrows: int = param(24, label="arrows across", min=2, max=256, flag="--arrows", advanced=True,
                        help="Arrows per image width in napari's blur layer.")
    pixel_size_um: float | None = param(None, label="pixel size", unit="um", min=0.01, max=100.0, decimals=3,
                                        flag="--pixel-size", none_text="the model's",
                                        help="The image's pixel size: it is resampled to the model's pixel size "
                                             "(0.65 um for the shipped model) before the network reads it, and the "
                                             "maps back; empty: the image is taken as it is.")
    prediction: BlurFlowParams = param(label="tiles and threads", default_factory=BlurFlowParams,
                                       help="How the network runs over the image: tiles and threads.")


@dataclass
class BlurFlowToolResult(ToolResult):
    """The blur flow of one image (see the module docstring)."""

    flow: np.ndarray | None = None          # (5, Y, X)
    pixel_size_um: float = 0.65
    axial_unit_um: float = 1.0
    blur_px_per_unit: float = 12.0
    model: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def validity(self) -> np.ndarray:
        return self.flow[4]

    @property
    def lateral_px(self) -> np.ndarray:
        """Length of the lateral blur streak (px)."""
        return np.hypot(self.flow[0], self.flow[1])


def summarise(flow: np.ndarray, min_validity: float) -> dict[str, float]:
    """Valid fraction and medians of the lateral and axial blur over the valid pixels."""
    valid = flow[4] >= min_validity
    frac = float(valid.mean())
    if not valid.any():
        return {"valid_fraction": frac, "median_lateral_px": float("nan"), "median_abs_v_z": float("nan"),
                "median_z0": float("nan")}
    return {"valid_fraction": frac, "median_lateral_px": float(np.median(np.hypot(flow[0], flow[1])[valid])),
            "median_abs_v_z": float(np.median(np.abs(flow[2])[valid])), "median_z0": float(np.median(flow[3][valid]))}


class _FlowEntry(Entry):
    path = "blur_flow.tif"
    what = "(5, Y, X): v_y, v_x (px of blur), v_z, z0 (defocus waves), validity (0-1)"

    def write(self, result: BlurFlowToolResult, folder: Path) -> None:
        """A plain TIFF (its JSON names the channels); the image's pixel size, when given (``--pixel-size``; not
        the model's, assumed otherwise), as the TIFF resolution tags, which ImageJ reads."""
        import tifffile

        _, scale = pixel_size_meta(result.params.pixel_size_um, imagej=False)
        tifffile.imwrite(folder / self.path, np.asarray(result.flow, np.float32), photometric="minisblack",
                         metadata={"axes": "CYX", "channels": list(CHANNEL_UNITS),
                                   "units": list(CHANNEL_UNITS.values()), "axial_unit_um": result.axial_unit_um},
                         **scale)

    def read(self, folder: Path, fields: dict[str, Any]) -> None:
        p = folder / self.path
        check(p.is_file(), f"{folder} has no {self.path}.")
        flow = read_tif(p)
        check(flow.ndim == 3 and flow.shape[0] == 5, f"{p} is not a (5, Y, X) blur-flow stack.")
        fields["flow"] = flow


def _load_model(path: str | None) -> Any:
    from ..blurflow import load_default_model
    from ..blurflow.model import load_blur_flow

    return load_default_model() if path is None else load_blur_flow(Path(path))


@TOOLS.register
class BlurFlow(Tool):
    name = "blur_flow"
    label = "blur flow"
    description = ("3D motion from one motion-blurred frame: lateral blur, axial motion, depth and validity per pixel "
                   "(Shajkofci & Liebling 2021)")
    kind = "image -> vectors"
    input = "image"
    Params = BlurFlowToolParams
    result_type = BlurFlowToolResult
    layout = [_FlowEntry(), RecordEntry("blur_flow.json", "parameters, model and optics, channel units, summary, timings")]

    def check(self, image: Any, params: BlurFlowToolParams) -> None:
        from ..blurflow.predict import check_image

        a = np.asarray(image)
        check(a.ndim == 2, f"blur flow works on one 2D image, got shape {tuple(a.shape)}; pick a frame first.")
        check_image(a)
        params.prediction.validate()
        if params.model is not None:
            p = Path(params.model)
            check(p.exists() or p.with_suffix(".safetensors").exists(),
                  f"the blur-flow model {p} does not exist.")

    def compute(self, image: Any, params: BlurFlowToolParams, *,
                rois: Sequence[Any] = ()) -> Generator[Progress, None, BlurFlowToolResult]:
        from ..blurflow.predict import MIN_SIDE_PX, check_image, iter_predict_blur_flow

        t0 = time.perf_counter()
        yield Progress("blur flow", 0.0, "loading the model")
        model = _load_model(params.model)
        t_load = time.perf_counter() - t0
        img = check_image(image)
        model_px = float(model.optics.pixel_size_um)
        zoom = 1.0 if params.pixel_size_um is None else float(params.pixel_size_um) / model_px
        if abs(zoom - 1.0) > 0.01:           # resample to the model's pixels, predict, and map back
            import cv2

            ny, nx = img.shape
            size = (max(1, round(nx * zoom)), max(1, round(ny * zoom)))
            check(min(size) >= MIN_SIDE_PX, f"at {model_px:g} um per pixel (the model's) this image is only "
                                            f"{size[1]} x {size[0]} px; blur flow needs at least {MIN_SIDE_PX}.")
            small = cv2.resize(img, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
            res = yield from iter_predict_blur_flow(small, model, params.prediction)
            back = np.stack([cv2.resize(c, (nx, ny), interpolation=cv2.INTER_LINEAR) for c in res.flow])
            back[:2] /= zoom                  # blur lengths from the model's pixels to the image's
            res = replace(res, flow=back.astype(np.float32), pixel_size_um=float(params.pixel_size_um))
        else:
            res = yield from iter_predict_blur_flow(img, model, params.prediction)
        summary = summarise(res.flow, params.min_validity)
        warnings = []
        if params.model is None:
            warnings.append(SHIPPED_MODEL_CAVEAT)
        if summary["valid_fraction"] < 0.05:
            warnings.append(f"only {summary['valid_fraction'] * 100:.1f} % of the image has enough texture for the "
                            "blur to be measured (validity >= "
                            f"{params.min_validity:g}); the other channels mean little there.")
        a = np.asarray(image)
        return BlurFlowToolResult(
            params=params, source={"shape": list(a.shape), "dtype": str(a.dtype),
                                   "model": params.model or "shipped", "model_pixel_size_um": model_px,
                                   "resampled_by": round(zoom, 6)},
            timings_s={"load_model": t_load, "predict": res.seconds}, warnings=warnings, flow=res.flow,
            pixel_size_um=res.pixel_size_um, axial_unit_um=res.axial_unit_um, blur_px_per_unit=res.blur_px_per_unit,
            model=res.model, summary=summary)

    def result_record(self, result: BlurFlowToolResult) -> dict[str, Any]:
        return {"channels": CHANNEL_UNITS, "pixel_size_um": result.pixel_size_um,
                "axial_unit_um": result.axial_unit_um, "blur_px_per_unit": result.blur_px_per_unit,
                "model": result.model, "summary": finite_or_none(result.summary)}

    def fields_from_record(self, rec: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {key: float(rec[key]) for key in ("pixel_size_um", "axial_unit_um", "blur_px_per_unit")
                                  if key in rec}
        return {**fields, "model": rec.get("model", {}), "summary": rec.get("summary", {})}

    def arrows(self, result: BlurFlowToolResult) -> tuple[np.ndarray, np.ndarray]:
        """Blur axes on a grid where validity suffices: napari vectors ``(N, 2, 2)`` and their ``v_z``.

        A blur has an axis but no direction, so each segment is centred on its grid point
        and as long as the blur streak.
        """
        flow = result.flow
        ny, nx = flow.shape[1:]
        step = max(1, int(round(nx / max(result.params.arrows, 1))))
        rows = np.arange(step // 2, ny, step)
        cols = np.arange(step // 2, nx, step)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        rr, cc = rr.ravel(), cc.ravel()
        keep = flow[4, rr, cc] >= result.params.min_validity
        rr, cc = rr[keep], cc[keep]
        v = np.stack([flow[0, rr, cc], flow[1, rr, cc]], axis=1)
        vec = np.zeros((len(rr), 2, 2), np.float32)
        vec[:, 0] = np.stack([rr, cc], axis=1) - v / 2
        vec[:, 1] = v
        return vec, flow[2, rr, cc]

    def layer_data(self, result: BlurFlowToolResult) -> list[tuple[Any, dict[str, Any], str]]:
        from .._layers import META_KEY

        if result.flow is None:
            raise MicromotionError("this blur-flow result holds no flow.")
        meta = {META_KEY: {"role": "result", "tool": self.name}}
        flow = result.flow
        vz_hi = float(np.nanpercentile(np.abs(flow[2]), 99.5)) or 1.0
        out: list[tuple[Any, dict[str, Any], str]] = [
            (flow[4], {"name": "blur flow: validity", "colormap": "gray", "contrast_limits": (0.0, 1.0),
                       "opacity": 0.5, "visible": False, "metadata": meta}, "image"),
            (flow[2], {"name": "blur flow: axial motion v_z (defocus waves)", "colormap": "magma",
                       "contrast_limits": (0.0, vz_hi), "blending": "additive", "opacity": 0.7,
                       "metadata": meta}, "image"),
        ]
        vec, vz = self.arrows(result)
        if len(vec):
            out.append((vec, {"name": "blur flow: lateral blur", "edge_width": 0.8, "length": 1.0,
                              "features": {"v_z": vz}, "edge_color": "v_z", "edge_colormap": "viridis",
                              "vector_style": "line", "metadata": meta}, "vectors"))
        return out
