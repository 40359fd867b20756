"""Genome-wide OLS: every target that shares a design, fitted at once.

``y_j = b0_j + X @ b_j + e_j`` for many targets ``y_j`` (columns of ``Y``) on one
design ``X``, with the statistics of :mod:`gexpred.ols` (statsmodels): coefficients,
standard errors, t statistics, two-sided p-values, confidence intervals, R², adjusted
R², the overall F statistic and its p-value, in float64. They agree with statsmodels
fitted one target at a time to ~1e-10 relative (the tests hold every value to 1e-8;
where they differ more, statsmodels is the one off, see tests/test_batched.py).

How (the approach of Matrix eQTL and tensorQTL):

* **One factorisation of the design.** ``A = [1, X]`` is factorised once,
  ``A D = Q R`` with ``D`` scaling the columns to unit norm, by Cholesky QR done
  twice (the first Cholesky factor from ``D A'A D``, the second from the Gram
  matrix of the first ``Q``; as accurate as Householder QR for designs with
  condition number up to 1e5 after scaling, and much cheaper than forming
  Householder's ``Q``). Worse-conditioned designs use Householder QR
  (:func:`numpy.linalg.qr`), whose ``R`` diagonal also reveals rank deficiency.
  Cholesky factors and triangular inverses are LAPACK's ``dpotrf`` / ``dtrtri``
  (:func:`_cholesky`, :func:`_inv_triangular`).
* **Matrix products for all targets.** ``G = Q'Y`` is one matrix product;
  coefficients are ``B = R^-1 G``; residual sums of squares are
  ``RSS = y'y - |G|^2`` (no residual matrix is formed) and the explained sum of
  squares is ``ESS = |G[1:]|^2``. The subtraction loses accuracy when ``RSS`` is
  tiny next to ``y'y`` (a target with a large mean, or one fitted almost
  perfectly), so each target gets an error estimate (measured rounding of the
  products, times how strongly its t and F p-values amplify an error in ``RSS``);
  targets whose estimate exceeds 1e-9 are refitted from centred values (which
  removes the cancellation a large mean causes; those whose estimate still
  exceeds 1e-9 from explicit residuals), a chunk's worth at a time (``n_refit``
  counts them).
* **Interpolated p-values.** statsmodels computes ``2 * t.sf(|t|, df)`` and
  ``F.sf`` with ``scipy.special.stdtr`` / ``fdtrc``, ~200 ns a value. For many
  t statistics the log tail probability is interpolated instead (:func:`t_table`):
  cubic polynomials on 1024 intervals per octave of ``1 + |t|``, built for this
  ``df`` from ``stdtr`` at Chebyshev nodes and checked against ``stdtr`` at every
  interval's ends and middle; an interval that misses by more than 1e-12 in
  ``log p``, every p-value below 1e-300 and every ``|t|`` beyond the table fall
  back to ``stdtr`` itself. :func:`fit_many` uses one table per ``df`` for
  ``|t|`` up to 255 (~10 ms to build, then cached), whatever the data, so that the
  p-values do not depend on the chunks. The F p-values (one per target) come from
  a finite sum or ``fdtrc`` (:func:`f_pvalues`).
* **One pass over the statistics.** After the two products, the per-target sums
  of squares and the guard, then the standard errors, t statistics, interval ends
  and table look-ups of all ``k x c`` coefficients of a chunk are compiled loops
  (:mod:`gexpred._kernels`, numba) that read and write each array once; numpy
  needed a dozen passes over arrays too large for the cache, each a few
  microseconds of call overhead too. Only ``exp`` of the log p-values stays
  numpy's (vectorised).
* **Bounded memory.** Targets are processed in chunks of ``chunk_size`` columns;
  the temporaries of a chunk are ``(p + 1) x chunk_size`` arrays and, for the
  targets refitted exactly, ``n x chunk_size`` ones.
* **Heteroskedasticity-consistent covariances** (``cov_type`` HC0-HC3, statsmodels'
  ``fit(cov_type=..., use_t=True)``). With ``H = (A'A)^-1 A' = R^-1 Q'`` shared by the
  targets, the HC0 variances of every coefficient of every target of a chunk are one
  product, ``(H * H) @ (E * E)`` (``E``: the chunk's residuals ``Y - Q Q'Y``, n x c,
  from centred values for the targets the guard refits); HC1 scales them by
  ``n / df_resid``, HC2 and HC3 divide ``e_i^2`` by ``1 - h_i`` and its square (the
  leverages ``h_i = |Q[i]|^2``, shared too). The overall F becomes the robust Wald
  F-test of all slopes and a gene set's test the robust Wald F-test of its
  coefficients: each needs a target's own ``s x s`` covariance of the ``s``
  coefficients tested, ``n s^2`` operations a target (batched products over blocks of
  targets of at most 32 MB), so they are computed for ``s`` up to
  :data:`ROBUST_WALD_MAX_TERMS` and are NaN beyond, never the classical statistic.
  A chunk holds one more ``n x chunk_size`` array (``E``) and ``H`` twice (``k x n``).

Where the time goes (benchmarks/bench_ols.py: n = 500, p = 50, 2,000 targets, 2
cores, right after another product as in the benchmark): ``Q'Y`` ~0.78 ms (both
cores, as long as the benchmark's bare ``A'Y``); then, on one core, the
factorisation ~0.3 ms (four small products), ``y'y`` ~0.25 ms (a pass over the
8 MB of ``Y``), the coefficients' statistics and table look-ups ~0.27 ms,
``R^-1 G`` ~0.1 ms, the F p-values ~0.07 ms, ``exp`` ~0.06 ms and the rest
~0.2 ms: about 2.6-2.7x the bare product (it was 3.2-3.9x with numpy alone).
The guard needs no pass over the ``k x m`` statistics (it bounds every ``t^2``
of a target by ``df (y'y - RSS) / RSS``). Splitting the work over two threads
(Python threads on nogil loops, numba's own parallel loops) was slower here: right
after a product, OpenBLAS's idle worker keeps the second core busy, and handing
work to another thread costs more than the ~0.1 ms pieces gain.

Targets that cannot be fitted are reported in :meth:`BatchedResult.fit`'s
``status`` rather than raised: ``constant_target`` (no variance: R², F and the t
tests are undefined) and ``non_finite`` (NaN or infinite values). A design that
cannot be fitted (rank deficient, too few samples, NaN) raises
:class:`~gexpred.errors.ModelError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from .errors import ModelError, preview
from .ols import COEF_COLUMNS, COV_TYPES, NESTED_COLUMNS, determined_terms, sandwich_weights, set_terms

LONG_COEF_COLUMNS = ["target", *COEF_COLUMNS]
"""Columns of :meth:`BatchedResult.coefficients`."""
FIT_COLUMNS = ["target", "n", "df_model", "df_resid", "r2", "adj_r2", "f_stat", "f_pvalue", "status"]
"""Columns of :meth:`BatchedResult.fit`."""
LONG_NESTED_COLUMNS = ["target", *NESTED_COLUMNS]
"""Columns of :func:`nested_many`."""
STATUSES = ("ok", "constant_target", "non_finite", "too_few_measured")
"""Values of the ``status`` column."""

CHUNK_BYTES = 256 * 2**20
"""Default budget for a chunk's ``n x chunk_size`` float64 temporaries."""
CONSTANT_RTOL = 1e-12
"""A target whose standard deviation is at most this times its largest absolute value is constant."""
ROBUST_WALD_MAX_TERMS = 64
"""Heteroskedasticity-consistent Wald F-tests (the overall F of a robust fit, a gene set's test) are computed for at
most this many coefficients; beyond, their statistics and p-values are NaN (see :func:`fit_many`)."""

_EPS = float(np.finfo(np.float64).eps)
_GUARD_TOL = 1e-9  # refit a target exactly when the estimated relative error of its statistics exceeds this
_CHOLQR_MAX_COND = 1e5  # Cholesky QR twice is as accurate as Householder QR up to this condition number

# p-value tables: see _tail_probability
_WALD_BLOCK_BYTES = 32 * 2**20  # _robust_wald: targets at a time so that their terms x samples products fit in this
_TABLE_SHIFT = 42  # 52 mantissa bits - log2(1024): the exponent and top 10 mantissa bits index 1024 intervals/octave
_TABLE_PER_OCTAVE = 1 << (52 - _TABLE_SHIFT)
_TABLE_DEGREE = 3  # four coefficients: one 32-byte gather a value
_TABLE_MAX_OCTAVES = 32  # x up to 2**32 - 1; beyond, exact
_TABLE_FIT_OCTAVES = 8  # fit_many: |t| up to 255 from the table (one table per df, whatever the data); beyond, exact
_TABLE_LOG_MIN = -690.0  # p-values below ~1e-300 (and denormals) come from scipy itself
_TABLE_CHECK_TOL = 1e-12  # largest error allowed in log p at an interval's ends and middle
_F_MAX_TERMS = 64  # f_pvalues: the finite sum for even df_model up to 128
_TABLE_MIN_SIZE = 1024  # t_pvalues: fewer values than this (or than twice the table's evaluations): scipy
_TABLE_FIT_MIN_SIZE = 65536  # fit_many: fewer coefficients than this (~13 ms of scipy, what a table costs): scipy
_NO_TABLE = np.full((1, _TABLE_DEGREE + 1), np.nan)  # a table without intervals: every p-value from scipy
_NO_TABLE.flags.writeable = False


# --------------------------------------------------------------------------- chunks
def iter_chunks(m: int, chunk_size: int) -> list[tuple[int, int]]:
    """Split ``m`` targets into consecutive ``[start, stop)`` ranges of ``chunk_size``.

    >>> iter_chunks(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    m = int(m)
    chunk_size = int(chunk_size)
    if m < 0:
        raise ValueError(f"iter_chunks: m must be >= 0, got {m}")
    if chunk_size < 1:
        raise ValueError(f"iter_chunks: chunk_size must be >= 1, got {chunk_size}")
    return [(a, min(a + chunk_size, m)) for a in range(0, m, chunk_size)]


def default_chunk_size(n: int, budget_bytes: int = CHUNK_BYTES) -> int:
    """Targets per chunk so that three ``n x chunk`` float64 arrays fit in ``budget_bytes``."""
    return max(1, int(budget_bytes) // (3 * 8 * max(int(n), 1)))


# --------------------------------------------------------------------------- p-values
def t_pvalues(t: np.ndarray, df: float, table: np.ndarray | None | str = "auto") -> np.ndarray:
    """Two-sided p-values of t statistics, ``2 * scipy.stats.t.sf(|t|, df)``.

    Parameters
    ----------
    t
        t statistics, any shape; NaN stays NaN.
    df
        Residual degrees of freedom.
    table
        ``"auto"``: interpolate (see :func:`_tail_probability`) when there are
        enough values to repay building the table, else scipy. ``None``: scipy for
        every value. An array from :func:`t_table` for this ``df``: interpolate
        with it (so that results do not depend on how the values are split).

    Returns
    -------
    numpy.ndarray
        Same shape as ``t``; within ~1e-11 relative of scipy's values (scipy's
        own for p < 1e-300 and where the table fails its checks).
    """
    t = np.asarray(t, dtype=np.float64)
    df = float(df)
    x = np.abs(t).ravel()

    def sf(v: np.ndarray) -> np.ndarray:
        return 2.0 * special.stdtr(df, -v)

    if isinstance(table, str):
        table = _auto_table(x, sf)
    return _tail_probability(x, sf, table).reshape(t.shape)


def _exact_where_nan(out: np.ndarray, x: np.ndarray, sf: Callable[[np.ndarray], np.ndarray], n_nan: int) -> None:
    """``out[i] = sf(x[i])`` wherever the table left NaN (``n_nan`` of them, as the evaluation counted), any shape."""
    if n_nan:
        redo = np.nonzero(np.isnan(out))
        out[redo] = sf(x[redo])


def t_table(df: float, top: float = np.inf) -> np.ndarray:
    """Interpolation table of ``log(2 t.sf(x, df))`` for :func:`t_pvalues`, for ``x`` up to ``top``.

    It covers the octaves of ``1 + x`` up to the one that holds ``1 + top``, at
    most ``_TABLE_MAX_OCTAVES`` (x up to ~4e9); values beyond the table are
    computed by scipy. An interval's polynomial does not depend on ``top``.
    Tables are cached (they depend only on ``df`` and the octaves), so the
    array returned is read-only.
    """
    return _cached_t_table(float(df), _octaves(top))[0]


@functools.lru_cache(maxsize=32)
def _cached_t_table(df: float, octaves: int) -> tuple[np.ndarray, np.ndarray]:
    """The table of :func:`t_table` and its packed form (:func:`_pack`) for :func:`fit_many`, both read-only."""
    table = _build_table(lambda v: 2.0 * special.stdtr(df, -v), octaves)
    packed = _pack(table)
    table.flags.writeable = False
    packed.flags.writeable = False
    return table, packed


def f_pvalues(f: np.ndarray, df_model: float, df_resid: float) -> np.ndarray:
    """Upper-tail p-values of F statistics, ``scipy.stats.f.sf(f, df_model, df_resid)``.

    NaN for ``df_model == 0`` (as statsmodels) and for NaN statistics. For an even
    ``df_model`` up to ``2 * _F_MAX_TERMS`` the exact finite sum
    ``I_x(a, b) = x^a sum_{j<b} (a)_j / j! (1 - x)^j`` (``a = df_resid / 2``,
    ``b = df_model / 2``, ``x = df_resid / (df_resid + df_model f)``) is used: its
    terms are all positive, so it is accurate to ~(b + |log p|) eps, and it is a
    compiled Horner loop and a few vectorised operations instead of ~200 ns a value for
    ``fdtrc``. Otherwise,
    and for p-values below 1e-250, ``scipy.special.fdtrc`` itself.
    """
    f = np.asarray(f, dtype=np.float64)
    if df_model <= 0:
        return np.full(f.shape, np.nan)
    d1, d2 = float(df_model), float(df_resid)
    b = int(d1) // 2
    with np.errstate(all="ignore"):
        if d1 != 2 * b or b > _F_MAX_TERMS or f.size < 4 * b:
            return special.fdtrc(d1, d2, f)
        a = d2 / 2.0
        flat = f.ravel()
        ratio = (d1 / d2) * flat
        y = ratio / (1.0 + ratio)  # 1 - x, without cancellation
        coef = _f_sum_coefficients(a, b)
        # the polynomial sum_j coef[j] y^j by Horner's rule, compiled (the terms are positive, so the order of
        # the sums does not matter for accuracy)
        from . import _kernels

        r = _kernels.horner(coef, y)
        p = np.exp(np.log(r) - a * np.log1p(ratio))
        # below 1e-250, what statsmodels reports: fdtrc's own values (which lose accuracy below ~1e-280
        # and are 0 below ~1e-293 for some degrees of freedom); and NaN/inf statistics
        redo = np.flatnonzero(~(p >= 1e-250))
        if redo.size:
            p[redo] = special.fdtrc(d1, d2, flat[redo])
    return p.reshape(f.shape)


@functools.lru_cache(maxsize=32)
def _f_sum_coefficients(a: float, b: int) -> np.ndarray:
    """``(a)_j / j!`` for ``j < b``: the coefficients of :func:`f_pvalues`' finite sum (read-only, cached)."""
    coef = np.cumprod(np.append(1.0, (a + np.arange(b - 1)) / np.arange(1, b)))
    coef.flags.writeable = False
    return coef


def _octaves(top: float) -> int:
    """Octaves of ``1 + x`` that a table needs for ``x`` up to ``top`` (1 for NaN)."""
    if not top >= 0.0:
        return 1
    return min(int(np.log2(1.0 + min(float(top), 2.0**_TABLE_MAX_OCTAVES))) + 1, _TABLE_MAX_OCTAVES)


def _auto_table(x: np.ndarray, sf: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """A table covering ``x`` if building it costs less than calling ``sf`` on every value, else None."""
    if x.size < _TABLE_MIN_SIZE:
        return None
    with np.errstate(invalid="ignore"):
        top = np.fmax.reduce(x)
    if not top >= 0.0:  # all NaN
        return None
    octaves = _octaves(top)
    if x.size < 2 * octaves * _TABLE_PER_OCTAVE * (_TABLE_DEGREE + 3):
        return None
    return _build_table(sf, octaves)


def _tail_probability(x: np.ndarray, sf: Callable[[np.ndarray], np.ndarray], table: np.ndarray | None) -> np.ndarray:
    """``sf(x)`` for a decreasing tail probability ``sf``, interpolated with ``table`` where that is safe.

    ``x`` is 1-D and nonnegative (or NaN). ``log sf`` is interpolated by a
    cubic polynomial on each of 1024 intervals per octave of ``1 + x``, fitted at
    Chebyshev nodes from ``sf`` itself (:func:`_build_table`). The interval of a
    value is read from the bits of ``1 + x`` (exponent and top 10 mantissa bits),
    its local coordinate from the remaining mantissa bits, so evaluation is a
    gather and a Horner loop. Intervals whose polynomial misses ``log sf`` by more
    than ``_TABLE_CHECK_TOL`` at its ends or middle, intervals reaching below
    ``exp(_TABLE_LOG_MIN)``, and values beyond the table are computed by ``sf``
    directly; so is everything when ``table`` is None.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if table is None:
        return sf(x)
    out = np.empty_like(x)
    _exact_where_nan(out, x, sf, _eval_table(table, x, out))
    return out


def _build_table(sf: Callable[[np.ndarray], np.ndarray], octaves: int) -> np.ndarray:
    """Monomial coefficients (degree + 1, intervals + 1) of ``log sf`` per interval; NaN = use ``sf``."""
    K, D = _TABLE_PER_OCTAVE, _TABLE_DEGREE
    with np.errstate(divide="ignore", invalid="ignore"):  # no interval in an octave that starts below the floor
        start_ok = np.log(sf(2.0 ** np.arange(octaves) - 1.0)) >= _TABLE_LOG_MIN
    octaves = max(1, int(np.argmin(start_ok)) if not start_ok.all() else octaves)
    n_int = octaves * K
    width = np.repeat(2.0 ** np.arange(octaves), K) / K  # interval width in v = 1 + x
    lo = np.repeat(2.0 ** np.arange(octaves), K) + np.tile(np.arange(K), octaves) * width
    table = np.full((D + 1, n_int + 1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        g_end = np.log(sf(np.append(lo, 2.0**octaves) - 1.0))
        # log sf decreases: build the intervals before it drops below _TABLE_LOG_MIN
        usable = g_end[1:] >= _TABLE_LOG_MIN
        n_build = int(np.argmin(usable)) if not usable.all() else n_int
        if n_build == 0:
            return table
        s = np.cos(np.pi * (np.arange(D + 1) + 0.5) / (D + 1))  # Chebyshev nodes on [-1, 1]
        v = lo[:n_build, None] + width[:n_build, None] * (s + 1.0) / 2.0
        g = np.log(sf(v.ravel() - 1.0)).reshape(v.shape)
        g_mid = np.log(sf(lo[:n_build] + width[:n_build] / 2.0 - 1.0))
        # the same operations for every interval, so a polynomial does not depend on how many are built
        inv = np.linalg.inv(np.vander(s, D + 1, increasing=True))
        coef = sum(inv[:, j, None] * g[:, j] for j in range(D + 1))  # (D + 1, n_build)
        signs = (-1.0) ** np.arange(D + 1)
        err = np.maximum.reduce([
            np.abs(signs @ coef - g_end[:n_build]),  # s = -1
            np.abs(coef.sum(axis=0) - g_end[1 : n_build + 1]),  # s = +1
            np.abs(coef[0] - g_mid),  # s = 0
        ])
    good = (err <= _TABLE_CHECK_TOL) & np.isfinite(g).all(axis=1)
    table[:, :n_build] = np.where(good, coef, np.nan)
    return table


def _eval_table(table: np.ndarray, x: np.ndarray, out: np.ndarray) -> int:
    """Evaluate the table at ``|x|`` into ``out`` (1-D, not overlapping ``x``; NaN where ``sf`` must be used).

    One compiled pass over the packed table (:func:`_pack`,
    :func:`gexpred._kernels.table_log_p`: the interval and local coordinate from the bits
    of ``1 + |x|``, the interval's 4 coefficients, Horner's rule) and numpy's vectorised
    ``exp``. Returns how many values are NaN.
    """
    from . import _kernels

    n_nan = _kernels.table_log_p(_pack(table), x, out)
    np.exp(out, out=out)
    return n_nan


def _pack(table: np.ndarray) -> np.ndarray:
    """The table's intervals as rows of the 4 coefficients of the polynomial in ``u - mid`` (C-contiguous).

    ``u`` in ``[1, 1 + 1/K)`` is read from the mantissa of ``1 + |x|``, ``mid`` is
    the middle of that range, and ``s = 2 K (u - mid)`` is the table's local
    coordinate: scaling the coefficients by powers of 2 is exact, so this is bit for
    bit the polynomial in ``s``.
    """
    D, K = table.shape[0] - 1, _TABLE_PER_OCTAVE
    if D != 3:  # pragma: no cover - the packing below is for 4 coefficients
        raise ValueError(f"_pack: tables of degree 3 only, got {D}")
    return np.ascontiguousarray((table * (2.0 * K) ** np.arange(D + 1)[:, None]).T)


# --------------------------------------------------------------------------- design
@dataclass(frozen=True)
class _Factor:
    """``A[:, kept] = Q R``, with what the fits need of it."""

    Qt: np.ndarray
    """``Q'`` (k x n), C-contiguous for the products ``Q'Y``."""
    Rinv: np.ndarray
    """``R^-1`` (k x k) for the unscaled columns: coefficients are ``Rinv @ Q'y``."""
    sqrt_v: np.ndarray
    """``sqrt(diag((A'A)^-1))``: standard errors per unit residual standard deviation."""
    kept: list[int]
    """Columns of ``A`` kept (0 = const)."""
    dropped: list[int]
    """Columns of ``A`` dropped as linear combinations of the others."""


@dataclass(frozen=True)
class _Sandwich:
    """What a heteroskedasticity-consistent covariance needs of a design (:func:`_sandwich_design`)."""

    H: np.ndarray
    """``(A'A)^-1 A'`` (k x n): coefficients are ``H @ y``."""
    HH: np.ndarray
    """``H * H`` (k x n, C-contiguous): the coefficients' variances are ``scale * HH @ (w * E * E)``."""
    w: np.ndarray
    """Per sample, the weight of its squared residual: 1 (HC0, HC1), ``1 / (1 - h)`` (HC2), ``1 / (1 - h)^2``
    (HC3), ``h`` the sample's leverage."""
    scale: float
    """``n / df_resid`` for HC1, else 1."""
    leverage_one: np.ndarray
    """Samples (row positions) whose leverage exceeds :data:`gexpred.ols.LEVERAGE_ONE`, for HC2 and HC3 (else empty)."""
    undefined: np.ndarray
    """Per coefficient (k, bool): determined by a sample of ``leverage_one`` (HC2, HC3), whose 0 / 0 term makes
    its variance undefined: NaN standard error, and NaN Wald tests that include it."""


def _sandwich_design(fac: _Factor, n: int, df_resid: int, cov_type: str) -> _Sandwich:
    """The sandwich estimator ``cov_type`` (HC0-HC3) for the design factorised in ``fac``.

    With ``H = (A'A)^-1 A' = R^-1 Q'``, coefficient ``b = H y`` of a target with residuals
    ``e`` has the HC0 variance ``sum_i H[j, i]^2 e_i^2``: for every target of a chunk at once,
    ``(H * H) @ (E * E)``, one matrix product. HC1 multiplies it by ``n / df_resid``; HC2 and
    HC3 weight ``e_i^2`` by ``1 / (1 - h_i)`` and ``1 / (1 - h_i)^2``, the leverages
    ``h_i = |Q[i]|^2`` shared by every target of the design (statsmodels' ``cov_HC0`` ... ``cov_HC3``).

    A sample of leverage 1 (:data:`gexpred.ols.LEVERAGE_ONE`; the one sample of a covariate level) is fitted exactly by
    the coefficients ``c = H[:, i]`` (``A c`` is the sample's unit vector): its residual is 0, and its HC2/HC3
    term 0 / 0. Its weight is set to 0, which leaves the variances of the coefficients it does not determine
    (``c_j = 0``; rounding: ``|c_j|`` at most ``sqrt(eps)`` times the norm of ``H[j]``) exact, as HC0 gives
    them; those it determines (:func:`gexpred.ols.determined_terms`) are ``undefined`` (NaN), rather than an
    arbitrary value or, through ``inf * 0``, NaN or infinite variances of every coefficient. Per target,
    :func:`gexpred.ols.fit_ols` does the same.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        H = fac.Rinv @ fac.Qt
    w, one = sandwich_weights(np.einsum("ij,ij->j", fac.Qt, fac.Qt), cov_type)
    HH = np.ascontiguousarray(H * H)
    undefined = determined_terms(H, one)
    return _Sandwich(H=H, HH=HH, w=w, scale=n / df_resid if cov_type == "HC1" else 1.0, leverage_one=one,
                     undefined=undefined)


def _factor_design(A: np.ndarray, names: list[str], on_rank_deficient: str) -> _Factor:
    """Factorise the design ``A = [1, X]`` once (see the module docstring).

    Raises :class:`~gexpred.errors.ModelError` for NaN or infinite values and, with
    ``on_rank_deficient="error"``, for a rank deficient design.
    """
    n, k = A.shape
    gram = A.T @ A
    if not np.isfinite(gram).all():  # NaN/inf in A, or squares that overflow
        finite = np.isfinite(A).all(axis=0)
        if not finite.all():
            raise ModelError(
                f"The predictors {preview(np.asarray(names)[~finite])} have NaN or infinite values; "
                f"impute or remove them before fitting."
            )
    else:
        diag = np.diag(gram)
        if (diag > 0).all():
            fac = _cholqr2(A, gram, 1.0 / np.sqrt(diag))
            if fac is not None:
                return _finish(*fac, list(range(k)), [])
    # ill-conditioned or rank deficient: Householder QR of the scaled columns
    norms = np.sqrt(np.einsum("ij,ij->j", A, A))
    d = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 1.0)
    R = np.linalg.qr(A * d, mode="r")
    diag = np.abs(np.diag(R))
    tol = diag.max() * max(n, k) * _EPS
    dependent = [j for j in range(k) if not (diag[j] > tol and norms[j] > 0)]
    if dependent:
        bad = [names[j] for j in dependent]
        verb = "is a linear combination" if len(bad) == 1 else "are linear combinations"
        if on_rank_deficient != "drop" or 0 in dependent:
            raise ModelError(
                f"The design is rank deficient: {'term' if len(bad) == 1 else 'terms'} {preview(bad)} {verb} "
                f"of the terms before {'it' if len(bad) == 1 else 'them'} (a constant predictor is a multiple "
                f"of the intercept), so {'its' if len(bad) == 1 else 'their'} coefficients are not identifiable. "
                f"Remove {'it' if len(bad) == 1 else 'them'}, or fit with on_rank_deficient='drop'."
            )
    kept = [j for j in range(k) if j not in dependent]
    As = A[:, kept] * d[kept]
    Q, R = np.linalg.qr(As)
    Rinv = _inv_triangular(R, lower=False)
    return _finish(np.ascontiguousarray(Q.T), Rinv * d[kept][:, None], kept, dependent)


def _cholesky(M: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor by LAPACK ``dpotrf`` (a third of :func:`numpy.linalg.cholesky`'s time at 51 x 51)."""
    from scipy.linalg.lapack import dpotrf

    L, info = dpotrf(M, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"matrix not positive definite (dpotrf info {info})")
    return L


def _inv_triangular(T: np.ndarray, lower: bool) -> np.ndarray:
    """Inverse of a triangular matrix by LAPACK ``dtrtri``.

    ~5x faster than :func:`numpy.linalg.inv` (an LU solve) at 51 x 51: 12 against 60 µs, twice a
    factorisation. scipy's OpenBLAS is already loaded by :mod:`scipy.special`; at these sizes it
    runs on the calling thread, and the next product on numpy's OpenBLAS is not slowed (measured).
    """
    from scipy.linalg.lapack import dtrtri

    inv, info = dtrtri(T, lower=int(lower))
    if info != 0:
        raise np.linalg.LinAlgError(f"singular triangular matrix (dtrtri info {info})")
    return inv


def _cholqr2(A: np.ndarray, gram: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Cholesky QR twice of ``A D`` (``D = diag(d)``: unit-norm columns): ``(Q', D R^-1)``, or None if too
    ill-conditioned.

    ``gram = A'A``; the first factor comes from ``D A'A D = L L'`` (``R1 = L'``), so ``A D``
    itself is never formed: ``Q1' = (D R1^-1)' A'``. The products are numpy's, the
    Cholesky factors and triangular inverses LAPACK's (:func:`_cholesky`,
    :func:`_inv_triangular`).
    """
    try:
        R1inv_t = _inv_triangular(_cholesky(gram * d * d[:, None]), lower=True)  # L^-1 = (R1^-1)'
    except np.linalg.LinAlgError:
        return None
    cond = np.sqrt(A.shape[1]) * np.linalg.norm(R1inv_t)  # Frobenius norms; |R1|_F = |A D|_F = sqrt(k)
    if not cond <= _CHOLQR_MAX_COND:
        return None
    W = R1inv_t.T * d[:, None]  # D R1^-1
    Q1t = W.T @ A.T  # Q1' = (A D R1^-1)', C-contiguous
    try:
        R2inv_t = _inv_triangular(_cholesky(Q1t @ Q1t.T), lower=True)
    except np.linalg.LinAlgError:  # pragma: no cover - Q1 is orthonormal to ~cond^2 * eps
        return None
    return R2inv_t @ Q1t, W @ R2inv_t.T


def _finish(Qt: np.ndarray, Rinv: np.ndarray, kept: list[int], dropped: list[int]) -> _Factor:
    return _Factor(Qt=Qt, Rinv=Rinv, sqrt_v=np.sqrt(np.einsum("ij,ij->i", Rinv, Rinv)), kept=kept, dropped=dropped)


# --------------------------------------------------------------------------- result
@dataclass
class BatchedResult:
    """OLS fits of many targets on one design.

    ``coef``, ``std_err``, ``t``, ``p_value``, ``ci_low`` and ``ci_high`` are
    targets x terms arrays (rows in the order of ``targets``, columns in that of
    ``terms``); ``r2``, ``adj_r2``, ``f_stat``, ``f_pvalue`` and ``status`` have one
    value per target. A ``constant_target`` has ``coef`` = (its value, 0, ..., 0),
    ``std_err`` 0, intervals of width 0 and NaN t, p-values, R² and F; a
    ``non_finite`` target has NaN everywhere. With a robust ``cov_type`` the standard
    errors and everything from them are the sandwich's, and ``f_stat``/``f_pvalue`` the
    robust Wald F-test of all slopes (NaN for more than :data:`ROBUST_WALD_MAX_TERMS`).
    """

    targets: list[str]
    terms: list[str]
    """``const`` followed by the predictors kept, in design order."""
    n: int
    df_model: int
    df_resid: int
    alpha: float
    coef: np.ndarray
    std_err: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    r2: np.ndarray
    adj_r2: np.ndarray
    f_stat: np.ndarray
    f_pvalue: np.ndarray
    status: np.ndarray
    """Per target: one of :data:`STATUSES`."""
    dropped_terms: list[str] = field(default_factory=list)
    """Predictors dropped as linear combinations of the others (``on_rank_deficient='drop'``)."""
    n_refit: int = 0
    """Targets refitted from centred values (and, fitted almost perfectly, explicit residuals) for accuracy."""
    cov_type: str = "nonrobust"
    """The coefficients' covariance (:data:`gexpred.ols.COV_TYPES`)."""
    leverage_one: list[int] = field(default_factory=list)
    """HC2 and HC3: samples (row positions) of leverage 1, where the estimator is 0 / 0
    (:data:`gexpred.ols.LEVERAGE_ONE`): the coefficients such a sample determines (the coefficient of the level it is the only sample of) have NaN standard
    errors, tests and intervals for every target, and so have the Wald tests (overall F, gene sets) that include
    them; the other coefficients' are exact (:func:`_sandwich_design`)."""
    wald: dict[str, np.ndarray] = field(default_factory=dict)
    """``wald_sets`` of :func:`fit_many`: per set, the robust Wald F statistic of every target."""
    wald_df: dict[str, int] = field(default_factory=dict)
    """Per set of ``wald``, the coefficients tested (its terms that the fit kept)."""

    def coefficients(self) -> pd.DataFrame:
        """Long table ``target, term, coef, std_err, t, p_value, ci_low, ci_high``, targets in input order."""
        m, k = len(self.targets), len(self.terms)
        data: dict[str, np.ndarray] = {
            "target": np.repeat(np.asarray(self.targets, dtype=object), k),
            "term": np.tile(np.asarray(self.terms, dtype=object), m),
        }
        for name in COEF_COLUMNS[1:]:
            data[name] = np.asarray(getattr(self, name)).ravel()
        return pd.DataFrame(data, columns=LONG_COEF_COLUMNS)

    def fit(self) -> pd.DataFrame:
        """One row per target: ``target, n, df_model, df_resid, r2, adj_r2, f_stat, f_pvalue, status``."""
        m = len(self.targets)
        return pd.DataFrame(
            {
                "target": list(self.targets),
                "n": np.full(m, self.n),
                "df_model": np.full(m, self.df_model),
                "df_resid": np.full(m, self.df_resid),
                "r2": self.r2,
                "adj_r2": self.adj_r2,
                "f_stat": self.f_stat,
                "f_pvalue": self.f_pvalue,
                "status": np.asarray(self.status, dtype=object),
            },
            columns=FIT_COLUMNS,
        )


# --------------------------------------------------------------------------- fitting
def fit_many(
    X: np.ndarray,
    Y: np.ndarray,
    terms: Sequence[str],
    targets: Sequence[str],
    alpha: float = 0.05,
    chunk_size: int | None = None,
    on_rank_deficient: str = "error",
    cov_type: str = "nonrobust",
    wald_sets: dict[str, Sequence[str]] | None = None,
) -> BatchedResult:
    """Fit ``y ~ const + X`` by OLS for every column ``y`` of ``Y``.

    Parameters
    ----------
    X
        Samples x predictors, without an intercept column (``const`` is added first).
    Y
        Samples x targets.
    terms
        Predictor names, one per column of ``X``.
    targets
        Target names, one per column of ``Y``.
    alpha
        Confidence intervals are ``1 - alpha``.
    chunk_size
        Targets per chunk; default :func:`default_chunk_size` (a chunk's
        ``n x chunk_size`` temporaries stay under ~256 MB).
    on_rank_deficient
        ``"error"`` (default): raise if a predictor is a linear combination of the
        ones before it (or of the intercept). ``"drop"``: drop such predictors,
        list them in ``dropped_terms`` and fit the rest.
    cov_type
        The coefficients' covariance (:data:`gexpred.ols.COV_TYPES`): ``nonrobust`` (classical) or a
        heteroskedasticity-consistent sandwich estimator ``HC0``-``HC3``, as statsmodels'
        ``fit(cov_type=..., use_t=True)``: the standard errors, t-tests and intervals use it (t on the
        residual degrees of freedom; the variances of all targets of a chunk are one matrix product,
        :func:`_sandwich_design`), and the overall F becomes the Wald F-test of all slopes with it
        (statsmodels' ``fvalue`` of a robust fit), which needs each target's slopes x slopes covariance (about
        ``n p^2`` operations a target instead of ``n p``): it is computed for up to
        :data:`ROBUST_WALD_MAX_TERMS` slopes and is NaN (``f_stat``, ``f_pvalue``) for larger designs, never the
        classical F. R² and adjusted R² do not depend on it.
    wald_sets
        With a robust ``cov_type``: ``{name: [terms]}``, each set's robust Wald F-test (that its coefficients
        are all zero; statsmodels' ``wald_test(..., use_f=True)``) for every target, in ``wald`` and
        ``wald_df`` (terms the fit dropped are left out of the test; NaN beyond
        :data:`ROBUST_WALD_MAX_TERMS` coefficients).

    Returns
    -------
    BatchedResult

    Raises
    ------
    ModelError
        Fewer than ``p + 2`` samples, NaN or infinite predictor values, or a rank
        deficient design with ``on_rank_deficient="error"``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    terms = list(map(str, terms))
    targets = list(targets) if set(map(type, targets)) <= {str} else list(map(str, targets))
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"fit_many: X of shape {X.shape} and Y of shape {Y.shape} do not have the same samples")
    n, p = X.shape
    m = Y.shape[1]
    if len(terms) != p:
        raise ValueError(f"fit_many: {p} predictor columns but {len(terms)} terms")
    if len(targets) != m:
        raise ValueError(f"fit_many: {m} target columns but {len(targets)} targets")
    names = ["const", *terms]
    if len(set(names)) != len(names):
        raise ValueError(f"fit_many: term names must be unique and not 'const': {terms}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"fit_many: alpha must be in (0, 1), got {alpha}")
    if on_rank_deficient not in ("error", "drop"):
        raise ValueError(f"fit_many: on_rank_deficient must be 'error' or 'drop', got {on_rank_deficient!r}")
    if cov_type not in COV_TYPES:
        raise ValueError(f"fit_many: cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    if wald_sets and cov_type == "nonrobust":
        raise ValueError("fit_many: wald_sets are robust Wald tests; give a robust cov_type (nested_many tests sets "
                         "of a classical fit)")
    if chunk_size is None:
        chunk_size = default_chunk_size(n)
    elif int(chunk_size) < 1:
        raise ValueError(f"fit_many: chunk_size must be >= 1, got {chunk_size}")
    if n < p + 2:
        raise ModelError(
            f"{n} samples for {p} predictors: ordinary least squares needs at least {p + 2} (predictors + "
            f"intercept + 1 residual degree of freedom). Use fewer predictors or more samples."
        )
    A = np.empty((n, p + 1))
    A[:, 0] = 1.0
    A[:, 1:] = X
    fac = _factor_design(A, names, on_rank_deficient)  # raises for NaN/inf predictors, naming them
    k = len(fac.kept)
    df_resid, df_model = n - k, k - 1
    q = float(special.stdtrit(df_resid, 1.0 - alpha / 2.0))

    # one block for all outputs: a fresh large block is mapped with huge pages, six separate ones with
    # ~1000 page faults (about a third of the whole fit's time for 50 predictors x 2000 targets)
    names_out = ("coef", "std_err", "t", "p_value", "ci_low", "ci_high")
    block = np.empty((len(names_out), k, m))
    out = dict(zip(names_out, block))
    fit = dict(zip(("r2", "adj_r2", "f_stat", "f_pvalue"), np.empty((4, m))))
    status = np.empty(m, dtype=object)
    status[:] = "ok"
    # one table per df for |t| up to 255 whatever the data, so that the p-values do not depend on the
    # chunks (cached: ~10 ms to build, scipy computes ~65,000 p-values in that); for fewer, scipy
    table = _cached_t_table(float(df_resid), _TABLE_FIT_OCTAVES)[1] if k * m >= _TABLE_FIT_MIN_SIZE else _NO_TABLE
    sandwich = None if cov_type == "nonrobust" else _sandwich_design(fac, n, df_resid, cov_type)
    # robust Wald tests: None is the overall F (every slope), then the sets, as rows of the coefficients kept
    position = {names[j]: i for i, j in enumerate(fac.kept)}
    tests: dict[str | None, list[int]] = {} if sandwich is None else {None: list(range(1, k))}
    for name, set_names in (wald_sets or {}).items():
        tests[str(name)] = sorted({position[str(t)] for t in set_names if str(t) in position and str(t) != "const"})
    wald = {name: np.full(m, np.nan) for name in tests}
    n_refit = 0
    for a, b in iter_chunks(m, int(chunk_size)):
        n_refit += _fit_chunk(
            np.asarray(Y[:, a:b], dtype=np.float64), fac, n, df_model, df_resid, q, table,
            {key: arr[:, a:b] for key, arr in out.items()}, {key: arr[a:b] for key, arr in fit.items()},
            status[a:b], sandwich, tests, {name: arr[a:b] for name, arr in wald.items()},
        )
    if sandwich is not None:
        with np.errstate(invalid="ignore"):
            fit["f_stat"][...] = wald.pop(None)
            fit["f_pvalue"][...] = f_pvalues(fit["f_stat"], df_model, df_resid)
    return BatchedResult(
        targets=targets, terms=[names[j] for j in fac.kept], n=n, df_model=df_model, df_resid=df_resid,
        alpha=float(alpha), **{key: arr.T for key, arr in out.items()}, **fit, status=status,
        dropped_terms=[names[j] for j in fac.dropped], n_refit=n_refit, cov_type=cov_type,
        leverage_one=[] if sandwich is None else sandwich.leverage_one.tolist(),
        wald=wald, wald_df={name: len(tests[name]) for name in wald},
    )


def _fit_chunk(Y: np.ndarray, fac: _Factor, n: int, df_model: int, df_resid: int, q: float, table: np.ndarray,
               out: dict[str, np.ndarray], fit: dict[str, np.ndarray], status: np.ndarray,
               sandwich: _Sandwich | None = None, tests: dict[str | None, list[int]] | None = None,
               wald: dict[str | None, np.ndarray] | None = None) -> int:
    """Fit the targets ``Y`` (samples x c) of one chunk into the given (k x c and c) views.

    ``table``: the packed p-value table for ``df_resid`` (:data:`_NO_TABLE`: scipy for every p-value).
    With ``sandwich`` (a robust covariance), the standard errors and everything from them are the
    sandwich's, and ``wald[name]`` (c) receives the robust Wald F statistic of the coefficients
    ``tests[name]`` (rows of ``B``; NaN beyond :data:`ROBUST_WALD_MAX_TERMS` of them).
    Returns the number of targets refitted from centred values.
    """
    from . import _kernels

    B, se, t, p = out["coef"], out["std_err"], out["t"], out["p_value"]
    with np.errstate(all="ignore"):
        # the one big product (the columns of NaN/inf targets are NaN), into the t buffer until t
        G = np.matmul(fac.Qt, Y, out=t) if t.flags.c_contiguous else fac.Qt @ Y
        if B.flags.c_contiguous:
            np.matmul(fac.Rinv, G, out=B)
        else:
            B[...] = fac.Rinv @ G
        # fast path: sums of squares from the products. RSS = y'y - |G|^2 loses accuracy to cancellation;
        # |error of RSS| <= 2 (sqrt(n) + k) eps y'y (measured: up to ~(sqrt(n) + k) eps y'y). A relative
        # error e of RSS changes t by e / 2 and F by e; log p changes by (d log p / d log t) e / 2,
        # d log p / d log t being below 1 + (df + 1) t^2 / (df + t^2) for the t tests, and by
        # (d log p / d log F) e, below 1 + 0.6 min(df_model F, df_model + df_resid) for the F test
        # (both bounds checked numerically). That bound grows with t^2, and every t^2 of a target is at
        # most df |G|^2 / RSS = df (y'y - RSS) / RSS (Cauchy-Schwarz: |b_j| = |R^-1[j] G| <= sqrt(v_j) |G|),
        # which needs no pass over the k x c statistics. err is that bound (_kernels.residual_sums).
        RSS, ESS, TSS, err = _kernels.residual_sums(G, _kernels.sums_of_squares(Y), n, df_resid)
    redo = np.flatnonzero(~(err <= _GUARD_TOL))  # NaN (inf or NaN values, RSS <= 0) included
    if redo.size:
        _refit_exact(Y, redo, fac, df_resid, status, B, RSS, ESS, TSS)

    with np.errstate(all="ignore"):
        s = _kernels.fit_stats(RSS, ESS, TSS, n, df_resid, df_model, fit["r2"], fit["adj_r2"], fit["f_stat"])
        if sandwich is None:
            # standard errors, t, log p-values (from the table; NaN where scipy must give them) and intervals
            # in one compiled pass over the k x c statistics (a dozen numpy passes otherwise)
            n_exact = _kernels.coefficient_stats(B, fac.sqrt_v, s, q, table, se, t, p, out["ci_low"], out["ci_high"])
        else:
            # the weighted squared residuals of every target (n x c), then the variances of all coefficients
            # of all targets in one product (into the std_err buffer) and the Wald tests
            omega = _residuals(Y, G, fac, redo, status)
            omega *= omega
            omega *= sandwich.w[:, None]
            if se.flags.c_contiguous:
                np.matmul(sandwich.HH, omega, out=se)
            else:
                se[...] = sandwich.HH @ omega
            se[sandwich.undefined] = np.nan
            for name, rows in (tests or {}).items():
                if 0 < len(rows) <= ROBUST_WALD_MAX_TERMS and not sandwich.undefined[rows].any():
                    wald[name][...] = _robust_wald(sandwich.H[rows], B[rows], omega, sandwich.scale)
            n_exact = _kernels.robust_coefficient_stats(B, se, sandwich.scale, q, table, se, t, p, out["ci_low"],
                                                        out["ci_high"])
            del omega
        np.exp(p, out=p)
        _exact_where_nan(p, t, lambda v: 2.0 * special.stdtr(df_resid, -np.abs(v)), n_exact)
        fit["f_pvalue"][...] = f_pvalues(fit["f_stat"], df_model, df_resid)
    if redo.size:
        const = redo[status[redo] == "constant_target"]
        for key in ("r2", "adj_r2", "f_stat", "f_pvalue"):
            fit[key][const] = np.nan
        t[:, const] = np.nan
        p[:, const] = np.nan
        for arr in (wald or {}).values():
            arr[const] = np.nan
    return int(redo.size)


def _residuals(Y: np.ndarray, G: np.ndarray, fac: _Factor, redo: np.ndarray, status: np.ndarray) -> np.ndarray:
    """The residuals ``Y - Q Q'Y`` of a chunk (n x c, a new array) from ``G = Q'Y``.

    Targets the guard sent to :func:`_refit_exact` (``redo``) get theirs from centred values, as
    their fits; a ``constant_target`` gets zeros, a ``non_finite`` one NaN.
    """
    E = np.matmul(fac.Qt.T, G)
    np.subtract(Y, E, out=E)
    if redo.size:
        ok = redo[status[redo] == "ok"]
        if ok.size:
            Yc = Y[:, ok]
            Yc = Yc - Yc.mean(axis=0)
            E[:, ok] = Yc - fac.Qt.T @ (fac.Qt @ Yc)
        E[:, redo[status[redo] == "constant_target"]] = 0.0
        E[:, redo[status[redo] == "non_finite"]] = np.nan
    return E


def _robust_wald(Hs: np.ndarray, Bs: np.ndarray, omega: np.ndarray, scale: float) -> np.ndarray:
    """Robust Wald F statistics ``b' V^-1 b / s`` of ``s`` coefficients of every target.

    ``Hs`` (s x n): the coefficients' rows of ``H = (A'A)^-1 A'``; ``Bs`` (s x c) their values;
    ``omega`` (n x c) the weighted squared residuals; ``V = scale * Hs diag(omega_j) Hs'`` is target
    ``j``'s sandwich covariance of the ``s`` coefficients (``n s^2`` operations a target: a batched
    product over blocks of targets of at most ``_WALD_BLOCK_BYTES``). ``V`` is scaled to unit
    diagonal and the system solved by LU (a tenth of the time of statsmodels' pseudo-inverse,
    which is used for a block holding an exactly singular one); NaN for a target whose ``V`` is not
    finite or has a zero variance (a constant target).
    """
    s, n = Hs.shape
    c = omega.shape[1]
    F = np.full(c, np.nan)
    step = max(1, _WALD_BLOCK_BYTES // (8 * s * n))
    with np.errstate(all="ignore"):
        for a in range(0, c, step):
            b = min(a + step, c)
            V = np.matmul(Hs[None, :, :] * omega[:, a:b].T[:, None, :], Hs.T)  # (targets, s, s)
            V *= scale
            d = np.sqrt(np.diagonal(V, axis1=1, axis2=2))
            z = Bs[:, a:b].T / d
            C = V / (d[:, :, None] * d[:, None, :])
            ok = np.flatnonzero(np.isfinite(C).all(axis=(1, 2)) & np.isfinite(z).all(axis=1))
            if ok.size:
                C, z = C[ok], z[ok]
                try:
                    x = np.linalg.solve(C, z[:, :, None])[:, :, 0]
                except np.linalg.LinAlgError:  # a singular covariance: statsmodels' pseudo-inverse
                    x = np.einsum("cij,cj->ci", np.linalg.pinv(C, hermitian=True), z)
                F[a + ok] = np.einsum("ci,ci->c", z, x) / s
    return F


def _refit_exact(Y: np.ndarray, cols: np.ndarray, fac: _Factor, df_resid: int, status: np.ndarray, B: np.ndarray,
                 RSS: np.ndarray, ESS: np.ndarray, TSS: np.ndarray) -> None:
    """Recompute columns ``cols`` of ``B`` and the sums of squares from centred values.

    Centring removes the cancellation that a large mean causes: ``RSS = TSS - |G|^2``
    from the centred products, checked by the same guard as the fast path
    (:func:`gexpred._kernels.residual_sums`). Targets that still cancel (fitted almost
    perfectly) get ``RSS`` from explicit residuals. Targets with NaN or infinite
    values (or whose squares overflow) get NaN everywhere and status
    ``non_finite``; constant ones their mean as intercept, zero slopes and zero sums
    of squares, and status ``constant_target``.
    """
    from . import _kernels

    Yc = Y[:, cols]
    bad = ~np.isfinite(Yc).all(axis=0)
    status[cols[bad]] = "non_finite"
    B[:, cols[bad]] = np.nan
    for arr in (RSS, ESS, TSS):
        arr[cols[bad]] = np.nan
    if bad.any():
        cols, Yc = cols[~bad], Yc[:, ~bad]
    if not cols.size:
        return
    with np.errstate(all="ignore"):
        scale = np.maximum(Yc.max(axis=0), -Yc.min(axis=0))  # largest |y|, without an n x c temporary
        mean = Yc.mean(axis=0)
        Yc -= mean
        tss = _kernels.sums_of_squares(Yc)
        G = fac.Qt @ Yc
        rss, ess, _, err = _kernels.residual_sums(G, tss, Y.shape[0], df_resid)
        explicit = np.flatnonzero(~(err <= _GUARD_TOL))
        if explicit.size:
            rss[explicit] = _kernels.sums_of_squares(Yc[:, explicit] - fac.Qt.T @ G[:, explicit])
        const = np.sqrt(tss / (Y.shape[0] - 1)) <= CONSTANT_RTOL * scale
        b = fac.Rinv @ G
        b[0] += mean
        b[1:, const] = 0.0
        b[0, const] = mean[const]
        rss[const] = 0.0
        ess[const] = 0.0
        B[:, cols] = b
        RSS[cols], ESS[cols], TSS[cols] = rss, ess, tss
    status[cols[const]] = "constant_target"
    overflow = cols[~np.isfinite(tss)]  # finite values whose squares overflow
    status[overflow] = "non_finite"
    B[:, overflow] = np.nan
    for arr in (RSS, ESS, TSS):
        arr[overflow] = np.nan


# --------------------------------------------------------------------------- nested F-tests of gene sets
def residual_ss(X: np.ndarray, Y: np.ndarray, design_terms: Sequence[str], res: BatchedResult) -> np.ndarray:
    """Residual sum of squares of every target of ``res`` (fitted by :func:`fit_many` on ``X``, whose columns are
    ``design_terms``), from its coefficients; NaN for a target that is not ``ok``."""
    col = {t: j for j, t in enumerate(design_terms)}
    A = np.column_stack([np.ones(len(X)), X[:, [col[t] for t in res.terms[1:]]]])
    R = Y - A @ res.coef.T
    rss = np.einsum("ij,ij->j", R, R)
    return np.where(res.status == "ok", rss, np.nan)


def nested_many(X: np.ndarray, Y: np.ndarray, terms: Sequence[str], targets: Sequence[str],
                gene_sets: dict[str, list[str]], full: BatchedResult | None = None,
                cov_type: str = "nonrobust") -> pd.DataFrame:
    """The nested F-test of every gene set for every target of one shared design, batched.

    For each set, the full model ``y ~ const + X`` is compared with the model without the set's genes and without
    every product term that involves one of them (as :func:`gexpred.ols.nested_tests` does for one target,
    equal to statsmodels' ``compare_f_test``): ``F = ((RSS_reduced - RSS_full) / df_num) / (RSS_full / df_den)``,
    ``df_num`` the terms removed (less any the full fit dropped as collinear), ``df_den`` the full model's
    residual degrees of freedom. Each reduced model is one more :func:`fit_many` over all targets.

    With a robust ``cov_type`` (HC0-HC3) the test is instead the Wald F-test of the removed terms' coefficients
    with that covariance (as :func:`gexpred.ols.nested_tests`, statsmodels' ``wald_test(..., use_f=True)``):
    ``df_num`` those coefficients (less any the full fit dropped), ``df_den`` the residual degrees of freedom;
    no reduced model is fitted. It needs each target's sandwich covariance of the set's coefficients, so a set of
    more than :data:`ROBUST_WALD_MAX_TERMS` coefficients has NaN statistics.

    Parameters
    ----------
    X, Y
        Samples x design terms (without intercept), samples x targets (the training samples).
    terms, targets
        Names of the columns of ``X`` and of ``Y``.
    gene_sets
        ``{name: [genes]}``.
    full
        The full fit (``fit_many(X, Y, terms, targets, on_rank_deficient="drop")``), computed if not given (or,
        with a robust ``cov_type``, if it is not that fit with every set in its ``wald_sets``).
    cov_type
        ``nonrobust`` (nested F-tests) or HC0-HC3 (robust Wald F-tests).

    Returns
    -------
    pandas.DataFrame
        ``target, gene_set, f_stat, df_num, df_den, p_value, terms`` (the terms removed), targets x sets
        rows; a target that could not be fitted has NaN statistics.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    terms = [str(t) for t in terms]
    if cov_type != "nonrobust":
        return _robust_nested(X, Y, terms, targets, gene_sets, full, cov_type)
    if full is None:
        full = fit_many(X, Y, terms, targets, on_rank_deficient="drop")
    rss_full = residual_ss(X, Y, terms, full)
    frames = []
    for name, genes in gene_sets.items():
        drop = set_terms(terms, {str(g) for g in genes})
        removed = " ".join(terms[j] for j in drop)
        f = np.full(len(targets), np.nan)
        p = np.full(len(targets), np.nan)
        df_num = 0
        if drop:
            keep = [j for j in range(len(terms)) if j not in set(drop)]
            reduced = fit_many(X[:, keep], Y, [terms[j] for j in keep], targets, on_rank_deficient="drop")
            df_num = full.df_model - reduced.df_model
            if df_num > 0:
                rss_red = residual_ss(X[:, keep], Y, [terms[j] for j in keep], reduced)
                with np.errstate(invalid="ignore", divide="ignore"):
                    f = ((rss_red - rss_full) / df_num) / (rss_full / full.df_resid)
                f = np.where(np.isfinite(f), np.maximum(f, 0.0), np.nan)
                p = f_pvalues(f, df_num, full.df_resid)
        frames.append(pd.DataFrame({"target": list(targets), "gene_set": name, "f_stat": f, "df_num": df_num,
                                    "df_den": float(full.df_resid), "p_value": p, "terms": removed},
                                   columns=LONG_NESTED_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=LONG_NESTED_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _robust_nested(X: np.ndarray, Y: np.ndarray, terms: list[str], targets: Sequence[str],
                   gene_sets: dict[str, list[str]], full: BatchedResult | None, cov_type: str) -> pd.DataFrame:
    """:func:`nested_many` with a robust covariance: each set's Wald F-test from the full fit's ``wald``."""
    removed = {str(name): [terms[j] for j in set_terms(terms, {str(g) for g in genes})]
               for name, genes in gene_sets.items()}
    if full is None or full.cov_type != cov_type or not set(removed) <= set(full.wald):
        full = fit_many(X, Y, terms, targets, on_rank_deficient="drop", cov_type=cov_type, wald_sets=removed)
    frames = []
    for name, drop in removed.items():
        df_num = full.wald_df[name]
        f = np.where(full.status == "ok", full.wald[name], np.nan) if df_num else np.full(len(targets), np.nan)
        frames.append(pd.DataFrame({"target": list(targets), "gene_set": name, "f_stat": f, "df_num": df_num,
                                    "df_den": float(full.df_resid), "p_value": f_pvalues(f, df_num, full.df_resid),
                                    "terms": " ".join(drop)}, columns=LONG_NESTED_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=LONG_NESTED_COLUMNS)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- targets measured on different samples
@dataclass
class MeasuredFits:
    """:func:`fit_measured`: every target's OLS fit on the samples where it was measured.

    ``coefficients``, ``fit`` and ``nested`` are the tables of :meth:`BatchedResult.coefficients`,
    :meth:`BatchedResult.fit` and :func:`nested_many`, targets in input order (``fit``'s ``n`` and ``df_resid`` are
    each target's own); ``coef`` is targets x ``const`` + the design's terms, 0 for a term its fit dropped
    (``A @ coef.T`` predicts every sample); ``dropped_terms`` lists the terms dropped as collinear in any group;
    ``groups`` how many distinct sets of measured samples there were (one when nothing is missing);
    ``leverage_one`` the samples (row positions of ``X``) of leverage 1 in some group's design, where HC2 and HC3
    are 0 / 0 (empty for other covariances; the terms they determine are NaN there, :attr:`BatchedResult.leverage_one`).
    """

    coefficients: pd.DataFrame
    fit: pd.DataFrame
    nested: pd.DataFrame
    coef: np.ndarray
    dropped_terms: list[str]
    groups: int
    leverage_one: list[int] = field(default_factory=list)


def fit_measured(X: np.ndarray, Y: np.ndarray, measured: np.ndarray, terms: Sequence[str], targets: Sequence[str],
                 alpha: float = 0.05, gene_sets: dict[str, list[str]] | None = None,
                 cov_type: str = "nonrobust") -> MeasuredFits:
    """Fit ``y ~ const + X`` for every target on the samples where it was measured.

    A value filled in for a missing one (``missing: impute_mean``: the training mean) is not an observation: fitted
    on, it pulls the slope towards zero and, counted as a residual degree of freedom, shrinks the standard errors.
    Targets are grouped by the samples they were measured on; each group is one :func:`fit_many` (and
    :func:`nested_many` for ``gene_sets``) on its samples, so a matrix without missing values is one batched fit,
    as before. A group with fewer samples than the design needs (terms + 2) gets status ``too_few_measured`` and
    NaN statistics.

    Parameters
    ----------
    X, Y
        Samples x design terms (without intercept), samples x targets.
    measured
        Samples x targets, True where the target's value was measured.
    terms, targets
        Names of the columns of ``X`` and of ``Y``.
    alpha
        Confidence intervals are ``1 - alpha``.
    gene_sets
        ``{name: [genes]}`` tested by nested F-tests (robust Wald F-tests with a robust ``cov_type``), or None.
    cov_type
        The coefficients' covariance (:func:`fit_many`), per group: its residuals, leverages and, for HC1,
        ``n / df_resid`` are the group's.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    measured = np.asarray(measured, dtype=bool)
    terms, targets = [str(t) for t in terms], list(targets)
    names = ["const", *terms]
    column = {g: j for j, g in enumerate(names)}
    groups: dict[bytes, list[int]] = {}
    for j in range(Y.shape[1]):
        groups.setdefault(np.packbits(measured[:, j]).tobytes(), []).append(j)
    coef = np.zeros((Y.shape[1], len(names)))
    parts: dict[str, list[pd.DataFrame]] = {"coefficients": [], "fit": [], "nested": []}
    dropped: list[str] = []
    leverage_one: set[int] = set()
    wald_sets = ({str(name): [terms[i] for i in set_terms(terms, {str(g) for g in genes})]
                  for name, genes in gene_sets.items()} if gene_sets and cov_type != "nonrobust" else None)
    for js in groups.values():
        rows = measured[:, js[0]]
        sub = [targets[j] for j in js]
        if rows.sum() < len(terms) + 2:
            coef[js] = np.nan
            nan = np.full(len(sub), np.nan)
            parts["fit"].append(pd.DataFrame({"target": sub, "n": int(rows.sum()), "df_model": nan, "df_resid": nan,
                                              "r2": nan, "adj_r2": nan, "f_stat": nan, "f_pvalue": nan,
                                              "status": "too_few_measured"}, columns=FIT_COLUMNS))
            cells = np.full(len(sub) * len(names), np.nan)
            parts["coefficients"].append(pd.DataFrame(
                {"target": np.repeat(np.asarray(sub, dtype=object), len(names)),
                 "term": np.tile(np.asarray(names, dtype=object), len(sub)),
                 **{c: cells for c in COEF_COLUMNS[1:]}}, columns=LONG_COEF_COLUMNS))
            if gene_sets:
                cells = np.full(len(sub) * len(gene_sets), np.nan)
                parts["nested"].append(pd.DataFrame(
                    {"target": np.repeat(np.asarray(sub, dtype=object), len(gene_sets)),
                     "gene_set": np.tile(np.asarray(list(gene_sets), dtype=object), len(sub)),
                     "f_stat": cells, "df_num": cells, "df_den": cells, "p_value": cells,
                     "terms": [" ".join(terms[i] for i in set_terms(terms, {str(g) for g in genes}))
                               for genes in gene_sets.values()] * len(sub)}, columns=LONG_NESTED_COLUMNS))
            continue
        res = fit_many(X[rows], Y[rows][:, js], terms, sub, alpha=alpha, on_rank_deficient="drop",
                       cov_type=cov_type, wald_sets=wald_sets)
        dropped += [t for t in res.dropped_terms if t not in dropped]
        leverage_one.update(np.flatnonzero(rows)[res.leverage_one].tolist())
        coef[np.ix_(js, [column[t] for t in res.terms])] = res.coef
        parts["coefficients"].append(res.coefficients())
        parts["fit"].append(res.fit())
        if gene_sets:
            parts["nested"].append(nested_many(X[rows], Y[rows][:, js], terms, sub, gene_sets, full=res,
                                               cov_type=cov_type))
    position = {t: i for i, t in enumerate(targets)}

    def ordered(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
        if len(frames) < 2:
            return frames[0] if frames else pd.DataFrame(columns=columns)
        df = pd.concat(frames, ignore_index=True)  # back into the targets' order, each target's rows in their own
        key = df["target"].map(position).to_numpy()
        return df.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)

    return MeasuredFits(coefficients=ordered(parts["coefficients"], LONG_COEF_COLUMNS),
                        fit=ordered(parts["fit"], FIT_COLUMNS), nested=ordered(parts["nested"], LONG_NESTED_COLUMNS),
                        coef=coef, dropped_terms=dropped, groups=len(groups), leverage_one=sorted(leverage_one))
