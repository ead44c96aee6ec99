"""Denoising benchmark (issue 13): ours against temporal filters and careamics Noise2Void, side by side.

One simulated low-light fluorescence movie (~20 photo-electrons per pixel and frame at rest,
rare single-cell events, a cell without dye) with its noise-free version as the truth:

* PSNR and SSIM against the clean movie for the raw movie, the best temporal Gaussian and
  the best running mean (window chosen with the truth, which favours them), ours, ours
  without the mean-image prior (ablation, same time budget), and careamics Noise2Void
  trained for the same time as ours (in its own virtual environment,
  ``benchmark-output/venv-careamics``, created on first use; ``MICROMOTION_CAREAMICS_VENV``
  names another);
* coverage of the clean movie by our 90 % pixel intervals and of the clean ROI means by our
  90 % trace corridors (all frames and held-out frames);
* transients of every ROI and rare event: peak-time errors against the clean traces, and
  transients lost or invented (spikes found in the clean trace vs in each method's trace),
  each lost one's size in SDs of the raw trace's noise; the cell without dye must stay flat.
  Beside this strict reading a detectable one: a lost transient counts only from 1 SD of the
  raw trace's noise, and a peak within 1 frame of a clean peak's flat top (its frames within
  0.1 raw-noise SDs of the maximum) is on time;
* each region's dF/F0 trace error (RMS against the clean trace) for every method: the raw
  mean of a large ROI already averages thousands of pixels;
* training time, inference frames/s at 256 x 256 (Monte-Carlo passes included), and each
  method's peak memory: this process's resident size while the method ran (the movies already
  loaded included), N2V's own process's.

Goals: PSNR >= raw + 8 dB, >= best filter + 2 dB, >= N2V + 1 dB; coverage 87-93 %; peaks within
1 frame, none lost or invented; training <= 10 min; inference >= 25 frames/s at 256 x 256.

Two options make the movie look like real files that break the method's assumptions:
``--noise-blur PX`` correlates the noise of neighbouring pixels (a Gaussian of PX px over the
noise in units of its local SD, rescaled to the same variance: as a compressed video's blocks;
1.0 gives an adjacent correlation of 0.78), ``--repeat-every K`` makes every K-th frame (from
frame 3) an exact copy of the frame before, in the raw and the clean movie alike (a re-timed
export).

Usage: ``python benchmarks/bench_denoise.py [--quick] [--no-baseline] [--no-ablation] [--seed S]
[--noise-blur PX] [--repeat-every K]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CAREAMICS_SPEC = "careamics==0.3.5"
GAUSS_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
MEAN_WINDOWS = (3, 5, 7, 9, 13, 19, 27)


# ---------------------------------------------------------------- careamics in its own environment
def careamics_python() -> tuple[Path | None, str]:
    """The Python of a virtual environment with careamics (created on first use; ``$MICROMOTION_CAREAMICS_VENV``)."""
    return C.anchor_python(CAREAMICS_SPEC, "careamics", "MICROMOTION_CAREAMICS_VENV", "venv-careamics")


N2V_CHILD = r'''
import json, sys, time, resource, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[4]))
from lightning.pytorch.callbacks import Callback
from careamics import CAREamist
from careamics.config import create_n2v_config
job = np.load(sys.argv[1])
budget = float(sys.argv[3])
train = job["train"].astype(np.float32)
class Budget(Callback):
    def __init__(self):
        self.t0 = None
        self.steps = 0
    def on_train_start(self, trainer, module):
        self.t0 = time.perf_counter()
    def on_train_batch_end(self, trainer, module, *a, **k):
        self.steps += 1
        if time.perf_counter() - self.t0 > budget:
            trainer.should_stop = True
cfg = create_n2v_config(experiment_name="bench", data_type="array", axes="SYX", patch_size=[64, 64],
                        batch_size=16, num_epochs=1000, num_steps=100)
cb = Budget()
cam = CAREamist(cfg, work_dir=sys.argv[2], callbacks=[cb], enable_progress_bar=False)
t0 = time.perf_counter()
cam.train(train_data=train)
train_s = time.perf_counter() - t0
video = job["video"].astype(np.float32)
t0 = time.perf_counter()
pred = cam.predict(video, axes="SYX", batch_size=8)
pred_s = time.perf_counter() - t0
pred = np.asarray(pred[0] if isinstance(pred, (list, tuple)) else pred, np.float32).reshape(video.shape)
np.save(sys.argv[2] + "/n2v.npy", pred)
print(json.dumps({"train_s": train_s, "steps": cb.steps, "predict_s": pred_s, "frames": int(video.shape[0]),
                  "maxrss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
'''


def run_n2v(py: Path, train: np.ndarray, video: np.ndarray, budget_s: float, threads: int, tmp: Path) -> tuple[dict, np.ndarray | None]:
    job = tmp / "n2v-job.npz"
    np.savez(job, train=train, video=video)
    script = tmp / "n2v_child.py"
    script.write_text(N2V_CHILD)
    proc = subprocess.run([str(py), str(script), str(job), str(tmp), str(budget_s), str(threads)], capture_output=True,
                          text=True, timeout=budget_s * 4 + 1200)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"ok": False, "error": (proc.stderr or proc.stdout).strip()[-400:]}, None
    return json.loads(lines[-1]), np.load(tmp / "n2v.npy")


# ---------------------------------------------------------------- measures
def blur_noise(raw: np.ndarray, clean: np.ndarray, sigma_px: float) -> np.ndarray:
    """*raw* with its noise correlated between neighbouring pixels, each pixel's noise variance unchanged."""
    noise = raw.astype(np.float64) - clean
    sd = np.sqrt(np.maximum(ndimage.uniform_filter(noise ** 2, (15, 9, 9)), 1e-12))
    z = ndimage.gaussian_filter(noise / sd, (0, sigma_px, sigma_px), mode="wrap")
    return (clean + z / z.std() * sd).astype(np.float32)


def psnr_db(x: np.ndarray, clean: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((np.asarray(x, np.float64) - clean) ** 2))
    return 10 * np.log10(data_range ** 2 / mse)


def ssim_mean(x: np.ndarray, clean: np.ndarray, data_range: float, frames: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(clean[t], np.asarray(x[t], np.float64), data_range=data_range)
                          for t in frames]))


def best_filter(raw: np.ndarray, clean: np.ndarray, data_range: float, kind: str) -> tuple[float, np.ndarray, float]:
    """The temporal filter's best setting (chosen with the truth): (setting, filtered movie, PSNR)."""
    best = (None, None, -np.inf)
    for s in (GAUSS_SIGMAS if kind == "gauss" else MEAN_WINDOWS):
        f = (ndimage.gaussian_filter1d(raw, s, axis=0, mode="nearest") if kind == "gauss"
             else ndimage.uniform_filter1d(raw, s, axis=0, mode="nearest"))
        p = psnr_db(f, clean, data_range)
        if p > best[2]:
            best = (s, f, p)
    return best


def roi_series(movie: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(R, T) mean of each mask."""
    w = masks.reshape(len(masks), -1).astype(np.float64)
    return (np.asarray(movie, np.float64).reshape(movie.shape[0], -1) @ w.T / w.sum(axis=1)).T


#: a clean-trace transient smaller than this many SDs of the raw trace's noise is too small to call lost
DETECTABLE_RAW_SD = 1.0
#: frames around a clean peak within this many raw-noise SDs of its height are all "the peak" (a flat top)
PEAK_TIE_RAW_SD = 0.1


def transients(traces: dict[str, np.ndarray], clean: np.ndarray, fps: float) -> dict:
    """Spikes of each method's dF/F0 trace against those of the clean trace (peaks matched within 5 frames).

    Each method's entry also gives the size of every transient it lost, in SDs of the raw
    trace's noise (``traces["raw"]`` minus the clean trace, in dF/F0): the truth is detected on a
    noise-free trace, so it can include blips far below what any recording shows.  Two
    readings are returned side by side:

    * strict: every clean-trace spike, its peak the clean trace's maximum frame;
    * detectable: only the clean-trace spikes at least ``DETECTABLE_RAW_SD`` raw-noise SDs
      high count when lost, and a peak counts as found at the frames around the clean
      maximum that are within ``PEAK_TIE_RAW_SD`` raw-noise SDs of it (a flat top has no
      single peak frame: which of its frames is highest is decided by less than the noise).
    """
    from napari_micromotion.filters import detect_spikes, dff

    clean_dff = dff(clean, fps, window_s=5.0)
    true_peaks = np.asarray(detect_spikes(clean_dff, fps, threshold_sd=8.0, refractory_s=0.4).peaks, int)
    raw_sd = float(np.std(dff(traces["raw"], fps, window_s=5.0) - clean_dff)) if "raw" in traces else float("nan")
    med = float(np.median(clean_dff))
    size_sd = np.array([(clean_dff[t] - med) / raw_sd for t in true_peaks])
    detectable = size_sd >= DETECTABLE_RAW_SD
    # each clean peak's flat top: the contiguous frames within PEAK_TIE_RAW_SD raw SDs of its height
    tops = []
    for t in true_peaks:
        lo = hi = int(t)
        floor = clean_dff[t] - PEAK_TIE_RAW_SD * raw_sd
        while lo > 0 and clean_dff[lo - 1] >= floor:
            lo -= 1
        while hi < clean_dff.size - 1 and clean_dff[hi + 1] >= floor:
            hi += 1
        tops.append((lo, hi))
    out = {}
    for name, tr in traces.items():
        found = np.asarray(detect_spikes(dff(tr, fps, window_s=5.0), fps, threshold_sd=5.0, refractory_s=0.4).peaks,
                           float)
        err = [float(np.min(np.abs(found - t))) for t in true_peaks] if found.size else [np.inf] * true_peaks.size
        err_top = ([float(np.min(np.maximum(0.0, np.maximum(lo - found, found - hi)))) for lo, hi in tops]
                   if found.size else [np.inf] * true_peaks.size)
        matched = [e <= 5 for e in err]
        invented = int(sum(not np.any(np.abs(true_peaks - f) <= 5) for f in found))
        lost_sd = [round(float(v), 2) for v, m in zip(size_sd, matched) if not m]
        out[name] = {"true": int(true_peaks.size), "lost": int(true_peaks.size - sum(matched)), "invented": invented,
                     "peak_err_frames": [e for e in err if e <= 5], "lost_size_raw_sd": lost_sd,
                     "true detectable": int(detectable.sum()),
                     "lost detectable": int(sum(d and not m for d, m in zip(detectable, matched))),
                     "peak_err_frames, flat tops": [e for e, m in zip(err_top, matched) if m]}
    return out


def trace_errors(traces: dict[str, np.ndarray], clean: np.ndarray, fps: float, held: np.ndarray) -> dict:
    """RMS error of each method's dF/F0 trace against the clean one: all frames and held-out frames."""
    from napari_micromotion.filters import dff

    ref = dff(clean, fps, window_s=5.0)
    out = {}
    for name, tr in traces.items():
        e = dff(tr, fps, window_s=5.0) - ref
        out[name] = [round(float(np.sqrt(np.mean(e ** 2))), 5), round(float(np.sqrt(np.mean(e[held] ** 2))), 5)]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 px, 300 frames, 1.5 min of training per network")
    ap.add_argument("--no-baseline", action="store_true", help="skip careamics Noise2Void")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-ablation", action="store_true", help="skip ours without the mean-image prior")
    ap.add_argument("--seed", type=int, default=11, help="the simulation's seed (11: the README's run)")
    ap.add_argument("--folds", type=int, default=None, choices=(1, 2),
                    help="the denoiser's cross-fitting folds (default: the tool's default)")
    ap.add_argument("--noise-blur", type=float, default=0.0, metavar="PX",
                    help="correlate the noise of neighbouring pixels: Gaussian of PX px (0: independent pixels)")
    ap.add_argument("--repeat-every", type=int, default=0, metavar="K",
                    help="every K-th frame (from frame 3) copies the frame before, raw and clean (0: none)")
    ap.add_argument("--save-arrays", metavar="NPZ", default="",
                    help="also save ours' denoised movie, uncertainty, error kernel and frames (.npz) for study")
    args = ap.parse_args(argv)
    import torch

    from napari_micromotion.denoise.predict import iter_predict
    from napari_micromotion.denoise.traces import roi_traces
    from napari_micromotion.progress import drive
    from napari_micromotion.rois import rasterize
    from napari_micromotion.simulate import simulate
    from napari_micromotion.tools.denoise import DenoiseParams, cross_fit_folds, iter_denoise

    torch.set_num_threads(args.threads)
    state = C.machine_state()
    size, n_frames, minutes = (128, 300, 1.5) if args.quick else (256, 400, 8.0)
    t0 = time.perf_counter()
    sim = simulate(n_frames=n_frames, size=size, seed=args.seed, photons_per_pixel=20, rare_events=3, unloaded_cells=1,
                   clean=True)
    fps = sim.params.fps
    raw = sim.fluorescence.astype(np.float32)
    clean = sim.fluorescence_clean.astype(np.float64)
    if args.noise_blur > 0:
        raw = blur_noise(raw, clean, args.noise_blur)
    if args.repeat_every > 0:
        copies = np.arange(3, n_frames, args.repeat_every)
        raw[copies], clean[copies] = raw[copies - 1], clean[copies - 1]
    dr = float(clean.max() - clean.min())
    noise = raw.astype(np.float64) - clean
    noise -= noise.mean()
    adjacent = float(np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise * noise))
    details: dict = {"movie": f"{n_frames} frames of {size} x {size} px at {fps:g} fps, 20 photo-electrons/px at rest, "
                              f"simulation seed {args.seed}, noise blur {args.noise_blur:g} px (adjacent pixels' noise "
                              f"correlated by {adjacent:.3f}), every {args.repeat_every or 'no'}-th frame a copy, "
                              f"simulated in {time.perf_counter() - t0:.0f} s",
                     "mean photo-electrons per pixel and frame (clean movie)":
                         round((float(np.mean(clean)) - float(sim.truth["offset_adu"])) * float(sim.truth["gain_e_per_adu"]), 1)}
    ssim_frames = np.arange(0, n_frames, max(1, n_frames // 60))
    rows: dict[str, dict] = {}
    movies: dict[str, np.ndarray] = {"raw": raw}
    rows["raw"] = {"psnr_db": psnr_db(raw, clean, dr)}
    for kind, label in (("gauss", "temporal Gaussian"), ("mean", "running mean")):
        with C.PeakMemory() as mem:
            s, f, p = best_filter(raw, clean, dr, kind)
        movies[label] = f
        rows[label] = {"psnr_db": p, "setting": f"{'sigma' if kind == 'gauss' else 'window'} {s} frames (best of "
                                                 f"{GAUSS_SIGMAS if kind == 'gauss' else MEAN_WINDOWS})",
                       "peak_memory_gib": round(mem.peak_total / 2**30, 2)}
    # ours and the ablation, the same time budget
    common = dict(epochs=40, max_minutes=minutes, threads=args.threads, seed=0)
    if args.folds is not None:
        common["folds"] = args.folds
    results = {}
    variants = (("ours", "mean+sd"),) if args.no_ablation else (("ours", "mean+sd"), ("ours, no mean-image prior", "none"))
    for label, prior in variants:
        t0 = time.perf_counter()
        with C.PeakMemory() as mem:
            res = drive(iter_denoise(raw, fps, DenoiseParams(prior=prior, **common), sim.rois))
        wall = time.perf_counter() - t0
        results[label] = res
        movies[label] = res.denoised
        m = res.metrics
        rows[label] = {"psnr_db": psnr_db(res.denoised, clean, dr), "train_s": res.timings_s["train"],
                       "steps": res.model.steps, "epochs_run": len(m["epoch_loss"]), "stopped": m["stopped_early"],
                       "predict_fps_incl_mc": m["inference_frames_per_s"], "whole_tool_s": round(wall, 1),
                       "guard_flagged_fraction": m["guard"]["flagged_fraction"], "peak_memory_gib": round(mem.peak_total / 2**30, 2)}
    ours = results["ours"]
    train_s = float(ours.timings_s["train"])
    held = np.asarray(ours.metrics["heldout_frames"], int)
    train_frames = np.setdiff1d(np.arange(n_frames), held)
    if train_frames.size == 0:      # cross-fitted: every frame is a training target of one network
        train_frames = np.arange(n_frames)
    # careamics Noise2Void: the same training time, trained on the same training frames
    py, how = (None, "skipped (--no-baseline)") if args.no_baseline else careamics_python()
    details["careamics"] = f"{CAREAMICS_SPEC}: {how}"
    if py is not None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-denoise-"))
        try:
            info, pred = run_n2v(py, raw[train_frames], raw, train_s, args.threads, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if pred is not None:
            movies["careamics N2V"] = pred
            rows["careamics N2V"] = {"psnr_db": psnr_db(pred, clean, dr), "train_s": info["train_s"],
                                     "steps": info["steps"], "predict_fps": info["frames"] / info["predict_s"],
                                     "peak_memory_gib": round(info["maxrss_gib"], 2)}
        else:
            details["careamics"] += f"; failed: {info.get('error')}"
    for label, mv in movies.items():
        rows[label]["ssim"] = ssim_mean(mv, clean, dr, ssim_frames)
        rows[label]["psnr_heldout_db"] = psnr_db(mv[held], clean[held], dr)
        rows[label] = {k: (round(float(v), 3) if isinstance(v, (float, np.floating)) else v) for k, v in rows[label].items()}
    details["methods"] = rows
    if args.save_arrays:
        np.savez(args.save_arrays, denoised=ours.denoised, uncertainty=ours.uncertainty, held=held,
                 kernel=ours.calibration.kernel, camera=np.array([ours.model.camera.gain, ours.model.camera.floor,
                                                                  ours.model.camera.min_var]))
        from napari_micromotion.denoise.files import save_denoiser

        save_denoiser(ours.model, ours.calibration, Path(args.save_arrays).with_suffix(".safetensors"))
    # calibration: pixel intervals and trace corridors
    z90 = 1.6448536
    cover = np.abs(clean - ours.denoised) <= z90 * ours.uncertainty
    masks = rasterize(sim.rois, (size, size))
    # the ROIs, then a disc on each rare event's cell (scored for transients and trace errors below)
    yy, xx = np.mgrid[0:size, 0:size]
    discs = {f"rare event {k + 1}": (yy - ev["centroid_yx"][0]) ** 2 + (xx - ev["centroid_yx"][1]) ** 2 <= 9
             for k, ev in enumerate(sim.truth["rare_events"])}
    regions = {**{r: masks.masks[i] for i, r in enumerate(masks.names)}, **discs}
    region_masks = np.stack(list(regions.values()))
    groups = cross_fit_folds(n_frames, ours.model.context) if ours.metrics["folds"] == 2 else None
    in_sample = None
    if groups is None:                    # one network: every frame that is not held out was a training target
        in_sample = np.ones(n_frames, bool)
        in_sample[held] = False
    tr = roi_traces(raw, ours.denoised, ours.uncertainty, SimpleNamespace(names=list(regions), masks=region_masks),
                    ours.calibration.kernel, fps, n_samples=400, heldout=held, context=ours.model.context,
                    groups=groups, camera=ours.model.camera, in_sample=in_sample)
    details["trace corridor weights (fitted on each ROI's residuals)"] = {
        k: {lab: f"base x {v['base']:.3g}, timing x {v['timing']:.3g} ({v['how']}, {v['frames']} frames)"
            for lab, v in tr.factors[k].items()}
        for k in masks.names}
    cal = ours.metrics["calibration"]
    details["pixel calibration (error variance / camera noise variance)"] = {
        "adjacent products": round(float(cal["shared_error_over_noise"]), 5),
        "residuals' mean square": round(float(cal["residual_mse_over_noise"]), 5),
        "its resolution": round(float(cal["residual_resolution_over_noise"]), 5),
        "weight of the mean square": round(float(cal.get("mean_square_weight", 0.0)), 3),
        "camera noise adjacent correlation (y, x)": [round(float(v), 4) for v in
                                                     ours.metrics.get("camera_fit", {}).get("noise_adjacent_correlation_yx", [])]}
    details["slow shared error SD per ROI (ROI-level calibration)"] = {k: round(float(np.sqrt(tr.slow_var[k])), 4)
                                                                        for k in masks.names}
    true_means = roi_series(clean, masks.masks)
    corr_cov, corr_cov_held, corr_cov_train, indep_cov, comb_cov, shape_cov = {}, {}, {}, {}, {}, {}
    for i, r in enumerate(masks.names):
        inside = (true_means[i] >= tr.mean_lo[r]) & (true_means[i] <= tr.mean_hi[r])
        corr_cov[r], corr_cov_held[r] = float(inside.mean()), float(inside[held].mean())
        corr_cov_train[r] = float(inside[train_frames].mean())
        comb_cov[r] = float(np.mean((true_means[i] >= tr.mean_combined_lo[r]) & (true_means[i] <= tr.mean_combined_hi[r])))
        # what an independent standard error would claim
        se = np.sqrt((ours.uncertainty[:, masks.masks[i]].astype(np.float64) ** 2).sum(axis=1)) / masks.masks[i].sum()
        indep_cov[r] = float(np.mean(np.abs(true_means[i] - tr.mean_denoised[r]) <= z90 * se))
        # the same corridor's shape over the frames, its size set to the true errors' mean square: what a Gaussian
        # corridor of exactly the right size covers (above 90 % where the errors are lighter-tailed than a Gaussian)
        u2 = ((tr.mean_denoised[r] - true_means[i]) / tr.mean_sd[r]) ** 2
        shape_cov[r] = float(np.mean(u2 <= z90 ** 2 * np.mean(u2)))
    details["coverage"] = {
        "pixels, all frames": round(float(cover.mean()), 4), "pixels, held-out frames": round(float(cover[held].mean()), 4),
        "trace corridors, all frames (mean over ROIs)": round(float(np.mean(list(corr_cov.values()))), 4),
        "trace corridors, held-out frames": round(float(np.mean(list(corr_cov_held.values()))), 4),
        "trace corridors, training frames": round(float(np.mean(list(corr_cov_train.values()))), 4),
        "trace corridors by ROI": {k: round(v, 3) for k, v in corr_cov.items()},
        "combined trace's corridors by ROI (raw and denoised means weighted by their variances)":
            {k: round(v, 3) for k, v in comb_cov.items()},
        "independent-pixel SE instead (for comparison)": round(float(np.mean(list(indep_cov.values()))), 4),
        "trace corridors sized to the true errors' mean square (the errors' shape alone)":
            round(float(np.mean(list(shape_cov.values()))), 4)}
    # transients: ROIs and the rare events' cells; the cell without dye stays flat
    clean_tr = roi_series(clean, region_masks)
    method_tr = {label: roi_series(mv, region_masks) for label, mv in movies.items()}
    method_tr["ours, combined with raw"] = np.stack([tr.mean_combined[r] for r in regions])
    trans = {}
    held_frames = np.zeros(n_frames, bool)
    held_frames[held] = True
    trace_err = {}
    for j, r in enumerate(regions):
        trans[r] = transients({label: v[j] for label, v in method_tr.items()}, clean_tr[j], fps)
        trace_err[f"{r} ({int(region_masks[j].sum())} px)"] = trace_errors(
            {label: v[j] for label, v in method_tr.items()}, clean_tr[j], fps, held_frames)
    details["ROI dF/F0 trace RMS error against the clean trace [all frames, held-out frames]"] = trace_err
    summary = {}
    for label in method_tr:
        errs = [e for r in trans for e in trans[r][label]["peak_err_frames"]]
        tops = [e for r in trans for e in trans[r][label]["peak_err_frames, flat tops"]]
        summary[label] = {"true transients": int(sum(trans[r][label]["true"] for r in trans)),
                          "lost": int(sum(trans[r][label]["lost"] for r in trans)),
                          "invented": int(sum(trans[r][label]["invented"] for r in trans)),
                          "lost (region: sizes in raw-noise SDs)": {r: trans[r][label]["lost_size_raw_sd"]
                                                                    for r in trans if trans[r][label]["lost"]},
                          "peaks within 1 frame": f"{sum(e <= 1 for e in errs)} of {len(errs)}",
                          "max |peak error| (frames)": int(max(errs)) if errs else None,
                          "detectable reading": {
                              "true transients >= 1 raw SD": int(sum(trans[r][label]["true detectable"] for r in trans)),
                              "lost": int(sum(trans[r][label]["lost detectable"] for r in trans)),
                              "peaks within 1 frame of the flat top": f"{sum(e <= 1 for e in tops)} of {len(tops)}",
                              "max |peak error| to the flat top (frames)": max(tops) if tops else None}}
    details["transients"] = summary
    flat = {}
    for c in sim.truth["unloaded_centroids_yx"]:
        m = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= 9
        ct = clean[:, m].mean(axis=1)
        flat[f"cell at {c}"] = {label: round(float(np.max(np.abs(mv[:, m].mean(axis=1) - ct)) / ct.mean()), 4)
                                for label, mv in movies.items()}
    details["cell without dye: max |error| of its mean / its level"] = flat
    # speed at 256 x 256 (the movie itself in the full run; 2 x 2 tiles of it in the quick run)
    big = raw[:80] if size >= 256 else np.tile(raw[:80], (1, 256 // size, 256 // size))
    from napari_micromotion.denoise.data import Prior

    prior = Prior.of(big)
    mu = np.empty(big.shape, np.float32)
    var = np.empty(big.shape, np.float32)
    info = drive(iter_predict(big, ours.model, prior, mu, var, mc_passes=ours.params.mc_passes, threads=args.threads))
    fps_256 = info["frames_per_s"]
    details["inference 256x256 (frames/s, exact MC-dropout limit)"] = round(fps_256, 1)
    details["training time (s)"] = round(train_s, 1)
    details["peak memory of this process (GiB)"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    # goals
    p = {k: v["psnr_db"] for k, v in rows.items()}
    best_filt = max(p["temporal Gaussian"], p["running mean"])
    cov = details["coverage"]
    peak_ok = summary["ours"]["max |peak error| (frames)"] is not None and summary["ours"]["max |peak error| (frames)"] <= 1
    det = summary["ours"]["detectable reading"]
    top_ok = det["max |peak error| to the flat top (frames)"] is not None and det["max |peak error| to the flat top (frames)"] <= 1
    p = {k: float(v) for k, v in p.items()}
    goals = {"PSNR >= raw + 8 dB": p["ours"] >= p["raw"] + 8, "PSNR >= best temporal filter + 2 dB": p["ours"] >= best_filt + 2,
             "PSNR >= careamics N2V + 1 dB (equal training time)": (p["ours"] >= p["careamics N2V"] + 1)
             if "careamics N2V" in p else None,
             "mean-image prior helps (ablation)": (p["ours"] > p["ours, no mean-image prior"])
             if "ours, no mean-image prior" in p else None,
             "pixel coverage 87-93 %": 0.87 <= cov["pixels, all frames"] <= 0.93,
             "trace-corridor coverage 87-93 %": 0.87 <= cov["trace corridors, all frames (mean over ROIs)"] <= 0.93,
             "peaks within 1 frame": peak_ok,
             "no transient lost or invented": summary["ours"]["lost"] == 0 and summary["ours"]["invented"] == 0,
             "detectable reading: peaks within 1 frame of the flat top, none >= 1 raw SD lost, none invented":
                 top_ok and det["lost"] == 0 and summary["ours"]["invented"] == 0,
             "training <= 10 min": train_s <= 600, "inference >= 25 frames/s at 256x256": fps_256 >= 25}
    details["goals"] = {k: (None if v is None else bool(v)) for k, v in goals.items()}
    details["PSNR gains (dB)"] = {"over raw": round(p["ours"] - p["raw"], 2), "over best filter": round(p["ours"] - best_filt, 2),
                                  "over N2V": round(p["ours"] - p["careamics N2V"], 2) if "careamics N2V" in p else None,
                                  "of the mean-image prior": round(p["ours"] - p["ours, no mean-image prior"], 2)
                                  if "ours, no mean-image prior" in p else None}
    met = all(v for v in goals.values() if v is not None)
    base = p.get("careamics N2V", best_filt)
    variant = (f"-noise-blur-{args.noise_blur:g}" if args.noise_blur > 0 else "") + \
        (f"-repeat-every-{args.repeat_every}" if args.repeat_every > 0 else "")
    return C.report("denoise" + variant, goal="denoising at 20 photons/px: PSNR >= raw + 8, filters + 2, N2V + 1 dB; 90 % "
                                    "coverage 87-93 %; peaks within 1 frame; <= 10 min training; >= 25 fps at 256^2",
                    ours=p["ours"], baseline=base, ratio=p["ours"] - base, unit="dB PSNR",
                    baseline_label="careamics N2V, equal training time" if "careamics N2V" in p else "best temporal filter",
                    met=met, details=details, quick=args.quick, state_before=state, ratio_label="ours - baseline (dB)")


if __name__ == "__main__":
    main()
