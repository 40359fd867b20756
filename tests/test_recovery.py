"""Regulator recovery: metrics against brute-force definitions, scores against direct OLS."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from gexpred.errors import InputError
from gexpred.recovery import (auroc, average_precision, evaluate, read_gold_standard, score_regulators)


def brute_auroc(scores, labels):
    """P(score of a random positive > score of a random negative), ties 1/2, over all pairs."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_ap(scores, labels):
    """Average precision with one threshold per distinct score (ties enter together)."""
    n_pos = sum(labels)
    ap, prev_recall = 0.0, 0.0
    for thr in sorted(set(scores), reverse=True):
        called = [y for s, y in zip(scores, labels) if s >= thr]
        tp = sum(called)
        recall = tp / n_pos
        ap += (recall - prev_recall) * tp / len(called)
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_ap_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.uniform(size=60) < 0.3
    scores = np.round(rng.normal(size=60) + labels * 0.8, 1)  # rounding creates ties
    assert auroc(scores, labels) == pytest.approx(brute_auroc(scores, labels), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(brute_ap(list(scores), list(labels)), abs=1e-12)


def test_perfect_and_degenerate_rankings():
    labels = np.array([1, 1, 0, 0, 0], dtype=bool)
    assert auroc(np.array([5, 4, 3, 2, 1]), labels) == 1.0
    assert average_precision(np.array([5, 4, 3, 2, 1]), labels) == 1.0
    assert auroc(np.ones(5), labels) == 0.5  # all tied: chance
    assert np.isnan(auroc(np.ones(3), np.zeros(3, dtype=bool)))


def planted(seed=0, n=150, n_reg=20, n_targets=30):
    """Targets driven by 2 of n_reg regulators each; gold standard marks those edges."""
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n, n_reg))
    regs = [f"r{i}" for i in range(n_reg)]
    targets = [f"t{j}" for j in range(n_targets)]
    gold = pd.DataFrame(0, index=targets, columns=regs, dtype=np.int8)
    Y = np.empty((n, n_targets))
    for j in range(n_targets):
        a, b = rng.choice(n_reg, 2, replace=False)
        gold.iloc[j, [a, b]] = 1
        Y[:, j] = R[:, a] - 0.7 * R[:, b] + rng.normal(0, 0.8, n)
    X = np.column_stack([R, Y])
    return X, regs + targets, targets, regs, gold


def test_scores_are_ols_abs_t_of_the_chosen_model():
    X, genes, targets, regs, _ = planted()
    chosen = {t: regs[:5] for t in targets[:3]}
    s = score_regulators(X, genes, targets[:3], regs, chosen=chosen).set_index(["target", "regulator"])
    for t in targets[:3]:
        y = X[:, genes.index(t)]
        ref = sm.OLS(y, sm.add_constant(X[:, :5])).fit()
        np.testing.assert_allclose(s.loc[[(t, r) for r in regs[:5]], "abs_t"], np.abs(ref.tvalues[1:]), rtol=1e-9)
        out = s.loc[[(t, r) for r in regs[5:]]]
        assert not out["in_model"].any()
        # out-of-model candidates rank below every in-model one, by |r|
        assert out["ols_score"].max() < s.loc[[(t, r) for r in regs[:5]], "ols_score"].min()
        np.testing.assert_allclose(out["ols_score"], out["correlation"].abs(), rtol=1e-12)
        r_direct = [np.corrcoef(X[:, genes.index(r)], y)[0, 1] for r in regs[5:]]
        np.testing.assert_allclose(out["correlation"], r_direct, rtol=1e-9)


def test_recovery_beats_random_on_planted_network():
    X, genes, targets, regs, gold = planted()
    s = score_regulators(X, genes, targets, regs, top_k=5)
    res = evaluate(s, gold, "all").set_index("method")
    assert res.loc["ols", "n_targets"] == len(targets) and res.loc["ols", "n_positive"] == 2 * len(targets)
    assert res.loc["ols", "auroc"] > 0.9
    assert res.loc["ols", "aupr"] > 5 * res.loc["ols", "random_aupr"]
    np.testing.assert_allclose(res.loc["ols", "random_aupr"], 2 / len(regs), rtol=1e-12)


def test_gold_standard_must_be_binary(tmp_path):
    p = tmp_path / "gs.tsv"
    pd.DataFrame({"r1": [0, 2]}, index=["t1", "t2"]).to_csv(p, sep="\t")
    with pytest.raises(InputError, match=r"gs\.tsv.*'t2'.*'r1'"):
        read_gold_standard(str(p))
