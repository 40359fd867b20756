"""Compiled loops of the genome-wide OLS engine (:mod:`gexpred.batched`) and of the penalised
regression's coordinate descent (:func:`coordinate_descent_path`, used by :mod:`gexpred.search`), with numba.

Each function here does in one pass over its arrays what takes numpy a dozen
(every numpy call reads and writes whole arrays, and the ``targets x terms``
statistics of a chunk do not fit in the CPU's cache). The arithmetic is written out
in the order of the numpy expressions it replaces and compiled without
``fastmath``, so the statistics are the floats those expressions give, bit for bit
(tests/test_kernels.py holds them to equality; :func:`horner` and the sum of squares
of a single column round differently from numpy's blocked and pairwise sums).

Functions are compiled on first use and cached on disk (next to this file, or in
numba's user cache directory where that is read-only, or in ``NUMBA_CACHE_DIR``), so
a later process loads them in ~0.1 s instead of compiling them again (~1 s). Where
no cache directory can be written at all, they are compiled in every process.

The p-value tables are those of :func:`gexpred.batched.t_table`, packed for
evaluation (:func:`gexpred.batched._pack`): one row of 4 coefficients per
interval, the last row NaN. A value's interval and local coordinate are read from
the bits of ``1 + |t|`` (its exponent and top 10 mantissa bits; the remaining
mantissa bits), then ``log p`` is the interval's cubic, by Horner's rule. The
caller takes ``exp`` (numpy's, vectorised) and computes the values left NaN (beyond
the table, or where its checks failed) with scipy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

TABLE_SHIFT = 42
"""52 mantissa bits - log2(1024 intervals per octave): ``bits >> TABLE_SHIFT`` is the interval of ``1 + |t|``."""
_PER_OCTAVE = 1 << (52 - TABLE_SHIFT)
_SHIFT = np.uint64(TABLE_SHIFT)
_OFFSET = np.uint64(1023 * _PER_OCTAVE)  # the interval number of 1.0
_MASK = np.uint64((1 << TABLE_SHIFT) - 1)
_ONE = np.uint64(0x3FF0000000000000)  # the bits of 1.0
_MID = 1.0 + 0.5 / _PER_OCTAVE  # the middle of [1, 1 + 1/K), where the local coordinate is 0

_EPS = float(np.finfo(np.float64).eps)
_OPTIONS = dict(nogil=True, error_model="numpy", boundscheck=False)
_INLINE = {**_OPTIONS, "inline": "always"}


def _compiled(f: Callable) -> Callable:
    """``numba.njit`` with an on-disk cache, or without one where numba finds no writable cache directory."""
    try:
        return njit(cache=True, **_OPTIONS)(f)
    except RuntimeError as err:  # numba: "cannot cache function ...: no locator available for file ..."
        logging.getLogger(__name__).info("%s; %s is compiled in every process", err, f.__name__)
        return njit(**_OPTIONS)(f)


def _bitcast(src: types.Type, dst: types.Type, doc: str) -> Callable:
    """A numba intrinsic reinterpreting a ``src`` value's bits as ``dst`` (a register move, no memory)."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return dst(src), codegen

    cast.__doc__ = doc
    return cast


_bits = _bitcast(types.float64, types.uint64, "The IEEE-754 bits of a float64, as a uint64.")
_float = _bitcast(types.uint64, types.float64, "The float64 whose IEEE-754 bits are the uint64 given.")


@njit(**_INLINE)
def _locate(t, last):
    """The table interval of ``|t|`` (``last``, the NaN row, beyond the table and for NaN/inf) and the local
    coordinate in it, from the bits of ``1 + |t|``."""
    bits = _bits(abs(t) + 1.0)
    k = (bits >> _SHIFT) - _OFFSET
    if k > last:  # beyond the table; NaN and inf too (their exponent is the largest)
        k = last
    return k, _float((bits & _MASK) | _ONE) - _MID


@njit(**_INLINE)
def _cubic(table, k, u):
    """The cubic of interval ``k`` at local coordinate ``u``, by Horner's rule."""
    y = table[k, 3] * u
    y += table[k, 2]
    y *= u
    y += table[k, 1]
    y *= u
    y += table[k, 0]
    return y


@_compiled
def table_log_p(table: np.ndarray, x: np.ndarray, out: np.ndarray) -> int:
    """``out[i] = log p(|x[i]|)`` from a packed table; returns how many are NaN (to compute exactly).

    ``table``: intervals x 4 coefficients, last row NaN. ``x``, ``out``: 1-D, same size.
    """
    last = np.uint64(table.shape[0] - 1)
    nan = 0
    for i in range(x.shape[0]):
        k, u = _locate(x[i], last)
        y = _cubic(table, k, u)
        out[i] = y
        nan += y != y
    return nan


@_compiled
def coefficient_stats(coef: np.ndarray, sqrt_v: np.ndarray, s: np.ndarray, q: float, table: np.ndarray,
                      std_err: np.ndarray, t: np.ndarray, log_p: np.ndarray,
                      ci_low: np.ndarray, ci_high: np.ndarray) -> int:
    """Standard errors, t statistics, ``log`` p-values and confidence intervals of a chunk, in one pass.

    For term ``i`` and target ``j`` (arrays terms x targets):
    ``std_err = sqrt_v[i] * s[j]`` (``s``: the residual standard deviation),
    ``t = coef / std_err``, ``log_p`` from the table at ``|t|`` (NaN where it must be
    computed exactly), ``ci_low, ci_high = coef -/+ q * std_err``. Returns the
    number of NaN ``log_p``.

    A term's row is done in two loops: the first (SIMD-vectorised) computes the
    statistics and each value's table interval and local coordinate into two small
    buffers that stay in the L1 cache; the second (a table look-up per value, which
    the compiler does not vectorise) evaluates the cubics. ~20 % faster than one loop.
    """
    k, c = coef.shape
    last = np.uint64(table.shape[0] - 1)
    interval = np.empty(c, np.uint64)
    local = np.empty(c)
    nan = 0
    for i in range(k):
        vi, se_i = sqrt_v[i], std_err[i]
        for j in range(c):
            se_i[j] = vi * s[j]
        nan += _row_stats(coef[i], se_i, q, table, last, t[i], log_p[i], ci_low[i], ci_high[i], interval, local)
    return nan


@njit(**_INLINE)
def _row_stats(b_i, se_i, q, table, last, t_i, lp_i, lo_i, hi_i, interval, local):
    """One term's row of :func:`coefficient_stats` from its standard errors ``se_i`` (written already): ``t``,
    the interval ends and ``log p``, in the two loops described there; returns the number of NaN ``log p``."""
    c = b_i.shape[0]
    for j in range(c):
        se = se_i[j]
        b = b_i[j]
        tt = b / se
        t_i[j] = tt
        half = se * q
        lo_i[j] = b - half
        hi_i[j] = b + half
        interval[j], local[j] = _locate(tt, last)
    nan = 0
    for j in range(c):
        y = _cubic(table, interval[j], local[j])
        lp_i[j] = y
        nan += y != y
    return nan


@_compiled
def robust_coefficient_stats(coef: np.ndarray, variance: np.ndarray, scale: float, q: float, table: np.ndarray,
                             std_err: np.ndarray, t: np.ndarray, log_p: np.ndarray,
                             ci_low: np.ndarray, ci_high: np.ndarray) -> int:
    """:func:`coefficient_stats` from each coefficient's own (sandwich) variance, in one pass.

    For term ``i`` and target ``j`` (arrays terms x targets): ``std_err = sqrt(scale * variance)``,
    ``t = coef / std_err``, ``log_p`` from the table at ``|t|`` (NaN where it must be computed
    exactly), ``ci_low, ci_high = coef -/+ q * std_err``. ``variance`` may be ``std_err`` itself
    (each value is read before it is written). Returns the number of NaN ``log_p``.
    """
    k, c = coef.shape
    last = np.uint64(table.shape[0] - 1)
    interval = np.empty(c, np.uint64)
    local = np.empty(c)
    nan = 0
    for i in range(k):
        v_i, se_i = variance[i], std_err[i]
        for j in range(c):
            se_i[j] = np.sqrt(scale * v_i[j])
        nan += _row_stats(coef[i], se_i, q, table, last, t[i], log_p[i], ci_low[i], ci_high[i], interval, local)
    return nan


@_compiled
def residual_sums(G: np.ndarray, S: np.ndarray, n: int,
                  df_resid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sums of squares of a chunk from ``G = Q'Y`` (terms x targets, ``const`` first) and ``S = y'y``.

    Returns ``(RSS, ESS, TSS, err)`` per target: ``ESS = |G[1:]|^2``, ``RSS = S - G[0]^2 - ESS``,
    ``TSS = ESS + RSS`` and the guard's bound on the relative error that cancellation in ``RSS`` passes on
    to the target's statistics and p-values (see :func:`gexpred.batched._fit_chunk`;
    NaN where ``RSS <= 0`` or the values are not finite).
    """
    k, c = G.shape
    df_model = k - 1
    ESS = np.zeros(c)
    for i in range(1, k):
        g = G[i]
        for j in range(c):
            ESS[j] += g[j] * g[j]
    RSS = np.empty(c)
    TSS = np.empty(c)
    err = np.empty(c)
    rounding = 2.0 * (np.sqrt(n) + k) * _EPS
    for j in range(c):
        s, ess = S[j], ESS[j]
        rss = s - G[0, j] * G[0, j]
        rss -= ess
        RSS[j] = rss
        TSS[j] = ess + rss
        pos = max(rss, 0.0)
        t2 = df_resid * ((s - rss) / pos)
        a_t = 1.0 + 0.5 * (df_resid + 1) * t2 / (df_resid + t2)
        if df_model > 0:
            f = (ess / df_model) / (rss / df_resid)
            a_f = 1.0 + 0.6 * min(df_model * f, df_model + df_resid)
            amplify = max(a_t, a_f) if a_t == a_t and a_f == a_f else np.nan
        else:
            amplify = a_t
        err[j] = rounding * (s / pos) * amplify
    return RSS, ESS, TSS, err


@_compiled
def fit_stats(RSS: np.ndarray, ESS: np.ndarray, TSS: np.ndarray, n: int, df_resid: int, df_model: int,
              r2: np.ndarray, adj_r2: np.ndarray, f_stat: np.ndarray) -> np.ndarray:
    """Per target: ``r2 = 1 - RSS / TSS``, adjusted R², the F statistic (NaN without predictors), into the
    given arrays; returns the residual standard deviations ``sqrt(RSS / df_resid)``."""
    c = RSS.shape[0]
    ratio = (n - 1) / df_resid
    s = np.empty(c)
    for j in range(c):
        rss = RSS[j]
        r = 1.0 - rss / TSS[j]
        r2[j] = r
        adj_r2[j] = 1.0 - ratio * (1.0 - r)
        f_stat[j] = (ESS[j] / df_model) / (rss / df_resid) if df_model > 0 else np.nan
        s[j] = np.sqrt(rss / df_resid)
    return s


@_compiled
def horner(coef: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum_j coef[j] * y**j`` for every value of the 1-D ``y``, by Horner's rule (vectorised over ``y``)."""
    r = np.full(y.shape[0], coef[-1])
    for j in range(coef.shape[0] - 2, -1, -1):
        c = coef[j]
        for i in range(y.shape[0]):
            r[i] = r[i] * y[i] + c
    return r


@_compiled
def sums_of_squares(Y: np.ndarray) -> np.ndarray:
    """``(Y * Y).sum(axis=0)`` of a samples x targets array, row by row (no temporary of ``Y``'s size).

    The sum runs over the samples in order, as ``np.einsum("ij,ij->j", Y, Y)`` does
    for a C-contiguous ``Y`` of more than one column (same floats; numpy sums a
    single contiguous column pairwise instead).
    """
    n, c = Y.shape
    out = np.zeros(c)
    for i in range(n):
        for j in range(c):
            out[j] += Y[i, j] * Y[i, j]
    return out


# --------------------------------------------------------------------------- penalised regression
@_compiled
def coordinate_descent_path(G: np.ndarray, c: np.ndarray, alphas: np.ndarray, l1_wt: float, tol: float,
                            max_sweeps: int) -> tuple[np.ndarray, np.ndarray]:
    """Elastic-net coefficients along a path of penalties, by cyclic coordinate descent on the Gram matrix.

    Minimises ``b' G b / 2 - c' b + alpha (l1_wt |b|_1 + (1 - l1_wt) |b|^2 / 2)`` for each ``alpha`` in
    turn, starting from the previous solution (the covariance updates of Friedman, Hastie & Tibshirani
    2010): with ``G = X'X / n`` and ``c = X'y / n`` of standardised ``X`` and centred ``y`` this is
    ``RSS / (2 n)`` plus the penalty, statsmodels' and scikit-learn's objective. A penalty's sweeps stop
    when no coefficient moved by more than ``tol``. A coordinate with ``G[j, j] = 0`` (a constant
    column) stays 0.

    Returns
    -------
    coef : (len(alphas), p) array
    sweeps : (len(alphas),) array
        Sweeps each penalty took (``max_sweeps`` where it did not converge).
    """
    p = c.shape[0]
    A = alphas.shape[0]
    out = np.zeros((A, p))
    sweeps = np.zeros(A, dtype=np.int64)
    b = np.zeros(p)
    grad = c.copy()  # c - G b: the negative gradient of the smooth part
    for a in range(A):
        lam1 = alphas[a] * l1_wt
        lam2 = alphas[a] * (1.0 - l1_wt)
        for sweep in range(max_sweeps):
            moved = 0.0
            for j in range(p):
                denom = G[j, j] + lam2
                if denom <= 0.0:
                    continue
                z = grad[j] + G[j, j] * b[j]
                if z > lam1:
                    new = (z - lam1) / denom
                elif z < -lam1:
                    new = (z + lam1) / denom
                else:
                    new = 0.0
                d = new - b[j]
                if d != 0.0:
                    for k in range(p):
                        grad[k] -= G[k, j] * d
                    b[j] = new
                    if abs(d) > moved:
                        moved = abs(d)
            sweeps[a] = sweep + 1
            if moved < tol:
                break
        out[a] = b
    return out, sweeps
