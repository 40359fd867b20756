"""Benchmark: the pipeline's models against the scikit-learn models a user could pick instead.

The panel (as a new user would build it, and as issue 15 describes): from the bundled
*B. subtilis* compendium (``resources/demo``), ``--targets`` genes (default 40) drawn with
``--seed`` among the genes with 3-8 known regulators in the bundled gold standard that
are not transcription factors themselves. Everything then follows the pipeline's own
steps, with the pipeline's own functions and the schema's defaults:

* train/test split of the samples (``split.test_fraction`` 0.2, seed 0;
  :func:`gexpred.split.train_test_split`);
* z-score of every gene fitted on the training split (:mod:`gexpred.preprocess`);
* per target, the 20 transcription factors most correlated with it on the training
  split (:func:`gexpred.design.select_predictors`);
* the 5 cross-validation folds of the training split (:func:`gexpred.search.kfold`).

Our models, exactly as the ``ols``, ``penalized`` and ``mlp`` rules fit them:
OLS (:func:`gexpred.ols.fit_ols`), ridge/lasso chosen by CV
(:func:`gexpred.search.cv_penalized`) and the network search with the schema's
``mlp`` and ``search`` defaults (:func:`gexpred.search.search_network`, the
function ``gexpred mlp`` calls, with ``search.prune``'s early stopping of candidates
clearly behind).

The peers are fitted on exactly the same training samples, predictors and scaling,
and judged on the same test samples: scikit-learn ``LinearRegression``, ``RidgeCV``,
``SVR`` (RBF kernel, grid over C, gamma and epsilon), ``ExtraTreesRegressor``,
``HistGradientBoostingRegressor`` and ``MLPRegressor`` (grid over width, activation
and L2 penalty); the grids are searched by ``GridSearchCV`` on our 5 folds
(``PredefinedSplit``), so every tuned model is chosen on the same samples as ours.
Both sides use the machine's cores: the network searches run as the pipeline's ``mlp``
jobs do, one target per one-thread process, as many at once as there are cores
(``--network-jobs``); scikit-learn with ``n_jobs``.

The network is timed twice: as the ``mlp`` jobs run it (choose by CV, refit, and
cross-validate the delivered ensemble, ``ensemble`` networks per fold, for the report's
comparison) and choosing and refitting only (``search_network(..., cv_refit=False)``),
the work a ``GridSearchCV`` peer's time covers; the model is the same.

Prints one row per model (mean test MAE and R² over the targets, ratio of MAE to
OLS, targets where the model's MAE is below OLS's, wall time) and, as its last line,
``mlp_vs_ols=<MAE ratio> mlp_vs_best_peer=<MAE ratio>`` where the best peer is the
scikit-learn model with the lowest mean test MAE. Target: ``mlp_vs_best_peer <= 1``, with
choosing and refitting in no more time than the best peer's fit (the line before the last
prints both times and their ratio).

Run: ``python benchmarks/bench_peers.py`` (about 4-9 minutes on 2 cores with the machine's
load, most of it the MLPRegressor grid; ``--targets 10`` for a quick look; ``--peers svr``
to time the network against the SVR grid alone, in under a minute; ``--seeds 4`` for the spread of
the network's accuracy over seeds). Another
compendium: ``--expression``, ``--gold-standard``, ``--tfs`` (and ``--tf-targets`` where
every gene is a regulator). Needs scikit-learn (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from gexpred.design import select_predictors
from gexpred.io import read_gene_list, read_matrix
from gexpred.nn import MLPSettings, predict
from gexpred.ols import fit_ols
from gexpred.preprocess import apply_normalization, fit_normalization
from gexpred.search import NO_PRUNING, Pruning, cv_penalized, kfold, mlp_candidates, search_network
from gexpred.split import train_test_split

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def schema_defaults(overrides: dict | None = None) -> dict:
    """The config the pipeline runs with when a user sets nothing but ``overrides``: the schema's defaults fill
    every key they leave out, nested ones included (``mlp: {loss: mse}`` keeps the other ``mlp`` defaults),
    as ``validate()`` fills a user's config file in the pipeline."""
    from snakemake.utils import validate

    cfg: dict = {"matrices": ["x.tsv"], "targets": ["x"], "predictors": ["x"], **(overrides or {})}
    validate(cfg, schema=str(SCHEMA))
    return cfg


def build_panel(n_targets: int, seed: int, k: int, cfg: dict, expression: str = str(DEMO / "expression.tsv.gz"),
                gold_standard: str = str(DEMO / "gold_standard.tsv.gz"), tf_file: str = str(DEMO / "tf_names.txt"),
                known: tuple[int, int] = (3, 8), tf_targets: bool = False):
    """Samples x genes z-scores, split, targets and each target's predictors, as the pipeline makes them."""
    expr = read_matrix(expression)
    genes = [str(g) for g in expr.var_names]
    samples = [str(s) for s in expr.obs_names]
    X = np.asarray(expr.X, dtype=np.float64)
    tfs = read_gene_list(tf_file)
    gold = pd.read_csv(gold_standard, sep="\t", index_col=0)
    gold.index = gold.index.astype(str)
    gold.columns = gold.columns.astype(str)
    tf_set, gene_set = set(tfs), set(genes)
    n_known = gold.reindex(columns=[c for c in gold.columns if c in tf_set]).fillna(0).sum(axis=1)
    pool = sorted(g for g in gold.index[(n_known >= known[0]) & (n_known <= known[1])]
                  if g in gene_set and (tf_targets or g not in tf_set))
    targets = sorted(np.random.default_rng(seed).choice(pool, size=min(n_targets, len(pool)), replace=False))
    split = train_test_split(samples, cfg["split"]["test_fraction"], cfg["split"]["seed"])
    train = (split["split"] == "train").to_numpy()
    params = fit_normalization(X[train], genes, [s for s, t in zip(samples, train) if t], "zscore", "demo")
    Z = apply_normalization(X, genes, samples, params, "demo")
    table = select_predictors(Z[train], genes, targets, {"top_correlated": k, "from": tfs}, "demo")
    folds = kfold([s for s, t in zip(samples, train) if t], cfg["split"]["folds"], cfg["split"]["seed"])
    col = {g: i for i, g in enumerate(genes)}
    panel = []
    for t in targets:
        preds = table.loc[table["target"] == t].sort_values("rank")["gene"].tolist()
        Xt, y = Z[:, [col[g] for g in preds]], Z[:, col[t]]
        panel.append((t, Xt[train], y[train], Xt[~train], y[~train]))
    return panel, folds, len(pool)


def score(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """MAE and R² (1 - SSE/SST around the test split's mean, as metrics.tsv)."""
    resid = y - pred
    return float(np.mean(np.abs(resid))), float(1.0 - np.sum(resid ** 2) / np.sum((y - y.mean()) ** 2))


def ours(panel, folds, cfg, workers: int = 1) -> dict[str, tuple[list[np.ndarray], float]]:
    """Test predictions and wall time of the pipeline's three models.

    The network searches of the targets run in ``workers`` processes of one thread each, as the ``mlp``
    jobs of the pipeline do (``workers`` 1: one after the other in this process, on its threads).
    """
    out: dict[str, tuple[list[np.ndarray], float]] = {}
    print("  fitting our models (OLS, penalized, network search) ...", flush=True)
    t0 = time.perf_counter()
    out["ols (ours)"] = ([fit_ols(Xtr, ytr, [f"x{j}" for j in range(Xtr.shape[1])]).predict(Xte)
                          for _, Xtr, ytr, Xte, _ in panel], time.perf_counter() - t0)
    t0 = time.perf_counter()
    preds = []
    for name, Xtr, ytr, Xte, _ in panel:
        # the peers choose and refit, as nested=False does; the rule's nested CV changes only the CV predictions
        res = cv_penalized(Xtr, ytr, folds, cfg["search"]["penalized"]["methods"],
                           cfg["search"]["penalized"]["n_alphas"], name, nested=False)
        preds.append(res.intercept + Xte @ res.coef)
    out["penalized (ours)"] = (preds, time.perf_counter() - t0)
    candidates = network_candidates(cfg, cfg["mlp"])
    for label, cv_refit in (("mlp (ours)", True), ("mlp search + refit (ours)", False)):
        t0 = time.perf_counter()
        preds = network_predictions(panel, folds, candidates, cv_refit, workers, pruning(cfg))
        out[label] = (preds, time.perf_counter() - t0)
    return out


def network_candidates(cfg, mlp: dict) -> list[MLPSettings]:
    """The network search's candidates for the ``mlp`` section ``mlp`` and ``cfg``'s ``search`` section."""
    search = cfg["search"]
    return [MLPSettings.from_config(c) for c in mlp_candidates(
        mlp, search["mlp"], search["strategy"], search["n_candidates"], search["seed"])]


def pruning(cfg) -> Pruning:
    """The search's early stopping of clearly worse candidates (``search.prune``), as the ``mlp`` rule reads it."""
    return Pruning.from_config(cfg["search"].get("prune"))


def network_predictions(panel, folds, candidates, cv_refit: bool, workers: int,
                        prune: Pruning = NO_PRUNING) -> list[np.ndarray]:
    """Test predictions of the network search of every target of the panel."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(name, Xtr, ytr, Xte, folds, candidates, cv_refit, prune) for name, Xtr, ytr, Xte, _ in panel]
    if workers <= 1:
        return [_network_search(t) for t in tasks]
    # as the pipeline runs it: one ``mlp`` job a target, ``threads: 1``, as many at once as there are
    # cores (``snakemake --cores N``); fresh interpreters (spawn), which pay the import of torch once each
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(pool.map(_network_search, tasks))


def seed_spread(panel, folds, cfg, workers: int, n_seeds: int, first_mae: float) -> np.ndarray:
    """Mean test MAE of the network (search and refit) with ``mlp.seed`` 0, 100, 200, ... (``n_seeds`` of them; the
    members of an ensemble take seed, seed + 1, ...): how much of a difference to a peer the seed alone makes.
    ``first_mae`` is the configured seed's, already measured (the search and refit row of the table)."""
    seed = int(cfg["mlp"]["seed"])
    maes = [first_mae]
    print(f"  network search + refit with mlp.seed {seed}: mean test MAE {first_mae:.4f}", flush=True)
    for k in range(1, n_seeds):
        candidates = network_candidates(cfg, {**cfg["mlp"], "seed": seed + 100 * k})
        preds = network_predictions(panel, folds, candidates, False, workers, pruning(cfg))
        maes.append(np.mean([score(p[4], pr)[0] for p, pr in zip(panel, preds)]))
        print(f"  network search + refit with mlp.seed {seed + 100 * k}: mean test MAE {maes[-1]:.4f}", flush=True)
    return np.array(maes)


def _network_search(task) -> np.ndarray:
    """The ``mlp`` rule's work for one target: the network search on its training split, then its test predictions
    (``cv_refit`` False: without the cross-validation of the delivered ensemble, the work a ``GridSearchCV`` does)."""
    name, Xtr, ytr, Xte, folds, candidates, cv_refit, prune = task
    return predict(search_network(Xtr, ytr, folds, candidates, target=name, cv_refit=cv_refit, prune=prune).model,
                   Xte)


PEERS = ("LinearRegression", "RidgeCV", "SVR (RBF, grid)", "ExtraTrees", "HistGradientBoosting", "MLPRegressor (grid)")
PEER_KEYS = dict(zip(("linear", "ridge", "svr", "extratrees", "hgb", "mlp"), PEERS))  # --peers


def peers(panel, folds, n_jobs: int, names=PEERS) -> dict[str, tuple[list[np.ndarray], float]]:
    """Test predictions and wall time of the scikit-learn models, tuned on our folds."""
    from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, RidgeCV
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.neural_network import MLPRegressor
    from sklearn.svm import SVR

    cv = PredefinedSplit(folds)
    makers = {
        "LinearRegression": lambda: LinearRegression(),
        "RidgeCV": lambda: RidgeCV(alphas=np.logspace(-3, 3, 13), cv=cv),
        "SVR (RBF, grid)": lambda: GridSearchCV(
            SVR(kernel="rbf"), {"C": [0.3, 1.0, 3.0, 10.0], "gamma": ["scale", 0.01, 0.03],
                                "epsilon": [0.05, 0.1]}, cv=cv, n_jobs=n_jobs),
        "ExtraTrees": lambda: ExtraTreesRegressor(n_estimators=500, random_state=0, n_jobs=n_jobs),
        "HistGradientBoosting": lambda: HistGradientBoostingRegressor(random_state=0),
        "MLPRegressor (grid)": lambda: GridSearchCV(
            MLPRegressor(max_iter=500, random_state=0),
            {"hidden_layer_sizes": [(32,), (64,), (64, 32)], "activation": ["relu", "tanh"],
             "alpha": [1e-4, 1e-2, 1.0]}, cv=cv, n_jobs=n_jobs),
    }
    out = {}
    for name, make in makers.items():
        if name not in names:
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLPRegressor's ConvergenceWarning at max_iter
            preds = [make().fit(Xtr, ytr).predict(Xte) for _, Xtr, ytr, Xte, _ in panel]
        out[name] = (preds, time.perf_counter() - t0)
        print(f"  fitted {name} in {out[name][1]:.1f} s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", type=int, default=40, help="genes in the panel (default 40)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the draw of the panel's genes (default 0)")
    ap.add_argument("--predictors", type=int, default=20, help="TFs per target (default 20)")
    ap.add_argument("--config", help="YAML config whose sections (mlp, search, split) are read as the pipeline reads a config file: "
                         "the schema's defaults fill what it leaves out (experiments)")
    ap.add_argument("--out", help="write the per-target table (TSV) here")
    ap.add_argument("--no-peers", action="store_true", help="our models only (experiments; no last line)")
    ap.add_argument("--peers", nargs="+", choices=list(PEER_KEYS), default=list(PEER_KEYS),
                    help="the peers to fit (default all; e.g. --peers svr for a quick like-for-like timing: the "
                         "last line then compares with these only)")
    ap.add_argument("--expression", default=str(DEMO / "expression.tsv.gz"),
                    help="genes x samples matrix of another compendium (default: the bundled demo)")
    ap.add_argument("--gold-standard", default=str(DEMO / "gold_standard.tsv.gz"),
                    help="targets x regulators table, 1 = known edge")
    ap.add_argument("--tfs", default=str(DEMO / "tf_names.txt"), help="candidate predictors, one a line")
    ap.add_argument("--known", type=int, nargs=2, default=(3, 8), metavar=("MIN", "MAX"),
                    help="known regulators a panel gene has (default 3 8)")
    ap.add_argument("--tf-targets", action="store_true",
                    help="let TFs be targets too (for compendia where every gene is a regulator, as DREAM4)")
    ap.add_argument("--seeds", type=int, default=0,
                    help="also run the network (search and refit) with this many seeds (mlp.seed 0, 100, ...) and "
                         "print the spread of its mean test MAE against the best peer's, before the last line")
    ap.add_argument("--network-jobs", type=int, default=0,
                    help="targets whose network search runs at once, one thread each, as the pipeline's mlp jobs "
                         "(default: the cores; 1: one target at a time on every core's thread)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n_jobs = os.cpu_count() or 1
    torch.set_num_threads(n_jobs)
    cfg = schema_defaults((yaml.safe_load(Path(args.config).read_text()) or {}) if args.config else None)
    panel, folds, n_pool = build_panel(args.targets, args.seed, args.predictors, cfg, args.expression,
                                       args.gold_standard, args.tfs, tuple(args.known), args.tf_targets)
    print(f"panel: {len(panel)} of {n_pool} genes with {args.known[0]}-{args.known[1]} known regulators"
          f"{'' if args.tf_targets else ' (not TFs)'} in {args.expression}, "
          f"{len(panel[0][2])} training / {len(panel[0][4])} test samples, {args.predictors} TFs per target, "
          f"z-scored; {n_jobs} cores", flush=True)
    results = {**ours(panel, folds, cfg, args.network_jobs or n_jobs),
               **({} if args.no_peers else peers(panel, folds, n_jobs, [PEER_KEYS[k] for k in args.peers]))}
    rows, per_target = [], []
    for name, (preds, seconds) in results.items():
        scores = np.array([score(p[4], pr) for p, pr in zip(panel, preds)])
        for p, (mae, r2) in zip(panel, scores):
            per_target.append({"target": p[0], "model": name, "mae": mae, "r2": r2})
        rows.append({"model": name, "mae": scores[:, 0].mean(), "r2": scores[:, 1].mean(), "seconds": seconds,
                     "_mae": scores[:, 0]})
    ols_mae = rows[0]["_mae"]
    table = pd.DataFrame(rows)
    table["mae_vs_ols"] = table["mae"] / table.loc[0, "mae"]
    # better: below OLS's MAE by more than float rounding (LinearRegression is OLS)
    table["better_than_ols"] = [f"{int(np.sum(r['_mae'] < ols_mae * (1 - 1e-9)))}/{len(panel)}" for r in rows]
    show = table.drop(columns="_mae")[["model", "mae", "r2", "mae_vs_ols", "better_than_ols", "seconds"]]
    print(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        pd.DataFrame(per_target).to_csv(args.out, sep="\t", index=False)
    if args.no_peers:
        return 0
    mlp = table.loc[table["model"] == "mlp (ours)"].iloc[0]
    fit_only = table.loc[table["model"] == "mlp search + refit (ours)"].iloc[0]
    is_peer = ~table["model"].str.endswith("(ours)")
    best = table.loc[table.loc[is_peer, "mae"].idxmin()]
    print(f"best peer: {best['model']} (MAE {best['mae']:.4f}, {best['seconds']:.1f} s to fit, grid search and refit "
          f"for a grid); "
          f"our network search and refit {fit_only['seconds']:.1f} s = {fit_only['seconds'] / best['seconds']:.2f} x "
          f"its time; the mlp jobs, which also cross-validate the delivered ensemble for the report's comparison, "
          f"{mlp['seconds']:.1f} s = {mlp['seconds'] / best['seconds']:.2f} x"
          + "".join(f"; MLPRegressor grid {sec:.1f} s"
                    for sec in table.loc[table["model"] == "MLPRegressor (grid)", "seconds"]))
    if set(args.peers) != set(PEER_KEYS):
        print(f"(peers fitted: {', '.join(PEER_KEYS[k] for k in args.peers)} only; the issue's line compares with all)")
    if args.seeds > 1:
        spread = seed_spread(panel, folds, cfg, args.network_jobs or n_jobs, args.seeds, float(fit_only["mae"]))
        ratio = spread / best["mae"]
        print(f"network over {args.seeds} seeds: mean test MAE {spread.mean():.4f} (sd {spread.std(ddof=1):.4f}, "
              f"{spread.min():.4f}-{spread.max():.4f}); against {best['model']}: {ratio.min():.3f}-{ratio.max():.3f} "
              f"({int(np.sum(ratio <= 1.0))} of {args.seeds} seeds at or below 1)")
    print(f"mlp_vs_ols={mlp['mae'] / table.loc[0, 'mae']:.3f} mlp_vs_best_peer={mlp['mae'] / best['mae']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
