"""The 1D CNN of Table 1 (Fig. 2d) as an analysis method.

The network, its fused CPU kernels and the trainers are in
:mod:`napari_micromotion.detectors` (``cnn1d``, ``fast``, ``fast_train``,
``training``); this module is the method's life cycle:

* prepare: choose the training pixels (the highest band-pass energy in noise units
  by default, ``pixels="all"`` for the paper's choice);
* pass A gathers their normalised band-passed series (the highest-energy ones are
  kept while the chunks stream by, so memory stays bounded);
* fit: train on the training frames against the z-normalised whole-frame ground truth;
* pass B predicts every pixel with the fused kernel (or PyTorch on a GPU).

A saved model (``--model-1d``) skips preparing, gathering and fitting; the
analysis then predicts in pass A.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generator

import numpy as np

from ..detectors import fast
from ..detectors.cnn1d import (
    CNN1DParams,
    Normalisation,
    TrainedCNN1D,
    build_cnn1d,
    initial_feature_rms,
    normalise_columns,
    predict_torch,
)
from ..detectors.models import load_cnn1d, save_cnn1d
from ..detectors.training import iter_train_cnn1d
from ..errors import check
from ..progress import Progress
from . import METHODS
from .base import AnalysisContext, Method, PixelChunk, Requirements, no_progress

__all__ = ["CNN1D", "CNN1DState", "cnn_columns"]


def cnn_columns(chunk: PixelChunk, mode: str) -> np.ndarray:
    """The chunk's band-passed columns normalised per pixel for the networks (computed once per chunk)."""
    return chunk.cached(("cnn input", mode), lambda: normalise_columns(chunk.filtered, chunk.mean, mode))


class TopK:
    """Keep the k columns with the largest key seen so far (variance-ranked pixel sampling)."""

    def __init__(self, k: int, n_t: int) -> None:
        self.k = k
        self.keys = np.full(0, -np.inf)
        self.idx = np.zeros(0, np.int64)
        self.data = np.zeros((0, n_t), np.float32)

    def offer_rows(self, keys: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> None:
        """Merge candidates (``rows``: one series per candidate) and keep the best k."""
        if self.k <= 0 or keys.size == 0:
            return
        all_keys = np.concatenate([self.keys, keys])
        all_idx = np.concatenate([self.idx, idx])
        all_data = np.concatenate([self.data, rows])
        keep = np.argsort(all_keys, kind="stable")[::-1][: self.k]
        self.keys, self.idx, self.data = all_keys[keep], all_idx[keep], all_data[keep]


@dataclass
class CNN1DState:
    """Training pixels while gathering; the trained model once fitted."""

    mode: str
    model: TrainedCNN1D | None = None
    random_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    random_cols: np.ndarray | None = None
    top: TopK | None = None
    train_mask: np.ndarray | None = None

    @property
    def net(self) -> Any:
        return self.model.net if self.model is not None else None


@dataclass
class _Gather:
    """Pass A: the chosen random pixels' columns and this chunk's highest-energy candidates."""

    random_idx: np.ndarray      # sorted global flat indices
    n_top: int
    train_mask: np.ndarray
    mode: str

    def __call__(self, chunk: PixelChunk) -> dict[str, np.ndarray]:
        x = cnn_columns(chunk, self.mode)
        out: dict[str, np.ndarray] = {}
        pos = np.searchsorted(chunk.pixels, self.random_idx)
        pos = np.minimum(pos, chunk.pixels.size - 1)
        here = chunk.pixels[pos] == self.random_idx
        local = pos[here]
        if local.size:
            out["random_idx"] = self.random_idx[here]
            out["random_cols"] = np.ascontiguousarray(x[:, local].T)
        if self.n_top:
            key = np.mean(x[self.train_mask] ** 2, axis=0)
            if local.size:
                key[local] = -np.inf
            take = np.argsort(key)[::-1][: self.n_top]
            out["top_keys"], out["top_idx"] = key[take], chunk.pixels[take]
            out["top_cols"] = np.ascontiguousarray(x[:, take].T)
        return out


@dataclass
class _Predict:
    weights: Any                # detectors.fast.CNNWeights
    input_scale: float
    mode: str
    device: str = "cpu"
    net: Any = None             # torch module, only for non-CPU devices
    chunk_pixels: int = 4096

    def __call__(self, chunk: PixelChunk) -> np.ndarray:
        xin = cnn_columns(chunk, self.mode) / np.float32(self.input_scale)
        if self.device == "cpu" or self.net is None:
            return fast.cnn1d_forward(self.weights, xin, edges="reflect")
        return predict_torch(self.net, xin, device=self.device, chunk_pixels=self.chunk_pixels, features=False,
                             edges="reflect")


@METHODS.register
class CNN1D(Method):
    name = "cnn1d"
    label = "1D CNN"
    description = "the 22-layer 1D CNN of Table 1 on each pixel's band-passed series, trained on the calcium trace"
    Params = CNN1DParams
    requires = Requirements(fluorescence=True, training=True)
    predict_cost = 3.0
    fit_cost = 4.0
    colour = "#fdbf6f"     # apricot: apart from the ROI kinds' colours (rois.KIND_COLOURS)
    model_flag = "--model-1d"
    model_help = "use this trained 1D CNN (.safetensors) instead of training one"
    uses_device = True

    def check(self, ctx: AnalysisContext, params: CNN1DParams, fitted: CNN1DState | None = None) -> None:
        params.validate()
        if fitted is None:
            if params.pixels == "all":
                from ..io import default_memory_budget

                n_pix = ctx.frame_shape[0] * ctx.frame_shape[1]
                need = n_pix * ctx.n_frames * 4
                check(need <= default_memory_budget(), f"training the 1D CNN on all {n_pix} pixels needs "
                      f"{need / 2**30:.1f} GiB; sample fewer training pixels instead.")
            return
        model = fitted.model
        fps = ctx.fps
        if abs(model.fps - fps) > 1e-3 * fps:
            ctx.warn(f"the 1D model was trained at {model.fps:g} fps; this recording is at {fps:g} fps.")
        band = (ctx.design.low_hz, ctx.design.high_hz)
        if tuple(model.passband_hz) != band:
            ctx.warn(f"the 1D model was trained with a {model.passband_hz[0]:g}-{model.passband_hz[1]:g} Hz "
                     f"passband; this analysis uses {band[0]:g}-{band[1]:g} Hz.")
        if model.trained_on and model.trained_on == ctx.recording.fingerprint():
            a, b = ctx.validation
            seen = np.zeros(ctx.n_frames, bool)
            for s, e in model.training_frames:
                seen[max(0, int(s)):max(0, int(e))] = True
            overlap = int(seen[a:b].sum())
            if overlap:
                ctx.warn(f"the 1D model was trained on this recording, on {overlap} of the {b - a} frames it is "
                         f"scored on ({a}-{b}): its scores there are in-sample and overstate how well it predicts; "
                         "score it on frames it did not learn from, or on another recording.")

    def coerce_fitted(self, obj: Any) -> CNN1DState:
        if isinstance(obj, TrainedCNN1D):
            return CNN1DState(mode=obj.normalisation.mode, model=obj)
        check(isinstance(obj, CNN1DState) and obj.model is not None, "the 1D CNN given is not a trained model.")
        return obj

    def kernels_ready(self, state: CNN1DState | None) -> bool:
        from ..detectors import fast_train

        return fast.kernels_ready() and (state is not None and state.model is not None or fast_train.kernels_ready())

    def prepare(self, ctx: AnalysisContext, params: CNN1DParams) -> Generator[Progress, None, CNN1DState]:
        n_pix = ctx.frame_shape[0] * ctx.frame_shape[1]
        n_t = ctx.n_frames
        rng = np.random.default_rng(params.seed)
        random_idx = np.zeros(0, np.int64)
        n_top = 0
        if params.pixels == "all":
            random_idx = np.arange(n_pix)
        else:
            k = min(params.n_pixels, n_pix)
            n_top = {"random": 0, "variance": k, "mixed": k // 2}[params.pixels]
            n_random = k - n_top
            if n_random:
                random_idx = np.sort(rng.choice(n_pix, size=n_random, replace=False))
        return no_progress(CNN1DState(mode=params.input_norm, random_idx=random_idx,
                                      random_cols=np.zeros((random_idx.size, n_t), np.float32),
                                      top=TopK(n_top, n_t), train_mask=ctx.train_mask))

    def gatherer(self, ctx: AnalysisContext, params: CNN1DParams, state: CNN1DState) -> _Gather | None:
        if state.model is not None:
            return None
        return _Gather(random_idx=state.random_idx, n_top=state.top.k, train_mask=state.train_mask, mode=state.mode)

    def fold(self, state: CNN1DState, part: dict[str, np.ndarray], chunk_rows: tuple[int, int]) -> None:
        if "random_idx" in part:
            pos = np.searchsorted(state.random_idx, part["random_idx"])
            state.random_cols[pos] = part["random_cols"]
        if "top_keys" in part:
            state.top.offer_rows(part["top_keys"], part["top_idx"], part["top_cols"])

    def fit(self, ctx: AnalysisContext, params: CNN1DParams, state: CNN1DState
            ) -> Generator[Progress, None, CNN1DState]:
        if state.model is not None:
            return state
        import time

        t0 = time.perf_counter()
        top = state.top
        cols = np.concatenate([state.random_cols, top.data]) if top.data.size else state.random_cols
        check(cols.shape[0] > 0, "no pixels to train the 1D CNN on.")
        train_mask = state.train_mask
        train_vals = cols[:, train_mask]
        input_scale = float(np.sqrt(np.mean(train_vals.astype(np.float64) ** 2)))
        check(input_scale > 0, "the band-passed transmission is zero in every training pixel; nothing to learn.")
        truth = ctx.truth
        tm, ts = float(truth[train_mask].mean()), float(truth[train_mask].std())
        check(ts > 0, "the fluorescence ground truth is constant over the training frames; nothing to learn.")
        target = ((truth - tm) / ts).astype(np.float32)
        net0 = build_cnn1d(params.seed)
        # the Glorot-initialised ReLU stack attenuates by ~1e-4..1e-5; an input gain that gives the
        # untrained network unit-RMS features (exact: zero biases make it positively homogeneous)
        # shortens the initial plateau of the loss
        input_scale *= initial_feature_rms(net0, cols[: min(256, cols.shape[0])] / input_scale)
        inputs = (cols / input_scale).astype(np.float32)
        del cols, train_vals
        state.random_cols, state.top = None, None   # the gathered columns are not needed any more
        net, losses, epoch_losses = yield from iter_train_cnn1d(inputs, target, ctx.training, params, init=net0)
        state.model = TrainedCNN1D(
            net=net, normalisation=Normalisation(input_scale, tm, ts, mode=state.mode), fps=ctx.fps,
            passband_hz=(ctx.design.low_hz, ctx.design.high_hz), filter_order=ctx.design.order,
            training_frames=list(ctx.training), loss_curve=losses, epoch_loss=epoch_losses,
            params={**asdict(params), "ground_truth": ctx.params.ground_truth}, device=ctx.device,
            n_training_pixels=int(inputs.shape[0]), seconds=time.perf_counter() - t0,
            trained_on=ctx.recording.fingerprint())
        return state

    def predictor(self, state: CNN1DState | None, device: str = "cpu") -> _Predict | None:
        if state is None or state.model is None:
            return None
        m = state.model
        return _Predict(weights=fast.weights_of(m.net), input_scale=m.normalisation.input_scale,
                        mode=m.normalisation.mode, device=device, net=m.net if device != "cpu" else None,
                        chunk_pixels=int(m.params.get("chunk_pixels", 4096)))

    # ------------------------------------------------------------ files
    def save(self, state: CNN1DState, folder: Path, results: Any) -> None:
        if state is not None and state.model is not None:
            (folder / "models").mkdir(exist_ok=True)
            save_cnn1d(state.model, folder / "models" / "cnn1d.safetensors")

    def restore(self, folder: Path | None, results: Any) -> CNN1DState | None:
        path = None if folder is None else Path(folder) / "models" / "cnn1d.safetensors"
        if path is None or not path.is_file():
            return None
        return self.load_model(str(path))

    def load_model(self, path: str) -> CNN1DState:
        model = load_cnn1d(path)
        return CNN1DState(mode=model.normalisation.mode, model=model)

    def save_model(self, state: CNN1DState, path: Path) -> Path:
        return save_cnn1d(state.model, path)

    def describe_model(self, state: CNN1DState) -> str:
        losses = state.model.epoch_loss
        return f"epoch losses: {', '.join(f'{v:.4f}' for v in losses)}"
