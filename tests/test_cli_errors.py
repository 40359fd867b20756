"""User-facing errors of ``gexpred collect`` at the command-line level.

A bad input must give a non-zero exit status, one clear message on stderr (no
traceback) and no output file, not even a partial one.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from gexpred.cli import main

pytestmark = pytest.mark.usefixtures("restore_logging")


def flat(text: str) -> str:
    """Collapse whitespace: the CLI wraps its message at 100 columns."""
    return " ".join(text.split())


def run_collect(tmp_path: Path, matrices: list[Path], sheet: Path | None = None) -> tuple[int, dict[str, Path]]:
    out = {"out": tmp_path / "results" / "data.h5ad", "dropped": tmp_path / "results" / "dropped.tsv",
           "log": tmp_path / "logs" / "collect.log"}
    argv = ["collect"]
    for m in matrices:
        argv += ["--matrix", str(m)]
    if sheet is not None:
        argv += ["--sample-sheet", str(sheet)]
    argv += ["--out", str(out["out"]), "--dropped", str(out["dropped"]), "--log", str(out["log"])]
    return main(argv), out


def assert_failed_cleanly(rc: int, out: dict[str, Path], err: str, needles: list[str]) -> None:
    assert rc != 0
    assert "Traceback" not in err
    text = flat(err)
    for needle in needles:
        assert flat(needle) in text, f"{needle!r} missing from stderr: {err}"
    assert not out["out"].exists() and not out["dropped"].exists()
    results = out["out"].parent
    leftovers = list(results.iterdir()) if results.exists() else []
    assert leftovers == [], f"partial output left behind: {leftovers}"
    # the message also goes to the log file
    assert flat(needles[0]) in flat(out["log"].read_text())


def test_collect_bad_matrix_fails_cleanly(bad_matrix, tmp_path, capsys):
    path, needles = bad_matrix
    rc, out = run_collect(tmp_path, [path])
    assert_failed_cleanly(rc, out, capsys.readouterr().err, [str(path), *needles])


def test_collect_good_then_bad_matrix_writes_nothing(make_frame, write, tmp_path, capsys):
    good = tmp_path / "good.tsv"
    make_frame(genes=["G1", "G2"], samples=["a", "b"]).to_csv(good, sep="\t")
    bad = write("bad.tsv", "gene\tc\td\nG1\t1\t2\nG2\t3\toops\n")
    rc, out = run_collect(tmp_path, [good, bad])
    assert_failed_cleanly(rc, out, capsys.readouterr().err, [str(bad), "'G2'", "'d'", "'oops'"])


def test_collect_overlapping_matrices_fails_cleanly(make_frame, tmp_path, capsys):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    make_frame(genes=["G1", "G2"], samples=["s1", "s2"]).to_csv(a, sep="\t")
    make_frame(genes=["G2", "G3"], samples=["s2", "s3"]).to_csv(b, sep="\t")
    rc, out = run_collect(tmp_path, [a, b])
    assert_failed_cleanly(rc, out, capsys.readouterr().err, [str(a), str(b), "ambiguous"])


@pytest.mark.parametrize(
    "sheet_text, needles",
    [
        ("id\tage\ns1\t1\ns2\t2\n", ["no 'sample' column"]),
        ("sample\tage\ns1\t1\ns1\t2\ns2\t3\n", ["more than once", "'s1'"]),
        ("sample\tage\ns1\t1\n", ["no row for 1 of the 2 samples", "'s2'"]),
    ],
    ids=["no sample column", "duplicate samples", "sample missing from sheet"],
)
def test_collect_bad_sample_sheet_fails_cleanly(sheet_text, needles, make_frame, write, tmp_path, capsys):
    m = tmp_path / "m.tsv"
    make_frame(genes=["G1"], samples=["s1", "s2"]).to_csv(m, sep="\t")
    sheet = write("sheet.tsv", sheet_text)
    rc, out = run_collect(tmp_path, [m], sheet)
    assert_failed_cleanly(rc, out, capsys.readouterr().err, [str(sheet), *needles])


def test_collect_success_writes_both_outputs(make_frame, write, tmp_path, capsys):
    a = make_frame(genes=["G1", "G2", "G3"], samples=["s1", "s2"])
    b = make_frame(genes=["G3", "G1", "G9"], samples=["s3"])
    pa, pb = tmp_path / "a.tsv", tmp_path / "b.csv.gz"
    a.to_csv(pa, sep="\t")
    b.to_csv(pb)
    sheet = write("sheet.tsv", "sample\tgroup\ns1\tx\ns2\ty\ns3\tx\ns4\ty\n")
    rc, out = run_collect(tmp_path, [pa, pb], sheet)
    assert rc == 0, capsys.readouterr().err

    data = ad.read_h5ad(out["out"])
    expected = pd.concat([a.loc[["G1", "G3"]].T, b.loc[["G1", "G3"]].T])
    assert list(data.obs_names) == list(expected.index)
    assert list(data.var_names) == list(expected.columns)
    np.testing.assert_array_equal(np.asarray(data.X), expected.to_numpy())
    assert data.obs["group"].tolist() == ["x", "y", "x"]

    dropped = pd.read_csv(out["dropped"], sep="\t", dtype=str)
    assert list(dropped.columns) == ["kind", "id", "file", "reason"]
    assert {(r.kind, r.id, r.file) for r in dropped.itertuples()} == {
        ("gene", "G2", str(pa)), ("gene", "G9", str(pb)), ("sample", "s4", str(sheet))}
    assert sorted(p.name for p in out["out"].parent.iterdir()) == ["data.h5ad", "dropped.tsv"]
    # the dropped genes travel with the data, so that a later step naming one says why it is absent
    assert dict(zip(data.uns["dropped_genes"]["id"], data.uns["dropped_genes"]["file"])) == {"G2": str(pa),
                                                                                              "G9": str(pb)}
    assert "Traceback" not in capsys.readouterr().err


def test_collect_success_with_nothing_dropped_writes_header_only_table(make_frame, tmp_path):
    m = tmp_path / "m.parquet"
    make_frame(genes=["G1"], samples=["s1"]).to_parquet(m)
    rc, out = run_collect(tmp_path, [m])
    assert rc == 0
    assert out["dropped"].read_text().strip() == "kind\tid\tfile\treason"
    assert ad.read_h5ad(out["out"]).shape == (1, 1)


def test_collect_sample_sheet_case_only_mismatch_is_named(make_frame, write, tmp_path, capsys):
    m = tmp_path / "m.tsv"
    make_frame(genes=["G1"], samples=["S1", "S2"]).to_csv(m, sep="\t")
    sheet = write("sheet.tsv", "sample\tage\ns1\t1\ns2\t2\n")
    rc, out = run_collect(tmp_path, [m], sheet)
    assert_failed_cleanly(rc, out, capsys.readouterr().err,
                          [str(sheet), "no row for 2 of the 2 samples", "'S1' -> 's1'", "case-sensitive"])


def test_collect_sample_sheet_without_leading_zeros_is_named(make_frame, write, tmp_path, capsys):
    """A sheet saved by a spreadsheet program writes the matrix's sample ids '001', '002' as 1, 2: the message
    pairs them and says why, instead of a bare 'no row for 2 of the 2 samples'."""
    m = tmp_path / "m.tsv"
    make_frame(genes=["G1"], samples=["001", "002"]).to_csv(m, sep="\t")
    sheet = write("sheet.csv", "sample,age\n1,30\n2,40\n")
    rc, out = run_collect(tmp_path, [m], sheet)
    assert_failed_cleanly(rc, out, capsys.readouterr().err,
                          [str(sheet), "no row for 2 of the 2 samples", "'001' -> '1', '002' -> '2'",
                           "leading zeros included"])


def test_collect_output_is_a_directory_leaves_nothing(make_frame, tmp_path, capsys):
    m = tmp_path / "m.tsv"
    make_frame(genes=["G1"], samples=["s1"]).to_csv(m, sep="\t")
    out_dir = tmp_path / "results" / "data.h5ad"
    out_dir.mkdir(parents=True)
    dropped, log = tmp_path / "results" / "dropped.tsv", tmp_path / "collect.log"
    rc = main(["collect", "--matrix", str(m), "--out", str(out_dir), "--dropped", str(dropped), "--log", str(log)])
    err = flat(capsys.readouterr().err)
    assert rc == 1 and "Traceback" not in err and f"Output path '{out_dir}' is a directory" in err
    assert not dropped.exists() and list(out_dir.iterdir()) == []


def test_a_matrix_where_collected_data_is_expected_is_refused(make_frame, tmp_path, capsys):
    m = tmp_path / "m.tsv"
    make_frame(genes=["G1"], samples=["s1", "s2"]).to_csv(m, sep="\t")
    out = tmp_path / "splits.tsv"
    rc = main(["split", "--data", str(m), "--test-fraction", "0.5", "--seed", "0", "--out", str(out),
               "--log", str(tmp_path / "s.log")])
    err = flat(capsys.readouterr().err)
    assert rc == 1 and "Traceback" not in err
    assert f"'{m}' is not an .h5ad file" in err and "gexpred collect --matrix" in err
    assert not out.exists()


def test_sample_sheet_missing_words_are_missing_and_typos_logged(write, caplog):
    from gexpred.io import read_sample_sheet

    sheet = write("sheet.tsv", "sample\tage\tpheno\tdose\n" + "".join(
        f"s{i}\t{'NaN' if i == 0 else 20 + i}\t{'nan' if i < 2 else 'high'}\t{'1O' if i == 3 else i}\n"
        for i in range(8)))
    with caplog.at_level("WARNING", logger="gexpred.io"):
        df = read_sample_sheet(sheet)
    assert df["age"].dtype == np.float64 and np.isnan(df.loc["s0", "age"]) and df.loc["s5", "age"] == 25
    assert df["pheno"].isna().tolist() == [True, True] + [False] * 6
    # 'dose' is numbers but for a typo: read as categories, and the typo named in a warning
    assert df["dose"].dtype == object
    text = flat(caplog.text)
    assert "column 'dose' holds numbers but for 1 value" in text and "'1O' (sample 's3')" in text


def test_covariate_named_like_a_gene_is_refused_whatever_the_predictors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    samples = [f"s{i}" for i in range(30)]
    data = ad.AnnData(X=rng.normal(size=(30, 4)), obs=pd.DataFrame({"G3": rng.normal(size=30)}, index=samples),
                      var=pd.DataFrame(index=["G0", "G1", "G2", "G3"]))
    data.write_h5ad(tmp_path / "data.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 24 + ["test"] * 6}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    # G3 is not among G0's predictors: the name clash is refused all the same
    pd.DataFrame({"target": "G0", "rank": [1, 2], "gene": ["G1", "G2"], "train_corr": [0.5, 0.4]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    out = tmp_path / "ols" / "G0"
    rc = main(["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
               "--predictors", str(tmp_path / "predictors.tsv"), "--target", "G0", "--covariate", "G3",
               "--out-dir", str(out), "--log", str(tmp_path / "ols.log")])
    err = flat(capsys.readouterr().err)
    assert rc == 1 and "Traceback" not in err
    assert "Covariates 'G3' (ols.covariates, columns of the sample sheet) are also gene ids" in err
    assert "'G3_covariate'" in err and not out.exists()


def test_fold_predictors_keep_the_width_when_a_fold_ranks_fewer_required_genes_high(tmp_path):
    """top_correlated K with required genes (interactions, gene sets): where the whole training split ranks a
    required gene among its first K but a fold does not, the fold's K is narrowed so that every fold's design
    has the whole split's width (it failed with 'use fewer folds'). Data searched over seeds for that case; the
    fold widths and choices are checked against numpy correlations."""
    from gexpred.search import kfold

    k, req = 3, ["R1", "R2"]
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n = 36
        y = rng.normal(size=n)
        cols = {"T": y}
        for i in range(5):
            cols[f"A{i}"] = y * (0.9 - 0.1 * i) + rng.normal(size=n)
        cols["R1"] = y * 0.75 + rng.normal(size=n)  # around the K-th correlation: in or out by fold
        cols["R2"] = rng.normal(size=n)
        X = pd.DataFrame(cols)
        samples = [f"s{i}" for i in range(n)]
        folds = kfold(samples, 3, 0)

        def top(rows):
            r = X.loc[rows].corr()["T"].drop("T").abs().sort_values(ascending=False, kind="stable")
            return list(r.index[:k])

        whole_in = "R1" in top(range(n))
        fold_in = ["R1" in top(np.flatnonzero(folds != f)) for f in range(3)]
        if whole_in and not all(fold_in):
            break
    else:
        pytest.skip("no seed gave the case")
    data = ad.AnnData(X=X.to_numpy(), obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=list(X.columns)))
    data.write_h5ad(tmp_path / "d.h5ad")
    pd.DataFrame({"sample": samples, "split": "train"}).to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "T", "sample": samples, "fold": folds + 1}).to_csv(tmp_path / "folds.tsv", sep="\t",
                                                                              index=False)
    out, out_folds = tmp_path / "p.tsv", tmp_path / "pf.tsv"
    argv = ["select", "--data", str(tmp_path / "d.h5ad"), "--splits", str(tmp_path / "splits.tsv"), "--target", "T",
            "--spec", json.dumps({"top_correlated": k}), "--folds", str(tmp_path / "folds.tsv"),
            "--out", str(out), "--out-folds", str(out_folds)]
    for g in req:
        argv += ["--required", g]
    assert main(argv) == 0
    whole = pd.read_csv(out, sep="\t")
    width = len(whole)
    assert width == k + 1  # R1 among the first K, R2 added
    per_fold = pd.read_csv(out_folds, sep="\t")
    for f in range(3):
        got = per_fold.loc[per_fold["fold"] == f + 1, "gene"].tolist()
        assert len(got) == width and set(req) <= set(got)
        rows = np.flatnonzero(folds != f)
        if not fold_in[f]:  # narrowed: the fold's first K - 1 genes by |r|, then the two required ones
            r = X.loc[rows].corr()["T"].drop("T").abs().sort_values(ascending=False, kind="stable")
            assert set(got) == set(r.index[:k - 1]) | set(req)


@pytest.mark.parametrize("extra, needles", [
    (["--gene-sets", '{"s": ["g1", "g5"]}'], ["Gene-set genes 'g5'", "not shared predictors"]),
    (["--interactions", '[["g0", "g5"]]'], ["Interaction factors 'g5'", "neither shared predictors"]),
    (["--covariate", "batch"], ["Covariates 'batch'", "not columns of the sample sheet"]),
])
def test_genome_plan_refuses_a_shared_design_it_cannot_build(extra, needles, make_frame, tmp_path, capsys):
    """Genome-wide mode's plan: gene sets and product terms over genes outside the shared predictors, and
    covariates absent from the sample sheet, stop before any chunk, with one message and no plan written."""
    rc, out = run_collect(tmp_path, [_write_frame(make_frame, tmp_path)])
    assert rc == 0
    plan, design = tmp_path / "results" / "plan.tsv", tmp_path / "results" / "design.json"
    rc = main(["genome-plan", "--data", str(out["out"]), "--spec", '["g0", "g1", "g2"]', "--targets", '"all"',
               "--chunk-size", "5", *extra, "--out", str(plan), "--out-design", str(design)])
    err = flat(capsys.readouterr().err)
    assert rc != 0 and "Traceback" not in err and all(flat(n) in err for n in needles), err
    assert not plan.exists() and not design.exists()


def _write_frame(make_frame, tmp_path: Path) -> Path:
    path = tmp_path / "expr.tsv"
    make_frame(genes=[f"g{i}" for i in range(8)]).to_csv(path, sep="\t")
    return path


@pytest.mark.parametrize("argv", [
    ["split", "--data", "d.h5ad", "--out", "s.tsv", "--seed", "-1"],
    ["folds", "--data", "d.h5ad", "--splits", "s.tsv", "--target", "G0", "--out", "f.tsv", "--seed", "-3"],
    ["ols", "--data", "d.h5ad", "--splits", "s.tsv", "--predictors", "p.tsv", "--target", "G0", "--out-dir", "o",
     "--importance-seed", "-1"],
    ["split", "--data", "d.h5ad", "--out", "s.tsv", "--seed", "1.5"],
])
def test_negative_or_fractional_seed_is_a_usage_error(argv, tmp_path, monkeypatch, capsys):
    """NumPy's generators take seeds >= 0 only: a negative seed is refused as a usage error (exit status 2, one
    line naming the option), before any file is read, instead of a traceback from inside NumPy."""
    err = _usage_error(argv, tmp_path, monkeypatch, capsys)
    assert f"argument {argv[-2]}: a seed is an integer >= 0, not" in err, err


@pytest.mark.parametrize("argv", [
    ["ols", "--data", "d.h5ad", "--splits", "s.tsv", "--predictors", "p.tsv", "--target", "G0", "--out-dir", "o",
     "--alpha", "95"],
    ["ols", "--data", "d.h5ad", "--splits", "s.tsv", "--predictors", "p.tsv", "--target", "G0", "--out-dir", "o",
     "--alpha", "0"],
    ["ols-summary", "--dirs", "o", "--out-coefficients", "c.tsv", "--out-fits", "f.tsv", "--fdr", "5"],
    ["ols-summary", "--dirs", "o", "--out-coefficients", "c.tsv", "--out-fits", "f.tsv", "--fdr", "five"],
])
def test_alpha_or_fdr_outside_0_1_is_a_usage_error(argv, tmp_path, monkeypatch, capsys):
    """``--alpha 95`` (a confidence level in percent) gave a run without an error: empty confidence intervals
    (statsmodels' t quantile of 1 - 95/2) and every residual check 'fails' (p < 95), heteroskedasticity at
    p = 0.9 in the log. A level outside (0, 1), as the schema bounds ols.alpha and ols.fdr, is refused in one
    line naming the option, before any file is read."""
    err = _usage_error(argv, tmp_path, monkeypatch, capsys)
    assert f"argument {argv[-2]}: a level is a number between 0 and 1" in flat(err), err


@pytest.mark.parametrize("k", ["0", "-3", "ten"])
def test_interval_neighbours_below_1_is_a_usage_error(k, tmp_path, monkeypatch, capsys):
    """``bundle --interval-neighbours 0`` (or negative) was taken: the card recorded 0 neighbours while the distances
    used 1 (neighbour_distance's floor), so the card misdescribed its intervals. It is refused in one line naming
    the option, as the schema bounds prediction_interval.neighbours (>= 1), before any file is read."""
    argv = ["bundle", "--target", "G0", "--model", "ols", "--model-dir", "o", "--data", "d.h5ad", "--splits",
            "s.tsv", "--normalization", "n.json", "--metrics", "m.tsv", "--out", "b", "--interval-neighbours", k]
    err = _usage_error(argv, tmp_path, monkeypatch, capsys)
    assert "argument --interval-neighbours: an integer >= 1, not" in err, err


@pytest.mark.parametrize("verb, option, value, needle", [
    ("folds", "--k", "1", "a number of folds is an integer >= 2, not 1"),
    ("recovery", "--k", "0", "a number of folds is an integer >= 2, not 0"),
    ("recovery", "--threads", "0", "an integer >= 1, not 0"),
    ("recovery", "--top-edges", "-5", "an integer >= 1, not -5"),
    ("genome-plan", "--chunk-size", "0", "an integer >= 1, not 0"),
    ("genome-plan", "--chunk-size", "many", "an integer >= 1, not 'many'"),
])
def test_counts_on_the_command_line_are_bounded_as_in_the_schema(verb, option, value, needle, tmp_path, monkeypatch,
                                                                  capsys):
    """Counts given to the command line by hand took 0 or negatives (an audit's note: --k 1 folds, --threads 0,
    --chunk-size 0) where the schema bounds the config's (split.folds >= 2, ols.chunk_size >= 1): refused in one
    line naming the option, before any file is read."""
    required = {"folds": ["--data", "d", "--splits", "s", "--target", "G0", "--out", "o"],
                "recovery": ["--data", "d", "--splits", "s", "--predictors", "p", "--gold-standard", "g", "--spec",
                             "[]", "--out", "o", "--out-figure", "f", "--out-edges", "e"],
                "genome-plan": ["--data", "d", "--spec", "[]", "--targets", "all", "--out", "o",
                                "--out-design", "x"]}[verb]
    err = _usage_error([verb, *required, option, value], tmp_path, monkeypatch, capsys)
    assert f"argument {option}: {needle}" in err, err


def _usage_error(argv, tmp_path, monkeypatch, capsys) -> str:
    """``main(argv)`` run in an empty ``tmp_path``: a usage error (exit status 2) without a traceback, before any
    file is written; its stderr."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    return err


def test_folds_warn_of_a_class_thinner_than_the_folds(tmp_path):
    """The split is stratified by the first target only: another target's rare class can have fewer training
    samples than folds, so some folds hold none of it. The log names the target, the class and its count; the
    folds are still written, every one of the rare class's samples in a fold of its own."""
    samples = [f"s{i}" for i in range(40)]
    data = ad.AnnData(X=np.random.default_rng(0).normal(size=(40, 2)), var=pd.DataFrame(index=["G0", "G1"]),
                      obs=pd.DataFrame(index=samples))
    data.write_h5ad(tmp_path / "d.h5ad")
    pd.DataFrame({"sample": samples, "split": ["train"] * 30 + ["test"] * 10}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    rare = ["rare" if i in (3, 17, 25) else "common" for i in range(40)]
    pd.DataFrame({"sample": samples, "cls": rare, "other": ["a", "b"] * 20}).to_csv(
        tmp_path / "labels.tsv", sep="\t", index=False)
    log = tmp_path / "folds.log"
    assert main(["folds", "--data", str(tmp_path / "d.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
                 "--target", "cls", "--target", "other", "--labels", str(tmp_path / "labels.tsv"), "--k", "5",
                 "--out", str(tmp_path / "folds.tsv"), "--log", str(log)]) == 0
    text = flat(log.read_text())
    assert "target cls: class 'rare' (3) has fewer training samples than the 5 folds" in text
    assert "target other:" not in text.replace("target other: 30 training samples", "")
    folds = pd.read_csv(tmp_path / "folds.tsv", sep="\t")
    cls = folds[folds["target"] == "cls"].set_index("sample")["fold"]
    assert cls.loc[["s3", "s17", "s25"]].nunique() == 3


def test_genome_plan_names_why_a_target_or_predictor_was_dropped(tmp_path, capsys):
    """A requested target or predictor that missing: drop_genes left out is reported with that reason (and in
    design.json), not as an id absent from the data (the log said 'not in the data' before); an id that is
    absent still is."""
    matrix = tmp_path / "expr.tsv"
    matrix.write_text("gene\tS1\tS2\tS3\tS4\ng0\t1\t2\t3\t4\ng1\t2\t1\t4\t3\ng2\t1\t3\t2\t5\n"
                      "g3\tNA\t1\t2\t3\ng4\t5\t1\t2\tinf\ng5\t4\t3\t2\t2\n")
    h5ad = tmp_path / "results" / "data.h5ad"
    assert main(["collect", "--matrix", str(matrix), "--missing", "drop_genes", "--out", str(h5ad),
                 "--dropped", str(tmp_path / "results" / "dropped.tsv")]) == 0
    (tmp_path / "targets.txt").write_text("g2\ng3\ng5\nNOPE\n")
    (tmp_path / "preds.txt").write_text("g0\ng1\ng4\n")
    plan, design = tmp_path / "results" / "plan.tsv", tmp_path / "results" / "design.json"
    capsys.readouterr()
    rc = main(["genome-plan", "--data", str(h5ad), "--spec", json.dumps({"from": str(tmp_path / "preds.txt")}),
               "--targets", json.dumps({"file": str(tmp_path / "targets.txt")}), "--chunk-size", "5",
               "--out", str(plan), "--out-design", str(design)])
    err = flat(capsys.readouterr().err)
    assert rc == 0, err
    why = f"missing or infinite values (missing: drop_genes); read from {matrix}"
    assert f"1 requested targets were dropped while collecting the data and are skipped: 'g3': {why}" in err, err
    assert "1 requested targets are not in the data and are skipped: NOPE" in err
    assert f"1 of 3 predictor genes were dropped while collecting the data and are skipped: 'g4': {why}" in err
    assert "not in the collected data" not in err
    saved = json.loads(design.read_text())
    assert saved["predictors"] == ["g0", "g1"] and saved["missing_targets"] == ["NOPE"]
    assert saved["dropped_targets"] == {"g3": why}
    assert pd.read_csv(plan, sep="\t")["target"].tolist() == ["g2", "g5"]
    # an explicit predictor list naming a dropped gene is refused with the reason
    rc = main(["genome-plan", "--data", str(h5ad), "--spec", '["g0", "g4"]', "--targets", '"all"',
               "--chunk-size", "5", "--out", str(plan), "--out-design", str(design)])
    err = flat(capsys.readouterr().err)
    assert rc != 0 and "Traceback" not in err
    assert "Predictor gene 'g4' was dropped while collecting the data" in err and why in err, err


def test_a_covariate_error_at_fit_time_names_the_sample_sheet_file(tmp_path, capsys):
    """A covariate missing for a sample, found when the model is fitted: the message names the sample sheet's
    file, which collect keeps in the data (it said only 'the sample sheet'; an audit)."""
    rng = np.random.default_rng(0)
    samples = [f"s{i}" for i in range(30)]
    pd.DataFrame(rng.normal(size=(30, 3)).T, index=pd.Index(["G0", "G1", "G2"], name="gene"),
                 columns=samples).to_csv(tmp_path / "expr.tsv", sep="\t")
    dose = ["1.5"] * 30
    dose[4] = ""
    (tmp_path / "sheet.tsv").write_text("sample\tdose\n" + "".join(f"{s}\t{d}\n" for s, d in zip(samples, dose)))
    assert main(["collect", "--matrix", str(tmp_path / "expr.tsv"), "--sample-sheet", str(tmp_path / "sheet.tsv"),
                 "--out", str(tmp_path / "data.h5ad"), "--dropped", str(tmp_path / "dropped.tsv")]) == 0
    pd.DataFrame({"sample": samples, "split": ["train"] * 24 + ["test"] * 6}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"target": "G0", "rank": [1, 2], "gene": ["G1", "G2"], "train_corr": [0.5, 0.4]}).to_csv(
        tmp_path / "predictors.tsv", sep="\t", index=False)
    capsys.readouterr()
    rc = main(["ols", "--data", str(tmp_path / "data.h5ad"), "--splits", str(tmp_path / "splits.tsv"),
               "--predictors", str(tmp_path / "predictors.tsv"), "--target", "G0", "--covariate", "dose",
               "--out-dir", str(tmp_path / "ols"), "--log", str(tmp_path / "ols.log")])
    err = flat(capsys.readouterr().err)
    assert rc == 1 and "Traceback" not in err
    assert f"Covariate 'dose' of the sample sheet '{tmp_path / 'sheet.tsv'}' is missing for 1 sample" in err


def test_bundle_of_a_model_directory_without_its_outputs_says_what_to_run(tmp_path, capsys):
    """`gexpred bundle` with a --model-dir whose model step has not run (no model.json) ended in a
    FileNotFoundError traceback (an audit); now one paragraph names the missing files and what to run, and no
    bundle is written."""
    (tmp_path / "ols" / "G0").mkdir(parents=True)
    out = tmp_path / "models" / "G0" / "ols"
    rc = main(["bundle", "--target", "G0", "--model", "ols", "--model-dir", str(tmp_path / "ols" / "G0"),
               "--data", str(tmp_path / "d.h5ad"), "--splits", str(tmp_path / "s.tsv"), "--normalization",
               str(tmp_path / "n.json"), "--metrics", str(tmp_path / "m.tsv"), "--out", str(out)])
    err = flat(capsys.readouterr().err)
    assert rc == 1 and "Traceback" not in err and not out.exists()
    assert "model.json" in err and "predictions.tsv" in err and "not found" in err
    assert "snakemake results/ols/<target>/model.json" in err
