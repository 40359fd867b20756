"""Tests of gexpred.preprocess: fitted on training rows only, re-applied exactly."""

from __future__ import annotations

import re

import json

import numpy as np
import pytest

from gexpred.errors import InputError
from gexpred.preprocess import apply_normalization, as_steps, describe, fit_normalization


@pytest.fixture
def counts() -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    n, g = 12, 6
    X = rng.poisson(lam=rng.uniform(5, 500, size=g), size=(n, g)).astype(float)
    return X, [f"G{j}" for j in range(g)], [f"S{i}" for i in range(n)]


def _zscore_ref(train: np.ndarray, X: np.ndarray) -> np.ndarray:
    return (X - train.mean(axis=0)) / train.std(axis=0, ddof=1)


def _log_cpm_ref(X: np.ndarray) -> np.ndarray:
    lib = X.sum(axis=1)[:, None]
    return np.log2(X / lib * 1e6 + 1)


def test_zscore_fitted_on_training_rows_only(counts):
    X, genes, samples = counts
    train = np.arange(len(samples)) < 8
    params = fit_normalization(X[train], genes, [s for s, t in zip(samples, train) if t], "zscore")
    step = params["steps"][0]
    np.testing.assert_allclose(step["mean"], X[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(step["sd"], X[train].std(axis=0, ddof=1), rtol=1e-12)
    Z = apply_normalization(X, genes, samples, params)
    np.testing.assert_allclose(Z, _zscore_ref(X[train], X), rtol=1e-12, atol=1e-12)
    # training rows are standardised exactly; test rows are not
    np.testing.assert_allclose(Z[train].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[train].std(axis=0, ddof=1), 1, rtol=1e-12)

    # changing the test rows changes neither the parameters nor the training rows' values
    X2 = X.copy()
    X2[~train] = X2[~train] * 100 + 7
    params2 = fit_normalization(X2[train], genes, [s for s, t in zip(samples, train) if t], "zscore")
    assert params2 == params
    Z2 = apply_normalization(X2, genes, samples, params2)
    np.testing.assert_array_equal(Z2[train], Z[train])
    np.testing.assert_allclose(Z2[~train], _zscore_ref(X[train], X2[~train]), rtol=1e-12)


def test_constant_gene_is_centred_not_scaled(counts):
    X, genes, samples = counts
    X = X.copy()
    X[:, 2] = 0.1  # a repeated value whose float mean is not exactly 0.1
    X[:, 4] = 0.0
    params = fit_normalization(X, genes, samples, "zscore")
    assert params["steps"][0]["constant_genes"] == ["G2", "G4"]
    new = X[:2].copy()
    new[:, 2] = [0.1, 0.6]
    Z = apply_normalization(new, genes, samples[:2], params)
    np.testing.assert_allclose(Z[:, 2], [0.0, 0.5], atol=1e-12)
    Ztrain = apply_normalization(X, genes, samples, params)
    np.testing.assert_allclose(Ztrain[:, [2, 4]], 0.0, atol=1e-12)
    assert np.isfinite(Ztrain).all()


def test_log1p(counts):
    X, genes, samples = counts
    params = fit_normalization(X, genes, samples, "log1p")
    np.testing.assert_allclose(apply_normalization(X, genes, samples, params), np.log(1 + X), rtol=1e-14)


def test_log_cpm_against_direct_computation(counts):
    X, genes, samples = counts
    params = fit_normalization(X, genes, samples, "log_cpm")
    out = apply_normalization(X, genes, samples, params)
    np.testing.assert_allclose(out, _log_cpm_ref(X), rtol=1e-12)
    # cpm of each sample sums to one million
    np.testing.assert_allclose((2 ** out - 1).sum(axis=1), 1e6, rtol=1e-10)
    # library size is per sample: a new sample with doubled counts gets the same values
    np.testing.assert_allclose(apply_normalization(2 * X[:3], genes, samples[:3], params), out[:3], rtol=1e-12)


def test_log_cpm_then_zscore_chain(counts):
    X, genes, samples = counts
    train = np.array([True, False] * 6)
    train_samples = [s for s, t in zip(samples, train) if t]
    params = fit_normalization(X[train], genes, train_samples, ["log_cpm", "zscore"])
    assert [p["method"] for p in params["steps"]] == ["log_cpm", "zscore"]
    assert describe(params) == "log_cpm then zscore"
    L = _log_cpm_ref(X)
    expected = (L - L[train].mean(axis=0)) / L[train].std(axis=0, ddof=1)
    np.testing.assert_allclose(apply_normalization(X, genes, samples, params), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["log_cpm", "log1p"])
def test_negative_values_rejected_naming_gene_and_sample(counts, method):
    X, genes, samples = counts
    X = X.copy()
    X[3, 4] = -1.5
    with pytest.raises(InputError) as exc:
        fit_normalization(X, genes, samples, method, source="'expr.tsv'")
    msg = str(exc.value)
    assert "'G4'" in msg and "'S3'" in msg and "expr.tsv" in msg
    # also when applying fitted parameters to new, bad data
    params = fit_normalization(np.abs(X), genes, samples, method)
    with pytest.raises(InputError) as exc:
        apply_normalization(X, genes, samples, params)
    assert "'G4'" in str(exc.value) and "'S3'" in str(exc.value)


def test_log_cpm_rejects_empty_library(counts):
    X, genes, samples = counts
    X = X.copy()
    X[5] = 0
    with pytest.raises(InputError, match="S5"):
        fit_normalization(X, genes, samples, "log_cpm")


def test_log_cpm_on_a_transposed_matrix_says_it_looks_transposed():
    # samples x genes given as genes x samples: 8 "samples" (genes, two never expressed), 5 "genes" (samples)
    rng = np.random.default_rng(1)
    counts = rng.poisson(50, size=(5, 8)).astype(float)
    counts[:, [2, 6]] = 0
    genes, samples = [f"S{i}" for i in range(5)], [f"ENSG{j:011d}" for j in range(8)]
    with pytest.raises(InputError) as exc:
        fit_normalization(counts.T, genes, samples, "log_cpm")
    msg = str(exc.value)
    assert "'ENSG00000000002'" in msg and "transposed" in msg and "more samples than genes (5)" in msg
    # the usual shape (more genes than samples): an empty sample is only that
    usual = rng.poisson(50, size=(6, 10)).astype(float)
    usual[0] = 0
    with pytest.raises(InputError) as exc:
        fit_normalization(usual, [f"G{j}" for j in range(10)], [f"S{i}" for i in range(6)], "log_cpm")
    assert "'S0'" in str(exc.value)
    assert "transposed" not in str(exc.value)


def test_params_are_json_and_reload_identically(tmp_path, counts):
    X, genes, samples = counts
    params = fit_normalization(X[:9], genes, samples[:9], ["log1p", "zscore"])
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params, allow_nan=False))
    loaded = json.loads(path.read_text())
    assert loaded == params
    np.testing.assert_array_equal(apply_normalization(X, genes, samples, loaded),
                                  apply_normalization(X, genes, samples, params))
    ref = np.log1p(X)
    np.testing.assert_allclose(apply_normalization(X, genes, samples, loaded), _zscore_ref(ref[:9], ref),
                               rtol=1e-10, atol=1e-12)


def test_none_and_input_untouched(counts):
    X, genes, samples = counts
    before = X.copy()
    params = fit_normalization(X, genes, samples, "none")
    assert params["steps"] == [] and describe(params).startswith("none")
    out = apply_normalization(X, genes, samples, params)
    np.testing.assert_array_equal(out, X)
    out[0, 0] = -99
    fit_normalization(X, genes, samples, ["log_cpm", "zscore"])
    np.testing.assert_array_equal(X, before)  # never modified in place


def test_gene_order_must_match(counts):
    X, genes, samples = counts
    params = fit_normalization(X, genes, samples, "zscore")
    with pytest.raises(InputError):
        apply_normalization(X[:, ::-1], genes[::-1], samples, params)
    with pytest.raises(InputError):
        apply_normalization(X[:, :-1], genes[:-1], samples, params)


@pytest.mark.parametrize("spec, needle", [
    (["zscore", "log_cpm"], "'log_cpm' computes library sizes from raw counts, so it must come first, before 'zscore'"),
    (["log1p", "log_cpm"], "'log_cpm' computes library sizes"),
    (["zscore", "log1p"], "'log1p' takes the log of raw counts, so it must come first"),
    (["log_cpm", "log1p"], "'log1p' takes the log of raw counts"),
    (["zscore", "zscore"], "lists 'zscore' more than once"),
])
def test_as_steps_refuses_orders_that_cannot_be_meant(spec, needle):
    """Count-based steps after a transform would read transformed values as counts (a z-score's negatives as
    'negative counts'): the config is blamed, with the order to use, before any data is read."""
    with pytest.raises(InputError, match=re.escape(needle)):
        as_steps(spec)
    assert as_steps(["log_cpm", "zscore"]) == ["log_cpm", "zscore"]


def test_as_steps():
    assert as_steps("zscore") == ["zscore"]
    assert as_steps(["none", "log1p", "zscore"]) == ["log1p", "zscore"]
    with pytest.raises(InputError, match="quantile"):
        as_steps(["quantile"])


def test_count_steps_warn_on_data_that_look_log_scaled(caplog):
    from gexpred.preprocess import fit_normalization

    rng = np.random.default_rng(0)
    genes, samples = ["a", "b", "c"], [f"s{i}" for i in range(6)]
    logged = rng.uniform(5.7, 16.5, size=(6, 3))  # log2 intensities, as the bundled compendium's
    with caplog.at_level("WARNING", logger="gexpred.preprocess"):
        params = fit_normalization(logged, genes, samples, ["log_cpm", "zscore"], "matrix 'x.tsv'")
    assert len(params["warnings"]) == 1 and "log-scaled already" in params["warnings"][0]
    assert "matrix 'x.tsv'" in caplog.text and f"{logged.max():.4g}" in caplog.text
    # counts (whole numbers, or values reaching the hundreds) fit without a warning
    counts = rng.poisson(30, size=(6, 3)).astype(float)
    assert "warnings" not in fit_normalization(counts, genes, samples, "log1p")
    assert "warnings" not in fit_normalization(logged * 40, genes, samples, "log1p")
