"""Multiple regression of a target gene on predictor genes (statsmodels OLS).

``y = b0 + b1*x1 + ... + bp*xp + e`` fitted on the training split. The
coefficient table has the columns of :data:`COEF_COLUMNS`; the intercept's
term is ``const``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

COEF_COLUMNS = ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]


@dataclass
class OLSFit:
    """A fitted OLS model and what the pipeline saves of it."""

    terms: list[str]
    """``const`` followed by the predictor names, in design order."""
    result: Any
    """The statsmodels ``RegressionResultsWrapper``."""

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

    def summary(self, target: str) -> str:
        """The statsmodels summary, titled with the target."""
        return str(self.result.summary(yname=target, xname=self.terms, title=f"OLS: {target}"))

    def to_dict(self) -> dict[str, Any]:
        """Parameters as plain JSON (enough to predict without statsmodels)."""
        return {"terms": self.terms, "coef": self.coef.tolist(),
                "n": int(self.result.nobs), "df_resid": float(self.result.df_resid)}


def fit_ols(X: np.ndarray, y: np.ndarray, names: list[str]) -> OLSFit:
    """Fit ``y ~ const + X`` by ordinary least squares.

    Parameters
    ----------
    X
        Training samples x predictors (no intercept column).
    y
        Target values of the same samples.
    names
        Predictor names, one per column of ``X``.
    """
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
    result = sm.OLS(y, A).fit()
    return OLSFit(terms=["const", *names], result=result)
