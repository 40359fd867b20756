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
