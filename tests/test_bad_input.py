"""Catalogue of bad inputs (issue 8, item 1): one test per case.

Every failing case asserts what a user sees: exit status != 0, one paragraph on standard error (and in
the ``--log`` file) that names the file and the row, column, gene or sample at fault, no traceback, and
no output file written (the step's output directory stays empty). The steps run through
``gexpred.cli.main`` exactly as the workflow's rules call them; configuration mistakes run through
Snakemake (``snakemake -n``), which checks the config before anything runs.

Cases already covered elsewhere are re-asserted here through the same user-facing checks (cheap), and
the table says where the detailed tests live.

=============================================  =====================================================
case                                           tests (here; elsewhere)
=============================================  =====================================================
empty file                                     test_matrix_catalogue[empty file]; test_cli_errors,
                                               test_io (bad_matrix fixture, conftest.BAD_CASES)
header only                                    test_matrix_catalogue[header only]; idem
ragged rows                                    test_matrix_catalogue[ragged row (too many|few)];
                                               test_io::test_first_data_row_with_wrong_field_count...
duplicate gene ids                             test_matrix_catalogue[duplicate gene ids];
                                               test_io::test_duplicate_ids_after_trimming_spaces
duplicate sample ids                           test_matrix_catalogue[duplicate sample ids];
                                               test_io::test_h5ad_duplicate_obs_names
gene id column missing                         test_gene_id_column_missing, test_gene_id_cell_missing
non-numeric cells (the first few)              test_non_numeric_cells_name_the_first_few;
                                               test_io::test_non_numeric_message_lists_only_the_first_few
NaN / Inf, missing: error (default)            test_matrix_catalogue[NaN value|Inf value]
NaN / Inf, missing: drop_genes                 test_missing_drop_genes, test_missing_drop_genes_...
NaN / Inf, missing: impute_mean                test_missing_impute_mean_uses_training_means, ...;
                                               test_genome_wide_metrics_judge_a_target_on_its_...
negative values with log_cpm                   test_negative_values_with_log_cpm
all-zero or constant target                    test_constant_target[list|top_correlated]
constant predictors (warn; error if none)      test_constant_predictor_dropped_with_warning,
                                               test_only_constant_predictors
perfectly collinear predictors                 test_collinear_predictors; test_design
matrices with no shared samples                test_matrices_without_shared_samples; test_collect
sample sheet lacks matrix samples              test_sample_sheet_lacks_samples; test_cli_errors
sample sheet has samples in no matrix          test_sample_sheet_extra_samples_are_listed
target listed as a predictor                   test_target_listed_as_predictor
wrong file type behind a known extension       test_matrix_catalogue[gz that is not gzip|h5ad that
                                               is not HDF5|parquet that is not parquet],
                                               test_wrong_type_behind_extension; test_io
config: wrong type / out of range / unknown    test_config_wrong_type, test_config_out_of_range,
                                               test_config_unknown_key; test_workflow, test_config
split leaving < 2 samples of a class           test_split_leaves_fewer_than_two_of_a_class
=============================================  =====================================================
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from conftest import BAD_CASES

from gexpred.cli import main

pytestmark = pytest.mark.usefixtures("restore_logging")


# --------------------------------------------------------------------------- helpers
def flat(text: str) -> str:
    """Collapse whitespace: the CLI wraps its message at 100 columns."""
    return " ".join(text.split())


class Step:
    """Run one ``gexpred`` verb with ``--log`` and check its outcome."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]):
        self.root = root
        self.capsys = capsys
        self.n = 0

    def __call__(self, verb: str, *args: str) -> tuple[int, str, Path]:
        self.n += 1
        log = self.root / "logs" / f"{self.n}_{verb}.log"
        self.capsys.readouterr()
        rc = main([verb, *map(str, args), "--log", str(log)])
        return rc, self.capsys.readouterr().err, log

    def ok(self, verb: str, *args: str) -> str:
        rc, err, log = self(verb, *args)
        assert rc == 0, err
        return log.read_text()

    def fails(self, verb: str, *args: str, needles: list[str], outputs: list[Path]) -> str:
        """The step fails cleanly: its message holds every needle, and none of ``outputs`` exists."""
        rc, err, log = self(verb, *args)
        assert rc != 0
        assert "Traceback" not in err
        message = err.strip()
        assert message.count("ERROR:") == 1 and "\n\n" not in message, err
        message = flat(message[message.index("ERROR:"):])  # after any warnings
        for needle in needles:
            assert flat(needle) in message, f"{needle!r} missing from: {message}"
        assert flat(needles[0]) in flat(log.read_text())  # the message also goes to the log
        for out in outputs:
            assert not out.exists(), f"output written despite the error: {out}"
            if out.parent != self.root and out.parent.exists():
                assert not [p for p in out.parent.iterdir()], f"partial output in {out.parent}"
        return message


@pytest.fixture
def step(tmp_path, capsys) -> Step:
    return Step(tmp_path, capsys)


def write_matrix(path: Path, X: np.ndarray, genes: list[str], samples: list[str]) -> Path:
    """Samples x genes values -> genes x samples TSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(np.asarray(X).T, index=pd.Index(genes, name="gene"), columns=samples).to_csv(path, sep="\t")
    return path


def collect_args(tmp_path: Path, *matrices: Path, sheet: Path | None = None, missing: str | None = None,
                 out: str = "collect") -> tuple[list[str], list[Path]]:
    h5ad, dropped = tmp_path / out / "collected.h5ad", tmp_path / out / "dropped.tsv"
    args = [a for m in matrices for a in ("--matrix", str(m))]
    if sheet is not None:
        args += ["--sample-sheet", str(sheet)]
    if missing is not None:
        args += ["--missing", missing]
    return [*args, "--out", str(h5ad), "--dropped", str(dropped)], [h5ad, dropped]


def regression_data(n: int = 30, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Samples x genes: T depends on A and B; C, D are noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(5.0, 1.0, (n, 5))
    X[:, 0] = 1.0 + X[:, 1] - 0.5 * X[:, 2] + rng.normal(0, 0.3, n)
    return X, ["T", "A", "B", "C", "D"], [f"s{i:02d}" for i in range(n)]


def prepared(step: Step, X: np.ndarray, genes: list[str], samples: list[str], method: str = "none") -> dict:
    """Collect, split and normalize a matrix; return the paths of the data, splits and normalized data."""
    root = step.root
    m = write_matrix(root / "in" / "expr.tsv", X, genes, samples)
    args, (h5ad, _) = collect_args(root, m)
    step.ok("collect", *args)
    splits = root / "collect" / "splits.tsv"
    step.ok("split", "--data", h5ad, "--out", splits, "--test-fraction", "0.25")
    norm = root / "collect" / "normalized.h5ad"
    step.ok("normalize", "--data", h5ad, "--splits", splits, "--method", method, "--out", norm,
            "--params", root / "collect" / "normalization.json")
    return {"matrix": m, "data": h5ad, "splits": splits, "normalized": norm}


def select(step: Step, p: dict, target: str, spec, name: str = "predictors.tsv") -> Path:
    out = step.root / "collect" / name
    step.ok("select", "--data", p["normalized"], "--splits", p["splits"], "--target", target, "--spec",
            json.dumps(spec), "--out", out)
    return out


def ols_args(step: Step, p: dict, predictors: Path, target: str) -> tuple[list, Path]:
    out = step.root / "ols" / target
    return ["--data", p["normalized"], "--splits", p["splits"], "--predictors", predictors, "--target", target,
            "--out-dir", out], out


# --------------------------------------------------------------------------- matrices
CATALOGUE_MATRICES = ["empty file", "header only", "ragged row (too many)", "ragged row (too few)",
                      "duplicate gene ids", "duplicate sample ids", "non-numeric cells", "NaN value", "Inf value",
                      "gz that is not gzip", "h5ad that is not HDF5", "parquet that is not parquet"]


@pytest.mark.parametrize("case", CATALOGUE_MATRICES)
def test_matrix_catalogue(case, write, step, tmp_path):
    """The cases of conftest.BAD_CASES (detailed in test_io / test_cli_errors), through `gexpred collect`."""
    path, needles = BAD_CASES[case](write)
    args, outputs = collect_args(tmp_path, path)
    msg = step.fails("collect", *args, needles=[str(path), *needles], outputs=outputs)
    if case in ("NaN value", "Inf value"):
        assert "'missing'" in msg and "drop_genes" in msg and "impute_mean" in msg  # says how to go on


def test_gene_id_column_missing(write, step, tmp_path):
    """A table written without its row names: the first sample's values would become gene ids."""
    path = write("no_ids.tsv", "S1\tS2\tS3\n1.25\t2\t3\n0.5\t4\t5\n3e-2\t1\t1\n")
    args, outputs = collect_args(tmp_path, path)
    step.fails("collect", *args, needles=[str(path), "'1.25'", "gene id column seems to be missing"],
               outputs=outputs)


def test_integer_gene_ids_are_ids_not_a_missing_column(write, step, tmp_path):
    """Entrez-style integer ids are valid gene ids."""
    path = write("entrez.tsv", "gene\tS1\tS2\n7157\t1.5\t2\n672\t3\t4\n")
    args, (h5ad, _) = collect_args(tmp_path, path)
    step.ok("collect", *args)
    assert list(ad.read_h5ad(h5ad).var_names) == ["7157", "672"]


def test_gene_id_cell_missing(write, step, tmp_path):
    path = write("blank_id.tsv", "gene\tS1\tS2\nG1\t1\t2\n\t3\t4\n")
    args, outputs = collect_args(tmp_path, path)
    step.fails("collect", *args, needles=[str(path), "without a gene id", "after gene 'G1'"], outputs=outputs)


def test_non_numeric_cells_name_the_first_few(write, step, tmp_path):
    rows = "".join(f"G{i}\t{i}\tx{i}\n" for i in range(12))
    path = write("words.tsv", "gene\tS1\tS2\n" + rows)
    args, outputs = collect_args(tmp_path, path)
    msg = step.fails("collect", *args, needles=[str(path), "12 non-numeric values", "gene 'G0', sample 'S2': 'x0'",
                                                "gene 'G4', sample 'S2': 'x4'"], outputs=outputs)
    assert "'x5'" not in msg  # the first five, not all twelve


@pytest.mark.parametrize("name, content, needles", [
    ("fake.tsv.gz", b"gene\tS1\nG1\t1\n", ["not gzip-compressed"]),
    ("fake.h5ad", gzip.compress(b"gene\tS1\nG1\t1\n", mtime=0), ["not an HDF5/AnnData file"]),
    ("fake.pq", b"PAR1 but not really", ["could not be read as parquet"]),
    ("garbage.tsv.gz", gzip.compress(bytes(range(256)) * 4, mtime=0), ["NUL byte"]),
])
def test_wrong_type_behind_extension(name, content, needles, write, step, tmp_path):
    path = write(name, content)
    args, outputs = collect_args(tmp_path, path)
    step.fails("collect", *args, needles=[str(path), *needles], outputs=outputs)


def test_matrices_without_shared_samples(write, step, tmp_path):
    a = write("a.tsv", "gene\tS1\tS2\nG1\t1\t2\nG2\t3\t4\n")
    b = write("b.tsv", "gene\tS3\tS4\nG3\t1\t2\nG4\t3\t4\n")
    args, outputs = collect_args(tmp_path, a, b)
    step.fails("collect", *args, needles=[str(a), str(b), "share no samples and no genes"], outputs=outputs)


# --------------------------------------------------------------------------- missing values
NAN_MATRIX = "gene\tS1\tS2\tS3\tS4\nG1\t1\t2\t3\t4\nG2\tNA\t4\t5\t6\nG3\t1\tinf\t2\t3\nG4\t3\t1\t2\t5\n"


def test_missing_drop_genes(write, step, tmp_path):
    path = write("nan.tsv", NAN_MATRIX)
    args, (h5ad, dropped) = collect_args(tmp_path, path, missing="drop_genes")
    log = step.ok("collect", *args)
    assert "dropped 2 genes with 2 missing or infinite values" in log
    data = ad.read_h5ad(h5ad)
    assert list(data.var_names) == ["G1", "G4"] and np.isfinite(data.X).all()
    table = pd.read_csv(dropped, sep="\t", dtype=str)
    assert table.values.tolist() == [["gene", g, str(path), "missing or infinite values (missing: drop_genes)"]
                                     for g in ("G2", "G3")]
    assert data.uns["missing"]["n_values"] == 2 and data.uns["n_dropped_genes"] == 2


def test_missing_drop_genes_with_nothing_left(write, step, tmp_path):
    path = write("all_nan.tsv", "gene\tS1\tS2\nG1\tNA\t1\nG2\t2\tNaN\n")
    args, outputs = collect_args(tmp_path, path, missing="drop_genes")
    step.fails("collect", *args, needles=[str(path), "leaves no gene", "gene 'G1' in sample 'S1'"],
               outputs=outputs)


def test_missing_impute_mean_uses_training_means(write, step, tmp_path):
    """Missing values are replaced by the gene's mean over the training samples only, before normalizing."""
    path = write("nan.tsv", NAN_MATRIX)
    args, (h5ad, dropped) = collect_args(tmp_path, path, missing="impute_mean")
    log = step.ok("collect", *args)
    assert "2 missing or infinite values in 2 genes" in log
    assert pd.read_csv(dropped, sep="\t", dtype=str)[["kind", "id"]].values.tolist() == [["imputed", "G2"],
                                                                                         ["imputed", "G3"]]
    raw = ad.read_h5ad(h5ad)
    assert np.isnan(raw.X).sum() == 2 and raw.uns["missing"]["policy"] == "impute_mean"
    splits = tmp_path / "collect" / "splits.tsv"
    # S4 is a test sample: its values must not enter the means
    pd.DataFrame({"sample": ["S1", "S2", "S3", "S4"], "split": ["train", "train", "train", "test"]}).to_csv(
        splits, sep="\t", index=False)
    out, params = tmp_path / "collect" / "normalized.h5ad", tmp_path / "collect" / "normalization.json"
    log = step.ok("normalize", "--data", h5ad, "--splits", splits, "--method", "none", "--missing", "impute_mean",
                  "--out", out, "--params", params)
    assert "replaced 2 missing values (2 in training samples, 0 in test samples) in 2 genes" in log
    X = ad.read_h5ad(out).to_df()
    assert X.loc["S1", "G2"] == 4.5  # mean of S2, S3 (4, 5), not of S4's 6
    assert X.loc["S2", "G3"] == 1.5  # mean of S1, S3 (1, 2), not of S4's 3
    assert np.isfinite(X.to_numpy()).all()
    imputed = json.loads(params.read_text())["imputed"]
    assert imputed["genes"] == ["G2", "G3"] and imputed["means"] == [4.5, 1.5] and imputed["n_values"] == 2


def test_missing_impute_mean_without_training_values(write, step, tmp_path):
    path = write("nan.tsv", "gene\tS1\tS2\tS3\nG1\t1\t2\t3\nG2\tNA\tNA\t5\n")
    args, (h5ad, _) = collect_args(tmp_path, path, missing="impute_mean")
    step.ok("collect", *args)
    splits = tmp_path / "collect" / "splits.tsv"
    pd.DataFrame({"sample": ["S1", "S2", "S3"], "split": ["train", "train", "test"]}).to_csv(splits, sep="\t",
                                                                                           index=False)
    out, params = tmp_path / "norm" / "normalized.h5ad", tmp_path / "norm" / "normalization.json"
    step.fails("normalize", "--data", h5ad, "--splits", splits, "--method", "none", "--missing", "impute_mean",
               "--out", out, "--params", params, needles=[str(path), "'G2'", "no value in any of the 2 training"],
               outputs=[out, params])


def test_genome_wide_metrics_judge_a_target_on_its_measured_samples_only(step, tmp_path, monkeypatch):
    """missing: impute_mean in genome-wide mode: a target's OLS fit, and the train and test metrics of every model,
    the networks' too, leave its filled-in values out: a filled-in value is the training mean, which the mean baseline
    would predict exactly (an audit: the mean's test MSE 2.71 over 15 samples, 6 of them filled in, against 4.52
    over the 9 measured), and fitted on it would pull the slopes towards zero and shrink the standard errors with
    residual degrees of freedom it does not have. Expected numbers: statsmodels on the measured training samples,
    numpy for the metrics."""
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    n = 30
    A, B = rng.normal(5, 1, n), rng.normal(5, 1, n)
    T0 = 1.0 + A - 0.5 * B + rng.normal(0, 0.5, n)
    T1 = 2.0 - A + rng.normal(0, 0.5, n)
    samples = [f"s{i:02d}" for i in range(n)]
    gone = np.zeros(n, dtype=bool)
    gone[[1, 4, 7, 20, 23, 26]] = True  # three training and three test samples without T0
    X = np.column_stack([np.where(gone, np.nan, T0), T1, A, B])
    path = write_matrix(tmp_path / "expr.tsv", X, ["T0", "T1", "A", "B"], samples)
    args, (h5ad, _) = collect_args(tmp_path, path, missing="impute_mean")
    step.ok("collect", *args)
    train = np.arange(n) < 18
    splits = tmp_path / "splits.tsv"
    pd.DataFrame({"sample": samples, "split": np.where(train, "train", "test")}).to_csv(splits, sep="\t",
                                                                                      index=False)
    norm = tmp_path / "normalized.h5ad"
    step.ok("normalize", "--data", h5ad, "--splits", splits, "--method", "none", "--missing", "impute_mean",
            "--out", norm, "--params", tmp_path / "normalization.json")
    plan, design = tmp_path / "plan.tsv", tmp_path / "design.json"
    plan_args = ["--data", norm, "--spec", '["A", "B"]', "--targets", '"all"', "--chunk-size", "5", "--out", plan,
                 "--out-design", design]
    # the steps that keep the filled-in values are named where the run has them (an audit: an OLS-only run was
    # warned about networks it does not train, and regulator recovery, which keeps them too, went unnamed)
    log = step.ok("genome-plan", *plan_args, "--networks", "--recovery")
    assert ("WARNING gexpred: 1 target had missing values that missing: impute_mean filled with their training mean "
            "('T0'); the genome-wide networks and the regulator recovery's ridge, correlation and prior scores fit "
            "every target on one shared set of samples, so they keep them; the genome-wide OLS fits and the train "
            "and test metrics leave them out") in log
    log = step.ok("genome-plan", *plan_args)
    assert "WARNING" not in log and "network" not in log
    assert ("INFO gexpred: 1 target had missing values that missing: impute_mean filled with their training mean "
            "('T0'); the genome-wide OLS fits and their train and test metrics leave those samples out") in log
    log = step.ok("genome-plan", *plan_args, "--networks")
    assert "; the genome-wide networks fit every target on one shared set of samples, so they keep them;" in log
    chunk = ["--data", norm, "--splits", splits, "--plan", plan, "--design", design, "--chunk", "0"]
    step.ok("ols-chunk", *chunk, "--out-dir", tmp_path / "ols")
    step.ok("mlp-chunk", *chunk, "--settings", json.dumps({"hidden": [], "epochs": 3, "batch_size": 8}),
            "--mode", "multi_output", "--out-dir", tmp_path / "mlp")
    ols = pd.read_csv(tmp_path / "ols" / "00000.metrics.tsv", sep="\t").set_index(["target", "model", "split"])
    mlp = pd.read_csv(tmp_path / "mlp" / "00000.metrics.tsv", sep="\t").set_index(["target", "model", "split"])
    D = sm.add_constant(np.column_stack([A, B]))
    ref = sm.OLS(T0[train & ~gone], D[train & ~gone]).fit()
    fitted = ref.predict(D)
    coefs = pd.read_parquet(tmp_path / "ols" / "00000.coefficients.parquet").set_index(["target", "term"])
    np.testing.assert_allclose(coefs.loc["T0"].loc[["const", "A", "B"], "coef"], ref.params, rtol=1e-9)
    np.testing.assert_allclose(coefs.loc["T0"].loc[["const", "A", "B"], "std_err"], ref.bse, rtol=1e-9)
    np.testing.assert_allclose(coefs.loc["T0"].loc[["const", "A", "B"], "p_value"], ref.pvalues, rtol=1e-7)
    ref1 = sm.OLS(T1[train], D[train]).fit()  # the target measured everywhere: all 18 training samples
    np.testing.assert_allclose(coefs.loc["T1"].loc[["const", "A", "B"], "std_err"], ref1.bse, rtol=1e-9)
    fits = pd.read_csv(tmp_path / "ols" / "00000.fit.tsv", sep="\t").set_index("target")
    assert fits.loc["T0", "n"] == 15 and fits.loc["T0", "df_resid"] == ref.df_resid == 12
    assert fits.loc["T1", "n"] == 18 and list(fits.index) == ["T0", "T1"]
    np.testing.assert_allclose(fits.loc["T0", "r2"], ref.rsquared, rtol=1e-9)
    # ols.cov_type HC3 genome-wide: each target's heteroskedasticity-consistent tests on its measured samples
    step.ok("ols-chunk", *chunk, "--cov-type", "HC3", "--out-dir", tmp_path / "hc3")
    coefs = pd.read_parquet(tmp_path / "hc3" / "00000.coefficients.parquet").set_index(["target", "term"])
    fits = pd.read_csv(tmp_path / "hc3" / "00000.fit.tsv", sep="\t").set_index("target")
    for t, y, rows in (("T0", T0, train & ~gone), ("T1", T1, train)):
        r = sm.OLS(y[rows], D[rows]).fit(cov_type="HC3", use_t=True)
        got = coefs.loc[t].loc[["const", "A", "B"]]
        np.testing.assert_allclose(got[["std_err", "p_value", "ci_low", "ci_high"]].to_numpy(),
                                   np.column_stack([r.bse, r.pvalues, r.conf_int()]), rtol=1e-8)
        np.testing.assert_allclose(fits.loc[t, ["f_stat", "f_pvalue"]].astype(float), [r.fvalue, r.f_pvalue],
                                   rtol=1e-8)
    # a design of more slopes than the robust overall F is computed for: NaN, said in the log, never classical
    monkeypatch.setattr("gexpred.batched.ROBUST_WALD_MAX_TERMS", 1)
    log = step.ok("ols-chunk", *chunk, "--cov-type", "HC3", "--out-dir", tmp_path / "hc3_big")
    assert pd.read_csv(tmp_path / "hc3_big" / "00000.fit.tsv", sep="\t")[["f_stat", "f_pvalue"]].isna().all().all()
    assert "the overall F-test of 2 targets (fits.tsv f_stat, f_pvalue) is left NaN" in " ".join(log.split())
    for split, mask in (("train", train), ("test", ~train)):
        keep = mask & ~gone
        assert ols.loc[("T0", "ols", split), "n"] == keep.sum() == (15 if split == "train" else 9)
        assert mlp.loc[("T0", "mlp", split), "n"] == keep.sum()
        assert ols.loc[("T1", "ols", split), "n"] == mask.sum()
        np.testing.assert_allclose(ols.loc[("T0", "ols", split), "mse"], np.mean((T0[keep] - fitted[keep]) ** 2),
                                   rtol=1e-10)
        np.testing.assert_allclose(ols.loc[("T0", "mean", split), "mse"],
                                   np.mean((T0[keep] - T0[train & ~gone].mean()) ** 2), rtol=1e-10)


def test_genome_wide_design_wider_than_the_training_split(step, tmp_path):
    """A shared design with more terms than the training split can fit: one paragraph naming the training split,
    the count it needs and the settings to change (it said '7 samples for 6 predictors', without a word of the
    split, whose 7 training samples out of 10 a user would not recognise)."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(9)]
    samples = [f"s{i}" for i in range(10)]
    path = write_matrix(tmp_path / "expr.tsv", rng.normal(5, 1, (10, 9)), genes, samples)
    args, (h5ad, _) = collect_args(tmp_path, path)
    step.ok("collect", *args)
    splits = tmp_path / "splits.tsv"
    pd.DataFrame({"sample": samples, "split": ["train"] * 7 + ["test"] * 3}).to_csv(splits, sep="\t", index=False)
    norm = tmp_path / "normalized.h5ad"
    step.ok("normalize", "--data", h5ad, "--splits", splits, "--method", "none", "--out", norm,
            "--params", tmp_path / "normalization.json")
    plan, design = tmp_path / "plan.tsv", tmp_path / "design.json"
    step.ok("genome-plan", "--data", norm, "--spec", json.dumps(genes[:6]), "--targets", '"all"', "--chunk-size", "5",
            "--out", plan, "--out-design", design)
    out = tmp_path / "ols"
    step.fails("ols-chunk", "--data", norm, "--splits", splits, "--plan", plan, "--design", design, "--chunk", "0",
               "--out-dir", out, needles=[f"The training split of {norm} has 7 samples", "6 terms (6 predictors)",
                                          "at least 8 training samples", "split.test_fraction"],
               outputs=[out / "00000.coefficients.parquet", out / "00000.fit.tsv"])


def test_missing_values_reach_normalize_without_the_policy(write, step, tmp_path):
    """collect and normalize run with different `missing` settings: refused, not silently propagated."""
    path = write("nan.tsv", NAN_MATRIX)
    args, (h5ad, _) = collect_args(tmp_path, path, missing="impute_mean")
    step.ok("collect", *args)
    splits = tmp_path / "collect" / "splits.tsv"
    step.ok("split", "--data", h5ad, "--out", splits, "--test-fraction", "0.25")
    out, params = tmp_path / "norm" / "normalized.h5ad", tmp_path / "norm" / "normalization.json"
    step.fails("normalize", "--data", h5ad, "--splits", splits, "--method", "zscore", "--out", out, "--params",
               params, needles=[str(path), "2 missing values", "gene 'G2' in sample 'S1'"], outputs=[out, params])


def test_missing_values_in_the_report_caption():
    from gexpred.facts import data_text

    dropped = pd.DataFrame([("imputed", "G2", "m.tsv", "r1"), ("gene", "G7", "m.tsv", "missing or infinite values "
                                                                                       "(missing: drop_genes)")],
                           columns=["kind", "id", "file", "reason"])
    text = data_text(10, 5, dropped, ["m.tsv"])
    assert "1 gene (e.g. G2) had missing or infinite values, replaced by the gene's mean" in text
    assert "Dropped while combining: 1 gene (e.g. G7; reasons: 1 missing or infinite values" in text


# --------------------------------------------------------------------------- normalization
def test_negative_values_with_log_cpm(step, tmp_path):
    X, genes, samples = regression_data()
    X[3, 2] = -1.5
    m = write_matrix(tmp_path / "in" / "expr.tsv", X, genes, samples)
    args, (h5ad, _) = collect_args(tmp_path, m)
    step.ok("collect", *args)
    splits = tmp_path / "collect" / "splits.tsv"
    # s03 in the training split whatever the seed: every sample but two is a training sample
    pd.DataFrame({"sample": samples, "split": ["train"] * 28 + ["test"] * 2}).to_csv(splits, sep="\t", index=False)
    out, params = tmp_path / "norm" / "normalized.h5ad", tmp_path / "norm" / "normalization.json"
    step.fails("normalize", "--data", h5ad, "--splits", splits, "--method", "log_cpm", "--out", out, "--params",
               params, needles=[str(m), "non-negative counts", "gene 'B' in sample 's03' = -1.5"],
               outputs=[out, params])


# --------------------------------------------------------------------------- targets and predictors
@pytest.mark.parametrize("spec", [["A", "B"], {"top_correlated": 2}], ids=["list", "top_correlated"])
def test_constant_target(spec, step, tmp_path):
    X, genes, samples = regression_data()
    X[:, 0] = 0.0  # an all-zero target
    p = prepared(step, X, genes, samples)
    out = tmp_path / "sel" / "predictors.tsv"
    step.fails("select", "--data", p["normalized"], "--splits", p["splits"], "--target", "T", "--spec",
               json.dumps(spec), "--out", out, needles=[str(p["matrix"]), "Target 'T' is constant"], outputs=[out])


def test_transposed_h5ad_is_named_as_such(step, tmp_path):
    """An .h5ad written genes x samples (genes in obs): the targets are found among its sample ids, and the
    message says the matrix looks transposed and how to fix it, instead of 'not in the collected data'."""
    X, genes, samples = regression_data()
    path = tmp_path / "in" / "genes_in_obs.h5ad"
    path.parent.mkdir(parents=True)
    ad.AnnData(X.T.copy(), obs=pd.DataFrame(index=genes), var=pd.DataFrame(index=samples)).write_h5ad(path)
    args, (h5ad, _) = collect_args(tmp_path, path)
    step.ok("collect", *args)
    splits = tmp_path / "collect" / "splits.tsv"
    step.ok("split", "--data", h5ad, "--out", splits, "--test-fraction", "0.25")
    out = tmp_path / "sel" / "predictors.tsv"
    step.fails("select", "--data", h5ad, "--splits", splits, "--target", "T", "--spec", json.dumps({"top_correlated": 2}),
               "--out", out, needles=[str(path), "'T'", "the matrix looks transposed", "adata.T"], outputs=[out])


def test_normalization_in_an_order_that_reads_transformed_values_as_counts(step, tmp_path):
    """[zscore, log_cpm]: the config's order is blamed (log_cpm first), not the data's 'negative counts'."""
    X, genes, samples = regression_data()
    m = write_matrix(tmp_path / "in" / "expr.tsv", X, genes, samples)
    args, (h5ad, _) = collect_args(tmp_path, m)
    step.ok("collect", *args)
    splits = tmp_path / "collect" / "splits.tsv"
    step.ok("split", "--data", h5ad, "--out", splits, "--test-fraction", "0.25")
    out, params = tmp_path / "norm" / "normalized.h5ad", tmp_path / "norm" / "normalization.json"
    step.fails("normalize", "--data", h5ad, "--splits", splits, "--method", "zscore", "--method", "log_cpm",
               "--out", out, "--params", params, needles=["'log_cpm' computes library sizes from raw counts, so it "
                                                          "must come first", "[log_cpm, zscore]"],
               outputs=[out, params])


def test_target_listed_as_predictor(step, tmp_path):
    X, genes, samples = regression_data()
    p = prepared(step, X, genes, samples)
    out = tmp_path / "sel" / "predictors.tsv"
    step.fails("select", "--data", p["normalized"], "--splits", p["splits"], "--target", "T", "--spec",
               json.dumps(["A", "T"]), "--out", out, needles=["'T'", "both as targets and as predictors"],
               outputs=[out])


def test_constant_predictor_dropped_with_warning(step, tmp_path):
    X, genes, samples = regression_data()
    X[:, 3] = 7.0  # C constant
    p = prepared(step, X, genes, samples)
    args, out = ols_args(step, p, select(step, p, "T", ["A", "B", "C"]), "T")
    log = step.ok("ols", *args)
    assert "dropping 1 predictor constant over the training samples: 'C'" in log
    coefs = pd.read_csv(out / "coefficients.tsv", sep="\t")
    assert coefs["term"].tolist() == ["const", "A", "B"]


def test_only_constant_predictors(step, tmp_path):
    X, genes, samples = regression_data()
    X[:, 3] = 7.0
    X[:, 4] = 0.0
    p = prepared(step, X, genes, samples)
    args, out = ols_args(step, p, select(step, p, "T", ["C", "D"]), "T")
    step.fails("ols", *args, needles=["Target 'T'", "every predictor is constant"],
               outputs=[out / "coefficients.tsv", out / "model.json"])


def test_collinear_predictors(step, tmp_path):
    X, genes, samples = regression_data()
    X[:, 4] = 2.0 * X[:, 1] - X[:, 2]  # D = 2A - B
    p = prepared(step, X, genes, samples)
    args, out = ols_args(step, p, select(step, p, "T", ["A", "B", "D"]), "T")
    step.fails("ols", *args, needles=["Target 'T'", "perfectly collinear", "'D' is a linear combination"],
               outputs=[out / "coefficients.tsv", out / "model.json"])


# --------------------------------------------------------------------------- sample sheet
def test_sample_sheet_lacks_samples(write, step, tmp_path):
    m = write("m.tsv", "gene\ts1\ts2\ts3\nG1\t1\t2\t3\n")
    sheet = write("sheet.tsv", "sample\tage\ns1\t1\ns3\t2\n")
    args, outputs = collect_args(tmp_path, m, sheet=sheet)
    step.fails("collect", *args, needles=[str(sheet), "no row for 1 of the 3 samples", "'s2'"], outputs=outputs)


def test_sample_sheet_extra_samples_are_listed(write, step, tmp_path):
    m = write("m.tsv", "gene\ts1\ts2\nG1\t1\t2\n")
    sheet = write("sheet.tsv", "sample\tage\ns1\t1\ns2\t2\nghost\t3\n")
    args, (_, dropped) = collect_args(tmp_path, m, sheet=sheet)
    log = step.ok("collect", *args)
    assert "lists 1 sample that is in no matrix" in log
    assert pd.read_csv(dropped, sep="\t", dtype=str).values.tolist() == [
        ["sample", "ghost", str(sheet), "in the sample sheet but in no matrix"]]


# --------------------------------------------------------------------------- split
def test_split_leaves_fewer_than_two_of_a_class(write, step, tmp_path):
    samples = [f"s{i}" for i in range(10)]
    m = write("m.tsv", "gene\t" + "\t".join(samples) + "\nG1\t" + "\t".join(map(str, range(10))) + "\n")
    args, (h5ad, _) = collect_args(tmp_path, m)
    step.ok("collect", *args)
    labels = tmp_path / "collect" / "labels.tsv"
    pd.DataFrame({"sample": samples, "state": ["rare", "rare"] + ["common"] * 8}).to_csv(labels, sep="\t",
                                                                                          index=False)
    out = tmp_path / "split" / "splits.tsv"
    step.fails("split", "--data", h5ad, "--labels", labels, "--test-fraction", "0.5", "--out", out,
               needles=["'rare'", "target 'state'", "fewer than 2 training samples"], outputs=[out])


# --------------------------------------------------------------------------- configuration (Snakemake)
@pytest.fixture
def config_run(tmp_path):
    from test_workflow import make_dataset, run_snakemake, write_config

    make_dataset(tmp_path, n_samples=20, n_genes=8)

    def run(**overrides) -> str:
        write_config(tmp_path, **overrides)
        proc = run_snakemake(tmp_path, "-n", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "Traceback" not in out
        assert not (tmp_path / "results").exists()  # nothing ran
        return flat(out)

    return run


def test_config_wrong_type(config_run):
    out = config_run(split={"test_fraction": "a lot"})
    assert "'split.test_fraction': 'a lot' is not of type 'number'" in out


def test_config_out_of_range(config_run):
    out = config_run(mlp={"dropout": 1.5})
    assert "'mlp.dropout': 1.5 is greater than" in out


def test_config_unknown_key(config_run):
    out = config_run(missing_values="drop_genes")
    assert "unknown key 'missing_values': did you mean 'missing'?" in out


def test_binarized_gene_with_missing_values_names_gene_and_samples(tmp_path):
    """A gene binarized into class labels cannot be imputed: the labels step names the gene and the samples."""
    import anndata as ad

    from gexpred.cli import main
    from gexpred.io import write_h5ad

    X = np.arange(12, dtype=float).reshape(4, 3)
    X[2, 1] = np.nan
    data = ad.AnnData(X=X, obs=pd.DataFrame(index=["s0", "s1", "s2", "s3"]), var=pd.DataFrame(index=["a", "g3", "c"]))
    write_h5ad(data, tmp_path / "collected.h5ad")
    log = tmp_path / "labels.log"
    rc = main(["labels", "--data", str(tmp_path / "collected.h5ad"), "--target", "g3", "--binarize", '{"g3": 5}',
               "--out", str(tmp_path / "labels.tsv"), "--log", str(log)])
    text = " ".join(log.read_text().split())
    assert rc == 1 and "'g3'" in text and "'s2'" in text and "never imputed" in text
    assert not (tmp_path / "labels.tsv").exists()


def test_normalize_whose_data_output_cannot_be_written_leaves_no_parameters(step, tmp_path):
    """normalize wrote normalization.json and then failed on the .h5ad (here an existing directory): the parameters
    were left behind without the data they describe. Both files or neither."""
    X, genes, samples = regression_data()
    p = prepared(step, X, genes, samples)
    out_dir = tmp_path / "norm"
    (out_dir / "normalized.h5ad").mkdir(parents=True)
    params = tmp_path / "params" / "normalization.json"
    step.fails("normalize", "--data", p["data"], "--splits", p["splits"], "--method", "zscore",
               "--out", out_dir / "normalized.h5ad", "--params", params,
               needles=["normalized.h5ad", "is a directory"], outputs=[params])
