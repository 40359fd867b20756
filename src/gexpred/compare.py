"""Metrics and the comparison of models per target.

Every model's predictions are judged with the same metrics on the same
samples; the ``mean`` model (the training mean of the target) is the baseline
any useful model must beat.
"""

from __future__ import annotations

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
