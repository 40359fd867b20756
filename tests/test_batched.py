"""Tests of gexpred.batched against statsmodels OLS fitted one target at a time.

statsmodels (pinv of the design, explicit residuals, scipy's t and F distributions)
is an implementation independent of the batched engine (one QR of the design,
sums of squares from matrix products, interpolated p-values), so agreement to
1e-8 relative on every statistic is a real check.

Tolerances: every statistic is compared with ``rtol=1e-8`` and ``atol=0``,
p-values included, down to ~1e-250 (all are normal floats, so relative error is
meaningful). The one exception is a coefficient that is ~0 next to its standard
error, and its t: the difference may also be up to 1e-10 standard errors
(``|coef - ref| <= 1e-8 |ref| + 1e-10 se``). statsmodels' pseudo-inverse has an
absolute error of ~1e-12 standard errors on every coefficient of these designs
(scales 1e-2 .. 1e2), which is more than 1e-8 relative for a coefficient of ~1e-4
standard errors; a 40-digit mpmath solution shows the engine's error there is
~1e-11 relative (see test_hard_targets_against_40_digit_reference).
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special

import gexpred.batched as batched
from gexpred.batched import (
    FIT_COLUMNS,
    LONG_COEF_COLUMNS,
    BatchedResult,
    default_chunk_size,
    fit_many,
    iter_chunks,
    f_pvalues,
    t_pvalues,
)
from gexpred.errors import ModelError

RTOL = 1e-8
COEF_STATS = ["coef", "std_err", "t", "p_value", "ci_low", "ci_high"]
FIT_STATS = ["r2", "adj_r2", "f_stat", "f_pvalue"]


def _statsmodels(X: np.ndarray, Y: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Every statistic of ``sm.OLS(y, [1, X]).fit()`` per column of ``Y``: targets x terms, or per target."""
    A = np.column_stack([np.ones(X.shape[0]), X])
    rows: dict[str, list] = {key: [] for key in [*COEF_STATS, *FIT_STATS, "df_model", "df_resid", "n"]}
    for y in np.asarray(Y, dtype=np.float64).T:
        r = sm.OLS(y, A).fit()
        ci = np.asarray(r.conf_int(alpha=alpha))
        for key, value in zip(rows, [r.params, r.bse, r.tvalues, r.pvalues, ci[:, 0], ci[:, 1], r.rsquared,
                                     r.rsquared_adj, r.fvalue, r.f_pvalue, r.df_model, r.df_resid, r.nobs]):
            rows[key].append(value)
    return {key: np.asarray(v, dtype=np.float64) for key, v in rows.items()}


def _assert_matches(res: BatchedResult, ref: dict[str, np.ndarray], cols: slice | np.ndarray = slice(None)) -> None:
    for key in [*COEF_STATS, *FIT_STATS]:
        got, want = getattr(res, key)[cols], ref[key]
        if key in ("coef", "t"):  # ~0 next to the standard error: within 1e-10 standard errors
            atol = 1e-10 * (ref["std_err"] if key == "coef" else 1.0)
            bad = ~(np.abs(got - want) <= RTOL * np.abs(want) + atol)
            assert not bad.any(), f"{key}: {got[bad]} != {want[bad]}"
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=0, err_msg=key)
    np.testing.assert_array_equal(np.full(len(ref["n"]), res.df_model), ref["df_model"])
    np.testing.assert_array_equal(np.full(len(ref["n"]), res.df_resid), ref["df_resid"])
    np.testing.assert_array_equal(np.full(len(ref["n"]), res.n), ref["n"])


def _design(rng: np.random.Generator, n: int, p: int, decades: float = 4.0, offset: float = 0.5) -> np.ndarray:
    """Correlated predictors on scales from 0.01 to 100, with offsets.

    (statsmodels' pseudo-inverse of such a design, condition number ~1e5, keeps its p-values within
    ~1e-9 of the exact ones; 5 decades and offsets of 3 scales cost it 3e-10 in t and 2e-8 in p.)
    """
    scale = np.logspace(-2, -2 + decades, p)
    Z = rng.normal(size=(n, p))
    X = Z @ (np.eye(p) + 0.4 * rng.normal(size=(p, p)))
    return X * scale + rng.normal(size=p) * scale * offset


def _targets(rng: np.random.Generator, X: np.ndarray, m: int) -> np.ndarray:
    """Targets on scales 1e-3 .. 1e3: pure noise, weak, strong and near-perfect signal."""
    n, p = X.shape
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    signal = Xs @ rng.normal(size=(p, m))
    strength = np.resize([0.0, 0.2, 1.0, 5.0, 200.0], m)  # R^2 from ~0 to ~0.9999
    scale = np.resize([1e-3, 1.0, 1e3, 0.1, 30.0, 7.0, 1.0], m)
    offset = rng.normal(size=m) * 3
    return (signal * strength + rng.normal(size=(n, m)) + offset) * scale


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(7)
    X = _design(rng, 80, 6)
    Y = _targets(rng, X, 25)
    return X, Y, [f"g{i}" for i in range(6)], [f"T{j}" for j in range(25)]


@pytest.fixture(scope="module")
def reference(data) -> dict[str, np.ndarray]:
    X, Y, _, _ = data
    return _statsmodels(X, Y)


@pytest.fixture(scope="module")
def result(data) -> BatchedResult:
    X, Y, terms, targets = data
    return fit_many(X, Y, terms, targets)


# --------------------------------------------------------------------------- agreement with statsmodels
@pytest.mark.parametrize("key", [*COEF_STATS, *FIT_STATS])
def test_every_statistic_matches_statsmodels(result, reference, key):
    np.testing.assert_allclose(getattr(result, key), reference[key], rtol=RTOL, atol=0)


def test_degrees_of_freedom_and_status(result, reference):
    _assert_matches(result, reference)
    assert result.df_model == 6 and result.df_resid == 73 and result.n == 80
    assert (result.status == "ok").all()
    assert 0 < result.n_refit < 25  # the near-perfect fits went through explicit residuals


def test_data_covers_tiny_p_values_and_noise(reference):
    """The fixture exercises p-values from ~1 down to far below 1e-100, and R^2 near 0 and near 1."""
    assert reference["p_value"].min() < 1e-150 and reference["p_value"].max() > 0.5
    assert reference["f_pvalue"].min() < 1e-100 and reference["f_pvalue"].max() > 0.1
    assert reference["r2"].min() < 0.1 and reference["r2"].max() > 0.999


def test_other_alpha_and_one_dimensional_inputs(data):
    X, Y, terms, targets = data
    res = fit_many(X[:, 0], Y[:, 3], ["g0"], ["T3"], alpha=0.01)
    ref = _statsmodels(X[:, :1], Y[:, 3:4], alpha=0.01)
    _assert_matches(res, ref)


def test_many_targets_use_the_p_value_table_and_still_match(data, monkeypatch):
    """10,000 targets x 7 terms: enough t statistics for the interpolated p-values (checked: the compiled
    pass gets the table and leaves few values to scipy), every 50th target against statsmodels."""
    from gexpred import _kernels

    rng = np.random.default_rng(11)
    X = data[0]
    Y = _targets(rng, X, 10_000)
    assert 7 * 10_000 >= batched._TABLE_FIT_MIN_SIZE
    calls = []
    real = _kernels.coefficient_stats

    def spy(*args):
        n_exact = real(*args)
        calls.append((args[0].size, args[4].shape[0], n_exact))
        return n_exact

    monkeypatch.setattr(_kernels, "coefficient_stats", spy)
    res = fit_many(X, Y, data[2], [f"T{j}" for j in range(10_000)])
    table = batched._cached_t_table(73.0, batched._TABLE_FIT_OCTAVES)[1]
    assert [c[:2] for c in calls] == [(70_000, table.shape[0])]
    # scipy gives the values beyond the table (|t| >= 255: a fifth of these targets fit almost perfectly)
    # and where p < 1e-300, and nothing else
    beyond = np.abs(res.t) >= 255
    tiny = res.p_value < 1e-300
    assert beyond.sum() <= calls[0][2] <= (beyond | tiny).sum() + 7 * 1024  # (+ the intervals reaching 1e-300)
    cols = np.arange(0, 10_000, 50)
    _assert_matches(res, _statsmodels(X, Y[:, cols]), cols)


def test_tables(result, reference, data):
    coefs = result.coefficients()
    assert list(coefs.columns) == LONG_COEF_COLUMNS == ["target", "term", "coef", "std_err", "t", "p_value",
                                                          "ci_low", "ci_high"]
    assert coefs["target"].tolist() == [t for t in data[3] for _ in range(7)]
    assert coefs["term"].tolist() == ["const", *data[2]] * 25
    np.testing.assert_allclose(coefs["p_value"].to_numpy(), reference["p_value"].ravel(), rtol=RTOL)
    fit = result.fit()
    assert list(fit.columns) == FIT_COLUMNS
    assert fit["target"].tolist() == data[3]
    assert (fit["n"] == 80).all() and (fit["df_model"] == 6).all() and (fit["df_resid"] == 73).all()
    assert (fit["status"] == "ok").all()
    np.testing.assert_allclose(fit["f_stat"].to_numpy(), reference["f_stat"], rtol=RTOL)


# --------------------------------------------------------------------------- chunks and threads
def test_chunked_equals_unchunked(data):
    X, Y, terms, targets = data
    rng = np.random.default_rng(3)
    Ybig = _targets(rng, X, 700)
    names = [f"T{j}" for j in range(700)]
    whole = fit_many(X, Ybig, terms, names)
    for chunk_size in (1, 7, 300):
        part = fit_many(X, Ybig, terms, names, chunk_size=chunk_size)
        for key in [*COEF_STATS, *FIT_STATS]:
            # BLAS rounds a column differently in a product with fewer columns (a matrix-vector product
            # for chunk_size=1): t moves by up to ~1e-14 relative, and a p-value of 1e-35 (t ~ 17)
            # moves by ~t^2 times that, hence 1e-10 for p-values and 1e-12 for everything else
            # (coefficients and interval ends can be ~0 by cancellation: also within 1e-12 standard errors)
            rtol = 1e-10 if key in ("p_value", "f_pvalue") else 1e-12
            atol = {"coef": whole.std_err, "ci_low": whole.std_err, "ci_high": whole.std_err, "t": 1.0}.get(key, 0.0)
            got, want = getattr(part, key), getattr(whole, key)
            assert (np.abs(got - want) <= rtol * np.abs(want) + 1e-12 * atol).all(), (chunk_size, key)
        assert (part.status == whole.status).all()
        assert part.n_refit == whole.n_refit


def test_iter_chunks():
    assert iter_chunks(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert iter_chunks(4, 4) == [(0, 4)]
    assert iter_chunks(3, 10) == [(0, 3)]
    assert iter_chunks(0, 3) == []
    with pytest.raises(ValueError):
        iter_chunks(5, 0)
    with pytest.raises(ValueError):
        iter_chunks(-1, 2)


def test_default_chunk_size_keeps_temporaries_under_256_mb():
    for n in (10, 500, 20_000, 10**9):
        c = default_chunk_size(n)
        assert c >= 1
        assert c == 1 or 3 * 8 * n * c <= 256 * 2**20
    assert default_chunk_size(500) > 2000  # the benchmark's targets fit in one chunk


# --------------------------------------------------------------------------- targets that cannot be fitted
def test_constant_target_is_reported_not_crashed(data, result):
    X, Y, terms, targets = data
    Y2 = Y.copy()
    Y2[:, 4] = 3.7
    Y2[:, 9] = 0.0
    Y2[:, 11] = 2.5 + 1e-16 * np.arange(80)  # constant up to rounding
    res = fit_many(X, Y2, terms, targets)
    const = [4, 9, 11]
    assert res.status[const].tolist() == ["constant_target"] * 3
    np.testing.assert_allclose(res.coef[const, 0], Y2[:, const].mean(axis=0), rtol=1e-15)
    assert (res.coef[const, 1:] == 0).all() and (res.std_err[const] == 0).all()
    assert np.isnan(res.t[const]).all() and np.isnan(res.p_value[const]).all()
    np.testing.assert_array_equal(res.ci_low[const], res.coef[const])
    for key in FIT_STATS:
        assert np.isnan(getattr(res, key)[const]).all()
    others = np.setdiff1d(np.arange(25), const)
    assert (res.status[others] == "ok").all()
    for key in [*COEF_STATS, *FIT_STATS]:
        np.testing.assert_allclose(getattr(res, key)[others], getattr(result, key)[others], rtol=1e-12)
    assert res.fit()["status"].tolist().count("constant_target") == 3


def test_non_finite_target_is_reported_not_crashed(data, result):
    X, Y, terms, targets = data
    Y2 = Y.copy()
    Y2[5, 2] = np.nan
    Y2[0, 7] = np.inf
    res = fit_many(X, Y2, terms, targets)
    assert res.status[[2, 7]].tolist() == ["non_finite", "non_finite"]
    for key in COEF_STATS:
        assert np.isnan(getattr(res, key)[[2, 7]]).all()
    for key in FIT_STATS:
        assert np.isnan(getattr(res, key)[[2, 7]]).all()
    others = np.setdiff1d(np.arange(25), [2, 7])
    for key in [*COEF_STATS, *FIT_STATS]:
        np.testing.assert_allclose(getattr(res, key)[others], getattr(result, key)[others], rtol=1e-12)


# --------------------------------------------------------------------------- designs that cannot be fitted
def test_collinear_design_raises_naming_the_term(data):
    X, Y, terms, targets = data
    Xc = X.copy()
    Xc[:, 3] = Xc[:, 0] - 2.5 * Xc[:, 1]
    with pytest.raises(ModelError, match=r"term 'g3' is a linear combination") as err:
        fit_many(Xc, Y, terms, targets)
    assert "on_rank_deficient='drop'" in str(err.value)


def test_constant_predictor_raises_naming_it(data):
    X, Y, terms, targets = data
    Xc = X.copy()
    Xc[:, 1] = 4.0
    Xc[:, 4] = 0.0
    with pytest.raises(ModelError, match=r"terms 'g1', 'g4' are linear combinations"):
        fit_many(Xc, Y, terms, targets)


def test_drop_rank_deficient_matches_statsmodels_without_the_column(data):
    X, Y, terms, targets = data
    Xc = X.copy()
    Xc[:, 3] = Xc[:, 0] - 2.5 * Xc[:, 1]
    res = fit_many(Xc, Y, terms, targets, on_rank_deficient="drop")
    assert res.dropped_terms == ["g3"]
    assert res.terms == ["const", "g0", "g1", "g2", "g4", "g5"]
    assert res.df_model == 5 and res.df_resid == 74
    _assert_matches(res, _statsmodels(np.delete(Xc, 3, axis=1), Y))
    assert res.coefficients()["term"].tolist()[:6] == res.terms


def test_too_few_samples_raise(data):
    X, Y, terms, targets = data
    with pytest.raises(ModelError, match="at least 8"):
        fit_many(X[:7], Y[:7], terms, targets)
    # p + 2 samples: one residual degree of freedom. (A well-scaled design: with 8 samples of the
    # fixture's, condition number ~2e6, statsmodels' own coefficients are off by ~5e-8.)
    rng = np.random.default_rng(2)
    X8, Y8 = rng.normal(size=(8, 6)), rng.normal(size=(8, 25))
    res = fit_many(X8, Y8, terms, targets)
    assert res.df_resid == 1
    _assert_matches(res, _statsmodels(X8, Y8))


def test_non_finite_design_raises(data):
    X, Y, terms, targets = data
    Xc = X.copy()
    Xc[3, 5] = np.nan
    with pytest.raises(ModelError, match="'g5'"):
        fit_many(Xc, Y, terms, targets)


def test_bad_arguments_raise_value_error(data):
    X, Y, terms, targets = data
    with pytest.raises(ValueError):
        fit_many(X, Y[:-1], terms, targets)
    with pytest.raises(ValueError):
        fit_many(X, Y, terms[:-1], targets)
    with pytest.raises(ValueError):
        fit_many(X, Y, terms, targets[:-1])
    with pytest.raises(ValueError):
        fit_many(X, Y, ["const", *terms[1:]], targets)
    with pytest.raises(ValueError):
        fit_many(X, Y, terms, targets, alpha=1.5)
    with pytest.raises(ValueError):
        fit_many(X, Y, terms, targets, on_rank_deficient="ignore")
    with pytest.raises(ValueError):
        fit_many(X, Y, terms, targets, chunk_size=0)


def test_intercept_only_model(data):
    X, Y, _, targets = data
    res = fit_many(X[:, :0], Y, [], targets)
    ref = _statsmodels(X[:, :0], Y)
    for key in COEF_STATS:
        np.testing.assert_allclose(getattr(res, key), ref[key], rtol=RTOL)
    # R^2 is 0 up to rounding in both (1 - RSS / TSS with RSS == TSS): values ~0, so absolute
    np.testing.assert_allclose(res.r2, ref["r2"], rtol=0, atol=1e-15)
    assert np.isnan(res.f_stat).all() and np.isnan(res.f_pvalue).all()


# --------------------------------------------------------------------------- accuracy paths
def test_targets_with_large_means_are_refitted_and_match():
    """Mean 1e4 x the noise: y'y - |Q'y|^2 would cancel, so these go through explicit residuals."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 4))
    Y = 1e4 + X @ rng.normal(size=(4, 30)) * 0.5 + rng.normal(size=(60, 30))
    res = fit_many(X, Y, list("abcd"), [f"T{j}" for j in range(30)])
    assert res.n_refit == 30
    _assert_matches(res, _statsmodels(X, Y))


def test_refit_centres_and_uses_explicit_residuals_only_for_near_perfect_fits(monkeypatch):
    """Large means alone are cured by centring; near-perfect fits (R^2 ~ 1 - 1e-8) also need explicit
    residuals, and only they take that second step. The large-mean targets match statsmodels; the
    near-perfect ones a 40-digit mpmath solution to 1e-10 (statsmodels' pseudo-inverse loses ~1e-9 in t
    there, so ~5e-8 in p-values of 1e-250)."""
    mp = pytest.importorskip("mpmath")
    from gexpred import _kernels

    rng = np.random.default_rng(21)
    X = rng.normal(size=(70, 4))
    noise = rng.normal(size=(70, 20)) * np.where(np.arange(20) < 5, 1e-4, 1.0)  # the first 5: R^2 ~ 1 - 1e-8
    Y = 1e4 + X @ rng.normal(size=(4, 20)) + noise
    sizes = []
    real = _kernels.sums_of_squares
    monkeypatch.setattr(_kernels, "sums_of_squares", lambda A: sizes.append(A.shape[1]) or real(A))
    res = fit_many(X, Y, list("abcd"), [f"T{j}" for j in range(20)])
    assert res.n_refit == 20
    assert sizes == [20, 20, 5]  # the fast path, the centred refit of all, explicit residuals of 5
    _assert_matches(res, _statsmodels(X, Y[:, 5:]), np.arange(5, 20))
    mp.mp.dps = 40
    A = mp.matrix([[1.0, *map(float, row)] for row in X])
    AtA_inv = mp.inverse(A.T * A)
    for j in range(5):
        y = mp.matrix([float(v) for v in Y[:, j]])
        beta = AtA_inv * (A.T * y)
        s2 = sum(r**2 for r in y - A * beta) / 65
        se = [mp.sqrt(AtA_inv[i, i] * s2) for i in range(5)]
        t = [beta[i] / se[i] for i in range(5)]
        p = [mp.betainc(32.5, 0.5, 0, 65 / (65 + ti**2), regularized=True) for ti in t]  # 2 t.sf(|t|, 65)
        np.testing.assert_allclose(res.coef[j], [float(v) for v in beta], rtol=1e-10)
        np.testing.assert_allclose(res.std_err[j], [float(v) for v in se], rtol=1e-10)
        np.testing.assert_allclose(res.t[j], [float(v) for v in t], rtol=1e-10)
        # p-values compared as mpf ratios (they reach 1e-280); the intercepts' (t ~ 1e9, p ~ 1e-520) are
        # below the float range, where scipy and statsmodels report 0 too
        for got, want in zip(res.p_value[j], p):
            assert abs(mp.mpf(float(got)) / want - 1) < 1e-8 if want > 1e-300 else got < 1e-300


def test_householder_path_equals_cholesky_qr_path(data, result, monkeypatch):
    """Designs conditioned worse than 1e5 use Householder QR; on this one both paths agree to rounding.

    1e-12, except p-values: a p-value of 1e-40 (t ~ 20) moves by t^2 = 400 times a rounding-level
    difference of t, so 1e-11.
    """
    X, Y, terms, targets = data
    monkeypatch.setattr(batched, "_CHOLQR_MAX_COND", 0.0)
    res = fit_many(X, Y, terms, targets)
    for key in [*COEF_STATS, *FIT_STATS]:
        rtol = 1e-11 if key in ("p_value", "f_pvalue") else 1e-12
        np.testing.assert_allclose(getattr(res, key), getattr(result, key), rtol=rtol, err_msg=key)


def test_ill_conditioned_design_matches_statsmodels():
    """Two predictors correlated to 1 - 1e-9 (condition number ~1e5 after scaling): Householder path."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(50, 3))
    X[:, 2] = X[:, 0] + 1e-5 * rng.normal(size=50)
    Y = X @ rng.normal(size=(3, 10)) + rng.normal(size=(50, 10))
    res = fit_many(X, Y, list("abc"), [f"T{j}" for j in range(10)])
    _assert_matches(res, _statsmodels(X, Y))


def test_hard_targets_against_40_digit_reference():
    """Where statsmodels itself loses digits (mean 1e3 x noise, design scales 1e-2..1e3), the engine
    keeps ~1e-10 against a 40-digit mpmath solution of the normal equations."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    rng = np.random.default_rng(3)
    X = _design(rng, 40, 3, decades=5.0, offset=3.0)
    Y = 1e3 + X @ (rng.normal(size=(3, 3)) / np.logspace(-2, 3, 3)[:, None]) * 0.01 + 0.01 * rng.normal(size=(40, 3))
    res = fit_many(X, Y, list("abc"), ["T0", "T1", "T2"])
    A = mp.matrix([[1.0, *map(float, row)] for row in X])
    AtA_inv = mp.inverse(A.T * A)
    for j in range(3):
        y = mp.matrix([float(v) for v in Y[:, j]])
        beta = AtA_inv * (A.T * y)
        resid = y - A * beta
        s2 = sum(r**2 for r in resid) / 36
        se = [mp.sqrt(AtA_inv[i, i] * s2) for i in range(4)]
        np.testing.assert_allclose(res.coef[j], [float(b) for b in beta], rtol=1e-10)
        np.testing.assert_allclose(res.std_err[j], [float(s) for s in se], rtol=1e-10)


# --------------------------------------------------------------------------- p-values
@pytest.mark.parametrize("df", [1, 2, 5, 30, 73, 449, 1e5])
def test_t_pvalues_match_scipy(df):
    rng = np.random.default_rng(int(df))
    t = np.concatenate([
        rng.standard_t(df, size=20_000), rng.uniform(-60, 60, size=5000), np.exp(rng.uniform(-20, 25, 3000)),
        [0.0, -0.0, 1e-300, 2.0**32, 1e300, np.inf, -np.inf, np.nan],
    ])
    want = 2.0 * special.stdtr(df, -np.abs(t))
    # scipy's stdtr for df = 1 loses digits at |t| < 1e-4 (p = 1 - 2.6e-9 comes out as 1.0; checked
    # against mpmath): there 1e-8, elsewhere 1e-10
    rtol = np.where((df == 1) & (np.abs(t) < 1e-4), 1e-8, 1e-10)
    for got in (t_pvalues(t, df), t_pvalues(t, df, batched.t_table(df))):
        assert got.shape == t.shape
        ok = (np.abs(got - want) <= rtol * np.abs(want)) | (np.isnan(got) & np.isnan(want))
        assert ok.all(), (t[~ok], got[~ok], want[~ok])
    np.testing.assert_array_equal(t_pvalues(t, df, None), want)  # no table: scipy itself
    small = t_pvalues(t[:10].reshape(2, 5), df)  # few values: scipy itself
    np.testing.assert_array_equal(small, want[:10].reshape(2, 5))


@pytest.mark.parametrize("df_model", [1, 2, 6, 50, 51, 128, 130])
def test_f_pvalues_match_scipy(df_model):
    """Even df_model up to 128: the finite sum; otherwise (and below 1e-250) scipy's fdtrc itself."""
    rng = np.random.default_rng(df_model)
    for df_resid in (1, 3, 30, 73, 449, 5000):
        f = np.concatenate([rng.f(df_model, df_resid, size=2000), np.exp(rng.uniform(-20, 14, size=2000)),
                            [0.0, 1e300, np.inf, np.nan]])
        got = f_pvalues(f, df_model, df_resid)
        want = special.fdtrc(df_model, df_resid, f)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=0, equal_nan=True)
        np.testing.assert_allclose(f_pvalues(f.reshape(4, -1), df_model, df_resid), want.reshape(4, -1),
                                   rtol=1e-11, atol=0, equal_nan=True)
    assert np.isnan(f_pvalues(np.ones(3), 0, 10)).all()


def test_t_table_covers_what_is_asked_with_the_same_intervals_and_is_cached():
    """A table for |t| up to 10 has the first 4 octaves (1 + t < 16) of the full one, bit for bit."""
    full, small = batched.t_table(449), batched.t_table(449, 10.0)
    K = batched._TABLE_PER_OCTAVE
    assert small.shape == (batched._TABLE_DEGREE + 1, 4 * K + 1)
    assert full.shape[1] > small.shape[1]  # (up to where p falls below 1e-300: 7 octaves for df = 449)
    np.testing.assert_array_equal(small[:, :-1], full[:, : 4 * K])
    assert np.isnan(small[:, -1]).all() and np.isnan(full[:, -1]).all()  # beyond the table: scipy
    assert batched.t_table(449.0, 12.0) is small and not small.flags.writeable
    t = np.linspace(-40.0, 40.0, 5001)
    inside = np.abs(t) < 15.0  # beyond, the small table leaves the values to scipy
    got, want = t_pvalues(t, 449, small), t_pvalues(t, 449, full)
    np.testing.assert_array_equal(got[inside], want[inside])
    np.testing.assert_array_equal(got[~inside], 2.0 * special.stdtr(449, -np.abs(t[~inside])))


def test_table_evaluation_is_the_plain_horner_loop():
    """The 32-byte gathers and the rescaled coefficients give the values of the straightforward evaluation."""
    table = batched.t_table(30)
    K = batched._TABLE_PER_OCTAVE
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_t(30, 30_000), np.exp(rng.uniform(-30, 23, 5000)), [0.0, np.nan, np.inf]])
    got = np.empty_like(x)
    batched._eval_table(table, x, got)
    bits = (np.abs(x) + 1.0).view(np.uint64)
    k = (bits >> np.uint64(batched._TABLE_SHIFT)) - np.uint64(1023 * K)
    u = ((bits & np.uint64((1 << batched._TABLE_SHIFT) - 1)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    s = u * (2.0 * K) - (2.0 * K + 1.0)
    c = np.take(table, k.view(np.int64), axis=1, mode="clip")
    want = c[-1] * s + c[-2]
    for j in range(table.shape[0] - 3, -1, -1):
        want = want * s + c[j]
    np.testing.assert_array_equal(got, np.exp(want))
    assert np.isnan(got[-2:]).all()


def test_nested_many_equals_statsmodels_compare_f_test():
    """The batched nested F-test of each gene set (its genes and their product terms removed) for every target
    equals statsmodels' compare_f_test of the full and reduced OLS fits; a set none of whose genes is in the
    design has no test; a constant target has NaN statistics."""
    import statsmodels.api as sm

    from gexpred.batched import nested_many

    rng = np.random.default_rng(7)
    n, m = 40, 6
    X = rng.normal(size=(n, 4))
    X = np.column_stack([X, X[:, 0] * X[:, 2]])
    terms = ["gA", "gB", "gC", "gD", "gA:gC"]
    Y = X[:, :3] @ rng.normal(size=(3, m)) + 0.5 * X[:, [4]] + rng.normal(size=(n, m))
    Y[:, 5] = 3.0
    targets = [f"t{i}" for i in range(m)]
    sets = {"AB": ["gA", "gB"], "D": ["gD"], "none": ["gZ"]}
    out = nested_many(X, Y, terms, targets, sets).set_index(["target", "gene_set"])
    assert len(out) == m * 3
    for i in range(m - 1):
        full = sm.OLS(Y[:, i], sm.add_constant(X)).fit()
        for name, keep in (("AB", [2, 3]), ("D", [0, 1, 2, 4])):
            red = sm.OLS(Y[:, i], sm.add_constant(X[:, keep])).fit()
            f, p, df = full.compare_f_test(red)
            row = out.loc[(targets[i], name)]
            np.testing.assert_allclose([row["f_stat"], row["p_value"]], [f, p], rtol=1e-9)
            assert row["df_num"] == df and row["df_den"] == full.df_resid
    assert out.loc[("t0", "AB"), "terms"] == "gA gB gA:gC"
    assert out.xs("none", level="gene_set")["f_stat"].isna().all()
    assert out.loc[("t5", "AB"), ["f_stat", "p_value"]].isna().all()


def test_fit_measured_fits_each_target_on_its_measured_samples():
    """Targets measured on different samples (missing values filled in upstream): each fitted on its own samples,
    equal to statsmodels there (coefficients, fit statistics, the nested F-test of a gene set); the tables in the
    targets' order; a predictor constant on one group's samples dropped for that group only (0 in the prediction
    matrix); a group with fewer samples than the design needs reported, not fitted; with nothing missing, the same
    tables as one fit_many."""
    import pandas as pd

    from gexpred.batched import fit_measured, nested_many

    rng = np.random.default_rng(21)
    n = 50
    X = rng.normal(size=(n, 3))
    X[:10, 2] = 0.7  # gC constant on samples 0-9
    terms, targets = ["gA", "gB", "gC"], ["t0", "t1", "t2", "t3", "t4"]
    Y = X @ rng.normal(size=(3, 5)) + rng.normal(size=(n, 5))
    measured = np.ones((n, 5), dtype=bool)
    measured[[3, 17, 40], 1] = False
    measured[[3, 17, 40], 3] = False  # t1 and t3: one group
    measured[10:, 4] = False  # t4 measured on samples 0-9 only, where gC is constant: 10 samples for 3 terms
    measured[:6, 2] = False
    sets = {"AB": ["gA", "gB"]}
    res = fit_measured(X, Y, measured, terms, targets, gene_sets=sets)
    assert res.groups == 4 and list(res.fit["target"]) == targets
    assert list(res.coefficients["target"]) == [t for t in targets for _ in range(3 if t == "t4" else 4)]
    coefs = res.coefficients.set_index(["target", "term"])
    fits = res.fit.set_index("target")
    nested = res.nested.set_index(["target", "gene_set"])
    for j, t in enumerate(targets[:4]):
        rows = measured[:, j]
        ref = sm.OLS(Y[rows, j], sm.add_constant(X[rows])).fit()
        np.testing.assert_allclose(coefs.loc[t].loc[["const", *terms], "coef"], ref.params, rtol=1e-9)
        np.testing.assert_allclose(coefs.loc[t].loc[["const", *terms], "std_err"], ref.bse, rtol=1e-9)
        assert fits.loc[t, "n"] == rows.sum() and fits.loc[t, "df_resid"] == ref.df_resid
        np.testing.assert_allclose(fits.loc[t, "r2"], ref.rsquared, rtol=1e-9)
        f, p, _ = ref.compare_f_test(sm.OLS(Y[rows, j], sm.add_constant(X[rows][:, [2]])).fit())
        np.testing.assert_allclose(nested.loc[(t, "AB"), ["f_stat", "p_value"]].astype(float), [f, p], rtol=1e-9)
        np.testing.assert_allclose(res.coef[j], ref.params, rtol=1e-9)
    assert fits.loc["t4", "status"] == "ok" and fits.loc["t4", "n"] == 10
    ref4 = sm.OLS(Y[:10, 4], sm.add_constant(X[:10, :2])).fit()  # gC dropped: constant on t4's samples
    assert "gC" in res.dropped_terms and "gC" not in set(coefs.loc["t4"].index)
    np.testing.assert_allclose(res.coef[4], [*ref4.params, 0.0], rtol=1e-9)
    few = np.ones((n, 2), dtype=bool)
    few[4:, 1] = False  # 4 samples for 3 predictors + intercept
    small = fit_measured(X, Y[:, :2], few, terms, ["a", "b"], gene_sets=sets)
    assert list(small.fit["status"]) == ["ok", "too_few_measured"] and np.isnan(small.coef[1]).all()
    assert small.fit.set_index("target").loc["b", "n"] == 4
    assert small.nested.set_index("target").loc["b", ["f_stat", "p_value"]].isna().all()
    assert small.nested.set_index("target").loc["b", "terms"] == "gA gB"
    whole = fit_measured(X, Y, np.ones((n, 5), dtype=bool), terms, targets, gene_sets=sets)
    one = fit_many(X, Y, terms, targets, on_rank_deficient="drop")
    assert whole.groups == 1
    pd.testing.assert_frame_equal(whole.coefficients, one.coefficients())
    pd.testing.assert_frame_equal(whole.fit, one.fit())
    pd.testing.assert_frame_equal(whole.nested, nested_many(X, Y, terms, targets, sets, full=one))


# --------------------------------------------------------------------------- heteroskedasticity-consistent covariances
def _robust_reference(X: np.ndarray, Y: np.ndarray, cov_type: str) -> dict[str, np.ndarray]:
    """Every statistic of ``sm.OLS(y, [1, X]).fit(cov_type=cov_type, use_t=True)`` per column of ``Y``."""
    A = np.column_stack([np.ones(X.shape[0]), X])
    rows: dict[str, list] = {key: [] for key in [*COEF_STATS, *FIT_STATS, "df_model", "df_resid", "n"]}
    for y in Y.T:
        r = sm.OLS(y, A).fit(cov_type=cov_type, use_t=True)
        ci = np.asarray(r.conf_int(alpha=0.05))
        for key, value in zip(rows, [r.params, r.bse, r.tvalues, r.pvalues, ci[:, 0], ci[:, 1], r.rsquared,
                                     r.rsquared_adj, r.fvalue, r.f_pvalue, r.df_model, r.df_resid, r.nobs]):
            rows[key].append(value)
    return {key: np.asarray(v, dtype=np.float64) for key, v in rows.items()}


def _heteroskedastic(rng: np.random.Generator, X: np.ndarray, m: int) -> np.ndarray:
    """The fixture's kind of targets (scales 1e-3 .. 1e3, R² ~0 .. 0.9999, offsets) with noise whose spread grows
    with the first predictor, and two with a large mean (the guard's refit from centred values)."""
    Y = _targets(rng, X, m)
    Y += (Y - Y.mean(axis=0)) * np.abs((X[:, [0]] - X[:, 0].mean()) / X[:, 0].std())
    Y[:, :2] += 3e3 * Y[:, :2].std(axis=0)  # statsmodels' pseudo-inverse loses digits beyond that
    return Y


@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_robust_covariance_matches_statsmodels(cov_type):
    """fit_many(cov_type=HC0..HC3): every target's coefficients, sandwich standard errors, t, p-values, intervals,
    R² and the overall robust Wald F (statsmodels' fvalue of a robust fit) and its p-value equal statsmodels'
    fit(cov_type=..., use_t=True), in chunks, through the guard's exact refit too; a constant target keeps its
    status (standard errors 0, NaN tests) and a target with a NaN value is non_finite."""
    rng = np.random.default_rng(11)
    X = _design(rng, 70, 5)
    Y = _heteroskedastic(rng, X, 24)
    Y[:, 22] = 4.0
    Y[5, 23] = np.nan
    terms, targets = [f"g{i}" for i in range(5)], [f"T{j}" for j in range(24)]
    res = fit_many(X, Y, terms, targets, chunk_size=7, cov_type=cov_type)
    ok = np.arange(22)
    _assert_matches(res, _robust_reference(X, Y[:, ok], cov_type), ok)
    assert res.n_refit >= 2 and (res.status[ok] == "ok").all() and res.cov_type == cov_type
    assert res.status[22] == "constant_target" and res.status[23] == "non_finite"
    assert (res.std_err[22] == 0).all() and np.isnan(res.p_value[22]).all() and np.isnan(res.f_stat[22])
    assert np.isnan(res.std_err[23]).all() and np.isnan(res.f_pvalue[23])
    classical = fit_many(X, Y[:, ok], terms, [targets[j] for j in ok])
    assert not np.allclose(res.std_err[ok], classical.std_err, rtol=0.01)  # the covariance did change
    assert res.leverage_one == []


def test_robust_overall_f_beyond_the_limit_is_nan_not_classical(monkeypatch):
    """Above ROBUST_WALD_MAX_TERMS slopes the robust overall F is not computed: NaN, never the classical F; the
    standard errors are still the sandwich's; a gene set within the limit is still tested."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 4))
    Y = _heteroskedastic(rng, X, 6)
    monkeypatch.setattr(batched, "ROBUST_WALD_MAX_TERMS", 3)
    res = fit_many(X, Y, list("abcd"), list("uvwxyz"), cov_type="HC3", wald_sets={"ab": ["a", "b"]})
    ref = _robust_reference(X, Y, "HC3")
    assert np.isnan(res.f_stat).all() and np.isnan(res.f_pvalue).all()
    np.testing.assert_allclose(res.std_err, ref["std_err"], rtol=RTOL)
    A = sm.add_constant(X)
    for j in range(6):
        w = sm.OLS(Y[:, j], A).fit(cov_type="HC3", use_t=True).wald_test(np.eye(5)[[1, 2]], use_f=True, scalar=True)
        np.testing.assert_allclose(res.wald["ab"][j], w.statistic, rtol=RTOL)
    assert res.wald_df == {"ab": 2}


@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_robust_gene_set_tests_and_measured_groups_match_statsmodels(cov_type):
    """nested_many and fit_measured with a robust covariance: each gene set's test is statsmodels' Wald F-test of
    the set's coefficients (its genes and their product terms) with that covariance, and each target fitted on its
    measured samples (groups: the leverages, residuals and HC1's n / df of its own samples) has statsmodels'
    robust statistics there; a set without a term in the design has no test."""
    import pandas as pd

    from gexpred.batched import fit_measured, nested_many

    rng = np.random.default_rng(23)
    n, m = 60, 5
    X = rng.normal(size=(n, 4))
    X = np.column_stack([X, X[:, 0] * X[:, 2]])
    terms = ["gA", "gB", "gC", "gD", "gA:gC"]
    Y = _heteroskedastic(rng, X, m)
    targets = [f"t{i}" for i in range(m)]
    sets = {"AB": ["gA", "gB"], "D": ["gD"], "none": ["gZ"]}
    tested = {"AB": [1, 2, 5], "D": [4]}  # rows of [const, *terms]
    measured = np.ones((n, m), dtype=bool)
    measured[[2, 9, 30, 41], 1] = False
    measured[[2, 9, 30, 41], 3] = False
    measured[:8, 4] = False
    res = fit_measured(X, Y, measured, terms, targets, gene_sets=sets, cov_type=cov_type)
    assert res.groups == 3
    coefs = res.coefficients.set_index(["target", "term"])
    fits = res.fit.set_index("target")
    nested = res.nested.set_index(["target", "gene_set"])
    for j, t in enumerate(targets):
        rows = measured[:, j]
        ref = sm.OLS(Y[rows, j], sm.add_constant(X[rows])).fit(cov_type=cov_type, use_t=True)
        ci = np.asarray(ref.conf_int())
        got = coefs.loc[t].loc[["const", *terms]]
        for key, want in (("std_err", ref.bse), ("p_value", ref.pvalues), ("ci_low", ci[:, 0]),
                          ("ci_high", ci[:, 1])):
            np.testing.assert_allclose(got[key], want, rtol=RTOL, err_msg=f"{t} {key}")
        np.testing.assert_allclose(fits.loc[t, ["f_stat", "f_pvalue"]].astype(float), [ref.fvalue, ref.f_pvalue],
                                   rtol=RTOL)
        for name, idx in tested.items():
            w = ref.wald_test(np.eye(6)[idx], use_f=True, scalar=True)
            row = nested.loc[(t, name)]
            np.testing.assert_allclose([row["f_stat"], row["p_value"]], [w.statistic, w.pvalue], rtol=RTOL)
            assert row["df_num"] == len(idx) and row["df_den"] == ref.df_resid
    assert nested.loc[("t0", "AB"), "terms"] == "gA gB gA:gC"
    assert nested.xs("none", level="gene_set")[["f_stat", "p_value"]].isna().all().all()
    one = fit_many(X, Y, terms, targets, cov_type=cov_type)
    pd.testing.assert_frame_equal(nested_many(X, Y, terms, targets, sets, full=one, cov_type=cov_type),
                                  nested_many(X, Y, terms, targets, sets, cov_type=cov_type))


def test_hc2_hc3_report_samples_of_leverage_one():
    """A sample fitted exactly by its own column (the one sample of a level) makes HC2 and HC3 0 / 0: fit_many and
    fit_measured report it (fit_measured as a row of X) for HC2/HC3, not for HC0/HC1."""
    from gexpred.batched import fit_measured

    rng = np.random.default_rng(3)
    n = 30
    X = np.column_stack([rng.normal(size=n), np.zeros(n)])
    X[7, 1] = 1.0
    Y = rng.normal(size=(n, 3))
    h = sm.OLS(Y[:, 0], sm.add_constant(X)).fit().get_influence().hat_matrix_diag
    assert np.isclose(h[7], 1.0)
    for cov, want in (("HC0", []), ("HC1", []), ("HC2", [7]), ("HC3", [7])):
        assert fit_many(X, Y, ["g", "level"], list("abc"), cov_type=cov).leverage_one == want
    measured = np.ones((n, 3), dtype=bool)
    measured[:3, 2] = False  # this group's sample 7 is its row 4
    assert fit_measured(X, Y, measured, ["g", "level"], list("abc"), cov_type="HC3").leverage_one == [7]


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("cov_type", ["HC2", "HC3"])
def test_leverage_one_sample_leaves_the_other_terms_exact(cov_type, seed):
    """A sample of leverage 1 (the one sample of a level) under HC2/HC3: its 0 / 0 term must not spread. The terms it
    does not determine keep statsmodels' standard errors, p-values and intervals, and a gene set of them its Wald test;
    the level's coefficient, the overall F and a set holding it are NaN (an audit: every standard error of every target
    was inf and every p-value 1 whenever the leverage rounded to 1: seed 2; with seed 0 it did not)."""
    rng = np.random.default_rng(seed)
    n = 30
    level = np.zeros(n)
    level[7] = 1.0
    X = np.column_stack([rng.normal(size=(n, 2)) * 3.0, level, rng.normal(size=n)])
    Y = rng.normal(size=(n, 4)) * (1.0 + np.abs(X[:, [0]])) + 5.0
    res = fit_many(X, Y, ["a", "b", "level", "d"], list("wxyz"), cov_type=cov_type,
                   wald_sets={"ab": ["a", "b"], "with_level": ["level", "d"]})
    assert res.leverage_one == [7]
    keep = [0, 1, 2, 4]  # const, a, b, d
    for j in range(4):
        ref = sm.OLS(Y[:, j], sm.add_constant(X)).fit(cov_type=cov_type, use_t=True)
        ci = np.asarray(ref.conf_int())
        for key, want in (("std_err", ref.bse), ("p_value", ref.pvalues), ("ci_low", ci[:, 0]),
                          ("ci_high", ci[:, 1])):
            np.testing.assert_allclose(getattr(res, key)[j, keep], want[keep], rtol=RTOL, err_msg=key)
        w = ref.wald_test(np.eye(5)[[1, 2]], use_f=True, scalar=True)
        np.testing.assert_allclose(res.wald["ab"][j], w.statistic, rtol=RTOL)
    for arr in (res.std_err[:, 3], res.t[:, 3], res.p_value[:, 3], res.ci_low[:, 3], res.f_stat, res.f_pvalue,
                res.wald["with_level"]):
        assert np.isnan(arr).all()
