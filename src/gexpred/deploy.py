"""Model bundles: a trained model and everything needed to use it on new samples.

The lifecycle's *deploy* step. A bundle is a directory::

    card.json           target, model, task, metrics (test split and CV), training-data fingerprint,
                        package versions, creation time, and the SHA-256 of every other file
    model.json          the parameters (linear and logistic models) or the architecture (networks)
    weights.pt          networks only: the state dict (tensors only; loaded with weights_only=True)
    preprocessing.json  the normalization fitted on the training split (restricted to the genes the
                        model needs) and the design: predictor order, covariate encoding, interactions
    reference.tsv       the training samples' design values (normalized) and the model's predictions
                        on them: the reference distribution for monitoring

Nothing in a bundle is executable: JSON, TSV and a tensors-only state dict. :func:`load_bundle`
checks every file against the checksums of the card before reading any of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError, ModelError, plural, preview

log = logging.getLogger(__name__)

BUNDLE_VERSION = 1
CARD = "card.json"
LIBRARY_SIZE_STEPS = ("log_cpm",)
"""Normalization steps that use every gene of a sample (its library size), not just the model's genes."""


# --------------------------------------------------------------------------- hashing
def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(X: np.ndarray, samples: list[str], genes: list[str]) -> str:
    """SHA-256 of a samples x genes matrix (float64, C order) and its row and column ids."""
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, samples)), list(map(str, genes))]).encode())
    h.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a bundle's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("gexpred", "numpy", "pandas", "scipy", "statsmodels", "torch", "anndata"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


# --------------------------------------------------------------------------- preprocessing
def subset_normalization(params: dict[str, Any], genes: list[str]) -> dict[str, Any]:
    """The fitted normalization restricted to ``genes`` (all genes kept if a step needs library sizes)."""
    steps = params["steps"]
    if any(p["method"] in LIBRARY_SIZE_STEPS for p in steps):
        return {"steps": steps, "genes": list(params["genes"]), "library_size_genes": True}
    index = {g: i for i, g in enumerate(params["genes"])}
    missing = [g for g in genes if g not in index]
    if missing:
        raise InputError(f"The normalization parameters lack the genes {preview(missing)}; re-run the normalize step.")
    out = _subset_steps(steps, [index[g] for g in genes])
    for q in out:
        if q["method"] == "zscore":
            q["constant_genes"] = [g for g in q.get("constant_genes", []) if g in set(genes)]
    return {"steps": out, "genes": list(genes), "library_size_genes": False}


_TRUE_WORDS = {"true": True, "false": False}


def _truth_values(col: pd.Series) -> pd.Series | None:
    """A covariate column's values as booleans when every one reads as true/false: booleans, the numbers 0 and 1
    (or their text), or the words true/false in any case (a TSV's TRUE, an .h5ad's bool, read as 0/1); otherwise
    None."""
    out = []
    for v in col:
        if isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, str) and v.strip().lower() in _TRUE_WORDS:
            out.append(_TRUE_WORDS[v.strip().lower()])
        elif isinstance(v, str) and v.strip() in ("0", "1", "0.0", "1.0"):  # a batch's text-read categorical column
            out.append(v.strip().startswith("1"))
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and v in (0, 1):
            out.append(bool(v))
        else:
            return None
    return pd.Series(out, index=col.index, dtype=bool)


def _truth_levels(levels: list[str]) -> dict[bool, str] | None:
    """The training levels of a true/false covariate by truth value (``{True: 'TRUE', False: 'FALSE'}``), when
    every level is the word true or false in some case; otherwise None."""
    words = {str(lev).strip().lower(): str(lev) for lev in levels}
    if not levels or not set(words) <= set(_TRUE_WORDS):
        return None
    spelling = {_TRUE_WORDS[w]: lev for w, lev in words.items()}
    for w, b in _TRUE_WORDS.items():  # a value training never saw keeps a spelling, refused as unseen
        spelling.setdefault(b, w.upper())
    return spelling


def conformal_rank(n: int, level: float) -> int:
    """The rank of a split-conformal quantile at ``level`` among ``n`` scores, ``ceil((n + 1) level)``, or 0 where
    ``n`` is too small for the level (the rank would exceed ``n``)."""
    k = int(np.ceil((n + 1) * level))
    return k if 0 < k <= n else 0


def conformal_half_width(residuals: np.ndarray, level: float) -> float:
    """Half-width of a split-conformal prediction interval ``prediction +- q`` at ``level``: the
    :func:`conformal_rank`-th smallest of the ``n`` absolute residuals of predictions made without the samples
    (Vovk et al. 2005; Lei et al. 2018), ``inf`` when ``n`` is too small for the level. Non-finite residuals are
    left out."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    r = r[np.isfinite(r)]
    k = conformal_rank(len(r), level)
    return float(r[k - 1]) if k else float("inf")


INTERVAL_METHODS = ("neighbours", "constant")
"""``prediction_interval.method``: half-widths scaled by each sample's distance to its nearest training samples,
or one half-width for every sample."""


NEIGHBOUR_BLOCK_CELLS = 1 << 22
"""Distances held at once by :func:`neighbour_distance` (32 MB of float64 per array)."""


def neighbour_distance(reference: np.ndarray, X: np.ndarray, k: int, scale: np.ndarray,
                       block: int | None = None) -> np.ndarray:
    """Mean Euclidean distance of each row of ``X`` to its ``k`` nearest rows of ``reference``, on the columns
    divided by ``scale`` (a column of scale ``inf`` or 0 counts for nothing). Rows of ``X`` in blocks, so that
    memory is ``block x len(reference)``; by default as many rows as keep that to :data:`NEIGHBOUR_BLOCK_CELLS`
    (at most 1024), so that a large reference set does not take gigabytes."""
    R = np.asarray(reference, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    use = np.isfinite(s) & (s > 0)
    # centred on the reference's mean: the expansion below loses no digits to columns far from zero
    centre = R[:, use].mean(axis=0) if len(R) else 0.0
    R, X = (R[:, use] - centre) / s[use], (X[:, use] - centre) / s[use]
    k = max(1, min(int(k), len(R)))
    if block is None:
        block = int(np.clip(NEIGHBOUR_BLOCK_CELLS // max(len(R), 1), 1, 1024))
    r2 = np.einsum("ij,ij->i", R, R)
    out = np.empty(len(X))
    for a in range(0, len(X), block):
        Z = X[a:a + block]
        d = Z @ R.T  # |z - r|^2 = |z|^2 + |r|^2 - 2 z.r, in place: one block x len(R) array and the partition's
        d *= -2.0
        d += r2[None, :]
        d += np.einsum("ij,ij->i", Z, Z)[:, None]
        np.sqrt(np.maximum(d, 0.0, out=d), out=d)
        out[a:a + block] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
    return out


def neighbour_difficulty(reference: np.ndarray, folds: np.ndarray, X: np.ndarray | None, k: int,
                         scale: np.ndarray) -> np.ndarray:
    """How far samples lie from the training samples: :func:`neighbour_distance` to the ``k`` nearest training
    samples of each fold's training part (the rows of ``reference`` not in that fold), averaged over the folds.

    ``X`` None: the training samples themselves, each against its own fold's training part only (the samples its
    cross-validation model was fitted on, as its residual was made). A new sample is measured against every
    fold's training part and averaged, so that both are distances to sets of the same size.
    """
    folds = np.asarray(folds)
    ids = np.unique(folds)
    if X is None:
        out = np.empty(len(reference))
        for f in ids:
            te = folds == f
            out[te] = neighbour_distance(reference[~te], reference[te], k, scale)
        return out
    return np.mean([neighbour_distance(reference[folds != f], X, k, scale) for f in ids], axis=0)


def interval_scale(reference: np.ndarray) -> np.ndarray:
    """Each design column's scale for :func:`neighbour_distance`: its standard deviation over the training
    samples (``inf`` for a constant column, which then counts for nothing)."""
    sd = np.asarray(reference, dtype=np.float64).std(axis=0)
    return np.where(sd > 1e-12 * np.maximum(np.abs(np.mean(reference, axis=0)), 1.0), sd, np.inf)


MIN_DISTANCE_SHARE = 0.25
"""A distance below this share of the training samples' mean :func:`neighbour_difficulty` counts as that share
(:func:`prediction_interval`): a sample at distance 0 (ties, duplicates) still has the model's noise."""


def difficulty_floor(cv_difficulty: np.ndarray) -> float:
    """The smallest difficulty :func:`prediction_interval` uses: :data:`MIN_DISTANCE_SHARE` times the mean of the
    training samples' finite ``cv_difficulty``, or 1 (one training SD) where every one is 0 (no design column
    varies among the neighbours), which gives every sample the same width."""
    d = np.asarray(cv_difficulty, dtype=np.float64)
    d = d[np.isfinite(d)]
    m = float(d.mean()) if len(d) else 0.0
    return MIN_DISTANCE_SHARE * m if m > 0 else 1.0


def prediction_sets(cv_codes: np.ndarray, cv_proba: np.ndarray, level: float, test_codes: np.ndarray,
                    test_proba: np.ndarray) -> dict[str, Any]:
    """A classification model's conformal prediction sets, from its cross-validation probabilities.

    The classifier's counterpart of :func:`prediction_interval`: each training sample's out-of-fold probability
    of its own class gives the score ``1 - p(true class)``; ``q`` is their conformal quantile
    (:func:`conformal_half_width`: the ``ceil((n + 1) level)``-th smallest) and a sample's set holds every class
    whose probability is at least ``threshold = 1 - q``, so it contains the sample's class with probability about
    ``level`` whatever the model, with the fewest classes on average (least ambiguous set-valued classifiers,
    Sadinle, Lei & Wasserman 2019, *JASA* 114:223). A sure sample gets one class, an ambiguous one several; a
    set can be empty where no class reaches the threshold (the model is unsure of every class, yet the level is
    kept on average). The test split, never used here, checks it.

    ``threshold`` is taken as the calibration sample's own probability, the ``ceil((n + 1) level)``-th largest
    (the same sample as the ``q`` of the scores), not computed as ``1 - q``: ``1 - (1 - p)`` rounds above ``p``
    for a quarter of the probabilities below 0.5 (``1 - (1 - 0.3) = 0.30000000000000004``), which would leave
    out of every set a class whose probability ties with it, as a model with one probability for every sample
    (an intercept alone) gives: at 0.3 / 0.7 with 70 % of the second class, 70 % coverage at level 0.95.

    Returns ``{"method": "cv_conformal_lac", "level", "threshold", "n_residuals", "test_coverage",
    "test_mean_size", "n_test"}``; ``threshold`` is ``-inf`` (every class) where the samples are too few for the
    level.
    """
    cv_proba = np.asarray(cv_proba, dtype=np.float64)
    codes = np.asarray(cv_codes, dtype=np.int64)
    own = cv_proba[np.arange(len(codes)), codes]
    own = -np.sort(-own[np.isfinite(own)])  # largest first: own[k - 1] is the sample of q, the scores' quantile
    k = conformal_rank(len(own), level)
    threshold = float(own[k - 1]) if k else -np.inf
    test_proba = np.asarray(test_proba, dtype=np.float64)
    test_codes = np.asarray(test_codes, dtype=np.int64)
    inside = test_proba >= threshold
    n = len(test_codes)
    return {"method": "cv_conformal_lac", "level": float(level), "threshold": float(threshold),
            "n_residuals": int(len(own)),
            "test_coverage": float(np.mean(inside[np.arange(n), test_codes])) if n else float("nan"),
            "test_mean_size": float(np.mean(inside.sum(axis=1))) if n else float("nan"), "n_test": int(n)}


def set_members(prediction_set: dict[str, Any], proba: np.ndarray) -> np.ndarray:
    """Samples x classes: whether each class is in each sample's conformal prediction set
    (:func:`prediction_sets`)."""
    return np.asarray(proba, dtype=np.float64) >= float(prediction_set["threshold"])


def prediction_interval(cv_observed: np.ndarray, cv_predicted: np.ndarray, level: float,
                        test_observed: np.ndarray, test_predicted: np.ndarray,
                        cv_difficulty: np.ndarray | None = None,
                        test_difficulty: np.ndarray | None = None) -> dict[str, Any]:
    """A regression model's prediction interval, from its cross-validation residuals on the training split.

    Each training sample's out-of-fold residual (its fold's model did not see it) is a draw of the error the
    model makes on a new sample, whatever the model: the interval ``prediction +- q`` with ``q``
    :func:`conformal_half_width` covers a new sample's value with probability about ``level``. This is the K-fold
    analogue of the jackknife interval that Barber et al. 2021 (*Ann Stat* 49:486) call *CV*: the final model's
    prediction plus or minus the quantile of the out-of-fold residuals. It is not their CV+ (which predicts the
    new sample with every fold's model and carries a worst-case bound of about ``2 level - 1``); its coverage is
    guaranteed only for a fitting procedure stable enough that the final model, fitted on all the training
    samples, errs no more than the fold models (for those it is, if anything, a little wide), and it can fall
    short for an unstable one (a network on few samples). The test split, never used here, checks it:
    ``test_coverage`` is the share of its samples inside their interval.

    Without ``cv_difficulty`` the width is the same for every sample (``method: cv_conformal``). With it
    (``cv_conformal_neighbours``; :func:`neighbour_difficulty` of the training samples, ``test_difficulty`` of
    the test split's), the residuals are scaled first: ``q`` is the conformal quantile of ``|residual| /
    difficulty`` and a sample's half-width ``q x`` its own difficulty (normalised nonconformity scores,
    Papadopoulos et al. 2011, *J Artif Intell Res* 40:815): the same marginal coverage, narrower intervals for
    samples among many training samples like them, wider ones for samples unlike any (a new condition), where
    the model's errors are larger. A difficulty below :func:`difficulty_floor` (a quarter of the training samples' mean)
    counts as it: a sample with ties among its neighbours (a sparse gene's zeros, duplicated samples) lies at
    distance 0, yet the model's noise remains; its ratio would be enormous, ``q`` with it, and the intervals of
    such samples 0 wide and of all others absurdly wide (a one-predictor design with 40 % zeros covered 60 %).

    Returns ``{"method", "level", "half_width" (the constant one) or "q" and "min_distance" (the scaled one's
    floor), "n_residuals", "test_coverage", "n_test", "test_mean_width"}``.
    """
    res = np.asarray(cv_observed, dtype=np.float64) - np.asarray(cv_predicted, dtype=np.float64)
    err = np.abs(np.asarray(test_observed, dtype=np.float64) - np.asarray(test_predicted, dtype=np.float64))
    if cv_difficulty is None:
        q = conformal_half_width(res, level)
        width = np.full(len(err), q)
        out: dict[str, Any] = {"method": "cv_conformal", "level": float(level), "half_width": q}
    else:
        floor = difficulty_floor(cv_difficulty)
        q = conformal_half_width(np.abs(res) / np.maximum(np.asarray(cv_difficulty, dtype=np.float64), floor), level)
        width = q * np.maximum(np.asarray(test_difficulty, dtype=np.float64), floor)
        out = {"method": "cv_conformal_neighbours", "level": float(level), "q": q, "min_distance": floor}
    ok = np.isfinite(err)
    out.update({"n_residuals": int(np.isfinite(res).sum()),
                "test_coverage": float(np.mean(err[ok] <= width[ok])) if ok.any() else float("nan"),
                "n_test": int(ok.sum()),
                "test_mean_width": float(2 * np.mean(width[ok])) if ok.any() else float("nan")})
    return out


def encode_covariates_like(obs: pd.DataFrame, encoding: dict[str, Any], source: str,
                           unseen_as_reference: bool = False) -> pd.DataFrame:
    """Encode sample-sheet covariates of new samples exactly as the training samples were.

    A level of a categorical covariate that training never saw is refused (the model cannot score such a
    sample), unless ``unseen_as_reference``: then it is encoded as the reference level, as
    :func:`gexpred.design.encode_covariates` encodes the test split's unseen levels when the models are fitted
    (the bundle step reproduces those predictions).
    """
    from .design import level_text

    cols: dict[str, pd.Series] = {}
    for c, enc in encoding.items():
        column = enc.get("column", c)  # C(batch): the column batch, declared categorical
        if column not in obs.columns:
            raise InputError(f"The model adjusts for covariate {c!r}, which needs the column {column!r} of {source}. "
                             f"Give a sample sheet with a {column!r} column (--sample-sheet).")
        col = obs[column]
        if col.isna().any():
            from .design import MISSING_WORDS

            raise InputError(f"Covariate {c!r} of {source} is missing for samples "
                             f"{preview(obs.index[col.isna().to_numpy()])} (or they have no row; an empty cell, or "
                             f"{MISSING_WORDS}, read as missing). Fill in the values (a level named so, such as 'NA' "
                             f"for North America, must be spelt otherwise, as in training), or leave those samples "
                             f"out of the batch.")
        truth = _truth_values(col)
        if enc["type"] == "numeric":
            # true/false written as text (a TSV's TRUE) where training read 0/1 or booleans (an .h5ad's bool)
            numbers = pd.to_numeric(col, errors="coerce") if truth is None else truth.astype(np.float64)
            bad = numbers.isna().to_numpy()
            if bad.any():
                shown = [f"{s} ({v!r})" for s, v in zip(obs.index[bad][:5], col[bad][:5])]
                raise InputError(f"Covariate {c!r} of {source} must be numeric, as in training; not in samples "
                                 f"{', '.join(shown)}{' ...' if bad.sum() > 5 else ''}.")
            cols[c] = numbers.astype(np.float64)
            continue
        values = level_text(col) if "column" in enc else col.astype(str)
        spelling = _truth_levels(enc["levels"])
        if spelling is not None and truth is not None:
            # levels learnt from true/false text (TRUE/FALSE): the batch's booleans, 0/1 or other spelling mapped
            # onto them by their truth value
            values = pd.Series(np.where(truth.to_numpy(), spelling[True], spelling[False]), index=col.index)
        unseen = sorted(set(values) - set(enc["levels"]))
        if unseen and not unseen_as_reference:
            where = obs.index[~values.isin(enc["levels"]).to_numpy()]
            raise InputError(f"Covariate {c!r} of {source} has levels {preview(unseen)} the model never saw "
                             f"(training levels: {preview(enc['levels'])}) in samples {preview(list(where))}; the "
                             f"model cannot score those samples. Leave them out of the batch, or retrain with "
                             f"samples of those levels in the training split.")
        for lev in enc["levels"][1:]:
            cols[f"{c}[T.{lev}]"] = (values == lev).astype(np.float64)
    return pd.DataFrame(cols, index=obs.index)


# --------------------------------------------------------------------------- writing
def write_bundle(out_dir: str | os.PathLike[str], *, target: str, model: str, task: str,
                 classes: list[str] | None, model_params: dict[str, Any], preprocessing: dict[str, Any],
                 reference: pd.DataFrame, metrics: dict[str, Any], training_fingerprint: str,
                 weights: str | os.PathLike[str] | None = None, created: str | None = None,
                 test_losses: np.ndarray | None = None, binarize_threshold: float | None = None,
                 interval: dict[str, Any] | None = None, prediction_set: dict[str, Any] | None = None) -> Path:
    """Write a bundle directory atomically (built beside ``out_dir``, then renamed into place).

    Parameters
    ----------
    model_params
        Contents of ``model.json`` (see :func:`predict_design`).
    preprocessing
        ``{"normalization": ..., "design": {...}, "target_normalization": bool}``.
    reference
        Training samples: ``sample`` plus one column per design term, ``prediction`` and ``observed``.
    metrics
        ``{"test": {...}, "cv": {...}}`` as found in ``metrics.tsv`` / ``cv_metrics.tsv``.
    weights
        A network's state-dict file, copied as ``weights.pt``.
    test_losses
        Each test-split sample's loss (:func:`gexpred.monitor.sample_losses`; their mean is the test metric),
        kept in the card as ``test_losses`` so that the monitor can test whether a batch's error rises above
        the test split's by more than chance (:func:`gexpred.monitor.error_rise_test`).
    binarize_threshold
        For a gene binarized into a classification target (config ``binarize``), its threshold on the raw scale,
        kept in the card (``binarize_threshold``) so that a batch measuring the gene can be labelled.
    interval
        A regression model's prediction interval (:func:`prediction_interval`), kept in the card (``interval``):
        ``predict`` and ``monitor`` give every prediction's interval, and ``monitor`` the batch's coverage.
    prediction_set
        A classification model's conformal prediction sets (:func:`prediction_sets`), kept in the card
        (``prediction_set``): ``predict`` and ``monitor`` give every sample's set, and ``monitor`` the batch's
        coverage.
    created
        ISO time stamp (default: ``SOURCE_DATE_EPOCH`` if set, else now; UTC).
    """
    from .io import temporary_names, write_json, write_table

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # from here on, any exception (also SystemExit from a SIGTERM, gexpred.cli.exit_on_sigterm) removes it; the
        # name is known before the directory exists, so a SIGTERM while it is created is cleaned up too
        for tmp in temporary_names(out):
            try:
                os.mkdir(tmp, 0o700)
                break
            except FileExistsError:
                tmp = None  # someone else's: never removed
        write_json(model_params, tmp / "model.json")
        write_json(preprocessing, tmp / "preprocessing.json")
        write_table(reference, tmp / "reference.tsv")
        if weights is not None:
            shutil.copyfile(weights, tmp / "weights.pt")
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        card = {
            "bundle_version": BUNDLE_VERSION,
            "target": target,
            "model": model,
            "task": task,
            "classes": classes,
            "metrics": metrics,
            **({"test_losses": [float(v) for v in np.asarray(test_losses, dtype=np.float64).ravel()]}
               if test_losses is not None else {}),
            **({"binarize_threshold": float(binarize_threshold)} if binarize_threshold is not None else {}),
            **({"interval": interval} if interval is not None else {}),
            **({"prediction_set": prediction_set} if prediction_set is not None else {}),
            "training_fingerprint": training_fingerprint,
            "n_training_samples": int(len(reference)),
            "versions": package_versions(),
            "created": created or _now(),
            "files": files,
        }
        write_json(card, tmp / CARD)
        from .io import _umask

        os.chmod(tmp, 0o777 & ~_umask())  # created private; a bundle is shared like any output
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _now() -> str:
    """The creation time: ``SOURCE_DATE_EPOCH`` if set (reproducible builds), else now; UTC, ISO 8601."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), tz=timezone.utc) if epoch and epoch.isdigit() \
        else datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")


# --------------------------------------------------------------------------- loading
@dataclass
class Bundle:
    """A verified bundle in memory."""

    path: Path
    card: dict[str, Any]
    params: dict[str, Any]
    preprocessing: dict[str, Any]
    reference: pd.DataFrame
    network: Any = None

    @property
    def target(self) -> str:
        return self.card["target"]

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def classes(self) -> list[str] | None:
        return self.card.get("classes")

    @property
    def design(self) -> dict[str, Any]:
        return self.preprocessing["design"]

    @property
    def terms(self) -> list[str]:
        return list(self.design["terms"])

    def predict_design(self, X: np.ndarray) -> np.ndarray:
        """Predictions (regression) or class probabilities (classification) from design values."""
        return predict_design(self.params, X, self.network)

    def half_widths(self, X: np.ndarray) -> np.ndarray | None:
        """Each sample's prediction-interval half-width from its design values, or None for a bundle without an
        interval (classification; too few residuals; made before intervals): the card's one ``half_width``, or
        ``q`` times the sample's :func:`neighbour_difficulty` against the reference (the training samples), at least
        the card's ``min_distance`` (:func:`difficulty_floor`; 0 in a card made before it)."""
        iv = self.card.get("interval") if self.task == "regression" else None
        if not iv:
            return None
        X = np.asarray(X, dtype=np.float64)
        if "q" not in iv:
            return np.full(len(X), float(iv["half_width"]))
        R = self.reference[self.terms].to_numpy(dtype=np.float64)
        d = neighbour_difficulty(R, np.asarray(iv["folds"]), X, int(iv["neighbours"]), interval_scale(R))
        return float(iv["q"]) * np.maximum(d, float(iv.get("min_distance", 0.0)))


def resolve_bundle(path: str | os.PathLike[str]) -> Path:
    """A bundle directory, or a target's directory whose ``best.json`` names the chosen model's bundle."""
    p = Path(path)
    if (p / CARD).is_file():
        return p
    best = p / "best.json"
    if best.is_file():
        try:
            name = json.loads(best.read_text())["model"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"'{best}' does not name a model; re-run the pipeline's bundle step.") from None
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            raise InputError(f"'{best}' names an invalid model directory {name!r}.")
        if (p / name / CARD).is_file():
            log.info("bundle: %s is the best model of %s (best.json)", name, p)
            return p / name
        others = sorted(d.name for d in p.iterdir() if (d / CARD).is_file())
        raise InputError(f"'{best}' names the model {name!r}, but '{p / name}' holds no bundle (no {CARD}): it was "
                         f"removed or its bundle step did not finish. Re-run the pipeline's bundle step"
                         + (f", or give one of the bundles there: {preview([str(p / o) for o in others])}."
                            if others else "."))
    raise InputError(f"'{path}' is not a model bundle (no {CARD}) nor a target directory with best.json. Give a "
                     f"directory under results/models/.")


def verify_bundle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of a bundle against its card's SHA-256; return the card.

    Raises
    ------
    InputError
        A missing card, a file listed but missing, a checksum mismatch, or an
        unlisted file (anything that is not in the card was not written by gexpred;
        hidden files, such as Snakemake's ``.snakemake_timestamp``, are ignored:
        nothing reads them).
    """
    p = Path(path)
    try:
        card = json.loads((p / CARD).read_text(encoding="utf-8"))
        files = card["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"Bundle '{p}': {CARD} is missing or unreadable; the bundle is incomplete or damaged. "
                         f"Re-create it with the pipeline.") from None
    problems = []
    for name, digest in sorted(files.items()):
        f = p / name
        if Path(name).name != name:
            problems.append(f"{name!r} is not a plain file name")
        elif not f.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(f) != digest:
            problems.append(f"{name} does not match its checksum")
    # hidden files (Snakemake's .snakemake_timestamp in directory outputs) are never read
    extra = sorted(f.name for f in p.iterdir() if f.name not in files and f.name != CARD and not f.name.startswith("."))
    if extra:
        problems.append(f"unlisted files {preview(extra)}")
    if problems:
        raise InputError(f"Bundle '{p}' fails verification: {'; '.join(problems)}. It was changed after it was "
                         f"written (or copied incompletely); refusing to use it. Re-create it with the pipeline.")
    return card


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Verify and load a bundle (no code from it is executed; networks load with ``weights_only=True``)."""
    from .io import read_table

    p = resolve_bundle(path)
    card = verify_bundle(p)
    try:
        params = json.loads((p / "model.json").read_text(encoding="utf-8"))
        prep = json.loads((p / "preprocessing.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"Bundle '{p}': its model.json or preprocessing.json is not readable JSON ({exc}) although "
                         f"it matches its checksum: the bundle was edited by hand. Re-create it with the pipeline.") \
            from None
    problems = bundle_problems(card, params, prep)
    if problems:
        raise InputError(f"Bundle '{p}' is inconsistent although its files match their checksums (edited by hand?): "
                         f"{'; '.join(problems[:5])}. Re-create it with the pipeline.")
    ref = read_table(p / "reference.tsv", dtype={"sample": str})
    problems = reference_problems(card, list(prep["design"]["terms"]), ref)
    if problems:
        raise InputError(f"Bundle '{p}': its reference.tsv (the training samples the monitor compares new batches "
                         f"with) is inconsistent although it matches its checksum (edited by hand?): "
                         f"{'; '.join(problems)}. Re-create it with the pipeline.")
    network = None
    if params.get("kind") == "mlp":
        from .nn import load_model

        network = load_model(p / "weights.pt", params["architecture"])  # InputError naming the file
    return Bundle(path=p, card=card, params=params, preprocessing=prep, reference=ref, network=network)


def bundle_problems(card: dict[str, Any], params: dict[str, Any], prep: dict[str, Any]) -> list[str]:
    """What is missing or inconsistent in a bundle's card, model and preprocessing (``[]`` when all is well),
    checked before any of it is used, so that a bundle edited by hand is refused by name rather than failing
    halfway through a prediction."""
    def is_list(v: Any, of: type | tuple[type, ...] = str) -> bool:
        return isinstance(v, list) and all(isinstance(x, of) and not isinstance(x, bool) for x in v)

    problems = []
    if not isinstance(card.get("target"), str) or card.get("task") not in ("regression", "classification"):
        problems.append("card.json lacks the target or the task")
    if not isinstance(params, dict) or not isinstance(prep, dict):
        return problems + ["model.json or preprocessing.json is not a JSON object"]
    norm, design = prep.get("normalization"), prep.get("design")
    if not isinstance(norm, dict) or not is_list(norm.get("genes")) or not isinstance(norm.get("steps"), list):
        return problems + ["preprocessing.json lacks the normalization's genes or steps"]
    if not isinstance(design, dict) or not is_list(design.get("predictors")) or not is_list(design.get("terms")):
        return problems + ["preprocessing.json lacks the design's predictors or terms"]
    n_genes, terms = len(norm["genes"]), design["terms"]
    for k, step in enumerate(norm["steps"]):
        if not isinstance(step, dict) or not isinstance(step.get("method"), str):
            problems.append(f"normalization step {k + 1} has no method")
        elif step["method"] == "zscore" and not (is_list(step.get("mean"), (int, float)) and
                                                  is_list(step.get("sd"), (int, float)) and
                                                  len(step["mean"]) == len(step["sd"]) == n_genes):
            problems.append(f"normalization step {k + 1} (zscore) does not hold a mean and an sd for each of its "
                            f"{n_genes} genes")
        elif step["method"] == "zscore" and not (np.all(np.isfinite(step["mean"])) and
                                                  np.all(np.isfinite(step["sd"])) and
                                                  np.all(np.asarray(step["sd"]) > 0)):
            problems.append(f"normalization step {k + 1} (zscore) has a mean or sd that is not a finite number, or "
                            f"an sd that is not positive")
        elif step["method"] == "log_cpm" and not all(
                is_list([step.get(q)], (int, float)) and math.isfinite(step[q]) and step[q] > 0
                and (q != "log_base" or step[q] != 1) for q in ("scale", "prior_count", "log_base")):
            problems.append(f"normalization step {k + 1} (log_cpm) does not hold a positive scale, prior_count and "
                            f"log_base")
        elif step["method"] not in ("log1p", "log_cpm", "zscore"):
            problems.append(f"normalization step {k + 1} has an unknown method {step['method']!r}")
    losses = card.get("test_losses")
    if losses is not None and not (is_list(losses, (int, float)) and np.all(np.isfinite(losses))
                                   and np.all(np.asarray(losses, dtype=np.float64) >= 0)):
        problems.append("card.json's test_losses are not a list of finite, non-negative numbers")
    threshold = card.get("binarize_threshold")
    if threshold is not None and not (is_list([threshold], (int, float)) and math.isfinite(threshold)
                                      and card.get("task") == "classification"):
        problems.append("card.json's binarize_threshold is not a finite number of a classification target")
    kind = params.get("kind")
    coef = params.get("coef")
    if kind == "linear":
        if not isinstance(params.get("intercept"), (int, float)) or not is_list(coef, (int, float)) \
                or len(coef) != len(terms):
            problems.append(f"model.json's linear model does not hold an intercept and one coefficient for each of "
                            f"the design's {len(terms)} terms")
    elif kind == "logistic":
        if not isinstance(coef, list) or len(coef) != len(terms) + 1 or not (
                is_list(coef, (int, float)) or all(is_list(r, (int, float)) for r in coef)):
            problems.append(f"model.json's logistic model does not hold a row of coefficients for the intercept and "
                            f"each of the design's {len(terms)} terms")
    elif kind == "mlp":
        arch = params.get("architecture")
        if not isinstance(arch, dict) or arch.get("n_in") != len(terms):
            problems.append(f"model.json's network architecture does not take the design's {len(terms)} terms as "
                            f"inputs")
    else:
        problems.append(f"model.json names an unknown model kind {kind!r}")
    return problems


def reference_problems(card: dict[str, Any], terms: list[str], ref: pd.DataFrame) -> list[str]:
    """What is missing or inconsistent in a bundle's ``reference.tsv`` (``[]`` when all is well): one row per
    training sample of the card, a finite column for each design term and for the predictions; a reference cut
    short would let the monitor compare a batch with nothing and call it ``ok``."""
    problems = []
    n = card.get("n_training_samples")
    if len(ref) != n or len(ref) < 2:
        problems.append(f"{len(ref)} rows where the card counts {n} training samples")
    absent = [c for c in [*terms, "prediction"] if c not in ref.columns]
    if absent:
        problems.append(f"no column for {preview(absent)}")
    present = [c for c in [*terms, "prediction"] if c in ref.columns]
    values = ref[present].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        problems.append("values that are missing or not finite numbers")
    iv = card.get("interval") or {}
    if "q" in iv and (len(iv.get("folds") or []) != len(ref) or not int(iv.get("neighbours", 0)) >= 1):
        problems.append(f"an interval whose folds ({len(iv.get('folds') or [])}) do not match its rows, or without "
                        f"neighbours")
    return problems


def rowwise_dot(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``X @ coef`` (samples x terms times terms, or terms x outputs), summed term by term from the first, so
    that each sample's value is the same float whatever other samples share the batch, or their order.

    BLAS's ``X @ coef`` blocks the rows by the batch's size and layout, and a sample scored alone (or in a
    batch of 2, or reversed) differed from the same sample in the whole batch in its last bits (4e-16 on the
    demo's bundles): one sample, two predictions.
    """
    X = np.asarray(X, dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    out = np.zeros((len(X), *coef.shape[1:]))
    for j in range(X.shape[1]):
        out += X[:, j, None] * coef[j] if coef.ndim > 1 else X[:, j] * coef[j]
    return out


def predict_design(params: dict[str, Any], X: np.ndarray, network: Any = None) -> np.ndarray:
    """Apply a bundle's model to design values (samples x terms, normalized scale).

    ``linear``: ``intercept + X @ coef``. ``logistic``: softmax over the classes of
    ``[0, const + X @ coef]`` (the first class is the reference); both by :func:`rowwise_dot`, so that a
    sample's prediction does not depend on the batch it comes in. ``mlp``: the network (class probabilities
    for classification), in float32: a sample's prediction may differ in the last float32 bits (relative
    ~1e-7) with the batch's size, as torch's matrix products block the rows.
    """
    X = np.asarray(X, dtype=np.float64)
    kind = params.get("kind")
    if kind == "linear":
        return params["intercept"] + rowwise_dot(X, params["coef"])
    if kind == "logistic":
        from .logit import _softmax

        B = np.asarray(params["coef"], dtype=np.float64)
        eta = B[0] + rowwise_dot(X, B[1:])
        return _softmax(np.column_stack([np.zeros(len(X)), eta]))
    if kind == "mlp":
        from .nn import predict, predict_proba

        return predict_proba(network, X) if params.get("task") == "classification" else predict(network, X)
    raise ModelError(f"Unknown model kind {kind!r} in a bundle's model.json.")


# --------------------------------------------------------------------------- new data
def prepare_inputs(bundle: Bundle, expr: pd.DataFrame, obs: pd.DataFrame | None, source: str,
                   with_target: bool = False) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Normalize new samples with the saved parameters and build the model's design.

    Parameters
    ----------
    expr
        New samples x genes on the scale of the training matrices (before normalization).
    obs
        Sample sheet of the new samples (needed when the model has covariates).
    source
        How to name the input in messages.
    with_target
        Also return the target gene's normalized values (regression truth), if the
        input has the gene; NaN where a sample lacks it (not refused: the model does not use it).

    Returns
    -------
    design : pandas.DataFrame
        Samples x terms, in the model's order.
    target_values : numpy.ndarray or None
    """
    from .design import build_design
    from .preprocess import apply_normalization

    norm = bundle.preprocessing["normalization"]
    needed = list(norm["genes"])
    missing = [g for g in needed if g not in expr.columns]
    target = bundle.target
    # the target gene is needed only as the truth (or for library sizes): never to predict
    if target in needed and not norm.get("library_size_genes") and (target in missing or not with_target):
        needed = [g for g in needed if g != target]
        missing = [g for g in missing if g != target]
    if missing:
        library = bool(norm.get("library_size_genes"))
        what = "genes whose library sizes the saved log-CPM normalization uses" if library else \
            "predictor genes of the model"
        n_needed = len(needed) if library else len([g for g in needed if g != target])
        raise InputError(f"{source} lacks {len(missing)} of the {n_needed} {what}: {preview(missing)}. Give a "
                         f"matrix with every one of them.{missing_genes_hint(missing, expr)}")
    needed_set = set(needed)  # once: a log-CPM model needs every gene, and a batch can hold 60,000
    extra = [g for g in expr.columns if g not in needed_set]
    if extra:
        log.info("%s: %s the model does not use %s ignored", source, plural(len(extra), "gene"),
                 "is" if len(extra) == 1 else "are")
    values = expr[needed].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if target in needed and not norm.get("library_size_genes"):
        # the target gene is only the truth here: its gaps are the caller's to judge (gexpred monitor checks the
        # accuracy only where every sample has it), never a reason to refuse scoring the batch
        bad[:, needed.index(target)] = False
    if bad.any():
        r, c = np.argwhere(bad)[0]
        rows = expr.index[bad.any(axis=1)]
        raise InputError(f"{source} has {plural(int(bad.sum()), 'missing or infinite value')} in the genes the "
                         f"model uses, e.g. gene {needed[c]!r} of sample {expr.index[r]!r} "
                         f"({plural(len(rows), 'sample')}: "
                         f"{preview(list(rows))}). Fill them in, or leave those samples out of the batch; the "
                         f"model needs every one of its genes in every sample.")
    if needed != list(norm["genes"]):  # the target gene is absent: normalize without it
        keep = [i for i, g in enumerate(norm["genes"]) if g in needed_set]
        norm = {"steps": _subset_steps(norm["steps"], keep), "genes": needed}
    Z = apply_normalization(values, needed, list(expr.index), norm, source)
    zdf = pd.DataFrame(Z, index=expr.index, columns=needed)
    design = bundle.design
    covariates = None
    if design.get("covariates"):
        if obs is None:
            raise InputError(f"The model adjusts for covariates {preview(list(design['covariates']))}: give the new "
                             f"samples' sample sheet (--sample-sheet).")
        sheet = str(obs.attrs.get("source", "the sample sheet"))
        covariates = encode_covariates_like(obs.reindex(expr.index), design["covariates"], sheet)
    X = build_design(zdf, list(design["predictors"]), covariates, design.get("interactions") or [])
    X = X.reindex(columns=list(design["terms"]))
    for text in scale_warnings(norm["steps"], values, X, bundle.reference, source, needed):
        log.warning(text)
    y = zdf[target].to_numpy() if with_target and target in zdf.columns else None
    return X, y


def missing_genes_hint(missing: list[str], expr: pd.DataFrame) -> str:
    """Why a batch may lack the model's genes, as a sentence for the error (or ""): a matrix written samples x
    genes, whose sample ids are the genes (text matrices hold genes in rows), or the genes spelt otherwise (letter
    case, a version suffix, leading zeros: :func:`gexpred.errors.near_ids`)."""
    from .errors import near_ids

    samples = set(map(str, expr.index))
    as_samples = [g for g in missing if g in samples]
    if as_samples:
        return (f" The batch's samples {preview(as_samples, 3)} are genes of the model instead: the matrix looks "
                f"transposed. Text matrices hold genes in rows and samples in columns; an .h5ad file holds samples "
                f"in obs and genes in var.")
    # the bundle's genes are fixed: the batch's spelling is the one to change, not a config's
    return near_ids(missing, map(str, expr.columns), strip_versions="strip them from the batch's matrices")


def scale_warnings(steps: list[dict[str, Any]], values: np.ndarray, design: pd.DataFrame, reference: pd.DataFrame,
                   source: str, genes: list[str] | None = None) -> list[str]:
    """Warnings (texts) when a new batch looks to be on another scale than the training matrices.

    Nothing in a batch says its scale, and a batch of unlogged intensities, of log values for a model of raw
    counts, or of values normalized already is scored without error, into predictions far off. Two signs:
    a model whose first step takes raw counts (``log1p``, ``log_cpm``) meeting values all below
    :data:`gexpred.preprocess.LOG_SCALE_MAX` and not all whole numbers (as the normalize step warns when fitting);
    and design values more than the training range's width beyond the training range (``reference``).

    Parameters
    ----------
    steps
        The bundle's fitted normalization steps.
    values
        The batch's values of the normalization's genes, on the scale of the input matrices (samples x genes,
        the samples in the order of ``design``'s rows).
    design, reference
        The batch's and the training samples' design values (samples x terms).
    source
        The batch's input, named in the warnings (each also names the sample and the value).
    genes
        The genes of ``values``' columns, to name the gene of a value too.
    """
    from .preprocess import LOG_SCALE_MAX

    out = []
    first = steps[0]["method"] if steps else None
    finite = values[np.isfinite(values)]
    if first in ("log1p", "log_cpm") and finite.size and finite.max() < LOG_SCALE_MAX \
            and not np.all(finite == np.round(finite)):
        r, c = np.unravel_index(int(np.argmax(np.where(np.isfinite(values), values, -np.inf))), values.shape)
        where = f"sample {str(design.index[r])!r}" + (f", gene {genes[c]!r}" if genes is not None else "")
        out.append(f"The model's normalization starts with '{first}', made for raw counts, but every value of "
                   f"{source} in the model's genes is below {LOG_SCALE_MAX:g} (largest {finite.max():.4g}, "
                   f"{where}) and not "
                   f"all are whole numbers: the batch looks log-scaled already, and the predictions are wrong if it "
                   f"is. Give the batch on the scale of the training matrices (raw counts).")
    far = []
    for term in design.columns:
        ref = reference[term].to_numpy(dtype=np.float64)
        lo, hi = float(ref.min()), float(ref.max())
        new = design[term].to_numpy(dtype=np.float64)
        beyond = (new < lo - (hi - lo)) | (new > hi + (hi - lo))
        if beyond.any():
            i = int(np.flatnonzero(beyond)[0])
            far.append((term, int(beyond.sum()), str(design.index[i]), float(new[i]), lo, hi))
    if far:
        term, n, sample, value, lo, hi = far[0]
        more = f" (and {len(far) - 1} more of its {design.shape[1]} inputs)" if len(far) > 1 else ""
        out.append(f"{source}: {n} of {len(design)} samples have values of input {term!r}{more} more than the "
                   f"training range's width beyond the training range (e.g. sample {sample!r}: {value:.4g} where "
                   f"the training samples span {lo:.4g} to {hi:.4g} on the model's scale). Predictions there "
                   f"extrapolate far beyond the training data: check that the batch is on the scale of the "
                   f"training matrices (not unlogged where training was log-scaled, not log-scaled where it was raw "
                   f"counts, not normalized already).")
    return out


def _subset_steps(steps: list[dict[str, Any]], keep: list[int]) -> list[dict[str, Any]]:
    """Fitted normalization steps restricted to the genes at positions ``keep`` (per-gene parameters subset)."""
    out = []
    for p in steps:
        q = dict(p)
        if p["method"] == "zscore":
            q["mean"] = [p["mean"][i] for i in keep]
            q["sd"] = [p["sd"][i] for i in keep]
        out.append(q)
    return out
