"""Model search by K-fold cross-validation inside the training split.

The lifecycle's step 5: *repeat architecture and fitting to find the best
model, judged on data it never saw*. Every model family is judged on the same
folds of the training split; the test split is not seen here at all (the
functions receive the training rows only), so it is touched once, by the
chosen model.

* :func:`kfold` assigns the training samples to ``K`` folds, deterministically
  from the set of sample ids and a seed (stratified by class for
  classification).
* :func:`mlp_candidates` expands the ``search.mlp`` space (a grid, or a random
  sample of it) into network settings; :func:`cv_networks` trains every
  candidate on every fold, as few vectorised programs
  (:func:`gexpred.batched_nn.train_many`) rather than a loop over networks,
  and stops candidates that are clearly worse early (:class:`Pruning`).
* :func:`cv_penalized` chooses ridge or lasso regression and its penalty
  (statsmodels' ``OLS.fit_regularized`` objective, :func:`penalized_path`) by
  the same folds.
* :func:`cv_ols` and :func:`cv_logit` give the out-of-fold predictions of
  ordinary least squares and logistic regression, for the comparison.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, InputError, ModelError, preview

log = logging.getLogger(__name__)

FOLD_COLUMNS = ["target", "sample", "fold"]
"""Columns of the folds table (``fold`` is 0-based; test samples are not listed)."""
PENALTY_L1 = {"ridge": 0.0, "lasso": 1.0, "elastic_net": 0.5}
"""``L1_wt`` of statsmodels' elastic net for each penalised family."""
RIDGE_RANGE = (1e2, 1e-4)
"""Ridge penalties (on standardised predictors) run from strong to negligible shrinkage."""
LASSO_RATIO = 1e-3
"""The smallest lasso penalty is this fraction of the smallest one that zeroes every coefficient."""


# --------------------------------------------------------------------------- folds
def kfold(samples: Sequence[str], k: int, seed: int = 0, labels: Sequence[Any] | None = None) -> np.ndarray:
    """Fold (``0 .. k-1``) of each sample.

    The assignment depends on the set of ids, not on their order: the ids are
    sorted, permuted with ``seed`` and dealt out to the folds in turn, so fold
    sizes differ by at most one. With ``labels``, each class is dealt out in
    turn (continuing where the previous class stopped), so every fold holds
    each class in proportion as nearly as whole samples allow.

    Raises
    ------
    ConfigError
        ``k < 2`` or more folds than samples.
    InputError
        With ``labels``: a class with fewer than 2 samples (a fold's training
        part could then lack it).
    """
    ids = np.asarray([str(s) for s in samples])
    n = len(ids)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"split.folds must be an integer >= 2; got {k!r}.")
    if k > n:
        raise ConfigError(f"split.folds is {k}, but the training split has only {n} samples; use at most {n} folds.")
    if len(set(ids)) != n:
        dup = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
        raise InputError(f"Sample ids {preview(dup)} occur more than once; every sample needs a unique id.")
    order = np.argsort(ids, kind="stable")
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [order]
    else:
        lab = np.asarray([str(v) for v in labels])
        if len(lab) != n:
            raise ValueError(f"kfold: {len(lab)} labels for {n} samples")
        groups = []
        for c in sorted(set(lab)):
            members = order[lab[order] == c]
            if len(members) < 2:
                raise InputError(
                    f"Class {c!r} has {len(members)} sample in the training split: cross-validation needs at least 2 "
                    f"samples of every class. Merge rare classes or add samples."
                )
            groups.append(members)
    fold = np.empty(n, dtype=np.int64)
    start = 0
    for members in groups:
        perm = rng.permutation(members)
        fold[perm] = (start + np.arange(len(perm))) % k
        start = (start + len(perm)) % k
    return fold


# --------------------------------------------------------------------------- candidates
def _settings_fields() -> list[str]:
    from .nn import MLPSettings

    return [f.name for f in fields(MLPSettings)]


def search_space_size(space: dict[str, list]) -> int:
    """Number of points of the grid ``space``."""
    return math.prod(len(v) for v in space.values()) if space else 1


def mlp_candidates(base: dict[str, Any], space: dict[str, list], strategy: str = "grid", n: int = 10,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Network settings to try: ``base`` (the ``mlp`` config) updated with each point of ``space``.

    Parameters
    ----------
    base
        The ``mlp`` section: every candidate starts from it.
    space
        ``{setting: [values...]}`` (``search.mlp``), e.g.
        ``{"hidden": [[], [32, 16]], "lr": [0.001, 0.01]}``. Empty: ``base`` alone.
    strategy
        ``grid``: every combination, in the order of the keys and values given.
        ``random``: ``n`` distinct combinations drawn with ``seed`` (the whole
        grid if it has at most ``n`` points), kept in grid order.
        Either way, a combination that trains the same network as an earlier one
        (it varies only settings that do nothing in it, :data:`IDLE_SETTINGS`: the
        activation of a network without a hidden layer, say) is left out, logged.
    n, seed
        For ``random``.

    Returns
    -------
    list of dict
        Config mappings (validate them with :meth:`gexpred.nn.MLPSettings.from_config`).
    """
    allowed = [f for f in _settings_fields() if f not in ("device", "ensemble", "refit")]
    unknown = [k for k in space if k not in allowed]
    if unknown:
        raise ConfigError(f"search.mlp has unknown settings {preview(unknown)}; searchable settings are "
                          f"{', '.join(allowed)}.")
    for key, values in space.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"search.mlp.{key} must be a non-empty list of values to try; got {values!r}.")
    if strategy not in ("grid", "random"):
        raise ConfigError(f"search.strategy must be 'grid' or 'random'; got {strategy!r}.")
    keys = list(space)
    sizes = [len(space[k]) for k in keys]
    total = search_space_size(space)
    if strategy == "grid" or total <= n:
        if strategy == "random" and total < n:
            log.info("search.strategy random: the grid of search.mlp has %d points, fewer than search.n_candidates "
                     "(%d): every one is tried", total, n)
        points = range(total)
    else:
        points = sorted(int(i) for i in np.random.default_rng(seed).choice(total, size=int(n), replace=False))
    from dataclasses import asdict

    from .nn import MLPSettings

    defaults = asdict(MLPSettings())  # a setting a candidate leaves out is its default
    out, seen, twins = [], set(), 0
    for index in points:
        cand = dict(base)
        rest = index
        for key, size in zip(reversed(keys), reversed(sizes)):  # mixed radix, last key fastest (as product)
            cand[key] = space[key][rest % size]
            rest //= size
        key = _trained_alike({**defaults, **cand})
        if key in seen:  # the same network as an earlier candidate: it would train it again, loss for loss
            twins += 1
            continue
        seen.add(key)
        out.append(cand)
    if twins:
        log.info("search.mlp: %d of %d candidates left out, each the same network as an earlier one (settings that "
                 "do nothing in it vary: %s)", twins, len(points), "; ".join(IDLE_SETTINGS_WORDS))
    return out


#: Settings that do nothing in some candidates: ``(setting, is idle in candidate c)``.
IDLE_SETTINGS = (
    ("activation", lambda c: not c["hidden"]),
    ("dropout", lambda c: not c["hidden"]),
    ("momentum", lambda c: c["optimizer"] != "sgd"),
    ("lr_factor", lambda c: c["lr_schedule"] != "plateau"),
    ("lr_patience", lambda c: c["lr_schedule"] != "plateau"),
    ("huber_delta", lambda c: c["loss"] != "huber"),
)
IDLE_SETTINGS_WORDS = ("activation and dropout without a hidden layer", "momentum without SGD",
                       "lr_factor and lr_patience without the plateau schedule", "huber_delta without Huber's loss")


def _trained_alike(full: dict[str, Any]) -> str:
    """A key equal for two candidates (every setting given) exactly when they train the same networks: their
    settings, those that do nothing in them (:data:`IDLE_SETTINGS`, e.g. the activation of a network without a
    hidden layer) left out."""
    import json

    idle = {name for name, is_idle in IDLE_SETTINGS if is_idle(full)}
    return json.dumps({k: v for k, v in full.items() if k not in idle}, sort_keys=True, default=str)


# --------------------------------------------------------------------------- networks
@dataclass(frozen=True)
class Pruning:
    """Early stopping of whole candidates during the network search (successive-halving checks).

    At epochs ``first_check``, 2 x, 4 x, ... of training, every candidate's
    fold networks are compared by the mean of their lowest validation loss so
    far (on the validation part carved from each fold's training part, never
    on the held-out fold); a candidate whose mean is more than ``margin`` (a
    fraction) above the best candidate's stops there, all its fold networks
    at once. Its held-out loss is still measured (with the weights it had
    kept), and shown, but it cannot be chosen. A candidate never stops the
    best one, so the search always has a winner. ``first_check`` 0 turns it
    off. Only candidates of the same training loss (their validation losses
    are on one scale) that hold out a validation part and train in a batched
    program (no dropout) are compared.

    Hyperband (Li et al. 2018, *JMLR* 18:185) keeps the best fraction at each
    check; a fixed margin instead stops only the candidates that are clearly
    behind, which suits a search of a few candidates: on the bundled
    compendium's 40-target panel the default search's noisy candidate is
    1.10-2.2 x behind at epoch 20 and is stopped for 35 of them (33 at epoch
    20, 2 at 40), and on DREAM4 no candidate the folds would have chosen is
    stopped; both choose as without pruning (benchmarks/bench_peers.py).
    """

    first_check: int = 20
    margin: float = 0.25

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> Pruning:
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"first_check", "margin"}
        if unknown:
            raise ConfigError(f"search.prune: unknown setting(s) {sorted(unknown)}; use first_check and margin.")
        first, margin = cfg.get("first_check", cls.first_check), cfg.get("margin", cls.margin)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ConfigError(f"search.prune.first_check must be a whole number of epochs >= 0 (0: off), not "
                              f"{first!r}.")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ConfigError(f"search.prune.margin must be a number >= 0 (a fraction: 0.25 = 25 % worse), not "
                              f"{margin!r}.")
        return cls(int(first), float(margin))

    def is_check(self, epoch: int) -> bool:
        """Whether candidates are compared after ``epoch``: ``first_check`` times a power of 2."""
        if self.first_check <= 0 or epoch < self.first_check or epoch % self.first_check:
            return False
        k = epoch // self.first_check
        return k & (k - 1) == 0


NO_PRUNING = Pruning(first_check=0)


@dataclass
class NetworkCV:
    """Cross-validation of network candidates.

    ``loss`` is candidates x folds (:func:`cv_criterion` on the target's scale for regression: MSE, or MAE when
    every candidate trains with ``loss: mae``; mean cross-entropy in nats for classification) on each held-out fold;
    ``oof`` holds each candidate's out-of-fold predictions (candidates x samples;
    x classes of probabilities for classification); ``best_epoch`` the epoch
    kept by early stopping, candidates x folds.
    """

    loss: np.ndarray
    oof: np.ndarray
    best_epoch: np.ndarray
    perm_rise: np.ndarray | None = None
    """With ``perm_repeats``: the rise of each fold's held-out loss when one predictor is shuffled
    (candidates x folds x predictors; :mod:`gexpred.importance`)."""
    refit: tuple | None = None
    """With ``refit``: ``(model, history, info)`` of the model trained on every sample, as
    :func:`gexpred.nn.train_ensemble` returns them."""
    pruned_at: np.ndarray | None = None
    """Per candidate, the epoch at which :class:`Pruning` stopped it (0: trained to the end); ``None``: none stopped."""

    @property
    def mean(self) -> np.ndarray:
        return self.loss.mean(axis=1)

    @property
    def sd(self) -> np.ndarray:
        return self.loss.std(axis=1, ddof=1) if self.loss.shape[1] > 1 else np.zeros(len(self.loss))

    def winner(self) -> int:
        """Index of the candidate with the lowest mean loss (the first of equals) among those not pruned and with a
        loss on every fold (np.argmin alone would return a NaN mean's)."""
        mean = np.where(np.isfinite(self.mean), self.mean, np.inf)
        if self.pruned_at is not None:
            mean = np.where(self.pruned_at > 0, np.inf, mean)
        return int(np.argmin(mean))


def _group_key(s) -> tuple:
    return (tuple(s.hidden), s.activation, s.optimizer, int(s.batch_size), s.dropout > 0, s.loss, s.huber_delta)


def cv_criterion(candidates: Sequence[Any], task: str = "regression") -> str:
    """The held-out loss that judges network candidates: ``cross_entropy`` for classification; for regression
    ``mae`` (mean absolute error) when every candidate trains with ``loss: mae``, ``mse`` otherwise (one scale
    for candidates of different training losses)."""
    if task == "classification":
        return "cross_entropy"
    return "mae" if candidates and all(getattr(c, "loss", "mse") == "mae" for c in candidates) else "mse"


def fold_design(X: np.ndarray, fold_X: np.ndarray | None, f: int) -> np.ndarray:
    """The design fold ``f`` is fitted and judged on: ``fold_X[f]`` (folds x samples x terms) where the
    predictors were chosen on each fold's training part, else ``X``; ``f < 0`` (the refit) is always ``X``.

    Choosing the predictors (the genes most correlated with the target) on every training sample and then
    cross-validating on them lets the held-out samples take part in the choice: every CV figure is then
    optimistic, most for targets with little signal (an unpredictable target's OLS beats the training mean in
    CV). The pipeline chooses them again on each fold's training part (``gexpred select --folds``), so the
    held-out samples judge the whole procedure, selection included.
    """
    if fold_X is None or f < 0:
        return X
    if fold_X.shape[1:] != np.shape(X):
        raise ValueError(f"fold designs of shape {fold_X.shape[1:]} do not match the design {np.shape(X)}")
    return fold_X[f]


def cv_networks(X: np.ndarray, y: np.ndarray, folds: np.ndarray, candidates: Sequence[Any],
                task: str = "regression", n_classes: int | None = None, target: str = "target",
                batched: bool = True, members: int = 1, perm_repeats: int = 0, perm_seed: int = 0,
                refit: Any | None = None, prune: Pruning = NO_PRUNING,
                fold_X: np.ndarray | None = None, criterion: str | None = None,
                train_folds: Sequence[int] | None = None, numbers: Sequence[int] | None = None) -> NetworkCV:
    """Train every candidate on every fold's training part and predict its held-out part.

    Networks that can share one vectorised program (same architecture,
    optimizer and batch size, no dropout; folds of any size) are trained
    together by :func:`gexpred.batched_nn.train_many`; ``batched=False`` (or
    dropout) trains them one at a time with :func:`gexpred.nn.train_mlp`; the
    results are equal to float rounding either way.

    Parameters
    ----------
    X, y
        The training split only (samples x predictors; target values or class codes).
    folds
        Fold of each row (:func:`kfold`).
    candidates
        :class:`gexpred.nn.MLPSettings`.
    task, n_classes
        As :func:`gexpred.nn.train_mlp`.
    target
        Name used in messages.
    members
        Networks per candidate and fold, with seeds ``seed, seed + 1, ...``,
        whose predictions (class probabilities) are averaged: the
        cross-validation of an ensemble as :func:`gexpred.nn.train_ensemble`
        builds it. ``best_epoch`` is then the median over the members.
    perm_repeats, perm_seed
        With ``perm_repeats > 0`` the fold networks also predict their held-out
        samples with each predictor shuffled (:func:`gexpred.importance.permutations`
        of fold ``f`` drawn with ``perm_seed + f``), and ``perm_rise`` holds the
        rise of the held-out loss: permutation importance of the networks
        cross-validated here, at the cost of a few predictions.
    refit
        Settings of a model to train on the whole of ``X`` alongside the fold
        networks, in the same vectorised programs (:func:`gexpred.nn.train_ensemble`
        of them; returned as ``refit``): the model whose procedure the folds
        cross-validate, trained at the cost of a few more networks in programs
        that run anyway.
    criterion
        The held-out loss of ``loss`` (:func:`cv_criterion`); ``None``: that of ``candidates``.
    train_folds
        Only these folds' networks are trained (the others' ``loss`` and ``oof`` stay NaN); ``None``: every fold.
    numbers
        The candidates' numbers in messages (progress, errors: "candidate 3, fold 2"), where ``candidates`` are
        some of a search's (a refit procedure's networks); ``None``: 1, 2, ...
    prune
        :class:`Pruning` of clearly worse candidates (off by default here; the
        ``mlp`` rule's search uses ``search.prune``). Programs run one after
        another: a later program's candidates are compared with the earlier
        programs' too (at the same epoch, or at their end if they stopped
        before), an earlier one's never with a later one's.
    """
    from dataclasses import replace

    from .importance import log_loss, loss_rises, mse_loss, permutations, permuted_inputs
    from .nn import assemble_ensemble, member_names, member_settings

    from .batched_nn import train_many
    from .nn import predict, predict_proba, train_mlp

    if task == "classification":  # (statsmodels, which gexpred.logit imports, costs ~1 s of a job's start-up)
        from .logit import classification_metrics

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    folds = np.asarray(folds)
    K = int(folds.max()) + 1
    C = len(candidates)
    M = max(1, int(members))
    by_mae = (criterion or cv_criterion(candidates, task)) == "mae"
    classify = task == "classification"
    n = len(X)
    loss = np.full((C, K), np.nan)
    best_epoch = np.zeros((C, K), dtype=np.int64)
    oof = np.full((C, n, n_classes), np.nan) if classify else np.full((C, n), np.nan)
    each = [member_settings(replace(s, ensemble=M)) for s in candidates]
    refit_each = member_settings(refit) if refit is not None else []
    refit_names = member_names(target, len(refit_each)) if len(refit_each) > 1 else [target]

    # a job: (candidate, fold, member); fold -1 is the refit on every sample (candidate -1: its settings)
    chosen_folds = range(K) if train_folds is None else sorted({int(f) for f in train_folds})
    jobs = [(c, f, m) for c in range(C) for f in chosen_folds for m in range(M)]
    jobs += [(-1, -1, m) for m in range(len(refit_each))]

    def settings_of(c: int, m: int):
        return refit_each[m] if c < 0 else each[c][m]

    def name_of(c: int, f: int, m: int) -> str:
        if f < 0:
            return refit_names[m]
        number = c + 1 if numbers is None else int(numbers[c])
        return f"{target} (candidate {number}, fold {f + 1}{f', member {m + 1}' if M > 1 else ''})"

    groups: dict[tuple, list[tuple[int, int, int]]] = {}
    for c, f, m in jobs:
        s = settings_of(c, m)
        key = _group_key(s) if batched and s.dropout == 0 else ("single", c, f, m)
        groups.setdefault(key, []).append((c, f, m))
    log.info("%s: cross-validating %d candidate networks x %d folds%s = %d networks%s in %d program(s)",
             target, C, len(chosen_folds), f" x {M} ensemble members" if M > 1 else "", C * len(chosen_folds) * M,
             f" (and the {len(refit_each)} of the refit)" if refit_each else "", len(groups))

    outputs: dict[tuple[int, int], list[np.ndarray]] = {}
    permuted: dict[tuple[int, int], list[np.ndarray]] = {}
    epochs: dict[tuple[int, int], list[int]] = {}
    refitted: dict[int, tuple] = {}
    perms = {f: permutations(int((folds == f).sum()), X.shape[1], perm_repeats, perm_seed + f)
             for f in chosen_folds} if perm_repeats > 0 else {}
    # pruning: per candidate, its mean best validation loss at each check epoch (and at its end), shared by programs
    pruned_at = np.zeros(C, dtype=np.int64)
    board: dict[int, dict[int, float]] = {}
    final_best: dict[int, float] = {}
    comparable = [candidates[c].val_fraction > 0 and candidates[c].dropout == 0 for c in range(C)]
    pruning = C > 1 and prune.first_check > 0

    def pruner(group: list[tuple[int, int, int]]):
        rows: dict[int, list[int]] = {}
        for r, (c, _, _) in enumerate(group):
            if c >= 0 and comparable[c]:
                rows.setdefault(c, []).append(r)
        if not pruning or not rows:
            return None

        def check(epoch: int, best: np.ndarray, active: np.ndarray) -> list[int]:
            if not prune.is_check(epoch):
                return []
            for c, rs in rows.items():
                board.setdefault(c, {})[epoch] = float(np.mean(best[rs]))
            now = {c: board[c].get(epoch, final_best.get(c, math.inf)) for c in board}
            stop: list[int] = []
            for c, rs in rows.items():
                rivals = [v for o, v in now.items() if o != c and candidates[o].loss == candidates[c].loss]
                # only a candidate still training stops (one whose networks all ended is judged as it is)
                behind = bool(rivals) and now[c] > (1.0 + prune.margin) * min(rivals)
                if pruned_at[c] or not active[rs].any() or not behind:
                    continue
                pruned_at[c] = epoch
                log.info("%s: candidate %d stopped at epoch %d: its fold networks' mean validation loss %.5g is "
                         "%.2f x the best candidate's (search.prune.margin %g)", target, c + 1, epoch, now[c],
                         now[c] / min(rivals), prune.margin)
                stop += rs
            return stop
        return check

    def store(c: int, f: int, m: int, result) -> None:
        model, _, info = result
        if f < 0:
            refitted[m] = result
            return
        held = folds == f
        out = predict_proba if classify else predict
        Xf = fold_design(X, fold_X, f)
        outputs.setdefault((c, f), []).append(out(model, Xf[held]))
        if perms:
            permuted.setdefault((c, f), []).append(out(model, permuted_inputs(Xf[held], perms[f])))
        epochs.setdefault((c, f), []).append(int(info["best_epoch"]))

    start = time.perf_counter()
    for key, group in groups.items():
        data = [(X, y) if f < 0 else (fold_design(X, fold_X, f)[folds != f], y[folds != f]) for _, f, _ in group]
        names = [name_of(*job) for job in group]
        settings = [settings_of(c, m) for c, _, m in group]
        try:
            if key[0] == "single":
                trained = [train_mlp(*data[0], settings[0], names[0], task, n_classes)]
            else:
                trained = train_many([d[0] for d in data], [d[1] for d in data], settings, names, task, n_classes,
                                     record_train_loss=False, prune=pruner(group))
        except ModelError as exc:
            raise ModelError(f"Model search for target {target!r}: {exc} Remove or change that candidate in "
                             f"search.mlp.") from None
        for job, result in zip(group, trained):
            store(*job, result)
        for c in {c for c, _, _ in group if pruning and c >= 0 and comparable[c]}:  # for later programs' checks
            final_best[c] = float(np.mean([h["val_loss"].min() for (cc, _, _), (_, h, _) in zip(group, trained)
                                           if cc == c]))
    refit_result = assemble_ensemble([refitted[m] for m in range(len(refit_each))], target,
                                     time.perf_counter() - start) if refit_each else None

    for (c, f), preds in outputs.items():
        held = folds == f
        mean = np.mean(preds, axis=0)
        oof[c, held] = mean
        if classify:
            loss[c, f] = classification_metrics(y[held].astype(np.int64), mean)["log_loss"]
        else:
            err = y.astype(np.float64)[held] - mean
            loss[c, f] = float(np.mean(np.abs(err) if by_mae else err ** 2))
        best_epoch[c, f] = int(np.median(epochs[(c, f)]))
    perm_rise = None
    if perms:
        perm_rise = np.full((C, K, X.shape[1]), np.nan)
        lossf = log_loss if classify else mse_loss
        for (c, f), preds in permuted.items():
            held = folds == f
            perm_rise[c, f] = loss_rises(y[held], oof[c, held], np.mean(preds, axis=0), perms[f].shape, lossf)
    return NetworkCV(loss=loss, oof=oof, best_epoch=best_epoch, perm_rise=perm_rise, refit=refit_result,
                     pruned_at=pruned_at if pruned_at.any() else None)


@dataclass
class NetworkSearch:
    """Result of :func:`search_network`.

    ``cv`` is the cross-validation of every candidate (one network per fold),
    ``winner`` the index of the candidate chosen by it; ``final_cv`` the
    cross-validation of the model as refitted (the winner's ensemble on the same
    folds; ``cv`` restricted to the winner when the ensemble is one network):
    with one candidate, its ``oof`` row 0 and ``loss`` row 0 are what the comparison judges.
    ``model``, ``history`` and ``info`` are the refit on the whole training
    split (:func:`gexpred.nn.train_ensemble`) with ``settings``
    (:func:`final_settings`). Without folds, ``cv`` and ``final_cv`` are ``None``;
    ``final_cv`` is ``None`` too when the refit procedure was not cross-validated
    (``cv_refit=False``). ``nested`` (with more than one candidate and ``final_cv``) is the
    cross-validation of the whole search, the choice included: fold ``f`` predicted by the
    refit procedure of the candidate with the lowest mean loss on the other folds
    (``fold_choices[f]``; :func:`other_fold_choices`); its ``oof`` row 0 is what the comparison judges.
    """

    winner: int
    cv: NetworkCV | None
    final_cv: NetworkCV | None
    model: Any
    history: pd.DataFrame
    info: dict[str, Any]
    settings: Any = None
    nested: NetworkCV | None = None
    fold_choices: list[int] = field(default_factory=list)


def other_fold_choices(cv: NetworkCV) -> list[int]:
    """For each fold, the candidate (index) with the lowest mean held-out loss over the *other* folds.

    The search's winner is the candidate of lowest mean loss over all folds, and its held-out loss, the
    minimum over the candidates, flatters it as an estimate of the chosen model's error: a candidate can win
    by the noise of the very samples that judge it (Varma & Simon 2006, *BMC Bioinformatics* 7:91; Cawley &
    Talbot 2010, *JMLR* 11:2079). Choosing for fold ``f`` without fold ``f``'s own loss removes that
    selection from the fold's judgement. Pruned candidates and candidates with a NaN fold loss never win;
    ties go to the first candidate. (Not a full nested search: the other folds' networks were trained with fold ``f``'s
    samples, which would take ``K - 1`` more networks a fold and candidate to avoid.)
    """
    choices = choices_by_other_folds(cv.loss, None if cv.pruned_at is None else cv.pruned_at > 0)
    return choices if choices is not None else [cv.winner()] * cv.loss.shape[1]


def choices_by_other_folds(loss: np.ndarray, excluded: np.ndarray | None = None) -> list[int] | None:
    """For each fold (column of the candidates x folds ``loss``), the row of lowest mean loss over the other
    folds (the first of ties); rows ``excluded`` and rows with a NaN loss never chosen. ``None`` with fewer than 2
    folds or no row left. The choice of :func:`other_fold_choices` and of :func:`cv_penalized` with 2 folds."""
    loss = np.asarray(loss, dtype=np.float64)
    K = loss.shape[1]
    out = ~np.isfinite(loss).all(axis=1)  # a candidate with a failed fold (NaN loss) predicts nothing there
    if excluded is not None:
        out |= np.asarray(excluded, dtype=bool)
    if K < 2 or out.all():
        return None
    other = (np.nansum(loss, axis=1, keepdims=True) - loss) / (K - 1)  # candidates x folds: mean of the others
    other[out] = np.inf
    return [int(np.argmin(other[:, f])) for f in range(K)]


def search_network(X: np.ndarray, y: np.ndarray, folds: np.ndarray | None, candidates: Sequence[Any],
                   task: str = "regression", n_classes: int | None = None, target: str = "target",
                   perm_repeats: int = 0, perm_seed: int = 0, cv_refit: bool = True,
                   prune: Pruning = NO_PRUNING, fold_X: np.ndarray | None = None) -> NetworkSearch:
    """Choose a network by K-fold cross-validation of the training split and refit it there.

    The model search of the ``mlp`` rule: every candidate is trained on every
    fold's training part (early stopping on a validation part of it) and judged
    by its mean held-out loss (:func:`cv_networks`). The winner is refitted on
    the whole training split as an ensemble of ``ensemble`` networks
    (:func:`gexpred.nn.train_ensemble`); with ``refit: cv_epochs`` on every
    training sample for the number of epochs its folds chose
    (:func:`final_settings`). The refit procedure is cross-validated on the
    same folds, so that the cross-validated predictions the comparison uses are
    those of the procedure delivered: with several candidates, each fold's by the
    procedure of the candidate the other folds chose (``nested``). Only the training split is given here; the
    test split is touched once, later, by the returned model.

    Parameters
    ----------
    X, y
        The training split (samples x predictors; target values or class codes).
    folds
        Fold of each row (:func:`kfold`); ``None`` trains ``candidates[0]`` without a search.
    candidates
        :class:`gexpred.nn.MLPSettings`.
    task, n_classes, target
        As :func:`cv_networks`.
    perm_repeats, perm_seed
        Permutation importance of the refit procedure's fold networks
        (``final_cv.perm_rise``; see :func:`cv_networks`).
    cv_refit
        Cross-validate the refit procedure (the default, which the ``mlp`` rule
        uses: the comparison judges the model delivered). ``False`` only chooses
        and refits (``final_cv`` is ``None``), the work a scikit-learn
        ``GridSearchCV`` does: with an ensemble, the cross-validation of the refit
        trains ``ensemble`` networks per fold, most of the search's time
        (benchmarks/bench_peers.py times both). The model is the same either way,
        up to float rounding (networks trained in one program or another).
    prune
        :class:`Pruning` of the candidates (``search.prune``); the chosen one is never pruned.
    fold_X
        The design of each fold (:func:`fold_design`) where the predictors were chosen per fold; the
        refit uses ``X``.
    """
    from dataclasses import replace

    from .nn import train_ensemble

    winner, cv, final_cv = 0, None, None
    final = candidates[0]
    if folds is not None:
        # the search's own fold networks are the delivered procedure's only for one network stopped early
        # (ensemble and refit are not searched): only then do they carry the permutation importance
        as_delivered = candidates[0].ensemble <= 1 and candidates[0].refit == "early_stopping"
        cv = cv_networks(X, y, folds, candidates, task, n_classes, target,
                         perm_repeats=perm_repeats if as_delivered else 0, perm_seed=perm_seed, prune=prune,
                         fold_X=fold_X)
        winner = cv.winner()
        final = _refit_procedure(candidates[winner], cv.best_epoch[winner], len(X), folds)
        refit_differs = final != candidates[winner] or final.ensemble > 1
        if cv_refit and (refit_differs or (perm_repeats > 0 and cv.perm_rise is None)):
            # the comparison judges the model delivered: cross-validate the refit procedure on the same folds
            # (and train the refit itself in the same programs)
            # judged by the search's criterion (the winner's own loss alone could give MAE beside a search by MSE)
            final_cv = cv_networks(X, y, folds, [final], task, n_classes, target, members=final.ensemble,
                                   perm_repeats=perm_repeats, perm_seed=perm_seed, refit=final, fold_X=fold_X,
                                   criterion=cv_criterion(candidates, task), numbers=[winner + 1])
            log.info("%s: candidate %d refitted as %s: CV loss %.5g +- %.3g (the search's networks: %.5g)",
                     target, winner + 1, describe_refit(final), final_cv.mean[0], final_cv.sd[0], cv.mean[winner])
        elif cv_refit:
            final_cv = NetworkCV(loss=cv.loss[[winner]], oof=cv.oof[[winner]], best_epoch=cv.best_epoch[[winner]],
                                 perm_rise=None if cv.perm_rise is None else cv.perm_rise[[winner]])
    else:
        final = replace(final, refit="early_stopping")
    nested, choices = None, []
    if final_cv is not None and len(candidates) > 1:
        nested, choices = _nested_search_cv(X, y, folds, candidates, cv, winner, final_cv, task, n_classes, target,
                                            fold_X)
    if final_cv is not None and final_cv.refit is not None:
        model, history, info = final_cv.refit
    else:
        model, history, info = train_ensemble(X, y, final, target, task, n_classes)
    return NetworkSearch(winner=winner, cv=cv, final_cv=final_cv, model=model, history=history, info=info,
                         settings=final, nested=nested, fold_choices=choices)


def _nested_search_cv(X: np.ndarray, y: np.ndarray, folds: np.ndarray, candidates: Sequence[Any], cv: NetworkCV,
                      winner: int, final_cv: NetworkCV, task: str, n_classes: int | None, target: str,
                      fold_X: np.ndarray | None) -> tuple[NetworkCV, list[int]]:
    """The search cross-validated with its choice: each fold predicted by the refit procedure (:func:`final_settings`)
    of the candidate the other folds chose (:func:`other_fold_choices`). Folds that chose the winner keep
    ``final_cv``'s predictions; another candidate's folds are trained here (only those folds), unless its own
    search networks are that procedure (one network, stopped early)."""
    choices = other_fold_choices(cv)
    nested = NetworkCV(loss=final_cv.loss.copy(), oof=final_cv.oof.copy(), best_epoch=final_cv.best_epoch.copy())
    for c in sorted(set(choices) - {winner}):
        own = [f for f, chosen in enumerate(choices) if chosen == c]
        procedure = _refit_procedure(candidates[c], cv.best_epoch[c], len(X), folds)
        if procedure == candidates[c] and procedure.ensemble <= 1:
            part, row = cv, c
        else:
            part = cv_networks(X, y, folds, [procedure], task, n_classes, target, members=procedure.ensemble,
                               fold_X=fold_X, criterion=cv_criterion(candidates, task), train_folds=own,
                               numbers=[c + 1])
            row = 0
        for f in own:
            held = folds == f
            nested.loss[0, f] = part.loss[row, f]
            nested.oof[0, held] = part.oof[row, held]
            nested.best_epoch[0, f] = part.best_epoch[row, f]
    log.info("%s: the search cross-validated with its choice (each fold's candidate chosen by the other folds: %s): "
             "CV loss %.5g +- %.3g (the chosen candidate's own: %.5g)", target,
             ", ".join(str(c + 1) for c in choices), nested.mean[0], nested.sd[0], final_cv.mean[0])
    return nested, choices


def _refit_procedure(candidate: Any, best_epochs: np.ndarray, n: int, folds: np.ndarray) -> Any:
    """:func:`final_settings` of ``candidate`` refitted on ``n`` samples, its fold networks having kept
    ``best_epochs``."""
    return final_settings(candidate, best_epochs, n / _fold_fit_size(folds, candidate))


def _fold_fit_size(folds: np.ndarray, s: Any) -> float:
    """Median number of samples a fold network fits (its fold's training part less its validation part)."""
    from .nn import _split_validation

    sizes = [len(_split_validation(int((folds != f).sum()), s.val_fraction, s.seed)[0])
             for f in range(int(folds.max()) + 1)]
    return float(np.median(sizes))


def final_settings(chosen: Any, best_epochs: np.ndarray, sample_ratio: float = 1.0) -> Any:
    """Settings of the refit of the chosen candidate on the whole training split.

    ``refit: cv_epochs``: every training sample is used (``val_fraction`` 0, no
    early stopping) for the median over the folds of the epoch early stopping
    kept, times ``sample_ratio`` (training samples of the refit over those the
    fold networks fitted, at least 1), so the number of epochs is chosen by
    cross-validation like any other setting and no sample is set aside to
    choose it again. The ratio: a network fitted on more samples supports more
    training before it overfits; on the bundled compendium's 40-gene panel the
    ensembles' test MAE was 0.2188 with the plain median, 0.2115 with the ratio
    (1.56) and 0.2092 with 2 (benchmarks/bench_peers.py). ``early_stopping``:
    the candidate's own settings (a validation part carved from the training
    split stops it).
    """
    from dataclasses import replace

    if chosen.refit != "cv_epochs":
        return chosen
    epochs = max(1, int(round(float(np.median(best_epochs)) * max(1.0, float(sample_ratio)))))
    return replace(chosen, epochs=epochs, val_fraction=0.0, patience=0)


def describe_refit(s: Any) -> str:
    """The refit in words, for logs and the report."""
    what = f"an ensemble of {s.ensemble} networks" if s.ensemble > 1 else "one network"
    if s.refit == "cv_epochs":
        return (f"{what} on every training sample for {s.epochs} epochs (the folds' median best epoch times the "
                f"refit's training samples over a fold network's, at least 1)")
    return f"{what} stopped early on a validation part of {s.val_fraction:g}"


def search_table(candidates: Sequence[Any], cv: NetworkCV, varied: Sequence[str], criterion: str) -> pd.DataFrame:
    """One row per candidate: its number, every setting, the CV loss (mean, sd, per fold) and its rank.

    ``varied`` lists the settings the search changes: they come first, after
    ``candidate``. ``hidden`` is written as a JSON list. ``pruned_at_epoch``
    is the epoch at which :class:`Pruning` stopped the candidate (empty when
    it trained to its end); pruned candidates rank after the others.
    """
    import json

    from .nn import settings_dict

    rows = []
    winner = cv.winner()
    pruned = cv.pruned_at if cv.pruned_at is not None else np.zeros(len(candidates), dtype=np.int64)
    order = np.lexsort((cv.mean, pruned > 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    for c, s in enumerate(candidates):
        d = settings_dict(s)
        d.pop("device", None)
        d["hidden"] = json.dumps(list(d["hidden"]))
        first = {k: d.pop(k) for k in varied if k in d}
        row = {"candidate": c + 1, **first, **d, "criterion": criterion, "cv_loss_mean": float(cv.mean[c]),
               "cv_loss_sd": float(cv.sd[c])}
        for f in range(cv.loss.shape[1]):
            row[f"fold_{f + 1}"] = float(cv.loss[c, f])
        row["best_epoch_median"] = float(np.median(cv.best_epoch[c]))
        row["pruned_at_epoch"] = int(pruned[c]) if pruned[c] else pd.NA
        row["rank"] = int(rank[c])
        row["selected"] = c == winner
        rows.append(row)
    table = pd.DataFrame(rows)
    table["pruned_at_epoch"] = table["pruned_at_epoch"].astype("Int64")
    return table


# --------------------------------------------------------------------------- genome-wide networks
GENOME_SEARCH_MODES = ("multi_output", "per_target")


@dataclass
class GenomeSearch:
    """Network candidates of one genome-wide chunk, judged on the validation part of the training split.

    ``loss`` is candidates x targets: each target's mean squared error on the
    validation part divided by its variance on the fitted part (so targets of
    any scale weigh the same; 1 is as good as predicting the mean). ``selected``
    is the candidate kept for each target (one for the whole chunk with a
    multi-output network). ``models`` holds the kept network(s) (one for
    ``multi_output``, one per target for ``per_target``), ``histories`` and
    ``infos`` what :func:`gexpred.nn.train_mlp` returned for them, and
    ``candidate_info`` the ``best_epoch`` / ``epochs_run`` of every candidate
    (per target for ``per_target``: lists). ``failed`` maps the candidates whose
    training diverged (skipped: NaN loss, never selected) to the reason.
    """

    mode: str
    loss: np.ndarray
    selected: np.ndarray
    models: list[Any]
    histories: list[pd.DataFrame]
    infos: list[dict[str, Any]]
    candidate_info: list[dict[str, Any]]
    failed: dict[int, str] = field(default_factory=dict)


def validation_nmse(Y: np.ndarray, pred: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray) -> np.ndarray:
    """Per column of ``Y``: mean squared error of ``pred`` on ``val_idx`` over the variance on ``fit_idx``."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(Y), -1)
    mse = np.mean((Y[val_idx] - pred[val_idx]) ** 2, axis=0)
    var = np.var(Y[fit_idx], axis=0)
    return mse / np.where(var > 0, var, 1.0)  # a target constant on the fitted part: its plain MSE


def search_genome_networks(X: np.ndarray, Y: np.ndarray, candidates: Sequence[Any], mode: str,
                           targets: Sequence[str], name: str = "chunk") -> GenomeSearch:
    """Train every candidate on a chunk of targets and keep the best on the validation part.

    Genome-wide model search: K-fold cross-validation of thousands of outputs
    and several architectures would multiply the cost of the chunk by K, so
    candidates are compared as D-GEX compared its architectures: on one
    validation part carved from the training split (``val_fraction`` and
    ``seed``, the same for every candidate, so every candidate is judged on the
    same samples; that part also drives early stopping). The test split is not
    seen here. Candidates are trained one after the other and only the best so
    far is kept, so memory stays that of one candidate.

    Parameters
    ----------
    X, Y
        The training split only: samples x predictors and samples x targets.
    candidates
        :class:`gexpred.nn.MLPSettings`; one candidate trains it alone (its
        validation loss is still reported).
    mode
        ``multi_output``: one network per candidate with an output per target;
        the candidate with the lowest mean ``loss`` over the targets is kept.
        ``per_target``: one network per target and candidate (a candidate's
        networks trained as one program, :func:`gexpred.batched_nn.train_many`,
        or one at a time with dropout, which it does not support); each target
        keeps its own best candidate.
    targets
        Names of the columns of ``Y`` (messages).
    name
        Name of the chunk in messages.

    A candidate whose training diverges (:class:`~gexpred.errors.ModelError`; for
    ``per_target``, on any target) is skipped, logged and listed in ``failed``:
    a genome-wide run is not stopped by one of several candidates.

    Raises
    ------
    ConfigError
        Several candidates but no validation part, or candidates that would be
        judged on different samples (``val_fraction`` or ``seed`` varied).
    ModelError
        Every candidate diverged (or the only one did).
    """
    from .nn import _split_validation, predict, train_mlp

    if mode not in GENOME_SEARCH_MODES:
        raise ConfigError(f"mlp.genome_mode must be one of {', '.join(GENOME_SEARCH_MODES)}; got {mode!r}.")
    if not candidates:
        raise ConfigError("The genome-wide network search needs at least one candidate.")
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float64).reshape(len(X), -1)
    n, T = Y.shape
    if len(targets) != T:
        raise ValueError(f"search_genome_networks: {T} target columns but {len(targets)} names")
    splits = {(float(c.val_fraction), int(c.seed)) for c in candidates}
    if len(candidates) > 1:
        if len(splits) > 1:
            raise ConfigError(
                "The genome-wide network search judges every candidate on one validation part of the training "
                "split, so search.mlp must not vary val_fraction or seed (they choose that part). Remove them "
                "from search.mlp and set them in the mlp section."
            )
        (fraction, _), = splits
        if _split_validation(n, fraction, candidates[0].seed)[1].size == 0:
            raise ConfigError(
                f"The genome-wide network search compares {len(candidates)} candidates on a validation part of "
                f"the training split, but mlp.val_fraction = {fraction:g} leaves none of its {n} samples for it. "
                f"Set mlp.val_fraction to e.g. 0.2, or search.mlp: {{}} to train the mlp section alone."
            )
    fit_idx, val_idx = _split_validation(n, candidates[0].val_fraction, candidates[0].seed)
    C = len(candidates)
    loss = np.full((C, T), np.nan)
    selected = np.zeros(T, dtype=np.int64)
    cand_info: list[dict[str, Any]] = []
    failed: dict[int, str] = {}

    def diverged(c: int, exc: ModelError) -> None:
        if C == 1:
            raise exc
        failed[c] = str(exc)
        cand_info.append({"best_epoch": math.nan, "epochs_run": math.nan})
        log.warning("%s: candidate %d/%d skipped: %s", name, c + 1, C, exc)
        if len(failed) == C:
            raise ModelError(f"Genome-wide model search, {name}: every one of the {C} candidates diverged (the "
                             f"last: {exc}) Lower the learning rates in search.mlp / mlp.lr.") from None

    if mode == "multi_output":
        kept: tuple[Any, pd.DataFrame, dict[str, Any]] | None = None
        best = math.inf
        for c, s in enumerate(candidates):
            try:
                model, hist, info = train_mlp(X, Y, s, f"{name} candidate {c + 1}/{C}")
            except ModelError as exc:
                diverged(c, exc)
                continue
            if val_idx.size:
                loss[c] = validation_nmse(Y, predict(model, X), fit_idx, val_idx)
            cand_info.append({"best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"]})
            score = float(np.mean(loss[c])) if val_idx.size else 0.0
            if kept is None or score < best:  # the first of equals
                kept, best, selected[:] = (model, hist, info), score, c
            if C > 1:
                log.info("%s: candidate %d/%d validation loss (MSE / variance, mean over %d targets) %.5g",
                         name, c + 1, C, T, score)
        assert kept is not None
        return GenomeSearch(mode=mode, loss=loss, selected=selected, models=[kept[0]], histories=[kept[1]],
                            infos=[kept[2]], candidate_info=cand_info, failed=failed)

    from .batched_nn import train_many

    models: list[Any] = [None] * T
    histories: list[Any] = [None] * T
    infos: list[Any] = [None] * T
    best_loss = np.full(T, np.inf)
    for c, s in enumerate(candidates):
        names = [f"{t} (candidate {c + 1}/{C})" for t in targets]
        try:
            if s.dropout > 0:  # train_many has no dropout: one network at a time, as train_ensemble does
                trained = [train_mlp(X, Y[:, j], s, names[j]) for j in range(T)]
            else:
                trained = train_many([X] * T, [Y[:, j] for j in range(T)], [s] * T, names)
        except ModelError as exc:
            diverged(c, exc)
            continue
        cand_info.append({"best_epoch": [info["best_epoch"] for _, _, info in trained],
                          "epochs_run": [info["epochs_run"] for _, _, info in trained]})
        if val_idx.size:
            pred = np.column_stack([predict(m, X) for m, _, _ in trained])
            loss[c] = validation_nmse(Y, pred, fit_idx, val_idx)
        score = loss[c] if val_idx.size else np.zeros(T)
        better = (score < best_loss) | (models[0] is None)  # the first of equals
        for j in np.flatnonzero(better):
            models[j], histories[j], infos[j] = trained[j]
        best_loss[better] = score[better]
        selected[better] = c
        if C > 1:
            log.info("%s: candidate %d/%d validation loss (MSE / variance) median %.5g over %d targets", name,
                     c + 1, C, float(np.median(score)), T)
    return GenomeSearch(mode=mode, loss=loss, selected=selected, models=models, histories=histories, infos=infos,
                        candidate_info=cand_info, failed=failed)


def genome_search_table(chunk: int, candidates: Sequence[dict[str, Any]], result: GenomeSearch) -> pd.DataFrame:
    """One row per candidate of a chunk: its settings (those the search varies first, ``hidden`` as JSON), the
    validation loss over the chunk's targets (mean and median of MSE / variance), the targets it was kept for,
    its training epochs (median over targets for ``per_target``) and ``status`` (``ok`` or ``diverged``)."""
    import json

    varied = candidate_summary(candidates)
    rows = []
    for c, cfg in enumerate(candidates):
        d = {k: v for k, v in cfg.items() if k != "device"}
        if "hidden" in d:
            d["hidden"] = json.dumps(list(d["hidden"]))
        first = {k: d.pop(k) for k in varied if k in d}
        lc = result.loss[c]
        info = result.candidate_info[c]
        rows.append({"chunk": chunk, "candidate": c + 1, **first, **d, "mode": result.mode,
                     "n_targets": int(lc.size),
                     "val_nmse_mean": float(np.mean(lc)) if lc.size else math.nan,
                     "val_nmse_median": float(np.median(lc)) if lc.size else math.nan,
                     "n_selected": int(np.sum(result.selected == c)),
                     "best_epoch_median": float(np.median(info["best_epoch"])),
                     "epochs_run_median": float(np.median(info["epochs_run"])),
                     "status": "diverged" if c in result.failed else "ok"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- regression models
def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    keep = sd > 1e-12 * np.maximum(np.abs(mean), 1.0)
    Xs = np.zeros_like(X)
    Xs[:, keep] = (X[:, keep] - mean[keep]) / sd[keep]
    return Xs, mean, np.where(keep, sd, np.inf)


PENALTY_TOL = 1e-10
"""Coordinate descent stops when no standardised coefficient moves by more than this in a sweep."""
PENALTY_SWEEPS = 100_000


def penalized_path(X: np.ndarray, y: np.ndarray, alphas: Sequence[float] | np.ndarray,
                   l1_wt: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge / lasso / elastic-net regression for every penalty of ``alphas``.

    The predictors are standardised (mean 0, variance 1 on these samples) and
    the target centred, so the intercept is not penalised and one penalty means
    the same for every predictor; the objective is that of statsmodels
    ``OLS.fit_regularized`` and scikit-learn's ``ElasticNet`` (``l1_ratio`` =
    ``l1_wt``): ``RSS / (2 n) + alpha ((1 - l1_wt) |b|^2 / 2 + l1_wt |b|_1)``.
    Ridge (``l1_wt`` 0) is solved in closed form for all penalties from one
    eigendecomposition of the predictors' correlation matrix; otherwise by
    cyclic coordinate descent along the path, each penalty starting from the
    previous one's solution (:func:`gexpred._kernels.coordinate_descent_path`,
    to :data:`PENALTY_TOL`): the same minimum statsmodels' ``elastic_net``
    reaches, tens of times faster (tests/test_search.py holds both to
    scikit-learn and to the optimality conditions).

    Returns
    -------
    intercepts : numpy.ndarray
        One per penalty.
    coefs : numpy.ndarray
        Penalties x columns of ``X``, on the predictors' own scale (0 for constant columns).
    """
    from ._kernels import coordinate_descent_path

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    Xs, mean, sd = _standardize(X)
    ybar = float(y.mean())
    n = len(y)
    G = Xs.T @ Xs / n
    c = Xs.T @ (y - ybar) / n
    if l1_wt == 0:
        e, V = np.linalg.eigh(G)
        B = ((V.T @ c)[None, :] / (np.maximum(e, 0.0)[None, :] + alphas[:, None])) @ V.T
    else:
        B, sweeps = coordinate_descent_path(G, c, alphas, float(l1_wt), PENALTY_TOL, PENALTY_SWEEPS)
        if np.any(sweeps >= PENALTY_SWEEPS):
            log.warning("penalised regression: coordinate descent stopped after %d sweeps without reaching "
                        "its tolerance at %d of %d penalties", PENALTY_SWEEPS, int(np.sum(sweeps >= PENALTY_SWEEPS)),
                        len(alphas))
    coefs = B / sd  # sd is inf for constant columns: their coefficient is 0
    return ybar - coefs @ mean, coefs


def fit_penalized(X: np.ndarray, y: np.ndarray, alpha: float, l1_wt: float) -> tuple[float, np.ndarray]:
    """One penalty of :func:`penalized_path`.

    Returns
    -------
    intercept : float
    coef : numpy.ndarray
        One per column of ``X`` (0 for constant columns).
    """
    b0, B = penalized_path(X, y, [alpha], l1_wt)
    return float(b0[0]), B[0]


def penalty_grid(X: np.ndarray, y: np.ndarray, method: str, n_alphas: int) -> np.ndarray:
    """Penalties to try for ``method``, strongest first.

    Lasso and elastic net: from the smallest penalty that sets every
    coefficient to 0, ``max |x_j' (y - ybar)| / (n l1_wt)`` on standardised
    predictors, down to :data:`LASSO_RATIO` of it, evenly on a log scale. Ridge:
    from ``1e2`` to ``1e-4`` (on standardised predictors the shrinkage of each
    principal direction is ``e / (e + alpha)``, ``e`` its eigenvalue of the
    correlation matrix, so this runs from near-total to negligible shrinkage).
    """
    if method not in PENALTY_L1:
        raise ConfigError(f"search.penalized.methods: unknown method {method!r}; use {', '.join(PENALTY_L1)}.")
    n_alphas = int(n_alphas)
    if n_alphas < 2:  # one penalty is the grid's strongest: every coefficient (nearly) 0, the mean in disguise
        raise ConfigError(f"search.penalized.n_alphas is {n_alphas}; a search needs at least 2 penalties (the "
                          f"default, 20, runs from near-total to negligible shrinkage).")
    l1 = PENALTY_L1[method]
    if l1 == 0:
        return np.logspace(np.log10(RIDGE_RANGE[0]), np.log10(RIDGE_RANGE[1]), n_alphas)
    Xs, _, _ = _standardize(np.asarray(X, dtype=np.float64))
    yc = np.asarray(y, dtype=np.float64) - np.mean(y)
    top = float(np.max(np.abs(Xs.T @ yc))) / (len(yc) * l1)
    if not top > 0:
        top = 1.0
    return np.logspace(np.log10(top), np.log10(top * LASSO_RATIO), n_alphas)


@dataclass
class PenalizedCV:
    """Cross-validated penalised regression: the search table and the chosen fit."""

    table: pd.DataFrame
    """One row per (method, alpha): ``method, alpha, l1_wt, cv_mse_mean, cv_mse_sd, fold_*, n_nonzero, rank, selected``."""
    method: str
    alpha: float
    intercept: float
    coef: np.ndarray
    oof: np.ndarray
    """Out-of-fold predictions of the whole procedure, the choice of family and penalty included (nested
    cross-validation: each fold's prediction comes from the choice its own training part made)."""
    oof_selected: np.ndarray
    """Out-of-fold predictions of the chosen (method, alpha) itself: the search table's figures, optimistic as
    an estimate of the model's error because the held-out folds helped choose it."""
    fold_choices: list[tuple[str, float]] = field(default_factory=list)
    """The (method, alpha) each fold's training part chose (nested cross-validation)."""


def _penalized_cv_table(X: np.ndarray, y: np.ndarray, folds: np.ndarray, methods: Sequence[str], n_alphas: int,
                        fold_X: np.ndarray | None, count_nonzero: bool = True
                        ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Every (method, alpha)'s held-out errors over ``folds`` (the penalties from all rows given) and its
    out-of-fold predictions; with ``count_nonzero``, the predictors each keeps when fitted on all rows."""
    K = int(folds.max()) + 1
    rows, oofs = [], []
    for method in methods:
        alphas = penalty_grid(X, y, method, n_alphas)
        l1 = PENALTY_L1[method]
        fold_mse = np.empty((len(alphas), K))
        fold_pred = np.full((len(alphas), len(y)), np.nan)
        for f in range(K):
            tr, te = folds != f, folds == f
            Xf = fold_design(X, fold_X, f)
            b0s, B = penalized_path(Xf[tr], y[tr], alphas, l1)
            fold_pred[:, te] = b0s[:, None] + B @ Xf[te].T
            fold_mse[:, f] = np.mean((y[te][None, :] - fold_pred[:, te]) ** 2, axis=1)
        kept = np.sum(penalized_path(X, y, alphas, l1)[1] != 0, axis=1) if count_nonzero else None
        for i, a in enumerate(alphas):
            row = {"method": method, "alpha": float(a), "l1_wt": l1, "cv_mse_mean": float(fold_mse[i].mean()),
                   "cv_mse_sd": float(fold_mse[i].std(ddof=1)) if K > 1 else 0.0}
            row.update({f"fold_{f + 1}": float(fold_mse[i, f]) for f in range(K)})
            if kept is not None:
                row["n_nonzero"] = int(kept[i])
            rows.append(row)
            oofs.append(fold_pred[i])
    return rows, oofs


def _best_row(rows: list[dict[str, Any]]) -> int:
    """The row of the lowest mean held-out MSE (the first of ties)."""
    return int(np.argmin([r["cv_mse_mean"] for r in rows]))


def cv_penalized(X: np.ndarray, y: np.ndarray, folds: np.ndarray, methods: Sequence[str] = ("ridge", "lasso"),
                 n_alphas: int = 20, target: str = "target", fold_X: np.ndarray | None = None,
                 nested: bool = True) -> PenalizedCV:
    """Choose the penalised family and penalty by the mean held-out MSE over ``folds``; refit on all rows.

    Each method's penalties (:func:`penalty_grid`) are computed once from all the
    rows given (the training split), so every fold tries the same values; each
    fold fits the whole path at once (:func:`penalized_path`).

    The held-out error of the chosen penalty is biased low as an estimate of the model's error: of the
    ``2 x n_alphas`` fits, the one that happened to suit these folds best wins (Varma & Simon 2006, *BMC
    Bioinformatics* 7:91; Cawley & Talbot 2010, *JMLR* 11:2079). With ``nested`` (the default), ``oof`` comes
    from nested cross-validation instead: fold ``f`` is predicted by the family and penalty that the other
    folds chose among themselves (their own penalty grids, the other folds as inner folds), fitted on them, so
    the comparison of models and the prediction intervals built from ``oof`` judge the whole procedure, the
    choice included. It costs ``K`` more searches of ``K - 1`` folds, a few more closed-form or
    coordinate-descent paths. With 2 folds (one fold left inside a fold cannot judge a choice) each fold is
    predicted by the family and penalty of lowest error on the other fold instead (fitted on it; as
    :func:`other_fold_choices` judges the network search's choice): its own error never made the choice, though
    the models compared were fitted on it. ``oof_selected`` keeps the chosen penalty's own out-of-fold
    predictions, which ``oof`` is without ``nested``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    folds = np.asarray(folds)
    K = int(folds.max()) + 1
    if not methods:
        raise ConfigError("search.penalized.methods is empty; list at least one of ridge, lasso, elastic_net.")
    fold_X = None if fold_X is None else np.asarray(fold_X, dtype=np.float64)
    rows, oofs = _penalized_cv_table(X, y, folds, methods, n_alphas, fold_X)
    table = pd.DataFrame(rows)
    best = _best_row(rows)
    order = np.argsort(table["cv_mse_mean"].to_numpy(), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    method, alpha = str(table.loc[best, "method"]), float(table.loc[best, "alpha"])
    b0, b = fit_penalized(X, y, alpha, PENALTY_L1[method])
    table["rank"] = rank
    table["selected"] = np.arange(len(table)) == best
    oof, choices = oofs[best], []
    if nested and K > 2:
        oof = np.full(len(y), np.nan)
        for f in range(K):
            tr, te = folds != f, folds == f
            Xf = fold_design(X, fold_X, f)
            inner = folds[tr] - (folds[tr] > f)  # the other folds, numbered 0..K-2
            inner_rows, _ = _penalized_cv_table(Xf[tr], y[tr], inner, methods, n_alphas, None, count_nonzero=False)
            r = inner_rows[_best_row(inner_rows)]
            fb0, fb = fit_penalized(Xf[tr], y[tr], r["alpha"], r["l1_wt"])
            oof[te] = fb0 + Xf[te] @ fb
            choices.append((str(r["method"]), float(r["alpha"])))
    elif nested and K == 2:
        # one fold left inside a fold cannot judge a choice: each fold is predicted by the family and penalty of
        # lowest error on the other fold, fitted on it (as the network search's choice is judged,
        # other_fold_choices), so a fold's own error never made the choice
        oof = np.full(len(y), np.nan)
        picks = choices_by_other_folds(table[["fold_1", "fold_2"]].to_numpy()) or [best, best]
        for f, r in enumerate(picks):
            oof[folds == f] = oofs[r][folds == f]
            choices.append((str(rows[r]["method"]), float(rows[r]["alpha"])))
    nested_mse = float(np.mean((y - oof) ** 2))
    log.info("%s: penalised regression chosen by %d-fold CV: %s, alpha = %.4g (CV MSE %.5g, %d of %d predictors "
             "kept)%s", target, K, method, alpha, table.loc[best, "cv_mse_mean"], int(np.sum(b != 0)), len(b),
             (f"; nested CV, the choice made again inside each fold ({', '.join(f'{m} {a:.3g}' for m, a in choices)}): "
              if K > 2 else f"; each of the 2 folds predicted by the choice of the other ("
              f"{', '.join(f'{m} {a:.3g}' for m, a in choices)}): ") + f"MSE {nested_mse:.5g}" if choices else "")
    return PenalizedCV(table=table, method=method, alpha=alpha, intercept=b0, coef=b, oof=oof,
                       oof_selected=oofs[best], fold_choices=choices)


def ols_predictor(X: np.ndarray, y: np.ndarray):
    """``y ~ const + X`` by least squares, as a prediction function of new ``X``.

    A column that is constant over these rows, or a linear combination of the intercept and the columns
    before it (a fold's training part can hold one level of a covariate only), gets coefficient 0, as R's
    ``lm`` gives it ``NA``: the minimum-norm solution would instead give it part of the intercept (``c / (1 +
    c^2)`` of it for a constant ``c``), which moves the prediction of every sample where it takes another
    value, by half the intercept for a 0/1 column constant at 1.
    """
    X = np.asarray(X, dtype=np.float64)
    A = np.column_stack([np.ones(len(y)), X])
    beta, _, rank, _ = np.linalg.lstsq(A, y, rcond=None)
    if rank < A.shape[1]:
        from .design import redundant_columns

        keep = np.r_[True, ~redundant_columns(X)]
        beta = np.zeros(A.shape[1])
        beta[keep] = np.linalg.lstsq(A[:, keep], y, rcond=None)[0]
    return lambda Z: beta[0] + np.asarray(Z) @ beta[1:]


def cv_ols(X: np.ndarray, y: np.ndarray, folds: np.ndarray, fold_X: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold predictions of ``y ~ const + X`` by least squares on each fold's training part (on
    ``fold_X[f]`` where the predictors were chosen per fold: :func:`fold_design`)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.full(len(y), np.nan)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        if tr.sum() < X.shape[1] + 2:
            raise ModelError(f"A cross-validation fold leaves {int(tr.sum())} training samples for {X.shape[1] + 1} "
                             f"OLS terms; use fewer folds (split.folds) or fewer predictors.")
        Xf = fold_design(X, fold_X, int(f))
        out[te] = ols_predictor(Xf[tr], y[tr])(Xf[te])
    return out


def fold_logit(X: np.ndarray, codes: np.ndarray, names: list[str], classes: list[str], target: str = "target",
               separation: str = "firth"):
    """The logistic regression of one fold's training part, for prediction only: a separated fold is fitted
    by Firth's penalised likelihood (``separation='firth'``; ridge for more than two classes) or
    ridge-penalised (``'ridge'``, as ``ols.penalized``).

    A predictor that varies over the training split can be constant over a fold's training part (a
    covariate level whose samples all fall in the held-out fold, a gene measured in one sample), or a linear
    combination of the others there. Its coefficient is then not identifiable from the fold: it is left out
    of the fold's fit and predicts with coefficient 0 (as R's ``glm`` does with an ``NA`` coefficient), so
    that the fold is judged instead of the whole run stopping. The returned fit is for prediction only.
    """
    from dataclasses import replace

    from .design import redundant_columns
    from .logit import fit_logit

    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2 and X.shape[1] and len(X) > 1:
        redundant = redundant_columns(X)
        if redundant.any():
            log.info("%s: %s constant or collinear over a fold's training part; left out of that fold's logistic "
                     "regression (coefficient 0)", target, preview(np.asarray(names)[redundant]))
            keep = ~redundant
            inner = fold_logit(X[:, keep], codes, [n for n, k in zip(names, keep) if k], classes, target,
                               separation)
            coef = np.zeros((X.shape[1] + 1, inner.coef.shape[1]))
            coef[np.r_[True, keep]] = inner.coef
            return replace(inner, terms=["const", *map(str, names)], coef=coef, result=None, firth=None,
                           inference=None)
    try:
        return fit_logit(X, codes, names, classes, target=target,
                         separation="stop" if separation == "ridge" else "firth", inference=False)
    except ModelError as exc:
        if "separat" not in str(exc):
            raise
        return fit_logit(X, codes, names, classes, penalized=True, target=target)


def cv_logit(X: np.ndarray, codes: np.ndarray, folds: np.ndarray, names: list[str], classes: list[str],
             target: str = "target", separation: str = "firth", fold_X: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold class probabilities (samples x classes) of logistic regression.

    A fold whose training part is separated (see :func:`gexpred.logit.fit_logit`)
    is fitted as the whole training split would be: by Firth's penalised
    likelihood (``separation='firth'``; ridge for more than two classes) or
    ridge-penalised (``'ridge'``, as ``ols.penalized``); a log line says so.
    """
    from .logit import METHODS

    out = np.full((len(codes), len(classes)), np.nan)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        missing = sorted(set(range(len(classes))) - set(np.asarray(codes)[tr].tolist()))
        if missing:
            raise InputError(f"Target {target!r}: fold {int(f) + 1} leaves no training sample of class(es) "
                             f"{[classes[i] for i in missing]}; use fewer folds (split.folds) or add samples.")
        Xf = fold_design(X, fold_X, int(f))
        fit = fold_logit(Xf[tr], codes[tr], names, classes, target, separation)
        if fit.separation:
            log.info("%s: fold %d is separated; its logistic regression is fitted by %s", target, int(f) + 1,
                     METHODS[fit.method])
        out[te] = fit.predict_proba(Xf[te])
    return out


def candidate_summary(candidates: Sequence[dict[str, Any]]) -> list[str]:
    """The settings that differ between candidates, in config order."""
    if not candidates:
        return []
    keys = list(candidates[0])
    return [k for k in keys if len({repr(c.get(k)) for c in candidates}) > 1]

