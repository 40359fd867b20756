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

Text matrices are first checked in one streaming pass (complete gzip stream,
UTF-8, no NUL byte), then parsed by pyarrow (fast, correctly rounded floats).
When pyarrow rejects a file, pandas' parser (``float_precision='round_trip'``)
reads it again, either to accept a layout only it handles or to name the
offending line, gene, sample or value. Ids are trimmed of surrounding spaces.

Every writer goes through :func:`atomic_output`: a file is written under a
temporary name in the same directory and renamed when complete, so an
interrupted run never leaves a truncated file behind.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io as _io
import json
import logging
import os
import re
import secrets
import warnings
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import InputError, plural, preview

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # anndata is imported where .h5ad files are read or written: ~0.3 s a process otherwise
    import anndata as ad

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
    if path.is_dir() or not path.name:
        raise InputError(f"Output path '{path}' is a directory. Give a file path (for example '{path}/out.tsv').")
    tmp = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # the name is known before the file exists, so that a SIGTERM (SystemExit, gexpred.cli.exit_on_sigterm)
            # arriving while it is created, which mkstemp would leave behind unnamed, is removed below too
            for tmp in temporary_names(path, ".part"):
                try:
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                    break
                except FileExistsError:
                    tmp = None  # someone else's: never removed
        except OSError as e:
            raise InputError(f"Cannot write '{path}': {e.strerror or e}. Choose a folder you can write to.") from None
        # from here on, any exception (also SystemExit from a SIGTERM, gexpred.cli.exit_on_sigterm) removes it
        tmp_path = Path(tmp)
        yield tmp_path
        # created readable by its owner only; give it the permissions of a normal file
        # (colleagues on a shared cluster read the results)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def temporary_names(path: Path, suffix: str = "", tries: int = 100) -> Iterator[Path]:
    """Random hidden names beside ``path`` (``.name.<hex><suffix>``) for a temporary file or directory, to be
    assigned *before* creating it (``for tmp in temporary_names(...)``) so that clean-up code knows it whenever an
    exception arrives; ``OSError`` after ``tries`` names that were all taken."""
    for _ in range(tries):
        yield path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
    raise OSError(f"no free temporary name beside {path}")


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], index: bool = False) -> None:
    """Write ``df`` as a tab-separated table, atomically, with stable float formatting."""
    with atomic_output(path) as tmp:
        # float_format=None: the shortest repr that round-trips, so tables hold the exact float64 values
        df.to_csv(tmp, sep="\t", index=index, float_format=None, na_rep="", lineterminator="\n")


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` as Parquet, atomically: exact float64 values, compressed, and ~50x faster than a
    TSV of shortest round-trip floats, for the tables of genome-wide runs (millions of rows; read them
    with ``pandas.read_parquet`` or R's ``arrow::read_parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema))


def parquet_options(schema: Any) -> dict[str, Any]:
    """Parquet writer options for gexpred's tables: dictionary encoding and zstd for the text columns (target and
    term names repeat), neither for the numbers (random float64 do not compress, and trying cost the genome-wide
    merge ~40 % of its writing time)."""
    import pyarrow as pa

    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return {"compression": {f.name: "zstd" if f.name in text else "none" for f in schema}, "use_dictionary": text}


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


def _check_collected(path: str | os.PathLike[str]) -> None:
    """Refuse, in one paragraph, a file that is not an ``.h5ad`` (HDF5) where gexpred's collected data is expected."""
    path = Path(path)
    _check_file(path, "Collected data")
    with open(path, "rb") as fh:
        if fh.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
            raise InputError(
                f"'{path}' is not an .h5ad file: this option takes the data `gexpred collect` writes "
                f"(results/data/collected.h5ad, or normalized.h5ad after `gexpred normalize`). Expression "
                f"matrices (TSV/CSV, parquet, .h5ad) go to `gexpred collect --matrix`."
            )


def read_h5ad(path: str | os.PathLike[str]) -> ad.AnnData:
    """Read an ``.h5ad`` written by gexpred (refusing, in one paragraph, a file that is not one)."""
    import anndata as ad

    _check_collected(path)
    return ad.read_h5ad(path)


def read_h5ad_columns(
    path: str | os.PathLike[str], genes: list[str] | str | None = None, block_bytes: int = 64 * 2**20
) -> tuple[np.ndarray | None, list[str], list[str], list[str]]:
    """Some genes' values of an ``.h5ad`` written by gexpred, without anndata.

    The genome-wide jobs need a few thousand columns of a matrix of every gene:
    reading it with h5py, in blocks of samples, keeps their memory to the columns
    they use plus one block, and spares the ~0.3 s of importing anndata.

    Parameters
    ----------
    path
        An ``.h5ad`` file written by gexpred (dense ``X``, samples x genes).
    genes
        Genes (``var`` names) to read, in this order; ``"all"`` reads every gene in the
        file's order; None reads no values.
    block_bytes
        Bytes of ``X`` read at a time.

    Returns
    -------
    values, samples, all_genes, sources
        ``values`` is samples x ``genes`` float64 (None when ``genes`` is None);
        ``samples`` and ``all_genes`` are the ``obs`` and ``var`` names; ``sources``
        is ``uns["sources"]`` (the matrices the data came from; ``[path]`` if absent).
        A file of another layout (sparse ``X``) is read with anndata instead.
    """
    import h5py

    _check_collected(path)
    with h5py.File(path, "r") as f:
        X = f.get("X")
        if not isinstance(X, h5py.Dataset) or X.ndim != 2:
            return _read_h5ad_columns_anndata(path, genes)

        def names(group: str) -> list[str]:
            g = f[group]
            return list(g[g.attrs.get("_index", "_index")].asstr()[:])

        samples, all_genes = names("obs"), names("var")
        src = f.get("uns/sources")
        sources = list(src.asstr()[:]) if isinstance(src, h5py.Dataset) else [str(path)]
        if genes is None:
            return None, samples, all_genes, sources
        if isinstance(genes, str):
            if genes != "all":
                raise ValueError(f"read_h5ad_columns: genes must be a list, 'all' or None, got {genes!r}")
            cols = slice(None)
            width = X.shape[1]
        else:
            index = {g: j for j, g in enumerate(all_genes)}
            cols = np.fromiter((index[g] for g in genes), dtype=np.intp, count=len(genes))
            width = cols.size
        out = np.empty((X.shape[0], width), dtype=np.float64)
        step = max(1, int(block_bytes) // max(1, X.shape[1] * X.dtype.itemsize))
        for a in range(0, X.shape[0], step):
            out[a : a + step] = X[a : a + step][:, cols]
    return out, samples, all_genes, sources


def read_h5ad_scalars(path: str | os.PathLike[str], keys: list[str]) -> dict[str, Any]:
    """Scalar entries of ``uns`` of a gexpred ``.h5ad`` (numbers and strings), without anndata or the matrix.

    Keys that are absent, or not scalars, are left out.
    """
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        for key in keys:
            d = f.get(f"uns/{key}")
            if isinstance(d, h5py.Dataset) and d.shape == ():
                v = d[()]
                out[key] = v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v
    return out


def _read_h5ad_columns_anndata(path: str | os.PathLike[str], genes: list[str] | None):
    adata = read_h5ad(path)
    samples, all_genes = list(map(str, adata.obs_names)), list(map(str, adata.var_names))
    sources = list(adata.uns.get("sources", [str(path)]))
    if genes is None:
        return None, samples, all_genes, sources
    X = adata.X if isinstance(genes, str) else adata[:, list(genes)].X
    X = X.toarray() if hasattr(X, "toarray") else X
    return np.asarray(X, dtype=np.float64), samples, all_genes, sources


def read_table(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """Read a tab-separated table written by gexpred; floats parsed exactly (round trip)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], float_precision="round_trip",
                       **kwargs)


# --------------------------------------------------------------------------- format detection
def _suffixes(path: Path) -> tuple[str, bool]:
    """Return (format suffix, gzipped) for ``path``, lower-cased."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def _head(path: Path, what: str, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise InputError(
            f"{what} '{path}' cannot be opened ({exc.strerror or exc}). Check that it exists and that you "
            f"may read it."
        ) from None


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(
            f"{what} '{path}' does not exist. Check the path (in a config, paths are relative to the "
            f"directory you run snakemake from; on the command line, to the current directory)."
        )
    if path.is_dir():
        raise InputError(f"{what} '{path}' is a directory, not a file. Give the path of the file itself.")
    if path.stat().st_size == 0:
        raise InputError(f"{what} '{path}' is empty (0 bytes). Re-export the file and try again.")


def _check_gzip(path: Path, what: str, gz: bool, head: bytes) -> None:
    if gz and not head.startswith(_GZIP_MAGIC):
        raise InputError(
            f"{what} '{path}' is named .gz but is not gzip-compressed. Rename it without '.gz' "
            f"or compress it with 'gzip'."
        )


def _delimiter_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma"}.get(sep, repr(sep))


# --------------------------------------------------------------------------- text checks
_SCAN_CHUNK = 1 << 20


def _scan_text(path: Path, gz: bool, what: str) -> None:
    """Check that the whole file decompresses, is UTF-8 and holds no NUL byte.

    One streaming pass (constant memory), so the parsers that follow never meet
    a decoding or decompression error half way through a large file.
    """
    if not gz:
        head = _head(path, what, 4)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(
                f"{what} '{path}' is UTF-16 text (as Excel's 'Unicode text' export writes). Re-save it as "
                f"UTF-8 (e.g. 'iconv -f UTF-16 -t UTF-8') and try again."
            )
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
            while chunk := fh.read(_SCAN_CHUNK):
                nul = chunk.find(b"\x00")
                if nul >= 0:
                    if line == 1 and nul < 2 and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
                        raise InputError(
                            f"{what} '{path}' is UTF-16 text. Re-save it as UTF-8 (e.g. 'iconv -f UTF-16 "
                            f"-t UTF-8') and try again."
                        )
                    nul_line = line + chunk.count(b"\n", 0, nul)
                    raise InputError(
                        f"{what} '{path}' contains a NUL byte on line {nul_line}, so it is not a text table. "
                        f"{_binary_hint(what)}re-export it as plain UTF-8 text."
                    )
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad = line + chunk.count(b"\n", 0, max(0, exc.start - pending))
                    raise InputError(
                        f"{what} '{path}' is not UTF-8 text (undecodable byte on line {bad}). "
                        f"{_binary_hint(what)}re-save it as UTF-8 (e.g. 'iconv -f LATIN1 -t UTF-8')."
                    ) from None
                line += chunk.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise InputError(
                    f"{what} '{path}' is not UTF-8 text (it ends in the middle of a character on line {line}). "
                    f"Check that the file is complete, or re-save it as UTF-8."
                ) from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        kind = "gzip stream" if gz else "file"
        raise InputError(
            f"{what} '{path}': the {kind} could not be read to the end ({exc}). The file is probably "
            f"truncated or corrupt; copy or download it again."
        ) from None


def _shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message, with '...' where it was cut."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _binary_hint(what: str) -> str:
    if what == "Matrix":
        return f"If it is a binary format, give it the matching extension ({SUPPORTED}); otherwise "
    return "It must be a plain text table; "


def _open_text(path: Path, gz: bool) -> _io.TextIOBase:
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    return _io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _rows(path: Path, sep: str, gz: bool, what: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line number, fields) for every non-blank row, parsed like a CSV file."""
    for start, _end, row in _rows_with_end(path, sep, gz, what):
        yield start, row


def _rows_with_end(path: Path, sep: str, gz: bool, what: str) -> Iterator[tuple[int, int, list[str]]]:
    """Yield (first line number, last line number, fields) for every non-blank row."""
    prev = 0
    try:
        with _open_text(path, gz) as fh:
            reader = csv.reader(fh, delimiter=sep, quotechar='"')
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if row:
                    yield start, prev, row
    except csv.Error as exc:
        raise InputError(
            f"{what} '{path}' could not be parsed near line {prev + 1} ({exc}). Check that line for an "
            f"opening quote (\") that is never closed."
        ) from None


# --------------------------------------------------------------------------- matrix readers
MISSING_POLICIES = ("error", "drop_genes", "impute_mean")


def read_matrix(path: str | os.PathLike[str], missing: str = "error") -> ad.AnnData:
    """Read one expression matrix into an AnnData (obs = samples, var = genes).

    Parameters
    ----------
    path
        A genes x samples text or parquet table, or an ``.h5ad`` file.
    missing
        ``"error"`` (default): a missing (empty, NA, NaN) or infinite value is
        an error. Any other policy of :data:`MISSING_POLICIES` lets them
        through, every one of them as NaN; :mod:`gexpred.collect` then drops
        or marks them.

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
    if missing not in MISSING_POLICIES:
        raise InputError(f"Unknown missing-value policy {missing!r}; choose from {', '.join(MISSING_POLICIES)}.")
    path = Path(path)
    _check_file(path, "Matrix")
    suffix, gz = _suffixes(path)
    head = _head(path, "Matrix")
    _check_gzip(path, "Matrix", gz, head)
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
    validate_matrix(adata, path, allow_missing=missing != "error")
    adata.uns["source"] = str(path)
    return adata


TEXT_NA = ["", "NA", "NaN", "nan", "N/A", "NULL", "null"]


def _read_text_matrix(path: Path, sep: str, gz: bool) -> ad.AnnData:
    _scan_text(path, gz, "Matrix")
    rows = _rows_with_end(path, sep, gz, "Matrix")
    try:
        header_start, header_end, header = next(rows, (0, 0, None))
        first_line, _, first = next(rows, (0, 0, None))
    finally:
        rows.close()
    if header is None:
        raise InputError(
            f"Matrix '{path}' is empty (only blank lines). It must have a header of sample ids and one row per gene."
        )
    if not any(h.strip() for h in header):
        raise InputError(
            f"Matrix '{path}' has no sample ids: every field of its header (line 1) is empty. The first line must "
            f"name the samples, one per column."
        )
    if first is None:
        raise InputError(
            f"Matrix '{path}' has a header but no rows. It must have one row per gene: the gene id, "
            f"then one value per sample."
        )
    r_layout = len(header) == len(first) - 1
    if header[0].lstrip().startswith("#") and len(header) != len(first) and (len(header) == 1 or not r_layout):
        # a comment line above the header ('# exported by ...'), taken for the header: say so, not "1 field"
        raise InputError(
            f"Matrix '{path}' starts with a comment line (line {header_start}: {_shorten(sep.join(header))!r}). "
            f"Comment lines are not supported: the first non-blank line must be the header of sample ids. Delete "
            f"the lines starting with '#' above the header (e.g. grep -v '^#' old.tsv > new.tsv)."
        )
    if r_layout:
        # R's write.table layout: no header field above the row names.
        samples = header
    elif len(header) == len(first):
        samples = header[1:]
    else:
        raise InputError(
            f"Matrix '{path}': the header has {plural(len(header), 'field')} but line {first_line} (gene "
            f"{first[0].strip()!r}) has {len(first)}. Each row must hold the gene id and then one value per "
            f"sample named in the header. {_delimiter_hint(header, sep)}"
        )
    if len(samples) == 0:
        raise InputError(
            f"Matrix '{path}' has no sample columns: the header names only the gene id column. "
            f"{_delimiter_hint(header, sep)}"
        )
    samples = [s.strip() for s in samples]
    if len(set(samples)) != len(samples) and "" not in samples:  # empty ids: validate_matrix names the column
        _raise_duplicates(path, samples, "sample", "the header")
    n = len(samples)
    read = None
    if header_start == header_end and not any("\n" in h or "\r" in h for h in header):
        # pyarrow skips physical lines: safe only for a one-line header (after any blank lines).
        # A block must hold whole rows: size it from the widest of the first two lines, with a wide margin.
        width = max(len(sep.join(header).encode()), len(sep.join(first).encode()))
        read = _read_values_arrow(path, sep, gz, n, skip=header_end, block_size=max(1 << 20, 16 * width))
    if read is None:  # a problem to diagnose, or a layout only pandas handles
        read = _read_values_pandas(path, sep, gz, samples)
    genes, X = read
    if X.shape != (n, len(genes)):  # never expected: both readers return one value per sample and gene
        _raise_ragged(path, sep, gz, n, "the rows do not line up with the header")
    if r_layout and first[-1].strip() == "" and np.isnan(X[-1]).all():
        _raise_trailing_delimiter(path, sep, header, first, first_line)
    missing = [g is None or (isinstance(g, float) and np.isnan(g)) for g in genes]
    if any(missing):
        i = missing.index(True)
        after = f", the row after gene {str(genes[i - 1]).strip()!r}" if i else ", the first row"
        raise InputError(
            f"Matrix '{path}' has a row without a gene id (data row {i + 1}{after}; the first field is empty "
            f"or NA). Every row must start with its gene id."
        )
    genes = [str(g).strip() for g in genes]
    _check_gene_ids_not_numbers(path, genes)
    return _make_anndata(X, samples, genes)


def _raise_trailing_delimiter(path: Path, sep: str, header: list[str], first: list[str], first_line: int) -> None:
    """Refuse rows that each end in a delimiter the header lacks: read as R's layout (a header without the gene
    id column's name), the header's first name would become a sample holding the first sample's values, every
    sample the next one's, and the last sample would be empty."""
    name = _delimiter_name(sep)
    strip = "sed 's/\\t\\r*$//'" if sep == "\t" else "sed 's/,\\r*$//'"
    raise InputError(
        f"Matrix '{path}': every data row ends with an empty field that the header does not have (line "
        f"{first_line}, gene {first[0].strip()!r}, has {plural(len(first), 'field')}, the header {len(header)}, "
        f"the "
        f"last one empty): a trailing {name} at the end of each data line. Read as it stands, header "
        f"{header[0].strip()!r} would name the first sample's values, each sample's name the next one's values, "
        f"and the last sample would be empty. "
        f"Remove the trailing {name} from every data line (e.g. with {strip}) and try again."
    )


_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _check_gene_ids_not_numbers(path: Path, genes: list[str]) -> None:
    """Refuse a first column of measurements: the gene id column is missing.

    Integer ids (Entrez) are ids; but when every id parses as a number and some
    are not integers (``1.25``, ``3e-4``), the first column holds values.
    """
    if len(genes) < 2 or all(_INTEGER.match(g) for g in genes):
        return
    for g in genes:
        try:
            float(g)
        except ValueError:
            return
    examples = [g for g in genes if not _INTEGER.match(g)][:3]
    raise InputError(
        f"Matrix '{path}': the first column holds numbers (e.g. {preview(examples)}), not gene ids, so the gene id "
        f"column seems to be missing. The first column must hold the gene ids (e.g. write the table with its "
        f"row names, pandas' to_csv(index=True) or R's write.table(row.names=TRUE))."
    )


def _read_values_arrow(
    path: Path, sep: str, gz: bool, n: int, skip: int = 1, block_size: int = 1 << 20
) -> tuple[list[Any], np.ndarray] | None:
    """Fast path: pyarrow's CSV reader (multi-threaded, correctly rounded floats).

    ``skip`` is the number of physical lines up to and including the header.
    Returns (gene ids, samples x genes values), gene ids ``None`` where missing,
    or ``None`` when pyarrow rejects the file; the pandas path then reads it or
    says precisely what is wrong.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = ["gene", *(f"v{i}" for i in range(n))]
    try:
        with pa.input_stream(str(path), compression="gzip" if gz else None) as stream:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(skip_rows=skip, column_names=names, block_size=block_size),
                parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"', double_quote=True,
                                                 newlines_in_values=True, ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={"gene": pa.string(), **{c: pa.float64() for c in names[1:]}},
                    null_values=TEXT_NA,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
    except (pa.ArrowException, OSError, EOFError, zlib.error, UnicodeDecodeError):
        return None
    if table.num_rows == 0:
        return None
    X = np.empty((n, table.num_rows), dtype=np.float64)
    for j in range(n):
        X[j] = table.column(j + 1).to_numpy(zero_copy_only=False)
    return table.column(0).to_pylist(), X


def _read_values_pandas(path: Path, sep: str, gz: bool, samples: list[str]) -> tuple[list[Any], np.ndarray]:
    """Slow path: pandas' C parser (exact floats), with a precise error for every problem."""
    n = len(samples)
    common = dict(
        sep=sep,
        header=0,  # the first non-blank row, tokenized like the others (skiprows=1 mis-skips some headers)
        names=list(range(n + 1)),  # replace the header's names: unique, and one more for R's layout
        index_col=0,
        compression="gzip" if gz else None,
        quotechar='"',
        na_values=TEXT_NA,
        keep_default_na=False,
        encoding="utf-8-sig",
        engine="c",
        float_precision="round_trip",  # the default parser is off by an ulp for ~1/3 of values
    )
    try:
        try:
            df = pd.read_csv(path, dtype={0: str} | {i: np.float64 for i in range(1, n + 1)}, **common)
        except pd.errors.ParserError:
            raise
        except ValueError:
            # every column named: pandas' dtype=str leaves the index column to type inference ('false' -> False)
            df = _coerce_numeric(path, pd.read_csv(path, dtype=dict.fromkeys(range(n + 1), str), **common), samples)
    except pd.errors.ParserError as exc:
        _raise_ragged(path, sep, gz, n, str(exc))
        raise AssertionError("unreachable") from None  # _raise_ragged raises when given a message
    except pd.errors.EmptyDataError:
        raise InputError(f"Matrix '{path}' has a header but no rows.") from None
    except (UnicodeDecodeError, OSError, EOFError, zlib.error) as exc:  # changed under our feet
        raise InputError(f"Matrix '{path}' could not be read ({exc}). Check that the file is complete.") from None
    if df.shape[1] != n or isinstance(df.index, pd.MultiIndex):
        # pandas took a first row with one field too many as an implicit index column: it splits
        # lines differently from the header (e.g. a lone carriage return in an id).
        _raise_ragged(path, sep, gz, n, "the rows do not line up with the header (a lone carriage return in an id?)")
    values = df.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        # pandas pads short rows with NaN: report them as ragged rather than as missing values.
        _raise_ragged(path, sep, gz, n, None)
    genes = [None if pd.isna(g) else g for g in df.index]
    return genes, np.ascontiguousarray(values.T)


def _delimiter_hint(header: list[str], sep: str) -> str:
    text = sep.join(header)
    hint = f"Is the delimiter right? ({_delimiter_name(sep)} is expected for this extension"
    for other, ext in (("\t", ".tsv"), (",", ".csv")):
        if other != sep and other in text:
            return f"{hint}, but the header holds {_delimiter_name(other)}s: name the file {ext} instead.)"
    if ";" in text:
        return f"{hint}, but the header holds semicolons: re-save the file tab- or comma-separated.)"
    return hint + ".)"


def _raise_ragged(path: Path, sep: str, gz: bool, n: int, pandas_msg: str | None) -> None:
    """Find the first row without ``n + 1`` fields and raise; return if there is none."""
    rows = _rows(path, sep, gz, "Matrix")
    next(rows, None)  # header
    last: tuple[int, list[str]] | None = None
    for line, row in rows:
        last = (line, row)
        if len(row) != n + 1:
            rows.close()
            what = "too many" if len(row) > n + 1 else "too few"
            raise InputError(
                f"Matrix '{path}' has ragged rows: line {line} (gene {row[0].strip()!r}) has "
                f"{plural(len(row), 'field')}, "
                f"{what} for the {plural(n, 'sample')} in the header. Every row must have the gene id and exactly "
                f"{plural(n, 'value')} (one per sample in the header); fix that row, or check the delimiter "
                f"({_delimiter_name(sep)} is expected for this extension)."
            )
    if pandas_msg is None:
        return
    if "EOF inside string" in pandas_msg and last is not None:
        raise InputError(
            f"Matrix '{path}' has an opening quote (\") that is never closed, on line {last[0]} (gene "
            f"{last[1][0].strip()!r}). Remove the stray quote or close it."
        )
    raise InputError(
        f"Matrix '{path}' could not be parsed: {_parser_detail(pandas_msg)}. Every row must have the gene id "
        f"and exactly {plural(n, 'value')} (one per sample in the header)."
    )


def _parser_detail(exc: Exception | str) -> str:
    msg = str(exc).strip().splitlines()[-1]
    # pandas: "Error tokenizing data. C error: Expected 5 fields in line 7, saw 6"
    if "C error:" in msg:
        msg = msg.split("C error:", 1)[1].strip()
    return msg


def _coerce_numeric(path: Path, df: pd.DataFrame, samples: list[str]) -> pd.DataFrame:
    """Convert a frame of strings to float64 or raise naming the first non-numeric cells."""
    converted = df.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    bad = converted.isna().to_numpy() & df.notna().to_numpy()
    if not bad.any():
        return converted
    gi, si = np.nonzero(bad)
    order = np.lexsort((si, gi))[:5]  # in file order: row by row
    examples = [
        f"gene {str(df.index[gi[k]]).strip()!r}, sample {str(samples[si[k]])!r}: {df.iat[gi[k], si[k]]!r}"
        for k in order
    ]
    raise InputError(
        f"Matrix '{path}' has {plural(len(gi), 'non-numeric value')}, e.g. {'; '.join(examples)}. Expression values "
        f"must "
        f"be plain numbers with a '.' decimal point; mark missing values as empty or NA."
    )


def _read_parquet_matrix(path: Path) -> ad.AnnData:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InputError(
            f"Matrix '{path}' could not be read as parquet ({exc}). The file is probably truncated or corrupt; "
            f"write it again with pandas' to_parquet()."
        ) from None
    integer_index = pd.api.types.is_integer_dtype(df.index.dtype)
    row_numbers = integer_index and np.array_equal(np.asarray(df.index), np.arange(len(df)))
    index_is_ids = df.index.name is not None or not integer_index
    first = df.columns[0] if df.shape[1] else None
    first_numeric = first is not None and (pd.api.types.is_numeric_dtype(df[first])
                                           or pd.api.types.is_bool_dtype(df[first]))
    if not index_is_ids and integer_index and not row_numbers and (first is None or first_numeric):
        if first is not None and _distinct_integers(df[first]) and df.shape[1] > 1:
            # a filtered frame (df[mask]) keeps its row numbers as an unnamed integer index: which of the two
            # holds the gene ids cannot be told, and taking the wrong one turns the ids into a sample's values
            raise InputError(
                f"Matrix '{path}' has an unnamed index of integers ({preview(df.index, 3)}) and a first column "
                f"{str(first)!r} of distinct integers ({preview(df[first], 3)}): either could be the gene ids (an "
                f"index of row numbers left by filtering a table, then to_parquet(), looks like Entrez ids). Name "
                f"the column of gene ids: pandas' df.set_index({str(first)!r}) if the ids are that column, or "
                f"df.rename_axis('gene') if they are the index, then to_parquet() again."
            )
        index_is_ids = True  # integer ids (Entrez) in an unnamed index, the first column a sample's values
    if index_is_ids:
        genes = pd.Series(df.index, dtype=object)
    else:
        if df.shape[1] == 0:
            raise InputError(f"Matrix '{path}' has no columns. It must hold a column of gene ids and one per sample.")
        integer_ids = first_numeric and _distinct_integers(df[first]) and df.shape[1] > 1
        if first_numeric and not integer_ids:
            raise InputError(
                f"Matrix '{path}': the first column {str(first)!r} holds numbers that are not distinct integers, "
                f"so they are values, not gene ids, and the index holds row numbers only: the gene ids are "
                f"missing. Write the table with the gene ids as its first column or as its index (pandas: "
                f"df.index = gene_ids before to_parquet())."
            )
        genes = pd.Series(df[first].to_numpy(dtype=object))  # ids as text; integer ids (Entrez) as in TSV
        df = df.drop(columns=[first])
    missing = genes.isna().to_numpy() | np.array([str(g).strip() == "" for g in genes], dtype=bool)
    if missing.any():
        i = int(np.argmax(missing))
        raise InputError(
            f"Matrix '{path}' has a row without a gene id (row {i + 1} of the table; the id is empty or null). "
            f"Every row must have its gene id."
        )
    df.index = pd.Index([str(g).strip() for g in genes])
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        _raise_duplicates(path, list(df.columns), "sample", "the column names")
    boolean = [c for c in df.columns if pd.api.types.is_bool_dtype(df[c])]
    if boolean:
        raise InputError(
            f"Matrix '{path}': the columns of samples {preview(boolean)} hold true/false values, not "
            f"expression values. Store numbers in every sample column."
        )
    non_numeric = [i for i, c in enumerate(df.columns) if not pd.api.types.is_numeric_dtype(df.iloc[:, i])]
    if non_numeric:
        cols = list(df.columns)
        coerced = _coerce_numeric(path, df.iloc[:, non_numeric].astype(object), [cols[i] for i in non_numeric])
        for j, i in enumerate(non_numeric):
            df.isetitem(i, coerced.iloc[:, j].to_numpy())
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Matrix '{path}' holds values that are not real numbers ({exc}).") from None
    return _frame_to_anndata(pd.DataFrame(values, index=df.index, columns=df.columns), path)


def _distinct_integers(column: pd.Series) -> bool:
    """Whether a parquet column could be integer gene ids (Entrez): integers (not booleans), each once."""
    return (pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column)
            and column.is_unique)


@contextlib.contextmanager
def _quiet_duplicates() -> Iterator[None]:
    """Silence anndata's 'names are not unique' warning: validate_matrix reports duplicates itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* names are not unique")
        yield


def _read_h5ad_matrix(path: Path) -> ad.AnnData:
    import anndata as ad

    try:
        with _quiet_duplicates():
            adata = ad.read_h5ad(path)
    except Exception as exc:
        raise InputError(
            f"Matrix '{path}' could not be read as AnnData ({type(exc).__name__}: {exc}). It is an HDF5 file but "
            f"not one written by anndata, or it is truncated; write it with anndata's write_h5ad()."
        ) from None
    X = adata.X
    if X is None:
        raise InputError(
            f"Matrix '{path}' has no expression values (.X is empty). Store the expression matrix in .X "
            f"(samples x genes)."
        )
    _log_unread_parts(adata, path)
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X)
    if not (np.issubdtype(X.dtype, np.number) and not np.issubdtype(X.dtype, np.complexfloating)):
        raise InputError(
            f"Matrix '{path}': .X holds {X.dtype} values, not real numbers. Store the expression values as "
            f"numbers in .X."
        )
    return _make_anndata(X, [str(s).strip() for s in adata.obs_names], [str(g).strip() for g in adata.var_names])


def _log_unread_parts(adata: ad.AnnData, path: Path) -> None:
    """Say what of an ``.h5ad`` matrix is not read: only ``.X`` is. ``.raw`` with genes that ``.X`` lacks (scanpy
    keeps every gene there and the highly variable ones in ``.X``) is a warning: those genes are in no output and
    in no dropped table. ``layers`` (e.g. raw ``counts`` beside normalized ``.X``) and ``obs`` columns are logged."""
    raw = getattr(adata, "raw", None)
    if raw is not None:
        extra = raw.var_names.difference(adata.var_names, sort=False)
        if len(extra):
            log.warning("Matrix '%s': only .X (%s) is read; its .raw holds %s more (e.g. %s), which are not read. "
                        "If they are wanted, write an .h5ad whose .X holds them (adata.raw.to_adata()).",
                        path, plural(adata.n_vars, "gene"), plural(len(extra), "gene"), preview(extra, 3))
    if len(adata.layers):
        log.info("Matrix '%s': the values are .X; its layers %s are not read (to use a layer, e.g. raw counts, "
                 "write it as .X)", path, preview(list(adata.layers)))
    if adata.obs.shape[1]:
        log.info("Matrix '%s': its obs columns %s are not read as covariates unless the file is also the sample "
                 "sheet", path, preview(list(adata.obs.columns)))


def _make_anndata(X: np.ndarray, samples: list[Any], genes: list[Any]) -> ad.AnnData:
    """Samples x genes values and ids -> AnnData (float64, string ids)."""
    import anndata as ad

    with _quiet_duplicates():
        return ad.AnnData(
            X=np.ascontiguousarray(X, dtype=np.float64),
            obs=pd.DataFrame(index=pd.Index([str(s) for s in samples], dtype=object)),
            var=pd.DataFrame(index=pd.Index([str(g) for g in genes], dtype=object)),
        )


def _frame_to_anndata(df: pd.DataFrame, path: Path) -> ad.AnnData:
    """Genes x samples frame -> AnnData (samples x genes)."""
    return _make_anndata(df.to_numpy(dtype=np.float64).T, list(df.columns), list(df.index))


def _raise_duplicates(path: Path, ids: list[str], kind: str, where: str) -> None:
    s = pd.Series(ids, dtype=object)
    dups = s[s.duplicated()].unique().tolist()
    fix = (
        "remove or rename the duplicates (or aggregate them, e.g. average the probes of a gene)"
        if kind == "gene"
        else "remove or rename the duplicated columns (e.g. a sample sequenced twice: keep one run or sum them)"
    )
    raise InputError(
        f"Matrix '{path}' has duplicate {kind} ids in {where}: {preview(dups)}. Each {kind} must appear once; "
        f"{fix} before running gexpred."
    )


def validate_matrix(adata: ad.AnnData, path: str | os.PathLike[str], allow_missing: bool = False) -> None:
    """Check ids and values of a freshly read matrix.

    With ``allow_missing``, NaN and infinite values are accepted and every one
    of them is set to NaN (in place), to be handled by the ``missing`` policy.

    Raises
    ------
    InputError
        Empty ids, duplicated gene or sample ids, NaN or infinite values.
    """
    path = Path(path)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(
            f"Matrix '{path}' has {adata.n_vars} genes and {adata.n_obs} samples; it needs both (genes as rows, "
            f"samples as columns)."
        )
    genes = [str(g) for g in adata.var_names]
    samples = [str(s) for s in adata.obs_names]
    suffix = _suffixes(path)[0]
    text = suffix in TEXT_SUFFIXES
    where_gene, where_sample = (
        ("the first column", "the header") if text
        else ("var_names", "obs_names") if suffix in H5AD_SUFFIXES
        else ("the gene ids", "the column names")
    )
    bad_gene = [i for i, g in enumerate(genes) if g == "" or g.lower() == "nan"]
    if bad_gene:
        raise InputError(
            f"Matrix '{path}' has a gene without an id (gene {bad_gene[0] + 1} of {len(genes)}; the id is empty "
            f"or NaN). Every gene must have its id."
        )
    bad_sample = [i for i, s in enumerate(samples) if s == "" or s.lower() == "nan"]
    if bad_sample:
        raise InputError(
            f"Matrix '{path}' has a sample without an id (column {bad_sample[0] + (2 if text else 1)}"
            f"{' of the header' if text else ''}; the id is empty or NaN). Give every sample column its id "
            f"(a trailing delimiter at the end of the header line also makes an empty column)."
        )
    if len(set(genes)) != len(genes):
        _raise_duplicates(path, genes, "gene", where_gene)
    if len(set(samples)) != len(samples):
        _raise_duplicates(path, samples, "sample", where_sample)
    X = np.asarray(adata.X)
    finite = np.isfinite(X)
    if not finite.all() and allow_missing:
        X = np.array(X, dtype=np.float64, copy=True)
        X[~finite] = np.nan
        adata.X = X
    elif not finite.all():
        si, gi = np.nonzero(~finite)
        order = np.lexsort((si, gi))[:5]  # gene by gene, as the rows of a text file
        examples = [f"gene {genes[gi[k]]!r}, sample {samples[si[k]]!r}: {X[si[k], gi[k]]}" for k in order]
        n_genes = len(np.unique(gi))
        raise InputError(
            f"Matrix '{path}' has {plural(len(si), 'missing or infinite value')} in {plural(n_genes, 'gene')}, "
            f"e.g. "
            f"{'; '.join(examples)}. Impute or remove them before running gexpred, or set the config key "
            f"'missing' to drop_genes (leave those genes out) or impute_mean (replace each by the gene's "
            f"mean over the training samples)."
        )


def read_gene_list(spec: str | list[str], what: str = "gene list") -> list[str]:
    """Return a list of gene ids from a list or a file with one id per line.

    Blank lines and lines starting with ``#`` are skipped; surrounding quotes
    are removed.
    """
    if isinstance(spec, list):
        return [str(g) for g in spec]
    path = Path(spec)
    label = what[:1].upper() + what[1:]
    _check_file(path, label)
    gz = path.suffix.lower() == ".gz"
    _check_gzip(path, label, gz, _head(path, label))
    _scan_text(path, gz, label)
    with _open_text(path, gz) as fh:
        genes = []
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            genes.append(line.split("\t")[0].strip().strip('"').strip("'"))
    if not genes:
        raise InputError(f"{label} '{path}' lists no gene ids (one id per line is expected).")
    return genes


def text_rows(path: str | os.PathLike[str], what: str) -> tuple[list[tuple[int, list[str]]], str]:
    """Every non-blank row of a small TSV or CSV table (``.csv``: commas, else tabs; optionally ``.gz``) as
    ``(line number, fields)``, after the checks every reader makes (a file, gzip when named so, UTF-8 text), and
    the delimiter. ``what`` names the file in messages."""
    path = Path(path)
    _check_file(path, what)
    suffix, gz = _suffixes(path)
    _check_gzip(path, what, gz, _head(path, what))
    sep = "," if suffix == ".csv" else "\t"
    _scan_text(path, gz, what)
    return list(_rows(path, sep, gz, what)), sep


def read_sample_sheet(path: str | os.PathLike[str], what: str = "Sample sheet",
                      text_columns: Collection[str] = ()) -> pd.DataFrame:
    """Read a sample sheet: a TSV (or CSV) with a ``sample`` column and covariates.

    ``what`` names the file in messages (a truth table of `gexpred monitor` is read the same way).
    ``text_columns`` are kept as text even when every value is a number: a new batch's categorical covariate
    whose levels there happen to be number-like (``'001'``, ``'2'``) must be read as the training levels were
    (text), not as numbers (``1``, ``2.0``) that match no level.

    Returns
    -------
    pandas.DataFrame
        Indexed by sample id (strings), one column per covariate. Columns whose
        every non-missing value is a number are numeric; the others hold strings
        (empty cells and the matrix reader's missing-value words, ``NA``, ``NaN``, ``nan``, ``N/A``,
        ``NULL``, ``null``, are missing). A column whose values are numbers but for some stays text
        (categories) and is logged with its non-numeric values, which are usually typos, whatever their share. So does, logged too, a
        column of numbers of which some are written with leading zeros (``001``, ``042``): codes of sites,
        plates or patients, not quantities.

    Raises
    ------
    InputError
        Missing, empty, binary or ragged file; no ``sample`` column; a row without
        a sample id; a sample or a column listed twice.
    """
    path = Path(path)
    if path.suffix.lower() in H5AD_SUFFIXES:
        return _sheet_from_obs(path, what, text_columns)
    rows, sep = text_rows(path, what)
    if not rows:
        raise InputError(f"{what} '{path}' is empty. It needs a header with a 'sample' column.")
    _, header = rows[0]
    header = [h.strip() for h in header]
    if "sample" not in header:
        near = [h for h in header if h.lower() == "sample"]
        hint = f" (found {near[0]!r}; the name is case-sensitive)" if near else ""
        if len(header) == 1 and (("," if sep == "\t" else "\t") in header[0]):
            hint += f" The file does not look {_delimiter_name(sep)}-separated; check its extension (.tsv or .csv)."
        if header[0].startswith("#"):
            raise InputError(
                f"{what} '{path}' starts with a comment line (line {rows[0][0]}: {_shorten(sep.join(header))!r}), "
                f"which it took for the header: it has no 'sample' column. Comment lines are not supported: delete "
                f"the lines starting with '#' above the header, so that the first line names the columns, one of "
                f"them 'sample'."
            )
        raise InputError(
            f"{what} '{path}' has no 'sample' column (columns: {preview(header)}){hint}. Name the column "
            f"of sample ids 'sample'."
        )
    dup_cols = pd.Series(header)[pd.Series(header).duplicated()].unique().tolist()
    if dup_cols:
        raise InputError(
            f"{what} '{path}' has duplicate column names: {preview(dup_cols)}. Give each column a unique name."
        )
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise InputError(
                f"{what} '{path}' has ragged rows: line {line} (sample {row[0].strip()!r}) has {len(row)} "
                f"fields but the header has {len(header)}. Give every row one value per column (leave a cell "
                f"empty for a missing value)."
            )
    df = pd.DataFrame([[c.strip() for c in row] for _, row in rows[1:]], columns=header, dtype=object)
    ids = df["sample"]
    df = df.where(~df.isin(TEXT_NA), np.nan)
    # a sample id is missing only when its cell is empty: 'NA' or 'null' is an id, as in a matrix's header
    df["sample"] = ids.where(ids != "", np.nan)
    no_id = df["sample"].isna().to_numpy()
    if no_id.any():
        line = rows[1 + int(np.argmax(no_id))][0]
        raise InputError(
            f"{what} '{path}' has a row without a sample id (line {line}). Fill in the 'sample' column of "
            f"that row or delete the row."
        )
    dups = df["sample"][df["sample"].duplicated()].unique().tolist()
    if dups:
        raise InputError(
            f"{what} '{path}' lists samples more than once: {preview(dups)}. Keep one row per sample."
        )
    df = df.set_index("sample")
    df.index = pd.Index(df.index.astype(str), dtype=object, name="sample")
    # numeric-looking covariates become numbers, the rest stay strings (categories)
    for col in df.columns:
        if col in text_columns:
            continue
        converted = pd.to_numeric(df[col], errors="coerce")
        n_values = int(df[col].notna().sum())
        padded = df.loc[df[col].notna() & converted.notna(), col].astype(str).str.match(ZERO_PADDED)
        if converted.notna().sum() == n_values and padded.any():
            # '001', '042': codes (sites, plates, patients), which no one writes so as a quantity; as numbers
            # they would enter a model as one slope over the codes' values
            log.warning("%s '%s': column %r holds numbers written with leading zeros (%s), so it is read as codes "
                        "(categories), one level per distinct value; if it is a quantity, write it without the "
                        "leading zeros", what, path, col,
                        preview([f"{v!r} (sample {i!r})" for i, v in df.loc[padded[padded].index, col].items()]))
        elif converted.notna().sum() == n_values:
            df[col] = _exact_floats(df[col], converted)
        elif converted.notna().any():
            # numbers and other values mixed: a typo ('1O'), a number too large ('1e999') or a stray word makes
            # a numeric column categorical, whatever the share of numbers; say so (a covariate used in a model
            # that is mostly numbers is refused by encode_covariates)
            text = df.loc[df[col].notna() & converted.isna(), col]
            log.warning("%s '%s': column %r holds numbers but for %d value%s (%s), so it is read as categories, "
                        "one level per distinct value; if it is a number, correct those cells (leave a cell "
                        "empty, or write NA, for a missing value)", what, path, col, len(text),
                        "" if len(text) == 1 else "s",
                        preview([f"{v!r} (sample {i!r})" for i, v in text.items()]))
    return df


ZERO_PADDED = r"^[+-]?0[0-9]"
"""A number written with a leading zero before a digit (``'001'``, ``'-07'``; not ``'0'``, ``'0.5'``)."""


def number_text(value: float) -> str:
    """A number as a level's text: integral ones without ``.0`` (``2`` for 2.0), others in the shortest form that
    reads back the same at the number's precision (``0.5``; a float32 0.1 as ``0.1``)."""
    if isinstance(value, (np.float16, np.float32)):  # an .h5ad's float32 column: its own shortest form, 0.1 (not
        as_float = float(value)  # the float64 0.10000000149011612 it widens to)
        return str(int(as_float)) if as_float.is_integer() and abs(as_float) < 2**24 else str(value)
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def read_obs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The ``obs`` table (the samples' columns) of an ``.h5ad``, without reading its matrix."""
    import anndata as ad

    adata = ad.read_h5ad(path, backed="r")
    try:
        return adata.obs.copy()
    finally:
        adata.file.close()


def _sheet_from_obs(path: Path, what: str, text_columns: Collection[str] = ()) -> pd.DataFrame:
    """The ``obs`` table of an AnnData ``.h5ad`` as a sample sheet (as :func:`read_sample_sheet` returns one),
    read without its matrix: the obs names are the sample ids; numeric and boolean columns are numbers (booleans
    0/1), the others (categorical, text) strings, with pandas' missing values and the missing-value words missing.
    A numeric column among ``text_columns`` is text (integral numbers without ``.0``)."""
    _check_file(path, what)
    try:
        obs = read_obs(path)
    except Exception as exc:  # noqa: BLE001 - h5py/anndata raise many types for a broken file
        raise InputError(f"{what} '{path}' could not be read as an AnnData .h5ad file ({exc}). Write it with "
                         f"anndata's write_h5ad(), or give a TSV/CSV sample sheet with a 'sample' column.") from None
    if not obs.shape[1]:
        raise InputError(f"{what} '{path}' is an .h5ad file whose obs has no columns, so it holds no covariates "
                         f"or labels. Add them to adata.obs, or give a TSV/CSV sample sheet with a 'sample' column.")
    ids = pd.Index(obs.index.astype(str), dtype=object, name="sample")
    dups = ids[ids.duplicated()].unique().tolist()
    if dups:
        raise InputError(f"{what} '{path}': obs lists samples more than once: {preview(dups)}. Make the obs "
                         f"names unique (adata.obs_names_make_unique()).")
    df = pd.DataFrame(index=ids)
    for col in obs.columns:
        values = obs[col]
        if str(col) in text_columns and pd.api.types.is_numeric_dtype(values) \
                and not pd.api.types.is_bool_dtype(values):
            values = pd.Series([v if pd.isna(v) else number_text(v) for v in values.to_numpy()],
                               index=values.index, dtype=object)
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            # floats, as a text sheet's numbers; pandas' nullable booleans and integers (anndata writes them)
            # hold pd.NA for a missing value, which becomes NaN
            df[str(col)] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            text = values.astype(object).where(values.notna(), np.nan).to_numpy()
            text = np.array([np.nan if (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in text],
                            dtype=object)
            df[str(col)] = pd.Series(text, index=ids, dtype=object).where(~pd.Series(text, index=ids).isin(TEXT_NA),
                                                                        np.nan)
    log.info("%s '%s': the obs of an .h5ad file, %s, columns %s", what, path, plural(len(df), "sample"),
             preview(df.columns))
    return df


def _exact_floats(text: pd.Series, converted: pd.Series) -> pd.Series:
    """Correctly rounded floats of numeric strings (pandas' own parser is off by an ulp for some values)."""
    def parse(s: Any, fallback: float) -> float:
        if pd.isna(s):
            return np.nan
        try:
            return float(s)
        except ValueError:
            return float(fallback)

    if pd.api.types.is_integer_dtype(converted) and converted.abs().max(skipna=True) < 2**53:
        return converted
    return pd.Series([parse(s, f) for s, f in zip(text, converted)], index=text.index, dtype=np.float64)
