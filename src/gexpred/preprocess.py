"""Normalisation fitted on the training split, saved, and re-applied as fitted.

A normalisation is a sequence of steps. :func:`fit_normalization` learns the
parameters of every step on training samples only; :func:`apply_normalization`
applies them to any matrix (the training data, the test split, a new batch
months later), so new data is transformed exactly as the training data was.
The parameters are a plain JSON-serialisable dict.

Steps
-----
``none``
    Values used as they are.
``log1p``
    ``log(1 + x)``, for non-negative values.
``log_cpm``
    Counts per million over each sample's library (the sum of its counts over
    the genes of the training matrix), then ``log2(cpm + 1)``. For raw counts.
``zscore``
    Per gene, subtract the training mean and divide by the training standard
    deviation (ddof = 1). Genes constant in training are centred only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .errors import InputError, plural, preview

log = logging.getLogger(__name__)

METHODS = ("none", "log1p", "log_cpm", "zscore")
COUNT_STEPS = {"log_cpm": "computes library sizes from raw counts", "log1p": "takes the log of raw counts"}
"""The steps that read raw counts (what each does with them, for messages): first or not at all."""


def as_steps(spec: str | list[str]) -> list[str]:
    """Normalise a config value (a method name or a list of them) to a list of steps."""
    steps = [spec] if isinstance(spec, str) else list(spec)
    for s in steps:
        if s not in METHODS:
            raise InputError(f"Unknown normalization {s!r}; choose from {', '.join(METHODS)}.")
    steps = [s for s in steps if s != "none"]
    twice = sorted({s for s in steps if steps.count(s) > 1})
    if twice:
        raise InputError(f"normalization lists {', '.join(repr(s) for s in twice)} more than once ({steps}); "
                         f"each step applies once.")
    for i, s in enumerate(steps[1:], start=1):  # the count-based steps read raw counts: nothing comes before them
        if s in COUNT_STEPS:
            raise InputError(f"normalization {steps}: {s!r} {COUNT_STEPS[s]}, so it must come first, before "
                             f"{', '.join(repr(t) for t in steps[:i])}; e.g. [{s}, zscore].")
    return steps


def _check_nonnegative(X: np.ndarray, genes: list[str], samples: list[str], step: str, source: str) -> None:
    neg = X < 0
    if neg.any():
        si, gi = np.nonzero(neg)
        examples = [f"gene {genes[g]!r} in sample {samples[s]!r} = {X[s, g]:.4g}" for s, g in list(zip(si, gi))[:3]]
        raise InputError(
            f"normalization '{step}' needs non-negative counts, but {source} has "
            f"{plural(int(neg.sum()), 'negative value')} in {plural(len(np.unique(gi)), 'gene')}, e.g. {'; '.join(examples)}. These look like already "
            f"log-transformed or centred data: use 'none' or 'zscore' instead."
        )


LOG_SCALE_MAX = 50.0


def _warn_if_log_scale(X: np.ndarray, step: str, source: str) -> str | None:
    """A warning (logged, and returned to be recorded with the fitted parameters) when a step meant for raw counts
    meets values that look log-scaled already: all below :data:`LOG_SCALE_MAX` with some not whole numbers
    (log2 intensities reach ~16-20, log CPM ~20; counts reach hundreds). Taking their log again compresses the
    differences between samples without error, so it would pass unnoticed."""
    finite = X[np.isfinite(X)]
    if not finite.size or finite.max() >= LOG_SCALE_MAX or np.all(finite == np.round(finite)):
        return None
    text = (f"normalization '{step}' expects raw counts, but every value of {source} is below {LOG_SCALE_MAX:g} "
            f"(largest {finite.max():.4g}) and not all are whole numbers: the data look log-scaled already, and a "
            f"second log compresses them. If they are, use 'none' or 'zscore' instead.")
    log.warning(text)
    return text


def fit_normalization(
    X: np.ndarray, genes: list[str], samples: list[str], spec: str | list[str], source: str = "the data"
) -> dict[str, Any]:
    """Fit the normalisation ``spec`` on training data.

    Parameters
    ----------
    X
        Training samples x genes.
    genes, samples
        Ids of the columns and rows of ``X`` (for error messages and to record
        the gene order).
    spec
        A method name or a list of method names, applied in order.
    source
        How to name the data in error messages (e.g. the input files).

    Returns
    -------
    dict
        ``{"steps": [{"method": ..., ...fitted parameters}], "genes": [...]}``, and ``"warnings"`` (texts) when a
        step for raw counts met values that look log-scaled already.
    """
    steps = as_steps(spec)
    fitted: list[dict[str, Any]] = []
    Z = np.array(X, dtype=np.float64, copy=True)
    warnings: list[str] = []
    for step in steps:
        if step in ("log1p", "log_cpm"):
            _check_nonnegative(Z, genes, samples, step, source)
            if (w := _warn_if_log_scale(Z, step, source)) is not None:
                warnings.append(w)
        if step == "log1p":
            p: dict[str, Any] = {"method": "log1p"}
        elif step == "log_cpm":
            p = {"method": "log_cpm", "scale": 1e6, "prior_count": 1.0, "log_base": 2}
        elif step == "zscore":
            mean = Z.mean(axis=0)
            sd = Z.std(axis=0, ddof=1) if Z.shape[0] > 1 else np.zeros(Z.shape[1])
            # A gene with one value repeated can get a standard deviation of ~1e-17 from rounding
            # in the mean; scaling by that would blow the gene up to arbitrary huge values.
            constant = ~(sd > 1e-12 * np.abs(Z).max(axis=0, initial=0.0))
            if constant.any():
                log.warning(
                    "zscore: %s %s constant across the %d training samples (%s); %s centred but not scaled",
                    plural(int(constant.sum()), "gene"), "is" if constant.sum() == 1 else "are", Z.shape[0],
                    preview(np.asarray(genes)[constant]), "it is" if constant.sum() == 1 else "they are"
                )
            sd = np.where(constant, 1.0, sd)
            p = {"method": "zscore", "mean": mean.tolist(), "sd": sd.tolist(),
                 "constant_genes": [genes[i] for i in np.flatnonzero(constant)]}
        else:  # pragma: no cover - as_steps rejects the rest
            raise AssertionError(step)
        fitted.append(p)
        Z = _apply_step(Z, p, genes, samples, source)
    out: dict[str, Any] = {"steps": fitted, "genes": list(genes)}
    if warnings:
        out["warnings"] = warnings
    return out


def _apply_step(X: np.ndarray, p: dict[str, Any], genes: list[str], samples: list[str], source: str) -> np.ndarray:
    method = p["method"]
    if method == "log1p":
        _check_nonnegative(X, genes, samples, method, source)
        return np.log1p(X)
    if method == "log_cpm":
        _check_nonnegative(X, genes, samples, method, source)
        lib = X.sum(axis=1, keepdims=True)
        empty = np.flatnonzero(lib[:, 0] <= 0)
        if len(empty):
            # more samples than genes and some without any count: most likely genes, read as samples
            transposed = (
                f" The matrix has more samples than genes ({X.shape[1]}): if these ids are genes, "
                f"it is transposed. Text matrices hold genes in rows and samples in columns; an .h5ad file holds "
                f"samples in obs and genes in var (transpose it, adata.T, and write it again)."
                if X.shape[0] > X.shape[1] else ""
            )
            raise InputError(
                f"normalization 'log_cpm': {plural(len(empty), 'sample')} of {source} "
                f"{'has' if len(empty) == 1 else 'have'} no counts at all, e.g. "
                f"{preview(np.asarray(samples)[empty])}. Remove them from the matrix.{transposed}"
            )
        return np.log(X / lib * p["scale"] + p["prior_count"]) / np.log(p["log_base"])
    if method == "zscore":
        return (X - np.asarray(p["mean"])) / np.asarray(p["sd"])
    raise InputError(f"Unknown normalization step {method!r} in saved parameters.")


def apply_normalization(
    X: np.ndarray, genes: list[str], samples: list[str], params: dict[str, Any], source: str = "the data"
) -> np.ndarray:
    """Apply fitted normalisation ``params`` to ``X`` (samples x genes).

    The columns of ``X`` must be the genes the parameters were fitted on, in
    the same order (see :func:`align_genes`).
    """
    if list(genes) != list(params["genes"]):
        raise InputError(
            f"{source} does not have the genes the normalization was fitted on, in the same order "
            f"({len(genes)} vs {len(params['genes'])} genes)."
        )
    Z = np.array(X, dtype=np.float64, copy=True)
    for p in params["steps"]:
        Z = _apply_step(Z, p, genes, samples, source)
    return Z


def impute_training_mean(
    X: np.ndarray, train: np.ndarray, genes: list[str], samples: list[str], policy: str = "impute_mean",
    source: str = "the data",
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Replace the missing (NaN) values of each gene by its mean over the training samples.

    This runs before the normalization is fitted, on the scale of the input
    matrices. Only training samples enter the means, so the test split never
    influences the values of the training split (as for the normalization).

    Parameters
    ----------
    X
        Samples x genes, NaN where a value is missing.
    train
        Boolean mask of the training samples (rows of ``X``).
    policy
        The ``missing`` setting: with ``impute_mean`` the values are imputed;
        with any other, a NaN is an error (the collect step lets NaN through
        only for ``impute_mean``).

    Returns
    -------
    X, info
        The imputed copy, and ``{"method", "n_values", "genes", "means"}`` (the
        genes that had missing values and the means they got), or ``None``
        when nothing was missing.

    Raises
    ------
    InputError
        NaN with another policy, or a gene without any training value.
    """
    X = np.array(X, dtype=np.float64, copy=True)
    bad = ~np.isfinite(X)
    if not bad.any():
        return X, None
    si, gi = np.nonzero(bad)
    order = np.lexsort((si, gi))[:3]
    examples = "; ".join(f"gene {genes[gi[k]]!r} in sample {samples[si[k]]!r}" for k in order)
    if policy != "impute_mean":
        raise InputError(
            f"{source} has {int(bad.sum())} missing values, e.g. {examples}, but the missing-value policy is "
            f"{policy!r}. Re-run the collect step with the same 'missing' setting as the normalize step."
        )
    train = np.asarray(train, dtype=bool)
    cols = np.flatnonzero(bad.any(axis=0))
    observed = ~bad[train][:, cols]
    n_obs = observed.sum(axis=0)
    if (n_obs == 0).any():
        empty = [genes[cols[j]] for j in np.flatnonzero(n_obs == 0)]
        raise InputError(
            f"Genes {preview(empty)} of {source} have no value in any of the {int(train.sum())} training samples, "
            f"so 'missing: impute_mean' has no training mean to impute them with. Remove them from the matrices or "
            f"use 'missing: drop_genes'."
        )
    means = np.where(observed, X[train][:, cols], 0.0).sum(axis=0) / n_obs
    for j, c in enumerate(cols):
        X[bad[:, c], c] = means[j]
    n_values = int(bad.sum())
    n_train = int(bad[train].sum())
    log.warning("missing: impute_mean: replaced %d missing values (%d in training samples, %d in test samples) in "
                "%d genes by each gene's mean over the %d training samples, e.g. %s", n_values, n_train,
                n_values - n_train, len(cols), int(train.sum()), examples)
    info = {"method": "mean over the training samples", "n_values": n_values, "n_values_train": n_train,
            "genes": [str(genes[c]) for c in cols], "means": [float(m) for m in means]}
    return X, info


def describe(params: dict[str, Any]) -> str:
    """One line describing the fitted normalisation, for logs and reports."""
    if not params["steps"]:
        return "none (values used as given)"
    return " then ".join(p["method"] for p in params["steps"])
