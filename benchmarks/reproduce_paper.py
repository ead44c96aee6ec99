"""Reproduce Rinner et al. 2020 (Figs. 3-5 and a score table) on a simulated recording of the paper's size.

    python benchmarks/reproduce_paper.py --out reproduce-output            # paper scale
    python benchmarks/reproduce_paper.py --out reproduce-output --quick    # CI smoke size

Protocol (paper, Methods): 10570 frames at 50 fps, 256 x 256 px, validation frames 1-3072
(0:3072 here), training 3073-10570; strong, weak and silent ROIs placed as in Fig. 3f
(strong in the centre, weak lower right, silent at the top) plus a cell that beats without
calcium.  Every method runs as its own ``micromotion analyze`` process, so the table reports
its wall time and peak memory (each run includes the shared band-pass stage; the 3D network
reuses the 1D CNN of the same setting through ``--model-1d``).

Two settings:

* ``paper``: the paper's hyper-parameters.  1D CNN on *all* pixels, 3 epochs, one window per
  pixel covering the whole training segment, Adam 1e-3; 3D network with Adam lr 8e-7, 60 epochs,
  256-frame windows, 20 % dropout, transfer-initialised.  The paper trains the 3D network's 1D
  layers too; on a CPU that costs hours per ROI, so the 3D layers stay frozen here, and
  ``paper_mode_check`` measures on a small ROI how little the paper's lr 8e-7 moves them (see
  the note in ``table.md``).  Scores are reported for the +-1 s lag window and, as in the paper,
  for the full cross-correlation.
* ``fast``: the project's defaults (2048 sampled training pixels, 1024-frame windows, 3D dense
  layer by ridge regression).

Outputs in ``--out``: ``fig3_score_maps.png``, ``fig4_traces.png``, ``fig5_weights.png``,
``table.csv``, ``table.md``, ``real_data.png`` (the transmission-only recordings in
``../shared/data/real``: band-pass maps and beats), ``reproduce.json`` (timings, machine), and
the raw runs under ``runs/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real"
METHODS = ("bandpass", "matched", "cnn1d", "cnn3d")
LABELS = {"bandpass": "band-pass", "matched": "matched filter", "cnn1d": "1D CNN", "cnn3d": "3D network"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_cli(args: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``micromotion <args>`` as a child; wall time and the child's peak RSS (wait4)."""
    cmd = [sys.executable, "-m", "napari_micromotion.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # read output while waiting, then collect the child's resource usage
    import threading

    bufs = {"out": [], "err": []}
    threads = [threading.Thread(target=lambda s, k: bufs[k].extend(s), args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=lambda s, k: bufs[k].extend(s), args=(proc.stderr, "err"), daemon=True)]
    for th in threads:
        th.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for th in threads:
        th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = "".join(bufs["err"])
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"micromotion {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024.0, "stderr": err}


def simulate(out: Path, frames: int, size: int, seed: int) -> Path:
    data = out / "data"
    if (data / "truth.json").is_file():
        truth = json.loads((data / "truth.json").read_text())
        p = truth.get("params", {})
        if p.get("n_frames") == frames and p.get("size") == size and p.get("seed") == seed:
            log(f"reusing the simulated recording in {data}")
            return data
    log(f"simulating {frames} frames x {size} x {size} px (seed {seed})")
    r = run_cli(["simulate", str(data), "--frames", str(frames), "--size", str(size), "--seed", str(seed),
                 "--overwrite", "-q"], ROOT)
    log(f"  simulated in {r['wall_s']:.0f} s")
    return data


def settings(quick: bool, n_frames: int) -> dict[str, dict[str, list[str]]]:
    """CLI options per setting and method."""
    train_len = n_frames - (3072 if n_frames >= 10570 else int(round(n_frames * 3072 / 10570)))
    paper_cnn = ["--cnn-pixels", "all", "--cnn-epochs", "3", "--cnn-window", str(train_len), "--cnn-batch", "32"]
    fast_cnn: list[str] = []
    if quick:  # a smoke test of the whole chain, not a reproduction
        paper_cnn = ["--cnn-pixels", "all", "--cnn-epochs", "1", "--cnn-window", str(train_len), "--cnn-batch", "32"]
        fast_cnn = ["--cnn-epochs", "1", "--cnn-n-pixels", "256", "--cnn-window", "256"]
    return {
        "paper": {"bandpass": [], "matched": [], "cnn1d": paper_cnn,
                  "cnn3d": ["--cnn3d-solver", "adam", "--cnn3d-epochs", "60", "--cnn3d-lr", "8e-7"]},
        "fast": {"bandpass": [], "matched": [], "cnn1d": fast_cnn,
                 "cnn3d": ["--cnn3d-solver", "ridge"]},
    }


def run_methods(data: Path, out: Path, quick: bool, which: list[str], surrogates: int,
                reuse: bool = False) -> dict[str, Any]:
    truth = json.loads((data / "truth.json").read_text())
    n_frames = truth["params"]["n_frames"]
    base = ["analyze", str(data / "transmission.tif"), "-f", str(data / "fluorescence.tif"),
            "--rois", str(data / "rois.json"), "--surrogates", str(surrogates), "--overwrite", "-q", "--no-report"]
    runs: dict[str, Any] = {}
    for setting, opts in sorted(settings(quick, n_frames).items(), key=lambda kv: kv[0] != "fast"):
        if setting not in which:
            continue
        for m in METHODS:
            if setting == "paper" and m in ("bandpass", "matched") and "fast" in which:
                continue  # the filters have no training settings: one run serves both
            folder = out / "runs" / setting / m
            folder.parent.mkdir(parents=True, exist_ok=True)
            extra = list(opts[m])
            if m == "cnn3d":
                extra += ["--model-1d", str(out / "runs" / setting / "cnn1d" / "models" / "cnn1d.safetensors")]
            record = folder / "reproduce-run.json"
            if reuse and record.is_file() and (folder / "run.json").is_file():
                prev = json.loads(record.read_text())
                if prev.get("argv") == base + ["--methods", m, *extra]:
                    log(f"{setting}: {m}: reusing {folder}")
                    runs[f"{setting}/{m}"] = prev["run"]
                    continue
            log(f"{setting}: {m} ...")
            r = run_cli(base + ["--methods", m, "--out", str(folder), *extra], ROOT)
            log(f"  {m}: {r['wall_s']:.0f} s, peak {r['peak_rss_mib']:.0f} MiB")
            runs[f"{setting}/{m}"] = {"folder": str(folder), "wall_s": r["wall_s"], "peak_rss_mib": r["peak_rss_mib"],
                                      "options": extra}
            record.write_text(json.dumps({"argv": base + ["--methods", m, *extra], "run": runs[f"{setting}/{m}"]}))
    return runs


def folder_of(runs: dict[str, Any], setting: str, method: str) -> Path:
    key = f"{setting}/{method}"
    if key not in runs and method in ("bandpass", "matched"):
        key = f"fast/{method}"
    return Path(runs[key]["folder"])


def build_table(runs: dict[str, Any], which: list[str]) -> list[dict[str, Any]]:
    from napari_micromotion.results_io import read_results
    from napari_micromotion.scoring import score

    rows = []
    for setting in which:
        for m in METHODS:
            key = f"{setting}/{m}"
            info = runs.get(key) or runs.get(f"fast/{m}")
            res = read_results(folder_of(runs, setting, m))
            v0, v1 = res.validation
            for row in res.roi_scores:
                if row["method"] != m:
                    continue
                tr = res.roi_traces[(row["roi"], m)]
                full = score(tr[v0:v1], res.truth[v0:v1], res.fps, max_lag_s=None)
                rows.append({"setting": setting, "roi": row["roi"], "kind": row["kind"], "method": m,
                             "score": row["score"], "lag_s": row["lag_s"], "p_value": row["p_value"],
                             "score_full_xcorr": full.score, "wall_s": info["wall_s"],
                             "peak_rss_mib": info["peak_rss_mib"], "shared_run": key not in runs})
    return rows


def pixel_table(runs: dict[str, Any], which: list[str], data: Path) -> list[dict[str, Any]]:
    """Fig. 3's view: the distribution of per-pixel scores inside each ROI, per setting and method.

    The ROI scores above sum a method's output over the ROI first (Fig. 4); here each pixel is
    scored on its own, so a few pixels that carry the signal (a cell border in the weak region)
    are not diluted by the many that do not.
    """
    import tifffile

    from napari_micromotion.rois import rasterize, read_rois

    rois = read_rois(data / "rois.json")
    out = []
    for setting in which:
        for m in METHODS:
            path = folder_of(runs, setting, m) / "scores" / f"{m}.tif"
            if not path.is_file():  # the 3D network has no per-pixel map
                continue
            smap = tifffile.imread(path)
            masks = rasterize(rois, smap.shape)
            for i, roi in enumerate(rois):
                v = smap[masks.masks[i]]
                v = v[np.isfinite(v)]
                out.append({"setting": setting, "roi": roi.name, "kind": roi.kind, "method": m, "pixels": int(v.size),
                            "median": float(np.median(v)), "p99": float(np.quantile(v, 0.99)), "max": float(v.max())})
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]], cols: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})


def _grid(rows: list[dict[str, Any]], setting: str, methods: list[str], cell) -> list[str]:
    """A markdown table ROI x method of *setting*'s rows; ``cell(row)`` formats one entry."""
    lines = ["| ROI | " + " | ".join(LABELS[m] for m in methods) + " |", "|---|" + "---|" * len(methods)]
    mine = [r for r in rows if r["setting"] == setting]
    for roi in dict.fromkeys(r["roi"] for r in mine):
        found = {r["method"]: r for r in mine if r["roi"] == roi}
        kind = next(iter(found.values()))["kind"]
        lines.append(f"| {roi} ({kind}) | " + " | ".join(cell(found[m]) if m in found else "" for m in methods) + " |")
    return lines


def write_table(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    cols = ["setting", "roi", "kind", "method", "score", "lag_s", "p_value", "score_full_xcorr", "wall_s", "peak_rss_mib"]
    _write_csv(out / "table.csv", rows, cols)
    lines = [f"# Reproduction of Rinner et al. 2020 ({meta['size_label']})", "",
             f"Simulated recording: {meta['frames']} frames x {meta['size']} x {meta['size']} px at 50 fps, seed "
             f"{meta['seed']}; validation frames {meta['validation']}; {meta['machine']}.", "",
             "Score: maximum of the z-normalised cross-correlation within +-1 s (p: circular-shift surrogates); "
             "`full`: maximum over all lags, as in the paper.  Time and memory: one `micromotion analyze` process "
             "per method (band-pass included; the 3D network reuses that setting's 1D CNN).", ""]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        lines += [f"## {setting} settings", ""]
        lines += _grid(rows, setting, list(METHODS),
                       lambda r: f"{r['score']:.2f} (p={r['p_value']:.3g}; full {r['score_full_xcorr']:.2f})")
        lines += ["", "| method | wall time (s) | peak memory (MiB) |", "|---|---|---|"]
        for m in METHODS:
            r = next((x for x in rows if x["setting"] == setting and x["method"] == m), None)
            if r is not None:
                shared = " (same run as fast)" if r.get("shared_run") else ""
                lines.append(f"| {LABELS[m]}{shared} | {r['wall_s']:.0f} | {r['peak_rss_mib']:.0f} |")
        lines.append("")
    px = meta.get("pixel_rows") or []
    if px:
        methods = [m for m in METHODS if any(r["method"] == m for r in px)]
        lines += ["## Pixel level (Fig. 3): per-pixel scores inside each ROI", "",
                  "Median / 99th percentile of the per-pixel score maps over the ROI's pixels.  Compare within a "
                  "column: each method's noise floor differs (a smoother output reaches a higher chance maximum of the "
                  "cross-correlation), so the silent and other ROIs give each method's chance level.", ""]
        for setting in dict.fromkeys(r["setting"] for r in px):
            lines += [f"{setting} settings:", ""]
            lines += _grid(px, setting, methods, lambda r: f"{r['median']:.2f} / {r['p99']:.2f}") + [""]
        _write_csv(out / "table_pixels.csv", px, list(px[0]))
    if meta.get("paper_mode_check"):
        c = meta["paper_mode_check"]
        lines += ["## 3D network: paper mode vs frozen 1D layers", "",
                  f"On a {c['box']} px box of the strong cell ({c['frames']} frames), the paper's procedure (all layers "
                  f"trainable, Adam lr 8e-7, {c['epochs']} epochs) moved the 1D layers' weights by at most "
                  f"{c['max_rel_change_1d']:.2e} (relative, max over layers); its dense weights differ from the frozen-"
                  f"feature fit with the same optimiser by {c['dense_rel_diff']:.2e} (relative L2) and its predictions "
                  f"correlate with it at r = {c['prediction_r']:.6f}.  Paper mode took {c['paper_s']:.0f} s, the frozen fit "
                  f"{c['fast_s']:.1f} s.", ""]
    (out / "table.md").write_text("\n".join(lines) + "\n")


def merged_results(runs: dict[str, Any], setting: str):
    """One Results with every method of *setting*, for the figures."""
    from napari_micromotion.results_io import read_results

    base = read_results(folder_of(runs, setting, "bandpass"))
    for m in ("matched", "cnn1d", "cnn3d"):
        r = read_results(folder_of(runs, setting, m))
        base.score_maps.update(r.score_maps)
        base.lag_maps.update(r.lag_maps)
        base.roi_traces.update({k: v for k, v in r.roi_traces.items() if k[1] == m})
        base.roi_sd.update({k: v for k, v in r.roi_sd.items() if k[1] == m})
        base.roi_scores += [row for row in r.roi_scores if row["method"] == m]
        base.region_maps.update(r.region_maps)
    base.methods = list(METHODS)
    return base


def figures(runs: dict[str, Any], setting: str, out: Path, dpi: int) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_micromotion.report import draw_maps, draw_traces, draw_weights

    res = merged_results(runs, setting)
    paths = []
    fig = Figure(figsize=(16, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    draw_maps(fig, res)
    fig.suptitle(f"Fig. 3 equivalent ({setting} settings): per-pixel scores over the validation frames")
    paths.append(out / "fig3_score_maps.png")
    fig.savefig(paths[-1], dpi=dpi)
    rois = [n for n, k in zip(res.roi_names, res.roi_kinds) if k in ("strong", "weak", "silent")] or res.roi_names
    fig = Figure(figsize=(4.2 * len(rois), 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    draw_traces(fig, res, rois=rois, length_s=20.0)
    fig.suptitle(f"Fig. 4 equivalent ({setting} settings): ROI predictions (z-scored) vs fluorescence, 20 s "
                 "of the validation frames; score and p-value per panel")
    paths.append(out / "fig4_traces.png")
    fig.savefig(paths[-1], dpi=dpi)
    if res.region_maps:
        res.region_maps = {k: v for k, v in res.region_maps.items() if k[1] in rois} or res.region_maps
        fig = Figure(figsize=(9, 2.6 * len(res.region_maps)), layout="constrained")
        FigureCanvasAgg(fig)
        draw_weights(fig, res, per_row=1)
        fig.suptitle(f"Fig. 5 equivalent ({setting} settings): 3D network dense weights over the still frame")
        paths.append(out / "fig5_weights.png")
        fig.savefig(paths[-1], dpi=dpi)
    return paths


def real_data(out: Path, dpi: int) -> dict[str, Any]:
    """The transmission-only recordings: band-pass RMS maps and beats (no fluorescence there)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_micromotion.results_io import read_results

    cases = []
    ohw = SHARED / "ohw-tissue-tif-series" / "sampletifseries"
    if ohw.is_dir():  # 18.17 fps from videoinfos.txt: the default passband becomes 2-7.27 Hz
        cases.append(("OHW micro-tissue (brightfield, 18.2 fps)", ohw, []))
    mp4 = SHARED / "cm-monolayer-phase-mp4"
    for name in ("adult", "fetal", "matrigel"):
        if (mp4 / f"{name}.mp4").is_file():
            # 20 fps per the source's analysis code; the first 12 frames fade in from black
            cases.append((f"cm monolayer {name} (phase contrast, H.264)", mp4 / f"{name}.mp4",
                          ["--fps", "20", "--frames", "12:48", "--passband", "1", "8"]))
    summary = {}
    if not cases:
        return summary
    fig = Figure(figsize=(12, 3.0 * len(cases)), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(len(cases), 3, width_ratios=[1, 1, 2.2])
    for i, (title, path, extra) in enumerate(cases):
        folder = out / "runs" / "real" / path.stem
        folder.parent.mkdir(parents=True, exist_ok=True)
        r = run_cli(["analyze", str(path), "--out", str(folder), "--overwrite", "-q", "--no-report", *extra], ROOT)
        res = read_results(folder)
        energy = res.energy_map
        ax = fig.add_subplot(gs[i, 0])
        lo, hi = np.percentile(res.still, [1, 99])
        ax.imshow(res.still, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
        ax = fig.add_subplot(gs[i, 1])
        im = ax.imshow(energy, cmap="magma", vmax=float(np.percentile(energy, 99.5)))
        ax.set_title("band-pass RMS dI/I", fontsize=8)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.046)
        beats = list(csv.DictReader(open(folder / "beats.csv")))
        rates = list(csv.DictReader(open(folder / "beat_rates.csv")))
        ax = fig.add_subplot(gs[i, 2])
        x = np.arange(res.n_frames) / res.fps
        # the whole-frame band-pass energy is what the beats are found in
        import tifffile  # noqa: F401  (keeps the import cost out of the loop above)

        from napari_micromotion.filters import bandpass, design_bandpass
        from napari_micromotion.io import read_recording

        rec_args = {"fps": float(extra[extra.index("--fps") + 1])} if "--fps" in extra else {}
        rec = read_recording(path, **rec_args)
        t = rec.transmission
        if "--frames" in extra:
            a, b = (int(v) for v in extra[extra.index("--frames") + 1].split(":"))
            t = t[a:b]
        p = res.passband
        d = design_bandpass(res.fps, p["low_hz"], p["high_hz"], p["order"], padtype=p.get("padtype", "mean"))
        step = max(1, int(np.sqrt(t.shape[1] * t.shape[2] / 65536)))
        sub = np.asarray(t[:, ::step, ::step], dtype=np.float32).reshape(t.shape[0], -1)
        e = (bandpass(sub, d) ** 2).mean(axis=1)
        ax.plot(x, e / e.max(), color="#1f77b4", lw=1)
        times = [float(b["time_s"]) for b in beats if b["source"] == "transmission"]
        for tb in times:
            ax.axvline(tb, color="#e6550d", lw=1, ls="--")
        rate = next((r_ for r_ in rates if r_["source"] == "transmission"), {})
        bpm = rate.get("rate_bpm")
        try:
            bpm_text = f"{float(bpm):.0f} bpm" if bpm not in (None, "") and np.isfinite(float(bpm)) else "no rate"
        except ValueError:
            bpm_text = "no rate"
        ax.set_title(f"whole-frame band-pass energy and beats ({len(times)} found in {res.n_frames / res.fps:.1f} s, "
                     f"{bpm_text})", fontsize=8)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
        summary[path.stem] = {"title": title, "n_frames": res.n_frames, "fps": res.fps, "passband": p,
                              "beat_times_s": times, "rate_bpm": rate.get("rate_bpm"), "wall_s": r["wall_s"]}
    fig.suptitle("Real transmission-only recordings: band-pass activity and beats (no fluorescence)")
    fig.savefig(out / "real_data.png", dpi=dpi)
    return summary


def paper_mode_check(runs: dict[str, Any], data: Path, setting: str, quick: bool) -> dict[str, Any]:
    """Paper-mode 3D training (all layers) vs the frozen-feature fit on a small box of the strong cell."""
    import torch

    from napari_micromotion.detectors.cnn1d import normalise_columns
    from napari_micromotion.detectors.cnn3d import CNN3DParams, iter_train_cnn3d
    from napari_micromotion.detectors.models import load_cnn1d
    from napari_micromotion.filters import bandpass, design_bandpass
    from napari_micromotion.io import read_recording
    from napari_micromotion.pipeline import training_segments
    from napari_micromotion.progress import drive
    from napari_micromotion.results_io import read_results
    from napari_micromotion.rois import rasterize, read_rois

    res = read_results(folder_of(runs, setting, "cnn1d"))
    model = load_cnn1d(folder_of(runs, setting, "cnn1d") / "models" / "cnn1d.safetensors")
    rec = read_recording(data / "transmission.tif", data / "fluorescence.tif")
    rois = read_rois(data / "rois.json")
    masks = rasterize(rois, rec.frame_shape)
    i = [r.kind for r in rois].index("strong")
    rs, cs = masks.box(i)
    side = 4 if quick else 12
    r0 = (rs.start + rs.stop) // 2 - side // 2
    c0 = cs.start
    n_t = rec.n_frames
    block = rec.transmission[:, r0:r0 + side, c0:c0 + side].reshape(n_t, -1)
    d = design_bandpass(rec.fps, res.passband["low_hz"], res.passband["high_hz"], res.passband["order"])
    filt = bandpass(block, d)
    x = normalise_columns(filt, block.mean(axis=0), model.normalisation.mode) / model.normalisation.input_scale
    inputs = x.reshape(n_t, side, side)
    truth = res.truth.astype(np.float64)
    segs = training_segments(n_t, res.validation)
    mask = np.zeros(n_t, bool)
    for a, b in segs:
        mask[a:b] = True
    target = ((truth - truth[mask].mean()) / truth[mask].std()).astype(np.float32)
    epochs = 1 if quick else 60
    t0 = time.perf_counter()
    fast = drive(iter_train_cnn3d("strong", (r0, r0 + side, c0, c0 + side), inputs, target, segs, model.net,
                                  CNN3DParams(mode="fast", solver="adam", epochs=epochs, mc_passes=2, seed=0)))
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    paper = drive(iter_train_cnn3d("strong", (r0, r0 + side, c0, c0 + side), inputs, target, segs, model.net,
                                   CNN3DParams(mode="paper", epochs=epochs, mc_passes=2, seed=0, device="cpu")))
    paper_s = time.perf_counter() - t0
    changes = []
    for c3, c1 in zip(paper.net.body, model.net.body):
        w3 = c3.weight.detach().reshape(c1.weight.shape)
        changes.append(float(torch.linalg.norm(w3 - c1.weight.detach()) / torch.linalg.norm(c1.weight.detach())))
    dense_diff = float(np.linalg.norm(paper.weights - fast.weights) / np.linalg.norm(fast.weights))
    r = float(np.corrcoef(paper.prediction, fast.prediction)[0, 1])
    return {"box": f"{side}x{side}", "frames": n_t, "epochs": epochs, "max_rel_change_1d": max(changes),
            "dense_rel_diff": dense_diff, "prediction_r": r, "paper_s": paper_s, "fast_s": fast_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "reproduce-output"))
    ap.add_argument("--quick", action="store_true", help="small recording (CI smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", default="fast,paper", help="comma-separated: fast, paper")
    ap.add_argument("--surrogates", type=int, default=999)
    ap.add_argument("--no-real", action="store_true", help="skip the real recordings")
    ap.add_argument("--reuse-runs", action="store_true",
                    help="keep the analyses of an earlier call with the same data and options (tables and figures anew)")
    ap.add_argument("--docs", help="also write downscaled PNGs and table.md into this folder (e.g. docs/reproduce)")
    args = ap.parse_args(argv)
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    which = [s.strip() for s in args.settings.split(",") if s.strip()]
    frames, size = (1000, 48) if args.quick else (10570, 256)
    surrogates = min(args.surrogates, 19) if args.quick else args.surrogates
    t_start = time.perf_counter()
    data = simulate(out, frames, size, args.seed)
    runs = run_methods(data, out, args.quick, which, surrogates, reuse=args.reuse_runs)
    check = paper_mode_check(runs, data, "paper" if "paper" in which else which[0], args.quick)
    log(f"paper-mode check: {check}")
    rows = build_table(runs, which)
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        from _common import machine_info

        machine = machine_info()
    except Exception:  # the benchmark helpers are optional here
        machine = {"cpu": platform.processor(), "cores": os.cpu_count()}
    meta = {"size_label": "quick size" if args.quick else "paper size", "frames": frames, "size": size,
            "seed": args.seed, "validation": "0:3072" if frames >= 10570 else f"0:{round(frames * 3072 / 10570)}",
            "machine": f"{machine.get('cpu', '?')}, {machine.get('cores', os.cpu_count())} cores",
            "paper_mode_check": check, "pixel_rows": pixel_table(runs, which, data)}
    write_table(rows, out, meta)
    dpi = 70 if args.quick else 90
    figs = figures(runs, "paper" if "paper" in which else which[0], out, dpi)
    real = {} if args.no_real else real_data(out, dpi)
    total = time.perf_counter() - t_start
    (out / "reproduce.json").write_text(json.dumps({"wall_s": total, "runs": runs, "meta": meta, "real": real,
                                                    "machine": machine, "rows": rows}, indent=1, default=str))
    log(f"done in {total / 60:.1f} min: {out / 'table.md'}")
    if args.docs:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        for p in figs + ([out / "real_data.png"] if (out / "real_data.png").exists() else []):
            im = Image.open(p)
            im.thumbnail((1200, 1200))
            im = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)  # small enough for git
            im.save(docs / p.name, optimize=True)
        shutil.copy(out / "table.md", docs / "table.md")
        shutil.copy(out / "table.csv", docs / "table.csv")
        shutil.copy(out / "table_pixels.csv", docs / "table_pixels.csv")
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
