"""Command-line interface: one verb per workflow step.

Every verb reads its inputs, computes everything, and only then writes its
outputs (each atomically). A :class:`~gexpred.errors.GexpredError` is printed
as one paragraph on standard error (and in the ``--log`` file) without a
traceback, and the process exits with status 1. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .errors import GexpredError, InputError, ModelError, plural, preview

log = logging.getLogger("gexpred")

MATRIX_HELP = ("TSV/.txt/.tab or CSV, genes x samples, optionally .gz; parquet (.parquet/.pq), genes x samples; or "
               "AnnData .h5ad, samples in obs and genes in var")
"""The --help of an expression matrix option: every format :func:`gexpred.io.read_matrix` reads."""
SHEET_HELP = ("TSV or CSV (optionally .gz) with a 'sample' column and one column per covariate, or an .h5ad whose obs "
              "holds them")
"""The --help of a sample-sheet option: the formats :func:`gexpred.io.read_sample_sheet` reads."""
GOLD_STANDARD_HELP = ("the known edges, TSV or CSV (optionally .gz): a targets x regulators 0/1 matrix, or an edge "
                      "list of regulator, target[, 1] lines")
"""The --help of a gold-standard option: both layouts :func:`gexpred.recovery.read_gold_standard` reads."""


# --------------------------------------------------------------------------- helpers
def _setup_logging(log_file: str | None, verbose: bool = False) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.INFO if (verbose or not log_file) else logging.WARNING)
    err.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(err)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON ({exc}).") from None


def _sources(adata, path: str, what: str = "the collected data") -> str:
    """How error messages name the collected data: ``what`` and the matrices it came from."""
    return _source_text(adata.uns.get("sources", [path]), what)


def _sheet_name(adata) -> str:
    """How error messages name the sample sheet the covariates came from: with its path where collect kept it."""
    path = adata.uns.get("sample_sheet")
    return f"the sample sheet '{path}'" if path else "the sample sheet"


def _source_text(sources: list[str], what: str = "the collected data") -> str:
    return f"{what} (" + ", ".join(sources) + ")"


def _load_split_data(data: str, splits: str, target: str | None = None):
    """The data and each sample's split; with ``target``, only the samples where the target gene was measured
    (:func:`_measured_samples`)."""
    from .io import read_h5ad

    adata = read_h5ad(data)
    split = _split_of(adata.obs_names, data, splits)
    return _measured_samples(adata, split, target, data) if target is not None else (adata, split)


def _measured_samples(adata, split: np.ndarray, target: str, data: str):
    """The data and splits without the samples whose value of gene ``target`` was missing (``missing:
    impute_mean`` filled it in for the gene as a predictor; as a response it would be learnt and judged as if
    measured). The normalize step records the imputed cells (``uns['imputed']``)."""
    imp = adata.uns.get("imputed")
    if not isinstance(imp, dict) or "gene" not in imp:
        return adata, split
    missing = set(np.asarray(imp["sample"], dtype=str)[np.asarray(imp["gene"], dtype=str) == target])
    if not missing:
        return adata, split
    keep = ~np.asarray(adata.obs_names.isin(missing))
    left = [s for s in adata.obs_names if s in missing]
    counts = {k: int(np.sum(split[~keep] == k)) for k in ("train", "test")}
    log.warning("target %s: %s without a measured value (%d training, %d test: %s) %s left out of its "
                "models and their judgement; missing: impute_mean fills a gene's missing values only where it is "
                "a predictor", target, plural(len(left), "sample"), counts["train"], counts["test"], preview(left),
                "is" if len(left) == 1 else "are")
    empty = [name for k, name in (("train", "training"), ("test", "test")) if not np.any(split[keep] == k)]
    if empty:
        raise InputError(
            f"Target {target!r} of {_sources(adata, data)} has no measured value in the {empty[0]} samples, so it "
            f"can be neither fitted nor judged. Remove it from 'targets' or add samples where it is measured."
        )
    return adata[keep].copy(), split[keep]


def _in_id_order(adata, split: np.ndarray):
    """The data and splits with the samples sorted by id.

    A network's validation part and batch order are drawn by position (``mlp.seed``), so on the samples in
    the order of the input matrices the same data and seed gave another network when the columns of a matrix,
    or the matrices themselves, were listed in another order; the split and the folds depend on the ids only.
    """
    order = np.argsort(np.asarray(adata.obs_names, dtype=str), kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        return adata, split
    return adata[order].copy(), np.asarray(split)[order]


def _split_of(samples, data: str, splits: str) -> np.ndarray:
    """``train``/``test`` of each sample of ``data``, in its order, from the splits table."""
    from .io import read_table

    sp = read_table(splits, dtype={"sample": str})
    split = sp.set_index("sample")["split"].reindex(samples)
    if split.isna().any():
        raise InputError(f"Splits table '{splits}' does not cover every sample of '{data}'. Re-run the split step.")
    return split.to_numpy()


def _predictions_frame(target: str, model: str, samples, split, y, yhat) -> pd.DataFrame:
    return pd.DataFrame({"target": target, "model": model, "sample": list(samples), "split": split,
                         "observed": y, "predicted": yhat})


# --------------------------------------------------------------------------- verbs
def cmd_targets(a: argparse.Namespace) -> None:
    from .io import write_table
    from .naming import safe_names

    try:
        dirs = safe_names(list(a.target))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    write_table(pd.DataFrame({"target": list(dirs), "directory": list(dirs.values())}), a.out)


def cmd_collect(a: argparse.Namespace) -> None:
    from .collect import DROPPED_COLUMNS, apply_missing_policy, attach_sample_sheet, combine
    from .io import read_matrix, read_sample_sheet, write_h5ad, write_table

    mats = []
    for p in a.matrix:
        mats.append(read_matrix(p, missing=a.missing))
        log.info("read %s: %d genes x %d samples", p, mats[-1].n_vars, mats[-1].n_obs)
    adata, dropped = combine(mats)
    adata, handled = apply_missing_policy(adata, mats, a.missing)
    dropped = pd.concat([dropped, handled], ignore_index=True) if len(handled) else dropped
    log.info("missing values (policy %s): %d values in %d genes", a.missing, adata.uns["missing"]["n_values"],
             adata.uns["missing"]["n_genes"])
    if a.sample_sheet:
        sheet = read_sample_sheet(a.sample_sheet)
        adata, extra = attach_sample_sheet(adata, sheet, a.sample_sheet,
                                           dropped_samples=dropped.loc[dropped["kind"] == "sample", "id"])
        dropped = pd.concat([dropped, extra], ignore_index=True) if len(extra) else dropped
    adata.uns["sources"] = list(a.matrix)
    if a.sample_sheet:
        adata.uns["sample_sheet"] = str(a.sample_sheet)  # for messages about covariates, steps later
    genes_out = dropped[dropped["kind"] == "gene"]
    # what was dropped and why, so that a later step naming such a gene says so instead of "check the spelling"
    adata.uns["dropped_genes"] = {c: genes_out[c].astype(str).to_numpy() for c in ("id", "file", "reason")}
    adata.uns["n_dropped_genes"] = int((dropped["kind"] == "gene").sum())
    adata.uns["n_dropped_samples"] = int((dropped["kind"] == "sample").sum())
    log.info("collected %d samples x %d genes (%d genes and %d samples dropped)", adata.n_obs, adata.n_vars,
             adata.uns["n_dropped_genes"], adata.uns["n_dropped_samples"])
    write_h5ad(adata, a.out)
    try:
        write_table(dropped.reindex(columns=DROPPED_COLUMNS), a.dropped)
    except BaseException:
        Path(a.out).unlink(missing_ok=True)  # no partial output: both files or neither
        raise


def cmd_gather(a: argparse.Namespace) -> None:
    """Tables of one target each, as one table: stacked (``--rows``) or joined on their sample column
    (``--columns``), in the order given."""
    from .io import read_table, write_table

    if len(a.table) == 0:
        raise InputError("gexpred gather: give at least one --table.")
    parts = [read_table(p, dtype=str) for p in a.table]
    if a.how == "rows":
        out = pd.concat(parts, ignore_index=True)
    else:
        out = parts[0]
        for p, path in zip(parts[1:], a.table[1:]):
            if list(p["sample"]) != list(out["sample"]):
                raise InputError(f"Table '{path}' holds other samples than '{a.table[0]}'; re-run the steps that "
                                 f"wrote them.")
            out = pd.concat([out, p.drop(columns="sample")], axis=1)
    log.info("gathered %d tables: %d rows x %d columns", len(parts), len(out), out.shape[1])
    write_table(out, a.out)


def cmd_gold_standard(a: argparse.Namespace) -> None:
    """Read and check the gold standard (a 0/1 matrix or an edge list) and write it as a targets x regulators
    matrix: the workflow runs it first, so that a malformed file stops the run before any model is fitted."""
    from .io import write_table
    from .recovery import read_gold_standard

    gs = read_gold_standard(a.input)
    gs.index.name = "target"
    log.info("gold standard %s: %d known edges, %d targets with one, %d regulators", a.input, int(gs.to_numpy().sum()),
             int((gs.to_numpy().sum(axis=1) > 0).sum()), gs.shape[1])
    write_table(gs, a.out, index=True)


def cmd_labels(a: argparse.Namespace) -> None:
    from .io import read_h5ad, write_table
    from .logit import binarize, encode_labels

    adata = read_h5ad(a.data)
    thresholds = _json_arg(a.binarize, "--binarize") if a.binarize else {}
    out = pd.DataFrame({"sample": list(adata.obs_names)})
    for t in a.target:
        if t in thresholds:
            if t not in adata.var_names:
                raise InputError(
                    f"'binarize' names gene {t!r}, which is not in the collected matrices. Check its spelling."
                )
            values = np.asarray(adata[:, t].X).ravel()
            bad = ~np.isfinite(values)
            if bad.any():
                raise InputError(
                    f"Gene {t!r} of {_sources(adata, a.data)}, binarized as a classification target, has missing "
                    f"or non-finite values in {plural(int(bad.sum()), 'sample')}: {preview(adata.obs_names[bad])}. A class "
                    f"label is never imputed; fix those values or remove the samples."
                )
            codes, classes = binarize(values, float(thresholds[t]), f"gene {t!r} of {_sources(adata, a.data)}")
            labels = np.asarray(classes, dtype=object)[codes]
            how = f"gene binarized at {thresholds[t]:g}"
        elif t in adata.obs.columns:
            codes, classes = encode_labels(adata.obs[t], f"sample-sheet column {t!r}")
            labels = np.asarray(classes, dtype=object)[codes]
            how = "sample-sheet column"
        else:
            raise InputError(
                f"Classification target {t!r} is neither a column of the sample sheet nor a gene listed in "
                f"'binarize'. Add a column {t!r} of class labels to the sample sheet, or binarize a gene with "
                f"binarize: {{{t}: threshold}}."
            )
        counts = pd.Series(labels).value_counts().sort_index()
        log.info("target %s (%s): %s", t, how, ", ".join(f"{k}: {v}" for k, v in counts.items()))
        out[t] = labels
    write_table(out, a.out)


def _read_labels(path: str, samples) -> pd.DataFrame:
    from .io import read_table

    lab = read_table(path, dtype=str).set_index("sample")
    return lab.reindex(list(samples))


def cmd_split(a: argparse.Namespace) -> None:
    from .io import read_h5ad_columns, read_h5ad_scalars, write_table
    from .split import train_test_split

    _, samples, _, _ = read_h5ad_columns(a.data)  # the sample ids only
    strata = None
    if a.labels:
        lab = _read_labels(a.labels, samples)
        strata = lab[a.stratify or lab.columns[0]]
        log.info("split stratified by the classes of %s", strata.name)
    n_dropped = int(read_h5ad_scalars(a.data, ["n_dropped_samples"]).get("n_dropped_samples", 0)) \
        if len(samples) < 4 else 0
    df = train_test_split(samples, a.test_fraction, a.seed, labels=strata, source=f"The data '{a.data}'",
                          n_dropped=n_dropped)
    if strata is not None:
        test_counts = pd.crosstab(strata.reindex(df["sample"]).to_numpy(), df["split"].to_numpy())
        few = [c for c in test_counts.index if test_counts.loc[c].get("train", 0) < 2]
        if few:
            raise InputError(
                f"After the split, classes {', '.join(map(repr, few))} of target {strata.name!r} have fewer than 2 "
                f"training samples; a model cannot learn them. Add samples of those classes, merge rare classes, "
                f"or lower split.test_fraction."
            )
    counts = df["split"].value_counts()
    log.info("split %d samples: %d train, %d test (seed %d)", len(df), counts.get("train", 0),
             counts.get("test", 0), a.seed)
    write_table(df, a.out)


def cmd_folds(a: argparse.Namespace) -> None:
    from .io import read_h5ad, read_table, write_table
    from .search import kfold

    adata = read_h5ad(a.data)
    sp = read_table(a.splits, dtype={"sample": str}).set_index("sample")["split"].reindex(adata.obs_names)
    all_train = list(adata.obs_names[(sp == "train").to_numpy()])
    lab = _read_labels(a.labels, all_train) if a.labels else None
    parts = []
    for t in a.target:
        train = all_train
        if t in adata.var_names:  # a target gene's unmeasured samples are left out of its models (_measured_samples)
            measured = np.isfinite(np.asarray(adata[all_train, t].X, dtype=np.float64).ravel())
            train = [s for s, m in zip(all_train, measured) if m]
        labels = None
        if lab is not None:
            labels = lab.loc[train, t].to_numpy()
            counts = pd.Series(labels).value_counts()
            rare = counts[(counts < a.k) & (counts >= 2)]  # a single sample: kfold refuses it
            if len(rare):  # the split is stratified by the first target only: another's rare class may be thin
                one = len(rare) == 1
                it = "it" if one else "them"
                log.warning(f"target {t}: class{'' if one else 'es'} "
                            f"{', '.join(f'{c!r} ({n})' for c, n in rare.items())} ha{'s' if one else 've'} fewer "
                            f"training samples than the {a.k} folds, so some folds hold none of {it}: their AUROC is "
                            f"undefined (NaN) and the models are judged on the other classes there. More samples of "
                            f"{it}, or the first place among the targets (the split is stratified by the first "
                            f"target's classes), give {it} a fair share.")
        try:
            fold = kfold(train, a.k, a.seed, labels)
        except InputError as exc:
            raise InputError(f"Target {t!r}: {exc}") from None
        parts.append(pd.DataFrame({"target": t, "sample": train, "fold": fold + 1}))
        sizes = np.bincount(fold, minlength=a.k)
        log.info("target %s: %d training samples in %d folds of %s samples%s", t, len(train), a.k,
                 "/".join(map(str, sizes)), " (stratified by class)" if labels is not None else "")
    write_table(pd.concat(parts, ignore_index=True), a.out)


def _train_folds(path: str, target: str, samples) -> np.ndarray:
    """0-based fold of each training sample of ``target`` (in the order of ``samples``)."""
    from .io import read_table

    df = read_table(path, dtype={"target": str, "sample": str})
    sub = df[df["target"] == target].set_index("sample")["fold"]
    fold = sub.reindex(list(samples))
    if fold.isna().any() or len(sub) != len(samples):
        raise InputError(f"The folds table '{path}' does not match the training samples of target {target!r}. "
                         f"Re-run the folds step.")
    return fold.to_numpy(dtype=np.int64) - 1


def _cv_frame(target: str, model: str, samples, folds: np.ndarray, observed, predicted) -> pd.DataFrame:
    return pd.DataFrame({"target": target, "model": model, "sample": list(samples), "fold": folds + 1,
                         "observed": observed, "predicted": predicted})


def _cv_class_frame(target: str, model: str, samples, folds: np.ndarray, labels, classes, proba) -> pd.DataFrame:
    df = _cv_frame(target, model, samples, folds, labels,
                   np.asarray(classes, dtype=object)[np.nanargmax(proba, axis=1)])
    for k, c in enumerate(classes):
        df[f"p[{c}]"] = proba[:, k]
    return df


def _dropped_genes(adata) -> dict[str, str]:
    """``{gene: why it was dropped}`` from the collected data (``gexpred collect`` records it)."""
    d = adata.uns.get("dropped_genes")
    if not isinstance(d, dict) or "id" not in d:
        return {}
    return _dropped_text(d["id"], d["file"], d["reason"])


def _dropped_text(ids, files, reasons) -> dict[str, str]:
    """``{gene: "reason; read from file"}`` from the columns of the dropped table that collect keeps in ``uns``."""
    return {str(i): f"{r}; read from {f}" for i, f, r in zip(ids, files, reasons)}


def cmd_normalize(a: argparse.Namespace) -> None:
    from .io import write_h5ad, write_json
    from .preprocess import apply_normalization, describe, fit_normalization, impute_training_mean

    adata, split = _load_split_data(a.data, a.splits)
    train = split == "train"
    genes = list(adata.var_names)
    samples = list(adata.obs_names)
    source = _sources(adata, a.data, "the collected matrices")
    raw = np.asarray(adata.X)
    X, imputed = impute_training_mean(raw, train, genes, samples, a.missing, source)
    params = fit_normalization(X[train], genes, [s for s, t in zip(samples, train) if t], a.method, source)
    Z = apply_normalization(X, genes, samples, params, source)
    params["fitted_on"] = {"split": "train", "n_samples": int(train.sum())}
    if imputed is not None:
        params["imputed"] = imputed
    log.info("normalization: %s, fitted on %d training samples", describe(params), int(train.sum()))
    out = adata.copy()
    out.X = Z
    out.uns["normalization"] = describe(params)
    if imputed is not None:
        si, gi = np.nonzero(~np.isfinite(raw))
        # which cells were filled in: a target's are left out of its models (_measured_samples)
        out.uns["imputed"] = {"gene": np.asarray(genes, dtype=str)[gi], "sample": np.asarray(samples, dtype=str)[si]}
    write_json(params, a.params)
    try:
        write_h5ad(out, a.out)
    except BaseException:
        Path(a.params).unlink(missing_ok=True)  # no partial output: both files or neither
        raise


def cmd_select(a: argparse.Namespace) -> None:
    from .design import select_predictors
    from .io import read_h5ad, write_table

    full = read_h5ad(a.data)
    full_split = _split_of(full.obs_names, a.data, a.splits)
    spec = _json_arg(a.spec, "--spec")
    source = _sources(full, a.data)
    genes, sample_ids = set(full.var_names), set(full.obs_names)
    lab = _read_labels(a.labels, full.obs_names) if a.labels else None
    transposed = [t for t in a.target if t not in genes and t in sample_ids and not (lab is not None and t in lab)]
    if transposed:
        raise InputError(
            f"Targets {preview(transposed)} are not genes of {source} but sample ids of it: the matrix looks "
            f"transposed. Text matrices hold genes in rows and samples in columns; an .h5ad file holds samples in "
            f"obs and genes in var (AnnData's convention): transpose it (adata.T) and write it again."
        )
    dropped = _dropped_genes(full)
    tables, fold_tables = [], []
    for t in a.target:
        # each target on the samples where it was measured (all of them unless missing: impute_mean filled some)
        adata, split = _measured_samples(full, full_split, t, a.data) if t in genes else (full, full_split)
        train = split == "train"
        class_labels = None
        if lab is not None:
            from .logit import encode_labels

            class_labels = {t: encode_labels(lab.loc[adata.obs_names[train], t], f"target {t!r}")[0]}
        table = select_predictors(np.asarray(adata.X)[train], list(adata.var_names), [t], spec, source,
                                  required=list(a.required), class_labels=class_labels, dropped=dropped)
        log.info("target %s: %s", t, plural(len(table), "predictor"))
        tables.append(table)
        if a.folds and a.out_folds:
            fold_tables.append(_fold_predictors(a, adata, train, spec, source, class_labels, table, t))
    write_table(pd.concat(tables, ignore_index=True), a.out)
    if fold_tables:
        write_table(pd.concat(fold_tables, ignore_index=True), a.out_folds)


def _fold_predictors(a: argparse.Namespace, adata, train: np.ndarray, spec, source: str, class_labels,
                     table: pd.DataFrame, t: str) -> pd.DataFrame:
    """The predictors of target ``t`` chosen again on each fold's training part (``--folds``), as many as on the
    whole training split, so that cross-validation judges the choice too (:func:`gexpred.search.fold_design`).
    With ``top_correlated`` a fold's K is widened or narrowed when fewer or more of the genes required by an
    interaction or a gene set are among its first K than on the whole training split (the design keeps one
    width); a list of predictors is the same in every fold."""
    from .design import select_predictors

    X_train = np.asarray(adata.X)[train]
    genes = list(adata.var_names)
    samples = adata.obs_names[train]
    top_k = spec.get("top_correlated") if isinstance(spec, dict) else None
    parts = []
    folds = _train_folds(a.folds, t, samples)
    whole = set(table.loc[table["target"] == t, "gene"])
    width = len(whole)
    overlap = []
    for f in range(int(folds.max()) + 1):
        keep = folds != f
        labels = {t: class_labels[t][keep]} if class_labels and t in class_labels else None
        k = top_k
        tried = set()
        for _ in range(2 * len(a.required) + 2):
            fs = spec if k is None else {**spec, "top_correlated": k}
            sub = select_predictors(X_train[keep], genes, [t], fs, f"{source} (fold {f + 1}'s training part)",
                                    required=list(a.required), class_labels=labels)
            if len(sub) == width or k is None:
                break
            tried.add(k)
            k = max(1, k + width - len(sub))  # fewer or more of the required genes among the fold's first K
            if k in tried:
                break
        if len(sub) != width:
            raise ModelError(f"Target {t!r}: fold {f + 1}'s training part yields {len(sub)} predictors where the "
                             f"whole training split yields {width}; use fewer folds (split.folds).")
        overlap.append(len(set(sub["gene"]) & whole))
        sub.insert(1, "fold", f + 1)
        parts.append(sub)
    log.info("target %s: predictors chosen again on each fold's training part: %s of %d the same as on the "
             "whole training split", t, ", ".join(map(str, overlap)), width)
    return pd.concat(parts, ignore_index=True)


def _without_target(target: str, interactions: list[list[str]] | None) -> list[list[str]]:
    """``interactions`` without the pairs that hold ``target`` itself (a target is never its own predictor, nor
    part of one of its model's terms); each pair left out is logged."""
    kept = []
    for pair in interactions or []:
        if target in [str(x) for x in pair]:
            log.warning("target %s: interaction %s left out of its models: it holds the target itself, which is "
                        "never its own predictor", target, ":".join(map(str, pair)))
        else:
            kept.append(pair)
    return kept


def _gene_sets_without_target(target: str, gene_sets: dict[str, list[str]]) -> dict[str, list[str]]:
    """``gene_sets`` without ``target`` itself in any set (it is never its own predictor); each set it is taken
    from is logged, and ``nested_tests.tsv``'s ``terms`` column lists what each test dropped."""
    out = {}
    for name, genes in gene_sets.items():
        out[name] = [g for g in genes if str(g) != target]
        if len(out[name]) < len(genes):
            log.warning("target %s: gene set %r holds the target itself, which is never its own predictor; the "
                        "set %s", target, name, "is tested without it" if out[name] else "has no other gene and "
                        "no test")
    return out


def _design(a: argparse.Namespace, adata, split, interactions: list[list[str]] | None,
            need_target_gene: bool = True, folds: np.ndarray | None = None):
    """Design columns of one target (predictor genes, covariates, interactions), its values, and with
    ``folds`` each fold's design and terms (:func:`_fold_designs`; ``(None, None)`` otherwise)."""
    from .design import build_design, check_design, covariate_column, encode_covariates, predictors_for
    from .io import read_table

    table = read_table(a.predictors, dtype={"target": str, "gene": str})
    names = predictors_for(table, a.target)
    interactions = _without_target(a.target, interactions)
    train = split == "train"
    expr = pd.DataFrame(np.asarray(adata.X), index=adata.obs_names, columns=adata.var_names)
    covariates, encoding = (None, {})
    genes_too = [c for c in a.covariate or [] if covariate_column(c)[0] in set(adata.var_names)]
    if genes_too:
        from .errors import ConfigError

        raise ConfigError(
            f"Covariates {preview(genes_too)} (ols.covariates, columns of the sample sheet) are also gene ids of "
            f"{_sources(adata, a.data)}: a design term or an interaction naming them would be ambiguous (whether "
            f"or not the gene is among target {a.target!r}'s predictors). Rename the column in the sample sheet "
            f"and in ols.covariates, e.g. to '{genes_too[0]}_covariate'."
        )
    if a.covariate:
        covariates, encoding = encode_covariates(adata.obs, list(a.covariate), train, _sheet_name(adata))
    Xdf = build_design(expr, names, covariates, interactions)
    _, kept = check_design(Xdf.to_numpy()[train], list(Xdf.columns), a.target)
    design = {"predictors": [n for n in names if n in kept], "covariates": encoding,
              "interactions": [list(map(str, pair)) for pair in (interactions or [])], "terms": kept}
    y = expr[a.target].to_numpy() if need_target_gene else None
    per_fold = _fold_designs(a, expr, train, design, covariates, interactions, set(names) - set(kept), folds)
    return Xdf[kept].to_numpy(), y, train, design, per_fold


def _fold_designs(a: argparse.Namespace, expr: pd.DataFrame, train: np.ndarray, design: dict, covariates,
                  interactions, dropped: set[str], folds: np.ndarray | None):
    """The design of each fold (folds x training samples x terms) with the predictors chosen on that fold's
    training part (``--fold-predictors``), and each fold's terms; ``(None, None)`` without them.

    A fold's design holds its own genes where the run's design holds the genes chosen on the whole training
    split (less ``dropped``, those constant on it), and the same covariate and interaction columns
    (:func:`gexpred.search.fold_design`)."""
    if not getattr(a, "fold_predictors", None) or folds is None:
        return None, None
    from .design import build_design
    from .io import read_table

    table = read_table(a.fold_predictors, dtype={"target": str, "gene": str})
    table = table[table["target"] == a.target]
    genes = design["predictors"]
    rest = [t for t in design["terms"] if t not in set(genes)]
    fold_X, fold_terms = [], []
    for f in range(int(folds.max()) + 1):
        names = [g for g in table[table["fold"] == f + 1].sort_values("rank")["gene"] if g not in dropped]
        if len(names) != len(genes):
            raise InputError(f"The fold predictors table '{a.fold_predictors}' holds {len(names)} genes for target "
                             f"{a.target!r} in fold {f + 1}, the design {len(genes)}. Re-run the select step.")
        terms = [*names, *rest]
        fold_X.append(build_design(expr, names, covariates, interactions)[terms].to_numpy(dtype=np.float64)[train])
        fold_terms.append(terms)
    return np.stack(fold_X), fold_terms


def _folds_of(a: argparse.Namespace, adata, split) -> np.ndarray | None:
    """0-based fold of each training sample of the target (``--folds``), or None without folds."""
    return _train_folds(a.folds, a.target, adata.obs_names[split == "train"]) if a.folds else None


def _class_target(a: argparse.Namespace, adata, train):
    """Class codes of the target (all samples) and the class names, from the labels table."""
    from .logit import encode_labels

    lab = _read_labels(a.labels, adata.obs_names)[a.target]
    _, classes = encode_labels(lab[train], f"target {a.target!r} (training split)")
    unseen = sorted(set(lab[~train]) - set(classes))
    if unseen:
        raise InputError(f"Target {a.target!r}: classes {unseen} occur only in the test split; no model can learn them.")
    codes = np.array([classes.index(v) for v in lab.astype(str)])
    return codes, classes, lab.astype(str).to_numpy()


def _class_predictions(target, model, samples, split, labels, classes, proba) -> pd.DataFrame:
    df = pd.DataFrame({"target": target, "model": model, "sample": list(samples), "split": split,
                       "observed": labels, "predicted": np.asarray(classes, dtype=object)[proba.argmax(axis=1)]})
    for k, c in enumerate(classes):
        df[f"p[{c}]"] = proba[:, k]
    return df


def cmd_logit(a: argparse.Namespace, adata, split, interactions: list[list[str]],
              gene_sets: dict[str, list[str]]) -> None:
    from .io import write_json, write_table, write_text
    from .logit import METHODS, fit_logit
    from .ols import DIAGNOSTIC_COLUMNS, INFLUENCE_COLUMNS, vif_rows

    folds = _folds_of(a, adata, split)
    X, _, train, design, (fold_X, fold_terms) = _design(a, adata, split, interactions, need_target_gene=False,
                                                        folds=folds)
    codes, classes, labels = _class_target(a, adata, train)
    terms = design["terms"]
    from .errors import ModelError

    stop = a.stop_on_separation or a.penalized
    try:
        fit = fit_logit(X[train], codes[train], terms, classes, alpha=a.alpha, penalized=False, target=a.target,
                        separation="stop" if stop else "firth")
    except ModelError as exc:
        if not (a.penalized and not a.stop_on_separation and "separation" in str(exc)):
            raise
        log.warning("Logit %s: the classes are separated; fitting an L2-penalised logistic regression instead "
                    "(ols.penalized: true): coefficients without standard errors or p-values", a.target)
        fit = fit_logit(X[train], codes[train], terms, classes, alpha=a.alpha, penalized=True, target=a.target)
    if fit.separating:
        log.warning("Logit %s: %s", a.target, fit.separating)
    stats_row = fit.fit_statistics()
    log.info("Logit %s: %d training samples, %d classes, %d terms, fitted by %s", a.target, int(train.sum()),
             len(classes), len(terms), METHODS[fit.method])
    # multicollinearity is the one OLS assumption check that carries over to logistic regression
    diag = pd.DataFrame(vif_rows(np.column_stack([np.ones(int(train.sum())), X[train]]), ["const", *terms]),
                        columns=DIAGNOSTIC_COLUMNS)
    nested = _logit_nested(X[train], codes[train], terms, classes, gene_sets, fit, a)
    proba = fit.predict_proba(X)
    preds = _class_predictions(a.target, "ols", adata.obs_names, split, labels, classes, proba)
    out = Path(a.out_dir)
    if a.folds:
        from .search import cv_logit

        separation = "ridge" if a.penalized else "firth"
        oof = cv_logit(X[train], codes[train], folds, terms, classes, a.target, separation, fold_X=fold_X)
        if a.importance_repeats:
            from .importance import by_term, fold_importance, importance_table, log_loss
            from .search import fold_logit

            rises = fold_importance(
                lambda Xtr, ctr: fold_logit(Xtr, ctr, terms, classes, a.target, separation).predict_proba,
                X[train], codes[train], folds, a.importance_repeats, a.importance_seed, loss=log_loss,
                fold_X=fold_X)
            write_table(importance_table(terms, by_term(rises, fold_terms, terms)), out / "importance.tsv")
        write_table(_cv_class_frame(a.target, "ols", adata.obs_names[train], folds, labels[train], classes, oof),
                    out / "cv_predictions.tsv")
    write_table(fit.table(), out / "coefficients.tsv")
    write_table(stats_row, out / "fit.tsv")
    write_table(diag, out / "diagnostics.tsv")
    write_table(pd.DataFrame(columns=INFLUENCE_COLUMNS), out / "influence.tsv")
    write_table(nested, out / "nested_tests.tsv")
    write_text(fit.summary(a.target) + "\n", out / "summary.txt")
    write_json({"target": a.target, "model": "logit", "task": "classification", "classes": classes,
                "design": design, **fit.to_dict(), "alpha": a.alpha, "normalization": a.normalization_ref,
                "gexpred_version": __version__}, out / "model.json")
    write_table(preds, out / "predictions.tsv")


def _logit_nested(X, codes, terms, classes, gene_sets, fit, a) -> pd.DataFrame:
    """Likelihood-ratio test of each gene set (classification counterpart of the nested F-test)."""
    from scipy import stats

    from .logit import fit_logit, firth_lr_test
    from .ols import set_terms

    rows = []
    full_llf = float(fit.fit_statistics()["log_likelihood"].iloc[0])
    A = np.column_stack([np.ones(len(X)), X])
    for name, genes in gene_sets.items():
        drop = set_terms(terms, {str(g) for g in genes})
        if not drop or fit.penalized:  # no test; its degrees of freedom as the test would have them
            rows.append((name, np.nan, len(drop) * (len(classes) - 1), np.nan, np.nan,
                         " ".join(terms[j] for j in drop)))
            continue
        if fit.method == "firth":  # penalised likelihood-ratio test, the set's coefficients held at 0
            lr, p, _ = firth_lr_test(A, codes.astype(float), fit.firth, [j + 1 for j in drop])
            rows.append((name, lr, len(drop), np.nan, p, " ".join(terms[j] for j in drop)))
            continue
        keep = [j for j in range(len(terms)) if j not in drop]
        red = fit_logit(X[:, keep], codes, [terms[j] for j in keep], classes, alpha=a.alpha, target=a.target,
                        separation="stop")
        lr = 2 * (full_llf - float(red.fit_statistics()["log_likelihood"].iloc[0]))
        df_num = len(drop) * (len(classes) - 1)
        rows.append((name, lr, df_num, np.nan, float(stats.chi2.sf(lr, df_num)), " ".join(terms[j] for j in drop)))
    return pd.DataFrame(rows, columns=["gene_set", "lr_stat", "df_num", "df_den", "p_value", "terms"])


def cmd_ols(a: argparse.Namespace) -> None:
    from .io import write_json, write_table, write_text
    from .ols import diagnostics, failed_assumptions, fit_ols, fit_statistics, influence, nested_tests, set_terms

    adata, split = _load_split_data(a.data, a.splits, a.target)
    interactions = _json_arg(a.interactions, "--interactions") if a.interactions else []
    gene_sets = _gene_sets_without_target(a.target, _json_arg(a.gene_sets, "--gene-sets") if a.gene_sets else {})
    if a.labels:
        if a.cov_type != "nonrobust":  # as the workflow refuses ols.cov_type for classification targets
            from .errors import ConfigError

            raise ConfigError(f"--cov-type {a.cov_type}: {a.target!r} is a classification target (--labels), "
                              f"whose logistic regression has the classical covariance of its likelihood; a "
                              f"heteroskedasticity-consistent covariance is for regression targets' OLS fits. Leave "
                              f"out --cov-type (nonrobust).")
        cmd_logit(a, adata, split, interactions, gene_sets)
        return
    folds = _folds_of(a, adata, split)
    X, y, train, design, (fold_X, fold_terms) = _design(a, adata, split, interactions, folds=folds)
    terms = design["terms"]
    fit = fit_ols(X[train], y[train], terms, cov_type=a.cov_type)
    stats_row = fit_statistics(fit)
    diag = diagnostics(fit, a.alpha)
    log.info("OLS %s: %d training samples, %d terms, R^2 = %.4f, F p-value = %.3g", a.target, int(train.sum()),
             len(terms), fit.result.rsquared, fit.result.f_pvalue)
    for sentence in failed_assumptions(diag):
        log.warning("OLS %s: assumption fails: %s%s", a.target, sentence,
                    "; ols.cov_type: HC3 makes the tests heteroskedasticity-consistent"
                    if sentence.startswith("heteroskedastic") and a.cov_type == "nonrobust" else "")
    infl = influence(fit, list(adata.obs_names[train]))
    if fit.leverage_one:
        # HC2/HC3 divide each squared residual by 1 - h (or its square): a sample fitted exactly by its own
        # column (leverage 1, e.g. the one training sample of a covariate level) makes that 0 / 0 (fit_ols)
        _warn_leverage_one(f"OLS {a.target}", list(infl["sample"].iloc[fit.leverage_one]), a.cov_type,
                           ": the terms they determine (that level's coefficient) have NaN standard errors, tests and "
                           "intervals (coefficients.tsv), and so have the overall F-test (fit.tsv) and the gene-set "
                           "tests (nested_tests.tsv) that include them; the other terms' are unaffected")
    nested = nested_tests(fit, X[train], y[train], gene_sets)
    in_model = set(terms)
    for name, genes in gene_sets.items():  # the test removes what is in the model; say what is not
        missing = [str(g) for g in genes if str(g) not in in_model]
        if missing:
            tested = bool(set_terms(terms, {str(g) for g in genes}))
            log.warning("OLS %s: gene set %r: %s not a term of the model (constant over the training samples, or "
                        "not among its predictors), so the set %s (nested_tests.tsv)", a.target, name,
                        preview(missing), "is tested without it" if tested else "has no test")
    preds = _predictions_frame(a.target, "ols", adata.obs_names, split, y, fit.predict(X))
    cv = None
    if a.folds:
        from .search import cv_ols

        cv = _cv_frame(a.target, "ols", adata.obs_names[train], folds, y[train],
                       cv_ols(X[train], y[train], folds, fold_X=fold_X))
    out = Path(a.out_dir)
    if cv is not None:
        write_table(cv, out / "cv_predictions.tsv")
        if a.importance_repeats:
            from .importance import by_term, fold_importance, importance_table
            from .search import ols_predictor

            rises = fold_importance(ols_predictor, X[train], y[train], folds, a.importance_repeats,
                                    a.importance_seed, fold_X=fold_X)
            write_table(importance_table(terms, by_term(rises, fold_terms, terms)), out / "importance.tsv")
    write_table(fit.table(alpha=a.alpha), out / "coefficients.tsv")
    write_table(stats_row, out / "fit.tsv")
    write_table(diag, out / "diagnostics.tsv")
    write_table(infl, out / "influence.tsv")
    write_table(nested, out / "nested_tests.tsv")
    write_text(fit.summary(a.target, a.alpha) + "\n", out / "summary.txt")
    write_json({"target": a.target, "model": "ols", "design": design, **fit.to_dict(), "alpha": a.alpha,
                "normalization": a.normalization_ref, "gexpred_version": __version__}, out / "model.json")
    write_table(preds, out / "predictions.tsv")


def cmd_ols_summary(a: argparse.Namespace) -> None:
    from .io import read_table, write_table
    from .ols import COEF_COLUMNS, bh_qvalues, failed_assumptions, is_intercept

    coefs, fits, verdicts = [], [], []
    for d in map(Path, a.dirs):
        target = json.loads((d / "model.json").read_text())["target"]
        c = read_table(d / "coefficients.tsv", dtype={"term": str})
        c.insert(0, "target", target)
        coefs.append(c)
        f = read_table(d / "fit.tsv")
        f.insert(0, "target", target)
        fits.append(f)
        diag = read_table(d / "diagnostics.tsv", dtype={"term": str})
        verdicts.append({"target": target, "failed_assumptions": "; ".join(failed_assumptions(diag)) or "none"})
    allc = pd.concat(coefs, ignore_index=True)
    allc = allc[["target", *COEF_COLUMNS, *[c for c in allc.columns if c not in COEF_COLUMNS and c != "target"]]]
    tested = pd.Series(~is_intercept(allc["term"]), index=allc.index)
    q = np.full(len(allc), np.nan)
    q[tested.to_numpy()] = bh_qvalues(allc.loc[tested, "p_value"].to_numpy())
    allc["q_value"] = q
    n_sig = int((allc["q_value"] < a.fdr).sum())
    log.info("%d of %d tested terms across %d targets have q < %g (Benjamini-Hochberg)", n_sig, int(tested.sum()),
             len(a.dirs), a.fdr)
    allf = pd.concat(fits, ignore_index=True)
    allf = allf.merge(pd.DataFrame(verdicts), on="target", how="left")
    write_table(allc, a.out_coefficients)
    write_table(allf, a.out_fits)
    if a.out_nested:
        parts = []
        for d in map(Path, a.dirs):
            t = read_table(d / "nested_tests.tsv", dtype={"gene_set": str, "terms": str})
            t.insert(0, "target", json.loads((d / "model.json").read_text())["target"])
            parts.append(t)
        write_table(_nested_with_q(parts, ["target"], a.fdr), a.out_nested)


def _nested_with_q(parts: list[pd.DataFrame], columns: list[str], fdr: float) -> pd.DataFrame:
    """Every target's gene-set tests (F, or likelihood ratio for classification) in one table, with q-values by
    Benjamini-Hochberg over targets and sets (a set is tested once per target); with no test, the tables' columns
    (``columns`` without any table)."""
    from .ols import bh_qvalues

    filled = [t for t in parts if len(t)]
    nested = (pd.concat(filled, ignore_index=True) if filled
              else pd.DataFrame(columns=list(parts[0].columns) if parts else columns))
    if "p_value" in nested:
        nested["q_value"] = bh_qvalues(pd.to_numeric(nested["p_value"], errors="coerce").to_numpy(np.float64))
        if len(nested):
            log.info("gene sets: %d of %d tests (targets x sets) have q < %g", int((nested["q_value"] < fdr).sum()),
                     int(nested["q_value"].notna().sum()), fdr)
    return nested


def _network_candidates(a: argparse.Namespace, classification: bool = False
                        ) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]]:
    """The search section (``--search``), the candidates' config mappings and their validated settings. A
    classification network always trains on cross-entropy, so a search varying the regression loss
    (``loss``, ``huber_delta``) would train identical candidates: those keys are left out of its search."""
    from .errors import ConfigError
    from .nn import MLPSettings
    from .search import mlp_candidates

    base = _json_arg(a.settings, "--settings")
    search = _json_arg(a.search, "--search") if a.search else {}
    moot = [k for k in ("loss", "huber_delta") if classification and k in (search.get("mlp") or {})]
    if moot:
        log.info("search.mlp varies %s, which a classification network does not use (it trains on "
                 "cross-entropy): left out of its search", " and ".join(moot))
        search = {**search, "mlp": {k: v for k, v in search["mlp"].items() if k not in moot}}
    configs = mlp_candidates(base, search.get("mlp") or {}, search.get("strategy", "grid"),
                             int(search.get("n_candidates", 10)), int(search.get("seed", 0)))
    candidates = []
    for k, cfg in enumerate(configs, start=1):
        try:
            candidates.append(MLPSettings.from_config(cfg))
        except ConfigError as exc:
            raise ConfigError(f"search.mlp candidate {k} ({ {key: cfg[key] for key in search.get('mlp', {})} }): "
                              f"{exc}") from None
    return search, configs, candidates


def cmd_mlp(a: argparse.Namespace) -> None:
    import torch

    from .io import write_json, write_table
    from .nn import architecture, predict, predict_proba, save_state, settings_dict
    from .search import Pruning, candidate_summary, cv_criterion, describe_refit, search_network, search_table

    torch.set_num_threads(max(1, a.threads))
    classify = bool(a.labels)
    search, configs, candidates = _network_candidates(a, classification=classify)
    adata, split = _in_id_order(*_load_split_data(a.data, a.splits, a.target))
    folds = _folds_of(a, adata, split)
    X, y, train, design, (fold_X, fold_terms) = _design(a, adata, split, None, need_target_gene=not classify,
                                                        folds=folds)
    task, n_classes, classes, labels = "regression", None, None, None
    if classify:
        codes, classes, labels = _class_target(a, adata, train)
        task, n_classes, yy = "classification", len(classes), codes
    else:
        yy = y
    search_meta = None
    cv_out = search_out = None
    repeats = a.importance_repeats if folds is not None else 0
    res = search_network(X[train], yy[train], folds, candidates, task, n_classes, a.target,
                         perm_repeats=repeats, perm_seed=a.importance_seed,
                         prune=Pruning.from_config(search.get("prune")), fold_X=fold_X)
    winner, cv, final_cv = res.winner, res.cv, res.final_cv
    if cv is not None:
        loss_name = cv_criterion(candidates, task)
        search_out = search_table(candidates, cv, candidate_summary(configs), loss_name)
        samples_tr = adata.obs_names[train]
        # what the comparison and the prediction interval judge: the search with its choice (each fold's candidate
        # chosen by the other folds) where there was a choice, else the model's own procedure
        judged = res.nested if res.nested is not None else final_cv
        if classify:
            cv_out = _cv_class_frame(a.target, "mlp", samples_tr, folds, labels[train], classes, judged.oof[0])
        else:
            cv_out = _cv_frame(a.target, "mlp", samples_tr, folds, y[train], judged.oof[0])
        search_meta = {"strategy": search.get("strategy", "grid"), "n_candidates": len(candidates),
                       "folds": int(folds.max()) + 1, "selected": winner + 1, "loss": loss_name,
                       "cv_loss_mean": float(cv.mean[winner]), "cv_loss_sd": float(cv.sd[winner]),
                       "refit": describe_refit(res.settings), "final_cv_loss_mean": float(final_cv.mean[0]),
                       "final_cv_loss_sd": float(final_cv.sd[0]),
                       "pruned": [int(c) + 1 for c in np.flatnonzero(cv.pruned_at)] if cv.pruned_at is not None
                       else []}
        if res.nested is not None:
            search_meta["nested_cv"] = {"fold_choices": [{"fold": f + 1, "candidate": c + 1}
                                                         for f, c in enumerate(res.fold_choices)],
                                        "cv_loss_mean": float(res.nested.mean[0]),
                                        "cv_loss_sd": float(res.nested.sd[0])}
        if len(candidates) > 1:
            varied = {k: configs[winner][k] for k in candidate_summary(configs)}
            log.info("MLP %s: search chose candidate %d of %d (%s) with CV %s %.5g +- %.3g", a.target, winner + 1,
                     len(candidates), ", ".join(f"{k}={v}" for k, v in varied.items()), loss_name,
                     cv.mean[winner], cv.sd[winner])
    settings = res.settings
    model, history, info = res.model, res.history, res.info
    log.info("MLP %s: %d epochs (best %d) in %.1fs on %s", a.target, info["epochs_run"], info["best_epoch"],
             info["seconds"], info["device"])
    if classify:
        preds = _class_predictions(a.target, "mlp", adata.obs_names, split, labels, classes, predict_proba(model, X))
    else:
        preds = _predictions_frame(a.target, "mlp", adata.obs_names, split, y, predict(model, X))
    out = Path(a.out_dir)
    meta = {
        "target": a.target,
        "model": "mlp",
        "task": task,
        "classes": classes,
        "architecture": architecture(model, settings),
        "settings": settings_dict(settings),
        "seed": settings.seed,
        "search": search_meta,
        "predictors": design["terms"],
        "design": design,
        "normalization": a.normalization_ref,
        # wall time stays in the log: the model card holds only what the config and seed determine
        "training": {k: v for k, v in info.items() if k != "seconds"},
        "loss": "cross_entropy" if classify else settings.loss,
        "torch_version": torch.__version__,
        "gexpred_version": __version__,
    }
    if search_out is not None:
        write_table(search_out, out / "search.tsv")
        write_table(cv_out, out / "cv_predictions.tsv")
    if repeats:
        from .importance import by_term

        imp, inter = _network_importance(a, model, X[train], yy[train], design["terms"], task,
                                         by_term(final_cv.perm_rise[0], fold_terms, design["terms"]), settings.seed,
                                         classes)
        write_table(imp, out / "importance.tsv")
        write_table(inter, out / "interactions.tsv")
    save_state(model, out / "model.pt")
    write_json(meta, out / "model.json")
    write_table(history, out / "history.tsv")
    write_table(preds, out / "predictions.tsv")


def _network_importance(a: argparse.Namespace, model, X: np.ndarray, y: np.ndarray, terms: list[str], task: str,
                        perm_rise: np.ndarray, seed: int,
                        classes: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The network's importance table (permutation on held-out folds, integrated gradients on the training
    split) and its interactions (Friedman's H among the most important predictors, the suggested pairs tested
    on the training split by OLS, or for a classification target by the logistic regression)."""
    from itertools import combinations

    from .importance import h_statistic, importance_table, integrated_gradients, interaction_table, \
        interaction_text
    from .nn import predict, predict_proba

    classify = task == "classification"
    # from the training mean, as documented: zeros only on z-scored inputs (not under log1p, log_cpm or none,
    # nor for covariates, which are never z-scored)
    # classification: each sample's attribution of the probability of its own class, so that every class counts
    ig = np.abs(integrated_gradients(model, X, baseline=X.mean(axis=0), task=task,
                                     classes=y if classify else None)).mean(axis=0)
    imp = importance_table(terms, perm_rise, ig)
    top = [terms.index(t) for t in imp["predictor"][: max(2, a.interaction_genes)]]
    pairs = [tuple(sorted(p)) for p in combinations(top, 2)]
    # classification: H over every class's probability (the last class alone misses pairs that move samples
    # between the others); the scale is the probabilities' spread, their sd averaged over the classes' variances
    f = (lambda Z: predict_proba(model, Z)) if classify else (lambda Z: predict(model, Z))  # noqa: E731
    h2, strength = h_statistic(f, X, pairs, max_points=a.h_points, seed=seed)
    fx = f(X).reshape(len(X), -1)
    # classification: the pairs tested in the (multinomial) logistic regression by a likelihood-ratio test
    inter = interaction_table(terms, pairs, h2, strength, X, y, scale=float(np.sqrt(np.mean(np.var(fx, axis=0)))),
                              fdr=a.fdr, top=a.interactions_tested, min_strength=a.min_strength,
                              classes=classes if classify else None)
    log.info("MLP %s: most important predictors (permutation on held-out folds): %s", a.target,
             ", ".join(imp["predictor"][:5]))
    log.info("MLP %s: %s", a.target, interaction_text(inter, a.fdr, a.min_strength))
    return imp, inter


def cmd_penalized(a: argparse.Namespace) -> None:
    from .io import write_json, write_table
    from .search import PENALTY_L1, cv_penalized

    if a.labels:
        raise InputError("The penalized model is fitted for regression targets; for classification targets "
                         "remove 'penalized' from 'models' (ols.penalized: true gives a ridge logistic fit).")
    adata, split = _load_split_data(a.data, a.splits, a.target)
    folds = _folds_of(a, adata, split)
    X, y, train, design, (fold_X, fold_terms) = _design(a, adata, split, None, folds=folds)
    res = cv_penalized(X[train], y[train], folds, a.method, a.n_alphas, a.target, fold_X=fold_X)
    terms = design["terms"]
    coefs = pd.DataFrame({"term": ["const", *terms], "coef": [res.intercept, *res.coef]})
    coefs["standardized_coef"] = [np.nan, *(res.coef * X[train].std(axis=0))]
    pred = res.intercept + X @ res.coef
    out = Path(a.out_dir)
    if a.importance_repeats:
        from .importance import by_term, fold_importance, importance_table
        from .search import fit_penalized

        def fit(Xtr, ytr):
            b0, b = fit_penalized(Xtr, ytr, res.alpha, PENALTY_L1[res.method])
            return lambda Z: b0 + Z @ b

        rises = fold_importance(fit, X[train], y[train], folds, a.importance_repeats, a.importance_seed,
                                fold_X=fold_X)
        write_table(importance_table(terms, by_term(rises, fold_terms, terms)), out / "importance.tsv")
    write_table(res.table, out / "search.tsv")
    write_table(coefs, out / "coefficients.tsv")
    write_table(_cv_frame(a.target, "penalized", adata.obs_names[train], folds, y[train], res.oof),
                out / "cv_predictions.tsv")
    write_json({"target": a.target, "model": "penalized", "method": res.method, "alpha": res.alpha,
                "l1_wt": PENALTY_L1[res.method], "intercept": res.intercept,
                "coefficients": dict(zip(terms, map(float, res.coef))), "design": design,
                "objective": "RSS / (2 n) + alpha * ((1 - l1_wt) * |b|^2 / 2 + l1_wt * |b|_1) on standardized "
                             "predictors (statsmodels OLS.fit_regularized)",
                "nested_cv": {"fold_choices": [{"fold": f + 1, "method": m, "alpha": al}
                                                for f, (m, al) in enumerate(res.fold_choices)],
                              # means over the folds of each fold's MSE, as search.tsv's cv_mse_mean
                              "cv_mse": _fold_mean_mse(y[train], res.oof, folds),
                              "selected_cv_mse": _fold_mean_mse(y[train], res.oof_selected, folds)},
                "normalization": a.normalization_ref, "gexpred_version": __version__}, out / "model.json")
    write_table(_predictions_frame(a.target, "penalized", adata.obs_names, split, y, pred), out / "predictions.tsv")


def _fold_mean_mse(y: np.ndarray, pred: np.ndarray, folds: np.ndarray) -> float:
    """The mean over the folds of each held-out fold's mean squared error."""
    return float(np.mean([np.mean((y[folds == f] - pred[folds == f]) ** 2) for f in np.unique(folds)]))


def cmd_bundle(a: argparse.Namespace) -> None:
    if not (len(a.model) == len(a.model_dir) == len(a.out)):
        raise InputError("bundle: give as many --model-dir and --out as --model.")
    for model, model_dir, out in zip(a.model, a.model_dir, a.out):
        _bundle_one(a, model, Path(model_dir), out)
    if a.summary:
        _write_best(a.summary, a.target, list(a.model), a.out_best)


def _conformal_min_n(level: float) -> int:
    """The fewest residuals a split-conformal interval at ``level`` needs: the smallest ``n`` with
    ``ceil((n + 1) level) <= n`` (:func:`gexpred.deploy.conformal_rank`)."""
    from .deploy import conformal_rank

    n = max(1, int(level / (1.0 - level)) - 1)
    while not conformal_rank(n, level):
        n += 1
    return n


def _bundle_interval(cvp: pd.DataFrame | None, level: float, test_observed: np.ndarray,
                     test_predicted: np.ndarray, name: str, method: str = "constant", neighbours: int = 10,
                     reference: pd.DataFrame | None = None, test_design: np.ndarray | None = None
                     ) -> dict[str, Any] | None:
    """A regression bundle's prediction interval (:func:`gexpred.deploy.prediction_interval`) from its model's
    out-of-fold predictions ``cvp`` (cv_predictions.tsv), or None without them or where they are too few for
    ``level`` (logged: an infinite half-width has no place in card.json, and the bundle then has no interval).

    ``method`` ``neighbours``: the residuals scaled by each training sample's distance to its ``neighbours``
    nearest samples of its fold's training part (:func:`gexpred.deploy.neighbour_difficulty`, on ``reference``,
    the training samples' design indexed by sample); the card keeps each reference row's fold and the scale, so
    that a new sample's half-width can be computed from the bundle alone."""
    if cvp is None or not len(cvp):
        return None
    from .deploy import interval_scale, neighbour_difficulty, prediction_interval

    extra: dict[str, Any] = {}
    if method == "neighbours":
        cvp = cvp.set_index("sample").reindex(reference.index)
        if cvp["fold"].isna().any():  # a training sample without an out-of-fold prediction: no fold to measure in
            log.warning("bundle %s: %d training samples have no cross-validation prediction; its prediction "
                        "interval has one width for every sample", name, int(cvp["fold"].isna().sum()))
            cvp, method = cvp.dropna(subset=["fold"]).reset_index(), "constant"
    difficulty: dict[str, np.ndarray] = {}
    if method == "neighbours":
        R = reference.to_numpy(dtype=np.float64)
        folds = cvp["fold"].to_numpy(dtype=np.int64)
        scale = interval_scale(R)
        difficulty = {"cv_difficulty": neighbour_difficulty(R, folds, None, neighbours, scale),
                      "test_difficulty": neighbour_difficulty(R, folds, test_design, neighbours, scale)}
        extra = {"neighbours": int(neighbours), "folds": [int(f) for f in folds]}
    interval = prediction_interval(cvp["observed"].to_numpy(dtype=np.float64),
                                   cvp["predicted"].to_numpy(dtype=np.float64), level, test_observed, test_predicted,
                                   **difficulty)
    if not np.isfinite(interval.get("half_width", interval.get("q"))):  # ceil((n + 1) level) > n
        log.warning("bundle %s: %d cross-validation residuals are too few for a %g%% prediction interval (it needs "
                    "at least %d: ceil((n + 1) x %g) <= n); the bundle has none, and predict writes no pi_low, "
                    "pi_high. Raise ols.alpha, or give the training split more samples.", name,
                    interval["n_residuals"], 100 * level, _conformal_min_n(level), level)
        return None
    how = (f"+- {interval['half_width']:.4g}" if "half_width" in interval else
           f"+- {interval['q']:.4g} x each sample's mean distance to its {neighbours} nearest training samples")
    log.info("bundle %s: %g%% prediction interval %s (from %d cross-validation residuals); it covers %.1f%% of the %d "
             "test samples (mean width %.4g)", name, 100 * level, how, interval["n_residuals"],
             100 * interval["test_coverage"], interval["n_test"], interval["test_mean_width"])
    return {**interval, **extra}


def _bundle_prediction_set(cvp: pd.DataFrame | None, classes: list[str], level: float, test_codes: np.ndarray,
                           test_proba: np.ndarray, name: str) -> dict[str, Any] | None:
    """A classification bundle's conformal prediction sets (:func:`gexpred.deploy.prediction_sets`) from its
    model's out-of-fold class probabilities ``cvp`` (cv_predictions.tsv), or None without them or where they are
    too few for ``level`` (logged)."""
    if cvp is None or not len(cvp):
        return None
    from .deploy import prediction_sets
    from .logit import class_codes

    pset = prediction_sets(class_codes(cvp["observed"].to_numpy(), classes),
                           cvp[[f"p[{c}]" for c in classes]].to_numpy(dtype=np.float64), level, test_codes, test_proba)
    if not np.isfinite(pset["threshold"]):
        log.warning("bundle %s: %d cross-validation predictions are too few for %g%% prediction sets (they need at "
                    "least %d); the bundle has none, and predict writes no prediction_set. Raise ols.alpha, or give "
                    "the training split more samples.", name, pset["n_residuals"], 100 * level,
                    _conformal_min_n(level))
        return None
    log.info("bundle %s: %g%% prediction sets: every class of probability >= %.4g (from %d cross-validation "
             "predictions); they hold the class of %.1f%% of the %d test samples, %.2f classes a sample on average",
             name, 100 * level, pset["threshold"], pset["n_residuals"], 100 * pset["test_coverage"], pset["n_test"],
             pset["test_mean_size"])
    return pset


def _bundle_one(a: argparse.Namespace, model: str, model_dir: Path, out_dir: str) -> None:
    from .deploy import encode_covariates_like, fingerprint, predict_design, subset_normalization, write_bundle
    from .design import build_design
    from .io import read_table

    needed = [model_dir / name for name in ("model.json", "predictions.tsv")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise InputError(f"bundle {a.target} / {model}: {preview(missing)} not found. --model-dir must be the model "
                         f"step's output directory (results/{model}/<target>) after that step has run; run it first "
                         f"(in the pipeline: snakemake results/{model}/<target>/model.json).")
    meta = json.loads(needed[0].read_text(encoding="utf-8"))
    design = meta["design"]
    adata, split = _load_split_data(a.data, a.splits, a.target)
    train = split == "train"
    samples = list(adata.obs_names)
    expr = pd.DataFrame(np.asarray(adata.X), index=adata.obs_names, columns=adata.var_names)
    # the test split's unseen levels as the fitting steps encoded them (the reference level, with their warning)
    cov = (encode_covariates_like(adata.obs, design["covariates"], "the sample sheet", unseen_as_reference=True)
           if design["covariates"] else None)
    X = build_design(expr, list(design["predictors"]), cov, design.get("interactions") or [])[design["terms"]]
    task = meta.get("task", "classification" if meta.get("classes") else "regression")
    classes = meta.get("classes")
    weights = None
    if model == "mlp":
        params = {"kind": "mlp", "task": task, "architecture": meta["architecture"], "classes": classes}
        weights = model_dir / "model.pt"
        from .nn import load_model

        network = load_model(weights, meta["architecture"])
    elif model == "penalized":
        params = {"kind": "linear", "terms": design["terms"], "intercept": meta["intercept"],
                  "coef": [meta["coefficients"][t] for t in design["terms"]], "method": meta["method"],
                  "alpha": meta["alpha"]}
        network = None
    elif meta.get("model") in ("logit", "mnlogit"):
        params = {"kind": "logistic", "terms": design["terms"], "classes": classes, "coef": meta["coef"]}
        network = None
    else:
        terms, coef = meta["terms"], meta["coef"]
        if terms[0] != "const" or terms[1:] != design["terms"]:
            raise InputError(f"'{model_dir / 'model.json'}' does not match its design; re-run the ols step.")
        params = {"kind": "linear", "terms": design["terms"], "intercept": coef[0], "coef": coef[1:]}
        network = None
    out = predict_design(params, X.to_numpy(), network)
    # the bundle must reproduce the pipeline's own predictions before it is written
    own = read_table(model_dir / "predictions.tsv", dtype={"sample": str}).set_index("sample").reindex(samples)
    if task == "classification":
        want = own[[f"p[{c}]" for c in classes]].to_numpy(dtype=np.float64)
    else:
        want = own["predicted"].to_numpy(dtype=np.float64)
    tol = 1e-5 * max(1.0, float(np.nanmax(np.abs(want))))
    if not np.allclose(out, want, rtol=1e-5, atol=tol):
        raise ModelError(f"Bundle of {a.target} / {model}: its predictions differ from the pipeline's by up to "
                         f"{float(np.nanmax(np.abs(out - want))):.3g}; not writing it.")
    ref = X[train].copy()
    ref.insert(0, "sample", np.asarray(samples)[train])
    if task == "classification":
        lab = _read_labels(a.labels, adata.obs_names)[a.target]
        for k, c in enumerate(classes):
            ref[f"p[{c}]"] = out[train, k]
        ref["prediction"] = out[train, -1]
        ref["observed"] = lab.to_numpy()[train]
    else:
        ref["prediction"] = out[train]
        ref["observed"] = expr[a.target].to_numpy()[train]
    norm_params = json.loads(Path(a.normalization).read_text(encoding="utf-8"))
    genes = list(design["predictors"]) + ([a.target] if task == "regression" else [])
    metrics = read_table(a.metrics, dtype={"target": str})
    mrow = metrics[(metrics["target"] == a.target) & (metrics["model"] == model)]
    card_metrics: dict[str, Any] = {}
    for sp_name in ("train", "test"):
        r = mrow[mrow["split"] == sp_name]
        card_metrics[sp_name] = {k: float(v) for k, v in r.iloc[0].drop(["target", "model", "split"]).items()
                                 if pd.notna(v)} if len(r) else {}
    if a.cv_metrics:
        cvm = read_table(a.cv_metrics, dtype={"target": str})
        cvm = cvm[(cvm["target"] == a.target) & (cvm["model"] == model)]
        card_metrics["cv"] = {k: float(v) for k, v in cvm.drop(columns=["target", "model", "fold"]).mean().items()
                              if pd.notna(v)}
        card_metrics["cv"]["n_folds"] = int(cvm["fold"].nunique())
    from .logit import class_codes
    from .monitor import sample_losses

    test = split == "test"
    truth = class_codes(lab.to_numpy()[test], classes) if task == "classification" else expr[a.target].to_numpy()[test]
    test_losses = sample_losses(task, truth, out[test])
    cv_path = model_dir / "cv_predictions.tsv"
    if task == "classification":
        cvc = read_table(cv_path, dtype={"sample": str, "observed": str}) if cv_path.is_file() else None
        prediction_set = _bundle_prediction_set(cvc, classes, 1.0 - a.alpha, truth, out[test], f"{a.target} / {model}")
    else:
        prediction_set = None
    cvp = read_table(cv_path, dtype={"sample": str}) if task == "regression" and cv_path.is_file() else None
    interval = _bundle_interval(cvp, 1.0 - a.alpha, truth, out[test], f"{a.target} / {model}", a.interval,
                                a.interval_neighbours, reference=X[train].set_axis(np.asarray(samples)[train]),
                                test_design=X[test].to_numpy(dtype=np.float64))
    Xall = np.asarray(adata.X)[train]
    write_bundle(out_dir, target=a.target, model=model, task=task, classes=classes, model_params=params,
                 preprocessing={"normalization": subset_normalization(norm_params, genes), "design": design},
                 reference=ref.reset_index(drop=True), metrics=card_metrics,
                 training_fingerprint=fingerprint(Xall, list(np.asarray(samples)[train]), list(adata.var_names)),
                 weights=weights, test_losses=test_losses[np.isfinite(test_losses)],
                 binarize_threshold=a.binarize_threshold if task == "classification" else None,
                 interval=interval, prediction_set=prediction_set)
    log.info("bundle %s / %s written to %s", a.target, model, out_dir)


def cmd_best(a: argparse.Namespace) -> None:
    _write_best(a.summary, a.target, list(a.models), a.out)


def _write_best(summary_path: str, target: str, models: list[str], out: str) -> None:
    """best.json: the target's model with the lowest mean CV error (the mean baseline is not deployed)."""
    from .io import read_table, write_json

    summary = read_table(summary_path, dtype={"target": str}).set_index("target")
    if target not in summary.index:
        raise InputError(f"Target {target!r} is not in '{summary_path}'; re-run the compare step.")
    row = summary.loc[target]
    scores = {m: float(row[m]) for m in models if m in row.index and pd.notna(row[m])}
    if not scores:
        raise InputError(f"'{summary_path}' has no cross-validation score of the models {models} for {target!r}.")
    best = min(scores, key=lambda m: (scores[m], models.index(m)))
    note = "" if row["best_model"] == best else f" (the {row['best_model']} baseline scored better: the target may " \
                                                 f"not be predictable from its predictors)"
    log.info("%s: deploying %s, the best model by CV %s%s", target, best, row["metric"], note)
    write_json({"target": target, "model": best, "metric": row["metric"], "cv": scores,
                "verdict": row["verdict"]}, out)


def _read_batch(paths: list[str], sample_sheet: str | None, bundle=None):
    """New samples x genes (combined like the training matrices) and their sample sheet; the ``bundle``'s
    categorical covariates are read from the sheet as text, as the training levels are (a batch whose levels
    are all number-like, '001' or '2', would otherwise be read as numbers that match no level)."""
    from .collect import attach_sample_sheet, combine
    from .io import read_matrix, read_sample_sheet

    # missing values pass as NaN here: only those in the genes the model uses are refused (prepare_inputs, by
    # gene and sample); a batch is not refused for a gap in a gene the model ignores
    adata, dropped = combine([read_matrix(p, missing="impute_mean") for p in paths])
    for kind, ids in dropped.groupby("kind", sort=True)["id"]:
        ids = ids.tolist()
        log.warning("new batch: %d %s%s not in every matrix of %s left out: %s", len(ids), kind,
                    "" if len(ids) == 1 else "s", ", ".join(paths), ", ".join(map(repr, ids)))
    obs = None
    if sample_sheet:
        categorical = [enc.get("column", c) for c, enc in (bundle.design.get("covariates") or {}).items()
                       if enc.get("type") == "categorical"] if bundle is not None else []
        sheet = read_sample_sheet(sample_sheet, text_columns=categorical)
        unlisted = adata.obs_names.difference(sheet.index, sort=False)
        if bundle is not None and not bundle.design.get("covariates") and 0 < len(unlisted) < adata.n_obs:
            # a model without covariates reads the sheet for the batch's labels only (the monitor's truth): a
            # sample without a row has no label, as one with an empty cell, and is no reason to refuse the batch
            log.info("sample sheet '%s' has no row for %d of the %d samples of the batch (%s): they have no label",
                     sample_sheet, len(unlisted), adata.n_obs, preview(list(unlisted)))
            adata = adata.copy()
            adata.obs = sheet.reindex(adata.obs_names)
        else:
            others = sheet.index.difference(adata.obs_names, sort=False)
            if len(others) and not len(unlisted):
                # a sheet of more samples than the batch is the ordinary case (the run's sample_sheet, which the
                # pipeline reads for a batch without its own in new_batch_sheets, lists every training sample):
                # its other rows are no warning, as attach_sample_sheet gives for the run's own matrices
                log.info("sample sheet '%s': %s not in the batch ignored", sample_sheet,
                         plural(len(others), "row"))
                sheet = sheet.loc[sheet.index.isin(adata.obs_names)]
            try:
                adata, _ = attach_sample_sheet(adata, sheet, sample_sheet)
            except InputError as exc:
                covariates = list((bundle.design.get("covariates") or {}) if bundle is not None else {})
                if not covariates:
                    raise
                # the workflow reads a batch without new_batch_sheets from the run's sample sheet, which rarely
                # holds new samples: say where the batch's covariates come from
                raise InputError(
                    f"{exc} The model adjusts for {preview(covariates)} (ols.covariates), read for each new sample "
                    f"of {', '.join(paths)} from this sheet: give the batch a sheet of its own (in the config "
                    f"new_batch_sheets: {{BATCH: path}}; --sample-sheet of gexpred predict and monitor)."
                ) from None
        obs = adata.obs.copy()
        obs.attrs["source"] = f"sample sheet '{sample_sheet}'"
    expr = pd.DataFrame(np.asarray(adata.X), index=adata.obs_names, columns=adata.var_names)
    return expr, obs, "the new batch (" + ", ".join(paths) + ")"


def _batch_predictions(bundle, X: pd.DataFrame, pred: np.ndarray, half: np.ndarray | None = None) -> pd.DataFrame:
    """The batch's predictions table; a regression bundle's intervals from ``half`` (each sample's half-width, as
    :meth:`gexpred.deploy.Bundle.half_widths` gives it), computed here when not given."""
    df = pd.DataFrame({"sample": list(X.index), "target": bundle.target, "model": bundle.card["model"]})
    if bundle.task == "classification":
        df["predicted"] = np.asarray(bundle.classes, dtype=object)[pred.argmax(axis=1)]
        for k, c in enumerate(bundle.classes):
            df[f"p[{c}]"] = pred[:, k]
        pset = bundle.card.get("prediction_set")
        if pset:  # each sample's conformal prediction set (a bundle made before has none): an in_set[class] column of
            # 0/1 per class, as p[class], and the set's size; plain numbers a tab split, R or awk read as they are
            from .deploy import set_members

            members = set_members(pset, pred)
            for k, c in enumerate(bundle.classes):
                df[f"in_set[{c}]"] = members[:, k].astype(np.int64)
            df["set_size"] = members.sum(axis=1).astype(np.int64)
    else:
        df["predicted"] = pred
        if half is None:
            half = bundle.half_widths(X.to_numpy(dtype=np.float64))
        if half is not None:  # the bundle's prediction interval (a bundle made before intervals has none)
            df["pi_low"] = pred - half
            df["pi_high"] = pred + half
    return df


def cmd_predict(a: argparse.Namespace) -> None:
    from .deploy import load_bundle, prepare_inputs
    from .io import write_table

    bundle = load_bundle(a.bundle)
    expr, obs, source = _read_batch(a.input, a.sample_sheet, bundle)
    X, _ = prepare_inputs(bundle, expr, obs, source)
    out = _batch_predictions(bundle, X, bundle.predict_design(X.to_numpy()))
    steps = [q["method"] for q in bundle.preprocessing["normalization"]["steps"]]
    scale = "" if bundle.task == "classification" else (
        f", on the model's scale: after the saved normalization ({', '.join(steps)}) of the target, as in the "
        f"pipeline's predictions.tsv" if steps else ", on the scale of the training matrices")
    log.info("predicted %s with %s (%s) for %s%s", bundle.target, bundle.card["model"], bundle.path,
             plural(len(out), "sample"), scale)
    write_table(out, a.out)


def _batch_labels(bundle, expr: pd.DataFrame, obs: pd.DataFrame | None, source: str) -> np.ndarray | None:
    """A classification target's class labels as the batch holds them, or None: a binarized gene cut at the
    bundle's threshold where the batch measures it (raw scale, as the training labels were made), else the sample
    sheet's column named after the target. A sample without one (the gene not measured, an empty cell) has None,
    logged; None where no sample has one."""
    from .logit import _label, binarized_classes

    threshold = bundle.card.get("binarize_threshold")
    if threshold is not None:
        if bundle.target not in expr.columns:
            return None
        values = expr[bundle.target].to_numpy(dtype=np.float64)
        gaps = ~np.isfinite(values)
        if not _some_truth(gaps, f"{source} lacks gene {bundle.target!r}", expr.index):
            return None
        # the bundle's own names of the two classes (code 0: at or below the threshold), as training wrote them
        classes = list(bundle.classes) if len(bundle.classes) == 2 else binarized_classes(threshold)
        labels = np.asarray(classes, dtype=object)[(values > threshold).astype(np.int64)]
        labels[gaps] = None
        return labels
    if obs is None or bundle.target not in obs.columns:
        return None
    col = obs[bundle.target].reindex(expr.index)
    labels = np.array([None if pd.isna(v) else _label(v) for v in col], dtype=object)
    gaps = np.array([v is None for v in labels], dtype=bool)
    if not _some_truth(gaps, f"{obs.attrs.get('source', source)} has no {bundle.target!r} label", expr.index):
        return None
    unknown = sorted(set(labels[~gaps]) - set(bundle.classes))
    if unknown:
        raise InputError(f"The {obs.attrs.get('source', 'sample sheet')} labels {bundle.target!r} with classes "
                         f"{preview(unknown)} that the model does not know ({preview(bundle.classes)}): its accuracy "
                         f"on them cannot be "
                         f"judged. Check the spelling of the labels, or leave those samples out.")
    return labels


def _some_truth(gaps: np.ndarray, lacks: str, samples) -> bool:
    """Whether any sample has its truth; the samples without one are logged (``lacks``: what the batch lacks): the
    accuracy is judged on the others (truth arrives for part of a batch), or not at all where none has one."""
    if not gaps.any():
        return True
    some = not gaps.all()
    log.info("%s in %d of %d samples (%s): %s", lacks, int(gaps.sum()), len(gaps), preview(list(samples[gaps])),
             f"accuracy judged on the other {plural(int((~gaps).sum()), 'sample')}" if some else "accuracy not checked")
    return some


def known_truth(task: str, truth) -> np.ndarray:
    """The samples whose truth is known: a finite value (regression), a label other than None (classification)."""
    if task == "classification":
        return np.array([v is not None for v in truth], dtype=bool)
    return np.isfinite(np.asarray(truth, dtype=np.float64))


def _truth(a: argparse.Namespace, bundle, expr: pd.DataFrame, y_input, source: str,
           obs: pd.DataFrame | None = None):
    """Truth of the batch's samples (normalized scale for regression; class labels for classification), or None.
    Where it is known for part of the batch only (``--truth-if-measured``, or empty cells of a ``--truth`` table), the
    others are NaN (regression) or None (classification): :func:`known_truth`."""
    from .io import read_sample_sheet

    gaps = (~np.isfinite(y_input)) if y_input is not None else None
    if getattr(a, "truth_if_measured", False) and not a.truth_from_input and not a.truth:
        if bundle.task == "regression" and y_input is not None:
            return y_input if _some_truth(gaps, f"{source} lacks gene {bundle.target!r}", expr.index) else None
        if bundle.task == "classification":
            labels = _batch_labels(bundle, expr, obs, source)
            if labels is not None:
                log.info("truth of %r: %s", bundle.target, "the batch's gene cut at the bundle's threshold"
                         if bundle.card.get("binarize_threshold") is not None else "the sample sheet's labels")
                return labels
            log.info("%s holds no class labels of %r: monitoring the inputs and predictions without the truth",
                     source, bundle.target)
            return None
        log.info("%s does not measure the target %r: monitoring the inputs and predictions without the truth",
                 source, bundle.target)
        return None
    if a.truth_from_input:
        if bundle.task != "regression":
            raise InputError(f"--truth-from-input: {bundle.target!r} is a classification target: its truth is a "
                             f"class label, not a gene's expression in {source}. Give the batch's labels with "
                             f"--truth TABLE (columns 'sample' and {bundle.target!r}).")
        if y_input is None:
            raise InputError(f"--truth-from-input: {source} has no gene {bundle.target!r} to take the truth from.")
        if gaps.any():
            raise InputError(f"--truth-from-input: {source} lacks the target gene {bundle.target!r} (missing or "
                             f"infinite) in {int(gaps.sum())} of its {len(gaps)} samples: "
                             f"{preview(list(expr.index[gaps]))}. Leave those samples out of the batch, or give the "
                             f"truth of every sample with --truth TABLE.")
        return y_input
    if not a.truth:
        return None
    table = read_sample_sheet(a.truth, "Truth table")  # TSV or CSV; one row per sample, checked
    col = bundle.target if bundle.target in table.columns else "truth" if "truth" in table.columns else None
    if col is None:
        raise InputError(f"Truth table '{a.truth}' has no column named {bundle.target!r} (the target) or 'truth' "
                         f"(columns: {preview(list(table.columns))}). Name the column of true values after the "
                         f"target.")
    t = table[col]
    batch = set(expr.index)
    missing = [s for s in expr.index if s not in t.index]
    extra = [s for s in t.index if s not in batch]
    if missing:
        also = (f"; it holds {plural(len(extra), 'sample')} the batch does not ({preview(extra)})" if extra else "")
        raise InputError(f"Truth table '{a.truth}' has no row for {len(missing)} of the {len(expr)} samples of "
                         f"{source} ({preview(missing)}){also}. Give one row per sample of the batch, with the "
                         f"sample ids exactly as in the matrix header.")
    if extra:
        log.info("truth table '%s': %s not in the batch ignored (%s)", a.truth, plural(len(extra), "sample"),
                 preview(extra))
    t = t.reindex(expr.index)
    given = t.notna().to_numpy()  # an empty cell is a truth not known yet
    if not given.any():
        raise InputError(f"Truth table '{a.truth}' has no {col!r} value for any sample of the batch "
                         f"({preview(list(t.index))}). Fill in the known ones (an empty cell: truth not known yet), "
                         f"or monitor without --truth.")
    _some_truth(~given, f"truth table '{a.truth}' has no {col!r} value", t.index)
    if bundle.task == "classification":
        from .logit import _label

        # as the training labels: 1.0 reads '1'; None where the truth is not known yet
        labels = np.array([_label(v) if ok else None for v, ok in zip(t, given)], dtype=object)
        unknown = sorted(set(labels[given]) - set(bundle.classes))
        if unknown:
            threshold = bundle.card.get("binarize_threshold")
            numbers = pd.to_numeric(t, errors="coerce").notna().all()
            hint = (f" {bundle.target!r} is a gene binarized at {threshold:g}: give its classes, or put the gene in "
                    f"the batch's matrix and use --truth-if-measured, which cuts it at the threshold."
                    if threshold is not None and numbers else
                    " Check the spelling of the labels, or leave those samples out.")
            where = list(t.index[given & ~np.isin(labels, bundle.classes)])
            raise InputError(f"Truth table '{a.truth}' has {plural(len(unknown), 'class', 'classes')} the model does not "
                             f"know: "
                             f"{preview(unknown)} (in samples {preview(where)}; the model's classes: "
                             f"{preview(bundle.classes)}).{hint}")
        return labels
    from .preprocess import apply_normalization

    norm = bundle.preprocessing["normalization"]
    if norm.get("library_size_genes") or bundle.target not in norm["genes"]:
        raise InputError(f"The saved normalization cannot be applied to a truth table alone; put the target gene "
                         f"{bundle.target!r} in the input matrix and use --truth-from-input.")
    i = norm["genes"].index(bundle.target)
    steps = [dict(p, mean=[p["mean"][i]], sd=[p["sd"][i]]) if p["method"] == "zscore" else p for p in norm["steps"]]
    values = pd.to_numeric(t, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) & given
    if bad.any():
        shown = [f"{s} ({v!r})" for s, v in zip(t.index[bad][:5], t.to_numpy()[bad][:5])]
        raise InputError(f"Truth table '{a.truth}' has {int(bad.sum())} non-numeric or infinite {col!r} "
                         f"value{'' if bad.sum() == 1 else 's'}: "
                         f"{', '.join(shown)}{' ...' if bad.sum() > 5 else ''}. Give the target's expression on the "
                         f"scale of the training matrices.")
    return apply_normalization(values[:, None], [bundle.target], list(expr.index),
                               {"steps": steps, "genes": [bundle.target]}, f"truth table '{a.truth}'")[:, 0]


def cmd_monitor(a: argparse.Namespace) -> None:
    from .compare import regression_metrics
    from .deploy import load_bundle, prepare_inputs
    from .io import write_json, write_table
    from .monitor import PERFORMANCE_COLUMNS, Thresholds, drift_table, performance_table, sample_losses, verdict

    thresholds = Thresholds.from_config(_json_arg(a.thresholds, "--thresholds") if a.thresholds else None)
    bundle = load_bundle(a.bundle)
    expr, obs, source = _read_batch(a.input, a.sample_sheet, bundle)
    X, y_input = prepare_inputs(bundle, expr, obs, source, with_target=bundle.task == "regression")
    pred = bundle.predict_design(X.to_numpy())
    ref = bundle.reference
    by_class = [f"p[{c}]" for c in bundle.classes or []]
    if bundle.task == "classification" and len(by_class) > 2 and all(c in ref.columns for c in by_class):
        # every class's probability: P(last class) alone misses a batch that moves samples between the others
        watched = {c: (ref[c].to_numpy(dtype=float), pred[:, k]) for k, c in enumerate(by_class)}
    else:
        watched = (ref["prediction"].to_numpy(dtype=float), pred[:, -1] if bundle.task == "classification" else pred)
    drift = drift_table(ref, X, bundle.terms, thresholds, prediction=watched)
    truth = _truth(a, bundle, expr, y_input, source, obs)
    # each sample's interval half-width, once for the coverage row, the figure and the predictions (None without)
    half = bundle.half_widths(X.to_numpy(dtype=np.float64)) if truth is not None or a.out_predictions else None
    perf, n_truth, pred_k, half_k = None, 0, None, None
    if truth is not None:
        # the accuracy is judged on the samples whose truth is known (it can arrive for part of a batch): from here
        # truth, pred_k and half_k are those samples'
        known = known_truth(bundle.task, truth)
        n_truth = int(known.sum())
        truth, pred_k = truth[known], pred[known]
        half_k = half[known] if half is not None else None
        if bundle.task == "classification":
            from .logit import class_codes, classification_metrics

            codes = class_codes(truth, bundle.classes)
            new_metrics = classification_metrics(codes, pred_k)
            new_losses = sample_losses(bundle.task, codes, pred_k)
        else:
            new_metrics = regression_metrics(truth, pred_k)
            new_losses = sample_losses(bundle.task, truth, pred_k)
        perf = performance_table(bundle.card["metrics"].get("test", {}), new_metrics, bundle.task, thresholds,
                                 test_losses=bundle.card.get("test_losses"), new_losses=new_losses)
        if half_k is not None:
            from .monitor import interval_coverage

            perf = pd.concat([perf, pd.DataFrame([interval_coverage(bundle.card["interval"], truth, pred_k,
                                                                    alpha=thresholds.error_alpha,
                                                                    half_width=half_k)])],
                             ignore_index=True)
        if bundle.task == "classification" and bundle.card.get("prediction_set"):
            from .monitor import set_coverage

            perf = pd.concat([perf, pd.DataFrame([set_coverage(bundle.card["prediction_set"], codes, pred_k,
                                                               alpha=thresholds.error_alpha)])], ignore_index=True)
    result = verdict(drift, perf, thresholds)
    result.update({"target": bundle.target, "task": bundle.task, "model": bundle.card["model"],
                   "bundle": str(bundle.path),
                   "n_samples": int(len(X)), "n_truth": n_truth, "inputs": list(a.input)})
    log.info("monitor %s (%s): %s%s", bundle.target, bundle.card["model"], result["verdict"],
             "".join(f"\n  {r}" for r in result["reasons"]))
    out = Path(a.out_dir)
    from . import plots

    regression = bundle.task == "regression"
    shown = half_k if regression else None
    plots.drift_figure(bundle.reference, X, drift, bundle.target, result["verdict"], out / "drift.png",
                       truth=truth if regression else None, predicted=pred_k if regression else None,
                       half_width=shown, level=bundle.card["interval"]["level"] if shown is not None else None)
    if a.out_predictions:
        write_table(_batch_predictions(bundle, X, pred, half), a.out_predictions)
    write_table(drift, out / "drift.tsv")
    write_table(perf if perf is not None else pd.DataFrame(columns=PERFORMANCE_COLUMNS), out / "performance.tsv")
    write_json(result, out / "verdict.json")


def _verdict_reasons(v: dict[str, Any]) -> str:
    """The reasons of a monitoring verdict in words, saying when accuracy was not checked (the batch had no truth:
    its matrices do not measure the target), so that an ``ok`` is not read as a verified accuracy."""
    unchecked = ("accuracy not checked: no class labels for the batch (a sample-sheet column named after the "
                 "target, or the binarized gene in its matrices; gexpred monitor --truth TABLE checks it)"
                 if v.get("task") == "classification" else
                 "accuracy not checked: no truth for the batch (it measures the target in no sample; "
                 "gexpred monitor --truth TABLE checks it)")
    if v.get("truth_given", True):
        n, k = v.get("n_samples"), v.get("n_truth")
        part = ([f"accuracy judged on the {k} of {n} samples whose truth is known"]
                if n is not None and k is not None and k < n else [])
        return "; ".join([*(v["reasons"] or ["no drift or accuracy problem found"]), *part])
    return "; ".join([*v["reasons"], unchecked]) if v["reasons"] else f"no drift found; {unchecked}"


def cmd_deploy_summary(a: argparse.Namespace) -> None:
    from .io import read_table, write_table

    rows = []
    for vpath, ppath in zip(a.verdicts, a.performance):
        v = json.loads(Path(vpath).read_text(encoding="utf-8"))
        perf = read_table(ppath)
        row = perf[perf["status"].fillna("") != ""]
        rows.append({"batch": Path(vpath).parent.parent.name, "target": v["target"], "model": v["model"],
                     "verdict": v["verdict"], "n_samples": v["n_samples"],
                     # verdicts before n_truth judged every sample or none
                     "n_truth": v.get("n_truth", v["n_samples"] if v.get("truth_given", True) else 0),
                     "n_inputs": v["n_inputs"],
                     "n_drifted": v["n_drifted"], "prediction_drifted": v["prediction_drifted"],
                     "error_ratio": float(row["ratio"].iloc[0]) if len(row) else np.nan,
                     "error_p_value": (float(row["p_value"].iloc[0]) if len(row) and "p_value" in row else np.nan),
                     "reasons": _verdict_reasons(v)})
    table = pd.DataFrame(rows)
    for _, r in table.iterrows():
        log.info("batch %s, target %s (%s): %s", r["batch"], r["target"], r["model"], r["verdict"])
    write_table(table, a.out)


def cmd_genome_plan(a: argparse.Namespace) -> None:
    from .batched import iter_chunks
    from .design import (check_genome_terms, covariate_column, dropped_reasons, encode_covariates, genome_targets,
                         shared_predictors)
    from .io import read_h5ad_columns, read_obs, write_json, write_table

    _, _, genes, sources = read_h5ad_columns(a.data)
    source = _source_text(sources)
    dropped = _dropped_genes_h5(a.data)
    predictors = shared_predictors(genes, _json_arg(a.spec, "--spec"), source, dropped)
    covariates = [str(c) for c in a.covariate or []]
    interactions = [[str(g) for g in pair] for pair in _json_arg(a.interactions, "--interactions")]
    gene_sets = {str(k): [str(g) for g in v] for k, v in _json_arg(a.gene_sets, "--gene-sets").items()}
    numeric: set[str] = set()
    if covariates:
        obs = read_obs(a.data)
        # refused here once (an absent column, a missing value), not by every chunk
        encode_covariates(obs, covariates, np.ones(len(obs), dtype=bool), "the sample sheet")
        numeric = {c for c in covariates if not covariate_column(c)[1] and pd.api.types.is_numeric_dtype(obs[c])}
    check_genome_terms(predictors, covariates, interactions, genes, numeric, source, gene_sets)
    targets, missing = genome_targets(genes, predictors, _json_arg(a.targets, "--targets"), source)
    chunks = iter_chunks(len(targets), a.chunk_size)
    plan = pd.DataFrame({"target": targets, "chunk": np.repeat(np.arange(len(chunks)),
                                                                 [hi - lo for lo, hi in chunks])})
    log.info("genome-wide OLS: %d targets on %d shared predictors, %d chunks of at most %d targets", len(targets),
             len(predictors), len(chunks), a.chunk_size)
    gone = {g: dropped[g] for g in missing if g in dropped}
    if gone:
        log.warning("%d requested targets were dropped while collecting the data and are skipped: %s", len(gone),
                    dropped_reasons(list(gone), dropped))
    missing = [g for g in missing if g not in gone]
    if missing:
        log.warning("%d requested targets are not in the data and are skipped: %s", len(missing),
                    ", ".join(missing[:5]))
    _warn_kept_imputed(a.data, targets, "genome-wide mode",
                       [k for k, on in (("the genome-wide networks", a.networks),
                                        ("the regulator recovery's ridge, correlation and prior scores",
                                         a.recovery)) if on])
    if covariates or interactions or gene_sets:
        log.info("shared design: the predictors%s%s%s", f", covariates {', '.join(covariates)}" if covariates else "",
                 f", {len(interactions)} interaction terms" if interactions else "",
                 f"; {len(gene_sets)} gene sets tested by nested F-tests" if gene_sets else "")
    write_json({"predictors": predictors, "covariates": covariates, "interactions": interactions,
                "gene_sets": gene_sets, "n_targets": len(targets), "n_chunks": len(chunks),
                "missing_targets": missing, "dropped_targets": gone}, a.out_design)
    write_table(plan, a.out)


def _dropped_genes_h5(path: str) -> dict[str, str]:
    """:func:`_dropped_genes` of an ``.h5ad`` file, read without the matrix."""
    import h5py

    with h5py.File(path, "r") as f:
        d = f.get("uns/dropped_genes")
        if d is None or any(k not in d for k in ("id", "file", "reason")):
            return {}
        return _dropped_text(*(d[k].asstr()[:] for k in ("id", "file", "reason")))


def _warn_kept_imputed(path: str, targets, step: str, keepers: list[str] | None = None) -> None:
    """Log the targets whose values the normalize step imputed (``uns['imputed']`` of ``path``, read without the
    matrix) that ``step``, fitting every target on one shared set of samples, keeps.

    Genome-wide mode (``step`` ``"genome-wide mode"``): ``keepers`` names the run's steps that keep them (the
    networks, regulator recovery); without any, the OLS fits and metrics leave those samples out and the log says
    so at INFO (a warning about networks an OLS-only run does not train misled)."""
    imputed = {gene for gene, _ in _imputed_pairs(path)} & set(targets)
    if not imputed:
        return
    what = (f"{plural(len(imputed), 'target')} had missing values that missing: impute_mean filled with their "
            f"training mean ({preview(sorted(imputed))})")
    if step != "genome-wide mode":
        log.warning("%s; %s fits every target on one shared set of samples, so they keep them (each target's own "
                    "models leave such samples out)", what, step)
    elif keepers:
        log.warning("%s; %s fit every target on one shared set of samples, so they keep them; the genome-wide "
                    "OLS fits and the train and test metrics leave them out", what, " and ".join(keepers))
    else:
        log.info("%s; the genome-wide OLS fits and their train and test metrics leave those samples out", what)


def _genome_columns(data: str, design: dict[str, Any], splits: str, targets: list[str] | None = None):
    """The shared design of a genome-wide run (:func:`gexpred.design.genome_design`: predictors, covariates,
    interaction products), its terms, whether each sample trains, the values of ``targets`` and the samples, read
    without the rest of the matrix."""
    from .design import genome_design
    from .io import read_h5ad_columns, read_obs

    predictors = design["predictors"]
    values, samples, _, _ = read_h5ad_columns(data, [*predictors, *(targets or [])])
    train = _split_of(samples, data, splits) == "train"
    obs = read_obs(data) if design.get("covariates") else None
    X = genome_design(values[:, : len(predictors)], samples, design, train, obs)
    return X.to_numpy(dtype=np.float64), [str(c) for c in X.columns], train, values[:, len(predictors):], samples


def _imputed_pairs(path: str) -> list[tuple[str, str]]:
    """``(gene, sample)`` of every value the normalize step filled in (``missing: impute_mean``; ``uns['imputed']``
    of ``path``, read without the matrix)."""
    import h5py

    with h5py.File(path, "r") as f:
        g, s = f.get("uns/imputed/gene"), f.get("uns/imputed/sample")
        return [] if g is None or s is None else list(zip(g.asstr()[:], s.asstr()[:]))


def _imputed_cells(path: str, samples, targets) -> np.ndarray:
    """Samples x targets, True where the normalize step filled in the target's value (:func:`_imputed_pairs`)."""
    out = np.zeros((len(samples), len(targets)), dtype=bool)
    row = {str(x): i for i, x in enumerate(samples)}
    col = {str(x): j for j, x in enumerate(targets)}
    for gene, sample in _imputed_pairs(path):
        if gene in col and sample in row:
            out[row[sample], col[gene]] = True
    return out


def _genome_chunk(a: argparse.Namespace):
    """One chunk of a genome-wide run: whether each sample trains, the shared design and its terms, the chunk's
    targets, the design matrix (X), the targets' values (Y), read without the rest of the matrix, which of those
    values were measured (False: filled in by ``missing: impute_mean``; fitted on, never judged) and the samples'
    ids, in the order of the rows."""
    from .io import read_table

    design = json.loads(Path(a.design).read_text())
    plan = read_table(a.plan, dtype={"target": str})
    targets = plan.loc[plan["chunk"] == a.chunk, "target"].tolist()
    X, terms, train, Y, samples = _genome_columns(a.data, design, a.splits, targets)
    measured = ~_imputed_cells(a.data, samples, targets)
    # in the order of the sample ids, as the per-target networks (_in_id_order): a network's validation part and
    # batch order are drawn by position, and the same data and seed must give the same networks however the
    # matrices' columns are ordered
    order = np.argsort(np.asarray(samples, dtype=str), kind="stable")
    return (train[order], {**design, "terms": terms}, targets, X[order], Y[order], measured[order],
            np.asarray(samples, dtype=str)[order])


def cmd_ols_chunk(a: argparse.Namespace) -> None:
    from .batched import fit_measured
    from .compare import regression_metrics
    from .io import write_parquet, write_table

    train, design, targets, X, Y, measured, samples = _genome_chunk(a)
    n_train, k = int(train.sum()), X.shape[1]
    if n_train < k + 2:
        extra = k - len(design["predictors"])
        others = f" and {extra} covariate or interaction terms" if extra else ""
        raise ModelError(
            f"The training split of {a.data} has {n_train} samples, but the shared design of the genome-wide run has "
            f"{k} terms ({len(design['predictors'])} predictors{others}): "
            f"ordinary least squares needs at least {k + 2} training samples (terms + intercept + 1 residual degree "
            f"of freedom). List fewer shared predictors in 'predictors', or lower split.test_fraction."
        )
    # each target on the training samples where it was measured (impute_mean's fills are not observations)
    res = fit_measured(X[train], Y[train], measured[train], design["terms"], targets, alpha=a.alpha,
                       gene_sets=design.get("gene_sets") or None, cov_type=a.cov_type)
    if a.cov_type != "nonrobust":
        _warn_robust_chunk(a, res, samples[train])
    if res.dropped_terms:
        log.warning("dropped %s that %s of others on the training split: %s",
                    plural(len(res.dropped_terms), "term"),
                    "is a linear combination" if len(res.dropped_terms) == 1 else "are linear combinations",
                    ", ".join(res.dropped_terms[:5]))
    if res.groups > 1:
        partial = res.fit[res.fit["n"] < n_train]
        log.info("chunk %d: %d targets with filled-in training values fitted on their measured samples only (%d to "
                 "%d of %d)", a.chunk, len(partial), int(partial["n"].min()), int(partial["n"].max()), n_train)
    pred = np.column_stack([np.ones(len(X)), X]) @ res.coef.T
    rows = []
    for j, t in enumerate(targets):
        # judged on measured values only: a value impute_mean filled in is the training mean, not an observation
        train_mean = Y[train & measured[:, j], j].mean() if (train & measured[:, j]).any() else np.nan
        for model, p in (("ols", pred[:, j]), ("mean", np.full(len(Y), train_mean))):
            for name, mask in (("train", train), ("test", ~train)):
                mask = mask & measured[:, j]
                rows.append({"target": t, "model": model, "split": name,
                             **regression_metrics(Y[mask, j], p[mask])})
    bad = int((res.fit["status"] != "ok").sum())
    log.info("chunk %d: %d targets fitted (%d not ok: constant, non-finite or too few measured samples)", a.chunk,
             len(targets), bad)
    out = Path(a.out_dir)
    write_parquet(res.coefficients, out / f"{a.chunk:05d}.coefficients.parquet")
    write_table(res.fit, out / f"{a.chunk:05d}.fit.tsv")
    write_table(pd.DataFrame(rows), out / f"{a.chunk:05d}.metrics.tsv")
    write_table(res.nested, out / f"{a.chunk:05d}.nested.tsv")


def _warn_leverage_one(where: str, alone: list[str], cov_type: str, consequence: str) -> None:
    """The warning of HC2/HC3 fits with training samples of leverage 1 (``alone``), which divide 0 by 0: what it
    does to ``where``'s tests (``consequence``) and the fix."""
    log.warning("%s: %s leverage 1 (%s: each the only one of its kind, such as the one sample of a covariate level), "
                "where %s is undefined%s. Use ols.cov_type: HC0 or HC1, or more samples of that kind.", where,
                f"{plural(len(alone), 'training sample')} {'has' if len(alone) == 1 else 'have'}", preview(alone),
                cov_type, consequence)


def _warn_robust_chunk(a: argparse.Namespace, res, samples: np.ndarray) -> None:
    """Log what a chunk's heteroskedasticity-consistent fits leave undone: samples of leverage 1 (HC2, HC3: 0 / 0,
    as ``gexpred ols`` warns; the terms they determine are NaN, :attr:`gexpred.batched.BatchedResult.leverage_one`),
    and the robust Wald F-tests (overall, gene sets) of more coefficients than
    :data:`gexpred.batched.ROBUST_WALD_MAX_TERMS`, which are NaN rather than classical."""
    from .batched import ROBUST_WALD_MAX_TERMS

    if res.leverage_one:
        _warn_leverage_one(f"chunk {a.chunk}", samples[res.leverage_one].tolist(), a.cov_type,
                           ": the terms they determine (that level's coefficient) have NaN standard errors, tests and "
                           "intervals in every target, and so have the overall F-test and the gene-set tests that "
                           "include them; the other terms' are unaffected")
    big = res.fit[(res.fit["status"] == "ok") & (res.fit["df_model"] > ROBUST_WALD_MAX_TERMS)]
    if len(big):
        log.warning("chunk %d: the overall F-test of %d targets (fits.tsv f_stat, f_pvalue) is left NaN: with "
                    "ols.cov_type %s it is the Wald F-test of every slope with that covariance, computed for at most "
                    "%d slopes (each target's own slopes x slopes covariance; the design has %d). The coefficients' "
                    "tests are robust; for a robust overall F, list the targets (per-target mode) or use fewer "
                    "shared terms.", a.chunk, len(big), a.cov_type, ROBUST_WALD_MAX_TERMS, int(big["df_model"].max()))
    if len(res.nested):
        large = res.nested.loc[res.nested["df_num"] > ROBUST_WALD_MAX_TERMS, "gene_set"].unique().tolist()
        if large:
            log.warning("chunk %d: gene sets %s have more than %d terms in the design: their robust Wald F-tests "
                        "(ols.cov_type %s) are not computed (NaN in nested_tests.tsv). Split them into smaller sets.",
                        a.chunk, preview(large), ROBUST_WALD_MAX_TERMS, a.cov_type)


def cmd_mlp_chunk(a: argparse.Namespace) -> None:
    import torch

    from .compare import regression_metrics
    from .io import write_json, write_table
    from .nn import architecture, predict, save_state, settings_dict
    from .search import candidate_summary, genome_search_table, search_genome_networks

    torch.set_num_threads(max(1, a.threads))
    search, configs, candidates = _network_candidates(a)
    if candidates and (candidates[0].ensemble > 1 or candidates[0].refit != "early_stopping"):
        log.info("chunk %d: mlp.ensemble and mlp.refit apply to per-target networks; genome-wide networks are "
                 "single networks stopped early on the validation part", a.chunk)
    train, design, targets, X, Y, measured, _ = _genome_chunk(a)
    # targets without variance on the training split cannot be learnt (the OLS side flags them too)
    sd = Y[train].std(axis=0)
    ok = np.isfinite(Y).all(axis=0) & (sd > 1e-12 * np.maximum(np.abs(Y[train]).max(axis=0), 1.0))
    if not ok.all():
        log.warning("chunk %d: %s constant or non-finite on the training split and get%s no network: %s",
                    a.chunk, plural(int((~ok).sum()), "target") + (" is" if (~ok).sum() == 1 else " are"),
                    "s" if (~ok).sum() == 1 else "", ", ".join(np.asarray(targets)[~ok][:5]))
    fit_targets = [t for t, k in zip(targets, ok) if k]
    pred = np.full(Y.shape, np.nan)
    out = Path(a.out_dir)
    varied = candidate_summary(configs)
    meta: dict[str, Any] = {"chunk": a.chunk, "mode": a.mode, "targets": fit_targets,
                            "predictors": design["predictors"], "inputs": design["terms"],
                            "search": {"strategy": search.get("strategy", "grid"), "n_candidates": len(candidates),
                                       "varied": varied, "judged_on": "validation part of the training split",
                                       "loss": "validation MSE / variance"},
                            "torch_version": torch.__version__, "gexpred_version": __version__}
    search_out = pd.DataFrame(columns=["chunk", "candidate", "mode", "n_targets", "val_nmse_mean", "n_selected"])
    if fit_targets:
        cols = np.flatnonzero(ok)
        res = search_genome_networks(X[train], Y[train][:, cols], candidates, a.mode, fit_targets, f"chunk {a.chunk}")
        search_out = genome_search_table(a.chunk, configs, res)
        meta["search"]["diverged"] = [c + 1 for c in sorted(res.failed)]
        if a.mode == "multi_output":
            (model,), (history,), (info,) = res.models, res.histories, res.infos
            winner = int(res.selected[0])
            settings = candidates[winner]
            p = predict(model, X)
            pred[:, cols] = p if p.ndim == 2 else p[:, None]
            meta.update({"settings": settings_dict(settings), "selected": winner + 1,
                         "architecture": architecture(model, settings),
                         "training": {k: v for k, v in info.items() if k != "seconds"}})
            log.info("chunk %d: one network for %d targets%s, %d epochs (best %d)", a.chunk, len(fit_targets),
                     _chosen(winner, len(candidates), configs, varied), info["epochs_run"], info["best_epoch"])
            state = model
        else:
            state = torch.nn.Module()
            for k, (j, model) in enumerate(zip(cols, res.models)):
                pred[:, j] = predict(model, X)
                state.add_module(f"t{k}", model)
            meta["selected"] = [int(c) + 1 for c in res.selected]
            meta["settings"] = [settings_dict(c) for c in candidates]
            meta["architectures"] = [architecture(m, candidates[c]) for m, c in zip(res.models, res.selected)]
            meta["training"] = [{k: v for k, v in info.items() if k != "seconds"} for info in res.infos]
            counts = np.bincount(res.selected, minlength=len(candidates))
            log.info("chunk %d: %d networks (one per target), each target's best of %d candidates: %s", a.chunk,
                     len(cols), len(candidates), ", ".join(f"candidate {c + 1} for {n}" for c, n in
                                                           enumerate(counts) if n))
            history = pd.concat([h.assign(target=t) for t, h in zip(fit_targets, res.histories)], ignore_index=True)
    else:  # no target of the chunk can be learnt: an empty state dict keeps the outputs uniform
        state, history = torch.nn.Module(), pd.DataFrame(columns=["epoch", "train_loss", "val_loss"])
        meta["settings"] = settings_dict(candidates[0])
    rows = []
    for j, t in enumerate(targets):
        for name, mask in (("train", train), ("test", ~train)):
            mask = mask & measured[:, j]  # judged on measured values only, as the OLS chunk
            m = regression_metrics(Y[mask, j], pred[mask, j]) if ok[j] else {"n": int(mask.sum())}
            rows.append({"target": t, "model": "mlp", "split": name, **m})
    stem = f"{a.chunk:05d}"
    save_state(state, out / f"{stem}.model.pt")
    write_json(meta, out / f"{stem}.model.json")
    write_table(history, out / f"{stem}.history.tsv")
    write_table(search_out, out / f"{stem}.search.tsv")
    write_table(pd.DataFrame(rows).reindex(columns=["target", "model", "split", "n", "mse", "mae", "r2", "pearson"]),
                out / f"{stem}.metrics.tsv")


def _chosen(winner: int, n: int, configs: list[dict[str, Any]], varied: list[str]) -> str:
    """`` (candidate 2 of 6: hidden=[16], lr=0.01)``, or nothing without a search."""
    if n < 2:
        return ""
    return f" (candidate {winner + 1} of {n}: " + ", ".join(f"{k}={configs[winner][k]}" for k in varied) + ")"


def cmd_genome_compare(a: argparse.Namespace) -> None:
    from . import plots
    from .compare import genome_summary
    from .io import read_table, write_table

    metrics = pd.concat([read_table(p, dtype={"target": str}) for p in a.metrics], ignore_index=True)
    metrics = metrics.reindex(columns=["target", "model", "split", "n", "mse", "mae", "r2", "pearson"])
    summary, per_target = genome_summary(metrics)
    for _, r in summary.iterrows():
        log.info("%s: median test R^2 %.3f over %d targets; best for %d targets", r["model"], r["median_test_r2"],
                 r["n_targets"], r["n_best"])
    search = [read_table(p, dtype={"hidden": str}) for p in a.search or []]
    search = [t for t in search if len(t)]
    search_out = (pd.concat(search, ignore_index=True) if search
                  else pd.DataFrame(columns=["chunk", "candidate", "mode", "n_targets", "val_nmse_mean", "n_selected"]))
    if len(search_out) and search_out["candidate"].max() > 1:
        kept = search_out.groupby("candidate")["n_selected"].sum()
        log.info("network search: targets per candidate kept: %s",
                 ", ".join(f"candidate {c}: {n}" for c, n in kept.items()))
        if "status" in search_out:
            bad = search_out[search_out["status"] != "ok"]
            if len(bad):
                log.warning("network search: %d candidate trainings diverged and were skipped (chunk, candidate): %s",
                            len(bad), ", ".join(f"({c}, {k})" for c, k in zip(bad["chunk"], bad["candidate"])))
    plots.genome_comparison(per_target, summary, a.out_figure)
    write_table(search_out, a.out_search)
    write_table(metrics, a.out_metrics)
    write_table(summary, a.out_summary)
    write_table(per_target, a.out_targets)


def cmd_ols_merge(a: argparse.Namespace) -> None:
    """Merge the chunks with memory bounded by one chunk: q-values need every p-value (one float each), so a
    first pass reads only the p-value columns; a second streams each chunk with its q-values to the output
    (one Parquet row group per chunk) and keeps the terms with q below the FDR for the significant table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from . import plots
    from .batched import LONG_COEF_COLUMNS
    from .io import atomic_output, parquet_options, read_table, write_table
    from .ols import bh_qvalues

    pvals, const = [], []
    for path in a.coefficients:
        part = pq.read_table(path, columns=["term", "p_value"])
        pvals.append(part.column("p_value").to_numpy(zero_copy_only=False).astype(np.float64))
        const.append(pc.equal(part.column("term"), "const").to_numpy(zero_copy_only=False))
    p_all = np.concatenate(pvals) if pvals else np.zeros(0)
    tested = ~np.concatenate(const) if const else np.zeros(0, dtype=bool)
    q_all = np.full(len(p_all), np.nan)
    q_all[tested], p_sorted = bh_qvalues(p_all[tested], return_sorted=True)
    fits = pd.concat([read_table(p, dtype={"target": str}) for p in a.fits], ignore_index=True)
    metrics = pd.concat([read_table(p, dtype={"target": str}) for p in a.metrics], ignore_index=True)
    log.info("genome-wide OLS: %d targets; %d of %d terms with q < %g", len(fits), int((q_all < a.fdr).sum()),
             int(tested.sum()), a.fdr)
    not_ok = fits[fits["status"] != "ok"]
    if len(not_ok):
        log.warning("%s not fitted (%s)", plural(len(not_ok), "target"),
                    ", ".join(f"{k}: {v}" for k, v in not_ok["status"].value_counts().items()))
    plots.genome_summary(p_sorted, fits, metrics, a.out_figure)
    del p_sorted, p_all, tested  # a float and a flag per term: freed before the chunks are read whole
    start, significant = 0, []
    with atomic_output(a.out_coefficients) as tmp:
        writer = None
        try:
            for path in a.coefficients:
                part = pq.read_table(path)
                q = q_all[start:start + part.num_rows]
                start += part.num_rows
                part = part.append_column("q_value", pa.array(q, type=pa.float64()))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, part.schema, **parquet_options(part.schema))
                writer.write_table(part)
                hits = np.flatnonzero(q < a.fdr)
                if hits.size:
                    significant.append(part.take(pa.array(hits)).to_pandas())
        finally:
            if writer is not None:
                writer.close()
    sig = (pd.concat(significant, ignore_index=True) if significant
           else pd.DataFrame(columns=[*LONG_COEF_COLUMNS, "q_value"]))
    sig = sig.sort_values(["q_value", "target", "term"], kind="stable").reset_index(drop=True)
    write_table(sig, a.out_significant)
    write_table(fits, a.out_fits)
    write_table(metrics, a.out_metrics)
    if a.out_nested:
        from .batched import LONG_NESTED_COLUMNS

        parts = [read_table(p, dtype={"target": str, "gene_set": str, "terms": str}) for p in a.nested or []]
        write_table(_nested_with_q(parts, LONG_NESTED_COLUMNS, a.fdr), a.out_nested)


def cmd_recovery(a: argparse.Namespace) -> None:
    import torch

    from .io import read_gene_list, read_table
    from .recovery import add_prior_evidence, collect_evidence, describe_missing, judged_targets, read_gold_standard
    from .search import kfold

    _check_ranking(a.ranking, a.sources, a.prior_folds > 0)
    torch.set_num_threads(max(1, a.threads))
    adata, split = _load_split_data(a.data, a.splits)
    train = split == "train"
    genes = list(adata.var_names)
    Xtr = np.asarray(adata.X)[train].astype(np.float64)
    gold = read_gold_standard(a.gold_standard)
    log.info("gold standard %s: %d targets x %d regulators, %d known edges; %s", a.gold_standard, *gold.shape,
             int(gold.to_numpy().sum()), describe_missing(gold, genes))
    spec = _json_arg(a.spec, "--spec")
    if isinstance(spec, list):
        pool, top_k = [str(g) for g in spec], None
    else:
        pool = read_gene_list(spec["from"], "predictor candidates file") if spec.get("from") else genes
        top_k = int(spec["top_correlated"])
    in_data = set(genes)
    candidates = [g for g in dict.fromkeys(pool) if g in in_data and g in set(gold.columns)]
    if not candidates:
        raise InputError(
            f"None of the candidate predictors is a regulator (column) of the gold standard '{a.gold_standard}', so "
            f"regulator recovery cannot be judged. Check that the gold standard uses the same gene ids"
            f"{_id_hint(gold, pool)}."
        )
    table = read_table(a.predictors, dtype={"target": str, "gene": str})
    run_targets = [t for t in dict.fromkeys(table["target"]) if t in in_data]
    gold_targets = judged_targets(gold, genes, candidates)
    if isinstance(spec, list):  # an explicit list: the listed genes are predictors, never targets
        gold_targets = [t for t in gold_targets if t not in set(spec)]
    if not gold_targets:
        raise InputError(
            f"No target of the gold standard '{a.gold_standard}' has a known regulator among the candidate "
            f"predictors in the data, so regulator recovery cannot be judged."
        )
    targets = list(dict.fromkeys(gold_targets + run_targets))
    _warn_kept_imputed(a.data, targets, "regulator recovery")
    chosen = {t: pool for t in targets} if isinstance(spec, list) else None
    sources = tuple(a.sources)
    network = _json_arg(a.network, "--network") if "network" in sources else None
    folds = kfold(list(adata.obs_names[train]), a.k, a.seed)
    log.info("scoring %d candidate regulators of %d targets (%d gold-standard targets with a known regulator "
             "among them) from %s", len(candidates), len(targets), len(gold_targets), ", ".join(sources))
    ev = collect_evidence(Xtr, genes, targets, candidates, folds, chosen=chosen, top_k=top_k,
                          network_settings=network, sources=sources)
    ev = add_prior_evidence(ev, Xtr, genes, gold, folds, a.prior_folds, a.seed)
    _write_recovery(ev, gold, gold_targets, run_targets, a)


def _id_hint(gold: pd.DataFrame, genes) -> str:
    """Examples of the gold standard's regulator ids and of the data's, and how many match when case is ignored,
    for the message that none of them matches."""
    lower = {str(g).lower() for g in genes}
    case = [r for r in gold.columns if str(r).lower() in lower]
    return (f" (regulators there: {preview(list(gold.columns)[:3])}; genes here: {preview(list(genes)[:3])}"
            + (f"; {len(case):,} match when case is ignored, e.g. {case[0]!r}: ids are case-sensitive" if case else "")
            + ")")


def _check_ranking(ranking: str, sources, prior: bool) -> None:
    """Refuse a ranking the sources will not compute, before computing them."""
    from .errors import ConfigError
    from .recovery import available_rankings

    available = available_rankings(sources, prior)
    if ranking not in available:
        raise ConfigError(f"recovery.ranking is {ranking!r}, which is not among the rankings of this run "
                          f"({', '.join(sorted(available))}). Add its source to recovery.sources (tf_activity: "
                          f"recovery.prior_folds above 0) or choose another.")


def _write_recovery(ev, gold: pd.DataFrame, gold_targets: list[str], run_targets: list[str] | None,
                    a: argparse.Namespace) -> None:
    """The recovery table (every ranking, every scope), its figure and the inferred network."""
    from . import plots
    from .io import write_table
    from .recovery import COMBINED, METHOD_LABELS, RECOVERY_COLUMNS, edge_table, evaluate_evidence

    for source, what in ev.info.items():
        log.info("%s: %s", source, what)
    everything, curve = evaluate_evidence(ev, gold, "all_gold_standard_targets", gold_targets)
    constant = [t for t in gold_targets if t not in set(ev.targets)]  # left out of the evidence
    if everything.empty:  # every target with a known regulator was left out: constant in training
        raise InputError(
            f"Every gold-standard target with a known regulator among the candidates is constant on the training "
            f"split ({preview(constant)}), so no ranking of its regulators can be judged. Check these genes' "
            f"values, or use a gold standard whose targets vary."
        )
    if constant:
        log.warning("%d gold-standard target(s) with a known regulator among the candidates are constant on the "
                    "training split and left out of regulator recovery: %s", len(constant), preview(constant))
    if int(everything["n_positive"].iloc[0]) == int(everything["n_pairs"].iloc[0]):
        log.warning("every one of the %d judged (target, candidate) pairs is a known edge of the gold standard %s: "
                    "with no pair known not to be an edge, no ranking can be told from another (AUROC is undefined, "
                    "left empty; AUPR is 1 whatever the scores). The candidates are the gold standard's regulators "
                    "(its columns, or the regulators an edge list names) among the predictor candidates: give it "
                    "more regulators", int(everything["n_pairs"].iloc[0]), a.gold_standard)
    # the DREAM5 convention, for comparison with published figures: candidates without a known target left out
    parts = [everything, evaluate_evidence(ev, gold, "known_regulators", gold_targets, known_regulators_only=True)[0]]
    if run_targets is not None:
        parts.append(evaluate_evidence(ev, gold, "run_targets", run_targets)[0])
    summary = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    for _, r in summary.iterrows():
        log.info("%s %s (%s): %d targets, %d pairs, %d known edges: AUROC %.3f, AUPR %.3f (random %.4f)",
                 r["scope"], r["method"], r["normalization"], r["n_targets"], r["n_pairs"], r["n_positive"],
                 r["auroc"], r["aupr"], r["random_aupr"])
    shown = {k: v for k, v in curve.items() if k[1] == a.normalization or k[0] in COMBINED}
    sub = everything[everything["normalization"].eq(a.normalization) | everything["method"].isin(COMBINED)]
    plots.recovery_curves(shown, sub, float(everything["random_aupr"].iloc[0]), a.out_figure,
                          f"Regulator recovery: {int(everything['n_targets'].iloc[0]):,} gold-standard targets, "
                          f"{int(everything['n_positive'].iloc[0]):,} known edges among "
                          f"{int(everything['n_pairs'].iloc[0]):,} candidate pairs (scores after "
                          f"{a.normalization.upper() if a.normalization != 'none' else 'no normalisation'})",
                          labels=METHOD_LABELS, highlight=a.ranking)
    write_table(edge_table(ev, gold, a.ranking, a.normalization, a.top_edges), a.out_edges)
    write_table(summary.reindex(columns=RECOVERY_COLUMNS), a.out)


def cmd_genome_recovery(a: argparse.Namespace) -> None:
    import torch

    from .io import read_h5ad_columns, read_table
    from .recovery import (EVIDENCE_SOURCES, Evidence, add_prior_evidence, chunk_network_importance,
                           collect_evidence, describe_missing, judged_targets, read_gold_standard)
    from .search import kfold

    _check_ranking(a.ranking, ["penalized", "correlation"] + (["ols"] if a.coefficients else [])
                   + (["network"] if a.mlp_models else []), a.prior_folds > 0)
    torch.set_num_threads(max(1, a.threads))
    design = json.loads(Path(a.design).read_text())
    predictors = [str(g) for g in design["predictors"]]
    plan = read_table(a.plan, dtype={"target": str})
    gold = read_gold_standard(a.gold_standard)
    _, _, genes, _ = read_h5ad_columns(a.data)
    log.info("gold standard %s: %d targets x %d regulators, %d known edges; %s", a.gold_standard, *gold.shape,
             int(gold.to_numpy().sum()), describe_missing(gold, genes))
    candidates = [g for g in predictors if g in set(gold.columns)]
    planned = set(plan["target"])
    targets = [t for t in judged_targets(gold, genes, candidates) if t in planned]
    if not candidates or not targets:
        raise InputError(
            f"No target of the genome-wide run has a known regulator among the shared predictors in the gold "
            f"standard '{a.gold_standard}', so regulator recovery cannot be judged. Check that the gold standard "
            f"uses the same gene ids as the data{_id_hint(gold, predictors)}."
        )
    # one read: the shared design (the networks' inputs: the predictors first, the candidates among them, then
    # any covariates and interaction products) and the targets
    design_X, _, train, values, samples = _genome_columns(a.data, design, a.splits, targets)
    Xtr = np.column_stack([design_X[:, : len(predictors)], values])[train]
    folds = kfold(list(np.asarray(samples)[train]), a.k, a.seed)
    log.info("scoring %d shared predictors of %d gold-standard targets from the genome-wide fits", len(candidates),
             len(targets))
    ev = collect_evidence(Xtr, [*predictors, *targets], targets, candidates, folds,
                          sources=("penalized", "correlation"))
    row = {t: i for i, t in enumerate(ev.targets)}
    col = {g: j for j, g in enumerate(candidates)}
    scores = dict(ev.scores)
    if a.coefficients:
        coef = pd.read_parquet(a.coefficients, columns=["target", "term", "t"]).astype({"target": str, "term": str})
        coef = coef[coef["target"].isin(row) & coef["term"].isin(col)]
        S = np.full((len(ev.targets), len(candidates)), np.nan)
        S[coef["target"].map(row).to_numpy(), coef["term"].map(col).to_numpy()] = np.abs(coef["t"].to_numpy(float))
        scores["ols"] = S
    if a.mlp_models:
        S = np.full((len(ev.targets), len(candidates)), np.nan)
        inputs = design_X[train]
        pcol = [predictors.index(g) for g in candidates]
        for state_path in a.mlp_models:
            meta = json.loads(Path(state_path).with_suffix(".json").read_text())
            done, imp = chunk_network_importance(state_path, meta, inputs, set(row))
            for t, v in zip(done, imp):
                S[row[t]] = v[pcol]
        scores["network"] = S
        ev.info["network"] = {"chunks": len(a.mlp_models), "scored_targets": int(np.isfinite(S).any(axis=1).sum())}
    ev = Evidence(targets=ev.targets, candidates=candidates,
                  scores={m: scores[m] for m in EVIDENCE_SOURCES if m in scores}, info=ev.info)
    ev = add_prior_evidence(ev, Xtr, [*predictors, *targets], gold, folds, a.prior_folds, a.seed)
    _write_recovery(ev, gold, targets, None, a)


def _check_compared_models(table: pd.DataFrame, models: list[str], option: str, paths: list[str]) -> None:
    """Every target has every one of ``models`` in ``table`` (the files given to ``option``), else an InputError
    naming the targets and models missing: a model left out would be compared on some targets only."""
    have = set(zip(table["target"], table["model"]))
    missing = [(t, m) for t in dict.fromkeys(table["target"]) for m in dict.fromkeys(models) if (t, m) not in have]
    if missing:
        shown = ", ".join(f"{m} for {t}" for t, m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(f"compare: the files given to {option} ({preview(paths, 3)}) have no predictions of "
                         f"{plural(len(missing), 'model-target pair')} named by --models: {shown}. Give each "
                         f"model's {option[2:]} file of every target, or leave the model out of --models.")


def cmd_compare(a: argparse.Namespace) -> None:
    from .compare import (assemble_class_predictions, assemble_predictions, class_columns, class_metrics_table,
                          metrics_table)
    from .io import read_table, write_table

    frames = [read_table(p, dtype={"target": str, "sample": str, "model": str, "observed": object,
                                   "predicted": object}) for p in a.predictions]
    classification = any(class_columns(f) for f in frames)
    allp = pd.concat(frames, ignore_index=True)
    _check_compared_models(allp, a.models, "--predictions", a.predictions)
    wide, classes = [], {}
    for target in dict.fromkeys(allp["target"]):
        sub = allp[allp["target"] == target].dropna(axis=1, how="all")
        per_model = {m: sub[sub["model"] == m] for m in a.models}
        if classification:
            classes[target] = class_columns(sub)
            wide.append(assemble_class_predictions(per_model, target))
        else:
            per_model = {m: df.astype({"observed": float, "predicted": float}) for m, df in per_model.items()}
            wide.append(assemble_predictions(per_model, target))
    predictions = pd.concat(wide, ignore_index=True)
    if classification:
        metrics = class_metrics_table(predictions, a.models, classes)
        for _, r in metrics[metrics["split"] == "test"].iterrows():
            log.info("%s %s test: accuracy = %.3f, AUROC = %.3f, log-loss = %.4g", r["target"], r["model"],
                     r["accuracy"], r["auroc"], r["log_loss"])
    else:
        metrics = metrics_table(predictions, a.models)
        for _, r in metrics[metrics["split"] == "test"].iterrows():
            log.info("%s %s test: R^2 = %.4f, MSE = %.4g", r["target"], r["model"], r["r2"], r["mse"])
    if a.cv_predictions:
        from .compare import cv_metrics_table, summary_table

        cvp = pd.concat([read_table(p, dtype={"target": str, "sample": str, "model": str, "observed": object,
                                              "predicted": object}) for p in a.cv_predictions], ignore_index=True)
        _check_compared_models(cvp, a.models, "--cv-predictions", a.cv_predictions)
        if not classification:
            cvp = cvp.astype({"observed": float, "predicted": float})
        cv_metrics = cv_metrics_table(cvp, a.models, classes if classification else None)
        summary = summary_table(cv_metrics, metrics, a.models, alpha=a.alpha)
        for _, r in summary.iterrows():
            log.info("%s: %s", r["target"], r["statement"])
        write_table(cv_metrics, a.out_cv_metrics)
        write_table(summary, a.out_summary)
    write_table(predictions, a.out_predictions)
    write_table(metrics, a.out_metrics)


def _plot_importance(target: str, specs: list[str] | None, interactions: str | None, out: str,
                     metrics: str | None = None) -> None:
    """The importance figure; its axis names the loss (MSE, or log-loss where ``metrics``, the target's test
    metrics, are a classifier's)."""
    from . import plots
    from .io import read_table

    tables = {}
    for spec in specs or []:
        model, _, path = spec.partition("=")
        tables[model] = read_table(path, dtype={"predictor": str})
    if not tables:
        raise InputError("plot importance: give at least one --importance MODEL=PATH.")
    inter = read_table(interactions, dtype={"gene_a": str, "gene_b": str}) if interactions else None
    loss = "held-out loss"
    if metrics and Path(metrics).is_file():
        m = read_table(metrics, dtype={"target": str, "model": str})
        loss = "held-out log-loss" if "log_loss" in m and m["log_loss"].notna().any() else "held-out MSE"
    plots.importance(tables, inter, target, out, loss=loss)


def _plot_observed(target: str, models: list[str], predictions: str, metrics: str, out: str) -> None:
    from . import plots
    from .io import read_table

    pred = read_table(predictions, dtype={"target": str, "sample": str, "observed": object})
    table = read_table(metrics, dtype={"target": str})
    pred = pred[pred["target"] == target].dropna(axis=1, how="all")
    table = table[table["target"] == target]
    if any(":p[" in c for c in pred.columns):
        plots.confusion_matrices(pred, models, target, out, table)
    else:
        plots.observed_vs_predicted(pred.astype({"observed": float}), models, target, out, table)


def _plot_coefficients(target: str, coefficients: str, out: str, alpha: float = 0.05) -> None:
    from . import plots
    from .io import read_table

    coefs = read_table(coefficients, dtype={"term": str})
    logit = "odds_ratio" in coefs.columns
    plots.coefficient_forest(coefs, target, out, alpha=alpha, model="logistic regression" if logit else "OLS",
                             xlabel=f"log odds ratio per unit of predictor, {plots.ci_level(alpha)} CI" if logit else None)


def _plot_diagnostics(target: str, predictions: str, influence: str, diagnostics: str, out: str) -> None:
    from . import plots
    from .io import read_table
    from .ols import failed_assumptions

    pred = read_table(predictions, dtype={"target": str, "sample": str})
    infl = read_table(influence, dtype={"sample": str})
    diag = read_table(diagnostics, dtype={"term": str})
    plots.ols_diagnostics(pred, infl, failed_assumptions(diag), target, out)


def _plot_loss(target: str, history: str, model_json: str, out: str) -> None:
    from . import plots
    from .io import read_table

    meta = json.loads(Path(model_json).read_text())
    training = meta["training"]
    kept = [m["best_epoch"] for m in training["members"]] if "members" in training else training["best_epoch"]
    plots.loss_curves(read_table(history), target, out, kept, loss=meta.get("loss", "mse"),
                      huber_delta=float(meta.get("settings", {}).get("huber_delta", 1.0)))


def _draw_figures(verb: str, figures: dict[str, tuple[str | None, Any, dict[str, Any]]]) -> None:
    """Draw every figure whose output is given, in one process (one job draws several figures).

    ``figures`` maps a kind to ``(out, draw, needs)``: ``draw(out)`` draws it from the inputs ``needs``
    (flag -> path, or a list of them; ``--importance`` values are ``MODEL=PATH``). A figure asked for
    without its inputs, or with an input that does not exist, is a usage error raised before anything
    is drawn; if a figure fails, those already drawn are removed.
    """
    wanted = {kind: spec for kind, spec in figures.items() if spec[0]}
    if not wanted:
        raise InputError(f"plot {verb}: give at least one of " + ", ".join(f"--out-{k}" for k in figures) + ".")
    for kind, (_, _, needs) in wanted.items():
        missing = [flag for flag, value in needs.items() if not value]
        if missing:
            raise InputError(f"plot {verb}: the {kind} figure (--out-{kind}) needs {', '.join(missing)}.")
        for flag, value in needs.items():
            for path in value if isinstance(value, list) else [value]:
                path = path.partition("=")[2] if flag == "--importance" else path
                if not Path(path).is_file():
                    raise InputError(f"plot {verb}: {flag} '{path}' (the {kind} figure) does not exist; run the "
                                     f"step that writes it first.")
    drawn: list[str] = []
    try:
        for kind, (out, draw, _) in wanted.items():
            draw(out)
            drawn.append(out)
            log.info("%s figure: %s", kind, out)
    except BaseException:  # no partial set of figures left behind
        for out in drawn:
            Path(out).unlink(missing_ok=True)
        raise


def _target_figures(a: argparse.Namespace, ols_predictions: str | None) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each figure of one target: kind -> (draw(out), the inputs it needs by flag). The diagnostics figure reads
    the OLS predictions from ``ols_predictions`` (``--ols-predictions`` of `plot target`, ``--predictions`` of
    `plot diagnostics`)."""
    return {
        "observed": (lambda out: _plot_observed(a.target, a.models, a.predictions, a.metrics, out),
                     {"--predictions": a.predictions, "--metrics": a.metrics}),
        "coefficients": (lambda out: _plot_coefficients(a.target, a.coefficients, out, a.alpha),
                         {"--coefficients": a.coefficients}),
        "diagnostics": (lambda out: _plot_diagnostics(a.target, ols_predictions, a.influence, a.diagnostics, out),
                        {"--ols-predictions": ols_predictions, "--influence": a.influence,
                         "--diagnostics": a.diagnostics}),
        "loss": (lambda out: _plot_loss(a.target, a.history, a.model_json, out),
                 {"--history": a.history, "--model-json": a.model_json}),
        "importance": (lambda out: _plot_importance(a.target, a.importance, a.interactions, out, a.metrics),
                       {"--importance": a.importance}),
    }


def _overview_figures(a: argparse.Namespace) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each figure across targets (activation functions, model comparison, p-values, cross-validation
    metrics): kind -> (draw(out), the inputs it needs by flag)."""
    from . import plots
    from .io import read_table

    return {
        "activations": (plots.activation_functions, {}),
        "comparison": (lambda out: plots.model_comparison(read_table(a.metrics, dtype={"target": str, "model": str}),
                                                          out), {"--metrics": a.metrics}),
        "pvalues": (lambda out: plots.pvalue_summary(read_table(a.coefficients, dtype={"target": str, "term": str}),
                                                     out, a.fdr), {"--coefficients": a.coefficients}),
        "cv": (lambda out: plots.cv_metrics(read_table(a.cv_metrics, dtype={"target": str, "model": str}), out,
                                            a.metric), {"--cv-metrics": a.cv_metrics}),
    }


def _plot_target(a: argparse.Namespace) -> None:
    """Every figure of one target whose ``--out-*`` is given (:func:`_draw_figures`; one job per target)."""
    if not a.target:
        raise InputError("plot target: give --target.")
    _draw_figures("target", {kind: (getattr(a, f"out_{kind}"), draw, needs)
                             for kind, (draw, needs) in _target_figures(a, a.ols_predictions).items()})


def _plot_overview(a: argparse.Namespace) -> None:
    """The figures across targets whose ``--out-*`` is given (:func:`_draw_figures`; one job)."""
    _draw_figures("overview", {kind: (getattr(a, f"out_{kind}"), draw, needs)
                               for kind, (draw, needs) in _overview_figures(a).items()})


def cmd_plot(a: argparse.Namespace) -> None:
    from . import plots

    if a.kind not in ("target", "overview") and not a.out:
        raise InputError(f"plot {a.kind}: give --out, the figure's path.")
    if a.kind == "target":
        _plot_target(a)
        return
    if a.kind == "overview":
        _plot_overview(a)
        return
    single = {**_target_figures(a, a.predictions), **_overview_figures(a)}
    if a.kind in single:
        single[a.kind][0](a.out)
    elif a.kind in ("samples", "normalization"):
        from .io import read_h5ad_columns, read_h5ad_scalars

        after, samples, genes, _ = read_h5ad_columns(a.normalized, "all")
        split = _split_of(samples, a.normalized, a.splits)
        if a.kind == "samples":
            counts = read_h5ad_scalars(a.data, ["n_dropped_samples", "n_dropped_genes"])
            plots.sample_overview(after, samples, split, a.out,
                                  n_dropped_samples=int(counts.get("n_dropped_samples", 0)),
                                  n_dropped_genes=int(counts.get("n_dropped_genes", 0)))
        else:  # the input values of the same samples and genes, in the same order
            before, raw_samples, _, _ = read_h5ad_columns(a.data, genes)
            row = {s: i for i, s in enumerate(raw_samples)}
            plots.normalization_effect(before[[row[s] for s in samples]], after, split, a.method or "none", a.out)


def cmd_report_summary(a: argparse.Namespace) -> None:
    from .facts import build_facts, comparison_intro, comparison_rows
    from .htmltable import sortable_table
    from .io import read_h5ad_columns, read_obs, read_table, write_json, write_text

    _, samples, genes, sources = read_h5ad_columns(a.data)  # names only: the matrix is not needed
    opt = lambda path, **kw: read_table(path, **kw) if path else None  # noqa: E731
    metrics = read_table(a.metrics, dtype={"target": str, "model": str})
    cv = opt(a.cv_metrics, dtype={"target": str, "model": str})
    summary = opt(a.summary, dtype={"target": str, "best_model": str})
    facts = build_facts(
        n_samples=len(samples), n_genes=len(genes), sources=sources,
        dropped=read_table(a.dropped, dtype=str), splits=read_table(a.splits, dtype={"sample": str}),
        targets=read_table(a.targets, dtype=str), metrics=metrics,
        predictors=opt(a.predictors, dtype={"target": str, "gene": str}),
        fits=opt(a.fits, dtype={"target": str, "failed_assumptions": str}),
        coefs=opt(a.coefficients, dtype={"target": str, "term": str}), cv=cv, summary=summary,
        test_fraction=a.test_fraction, seed=a.seed, fdr=a.fdr,
        importance={(Path(f).parent.name, Path(f).parent.parent.name): read_table(f, dtype={"predictor": str})
                    for f in a.importance},
        interactions={Path(f).parent.name: read_table(f, dtype={"gene_a": str, "gene_b": str})
                      for f in a.interactions},
        recovery=read_table(a.recovery) if a.recovery else None,
        edges=read_table(a.edges, dtype={"target": str, "regulator": str}) if a.edges else None,
        ranking=a.ranking, obs=read_obs(a.data) if a.covariate else None, covariates=list(a.covariate),
        min_strength=a.min_strength)
    rows = comparison_rows(metrics, cv, summary)
    intro = comparison_intro(facts["key_metric"], cv is not None, summary is not None)
    write_json(facts, a.out_facts)
    highlight = "cv_verdict" if "cv_verdict" in rows else "test_verdict"
    write_text(sortable_table(rows, "Model comparison", intro, highlight=highlight), a.out_table)


# --------------------------------------------------------------------------- parser
def seed_arg(text: str) -> int:
    """An argparse type for seeds: an integer >= 0 (NumPy's generators refuse negative seeds).

    Parameters
    ----------
    text
        The argument as given on the command line.

    Returns
    -------
    int
        The seed.

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` is not an integer >= 0 (argparse reports it in one line, exit status 2).
    """
    return _int_at_least(text, 0, "a seed is an integer >= 0")


def positive_int_arg(text: str) -> int:
    """An argparse type for counts of at least 1 (``--interval-neighbours``, as the schema bounds
    ``prediction_interval.neighbours``): the integer, or argparse's one-line error (exit status 2), as
    :func:`seed_arg`."""
    return _int_at_least(text, 1, "an integer >= 1")


def folds_arg(text: str) -> int:
    """An argparse type for ``--k``: folds of cross-validation, at least 2 (as the schema bounds ``split.folds``)."""
    return _int_at_least(text, 2, "a number of folds is an integer >= 2")


def _int_at_least(text: str, low: int, what: str) -> int:
    """``text`` as an integer of at least ``low``, or argparse's one-line error ``{what}, not {text}``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, not {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{what}, not {value}")
    return value


def level_arg(text: str) -> float:
    """An argparse type for ``--alpha`` and ``--fdr``: a probability strictly between 0 and 1 (the schema's bounds
    of ``ols.alpha`` and ``ols.fdr``).

    Parameters
    ----------
    text
        The argument as given on the command line.

    Returns
    -------
    float
        The level.

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` is not a number in (0, 1), e.g. a percentage (argparse reports it in one line, exit status 2).
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a level is a number between 0 and 1 (e.g. 0.05), not {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"a level is a number between 0 and 1, not a percentage (0.05 for 5%), "
                                         f"not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .deploy import INTERVAL_METHODS
    from .ols import COV_TYPES

    p = argparse.ArgumentParser(
        prog="gexpred",
        description="Predict a target gene's expression from other genes (the steps of the gexpred workflow).",
    )
    p.add_argument("--version", action="version", version=f"gexpred {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, func, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--log", help="write the step's log to this file (errors also go to standard error)")
        sp.set_defaults(func=func)
        return sp

    def chunk_verb(name: str, func, help: str) -> argparse.ArgumentParser:
        """A verb over one chunk of a genome-wide plan: the arguments ``_genome_chunk`` reads."""
        sp = verb(name, func, help)
        sp.add_argument("--data", required=True)
        sp.add_argument("--splits", required=True)
        sp.add_argument("--plan", required=True)
        sp.add_argument("--design", required=True)
        sp.add_argument("--chunk", type=int, required=True)
        return sp

    s = verb("collect", cmd_collect, "Read expression matrices, combine them by sample id, attach the sample sheet.")
    s.add_argument("--matrix", action="append", required=True, help=f"expression matrix (repeat for several): {MATRIX_HELP}")
    s.add_argument("--sample-sheet", help=f"sample sheet: {SHEET_HELP}")
    s.add_argument("--out", required=True, help="combined .h5ad")
    s.add_argument("--dropped", required=True, help="TSV of genes and samples left out, with the reason")
    s.add_argument("--missing", default="error", choices=["error", "drop_genes", "impute_mean"],
                   help="missing or infinite values: error, drop the genes, or mark them for imputation by the "
                        "training mean (in normalize)")

    s = verb("targets", cmd_targets, "Write the table of target gene ids and their output directory names.")
    s.add_argument("--target", action="append", required=True)
    s.add_argument("--out", required=True)

    s = verb("gold-standard", cmd_gold_standard, "Check the gold standard (0/1 matrix or edge list) and write it "
                                                 "as a targets x regulators matrix.")
    s.add_argument("--input", required=True, help=GOLD_STANDARD_HELP)
    s.add_argument("--out", required=True)

    s = verb("gather", cmd_gather, "Gather per-target tables (predictors, folds, labels) into one table.")
    s.add_argument("--table", action="append", default=[], help="a per-target table (repeat, in order)")
    s.add_argument("--how", choices=["rows", "columns"], default="rows",
                   help="rows: stack the tables; columns: join them on their 'sample' column")
    s.add_argument("--out", required=True)

    s = verb("labels", cmd_labels, "Build the class labels of classification targets.")
    s.add_argument("--data", required=True, help="collected .h5ad (values before normalization)")
    s.add_argument("--target", action="append", required=True)
    s.add_argument("--binarize", help="JSON {gene: threshold}")
    s.add_argument("--out", required=True)

    s = verb("split", cmd_split, "Assign samples to the train or test split, deterministically.")
    s.add_argument("--data", required=True)
    s.add_argument("--labels", help="class labels table: stratify the split by a target's classes")
    s.add_argument("--stratify", help="the target whose classes stratify the split (default: the first)")
    s.add_argument("--test-fraction", type=float, default=0.2)
    s.add_argument("--seed", type=seed_arg, default=0)
    s.add_argument("--out", required=True)

    s = verb("folds", cmd_folds, "Assign the training samples to K cross-validation folds, deterministically.")
    s.add_argument("--data", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("--target", action="append", required=True)
    s.add_argument("--labels", help="class labels table: stratify each target's folds by its classes")
    s.add_argument("--k", type=folds_arg, default=5, help="number of folds")
    s.add_argument("--seed", type=seed_arg, default=0)
    s.add_argument("--out", required=True, help="TSV: target, sample, fold (1-based)")

    s = verb("normalize", cmd_normalize, "Fit the normalization on the training split and apply it to all samples.")
    s.add_argument("--data", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("--method", action="append", required=True,
                   help="none, log1p, log_cpm or zscore; repeat to chain steps")
    s.add_argument("--out", required=True)
    s.add_argument("--params", required=True, help="JSON file of the fitted parameters")
    s.add_argument("--missing", default="error", choices=["error", "drop_genes", "impute_mean"],
                   help="impute_mean: replace missing values by the gene's mean over the training samples first")

    s = verb("select", cmd_select, "Choose the predictor genes of every target on the training split.")
    s.add_argument("--data", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("--target", action="append", required=True)
    s.add_argument("--spec", required=True, help="JSON: a list of genes or {\"top_correlated\": K, \"from\": ...}")
    s.add_argument("--labels", help="class labels table (classification targets)")
    s.add_argument("--required", action="append", default=[],
                   help="gene every target's model must contain (interaction and gene-set genes)")
    s.add_argument("--folds", help="the folds table: also choose the predictors on each fold's training part")
    s.add_argument("--out-folds", help="with --folds: the predictors of each fold (target, fold, rank, gene, ...)")
    s.add_argument("--out", required=True)

    for name, func, help in (("ols", cmd_ols, "Fit multiple regression (statsmodels OLS) for one target."),
                             ("mlp", cmd_mlp, "Search, cross-validate and train a neural network (PyTorch) for "
                                              "one target."),
                             ("penalized", cmd_penalized, "Ridge or lasso regression for one target, the penalty "
                                                          "chosen by cross-validation.")):
        s = verb(name, func, help)
        s.add_argument("--data", required=True)
        s.add_argument("--splits", required=True)
        s.add_argument("--predictors", required=True)
        s.add_argument("--target", required=True)
        s.add_argument("--normalization-ref", default=None, help="path of the normalization parameters")
        s.add_argument("--covariate", action="append", default=[], help="sample-sheet column to adjust for")
        s.add_argument("--out-dir", required=True)
        s.add_argument("--labels", help="class labels table: the target is a classification target")
        s.add_argument("--folds", required=name == "penalized",
                       help="folds table (gexpred folds): cross-validate on the training split")
        s.add_argument("--fold-predictors",
                       help="the predictors chosen on each fold's training part (gexpred select --out-folds): "
                            "each fold is fitted and judged on its own")
        s.add_argument("--importance-repeats", type=int, default=5,
                       help="shuffles per predictor and fold for permutation importance (0: none)")
        s.add_argument("--importance-seed", type=seed_arg, default=0, help="seed of the shuffles")
        if name == "penalized":
            s.add_argument("--method", nargs="+", default=["ridge", "lasso"], help="ridge, lasso, elastic_net")
            s.add_argument("--n-alphas", type=int, default=20, help="penalties tried per method")
        if name == "ols":
            s.add_argument("--cov-type", choices=COV_TYPES, default="nonrobust",
                           help="regression: the coefficients' covariance; HC0-HC3 are heteroskedasticity-consistent "
                                "(the t-tests, intervals, overall F and gene-set tests use it)")
            s.add_argument("--penalized", action="store_true",
                           help="classification: ridge (not Firth) logistic fit when the classes are separated")
            s.add_argument("--stop-on-separation", action="store_true",
                           help="classification: stop when the classes are separated instead of fitting Firth's "
                                "logistic regression")
            s.add_argument("--interactions", help="JSON list of [geneA, geneB] pairs")
            s.add_argument("--gene-sets", help="JSON mapping of gene-set names to genes, for nested F-tests")
            s.add_argument("--alpha", type=level_arg, default=0.05, help="1 - confidence level; test threshold")
        if name == "mlp":
            s.add_argument("--settings", required=True, help="JSON of the mlp settings")
            s.add_argument("--search", help="JSON of the search settings (strategy, n_candidates, seed, mlp)")
            s.add_argument("--threads", type=positive_int_arg, default=1)
            s.add_argument("--interaction-genes", type=int, default=8,
                           help="pairs among this many most important predictors are scored for interaction")
            s.add_argument("--interactions-tested", type=int, default=5,
                           help="suggested pairs tested in OLS (F-test of a:b beside the squares of a and b, "
                                "HC3 errors; classification: likelihood-ratio test in the logistic regression)")
            s.add_argument("--h-points", type=int, default=100, help="samples Friedman's H is estimated on")
            s.add_argument("--min-strength", type=float, default=0.05,
                           help="interaction strength, relative to the sd of the predictions, a pair needs to be "
                                "suggested")
            s.add_argument("--fdr", type=level_arg, default=0.05, help="q-value threshold of the interaction tests")

    s = verb("bundle", cmd_bundle, "Write a model bundle: weights, preprocessing, reference data and a model card.")
    s.add_argument("--target", required=True)
    s.add_argument("--model", nargs="+", required=True, choices=["ols", "penalized", "mlp"])
    s.add_argument("--model-dir", nargs="+", required=True,
                   help="each model's output directory (results/MODEL/TARGET), in the order of --model")
    s.add_argument("--data", required=True, help="normalized .h5ad")
    s.add_argument("--splits", required=True)
    s.add_argument("--normalization", required=True, help="normalization.json fitted on the training split")
    s.add_argument("--labels", help="class labels table (classification targets)")
    s.add_argument("--binarize-threshold", type=float,
                   help="the target is this gene cut at this threshold (config 'binarize'): kept in the card, so that "
                        "monitor can label a new batch that measures the gene")
    s.add_argument("--metrics", required=True)
    s.add_argument("--cv-metrics")
    s.add_argument("--alpha", type=level_arg, default=0.05,
                   help="regression models' prediction intervals are at level 1 - alpha (ols.alpha), from their "
                        "cross-validation residuals")
    s.add_argument("--interval", choices=INTERVAL_METHODS, default="neighbours",
                   help="neighbours: each sample's half-width scaled by its mean distance to its nearest training "
                        "samples (wider for samples unlike the training data); constant: one half-width for every "
                        "sample (prediction_interval.method)")
    s.add_argument("--interval-neighbours", type=positive_int_arg, default=10, metavar="K",
                   help="the nearest training samples whose mean distance scales the half-width (>= 1)")
    s.add_argument("--out", nargs="+", required=True, help="bundle directory of each model")
    s.add_argument("--summary", help="comparison summary.tsv: also write --out-best naming the best model")
    s.add_argument("--out-best", help="best.json")

    s = verb("best", cmd_best, "Name the best model of a target by cross-validation (best.json).")
    s.add_argument("--summary", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--models", nargs="+", required=True)
    s.add_argument("--out", required=True)

    for name, func, help in (
            ("predict", cmd_predict, "Predict new samples with a saved model bundle."),
            ("monitor", cmd_monitor, "Check a new batch for drift against the training data, and the model's "
                                     "accuracy when the truth is known.")):
        s = verb(name, func, help)
        s.add_argument("--bundle", required=True,
                       help="bundle directory, or a target's directory under results/models (its best model)")
        s.add_argument("--input", action="append", required=True,
                       help=f"new expression matrix (repeatable): {MATRIX_HELP}")
        s.add_argument("--sample-sheet", help=f"sample sheet of the new samples (models with covariates): {SHEET_HELP}")
        if name == "predict":
            s.add_argument("--out", required=True,
                           help="predictions TSV (sample, target, model, predicted; regression: on the scale the "
                                "model was fitted on, i.e. after the bundle's normalization, such as z-scores of the "
                                "target, with pi_low, pi_high, the bundle's 1 - ols.alpha prediction interval, where "
                                "it has one; classification: the class, a p[class] column per class and, where the "
                                "bundle has its 1 - ols.alpha conformal prediction sets, an in_set[class] column per "
                                "class (1: the class is in the sample's set) and set_size)")
        else:
            truth = s.add_mutually_exclusive_group()  # one source of truth: a second one was silently ignored
            truth.add_argument("--truth", help="TSV, CSV (optionally .gz) or .h5ad (its obs) with 'sample' and a column named after the target (or "
                               "'truth'): its true values on the scale of the training matrices, or its labels; not "
                               "for a model normalized by log_cpm (a value alone has no library size): use "
                               "--truth-from-input")
            truth.add_argument("--truth-from-input", action="store_true",
                               help="regression: take the truth from the target gene in the input matrices")
            truth.add_argument("--truth-if-measured", action="store_true",
                               help="the truth where the batch holds it (what the pipeline does for a new batch): "
                                    "regression, the target gene in the input matrices (as --truth-from-input); "
                                    "classification, a binarized gene in the input matrices cut at the bundle's "
                                    "threshold, or the sample sheet's column named after the target; without "
                                    "it, monitor the inputs and predictions only")
            s.add_argument("--thresholds", help="JSON of the monitor thresholds (config section 'monitor')")
            s.add_argument("--out-dir", required=True, help="drift.tsv, performance.tsv, verdict.json, drift.png")
            s.add_argument("--out-predictions", help="also write the batch's predictions (as `gexpred predict`)")

    s = verb("deploy-summary", cmd_deploy_summary, "Gather the monitoring verdicts of all batches and targets.")
    s.add_argument("--verdicts", nargs="+", required=True,
                   help="verdict.json of each batch and target (results/deploy/BATCH/TARGET/verdict.json)")
    s.add_argument("--performance", nargs="+", required=True,
                   help="the performance.tsv beside each verdict, in the same order")
    s.add_argument("--out", required=True, help="verdicts.tsv: one row per batch and target")

    s = verb("ols-summary", cmd_ols_summary,
             "Gather the OLS results of all targets; Benjamini-Hochberg q-values across targets and terms.")
    s.add_argument("--dirs", nargs="+", required=True, help="per-target OLS output directories")
    s.add_argument("--fdr", type=level_arg, default=0.05, help="false discovery rate reported in the log")
    s.add_argument("--out-coefficients", required=True)
    s.add_argument("--out-fits", required=True)
    s.add_argument("--out-nested", help="every target's gene-set tests with q-values over targets and sets (TSV)")

    s = verb("genome-plan", cmd_genome_plan, "Plan a genome-wide OLS run: shared predictors, targets, chunks.")
    s.add_argument("--data", required=True)
    s.add_argument("--spec", required=True, help="the predictors setting, JSON")
    s.add_argument("--targets", required=True, help='the targets setting, JSON ("all" or {"file": path})')
    s.add_argument("--chunk-size", type=positive_int_arg, required=True)
    s.add_argument("--covariate", action="append", default=[],
                   help="sample-sheet column every target is adjusted for (repeatable)")
    s.add_argument("--interactions", default="[]",
                   help="JSON list of [a, b] pairs (shared predictors or numeric covariates) whose products join the "
                        "shared design")
    s.add_argument("--gene-sets", default="{}",
                   help="JSON {name: [genes]} of shared predictors, each tested by a nested F-test for every target")
    s.add_argument("--networks", action="store_true", help="the run trains genome-wide networks (mlp-chunk)")
    s.add_argument("--recovery", action="store_true", help="the run scores regulator recovery (genome-recovery)")
    s.add_argument("--out", required=True, help="plan TSV: target, chunk")
    s.add_argument("--out-design", required=True,
                   help="JSON with the shared design: predictors, covariates, interactions")

    s = chunk_verb("ols-chunk", cmd_ols_chunk, "Fit OLS for one chunk of targets at once (batched engine).")
    s.add_argument("--alpha", type=level_arg, default=0.05)
    s.add_argument("--cov-type", choices=COV_TYPES, default="nonrobust",
                   help="the coefficients' covariance; HC0-HC3 are heteroskedasticity-consistent (the t-tests, "
                        "intervals, overall F (up to 64 slopes; NaN beyond) and gene-set tests use it)")
    s.add_argument("--out-dir", required=True)

    s = chunk_verb("mlp-chunk", cmd_mlp_chunk, "Train the networks of one chunk of genome-wide targets.")
    s.add_argument("--settings", required=True, help="JSON of the mlp settings")
    s.add_argument("--search", help="JSON of the search settings (strategy, n_candidates, seed, mlp): candidates "
                                    "judged on the validation part of the training split")
    s.add_argument("--mode", choices=["multi_output", "per_target"], default="multi_output",
                   help="one network with an output per target, or one network per target trained as one program")
    s.add_argument("--threads", type=positive_int_arg, default=1)
    s.add_argument("--out-dir", required=True)

    s = verb("genome-compare", cmd_genome_compare, "Compare models across all genome-wide targets.")
    s.add_argument("--metrics", nargs="+", required=True, help="metrics tables (OLS merged, network chunks)")
    s.add_argument("--search", nargs="*", default=[], help="search tables of the network chunks")
    s.add_argument("--out-metrics", required=True)
    s.add_argument("--out-search", required=True, help="the network chunks' search tables, concatenated")
    s.add_argument("--out-summary", required=True)
    s.add_argument("--out-targets", required=True, help="one row per target: test R^2 of every model, the best")
    s.add_argument("--out-figure", required=True)

    s = verb("ols-merge", cmd_ols_merge, "Merge genome-wide OLS chunks; Benjamini-Hochberg q-values over all.")
    s.add_argument("--coefficients", nargs="+", required=True)
    s.add_argument("--fits", nargs="+", required=True)
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--fdr", type=level_arg, default=0.05)
    s.add_argument("--nested", nargs="*", default=[], help="the chunks' gene-set F-test tables")
    s.add_argument("--out-nested", help="the gene-set F-tests of every target with their q-values (TSV)")
    s.add_argument("--out-coefficients", required=True, help="every coefficient with its q-value (Parquet)")
    s.add_argument("--out-significant", required=True, help="the terms with q below --fdr, best first (TSV)")
    s.add_argument("--out-fits", required=True)
    s.add_argument("--out-metrics", required=True)
    s.add_argument("--out-figure", required=True)

    s = verb("recovery", cmd_recovery,
             "Score every candidate regulator of every gold-standard target from each evidence source (OLS, "
             "ridge, networks, correlation, their rank average) and judge the rankings (AUROC, AUPR).")
    s.add_argument("--data", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("--predictors", required=True, help="the run's predictors table (its targets)")
    s.add_argument("--gold-standard", required=True, help=GOLD_STANDARD_HELP)
    s.add_argument("--spec", required=True, help="the predictors setting, JSON")
    s.add_argument("--sources", nargs="+", default=["ols", "penalized", "network", "correlation"],
                   choices=["ols", "penalized", "network", "correlation"])
    s.add_argument("--network", default="{}", help="settings of the network source, JSON (recovery.network)")
    _recovery_arguments(s)

    s = verb("genome-recovery", cmd_genome_recovery,
             "Regulator recovery of a genome-wide run from its batched fits (OLS chunks, network chunks), ridge on "
             "the shared design and correlation.")
    s.add_argument("--data", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("--design", required=True, help="results/ols/genome/design.json")
    s.add_argument("--plan", required=True, help="results/ols/genome/plan.tsv")
    s.add_argument("--gold-standard", required=True, help=GOLD_STANDARD_HELP)
    s.add_argument("--coefficients", help="results/ols/genome/coefficients.parquet")
    s.add_argument("--mlp-models", nargs="*", default=[], help="the chunks' model.pt (model.json beside each)")
    _recovery_arguments(s)

    s = verb("compare", cmd_compare, "Assemble predictions of all models and compute metrics.")
    s.add_argument("--models", nargs="+", required=True)
    s.add_argument("--predictions", nargs="+", required=True, help="per-target, per-model predictions.tsv files")
    s.add_argument("--out-predictions", required=True)
    s.add_argument("--out-metrics", required=True)
    s.add_argument("--cv-predictions", nargs="*", default=[],
                   help="per-target, per-model cv_predictions.tsv files (out-of-fold predictions)")
    s.add_argument("--out-cv-metrics", help="TSV: metrics per target, model and fold")
    s.add_argument("--out-summary", help="TSV: best model per target and network vs regression test")
    s.add_argument("--alpha", type=level_arg, default=0.05, help="level of the network vs regression test")

    s = verb("plot", cmd_plot, "Draw one report figure (`plot target`: every figure of one target; `plot overview`: "
                               "the figures across targets).")
    s.add_argument("kind", choices=["observed", "coefficients", "diagnostics", "loss", "activations", "samples",
                                    "normalization", "pvalues", "comparison", "cv", "importance", "target",
                                    "overview"])
    s.add_argument("--importance", action="append", help="MODEL=importance.tsv (importance figure)")
    s.add_argument("--interactions", help="the network's interactions.tsv (importance figure)")
    s.add_argument("--data", help="collected .h5ad (values before normalization)")
    s.add_argument("--normalized", help="normalized .h5ad")
    s.add_argument("--splits")
    s.add_argument("--method", help="normalization steps, for the axis labels")
    s.add_argument("--fdr", type=level_arg, default=0.05)
    s.add_argument("--alpha", type=level_arg, default=0.05,
                   help="the coefficients' intervals are at level 1 - alpha (ols.alpha), for the figure's labels")
    s.add_argument("--cv-metrics", help="cross-validation metrics TSV (target, model, fold, ...)")
    s.add_argument("--metric", default="r2", help="metric of the cv figure")
    s.add_argument("--target")
    s.add_argument("--models", nargs="+", default=["ols", "mlp"])
    s.add_argument("--predictions")
    s.add_argument("--metrics")
    s.add_argument("--coefficients")
    s.add_argument("--history")
    s.add_argument("--influence")
    s.add_argument("--diagnostics")
    s.add_argument("--model-json")
    s.add_argument("--ols-predictions", help="the OLS predictions.tsv (diagnostics figure of `plot target`)")
    for kind in ("observed", "coefficients", "diagnostics", "loss", "importance"):
        s.add_argument(f"--out-{kind}", help=f"`plot target`: where to draw the {kind} figure")
    for kind in ("activations", "comparison", "pvalues", "cv"):
        s.add_argument(f"--out-{kind}", help=f"`plot overview`: where to draw the {kind} figure")
    s.add_argument("--out", help="the figure (every kind but `target` and `overview`)")
    _report_parser(sub, verb)
    return p


def _recovery_arguments(s: argparse.ArgumentParser) -> None:
    """Options both recovery verbs share: the ranking written out, the folds, threads and outputs."""
    s.add_argument("--ranking", default="clr_mean", help="the ranking written to --out-edges")
    s.add_argument("--normalization", default="clr", choices=["clr", "none"],
                   help="scores of --out-edges and the figure: after CLR, or as they are")
    s.add_argument("--top-edges", type=positive_int_arg, default=10000, help="pairs written to --out-edges")
    s.add_argument("--k", type=folds_arg, default=5, help="folds of the training split (split.folds)")
    s.add_argument("--seed", type=seed_arg, default=0, help="seed of the folds (split.seed)")
    s.add_argument("--prior-folds", type=int, default=5,
                   help="folds of the gold-standard targets for the TF-activity ranking, which scores each target "
                        "from the other folds' known regulators (0: no such ranking)")
    s.add_argument("--threads", type=positive_int_arg, default=1)
    s.add_argument("--out", required=True)
    s.add_argument("--out-figure", required=True)
    s.add_argument("--out-edges", required=True, help="the top pairs of --ranking, with every source's score")


def _report_parser(sub, verb) -> None:
    s = verb("report-summary", cmd_report_summary,
             "Write the report's numbers in words (facts JSON) and the sortable model-comparison table (HTML).")
    for name in ("data", "dropped", "splits", "targets", "metrics"):
        s.add_argument(f"--{name}", required=True)
    for name in ("predictors", "fits", "coefficients", "cv-metrics", "summary"):
        s.add_argument(f"--{name}")
    s.add_argument("--covariate", action="append", default=[],
                   help="a covariate of the models (ols.covariates): its levels only test samples have are reported")
    s.add_argument("--importance", nargs="+", default=[], help="results/MODEL/TARGET/importance.tsv files")
    s.add_argument("--interactions", nargs="+", default=[], help="results/mlp/TARGET/interactions.tsv files")
    s.add_argument("--recovery", help="results/recovery/regulator_recovery.tsv")
    s.add_argument("--edges", help="results/recovery/edges.tsv (the inferred network, described in words)")
    s.add_argument("--ranking", help="the ranking of --edges (recovery.ranking)")
    s.add_argument("--test-fraction", type=float)
    s.add_argument("--seed", type=seed_arg)
    s.add_argument("--fdr", type=level_arg, default=0.05)
    s.add_argument("--min-strength", type=float, default=0.05,
                   help="importance.min_strength: the interaction strength the network's pairs were suggested by")
    s.add_argument("--out-facts", required=True)
    s.add_argument("--out-table", required=True)


ENCODED_ARG = "gexpred-enc:"


def decode_arg(arg: str) -> str:
    """A command-line argument as the workflow meant it: names the report could not show verbatim (``<``, ``&``,
    backslashes, control characters) arrive percent-encoded behind ``gexpred-enc:`` (``cli_text`` in
    workflow/rules/common.smk); anything else is returned as it is."""
    from urllib.parse import unquote

    return unquote(arg[len(ENCODED_ARG):]) if arg.startswith(ENCODED_ARG) else arg


def exit_on_sigterm() -> None:
    """Make SIGTERM end the process through ``SystemExit`` (status 143), so that clean-up code runs.

    SLURM sends SIGTERM when a job reaches its time limit or is cancelled, and Snakemake when it cancels its
    jobs. Python's default action ends the process at once, which left the temporary file (or bundle
    directory) of an output being written behind in ``results/``; as an exception, the handlers of
    :func:`gexpred.io.atomic_output` and :func:`gexpred.deploy.write_bundle` remove it first.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gexpred`` console script."""
    exit_on_sigterm()
    parser = build_parser()
    args = parser.parse_args([decode_arg(a) for a in (sys.argv[1:] if argv is None else argv)])
    _setup_logging(args.log)
    try:
        args.func(args)
    except GexpredError as exc:
        msg = textwrap.fill(str(exc), width=100, break_long_words=False, break_on_hyphens=False)
        logging.getLogger("gexpred").error("%s", msg)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
