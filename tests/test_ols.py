"""Tests of gexpred.ols against closed-form OLS computed with numpy and scipy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gexpred.ols import COEF_COLUMNS, fit_ols

RTOL = 1e-8


def _closed_form(X: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Textbook OLS inference: beta = (A'A)^-1 A'y with A = [1, X]."""
    n, p = X.shape
    A = np.column_stack([np.ones(n), X])
    AtA_inv = np.linalg.inv(A.T @ A)
    beta = AtA_inv @ A.T @ y
    resid = y - A @ beta
    df = n - p - 1
    sigma2 = float(resid @ resid) / df
    se = np.sqrt(np.diag(sigma2 * AtA_inv))
    t = beta / se
    pval = 2 * stats.t.sf(np.abs(t), df)
    q = stats.t.ppf(1 - alpha / 2, df)
    return {"coef": beta, "std_err": se, "t": t, "p_value": pval,
            "ci_low": beta - q * se, "ci_high": beta + q * se, "sigma2": sigma2, "df": df}


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(42)
    n, p = 60, 4
    # correlated predictors on different scales, plus an offset
    Z = rng.normal(size=(n, p))
    X = Z @ np.array([[1.0, 0.3, 0.0, 0.0], [0.0, 1.0, 0.5, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 0.0, 1.0]])
    X = X * np.array([1.0, 10.0, 0.1, 3.0]) + np.array([5.0, -2.0, 0.0, 100.0])
    y = 1.5 + X @ np.array([0.8, -0.05, 4.0, 0.0]) + rng.normal(scale=0.7, size=n)
    return X, y, ["g1", "g2", "g3", "g4"]


def test_table_columns_and_terms(data):
    X, y, names = data
    tab = fit_ols(X, y, names).table()
    assert list(tab.columns) == COEF_COLUMNS == ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]
    assert tab["term"].tolist() == ["const", "g1", "g2", "g3", "g4"]
    assert len(tab) == X.shape[1] + 1


@pytest.mark.parametrize("column", ["coef", "std_err", "t", "p_value", "ci_low", "ci_high"])
def test_table_matches_closed_form(data, column):
    X, y, names = data
    tab = fit_ols(X, y, names).table()
    expected = _closed_form(X, y)[column]
    np.testing.assert_allclose(tab[column].to_numpy(), expected, rtol=RTOL, atol=0)


def test_table_other_alpha_interval(data):
    X, y, names = data
    tab = fit_ols(X, y, names).table(alpha=0.10)
    ref = _closed_form(X, y, alpha=0.10)
    np.testing.assert_allclose(tab["ci_low"], ref["ci_low"], rtol=RTOL)
    np.testing.assert_allclose(tab["ci_high"], ref["ci_high"], rtol=RTOL)
    # a 90% interval is strictly inside the 95% one
    wide = fit_ols(X, y, names).table(alpha=0.05)
    assert (tab["ci_low"] > wide["ci_low"]).all() and (tab["ci_high"] < wide["ci_high"]).all()


def test_coefficients_match_lstsq_and_recover_truth():
    rng = np.random.default_rng(7)
    n = 5000
    X = rng.normal(size=(n, 3))
    y = -2.0 + X @ np.array([1.0, 0.0, -3.0]) + rng.normal(scale=0.1, size=n)
    fit = fit_ols(X, y, ["a", "b", "c"])
    A = np.column_stack([np.ones(n), X])
    lstsq = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(fit.coef, lstsq, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fit.coef, [-2.0, 1.0, 0.0, -3.0], atol=0.01)
    tab = fit.table()
    # the true zero coefficient is not significant, the others overwhelmingly so
    assert tab.loc[tab.term == "b", "p_value"].item() > 1e-3
    assert (tab.loc[tab.term.isin(["const", "a", "c"]), "p_value"] < 1e-100).all()
    # every 95% interval covers the truth here (a tiny failure probability with this seed fixed)
    truth = np.array([-2.0, 1.0, 0.0, -3.0])
    assert ((tab["ci_low"] <= truth) & (truth <= tab["ci_high"])).all()


def test_residual_variance_and_df(data):
    X, y, names = data
    fit = fit_ols(X, y, names)
    ref = _closed_form(X, y)
    d = fit.to_dict()
    assert d["n"] == len(y)
    assert d["df_resid"] == ref["df"] == len(y) - X.shape[1] - 1
    resid = y - fit.predict(X)
    np.testing.assert_allclose(float(resid @ resid) / d["df_resid"], ref["sigma2"], rtol=RTOL)


def test_predict_matches_closed_form_on_new_data(data):
    X, y, names = data
    fit = fit_ols(X, y, names)
    beta = _closed_form(X, y)["coef"]
    Xnew = np.random.default_rng(3).normal(size=(11, X.shape[1])) * 5
    np.testing.assert_allclose(fit.predict(Xnew), beta[0] + Xnew @ beta[1:], rtol=1e-10, atol=1e-10)
    # integer input is accepted and cast
    Xint = np.arange(2 * X.shape[1]).reshape(2, -1)
    np.testing.assert_allclose(fit.predict(Xint), beta[0] + Xint @ beta[1:], rtol=1e-10)


def test_to_dict_is_json_and_predicts(data):
    X, y, names = data
    fit = fit_ols(X, y, names)
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["terms"] == ["const", *names]
    coef = np.array(d["coef"])
    np.testing.assert_allclose(coef, _closed_form(X, y)["coef"], rtol=RTOL)
    np.testing.assert_allclose(coef[0] + X @ coef[1:], fit.predict(X), rtol=1e-12)


def test_single_predictor_matches_scipy_linregress():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 3.0 - 0.5 * x + rng.normal(size=40)
    tab = fit_ols(x[:, None], y, ["x"]).table()
    lr = stats.linregress(x, y)
    row = tab.set_index("term")
    np.testing.assert_allclose(row.loc["x", "coef"], lr.slope, rtol=1e-10)
    np.testing.assert_allclose(row.loc["const", "coef"], lr.intercept, rtol=1e-10)
    np.testing.assert_allclose(row.loc["x", "std_err"], lr.stderr, rtol=1e-8)
    np.testing.assert_allclose(row.loc["const", "std_err"], lr.intercept_stderr, rtol=1e-8)
    np.testing.assert_allclose(row.loc["x", "p_value"], lr.pvalue, rtol=1e-8)


def test_summary_names_target_and_terms(data):
    X, y, names = data
    text = fit_ols(X, y, names).summary("BSU00010")
    assert "BSU00010" in text
    for term in ["const", *names]:
        assert term in text


def test_names_must_match_columns(data):
    X, y, _ = data
    with pytest.raises(ValueError):
        fit_ols(X, y, ["only", "three", "names"])
    with pytest.raises(ValueError):
        fit_ols(X, y[:-1], ["g1", "g2", "g3", "g4"])


def test_table_is_dataframe_of_floats(data):
    X, y, names = data
    tab = fit_ols(X, y, names).table()
    assert isinstance(tab, pd.DataFrame)
    for c in COEF_COLUMNS[1:]:
        assert tab[c].dtype == np.float64
        assert np.isfinite(tab[c]).all()
