"""End-to-end: the Snakemake workflow on a tiny generated dataset.

The expected numbers are recomputed here from the workflow's own tables with
numpy (closed-form OLS, direct metric formulas), never taken from gexpred.
The shared run's ids include markup and math text (gene G2 is named
``<img src=x onerror=alert(1)>``, G4 ``$x^2$_`a```, a sample ``<b>S1</b>``): its report must
show them as text, and it is opened in headless Chromium as a reviewer would open it
(tests/reportpage.py).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from reportpage import CHROMIUM, browse, needs_chromium, script_var
from reportpage import results as results_of
from scipy.spatial.distance import cdist

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.slow

# make_dataset's G2 and G4 (drivers of G0 and G1) and sample S001, as the shared run names them
G2 = "<img src=x onerror=alert(1)>"
G4 = "$x^2$_`a`"
HOSTILE_SAMPLE = "<b>S1</b>"


def beta_binomial_cdf(covered: int, n: int, n_residuals: int, level: float) -> float:
    """P(at most ``covered`` of ``n`` new samples inside a conformal interval, or prediction set, calibrated on
    ``n_residuals`` scores): the beta-binomial law of the count, the interval's coverage being Beta(k, n_residuals +
    1 - k) with k = ceil((n_residuals + 1) level); summed here from its closed form (log-gamma functions)."""
    import math

    k = int(np.ceil((n_residuals + 1) * level))
    a, b = k, n_residuals + 1 - k

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return float(sum(math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                              + log_beta(j + a, n - j + b) - log_beta(a, b)) for j in range(covered + 1)))


def make_dataset(root: Path, n_samples: int = 60, n_genes: int = 12, seed: int = 7, name: str = "expr.tsv",
                 prefix: str = "S") -> dict:
    """Write a tiny genes x samples TSV with two targets driven by known genes."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    samples = [f"{prefix}{i:03d}" for i in range(n_samples)]
    X = rng.normal(8.0, 1.0, size=(n_samples, n_genes))
    X[:, 0] = 2.0 + 0.8 * X[:, 2] - 0.5 * X[:, 3] + rng.normal(0, 0.3, n_samples)
    X[:, 1] = 1.0 + 0.6 * X[:, 4] + 0.4 * X[:, 5] * (X[:, 6] > 8) + rng.normal(0, 0.3, n_samples)
    df = pd.DataFrame(X.T, index=genes, columns=samples)
    (root / "data").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "data" / name, sep="\t", index_label="gene")
    return {"genes": genes, "samples": samples, "X": X}


def write_config(root: Path, **overrides) -> Path:
    cfg = {
        "matrices": ["data/expr.tsv"],
        "targets": ["G0", "G1"],
        "predictors": {"top_correlated": 4},
        "split": {"test_fraction": 0.25, "seed": 3, "folds": 3},
        # two networks per ensemble keep the runs short (the schema's default is five)
        "mlp": {"hidden": [8], "epochs": 40, "patience": 10, "batch_size": 16, "ensemble": 2},
        "search": {"mlp": {"hidden": [[], [8]]}, "penalized": {"n_alphas": 6}},
        # importance (two jobs' worth a run) is checked on finished_run, which turns it on
        "importance": {"repeats": 0},
    }
    cfg.update(overrides)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_snakemake(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(root), "--cores", "2",
           "--configfile", str(root / "config.yaml"), *args]
    # The rules call the `gexpred` console script: put this interpreter's scripts first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = make_dataset(root)
    # A copy of the demo config beside the run, as when a user runs from a clone: its demo-only
    # settings (sample sheet, predictor candidates file, targets) must not leak into this run.
    (root / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", root / "config" / "config.yaml")
    # a new batch from the same process (other samples): scored and monitored by the deploy rules
    make_dataset(root, seed=8, name="new.tsv", prefix="N")
    # ids with markup and math text: two predictors (each a driver, so chosen) and a sample
    genes = {"G2": G2, "G4": G4}
    for name, samples in (("expr.tsv", {"S001": HOSTILE_SAMPLE}), ("new.tsv", {})):
        expr = pd.read_csv(root / "data" / name, sep="\t", index_col=0)
        expr.rename(index=genes, columns=samples).to_csv(root / "data" / name, sep="\t", index_label="gene")
    data["genes"] = [genes.get(g, g) for g in data["genes"]]
    data["samples"] = [HOSTILE_SAMPLE if s == "S001" else s for s in data["samples"]]
    # the known edges of make_dataset (G0 <- G2, G3; G1 <- G4, G5, G6), for regulator recovery
    gold = pd.DataFrame(0, index=["G0", "G1"], columns=data["genes"])
    gold.loc["G0", [G2, "G3"]] = 1
    gold.loc["G1", [G4, "G5", "G6"]] = 1
    gold.to_csv(root / "data" / "gold.tsv", sep="\t", index_label="target")
    write_config(root, new_batches={"fresh": ["data/new.tsv"]},
                 mlp={"hidden": [8], "epochs": 40, "patience": 10, "batch_size": 16, "ensemble": 3},
                 importance={"repeats": 3}, gold_standard="data/gold.tsv")
    run_snakemake(root)
    return root, data


def test_outputs_exist(finished_run):
    root, _ = finished_run
    res = root / "results"
    for rel in ["data/collected.h5ad", "data/splits.tsv", "data/normalized.h5ad", "data/normalization.json",
                "data/predictors.tsv", "data/targets.tsv", "compare/predictions.tsv", "compare/metrics.tsv",
                "plots/activation_functions.png"]:
        assert (res / rel).is_file(), rel
    for t in ["G0", "G1"]:
        for rel in ["ols/{t}/coefficients.tsv", "ols/{t}/summary.txt", "mlp/{t}/model.pt", "mlp/{t}/model.json",
                    "mlp/{t}/history.tsv", "plots/{t}/observed_vs_predicted.png", "plots/{t}/coefficients.png",
                    "plots/{t}/loss.png"]:
            assert (res / rel.format(t=t)).is_file(), rel.format(t=t)


def test_split_table(finished_run):
    root, data = finished_run
    sp = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str)
    assert list(sp.columns) == ["sample", "split"]
    assert sorted(sp["sample"]) == sorted(data["samples"])
    assert set(sp["split"]) == {"train", "test"}
    assert (sp["split"] == "test").sum() == round(0.25 * len(data["samples"]))


def test_ols_matches_closed_form_on_training_samples(finished_run):
    """coefficients.tsv equals numpy's closed-form OLS on the samples splits.tsv calls 'train'."""
    from scipy import stats

    root, data = finished_run
    sp = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0).T  # normalization: none (default)
    train = expr.loc[sp.index[sp == "train"]]
    for target in ["G0", "G1"]:
        coefs = pd.read_csv(root / f"results/ols/{target}/coefficients.tsv", sep="\t")
        assert list(coefs.columns) == ["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]
        assert coefs["term"].iloc[0] == "const"
        preds = list(coefs["term"].iloc[1:])
        assert target not in preds
        A = np.column_stack([np.ones(len(train)), train[preds].to_numpy()])
        y = train[target].to_numpy()
        beta = np.linalg.solve(A.T @ A, A.T @ y)
        df = len(y) - A.shape[1]
        sigma2 = ((y - A @ beta) ** 2).sum() / df
        se = np.sqrt(np.diag(sigma2 * np.linalg.inv(A.T @ A)))
        t = beta / se
        q = stats.t.ppf(0.975, df)
        np.testing.assert_allclose(coefs["coef"], beta, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(coefs["std_err"], se, rtol=1e-8)
        np.testing.assert_allclose(coefs["t"], t, rtol=1e-8)
        np.testing.assert_allclose(coefs["p_value"], 2 * stats.t.sf(np.abs(t), df), rtol=1e-6, atol=1e-300)
        np.testing.assert_allclose(coefs["ci_low"], beta - q * se, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(coefs["ci_high"], beta + q * se, rtol=1e-8, atol=1e-10)


def test_top_correlated_predictors_chosen_on_training_split(finished_run):
    root, _ = finished_run
    sp = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0).T
    train = expr.loc[sp.index[sp == "train"]]
    table = pd.read_csv(root / "results/data/predictors.tsv", sep="\t")
    for target in ["G0", "G1"]:
        r = train.drop(columns=[target]).corrwith(train[target]).abs().sort_values(ascending=False)
        chosen = table[table["target"] == target].sort_values("rank")["gene"].tolist()
        assert chosen == r.index[:4].tolist()


def test_metrics_recomputed_from_predictions(finished_run):
    root, _ = finished_run
    pred = pd.read_csv(root / "results/compare/predictions.tsv", sep="\t")
    assert list(pred.columns) == ["target", "sample", "split", "observed", "ols", "penalized", "mlp"]
    metrics = pd.read_csv(root / "results/compare/metrics.tsv", sep="\t")
    assert list(metrics.columns) == ["target", "model", "split", "n", "mse", "mae", "r2", "pearson", "accuracy",
                                     "auroc", "log_loss"]
    assert metrics[["accuracy", "auroc", "log_loss"]].isna().all().all()  # empty for regression
    assert set(metrics["model"]) == {"ols", "penalized", "mlp", "mean"}
    for (target, model, split), row in metrics.set_index(["target", "model", "split"]).iterrows():
        sub = pred[(pred["target"] == target) & (pred["split"] == split)]
        o = sub["observed"].to_numpy()
        if model == "mean":
            train_mean = pred[(pred["target"] == target) & (pred["split"] == "train")]["observed"].mean()
            p = np.full(len(o), train_mean)
        else:
            p = sub[model].to_numpy()
        assert row["n"] == len(o)
        np.testing.assert_allclose(row["mse"], np.mean((o - p) ** 2), rtol=1e-8)
        np.testing.assert_allclose(row["mae"], np.mean(np.abs(o - p)), rtol=1e-8)
        np.testing.assert_allclose(row["r2"], 1 - np.sum((o - p) ** 2) / np.sum((o - o.mean()) ** 2), rtol=1e-8,
                                   atol=1e-12)
        if model == "mean":
            assert np.isnan(row["pearson"])
        else:
            np.testing.assert_allclose(row["pearson"], np.corrcoef(o, p)[0, 1], rtol=1e-7)
    # The models learn something real: OLS beats the mean baseline on the test split for the linear target.
    test = metrics[(metrics["split"] == "test") & (metrics["target"] == "G0")].set_index("model")
    assert test.loc["ols", "mse"] < 0.5 * test.loc["mean", "mse"]


def test_cross_validation_tables_recomputed(finished_run):
    """cv_metrics.tsv and summary.tsv recomputed from every model's out-of-fold predictions and the folds."""
    from scipy import stats

    root, _ = finished_run
    folds = pd.read_csv(root / "results/data/folds.tsv", sep="\t", dtype={"sample": str})
    sp = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    cvm = pd.read_csv(root / "results/compare/cv_metrics.tsv", sep="\t")
    summary = pd.read_csv(root / "results/compare/summary.tsv", sep="\t").set_index("target")
    assert list(summary.columns[:7]) == ["best_model", "metric", "ols", "penalized", "mlp", "p_value", "mean"]
    for target in ["G0", "G1"]:
        f = folds[folds["target"] == target].set_index("sample")["fold"]
        assert sorted(f.index) == sorted(sp.index[sp == "train"])  # every training sample, no test sample
        assert sorted(np.bincount(f)[1:].tolist())[-1] - sorted(np.bincount(f)[1:].tolist())[0] <= 1
        per_model = {}
        for model in ("ols", "penalized", "mlp"):
            cv = pd.read_csv(root / f"results/{model}/{target}/cv_predictions.tsv", sep="\t",
                             dtype={"sample": str}).set_index("sample")
            assert (cv["fold"] == f.reindex(cv.index)).all()
            mse = [np.mean((g["observed"] - g["predicted"]) ** 2) for _, g in cv.groupby("fold")]
            got = cvm[(cvm["target"] == target) & (cvm["model"] == model)].sort_values("fold")["mse"]
            np.testing.assert_allclose(got, mse, rtol=1e-10)
            per_model[model] = np.array(mse)
            np.testing.assert_allclose(summary.loc[target, model], np.mean(mse), rtol=1e-12)
        # OLS out-of-fold predictions are closed-form least squares on the other folds, on the 4 genes most
        # correlated with the target there (the predictors are chosen again on each fold's training part)
        expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0).T
        fold_pred = pd.read_csv(root / "results/data/fold_predictors.tsv", sep="\t")
        fold_pred = fold_pred[fold_pred["target"] == target]
        cv = pd.read_csv(root / f"results/ols/{target}/cv_predictions.tsv", sep="\t", dtype={"sample": str})
        for k, g in cv.groupby("fold"):
            rest = expr.loc[f.index[f != k]]
            r = rest.drop(columns=[target]).corrwith(rest[target]).abs().sort_values(ascending=False)
            preds = r.index[:4].tolist()
            assert fold_pred[fold_pred["fold"] == k].sort_values("rank")["gene"].tolist() == preds
            A = np.column_stack([np.ones(len(rest)), rest[preds].to_numpy()])
            beta = np.linalg.lstsq(A, rest[target].to_numpy(), rcond=None)[0]
            held = expr.loc[g["sample"]]
            np.testing.assert_allclose(g["predicted"], np.column_stack([np.ones(len(held)), held[preds]]) @ beta,
                                       rtol=1e-9)
        # the network vs OLS test, by the formula of Nadeau & Bengio
        d = per_model["mlp"] - per_model["ols"]
        n_test = np.bincount(f)[1:].astype(float)
        t = d.mean() / np.sqrt((1 / len(d) + np.mean(n_test) / np.mean(n_test.sum() - n_test)) * d.var(ddof=1))
        np.testing.assert_allclose(summary.loc[target, "p_value"], 2 * stats.t.sf(abs(t), len(d) - 1), rtol=1e-9)
        means = {m: summary.loc[target, m] for m in ("ols", "penalized", "mlp", "mean")}
        assert summary.loc[target, "best_model"] == min(means, key=means.get)
        assert summary.loc[target, "verdict"] in ("network", "regression", "no evidence of a difference")
        # the search: the selected candidate is the one with the lowest mean CV loss; its settings were refitted
        search = pd.read_csv(root / f"results/mlp/{target}/search.tsv", sep="\t")
        assert len(search) == 2 and search["hidden"].tolist() == ["[]", "[8]"]
        # (among the candidates search.prune let train to their end: a pruned one cannot win)
        running = search.loc[search["pruned_at_epoch"].isna()]
        win = running.loc[running["cv_loss_mean"].idxmin()]
        assert bool(win["selected"])
        meta = json.loads((root / f"results/mlp/{target}/model.json").read_text())
        assert json.dumps(meta["settings"]["hidden"]) == win["hidden"]
        assert meta["search"]["selected"] == win["candidate"]
        assert meta["search"]["pruned"] == search.loc[search["pruned_at_epoch"].notna(), "candidate"].tolist()
        # the comparison judges the network with its choice: fold f by the candidate of lowest mean loss over the
        # other folds (search.tsv's fold columns; pruned candidates never), cv_predictions.tsv's fold MSEs
        losses = search.set_index("candidate")[[f"fold_{k}" for k in range(1, 4)]]
        losses = losses[search.set_index("candidate")["pruned_at_epoch"].isna()]
        choices = [int((losses.drop(columns=c).mean(axis=1)).idxmin()) for c in losses.columns]
        nested_mlp = meta["search"]["nested_cv"]
        assert [c["candidate"] for c in nested_mlp["fold_choices"]] == choices
        mlp_cv = pd.read_csv(root / f"results/mlp/{target}/cv_predictions.tsv", sep="\t")
        err = (mlp_cv["observed"] - mlp_cv["predicted"]).abs()
        np.testing.assert_allclose(err.pow(2).groupby(mlp_cv["fold"]).mean().mean(), summary.loc[target, "mlp"],
                                   rtol=1e-12)
        # model.json's error is the search's criterion: MAE or MSE, as the candidates trained
        fold_loss = (err if meta["search"]["loss"] == "mae" else err.pow(2)).groupby(mlp_cv["fold"]).mean()
        np.testing.assert_allclose(nested_mlp["cv_loss_mean"], fold_loss.mean(), rtol=1e-5)
        # the penalised model's predictions come from its coefficients
        pc = pd.read_csv(root / f"results/penalized/{target}/coefficients.tsv", sep="\t").set_index("term")
        pred = pd.read_csv(root / f"results/penalized/{target}/predictions.tsv", sep="\t").set_index("sample")
        X = expr.loc[pred.index, list(pc.index[1:])].to_numpy()
        np.testing.assert_allclose(pred["predicted"], pc.loc["const", "coef"] + X @ pc["coef"].iloc[1:].to_numpy(),
                                   rtol=1e-9)
        ps = pd.read_csv(root / f"results/penalized/{target}/search.tsv", sep="\t")
        assert len(ps) == 12 and ps["selected"].sum() == 1
        assert ps.loc[ps["selected"], "cv_mse_mean"].item() == ps["cv_mse_mean"].min()
        # the comparison judges the penalised model by nested CV (its choice made again inside each fold): the
        # mean of the folds' MSEs of cv_predictions.tsv, not the search's own minimum
        cvp = pd.read_csv(root / f"results/penalized/{target}/cv_predictions.tsv", sep="\t")
        fold_mse = (cvp["observed"] - cvp["predicted"]).pow(2).groupby(cvp["fold"]).mean()
        np.testing.assert_allclose(fold_mse.mean(), summary.loc[target, "penalized"], rtol=1e-12)
        nested = json.loads((root / f"results/penalized/{target}/model.json").read_text())["nested_cv"]
        np.testing.assert_allclose(nested["cv_mse"], fold_mse.mean(), rtol=1e-12)
        np.testing.assert_allclose(nested["selected_cv_mse"], ps["cv_mse_mean"].min(), rtol=1e-12)
        assert [c["fold"] for c in nested["fold_choices"]] == sorted(fold_mse.index)


def test_bundles_reproduce_pipeline_predictions_and_monitor_new_batch(finished_run, tmp_path):
    """`gexpred predict` with each saved bundle on the raw matrix gives the pipeline's own predictions."""
    root, _ = finished_run
    pred = pd.read_csv(root / "results/compare/predictions.tsv", sep="\t", dtype={"sample": str})
    summary = pd.read_csv(root / "results/compare/summary.tsv", sep="\t").set_index("target")
    normalized = ad.read_h5ad(root / "results/data/normalized.h5ad")
    design = pd.DataFrame(np.asarray(normalized.X), index=normalized.obs_names, columns=normalized.var_names)
    for target in ["G0", "G1"]:
        want = pred[pred["target"] == target].set_index("sample")
        for model in ("ols", "penalized", "mlp"):
            out = tmp_path / f"{target}_{model}.tsv"
            proc = subprocess.run([sys.executable, "-m", "gexpred.cli", "predict", "--bundle",
                                   str(root / f"results/models/{target}/{model}"), "--input",
                                   str(root / "data/expr.tsv"), "--out", str(out)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            got = pd.read_csv(out, sep="\t", dtype={"sample": str}).set_index("sample").loc[want.index]
            np.testing.assert_allclose(got["predicted"], want[model], rtol=1e-6, atol=1e-6)
            card = json.loads((root / f"results/models/{target}/{model}/card.json").read_text())
            squared = ((want.loc[want["split"] == "test", "observed"]
                        - want.loc[want["split"] == "test", model]) ** 2).to_numpy()
            assert card["metrics"]["test"]["mse"] == pytest.approx(float(np.mean(squared)), rel=1e-9)
            # each test sample's loss, kept for the monitor's test of the error ratio
            np.testing.assert_allclose(np.sort(card["test_losses"]), np.sort(squared), rtol=1e-4, atol=1e-8)
            # the prediction interval (prediction_interval.method: neighbours, 10): each out-of-fold residual on the
            # training split over its sample's mean distance to its 10 nearest samples of its fold's training part
            # (the design in training SDs); q the ceil(0.95 (n + 1))-th smallest ratio (ols.alpha 0.05); a sample's
            # half-width q x its mean over the folds of that distance; its coverage of the test split
            cvp = pd.read_csv(root / f"results/{model}/{target}/cv_predictions.tsv", sep="\t", dtype={"sample": str})
            terms = json.loads((root / f"results/{model}/{target}/model.json").read_text())["design"]["terms"]
            R = design.loc[cvp["sample"], terms].to_numpy()
            sd = R.std(axis=0)
            folds = cvp["fold"].to_numpy()

            def knn(rows, Z):
                return np.sort(cdist(Z / sd, rows / sd), axis=1)[:, :10].mean(axis=1)

            d_cv = np.empty(len(R))
            for f in np.unique(folds):
                d_cv[folds == f] = knn(R[folds != f], R[folds == f])
            floor = 0.25 * d_cv.mean()  # a distance below a quarter of the mean counts as that quarter
            ratio = np.sort(np.abs(cvp["observed"] - cvp["predicted"]).to_numpy() / np.maximum(d_cv, floor))
            q = ratio[int(np.ceil(0.95 * (len(ratio) + 1))) - 1]
            assert card["interval"]["level"] == 0.95 and card["interval"]["q"] == pytest.approx(q, rel=1e-9)
            Z = design.loc[got.index, terms].to_numpy()
            half = q * np.maximum(np.mean([knn(R[folds != f], Z) for f in np.unique(folds)], axis=0), floor)
            np.testing.assert_allclose(got["pi_low"], got["predicted"] - half, rtol=1e-7, atol=1e-7)
            np.testing.assert_allclose(got["pi_high"], got["predicted"] + half, rtol=1e-7, atol=1e-7)
            test_ids = want.index[want["split"] == "test"]
            inside = np.sqrt(squared) <= half[got.index.get_indexer(test_ids)]
            assert card["interval"]["test_coverage"] == pytest.approx(float(np.mean(inside)), abs=1e-9)
        best = json.loads((root / f"results/models/{target}/best.json").read_text())
        cv = {m: summary.loc[target, m] for m in ("ols", "penalized", "mlp")}
        assert best["model"] == min(cv, key=cv.get)
        # the new batch was scored with the best model and monitored
        batch = pd.read_csv(root / f"results/deploy/fresh/{target}/predictions.tsv", sep="\t")
        assert len(batch) == 60 and (batch["model"] == best["model"]).all()
        verdict = json.loads((root / f"results/deploy/fresh/{target}/verdict.json").read_text())
        assert verdict["verdict"] in ("ok", "warn", "alert") and verdict["truth_given"]
        # the batch's coverage of the best model's intervals, with the test of too few covered: beta-binomial, the
        # coverage of an interval calibrated on n_residuals cross-validation residuals being Beta(k, n_res + 1 - k)
        perf = pd.read_csv(root / f"results/deploy/fresh/{target}/performance.tsv", sep="\t").set_index("metric")
        row, n = perf.loc["interval_coverage (95%)"], int(perf.loc["n", "new_batch"])
        covered = round(row["new_batch"] * n)
        card = json.loads((root / f"results/models/{target}/{best['model']}/card.json").read_text())
        assert n == 60 and row["new_batch"] == pytest.approx(covered / n, abs=1e-12)
        best_cv = pd.read_csv(root / f"results/{best['model']}/{target}/cv_predictions.tsv", sep="\t")
        assert card["interval"]["n_residuals"] == int(np.isfinite(best_cv["observed"] - best_cv["predicted"]).sum())
        assert row["p_value"] == pytest.approx(beta_binomial_cdf(covered, n, card["interval"]["n_residuals"], 0.95),
                                               rel=1e-9)  # P(<= covered)
        assert row["test"] == pytest.approx(card["interval"]["test_coverage"], abs=1e-12)
        assert row["status"] == ("warn" if row["p_value"] < 0.05 else "ok")  # monitor.error_alpha
    verdicts = pd.read_csv(root / "results/deploy/verdicts.tsv", sep="\t")
    assert sorted(verdicts["target"]) == ["G0", "G1"] and (verdicts["batch"] == "fresh").all()
    for _, v in verdicts.iterrows():  # the counts are of the inputs, recounted from each drift table
        drift = pd.read_csv(root / f"results/deploy/fresh/{v['target']}/drift.tsv", sep="\t")
        inputs = drift[drift["kind"] == "input"]
        assert v["n_inputs"] == len(inputs) and v["n_drifted"] == int((inputs["status"] != "ok").sum())
        assert v["prediction_drifted"] == bool((drift.loc[drift["kind"] == "prediction", "status"] != "ok").any())


def test_mlp_artifacts_load_without_code(finished_run):
    from gexpred.nn import load_model, predict

    root, _ = finished_run
    meta = json.loads((root / "results/mlp/G0/model.json").read_text())
    for key in ["architecture", "settings", "seed", "predictors", "normalization"]:
        assert key in meta
    state = torch.load(root / "results/mlp/G0/model.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_model(root / "results/mlp/G0/model.pt", meta["architecture"])
    pred = pd.read_csv(root / "results/compare/predictions.tsv", sep="\t")
    pred = pred[pred["target"] == "G0"].set_index("sample")
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0).T.loc[pred.index]
    np.testing.assert_allclose(predict(model, expr[meta["predictors"]].to_numpy()), pred["mlp"], rtol=1e-5,
                               atol=1e-5)
    # an ensemble of 3 networks (mlp.ensemble), refitted on every training sample for the CV's epochs (the
    # schema's default refit)
    assert meta["architecture"]["ensemble"] == 3 and len(meta["training"]["members"]) == 3
    assert meta["settings"]["val_fraction"] == 0 and meta["settings"]["patience"] == 0
    assert "3 networks" in meta["search"]["refit"]
    hist = pd.read_csv(root / "results/mlp/G0/history.tsv", sep="\t")
    assert list(hist.columns) == ["member", "epoch", "train_loss", "val_loss"]
    for _, h in hist.groupby("member"):
        assert h["epoch"].tolist() == list(range(1, meta["settings"]["epochs"] + 1))


@pytest.fixture(scope="module")
def finished_report(finished_run) -> Path:
    """The shared run with its report built (results/report.html)."""
    root, _ = finished_run
    run_snakemake(root, "--report", "results/report.html")
    return root


def test_report_builds_and_escapes(finished_report):
    html = (finished_report / "results/report.html").read_text(errors="replace")
    assert len(html) > 10_000
    assert "G0" in html
    assert "System Message" not in html  # docutils marks broken reStructuredText in captions this way


def test_report_registers_every_figure_in_lifecycle_order(finished_report):
    page = (finished_report / "results/report.html").read_text(encoding="utf-8")
    res = results_of(page)
    cats = script_var(page, "categories")
    # the report's menu sorts categories by name: the numbers keep the lifecycle order
    assert sorted(cats) == ["1. Data", "2. Preprocessing", "3. Hypothesis evaluation", "4. Prediction",
                            "5. Model comparison", "6. Deploy & monitoring"]
    figures = {Path(p).name for p, r in res.items() if r["mime_type"] == "image/png"}
    assert {"samples.png", "normalization.png", "pvalues.png", "model_comparison.png", "observed_vs_predicted.png",
            "coefficients.png", "diagnostics.png", "loss.png", "activation_functions.png", "importance.png",
            "drift.png"} <= figures
    assert any(Path(p).name == "model_comparison.html" for p in res)
    for path, r in res.items():
        assert r["labels"], f"{path} has no labels to filter by"
        if "/G0/" in path or "/G1/" in path:
            assert r["labels"].get("target") in {"G0", "G1"}
    assert "System Message" not in page  # docutils marks broken reStructuredText in captions this way


def test_captions_state_the_numbers(finished_report):
    """Samples, genes, split sizes and the best model per target, recomputed from the TSVs, are in the captions."""
    root = finished_report
    page = (root / "results/report.html").read_text(encoding="utf-8")
    res = results_of(page)
    captions = {Path(p).name + ("" if "/G" not in p else ":" + Path(p).parent.name): r["caption"]
                for p, r in res.items()}
    splits = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str)
    n_train, n_test = int((splits["split"] == "train").sum()), int((splits["split"] == "test").sum())
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0)
    data_caption = captions["samples.png"]
    assert f"{expr.shape[1]} samples and {expr.shape[0]} genes were used" in data_caption
    assert "Nothing was dropped" in data_caption
    assert f"{n_train} training samples and {n_test} test samples" in data_caption
    metrics = pd.read_csv(root / "results/compare/metrics.tsv", sep="\t")
    test = metrics[metrics["split"] == "test"]
    names = {"ols": "OLS regression", "mlp": "the neural network", "mean": "the training mean",
             "penalized": "penalized regression"}
    for target in ("G0", "G1"):
        sub = test[test["target"] == target].set_index("model")
        best = sub["mse"].idxmin()
        caption = captions[f"observed_vs_predicted.png:{target}"]
        assert f"{names[best]} has the lowest mean squared error, {sub.loc[best, 'mse']:.3g}" in caption, caption
        for model in sub.index.drop(best):
            share = (sub.loc[model, "mse"] - sub.loc[best, "mse"]) / sub.loc[model, "mse"] * 100
            pct = f"{share:.0f}%" if share >= 10 else f"{share:.1f}%" if share >= 0.1 else f"{share:.2g}%"
            assert f"{names[model]} ({names[best]}: {pct} lower)" in caption, (model, pct, caption)
        fits = pd.read_csv(root / "results/ols/all_fits.tsv", sep="\t").set_index("target")
        diag = captions[f"diagnostics.png:{target}"]
        if fits.loc[target, "failed_assumptions"] == "none":
            assert "No OLS assumption check fails" in diag
        else:
            assert "fail" in diag
    # the start page says it too
    assert f"{n_train} training samples and {n_test} test samples" in script_var(page, "workflow_desc")


def test_names_are_escaped(finished_report):
    """The hostile ids appear only as escaped text: in captions, the HTML table, and the figures' text."""
    root = finished_report
    page = (root / "results/report.html").read_text(encoding="utf-8")
    assert G2 not in page and "<b>S1</b>" not in page
    res = results_of(page)
    captions = " ".join(r["caption"] for r in res.values())
    assert html.escape(G2, quote=False) in captions  # shown as text (predictors, significance)
    table = next(r for p, r in res.items() if p.endswith("model_comparison.html"))
    body = base64.b64decode(table["data_uri"].split(",", 1)[1]).decode()
    assert "<img" not in body.lower() or "src=x" not in body
    for p, r in res.items():
        if r["mime_type"] == "image/png":
            data = base64.b64decode(r["data_uri"].split(",", 1)[1], validate=True)
            assert data[:8] == b"\x89PNG\r\n\x1a\n", p


@needs_chromium
def test_report_in_headless_chromium(finished_report, tmp_path):
    """The page loads, every figure decodes and is shown by the report's viewer, no script error, no alert."""
    from matplotlib import image

    report = finished_report / "results/report.html"
    shot = tmp_path / "report.png"
    found, stderr = browse(report, tmp_path, screenshot=shot)
    assert found["app"], "the report's app did not start"
    assert found["errors"] == [], found["errors"]
    assert found["alerts"] == [], "a name ran as script: " + repr(found["alerts"])
    assert found["imgElementsWithOnerror"] == 0
    assert "1. Data" in found["categories"] and "6. Deploy & monitoring" in found["categories"]
    res = results_of(report.read_text(encoding="utf-8"))
    pngs = [p for p, r in res.items() if r["mime_type"] == "image/png"]
    assert len(pngs) >= 9
    for p in pngs:
        size = found["images"][p]
        assert isinstance(size, list) and size[0] > 100 and size[1] > 100, (p, size)
        assert found["shown"][p] == [True, size[0]], (p, found["shown"][p])
    assert any(p.endswith("model_comparison.html") for p in found["html"])
    console = [line for line in stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "error" in line)]
    assert console == [], console
    assert "This run in numbers" in found["descriptionText"]
    menu = found["descriptionText"]
    order = [menu.index(c) for c in ("1. Data", "2. Preprocessing", "3. Hypothesis evaluation", "4. Prediction",
                                      "5. Model comparison", "6. Deploy & monitoring")]
    assert order == sorted(order), "the menu does not list the categories in lifecycle order"
    img = image.imread(shot)
    assert img.shape[0] >= 900 and img.shape[1] >= 1300 and img.std() > 0.05  # not a blank page
    # the screenshot is of the rendered app, not the loading screen
    assert "Loading Snakemake Report" not in found["descriptionText"]


@needs_chromium
def test_model_table_sorts_and_filters_in_chromium(finished_report, tmp_path):
    """The sortable table's own script runs under its Content-Security-Policy and sorts numerically."""
    table = (finished_report / "results/compare/model_comparison.html").read_text(encoding="utf-8")
    probe = """<script>
    (function () {
      var ths = document.querySelectorAll("th");
      var col = Array.prototype.findIndex.call(ths, function (th) { return th.textContent === "test_mse"; });
      ths[col].click();
      var asc = Array.prototype.map.call(document.querySelectorAll("tbody tr"), function (r) {
        return parseFloat(r.cells[col].getAttribute("data-value")); });
      ths[col].click();
      var desc = Array.prototype.map.call(document.querySelectorAll("tbody tr"), function (r) {
        return parseFloat(r.cells[col].getAttribute("data-value")); });
      var f = document.getElementById("filter"); f.value = "G1"; f.dispatchEvent(new Event("input"));
      var visible = Array.prototype.filter.call(document.querySelectorAll("tbody tr"), function (r) {
        return !r.hidden; }).length;
      var pre = document.createElement("pre"); pre.id = "probe";
      pre.textContent = JSON.stringify({asc: asc, desc: desc, visible: visible});
      document.body.appendChild(pre);
    })();
    </script>"""
    # The page's CSP allows only its own script: run the probe by adding its hash to the policy.
    import hashlib

    body = probe[len("<script>"):-len("</script>")]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    policy = "script-src &#x27;sha256-"  # the attribute value is escaped like everything else
    assert policy in table
    page = table.replace(policy, f"{policy}{digest}&#x27; &#x27;sha256-", 1)
    page = page.replace("</body>", probe + "</body>")
    path = tmp_path / "table.html"
    path.write_text(page, encoding="utf-8")
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    got = json.loads(html.unescape(m.group(1)))
    assert got["asc"] == sorted(got["asc"]) and got["desc"] == sorted(got["desc"], reverse=True)
    n_g1 = table.count("<td>G1</td>")
    assert got["visible"] == n_g1 > 0
    assert G2 not in proc.stdout  # the table holds no raw markup from the data


def test_regulator_recovery(finished_run):
    """Every evidence source ranks the planted regulators; the correlation ranking's AUROC and AUPR equal
    scikit-learn's on |r| recomputed here from the training split."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    root, data = finished_run
    res = root / "results"
    tab = pd.read_csv(res / "recovery/regulator_recovery.tsv", sep="\t")
    assert set(tab["scope"]) == {"all_gold_standard_targets", "known_regulators", "run_targets"}
    every = tab[tab["scope"] == "all_gold_standard_targets"].set_index(["method", "normalization"])
    assert {m for m, _ in every.index} == {"ols", "penalized", "network", "correlation", "clr_mean", "rank_average",
                                           "tf_activity"}  # the last uses the gold standard as prior, set apart
    # candidates: every gene of the gold standard's columns but the target itself; 5 known edges
    assert (every["n_targets"] == 2).all() and (every["n_positive"] == 5).all() and (every["n_pairs"] == 22).all()
    np.testing.assert_allclose(every["random_aupr"], 5 / 22, rtol=1e-12)
    for key in [("ols", "none"), ("penalized", "clr"), ("network", "none")]:
        assert every.loc[key, "auroc"] > 0.85, key
    sp = pd.read_csv(res / "data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    adata = ad.read_h5ad(res / "data/normalized.h5ad")
    Xtr = np.asarray(adata.X)[(sp.reindex(adata.obs_names) == "train").to_numpy()]
    genes = list(adata.var_names)
    scores, labels = [], []
    for target, known in [("G0", {G2, "G3"}), ("G1", {G4, "G5", "G6"})]:
        for g in genes:
            if g != target:
                scores.append(abs(np.corrcoef(Xtr[:, genes.index(g)], Xtr[:, genes.index(target)])[0, 1]))
                labels.append(g in known)
    assert every.loc[("correlation", "none"), "auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert every.loc[("correlation", "none"), "aupr"] == pytest.approx(average_precision_score(labels, scores),
                                                                        abs=1e-9)
    # the DREAM5 convention: only the 5 candidates with a known target (G2-G6), 2 x 5 pairs
    dream = tab[tab["scope"] == "known_regulators"].set_index(["method", "normalization"])
    assert (dream["n_pairs"] == 10).all() and (dream["n_positive"] == 5).all()
    pairs = [(t, g) for t in ("G0", "G1") for g in genes if g != t]
    sub = [i for i, (_, g) in enumerate(pairs) if g in {G2, "G3", G4, "G5", "G6"}]
    assert dream.loc[("correlation", "none"), "aupr"] == pytest.approx(
        average_precision_score(np.asarray(labels)[sub], np.asarray(scores)[sub]), abs=1e-9)
    edges = pd.read_csv(res / "recovery/edges.tsv", sep="\t", dtype={"target": str, "regulator": str})
    assert len(edges) == 22 and edges["rank"].tolist() == list(range(1, 23))
    assert edges["score"].is_monotonic_decreasing
    top = set(zip(edges["target"][:5], edges["regulator"][:5]))
    assert len(top & {("G0", G2), ("G0", "G3"), ("G1", G4), ("G1", "G5"), ("G1", "G6")}) >= 4
    assert {"ols_abs_t", "penalized", "network", "correlation"} <= set(edges.columns)
    # G2-G6 have known targets (G0's two, G1's three: one each); every other candidate none
    want = {g: int(g in {G2, "G3", G4, "G5", "G6"}) for g in edges["regulator"]}
    assert edges["regulator_known_targets"].tolist() == [want[g] for g in edges["regulator"]]
    assert (res / "plots/regulator_recovery.png").stat().st_size > 10_000
    facts = json.loads((res / "report/facts.json").read_text())
    assert "2 gold-standard targets" in facts["recovery"] and "ridge \\|t\\|" in facts["recovery"]
    assert "DREAM5" in facts["recovery"] and "10 pairs left" in facts["recovery"]
    top = edges.head(5)  # as many pairs as known edges
    assert "The top 5 pairs of the inferred network" in facts["recovery"]
    assert f"hold {int(top['known'].sum())} known edge" in facts["recovery"]
    gold_free, _, prior = facts["recovery"].partition("With the gold standard itself as prior knowledge")
    assert "TF activity" in prior and "not comparable" in prior and "TF activity" not in gold_free


def test_importance_and_interactions(finished_run):
    """Every model's permutation importance ranks G0's true inputs (G2, G3) first; the network's interaction
    tests equal statsmodels' HC3 test of a:b beside the pair's squares on the training split; the report's caption
    says it in words."""
    import anndata as ad
    import statsmodels.api as sm

    root, _ = finished_run
    res = root / "results"
    for model in ("ols", "penalized", "mlp"):
        imp = pd.read_csv(res / f"{model}/G0/importance.tsv", sep="\t")
        assert set(imp["predictor"][:2]) == {G2, "G3"}, model
        assert (imp["perm_folds"] == 3).all() and imp["perm_mean"].iloc[0] > 0  # split.folds: 3
        assert imp["ig_mean_abs"].notna().all() == (model == "mlp")
    inter = pd.read_csv(res / "mlp/G1/interactions.tsv", sep="\t")
    meta = json.loads((res / "mlp/G1/model.json").read_text())
    adata = ad.read_h5ad(res / "data/normalized.h5ad")
    sp = pd.read_csv(res / "data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    train = adata[sp.loc[adata.obs_names].to_numpy() == "train"]
    X = pd.DataFrame(np.asarray(train.X), columns=train.var_names)[meta["predictors"]]
    y = np.asarray(train[:, "G1"].X).ravel()
    tested = inter[inter["verdict"].isin(["confirmed", "not confirmed"])]
    for _, r in tested.iterrows():
        a, b = X[r["gene_a"]], X[r["gene_b"]]
        full = sm.OLS(y, sm.add_constant(np.column_stack([X.to_numpy(), a**2, b**2, a * b]))).fit(
            cov_type="HC3", use_t=True)  # beside the pair's squares, with heteroskedasticity-consistent errors
        np.testing.assert_allclose([r["f_stat"], r["p_value"]], [full.tvalues[-1] ** 2, full.pvalues[-1]], rtol=1e-8)
    facts = json.loads((res / "report/facts.json").read_text())
    assert "permutation" in facts["targets"]["G0"]["importance"]
    assert "network" in facts["targets"]["G1"]["interactions"]
    assert (res / "plots/G0/importance.png").stat().st_size > 10_000


def test_rerun_is_a_noop(finished_run):
    root, _ = finished_run
    proc = run_snakemake(root, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    # the same config with every mapping's keys in reverse order (as another editor or yaml.safe_dump writes
    # it) means the same run: nothing reruns. recovery.network is written out with the schema's defaults, a
    # mapping of several keys the rules pass on as JSON
    import yaml

    def reverse(v):
        return {k: reverse(v[k]) for k in reversed(list(v))} if isinstance(v, dict) else v

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    network = {k: p["default"] for k, p in
               schema["properties"]["recovery"]["properties"]["network"]["properties"].items()}
    path = root / "config.yaml"
    original = path.read_text()
    cfg = {**yaml.safe_load(original), "recovery": {"network": network}}
    try:
        path.write_text(yaml.safe_dump(reverse(cfg), sort_keys=False))
        proc = run_snakemake(root, "-n")
    finally:
        path.write_text(original)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_killed_run_resumes_to_identical_results(tmp_path, finished_run):
    """A second run of the same config, killed (SIGKILL, whole process group) while a network trains and
    restarted with --rerun-incomplete, ends byte-identical to the first, uninterrupted run: every table,
    model file and weights file. This is also the check that two runs of the
    same config and seed give the same numbers: every output of the second run comes from a fresh
    process, before or after the kill. (The second run makes target G0's three models and what they need,
    not the whole DAG again, to keep the suite short.)"""
    import signal
    import time

    first, _ = finished_run
    root = tmp_path / "killed"
    root.mkdir()
    shutil.copytree(first / "data", root / "data")
    shutil.copy(first / "config.yaml", root / "config.yaml")
    goals = [f"results/{m}/G0/model.json" for m in ("ols", "penalized", "mlp")]
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(root), "--cores", "2",
           "--configfile", str(root / "config.yaml"), "--nocolor", *goals]  # a flag before the goals
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    training = root / "results/logs/mlp"
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            logs = list(training.glob("*.log")) if training.is_dir() else []
            if any("epoch" in p.read_text(errors="replace") for p in logs):  # a network is training
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (root / "results/mlp/G0/model.json").exists()
    run_snakemake(root, "--unlock")  # a killed Snakemake leaves its lock behind
    run_snakemake(root, "--rerun-incomplete", "--nocolor", *goals)
    files = sorted(p.relative_to(root) for p in (root / "results").rglob("*")
                   if p.suffix in {".tsv", ".json"} and "benchmarks" not in p.parts and p.name != "card.json")
    assert len(files) > 20 and all((root / g).is_file() for g in goals)
    for rel in files:
        assert (first / rel).read_bytes() == (root / rel).read_bytes(), rel
    for model in (root / "results").rglob("*.pt"):
        model = first / model.relative_to(root)
        assert model.read_bytes() == (root / model.relative_to(first)).read_bytes(), model
        a = torch.load(model, weights_only=True)
        assert all(torch.equal(v, torch.load(root / model.relative_to(first), weights_only=True)[k])
                   for k, v in a.items())
