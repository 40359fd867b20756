"""Logistic regression of class labels on predictor genes (statsmodels Logit / MNLogit).

Classification targets are class labels: a sample-sheet column
(:func:`encode_labels`) or a gene cut at a threshold (:func:`binarize`). With
two classes the model is the binary logit

``log(P(y = 1) / P(y = 0)) = b0 + b1*x1 + ... + bp*xp``;

with ``K > 2`` classes it is the multinomial logit, one such equation per
non-reference class against the reference (the first class in sorted order).

The coefficient table has the columns of :data:`LOGIT_COLUMNS`: those of the
OLS table (``t`` holds the Wald z statistic, so that every table has one
shape) plus the odds ratio ``exp(coef)`` and its confidence interval. With
more than two classes there is one row per non-reference class and term, the
term named ``term[class]``.

Separation
----------
When a predictor, or a combination of predictors, splits the classes
perfectly (complete separation) or perfectly apart from ties on the boundary
(quasi-complete separation), the maximum-likelihood estimate does not exist:
coefficients run off to infinity and their standard errors and p-values are
meaningless. :func:`fit_logit` detects this before fitting with an exact
linear-programming test (Albert & Anderson 1984; Konis 2007) and afterwards
from statsmodels' own signals and the fitted values (see
:func:`fit_logit`), and raises :class:`~gexpred.errors.ModelError` naming the
separating predictor; with ``penalized=True`` it fits an L2-penalised (ridge)
logistic regression instead, whose coefficients are finite but come without
standard errors or p-values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .errors import InputError, ModelError, preview
from .ols import reproducible_summary

# statsmodels, scipy.stats and scipy.optimize are imported by the functions that fit (together ~2 s of a job's
# start-up): the label and metric helpers here serve jobs that fit nothing (compare, bundle, deploy, monitor).


def _statsmodels() -> tuple[Any, type[BaseException], type[Warning], type[Warning]]:
    """statsmodels' discrete models (Logit, MNLogit), and the error and warnings of separation and convergence
    their fits give. (The module itself, not statsmodels.api, which imports every model: ~0.4 s more.)"""
    from statsmodels.discrete import discrete_model as sm
    from statsmodels.tools import sm_exceptions

    # statsmodels before 0.14 raises on perfect separation, later versions only warn
    sep_error = getattr(sm_exceptions, "PerfectSeparationError", type("_NeverRaised", (Exception,), {}))
    sep_warning = getattr(sm_exceptions, "PerfectSeparationWarning", type("_NeverWarned", (Warning,), {}))
    return sm, sep_error, sep_warning, sm_exceptions.ConvergenceWarning


LOGIT_COLUMNS = ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high",
                 "odds_ratio", "or_ci_low", "or_ci_high", "method"]
LOGIT_FIT_COLUMNS = ["n", "df_model", "df_resid", "pseudo_r2", "llr", "llr_pvalue", "aic", "bic",
                     "log_likelihood", "converged", "penalized", "method", "separation"]
METHODS = {"ml": "maximum likelihood", "firth": "Firth's penalised likelihood", "ridge": "ridge-penalised"}
"""The values of the ``method`` column: how the coefficients were estimated."""
METRIC_KEYS = ["n", "accuracy", "auroc", "log_loss"]

RIDGE_DEFAULT = 1.0
"""Default L2 penalty of penalised fits: ``ridge / 2 * sum(beta**2)`` added to
the negative log-likelihood, over the coefficients of the standardised
predictors (the intercept is not penalised). 1.0 equals scikit-learn's default
``C = 1``."""
MAXITER = 100
"""Newton iterations allowed to the maximum-likelihood fit."""
EXTREME_P = 1e-6
"""A fitted class probability this close to 0 or 1 counts as extreme."""
EXTREME_SHARE = 0.5
"""Separation is suspected when at least this share of the training samples
has an extreme fitted probability."""
COEF_LIMIT = 20.0
"""Separation is suspected when a coefficient times its predictor's standard
deviation exceeds this (a change of 20 in log-odds per standard deviation is an
odds ratio of about 5e8)."""
LP_TOL = 1e-7
"""Margin above which the linear-programming test counts a direction as separating."""
LOG_LOSS_EPS = 1e-15


# --------------------------------------------------------------------------- class labels
def _label(value: object) -> str:
    """A class label as text: integral floats without ``.0`` (1.0 -> ``'1'``), strings stripped."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def encode_labels(values: pd.Series, what: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes of class labels.

    Parameters
    ----------
    values
        One label per sample (strings or numbers), indexed by sample.
    what
        What the labels are, for messages, e.g. ``"sample-sheet column 'phenotype'"``.

    Returns
    -------
    codes
        ``int64`` codes ``0..K-1`` into ``classes``.
    classes
        The distinct labels as text, sorted as text; the first is the reference class.

    Raises
    ------
    InputError
        If a label is missing (or empty), or there are fewer than two classes.
    """
    values = pd.Series(values)
    missing = values.isna().to_numpy() | values.map(lambda v: _label(v) == "" if pd.notna(v) else True).to_numpy()
    if missing.any():
        samples = values.index[missing]
        raise InputError(
            f"The {what} has no class label for {int(missing.sum())} of {len(values)} samples "
            f"({preview(samples)}); every sample used for a classification target needs a label. Fill them in, "
            f"or leave those samples out of the expression matrices (and the sample sheet): every sample of the "
            f"matrices needs a row of the sample sheet."
        )
    labels = np.array([_label(v) for v in values], dtype=object)
    classes = sorted(set(labels))
    if len(classes) < 2:
        shown = f"only the class {classes[0]!r}" if classes else "no samples"
        raise InputError(
            f"The {what} has {shown} over its {len(values)} samples; a classification target needs at least "
            f"two classes. Choose another column, or check that the samples with other labels are not excluded."
        )
    return class_codes(labels, classes), classes


def class_codes(labels, classes: list[str]) -> np.ndarray:
    """The ``int64`` code (position in ``classes``) of each label, all of them known classes."""
    index = {c: k for k, c in enumerate(classes)}
    return np.array([index[v] for v in labels], dtype=np.int64)


def binarized_classes(threshold: float) -> list[str]:
    """The two classes of a gene cut at ``threshold`` (:func:`binarize`): ``["<= t", "> t"]``.

    ``t`` is written as ``:g`` does (``0``, ``0.25``, ``1e+06``) where that is the threshold exactly, else in full
    (``0.5849625``, not ``0.584963``): a rounded cut would name a sample at 0.5849628 '<= 0.584963' or put it
    in '> 0.584963' below its own label.
    """
    text = f"{float(threshold):g}"
    if float(text) != float(threshold):
        text = repr(float(threshold))
    return [f"<= {text}", f"> {text}"]


def binarize(values: np.ndarray, threshold: float, what: str = "the values") -> tuple[np.ndarray, list[str]]:
    """Two classes from a threshold: code 1 where ``value > threshold``, else 0.

    Parameters
    ----------
    values
        One value per sample (e.g. a gene's expression).
    threshold
        The cut; values equal to it fall in class 0.
    what
        What the values are, for messages, e.g. ``"gene 'TP53'"``.

    Returns
    -------
    codes, classes
        ``classes`` is ``["<= threshold", "> threshold"]`` (see :func:`binarized_classes`).

    Raises
    ------
    InputError
        If a value is not finite, or all values fall on one side of the threshold.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise InputError(f"The binarize threshold of {what} is {threshold}; it must be a finite number.")
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(
            f"{what[:1].upper()}{what[1:]} has {int(bad.sum())} missing or non-finite values (at positions "
            f"{preview(np.flatnonzero(bad))}), which cannot be binarized at {threshold:g}."
        )
    codes = (values > threshold).astype(np.int64)
    classes = binarized_classes(threshold)
    above = int(codes.sum())
    if above == 0 or above == len(codes):
        side = "above" if above else "at or below"
        lo, hi = (float(values.min()), float(values.max())) if len(values) else (np.nan, np.nan)
        raise InputError(
            f"All {len(codes)} values of {what} are {side} the binarize threshold {threshold:g} (they range from "
            f"{lo:g} to {hi:g}), so there would be only one class. Choose a threshold inside that range, "
            f"e.g. the median {float(np.median(values)):g}."
        )
    return codes, classes


# --------------------------------------------------------------------------- the fit
@dataclass
class LogitFit:
    """A fitted (binary or multinomial) logistic regression and what the pipeline saves of it."""

    terms: list[str]
    """``const`` followed by the predictor names, in design order."""
    classes: list[str]
    """The class labels; ``classes[0]`` is the reference class."""
    coef: np.ndarray
    """Coefficients, terms x non-reference classes (one column for a binary target)."""
    penalized: bool
    """True for a ridge-penalised fit (no standard errors or p-values)."""
    n: int
    """Training samples."""
    alpha: float = 0.05
    """Level of the confidence intervals (``1 - alpha``)."""
    result: Any = None
    """The statsmodels ``LogitResults`` / ``MNLogitResults`` (None for penalised fits)."""
    ridge: float | None = None
    """The L2 penalty of a penalised fit."""
    log_likelihood: float = np.nan
    """Log-likelihood at the fitted coefficients."""
    null_log_likelihood: float = np.nan
    """Log-likelihood of the intercept-only model."""
    converged: bool = True
    separation: str | None = None
    """``'complete'``, ``'quasi-complete'`` or ``'quasi-perfect'`` if the training data are separated, else None."""
    method: str = "ml"
    """How the coefficients were estimated: a key of :data:`METHODS`."""
    separating: str | None = None
    """The separation in words: which predictors separate the classes, over how many samples."""
    firth: FirthFit | None = None
    """The Firth fit (``method == 'firth'``)."""
    inference: dict[str, Any] | None = None
    """Firth fits: Wald ``se`` and ``z``, penalised likelihood-ratio ``p``, profile ``lo`` / ``hi`` per
    term, and the penalised likelihood-ratio test of all predictors (``llr``, ``llr_pvalue``)."""

    @property
    def multinomial(self) -> bool:
        return len(self.classes) > 2

    @property
    def row_terms(self) -> list[str]:
        """Term of each row of :meth:`table`: the terms, or ``term[class]`` per non-reference class."""
        if not self.multinomial:
            return list(self.terms)
        return [f"{t}[{c}]" for c in self.classes[1:] for t in self.terms]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, samples x classes, from predictor values (without intercept)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape[1] != len(self.terms) - 1:
            raise ValueError(f"predict_proba: {X.shape[1]} predictor columns but the model has "
                             f"{len(self.terms) - 1}")
        eta = self.coef[0] + X @ self.coef[1:]
        return _softmax(np.column_stack([np.zeros(len(X)), eta]))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each sample, as codes into :attr:`classes`."""
        return np.argmax(self.predict_proba(X), axis=1).astype(np.int64)

    def table(self, alpha: float | None = None) -> pd.DataFrame:
        """The coefficient table with the columns of :data:`LOGIT_COLUMNS`.

        Rows run over the terms (binary), or over the non-reference classes and
        then the terms (multinomial). ``t`` is the Wald z statistic; p-values
        and intervals are normal-theory. Firth fits (``method`` ``firth``) have
        Wald standard errors and z, penalised likelihood-ratio p-values and
        profile penalised-likelihood intervals (as R's logistf). Ridge fits
        have NaN standard errors, tests and intervals.
        """
        alpha = self.alpha if alpha is None else float(alpha)
        coef = self.coef.T.ravel()  # class-major, as row_terms
        if self.inference is not None:
            if alpha != self.alpha:
                raise ValueError(f"table: the profile intervals of this Firth fit are at alpha={self.alpha}")
            inf = self.inference
            se, z, p, lo, hi = inf["se"], inf["z"], inf["p"], inf["lo"], inf["hi"]
        elif self.result is None:
            nan = np.full(coef.shape, np.nan)
            se, z, p, lo, hi = nan, nan, nan, nan, nan
        else:
            r = self.result
            # MNLogit arrays are terms x classes; rows run class-major
            se, z, p = (np.asarray(a, dtype=np.float64).reshape(self.coef.shape).T.ravel()
                        for a in (r.bse, r.tvalues, r.pvalues))
            ci = np.asarray(r.conf_int(alpha=alpha), dtype=np.float64).reshape(-1, 2)
            lo, hi = ci[:, 0], ci[:, 1]
        with np.errstate(over="ignore"):
            return pd.DataFrame(
                {
                    "term": self.row_terms,
                    "coef": coef,
                    "std_err": se,
                    "t": z,
                    "p_value": p,
                    "ci_low": lo,
                    "ci_high": hi,
                    "odds_ratio": np.exp(coef),
                    "or_ci_low": np.exp(lo),
                    "or_ci_high": np.exp(hi),
                    "method": self.method,
                },
                columns=LOGIT_COLUMNS,
            )

    def summary(self, target: str) -> str:
        """The statsmodels summary titled with the target, or a short text for penalised fits."""
        if self.method == "firth":
            fs = self.fit_statistics().iloc[0]
            lines = [
                f"Logistic regression by Firth's penalised likelihood: {target}",
                f"classes: {', '.join(self.classes)} (reference {self.classes[0]!r}); n = {self.n}; "
                f"converged: {self.converged}",
                f"why Firth: {self.separating}",
                f"log-likelihood {self.log_likelihood:.6g} (null {self.null_log_likelihood:.6g}); penalised "
                f"log-likelihood {self.firth.penalized_log_likelihood:.6g}",
                f"penalised likelihood-ratio test of all predictors: chi2 {fs['llr']:.4g} on "
                f"{int(fs['df_model'])} df, p = {fs['llr_pvalue']:.4g}",
                "Coefficients maximise loglik + 1/2 log det(Fisher information) (Firth 1993; Heinze & Schemper "
                "2002): finite under separation. std_err and z are Wald; p-values are penalised likelihood-ratio "
                f"tests and the {100 * (1 - self.alpha):g}% intervals profile penalised likelihood, as R's logistf.",
                "",
                self.table().drop(columns="method").to_string(index=False),
            ]
            return "\n".join(lines)
        if self.result is not None:
            kind = "Multinomial logit" if self.multinomial else "Logit"
            title = f"{kind}: {target} (reference class {self.classes[0]!r})"
            kw: dict[str, Any] = {"yname": target, "xname": self.terms, "title": title, "alpha": self.alpha}
            if self.multinomial:
                kw["yname_list"] = list(self.classes[1:])
            return reproducible_summary(str(self.result.summary(**kw)))
        lines = [
            f"Ridge-penalised {'multinomial ' if self.multinomial else ''}logistic regression: {target}",
            f"classes: {', '.join(self.classes)} (reference {self.classes[0]!r}); n = {self.n}; "
            f"L2 penalty {self.ridge:g} on standardised predictors; converged: {self.converged}",
            f"log-likelihood {self.log_likelihood:.6g} (null {self.null_log_likelihood:.6g})",
            "Penalised coefficients are shrunk towards 0 and come without standard errors, p-values or "
            "confidence intervals.",
            "",
            self.table()[["term", "coef", "odds_ratio"]].to_string(index=False),
        ]
        if self.separation:
            lines.insert(1, f"the training data show {self.separation} separation of the classes"
                         + (f": {self.separating}" if self.separating else ""))
        return "\n".join(lines)

    def fit_statistics(self) -> pd.DataFrame:
        """One row with the columns of :data:`LOGIT_FIT_COLUMNS`.

        ``pseudo_r2`` is McFadden's ``1 - llf / llnull``; ``llr`` the likelihood
        ratio statistic against the intercept-only model. For ridge fits,
        ``llr_pvalue``, ``aic`` and ``bic`` are NaN (the penalised model has no
        chi-squared reference distribution or integer degrees of freedom). For
        Firth fits ``llr`` and ``llr_pvalue`` are the penalised likelihood-ratio
        test of all predictors, ``log_likelihood`` and ``pseudo_r2`` use the
        ordinary log-likelihood at the Firth estimate, ``aic`` and ``bic`` are
        NaN. ``method`` says how the coefficients were estimated and
        ``separation`` describes the separation of the classes (empty if none).
        """
        k = self.coef.size
        if self.method == "firth":
            llf, ll0 = self.log_likelihood, self.null_log_likelihood
            row = {"n": self.n, "df_model": float(k - 1), "df_resid": float(self.n - k),
                   "pseudo_r2": 1.0 - llf / ll0 if ll0 != 0 else np.nan, "llr": float(self.inference["llr"]),
                   "llr_pvalue": float(self.inference["llr_pvalue"]), "aic": np.nan, "bic": np.nan,
                   "log_likelihood": llf}
        elif self.result is not None:
            r = self.result
            row = {"n": int(r.nobs), "df_model": float(r.df_model), "df_resid": float(r.df_resid),
                   "pseudo_r2": float(r.prsquared), "llr": float(r.llr), "llr_pvalue": float(r.llr_pvalue),
                   "aic": float(r.aic), "bic": float(r.bic), "log_likelihood": float(r.llf)}
        else:
            llf, ll0 = self.log_likelihood, self.null_log_likelihood
            row = {"n": self.n, "df_model": float(k - self.coef.shape[1]), "df_resid": float(self.n - k),
                   "pseudo_r2": 1.0 - llf / ll0 if ll0 != 0 else np.nan, "llr": 2.0 * (llf - ll0),
                   "llr_pvalue": np.nan, "aic": np.nan, "bic": np.nan, "log_likelihood": llf}
        row.update(converged=bool(self.converged), penalized=bool(self.penalized), method=self.method,
                   separation=self.separating or "")
        return pd.DataFrame([row], columns=LOGIT_FIT_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """Parameters as plain JSON (enough to predict without statsmodels).

        ``coef`` is the terms x non-reference classes matrix (a list of rows);
        the reference class's coefficients are 0.
        """
        return {"model": "mnlogit" if self.multinomial else "logit", "terms": list(self.terms),
                "classes": list(self.classes), "reference": self.classes[0],
                "coef": [[float(v) for v in row] for row in self.coef], "penalized": bool(self.penalized),
                "ridge": None if self.ridge is None else float(self.ridge), "n": int(self.n),
                "separation": self.separation, "method": self.method, "separating": self.separating}


def fit_statistics(fit: LogitFit) -> pd.DataFrame:
    """One row: ``n, df_model, df_resid, pseudo_r2, llr, llr_pvalue, aic, bic, log_likelihood, converged,
    penalized`` (see :meth:`LogitFit.fit_statistics`)."""
    return fit.fit_statistics()


def _softmax(eta: np.ndarray) -> np.ndarray:
    eta = eta - eta.max(axis=1, keepdims=True)
    e = np.exp(eta)
    return e / e.sum(axis=1, keepdims=True)


def _log_likelihood(A: np.ndarray, codes: np.ndarray, B: np.ndarray) -> float:
    eta = np.column_stack([np.zeros(len(A)), A @ B])
    m = eta.max(axis=1)
    lse = m + np.log(np.exp(eta - m[:, None]).sum(axis=1))
    return float((eta[np.arange(len(A)), codes] - lse).sum())


def _null_log_likelihood(codes: np.ndarray, K: int) -> float:
    counts = np.bincount(codes, minlength=K).astype(np.float64)
    counts = counts[counts > 0]
    return float((counts * np.log(counts / counts.sum())).sum())


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    sd = X.std(axis=0) if len(X) else np.ones(X.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    return mean, sd


# --------------------------------------------------------------------------- separation
def separation_lp(X: np.ndarray, codes: np.ndarray, K: int) -> tuple[str | None, np.ndarray]:
    """Exact test of (quasi-)complete separation by linear programming.

    The maximum-likelihood estimate of a (multinomial) logit exists if and only
    if no coefficients ``B`` (reference class 0) other than those giving equal
    linear predictors everywhere satisfy ``x_i'(b_{y_i} - b_k) >= 0`` for every
    sample ``i`` and class ``k`` (Albert & Anderson 1984). The test maximises
    the sum of these margins over ``|B| <= 1`` on standardised predictors: a
    positive optimum is (quasi-complete) separation; a positive smallest
    margin, found by a second program, is complete separation.

    Parameters
    ----------
    X
        Samples x predictors, without intercept.
    codes
        Class codes ``0..K-1``.
    K
        Number of classes.

    Returns
    -------
    kind
        ``'complete'``, ``'quasi-complete'`` or None.
    direction
        The separating coefficients, (1 + predictors) x (K - 1), on the
        standardised scale (zeros when there is no separation).

    Notes
    -----
    The programs have ``n * (K - 1)`` constraints and ``(1 + predictors) * (K - 1)``
    variables; HiGHS solves them in well under a second for hundreds of samples.
    """
    from scipy import optimize
    n, p = X.shape
    q = p + 1
    zero = np.zeros((q, K - 1))
    if n == 0:
        return None, zero
    mean, sd = _standardize(X)
    Z = np.column_stack([np.ones(n), (X - mean) / sd])
    # one row per sample i and class k != y_i: the margin x_i'(b_{y_i} - b_k) as a linear form in vec(B)
    i, k = np.nonzero(np.arange(K)[None, :] != codes[:, None])
    c = codes[i]
    G = np.zeros((len(i), K - 1, q))
    rows = np.arange(len(i))
    G[rows[c > 0], c[c > 0] - 1] += Z[i[c > 0]]
    G[rows[k > 0], k[k > 0] - 1] -= Z[i[k > 0]]
    G = G.reshape(len(i), -1)
    nv = G.shape[1]
    # 1) max sum of margins subject to every margin >= 0
    res = optimize.linprog(-G.sum(axis=0), A_ub=-G, b_ub=np.zeros(len(G)), bounds=[(-1.0, 1.0)] * nv,
                           method="highs")
    if res.status != 0:
        return None, zero
    margins = G @ res.x
    if not (margins.max() > LP_TOL and margins.min() > -LP_TOL):
        return None, zero
    direction = res.x.reshape(K - 1, q).T
    # 2) max smallest margin t subject to every margin >= t
    c2 = np.zeros(nv + 1)
    c2[-1] = -1.0
    A2 = np.column_stack([-G, np.ones(len(G))])
    res2 = optimize.linprog(c2, A_ub=A2, b_ub=np.zeros(len(G)), bounds=[(-1.0, 1.0)] * nv + [(None, 1.0)],
                            method="highs")
    if res2.status == 0 and (G @ res2.x[:-1]).min() > LP_TOL:
        return "complete", res2.x[:-1].reshape(K - 1, q).T
    return "quasi-complete", direction


def separating_predictors(X: np.ndarray, codes: np.ndarray, names: list[str],
                          classes: list[str]) -> list[tuple[str, bool, str]]:
    """Predictors that on their own put one class entirely above (or below) all others.

    Returns
    -------
    list of (name, strict, description)
        ``strict`` is False when the class touches the others at one tied value
        (quasi-complete separation by this predictor). Strict ones come first.
    """
    X = np.asarray(X, dtype=np.float64)
    found = []
    K = len(classes)
    for j, name in enumerate(names):
        x = X[:, j]
        for k in (range(1, 2) if K == 2 else range(K)):
            inside, outside = x[codes == k], x[codes != k]
            if not len(inside) or not len(outside):
                continue
            other = f"every {classes[0]!r}" if K == 2 else "every other"
            for above, (lo_in, hi_out) in ((True, (inside.min(), outside.max())),
                                           (False, (outside.min(), inside.max()))):
                if lo_in >= hi_out:
                    strict = bool(lo_in > hi_out)
                    if above:
                        desc = (f"{name} >= {inside.min():g} in every {classes[k]!r} sample and <= "
                                f"{outside.max():g} in {other} sample")
                    else:
                        desc = (f"{name} <= {inside.max():g} in every {classes[k]!r} sample and >= "
                                f"{outside.min():g} in {other} sample")
                    if not strict:
                        desc += f" (tied only at {lo_in:g})"
                    found.append((name, strict, desc))
                    break
            if found and found[-1][0] == name:
                break
    return sorted(found, key=lambda f: not f[1])


def _separation_who(kind: str, X: np.ndarray, codes: np.ndarray, names: list[str], classes: list[str],
                    weights: np.ndarray | None) -> tuple[str, str]:
    """Which predictors separate the classes, in words, and what a user could remove."""
    single = separating_predictors(X, codes, names, classes)
    if single:
        name, _, desc = single[0]
        more = f" (as do {preview([s[0] for s in single[1:]])})" if len(single) > 1 else ""
        who = f"Predictor {name!r} separates the classes on its own{more}: {desc}."
        remove = "remove the separating predictor"
    else:
        involved: list[str] = []
        if weights is not None and len(weights) and np.nanmax(weights) > 0:
            order = np.argsort(-weights)
            involved = [names[j] for j in order if weights[j] > 1e-3 * weights.max()]
        if kind == "quasi-perfect":
            who = ("No single predictor separates the classes on its own; the largest coefficients per standard "
                   f"deviation are those of {preview(involved)}." if involved else
                   "No single predictor separates the classes on its own.")
            remove = "remove predictors that nearly separate the classes"
        else:
            who = ("No single predictor separates the classes on its own; a linear combination of "
                   f"{preview(involved)} does." if involved else
                   "No single predictor separates the classes on its own.")
            remove = "remove some of the separating predictors"
    return who, remove


def separation_text(kind: str, evidence: str, X: np.ndarray, codes: np.ndarray, names: list[str],
                    classes: list[str], weights: np.ndarray | None = None) -> str:
    """One sentence for logs, tables and the report: the kind of separation, over how many samples, and
    which predictors separate the classes (see :func:`separating_predictors`)."""
    who, _ = _separation_who(kind, X, codes, names, classes, weights)
    return f"{kind} separation of the classes over the {len(codes)} training samples ({evidence}). {who}"


def _separation_error(target: str, kind: str, evidence: str, X: np.ndarray, codes: np.ndarray,
                      names: list[str], classes: list[str], weights: np.ndarray | None) -> ModelError:
    """The :class:`ModelError` for separated classes (``ols.stop_on_separation: true``).

    ``kind`` is ``'complete'``, ``'quasi-complete'`` (exact test) or
    ``'quasi-perfect'`` (signs in the fit); ``weights`` ranks the predictors
    by their part in the separation (None if unknown).
    """
    who, remove = _separation_who(kind, X, codes, names, classes, weights)
    if kind == "quasi-perfect":
        consequence = ("so the maximum-likelihood logistic regression is at or near the point of having no finite "
                       "solution: its coefficients are huge and unstable, and their standard errors, p-values and "
                       "confidence intervals are unreliable")
    else:
        consequence = ("so the maximum-likelihood logistic regression has no finite solution: its coefficients "
                       "grow without bound and their standard errors, p-values and confidence intervals are "
                       "meaningless")
    if len(classes) > 2:  # Firth's correction is implemented for two classes (fit_logit ridge-penalises more)
        instead = ("Set ols.stop_on_separation: false (the default) to go on with a ridge-penalised multinomial "
                   "model (Firth's correction is implemented for two classes only): finite coefficients, but no "
                   "standard errors, tests or intervals;")
    else:
        instead = ("Set ols.stop_on_separation: false (the default) to fit Firth's bias-reduced logistic regression "
                   "instead, whose coefficients, tests and intervals stay finite;")
    return ModelError(
        f"Target {target!r}: {kind} separation of the classes {preview(classes)} detected over the {len(codes)} "
        f"training samples ({evidence}), {consequence}. {who} {instead} ols.penalized: true for an L2-penalised "
        f"(ridge) fit without standard errors or p-values; or {remove}."
    )


# --------------------------------------------------------------------------- Firth
FIRTH_MAXITER = 200
"""Newton iterations allowed to a Firth fit (each constrained or profile fit too)."""
FIRTH_MAXSTEP = 5.0
"""Largest change of a coefficient in one Newton step of a Firth fit (as logistf's ``maxstep``)."""
STALL_HALVINGS = 20
"""A Firth step that had to be halved this often (cut a million-fold) ends the iteration (see
:func:`_firth_newton`)."""
FIRTH_TOL = 1e-10
"""A Firth fit has converged when the largest modified score and the largest Newton step are below this, or
when the gain a Newton step promises is below the resolution of the penalised log-likelihood (see
:func:`_firth_newton`)."""


@dataclass
class FirthFit:
    """Maximum of Firth's penalised log-likelihood (see :func:`firth_logit`)."""

    coef: np.ndarray
    """Coefficients, intercept first (one per column of the design)."""
    penalized_log_likelihood: float
    """``loglik(b) + 1/2 log det I(b)`` at :attr:`coef`."""
    log_likelihood: float
    """The ordinary log-likelihood at :attr:`coef`."""
    cov: np.ndarray
    """Inverse Fisher information at :attr:`coef` (the Wald covariance, as logistf reports)."""
    converged: bool
    n_iter: int


def _firth_terms(A: np.ndarray, y: np.ndarray, beta: np.ndarray,
                 hessian: bool = False) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray | None]:
    """Penalised and plain log-likelihood, Firth's modified score, the Fisher information and
    (with ``hessian``) the Hessian of the penalised log-likelihood at ``beta``.

    With ``p = expit(A b)``, ``w = p (1 - p)``, ``I = A' W A`` and ``M = A I^-1 A'``
    (``m = diag M``), the penalty ``1/2 log det I`` has gradient ``A' (h (1/2 - p))``
    with hat values ``h = w m``, and Hessian
    ``1/2 [A' diag(w'' m) A - A' diag(w') (M o M) diag(w') A]``, where
    ``w' = w (1 - 2p)`` and ``w'' = w (1 - 6w)`` are the derivatives of ``w`` in
    the linear predictor. ``M o M`` is never formed: with ``Z = A L^-T``
    (``L L' = I``), ``M_ij^2 = (z_i kron z_i) . (z_j kron z_j)``.
    """
    eta = A @ beta
    p = special.expit(eta)
    w = p * (1.0 - p)
    info = A.T @ (w[:, None] * A)
    try:
        chol = np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        return -np.inf, -np.inf, np.full(len(beta), np.nan), info, None
    Z = np.linalg.solve(chol, A.T).T  # rows z_i with |z_i|^2 = a_i' I^-1 a_i
    m = (Z**2).sum(axis=1)
    h = w * m
    plain = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    penalized = plain + float(np.log(np.diag(chol)).sum())  # 1/2 log det I = sum log diag L
    score = A.T @ (y - p + h * (0.5 - p))
    hess = None
    if hessian:
        w1 = w * (1.0 - 2.0 * p)
        w2 = w * (1.0 - 6.0 * w)
        ZZ = (Z[:, :, None] * Z[:, None, :]).reshape(len(Z), -1)  # rows z_i kron z_i
        UQ = (w1[:, None] * A).T @ ZZ
        hess = -info + 0.5 * (A.T @ ((w2 * m)[:, None] * A) - UQ @ UQ.T)
    return penalized, plain, score, info, hess


def _firth_newton(A: np.ndarray, y: np.ndarray, beta: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, bool, int]:
    """Maximise the penalised log-likelihood over the ``free`` coefficients, the others held at ``beta``.

    Newton-Raphson on the modified score with steps capped at
    :data:`FIRTH_MAXSTEP` and halved until the penalised log-likelihood does
    not fall (Heinze & Schemper 2002, as R's logistf). logistf steps with the
    Fisher information, which converges only linearly when the classes are
    separated; here the step uses the exact Hessian of the penalised
    log-likelihood where it is negative definite (quadratic convergence to the
    same maximum) and the Fisher information elsewhere. The penalty's
    information matrix is always that of the whole design, so a constrained
    maximum is the profile of the full model's penalised likelihood.

    Far out on a separating predictor or a large intercept the modified score has a floor of rounding
    (probabilities within 1e-40 of 0 or 1: about 1e-8 in an audit's case) above :data:`FIRTH_TOL`, and the
    iteration would spend its 200 steps halving a step of 1e-16 (5,000 evaluations, 99 % of a separated
    fit's time). A Newton step on a negative definite Hessian whose promised gain ``g' step / 2`` is below
    ten rounding units of the penalised log-likelihood, after a step the line search had to cut (which near
    a maximum only rounding does), is therefore convergence too: the coefficients are
    then within ``sqrt(2 gain / smallest eigenvalue)`` of the maximum (well below 1e-6 in that case). Where
    the floor is higher (2e-6 in the same case), the line search has to cut the step
    :data:`STALL_HALVINGS` times before the penalised log-likelihood does not fall: the iteration stops
    there, converged if the step was a Newton step on a negative definite Hessian (the maximum is then
    within ``|g| / smallest eigenvalue`` of the point, 1e-5 there; its penalised log-likelihood within
    ``|g|^2 / smallest eigenvalue``, 2e-11) and otherwise as when no ascent is left.
    """
    beta = np.array(beta, dtype=np.float64)
    pl, _, score, info, hess = _firth_terms(A, y, beta, hessian=True)
    ix = np.ix_(free, free)
    halved = False  # whether the last step was cut: near a maximum a Newton step is cut only by rounding
    for it in range(FIRTH_MAXITER + 1):
        g = score[free]
        if not np.isfinite(g).all():
            return beta, False, it
        step = None
        try:
            np.linalg.cholesky(-hess[ix])
            step = np.linalg.solve(-hess[ix], g)
        except np.linalg.LinAlgError:
            pass
        newton = step is not None
        if step is None:
            try:
                step = np.linalg.solve(info[ix], g)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(info[ix], g, rcond=None)[0]
        if not np.isfinite(step).all():
            return beta, False, it
        if np.abs(g).max(initial=0.0) < FIRTH_TOL and np.abs(step).max(initial=0.0) < FIRTH_TOL:
            return beta, True, it
        if newton and halved and 0.5 * float(g @ step) < 10.0 * np.finfo(np.float64).eps * max(1.0, abs(pl)):
            return beta, True, it  # what is left to gain is rounding (the score's floor, above)
        if it == FIRTH_MAXITER:
            break
        big = np.abs(step).max()
        if big > FIRTH_MAXSTEP:
            step *= FIRTH_MAXSTEP / big
        # a fall within rounding of the penalised log-likelihood is no fall: near the maximum the
        # gain of a step is below float resolution, and halving it would stall the iteration
        slack = 1e-13 * max(1.0, abs(pl))
        for halvings in range(40):
            trial = beta.copy()
            trial[free] += step
            t = _firth_terms(A, y, trial, hessian=True)
            if t[0] >= pl - slack:
                break
            step *= 0.5
        else:
            return beta, bool(np.abs(g).max() < 1e3 * FIRTH_TOL), it  # no ascent left
        if halvings >= STALL_HALVINGS:  # a step cut a million-fold: the direction is rounding, not ascent
            return trial, bool(newton or np.abs(g).max() < 1e3 * FIRTH_TOL), it + 1
        halved = halvings > 0
        beta, (pl, _, score, info, hess) = trial, t
    return beta, False, FIRTH_MAXITER


def firth_logit(A: np.ndarray, y: np.ndarray, fixed: dict[int, float] | None = None,
                start: np.ndarray | None = None) -> FirthFit:
    """Binary logistic regression by Firth's bias-reduced penalised likelihood.

    Maximises ``loglik(b) + 1/2 log det I(b)`` (Firth 1993; Jeffreys-prior
    penalty), which has a finite maximum whenever the design has full rank,
    separation or not (Kosmidis & Firth 2021).

    Parameters
    ----------
    A
        Design matrix, samples x terms, intercept column included.
    y
        0/1 outcomes.
    fixed
        Coefficients held at given values (index -> value); the others are
        maximised with the penalty of the whole design (a profile fit).
    start
        Starting coefficients (zeros by default).
    """
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    beta = np.zeros(A.shape[1]) if start is None else np.array(start, dtype=np.float64)
    free = np.ones(A.shape[1], dtype=bool)
    for j, v in (fixed or {}).items():
        beta[j] = v
        free[j] = False
    if free.any():
        beta, converged, it = _firth_newton(A, y, beta, free)
    else:
        converged, it = True, 0
    pl, plain, _, info, _ = _firth_terms(A, y, beta)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.full(info.shape, np.nan)
    return FirthFit(coef=beta, penalized_log_likelihood=pl, log_likelihood=plain, cov=cov,
                    converged=converged, n_iter=it)


def firth_lr_test(A: np.ndarray, y: np.ndarray, fit: FirthFit, terms: list[int]) -> tuple[float, float, bool]:
    """Penalised likelihood-ratio test of ``b_j = 0`` for every ``j`` in ``terms``.

    Returns the statistic ``2 (pl(b) - pl(b0))``, with ``b0`` the constrained
    maximum of the same penalised likelihood, its chi-squared p-value on
    ``len(terms)`` degrees of freedom (Heinze & Schemper 2002), and whether the
    constrained fit converged.

    The constrained fit starts from the full estimate with ``terms`` set to 0
    and from zeros, and keeps the higher maximum: where the classes are
    separated, the full estimate's other coefficients (a large intercept) put
    every sample's probability at 0 or 1 once a separating predictor is set
    to 0, a start the Newton iteration cannot leave. A statistic whose
    constrained fit has no finite penalised likelihood is NaN, not infinite.
    """
    fixed = {j: 0.0 for j in terms}
    warm = fit.coef.copy()
    warm[terms] = 0.0
    fits = [firth_logit(A, y, fixed=fixed, start=start) for start in (warm, np.zeros_like(warm))]
    red = max(fits, key=lambda f: (f.converged and np.isfinite(f.penalized_log_likelihood),
                                   f.penalized_log_likelihood))
    if not np.isfinite(red.penalized_log_likelihood):
        return np.nan, np.nan, False
    stat = max(0.0, 2.0 * (fit.penalized_log_likelihood - red.penalized_log_likelihood))
    return stat, float(special.chdtrc(len(terms), stat)), red.converged


PROFILE_RESTARTS = 5
"""Further runs of :data:`FIRTH_MAXITER` iterations allowed to a profile fit that has not converged."""


def _better(a: FirthFit, b: FirthFit) -> bool:
    """Whether fit ``a`` is the higher maximum of the penalised likelihood (a finite one first)."""
    pa, pb = a.penalized_log_likelihood, b.penalized_log_likelihood
    return bool(np.isfinite(pa) and (not np.isfinite(pb) or pa > pb))


def firth_profile_interval(A: np.ndarray, y: np.ndarray, fit: FirthFit, j: int,
                           alpha: float = 0.05) -> tuple[float, float]:
    """Profile penalised-likelihood confidence interval of coefficient ``j``.

    The interval holds the values ``b`` with ``2 (pl(b_hat) - max pl | b_j = b)``
    at most the ``1 - alpha`` quantile of chi-squared on 1 degree of freedom
    (Heinze & Schemper 2002; logistf's default). Each end is found by Brent's
    method on the profile, bracketed by stepping out from the estimate one
    Wald standard error at a time (32 steps, then doubling). An end that
    cannot be bracketed within 2^20 standard errors is infinite.
    """
    from scipy import optimize

    crit = float(special.chdtri(1, alpha))  # chi2(1)'s upper alpha point
    top = fit.penalized_log_likelihood
    b_hat = float(fit.coef[j])
    se = float(np.sqrt(fit.cov[j, j])) if np.isfinite(fit.cov[j, j]) and fit.cov[j, j] > 0 else 1.0
    # the penalised likelihood is not concave, and far out on a separating predictor the constrained
    # fit can have more than one maximum; the profile is the highest, so each value of b_j is fitted
    # from several starts and the best kept
    seen: list[tuple[float, np.ndarray]] = [(b_hat, fit.coef.copy())]

    def excess(b: float) -> float:
        nearest = min(seen, key=lambda s: abs(s[0] - b))[1]
        best = None
        # starts: the nearest profile fit already made and the estimate scaled to b (far out on a separating
        # predictor or the intercept the others grow with it: the estimate itself then puts every probability
        # at 0 or 1); where neither converges, also the estimate and zeros. The highest maximum is kept
        scaled = fit.coef * (b / b_hat) if b_hat != 0.0 else fit.coef
        first = [scaled] if nearest is fit.coef else [nearest, scaled]
        for k, origin in enumerate([*first, fit.coef, np.zeros_like(fit.coef)]):
            if k == len(first) and best.converged:
                break
            start = origin.copy()
            start[j] = b
            prof = firth_logit(A, y, fixed={j: b}, start=start)
            if best is None or _better(prof, best):
                best = prof
        # far out the constrained fit converges slowly (Fisher steps where the Hessian is not negative
        # definite): an unconverged maximum is too low and would close the interval early, so go on from it
        for _ in range(PROFILE_RESTARTS):
            if best.converged:
                break
            more = firth_logit(A, y, fixed={j: b}, start=best.coef)
            best = more if _better(more, best) else best
            if not more.converged and more.penalized_log_likelihood <= best.penalized_log_likelihood + 1e-12:
                break
        seen.append((b, best.coef))
        return 2.0 * (top - best.penalized_log_likelihood) - crit

    ends = []
    for sign in (-1.0, 1.0):
        del seen[1:]
        # step out one standard error at a time (the continuation needs small steps), then doubling
        inner, width, k = b_hat, se, 1
        outer = b_hat + sign * width
        while excess(outer) < 0.0:
            k += 1
            inner, width = outer, (width + se if k <= 32 else width * 2.0)
            outer = b_hat + sign * width
            if width > 2.0**20 * se:
                outer = np.nan
                break
        if np.isnan(outer):
            ends.append(sign * np.inf)
            continue
        ends.append(float(optimize.brentq(excess, inner, outer, xtol=1e-12, rtol=1e-12, maxiter=200)))
    return ends[0], ends[1]


def _mle(A: np.ndarray, codes: np.ndarray, K: int, sd: np.ndarray) -> tuple[Any, list[str]]:
    """statsmodels fit and the signs of (near-)separation it shows (empty when there are none)."""
    sm, sep_error, sep_warning, conv_warning = _statsmodels()
    signs: list[str] = []
    model = sm.Logit(codes.astype(np.float64), A) if K == 2 else sm.MNLogit(codes, A)
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="ignore", divide="ignore",
                                                                     invalid="ignore"):
        warnings.simplefilter("always")
        try:
            result = model.fit(method="newton", maxiter=MAXITER, disp=0)
        except sep_error:
            return None, ["statsmodels reports perfect separation"]
        except np.linalg.LinAlgError:
            return None, ["the information matrix is singular"]
    if any(issubclass(w.category, sep_warning) for w in caught):
        signs.append("statsmodels reports perfect separation")
    converged = bool(result.mle_retvals.get("converged", True))
    if not converged or any(issubclass(w.category, conv_warning) for w in caught):
        signs.append(f"the fit did not converge in {MAXITER} Newton iterations")
    params = np.asarray(result.params, dtype=np.float64).reshape(A.shape[1], -1)
    with np.errstate(invalid="ignore"):
        bse = np.asarray(result.bse, dtype=np.float64)
    if not np.isfinite(params).all() or not np.isfinite(bse).all():
        signs.append("some coefficients or standard errors are not finite")
    else:
        scaled = np.abs(params[1:]) * sd[:, None]
        if scaled.size and scaled.max() > COEF_LIMIT:
            signs.append(f"a coefficient changes the log-odds by {scaled.max():.3g} per standard deviation of "
                         f"its predictor")
    proba = _softmax(np.column_stack([np.zeros(len(A)), A @ params]))
    extreme = int((proba.max(axis=1) > 1 - EXTREME_P).sum())
    if extreme >= EXTREME_SHARE * len(A):
        signs.append(f"{extreme} of {len(A)} fitted probabilities are within {EXTREME_P:g} of 0 or 1")
    return result, signs


def _ridge(A: np.ndarray, codes: np.ndarray, K: int, ridge: float) -> tuple[np.ndarray, bool]:
    """Ridge-penalised (multinomial) logit by L-BFGS on standardised predictors.

    Minimises ``-loglik(B) + ridge / 2 * sum(B[1:] ** 2)`` with the predictors
    of ``A[:, 1:]`` standardised, then maps ``B`` back to the original scale.
    """
    from scipy import optimize
    n, q = A.shape
    mean, sd = _standardize(A[:, 1:])
    Z = np.column_stack([np.ones(n), (A[:, 1:] - mean) / sd])
    Y = np.zeros((n, K))
    Y[np.arange(n), codes] = 1.0
    pen = np.ones((q, 1))
    pen[0] = 0.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        B = theta.reshape(q, K - 1)
        eta = np.column_stack([np.zeros(n), Z @ B])
        m = eta.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(eta - m).sum(axis=1))
        P = np.exp(eta - lse[:, None])
        f = -float((eta * Y).sum() - lse.sum()) + 0.5 * ridge * float((pen * B**2).sum())
        grad = Z.T @ (P[:, 1:] - Y[:, 1:]) + ridge * pen * B
        return f, grad.ravel()

    res = optimize.minimize(objective, np.zeros(q * (K - 1)), jac=True, method="L-BFGS-B",
                            options={"maxiter": 10000, "gtol": 1e-10, "ftol": 1e-15})
    Bz = res.x.reshape(q, K - 1)
    B = np.empty_like(Bz)
    B[1:] = Bz[1:] / sd[:, None]
    B[0] = Bz[0] - (mean / sd) @ Bz[1:]
    grad_norm = float(np.abs(objective(res.x)[1]).max())
    return B, bool(res.success or grad_norm < 1e-6 * max(1.0, n))


def fit_logit(X: np.ndarray, codes: np.ndarray, names: list[str], classes: list[str], alpha: float = 0.05,
              penalized: bool = False, target: str = "target", ridge: float = RIDGE_DEFAULT,
              separation: str = "firth", inference: bool = True) -> LogitFit:
    """Fit ``class ~ const + X`` by (multinomial) logistic regression.

    Two classes give statsmodels ``Logit``; more give ``MNLogit`` against the
    reference class ``classes[0]``.

    Separation is looked for in two ways. Before fitting, :func:`separation_lp`
    decides exactly whether the training data are completely or
    quasi-completely separated. The maximum-likelihood fit is then checked for
    the signs of near-separation: statsmodels' ``PerfectSeparationError`` (older
    versions) or ``PerfectSeparationWarning``, non-convergence in
    :data:`MAXITER` Newton iterations, a singular information matrix,
    non-finite coefficients or standard errors, a coefficient above
    :data:`COEF_LIMIT` per standard deviation of its predictor, or at least
    :data:`EXTREME_SHARE` of the samples with a fitted probability within
    :data:`EXTREME_P` of 0 or 1.

    Separated binary classes are fitted by Firth's bias-reduced penalised
    likelihood (:func:`firth_logit`; ``separation='firth'``, the default):
    finite coefficients with Wald standard errors, penalised likelihood-ratio
    p-values and profile penalised-likelihood intervals, the method of R's
    logistf. Firth's correction is implemented for two classes; separated
    multinomial targets get the ridge-penalised fit (:func:`_ridge`), whose
    coefficients come without tests, and the fit's ``separating`` text says so.
    ``separation='stop'`` raises instead.

    Parameters
    ----------
    X
        Training samples x predictors (no intercept column).
    codes
        Class codes ``0..K-1`` of the same samples (see :func:`encode_labels`).
    names
        Predictor names, one per column of ``X``.
    classes
        The class labels; ``classes[0]`` is the reference.
    alpha
        Confidence intervals are at ``1 - alpha``.
    penalized
        Fit a ridge-penalised logistic regression (see :func:`_ridge`) instead
        of maximum likelihood: finite coefficients even under separation, but
        no standard errors, tests or intervals.
    target
        Target name, for messages.
    ridge
        L2 penalty of penalised fits (see :data:`RIDGE_DEFAULT`).
    separation
        ``'firth'``: fit separated classes as above; ``'stop'``: raise.
    inference
        Compute the Firth fit's likelihood-ratio tests and profile intervals
        (False for fits that only predict, as in cross-validation folds).

    Raises
    ------
    ModelError
        If a class has no training samples, there are too few samples for the
        parameters, the predictors are collinear, or (with ``separation='stop'``
        and without ``penalized``) the classes are separated.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    names = [str(n) for n in names]
    classes = [str(c) for c in classes]
    codes = np.asarray(codes)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"fit_logit: {X.shape[-1]} predictor columns but {len(names)} names")
    if codes.shape != (X.shape[0],):
        raise ValueError(f"fit_logit: {X.shape[0]} samples of predictors but codes of shape {codes.shape}")
    if not 0 < alpha < 1:
        raise ValueError(f"fit_logit: alpha must lie in (0, 1), not {alpha}")
    if not ridge > 0:
        raise ValueError(f"fit_logit: ridge must be positive, not {ridge}")
    if separation not in ("firth", "stop"):
        raise ValueError(f"fit_logit: separation must be 'firth' or 'stop', not {separation!r}")
    K = len(classes)
    if K < 2:
        raise ValueError(f"fit_logit: {K} classes; at least two are needed")
    if not np.issubdtype(codes.dtype, np.integer):
        if not np.all(np.equal(np.mod(codes, 1), 0)):
            raise ValueError("fit_logit: codes must be integers")
    codes = codes.astype(np.int64)
    if len(codes) and (codes.min() < 0 or codes.max() >= K):
        raise ValueError(f"fit_logit: codes must lie in 0..{K - 1}")
    if not np.isfinite(X).all():
        raise ValueError("fit_logit: predictors must be finite")
    n, p = X.shape
    counts = np.bincount(codes, minlength=K)
    if (counts == 0).any():
        absent = [c for c, m in zip(classes, counts) if m == 0]
        raise ModelError(
            f"Target {target!r}: {'classes' if len(absent) > 1 else 'class'} {preview(absent)} "
            f"{'have' if len(absent) > 1 else 'has'} no training samples (class counts: "
            f"{', '.join(f'{c}={m}' for c, m in zip(classes, counts))}), so it cannot be modelled. Use more "
            f"samples, a stratified split, or merge rare classes."
        )
    A = np.column_stack([np.ones(n), X])
    nparam = A.shape[1] * (K - 1)
    if not penalized and n <= nparam:
        raise ModelError(
            f"Target {target!r}: {n} training samples for {nparam} logistic-regression parameters "
            f"({p} predictors + intercept{f', for each of {K - 1} non-reference classes' if K > 2 else ''}); "
            f"maximum likelihood needs more samples than parameters. Use fewer predictors or more samples, or set "
            f"ols.penalized: true for a ridge-penalised fit."
        )
    if not penalized and np.linalg.matrix_rank(A) < A.shape[1]:
        raise ModelError(
            f"Target {target!r}: the predictors (with the intercept) are perfectly collinear over the training "
            f"samples, so the logistic-regression coefficients are not identifiable. Remove constant or redundant "
            f"predictors."
        )
    kind, direction = separation_lp(X, codes, K)
    _, sd = _standardize(X)
    terms = ["const", *names]
    ll0 = _null_log_likelihood(codes, K)
    evidence = ("an exact linear-programming test finds coefficients that classify every sample correctly"
                + (" with a positive margin" if kind == "complete" else ", some of them on the boundary"))
    weights = np.abs(direction[1:]).max(axis=1) if kind is not None else None
    if penalized:
        B, converged = _ridge(A, codes, K, ridge)
        return LogitFit(terms=terms, classes=classes, coef=B, penalized=True, n=n, alpha=alpha,
                        result=None, ridge=float(ridge), log_likelihood=_log_likelihood(A, codes, B),
                        null_log_likelihood=ll0, converged=converged, separation=kind, method="ridge",
                        separating=separation_text(kind, evidence, X, codes, names, classes, weights)
                        if kind else None)
    result = None
    if kind is None:
        result, signs = _mle(A, codes, K, sd)
        if not signs:
            B = np.asarray(result.params, dtype=np.float64).reshape(A.shape[1], K - 1)
            return LogitFit(terms=terms, classes=classes, coef=B, penalized=False, n=n, alpha=alpha,
                            result=result, ridge=None, log_likelihood=float(result.llf),
                            null_log_likelihood=float(result.llnull),
                            converged=bool(result.mle_retvals.get("converged", True)), separation=None)
        kind, evidence = "quasi-perfect", "; ".join(signs)
        if result is not None:
            params = np.asarray(result.params, dtype=np.float64).reshape(A.shape[1], K - 1)
            with np.errstate(invalid="ignore"):
                weights = np.nan_to_num((np.abs(params[1:]) * sd[:, None]).max(axis=1), nan=1e300, posinf=1e300)
    if separation == "stop":
        raise _separation_error(target, kind, evidence, X, codes, names, classes, weights)
    words = separation_text(kind, evidence, X, codes, names, classes, weights)
    if K > 2:
        B, converged = _ridge(A, codes, K, ridge)
        return LogitFit(terms=terms, classes=classes, coef=B, penalized=True, n=n, alpha=alpha, result=None,
                        ridge=float(ridge), log_likelihood=_log_likelihood(A, codes, B), null_log_likelihood=ll0,
                        converged=converged, separation=kind, method="ridge",
                        separating=words + f" Firth's correction is implemented for two classes; with {K} the "
                        f"multinomial model is ridge-penalised (L2 penalty {ridge:g} on standardised predictors), "
                        f"its coefficients finite but without standard errors, tests or intervals.")
    y = codes.astype(np.float64)
    ff = firth_logit(A, y)
    if not ff.converged:
        raise ModelError(
            f"Target {target!r}: {words} Firth's penalised logistic regression, fitted because of it, did not "
            f"converge in {FIRTH_MAXITER} Newton iterations. Remove the separating predictors, or set "
            f"ols.penalized: true for a ridge-penalised fit."
        )
    q = A.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.diag(ff.cov))
        z = ff.coef / se
    info: dict[str, Any] = {"se": se, "z": z, "p": np.full(q, np.nan), "lo": np.full(q, np.nan),
                            "hi": np.full(q, np.nan), "llr": np.nan, "llr_pvalue": np.nan}
    if inference:
        for j in range(q):
            info["p"][j] = firth_lr_test(A, y, ff, [j])[1]
            info["lo"][j], info["hi"][j] = firth_profile_interval(A, y, ff, j, alpha)
        if q > 1:
            info["llr"], info["llr_pvalue"], _ = firth_lr_test(A, y, ff, list(range(1, q)))
        else:
            info["llr"], info["llr_pvalue"] = 0.0, np.nan
    return LogitFit(terms=terms, classes=classes, coef=ff.coef[:, None].copy(), penalized=False, n=n, alpha=alpha,
                    result=None, ridge=None, log_likelihood=ff.log_likelihood, null_log_likelihood=ll0,
                    converged=ff.converged, separation=kind, method="firth",
                    separating=words + " Fitted by Firth's penalised likelihood instead of maximum likelihood.",
                    firth=ff, inference=info)


# --------------------------------------------------------------------------- metrics
def _auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUROC of ``scores`` for ``positive`` against the rest (ties count 1/2)."""
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    ranks = pd.Series(scores).rank(method="average").to_numpy()  # scipy.stats.rankdata's, without its import
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def classification_metrics(codes: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, AUROC and log-loss of predicted class probabilities.

    Parameters
    ----------
    codes
        True class codes ``0..K-1``.
    proba
        Predicted probabilities, samples x K.

    Returns
    -------
    dict
        ``n``; ``accuracy`` of the most probable class; ``auroc``: for two
        classes the Mann-Whitney AUROC of ``proba[:, 1]``, for more the macro
        average of the one-vs-rest AUROCs (NaN when a class is absent from
        ``codes``); ``log_loss``: the mean of ``-log p(true class)`` with ``p``
        clipped to ``[1e-15, 1]``. NaN for no samples.
    """
    codes = np.asarray(codes).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != len(codes) or proba.shape[1] < 2:
        raise ValueError(f"classification_metrics: probabilities of shape {proba.shape} for {len(codes)} samples")
    K = proba.shape[1]
    if len(codes) and (codes.min() < 0 or codes.max() >= K):
        raise ValueError(f"classification_metrics: codes must lie in 0..{K - 1}")
    n = len(codes)
    if n == 0:
        return {"n": 0, "accuracy": np.nan, "auroc": np.nan, "log_loss": np.nan}
    accuracy = float(np.mean(np.argmax(proba, axis=1) == codes))
    if K == 2:
        auroc = _auroc(proba[:, 1], codes == 1)
    else:
        auroc = float(np.mean([_auroc(proba[:, k], codes == k) for k in range(K)]))
    p_true = np.clip(proba[np.arange(n), codes], LOG_LOSS_EPS, 1.0)
    return {"n": n, "accuracy": accuracy, "auroc": auroc, "log_loss": float(-np.mean(np.log(p_true)))}
