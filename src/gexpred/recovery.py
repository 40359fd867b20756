"""Regulator recovery: which evidence ranks the known regulators of a target first?

Given a gold standard (targets x regulators, 1 = known edge), every candidate
regulator of every target gets a score from each evidence source
(:func:`collect_evidence`), and the pooled ranking of all (target, regulator)
pairs is judged by AUROC and AUPR against the known edges
(:func:`evaluate_evidence`):

``ols``
    The pipeline's own procedure: the target's predictors are chosen on the
    training split as configured (``top_correlated`` or an explicit list), the
    target is regressed on them by OLS, and a candidate in the model scores
    its ``|t|``. Candidates left out of the model rank below every candidate
    in it, in order of ``|r|`` (:func:`score_regulators`).
``penalized``
    ``|t|`` of ridge regression on every candidate, one penalty for all
    targets (:func:`ridge_evidence`).
``network``
    Mean absolute gradient of a small network per target on every candidate
    (:func:`network_evidence`).
``correlation``
    The baseline: ``|r|``, the absolute Pearson correlation with the target
    over the training samples.

Each source is judged as it is and after the context normalisation
:func:`clr`; two combinations of the normalised sources are judged too
(:data:`COMBINED`): :func:`clr_mean`, the mean of their CLR scores (the
default ranking), and :func:`rank_average`, the mean of their ranks.
:func:`edge_table` writes the top of one ranking as the inferred network. A random ranking has AUROC 0.5 and AUPR equal to the share of known
edges.
"""
from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, plural, preview

log = logging.getLogger(__name__)

RECOVERY_COLUMNS = ["scope", "method", "normalization", "n_targets", "n_pairs", "n_positive", "auroc", "aupr", "random_aupr",
                    "aupr_vs_random"]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)); ties count one half."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # here: scipy.stats costs the jobs that only read a gold standard ~0.7 s

    ranks = rankdata(scores)
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
    """Read the known regulatory edges: a targets x regulators 0/1 matrix (first column the target ids, header
    the regulator ids; R's layout, a header one field short, too) or an edge list (``regulator, target`` or
    ``regulator, target, 1/0`` per line, as DREAM's gold standards; ids may be numbers, as Entrez ids). A file of
    two or three fields a line is a matrix when its second fields are 0/1, blanks or other numbers with some 0/1
    (the blanks and numbers then refused cell by cell), an edge list when none is 0/1, and refused when 0/1 values
    and ids both occur. An edge list's first line is a header when its third field is
    not a number, or, with two fields, when they read like regulator / target (``TF``, ``source`` ... and ``target``,
    ``gene``, ``TG`` ...). Returns the
    targets x regulators 0/1 matrix (int8). Every problem is refused in one paragraph naming the line or the
    target and regulator."""
    from .io import TEXT_NA, _delimiter_name, text_rows

    what = "Gold standard"
    rows, sep = text_rows(path, what)
    rows = [(line, [f.strip() for f in r]) for line, r in rows]
    width = {len(r) for _, r in rows}
    if width == {1}:
        other = "," if sep == "\t" else "\t"
        hint = (f" Its lines hold {_delimiter_name(other)}s: name the file {'.csv' if other == ',' else '.tsv'} "
                f"(fields are {_delimiter_name(sep)}-separated in a file named so)."
                if any(other in r[0] for _, r in rows) else "")
        raise InputError(f"{what} '{path}' has one field a line (line {rows[0][0]}: {rows[0][1][0]!r}), so it holds "
                         f"neither a targets x regulators matrix nor an edge list (regulator, target[, 1]).{hint}")
    if len(rows) == 1 and width <= {2, 3} and rows[0][1][0].lower() not in ("target", "targets", "gene", ""):
        return _gold_from_edges(rows, path)  # one known edge (or a header alone, refused there)
    if len(rows) < 2:
        raise InputError(f"{what} '{path}' has {'no' if not rows else 'one'} line{'' if rows else 's'}: it needs a "
                         f"header of regulator ids and a row per target, or one line per known edge.")

    if not (width <= {2, 3} and len(width) == 1):
        return _gold_from_matrix(rows, path)
    # two or three fields a line: a matrix of one or two regulators holds 0/1 (or a blank to refuse) in its second
    # field, an edge list ids (numbers too: Entrez ids)
    second = [(line, r[1]) for line, r in rows[1:]]
    zero_one = [_is_01(v) for _, v in second]
    na_words = {w.upper() for w in TEXT_NA}
    flags = [z or v.upper() in na_words for z, (_, v) in zip(zero_one, second)]
    if all(flags) or (any(zero_one) and all(f or _is_number(v) for f, (_, v) in zip(flags, second))):
        return _gold_from_matrix(rows, path)  # 0/1 with blanks or other numbers: refused cell by cell
    if not any(zero_one):
        return _gold_from_edges(rows, path)
    flag = next(k for k, f in enumerate(flags) if f)
    other = next(k for k, f in enumerate(flags) if not f)
    raise InputError(
        f"Gold standard '{path}' has two or three fields a line, but its second field holds both 0/1 values (line "
        f"{second[flag][0]}: {second[flag][1]!r}) and ids (line {second[other][0]}: {second[other][1]!r}), so it is "
        f"neither a matrix of regulators (0/1 under each) nor an edge list (regulator, target[, 1]). Check those "
        f"lines."
    )


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _is_01(v: str) -> bool:
    """Whether a field reads as 0 or 1 (``0``, ``1``, ``0.0``, ``1.0``)."""
    try:
        return float(v) in (0.0, 1.0) and v.strip().lower() not in ("inf", "nan")
    except ValueError:
        return False


def _gold_values(values: list[str], path, line: int, target: str, regulators: list[str]) -> list[int]:
    out = []
    for v, reg in zip(values, regulators):
        if not _is_01(v):
            why = "is empty" if v == "" else f"is {v!r}"
            signed = (_is_number(v) and float(v) < 0) or v in ("+", "-")
            fix = ("Write 1 for every known edge whatever its sign (repressing ones too) and 0 where none is known."
                   if signed else "Write 0 where no edge is known, and binarise scores first.")

            raise InputError(
                f"Gold standard '{path}' must hold only 0 and 1 (1 = known regulatory edge), but target {target!r}, "
                f"regulator {reg!r} (line {line}) {why}. {fix}"
            )
        out.append(int(float(v)))
    return out


def _gold_from_matrix(rows: list[tuple[int, list[str]]], path) -> pd.DataFrame:
    header = rows[0][1]
    n = len(rows[1][1])
    regulators = header if len(header) == n - 1 else header[1:]  # R writes no name over the row names
    for line, r in rows[1:]:
        if len(r) != len(regulators) + 1:
            raise InputError(
                f"Gold standard '{path}' has ragged rows: line {line} (target {r[0]!r}) has {plural(len(r), 'field')} but "
                f"the header names {plural(len(regulators), 'regulator')}. It is read as a targets x regulators matrix (first "
                f"column the target ids) unless every line has 2 or 3 fields with ids in the second (an edge list: "
                f"regulator, target[, 1])."
            )
    from .io import TEXT_NA

    na_words = {w.upper() for w in TEXT_NA}
    if len(header) == n > 3 and not any(_is_number(r[1]) or r[1].upper() in na_words for _, r in rows[1:]):
        raise InputError(
            f"Gold standard '{path}' has {n} fields a line and ids, not 0/1, in its second column (line {rows[1][0]}: "
            f"{rows[1][1][0]!r}, {rows[1][1][1]!r}): an edge list with more columns (as TRRUST's regulator, target, "
            f"mode, PubMed ids)? An edge list has 2 or 3 fields a line (regulator, target[, 1]): keep only its "
            f"regulator and target columns (e.g. `cut -f1,2`). A targets x regulators matrix holds 0/1 under its "
            f"header of regulator ids."
        )
    if "" in regulators:
        field = regulators.index("") + 1 + (len(header) - len(regulators))
        raise InputError(f"Gold standard '{path}' has an empty regulator id in its header (line {rows[0][0]}, field "
                         f"{field}): the header names the regulator of each column. Fill it in or delete the column.")
    empty = [line for line, r in rows[1:] if r[0] == ""]
    if empty:
        raise InputError(f"Gold standard '{path}' has a row without a target id (line {empty[0]}"
                         f"{f' and {len(empty) - 1} more' if len(empty) > 1 else ''}): the first column holds the "
                         f"target ids. Fill it in or delete the row.")
    dup = pd.Index(regulators)[pd.Index(regulators).duplicated()].unique().tolist()
    if dup:
        raise InputError(f"Gold standard '{path}' names regulators more than once in its header: {preview(dup)}. "
                         f"Merge their columns (1 where either has 1).")
    targets = [r[0] for _, r in rows[1:]]
    dup = pd.Index(targets)[pd.Index(targets).duplicated()].unique().tolist()
    if dup:
        raise InputError(f"Gold standard '{path}' lists targets more than once: {preview(dup)}. Merge their rows (1 "
                         f"where either has 1).")
    values = [_gold_values(r[1:], path, line, r[0], regulators) for line, r in rows[1:]]
    return _with_known_edges(pd.DataFrame(values, index=pd.Index(targets, dtype=object),
                                          columns=pd.Index(regulators, dtype=object), dtype=np.int8), path)


def _gold_from_edges(rows: list[tuple[int, list[str]]], path) -> pd.DataFrame:
    first = rows[0][1]

    def words(field: str) -> set[str]:
        return set(re.split(r"[^a-z0-9]+", field.lower()))

    header = (not _is_number(first[2])) if len(first) == 3 else bool(
        words(first[0]) & {"regulator", "regulators", "tf", "tfs", "source", "from"}
        and words(first[1]) & {"target", "targets", "gene", "genes", "to", "tg", "tgs"})
    if header:
        rows = rows[1:]
    if not rows:
        raise InputError(f"Gold standard '{path}' holds a header ({', '.join(map(repr, first))}) and no edge. Add "
                         f"one line per known edge (regulator, target[, 1]).")
    known: dict[tuple[str, str], int] = {}
    for line, r in rows:
        if not r[0] or not r[1]:
            raise InputError(f"Gold standard '{path}' (an edge list: regulator, target[, 1]) has a line without "
                             f"a regulator or a target: line {line}. Fill it in or delete the line.")
        w = _gold_values(r[2:3], path, line, r[1], [r[0]])[0] if len(r) == 3 else 1
        pair = (r[1], r[0])
        if known.get(pair, w) != w:
            raise InputError(f"Gold standard '{path}' lists regulator {r[0]!r} -> target {r[1]!r} both as an edge "
                             f"(1) and as no edge (0), the second time on line {line}. Keep one.")
        known[pair] = w
    targets = list(dict.fromkeys(t for t, _ in known))
    regulators = list(dict.fromkeys(g for _, g in known))
    gs = pd.DataFrame(0, index=pd.Index(targets, dtype=object), columns=pd.Index(regulators, dtype=object),
                      dtype=np.int8)
    for (t, g), w in known.items():
        if w:
            gs.at[t, g] = 1
    log.info("gold standard %s: an edge list of %d known edges among %d targets and %d regulators", path,
             int(gs.to_numpy().sum()), len(targets), len(regulators))
    return _with_known_edges(gs, path)


def _with_known_edges(gs: pd.DataFrame, path) -> pd.DataFrame:
    """``gs``, refused when it holds no known edge (no 1): then no ranking could be judged."""
    if not gs.to_numpy().any():
        raise InputError(f"Gold standard '{path}' holds no known edge: every entry is 0 ({len(gs.index):,} "
                         f"target(s) x {len(gs.columns):,} regulator(s)), so regulator recovery "
                         f"has nothing to find. Write 1 for each known regulatory edge (an edge list: regulator, "
                         f"target or regulator, target, 1).")
    return gs


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


def describe_missing(gold: pd.DataFrame, genes: list[str]) -> str:
    """Log-friendly summary of gold-standard ids absent from the data."""
    gs = set(genes)
    miss_t = [t for t in gold.index if t not in gs]
    miss_r = [r for r in gold.columns if r not in gs]
    return (f"{len(miss_t)} of {len(gold.index)} gold-standard targets and {len(miss_r)} of {len(gold.columns)} "
            f"regulators are not in the data" + (f" (e.g. targets {preview(miss_t[:3])}" if miss_t else "")
            + (f"{'; ' if miss_t else ' (e.g. '}regulators {preview(miss_r[:2])}" if miss_r else "")
            + (")" if miss_t or miss_r else ""))


# --------------------------------------------------------------------------- evidence over every candidate
EVIDENCE_SOURCES = ("ols", "penalized", "network", "correlation")
"""The evidence sources of :func:`evidence`, in the order tables and figures show them."""

METHOD_LABELS = {
    "ols": "OLS |t| (the run's predictor choice)",
    "penalized": "ridge |t| (every candidate)",
    "network": "network mean |gradient| (every candidate)",
    "correlation": "|correlation| (baseline)",
    "clr_mean": "mean of the sources' CLR scores",
    "rank_average": "rank average of the sources",
    "tf_activity": "TF activity from other genes' known regulators (uses the gold standard)",
}

PRIOR_RANKINGS = ("tf_activity",)
"""Rankings that use the gold standard itself as prior knowledge (:func:`add_prior_evidence`): each
target is scored without its own known regulators, but they are not comparable with the gold-free
rankings, and never enter :data:`COMBINED`."""

COMBINED = ("clr_mean", "rank_average")
"""The rankings that combine the sources (after :func:`clr`, whatever ``normalization`` is)."""


def standardize(A: np.ndarray) -> np.ndarray:
    """Columns of ``A`` centred and scaled to standard deviation 1 (ddof 1); constant columns become 0."""
    from .design import _is_constant

    A = np.asarray(A, dtype=np.float64)
    sd = A.std(axis=0, ddof=1) if len(A) > 1 else np.zeros(A.shape[1])
    ok = ~_is_constant(A)
    return np.where(ok, (A - A.mean(axis=0)) / np.where(ok & (sd > 0), sd, 1.0), 0.0)


def clr(S: np.ndarray) -> np.ndarray:
    """Context likelihood of relatedness of a targets x regulators score matrix.

    Each score is turned into a z-score twice, against the other candidates of
    its target (row) and against the other targets of its regulator (column);
    the result is ``sqrt(max(z_row, 0)**2 + max(z_col, 0)**2)`` (Faith et al.
    2007, PLoS Biol 5:e8, there on mutual information). A pair scores high when
    it stands out in its own context, which makes scores of targets with many
    strong associations comparable with those of targets with few: the ranking
    that AUROC and AUPR judge is one pooled list of all pairs. NaN entries (a
    target's own column) are left out of the means and standard deviations and
    stay NaN; a row or column without spread contributes 0.
    """
    S = np.asarray(S, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows or columns
        parts = []
        for axis in (1, 0):
            mean = np.nanmean(S, axis=axis, keepdims=True)
            sd = np.nanstd(S, axis=axis, keepdims=True)
            z = (S - mean) / np.where(sd > 0, sd, np.inf)
            parts.append(np.maximum(np.nan_to_num(z, nan=0.0), 0.0))
    out = np.sqrt(parts[0] ** 2 + parts[1] ** 2)
    out[np.isnan(S)] = np.nan
    return out


@dataclass
class RidgeEvidence:
    """Result of :func:`ridge_evidence`.

    ``coef`` and ``abs_t`` are targets x candidates (standardised units; NaN for
    a target's own column and for constant targets); ``lam`` is the penalty
    each target was fitted with, ``lam_target`` the one its own
    cross-validation chose from ``lambdas`` (``cv_mse``: lambdas x targets, the
    mean held-out MSE over the folds on the standardised scale; the two differ
    when the penalty is shared), ``lam_min`` the penalty of the lowest CV error.
    """

    coef: np.ndarray
    abs_t: np.ndarray
    lam: np.ndarray
    lam_min: np.ndarray
    lambdas: np.ndarray
    cv_mse: np.ndarray
    lam_target: np.ndarray


def ridge_lambdas(s: np.ndarray, n_lambdas: int = 30) -> np.ndarray:
    """Log-spaced penalties from 1e-4 to 10 times the largest squared singular value of a design."""
    s2 = np.asarray(s, dtype=np.float64) ** 2
    top = float(s2.max()) if s2.size and s2.max() > 0 else 1.0
    return np.logspace(np.log10(top * 1e-4), np.log10(top * 10.0), n_lambdas)


def _ridge_fit(U: np.ndarray, s: np.ndarray, Vt: np.ndarray, Y: np.ndarray,
               lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and |t| (targets x p) of ridge with penalty ``lam``, from a centred design's SVD."""
    n = len(U)
    f = s / (s**2 + lam)
    UtY = U.T @ Y
    B = (Vt.T @ (f[:, None] * UtY)).T
    df = float(np.sum(s * f))  # trace of the hat matrix
    rss = np.sum((Y - U @ ((s * f)[:, None] * UtY)) ** 2, axis=0)
    sigma2 = rss / max(n - 1 - df, 1e-9)
    var = (Vt.T**2) @ (f**2)  # diag of V diag(f^2) V' = diag((Z'Z + lam I)^-1 Z'Z (Z'Z + lam I)^-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(B) / np.sqrt(sigma2[:, None] * var[None, :])
    return B, t


def ridge_cv(Z: np.ndarray, Y: np.ndarray, folds: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """Held-out MSE of ridge for every penalty and target: folds x lambdas x targets (one SVD per fold)."""
    K = int(np.max(folds)) + 1
    out = np.empty((K, len(lambdas), Y.shape[1]))
    for f in range(K):
        tr, te = folds != f, folds == f
        mz, my = Z[tr].mean(axis=0), Y[tr].mean(axis=0)
        u, s, vt = np.linalg.svd(Z[tr] - mz, full_matrices=False)
        uty = u.T @ (Y[tr] - my)
        Zte = (Z[te] - mz) @ vt.T  # held-out samples in the fold's singular basis
        for i, lam in enumerate(lambdas):
            pred = Zte @ ((s / (s**2 + lam))[:, None] * uty) + my
            out[f, i] = np.mean((Y[te] - pred) ** 2, axis=0)
    return out


def ridge_evidence(Z: np.ndarray, Y: np.ndarray, folds: np.ndarray, self_col: np.ndarray | None = None,
                   lambdas: np.ndarray | None = None, rule: str = "1se", shared: bool = False) -> RidgeEvidence:
    """Ridge regression of every target on every candidate, with ``|t|`` of each coefficient.

    Candidates (``Z``, samples x p) and targets (``Y``, samples x T) are
    standardised on the given samples. Each target's penalty is chosen by
    K-fold cross-validation (``folds``) from ``lambdas`` (default
    :func:`ridge_lambdas`): with ``rule="1se"`` the largest penalty whose CV
    error is within one standard error of the lowest (the one-standard-error
    rule of Breiman et al. 1984 and glmnet's ``lambda.1se``: the most
    regularised model the data cannot tell from the best), with ``"min"`` the
    lowest. All targets share one singular value decomposition per fold and one
    of the whole design, so thousands of targets cost seconds.

    With ``shared=True`` every target is fitted with one penalty: the median
    of the targets' own choices (the lower median, over the targets that vary).
    Scores meant for one pooled ranking of all (target, candidate) pairs need
    it: ``|t|`` shrinks with the penalty, so under per-target penalties a
    regulator's scores across its targets (the context :func:`clr` compares
    them in) differ by each target's penalty as well as by the evidence. On the
    bundled compendium the shared penalty lifted ridge's AUPR after CLR from
    0.128 to 0.136 (on DREAM4 every target chose the same penalty anyway).

    ``|t|`` is the coefficient over its standard error
    ``sigma sqrt(diag((Z'Z + lam I)^-1 Z'Z (Z'Z + lam I)^-1))`` with
    ``sigma^2 = RSS / (n - 1 - df)`` and ``df`` the trace of the hat matrix:
    unlike the coefficient itself it discounts a candidate whose effect is
    shared with correlated candidates.

    ``self_col[j]`` is the column of ``Z`` that is target ``j`` itself (-1 if
    none): such a target is refitted without that column (same penalty), and
    its own entry is NaN.
    """
    if rule not in ("1se", "min"):
        raise ValueError(f"rule must be '1se' or 'min', not {rule!r}")
    Z = standardize(Z)
    Y = standardize(Y)
    n, p = Z.shape
    T = Y.shape[1]
    folds = np.asarray(folds)
    self_col = np.full(T, -1) if self_col is None else np.asarray(self_col, dtype=np.int64)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    lambdas = ridge_lambdas(s) if lambdas is None else np.sort(np.asarray(lambdas, dtype=np.float64))
    E = ridge_cv(Z, Y, folds, lambdas)
    mse = E.mean(axis=0)
    se = E.std(axis=0, ddof=1) / np.sqrt(len(E)) if len(E) > 1 else np.zeros_like(mse)
    cols = np.arange(T)
    i_min = np.argmin(mse, axis=0)
    if rule == "1se":
        within = mse <= (mse[i_min, cols] + se[i_min, cols])[None, :]
        i_lam = len(lambdas) - 1 - np.argmax(within[::-1], axis=0)  # the largest penalty within one SE
    else:
        i_lam = i_min
    i_target = i_lam
    varies = np.sum(Y**2, axis=0) > 0
    if shared and varies.any():
        own = np.sort(i_lam[varies])
        i_lam = np.full(T, own[(len(own) - 1) // 2])
    B = np.full((T, p), np.nan)
    t = np.full((T, p), np.nan)
    for i in np.unique(i_lam):
        js = np.flatnonzero(i_lam == i)
        B[js], t[js] = _ridge_fit(U, s, Vt, Y[:, js], float(lambdas[i]))
    for j in np.flatnonzero(self_col >= 0):
        keep = np.arange(p) != self_col[j]
        u, ss, vt = np.linalg.svd(Z[:, keep], full_matrices=False)
        b, tj = _ridge_fit(u, ss, vt, Y[:, [j]], float(lambdas[i_lam[j]]))
        B[j, keep], t[j, keep] = b[0], tj[0]
        B[j, self_col[j]] = t[j, self_col[j]] = np.nan
    B[~varies], t[~varies] = np.nan, np.nan
    return RidgeEvidence(coef=B, abs_t=t, lam=lambdas[i_lam], lam_min=lambdas[i_min], lambdas=lambdas, cv_mse=mse,
                         lam_target=lambdas[i_target])


def gradient_importance(model, X: np.ndarray, block: int = 64) -> np.ndarray:
    """Mean absolute sensitivity of each output of a network to each input, outputs x inputs.

    ``mean over samples |d z_k / d x~_j|`` where ``x~`` are the inputs and ``z``
    the outputs standardised as the network standardises them (its
    ``x_scale``/``y_scale``): the change of output ``k``, in its standard
    deviations, per standard deviation of input ``j`` at the observed samples,
    the local counterpart of a standardised regression coefficient. ``model``
    is a :class:`gexpred.nn.GeneMLP` (any number of outputs) or an
    :class:`~gexpred.nn.EnsembleMLP` (the mean over its members); outputs are
    taken ``block`` at a time (batched backward passes).
    """
    import torch

    from .nn import members_of

    X = np.asarray(X, dtype=np.float32)
    total = None
    members = members_of(model)
    for m in members:
        m.eval()
        x = torch.as_tensor(X).requires_grad_(True)
        out = m.forward(x)  # standardised outputs, samples x n_out
        k_out = out.shape[1]
        rows = []
        for lo in range(0, k_out, block):
            hi = min(k_out, lo + block)
            eye = torch.zeros(hi - lo, *out.shape)
            eye[torch.arange(hi - lo), :, torch.arange(lo, hi)] = 1.0
            (g,) = torch.autograd.grad(out, x, grad_outputs=eye, is_grads_batched=True, retain_graph=True)
            rows.append((g.abs() * m.x_scale).mean(dim=1))  # d z / d x~ = d z / d x * sd(x)
        imp = torch.cat(rows).detach().numpy().astype(np.float64)
        total = imp if total is None else total + imp
    return total / len(members)


class _Adam:
    """Adam (``torch.optim.Adam``'s defaults: betas 0.9, 0.999, eps 1e-8, no weight decay) by PyTorch's fused kernel
    (one pass over the parameters and both moments; torch >= 2.4 on the CPU), called as ``Adam(fused=True)`` calls
    it, so the updates are the same to the bit. Not through ``torch.optim``: its first step imports
    ``torch._dynamo``, over a second of the job (:class:`gexpred.nn.Optimizer` avoids it for the same reason).
    In the recovery networks the first layer's parameters are millions of numbers, and an unfused update's several
    passes over them took a fifth of each epoch."""

    def __init__(self, params: list, lr: float) -> None:
        import torch

        self.params, self.lr = params, float(lr)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        import torch

        with torch.no_grad():
            torch._foreach_add_(self.steps, 1)
            torch._fused_adam_(self.params, [p.grad for p in self.params], self.exp_avg, self.exp_avg_sq, [],
                               self.steps, amsgrad=False, lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=0.0,
                               eps=1e-8, maximize=False)


def _adam(params: list, lr: float):
    """Adam over ``params``: :class:`_Adam` where this torch has the fused CPU kernel, else ``torch.optim.Adam``
    (the same update up to float rounding)."""
    import torch

    try:  # one step on a throw-away parameter tells whether the kernel exists
        probe = torch.zeros(2, requires_grad=True)
        probe.grad = torch.ones(2)
        _Adam([probe], lr).step()
    except (AttributeError, RuntimeError, TypeError, NotImplementedError):
        return torch.optim.Adam(params, lr=lr)
    return _Adam(params, lr)


def network_evidence(Z: np.ndarray, Y: np.ndarray, folds: np.ndarray, self_col: np.ndarray | None = None,
                     hidden: int = 16, weight_decays: tuple[float, ...] = (0.01, 0.1, 1.0), epochs: int = 300,
                     lr: float = 0.01, seed: int = 0, chunk: int = 512) -> tuple[np.ndarray, dict]:
    """One small network per target on every candidate; candidates scored by their gradients.

    Every target gets a network ``p -> hidden (ReLU) -> 1`` on the
    standardised candidates for each L2 penalty of ``weight_decays`` (loss: mean
    squared error plus ``weight_decay`` times the sum of squared weights).
    The networks of a chunk of targets, and all penalties, are trained as one
    program: the weights of network ``i`` are slice ``i`` of batched tensors,
    full-batch Adam for ``epochs`` steps. Fold 0 of ``folds`` is held out: each
    network keeps the weights of its epoch of lowest held-out error, and each
    target the penalty of lowest held-out error (both chosen without the gold
    standard). A candidate's score is the mean absolute gradient of the kept
    network's output with respect to it over the samples (standardised units:
    the local counterpart of a standardised coefficient). A target that is a
    candidate itself has that input removed (its weights held at zero) and its
    own entry NaN.

    Returns the targets x candidates scores and a summary (networks trained,
    median kept epoch, penalties chosen, seconds).
    """
    import time

    import torch

    Z = standardize(Z)
    Y = standardize(Y)
    n, p = Z.shape
    T = Y.shape[1]
    self_col = np.full(T, -1) if self_col is None else np.asarray(self_col, dtype=np.int64)
    held = np.asarray(folds) == 0
    if held.all() or not held.any():
        raise ValueError("network_evidence needs folds with a fold 0 and other folds")
    out = np.full((T, p), np.nan)
    varying = np.flatnonzero(np.sum(Y**2, axis=0) > 0)
    G = len(weight_decays)
    x = torch.as_tensor(Z, dtype=torch.float32)
    fit_t, val_t = torch.as_tensor(~held), torch.as_tensor(held)
    chosen_wd: list[float] = []
    kept_epoch: list[int] = []
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    for lo in range(0, len(varying), chunk):
        js = varying[lo:lo + chunk]
        N = len(js) * G  # network k: target js[k // G], penalty weight_decays[k % G]
        y = torch.as_tensor(Y[:, js].T, dtype=torch.float32).repeat_interleave(G, dim=0)  # N x n
        # a target's own input: its weights start at zero and get no gradient, so Adam leaves them at zero
        own = [(i * G + g, int(self_col[j])) for i, j in enumerate(js) if self_col[j] >= 0 for g in range(G)]
        own_net = torch.tensor([k for k, _ in own], dtype=torch.long)
        own_in = torch.tensor([c for _, c in own], dtype=torch.long)
        wd2 = 2.0 * torch.tensor(weight_decays, dtype=torch.float32).repeat(len(js))[:, None, None]
        W1 = torch.randn(N, p, hidden, generator=gen) * math.sqrt(2.0 / p)
        W1[own_net, own_in] = 0.0
        W1.requires_grad_(True)
        b1 = torch.zeros(N, 1, hidden, requires_grad=True)
        W2 = (torch.randn(N, hidden, 1, generator=gen) * math.sqrt(1.0 / hidden)).requires_grad_(True)
        b2 = torch.zeros(N, 1, 1, requires_grad=True)
        params = [W1, b1, W2, b2]
        opt = _adam(params, lr)
        xb = x.expand(N, n, p)

        def forward(xx: torch.Tensor) -> torch.Tensor:
            return torch.baddbmm(b2, torch.relu(torch.baddbmm(b1, xx, W1)), W2)[..., 0]

        best = torch.full((N,), math.inf)
        best_epoch = torch.zeros(N, dtype=torch.long)
        kept = [q.detach().clone() for q in params]
        for epoch in range(1, epochs + 1):
            opt.zero_grad()
            sq = (forward(xb) - y) ** 2
            sq[:, fit_t].mean(dim=1).sum().backward()
            with torch.no_grad():
                # the penalty weight_decay * (|W1|^2 + |W2|^2): its gradient, added to the error's directly
                W1.grad.addcmul_(W1, wd2)
                W2.grad.addcmul_(W2, wd2)
                W1.grad[own_net, own_in] = 0.0
                val = sq[:, val_t].mean(dim=1)  # the weights before this step's update
                better = val < best
                if better.any():
                    best = torch.where(better, val, best)
                    best_epoch[better] = epoch - 1
                    for k, q in zip(kept, params):
                        k[better] = q.detach()[better]
            opt.step()
        with torch.no_grad():
            for k, q in zip(kept, params):
                q.copy_(k)
        pick = best.view(len(js), G).argmin(dim=1)
        rows = torch.arange(len(js)) * G + pick
        xg = x.expand(len(js), n, p).clone().requires_grad_(True)
        net = torch.baddbmm(b2[rows], torch.relu(torch.baddbmm(b1[rows], xg, W1[rows])), W2[rows])
        (g,) = torch.autograd.grad(net.sum(), xg)
        out[js] = g.abs().mean(dim=1).numpy()
        chosen_wd += [weight_decays[int(k)] for k in pick]
        kept_epoch += best_epoch[rows].tolist()
        log.info("network evidence: %d of %d targets (%d networks each) in %.0f s", min(lo + chunk, len(varying)),
                 len(varying), G, time.perf_counter() - start)
    for j in np.flatnonzero(self_col >= 0):
        out[j, self_col[j]] = np.nan
    wd_counts = {f"{w:g}": int(sum(c == w for c in chosen_wd)) for w in weight_decays}
    return out, {"networks": int(len(varying) * G), "median_kept_epoch": float(np.median(kept_epoch)) if kept_epoch
                 else math.nan, "weight_decay_chosen": wd_counts, "seconds": round(time.perf_counter() - start, 1)}


def global_ranks(S: np.ndarray) -> np.ndarray:
    """Fractional ranks (0, 1] of the finite entries of ``S`` pooled over all pairs (ties share a rank); NaN
    stays NaN."""
    S = np.asarray(S, dtype=np.float64)
    out = np.full(S.shape, np.nan)
    ok = np.isfinite(S)
    from scipy.stats import rankdata

    out[ok] = rankdata(S[ok]) / max(int(ok.sum()), 1)
    return out


def clr_mean(scores: dict[str, np.ndarray]) -> np.ndarray:
    """Mean over the sources of each pair's score, ``scores`` being each source's :func:`clr` scores (as
    :meth:`Evidence.context` gives them); a pair any source could not score (NaN) is NaN.

    CLR scores share one scale whatever the source (each is the root of the squared z-scores of the pair
    against its target's and its regulator's backgrounds), so their mean keeps how far above its backgrounds
    each source puts a pair, which ranks flatten: a pair one source scores far above the rest keeps its lead.
    On the bundled compendium the mean of the four sources' CLR scores ranked the known regulators better than
    their rank average (AUPR 0.129 against 0.119), and on the DREAM4 in-silico compendium too (0.107 against
    0.096; benchmarks/bench_grn.py).
    """
    return np.mean(list(scores.values()), axis=0)


def rank_average(scores: dict[str, np.ndarray]) -> np.ndarray:
    """Mean over the sources of each pair's pooled fractional rank (:func:`global_ranks`); a pair
    any source could not score (NaN) is NaN."""
    return np.mean([global_ranks(S) for S in scores.values()], axis=0)


@dataclass
class Evidence:
    """Scores of every (target, candidate) pair from every evidence source.

    ``scores[source]`` is targets x candidates (higher = more likely a
    regulator; NaN for a target's own column and pairs the source could not
    score); ``info`` what each source reports of itself (penalties, networks).
    ``prior`` holds rankings of :data:`PRIOR_RANKINGS`, which use the gold
    standard (:func:`add_prior_evidence`); they are judged and shown apart and
    never combined with ``scores``.
    """

    targets: list[str]
    candidates: list[str]
    scores: dict[str, np.ndarray]
    info: dict[str, Any]
    prior: dict[str, np.ndarray] = field(default_factory=dict)
    _rankings: dict[tuple[str, str], np.ndarray] | None = field(default=None, init=False, repr=False)

    def context(self) -> dict[str, np.ndarray]:
        """Every source's scores after :func:`clr`."""
        return {m: clr(S) for m, S in self.scores.items()}

    def rankings(self) -> dict[tuple[str, str], np.ndarray]:
        """The rankings judged: every source as it is (``none``) and after :func:`clr` (``clr``), and the
        combinations of the sources after CLR (:func:`clr_mean`, :func:`rank_average`). Computed once
        (``scores`` is not to change after)."""
        if self._rankings is None:
            ctx = self.context()
            out: dict[tuple[str, str], np.ndarray] = {}
            for m, S in self.scores.items():
                out[(m, "none")] = S
                out[(m, "clr")] = ctx[m]
            if len(ctx) > 1:
                out[("clr_mean", "clr")] = clr_mean(ctx)
                out[("rank_average", "clr")] = rank_average(ctx)
            for m, S in self.prior.items():
                out[(m, "none")] = S
                out[(m, "clr")] = clr(S)
            self._rankings = out
        return self._rankings


def available_rankings(sources, prior: bool = False) -> set[str]:
    """The rankings :meth:`Evidence.rankings` has for these sources: each source, the combinations
    (:data:`COMBINED`) from two sources on, and with ``prior`` (:func:`add_prior_evidence`) :data:`PRIOR_RANKINGS`."""
    return (set(sources) | (set(COMBINED) if len(set(sources)) > 1 else set())
            | (set(PRIOR_RANKINGS) if prior else set()))


def collect_evidence(X_train: np.ndarray, genes: list[str], targets: list[str], candidates: list[str],
                     folds: np.ndarray, chosen: dict[str, list[str]] | None = None, top_k: int | None = None,
                     network_settings=None, sources: tuple[str, ...] = EVIDENCE_SOURCES) -> Evidence:
    """Score every candidate regulator of every target from each evidence source.

    Sources (``sources``; ``network`` needs ``network_settings``):

    ``ols``
        The pipeline's own OLS models, as :func:`score_regulators` (``|t|``
        of the chosen predictors, above every other candidate by ``|r|``).
    ``penalized``
        ``|t|`` of ridge regression on every candidate, one penalty for all
        targets: the median of the targets' own choices by cross-validation on
        ``folds`` with the one-standard-error rule (:func:`ridge_evidence`
        with ``shared=True``: the scores of different targets on one scale
        for the pooled ranking).
    ``network``
        One network per target on every candidate (``network_settings``),
        candidates scored by :func:`gradient_importance` (:func:`network_evidence`).
    ``correlation``
        ``|r|`` with the target.

    Targets constant on ``X_train`` are left out (as :func:`score_regulators`).
    """
    from .design import _is_constant

    unknown = sorted(set(sources) - set(EVIDENCE_SOURCES))
    if unknown:
        raise ValueError(f"unknown evidence sources {unknown}; choose from {EVIDENCE_SOURCES}")
    index = {g: i for i, g in enumerate(genes)}
    cand = [c for c in candidates if c in index]
    targets = [t for t in dict.fromkeys(targets) if t in index and not _is_constant(X_train[:, index[t]])]
    Z = X_train[:, [index[c] for c in cand]]
    Y = X_train[:, [index[t] for t in targets]]
    pos = {c: i for i, c in enumerate(cand)}
    self_col = np.array([pos.get(t, -1) for t in targets], dtype=np.int64)
    own = np.zeros((len(targets), len(cand)), dtype=bool)
    own[np.flatnonzero(self_col >= 0), self_col[self_col >= 0]] = True
    scores: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    for source in [s for s in EVIDENCE_SOURCES if s in sources]:
        if source == "correlation":
            Zs, Ys = standardize(Z), standardize(Y)
            S = np.abs(Ys.T @ Zs) / max(len(Z) - 1, 1)
            S[:, ~(np.sum(Zs**2, axis=0) > 0)] = np.nan
        elif source == "ols":
            long = score_regulators(X_train, genes, targets, cand, chosen=chosen, top_k=top_k)
            S = np.full((len(targets), len(cand)), np.nan)
            row = {t: i for i, t in enumerate(targets)}
            S[long["target"].map(row).to_numpy(dtype=np.int64), long["regulator"].map(pos).to_numpy(dtype=np.int64)] = \
                long["ols_score"]
        elif source == "penalized":
            res = ridge_evidence(Z, Y, folds, self_col, shared=True)
            S = res.abs_t
            if len(res.lam):
                info["penalized"] = {"lambda": float(res.lam[0]), "lambda_1se_range": [
                    float(np.min(res.lam_target)), float(np.max(res.lam_target))],
                    "lambda_min_median": float(np.median(res.lam_min))}
        else:
            if network_settings is None:
                continue
            S, info["network"] = network_evidence(Z, Y, folds, self_col, **network_settings)
        S = np.asarray(S, dtype=np.float64)
        S[own] = np.nan
        scores[source] = S
    return Evidence(targets=targets, candidates=cand, scores=scores, info=info)


# --------------------------------------------------------------------------- prior knowledge: TF activity
def regulator_groups(known: np.ndarray) -> np.ndarray:
    """Group number of each target (row of ``known``, targets x candidates): targets with the same set of
    known regulators share one (the genes of an operon, a regulon's co-annotated genes), in order of first
    appearance. Targets without a known regulator share a group too."""
    keys = [np.flatnonzero(row).tobytes() for row in np.asarray(known, dtype=bool)]
    first: dict[bytes, int] = {}
    return np.array([first.setdefault(k, len(first)) for k in keys], dtype=np.int64)


def regulator_activity(Y: np.ndarray, P: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activities of the candidates (samples x candidates) from the expression of their known targets.

    ``Y`` (samples x targets, standardised) is modelled as ``A P'`` with ``P`` (targets x candidates) the
    known edges, and ``A`` is its minimum-norm least-squares solution ``Y pinv(P')`` (the transcription
    factor activity of the Inferelator, Arrieta-Ortiz et al. 2015, Mol Syst Biol 11:839). A candidate with
    no known target among ``Y`` keeps its own expression (``Z``'s column). Returns the activities and the
    mask of candidates whose activity was estimated.
    """
    P = np.asarray(P, dtype=np.float64)
    A = np.asarray(Y, dtype=np.float64) @ np.linalg.pinv(P.T)
    estimated = P.any(axis=0)
    A[:, ~estimated] = np.asarray(Z, dtype=np.float64)[:, ~estimated]
    return A, estimated


def activity_evidence(Z: np.ndarray, Y: np.ndarray, known: np.ndarray, folds: np.ndarray,
                      self_col: np.ndarray | None = None, k: int = 5, seed: int = 0,
                      groups: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Score every candidate of every target from activities estimated with the other targets' known
    regulators (prior knowledge), never the target's own.

    The targets are split into ``k`` folds of whole groups (``groups``, default
    :func:`regulator_groups` of ``known``: targets with the same known regulators, such as the genes of an
    operon, always fall in one fold, so no target is scored from a co-annotated twin). For each fold, the
    activities of the candidates with a known target in the other folds are estimated from those targets'
    standardised expression and known edges (:func:`regulator_activity`). Each target of the fold is then
    fitted by ridge regression on every candidate's expression and those activities at once, with one
    shared penalty chosen on the sample ``folds`` (:func:`ridge_evidence`, ``shared=True``), and a
    candidate scores the sum of its two ``|t|`` (its expression's alone when it has no activity). A
    target's own row of ``known`` never enters its scores.

    Why both: where a regulator's mRNA hardly follows its activity (a factor switched on by a ligand or
    a phosphorylation) the activity carries the evidence; where the mRNA is the activity (in-silico
    networks such as DREAM4), an activity averaged from a few known targets of either sign is noisier
    than the mRNA. Activities alone read AUPR 0.336 on the bundled compendium and 0.047 on DREAM4 (below
    correlation's 0.085); with the expression beside them 0.325 and 0.110 (after :func:`clr`).

    Returns targets x candidates scores (NaN for a target's own column and constant targets) and what the
    log reports (folds, groups, the penalty of each fold (NaN for an empty one), the fewest and most
    candidates with an estimated activity in a fold).
    """
    Z = np.asarray(Z, dtype=np.float64)
    Ys = standardize(np.asarray(Y, dtype=np.float64))
    known = np.asarray(known, dtype=bool)
    T = Ys.shape[1]
    self_col = np.full(T, -1) if self_col is None else np.asarray(self_col, dtype=np.int64)
    groups = regulator_groups(known) if groups is None else np.asarray(groups, dtype=np.int64)
    labels = np.unique(groups)
    k = max(2, min(int(k), len(labels)))
    order = np.random.default_rng(seed).permutation(len(labels))
    fold_of_group = dict(zip(labels[order].tolist(), (np.arange(len(labels)) % k).tolist()))
    fold = np.array([fold_of_group[g] for g in groups.tolist()], dtype=np.int64)
    S = np.full((T, Z.shape[1]), np.nan)
    lams, n_estimated = [], []
    for f in range(k):
        te, tr = fold == f, fold != f
        if not te.any():  # fewer groups than folds
            lams.append(float("nan"))
            continue
        A, estimated = regulator_activity(Ys[:, tr], known[tr], Z)
        res = ridge_evidence(np.hstack([Z, A[:, estimated]]), Ys[:, te], folds, self_col[te], shared=True)
        part = res.abs_t[:, : Z.shape[1]].copy()  # NaN at a target's own expression: its pair stays NaN
        part[:, estimated] += res.abs_t[:, Z.shape[1]:]
        S[te] = part
        lams.append(float(res.lam[0]) if len(res.lam) else float("nan"))
        n_estimated.append(int(estimated.sum()))
    info = {"target_folds": k, "groups": int(len(labels)), "lambda": lams,
            "candidates_with_activity": [min(n_estimated, default=0), max(n_estimated, default=0)]}
    return S, info


def add_prior_evidence(ev: Evidence, X_train: np.ndarray, genes: list[str], gold: pd.DataFrame,
                       folds: np.ndarray, k: int = 5, seed: int = 0) -> Evidence:
    """``ev`` with the :data:`PRIOR_RANKINGS` added (``k`` 0: unchanged): :func:`activity_evidence` of
    its targets and candidates, with the gold standard's judged edges (:func:`gold_labels`) as the prior."""
    if k <= 0:
        return ev
    index = {g: i for i, g in enumerate(genes)}
    known, _ = gold_labels(ev, gold)
    pos = {c: j for j, c in enumerate(ev.candidates)}
    self_col = np.array([pos.get(t, -1) for t in ev.targets], dtype=np.int64)
    S, info = activity_evidence(X_train[:, [index[c] for c in ev.candidates]],
                                X_train[:, [index[t] for t in ev.targets]], known, folds, self_col, k, seed)
    return Evidence(targets=ev.targets, candidates=ev.candidates, scores=ev.scores,
                    info={**ev.info, "tf_activity": info}, prior={"tf_activity": S})


def gold_labels(ev: Evidence, gold: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Known-edge labels (targets x candidates) and the mask of judged pairs.

    A pair is judged when its target is a row of the gold standard with at
    least one known regulator among its candidates (other than itself), its
    candidate is a column of the gold standard, and the candidate is not the
    target itself.
    """
    L = gold.reindex(index=ev.targets, columns=ev.candidates).fillna(0).to_numpy().astype(bool)
    own = np.asarray(ev.targets, dtype=object)[:, None] == np.asarray(ev.candidates, dtype=object)[None, :]
    judged = np.asarray(pd.Index(ev.targets).isin(gold.index))[:, None] & \
        np.asarray(pd.Index(ev.candidates).isin(gold.columns))[None, :] & ~own
    judged &= (L & judged).any(axis=1, keepdims=True)
    return L & judged, judged


def evaluate_evidence(ev: Evidence, gold: pd.DataFrame, scope: str,
                      targets: list[str] | None = None,
                      known_regulators_only: bool = False) -> tuple[pd.DataFrame, dict]:
    """AUROC and AUPR of every ranking of :meth:`Evidence.rankings` against the gold standard.

    ``targets`` limits the judged pairs to those targets. ``known_regulators_only``
    also leaves out the candidates with no known target among the judged ones,
    as the DREAM5 evaluation did (Marbach et al. 2012, Nat Methods 9:796: TFs
    and genes without an experimentally supported interaction were ignored):
    the gold standard says nothing of what such a candidate regulates, so its
    pairs are unknown rather than negative. By default every candidate is
    judged (a stricter measure: those pairs count as false when ranked high).
    A pair a ranking could not score (NaN) ranks below every scored pair.
    Returns the table (:data:`RECOVERY_COLUMNS`) and, per ranking, its
    :func:`curves`.
    """
    L, judged = gold_labels(ev, gold)
    if targets is not None:
        judged &= np.asarray(pd.Index(ev.targets).isin(targets))[:, None]
    if known_regulators_only:
        judged &= (L & judged).any(axis=0, keepdims=True)
    y = L[judged]
    rows, curve = [], {}
    if not y.any():
        return pd.DataFrame(columns=RECOVERY_COLUMNS), curve
    n_targets = int(judged.any(axis=1).sum())
    prevalence = float(y.mean())
    for (method, norm), S in ev.rankings().items():
        s = S[judged]
        s = np.where(np.isfinite(s), s, -np.inf)
        ap = average_precision(s, y)
        rows.append((scope, method, norm, n_targets, int(judged.sum()), int(y.sum()), auroc(s, y), ap,
                     prevalence, ap / prevalence))
        curve[(method, norm)] = curves(s, y)
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS), curve


def judged_targets(gold: pd.DataFrame, genes: list[str], candidates: list[str]) -> list[str]:
    """Gold-standard targets in the data with at least one known regulator among the candidates other than
    themselves: the targets whose rankings AUROC and AUPR can judge."""
    cols = [c for c in dict.fromkeys(candidates) if c in set(gold.columns)]
    known = gold.reindex(columns=cols).fillna(0).to_numpy().astype(bool)
    known &= np.asarray(gold.index, dtype=object)[:, None] != np.asarray(cols, dtype=object)[None, :]
    keep = known.any(axis=1) & np.asarray(gold.index.isin(list(genes)))
    return list(dict.fromkeys(gold.index[keep]))


def regulator_known_targets(ev: Evidence, gold: pd.DataFrame) -> pd.Series:
    """Per candidate of ``ev`` (in its order): how many of ``ev.targets`` the gold standard lists it as a
    regulator of, the candidate itself not counted (Int64; missing for a candidate that is not a column of the
    gold standard). 0 marks the regulators the DREAM5 convention leaves out (``known_regulators`` scope)."""
    L, _ = gold_labels(ev, gold)
    counts = pd.Series(L.sum(axis=0), index=ev.candidates, dtype="Int64")
    return counts.where(pd.Index(ev.candidates).isin(gold.columns), pd.NA)


def edge_table(ev: Evidence, gold: pd.DataFrame, ranking: str, normalization: str = "clr",
               top: int = 10000) -> pd.DataFrame:
    """The ``top`` pairs of one ranking, best first: the inferred network.

    Columns ``rank, target, regulator, score`` (the ranking's), ``known`` (1 a
    gold-standard edge, 0 not, empty when the target is not a gold-standard
    row or the regulator not a column), ``regulator_known_targets`` (how many
    of the evidence's targets the gold standard says the regulator regulates,
    itself not counted; 0: it knows no target of it among them, so its pairs
    cannot be judged either way, and the DREAM5 convention leaves them out;
    empty when the regulator is not a column), then every source's own score (as it
    is, before normalisation; ``tf_activity`` too when :func:`add_prior_evidence`
    added it) so a reader sees which evidence put the pair there (``ols_abs_t``: ``|t|`` in the target's OLS model, empty for a
    candidate outside it). Ties keep the order of targets and candidates.
    """
    rankings = ev.rankings()
    key = (ranking, "clr") if ranking in COMBINED else (ranking, normalization)
    S = rankings[key]
    flat = S.ravel()
    ok = np.flatnonzero(np.isfinite(flat))
    order = ok[np.argsort(-flat[ok], kind="stable")][: max(0, int(top))]
    ti, ci = np.unravel_index(order, S.shape)
    targets = np.asarray(ev.targets, dtype=object)[ti]
    regs = np.asarray(ev.candidates, dtype=object)[ci]
    known = pd.Series(pd.NA, index=range(len(order)), dtype="Int64")
    in_gold = pd.Index(targets).isin(gold.index) & pd.Index(regs).isin(gold.columns)
    if in_gold.any():
        g = gold.stack()
        known[in_gold] = g.reindex(pd.MultiIndex.from_arrays([targets[in_gold], regs[in_gold]])).fillna(0).astype(
            int).to_numpy()
    out = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "target": targets, "regulator": regs,
                        "score": flat[order], "known": known,
                        "regulator_known_targets": regulator_known_targets(ev, gold).to_numpy()[ci]})
    for m, M in {**ev.scores, **ev.prior}.items():
        v = M[ti, ci]
        if m == "ols":  # score_regulators' ols_score: 2 + |t| in the model, |r| (<= 1) outside it
            out["ols_abs_t"] = np.where(v >= 2.0, v - 2.0, np.nan)
        else:
            out[m] = v
    return out


def chunk_network_importance(state_path: str, meta: dict[str, Any], X: np.ndarray,
                             wanted: set[str] | None = None) -> tuple[list[str], np.ndarray]:
    """:func:`gradient_importance` of the networks of one genome-wide chunk (``gexpred mlp-chunk``).

    ``meta`` is the chunk's ``model.json``: with ``mode`` ``multi_output`` one
    network with an output per target, with ``per_target`` one network per
    target (state keys ``t0.``, ``t1.``...). ``X`` holds the shared predictors on
    the data scale (the training samples); ``wanted`` limits the targets scored.
    The weights are loaded as tensors only (no code executed). Returns the
    chunk's targets scored and their targets x predictors importances.
    """
    import torch

    from .nn import GeneMLP, load_model

    targets = [str(t) for t in meta.get("targets", [])]
    keep = [k for k, t in enumerate(targets) if wanted is None or t in wanted]
    if not keep:
        return [], np.empty((0, X.shape[1]))
    if meta["mode"] == "multi_output":
        imp = gradient_importance(load_model(state_path, meta["architecture"]), X)
        return [targets[k] for k in keep], imp[keep]
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    rows = []
    for k in keep:
        arch = meta["architectures"][k]
        net = GeneMLP(arch["n_in"], list(arch["hidden"]), arch["activation"], arch.get("n_out", 1),
                      arch.get("dropout", 0.0))
        prefix = f"t{k}."
        net.load_state_dict({key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)})
        rows.append(gradient_importance(net.eval(), X)[0])
    return [targets[k] for k in keep], np.array(rows)
