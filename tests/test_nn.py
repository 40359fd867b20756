"""Tests of gexpred.nn: a network without hidden layers is multiple regression, and the
training loop is deterministic, keeps the best epoch, round-trips and fails cleanly."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from gexpred.errors import ConfigError, GexpredError, ModelError
from gexpred.nn import (
    HISTORY_COLUMNS,
    MLPSettings,
    architecture,
    linear_coefficients,
    load_model,
    predict,
    save_state,
    settings_dict,
    train_mlp,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _settings(**kw) -> MLPSettings:
    base = {"device": "cpu"}
    base.update(kw)
    return MLPSettings.from_config(base)


# Full-batch gradient descent with momentum on a convex quadratic: converges to the
# least-squares solution in a couple of hundred epochs.
LINEAR = {"hidden": [], "activation": "identity", "optimizer": "sgd", "lr": 0.2, "momentum": 0.9,
          "patience": 0, "val_fraction": 0.0, "epochs": 800, "seed": 0}


def _zscore(a: np.ndarray) -> np.ndarray:
    return (a - a.mean(axis=0)) / a.std(axis=0, ddof=1)


@pytest.fixture(scope="module")
def linear_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    n, p = 300, 5
    cov = 0.4 * np.ones((p, p)) + 0.6 * np.eye(p)  # correlated predictors
    X = rng.multivariate_normal(np.zeros(p), cov, size=n)
    y = X @ np.array([1.0, -0.5, 0.25, 0.0, 2.0]) + rng.normal(scale=0.5, size=n)
    return _zscore(X), _zscore(y)


@pytest.fixture(scope="module")
def small_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 4))
    y = np.tanh(X[:, 0]) + X[:, 1] * X[:, 2] + 0.3 * rng.normal(size=80)
    return X, y


def _lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    A = np.column_stack([np.ones(len(y)), X])
    return np.linalg.lstsq(A, y, rcond=None)[0]


# ----------------------------------------------------------------------------- regression == network
def test_no_hidden_layer_identity_network_is_ols(linear_data):
    """Multiple regression is a neural network without hidden layers."""
    X, y = linear_data
    n = len(y)
    model, history, info = train_mlp(X, y, _settings(**LINEAR, batch_size=n))
    intercept, slopes = linear_coefficients(model)
    ref = _lstsq(X, y)
    assert slopes.shape == (X.shape[1],)
    np.testing.assert_allclose(intercept, ref[0], atol=1e-3)
    np.testing.assert_allclose(slopes, ref[1:], atol=1e-3)
    # the loss reached is the least-squares residual mean square
    rss = np.mean((y - np.column_stack([np.ones(n), X]) @ ref) ** 2)
    np.testing.assert_allclose(history["train_loss"].min(), rss, rtol=1e-4)
    # and the network's predictions are those of the regression line
    np.testing.assert_allclose(predict(model, X), ref[0] + X @ ref[1:], atol=2e-3)
    assert info["n_fit"] == n and info["n_val"] == 0


def test_linear_network_on_raw_scale_data_recovers_ols():
    """The internal standardisation is undone by linear_coefficients (data-scale coefficients)."""
    rng = np.random.default_rng(11)
    n = 200
    X = rng.normal(size=(n, 3)) * np.array([0.5, 20.0, 3.0]) + np.array([10.0, -50.0, 0.0])
    y = 7.0 + X @ np.array([2.0, 0.05, -1.0]) + rng.normal(scale=0.3, size=n)
    model, _, _ = train_mlp(X, y, _settings(**LINEAR, batch_size=n))
    intercept, slopes = linear_coefficients(model)
    ref = _lstsq(X, y)
    np.testing.assert_allclose(slopes, ref[1:], rtol=1e-3)
    np.testing.assert_allclose(intercept, ref[0], rtol=1e-3)
    np.testing.assert_allclose(predict(model, X), intercept + X @ slopes, rtol=1e-5, atol=1e-4)


def test_linear_coefficients_of_a_multi_output_network_give_each_outputs_regression():
    """A network without hidden layers and three outputs (the genome-wide multi-output design) is three linear
    regressions: one intercept and one row of slopes per output, each reproducing that output's predictions
    (its intercept and slopes recovered from them by least squares); an ensemble's are its members' means.
    It read the first output's weights and failed on the intercept's three values."""
    from gexpred.nn import EnsembleMLP, GeneMLP

    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4)) * 3.0 + 5.0
    members = []
    for _ in range(2):
        m = GeneMLP(4, [], "identity", n_out=3)
        m.x_mean.copy_(torch.tensor(X.mean(axis=0), dtype=m.x_mean.dtype))
        m.x_scale.copy_(torch.tensor(X.std(axis=0), dtype=m.x_scale.dtype))
        m.y_mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
        m.y_scale.copy_(torch.tensor([2.0, 0.5, 3.0]))
        members.append(m)
    for model in (members[0], EnsembleMLP(members)):
        b0, B = linear_coefficients(model)
        assert b0.shape == (3,) and B.shape == (3, 4)
        pred = predict(model, X)
        for k in range(3):
            np.testing.assert_allclose(np.r_[b0[k], B[k]], _lstsq(X, pred[:, k]), rtol=1e-4, atol=1e-4)


def test_linear_coefficients_needs_no_hidden_layer(small_data):
    X, y = small_data
    model, _, _ = train_mlp(X, y, _settings(hidden=[4], epochs=2, patience=0))
    with pytest.raises(ValueError):
        linear_coefficients(model)


# ----------------------------------------------------------------------------- robust losses
@pytest.fixture(scope="module")
def heavy_tailed_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(31)
    n = 300
    X = rng.normal(size=(n, 3)) * np.array([1.0, 2.0, 0.5]) + 3.0
    y = 1.0 + X @ np.array([1.5, -0.7, 0.3]) + rng.standard_t(df=2, size=n)  # heavy tails: LAD != OLS
    return X, y


# full-batch Adam whose rate anneals to zero: converges on the convex, non-smooth L1 objective too
ROBUST_LINEAR = {"hidden": [], "activation": "identity", "optimizer": "adam", "lr": 0.05, "lr_schedule": "cosine",
                 "epochs": 3000, "patience": 0, "val_fraction": 0.0, "seed": 0}


def test_linear_network_with_mae_loss_is_median_regression(heavy_tailed_data):
    """loss: mae without a hidden layer is least-absolute-deviations regression (statsmodels QuantReg, q = 0.5)."""
    import statsmodels.api as sm

    X, y = heavy_tailed_data
    A = sm.add_constant(X)
    ref = np.asarray(sm.QuantReg(y, A).fit(q=0.5).params)
    ols = _lstsq(X, y)
    assert np.max(np.abs(ref - ols)) > 0.05  # the two regressions differ on these data: the test can tell them apart
    model, hist, _ = train_mlp(X, y, _settings(**ROBUST_LINEAR, batch_size=len(y), loss="mae"))
    intercept, slopes = linear_coefficients(model)
    np.testing.assert_allclose(np.r_[intercept, slopes], ref, atol=5e-3)
    # the history is the mean absolute error on the data scale, reaching LAD's
    np.testing.assert_allclose(hist["train_loss"].min(), np.mean(np.abs(y - A @ ref)), rtol=1e-4)
    np.testing.assert_allclose(hist["train_loss"].iloc[-1], np.mean(np.abs(y - predict(model, X))), rtol=1e-4)


@pytest.mark.parametrize("delta", [0.3, 1.5])
def test_linear_network_with_huber_loss_minimises_huber_objective(heavy_tailed_data, delta):
    """loss: huber: the minimiser (scipy BFGS) of the mean Huber loss of the residuals in target SDs, threshold delta."""
    from scipy.optimize import minimize

    X, y = heavy_tailed_data
    A = np.column_stack([np.ones(len(y)), X])
    sd = y.std()  # the network standardises the target by its (population) SD on the samples it fits

    def huber(b: np.ndarray) -> float:
        a = np.abs((y - A @ b) / sd)
        return float(np.mean(np.where(a <= delta, 0.5 * a * a, delta * (a - 0.5 * delta))))

    ref = minimize(huber, _lstsq(X, y), method="BFGS", options={"gtol": 1e-10}).x
    model, hist, _ = train_mlp(X, y, _settings(**ROBUST_LINEAR, batch_size=len(y), loss="huber", huber_delta=delta))
    intercept, slopes = linear_coefficients(model)
    np.testing.assert_allclose(np.r_[intercept, slopes], ref, atol=2e-3)
    # the history is on the data scale: Huber's loss with threshold delta * sd, i.e. sd^2 x the standardised one
    np.testing.assert_allclose(hist["train_loss"].min(), huber(ref) * sd ** 2, rtol=1e-4)


def test_linear_network_with_input_noise_is_ridge_regression(linear_data):
    """input_noise sigma on the standardised inputs adds sigma^2 |w|^2 to the expected squared error
    (E[(t - (z + e) w)^2] = (t - z w)^2 + sigma^2 |w|^2), so a linear network trained with it converges to ridge
    regression on the standardised data with penalty sigma^2 per sample: the closed form
    w = (Z'Z / n + sigma^2 I)^-1 Z't / n, mapped back to the data's scale."""
    X, y = linear_data
    noise = 1.0
    n = len(y)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)  # the network standardises by the population SD of what it fits
    t = (y - y.mean()) / y.std()
    w = np.linalg.solve(Z.T @ Z / n + noise ** 2 * np.eye(Z.shape[1]), Z.T @ t / n)
    slopes = w * y.std() / X.std(axis=0)
    ref = np.r_[y.mean() - X.mean(axis=0) @ slopes, slopes]
    assert np.max(np.abs(ref - _lstsq(X, y))) > 0.1  # ridge and OLS differ clearly here: the test tells them apart
    # full-batch Adam annealed to zero, so that the fresh noise of each epoch averages out
    model, _, _ = train_mlp(X, y, _settings(**{**ROBUST_LINEAR, "lr": 0.01}, batch_size=n, loss="mse", input_noise=noise))
    intercept, fitted = linear_coefficients(model)
    np.testing.assert_allclose(np.r_[intercept, fitted], ref, atol=0.02)


def test_input_noise_zero_draws_nothing(small_data):
    """input_noise 0 leaves training as it was (no draw from the network's generator), any other value changes
    it, and the same seed gives the same network."""
    X, y = small_data
    base = {"hidden": [8], "epochs": 15, "batch_size": 16, "patience": 0, "seed": 4}
    plain = predict(train_mlp(X, y, _settings(**base))[0], X)
    np.testing.assert_array_equal(predict(train_mlp(X, y, _settings(**base, input_noise=0.0))[0], X), plain)
    noisy = [predict(train_mlp(X, y, _settings(**base, input_noise=0.3))[0], X) for _ in range(2)]
    np.testing.assert_array_equal(noisy[0], noisy[1])
    assert np.max(np.abs(noisy[0] - plain)) > 1e-3


# ----------------------------------------------------------------------------- determinism and RNG
def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_model_and_history(small_data):
    X, y = small_data
    s = _settings(hidden=[8, 4], dropout=0.1, epochs=30, batch_size=16, patience=5, seed=3)
    m1, h1, i1 = train_mlp(X, y, s)
    m2, h2, i2 = train_mlp(X, y, s)
    w1, w2 = _weights(m1), _weights(m2)
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    pd.testing.assert_frame_equal(h1, h2)
    assert {k: v for k, v in i1.items() if k != "seconds"} == {k: v for k, v in i2.items() if k != "seconds"}


def test_different_seed_different_model(small_data):
    X, y = small_data
    m1, h1, _ = train_mlp(X, y, _settings(hidden=[8], epochs=10, patience=0, seed=1))
    m2, h2, _ = train_mlp(X, y, _settings(hidden=[8], epochs=10, patience=0, seed=2))
    assert not torch.equal(m1.net[0].weight, m2.net[0].weight)
    assert not np.allclose(h1["train_loss"], h2["train_loss"])


def test_training_leaves_global_rng_untouched(small_data):
    X, y = small_data
    torch.manual_seed(12345)
    np.random.seed(777)
    before_torch = torch.random.get_rng_state().clone()
    before_np = np.random.get_state()[1].copy()
    train_mlp(X, y, _settings(hidden=[8], dropout=0.2, epochs=5, batch_size=8, patience=0, seed=9))
    assert torch.equal(torch.random.get_rng_state(), before_torch)
    assert np.array_equal(np.random.get_state()[1], before_np)
    # and the global stream continues as if training never happened
    expected = torch.Generator().manual_seed(12345)
    assert torch.equal(torch.rand(3), torch.rand(3, generator=expected))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_leaves_cuda_rng_untouched(small_data):
    X, y = small_data
    torch.cuda.manual_seed_all(99)
    before = torch.cuda.get_rng_state().clone()
    model, _, info = train_mlp(X, y, _settings(hidden=[8], dropout=0.2, epochs=3, patience=0, device="cuda"))
    assert info["device"].startswith("cuda")
    assert torch.equal(torch.cuda.get_rng_state(), before)
    assert next(model.parameters()).device.type == "cpu"


# ----------------------------------------------------------------------------- early stopping
def test_early_stopping_keeps_best_validation_epoch():
    rng = np.random.default_rng(8)
    n = 60
    X = rng.normal(size=(n, 6))
    y = X[:, 0] + rng.normal(scale=1.0, size=n)  # noisy: a wide network overfits quickly
    patience = 15
    s = _settings(hidden=[64, 64], optimizer="adam", lr=0.01, epochs=400, batch_size=16,
                  patience=patience, val_fraction=0.3, seed=4)
    model, hist, info = train_mlp(X, y, s)
    assert list(hist.columns) == HISTORY_COLUMNS
    assert info["stopped_early"] is True
    assert info["n_val"] == round(0.3 * n) and info["n_fit"] == n - info["n_val"]
    best_row = hist.loc[hist["val_loss"].idxmin()]
    assert int(best_row["epoch"]) == info["best_epoch"]
    assert info["epochs_run"] == len(hist) == info["best_epoch"] + patience
    assert hist["val_loss"].iloc[-1] > best_row["val_loss"]

    # Predictions come from the best epoch's weights: the total squared error over all
    # training samples is n_fit * train_loss + n_val * val_loss *of that epoch*.
    sse = float(np.sum((predict(model, X) - y) ** 2))
    at_best = info["n_fit"] * best_row["train_loss"] + info["n_val"] * best_row["val_loss"]
    last = hist.iloc[-1]
    at_last = info["n_fit"] * last["train_loss"] + info["n_val"] * last["val_loss"]
    np.testing.assert_allclose(sse, at_best, rtol=1e-4)
    assert abs(at_last - at_best) > 1e-3 * at_best  # the check above can tell the epochs apart


def test_history_is_mse_on_data_scale_without_validation(small_data):
    X, y = small_data
    y = 100.0 + 25.0 * y  # far from standardised
    model, hist, info = train_mlp(X, y, _settings(hidden=[8], epochs=20, patience=50, val_fraction=0.0))
    assert hist["val_loss"].isna().all()
    assert hist["epoch"].tolist() == list(range(1, 21))
    assert info["stopped_early"] is False and info["epochs_run"] == 20
    best = hist.loc[hist["train_loss"].idxmin()]
    assert int(best["epoch"]) == info["best_epoch"]
    np.testing.assert_allclose(np.mean((predict(model, X) - y) ** 2), best["train_loss"], rtol=1e-4)


# ----------------------------------------------------------------------------- persistence
def test_save_and_load_round_trip(tmp_path, small_data):
    X, y = small_data
    s = _settings(hidden=[8, 4], activation="tanh", dropout=0.1, epochs=10, patience=0)
    model, _, _ = train_mlp(X, y, s)
    arch = json.loads(json.dumps(architecture(model, s)))
    assert arch == {"n_in": 4, "hidden": [8, 4], "activation": "tanh", "n_out": 1, "dropout": 0.1, "ensemble": 1}
    path = tmp_path / "sub" / "model.pt"
    save_state(model, path)
    state = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors only
    assert set(state) == set(model.state_dict())
    assert {"x_mean", "x_scale", "y_mean", "y_scale"} <= set(state)
    loaded = load_model(path, arch)
    assert not loaded.training
    np.testing.assert_array_equal(predict(loaded, X), predict(model, X))
    # the settings are plain JSON and rebuild the same settings
    sd = json.loads(json.dumps(settings_dict(s)))
    assert MLPSettings.from_config(sd) == s


def test_predict_output(small_data):
    X, y = small_data
    model, _, _ = train_mlp(X, y, _settings(hidden=[4], epochs=3, patience=0))
    out = predict(model, X[:7])
    assert out.shape == (7,) and out.dtype == np.float64


# ----------------------------------------------------------------------------- non-linear fits
def test_relu_network_beats_ols_on_nonlinear_function():
    rng = np.random.default_rng(0)
    n_train, n_test = 800, 400
    X = rng.uniform(-2, 2, size=(n_train + n_test, 3))
    y = X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + 0.05 * rng.normal(size=len(X))
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    beta = _lstsq(Xtr, ytr)
    ols_mse = np.mean((yte - beta[0] - Xte @ beta[1:]) ** 2)
    s = _settings(hidden=[64, 64], activation="relu", optimizer="adam", lr=3e-3, epochs=150, batch_size=64,
                  patience=30, val_fraction=0.15, seed=0)
    model, _, _ = train_mlp(Xtr, ytr, s)
    mlp_mse = np.mean((yte - predict(model, Xte)) ** 2)
    assert mlp_mse < 0.2 * ols_mse, (mlp_mse, ols_mse)


# ----------------------------------------------------------------------------- failures
@pytest.mark.parametrize("optimizer,lr,hidden", [("sgd", 1e6, []), ("sgd", 50.0, [16]), ("adam", 1e4, []),
                                                 ("adam", 1e6, [16])])
def test_divergence_raises_model_error(small_data, optimizer, lr, hidden):
    X, y = small_data
    s = _settings(hidden=hidden, optimizer=optimizer, lr=lr, epochs=20, patience=0)
    with pytest.raises(ModelError, match="diverged") as exc:
        train_mlp(X, y, s, target="GENE_X")
    assert "GENE_X" in str(exc.value) and "mlp.lr" in str(exc.value)


def test_too_few_samples():
    with pytest.raises(ModelError, match="T1"):
        train_mlp(np.ones((2, 3)), np.ones(2), _settings(epochs=1), target="T1")


@pytest.mark.parametrize(
    "cfg",
    [
        {"activation": "softmax"},
        {"activation": "ReLU"},
        {"optimizer": "rmsprop"},
        {"hidden": [8, 0]},
        {"hidden": 8},
        {"hidden": "32,16"},
        {"lr": 0},
        {"lr": -0.1},
        {"lr": "1e-3"},
        {"epochs": 0},
        {"batch_size": 0},
        {"dropout": 1.0},
        {"val_fraction": 1.0},
        {"patience": -1},
        {"device": "tpu"},
        {"loss": "l2"},
        {"loss": "MAE"},
        {"huber_delta": 0},
        {"huber_delta": "1"},
        {"input_noise": -0.1},
        {"input_noise": "1"},
    ],
)
def test_from_config_rejects_bad_values(cfg):
    with pytest.raises(ConfigError):
        MLPSettings.from_config(cfg)


def test_from_config_defaults_and_extra_keys():
    s = MLPSettings.from_config({"hidden": [3], "lr": 0.5, "not_a_setting": 1})
    assert s.hidden == [3] and s.lr == 0.5 and s.activation == "relu" and s.optimizer == "adam"
    assert isinstance(ConfigError("x"), GexpredError)
    assert math.isclose(MLPSettings.from_config({}).lr, 1e-3)


# --------------------------------------------------------------------------- classification and schedules
from gexpred.nn import LRSchedule, predict_proba  # noqa: E402


def _xor_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)  # XOR: no linear boundary separates it
    return X, y


def test_binary_classification_learns_xor_and_reports_cross_entropy():
    X, y = _xor_data()
    s = MLPSettings.from_config({"hidden": [16], "activation": "tanh", "lr": 0.02, "epochs": 300,
                                 "patience": 40, "device": "cpu"})
    model, hist, info = train_mlp(X[:300], y[:300], s, task="classification", n_classes=2)
    assert list(hist.columns) == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]
    proba = predict_proba(model, X[300:])
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    acc = float((proba.argmax(axis=1) == y[300:]).mean())
    assert acc > 0.85  # a linear classifier gets ~0.5 on XOR
    # the recorded loss is the mean binary cross-entropy of the returned model, computed independently
    fit_idx = np.setdiff1d(np.arange(300), np.sort(np.random.default_rng(0).permutation(300)[:60]))
    p1 = predict_proba(model, X[fit_idx])[:, 1]
    yy = y[fit_idx]
    bce = -np.mean(yy * np.log(p1) + (1 - yy) * np.log(1 - p1))
    row = hist.loc[hist["epoch"] == info["best_epoch"]].iloc[0]
    assert row["train_loss"] == pytest.approx(bce, rel=1e-4)
    assert row["train_accuracy"] == pytest.approx(float(((p1 > 0.5) == yy).mean()))


def test_multiclass_softmax_probabilities():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 2)).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=240), [-0.5, 0.5])  # 3 ordered classes
    s = MLPSettings.from_config({"hidden": [8], "lr": 0.02, "epochs": 150, "device": "cpu"})
    model, hist, _ = train_mlp(X, y, s, task="classification", n_classes=3)
    proba = predict_proba(model, X)
    assert proba.shape == (240, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert float((proba.argmax(axis=1) == y).mean()) > 0.75
    with pytest.raises(ModelError, match="class codes"):
        train_mlp(X, y + 1, s, task="classification", n_classes=3)


def test_lr_schedule_factors():
    cos = LRSchedule(MLPSettings.from_config({"lr_schedule": "cosine", "epochs": 4}))
    np.testing.assert_allclose([cos.factor(e) for e in (1, 2, 3, 4)],
                               [0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)])
    plat = LRSchedule(MLPSettings.from_config({"lr_schedule": "plateau", "lr_patience": 2, "lr_factor": 0.5}))
    factors = []
    for score in [3.0, 2.0, 2.5, 2.5, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5]:
        factors.append(plat.factor(0))
        plat.end_epoch(score)
    # improvement at epochs 1, 2, 7; the third epoch without improvement (5th epoch) halves the rate
    assert factors == [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert plat.factor(0) == 0.25
    with pytest.raises(ConfigError, match="lr_schedule"):
        MLPSettings.from_config({"lr_schedule": "linear"})


def test_multi_output_linear_network_is_ols_for_every_target():
    """One network, many outputs (D-GEX style): without hidden layers each output is that target's OLS fit."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    B = rng.normal(size=(4, 6))
    Y = (X @ B + 0.5 + rng.normal(size=(300, 6)) * 0.3).astype(np.float32)
    s = MLPSettings.from_config({"hidden": [], "activation": "identity", "lr": 0.02, "epochs": 400,
                                 "patience": 0, "val_fraction": 0.0, "batch_size": 300, "device": "cpu"})
    model, hist, _ = train_mlp(X, Y, s)
    assert model.y_mean.shape == (6,)
    pred = predict(model, X)
    A = np.column_stack([np.ones(300), X.astype(np.float64)])
    want = A @ np.linalg.lstsq(A, Y.astype(np.float64), rcond=None)[0]
    assert pred.shape == (300, 6)
    np.testing.assert_allclose(pred, want, atol=2e-3)
    # the loss is the mean over targets of the MSE in units of each target's variance
    rel = np.mean(((Y - pred) ** 2).mean(axis=0) / Y.var(axis=0))
    assert hist["train_loss"].iloc[-1] == pytest.approx(rel, rel=1e-3)


@pytest.mark.parametrize(
    "optimizer, momentum, weight_decay",
    [("adam", 0.0, 0.0), ("adam", 0.0, 0.01), ("sgd", 0.0, 0.0), ("sgd", 0.9, 0.0), ("sgd", 0.9, 0.01)],
)
def test_optimizer_matches_torch_optim(optimizer, momentum, weight_decay):
    """nn.Optimizer (no torch.optim, so no torch._dynamo import) takes the steps of torch.optim's
    Adam / SGD, with a learning rate changed between steps as a schedule does."""
    from gexpred.nn import Optimizer

    torch.manual_seed(3)
    ours = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    ref, start = copy.deepcopy(ours), copy.deepcopy(ours)
    settings = MLPSettings(optimizer=optimizer, momentum=momentum, weight_decay=weight_decay)
    opt = Optimizer(ours.parameters(), settings)
    if optimizer == "adam":
        ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01, weight_decay=weight_decay, foreach=False)
    else:
        ref_opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=momentum, weight_decay=weight_decay,
                                  foreach=False)
    X, Y = torch.randn(32, 4), torch.randn(32, 2)
    for step in range(25):
        lr = 0.01 * (0.9 ** step)
        for group in ref_opt.param_groups:
            group["lr"] = lr
        for model, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            torch.nn.functional.mse_loss(model(X[step % 4::4]), Y[step % 4::4]).backward()
        opt.step(lr)
        ref_opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same operations: the same floats
    moved = [float((a - b).abs().max().detach()) for a, b in zip(ours.parameters(), start.parameters())]
    assert min(moved) > 1e-4  # the steps did move every parameter


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_is_the_mean_of_networks_trained_alone(small_data, tmp_path):
    """train_ensemble's members are train_mlp with seeds seed, seed + 1, ... (vectorised: equal to
    float rounding), the ensemble predicts their mean, and it round-trips tensors-only."""
    from gexpred.nn import EnsembleMLP, train_ensemble

    X, y = small_data
    s = _settings(hidden=[8], activation="tanh", epochs=40, patience=10, seed=3, ensemble=3)
    model, hist, info = train_ensemble(X, y, s, "t")
    assert isinstance(model, EnsembleMLP) and len(model.members) == 3
    alone = [train_mlp(X, y, _settings(hidden=[8], activation="tanh", epochs=40, patience=10, seed=3 + m), "t")
             for m in range(3)]
    np.testing.assert_allclose(predict(model, X), np.mean([predict(a[0], X) for a in alone], axis=0), atol=1e-5)
    assert [m["best_epoch"] for m in info["members"]] == [a[2]["best_epoch"] for a in alone]
    assert list(hist.columns[:1]) == ["member"] and sorted(hist["member"].unique()) == [1, 2, 3]
    np.testing.assert_allclose(hist.loc[hist["member"] == 2, "val_loss"].to_numpy(),
                               alone[1][1]["val_loss"].to_numpy(), rtol=1e-4)
    arch = json.loads(json.dumps(architecture(model, s)))
    assert arch["ensemble"] == 3
    save_state(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt", arch)
    assert isinstance(loaded, EnsembleMLP)
    np.testing.assert_array_equal(predict(loaded, X), predict(model, X))


def test_ensemble_of_one_is_train_mlp(small_data):
    from gexpred.nn import GeneMLP, train_ensemble

    X, y = small_data
    s = _settings(hidden=[4], epochs=15, ensemble=1)
    model, _, _ = train_ensemble(X, y, s)
    assert isinstance(model, GeneMLP)
    np.testing.assert_array_equal(predict(model, X), predict(train_mlp(X, y, s)[0], X))


def test_ensemble_with_dropout_trains_members_one_at_a_time(small_data):
    from gexpred.nn import train_ensemble

    X, y = small_data
    s = _settings(hidden=[6], dropout=0.2, epochs=10, patience=0, ensemble=2)
    model, _, _ = train_ensemble(X, y, s)
    alone = [train_mlp(X, y, _settings(hidden=[6], dropout=0.2, epochs=10, patience=0, seed=m))[0] for m in range(2)]
    np.testing.assert_allclose(predict(model, X), np.mean([predict(a, X) for a in alone], axis=0), atol=1e-6)


def test_linear_ensemble_coefficients_are_the_members_mean(linear_data):
    from gexpred.nn import train_ensemble

    X, y = linear_data
    model, _, _ = train_ensemble(X, y, _settings(**{**LINEAR, "epochs": 50}, ensemble=3))
    parts = [linear_coefficients(m) for m in model.members]
    b0, b = linear_coefficients(model)
    assert b0 == pytest.approx(np.mean([p[0] for p in parts]))
    np.testing.assert_allclose(b, np.mean([p[1] for p in parts], axis=0))
    # the ensemble of linear networks is the linear model with those coefficients
    np.testing.assert_allclose(predict(model, X), b0 + X @ b, atol=1e-5)


def test_ensemble_classifier_averages_probabilities():
    from gexpred.nn import predict_proba, train_ensemble

    X, y = _xor_data(200)
    s = _settings(hidden=[8], activation="tanh", epochs=30, patience=0, ensemble=2, lr=0.01)
    model, _, _ = train_ensemble(X, y, s, task="classification", n_classes=2)
    proba = predict_proba(model, X)
    members = [predict_proba(m, X) for m in model.members]
    np.testing.assert_allclose(proba, np.mean(members, axis=0))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_ensemble_setting_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match="mlp.ensemble"):
        MLPSettings.from_config({"ensemble": value})


@pytest.mark.parametrize("constant", [0.1, -0.2873, 2.7])
def test_an_input_constant_over_the_fit_part_is_ignored_not_blown_up(constant):
    """A column that takes one value on every sample the network fits (a covariate level whose samples are all in
    a held-out fold) has a float32 standard deviation of a rounding residue (~1e-8 for these values); used as its
    scale, a held-out sample with another value got a standardised input ~1e8 and an absurd prediction. The
    network must ignore the column: changing it changes no prediction, in train_mlp and in train_many alike, and
    the predictions stay near the least-squares ones of the informative columns (statsmodels)."""
    import statsmodels.api as sm

    from gexpred.batched_nn import train_many

    assert np.float32(np.full(23, constant, dtype=np.float32).std()) > 0  # the rounding residue is there
    rng = np.random.default_rng(0)
    n = 23
    x = rng.normal(size=(n, 2))
    y = 1.0 + x @ np.array([1.0, -1.0]) + 0.1 * rng.normal(size=n)
    X = np.column_stack([x, np.full(n, constant)])
    s = MLPSettings.from_config({"hidden": [], "epochs": 400, "patience": 0, "val_fraction": 0.0, "lr": 0.05,
                                 "batch_size": 32, "loss": "mse"})
    new = np.column_stack([rng.normal(size=(5, 2)), np.full(5, constant)])
    other = new.copy()
    other[:, 2] = constant + 3.0
    ols = sm.OLS(y, sm.add_constant(x)).fit().predict(sm.add_constant(new[:, :2]))
    for model in (train_mlp(X, y, s)[0], train_many([X], [y], [s])[0][0]):
        at = predict(model, new)
        np.testing.assert_allclose(predict(model, other), at, rtol=0, atol=1e-6)
        np.testing.assert_allclose(at, ols, atol=0.05)


def test_docs_say_a_linear_network_is_multiple_regression_only_with_the_squared_loss(heavy_tailed_data):
    """The default loss is mae, under which a network without hidden layers is median regression, not OLS (on
    these data their slopes differ by more than 0.05, statsmodels QuantReg against OLS): every page that calls
    the linear network multiple regression must name the squared-error loss beside it."""
    import re
    from pathlib import Path

    import statsmodels.api as sm
    import yaml

    X, y = heavy_tailed_data
    A = sm.add_constant(X)
    assert np.max(np.abs(sm.QuantReg(y, A).fit(q=0.5).params - sm.OLS(y, A).fit().params)) > 0.05
    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))
    assert schema["properties"]["mlp"]["properties"]["loss"]["default"] == "mae"  # the pipeline's default
    for page in ("README.md", "config/README.md", "workflow/report/activation_functions.rst"):
        text = " ".join((root / page).read_text(encoding="utf-8").split())
        for m in re.finditer(r"(?:is\*?|exactly) multiple regression", text):
            around = text[max(0, m.start() - 200):m.end() + 40]
            assert "mse" in around, f"{page}: {around!r}"
