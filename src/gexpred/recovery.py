"""Regulator recovery: does OLS evidence rank known regulators first?

Given a gold standard (targets x regulators, 1 = known edge), every candidate
regulator of a target gets a score, and the pooled ranking of all
(target, regulator) pairs is judged by AUROC and AUPR against the known
edges:

``ols``
    The pipeline's own procedure: the target's predictors are chosen on the
    training split as configured (``top_correlated`` or an explicit list), the
    target is regressed on them by OLS, and a candidate in the model scores
    its ``|t|``. Candidates left out of the model rank below every candidate
    in it, in order of ``|r|``.
``correlation``
    The baseline: ``|r|``, the absolute Pearson correlation with the target
    over the training samples.

A random ranking has AUROC 0.5 and AUPR equal to the share of known edges.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError, preview

log = logging.getLogger(__name__)

RECOVERY_COLUMNS = ["scope", "method", "n_targets", "n_pairs", "n_positive", "auroc", "aupr", "random_aupr",
                    "aupr_vs_random"]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)); ties count one half."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision.

    Pairs with tied scores enter the ranking together (one threshold per
    distinct score), so the result does not depend on the order of ties.
    """
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, y = np.asarray(scores)[order], labels[order]
    # last index of each block of tied scores
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(y)[ends]
    precision = tp / (ends + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def curves(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """ROC (fpr, tpr) and precision-recall points, one per distinct score threshold."""
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s, y = np.asarray(scores)[order], labels[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(y)[ends]
    fp = (ends + 1) - tp
    n_pos, n_neg = max(int(labels.sum()), 1), max(int((~labels).sum()), 1)
    return {"fpr": np.r_[0.0, fp / n_neg], "tpr": np.r_[0.0, tp / n_pos],
            "recall": tp / n_pos, "precision": tp / (ends + 1)}


def read_gold_standard(path: str) -> pd.DataFrame:
    """Read a targets x regulators 0/1 matrix (first column target ids, header regulator ids)."""
    from .io import read_matrix

    m = read_matrix(path)  # obs = columns (regulators), var = rows (targets)
    gs = pd.DataFrame(np.asarray(m.X).T, index=m.var_names, columns=m.obs_names)
    bad = ~np.isin(gs.to_numpy(), (0.0, 1.0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            f"Gold standard '{path}' must hold only 0 and 1 (1 = known regulatory edge), but target "
            f"{gs.index[r]!r}, regulator {gs.columns[c]!r} is {gs.iat[r, c]}. Binarise it first."
        )
    return gs.astype(np.int8)


def _ols_abs_t(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|t| of each predictor of ``y ~ const + X`` (NaN where not estimable)."""
    n, p = X.shape
    A = np.column_stack([np.ones(n), X])
    q, r = np.linalg.qr(A)
    if n <= p + 1 or np.min(np.abs(np.diag(r))) < 1e-10 * np.max(np.abs(np.diag(r))):
        return np.full(p, np.nan)
    beta = np.linalg.solve(r, q.T @ y)
    resid = y - A @ beta
    sigma2 = resid @ resid / (n - p - 1)
    rinv = np.linalg.inv(r)
    se = np.sqrt(sigma2 * np.sum(rinv**2, axis=1))
    return np.abs(beta / se)[1:]


def score_regulators(
    X_train: np.ndarray,
    genes: list[str],
    targets: list[str],
    candidates: list[str],
    chosen: dict[str, list[str]] | None = None,
    top_k: int | None = None,
) -> pd.DataFrame:
    """Score every candidate regulator of every target.

    Parameters
    ----------
    X_train
        Normalised training samples x genes.
    genes
        Column ids of ``X_train``.
    targets
        Targets to score.
    candidates
        Candidate regulators (genes of ``X_train``).
    chosen
        Per target, the predictors the OLS model uses. When absent, the
        ``top_k`` candidates most correlated with the target are used.
    top_k
        See ``chosen``.

    Returns
    -------
    pandas.DataFrame
        ``target, regulator, correlation, in_model, abs_t, ols_score`` for every
        (target, candidate) pair with candidate != target.
    """
    from .design import _corr_with, _is_constant, predictors_for, select_predictors

    index = {g: i for i, g in enumerate(genes)}
    cand = [c for c in candidates if c in index]
    targets = [t for t in targets if not _is_constant(X_train[:, index[t]])]
    if chosen is None:  # the pipeline's own choice of predictors
        table = select_predictors(X_train, genes, targets, {"top_correlated": int(top_k or 1), "from": cand})
        chosen = {t: predictors_for(table, t) for t in targets}
    C = X_train[:, [index[c] for c in cand]]
    pos = {c: i for i, c in enumerate(cand)}
    rows = []
    for t in targets:
        y = X_train[:, index[t]]
        r = _corr_with(C, y)
        model = [g for g in chosen.get(t, []) if g in index]
        abs_t = np.full(len(cand), np.nan)
        if model:
            for g, tv in zip(model, _ols_abs_t(X_train[:, [index[g] for g in model]], y)):
                if g in pos:
                    abs_t[pos[g]] = tv
        in_model = np.isfinite(abs_t)
        # in-model candidates rank above every other, by |t|; the rest by |r| (which is <= 1)
        ols_score = np.where(in_model, 2.0 + np.nan_to_num(abs_t), np.abs(np.nan_to_num(r)))
        for i, c in enumerate(cand):
            if c == t or not np.isfinite(r[i]):
                continue
            rows.append((t, c, float(r[i]), bool(in_model[i]), float(abs_t[i]), float(ols_score[i])))
    return pd.DataFrame(rows, columns=["target", "regulator", "correlation", "in_model", "abs_t", "ols_score"])


def labelled(scores: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """The scored pairs that are judged, with their 0/1 ``label``.

    Only targets that are rows of the gold standard with at least one known
    regulator among their scored candidates, and only candidates that are
    columns of the gold standard.
    """
    s = scores[scores["target"].isin(gold.index) & scores["regulator"].isin(gold.columns)].copy()
    g = gold.stack()
    g.index.names = ["target", "regulator"]
    s["label"] = g.reindex(pd.MultiIndex.from_frame(s[["target", "regulator"]])).fillna(0).to_numpy().astype(bool)
    return s[s.groupby("target")["label"].transform("any")] if len(s) else s


def method_scores(s: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ranking score of each method for labelled pairs."""
    return {"ols": s["ols_score"].to_numpy(), "correlation": s["correlation"].abs().to_numpy()}


def evaluate(scores: pd.DataFrame, gold: pd.DataFrame, scope: str) -> pd.DataFrame:
    """AUROC and AUPR of the OLS and correlation rankings against the gold standard (see :func:`labelled`)."""
    s = labelled(scores, gold)
    if s.empty:
        return pd.DataFrame(columns=RECOVERY_COLUMNS)
    y = s["label"].to_numpy()
    prevalence = float(y.mean())
    rows = []
    for method, score in method_scores(s).items():
        ap = average_precision(score, y)
        rows.append((scope, method, int(s["target"].nunique()), len(s), int(y.sum()), auroc(score, y), ap,
                     prevalence, ap / prevalence))
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


def describe_missing(gold: pd.DataFrame, genes: list[str]) -> str:
    """Log-friendly summary of gold-standard ids absent from the data."""
    gs = set(genes)
    miss_t = [t for t in gold.index if t not in gs]
    miss_r = [r for r in gold.columns if r not in gs]
    return (f"{len(miss_t)} of {len(gold.index)} gold-standard targets and {len(miss_r)} of {len(gold.columns)} "
            f"regulators are not in the data (e.g. {preview(miss_t[:3] + miss_r[:2])})")
