"""gexpred's regression statistics against R's ``lm()`` and ``glm()``: an implementation independent of
statsmodels, scipy and numpy (R's own QR, t and F distributions, IRLS).

Skipped where ``Rscript`` is not installed (Debian: ``apt-get install r-base-core``; ``.ci/run`` installs
it). Every statistic is held to 1e-8 relative, p-values included; a coefficient that is ~0 next to its
standard error (the intercept of centred data), and its t, to within 1e-10 standard errors.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gexpred import logit, ols
from gexpred.batched import fit_many

pytestmark = pytest.mark.skipif(shutil.which("Rscript") is None, reason="R is not installed (Debian: r-base-core)")

RTOL = 1e-8

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE); dir <- args[1]
X <- as.matrix(read.delim(file.path(dir, "X.tsv"))); Y <- as.matrix(read.delim(file.path(dir, "Y.tsv")))
lab <- scan(file.path(dir, "label.txt"), quiet = TRUE)
out <- function(d, f) write.table(format(d, digits = 17, trim = TRUE), file.path(dir, f), sep = "\t", quote = FALSE,
                                  row.names = FALSE)
table_of <- function(s, ci, target) data.frame(target = target, term = c("const", colnames(X)),
  coef = s[, 1], std_err = s[, 2], t = s[, 3], p_value = s[, 4], ci_low = ci[, 1], ci_high = ci[, 2])
coefs <- list(); fits <- list()
for (j in seq_len(ncol(Y))) {
  fit <- lm(Y[, j] ~ X); s <- summary(fit); f <- s$fstatistic
  coefs[[j]] <- table_of(s$coefficients, confint(fit), colnames(Y)[j])
  fits[[j]] <- data.frame(target = colnames(Y)[j], r2 = s$r.squared, adj_r2 = s$adj.r.squared, f_stat = f[1],
    f_pvalue = pf(f[1], f[2], f[3], lower.tail = FALSE), log_likelihood = as.numeric(logLik(fit)),
    aic = AIC(fit), bic = BIC(fit))
}
out(do.call(rbind, coefs), "lm_coefficients.tsv"); out(do.call(rbind, fits), "lm_fits.tsv")
# inference beyond the coefficients, for target T3, all in R: nested F-test of {g1, g2} (anova), influence,
# VIF, Breusch-Pagan (Koenker's n R^2 of e^2 on the design), Jarque-Bera, Durbin-Watson, BH q-values
y <- Y[, 4]; fit <- lm(y ~ X); e <- residuals(fit); n <- length(e)
a <- anova(lm(y ~ X[, -c(2, 3)]), fit)
out(data.frame(f_stat = a$F[2], df_num = a$Df[2], df_den = a$Res.Df[2], p_value = a$"Pr(>F)"[2]), "nested.tsv")
out(data.frame(leverage = hatvalues(fit), cooks_distance = cooks.distance(fit),
               studentized_residual = rstudent(fit)), "influence.tsv")
vif <- sapply(seq_len(ncol(X)), function(j) 1 / (1 - summary(lm(X[, j] ~ X[, -j]))$r.squared))
bp <- n * summary(lm(e^2 ~ X))$r.squared
d <- e - mean(e); m2 <- mean(d^2); S <- mean(d^3) / m2^1.5; K <- mean(d^4) / m2^2
jb <- n / 6 * (S^2 + (K - 3)^2 / 4)
out(data.frame(check = c(rep("vif", ncol(X)), "breusch_pagan", "jarque_bera", "durbin_watson"),
               statistic = c(vif, bp, jb, sum(diff(e)^2) / sum(e^2)),
               p_value = c(rep(NA, ncol(X)), pchisq(bp, ncol(X), lower.tail = FALSE),
                           pchisq(jb, 2, lower.tail = FALSE), NA)), "diagnostics.tsv")
pv <- do.call(rbind, coefs)
pv <- pv[pv$term != "const", ]
out(data.frame(target = pv$target, term = pv$term, q_value = p.adjust(pv$p_value, "BH")), "qvalues.tsv")
g <- glm(lab ~ X, family = binomial, control = glm.control(epsilon = 1e-14, maxit = 100))
out(table_of(summary(g)$coefficients, confint.default(g), "label"), "glm_coefficients.tsv")
out(data.frame(log_likelihood = as.numeric(logLik(g)), aic = AIC(g), bic = BIC(g)), "glm_fit.tsv")
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[np.ndarray, np.ndarray, np.ndarray, Path]:
    """Correlated predictors on different scales; targets with no, weak and strong signal, some with large
    means (the batched engine's exact-refit path); a binary label. R fits them all."""
    rng = np.random.default_rng(2024)
    n, p, m = 90, 5, 60
    X = rng.normal(size=(n, p)) @ (np.eye(p) + 0.5 * rng.normal(size=(p, p))) * np.logspace(-1, 2, p)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    strength = np.resize([0.0, 0.3, 1.0, 4.0, 30.0], m)
    offset = np.resize([0.0, 0.0, 5.0, 1e4], m)
    Y = Xs @ rng.normal(size=(p, m)) * strength + rng.normal(size=(n, m)) + offset
    label = (Xs[:, 0] - 0.7 * Xs[:, 2] + rng.logistic(size=n) > 0).astype(float)
    d = tmp_path_factory.mktemp("r")
    pd.DataFrame(X, columns=[f"g{i}" for i in range(p)]).to_csv(d / "X.tsv", sep="\t", index=False,
                                                              float_format="%.17g")
    pd.DataFrame(Y, columns=[f"T{j}" for j in range(m)]).to_csv(d / "Y.tsv", sep="\t", index=False,
                                                               float_format="%.17g")
    (d / "label.txt").write_text("\n".join(str(int(v)) for v in label) + "\n")
    (d / "fit.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(d / "fit.R"), str(d)], check=True, capture_output=True, timeout=120)
    return X, Y, label, d


def _close(got: np.ndarray, want: np.ndarray, se: np.ndarray | None = None) -> float:
    """Largest error: relative, or in standard errors where that is larger (coefficients ~0)."""
    err = np.abs(got - want)
    scale = np.abs(want) if se is None else np.maximum(np.abs(want), 1e-2 * se)
    return float(np.max(np.where(err == 0, 0.0, err / np.where(scale > 0, scale, 1.0) + (scale == 0))))


def _check_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    se = want["std_err"].to_numpy()
    for col in ("coef", "std_err", "t", "p_value", "ci_low", "ci_high"):
        g, w = got[col].to_numpy(float), want[col].to_numpy(float)
        if col in ("coef", "ci_low", "ci_high"):
            assert _close(g, w, se) <= RTOL, col
        elif col == "t":
            assert _close(g, w, np.ones_like(w)) <= RTOL, col  # |t| ~0: within 1e-10 absolute
        else:
            assert _close(g, w) <= RTOL, col


def test_batched_engine_matches_lm(reference):
    X, Y, _, d = reference
    want = pd.read_csv(d / "lm_coefficients.tsv", sep="\t")
    res = fit_many(X, Y, [f"g{i}" for i in range(X.shape[1])], [f"T{j}" for j in range(Y.shape[1])])
    assert res.n_refit > 0  # the large-mean targets took the exact path
    _check_table(res.coefficients(), want)
    fits = pd.read_csv(d / "lm_fits.tsv", sep="\t")
    for col in ("r2", "adj_r2", "f_stat", "f_pvalue"):
        assert _close(getattr(res, col), fits[col].to_numpy()) <= RTOL, col


def test_per_target_ols_matches_lm(reference):
    X, Y, _, d = reference
    want = pd.read_csv(d / "lm_coefficients.tsv", sep="\t")
    fits = pd.read_csv(d / "lm_fits.tsv", sep="\t")
    n, k = X.shape[0], X.shape[1] + 1
    for j in (0, 3, 4, 7):  # noise, strong, near-perfect, large mean
        fit = ols.fit_ols(X, Y[:, j], [f"g{i}" for i in range(X.shape[1])])
        _check_table(fit.table(), want[want["target"] == f"T{j}"].reset_index(drop=True))
        row = ols.fit_statistics(fit).iloc[0]
        ref = fits.iloc[j]
        for col in ("r2", "adj_r2", "f_stat", "f_pvalue", "log_likelihood"):
            assert _close(np.array([row[col]]), np.array([ref[col]])) <= RTOL, col
        # AIC/BIC: statsmodels counts the k coefficients; R's AIC() of an lm also the residual variance
        assert abs(row["aic"] - (ref["aic"] - 2.0)) <= RTOL * abs(ref["aic"])
        assert abs(row["bic"] - (ref["bic"] - np.log(n))) <= RTOL * abs(ref["bic"])
        assert row["df_resid"] == n - k


def test_inference_beyond_coefficients_matches_r(reference):
    """Nested F-test (anova), influence, VIF, Breusch-Pagan, Jarque-Bera, Durbin-Watson and BH q-values."""
    X, Y, _, d = reference
    names = [f"g{i}" for i in range(X.shape[1])]
    fit = ols.fit_ols(X, Y[:, 3], names)
    nested = ols.nested_tests(fit, X, Y[:, 3], {"pair": ["g1", "g2"]}).iloc[0]
    want = pd.read_csv(d / "nested.tsv", sep="\t").iloc[0]
    for col in ("f_stat", "p_value"):
        assert abs(nested[col] - want[col]) <= RTOL * abs(want[col]), col
    assert (nested["df_num"], nested["df_den"]) == (want["df_num"], want["df_den"])
    infl = ols.influence(fit, [f"S{i}" for i in range(X.shape[0])])
    want = pd.read_csv(d / "influence.tsv", sep="\t")
    for col in ("leverage", "cooks_distance", "studentized_residual"):
        assert _close(infl[col].to_numpy(), want[col].to_numpy()) <= RTOL, col
    diag = ols.diagnostics(fit)
    want = pd.read_csv(d / "diagnostics.tsv", sep="\t")
    assert diag["check"].tolist() == want["check"].tolist()
    assert _close(diag["statistic"].to_numpy(), want["statistic"].to_numpy()) <= RTOL
    tested = want["p_value"].notna().to_numpy()
    assert _close(diag["p_value"].to_numpy()[tested], want["p_value"].to_numpy()[tested]) <= RTOL
    # q-values over all targets' non-intercept terms, as the workflow's all_coefficients.tsv
    res = fit_many(X, Y, names, [f"T{j}" for j in range(Y.shape[1])])
    table = res.coefficients()
    table = table[table["term"] != "const"]
    want = pd.read_csv(d / "qvalues.tsv", sep="\t")
    assert table["term"].tolist() == want["term"].tolist()
    assert _close(ols.bh_qvalues(table["p_value"].to_numpy()), want["q_value"].to_numpy()) <= RTOL


def test_logistic_regression_matches_glm(reference):
    X, _, label, d = reference
    fit = logit.fit_logit(X, label.astype(int), [f"g{i}" for i in range(X.shape[1])], ["0", "1"])
    assert not fit.penalized
    want = pd.read_csv(d / "glm_coefficients.tsv", sep="\t")
    # glm's IRLS stops at a relative deviance change of 1e-14; both sit at the same optimum to ~1e-10
    _check_table(fit.table(), want)
    row = logit.fit_statistics(fit).iloc[0]
    ref = pd.read_csv(d / "glm_fit.tsv", sep="\t").iloc[0]
    for col in ("log_likelihood", "aic", "bic"):  # a logistic model has no dispersion: same convention
        assert abs(row[col] - ref[col]) <= RTOL * abs(ref[col]), col


BRGLM2_SCRIPT = r"""
suppressPackageStartupMessages(library(brglm2))
dir <- commandArgs(trailingOnly = TRUE)[1]
d <- read.delim(file.path(dir, "firth.tsv")); X <- as.matrix(d[, -1]); y <- d$y
fit <- glm(y ~ X, family = binomial, method = "brglmFit", type = "AS_mean", epsilon = 1e-12, maxit = 1000)
s <- summary(fit)$coefficients
write.table(format(data.frame(coef = s[, 1], std_err = s[, 2]), digits = 17, trim = TRUE),
            file.path(dir, "firth_out.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
"""


def _has_brglm2() -> bool:
    proc = subprocess.run(["Rscript", "-e", "library(brglm2)"], capture_output=True, text=True)
    return proc.returncode == 0


@pytest.mark.parametrize("seed", [1, 5])
def test_firth_logistic_matches_brglm2(tmp_path, seed):
    """Firth's logistic regression on completely separated classes against R's brglm2 (``type = "AS_mean"``:
    Firth's mean-bias-reducing adjusted score, the same estimator as logistf; Debian: r-cran-brglm2):
    coefficients and Wald standard errors from the Fisher information at the estimate."""
    if not _has_brglm2():
        pytest.skip("R package brglm2 is not installed (Debian: r-cran-brglm2)")
    rng = np.random.default_rng(seed)
    n, p = 60, 4
    X = rng.normal(size=(n, p))
    y = (X[:, 0] - 0.3 * X[:, 1] > 0).astype(int)  # a combination separates the classes
    names = [f"g{j}" for j in range(p)]
    pd.DataFrame(np.column_stack([y, X]), columns=["y", *names]).to_csv(tmp_path / "firth.tsv", sep="\t",
                                                                         index=False)
    (tmp_path / "firth.R").write_text(BRGLM2_SCRIPT)
    proc = subprocess.run(["Rscript", str(tmp_path / "firth.R"), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want = pd.read_csv(tmp_path / "firth_out.tsv", sep="\t")
    fit = logit.fit_logit(X, y, names, ["a", "b"], inference=False)
    assert fit.method == "firth" and fit.separation == "complete"
    got = fit.table()
    np.testing.assert_allclose(got["coef"], want["coef"], rtol=RTOL, atol=1e-10)
    np.testing.assert_allclose(got["std_err"], want["std_err"], rtol=RTOL)
