"""Multiple regression of a target gene on predictor genes (statsmodels OLS).

``y = b0 + b1*x1 + ... + bp*xp + e`` fitted on the training split. The
coefficient table has the columns of :data:`COEF_COLUMNS`; the intercept's
term is ``const``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

COEF_COLUMNS = ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]


@dataclass
class OLSFit:
    """A fitted OLS model and what the pipeline saves of it."""

    terms: list[str]
    """``const`` followed by the predictor names, in design order."""
    result: Any
    """The statsmodels ``RegressionResultsWrapper``."""
    leverage_one: list[int] = field(default_factory=list)
    """HC2 and HC3: training samples (row positions) of leverage 1 (:data:`LEVERAGE_ONE`), where the estimator is
    0 / 0 (:func:`fit_ols`)."""
    undefined: np.ndarray | None = None
    """Per term (bool), with :attr:`leverage_one`: determined by such a sample, so its variance is undefined (NaN
    standard error, t, p-value and interval, and NaN Wald tests that include it); ``None`` otherwise."""

    @property
    def coef(self) -> np.ndarray:
        return np.asarray(self.result.params)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict from predictor values (samples x predictors, without intercept)."""
        return self.coef[0] + np.asarray(X, dtype=np.float64) @ self.coef[1:]

    def table(self, alpha: float = 0.05) -> pd.DataFrame:
        """The coefficient table: ``term, coef, std_err, t, p_value, ci_low, ci_high``."""
        r = self.result
        ci = np.asarray(r.conf_int(alpha=alpha))
        return pd.DataFrame(
            {
                "term": self.terms,
                "coef": np.asarray(r.params),
                "std_err": np.asarray(r.bse),
                "t": np.asarray(r.tvalues),
                "p_value": np.asarray(r.pvalues),
                "ci_low": ci[:, 0],
                "ci_high": ci[:, 1],
            },
            columns=COEF_COLUMNS,
        )

    def summary(self, target: str, alpha: float = 0.05) -> str:
        """The statsmodels summary, titled with the target, its confidence intervals at ``1 - alpha`` (as
        :meth:`table`'s; statsmodels' own default is 95 %), its Date and Time as :func:`reproducible_summary`."""
        return reproducible_summary(str(self.result.summary(yname=target, xname=self.terms, title=f"OLS: {target}",
                                                            alpha=alpha)))

    def to_dict(self) -> dict[str, Any]:
        """Parameters as plain JSON (enough to predict without statsmodels)."""
        return {"terms": self.terms, "coef": self.coef.tolist(),
                "n": int(self.result.nobs), "df_resid": float(self.result.df_resid)}


def reproducible_summary(text: str) -> str:
    """A statsmodels summary whose ``Date:`` and ``Time:`` cells (the moment it was printed) read the time of
    ``SOURCE_DATE_EPOCH`` when it is set (reproducible builds: two runs then give identical files), in UTC;
    unchanged otherwise."""
    import os
    import re
    import time

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return text
    t = time.gmtime(int(epoch))
    text = re.sub(r"(Date:\s+)\w{3}, \d{2} \w{3} \d{4}", lambda m: m.group(1) + time.strftime("%a, %d %b %Y", t),
                  text)
    return re.sub(r"(Time:\s+)\d{2}:\d{2}:\d{2}", lambda m: m.group(1) + time.strftime("%H:%M:%S", t), text)


def is_intercept(terms) -> np.ndarray:
    """Which coefficient terms are intercepts: ``const`` (OLS, binary logistic regression) and ``const[k]``
    (multinomial logistic regression, one per non-reference class). No design term may take these names
    (:func:`gexpred.design.build_design` refuses them), so they are never tested nor counted in the
    Benjamini-Hochberg correction."""
    t = pd.Series(terms, dtype=object).astype(str)
    return ((t == "const") | t.str.startswith("const[")).to_numpy()


#: A training sample whose leverage exceeds this is fitted exactly by its own column: HC2 and HC3 are 0 / 0 there.
LEVERAGE_ONE = 1.0 - 1e-8

#: Covariance estimators of the coefficients: classical, or heteroskedasticity-consistent (White 1980; MacKinnon &
#: White 1985), as statsmodels' ``cov_type`` names them.
COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")


def fit_ols(X: np.ndarray, y: np.ndarray, names: list[str], cov_type: str = "nonrobust") -> OLSFit:
    """Fit ``y ~ const + X`` by ordinary least squares.

    Parameters
    ----------
    X
        Training samples x predictors (no intercept column).
    y
        Target values of the same samples.
    names
        Predictor names, one per column of ``X``.
    cov_type
        The coefficients' covariance (:data:`COV_TYPES`): ``nonrobust`` (classical, assuming a constant residual
        variance) or a heteroskedasticity-consistent sandwich estimator, ``HC3`` the one recommended for small
        samples (Long & Ervin 2000). With a robust covariance the standard errors, t-tests, intervals and the
        overall F-test (a Wald test of all slopes) use it, with t and F distributions on the residual degrees of
        freedom (statsmodels' ``fit(cov_type=..., use_t=True)``; R's ``lmtest::coeftest(fit, vcovHC(fit))``).

    Notes
    -----
    HC2 and HC3 weight each squared residual by ``1 / (1 - h)`` (or its square), ``h`` the sample's leverage. A
    training sample of leverage 1 (:data:`LEVERAGE_ONE`; the one sample of a covariate level) is fitted exactly,
    and its term is 0 / 0, which makes statsmodels' covariance arbitrary or NaN (and its overall F-test raise).
    Its weight is then set to 0, as the genome-wide engine does (:func:`gexpred.batched._sandwich_design`): the
    variances of the coefficients it does not determine are exact (as HC0 weights that sample), and those it
    determines (:func:`determined_terms`) have NaN standard errors, t, p-values and intervals, and make NaN every
    Wald test that includes them (the overall F-test of all slopes, :func:`nested_tests`). The result's
    covariance (``cov_params``) is replaced by that one, NaN in their rows and columns
    (:attr:`OLSFit.leverage_one`, :attr:`OLSFit.undefined`). Without such a sample, and for ``nonrobust``,
    ``HC0`` and ``HC1``, the result is statsmodels' own.
    """
    if cov_type not in COV_TYPES:
        raise ValueError(f"fit_ols: cov_type must be one of {COV_TYPES}, not {cov_type!r}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    names = [str(n) for n in names]
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"fit_ols: {X.shape[-1]} predictor columns but {len(names)} names")
    if y.shape != (X.shape[0],):
        raise ValueError(f"fit_ols: {X.shape[0]} samples of predictors but target of shape {y.shape}")
    A = np.column_stack([np.ones(X.shape[0]), X])
    # here, not at import: the genome-wide engine needs only COEF_COLUMNS; the module, not statsmodels.api, which
    # imports every model (~0.4 s more of each job's start-up)
    from statsmodels.regression.linear_model import OLS

    terms = ["const", *names]
    if cov_type not in ("HC2", "HC3"):
        result = OLS(y, A).fit() if cov_type == "nonrobust" else OLS(y, A).fit(cov_type=cov_type, use_t=True)
        return OLSFit(terms=terms, result=result)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 at a sample of leverage 1: replaced below
        result = OLS(y, A).fit(cov_type=cov_type, use_t=True)
    H = np.asarray(result.model.pinv_wexog)  # (A'A)^-1 A', as statsmodels' sandwich
    w, one = sandwich_weights(np.einsum("ij,ji->i", A, H), cov_type)
    if not one.size or A.shape[1] < 2:
        return OLSFit(terms=terms, result=result)
    undefined = determined_terms(H, one)
    V = (H * (w * np.asarray(result.resid) ** 2)) @ H.T
    V[undefined, :] = np.nan
    V[:, undefined] = np.nan
    inner = result._results  # the wrapper's results: bse, t, p-values and intervals derive from cov_params_default
    inner.cov_params_default = V
    for key in ("bse", "tvalues", "pvalues", "fvalue", "f_pvalue"):
        inner._cache.pop(key, None)
    fit = OLSFit(terms=terms, result=result, leverage_one=one.tolist(), undefined=undefined)
    # the overall F-test (statsmodels' fvalue of a robust fit: the Wald F-test of all slopes), from that covariance
    inner._cache["fvalue"], inner._cache["f_pvalue"] = robust_wald(fit, range(1, len(terms)))
    return fit


def sandwich_weights(h: np.ndarray, cov_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's weight of its squared residual in the sandwich ``cov_type`` given the leverages ``h``: 1 (HC0,
    HC1), ``1 / (1 - h)`` (HC2), ``1 / (1 - h)^2`` (HC3); and the samples (positions) of leverage 1
    (:data:`LEVERAGE_ONE`, HC2 and HC3 only), whose 0 / 0 weight is set to 0 (:func:`fit_ols`,
    :func:`gexpred.batched._sandwich_design`)."""
    h = np.asarray(h, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = {"HC2": 1.0 / (1.0 - h), "HC3": 1.0 / (1.0 - h) ** 2}.get(cov_type, np.ones(len(h)))
    one = np.flatnonzero(h > LEVERAGE_ONE) if cov_type in ("HC2", "HC3") else np.zeros(0, dtype=np.int64)
    w[one] = 0.0
    return w, one


def determined_terms(H: np.ndarray, one: Sequence[int]) -> np.ndarray:
    """Which coefficients the samples ``one`` (row positions) of leverage 1 determine, per coefficient (bool).

    ``H = (A'A)^-1 A'`` (k x n): a sample ``i`` of leverage 1 is fitted exactly by the coefficients ``c = H[:, i]``
    (``A c`` is the sample's unit vector); it determines coefficient ``j`` when ``c_j`` is not 0 (rounding:
    ``|c_j|`` above ``sqrt(eps)`` times the norm of ``H[j]``). Shared by :func:`fit_ols` and the genome-wide engine
    (:func:`gexpred.batched._sandwich_design`)."""
    H = np.asarray(H, dtype=np.float64)
    one = np.asarray(one, dtype=np.int64)
    if not one.size:
        return np.zeros(H.shape[0], dtype=bool)
    return (np.abs(H[:, one]) > np.sqrt(np.finfo(np.float64).eps) * np.sqrt((H * H).sum(axis=1))[:, None]).any(axis=1)


def robust_wald(fit: OLSFit, rows: Sequence[int]) -> tuple[float, float]:
    """The Wald F-test that the coefficients at positions ``rows`` of ``fit.terms`` are all zero, with the fit's
    (robust) covariance, on the residual degrees of freedom (statsmodels' ``wald_test(..., use_f=True)``):
    ``(F, p_value)``; ``(nan, nan)`` when one of them is undefined (:attr:`OLSFit.undefined`)."""
    rows = list(rows)
    R = np.zeros((len(rows), len(fit.terms)))
    R[np.arange(len(rows)), rows] = 1.0
    if fit.undefined is None:
        w = fit.result.wald_test(R, use_f=True, scalar=True)
    elif fit.undefined[rows].any():
        return float("nan"), float("nan")
    else:  # the tested block is finite; the undefined rows and columns, which R leaves out, must not turn it NaN
        bad = fit.undefined[:, None] | fit.undefined[None, :]
        w = fit.result.wald_test(R, cov_p=np.where(bad, 0.0, np.asarray(fit.result.cov_params())), use_f=True,
                                 scalar=True)
    return float(w.statistic), float(w.pvalue)


# --------------------------------------------------------------------------- inference beyond coefficients
FIT_COLUMNS = ["n", "df_model", "df_resid", "r2", "adj_r2", "f_stat", "f_pvalue", "aic", "bic", "log_likelihood",
               "condition_number"]
DIAGNOSTIC_COLUMNS = ["check", "term", "statistic", "p_value", "threshold", "verdict", "assumption"]
INFLUENCE_COLUMNS = ["sample", "leverage", "cooks_distance", "studentized_residual", "influential"]
NESTED_COLUMNS = ["gene_set", "f_stat", "df_num", "df_den", "p_value", "terms"]

#: VIF above this flags multicollinearity (a common rule of thumb).
VIF_LIMIT = 10.0
#: Durbin-Watson outside this range flags autocorrelated residuals.
DW_RANGE = (1.5, 2.5)


def fit_statistics(fit: OLSFit) -> pd.DataFrame:
    """One row: ``n, df_model, df_resid, r2, adj_r2, f_stat, f_pvalue, aic, bic, log_likelihood, condition_number``.

    ``aic`` and ``bic`` follow statsmodels: the ``k = p + 1`` coefficients are the
    parameters, ``AIC = -2 log L + 2 k`` and ``BIC = -2 log L + k log n``. R's
    ``AIC()``/``BIC()`` of an ``lm`` also count the residual variance, so they are 2
    and ``log n`` larger; differences between models are the same.
    """
    r = fit.result
    row = {
        "n": int(r.nobs),
        "df_model": float(r.df_model),
        "df_resid": float(r.df_resid),
        "r2": float(r.rsquared),
        "adj_r2": float(r.rsquared_adj),
        "f_stat": float(r.fvalue),
        "f_pvalue": float(r.f_pvalue),
        "aic": float(r.aic),
        "bic": float(r.bic),
        "log_likelihood": float(r.llf),
        "condition_number": float(r.condition_number),
    }
    return pd.DataFrame([row], columns=FIT_COLUMNS)


def diagnostics(fit: OLSFit, alpha: float = 0.05) -> pd.DataFrame:
    """Checks of the OLS assumptions, one row each, with a verdict.

    * ``vif`` per predictor: variance inflation factor (multicollinearity;
      ``fails`` above :data:`VIF_LIMIT`), a product term's factors centred
      (:func:`centred_products`).
    * ``breusch_pagan``: LM test of residual variance depending on the
      predictors (heteroskedasticity; ``fails`` when p < alpha).
    * ``jarque_bera``: normality of the residuals (``fails`` when p < alpha).
    * ``durbin_watson``: first-order autocorrelation of the residuals in
      sample order (only meaningful when the sample order means something,
      e.g. a time series). ``fails`` outside :data:`DW_RANGE` *and* when its
      two-sided p-value under uncorrelated residuals, from the large-sample
      law ``DW ~ N(2, 4 / n)``, is below alpha: the rule of thumb alone
      flags 13 % of samples in random order at n = 36 (``|DW - 2| > 0.5`` is
      1.5 standard errors there), a level no other check has.
    """
    from statsmodels.stats.diagnostic import het_breuschpagan
    from statsmodels.stats.stattools import durbin_watson, jarque_bera

    r = fit.result
    exog = np.asarray(r.model.exog)
    resid = np.asarray(r.resid)
    rows = vif_rows(exog, fit.terms)
    lm, lm_p, _, _ = het_breuschpagan(resid, exog)
    rows.append(("breusch_pagan", "", float(lm), float(lm_p), alpha, "fails" if lm_p < alpha else "ok",
                 "constant residual variance (homoskedasticity)"))
    jb, jb_p, _, _ = jarque_bera(resid)
    rows.append(("jarque_bera", "", float(jb), float(jb_p), alpha, "fails" if jb_p < alpha else "ok",
                 "normally distributed residuals"))
    dw = float(durbin_watson(resid))
    from scipy.special import ndtr

    dw_p = float(2.0 * ndtr(-abs(dw - 2.0) * np.sqrt(len(resid)) / 2.0))  # DW ~ N(2, 4/n) without autocorrelation
    rows.append(("durbin_watson", "", dw, dw_p, f"{DW_RANGE[0]}-{DW_RANGE[1]}",
                 "ok" if DW_RANGE[0] <= dw <= DW_RANGE[1] or dw_p >= alpha else "fails",
                 "uncorrelated residuals (in sample order)"))
    return pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS)


def centred_products(A: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    """``A`` (intercept first, columns named by ``terms``) with each product term ``a:b`` whose factors ``a`` and
    ``b`` are terms too recomputed from its factors centred on their means over these rows.

    The fit does not change (``a:b`` of centred factors spans the same columns with the intercept, ``a`` and
    ``b``), but collinearity does: uncentred, ``a:b`` is nearly ``mean(b) a + mean(a) b`` wherever the
    predictors' zero lies far from their data (expression on a log scale, around 8), so ``a``, ``b`` and ``a:b``
    get variance inflation factors in the hundreds from where zero is, not from the data ("non-essential"
    collinearity; Marquardt 1980).
    """
    A = np.array(A, dtype=np.float64)
    index = {str(t): j for j, t in enumerate(terms)}
    for j, term in enumerate(map(str, terms)):
        parts = term.split(":")
        if len(parts) == 2 and all(p in index and index[p] != j for p in parts):
            a, b = (A[:, index[p]] for p in parts)
            A[:, j] = (a - a.mean()) * (b - b.mean())
    return A


#: A categorical covariate's treatment-contrast columns, ``name[T.level]`` (:func:`gexpred.design.encode_covariates`).
LEVEL_TERM = re.compile(r"^(?P<factor>.+)\[T\.(?P<level>.*)\]$")


def term_groups(terms: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The terms of a design (intercept first) as the units collinearity is judged by: each term alone, but the
    level columns of one categorical covariate (``batch[T.b]``, ``batch[T.c]``, ...) together, named by the
    covariate (``batch``), where it has two or more, in the order of each unit's first column."""
    units: dict[tuple[bool, str], list[int]] = {}
    for j, term in enumerate(map(str, terms)):
        if j == 0:
            continue
        m = LEVEL_TERM.match(term)
        units.setdefault((True, m.group("factor")) if m else (False, term), []).append(j)
    out = []
    for (level, name), js in units.items():
        if level and len(js) == 1:
            name = str(terms[js[0]])  # a single level column is judged, and named, as itself
        out.append((name, js))
    return out


def _span(X: np.ndarray) -> tuple[np.ndarray, bool]:
    """An orthonormal basis of the centred columns' span (singular values below rounding left out) and whether
    the columns are of full rank."""
    u, sv, _ = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    keep = sv > max(X.shape) * np.finfo(np.float64).eps * (sv[0] if len(sv) else 0.0)
    return u[:, keep], bool(keep.all()) and len(sv) > 0


def generalized_vif(A: np.ndarray, columns: Sequence[int]) -> float:
    """Generalised variance inflation factor of a set of columns of the design ``A`` (intercept first; Fox &
    Monette 1992, *JASA* 87:178): ``det(R11) det(R22) / det(R)``, with ``R`` the correlation matrix of the
    columns but the intercept, ``R11`` its block of ``columns`` and ``R22`` the block of the others; computed as
    ``prod 1 / (1 - rho_i^2)`` over the canonical correlations ``rho_i`` between the two sets (the same
    quantity, defined too when the other columns are collinear among themselves). One column: the usual VIF,
    ``1 / (1 - R^2)``. Unlike the VIFs of a factor's level columns one by one, it does not depend on which
    level is the reference (the columns' span is what counts). ``inf`` when the columns are linear
    combinations of the others (up to rounding: a GVIF above 1e12)."""
    X = np.asarray(A, dtype=np.float64)[:, 1:]
    cols = np.asarray(columns, dtype=np.int64) - 1
    rest = np.setdiff1d(np.arange(X.shape[1]), cols)
    own, full = _span(X[:, cols])
    if not full:
        return float("inf")
    if not len(rest):
        return 1.0
    other, _ = _span(X[:, rest])
    rho = np.clip(np.linalg.svd(own.T @ other, compute_uv=False), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        gvif = float(np.exp(-np.sum(np.log1p(-rho**2))))
    return float("inf") if gvif > 1e12 else gvif


def vif_rows(A: np.ndarray, terms: Sequence[str]) -> list[tuple]:
    """The ``vif`` rows of :func:`diagnostics` (:data:`DIAGNOSTIC_COLUMNS`), one per term but the intercept, of
    the design ``A`` (intercept first, columns named by ``terms``), product terms judged with their factors centred
    (:func:`centred_products`).

    A categorical covariate with two or more level columns gets one row, named by the covariate, holding its
    generalised VIF (:func:`generalized_vif`) to the power ``1 / df`` (``df`` its number of columns), the scale
    on which Fox & Monette compare it with an ordinary VIF (R's ``car::vif`` prints the square root of it,
    ``GVIF^(1/(2 df))``, to compare with ``sqrt(VIF)``); the level columns' own VIFs depend on the reference
    level and on how rare a level is, so they are not judged one by one."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    A = centred_products(A, terms)
    rows = []
    for name, js in term_groups(terms):
        if A.shape[1] == len(js) + 1:
            vif, what = 1.0, "predictors not collinear"
        elif len(js) == 1:
            with np.errstate(divide="ignore"):
                vif = float(variance_inflation_factor(A, js[0]))
            what = "predictors not collinear"
        else:
            vif = generalized_vif(A, js) ** (1.0 / len(js))
            what = f"predictors not collinear (generalised VIF^(1/{len(js)}) of the {len(js)} level columns)"
        rows.append(("vif", name, vif, np.nan, VIF_LIMIT, "fails" if vif > VIF_LIMIT else "ok", what))
    return rows


def failed_assumptions(diag: pd.DataFrame) -> list[str]:
    """Sentences naming each failed assumption, for logs and reports."""
    out = []
    vif = diag[(diag["check"] == "vif") & (diag["verdict"] == "fails")]
    if len(vif):
        terms = ", ".join(f"{t} ({v:.1f})" for t, v in zip(vif["term"], vif["statistic"]))
        out.append(f"multicollinearity: VIF above {VIF_LIMIT:g} for {terms}")
    for check, text in (("breusch_pagan", "heteroskedastic residuals (Breusch-Pagan p = {p:.2g})"),
                        ("jarque_bera", "non-normal residuals (Jarque-Bera p = {p:.2g})"),
                        ("durbin_watson", "autocorrelated residuals in sample order (Durbin-Watson = {s:.2f}, "
                                          "p = {p:.2g})")):
        row = diag[(diag["check"] == check) & (diag["verdict"] == "fails")]
        if len(row):
            out.append(text.format(p=row["p_value"].iloc[0], s=row["statistic"].iloc[0]))
    return out


def influence(fit: OLSFit, samples: list[str]) -> pd.DataFrame:
    """Leverage, Cook's distance and externally studentized residual per training sample.

    ``influential`` is true when Cook's distance exceeds ``4 / n``. A sample of leverage 1
    (:data:`LEVERAGE_ONE`; the one training sample of a covariate level) is fitted exactly by the coefficient it
    alone determines: its residual and ``1 - h`` are both 0, so its Cook's distance and studentized residual are
    0 / 0, which floating point turns into anything from 0 to large numbers or NaN. They are NaN here, and the
    sample counts as influential (without it that coefficient could not be estimated at all).
    """
    import warnings

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # statsmodels' leave-one-out refits warn of the singular design a leverage-1 sample leaves behind
        warnings.simplefilter("ignore")
        infl = fit.result.get_influence()
        leverage = np.asarray(infl.hat_matrix_diag, dtype=float)
        cooks = np.array(infl.cooks_distance[0], dtype=float)
        student = np.array(infl.resid_studentized_external, dtype=float)
    one = leverage > LEVERAGE_ONE
    cooks[one] = np.nan
    student[one] = np.nan
    n = len(cooks)
    return pd.DataFrame({
        "sample": list(samples),
        "leverage": leverage,
        "cooks_distance": cooks,
        "studentized_residual": student,
        "influential": (cooks > 4.0 / n) | one,
    }, columns=INFLUENCE_COLUMNS)


def set_terms(terms: Sequence[str], genes: set[str]) -> list[int]:
    """Positions of the ``terms`` a gene set removes: its genes and every product term (``a:b``) of one of them."""
    return [j for j, t in enumerate(terms) if t in genes or (":" in t and set(t.split(":")) & genes)]


def nested_tests(fit: OLSFit, X: np.ndarray, y: np.ndarray, gene_sets: dict[str, list[str]]) -> pd.DataFrame:
    """F-test of each gene set: does it add explanatory power beyond the other terms?

    For each set, the full model is compared with the model without the set's
    genes and without every interaction term that involves one of them. With a
    robust covariance (:func:`fit_ols`'s ``cov_type``) the test is the Wald F-test
    of those coefficients with that covariance (the nested F-test assumes a
    constant residual variance), NaN when the set holds a term whose HC2/HC3
    variance a sample of leverage 1 leaves undefined (:func:`fit_ols`).

    Parameters
    ----------
    fit
        The full model.
    X, y
        Its design (without intercept, columns in ``fit.terms[1:]`` order) and target.
    gene_sets
        ``{name: [genes]}``.
    """
    names = fit.terms[1:]
    from statsmodels.regression.linear_model import OLS

    rows = []
    for set_name, genes in gene_sets.items():
        drop = set_terms(names, {str(g) for g in genes})
        if not drop:
            rows.append((set_name, np.nan, 0, float(fit.result.df_resid), np.nan, ""))
            continue
        if fit.result.cov_type != "nonrobust":  # the Wald F-test of the set's coefficients with the robust covariance
            f, p = robust_wald(fit, [j + 1 for j in drop])  # NaN when the set holds an undefined term (fit_ols)
            rows.append((set_name, f, len(drop), float(fit.result.df_resid), p, " ".join(names[j] for j in drop)))
            continue
        keep = [j for j in range(len(names)) if j not in drop]
        A = np.column_stack([np.ones(len(y)), np.asarray(X)[:, keep]])
        restricted = OLS(np.asarray(y, dtype=np.float64), A).fit()
        f, p, df_diff = fit.result.compare_f_test(restricted)
        rows.append((set_name, float(f), int(round(df_diff)), float(fit.result.df_resid), float(p),
                     " ".join(names[j] for j in drop)))
    return pd.DataFrame(rows, columns=NESTED_COLUMNS)


def bh_qvalues(p: np.ndarray, return_sorted: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg q-values; NaN p-values stay NaN and are not counted.

    ``q_(i) = min_{j >= i} min(1, p_(j) m / j)`` over the ``m`` finite p-values sorted
    increasingly: statsmodels' ``multipletests(method="fdr_bh")`` (tests hold it to that), in
    numpy, because importing statsmodels.stats costs the genome-wide merge half a second.
    With ``return_sorted``, also the finite p-values in increasing order (for a QQ plot, without
    sorting millions of them twice).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    ps = np.zeros(0)
    if m:
        order = ok[np.argsort(p[ok])]  # ties get equal q-values whatever their order
        ps = p[order]
        ranked = np.arange(1.0, m + 1.0)  # in place from here (millions of terms in a genome-wide merge), and
        ranked /= m  # statsmodels' operations: p_(j) / (j / m)
        np.divide(ps, ranked, out=ranked)
        np.minimum.accumulate(ranked[::-1], out=ranked[::-1])
        np.minimum(ranked, 1.0, out=ranked)
        q[order] = ranked
    return (q, ps) if return_sorted else q
