"""Issue 12 part B: blur flow from one motion-blurred frame (Shajkofci & Liebling, ISBI 2021).

Runs the paper's evaluation on the shipped model (or ``--model PATH``) and times
training and inference on this machine:

* two-zone test, 1000 images of 224 x 224 px: mean R^2 (paper 0.92, goal >= 0.92);
* cylinder-flow test (paper 0.91), held-out photographs, axial vs lateral error,
  Table 1 a-e on beads and on a textured image, failure analysis, and the
  structure-tensor baseline scored the same way;
* training: the shipped model's recorded wall time against the 30-minute goal
  and a fresh timing of a few training steps now (steps/s, with the load);
  ``--train-minutes M`` trains a whole new model here instead (and evaluates it);
* inference time of a 512 x 512 image, and the weight file size.

Printed: ours vs the paper and their ratio; written: ``benchmark-output/blur_flow[-quick].json``.

Usage::

    python benchmarks/bench_blur_flow.py [--quick] [--model PATH] [--train-minutes M] [--threads T]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

GOAL_R2 = 0.92
GOAL_TRAIN_MIN = 30.0


def _f(x: float) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "nan"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 two-zone images, small cylinder and held-out sets")
    ap.add_argument("--model", default=None, help="model to evaluate (default: the shipped one)")
    ap.add_argument("--train-minutes", type=float, default=None, help="train a new model for M minutes first")
    ap.add_argument("--threads", type=int, default=0, help="PyTorch threads (0: default)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the test streams")
    args = ap.parse_args(argv)

    import torch

    from napari_micromotion.blurflow.evaluate import (
        PAPER,
        EvaluationParams,
        evaluate_blur_flow,
    )
    from napari_micromotion.blurflow.model import load_blur_flow
    from napari_micromotion.blurflow.predict import (
        default_model_path,
        predict_blur_flow,
    )
    from napari_micromotion.blurflow.train import (
        BlurFlowTrainParams,
        iter_train_blur_flow,
        steps_for_minutes,
    )
    from napari_micromotion.progress import drive

    if args.threads:
        torch.set_num_threads(args.threads)
    state = C.machine_state()
    details: dict = {}

    # ---- training
    if args.train_minutes:
        params = BlurFlowTrainParams(threads=args.threads)
        n = steps_for_minutes(args.train_minutes, params)
        t0 = time.perf_counter()
        model = drive(iter_train_blur_flow(replace(params, steps=n), seed=0))
        train_min = (time.perf_counter() - t0) / 60
        details["trained_here"] = {"steps": n, "minutes": round(train_min, 2)}
        weight_path = None
    else:
        weight_path = Path(args.model) if args.model else default_model_path()
        model = load_blur_flow(weight_path)
        train_min = model.seconds / 60
    probe_steps = 4 if args.quick else 20
    probe = BlurFlowTrainParams(steps=probe_steps, validation_every=0, threads=args.threads)
    t0 = time.perf_counter()
    drive(iter_train_blur_flow(probe, seed=123))
    step_s = (time.perf_counter() - t0) / probe_steps
    details["training"] = {
        "model_training_minutes": round(train_min, 2), "goal_minutes": GOAL_TRAIN_MIN,
        "model_training_threads": model.threads, "model_steps": model.params.get("steps"),
        "model_training_images": model.n_images,
        "probe_seconds_per_step_now": round(step_s, 3), "probe_batch": probe.batch_size,
        "probe_images_per_s_now": round(probe.batch_size / step_s, 1),
    }
    if weight_path is not None:
        details["weights_mb"] = round(weight_path.stat().st_size / 2 ** 20, 2)

    # ---- inference time, 512 x 512
    img = np.random.default_rng(0).poisson(200, (512, 512)).astype(np.uint16)
    predict_blur_flow(img[:128, :128], model)          # warm-up
    times = []
    for _ in range(1 if args.quick else 3):
        t0 = time.perf_counter()
        predict_blur_flow(img, model)
        times.append(time.perf_counter() - t0)
    details["inference_512px_s"] = round(min(times), 3)

    # ---- evaluation
    ep = (EvaluationParams(n_two_zone=20, n_cylinder=4, n_held_out=8, seed=args.seed) if args.quick
          else EvaluationParams(seed=args.seed))
    last = [0.0]

    def show(ev) -> None:
        now = time.perf_counter()
        if now - last[0] > 15:
            print(f"  [{ev.stage}] {ev.message}", flush=True)
            last[0] = now

    rep = evaluate_blur_flow(model, ep, progress=show)
    tz, cyl, held = rep.two_zone, rep.cylinder, rep.held_out
    base = rep.baseline.get("two_zone", {})
    details["two_zone"] = {"images": tz["n_images"], "mean_r2": _f(tz["mean"]), "paper": PAPER["two_zone_r2"],
                           "mean_signed": _f(tz["mean_signed"]), "mean_axis": _f(tz["mean_axis"]),
                           "per_component": {k: _f(v) for k, v in tz["r2"].items()},
                           "rmse": {k: _f(v) for k, v in tz["rmse"].items()},
                           "scored_fraction": _f(tz["scored_fraction"]),
                           "baseline_structure_tensor_mean_r2": _f(base.get("mean", float("nan")))}
    if cyl:
        details["cylinder"] = {"images": cyl["n_images"], "mean_r2": _f(cyl["mean"]), "paper": PAPER["cylinder_r2"],
                               "per_component": {k: _f(v) for k, v in cyl["r2"].items()},
                               "rows": cyl["profile_rows"],
                               "lateral_true": cyl["profile_true_lateral"], "lateral_pred": cyl["profile_pred_lateral"],
                               "axial_true": cyl["profile_true_axial"], "axial_pred": cyl["profile_pred_axial"],
                               "baseline_mean_r2": _f(rep.baseline.get("cylinder", {}).get("mean", float("nan")))}
    if held:
        details["held_out_photos"] = {"mean_r2": _f(held["mean"]),
                                      "per_component": {k: _f(v) for k, v in held["r2"].items()}}
    details["axial_vs_lateral"] = {k: (_f(v) if isinstance(v, float) else v) for k, v in rep.axial_vs_lateral.items()}
    details["table1"] = rep.table1
    details["failure"] = rep.failure
    details["predict_seconds_per_224px_image"] = round(rep.predict_seconds_per_image, 4)

    print("Table 1 (v1, v2, v3, z0; v2 >= 0):")
    for row in rep.table1:
        print(f"  {row['case']}: truth {row['truth']}  paper {row['paper']}  ours beads {row['beads']}  "
              f"ours texture {row['texture']}")
    ours = float(tz["mean"])
    return C.report("blur_flow", goal=f"blur-flow R^2 >= {GOAL_R2} on the two-zone test (paper {PAPER['two_zone_r2']}),"
                                      f" training <= {GOAL_TRAIN_MIN:g} min",
                    ours=ours, baseline=float(PAPER["two_zone_r2"]), ratio=ours / PAPER["two_zone_r2"],
                    unit="mean R^2", baseline_label="the paper's two-zone R^2 (GPU, 400k training images)",
                    met=bool(ours >= GOAL_R2 and train_min <= GOAL_TRAIN_MIN), details=details, quick=args.quick,
                    state_before=state, ratio_label="ours / paper")


if __name__ == "__main__":
    main()
