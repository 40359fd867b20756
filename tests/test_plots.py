"""Every figure is written as a decodable PNG, also for ids that look like markup or math text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from gexpred import plots

ODD = "$x^2$ <b>&amp;</b> 'q'"  # math-text and markup characters must be drawn as text


def decoded(path):
    img = image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert np.isfinite(img).all() and img.std() > 0  # not blank
    return img


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    n = 40
    obs = rng.normal(size=n)
    return pd.DataFrame({"target": ODD, "sample": [f"s{i}" for i in range(n)],
                         "split": ["train"] * 30 + ["test"] * 10, "observed": obs,
                         "ols": obs + rng.normal(0, 0.3, n), "mlp": obs + rng.normal(0, 0.2, n)})


def test_observed_vs_predicted(tmp_path, predictions):
    metrics = pd.DataFrame({"target": ODD, "model": ["ols", "mlp"], "split": "test", "r2": [0.9, 0.95],
                            "mse": [0.1, 0.05]})
    plots.observed_vs_predicted(predictions, ["ols", "mlp"], ODD, tmp_path / "o.png", metrics)
    decoded(tmp_path / "o.png")


def test_coefficients_loss_diagnostics_activations(tmp_path, predictions):
    coefs = pd.DataFrame({"term": ["const", ODD, "g2"], "coef": [0.0, 1.0, -0.5], "std_err": [0.1, 0.2, 0.2],
                          "t": [0.0, 5.0, -2.5], "p_value": [1.0, 1e-5, 0.02], "ci_low": [-0.2, 0.6, -0.9],
                          "ci_high": [0.2, 1.4, -0.1]})
    plots.coefficient_forest(coefs, ODD, tmp_path / "c.png")
    hist = pd.DataFrame({"epoch": range(1, 51), "train_loss": np.linspace(1, 0.1, 50),
                         "val_loss": np.linspace(1, 0.2, 50)})
    plots.loss_curves(hist, ODD, tmp_path / "l.png", best_epoch=40)
    pred = predictions.rename(columns={"ols": "predicted"})
    infl = pd.DataFrame({"sample": pred["sample"][:30], "leverage": np.linspace(0.01, 0.3, 30),
                         "cooks_distance": np.linspace(0, 0.5, 30), "studentized_residual": np.linspace(-3, 3, 30),
                         "influential": False})
    plots.ols_diagnostics(pred, infl, ["heteroskedastic residuals (Breusch-Pagan p = 0.001)"], ODD,
                          tmp_path / "d.png")
    plots.activation_functions(tmp_path / "a.png")
    for name in ("c", "l", "d", "a"):
        decoded(tmp_path / f"{name}.png")


def test_diagnostics_draw_a_sample_of_leverage_one(tmp_path, predictions):
    """A sample of leverage 1 has no Cook's distance or studentized residual (NaN in influence.tsv): it is drawn
    as a labelled cross at 0 instead of vanishing or sizing every other point by a NaN maximum."""
    import matplotlib.pyplot as plt

    pred = predictions.rename(columns={"ols": "predicted"})
    cooks = np.linspace(0, 0.5, 30)
    cooks[-1] = np.nan
    stud = np.linspace(-3, 3, 30)
    stud[-1] = np.nan
    lev = np.linspace(0.01, 0.3, 30)
    lev[-1] = 1.0
    infl = pd.DataFrame({"sample": pred["sample"][:30], "leverage": lev, "cooks_distance": cooks,
                         "studentized_residual": stud, "influential": np.r_[cooks[:-1] > 4 / 30, True]})
    seen = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[2]
        seen["title"] = ax.get_title()
        seen["labels"] = [t.get_text() for t in ax.texts]
        seen["sizes"] = np.concatenate([c.get_sizes() for c in ax.collections])
        return real_savefig(fig, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        plots.ols_diagnostics(pred, infl, [], "t", tmp_path / "d.png")
    finally:
        plt.Figure.savefig = real_savefig
    decoded(tmp_path / "d.png")
    assert seen["title"].endswith(", 1 of leverage 1")
    assert "s29" in seen["labels"]
    assert np.isfinite(seen["sizes"]).all()
    assert seen["title"].startswith(f"influence: {int((cooks[:-1] > 4 / 30).sum())} samples")


def test_plain_escapes_dollars():
    assert plots.plain("$a$") == r"\$a\$"
    assert plots.plain("BSU1") == "BSU1"


def test_failed_figure_leaves_no_file(tmp_path):
    with pytest.raises(Exception):
        plots.coefficient_forest(pd.DataFrame({"term": ["x"]}), "t", tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- report figures
HOSTILE = "<img src=x onerror=alert(1)>"


def test_sample_overview_and_normalization(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(8, 1, (40, 30))
    split = np.array(["train"] * 30 + ["test"] * 10)
    samples = [HOSTILE] + [f"s{i}" for i in range(39)]
    plots.sample_overview((X - X.mean(0)) / X.std(0), samples, split, tmp_path / "s.png", n_dropped_genes=2)
    plots.normalization_effect(X, (X - X.mean(0)) / X.std(0), split, "zscore", tmp_path / "n.png")
    decoded(tmp_path / "s.png")
    decoded(tmp_path / "n.png")


def test_sample_overview_subsamples_many_samples(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 20))
    plots.sample_overview(X, [f"s{i}" for i in range(500)], np.array(["train"] * 400 + ["test"] * 100),
                          tmp_path / "s.png", max_heatmap=100)
    decoded(tmp_path / "s.png")


def test_pvalue_summary_comparison_and_cv(tmp_path):
    rng = np.random.default_rng(3)
    coefs = pd.DataFrame({"target": [ODD] * 11 + ["t2"] * 11, "term": (["const"] + [f"g{i}" for i in range(10)]) * 2,
                          "p_value": rng.uniform(size=22), "q_value": rng.uniform(size=22)})
    plots.pvalue_summary(coefs, tmp_path / "p.png")
    metrics = pd.DataFrame({"target": [ODD] * 3 + ["t2"] * 3, "model": ["ols", "mlp", "mean"] * 2, "split": "test",
                            "r2": [0.9, 0.8, 0.0, 0.5, 0.7, -0.1], "mse": [0.1, 0.2, 1.0, 0.5, 0.3, 1.1]})
    plots.model_comparison(metrics, tmp_path / "m.png")
    cv = pd.DataFrame([{"target": t, "model": m, "fold": k, "n": 10, "mse": rng.uniform(), "rmse": 1.0, "mae": 1.0,
                        "r2": rng.uniform(-0.2, 1), "pearson": 0.5}
                       for t in (ODD, "t2", HOSTILE, "t4") for m in ("ols", "penalized", "mlp", "mean")
                       for k in range(1, 6)])
    plots.cv_metrics(cv, tmp_path / "c.png")
    for name in ("p", "m", "c"):
        decoded(tmp_path / f"{name}.png")


@pytest.fixture
def drawn_texts(monkeypatch) -> list[str]:
    """Every text of every figure saved during the test, as drawn."""
    import matplotlib.text

    seen: list[str] = []
    orig = plots._save

    def record(fig, path):
        fig.canvas.draw()
        seen.extend(t.get_text() for t in fig.findobj(matplotlib.text.Text))
        orig(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return seen


def test_names_are_drawn_as_text_not_math(tmp_path, drawn_texts):
    """Every text drawn from an id has its '$' escaped, so ids are never parsed as math text."""
    seen = drawn_texts
    metrics = pd.DataFrame({"target": ["$a$"] * 2, "model": ["ols", "mean"], "split": "test", "r2": [0.9, 0.0],
                            "mse": [0.1, 1.0]})
    plots.model_comparison(metrics, tmp_path / "m.png")
    cv = pd.DataFrame({"target": "$a$", "model": ["ols", "$m$"], "fold": [1, 1], "r2": [0.5, 0.0]})
    plots.cv_metrics(cv, tmp_path / "c.png")
    shown = [s for s in seen if "$" in s]
    assert len(shown) >= 3 and all(r"\$a\$" in s or r"\$m\$" in s for s in shown), shown


def test_loss_curves_classification_draws_accuracy_panel(tmp_path):
    import matplotlib.image as mpimg

    from gexpred.plots import loss_curves

    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4], "val_loss": [0.72, 0.6, 0.55]})
    loss_curves(hist, "g", tmp_path / "reg.png", best_epoch=3)
    loss_curves(hist.assign(train_accuracy=[0.5, 0.7, 0.8], val_accuracy=[0.5, 0.6, 0.7]), "g",
                tmp_path / "clf.png", best_epoch=3)
    reg, clf = mpimg.imread(tmp_path / "reg.png"), mpimg.imread(tmp_path / "clf.png")
    assert clf.shape[1] > 1.6 * reg.shape[1]  # a second panel: accuracy beside the loss


@pytest.mark.parametrize("n", [2, 3, 9, 250])
def test_normal_qq_equals_scipy_probplot(n):
    """The diagnostics figure's QQ points and line: scipy.stats.probplot's, computed without importing it."""
    from scipy import stats

    x = np.random.default_rng(n).standard_t(3, size=n) * 2.5 + 1.0
    (osm, osr), (slope, intercept, _) = stats.probplot(x, dist="norm")
    got = plots.normal_qq(x)
    np.testing.assert_allclose(got[0], osm, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(got[1], osr)
    np.testing.assert_allclose(got[2:], [slope, intercept], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [7, 60_001])
def test_qq_points_sorted_or_not(n):
    """Expected and observed -log10 p against a direct computation; sorted input (the genome-wide merge hands over
    its sorted p-values) gives the same points; above 50,000 p-values every one of the 2,000 smallest is kept."""
    rng = np.random.default_rng(n)
    p = rng.uniform(size=n) ** 3
    exp, obs = plots.qq_points(p)
    exp_sorted, obs_sorted = plots.qq_points(np.sort(p))
    np.testing.assert_array_equal(exp, exp_sorted)
    np.testing.assert_array_equal(obs, obs_sorted)
    full_obs = -np.log10(np.sort(p))
    full_exp = -np.log10(np.arange(1, n + 1) / (n + 1))
    if n <= 50_000:
        np.testing.assert_allclose(obs, full_obs, rtol=1e-15)
        np.testing.assert_allclose(exp, full_exp, rtol=1e-15)
    else:
        np.testing.assert_allclose(obs[:2000], full_obs[:2000], rtol=1e-15)
        idx = np.searchsorted(-full_exp, -exp)  # the kept ranks
        np.testing.assert_allclose(obs, full_obs[idx], rtol=1e-15)
        assert len(obs) < 23_000 and obs[-1] == full_obs[-1]


@pytest.fixture
def captured(monkeypatch) -> dict:
    """The figure a plotting function would save (``captured["fig"]``), drawn, instead of written."""
    out: dict = {}

    def keep(fig, path):
        out["fig"] = fig
        fig.canvas.draw()

    monkeypatch.setattr(plots, "_save", keep)
    return out


def test_model_comparison_shows_each_model_relative_to_ols(tmp_path, captured):
    """Left panel: every model's test MSE divided by OLS's on the same target (the baseline pinned inside the
    axis); right panel: R² of the models alone; target labels drawn once, on the left."""
    metrics = pd.DataFrame({"target": ["a"] * 4 + ["b"] * 4, "model": ["ols", "penalized", "mlp", "mean"] * 2,
                            "split": "test", "mse": [0.10, 0.098, 0.08, 1.0, 0.20, 0.21, 0.23, 0.9],
                            "r2": [0.9, 0.902, 0.92, 0.0, 0.8, 0.79, 0.77, -0.01]})
    plots.model_comparison(metrics, tmp_path / "m.png")
    left, right = captured["fig"].axes[:2]
    points = np.vstack([c.get_offsets() for c in left.collections if len(c.get_offsets())])
    expected = {(0.98, 0), (0.8, 0), (1.05, 1), (1.15, 1), (1.0, 0), (1.0, 1)}
    for ratio, row in expected:
        assert np.any(np.isclose(points[:, 0], ratio) & (np.abs(points[:, 1] - row) < 0.3)), (ratio, row)
    lo, hi = left.get_xlim()
    assert lo < 0.8 and 1.15 < hi < 2  # the axis is set by the models, not by the baseline (ratio 10 and 4.5)
    assert points[:, 0].max() <= hi
    assert [t.get_text() for t in left.get_yticklabels()] == ["a", "b"]
    r2 = np.vstack([c.get_offsets() for c in right.collections])
    assert r2[:, 0].min() >= 0.77 - 1e-12  # the baseline's R² (about 0) is left out


def test_model_comparison_of_classification_names_logistic_regression(tmp_path, monkeypatch):
    """For classification targets ols is a logistic regression and mean the training class shares: the legend,
    titles and axis labels must not call them OLS (multiple regression) or the training mean."""
    captured = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: captured.setdefault("fig", fig))
    metrics = pd.DataFrame({"target": ["a"] * 3, "model": ["ols", "mlp", "mean"], "split": "test",
                            "mse": np.nan, "r2": np.nan, "accuracy": [0.9, 0.85, 0.5],
                            "log_loss": [0.3, 0.35, 0.69]})
    plots.model_comparison(metrics, tmp_path / "m.png")
    fig = captured["fig"]
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    texts += [fig._suptitle.get_text()] + [t for ax in fig.axes for t in (ax.get_title(), ax.get_xlabel())]
    shown = " | ".join(texts)
    assert "Logistic regression" in shown and "Training class shares" in shown, shown
    assert "OLS" not in shown and "multiple regression" not in shown and "Training mean" not in shown, shown
    assert "training-mean" not in shown and "relative to ols" not in shown, shown


def test_importance_figure_draws_every_model_ig_and_verdicts(tmp_path, drawn_texts):
    """One bar group per model in the ranking of the network, the integrated gradients beside, the pairs
    coloured by verdict; names from data files drawn as text."""
    from gexpred.importance import importance_table, interaction_table

    seen = drawn_texts
    genes = ["$g$0", "g1", "g2"]
    rises = np.array([[0.5, 0.1, 0.0], [0.7, 0.2, 0.01]])
    tables = {"mlp": importance_table(genes, rises, np.array([1.0, 0.3, 0.1])),
              "ols": importance_table(genes, rises[::-1] * 0.9)}
    inter = interaction_table(genes, [(0, 1), (0, 2), (1, 2)], np.array([0.3, 0.01, 0.0]),
                              np.array([0.4, 0.02, 0.0]))
    plots.importance(tables, inter, "$t$", tmp_path / "i.png")
    img = image.imread(tmp_path / "i.png")
    assert img.shape[1] > 800  # three panels
    assert r"\$g\$0" in seen and r"\$t\$: permutation importance" in seen
    assert "mlp" in seen and "ols" in seen and "not tested" in seen and "negligible" in seen
    plots.importance({"ols": tables["ols"]}, None, "t", tmp_path / "one.png")
    assert image.imread(tmp_path / "one.png").shape[1] < img.shape[1]  # one panel only


def test_importance_figure_names_the_loss_and_the_interaction_test_of_the_task(tmp_path, drawn_texts):
    """The permutation axis names the loss the target's metrics were judged by (MSE; log-loss for a classifier), the
    interaction legend the regression that tested the pairs (the OLS F-test; the logistic regression's
    likelihood-ratio test for a classifier)."""
    from gexpred.cli import _plot_importance
    from gexpred.importance import importance_table, interaction_table

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    genes = ["g0", "g1"]
    imp = tmp_path / "imp.tsv"
    importance_table(genes, np.array([[0.5, 0.1]]), np.array([1.0, 0.2])).to_csv(imp, sep="\t", index=False)
    for task, metrics, y, classes in (
            ("regression", {"mse": [0.2], "log_loss": [np.nan]}, X[:, 0] * X[:, 1] + rng.normal(size=120), None),
            ("classification", {"mse": [np.nan], "log_loss": [0.4]}, (X[:, 0] * X[:, 1] > 0).astype(int),
             ["0", "1"])):
        drawn_texts.clear()
        m = tmp_path / f"{task}_metrics.tsv"
        pd.DataFrame({"target": "t", "model": "mlp", "split": "test", **metrics}).to_csv(m, sep="\t", index=False)
        inter = tmp_path / f"{task}_inter.tsv"
        interaction_table(genes, [(0, 1)], np.array([0.5]), np.array([1.0]), X, y, classes=classes).to_csv(
            inter, sep="\t", index=False)
        _plot_importance("t", [f"mlp={imp}"], str(inter), str(tmp_path / f"{task}.png"), str(m))
        shown = " | ".join(drawn_texts)
        if task == "regression":
            assert "rise of held-out MSE when shuffled" in shown and "OLS F-test of a:b" in shown, shown
        else:
            assert "rise of held-out log-loss when shuffled" in shown, shown
            assert "logit likelihood-ratio test of a:b" in shown and "OLS" not in shown, shown


@pytest.mark.usefixtures("restore_logging")
def test_plot_target_draws_every_asked_figure_or_none(tmp_path, predictions, capsys, monkeypatch):
    """`gexpred plot target` (one job per target): each --out-* figure needs its inputs, named in the
    usage error before anything is drawn; a failure part-way removes the figures already drawn."""
    from gexpred.cli import main

    pred, metrics = tmp_path / "predictions.tsv", tmp_path / "metrics.tsv"
    predictions.to_csv(pred, sep="\t", index=False)
    pd.DataFrame({"target": ODD, "model": ["ols", "mlp"], "split": "test", "r2": [0.9, 0.95],
                  "mse": [0.1, 0.05]}).to_csv(metrics, sep="\t", index=False)
    coefs = tmp_path / "coefficients.tsv"
    pd.DataFrame({"term": ["const", "g1"], "coef": [0.0, 1.0], "std_err": [0.1, 0.2], "t": [0.0, 5.0],
                  "p_value": [1.0, 1e-4], "ci_low": [-0.2, 0.6], "ci_high": [0.2, 1.4]}).to_csv(coefs, sep="\t",
                                                                                         index=False)
    base = ["plot", "target", "--target", ODD, "--models", "ols", "mlp"]
    out_obs, out_coef = tmp_path / "figs" / "observed.png", tmp_path / "figs" / "coefficients.png"

    # asked for a figure without its inputs: a usage error naming the missing flag, nothing drawn
    assert main([*base, "--out-observed", str(out_obs), "--out-loss", str(tmp_path / "figs" / "loss.png"),
                 "--predictions", str(pred), "--metrics", str(metrics)]) == 1
    err = capsys.readouterr().err
    assert "--history" in err and "--model-json" in err and "Traceback" not in err
    assert not (tmp_path / "figs").exists() or not any((tmp_path / "figs").iterdir())

    # an input that does not exist: named, nothing drawn
    argv = [*base, "--out-observed", str(out_obs), "--out-coefficients", str(out_coef),
            "--predictions", str(pred), "--metrics", str(metrics), "--coefficients", str(coefs)]
    assert main([*argv[:-1], str(tmp_path / "absent.tsv")]) == 1
    assert "absent.tsv" in capsys.readouterr().err
    assert not out_obs.exists()

    # the second figure fails: the first, already drawn, is removed again
    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(plots, "coefficient_forest", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        main(argv)
    assert not out_obs.exists() and not out_coef.exists()
    monkeypatch.undo()

    assert main([*base, "--out-observed", str(out_obs), "--out-coefficients", str(out_coef),
                 "--predictions", str(pred), "--metrics", str(metrics), "--coefficients", str(coefs)]) == 0
    decoded(out_obs)
    decoded(out_coef)


@pytest.mark.parametrize("loss, label", [("mae", "mean absolute error (normalized expression)"),
                                         ("mse", "mean squared error (normalized expression²)"),
                                         ("huber", "mean Huber loss (normalized expression², threshold 0.5 target SD)")])
def test_loss_curves_label_the_loss_trained_on(tmp_path, drawn_texts, loss, label):
    """The y-axis names the loss the network was trained with (mlp.loss), not always the squared error."""
    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4], "val_loss": [0.72, 0.6, 0.55]})
    plots.loss_curves(hist, "g", tmp_path / "l.png", best_epoch=3, loss=loss, huber_delta=0.5)
    assert label in drawn_texts
    assert not any(other in drawn_texts for other in ("mean absolute error (normalized expression)",
                                                      "mean squared error (normalized expression²)") if other != label)


@pytest.mark.parametrize("alpha, level", [(0.05, "95%"), (0.01, "99%"), (0.1, "90%"), (0.001, "99.9%")])
def test_coefficient_forest_labels_the_interval_level(tmp_path, drawn_texts, alpha, level):
    """The axis names the level the intervals were computed at (1 - ols.alpha), not always 95%."""
    coefs = pd.DataFrame({"term": ["const", "g1"], "coef": [0.0, 1.0], "std_err": [0.1, 0.2], "t": [0.0, 5.0],
                          "p_value": [1.0, 1e-5], "ci_low": [-0.2, 0.6], "ci_high": [0.2, 1.4]})
    plots.coefficient_forest(coefs, "g", tmp_path / "c.png", alpha=alpha)
    assert f"coefficient (change in target per unit of predictor), {level} CI" in drawn_texts


def test_pca_genes_are_the_most_variable_unless_every_gene_is_z_scored():
    """The sample overview's PCA takes the 2,000 most variable genes; on data z-scored on the training samples
    every gene has variance 1 there, so a choice by variance would follow the test samples' noise: all genes."""
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (40, 2500)) * rng.uniform(0.5, 3, 2500)
    train = np.arange(40) < 30
    top = plots._top_variance(X, fit=train)
    want = np.sort(np.argsort(-X.var(axis=0))[:2000])
    np.testing.assert_array_equal(top, X[:, want])
    Z = (X - X[train].mean(0)) / X[train].std(0, ddof=1)
    Z[:, 7] = 0.0  # a constant gene does not hide the z-scoring
    np.testing.assert_array_equal(plots._top_variance(Z, fit=train), Z)


def test_drift_figure_medians_visible_and_psi_label_inside_its_panel(captured):
    """The new batch's boxes are orange: their median lines must not be matplotlib's default orange, and the
    left panel's x label must end before the middle panel (it ran under that panel's tick labels)."""
    from matplotlib.colors import to_rgb

    rng = np.random.default_rng(0)
    feats = [f"BSU{i:05d}" for i in range(15)]
    ref = pd.DataFrame(rng.normal(size=(189, 15)), columns=feats)
    new = pd.DataFrame(rng.normal(0.5, 1, size=(30, 15)), columns=feats)
    drift = pd.DataFrame({"feature": feats + ["prediction"], "kind": ["input"] * 15 + ["prediction"],
                          "psi": rng.uniform(0.2, 1.1, 16), "ks_stat": rng.uniform(0.1, 0.5, 16),
                          "pvalue": rng.uniform(0, 0.1, 16), "qvalue": rng.uniform(0, 0.3, 16),
                          "status": ["ok"] * 12 + ["alert"] * 4})
    truth = rng.normal(size=30)
    plots.drift_figure(ref, new, drift, "BSU16440", "alert", "unused.png", truth=truth, predicted=truth + 0.1)
    fig = captured["fig"]
    renderer = fig.canvas.get_renderer()
    left, middle = fig.axes[0], fig.axes[1]
    label_end = left.xaxis.label.get_window_extent(renderer).x1
    middle_start = min([middle.yaxis.label.get_window_extent(renderer).x0]
                       + [t.get_window_extent(renderer).x0 for t in middle.get_xticklabels() if t.get_text()])
    assert label_end < middle_start
    boxes = [p for p in middle.patches]
    medians = [ln for ln in middle.lines if len(ln.get_xdata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]
               and abs(ln.get_xdata()[1] - ln.get_xdata()[0]) > 0.5]  # a box's full width: its median
    assert len(medians) == len(boxes) == 8
    for box, median in zip(boxes, medians):
        distance = np.abs(np.subtract(to_rgb(box.get_facecolor()), to_rgb(median.get_color()))).sum()
        assert distance > 0.5, (box.get_facecolor(), median.get_color())


def test_drift_figure_draws_each_prediction_interval_and_marks_the_samples_outside(captured):
    """With each sample's half-width, the right panel draws every prediction's interval as a vertical bar (the
    errorbar segments span predicted -+ half), the samples outside in the alert colour, and counts the covered in
    its title."""
    from matplotlib.colors import to_hex

    rng = np.random.default_rng(1)
    feats = ["a", "b"]
    ref = pd.DataFrame(rng.normal(size=(50, 2)), columns=feats)
    new = pd.DataFrame(rng.normal(size=(12, 2)), columns=feats)
    drift = pd.DataFrame({"feature": feats + ["prediction"], "kind": ["input", "input", "prediction"],
                          "psi": [0.1, 0.2, 0.1], "ks_stat": [0.1, 0.2, 0.1], "pvalue": [0.5, 0.4, 0.6],
                          "qvalue": [0.5, 0.5, 0.6], "status": ["ok", "ok", "ok"]})
    truth = np.linspace(-1, 1, 12)
    predicted = truth + np.where(np.arange(12) < 9, 0.1, 1.0)  # the last three far off
    half = np.linspace(0.3, 0.6, 12)
    plots.drift_figure(ref, new, drift, "g", "ok", "unused.png", truth=truth, predicted=predicted,
                       half_width=half, level=0.95)
    ax = captured["fig"].axes[2]
    assert "95% prediction intervals cover 9 of 12" in ax.get_title()
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(bars) == 2
    segments = np.concatenate([c.lines[2][0].get_segments() for c in bars])
    spans = sorted((round(s[0][0], 9), round(s[0][1], 9), round(s[1][1], 9)) for s in segments)
    want = sorted((round(x, 9), round(p - h, 9), round(p + h, 9)) for x, p, h in zip(truth, predicted, half))
    np.testing.assert_allclose(spans, want, atol=1e-9)
    red = [c for c in bars if to_hex(c.lines[0].get_color()) == plots.VERDICT_COLOURS["alert"].lower()]
    assert len(red) == 1 and len(red[0].lines[0].get_xdata()) == 3


@pytest.mark.parametrize("target", ["BSU16440", "ENSG00000141510", "ENSMUSG00000059552.12|Actb"])
def test_observed_vs_predicted_panel_labels_do_not_run_together(captured, target):
    """Three panels side by side: each x label ends before the next panel's begins, whatever the target's id
    (named once, in the title)."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=40)
    pred = pd.DataFrame({"sample": [f"s{i}" for i in range(40)], "split": "test", "observed": obs,
                         "ols": obs + 0.1, "penalized": obs, "mlp": obs - 0.1})
    plots.observed_vs_predicted(pred, ["ols", "penalized", "mlp"], target, "unused.png")
    fig = captured["fig"]
    renderer = fig.canvas.get_renderer()
    labels = [ax.xaxis.label.get_window_extent(renderer) for ax in fig.axes]
    assert all(a.x1 < b.x0 for a, b in zip(labels, labels[1:]))
    assert target in fig._suptitle.get_text()


def _cv_table(means: dict[str, float], sd: float = 0.01, folds: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    return pd.DataFrame([{"target": "t", "model": m, "fold": k, "r2": mu + rng.normal(0, sd)}
                         for m, mu in means.items() for k in range(1, folds + 1)])


def test_cv_figure_axis_is_set_by_the_models_and_the_far_baseline_pinned(captured):
    """R² of 0.97 ± 0.01 against the baseline's 0: on one axis from 0 to 1 the models' boxes were a line. The
    axis now spans the models' folds; the baseline's folds sit at its lower edge with their median written."""
    cv = _cv_table({"ols": 0.97, "penalized": 0.972, "mlp": 0.98, "mean": -0.02})
    plots.cv_metrics(cv, "unused.png")
    ax = captured["fig"].axes[0]
    lo, hi = ax.get_ylim()
    models = cv[cv["model"] != "mean"]["r2"]
    assert lo <= models.min() and hi >= models.max()
    assert hi - lo < 3 * (models.max() - models.min())  # the models fill the axis
    pinned = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) and
              np.allclose(np.asarray(c.get_offsets())[:, 1], lo)]
    assert len(pinned) == 1 and len(pinned[0]) == 5
    median = np.median(cv[cv["model"] == "mean"]["r2"])
    assert any(f"median {median:.3g}" in t.get_text() for t in ax.texts)


def test_cv_figure_keeps_a_near_baseline_on_the_axis(captured):
    """A weak target whose models are close to the baseline: nothing is pinned, every fold is drawn as it is."""
    cv = _cv_table({"ols": 0.05, "mlp": 0.08, "mean": -0.01}, sd=0.05)
    plots.cv_metrics(cv, "unused.png")
    ax = captured["fig"].axes[0]
    lo, hi = ax.get_ylim()
    assert lo <= cv["r2"].min() and hi >= cv["r2"].max()
    assert not ax.texts
