"""1D CNN training throughput: the fused numba backend vs the naive PyTorch port, same data, same batches.

    python benchmarks/bench_cnn1d_train.py            # 512 px x 10570 frames (paper timing), 3 epochs
    python benchmarks/bench_cnn1d_train.py --quick    # 32 px, for CI (~10 s)
    python benchmarks/bench_cnn1d_train.py --batch-sizes 16,64,128
    python benchmarks/bench_cnn1d_train.py --paper-run 8192   # + a full fast training on 8192 px x 10570 frames

The naive port is :func:`napari_micromotion.detectors.training.iter_train_cnn1d`
(``Conv1d`` layers in float32, pixels as the batch, ``torch.optim.Adam`` on the
MSE; asked for with ``backend="torch"`` once that switch exists).  Both backends train on the same synthetic recording (a planted
calcium/contraction pair at the paper's 50 fps, training frames 3072-10570) with
the same seed, hence the same batches in the same order; the two generators are
advanced *alternately*, 10 steps at a time, so background load on this shared
machine hits both alike.  Samples = pixels x frames processed (a batch of 16
windows of 1024 frames is 16384 samples).

Printed: samples/s of both, the ratio, the loss-curve agreement (per step and per
epoch) and the load average before and after.  Exit status 0 whether or not the
goal (ratio >= 3, epoch losses within 2 %) is met; the verdict is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

FPS = 50.0
PAPER_FRAMES = 10570
PAPER_VALIDATION = 3072


def make_data(n_pix: int, n_frames: int = PAPER_FRAMES, seed: int = 0):
    """Normalised inputs (n_pix, T) float32, z-scored target (T,), training segments."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FPS
    onsets = np.cumsum(2.8 * (1 + 0.12 * rng.standard_normal(int(n_frames / FPS / 2.8) + 2)))
    onsets = onsets[onsets < t[-1]]

    def wave(rise: float, decay: float, delay: float = 0.0) -> np.ndarray:
        out = np.zeros(n_frames)
        for o in onsets:
            dt = t - o - delay
            m = dt > 0
            out[m] += (1 - np.exp(-dt[m] / rise)) * np.exp(-dt[m] / decay)
        return out

    calcium = wave(0.03, 0.45)
    motion = wave(0.05, 0.15, 0.04)
    motion_rate = np.gradient(motion)                                   # what a band-pass sees
    gain = rng.choice([0.0, 0.2, 1.0], size=n_pix, p=[0.5, 0.3, 0.2]) * rng.choice([-1, 1], size=n_pix)
    x = gain[:, None] * motion_rate[None] / motion_rate.std() + rng.standard_normal((n_pix, n_frames))
    x = (x / np.sqrt(np.mean(x[:, PAPER_VALIDATION:] ** 2))).astype(np.float32)
    y = calcium[PAPER_VALIDATION:]
    target = ((calcium - y.mean()) / y.std()).astype(np.float32)
    return x, target, [(PAPER_VALIDATION, n_frames)]


def step_samples(n_pix, segments, params) -> list[int]:
    """Samples (windows x frames) of every step, in training order (the shared batch plan)."""
    from napari_micromotion.detectors import fast_train as ft
    from napari_micromotion.detectors.cnn1d import training_windows

    windows = training_windows(segments, params.window)
    _, lengths = ft.pairs_of(n_pix, windows)
    out = []
    for _, batches, order in ft.batch_plan(n_pix, windows, params.batch_size, params.epochs, params.seed):
        out += [int(lengths[batches[b]].sum()) for b in order]
    return out


def compare(x, target, segments, params, *, max_steps: int | None = None) -> dict:
    """Run both backends interleaved; returns timings and the loss-curve agreement."""
    from napari_micromotion.detectors import fast_train as ft
    from napari_micromotion.detectors.training import iter_train_cnn1d

    per_step = step_samples(x.shape[0], segments, params)
    total = len(per_step)
    cum = np.concatenate([[0], np.cumsum(per_step)])
    naive_params = params
    if "backend" in type(params).__dataclass_fields__:     # once the lead wires the switch in, ask for torch
        naive_params = replace(params, backend="torch")
    gens = {"naive": iter_train_cnn1d(x, target, segments, naive_params),
            "fast": ft.iter_train_fast(x, target, segments, params)}
    seconds = {k: 0.0 for k in gens}
    steps = {k: 0 for k in gens}
    result: dict = {}
    live = dict(gens)
    while live:
        for name in list(live):
            t0 = time.perf_counter()
            try:
                ev = next(live[name])
                seconds[name] += time.perf_counter() - t0
                steps[name] = round(ev.fraction * total)
                if max_steps is not None and steps[name] >= max_steps:
                    live.pop(name).close()
            except StopIteration as stop:
                seconds[name] += time.perf_counter() - t0
                steps[name] = total
                result[name] = stop.value
                live.pop(name)
    out = {name: {"seconds": seconds[name], "steps": steps[name], "samples": int(cum[steps[name]]),
                  "samples_per_s": cum[steps[name]] / seconds[name]} for name in gens}
    out["ratio"] = out["fast"]["samples_per_s"] / out["naive"]["samples_per_s"]
    if len(result) == 2:
        (net_n, loss_n, ep_n), (net_f, loss_f, ep_f) = result["naive"], result["fast"]
        ln, lf = np.asarray(loss_n), np.asarray(loss_f)
        rel = np.abs(lf - ln) / np.abs(ln)
        tn, tf = ft.theta_of(net_n), ft.theta_of(net_f)
        out["loss"] = {
            "steps": int(ln.size),
            "step_rel_median": float(np.median(rel)), "step_rel_p95": float(np.quantile(rel, 0.95)),
            "step_rel_max": float(rel.max()),
            "epoch_naive": [float(v) for v in ep_n], "epoch_fast": [float(v) for v in ep_f],
            "epoch_rel": [float(abs(a - b) / abs(a)) for a, b in zip(ep_n, ep_f)],
            "first_epoch_to_last_naive": float(ep_n[-1] / ep_n[0]),
            "final_weights_rel": float(np.linalg.norm(tf - tn) / np.linalg.norm(tn)),
        }
        out["_naive"] = result["naive"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="32 pixels (CI)")
    ap.add_argument("--pixels", type=int, default=None, help="training pixels (default 512, quick 32)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--batch-sizes", default="16", help="comma-separated; the default training setting is 16")
    ap.add_argument("--max-steps", type=int, default=None, help="stop both after this many steps (no loss verdict)")
    ap.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paper-run", type=int, default=None, metavar="PIXELS",
                    help="also time one complete fast training (the given epochs) on PIXELS x 10570 frames "
                         "(default: 2048, the default training pixels; none with --quick)")
    ap.add_argument("--spread", action="store_true",
                    help="also train the naive port once more on a different torch thread count: its own spread "
                         "(summation order) is the yardstick for the loss-curve agreement")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.paper_run is None and not args.quick:
        args.paper_run = 2048
    state0 = C.machine_state()

    import numba
    import torch

    from napari_micromotion.detectors import fast_train as ft
    from napari_micromotion.detectors.cnn1d import CNN1DParams

    n_threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(n_threads)
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    n_pix = args.pixels or (32 if args.quick else 512)
    x, target, segments = make_data(n_pix, seed=args.seed)
    # warm-up: numba kernels (loaded from the on-disk cache or compiled) and oneDNN primitives
    ft.train_fast(x[:2, :2000], target[:2000], [(0, 2000)], CNN1DParams(epochs=1, window=1024, device="cpu"))
    from napari_micromotion.detectors.training import train_cnn1d
    warm = CNN1DParams(epochs=1, window=1024, device="cpu")
    if "backend" in CNN1DParams.__dataclass_fields__:
        warm = replace(warm, backend="torch")
    train_cnn1d(x[:2, :2000], target[:2000], [(0, 2000)], warm)

    load0 = os.getloadavg()
    print(f"cpu: {os.cpu_count()} cores; torch {torch.__version__} threads {torch.get_num_threads()}; "
          f"numba {numba.__version__} threads {numba.get_num_threads()} ({numba.threading_layer()})")
    print(f"data: {n_pix} px x {x.shape[1]} frames, training frames {segments[0][0]}-{segments[0][1]}, "
          f"window {args.window}, {args.epochs} epochs")
    print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    results = {"pixels": n_pix, "frames": int(x.shape[1]), "load_before": load0, "runs": {}}
    ok = True
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        params = CNN1DParams(epochs=args.epochs, window=args.window, batch_size=bs, seed=args.seed, device="cpu")
        r = compare(x, target, segments, params, max_steps=args.max_steps)
        results["runs"][bs] = {k: v for k, v in r.items() if not k.startswith("_")}
        n, f = r["naive"], r["fast"]
        print(f"batch {bs:4d}: naive {n['samples_per_s'] / 1e6:6.2f} M samples/s ({n['steps']} steps, {n['seconds']:.1f} s) | "
              f"fast {f['samples_per_s'] / 1e6:6.2f} M samples/s ({f['steps']} steps, {f['seconds']:.1f} s) | "
              f"ratio {r['ratio']:.2f}x")
        if "loss" in r:
            lo = r["loss"]
            print(f"    loss curve over {lo['steps']} steps: |fast - naive| / naive median {lo['step_rel_median']:.1e}, "
                  f"p95 {lo['step_rel_p95']:.1e}, max {lo['step_rel_max']:.1e}")
            print("    epoch mean loss naive " + " ".join(f"{v:.5f}" for v in lo["epoch_naive"]) +
                  " | fast " + " ".join(f"{v:.5f}" for v in lo["epoch_fast"]) +
                  " | rel diff " + " ".join(f"{v:.1e}" for v in lo["epoch_rel"]))
            print(f"    final weights relative difference {lo['final_weights_rel']:.1e} "
                  "(float32 summation order, amplified by Adam over many steps)")
            ok &= max(lo["epoch_rel"]) <= 0.02
            if args.spread:
                from napari_micromotion.detectors.training import iter_train_cnn1d

                other = 1 if n_threads > 1 else 2
                torch.set_num_threads(other)
                p2 = replace(params, backend="torch") if "backend" in CNN1DParams.__dataclass_fields__ else params
                gen = iter_train_cnn1d(x, target, segments, p2)
                while True:
                    try:
                        next(gen)
                    except StopIteration as stop:
                        net2, loss2, ep2 = stop.value
                        break
                torch.set_num_threads(n_threads)
                ref = r["_naive"]
                l0, l2 = np.asarray(ref[1]), np.asarray(loss2)
                sp = {"step_rel_max": float(np.max(np.abs(l2 - l0) / l0)),
                      "epoch_rel": [float(abs(a - b) / abs(a)) for a, b in zip(ref[2], ep2)],
                      "final_weights_rel": float(np.linalg.norm(ft.theta_of(net2) - ft.theta_of(ref[0]))
                                                 / np.linalg.norm(ft.theta_of(ref[0])))}
                lo["naive_spread"] = sp
                print(f"    yardstick - naive port on {other} vs {n_threads} torch threads: step loss max rel "
                      f"{sp['step_rel_max']:.1e}, epoch rel " + " ".join(f"{v:.1e}" for v in sp["epoch_rel"]) +
                      f", final weights rel {sp['final_weights_rel']:.1e}")
        ok &= r["ratio"] >= 3.0
    if args.paper_run:
        xp, tp, sp = make_data(args.paper_run, seed=args.seed)
        params = CNN1DParams(epochs=args.epochs, window=args.window, seed=args.seed, device="cpu")
        n_samples = sum(step_samples(args.paper_run, sp, params))
        t0 = time.perf_counter()
        _, _, ep = ft.train_fast(xp, tp, sp, params)
        dt = time.perf_counter() - t0
        naive = results["runs"].get(params.batch_size, {}).get("naive", {}).get("samples_per_s")
        extra = f"; the naive port at its rate above would take {n_samples / naive:.0f} s" if naive else ""
        print(f"paper-size training: {args.paper_run} px x {xp.shape[1]} frames, {args.epochs} epochs, batch "
              f"{params.batch_size}: {n_samples / 1e6:.0f} M samples in {dt:.1f} s ({n_samples / dt / 1e6:.2f} M/s){extra}; "
              f"epoch losses " + " ".join(f"{v:.4f}" for v in ep))
        results["paper_run"] = {"pixels": args.paper_run, "seconds": dt, "samples": n_samples, "epoch_loss": ep}
        del xp
    load1 = os.getloadavg()
    results["load_after"] = load1
    print(f"load average after:  {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    verdict = "met" if ok else "NOT met"
    if args.max_steps is not None:
        verdict += " (throughput only: --max-steps skips the full loss curve)"
    print(f"goal (>= 3x samples/s, epoch losses within 2 %): {verdict}")
    results["goal_met"] = bool(ok)
    first = results["runs"][int(args.batch_sizes.split(",")[0])]
    details = {"data": f"{n_pix} px x {x.shape[1]} frames, {args.epochs} epochs, batch {args.batch_sizes.split(',')[0]}"}
    if "loss" in first:
        details["epoch_loss_rel_diff"] = [f"{v:.1e}" for v in first["loss"]["epoch_rel"]]
    if "paper_run" in results:
        pr = results["paper_run"]
        details["paper_size_training"] = f"{pr['pixels']} px x 10570 frames, {args.epochs} epochs: {pr['seconds']:.1f} s"
    C.report("cnn1d_train", goal="1D CNN training >= 3x the naive port's samples/s, same loss curve",
             ours=first["fast"]["samples_per_s"] / 1e6, baseline=first["naive"]["samples_per_s"] / 1e6,
             ratio=first["ratio"], unit="M samples/s", baseline_label="naive PyTorch port, same batches",
             met=bool(ok), details=details, quick=args.quick, state_before=state0)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
