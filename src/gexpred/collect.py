"""Combine expression matrices by sample id and attach the sample sheet.

Two matrices either hold different samples of the same genes (they are
*stacked*: genes kept are those in both) or the same samples measured on
different genes (they are *joined*: samples kept are those in both); with
more, those that share genes are stacked first and the stacks joined, so the
result does not depend on the order the files are listed in. Nothing
is dropped silently: :func:`combine` returns a table of every gene or sample
it leaves out, with the file and the reason.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection

import anndata as ad
import numpy as np
import pandas as pd

from .errors import _VERSION, InputError, near_ids, plural, preview

log = logging.getLogger(__name__)

DROPPED_COLUMNS = ["kind", "id", "file", "reason"]


def _groups(matrices: list[ad.AnnData]) -> list[list[int]]:
    """Indices of the matrices linked by shared genes (connected components), in order of first appearance."""
    n = len(matrices)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if len(matrices[i].var_names.intersection(matrices[j].var_names)):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _ordered_intersection(indexes: list[pd.Index]) -> pd.Index:
    """The ids in every index, in the order of the first."""
    return functools.reduce(lambda acc, idx: acc.intersection(idx, sort=False), indexes)


def combine(matrices: list[ad.AnnData]) -> tuple[ad.AnnData, pd.DataFrame]:
    """Combine matrices: stack those that share genes, then join the stacks on their shared samples.

    Matrices that share genes (directly or through another matrix) hold different samples of those genes
    and are *stacked*: the genes kept are those in every one of them. The stacks, which share no gene, hold
    different genes of the same samples and are *joined*: the samples kept are those in every stack. The
    result does not depend on the order of ``matrices`` but for the order of its rows and columns (first
    appearance), and the dropped table lists exactly the ids of the inputs that are not in it.

    Parameters
    ----------
    matrices
        AnnData objects as returned by :func:`gexpred.io.read_matrix`
        (``uns['source']`` names the file).

    Returns
    -------
    combined : anndata.AnnData
        Samples x genes, float64.
    dropped : pandas.DataFrame
        Columns ``kind`` (``gene``/``sample``), ``id``, ``file``, ``reason``; one row per id left out;
        ``file`` names every file the id was read from (joined by ``" + "`` when it was in several).

    Raises
    ------
    InputError
        When two matrices share both samples and genes (it is ambiguous which values to keep), when stacked
        matrices have no gene in common, or when the stacks have no sample in common (nothing to combine on).
    """
    if not matrices:
        raise InputError("No matrices given: list at least one file under 'matrices' in the config.")
    names = [str(m.uns.get("source", f"matrix {k}")) for k, m in enumerate(matrices, start=1)]
    for i in range(len(matrices)):
        for j in range(i + 1, len(matrices)):
            both_s = matrices[i].obs_names.intersection(matrices[j].obs_names, sort=False)
            both_g = matrices[i].var_names.intersection(matrices[j].var_names, sort=False)
            if len(both_s) and len(both_g):
                raise InputError(
                    f"Matrices {names[i]!r} and {names[j]!r} share {plural(len(both_s), 'sample')} (e.g. "
                    f"{preview(both_s, 3)}) and {plural(len(both_g), 'gene')} (e.g. {preview(both_g, 3)}), so it is "
                    f"ambiguous which values to keep. Combine matrices that hold different samples of the same "
                    f"genes, or the same samples on different genes; remove the overlap from one file."
                )
    stacks: list[tuple[str, ad.AnnData]] = []
    groups = _groups(matrices)
    for group in groups:
        label = " + ".join(names[i] for i in group)
        genes = _ordered_intersection([matrices[i].var_names for i in group])
        if not len(genes):
            raise InputError(
                f"Matrices {label} are stacked (each shares genes with another) but no gene is in all of them, "
                f"so they cannot be combined. Check that gene ids (first column) are spelt the same way in these "
                f"files, or leave out the file that measures other genes."
            )
        parts = [matrices[i][:, genes] for i in group]
        stacks.append((label, parts[0] if len(parts) == 1 else ad.concat(parts, axis=0, join="inner")))
        if len(group) > 1:
            log.info("stacked %s: %d samples on %d shared genes", label, stacks[-1][1].n_obs, len(genes))
    acc = stacks[0][1]
    if len(stacks) > 1:
        samples = _ordered_intersection([st.obs_names for _, st in stacks])
        if not len(samples):
            pair = [label for label, _ in stacks[:2]] if len(stacks) == 2 else [label for label, _ in stacks]
            raise InputError(
                f"Matrices {' and '.join(repr(p) for p in pair)} share no samples and no genes, so they cannot be "
                f"combined. Check that sample ids (header) and gene ids (first column) are spelt the same way in "
                f"all files.{near_ids(stacks[1][1].obs_names, stacks[0][1].obs_names)}"
                f"{near_ids(stacks[1][1].var_names, stacks[0][1].var_names)}"
            )
        acc = ad.concat([st[samples, :] for _, st in stacks], axis=1, join="inner")
        log.info("joined %s: %d genes on %d shared samples", " and ".join(label for label, _ in stacks),
                 acc.n_vars, len(samples))
    acc = ad.AnnData(
        X=np.ascontiguousarray(np.asarray(acc.X, dtype=np.float64)),
        obs=pd.DataFrame(index=acc.obs_names.copy()),
        var=pd.DataFrame(index=acc.var_names.copy()),
    )
    dropped: list[tuple[str, str, str, str]] = []
    # each id left out, with the files it was read from and those that lack it: a gene measured in some of the
    # matrices stacked together (different samples of the same genes), a sample held by some of the joined stacks
    sets = [set(map(str, m.var_names)) for m in matrices]
    held = [(label, set(map(str, st.obs_names))) for label, st in stacks]
    for kind, kept, ids_of in (("gene", set(acc.var_names), lambda m: m.var_names),
                               ("sample", set(acc.obs_names), lambda m: m.obs_names)):
        files: dict[str, list[str]] = {}
        for name, m in zip(names, matrices):
            for i in ids_of(m):
                if i not in kept:
                    files.setdefault(str(i), []).append(name)
        for i, f in files.items():
            if kind == "gene":
                lacking = [names[k] for group in groups if any(i in sets[k] for k in group)
                           for k in group if i not in sets[k]]
                reason = (f"not in {' nor '.join(repr(x) for x in lacking)}, stacked with the file(s) that measure it "
                          f"(stacked matrices keep only the genes all of them measure)")
            else:
                lacking = [label for label, ids in held if i not in ids]
                reason = (f"not in {' nor '.join(repr(x) for x in lacking)}, joined with the file(s) that hold it "
                          f"(joined matrices keep only the samples all of them hold)")
            dropped.append((kind, i, " + ".join(f), reason))
    dropped_df = pd.DataFrame(dropped, columns=DROPPED_COLUMNS)
    for kind in ("gene", "sample"):
        ids = dropped_df.loc[dropped_df["kind"] == kind, "id"].tolist()
        if ids:
            log.warning("dropped %d %ss while combining matrices (listed in the dropped table)%s", len(ids), kind,
                        _close_ids(ids, dict(zip(dropped_df["id"], dropped_df["file"]))))
    return acc, dropped_df


def _close_ids(ids: list[str], files: dict[str, str]) -> str:
    """A sentence naming the ``ids`` (left out) that differ from one another only in letter case, surrounding
    spaces or quotes, a version suffix or the leading zeros of a number (``S31`` in one file, ``s31`` in another;
    ``007`` and ``7``: one sample spelt two ways, so neither is in every matrix), or "" when none do."""
    def key(i: str) -> str:
        k = _VERSION.sub("", str(i).strip().strip("'\"").strip().casefold())
        return (k.lstrip("0") or "0") if k.isdigit() else k

    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(key(i), []).append(str(i))
    close = [g for g in groups.values() if len(g) > 1]
    if not close:
        return ""
    shown = "; ".join(" / ".join(f"{i!r} ({files.get(i, '?')})" for i in g) for g in close[:5])
    more = f" and {len(close) - 5} more" if len(close) > 5 else ""
    n = f"{len(close)} id is" if len(close) == 1 else f"{len(close)} ids are"
    return (f"; among them, {n} spelt differently in different files: {shown}{more}. Ids must match exactly (letter "
            f"case, version suffixes and leading zeros included): spell them the same way in every file")


def attach_sample_sheet(
    adata: ad.AnnData, sheet: pd.DataFrame, sheet_path: str, dropped_samples: Collection[str] = ()
) -> tuple[ad.AnnData, pd.DataFrame]:
    """Attach covariates to ``adata.obs``.

    Every sample of the matrices must be in the sheet; rows of the sheet for
    samples not in the matrices are reported in the returned dropped table.

    Parameters
    ----------
    adata
        The combined matrix (:func:`combine`), samples x genes.
    sheet
        The sample sheet, indexed by sample id.
    sheet_path
        The sheet's file, for messages and the dropped table.
    dropped_samples
        Samples of the matrices that combining them left out (already in the
        dropped table with their reason): their sheet rows are not listed
        again as "in no matrix".

    Raises
    ------
    InputError
        If matrix samples are missing from the sheet.
    """
    missing = adata.obs_names.difference(sheet.index, sort=False)
    if len(missing):
        as_genes = sheet.index.intersection(adata.var_names, sort=False)
        transposed = (
            f" The sheet's samples {preview(as_genes, 3)} are genes of the matrices instead: the matrix looks "
            f"transposed. Text matrices hold genes in rows and samples in columns; an .h5ad file holds samples "
            f"in obs and genes in var (transpose it, adata.T, and write it again)."
            if len(missing) == adata.n_obs and len(as_genes) else ""
        )
        raise InputError(
            f"Sample sheet '{sheet_path}' has no row for {len(missing)} of the {adata.n_obs} samples in the "
            f"matrices, e.g. {preview(missing)}. Add a row for each (column 'sample'), or remove those "
            f"samples from the matrices.{transposed or near_ids(missing, sheet.index)}"
        )
    extra = sheet.index.difference(adata.obs_names, sort=False).difference(pd.Index(list(dropped_samples)),
                                                                           sort=False)
    dropped = pd.DataFrame(
        [("sample", s, sheet_path, "in the sample sheet but in no matrix") for s in extra],
        columns=DROPPED_COLUMNS,
    )
    if len(extra):
        log.warning("sample sheet %s lists %s that %s in no matrix; ignored", sheet_path,
                    plural(len(extra), "sample"), "is" if len(extra) == 1 else "are")
    adata = adata.copy()
    adata.obs = sheet.loc[adata.obs_names].copy()
    adata.obs.index.name = None
    return adata, dropped


# --------------------------------------------------------------------------- missing values
MISSING_REASONS = {
    "drop_genes": "missing or infinite values (missing: drop_genes)",
    "impute_mean": "missing or infinite values replaced by the gene's mean over the training samples "
                   "(missing: impute_mean)",
}


def apply_missing_policy(
    adata: ad.AnnData, matrices: list[ad.AnnData], policy: str
) -> tuple[ad.AnnData, pd.DataFrame]:
    """Handle the missing (NaN) or infinite values of the combined matrix.

    Parameters
    ----------
    adata
        The combined matrix (:func:`combine`).
    matrices
        The matrices it was combined from (to name the file of each value).
    policy
        ``error``: any missing value is an error. ``drop_genes``: every gene
        with a missing value is left out and listed in the returned table
        (kind ``gene``). ``impute_mean``: the values are kept as NaN, to be
        replaced by the gene's mean over the *training* samples in the
        normalize step (the split is not known yet); every such gene is listed
        in the returned table with kind ``imputed``.

    Returns
    -------
    adata, table
        The matrix (float64, infinite values set to NaN) and the rows to add to
        the dropped table. ``adata.uns['missing']`` counts what was done.

    Raises
    ------
    InputError
        ``error`` with a missing value; a sample without any value (whatever the policy); ``drop_genes`` when no
        gene is left; ``impute_mean`` for a gene without any value.
    """
    from .io import MISSING_POLICIES

    if policy not in MISSING_POLICIES:
        raise InputError(f"Unknown missing-value policy {policy!r}; choose from {', '.join(MISSING_POLICIES)}.")
    X = np.array(adata.X, dtype=np.float64, copy=True)
    bad = ~np.isfinite(X)
    n_values = int(bad.sum())
    sources = [str(m.uns.get("source", f"matrix {k}")) for k, m in enumerate(matrices, start=1)]
    info = {"policy": policy, "n_values": n_values, "n_genes": 0}
    if n_values == 0:
        out = adata.copy()
        out.uns["missing"] = info
        return out, pd.DataFrame(columns=DROPPED_COLUMNS)
    genes = np.asarray(adata.var_names, dtype=object)
    samples = np.asarray(adata.obs_names, dtype=object)
    bad_genes = np.flatnonzero(bad.any(axis=0))
    info["n_genes"] = int(len(bad_genes))
    # the files each gene's missing values come from
    files: dict[str, list[str]] = {}
    for m, name in zip(matrices, sources):
        mbad = ~np.isfinite(np.asarray(m.X, dtype=np.float64))
        for g in np.asarray(m.var_names, dtype=object)[mbad.any(axis=0)]:
            files.setdefault(str(g), []).append(name)
    si, gi = np.nonzero(bad)
    order = np.lexsort((si, gi))[:3]
    examples = "; ".join(f"gene {genes[gi[k]]!r} in sample {samples[si[k]]!r}" for k in order)
    where = " + ".join(sources)
    empty = np.flatnonzero(bad.all(axis=1)) if X.shape[1] > 1 else np.array([], dtype=int)
    if len(empty):
        raise InputError(
            f"The matrices {where} have no value at all for {plural(len(empty), 'sample')}: "
            f"{preview(samples[empty])} (an empty column: a failed library, or a sample the file lists without "
            f"data). No missing-value policy can use such a sample; remove it from the matrix."
        )
    if policy == "error":
        raise InputError(
            f"The matrices {where} have {plural(n_values, 'missing or infinite value')} in "
            f"{plural(len(bad_genes), 'gene')}, e.g. "
            f"{examples}. Set 'missing' to drop_genes or impute_mean, or fix the files."
        )
    if policy == "drop_genes":
        if len(bad_genes) == adata.n_vars:
            raise InputError(
                f"Every one of the {adata.n_vars} genes of {where} has a missing or infinite value (e.g. "
                f"{examples}), so 'missing: drop_genes' leaves no gene. Use 'missing: impute_mean', or fix the "
                f"files."
            )
        keep = np.ones(adata.n_vars, dtype=bool)
        keep[bad_genes] = False
        out = ad.AnnData(X=np.ascontiguousarray(X[:, keep]), obs=adata.obs.copy(),
                         var=adata.var.iloc[keep].copy(), uns=dict(adata.uns))
        log.warning("missing: drop_genes: dropped %s with %s (e.g. %s); listed in the dropped table",
                    plural(len(bad_genes), "gene"), plural(n_values, "missing or infinite value"), examples)
        kind = "gene"
    else:
        empty = np.flatnonzero(bad.all(axis=0))
        if len(empty):
            g = str(genes[empty[0]])
            raise InputError(
                f"Gene {g!r} of {' + '.join(files.get(g, sources))} has no value in any of the {adata.n_obs} "
                f"samples, so 'missing: impute_mean' has no mean to impute it with"
                f"{f' ({len(empty)} such genes)' if len(empty) > 1 else ''}. Remove it from the matrix, or use "
                f"'missing: drop_genes'."
            )
        X[bad] = np.nan
        out = ad.AnnData(X=X, obs=adata.obs.copy(), var=adata.var.copy(), uns=dict(adata.uns))
        log.warning("missing: impute_mean: %s in %s (e.g. %s) will be replaced by each gene's mean over the "
                    "training samples in the normalize step", plural(n_values, "missing or infinite value"),
                    plural(len(bad_genes), "gene"), examples)
        kind = "imputed"
    out.uns["missing"] = info
    rows = [(kind, str(genes[j]), " + ".join(files.get(str(genes[j]), sources)), MISSING_REASONS[policy])
            for j in bad_genes]
    return out, pd.DataFrame(rows, columns=DROPPED_COLUMNS)
