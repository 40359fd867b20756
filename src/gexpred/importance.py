"""Which predictors a model uses, and which pairs the network combines.

Three kinds of evidence, each a pure function over arrays:

Permutation importance (:func:`permutation_losses`, :func:`importance_table`)
    For every cross-validation fold, the model fitted without that fold
    predicts the held-out samples twice: as they are, and with one
    predictor's values shuffled among them (``n_repeats`` shuffles, the same
    for every model). The importance of the predictor on that fold is the
    rise of the held-out loss (MSE, or log-loss for classification); the
    table gives its mean and sd across folds. It applies to every model, asks
    nothing of its form, and is judged on samples the model did not see
    (Breiman 2001; Fisher, Rudin & Dominici 2019).
Integrated gradients (:func:`integrated_gradients`)
    For a network: the path integral of the output's gradient from a baseline
    input (the training mean: 0 on z-scores) to each sample, times the
    difference of the input (Sundararajan, Taly & Yan 2017). The
    attributions of a sample add up to its prediction minus the baseline's
    (completeness); a predictor's importance is the mean absolute attribution
    over the training samples.
Friedman's H statistic (:func:`h_statistic`)
    For a pair of predictors, the share of the variance of their joint
    partial dependence that is not the sum of the two single ones (Friedman &
    Popescu 2008): 0 for an additive model, about 1 where the pair acts only
    together; it can exceed 1 where the single partial dependences oppose the
    joint one (it is a ratio, not a share bounded by 1), which is why pairs are
    suggested by their strength, not by H². The interaction a network suggests
    is then put to regression: :func:`interaction_f_test` tests the product term ``a:b`` added to the OLS
    model on the training split, beside the squares of ``a`` and ``b`` and with heteroskedasticity-consistent
    standard errors; for a classification target :func:`interaction_lr_test` tests it in the (multinomial)
    logistic regression by a likelihood-ratio test, beside the squares too.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

IMPORTANCE_COLUMNS = ["predictor", "rank", "perm_mean", "perm_sd", "perm_folds", "ig_mean_abs"]
INTERACTION_COLUMNS = ["gene_a", "gene_b", "h2", "h_strength", "rank", "f_stat", "lr_stat", "df_num", "df_den",
                       "p_value",
                       "q_value", "verdict"]

Predict = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- permutation importance
def permutations(n: int, p: int, n_repeats: int, seed: int) -> np.ndarray:
    """The shuffles of one fold's held-out samples: ``p x n_repeats x n`` index arrays, reproducible from
    ``seed`` (the same for every model, so models are compared on the same shuffles)."""
    rng = np.random.default_rng(seed)
    return np.stack([np.stack([rng.permutation(n) for _ in range(n_repeats)]) for _ in range(p)]) if n else \
        np.zeros((p, n_repeats, 0), dtype=np.int64)


def permuted_inputs(X: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Every shuffled copy of ``X`` (samples x predictors) stacked: ``(p * n_repeats * n) x p`` rows, copy
    ``(j, r)`` with column ``j`` reordered by ``perms[j, r]``."""
    X = np.asarray(X)
    p, R, n = perms.shape
    out = np.repeat(X[None], p * R, axis=0).reshape(p, R, n, X.shape[1])
    for j in range(p):
        out[j, :, :, j] = X[perms[j], j]
    return out.reshape(p * R * n, X.shape[1])


def mse_loss(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)) ** 2))


def log_loss(codes: np.ndarray, proba: np.ndarray, eps: float = 1e-15) -> float:
    proba = np.asarray(proba, dtype=np.float64)
    p = np.clip(proba[np.arange(len(codes)), np.asarray(codes, dtype=np.int64)], eps, 1.0)
    return float(-np.mean(np.log(p)))


def permutation_losses(predict: Predict, X: np.ndarray, y: np.ndarray, perms: np.ndarray,
                       loss: Callable[[np.ndarray, np.ndarray], float] = mse_loss) -> np.ndarray:
    """Rise of the loss on held-out samples when each predictor is shuffled, averaged over the shuffles.

    Parameters
    ----------
    predict
        The model fitted without these samples: inputs -> predictions (or class probabilities).
    X, y
        The held-out samples and their targets (class codes for classification).
    perms
        :func:`permutations` for these samples.
    loss
        :func:`mse_loss` or :func:`log_loss`.

    Returns
    -------
    ``(p,)`` loss with the predictor shuffled minus the loss as it is.
    """
    return loss_rises(y, predict(np.asarray(X)), predict(permuted_inputs(X, perms)), perms.shape, loss)


def loss_rises(y: np.ndarray, pred: np.ndarray, permuted_pred: np.ndarray, shape: tuple[int, int, int],
               loss: Callable[[np.ndarray, np.ndarray], float] = mse_loss) -> np.ndarray:
    """``(p,)`` mean over the shuffles of the loss of ``permuted_pred`` (the predictions of
    :func:`permuted_inputs`, ``shape`` = ``perms.shape``) minus the loss of ``pred``."""
    p, R, n = shape
    permuted_pred = np.asarray(permuted_pred)
    permuted_pred = permuted_pred.reshape(p, R, n, *permuted_pred.shape[1:])
    base = loss(y, pred)
    return np.array([np.mean([loss(y, permuted_pred[j, r]) for r in range(R)]) - base for j in range(p)])


def importance_table(genes: list[str], fold_rises: np.ndarray, ig: np.ndarray | None = None) -> pd.DataFrame:
    """One row per predictor: permutation importance over folds (mean, sd, folds) and, for networks, the mean
    absolute integrated gradient; ranked by ``perm_mean`` (1 = most important)."""
    fold_rises = np.atleast_2d(np.asarray(fold_rises, dtype=np.float64))
    k = fold_rises.shape[0]
    mean = fold_rises.mean(axis=0)
    sd = fold_rises.std(axis=0, ddof=1) if k > 1 else np.full(len(genes), np.nan)
    df = pd.DataFrame({"predictor": [str(g) for g in genes], "perm_mean": mean, "perm_sd": sd, "perm_folds": k,
                       "ig_mean_abs": np.nan if ig is None else np.asarray(ig, dtype=np.float64)})
    # pandas' rank, not scipy.stats.rankdata: the mlp jobs would import scipy.stats (~0.7 s) for it alone
    df["rank"] = df["perm_mean"].rank(method="min", ascending=False, na_option="bottom").astype(int)
    return df.sort_values(["rank", "predictor"], kind="stable")[IMPORTANCE_COLUMNS].reset_index(drop=True)


def fold_importance(fit: Callable[[np.ndarray, np.ndarray], Predict], X: np.ndarray, y: np.ndarray,
                    folds: np.ndarray, n_repeats: int = 5, seed: int = 0,
                    loss: Callable[[np.ndarray, np.ndarray], float] = mse_loss,
                    fold_X: np.ndarray | None = None) -> np.ndarray:
    """Permutation importance on held-out folds, folds x predictors.

    ``fit(X_train, y_train)`` returns the model fitted on a fold's training
    part as a prediction function; the held-out part is shuffled as
    :func:`permutations` with ``seed + fold`` draws it (the shuffles
    :func:`gexpred.search.cv_networks` uses for the networks). With ``fold_X``
    (:func:`gexpred.search.fold_design`), fold ``f`` uses ``fold_X[f]`` and
    column ``j`` is the fold's own ``j``-th term (:func:`by_term` maps them).
    """
    from .search import fold_design  # (search imports this module)

    X = np.asarray(X)
    y = np.asarray(y)
    folds = np.asarray(folds)
    K = int(folds.max()) + 1
    out = np.full((K, X.shape[1]), np.nan)
    for f in range(K):
        tr, te = folds != f, folds == f
        perms = permutations(int(te.sum()), X.shape[1], n_repeats, seed + f)
        Xf = fold_design(X, fold_X, f)
        out[f] = permutation_losses(fit(Xf[tr], y[tr]), Xf[te], y[te], perms, loss)
    return out


def by_term(rises: np.ndarray, fold_terms: list[list[str]] | None, terms: list[str]) -> np.ndarray:
    """Folds x ``terms`` importance from folds x positions, where fold ``f``'s columns are ``fold_terms[f]``.

    A term its fold did not choose gets 0 there: the procedure fitted on that fold does not use it, so
    shuffling it changes nothing. Without ``fold_terms`` (every fold on ``terms``) ``rises`` is returned.
    """
    rises = np.asarray(rises, dtype=np.float64)
    if fold_terms is None:
        return rises
    out = np.zeros((rises.shape[0], len(terms)))
    for f, names in enumerate(fold_terms):
        pos = {t: j for j, t in enumerate(names)}
        for k, t in enumerate(terms):
            if t in pos:
                out[f, k] = rises[f, pos[t]]
    return out


# --------------------------------------------------------------------------- integrated gradients
def network_output(model, task: str = "regression"):
    """A differentiable function of a torch input for :func:`integrated_gradients`: a
    :class:`gexpred.nn.GeneMLP` or :class:`gexpred.nn.EnsembleMLP` on the data scale of the target (the
    mean of the members' for an ensemble); for classification the probabilities of the classes (samples x
    classes; a binary network's ``[1 - sigmoid, sigmoid]``), averaged over the members. Any other module is
    returned as it is."""
    import torch

    from .nn import EnsembleMLP, GeneMLP, members_of

    if not isinstance(model, (GeneMLP, EnsembleMLP)):
        return model
    members = members_of(model)

    def one(m, x):
        z = m.forward(x)
        if task != "classification":
            return (z * m.y_scale + m.y_mean)[:, 0]
        if z.shape[1] == 1:
            p1 = torch.sigmoid(z[:, 0])
            return torch.stack([1.0 - p1, p1], dim=1)
        return torch.softmax(z, dim=1)

    return lambda x: torch.stack([one(m, x) for m in members]).mean(dim=0)


def integrated_gradients(model, X: np.ndarray, baseline: np.ndarray | None = None, steps: int = 64,
                         task: str = "regression", classes: np.ndarray | None = None) -> np.ndarray:
    """Integrated gradients of a network's output, samples x predictors.

    ``IG_j(x) = (x_j - b_j) * integral_0^1 df/dx_j(b + a (x - b)) da``, the
    integral by the midpoint rule on ``steps`` points (exact for a network
    without hidden layer).

    Parameters
    ----------
    model
        A network of :mod:`gexpred.nn` (explained as :func:`network_output`
        says), or any :class:`torch.nn.Module` with one output per sample.
    X
        Samples to explain.
    baseline
        The reference input (default: zeros). The pipeline passes the training samples' mean, the input of
        an "average" sample whatever the normalization (zeros are that mean only for z-scored inputs).
    task, classes
        ``classification``: the output explained for each sample is the probability of its class
        ``classes[i]`` (class codes; the pipeline passes the observed ones), by default the last class. For two
        classes either choice gives the same absolute attributions; for more, the last class alone would
        credit only the predictors that tell it from the others (a gene separating the first two classes of
        three would get next to nothing).
    """
    import torch

    X = np.asarray(X, dtype=np.float32)
    b = np.zeros(X.shape[1], dtype=np.float32) if baseline is None else np.asarray(baseline, dtype=np.float32)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params else torch.float32
    f = network_output(model, task)
    alphas = (np.arange(steps, dtype=np.float64) + 0.5) / steps
    xt = torch.as_tensor(X, device=device, dtype=dtype)
    bt = torch.as_tensor(b, device=device, dtype=dtype)
    total = torch.zeros_like(xt)
    cls = None if classes is None else torch.as_tensor(np.asarray(classes, dtype=np.int64), device=device)[:, None]
    model.eval()
    for a in alphas:
        point = (bt + float(a) * (xt - bt)).detach().requires_grad_(True)
        out = f(point)
        if out.ndim == 2:
            out = out[:, -1] if cls is None else out.gather(1, cls)[:, 0]
        (grad,) = torch.autograd.grad(out.sum(), point)
        total += grad
    return ((xt - bt) * total / steps).detach().cpu().numpy().astype(np.float64)


# --------------------------------------------------------------------------- interactions
def h_statistic(predict: Predict, X: np.ndarray, pairs: list[tuple[int, int]], max_points: int = 100,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Friedman's H statistic of each pair of predictors.

    With ``F`` the centred partial dependence over the data points ``x_i``
    (each estimated by averaging the model over the other predictors' values
    at all points),

    ``H2_jk = sum_i (F_jk(x_ij, x_ik) - F_j(x_ij) - F_k(x_ik))^2 / sum_i F_jk(x_ij, x_ik)^2``.

    Parameters
    ----------
    predict
        Inputs -> one prediction per row, or one row of outputs per row (a classifier's class probabilities):
        then every sum runs over the outputs too, so a pair that changes how the samples are shared among
        three classes counts whichever class it moves (the last class alone can miss it). For two classes'
        ``[1 - p, p]`` both outputs' residuals are equal up to sign: the same ``H^2`` and strength as ``p``.
    X
        Data points (the training samples); at most ``max_points`` of them,
        drawn with ``seed``, are used (the cost is ``max_points^2`` predictions
        per pair).
    pairs
        Column index pairs.

    Returns
    -------
    h2
        ``H^2`` per pair (0: additive; NaN when the pair has no joint effect).
    strength
        ``sqrt(mean_i (F_jk - F_j - F_k)^2)`` (the mean over outputs too): the
        interaction on the scale of the prediction, which unlike ``H^2`` is not
        inflated where the pair's joint effect is itself tiny.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) > max_points:
        X = X[np.sort(np.random.default_rng(seed).choice(len(X), max_points, replace=False))]
    m = len(X)
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def pd_of(cols: tuple[int, ...]) -> np.ndarray:
        if cols not in cache:
            grid = np.repeat(X[None], m, axis=0)  # grid[i, l] = x_l with cols set to x_i
            for c in cols:
                grid[:, :, c] = X[:, c][:, None]
            f = np.asarray(predict(grid.reshape(m * m, -1)), dtype=np.float64).reshape(m, m, -1).mean(axis=1)
            cache[cols] = f - f.mean(axis=0)  # m x outputs
        return cache[cols]

    h2 = np.full(len(pairs), np.nan)
    strength = np.full(len(pairs), np.nan)
    for i, (j, k) in enumerate(pairs):
        joint = pd_of((j, k))
        resid = joint - pd_of((j,)) - pd_of((k,))
        denom = float(np.sum(joint**2))
        strength[i] = float(np.sqrt(np.mean(resid**2)))
        h2[i] = float(np.sum(resid**2) / denom) if denom > 1e-12 * max(1.0, joint.size) else np.nan
    return h2, strength


def interaction_f_test(X: np.ndarray, y: np.ndarray, j: int, k: int) -> tuple[float, int, int, float]:
    """Test of the product term ``x_j * x_k`` added to the OLS model ``y ~ 1 + X + x_j^2 + x_k^2``, with
    heteroskedasticity-consistent (HC3) standard errors.

    ``F`` is the squared Wald statistic of the product's coefficient with its HC3 variance (MacKinnon &
    White 1985; as statsmodels' ``OLS(...).fit(cov_type="HC3", use_t=True)`` on the same design), referred
    to ``F(1, n - r)``, ``r`` the design's rank. Two guards keep an additive but non-linear truth (a square, a
    saturation, an exponential) from passing for an interaction, which the classical nested F-test of ``a:b``
    over ``y ~ 1 + X`` does not:

    * the squares of the pair's two predictors enter both models, so the product is judged beside main
      effects that may curve. Where predictors are correlated, as genes are, ``x_j^2`` projects onto
      ``x_j * x_k`` and without them the product takes the square's place (on ``y = x0 + x1^2 + noise``
      with correlation 0.5 between the predictors, the classical test of ``x1:x2`` rejects in every data
      set, and so does HC3 alone);
    * HC3 standard errors, since the part of a main effect no square captures stays in the residuals and
      their spread then grows with the predictor (independent predictors, ``y = exp(x1) + noise``: the
      classical test with the squares rejects 25 % of the time at the 5 % level).

    A square already in the span of the other columns (a two-valued predictor) is left out. Returns
    ``(F, df_num, df_den, p)`` with ``df_num = 1`` and ``df_den = n - r``; NaN where the
    product is itself in the span of the other columns or no residual degree of freedom is left.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    A, rank = _with_squares(X, j, k)
    A = np.column_stack([A, X[:, j] * X[:, k]])
    df_den = n - (rank + 1)
    if df_den <= 0 or np.linalg.matrix_rank(A) <= rank:  # no residual df, or the product adds nothing
        return np.nan, 1, int(df_den), np.nan
    B = np.linalg.pinv(A)  # (A'A)^-1 A' for a design of full column rank
    beta = B @ y
    resid = y - A @ beta
    leverage = np.einsum("ij,ji->i", A, B)
    scaled = np.divide(resid, 1.0 - leverage, out=np.zeros(n), where=leverage < 1.0 - 1e-10)
    var = float(np.sum(B[-1] ** 2 * scaled ** 2))
    if not var > 0:
        return np.nan, 1, int(df_den), np.nan
    f = beta[-1] ** 2 / var
    from scipy.special import fdtrc  # F's survival function, without importing scipy.stats (~0.7 s)

    return float(f), 1, int(df_den), float(fdtrc(1, df_den, f))


def _with_squares(X: np.ndarray, j: int, k: int) -> tuple[np.ndarray, int]:
    """The design ``[1, X]`` with the squares of columns ``j`` and ``k`` added where they raise its rank, and
    its rank (the guard of :func:`interaction_f_test` and :func:`interaction_lr_test`)."""
    A = np.column_stack([np.ones(len(X)), X])
    rank = np.linalg.matrix_rank(A)
    for square in (X[:, j] ** 2, X[:, k] ** 2):
        grown = np.column_stack([A, square])
        if np.linalg.matrix_rank(grown) > rank:
            A, rank = grown, rank + 1
    return A, rank


def interaction_lr_test(X: np.ndarray, codes: np.ndarray, j: int, k: int,
                        classes: list[str]) -> tuple[float, int, float, str]:
    """Likelihood-ratio test of the product term ``x_j * x_k`` added to the logistic regression
    ``class ~ 1 + X + x_j^2 + x_k^2`` (multinomial for more than two classes): the classification counterpart
    of :func:`interaction_f_test`, with the same guard (the squares in both models, so that a main effect
    curving on the log-odds scale does not pass for an interaction). No HC3 here: a logistic model's variance
    follows from its mean.

    ``LR = 2 (llf_with - llf_without)`` on ``K - 1`` degrees of freedom (the product has a coefficient per
    non-reference class). Where the classes are separated with the product in the model (two classes), both
    models are fitted by Firth's penalised likelihood and the penalised likelihood-ratio test is used
    (:func:`gexpred.logit.firth_lr_test`, Heinze & Schemper 2002), as for the coefficients' p-values. Returns
    ``(LR, df, p, method)``, ``method`` ``'ml'`` or ``'firth'``; NaN statistic and p where the product adds
    nothing to the design's span, there are too few samples for the parameters, or a separated multinomial
    target leaves no test (its fit is ridge-penalised).
    """
    from scipy.special import chdtrc

    from .errors import ModelError
    from .logit import firth_lr_test, fit_logit

    X = np.asarray(X, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    K = len(classes)
    A, rank = _with_squares(X, j, k)
    full = np.column_stack([A, X[:, j] * X[:, k]])
    nan = (np.nan, K - 1, np.nan, "none")
    if np.linalg.matrix_rank(full) <= rank:
        return nan
    names = [f"x{i}" for i in range(full.shape[1] - 1)]
    try:
        fit = fit_logit(full[:, 1:], codes, names, classes, separation="firth", inference=False)
        if fit.method == "firth":
            lr, p, _ = firth_lr_test(full, codes.astype(np.float64), fit.firth, [full.shape[1] - 1])
            return float(lr), 1, float(p), "firth"
        if fit.method != "ml":
            return nan
        red = fit_logit(A[:, 1:], codes, names[:-1], classes, separation="stop", inference=False)
    except ModelError:
        return nan
    lr = max(0.0, 2.0 * (fit.log_likelihood - red.log_likelihood))
    return float(lr), K - 1, float(chdtrc(K - 1, lr)), "ml"


def interaction_table(genes: list[str], pairs: list[tuple[int, int]], h2: np.ndarray, strength: np.ndarray,
                      X: np.ndarray | None = None, y: np.ndarray | None = None, scale: float = 1.0,
                      fdr: float = 0.05, top: int = 5, min_strength: float = 0.05,
                      classes: list[str] | None = None) -> pd.DataFrame:
    """Pairs ranked by the network's interaction strength, the ones it suggests tested in regression.

    A pair is *suggested* when its strength is at least ``min_strength`` times
    ``scale`` (the sd of the network's predictions): an interaction worth a
    twentieth of what the model explains, not the wiggle a network fits to
    noise. A pair without joint effect (NaN ``h2``) and every pair of a network
    whose predictions do not vary (``scale`` 0) are negligible. The ``top`` suggested pairs are tested on ``X``, ``y`` (the training
    split; None: not tested): by :func:`interaction_f_test` in OLS (``f_stat``
    on ``df_num``, ``df_den``), or, with ``classes`` (``y`` then the class codes),
    by :func:`interaction_lr_test` in the logistic regression (``lr_stat`` on
    ``df_num``). The q-values are Benjamini-Hochberg with every pair scored
    counted as a test (the untested ones as p = 1), since the network chose the
    pairs on the same samples. Verdicts: ``confirmed`` (q < fdr), ``not
    confirmed``, ``negligible`` (below ``min_strength``), ``not tested`` (beyond ``top``, or a test without a
    statistic: NaN p, q and statistic).
    """
    from .ols import bh_qvalues

    df = pd.DataFrame({"gene_a": [str(genes[j]) for j, _ in pairs], "gene_b": [str(genes[k]) for _, k in pairs],
                       "h2": h2, "h_strength": strength})
    order = np.argsort(-np.nan_to_num(np.asarray(strength, dtype=np.float64), nan=-np.inf), kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    pairs = [pairs[i] for i in order]
    df["rank"] = np.arange(1, len(df) + 1)
    for col in ("f_stat", "lr_stat", "df_num", "df_den", "p_value", "q_value"):
        df[col] = np.nan
    # a pair without joint effect (NaN H^2: the network's predictions do not move with the pair, as for a network
    # predicting a constant) is negligible whatever its rounding-level strength: against a scale of 0 (a constant
    # network's) every strength, 1e-17 included, would otherwise pass and every pair be 'suggested' and tested
    suggested = ((df["h_strength"] >= min_strength * scale) & df["h2"].notna()).to_numpy() if scale > 0 else \
        np.zeros(len(df), dtype=bool)
    df["verdict"] = np.where(suggested, "not tested", "negligible")
    tested = [i for i in range(len(df)) if suggested[i]][:top] if X is not None and y is not None else []
    for i in tested:
        if classes is None:
            df.loc[i, ["f_stat", "df_num", "df_den", "p_value"]] = interaction_f_test(X, y, *pairs[i])
        else:
            df.loc[i, ["lr_stat", "df_num", "p_value"]] = interaction_lr_test(X, y, *pairs[i], classes)[:3]
    if tested:
        p = np.ones(len(df))
        p[tested] = np.nan_to_num(df.loc[tested, "p_value"].to_numpy(dtype=np.float64), nan=1.0)
        q = bh_qvalues(p)
        # a pair whose test has no statistic (the product in the span of the design, too few samples, a
        # separated multinomial target) was not tested: it counts as p = 1 among the scored pairs, as the
        # untested ones do, but is not reported as 'not confirmed'
        has_test = df.loc[tested, "p_value"].notna().to_numpy()
        done = [i for i, ok in zip(tested, has_test) if ok]
        df.loc[done, "q_value"] = q[done]
        df.loc[done, "verdict"] = np.where(q[done] < fdr, "confirmed", "not confirmed")
    return df[INTERACTION_COLUMNS]


def interaction_test_words(table: pd.DataFrame) -> tuple[str, str]:
    """The regression a table's pairs were tested in and the test, in words: ``('OLS', 'F-test')``, or
    ``('the logistic regression', 'likelihood-ratio test')`` where a pair has a likelihood-ratio statistic or
    was sent to the likelihood-ratio test (``df_num`` without ``df_den``: a classification target's pair whose
    test had no statistic, as where a separated multinomial target's fit is ridge-penalised)."""
    # a likelihood-ratio row, with or without a statistic, has df_num and never df_den (an F-test has both)
    if {"df_num", "df_den"} <= set(table.columns) and (table["df_num"].notna() & table["df_den"].isna()).any():
        return "the logistic regression", "likelihood-ratio test"
    return "OLS", "F-test"


def interaction_text(table: pd.DataFrame, fdr: float = 0.05, min_strength: float = 0.05) -> str:
    """The interactions in words: what the network suggests and what the regression confirms.

    ``min_strength`` is the threshold :func:`interaction_table` suggested the pairs by (``importance.min_strength``,
    a share of the sd of the network's predictions), named when no pair reaches it. Friedman's H² is written with
    two significant digits: with two decimals a suggested pair's small H² read "H² 0.00".
    """
    suggested = table[table["verdict"] != "negligible"]
    if not len(suggested):
        return ("The network suggests no interaction: no pair of predictors acts beyond the sum of their "
                f"separate effects by {100 * min_strength:.3g} % of the spread of its predictions "
                f"(importance.min_strength).")
    tested = suggested[suggested["verdict"] != "not tested"]
    model, test = interaction_test_words(table)
    if not len(tested):
        tried = "df_num" in suggested and suggested["df_num"].notna().any()
        why = (f"the regression could not test {'it' if len(suggested) == 1 else 'them'} (the product adds nothing "
               f"to the design, too few samples, or classes separated in a multinomial model, which is fitted "
               f"without tests)" if tried else
               f"{'it was' if len(suggested) == 1 else 'they were'} not tested in regression "
               f"(importance.interactions_tested is 0)")
        return (f"The network suggests {_interactions(len(suggested))}, strongest "
                f"{suggested.iloc[0]['gene_a']} x {suggested.iloc[0]['gene_b']}; {why}.")
    parts = []
    for _, r in tested.iterrows():
        pair = f"{r['gene_a']} x {r['gene_b']}"
        parts.append(f"{pair} (H² {r['h2']:.2g}, strength {r['h_strength']:.3g}): "
                     + (f"confirmed by {model} ({test} of {r['gene_a']}:{r['gene_b']}, q = {r['q_value']:.2g})"
                        if r["verdict"] == "confirmed" else
                        f"not confirmed by {model} (q = {r['q_value']:.2g})"))
    n_conf = int((tested["verdict"] == "confirmed").sum())
    confirmed = (f"{'It is' if n_conf else 'It is not'} confirmed" if len(tested) == 1
                 else f"{n_conf} of {len(tested)} {'is' if n_conf == 1 else 'are'} confirmed")
    return (f"The network suggests {_interactions(len(suggested))}; tested in {model}: {'; '.join(parts)}. "
            f"{confirmed} at q < {fdr:g}.")


def _interactions(n: int) -> str:
    return f"{n} interaction{'' if n == 1 else 's'}"
