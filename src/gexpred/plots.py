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
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_output  # noqa: E402

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
MODEL_LABELS = {"ols": "OLS (multiple regression)", "mlp": "Neural network (MLP)", "mean": "Training mean"}

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
            if metrics is not None:
                row = metrics[(metrics["model"] == model) & (metrics["split"] == "test")]
                if len(row):
                    r = row.iloc[0]
                    title += f"\ntest R² = {r['r2']:.3f}, MSE = {r['mse']:.3g}"
            ax.set_title(title)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_aspect("equal")
            ax.set_xlabel(f"observed {target} ({scale_label})")
            ax.set_ylabel(f"predicted ({scale_label})")
            ax.legend(loc="upper left", frameon=False)
        fig.suptitle(f"{target}: observed vs predicted on the test split (n = {len(test)})", y=1.02)
        _save(fig, path)


def loss_curves(history: pd.DataFrame, target: str, path: str | Path, best_epoch: int | None = None,
                scale_label: str = "normalized expression") -> None:
    """Training and validation loss (MSE) per epoch, log scale."""
    target = plain(target)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 4.0))
        ax.plot(history["epoch"], history["train_loss"], color=PALETTE["train"], label="training part")
        if history["val_loss"].notna().any():
            ax.plot(history["epoch"], history["val_loss"], color=PALETTE["val"], label="validation part")
        if best_epoch:
            ax.axvline(best_epoch, color="#444444", ls=":", lw=1, label=f"kept weights (epoch {best_epoch})")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"mean squared error ({scale_label}²)")
        ax.set_title(f"{target}: network loss per epoch")
        ax.legend(frameon=False)
        _save(fig, path)


def coefficient_forest(coefs: pd.DataFrame, target: str, path: str | Path, max_terms: int = 40,
                       xlabel: str | None = None) -> None:
    """OLS coefficients with 95% confidence intervals (intercept omitted), sorted by estimate."""
    target = plain(target)
    df = coefs[(coefs["term"] != "const") & ~coefs["term"].astype(str).str.startswith("const[")].copy()
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
        ax.set_xlabel(xlabel or "coefficient (change in target per unit of predictor), 95% CI")
        shown = f"top {max_terms} by |t| of {int((coefs['term'] != 'const').sum())}" if len(coefs) - 1 > max_terms else ""
        ax.set_title(f"{target}: OLS coefficients {shown}".strip())
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


def ols_diagnostics(pred: pd.DataFrame, infl: pd.DataFrame, failed: list[str], target: str,
                    path: str | Path, scale_label: str = "normalized expression") -> None:
    """Residuals vs fitted, normal QQ of residuals, and leverage vs studentized residual (Cook's distance).

    ``pred`` holds the OLS predictions (``sample, split, observed, predicted``);
    only training samples are drawn, since the assumptions concern the fit.
    ``failed`` lists the failed assumptions in words (shown under the panels).
    """
    from scipy import stats

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
        (osm, osr), (slope, intercept, _) = stats.probplot(resid, dist="norm")
        ax.scatter(osm, osr, s=14, alpha=0.7, color=PALETTE["ols"], edgecolor="white", linewidth=0.3)
        ax.plot(osm, slope * np.asarray(osm) + intercept, color="#444444", lw=1, ls="--")
        ax.set_xlabel("theoretical normal quantile")
        ax.set_ylabel(f"ordered residual ({scale_label})")
        ax.set_title("normal QQ plot of residuals")

        ax = axes[2]
        n = len(infl)
        cooks = infl["cooks_distance"].to_numpy()
        big = cooks > 4.0 / n
        sizes = 10 + 200 * cooks / max(cooks.max(), 1e-12)
        ax.scatter(infl["leverage"], infl["studentized_residual"], s=sizes, alpha=0.6,
                   color=np.where(big, PALETTE["mlp"], PALETTE["ols"]), edgecolor="white", linewidth=0.3)
        for s in infl.index[big][np.argsort(-cooks[big])][:5]:
            ax.annotate(plain(s), (infl.loc[s, "leverage"], infl.loc[s, "studentized_residual"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="#444444", lw=0.8)
        ax.set_xlabel("leverage (hat value)")
        ax.set_ylabel("studentized residual")
        ax.set_title(f"influence: {int(big.sum())} samples with Cook's D > 4/n")

        verdict = ("Assumptions that fail: " + "; ".join(failed) + ".") if failed else \
            "No assumption check fails (VIF, Breusch-Pagan, Jarque-Bera, Durbin-Watson)."
        fig.suptitle(f"{target}: OLS diagnostics on the training split (n = {len(train)})", y=1.03)
        fig.text(0.5, -0.04, plain(verdict), ha="center", va="top", wrap=True, fontsize=9)
        _save(fig, path)


def recovery_curves(curves_by_method: dict[str, dict[str, np.ndarray]], summary: pd.DataFrame, prevalence: float,
                    path: str | Path, title: str) -> None:
    """ROC and precision-recall curves of regulator rankings, with the random expectation."""
    colors = {"ols": PALETTE["ols"], "correlation": PALETTE["mean"]}
    labels = {"ols": "OLS |t| (pipeline's predictors)", "correlation": "|correlation| (baseline)"}
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.4))
        for method, c in curves_by_method.items():
            row = summary[summary["method"] == method].iloc[0]
            ax1.plot(c["fpr"], c["tpr"], color=colors.get(method), lw=1.8,
                     label=f"{labels.get(method, method)}: AUROC {row['auroc']:.3f}")
            ax2.plot(c["recall"], c["precision"], color=colors.get(method), lw=1.8,
                     label=f"{labels.get(method, method)}: AUPR {row['aupr']:.3f}")
        ax1.plot([0, 1], [0, 1], color="#444444", ls="--", lw=1, label="random: AUROC 0.5")
        ax2.axhline(prevalence, color="#444444", ls="--", lw=1, label=f"random: AUPR {prevalence:.3f}")
        ax1.set_xlabel("false positive rate")
        ax1.set_ylabel("true positive rate (share of known edges found)")
        ax1.set_title("ROC")
        ax2.set_xlabel("recall (share of known edges found)")
        ax2.set_ylabel("precision (share of calls that are known edges)")
        ax2.set_title("precision-recall")
        for ax in (ax1, ax2):
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.legend(frameon=False, loc="lower right" if ax is ax1 else "upper right", fontsize=8)
        fig.suptitle(plain(title), y=1.02)
        _save(fig, path)


def genome_summary(coefs: pd.DataFrame, fits: pd.DataFrame, metrics: pd.DataFrame, path: str | Path) -> None:
    """Genome-wide OLS at a glance: p-value histogram, p-value QQ, R² on train vs test."""
    p = coefs.loc[coefs["term"] != "const", "p_value"].dropna().to_numpy()
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
            obs = -np.log10(np.sort(np.clip(p, 1e-300, 1)))
            exp = -np.log10(np.arange(1, len(p) + 1) / (len(p) + 1))
            ax.scatter(exp, obs, s=6, color=PALETTE["ols"], alpha=0.6)
            lim = max(exp.max(), 1)
            ax.plot([0, lim], [0, lim], color="#444444", ls="--", lw=1)
        ax.set_xlabel("expected -log10 p (uniform)")
        ax.set_ylabel("observed -log10 p")
        ax.set_title("p-value QQ plot")
        ax = axes[2]
        wide = metrics.pivot_table(index="target", columns="split", values="r2")
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
            if metrics is not None:
                row = metrics[(metrics["model"] == model) & (metrics["split"] == "test")]
                if len(row):
                    r = row.iloc[0]
                    title += f"\naccuracy {r['accuracy']:.3f}, AUROC {r['auroc']:.3f}"
            ax.set_title(title)
        fig.suptitle(f"{target}: classes on the test split (n = {len(test)})", y=1.03)
        _save(fig, path)
