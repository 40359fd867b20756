"""Monitoring: has a new batch of samples drifted away from the training data, and is the model still right?

The lifecycle's last step. For every input of the model (a predictor gene, a covariate term) and for
the model's predictions, the new batch is compared with the training samples stored in the bundle
(``reference.tsv``, on the normalized scale the model sees):

* the two-sample **Kolmogorov–Smirnov** statistic (the largest gap between the two empirical distribution
  functions) and a p-value for any change of distribution: the KS test's, or for an input with only two
  values (a covariate's 0/1 dummy column) **Fisher's exact test** on its 2 x 2 table, since with that many
  ties the KS p-value is far too large (a share of ones going from 30 % to 60 % in 20 samples: KS p = 0.06,
  Fisher p = 0.01; at a nominal 5 % the KS test flags almost no batch of 20 drawn from the training
  distribution); Benjamini–Hochberg q-values across the model's inputs (the predictions, a function of the
  inputs, are one more test apart: their q-value is their p-value);
* the **population stability index** ``PSI = sum (p_new - p_ref) ln(p_new / p_ref)`` over the ten
  deciles of the training values, the usual credit-scoring effect size (< 0.1 stable, 0.1–0.25
  moderate, > 0.25 large shift); the shares get half a count per bin (Jeffreys), so that a bin a
  small batch leaves empty adds a bounded term instead of dominating the index (a bin neither side
  reaches, as below the lowest decile when the lowest value repeats, is left out);
* the **shift of the mean** in training standard deviations.

A feature drifts when its q-value is below ``ks_alpha`` *and* the effect is large enough to matter
(PSI or mean shift over the ``warn`` or ``alert`` thresholds): significance alone flags trivial
shifts in big batches, effect size alone flags noise in small ones. When the truth of the batch is
known, the model's metrics on it are compared with those on the test split: the error (MSE, or log-loss
for classification) is flagged when its ratio to the test split's reaches ``error_warn`` / ``error_alert``
*and* a one-sided permutation test of the per-sample losses (:func:`error_rise_test`; the bundle keeps the
test split's) says the rise is unlikely by chance (``p < error_alpha``): two noisy means of squared errors
differ by 1.5 x in one batch of 30 in ten with an unchanged model. A regression model's prediction intervals
(a classification model's prediction sets) are checked too: too few of the batch's samples inside them (one-sided
exact test against their level, ``p < error_alpha``; beta-binomial, as the coverage of conformal intervals
calibrated on ``n`` residuals is itself random, :func:`coverage_p_value`) is a warning.
The verdict is the worst of these: ``ok``, ``warn`` or ``alert``, with the reasons in words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError

DRIFT_COLUMNS = ["feature", "kind", "n_reference", "n_new", "reference_mean", "new_mean", "mean_shift_sd", "psi",
                 "ks_stat", "test", "pvalue", "qvalue", "status"]
PERFORMANCE_COLUMNS = ["metric", "test", "new_batch", "ratio", "p_value", "status"]
PERMUTATIONS = 9999
VERDICTS = ("ok", "warn", "alert")
TEST_NAMES = {"ks": "KS", "fisher_exact": "Fisher"}
PSI_BINS = 10
PSI_PSEUDOCOUNT = 0.5


@dataclass
class Thresholds:
    """Verdict thresholds (the ``monitor`` section of the config)."""

    ks_alpha: float = 0.01
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    shift_warn: float = 0.5
    shift_alert: float = 1.0
    error_warn: float = 1.5
    error_alert: float = 2.0
    error_alpha: float = 0.05
    min_samples: float = 10

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> Thresholds:
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - {f for f in asdict(cls())})
        if unknown:
            raise ConfigError(f"monitor: unknown thresholds {unknown}; known: {', '.join(asdict(cls()))}.")
        bad = {k: v for k, v in cfg.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)}
        if bad:
            raise ConfigError("monitor: thresholds are numbers; got "
                              + ", ".join(f"{k}={v!r}" for k, v in sorted(bad.items())) + ".")
        t = cls(**{k: float(v) for k, v in cfg.items()})
        for lo, hi in (("psi_warn", "psi_alert"), ("shift_warn", "shift_alert"), ("error_warn", "error_alert")):
            if not 0 < getattr(t, lo) <= getattr(t, hi):
                raise ConfigError(f"monitor.{lo} must be > 0 and at most monitor.{hi}; got {getattr(t, lo)} and "
                                  f"{getattr(t, hi)}.")
        for name in ("ks_alpha", "error_alpha"):
            if not 0 < getattr(t, name) < 1:
                raise ConfigError(f"monitor.{name} must be between 0 and 1; got {getattr(t, name)}.")
        if t.min_samples < 1:
            raise ConfigError(f"monitor.min_samples must be at least 1; got {t.min_samples:g}.")
        return t


def psi(reference: np.ndarray, new: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``new`` against ``reference`` over the reference's quantile bins.

    The bin edges are the ``1/bins .. (bins-1)/bins`` quantiles of ``reference``
    (repeated edges merged), or, when the two samples hold at most ``bins`` distinct values together (a 0/1
    dummy column: its deciles would put both values in one bin when one of them is rare), one bin per value; each side's share of bin ``b`` is
    ``(count_b + 0.5) / (n + 0.5 B)`` over the ``B`` bins that either side reaches, so a bin one side leaves
    empty gives a finite term. A bin neither reaches (below the first edge when the reference's lowest value
    fills a decile, as the zeros of a dummy column or of a zero-inflated gene do) is left out: with the
    half-counts it would add ``(q - p) ln(q / p) > 0`` whenever the two sides differ in size (0.22 for two
    0/1 columns with the same 30 % of ones, 190 reference samples and 10 new).
    """
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    values = np.unique(np.r_[ref, new])
    if len(values) <= bins:  # a discrete input (a 0/1 dummy, counts): one bin per value
        c_ref = np.bincount(np.searchsorted(values, ref), minlength=len(values))
        c_new = np.bincount(np.searchsorted(values, new), minlength=len(values))
    else:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        B = len(edges) + 1
        c_ref = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=B)
        c_new = np.bincount(np.searchsorted(edges, new, side="right"), minlength=B)
    reached = (c_ref + c_new) > 0
    c_ref, c_new, B = c_ref[reached], c_new[reached], int(reached.sum())
    p = (c_ref + PSI_PSEUDOCOUNT) / (len(ref) + PSI_PSEUDOCOUNT * B)
    q = (c_new + PSI_PSEUDOCOUNT) / (len(new) + PSI_PSEUDOCOUNT * B)
    return float(np.sum((q - p) * np.log(q / p)))


def distribution_test(reference: np.ndarray, new: np.ndarray) -> tuple[float, str, float]:
    """The KS statistic of ``new`` against ``reference``, the test that gives the p-value, and the p-value.

    The two-sample Kolmogorov–Smirnov test (``ks``), or, where the two samples together hold only two distinct
    values, Fisher's exact test (``fisher_exact``, two-sided) on the 2 x 2 table of their counts: the KS
    p-value assumes continuous data and with so many ties is far too large. The statistic is the KS distance
    either way (for two values, the difference of the two shares of the lower value).
    """
    from scipy import stats

    ks = stats.ks_2samp(reference, new)
    values = np.unique(np.r_[reference, new])
    if len(values) == 2:
        table = [[int(np.sum(reference == v)) for v in values], [int(np.sum(new == v)) for v in values]]
        return float(ks.statistic), "fisher_exact", float(stats.fisher_exact(table).pvalue)
    return float(ks.statistic), "ks", float(ks.pvalue)


def _status(significant: bool, psi_value: float, shift: float, t: Thresholds) -> str:
    if not significant:
        return "ok"
    if psi_value >= t.psi_alert or abs(shift) >= t.shift_alert:
        return "alert"
    if psi_value >= t.psi_warn or abs(shift) >= t.shift_warn:
        return "warn"
    return "ok"


def drift_table(reference: pd.DataFrame, new: pd.DataFrame, features: list[str], thresholds: Thresholds,
                prediction: tuple[np.ndarray, np.ndarray] | dict[str, tuple[np.ndarray, np.ndarray]] | None = None
                ) -> pd.DataFrame:
    """Drift of each feature (and of the predictions) of a new batch against the reference.

    Parameters
    ----------
    reference, new
        Samples x features (normalized scale).
    features
        Columns to compare.
    prediction
        ``(reference predictions, new predictions)``: added as feature ``prediction``
        (for two classes, the probability of the last class); or ``{name: (reference, new)}``,
        one row each (more than two classes: each class's probability ``p[class]``, whose
        q-values are Benjamini–Hochberg over those rows: a batch moving samples between two classes
        that leaves the last one's share alone drifts too).

    Returns
    -------
    pandas.DataFrame
        :data:`DRIFT_COLUMNS`, one row per feature; ``kind`` is ``input`` or ``prediction``; ``test`` the
        test of the p-value (:func:`distribution_test`); ``qvalue`` Benjamini–Hochberg over the inputs (the
        prediction row's is its p-value).
    """
    from .ols import bh_qvalues

    rows = []
    items = [(f, "input", reference[f].to_numpy(dtype=float), new[f].to_numpy(dtype=float)) for f in features]
    if prediction is not None:
        pairs = prediction if isinstance(prediction, dict) else {"prediction": prediction}
        items += [(name, "prediction", np.asarray(ref, float), np.asarray(cur, float))
                  for name, (ref, cur) in pairs.items()]
    for name, kind, ref, cur in items:
        stat, test, pvalue = distribution_test(ref, cur)
        sd = float(ref.std(ddof=1)) if len(ref) > 1 else 0.0
        shift = (float(cur.mean()) - float(ref.mean())) / sd if sd > 0 else (0.0 if cur.mean() == ref.mean()
                                                                               else math.inf)
        rows.append({"feature": name, "kind": kind, "n_reference": len(ref), "n_new": len(cur),
                     "reference_mean": float(ref.mean()), "new_mean": float(cur.mean()), "mean_shift_sd": shift,
                     "psi": psi(ref, cur), "ks_stat": stat, "test": test, "pvalue": pvalue})
    df = pd.DataFrame(rows)
    inputs = (df["kind"] == "input").to_numpy()
    df["qvalue"] = df["pvalue"]
    df.loc[inputs, "qvalue"] = bh_qvalues(df.loc[inputs, "pvalue"].to_numpy())
    outputs = ~inputs
    if outputs.sum() > 1:  # several class probabilities: q over them
        df.loc[outputs, "qvalue"] = bh_qvalues(df.loc[outputs, "pvalue"].to_numpy())
    df["status"] = [_status(q < thresholds.ks_alpha, p, s, thresholds)
                    for q, p, s in zip(df["qvalue"], df["psi"], df["mean_shift_sd"])]
    return df.reindex(columns=DRIFT_COLUMNS)


def sample_losses(task: str, observed: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each sample's loss, whose mean is the error the monitor compares: the squared error for regression,
    ``-log p(true class)`` with ``p`` clipped to ``[1e-15, 1]`` for classification (``observed`` the class
    codes ``0..K-1``, ``predicted`` samples x K probabilities), as in ``mse`` and ``log_loss`` of the
    metrics tables."""
    if task == "classification":
        codes = np.asarray(observed).astype(np.int64)
        proba = np.asarray(predicted, dtype=np.float64)
        return -np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-15, 1.0))
    resid = np.asarray(observed, dtype=np.float64).ravel() - np.asarray(predicted, dtype=np.float64).ravel()
    return resid**2


def error_rise_test(test_losses: np.ndarray, new_losses: np.ndarray, permutations: int = PERMUTATIONS,
                    seed: int = 0) -> float:
    """One-sided permutation p-value of the batch's mean loss being above the test split's.

    Under the null hypothesis the model is as right on the batch as on the test split: the per-sample
    losses of the two are exchangeable, and the batch's mean loss is one draw of the mean of ``len(new)``
    losses taken from the pooled ones. The p-value is the share of splits of the pooled losses whose
    batch part has a mean at least the observed one: over every split when there are at most
    ``permutations`` of them, else ``(1 + hits) / (1 + permutations)`` over that many random ones (seeded:
    the same losses give the same p-value, in whatever order the samples come: each side is sorted first, so that
    the random splits drawn depend on the losses only, not on the order of the batch's or the test split's
    samples). Unlike an F-test of the ratio of the two MSEs, it assumes no
    normal errors: the heavy-tailed errors of expression data would make that test flag unchanged models
    (the tail of squared errors is where a ratio's noise comes from). NaN when either side has no loss.
    """
    a = np.asarray(test_losses, dtype=np.float64).ravel()
    b = np.asarray(new_losses, dtype=np.float64).ravel()
    # sorted: the seeded random splits below are drawn from positions, so the same losses in another sample order
    # would otherwise get another p-value (the demo batch reversed: 0.0631 instead of 0.0672, near error_alpha)
    a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
    if not len(a) or not len(b):
        return np.nan
    pooled = np.r_[b, a]
    n, m = len(pooled), len(b)
    observed = b.sum() - 1e-12 * abs(b.sum())  # splits tied with the observed one count as hits, despite rounding
    if math.comb(n, m) <= permutations:
        from itertools import combinations

        sums = np.array([pooled[list(c)].sum() for c in combinations(range(n), m)])
        return float(np.mean(sums >= observed))
    rng = np.random.default_rng(seed)
    hits, done, block = 0, 0, max(1, min(permutations, 2_000_000 // n))
    while done < permutations:
        k = min(block, permutations - done)
        part = rng.permuted(np.broadcast_to(pooled, (k, n)), axis=1)[:, :m]
        hits += int(np.sum(part.sum(axis=1) >= observed))
        done += k
    return float((1 + hits) / (1 + permutations))


def performance_table(test_metrics: dict[str, float], new_metrics: dict[str, float], task: str,
                      thresholds: Thresholds, test_losses: np.ndarray | None = None,
                      new_losses: np.ndarray | None = None) -> pd.DataFrame:
    """The batch's metrics beside the test split's; the error metric's ratio and its test decide the status.

    With the per-sample losses of both sides (:func:`sample_losses`; a bundle keeps the test split's), the
    error is flagged only when the ratio reaches the thresholds *and* :func:`error_rise_test` gives
    ``p < error_alpha``; without them (a bundle made before it kept them) by the ratio alone, ``p_value``
    NaN.
    """
    from .compare import CLASSIFICATION_METRICS, REGRESSION_METRICS

    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    key = "log_loss" if task == "classification" else "mse"
    tested = test_losses is not None and new_losses is not None and len(test_losses) > 0
    rows = []
    for m in ["n", *names]:
        test, cur = test_metrics.get(m, np.nan), new_metrics.get(m, np.nan)
        ratio = cur / test if m == key and test and np.isfinite(test) and test > 0 else np.nan
        status, p = "", np.nan
        if m == key:
            p = error_rise_test(test_losses, new_losses) if tested else np.nan
            chance = np.isfinite(p) and p >= thresholds.error_alpha
            status = ("alert" if ratio >= thresholds.error_alert else "warn" if ratio >= thresholds.error_warn
                      else "ok") if np.isfinite(ratio) and not chance else "ok"
        rows.append({"metric": m, "test": test, "new_batch": cur, "ratio": ratio, "p_value": p, "status": status})
    return pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)


def interval_coverage(interval: dict[str, Any], truth: np.ndarray, predicted: np.ndarray,
                      alpha: float | None = None, half_width: np.ndarray | None = None) -> dict[str, Any]:
    """The performance row of a regression bundle's prediction interval on a batch whose truth is known: the share
    of the batch's samples inside their interval (``new_batch``) beside the test split's (``test``), and the exact
    one-sided test of fewer covered than the interval's level (``p_value``, :func:`coverage_p_value`).

    With ``alpha`` (``monitor.error_alpha``) the row's status is ``warn`` when ``p_value < alpha``: the intervals
    the predictions come with no longer hold on this batch, even where the mean error did not grow enough to be
    flagged (a batch whose errors have heavier tails, or a few samples far off); never ``alert``, which the error's
    row decides. Without ``alpha`` the row only informs (status empty). ``half_width``: each sample's
    (:meth:`gexpred.deploy.Bundle.half_widths`); by default the interval's one ``half_width``."""
    err = np.abs(np.asarray(truth, dtype=np.float64) - np.asarray(predicted, dtype=np.float64))
    half = np.broadcast_to(interval["half_width"] if half_width is None else half_width, err.shape)
    ok = np.isfinite(err)
    return _coverage_row("interval_coverage", interval, err[ok] <= half[ok], alpha)


def set_coverage(prediction_set: dict[str, Any], codes: np.ndarray, proba: np.ndarray,
                 alpha: float | None = None) -> dict[str, Any]:
    """The performance row of a classification bundle's conformal prediction sets
    (:func:`gexpred.deploy.prediction_sets`) on a batch whose labels are known (``codes``, the classes' indices):
    the share of the batch's samples whose set holds their class beside the test split's, the exact one-sided
    test of fewer than the level (:func:`coverage_p_value`), and with ``alpha`` the status, as
    :func:`interval_coverage`."""
    from .deploy import set_members

    members = set_members(prediction_set, proba)
    codes = np.asarray(codes, dtype=np.int64)
    return _coverage_row("set_coverage", prediction_set, members[np.arange(len(codes)), codes], alpha)


def coverage_p_value(covered: int, n: int, level: float, n_residuals: int | None = None) -> float:
    """One-sided p-value of ``covered`` of a batch's ``n`` samples inside conformal intervals (or prediction sets) of
    ``level``, under the hypothesis that the batch is exchangeable with the samples they were calibrated on.

    A conformal interval's half-width is the ``k = ceil((n_residuals + 1) level)``-th smallest of ``n_residuals``
    scores (:func:`gexpred.deploy.conformal_rank`), so the share of new samples it covers is not the level itself
    but a random draw of ``Beta(k, n_residuals + 1 - k)`` (Vovk 2012, *Conditional validity of inductive conformal
    predictors*; Angelopoulos & Bates, *A gentle introduction to conformal prediction*), and the number of a
    batch's samples it covers is beta-binomial:
    ``p = P(BetaBinomial(n, k, n_residuals + 1 - k) <= covered)``. The binomial test against the level, which takes the coverage as known, warned for batches drawn
    from the training distribution far more often than the test's level says: 8 % of batches of 40 against 80
    residuals, 14 % of batches of 500 against 189, 31 % of 2,000 against 80 (at 5 %). Without ``n_residuals`` (or
    with too few for the level) the exact binomial test against ``level``. NaN for an empty batch."""
    from scipy.stats import betabinom, binomtest

    from .deploy import conformal_rank

    if not n:
        return float("nan")
    k = conformal_rank(int(n_residuals), level) if n_residuals else 0
    if not k:
        return float(binomtest(int(covered), int(n), level, alternative="less").pvalue)
    return float(min(1.0, betabinom.cdf(int(covered), int(n), k, int(n_residuals) + 1 - k)))


def _coverage_row(name: str, spec: dict[str, Any], inside: np.ndarray, alpha: float | None) -> dict[str, Any]:
    """A coverage row of ``performance.tsv``: ``new_batch`` the share of ``inside``, ``test`` the test split's
    (``spec["test_coverage"]``), ``p_value`` the one-sided exact test of fewer than ``spec["level"]``
    (:func:`coverage_p_value`, with the ``spec["n_residuals"]`` it was calibrated on), ``status`` ``warn`` below
    ``alpha`` (``ok`` above, empty without ``alpha``)."""
    n, covered = len(inside), int(np.sum(inside))
    p = coverage_p_value(covered, n, spec["level"], spec.get("n_residuals"))
    status = "" if alpha is None else "warn" if np.isfinite(p) and p < alpha else "ok"
    return {"metric": f"{name} ({100 * spec['level']:g}%)", "test": spec.get("test_coverage", np.nan),
            "new_batch": covered / n if n else np.nan, "ratio": np.nan, "p_value": float(p), "status": status}


def verdict(drift: pd.DataFrame, performance: pd.DataFrame | None, thresholds: Thresholds) -> dict[str, Any]:
    """The worst status of the drift and performance rows, with one reason per flagged row.

    ``n_inputs`` and ``n_drifted`` count the model's inputs only (the rows of ``drift`` whose ``kind`` is
    not ``prediction``); ``prediction_drifted`` says whether the model's predictions drifted.
    """
    reasons: list[str] = []
    worst = 0
    for _, r in drift.iterrows():
        level = VERDICTS.index(r["status"])
        if level:
            what = ("the model's predictions" if r["feature"] == "prediction" else
                    f"the model's predicted {r['feature']}" if r["kind"] == "prediction" else f"input {r['feature']!r}")
            # the predictions' single row is one test (its p-value); the inputs' are q-values over the inputs, the
            # class probabilities' over the classes
            kind_of_p = "p" if r["feature"] == "prediction" and r["kind"] == "prediction" else "q"
            shift = (f"mean shifted by {r['mean_shift_sd']:+.2f} training SD" if np.isfinite(r["mean_shift_sd"])
                     else f"mean {r['new_mean']:.4g}, constant {r['reference_mean']:.4g} in training")
            reasons.append(f"{r['status']}: {what} drifted ({TEST_NAMES[r['test']]} {kind_of_p} = {r['qvalue']:.2g}, "
                           f"PSI = {r['psi']:.2f}, {shift})")
            worst = max(worst, level)
    n_new = int(drift["n_new"].max()) if len(drift) else 0
    if n_new < thresholds.min_samples:
        reasons.append(f"warn: only {n_new} sample{'' if n_new == 1 else 's'} in the batch, fewer than "
                       f"monitor.min_samples ({thresholds.min_samples:g}): too few for the drift tests to detect a "
                       f"shift, so 'ok' could not be trusted")
        worst = max(worst, VERDICTS.index("warn"))
    if performance is not None:
        for _, r in performance[performance["status"] != ""].iterrows():
            level = VERDICTS.index(r["status"])
            if level and str(r["metric"]).startswith(("interval_coverage", "set_coverage")):
                test = f" against {r['test']:.0%} of the test split's" if np.isfinite(r["test"]) else ""
                what = ("prediction intervals", "cover") if r["metric"].startswith("interval") else \
                    ("prediction sets", "hold the class of")
                reasons.append(f"{r['status']}: the {what[0]} ({r['metric'].split('(')[1].rstrip(')')}) "
                               f"{what[1]} {r['new_batch']:.0%} of the batch's samples{test} (exact test "
                               f"of fewer covered than the level: p = {r['p_value']:.2g}): the uncertainty the "
                               f"predictions come with does not hold for this batch")
                worst = max(worst, level)
            elif level:
                tested = (f", permutation p = {r['p_value']:.2g}" if np.isfinite(r["p_value"])
                          else ", not tested for chance: the bundle keeps no test-split losses")
                reasons.append(f"{r['status']}: {r['metric']} on the batch is {r['ratio']:.2f} x the test split's "
                               f"({r['new_batch']:.4g} vs {r['test']:.4g}{tested})")
                worst = max(worst, level)
    inputs, flagged = drift["kind"] != "prediction", drift["status"] != "ok"
    return {
        "verdict": VERDICTS[worst],
        "reasons": reasons,
        "n_inputs": int(inputs.sum()),
        "n_drifted": int((inputs & flagged).sum()),
        "prediction_drifted": bool((~inputs & flagged).any()),
        "truth_given": performance is not None,
        "thresholds": asdict(thresholds),
    }
