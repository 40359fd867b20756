"""Fuzzing the readers (issue 8, item 4): malformed tables read correctly or fail with a GexpredError.

Hypothesis throws random tables at :func:`gexpred.io.read_matrix`, :func:`~gexpred.io.read_sample_sheet`,
:func:`~gexpred.io.read_gene_list` and :func:`gexpred.collect.combine`: random delimiters, ragged rows,
quotes, NUL bytes, byte-order marks, empty lines, carriage returns, non-numeric cells, huge, NaN and
infinite numbers, duplicate ids, gzip and non-gzip bytes behind ``.gz``, random bytes behind ``.parquet``
and ``.h5ad``. A reader either returns what a well-formed file holds (values checked exactly) or raises a
:class:`~gexpred.errors.GexpredError` with a message; any other exception is a bug. (tests/test_io.py
holds the property tests of clean and cut-short TSV frames.)
"""

from __future__ import annotations

import gzip
import os
import string
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexpred.collect import apply_missing_policy, combine
from gexpred.errors import GexpredError
from gexpred.io import read_gene_list, read_matrix, read_sample_sheet

# GEXPRED_FUZZ_EXAMPLES=5000 for a deeper search than the suite's quick one
FUZZ = settings(max_examples=int(os.environ.get("GEXPRED_FUZZ_EXAMPLES", 150)), deadline=None,
                suppress_health_check=list(HealthCheck))

# --------------------------------------------------------------------------- building blocks
_ID = st.text(st.sampled_from(string.ascii_letters + string.digits + "_-.:é样"), min_size=1, max_size=8).filter(
    lambda s: s.lower() not in {"na", "nan", "null", "n/a", "inf", "-inf", "+inf", "infinity"}
    and not s.replace(".", "").replace("-", "").replace("e", "").replace("E", "").isdigit())
_FLOAT = st.floats(allow_nan=False, allow_infinity=False, width=64)
_CELL = st.one_of(
    _FLOAT.map(repr), st.integers(-10**30, 10**30).map(str), _ID,
    st.sampled_from(["", "NA", "NaN", "nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "1,5", "1.2.3", "0x1F",
                     '"', '""', '"1"', "'", "\x00", " ", "\r", "TRUE", "—", "∞", "1e-400", "٣"]),
    st.text(max_size=5),
)
_DELIMS = st.sampled_from(["\t", ",", ";", " ", "|", "\t\t"])
_NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _call(fn, path: Path, *args):
    """Call a reader: its result, or None when it raised a GexpredError (with a message)."""
    try:
        return fn(path, *args)
    except GexpredError as exc:
        assert str(exc).strip(), "an empty error message"
        assert str(path) in str(exc) or fn is not read_matrix, f"the message does not name the file: {exc}"
        return None


def _check_matrix(adata: ad.AnnData, missing: str = "error") -> None:
    X = np.asarray(adata.X)
    assert X.dtype == np.float64 and X.shape == (adata.n_obs, adata.n_vars) and X.size > 0
    assert np.isfinite(X).all() if missing == "error" else not np.isinf(X).any()
    for ids in (list(adata.obs_names), list(adata.var_names)):
        assert all(isinstance(i, str) and i != "" and i == i.strip() for i in ids)
        assert len(set(ids)) == len(ids)


@st.composite
def _table_bytes(draw) -> tuple[bytes, bool]:
    """Random text tables: rows of random cells joined by a random delimiter, with damage."""
    delim = draw(_DELIMS)
    nl = draw(_NEWLINES)
    n_cols = draw(st.integers(1, 5))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        width = n_cols if draw(st.booleans()) else draw(st.integers(0, 7))  # sometimes ragged
        cells = draw(st.lists(_CELL, min_size=width, max_size=width))
        if draw(st.integers(0, 4)) == 0:
            cells = [f'"{c}"' for c in cells]
        rows.append(delim.join(cells))
        if draw(st.integers(0, 6)) == 0:
            rows.append("")  # an empty line
    text = nl.join(rows) + (nl if draw(st.booleans()) else "")
    data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        data = b"\xef\xbb\xbf" + data  # UTF-8 BOM
    if data and draw(st.integers(0, 8)) == 0:
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + draw(st.sampled_from([b"\x00", b"\xff", b"\xfe\xff", b"\xc3", b"\x1f\x8b"])) + data[pos:]
    gz = draw(st.booleans())
    return data, gz


_RANDOM_BYTES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda b: b"PAR1" + b),
    st.binary(max_size=200).map(lambda b: b"\x89HDF\r\n\x1a\n" + b),
    st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b),
    st.binary(max_size=200).map(gzip.compress),
)


# --------------------------------------------------------------------------- read_matrix
@FUZZ
@given(_table_bytes(), st.sampled_from(["m.tsv", "m.csv", "m.txt", "m.tab"]),
       st.sampled_from(["error", "drop_genes", "impute_mean"]))
def test_read_matrix_random_tables(table, name, missing):
    data, gz = table
    with tempfile.TemporaryDirectory() as d:
        if gz:
            name, data = name + ".gz", gzip.compress(data)
        path = _write(Path(d), name, data)
        adata = _call(read_matrix, path, missing)
        if adata is not None:
            _check_matrix(adata, missing)


@FUZZ
@given(_RANDOM_BYTES, st.sampled_from(["m.tsv", "m.csv.gz", "m.tsv.gz", "m.parquet", "m.pq", "m.h5ad", "m.gz"]))
def test_read_matrix_random_bytes(data, name):
    with tempfile.TemporaryDirectory() as d:
        adata = _call(read_matrix, _write(Path(d), name, data))
        if adata is not None:
            _check_matrix(adata)


@st.composite
def _frames(draw) -> pd.DataFrame:
    genes = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    samples = draw(st.lists(_ID, min_size=1, max_size=5, unique=True))
    values = draw(st.lists(_FLOAT, min_size=len(genes) * len(samples), max_size=len(genes) * len(samples)))
    return pd.DataFrame(np.array(values, dtype=np.float64).reshape(len(genes), len(samples)), index=genes,
                        columns=samples)


@FUZZ
@given(_frames(), st.sampled_from(["m.tsv", "m.csv", "m.tsv.gz", "m.csv.gz", "m.parquet", "m.h5ad"]),
       st.booleans(), st.booleans(), st.booleans(), _NEWLINES)
def test_read_matrix_well_formed_round_trip(df, name, bom, blank_lines, quote_all, nl):
    """Any layout quirk of a well-formed table (BOM, blank lines, quotes, line endings) reads back exactly."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        if name.endswith(".parquet"):
            df.rename_axis("gene id").reset_index().to_parquet(path)
        elif name.endswith(".h5ad"):
            ad.AnnData(X=df.T.to_numpy(), obs=pd.DataFrame(index=df.columns), var=pd.DataFrame(index=df.index)) \
                .write_h5ad(path)
        else:
            sep = "," if ".csv" in name else "\t"
            text = df.to_csv(sep=sep, index_label="gene", lineterminator=nl, quoting=1 if quote_all else 0,
                             float_format=None)
            if blank_lines:
                text = nl + text.replace(nl, nl + nl, 1)
            data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
            path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        adata = read_matrix(path)
    assert list(adata.var_names) == list(df.index) and list(adata.obs_names) == list(df.columns)
    np.testing.assert_array_equal(np.asarray(adata.X), df.to_numpy().T)


@FUZZ
@given(_frames(), st.data())
def test_read_matrix_bad_values_are_named(df, data):
    """A NaN, an infinity or a word in a well-formed table: refused, naming the gene and the sample."""
    gi = data.draw(st.integers(0, len(df.index) - 1))
    si = data.draw(st.integers(0, len(df.columns) - 1))
    bad = data.draw(st.sampled_from(["NA", "", "inf", "-Infinity", "1e999", "abc", "1,5"]))
    cells = df.map(repr).astype(object)
    cells.iat[gi, si] = bad
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d), "m.tsv", cells.to_csv(sep="\t", index_label="gene").encode())
        with pytest.raises(GexpredError) as exc:
            read_matrix(path)
    msg = str(exc.value)
    assert str(path) in msg and repr(str(df.index[gi])) in msg and repr(str(df.columns[si])) in msg


# --------------------------------------------------------------------------- sample sheet and gene list
@FUZZ
@given(_table_bytes(), st.sampled_from(["s.tsv", "s.csv", "s.txt"]), st.booleans())
def test_read_sample_sheet_random_tables(table, name, with_sample_header):
    data, gz = table
    if with_sample_header:  # get past the header check more often
        data = b"sample\tx\n" + data if not name.endswith(".csv") else b"sample,x\n" + data
    with tempfile.TemporaryDirectory() as d:
        if gz:
            name, data = name + ".gz", gzip.compress(data)
        sheet = _call(read_sample_sheet, _write(Path(d), name, data))
    if sheet is not None:
        assert sheet.index.name == "sample" and not sheet.index.has_duplicates
        assert all(isinstance(s, str) and s for s in sheet.index)


@FUZZ
@given(_RANDOM_BYTES, st.sampled_from(["s.tsv", "s.csv", "s.tsv.gz"]))
def test_read_sample_sheet_random_bytes(data, name):
    with tempfile.TemporaryDirectory() as d:
        _call(read_sample_sheet, _write(Path(d), name, data))


@FUZZ
@given(st.lists(_ID, min_size=1, max_size=6, unique=True),
       st.lists(st.one_of(_FLOAT, _ID, st.just("")), min_size=6, max_size=6), st.booleans(), _NEWLINES)
def test_read_sample_sheet_round_trip(samples, values, csv, nl):
    values = values[: len(samples)]
    df = pd.DataFrame({"sample": samples, "cov": values})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("s.csv" if csv else "s.tsv")
        path.write_text(df.to_csv(sep="," if csv else "\t", index=False, lineterminator=nl))
        sheet = read_sample_sheet(path)
    assert list(sheet.index) == samples
    got = sheet["cov"].tolist()
    for v, g in zip(values, got):
        if v == "":
            assert pd.isna(g)
        elif isinstance(v, float):
            assert float(g) == v
        else:
            assert str(g) == v or float(g) == float(v)


@FUZZ
@given(st.one_of(_RANDOM_BYTES, _table_bytes().map(lambda t: t[0])), st.sampled_from(["g.txt", "g.tsv", "g.txt.gz"]))
def test_read_gene_list_random_bytes(data, name):
    with tempfile.TemporaryDirectory() as d:
        genes = _call(read_gene_list, str(_write(Path(d), name, data)))
    if genes is not None:
        assert genes and all(isinstance(g, str) for g in genes)


@FUZZ
@given(st.lists(_ID, min_size=1, max_size=8), st.booleans(), _NEWLINES)
def test_read_gene_list_round_trip(genes, comments, nl):
    lines = [f"# list of {len(genes)}"] if comments else []
    lines += [g if i % 2 else f'"{g}"' for i, g in enumerate(genes)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "g.txt"
        path.write_bytes((nl.join(lines) + nl).encode())
        assert read_gene_list(str(path)) == genes


# --------------------------------------------------------------------------- combine
_POOL_GENES = [f"g{i}" for i in range(6)]
_POOL_SAMPLES = [f"s{i}" for i in range(6)]


@st.composite
def _matrices(draw) -> list[ad.AnnData]:
    mats = []
    for k in range(draw(st.integers(1, 4))):
        genes = draw(st.lists(st.sampled_from(_POOL_GENES), min_size=1, max_size=5, unique=True))
        samples = draw(st.lists(st.sampled_from(_POOL_SAMPLES), min_size=1, max_size=5, unique=True))
        X = np.array(draw(st.lists(st.one_of(_FLOAT, st.sampled_from([np.nan, np.inf, -np.inf])),
                                   min_size=len(genes) * len(samples), max_size=len(genes) * len(samples))),
                     dtype=np.float64).reshape(len(samples), len(genes))
        m = ad.AnnData(X=X, obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=genes))
        m.uns["source"] = f"m{k}.tsv"
        mats.append(m)
    return mats


@FUZZ
@given(_matrices(), st.sampled_from(["error", "drop_genes", "impute_mean"]))
def test_combine_random_matrices(mats, missing):
    """combine: the values of every kept (sample, gene) come from the matrix that held them."""
    try:
        out, dropped = combine(mats)
        out, handled = apply_missing_policy(out, mats, missing)
    except GexpredError as exc:
        assert str(exc).strip()
        return
    assert list(dropped.columns) == ["kind", "id", "file", "reason"]
    assert not out.obs_names.has_duplicates and not out.var_names.has_duplicates
    X = np.asarray(out.X)
    if missing == "drop_genes":
        assert np.isfinite(X).all()
    else:
        assert not np.isinf(X).any()
    for i, s in enumerate(out.obs_names):
        for j, g in enumerate(out.var_names):
            sources = [m for m in mats if s in m.obs_names and g in m.var_names]
            assert len(sources) == 1  # no ambiguity is ever resolved silently
            v = float(sources[0][s, g].X[0, 0])
            assert X[i, j] == v or (np.isnan(X[i, j]) and not np.isfinite(v))
    # nothing is dropped silently: every gene or sample of the input not in the output is listed
    for kind, ids, kept in (("gene", "var_names", out.var_names), ("sample", "obs_names", out.obs_names)):
        given = set().union(*(set(getattr(m, ids)) for m in mats))
        listed = set(dropped.loc[dropped["kind"] == kind, "id"]) | set(handled.loc[handled["kind"] == kind, "id"])
        assert given - set(kept) <= listed
