"""Read and write expression matrices and tables.

Every matrix becomes an :class:`anndata.AnnData` with samples as observations
(``obs``) and genes as variables (``var``), values as float64.

Supported inputs
----------------
* delimited text, genes x samples: ``.tsv``/``.txt``/``.tab`` (tab) or ``.csv``
  (comma), optionally gzipped (``.gz``). The first column holds the gene ids,
  the header the sample ids. R's ``write.table`` layout, whose header has one
  field fewer than the rows, is recognised too.
* parquet (``.parquet``/``.pq``), genes x samples: gene ids in the first
  string column or in a named index.
* AnnData (``.h5ad``): obs = samples, var = genes, as written by scanpy.

Every writer goes through :func:`atomic_output`: a file is written under a
temporary name in the same directory and renamed when complete, so an
interrupted run never leaves a truncated file behind.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io as _io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .errors import InputError, preview

TEXT_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".tab": "\t", ".csv": ","}
PARQUET_SUFFIXES = {".parquet", ".pq"}
H5AD_SUFFIXES = {".h5ad"}
SUPPORTED = "TSV/CSV (optionally .gz), parquet (.parquet/.pq) or AnnData (.h5ad)"

_GZIP_MAGIC = b"\x1f\x8b"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PARQUET_MAGIC = b"PAR1"


# --------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it
    was (absent, for a fresh run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], index: bool = False) -> None:
    """Write ``df`` as a tab-separated table, atomically, with stable float formatting."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, float_format="%.10g", na_rep="", lineterminator="\n")


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` to ``path``, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike[str]) -> None:
    """Write ``adata`` as ``.h5ad``, atomically."""
    with atomic_output(path) as tmp:
        adata.write_h5ad(tmp)


def read_h5ad(path: str | os.PathLike[str]) -> ad.AnnData:
    """Read an ``.h5ad`` written by gexpred (no user-facing checks)."""
    return ad.read_h5ad(path)


def read_table(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """Read a tab-separated table written by gexpred, ids kept as strings."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], **kwargs)


# --------------------------------------------------------------------------- format detection
def _suffixes(path: Path) -> tuple[str, bool]:
    """Return (format suffix, gzipped) for ``path``, lower-cased."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(
            f"{what} '{path}' does not exist. Check the path in your config (paths are relative "
            f"to the directory you run snakemake from)."
        )
    if path.is_dir():
        raise InputError(f"{what} '{path}' is a directory, not a file. Give the path of the file itself.")
    if path.stat().st_size == 0:
        raise InputError(f"{what} '{path}' is empty (0 bytes). Re-export the file and try again.")


# --------------------------------------------------------------------------- matrix readers
def read_matrix(path: str | os.PathLike[str]) -> ad.AnnData:
    """Read one expression matrix into an AnnData (obs = samples, var = genes).

    Parameters
    ----------
    path
        A genes x samples text or parquet table, or an ``.h5ad`` file.

    Returns
    -------
    anndata.AnnData
        float64 values; ``uns['source']`` holds the path.

    Raises
    ------
    InputError
        For a missing, empty or mislabelled file, ragged rows, missing or
        duplicated ids, non-numeric cells, NaN or infinite values. The message
        names the file and the offending gene, sample or line.
    """
    path = Path(path)
    _check_file(path, "Matrix")
    suffix, gz = _suffixes(path)
    head = _head(path)
    if gz and not head.startswith(_GZIP_MAGIC):
        raise InputError(
            f"Matrix '{path}' is named .gz but is not gzip-compressed. Rename it without '.gz' "
            f"or compress it with 'gzip'."
        )
    if suffix in H5AD_SUFFIXES and not gz:
        if not head.startswith(_HDF5_MAGIC):
            raise InputError(
                f"Matrix '{path}' is named .h5ad but is not an HDF5/AnnData file. Write it with "
                f"anndata's write_h5ad(), or give it the extension of its real format."
            )
        adata = _read_h5ad_matrix(path)
    elif suffix in PARQUET_SUFFIXES and not gz:
        if not head.startswith(_PARQUET_MAGIC):
            raise InputError(
                f"Matrix '{path}' is named {suffix} but is not a parquet file. Write it with "
                f"pandas' to_parquet(), or give it the extension of its real format."
            )
        adata = _read_parquet_matrix(path)
    elif suffix in TEXT_SUFFIXES:
        adata = _read_text_matrix(path, TEXT_SUFFIXES[suffix], gz)
    else:
        raise InputError(
            f"Matrix '{path}' has an unsupported extension '{''.join(path.suffixes) or '(none)'}'. "
            f"Supported: {SUPPORTED}."
        )
    validate_matrix(adata, path)
    adata.uns["source"] = str(path)
    return adata


def _open_text(path: Path, gz: bool) -> _io.TextIOBase:
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    return _io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _read_text_matrix(path: Path, sep: str, gz: bool) -> ad.AnnData:
    try:
        with _open_text(path, gz) as fh:
            reader = csv.reader(fh, delimiter=sep, quotechar='"')
            header = next(reader, None)
            first = next(reader, None)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"Matrix '{path}' could not be read ({exc}). Check that the file is complete.") from None
    except UnicodeDecodeError:
        raise InputError(
            f"Matrix '{path}' is not UTF-8 text. If it is a binary format, give it the matching "
            f"extension ({SUPPORTED}); otherwise re-save it as UTF-8."
        ) from None
    if header is None or not any(h.strip() for h in header):
        raise InputError(f"Matrix '{path}' is empty. It must have a header of sample ids and one row per gene.")
    if first is None:
        raise InputError(
            f"Matrix '{path}' has a header but no rows. It must have one row per gene: the gene id, "
            f"then one value per sample."
        )
    if len(header) == len(first) - 1:
        # R's write.table layout: no header field above the row names.
        samples = header
    elif len(header) == len(first):
        samples = header[1:]
    else:
        raise InputError(
            f"Matrix '{path}': the header has {len(header)} fields but line 2 has {len(first)}. "
            f"Each row must hold the gene id and then one value per sample named in the header. "
            f"Is the delimiter right? ('{'tab' if sep == chr(9) else sep}' is expected for this extension.)"
        )
    if len(samples) == 0:
        raise InputError(f"Matrix '{path}' has no sample columns: the header names only the gene id column.")
    samples = [s.strip() for s in samples]
    names = ["__gene__", *samples] if len(set(samples)) == len(samples) else None
    if names is None:
        _raise_duplicates(path, samples, "sample")
    compression = "gzip" if gz else None
    common = dict(
        sep=sep,
        header=None,
        skiprows=1,
        names=names,
        index_col=0,
        compression=compression,
        quotechar='"',
        na_values=["", "NA", "NaN", "nan", "N/A", "NULL", "null"],
        keep_default_na=False,
        encoding="utf-8-sig",
        engine="c",
    )
    try:
        try:
            df = pd.read_csv(path, dtype={n: np.float64 for n in samples} | {"__gene__": str}, **common)
        except ValueError as exc:
            if "Expected" in str(exc) and "fields" in str(exc):
                raise
            df = pd.read_csv(path, dtype=str, **common)
            _raise_non_numeric(path, df)
    except pd.errors.ParserError as exc:
        raise InputError(
            f"Matrix '{path}' has ragged rows: {_parser_detail(exc)}. Every row must have the gene id "
            f"and exactly {len(samples)} values (one per sample in the header)."
        ) from None
    except pd.errors.EmptyDataError:
        raise InputError(f"Matrix '{path}' has a header but no rows.") from None
    df.index = df.index.astype(str).str.strip()
    return _frame_to_anndata(df, path)


def _parser_detail(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[-1]
    # pandas: "Error tokenizing data. C error: Expected 5 fields in line 7, saw 6"
    if "C error:" in msg:
        msg = msg.split("C error:", 1)[1].strip()
    # pandas counts the skipped header, so its line numbers are file line numbers.
    return msg


def _raise_non_numeric(path: Path, df: pd.DataFrame) -> None:
    bad: list[str] = []
    for sample in df.columns:
        col = df[sample]
        converted = pd.to_numeric(col, errors="coerce")
        mask = converted.isna() & col.notna()
        for gene in col.index[mask.to_numpy()]:
            bad.append(f"gene {gene!r}, sample {sample!r}: {col[gene]!r}")
            if len(bad) >= 5:
                break
        if len(bad) >= 5:
            break
    if bad:
        raise InputError(
            f"Matrix '{path}' has non-numeric values, e.g. {'; '.join(bad)}. Expression values must be "
            f"numbers; mark missing values as empty or NA."
        )
    raise InputError(f"Matrix '{path}' could not be parsed as numbers. Check the delimiter and the values.")


def _read_parquet_matrix(path: Path) -> ad.AnnData:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(f"Matrix '{path}' could not be read as parquet ({exc}).") from None
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        genes = df.index.astype(str)
    else:
        if df.shape[1] == 0:
            raise InputError(f"Matrix '{path}' has no columns.")
        first = df.columns[0]
        if pd.api.types.is_numeric_dtype(df[first]):
            raise InputError(
                f"Matrix '{path}': the first column {first!r} holds numbers, not gene ids. Put the gene "
                f"ids in the first column (or the index) of the parquet table."
            )
        genes = df[first].astype(str)
        df = df.drop(columns=[first])
    df.index = pd.Index(genes).str.strip()
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        _raise_duplicates(path, list(df.columns), "sample")
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        _raise_non_numeric(path, df[non_numeric].astype(object))
    return _frame_to_anndata(df.astype(np.float64), path)


def _read_h5ad_matrix(path: Path) -> ad.AnnData:
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:
        raise InputError(f"Matrix '{path}' could not be read as AnnData ({type(exc).__name__}: {exc}).") from None
    X = adata.X
    if X is None:
        raise InputError(f"Matrix '{path}' has no expression values (.X is empty).")
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.number):
        raise InputError(f"Matrix '{path}': .X holds {X.dtype} values, not numbers.")
    out = ad.AnnData(
        X=X.astype(np.float64),
        obs=pd.DataFrame(index=pd.Index(adata.obs_names.astype(str), name=None)),
        var=pd.DataFrame(index=pd.Index(adata.var_names.astype(str), name=None)),
    )
    return out


def _frame_to_anndata(df: pd.DataFrame, path: Path) -> ad.AnnData:
    """Genes x samples frame -> AnnData (samples x genes)."""
    return ad.AnnData(
        X=np.ascontiguousarray(df.to_numpy(dtype=np.float64).T),
        obs=pd.DataFrame(index=pd.Index([str(c) for c in df.columns])),
        var=pd.DataFrame(index=pd.Index([str(g) for g in df.index])),
    )


def _raise_duplicates(path: Path, ids: list[str], kind: str) -> None:
    s = pd.Series(ids)
    dups = s[s.duplicated()].unique().tolist()
    where = "the header" if kind == "sample" else "the first column"
    raise InputError(
        f"Matrix '{path}' has duplicate {kind} ids in {where}: {preview(dups)}. Each {kind} must "
        f"appear once; remove or rename the duplicates (or aggregate them, e.g. average the probes of a "
        f"gene) before running gexpred."
    )


def validate_matrix(adata: ad.AnnData, path: str | os.PathLike[str]) -> None:
    """Check ids and values of a freshly read matrix.

    Raises
    ------
    InputError
        Empty ids, duplicated gene or sample ids, NaN or infinite values.
    """
    path = Path(path)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"Matrix '{path}' has {adata.n_vars} genes and {adata.n_obs} samples; it needs both.")
    genes = list(adata.var_names)
    samples = list(adata.obs_names)
    if any(g == "" or g.lower() == "nan" for g in genes):
        row = next(i for i, g in enumerate(genes) if g == "" or g.lower() == "nan")
        raise InputError(
            f"Matrix '{path}' has a row without a gene id (data row {row + 1}). Every row must start with "
            f"its gene id."
        )
    if any(s == "" for s in samples):
        raise InputError(f"Matrix '{path}' has a column without a sample id in its header.")
    if len(set(genes)) != len(genes):
        _raise_duplicates(path, genes, "gene")
    if len(set(samples)) != len(samples):
        _raise_duplicates(path, samples, "sample")
    X = np.asarray(adata.X)
    finite = np.isfinite(X)
    if not finite.all():
        si, gi = np.nonzero(~finite)
        examples = [
            f"gene {genes[g]!r}, sample {samples[s]!r}: {X[s, g]}" for s, g in list(zip(si, gi))[:5]
        ]
        n_genes = len(np.unique(gi))
        raise InputError(
            f"Matrix '{path}' has {len(si)} missing or infinite values in {n_genes} genes, e.g. "
            f"{'; '.join(examples)}. Impute or remove them before running gexpred (gexpred does not "
            f"guess missing expression values)."
        )


def read_gene_list(spec: str | list[str], what: str = "gene list") -> list[str]:
    """Return a list of gene ids from a list or a file with one id per line.

    Blank lines and lines starting with ``#`` are skipped; surrounding quotes
    are removed.
    """
    if isinstance(spec, list):
        return [str(g) for g in spec]
    path = Path(spec)
    _check_file(path, what.capitalize())
    with _open_text(path, path.suffix.lower() == ".gz") as fh:
        genes = []
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            genes.append(line.split("\t")[0].strip().strip('"').strip("'"))
    if not genes:
        raise InputError(f"{what.capitalize()} '{path}' lists no gene ids (one id per line is expected).")
    return genes


def read_sample_sheet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a sample sheet: a TSV (or CSV) with a ``sample`` column and covariates.

    Returns
    -------
    pandas.DataFrame
        Indexed by sample id (strings), one column per covariate.
    """
    path = Path(path)
    _check_file(path, "Sample sheet")
    suffix, gz = _suffixes(path)
    sep = "," if suffix == ".csv" else "\t"
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=["", "NA"],
                         compression="gzip" if gz else None)
    except pd.errors.ParserError as exc:
        raise InputError(f"Sample sheet '{path}' has ragged rows: {_parser_detail(exc)}.") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"Sample sheet '{path}' is empty.") from None
    if "sample" not in df.columns:
        raise InputError(
            f"Sample sheet '{path}' has no 'sample' column (columns: {preview(df.columns)}). Name the "
            f"column of sample ids 'sample'."
        )
    df["sample"] = df["sample"].astype(str).str.strip()
    dups = df["sample"][df["sample"].duplicated()].unique().tolist()
    if dups:
        raise InputError(f"Sample sheet '{path}' lists samples more than once: {preview(dups)}.")
    df = df.set_index("sample")
    # numeric-looking covariates become numbers, the rest stay strings (categories)
    for col in df.columns:
        converted = pd.to_numeric(df[col], errors="coerce")
        if converted.notna().sum() == df[col].notna().sum():
            df[col] = converted
    return df
