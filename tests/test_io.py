"""Reading expression matrices and sample sheets (gexpred.io).

Expected values always come from the pandas/numpy objects the test wrote, never
from gexpred itself.
"""

from __future__ import annotations

import csv
import gzip
import logging
import string
import tempfile
from pathlib import Path
from unittest import mock

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gexpred.io
from gexpred.errors import GexpredError, InputError
from gexpred.io import (
    MISSING_POLICIES,
    atomic_output,
    read_gene_list,
    read_matrix,
    read_sample_sheet,
    write_h5ad,
    write_table,
)


def assert_matches(adata: ad.AnnData, df: pd.DataFrame) -> None:
    """``adata`` (samples x genes) holds exactly the genes x samples frame ``df``."""
    assert isinstance(adata, ad.AnnData)
    assert adata.X.dtype == np.float64
    assert list(adata.obs_names) == [str(s) for s in df.columns]
    assert list(adata.var_names) == [str(g) for g in df.index]
    np.testing.assert_array_equal(np.asarray(adata.X), df.to_numpy(dtype=np.float64).T)


def input_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_matrix(path)
    return str(info.value)


# --------------------------------------------------------------------------- round trips
def _write_tsv(df, path):
    df.to_csv(path, sep="\t")


def _write_csv(df, path):
    df.to_csv(path)


def _write_parquet_column(df, path):
    df.reset_index().to_parquet(path, index=False)  # gene ids in the first (string) column


def _write_parquet_index(df, path):
    df.to_parquet(path)  # gene ids in the index named 'gene'


def _write_h5ad_dense(df, path):
    ad.AnnData(X=df.to_numpy().T.copy(), obs=pd.DataFrame(index=df.columns), var=pd.DataFrame(index=df.index)) \
        .write_h5ad(path)


def _write_h5ad_sparse(df, path):
    X = df.to_numpy().T.copy()
    X[np.abs(X) < 0.5] = 0.0  # make it genuinely sparse
    df.loc[:, :] = X.T
    ad.AnnData(X=sp.csr_matrix(X), obs=pd.DataFrame(index=df.columns), var=pd.DataFrame(index=df.index)) \
        .write_h5ad(path)


ROUND_TRIPS = {
    "matrix.tsv": _write_tsv,
    "matrix.txt": _write_tsv,
    "matrix.tab": _write_tsv,
    "matrix.csv": _write_csv,
    "matrix.tsv.gz": _write_tsv,  # pandas compresses by extension
    "matrix.csv.gz": _write_csv,
    "matrix.TSV": _write_tsv,  # extensions are case-insensitive
    "matrix.counts.txt.gz": _write_tsv,
    "column.parquet": _write_parquet_column,
    "index.parquet": _write_parquet_index,
    "matrix.pq": _write_parquet_column,
    "dense.h5ad": _write_h5ad_dense,
    "sparse.h5ad": _write_h5ad_sparse,
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_round_trip_every_format(name, make_frame, tmp_path):
    df = make_frame(n_genes=40, n_samples=9)
    # shuffle ids so that order, not sorting, is what is checked
    df = df.sample(frac=1.0, random_state=3)[list(reversed(df.columns))]
    path = tmp_path / name
    ROUND_TRIPS[name](df, path)
    adata = read_matrix(path)
    assert_matches(adata, df)
    assert adata.uns["source"] == str(path)


@pytest.mark.parametrize("name", [n for n in ROUND_TRIPS if ".parquet" not in n and ".pq" not in n and ".h5ad" not in n])
def test_round_trip_fallback_text_reader(name, make_frame, tmp_path):
    """The pandas reader, used when pyarrow rejects a file, is exact too."""
    df = make_frame(n_genes=30, n_samples=6)
    path = tmp_path / name
    ROUND_TRIPS[name](df, path)
    with mock.patch.object(gexpred.io, "_read_values_arrow", return_value=None) as fast:
        adata = read_matrix(path)
    assert fast.called
    assert_matches(adata, df)


def test_text_round_trip_is_bit_exact_for_hard_floats(tmp_path):
    # values whose shortest repr needs 17 digits, subnormals and extremes
    values = np.array([
        [0.1 + 0.2, 1 / 3, np.nextafter(1.0, 2.0)],
        [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308],
        [-0.0, 123456789.12345679, -9.999999999999999e-301],
    ])
    df = pd.DataFrame(values, index=["A", "B", "C"], columns=["s1", "s2", "s3"])
    for name in ("hard.tsv", "hard.csv.gz"):
        path = tmp_path / name
        df.to_csv(path, sep="," if ".csv" in name else "\t")
        got = np.asarray(read_matrix(path).X)
        assert got.tobytes() == np.ascontiguousarray(values.T).tobytes()
        with mock.patch.object(gexpred.io, "_read_values_arrow", return_value=None):
            got = np.asarray(read_matrix(path).X)
        assert got.tobytes() == np.ascontiguousarray(values.T).tobytes()


def test_integer_counts_read_as_float64(tmp_path, rng):
    counts = pd.DataFrame(rng.integers(0, 10_000, size=(6, 4)), index=[f"g{i}" for i in range(6)],
                          columns=list("abcd"))
    counts.to_csv(tmp_path / "counts.tsv", sep="\t")
    assert_matches(read_matrix(tmp_path / "counts.tsv"), counts.astype(np.float64))


def test_numeric_looking_ids_stay_strings(write):
    path = write("ids.tsv", "gene\t001\t1e3\n0042\t1\t2\n7\t3\t4\nNaNog\t5\t6\n")
    adata = read_matrix(path)
    assert list(adata.obs_names) == ["001", "1e3"]
    assert list(adata.var_names) == ["0042", "7", "NaNog"]


# --------------------------------------------------------------------------- real-data quirks
EXPECTED_2x2 = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=["G1", "G2"], columns=["S1", "S2"])


@pytest.fixture(params=["fast", "fallback"])
def text_reader(request):
    """Run a text test through pyarrow (fast path) and through pandas (fallback) in turn."""
    if request.param == "fast":
        yield request.param
    else:
        with mock.patch.object(gexpred.io, "_read_values_arrow", return_value=None):
            yield request.param


@pytest.mark.parametrize(
    "name, text",
    [
        ("empty_first_cell.tsv", "\tS1\tS2\nG1\t1\t2\nG2\t3\t4\n"),
        ("r_write_table.tsv", "S1\tS2\nG1\t1\t2\nG2\t3\t4\n"),
        ("r_write_table.csv", '"S1","S2"\n"G1",1,2\n"G2",3,4\n'),
        ("quoted_ids.tsv", '"gene"\t"S1"\t"S2"\n"G1"\t1\t2\n"G2"\t3\t4\n'),
        ("quoted_values.csv", 'gene,S1,S2\n"G1","1","2"\n"G2","3","4"\n'),
        ("crlf.tsv", "gene\tS1\tS2\r\nG1\t1\t2\r\nG2\t3\t4\r\n"),
        ("bom.tsv", "\ufeffgene\tS1\tS2\nG1\t1\t2\nG2\t3\t4\n"),
        ("no_final_newline.tsv", "gene\tS1\tS2\nG1\t1\t2\nG2\t3\t4"),
        ("blank_lines.tsv", "gene\tS1\tS2\n\nG1\t1\t2\n\nG2\t3\t4\n\n"),
        ("spaces_around_ids.tsv", "gene\t S1 \tS2\n G1\t1\t2\nG2 \t3\t4\n"),
        ("number_formats.tsv", "gene\tS1\tS2\nG1\t1.0\t+2\nG2\t3e0\t.4E1\n"),
        ("leading_blank_lines.tsv", "\n\r\ngene\tS1\tS2\nG1\t1\t2\nG2\t3\t4\n"),
        ("cr_only.tsv", "gene\tS1\tS2\rG1\t1\t2\rG2\t3\t4\r"),
    ],
)
def test_real_data_quirks(write, name, text, text_reader):
    assert_matches(read_matrix(write(name, text)), EXPECTED_2x2)


def test_leading_blank_lines_do_not_turn_the_header_into_data(write, text_reader):
    # numeric-looking sample ids: a header mistaken for a data row would parse as numbers
    adata = read_matrix(write("blank_then_header.tsv", "\n\n\t1\t2\nG1\t5\t6\n"))
    assert list(adata.obs_names) == ["1", "2"] and list(adata.var_names) == ["G1"]
    np.testing.assert_array_equal(adata.X, [[5.0], [6.0]])


def test_quoted_tab_in_a_sample_id(write, text_reader):
    # found by hypothesis: pandas' skiprows=1 swallowed the data row after this header
    adata = read_matrix(write("tab_id.tsv", '\t"S\t1"\nG1\t0.5\n'))
    assert list(adata.obs_names) == ["S\t1"] and list(adata.var_names) == ["G1"]
    np.testing.assert_array_equal(adata.X, [[0.5]])


def test_quoted_newline_in_a_sample_id(write, text_reader):
    adata = read_matrix(write("nl_id.tsv", 'gene\t"S\n1"\tS2\nG1\t1\t2\n'))
    assert list(adata.obs_names) == ["S\n1", "S2"]
    np.testing.assert_array_equal(adata.X, [[1.0], [2.0]])


def test_r_write_table_round_trip(make_frame, tmp_path):
    df = make_frame(n_genes=5, n_samples=3)
    path = tmp_path / "r.tsv"
    df.to_csv(path, sep="\t", index_label=False, quoting=csv.QUOTE_NONNUMERIC)  # what write.table() writes
    assert path.read_text().splitlines()[0].count("\t") == 2  # one field fewer than the rows
    assert_matches(read_matrix(path), df)


def test_quoted_ids_with_delimiters_inside(write):
    path = write("q.csv", 'gene,"S,1","S ""2"""\n"G,1",1,2\n"G""2",3,4\n')
    adata = read_matrix(path)
    assert list(adata.obs_names) == ["S,1", 'S "2"']
    assert list(adata.var_names) == ["G,1", 'G"2']


def test_unicode_ids(write):
    path = write("u.tsv", "gène\tpatient_é\t样本\nα-actin\t1\t2\nΔNp63\t3\t4\n")
    adata = read_matrix(path)
    assert list(adata.obs_names) == ["patient_é", "样本"]
    assert list(adata.var_names) == ["α-actin", "ΔNp63"]


def test_gzip_text_and_plain_text_agree(make_frame, tmp_path):
    df = make_frame()
    df.to_csv(tmp_path / "m.tsv", sep="\t")
    with open(tmp_path / "m.tsv", "rb") as src, gzip.open(tmp_path / "m.tsv.gz", "wb") as dst:
        dst.write(src.read())
    a, b = read_matrix(tmp_path / "m.tsv"), read_matrix(tmp_path / "m.tsv.gz")
    np.testing.assert_array_equal(a.X, b.X)
    assert list(a.obs_names) == list(b.obs_names) and list(a.var_names) == list(b.var_names)


def test_parquet_with_integer_gene_index(tmp_path):
    df = pd.DataFrame({"S1": [1.0, 2.0], "S2": [3.0, 4.0]}, index=pd.Index([7157, 672], name="entrez"))
    df.to_parquet(tmp_path / "m.parquet")
    adata = read_matrix(tmp_path / "m.parquet")
    assert list(adata.var_names) == ["7157", "672"]
    np.testing.assert_array_equal(adata.X, df.to_numpy().T)


def test_parquet_filtered_frame_uses_gene_column_not_leftover_row_numbers(tmp_path):
    # df[mask].to_parquet() keeps an unnamed integer index of row numbers; the ids are in 'gene'
    df = pd.DataFrame({"gene": ["A", "B", "C"], "S1": [1.0, 2.0, 3.0], "S2": [4.0, 5.0, 6.0]})
    kept = df[df["S1"] != 2.0]
    kept.to_parquet(tmp_path / "m.parquet")
    adata = read_matrix(tmp_path / "m.parquet")
    assert list(adata.var_names) == ["A", "C"]
    assert list(adata.obs_names) == ["S1", "S2"]
    np.testing.assert_array_equal(adata.X, kept[["S1", "S2"]].to_numpy().T)


def test_parquet_filtered_frame_with_integer_id_column_is_refused_not_guessed(tmp_path):
    """A frame of Entrez ids in a column, filtered (df[mask]) and written, keeps its row numbers as an unnamed
    integer index: the reader took them for the gene ids and made 'entrez' a sample holding the ids. Either
    could be the ids, so the file is refused; naming the ids' column reads it."""
    df = pd.DataFrame({"entrez": [7157, 672, 675, 1956], "S1": [1.0, 2.0, 3.0, 4.0], "S2": [5.0, 6.0, 7.0, 8.0]})
    kept = df[df["S1"] != 2.0]
    kept.to_parquet(tmp_path / "m.parquet")
    msg = input_error(tmp_path / "m.parquet")
    assert "'entrez'" in msg and "unnamed index" in msg and "set_index('entrez')" in msg
    kept.set_index("entrez").to_parquet(tmp_path / "named.parquet")
    adata = read_matrix(tmp_path / "named.parquet")
    assert list(adata.var_names) == ["7157", "675", "1956"] and list(adata.obs_names) == ["S1", "S2"]
    np.testing.assert_array_equal(adata.X, kept[["S1", "S2"]].to_numpy().T)


def test_h5ad_keeps_obs_as_samples(tmp_path, rng):
    X = rng.standard_normal((3, 4)).astype(np.float32)
    ad.AnnData(X=X, obs=pd.DataFrame(index=["s1", "s2", "s3"]), var=pd.DataFrame(index=list("abcd"))) \
        .write_h5ad(tmp_path / "m.h5ad")
    adata = read_matrix(tmp_path / "m.h5ad")
    assert list(adata.obs_names) == ["s1", "s2", "s3"]
    assert list(adata.var_names) == list("abcd")
    assert adata.X.dtype == np.float64
    np.testing.assert_array_equal(adata.X, X.astype(np.float64))


# --------------------------------------------------------------------------- bad input
def test_bad_matrix_raises_input_error_naming_file_and_culprit(bad_matrix, text_reader):
    path, needles = bad_matrix
    msg = input_error(path)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} missing from: {msg}"
    assert "\n" not in msg  # one paragraph
    assert "Traceback" not in msg


def test_input_error_is_a_gexpred_error():
    assert issubclass(InputError, GexpredError)


def test_directory_instead_of_file(tmp_path):
    msg = input_error(tmp_path)
    assert str(tmp_path) in msg and "directory" in msg


def test_non_numeric_message_lists_only_the_first_few(write):
    rows = "".join(f"G{i}\tbad{i}\t1\n" for i in range(50))
    msg = input_error(write("many.tsv", "gene\tS1\tS2\n" + rows))
    assert "50 non-numeric values" in msg
    assert "'bad0'" in msg and "'bad4'" in msg and "'bad5'" not in msg


def test_non_numeric_with_duplicate_gene_ids_still_gives_a_short_message(write):
    msg = input_error(write("dup_text.tsv", "gene\tS1\nG1\tx\nG1\ty\n"))
    assert "'x'" in msg and "'G1'" in msg
    assert "dtype" not in msg and len(msg) < 400  # no pandas Series dumped into the message


def test_decimal_comma_is_non_numeric(write):
    msg = input_error(write("eu.tsv", "gene\tS1\nG1\t1,5\n"))
    assert "'1,5'" in msg and "decimal point" in msg


def test_non_numeric_value_names_a_gene_id_pandas_would_read_as_a_boolean(write):
    """Found by the fuzz test: with a word among the values, gene ids 'false' / 'TRUE' were named False / True."""
    msg = input_error(write("bool_ids.tsv", "gene\tS1\nfalse\tabc\nTRUE\t1\n"))
    assert "gene 'false', sample 'S1': 'abc'" in msg


def test_sample_without_id_in_header(write):
    msg = input_error(write("trailing.tsv", "gene\tS1\tS2\t\nG1\t1\t2\t3\n"))
    assert "without an id" in msg and "column 4" in msg


@pytest.mark.parametrize("name, text", [
    ("rows.tsv", "gene\tS1\tS2\nG1\t1\t2\t\nG2\t3\t4\t\nG3\t5\t6\t\n"),
    ("crlf.tsv", "gene\tS1\tS2\r\nG1\t1\t2\t\r\nG2\t3\t4\t\r\n"),
    ("rows.csv", "gene,S1,S2\nG1,1,2,\nG2,3,4,\n"),
])
def test_trailing_delimiter_on_every_data_row_is_not_read_as_r_layout(write, name, text):
    """An export that ends every data line, but not the header, with a delimiter has one field more per row than
    the header, as R's write.table layout has: read so, 'gene' became a sample holding S1's values, S1 held S2's
    and S2 was empty (with missing: impute_mean it was accepted). Refused by name, whatever the policy."""
    path = write(name, text)
    for missing in MISSING_POLICIES:
        with pytest.raises(InputError) as info:
            read_matrix(path, missing=missing)
        msg = str(info.value)
        assert "trailing" in msg and "'G1'" in msg and "'gene'" in msg and "line 2" in msg


def test_two_trailing_delimiters_name_the_empty_sample_id(write):
    """Two trailing tabs on every line make two empty sample ids: said as such, not as 'duplicate sample ids'."""
    msg = input_error(write("two.tsv", "gene\tS1\tS2\t\t\nG1\t1\t2\t\t\nG2\t3\t4\t\t\n"))
    assert "without an id" in msg and "column 4" in msg and "trailing delimiter" in msg


def test_r_layout_with_an_empty_last_sample_value_only_in_some_rows_still_reads(write):
    """The check above is for a last column empty in every row: R's layout with one missing value is read as it
    is (the missing value is then the missing-value policy's business)."""
    adata = read_matrix(write("r.tsv", "S1\tS2\nG1\t1\t\nG2\t3\t4\n"), missing="drop_genes")
    assert list(adata.obs_names) == ["S1", "S2"]
    np.testing.assert_array_equal(adata.X, np.array([[1.0, 3.0], [np.nan, 4.0]]))


def test_first_data_row_with_wrong_field_count_names_line_and_gene(write):
    msg = input_error(write("first.tsv", "gene\tS1\tS2\tS3\nBRAF\t1\nG2\t3\t4\t5\n"))
    assert "line 2" in msg and "'BRAF'" in msg


def test_blank_line_before_bad_row_keeps_file_line_numbers(write):
    msg = input_error(write("blank.tsv", "gene\tS1\tS2\n\nG1\t1\t2\n\nG2\t3\t4\t5\n"))
    assert "line 5" in msg and "'G2'" in msg


def test_csv_content_in_tsv_suggests_the_delimiter(write):
    msg = input_error(write("comma.tsv", "gene,S1,S2\nG1,1,2\n"))
    assert ".csv" in msg and "delimiter" in msg


def test_unclosed_quote_names_line_and_gene(write):
    msg = input_error(write("quote.tsv", 'gene\tS1\tS2\nG1\t1\t2\nMYC\t"3\t4\nG3\t5\t6\n'))
    assert "quote" in msg and "line 3" in msg and "'MYC'" in msg


def test_unclosed_quote_swallowing_a_large_file(write):
    # the csv module gives up on a field over 128 KiB: still a clear InputError
    msg = input_error(write("swallow.tsv", 'gene\tS1\nG1\t"1\n' + "G\t1\n" * 40_000))
    assert "quote" in msg and "line" in msg


def test_nul_byte_in_text(write):
    msg = input_error(write("nul.tsv", b"gene\tS1\tS2\nG1\t1\x002\t2\n"))
    assert "NUL" in msg and "line 2" in msg


def test_utf16_text_is_recognised(write):
    msg = input_error(write("excel.txt", "gene\tS1\nG1\t1\n".encode("utf-16")))
    assert "UTF-16" in msg


def test_non_utf8_byte_deep_in_a_large_file(write):
    body = "".join(f"G{i}\t{i}\n" for i in range(20_000)).encode()
    msg = input_error(write("late.tsv", b"gene\tS1\n" + body + b"CAF\xe9\t1\n"))
    assert "not UTF-8" in msg and "line 20002" in msg


def test_lone_carriage_return_in_an_id_is_not_misread(write, text_reader):
    # found by hypothesis: pandas' skiprows and the csv module split this header differently, and
    # pandas then took the extra field as an implicit index, giving 2 values for 1 sample
    msg = input_error(write("cr.tsv", "\t0\r\t\n0\t0.0\t0.0\n"))
    assert "ragged" in msg and "line 3" in msg


def test_na_gene_id_is_a_missing_id(write):
    msg = input_error(write("na_gene.tsv", "gene\tS1\nNA\t1\nG2\t2\n"))
    assert "without a gene id" in msg and "first row" in msg


def test_duplicate_ids_after_trimming_spaces(write):
    msg = input_error(write("trim.tsv", "gene\tS1\t S1\nG1\t1\t2\n"))
    assert "duplicate sample" in msg and "'S1'" in msg


def test_value_too_large_for_float64(write):
    # 1e999 overflows to infinity: reported like any other infinite value
    msg = input_error(write("huge.tsv", "gene\tS1\nBIG\t1e999\n"))
    assert "infinite" in msg and "'BIG'" in msg and "'S1'" in msg


def test_parquet_null_gene_id(tmp_path):
    pd.DataFrame({"gene": ["G1", None, "G3"], "S1": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "m.parquet")
    msg = input_error(tmp_path / "m.parquet")
    assert "without a gene id" in msg and "row 2" in msg


def test_parquet_numbers_in_first_column(tmp_path):
    pd.DataFrame({"id": [1.5, 2.5], "S1": [1.0, 2.0]}).to_parquet(tmp_path / "m.parquet")
    msg = input_error(tmp_path / "m.parquet")
    assert "'id'" in msg and "gene ids" in msg and "df.index = gene_ids" in msg
    # repeated integers are values too (counts), not ids
    pd.DataFrame({"S0": [3, 3, 0], "S1": [1.0, 2.0, 0.0]}).to_parquet(tmp_path / "c.parquet")
    assert "not distinct integers" in input_error(tmp_path / "c.parquet")


@pytest.mark.parametrize("layout", ["column", "unnamed index"])
def test_parquet_integer_gene_ids_are_read_as_in_tsv(tmp_path, layout):
    """Entrez ids (distinct integers) in the first column or an unnamed index are ids, as a TSV's first column
    of integers is: the same matrix either way."""
    values = pd.DataFrame({"S1": [1.0, 2.0, 5.0], "S2": [3.0, 4.0, 6.0]}, index=[7157, 672, 1956])
    if layout == "column":
        values.rename_axis("entrez_id").reset_index().to_parquet(tmp_path / "m.parquet", index=False)
    else:
        values.to_parquet(tmp_path / "m.parquet")
    values.to_csv(tmp_path / "m.tsv", sep="\t")
    got, want = read_matrix(tmp_path / "m.parquet"), read_matrix(tmp_path / "m.tsv")
    assert list(got.var_names) == list(want.var_names) == ["7157", "672", "1956"]
    assert list(got.obs_names) == ["S1", "S2"]
    np.testing.assert_array_equal(got.X, want.X)


def test_parquet_string_values(tmp_path):
    pd.DataFrame({"gene": ["G1", "ALB"], "S1": [1.0, 2.0], "S9": ["3", "n/d"]}).to_parquet(tmp_path / "m.parquet")
    msg = input_error(tmp_path / "m.parquet")
    assert "'ALB'" in msg and "'S9'" in msg and "'n/d'" in msg


def test_parquet_boolean_values(tmp_path):
    pd.DataFrame({"gene": ["G1", "G2"], "S1": [1.0, 2.0], "flag": [True, False]}).to_parquet(tmp_path / "m.parquet")
    msg = input_error(tmp_path / "m.parquet")
    assert "'flag'" in msg and "true/false" in msg


def test_parquet_nan_value(tmp_path):
    pd.DataFrame({"gene": ["G1", "GAPDH"], "S1": [1.0, None]}).to_parquet(tmp_path / "m.parquet")
    msg = input_error(tmp_path / "m.parquet")
    assert "'GAPDH'" in msg and "'S1'" in msg


def test_truncated_parquet(tmp_path):
    pd.DataFrame({"gene": ["G1"], "S1": [1.0]}).to_parquet(tmp_path / "ok.parquet")
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "ok.parquet").read_bytes()[:60])
    msg = input_error(tmp_path / "cut.parquet")
    assert str(tmp_path / "cut.parquet") in msg and "parquet" in msg


def test_h5ad_duplicate_obs_names(tmp_path):
    with pytest.warns(UserWarning):
        a = ad.AnnData(X=np.ones((2, 2)), obs=pd.DataFrame(index=["s1", "s1"]), var=pd.DataFrame(index=["g", "h"]))
    a.write_h5ad(tmp_path / "dup.h5ad")
    msg = input_error(tmp_path / "dup.h5ad")
    assert "duplicate sample" in msg and "'s1'" in msg and "obs_names" in msg


def test_h5ad_without_x(tmp_path):
    ad.AnnData(obs=pd.DataFrame(index=["s1"]), var=pd.DataFrame(index=["g"])).write_h5ad(tmp_path / "nox.h5ad")
    assert ".X" in input_error(tmp_path / "nox.h5ad")


def test_h5ad_inf_value(tmp_path):
    X = np.array([[1.0, np.inf]])
    ad.AnnData(X=X, obs=pd.DataFrame(index=["s1"]), var=pd.DataFrame(index=["g", "CD4"])).write_h5ad(tmp_path / "m.h5ad")
    msg = input_error(tmp_path / "m.h5ad")
    assert "'CD4'" in msg and "'s1'" in msg


@pytest.mark.filterwarnings("ignore::anndata.OldFormatWarning")
def test_hdf5_that_is_not_anndata(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "plain.h5ad", "w") as f:
        f["data"] = np.arange(3)
    msg = input_error(tmp_path / "plain.h5ad")
    assert "write_h5ad" in msg


def test_truncated_h5ad(tmp_path):
    ad.AnnData(X=np.ones((5, 5))).write_h5ad(tmp_path / "ok.h5ad")
    (tmp_path / "cut.h5ad").write_bytes((tmp_path / "ok.h5ad").read_bytes()[:1500])
    msg = input_error(tmp_path / "cut.h5ad")
    assert str(tmp_path / "cut.h5ad") in msg and "AnnData" in msg


def test_gzipped_h5ad_is_unsupported(tmp_path):
    (tmp_path / "m.h5ad.gz").write_bytes(gzip.compress(b"whatever"))
    assert "'.h5ad.gz'" in input_error(tmp_path / "m.h5ad.gz")


def test_file_without_extension(write):
    assert "unsupported extension" in input_error(write("matrix", "gene\tS1\nG1\t1\n"))


# --------------------------------------------------------------------------- sample sheets
def sheet_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_sample_sheet(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_sample_sheet_reads_covariates(write):
    path = write("sheet.tsv", "sample\tage\tsex\tbatch\n01\t34\tF\tb1\n02\t\tM\t2\n03\t51.5\tNA\tb1\n")
    sheet = read_sample_sheet(path)
    assert list(sheet.index) == ["01", "02", "03"]  # ids stay strings
    np.testing.assert_array_equal(sheet["age"].to_numpy(), [34.0, np.nan, 51.5])
    assert pd.api.types.is_numeric_dtype(sheet["age"])
    assert sheet["sex"].tolist()[:2] == ["F", "M"] and pd.isna(sheet["sex"].iloc[2])
    assert sheet["batch"].tolist() == ["b1", "2", "b1"]  # mixed column stays text


def test_a_sample_sheet_column_with_leading_zeros_is_codes_not_numbers(write, caplog):
    """Site codes '001', '002', '010' were read as the numbers 1, 2, 10, so a model adjusting for the site got one
    slope over the codes' values. A column of numbers of which some are written with leading zeros is text
    (categories), logged; the design then holds one term per level but the first, as patsy's C(site) does."""
    import patsy

    from gexpred.design import encode_covariates

    path = write("sheet.tsv", "sample\tsite\tage\tdose\nA\t001\t5\t0.5\nB\t010\t0\t-0.25\nC\t002\t7\t0\n"
                              "D\t001\t9\t1\n")
    with caplog.at_level(logging.WARNING, logger="gexpred.io"):
        sheet = read_sample_sheet(path)
    assert sheet["site"].tolist() == ["001", "010", "002", "001"]
    assert sheet["age"].tolist() == [5, 0, 7, 9] and sheet["dose"].tolist() == [0.5, -0.25, 0.0, 1.0]
    assert "column 'site' holds numbers written with leading zeros" in caplog.text
    assert "'age'" not in caplog.text and "'dose'" not in caplog.text
    cov, enc = encode_covariates(sheet, ["site"], np.ones(4, dtype=bool))
    want = patsy.dmatrix("C(site)", sheet.reset_index(), return_type="dataframe").drop(columns="Intercept")
    assert enc["site"]["levels"] == ["001", "002", "010"]
    np.testing.assert_array_equal(cov.to_numpy(), want.to_numpy())
    assert [c.replace("site", "C(site)", 1) for c in cov.columns] == list(want.columns)


def test_an_h5ad_matrix_says_what_it_does_not_read(tmp_path, caplog):
    """Only .X of an .h5ad matrix is read. A scanpy file keeps every gene in .raw and the highly variable ones in
    .X: the genes only in .raw were left out without a word (in no dropped table); now a warning names them.
    Layers and obs columns, also not read, are logged."""
    X = np.arange(12.0).reshape(4, 3) + 1
    full = ad.AnnData(X, obs=pd.DataFrame({"batch": list("aabb")}, index=list("pqrs")),
                      var=pd.DataFrame(index=["g1", "g2", "g3"]))
    full.layers["counts"] = X * 10
    full.raw = full
    full[:, ["g1", "g3"]].copy().write_h5ad(tmp_path / "hvg.h5ad")
    with caplog.at_level(logging.INFO, logger="gexpred.io"):
        m = read_matrix(tmp_path / "hvg.h5ad")
    assert list(m.var_names) == ["g1", "g3"]
    np.testing.assert_array_equal(np.asarray(m.X), X[:, [0, 2]])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "only .X (2 genes) is read; its .raw holds 1 gene more (e.g. 'g2')" in warnings[0]
    assert "layers 'counts' are not read" in caplog.text and "obs columns 'batch'" in caplog.text


def test_an_h5ad_given_as_sample_sheet_reads_its_obs(tmp_path):
    """An AnnData file as sample sheet: its obs, indexed by the obs names, as a text sheet of the same values
    would be read (numbers numeric, categories strings, missing values missing, booleans 0/1)."""
    obs = pd.DataFrame({"donor": pd.Categorical(["d1", "d2", None]), "age": [31.5, 40.0, np.nan],
                        "n_genes": np.array([10, 20, 30]), "treated": [True, False, True],
                        "note": ["NA", " x ", "y"]}, index=["c1", "c2", "c3"])
    path = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((3, 1)), obs=obs).write_h5ad(path)
    sheet = read_sample_sheet(path)
    assert list(sheet.index) == ["c1", "c2", "c3"] and sheet.index.name == "sample"
    assert sheet["donor"].tolist()[:2] == ["d1", "d2"] and pd.isna(sheet.loc["c3", "donor"])
    np.testing.assert_array_equal(sheet["age"], [31.5, 40.0, np.nan])
    assert sheet["n_genes"].tolist() == [10, 20, 30] and sheet["treated"].tolist() == [1.0, 0.0, 1.0]
    assert pd.isna(sheet.loc["c1", "note"]) and sheet.loc["c2", "note"] == "x"
    text = tmp_path / "sheet.tsv"
    text.write_text("sample\tage\tn_genes\nc1\t31.5\t10\nc2\t40\t20\nc3\t\t30\n")
    pd.testing.assert_frame_equal(sheet[["age", "n_genes"]], read_sample_sheet(text), check_dtype=False)
    empty = tmp_path / "bare.h5ad"
    ad.AnnData(np.ones((2, 1)), obs=pd.DataFrame(index=["c1", "c2"])).write_h5ad(empty)
    assert "obs has no columns" in sheet_error(empty)


def test_an_h5ad_sample_sheet_reads_nullable_columns_with_missing_values(tmp_path):
    """anndata writes pandas' nullable booleans and integers (``boolean``, ``Int64``); a missing value there is
    pd.NA, which is missing in the sheet (NaN), as an empty cell of a text sheet, not a TypeError traceback."""
    obs = pd.DataFrame({"treated": pd.array([True, None, False], dtype="boolean"),
                        "n_cells": pd.array([4, None, 6], dtype="Int64")}, index=["c1", "c2", "c3"])
    path = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((3, 1)), obs=obs).write_h5ad(path)
    sheet = read_sample_sheet(path)
    text = tmp_path / "sheet.tsv"
    text.write_text("sample\ttreated\tn_cells\nc1\t1\t4\nc2\t\t\nc3\t0\t6\n")
    pd.testing.assert_frame_equal(sheet, read_sample_sheet(text))


def test_an_h5ad_sheets_float32_label_column_reads_as_written(tmp_path):
    """A float32 obs column read as text (labels, a categorical covariate): 0.1 reads '0.1', as a text sheet
    writes it, not '0.10000000149011612' (the float64 it widens to); integral values without '.0' (an audit)."""
    obs = pd.DataFrame({"dose": np.array([0.1, 2.0, 0.25, np.nan], dtype=np.float32)}, index=["c1", "c2", "c3", "c4"])
    path = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((4, 1)), obs=obs).write_h5ad(path)
    sheet = read_sample_sheet(path, text_columns=["dose"])
    assert sheet["dose"].tolist()[:3] == ["0.1", "2", "0.25"] and pd.isna(sheet.loc["c4", "dose"])
    text = tmp_path / "sheet.tsv"
    text.write_text("sample\tdose\nc1\t0.1\nc2\t2\nc3\t0.25\nc4\t\n")
    assert read_sample_sheet(text, text_columns=["dose"])["dose"].tolist()[:3] == ["0.1", "2", "0.25"]


def test_sample_sheet_csv_and_gzip(write, tmp_path):
    write("sheet.csv", "sample,group\ns1,a\ns2,b\n")
    with gzip.open(tmp_path / "sheet.tsv.gz", "wt") as fh:
        fh.write("sample\tgroup\ns1\ta\ns2\tb\n")
    for name in ("sheet.csv", "sheet.tsv.gz"):
        sheet = read_sample_sheet(tmp_path / name)
        assert list(sheet.index) == ["s1", "s2"] and sheet["group"].tolist() == ["a", "b"]


def test_sample_sheet_with_bom_and_spaces(write):
    sheet = read_sample_sheet(write("bom.tsv", "\ufeff sample \tage\n s1 \t3\n"))
    assert list(sheet.index) == ["s1"] and sheet["age"].tolist() == [3]


def test_sample_sheet_missing_sample_column(write):
    msg = sheet_error(write("nosample.tsv", "id\tage\ns1\t3\n"))
    assert "no 'sample' column" in msg and "'id'" in msg


def test_sample_sheet_wrong_case_sample_column(write):
    msg = sheet_error(write("case.tsv", "Sample\tage\ns1\t3\n"))
    assert "'Sample'" in msg and "case-sensitive" in msg


def test_sample_sheet_duplicate_samples(write):
    msg = sheet_error(write("dup.tsv", "sample\tage\nP1\t3\nP2\t4\nP1\t5\n"))
    assert "more than once" in msg and "'P1'" in msg


def test_sample_sheet_row_without_sample_id(write):
    msg = sheet_error(write("noid.tsv", "sample\tage\ns1\t3\n\t4\n"))
    assert "without a sample id" in msg and "line 3" in msg


def test_sample_sheet_ragged_row(write):
    msg = sheet_error(write("ragged.tsv", "sample\tage\ns1\t3\t7\ns2\t4\n"))
    assert "ragged" in msg and "line 2" in msg and "'s1'" in msg


def test_sample_sheet_duplicate_columns(write):
    msg = sheet_error(write("dupcol.tsv", "sample\tage\tage\ns1\t3\t4\n"))
    assert "duplicate column" in msg and "'age'" in msg


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("empty.tsv", b"", "0 bytes"),
        ("blank.tsv", b"\n\n", "empty"),
        ("latin1.tsv", "sample\tcity\ns1\tMünchen\n".encode("latin-1"), "not UTF-8"),
        ("binary.tsv", bytes(range(256)), "not a text table"),
        ("fake.tsv.gz", b"sample\n", "not gzip"),
    ],
)
def test_sample_sheet_unreadable(write, name, content, needle):
    assert needle in sheet_error(write(name, content))


def test_sample_sheet_missing_file(tmp_path):
    assert "does not exist" in sheet_error(tmp_path / "nope.tsv")


# --------------------------------------------------------------------------- gene lists, writers
def test_read_gene_list(write):
    path = write("genes.txt", '# predictors\n"TP53"\n\nBRCA1\textra\n  MYC  \n')
    assert read_gene_list(str(path)) == ["TP53", "BRCA1", "MYC"]
    assert read_gene_list(["A", "B"]) == ["A", "B"]


def test_read_gene_list_errors(write):
    with pytest.raises(InputError, match="lists no gene ids"):
        read_gene_list(str(write("none.txt", "# nothing\n\n")))
    with pytest.raises(InputError, match="not UTF-8"):
        read_gene_list(str(write("bad.txt", b"G\xe9ne\n")))


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writers_round_trip(tmp_path, make_frame):
    df = make_frame(n_genes=3, n_samples=2).reset_index()
    write_table(df, tmp_path / "t.tsv")
    back = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    np.testing.assert_allclose(back[["S0", "S1"]].to_numpy(), df[["S0", "S1"]].to_numpy(), rtol=1e-9)
    a = ad.AnnData(X=df[["S0", "S1"]].to_numpy())
    write_h5ad(a, tmp_path / "a.h5ad")
    np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "a.h5ad").X, a.X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5ad", "t.tsv"]  # no temporary leftovers


# --------------------------------------------------------------------------- property-based
_ID_CHARS = st.characters(exclude_categories=("Cs",))  # any code point that UTF-8 can encode
_ids = st.text(_ID_CHARS, max_size=6)
_values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def _frames(draw, ids=_ids, values=_values):
    n_genes = draw(st.integers(1, 4))
    n_samples = draw(st.integers(1, 4))
    genes = draw(st.lists(ids, min_size=n_genes, max_size=n_genes))
    samples = draw(st.lists(ids, min_size=n_samples, max_size=n_samples))
    cells = draw(st.lists(values, min_size=n_genes * n_samples, max_size=n_genes * n_samples))
    df = pd.DataFrame(np.array(cells, dtype=np.float64).reshape(n_genes, n_samples), index=genes,
                      columns=samples)
    return df, draw(ids)  # and the name of the gene id column


def _read_text(text: str, name: str = "m.tsv"):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        return read_matrix(path)


def _check_contract(adata: ad.AnnData) -> None:
    """What every successful read promises, whatever the input."""
    X = np.asarray(adata.X)
    assert X.dtype == np.float64 and X.shape == (adata.n_obs, adata.n_vars)
    assert adata.n_obs > 0 and adata.n_vars > 0
    assert np.isfinite(X).all()
    for ids in (list(adata.obs_names), list(adata.var_names)):
        assert all(isinstance(i, str) and i != "" and i == i.strip() for i in ids)
        assert len(set(ids)) == len(ids)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames())
def test_property_tsv_reads_right_values_or_gexpred_error(frame):
    df, index_name = frame
    text = df.to_csv(sep="\t", index_label=index_name)
    try:
        adata = _read_text(text)
    except GexpredError:
        return
    _check_contract(adata)
    # it succeeded, so it must have read exactly what was written (ids trimmed)
    assert list(adata.obs_names) == [s.strip() for s in df.columns]
    assert list(adata.var_names) == [g.strip() for g in df.index]
    np.testing.assert_array_equal(np.asarray(adata.X), df.to_numpy().T)


def _non_integer_number(s: str) -> bool:
    """'1.5', 'INF', '3e4': an id the reader takes for a measurement when every id of a matrix is one (a first
    column of values: refused with an InputError, tested elsewhere), so not an id of a clean frame."""
    try:
        float(s)
    except ValueError:
        return False
    return not s.lstrip("+-").isdigit()


_SAFE_ID = st.text(st.sampled_from(string.ascii_letters + string.digits + "_-.:é样 ,'\"\t"), min_size=1, max_size=6) \
    .map(str.strip).filter(lambda s: s != "" and s.lower() not in {"na", "nan", "null", "n/a"}
                           and not _non_integer_number(s))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames(ids=_SAFE_ID, values=st.floats(allow_nan=False, allow_infinity=False, width=64)),
       st.sampled_from(["m.tsv", "m.csv"]))
def test_property_clean_frames_always_round_trip(frame, name):
    df, index_name = frame
    df = df.loc[~df.index.duplicated(), ~df.columns.duplicated()]
    text = df.to_csv(sep="," if name.endswith(".csv") else "\t", index_label=index_name)
    adata = _read_text(text, name)
    assert list(adata.obs_names) == list(df.columns)
    assert list(adata.var_names) == list(df.index)
    np.testing.assert_array_equal(np.asarray(adata.X), df.to_numpy().T)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames(), st.data())
def test_property_damaged_tsv_never_crashes(frame, data):
    df, index_name = frame
    text = df.to_csv(sep="\t", index_label=index_name)
    # damage: cut the text anywhere, and/or drop or add a delimiter somewhere
    cut = data.draw(st.integers(0, len(text)), label="cut")
    text = text[:cut]
    action = data.draw(st.sampled_from(["none", "drop_tab", "add_tab", "add_quote"]), label="action")
    if action != "none" and text:
        pos = data.draw(st.integers(0, len(text) - 1), label="pos")
        if action == "drop_tab":
            tabs = [i for i, c in enumerate(text) if c == "\t"]
            if tabs:
                i = tabs[pos % len(tabs)]
                text = text[:i] + text[i + 1:]
        else:
            text = text[:pos] + ("\t" if action == "add_tab" else '"') + text[pos:]
    try:
        adata = _read_text(text)
    except GexpredError as exc:
        assert str(exc)  # a message, not an empty error
        return
    _check_contract(adata)


def _outcome(text: str):
    try:
        a = _read_text(text)
    except GexpredError:
        return "error"
    return list(a.obs_names), list(a.var_names), np.asarray(a.X).tobytes()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames(), st.integers(0, 10_000))
def test_property_fast_and_fallback_text_readers_agree(frame, cut):
    """pyarrow (fast path) and pandas (fallback) give the same matrix, or both refuse the file."""
    df, index_name = frame
    text = df.to_csv(sep="\t", index_label=index_name)
    text = text[: len(text) - cut % (len(text) + 1) // 4]  # sometimes cut the last rows short
    fast = _outcome(text)
    with mock.patch.object(gexpred.io, "_read_values_arrow", return_value=None):
        slow = _outcome(text)
    assert fast == slow


def test_atomic_outputs_get_normal_file_permissions(tmp_path):
    import os
    import stat

    from gexpred.io import write_table

    old = os.umask(0o022)
    try:
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.tsv")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.tsv").stat().st_mode) == 0o644  # not mkstemp's 0600


# --------------------------------------------------------------------------- h5ad columns without anndata
@pytest.mark.parametrize("block_bytes", [1, 8 * 7 * 3, 64 * 2**20])
def test_read_h5ad_columns_matches_anndata(tmp_path, block_bytes):
    """Some genes of a gexpred .h5ad read with h5py in blocks of samples: anndata's values, names and sources."""
    from gexpred.io import read_h5ad_columns, write_h5ad

    rng = np.random.default_rng(11)
    genes = [f"g{j}" for j in range(7)] + ["ünï code", "1e5"]
    samples = [f"s{i}" for i in range(23)]
    adata = ad.AnnData(X=rng.normal(size=(23, 9)), obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=genes))
    adata.uns["sources"] = ["a.tsv", "b.parquet"]
    path = tmp_path / "x.h5ad"
    write_h5ad(adata, path)
    pick = ["1e5", "g3", "g0", "ünï code", "g3"]  # any order, repeats allowed
    values, got_samples, got_genes, sources = read_h5ad_columns(path, pick, block_bytes=block_bytes)
    want = ad.read_h5ad(path)
    np.testing.assert_array_equal(values, want[:, pick].X)
    assert values.dtype == np.float64 and values.flags.c_contiguous
    assert got_samples == samples and got_genes == genes and sources == ["a.tsv", "b.parquet"]
    none, *_ = read_h5ad_columns(path)
    assert none is None
    every, *_ = read_h5ad_columns(path, "all", block_bytes=block_bytes)
    np.testing.assert_array_equal(every, want.X)


def test_read_h5ad_columns_sparse_falls_back_to_anndata(tmp_path):
    from gexpred.io import read_h5ad_columns

    X = sp.random(12, 5, density=0.4, format="csr", random_state=3)
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"s{i}" for i in range(12)]),
                       var=pd.DataFrame(index=list("abcde")))
    path = tmp_path / "sparse.h5ad"
    adata.write_h5ad(path)
    values, samples, genes, sources = read_h5ad_columns(path, ["e", "a"])
    np.testing.assert_array_equal(values, X.toarray()[:, [4, 0]])
    assert genes == list("abcde") and sources == [str(path)] and len(samples) == 12


def test_read_h5ad_scalars(tmp_path):
    from gexpred.io import read_h5ad_scalars, write_h5ad

    adata = ad.AnnData(X=np.zeros((2, 2)), obs=pd.DataFrame(index=["a", "b"]), var=pd.DataFrame(index=["x", "y"]))
    adata.uns.update({"n_dropped_samples": 3, "ratio": 0.25, "policy": "drop", "sources": ["m.tsv"]})
    write_h5ad(adata, tmp_path / "u.h5ad")
    got = read_h5ad_scalars(tmp_path / "u.h5ad", ["n_dropped_samples", "ratio", "policy", "sources", "absent"])
    assert got == {"n_dropped_samples": 3, "ratio": 0.25, "policy": "drop"}  # not a scalar / absent: left out
    assert type(got["n_dropped_samples"]) is int


# --------------------------------------------------------------------------- stopped while writing
_WRITER = """
import sys, time
from gexpred.cli import exit_on_sigterm
from gexpred.io import atomic_output
exit_on_sigterm()
with atomic_output(sys.argv[1]) as tmp:
    tmp.write_text("half of a table")
    print("writing", flush=True)
    time.sleep(30)
"""


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    """SLURM (time limit, scancel) and Snakemake (cancelled jobs) stop a job with SIGTERM: the gexpred command
    ends with status 143 and removes the temporary file of the output it was writing, which stays absent."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "results" / "table.tsv"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert [p.name.endswith(".part") for p in out.parent.iterdir()] == [True]  # the write is under way
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert list(out.parent.iterdir()) == []



def test_sigterm_while_the_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    """The SIGTERM handler's SystemExit can arrive between the creation of the temporary file and the statement
    that names it (a signal runs its handler at the next bytecode boundary): mkstemp's file was left behind there.
    Simulated deterministically: the exit is raised just after the file is created; nothing is left, for a table
    and for a bundle's directory."""
    import os

    from gexpred.deploy import write_bundle
    from gexpred.io import atomic_output

    real_open, real_mkdir = os.open, os.mkdir

    def open_then_exit(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if str(path).endswith(".part"):
            raise SystemExit(143)
        return fd

    def mkdir_then_exit(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        if os.path.basename(str(path)).startswith(".b."):
            raise SystemExit(143)

    out = tmp_path / "results" / "table.tsv"
    out.parent.mkdir()
    monkeypatch.setattr(os, "open", open_then_exit)
    with pytest.raises(SystemExit):
        with atomic_output(out) as tmp:
            tmp.write_text("never")
    monkeypatch.setattr(os, "open", real_open)
    assert list(out.parent.iterdir()) == []
    monkeypatch.setattr(os, "mkdir", mkdir_then_exit)
    with pytest.raises(SystemExit):
        write_bundle(tmp_path / "results" / "b", target="t", model="ols", task="regression", classes=None,
                     model_params={}, preprocessing={}, reference=pd.DataFrame({"sample": ["s"]}), metrics={},
                     training_fingerprint="x")
    assert list(out.parent.iterdir()) == []

def test_a_sample_sheet_keeps_a_sample_named_na(write):
    """A sample id 'NA' or 'null' is an id in a matrix's header; the sheet read it as a row without a sample id
    (an audit). Only an empty cell is a missing id; 'NA' among the covariates still reads as missing."""
    from gexpred.io import read_sample_sheet

    sheet = read_sample_sheet(write("na.tsv", "sample\tdose\nNA\t1\nnull\tNA\nS3\t2\n"))
    assert list(sheet.index) == ["NA", "null", "S3"] and sheet["dose"].isna().tolist() == [False, True, False]
    with pytest.raises(InputError, match=r"without a sample id \(line 3\)"):
        read_sample_sheet(write("empty.tsv", "sample\tdose\nS1\t1\n\t2\n"))


@pytest.mark.parametrize("name, sep", [("m.tsv", "\t"), ("m.csv", ","), ("m.tsv.gz", "\t")])
@pytest.mark.parametrize("n_samples", [1, 3])
def test_a_comment_line_above_the_header_is_named_with_the_fix(tmp_path, name, sep, n_samples):
    """A comment line above a matrix's header ('# exported by ...') gave "the header has 1 field but line 2 (gene
    'gene') has 4", accurate but no help (and with one sample the comment read as R's header, the header row as
    a gene). Comment lines are not supported (a '#' header of sample ids is a header); the message says which
    line and to delete it."""
    body = "# exported by qc-tool 2.1\n" + sep.join(["gene", *[f"s{i}" for i in range(n_samples)]]) + "\n" + \
        "".join(sep.join([f"G{g}", *[str(g + i) for i in range(n_samples)]]) + "\n" for g in range(3))
    path = tmp_path / name
    (gzip.open if name.endswith(".gz") else open)(path, "wt").write(body)
    with pytest.raises(InputError) as info:
        read_matrix(path)
    msg = str(info.value)
    assert str(path) in msg and "comment line (line 1: '# exported by qc-tool 2.1')" in msg
    assert "not supported" in msg and "Delete the lines starting with '#'" in msg
    # a header whose first field starts with '#' is a header, read as before
    header = tmp_path / ("h.csv" if sep == "," else "h.tsv")
    header.write_text(body.split("\n", 1)[1].replace("gene", "#gene", 1))
    assert list(read_matrix(header).obs_names) == [f"s{i}" for i in range(n_samples)]


def test_a_comment_line_above_a_sample_sheet_header_is_named(tmp_path):
    path = tmp_path / "sheet.tsv"
    path.write_text("# from the LIMS\nsample\tage\ns1\t40\n")
    with pytest.raises(InputError, match=r"comment line \(line 1: '# from the LIMS'\).*not supported"):
        read_sample_sheet(path)
