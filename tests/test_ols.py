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


# --------------------------------------------------------------------------- inference beyond coefficients
class TestInference:
    """fit statistics, diagnostics, influence, nested F-tests and BH against direct formulas."""

    @staticmethod
    def data(seed=11, n=120, p=4):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, p))
        X[:, 1] += 0.9 * X[:, 0]  # some collinearity
        y = 1.0 + X @ np.arange(1, p + 1) * 0.5 + rng.normal(0, np.exp(0.7 * X[:, 0]), n)
        return X, y

    def test_fit_statistics(self):
        from gexpred.ols import FIT_COLUMNS, fit_ols, fit_statistics

        X, y = self.data()
        n, p = X.shape
        A = np.column_stack([np.ones(n), X])
        beta = np.linalg.lstsq(A, y, rcond=None)[0]
        rss = float(((y - A @ beta) ** 2).sum())
        tss = float(((y - y.mean()) ** 2).sum())
        llf = -n / 2 * (np.log(2 * np.pi) + np.log(rss / n) + 1)
        row = fit_statistics(fit_ols(X, y, [f"g{i}" for i in range(p)])).iloc[0]
        assert list(row.index) == FIT_COLUMNS
        assert row["n"] == n and row["df_model"] == p and row["df_resid"] == n - p - 1
        np.testing.assert_allclose(row["r2"], 1 - rss / tss, rtol=1e-10)
        np.testing.assert_allclose(row["adj_r2"], 1 - (rss / (n - p - 1)) / (tss / (n - 1)), rtol=1e-10)
        f = ((tss - rss) / p) / (rss / (n - p - 1))
        np.testing.assert_allclose(row["f_stat"], f, rtol=1e-10)
        np.testing.assert_allclose(row["f_pvalue"], stats.f.sf(f, p, n - p - 1), rtol=1e-8)
        np.testing.assert_allclose(row["log_likelihood"], llf, rtol=1e-10)
        np.testing.assert_allclose(row["aic"], -2 * llf + 2 * (p + 1), rtol=1e-10)
        np.testing.assert_allclose(row["bic"], -2 * llf + np.log(n) * (p + 1), rtol=1e-10)
        np.testing.assert_allclose(row["condition_number"], np.linalg.cond(A), rtol=1e-8)

    def test_diagnostics(self):
        from gexpred.ols import DIAGNOSTIC_COLUMNS, diagnostics, failed_assumptions, fit_ols

        X, y = self.data()
        n, p = X.shape
        names = [f"g{i}" for i in range(p)]
        diag = diagnostics(fit_ols(X, y, names)).set_index(["check", "term"])
        assert list(diag.reset_index().columns) == DIAGNOSTIC_COLUMNS
        A = np.column_stack([np.ones(n), X])
        for j, name in enumerate(names):  # VIF_j = 1 / (1 - R^2 of x_j on the other predictors)
            others = np.delete(A, j + 1, axis=1)
            fitted = others @ np.linalg.lstsq(others, X[:, j], rcond=None)[0]
            r2 = 1 - ((X[:, j] - fitted) ** 2).sum() / ((X[:, j] - X[:, j].mean()) ** 2).sum()
            np.testing.assert_allclose(diag.loc[("vif", name), "statistic"], 1 / (1 - r2), rtol=1e-8)
        resid = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
        # Breusch-Pagan (Koenker's studentized form): LM = n * R^2 of resid^2 on the design
        e2 = resid**2
        fitted = A @ np.linalg.lstsq(A, e2, rcond=None)[0]
        lm = n * (1 - ((e2 - fitted) ** 2).sum() / ((e2 - e2.mean()) ** 2).sum())
        np.testing.assert_allclose(diag.loc[("breusch_pagan", ""), "statistic"], lm, rtol=1e-8)
        np.testing.assert_allclose(diag.loc[("breusch_pagan", ""), "p_value"], stats.chi2.sf(lm, p), rtol=1e-8)
        jb = stats.jarque_bera(resid)
        np.testing.assert_allclose(diag.loc[("jarque_bera", ""), "statistic"], jb.statistic, rtol=1e-8)
        np.testing.assert_allclose(diag.loc[("jarque_bera", ""), "p_value"], jb.pvalue, rtol=1e-8)
        dw = (np.diff(resid) ** 2).sum() / (resid**2).sum()
        np.testing.assert_allclose(diag.loc[("durbin_watson", ""), "statistic"], dw, rtol=1e-10)
        np.testing.assert_allclose(diag.loc[("durbin_watson", ""), "p_value"],
                                   2 * stats.norm.sf(abs(dw - 2) / np.sqrt(4 / n)), rtol=1e-10)
        # the residual SD grows with x0 (exp(0.7 x0)): heteroskedasticity must be flagged, in words too
        assert diag.loc[("breusch_pagan", ""), "verdict"] == "fails"
        assert any("heteroskedastic" in s for s in failed_assumptions(diag.reset_index()))

    def test_vif_of_an_interaction_judges_its_factors_centred(self):
        """Independent genes around 8 (log expression) and their product a:b: uncentred, a:b is nearly
        8a + 8b, so statsmodels' VIF on the design as fitted is in the hundreds for a, b and a:b ("multicollinearity"
        in the report for every target with an interaction, from where zero lies); judged with a and b centred in
        the product (the same fit) they are about 1, as the independent draws are."""
        from statsmodels.stats.outliers_influence import variance_inflation_factor

        from gexpred.ols import diagnostics, fit_ols

        rng = np.random.default_rng(5)
        n = 80
        X = rng.normal(8.0, 1.0, size=(n, 3))
        Xi = np.column_stack([X, X[:, 0] * X[:, 1], X[:, 2] ** 2])  # a:b and the square c:c
        y = X @ [0.5, -0.3, 0.2] + 0.1 * Xi[:, 3] + rng.normal(size=n)
        names = ["a", "b", "c", "a:b", "c:c"]
        diag = diagnostics(fit_ols(Xi, y, names)).set_index(["check", "term"])
        A = np.column_stack([np.ones(n), Xi])
        raw = [variance_inflation_factor(A, j) for j in (1, 2, 4)]
        assert min(raw) > 50  # the artefact: a, b, a:b
        Ac = A.copy()
        Xc = X - X.mean(axis=0)
        Ac[:, 4], Ac[:, 5] = Xc[:, 0] * Xc[:, 1], Xc[:, 2] ** 2
        for j, name in enumerate(names, start=1):  # 1 / (1 - R^2 of the term on the others), numpy
            others = np.delete(Ac, j, axis=1)
            fitted = others @ np.linalg.lstsq(others, Ac[:, j], rcond=None)[0]
            r2 = 1 - ((Ac[:, j] - fitted) ** 2).sum() / ((Ac[:, j] - Ac[:, j].mean()) ** 2).sum()
            np.testing.assert_allclose(diag.loc[("vif", name), "statistic"], 1 / (1 - r2), rtol=1e-8)
            assert diag.loc[("vif", name), "verdict"] == "ok"
        # the fit itself is the uncentred design's (statsmodels on A)
        import statsmodels.api as sm

        ref = sm.OLS(y, A).fit()
        np.testing.assert_allclose(fit_ols(Xi, y, names).coef, ref.params, rtol=1e-10)

    @staticmethod
    def _canonical_gvif(A: np.ndarray, cols: list[int]) -> float:
        """The generalised VIF from the canonical correlations rho_i between the columns and the other predictors
        (GVIF = prod 1 / (1 - rho_i^2); Fox & Monette 1992, sec. 2): numpy QR and SVD, not the determinants."""
        X = A[:, 1:] - A[:, 1:].mean(axis=0)
        c = [j - 1 for j in cols]
        rest = [j for j in range(X.shape[1]) if j not in c]
        q1, q2 = np.linalg.qr(X[:, c])[0], np.linalg.qr(X[:, rest])[0]
        rho = np.linalg.svd(q1.T @ q2, compute_uv=False)
        return float(np.prod(1 / (1 - rho**2)))

    def test_a_categorical_covariate_is_judged_by_its_generalised_vif(self):
        """A three-level batch whose level b goes with a gene's expression: its two level columns are judged as
        one term, 'batch', by GVIF^(1/2) (Fox & Monette), equal to the canonical-correlation form computed here,
        and the same whichever level is the reference (the level columns' own VIFs change with it: 4.0 vs 1.6
        here). A two-level factor keeps its one column's ordinary VIF, under the column's name."""
        from gexpred.design import encode_covariates
        from gexpred.ols import diagnostics, fit_ols

        rng = np.random.default_rng(11)
        n = 90
        batch = pd.Series(rng.choice(["a", "b", "c"], size=n, p=[0.2, 0.4, 0.4]), index=[f"s{i}" for i in range(n)])
        g1 = rng.normal(size=n) + 1.2 * (batch == "b").to_numpy()
        g2 = rng.normal(size=n)
        y = g1 - g2 + rng.normal(size=n)
        gvifs = []
        for ref in ("a", "c"):
            obs = pd.DataFrame({"batch": batch.where(batch != ref, "0" + ref)})  # the reference sorts first
            cols, _ = encode_covariates(obs, ["batch"], np.ones(n, bool))
            X = np.column_stack([g1, g2, cols.to_numpy()])
            names = ["g1", "g2", *cols.columns]
            diag = diagnostics(fit_ols(X, y, names))
            vif = diag[diag["check"] == "vif"].set_index("term")
            assert list(vif.index) == ["g1", "g2", "batch"]
            A = np.column_stack([np.ones(n), X])
            gvif = self._canonical_gvif(A, [3, 4])
            np.testing.assert_allclose(vif.loc["batch", "statistic"], gvif ** 0.5, rtol=1e-9)
            R = np.corrcoef(X, rowvar=False)  # Fox & Monette's determinant form, the same number
            np.testing.assert_allclose(gvif, np.linalg.det(R[:2, :2]) * np.linalg.det(R[2:, 2:]) / np.linalg.det(R),
                                       rtol=1e-9)
            np.testing.assert_allclose(vif.loc["g1", "statistic"], self._canonical_gvif(A, [1]), rtol=1e-9)
            assert "generalised" in vif.loc["batch", "assumption"]
            gvifs.append(gvif)
        np.testing.assert_allclose(gvifs[0], gvifs[1], rtol=1e-9)
        two = pd.DataFrame({"batch": batch.replace("c", "b")})
        cols, _ = encode_covariates(two, ["batch"], np.ones(n, bool))
        X = np.column_stack([g1, g2, cols.to_numpy()])
        diag = diagnostics(fit_ols(X, y, ["g1", "g2", *cols.columns]))
        vif = diag[diag["check"] == "vif"].set_index("term")
        np.testing.assert_allclose(vif.loc["batch[T.b]", "statistic"],
                                   self._canonical_gvif(np.column_stack([np.ones(n), X]), [3]), rtol=1e-9)

    def test_generalised_vif_of_columns_spanned_by_the_others_is_infinite(self):
        """Columns in the span of the others: inf; a column independent of collinear others: its VIF, finite
        (the determinant form would divide two zeros)."""
        from gexpred.ols import generalized_vif

        rng = np.random.default_rng(2)
        x = rng.normal(size=(40, 2))
        A = np.column_stack([np.ones(40), x, x @ [1.0, -2.0], rng.normal(size=40)])
        assert generalized_vif(A, [3, 4]) == np.inf
        assert generalized_vif(A, [3]) == np.inf
        np.testing.assert_allclose(generalized_vif(A, [4]), self._canonical_gvif(A[:, [0, 1, 2, 4]], [3]), rtol=1e-9)

    def test_influence(self):
        from gexpred.ols import fit_ols, influence

        X, y = self.data(n=60, p=3)
        n, p = X.shape
        A = np.column_stack([np.ones(n), X])
        H = A @ np.linalg.inv(A.T @ A) @ A.T
        h = np.diag(H)
        resid = y - H @ y
        s2 = (resid**2).sum() / (n - p - 1)
        cooks = resid**2 / ((p + 1) * s2) * h / (1 - h) ** 2
        # externally studentized: leave-one-out variance
        s2_i = ((n - p - 1) * s2 - resid**2 / (1 - h)) / (n - p - 2)
        stud = resid / np.sqrt(s2_i * (1 - h))
        out = influence(fit_ols(X, y, ["a", "b", "c"]), [f"s{i}" for i in range(n)])
        np.testing.assert_allclose(out["leverage"], h, rtol=1e-10)
        np.testing.assert_allclose(out["cooks_distance"], cooks, rtol=1e-8)
        np.testing.assert_allclose(out["studentized_residual"], stud, rtol=1e-8)
        np.testing.assert_array_equal(out["influential"], cooks > 4 / n)


    def test_influence_of_a_sample_of_leverage_one_is_undefined_not_rounding_noise(self):
        """The one training sample of a covariate level is fitted exactly by that level's coefficient: its residual
        and 1 - h are both 0, and Cook's distance and the studentized residual were 0 / 0 in floating point (0.0,
        0.38, 16.1 or NaN with different data), 'influential' flipping with them. They are NaN, the sample counts
        as influential, and the other samples keep the closed form of the design without it (the level's column
        is 0 for them, so removing one of them does not touch that coefficient)."""
        from gexpred.ols import fit_ols, influence

        for seed in range(6):  # seeds 2 and 5 gave NaN, seed 4 a Cook's distance of 16.1
            rng = np.random.default_rng(seed)
            n = 30
            X = np.column_stack([rng.normal(size=n), rng.normal(size=n), np.r_[np.zeros(n - 1), 1.0]])
            y = X[:, 0] + rng.normal(size=n)
            out = influence(fit_ols(X, y, ["a", "b", "lvl[T.x]"]), [f"s{i}" for i in range(n)])
            last = out.iloc[-1]
            assert last["leverage"] == pytest.approx(1.0, abs=1e-12)
            assert np.isnan(last["cooks_distance"]) and np.isnan(last["studentized_residual"])
            assert bool(last["influential"])
            # the others: the closed form on the n - 1 samples and columns a, b (p + 1 = 4 coefficients, n - 4 df)
            A = np.column_stack([np.ones(n - 1), X[:-1, :2]])
            H = A @ np.linalg.inv(A.T @ A) @ A.T
            h = np.diag(H)
            resid = y[:-1] - H @ y[:-1]
            s2 = (resid**2).sum() / (n - 4)
            cooks = resid**2 / (4 * s2) * h / (1 - h) ** 2
            s2_i = ((n - 4) * s2 - resid**2 / (1 - h)) / (n - 5)
            np.testing.assert_allclose(out["leverage"].iloc[:-1], h, rtol=1e-9)
            np.testing.assert_allclose(out["cooks_distance"].iloc[:-1], cooks, rtol=1e-8)
            np.testing.assert_allclose(out["studentized_residual"].iloc[:-1], resid / np.sqrt(s2_i * (1 - h)),
                                       rtol=1e-8)
            np.testing.assert_array_equal(out["influential"].iloc[:-1], cooks > 4 / n)
    def test_nested_f_test(self):
        from gexpred.ols import fit_ols, nested_tests

        X, y = self.data(p=5)
        n = len(y)
        names = ["a", "b", "c", "d", "e"]
        Xi = np.column_stack([X, X[:, 0] * X[:, 2]])  # with the interaction a:c
        fit = fit_ols(Xi, y, [*names, "a:c"])
        out = nested_tests(fit, Xi, y, {"ac": ["a", "c"], "e_only": ["e"]}).set_index("gene_set")

        def rss(M):
            A = np.column_stack([np.ones(n), M])
            return float(((y - A @ np.linalg.lstsq(A, y, rcond=None)[0]) ** 2).sum())

        full, df_den = rss(Xi), n - 7
        # removing set {a, c} removes a, c and the interaction a:c: 3 terms
        red = rss(Xi[:, [1, 3, 4]])
        f = ((red - full) / 3) / (full / df_den)
        assert out.loc["ac", "df_num"] == 3 and out.loc["ac", "df_den"] == df_den
        np.testing.assert_allclose(out.loc["ac", "f_stat"], f, rtol=1e-8)
        np.testing.assert_allclose(out.loc["ac", "p_value"], stats.f.sf(f, 3, df_den), rtol=1e-8)
        assert out.loc["ac", "terms"] == "a c a:c"
        red_e = rss(Xi[:, [0, 1, 2, 3, 5]])
        np.testing.assert_allclose(out.loc["e_only", "f_stat"], (red_e - full) / (full / df_den), rtol=1e-8)

    def test_bh_qvalues(self):
        from gexpred.ols import bh_qvalues

        rng = np.random.default_rng(0)
        p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-3, 10), [np.nan]])
        q = bh_qvalues(p)
        # direct BH: q_(i) = min_{j >= i} p_(j) * m / j, capped at 1
        ok = np.isfinite(p)
        m = ok.sum()
        order = np.argsort(p[ok])
        ranked = p[ok][order] * m / np.arange(1, m + 1)
        expected = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
        back = np.empty(m)
        back[order] = expected
        np.testing.assert_allclose(q[ok], back, rtol=1e-12)
        assert np.isnan(q[~ok]).all()
        # and statsmodels' own, with ties and p-values that reach the cap of 1
        from statsmodels.stats.multitest import multipletests

        p2 = np.concatenate([p[ok], p[ok][:5], [0.999, 1.0, 0.5, 0.5]])
        np.testing.assert_array_equal(bh_qvalues(p2), multipletests(p2, method="fdr_bh")[1])  # the same operations
        q2, ps = bh_qvalues(np.r_[p2, np.nan], return_sorted=True)
        np.testing.assert_array_equal(ps, np.sort(p2))
        np.testing.assert_array_equal(q2[:-1], bh_qvalues(p2))


def test_ols_summary_corrects_every_term_but_the_intercepts(tmp_path):
    """`gexpred ols-summary`: Benjamini-Hochberg q-values over every target's terms, recomputed with
    statsmodels; the intercepts (binary 'const' and a multinomial model's 'const[k]') are neither corrected
    nor counted."""
    from statsmodels.stats.multitest import multipletests

    from gexpred.cli import main
    from gexpred.ols import DIAGNOSTIC_COLUMNS

    rng = np.random.default_rng(3)
    dirs = []
    for target, terms in (("A", ["const", "g1", "g2"]), ("B", ["const[1]", "const[2]", "g1[1]", "g1[2]"])):
        d = tmp_path / target
        d.mkdir()
        n = len(terms)
        pd.DataFrame({"term": terms, "coef": rng.normal(size=n), "std_err": 1.0, "t": 1.0,
                      "p_value": rng.uniform(0, 0.2, n), "ci_low": -1.0, "ci_high": 1.0}).to_csv(
            d / "coefficients.tsv", sep="\t", index=False)
        pd.DataFrame({"n": [50], "r2": [0.5]}).to_csv(d / "fit.tsv", sep="\t", index=False)
        pd.DataFrame(columns=DIAGNOSTIC_COLUMNS).to_csv(d / "diagnostics.tsv", sep="\t", index=False)
        (d / "model.json").write_text(json.dumps({"target": target}))
        dirs.append(str(d))
    out = tmp_path / "all.tsv"
    assert main(["ols-summary", "--dirs", *dirs, "--out-coefficients", str(out),
                 "--out-fits", str(tmp_path / "fits.tsv")]) == 0
    allc = pd.read_csv(out, sep="\t")
    intercept = allc["term"].isin(["const", "const[1]", "const[2]"])
    assert allc.loc[intercept, "q_value"].isna().all() and intercept.sum() == 3
    want = multipletests(allc.loc[~intercept, "p_value"], method="fdr_bh")[1]
    np.testing.assert_allclose(allc.loc[~intercept, "q_value"], want, rtol=1e-12)


def test_summary_is_reproducible_under_source_date_epoch(data, monkeypatch):
    """statsmodels prints the current date and time into summary.txt; with SOURCE_DATE_EPOCH they are that
    moment's (UTC), so two runs give identical files; without it the text is statsmodels' own."""
    import time

    X, y = data[0], data[1]
    fit = fit_ols(X, y, [f"x{j}" for j in range(X.shape[1])])
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    text = fit.summary("y")
    assert "Tue, 14 Nov 2023" in text and "22:13:20" in text
    time.sleep(1.1)
    assert fit.summary("y") == text
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert time.strftime("%a, %d %b %Y") in fit.summary("y")


def test_summary_intervals_at_the_run_alpha(tmp_path):
    """summary.txt shows the intervals at 1 - ols.alpha, as coefficients.tsv does (statsmodels' summary prints
    95 % ones unless told); expected: the textbook t interval."""
    import anndata as ad

    from gexpred.cli import main

    rng = np.random.default_rng(3)
    samples = [f"s{i}" for i in range(40)]
    X = rng.normal(size=(40, 3))
    X[:, 0] = 1.0 + X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=0.5, size=40)
    ad.AnnData(X=X, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=["G0", "G1", "G2"])).write_h5ad(
        tmp_path / "data.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 32 + ["test"] * 8}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "G0", "rank": [1, 2], "gene": ["G1", "G2"], "train_corr": [0.5, 0.4]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    out = tmp_path / "ols" / "G0"
    assert main(["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
                 "--predictors", str(tmp_path / "predictors.tsv"), "--target", "G0", "--alpha", "0.1",
                 "--out-dir", str(out), "--log", str(tmp_path / "ols.log")]) == 0
    ref = _closed_form(X[:32, 1:], X[:32, 0], alpha=0.1)
    text = (out / "summary.txt").read_text()
    assert "[0.05" in text and "0.95]" in text and "[0.025" not in text
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in text.splitlines()
            if line.split() and line.split()[0] in ("const", "G1", "G2")}
    for j, term in enumerate(["const", "G1", "G2"]):
        np.testing.assert_allclose(rows[term][-2:], [ref["ci_low"][j], ref["ci_high"][j]], atol=1e-3)


def test_gene_set_with_a_constant_gene_is_tested_without_it_and_the_log_says_so(tmp_path):
    """A gene set's gene constant over the training samples is dropped from the design: the set is tested on
    its other genes (the F-test of G2 alone, scipy), a set of that gene alone has no test (df_num 0, no
    p-value, so it enters no Benjamini-Hochberg family), and the log names the gene for both sets (before,
    only nested_tests.tsv's terms column showed it)."""
    import anndata as ad

    from gexpred.cli import main

    rng = np.random.default_rng(4)
    n = 40
    samples = [f"s{i}" for i in range(n)]
    X = rng.normal(size=(n, 4))
    X[:, 3] = 2.0  # G3: constant
    X[:, 0] = 1.0 + X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=0.5, size=n)
    ad.AnnData(X=X, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=["G0", "G1", "G2", "G3"])).write_h5ad(
        tmp_path / "data.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 32 + ["test"] * 8}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "G0", "rank": [1, 2, 3], "gene": ["G1", "G2", "G3"]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    out, log = tmp_path / "ols" / "G0", tmp_path / "ols.log"
    assert main(["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
                 "--predictors", str(tmp_path / "predictors.tsv"), "--target", "G0", "--out-dir", str(out),
                 "--gene-sets", json.dumps({"alone": ["G3"], "with": ["G2", "G3"]}), "--log", str(log)]) == 0
    nested = pd.read_csv(out / "nested_tests.tsv", sep="\t").set_index("gene_set")
    A = np.column_stack([np.ones(32), X[:32, 1:3]])
    y = X[:32, 0]

    def rss(M):
        return float(((y - M @ np.linalg.lstsq(M, y, rcond=None)[0]) ** 2).sum())

    f = (rss(A[:, :2]) - rss(A)) / (rss(A) / 29)
    np.testing.assert_allclose(nested.loc["with", "f_stat"], f, rtol=1e-8)
    np.testing.assert_allclose(nested.loc["with", "p_value"], stats.f.sf(f, 1, 29), rtol=1e-8)
    assert nested.loc["with", "df_num"] == 1 and nested.loc["with", "terms"] == "G2"
    assert nested.loc["alone", "df_num"] == 0 and np.isnan(nested.loc["alone", "p_value"])
    text = " ".join(log.read_text().split())
    assert "gene set 'with': 'G3' not a term of the model" in text and "is tested without it" in text
    assert "gene set 'alone': 'G3' not a term of the model" in text and "has no test" in text


def test_gene_set_of_the_target_alone_is_said_to_have_no_test(caplog):
    """A gene set holding the target is tested without it; a set of the target alone is left with no gene and
    no test, which the warning now says instead of 'tested without it'."""
    import logging

    from gexpred.cli import _gene_sets_without_target

    with caplog.at_level(logging.WARNING, logger="gexpred"):
        out = _gene_sets_without_target("G5", {"g5": ["G5"], "pair": ["G3", "G5"], "other": ["G3"]})
    assert out == {"g5": [], "pair": ["G3"], "other": ["G3"]}
    text = {r.getMessage().split("'")[1]: r.getMessage() for r in caplog.records}
    assert set(text) == {"g5", "pair"}
    assert text["g5"].endswith("has no other gene and no test") and text["pair"].endswith("is tested without it")


def test_durbin_watson_fails_at_its_level_not_by_the_rule_of_thumb_alone():
    """Samples in no particular order, n = 36: |DW - 2| > 0.5 (the 1.5-2.5 rule) in ~13 % of data sets (an
    audit: counted as a failed assumption in the report); with the N(2, 4/n) p-value as well, at most the level.
    Residuals with lag-one correlation 0.6 still fail."""
    from gexpred.ols import diagnostics, fit_ols

    rng = np.random.default_rng(11)
    n, flagged, rule = 36, 0, 0
    for _ in range(300):
        X = rng.normal(size=(n, 2))
        y = X @ [1.0, -0.5] + rng.normal(size=n)
        d = diagnostics(fit_ols(X, y, ["a", "b"]), alpha=0.05).set_index("check").loc["durbin_watson"]
        flagged += d["verdict"] == "fails"
        rule += not 1.5 <= d["statistic"] <= 2.5
    assert rule / 300 > 0.08 and flagged / 300 <= 0.06
    e = np.zeros(200)
    for i in range(1, 200):
        e[i] = 0.6 * e[i - 1] + rng.normal()
    X = rng.normal(size=(200, 2))
    d = diagnostics(fit_ols(X, X @ [1.0, -0.5] + e, ["a", "b"])).set_index("check").loc["durbin_watson"]
    assert d["verdict"] == "fails" and d["p_value"] < 1e-6


@pytest.mark.parametrize("cov_type", ["HC0", "HC3"])
def test_robust_covariance_tests_coefficients_overall_fit_and_gene_sets(tmp_path, cov_type):
    """ols.cov_type HC0 / HC3 (residual spread growing with G1): coefficients.tsv's standard errors, t, p and
    intervals, fit.tsv's overall F and nested_tests.tsv's gene-set test are the sandwich estimator's, computed
    here in numpy ((A'A)^-1 A' diag(w e^2) A (A'A)^-1, w = 1 or 1 / (1 - h)^2; Wald F on the residual df); the
    coefficients themselves are OLS's; summary.txt names the covariance; the log's heteroskedasticity warning
    suggests HC3 only where the covariance is classical."""
    import anndata as ad

    from gexpred.cli import main

    rng = np.random.default_rng(8)
    n, n_train = 60, 48
    samples = [f"s{i}" for i in range(n)]
    X = rng.normal(size=(n, 4))
    X[:, 0] = 1.0 + X[:, 1] - 0.5 * X[:, 2] + 0.2 * X[:, 3] + rng.normal(size=n) * np.exp(0.8 * X[:, 1])
    ad.AnnData(X=X, obs=pd.DataFrame(index=samples),
               var=pd.DataFrame(index=["G0", "G1", "G2", "G3"])).write_h5ad(tmp_path / "data.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * n_train + ["test"] * (n - n_train)}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "G0", "rank": [1, 2, 3], "gene": ["G1", "G2", "G3"]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    out = {}
    for cov in ("nonrobust", cov_type):
        out[cov] = tmp_path / cov
        assert main(["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
                     "--predictors", str(tmp_path / "predictors.tsv"), "--target", "G0", "--cov-type", cov,
                     "--gene-sets", json.dumps({"G2G3": ["G2", "G3"]}), "--out-dir", str(out[cov]),
                     "--log", str(tmp_path / f"{cov}.log")]) == 0
    A = np.column_stack([np.ones(n_train), X[:n_train, 1:]])
    y = X[:n_train, 0]
    inv = np.linalg.inv(A.T @ A)
    b = inv @ A.T @ y
    e = y - A @ b
    h = np.einsum("ij,jk,ik->i", A, inv, A)
    w = e**2 / (1 - h) ** 2 if cov_type == "HC3" else e**2
    V = inv @ (A.T * w) @ A @ inv
    df = n_train - 4
    se = np.sqrt(np.diag(V))
    coefs = pd.read_csv(out[cov_type] / "coefficients.tsv", sep="\t").set_index("term")
    np.testing.assert_allclose(coefs["coef"], b, rtol=1e-9)
    np.testing.assert_allclose(coefs["std_err"], se, rtol=1e-9)
    np.testing.assert_allclose(coefs["p_value"], 2 * stats.t.sf(np.abs(b / se), df), rtol=1e-8)
    q = stats.t.ppf(0.975, df)
    np.testing.assert_allclose(coefs["ci_low"], b - q * se, rtol=1e-9)

    def wald(idx):
        bs, Vs = b[idx], V[np.ix_(idx, idx)]
        f = float(bs @ np.linalg.solve(Vs, bs)) / len(idx)
        return f, stats.f.sf(f, len(idx), df)

    fit = pd.read_csv(out[cov_type] / "fit.tsv", sep="\t").iloc[0]
    np.testing.assert_allclose([fit["f_stat"], fit["f_pvalue"]], wald([1, 2, 3]), rtol=1e-8)
    nested = pd.read_csv(out[cov_type] / "nested_tests.tsv", sep="\t").set_index("gene_set").loc["G2G3"]
    np.testing.assert_allclose([nested["f_stat"], nested["p_value"]], wald([2, 3]), rtol=1e-8)
    assert (nested["df_num"], nested["df_den"]) == (2, df)
    classical = pd.read_csv(out["nonrobust"] / "coefficients.tsv", sep="\t").set_index("term")
    np.testing.assert_allclose(classical["coef"], b, rtol=1e-9)
    assert not np.allclose(classical["std_err"], se, rtol=1e-3)  # the data do tell the two apart
    assert cov_type in (out[cov_type] / "summary.txt").read_text()
    hint = "ols.cov_type: HC3 makes the tests heteroskedasticity-consistent"
    assert hint in (tmp_path / "nonrobust.log").read_text() and hint not in (tmp_path / f"{cov_type}.log").read_text()


def test_a_robust_covariance_for_a_classification_target_is_refused_not_ignored(tmp_path):
    """gexpred ols --labels (a logistic regression) with --cov-type HC3 wrote the classical Wald tests as if the
    option had been taken (the workflow refuses ols.cov_type for classification runs, the command ignored it);
    now the command refuses it by name too, and without it fits as before."""
    import anndata as ad

    from gexpred.cli import main

    rng = np.random.default_rng(3)
    n = 40
    samples = [f"s{i}" for i in range(n)]
    X = rng.normal(size=(n, 3))
    ad.AnnData(X=X, obs=pd.DataFrame(index=samples),
               var=pd.DataFrame(index=["G1", "G2", "G3"])).write_h5ad(tmp_path / "data.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 30 + ["test"] * 10}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "cls", "rank": [1, 2], "gene": ["G1", "G2"]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    labels = np.where(X[:, 0] + rng.normal(size=n) > 0, "hi", "lo")
    pd.DataFrame({"sample": samples, "cls": labels}).to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    args = ["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
            "--predictors", str(tmp_path / "predictors.tsv"), "--target", "cls", "--labels",
            str(tmp_path / "labels.tsv"), "--out-dir", str(tmp_path / "out")]
    assert main([*args, "--cov-type", "HC3", "--log", str(tmp_path / "a.log")]) == 1
    assert "--cov-type HC3: 'cls' is a classification target" in " ".join((tmp_path / "a.log").read_text().split())
    assert not (tmp_path / "out" / "coefficients.tsv").exists()
    assert main([*args, "--log", str(tmp_path / "b.log")]) == 0
    assert (tmp_path / "out" / "coefficients.tsv").exists()


def test_hc3_warns_of_samples_with_leverage_one(tmp_path):
    """A predictor non-zero in one training sample only (as the one sample of a covariate level) fits that sample
    exactly (leverage 1, numpy's hat matrix): HC2/HC3 divide 0 by 0 there, and the log says so, naming the sample
    and HC0/HC1 (an audit's suspicion); HC0 does not warn."""
    import anndata as ad

    from gexpred.cli import main

    rng = np.random.default_rng(2)
    n = 40
    samples = [f"s{i}" for i in range(n)]
    X = rng.normal(size=(n, 3))
    X[:, 2] = 0.0
    X[5, 2] = 1.0  # G2: one training sample only
    X[:, 0] = X[:, 1] + rng.normal(size=n)
    A = np.column_stack([np.ones(32), X[:32, 1:]])
    h = np.einsum("ij,jk,ik->i", A, np.linalg.inv(A.T @ A), A)
    assert np.isclose(h[5], 1.0) and (np.delete(h, 5) < 0.9).all()
    ad.AnnData(X=X, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=["G0", "G1", "G2"])).write_h5ad(
        tmp_path / "data.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 32 + ["test"] * 8}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "G0", "rank": [1, 2], "gene": ["G1", "G2"]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    # the sandwich with s5's weight 0, in numpy: the variances of const and G1 (which s5 does not determine) are
    # exact; G2's (s5's own level) is undefined, and so are the overall F-test and the set holding G2
    y = X[:32, 0]
    inv = np.linalg.inv(A.T @ A)
    b = inv @ A.T @ y
    e = y - A @ b
    w = np.zeros(32)  # HC3's 1 / (1 - h)^2, s5's 0
    others = np.arange(32) != 5
    w[others] = (1.0 - h[others]) ** -2.0
    V = inv @ (A.T * (w * e**2)) @ A @ inv
    se = np.sqrt(np.diag(V))
    f_g1 = b[1] ** 2 / V[1, 1]
    sets = json.dumps({"G1": ["G1"], "G2": ["G2"]})
    for cov, warned in (("HC3", True), ("HC0", False)):
        log = tmp_path / f"{cov}.log"
        assert main(["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
                     "--predictors", str(tmp_path / "predictors.tsv"), "--target", "G0", "--cov-type", cov,
                     "--gene-sets", sets, "--out-dir", str(tmp_path / cov), "--log", str(log)]) == 0
        text = " ".join(log.read_text().split())
        assert ("1 training sample has leverage 1 ('s5'" in text and "Use ols.cov_type: HC0 or HC1" in text) is warned
        assert ("have NaN standard errors, tests and intervals (coefficients.tsv)" in text) is warned
        coefs = pd.read_csv(tmp_path / cov / "coefficients.tsv", sep="\t").set_index("term")
        fit = pd.read_csv(tmp_path / cov / "fit.tsv", sep="\t").iloc[0]
        nested = pd.read_csv(tmp_path / cov / "nested_tests.tsv", sep="\t").set_index("gene_set")
        np.testing.assert_allclose(coefs["coef"], b, rtol=1e-9)
        if not warned:  # HC0: every term and test finite
            assert coefs.notna().all().all() and np.isfinite([fit["f_stat"], *nested["f_stat"]]).all()
            continue
        assert coefs.loc["G2", ["std_err", "t", "p_value", "ci_low", "ci_high"]].isna().all()
        np.testing.assert_allclose(coefs.loc[["const", "G1"], "std_err"], se[:2], rtol=1e-9)
        np.testing.assert_allclose(coefs.loc[["const", "G1"], "p_value"],
                                   2 * stats.t.sf(np.abs(b[:2] / se[:2]), 29), rtol=1e-8)
        assert np.isnan(fit["f_stat"]) and np.isnan(fit["f_pvalue"])
        assert np.isnan(nested.loc["G2", "f_stat"]) and np.isnan(nested.loc["G2", "p_value"])
        np.testing.assert_allclose([nested.loc["G1", "f_stat"], nested.loc["G1", "p_value"]],
                                   [f_g1, stats.f.sf(f_g1, 1, 29)], rtol=1e-8)
        summary = (tmp_path / cov / "summary.txt").read_text()
        assert "F-statistic:                       nan" in summary


def _one_sample_level(seed: int, n: int = 30) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two genes, a three-level covariate whose level ``c`` has one sample (row 7: leverage 1), another gene;
    residual spread growing with the first gene."""
    rng = np.random.default_rng(seed)
    level = np.zeros((n, 2))
    level[n // 2:, 0] = 1.0
    level[7] = [0.0, 1.0]
    X = np.column_stack([rng.normal(size=(n, 2)) * 3.0, level, rng.normal(size=n)])
    y = X @ [0.5, -0.3, 1.0, 2.0, 0.4] + rng.normal(size=n) * (1.0 + np.abs(X[:, 0])) + 5.0
    return X, y, ["a", "b", "batch[T.b]", "batch[T.c]", "d"]


@pytest.mark.parametrize("seed", [0, 2, 5])
@pytest.mark.parametrize("cov_type", ["HC2", "HC3"])
def test_leverage_one_sample_gives_the_genome_wide_engines_values(cov_type, seed):
    """HC2/HC3 with a training sample of leverage 1 (the one sample of a covariate level): per target, fit_ols
    reported statsmodels' values, 0 / 0 at that sample, so the standard errors of the terms it determines were
    arbitrary numbers (or every one NaN and the overall F-test raising). Now it gives what the genome-wide engine
    gives (gexpred.batched.fit_many): that sample's weight 0, the other terms' variances exact (checked against the
    sandwich in numpy), the level's coefficient NaN standard error, t, p and interval, and the Wald tests that
    include it (overall F, a gene set) NaN; a set without it its Wald test. Seeds 0 and 2: the leverage rounds
    below 1 (statsmodels gave arbitrary values); seed 5: to 1 (statsmodels gave NaN everywhere, its F raised)."""
    from gexpred.batched import fit_many
    from gexpred.ols import fit_statistics, nested_tests

    X, y, terms = _one_sample_level(seed)
    n = len(y)
    A = np.column_stack([np.ones(n), X])
    inv = np.linalg.inv(A.T @ A)
    b = inv @ A.T @ y
    e = y - A @ b
    h = np.einsum("ij,jk,ik->i", A, inv, A)
    assert abs(h[7] - 1.0) < 1e-12 and (np.delete(h, 7) < 0.9).all()
    w = np.zeros(n)  # row 7's weight 0; the others' 1 / (1 - h) (HC2) or its square (HC3)
    others = np.arange(n) != 7
    w[others] = (1.0 - h[others]) ** -(1.0 if cov_type == "HC2" else 2.0)
    V = inv @ (A.T * (w * e**2)) @ A @ inv
    defined = np.array([True, True, True, True, False, True])  # batch[T.c] is row 7's own
    df = n - A.shape[1]

    fit = fit_ols(X, y, terms, cov_type=cov_type)
    assert fit.leverage_one == [7] and (fit.undefined == ~defined).all()
    table = fit.table()
    se = np.sqrt(np.diag(V))
    np.testing.assert_allclose(table["coef"], b, rtol=1e-10)
    np.testing.assert_allclose(table["std_err"][defined], se[defined], rtol=1e-10)
    np.testing.assert_allclose(table["p_value"][defined], 2 * stats.t.sf(np.abs(b / se), df)[defined], rtol=1e-9)
    q = stats.t.ppf(0.975, df)
    np.testing.assert_allclose(table["ci_high"][defined], (b + q * se)[defined], rtol=1e-10)
    assert table.loc[~defined, ["std_err", "t", "p_value", "ci_low", "ci_high"]].isna().all().all()

    sets = {"genes": ["a", "b"], "with_level": ["batch[T.c]", "d"], "batch": ["batch[T.b]", "batch[T.c]"]}
    engine = fit_many(X, y[:, None], terms, ["y"], cov_type=cov_type, wald_sets=sets)
    assert engine.leverage_one == [7]
    long = engine.coefficients()
    for col in COEF_COLUMNS[1:]:
        np.testing.assert_allclose(table[col], long[col], rtol=1e-9, atol=0, equal_nan=True, err_msg=col)
        assert (table[col].isna() == long[col].isna()).all()
    stats_row = fit_statistics(fit).iloc[0]
    assert np.isnan(stats_row["f_stat"]) and np.isnan(stats_row["f_pvalue"])
    assert np.isnan(engine.f_stat).all() and np.isnan(engine.f_pvalue).all()
    nested = nested_tests(fit, X, y, sets).set_index("gene_set")
    assert nested.loc[["with_level", "batch"], ["f_stat", "p_value"]].isna().all().all()
    f_genes = float(b[1:3] @ np.linalg.solve(V[1:3, 1:3], b[1:3])) / 2
    np.testing.assert_allclose([nested.loc["genes", "f_stat"], nested.loc["genes", "p_value"]],
                               [f_genes, stats.f.sf(f_genes, 2, df)], rtol=1e-9)
    np.testing.assert_allclose(nested.loc["genes", "f_stat"], engine.wald["genes"][0], rtol=1e-9)
    assert np.isnan(engine.wald["with_level"]).all() and np.isnan(engine.wald["batch"]).all()
    assert "nan" in fit.summary("y").split("F-statistic:")[1].split("\n")[0]


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0", "HC1", "HC2", "HC3"])
def test_robust_fits_without_leverage_one_are_statsmodels_own(cov_type):
    """The leverage-1 treatment changes nothing else: without such a sample (every cov_type), and for
    nonrobust/HC0/HC1 with one, fit_ols is statsmodels' fit(cov_type=..., use_t=True) to the bit."""
    import statsmodels.api as sm

    from gexpred.ols import fit_statistics

    X, y, terms = _one_sample_level(0)
    cases = [(np.delete(X, 7, axis=0)[:, [0, 1, 2, 4]], np.delete(y, 7), ["a", "b", "batch[T.b]", "d"])]
    if cov_type not in ("HC2", "HC3"):
        cases.append((X, y, terms))
    for Xc, yc, names in cases:
        fit = fit_ols(Xc, yc, names, cov_type=cov_type)
        A = sm.add_constant(Xc)
        ref = sm.OLS(yc, A).fit() if cov_type == "nonrobust" else sm.OLS(yc, A).fit(cov_type=cov_type, use_t=True)
        assert fit.leverage_one == [] and fit.undefined is None
        table = fit.table()
        ci = np.asarray(ref.conf_int())
        for col, want in (("std_err", ref.bse), ("t", ref.tvalues), ("p_value", ref.pvalues), ("ci_low", ci[:, 0]),
                          ("ci_high", ci[:, 1])):
            np.testing.assert_array_equal(table[col], np.asarray(want), err_msg=col)
        row = fit_statistics(fit).iloc[0]
        np.testing.assert_array_equal([row["f_stat"], row["f_pvalue"]], [ref.fvalue, ref.f_pvalue])
