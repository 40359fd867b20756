"""The report's captions and labels describe what each figure and table of a run holds.

Two tiny runs: a classification run (a three-class sample-sheet target and a binarized gene, with a new
batch and its labels; its logistic regressions are also held to statsmodels here, the run doubling as the
classification end-to-end test) and a regression run whose targets are ids with markup and quotes (``<b>x</b>``, ``q"uote``), with
``ols.alpha: 0.07``, two normalization steps and regulator recovery. The expected numbers and names are
recomputed here from the run's own tables (out-of-fold predictions, labels, splits, edges) and the config,
never taken from the report's code.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from reportpage import results as _results
from reportpage import script_var as _script_var
from test_workflow import beta_binomial_cdf, make_dataset, run_snakemake, write_config

pytestmark = pytest.mark.slow

SMALL_MLP = {"hidden": [4], "epochs": 20, "patience": 5, "batch_size": 16, "ensemble": 1}
WORD_JOINER = "\u2060"


def _report(root: Path) -> tuple[str, dict]:
    run_snakemake(root, "--report", "results/report.html")
    page = (root / "results/report.html").read_text(encoding="utf-8")
    assert "System Message" not in page  # docutils marks broken reStructuredText in captions this way
    return page, _results(page)


def _caption(res: dict, path: str) -> str:
    """The caption of ``path`` as text: tags dropped, entities decoded, lines joined."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", res[path]["caption"])).split())


def _literals(res: dict, path: str) -> set[str]:
    """The ``literal`` texts of a caption (column names and values are written so)."""
    return {html.unescape(re.sub(r"<[^>]+>", "", m))
            for m in re.findall(r'<(?:tt|code) class="docutils literal[^>]*>(.*?)</(?:tt|code)>', res[path]["caption"], re.S)}


def _sentence_number(x: float) -> str:
    """A number as the captions write it: three significant digits, a real minus sign."""
    if x == 0:
        return "0"
    x = float(f"{x:.3g}")  # 0.09996 is 0.100
    return f"{x:.{max(2 - math.floor(math.log10(abs(x))), 0)}f}".replace("-", "\u2212")


# --------------------------------------------------------------------------- classification
def _classes(X: np.ndarray, seed: int) -> np.ndarray:
    """Three classes of a noisy score of G2 and G3 (ordered lo < mid < hi, named so that sorting differs)."""
    score = X[:, 2] + 0.5 * X[:, 3] + np.random.default_rng(seed).normal(0, 0.5, len(X))
    return np.where(score > 12.4, "hi", np.where(score > 11.6, "mid", "lo"))


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions_cls")
    data = make_dataset(root)
    new = make_dataset(root, seed=8, name="new.tsv", prefix="N")
    pd.DataFrame({"sample": data["samples"], "cls": _classes(data["X"], 1)}).to_csv(root / "data/sheet.tsv",
                                                                                    sep="\t", index=False)
    # the new batch's labels: its own sample sheet's cls column, and G4 measured (binarized at the same threshold)
    pd.DataFrame({"sample": new["samples"], "cls": _classes(new["X"], 2)}).to_csv(root / "data/new_sheet.tsv",
                                                                                 sep="\t", index=False)
    write_config(root, task="classification", sample_sheet="data/sheet.tsv", targets=["cls", "G4"],
                 binarize={"G4": 8.0}, models=["ols", "mlp"], mlp={**SMALL_MLP, "ensemble": 2},
                 search={"mlp": {"hidden": [[4]]}}, new_batches={"fresh": ["data/new.tsv"]},
                 new_batch_sheets={"fresh": "data/new_sheet.tsv"})
    run_snakemake(root)
    page, res = _report(root)
    return root, page, res


def _fold_log_loss(root: Path, model: str, target: str) -> pd.Series:
    """Each fold's log-loss, recomputed from the model's out-of-fold class probabilities."""
    cv = pd.read_csv(root / f"results/{model}/{target}/cv_predictions.tsv", sep="\t", dtype={"observed": str})
    p_true = np.array([row[f"p[{row['observed']}]"] for _, row in cv.iterrows()], dtype=float)
    return pd.Series(-np.log(np.clip(p_true, 1e-15, 1.0))).groupby(cv["fold"].to_numpy()).mean()


def test_cv_figure_of_classification_shows_log_loss(classification_run):
    """The cross-validation figure and its caption use the log-loss (R² does not exist for classes): the
    figure draws every fold, and the caption's mean (sd) per model are the folds' log-losses."""
    root, _, res = classification_run
    path = "results/plots/cv_metrics.png"
    assert res[path]["labels"]["figure"] == "cross-validation log-loss per model"
    caption = _caption(res, path)
    assert "log-loss" in caption and "R²" not in caption and "not available" not in caption, caption
    for target in ("cls", "G4"):
        for model in ("ols", "mlp"):
            folds = _fold_log_loss(root, model, target)
            assert len(folds) == 3
            stated = (f"{model} {_sentence_number(folds.mean())} (sd {_sentence_number(folds.std(ddof=1))}, "
                      f"3 folds)")
            assert stated in caption, (stated, caption)
    # the figure has the models' fold dots (OLS blue #0072B2, network orange #D55E00); drawn with R², it had none
    img = image.imread(root / path)[..., :3]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    assert ((r > 0.75) & (g > 0.3) & (g < 0.55) & (b < 0.3)).sum() > 20
    assert ((b > 0.6) & (r < 0.25) & (g > 0.3) & (g < 0.6)).sum() > 20


def test_classification_table_captions_describe_the_tables(classification_run):
    """Every column of the logistic regression's coefficient and fit tables is named in its caption, the
    classes (from labels.tsv, sorted, the first the reference) too, and nothing of OLS is left."""
    root, _, res = classification_run
    labels = pd.read_csv(root / "results/data/labels.tsv", sep="\t", dtype=str)
    for target in ("cls", "G4"):
        coefs = pd.read_csv(root / f"results/ols/{target}/coefficients.tsv", sep="\t", nrows=1)
        caption = _caption(res, f"results/ols/{target}/coefficients.tsv")
        assert set(coefs.columns) <= _literals(res, f"results/ols/{target}/coefficients.tsv"), caption
        assert "log odds" in caption and "t statistic" not in caption and "units of the target" not in caption
        classes = sorted(labels[target].unique())
        if len(classes) == 2:
            assert f"log odds of class {classes[1]} against the reference class {classes[0]}" in caption, caption
        else:
            assert f"reference class {classes[0]} (term[class])" in caption, caption
        fit = pd.read_csv(root / f"results/ols/{target}/fit.tsv", sep="\t")
        caption = _caption(res, f"results/ols/{target}/fit.tsv")
        assert set(fit.columns) <= _literals(res, f"results/ols/{target}/fit.tsv"), caption
        assert "condition number" not in caption and "adjusted R²" not in caption and "F-test" not in caption
        nested = _caption(res, f"results/ols/{target}/nested_tests.tsv")
        assert "likelihood-ratio" in nested and "F-test" not in nested
        diag = _caption(res, f"results/ols/{target}/diagnostics.tsv")
        assert "variance inflation factor" in diag and "Breusch" not in diag
    assert "> 8" in _caption(res, "results/ols/G4/coefficients.tsv")  # a class label with markup characters


def test_classification_figure_captions(classification_run):
    root, _, res = classification_run
    for target in ("cls", "G4"):
        obs = _caption(res, f"results/plots/{target}/observed_vs_predicted.png")
        assert "Confusion matrices" in obs and "accuracy" in obs and "AUROC" in obs
        assert "dashed line" not in obs and "R²" not in obs and "mean squared error" not in obs
        assert "logistic regression" in obs and "OLS regression" not in obs
        loss = _caption(res, f"results/plots/{target}/loss.png")
        assert "cross-entropy" in loss and "accuracy" in loss and "data scale" not in loss
        drift = _caption(res, f"results/deploy/fresh/{target}/drift.png")
        assert "measured expression" not in drift and "accuracy is checked where the batch holds class labels" in drift
        assert res[f"results/deploy/fresh/{target}/drift.png"]["labels"]["figure"] == "drift"
        coef_fig = _caption(res, f"results/plots/{target}/coefficients.png")
        assert "Logistic regression coefficients" in coef_fig and "OLS" not in coef_fig
        assert "correlation ratio" in coef_fig  # the predictors of a class target are ranked by eta


def test_classification_metrics_caption_and_baseline(classification_run):
    """The metrics caption names the classification metrics, and what it says of the ``mean`` baseline holds:
    it predicts the training split's most frequent class (accuracy: that class's share of the split) and ranks
    no sample above another (AUROC 0.5)."""
    root, _, res = classification_run
    caption = _caption(res, "results/compare/metrics.tsv")
    assert {"accuracy", "auroc", "log_loss", "mean"} <= _literals(res, "results/compare/metrics.tsv"), caption
    assert "class shares" in caption
    assert "mean squared error, mean absolute error" not in caption
    labels = pd.read_csv(root / "results/data/labels.tsv", sep="\t", dtype=str).set_index("sample")
    split = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    metrics = pd.read_csv(root / "results/compare/metrics.tsv", sep="\t").set_index(["target", "model", "split"])
    for target in ("cls", "G4"):
        y = labels.loc[split.index, target]
        train = y[split == "train"]
        shares = train.value_counts()
        majority = sorted(shares.index[shares == shares.max()])[0]
        for part in ("train", "test"):
            row = metrics.loc[(target, "mean", part)]
            np.testing.assert_allclose(row["accuracy"], (y[split == part] == majority).mean(), rtol=1e-12)
            np.testing.assert_allclose(row["auroc"], 0.5, rtol=1e-12)
    assert "logistic regression" in _caption(res, "results/compare/metrics.tsv")  # the facts name the models


def test_classification_run_matches_statsmodels_and_judges_a_labelled_batch(classification_run):
    """task: classification end to end, with a three-class sample-sheet label and a binarized gene: the logistic
    regressions equal statsmodels' MNLogit and Logit on the training split, the comparison's metrics and the
    monitor's verdict on a batch with labels are recomputed from the written predictions, and the conformal
    prediction sets from the cross-validation predictions."""
    import json

    import statsmodels.api as sm

    root, page, _ = classification_run
    res = root / "results"
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0).T
    sheet = pd.read_csv(root / "data/sheet.tsv", sep="\t", dtype={"sample": str}).set_index("sample")
    new = pd.read_csv(root / "data/new.tsv", sep="\t", index_col=0).T
    new_sheet = pd.read_csv(root / "data/new_sheet.tsv", sep="\t", dtype={"sample": str}).set_index("sample")
    truths = {"cls": sheet["cls"], "G4": pd.Series(np.where(expr["G4"] > 8, "> 8", "<= 8"), index=expr.index)}
    new_truths = {"cls": new_sheet["cls"], "G4": pd.Series(np.where(new["G4"] > 8, "> 8", "<= 8"), index=new.index)}
    labels = pd.read_csv(res / "data/labels.tsv", sep="\t", dtype=str).set_index("sample")
    for target, truth in truths.items():
        assert (labels.loc[truth.index, target] == truth).all()
    sp = pd.read_csv(res / "data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    train = sp.index[sp == "train"]
    # stratified by the first target: each class's share of the test split follows the whole data's
    shares = truths["cls"].value_counts(normalize=True)
    test_shares = truths["cls"][sp.index[sp == "test"]].value_counts(normalize=True)
    assert (shares - test_shares.reindex(shares.index, fill_value=0)).abs().max() < 0.1
    # the logistic regressions: statsmodels on the training split and the run's predictors (rank order)
    preds = pd.read_csv(res / "data/predictors.tsv", sep="\t")
    for target, truth in truths.items():
        genes = preds[preds["target"] == target].sort_values("rank")["gene"].tolist()
        A = sm.add_constant(expr.loc[train, genes].to_numpy())
        ours = pd.read_csv(res / f"ols/{target}/coefficients.tsv", sep="\t").set_index("term")
        classes = sorted(truth.unique())
        codes = truth[train].map({c: k for k, c in enumerate(classes)}).to_numpy()
        if len(classes) == 2:
            ref = sm.Logit(codes.astype(float), A).fit(disp=0)
            rows = [[f"{t}" for t in ["const", *genes]]]
            params, bse = ref.params[:, None], ref.bse[:, None]
        else:
            ref = sm.MNLogit(codes, A).fit(disp=0, method="newton")
            rows = [[f"{t}[{c}]" for t in ["const", *genes]] for c in classes[1:]]
            params, bse = ref.params, ref.bse
        assert len(ours) == sum(map(len, rows))
        for k, names in enumerate(rows):
            np.testing.assert_allclose(ours.loc[names, "coef"], params[:, k], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(ours.loc[names, "std_err"], bse[:, k], rtol=1e-5)
            np.testing.assert_allclose(ours.loc[names, "odds_ratio"], np.exp(params[:, k]), rtol=1e-6)
    card = json.loads((res / "models/G4/ols/card.json").read_text())
    assert card["binarize_threshold"] == 8.0
    assert "binarize_threshold" not in json.loads((res / "models/cls/ols/card.json").read_text())
    # the monitor judged the batch from its labels: log-loss from its predictions and the truth; the conformal
    # sets (level 1 - ols.alpha) hold the classes whose probability reaches the ceil(0.95 (n + 1))-th largest
    # p(own class) of the chosen model's cross-validation predictions (1 - (1 - p) can round above p)
    for target, truth in new_truths.items():
        batch = pd.read_csv(res / f"deploy/fresh/{target}/predictions.tsv", sep="\t", dtype={"sample": str})
        batch = batch.set_index("sample").loc[truth.index]
        p_true = np.array([batch.loc[s, f"p[{c}]"] for s, c in truth.items()])
        perf = pd.read_csv(res / f"deploy/fresh/{target}/performance.tsv", sep="\t").set_index("metric")
        np.testing.assert_allclose(perf.loc["log_loss", "new_batch"], -np.mean(np.log(p_true)), rtol=1e-9)
        probs = batch[[c for c in batch.columns if c.startswith("p[")]]
        assert (batch["predicted"].astype(str) == probs.idxmax(axis=1).str[2:-1]).all()
        np.testing.assert_allclose(perf.loc["accuracy", "new_batch"],
                                   np.mean(batch["predicted"].astype(str).to_numpy() == truth.to_numpy()),
                                   rtol=1e-12)
        assert json.loads((res / f"deploy/fresh/{target}/verdict.json").read_text())["truth_given"]
        best = json.loads((res / f"models/{target}/best.json").read_text())["model"]
        cvp = pd.read_csv(res / f"{best}/{target}/cv_predictions.tsv", sep="\t", dtype={"observed": str},
                          float_precision="round_trip")
        classes = [c[2:-1] for c in cvp.columns if c.startswith("p[")]
        own = np.array([cvp.loc[i, f"p[{c}]"] for i, c in enumerate(cvp["observed"])])
        threshold = -np.sort(-own)[int(np.ceil(0.95 * (len(own) + 1))) - 1]
        assert threshold == pytest.approx(1 - np.sort(1 - own)[int(np.ceil(0.95 * (len(own) + 1))) - 1], abs=1e-15)
        card = json.loads((res / f"models/{target}/{best}/card.json").read_text())
        assert card["prediction_set"]["threshold"] == threshold
        sets = [[c for c in classes if batch.loc[s, f"in_set[{c}]"] == 1] for s in truth.index]
        assert (batch["set_size"] == [len(st) for st in sets]).all()
        assert sets == [[c for c in classes if batch.loc[s, f"p[{c}]"] >= threshold] for s in truth.index]
        k = sum(c in st for c, st in zip(truth, sets))
        row = perf.loc["set_coverage (95%)"]
        assert row["new_batch"] == pytest.approx(k / len(truth), abs=1e-12)
        # beta-binomial: the sets' coverage is calibrated on the cross-validation samples' own-class probabilities
        assert card["prediction_set"]["n_residuals"] == len(own)
        assert row["p_value"] == pytest.approx(beta_binomial_cdf(k, len(truth), len(own), 0.95), rel=1e-9)
    # the comparison: the networks' history (two networks an ensemble), the metrics from the written predictions
    hist = pd.read_csv(res / "mlp/cls/history.tsv", sep="\t")
    assert list(hist.columns) == ["member", "epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]
    assert sorted(hist["member"].unique()) == [1, 2]
    pred = pd.read_csv(res / "compare/predictions.tsv", sep="\t", dtype={"observed": str, "ols": str, "mlp": str})
    metrics = pd.read_csv(res / "compare/metrics.tsv", sep="\t").set_index(["target", "model", "split"])
    assert set(metrics.index.get_level_values("model")) == {"ols", "mlp", "mean"}
    assert metrics[["mse", "mae", "r2", "pearson"]].isna().all().all()
    sub = pred[(pred["target"] == "G4") & (pred["split"] == "test")]
    y = (sub["observed"] == "> 8").to_numpy()
    for model in ("ols", "mlp"):
        p1 = sub[f"{model}:p[> 8]"].to_numpy()
        row = metrics.loc[("G4", model, "test")]
        np.testing.assert_allclose(row["accuracy"], np.mean((p1 > 0.5) == y), rtol=1e-12)
        np.testing.assert_allclose(row["log_loss"], -np.mean(np.log(np.where(y, p1, 1 - p1))), rtol=1e-9)
        pos, neg = p1[y], p1[~y]
        np.testing.assert_allclose(row["auroc"], np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg]),
                                   rtol=1e-12)
    summary = pd.read_csv(res / "compare/summary.tsv", sep="\t").set_index("target")
    assert (summary["metric"] == "log_loss").all()
    cvm = pd.read_csv(res / "compare/cv_metrics.tsv", sep="\t")
    for target in truths:
        for m in ("ols", "mlp", "mean"):
            mean_ll = cvm[(cvm["target"] == target) & (cvm["model"] == m)]["log_loss"].mean()
            np.testing.assert_allclose(summary.loc[target, m], mean_ll, rtol=1e-12)
    assert "logistic regression" in page


# --------------------------------------------------------------------------- ids, levels, normalization, edges
# '</script>' would end the report's script block and a backslash break its JSON if a job's params (which the
# report shows) held them verbatim: the workflow passes such ids encoded (cli_text in common.smk)
TARGET_IDS = ["</script><b>x</b>", 'q"uo\\te']


@pytest.fixture(scope="module")
def named_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions_ids")
    make_dataset(root)
    make_dataset(root, seed=8, name="new.tsv", prefix="N")
    for name in ("expr.tsv", "new.tsv"):
        expr = pd.read_csv(root / "data" / name, sep="\t", index_col=0)
        expr.rename(index={"G0": TARGET_IDS[0], "G1": TARGET_IDS[1]}).to_csv(root / "data" / name, sep="\t",
                                                                             index_label="gene")
    genes = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0).index
    gold = pd.DataFrame(0, index=TARGET_IDS, columns=list(genes))
    gold.loc[TARGET_IDS[0], ["G2", "G3"]] = 1
    gold.loc[TARGET_IDS[1], ["G4", "G5", "G6"]] = 1
    gold.to_csv(root / "data/gold.tsv", sep="\t", index_label="target")
    write_config(root, targets=TARGET_IDS, predictors=["G2", "G3", "G4", "G5", "G6", "G7"], mlp=SMALL_MLP,
                 search={"mlp": {"hidden": [[4]]}, "penalized": {"n_alphas": 4}},
                 ols={"alpha": 0.07, "gene_sets": {"set1": ["G6", "G7"]}}, normalization=["log1p", "zscore"],
                 gold_standard="data/gold.tsv", new_batches={"fresh": ["data/new.tsv"]})
    run_snakemake(root)
    page, res = _report(root)
    return root, page, res


def test_captions_and_labels_show_target_ids(named_run):
    """Every caption of a target's results names the target by its id, escaped, not by its directory name;
    so do the report's labels and subcategories (as text: no markup, no end of the report's script)."""
    root, page, res = named_run
    targets = pd.read_csv(root / "results/data/targets.tsv", sep="\t", dtype=str)
    directory = dict(zip(targets["target"], targets["directory"]))
    assert set(directory) == set(TARGET_IDS)
    files = ["ols/{d}/coefficients.tsv", "ols/{d}/fit.tsv", "ols/{d}/diagnostics.tsv", "ols/{d}/nested_tests.tsv",
             "penalized/{d}/coefficients.tsv", "penalized/{d}/search.tsv", "mlp/{d}/search.tsv",
             "plots/{d}/loss.png", "plots/{d}/coefficients.png", "plots/{d}/observed_vs_predicted.png",
             "plots/{d}/diagnostics.png", "deploy/fresh/{d}/drift.png"]
    for target, d in directory.items():
        assert d != target
        for f in files:
            path = f"results/{f.format(d=d)}"
            caption = _caption(res, path)
            assert target in caption, (path, caption)
            shown = caption.replace(f"results/deploy/fresh/{d}/", "")  # the drift caption's directory path
            assert d not in shown, (path, caption)
            assert html.escape(target, quote=False) in res[path]["caption"].replace("&quot;", '"'), path
            label = res[path]["labels"]["target"]
            assert label.replace(WORD_JOINER, "") == target and "</" not in label, (path, label)
    assert "<b>x</b>" not in "".join(r["caption"] for r in res.values())
    # the jobs' params (shown in the report's results script block, which _results parsed as JSON up to its
    # first '</script') hold neither id verbatim
    params = " ".join(r["job_properties"]["params"] for r in res.values())
    assert "gexpred-enc:" in params and "</" not in params and "q\"uo\\te" not in params
    subcategories = {s for subs in _script_var(page, "categories").values() for s in subs}
    assert {t.replace("<", "<" + WORD_JOINER) for t in TARGET_IDS} <= subcategories
    assert not set(directory.values()) & subcategories


def test_confidence_level_and_normalization_in_words(named_run):
    """ols.alpha 0.07: the coefficient figure's label and the start page say 93 %, not 95 % or
    0.9299999999999999; the normalization steps read as words, not a Python list."""
    root, page, res = named_run
    level = f"{100 * (1 - 0.07):.4g}%"
    assert level == "93%"
    for path, r in res.items():
        if path.endswith("/coefficients.png"):
            assert r["labels"]["figure"] == f"coefficients with {level} CI", r["labels"]
            assert f"{level} confidence" in _caption(res, path)
    start = " ".join(html.unescape(_script_var(page, "workflow_desc")).split())
    assert f"{level} confidence intervals" in start and "0.9299" not in start
    assert "log1p + zscore" in start and "['log1p', 'zscore']" not in start


def test_edges_caption_counts_the_rows_written(named_run):
    """A tiny network has fewer pairs than recovery.top_edges (10,000): the caption says how many edges.tsv
    holds."""
    root, _, res = named_run
    n = len(pd.read_csv(root / "results/recovery/edges.tsv", sep="\t"))
    assert 0 < n < 10000
    caption = _caption(res, "results/recovery/edges.tsv")
    assert f"the {n} best-ranked" in caption and "10000 best-ranked" not in caption, caption
    assert "fewer than recovery.top_edges, 10,000" in caption


def test_regression_cv_figure_keeps_r2(named_run):
    """Regression is unchanged: the cross-validation figure shows R², and the caption's numbers are the folds' R²
    recomputed from OLS's out-of-fold predictions."""
    root, _, res = named_run
    path = "results/plots/cv_metrics.png"
    assert res[path]["labels"]["figure"] == "cross-validation R² per model"
    caption = _caption(res, path)
    assert "Cross-validated R²" in caption
    targets = pd.read_csv(root / "results/data/targets.tsv", sep="\t", dtype=str)
    for d, model in itertools.product(targets["directory"],
                                      ("ols", "penalized", "mlp")):
        cv = pd.read_csv(root / f"results/{model}/{d}/cv_predictions.tsv", sep="\t")
        centred = cv["observed"] - cv.groupby("fold")["observed"].transform("mean")
        r2 = 1 - ((cv["observed"] - cv["predicted"]) ** 2).groupby(cv["fold"]).sum() / (centred**2).groupby(
            cv["fold"]).sum()
        stated = f"{model} {_sentence_number(r2.mean())} (sd {_sentence_number(r2.std(ddof=1))}, 3 folds)"
        assert stated in caption, (stated, caption)
