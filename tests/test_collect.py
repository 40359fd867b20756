"""Combining matrices by sample id and attaching the sample sheet (gexpred.collect).

Expected matrices are computed with pandas (concat / loc) from the frames the
tests wrote, independently of gexpred.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from gexpred.collect import DROPPED_COLUMNS, attach_sample_sheet, combine
from gexpred.errors import InputError
from gexpred.io import read_matrix, read_sample_sheet


def to_file(df: pd.DataFrame, path: Path) -> ad.AnnData:
    """Write a genes x samples frame as TSV and read it back (so uns['source'] is the file)."""
    df.to_csv(path, sep="\t")
    return read_matrix(path)


def assert_samples_by_genes(adata: ad.AnnData, expected: pd.DataFrame) -> None:
    """``adata`` equals ``expected`` (samples x genes), ids and order included."""
    assert list(adata.obs_names) == list(expected.index)
    assert list(adata.var_names) == list(expected.columns)
    assert np.asarray(adata.X).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(adata.X), expected.to_numpy(dtype=np.float64))


def dropped_ids(dropped: pd.DataFrame, kind: str, file: str | Path) -> set[str]:
    rows = dropped[(dropped["kind"] == kind) & (dropped["file"] == str(file))]
    return set(rows["id"])


# --------------------------------------------------------------------------- stacking
def test_stack_disjoint_samples_on_shared_genes(make_frame, tmp_path):
    a = make_frame(genes=[f"g{i}" for i in range(10)], samples=[f"a{j}" for j in range(5)])
    b = make_frame(genes=[f"g{i}" for i in (12, 3, 9, 4, 11, 5, 6, 7, 8, 10)], samples=[f"b{j}" for j in range(4)])
    combined, dropped = combine([to_file(a, tmp_path / "a.tsv"), to_file(b, tmp_path / "b.tsv")])

    shared = [g for g in a.index if g in set(b.index)]
    expected = pd.concat([a.loc[shared].T, b.loc[shared].T], axis=0)
    assert_samples_by_genes(combined, expected)

    assert list(dropped.columns) == DROPPED_COLUMNS
    assert set(dropped["kind"]) == {"gene"}
    assert dropped_ids(dropped, "gene", tmp_path / "a.tsv") == set(a.index) - set(b.index) == {"g0", "g1", "g2"}
    assert dropped_ids(dropped, "gene", tmp_path / "b.tsv") == set(b.index) - set(a.index) == {"g10", "g11", "g12"}
    assert len(dropped) == 6 and dropped["reason"].str.len().gt(0).all()


def test_stack_same_genes_drops_nothing(make_frame):
    genes = ["x", "y", "z"]
    a = make_frame(genes=genes, samples=["s1", "s2"])
    b = make_frame(genes=genes[::-1], samples=["s3"])
    ma = ad.AnnData(a.T.copy(), uns={"source": "a.tsv"})
    mb = ad.AnnData(b.T.copy(), uns={"source": "b.tsv"})
    combined, dropped = combine([ma, mb])
    assert_samples_by_genes(combined, pd.concat([a.T, b.T[genes]]))
    assert dropped.empty and list(dropped.columns) == DROPPED_COLUMNS


def test_three_way_stack_attributes_dropped_genes_to_every_file(make_frame):
    a = make_frame(genes=["g1", "g2", "g3"], samples=["a1"])
    b = make_frame(genes=["g1", "g2", "g4"], samples=["b1", "b2"])
    c = make_frame(genes=["g1", "g3", "g4"], samples=["c1"])
    mats = [ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in zip("abc", (a, b, c))]
    combined, dropped = combine(mats)
    assert_samples_by_genes(combined, pd.concat([a.T[["g1"]], b.T[["g1"]], c.T[["g1"]]]))
    got = {(r.id, r.file) for r in dropped.itertuples()}  # one row per gene, naming every file that had it
    assert got == {("g2", "a.tsv + b.tsv"), ("g3", "a.tsv + c.tsv"), ("g4", "b.tsv + c.tsv")}


def test_the_reason_names_the_files_that_lack_a_dropped_id(make_frame):
    """The reason said 'not measured in every stacked matrix' beside the file the gene was read from, so a target
    measured only in b.tsv read as "'G0': not measured in every stacked matrix (b.tsv)", pointing at the file that
    has it (an audit). It names the stacked (joined) files that lack the gene (sample), as set differences of the
    ids say; the file column still names those it was read from."""
    a = make_frame(genes=["g1", "g2", "g3"], samples=["s1", "s2"])
    b = make_frame(genes=["g1", "g2", "g4"], samples=["s3"])
    c = make_frame(genes=["g1", "g3", "g4"], samples=["s4"])
    h = make_frame(genes=["h1"], samples=["s1", "s2", "s3"])  # joined: s4 is not in it
    frames = dict(zip(("a", "b", "c", "h"), (a, b, c, h)))
    mats = [ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in frames.items()]
    _, dropped = combine(mats)
    reasons = {(r.kind, r.id): r.reason for r in dropped.itertuples()}
    stacked = ("a", "b", "c")
    for gene in ("g2", "g3", "g4"):
        lacking = [f"'{n}.tsv'" for n in stacked if gene not in set(frames[n].index)]
        assert reasons[("gene", gene)].startswith(f"not in {' nor '.join(lacking)}, stacked with"), reasons
    assert reasons[("sample", "s4")].startswith("not in 'h.tsv', joined with"), reasons


# --------------------------------------------------------------------------- joining
def test_join_same_samples_on_different_genes(make_frame, tmp_path):
    a = make_frame(genes=[f"g{i}" for i in range(4)], samples=[f"s{j}" for j in range(6)])
    b = make_frame(genes=["h0", "h1", "h2"], samples=["s7", "s4", "s2", "s8", "s3", "s5", "s6"])
    combined, dropped = combine([to_file(a, tmp_path / "rna.tsv"), to_file(b, tmp_path / "prot.tsv")])

    shared = [s for s in a.columns if s in set(b.columns)]
    expected = pd.concat([a.T.loc[shared], b.T.loc[shared]], axis=1)
    assert_samples_by_genes(combined, expected)

    assert set(dropped["kind"]) == {"sample"}
    assert dropped_ids(dropped, "sample", tmp_path / "rna.tsv") == {"s0", "s1"}
    assert dropped_ids(dropped, "sample", tmp_path / "prot.tsv") == {"s6", "s7", "s8"}
    assert len(dropped) == 5


def test_stack_then_join_attributes_dropped_samples_to_their_file(make_frame):
    a = make_frame(genes=["g1", "g2"], samples=["s1", "s2", "s3"])
    b = make_frame(genes=["g2", "g1"], samples=["s4", "s5", "s6"])
    c = make_frame(genes=["h1"], samples=["s5", "s1", "s2", "s4", "s3"])
    mats = [ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in zip("abc", (a, b, c))]
    combined, dropped = combine(mats)
    stacked = pd.concat([a.T, b.T[["g1", "g2"]]])
    kept = [s for s in stacked.index if s in set(c.columns)]
    assert_samples_by_genes(combined, pd.concat([stacked.loc[kept], c.T.loc[kept]], axis=1))
    assert [(r.kind, r.id, r.file) for r in dropped.itertuples()] == [("sample", "s6", "b.tsv")]


def test_ids_spelt_two_ways_are_named_together_when_dropped(make_frame, caplog):
    """A sample spelt 'S3' in one file and 's3' in another is in neither matrix alone: both are dropped (as
    pandas' inner join drops them) and listed; the warning names them as one id spelt two ways, with their files;
    so do genes with and without a version suffix ('ENSG1' / 'ENSG1.4') in stacked matrices."""
    import logging

    a = make_frame(genes=["g1", "ENSG1"], samples=["S1", "S2", "S3"])
    b = make_frame(genes=["g1", "ENSG1.4"], samples=["S4"])
    c = make_frame(genes=["h1"], samples=["S1", "S2", "s3", "S4"])
    mats = [ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in zip("abc", (a, b, c))]
    with caplog.at_level(logging.WARNING, logger="gexpred.collect"):
        combined, dropped = combine(mats)
    stacked = pd.concat([a.T[["g1"]], b.T[["g1"]]])
    expected = stacked.join(c.T, how="inner")
    assert_samples_by_genes(combined, expected.loc[list(combined.obs_names)])
    assert sorted(combined.obs_names) == sorted(expected.index) == ["S1", "S2", "S4"]
    assert {(r.kind, r.id, r.file) for r in dropped.itertuples()} == {
        ("gene", "ENSG1", "a.tsv"), ("gene", "ENSG1.4", "b.tsv"), ("sample", "S3", "a.tsv"), ("sample", "s3", "c.tsv")}
    text = " ".join(caplog.text.split())
    assert "1 id is spelt differently in different files: 'S3' (a.tsv) / 's3' (c.tsv)" in text
    assert "'ENSG1' (a.tsv) / 'ENSG1.4' (b.tsv)" in text


def test_numeric_ids_with_and_without_leading_zeros_are_named_together_when_dropped(make_frame, caplog):
    """Sample '007' in one file and '7' in another (a spreadsheet drops the zeros) are one sample spelt two ways:
    both are dropped and listed, and the warning pairs them; '7' and '70' are not paired."""
    import logging

    a = make_frame(genes=["g1"], samples=["001", "007", "070"])
    b = make_frame(genes=["h1"], samples=["001", "7", "70"])
    mats = [ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in zip("ab", (a, b))]
    with caplog.at_level(logging.WARNING, logger="gexpred.collect"):
        combined, dropped = combine(mats)
    assert_samples_by_genes(combined, a.T.join(b.T, how="inner"))
    assert sorted(dropped["id"]) == ["007", "070", "7", "70"]
    text = " ".join(caplog.text.split())
    assert "2 ids are spelt differently in different files: '007' (a.tsv) / '7' (b.tsv); '070' (a.tsv) / '70' " \
           "(b.tsv)" in text and "leading zeros included" in text


# --------------------------------------------------------------------------- conflicts
def test_overlap_in_samples_and_genes_is_an_error_naming_both_files(make_frame, tmp_path):
    a = make_frame(genes=["g1", "g2", "g3"], samples=["s1", "s2"])
    b = make_frame(genes=["g2", "g3", "g4"], samples=["s2", "s3"])
    ma, mb = to_file(a, tmp_path / "batch1.tsv"), to_file(b, tmp_path / "batch2.tsv")
    with pytest.raises(InputError) as info:
        combine([ma, mb])
    msg = str(info.value)
    assert str(tmp_path / "batch1.tsv") in msg and str(tmp_path / "batch2.tsv") in msg
    assert "'s2'" in msg and "'g2'" in msg and "ambiguous" in msg


def test_no_overlap_at_all_is_an_error_naming_both_files(make_frame, tmp_path):
    ma = to_file(make_frame(genes=["g1"], samples=["s1"]), tmp_path / "one.tsv")
    mb = to_file(make_frame(genes=["G1"], samples=["S1"]), tmp_path / "two.tsv")
    with pytest.raises(InputError) as info:
        combine([ma, mb])
    msg = str(info.value)
    assert str(tmp_path / "one.tsv") in msg and str(tmp_path / "two.tsv") in msg
    assert "share no samples and no genes" in msg


def test_conflict_with_a_third_matrix_names_the_two_files(make_frame):
    a = make_frame(genes=["g1"], samples=["s1"])
    b = make_frame(genes=["g1"], samples=["s2"])
    c = make_frame(genes=["g1"], samples=["s1"])
    mats = [ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in zip("abc", (a, b, c))]
    with pytest.raises(InputError, match=r"'a\.tsv' and 'c\.tsv' share 1 sample \("):
        combine(mats)


def _mosaic(make_frame):
    """Genes g0-g3 of samples a0-a2 (a), genes h0-h2 of the same samples (b), genes g0-g3 of samples c0-c3 (c):
    a block (h genes of the c samples) is measured nowhere."""
    a = make_frame(genes=[f"g{i}" for i in range(4)], samples=["a0", "a1", "a2"])
    b = make_frame(genes=["h0", "h1", "h2"], samples=["a2", "a0", "a1"])
    c = make_frame(genes=["g2", "g0", "g3", "g1"], samples=[f"c{j}" for j in range(4)])
    return {n: ad.AnnData(df.T.copy(), uns={"source": f"{n}.tsv"}) for n, df in zip("abc", (a, b, c))}, a, b, c


@pytest.mark.parametrize("order", ["abc", "acb", "bac", "bca", "cab", "cba"])
def test_combination_does_not_depend_on_the_order_of_the_files(make_frame, order):
    """Those sharing genes are stacked first (a, c: every sample on g0-g3), then the stack joined with b on the
    samples they share (a0-a2): the same table and the same dropped ids whatever the order, and every id the
    dropped table lists is absent from the result, every id absent from it listed."""
    mats, a, b, c = _mosaic(make_frame)
    combined, dropped = combine([mats[n] for n in order])
    values = pd.DataFrame(np.asarray(combined.X), index=combined.obs_names, columns=combined.var_names)
    expected = pd.concat([a.T, b.T.loc[a.columns]], axis=1)
    pd.testing.assert_frame_equal(values.sort_index().sort_index(axis=1),
                                  expected.astype(np.float64).sort_index().sort_index(axis=1), check_names=False)
    assert {(r.kind, r.id, r.file) for r in dropped.itertuples()} == {("sample", f"c{j}", "c.tsv") for j in range(4)}
    every_sample = {s for m in mats.values() for s in m.obs_names}
    every_gene = {g for m in mats.values() for g in m.var_names}
    assert set(dropped.loc[dropped["kind"] == "sample", "id"]) == every_sample - set(combined.obs_names)
    assert set(dropped.loc[dropped["kind"] == "gene", "id"]) == every_gene - set(combined.var_names)


def test_stacked_matrices_without_a_common_gene_are_an_error(make_frame):
    """a and b share g1, b and c share g2, but no gene is in all three: refused, naming the files."""
    mats = [ad.AnnData(make_frame(genes=g, samples=[f"{n}1"]).T.copy(), uns={"source": f"{n}.tsv"})
            for n, g in zip("abc", (["g1"], ["g1", "g2"], ["g2"]))]
    with pytest.raises(InputError, match=r"a\.tsv \+ b\.tsv \+ c\.tsv are stacked .* no gene is in all of them"):
        combine(mats)


def test_no_matrices():
    with pytest.raises(InputError, match="No matrices"):
        combine([])


def test_single_matrix_is_returned_as_float64_with_empty_dropped(make_frame):
    df = make_frame(genes=["g1", "g2"], samples=["s1", "s2", "s3"])
    m = ad.AnnData(df.T.astype(np.float32).copy(), uns={"source": "m.tsv"})
    combined, dropped = combine([m])
    assert_samples_by_genes(combined, df.T.astype(np.float32).astype(np.float64))
    assert dropped.empty and list(dropped.columns) == DROPPED_COLUMNS


def test_combine_does_not_modify_its_inputs(make_frame):
    a = make_frame(genes=["g1", "g2"], samples=["s1"])
    b = make_frame(genes=["g2", "g3"], samples=["s2"])
    ma, mb = ad.AnnData(a.T.copy()), ad.AnnData(b.T.copy())
    combine([ma, mb])
    assert list(ma.var_names) == ["g1", "g2"] and list(mb.var_names) == ["g2", "g3"]
    np.testing.assert_array_equal(ma.X, a.T.to_numpy())


# --------------------------------------------------------------------------- sample sheet
def test_attach_sample_sheet(make_frame, write):
    df = make_frame(genes=["g1", "g2"], samples=["s2", "s1", "s3"])
    m = ad.AnnData(df.T.copy())
    sheet_path = write("sheet.tsv", "sample\tage\tgroup\ns1\t40\tctrl\ns2\t51\tcase\ns3\t\tcase\ns9\t60\tctrl\n")
    sheet = read_sample_sheet(sheet_path)
    out, dropped = attach_sample_sheet(m, sheet, str(sheet_path))

    assert list(out.obs_names) == ["s2", "s1", "s3"]
    np.testing.assert_array_equal(out.obs["age"].to_numpy(), [51.0, 40.0, np.nan])
    assert out.obs["group"].tolist() == ["case", "ctrl", "case"]
    np.testing.assert_array_equal(out.X, df.T.to_numpy())  # values untouched
    assert [(r.kind, r.id, r.file) for r in dropped.itertuples()] == [("sample", "s9", str(sheet_path))]
    assert list(dropped.columns) == DROPPED_COLUMNS
    assert "age" not in m.obs  # input not modified


def test_attach_sample_sheet_missing_samples_is_an_error(make_frame, write):
    m = ad.AnnData(make_frame(genes=["g1"], samples=["s1", "P-17", "P-18"]).T.copy())
    sheet_path = write("sheet.tsv", "sample\tage\ns1\t40\n")
    with pytest.raises(InputError) as info:
        attach_sample_sheet(m, read_sample_sheet(sheet_path), str(sheet_path))
    msg = str(info.value)
    assert str(sheet_path) in msg and "'P-17'" in msg and "'P-18'" in msg and "2 of the 3" in msg


@pytest.mark.parametrize("ghosts", [["s9"], ["s8", "s9"]])
def test_sample_sheet_rows_in_no_matrix_are_counted_in_good_english(make_frame, write, caplog, ghosts):
    # the warning read "lists 1 samples that are in no matrix"
    m = ad.AnnData(make_frame(genes=["g1"], samples=["s1"]).T.copy())
    sheet_path = write("sheet.tsv", "sample\tage\ns1\t40\n" + "".join(f"{g}\t50\n" for g in ghosts))
    with caplog.at_level(logging.WARNING, logger="gexpred.collect"):
        attach_sample_sheet(m, read_sample_sheet(sheet_path), str(sheet_path))
    n = len(ghosts)
    want = "lists 1 sample that is in no matrix" if n == 1 else f"lists {n} samples that are in no matrix"
    assert want in caplog.text


def test_attach_sample_sheet_matches_string_ids_exactly(make_frame, write):
    # '01' in the matrix must match '01' in the sheet, not 1
    m = ad.AnnData(make_frame(genes=["g1"], samples=["01", "02"]).T.copy())
    sheet_path = write("sheet.tsv", "sample\tbatch\n02\t7\n01\t3\n1\t9\n")
    out, dropped = attach_sample_sheet(m, read_sample_sheet(sheet_path), str(sheet_path))
    assert out.obs["batch"].tolist() == [3, 7]
    assert dropped["id"].tolist() == ["1"]


def test_a_sample_dropped_by_the_join_is_listed_once_with_its_own_reason(make_frame, write, tmp_path):
    # s5 is in rna.tsv but not in prot.tsv: the join leaves it out. The sheet has a row for it, which must not
    # be listed again as "in the sample sheet but in no matrix" (it is in a matrix), nor counted twice.
    from gexpred.cli import main
    from gexpred.io import read_table

    samples = [f"s{j}" for j in range(6)]
    make_frame(genes=["g1", "g2"], samples=samples).to_csv(tmp_path / "rna.tsv", sep="\t")
    make_frame(genes=["h1"], samples=samples[:5]).to_csv(tmp_path / "prot.tsv", sep="\t")
    sheet = write("sheet.tsv", "sample\tage\n" + "".join(f"{s}\t{40 + k}\n" for k, s in enumerate(samples))
                  + "s9\t70\n")
    assert main(["collect", "--matrix", str(tmp_path / "rna.tsv"), "--matrix", str(tmp_path / "prot.tsv"),
                 "--sample-sheet", str(sheet), "--out", str(tmp_path / "c.h5ad"),
                 "--dropped", str(tmp_path / "dropped.tsv")]) == 0
    dropped = read_table(tmp_path / "dropped.tsv", dtype=str)
    rows = sorted(zip(dropped["id"], dropped["file"]))
    assert rows == [("s5", str(tmp_path / "rna.tsv")), ("s9", str(sheet))]
    assert ad.read_h5ad(tmp_path / "c.h5ad").uns["n_dropped_samples"] == 2


def test_attach_sample_sheet_skips_the_samples_combining_dropped(make_frame, write):
    m = ad.AnnData(make_frame(genes=["g1"], samples=["s1", "s2"]).T.copy())
    sheet_path = write("sheet.tsv", "sample\tage\ns1\t40\ns2\t41\ns3\t42\ns4\t43\n")
    _, dropped = attach_sample_sheet(m, read_sample_sheet(sheet_path), str(sheet_path), dropped_samples=["s3"])
    assert dropped["id"].tolist() == ["s4"]


def test_a_transposed_matrix_is_named_as_such_against_the_sample_sheet(make_frame, write):
    # samples x genes by mistake: the "samples" of the matrix are genes, the sheet's samples are its "genes"
    genes, samples = ["TP53", "MYC", "GATA1"], ["p1", "p2", "p3", "p4"]
    m = ad.AnnData(make_frame(genes=samples, samples=genes).T.copy())
    sheet_path = write("sheet.tsv", "sample\tage\n" + "".join(f"{s}\t40\n" for s in samples))
    with pytest.raises(InputError) as info:
        attach_sample_sheet(m, read_sample_sheet(sheet_path), str(sheet_path))
    msg = str(info.value)
    assert "transposed" in msg and "'p1'" in msg and "'TP53'" in msg and str(sheet_path) in msg


@pytest.mark.parametrize("policy", ["error", "drop_genes", "impute_mean"])
def test_an_empty_sample_is_named_whatever_the_policy(policy):
    from gexpred.collect import apply_missing_policy

    X = np.arange(12, dtype=float).reshape(4, 3)
    X[2] = np.nan  # sample s2 has no value at all
    X[0, 1] = np.nan
    m = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"s{i}" for i in range(4)]),
                   var=pd.DataFrame(index=["g0", "g1", "g2"]))
    m.uns["source"] = "m.tsv"
    with pytest.raises(InputError) as e:
        apply_missing_policy(m, [m], policy)
    msg = str(e.value)
    assert "no value at all for 1 sample: 's2'" in msg and "m.tsv" in msg and "remove it from the matrix" in msg


def _option_help(verb: str, option: str, capsys) -> str:
    from gexpred.cli import main

    with pytest.raises(SystemExit):
        main([verb, "--help"])
    text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)[1]
    return text.split(f"{option} {option.lstrip('-').upper().replace('-', '_')} ", 1)[1].split(" --", 1)[0]


def test_collect_help_names_every_format_the_readers_take(make_frame, write, tmp_path, capsys):
    """`collect --help` called the sample sheet a "TSV" (CSV and an .h5ad's obs are read too) and every matrix
    "genes x samples" (an .h5ad holds samples in obs). Each format the help names is read here."""
    sheet_help = _option_help("collect", "--sample-sheet", capsys)
    matrix_help = _option_help("collect", "--matrix", capsys)
    for word in ("TSV", "CSV", ".gz", ".h5ad", "obs"):
        assert word in sheet_help, word
    for word in ("TSV", "CSV", ".gz", "parquet", ".h5ad", "samples in obs"):
        assert word in matrix_help, word
    # the claims hold: the same sheet as TSV, CSV and an .h5ad's obs reads the same
    tsv = read_sample_sheet(write("s.tsv", "sample\tage\ns1\t40\ns2\t51\n"))
    csv = read_sample_sheet(write("s.csv", "sample,age\ns1,40\ns2,51\n"))
    obs = pd.DataFrame({"age": [40.0, 51.0]}, index=pd.Index(["s1", "s2"]))
    ad.AnnData(np.zeros((2, 1)), obs=obs).write_h5ad(tmp_path / "s.h5ad")
    h5 = read_sample_sheet(tmp_path / "s.h5ad")
    pd.testing.assert_series_equal(tsv["age"], csv["age"])
    np.testing.assert_array_equal(h5.loc[list(tsv.index), "age"].to_numpy(), tsv["age"].to_numpy())
