"""Tests of gexpred.importance: permutation importance, integrated gradients, Friedman's H statistic and the
OLS test of the interactions a network suggests, against direct computations and planted truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from scipy import stats

from gexpred.importance import (
    IMPORTANCE_COLUMNS,
    INTERACTION_COLUMNS,
    fold_importance,
    h_statistic,
    importance_table,
    integrated_gradients,
    interaction_f_test,
    interaction_lr_test,
    interaction_table,
    interaction_test_words,
    interaction_text,
    permutation_losses,
    permutations,
)


def _linear_data(seed: int = 0, n: int = 200, p: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 0.5 * X[:, 2] + rng.normal(0, 0.5, n)
    return X, y


def _ols_fit(Xtr, ytr):
    beta = np.linalg.lstsq(np.column_stack([np.ones(len(ytr)), Xtr]), ytr, rcond=None)[0]
    return lambda X: beta[0] + np.asarray(X) @ beta[1:]


def test_permutation_losses_equal_a_direct_loop():
    X, y = _linear_data()
    predict = _ols_fit(X[:150], y[:150])
    Xh, yh = X[150:], y[150:]
    perms = permutations(len(yh), X.shape[1], 3, seed=4)
    got = permutation_losses(predict, Xh, yh, perms)
    base = np.mean((yh - predict(Xh)) ** 2)
    for j in range(X.shape[1]):
        rises = []
        for r in range(3):
            Xp = Xh.copy()
            Xp[:, j] = Xh[perms[j, r], j]
            rises.append(np.mean((yh - predict(Xp)) ** 2) - base)
        np.testing.assert_allclose(got[j], np.mean(rises), rtol=1e-12, atol=1e-12)


def test_fold_importance_ranks_the_true_inputs_first():
    X, y = _linear_data()
    folds = np.arange(len(y)) % 5
    rises = fold_importance(_ols_fit, X, y, folds, n_repeats=5, seed=0)
    tab = importance_table([f"g{j}" for j in range(X.shape[1])], rises)
    assert list(tab.columns) == IMPORTANCE_COLUMNS
    assert tab["predictor"].tolist()[:3] == ["g0", "g1", "g2"]
    assert tab["perm_folds"].eq(5).all()
    np.testing.assert_allclose(tab.set_index("predictor").loc["g0", "perm_mean"], rises[:, 0].mean(), rtol=1e-12)
    np.testing.assert_allclose(tab.set_index("predictor").loc["g0", "perm_sd"], rises[:, 0].std(ddof=1), rtol=1e-12)
    # shuffling x_j of a linear model raises the MSE by about 2 b_j^2 var(x_j): 18 for g0, 8 for g1
    assert 12 < rises[:, 0].mean() < 24 and 5 < rises[:, 1].mean() < 11
    # the noise inputs: rises near 0
    assert np.abs(rises[:, 3:].mean(axis=0)).max() < 0.3


def test_integrated_gradients_of_a_linear_network_are_w_times_x():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1).double()
    X = np.random.default_rng(1).normal(size=(10, 4))
    ig = integrated_gradients(net, X, steps=8)
    w = net.weight.detach().numpy()[0]
    np.testing.assert_allclose(ig, X * w, rtol=1e-6, atol=1e-9)


def test_integrated_gradients_are_complete_on_a_hidden_layer_network():
    """Sum over inputs of the attributions = f(x) - f(baseline) (to the midpoint rule's error)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    X = np.random.default_rng(2).normal(size=(20, 5))
    base = np.full(5, 0.3)
    ig = integrated_gradients(net, X, baseline=base, steps=128)
    with torch.no_grad():
        f = net(torch.as_tensor(X)).numpy()[:, 0]
        f0 = net(torch.as_tensor(base[None])).numpy()[0, 0]
    np.testing.assert_allclose(ig.sum(axis=1), f - f0, atol=1e-3)


def _h2_brute(f, X, j, k):
    """Friedman's H^2 by loops over the data points, straight from the definition."""
    m = len(X)

    def pd_(cols):
        out = np.zeros(m)
        for i in range(m):
            vals = []
            for l in range(m):
                x = X[l].copy()
                x[list(cols)] = X[i, list(cols)]
                vals.append(f(x[None])[0])
            out[i] = np.mean(vals)
        return out - out.mean()

    joint, a, b = pd_((j, k)), pd_((j,)), pd_((k,))
    return np.sum((joint - a - b) ** 2) / np.sum(joint**2)


def test_h_statistic_equals_its_definition_and_is_zero_for_additive_models():
    X = np.random.default_rng(3).normal(size=(25, 3))
    f_int = lambda Z: Z[:, 0] + Z[:, 1] + Z[:, 0] * Z[:, 1]  # noqa: E731
    f_add = lambda Z: Z[:, 0] + np.sin(Z[:, 1]) + Z[:, 2] ** 2  # noqa: E731
    h2, strength = h_statistic(f_int, X, [(0, 1), (0, 2)])
    np.testing.assert_allclose(h2[0], _h2_brute(f_int, X, 0, 1), rtol=1e-10)
    assert h2[0] > 0.1 and h2[1] < 1e-20 and strength[1] < 1e-12
    h2a, _ = h_statistic(f_add, X, [(0, 1), (1, 2), (0, 2)])
    np.testing.assert_allclose(h2a, 0.0, atol=1e-20)


def _h_parts_brute(f, X, j, k):
    """Numerator and denominator of H^2 for one scalar output, by loops (as :func:`_h2_brute`)."""
    m = len(X)

    def pd_(cols):
        out = np.array([np.mean([f(np.where(np.isin(np.arange(X.shape[1]), cols), X[i], X[l])[None])[0]
                                 for l in range(m)]) for i in range(m)])
        return out - out.mean()

    joint = pd_([j, k])
    return np.sum((joint - pd_([j]) - pd_([k])) ** 2), np.sum(joint**2)


def test_h_statistic_of_class_probabilities_sums_over_the_classes():
    """A three-class model whose pair (0, 1) moves samples between the first two classes only: the last
    class's probability is additive in it (H^2 0), the probabilities together are not. H^2 over the classes
    is the ratio of the per-class sums computed by loops; two classes' [1 - p, p] give p's own H^2 and
    strength."""
    X = np.random.default_rng(8).normal(size=(20, 3))
    def three(Z):
        """P(class 2) depends on x2 alone; x0 * x1 shares the rest between classes 0 and 1."""
        p2 = 0.4 / (1 + np.exp(-Z[:, 2]))
        s = 1 / (1 + np.exp(-Z[:, 0] * Z[:, 1]))
        return np.column_stack([(1 - p2) * s, (1 - p2) * (1 - s), p2])

    last = lambda Z: three(Z)[:, 2]  # noqa: E731
    h2_last, _ = h_statistic(last, X, [(0, 1)])
    assert h2_last[0] < 1e-20 or np.isnan(h2_last[0])
    h2, strength = h_statistic(three, X, [(0, 1), (0, 2)])
    parts = [[_h_parts_brute(lambda Z, c=c: three(Z)[:, c], X, j, k) for c in range(3)]
             for j, k in [(0, 1), (0, 2)]]
    expected = [sum(n for n, _ in pair) / sum(d for _, d in pair) for pair in parts]
    np.testing.assert_allclose(h2, expected, rtol=1e-9)
    np.testing.assert_allclose(strength[0], np.sqrt(sum(n for n, _ in parts[0]) / (3 * len(X))), rtol=1e-9)
    assert h2[0] > 0.5
    p = lambda Z: 1 / (1 + np.exp(-(Z[:, 0] + Z[:, 0] * Z[:, 1])))  # noqa: E731
    both = lambda Z: np.column_stack([1 - p(Z), p(Z)])  # noqa: E731
    np.testing.assert_allclose(np.column_stack(h_statistic(both, X, [(0, 1), (1, 2)])),
                               np.column_stack(h_statistic(p, X, [(0, 1), (1, 2)])), rtol=1e-9, atol=1e-12)


def test_interaction_f_test_equals_statsmodels_hc3_beside_the_pairs_squares():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3))
    y = X[:, 0] + 0.4 * X[:, 0] * X[:, 2] + rng.normal(size=80) * (1 + np.abs(X[:, 0]))
    f, df_num, df_den, p = interaction_f_test(X, y, 0, 2)
    design = np.column_stack([X, X[:, 0] ** 2, X[:, 2] ** 2, X[:, 0] * X[:, 2]])
    ref = sm.OLS(y, sm.add_constant(design)).fit(cov_type="HC3", use_t=True)
    np.testing.assert_allclose([f, p], [ref.tvalues[-1] ** 2, ref.pvalues[-1]], rtol=1e-9)
    assert (df_num, df_den) == (1, 80 - 7) == (1, ref.df_resid)


def test_interaction_f_test_leaves_out_a_square_in_the_span_and_a_product_that_adds_nothing():
    """A two-valued predictor's square is the predictor itself up to the intercept: left out of the design
    (statsmodels on the design without it); a product already in the design has no test."""
    rng = np.random.default_rng(6)
    X = np.column_stack([rng.integers(0, 2, 60).astype(float), rng.normal(size=(60, 2))])
    y = X[:, 1] + X[:, 0] * X[:, 1] + rng.normal(size=60)
    f, _, df_den, p = interaction_f_test(X, y, 0, 1)
    ref = sm.OLS(y, sm.add_constant(np.column_stack([X, X[:, 1] ** 2, X[:, 0] * X[:, 1]]))).fit(
        cov_type="HC3", use_t=True)
    np.testing.assert_allclose([f, p], [ref.tvalues[-1] ** 2, ref.pvalues[-1]], rtol=1e-9)
    assert df_den == ref.df_resid == 60 - 6
    Xp = np.column_stack([X[:, 1:], X[:, 1] * X[:, 2]])  # the product of columns 0 and 1 is column 2
    assert np.isnan(interaction_f_test(Xp, y, 0, 1)[3])


@pytest.mark.parametrize("truth,rho", [("square", 0.0), ("square", 0.5), ("exp", 0.0), ("exp", 0.5)])
def test_interaction_test_keeps_its_level_where_a_main_effect_is_not_linear(truth, rho):
    """An additive truth with a curved main effect (``x1^2`` or ``exp(x1)``) has no interaction. The classical
    nested F-test of x1*x2 over the linear model (statsmodels compare_f_test) rejects far above its 5 % level
    there: the product stands in for the square where the predictors correlate, and the residuals' spread grows
    with x1. The pipeline's test must stay near its level."""
    rng = np.random.default_rng(7)
    cov = np.full((4, 4), rho) + (1 - rho) * np.eye(4)
    chol = np.linalg.cholesky(cov)
    reps, classical, ours = 200, 0, 0
    for _ in range(reps):
        X = rng.normal(size=(200, 4)) @ chol.T
        y = X[:, 0] + (X[:, 1] ** 2 if truth == "square" else np.exp(X[:, 1])) + 0.5 * rng.normal(size=200)
        full = sm.OLS(y, sm.add_constant(np.column_stack([X, X[:, 1] * X[:, 2]]))).fit()
        classical += full.compare_f_test(sm.OLS(y, sm.add_constant(X)).fit())[1] < 0.05
        ours += interaction_f_test(X, y, 1, 2)[3] < 0.05
    assert classical / reps > 0.2  # the data do break the classical test: this one can tell the two apart
    assert ours / reps < 0.1


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_interaction_lr_test_equals_statsmodels_logit_beside_the_pairs_squares():
    """Binary: LR = 2 (llf with a:b - llf without), both models with the squares of a and b, statsmodels Logit;
    a planted log-odds interaction is found."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 3))
    codes = (rng.random(300) < _sigmoid(0.5 * X[:, 0] - X[:, 1] + 1.2 * X[:, 0] * X[:, 1])).astype(int)
    lr, df, p, method = interaction_lr_test(X, codes, 0, 1, ["no", "yes"])
    base = np.column_stack([X, X[:, 0] ** 2, X[:, 1] ** 2])
    small = sm.Logit(codes, sm.add_constant(base)).fit(disp=0)
    big = sm.Logit(codes, sm.add_constant(np.column_stack([base, X[:, 0] * X[:, 1]]))).fit(disp=0)
    ref = 2 * (big.llf - small.llf)
    np.testing.assert_allclose(lr, ref, rtol=1e-6)
    np.testing.assert_allclose(p, stats.chi2.sf(ref, 1), rtol=1e-5)
    assert (df, method) == (1, "ml") and p < 1e-6


def test_interaction_lr_test_of_a_multinomial_target_has_a_degree_of_freedom_per_non_reference_class():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(400, 3))
    eta = np.column_stack([np.zeros(400), X[:, 0] + X[:, 0] * X[:, 2], -X[:, 2] + 0.2 * X[:, 1]])
    P = np.exp(eta) / np.exp(eta).sum(axis=1, keepdims=True)
    codes = np.array([rng.choice(3, p=row) for row in P])
    lr, df, p, method = interaction_lr_test(X, codes, 0, 2, ["a", "b", "c"])
    base = sm.add_constant(np.column_stack([X, X[:, 0] ** 2, X[:, 2] ** 2]))
    small = sm.MNLogit(codes, base).fit(disp=0, method="newton", maxiter=100)
    big = sm.MNLogit(codes, np.column_stack([base, X[:, 0] * X[:, 2]])).fit(disp=0, method="newton", maxiter=100)
    np.testing.assert_allclose(lr, 2 * (big.llf - small.llf), rtol=1e-6)
    np.testing.assert_allclose(p, stats.chi2.sf(2 * (big.llf - small.llf), 2), rtol=1e-5)
    assert (df, method) == (2, "ml") and p < 1e-3


def test_interaction_lr_test_keeps_its_level_where_a_main_effect_curves_on_the_log_odds():
    """Additive log-odds with a square (x1^2) and correlated predictors: without the squares in both models the
    product x1*x2 stands in for x1^2 (statsmodels' LR test of the product over the linear model rejects far above
    5 %); with them the pipeline's test stays near its level."""
    rng = np.random.default_rng(10)
    cov = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    chol = np.linalg.cholesky(cov)
    reps, naive, ours = 60, 0, 0
    for _ in range(reps):
        X = rng.normal(size=(300, 3)) @ chol.T
        codes = (rng.random(300) < _sigmoid(X[:, 0] + 1.5 * X[:, 1] ** 2 - 1.5)).astype(int)
        small = sm.Logit(codes, sm.add_constant(X)).fit(disp=0)
        big = sm.Logit(codes, sm.add_constant(np.column_stack([X, X[:, 1] * X[:, 2]]))).fit(disp=0)
        naive += stats.chi2.sf(2 * (big.llf - small.llf), 1) < 0.05
        ours += interaction_lr_test(X, codes, 1, 2, ["0", "1"])[2] < 0.05
    assert naive / reps > 0.3
    assert ours / reps <= 0.1


def test_interaction_lr_test_of_separated_classes_uses_firths_penalised_likelihood():
    """Classes set by the sign of x0 * x1: separated once the product is in the model; the test is Firth's
    penalised likelihood ratio (as R's logistf), finite and decisive; a product in the design's span: no test."""
    from gexpred.logit import firth_logit, firth_lr_test

    rng = np.random.default_rng(12)
    X = rng.normal(size=(80, 3))
    codes = (X[:, 0] * X[:, 1] > 0).astype(int)
    lr, df, p, method = interaction_lr_test(X, codes, 0, 1, ["0", "1"])
    A = np.column_stack([np.ones(80), X, X[:, 0] ** 2, X[:, 1] ** 2, X[:, 0] * X[:, 1]])
    ref = firth_lr_test(A, codes.astype(float), firth_logit(A, codes.astype(float)), [6])
    assert method == "firth" and df == 1
    np.testing.assert_allclose([lr, p], ref[:2], rtol=1e-6)
    assert p < 1e-4
    Xp = np.column_stack([X, X[:, 0] * X[:, 1]])
    assert np.isnan(interaction_lr_test(Xp, codes, 0, 1, ["0", "1"])[2])


def test_interaction_table_of_a_classification_target_tests_by_likelihood_ratio_and_says_so():
    rng = np.random.default_rng(13)
    X = rng.normal(size=(300, 3))
    codes = (rng.random(300) < _sigmoid(X[:, 0] + X[:, 1] + 1.5 * X[:, 0] * X[:, 1])).astype(int)
    pairs = [(0, 1), (0, 2), (1, 2)]
    inter = interaction_table(["a", "b", "c"], pairs, np.array([0.3, 0.02, 0.01]), np.array([0.4, 0.1, 0.08]),
                              X, codes, scale=1.0, top=3, classes=["0", "1"])
    assert list(inter.columns) == INTERACTION_COLUMNS
    row = inter.iloc[0]
    assert (row["gene_a"], row["gene_b"], row["verdict"]) == ("a", "b", "confirmed")
    assert inter["f_stat"].isna().all() and inter["df_den"].isna().all() and inter["lr_stat"].notna().all()
    np.testing.assert_allclose(row["lr_stat"], interaction_lr_test(X, codes, 0, 1, ["0", "1"])[0])
    text = interaction_text(inter)
    assert "confirmed by the logistic regression (likelihood-ratio test of a:b" in text and "OLS" not in text


def test_interaction_pair_without_a_test_is_not_tested_and_a_classification_table_never_says_ols():
    """A pair whose regression test has no statistic (a separated three-class target, whose logistic fit is
    ridge-penalised; a product in the design's span) was reported 'not confirmed' with q = 1, and a
    classification table with no likelihood-ratio statistic as 'tested in OLS ... not confirmed by OLS'. Such a
    pair is 'not tested' (q NaN) and still counts as p = 1 in the q-values of the others (statsmodels' BH)."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    codes = np.digitize(X[:, 0], [-0.5, 0.5])  # x0 separates the three classes
    inter = interaction_table(["a", "b", "c"], [(0, 1), (0, 2)], np.array([0.3, 0.2]), np.array([0.5, 0.4]),
                              X, codes, scale=1.0, classes=["x", "y", "z"])
    assert (inter["verdict"] == "not tested").all() and inter[["lr_stat", "p_value", "q_value"]].isna().all().all()
    assert (inter["df_num"] == 2).all()
    text = interaction_text(inter)
    assert "OLS" not in text and "the regression could not test them (" in text and "separated" in text
    untried = interaction_table(["a", "b", "c"], [(0, 1), (0, 2)], np.array([0.3, 0.2]), np.array([0.5, 0.4]),
                                X, codes, scale=1.0, top=0, classes=["x", "y", "z"])
    assert interaction_text(untried).endswith("they were not tested in regression "
                                              "(importance.interactions_tested is 0).")
    assert interaction_test_words(inter) == ("the logistic regression", "likelihood-ratio test")
    # OLS: a x b tested (HC3 beside the squares, statsmodels), d1 x d2 (exclusive dummies: product 0) not
    d1 = (np.arange(60) % 3 == 0).astype(float)
    d2 = (np.arange(60) % 3 == 1).astype(float)
    Xo = np.column_stack([X[:, 1:], d1, d2])
    y = Xo[:, 0] + 0.5 * Xo[:, 0] * Xo[:, 1] + rng.normal(size=60)
    inter = interaction_table(["a", "b", "d1", "d2"], [(0, 1), (2, 3)], np.array([0.3, 0.2]),
                              np.array([0.5, 0.4]), Xo, y, scale=1.0)
    ref = sm.OLS(y, sm.add_constant(np.column_stack([Xo, Xo[:, 0] ** 2, Xo[:, 1] ** 2, Xo[:, 0] * Xo[:, 1]]))).fit(
        cov_type="HC3", use_t=True)
    row, dummies = inter.iloc[0], inter.iloc[1]
    np.testing.assert_allclose(row["p_value"], ref.pvalues[-1], rtol=1e-9)
    np.testing.assert_allclose(row["q_value"], multipletests([ref.pvalues[-1], 1.0], method="fdr_bh")[1][0],
                               rtol=1e-12)
    assert row["verdict"] in ("confirmed", "not confirmed")
    assert dummies["verdict"] == "not tested" and np.isnan(dummies["q_value"])
    assert interaction_test_words(inter) == ("OLS", "F-test")


@pytest.mark.parametrize("planted", [True, False])
def test_network_finds_a_planted_interaction_and_none_in_an_additive_truth(planted):
    """y = x0 + x1 (+ 1.5 x0 x1) + noise among 6 inputs: the network's importance ranks x0 and x1 first; its
    strongest pair is (x0, x1), which the OLS F-test confirms when planted and rejects when not."""
    from gexpred.nn import MLPSettings, predict
    from gexpred.search import kfold, search_network

    rng = np.random.default_rng(5)
    n, p = 300, 6
    X = rng.normal(size=(n, p))
    y = X[:, 0] + X[:, 1] + (1.5 * X[:, 0] * X[:, 1] if planted else 0.0) + rng.normal(0, 0.3, n)
    folds = kfold([f"s{i}" for i in range(n)], 4, seed=0)
    s = MLPSettings(hidden=[32], epochs=150, patience=20, lr=0.01, batch_size=64, seed=0, ensemble=1)
    res = search_network(X, y, folds, [s], target="y", perm_repeats=3)
    genes = [f"x{j}" for j in range(p)]
    tab = importance_table(genes, res.final_cv.perm_rise[0],
                           np.abs(integrated_gradients(res.model, X)).mean(axis=0))
    assert set(tab["predictor"][:2]) == {"x0", "x1"}
    assert set(tab.sort_values("ig_mean_abs", ascending=False)["predictor"][:2]) == {"x0", "x1"}
    pairs = [(j, k) for j in range(p) for k in range(j + 1, p)]
    h2, strength = h_statistic(lambda Z: predict(res.model, Z), X, pairs, max_points=40)
    scale = float(np.std(predict(res.model, X)))
    inter = interaction_table(genes, pairs, h2, strength, X, y, scale=scale, top=3)
    assert list(inter.columns) == INTERACTION_COLUMNS
    top = inter.iloc[0]
    if planted:
        assert {top["gene_a"], top["gene_b"]} == {"x0", "x1"} and top["verdict"] == "confirmed"
        assert "confirmed by OLS" in interaction_text(inter)
    else:
        # what the network fits beyond the sum of single effects is noise-sized: nothing to test
        assert (inter["verdict"] == "negligible").all()
        assert "suggests no interaction" in interaction_text(inter)
    # the pair of true inputs: joint effect all interaction where planted, none where additive
    h2_01 = inter[(inter["gene_a"] == "x0") & (inter["gene_b"] == "x1")]["h2"].iloc[0]
    assert h2_01 > 0.2 if planted else h2_01 < 0.01


def test_pipeline_integrated_gradients_start_from_the_training_mean():
    """The mlp step's attribution: from the training mean, not from zeros. A linear network w = (1, 0.2) on a
    centred gene A and a gene B around 12 (log2 intensities, normalization none): the closed form
    mean |w_j (x_j - mean_j)| ranks A first; from zeros B's level alone would put it first."""
    from types import SimpleNamespace

    from gexpred.cli import _network_importance
    from gexpred.nn import GeneMLP

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(0, 1, 200), rng.normal(12, 1, 200)])
    y = X[:, 0] + 0.2 * X[:, 1]
    model = GeneMLP(2, [], "identity")
    with torch.no_grad():
        model.net[0].weight[:] = torch.tensor([[1.0, 0.2]])
        model.net[0].bias.zero_()
        model.x_mean[:] = torch.as_tensor(X.mean(axis=0), dtype=torch.float32)
    a = SimpleNamespace(target="t", interaction_genes=2, h_points=20, fdr=0.05, interactions_tested=0,
                        min_strength=0.05)
    imp, _ = _network_importance(a, model, X, y, ["A", "B"], "regression", np.ones((3, 2)), seed=0)
    ig = imp.set_index("predictor")["ig_mean_abs"]
    want = np.abs((X - X.mean(axis=0)) * np.array([1.0, 0.2])).mean(axis=0)
    np.testing.assert_allclose(ig[["A", "B"]], want, rtol=1e-4)
    assert ig["A"] > 4 * ig["B"]


def _softmax_ig_numpy(W, b, X, base, cls, steps=64):
    """Integrated gradients of softmax(X W' + b)[cls] by the midpoint rule, the gradient in closed form:
    d p_c / d x = p_c (W_c - sum_k p_k W_k)."""
    out = np.zeros_like(X)
    for a in (np.arange(steps) + 0.5) / steps:
        Z = base + a * (X - base)
        logits = Z @ W.T + b
        P = np.exp(logits - logits.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        pc = P[np.arange(len(X)), cls][:, None]
        out += pc * (W[cls] - P @ W)
    return (X - base) * out / steps


def test_integrated_gradients_of_a_multiclass_network_explain_each_sample_s_class():
    """Three classes: x0 tells a from b, x1 tells c from the rest. Explaining each sample's own class credits
    both genes (numbers from the closed-form softmax gradient); the last class's probability alone credits x0
    with under half of x1's, though the network cannot tell a from b without it."""
    from gexpred.nn import GeneMLP, predict_proba

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    W = np.array([[3.0, -1.0, 0.0], [-3.0, -1.0, 0.0], [0.0, 3.0, 0.0]])
    b = np.array([0.0, 0.0, -1.5])
    model = GeneMLP(3, [], "identity", n_out=3)
    with torch.no_grad():
        model.net[0].weight[:] = torch.as_tensor(W, dtype=torch.float32)
        model.net[0].bias[:] = torch.as_tensor(b, dtype=torch.float32)
    cls = predict_proba(model, X).argmax(axis=1)
    base = X.mean(axis=0)
    got = integrated_gradients(model, X, baseline=base, task="classification", classes=cls)
    np.testing.assert_allclose(got, _softmax_ig_numpy(W, b, X, base, cls), atol=2e-5)
    own = np.abs(got).mean(axis=0)
    last = np.abs(integrated_gradients(model, X, baseline=base, task="classification")).mean(axis=0)
    assert own[0] > own[1] and last[0] < 0.5 * last[1]  # the last class alone puts x0 far behind x1
    assert own[2] < 1e-6


def test_integrated_gradients_of_a_binary_network_do_not_depend_on_the_class_explained():
    from gexpred.nn import GeneMLP

    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 3))
    model = GeneMLP(3, [4], "tanh", n_out=1)
    codes = rng.integers(0, 2, 100)
    a = integrated_gradients(model, X, task="classification", classes=codes)
    last = integrated_gradients(model, X, task="classification")
    np.testing.assert_allclose(np.abs(a), np.abs(last), atol=1e-6)
    np.testing.assert_allclose(a[codes == 1], last[codes == 1], atol=1e-7)


def test_interaction_text_counts_in_words():
    """'1 of 3 are confirmed' and '3 interaction(s)' read '1 of 3 is confirmed' and '3 interactions' (an audit)."""
    table = pd.DataFrame({"gene_a": ["a", "c", "e"], "gene_b": ["b", "d", "f"], "h2": [0.1, 0.2, 0.3],
                          "h_strength": [0.2, 0.1, 0.08], "q_value": [0.01, 0.5, 0.7],
                          "verdict": ["confirmed", "not confirmed", "not confirmed"]})
    text = interaction_text(table)
    assert text.startswith("The network suggests 3 interactions;") and text.endswith("1 of 3 is confirmed at q < 0.05.")
    assert interaction_text(table.iloc[[1]]).endswith("It is not confirmed at q < 0.05.")
    untested = table.iloc[[0]].assign(verdict="not tested")
    assert interaction_text(untested).startswith("The network suggests 1 interaction, strongest a x b; it was not")


@pytest.mark.parametrize("classify", [False, True])
def test_a_network_predicting_a_constant_suggests_no_interaction(classify):
    """A network whose predictions do not vary (collapsed to the mean, or constant class probabilities) has no
    interaction: every pair's H² is NaN and its strength rounding noise (about 1e-17), and the scale, the sd of the
    predictions, is 0. The table called every pair 'suggested' (1e-17 >= 0.05 x 0) and tested the top ones in
    regression, and the report read 'The network suggests 4 interactions' (an audit). Expected: all negligible,
    nothing tested, the text of no interaction."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    y = X[:, 0] * X[:, 1] + rng.normal(0, 0.1, 60)  # a real interaction the network did not find
    const = (lambda Z: np.tile([0.2, 0.8], (len(Z), 1))) if classify else (lambda Z: np.full(len(Z), 0.3))
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3)]
    h2, strength = h_statistic(const, X, pairs)
    assert np.isnan(h2).all() and np.all(strength < 1e-12)
    out = np.asarray(const(X)).reshape(len(X), -1)
    scale = float(np.sqrt(np.mean(np.var(out, axis=0))))  # as cli._network_importance computes it
    table = interaction_table([f"g{i}" for i in range(4)], pairs, h2, strength, X, y, scale=scale, top=5)
    assert table["verdict"].tolist() == ["negligible"] * 4
    assert table["p_value"].isna().all()
    assert interaction_text(table).startswith("The network suggests no interaction")


def test_a_pair_without_joint_effect_is_negligible_beside_suggested_ones():
    """Against a varying network a pair whose H² is NaN (no joint effect) is negligible however its strength
    compares, and the BH q-values of the tested pairs count every scored pair (p = 1 for the others): two scored
    pairs, one tested with p from statsmodels' HC3 fit, q = min(1, 2 p)."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3))
    y = X[:, 0] + X[:, 1] + 0.8 * X[:, 0] * X[:, 1] + rng.normal(0, 0.5, 80)
    table = interaction_table(["a", "b", "c"], [(0, 1), (1, 2)], np.array([0.3, np.nan]), np.array([0.5, 0.4]),
                              X, y, scale=1.0, top=5)
    assert table["verdict"].tolist()[1] == "negligible"
    d = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
    p = smf.ols("y ~ a + b + c + I(a**2) + I(b**2) + a:b", d).fit(cov_type="HC3", use_t=True).pvalues["a:b"]
    assert table.loc[0, "p_value"] == pytest.approx(p, rel=1e-8)
    assert table.loc[0, "q_value"] == pytest.approx(min(1.0, 2 * p), rel=1e-8)
