"""Neural networks that predict a target gene from predictor genes (PyTorch).

A network with no hidden layer and identity activation is multiple regression:
``y = W x + b``. Hidden layers with ReLU, tanh or sigmoid activations learn
non-linear relations and interactions that regression needs hand-written
terms for.

The network standardises its inputs and output internally with statistics of
the samples it was trained on; they are buffers of the module, so the saved
state dict is all that is needed to predict (no pickled objects).
"""

from __future__ import annotations

import io
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ConfigError, InputError, ModelError

log = logging.getLogger(__name__)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss"]
CLASS_HISTORY_COLUMNS = [*HISTORY_COLUMNS, "train_accuracy", "val_accuracy"]
"""History of a classification network: the losses are mean cross-entropy (nats)."""
LR_SCHEDULES = ("constant", "cosine", "plateau")
REFITS = ("cv_epochs", "early_stopping")
"""How the chosen network is refitted on the training split (:func:`gexpred.search.search_network`)."""
TASKS = ("regression", "classification")
LOSSES = ("mse", "mae", "huber")
"""Training losses of a regression network: mean squared error (the network estimates the conditional
mean; with no hidden layer it is OLS), mean absolute error (the conditional median; robust to the
heavy tails of expression data) and Huber's loss (squared within ``huber_delta`` target SDs, absolute beyond)."""
DIVERGENCE_FACTOR = 1e4
"""Training counts as diverged when the training loss, in units of the target's
variance (its SD for ``mae``), exceeds this multiple of the untrained network's loss
(or of 1, the loss of predicting the mean, whichever is larger)."""


def loss_unit(loss: str, y_scale: float) -> float:
    """Factor that puts a regression loss computed on the standardised target on the target's data scale.

    Absolute errors scale with the target's SD (``mae``), squared errors with its variance (``mse``;
    ``huber`` too: Huber's loss with threshold ``delta`` on the standardised target is ``1 / sd**2`` times
    Huber's loss with threshold ``delta * sd`` on the data scale).
    """
    return float(y_scale) if loss == "mae" else float(y_scale) ** 2


def loss_unit_name(loss: str, task: str = "regression") -> str:
    """What :func:`loss_unit` is, for messages: ``an SD`` for ``mae`` regression, ``a variance`` otherwise."""
    return "an SD" if loss == "mae" and task != "classification" else "a variance"


def regression_loss(settings: MLPSettings) -> nn.Module:
    """The training loss of a regression network (``settings.loss``), on the standardised target."""
    if settings.loss == "mae":
        return nn.L1Loss()
    if settings.loss == "huber":
        return nn.HuberLoss(delta=settings.huber_delta)
    return nn.MSELoss()


@dataclass
class MLPSettings:
    """Architecture and training settings (the ``mlp`` section of the config)."""

    hidden: list[int] = field(default_factory=lambda: [32, 16])
    activation: str = "relu"
    dropout: float = 0.0
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 500
    batch_size: int = 32
    weight_decay: float = 0.0
    patience: int = 50
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    lr_schedule: str = "constant"
    lr_factor: float = 0.5
    lr_patience: int = 10
    ensemble: int = 1
    refit: str = "early_stopping"
    loss: str = "mse"
    huber_delta: float = 1.0
    input_noise: float = 0.0

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> MLPSettings:
        """Build settings from a config mapping, ignoring keys that are not settings.

        Raises
        ------
        ConfigError
            If a value has the wrong type or is out of range.
        """
        if not isinstance(cfg, dict):
            raise ConfigError(f"The mlp settings must be a mapping of setting names to values; got {cfg!r}.")
        names = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in cfg.items() if k in names})
        if isinstance(s.hidden, (str, bytes)) or not isinstance(s.hidden, (list, tuple)):
            raise ConfigError(f"mlp.hidden must be a list of layer widths ([] for no hidden layer); got {s.hidden!r}.")
        if not all(_is_int(h) for h in s.hidden) or any(int(h) < 1 for h in s.hidden):
            raise ConfigError(f"mlp.hidden widths must be positive integers; got {s.hidden}.")
        s.hidden = [int(h) for h in s.hidden]
        if s.activation not in ACTIVATIONS:
            raise ConfigError(f"mlp.activation must be one of {', '.join(ACTIVATIONS)}; got {s.activation!r}.")
        if s.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"mlp.optimizer must be 'adam' or 'sgd'; got {s.optimizer!r}.")
        if s.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"mlp.lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {s.lr_schedule!r}.")
        if s.loss not in LOSSES:
            raise ConfigError(f"mlp.loss must be one of {', '.join(LOSSES)}; got {s.loss!r}.")
        if s.refit not in REFITS:
            raise ConfigError(f"mlp.refit must be one of {', '.join(REFITS)}; got {s.refit!r}.")
        if s.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"mlp.device must be 'auto', 'cpu' or 'cuda'; got {s.device!r}.")
        # name, lower bound, whether the lower bound is excluded, exclusive upper bound
        for name, low, low_open, high in (
            ("lr", 0.0, True, math.inf),
            ("dropout", 0.0, False, 1.0),
            ("momentum", 0.0, False, 1.0),
            ("weight_decay", 0.0, False, math.inf),
            ("input_noise", 0.0, False, math.inf),
            ("val_fraction", 0.0, False, 1.0),
            ("lr_factor", 0.0, True, 1.0),
            ("huber_delta", 0.0, True, math.inf),
        ):
            v = getattr(s, name)
            if not _is_number(v) or not (v > low if low_open else v >= low) or not v < high:
                hi = "" if math.isinf(high) else f" and < {high:g}"
                raise ConfigError(f"mlp.{name} must be a number {'>' if low_open else '>='} {low:g}{hi}; got {v!r}.")
            setattr(s, name, float(v))
        for name, low in (("epochs", 1), ("batch_size", 1), ("patience", 0), ("seed", 0), ("lr_patience", 1),
                          ("ensemble", 1)):
            v = getattr(s, name)
            if not _is_int(v) or int(v) < low:
                raise ConfigError(f"mlp.{name} must be an integer >= {low}; got {v!r}.")
            setattr(s, name, int(v))
        return s


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


class GeneMLP(nn.Module):
    """Fully connected network ``n_in -> hidden... -> n_out``.

    Parameters
    ----------
    n_in
        Number of predictor genes.
    hidden
        Widths of the hidden layers; ``[]`` gives a linear model.
    activation
        Activation after every hidden layer (``relu``, ``tanh``, ``sigmoid``,
        ``identity``).
    n_out
        Number of outputs (1 for one target gene).
    dropout
        Dropout probability after every hidden activation.
    """

    def __init__(self, n_in: int, hidden: list[int], activation: str = "relu", n_out: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)
        self.register_buffer("x_mean", torch.zeros(n_in))
        self.register_buffer("x_scale", torch.ones(n_in))
        self.register_buffer("y_mean", torch.zeros(n_out))
        self.register_buffer("y_scale", torch.ones(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised output for inputs on the data scale."""
        return self.net((x - self.x_mean) / self.x_scale)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Output on the data scale of the target."""
        return self.forward(x) * self.y_scale + self.y_mean


class EnsembleMLP(nn.Module):
    """Average of several :class:`GeneMLP` networks of one architecture (a deep ensemble).

    Each member was trained on the same samples from its own initial weights,
    batch order and validation part (seeds ``seed, seed + 1, ...``); the
    ensemble predicts the mean of the members' predictions (regression) or of
    their class probabilities (classification, :func:`predict_proba`).
    Averaging networks that differ only by the randomness of their training
    removes most of that randomness from the prediction, which is what small
    training sets suffer from most (Lakshminarayanan et al. 2017).
    """

    def __init__(self, members: list[GeneMLP]) -> None:
        super().__init__()
        if not members:
            raise ValueError("EnsembleMLP needs at least one member")
        self.members = nn.ModuleList(members)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the members' outputs on the data scale of the target."""
        return torch.stack([m.predict(x) for m in self.members]).mean(dim=0)


def members_of(model: GeneMLP | EnsembleMLP) -> list[GeneMLP]:
    """The networks of ``model``: its members for an ensemble, else itself alone."""
    return list(model.members) if isinstance(model, EnsembleMLP) else [model]


def resolve_device(setting: str) -> torch.device:
    """Turn ``auto|cpu|cuda`` into a device, saying plainly when CUDA is not used."""
    if setting == "cpu":
        return torch.device("cpu")
    if setting in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if setting == "cuda":
            log.warning("mlp.device is 'cuda' but no CUDA device is available: training on the CPU instead")
        else:
            log.info("no CUDA device available: training on the CPU")
        return torch.device("cpu")
    raise ConfigError(f"mlp.device must be 'auto', 'cpu' or 'cuda'; got {setting!r}.")


def _split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation) carved from ``n`` training samples."""
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 2:
        return np.arange(n), np.arange(0)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class LRSchedule:
    """Learning-rate multiplier per epoch (``mlp.lr_schedule``), shared by both trainers.

    * ``constant``: 1.
    * ``cosine``: ``(1 + cos(pi (e - 1) / epochs)) / 2`` at epoch ``e`` (1-based),
      from 1 down towards 0 at the last epoch.
    * ``plateau``: starts at 1 and is multiplied by ``lr_factor`` whenever the
      monitored loss (validation loss, or training loss without a validation
      part) has not improved for ``lr_patience`` epochs, as
      ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (threshold 0) does.
    """

    def __init__(self, settings: MLPSettings) -> None:
        self.kind = settings.lr_schedule
        self.epochs = settings.epochs
        self.lr_factor = settings.lr_factor
        self.lr_patience = settings.lr_patience
        self._plateau = 1.0
        self._best = math.inf
        self._bad = 0

    def factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` for the updates of ``epoch`` (1-based)."""
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / self.epochs))
        if self.kind == "plateau":
            return self._plateau
        return 1.0

    def end_epoch(self, score: float) -> None:
        """Record the monitored loss of the epoch just finished."""
        if self.kind != "plateau":
            return
        if score < self._best:
            self._best, self._bad = score, 0
        else:
            self._bad += 1
            if self._bad > self.lr_patience:
                self._plateau *= self.lr_factor
                self._bad = 0


class Optimizer:
    """Adam or SGD as ``torch.optim.Adam`` / ``torch.optim.SGD`` compute them on the CPU.

    The same update rules (L2 ``weight_decay`` added to the gradient; Adam's
    bias-corrected moments with ``betas=(0.9, 0.999)``, ``eps=1e-8``; SGD's
    momentum buffer starting at the first gradient, no dampening or Nesterov)
    in the same operations as torch's single-tensor implementations, without
    ``torch.optim``: constructing its first optimizer imports ``torch._dynamo``,
    about a second of every network job's start-up, longer than many small
    networks take to train. :mod:`gexpred.batched_nn` applies the same rules to
    stacked parameters. tests/test_nn.py holds it to ``torch.optim``.
    """

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, params: Any, settings: MLPSettings) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.adam = settings.optimizer == "adam"
        self.weight_decay = float(settings.weight_decay)
        self.momentum = float(settings.momentum)
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params] if self.adam else []
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params] if self.adam else []
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        """Forget the gradients (``set_to_none``, as torch.optim does by default)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One update of every parameter that has a gradient, with learning rate ``lr``."""
        self.steps += 1
        beta1, beta2 = self.BETAS
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if self.weight_decay != 0:
                g = g.add(p, alpha=self.weight_decay)
            if self.adam:
                m, v = self.exp_avg[i], self.exp_avg_sq[i]
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bias1 = 1 - beta1 ** self.steps
                bias2_sqrt = math.sqrt(1 - beta2 ** self.steps)
                denom = (v.sqrt() / bias2_sqrt).add_(self.EPS)
                p.addcdiv_(m, denom, value=-(lr / bias1))
            else:
                if self.momentum != 0:
                    buf = self.buffers[i]
                    if buf is None:
                        buf = self.buffers[i] = torch.clone(g).detach()
                    else:
                        buf.mul_(self.momentum).add_(g)
                    g = buf
                p.add_(g, alpha=-lr)


def n_outputs(task: str, n_classes: int | None, n_targets: int = 1) -> int:
    """Output units: one per target for regression, 1 for binary classification (a logit), else one per class."""
    if task == "regression":
        return int(n_targets)
    if task != "classification":
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if n_classes is None or n_classes < 2:
        raise ModelError(f"A classification network needs at least 2 classes; got {n_classes}.")
    return 1 if n_classes == 2 else int(n_classes)


def initial_model(X: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, settings: MLPSettings,
                  task: str = "regression", n_classes: int | None = None) -> GeneMLP:
    """A freshly initialised network whose standardisation buffers hold the fit part's statistics.

    The weights come from torch's global generator: the caller seeds it (inside
    ``torch.random.fork_rng``), so that :func:`train_mlp` and
    :func:`gexpred.batched_nn.train_many` start every network identically.

    Parameters
    ----------
    X, y
        float32 samples x predictors and target column (n x 1; class codes for
        classification).
    fit_idx
        Rows the network learns from (the validation part excluded).
    settings
        Architecture.
    task, n_classes
        ``classification`` leaves the output unstandardised (``y_mean`` 0,
        ``y_scale`` 1): the outputs are logits.

    Notes
    -----
    An input that takes one value over the fit part (a covariate level whose samples are all held out, a
    gene non-zero in one sample) carries no information there: its mean is that value exactly and its scale
    1, so it enters training as 0, and its first-layer weights start (and, without input noise or weight
    decay, stay) at 0, so the network ignores it where its value differs. Its float32 standard deviation
    is often not 0 but a rounding residue (~1e-8), which as a scale made such a sample's standardised input
    ~1e8 and its prediction absurd.
    """
    n_out = n_outputs(task, n_classes, y.shape[1] if np.ndim(y) == 2 else 1)
    model = GeneMLP(X.shape[1], settings.hidden, settings.activation, n_out, settings.dropout)
    Xf, yf = X[fit_idx], y[fit_idx]
    constant = (Xf.max(axis=0) == Xf.min(axis=0)) if len(Xf) else np.zeros(X.shape[1], dtype=bool)
    x_mean = Xf.mean(axis=0)
    x_scale = Xf.std(axis=0)
    if constant.any():
        x_mean = np.where(constant, Xf[0], x_mean).astype(x_mean.dtype)
        x_scale = np.where(constant, 1.0, x_scale).astype(x_scale.dtype)
        with torch.no_grad():
            model.net[0].weight[:, torch.from_numpy(constant)] = 0.0
    model.x_mean.copy_(torch.from_numpy(x_mean))
    model.x_scale.copy_(torch.from_numpy(np.where(x_scale > 0, x_scale, 1.0).astype(np.float32)))
    if task == "regression":
        y_scale = yf.std(axis=0)
        model.y_mean.copy_(torch.from_numpy(yf.mean(axis=0)))
        model.y_scale.copy_(torch.from_numpy(np.where(y_scale > 0, y_scale, 1.0).astype(np.float32)))
    return model


def _check_codes(y: np.ndarray, n_classes: int, target: str) -> np.ndarray:
    codes = np.asarray(y).reshape(-1)
    if not np.all(np.isfinite(codes)) or np.any(codes != np.round(codes)) or codes.min() < 0 \
            or codes.max() >= n_classes:
        raise ModelError(f"Target {target!r}: class codes must be integers 0..{n_classes - 1}.")
    return codes.astype(np.int64)


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    settings: MLPSettings,
    target: str = "target",
    task: str = "regression",
    n_classes: int | None = None,
) -> tuple[GeneMLP, pd.DataFrame, dict[str, Any]]:
    """Train a network on (X, y): ``settings.loss`` for regression, cross-entropy for classification.

    A validation part (``settings.val_fraction``) is carved from the samples
    given, deterministically from the seed; with ``patience > 0`` training
    stops when the validation loss has not improved for ``patience`` epochs,
    and the weights of the best epoch are kept. The learning rate follows
    ``settings.lr_schedule`` (:class:`LRSchedule`).

    Parameters
    ----------
    X
        Training samples x predictors, on the (normalised) data scale.
    y
        Target values, same samples: one column, or samples x targets for a
        multi-output network (one network predicting many targets, as D-GEX
        does); for classification, class codes ``0 .. n_classes - 1``.
    settings
        Architecture and training settings.
    target
        Name used in log lines.
    task
        ``regression`` (identity output, the loss ``settings.loss``) or
        ``classification``: sigmoid output and binary cross-entropy for two
        classes, softmax and cross-entropy for more.
    n_classes
        Number of classes (classification only).

    Returns
    -------
    model : GeneMLP
        On the CPU, in eval mode.
    history : pandas.DataFrame
        ``epoch, train_loss, val_loss``: the training loss on the data scale
        of the target (mean squared or absolute error, or Huber's loss with
        threshold ``huber_delta`` target SDs; for several targets: the mean
        over targets of the loss in units of each target's training variance,
        or SD for ``mae``; mean cross-entropy for
        classification, with
        ``train_accuracy, val_accuracy``), evaluated after each epoch (the
        validation columns empty without a validation part).
    info : dict
        ``best_epoch``, ``epochs_run``, ``stopped_early``, ``n_fit``, ``n_val``,
        ``device``, ``seconds``.
    """
    X = np.asarray(X, dtype=np.float32)
    classify = task == "classification"
    if classify:
        codes = _check_codes(y, int(n_classes), target)
        y = codes.astype(np.float32).reshape(-1, 1)
    else:
        y = np.asarray(y, dtype=np.float32)
        y = y.reshape(-1, 1) if y.ndim == 1 else y
    n_out = n_outputs(task, n_classes, y.shape[1])
    multi = not classify and n_out > 1
    n, p = X.shape
    if n < 3:
        raise ModelError(f"Target {target!r}: {n} training samples are too few to train a network.")
    device = resolve_device(settings.device)
    fit_idx, val_idx = _split_validation(n, settings.val_fraction, settings.seed)
    use_val = len(val_idx) > 0

    # Leave the caller's random number generators as they were (the CUDA ones too
    # when training there: torch.manual_seed seeds every device).
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(settings.seed)
        model = initial_model(X, y, fit_idx, settings, task, n_classes)
        model.to(device)

        Xt = torch.from_numpy(X).to(device)
        if not classify:
            yt = ((torch.from_numpy(y).to(device)) - model.y_mean) / model.y_scale
            loss_fn: nn.Module = regression_loss(settings)
        elif n_out == 1:
            yt = torch.from_numpy(y).to(device)
            loss_fn = nn.BCEWithLogitsLoss()
        else:
            yt = torch.from_numpy(codes).to(device)
            loss_fn = nn.CrossEntropyLoss()
        fit_t = torch.from_numpy(fit_idx).to(device)
        val_t = torch.from_numpy(val_idx).to(device)
        opt = Optimizer(model.parameters(), settings)
        schedule = LRSchedule(settings)
        gen = torch.Generator(device="cpu").manual_seed(settings.seed)
        noise = float(settings.input_noise)
        batch = max(1, min(int(settings.batch_size), len(fit_idx)))
        # single target: losses on its data scale; several: in units of each target's variance (SD for mae)
        y_var = loss_unit(settings.loss, model.y_scale.item()) if not (classify or multi) else 1.0

        def evaluate(idx: torch.Tensor) -> tuple[float, float]:
            """Loss (data scale) and, for classification, accuracy of the samples ``idx``."""
            model.eval()
            with torch.no_grad():
                out = model(Xt[idx])
                loss = float(loss_fn(out, yt[idx]).item()) * y_var
                if not classify:
                    return loss, math.nan
                pred = (out[:, 0] > 0).long() if n_out == 1 else out.argmax(dim=1)
                truth = yt[idx].view(-1).long()
                return loss, float((pred == truth).double().mean().item())

        def diverged(loss: float) -> bool:
            if not math.isfinite(loss) or loss / y_var > limit:
                return True
            return not all(bool(torch.isfinite(t).all()) for t in model.parameters())

        limit = DIVERGENCE_FACTOR * max(1.0, evaluate(fit_t)[0] / y_var)
        history: list[tuple[float, ...]] = []
        best = (math.inf, 0)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        start = time.perf_counter()
        report_every = max(1, settings.epochs // 10)
        stopped_early = False
        epoch = 0
        for epoch in range(1, settings.epochs + 1):
            lr_now = settings.lr * schedule.factor(epoch)
            model.train()
            order = fit_t[torch.randperm(len(fit_idx), generator=gen).to(device)]
            if noise > 0:  # the epoch's input noise, drawn after its batch order (as train_many draws it)
                jitter = (torch.randn(len(order), Xt.shape[1], generator=gen) * noise).to(device) * model.x_scale
            for b in range(0, len(order), batch):
                idx = order[b:b + batch]
                opt.zero_grad()
                xb = Xt[idx] + jitter[b:b + batch] if noise > 0 else Xt[idx]
                loss = loss_fn(model(xb), yt[idx])
                loss.backward()
                opt.step(lr_now)
            train_loss, train_acc = evaluate(fit_t)
            val_loss, val_acc = evaluate(val_t) if use_val else (math.nan, math.nan)
            if diverged(train_loss):
                raise ModelError(
                    f"Target {target!r}: training diverged at epoch {epoch} (training loss {train_loss:.4g}, "
                    f"against {loss_unit_name(settings.loss, task)} of the target of {y_var:.4g}). Lower mlp.lr "
                    f"(now {settings.lr:g})."
                )
            history.append((epoch, train_loss, val_loss, train_acc, val_acc) if classify
                           else (epoch, train_loss, val_loss))
            score = val_loss if use_val else train_loss
            schedule.end_epoch(score)
            if score < best[0]:
                best = (score, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if epoch % report_every == 0 or epoch == 1:
                elapsed = time.perf_counter() - start
                eta = elapsed / epoch * (settings.epochs - epoch)
                acc = f" train_accuracy={train_acc:.3f} val_accuracy={val_acc:.3f}" if classify else ""
                log.info("%s epoch %d/%d train_loss=%.5g val_loss=%.5g%s lr=%.3g elapsed=%.1fs eta<=%.1fs",
                         target, epoch, settings.epochs, train_loss, val_loss, acc, lr_now, elapsed, eta)
            if settings.patience > 0 and use_val and epoch - best[1] >= settings.patience:
                stopped_early = True
                log.info("%s: early stop at epoch %d (best validation loss %.5g at epoch %d)",
                         target, epoch, best[0], best[1])
                break
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    info = {
        "best_epoch": int(best[1]),
        "epochs_run": int(epoch),
        "stopped_early": stopped_early,
        "pruned": False,
        "n_fit": int(len(fit_idx)),
        "n_val": int(len(val_idx)),
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 3),
    }
    hist = pd.DataFrame(history, columns=CLASS_HISTORY_COLUMNS if classify else HISTORY_COLUMNS)
    return model, hist, info


def member_settings(settings: MLPSettings) -> list[MLPSettings]:
    """Settings of each member of the ensemble ``settings`` asks for: seeds ``seed, seed + 1, ...``."""
    from dataclasses import replace

    return [replace(settings, seed=settings.seed + m, ensemble=1) for m in range(settings.ensemble)]


def train_ensemble(
    X: np.ndarray,
    y: np.ndarray,
    settings: MLPSettings,
    target: str = "target",
    task: str = "regression",
    n_classes: int | None = None,
) -> tuple[GeneMLP | EnsembleMLP, pd.DataFrame, dict[str, Any]]:
    """Train ``settings.ensemble`` networks on (X, y) and average them.

    Member ``m`` is :func:`train_mlp` with seed ``settings.seed + m``: its own
    initial weights, batch order and validation part (so between them the
    members early-stop on different samples). Members are trained as one
    vectorised program (:func:`gexpred.batched_nn.train_many`) where they can
    be (no dropout), one at a time otherwise; either way each equals what
    ``train_mlp`` gives for its seed to float rounding. With ``ensemble: 1``
    this is ``train_mlp`` itself.

    Returns
    -------
    model : GeneMLP or EnsembleMLP
    history : pandas.DataFrame
        As :func:`train_mlp`, with a leading ``member`` column (1-based) when
        there are several members.
    info : dict
        As :func:`train_mlp` for the first member, plus ``members``: the
        ``best_epoch``, ``epochs_run``, ``stopped_early``, ``n_fit`` and
        ``n_val`` of every member.
    """
    if settings.ensemble <= 1:
        return train_mlp(X, y, settings, target, task, n_classes)
    each = member_settings(settings)
    names = member_names(target, len(each))
    start = time.perf_counter()
    if settings.dropout == 0 and (task == "classification" or np.ndim(y) == 1 or np.shape(y)[1] == 1):
        from .batched_nn import train_many

        trained = train_many([X] * len(each), [y] * len(each), each, names, task, n_classes)
    else:
        trained = [train_mlp(X, y, s, name, task, n_classes) for s, name in zip(each, names)]
    return assemble_ensemble(trained, target, time.perf_counter() - start)


def member_names(target: str, n: int) -> list[str]:
    """How log lines and errors name the members of an ensemble."""
    return [f"{target} (ensemble member {m + 1})" for m in range(n)]


def assemble_ensemble(trained: Sequence[tuple[GeneMLP, pd.DataFrame, dict[str, Any]]], target: str,
                      seconds: float) -> tuple[GeneMLP | EnsembleMLP, pd.DataFrame, dict[str, Any]]:
    """What :func:`train_ensemble` returns, from its members as :func:`train_mlp` returned them.

    One member is returned as it is (``seconds`` its wall time); several are
    averaged by an :class:`EnsembleMLP`, their histories stacked with a leading
    ``member`` column and their infos under ``members``.
    """
    if len(trained) == 1:
        model, history, info = trained[0]
        return model, history, {**info, "seconds": round(seconds, 3)}
    model = EnsembleMLP([m for m, _, _ in trained]).eval()
    history = pd.concat([h.assign(member=m + 1) for m, (_, h, _) in enumerate(trained)], ignore_index=True)
    history = history[["member", *[c for c in history.columns if c != "member"]]]
    keep = ("best_epoch", "epochs_run", "stopped_early", "n_fit", "n_val")
    info = dict(trained[0][2])
    info["seconds"] = round(seconds, 3)
    info["members"] = [{k: i[k] for k in keep} for _, _, i in trained]
    log.info("%s: ensemble of %d networks trained in %.1fs (best epochs %s)", target, len(trained), info["seconds"],
             ", ".join(str(i["best_epoch"]) for _, _, i in trained))
    return model, history, info


def predict(model: GeneMLP | EnsembleMLP, X: np.ndarray) -> np.ndarray:
    """Predict the target (data scale) for samples x predictors ``X``: one value per sample, or samples x
    targets for a multi-output network."""
    model.eval()
    with torch.no_grad():
        out = model.predict(torch.from_numpy(np.asarray(X, dtype=np.float32)))
    out = out.numpy().astype(np.float64)
    return out[:, 0] if out.shape[1] == 1 else out


def predict_proba(model: GeneMLP | EnsembleMLP, X: np.ndarray) -> np.ndarray:
    """Class probabilities (samples x classes) of a classification network.

    One output unit is a binary network: ``[1 - sigmoid(z), sigmoid(z)]``; more
    are softmax over the classes. An ensemble averages its members' probabilities.
    """
    if isinstance(model, EnsembleMLP):
        return np.mean([predict_proba(m, X) for m in model.members], axis=0)
    model.eval()
    with torch.no_grad():
        z = model.forward(torch.from_numpy(np.asarray(X, dtype=np.float32))).double()
        if z.shape[1] == 1:
            p1 = torch.sigmoid(z[:, 0])
            return torch.stack([1.0 - p1, p1], dim=1).numpy()
        return torch.softmax(z, dim=1).numpy()


def linear_coefficients(model: GeneMLP | EnsembleMLP) -> tuple[float | np.ndarray, np.ndarray]:
    """Intercept and slopes, on the data scale, of a network without hidden layers.

    Only defined for a single ``Linear`` layer (``hidden: []``), which is
    multiple regression: ``y = b0 + sum_j b_j x_j``. The mean of linear models
    is linear: an ensemble's are its members' means. A multi-output network
    (one output per target) gives one intercept per output and an outputs x
    inputs matrix of slopes; a single output, a float and a vector.
    """
    if isinstance(model, EnsembleMLP):
        parts = [linear_coefficients(m) for m in model.members]
        b0 = np.mean([np.atleast_1d(b) for b, _ in parts], axis=0)
        slopes = np.mean([w for _, w in parts], axis=0)
        return (float(b0[0]) if slopes.ndim == 1 else b0), slopes
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    if len(linears) != 1:
        raise ValueError("linear_coefficients() needs a network without hidden layers (hidden: [])")
    W = linears[0].weight.detach().double().numpy()  # outputs x inputs
    b = linears[0].bias.detach().double().numpy()
    xm, xs = model.x_mean.double().numpy(), model.x_scale.double().numpy()
    ym, ys = model.y_mean.double().numpy(), model.y_scale.double().numpy()
    slopes = W / xs[None, :] * ys[:, None]
    intercept = ym + ys * (b - W @ (xm / xs))
    if len(b) == 1:
        return float(intercept[0]), slopes[0]
    return intercept, slopes


def architecture(model: GeneMLP | EnsembleMLP, settings: MLPSettings) -> dict[str, Any]:
    """The JSON description needed to rebuild ``model`` before loading its state dict.

    ``ensemble`` is the number of member networks (1: a single :class:`GeneMLP`).
    """
    first = members_of(model)[0]
    return {
        "n_in": int(first.x_mean.shape[0]),
        "hidden": list(settings.hidden),
        "activation": settings.activation,
        "n_out": int(first.y_mean.shape[0]),
        "dropout": float(settings.dropout),
        "ensemble": len(members_of(model)),
    }


def save_state(model: GeneMLP | EnsembleMLP, path: str | Path) -> None:
    """Save the state dict (tensors only) atomically."""
    from .io import atomic_output

    # through memory: torch.save names its zip records after the file, and the temporary file's
    # random name would make the bytes differ from run to run
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_model(state_path: str | Path, arch: dict[str, Any]) -> GeneMLP | EnsembleMLP:
    """Rebuild a network (or an ensemble, ``arch["ensemble"] > 1``) from its architecture and load its
    weights (no code executed)."""
    def one() -> GeneMLP:
        return GeneMLP(arch["n_in"], list(arch["hidden"]), arch["activation"], arch.get("n_out", 1),
                       arch.get("dropout", 0.0))

    n_members = int(arch.get("ensemble", 1))
    model: GeneMLP | EnsembleMLP = EnsembleMLP([one() for _ in range(n_members)]) if n_members > 1 else one()
    try:
        with warnings.catch_warnings():  # torch's note on a foreign pickle protocol: the refusal below says it all
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file, or a pickle with anything but tensors: refused, never executed
        raise InputError(f"'{state_path}' is not a readable tensors-only state dict (torch.load with "
                         f"weights_only=True refused it: {type(exc).__name__}); nothing of it was executed. It is "
                         f"damaged or was replaced; re-create it with the pipeline.") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
        shown = f": {_clip(detail[0].rstrip('.'), 160)}" if detail else ""
        raise InputError(f"The weights in '{state_path}' do not fit the network its model.json describes "
                         f"({arch['n_in']} inputs, hidden layers {list(arch['hidden'])}, {n_members} member"
                         f"{'' if n_members == 1 else 's'}){shown}. The two files do "
                         f"not belong together; re-create them with the pipeline.") from None
    return model.eval()


def _clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, with an ellipsis when cut."""
    return text if len(text) <= n else text[: n - 1] + "…"


def settings_dict(settings: MLPSettings) -> dict[str, Any]:
    """Settings as plain JSON."""
    return asdict(settings)
