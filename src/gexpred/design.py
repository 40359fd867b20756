"""Choose predictor genes for each target and build design matrices."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, near_ids, plural, preview
from .io import TEXT_NA, ZERO_PADDED, number_text, read_gene_list

log = logging.getLogger(__name__)

PREDICTOR_COLUMNS = ["target", "rank", "gene", "train_corr"]
MISSING_WORDS = ", ".join(w for w in TEXT_NA[:-1] if w) + " or " + TEXT_NA[-1]
"""The sample sheet's words for a missing value (:data:`gexpred.io.TEXT_NA`), for messages."""


def _is_constant(X: np.ndarray) -> np.ndarray:
    """Per column of ``X`` (or for a vector): constant up to rounding error.

    A value repeated in every sample can get a standard deviation of ~1e-17
    from rounding in the mean, so a relative tolerance is used.
    """
    X = np.asarray(X, dtype=np.float64)
    return ~(X.std(axis=0) > 1e-12 * np.maximum(1.0, np.abs(X).max(axis=0, initial=0.0)))


def _corr_with(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``X`` with ``y`` (NaN for constant columns)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    yc = y - y.mean()
    denom = np.sqrt((Xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Xc.T @ yc) / denom
    r[~(denom > 0) | _is_constant(X) | bool(_is_constant(y))] = np.nan
    return np.clip(r, -1.0, 1.0)


def dropped_reasons(gone: list[str], dropped: dict[str, str]) -> str:
    """``'g': why; 'h': why`` for the first five of ``gone`` (genes left out while collecting the data), then a
    pointer to ``results/data/dropped.tsv``."""
    return (f"{'; '.join(f'{g!r}: {dropped[g]}' for g in gone[:5])}{'; …' if len(gone) > 5 else ''} (all in "
            f"results/data/dropped.tsv)")


def _refuse_absent(absent: list[str], what: str, where: str, source: str, dropped: dict[str, str],
                   genes: list[str], fix: str) -> None:
    """Refuse genes a config names that the data lack, saying why where the data say it: genes dropped while
    collecting (their reason and files, with the fix of that), ids that differ from the data's only in case or
    surrounding quotes; else a misspelling (``fix``)."""
    if not absent:
        return
    where = f" {where}" if where else ""

    def noun(ids: list[str]) -> str:  # "Genes" of several, "Gene" of one
        return what[:-1] if len(ids) == 1 and what.endswith("s") else what

    gone = [g for g in absent if g in dropped]
    if gone:
        one = len(gone) == 1
        raise ConfigError(
            f"{noun(gone)} {preview(gone)}{where} {'was' if one else 'were'} dropped while collecting the data, so "
            f"{'it is' if one else 'they are'} not in {source}: {dropped_reasons(gone, dropped)}. Add the gene to "
            f"every matrix, use a missing-value policy that keeps it, or leave it out of the config."
        )
    raise ConfigError(f"{noun(absent)} {preview(absent)}{where} {'is' if len(absent) == 1 else 'are'} not in "
                      f"{source}. {fix}{near_ids(absent, genes)}")


def select_predictors(
    X_train: np.ndarray,
    genes: list[str],
    targets: list[str],
    spec: list[str] | dict[str, Any],
    source: str = "the collected data",
    required: list[str] | None = None,
    class_labels: dict[str, np.ndarray] | None = None,
    dropped: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Choose the predictor genes of every target on the training split.

    Parameters
    ----------
    X_train
        Normalised training samples x genes.
    genes
        Column ids of ``X_train``.
    targets
        Target gene ids.
    spec
        Either an explicit list of predictor genes (shared by all targets), or
        ``{"top_correlated": K, "from": genes or file}``: per target the K
        genes with the largest absolute Pearson correlation with the target
        over the training samples, among the ``from`` candidates (all other
        genes by default). A target is never its own predictor.
    source
        How to name the data in error messages.
    required
        Genes every target's model must contain (those of interaction terms
        and of gene sets under test); they are appended after the chosen
        ones when missing, except for the target itself.
    dropped
        ``{gene: why}`` for genes left out while collecting the data (``results/data/dropped.tsv``): a
        target or predictor among them is refused with the reason, not as a misspelling.
    class_labels
        Classification: ``{target: integer class codes of the training rows}``.
        Such a target need not be a gene; candidates are ranked by the
        correlation ratio (eta: the square root of the share of a gene's
        variance explained by the classes), reported as ``train_corr``. A
        gene binarised into a target is never its own predictor.

    Returns
    -------
    pandas.DataFrame
        Columns ``target, rank, gene, train_corr``, one row per chosen predictor.
    """
    index = {g: i for i, g in enumerate(genes)}
    class_labels = class_labels or {}
    dropped = dropped or {}
    required = list(dict.fromkeys(str(g) for g in (required or [])))
    _refuse_absent([g for g in required if g not in index], "Genes", "named in 'ols.interactions' or "
                   "'ols.gene_sets'", source, dropped, genes, "Check their spelling.")
    _refuse_absent([t for t in targets if t not in index and t not in class_labels], "Target genes", "",
                   f"{source} ({len(genes)} genes)", dropped, genes, "Check the spelling in 'targets' (ids must "
                   "match the first column of the matrices exactly).")
    for t in targets:
        if t not in class_labels and _is_constant(X_train[:, index[t]]):
            raise ConfigError(
                f"Target {t!r} is constant across the {X_train.shape[0]} training samples of {source} (e.g. all "
                f"zero); there is nothing to predict. Remove it from 'targets'."
            )
    rows: list[tuple[str, int, str, float]] = []
    if isinstance(spec, (list, tuple)):
        predictors = [str(g) for g in spec]
        if not predictors:
            raise ConfigError("'predictors' is an empty list; list at least one predictor gene, or use "
                              "{top_correlated: K}.")
        _refuse_absent([g for g in predictors if g not in index], "Predictor genes", "", source, dropped, genes,
                       "Check the spelling in 'predictors', or remove them.")
        dup = pd.Series(predictors)[pd.Series(predictors).duplicated()].tolist()
        if dup:
            raise ConfigError(f"'predictors' lists genes more than once: {preview(dup)}.")
        both = [t for t in targets if t in set(predictors)]
        if both:
            raise ConfigError(
                f"{'Gene' if len(both) == 1 else 'Genes'} {preview(both)} {'is' if len(both) == 1 else 'are'} listed "
                f"both as targets and as predictors; a gene cannot predict "
                f"itself. Remove them from 'predictors' (or from 'targets')."
            )
        for t in targets:
            chosen = _with_required(predictors, required, t)
            r = _score(X_train[:, [index[g] for g in chosen]], t, X_train, index, class_labels)
            rows += [(t, k + 1, g, float(r[k])) for k, g in enumerate(chosen)]
        return pd.DataFrame(rows, columns=PREDICTOR_COLUMNS)

    if not isinstance(spec, dict) or "top_correlated" not in spec:
        raise ConfigError(
            f"'predictors' must be a list of gene ids or a mapping {{top_correlated: K, from: genes or file}}; "
            f"got {spec!r}."
        )
    unknown = sorted(set(spec) - {"top_correlated", "from"})
    if unknown:
        raise ConfigError(f"'predictors' has unknown keys {preview(unknown)}; only 'top_correlated' and 'from' "
                          f"are understood.")
    k = spec["top_correlated"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"predictors.top_correlated must be a positive integer; got {k!r}.")
    k = int(k)
    candidates = read_gene_list(spec["from"], "predictor candidates file") if spec.get("from") is not None else list(genes)
    absent = [g for g in candidates if g not in index]
    if absent:
        log.warning("%d of %d candidate predictors are not in %s and are skipped: %s.%s",
                    len(absent), len(candidates), source, preview(absent), near_ids(absent, genes))
    present = list(dict.fromkeys(g for g in candidates if g in index))
    if not present:
        raise ConfigError(
            f"None of the candidate predictors ('predictors.from') is in {source}. Check that the gene ids "
            f"in the list match the matrices' first column.{near_ids(absent, genes)}"
        )
    candidates = present
    C = X_train[:, [index[g] for g in candidates]]
    for t in targets:
        r = _score(C, t, X_train, index, class_labels)
        eligible = np.array([g != t for g in candidates]) & np.isfinite(r)
        order = [i for i in np.argsort(-np.abs(np.where(eligible, r, 0)), kind="stable") if eligible[i]]
        if len(order) < k:
            log.warning("target %s: only %d eligible candidate predictors, fewer than top_correlated=%d; using all",
                        t, len(order), k)
        chosen = _with_required([candidates[i] for i in order[:k]], required, t)
        r_all = _score(X_train[:, [index[g] for g in chosen]], t, X_train, index, class_labels)
        rows += [(t, rank + 1, g, float(r_all[rank])) for rank, g in enumerate(chosen)]
    return pd.DataFrame(rows, columns=PREDICTOR_COLUMNS)


def _score(C: np.ndarray, target: str, X_train: np.ndarray, index: dict[str, int],
           class_labels: dict[str, np.ndarray]) -> np.ndarray:
    """Association of each column of ``C`` with the target: Pearson r, or eta for class labels."""
    if target in class_labels:
        return correlation_ratio(C, class_labels[target])
    return _corr_with(C, X_train[:, index[target]])


def correlation_ratio(X: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Eta of each column of ``X`` with class ``codes``: sqrt(between-class SS / total SS); NaN if constant."""
    X = np.asarray(X, dtype=np.float64)
    codes = np.asarray(codes)
    mean = X.mean(axis=0)
    total = ((X - mean) ** 2).sum(axis=0)
    between = np.zeros(X.shape[1])
    for c in np.unique(codes):
        rows = codes == c
        between += rows.sum() * (X[rows].mean(axis=0) - mean) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.sqrt(np.clip(between / total, 0.0, 1.0))
    eta[_is_constant(X)] = np.nan
    return eta


def _with_required(chosen: list[str], required: list[str], target: str) -> list[str]:
    extra = [g for g in required if g not in chosen and g != target]
    if extra:
        log.info("target %s: adding %s required by interactions or gene sets: %s", target,
                 plural(len(extra), "gene"), preview(extra))
    return [*chosen, *extra]


def predictors_for(table: pd.DataFrame, target: str) -> list[str]:
    """The ordered predictor genes of ``target`` from a predictors table."""
    sub = table[table["target"] == target].sort_values("rank")
    return sub["gene"].astype(str).tolist()


def check_design(X: np.ndarray, names: list[str], target: str) -> tuple[np.ndarray, list[str]]:
    """Drop constant predictors (with a warning); reject collinear ones.

    Parameters
    ----------
    X
        Training samples x predictors (without intercept).
    names
        Predictor names.
    target
        Target id, for messages.

    Returns
    -------
    X, names
        Without constant columns.

    Raises
    ------
    ModelError
        If no predictor is left, there are too few samples, or the predictors
        are perfectly collinear.
    """
    from .errors import ModelError

    X = np.asarray(X, dtype=np.float64)
    const = _is_constant(X)
    if const.any():
        log.warning("target %s: dropping %s constant over the training samples: %s",
                    target, plural(int(const.sum()), "predictor"), preview(np.asarray(names)[const]))
        X = X[:, ~const]
        names = [n for n, c in zip(names, const) if not c]
    if not names:
        raise ModelError(
            f"Target {target!r}: every predictor is constant over the training samples; choose other predictors."
        )
    n, p = X.shape
    if n < p + 2:
        raise ModelError(
            f"Target {target!r}: {plural(n, 'training sample')} for {plural(p, 'predictor')}; ordinary least squares needs at least "
            f"{p + 2} (predictors + intercept + 1 residual degree of freedom). Use fewer predictors "
            f"(e.g. a smaller 'top_correlated') or more samples."
        )
    dependent = redundant_columns(X)
    if dependent.any():
        raise ModelError(
            f"Target {target!r}: the predictors are perfectly collinear over the training samples "
            f"({int(dependent.sum())} redundant, e.g. {preview(np.asarray(names)[dependent])} is a linear "
            f"combination of the others), so "
            f"their coefficients are not identifiable. Remove the redundant genes from 'predictors'."
        )
    return X, names


def redundant_columns(X: np.ndarray) -> np.ndarray:
    """Which columns of ``X`` are linear combinations of the intercept and the columns before them (a column
    constant over these rows among them), as a boolean mask; one rank computation when there are none."""
    X = np.asarray(X, dtype=np.float64)
    A = np.column_stack([np.ones(len(X)), X])
    redundant = np.zeros(X.shape[1], dtype=bool)
    if np.linalg.matrix_rank(A) == A.shape[1]:
        return redundant
    kept = [0]
    for j in range(1, A.shape[1]):
        if np.linalg.matrix_rank(A[:, [*kept, j]]) < len(kept) + 1:
            redundant[j - 1] = True
        else:
            kept.append(j)
    return redundant


# --------------------------------------------------------------------------- design matrices
def _refuse_mostly_numbers(name: str, col: pd.Series, source: str) -> None:
    """Refuse a covariate column of text whose values are mostly numbers (at least half) but not all: read as
    categories it would enter the model as one level per distinct number, where the user almost surely meant a
    number and the other cells are typos ('1O'), numbers too large for a float ('1e999') or stray words."""
    text = col.astype(str)
    numbers = pd.to_numeric(text, errors="coerce").notna().to_numpy()
    if numbers.all() or numbers.sum() < 0.5 * len(numbers):
        return
    bad = [f"{v!r} (sample {s!r})" for s, v in zip(col.index[~numbers], text[~numbers])]
    raise ConfigError(
        f"Covariate {name!r} of {source} holds numbers but for {plural(int((~numbers).sum()), 'value')} that "
        f"{'is not a number' if (~numbers).sum() == 1 else 'are not numbers'}: {preview(bad)}, so it would enter "
        f"the model as categories, one level per distinct value. Correct those cells to numbers (a value as "
        f"large as 1e999 does not fit a float), or, if the column is codes, declare it categorical as "
        f"'C({name})' in 'ols.covariates'."
    )


def covariate_column(name: str) -> tuple[str, bool]:
    """The sample-sheet column a covariate names, and whether it is declared categorical.

    ``C(batch)``, as in statsmodels' formulas, is the column ``batch`` taken as categorical even when its values
    are numbers (batches 1, 2, 3; plates; patients coded by number), which would otherwise enter as one slope
    over the codes. Any other name is the column itself, categorical when its values are not numbers.
    """
    name = str(name)
    if name.startswith("C(") and name.endswith(")") and len(name) > 3:
        return name[2:-1], True
    return name, False


def level_text(values: pd.Series) -> pd.Series:
    """The levels of a declared-categorical covariate (``C(...)``) as text: numbers as written in the shortest
    form that reads back the same (``2`` for 2 and 2.0, ``0.5``), so that the same code written ``2`` in one sheet
    and ``2.0`` in another (an .h5ad's float column) is one level; zero-padded codes (``001``, which the sample
    sheet reader keeps as text) and anything else as it is."""
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.astype(str).str.strip()
    ok = numbers.notna().to_numpy() & ~text.str.match(ZERO_PADDED).to_numpy()
    text[ok] = [number_text(v) for v in numbers[ok]]
    return text


def level_order(levels: set[str], codes: bool = False) -> list[str]:
    """Levels sorted: declared-categorical numbers by value (1, 2, 10, as statsmodels' ``C()`` sorts them), the
    rest as text."""
    if not codes:
        return sorted(levels)
    ordered = sorted(levels)
    numbers = pd.to_numeric(pd.Series(ordered), errors="coerce").fillna(np.inf)
    return [lev for _, lev in sorted(zip(numbers, ordered))]


def encode_covariates(obs: pd.DataFrame, covariates: list[str], train: np.ndarray,
                      source: str = "the sample sheet") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Encode sample-sheet covariates as design columns.

    Numeric columns are used as they are. Other columns, and columns declared
    categorical as ``C(name)`` (:func:`covariate_column`), are categorical and
    encoded as treatment contrasts against their first level (sorted; numbers
    of a ``C(...)`` column by value) among the training samples: one 0/1
    column ``name[T.level]`` per other level, as statsmodels' formula interface
    (patsy) names them (``C(batch)[T.2]``).

    Parameters
    ----------
    obs
        Covariates indexed by sample (``adata.obs``).
    covariates
        Column names to encode.
    train
        Boolean mask of training samples (levels are learnt from them).
    source
        How to name the sample sheet in error messages.

    Returns
    -------
    columns : pandas.DataFrame
        One column per encoded term, indexed like ``obs``.
    encoding : dict
        ``{covariate: {"type": "numeric"} or {"type": "categorical", "levels": [...], "reference": ...}}``,
        enough to encode new samples the same way.
    """
    missing = [c for c in covariates if covariate_column(c)[0] not in obs.columns]
    if missing:
        raise ConfigError(
            f"Covariates {preview(missing)} ('ols.covariates') are not columns of {source} "
            f"(columns: {preview(list(obs.columns), 10)})."
        )
    cols: dict[str, pd.Series] = {}
    encoding: dict[str, Any] = {}
    for c in covariates:
        column, declared = covariate_column(c)
        col = obs[column]
        na = col.isna().to_numpy()
        if na.any():
            raise ConfigError(
                f"Covariate {c!r} of {source} is missing for {int(na.sum())} sample{'s' if na.sum() > 1 else ''}, "
                f"e.g. {preview(obs.index[na])} (an empty cell, or {MISSING_WORDS}, which read as missing). Fill in "
                f"the values (a level named so, such as 'NA' for North America, must be spelt otherwise, e.g. "
                f"'N.A.') or remove the covariate from 'ols.covariates'."
            )
        if pd.api.types.is_numeric_dtype(col) and not declared:
            inf = ~np.isfinite(col.to_numpy(dtype=np.float64))
            if inf.any():
                # an infinite column is 'constant' to check_design (its SD is NaN) and would vanish from the
                # design under that false reason; in a test sample it would make the prediction infinite
                raise ConfigError(
                    f"Covariate {c!r} of {source} is infinite for {int(inf.sum())} "
                    f"sample{'s' if inf.sum() > 1 else ''}: "
                    f"{preview([f'{s!r} ({v})' for s, v in zip(obs.index[inf], col.to_numpy()[inf])])} (a cell "
                    f"such as 'Inf' or '-inf'). Give those samples a finite value, or remove the covariate "
                    f"from 'ols.covariates'."
                )
            cols[c] = col.astype(np.float64)
            encoding[c] = {"type": "numeric"}
            continue
        if not declared:
            _refuse_mostly_numbers(c, col, source)
        values = level_text(col) if declared else col.astype(str)
        levels = level_order(set(values[train]), declared)
        unseen = sorted(set(values[~train]) - set(levels))
        if unseen:
            log.warning("covariate %s: levels %s occur only outside the training split; those samples are "
                        "encoded as the reference level %r", c, preview(unseen), levels[0])
        if len(levels) < 2:
            log.warning("covariate %s has a single level (%r) in the training split; it adds no term", c,
                        levels[0] if levels else None)
        for lev in levels[1:]:
            cols[f"{c}[T.{lev}]"] = (values == lev).astype(np.float64)
        encoding[c] = {"type": "categorical", "levels": levels, "reference": levels[0] if levels else None}
        if declared:
            encoding[c]["column"] = column  # the sheet's column; its values read as level_text reads them
    return pd.DataFrame(cols, index=obs.index), encoding


def build_design(
    expr: pd.DataFrame,
    predictors: list[str],
    covariates: pd.DataFrame | None = None,
    interactions: list[list[str]] | None = None,
) -> pd.DataFrame:
    """Design columns (without intercept): predictor genes, covariates, interactions.

    Parameters
    ----------
    expr
        Samples x genes (normalised expression).
    predictors
        Predictor genes, in order.
    covariates
        Encoded covariate columns (:func:`encode_covariates`), same index.
    interactions
        Pairs ``[a, b]`` of genes or numeric covariate columns; each adds the
        product column ``a:b``.
    """
    parts = [expr[predictors]]
    if covariates is not None and covariates.shape[1]:
        parts.append(covariates)
    X = pd.concat(parts, axis=1)
    seen: dict[tuple[str, ...], list[str]] = {}
    for pair in interactions or []:
        if len(pair) != 2:
            raise ConfigError(f"Each entry of 'ols.interactions' must be a pair [geneA, geneB]; got {pair!r}.")
        a, b = (str(x) for x in pair)
        key = tuple(sorted((a, b)))
        if key in seen:
            raise ConfigError(f"'ols.interactions' lists the product {a}:{b} twice (as {seen[key]} and {[a, b]}); "
                              f"a product does not depend on the order of its factors: keep one of them.")
        seen[key] = [a, b]
        cols = []
        for name in (a, b):
            if name in X.columns:
                cols.append(X[name])
            elif name in expr.columns:
                cols.append(expr[name])
            else:
                raise ConfigError(f"Interaction term {a}:{b}: {name!r} is neither a gene nor a numeric covariate.")
        X[f"{a}:{b}"] = cols[0].to_numpy() * cols[1].to_numpy()
    dup = X.columns[X.columns.duplicated()].tolist()
    if dup:
        raise ConfigError(f"Design terms appear twice: {preview(dup)}. A covariate must not share a gene's name.")
    reserved = [str(c) for c in X.columns if str(c) == "const" or str(c).startswith("const[")]
    if reserved:
        raise ConfigError(
            f"Design terms {preview(reserved)} take the name of the intercept ('const'), which every model adds "
            f"itself: its coefficient and test would be mistaken for the intercept's. Rename the covariate (the "
            f"column of the sample sheet) or the gene, e.g. to 'const_'."
        )
    return X


# --------------------------------------------------------------------------- genome-wide mode
def genome_design(values: np.ndarray, samples: list[str], design: dict[str, Any], train: np.ndarray,
                  obs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The shared design of a genome-wide run (without intercept): the shared predictors, the covariates
    encoded as :func:`encode_covariates` (levels from the training samples) and the interaction products.

    Parameters
    ----------
    values
        Samples x shared predictors (``design["predictors"]``, in order).
    samples
        The samples (rows of ``values``).
    design
        The plan's ``design.json``: ``predictors``, and optionally ``covariates`` (sample-sheet columns) and
        ``interactions`` (pairs of predictors or numeric covariates).
    train
        Boolean mask of the training samples.
    obs
        The sample sheet's columns indexed by sample (needed with covariates).
    """
    expr = pd.DataFrame(values, index=samples, columns=design["predictors"])
    covariates = None
    if design.get("covariates"):
        if obs is None:
            raise ValueError("the design has covariates, but no sample sheet was given")
        covariates, _ = encode_covariates(obs.loc[samples], list(design["covariates"]), train, "the sample sheet")
    return build_design(expr, list(design["predictors"]), covariates, design.get("interactions") or None)


def check_genome_terms(predictors: list[str], covariates: list[str], interactions: list[list[str]],
                       genes: list[str], numeric: set[str], source: str = "the data",
                       gene_sets: dict[str, list[str]] | None = None) -> None:
    """Refuse what the shared design of a genome-wide run cannot hold: a gene-set gene that is not a shared
    predictor, a covariate that is also a gene id, and an interaction factor that is neither a shared predictor
    nor a numeric covariate (``numeric``: the sample sheet's numeric columns among ``covariates``)."""
    outside = sorted({str(g) for genes_ in (gene_sets or {}).values() for g in genes_} - set(predictors))
    if outside:
        raise ConfigError(
            f"Gene-set genes {preview(outside)} (ols.gene_sets) are not shared predictors. In genome-wide mode every "
            f"target is fitted on one shared design, and a set's F-test removes its genes from it: add them to "
            f"'predictors' or remove them from the sets."
        )
    clash = [c for c in covariates if covariate_column(c)[0] in set(genes)]
    if clash:
        raise ConfigError(
            f"Covariates {preview(clash)} (ols.covariates, columns of the sample sheet) are also gene ids of "
            f"{source}: a design term naming them would be ambiguous. Rename the column in the sample sheet and in "
            f"ols.covariates, e.g. to '{clash[0]}_covariate'."
        )
    allowed = set(predictors) | set(numeric)
    bad = sorted({str(g) for pair in interactions for g in pair if str(g) not in allowed})
    if bad:
        raise ConfigError(
            f"Interaction factors {preview(bad)} (ols.interactions) are neither shared predictors nor numeric "
            f"covariates. In genome-wide mode every target is fitted on one shared design, so a product term can "
            f"only join shared predictors ('predictors') or numeric sample-sheet columns ('ols.covariates'): add "
            f"the genes to the predictors or drop those pairs."
        )


def shared_predictors(genes: list[str], spec: list[str] | dict[str, Any], source: str = "the data",
                      dropped: dict[str, str] | None = None) -> list[str]:
    """The predictors shared by every target in genome-wide mode.

    ``spec`` must be a list of genes, or ``{"from": genes or file}`` without
    ``top_correlated`` (all candidates in the data): the batched engine needs one
    design for all targets. ``dropped``: ``{gene: why}`` of the genes left out while
    collecting the data, named with their reason rather than as absent.
    """
    index = set(genes)
    dropped = dropped or {}
    if isinstance(spec, dict):
        if spec.get("top_correlated") is not None:
            raise ConfigError(
                "Genome-wide mode (targets: all or {file: ...}) fits every target on one shared design, but "
                "'predictors.top_correlated' chooses different predictors per target. Give 'predictors' as a list "
                "of genes or as {from: file-or-list} (all of those genes), e.g. the transcription factors."
            )
        if spec.get("from") is None:
            raise ConfigError("Genome-wide mode needs the shared predictors: set 'predictors' to a list or {from: ...}.")
        pool = read_gene_list(spec["from"], "predictor candidates file")
        absent = [g for g in pool if g not in index]
        gone = [g for g in absent if g in dropped]
        if gone:
            log.warning("%d of %d predictor genes were dropped while collecting the data and are skipped: %s",
                        len(gone), len(pool), dropped_reasons(gone, dropped))
        absent = [g for g in absent if g not in dropped]
        if absent:
            log.warning("%d of %d predictor genes are not in %s and are skipped: %s", len(absent), len(pool),
                        source, preview(absent))
        pool = [g for g in dict.fromkeys(pool) if g in index]
    else:
        pool = [str(g) for g in spec]
        _refuse_absent([g for g in pool if g not in index], "Predictor genes", "", source, dropped, genes,
                       "Check 'predictors'.")
    if not pool:
        raise ConfigError(f"None of the predictor genes is in {source}.")
    return pool


def genome_targets(genes: list[str], predictors: list[str], spec: str | dict[str, Any],
                   source: str = "the data") -> tuple[list[str], list[str]]:
    """Targets of a genome-wide run and the requested ids that are not in the data.

    ``spec`` is ``"all"`` (every gene that is not a predictor) or
    ``{"file": path}`` (gene ids one per line; predictors among them are left out).
    """
    preds = set(predictors)
    if spec == "all":
        return [g for g in genes if g not in preds], []
    requested = read_gene_list(spec["file"], "targets file")
    index = set(genes)
    missing = [g for g in requested if g not in index]
    targets = [g for g in dict.fromkeys(requested) if g in index and g not in preds]
    overlap = [g for g in requested if g in preds]
    if overlap:
        log.warning("%d requested targets are predictors and are not modelled: %s", len(overlap), preview(overlap))
    if not targets:
        raise ConfigError(f"None of the targets listed in '{spec['file']}' is in {source} (outside the predictors).")
    return targets, missing
