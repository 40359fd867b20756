"""Tests of gexpred._kernels, the compiled loops of the batched OLS engine.

Each kernel is compared with the numpy expressions it replaces (written out here,
independently of the kernel) on data with the awkward values the engine meets: zero
and negative residual sums of squares, NaN and infinite statistics, values beyond the
p-value table. Where the kernel promises numpy's floats, equality is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import gexpred.batched as batched
from gexpred import _kernels

EPS = float(np.finfo(np.float64).eps)


def _plain_log_p(table: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The table's log p at |t| with numpy: interval and local coordinate from the bits of 1 + |t|."""
    bits = (np.abs(t) + 1.0).view(np.uint64)
    k = (bits >> np.uint64(batched._TABLE_SHIFT)) - np.uint64(1023 * batched._TABLE_PER_OCTAVE)
    k = np.minimum(k, np.uint64(table.shape[0] - 1)).astype(np.int64)
    u = ((bits & np.uint64((1 << batched._TABLE_SHIFT) - 1)) | np.uint64(0x3FF0000000000000)).view(np.float64)
    u = u - (1.0 + 0.5 / batched._TABLE_PER_OCTAVE)
    c = table[k]
    return ((c[..., 3] * u + c[..., 2]) * u + c[..., 1]) * u + c[..., 0]


def test_constants_agree_with_the_engine():
    assert _kernels.TABLE_SHIFT == batched._TABLE_SHIFT
    assert 1 << (52 - _kernels.TABLE_SHIFT) == batched._TABLE_PER_OCTAVE


@pytest.fixture(scope="module")
def chunk():
    """terms x targets statistics with t from ~0 to beyond the table, NaN/inf targets and zero scales."""
    rng = np.random.default_rng(12)
    k, c = 9, 700
    B = rng.normal(size=(k, c)) * np.exp(rng.uniform(-8, 6, size=(k, c)))
    sqrt_v = np.exp(rng.uniform(-3, 1, size=k))
    s = np.exp(rng.uniform(-4, 2, size=c))
    s[5] = 0.0  # a constant target: t = +-inf or NaN
    s[6] = np.nan  # a non-finite target
    B[:, 7] = np.nan
    B[2, 8] = 0.0
    return B, sqrt_v, s


@pytest.mark.parametrize("layout", ["C", "strided"])
def test_coefficient_stats_are_numpys_floats(chunk, layout):
    B, sqrt_v, s = chunk
    table = batched._cached_t_table(30.0, batched._TABLE_FIT_OCTAVES)[1]
    q = float(special.stdtrit(30, 0.975))
    if layout == "strided":  # a chunk's views into fit_many's output block
        big = np.full((5, B.shape[0], B.shape[1] + 11), -1.0)
        out = [a[:, 3 : 3 + B.shape[1]] for a in big]
    else:
        out = list(np.full((5, *B.shape), -1.0))
    n_nan = _kernels.coefficient_stats(B, sqrt_v, s, q, table, *out)
    se, t, log_p, lo, hi = out
    with np.errstate(all="ignore"):
        want_se = sqrt_v[:, None] * s
        want_t = B / want_se
        half = want_se * q
        np.testing.assert_array_equal(se, want_se)
        np.testing.assert_array_equal(t, want_t)
        np.testing.assert_array_equal(lo, B - half)
        np.testing.assert_array_equal(hi, B + half)
        want_log_p = _plain_log_p(table, want_t)
    np.testing.assert_array_equal(log_p, want_log_p)
    assert n_nan == np.isnan(want_log_p).sum() > 0
    # where the table answers, it is the t distribution's
    ok = ~np.isnan(log_p)
    np.testing.assert_allclose(np.exp(log_p[ok]), 2 * special.stdtr(30, -np.abs(want_t[ok])), rtol=1e-11)
    # and it leaves to scipy only values beyond it (|t| >= 255), NaN/inf and p-values below ~1e-300
    rest = np.abs(want_t[~ok])
    assert ((rest >= 255) | np.isnan(rest) | (2 * special.stdtr(30, -rest) < 1e-295)).all()


def test_robust_coefficient_stats_are_numpys_floats(chunk):
    """The robust variant (each coefficient's own sandwich variance, scaled; written over the variances in place)
    gives the floats of the numpy expressions it replaces."""
    B, sqrt_v, s = chunk
    table = batched._cached_t_table(30.0, batched._TABLE_FIT_OCTAVES)[1]
    q = float(special.stdtrit(30, 0.975))
    var = (sqrt_v[:, None] * s) ** 2 * np.linspace(0.5, 2.0, B.shape[1])
    se, t, log_p, lo, hi = np.full((5, *B.shape), -1.0)
    se[...] = var
    n_nan = _kernels.robust_coefficient_stats(B, se, 1.25, q, table, se, t, log_p, lo, hi)
    with np.errstate(all="ignore"):
        want_se = np.sqrt(1.25 * var)
        want_t = B / want_se
        np.testing.assert_array_equal(se, want_se)
        np.testing.assert_array_equal(t, want_t)
        np.testing.assert_array_equal(lo, B - want_se * q)
        np.testing.assert_array_equal(hi, B + want_se * q)
        want_log_p = _plain_log_p(table, want_t)
    np.testing.assert_array_equal(log_p, want_log_p)
    assert n_nan == np.isnan(want_log_p).sum()


def test_no_table_leaves_every_value_to_scipy(chunk):
    B, sqrt_v, s = chunk
    out = list(np.empty((5, *B.shape)))
    assert _kernels.coefficient_stats(B, sqrt_v, s, 1.96, batched._NO_TABLE, *out) == B.size
    assert np.isnan(out[2]).all()


def test_table_log_p_matches_the_plain_evaluation():
    rng = np.random.default_rng(3)
    table = batched._cached_t_table(7.0, 5)[1]
    x = np.concatenate([rng.standard_t(7, 5000), np.exp(rng.uniform(-30, 30, 2000)), [0.0, -0.0, np.nan, np.inf]])
    out = np.empty_like(x)
    n_nan = _kernels.table_log_p(table, x, out)
    want = _plain_log_p(table, x)
    np.testing.assert_array_equal(out, want)
    assert n_nan == np.isnan(want).sum()


def test_sums_of_squares():
    rng = np.random.default_rng(4)
    Y = rng.normal(size=(300, 40)) * np.logspace(-3, 3, 40) + 7.0
    got = _kernels.sums_of_squares(Y)
    np.testing.assert_array_equal(got, np.einsum("ij,ij->j", Y, Y))  # the same order of summation
    exact = np.array([sum(float(v) ** 2 for v in col) for col in Y.T])
    np.testing.assert_allclose(got, exact, rtol=300 * EPS)
    np.testing.assert_array_equal(_kernels.sums_of_squares(Y[:, ::3]), got[::3])  # strided views
    Y[5, 2] = np.nan
    assert np.isnan(_kernels.sums_of_squares(Y)[2])


def test_residual_sums_and_guard_match_the_numpy_formulas():
    rng = np.random.default_rng(5)
    k, c, n = 6, 400, 50
    df_resid, df_model = n - k, k - 1
    G = rng.normal(size=(k, c)) * np.exp(rng.uniform(-2, 3, size=c))
    S = (G**2).sum(axis=0) * (1.0 + np.exp(rng.uniform(-30, 2, size=c)))  # R^2 from ~0.1 to 1 - 1e-13
    S[3] = (G[:, 3] ** 2).sum()  # RSS ~ 0
    S[4] = 0.5 * (G[:, 4] ** 2).sum()  # RSS < 0
    S[5] = np.nan
    RSS, ESS, TSS, err = _kernels.residual_sums(G, S, n, df_resid)
    with np.errstate(all="ignore"):
        ess = np.einsum("ij,ij->j", G[1:], G[1:])
        rss = S - G[0] * G[0] - ess
        F = (ess / df_model) / (rss / df_resid)
        t2 = df_resid * ((S - rss) / np.maximum(rss, 0.0))
        amplify = np.maximum(1.0 + 0.5 * (df_resid + 1) * t2 / (df_resid + t2),
                             1.0 + 0.6 * np.minimum(df_model * F, df_model + df_resid))
        want_err = (2.0 * (np.sqrt(n) + k) * EPS) * (S / np.maximum(rss, 0.0)) * amplify
    np.testing.assert_array_equal(ESS, ess)  # the same order of summation as numpy's
    np.testing.assert_array_equal(RSS, rss)
    np.testing.assert_array_equal(TSS, ESS + RSS)
    # the guard decides alike: which targets are refitted, and the bound itself where it is finite
    refit = ~(err <= batched._GUARD_TOL)
    np.testing.assert_array_equal(refit, ~(want_err <= batched._GUARD_TOL))
    assert refit[[3, 4, 5]].all() and not refit.all()
    fin = np.isfinite(want_err)
    np.testing.assert_array_equal(err[fin], want_err[fin])


def test_residual_sums_without_predictors():
    rng = np.random.default_rng(6)
    G = rng.normal(size=(1, 50))
    S = G[0] ** 2 + rng.uniform(1, 2, size=50)
    RSS, ESS, TSS, err = _kernels.residual_sums(G, S, 30, 29)
    np.testing.assert_array_equal(ESS, 0.0)
    np.testing.assert_array_equal(RSS, S - G[0] ** 2)
    t2 = 29 * (S - RSS) / RSS
    np.testing.assert_allclose(err, 2 * (np.sqrt(30) + 1) * EPS * S / RSS * (1 + 15 * t2 / (29 + t2)), rtol=1e-14)


def test_fit_stats():
    rng = np.random.default_rng(8)
    c, n, df_resid, df_model = 300, 60, 52, 7
    RSS, ESS = rng.uniform(0.1, 5, size=c), rng.uniform(0, 5, size=c)
    RSS[0], ESS[0] = 0.0, 0.0  # a constant target
    TSS = RSS + ESS
    r2, adj, F = np.empty((3, c))
    with np.errstate(all="ignore"):
        s = _kernels.fit_stats(RSS, ESS, TSS, n, df_resid, df_model, r2, adj, F)
        want_r2 = 1.0 - RSS / TSS
        np.testing.assert_array_equal(r2, want_r2)
        np.testing.assert_array_equal(adj, 1.0 - (n - 1) / df_resid * (1.0 - want_r2))
        np.testing.assert_array_equal(F, (ESS / df_model) / (RSS / df_resid))
    np.testing.assert_array_equal(s, np.sqrt(RSS / df_resid))
    _kernels.fit_stats(RSS, ESS, TSS, n, df_resid, 0, r2, adj, F)
    assert np.isnan(F).all()


@pytest.mark.parametrize("degree", [0, 1, 7, 40])
def test_horner(degree):
    rng = np.random.default_rng(degree)
    coef = rng.uniform(0.5, 2.0, size=degree + 1)
    y = rng.uniform(0, 1, size=257)
    np.testing.assert_allclose(_kernels.horner(coef, y), np.polynomial.polynomial.polyval(y, coef), rtol=1e-14)


def test_kernels_work_where_no_cache_can_be_written(tmp_path):
    """A read-only install and home (numba finds no cache locator): compiled in the process, same numbers."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from gexpred.batched import fit_many\n"
        "from gexpred import _kernels\n"
        "assert _kernels.sums_of_squares._cache.__class__.__name__ == 'NullCache'\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(40, 3)); Y = rng.normal(size=(40, 30000))\n"
        "r = fit_many(X, Y, ['a', 'b', 'c'], [f't{j}' for j in range(30000)])\n"
        "np.save(r'" + str(tmp_path / "p.npy") + "', r.p_value)\n"
    )
    env = {**__import__("os").environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}  # never applies
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 30000))
    want = batched.fit_many(X, Y, ["a", "b", "c"], [f"t{j}" for j in range(30000)]).p_value
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want)
