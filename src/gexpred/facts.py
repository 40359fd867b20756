"""The numbers a reviewer needs, in words, for the report's captions.

Snakemake renders captions (Jinja, then reStructuredText) when the report is
built and gives them the config and the rule's parameters, but not the result
files. :func:`build_facts` therefore reads the result tables once, in a
workflow step, and writes the sentences into ``facts.json``; the captions show
them. Every name from users' data (gene, sample, file) goes through :func:`rst`,
so reStructuredText markup in a name is shown as text and docutils escapes it
for HTML.

:func:`comparison_rows` builds the model-comparison table (one row per target
and model, test metrics, cross-validation summary, verdict) that the report
also shows as a sortable HTML page (:mod:`gexpred.htmltable`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .ols import is_intercept
from .recovery import COMBINED, PRIOR_RANKINGS

MODEL_NAMES = {"ols": "OLS regression", "mlp": "the neural network", "mean": "the training mean",
               "penalized": "penalized regression"}
CLASSIFICATION_NAMES = {**MODEL_NAMES, "ols": "logistic regression", "mean": "the training class shares"}
"""Model names for classification targets: ``ols`` fits a logistic regression, ``mean`` predicts the class shares."""
LOWER_IS_BETTER = {"mse": True, "rmse": True, "mae": True, "log_loss": True, "r2": False, "pearson": False,
                   "accuracy": False, "auroc": False}


def rst(text: object) -> str:
    """``text`` as reStructuredText that shows exactly these characters (no markup, no roles, no links).

    Every character other than a letter, digit or space is backslash-escaped (in reStructuredText a
    backslash makes the next character literal); line breaks become spaces.
    """
    out = []
    for ch in " ".join(str(text).split()):
        out.append(ch if (ch.isalnum() and ch.isascii()) or ch == " " else "\\" + ch)
    return "".join(out)


def model_name(model: str, classification: bool = False) -> str:
    return (CLASSIFICATION_NAMES if classification else MODEL_NAMES).get(model, f"model {rst(model)}")


def _is_classification(metric: str) -> bool:
    """Whether a key metric (:func:`key_metric`) is a classification one."""
    return metric != "mse"


def _num(x: float, digits: int = 3) -> str:
    """A number for a sentence: 3 significant digits, thousands separators, a real minus sign."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "not available"
    x = float(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1000:  # rounded to the digits first: 0.09996 reads 0.100 (not 0.1000), 999.6 1,000
        x = float(f"{x:.{digits}g}")
    if abs(x) >= 1000:
        s = f"{x:,.0f}"
    else:
        mag = int(math.floor(math.log10(abs(x))))
        dec = max(digits - 1 - mag, 0)
        s = f"{x:.{dec}f}" if abs(x) >= 1e-3 else f"{x:.2g}"
    return s.replace("-", "\u2212")


def _r2(x: float) -> str:
    """R² for a sentence; the training mean's test R² is ~1e-7 off zero by construction: '≈ 0'."""
    return "≈ 0" if x is not None and not math.isnan(float(x)) and abs(float(x)) < 5e-4 else _num(x)


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- data and preprocessing
def data_text(n_samples: int, n_genes: int, dropped: pd.DataFrame, sources: list[str]) -> str:
    """Samples and genes used and dropped, with the reasons."""
    text = (f"{_count(n_samples, 'sample')} and {_count(n_genes, 'gene')} were used, combined from "
            f"{_and([rst(s) for s in sources])}. ")
    imputed = dropped[dropped["kind"] == "imputed"]
    if len(imputed):
        examples = ", ".join(rst(i) for i in imputed["id"].astype(str).head(3))
        text += (f"{_count(len(imputed), 'gene')} (e.g. {examples}) had missing or infinite values, replaced by "
                 f"the gene's mean over the training samples (missing: impute_mean). ")
        dropped = dropped[dropped["kind"] != "imputed"]
    if len(dropped) == 0:
        return text + "Nothing was dropped while combining the matrices."
    parts = []
    for kind in ("sample", "gene"):
        sub = dropped[dropped["kind"] == kind]
        if len(sub):
            reasons = sub.groupby("reason", sort=True).size()
            why = "; ".join(f"{n:,} {rst(r)}" for r, n in reasons.items())
            examples = ", ".join(rst(i) for i in sub["id"].astype(str).head(3))
            parts.append(f"{_count(len(sub), kind)} (e.g. {examples}; reasons: {why})")
    return text + "Dropped while combining: " + " and ".join(parts) + "."


def split_text(splits: pd.DataFrame, test_fraction: float | None = None, seed: int | None = None) -> str:
    n_train = int((splits["split"] == "train").sum())
    n_test = int((splits["split"] == "test").sum())
    how = f" (test fraction {test_fraction:g}, seed {seed})" if test_fraction is not None else ""
    return (f"The samples were split into {_count(n_train, 'training sample')} and {_count(n_test, 'test sample')}"
            f"{how}; the test split plays no part in fitting or choosing anything.")


def unseen_levels_text(obs: pd.DataFrame, covariates: list[str], splits: pd.DataFrame) -> str:
    """The categorical covariates' levels that only samples outside the training split have, in words: the
    models encode such samples as the reference level (no training sample shows the level's effect), so their
    test-split predictions rest on that guess. "" when there are none."""
    from .design import covariate_column, level_order, level_text

    split = splits.assign(sample=splits["sample"].astype(str)).set_index("sample")["split"]
    parts = []
    for c in covariates:
        column, declared = covariate_column(c)
        if column not in obs.columns or (pd.api.types.is_numeric_dtype(obs[column]) and not declared):
            continue
        values = level_text(obs[column].dropna()) if declared else obs[column].dropna().astype(str)
        where = split.reindex(values.index.astype(str))
        train_levels = set(values[(where == "train").to_numpy()])
        if not train_levels:
            continue
        outside = values[(where != "train").to_numpy() & ~values.isin(train_levels).to_numpy()]
        if len(outside):
            reference = level_order(train_levels, declared)[0]
            levels = sorted(set(outside))
            parts.append(f"covariate {rst(c)}: {_and([rst(v) for v in levels])} "
                         f"({_count(len(outside), 'sample')} outside the training split), encoded as the reference "
                         f"level {rst(reference)}")
    if not parts:
        return ""
    return (" Levels no training sample has, so the models predict those samples as if they had the reference "
            "level (their effect cannot be learnt): " + "; ".join(parts) + ".")


def predictors_text(predictors: pd.DataFrame, target: str, classification: bool = False) -> str:
    """How many predictors, and the first with its training correlation (classification: the correlation ratio
    eta of the gene with the classes, which ``train_corr`` holds then)."""
    sub = predictors[predictors["target"].astype(str) == str(target)].sort_values("rank")
    if not len(sub):
        return ""
    top = sub.iloc[0]
    what = "correlation ratio with the classes" if classification else "correlation"
    corr = f" (training {what} {_num(top['train_corr'])})" if "train_corr" in sub and pd.notna(
        top.get("train_corr")) else ""
    return f"{_count(len(sub), 'predictor')}, the first {rst(top['gene'])}{corr}."


# --------------------------------------------------------------------------- model comparison
def key_metric(metrics: pd.DataFrame) -> str:
    """The metric that decides the best model: test MSE for regression, log-loss for classification."""
    for m in ("mse", "log_loss", "accuracy"):
        if m in metrics and metrics[m].notna().any():
            return m
    raise ValueError("metrics table has neither mse, log_loss nor accuracy values")


def _best(sub: pd.DataFrame, metric: str) -> pd.Series:
    valid = sub.dropna(subset=[metric])
    idx = valid[metric].idxmin() if LOWER_IS_BETTER[metric] else valid[metric].idxmax()
    return valid.loc[idx]


def _relative(a: float, b: float) -> float:
    """How much lower ``a`` is than ``b``, as a share of ``b``: (b - a) / |b|."""
    return (b - a) / abs(b) if b else float("nan")


def _above(best: float, value: float) -> float:
    """How much higher ``value`` is than ``best``, as a share of ``best``: (value - best) / |best|."""
    return (value - best) / abs(best) if best else float("nan")


def comparison_rows(metrics: pd.DataFrame, cv: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
                    split: str = "test") -> pd.DataFrame:
    """One row per target and model: the ``split`` metrics, the CV summary when given, and verdicts.

    ``test_verdict`` compares every model with the best one of its target on the key metric of the test
    split (MSE for regression, log-loss for classification) and with the training-mean baseline. With the
    cross-validation ``summary`` (``compare.summary_table``), ``cv_verdict`` marks the model chosen by
    cross-validation and ``network_vs_regression`` carries the target's corrected resampled t-test verdict.
    """
    metric = key_metric(metrics)
    lower = LOWER_IS_BETTER[metric]
    baseline = model_name("mean", _is_classification(metric))  # the training mean, or class shares
    sub = metrics[metrics["split"] == split].copy()
    sub["target"] = sub["target"].astype(str)
    sub["model"] = sub["model"].astype(str)
    cols = [c for c in ("n", "mse", "mae", "r2", "pearson", "accuracy", "auroc", "log_loss")
            if c in sub and sub[c].notna().any()]
    rows = []
    for target, grp in sub.groupby("target", sort=False):
        best = _best(grp, metric)
        base = grp[grp["model"] == "mean"]
        base_value = float(base[metric].iloc[0]) if len(base) else float("nan")
        for _, r in grp.iterrows():
            value = float(r[metric])
            if r["model"] == best["model"]:
                others = grp[grp["model"] != r["model"]].dropna(subset=[metric])
                if r["model"] == "mean":
                    verdict = f"best: no model beats {baseline}"
                elif len(others):
                    runner = _best(others, metric)
                    gap = (_relative(value, float(runner[metric])) if lower
                           else value - float(runner[metric]))
                    verdict = (f"best: {metric} {_pct(gap)} below {runner['model']}" if lower
                               else f"best: {metric} {gap:+.3f} over {runner['model']}")
                else:
                    verdict = "best (only model)"
            elif r["model"] == "mean":
                verdict = "baseline"
            else:
                gap = _above(float(best[metric]), value) if lower else float(best[metric]) - value
                verdict = (f"{metric} {_pct(gap)} above {best['model']}" if lower
                           else f"{metric} {gap:.3f} below {best['model']}")
                if not math.isnan(base_value) and ((value >= base_value) if lower else (value <= base_value)):
                    verdict += f"; no better than {baseline}"
            rows.append({"target": target, "model": r["model"], **{f"test_{c}": r[c] for c in cols},
                         "test_verdict": verdict})
    out = pd.DataFrame(rows)
    if cv is not None and len(cv):
        cvs = cv.assign(target=cv["target"].astype(str), model=cv["model"].astype(str))
        agg = {}
        for m in dict.fromkeys([metric, "mse", "r2"]):
            if m in cvs and cvs[m].notna().any():
                if m == metric:
                    # the metric that chooses: NaN where a fold has none (a NaN prediction), as summary.tsv's
                    # best_model (compare.summary_table) judges it; the mean of the other folds made such a model
                    # 'chosen' here while summary.tsv and the deployed bundle chose another
                    agg[f"cv_{m}_mean"] = (m, lambda v: v.mean(skipna=False))
                    agg[f"cv_{m}_sd"] = (m, lambda v: v.std(skipna=False))
                else:
                    agg[f"cv_{m}_mean"] = (m, "mean")
                    agg[f"cv_{m}_sd"] = (m, "std")
        agg["cv_folds"] = ("fold", "nunique")
        stats = cvs.groupby(["target", "model"], sort=False).agg(**agg)
        order = list(dict.fromkeys([*zip(out["target"], out["model"]), *stats.index]))
        out = out.set_index(["target", "model"]).join(stats, how="outer").reindex(order).reset_index()
        out["cv_verdict"] = _cv_verdicts(out, metric, lower)
    if summary is not None and len(summary):
        s = summary.assign(target=summary["target"].astype(str)).set_index("target")
        text = {t: (f"{r['verdict']}" + (f" (p = {float(r['p_value']):.2g})" if pd.notna(r.get("p_value")) else ""))
                for t, r in s.iterrows()}
        out["network_vs_regression"] = out["target"].map(text).fillna("")
    first = [c for c in ("target", "model", "cv_verdict", "test_verdict", "network_vs_regression") if c in out]
    rest = [c for c in out.columns if c not in first]
    cv_cols = [c for c in rest if c.startswith("cv_")]
    return out[first + cv_cols + [c for c in rest if c not in cv_cols]]


METRIC_WORDS = {"mse": "mean squared error", "log_loss": "log-loss", "accuracy": "accuracy"}
"""The key metrics (:func:`key_metric`) in words."""


def comparison_intro(metric: str, with_cv: bool = False, with_summary: bool = False) -> str:
    """The text above the sortable model-comparison table (:func:`comparison_rows`): what its columns hold.

    ``metric`` is the run's key metric; a classification run's baseline predicts the training class shares and
    its metrics (accuracy, AUROC, log-loss) are not on the normalized expression scale.
    """
    classify = _is_classification(metric)
    return ("One row per target and model: metrics on the test split (which no model saw while being fitted "
            "or chosen)"
            + (f", cross-validation inside the training split (mean and sd over folds; the {metric} ones empty for "
               f"a model without a {metric} on every fold, which cannot be chosen; cv_verdict: the model chosen by "
               f"cross-validation)" if with_cv else "")
            + (", the corrected resampled t-test verdict of network against regression" if with_summary else "")
            + f" and test_verdict, which compares each model with the best of its target on the test "
            f"{METRIC_WORDS.get(metric, metric)} and with the baseline (mean), which predicts "
            + ("the training class shares for every sample. Accuracy and AUROC are shares, the log-loss is in "
               "nats per sample." if classify else
               "the training mean for every sample. Values are on the normalized scale."))


def _cv_verdicts(out: pd.DataFrame, metric: str, lower: bool) -> list[str]:
    col = f"cv_{metric}_mean"
    verdicts = []
    for _, r in out.iterrows():
        grp = out[(out["target"] == r["target"]) & out[col].notna()]
        if not len(grp) or pd.isna(r[col]):
            # cv_folds counts the folds the model was cross-validated on; its metric is missing on one of them
            verdicts.append(f"not chosen: CV {metric} undefined on some fold (a NaN prediction)"
                            if len(grp) and pd.notna(r.get("cv_folds")) else "")
            continue
        best = grp.loc[grp[col].idxmin() if lower else grp[col].idxmax()]
        if r["model"] == best["model"]:
            verdicts.append("chosen: best mean CV " + metric + (" (no model beats the mean)"
                                                                 if r["model"] == "mean" else ""))
        elif r["model"] == "mean":
            verdicts.append("baseline")
        else:
            gap = _above(float(best[col]), float(r[col])) if lower else float(best[col]) - float(r[col])
            verdicts.append(f"CV {metric} {_pct(gap)} above {best['model']}" if lower
                            else f"CV {metric} {gap:.3f} below {best['model']}")
    return verdicts


def _pct(share: float) -> str:
    """A share as a percentage for the comparison: '25%', '0.4%'."""
    if share is None or math.isnan(share):
        return "n/a"
    p = 100 * share
    return f"{p:.0f}%" if abs(p) >= 10 else f"{p:.1f}%" if abs(p) >= 0.1 else f"{p:.2g}%"


def comparison_text(metrics: pd.DataFrame, target: str, split: str = "test") -> str:
    """In words: the best model of ``target`` on the test split and by how much, with every model's numbers."""
    metric = key_metric(metrics)

    def name(model: str) -> str:
        return model_name(model, _is_classification(metric))

    grp = metrics[(metrics["target"].astype(str) == str(target)) & (metrics["split"] == split)].copy()
    grp["model"] = grp["model"].astype(str)
    if not len(grp):
        return ""
    best = _best(grp, metric)
    others = grp[grp["model"] != best["model"]].dropna(subset=[metric])
    n = int(best["n"])
    label = {"mse": "mean squared error", "log_loss": "log-loss", "accuracy": "accuracy"}[metric]
    if best["model"] == "mean":
        head = (f"On the {split} split ({_count(n, 'sample')}) no model beats {name('mean')}: its {label} is "
                f"{_num(best[metric])}")
    else:
        head = (f"On the {split} split ({_count(n, 'sample')}) {name(best['model'])} has the "
                f"{'lowest' if LOWER_IS_BETTER[metric] else 'highest'} {label}, {_num(best[metric])},")
    comp = []
    for _, r in others.iterrows():
        if LOWER_IS_BETTER[metric]:
            comp.append(f"{_num(r[metric])} for {name(r['model'])} "
                        f"({name(best['model'])}: {_pct(_relative(float(best[metric]), float(r[metric])))} lower)")
        else:
            comp.append(f"{_num(r[metric])} for {name(r['model'])}")
    text = head + (" against " + _and(comp) if comp else "") + "."
    if "r2" in grp and grp["r2"].notna().any():
        text += " R²: " + _and([f"{_r2(r['r2'])} ({name(r['model'])})" for _, r in
                                [(None, best), *list(others.iterrows())]]) + "."
    elif "accuracy" in grp and grp["accuracy"].notna().any():
        text += " Accuracy: " + _and([f"{_num(r['accuracy'])} ({name(r['model'])})" for _, r in
                                      [(None, best), *list(others.iterrows())]]) + "."
    return text


def assumptions_text(failed: str | float | None, classification: bool = False) -> str:
    """The failed OLS assumptions of one target in words (``all_fits.tsv``'s ``failed_assumptions``); for a
    logistic regression the one check there is, the predictors' collinearity (VIF)."""
    check = "collinearity check (VIF)" if classification else "OLS assumption check"
    if failed is None or (isinstance(failed, float) and math.isnan(failed)) or str(failed).strip() in ("", "none"):
        return f"No {check} fails on the training split."
    items = [rst(s.strip()) for s in str(failed).split("; ") if s.strip()]
    return f"{_count(len(items), check)} {'fails' if len(items) == 1 else 'fail'} on the " \
           f"training split: " + "; ".join(items) + "."


def importance_text(tables: dict[str, pd.DataFrame], k: int = 3, classification: bool = False) -> str:
    """The most important predictors of each model (permutation importance on held-out folds), in words."""
    parts = []
    for m in [m for m in ("mlp", "ols", "penalized") if m in tables] + [m for m in tables
                                                                        if m not in ("mlp", "ols", "penalized")]:
        top = tables[m].sort_values("rank").head(k)
        parts.append(f"{model_name(m, classification)}: " + ", ".join(
            f"{rst(p)} ({_num(v)} ± {_num(s)})" for p, v, s in zip(top["predictor"], top["perm_mean"],
                                                                  top["perm_sd"])))
    return ("Most important by permutation on held-out folds (rise of the held-out loss, mean ± sd over folds): "
            + "; ".join(parts) + ".")


def significance_text(coefs: pd.DataFrame, fdr: float, classification: bool = False) -> str:
    """How many terms were tested (non-intercept terms with a p-value: a ridge-penalised logistic fit has none,
    nor has an OLS term whose HC2/HC3 standard error is undefined) and how many have a Benjamini–Hochberg q-value
    below ``fdr``. ``classification`` says which of the two reasons the untested terms have."""
    terms = coefs[~is_intercept(coefs["term"])]
    tested = terms[pd.to_numeric(terms["p_value"], errors="coerce").notna()]
    q = pd.to_numeric(tested.get("q_value"), errors="coerce")
    sig = tested[q < fdr]
    text = (f"{_count(len(tested), 'term')} of {_count(int(tested['target'].nunique()), 'target')} "
            f"{'was' if len(tested) == 1 else 'were'} tested; "
            f"{_count(len(sig), 'term')} {'has' if len(sig) == 1 else 'have'} a Benjamini–Hochberg q-value "
            f"below {fdr:g}")
    if len(sig):
        top = sig.sort_values("p_value").head(3)
        text += " (smallest p: " + _and([f"{rst(t)} for {rst(g)}" for t, g in zip(top["term"], top["target"])]) + ")"
    untested = len(terms) - len(tested)
    if untested:
        why = ("a ridge-penalised fit has none" if classification else
               "its standard error is undefined, as the HC2/HC3 one of a term a single training sample determines")
        text += (f"; {_count(untested, 'other term')} {'has' if untested == 1 else 'have'} no p-value ({why}) "
                 f"and {'is' if untested == 1 else 'are'} not counted")
    return text + "."


# --------------------------------------------------------------------------- everything
def build_facts(*, n_samples: int, n_genes: int, dropped: pd.DataFrame, sources: list[str], splits: pd.DataFrame,
                targets: pd.DataFrame, metrics: pd.DataFrame, predictors: pd.DataFrame | None = None,
                fits: pd.DataFrame | None = None, coefs: pd.DataFrame | None = None, cv: pd.DataFrame | None = None,
                summary: pd.DataFrame | None = None, test_fraction: float | None = None, seed: int | None = None, fdr: float = 0.05,
                importance: dict[tuple[str, str], pd.DataFrame] | None = None,
                interactions: dict[str, pd.DataFrame] | None = None,
                recovery: pd.DataFrame | None = None, edges: pd.DataFrame | None = None,
                ranking: str | None = None, obs: pd.DataFrame | None = None,
                covariates: list[str] | None = None, min_strength: float = 0.05) -> dict[str, Any]:
    """Every sentence the captions show, keyed by report section and by target directory name.

    ``importance`` maps (target directory, model) to the model's importance table, ``interactions`` a
    target directory to the network's interactions table; ``edges`` is the inferred network
    (``edges.tsv``) of the recovery ranking ``ranking``; ``obs`` holds the sample sheet's ``covariates``;
    ``min_strength`` is ``importance.min_strength``, by which the network's interactions were suggested."""
    metric = key_metric(metrics)
    classify = _is_classification(metric)
    test = metrics[metrics["split"] == "test"]
    per_target: dict[str, Any] = {}
    fit_methods: dict[str, str] = {}  # target directory -> 'firth' or 'ridge', for separated classes
    best_lines, cv_lines = [], []
    for target, directory in zip(targets["target"].astype(str), targets["directory"].astype(str)):
        grp = test[test["target"].astype(str) == target]
        entry: dict[str, Any] = {"id": target, "id_rst": rst(target)}
        if len(grp):
            best = _best(grp.assign(model=grp["model"].astype(str)), metric)
            entry["best_model"] = str(best["model"])
            entry["comparison"] = comparison_text(metrics, target)
            best_lines.append(f"{rst(target)}: {model_name(str(best['model']), classify)}")
        if fits is not None and "failed_assumptions" in fits:
            row = fits[fits["target"].astype(str) == target]
            if len(row):
                entry["assumptions"] = assumptions_text(row["failed_assumptions"].iloc[0], classify)
                entry["train_r2"] = float(row["r2"].iloc[0]) if "r2" in row else None
                sep = row["separation"].iloc[0] if "separation" in row else None
                if isinstance(sep, str) and sep.strip():
                    entry["separation"] = rst(sep[:1].upper() + sep[1:])
                    method = row["method"].iloc[0] if "method" in row else None
                    if isinstance(method, str) and method in ("firth", "ridge"):
                        fit_methods[directory] = method
        if predictors is not None:
            entry["predictors"] = predictors_text(predictors, target, classify)
        if summary is not None and "statement" in summary:
            row = summary[summary["target"].astype(str) == target]
            if len(row):
                entry["cv_choice"] = str(row["best_model"].iloc[0])
                entry["cv_statement"] = rst(row["statement"].iloc[0])
                cv_lines.append(f"{rst(target)}: {model_name(entry['cv_choice'], classify)}")
        imp = {m: tab for (d, m), tab in (importance or {}).items() if d == directory}
        if imp:
            entry["importance"] = importance_text(imp, classification=classify)
        if interactions and directory in interactions:
            from .importance import interaction_text

            entry["interactions"] = rst(interaction_text(interactions[directory], fdr, min_strength))
        per_target[directory] = entry
    n_fail = None
    if fits is not None and "failed_assumptions" in fits:
        fail = fits["failed_assumptions"].fillna("none").astype(str).str.strip()
        n_fail = int((~fail.isin(["none", ""])).sum())
    facts: dict[str, Any] = {
        "data": data_text(n_samples, n_genes, dropped, sources),
        "split": split_text(splits, test_fraction, seed)
        + (unseen_levels_text(obs, covariates, splits) if obs is not None and covariates else ""),
        "n_samples": int(n_samples), "n_genes": int(n_genes),
        "n_dropped_samples": int((dropped["kind"] == "sample").sum()),
        "n_dropped_genes": int((dropped["kind"] == "gene").sum()),
        "n_train": int((splits["split"] == "train").sum()), "n_test": int((splits["split"] == "test").sum()),
        "key_metric": metric,
        "best_models": ("Chosen by cross-validation inside the training split: " + "; ".join(cv_lines) + ". "
                        if cv_lines else "")
        + ("Best on the test split: " + "; ".join(best_lines) + "." if best_lines else ""),
        "targets": per_target,
    }
    separated = [t["id_rst"] for t in per_target.values() if t.get("separation")]
    if separated:
        head = (f"The classes are separated for {_count(len(separated), 'target')} ({_and(separated)}): a logistic "
                f"regression has no finite maximum-likelihood estimate there, so ")
        by = {m: [t["id_rst"] for d, t in per_target.items() if t.get("separation") and fit_methods.get(d) == m]
              for m in ("firth", "ridge")}
        if len(by["firth"]) + len(by["ridge"]) == len(separated):  # fit.tsv's method column says which fit each got
            firth = (f"the coefficients of {_and(by['firth'])} come from Firth's penalised likelihood (standard "
                     f"errors, penalised likelihood-ratio p-values and profile intervals)" if by["firth"] else "")
            whose = "those" if firth else "the coefficients"
            ridge = (f"{whose} of {_and(by['ridge'])}{'' if firth else ' come'} from a ridge-penalised fit "
                     f"(ols.penalized: true, or more than two classes, for which Firth's correction is not "
                     f"implemented), without standard errors, p-values or intervals" if by["ridge"] else "")
            facts["separation"] = head + "; ".join(x for x in (firth, ridge) if x) + (
                "; the run went on (details per target).")
        else:
            facts["separation"] = head + (
                f"{'its' if len(separated) == 1 else 'their'} coefficients come from Firth's penalised likelihood "
                f"(ridge with ols.penalized: true or more than two classes; the method column of the coefficient "
                f"table says which), and the run went on (details per target).")
    if n_fail is not None:
        of = f"{n_fail} of {_count(len(fits), 'target')}"
        if classify:  # a logistic regression's one check: the predictors' collinearity
            facts["assumptions"] = (f"The collinearity check (VIF) fails for {of}" if n_fail else
                                    f"The collinearity check (VIF) fails for none of the {_count(len(fits), 'target')}")
        else:
            facts["assumptions"] = (f"OLS assumption checks fail for {of}" if n_fail else
                                    f"No OLS assumption check fails for any of the {_count(len(fits), 'target')}")
        facts["assumptions"] += " (details per target)."
    if coefs is not None and len(coefs):
        facts["significance"] = significance_text(coefs, fdr, classify)
    if cv is not None and len(cv):
        # the metric of the report's cross-validation figure: R², or the log-loss that chooses the model
        facts["cv"] = cv_text(cv, "r2" if metric == "mse" else metric)
    if edges is not None:
        facts["n_edges"] = int(len(edges))  # rows of edges.tsv: recovery.top_edges, or fewer candidate pairs
    if recovery is not None and len(recovery):
        facts["recovery"] = recovery_text(recovery)
        everything = recovery[recovery["scope"] == "all_gold_standard_targets"]
        if edges is not None and len(edges) and len(everything) and facts["recovery"]:
            facts["recovery"] += recovery_top_text(edges, int(everything["n_positive"].iloc[0]),
                                                   ranking or "the ranking")
    return _finite(facts)


RECOVERY_NAMES = {"ols": "OLS |t|", "penalized": "ridge |t|", "network": "network gradients",
                  "correlation": "correlation", "clr_mean": "the mean of the CLR scores",
                  "rank_average": "the rank average", "tf_activity": "TF activity from the known regulators"}


def _ranking_name(method) -> str:
    """A recovery ranking's name in words, escaped for reStructuredText."""
    return rst(RECOVERY_NAMES.get(str(method), method))


def recovery_text(table: pd.DataFrame, normalization: str = "clr") -> str:
    """Regulator recovery in words: each ranking's AUPR over every gold-standard target, best first."""
    shown = table["normalization"].eq(normalization) | table["method"].isin(COMBINED)
    prior = table[table["method"].isin(PRIOR_RANKINGS) & table["normalization"].eq(normalization)
                  & (table["scope"] == "all_gold_standard_targets")]
    shown &= ~table["method"].isin(PRIOR_RANKINGS)
    sub = table[shown & (table["scope"] == "all_gold_standard_targets")]
    if sub.empty:
        return ""
    sub = sub.sort_values("aupr", ascending=False, kind="stable")
    first = sub.iloc[0]
    parts = [f"{_ranking_name(r['method'])} {_num(r['aupr'])} "
             f"({_num(r['aupr_vs_random'], 2)} x random)" for _, r in sub.iterrows()]
    text = (f"Over {int(first['n_targets']):,} gold-standard targets ({int(first['n_positive']):,} known edges among "
            f"{int(first['n_pairs']):,} candidate pairs; a random ranking has AUPR {_num(first['random_aupr'])}), "
            f"the AUPR of each ranking after {normalization.upper() if normalization != 'none' else 'no normalisation'}"
            f" is: " + "; ".join(parts) + ".")
    known = table[shown & (table["scope"] == "known_regulators")]
    if not known.empty:
        best = known.sort_values("aupr", ascending=False, kind="stable").iloc[0]
        text += (f" Judged as the DREAM5 challenge judged rankings, without the candidates that have no known target "
                 f"({int(best['n_pairs']):,} pairs left; random AUPR {_num(best['random_aupr'])}), the best is "
                 f"{_ranking_name(best['method'])} with AUPR {_num(best['aupr'])} "
                 f"({_num(best['aupr_vs_random'], 2)} x random).")
    for _, r in prior.iterrows():
        text += (f" With the gold standard itself as prior knowledge, {_ranking_name(r['method'])} scores each "
                 f"target from its candidates' expression and their activities estimated from the known targets of "
                 f"the other genes, never from its own known regulators (folds of whole groups of targets with the "
                 f"same known regulators): AUPR {_num(r['aupr'])} ({_num(r['aupr_vs_random'], 2)} x random, AUROC "
                 f"{_num(r['auroc'])}). It answers another question (which regulators of a gene the known network "
                 f"and the data suggest) and is not comparable with the rankings above, which do not use the "
                 f"gold standard.")
    return text


def recovery_top_text(edges: pd.DataFrame, n_known: int, ranking: str, shown: int = 3) -> str:
    """What the top of the inferred network holds, in words: of its ``n_known`` best pairs (as many as the
    gold standard has known edges among the judged pairs), how many are known edges, how many belong to
    regulators the gold standard knows no target of (which cannot be judged either way), and the rest.
    Empty without the ``known`` and ``regulator_known_targets`` columns of ``edges.tsv``."""
    if n_known <= 0 or not {"rank", "known", "regulator_known_targets", "regulator"} <= set(edges.columns):
        return ""
    top = edges.sort_values("rank", kind="stable").head(int(n_known))
    known = pd.to_numeric(top["known"], errors="coerce")
    reg_known = pd.to_numeric(top["regulator_known_targets"], errors="coerce")
    judged = known.notna()
    hits = int((known == 1).sum())
    unannotated = judged & (reg_known == 0)
    n_un = int(unannotated.sum())
    size = ("as many as there are known edges" if len(top) == n_known else
            f"all it holds, recovery.top_edges being below the {n_known:,} known edges")
    text = (f" The top {_count(len(top), 'pair')} of the inferred network ({_ranking_name(ranking)}; {size}) hold "
            f"{_count(hits, 'known edge')} ({_num(100.0 * hits / len(top), 2)} %)")
    if n_un:
        per_reg = top.loc[unannotated, "regulator"].astype(str).value_counts()
        named = [f"{rst(r)} with {int(n):,}" for r, n in per_reg.head(shown).items()]
        more = len(per_reg) - len(named)
        text += (f"; {_count(n_un, 'pair')} belong to {_count(len(per_reg), 'regulator')} the gold standard knows no "
                 f"target of among these genes ({_and(named + ([f'{more:,} more'] if more > 0 else []))}): such pairs "
                 f"cannot be judged either way, so they count as wrong in the AUPR above but are candidates to look "
                 f"at rather than known errors")
    rest = int(judged.sum()) - hits - n_un
    text += (f"; the other {_count(rest, 'pair')}, of regulators with known targets, are not in the gold standard "
             f"(false positives, or edges nobody has found yet)"
             + (f", and {_count(int((~judged).sum()), 'pair')} cannot be looked up in it" if (~judged).any() else "")
             + ".")
    return text


CV_METRIC_NAMES = {"r2": "R²", "log_loss": "log-loss (nats per sample; lower is better)", "accuracy": "accuracy",
                   "mse": "mean squared error"}


def cv_text(cv: pd.DataFrame, metric: str = "r2") -> str:
    """Mean (sd) of the CV metric per target and model."""
    parts = []
    for target, grp in cv.assign(target=cv["target"].astype(str)).groupby("target", sort=False):
        stats = grp.groupby(grp["model"].astype(str), sort=False)[metric].agg(["mean", "std", "count"])
        parts.append(f"{rst(target)}: " + ", ".join(f"{rst(m)} {_num(s['mean'])} (sd {_num(s['std'])}, "
                                                    f"{int(s['count'])} folds)" for m, s in stats.iterrows()))
    return (f"Cross-validated {CV_METRIC_NAMES.get(metric, rst(metric))} inside the training split, mean (sd) over "
            f"folds: " + "; ".join(parts) + ".")


def _finite(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars plain Python."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
