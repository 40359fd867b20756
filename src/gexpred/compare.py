"""Metrics and the comparison of models per target.

Every model's predictions are judged with the same metrics on the same
samples; the ``mean`` model (the training mean of the target) is the baseline
any useful model must beat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

REGRESSION_METRICS = ["mse", "mae", "r2", "pearson"]
CLASSIFICATION_METRICS = ["accuracy", "auroc", "log_loss"]
#: Regression rows leave the classification metrics empty, and vice versa.
METRIC_COLUMNS = ["target", "model", "split", "n", *REGRESSION_METRICS, *CLASSIFICATION_METRICS]
PREDICTION_KEYS = ["target", "sample", "split", "observed"]


def regression_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """``n, mse, mae, r2, pearson`` of predictions.

    ``r2`` is ``1 - SSE / SST`` with SST taken around the mean of
    ``observed`` itself (so on a test split it can be negative: worse than
    predicting the test mean). ``pearson`` is NaN when either side is constant.
    """
    o = np.asarray(observed, dtype=np.float64).ravel()
    p = np.asarray(predicted, dtype=np.float64).ravel()
    if o.shape != p.shape:
        raise ValueError(f"{len(o)} observed values but {len(p)} predictions")
    n = len(o)
    if n == 0:
        return {"n": 0, "mse": np.nan, "mae": np.nan, "r2": np.nan, "pearson": np.nan}
    resid = o - p
    sse = float(resid @ resid)
    sst = float(((o - o.mean()) ** 2).sum())
    oc, pc = o - o.mean(), p - p.mean()
    constant = np.ptp(o) == 0 or np.ptp(p) == 0
    denom = 0.0 if constant else float(np.sqrt((oc @ oc) * (pc @ pc)))
    return {
        "n": n,
        "mse": sse / n,
        "mae": float(np.abs(resid).mean()),
        "r2": 1.0 - sse / sst if sst > 0 else np.nan,
        "pearson": float(np.clip(float(oc @ pc) / denom, -1.0, 1.0)) if denom > 0 else np.nan,
    }


def assemble_predictions(per_model: dict[str, pd.DataFrame], target: str) -> pd.DataFrame:
    """Join the per-model prediction tables of one target into one wide table.

    Parameters
    ----------
    per_model
        ``{model: DataFrame(sample, split, observed, predicted)}``, all over the
        same samples.
    target
        The target gene id.

    Returns
    -------
    pandas.DataFrame
        ``target, sample, split, observed`` and one column per model.
    """
    if not per_model:
        raise ValueError(f"no predictions to assemble for target {target!r}")
    parts = {}
    for model, df in per_model.items():
        part = df[["sample", "split", "observed", "predicted"]].rename(columns={"predicted": model})
        if part.empty or part.duplicated(["sample", "split"]).any():
            raise ValueError(f"model {model!r} has no predictions, or some samples more than once, "
                             f"for target {target!r}")
        parts[model] = part
    return _join_models(parts, target, lambda a, b: bool(np.allclose(a, b)), "observed values")


def _join_models(parts: dict[str, pd.DataFrame], target: str, same, what: str) -> pd.DataFrame:
    """Join per-model tables on ``sample, split``; check that they agree on ``observed``.

    ``same(a, b)`` compares two ``observed`` columns; ``what`` names them in the error.
    The result starts with ``target`` and is sorted train before test, then by sample.
    """
    out: pd.DataFrame | None = None
    for part in parts.values():
        if out is None:
            out = part
            continue
        merged = out.merge(part, on=["sample", "split"], how="outer", suffixes=("", "_other"),
                           validate="one_to_one")
        if len(merged) != len(out) or not same(merged["observed"], merged["observed_other"]):
            raise ValueError(f"models disagree on the samples or {what} of target {target!r}")
        out = merged.drop(columns=["observed_other"])
    assert out is not None
    out.insert(0, "target", target)
    order = {"train": 0, "test": 1}
    return out.sort_values(["split", "sample"], key=lambda s: s.map(order) if s.name == "split" else s,
                           kind="stable").reset_index(drop=True)


def metrics_table(predictions: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Metrics per target, model and split from a wide predictions table.

    The ``mean`` model predicts, for every sample, the mean of the observed
    target over the training samples.
    """
    rows = []
    models = [m for m in dict.fromkeys(models) if m != "mean"]
    for target, df in predictions.groupby("target", sort=False):
        train_mean = float(df.loc[df["split"] == "train", "observed"].mean())
        for model in [*models, "mean"]:
            for split in ("train", "test"):
                sub = df[df["split"] == split]
                pred = np.full(len(sub), train_mean) if model == "mean" else sub[model].to_numpy()
                rows.append({"target": target, "model": model, "split": split,
                             **regression_metrics(sub["observed"].to_numpy(), pred)})
    return pd.DataFrame(rows).reindex(columns=METRIC_COLUMNS)


def best_models(metrics: pd.DataFrame, metric: str = "mse", split: str = "test") -> pd.DataFrame:
    """Per target, the model with the lowest ``metric`` on ``split`` (the mean baseline included)."""
    sub = metrics[metrics["split"] == split]
    idx = sub.groupby("target", sort=False)[metric].idxmin()
    return sub.loc[idx, ["target", "model", metric]].rename(columns={"model": "best_model"}).reset_index(drop=True)


# --------------------------------------------------------------------------- classification
def class_columns(df: pd.DataFrame) -> list[str]:
    """The class names of a per-model classification predictions table (its ``p[class]`` columns)."""
    return [c[2:-1] for c in df.columns if c.startswith("p[") and c.endswith("]")]


def assemble_class_predictions(per_model: dict[str, pd.DataFrame], target: str) -> pd.DataFrame:
    """Wide table of one classification target: ``target, sample, split, observed``, then per model the
    predicted class (column ``model``) and the probability of each class (``model:p[class]``)."""
    parts = {}
    for model, df in per_model.items():
        classes = class_columns(df)
        parts[model] = df[["sample", "split", "observed", "predicted", *[f"p[{c}]" for c in classes]]].rename(
            columns={"predicted": model, **{f"p[{c}]": f"{model}:p[{c}]" for c in classes}})
    return _join_models(parts, target, lambda a, b: bool((a == b).all()), "observed classes")


def class_metrics_table(predictions: pd.DataFrame, models: list[str], classes: dict[str, list[str]]) -> pd.DataFrame:
    """Accuracy, AUROC and log-loss per target, model and split; ``mean`` predicts the training class shares."""
    from .logit import classification_metrics

    rows = []
    for target, df in predictions.groupby("target", sort=False):
        cl = classes[target]
        codes_all = df["observed"].map({c: i for i, c in enumerate(cl)}).to_numpy()
        prior = np.bincount(codes_all[(df["split"] == "train").to_numpy()], minlength=len(cl)).astype(float)
        prior /= prior.sum()
        for model in [*models, "mean"]:
            for split in ("train", "test"):
                mask = (df["split"] == split).to_numpy()
                if model == "mean":
                    proba = np.tile(prior, (int(mask.sum()), 1))
                else:
                    proba = df.loc[mask, [f"{model}:p[{c}]" for c in cl]].to_numpy(dtype=np.float64)
                m = classification_metrics(codes_all[mask], proba)
                rows.append({"target": target, "model": model, "split": split, **m})
    return pd.DataFrame(rows).reindex(columns=METRIC_COLUMNS)


# --------------------------------------------------------------------------- cross-validation
CV_PREDICTION_COLUMNS = ["target", "model", "sample", "fold", "observed", "predicted"]
"""Columns of a model's out-of-fold predictions (classification adds ``p[class]`` columns); ``fold`` is 1-based."""
CV_METRIC_COLUMNS = ["target", "model", "fold", "n", *REGRESSION_METRICS, *CLASSIFICATION_METRICS]
SUMMARY_COLUMNS = ["target", "best_model", "metric", "ols", "penalized", "mlp", "p_value", "mean", "verdict",
                   "statement", "n_folds", "test_best_model", "test_ols", "test_penalized", "test_mlp", "test_mean"]
"""Columns of the comparison summary: the model columns hold the mean CV metric (``test_*`` the test split's)."""
VERDICTS = ("network", "regression", "no evidence of a difference", "not compared")


def cv_metrics_table(cv: pd.DataFrame, models: list[str], classes: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Metrics of every model on every held-out fold.

    Parameters
    ----------
    cv
        Out-of-fold predictions of all models (:data:`CV_PREDICTION_COLUMNS`,
        plus ``p[class]`` columns for classification), every model over the same
        samples and folds.
    models
        Models to report, in order; ``mean`` (the mean of the other folds'
        observed values, or their class shares) is added as the baseline.
    classes
        Classification: the class names per target (order of the ``p[...]`` columns).

    Returns
    -------
    pandas.DataFrame
        :data:`CV_METRIC_COLUMNS`, one row per target, model and fold.
    """
    from .logit import classification_metrics

    rows = []
    models = [m for m in dict.fromkeys(models) if m != "mean"]
    for target, df in cv.groupby("target", sort=False):
        ref = df[df["model"] == models[0]].sort_values("sample", kind="stable")
        for m in models[1:]:
            other = df[df["model"] == m].sort_values("sample", kind="stable")
            if other["sample"].tolist() != ref["sample"].tolist() or other["fold"].tolist() != ref["fold"].tolist():
                raise ValueError(f"models {models[0]!r} and {m!r} were cross-validated on different samples or folds "
                                 f"for target {target!r}")
        cl = classes[target] if classes else None
        for model in [*models, "mean"]:
            sub = ref if model == "mean" else df[df["model"] == model].sort_values("sample", kind="stable")
            for fold in sorted(sub["fold"].unique()):
                held = (sub["fold"] == fold).to_numpy()
                rest = ref[ref["fold"] != fold]
                if cl is None:
                    obs = sub.loc[held, "observed"].to_numpy(dtype=np.float64)
                    pred = (np.full(int(held.sum()), float(rest["observed"].astype(float).mean())) if model == "mean"
                            else sub.loc[held, "predicted"].to_numpy(dtype=np.float64))
                    m = regression_metrics(obs, pred)
                else:
                    index = {c: i for i, c in enumerate(cl)}
                    codes = sub.loc[held, "observed"].astype(str).map(index).to_numpy()
                    if model == "mean":
                        prior = np.bincount(rest["observed"].astype(str).map(index).to_numpy(),
                                            minlength=len(cl)).astype(float)
                        proba = np.tile(prior / prior.sum(), (int(held.sum()), 1))
                    else:
                        proba = sub.loc[held, [f"p[{c}]" for c in cl]].to_numpy(dtype=np.float64)
                    m = classification_metrics(codes, proba)
                rows.append({"target": target, "model": model, "fold": int(fold), **m})
    return pd.DataFrame(rows).reindex(columns=CV_METRIC_COLUMNS)


def corrected_resampled_ttest(diffs: np.ndarray, n_train: float, n_test: float) -> tuple[float, float]:
    """Nadeau & Bengio's corrected resampled t-test of a mean difference across CV folds.

    The folds' training parts overlap, so the differences are correlated and
    the plain t-test's variance ``s^2 / K`` is too small; Nadeau & Bengio (2003,
    *Machine Learning* 52:239) replace it by ``(1 / K + n_test / n_train) s^2``.
    ``t`` has ``K - 1`` degrees of freedom; the p-value is two-sided.

    Parameters
    ----------
    diffs
        Per fold, metric of one model minus that of the other.
    n_train, n_test
        Samples in a fold's training and held-out parts (their means over folds).

    Returns
    -------
    t, p_value
        ``(nan, nan)`` for fewer than 2 folds; for differences that are all equal,
        ``t`` is ``0`` (p = 1) if they are 0, else infinite (p = 0).
    """
    from scipy.special import stdtr  # Student's t distribution function, without importing scipy.stats (~1 s)

    d = np.asarray(diffs, dtype=np.float64)
    K = len(d)
    if K < 2 or not np.all(np.isfinite(d)):
        return math.nan, math.nan
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    if var == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / math.sqrt((1.0 / K + n_test / n_train) * var)
    return t, float(2.0 * stdtr(K - 1, -abs(t)))


def summary_table(cv_metrics: pd.DataFrame, test_metrics: pd.DataFrame, models: list[str], alpha: float = 0.05,
                  metric: str | None = None) -> pd.DataFrame:
    """Per target: the best model by cross-validation, and whether the network beats regression.

    ``best_model`` has the lowest mean CV ``metric`` (``mse`` for regression,
    ``log_loss`` for classification) among the models run and the ``mean``
    baseline. ``p_value`` is the corrected resampled t-test
    (:func:`corrected_resampled_ttest`) of the per-fold ``metric`` of ``mlp``
    against ``ols``; ``verdict`` is ``network`` or ``regression`` (whichever has
    the lower CV metric) when ``p_value < alpha``, ``no evidence of a
    difference`` otherwise, and ``not compared`` without both models or where
    the test is undefined (fewer than 2 folds, or a fold whose metric is NaN).
    ``statement`` says it in a sentence. The ``test_*`` columns hold the
    test split's metric of each model, for reference; the test split plays no
    part in the choice.

    A model whose metric is NaN on any fold (a NaN prediction) has a NaN mean
    CV metric, not the mean of its other folds, and cannot be ``best_model``
    (nor ``test_best_model`` with a NaN test metric); the statement names it.
    ``best_model`` is empty where no model has a metric on every fold. Ties
    go to the first of ``models``, then ``mean``.
    """
    if metric is None:
        metric = "log_loss" if cv_metrics["log_loss"].notna().any() else "mse"
    rows = []
    for target, df in cv_metrics.groupby("target", sort=False):
        # a NaN fold (a NaN prediction) makes the model's mean NaN: averaging its other folds would compare it
        # with the others on fewer folds, silently
        means = df.groupby("model", sort=False)[metric].agg(lambda v: float(v.mean()) if v.notna().all() else np.nan)
        run = [m for m in [*dict.fromkeys(models), "mean"] if m in means.index]
        scored = [m for m in run if np.isfinite(means[m])]
        best = min(scored, key=lambda m: (means[m], scored.index(m))) if scored else ""
        n_folds = int(df["fold"].nunique())
        test = test_metrics[(test_metrics["target"] == target) & (test_metrics["split"] == "test")]
        test_by = test.set_index("model")[metric]
        row: dict[str, Any] = {"target": target, "best_model": best, "metric": metric}
        for m in ("ols", "penalized", "mlp"):
            row[m] = float(means[m]) if m in means.index else np.nan
        row["mean"] = float(means["mean"])
        p = np.nan
        verdict = "not compared"
        label = "MSE" if metric == "mse" else metric.replace("_", "-")
        # the models in words, as the rest of the statement names them (a classification run's ols is a logistic
        # regression and its mean baseline the training class shares)
        names = ({"ols": "logistic regression", "mean": "the training class shares"} if metric == "log_loss"
                 else {"ols": "OLS", "mean": "the training mean"})
        names |= {"penalized": "penalized regression", "mlp": "the network"}
        if best:
            statement = f"Best by {n_folds}-fold CV: {names.get(best, best)} ({label} {means[best]:.4g})."
        else:
            statement = f"No model has a CV {label} on every one of the {n_folds} folds."
        undefined = [m for m in run if m not in scored]
        if undefined and scored:
            statement += (f" Left out: {', '.join(names.get(m, m) for m in undefined)} (CV {label} undefined on "
                          f"some fold: a NaN prediction).")
        if "mlp" in means.index and "ols" in means.index:
            a = df[df["model"] == "mlp"].set_index("fold")[metric]
            b = df[df["model"] == "ols"].set_index("fold")[metric].reindex(a.index)
            n_test = df[df["model"] == "mlp"].set_index("fold")["n"].reindex(a.index).to_numpy(dtype=float)
            n_total = float(n_test.sum())
            _, p = corrected_resampled_ttest((a - b).to_numpy(), float(np.mean(n_total - n_test)),
                                             float(np.mean(n_test)))
            better = "network" if means["mlp"] < means["ols"] else "regression"
            rel = abs(means["mlp"] - means["ols"]) / max(means["mlp"], means["ols"]) * 100
            # only ols is tested against the network: the sentence names it, not "regression" (penalized is not
            # part of the test), and says whose metric is how much lower
            ols_name = names["ols"]
            if np.isfinite(p) and p < alpha:
                verdict = better
                winner, loser = ("the network", ols_name) if better == "network" else (ols_name, "the network")
                statement += (f" {winner[0].upper()}{winner[1:]} beats {loser}: CV {label} {means['mlp']:.4g} "
                              f"(network) vs {means['ols']:.4g} ({ols_name}), {rel:.0f}% lower for "
                              f"{'the network' if better == 'network' else ols_name}, "
                              f"corrected resampled t-test p = {p:.2g}.")
            elif np.isfinite(p):
                verdict = "no evidence of a difference"
                statement += (f" No evidence that the network and {ols_name} differ: CV {label} {means['mlp']:.4g} "
                              f"(network) vs {means['ols']:.4g} ({ols_name}), corrected resampled "
                              f"t-test p = {p:.2g}.")
            else:
                statement += (f" The network and {names['ols']} were not compared: the corrected resampled t-test "
                              f"is undefined ({'fewer than 2 folds' if n_folds < 2 else f'a fold without a {label}'}).")
        row.update({"p_value": p, "verdict": verdict, "statement": statement, "n_folds": n_folds})
        finite_test = test[np.isfinite(test[metric].to_numpy(dtype=np.float64))]
        row["test_best_model"] = str(finite_test.loc[finite_test[metric].idxmin(), "model"]) if len(finite_test) else ""
        for m in ("ols", "penalized", "mlp", "mean"):
            row[f"test_{m}"] = float(test_by[m]) if m in test_by.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)


# --------------------------------------------------------------------------- genome-wide
GENOME_SUMMARY_COLUMNS = ["model", "n_targets", "median_test_r2", "q25_test_r2", "q75_test_r2", "mean_test_r2",
                          "share_test_r2_above_0.5", "n_best", "median_test_mse"]


def genome_summary(metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Distributions of test metrics over many targets, and each target's models side by side.

    Parameters
    ----------
    metrics
        ``target, model, split, n, mse, ...`` for many targets (train and test rows).

    Returns
    -------
    summary : pandas.DataFrame
        One row per model (and the ``mean`` baseline, whose test R² is computed from the
        test split's MSE and the training mean): :data:`GENOME_SUMMARY_COLUMNS`; ``n_best``
        counts the targets whose lowest test MSE is the model's alone (``best_model`` reads ``tie`` where
        several models share it, as every model does on a constant target).
    per_target : pandas.DataFrame
        ``target``, then ``r2_<model>`` and ``mse_<model>`` on the test split per model, and
        ``best_model``; sorted by the best test R², highest first.
    """
    test = metrics[metrics["split"] == "test"]
    r2 = test.pivot_table(index="target", columns="model", values="r2", aggfunc="first", dropna=False)
    mse = test.pivot_table(index="target", columns="model", values="mse", aggfunc="first", dropna=False)
    models = [m for m in dict.fromkeys(test["model"]) if m in r2.columns]
    per = pd.DataFrame(index=r2.index)
    for m in models:
        per[f"r2_{m}"] = r2[m]
        per[f"mse_{m}"] = mse[m]
    finite = mse[models].notna().any(axis=1)
    best = pd.Series("", index=mse.index, dtype=object)
    vals = mse.loc[finite, models]
    # a tie (a constant target: every model's test MSE 0) is nobody's win, not the first model's
    tied = vals.eq(vals.min(axis=1), axis=0).sum(axis=1) > 1
    best[finite] = np.where(tied, "tie", vals.idxmin(axis=1))
    per["best_model"] = best
    per = per.reset_index()
    per = per.assign(_top=per[[f"r2_{m}" for m in models]].max(axis=1)).sort_values(
        ["_top", "target"], ascending=[False, True], kind="stable").drop(columns="_top").reset_index(drop=True)
    rows = []
    for m in models:
        v = r2[m].dropna()
        rows.append({"model": m, "n_targets": int(v.size), "median_test_r2": float(v.median()) if v.size else np.nan,
                     "q25_test_r2": float(v.quantile(0.25)) if v.size else np.nan,
                     "q75_test_r2": float(v.quantile(0.75)) if v.size else np.nan,
                     "mean_test_r2": float(v.mean()) if v.size else np.nan,
                     "share_test_r2_above_0.5": float((v > 0.5).mean()) if v.size else np.nan,
                     "n_best": int((per["best_model"] == m).sum()),
                     "median_test_mse": float(mse[m].median())})
    return pd.DataFrame(rows, columns=GENOME_SUMMARY_COLUMNS), per

