"""Goal 5: displacement accuracy, speed and beats of the motion tool, against mps_motion.

Four measurements, all in one run:

1. *Textured warps*: a Gaussian-filtered noise texture (128 x 128 px, contrast 40 %,
   camera noise 0.5 % of the mean) warped by a known field: a uniform translation (stage
   drift) and a smooth radial contraction, each with a peak displacement of 0.05 to 5 px.
   Median endpoint error (EPE) over the pixels moving at least half the peak, absolute
   and relative to the true displacement, for our three engines (``lk``, the default;
   ``farneback``; ``dis``) and for mps_motion's default (OpenCV Farneback, winsize 15) on
   the same image pairs.
2. *Simulator*: the project's simulator (256 x 256 px, cells contracting by up to 4 px,
   stage drift, shot noise) with its exact displacement fields; EPE binned by the true
   displacement over the frames' moving pixels, ours (drift removal included) and
   mps_motion's against the same reference image; ours also without its strain correction
   (the ablation).  Also each engine on the simulator's noise-free frames against the
   noise-free reference: the error that remains without any noise, from the estimator's
   window meeting the field's steep fall at a contracting cell's rim.
3. *Speed* at 256 x 256: the whole motion tool (fields, traces, beats, maps) in frames
   per second, and mps_motion's ``OpticalFlow(...).get_displacements()`` on the same
   frames (fields only), best of two runs each, alternated.
4. *Beats*: the motion tool on a simulated recording with its four ROIs; every
   contraction of every ROI (the weak cell's 0.06 px ones too; none in the silent cell)
   found once, peak times against those of the true displacement traces (within one frame).

mps_motion is installed for this benchmark only, in its own virtual environment
(``benchmark-output/venv-mps``; it needs ``opencv-contrib-python``, which must not meet
our ``opencv-python-headless``), and runs in a subprocess.  Without network the baseline
columns say so.

Usage: ``python benchmarks/bench_flow.py [--quick]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MPS_SPEC = "mps-motion==0.5.1"
AMPLITUDES = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
N = 128
BINS = ((0.05, 0.1), (0.1, 0.2), (0.2, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 5.0))


# ---------------------------------------------------------------- mps_motion in its own environment
def mps_python() -> tuple[Path | None, str]:
    """The Python of a virtual environment with mps_motion (created on first use; ``$MICROMOTION_MPS_VENV``)."""
    return C.anchor_python(MPS_SPEC, "mps_motion", "MICROMOTION_MPS_VENV", "venv-mps", install_timeout=1200)


MPS_CHILD = r'''
import json, sys, time, logging
import numpy as np
import mps_motion
mps_motion.set_log_level(logging.WARNING)
job = dict(np.load(sys.argv[1], allow_pickle=False))
out = {}
def run(frames, ref):
    t, ny, nx = frames.shape
    data = mps_motion.MPSData(frames=np.moveaxis(frames, 0, -1), time_stamps=np.arange(t) * 1.0,
                              info={"um_per_pixel": 1.0, "num_frames": t, "dt": 1.0, "size_x": nx, "size_y": ny})
    of = mps_motion.OpticalFlow(data, flow_algorithm="farneback")
    t0 = time.perf_counter()
    u = of.get_displacements(unit="pixels", reference_image=ref)
    arr = np.asarray(u.array if hasattr(u, "array") else u)        # (Y, X, T, 2): (dx, dy)
    dt = time.perf_counter() - t0
    return np.stack([arr[..., 1], arr[..., 0]], axis=0).transpose(3, 0, 1, 2).astype(np.float32), dt
res = {}
for key in [k for k in job if k.startswith("pairs_")]:
    pairs = job[key]                     # (n, 2, Y, X): reference, moved
    fields = []
    for ref, moved in pairs:
        f, _ = run(np.stack([moved, moved]).astype(np.float32), ref.astype(np.float32))
        fields.append(f[0])
    res[key] = np.stack(fields)
if "video" in job:
    times = []
    for _ in range(int(job["repeats"])):
        f, dt = run(job["video"].astype(np.float32), job["reference"].astype(np.float32))
        times.append(dt)
    res["video_fields"] = f
    out["video_s"] = min(times)
np.savez(sys.argv[2], **res)
print(json.dumps(out))
'''


def run_mps(py: Path, job: dict[str, np.ndarray], tmp: Path) -> tuple[dict, dict]:
    src, dst, script = tmp / "mps-job.npz", tmp / "mps-out.npz", tmp / "mps_child.py"
    np.savez(src, **job)
    script.write_text(MPS_CHILD)
    proc = subprocess.run([str(py), str(script), str(src), str(dst)], capture_output=True, text=True, timeout=7200,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError((proc.stderr or proc.stdout).strip().splitlines()[-1][:300])
    return json.loads(lines[-1]), dict(np.load(dst))


# ---------------------------------------------------------------- 1. textured warps
def texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.standard_normal((N, N)), 1.5)
    return 1000 + 400 * img / img.std()


def warp(img: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The content at x in *img* moves to x + d(x) (d given on the moved grid, inverted by fixed point)."""
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    return ndimage.map_coordinates(img, [yy - d[0], xx - d[1]], order=3, mode="mirror")


def contraction(amp: float) -> np.ndarray:
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    dy, dx = yy - N / 2, xx - N / 2
    g = np.exp(-(dy**2 + dx**2) / (2 * 25**2))
    d = -np.stack([dy, dx]) / 25 * g
    return amp * d / np.hypot(*d).max()


def warp_cases(seed: int = 0, noise: float = 5.0) -> list[dict]:
    """Image pairs with their true fields (given on the reference grid)."""
    rng = np.random.default_rng(seed + 1)
    img = texture(seed)
    cases = []
    for kind in ("translation", "contraction"):
        for amp in AMPLITUDES:
            d = (np.array([0.6, -0.8])[:, None, None] * amp * np.ones((2, N, N)) if kind == "translation"
                 else contraction(amp))
            # frame(x + d(x)) = reference(x): sample the reference at x - d_moved(x) with d_moved(x + d) = d(x)
            moved = warp(img, _forward_to_moved(d))
            ref = img + rng.normal(0, noise, img.shape)
            moved = moved + rng.normal(0, noise, img.shape)
            cases.append({"kind": kind, "amp": amp, "ref": ref.astype(np.float32), "moved": moved.astype(np.float32),
                          "truth": d.astype(np.float32)})
    return cases


def _forward_to_moved(d: np.ndarray) -> np.ndarray:
    """The field on the moved grid, e(y) with e(x + d(x)) = d(x) (fixed point)."""
    yy, xx = np.mgrid[0:N, 0:N].astype(np.float64)
    e = d.copy()
    for _ in range(8):
        src = [yy - e[0], xx - e[1]]
        e = np.stack([ndimage.map_coordinates(d[c], src, order=1, mode="nearest") for c in (0, 1)])
    return e


def epe_stats(est: np.ndarray, truth: np.ndarray, border: int = 8) -> tuple[float, float]:
    """Median absolute and relative EPE over the pixels moving at least half the peak (away from the border)."""
    inner = (slice(None), slice(border, -border), slice(border, -border))
    e, t = est[inner], truth[inner]
    mag = np.hypot(*t)
    sel = mag >= 0.5 * mag.max()
    err = np.hypot(*(e - t))[sel]
    return float(np.median(err)), float(np.median(err / mag[sel]))


# ---------------------------------------------------------------- 2. simulator truth
def simulator_truth(sim, ref_img_frames: slice, frames: np.ndarray) -> np.ndarray:
    """True displacement (frame(x + d) = reference(x)) of *frames* against the mean of *ref_img_frames*, (n, 2, Y, X)."""
    p = sim.p
    yy, xx = np.mgrid[0:p.size, 0:p.size].astype(float)

    def field(i):
        return np.tensordot(sim._courses[:, i], sim._fields, axes=(0, 0)) + sim.stage[i][:, None, None]

    refs = range(ref_img_frames.start, ref_img_frames.stop)
    d0 = np.mean([field(i) for i in refs], axis=0)
    out = np.zeros((len(frames), 2, p.size, p.size), np.float32)
    for k, i in enumerate(frames):
        D = field(i)
        d = D - d0
        for _ in range(5):
            d = np.stack([ndimage.map_coordinates(D[c], [yy + d[0], xx + d[1]], order=1, mode="nearest")
                          for c in (0, 1)]) - d0
        out[k] = d
    return out


def binned(est: np.ndarray, truth: np.ndarray, border: int = 8) -> dict[str, dict[str, float]]:
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    e, t = est[inner], truth[inner]
    mag = np.hypot(t[:, 0], t[:, 1])
    err = np.hypot(e[:, 0] - t[:, 0], e[:, 1] - t[:, 1])
    out = {}
    for lo, hi in BINS:
        sel = (mag >= lo) & (mag < hi)
        if sel.sum() < 50:
            continue
        out[f"{lo:g}-{hi:g} px"] = {"n": int(sel.sum()), "median_epe_px": float(np.median(err[sel])),
                                    "median_rel": float(np.median(err[sel] / mag[sel]))}
    still = mag < 0.02
    out["still (<0.02 px)"] = {"n": int(still.sum()), "median_epe_px": float(np.median(err[still])),
                               "median_rel": float("nan")}
    return out


def goal_ok(stats: dict[str, dict[str, float]]) -> bool:
    ok = True
    for key, s in stats.items():
        if key.startswith("still"):
            continue
        lo = float(key.split("-")[0])
        ok &= s["median_epe_px"] <= 0.03 if lo < 0.2 else s["median_rel"] <= 0.10
    return bool(ok)


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller videos (a smoke test)")
    ap.add_argument("--no-baseline", action="store_true", help="skip mps_motion")
    args = ap.parse_args(argv)
    from napari_micromotion.kernels.contraction import find_contraction_beats
    from napari_micromotion.kernels.flow import ENGINES, FlowEstimator, FlowParams, FlowStream, most_relaxed_frame
    from napari_micromotion.recording import Recording
    from napari_micromotion.rois import rasterize
    from napari_micromotion.simulate import SimulationParams, Simulator, simulate
    from napari_micromotion.tools import TOOLS
    from napari_micromotion.tools.motion import MotionParams

    state = C.machine_state()
    details: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    py, how = (None, "skipped (--no-baseline)") if args.no_baseline else mps_python()
    details["mps_motion"] = f"{MPS_SPEC}: {how}"

    # 1. textured warps -------------------------------------------------------------
    cases = warp_cases()
    curves: dict[str, dict[str, list]] = {}
    for engine in ENGINES:
        for kind in ("translation", "contraction"):
            row = []
            for c in (c for c in cases if c["kind"] == kind):
                est = FlowEstimator(c["ref"], FlowParams(engine=engine, remove_drift=False))(c["moved"])
                row.append(epe_stats(est, c["truth"]))
            curves.setdefault(engine, {})[kind] = row
    if py is not None:
        job = {f"pairs_{k}": np.stack([np.stack([c["ref"], c["moved"]]) for c in cases if c["kind"] == k])
               for k in ("translation", "contraction")}
        try:
            _, mps_out = run_mps(py, job, tmp)
            for k in ("translation", "contraction"):
                truth = [c["truth"] for c in cases if c["kind"] == k]
                curves.setdefault("mps_motion", {})[k] = [epe_stats(f, t) for f, t in zip(mps_out[f"pairs_{k}"], truth)]
        except RuntimeError as exc:
            details["mps_motion"] += f"; warps failed: {exc}"
    table = {}
    for engine, kinds in curves.items():
        for kind, row in kinds.items():
            table[f"{engine} {kind}"] = {f"{a:g} px": (f"{ab:.3f} px" if a < 0.2 else f"{100 * rel:.1f} %")
                                         for a, (ab, rel) in zip(AMPLITUDES, row)}
    details["warps: median EPE (absolute below 0.2 px, relative from 0.2 px)"] = table
    warp_ok = all((ab <= 0.03) if a < 0.2 else (rel <= 0.10) for kind in ("translation", "contraction")
                  for a, (ab, rel) in zip(AMPLITUDES, curves["lk"][kind]))

    # 2. simulator ------------------------------------------------------------------
    n_sim = 150 if args.quick else 400
    sp = SimulationParams(n_frames=n_sim, size=256, seed=4, strong_px=4.0)
    sim_obj = simulate(sp, clean=True)                    # the same noisy frames, plus the noise-free ones
    truth_sim = Simulator(sp)
    video = sim_obj.transmission
    ref = most_relaxed_frame(video)
    fp = FlowParams()
    k = fp.reference_frames
    a = int(np.clip(ref - (k - 1) // 2, 0, n_sim - k))
    stream = FlowStream(video, ref, fp, fps=sp.fps)
    ours = np.zeros((n_sim, 2, 256, 256), np.float32)
    raw = np.zeros((n_sim, 2, 256, 256), np.float32)
    for first, block, _, smooth in stream.blocks(smoothed=True):
        ours[first:first + len(block)] = smooth             # what the maps, arrows and flow.zarr hold
        raw[first:first + len(block)] = block               # what region traces average
    ours_total = ours + stream.drift[:, :, None, None]      # drift removal is part of the estimate
    sample = np.arange(0, n_sim, 2 if args.quick else 4)
    truth = simulator_truth(truth_sim, slice(a, a + k), sample)
    details["simulator: ours (lk) EPE by true displacement"] = sim_ours = binned(ours_total[sample], truth)
    details["simulator: ours without the adaptive smoothing (the fields region traces average)"] = binned(
        raw[sample] + stream.drift[sample][:, :, None, None], truth)
    del raw
    # the same estimate without the strain correction (its ablation, in the same run)
    plain = dataclasses.replace(fp, strain_correction=False)
    plain_stream = FlowStream(video, ref, plain, fps=sp.fps)
    keep = {int(i): j for j, i in enumerate(sample)}
    plain_fields = np.zeros((len(sample), 2, 256, 256), np.float32)
    for first, block, _, smooth in plain_stream.blocks(smoothed=True):
        for i in range(len(block)):
            if first + i in keep:
                plain_fields[keep[first + i]] = smooth[i] + plain_stream.drift[first + i][:, None, None]
    details["simulator: ours without the strain correction (--no-flow-strain-correction)"] = binned(plain_fields,
                                                                                                   truth)
    del plain_fields
    sim_ok = goal_ok(sim_ours)
    # the same frames without noise, against the noise-free reference: what each estimator's own bias leaves
    # (the simulated field jumps to zero at the rim of a contracting cell, which every windowed estimator blurs)
    clean_ref = sim_obj.transmission_clean[a:a + k].mean(axis=0)
    bound = {}
    for label, kw in (("lk (ours, default window 4 px)", {}),
                      ("lk (ours) without the strain correction", {"strain_correction": False}),
                      ("lk, window 2 px", {"window_px": 2.0}),
                      ("lk, window 2 px, without the strain correction", {"window_px": 2.0, "strain_correction": False}),
                      ("lk, window 2 px, small window 1 px", {"window_px": 2.0, "fine_window_px": 1.0}),
                      ("farneback", {"engine": "farneback"}), ("dis", {"engine": "dis"})):
        est = FlowEstimator(clean_ref, FlowParams(smooth_px=0.0, remove_drift=False, **kw))
        fields = np.stack([est(sim_obj.transmission_clean[i]) for i in sample])
        bound[label] = {b: (f"{v['median_epe_px']:.4f} px" if b.startswith(("0.05", "0.1-", "still"))
                            else f"{100 * v['median_rel']:.1f} %") for b, v in binned(fields, truth).items()}
    details["simulator without noise (noise-free frames and reference): EPE by true displacement"] = bound
    del sim_obj

    # 3. speed at 256 x 256 (and mps_motion's accuracy on the same video) ----------------
    rec = Recording(video, sp.fps)
    tool = TOOLS["motion"]
    t_ours = []
    mps_fps = float("nan")
    sim_mps = None
    for rnd in range(2):
        t0 = time.perf_counter()
        tool.run(rec, MotionParams())
        t_ours.append(time.perf_counter() - t0)
        if py is not None and rnd == 0:
            try:
                out, mps_out = run_mps(py, {"video": video, "reference": stream.reference, "repeats": np.array(2)},
                                       tmp)
                mps_fps = n_sim / out["video_s"]
                details["simulator: mps_motion EPE by true displacement"] = sim_mps = binned(
                    mps_out["video_fields"][sample], truth)
            except RuntimeError as exc:
                details["mps_motion"] += f"; video failed: {exc}"
    ours_fps = n_sim / min(t_ours)
    details["speed 256x256 (frames/s)"] = {"ours, whole motion tool": round(ours_fps, 1),
                                           "mps_motion, fields only": round(mps_fps, 1)}

    # 4. beats on the simulator with its ROIs -------------------------------------------
    n_beats = 600 if args.quick else 3000
    bp = SimulationParams(n_frames=n_beats, size=128, seed=2)
    bsim = simulate(bp)
    bres = tool.run(bsim.recording(), MotionParams(), rois=bsim.rois)
    truth_b = Simulator(bp)
    masks = rasterize(bsim.rois, (bp.size, bp.size))
    frames_all = np.arange(n_beats)
    kb = bres.params.flow.reference_frames
    ab = int(np.clip(bres.reference_frame - (kb - 1) // 2, 0, n_beats - kb))
    beat_stats: dict[str, dict] = {}
    all_ok = True
    tr = simulator_truth(truth_b, slice(ab, ab + kb), frames_all)
    stage = truth_b.stage - truth_b.stage[ab:ab + kb].mean(axis=0)
    tr -= stage[:, :, None, None].astype(np.float32)       # the stage drift comes off, as in ours
    mag = np.hypot(tr[:, 0], tr[:, 1])
    for i, name in enumerate(masks.names):
        true_trace = mag[:, masks.masks[i]].mean(axis=1)
        true_peaks = np.array([b.peak_time_s for b in find_contraction_beats(true_trace, bp.fps)])
        found = np.array([b.peak_time_s for b in bres.beats if b.roi == name])
        if true_peaks.size == 0:
            beat_stats[name] = {"true": 0, "found": int(found.size)}
            all_ok &= found.size == 0
            continue
        nearest = (np.abs(found[None, :] - true_peaks[:, None]).min(axis=1) * bp.fps if found.size
                   else np.full(true_peaks.size, np.inf))
        within = int(np.sum(nearest <= 1.0))
        beat_stats[name] = {"true": int(true_peaks.size), "found": int(found.size), "peaks within 1 frame": within,
                            "median |peak error| (frames)": round(float(np.median(nearest)), 3)}
        all_ok &= found.size == true_peaks.size and within == true_peaks.size
    details["beats (simulator, 128 px)"] = beat_stats

    # verdict ----------------------------------------------------------------------
    accurate_vs_mps = None
    if sim_mps is not None:
        common = [b for b in sim_ours if b in sim_mps and not b.startswith("still")]
        accurate_vs_mps = all(sim_ours[b]["median_epe_px"] <= sim_mps[b]["median_epe_px"] * 1.05 for b in common)
        details["ours at least as accurate as mps_motion on the simulator (every bin, 5 % slack)"] = accurate_vs_mps
    ratio = ours_fps / mps_fps if np.isfinite(mps_fps) else float("nan")
    details["goals"] = {"warps EPE": warp_ok, "simulator EPE": sim_ok, ">= 100 fps": ours_fps >= 100,
                        ">= 2x mps_motion at equal or better accuracy": (ratio >= 2 and bool(accurate_vs_mps))
                        if np.isfinite(ratio) else None,
                        "beats: every contraction once, peaks within 1 frame (every ROI)": bool(all_ok)}
    met = all(v for v in details["goals"].values() if v is not None)
    return C.report("flow", goal="motion: EPE <= 10 % (0.2-5 px) / <= 0.03 px (0.05-0.2 px); >= 100 fps at 256^2 "
                                 "and >= 2x mps_motion; every contraction once, peaks within 1 frame",
                    ours=ours_fps, baseline=mps_fps, ratio=ratio, unit="frames/s", baseline_label="mps_motion 0.5.1",
                    met=met, details=details, quick=args.quick, state_before=state, ratio_label="ours / mps_motion")


if __name__ == "__main__":
    main()
