"""Honesty checks of the model search and comparison.

* Where the truth has interactions and non-linear effects, the searched network beats OLS clearly
  on the test split, and the cross-validated verdict says so.
* Where the truth is linear, the searched network does not lose to OLS by more than noise, and the
  verdict does not prefer it.
* The search never looks at the test split: changing the test samples' values changes nothing the
  search produced (``gexpred mlp`` run twice through the command line).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from gexpred.cli import main
from gexpred.compare import cv_metrics_table, regression_metrics, summary_table
from gexpred.io import write_h5ad, write_table
from gexpred.nn import MLPSettings, predict, train_mlp
from gexpred.search import cv_networks, cv_ols, kfold, mlp_candidates

pytestmark = pytest.mark.usefixtures("restore_logging", "one_torch_thread")

SEARCH = {"hidden": [[], [32, 16]], "lr": [0.01]}
BASE = {"epochs": 400, "patience": 40, "batch_size": 32, "device": "cpu", "seed": 0}


def _data(kind: str, n: int = 500, p: int = 5, seed: int = 11):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if kind == "nonlinear":
        y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + 0.3 * rng.normal(size=n)
    else:
        y = X @ np.array([1.0, -0.5, 0.25, 0.0, 0.8]) + rng.normal(size=n)
    test = np.zeros(n, dtype=bool)
    test[rng.permutation(n)[: n // 5]] = True
    return X, y, ~test, test


def _search_and_compare(kind: str):
    X, y, train, test = _data(kind)
    ids = [f"s{i}" for i in range(len(y))]
    folds = kfold([s for s, t in zip(ids, train) if t], 5, seed=0)
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(BASE, SEARCH)]
    cv = cv_networks(X[train], y[train], folds, cands, target=kind)
    chosen = cands[cv.winner()]
    model, _, _ = train_mlp(X[train], y[train], chosen, kind)
    A = np.column_stack([np.ones(len(y)), X])
    beta = np.linalg.lstsq(A[train], y[train], rcond=None)[0]
    err_ols = y[test] - A[test] @ beta
    err_mlp = y[test] - predict(model, X[test])
    # the verdict, from the same folds
    tr_ids = np.asarray(ids)[train]
    frames = [pd.DataFrame({"target": kind, "model": m, "sample": tr_ids, "fold": folds + 1, "observed": y[train],
                            "predicted": pred})
              for m, pred in (("ols", cv_ols(X[train], y[train], folds)), ("mlp", cv.oof[cv.winner()]))]
    cvm = cv_metrics_table(pd.concat(frames, ignore_index=True), ["ols", "mlp"])
    test_metrics = pd.DataFrame([{"target": kind, "model": m, "split": "test",
                                  **regression_metrics(y[test], y[test] - e)}
                                 for m, e in (("ols", err_ols), ("mlp", err_mlp))])
    summary = summary_table(cvm, test_metrics, ["ols", "mlp"]).iloc[0]
    return chosen, err_ols, err_mlp, summary


def test_network_wins_where_truth_is_nonlinear():
    chosen, err_ols, err_mlp, summary = _search_and_compare("nonlinear")
    assert chosen.hidden == [32, 16]
    mse_ols, mse_mlp = np.mean(err_ols**2), np.mean(err_mlp**2)
    assert mse_mlp < 0.5 * mse_ols, (mse_mlp, mse_ols)
    assert summary["verdict"] == "network" and summary["p_value"] < 0.05


def test_network_does_not_lose_where_truth_is_linear():
    chosen, err_ols, err_mlp, summary = _search_and_compare("linear")
    d = err_mlp**2 - err_ols**2  # paired per test sample
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert d.mean() <= 2 * se, (d.mean(), se)
    assert summary["verdict"] != "network"


# --------------------------------------------------------------------------- the test split stays unseen
def _inputs(tmp_path, perturb: bool):
    X, y, train, test = _data("nonlinear", n=120)
    genes = [f"g{j}" for j in range(X.shape[1])] + ["target"]
    values = np.column_stack([X, y])
    if perturb:  # wreck every test sample: predictors and target
        rng = np.random.default_rng(99)
        values[test] = rng.normal(size=values[test].shape) * 50 + 7
    samples = [f"s{i:03d}" for i in range(len(y))]
    d = tmp_path / ("perturbed" if perturb else "clean")
    d.mkdir()
    write_h5ad(ad.AnnData(X=values, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=genes)), d / "data.h5ad")
    write_table(pd.DataFrame({"sample": samples, "split": np.where(test, "test", "train")}), d / "splits.tsv")
    write_table(pd.DataFrame({"target": "target", "rank": range(1, 6), "gene": genes[:5], "train_corr": 0.0}),
                d / "predictors.tsv")
    tr = [s for s, t in zip(samples, train) if t]
    write_table(pd.DataFrame({"target": "target", "sample": tr, "fold": kfold(tr, 3) + 1}), d / "folds.tsv")
    return d


def _run_mlp(d):
    import json

    settings = json.dumps({"epochs": 60, "patience": 10, "device": "cpu", "batch_size": 16})
    search = json.dumps({"mlp": {"hidden": [[], [8]], "lr": [0.01, 0.03]}})
    rc = main(["mlp", "--data", str(d / "data.h5ad"), "--splits", str(d / "splits.tsv"),
               "--predictors", str(d / "predictors.tsv"), "--folds", str(d / "folds.tsv"), "--target", "target",
               "--settings", settings, "--search", search, "--out-dir", str(d / "out")])
    assert rc == 0
    return d / "out"


def test_search_never_touches_the_test_split(tmp_path):
    clean = _run_mlp(_inputs(tmp_path, perturb=False))
    wrecked = _run_mlp(_inputs(tmp_path, perturb=True))
    for name in ("search.tsv", "cv_predictions.tsv", "history.tsv"):
        assert (clean / name).read_bytes() == (wrecked / name).read_bytes(), name
    a = torch.load(clean / "model.pt", weights_only=True)
    b = torch.load(wrecked / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    pa = pd.read_csv(clean / "predictions.tsv", sep="\t")
    pb = pd.read_csv(wrecked / "predictions.tsv", sep="\t")
    trn = pa["split"] == "train"
    pd.testing.assert_frame_equal(pa[trn], pb[trn])
    assert not np.allclose(pa.loc[~trn, "predicted"], pb.loc[~trn, "predicted"])  # the test rows did change
    search = pd.read_csv(clean / "search.tsv", sep="\t")
    assert len(search) == 4 and search["selected"].sum() == 1


def test_search_does_not_depend_on_the_order_of_the_samples(tmp_path):
    """The same data and seed give the same network whatever the order of the samples in the matrices (the
    validation part and batch order are drawn by position: the samples in the order of the input matrices
    gave another search, CV error and model when a matrix's columns were listed in another order)."""
    import json

    d = _inputs(tmp_path, perturb=False)
    data = ad.read_h5ad(d / "data.h5ad")
    rev = tmp_path / "reversed"
    rev.mkdir()
    write_h5ad(data[::-1].copy(), rev / "data.h5ad")
    for name in ("splits.tsv", "predictors.tsv", "folds.tsv"):
        (rev / name).write_bytes((d / name).read_bytes())
    settings = json.dumps({"epochs": 15, "patience": 5, "device": "cpu", "batch_size": 16, "ensemble": 1})
    outs = []
    for run in (d, rev):
        rc = main(["mlp", "--data", str(run / "data.h5ad"), "--splits", str(run / "splits.tsv"),
                   "--predictors", str(run / "predictors.tsv"), "--folds", str(run / "folds.tsv"), "--target",
                   "target", "--settings", settings, "--search", json.dumps({"mlp": {"hidden": [[], [4]]}}),
                   "--importance-repeats", "0", "--out-dir", str(run / "out")])
        assert rc == 0
        outs.append(run / "out")
    for name in ("search.tsv", "history.tsv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    for name in ("cv_predictions.tsv", "predictions.tsv"):
        a, b = (pd.read_csv(o / name, sep="\t").sort_values("sample").reset_index(drop=True) for o in outs)
        pd.testing.assert_frame_equal(a, b)
    a, b = (torch.load(o / "model.pt", weights_only=True) for o in outs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_genome_wide_networks_do_not_depend_on_the_order_of_the_samples(tmp_path):
    """The genome-wide chunk's networks too (the same position-drawn validation part and batches): a matrix and
    its samples reversed give byte-identical search and metrics tables and equal weights."""
    import json

    d = _inputs(tmp_path, perturb=False)
    rev = tmp_path / "reversed"
    rev.mkdir()
    write_h5ad(ad.read_h5ad(d / "data.h5ad")[::-1].copy(), rev / "data.h5ad")
    (rev / "splits.tsv").write_bytes((d / "splits.tsv").read_bytes())
    settings = json.dumps({"hidden": [4], "epochs": 15, "patience": 5, "device": "cpu", "batch_size": 16})
    for run in (d, rev):
        assert main(["genome-plan", "--data", str(run / "data.h5ad"), "--spec", json.dumps(["g0", "g1", "g2"]),
                     "--targets", '"all"', "--chunk-size", "5", "--out", str(run / "plan.tsv"),
                     "--out-design", str(run / "design.json")]) == 0
        assert main(["mlp-chunk", "--data", str(run / "data.h5ad"), "--splits", str(run / "splits.tsv"),
                     "--plan", str(run / "plan.tsv"), "--design", str(run / "design.json"), "--chunk", "0",
                     "--settings", settings, "--mode", "multi_output", "--out-dir", str(run / "out")]) == 0
    names = sorted(p.name for p in (d / "out").iterdir())
    assert names == sorted(p.name for p in (rev / "out").iterdir()) and any(n.endswith(".pt") for n in names)
    for name in names:
        if name.endswith(".pt"):
            a, b = (torch.load(run / "out" / name, weights_only=True) for run in (d, rev))
            assert all(torch.equal(a[k], b[k]) for k in a), name
        elif not name.endswith(".json"):
            assert (d / "out" / name).read_bytes() == (rev / "out" / name).read_bytes(), name
