"""The report's captions and labels describe what each figure and table of a run holds.

Two tiny runs: a classification run (a three-class sample-sheet target and a binarized gene, with a new
batch) and a regression run whose targets are ids with markup and quotes (``<b>x</b>``, ``q"uote``), with
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

from test_report_browser import _results, _script_var
from test_workflow import make_dataset, run_snakemake, write_config

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
@pytest.fixture(scope="module")
def classification_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions_cls")
    data = make_dataset(root)
    X = data["X"]
    score = X[:, 2] + 0.5 * X[:, 3] + np.random.default_rng(1).normal(0, 0.5, len(X))
    cls = np.where(score > 12.4, "hi", np.where(score > 11.6, "mid", "lo"))
    make_dataset(root, seed=8, name="new.tsv", prefix="N")
    pd.DataFrame({"sample": data["samples"], "cls": cls}).to_csv(root / "data/sheet.tsv", sep="\t", index=False)
    write_config(root, task="classification", sample_sheet="data/sheet.tsv", targets=["cls", "G4"],
                 binarize={"G4": 8.0}, models=["ols", "mlp"], mlp=SMALL_MLP, search={"mlp": {"hidden": [[4]]}},
                 new_batches={"fresh": ["data/new.tsv"]})
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
