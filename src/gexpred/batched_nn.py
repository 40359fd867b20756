"""Train many small networks of one architecture as one vectorised program.

:func:`train_many` gives, for every ``(X, y, settings)``, what
:func:`gexpred.nn.train_mlp` gives for it alone (same initial weights, validation
split, standardisation, batch order, optimizer steps, early stopping and restored
best epoch; equal to float rounding), but trains all networks at once: the
parameters of network ``i`` are row ``i`` of one ``(N, P)`` tensor, every layer is a
batched matrix product (``torch.baddbmm``) over the network dimension, the
backward pass is written out (the transposed products; no autograd), and the
Adam/SGD update is written out elementwise with a learning rate, weight decay and
momentum per network. A network that stops early (or reaches its own
``epochs``) is not updated any more, and the weights of its best epoch are
returned.

Networks may differ in their number of samples and in ``val_fraction`` (the
folds of a search and the refit on every sample train as one program): the
samples of each are padded to the largest network's and masked, each draws its
own batch order as ``train_mlp`` does, and a network with fewer batches in an
epoch than another takes no optimizer step while the other takes its last ones.
Networks that have stopped leave the program (the rest are gathered into
smaller tensors), so they cost nothing afterwards.

Restrictions (a ``ValueError`` or ``NotImplementedError`` says which):

* every network has the same number of predictors, and the same ``hidden``,
  ``activation``, ``optimizer`` and ``batch_size``. ``seed``, ``lr``,
  ``weight_decay``, ``momentum``, ``patience``, ``epochs``, ``lr_schedule``,
  ``input_noise`` and ``val_fraction`` may differ.
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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ModelError
from .nn import (CLASS_HISTORY_COLUMNS, DIVERGENCE_FACTOR, HISTORY_COLUMNS, GeneMLP, LRSchedule, MLPSettings,
                 Optimizer, _check_codes, _split_validation, initial_model, loss_unit, loss_unit_name, n_outputs,
                 resolve_device)

log = logging.getLogger(__name__)

_ACT = {  # applied in place to a layer's fresh output (the pre-activation is not needed afterwards)
    "relu": torch.relu_,
    "tanh": torch.tanh_,
    "sigmoid": torch.sigmoid_,
    "identity": lambda t: t,
}


def _relu_backward(d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``d`` where the ReLU's output ``h`` is positive, else 0: one pass (PyTorch's own ReLU backward kernel)
    instead of a comparison, a cast of its booleans and a product."""
    return torch.ops.aten.threshold_backward(d, h, 0.0)


# backpropagation through the activation, from its output (ReLU: output > 0; tanh: 1 - output^2; sigmoid:
# out (1 - out))
_BACK_ACT = {
    "relu": _relu_backward,
    "tanh": lambda d, h: d * (1.0 - h * h),
    "sigmoid": lambda d, h: d * (h * (1.0 - h)),
    "identity": None,
}
(_BETA1, _BETA2), _EPS = Optimizer.BETAS, Optimizer.EPS  # the update rules of nn.Optimizer (train_mlp)


def _fused_adam_step(flat: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step_t: torch.Tensor,
                     step: float, lr: float) -> bool:
    """One Adam update of every network's parameters ``flat`` and moments ``m``, ``v`` in place, at one rate and
    step for all, by PyTorch's fused kernel (one pass over the three; nn.Optimizer's rule up to float rounding).
    False, and nothing changed, where this torch or device has no such kernel."""
    try:
        step_t.fill_(float(step))
        torch._fused_adam_([flat], [g], [m], [v], [], [step_t], lr=float(lr), beta1=_BETA1, beta2=_BETA2,
                           weight_decay=0.0, eps=_EPS, amsgrad=False, maximize=False)
    except (AttributeError, RuntimeError, NotImplementedError, TypeError):
        return False
    return True


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
        for name in ("hidden", "activation", "optimizer", "batch_size", "loss", "huber_delta"):
            a, b = getattr(s, name), getattr(s0, name)
            if (list(a) != list(b)) if name == "hidden" else a != b:
                raise ValueError(f"train_many: network {i} has {name}={a!r}, network 0 {b!r}; "
                                 f"batch only networks with equal {name}")
    p0 = np.shape(Xs[0])[1] if np.ndim(Xs[0]) == 2 else None
    for i, (X, y) in enumerate(zip(Xs, ys)):
        if np.ndim(X) != 2 or np.shape(X)[1] != p0:
            raise ValueError(f"train_many: X of network {i} has shape {np.shape(X)}, network 0 "
                             f"{np.shape(Xs[0])}; batch only networks with equal numbers of predictors")
        if np.size(y) != np.shape(X)[0]:
            raise ValueError(f"train_many: y of network {i} has {np.size(y)} values for {np.shape(X)[0]} samples")


def _padded(rows: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Index rows padded to ``width`` with -1, and their mask (1 = a real sample)."""
    idx = np.full((len(rows), width), -1, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        idx[i, :len(r)] = r
        mask[i, :len(r)] = 1.0
    return idx, mask


def train_many(
    Xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    settings_list: Sequence[MLPSettings],
    targets: Sequence[str] | None = None,
    task: str = "regression",
    n_classes: int | None = None,
    record_train_loss: bool = True,
    prune: Callable[[int, np.ndarray, np.ndarray], Sequence[int]] | None = None,
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

    ``record_train_loss=False``: networks that hold out a validation part do
    not record their training loss (``train_loss`` NaN in their history;
    divergence is watched on the validation loss), and while every network
    still training holds one out, the pass over the training samples after
    each epoch is skipped. Their weights are the same either way; a network
    without a validation part still records it (its kept epoch is the one of
    lowest training loss). ``prune``, when given, is called after each
    epoch as ``prune(epoch, best, active)``, ``best`` the lowest validation
    loss (the training loss without a validation part) of every network so
    far, ``active`` whether each is still training, and returns networks to
    stop now (early pruning of a search's bad candidates,
    :func:`gexpred.search.cv_networks`); each keeps its best weights so far and
    ``info["pruned"]`` is true.
    """
    _check(Xs, ys, settings_list)
    N = len(Xs)
    names = list(targets) if targets is not None else [f"network {i}" for i in range(N)]
    s0 = settings_list[0]
    p = int(np.shape(Xs[0])[1])
    sizes = [int(np.shape(X)[0]) for X in Xs]
    for i, n in enumerate(sizes):
        if n < 3:
            raise ModelError(f"Target {names[i]!r}: {n} training samples are too few to train a network.")
    device = resolve_device(s0.device)
    splits = [_split_validation(n, s.val_fraction, s.seed) for n, s in zip(sizes, settings_list)]
    n_fit = np.array([len(f) for f, _ in splits])
    n_val = np.array([len(v) for _, v in splits])
    use_val = n_val > 0
    classify = task == "classification"
    n_out = n_outputs(task, n_classes)

    # Per-network initial weights and standardisation, exactly as train_mlp builds them; the samples of
    # every network side by side, padded to the largest network's (a mask marks the real ones).
    models: list[GeneMLP] = []
    n_max = max(sizes)
    Xstd = torch.zeros(N, n_max + 1, p)  # the last row: the padding every padded index points at
    Ystd = torch.zeros(N, n_max + 1, 1)
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
        Xstd[i, :sizes[i]] = (torch.from_numpy(X) - model.x_mean) / model.x_scale
        # classification: the class codes themselves (the output buffers are unused)
        Ystd[i, :sizes[i]] = torch.from_numpy(y) if classify else (torch.from_numpy(y) - model.y_mean) / model.y_scale
        y_var[i] = 1.0 if classify else loss_unit(s0.loss, model.y_scale.item())
        models.append(model)
    fit_idx_np, fit_mask_np = _padded([f for f, _ in splits], int(n_fit.max()))
    val_idx_np, val_mask_np = _padded([v for _, v in splits], max(1, int(n_val.max())))
    fit_idx_np[fit_idx_np < 0] = n_max
    val_idx_np[val_idx_np < 0] = n_max

    # Parameters of network i are row i of one flat tensor; layer k is a view of it.
    params0 = [list(m.parameters()) for m in models]
    layout: list[tuple[int, int, int, int]] = []  # (weight offset, bias offset, out, in)
    off = 0
    for W, b in zip(params0[0][0::2], params0[0][1::2]):
        out_f, in_f = W.shape
        layout.append((off, off + out_f * in_f, out_f, in_f))
        off += out_f * in_f + out_f
    P = off
    act = _ACT[s0.activation]
    n_layers = len(layout)

    # the flat parameters are split once per pass into each layer's weight and bias (views), and the gradient
    # is the concatenation of theirs (``gradient``)
    part_sizes = [n for _, _, out_f, in_f in layout for n in (out_f * in_f, out_f)]

    def forward(theta: torch.Tensor, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Outputs (L, b, n_out) of the networks ``theta`` (L, P) on ``x`` (L, b, p); with ``keep``, each layer's
        weight view and output are appended to it as ``(W, h)`` (what ``gradient`` needs)."""
        h = x
        L = theta.shape[0]
        parts = theta.split(part_sizes, dim=1)
        for k, (_, _, out_f, in_f) in enumerate(layout):
            W = parts[2 * k].view(L, out_f, in_f)
            b = parts[2 * k + 1].view(L, 1, out_f)
            h = torch.baddbmm(b, h, W.transpose(1, 2))
            if k < n_layers - 1:
                h = act(h)
            if keep is not None:
                keep.append((W, h))
        return h

    delta = float(s0.huber_delta)

    def losses(out: torch.Tensor, yv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean loss per network over the real samples (``mask``) of ``out`` (L, b, n_out) against ``yv``."""
        if not classify:
            r = out - yv
            if s0.loss == "mae":
                each = r.abs().mean(dim=2)
            elif s0.loss == "huber":
                each = nn.functional.huber_loss(out, yv, reduction="none", delta=delta).mean(dim=2)
            else:
                each = torch.square(r).mean(dim=2)
        elif n_out == 1:
            each = nn.functional.binary_cross_entropy_with_logits(out, yv, reduction="none")[:, :, 0]
        else:
            each = nn.functional.cross_entropy(out.reshape(-1, n_out), yv.reshape(-1).long(),
                                               reduction="none").view(out.shape[0], -1)
        return (each * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)

    back_act = _BACK_ACT[s0.activation]

    def gradient(theta: torch.Tensor, x: torch.Tensor, yv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Gradient with respect to ``theta`` (L, P) of the sum over the networks of ``losses`` on a batch.

        Backpropagation written out (the batched products of the forward pass, then their transposes): the
        gradient autograd would give up to float rounding, at about three quarters of its time on networks this
        small, where autograd's bookkeeping per operation weighs against the arithmetic.
        """
        layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        out = forward(theta, x, layers)
        weights = [W for W, _ in layers]
        acts = [x] + [h for _, h in layers]
        # d(loss of a network)/d(out): each real sample weighs 1 / (its network's real samples)
        w = (mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0))[:, :, None]
        if not classify:
            r = out - yv
            if s0.loss == "mae":  # the subgradient 0 at r = 0, as autograd's of abs
                d = torch.sign(r) * w * (1.0 / n_out)
            elif s0.loss == "huber":
                d = r.clamp(-delta, delta) * w * (1.0 / n_out)
            else:
                d = r * w * (2.0 / n_out)
        elif n_out == 1:
            d = (torch.sigmoid(out) - yv) * w
        else:
            target = torch.zeros_like(out).scatter_(2, yv.long(), 1.0)
            d = (torch.softmax(out, dim=2) - target) * w
        grads: list[torch.Tensor] = []  # last layer first: bias, weight, bias, weight, ...
        for k in range(n_layers - 1, -1, -1):
            grads += [d.sum(dim=1), torch.bmm(d.transpose(1, 2), acts[k]).reshape(len(theta), -1)]
            if k > 0:
                d = torch.bmm(d, weights[k])
                if back_act is not None:
                    d = back_act(d, acts[k])
        return torch.cat(grads[::-1], dim=1)

    # Everything per network lives in full (N, ...) tensors; the networks still training are a working
    # set ``live`` of rows, gathered anew whenever some stop (a stopped network costs nothing afterwards).
    flat_all = torch.stack([torch.cat([t.detach().reshape(-1) for t in ps]) for ps in params0]).to(device)
    state1_all = torch.zeros(N, P, device=device)  # Adam exp_avg / SGD momentum buffer
    state2_all = torch.zeros(N, P, device=device)  # Adam exp_avg_sq
    Xstd, Ystd = Xstd.to(device), Ystd.to(device)
    fit_idx_all = torch.from_numpy(fit_idx_np).to(device)
    fit_mask_all = torch.from_numpy(fit_mask_np).to(device)
    val_idx_all = torch.from_numpy(val_idx_np).to(device)
    val_mask_all = torch.from_numpy(val_mask_np).to(device)
    lr = np.array([s.lr for s in settings_list], dtype=np.float64)
    wd_all = torch.tensor([s.weight_decay for s in settings_list], dtype=torch.float32, device=device)[:, None]
    mom_all = torch.tensor([s.momentum for s in settings_list], dtype=torch.float32, device=device)[:, None]
    use_wd = bool((wd_all != 0).any())
    noise_sd = np.array([s.input_noise for s in settings_list], dtype=np.float64)
    adam = s0.optimizer == "adam"
    fused = adam and hasattr(torch, "_fused_adam_")  # switched off at the first failure
    step_t = torch.zeros((), device=device)
    gens = [torch.Generator(device="cpu").manual_seed(s.seed) for s in settings_list]
    batch = max(1, int(s0.batch_size))
    epochs = np.array([s.epochs for s in settings_list])
    patience = np.array([s.patience for s in settings_list])
    schedules = [LRSchedule(s) for s in settings_list]
    steps = np.zeros(N, dtype=np.int64)

    class Work:
        """The rows ``live`` of the per-network tensors. Parameters and optimizer states are copies, written
        back by ``store``; the samples are taken from the previous working set (``prev``), so that at most
        two copies of them exist at once, and one after the first networks stop."""

        def __init__(self, live: np.ndarray, prev: Work | None = None) -> None:
            self.live = live
            idx = torch.from_numpy(live).to(device)
            self.flat = flat_all[idx].clone()
            self.s1, self.s2 = state1_all[idx].clone(), state2_all[idx].clone()
            self.rows = torch.arange(len(live), device=device)[:, None]
            if prev is None:
                self.X_fit, self.Y_fit, self.m_fit, self.X_val, self.Y_val, self.m_val = first.pop()
            else:
                pos = torch.from_numpy(np.searchsorted(prev.live, live)).to(device)
                self.X_fit, self.Y_fit, self.m_fit = prev.X_fit[pos], prev.Y_fit[pos], prev.m_fit[pos]
                self.X_val, self.Y_val, self.m_val = prev.X_val[pos], prev.Y_val[pos], prev.m_val[pos]
            self.wd, self.mom = wd_all[idx], mom_all[idx]
            self.y_var = y_var[live]

        def store(self) -> None:
            idx = torch.from_numpy(self.live).to(device)
            flat_all[idx] = self.flat.detach()
            state1_all[idx], state2_all[idx] = self.s1, self.s2

        def evaluate(self, part: str) -> tuple[np.ndarray, np.ndarray]:
            """Loss (data scale) and accuracy (classification; NaN otherwise) of every live network."""
            x, yv, m = (self.X_fit, self.Y_fit, self.m_fit) if part == "fit" else (self.X_val, self.Y_val, self.m_val)
            with torch.no_grad():
                out = forward(self.flat, x)
                loss = losses(out, yv, m).cpu().numpy().astype(np.float64) * self.y_var
                if not classify:
                    return loss, np.full(len(self.live), math.nan)
                pred = (out[:, :, 0] > 0).long() if n_out == 1 else out.argmax(dim=2)
                acc = ((pred == yv[:, :, 0].long()).double() * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
            return loss, acc.cpu().numpy()

    all_rows = torch.arange(N, device=device)[:, None]
    first = [(Xstd[all_rows, fit_idx_all], Ystd[all_rows, fit_idx_all], fit_mask_all,
              Xstd[all_rows, val_idx_all], Ystd[all_rows, val_idx_all], val_mask_all)]
    del Xstd, Ystd  # every sample is in the fit and validation tensors now, which the working sets hold
    work = Work(np.arange(N))
    limit = DIVERGENCE_FACTOR * np.maximum(1.0, work.evaluate("fit")[0] / y_var)
    histories: list[list[tuple[float, ...]]] = [[] for _ in range(N)]
    best_score = np.full(N, math.inf)
    best_epoch = np.zeros(N, dtype=int)
    best_flat = flat_all.detach().clone()
    active = np.ones(N, dtype=bool)
    epochs_run = np.zeros(N, dtype=int)
    stopped_early = np.zeros(N, dtype=bool)
    pruned = np.zeros(N, dtype=bool)
    start = time.perf_counter()
    last_report = start
    max_epochs = int(epochs.max())
    epoch = 0
    while active.any():
        epoch += 1
        live = work.live
        L = len(live)
        lr_e = lr[live] * np.array([schedules[i].factor(epoch) for i in live])
        # each network's batch order as train_mlp draws it, its padding at the end
        nf = int(n_fit[live].max())
        order = torch.empty(L, nf, dtype=torch.int64)
        for j, i in enumerate(live):
            order[j, :n_fit[i]] = torch.randperm(int(n_fit[i]), generator=gens[i])
            order[j, n_fit[i]:] = torch.arange(int(n_fit[i]), nf)
        order = order.to(device)
        Xe, Ye, Me = work.X_fit[work.rows, order], work.Y_fit[work.rows, order], work.m_fit[work.rows, order]
        for j, i in enumerate(live):  # input noise, drawn after the batch order as train_mlp draws it (Xe is a copy)
            if noise_sd[i] > 0:
                Xe[j, :n_fit[i]] += (torch.randn(int(n_fit[i]), p, generator=gens[i]) * noise_sd[i]).to(device)
        for b in range(0, nf, batch):
            has = n_fit[live] > b  # networks with samples in this batch take a step, the others wait
            xb, yb, mb = Xe[:, b:b + batch], Ye[:, b:b + batch], Me[:, b:b + batch]
            steps[live[has]] += 1
            with torch.no_grad():
                flat = work.flat
                g = gradient(flat, xb, yb, mb)
                every = bool(has.all())  # the usual case: every network steps, no masking needed
                stepping = None if every else torch.from_numpy(has).to(device)[:, None]
                if use_wd:
                    g = g + work.wd * flat
                if adam:
                    t = steps[live].astype(np.float64)
                    bc1 = 1 - _BETA1 ** t
                    bc2_sqrt = np.sqrt(1 - _BETA2 ** t)
                    # every network at the same rate and step (the usual case): PyTorch's fused kernel, which a
                    # failure switches off for good; otherwise, or then, the rule written out
                    uniform = every and bool((lr_e == lr_e[0]).all() and (t == t[0]).all())
                    stepped = uniform and fused and _fused_adam_step(flat, g, work.s1, work.s2, step_t, t[0], lr_e[0])
                    fused = fused and (stepped or not uniform)
                    if not stepped:
                        neg_step = torch.tensor(-(lr_e / bc1), dtype=torch.float32, device=device)[:, None]
                        bc2_t = torch.tensor(bc2_sqrt, dtype=torch.float32, device=device)[:, None]
                        if every:  # moments and parameters updated in place
                            work.s1.lerp_(g, 1 - _BETA1)
                            work.s2.mul_(_BETA2).addcmul_(g, g, value=1 - _BETA2)
                            flat.addcdiv_(work.s1 * neg_step, (work.s2.sqrt().div_(bc2_t)).add_(_EPS))
                        else:
                            s1 = torch.lerp(work.s1, g, 1 - _BETA1)
                            s2 = (work.s2 * _BETA2).addcmul_(g, g, value=1 - _BETA2)
                            new = flat + (neg_step * s1) / (s2.sqrt() / bc2_t).add_(_EPS)
                            work.s1 = torch.where(stepping, s1, work.s1)
                            work.s2 = torch.where(stepping, s2, work.s2)
                            flat.copy_(torch.where(stepping, new, flat))
                else:
                    first = torch.from_numpy(steps[live] == 1).to(device)[:, None]
                    s1 = torch.where(first, g, work.mom * work.s1 + g)
                    work.s1 = s1 if every else torch.where(stepping, s1, work.s1)
                    neg_lr = torch.tensor(-lr_e, dtype=torch.float32, device=device)[:, None]
                    new = flat + neg_lr * s1
                    flat.copy_(new if every else torch.where(stepping, new, flat))
        fit_pass = record_train_loss or not use_val[live].all()
        if fit_pass:
            train_loss, train_acc = work.evaluate("fit")
        else:
            train_loss, train_acc = np.full(L, math.nan), np.full(L, math.nan)
        if use_val[live].any():
            val_loss, val_acc = work.evaluate("val")
        else:
            val_loss, val_acc = np.full(L, math.nan), np.full(L, math.nan)
        for j, i in enumerate(live):
            records = record_train_loss or not use_val[i]
            tl = float(train_loss[j]) if records else math.nan
            vl = float(val_loss[j]) if use_val[i] else math.nan
            # every parameter enters every sample's output (an infinite weight times a zero activation is NaN
            # too), so a finite training (or validation) loss means finite parameters: no separate scan is needed
            watched, what = (tl, "training") if records else (vl, "validation")
            if not math.isfinite(watched) or watched / y_var[i] > limit[i]:
                raise ModelError(
                    f"Target {names[i]!r}: training diverged at epoch {epoch} ({what} loss {watched:.4g}, "
                    f"against {loss_unit_name(s0.loss, task)} of the target of {y_var[i]:.4g}). Lower mlp.lr (now "
                    f"{settings_list[i].lr:g})."
                )
            histories[i].append((epoch, tl, vl, float(train_acc[j]), float(val_acc[j]) if use_val[i] else math.nan)
                                if classify else (epoch, tl, vl))
            epochs_run[i] = epoch
            score = vl if use_val[i] else tl
            schedules[i].end_epoch(score)
            if score < best_score[i]:
                best_score[i], best_epoch[i] = score, epoch
                best_flat[i] = work.flat.detach()[j]
            if patience[i] > 0 and use_val[i] and epoch - best_epoch[i] >= patience[i]:
                stopped_early[i] = True
                active[i] = False
            elif epoch >= epochs[i]:
                active[i] = False
        if prune is not None:
            for i in prune(epoch, best_score, active.copy()):
                if active[i]:
                    pruned[i], active[i] = True, False
        now = time.perf_counter()
        if now - last_report >= 10.0 or not active.any():
            last_report = now
            elapsed = now - start
            shown = ("train_loss", train_loss) if fit_pass else ("val_loss", val_loss)
            log.info("train_many: epoch %d/%d, %d of %d networks still training, median %s=%.5g "
                     "elapsed=%.1fs eta<=%.1fs", epoch, max_epochs, int(active.sum()), N, shown[0],
                     float(np.median(shown[1])), elapsed, elapsed / epoch * (max_epochs - epoch))
        if active.any() and not active[live].all():
            work.store()
            work = Work(np.flatnonzero(active), work)
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
            "pruned": bool(pruned[i]),
            "n_fit": int(n_fit[i]),
            "n_val": int(n_val[i]),
            "device": str(device),
            "seconds": seconds,
        }
        results.append((model, pd.DataFrame(histories[i], columns=CLASS_HISTORY_COLUMNS if classify
                                            else HISTORY_COLUMNS), info))
    return results
