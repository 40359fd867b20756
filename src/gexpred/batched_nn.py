"""Train many small networks of one architecture as one vectorised program.

:func:`train_many` gives, for every ``(X, y, settings)``, what
:func:`gexpred.nn.train_mlp` gives for it alone (same initial weights, validation
split, standardisation, batch order, optimizer steps, early stopping and restored
best epoch; equal to float rounding), but trains all networks at once: the
parameters of network ``i`` are row ``i`` of one ``(N, P)`` tensor, every layer is a
batched matrix product (``torch.baddbmm``) over the network dimension, and the
Adam/SGD update is written out elementwise with a learning rate, weight decay and
momentum per network. A network that stops early (or reaches its own
``epochs``) is masked: its parameters are not updated any more, and the weights of
its best epoch are returned.

Restrictions (a ``ValueError`` or ``NotImplementedError`` says which):

* every network has the same number of samples and predictors, and the same
  ``hidden``, ``activation``, ``optimizer``, ``batch_size`` and ``val_fraction``
  (so all have the same number of batches per epoch); folds and targets of a
  search have equal sizes within such a group. ``seed``, ``lr``,
  ``weight_decay``, ``momentum``, ``patience`` and ``epochs`` may differ.
* ``dropout`` must be 0.
* if any network diverges, a :class:`~gexpred.errors.ModelError` naming it is
  raised and no network is returned (``train_mlp`` fails for that network alone).

Numbers differ from ``train_mlp`` only by float rounding (batched and unbatched
matrix products sum in different orders), which stays ~1e-6 for the runs the
tests use; long chaotic runs can drift further apart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ModelError
from .nn import (CLASS_HISTORY_COLUMNS, DIVERGENCE_FACTOR, HISTORY_COLUMNS, GeneMLP, LRSchedule, MLPSettings,
                 Optimizer, _check_codes, _split_validation, initial_model, n_outputs, resolve_device)

log = logging.getLogger(__name__)

_ACT = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "identity": lambda t: t,
}
(_BETA1, _BETA2), _EPS = Optimizer.BETAS, Optimizer.EPS  # the update rules of nn.Optimizer (train_mlp)


def _check(Xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], settings_list: Sequence[MLPSettings]) -> None:
    if not (len(Xs) == len(ys) == len(settings_list)):
        raise ValueError(f"train_many needs as many X ({len(Xs)}), y ({len(ys)}) and settings "
                         f"({len(settings_list)})")
    if len(Xs) == 0:
        raise ValueError("train_many needs at least one network")
    s0 = settings_list[0]
    for i, s in enumerate(settings_list):
        if s.dropout > 0:
            raise NotImplementedError("train_many supports dropout 0 only; train networks with dropout "
                                      "one at a time with train_mlp")
        for name in ("hidden", "activation", "optimizer", "batch_size", "val_fraction"):
            a, b = getattr(s, name), getattr(s0, name)
            if (list(a) != list(b)) if name == "hidden" else a != b:
                raise ValueError(f"train_many: network {i} has {name}={a!r}, network 0 {b!r}; "
                                 f"batch only networks with equal {name}")
    shape0 = np.shape(Xs[0])
    for i, (X, y) in enumerate(zip(Xs, ys)):
        if np.ndim(X) != 2 or np.shape(X) != shape0:
            raise ValueError(f"train_many: X of network {i} has shape {np.shape(X)}, network 0 {shape0}; "
                             "batch only networks with equal numbers of samples and predictors")
        if np.size(y) != shape0[0]:
            raise ValueError(f"train_many: y of network {i} has {np.size(y)} values for {shape0[0]} samples")


def train_many(
    Xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    settings_list: Sequence[MLPSettings],
    targets: Sequence[str] | None = None,
    task: str = "regression",
    n_classes: int | None = None,
) -> list[tuple[GeneMLP, pd.DataFrame, dict[str, Any]]]:
    """Train one network per ``(Xs[i], ys[i], settings_list[i])`` at once.

    Returns, per network, what :func:`gexpred.nn.train_mlp` returns: the model
    (a :class:`GeneMLP` on the CPU in eval mode), its history
    (``epoch, train_loss, val_loss``) and info (``best_epoch``, ``epochs_run``,
    ``stopped_early``, ``n_fit``, ``n_val``, ``device``, ``seconds``; ``seconds``
    is the wall time of the whole batch). ``targets`` names the networks in
    messages. The device is that of ``settings_list[0].device``. ``task`` and
    ``n_classes`` are those of :func:`gexpred.nn.train_mlp` (the same for every
    network; ``ys`` then hold class codes). Each network follows its own
    ``lr_schedule``.
    """
    _check(Xs, ys, settings_list)
    N = len(Xs)
    names = list(targets) if targets is not None else [f"network {i}" for i in range(N)]
    s0 = settings_list[0]
    n, p = np.shape(Xs[0])
    if n < 3:
        raise ModelError(f"Target {names[0]!r}: {n} training samples are too few to train a network.")
    device = resolve_device(s0.device)
    splits = [_split_validation(n, s.val_fraction, s.seed) for s in settings_list]
    n_fit, n_val = len(splits[0][0]), len(splits[0][1])
    use_val = n_val > 0
    classify = task == "classification"
    n_out = n_outputs(task, n_classes)

    # Per-network initial weights and standardisation, exactly as train_mlp builds them.
    models: list[GeneMLP] = []
    Xstd = torch.empty(N, n, p)
    Ystd = torch.empty(N, n, 1)
    y_var = np.empty(N)
    for i, (X, y, s, (fit_idx, _)) in enumerate(zip(Xs, ys, settings_list, splits)):
        X = np.asarray(X, dtype=np.float32)
        if classify:
            y = _check_codes(y, int(n_classes), names[i]).astype(np.float32).reshape(-1, 1)
        else:
            y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            model = initial_model(X, y, fit_idx, s, task, n_classes)
        Xstd[i] = (torch.from_numpy(X) - model.x_mean) / model.x_scale
        # classification: the class codes themselves (the output buffers are unused)
        Ystd[i] = torch.from_numpy(y) if classify else (torch.from_numpy(y) - model.y_mean) / model.y_scale
        y_var[i] = 1.0 if classify else float(model.y_scale.item() ** 2)
        models.append(model)

    # Parameters of network i are row i of one flat tensor; layer k is a view of it.
    params0 = [list(m.parameters()) for m in models]
    layout: list[tuple[int, int, int, int]] = []  # (weight offset, bias offset, out, in)
    off = 0
    for W, b in zip(params0[0][0::2], params0[0][1::2]):
        out_f, in_f = W.shape
        layout.append((off, off + out_f * in_f, out_f, in_f))
        off += out_f * in_f + out_f
    P = off
    flat = torch.stack([torch.cat([t.detach().reshape(-1) for t in ps]) for ps in params0]).to(device)
    flat.requires_grad_(True)
    act = _ACT[s0.activation]
    n_layers = len(layout)

    def forward(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = x
        for k, (wo, bo, out_f, in_f) in enumerate(layout):
            W = theta[:, wo:bo].view(N, out_f, in_f)
            b = theta[:, bo:bo + out_f].view(N, 1, out_f)
            h = torch.baddbmm(b, h, W.transpose(1, 2))
            if k < n_layers - 1:
                h = act(h)
        return h

    Xstd, Ystd = Xstd.to(device), Ystd.to(device)
    rows = torch.arange(N, device=device)[:, None]
    fit_all = torch.from_numpy(np.stack([f for f, _ in splits])).to(device)  # (N, n_fit)
    X_fit, Y_fit = Xstd[rows, fit_all], Ystd[rows, fit_all]
    if use_val:
        val_all = torch.from_numpy(np.stack([v for _, v in splits])).to(device)
        X_val, Y_val = Xstd[rows, val_all], Ystd[rows, val_all]

    def losses(out: torch.Tensor, yv: torch.Tensor) -> torch.Tensor:
        """Mean loss per network of outputs ``out`` (N, b, n_out) against ``yv`` (N, b, 1)."""
        if not classify:
            return torch.square(out - yv).mean(dim=(1, 2))
        if n_out == 1:
            return nn.functional.binary_cross_entropy_with_logits(out, yv, reduction="none").mean(dim=(1, 2))
        ce = nn.functional.cross_entropy(out.reshape(-1, n_out), yv.reshape(-1).long(), reduction="none")
        return ce.view(out.shape[0], -1).mean(dim=1)

    def evaluate(x: torch.Tensor, yv: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Loss (data scale) and accuracy (classification; NaN otherwise) per network."""
        with torch.no_grad():
            out = forward(flat, x)
            loss = losses(out, yv).cpu().numpy().astype(np.float64) * y_var
            if not classify:
                return loss, np.full(N, math.nan)
            pred = (out[:, :, 0] > 0).long() if n_out == 1 else out.argmax(dim=2)
            acc = (pred == yv[:, :, 0].long()).double().mean(dim=1)
        return loss, acc.cpu().numpy()

    lr = np.array([s.lr for s in settings_list], dtype=np.float64)
    wd_t = torch.tensor([s.weight_decay for s in settings_list], dtype=torch.float32, device=device)[:, None]
    use_wd = bool((wd_t != 0).any())
    adam = s0.optimizer == "adam"
    state1 = torch.zeros(N, P, device=device)  # Adam exp_avg / SGD momentum buffer
    state2 = torch.zeros(N, P, device=device)  # Adam exp_avg_sq
    neg_lr_t = torch.tensor(-lr, dtype=torch.float32, device=device)[:, None]
    mom_t = torch.tensor([s.momentum for s in settings_list], dtype=torch.float32, device=device)[:, None]
    gens = [torch.Generator(device="cpu").manual_seed(s.seed) for s in settings_list]
    batch = max(1, min(int(s0.batch_size), n_fit))
    epochs = np.array([s.epochs for s in settings_list])
    patience = np.array([s.patience for s in settings_list])
    schedules = [LRSchedule(s) for s in settings_list]
    scheduled = any(s.lr_schedule != "constant" for s in settings_list)

    limit = DIVERGENCE_FACTOR * np.maximum(1.0, evaluate(X_fit, Y_fit)[0] / y_var)
    histories: list[list[tuple[float, ...]]] = [[] for _ in range(N)]
    best_score = np.full(N, math.inf)
    best_epoch = np.zeros(N, dtype=int)
    best_flat = flat.detach().clone()
    active = np.ones(N, dtype=bool)
    epochs_run = np.zeros(N, dtype=int)
    stopped_early = np.zeros(N, dtype=bool)
    step = 0
    start = time.perf_counter()
    last_report = start
    max_epochs = int(epochs.max())
    epoch = 0
    while active.any():
        epoch += 1
        active_t = torch.from_numpy(active).to(device)[:, None]
        if scheduled:
            lr_e = lr * np.array([sch.factor(epoch) for sch in schedules])
            neg_lr_t = torch.tensor(-lr_e, dtype=torch.float32, device=device)[:, None]
        else:
            lr_e = lr
        order = torch.stack([torch.randperm(n_fit, generator=g) for g in gens]).to(device)
        Xe, Ye = X_fit[rows, order], Y_fit[rows, order]
        for b in range(0, n_fit, batch):
            xb, yb = Xe[:, b:b + batch], Ye[:, b:b + batch]
            flat.grad = None
            loss = losses(forward(flat, xb), yb).sum()
            loss.backward()
            step += 1
            with torch.no_grad():
                g = flat.grad
                if use_wd:
                    g = g + wd_t * flat
                if adam:
                    state1.lerp_(g, 1 - _BETA1)
                    state2.mul_(_BETA2).addcmul_(g, g, value=1 - _BETA2)
                    bc1 = 1 - _BETA1 ** step
                    bc2_sqrt = (1 - _BETA2 ** step) ** 0.5
                    neg_step = torch.tensor(-(lr_e / bc1), dtype=torch.float32, device=device)[:, None]
                    denom = (state2.sqrt() / bc2_sqrt).add_(_EPS)
                    new = flat + (neg_step * state1) / denom
                else:
                    if step == 1:
                        state1.copy_(g)
                    else:
                        state1.mul_(mom_t).add_(g)
                    new = flat + neg_lr_t * state1
                flat.copy_(torch.where(active_t, new, flat))
        train_loss, train_acc = evaluate(X_fit, Y_fit)
        val_loss, val_acc = evaluate(X_val, Y_val) if use_val else (np.full(N, math.nan), np.full(N, math.nan))
        with torch.no_grad():
            finite = torch.isfinite(flat).all(dim=1).cpu().numpy()
        for i in np.flatnonzero(active):
            tl, vl = float(train_loss[i]), float(val_loss[i])
            if not math.isfinite(tl) or tl / y_var[i] > limit[i] or not finite[i]:
                raise ModelError(
                    f"Target {names[i]!r}: training diverged at epoch {epoch} (training loss {tl:.4g}, "
                    f"against a variance of the target of {y_var[i]:.4g}). Lower mlp.lr (now "
                    f"{settings_list[i].lr:g})."
                )
            histories[i].append((epoch, tl, vl, float(train_acc[i]), float(val_acc[i])) if classify
                                else (epoch, tl, vl))
            epochs_run[i] = epoch
            score = vl if use_val else tl
            schedules[i].end_epoch(score)
            if score < best_score[i]:
                best_score[i], best_epoch[i] = score, epoch
                best_flat[i] = flat.detach()[i]
            if patience[i] > 0 and use_val and epoch - best_epoch[i] >= patience[i]:
                stopped_early[i] = True
                active[i] = False
            elif epoch >= epochs[i]:
                active[i] = False
        now = time.perf_counter()
        if now - last_report >= 10.0 or not active.any():
            last_report = now
            elapsed = now - start
            log.info("train_many: epoch %d/%d, %d of %d networks still training, median train_loss=%.5g "
                     "val_loss=%.5g, elapsed=%.1fs eta<=%.1fs", epoch, max_epochs, int(active.sum()), N,
                     float(np.median(train_loss)), float(np.median(val_loss)) if use_val else math.nan, elapsed,
                     elapsed / epoch * (max_epochs - epoch))
    seconds = round(time.perf_counter() - start, 3)
    log.info("train_many: %d networks, %d epochs at most, %.1fs", N, epoch, seconds)

    best_cpu = best_flat.cpu()
    results = []
    for i, model in enumerate(models):
        with torch.no_grad():
            for (wo, bo, out_f, in_f), lin in zip(layout, [m for m in model.net if isinstance(m, nn.Linear)]):
                lin.weight.copy_(best_cpu[i, wo:bo].view(out_f, in_f))
                lin.bias.copy_(best_cpu[i, bo:bo + out_f])
        model.eval()
        info = {
            "best_epoch": int(best_epoch[i]),
            "epochs_run": int(epochs_run[i]),
            "stopped_early": bool(stopped_early[i]),
            "n_fit": int(n_fit),
            "n_val": int(n_val),
            "device": str(device),
            "seconds": seconds,
        }
        results.append((model, pd.DataFrame(histories[i], columns=CLASS_HISTORY_COLUMNS if classify
                                            else HISTORY_COLUMNS), info))
    return results
