"""Tests of gexpred.batched_nn.train_many: many networks trained as one program give what
train_mlp gives for each alone (weights, history, early stopping), deterministically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gexpred.batched_nn import train_many
from gexpred.errors import ModelError
from gexpred.nn import GeneMLP, MLPSettings, predict, train_mlp

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _problem(optimizer: str, n_nets: int = 6, n: int = 60, p: int = 5):
    rng = np.random.default_rng(7)
    Xs, ys, ss = [], [], []
    for i in range(n_nets):
        X = rng.normal(size=(n, p)).astype(np.float32)
        y = X[:, 0] * np.sin(X[:, 1]) + rng.normal(size=n) * (0.5 + 0.3 * i)
        Xs.append(X)
        ys.append(y)
        ss.append(MLPSettings.from_config({
            "hidden": [8, 4], "activation": "tanh" if optimizer == "sgd" else "relu",
            "optimizer": optimizer, "lr": 0.01 * (i + 1), "weight_decay": 0.001 * i,
            "momentum": 0.9 - 0.1 * i, "epochs": 40 + 5 * i, "batch_size": 16,
            "patience": 3 + i % 3, "seed": 11 * i, "device": "cpu",
        }))
    return Xs, ys, ss


def _assert_same(one, many):
    m, h, info = one
    mb, hb, ib = many
    assert isinstance(mb, GeneMLP) and not mb.training
    for (k, a), (kb, b) in zip(m.state_dict().items(), mb.state_dict().items()):
        assert k == kb
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5, rtol=0, err_msg=k)
    assert list(hb.columns) == list(h.columns)
    assert hb["epoch"].tolist() == h["epoch"].tolist()
    np.testing.assert_allclose(hb[["train_loss", "val_loss"]].to_numpy(),
                               h[["train_loss", "val_loss"]].to_numpy(), rtol=1e-5, atol=1e-7)
    for key in ("best_epoch", "epochs_run", "stopped_early", "n_fit", "n_val", "device"):
        assert ib[key] == info[key], key


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_equals_train_mlp_one_at_a_time(optimizer):
    Xs, ys, ss = _problem(optimizer)
    many = train_many(Xs, ys, ss)
    ones = [train_mlp(X, y, s) for X, y, s in zip(Xs, ys, ss)]
    for one, res in zip(ones, many):
        _assert_same(one, res)
    # the case is a real test: networks stop at different epochs, some early, some at their own limit
    runs = [info["epochs_run"] for _, _, info in ones]
    assert len(set(runs)) >= 3
    assert any(info["stopped_early"] for _, _, info in ones)
    # predictions come out of the returned models unchanged
    np.testing.assert_allclose(predict(many[0][0], Xs[0]), predict(ones[0][0], Xs[0]), atol=1e-5)


@pytest.mark.parametrize("activation,hidden", [("sigmoid", [6, 3]), ("identity", [5]), ("relu", [])])
def test_every_activation_and_no_hidden_layer_equal_train_mlp(activation, hidden):
    """The backward pass train_many writes out, for each activation's derivative and for a network without a
    hidden layer, trains as train_mlp (autograd) does."""
    Xs, ys, ss = _problem("adam", n_nets=3)
    ss = [MLPSettings.from_config({**s.__dict__, "activation": activation, "hidden": hidden}) for s in ss]
    many = train_many(Xs, ys, ss)
    for X, y, s, res in zip(Xs, ys, ss, many):
        _assert_same(train_mlp(X, y, s), res)


@pytest.mark.parametrize("loss,delta", [("mae", 1.0), ("huber", 0.5)])
def test_robust_losses_equal_train_mlp(loss, delta):
    """The written-out gradient of the mean absolute error (its sign) and of Huber's loss (the residual clipped at
    delta) trains as train_mlp does with torch's L1Loss and HuberLoss through autograd."""
    Xs, ys, ss = _problem("adam", n_nets=4)
    ss = [MLPSettings.from_config({**s.__dict__, "loss": loss, "huber_delta": delta}) for s in ss]
    many = train_many(Xs, ys, ss)
    for X, y, s, res in zip(Xs, ys, ss, many):
        _assert_same(train_mlp(X, y, s), res)


def test_input_noise_equals_train_mlp():
    """Networks of different input_noise (0 among them) train in one program as each trains alone: each draws
    its epoch's noise from its own generator after its batch order, as train_mlp does."""
    Xs, ys, ss = _problem("adam", n_nets=4)
    ss = [MLPSettings.from_config({**s.__dict__, "input_noise": noise}) for s, noise in zip(ss, [0.0, 0.3, 1.0, 0.6])]
    many = train_many(Xs, ys, ss)
    for X, y, s, res in zip(Xs, ys, ss, many):
        _assert_same(train_mlp(X, y, s), res)


def test_networks_of_different_losses_are_not_batched():
    Xs, ys, ss = _problem("adam", n_nets=2)
    ss[1] = MLPSettings.from_config({**ss[1].__dict__, "loss": "mae"})
    with pytest.raises(ValueError, match="loss"):
        train_many(Xs, ys, ss)


def test_no_early_stop_runs_each_networks_epochs():
    Xs, ys, ss = _problem("adam", n_nets=3)
    for s in ss:
        s.patience = 0
    many = train_many(Xs, ys, ss)
    for (_, h, info), s, X, y in zip(many, ss, Xs, ys):
        assert len(h) == s.epochs == info["epochs_run"] and not info["stopped_early"]
    _assert_same(train_mlp(Xs[2], ys[2], ss[2]), many[2])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_networks_of_different_sizes_equal_train_mlp(optimizer):
    """Folds of unequal size, a refit on every sample (no validation part) and a network with fewer
    samples than a batch, trained as one program: each as train_mlp trains it alone (a network with
    fewer batches than another waits, without an optimizer step, while the other takes its last)."""
    Xs, ys, ss = _problem(optimizer, n_nets=5, n=70)
    cuts = [70, 61, 52, 14, 45]  # batches per epoch (16 a batch, less 20 % validation): 4, 4, 3, 1, 3
    Xs = [X[:c] for X, c in zip(Xs, cuts)]
    ys = [y[:c] for y, c in zip(ys, cuts)]
    ss[1].val_fraction = 0.0
    ss[1].patience = 0
    ss[4].val_fraction = 0.35
    many = train_many(Xs, ys, ss)
    ones = [train_mlp(X, y, s) for X, y, s in zip(Xs, ys, ss)]
    for one, res in zip(ones, many):
        _assert_same(one, res)
    assert many[1][1]["val_loss"].isna().all() and many[1][2]["n_val"] == 0
    assert len({info["n_fit"] for _, _, info in ones}) == 5
    assert len({info["epochs_run"] for _, _, info in ones}) >= 3


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classification_of_different_sizes_equals_train_mlp(n_classes):
    Xs, ys, ss = _class_problem(n_classes, n_nets=3)
    Xs, ys = [Xs[0], Xs[1][:61], Xs[2][:40]], [ys[0], ys[1][:61], ys[2][:40]]
    ss[2].val_fraction = 0.0
    many = train_many(Xs, ys, ss, task="classification", n_classes=n_classes)
    for X, y, s, res in zip(Xs, ys, ss, many):
        one = train_mlp(X, y, s, task="classification", n_classes=n_classes)
        _assert_same(one, res)
        np.testing.assert_allclose(res[1][["train_accuracy", "val_accuracy"]].to_numpy(),
                                   one[1][["train_accuracy", "val_accuracy"]].to_numpy(), atol=1e-12)


def test_deterministic_and_leaves_global_rng_alone():
    Xs, ys, ss = _problem("adam", n_nets=3)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = train_many(Xs, ys, ss)
    assert torch.equal(torch.get_rng_state(), before)
    b = train_many(Xs, ys, ss)
    for (ma, ha, _), (mb, hb, _) in zip(a, b):
        for x, y in zip(ma.state_dict().values(), mb.state_dict().values()):
            assert torch.equal(x, y)
        assert ha.equals(hb)


def test_single_network():
    Xs, ys, ss = _problem("sgd", n_nets=2)
    [res] = train_many(Xs[1:], ys[1:], ss[1:])
    _assert_same(train_mlp(Xs[1], ys[1], ss[1]), res)


def test_refuses_what_it_cannot_batch():
    Xs, ys, ss = _problem("adam", n_nets=2)
    with pytest.raises(ValueError, match="predictors"):
        train_many([Xs[0], Xs[1][:, :4]], ys, ss)
    with pytest.raises(ValueError, match="values for"):
        train_many(Xs, [ys[0], ys[1][:50]], ss)
    ss[1].hidden = [8, 5]
    with pytest.raises(ValueError, match="hidden"):
        train_many(Xs, ys, ss)
    ss[1].hidden = [8, 4]
    ss[1].optimizer = "sgd"
    with pytest.raises(ValueError, match="optimizer"):
        train_many(Xs, ys, ss)
    ss[1].optimizer = "adam"
    ss[0].dropout = 0.1
    with pytest.raises(NotImplementedError):
        train_many(Xs, ys, ss)
    with pytest.raises(ValueError):
        train_many([], [], [])


def test_divergence_names_the_network():
    Xs, ys, ss = _problem("sgd", n_nets=2)
    ss[1].lr = 1e6
    ss[1].momentum = 0.0
    with pytest.raises(ModelError, match="'second'.*diverged"):
        train_many(Xs, ys, ss, targets=["first", "second"])


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_lr_schedules_equal_train_mlp(schedule):
    Xs, ys, ss = _problem("adam", n_nets=4)
    for i, s in enumerate(ss):
        s.lr_schedule = schedule
        s.lr_patience = 1 + i  # plateau: different networks cut their rate at different epochs
        s.lr_factor = 0.3
        s.patience = 0
    many = train_many(Xs, ys, ss)
    for X, y, s, res in zip(Xs, ys, ss, many):
        _assert_same(train_mlp(X, y, s), res)
    # the schedule changes training: a constant rate gives other weights
    const = MLPSettings.from_config({**ss[0].__dict__, "lr_schedule": "constant"})
    w_sched = many[0][0].state_dict()["net.0.weight"].numpy()
    w_const = train_mlp(Xs[0], ys[0], const)[0].state_dict()["net.0.weight"].numpy()
    assert np.abs(w_sched - w_const).max() > 1e-3


def _class_problem(n_classes: int, n_nets: int = 4, n: int = 80, p: int = 4):
    rng = np.random.default_rng(3)
    Xs, ys, ss = [], [], []
    for i in range(n_nets):
        X = rng.normal(size=(n, p)).astype(np.float32)
        score = X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=n) * 0.5
        cuts = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
        Xs.append(X)
        ys.append(np.searchsorted(cuts, score))
        ss.append(MLPSettings.from_config({"hidden": [8], "activation": "tanh", "lr": 0.01 * (i + 1),
                                           "epochs": 30 + 5 * i, "batch_size": 16, "patience": 4,
                                           "seed": i, "device": "cpu"}))
    return Xs, ys, ss


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classification_equals_train_mlp(n_classes):
    Xs, ys, ss = _class_problem(n_classes)
    many = train_many(Xs, ys, ss, task="classification", n_classes=n_classes)
    for X, y, s, res in zip(Xs, ys, ss, many):
        one = train_mlp(X, y, s, task="classification", n_classes=n_classes)
        _assert_same(one, res)
        np.testing.assert_allclose(res[1][["train_accuracy", "val_accuracy"]].to_numpy(),
                                   one[1][["train_accuracy", "val_accuracy"]].to_numpy(), atol=1e-12)


def _uniform(n_nets: int = 4, n: int = 64, p: int = 5):
    """Networks at one learning rate and one number of samples: every step is every network's (the fused Adam
    path of train_many)."""
    Xs, ys, ss = _problem("adam", n_nets=n_nets, n=n, p=p)
    for s in ss:
        s.lr, s.weight_decay = 0.01, 0.0
    return Xs, ys, ss


@pytest.mark.parametrize("fused", [True, False])
def test_networks_sharing_rate_and_steps_equal_train_mlp(fused, monkeypatch):
    """Adam's update for networks that share the rate and the step count (PyTorch's fused kernel when this
    torch has it, the rule written out otherwise) is nn.Optimizer's: each network as train_mlp trains it alone."""
    if not fused:
        monkeypatch.delattr(torch, "_fused_adam_", raising=False)
    elif not hasattr(torch, "_fused_adam_"):
        pytest.skip("this torch has no fused Adam kernel")
    Xs, ys, ss = _uniform()
    many = train_many(Xs, ys, ss)
    for X, y, s, res in zip(Xs, ys, ss, many):
        _assert_same(train_mlp(X, y, s), res)


def test_without_the_training_loss_pass_the_networks_are_the_same():
    """record_train_loss=False: networks with a validation part skip the pass over their training samples
    (train_loss NaN) and end with the same weights, validation losses and epochs; a network without a validation
    part still records its training loss, which chooses its kept epoch."""
    Xs, ys, ss = _problem("adam", n_nets=3)
    ss[2].val_fraction, ss[2].patience = 0.0, 0
    full = train_many(Xs, ys, ss)
    lean = train_many(Xs, ys, ss, record_train_loss=False)
    for (m, h, info), (mb, hb, ib), s in zip(full, lean, ss):
        for a, b in zip(m.state_dict().values(), mb.state_dict().values()):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert info["best_epoch"] == ib["best_epoch"] and info["epochs_run"] == ib["epochs_run"]
        if s.val_fraction > 0:
            assert hb["train_loss"].isna().all()
            np.testing.assert_array_equal(hb["val_loss"].to_numpy(), h["val_loss"].to_numpy())
        else:
            np.testing.assert_array_equal(hb["train_loss"].to_numpy(), h["train_loss"].to_numpy())


def test_pruned_networks_keep_their_best_weights_so_far():
    """A network that ``prune`` stops at epoch 7 is the network train_mlp trains for 7 epochs (its best weights
    of those); the hook sees every network's best validation loss so far; the others train on, unchanged."""
    Xs, ys, ss = _uniform(n_nets=3)
    for s in ss:
        s.patience, s.epochs = 50, 30
    seen = {}

    def prune(epoch, best, active):
        seen[epoch] = best.copy()
        assert bool(active[0]) == (epoch <= 7) and bool(active[1:].all()) == (epoch < 30)
        return [0] if epoch == 7 else []

    many = train_many(Xs, ys, ss, prune=prune)
    (_, h0, i0), rest = many[0], many[1:]
    assert i0["pruned"] and i0["epochs_run"] == 7 and len(h0) == 7 and not i0["stopped_early"]
    assert not any(info["pruned"] for _, _, info in rest)
    from dataclasses import replace

    _assert_same(train_mlp(Xs[0], ys[0], replace(ss[0], epochs=7)), many[0])
    for X, y, s, res in zip(Xs[1:], ys[1:], ss[1:], rest):
        _assert_same(train_mlp(X, y, s), res)
    # the hook's view: the running minimum of each network's validation loss
    for k, (_, h, _) in enumerate(many):
        running = np.minimum.accumulate(h["val_loss"].to_numpy())
        assert seen[5][k] == pytest.approx(running[4], rel=1e-12)
    assert seen[7][0] == pytest.approx(np.min(h0["val_loss"]), rel=1e-12)
