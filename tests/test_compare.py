"""Tests of gexpred.compare against direct numpy/scipy computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gexpred.compare import (
    METRIC_COLUMNS,
    assemble_predictions,
    best_models,
    metrics_table,
    regression_metrics,
)


def _direct(o: np.ndarray, p: np.ndarray) -> dict[str, float]:
    sse = float(np.sum((o - p) ** 2))
    sst = float(np.sum((o - np.mean(o)) ** 2))
    return {"n": len(o), "mse": sse / len(o), "mae": float(np.mean(np.abs(o - p))),
            "r2": 1 - sse / sst, "pearson": float(stats.pearsonr(o, p)[0])}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_against_direct(seed):
    rng = np.random.default_rng(seed)
    o = rng.normal(loc=5, scale=2, size=50)
    p = 0.7 * o + rng.normal(size=50) + 1.0
    got = regression_metrics(o, p)
    exp = _direct(o, p)
    assert got["n"] == 50
    for k in ("mse", "mae", "r2", "pearson"):
        np.testing.assert_allclose(got[k], exp[k], rtol=1e-10, err_msg=k)


def test_r2_is_relative_to_observed_mean_and_can_be_negative():
    o = np.array([1.0, 2.0, 3.0, 4.0])
    # predicting the observed mean gives r2 exactly 0
    assert regression_metrics(o, np.full(4, o.mean()))["r2"] == pytest.approx(0.0, abs=1e-15)
    # perfect predictions give r2 = 1, mse = mae = 0, pearson = 1
    m = regression_metrics(o, o.copy())
    assert (m["r2"], m["mse"], m["mae"]) == (1.0, 0.0, 0.0) and m["pearson"] == pytest.approx(1.0)
    # far-off predictions: r2 = 1 - 4*100/5 = -79 by hand
    m = regression_metrics(o, o + 10.0)
    assert m["r2"] == pytest.approx(1 - 400 / 5.0)
    assert m["mse"] == pytest.approx(100.0) and m["mae"] == pytest.approx(10.0)
    assert m["pearson"] == pytest.approx(1.0)
    # anti-correlated predictions
    assert regression_metrics(o, -o)["pearson"] == pytest.approx(-1.0)


def test_pearson_nan_for_constant_predictions_or_observed():
    o = np.array([1.0, 2.0, 4.0])
    m = regression_metrics(o, np.full(3, 2.5))
    assert math.isnan(m["pearson"])
    np.testing.assert_allclose(m["mse"], np.mean((o - 2.5) ** 2))
    m = regression_metrics(np.full(3, 1.0), o)
    assert math.isnan(m["pearson"]) and math.isnan(m["r2"])


def test_pearson_is_bounded():
    o = np.array([1e-3, 2e-3, 3e-3]) + 1e8
    m = regression_metrics(o, o)
    assert -1.0 <= m["pearson"] <= 1.0


def test_empty_and_mismatched():
    m = regression_metrics(np.array([]), np.array([]))
    assert m["n"] == 0 and all(math.isnan(m[k]) for k in ("mse", "mae", "r2", "pearson"))
    with pytest.raises(ValueError):
        regression_metrics(np.arange(3.0), np.arange(2.0))
    with pytest.raises(ValueError):
        regression_metrics(np.arange(3.0), np.array([1.0]))  # no silent broadcasting


# ----------------------------------------------------------------------------- tables
def _per_model(rng: np.random.Generator, n: int = 12):
    samples = [f"s{i:02d}" for i in range(n)]
    split = np.where(np.arange(n) % 4 == 0, "test", "train")
    observed = rng.normal(size=n) * 3 + 10
    frames = {}
    for j, model in enumerate(["ols", "mlp"]):
        pred = observed + rng.normal(scale=0.5 + j, size=n)
        df = pd.DataFrame({"target": "G1", "model": model, "sample": samples, "split": split,
                           "observed": observed, "predicted": pred})
        # each model's table comes in its own row order
        frames[model] = df.sample(frac=1.0, random_state=j).reset_index(drop=True)
    return samples, split, observed, frames


def test_assemble_predictions_joins_by_sample():
    samples, split, observed, frames = _per_model(np.random.default_rng(0))
    wide = assemble_predictions(frames, "G1")
    assert list(wide.columns) == ["target", "sample", "split", "observed", "ols", "mlp"]
    assert len(wide) == len(samples)
    assert (wide["target"] == "G1").all()
    # train rows first, then test; each block sorted by sample
    assert wide["split"].tolist() == sorted(split, key=lambda s: s != "train")
    for part in ("train", "test"):
        block = wide[wide["split"] == part]["sample"].tolist()
        assert block == sorted(block)
    # every value sits in the row of its sample
    for model, df in frames.items():
        lookup = df.set_index("sample")
        for _, row in wide.iterrows():
            assert row[model] == lookup.loc[row["sample"], "predicted"]
            assert row["observed"] == lookup.loc[row["sample"], "observed"]
            assert row["split"] == lookup.loc[row["sample"], "split"]


def test_assemble_predictions_rejects_disagreement():
    _, _, _, frames = _per_model(np.random.default_rng(1))
    bad = dict(frames)
    bad["mlp"] = frames["mlp"].iloc[1:]  # a sample missing
    with pytest.raises(ValueError):
        assemble_predictions(bad, "G1")
    bad["mlp"] = frames["mlp"].assign(observed=frames["mlp"]["observed"] + 1.0)
    with pytest.raises(ValueError):
        assemble_predictions(bad, "G1")
    bad["mlp"] = pd.concat([frames["mlp"], frames["mlp"].iloc[:1]])  # a duplicated sample
    with pytest.raises(ValueError):
        assemble_predictions(bad, "G1")
    bad = {"ols": pd.concat([frames["ols"], frames["ols"].iloc[:1]])}
    with pytest.raises(ValueError):
        assemble_predictions(bad, "G1")


def test_metrics_table_against_direct_and_mean_baseline():
    samples, split, observed, frames = _per_model(np.random.default_rng(2), n=40)
    wide = assemble_predictions(frames, "G1")
    tab = metrics_table(wide, ["ols", "mlp"])
    assert list(tab.columns) == METRIC_COLUMNS
    assert tab[["model", "split"]].apply(tuple, axis=1).tolist() == [
        (m, s) for m in ("ols", "mlp", "mean") for s in ("train", "test")]
    train_mean = observed[split == "train"].mean()
    for _, row in tab.iterrows():
        mask = split == row["split"]
        o = observed[mask]
        if row["model"] == "mean":
            p = np.full(mask.sum(), train_mean)
        else:
            p = frames[row["model"]].set_index("sample").loc[np.array(samples)[mask], "predicted"].to_numpy()
        assert row["n"] == mask.sum()
        np.testing.assert_allclose(row["mse"], np.mean((o - p) ** 2), rtol=1e-12)
        np.testing.assert_allclose(row["mae"], np.mean(np.abs(o - p)), rtol=1e-12)
        np.testing.assert_allclose(row["r2"], 1 - np.sum((o - p) ** 2) / np.sum((o - o.mean()) ** 2),
                                   rtol=1e-12, atol=1e-14)
        if row["model"] == "mean":
            assert math.isnan(row["pearson"])
        else:
            np.testing.assert_allclose(row["pearson"], stats.pearsonr(o, p)[0], rtol=1e-10)
    # the mean model predicts the *training* mean: r2 is exactly 0 on train, not on test
    mean_rows = tab[tab["model"] == "mean"].set_index("split")
    assert mean_rows.loc["train", "r2"] == pytest.approx(0.0, abs=1e-12)
    test_obs = observed[split == "test"]
    assert mean_rows.loc["test", "mse"] == pytest.approx(np.mean((test_obs - train_mean) ** 2))
    assert mean_rows.loc["test", "r2"] < 0  # the test mean differs from the train mean


def test_metrics_table_several_targets_and_best_model():
    rng = np.random.default_rng(3)
    wides = []
    for target in ("B", "A"):
        _, _, _, frames = _per_model(rng)
        wides.append(assemble_predictions({m: f.assign(target=target) for m, f in frames.items()}, target))
    wide = pd.concat(wides, ignore_index=True)
    tab = metrics_table(wide, ["ols", "mlp", "mean"])  # 'mean' is added once only
    assert tab["target"].unique().tolist() == ["B", "A"]
    assert len(tab) == 2 * 3 * 2
    best = best_models(tab)
    for target in ("B", "A"):
        sub = tab[(tab["target"] == target) & (tab["split"] == "test")]
        exp = sub.loc[sub["mse"].idxmin(), "model"]
        assert best.set_index("target").loc[target, "best_model"] == exp


# --------------------------------------------------------------------------- cross-validation and verdicts

from gexpred.compare import corrected_resampled_ttest, cv_metrics_table, summary_table  # noqa: E402


def test_corrected_resampled_ttest_closed_form():
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    t, p = corrected_resampled_ttest(d, n_train=80, n_test=20)
    # Nadeau & Bengio (2003), eq. for the corrected resampled t: var * (1/K + n2/n1)
    se = np.sqrt((1 / 5 + 20 / 80) * np.var(d, ddof=1))
    assert t == pytest.approx(d.mean() / se, rel=1e-12)
    assert p == pytest.approx(2 * stats.t.sf(abs(d.mean() / se), 4), rel=1e-12)
    # the correction makes it more conservative than the plain paired t-test
    assert p > stats.ttest_1samp(d, 0).pvalue
    assert corrected_resampled_ttest(np.zeros(4), 10, 2) == (0.0, 1.0)
    assert corrected_resampled_ttest(np.ones(4), 10, 2) == (np.inf, 0.0)
    assert np.isnan(corrected_resampled_ttest(np.ones(1), 10, 2)[1])


def _cv_frame(rng, models=("ols", "mlp"), n=30, k=3):
    obs = rng.normal(size=n)
    fold = np.arange(n) % k + 1
    rows = []
    for m, noise in zip(models, (0.5, 0.2, 0.8)):
        pred = obs + rng.normal(size=n) * noise
        rows.append(pd.DataFrame({"target": "g", "model": m, "sample": [f"s{i}" for i in range(n)], "fold": fold,
                                  "observed": obs, "predicted": pred}))
    return pd.concat(rows, ignore_index=True), obs, fold


def test_cv_metrics_table_per_fold_and_mean_baseline():
    rng = np.random.default_rng(0)
    cv, obs, fold = _cv_frame(rng)
    out = cv_metrics_table(cv, ["ols", "mlp"])
    assert out["model"].unique().tolist() == ["ols", "mlp", "mean"]
    assert len(out) == 9
    for f in (1, 2, 3):
        held = fold == f
        pred = cv[(cv["model"] == "mlp")].sort_values("sample")
        pred = pred.set_index("sample").loc[[f"s{i}" for i in range(30)], "predicted"].to_numpy()
        row = out[(out["model"] == "mlp") & (out["fold"] == f)].iloc[0]
        assert row["mse"] == pytest.approx(np.mean((obs[held] - pred[held]) ** 2))
        base = out[(out["model"] == "mean") & (out["fold"] == f)].iloc[0]
        assert base["mse"] == pytest.approx(np.mean((obs[held] - obs[~held].mean()) ** 2))


def test_summary_verdicts():
    rows = []
    for target, (ols_mse, mlp_mse) in {"net": ([1.0, 1.1, 0.9, 1.05, 0.95], [0.5, 0.52, 0.48, 0.51, 0.49]),
                                       "same": ([1.0, 1.2, 0.8, 1.1, 0.9], [1.05, 1.1, 0.85, 1.0, 0.95])}.items():
        for f in range(5):
            rows += [{"target": target, "model": "ols", "fold": f + 1, "n": 20, "mse": ols_mse[f]},
                     {"target": target, "model": "mlp", "fold": f + 1, "n": 20, "mse": mlp_mse[f]},
                     {"target": target, "model": "mean", "fold": f + 1, "n": 20, "mse": 2.0}]
    cvm = pd.DataFrame(rows).reindex(columns=CV_COLS)
    test = pd.DataFrame([{"target": t, "model": m, "split": "test", "mse": v}
                         for t in ("net", "same") for m, v in (("ols", 1.0), ("mlp", 0.6), ("mean", 2.0))])
    s = summary_table(cvm, test, ["ols", "mlp"]).set_index("target")
    assert s.loc["net", "verdict"] == "network" and s.loc["net", "best_model"] == "mlp"
    d = np.array([0.5, 0.52, 0.48, 0.51, 0.49]) - np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    assert s.loc["net", "p_value"] == pytest.approx(corrected_resampled_ttest(d, 80, 20)[1])
    assert s.loc["same", "verdict"] == "no evidence of a difference"
    assert s.loc["net", "ols"] == pytest.approx(1.0) and np.isnan(s.loc["net", "penalized"])
    assert s.loc["net", "test_best_model"] == "mlp" and s.loc["net", "test_mlp"] == 0.6
    # the sentence names what was tested (the network against OLS, not "regression") and whose error is lower
    rel = round((1.0 - 0.5) / 1.0 * 100)  # means of the folds above: ols 1.0, mlp 0.5
    assert (f"The network beats OLS: CV MSE 0.5 (network) vs 1 (OLS), {rel}% lower for the network, "
            f"corrected resampled t-test p = ") in s.loc["net", "statement"]
    assert "No evidence that the network and OLS differ" in s.loc["same", "statement"]
    assert "regression" not in s.loc["net", "statement"] + s.loc["same", "statement"]
    # the best model in the words the rest of the statement uses, not its key
    assert s.loc["net", "statement"].startswith("Best by 5-fold CV: the network (MSE 0.5).")
    only = summary_table(cvm[cvm["model"] != "mlp"], test, ["ols"])
    assert (only["verdict"] == "not compared").all() and only["p_value"].isna().all()


def test_summary_statement_of_classification_names_logistic_regression_and_class_shares():
    """For classification, ols is a logistic regression and mean the training class shares: the statement (shown
    in the report) must not call them OLS and the mean."""
    rows = []
    for target, ols_ll, mlp_ll, mean_ll in (("a", [0.30, 0.32, 0.28], [0.60, 0.65, 0.62], [0.69, 0.69, 0.69]),
                                            ("b", [0.70, 0.72, 0.71], [0.70, 0.71, 0.73], [0.20, 0.22, 0.21])):
        for f in range(3):
            rows += [{"target": target, "model": m, "fold": f + 1, "n": 20, "log_loss": v[f]}
                     for m, v in (("ols", ols_ll), ("mlp", mlp_ll), ("mean", mean_ll))]
    cvm = pd.DataFrame(rows).reindex(columns=CV_COLS)
    test = pd.DataFrame([{"target": t, "model": m, "split": "test", "log_loss": 0.5}
                         for t in ("a", "b") for m in ("ols", "mlp", "mean")]).reindex(columns=["target", "model",
                                                                                              "split", *CV_COLS[4:]])
    s = summary_table(cvm, test, ["ols", "mlp"]).set_index("target")
    assert s.loc["a", "best_model"] == "ols" and s.loc["b", "best_model"] == "mean"
    for t in ("a", "b"):
        assert "OLS" not in s.loc[t, "statement"] and "(logistic regression)" in s.loc[t, "statement"]
    assert s.loc["a", "statement"].startswith("Best by 3-fold CV: logistic regression (log-loss 0.3).")
    assert s.loc["b", "statement"].startswith("Best by 3-fold CV: the training class shares (log-loss 0.21).")


CV_COLS = ["target", "model", "fold", "n", "mse", "mae", "r2", "pearson", "accuracy", "auroc", "log_loss"]


def test_genome_summary_counts_a_tie_for_no_model():
    """A constant target (every model's test MSE 0) was counted as the first model's win in n_best."""
    from gexpred.compare import genome_summary

    rows = []
    for target, mses in {"a": (1.0, 0.5, 2.0), "b": (0.8, 0.9, 2.0), "const": (0.0, 0.0, 0.0)}.items():
        for model, v in zip(("ols", "mlp", "mean"), mses):
            rows.append({"target": target, "model": model, "split": "test", "n": 10, "mse": v,
                         "r2": np.nan if target == "const" else 1 - v / 2.0})
    summary, per = genome_summary(pd.DataFrame(rows))
    assert per.set_index("target")["best_model"].to_dict() == {"a": "mlp", "b": "ols", "const": "tie"}
    assert summary.set_index("model")["n_best"].to_dict() == {"ols": 1, "mlp": 1, "mean": 0}


def test_summary_a_nan_fold_is_not_averaged_away():
    """A NaN prediction (hence a NaN fold metric) of the network made its mean CV MSE that of its other 4 folds,
    so it was named best on fewer folds than the others; a model NaN on every fold was named best (``MSE nan``)."""
    ols = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    mlp = np.array([np.nan, 0.5, 0.52, 0.48, 0.51])
    rows = []
    for f in range(5):
        rows += [{"target": "g", "model": "ols", "fold": f + 1, "n": 20, "mse": ols[f]},
                 {"target": "g", "model": "mlp", "fold": f + 1, "n": 20, "mse": mlp[f]},
                 {"target": "g", "model": "mean", "fold": f + 1, "n": 20, "mse": 2.0}]
    cvm = pd.DataFrame(rows).reindex(columns=CV_COLS)
    test = pd.DataFrame([{"target": "g", "model": m, "split": "test", "mse": v}
                         for m, v in (("ols", 1.0), ("mlp", np.nan), ("mean", 2.0))])
    s = summary_table(cvm, test, ["ols", "mlp"]).iloc[0]
    assert np.isnan(s["mlp"]) and s["ols"] == pytest.approx(np.mean(ols))
    # the best of the models scored on every fold: ols (numpy's argmin over ols and mean)
    assert s["best_model"] == ["ols", "mean"][int(np.argmin([np.mean(ols), 2.0]))] == "ols"
    assert s["test_best_model"] == "ols"
    assert s["verdict"] == "not compared" and np.isnan(s["p_value"])
    assert "Left out: the network" in s["statement"] and "not compared" in s["statement"]
    # every model NaN somewhere: no best model, rather than the first one
    cvm2 = cvm.copy()
    cvm2.loc[cvm2["model"] == "ols", "mse"] = np.nan
    cvm2.loc[cvm2["model"] == "mean", "mse"] = np.nan
    s2 = summary_table(cvm2, test, ["ols", "mlp"]).iloc[0]
    assert s2["best_model"] == "" and s2["statement"].startswith("No model has a CV MSE on every one of the 5 folds")
    assert "nan" not in s2["statement"]


def test_summary_statement_of_regression_win_names_ols_not_regression():
    """Only OLS is tested against the network: where penalized regression is worse than the network, "the
    regression is better" misread as every regression; the statement says OLS beats the network."""
    rows = []
    ols, mlp, pen = [0.5, 0.52, 0.48, 0.51, 0.49], [1.0, 1.1, 0.9, 1.05, 0.95], [1.2, 1.3, 1.1, 1.25, 1.15]
    for f in range(5):
        rows += [{"target": "g", "model": m, "fold": f + 1, "n": 20, "mse": v[f]}
                 for m, v in (("ols", ols), ("penalized", pen), ("mlp", mlp), ("mean", [2.0] * 5))]
    cvm = pd.DataFrame(rows).reindex(columns=CV_COLS)
    test = pd.DataFrame([{"target": "g", "model": m, "split": "test", "mse": 1.0}
                         for m in ("ols", "penalized", "mlp", "mean")])
    s = summary_table(cvm, test, ["ols", "penalized", "mlp"]).iloc[0]
    d = np.array(mlp) - np.array(ols)
    t = d.mean() / np.sqrt((1 / 5 + 20 / 80) * d.var(ddof=1))
    p = 2 * stats.t.sf(abs(t), 4)
    assert s["verdict"] == "regression" and s["p_value"] == pytest.approx(p, rel=1e-10)
    rel = round(abs(np.mean(mlp) - np.mean(ols)) / np.mean(mlp) * 100)
    assert (f"OLS beats the network: CV MSE 1 (network) vs 0.5 (OLS), {rel}% lower for OLS, "
            f"corrected resampled t-test p = {p:.2g}.") in s["statement"]


def test_class_metrics_table_against_sklearn():
    """Accuracy, AUROC (binary; one-vs-rest unweighted macro average for 3 classes) and log-loss (probabilities
    clipped at 1e-15) of a model and of the training-class-share baseline, against sklearn.metrics; AUROC is NaN
    where the split lacks a class (sklearn refuses it)."""
    from sklearn import metrics as skm

    from gexpred.compare import class_metrics_table

    rng = np.random.default_rng(3)
    for cl in (["a", "b"], ["a", "b", "c"]):
        n = 60
        split = np.where(np.arange(n) < 45, "train", "test")
        codes = rng.integers(0, len(cl), n)
        proba = rng.dirichlet(np.ones(len(cl)), n)
        proba[0] = np.eye(len(cl))[(codes[0] + 1) % len(cl)]  # probability 0 for the observed class
        df = pd.DataFrame({"target": "g", "sample": [f"s{i}" for i in range(n)], "split": split,
                           "observed": np.asarray(cl)[codes], "lr": np.asarray(cl)[proba.argmax(1)]})
        for k, c in enumerate(cl):
            df[f"lr:p[{c}]"] = proba[:, k]
        out = class_metrics_table(df, ["lr"], {"g": cl}).set_index(["model", "split"])
        prior = np.bincount(codes[:45], minlength=len(cl)) / 45
        for s, mask in (("train", split == "train"), ("test", split == "test")):
            for model, p in (("lr", proba[mask]), ("mean", np.tile(prior, (mask.sum(), 1)))):
                y = codes[mask]
                auroc = (skm.roc_auc_score(y, p[:, 1]) if len(cl) == 2
                         else skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
                ll = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1)))
                row = out.loc[(model, s)]
                assert row["auroc"] == pytest.approx(auroc, abs=1e-12), (cl, model, s)
                assert row["log_loss"] == pytest.approx(ll, rel=1e-12)
                assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
                if model == "mean":
                    assert row["auroc"] == pytest.approx(0.5)
                    # away from 0: sklearn (clipping at machine epsilon) agrees
                    assert row["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(len(cl))), rel=1e-9)
        # a split without one class: AUROC undefined
        one = df[df["observed"] != "a"].copy()
        assert np.isnan(class_metrics_table(one, ["lr"], {"g": cl})["auroc"]).all()


def test_compare_cli_names_a_model_missing_for_a_target(tmp_path, capsys):
    """A model named by --models without its predictions file for a target stopped with a ValueError traceback
    from assemble_predictions; it is a clear one-paragraph error naming the model and target, and nothing is
    written."""
    from gexpred.cli import main

    rng = np.random.default_rng(0)
    paths, cv_paths = [], []
    for model in ("ols", "mlp"):
        obs = rng.normal(size=12)
        if model == "mlp":
            continue  # the user forgot the network's files
        p = tmp_path / f"{model}.tsv"
        pd.DataFrame({"target": "g1", "model": model, "sample": [f"s{i}" for i in range(12)],
                      "split": ["train"] * 9 + ["test"] * 3, "observed": obs,
                      "predicted": obs + 0.1}).to_csv(p, sep="\t", index=False)
        paths.append(str(p))
        c = tmp_path / f"{model}_cv.tsv"
        pd.DataFrame({"target": "g1", "model": model, "sample": [f"s{i}" for i in range(9)],
                      "fold": np.arange(9) % 3 + 1, "observed": obs[:9],
                      "predicted": obs[:9] + 0.1}).to_csv(c, sep="\t", index=False)
        cv_paths.append(str(c))
    outs = {k: tmp_path / f"out_{k}.tsv" for k in ("p", "m", "c", "s")}
    rc = main(["compare", "--models", "ols", "mlp", "--predictions", *paths, "--cv-predictions", *cv_paths,
               "--out-predictions", str(outs["p"]), "--out-metrics", str(outs["m"]),
               "--out-cv-metrics", str(outs["c"]), "--out-summary", str(outs["s"])])
    assert rc == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no predictions of 1 model-target pair named by --models: mlp for g1" in err and "Traceback" not in err
    assert not any(p.exists() for p in outs.values())
