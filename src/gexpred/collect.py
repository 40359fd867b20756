"""Combine expression matrices by sample id and attach the sample sheet.

Two matrices either hold different samples of the same genes (they are
*stacked*: genes kept are those in both) or the same samples measured on
different genes (they are *joined*: samples kept are those in both). Nothing
is dropped silently: :func:`combine` returns a table of every gene or sample
it leaves out, with the file and the reason.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd

from .errors import InputError, preview

log = logging.getLogger(__name__)

DROPPED_COLUMNS = ["kind", "id", "file", "reason"]


def combine(matrices: list[ad.AnnData]) -> tuple[ad.AnnData, pd.DataFrame]:
    """Combine matrices one after the other.

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
        Columns ``kind`` (``gene``/``sample``), ``id``, ``file``, ``reason``;
        ``file`` names every file the dropped id was read from (joined by
        ``" + "`` when it was in several).

    Raises
    ------
    InputError
        When two matrices share both samples and genes (it is ambiguous which
        values to keep) or share neither (nothing to combine on).
    """
    if not matrices:
        raise InputError("No matrices given: list at least one file under 'matrices' in the config.")
    acc = matrices[0]
    acc_name = str(acc.uns.get("source", "matrix 1"))
    # the files each kept gene / sample comes from, for the 'file' column of the dropped table
    gene_src: dict[str, list[str]] = {g: [acc_name] for g in acc.var_names}
    sample_src: dict[str, list[str]] = {s: [acc_name] for s in acc.obs_names}
    dropped: list[tuple[str, str, str, str]] = []
    for k, nxt in enumerate(matrices[1:], start=2):
        name = str(nxt.uns.get("source", f"matrix {k}"))
        shared_s = acc.obs_names.intersection(nxt.obs_names, sort=False)
        shared_g = acc.var_names.intersection(nxt.var_names, sort=False)
        if len(shared_s) and len(shared_g):
            raise InputError(
                f"Matrices {acc_name!r} and {name!r} share {len(shared_s)} samples (e.g. "
                f"{preview(shared_s, 3)}) and {len(shared_g)} genes (e.g. {preview(shared_g, 3)}), so it is "
                f"ambiguous which values to keep. Combine matrices that hold different samples of the same "
                f"genes, or the same samples on different genes; remove the overlap from one file."
            )
        if not len(shared_s) and not len(shared_g):
            raise InputError(
                f"Matrices {acc_name!r} and {name!r} share no samples and no genes, so they cannot be "
                f"combined. Check that sample ids (header) and gene ids (first column) are spelt the same way "
                f"in both files."
            )
        for j, prev in enumerate(matrices[: k - 1], start=1):
            # an earlier matrix may hold the same values although the combination so far lost them
            both_s = prev.obs_names.intersection(nxt.obs_names, sort=False)
            both_g = prev.var_names.intersection(nxt.var_names, sort=False)
            if len(both_s) and len(both_g):
                prev_name = str(prev.uns.get("source", f"matrix {j}"))
                raise InputError(
                    f"Matrices {prev_name!r} and {name!r} both hold values of {len(both_s)} samples (e.g. "
                    f"{preview(both_s, 3)}) on {len(both_g)} genes (e.g. {preview(both_g, 3)}), so it is ambiguous "
                    f"which values to keep. Remove the overlap from one file."
                )
        if len(shared_g):  # stack samples on the shared genes
            for g in acc.var_names.difference(shared_g, sort=False):
                dropped.append(("gene", g, " + ".join(gene_src.pop(g)), "not measured in every stacked matrix"))
            for g in nxt.var_names.difference(shared_g, sort=False):
                dropped.append(("gene", g, name, "not measured in every stacked matrix"))
            for g in shared_g:
                gene_src[g].append(name)
            sample_src.update({s: [name] for s in nxt.obs_names})
            acc = ad.concat([acc[:, shared_g], nxt[:, shared_g]], axis=0, join="inner")
            how = f"stacked samples on {len(shared_g)} shared genes"
        else:  # join genes on the shared samples
            for s in acc.obs_names.difference(shared_s, sort=False):
                dropped.append(("sample", s, " + ".join(sample_src.pop(s)), "not present in every joined matrix"))
            for s in nxt.obs_names.difference(shared_s, sort=False):
                dropped.append(("sample", s, name, "not present in every joined matrix"))
            for s in shared_s:
                sample_src[s].append(name)
            gene_src.update({g: [name] for g in nxt.var_names})
            acc = ad.concat([acc[shared_s, :], nxt[shared_s, :]], axis=1, join="inner")
            how = f"joined genes on {len(shared_s)} shared samples"
        log.info("combined %s with %s: %s", acc_name, name, how)
        acc_name = f"{acc_name} + {name}"
    acc = ad.AnnData(
        X=np.ascontiguousarray(np.asarray(acc.X, dtype=np.float64)),
        obs=pd.DataFrame(index=acc.obs_names.copy()),
        var=pd.DataFrame(index=acc.var_names.copy()),
    )
    dropped_df = pd.DataFrame(dropped, columns=DROPPED_COLUMNS)
    for kind in ("gene", "sample"):
        n = int((dropped_df["kind"] == kind).sum())
        if n:
            log.warning("dropped %d %ss while combining matrices (listed in the dropped table)", n, kind)
    return acc, dropped_df


def attach_sample_sheet(
    adata: ad.AnnData, sheet: pd.DataFrame, sheet_path: str
) -> tuple[ad.AnnData, pd.DataFrame]:
    """Attach covariates to ``adata.obs``.

    Every sample of the matrices must be in the sheet; rows of the sheet for
    samples not in the matrices are reported in the returned dropped table.

    Raises
    ------
    InputError
        If matrix samples are missing from the sheet.
    """
    missing = adata.obs_names.difference(sheet.index, sort=False)
    if len(missing):
        raise InputError(
            f"Sample sheet '{sheet_path}' has no row for {len(missing)} of the {adata.n_obs} samples in the "
            f"matrices, e.g. {preview(missing)}. Add a row for each (column 'sample'), or remove those "
            f"samples from the matrices."
        )
    extra = sheet.index.difference(adata.obs_names, sort=False)
    dropped = pd.DataFrame(
        [("sample", s, sheet_path, "in the sample sheet but in no matrix") for s in extra],
        columns=DROPPED_COLUMNS,
    )
    if len(extra):
        log.warning("sample sheet %s lists %d samples that are in no matrix; ignored", sheet_path, len(extra))
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
        ``error`` with a missing value; ``drop_genes`` when no gene is left;
        ``impute_mean`` for a gene without any value.
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
    if policy == "error":
        raise InputError(
            f"The matrices {where} have {n_values} missing or infinite values in {len(bad_genes)} genes, e.g. "
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
        log.warning("missing: drop_genes: dropped %d genes with %d missing or infinite values (e.g. %s); listed "
                    "in the dropped table", len(bad_genes), n_values, examples)
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
        log.warning("missing: impute_mean: %d missing or infinite values in %d genes (e.g. %s) will be replaced "
                    "by each gene's mean over the training samples in the normalize step", n_values,
                    len(bad_genes), examples)
        kind = "imputed"
    out.uns["missing"] = info
    rows = [(kind, str(genes[j]), " + ".join(files.get(str(genes[j]), sources)), MISSING_REASONS[policy])
            for j in bad_genes]
    return out, pd.DataFrame(rows, columns=DROPPED_COLUMNS)
