"""Tests of gexpred.search: folds, candidates, cross-validated networks and penalised regression.

Expected values come from independent computations: itertools.product for the grid, the ridge
closed form, the lasso's optimality (KKT) conditions, statsmodels OLS per fold.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from gexpred.errors import ConfigError, InputError, ModelError
from gexpred.nn import MLPSettings, predict, train_mlp
from gexpred.search import (NetworkCV, Pruning, cv_criterion, cv_networks, cv_ols, cv_penalized, fit_penalized,
                            genome_search_table, kfold, mlp_candidates, penalty_grid, search_genome_networks,
                            search_table)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- folds
def test_kfold_balanced_deterministic_and_independent_of_order():
    ids = [f"s{i:03d}" for i in range(53)]
    fold = kfold(ids, 5, seed=3)
    assert sorted(np.bincount(fold).tolist()) == [10, 10, 11, 11, 11]
    rev = kfold(ids[::-1], 5, seed=3)
    assert dict(zip(ids[::-1], rev)) == dict(zip(ids, fold))
    assert not np.array_equal(kfold(ids, 5, seed=4), fold)


def test_kfold_stratified_shares_each_class_out():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c"], size=61, p=[0.6, 0.3, 0.1])
    ids = [f"x{i}" for i in range(61)]
    fold = kfold(ids, 4, seed=0, labels=labels)
    for c in "abc":
        counts = np.bincount(fold[labels == c], minlength=4)
        assert counts.max() - counts.min() <= 1, c
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 1


@pytest.mark.parametrize("k", [1, 0, 11, True])
def test_kfold_rejects_bad_k(k):
    with pytest.raises(ConfigError, match="folds"):
        kfold([f"s{i}" for i in range(10)], k)


def test_kfold_rejects_singleton_class():
    with pytest.raises(InputError, match="'rare'"):
        kfold(list("abcdefgh"), 2, labels=["x"] * 7 + ["rare"])


# --------------------------------------------------------------------------- candidates
def test_grid_is_the_product_in_order():
    space = {"hidden": [[4], [8]], "lr": [0.1, 0.01, 0.001], "activation": ["relu", "tanh"]}
    cands = mlp_candidates({"epochs": 7}, space)
    want = [dict(zip(space, combo)) for combo in itertools.product(*space.values())]
    assert [{k: c[k] for k in space} for c in cands] == want
    assert all(c["epochs"] == 7 for c in cands)


def test_candidates_that_train_the_same_network_are_left_out(caplog):
    """A grid that varies a setting that does nothing in some of its points (an audit: the activation of a network
    without a hidden layer) trained the same networks twice, with equal losses in search.tsv; the later twin is
    left out, in grid order, and the log says how many."""
    space = {"hidden": [[], [8]], "lr": [0.1, 0.01], "activation": ["relu", "tanh"]}
    with caplog.at_level("INFO", logger="gexpred.search"):
        cands = mlp_candidates({"epochs": 7, "optimizer": "adam"}, space)
    product = [dict(zip(space, combo)) for combo in itertools.product(*space.values())]
    # by hand: without a hidden layer only relu's points stay (relu comes first in the grid)
    want = [p for p in product if p["hidden"] or p["activation"] == "relu"]
    assert [{k: c[k] for k in space} for c in cands] == want and len(want) == 6
    assert "2 of 8 candidates left out" in caplog.text
    # momentum only moves SGD; lr_factor only the plateau schedule; a default left out equals it written
    cands = mlp_candidates({"hidden": [8]}, {"optimizer": ["adam", "sgd"], "momentum": [0.0, 0.9],
                                             "lr_schedule": ["constant", "plateau"], "lr_factor": [0.5, 0.1]})
    got = {(c["optimizer"], c["momentum"], c["lr_schedule"], c["lr_factor"]) for c in cands}
    assert len(cands) == 9 and ("adam", 0.9, "constant", 0.5) not in got and ("sgd", 0.9, "plateau", 0.1) in got
    assert len(mlp_candidates({}, {"hidden": [[], [32, 16]], "activation": ["relu"]})) == 2
    assert len(mlp_candidates({}, {"dropout": [0.0, 0.2]})) == 2  # the default network has hidden layers


def test_random_draws_distinct_grid_points_deterministically():
    space = {"lr": [1e-1, 1e-2, 1e-3, 1e-4], "weight_decay": [0.0, 1e-4, 1e-3], "hidden": [[4], [8], [16]]}
    grid = [tuple(map(repr, combo)) for combo in itertools.product(*space.values())]
    a = mlp_candidates({}, space, "random", n=5, seed=1)
    b = mlp_candidates({}, space, "random", n=5, seed=1)
    assert a == b and len(a) == 5
    keys = [tuple(repr(c[k]) for k in space) for c in a]
    assert len(set(keys)) == 5 and all(k in grid for k in keys)
    assert keys == sorted(keys, key=grid.index)  # kept in grid order
    assert mlp_candidates({}, space, "random", n=5, seed=2) != a
    assert len(mlp_candidates({}, space, "random", n=100)) == 36  # whole grid


def test_a_random_search_of_a_small_grid_says_it_tries_every_point(caplog):
    """search.strategy random with fewer grid points than n_candidates tried fewer candidates than asked, without a
    word (an audit); the log now says so."""
    space = {"lr": [1e-1, 1e-2], "hidden": [[4], [8]]}
    with caplog.at_level("INFO", logger="gexpred.search"):
        cands = mlp_candidates({}, space, "random", n=10)
    assert len(cands) == len(list(itertools.product(*space.values()))) == 4
    assert "has 4 points, fewer than search.n_candidates (10): every one is tried" in caplog.text


def test_candidates_errors_and_empty_space():
    assert mlp_candidates({"lr": 0.5}, {}) == [{"lr": 0.5}]
    with pytest.raises(ConfigError, match="unknown settings"):
        mlp_candidates({}, {"learning_rate": [0.1]})
    with pytest.raises(ConfigError, match="non-empty list"):
        mlp_candidates({}, {"lr": []})
    with pytest.raises(ConfigError, match="device"):
        mlp_candidates({}, {"device": ["cpu"]})


# --------------------------------------------------------------------------- networks
def _regression(n=90, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X[:, 0] - np.tanh(2 * X[:, 1]) + 0.3 * rng.normal(size=n)
    return X, y


def test_cv_networks_batched_equals_one_at_a_time():
    X, y = _regression()
    folds = kfold([f"s{i}" for i in range(len(y))], 3, seed=0)  # fold sizes 30/30/30: one batch per architecture
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(
        {"epochs": 40, "patience": 5, "batch_size": 16, "device": "cpu"},
        {"hidden": [[], [8]], "lr": [0.01, 0.03]})]
    batched = cv_networks(X, y, folds, cands, batched=True)
    single = cv_networks(X, y, folds, cands, batched=False)
    np.testing.assert_allclose(batched.loss, single.loss, rtol=1e-4)
    np.testing.assert_allclose(batched.oof, single.oof, atol=1e-4)
    assert np.array_equal(batched.best_epoch, single.best_epoch)
    # the loss of candidate 3 on fold 2 is the held-out MSE of a network trained on the other folds
    tr, te = folds != 1, folds == 1
    model, _, _ = train_mlp(X[tr], y[tr], cands[2])
    pred = predict(model, X[te])
    assert single.loss[2, 1] == pytest.approx(np.mean((y[te] - pred) ** 2), rel=1e-6)
    np.testing.assert_allclose(single.oof[2, te], pred, rtol=1e-6)
    assert batched.winner() == int(np.argmin(batched.loss.mean(axis=1)))


def test_search_network_refits_an_ensemble_for_the_folds_epochs_and_cross_validates_it():
    """search_network: the winner by mean held-out loss; the refit uses every sample for the folds' median
    best epoch times the sample ratio; its CV is the refit procedure per fold; the model is the mean of
    networks trained alone with seeds seed, seed + 1, ... (each checked with train_mlp)."""
    from dataclasses import replace

    from gexpred.search import search_network

    X, y = _regression(n=75)
    folds = kfold([f"s{i}" for i in range(len(y))], 3, seed=1)
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(
        {"epochs": 60, "patience": 8, "batch_size": 16, "lr": 0.02, "device": "cpu", "ensemble": 2,
         "refit": "cv_epochs", "seed": 4}, {"hidden": [[], [8]]})]
    res = search_network(X, y, folds, cands, target="t")
    single = cv_networks(X, y, folds, cands)
    assert res.winner == int(np.argmin(single.loss.mean(axis=1)))
    np.testing.assert_allclose(res.cv.loss, single.loss)
    # epochs: median over folds of the kept epoch x (75 training samples / 40 fitted by a fold network)
    fitted = 50 - round(0.2 * 50)
    expected = max(1, round(float(np.median(single.best_epoch[res.winner])) * 75 / fitted))
    assert res.settings.epochs == expected and res.settings.val_fraction == 0 and res.settings.patience == 0
    members = [replace(cands[res.winner], epochs=expected, val_fraction=0.0, patience=0, seed=4 + m, ensemble=1)
               for m in range(2)]
    for f in range(3):
        tr, te = folds != f, folds == f
        mean = np.mean([predict(train_mlp(X[tr], y[tr], s)[0], X[te]) for s in members], axis=0)
        np.testing.assert_allclose(res.final_cv.oof[0, te], mean, atol=1e-5)
        assert res.final_cv.loss[0, f] == pytest.approx(np.mean((y[te] - mean) ** 2), rel=1e-4)
    full = np.mean([predict(train_mlp(X, y, s)[0], X) for s in members], axis=0)
    np.testing.assert_allclose(predict(res.model, X), full, atol=1e-5)
    # without the cross-validation of the refit: the same choice and the same model, nothing else trained
    quick = search_network(X, y, folds, cands, target="t", cv_refit=False)
    assert quick.final_cv is None and quick.winner == res.winner and quick.settings == res.settings
    np.testing.assert_allclose(predict(quick.model, X), full, atol=1e-5)


def test_other_fold_choices_take_each_folds_candidate_from_the_other_folds():
    """Each fold's choice is the candidate of lowest mean loss over the other folds (numpy, fold by fold); pruned
    candidates and candidates with a NaN fold loss never win; ties go to the first."""
    from gexpred.search import other_fold_choices

    rng = np.random.default_rng(2)
    loss = rng.uniform(1, 2, (5, 4))
    expected = [int(np.argmin(np.delete(loss, f, axis=1).mean(axis=1))) for f in range(4)]
    assert other_fold_choices(NetworkCV(loss=loss, oof=None, best_epoch=None)) == expected
    best = int(np.argmin(loss.mean(axis=1)))
    pruned = np.zeros(5, dtype=np.int64)
    pruned[best] = 8
    nan = loss.copy()
    nan[best, 0] = np.nan
    for cv in (NetworkCV(loss=loss, oof=None, best_epoch=None, pruned_at=pruned),
               NetworkCV(loss=nan, oof=None, best_epoch=None)):
        others = np.delete(np.arange(5), best)
        want = [int(others[np.argmin(np.delete(loss[others], f, axis=1).mean(axis=1))]) for f in range(4)]
        assert other_fold_choices(cv) == want  # a failed fold rules the candidate out of every fold's choice
    assert other_fold_choices(NetworkCV(loss=np.ones((3, 4)), oof=None, best_epoch=None)) == [0, 0, 0, 0]
    # the winner itself: never a candidate with a NaN fold (np.argmin would pick it), as never a pruned one
    assert NetworkCV(loss=nan, oof=None, best_epoch=None).winner() == int(others[np.argmin(loss[others].mean(axis=1))])


def test_choosing_by_the_other_folds_judges_the_choice_without_the_folds_own_noise():
    """Candidates of equal true error whose fold losses differ by noise alone (as networks that differ by their
    seed): the search's winner's mean loss, the minimum over candidates, is below the true error (by about the
    expected minimum of the noise), while a fold judged by the candidate the other folds chose is unbiased: over
    4,000 simulated searches its mean gap to the true error is within noise of 0."""
    from gexpred.search import other_fold_choices

    rng = np.random.default_rng(0)
    true, C, K, R = 1.0, 6, 5, 4000
    selected, nested = np.empty(R), np.empty(R)
    for r in range(R):
        loss = true + rng.normal(0, 0.1, (C, K))
        cv = NetworkCV(loss=loss, oof=None, best_epoch=None)
        selected[r] = loss[cv.winner()].mean()
        nested[r] = np.mean([loss[c, f] for f, c in enumerate(other_fold_choices(cv))])
    se = 0.1 / np.sqrt(K * R)
    assert selected.mean() - true < -20 * se  # E[min of 6 means of 5 N(0, 0.1)] = -0.0566
    assert abs(nested.mean() - true) < 4 * se


def _choice_search_data():
    """A noisy non-linear target (60 samples, 4 folds) and 4 candidates (ensembles of 2 refitted for the folds'
    epochs) where some folds' other folds choose another candidate than the search's winner."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    y = X[:, 0] - np.tanh(2 * X[:, 1]) + 0.8 * rng.normal(size=60)
    folds = kfold([f"s{i}" for i in range(60)], 4, seed=3)
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(
        {"epochs": 40, "patience": 6, "batch_size": 16, "lr": 0.02, "device": "cpu", "ensemble": 2,
         "refit": "cv_epochs", "seed": 3}, {"hidden": [[], [8]], "weight_decay": [0.0, 0.1]})]
    return X, y, folds, cands


def test_search_network_cross_validates_the_choice_fold_by_fold():
    """With several candidates, ``nested`` predicts fold f by the refit procedure (here an ensemble of 2 trained
    for the folds' epochs) of the candidate the other folds chose: the winner's folds are final_cv's, another
    candidate's are its own refit procedure trained on that fold's training part (checked with train_mlp)."""
    from dataclasses import replace

    from gexpred.search import other_fold_choices, search_network

    X, y, folds, cands = _choice_search_data()
    res = search_network(X, y, folds, cands, target="t")
    assert res.fold_choices == other_fold_choices(res.cv)
    assert set(res.fold_choices) - {res.winner}, res.fold_choices  # this data set has folds that chose another
    fitted = 45 - round(0.2 * 45)  # a fold network fits 36 of the fold's 45 training samples
    for f, c in enumerate(res.fold_choices):
        te = folds == f
        if c == res.winner:
            np.testing.assert_array_equal(res.nested.oof[0, te], res.final_cv.oof[0, te])
            continue
        epochs = max(1, round(float(np.median(res.cv.best_epoch[c])) * 60 / fitted))
        members = [replace(cands[c], epochs=epochs, val_fraction=0.0, patience=0, seed=3 + m, ensemble=1)
                   for m in range(2)]
        mean = np.mean([predict(train_mlp(X[~te], y[~te], s)[0], X[te]) for s in members], axis=0)
        np.testing.assert_allclose(res.nested.oof[0, te], mean, atol=1e-5)
        assert res.nested.loss[0, f] == pytest.approx(np.mean((y[te] - mean) ** 2), rel=1e-4)
    # one candidate: no choice to judge
    assert search_network(X, y, folds, cands[:1], target="t").nested is None


@pytest.mark.parametrize("n_classes", [3, 2])
def test_search_network_cross_validates_the_choice_of_a_classification_search(n_classes):
    """Classification: the folds that chose another candidate hold that candidate's refit procedure's class
    probabilities (each member trained with train_mlp, averaged) and their log-loss (numpy); the rows stay
    probabilities. Also with the predictors chosen per fold (fold_X): each fold's own design."""
    from dataclasses import replace

    from gexpred.nn import predict_proba
    from gexpred.search import _fold_fit_size, final_settings, search_network

    rng = np.random.default_rng(0)
    n = 48
    X = rng.normal(size=(n, 3))
    z = X[:, 0] + 0.8 * rng.normal(size=n)
    y = np.digitize(z, np.quantile(z, np.linspace(0, 1, n_classes + 1)[1:-1])).astype(np.int64)
    folds = kfold([f"s{i}" for i in range(n)], 4, seed=0, labels=y)
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(
        {"epochs": 20, "patience": 4, "batch_size": 16, "lr": 0.03, "device": "cpu", "seed": 1, "ensemble": 2,
         "refit": "cv_epochs"}, {"hidden": [[], [4]], "weight_decay": [0.0, 0.3]})]
    noise = 0.3 if n_classes == 2 else 0.5  # (designs whose folds do not all choose the winner)
    fold_X = np.stack([X + noise * rng.normal(size=X.shape) for _ in range(4)])
    for design in (None, fold_X):
        res = search_network(X, y, folds, cands, "classification", n_classes, "t", fold_X=design)
        assert set(res.fold_choices) - {res.winner}, res.fold_choices
        np.testing.assert_allclose(res.nested.oof[0].sum(axis=1), 1.0, rtol=1e-5)
        for f, c in enumerate(res.fold_choices):
            te = folds == f
            if c == res.winner:
                np.testing.assert_array_equal(res.nested.oof[0, te], res.final_cv.oof[0, te])
                continue
            procedure = final_settings(cands[c], res.cv.best_epoch[c], n / _fold_fit_size(folds, cands[c]))
            Xf = X if design is None else design[f]
            p = np.mean([predict_proba(train_mlp(Xf[~te], y[~te], replace(procedure, seed=1 + m, ensemble=1), "t",
                                                 "classification", n_classes)[0], Xf[te]) for m in range(2)], axis=0)
            np.testing.assert_allclose(res.nested.oof[0, te], p, atol=1e-5)
            want = -np.mean(np.log(np.clip(p[np.arange(te.sum()), y[te]], 1e-15, 1)))
            assert res.nested.loss[0, f] == pytest.approx(want, rel=1e-4)


def test_a_refit_procedure_that_fails_is_named_by_its_own_candidate(monkeypatch):
    """The networks that cross-validate a candidate's refit procedure (the winner's, and another candidate's for
    the folds that chose it) were all named 'candidate 1' (cv_networks numbered its one-candidate list), so a
    failure there told the user to remove or change candidate 1 whatever candidate failed. A network of candidate
    c's procedure (every training sample, no validation part) fails here as train_many reports a divergence; the
    error names candidate c + 1."""
    import gexpred.batched_nn as batched_nn
    from gexpred.search import search_network

    X, y, folds, cands = _choice_search_data()
    res = search_network(X, y, folds, cands, target="t")
    others = sorted(set(res.fold_choices) - {res.winner})
    assert others, res.fold_choices  # (as in the test above: folds that chose another candidate)
    real = batched_nn.train_many
    for failing in (res.winner, others[0]):
        def train_many(Xs, ys, settings, names, *args, failing=failing, **kwargs):
            for s, name in zip(settings, names):
                if (s.val_fraction == 0 and "fold" in name and s.hidden == cands[failing].hidden
                        and s.weight_decay == cands[failing].weight_decay):
                    raise ModelError(f"Target {name!r}: training diverged at epoch 1.")
            return real(Xs, ys, settings, names, *args, **kwargs)

        monkeypatch.setattr(batched_nn, "train_many", train_many)
        with pytest.raises(ModelError, match=rf"\(candidate {failing + 1}, fold \d, member \d\)"):
            search_network(X, y, folds, cands, target="t")


def test_search_network_early_stopping_refit_and_no_folds():
    from gexpred.search import final_settings, search_network

    X, y = _regression(n=60)
    s = MLPSettings.from_config({"hidden": [4], "epochs": 30, "patience": 5, "device": "cpu",
                                 "refit": "early_stopping"})
    assert final_settings(s, np.array([3, 9, 7]), 2.0) == s
    cv_s = final_settings(replace_refit(s), np.array([3, 9, 7]), 1.5)
    assert (cv_s.epochs, cv_s.val_fraction, cv_s.patience) == (round(7 * 1.5), 0.0, 0)
    # without folds there is no search: the first candidate, stopped early, alone
    res = search_network(X, y, None, [replace_refit(s)])
    assert res.cv is None and res.final_cv is None and res.settings.refit == "early_stopping"
    np.testing.assert_array_equal(predict(res.model, X), predict(train_mlp(X, y, s)[0], X))


def test_search_keeps_input_noise_off_for_an_exact_relation():
    """The default search tries input noise 0 and 1 SD per target: on a noise-free relation the noise only blurs
    it, the folds see that (held-out MAE of the noisy candidate at least twice the other's) and keep 0; the
    search table lists both, and the refit trains without noise."""
    from gexpred.search import search_network

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    folds = kfold([f"s{i}" for i in range(120)], 5)
    base = {"hidden": [32, 16], "loss": "mae", "epochs": 200, "patience": 15, "lr": 0.01, "batch_size": 32,
            "ensemble": 2, "refit": "cv_epochs", "device": "cpu"}
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(base, {"input_noise": [0.0, 1.0]})]
    res = search_network(X, y, folds, cands, target="t", cv_refit=False)
    assert res.winner == 0 and res.settings.input_noise == 0.0
    assert res.cv.mean[1] > 2 * res.cv.mean[0]
    table = search_table(cands, res.cv, ["input_noise"], "mae")
    assert table["input_noise"].tolist() == [0.0, 1.0] and table["selected"].tolist() == [True, False]


def _exact(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


def _expected_pruning(X, y, folds, cands, prune):
    """The pruning rule applied by hand to fold networks trained alone by train_mlp (whole histories): per check
    epoch, each candidate's mean over folds of the running minimum of the validation loss; a candidate still
    training after that epoch and more than ``margin`` above the best of the others of its training loss (still
    training or finished; in candidate order) stops there."""
    K = int(folds.max()) + 1
    curves = {c: [np.minimum.accumulate(train_mlp(X[folds != f], y[folds != f], s)[1]["val_loss"].to_numpy())
                  for f in range(K)] for c, s in enumerate(cands)}

    def at(c, e):
        return float(np.mean([cur[min(e, len(cur)) - 1] for cur in curves[c]]))

    pruned = np.zeros(len(cands), dtype=np.int64)
    last = max(len(cur) for cs in curves.values() for cur in cs)
    for e in range(1, last + 1):
        if not prune.is_check(e):
            continue
        running = [c for c in range(len(cands)) if not pruned[c] and max(len(cur) for cur in curves[c]) > e]
        now = {c: at(c, e) for c in range(len(cands)) if not pruned[c]}
        for c in running:
            rivals = [v for o, v in now.items() if o != c and cands[o].loss == cands[c].loss]
            if rivals and now[c] > (1 + prune.margin) * min(rivals):
                pruned[c] = e
    return pruned


def test_pruning_checks_at_doubling_epochs_and_validates():
    p = Pruning(first_check=20, margin=0.25)
    assert [e for e in range(1, 400) if p.is_check(e)] == [20, 40, 80, 160, 320]
    assert not any(Pruning(first_check=0).is_check(e) for e in range(1, 100))
    assert Pruning.from_config(None) == Pruning() == Pruning.from_config({})
    assert Pruning.from_config({"first_check": 0}).first_check == 0
    for bad, match in [({"first_check": -1}, "first_check"), ({"first_check": 2.5}, "first_check"),
                       ({"margin": -0.1}, "margin"), ({"margin": "x"}, "margin"), ({"rungs": 3}, "unknown")]:
        with pytest.raises(ConfigError, match=match):
            Pruning.from_config(bad)


def test_a_clearly_worse_candidate_stops_early_and_cannot_win():
    """Input noise of 2 SD on a noise-free relation: its fold networks' validation loss is far above the noiseless
    candidate's at the first check, so the whole candidate stops there (as the rule applied by hand to networks
    trained alone says); its held-out loss is that of the networks train_mlp trains for that many epochs, and the
    table ranks it last. The noiseless candidate trains as it does without pruning."""
    from dataclasses import replace

    X, y = _exact()
    folds = kfold([f"s{i}" for i in range(len(y))], 3)
    base = {"hidden": [16], "loss": "mae", "epochs": 120, "patience": 15, "lr": 0.01, "batch_size": 32,
            "device": "cpu"}
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(base, {"input_noise": [0.0, 2.0]})]
    prune = Pruning(first_check=10, margin=0.25)
    cv = cv_networks(X, y, folds, cands, prune=prune)
    expected = _expected_pruning(X, y, folds, cands, prune)
    assert expected.tolist() == [0, 10]  # the case is a real test: the rule stops the noisy candidate at once
    np.testing.assert_array_equal(cv.pruned_at, expected)
    assert cv.winner() == 0
    plain = cv_networks(X, y, folds, cands)
    assert plain.pruned_at is None
    np.testing.assert_allclose(cv.loss[0], plain.loss[0], rtol=1e-6)
    for f in range(3):
        tr, te = folds != f, folds == f
        pred = predict(train_mlp(X[tr], y[tr], replace(cands[1], epochs=10))[0], X[te])
        assert cv.loss[1, f] == pytest.approx(np.mean(np.abs(y[te] - pred)), rel=1e-4)
    table = search_table(cands, cv, ["input_noise"], "mae")
    assert table["pruned_at_epoch"].tolist() == [pd.NA, 10] or (
        pd.isna(table.loc[0, "pruned_at_epoch"]) and table.loc[1, "pruned_at_epoch"] == 10)
    assert table["rank"].tolist() == [1, 2] and table["selected"].tolist() == [True, False]


def test_candidates_within_the_margin_all_train_to_the_end():
    """Two candidates that differ by their seed only are never far apart: none stops, and the search is the one
    without pruning, number for number."""
    X, y = _regression(n=90)
    folds = kfold([f"s{i}" for i in range(90)], 3)
    cands = [MLPSettings.from_config(c) for c in mlp_candidates(
        {"hidden": [8], "epochs": 80, "patience": 10, "batch_size": 16, "lr": 0.02, "device": "cpu"}, {"seed": [0, 1]})]
    with_pruning = cv_networks(X, y, folds, cands, prune=Pruning(first_check=20, margin=0.25))
    assert with_pruning.pruned_at is None
    assert _expected_pruning(X, y, folds, cands, Pruning(first_check=20, margin=0.25)).tolist() == [0, 0]
    plain = cv_networks(X, y, folds, cands)
    np.testing.assert_array_equal(with_pruning.loss, plain.loss)
    np.testing.assert_array_equal(with_pruning.best_epoch, plain.best_epoch)
    assert (plain.best_epoch + 10 > 20).any(axis=1).all()  # each candidate trained past the check at epoch 20


def test_pruning_compares_across_programs_and_only_within_a_loss():
    """Candidates of different architectures train in separate programs: a later program's candidate is compared
    with the earlier ones at the same epoch (or their end). Candidates of different training losses are never
    compared (their validation losses are on different scales)."""
    X, y = _exact()
    folds = kfold([f"s{i}" for i in range(len(y))], 3)
    base = {"loss": "mae", "epochs": 120, "patience": 15, "lr": 0.01, "batch_size": 32, "device": "cpu"}
    cands = [MLPSettings.from_config({**base, **c}) for c in
             ({"hidden": [16]}, {"hidden": [8], "input_noise": 2.0})]
    prune = Pruning(first_check=10, margin=0.25)
    cv = cv_networks(X, y, folds, cands, prune=prune)
    expected = _expected_pruning(X, y, folds, cands, prune)
    assert expected[1] > 0
    np.testing.assert_array_equal(cv.pruned_at, expected)
    # the same worse candidate trained on squared error: no rival of its loss, so it trains to its end
    cands[1] = MLPSettings.from_config({**base, "hidden": [8], "input_noise": 2.0, "loss": "mse"})
    assert cv_networks(X, y, folds, cands, prune=prune).pruned_at is None


def test_search_table_ranks_pruned_candidates_last():
    """A pruned candidate is never the winner, and ranks after every candidate that trained to its end, even with
    a lower held-out loss."""
    loss = np.array([[0.5, 0.5], [0.3, 0.3], [0.4, 0.4]])
    cv = NetworkCV(loss=loss, oof=np.zeros((3, 4)), best_epoch=np.ones((3, 2), dtype=np.int64),
                   pruned_at=np.array([0, 20, 0]))
    assert cv.winner() == 2
    cands = [MLPSettings.from_config({"hidden": [4], "seed": k, "device": "cpu"}) for k in range(3)]
    table = search_table(cands, cv, ["seed"], "mae")
    assert table["rank"].tolist() == [2, 3, 1] and table["selected"].tolist() == [False, False, True]
    assert table["pruned_at_epoch"].isna().tolist() == [True, False, True]


def replace_refit(s: MLPSettings) -> MLPSettings:
    from dataclasses import replace

    return replace(s, refit="cv_epochs")


def test_search_table_columns_and_selection():
    X, y = _regression(n=60)
    folds = kfold([f"s{i}" for i in range(60)], 3)
    configs = mlp_candidates({"epochs": 20, "device": "cpu"}, {"hidden": [[], [4]]})
    cands = [MLPSettings.from_config(c) for c in configs]
    cv = cv_networks(X, y, folds, cands)
    table = search_table(cands, cv, ["hidden"], "mse")
    assert table.columns[:2].tolist() == ["candidate", "hidden"]
    assert table["hidden"].tolist() == ["[]", "[4]"]
    np.testing.assert_allclose(table["cv_loss_mean"], cv.loss.mean(axis=1))
    np.testing.assert_allclose(table["cv_loss_sd"], cv.loss.std(axis=1, ddof=1))
    np.testing.assert_allclose(table[["fold_1", "fold_2", "fold_3"]].to_numpy(), cv.loss)
    assert table["selected"].sum() == 1 and table.loc[table["selected"], "rank"].item() == 1
    assert "device" not in table.columns


@pytest.mark.parametrize("losses,criterion", [(["mae", "mae"], "mae"), (["mae", "mse"], "mse"),
                                              (["huber", "huber"], "mse")])
def test_cv_criterion_follows_the_training_losses(losses, criterion):
    """Candidates that all train with mae are judged by held-out MAE, any other mix by held-out MSE: computed here
    from the out-of-fold predictions; the search table names the criterion and keeps each candidate's loss."""
    X, y = _regression(n=60)
    folds = kfold([f"s{i}" for i in range(60)], 3)
    cands = [MLPSettings.from_config({"hidden": [4], "epochs": 15, "device": "cpu", "loss": loss, "seed": i})
             for i, loss in enumerate(losses)]
    assert cv_criterion(cands) == criterion
    assert cv_criterion(cands, "classification") == "cross_entropy"
    cv = cv_networks(X, y, folds, cands)
    for c in range(len(cands)):
        for f in range(3):
            err = y[folds == f] - cv.oof[c, folds == f]
            want = np.mean(np.abs(err)) if criterion == "mae" else np.mean(err ** 2)
            assert cv.loss[c, f] == pytest.approx(want, rel=1e-9)
    table = search_table(cands, cv, ["loss"], cv_criterion(cands))
    assert table["loss"].tolist() == losses and set(table["criterion"]) == {criterion}


def test_refit_cross_validation_uses_the_search_criterion_when_an_mae_candidate_wins_an_mse_search():
    """Candidates of mixed losses are judged by held-out MSE; the cross-validation of the refitted winner (an
    ensemble) must be too, even when the winner trains with mae (it was its MAE, which model.json reported as
    final_cv_loss_mean beside the search's 'loss: mse'). Expected: MSE of its out-of-fold predictions, numpy."""
    from gexpred.search import search_network

    rng = np.random.default_rng(0)
    n = 80
    X = rng.normal(size=(n, 3))
    y = X @ [1.0, -0.5, 0.2] + rng.standard_t(1.5, n)  # heavy tails: the mae candidate wins
    base = {"hidden": [], "activation": "identity", "lr": 0.05, "epochs": 60, "batch_size": 16, "patience": 10,
            "device": "cpu", "ensemble": 2, "refit": "cv_epochs"}
    cands = [MLPSettings.from_config({**base, "loss": loss}) for loss in ("mae", "mse")]
    folds = kfold([f"s{i}" for i in range(n)], 4)
    res = search_network(X, y, folds, cands)
    assert cv_criterion(cands) == "mse" and res.winner == 0
    oof = res.final_cv.oof[0]
    want = [np.mean((y[folds == f] - oof[folds == f]) ** 2) for f in range(4)]
    np.testing.assert_allclose(res.final_cv.loss[0], want, rtol=1e-9)


def test_cv_networks_classification_out_of_fold_probabilities():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(90, 3))
    codes = (X[:, 0] + 0.5 * rng.normal(size=90) > 0).astype(int)
    folds = kfold([f"s{i}" for i in range(90)], 3, labels=codes)
    cands = [MLPSettings.from_config({"hidden": [4], "epochs": 30, "lr": 0.02, "device": "cpu"})]
    cv = cv_networks(X, codes, folds, cands, task="classification", n_classes=2)
    assert cv.oof.shape == (1, 90, 2)
    np.testing.assert_allclose(cv.oof.sum(axis=2), 1.0, atol=1e-9)
    for f in range(3):  # the loss is the held-out log-loss, computed independently
        te = folds == f
        p_true = cv.oof[0, te, :][np.arange(te.sum()), codes[te]]
        assert cv.loss[0, f] == pytest.approx(-np.mean(np.log(p_true)), rel=1e-9)


# --------------------------------------------------------------------------- genome-wide networks
def _chunk(n=120, seed=5):
    """Three linear targets and two interactions (x0 * x1, x2 * x3) that need a hidden layer."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    Y = np.column_stack([X @ rng.normal(size=4) for _ in range(3)] + [X[:, 0] * X[:, 1], X[:, 2] * X[:, 3]])
    return X, Y + 0.1 * rng.normal(size=Y.shape)


def _validation_rows(n, fraction, seed):
    """The documented validation part, rebuilt here: round(fraction * n) samples of a seeded permutation."""
    n_val = int(round(fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _nmse(Y, pred, fit, val):
    return np.mean((Y[val] - pred[val]) ** 2, axis=0) / np.var(Y[fit], axis=0)


GENOME_BASE = {"epochs": 150, "patience": 30, "batch_size": 16, "lr": 0.01, "activation": "tanh", "device": "cpu"}


def test_genome_search_multi_output_keeps_the_best_candidate_on_validation():
    X, Y = _chunk()
    configs = mlp_candidates(GENOME_BASE, {"hidden": [[], [16]]})
    cands = [MLPSettings.from_config(c) for c in configs]
    res = search_genome_networks(X, Y, cands, "multi_output", [f"t{j}" for j in range(5)])
    fit, val = _validation_rows(len(X), 0.2, 0)
    # every candidate's loss is its network's validation MSE over the target's variance on the fitted part
    for c, s in enumerate(cands):
        model, _, _ = train_mlp(X, Y, s)
        np.testing.assert_allclose(res.loss[c], _nmse(Y, predict(model, X), fit, val), rtol=1e-9)
    winner = int(np.argmin(res.loss.mean(axis=1)))
    assert winner == 1  # the interactions need the hidden layer
    assert (res.selected == winner).all() and len(res.models) == 1
    # the kept network is the winner's, trained as it would be alone (same seed, same numbers)
    alone, _, _ = train_mlp(X, Y, cands[winner])
    np.testing.assert_allclose(predict(res.models[0], X), predict(alone, X), rtol=1e-6)
    table = genome_search_table(3, configs, res)
    assert table.columns[:3].tolist() == ["chunk", "candidate", "hidden"]
    assert table["hidden"].tolist() == ["[]", "[16]"] and (table["chunk"] == 3).all()
    np.testing.assert_allclose(table["val_nmse_mean"], res.loss.mean(axis=1))
    np.testing.assert_allclose(table["val_nmse_median"], np.median(res.loss, axis=1))
    assert table["n_selected"].tolist() == [0, 5]


def test_genome_search_per_target_keeps_each_targets_best():
    X, Y = _chunk()
    configs = mlp_candidates(GENOME_BASE, {"hidden": [[], [16]]})
    cands = [MLPSettings.from_config(c) for c in configs]
    res = search_genome_networks(X, Y, cands, "per_target", [f"t{j}" for j in range(5)])
    fit, val = _validation_rows(len(X), 0.2, 0)
    assert res.loss.shape == (2, 5)
    np.testing.assert_array_equal(res.selected, np.argmin(res.loss, axis=0))
    assert (res.selected[3:] == 1).all()  # the interactions
    assert res.loss[0, 3:].min() > 0.5 > res.loss[1, 3:].max()  # a linear fit cannot explain x0 * x1
    for j in range(5):
        c = res.selected[j]
        model, _, _ = train_mlp(X, Y[:, j], cands[c])  # one at a time: the batched program's numbers
        pred = predict(res.models[j], X)
        np.testing.assert_allclose(pred, predict(model, X), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.loss[c, j], _nmse(Y[:, [j]], pred[:, None], fit, val)[0], rtol=1e-9)
    table = genome_search_table(0, configs, res)
    assert table["n_selected"].sum() == 5
    np.testing.assert_allclose(table["val_nmse_median"], np.median(res.loss, axis=1))


def test_genome_search_per_target_trains_networks_with_dropout():
    """mlp.dropout with genome_mode per_target: the batched program has no dropout, so the networks train one
    at a time (it stopped the chunk with NotImplementedError); each target's loss is its kept network's
    validation MSE over its variance, recomputed here with numpy."""
    X, Y = _chunk(n=60)
    configs = mlp_candidates({**GENOME_BASE, "hidden": [8], "epochs": 20}, {"dropout": [0.0, 0.3]})
    cands = [MLPSettings.from_config(c) for c in configs]
    res = search_genome_networks(X, Y, cands, "per_target", [f"t{j}" for j in range(5)])
    fit, val = _validation_rows(len(X), 0.2, 0)
    assert np.isfinite(res.loss).all() and not res.failed
    np.testing.assert_array_equal(res.selected, np.argmin(res.loss, axis=0))
    for j in range(5):
        pred = predict(res.models[j], X)
        np.testing.assert_allclose(res.loss[res.selected[j], j], _nmse(Y[:, [j]], pred[:, None], fit, val)[0],
                                   rtol=1e-9)


def test_genome_search_one_candidate_is_the_mlp_section_alone():
    X, Y = _chunk(n=60)
    s = MLPSettings.from_config({**GENOME_BASE, "hidden": [8], "epochs": 30})
    res = search_genome_networks(X, Y, [s], "multi_output", [f"t{j}" for j in range(5)])
    alone, hist, _ = train_mlp(X, Y, s)
    np.testing.assert_array_equal(predict(res.models[0], X), predict(alone, X))
    assert res.histories[0].equals(hist)


@pytest.mark.parametrize("mode", ["multi_output", "per_target"])
def test_genome_search_skips_a_diverging_candidate_and_reports_it(mode):
    X, Y = _chunk(n=60)
    base = {**GENOME_BASE, "epochs": 20, "optimizer": "sgd", "hidden": [8]}
    configs = mlp_candidates(base, {"lr": [1e4, 0.01]})  # the first one blows up
    cands = [MLPSettings.from_config(c) for c in configs]
    res = search_genome_networks(X, Y, cands, mode, [f"t{j}" for j in range(5)])
    assert list(res.failed) == [0] and "diverged" in res.failed[0]
    assert np.isnan(res.loss[0]).all() and np.isfinite(res.loss[1]).all()
    assert (res.selected == 1).all()
    table = genome_search_table(0, configs, res)
    assert table["status"].tolist() == ["diverged", "ok"] and table["n_selected"].tolist() == [0, 5]
    # every candidate diverging stops the chunk with a clear message; so does a single diverging setting
    with pytest.raises(ModelError, match="every one of the 2 candidates diverged"):
        search_genome_networks(X, Y, cands[:1] * 2, mode, [f"t{j}" for j in range(5)])
    with pytest.raises(ModelError, match="Lower mlp.lr"):
        search_genome_networks(X, Y, cands[:1], mode, [f"t{j}" for j in range(5)])


@pytest.mark.parametrize("space, base, match", [
    ({"val_fraction": [0.2, 0.3]}, {}, "must not vary val_fraction or seed"),
    ({"seed": [0, 1]}, {}, "must not vary val_fraction or seed"),
    ({"lr": [0.01, 0.02]}, {"val_fraction": 0.0}, "leaves none of its 40 samples"),
])
def test_genome_search_needs_one_validation_part(space, base, match):
    X, Y = _chunk(n=40)
    cands = [MLPSettings.from_config(c) for c in mlp_candidates({**GENOME_BASE, **base, "epochs": 2}, space)]
    with pytest.raises(ConfigError, match=match):
        search_genome_networks(X, Y, cands, "multi_output", [f"t{j}" for j in range(5)])


# --------------------------------------------------------------------------- regression models
def _standardized(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def test_ridge_equals_closed_form():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 6)) * [1, 2, 3, 0.5, 1, 10] + 4
    y = X @ rng.normal(size=6) + rng.normal(size=50)
    alpha = 0.3
    b0, b = fit_penalized(X, y, alpha, 0.0)
    Z = _standardized(X)
    yc = y - y.mean()
    beta_std = np.linalg.solve(Z.T @ Z + len(y) * alpha * np.eye(6), Z.T @ yc)  # min RSS/2n + alpha |b|^2/2
    np.testing.assert_allclose(b * X.std(axis=0), beta_std, rtol=1e-10)
    assert b0 == pytest.approx(y.mean() - X.mean(axis=0) @ b, rel=1e-12)


def test_lasso_satisfies_kkt_conditions():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(80, 8))
    y = 2 * X[:, 0] - X[:, 3] + rng.normal(size=80)
    alpha = 0.2
    b0, b = fit_penalized(X, y, alpha, 1.0)
    Z = _standardized(X)
    beta = b * X.std(axis=0)
    grad = Z.T @ (y - y.mean() - Z @ beta) / len(y)  # = alpha * sign(beta) where beta != 0, |.| <= alpha else
    on = beta != 0
    assert 0 < on.sum() < 8
    np.testing.assert_allclose(grad[on], alpha * np.sign(beta[on]), atol=1e-8)
    assert np.all(np.abs(grad[~on]) <= alpha + 1e-10)


@pytest.mark.parametrize("l1_wt", [1.0, 0.5, 0.0])
def test_penalized_path_equals_scikit_learn_and_statsmodels(l1_wt):
    """Every penalty of the path (warm-started coordinate descent; ridge in closed form) is the minimum
    scikit-learn's ElasticNet / Ridge find for it alone, and no worse than statsmodels' fit_regularized,
    correlated predictors and a constant column included."""
    import statsmodels.api as sm
    from sklearn.linear_model import ElasticNet, Ridge

    from gexpred.search import penalized_path

    rng = np.random.default_rng(9)
    n, p = 90, 7
    base = rng.normal(size=(n, 1))
    X = rng.normal(size=(n, p)) + 1.5 * base  # correlated columns: coordinate descent needs many sweeps
    X[:, 4] = 3.0  # constant
    y = X[:, 0] - 2 * X[:, 2] + 0.5 * X[:, 5] + rng.normal(size=n)
    alphas = penalty_grid(X, y, {1.0: "lasso", 0.5: "elastic_net", 0.0: "ridge"}[l1_wt], 12)
    b0s, B = penalized_path(X, y, alphas, l1_wt)
    keep = X.std(axis=0) > 0
    Z = (X[:, keep] - X[:, keep].mean(axis=0)) / X[:, keep].std(axis=0)
    yc = y - y.mean()
    for a, b0, b in zip(alphas, b0s, B):
        assert b[4] == 0
        if l1_wt > 0:
            ref = ElasticNet(alpha=a, l1_ratio=l1_wt, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(Z, yc)
        else:
            ref = Ridge(alpha=a * n, fit_intercept=False, solver="svd").fit(Z, yc)  # ||r||^2 + (n a) |b|^2
        np.testing.assert_allclose(b[keep] * X[:, keep].std(axis=0), ref.coef_, atol=1e-8)
        assert b0 == pytest.approx(y.mean() - X.mean(axis=0) @ b, abs=1e-10)
        # statsmodels minimises the same objective: ours is never higher (statsmodels' coordinate descent,
        # which zeroes small coefficients, stops above the minimum at 2 of these 12 lasso penalties)
        sm_b = sm.OLS(yc, Z).fit_regularized(alpha=a, L1_wt=l1_wt, cnvrg_tol=1e-12, maxiter=2000).params
        objective = [np.sum((yc - Z @ v) ** 2) / (2 * n) + a * (l1_wt * np.abs(v).sum() + (1 - l1_wt) * v @ v / 2)
                     for v in (b[keep] * X[:, keep].std(axis=0), sm_b)]
        assert objective[0] <= objective[1] + 1e-12
    # the path is not a shortcut: each penalty fitted alone gives the same coefficients
    for i in (0, 5, 11):
        np.testing.assert_allclose(fit_penalized(X, y, alphas[i], l1_wt)[1], B[i], atol=1e-9)


def test_lasso_grid_starts_where_every_coefficient_is_zero():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 5))
    y = X[:, 1] + rng.normal(size=60)
    alphas = penalty_grid(X, y, "lasso", 10)
    assert alphas[0] / alphas[-1] == pytest.approx(1000)
    assert np.all(fit_penalized(X, y, alphas[0] * 1.001, 1.0)[1] == 0)
    assert np.any(fit_penalized(X, y, alphas[0] * 0.9, 1.0)[1] != 0)
    ridge = penalty_grid(X, y, "ridge", 7)
    np.testing.assert_allclose(ridge, np.logspace(2, -4, 7))


def test_cv_penalized_chooses_by_mean_fold_error():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(100, 10))
    y = X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=100) * 2  # sparse truth, noisy: penalty helps
    folds = kfold([f"s{i}" for i in range(100)], 5)
    res = cv_penalized(X, y, folds, ["ridge", "lasso"], n_alphas=8)
    t = res.table
    assert len(t) == 16 and t["selected"].sum() == 1
    best = t.loc[t["selected"]].iloc[0]
    assert best["cv_mse_mean"] == t["cv_mse_mean"].min()
    assert (res.method, res.alpha) == (best["method"], best["alpha"])
    # recompute the chosen row's fold errors independently
    for f in range(5):
        tr, te = folds != f, folds == f
        b0, b = fit_penalized(X[tr], y[tr], res.alpha, 0.0 if res.method == "ridge" else 1.0)
        assert best[f"fold_{f + 1}"] == pytest.approx(np.mean((y[te] - b0 - X[te] @ b) ** 2), rel=1e-3)
    b0, b = fit_penalized(X, y, res.alpha, 0.0 if res.method == "ridge" else 1.0)
    np.testing.assert_allclose(res.coef, b, rtol=1e-8, atol=1e-12)


def _grid(X: np.ndarray, y: np.ndarray, method: str, n: int) -> np.ndarray:
    """The penalties of a search, written out: ridge 1e2..1e-4; lasso from max |x_j'(y - ybar)| / n on
    standardised predictors down to 1e-3 of it, evenly on a log scale."""
    if method == "ridge":
        return np.logspace(2, -4, n)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    top = np.max(np.abs(Xs.T @ (y - y.mean()))) / len(y)
    return np.logspace(np.log10(top), np.log10(top * 1e-3), n)


def test_cv_penalized_nested_predictions_repeat_the_choice_inside_each_fold():
    """oof: fold f predicted by the (method, alpha) of lowest mean held-out MSE over the other folds alone (their
    own grids, each of them held out in turn), fitted on them; oof_selected: the chosen alpha's own held-out
    predictions. Written out with fit_penalized loops."""
    rng = np.random.default_rng(21)
    X = rng.normal(size=(80, 6))
    y = X[:, 0] - 0.4 * X[:, 1] + rng.normal(size=80) * 1.5
    folds = kfold([f"s{i}" for i in range(80)], 4, seed=2)
    res = cv_penalized(X, y, folds, ["ridge", "lasso"], n_alphas=5)
    l1 = {"ridge": 0.0, "lasso": 1.0}
    expected = np.empty(80)
    for f in range(4):
        tr, te = folds != f, folds == f
        inner = [g for g in range(4) if g != f]
        best = None
        for method in ("ridge", "lasso"):
            for alpha in _grid(X[tr], y[tr], method, 5):
                errs = []
                for g in inner:
                    fit_rows, held = tr & (folds != g), folds == g
                    b0, b = fit_penalized(X[fit_rows], y[fit_rows], alpha, l1[method])
                    errs.append(np.mean((y[held] - b0 - X[held] @ b) ** 2))
                if best is None or np.mean(errs) < best[0]:
                    best = (np.mean(errs), method, alpha)
        b0, b = fit_penalized(X[tr], y[tr], best[2], l1[best[1]])
        expected[te] = b0 + X[te] @ b
        assert res.fold_choices[f][0] == best[1] and res.fold_choices[f][1] == pytest.approx(best[2], rel=1e-12)
    np.testing.assert_allclose(res.oof, expected, rtol=1e-8, atol=1e-10)
    for f in range(4):
        tr, te = folds != f, folds == f
        b0, b = fit_penalized(X[tr], y[tr], res.alpha, l1[res.method])
        np.testing.assert_allclose(res.oof_selected[te], b0 + X[te] @ b, rtol=1e-8, atol=1e-10)
    assert not np.allclose(res.oof, res.oof_selected)
    plain = cv_penalized(X, y, folds, ["ridge", "lasso"], n_alphas=5, nested=False)
    np.testing.assert_array_equal(plain.oof, res.oof_selected)
    assert plain.fold_choices == []


def test_cv_penalized_nested_error_is_not_flattered_by_the_search():
    """On 20 data sets of a weak signal among 30 predictors (60 samples), the chosen penalty's own CV MSE is
    below the model's error on 2,000 new samples (the held-out folds chose it); the nested CV MSE is above the
    chosen one's (paired t-test) and its mean gap to the new samples' error is within noise of zero."""
    from scipy import stats

    selected, nested, new = [], [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(2060, 30))
        y = 0.3 * X[:, 0] + rng.normal(size=2060)
        folds = kfold([f"s{i}" for i in range(60)], 5, seed=seed)
        res = cv_penalized(X[:60], y[:60], folds, ["ridge", "lasso"], n_alphas=8)
        selected.append(np.mean((y[:60] - res.oof_selected) ** 2))
        nested.append(np.mean((y[:60] - res.oof) ** 2))
        new.append(np.mean((y[60:] - res.intercept - X[60:] @ res.coef) ** 2))
    selected, nested, new = map(np.asarray, (selected, nested, new))
    assert stats.ttest_rel(nested, selected, alternative="greater").pvalue < 0.01
    assert np.mean(selected - new) < 0
    gap = nested - new
    assert abs(gap.mean()) < 2 * gap.std(ddof=1) / np.sqrt(len(gap))


@pytest.mark.parametrize("space", [{}, {"hidden": [[], [8]]}])
def test_search_caption_says_what_the_comparison_judges(space):
    """The network search table's caption: with candidates to choose among, the comparison judges each fold by the
    candidate the other folds chose (search_network's ``nested``); with the mlp section alone, the refit
    procedure's own cross-validation. Rendered with jinja2 as snakemake --report does."""
    from pathlib import Path
    from types import SimpleNamespace

    import jinja2

    config = {"split": {"folds": 5}, "search": {"strategy": "grid", "mlp": space,
                                                "prune": {"first_check": 20, "margin": 0.25}},
              "mlp": {"ensemble": 5, "seed": 0, "refit": "cv_epochs"}}
    path = Path(__file__).resolve().parents[1] / "workflow" / "report" / "search.rst"
    text = " ".join(jinja2.Template(path.read_text()).render(
        snakemake=SimpleNamespace(config=config, wildcards=SimpleNamespace(target="gA"),
                                  params=SimpleNamespace(facts=SimpleNamespace(target=dict)))).split())
    assert ("lowest mean loss on the *other* folds" in text) == bool(space), text
    assert ("Those are the network's cross-validation figures in the comparison" in text) == (not space), text
    assert "model.json``). The" in text or "model.json``). Those" in text  # a sentence break, not 'json).The'


@pytest.mark.parametrize("k", [2, 5])
def test_captions_say_nested_cv_only_where_the_folds_allow_it(k):
    """With split.folds 2, cv_penalized cannot repeat the choice inside a fold: each fold is predicted by the
    penalty of lowest error on the other fold, fitted on it (recomputed here with fit_penalized), and the captions of
    the CV metrics, the penalised search and the summary say so, not that the CV error came from nested
    cross-validation. Rendered with jinja2 as snakemake --report does, for 2 and 5 folds."""
    from pathlib import Path
    from types import SimpleNamespace

    import jinja2

    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] + rng.normal(size=40)
    folds = kfold([f"s{i}" for i in range(40)], k, seed=0)
    res = cv_penalized(X, y, folds, ["ridge", "lasso"], n_alphas=4)
    assert len(res.fold_choices) == k
    if k == 2:
        for f in range(2):
            other = res.table.iloc[int(np.argmin(res.table[f"fold_{2 - f}"]))]
            assert res.fold_choices[f] == (other["method"], other["alpha"])
            b0, b = fit_penalized(X[folds != f], y[folds != f], other["alpha"], other["l1_wt"])
            np.testing.assert_allclose(res.oof[folds == f], b0 + X[folds == f] @ b, rtol=1e-10, atol=1e-12)
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())  # the demo's, schema defaults filled
    config["split"]["folds"] = k
    validate(config, str(root / "workflow" / "schemas" / "config.schema.yaml"))
    report = root / "workflow" / "report"
    for name in ("cv_metrics.rst", "penalized_search.rst", "summary.rst"):
        text = " ".join(jinja2.Template((report / name).read_text()).render(
            snakemake=SimpleNamespace(config=config, wildcards=SimpleNamespace(target="gA"),
                                      params=SimpleNamespace(facts=SimpleNamespace(target=dict)))).split())
        assert ("nested cross-validation" in text) and (("needs at least 3" in text or "cannot repeat" in text)
                                                         == (k == 2)), (name, text)
        if k == 2:
            assert "predicted by nested" not in text and "comes from nested" not in text
            assert "use nested" not in text, (name, text)


def test_cv_ols_matches_statsmodels_per_fold():
    X, y = _regression(n=40, p=3)
    folds = kfold([f"s{i}" for i in range(40)], 4)
    oof = cv_ols(X, y, folds)
    for f in range(4):
        tr, te = folds != f, folds == f
        fit = sm.OLS(y[tr], sm.add_constant(X[tr])).fit()
        np.testing.assert_allclose(oof[te], fit.predict(sm.add_constant(X[te], has_constant="add")), rtol=1e-10)


def _noise_target(seed: int, n: int = 120, g: int = 200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g))
    y = rng.normal(size=n)  # no gene predicts it
    return X, y, [f"g{i}" for i in range(g)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_choosing_predictors_per_fold_keeps_cv_honest_for_an_unpredictable_target(seed):
    """The 10 genes most correlated with a pure-noise target among 200: chosen on every training sample, OLS
    'beats' the training mean in cross-validation (the held-out samples helped choose the genes); chosen again
    on each fold's training part (fold_design), its CV error is above the mean's, as it is on new data."""
    from gexpred.design import select_predictors

    X, y, genes = _noise_target(seed)
    A = np.column_stack([X, y])
    names = [*genes, "T"]
    folds = kfold([f"s{i}" for i in range(len(y))], 5, seed=0)
    cols = lambda table: [names.index(x) for x in table["gene"]]  # noqa: E731
    chosen = cols(select_predictors(A, names, ["T"], {"top_correlated": 10}))
    fold_X = np.stack([X[:, cols(select_predictors(A[folds != f], names, ["T"], {"top_correlated": 10}))]
                       for f in range(5)])
    naive = np.mean((y - cv_ols(X[:, chosen], y, folds)) ** 2)
    honest = np.mean((y - cv_ols(X[:, chosen], y, folds, fold_X=fold_X)) ** 2)
    mean = np.mean(np.concatenate([(y[folds == f] - y[folds != f].mean()) ** 2 for f in range(5)]))
    assert naive < mean < honest


def test_fold_designs_fit_each_fold_on_its_own_columns():
    """cv_ols / cv_penalized / fold_importance with fold_X: fold f is fitted and predicted on fold_X[f] (numpy's
    least squares per fold); by_term gives a term its fold's rise, or 0 where the fold did not choose it."""
    from gexpred.importance import by_term, fold_importance
    from gexpred.search import ols_predictor

    X, y, _ = _noise_target(3, n=60, g=6)
    y = y + X[:, 0]
    folds = kfold([f"s{i}" for i in range(60)], 3, seed=1)
    fold_X = np.stack([X[:, [0, 1]], X[:, [0, 2]], X[:, [3, 0]]])
    got = cv_ols(X[:, [0, 1]], y, folds, fold_X=fold_X)
    for f in range(3):
        tr, te = folds != f, folds == f
        A = np.column_stack([np.ones(tr.sum()), fold_X[f][tr]])
        beta = np.linalg.lstsq(A, y[tr], rcond=None)[0]
        np.testing.assert_allclose(got[te], beta[0] + fold_X[f][te] @ beta[1:], rtol=1e-10)
    pen = cv_penalized(X[:, [0, 1]], y, folds, ["ridge"], n_alphas=3, fold_X=fold_X)
    assert np.isfinite(pen.oof).all()
    rises = fold_importance(ols_predictor, X[:, [0, 1]], y, folds, 2, 0, fold_X=fold_X)
    terms = ["g0", "g1"]
    mapped = by_term(rises, [["g0", "g1"], ["g0", "g2"], ["g3", "g0"]], terms)
    np.testing.assert_array_equal(mapped[:, 0], [rises[0, 0], rises[1, 0], rises[2, 1]])
    np.testing.assert_array_equal(mapped[:, 1], [rises[0, 1], 0.0, 0.0])
    with pytest.raises(ValueError, match="do not match"):
        cv_ols(X[:, [0, 1, 2]], y, folds, fold_X=fold_X)


def test_cv_logit_judges_a_fold_where_a_predictor_is_constant():
    """A covariate level whose training samples all fall in one fold is constant (0) over that fold's training
    part: the fold's logistic regression leaves it out (coefficient 0, as R's glm with an NA coefficient) instead
    of refusing the whole run as collinear; the other folds keep it. Expected: statsmodels Logit per fold."""
    from scipy import special

    from gexpred.search import cv_logit

    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=n)
    y = (rng.uniform(size=n) < special.expit(x)).astype(int)
    folds = kfold([f"s{i:02d}" for i in range(n)], 5, 0, labels=y)
    dummy = np.zeros(n)
    rare = np.flatnonzero(folds == 0)
    dummy[rare[y[rare] == 0][0]] = dummy[rare[y[rare] == 1][0]] = 1.0  # one sample of each class, both in fold 0
    X = np.column_stack([x, dummy])
    oof = cv_logit(X, y, folds, ["g", "batch[T.b]"], ["0", "1"])
    for f in range(5):
        tr, te = folds != f, folds == f
        cols = [0] if f == 0 else [0, 1]
        ref = sm.Logit(y[tr], sm.add_constant(X[tr][:, cols])).fit(disp=0)
        p1 = ref.predict(sm.add_constant(X[te][:, cols], has_constant="add"))
        np.testing.assert_allclose(oof[te, 1], p1, rtol=1e-6)
        np.testing.assert_allclose(oof[te].sum(axis=1), 1.0)


def test_cv_ols_gives_a_column_constant_over_a_fold_coefficient_zero():
    """The reference level of a covariate held by two samples, both in fold 0: over fold 0's training part the
    dummy of the other level is 1 everywhere, a copy of the intercept. The minimum-norm least-squares solution
    gave it half the intercept (~4 on log2 intensities), off by 4 for those two samples (fold MSE 2.5 against
    0.07); it must predict as OLS without the column (statsmodels), as R's lm with an NA coefficient."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(n, 2))
    folds = kfold([f"s{i:02d}" for i in range(n)], 5, 0)
    level_b = np.ones(n)
    level_b[np.flatnonzero(folds == 0)[:2]] = 0.0
    X = np.column_stack([x, level_b])
    y = 8.0 + x @ np.array([1.0, -1.0]) + 0.3 * rng.normal(size=n)
    oof = cv_ols(X, y, folds)
    for f in range(5):
        tr, te = folds != f, folds == f
        cols = [0, 1] if f == 0 else [0, 1, 2]
        ref = sm.OLS(y[tr], sm.add_constant(X[tr][:, cols], has_constant="add")).fit()
        np.testing.assert_allclose(oof[te], ref.predict(sm.add_constant(X[te][:, cols], has_constant="add")),
                                   rtol=1e-10)


@pytest.mark.parametrize("n", [0, 1])
def test_penalty_grid_of_fewer_than_two_penalties_is_refused(n):
    """One penalty is the grid's strongest (every coefficient 0: the mean); 0 gave a traceback (an audit)."""
    from gexpred.errors import ConfigError
    from gexpred.search import penalty_grid

    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ConfigError, match="at least 2 penalties"):
        penalty_grid(X, X[:, 0], "lasso", n)


def test_a_classification_search_leaves_out_the_regression_loss(caplog):
    """A classification network trains on cross-entropy whatever mlp.loss says: a search varying loss (and
    huber_delta) made identical candidates, each trained and judged (an audit). They are left out of its search,
    with a log line; a regression search keeps them."""
    import argparse
    import json
    import logging

    from gexpred.cli import _network_candidates

    a = argparse.Namespace(settings=json.dumps({"epochs": 5}),
                           search=json.dumps({"mlp": {"loss": ["mae", "mse"], "huber_delta": [1.0, 2.0],
                                                      "hidden": [[4], [8]]}}))
    with caplog.at_level(logging.INFO, logger="gexpred"):
        _, configs, candidates = _network_candidates(a, classification=True)
    assert sorted(c.hidden for c in candidates) == [[4], [8]] and all("loss" not in c for c in configs)
    assert "left out of its search" in caplog.text and "loss and huber_delta" in caplog.text
    # a regression search keeps the losses: 2 losses x 2 architectures (huber_delta does nothing without Huber's
    # loss: its twins are left out, test_candidates_that_train_the_same_network_are_left_out)
    assert sorted((c.loss, c.hidden) for c in _network_candidates(a)[2]) == [
        ("mae", [4]), ("mae", [8]), ("mse", [4]), ("mse", [8])]
