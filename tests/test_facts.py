"""The report's sentences: numbers recomputed here from the tables, names escaped for reStructuredText."""

from __future__ import annotations

import docutils.core
import numpy as np
import pandas as pd
import pytest

from gexpred import facts

HOSTILE = "<img src=x onerror=alert(1)>"
RST_TRAPS = ["`x`_", "*bold*", "|sub|", "a_", ":role:`x`", "[1]_", ".. raw:: html", "\\", "$x^2$", HOSTILE,
             "__init__", "- item", "1. item", "::"]


def to_html(rst_text: str) -> str:
    parts = docutils.core.publish_parts(rst_text, writer="html",
                                        settings_overrides={"report_level": 1, "halt_level": 5})
    return parts["body"]


@pytest.mark.parametrize("name", RST_TRAPS)
def test_rst_shows_names_as_text(name):
    import html

    out = to_html(f"Gene {facts.rst(name)} here.")
    assert "system-message" not in out
    assert f"Gene {html.escape(name, quote=False)} here." in html.unescape(out).replace(name, html.escape(
        name, quote=False)) or f"Gene {name} here." in html.unescape(out)
    assert "<img" not in out


def metrics_frame():
    rows = []
    for target, vals in {"G0": {"ols": 0.2, "mlp": 0.25, "mean": 1.0}, HOSTILE: {"ols": 1.2, "mlp": 0.9, "mean": 1.0}}.items():
        for model, mse in vals.items():
            for split in ("train", "test"):
                rows.append({"target": target, "model": model, "split": split, "n": 15 if split == "test" else 45,
                             "mse": mse, "mae": mse / 2, "r2": 1 - mse, "pearson": 0.9})
    return pd.DataFrame(rows)


def test_comparison_text_best_and_margin():
    text = facts.comparison_text(metrics_frame(), "G0")
    assert text.startswith("On the test split (15 samples) OLS regression has the lowest mean squared "
                           "error, 0.200,")
    assert "0.250 for the neural network (OLS regression: 20% lower)" in text  # (0.25 - 0.2) / 0.25
    assert "1.00 for the training mean (OLS regression: 80% lower)" in text


def test_comparison_rows_verdicts():
    rows = facts.comparison_rows(metrics_frame()).set_index(["target", "model"])
    assert rows.loc[("G0", "ols"), "test_verdict"] == "best: mse 20% below mlp"
    assert rows.loc[("G0", "mlp"), "test_verdict"] == "mse 25% above ols"  # (0.25 - 0.2) / 0.2
    assert rows.loc[("G0", "mean"), "test_verdict"] == "baseline"
    assert rows.loc[(HOSTILE, "ols"), "test_verdict"] == "mse 33% above mlp; no better than the training mean"
    assert list(rows.reset_index().columns[:4]) == ["target", "model", "test_verdict", "test_n"]


def test_comparison_rows_with_cv_and_summary():
    cv = pd.DataFrame([{"target": "G0", "model": m, "fold": k, "mse": v + 0.01 * k, "r2": 1 - v}
                       for m, v in (("ols", 0.3), ("mlp", 0.2), ("mean", 1.0)) for k in range(1, 4)])
    summary = pd.DataFrame({"target": ["G0"], "best_model": ["mlp"], "verdict": ["network"], "p_value": [0.01],
                            "statement": ["Best by 3-fold CV: mlp."]})
    rows = facts.comparison_rows(metrics_frame(), cv, summary).set_index(["target", "model"])
    np.testing.assert_allclose(rows.loc[("G0", "mlp"), "cv_mse_mean"], 0.22)
    np.testing.assert_allclose(rows.loc[("G0", "mlp"), "cv_mse_sd"], 0.01)
    assert rows.loc[("G0", "mlp"), "cv_verdict"] == "chosen: best mean CV mse"
    assert rows.loc[("G0", "ols"), "cv_verdict"] == "CV mse 45% above mlp"  # (0.32 - 0.22) / 0.22
    assert rows.loc[("G0", "ols"), "network_vs_regression"] == "network (p = 0.01)"


def test_comparison_rows_choose_as_the_summary_where_a_fold_has_no_metric():
    """A model with a NaN fold (a NaN prediction) has no mean CV metric and cannot be chosen, as summary.tsv's
    best_model and the deployed bundle judge it. The sortable table averaged its other folds instead: the network,
    lowest on 4 of 5 folds, read 'chosen: best mean CV mse' beside cv_folds 5 while summary.tsv chose OLS."""
    folds = np.arange(1, 6)
    mse = {"ols": 0.30 + 0.01 * folds, "mlp": 0.20 + 0.01 * folds, "mean": 1.0 + 0.01 * folds}
    mse["mlp"][2] = np.nan
    cv = pd.DataFrame([{"target": "G0", "model": m, "fold": int(k), "n": 9, "mse": v, "r2": 1 - v}
                       for m, vals in mse.items() for k, v in zip(folds, vals)])
    # the choice over the models with a metric on every fold, in numpy
    finite = {m: float(np.mean(v)) for m, v in mse.items() if np.all(np.isfinite(v))}
    chosen = min(finite, key=finite.get)
    assert chosen == "ols"
    rows = facts.comparison_rows(metrics_frame(), cv).set_index(["target", "model"])
    assert rows.loc[("G0", chosen), "cv_verdict"] == "chosen: best mean CV mse"
    assert np.isnan(rows.loc[("G0", "mlp"), "cv_mse_mean"]) and np.isnan(rows.loc[("G0", "mlp"), "cv_mse_sd"])
    assert rows.loc[("G0", "mlp"), "cv_verdict"] == "not chosen: CV mse undefined on some fold (a NaN prediction)"
    np.testing.assert_allclose(rows.loc[("G0", "ols"), "cv_mse_mean"], finite["ols"])
    np.testing.assert_allclose(rows.loc[("G0", "ols"), "cv_mse_sd"], np.std(mse["ols"], ddof=1))
    assert rows.loc[("G0", "mean"), "cv_verdict"] == "baseline"


def test_build_facts_counts_and_sentences():
    dropped = pd.DataFrame({"kind": ["gene", "gene", "sample"], "id": ["g1", HOSTILE, "s9"], "file": "m.tsv",
                            "reason": ["constant", "constant", "not in sample sheet"]})
    splits = pd.DataFrame({"sample": [f"s{i}" for i in range(60)], "split": ["train"] * 45 + ["test"] * 15})
    targets = pd.DataFrame({"target": ["G0", HOSTILE], "directory": ["G0", "img-src-x_abc123"]})
    fits = pd.DataFrame({"target": ["G0", HOSTILE], "r2": [0.9, 0.5],
                         "failed_assumptions": ["none", "heteroskedastic residuals (Breusch-Pagan p = 0.001)"]})
    f = facts.build_facts(n_samples=60, n_genes=12, dropped=dropped, sources=["data/m.tsv"], splits=splits,
                          targets=targets, metrics=metrics_frame(), fits=fits, test_fraction=0.25, seed=3)
    assert f["n_train"] == 45 and f["n_test"] == 15 and f["n_dropped_genes"] == 2 and f["n_dropped_samples"] == 1
    assert f["data"].startswith("60 samples and 12 genes were used")
    assert "2 genes (e.g. g1, " in f["data"] and "2 constant" in f["data"]
    assert "45 training samples and 15 test samples (test fraction 0.25, seed 3)" in f["split"]
    assert f["targets"]["G0"]["best_model"] == "ols" and f["targets"]["img-src-x_abc123"]["best_model"] == "mlp"
    assert f["targets"]["G0"]["assumptions"] == "No OLS assumption check fails on the training split."
    assert "1 OLS assumption check fails" in f["targets"]["img-src-x_abc123"]["assumptions"]
    assert f["assumptions"].startswith("OLS assumption checks fail for 1 of 2 targets")
    for text in (f["data"], f["best_models"], f["targets"]["img-src-x_abc123"]["assumptions"]):
        out = to_html(text)
        assert "system-message" not in out and "<img" not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in to_html(f["best_models"])


def _interactions(strengths, h2s, verdicts, q=None):
    n = len(strengths)
    return pd.DataFrame({"gene_a": [f"a{i}" for i in range(n)], "gene_b": [f"b{i}" for i in range(n)], "h2": h2s,
                         "h_strength": strengths, "rank": np.arange(1, n + 1), "f_stat": np.nan, "lr_stat": np.nan,
                         "df_num": 1.0, "df_den": 170.0, "p_value": np.nan if q is None else q,
                         "q_value": np.nan if q is None else q, "verdict": verdicts})


def test_interaction_sentence_names_the_configured_threshold_and_small_h2():
    """The 'no interaction' sentence said 'by a twentieth of the spread of its predictions' whatever
    importance.min_strength was (a twentieth is the default 0.05); with 0.2 the pairs of strength 0.1-0.15 were
    called negligible while the report spoke of a twentieth. A suggested pair's H² of 0.004 read 'H² 0.00'."""
    splits = pd.DataFrame({"sample": [f"s{i}" for i in range(60)], "split": ["train"] * 45 + ["test"] * 15})
    kw = dict(n_samples=60, n_genes=12, dropped=pd.DataFrame(columns=["kind", "id", "file", "reason"]),
              sources=["m.tsv"], splits=splits, targets=pd.DataFrame({"target": ["G0"], "directory": ["G0"]}),
              metrics=metrics_frame())
    min_strength = 0.2
    table = _interactions([0.15, 0.1], [0.3, 0.2], ["negligible", "negligible"])
    assert (table["h_strength"] < min_strength).all()  # every pair below the configured threshold
    text = facts.build_facts(interactions={"G0": table}, min_strength=min_strength, **kw)["targets"]["G0"]["interactions"]
    shown = " ".join(to_html(text).replace("<p>", "").replace("</p>", "").split())
    assert "by 20 % of the spread of its predictions" in shown and "twentieth" not in shown, shown
    suggested = _interactions([0.06], [0.004], ["not confirmed"], q=[0.5])
    text = facts.build_facts(interactions={"G0": suggested}, **kw)["targets"]["G0"]["interactions"]
    assert "H² 0.004, strength 0.06" in " ".join(to_html(text).split()), text


def test_comparison_rows_keep_model_order_and_lead_with_verdicts():
    cv = pd.DataFrame([{"target": t, "model": m, "fold": 1, "mse": 0.5, "r2": 0.5}
                       for t in ("G0", HOSTILE) for m in ("ols", "mlp", "mean")])
    summary = pd.DataFrame({"target": ["G0", HOSTILE], "best_model": "ols", "verdict": "regression",
                            "p_value": [0.01, 0.02], "statement": "x"})
    rows = facts.comparison_rows(metrics_frame(), cv, summary)
    assert list(rows.columns[:5]) == ["target", "model", "cv_verdict", "test_verdict", "network_vs_regression"]
    assert rows["model"].tolist() == ["ols", "mlp", "mean"] * 2
    assert rows["target"].tolist() == ["G0"] * 3 + [HOSTILE] * 3


def test_importance_text_names_each_models_top_predictors_escaped():
    from gexpred.facts import importance_text
    from gexpred.importance import importance_table

    rises = np.array([[0.5, 0.1, 0.0], [0.7, 0.3, 0.02]])
    tabs = {"ols": importance_table(["a*", "b", "c"], rises), "mlp": importance_table(["a*", "b", "c"], rises * 2)}
    text = importance_text(tabs, k=2)
    assert text.index("the neural network") < text.index("OLS regression")  # the network first
    assert "a\\*" in text and text.count(" ± ") == 1 + 4  # the header, and two predictors per model
    assert "1.20 ± 0.283" in text  # mean and sd over folds of 2 * [0.5, 0.7]
    html = docutils.core.publish_string(text, writer="html").decode()
    assert "System Message" not in html and "a*" in html


def test_recovery_top_text_counts_the_top_pairs_by_kind():
    """Of the top n_known pairs: known edges, pairs of regulators the gold standard knows no target of (named,
    most pairs first, escaped), the other pairs, and pairs it cannot look up; counted here from the table."""
    rng = np.random.default_rng(3)
    n = 40
    regs = rng.choice(["r1", "r2", "<b>x</b>", "r*4", "r5"], size=n + 10)
    reg_known = {"r1": 3, "r2": 5, "<b>x</b>": 0, "r*4": 0, "r5": 2}
    known = np.where(np.isin(regs, ["<b>x</b>", "r*4"]), 0, rng.integers(0, 2, size=n + 10)).astype(object)
    known[20] = pd.NA  # a pair the gold standard has no row for (rank 30: in the top)
    edges = pd.DataFrame({"rank": np.arange(1, n + 11)[::-1], "target": [f"t{i}" for i in range(n + 10)],
                          "regulator": regs, "known": pd.array(known, dtype="Int64"),
                          "regulator_known_targets": [reg_known[r] for r in regs]})
    text = facts.recovery_top_text(edges, n, "clr_mean")
    top = edges.sort_values("rank").head(n)
    hits = int((top["known"] == 1).sum())
    lookup = top["known"].notna()
    unann = top[lookup & (top["regulator_known_targets"] == 0)]
    rest = int(lookup.sum()) - hits - len(unann)
    assert f"The top {n} pairs" in text and f"hold {hits} known edge" in text
    assert f"{len(unann)} pairs belong to 2 regulators" in text
    first, second = unann["regulator"].value_counts().index[:2]
    assert text.index(facts.rst(first)) < text.index(facts.rst(second))
    assert facts.rst("<b>x</b>") in text and "<b>" not in text and "r\\*4" in text
    assert f"the other {rest} pairs" in text
    assert (~lookup).sum() == 1 and "and 1 pair cannot be looked up in it." in text
    assert "system-message" not in to_html(text)
    # without the columns (an edges table of an older release) or without known edges: nothing
    assert facts.recovery_top_text(edges.drop(columns="regulator_known_targets"), n, "clr_mean") == ""
    assert facts.recovery_top_text(edges, 0, "clr_mean") == ""
    # a table shorter than the number of known edges says so
    short = facts.recovery_top_text(edges, 80, "clr_mean")
    assert f"The top {n + 10} pairs" in short and "below the 80 known edges" in short


def test_recovery_text_sets_the_prior_ranking_apart():
    """The gold-free rankings are listed best first; tf_activity, which uses the gold standard, is stated after
    them as another question, even when its AUPR is the highest; the DREAM5 best is a gold-free one."""
    from gexpred.recovery import RECOVERY_COLUMNS

    rows = []
    for scope, n_pairs, prev in (("all_gold_standard_targets", 1000, 0.01), ("known_regulators", 400, 0.025)):
        for method, aupr in (("penalized", 0.12), ("correlation", 0.07), ("clr_mean", 0.11), ("tf_activity", 0.33)):
            rows.append((scope, method, "clr", 50, n_pairs, int(n_pairs * prev), 0.7, aupr, prev, aupr / prev))
    table = pd.DataFrame(rows, columns=RECOVERY_COLUMNS)
    text = facts.recovery_text(table)
    gold_free, _, prior = text.partition("With the gold standard itself as prior knowledge")
    assert prior, text
    assert gold_free.index("ridge") < gold_free.index("the mean of the CLR scores") < gold_free.index("correlation")
    assert "TF activity" not in gold_free and "0.330" not in gold_free
    assert "TF activity from the known regulators" in prior and "AUPR 0.330 (33 x random" in prior
    assert "the best is ridge" in gold_free and "not comparable" in prior
    assert "system-message" not in to_html(text)


def test_significance_text_counts_only_terms_with_a_p_value():
    """A ridge-penalised logistic fit has coefficients but no p-values (nor q-values): its terms were not tested
    and must not be counted as tested. Target A: two tested terms (one with q < 0.05); target B: ridge."""
    coefs = pd.DataFrame({"target": ["A"] * 3 + ["B"] * 3, "term": ["const", "g1", "g2"] * 2,
                          "p_value": [0.5, 0.001, 0.2, np.nan, np.nan, np.nan],
                          "q_value": [np.nan, 0.002, 0.2, np.nan, np.nan, np.nan]})
    text = facts.significance_text(coefs, 0.05, classification=True)
    assert text.startswith("2 terms of 1 target were tested; 1 term has a Benjamini–Hochberg q-value below 0.05")
    assert "(smallest p: g1 for A)" in text
    assert "2 other terms have no p-value" in text
    assert facts.significance_text(coefs.iloc[:3], 0.05) == ("2 terms of 1 target were tested; 1 term has a "
                                                             "Benjamini–Hochberg q-value below 0.05 (smallest p: "
                                                             "g1 for A).")


def test_significance_text_of_ols_gives_the_regression_reason_for_a_missing_p_value():
    """OLS with ols.cov_type HC3: a covariate level held by one training sample has leverage 1 and no HC3 standard
    error, so no p-value (ols.fit_ols). The report said such terms have none because 'a ridge-penalised fit has
    none', which a regression run never fits. The p-values here are statsmodels' HC3 ones, the NaN its own."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    n = 30
    x = rng.normal(size=n)
    lone = np.zeros(n)
    lone[0] = 1.0  # one sample's level: leverage 1
    y = 1.0 + 2.0 * x + rng.normal(size=n)
    fit = sm.OLS(y, sm.add_constant(np.c_[x, lone])).fit(cov_type="HC3")
    p = np.asarray(fit.pvalues, dtype=float)
    p[2] = np.nan  # statsmodels' HC3 p of the leverage-1 term is 0/0 noise; gexpred writes NaN (fit_ols)
    coefs = pd.DataFrame({"target": "A", "term": ["const", "x", "batch[T.b2]"], "p_value": p,
                          "q_value": [np.nan, p[1], np.nan]})
    text = facts.significance_text(coefs, 0.05)
    assert text.startswith("1 term of 1 target was tested; 1 term has a Benjamini–Hochberg q-value below 0.05")
    assert "1 other term has no p-value (its standard error is undefined" in text and "ridge" not in text, text


def test_unseen_levels_are_named_with_their_samples():
    """A categorical covariate's levels that only test samples have are named, with how many samples and the
    reference level they are encoded as; numeric covariates and levels the training split has are not."""
    obs = pd.DataFrame({"batch": ["a", "b", "a", "c", "c", "b"], "dose": [1.0, 2, 3, 4, 5, 6]},
                       index=[f"s{i}" for i in range(6)])
    splits = pd.DataFrame({"sample": obs.index, "split": ["train", "train", "train", "test", "test", "test"]})
    text = facts.unseen_levels_text(obs, ["batch", "dose"], splits)
    assert "covariate batch: c (2 samples outside the training split), encoded as the reference level a" in text
    assert "dose" not in text
    assert facts.unseen_levels_text(obs, ["batch"], splits.assign(split="train")) == ""


def test_classification_comparison_names_the_class_share_baseline():
    """A classification run's baseline predicts the training class shares: the table's verdicts and the text
    above it must not call it the training mean, nor say that accuracies are on the normalized scale."""
    rows = []
    for target, losses in {"cls": {"ols": 0.75, "mlp": 0.5, "mean": 0.69}, "G4": {"ols": 0.9, "mlp": 0.8,
                                                                                  "mean": 0.6}}.items():
        for model, loss in losses.items():
            rows.append({"target": target, "model": model, "split": "test", "n": 20, "log_loss": loss,
                         "accuracy": 0.6, "auroc": 0.7})
    table = facts.comparison_rows(pd.DataFrame(rows)).set_index(["target", "model"])
    # (0.75 - 0.5) / 0.5 = 50 %, and 0.75 >= the baseline's 0.69
    assert table.loc[("cls", "ols"), "test_verdict"] == ("log_loss 50% above mlp; no better than the training "
                                                         "class shares")
    assert table.loc[("G4", "mean"), "test_verdict"] == "best: no model beats the training class shares"
    intro = facts.comparison_intro("log_loss", with_cv=True)
    assert "test log-loss" in intro and "training class shares" in intro
    assert "normalized scale" not in intro and "training mean" not in intro
    regression = facts.comparison_intro("mse")
    assert "test mean squared error" in regression and "training mean" in regression
    assert "normalized scale" in regression and "cross-validation" not in regression


def test_separation_sentence_names_each_targets_fit():
    """Separated classes of a binary target are fitted by Firth, of a three-class target by ridge (fit.tsv's
    method column): the report said every separated target's coefficients 'come from Firth's penalised
    likelihood' (ridge only in a parenthesis), also where every one of them was ridge-penalised."""
    rows = [{"target": t, "model": m, "split": "test", "n": 20, "log_loss": 0.5, "accuracy": 0.8, "auroc": 0.9}
            for t in ("bin", "three", "fine") for m in ("ols", "mean")]
    splits = pd.DataFrame({"sample": [f"s{i}" for i in range(40)], "split": ["train"] * 30 + ["test"] * 10})
    targets = pd.DataFrame({"target": ["bin", "three", "fine"], "directory": ["bin", "three", "fine"]})
    fits = pd.DataFrame({"target": ["bin", "three", "fine"], "failed_assumptions": "none",
                         "method": ["firth", "ridge", "ml"],
                         "separation": ["complete separation (g0)", "quasi-complete separation (g1)", ""]})
    kw = dict(n_samples=40, n_genes=5, dropped=pd.DataFrame(columns=["kind", "id", "file", "reason"]), sources=["m"],
              splits=splits, metrics=pd.DataFrame(rows))
    f = facts.build_facts(targets=targets, fits=fits, **kw)
    text = f["separation"]
    assert text.startswith("The classes are separated for 2 targets (bin and three)")
    assert "the coefficients of bin come from Firth's penalised likelihood" in text
    assert "those of three from a ridge-penalised fit" in text and "without standard errors" in text
    only = facts.build_facts(targets=targets.iloc[[1]], fits=fits.iloc[[1]], **kw)["separation"]
    assert "Firth's penalised likelihood" not in only.split("Firth's correction")[0]
    assert "so the coefficients of three come from a ridge-penalised fit" in only
    assert "system-message" not in to_html(text)


def test_workflow_description_shows_paths_and_batch_names_as_text():
    """The report's front page lists the config's matrices, gold standard and new batches. Written as plain
    reStructuredText, a name such as ``data/counts_.tsv`` or a batch ``week_`` was read as a link to an unknown
    target (a 'System Message: ERROR' block on the page) and ``*raw*`` as emphasis."""
    import html
    import re
    from pathlib import Path

    import jinja2
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config.update(matrices=["data/counts_.tsv", "data/*raw*.tsv"], new_batches={"week_": ["b.tsv"]},
                  gold_standard="gold_.tsv")
    validate(config, str(root / "workflow/schemas/config.schema.yaml"))  # fills the schema's defaults
    template = jinja2.Template((root / "workflow/report/workflow.rst").read_text())
    text = template.render(snakemake=type("S", (), {"config": config})(), files=[])
    out = to_html(text)
    assert "system-message" not in out and "problematic" not in out
    page = " ".join(html.unescape(re.sub(r"<[^>]+>", "", out)).split())
    for name in ("data/counts_.tsv", "data/*raw*.tsv", "week_", "gold_.tsv"):
        assert name in page, name


@pytest.mark.parametrize("x, shown", [(0.09996, "0.100"), (0.9996, "1.00"), (999.6, "1,000"), (9.9996, "10.0"),
                                      (0.12345, "0.123"), (1234.5, "1,234"), (-0.0012345, "\u22120.00123"),
                                      (0.00004, "4e\u221205")])
def test_numbers_in_sentences_have_three_significant_digits(x, shown):
    """A value that rounds up to the next power of ten kept a fourth digit (0.09996 read 0.1000, 999.6 read 1000
    without its thousands separator)."""
    assert facts._num(x) == shown


def test_loss_caption_names_the_searched_losses_when_the_search_varies_them():
    """The network's loss-curve caption named mlp.loss even when search.mlp varied the loss and another won (an
    audit); with search.mlp.loss it names the candidates' losses and where the chosen one is written."""
    import html
    import re
    from pathlib import Path

    import jinja2
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    for search, needle in (({"hidden": [[8]]}, "mlp.loss: mae,"),
                           ({"loss": ["mae", "mse"]}, "the one of the candidate the search chose among mae, mse")):
        config = yaml.safe_load((root / "config/config.yaml").read_text())
        config["search"]["mlp"] = search
        validate(config, str(root / "workflow/schemas/config.schema.yaml"))
        facts_ = type("F", (), {"target": staticmethod(lambda: {})})()
        sm = type("S", (), {"config": config, "params": type("P", (), {"facts": facts_})(),
                            "wildcards": type("W", (), {"target": "G1"})()})()
        out = to_html(jinja2.Template((root / "workflow/report/loss.rst").read_text()).render(snakemake=sm))
        page = " ".join(html.unescape(re.sub(r"<[^>]+>", "", out)).split())
        assert "system-message" not in out and needle in page, page


def test_captions_keep_the_space_between_sentences_around_their_conditions():
    """Snakemake renders captions with ``trim_blocks`` (the newline after a ``{% if %}`` or ``{% endif %}`` is
    dropped), so a sentence ending right before a condition that opens a new line ran into the next one: the
    genome-wide captions read "smallest q first.Every coefficient", "first.The standard errors",
    "set.With ``ols.cov_type`` HC3", "fitted on).With" and a per-target HC3 table "``ols.cov_type``).A term"
    (an audit). Every caption, under several configs, must split into the same words with Snakemake's
    whitespace handling as without it."""
    import copy
    import itertools
    from pathlib import Path

    import jinja2
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    base = yaml.safe_load((root / "config/config.yaml").read_text())
    validate(base, str(root / "workflow/schemas/config.schema.yaml"))

    class NoFacts(dict):
        def get(self, key, default=None):
            return default

    class AllFacts(dict):
        def get(self, key, default=None):
            return "some words"

        def __getitem__(self, key):
            return "some words"

    snakemake_env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as snakemake.report does
    plain_env = jinja2.Environment()
    templates = {path.name: (snakemake_env.from_string(path.read_text()), plain_env.from_string(path.read_text()))
                 for path in sorted((root / "workflow/report").glob("*.rst"))}
    joined = []
    for kind, cov_type, covariates, task, models in itertools.product(
            (NoFacts, AllFacts), ("nonrobust", "HC1", "HC3"), ([], ["batch"]), ("regression", "classification"),
            (["ols", "penalized", "mlp"], ["penalized"], ["mlp", "penalized"])):
        config = copy.deepcopy(base)
        config["ols"].update(cov_type=cov_type, covariates=covariates, interactions=[["a", "b"]] if covariates else [])
        config.update(task=task, models=models)
        facts_ = type("F", (), {m: staticmethod(lambda *a, **k: kind()) for m in ("target", "load", "classes")})()
        sm = type("S", (), {"config": config, "params": type("P", (), {"facts": facts_, "method": "ols"})(),
                            "wildcards": type("W", (), {"target": "G1", "batch": "b"})(),
                            "output": type("O", (), {"model": "m"})()})()
        for name, (trimmed, plain) in templates.items():
            words = trimmed.render(snakemake=sm, files=[], categories={}).split()
            want = plain.render(snakemake=sm, files=[], categories={}).split()
            joined += [(name, w) for w in words if w not in want]
    assert not sorted(set(joined)), sorted(set(joined))


@pytest.mark.parametrize("models, task", [(["penalized"], "regression"), (["mlp", "penalized"], "regression"),
                                          (["ols"], "classification"), (["ols", "penalized", "mlp"], "regression")])
def test_captions_describe_only_the_models_the_run_fits(models, task):
    """A run of models: [penalized] had a comparison figure captioned 'divided by OLS's … 1 is as good as OLS'
    (the figure, with no OLS, divides by the penalised regression's), an importance figure captioned 'Middle: the
    network's integrated gradients. Right: the pairs the network combines' (one panel: no network), CV metrics that
    described the network's folds, and penalised coefficients that sent the reader to 'the OLS tables' (an audit).
    The figure's reference is plots.model_comparison's: OLS where it is fitted, else the first model."""
    import html
    import re
    from pathlib import Path

    import jinja2
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config.update(models=models, task=task)
    validate(config, str(root / "workflow/schemas/config.schema.yaml"))
    facts_ = type("F", (), {m: staticmethod(lambda *a, **k: {}) for m in ("target", "load")})()
    sm = type("S", (), {"config": config, "params": type("P", (), {"facts": facts_})(),
                        "wildcards": type("W", (), {"target": "G1"})()})()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def text(name: str) -> str:
        out = to_html(env.from_string((root / "workflow/report" / name).read_text()).render(snakemake=sm))
        assert "system-message" not in out, out
        return " ".join(html.unescape(re.sub(r"<[^>]+>", "", out)).split())

    fitted = [m for m in models if not (m == "penalized" and task == "classification")]
    reference = "ols" if "ols" in fitted else fitted[0]
    comparison = text("model_comparison.rst")
    words = {"ols": "logistic regression" if task == "classification" else "OLS",
             "penalized": "penalized regression", "mlp": "the network"}
    assert f"divided by that of {words[reference]} on the same target" in comparison, comparison
    assert (f"1 is as good as {words['ols']}" in comparison) == (reference == "ols")
    importance = text("importance.rst")
    assert ("integrated gradient" in importance) == ("mlp" in fitted), importance
    assert ("Friedman" in importance) == ("mlp" in fitted)
    cv = text("cv_metrics.rst")
    assert ("The network's (mlp) folds" in cv) == ("mlp" in fitted), cv
    assert ("penalised regression's" in cv) == ("penalized" in fitted), cv
    assert cv.endswith("The test split, used once, is the unbiased judge.")
    if "penalized" in fitted:
        assert ("use the OLS tables" in text("penalized_coefficients.rst")) == ("ols" in fitted)


def _render_caption(name: str, change, target: str = "G1") -> str:
    """A report caption rendered with the demo config changed by ``change(config)`` (schema defaults filled), as
    the report's text: tags dropped, entities decoded, lines joined."""
    import html
    import re
    from pathlib import Path

    import jinja2
    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    change(config)
    validate(config, str(root / "workflow/schemas/config.schema.yaml"))
    facts_ = type("F", (), {"target": staticmethod(lambda: {}), "load": staticmethod(lambda: {})})()
    sm = type("S", (), {"config": config, "params": type("P", (), {"facts": facts_})(),
                        "wildcards": type("W", (), {"target": target, "batch": "b1"})()})()
    out = to_html(jinja2.Template((root / f"workflow/report/{name}").read_text()).render(snakemake=sm, files=[]))
    assert "system-message" not in out and "problematic" not in out, out
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", out)).split())


@pytest.mark.parametrize("methods", [["ridge"], ["elastic_net"], ["ridge", "lasso", "elastic_net"]])
def test_penalized_captions_name_the_configured_families(methods):
    """The penalised coefficients caption said 'ridge or lasso, whichever had the lower cross-validated error'
    and the start page 'Ridge or lasso regression' whatever search.penalized.methods held: with [ridge] there
    was no choice of family, with [elastic_net] neither was searched."""
    def change(config):
        config["search"]["penalized"]["methods"] = methods

    words = [m.replace("_", " ") for m in methods]
    coef = _render_caption("penalized_coefficients.rst", change)
    assert "ridge or lasso" not in coef, coef
    assert all(w in coef for w in words) and ("lasso" in coef) == ("lasso" in methods), coef
    assert ("lowest cross-validated error among" in coef) == (len(methods) > 1), coef
    assert ("exactly 0" in coef) == bool({"lasso", "elastic_net"} & set(methods)), coef
    start = _render_caption("workflow.rst", change)
    assert "Ridge or lasso" not in start and f"Penalised regression ({', '.join(words)})" in start, start
    search = _render_caption("penalized_search.rst", change)
    assert "elastic net: l1_wt = 0.5" in search and f"search.penalized.methods ({', '.join(methods)})" in search


def test_genome_captions_of_a_run_without_networks_say_so():
    """Genome-wide mode with models [ols]: the summary caption said 'The network is trained per chunk of 1000
    targets (multi_output)' and the (empty) network-search table's caption described candidates and val_nmse."""
    def change(config):
        config.update(targets="all", models=["ols"], predictors=["BSU16470", "BSU33790"], new_batches={})

    summary = _render_caption("genome_summary.rst", change)
    assert "network" not in summary, summary
    search = _render_caption("genome_search.rst", change)
    assert "trains no network" in search and "val_nmse" not in search, search
    with_mlp = _render_caption("genome_summary.rst", lambda c: (change(c), c.update(models=["ols", "mlp"])))
    assert "network is trained per chunk of 1000 targets (multi_output)" in with_mlp, with_mlp


def test_monitoring_captions_name_min_samples_and_the_coverage_check():
    """The verdicts and drift captions said the verdict is the worst of the drift and accuracy checks; a batch
    of fewer than monitor.min_samples samples is at least warn (monitor.verdict) and the caption did not say so.
    The drift figure's alert colour (#D55E00) is the vermillion the same caption names for intervals outside."""
    def change(config):
        config["monitor"]["min_samples"] = 7

    verdicts = _render_caption("verdicts.rst", change)
    assert "fewer than 7 samples, monitor.min_samples, is at least warn" in verdicts, verdicts
    assert "prediction intervals" in verdicts
    drift = _render_caption("drift.rst", change)
    assert "at least warn for a batch of fewer than 7 samples" in drift, drift
    assert "vermillion (red-orange) alert" in drift and "red alert" not in drift


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_cv_metrics_caption_does_not_claim_one_set_of_folds_for_every_target(task):
    """Each target's folds are its own (rule folds: stratified by the target's classes for classification; its
    unmeasured samples left out), but the caption said 'the same folds for every model and target'."""
    def change(config):
        config["task"] = task
        if task == "classification":
            config.update(targets=["G4"], binarize={"G4": 8.0}, models=["ols", "mlp"], gold_standard=None,
                          new_batches={})

    text = _render_caption("cv_metrics.rst", change)
    assert "every model and target" not in text and "the same folds for every model of a target" in text, text
    assert ("may differ between targets" in text) == (task == "classification"), text


def test_summary_and_coefficient_captions_describe_their_columns():
    """summary.tsv's caption did not name n_folds and test_best_model; the all-coefficients caption said the
    intercepts 'are not tested', but their t-test (statsmodels') is in the table, only left out of the q-values."""
    import re

    from gexpred.compare import SUMMARY_COLUMNS

    summary = _render_caption("summary.rst", lambda c: None)
    named = set(re.findall(r"\b[a-z_]+\b", summary))
    missing = [c for c in SUMMARY_COLUMNS if c not in named and not c.startswith("test_") or
               (c == "test_best_model" and c not in named)]
    assert not missing, (missing, summary)
    coefficients = _render_caption("all_coefficients.rst", lambda c: None)
    assert "not tested" not in coefficients and "q_value is empty" in coefficients, coefficients


def test_start_page_describes_a_run_without_networks():
    """models [ols, penalized]: the start page had no Prediction entry (the penalised regression was named only
    inside the network's) and said cross-validation 'tests network against regression', which needs a network."""
    page = _render_caption("workflow.rst", lambda c: c.update(models=["ols", "penalized"]))
    assert "Prediction: penalised regression (ridge, lasso), its family and penalty chosen by cross-validation" in page
    assert "neural network" not in page and "tests network against regression" not in page, page
    demo = _render_caption("workflow.rst", lambda c: None)
    assert "tests network against regression (corrected resampled t-test)" in demo


@pytest.mark.parametrize("ensemble", [1, 5])
def test_loss_caption_says_one_kept_epoch_per_ensemble_member(ensemble):
    """The loss figure draws one curve and one dotted line per ensemble member (plots.loss_curves; the demo's
    five members kept epochs 71-106), but the caption spoke of 'the dotted line' and 'the epoch whose weights
    were kept'."""
    text = _render_caption("loss.rst", lambda c: c["mlp"].update(ensemble=ensemble))
    if ensemble > 1:
        assert f"One curve and one dotted line per member of the ensemble of {ensemble}" in text, text
        assert "whose weights were kept" not in text
    else:
        assert "The dotted line marks the epoch whose weights were kept." in text, text


@pytest.mark.parametrize("models, reference", [(["ols", "mlp"], "OLS"), (["mlp"], "the network"),
                                                (["penalized", "mlp"], "penalized regression")])
def test_model_comparison_caption_names_the_reference_of_the_ratios(models, reference):
    """The model-comparison figure divides each model's error by OLS's, or by the first model's of a run without
    OLS (plots.model_comparison: ``ref = reference if reference in models else models[0]``); the caption always
    said 'divided by OLS's'."""
    text = _render_caption("model_comparison.rst", lambda c: c.update(models=models))
    assert f"divided by that of {reference} on the same target" in text and f"1 is as good as {reference}," in text, text
    if "ols" not in models:
        assert "OLS" not in text, text


def test_metrics_captions_say_the_baselines_pearson_is_empty():
    """The mean baseline predicts one value, whose Pearson correlation with anything is undefined (0/0): the
    metrics tables leave it empty for every split and fold, and their captions did not say why."""
    from gexpred.compare import metrics_table

    rng = np.random.default_rng(1)
    pred = pd.DataFrame({"target": "G0", "sample": [f"s{i}" for i in range(20)], "split": ["train"] * 15 + ["test"] * 5,
                         "observed": rng.normal(size=20)})
    pred["ols"] = pred["observed"] + rng.normal(scale=0.1, size=20)
    constant = np.full(5, pred["observed"][:15].mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(np.corrcoef(pred["observed"][15:], constant)[0, 1])  # numpy: undefined
    table = metrics_table(pred, ["ols"])
    assert table.loc[table["model"] == "mean", "pearson"].isna().all()
    assert "its pearson is empty" in _render_caption("metrics.rst", lambda c: None)
    assert "its pearson is empty" in _render_caption("cv_metrics.rst", lambda c: None)


def _with(**overrides):
    """A ``change`` for :func:`_render_caption`: the config's top-level keys replaced by ``overrides``, but for
    ``ols``, whose keys are merged into the demo's."""
    def change(config):
        ols = {**config["ols"], **overrides.get("ols", {})}
        config.update(overrides)
        config["ols"] = ols
    return change


def test_genome_wide_captions_say_what_the_run_did():
    """A genome-wide run of OLS alone (an audit): the comparison table's caption said 'The network is trained per
    chunk of 1000 targets (multi_output)' where no network was trained, the front page promised 'assumption
    checks' that genome-wide mode does not make (no VIF, Breusch-Pagan, ... in results/ols/genome/), and the
    significant table's caption ran two sentences together ('smallest q first.The shared design')."""
    genome = {"targets": "all", "predictors": ["G1", "G2"], "new_batches": {}, "gold_standard": None}
    adjusted = {"ols": {"covariates": ["batch_", "age"], "interactions": [["G1", "G2"]]}}
    summary = _render_caption("genome_summary.rst", _with(models=["ols"], **genome))
    assert "network" not in summary and summary.endswith("mean predicts each target's training mean.")
    assert "The network is trained per chunk of 1000 targets (multi_output)." in _render_caption(
        "genome_summary.rst", _with(models=["ols", "mlp"], **genome))
    front = _render_caption("workflow.rst", _with(models=["ols"], **genome, **adjusted))
    assert "confidence intervals, and Benjamini–Hochberg q-values across all targets." in front
    assert ("in chunks (the shared predictors, covariates batch_, age, 1 product term); the assumption checks "
            "(VIF, Breusch–Pagan, Jarque–Bera, Durbin–Watson) and influence measures are made per target only")\
        in front
    # per target the checks are made (results/ols/{target}/diagnostics.tsv) and the front page says so
    per_target = _render_caption("workflow.rst", _with(models=["ols"], gold_standard=None))
    assert "confidence intervals, assumption checks, and Benjamini–Hochberg" in per_target
    assert "Genome-wide mode" not in per_target
    significant = _render_caption("genome_coefficients.rst", _with(**genome, **adjusted))
    assert ("is below the run's FDR (0.05, ols.fdr), smallest q first. The shared design holds the shared "
            "predictors, the 2 covariates of ols.covariates") in significant
    assert "and 1 product term (a:b); their terms" in significant


def test_verdicts_caption_names_the_smallest_batch_it_can_call_ok():
    """The verdicts table's caption said a batch from the training distribution should read ok, but a batch of
    fewer than monitor.min_samples samples reads warn whatever its tests say (gexpred.monitor.verdict; an audit:
    a one-sample batch read 'warn' against the caption)."""
    text = _render_caption("verdicts.rst", _with(monitor={"min_samples": 12}))
    assert ("A batch from the training distribution should read ok (each test errs at its own level now and then), "
            "unless it holds fewer than 12 samples (monitor.min_samples), too few for the drift tests to see a "
            "shift, which reads warn;") in text
