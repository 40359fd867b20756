"""Benchmark: 200 networks with gexpred.batched_nn.train_many against train_mlp one at a time.

50 targets x 4 candidate settings (different seeds and learning rates), 2 hidden
layers of 32 (relu), 300 samples, 10 predictors, 100 epochs, batch size 32,
patience 0 (every network runs all 100 epochs), val_fraction 0.2, Adam.

(a) ``train_mlp`` one network at a time: a subset of ``--loop`` networks (default 20)
    is timed and the time scaled linearly to all 200 (printed as such);
(b) ``train_many`` for all 200 networks in one call.

Every network timed in (a) is checked against its result from (b) (same best
epoch, restored weights to 1e-4, history to 1e-4 relative over the first 30 epochs,
the drift over all 100 printed: see CHECK_EPOCHS); a mismatch exits with status 1. Torch uses as
many threads as the machine has cores, for both. The last line is
``batched_vs_loop=<(a)/(b)>``.

Run: ``python benchmarks/bench_mlp.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from gexpred.batched_nn import train_many
from gexpred.nn import MLPSettings, train_mlp

N_TARGETS, N_CAND, N, P = 50, 4, 300, 10
SEED = 20240611
CHECK_EPOCHS = 30
"""Histories are compared to 1e-4 over the first CHECK_EPOCHS epochs: later, networks at
lr 1e-2 overfit (training loss ~0.3% of the variance) and their dynamics amplify float
rounding differences (batched vs unbatched matrix products) to percents; the drift over
all epochs is printed. The best epochs and restored weights are compared in full."""


def make_problem() -> tuple[list[np.ndarray], list[np.ndarray], list[MLPSettings]]:
    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(N, P)).astype(np.float32)
    Xs, ys, ss = [], [], []
    for t in range(N_TARGETS):
        w = rng.normal(size=P)
        y = (np.tanh(X @ w / 2) + 0.3 * X[:, t % P] * X[:, (t + 1) % P] + rng.normal(scale=0.5, size=N))
        for c in range(N_CAND):
            Xs.append(X)
            ys.append(y.astype(np.float32))
            ss.append(MLPSettings.from_config({
                "hidden": [32, 32], "activation": "relu", "optimizer": "adam",
                "lr": [1e-3, 3e-3, 1e-2, 3e-3][c], "epochs": 100, "batch_size": 32,
                "patience": 0, "val_fraction": 0.2, "seed": 1000 * t + c, "device": "cpu",
            }))
    return Xs, ys, ss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", type=int, default=20, help="networks timed one at a time (>= 20)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    print(f"load average {os.getloadavg()}, torch threads {torch.get_num_threads()}")
    Xs, ys, ss = make_problem()
    total = len(Xs)

    t0 = time.perf_counter()
    batched = train_many(Xs, ys, ss)
    t_batched = time.perf_counter() - t0
    print(f"(b) train_many, {total} networks: {t_batched:.2f} s")

    picks = np.linspace(0, total - 1, args.loop).round().astype(int)
    t0 = time.perf_counter()
    loop = [train_mlp(Xs[i], ys[i], ss[i]) for i in picks]
    t_sub = time.perf_counter() - t0
    t_loop = t_sub / len(picks) * total
    print(f"(a) train_mlp one at a time: {t_sub:.2f} s for {len(picks)} networks, "
          f"scaled linearly to {total}: {t_loop:.2f} s")

    worst_w = worst_h = drift = 0.0
    for i, (m, h, info) in zip(picks, loop):
        mb, hb, ib = batched[i]
        for a, b in zip(m.state_dict().values(), mb.state_dict().values()):
            worst_w = max(worst_w, float((a - b).abs().max()))
        hv, hbv = h[["train_loss", "val_loss"]].to_numpy(), hb[["train_loss", "val_loss"]].to_numpy()
        if len(hv) != len(hbv) or info["best_epoch"] != ib["best_epoch"]:
            print(f"network {i}: history length or best epoch differ", file=sys.stderr)
            return 1
        rel = np.abs(hv - hbv) / np.abs(hv)
        worst_h = max(worst_h, float(np.max(rel[:CHECK_EPOCHS])))
        drift = max(drift, float(np.max(rel)))
    print(f"checked {len(picks)} networks: equal best epochs; max |weight difference| (best epoch) "
          f"{worst_w:.2e}; max relative history difference, epochs 1-{CHECK_EPOCHS}: {worst_h:.2e}, "
          f"all {ss[0].epochs} epochs: {drift:.2e}")
    if worst_w > 1e-4 or worst_h > 1e-4:
        print("MISMATCH between train_many and train_mlp", file=sys.stderr)
        return 1
    print(f"batched_vs_loop={t_loop / t_batched:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
