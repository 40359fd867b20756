"""Tests of gexpred.logit against logistic regression computed independently with numpy and scipy.

Binary fits are checked against a Newton-Raphson (IRLS) written here, multinomial
fits against scipy's minimiser of a multinomial negative log-likelihood written
here, penalised fits against a penalised Newton-Raphson, and the metrics against
brute-force definitions.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from gexpred.errors import InputError, ModelError
from gexpred.logit import (
    LOGIT_COLUMNS,
    LOGIT_FIT_COLUMNS,
    binarize,
    classification_metrics,
    encode_labels,
    fit_logit,
    fit_statistics,
)

RTOL = 1e-6


# --------------------------------------------------------------------------- independent references
def _sigmoid(eta: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-eta))


def _newton_logit(X: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray | float]:
    """Textbook binary logit by Newton-Raphson: beta += (A'WA)^-1 A'(y - p), SE from (A'WA)^-1."""
    A = np.column_stack([np.ones(len(y)), X])
    beta = np.zeros(A.shape[1])
    for _ in range(100):
        p = _sigmoid(A @ beta)
        H = A.T @ (A * (p * (1 - p))[:, None])
        step = np.linalg.solve(H, A.T @ (y - p))
        beta = beta + step
        if np.abs(step).max() < 1e-13:
            break
    p = _sigmoid(A @ beta)
    H = A.T @ (A * (p * (1 - p))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(H)))
    z = beta / se
    q = stats.norm.ppf(1 - alpha / 2)
    llf = float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    n1 = y.sum()
    n0 = len(y) - n1
    llnull = float(n1 * np.log(n1 / len(y)) + n0 * np.log(n0 / len(y)))
    return {"coef": beta, "std_err": se, "t": z, "p_value": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": beta - q * se, "ci_high": beta + q * se, "odds_ratio": np.exp(beta),
            "or_ci_low": np.exp(beta - q * se), "or_ci_high": np.exp(beta + q * se),
            "proba": p, "llf": llf, "llnull": llnull}


def _softmax_ref(eta: np.ndarray) -> np.ndarray:
    e = np.exp(eta - eta.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _multinomial_nll(theta: np.ndarray, A: np.ndarray, Y: np.ndarray, K: int) -> tuple[float, np.ndarray]:
    """Negative log-likelihood of the reference-coded multinomial logit and its gradient."""
    B = theta.reshape(A.shape[1], K - 1)
    eta = np.column_stack([np.zeros(len(A)), A @ B])
    P = _softmax_ref(eta)
    nll = -float(np.sum(Y * np.log(P)))
    grad = A.T @ (P[:, 1:] - Y[:, 1:])
    return nll, grad.ravel()


def _multinomial_reference(X: np.ndarray, codes: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (terms x non-reference classes) by scipy BFGS, and SEs from the analytic information matrix."""
    A = np.column_stack([np.ones(len(codes)), X])
    Y = np.eye(K)[codes]
    res = optimize.minimize(_multinomial_nll, np.zeros(A.shape[1] * (K - 1)), args=(A, Y, K), jac=True,
                            method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    B = res.x.reshape(A.shape[1], K - 1)
    P = _softmax_ref(np.column_stack([np.zeros(len(A)), A @ B]))[:, 1:]
    # information, parameters ordered class-major: sum_i kron(diag(p_i) - p_i p_i', x_i x_i')
    info = sum(np.kron(np.diag(p) - np.outer(p, p), np.outer(a, a)) for p, a in zip(P, A))
    se = np.sqrt(np.diag(np.linalg.inv(info))).reshape(K - 1, A.shape[1]).T
    return B, se


def _ridge_newton(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Binary logit minimising -loglik + lam/2 |beta|^2 over standardised predictors (intercept free).

    Returns the coefficients on the original scale of ``X``.
    """
    mean, sd = X.mean(axis=0), X.std(axis=0)
    Z = np.column_stack([np.ones(len(y)), (X - mean) / sd])
    D = lam * np.eye(Z.shape[1])
    D[0, 0] = 0.0
    beta = np.zeros(Z.shape[1])
    for _ in range(100):
        p = _sigmoid(Z @ beta)
        H = Z.T @ (Z * (p * (1 - p))[:, None]) + D
        step = np.linalg.solve(H, Z.T @ (y - p) - D @ beta)
        beta = beta + step
        if np.abs(step).max() < 1e-13:
            break
    slopes = beta[1:] / sd
    return np.concatenate([[beta[0] - mean @ slopes], slopes])


# --------------------------------------------------------------------------- data
@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    n = 150
    Z = rng.normal(size=(n, 3))
    X = Z * np.array([1.0, 10.0, 0.1]) + np.array([5.0, -2.0, 0.0])
    eta = -0.5 + 0.9 * (X[:, 0] - 5.0) - 0.08 * X[:, 1] + 3.0 * X[:, 2]
    y = (rng.random(n) < _sigmoid(eta)).astype(np.int64)
    return X, y, ["g1", "g2", "g3"]


@pytest.fixture
def multiclass() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(11)
    n = 240
    X = rng.normal(size=(n, 2)) * np.array([1.0, 3.0])
    eta = np.column_stack([np.zeros(n), 0.4 + X @ [1.0, -0.3], -0.2 + X @ [-0.8, 0.4]])
    P = _softmax_ref(eta)
    codes = (rng.random(n)[:, None] > np.cumsum(P, axis=1)).sum(axis=1)
    return X, codes, ["a", "b"], ["ctl", "mid", "top"]


# --------------------------------------------------------------------------- binary
def test_binary_table_shape(binary):
    X, y, names = binary
    tab = fit_logit(X, y, names, ["no", "yes"]).table()
    assert list(tab.columns) == LOGIT_COLUMNS
    assert LOGIT_COLUMNS[:7] == ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]
    assert tab["term"].tolist() == ["const", "g1", "g2", "g3"]


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("column", LOGIT_COLUMNS[1:-1])  # every number; the last column is the method
def test_binary_matches_newton_raphson(binary, column, alpha):
    X, y, names = binary
    tab = fit_logit(X, y, names, ["no", "yes"], alpha=alpha).table()
    expected = _newton_logit(X, y.astype(float), alpha=alpha)[column]
    np.testing.assert_allclose(tab[column].to_numpy(), expected, rtol=RTOL, atol=0)


def test_binary_fit_statistics(binary):
    X, y, names = binary
    fit = fit_logit(X, y, names, ["no", "yes"])
    ref = _newton_logit(X, y.astype(float))
    stats_ = fit_statistics(fit)
    assert list(stats_.columns) == LOGIT_FIT_COLUMNS and len(stats_) == 1
    row = stats_.iloc[0]
    n, k = len(y), X.shape[1] + 1
    llr = 2 * (ref["llf"] - ref["llnull"])
    assert row["n"] == n and row["df_model"] == k - 1 and row["df_resid"] == n - k
    np.testing.assert_allclose(
        [row["log_likelihood"], row["pseudo_r2"], row["llr"], row["llr_pvalue"], row["aic"], row["bic"]],
        [ref["llf"], 1 - ref["llf"] / ref["llnull"], llr, stats.chi2.sf(llr, k - 1),
         -2 * ref["llf"] + 2 * k, -2 * ref["llf"] + np.log(n) * k],
        rtol=RTOL)
    assert bool(row["converged"]) and not bool(row["penalized"])
    assert fit.fit_statistics().equals(stats_)


def test_binary_predictions_and_dict(binary):
    X, y, names = binary
    fit = fit_logit(X, y, names, ["no", "yes"], target="status")
    ref = _newton_logit(X, y.astype(float))
    proba = fit.predict_proba(X)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba[:, 1], ref["proba"], rtol=RTOL)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(fit.predict(X), (ref["proba"] > 0.5).astype(int))
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["terms"] == ["const", *names] and d["classes"] == ["no", "yes"] and d["penalized"] is False
    B = np.array(d["coef"])
    assert B.shape == (4, 1)
    np.testing.assert_allclose(_sigmoid(B[0, 0] + X @ B[1:, 0]), ref["proba"], rtol=RTOL)
    text = fit.summary("status")
    assert "status" in text and "g3" in text


def test_string_classes_from_encode_labels(binary):
    X, y, names = binary
    labels = pd.Series(np.where(y == 1, "tumour", "normal"), index=[f"s{i}" for i in range(len(y))])
    codes, classes = encode_labels(labels, "sample-sheet column 'tissue'")
    assert classes == ["normal", "tumour"]
    np.testing.assert_array_equal(codes, y)
    tab = fit_logit(X, codes, names, classes).table()
    np.testing.assert_allclose(tab["coef"].to_numpy(), _newton_logit(X, y.astype(float))["coef"], rtol=RTOL)


# --------------------------------------------------------------------------- multinomial
def test_multinomial_matches_scipy(multiclass):
    X, codes, names, classes = multiclass
    fit = fit_logit(X, codes, names, classes, target="grade")
    B, se = _multinomial_reference(X, codes, 3)
    tab = fit.table()
    assert list(tab.columns) == LOGIT_COLUMNS
    assert tab["term"].tolist() == ["const[mid]", "a[mid]", "b[mid]", "const[top]", "a[top]", "b[top]"]
    np.testing.assert_allclose(tab["coef"].to_numpy(), B.T.ravel(), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(tab["std_err"].to_numpy(), se.T.ravel(), rtol=1e-4)
    np.testing.assert_allclose(tab["t"].to_numpy(), B.T.ravel() / se.T.ravel(), rtol=1e-4)
    q = stats.norm.ppf(0.975)
    np.testing.assert_allclose(tab["ci_low"].to_numpy(), (B - q * se).T.ravel(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tab["odds_ratio"].to_numpy(), np.exp(B.T.ravel()), rtol=1e-4)
    proba = fit.predict_proba(X)
    assert proba.shape == (len(codes), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    expected = _softmax_ref(np.column_stack([np.zeros(len(X)), np.column_stack([np.ones(len(X)), X]) @ B]))
    np.testing.assert_allclose(proba, expected, rtol=1e-4)
    np.testing.assert_array_equal(fit.predict(X), np.argmax(proba, axis=1))
    assert np.array(fit.to_dict()["coef"]).shape == (3, 2)
    assert fit_statistics(fit).iloc[0]["df_model"] == 4
    assert "grade" in fit.summary("grade")


# --------------------------------------------------------------------------- separation
def test_perfect_separation_names_predictor(binary):
    X, _, names = binary
    y = (X[:, 1] > np.median(X[:, 1])).astype(int)  # g2 alone separates the classes
    with pytest.raises(ModelError) as err:
        fit_logit(X, y, names, ["low", "high"], target="marker", separation="stop")
    msg = str(err.value)
    assert "'marker'" in msg and "separation" in msg and "'g2'" in msg
    assert "ols.penalized: true" in msg and "ridge" in msg and "\n" not in msg
    assert "ols.stop_on_separation: false" in msg and "Firth" in msg


def test_quasi_complete_separation():
    # x separates the classes except for ties at x == 0, where both classes occur
    x = np.array([-3.0, -2.0, -1.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    # at x == 0 the classes interleave in z (-0.7: a, -0.2: b, 0.5: a, 1.1: b), so no combination separates fully
    z = np.array([0.3, -1.0, 2.0, 0.1, 0.5, -0.7, 1.1, -0.2, 0.9, -1.5, 0.4, 0.0])
    with pytest.raises(ModelError, match="quasi-complete separation") as err:
        fit_logit(np.column_stack([z, x]), y, ["z", "x"], ["a", "b"], separation="stop")
    assert "'x'" in str(err.value) and "ols.penalized" in str(err.value)


def test_near_separation_from_the_fit():
    # one pair of neighbours on either side of the boundary swapped: the MLE exists but is huge
    rng = np.random.default_rng(1)
    x = np.sort(rng.normal(size=60))
    y = (x > 0).astype(int)
    k = np.searchsorted(x, 0.0)
    y[k - 1], y[k] = 1, 0
    with pytest.raises(ModelError, match="quasi-perfect separation") as err:
        fit_logit(x[:, None], y, ["g"], ["a", "b"], separation="stop")
    assert "'g'" in str(err.value) and "ols.penalized" in str(err.value)


def test_separation_caught_by_the_fit_without_the_exact_test(binary, monkeypatch):
    """statsmodels' own signals (warning, non-convergence, extreme fitted values) suffice on their own."""
    import gexpred.logit as logit

    X, _, names = binary
    y = (X[:, 1] > np.median(X[:, 1])).astype(int)
    monkeypatch.setattr(logit, "separation_lp", lambda X, codes, K: (None, np.zeros((X.shape[1] + 1, K - 1))))
    with pytest.raises(ModelError, match="separation") as err:
        fit_logit(X, y, names, ["low", "high"], separation="stop")
    assert "'g2'" in str(err.value) and "ols.penalized" in str(err.value)
    # the same signals send the default fit to Firth's penalised likelihood
    assert fit_logit(X, y, names, ["low", "high"], inference=False).method == "firth"

    sm, sep_error, _, _ = logit._statsmodels()

    def raising_fit(self, *args, **kwargs):  # statsmodels < 0.14 raised instead of warning
        raise sep_error("Perfect separation detected, results not available")

    monkeypatch.setattr(sm.Logit, "fit", raising_fit)
    with pytest.raises(ModelError, match="statsmodels reports perfect separation"):
        fit_logit(X, y, names, ["low", "high"], separation="stop")


def test_separation_by_a_combination():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    with pytest.raises(ModelError, match="linear combination"):
        fit_logit(X, y, ["u", "v"], ["a", "b"], separation="stop")


def test_multinomial_separation(multiclass):
    X, codes, names, classes = multiclass
    codes = np.where(X[:, 0] > 1.0, 2, np.minimum(codes, 1))  # class 'top' exactly where a > 1
    with pytest.raises(ModelError, match="separation") as err:
        fit_logit(X, codes, names, classes, separation="stop")
    assert "'a'" in str(err.value)
    # by default the run goes on: Firth's correction is for two classes, so the multinomial model is ridge
    fit = fit_logit(X, codes, names, classes)
    assert fit.method == "ridge" and fit.penalized and np.isfinite(fit.coef).all()
    assert "'a'" in fit.separating and "implemented for two classes" in fit.separating
    assert (fit.table()["method"] == "ridge").all()
    np.testing.assert_allclose(fit.coef, fit_logit(X, codes, names, classes, penalized=True).coef, rtol=1e-12)


def test_penalized_binary_under_separation(binary):
    X, _, names = binary
    y = (X[:, 1] > np.median(X[:, 1])).astype(int)
    fit = fit_logit(X, y, names, ["low", "high"], penalized=True, ridge=2.0, target="marker")
    tab = fit.table()
    assert fit.penalized and fit.separation == "complete"
    assert np.isfinite(tab["coef"]).all()
    for col in ["std_err", "t", "p_value", "ci_low", "ci_high", "or_ci_low", "or_ci_high"]:
        assert tab[col].isna().all(), col
    np.testing.assert_allclose(tab["coef"].to_numpy(), _ridge_newton(X, y.astype(float), 2.0), rtol=1e-5)
    np.testing.assert_allclose(tab["odds_ratio"].to_numpy(), np.exp(tab["coef"].to_numpy()), rtol=1e-12)
    row = fit.fit_statistics().iloc[0]
    assert bool(row["penalized"]) and np.isnan(row["llr_pvalue"]) and np.isfinite(row["log_likelihood"])
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["penalized"] is True
    assert "marker" in fit.summary("marker")


def test_penalized_multinomial_is_stationary(multiclass):
    X, codes, names, classes = multiclass
    codes = np.where(X[:, 0] > 1.0, 2, np.minimum(codes, 1))
    lam = 1.0
    fit = fit_logit(X, codes, names, classes, penalized=True, ridge=lam)
    tab = fit.table()
    assert np.isfinite(tab["coef"]).all() and tab["p_value"].isna().all()
    np.testing.assert_allclose(fit.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    # gradient of -loglik + lam/2 |B_std[1:]|^2 in the standardised parameters must vanish
    mean, sd = X.mean(axis=0), X.std(axis=0)
    B = fit.coef
    Bz = np.vstack([B[0] + mean @ B[1:], B[1:] * sd[:, None]])
    Z = np.column_stack([np.ones(len(X)), (X - mean) / sd])
    _, grad = _multinomial_nll(Bz.ravel(), Z, np.eye(3)[codes], 3)
    grad = grad.reshape(Bz.shape) + lam * np.vstack([np.zeros((1, 2)), Bz[1:]])
    assert np.abs(grad).max() < 1e-5


def test_fit_errors(binary):
    X, y, names = binary
    with pytest.raises(ModelError, match="no training samples"):
        fit_logit(X, y, names, ["no", "yes", "maybe"])
    with pytest.raises(ModelError, match="training samples for"):
        fit_logit(X[:4], np.array([0, 1, 0, 1]), names, ["no", "yes"])


# --------------------------------------------------------------------------- labels
def test_encode_labels():
    codes, classes = encode_labels(pd.Series(["b", "a", "c", "a"]), "column 'x'")
    assert classes == ["a", "b", "c"]
    np.testing.assert_array_equal(codes, [1, 0, 2, 0])
    codes, classes = encode_labels(pd.Series([1.0, 0.0, 1.0]), "column 'x'")
    assert classes == ["0", "1"]
    np.testing.assert_array_equal(codes, [1, 0, 1])
    codes, classes = encode_labels(pd.Series([2, "10", 2]), "column 'x'")
    assert classes == ["10", "2"]  # sorted as text
    np.testing.assert_array_equal(codes, [1, 0, 1])


def test_encode_labels_errors():
    s = pd.Series(["a", None, "b", " "], index=["s1", "s2", "s3", "s4"])
    with pytest.raises(InputError) as err:
        encode_labels(s, "sample-sheet column 'phenotype'")
    assert "sample-sheet column 'phenotype'" in str(err.value)
    assert "'s2'" in str(err.value) and "'s4'" in str(err.value) and "'s1'" not in str(err.value)
    with pytest.raises(InputError, match="at least two classes") as err:
        encode_labels(pd.Series(["x", "x"], index=["s1", "s2"]), "sample-sheet column 'batch'")
    assert "'batch'" in str(err.value)


def test_binarize():
    codes, classes = binarize(np.array([0.5, 2.0, 1.5, 3.0]), 1.5)
    np.testing.assert_array_equal(codes, [0, 1, 0, 1])  # equal to the threshold is class 0
    assert classes == ["<= 1.5", "> 1.5"]
    with pytest.raises(InputError, match="threshold 5"):
        binarize(np.array([0.5, 2.0]), 5.0, what="gene 'TP53'")
    with pytest.raises(InputError, match="TP53"):
        binarize(np.array([0.5, 2.0]), -1.0, what="gene 'TP53'")
    with pytest.raises(InputError, match="non-finite"):
        binarize(np.array([0.5, np.nan, 2.0]), 1.0)


def test_binarized_class_names_hold_the_threshold_exactly():
    """A threshold that :g rounds (log2(1.5) = 0.5849625007...) named the classes '<= 0.584963' / '> 0.584963',
    so a sample at 0.5849628 (> the cut, < the name) was put in '> 0.584963'. The names hold the threshold as
    given; thresholds :g writes exactly keep their short form."""
    t = float(np.log2(1.5))
    values = np.array([0.5849628, 0.58, 0.6, t])
    codes, classes = binarize(values, t)
    np.testing.assert_array_equal(codes, values > t)
    assert classes == [f"<= {t!r}", f"> {t!r}"] and float(classes[0][3:]) == t
    assert binarize(values, 0.5849625)[1] == ["<= 0.5849625", "> 0.5849625"]
    for short, text in ((0.0, "0"), (0.25, "0.25"), (9.0, "9"), (1e6, "1e+06"), (-2.5, "-2.5")):
        assert binarize(np.array([short - 1, short + 1]), short)[1] == [f"<= {text}", f"> {text}"]


# --------------------------------------------------------------------------- metrics
def _pairwise_auroc(score: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = score[positive], score[~positive]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def _log_loss_loop(codes: np.ndarray, proba: np.ndarray) -> float:
    total = 0.0
    for c, row in zip(codes, proba):
        total -= np.log(min(max(row[c], 1e-15), 1.0))
    return total / len(codes)


def test_binary_metrics():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 2, 50)
    p1 = np.round(rng.random(50), 1)  # ties
    p1[0], p1[1] = 0.0, 1.0  # log-loss clipping
    codes[0], codes[1] = 1, 0
    proba = np.column_stack([1 - p1, p1])
    m = classification_metrics(codes, proba)
    assert m["n"] == 50
    assert m["accuracy"] == pytest.approx(np.mean((p1 > 0.5).astype(int) == codes))
    assert m["auroc"] == pytest.approx(_pairwise_auroc(p1, codes == 1), rel=1e-12)
    assert m["log_loss"] == pytest.approx(_log_loss_loop(codes, proba), rel=1e-12)


def test_multiclass_metrics():
    rng = np.random.default_rng(6)
    codes = rng.integers(0, 3, 40)
    proba = rng.dirichlet(np.ones(3), size=40)
    m = classification_metrics(codes, proba)
    assert m["accuracy"] == pytest.approx(np.mean(proba.argmax(axis=1) == codes))
    expected = np.mean([_pairwise_auroc(proba[:, k], codes == k) for k in range(3)])
    assert m["auroc"] == pytest.approx(expected, rel=1e-12)
    assert m["log_loss"] == pytest.approx(_log_loss_loop(codes, proba), rel=1e-12)
    absent = classification_metrics(np.where(codes == 2, 1, codes), proba)
    assert np.isnan(absent["auroc"]) and np.isfinite(absent["log_loss"])


# --------------------------------------------------------------------------- Firth
def _separated(kind: str, seed: int, n: int = 60, p: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Data whose first predictor separates the classes completely, quasi-completely, or not at all."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if kind == "complete":
        y = (X[:, 0] > 0).astype(np.int64)
    elif kind == "quasi":  # ties at x0 == 0, where both classes occur
        X[:, 0] = np.round(X[:, 0])
        y = np.where(X[:, 0] > 0, 1, np.where(X[:, 0] < 0, 0, rng.integers(0, 2, n))).astype(np.int64)
    else:
        y = (X[:, 0] + rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def _firthmodels_reference(X: np.ndarray, y: np.ndarray):
    """firthmodels' FirthLogisticRegression, at the tightest tolerance its (linearly converging) solver meets."""
    import warnings

    firthmodels = pytest.importorskip("firthmodels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # (1e-6: its solver stalls short of 1e-7 on one case here; 1e-5: its step-halving fails below that on the
        # large-intercept case on some CPUs (AMD EPYC), whose BLAS rounds otherwise)
        for tol in (1e-9, 1e-8, 1e-7, 1e-6, 1e-5):
            m = firthmodels.FirthLogisticRegression(max_iter=1000, gtol=tol, xtol=tol, backend="numpy").fit(X, y)
            if m.converged_:
                break
        assert m.converged_
        # its constrained fits for the tests and intervals converge at 1e-6, not always tighter; a penalised
        # log-likelihood is quadratic at its maximum, so the p-values and interval ends stay exact to ~1e-12
        t_tol = max(tol, 1e-6)
        t = firthmodels.FirthLogisticRegression(max_iter=1000, gtol=t_tol, xtol=t_tol, backend="numpy").fit(X, y)
        t.lrt()
        ci = t.conf_int(alpha=0.05, method="pl", tol=1e-9, max_iter=1000)
    # firthmodels puts the intercept last
    return (np.r_[m.intercept_, m.coef_], np.r_[t.lrt_pvalues_[-1], t.lrt_pvalues_[:-1]],
            np.vstack([ci[-1:], ci[:-1]]))


@pytest.mark.parametrize("kind,seed", [("complete", 1), ("quasi", 3), ("none", 2)])
def test_firth_matches_firthmodels(kind, seed):
    """Coefficients, penalised likelihood-ratio p-values and profile intervals against firthmodels (a
    maintained Python implementation of logistf's method; R's logistf is not packaged for Debian), Wald
    standard errors against the inverse Fisher information computed here at firthmodels' estimate."""
    X, y = _separated(kind, seed)
    names = [f"g{j}" for j in range(X.shape[1])]
    fit = fit_logit(X, y, names, ["a", "b"], target="t")
    tab = fit.table()
    coef, lrt_p, ci = _firthmodels_reference(X, y)
    if kind == "none":
        assert fit.method == "ml"  # no separation: ordinary maximum likelihood, as before
        return
    assert fit.method == "firth" and (tab["method"] == "firth").all()
    assert fit.separation == ("complete" if kind == "complete" else "quasi-complete")
    np.testing.assert_allclose(tab["coef"], coef, atol=1e-6)
    A = np.column_stack([np.ones(len(y)), X])
    w = _sigmoid(A @ coef) * (1 - _sigmoid(A @ coef))
    se = np.sqrt(np.diag(np.linalg.inv(A.T @ (A * w[:, None]))))
    np.testing.assert_allclose(tab["std_err"], se, rtol=1e-5)
    np.testing.assert_allclose(tab["t"], tab["coef"] / tab["std_err"], rtol=1e-12)
    finite = np.isfinite(lrt_p)  # firthmodels withholds a test whose constrained fit it did not converge
    assert finite.sum() >= len(lrt_p) - 1
    np.testing.assert_allclose(tab["p_value"][finite], lrt_p[finite], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(tab[["ci_low", "ci_high"]].to_numpy(), ci, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tab["or_ci_high"], np.exp(ci[:, 1]), rtol=1e-5)


def test_firth_without_separation_equals_firthmodels_too():
    """firth_logit itself (not only where fit_logit calls it) on data with a finite MLE."""
    from gexpred.logit import firth_logit, firth_lr_test, firth_profile_interval

    X, y = _separated("none", 2)
    A = np.column_stack([np.ones(len(y)), X])
    ff = firth_logit(A, y.astype(float))
    coef, lrt_p, ci = _firthmodels_reference(X, y)
    assert ff.converged
    np.testing.assert_allclose(ff.coef, coef, atol=1e-8)
    np.testing.assert_allclose([firth_lr_test(A, y.astype(float), ff, [j])[1] for j in range(A.shape[1])],
                               lrt_p, rtol=1e-6)
    np.testing.assert_allclose([firth_profile_interval(A, y.astype(float), ff, j) for j in range(A.shape[1])],
                               ci, rtol=1e-6)
    # Firth shrinks towards 0 relative to maximum likelihood (the bias it removes points away from 0)
    ml = _newton_logit(X, y.astype(float))["coef"]
    assert np.abs(ff.coef[1]) < np.abs(ml[1])


def test_firth_tests_of_a_separating_predictor_with_a_large_intercept():
    """Expression on a log scale (mean 5, not centred), one gene separating the classes: Firth's intercept is
    large, so the constrained fit of the separating gene's test, started from the full estimate with the gene at
    0, puts every probability at 0 or 1. Its p-value and the test of all predictors must still be finite
    numbers (firthmodels; the global test against a one-dimensional maximisation of the penalised likelihood
    over the intercept), not 0 and an infinite statistic."""
    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 1.0, size=(60, 3))
    y = (X[:, 0] < 5.0).astype(np.int64)
    fit = fit_logit(X, y, ["g0", "g1", "g2"], ["a", "b"], target="t")
    assert fit.method == "firth"
    tab = fit.table()
    _, lrt_p, ci = _firthmodels_reference(X, y)
    assert np.isfinite(lrt_p).all() and lrt_p[1] > 0
    np.testing.assert_allclose(tab["p_value"], lrt_p, rtol=1e-6, atol=0)
    # the profile intervals too: far out on the intercept (171.6) the constrained fits started from the estimate
    # put every probability at 0 or 1, and the interval closed early (153.2) before the scaled start. The
    # separating gene's lower end: its profile is not monotone (checked with scipy: it crosses the cut at
    # -35.28 and back at -35.42, above it in between), firthmodels gives the first crossing, this search the
    # second; both are ends of the profile
    ends = tab[["ci_low", "ci_high"]].to_numpy()
    np.testing.assert_allclose(np.delete(ends.ravel(), 2), np.delete(ci.ravel(), 2), rtol=1e-6)
    assert ends[1, 0] == pytest.approx(ci[1, 0], rel=5e-3)
    A = np.column_stack([np.ones(len(y)), X])

    def neg_null_pl(b0: float) -> float:  # slopes at 0, the penalty of the whole design (logistf's null model)
        p = _sigmoid(np.full(len(y), b0))
        return -(np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))
                 + 0.5 * np.linalg.slogdet(A.T @ (A * (p * (1 - p))[:, None]))[1])

    null = optimize.minimize_scalar(neg_null_pl, bounds=(-10, 10), method="bounded", options={"xatol": 1e-12})
    row = fit.fit_statistics().iloc[0]
    np.testing.assert_allclose(row["llr"], 2 * (fit.firth.penalized_log_likelihood + null.fun), rtol=1e-8)
    np.testing.assert_allclose(row["llr_pvalue"], stats.chi2.sf(row["llr"], 3), rtol=1e-9)


def test_firth_profile_fit_far_out_stops_at_the_rounding_floor():
    """The large-intercept case's profile fit at intercept 171.66, from the start the interval search gave
    it: the modified score cannot fall below ~2e-6 there (probabilities within 1e-70 of 0 or 1), so the
    iteration used to spend its 200 steps halving steps of 1e-17 and report no convergence (99 % of the
    fit's time). It converges in a few steps, at the maximum found by Nelder-Mead on the penalised
    log-likelihood written out with numpy (loglik + 1/2 log det A'WA), from three starts around it."""
    from gexpred.logit import FIRTH_MAXITER, firth_logit

    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 1.0, size=(60, 3))
    y = (X[:, 0] < 5.0).astype(np.float64)
    A = np.column_stack([np.ones(len(y)), X])
    prof = firth_logit(A, y, fixed={0: 171.66}, start=np.array([171.66, -34.02, 3.56, -2.63]))
    assert prof.converged and prof.n_iter < FIRTH_MAXITER // 4

    def pl(b: np.ndarray) -> float:
        eta = A @ b
        w = _sigmoid(eta) * (1 - _sigmoid(eta))
        return float(np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(A.T @ (A * w[:, None]))[1])

    assert prof.penalized_log_likelihood == pytest.approx(pl(prof.coef), abs=1e-9)
    for seed in range(3):
        start = prof.coef[1:] + np.random.default_rng(seed).normal(0, 0.5, 3)
        ref = optimize.minimize(lambda v: -pl(np.r_[171.66, v]), start, method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20_000, "maxfev": 40_000})
        assert prof.penalized_log_likelihood >= -ref.fun - 1e-9
        np.testing.assert_allclose(prof.coef[1:], ref.x, atol=1e-4)  # flat there: 1e-5 moves it by 1e-11


def test_firth_newton_uses_the_exact_hessian():
    """The Hessian of the penalised log-likelihood against central differences of its gradient, and the
    gradient (Firth's modified score) against differences of the penalised log-likelihood."""
    from gexpred.logit import _firth_terms

    rng = np.random.default_rng(0)
    A = np.column_stack([np.ones(30), rng.normal(size=(30, 3))])
    y = rng.integers(0, 2, 30).astype(float)
    b = rng.normal(size=4) * 0.5
    _, _, g, _, H = _firth_terms(A, y, b, hessian=True)
    eps = 1e-6
    H_fd = np.array([(_firth_terms(A, y, b + eps * e)[2] - _firth_terms(A, y, b - eps * e)[2]) / (2 * eps)
                     for e in np.eye(4)])
    g_fd = np.array([(_firth_terms(A, y, b + eps * e)[0] - _firth_terms(A, y, b - eps * e)[0]) / (2 * eps)
                     for e in np.eye(4)])
    np.testing.assert_allclose(H, H_fd, atol=1e-7)
    np.testing.assert_allclose(g, g_fd, atol=1e-7)


def test_firth_fit_reports_the_separation(binary):
    X, _, names = binary
    y = (X[:, 1] > np.median(X[:, 1])).astype(int)  # g2 alone separates the classes
    fit = fit_logit(X, y, names, ["low", "high"], target="marker")
    assert fit.method == "firth" and not fit.penalized and fit.converged
    assert "'g2'" in fit.separating and "150 training samples" in fit.separating
    tab = fit.table()
    assert np.isfinite(tab[["coef", "std_err", "p_value", "ci_low"]].to_numpy()).all()
    row = fit.fit_statistics().iloc[0]
    assert list(fit.fit_statistics().columns) == LOGIT_FIT_COLUMNS
    assert row["method"] == "firth" and "'g2'" in row["separation"] and 0 < row["pseudo_r2"] <= 1
    # the penalised likelihood-ratio test of all predictors, against its definition
    from gexpred.logit import firth_logit

    A = np.column_stack([np.ones(len(y)), X])
    null = firth_logit(A, y.astype(float), fixed={1: 0.0, 2: 0.0, 3: 0.0})
    np.testing.assert_allclose(row["llr"], 2 * (fit.firth.penalized_log_likelihood - null.penalized_log_likelihood),
                               rtol=1e-9)
    np.testing.assert_allclose(row["llr_pvalue"], stats.chi2.sf(row["llr"], 3), rtol=1e-9)
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["method"] == "firth" and "'g2'" in d["separating"]
    text = fit.summary("marker")
    assert "Firth" in text and "'g2'" in text
    # high g2 goes with the non-reference class, and the fit classifies nearly every training sample
    assert tab.set_index("term").loc["g2", "coef"] > 0
    assert np.mean(fit.predict(X) == y) > 0.95  # shrunk towards 0: a few samples at the boundary may flip


def test_cv_logit_fits_separated_folds_by_firth():
    from gexpred.search import cv_logit

    X, y = _separated("complete", 1)
    folds = np.arange(len(y)) % 3
    names = [f"g{j}" for j in range(X.shape[1])]
    oof = cv_logit(X, y, folds, names, ["a", "b"])
    ridge = cv_logit(X, y, folds, names, ["a", "b"], separation="ridge")
    for f in range(3):
        tr, te = folds != f, folds == f
        ref = fit_logit(X[tr], y[tr], names, ["a", "b"], inference=False)
        assert ref.method == "firth"
        np.testing.assert_allclose(oof[te], ref.predict_proba(X[te]), rtol=1e-12)
        np.testing.assert_allclose(ridge[te], fit_logit(X[tr], y[tr], names, ["a", "b"],
                                                        penalized=True).predict_proba(X[te]), rtol=1e-12)


def test_gene_set_tests_of_a_multinomial_logit_count_a_coefficient_per_class():
    """The gene-set likelihood-ratio test of a three-class logit has 2 coefficients per gene (statsmodels MNLogit
    full against reduced); a separated three-class target, ridge-penalised, has no test but the same degrees of
    freedom (was one per gene)."""
    import argparse

    import statsmodels.api as sm
    from scipy import stats

    from gexpred.cli import _logit_nested

    rng = np.random.default_rng(8)
    X = rng.normal(size=(150, 3))
    eta = np.column_stack([np.zeros(150), X @ [1.0, -0.5, 0.3], X @ [-0.6, 0.8, 0.2]])
    P = np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)
    codes = np.array([rng.choice(3, p=p) for p in P])
    a = argparse.Namespace(alpha=0.05, target="t")
    terms, classes = ["a", "b", "c"], ["x", "y", "z"]
    fit = fit_logit(X, codes, terms, classes)
    got = _logit_nested(X, codes, terms, classes, {"ab": ["a", "b"]}, fit, a).iloc[0]
    full = sm.MNLogit(codes, sm.add_constant(X)).fit(disp=0, method="newton")
    red = sm.MNLogit(codes, sm.add_constant(X[:, 2:])).fit(disp=0, method="newton")
    lr = 2 * (full.llf - red.llf)
    np.testing.assert_allclose([got["lr_stat"], got["p_value"]], [lr, stats.chi2.sf(lr, 4)], rtol=1e-8)
    assert got["df_num"] == 4
    sep = np.digitize(X[:, 0], [-0.5, 0.5])
    ridge = fit_logit(X, sep, terms, classes)
    assert ridge.method == "ridge"
    row = _logit_nested(X, sep, terms, classes, {"ab": ["a", "b"]}, ridge, a).iloc[0]
    assert np.isnan(row["lr_stat"]) and np.isnan(row["p_value"]) and row["df_num"] == 4


def test_separated_classes_of_three_say_what_going_on_fits():
    """With three classes, ols.stop_on_separation: true stopped with 'Set ols.stop_on_separation: false (the default)
    to fit Firth's bias-reduced logistic regression instead, whose coefficients, tests and intervals stay finite',
    but the run then fits a ridge-penalised multinomial model without tests (Firth's correction is for two
    classes; an audit). The message says what the default fits for the classes at hand."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 2))
    codes = np.digitize(X[:, 0], [-0.4, 0.4])  # a alone orders the three classes
    with pytest.raises(ModelError) as err:
        fit_logit(X, codes, ["a", "b"], ["lo", "mid", "hi"], target="grade", separation="stop")
    msg = str(err.value)
    assert "ridge-penalised multinomial" in msg and "two classes only" in msg, msg
    assert "to fit Firth's" not in msg
    going_on = fit_logit(X, codes, ["a", "b"], ["lo", "mid", "hi"], target="grade")  # the default, as the message says
    assert going_on.table()["std_err"].isna().all()
