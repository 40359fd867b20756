"""Regulator recovery: metrics against brute-force definitions, scores against direct OLS."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from gexpred.errors import InputError
from gexpred.nn import GeneMLP
from gexpred.recovery import (Evidence, auroc, available_rankings, average_precision, clr, clr_mean, collect_evidence,
                              edge_table, evaluate_evidence, global_ranks, gradient_importance, judged_targets,
                              network_evidence, rank_average, read_gold_standard, ridge_evidence, score_regulators)
from gexpred.search import kfold


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
    folds = kfold([str(i) for i in range(len(X))], 5, 0)
    ev = collect_evidence(X, genes, targets, regs, folds, top_k=5, sources=("ols", "penalized", "correlation"))
    res, curves = evaluate_evidence(ev, gold, "all")
    res = res.set_index(["method", "normalization"])
    assert set(res.index) == {(m, n) for m in ("ols", "penalized", "correlation") for n in ("none", "clr")} | {
        ("clr_mean", "clr"), ("rank_average", "clr")}
    assert (res["n_targets"] == len(targets)).all() and (res["n_positive"] == 2 * len(targets)).all()
    np.testing.assert_allclose(res["random_aupr"], 2 / len(regs), rtol=1e-12)
    for key in [("ols", "none"), ("penalized", "clr"), ("clr_mean", "clr"), ("rank_average", "clr")]:
        assert res.loc[key, "auroc"] > 0.9
        assert res.loc[key, "aupr"] > 5 * res.loc[key, "random_aupr"]
    assert set(curves) == set(res.index)


def test_gold_standard_must_be_binary(tmp_path):
    p = tmp_path / "gs.tsv"
    pd.DataFrame({"r1": [0, 2]}, index=["t1", "t2"]).to_csv(p, sep="\t")
    with pytest.raises(InputError, match=r"gs\.tsv.*'t2'.*'r1'"):
        read_gold_standard(str(p))


def test_gold_standard_as_edge_list_equals_the_matrix(tmp_path):
    m = pd.DataFrame({"r1": [1, 0, 1], "r2": [0, 1, 0]}, index=pd.Index(["t1", "t2", "t3"], name="target"))
    m.to_csv(tmp_path / "m.tsv", sep="\t")
    want = read_gold_standard(str(tmp_path / "m.tsv"))
    assert want.equals(m.astype(np.int8))
    # DREAM's layout (regulator, target, 1/0; no header), a header line, or two columns (every line an edge)
    (tmp_path / "e3.tsv").write_text("".join(f"{r}\t{t}\t{m.at[t, r]}\n" for t in m.index for r in m.columns))
    (tmp_path / "e3h.csv").write_text("regulator,target,weight\n" + "".join(
        f"{r},{t},{m.at[t, r]}\n" for t in m.index for r in m.columns))
    (tmp_path / "e2.tsv").write_text("TF\tgene\n" + "".join(
        f"{r}\t{t}\n" for t in m.index for r in m.columns if m.at[t, r]))
    for name in ("e3.tsv", "e3h.csv", "e2.tsv"):
        got = read_gold_standard(str(tmp_path / name))
        assert got.reindex(index=want.index, columns=want.columns).equals(want), name

    # numeric (Entrez) ids, and a two-column header of other words
    (tmp_path / "entrez.tsv").write_text("5468\t7124\t1\n5468\t3569\t1\n2099\t7124\t1\n2099\t3569\t0\n")
    got = read_gold_standard(str(tmp_path / "entrez.tsv"))
    assert got.to_dict() == {"5468": {"7124": 1, "3569": 1}, "2099": {"7124": 1, "3569": 0}}
    (tmp_path / "ids.tsv").write_text("TF_id\ttarget_id\n5468\t7124\n")
    assert read_gold_standard(str(tmp_path / "ids.tsv")).to_dict() == {"5468": {"7124": 1}}


@pytest.mark.parametrize("text, needles", [
    ("target\tr1\tr2\nt1\t1\t\nt2\t0\t1\n", ["'t1'", "'r2'", "line 2", "is empty", "Write 0"]),
    ("target\tr1\tr2\nt1\t1\t0\nt2\t\t1\n", ["'t2'", "'r1'", "line 3", "is empty", "Write 0"]),
    ("target\tr1\tr2\nt1\t1\t0\nt2\tNA\t1\n", ["'t2'", "'r1'", "line 3", "'NA'"]),
    ("r1\tt1\nr1\tt2\nr2\t1\n", ["both 0/1 values (line 3: '1') and ids (line 2: 't2')"]),
    ("target\tr1\nt1\t1\nt1\t0\n", ["lists targets more than once: 't1'", "Merge their rows"]),
    ("target\tr1\tr1\nt1\t1\t0\n", ["names regulators more than once", "'r1'"]),
    ("target\tr1\tr2\nt1\t1\n", ["ragged rows: line 2", "target 't1'"]),
    ("r1\tt1\t1\nr1\tt1\t0\n", ["'r1' -> target 't1' both as an edge (1) and as no edge (0)", "line 2"]),
    ("r1\tt1\t0.5\nr2\tt1\t1\n", ["must hold only 0 and 1", "'t1'", "'r1'", "'0.5'"]),
    ("target\tr1\tr2\n\t1\t0\nt2\t0\t1\n", ["row without a target id (line 2)", "Fill it in"]),
    ("target\tr1\t\tr3\nt1\t1\t0\t0\n", ["empty regulator id in its header (line 1, field 3)"]),
    ("r1,t1\nr2,t1\n", ["one field a line (line 1: 'r1,t1')", "name the file .csv"]),
    ("target\tr1\tr2\nt1\t0\t0\nt2\t0\t0\n", ["holds no known edge", "2 target(s) x 2 regulator(s)"]),
    ("r1\tt1\t0\nr2\tt1\t0\n", ["holds no known edge"]),
    ("regulator\ttarget\tweight\n", ["holds a header ('regulator', 'target', 'weight') and no edge"]),
    ("r1\tt1\t-1\nr2\tt1\t1\n", ["'t1'", "'r1'", "(line 1) is '-1'", "whatever its sign"]),
    ("AATF\tBAX\tRepression\t229\nAATF\tMYC\tUnknown\t171\nABL1\tBAX\tActivation\t117\n",
     ["4 fields a line and ids, not 0/1, in its second column (line 2: 'AATF', 'MYC')", "cut -f1,2"]),
], ids=["empty cell", "empty first regulator cell", "NA in the first regulator", "mixed 0/1 and ids",
        "duplicate target", "duplicate regulator", "ragged", "conflicting edge", "a score", "empty target id",
        "empty regulator id", "commas in a .tsv", "no 1 in a matrix", "no 1 in an edge list", "a header alone",
        "a signed edge", "a TRRUST-like edge list of 4 columns"])
def test_gold_standard_errors_are_gold_standard_errors(tmp_path, text, needles):
    p = tmp_path / "gs.tsv"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        read_gold_standard(str(p))
    msg = " ".join(str(e.value).split())
    assert str(p) in msg and all(n in msg for n in needles), msg
    assert "Expression values" not in msg and "missing:" not in msg and "probes" not in msg


def test_gold_standard_of_one_edge_is_an_edge_list(tmp_path):
    """A one-line file of two or three fields is one known edge (with or without a header line)."""
    for name, text in {"e2.tsv": "r1\tt1\n", "e3.tsv": "r1\tt1\t1\n", "h.tsv": "TF\ttarget\nr1\tt1\n",
                       "tg.tsv": "TF\tTG\nr1\tt1\n"}.items():  # TF / TG (target gene): a header (an audit)
        (tmp_path / name).write_text(text)
        assert read_gold_standard(str(tmp_path / name)).to_dict() == {"r1": {"t1": 1}}, name


# --------------------------------------------------------------------------- evidence over every candidate
def test_clr_matches_its_definition():
    rng = np.random.default_rng(3)
    S = rng.gamma(2.0, size=(7, 5))
    S[2, 1] = np.nan  # a target's own column
    out = clr(S)
    for i in range(7):
        for j in range(5):
            if i == 2 and j == 1:
                assert np.isnan(out[i, j])
                continue
            row = [v for v in S[i] if np.isfinite(v)]
            col = [v for v in S[:, j] if np.isfinite(v)]
            zr = (S[i, j] - np.mean(row)) / np.std(row)
            zc = (S[i, j] - np.mean(col)) / np.std(col)
            assert out[i, j] == pytest.approx(np.hypot(max(zr, 0), max(zc, 0)), rel=1e-12)


def ridge_reference(Z, y, lam):
    """Ridge on standardised data by the normal equations, with the sandwich standard errors."""
    n, p = Z.shape
    A = np.linalg.inv(Z.T @ Z + lam * np.eye(p))
    b = A @ Z.T @ y
    H = Z @ A @ Z.T
    sigma2 = np.sum((y - H @ y) ** 2) / (n - 1 - np.trace(H))
    se = np.sqrt(sigma2 * np.diag(A @ Z.T @ Z @ A))
    return b, np.abs(b) / se


def zscore(A):
    return (A - A.mean(axis=0)) / A.std(axis=0, ddof=1)


def test_ridge_evidence_penalty_by_cv_and_t_match_direct_fits():
    from sklearn.linear_model import Ridge

    X, genes, targets, regs, _ = planted(seed=4, n=90, n_reg=12, n_targets=4)
    Z, Y = X[:, :12], X[:, 12:]
    folds = kfold([str(i) for i in range(len(X))], 4, 1)
    lambdas = np.logspace(-2, 3, 12)
    res = ridge_evidence(Z, Y, folds, lambdas=lambdas)
    Zs, Ys = zscore(Z), zscore(Y)
    for j in range(Y.shape[1]):
        # CV error of every penalty by scikit-learn (intercept fitted on each fold's training part)
        err = np.array([[np.mean((Ys[folds == f, j] - Ridge(alpha=lam).fit(Zs[folds != f], Ys[folds != f, j])
                                  .predict(Zs[folds == f])) ** 2) for f in range(4)] for lam in lambdas])
        mean, se = err.mean(axis=1), err.std(axis=1, ddof=1) / 2.0
        best = np.argmin(mean)
        one_se = max(i for i in range(len(lambdas)) if mean[i] <= mean[best] + se[best])
        np.testing.assert_allclose(res.cv_mse[:, j], mean, rtol=1e-8)
        assert res.lam[j] == lambdas[one_se] and res.lam_min[j] == lambdas[best]
        b, t = ridge_reference(Zs, Ys[:, j], lambdas[one_se])
        np.testing.assert_allclose(res.coef[j], b, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(res.abs_t[j], t, rtol=1e-8)
    assert ridge_evidence(Z, Y, folds, lambdas=lambdas, rule="min").lam.tolist() == res.lam_min.tolist()


def test_ridge_evidence_shared_penalty_is_the_median_of_the_targets_choices():
    X, *_ = planted(seed=6, n=90, n_reg=12, n_targets=5)
    Z, Y = X[:, :12], X[:, 12:]
    Y[:, 1] *= 0.3  # different signal-to-noise per target, so that the targets choose different penalties
    Y[:, 1] += np.random.default_rng(0).normal(size=len(Y)) * 3.0
    Y = np.column_stack([Y, np.full(len(Y), 2.5)])  # a constant target takes no part
    folds = kfold([str(i) for i in range(len(X))], 4, 1)
    lambdas = np.logspace(-2, 3, 12)
    own = ridge_evidence(Z, Y, folds, lambdas=lambdas)
    res = ridge_evidence(Z, Y, folds, lambdas=lambdas, shared=True)
    chosen = own.lam[:-1]
    assert len(set(chosen.tolist())) > 1
    lam = np.sort(chosen)[(len(chosen) - 1) // 2]  # the lower median over the five varying targets
    assert (res.lam == lam).all() and res.lam_target.tolist() == own.lam.tolist()
    Zs, Ys = zscore(Z), zscore(Y[:, :-1])
    for j in range(Ys.shape[1]):
        b, t = ridge_reference(Zs, Ys[:, j], lam)
        np.testing.assert_allclose(res.coef[j], b, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(res.abs_t[j], t, rtol=1e-8)
    assert np.isnan(res.abs_t[-1]).all()


def test_ridge_evidence_leaves_a_target_out_of_its_own_design():
    X, *_ = planted(seed=5, n=80, n_reg=10, n_targets=3)
    Z = X[:, :10]
    Y = np.column_stack([X[:, 3], X[:, 10]])  # the first target is candidate 3 itself
    folds = kfold([str(i) for i in range(len(X))], 4, 0)
    res = ridge_evidence(Z, Y, folds, self_col=np.array([3, -1]), lambdas=np.array([5.0]))
    assert np.isnan(res.abs_t[0, 3]) and np.isfinite(res.abs_t[0, np.arange(10) != 3]).all()
    keep = np.arange(10) != 3
    b, t = ridge_reference(zscore(Z[:, keep]), zscore(Y)[:, 0], 5.0)
    np.testing.assert_allclose(res.coef[0, keep], b, rtol=1e-8)
    np.testing.assert_allclose(res.abs_t[0, keep], t, rtol=1e-8)
    assert np.isfinite(res.abs_t[1]).all()


def test_gradient_importance_of_a_linear_network_is_its_standardised_weights():
    torch = pytest.importorskip("torch")
    net = GeneMLP(3, [], n_out=2)
    with torch.no_grad():
        net.net[0].weight.copy_(torch.tensor([[0.5, -2.0, 0.0], [1.0, 0.25, -3.0]]))
        net.x_scale.copy_(torch.tensor([2.0, 0.5, 1.0]))
        net.x_mean.copy_(torch.tensor([1.0, -1.0, 0.0]))
    X = np.random.default_rng(0).normal(size=(9, 3))
    # z = W (x - m) / s + b: d z / d x = W / s, times sd(x) = s per standardised input
    np.testing.assert_allclose(gradient_importance(net, X, block=1),
                               np.abs([[0.5, -2.0, 0.0], [1.0, 0.25, -3.0]]), rtol=1e-6)


def test_network_evidence_ranks_non_linear_regulators_first():
    rng = np.random.default_rng(11)
    n, p = 160, 10
    Z = rng.normal(size=(n, p))
    Y = np.column_stack([
        Z[:, 0] * Z[:, 1] + 0.1 * rng.normal(size=n),  # an interaction: no correlation with either input
        np.abs(Z[:, 2]) + np.sin(2 * Z[:, 3]) + 0.1 * rng.normal(size=n),
    ])
    folds = kfold([str(i) for i in range(n)], 4, 0)
    S, info = network_evidence(Z, Y, folds, hidden=16, epochs=300)
    assert set(np.argsort(-S[0])[:2]) == {0, 1}
    assert set(np.argsort(-S[1])[:2]) == {2, 3}
    assert info["networks"] == 2 * 3 and sum(info["weight_decay_chosen"].values()) == 2
    # the same seed, the same scores
    np.testing.assert_array_equal(S, network_evidence(Z, Y, folds, hidden=16, epochs=300)[0])
    # a target that is a candidate cannot use itself
    S2, _ = network_evidence(Z, Z[:, [4]], folds, self_col=np.array([4]), hidden=8, epochs=50)
    assert np.isnan(S2[0, 4]) and np.isfinite(np.delete(S2[0], 4)).all()


def test_recovery_adam_is_torch_optims_fused_adam_to_the_bit():
    """The recovery networks' Adam calls the fused kernel as torch.optim.Adam(fused=True) does (without importing
    torch._dynamo, as torch.optim's first step does): the same parameters after 25 steps, bit for bit, and the
    unfused torch.optim.Adam's to float rounding."""
    import torch

    from gexpred.recovery import _Adam, _adam

    gen = torch.Generator().manual_seed(5)
    start = [torch.randn(7, 3, generator=gen), torch.randn(3, generator=gen)]
    grads = [[torch.randn(q.shape, generator=gen) for q in start] for _ in range(25)]

    def run(make):
        params = [q.clone().requires_grad_(True) for q in start]
        opt = make(params)
        for g in grads:
            opt.zero_grad()
            for q, gq in zip(params, g):
                q.grad = gq.clone()
            opt.step()
        return [q.detach() for q in params]

    try:
        fused = run(lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True))
    except RuntimeError:
        pytest.skip("this torch has no fused Adam on the CPU")
    ours = run(lambda ps: _Adam(ps, 0.01))
    assert isinstance(_adam([torch.zeros(1, requires_grad=True)], 0.01), _Adam)
    for a, b, c in zip(ours, fused, run(lambda ps: torch.optim.Adam(ps, lr=0.01))):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-7)
        assert not torch.equal(a, start[0] if a.shape == start[0].shape else start[1])


def test_clr_mean_is_the_mean_of_the_sources_clr_scores():
    """The combination averages each source's CLR matrix (recomputed here from CLR's definition); a pair any
    source could not score stays unscored, and the edge table of the default ranking follows it."""
    rng = np.random.default_rng(3)
    a, b = np.abs(rng.normal(size=(5, 4))), np.abs(rng.normal(size=(5, 4)))
    a[2, 1] = np.nan

    def clr_by_hand(S):
        out = np.full(S.shape, np.nan)
        for i in range(S.shape[0]):
            for j in range(S.shape[1]):
                if np.isnan(S[i, j]):
                    continue
                row, col = S[i][~np.isnan(S[i])], S[:, j][~np.isnan(S[:, j])]
                zr = max(0.0, (S[i, j] - row.mean()) / row.std())
                zc = max(0.0, (S[i, j] - col.mean()) / col.std())
                out[i, j] = np.sqrt(zr ** 2 + zc ** 2)
        return out

    ev = Evidence([f"t{i}" for i in range(5)], [f"r{j}" for j in range(4)], {"a": a, "b": b}, {})
    got = ev.rankings()[("clr_mean", "clr")]
    want = (clr_by_hand(a) + clr_by_hand(b)) / 2
    assert np.isnan(got[2, 1]) and np.isnan(want[2, 1])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(clr_mean({"a": clr(a), "b": clr(b)}), want, rtol=1e-12)
    gold = pd.DataFrame(0, index=ev.targets, columns=ev.candidates)
    edges = edge_table(ev, gold, "clr_mean", "none", top=3)  # a combination is always after CLR
    order = np.argsort(-np.nan_to_num(want, nan=-np.inf).ravel(), kind="stable")[:3]
    np.testing.assert_allclose(edges["score"], want.ravel()[order], rtol=1e-12)
    assert available_rankings(["a", "b"]) == {"a", "b", "clr_mean", "rank_average"}
    assert available_rankings(["a"]) == {"a"}
    assert available_rankings(["a"], prior=True) == {"a", "tf_activity"}


def test_rank_average_is_the_mean_of_pooled_ranks():
    from scipy.stats import rankdata

    a = np.array([[3.0, 1.0], [np.nan, 2.0]])
    b = np.array([[0.1, 0.4], [0.3, 0.2]])
    ra = rank_average({"a": a, "b": b})
    fa = np.array([3.0, 1.0, 2.0])  # a's finite entries in order
    ranks_a = rankdata(fa) / 3
    ranks_b = rankdata(b.ravel()) / 4
    assert np.isnan(ra[1, 0])
    np.testing.assert_allclose([ra[0, 0], ra[0, 1], ra[1, 1]],
                               (ranks_a + ranks_b[[0, 1, 3]]) / 2, rtol=1e-12)
    np.testing.assert_allclose(global_ranks(b), ranks_b.reshape(2, 2))


def test_evaluation_judges_only_gold_targets_and_never_self_pairs():
    targets, cands = ["t1", "r1", "t3"], ["r1", "r2", "r3"]
    gold = pd.DataFrame({"r1": [1, 1, 0], "r2": [0, 0, 0], "r3": [0, 1, 0]}, index=["t1", "r1", "t3"])
    # r1 regulates itself (its own pair is never judged) and is regulated by r3; t3 has no known regulator
    S = np.array([[0.9, 0.1, 0.5], [np.nan, 0.2, 0.8], [0.3, 0.4, 0.6]])
    ev = Evidence(targets=targets, candidates=cands, scores={"x": S}, info={})
    tab, _ = evaluate_evidence(ev, gold, "all")
    row = tab[tab["normalization"] == "none"].iloc[0]
    assert (row["n_targets"], row["n_pairs"], row["n_positive"]) == (2, 5, 2)
    # judged pairs: t1 (0.9 +, 0.1, 0.5), r1 (0.2, 0.8 +): both known edges ranked first
    assert row["auroc"] == 1.0 and row["aupr"] == 1.0
    assert judged_targets(gold, ["t1", "r1", "t3", "r2", "r3"], cands) == ["t1", "r1"]
    edges = edge_table(ev, gold, "x", "none", top=3)
    assert edges[["target", "regulator"]].values.tolist() == [["t1", "r1"], ["r1", "r3"], ["t3", "r3"]]
    assert edges["known"].tolist() == [1, 1, 0] and edges["rank"].tolist() == [1, 2, 3]


def test_known_regulators_scope_leaves_out_candidates_without_a_known_target():
    """The DREAM5 convention: the same targets, only the candidates with a known target among them; AUROC and AUPR
    equal scikit-learn's on exactly those pairs (self pairs never judged), and every candidate counts by default."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(7)
    targets = [f"t{i}" for i in range(25)] + ["r0"]
    cands = [f"r{j}" for j in range(10)]
    known = np.zeros((len(targets), len(cands)), dtype=int)
    known[rng.random(known.shape) < 0.15] = 1
    known[:, 6:] = 0  # r6-r9 regulate nothing the gold standard knows
    known[-1, 0] = 1  # r0 regulates itself: never judged
    known[:, 1] = 0
    known[3, 1] = 1  # r1's only known target, t3, is left out of the scope below: r1 then counts as unknown too
    gold = pd.DataFrame(known, index=targets, columns=cands)
    S = rng.normal(size=known.shape) + 1.5 * known
    S[-1, 0] = np.nan
    ev = Evidence(targets=targets, candidates=cands, scores={"x": S}, info={})
    scope = [t for t in targets if t != "t3"]
    own = np.asarray(targets)[:, None] == np.asarray(cands)[None, :]
    rows = np.isin(targets, scope) & (known & ~own).any(axis=1)
    for only, cols in ((False, np.ones(len(cands), bool)), (True, (known[rows] & ~own[rows]).any(axis=0))):
        tab, _ = evaluate_evidence(ev, gold, "s", scope, known_regulators_only=only)
        row = tab[tab["normalization"] == "none"].iloc[0]
        mask = rows[:, None] & cols[None, :] & ~own
        y, s = known[mask].astype(bool), S[mask]
        assert row["n_pairs"] == mask.sum() and row["n_positive"] == y.sum() and row["n_targets"] == rows.sum()
        assert row["aupr"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert row["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert cols.sum() == 5  # r0 and r2-r5: r1's only known target is out of scope, r6-r9 have none


def test_regulator_known_targets_counts_each_regulators_known_targets_but_itself():
    """Counted here by hand: known edges per column over the evidence's targets (rows of the gold standard
    only), a regulator's edge to itself not counted, missing for a candidate the gold standard has no column
    for; edge_table carries the count of each pair's regulator."""
    from gexpred.recovery import regulator_known_targets

    gold = pd.DataFrame({"r1": [1, 1, 0, 1], "r2": [0, 0, 0, 0], "r3": [1, 0, 1, 0]},
                        index=["t1", "r1", "t3", "t9"])  # t9 is not a target of the evidence
    targets, cands = ["t1", "r1", "t3", "t4"], ["r1", "r2", "r3", "r4"]  # t4 has no row, r4 no column
    S = np.arange(16, dtype=float).reshape(4, 4)
    S[1, 0] = np.nan
    ev = Evidence(targets=targets, candidates=cands, scores={"x": S}, info={})
    got = regulator_known_targets(ev, gold)
    assert got.index.tolist() == cands
    # r1: t1 (r1's own row is itself, not counted; t9 not a target); r2: none; r3: t1, t3
    assert got.iloc[:3].tolist() == [1, 0, 2] and got.isna().tolist() == [False, False, False, True]
    edges = edge_table(ev, gold, "x", "none", top=20)
    want = {"r1": 1, "r2": 0, "r3": 2}
    for reg, n in zip(edges["regulator"], edges["regulator_known_targets"]):
        assert (pd.isna(n) and reg == "r4") or n == want[reg]


def test_edge_table_shows_ols_t_only_for_candidates_in_the_model():
    ev = Evidence(targets=["t1"], candidates=["r1", "r2"], scores={"ols": np.array([[4.5, 0.3]])}, info={})
    gold = pd.DataFrame({"r1": [1], "r2": [0]}, index=["t1"])
    edges = edge_table(ev, gold, "ols", "none")
    assert edges["regulator"].tolist() == ["r1", "r2"]
    assert edges["ols_abs_t"].iloc[0] == pytest.approx(2.5) and np.isnan(edges["ols_abs_t"].iloc[1])


# --------------------------------------------------------------------------- prior knowledge: TF activity
def hidden_activity_data(seed=0, n=240, n_tf=8, n_targets=120, trace=0.15, mrna_noise=1.0, noise=0.5):
    """Regulators whose mRNA barely follows their activity (as for a TF switched on by a ligand or by
    phosphorylation): each target follows the activities of one or two of them (activators)."""
    rng = np.random.default_rng(seed)
    act = rng.normal(size=(n, n_tf))
    Z = trace * act + mrna_noise * rng.normal(size=(n, n_tf))  # the regulators' expression: by default a weak trace
    known = np.zeros((n_targets, n_tf), dtype=bool)
    for i in range(n_targets):
        known[i, rng.choice(n_tf, size=1 + i % 2, replace=False)] = True
    W = known * rng.uniform(0.7, 1.3, size=known.shape)  # activators: an unsigned prior assumes one direction
    Y = act @ W.T + noise * rng.normal(size=(n, n_targets))
    return Z, Y, known


def test_regulator_groups_put_targets_with_the_same_known_regulators_together():
    from gexpred.recovery import regulator_groups

    known = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    assert regulator_groups(known).tolist() == [0, 1, 0, 2, 1, 2]


def test_regulator_activity_is_the_least_squares_solution_of_the_known_edges():
    from gexpred.recovery import regulator_activity

    Z, Y, known = hidden_activity_data(n=60, n_targets=30)
    known[:, 7] = False  # a regulator with no known target keeps its own expression
    A, estimated = regulator_activity(Y, known, Z)
    ref = np.linalg.lstsq(known.astype(float), Y.T, rcond=None)[0].T  # minimum-norm solution of Y = A P'
    np.testing.assert_allclose(A[:, :7], ref[:, :7], atol=1e-10)
    np.testing.assert_array_equal(A[:, 7], Z[:, 7])
    assert estimated.tolist() == [True] * 7 + [False]


def test_activity_evidence_recovers_regulators_that_expression_cannot_show():
    """The regulators' mRNA hardly tells them apart (|r| with the targets), their activities estimated from the
    other targets' known edges do; a prior of shuffled edges does not help (no artefact of the prior's form)."""
    from gexpred.recovery import activity_evidence

    Z, Y, known = hidden_activity_data()
    folds = kfold([f"s{i}" for i in range(len(Z))], 5, 0)
    S, info = activity_evidence(Z, Y, known, folds, k=5, seed=0)
    corr = np.abs(np.corrcoef(Y.T, Z.T)[: Y.shape[1], Y.shape[1]:])
    ap_activity = average_precision(S.ravel(), known.ravel())
    ap_corr = average_precision(corr.ravel(), known.ravel())
    assert ap_activity > 0.95 and ap_corr < 0.75, (ap_activity, ap_corr)  # random: about 0.19
    assert info["target_folds"] == 5 and info["groups"] == len({tuple(r) for r in known.tolist()})
    shuffled = known[np.random.default_rng(1).permutation(len(known))]
    S_shuffled, _ = activity_evidence(Z, Y, shuffled, folds, k=5, seed=0)
    assert average_precision(S_shuffled.ravel(), shuffled.ravel()) < 0.3  # about random


def test_activity_evidence_keeps_the_expression_where_it_is_the_activity():
    """Regulators whose mRNA is their activity (as in in-silico networks) and a prior that knows few of their
    targets: the expression beside the activities keeps the ranking at least as good as correlation."""
    from gexpred.recovery import activity_evidence

    Z, Y, known = hidden_activity_data(trace=1.0, mrna_noise=0.1, n_targets=60, noise=3.0)
    prior = known & (np.random.default_rng(2).random(known.shape) < 0.3)  # the prior knows 30 % of the edges
    folds = kfold([f"s{i}" for i in range(len(Z))], 5, 0)
    S, _ = activity_evidence(Z, Y, prior, folds, k=5, seed=0)
    corr = np.abs(np.corrcoef(Y.T, Z.T)[: Y.shape[1], Y.shape[1]:])
    assert average_precision(S.ravel(), known.ravel()) >= average_precision(corr.ravel(), known.ravel()) - 0.02


def test_activity_evidence_never_uses_a_targets_own_known_regulators():
    """A target's scores are the same whatever its own row of the prior says (the folds held fixed), and equal
    |t| of ridge on the regulators' expression and their activities from the other folds' targets alone
    (normal equations at the chosen penalty)."""
    from gexpred.recovery import activity_evidence, standardize

    Z, Y, known = hidden_activity_data(n=120, n_targets=40)
    folds = kfold([f"s{i}" for i in range(len(Z))], 4, 0)
    groups = np.arange(len(known))  # every target its own group: the folds below do not depend on `known`
    S, info = activity_evidence(Z, Y, known, folds, k=4, seed=3, groups=groups)
    other = known.copy()
    other[5] = ~other[5]  # target 5 now claims every other regulator
    S2, _ = activity_evidence(Z, Y, other, folds, k=4, seed=3, groups=groups)
    np.testing.assert_array_equal(S[5], S2[5])
    assert not np.allclose(S, S2, equal_nan=True)  # the other folds did use row 5
    # target 5's scores from first principles: its fold, the others' activities, ridge at the fold's penalty
    order = np.random.default_rng(3).permutation(len(known))
    fold = np.empty(len(known), dtype=int)
    fold[order] = np.arange(len(known)) % 4
    tr, te = fold != fold[5], np.flatnonzero(fold == fold[5])
    Ys = standardize(Y)
    est = known[tr].any(axis=0)
    A = Ys[:, tr] @ np.linalg.pinv(known[tr].astype(float).T)
    lam = info["lambda"][int(fold[5])]
    Xs, y = standardize(np.hstack([Z, A[:, est]])), standardize(Y[:, [5]])[:, 0]  # expression and activities
    G = np.linalg.inv(Xs.T @ Xs + lam * np.eye(Xs.shape[1]))
    b = G @ Xs.T @ y
    H = Xs @ G @ Xs.T
    sigma2 = np.sum((y - H @ y) ** 2) / (len(y) - 1 - np.trace(H))
    t = np.abs(b) / np.sqrt(sigma2 * np.diag(G @ Xs.T @ Xs @ G))
    expected = t[: Z.shape[1]].copy()
    expected[est] += t[Z.shape[1]:]  # a candidate scores its expression's |t| plus its activity's
    np.testing.assert_allclose(S[5], expected, rtol=1e-7)
    assert 5 in te


def test_prior_ranking_is_judged_apart_from_the_gold_free_ones():
    """tf_activity is evaluated and drawn, but clr_mean and rank_average stay the means of the gold-free sources."""
    from gexpred.recovery import add_prior_evidence

    Z, Y, known = hidden_activity_data(n=120, n_targets=40)
    genes = [f"r{j}" for j in range(Z.shape[1])] + [f"t{i}" for i in range(Y.shape[1])]
    X = np.hstack([Z, Y])
    gold = pd.DataFrame(known.astype(int), index=genes[Z.shape[1]:], columns=genes[: Z.shape[1]])
    folds = kfold([f"s{i}" for i in range(len(X))], 4, 0)
    ev = collect_evidence(X, genes, list(gold.index), list(gold.columns), folds, sources=("penalized", "correlation"))
    with_prior = add_prior_evidence(ev, X, genes, gold, folds, k=4, seed=0)
    assert add_prior_evidence(ev, X, genes, gold, folds, k=0) is ev
    r0, r1 = ev.rankings(), with_prior.rankings()
    for key in r0:
        np.testing.assert_array_equal(r0[key], r1[key])
    assert set(r1) - set(r0) == {("tf_activity", "none"), ("tf_activity", "clr")}
    table, _ = evaluate_evidence(with_prior, gold, "all")
    aupr = table.set_index(["method", "normalization"])["aupr"]
    assert aupr[("tf_activity", "none")] > aupr[("clr_mean", "clr")]
    # written as the inferred network on request, with its own score beside the gold-free sources'
    edges = edge_table(with_prior, gold, "tf_activity", "none", top=10)
    np.testing.assert_array_equal(edges["score"], edges["tf_activity"])
    assert {"penalized", "correlation"} <= set(edges.columns) and edges["score"].is_monotonic_decreasing


# --------------------------------------------------------------------------- the recovery verb
def _recovery_inputs(tmp_path, constant: str | None = None):
    """A planted network (R0-R5 regulate G0-G7), its data, splits and predictors table."""
    import anndata as ad

    rng = np.random.default_rng(7)
    n = 60
    R = rng.normal(size=(n, 6))
    W = np.zeros((8, 6))
    for t in range(8):
        W[t, [t % 6, (t + 2) % 6]] = [1.0, -0.8]
    genes = [f"R{i}" for i in range(6)] + [f"G{i}" for i in range(8)]
    X = np.hstack([R, R @ W.T + 2.0 * rng.normal(size=(n, 8))])
    if constant:
        X[:, genes.index(constant)] = 1.0
    samples = [f"s{i}" for i in range(n)]
    ad.AnnData(X=X, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=genes)).write_h5ad(tmp_path / "d.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 48 + ["test"] * 12}).to_csv(tmp_path / "s.tsv", sep="\t",
                                                                                    index=False)
    pd.DataFrame({"target": ["G0"], "gene": ["R0"]}).to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    return W


def _run_recovery(tmp_path, gold: str) -> int:
    from gexpred.cli import main

    (tmp_path / "gold.tsv").write_text(gold)
    return main(["recovery", "--data", str(tmp_path / "d.h5ad"), "--splits", str(tmp_path / "s.tsv"),
                 "--predictors", str(tmp_path / "p.tsv"), "--gold-standard", str(tmp_path / "gold.tsv"),
                 "--spec", '{"top_correlated": 2}', "--sources", "ols", "correlation", "--prior-folds", "0",
                 "--k", "3", "--out", str(tmp_path / "rec.tsv"), "--out-figure", str(tmp_path / "rec.png"),
                 "--out-edges", str(tmp_path / "edges.tsv")])


@pytest.mark.usefixtures("restore_logging")
def test_recovery_verb_metrics_match_scikit_learn_on_a_partly_matching_gold_standard(tmp_path):
    """Ids the data lacks (X targets, RX) are left out; the table's AUROC/AUPR are scikit-learn's on the judged
    pairs of the written ranking."""
    metrics = pytest.importorskip("sklearn.metrics")
    W = _recovery_inputs(tmp_path)
    lines = [f"R{j}\tG{t}\n" for t in range(8) for j in range(6) if W[t, j]]
    assert _run_recovery(tmp_path, "".join(lines) + "RX\tG1\nR0\tX1\nR1\tX2\n") == 0
    rec = pd.read_csv(tmp_path / "rec.tsv", sep="\t").set_index(["scope", "method", "normalization"])
    edges = pd.read_csv(tmp_path / "edges.tsv", sep="\t")
    judged = edges[edges["known"].notna()]
    assert len(judged) == 8 * 6 and int(judged["known"].sum()) == 16
    row = rec.loc[("all_gold_standard_targets", "clr_mean", "clr")]
    assert (row["n_pairs"], row["n_positive"]) == (48, 16)
    assert row["auroc"] == pytest.approx(metrics.roc_auc_score(judged["known"], judged["score"]), abs=1e-12)
    assert row["aupr"] == pytest.approx(metrics.average_precision_score(judged["known"], judged["score"]), abs=1e-12)


@pytest.mark.usefixtures("restore_logging")
def test_recovery_verb_refuses_constant_targets_and_warns_when_every_pair_is_known(tmp_path, capsys):
    _recovery_inputs(tmp_path, constant="G0")
    assert _run_recovery(tmp_path, "R0\tG0\nR2\tG0\n") != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "constant on the training split ('G0')" in err and "Traceback" not in err, err
    assert not (tmp_path / "rec.tsv").exists()
    # beside a varying target: left out, by name
    assert _run_recovery(tmp_path, "R0\tG0\nR2\tG0\nR1\tG1\n") == 0
    assert "constant on the training split and left out of regulator recovery: 'G0'" in " ".join(
        capsys.readouterr().err.split())
    assert (pd.read_csv(tmp_path / "rec.tsv", sep="\t")["n_targets"] == 1).all()

    _recovery_inputs(tmp_path)
    assert _run_recovery(tmp_path, "R0\tG1\n") == 0
    assert "every one of the 1 judged (target, candidate) pairs is a known edge" in " ".join(
        capsys.readouterr().err.split())
    rec = pd.read_csv(tmp_path / "rec.tsv", sep="\t")
    assert rec["auroc"].isna().all() and (rec["aupr"] == 1.0).all()


@pytest.mark.usefixtures("restore_logging")
def test_recovery_verb_names_ids_that_differ_only_in_case(tmp_path, capsys):
    _recovery_inputs(tmp_path)
    assert _run_recovery(tmp_path, "r0\tg1\nr2\tg1\n") != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "regulators there: 'r0', 'r2'" in err and "2 match when case is ignored, e.g. 'r0'" in err, err


def test_describe_missing_says_which_ids_are_targets_and_which_regulators():
    from gexpred.recovery import describe_missing

    gold = pd.DataFrame(0, index=["a", "X1", "X2"], columns=["r", "RX"])
    assert describe_missing(gold, ["a", "r"]).endswith("(e.g. targets 'X1', 'X2'; regulators 'RX')")
    assert describe_missing(gold, ["a", "r", "X1", "X2", "RX"]).endswith("are not in the data")


def test_recovery_help_names_both_gold_standard_layouts(tmp_path, capsys):
    """`recovery --help` and `genome-recovery --help` called the gold standard a "targets x regulators 0/1 matrix";
    both read an edge list too (regulator, target[, 1]), as `gold-standard --help` says. Both layouts of the
    same edges read the same here."""
    from gexpred.cli import main

    for verb in ("recovery", "genome-recovery", "gold-standard"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)[1]
        assert "0/1 matrix" in text and "edge list" in text and "CSV" in text, verb
    (tmp_path / "m.tsv").write_text("target\tR1\tR2\nT1\t1\t0\nT2\t0\t1\n")
    (tmp_path / "e.csv").write_text("R1,T1\nR2,T2\n")
    m, e = read_gold_standard(str(tmp_path / "m.tsv")), read_gold_standard(str(tmp_path / "e.csv"))
    assert m.loc[["T1", "T2"], ["R1", "R2"]].to_numpy().tolist() == e.loc[["T1", "T2"], ["R1", "R2"]].to_numpy().tolist()
