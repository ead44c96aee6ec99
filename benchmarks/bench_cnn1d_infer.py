"""Goal 1: 1D CNN inference on CPU - the fused numba kernel vs a straightforward PyTorch port.

Baseline: ``nn.Sequential`` of Table 1's ``Conv1d`` layers (float32, pixels as the
batch, ``torch.inference_mode``), as in the issue.  Ours:
:func:`napari_micromotion.detectors.fast.cnn1d_forward`.  Also timed in the same run:
a 2048^2 fp32 matmul in torch (the machine's GEMM yardstick).  The three are
interleaved (best of several rounds each) so a busy machine slows all alike.
Exactness: both networks carry the same random weights; the maximum absolute
difference of their outputs must be <= 1e-4.

Goal: ours >= 10x the baseline's samples/s and >= 1/3 of the GEMM throughput.

Usage: ``python benchmarks/bench_cnn1d_infer.py [--quick] [--rounds N]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def flop_per_sample() -> int:
    """Multiply-add FLOPs (2 per MAC) of Table 1 per output sample: ~7.4 k."""
    from napari_micromotion.detectors.cnn1d import DILATIONS, N_FEATURES, N_FILTERS, N_PLAIN, WIDTH

    macs = N_FILTERS * WIDTH                                       # Conv1
    macs += (N_PLAIN - 1 + len(DILATIONS)) * N_FILTERS * N_FILTERS * WIDTH  # Conv2-20
    macs += N_FEATURES * N_FILTERS + N_FEATURES                    # Conv21, Conv22
    return 2 * macs


def random_net(seed: int = 1):
    """Table 1 with Glorot weights and random (non-zero) biases."""
    import torch

    from napari_micromotion.detectors.cnn1d import build_cnn1d

    net = build_cnn1d(seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv1d):
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) - 0.5) * 0.2)
    return net.eval()


def naive_port(net):
    """The straightforward PyTorch port: one nn.Sequential of Conv1d + ReLU."""
    from torch import nn

    layers: list = []
    for conv in net.body:
        layers += [conv, nn.ReLU()]
    layers.append(net.head)
    return nn.Sequential(*layers).eval()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (best of each)")
    args = ap.parse_args(argv)
    import torch

    from napari_micromotion.detectors import fast

    state = C.machine_state()
    if args.quick:
        ours_shape, naive_shape, gemm_n, rounds = (512, 1024), (128, 512), 256, args.rounds or 1
    else:
        ours_shape, naive_shape, gemm_n, rounds = (2048, 16384), (1024, 2048), 2048, args.rounds or 3
    rng = np.random.default_rng(0)
    net = random_net(1)
    seq = naive_port(net)
    weights = fast.weights_of(net)
    x_ours = rng.standard_normal(ours_shape, dtype=np.float32)              # (T, P)
    n_px, n_t = naive_shape
    x_naive = torch.from_numpy(rng.standard_normal((n_px, 1, n_t), dtype=np.float32))  # (B, 1, T)

    # exactness on the naive batch: same weights, same inputs
    ref = None
    with torch.inference_mode():
        ref = seq(x_naive)[:, 0].numpy().T                                  # (T, B)
    ours_on_same = fast.cnn1d_forward(weights, np.ascontiguousarray(x_naive[:, 0].numpy().T))
    max_diff = float(np.abs(ours_on_same - ref).max())
    fast.cnn1d_forward(weights, x_ours[:, :64])                             # compile / load the cache

    def run_naive() -> None:
        with torch.inference_mode():
            seq(x_naive)

    def run_ours() -> None:
        fast.cnn1d_forward(weights, x_ours)

    gemm = C.gemm_gflops(gemm_n, seconds=0.05 if args.quick else 1.0)
    run_naive()
    best = C.interleaved({"naive": run_naive, "ours": run_ours, "gemm": gemm}, rounds=rounds)
    fps = flop_per_sample()
    ours_sps = x_ours.size / best["ours"]
    naive_sps = n_px * n_t / best["naive"]
    gemm_gflops = gemm.flops / best["gemm"] / 1e9                            # type: ignore[attr-defined]
    ours_gflops = ours_sps * fps / 1e9
    ratio = ours_sps / naive_sps
    frac_gemm = ours_gflops / gemm_gflops
    met = bool(ratio >= 10 and frac_gemm >= 1 / 3 and max_diff <= 1e-4)
    import numba

    details = {
        "ours_shape_T_P": list(ours_shape), "naive_batch_px_T": [n_px, n_t],
        "ours_Msamples_s": round(ours_sps / 1e6, 3), "naive_Msamples_s": round(naive_sps / 1e6, 3),
        "flop_per_sample": fps, "ours_GFLOP_s": round(ours_gflops, 1),
        f"gemm_{gemm_n}_GFLOP_s": round(gemm_gflops, 1), "ours_fraction_of_gemm": round(frac_gemm, 3),
        "max_abs_diff_vs_torch": max_diff, "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(), "rounds": rounds,
        "paper_recording_693M_samples_ours_s": round(693e6 / ours_sps, 1),
        "paper_recording_693M_samples_naive_s": round(693e6 / naive_sps, 1),
    }
    return C.report("cnn1d_infer", goal="1D CNN inference >= 10x naive PyTorch and >= 1/3 GEMM, max diff <= 1e-4",
                    ours=ours_sps / 1e6, baseline=naive_sps / 1e6, ratio=ratio, unit="M samples/s",
                    baseline_label="nn.Sequential of Conv1d, float32, pixels as batch", met=met, details=details,
                    quick=args.quick, state_before=state, ratio_label="speed-up")


if __name__ == "__main__":
    main()
