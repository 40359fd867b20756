"""Benchmark: network training on a CUDA GPU against the CPU (not a test; needs a GPU machine).

Two workloads, each trained once on the CPU (torch with every core) and once on CUDA, same seeds:

(a) the per-target path: ``gexpred.batched_nn.train_many`` for the 200 networks of
    benchmarks/bench_mlp.py (50 targets x 4 candidates, 2 hidden layers of 32, 300 samples,
    100 epochs);
(b) the genome-wide multi-output path: one ``gexpred.nn.train_mlp`` network from 1,000 predictor
    genes to 2,000 target genes through a hidden layer of 3,000 (D-GEX's smallest), 1,040 samples,
    ``--epochs`` epochs (default 20), batch size 64.

Both devices must reach the same training losses to within 1e-3 relative over the first 5 epochs
(float32 products differ in rounding between the devices), else exit status 1. The last line is
``gpu_vs_cpu_batched=<(a) CPU / CUDA> gpu_vs_cpu_multi_output=<(b) CPU / CUDA>``.

Without a CUDA device it says so and exits 0 (``--device cpu`` runs the "GPU" leg on the CPU, to check
the script itself). Run: ``python benchmarks/bench_gpu.py`` (a few minutes, mostly the CPU legs).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import torch

from gexpred.batched_nn import train_many
from gexpred.nn import MLPSettings, train_mlp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_mlp import make_problem  # noqa: E402

SEED = 20241125
CHECK_EPOCHS = 5


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def per_target(device: str) -> tuple[float, list[np.ndarray]]:
    """(a): train_many on ``device``; seconds and each network's training-loss history."""
    Xs, ys, ss = make_problem()
    ss = [dataclasses.replace(s, device=device) for s in ss]
    _sync(device)
    t0 = time.perf_counter()
    out = train_many(Xs, ys, ss)
    _sync(device)
    return time.perf_counter() - t0, [h["train_loss"].to_numpy() for _, h, _ in out]


def multi_output(device: str, epochs: int) -> tuple[float, list[np.ndarray]]:
    """(b): one network 1,000 -> 3,000 -> 2,000 outputs on ``device``; seconds and its training-loss history."""
    rng = np.random.default_rng(SEED)
    n, p, m = 1040, 1000, 2000
    X = rng.normal(size=(n, p)).astype(np.float32)
    W = rng.normal(size=(p, m)).astype(np.float32) * (rng.random(size=(p, m)) < 0.01)
    Y = np.tanh(X @ W) + rng.normal(scale=0.5, size=(n, m)).astype(np.float32)
    s = MLPSettings.from_config({"hidden": [3000], "activation": "relu", "optimizer": "adam", "lr": 1e-3,
                                 "epochs": epochs, "batch_size": 64, "patience": 0, "val_fraction": 0.2,
                                 "seed": 1, "device": device})
    _sync(device)
    t0 = time.perf_counter()
    _, history, _ = train_mlp(X, Y.astype(np.float32), s)
    _sync(device)
    return time.perf_counter() - t0, [history["train_loss"].to_numpy()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the multi-output network (b)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="device of the accelerated leg (cpu: check the script on a machine without a GPU)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to compare (torch.cuda.is_available() is False)")
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"CPU: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; accelerated leg: {name}; "
          f"torch {torch.__version__}")

    ratios, ok = [], True
    for label, run in (("(a) train_many, 200 networks", per_target),
                       (f"(b) multi-output network, {args.epochs} epochs", lambda d: multi_output(d, args.epochs))):
        t_cpu, h_cpu = run("cpu")
        run(args.device)  # warm-up (CUDA context, kernels)
        t_acc, h_acc = run(args.device)
        a = np.concatenate([h[:CHECK_EPOCHS] for h in h_cpu])
        b = np.concatenate([h[:CHECK_EPOCHS] for h in h_acc])
        rel = float(np.max(np.abs(a - b) / np.abs(a)))
        ok &= rel <= 1e-3
        ratios.append(t_cpu / t_acc)
        print(f"{label}: CPU {t_cpu:.2f} s, {name} {t_acc:.2f} s ({t_cpu / t_acc:.1f} x); training losses of the "
              f"first {CHECK_EPOCHS} epochs agree to {rel:.1e} relative")
    if not ok:
        print("MISMATCH between the devices", file=sys.stderr)
        return 1
    print(f"gpu_vs_cpu_batched={ratios[0]:.1f} gpu_vs_cpu_multi_output={ratios[1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
