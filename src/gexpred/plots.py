"""Figures for the report, in one consistent, colour-blind-safe style.

Every function takes data (tables, arrays) and a path, and writes one PNG
atomically. Titles and labels may contain gene ids from users' files: they go
through :func:`plain` first, so a ``$`` in an id is drawn as a dollar sign and
never parsed as math text.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import plural  # noqa: E402
from .io import atomic_output  # noqa: E402
from .ols import is_intercept  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = {
    "ols": "#0072B2",
    "mlp": "#D55E00",
    "mean": "#999999",
    "penalized": "#009E73",
    "train": "#56B4E9",
    "val": "#E69F00",
    "identity": "#000000",
    "relu": "#D55E00",
    "sigmoid": "#009E73",
    "tanh": "#CC79A7",
}
MODEL_LABELS = {"ols": "OLS (multiple regression)", "mlp": "Neural network (MLP)", "mean": "Training mean",
                "penalized": "Penalized regression"}

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "text.usetex": False,
    "svg.hashsalt": "gexpred",
}


def plain(text: object) -> str:
    """Text from a data file, safe to hand to matplotlib (no math-text parsing)."""
    return str(text).replace("$", r"\$")


def qq_points(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected (uniform) and observed ``-log10`` p-values of a QQ plot, smallest p first.

    For millions of p-values, every one of the 2,000 smallest and 20,000 evenly spaced others are kept:
    the plot looks the same and draws in a moment.
    """
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    if n > 1 and not (p[1:] >= p[:-1]).all():  # p-values that come sorted (the genome-wide merge's) are not sorted again
        p = np.sort(p)
    rank = np.arange(n)
    if n > 50_000:
        rank = np.unique(np.r_[np.arange(2000), np.linspace(0, n - 1, 20_000).astype(np.int64)])
    obs = -np.log10(np.clip(p[rank], 1e-300, 1))
    exp = -np.log10((rank + 1) / (n + 1))
    return exp, obs


def _test_row(metrics: pd.DataFrame | None, model: str) -> pd.Series | None:
    """The test-split row of ``model`` in a metrics table, or None (no table, or no such row)."""
    if metrics is None:
        return None
    row = metrics[(metrics["model"] == model) & (metrics["split"] == "test")]
    return row.iloc[0] if len(row) else None


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def observed_vs_predicted(pred: pd.DataFrame, models: list[str], target: str, path: str | Path,
                          metrics: pd.DataFrame | None = None, scale_label: str = "normalized expression") -> None:
    """Scatter of observed vs predicted target values on the test split, one panel per model."""
    target = plain(target)
    test = pred[pred["split"] == "test"]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.0), squeeze=False)
        values = np.concatenate([test["observed"].to_numpy(), *[test[m].to_numpy() for m in models]])
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        for ax, model in zip(axes[0], models):
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#444444", lw=1, ls="--", label="y = x")
            ax.scatter(test["observed"], test[model], s=18, alpha=0.8, color=PALETTE.get(model, "#0072B2"),
                       edgecolor="white", linewidth=0.4)
            title = MODEL_LABELS.get(model, model)
            r = _test_row(metrics, model)
            if r is not None:
                title += f"\ntest R² = {r['r2']:.3f}, MSE = {r['mse']:.3g}"
            ax.set_title(title)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_aspect("equal")
            # the target is named in the figure's title: in each panel's label a long id (an Ensembl id) ran
            # into the next panel's
            ax.set_xlabel(f"observed ({scale_label})")
            ax.set_ylabel(f"predicted ({scale_label})")
            ax.legend(loc="upper left", frameon=False)
        fig.suptitle(f"{target}: observed vs predicted on the test split (n = {len(test)})", y=1.02)
        _save(fig, path)


def loss_label(loss: str, scale_label: str = "normalized expression", huber_delta: float = 1.0) -> str:
    """The axis label of a regression network's training loss ``loss`` (``mlp.loss``) on the data scale."""
    if loss == "mae":
        return f"mean absolute error ({scale_label})"
    if loss == "huber":
        return f"mean Huber loss ({scale_label}², threshold {huber_delta:g} target SD)"
    return f"mean squared error ({scale_label}²)"


def loss_curves(history: pd.DataFrame, target: str, path: str | Path, best_epoch: int | list[int] | None = None,
                scale_label: str = "normalized expression", loss: str = "mse", huber_delta: float = 1.0) -> None:
    """Training and validation loss per epoch (log scale); for classification also accuracy.

    Regression histories hold the training loss ``loss`` (``mlp.loss``: ``mse``,
    ``mae`` or ``huber``, labelled by :func:`loss_label`); classification histories
    (with ``train_accuracy``/``val_accuracy`` columns) hold mean cross-entropy,
    drawn beside the accuracy curves, as in the seed's figure. A history with a
    ``member`` column is an ensemble's: one pair of curves per member (the
    first drawn darkest), and ``best_epoch`` lists each member's kept epoch.
    """
    target = plain(target)
    classify = "train_accuracy" in history.columns
    if "member" in history.columns:
        parts = [h for _, h in history.groupby("member", sort=True)]
    else:
        parts = [history]
    kept = list(best_epoch) if isinstance(best_epoch, (list, tuple)) else [best_epoch] * len(parts)
    n = len(parts)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2 if classify else 1, figsize=(11.0 if classify else 6.0, 4.0), squeeze=False)
        panels = [(axes[0, 0], "loss")] + ([(axes[0, 1], "accuracy")] if classify else [])
        for ax, kind in panels:
            for k, (h, best) in enumerate(zip(parts, kept)):
                alpha, lw = (1.0, 1.5) if k == 0 else (0.35, 0.8)
                suffix = "" if n == 1 else (f" ({n} ensemble members)" if k == 0 else None)
                ax.plot(h["epoch"], h[f"train_{kind}"], color=PALETTE["train"], alpha=alpha, lw=lw,
                        label=None if suffix is None else f"training part{suffix}")
                if h[f"val_{kind}"].notna().any():
                    ax.plot(h["epoch"], h[f"val_{kind}"], color=PALETTE["val"], alpha=alpha, lw=lw,
                            label=None if suffix is None else "validation part")
                if best:
                    ax.axvline(best, color="#444444", ls=":", lw=1, alpha=alpha,
                               label=None if k else (f"kept weights (epoch {best})" if n == 1
                                                     else "kept weights (each member)"))
            ax.set_xlabel("epoch")
            ax.legend(frameon=False)
        ax = axes[0, 0]
        ax.set_yscale("log")
        if classify:
            ax.set_ylabel("mean cross-entropy (nats)")
            ax.set_title(f"{target}: network loss per epoch")
            acc = axes[0, 1]
            acc.set_ylabel("accuracy (share of samples correct)")
            acc.set_ylim(0, 1.02)
            acc.set_title(f"{target}: network accuracy per epoch")
        else:
            ax.set_ylabel(loss_label(loss, scale_label, huber_delta))
            ax.set_title(f"{target}: network loss per epoch")
        fig.tight_layout()
        _save(fig, path)


def ci_level(alpha: float) -> str:
    """The confidence level ``1 - alpha`` in percent, as labels write it (``0.05`` -> ``95%``)."""
    return f"{100 * (1 - alpha):.4g}%"


def coefficient_forest(coefs: pd.DataFrame, target: str, path: str | Path, max_terms: int = 40,
                       xlabel: str | None = None, alpha: float = 0.05, model: str = "OLS") -> None:
    """Regression coefficients (``model``: OLS, or logistic regression) with their ``1 - alpha`` confidence
    intervals (the table's ``ci_low``, ``ci_high``; intercept omitted), sorted by estimate."""
    target = plain(target)
    df = coefs[~is_intercept(coefs["term"])].copy()
    if len(df) > max_terms:
        df = df.reindex(df["t"].abs().sort_values(ascending=False).index[:max_terms])
    df = df.sort_values("coef")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.28 * max(len(df), 3)))
        ypos = np.arange(len(df))
        significant = (df["ci_low"] > 0) | (df["ci_high"] < 0)
        colors = np.where(significant, PALETTE["ols"], "#999999")
        ax.hlines(ypos, df["ci_low"], df["ci_high"], color=colors, lw=2)
        ax.scatter(df["coef"], ypos, color=colors, zorder=3, s=22)
        ax.axvline(0, color="#444444", lw=1, ls="--")
        ax.set_yticks(ypos)
        ax.set_yticklabels([plain(t) for t in df["term"]])
        ax.set_xlabel(xlabel or f"coefficient (change in target per unit of predictor), {ci_level(alpha)} CI")
        n_terms = int((~is_intercept(coefs["term"])).sum())
        shown = f"top {max_terms} by |t| of {n_terms}" if n_terms > max_terms else ""
        ax.set_title(f"{target}: {model} coefficients {shown}".strip())
        ax.grid(axis="y", alpha=0)
        _save(fig, path)


def activation_functions(path: str | Path) -> None:
    """The four activation functions a network can use."""
    x = np.linspace(-5, 5, 401)
    funcs = {
        "identity": (x, "identity: f(x) = x"),
        "relu": (np.maximum(0, x), "ReLU: f(x) = max(0, x)"),
        "sigmoid": (1 / (1 + np.exp(-x)), "sigmoid: f(x) = 1 / (1 + e^-x)"),
        "tanh": (np.tanh(x), "tanh: f(x) = tanh(x)"),
    }
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharex=True)
        for ax, (name, (y, title)) in zip(axes, funcs.items()):
            ax.plot(x, y, color=PALETTE[name], lw=2)
            ax.axhline(0, color="#444444", lw=0.6)
            ax.axvline(0, color="#444444", lw=0.6)
            ax.set_title(title)
            ax.set_xlabel("input (weighted sum + bias)")
        axes[0].set_ylabel("output")
        fig.suptitle("Activation functions: identity makes a network linear (multiple regression); "
                     "ReLU, sigmoid and tanh make it non-linear", y=1.04)
        _save(fig, path)


def normal_qq(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A normal QQ plot's points and line, as ``scipy.stats.probplot(values, dist="norm")`` gives them.

    The theoretical quantiles are the normal quantiles of Filliben's estimates of the uniform order statistic
    medians; the line is the least-squares fit of the ordered values on them. Returns ``(theoretical, ordered,
    slope, intercept)``. (Computed here so that a figures job does not import scipy.stats, about a second.)
    """
    from scipy.special import ndtri

    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    medians = np.empty(n)
    if n:
        medians[-1] = 0.5 ** (1.0 / n)
        medians[0] = 1.0 - medians[-1]
        medians[1:-1] = (np.arange(2, n) - 0.3175) / (n + 0.365)
    theoretical = ndtri(medians)
    if n < 2:
        return theoretical, ordered, np.nan, np.nan
    dx = theoretical - theoretical.mean()
    slope = float(dx @ (ordered - ordered.mean()) / (dx @ dx))
    return theoretical, ordered, slope, float(ordered.mean() - slope * theoretical.mean())


def ols_diagnostics(pred: pd.DataFrame, infl: pd.DataFrame, failed: list[str], target: str,
                    path: str | Path, scale_label: str = "normalized expression") -> None:
    """Residuals vs fitted, normal QQ of residuals, and leverage vs studentized residual (Cook's distance).

    ``pred`` holds the OLS predictions (``sample, split, observed, predicted``);
    only training samples are drawn, since the assumptions concern the fit.
    ``failed`` lists the failed assumptions in words (shown under the panels).
    """
    target = plain(target)
    train = pred[pred["split"] == "train"].set_index("sample")
    fitted = train["predicted"].to_numpy()
    resid = train["observed"].to_numpy() - fitted
    infl = infl.set_index("sample").reindex(train.index)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2))
        ax = axes[0]
        ax.scatter(fitted, resid, s=14, alpha=0.7, color=PALETTE["ols"], edgecolor="white", linewidth=0.3)
        ax.axhline(0, color="#444444", lw=1, ls="--")
        order = np.argsort(fitted)
        if len(fitted) >= 10:  # running mean of residuals shows curvature
            k = max(5, len(fitted) // 10)
            smooth = np.convolve(resid[order], np.ones(k) / k, mode="valid")
            ax.plot(fitted[order][k // 2: k // 2 + len(smooth)], smooth, color=PALETTE["mlp"], lw=1.5,
                    label=f"running mean ({k} samples)")
            ax.legend(frameon=False, loc="best")
        ax.set_xlabel(f"fitted value ({scale_label})")
        ax.set_ylabel(f"residual ({scale_label})")
        ax.set_title("residuals vs fitted")

        ax = axes[1]
        osm, osr, slope, intercept = normal_qq(resid)
        ax.scatter(osm, osr, s=14, alpha=0.7, color=PALETTE["ols"], edgecolor="white", linewidth=0.3)
        ax.plot(osm, slope * np.asarray(osm) + intercept, color="#444444", lw=1, ls="--")
        ax.set_xlabel("theoretical normal quantile")
        ax.set_ylabel(f"ordered residual ({scale_label})")
        ax.set_title("normal QQ plot of residuals")

        ax = axes[2]
        n = len(infl)
        cooks = infl["cooks_distance"].to_numpy(dtype=float)
        # leverage 1 (the one training sample of a covariate level): Cook's D and the studentized residual are
        # undefined (NaN in influence.tsv); drawn at 0 as crosses and labelled, never sized by a NaN
        exact = ~np.isfinite(cooks) & (infl["leverage"].to_numpy(dtype=float) > 1.0 - 1e-8)
        big = np.nan_to_num(cooks, nan=0.0) > 4.0 / n
        finite = np.where(np.isfinite(cooks), cooks, 0.0)
        sizes = 10 + 200 * finite / max(finite.max(initial=0.0), 1e-12)
        ax.scatter(infl["leverage"][~exact], infl["studentized_residual"][~exact], s=sizes[~exact], alpha=0.6,
                   color=np.where(big, PALETTE["mlp"], PALETTE["ols"])[~exact], edgecolor="white", linewidth=0.3)
        if exact.any():
            ax.scatter(infl["leverage"][exact], np.zeros(int(exact.sum())), marker="x", s=40, color=PALETTE["mlp"],
                       label="leverage 1: fitted exactly by its own term")
            ax.legend(fontsize=7, loc="best")
        for s in list(infl.index[exact][:5]) + list(infl.index[big][np.argsort(-cooks[big])][:5]):
            y_at = 0.0 if exact[infl.index.get_loc(s)] else infl.loc[s, "studentized_residual"]
            ax.annotate(plain(s), (infl.loc[s, "leverage"], y_at), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.axhline(0, color="#444444", lw=0.8)
        ax.set_xlabel("leverage (hat value)")
        ax.set_ylabel("studentized residual")
        ax.set_title(f"influence: {int(big.sum())} samples with Cook's D > 4/n"
                     + (f", {int(exact.sum())} of leverage 1" if exact.any() else ""))

        verdict = ("Assumptions that fail: " + "; ".join(failed) + ".") if failed else \
            "No assumption check fails (VIF, Breusch-Pagan, Jarque-Bera, Durbin-Watson)."
        fig.suptitle(f"{target}: OLS diagnostics on the training split (n = {len(train)})", y=1.03)
        fig.text(0.5, -0.04, plain(verdict), ha="center", va="top", wrap=True, fontsize=9)
        _save(fig, path)


def recovery_curves(curves_by_method: dict, summary: pd.DataFrame, prevalence: float, path: str | Path, title: str,
                    labels: dict[str, str] | None = None, highlight: str | None = None) -> None:
    """ROC and precision-recall curves of regulator rankings, with the random expectation.

    ``curves_by_method`` maps a method (or a ``(method, normalization)`` pair)
    to :func:`gexpred.recovery.curves`; ``summary`` has a row per method
    (``method`` and, where keys are pairs, ``normalization``) with its
    ``auroc`` and ``aupr``. ``highlight`` is drawn thicker and listed first.
    """
    colors = {"ols": PALETTE["ols"], "penalized": PALETTE["penalized"], "network": PALETTE["mlp"],
              "correlation": PALETTE["mean"], "clr_mean": "#CC79A7", "rank_average": "#882255",
              "tf_activity": "#000000"}
    from .recovery import PRIOR_RANKINGS

    dashed = set(PRIOR_RANKINGS)  # rankings that use the gold standard as prior knowledge: set apart
    labels = labels or {}
    keys = sorted(curves_by_method, key=lambda k: (k if isinstance(k, str) else k[0]) != highlight)
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.8))
        handles, names = [], []
        for key in keys:
            c = curves_by_method[key]
            method = key if isinstance(key, str) else key[0]
            row = summary[summary["method"] == method]
            if not isinstance(key, str) and "normalization" in summary:
                row = row[row["normalization"] == key[1]]
            row = row.iloc[0]
            lw = 2.6 if method == highlight else 1.5
            name = plain(labels.get(method, method)) + (" - the pipeline's ranking" if method == highlight else "")
            ls = (0, (5, 2)) if method in dashed else "-"
            (h,) = ax1.plot(c["fpr"], c["tpr"], color=colors.get(method), lw=lw, ls=ls)
            ax2.plot(c["recall"], c["precision"], color=colors.get(method), lw=lw, ls=ls)
            handles.append(h)
            names.append(f"{name}: AUROC {row['auroc']:.3f}, AUPR {row['aupr']:.3f}")
        (h,) = ax1.plot([0, 1], [0, 1], color="#444444", ls="--", lw=1)
        ax2.axhline(prevalence, color="#444444", ls="--", lw=1)
        handles.append(h)
        names.append(f"random: AUROC 0.5, AUPR {prevalence:.4f}")
        ax1.set_xlabel("false positive rate")
        ax1.set_ylabel("true positive rate\n(share of known edges found)")
        ax1.set_title("ROC")
        ax2.set_xlabel("recall (share of known edges found)")
        ax2.set_ylabel("precision\n(share of calls that are known edges)")
        ax2.set_title("precision-recall")
        for ax in (ax1, ax2):
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
        fig.legend(handles, names, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1,
                   fontsize=8.5)
        fig.suptitle(plain(title), y=1.02, fontsize=10)
        _save(fig, path)


def genome_summary(pvalues: np.ndarray, fits: pd.DataFrame, metrics: pd.DataFrame, path: str | Path) -> None:
    """Genome-wide OLS at a glance: p-value histogram, p-value QQ (of the tested terms' ``pvalues``), R² on
    train vs test."""
    p = np.asarray(pvalues, dtype=np.float64)
    p = p[np.isfinite(p)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        ax = axes[0]
        ax.hist(p, bins=40, range=(0, 1), color=PALETTE["ols"], alpha=0.85)
        ax.axhline(len(p) / 40, color="#444444", ls="--", lw=1, label="uniform (no signal)")
        ax.set_xlabel("coefficient p-value")
        ax.set_ylabel("number of terms")
        ax.set_title(f"p-values of {len(p):,} terms")
        ax.legend(frameon=False)
        ax = axes[1]
        if len(p):
            exp, obs = qq_points(p)
            ax.scatter(exp, obs, s=6, color=PALETTE["ols"], alpha=0.6)
            lim = max(exp.max(), 1)
            ax.plot([0, lim], [0, lim], color="#444444", ls="--", lw=1)
        ax.set_xlabel("expected -log10 p (uniform)")
        ax.set_ylabel("observed -log10 p")
        ax.set_title("p-value QQ plot")
        ax = axes[2]
        wide = metrics[metrics["model"] == "ols"].pivot_table(index="target", columns="split", values="r2")
        if {"train", "test"} <= set(wide.columns):
            ax.scatter(wide["train"], wide["test"], s=6, color=PALETTE["ols"], alpha=0.5)
            lo = float(np.nanmin([wide["test"].min(), 0]))
            ax.plot([lo, 1], [lo, 1], color="#444444", ls="--", lw=1)
            ax.set_title(f"R² of {len(wide):,} targets: median test {np.nanmedian(wide['test']):.2f}")
        ax.set_xlabel("R² on the training split")
        ax.set_ylabel("R² on the test split")
        n_bad = int((fits["status"] != "ok").sum())
        fig.suptitle(f"Genome-wide OLS: {len(fits):,} targets" + (f" ({n_bad} not fitted)" if n_bad else ""), y=1.03)
        _save(fig, path)


def confusion_matrices(pred: pd.DataFrame, models: list[str], target: str, path: str | Path,
                       metrics: pd.DataFrame | None = None) -> None:
    """Confusion matrix of every model on the test split (rows: observed class, columns: predicted)."""
    target = plain(target)
    test = pred[pred["split"] == "test"]
    classes = sorted({c.split(":p[", 1)[1][:-1] for c in pred.columns if ":p[" in c})
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.9), squeeze=False)
        for ax, model in zip(axes[0], models):
            cm = pd.crosstab(pd.Categorical(test["observed"], classes), pd.Categorical(test[model], classes),
                             dropna=False).to_numpy()
            ax.imshow(cm, cmap="Blues", vmin=0)
            for i in range(len(classes)):
                for j in range(len(classes)):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                            color="white" if cm[i, j] > cm.max() / 2 else "black")
            ax.set_xticks(range(len(classes)))
            ax.set_xticklabels([plain(c) for c in classes], rotation=30, ha="right")
            ax.set_yticks(range(len(classes)))
            ax.set_yticklabels([plain(c) for c in classes])
            ax.set_xlabel("predicted class")
            ax.set_ylabel("observed class")
            ax.grid(False)
            title = {"ols": "Logistic regression"}.get(model, MODEL_LABELS.get(model, model))
            r = _test_row(metrics, model)
            if r is not None:
                title += f"\naccuracy {r['accuracy']:.3f}, AUROC {r['auroc']:.3f}"
            ax.set_title(title)
        fig.suptitle(f"{target}: classes on the test split (n = {len(test)})", y=1.03)
        _save(fig, path)


# --------------------------------------------------------------------------- data and preprocessing
SPLIT_COLORS = {"train": "#0072B2", "test": "#E69F00"}
CYCLE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def _color(model: str, i: int = 0) -> str:
    return PALETTE.get(model, CYCLE[i % len(CYCLE)])


def _top_variance(X: np.ndarray, k: int = 2000, fit: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` most variable columns of ``X`` (all when fewer), finite values only.

    When every non-constant column has variance 1 over the ``fit`` rows (z-scored there: their variances say
    nothing about the genes), every column is kept."""
    X = np.asarray(X, dtype=np.float64)
    if fit is not None and fit.sum() > 1:
        sd = np.nanstd(X[fit], axis=0, ddof=1)
        varied = sd > 1e-12
        if varied.any() and np.allclose(sd[varied], 1.0, rtol=1e-6, atol=0):
            return X
    var = np.nanvar(X, axis=0)
    keep = np.argsort(-np.nan_to_num(var, nan=-1.0))[: min(k, X.shape[1])]
    return X[:, np.sort(keep)]


def sample_overview(X: np.ndarray, samples: list[str], split: np.ndarray, path: str | Path,
                    scale_label: str = "normalized expression", n_dropped_samples: int = 0,
                    n_dropped_genes: int = 0, max_heatmap: int = 300) -> None:
    """The samples at a glance: PCA (coloured by split) and the sample-sample correlation heatmap.

    ``X`` is samples x genes. PCA uses the 2,000 most variable genes, centred on their means, or every gene when
    the data are z-scored on the training samples (every gene's variance is then 1 there).
    """
    split = np.asarray(split)
    n_genes = np.shape(X)[1]
    X = _top_variance(X, fit=split == "train")
    n, g = X.shape
    Xc = X - X.mean(axis=0)
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12.0, 4.8), gridspec_kw={"width_ratios": [1, 1.1]})
        if n >= 3 and g >= 2:
            u, s, _ = np.linalg.svd(Xc, full_matrices=False)
            pcs = u[:, :2] * s[:2]
            share = s**2 / max(float((s**2).sum()), 1e-300)
            for name, color in SPLIT_COLORS.items():
                m = split == name
                ax1.scatter(pcs[m, 0], pcs[m, 1], s=18, alpha=0.8, color=color, edgecolor="white", linewidth=0.4,
                            label=f"{name} ({int(m.sum())} samples)")
            ax1.set_xlabel(f"PC1 ({100 * share[0]:.1f}% of variance)")
            ax1.set_ylabel(f"PC2 ({100 * share[1]:.1f}% of variance)")
            ax1.legend(frameon=False)
        genes_used = f"all {g} genes" if g == n_genes else f"{g} most variable genes"
        ax1.set_title(f"PCA of {n} samples\n({genes_used}, {scale_label})")
        # correlation heatmap, samples in split order (train first), at most max_heatmap of them
        order = np.argsort(split != "train", kind="stable")
        if n > max_heatmap:
            order = order[np.linspace(0, n - 1, max_heatmap).astype(int)]
        with np.errstate(invalid="ignore", divide="ignore"):
            C = np.corrcoef(Xc[order])
        im = ax2.imshow(C, cmap="cividis", vmin=np.nanmin(C), vmax=1, interpolation="nearest")
        ax2.grid(False)
        n_train = int((split[order] == "train").sum())
        if 0 < n_train < len(order):
            ax2.axhline(n_train - 0.5, color="white", lw=1)
            ax2.axvline(n_train - 0.5, color="white", lw=1)
        ax2.set_xlabel("sample (training split first, then test)")
        ax2.set_ylabel("sample")
        shown = f"{len(order)} of {n} samples" if n > len(order) else f"{n} samples"
        ax2.set_title(f"Pearson correlation between samples\n({shown})")
        fig.colorbar(im, ax=ax2, label="Pearson correlation", shrink=0.85)
        dropped = (f"; dropped while collecting: {n_dropped_samples} samples, {n_dropped_genes} genes"
                   if (n_dropped_samples or n_dropped_genes) else "; nothing dropped while collecting")
        fig.suptitle(f"Samples: {n} used ({int((split == 'train').sum())} train, {int((split == 'test').sum())} "
                     f"test){dropped}", y=1.02)
        _save(fig, path)


def _quantile_bands(ax: plt.Axes, X: np.ndarray, color: str) -> None:
    """Per-sample 5/25/50/75/95% quantiles of the values, samples ordered by their median."""
    X = np.asarray(X, dtype=np.float64)
    q = np.nanquantile(X, [0.05, 0.25, 0.5, 0.75, 0.95], axis=1)
    order = np.argsort(q[2], kind="stable")
    q = q[:, order]
    x = np.arange(X.shape[0])
    ax.fill_between(x, q[0], q[4], color=color, alpha=0.2, lw=0, label="5-95% of genes")
    ax.fill_between(x, q[1], q[3], color=color, alpha=0.45, lw=0, label="25-75% of genes")
    ax.plot(x, q[2], color=color, lw=1.5, label="median")
    ax.set_xlabel("sample (ordered by its median)")
    ax.legend(frameon=False, fontsize=8, loc="upper left")


def normalization_effect(before: np.ndarray, after: np.ndarray, split: np.ndarray, method: str,
                         path: str | Path, input_label: str = "value in the input matrices") -> None:
    """Distribution of every sample's values before and after normalization (quantile bands)."""
    split = np.asarray(split)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(15.0, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.8]})
        _quantile_bands(axes[0], before, PALETTE["mean"])
        axes[0].set_ylabel(plain(input_label))
        axes[0].set_title("before normalization")
        _quantile_bands(axes[1], after, PALETTE["ols"])
        axes[1].set_ylabel(f"normalized value ({plain(method)})")
        axes[1].set_title(f"after normalization ({plain(method)}, fitted on the training split)")
        ax = axes[2]
        a = np.asarray(after, dtype=np.float64)
        lo, hi = np.nanquantile(a, [0.001, 0.999]) if a.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)
        for name, color in SPLIT_COLORS.items():
            vals = a[split == name].ravel()
            if vals.size:
                ax.hist(vals, bins=bins, density=True, histtype="step", lw=1.8, color=color,
                        label=f"{name} ({int((split == name).sum())} samples)")
        ax.set_xlabel(f"normalized value ({plain(method)})")
        ax.set_ylabel("density (share of values per unit)")
        ax.set_title("after normalization, by split")
        ax.legend(frameon=False, fontsize=8)
        n, g = np.asarray(after).shape
        fig.suptitle(f"Expression of {g} genes in {n} samples before and after normalization", y=1.03)
        _save(fig, path)


# --------------------------------------------------------------------------- across targets
def pvalue_summary(coefs: pd.DataFrame, path: str | Path, fdr: float = 0.05) -> None:
    """P-values of every OLS term of every target (intercepts left out): histogram and QQ plot."""
    tested = coefs[~is_intercept(coefs["term"])]
    p = pd.to_numeric(tested["p_value"], errors="coerce").dropna().to_numpy()
    n_targets = int(tested["target"].nunique()) if "target" in tested else 1
    q = pd.to_numeric(tested["q_value"], errors="coerce") if "q_value" in tested else pd.Series(dtype=float)
    n_sig = int((q < fdr).sum())
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.2))
        ax1.hist(p, bins=20, range=(0, 1), color=PALETTE["ols"], alpha=0.85, edgecolor="white")
        if len(p):
            ax1.axhline(len(p) / 20, color="#444444", ls="--", lw=1, label="expected with no signal (uniform)")
            ax1.legend(frameon=False)
        ax1.set_xlabel("p-value of the coefficient's t-test")
        ax1.set_ylabel("number of terms")
        ax1.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax1.set_title("histogram of p-values")
        if len(p):
            exp, obs = qq_points(p)
            ax2.scatter(exp, obs, s=14, color=PALETTE["ols"], alpha=0.7, edgecolor="white", linewidth=0.3)
            lim = max(float(exp.max()), 1.0)
            ax2.plot([0, lim], [0, lim], color="#444444", ls="--", lw=1, label="y = x (no signal)")
            ax2.legend(frameon=False, loc="upper left")
        ax2.set_xlabel("expected -log10(p) under no signal")
        ax2.set_ylabel("observed -log10(p)")
        ax2.set_title("QQ plot of p-values")
        fig.suptitle(f"{len(p)} coefficient p-values of {n_targets} target{'' if n_targets == 1 else 's'}; {n_sig} "
                     f"term{'' if n_sig == 1 else 's'} with "
                     f"Benjamini-Hochberg q < {fdr:g}", y=1.03)
        _save(fig, path)


def _lower_is_better(metric: str) -> bool:
    return metric in {"mse", "rmse", "mae", "log_loss"}


METRIC_LABELS = {"mse": "mean squared error (normalized expression²)",
                 "rmse": "root mean squared error (normalized expression)",
                 "mae": "mean absolute error (normalized expression)",
                 "r2": "R² (1 - SSE/SST, unitless)", "pearson": "Pearson correlation (unitless)",
                 "accuracy": "accuracy (share of samples)", "auroc": "AUROC (unitless)",
                 "log_loss": "log-loss (nats per sample)"}


METRIC_SHORT = {"mse": "MSE", "mae": "MAE", "r2": "R²", "log_loss": "log-loss", "accuracy": "accuracy"}


def model_comparison(metrics: pd.DataFrame, path: str | Path, split: str = "test", reference: str = "ols",
                     baseline: str = "mean") -> None:
    """Test-split metrics of every model for every target, relative to OLS where the differences are small.

    Left: each model's error relative to the ``reference`` model's on the same
    target (MSE ratio for regression, log-loss ratio for classification; log
    scale, 1 = as good as the reference, left of 1 better), so models whose
    absolute errors differ by a few percent are told apart; the ``baseline``
    (training mean), usually far off, is drawn at the axis edge with its ratio
    printed when it falls outside. Right: the absolute metric (R²; accuracy for
    classification) of the real models, on an axis set by them, the baseline
    left out (its R² is about 0 by construction). One row per target, labelled
    once on the left; the best model by the left metric is ringed.
    """
    sub = metrics[metrics["split"] == split].copy()
    sub["target"] = sub["target"].astype(str)
    sub["model"] = sub["model"].astype(str)
    classify = "mse" not in sub or sub["mse"].isna().all()
    err, absolute = ("log_loss", "accuracy") if classify else ("mse", "r2")
    if err not in sub or sub[err].isna().all():
        err = "mae" if "mae" in sub and sub["mae"].notna().any() else err
    targets = list(dict.fromkeys(sub["target"]))
    models = list(dict.fromkeys(sub["model"]))
    ref = reference if reference in models else models[0]
    real = [m for m in models if m != baseline]
    y = {t: i for i, t in enumerate(targets)}
    offsets = dict(zip(models, np.linspace(-0.22, 0.22, len(models)) if len(models) > 1 else [0.0]))
    table = sub.pivot_table(index="target", columns="model", values=err, aggfunc="first").reindex(targets)
    ratio = table.div(table[ref], axis=0) if ref in table else table * np.nan
    # a classification run's ols is a logistic regression and its baseline the training class shares
    labels_of = ({**MODEL_LABELS, "ols": "Logistic regression", "mean": "Training class shares"} if classify
                 else MODEL_LABELS)
    height = 2.6 + 0.32 * max(len(targets), 3)
    with plt.rc_context(STYLE):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.0, height), sharey=True,
                                      gridspec_kw={"width_ratios": [1.15, 1.0]})
        finite = ratio[[m for m in real if m in ratio]].to_numpy(dtype=float)
        finite = finite[np.isfinite(finite) & (finite > 0)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.5, 2.0)
        lo, hi = min(lo, 0.95) / 1.08, max(hi, 1.05) * 1.08
        for k, model in enumerate(models):
            if model not in ratio:
                continue
            r = ratio[model].to_numpy(dtype=float)
            rows = np.array([y[t] for t in ratio.index]) + offsets[model]
            ok = np.isfinite(r) & (r > 0)
            if model == baseline:  # usually far right: pinned to the edge, value written beside it
                shown = np.clip(r, lo, hi)
                ax.scatter(shown[ok], rows[ok], s=34, marker=">", color=_color(model, k), zorder=3,
                           label=f"{labels_of.get(model, plain(model))} (at the edge when off the scale)")
                for xv, yv, rv in zip(shown[ok], rows[ok], r[ok]):
                    if rv > hi:
                        ax.annotate(f"{rv:.3g}×", (xv, yv), xytext=(-4, 0), textcoords="offset points",
                                    ha="right", va="center", fontsize=7, color=_color(model, k))
                continue
            ax.scatter(r[ok], rows[ok], s=40, color=_color(model, k), zorder=3, edgecolor="white", linewidth=0.5,
                       label=labels_of.get(model, plain(model)))
        best = table[[m for m in real if m in table]].idxmin(axis=1)
        for t, m in best.dropna().items():
            rv = ratio.loc[t, m]
            if np.isfinite(rv) and rv > 0:
                ax.scatter([rv], [y[t] + offsets[m]], s=140, facecolor="none", edgecolor="#000000", lw=1.2, zorder=4)
        ax.axvline(1.0, color="#444444", lw=1, ls="--", zorder=1)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"
                                                                     if hi / lo < 4 else ""))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ref_label = "logistic regression" if classify and ref == "ols" else MODEL_LABELS.get(ref, plain(ref))
        ax.set_xlabel(f"{err} relative to {ref_label} (log scale; left of 1 is better)")
        ax.set_title(f"{METRIC_SHORT.get(err, plain(err))} relative to "
                     f"{'logistic regression' if classify and ref == 'ols' else plain(ref)} (ring: best per target)")
        ax.set_yticks(range(len(targets)))
        ax.set_yticklabels([plain(t) for t in targets], fontsize=8 if len(targets) > 20 else 9)
        ax.set_ylim(len(targets) - 0.5, -0.5)
        ax.grid(axis="y", alpha=0)
        handles, labels = ax.get_legend_handles_labels()
        if absolute in sub and sub[absolute].notna().any():
            for k, model in enumerate(models):
                if model == baseline:
                    continue
                m = sub[sub["model"] == model]
                ax2.scatter(m[absolute], [y[t] + offsets[model] for t in m["target"]], s=40,
                            color=_color(model, k), zorder=3, edgecolor="white", linewidth=0.5)
            ax2.set_xlabel(METRIC_LABELS.get(absolute, plain(absolute)))
            ax2.set_title(f"{METRIC_SHORT.get(absolute, plain(absolute))} (higher is better; "
                          f"{plain(baseline)} baseline not shown)")
        else:
            ax2.set_visible(False)
        ax2.grid(axis="y", alpha=0)
        fig.suptitle(f"Model comparison on the {split} split: {len(targets)} targets, "
                     f"{plural(len(real), 'model')}"
                     + ((" and the training-class-share baseline" if classify else " and the training-mean baseline")
                        if baseline in models else ""))
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0.55 / height, 1, 1))
        _save(fig, path)


CV_COLUMNS = ["target", "model", "fold", "n", "mse", "rmse", "mae", "r2", "pearson"]


def _pinned_range(models_values: list[np.ndarray], baseline_values: np.ndarray,
                  stretch: float = 3.0) -> tuple[float, float] | None:
    """The y range of the real models' values (padded) when the ``baseline``'s would stretch the axis more than
    ``stretch`` times: the range to draw, with the baseline pinned to its edge; None when the baseline fits."""
    real = np.concatenate([v for v in models_values if v.size]) if any(v.size for v in models_values) else None
    if real is None or not baseline_values.size:
        return None
    lo, hi = float(real.min()), float(real.max())
    pad = max(0.12 * (hi - lo), 1e-3 * max(abs(lo), abs(hi), 1.0))
    lo, hi = lo - pad, hi + pad
    full = max(hi, float(baseline_values.max())) - min(lo, float(baseline_values.min()))
    return (lo, hi) if full > stretch * (hi - lo) else None


def cv_metrics(cv: pd.DataFrame, path: str | Path, metric: str = "r2", baseline: str = "mean") -> None:
    """Cross-validation metric per model, one panel per target: a box per model and one dot per fold.

    The ``baseline`` (training mean) is usually far from every model (R² about 0 against 0.9): drawn on the same
    axis it squeezes the models' boxes into a line. When it would stretch the axis more than three times, the
    axis is set by the models and the baseline's folds are pinned to its edge (triangles) with their median
    written beside them.
    """
    cv = cv.copy()
    cv["target"] = cv["target"].astype(str)
    cv["model"] = cv["model"].astype(str)
    targets = list(dict.fromkeys(cv["target"]))
    models = list(dict.fromkeys(cv["model"]))
    ncol = min(len(targets), 3) or 1
    nrow = int(np.ceil(max(len(targets), 1) / ncol))
    rng = np.random.default_rng(0)  # horizontal jitter only, fixed so the figure is reproducible
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.6 * nrow), squeeze=False)
        for ax, target in zip(axes.ravel(), targets):
            sub = cv[cv["target"] == target]
            data = [sub.loc[sub["model"] == m, metric].dropna().to_numpy() for m in models]
            base = data[models.index(baseline)] if baseline in models else np.empty(0)
            limits = _pinned_range([v for m, v in zip(models, data) if m != baseline], base)
            boxed = [np.empty(0) if (m == baseline and limits) else v for m, v in zip(models, data)]
            ax.boxplot(boxed, positions=range(len(models)), widths=0.5, showfliers=False,
                       medianprops={"color": "#000000"})
            for k, (m, vals) in enumerate(zip(models, data)):
                jitter = k + rng.uniform(-0.12, 0.12, len(vals))
                if m == baseline and limits:
                    median = float(np.median(vals))
                    below = median < limits[0]
                    edge = limits[0] if below else limits[1]
                    ax.scatter(jitter, np.full(len(vals), edge), s=34, marker="v" if below else "^",
                               color=_color(m, k), zorder=3, clip_on=False)
                    ax.annotate(f"median {median:.3g}\n(off the axis)", (k, edge), xytext=(0, 8 if below else -8),
                                textcoords="offset points", ha="center", va="bottom" if below else "top",
                                fontsize=7, color="#555555")
                    continue
                ax.scatter(jitter, vals, s=20, color=_color(m, k), alpha=0.85,
                           zorder=3, edgecolor="white", linewidth=0.4)
            if limits:
                ax.set_ylim(*limits)
            ax.set_xticks(range(len(models)))
            ax.set_xticklabels([plain(m) for m in models])
            ax.set_xlim(-0.6, len(models) - 0.4)
            n_folds = int(sub["fold"].nunique()) if "fold" in sub else 0
            ax.set_title(f"{plain(target)} ({n_folds} folds)")
            ax.set_ylabel(METRIC_LABELS.get(metric, plain(metric)))
            ax.set_xlabel("model")
        for ax in axes.ravel()[len(targets):]:
            ax.set_visible(False)
        fig.suptitle(f"Cross-validation inside the training split: {METRIC_SHORT.get(metric, plain(metric))} per "
                     f"fold ({'lower' if _lower_is_better(metric) else 'higher'} is better)", y=1.02)
        fig.tight_layout()
        _save(fig, path)


# --------------------------------------------------------------------------- deploy & monitoring
VERDICT_COLOURS = {"ok": "#009E73", "warn": "#E69F00", "alert": "#D55E00"}


def drift_figure(reference: pd.DataFrame, new: pd.DataFrame, drift: pd.DataFrame, target: str, verdict: str,
                 path: str | Path, truth: np.ndarray | None = None, predicted: np.ndarray | None = None,
                 max_features: int = 4, half_width: np.ndarray | None = None, level: float | None = None) -> None:
    """Monitoring figure of a new batch against the training samples.

    Left: PSI and KS statistic of every input and of the predictions, coloured by status. Middle:
    training vs new-batch distributions of the most drifted inputs and of the predictions. Right
    (when the truth is known): observed vs predicted on the new batch; with ``half_width`` (each sample's, at
    ``level``) every prediction's interval as a vertical bar, the samples outside theirs in vermillion, and the
    share covered in the title.
    """
    with plt.rc_context(STYLE):
        n_right = 1 if truth is not None else 0
        fig, axes = plt.subplots(1, 2 + n_right, figsize=(5.2 * (2 + n_right), 4.4), squeeze=False)
        ax = axes[0, 0]
        d = drift.sort_values("psi", ascending=True)
        colours = [VERDICT_COLOURS.get(s, "#999999") for s in d["status"]]
        ax.barh(range(len(d)), d["psi"], color=colours)
        ax.set_yticks(range(len(d)), [plain(f) for f in d["feature"]], fontsize=7 if len(d) > 20 else 9)
        # each input's q-value beside its bar: a large PSI stays green when the test cannot tell the change
        # from chance (a small batch)
        # (the predictions' single test has its p-value, not a q-value over the inputs)
        q = pd.to_numeric(d["qvalue"], errors="coerce") if "qvalue" in d else pd.Series(np.nan, index=d.index)
        single = ((d["kind"] != "input") & (d["feature"] == "prediction")).to_numpy() if "kind" in d else \
            np.zeros(len(d), dtype=bool)
        if "pvalue" in d:
            q = q.where(~single, pd.to_numeric(d["pvalue"], errors="coerce"))
        psi = pd.to_numeric(d["psi"], errors="coerce").fillna(0.0)
        for i, (x, qq, one) in enumerate(zip(psi, q, single)):
            if np.isfinite(qq):
                ax.text(x, i, f" {'p' if one else 'q'} {qq:.2g}", va="center", fontsize=6 if len(d) > 20 else 7,
                        color="#555555")
        if len(d) and q.notna().any():
            ax.set_xlim(0, max(float(psi.max()), 1e-9) * 1.22)
        ax.set_xlabel("population stability index (PSI, unitless)\nq: the drift test's q-value (p: the predictions')")
        ax.set_title("Drift per input and of the predictions")
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=c, label=k) for k, c in VERDICT_COLOURS.items()], title="status",
                  loc="lower right", fontsize=8)
        ax2 = axes[0, 1]
        order = drift[drift["kind"] == "input"].sort_values("ks_stat", ascending=False)["feature"].tolist()
        shown = order[:max_features]
        data, labels = [], []
        for f in shown:
            data += [reference[f].to_numpy(dtype=float), new[f].to_numpy(dtype=float)]
            labels += [plain(f), ""]
        # black medians: matplotlib's default orange would vanish in the new batch's orange boxes
        parts = ax2.boxplot(data, patch_artist=True, widths=0.6, showfliers=False,
                            medianprops={"color": "#000000"})
        for k, box in enumerate(parts["boxes"]):
            box.set_facecolor(PALETTE["train"] if k % 2 == 0 else PALETTE["val"])
        ax2.set_xticks(np.arange(1, len(data) + 1, 2) + 0.5, [plain(f) for f in shown], rotation=30, ha="right")
        ax2.set_ylabel("normalized expression (training SD units for z-score)")
        ax2.set_title("Most drifted inputs: training (blue) vs new batch (orange)")
        if truth is not None and predicted is not None:
            ax3 = axes[0, 2]
            truth, predicted = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
            title = "New batch: observed vs predicted"
            lo = float(np.nanmin([np.nanmin(truth), np.nanmin(predicted)]))
            hi = float(np.nanmax([np.nanmax(truth), np.nanmax(predicted)]))
            if half_width is not None:
                half = np.broadcast_to(np.asarray(half_width, dtype=float), predicted.shape)
                inside = np.abs(truth - predicted) <= half
                # inside blue, outside vermillion (the alert colour): told apart in colour-blind vision too
                for keep, colour in ((inside, PALETTE["ols"]), (~inside, VERDICT_COLOURS["alert"])):
                    if keep.any():
                        ax3.errorbar(truth[keep], predicted[keep], yerr=half[keep], fmt="o", ms=3.5, color=colour,
                                     ecolor=colour, elinewidth=0.8, alpha=0.7, capsize=0)
                lo = min(lo, float(np.nanmin(predicted - half)))
                hi = max(hi, float(np.nanmax(predicted + half)))
                shown = f"{100 * level:g}% " if level is not None else ""
                title += (f"\n{shown}prediction intervals cover {int(inside.sum())} of {len(inside)} "
                          f"(vermillion: outside)")
            else:
                ax3.scatter(truth, predicted, s=14, color=PALETTE["mlp"], alpha=0.8)
            ax3.plot([lo, hi], [lo, hi], color="#000000", lw=0.8, ls="--")
            ax3.set_xlabel("observed (normalized scale)")
            ax3.set_ylabel("predicted (normalized scale)")
            ax3.set_title(title)
        fig.suptitle(f"{plain(target)}: verdict {verdict.upper()}", color=VERDICT_COLOURS.get(verdict, "#000000"),
                     fontweight="bold")
        fig.tight_layout()
        _save(fig, path)


def genome_comparison(per_target: pd.DataFrame, summary: pd.DataFrame, path: str | Path, n_extreme: int = 8) -> None:
    """Genome-wide model comparison: test R² distributions per model, network vs OLS per target, and the
    best and worst predicted targets."""
    models = list(summary["model"])
    with plt.rc_context(STYLE):
        both = "r2_ols" in per_target and "r2_mlp" in per_target
        fig, axes = plt.subplots(1, 3 if both else 2, figsize=(15 if both else 10.5, 4.4), squeeze=False)
        ax = axes[0, 0]
        values = [per_target[f"r2_{m}"].dropna().to_numpy() for m in models]
        lo = max(-1.0, min((float(v.min()) for v in values if v.size), default=0.0))
        bins = np.linspace(lo, 1.0, 41)
        for m, v in zip(models, values):
            if v.size:
                med = float(np.median(v))
                ax.hist(np.clip(v, lo, 1.0), bins=bins, histtype="step", lw=1.8, color=PALETTE.get(m, "#444444"),
                        label=f"{MODEL_LABELS.get(m, m)} (median {med:.2f})")
        ax.set_xlabel("test R² (1 − SSE/SST; values below the axis clipped)")
        ax.set_ylabel("targets")
        ax.set_title(f"Test R² over {len(per_target)} targets")
        ax.legend(frameon=False, fontsize=8)
        k = 1
        if both:
            ax = axes[0, 1]
            x, y = per_target["r2_ols"].to_numpy(), per_target["r2_mlp"].to_numpy()
            ax.scatter(np.clip(x, lo, 1), np.clip(y, lo, 1), s=6, alpha=0.5, color=PALETTE["mlp"])
            ax.plot([lo, 1], [lo, 1], color="#000000", lw=0.8, ls="--")
            wins = int(np.sum(y > x))
            ax.set_xlabel("OLS test R²")
            ax.set_ylabel("network test R²")
            ax.set_title(f"Network above the diagonal for {wins} of {int(np.sum(np.isfinite(x) & np.isfinite(y)))}")
            k = 2
        ax = axes[0, k]
        score = per_target[[f"r2_{m}" for m in models if m != "mean"]].max(axis=1)
        order = score.dropna().sort_values()
        pick = list(order.index[:n_extreme]) + list(order.index[-n_extreme:]) if len(order) > 2 * n_extreme \
            else list(order.index)
        pick = list(dict.fromkeys(pick))
        ax.barh(range(len(pick)), score[pick], color=[PALETTE["ols"] if score[i] >= order.median() else
                                                      PALETTE["mean"] for i in pick])
        ax.set_yticks(range(len(pick)), [plain(per_target.loc[i, "target"]) for i in pick], fontsize=7)
        ax.set_xlabel("best model's test R²")
        ax.set_title(f"Worst and best {n_extreme} targets")
        fig.tight_layout()
        _save(fig, path)


# --------------------------------------------------------------------------- importance
VERDICT_COLORS = {"confirmed": "#009E73", "not confirmed": "#D55E00", "not tested": "#999999",
                  "negligible": "#DDDDDD"}


def importance(tables: dict[str, pd.DataFrame], interactions: pd.DataFrame | None, target: str,
               path: str | Path, max_predictors: int = 15, max_pairs: int = 8, loss: str = "held-out loss") -> None:
    """Which predictors each model uses, and the network's interactions.

    Left: permutation importance on held-out folds (mean and sd over folds) of
    every model, predictors in the order of the first model's ranking (the
    network's when present). Middle: the network's mean absolute integrated
    gradient. Right: the strongest pairs by interaction strength, coloured by
    what the regression's test made of them. ``loss`` names the permutation importance's loss on the axis
    (``held-out MSE``, ``held-out log-loss``).
    """
    target = plain(target)
    models = [m for m in ("mlp", "ols", "penalized") if m in tables] + \
        [m for m in tables if m not in ("mlp", "ols", "penalized")]
    lead = tables[models[0]]
    order = list(lead["predictor"].astype(str))[:max_predictors]
    has_ig = bool("mlp" in tables and tables["mlp"]["ig_mean_abs"].notna().any())
    has_pairs = bool(interactions is not None and len(interactions) > 0)
    ncols = 1 + has_ig + has_pairs
    widths = [3.0] + [1.6] * has_ig + [2.4] * has_pairs
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(3.2 + 2.2 * ncols, 1.2 + 0.3 * max(len(order), 4)),
                                 gridspec_kw={"width_ratios": widths}, squeeze=False)
        axes = axes[0]
        ax = axes[0]
        ypos = np.arange(len(order))[::-1]
        h = 0.8 / len(models)
        for i, m in enumerate(models):
            t = tables[m].set_index(tables[m]["predictor"].astype(str)).reindex(order)
            off = (i - (len(models) - 1) / 2) * h
            ax.barh(ypos - off, t["perm_mean"], height=h, xerr=t["perm_sd"].fillna(0),
                    color=_color(m, i), label=plain(m), error_kw={"lw": 0.8, "capsize": 1.5})
        ax.axvline(0, color="#444444", lw=0.8)
        ax.set_yticks(ypos)
        ax.set_yticklabels([plain(p) for p in order])
        ax.set_xlabel(f"rise of {loss} when shuffled\n(mean ± sd over folds)")
        ax.set_title(f"{target}: permutation importance")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
        ax.grid(axis="y", alpha=0)
        k = 1
        if has_ig:
            ax = axes[k]
            k += 1
            t = tables["mlp"].set_index(tables["mlp"]["predictor"].astype(str)).reindex(order)
            ax.barh(ypos, t["ig_mean_abs"], color=_color("mlp"), height=0.6)
            ax.set_yticks(ypos)
            ax.set_yticklabels([])
            ax.set_xlabel("mean |integrated gradient|")
            ax.set_title("network attribution")
            ax.grid(axis="y", alpha=0)
        if has_pairs:
            ax = axes[k]
            top = interactions.head(max_pairs)
            yp = np.arange(len(top))[::-1]
            colors = [VERDICT_COLORS.get(str(v), "#999999") for v in top["verdict"]]
            ax.barh(yp, top["h_strength"], color=colors, height=0.6)
            ax.set_yticks(yp)
            ax.set_yticklabels([f"{plain(a)} × {plain(b)}" for a, b in zip(top["gene_a"], top["gene_b"])],
                               fontsize=8)
            ax.set_xlabel("interaction strength (prediction scale)")
            ax.set_title("network interactions")
            from matplotlib.patches import Patch
            from matplotlib.transforms import offset_copy

            handles = [Patch(color=c, label=v) for v, c in VERDICT_COLORS.items()
                       if v in set(top["verdict"].astype(str))]
            from .importance import interaction_test_words

            model, test = interaction_test_words(interactions)
            ax.legend(handles=handles, title=f"{'OLS' if model == 'OLS' else 'logit'} {test} of a:b", fontsize=7,
                      title_fontsize=7, ncol=2,
                      loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False,
                      # below the tick labels and the axis label (in points: a short figure's axes fraction is
                      # too little), where it hides no bar
                      bbox_transform=offset_copy(ax.transAxes, fig=fig, y=-34, units="points"))
            ax.grid(axis="y", alpha=0)
        fig.tight_layout()
        _save(fig, path)
