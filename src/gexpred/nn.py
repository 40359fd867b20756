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

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import ConfigError, ModelError

log = logging.getLogger(__name__)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss"]
DIVERGENCE_FACTOR = 1e4
"""Training counts as diverged when the training loss, in units of the target's
variance, exceeds this multiple of the untrained network's loss (or of 1, the
loss of predicting the mean, whichever is larger)."""


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
        if s.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"mlp.device must be 'auto', 'cpu' or 'cuda'; got {s.device!r}.")
        # name, lower bound, whether the lower bound is excluded, exclusive upper bound
        for name, low, low_open, high in (
            ("lr", 0.0, True, math.inf),
            ("dropout", 0.0, False, 1.0),
            ("momentum", 0.0, False, 1.0),
            ("weight_decay", 0.0, False, math.inf),
            ("val_fraction", 0.0, False, 1.0),
        ):
            v = getattr(s, name)
            if not _is_number(v) or not (v > low if low_open else v >= low) or not v < high:
                hi = "" if math.isinf(high) else f" and < {high:g}"
                raise ConfigError(f"mlp.{name} must be a number {'>' if low_open else '>='} {low:g}{hi}; got {v!r}.")
            setattr(s, name, float(v))
        for name, low in (("epochs", 1), ("batch_size", 1), ("patience", 0), ("seed", 0)):
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


def initial_model(X: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, settings: MLPSettings) -> GeneMLP:
    """A freshly initialised network whose standardisation buffers hold the fit part's statistics.

    The weights come from torch's global generator: the caller seeds it (inside
    ``torch.random.fork_rng``), so that :func:`train_mlp` and
    :func:`gexpred.batched_nn.train_many` start every network identically.

    Parameters
    ----------
    X, y
        float32 samples x predictors and target column (n x 1).
    fit_idx
        Rows the network learns from (the validation part excluded).
    settings
        Architecture.
    """
    model = GeneMLP(X.shape[1], settings.hidden, settings.activation, 1, settings.dropout)
    Xf, yf = X[fit_idx], y[fit_idx]
    x_scale = Xf.std(axis=0)
    y_scale = yf.std(axis=0)
    model.x_mean.copy_(torch.from_numpy(Xf.mean(axis=0)))
    model.x_scale.copy_(torch.from_numpy(np.where(x_scale > 0, x_scale, 1.0).astype(np.float32)))
    model.y_mean.copy_(torch.from_numpy(yf.mean(axis=0)))
    model.y_scale.copy_(torch.from_numpy(np.where(y_scale > 0, y_scale, 1.0).astype(np.float32)))
    return model


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    settings: MLPSettings,
    target: str = "target",
) -> tuple[GeneMLP, pd.DataFrame, dict[str, Any]]:
    """Train a network on (X, y) with MSE loss.

    A validation part (``settings.val_fraction``) is carved from the samples
    given, deterministically from the seed; with ``patience > 0`` training
    stops when the validation loss has not improved for ``patience`` epochs,
    and the weights of the best epoch are kept.

    Parameters
    ----------
    X
        Training samples x predictors, on the (normalised) data scale.
    y
        Target values, same samples.
    settings
        Architecture and training settings.
    target
        Name used in log lines.

    Returns
    -------
    model : GeneMLP
        On the CPU, in eval mode.
    history : pandas.DataFrame
        ``epoch, train_loss, val_loss``: mean squared error on the data scale
        of the target, evaluated after each epoch (``val_loss`` empty without
        a validation part).
    info : dict
        ``best_epoch``, ``epochs_run``, ``stopped_early``, ``n_fit``, ``n_val``,
        ``device``, ``seconds``.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
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
        model = initial_model(X, y, fit_idx, settings)
        model.to(device)

        Xt = torch.from_numpy(X).to(device)
        yt = ((torch.from_numpy(y).to(device)) - model.y_mean) / model.y_scale
        fit_t = torch.from_numpy(fit_idx).to(device)
        val_t = torch.from_numpy(val_idx).to(device)
        if settings.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr,
                                                          weight_decay=settings.weight_decay)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                  weight_decay=settings.weight_decay)
        gen = torch.Generator(device="cpu").manual_seed(settings.seed)
        batch = max(1, min(int(settings.batch_size), len(fit_idx)))
        loss_fn = nn.MSELoss()
        y_var = float(model.y_scale.item() ** 2)

        def evaluate(idx: torch.Tensor) -> float:
            model.eval()
            with torch.no_grad():
                return float(loss_fn(model(Xt[idx]), yt[idx]).item()) * y_var

        def diverged(loss: float) -> bool:
            if not math.isfinite(loss) or loss / y_var > limit:
                return True
            return not all(bool(torch.isfinite(t).all()) for t in model.parameters())

        limit = DIVERGENCE_FACTOR * max(1.0, evaluate(fit_t) / y_var)
        history: list[tuple[int, float, float]] = []
        best = (math.inf, 0)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        start = time.perf_counter()
        report_every = max(1, settings.epochs // 10)
        stopped_early = False
        epoch = 0
        for epoch in range(1, settings.epochs + 1):
            model.train()
            order = fit_t[torch.randperm(len(fit_idx), generator=gen).to(device)]
            for b in range(0, len(order), batch):
                idx = order[b:b + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            train_loss = evaluate(fit_t)
            val_loss = evaluate(val_t) if use_val else math.nan
            if diverged(train_loss):
                raise ModelError(
                    f"Target {target!r}: training diverged at epoch {epoch} (training loss {train_loss:.4g}, "
                    f"against a variance of the target of {y_var:.4g}). Lower mlp.lr (now {settings.lr:g})."
                )
            history.append((epoch, train_loss, val_loss))
            score = val_loss if use_val else train_loss
            if score < best[0]:
                best = (score, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if epoch % report_every == 0 or epoch == 1:
                elapsed = time.perf_counter() - start
                eta = elapsed / epoch * (settings.epochs - epoch)
                log.info("%s epoch %d/%d train_loss=%.5g val_loss=%.5g elapsed=%.1fs eta<=%.1fs",
                         target, epoch, settings.epochs, train_loss, val_loss, elapsed, eta)
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
        "n_fit": int(len(fit_idx)),
        "n_val": int(len(val_idx)),
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 3),
    }
    hist = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    return model, hist, info


def predict(model: GeneMLP, X: np.ndarray) -> np.ndarray:
    """Predict the target (data scale) for samples x predictors ``X``."""
    model.eval()
    with torch.no_grad():
        out = model.predict(torch.from_numpy(np.asarray(X, dtype=np.float32)))
    return out.numpy()[:, 0].astype(np.float64)


def linear_coefficients(model: GeneMLP) -> tuple[float, np.ndarray]:
    """Intercept and slopes, on the data scale, of a network without hidden layers.

    Only defined for a single ``Linear`` layer (``hidden: []``), which is
    multiple regression: ``y = b0 + sum_j b_j x_j``.
    """
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    if len(linears) != 1:
        raise ValueError("linear_coefficients() needs a network without hidden layers (hidden: [])")
    W = linears[0].weight.detach().double().numpy()[0]
    b = float(linears[0].bias.detach().double().item())
    xm, xs = model.x_mean.double().numpy(), model.x_scale.double().numpy()
    ym, ys = float(model.y_mean.double().item()), float(model.y_scale.double().item())
    slopes = W / xs * ys
    intercept = ym + ys * (b - float(np.sum(W * xm / xs)))
    return intercept, slopes


def architecture(model: GeneMLP, settings: MLPSettings) -> dict[str, Any]:
    """The JSON description needed to rebuild ``model`` before loading its state dict."""
    return {
        "n_in": int(model.x_mean.shape[0]),
        "hidden": list(settings.hidden),
        "activation": settings.activation,
        "n_out": int(model.y_mean.shape[0]),
        "dropout": float(settings.dropout),
    }


def save_state(model: GeneMLP, path: str | Path) -> None:
    """Save the state dict (tensors only) atomically."""
    from .io import atomic_output

    with atomic_output(path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)


def load_model(state_path: str | Path, arch: dict[str, Any]) -> GeneMLP:
    """Rebuild a network from its architecture and load its weights (no code executed)."""
    model = GeneMLP(arch["n_in"], list(arch["hidden"]), arch["activation"], arch.get("n_out", 1),
                    arch.get("dropout", 0.0))
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def settings_dict(settings: MLPSettings) -> dict[str, Any]:
    """Settings as plain JSON."""
    return asdict(settings)
