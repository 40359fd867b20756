"""End-to-end: the workflow's genome-wide mode and separated classification targets on tiny generated datasets
(the classification run itself is tests/test_report_captions.py's, whose report it also checks).

Split from test_workflow.py (which holds the shared run of the regression workflow) so that pytest-xdist
can run the two modules' workflow runs side by side. Expected numbers come from statsmodels, firthmodels
and numpy, never from gexpred.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from test_workflow import run_snakemake, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["multi_output", "per_target"])
def test_genome_wide_mode_matches_statsmodels(tmp_path, mode):
    """targets: {file: ...} with a shared design: chunked batched OLS equals statsmodels per target; networks
    per chunk (one multi-output network, or one per target) chosen by the search on the validation part."""
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    n, g = 50, 30
    X = rng.normal(5, 1, (n, g))
    W = rng.normal(0, 0.6, (4, g - 8))
    X[:, 8:] += X[:, :4] @ W
    X[:, 29] = 2.0  # a constant target: reported, not crashed on
    genes = [f"g{i}" for i in range(g)]
    samples = [f"s{j}" for j in range(n)]
    (tmp_path / "data").mkdir()
    (tmp_path / "data/preds.txt").write_text("\n".join(genes[:4]) + "\n")
    (tmp_path / "data/targets.txt").write_text("\n".join(genes[4:]) + "\nNOT_A_GENE\n")
    # gold standard: each driven target's strongest regulator (g29, constant, and g4-g7 have none)
    gold = pd.DataFrame(0, index=genes[4:29], columns=genes[:4])
    for j in range(8, 29):
        gold.loc[genes[j], genes[int(np.argmax(np.abs(W[:, j - 8])))]] = 1
    gold.to_csv(tmp_path / "data/gold.tsv", sep="\t", index_label="target")
    ols = {"chunk_size": 7}
    terms = genes[:4]
    A_full = X[:, :4]
    if mode == "per_target":
        # the shared design also holds covariates (a categorical batch, a numeric age) and a product term:
        # every target adjusted for them, as statsmodels with the same columns
        batch = np.array(["b1", "b2", "b3"])[np.arange(n) % 3]
        age = rng.normal(50, 10, n)
        X[:, 8:29] += 0.8 * (batch == "b2")[:, None] + 0.05 * age[:, None]
        pd.DataFrame({"sample": samples, "batch": batch, "age": age}).to_csv(tmp_path / "data/sheet.tsv", sep="\t",
                                                                          index=False)
        ols.update(covariates=["batch", "age"], interactions=[["g0", "g1"]], gene_sets={"g0g2": ["g0", "g2"]})
        terms = [*genes[:4], "batch[T.b2]", "batch[T.b3]", "age", "g0:g1"]
        A_full = np.column_stack([X[:, :4], batch == "b2", batch == "b3", age, X[:, 0] * X[:, 1]])
    pd.DataFrame(X.T, index=genes, columns=samples).to_csv(tmp_path / "data/expr.tsv", sep="\t")
    write_config(tmp_path, targets={"file": "data/targets.txt"}, predictors={"from": "data/preds.txt"},
                 models=["ols", "mlp"], ols=ols, gold_standard="data/gold.tsv",
                 **({"sample_sheet": "data/sheet.tsv"} if mode == "per_target" else {}),
                 mlp={"hidden": [16], "epochs": 60, "patience": 15, "batch_size": 16, "lr": 0.01, "genome_mode": mode})
    run_snakemake(tmp_path)
    res = tmp_path / "results/ols/genome"
    assert len(list((res / "chunks").glob("*.coefficients.parquet"))) == 4  # 26 targets / 7 per chunk
    sp = pd.read_csv(tmp_path / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    train = [samples.index(s) for s in sp.index[sp == "train"]]
    coefs = pd.read_parquet(res / "coefficients.parquet").set_index(["target", "term"])
    fits = pd.read_csv(res / "fits.tsv", sep="\t").set_index("target")
    assert sorted(fits.index) == sorted(genes[4:])
    assert fits.loc["g29", "status"] == "constant_target"
    A = sm.add_constant(A_full[train].astype(float))
    for j in range(4, 29):
        ref = sm.OLS(X[train][:, j], A).fit()
        ours = coefs.loc[genes[j]].loc[["const", *terms]]
        assert len(coefs.loc[genes[j]]) == len(terms) + 1
        for col, val in (("coef", ref.params), ("std_err", ref.bse), ("t", ref.tvalues), ("p_value", ref.pvalues)):
            np.testing.assert_allclose(ours[col], val, rtol=1e-8, err_msg=f"{genes[j]} {col}")
        ci = ref.conf_int(0.05)
        np.testing.assert_allclose(ours["ci_low"], ci[:, 0], rtol=1e-8)
        np.testing.assert_allclose(ours["ci_high"], ci[:, 1], rtol=1e-8)
        for col, val in (("r2", ref.rsquared), ("adj_r2", ref.rsquared_adj), ("f_stat", ref.fvalue),
                         ("f_pvalue", ref.f_pvalue)):
            np.testing.assert_allclose(fits.loc[genes[j], col], val, rtol=1e-8, err_msg=f"{genes[j]} {col}")
    nested = pd.read_csv(res / "nested_tests.tsv", sep="\t")
    if mode == "per_target":
        # the gene set's nested F-test (g0, g2 and the product g0:g1 removed) against statsmodels, every target;
        # q-values by Benjamini-Hochberg over the targets' tests
        from statsmodels.stats.multitest import multipletests

        nested = nested.set_index("target")
        assert set(nested["gene_set"]) == {"g0g2"} and (nested["terms"] == "g0 g2 g0:g1").all()
        keep = [terms.index(t) for t in terms if t not in ("g0", "g2", "g0:g1")]
        for j in range(4, 29):
            full = sm.OLS(X[train][:, j], A).fit()
            red = sm.OLS(X[train][:, j], sm.add_constant(A_full[train][:, keep].astype(float))).fit()
            f, p, df = full.compare_f_test(red)
            np.testing.assert_allclose(nested.loc[genes[j], ["f_stat", "p_value"]].to_numpy(float), [f, p], rtol=1e-8)
            assert nested.loc[genes[j], "df_num"] == df == 3
        ok = nested["p_value"].notna()
        assert ok.sum() == 25 and nested.loc["g29", ["f_stat", "q_value"]].isna().all()
        np.testing.assert_allclose(nested.loc[ok, "q_value"], multipletests(nested.loc[ok, "p_value"],
                                                                            method="fdr_bh")[1], rtol=1e-12)
    else:
        assert nested.empty
    # q-values: Benjamini-Hochberg (statsmodels) over every non-intercept term of every target; the
    # significant table is the terms below the FDR, smallest q first
    from statsmodels.stats.multitest import multipletests

    tested = coefs[coefs.index.get_level_values("term") != "const"].dropna(subset=["p_value"])
    want_q = multipletests(tested["p_value"].to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(tested["q_value"].to_numpy(), want_q, rtol=1e-12)
    assert coefs.loc[coefs.index.get_level_values("term") == "const", "q_value"].isna().all()
    sig = pd.read_csv(res / "significant.tsv", sep="\t")
    expected = tested[want_q < 0.05].reset_index()
    assert len(sig) == len(expected) > 0
    assert sig["q_value"].is_monotonic_increasing
    assert set(zip(sig["target"], sig["term"])) == set(zip(expected["target"], expected["term"]))
    assert (tmp_path / "results/plots/genome_ols.png").is_file()
    # regulator recovery from the batched fits: the OLS ranking is |t| of the chunks (statsmodels here)
    from sklearn.metrics import roc_auc_score

    table = pd.read_csv(tmp_path / "results/recovery/regulator_recovery.tsv", sep="\t")
    assert set(table["scope"]) == {"all_gold_standard_targets", "known_regulators"}
    rec = table[table["scope"] == "all_gold_standard_targets"].set_index(["method", "normalization"])
    assert {m for m, _ in rec.index} == {"ols", "penalized", "network", "correlation", "clr_mean", "rank_average",
                                         "tf_activity"}
    assert (rec["n_targets"] == 21).all() and (rec["n_positive"] == 21).all() and (rec["n_pairs"] == 84).all()
    # the DREAM5 convention keeps the predictors that are some target's strongest regulator
    n_known = int((gold.loc[genes[8:29], genes[:4]] == 1).any(axis=0).sum())
    assert (table.loc[table["scope"] == "known_regulators", "n_pairs"] == 21 * n_known).all()
    t_ref, labels = [], []
    for j in range(8, 29):
        ref = sm.OLS(X[train][:, j], A).fit()
        t_ref += list(np.abs(ref.tvalues[1:5]))
        labels += list(gold.loc[genes[j], genes[:4]].to_numpy() == 1)
    assert rec.loc[("ols", "none"), "auroc"] == pytest.approx(roc_auc_score(labels, t_ref), abs=1e-9)
    # with the product g0:g1 of two uncentred genes (mean 5) in the design, g0's and g1's own t's are those of
    # their effects where the other is 0, far from the data: a weaker ranking, still above chance
    floor = 0.8 if mode == "multi_output" else 0.6
    assert rec.loc[("ols", "none"), "auroc"] > floor and rec.loc[("network", "none"), "auroc"] > 0.7, rec["auroc"]
    edges = pd.read_csv(tmp_path / "results/recovery/edges.tsv", sep="\t")
    assert len(edges) == 84 and set(edges["known"]) == {0, 1}
    # networks: one multi-output network per chunk; the comparison across targets from the metrics tables
    assert len(list((tmp_path / "results/mlp/genome/chunks").glob("*.model.pt"))) == 4
    metrics = pd.read_csv(tmp_path / "results/compare/genome_metrics.tsv", sep="\t")
    assert set(metrics["model"]) == {"ols", "mlp", "mean"}
    test = metrics[metrics["split"] == "test"]
    g5 = test[test["target"] == "g5"].set_index("model")
    yt = X[[samples.index(s) for s in sp.index[sp == "test"]], 5]
    np.testing.assert_allclose(g5.loc["mean", "mse"], np.mean((yt - X[train, 5].mean()) ** 2), rtol=1e-10)
    summary = pd.read_csv(tmp_path / "results/compare/genome_summary.tsv", sep="\t").set_index("model")
    r2 = test.pivot(index="target", columns="model", values="r2")
    for m in ("ols", "mlp"):
        np.testing.assert_allclose(summary.loc[m, "median_test_r2"], r2[m].dropna().median(), rtol=1e-12)
    mse = test.pivot(index="target", columns="model", values="mse")
    # every fitted target has a best model but the constant g29, where every model's test MSE is 0: a tie
    unique_min = mse.eq(mse.min(axis=1), axis=0).sum(axis=1) == 1
    assert summary["n_best"].sum() == int((mse.notna().any(axis=1) & unique_min).sum()) == 25
    per = pd.read_csv(tmp_path / "results/compare/genome_targets.tsv", sep="\t").set_index("target")
    assert per.loc["g29", "best_model"] == "tie"
    untied = mse.dropna()
    untied = untied[untied.nunique(axis=1) == 3]
    assert len(untied) >= 20
    assert (per.loc[untied.index, "best_model"] == untied.idxmin(axis=1)).all()
    assert (tmp_path / "results/plots/genome_comparison.png").is_file()
    # the network search (search.mlp: hidden [[], [8]]): two candidates per chunk, judged on the validation part
    # of the training split; a multi-output chunk keeps the one with the lowest mean validation loss, a
    # per-target chunk each target's best
    search = pd.read_csv(tmp_path / "results/compare/genome_search.tsv", sep="\t", dtype={"hidden": str})
    assert len(search) == 8 and sorted(set(search["chunk"])) == [0, 1, 2, 3]
    for chunk, rows in search.groupby("chunk"):
        meta = json.loads((tmp_path / f"results/mlp/genome/chunks/{chunk:05d}.model.json").read_text())
        assert meta["mode"] == mode and meta["search"]["n_candidates"] == 2
        n_fit = len(meta["targets"])
        assert (rows["n_targets"] == n_fit).all() and rows["n_selected"].sum() == n_fit
        if mode == "per_target":
            hidden = {c: json.loads(h) for c, h in zip(rows["candidate"], rows["hidden"])}
            assert [a["hidden"] for a in meta["architectures"]] == [hidden[c] for c in meta["selected"]]
            assert all(a["n_out"] == 1 for a in meta["architectures"])
            continue
        assert meta["architecture"]["n_out"] == n_fit == (7 if chunk < 3 else 4)  # g29 is constant
        best = rows.loc[rows["val_nmse_mean"].idxmin()]
        assert meta["selected"] == best["candidate"]
        assert meta["architecture"]["hidden"] == json.loads(best["hidden"])
        assert rows["n_selected"].tolist() == [rows["n_targets"].max() if c == best["candidate"] else 0
                                              for c in rows["candidate"]]


def test_classification_separation(tmp_path):
    """Separated classes (g0 alone splits them, as a lineage marker splits lineages): by default the logistic
    regression is Firth's, matching firthmodels, the separation is named in the log, the tables and the
    report, and the run goes on to the network, the comparison and the report. ols.stop_on_separation: true
    stops instead with a clear message; ols.penalized: true fits ridge."""
    rng = np.random.default_rng(3)
    n = 60
    X = rng.normal(0, 1, (n, 4))
    samples = [f"s{j}" for j in range(n)]
    (tmp_path / "data").mkdir()
    pd.DataFrame(X.T, index=[f"g{i}" for i in range(4)], columns=samples).to_csv(tmp_path / "data/expr.tsv",
                                                                                 sep="\t")
    state = np.where(X[:, 0] > 0, "on", "off")
    pd.DataFrame({"sample": samples, "state": state}).to_csv(tmp_path / "data/sheet.tsv", sep="\t", index=False)
    base = dict(task="classification", sample_sheet="data/sheet.tsv", targets=["state"], predictors=["g0", "g1"])
    write_config(tmp_path, **base, models=["ols", "mlp"], search={"mlp": {"hidden": [[4]]}},
                 mlp={"hidden": [4], "epochs": 20, "patience": 5, "batch_size": 16, "ensemble": 1},
                 importance={"repeats": 2})
    # what is checked: the fits, the network's pair, the comparison and the report's facts (not the figures)
    run_snakemake(tmp_path, "--nocolor", *(f"results/{f}" for f in (
        "ols/state/coefficients.tsv", "ols/state/fit.tsv", "ols/state/importance.tsv", "mlp/state/interactions.tsv",
        "compare/metrics.tsv", "compare/summary.tsv", "report/facts.json")))
    res = tmp_path / "results"
    coefs = pd.read_csv(res / "ols/state/coefficients.tsv", sep="\t").set_index("term")
    assert (coefs["method"] == "firth").all()
    assert np.isfinite(coefs[["coef", "std_err", "p_value", "ci_low", "ci_high"]].to_numpy()).all()
    sp = pd.read_csv(res / "data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    train = [samples.index(s) for s in sp.index[sp == "train"]]
    firthmodels = pytest.importorskip("firthmodels")
    ref = firthmodels.FirthLogisticRegression(max_iter=1000, gtol=1e-7, xtol=1e-7).fit(
        X[train][:, :2], (state[train] == "on").astype(int))
    np.testing.assert_allclose(coefs.loc[["const", "g0", "g1"], "coef"], np.r_[ref.intercept_, ref.coef_], atol=1e-6)
    fit = pd.read_csv(res / "ols/state/fit.tsv", sep="\t").iloc[0]
    assert fit["method"] == "firth" and "'g0'" in fit["separation"] and f"{len(train)} training" in fit["separation"]
    imp = pd.read_csv(res / "ols/state/importance.tsv", sep="\t")  # separated folds fitted by Firth too
    assert imp["predictor"].iloc[0] == "g0" and imp["perm_mean"].iloc[0] > imp["perm_mean"].iloc[1]
    # the network's pair of a classification target: judged in the logistic regression (Firth's, the classes
    # being separated), never by the OLS F-test
    from gexpred.importance import INTERACTION_COLUMNS

    inter = pd.read_csv(res / "mlp/state/interactions.tsv", sep="\t")
    assert list(inter.columns) == INTERACTION_COLUMNS and len(inter) == 1 and inter["f_stat"].isna().all()
    tested = inter[inter["verdict"].isin(["confirmed", "not confirmed"])]
    assert (tested["lr_stat"].notna() & (tested["df_num"] == 1) & (tested["verdict"] == "not confirmed")).all()
    log = (res / "logs/ols/state.log").read_text()
    assert "separation" in log and "'g0'" in log and "Firth" in log
    metrics = pd.read_csv(res / "compare/metrics.tsv", sep="\t").set_index(["target", "model", "split"])
    assert np.isfinite(metrics.loc[("state", "mlp", "test"), ["accuracy", "auroc"]].astype(float)).all()
    assert (res / "compare/summary.tsv").is_file()
    facts = json.loads((res / "report/facts.json").read_text())
    assert "Firth" in facts["separation"] and "g0" in facts["targets"]["state"]["separation"]
    # the old behaviour, on request
    write_config(tmp_path, **base, models=["ols"], ols={"stop_on_separation": True})
    shutil.rmtree(res)
    # the logistic regression is all these two runs check: ask for its table only
    proc = run_snakemake(tmp_path, "--nocolor", "results/ols/state/coefficients.tsv", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "separation" in out and "'g0'" in out and "ols.stop_on_separation: false" in out
    assert "Traceback" not in out.split("RuleException")[0]
    write_config(tmp_path, **base, models=["ols"], ols={"penalized": True})
    run_snakemake(tmp_path, "--nocolor", "results/ols/state/coefficients.tsv")
    coefs = pd.read_csv(res / "ols/state/coefficients.tsv", sep="\t").set_index("term")
    assert np.isfinite(coefs["coef"]).all() and coefs["p_value"].isna().all() and (coefs["method"] == "ridge").all()
    assert coefs.loc["g0", "coef"] > 0  # 'on' (the non-reference class) goes with high g0
