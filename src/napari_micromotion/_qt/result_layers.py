"""Result layers made from :class:`~napari_micromotion.results.Results` (updated by name).

``still frame``
    mean transmission image, grey;
``motion: band-pass RMS (dI/I)``
    how much each pixel moves (works without fluorescence; shown when there are no scores);
``score: <method>``
    one per pixel method, ``magma`` (perceptual), additive blending over the still frame,
    one colour scale shared by all methods (0 to the highest score); only the best method's
    map is visible, with a colour bar;
``delay: <method>``
    lag at the score maximum in seconds, diverging ``RdBu_r`` symmetric around 0, empty where the
    pixel's score is not above the chance level of its method (hidden);
``fluorescence activity``
    score of each fluorescence pixel (the ground truth's map, Fig. 3e);
``<map label> [k]``
    region methods' maps (the 3D network's dense weights, Fig. 5), one layer per feature k
    holding every ROI's map at its place, each ROI divided by its own largest weight (one
    symmetric colour scale per ROI, -1..1), ``RdBu_r``; hidden until asked for;
``band-passed``
    the band-passed transmission stack, computed on demand.

Every layer carries ``metadata["napari_micromotion"]`` with ``role="result"``, the
parameters and the provenance of the run.  Re-running replaces the data of layers
with the same name (and removes result layers the new run no longer makes)
instead of adding copies.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import numpy as np

from .._layers import META_KEY, plugin_meta, renamed_by_user, spatial_transform
from ..errors import check
from ..methods import METHODS, label_of
from ..progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..recording import Recording
    from ..results import Results

__all__ = ["apply_results", "result_layer_names", "iter_bandpassed", "show_bandpassed", "add_zarr_stacks", "STILL",
           "BANDPASSED", "score_name", "delay_name", "region_map_name", "ACTIVITY", "MOTION", "show_region_maps",
           "region_canvases"]

STILL = "still frame"
MOTION = "motion: band-pass RMS (dI/I)"
MOTION_CMAP = "inferno"
ACTIVITY = "fluorescence activity"
BANDPASSED = "band-passed"
SCORE_CMAP = "magma"
DIVERGING_CMAP = "RdBu_r"


def _label(method: str) -> str:
    return label_of(method)


def score_name(method: str) -> str:
    return f"score: {_label(method)}"


def delay_name(method: str) -> str:
    return f"delay: {_label(method)}"


def region_map_name(method: str, feature: int) -> str:
    m = METHODS.get(method)
    label = m.region_map_label if m is not None else method
    return f"{label} [{feature}]"


def region_canvases(results: "Results") -> dict[str, tuple[list[np.ndarray], dict[str, float]]]:
    """Per region method, one full-frame image per map channel with every ROI's map at its box.

    Each ROI's maps are divided by their own largest magnitude (one colour scale per ROI,
    as in Fig. 5), so they read -1..1; pixels outside every ROI's map are NaN
    (transparent).  Returns ``{method: (images, {roi: that largest magnitude})}``.
    """
    out: dict[str, tuple[list[np.ndarray], dict[str, float]]] = {}
    ny, nx = results.frame_shape
    for (method, roi), rm in results.region_maps.items():
        data = np.asarray(rm.data, np.float32)
        maps, vmax = out.setdefault(method, ([np.full((ny, nx), np.nan, np.float32) for _ in range(data.shape[0])],
                                             {}))
        v = float(np.nanmax(np.abs(data))) if data.size and np.isfinite(data).any() else 0.0
        vmax[roi] = v
        r0, r1, c0, c1 = (int(x) for x in rm.box)
        for k in range(min(len(maps), data.shape[0])):
            tile = data[k] / v if v > 0 else data[k]
            region = maps[k][r0:r1, c0:c1]
            inside = data[k] != 0      # the network's region: zero weights outside the ROI's outline
            region[inside] = tile[inside]
    return out


def _run_meta(results: "Results", provenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "result",
        "parameters": results.params.to_dict(),
        "methods": list(results.methods),
        "passband": dict(results.passband),
        "validation_frames": list(results.validation),
        "training_frames": [list(s) for s in results.training],
        "fps": results.fps,
        "pixel_size_um": results.pixel_size_um,
        "device": results.device,
        "warnings": list(results.warnings),
        "provenance": dict(provenance),
    }


def result_layer_names(results: "Results") -> list[str]:
    """Names of the layers :func:`apply_results` makes for *results* (bottom to top)."""
    names = [STILL, MOTION]
    if results.activity_map is not None:
        names.append(ACTIVITY)
    names += [delay_name(m) for m in results.methods if m in results.lag_maps]
    names += [score_name(m) for m in results.methods if m in results.score_maps]
    for method, (maps, _) in region_canvases(results).items():
        names += [region_map_name(method, k + 1) for k in range(len(maps))]
    return names


def _upsert(viewer: "napari.Viewer", name: str, data: np.ndarray, *, meta: dict[str, Any],
            contrast_limits: tuple[float, float], scale: np.ndarray, translate: np.ndarray, **new_kwargs: Any) -> Any:
    """Update the plugin's layer called *name* in place, or add it (its metadata remembers the name it was
    given: a layer the user renames is theirs, and a later run leaves it alone)."""
    meta = {**meta, "layer_name": name}
    for layer in viewer.layers:
        if layer.name == name and plugin_meta(layer).get("role") == "result" and not renamed_by_user(layer):
            layer.data = data
            layer.scale = scale
            layer.translate = translate
            layer.contrast_limits_range = contrast_limits
            layer.contrast_limits = contrast_limits
            layer.metadata = {**{k: v for k, v in layer.metadata.items() if k != META_KEY}, META_KEY: meta}
            layer.refresh()
            return layer
    return viewer.add_image(data, name=name, contrast_limits=contrast_limits, scale=scale, translate=translate,
                            metadata={META_KEY: meta}, **new_kwargs)


def _limits(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def apply_results(viewer: "napari.Viewer", results: "Results", provenance: dict[str, Any] | None = None, *,
                  transmission: Any = None, keep_bandpassed: bool = False) -> list[Any]:
    """Show *results* as layers, updating existing ones by name; returns the result layers.

    Spatial placement follows the *transmission* layer (scale and translate of its
    row/column axes), else the pixel size of the results.
    """
    provenance = provenance or {}
    base = _run_meta(results, provenance)
    if transmission is not None:
        scale, translate = spatial_transform(transmission)
    else:
        px = results.pixel_size_um or 1.0
        scale, translate = np.array([px, px], float), np.zeros(2)
    active = viewer.layers.selection.active
    existing = {layer.name for layer in viewer.layers}
    made: list[Any] = []
    lo, hi = (float(v) for v in np.percentile(results.still, [0.5, 99.5]))
    # a dim still frame (at most half brightness), so the additive score maps stand out on it
    made.append(_upsert(viewer, STILL, np.asarray(results.still, np.float32), meta={**base, "result": "still"},
                        contrast_limits=_limits(lo, hi + (hi - lo)), scale=scale, translate=translate,
                        colormap="gray"))
    has_scores = bool(results.score_maps)
    finite = np.isfinite(results.energy_map).any()
    emin, emax = (float(v) for v in np.nanpercentile(results.energy_map, [50, 99.5])) if finite else (0.0, 1.0)
    made.append(_upsert(viewer, MOTION, np.asarray(results.energy_map, np.float32),
                        meta={**base, "result": "motion", "unit": "dI/I"}, contrast_limits=_limits(emin, emax),
                        scale=scale, translate=translate, colormap=MOTION_CMAP, blending="additive",
                        visible=not has_scores, opacity=0.9))
    if results.activity_map is not None:
        amax = float(np.nanmax(results.activity_map)) if np.isfinite(results.activity_map).any() else 1.0
        made.append(_upsert(viewer, ACTIVITY, np.asarray(results.activity_map, np.float32),
                            meta={**base, "result": "activity"}, contrast_limits=_limits(0.0, amax),
                            scale=scale, translate=translate, colormap=SCORE_CMAP, blending="additive",
                            visible=False))
    max_lag = results.params.max_lag_s
    for m in results.methods:
        if m not in results.lag_maps:
            continue
        lag = np.asarray(results.lag_maps[m], np.float32)
        lim = float(max_lag) if max_lag else float(np.nanmax(np.abs(lag))) if lag.size else 1.0
        chance = results.chance_scores.get(m)
        if chance is not None and m in results.score_maps:  # a delay means nothing where the score is chance
            lag = np.where(np.asarray(results.score_maps[m]) > chance, lag, np.nan).astype(np.float32)
        made.append(_upsert(viewer, delay_name(m), lag, meta={**base, "result": "delay", "method": m, "unit": "s",
                                                              "masked_below_score": chance},
                            contrast_limits=_limits(-lim, lim), scale=scale, translate=translate,
                            colormap=DIVERGING_CMAP, visible=False))
    smax = max([float(np.nanmax(v)) for v in results.score_maps.values() if np.isfinite(v).any()] + [1e-6])
    shown = [m for m in results.methods if m in results.score_maps]
    top = results.best_method(with_map=True) if shown else None
    for m in shown:
        chance = results.chance_scores.get(m)
        low = float(chance) if chance is not None and chance < smax else 0.0
        layer = _upsert(viewer, score_name(m), np.asarray(results.score_maps[m], np.float32),
                        meta={**base, "result": "score", "method": m, "chance_score": chance},
                        contrast_limits=_limits(low, smax), scale=scale, translate=translate, colormap=SCORE_CMAP,
                        blending="additive", visible=(m == top), opacity=0.9)
        layer.visible = m == top
        _colorbar(layer, m == top)
        made.append(layer)
    for method, (maps, vmax) in region_canvases(results).items():
        for k, img in enumerate(maps):
            made.append(_upsert(viewer, region_map_name(method, k + 1), img,
                                meta={**base, "result": "weights", "method": method, "feature": k + 1,
                                      "rois": {roi: {"box_row0_row1_col0_col1": list(results.region_maps[(method, roi)].box),
                                                     "vmax": v} for roi, v in vmax.items()}},
                                contrast_limits=(-1.0, 1.0), scale=scale, translate=translate,
                                colormap=DIVERGING_CMAP, opacity=0.85, visible=False))
    keep = {layer.name for layer in made}
    for layer in list(viewer.layers):
        meta = plugin_meta(layer)
        if meta.get("role") != "result" or layer.name in keep:
            continue
        if renamed_by_user(layer):   # the user's now
            continue
        if layer.name == BANDPASSED and (keep_bandpassed or meta.get("passband") == dict(results.passband)):
            continue
        viewer.layers.remove(layer)
    _raise_shapes(viewer)
    if active is not None and active in viewer.layers and active.name in existing:
        viewer.layers.selection.active = active
    return made


def _colorbar(layer: Any, visible: bool) -> None:
    """napari's colour bar overlay of *layer* (the scale of a score map), when this napari has one."""
    bar = getattr(layer, "colorbar", None)
    if bar is not None:
        try:
            bar.visible = visible
        except Exception:  # pragma: no cover - older napari
            pass


def show_region_maps(viewer: "napari.Viewer", visible: bool) -> None:
    """Show the first map of every region method (the 3D weights of all ROIs), or hide them all."""
    for layer in viewer.layers:
        meta = plugin_meta(layer)
        if meta.get("result") == "weights":
            layer.visible = bool(visible) and meta.get("feature") == 1


def add_zarr_stacks(viewer: "napari.Viewer", folder: str | Path, results: "Results") -> list[Any]:
    """Show the chunked zarr stacks of an output folder lazily (band-passed video, per-pixel predictions).

    ``micromotion analyze --save-filtered/--save-predictions`` writes them; napari reads only the
    chunks it displays (dask), so stacks larger than memory open instantly.
    """
    import dask.array as da

    folder = Path(folder)
    stacks = []
    if (folder / "filtered.zarr").exists():
        stacks.append(("band-passed (zarr)", folder / "filtered.zarr", "bandpassed"))
    stacks += [(f"prediction: {_label(p.stem)}", p, "prediction") for p in sorted((folder / "predictions").glob("*.zarr"))]
    px = results.pixel_size_um or 1.0
    layers = []
    for name, path, role in stacks:
        arr = da.from_zarr(str(path))
        meta = {"role": role, "source": str(path), "lazy": True}
        existing = [lyr for lyr in viewer.layers if lyr.name == name and plugin_meta(lyr).get("role") == role]
        sample = np.asarray(arr[: min(50, arr.shape[0])])
        lo, hi = _limits(*np.percentile(sample, [0.5, 99.5]))
        if existing:
            existing[0].data = arr
            layers.append(existing[0])
            continue
        layers.append(viewer.add_image(arr, name=name, scale=(1.0, px, px), colormap="magma", visible=False,
                                       contrast_limits=(lo, hi), metadata={META_KEY: meta}))
    return layers


def _raise_shapes(viewer: "napari.Viewer") -> None:
    """Keep ROI outlines (shapes layers) above the result images."""
    from napari.layers import Shapes

    n = len(viewer.layers)
    for layer in [la for la in viewer.layers if isinstance(la, Shapes)]:
        i = viewer.layers.index(layer)
        if i != n - 1:
            viewer.layers.move(i, n)


# ---------------------------------------------------------------- band-passed stack
def iter_bandpassed(rec: "Recording", results: "Results", chunk_mb: int = 64) -> Generator[Progress, None, np.ndarray]:
    """The band-passed transmission ``(T, Y, X)`` float32 with the design of *results*, in row chunks."""
    from ..filters import bandpass, design_bandpass
    from ..io import default_memory_budget

    pb = results.passband
    design = design_bandpass(rec.fps, pb["low_hz"], pb["high_hz"], int(pb["order"]),
                             padtype=pb.get("padtype", results.params.padtype))
    n_t, (ny, nx) = rec.n_frames, rec.frame_shape
    need = n_t * ny * nx * 4
    check(need <= default_memory_budget(),
          f"the band-passed stack needs {need / 2**30:.1f} GiB, more than the memory budget; crop the recording first.")
    out = np.empty((n_t, ny, nx), np.float32)
    rows = max(1, int(chunk_mb * 2**20 // max(n_t * nx * 8, 1)))
    for r0 in range(0, ny, rows):
        r1 = min(r0 + rows, ny)
        x = np.asarray(rec.transmission[:, r0:r1, :]).reshape(n_t, -1)
        out[:, r0:r1, :] = bandpass(x, design).reshape(n_t, r1 - r0, nx)
        yield Progress("band-pass stack", r1 / ny, f"rows {r0}-{r1} of {ny}")
    return out


def show_bandpassed(viewer: "napari.Viewer", stack: np.ndarray, results: "Results", provenance: dict[str, Any],
                    transmission: Any = None) -> Any:
    """Add or update the ``band-passed`` layer."""
    if transmission is not None:
        scale, translate = spatial_transform(transmission)
        scale = np.concatenate([[np.asarray(transmission.scale, float)[0]], scale])
        translate = np.concatenate([[np.asarray(transmission.translate, float)[0]], translate])
    else:
        px = results.pixel_size_um or 1.0
        scale, translate = np.array([1.0, px, px]), np.zeros(3)
    sample = stack[:: max(1, stack.shape[0] // 50)]
    lim = float(np.percentile(np.abs(sample), 99.5)) if sample.size else 1.0
    meta = {**_run_meta(results, provenance), "result": "bandpassed"}
    active = viewer.layers.selection.active
    layer = _upsert(viewer, BANDPASSED, stack, meta=meta, contrast_limits=_limits(-lim, lim), scale=scale,
                    translate=translate, colormap="gray", visible=True)
    _raise_shapes(viewer)
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return layer
