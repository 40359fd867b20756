"""End-to-end runs of the workflow with other settings than the shared run of test_workflow.py: an OLS-only
run with covariates, interactions and gene sets, and configs refused before anything runs.

Split from test_workflow.py so that pytest-xdist (``--dist loadfile``) can run these beside the shared run.
The expected numbers come from statsmodels' formula API and numpy, never from gexpred.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from test_workflow import make_dataset, run_snakemake, write_config

pytestmark = pytest.mark.slow


def test_config_errors_name_the_key(tmp_path):
    make_dataset(tmp_path, n_samples=20, n_genes=8)
    # every problem of a config is listed at once, so each dry run below holds several (one per key): a misspelt
    # key, a wrong type, and values valid under none of a key's forms, where the form that fits the value's
    # type says what is wrong
    cases = (
        ({"normalisation": "zscore", "split": {"test_fraction": "a lot"}, "targets": [1234],
          "predictors": {"top_correlated": "4"}},
         ["unknown key 'normalisation': did you mean 'normalization'?", "'split.test_fraction'",
          "'targets.0': 1234 is a number in YAML, but ids and names are text here: quote it ('1234')",
          "'predictors.top_correlated': '4' is not of type 'integer'"]),
        ({"targets": ["G0", "G0"], "predictors": ["G2", "G3", "G2"], "new_batches": {"my batch": ["data/expr.tsv"]}},
         ["'targets': lists 'G0' more than once", "'predictors': lists 'G2' more than once",
          "'new_batches': 'my batch' does not match", "a batch name becomes a directory name"]),
        # a misspelt word of a key that takes a word or a list of them is no list: the message said "write
        # [log-cpm]", which is as wrong
        ({"targets": "G0", "predictors": {"from": ["G2", "G3", "G2"], "top_correlated": 2},
          "normalization": "log-cpm"},
         ["'targets': 'G0' is a single value where a list is expected",
          "'predictors.from': lists 'G2' more than once",
          "'normalization': 'log-cpm' is not one of none, log1p, log_cpm, zscore: did you mean 'log_cpm'?"]),
        ({"targets": {"fiel": "x.txt"}, "predictors": {"top_corelated": 4}},
         ["unknown key 'targets.fiel': did you mean 'file'?",
          "unknown key 'predictors.top_corelated': did you mean 'top_correlated'?"]),
    )
    for overrides, needles in cases:
        write_config(tmp_path, **overrides)
        proc = run_snakemake(tmp_path, "-n", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and all(n in out for n in needles), (overrides, proc.stderr[-2000:])
        assert "not valid under any of the given schemas" not in out and "Traceback" not in proc.stderr
        assert "write [log-cpm]" not in out

    # genome-wide mode: top_correlated is refused before anything runs; a dry run of a valid config plans
    # the run although the chunks are known only once the plan checkpoint has run
    write_config(tmp_path, targets="all", models=["ols", "mlp"])
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "'predictors.top_correlated' (the default" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
    write_config(tmp_path, targets="all", models=["ols", "mlp"], predictors={"from": ["G2", "G3", "G4"]})
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # ... and {from: ...} alone, which the schema takes for that mode, is refused for targets listed one by one
    # before anything runs (it passed the dry run and stopped the select step after the data steps had run)
    write_config(tmp_path, predictors={"from": ["G2", "G3", "G4"]})
    proc = run_snakemake(tmp_path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'predictors' is {from: ...} without 'top_correlated'" in out, out[-2000:]
    assert "Traceback" not in proc.stderr

    # a target in the explicit predictor list: refused before anything runs (the select step refused it after the
    # data steps)
    write_config(tmp_path, targets=["G0", "G1"], predictors=["G1", "G2", "G3"])
    proc = run_snakemake(tmp_path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'G1' is listed both in 'targets' and in 'predictors'" in out, out[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()

    write_config(tmp_path, matrices=["data/missing.tsv"])
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "data/missing.tsv" in proc.stdout + proc.stderr

    # a regulator ranking whose source is not computed is refused before anything runs
    write_config(tmp_path, recovery={"sources": ["ols", "correlation"], "ranking": "network"})
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "recovery.ranking is 'network'" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    # the prior-knowledge ranking needs its folds
    write_config(tmp_path, recovery={"ranking": "tf_activity", "prior_folds": 0})
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "recovery.prior_folds" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    # a robust covariance is for regression fits, per target and genome-wide: passed to them, refused for
    # classification targets, where it would be ignored
    write_config(tmp_path, ols={"cov_type": "HC3"})
    proc = run_snakemake(tmp_path, "-n", "-p", check=False)
    assert proc.returncode == 0 and "--cov-type HC3" in proc.stdout, proc.stderr[-2000:]
    write_config(tmp_path, ols={"cov_type": "HC3"}, targets="all", predictors=["G2", "G3"])
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode == 0 and "ols.cov_type" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    write_config(tmp_path, ols={"cov_type": "HC3"}, task="classification", binarize={"G0": 0.0})
    proc = run_snakemake(tmp_path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ols.cov_type is 'HC3'" in out and "has classification targets" in out, out[-2000:]
    assert "Traceback" not in proc.stderr
    # penalized regression alone for classification targets: skipped, and then nothing is left to fit (the run went
    # on to a compare step called with no model, which stopped with argparse's usage line)
    write_config(tmp_path, models=["penalized"], task="classification", binarize={"G0": 0.0})
    proc = run_snakemake(tmp_path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'models' is [penalized]" in out and "no model would be fitted" in out, out[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()


def test_a_file_not_found_names_the_directory_paths_are_read_from_under_directory(tmp_path):
    """The config's paths are read from Snakemake's working directory: under --directory that is not the directory
    snakemake was started in (the README's way to keep a run apart), and the message must say so, naming it."""
    import subprocess

    from test_workflow import REPO, SNAKEMAKE

    run = tmp_path / "run"
    run.mkdir()
    make_dataset(run, n_samples=20, n_genes=8)
    for overrides, needle in (({"matrices": ["data/missing.tsv"]}, "input file(s) not found: 'data/missing.tsv'"),
                              ({"new_batches": {"b1": ["data/new.tsv"]}}, "new_batches file(s) not found"),
                              ({"targets": {"file": "genes.txt"}, "predictors": ["G2", "G3"]},
                               "targets file 'genes.txt' not found")):
        write_config(run, **overrides)
        # started from the repository, as the README runs it, with the run in another directory
        proc = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(run / "config.yaml"),
                               "--directory", str(run)], cwd=REPO, capture_output=True, text=True, timeout=300)
        out = " ".join((proc.stdout + proc.stderr).split())
        assert proc.returncode != 0 and needle in out, out[-2000:]
        assert f"relative to Snakemake's working directory, {run} " in out and "--directory" in out, out[-2000:]
        assert "the directory you run snakemake from (" not in out and "Traceback" not in proc.stderr
    assert not (run / "results").exists()


def test_covariates_with_an_h5ad_matrix_and_no_sample_sheet_say_how_to_read_its_obs(tmp_path):
    make_dataset(tmp_path, n_samples=20, n_genes=8)
    (tmp_path / "data" / "cells.h5ad").write_bytes(b"")  # only its name is looked at before anything runs
    write_config(tmp_path, matrices=["data/cells.h5ad"], ols={"covariates": ["donor"]})
    proc = run_snakemake(tmp_path, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "no 'sample_sheet' is set" in out
    assert "set sample_sheet: data/cells.h5ad" in out and "Traceback" not in proc.stderr


def test_ols_only_run_with_covariates_interactions_gene_sets_and_a_bad_target(tmp_path):
    """models: [ols] is a valid run; ols.covariates (one declared categorical, C(plate), its plates numbered) /
    interactions (one of a gene and a numeric covariate, G3:dose, which the select step refused as a gene 'not in
    the collected data' before) / gene_sets through the workflow, against statsmodels' formula API (a target named in an interaction or a gene set, G5, gets neither itself as a term
    nor the interaction, and the log says so); then a target missing from the data fails with a clear message."""
    import statsmodels.formula.api as smf

    data = make_dataset(tmp_path, n_samples=48, n_genes=8)
    rng = np.random.default_rng(1)
    sheet = pd.DataFrame({"sample": data["samples"], "batch": rng.choice(["x", "y", "z"], len(data["samples"])),
                          "dose": rng.uniform(0, 1, len(data["samples"]))})
    sheet["plate"] = np.random.default_rng(2).choice([1, 2, 3], len(sheet))  # numbered plates, categories
    sheet.to_csv(tmp_path / "data" / "samples.tsv", sep="\t", index=False)
    # a new batch with its own sample sheet: the models adjust for covariates, so deploy reads them from it
    new = make_dataset(tmp_path, n_samples=10, n_genes=8, seed=11, name="new.tsv", prefix="N")
    new_sheet = pd.DataFrame({"sample": new["samples"], "batch": rng.choice(["x", "y", "z"], 10),
                              "dose": rng.uniform(0, 1, 10)})
    new_sheet["plate"] = np.random.default_rng(3).choice([1.0, 2.0, 3.0], 10)  # written 1.0: the same plates
    new_sheet.to_csv(tmp_path / "data" / "new_samples.tsv", sep="\t", index=False)
    write_config(tmp_path, models=["ols"], targets=["G0", "G1", "G5"], predictors=["G2", "G3", "G4"],
                 sample_sheet="data/samples.tsv", new_batches={"fresh": ["data/new.tsv"]},
                 new_batch_sheets={"fresh": "data/new_samples.tsv"},
                 ols={"covariates": ["batch", "dose", "C(plate)"], "interactions": [["G2", "G5"], ["G3", "dose"]],
                      "gene_sets": {"pair": ["G3", "G4"], "g5": ["G5"]}})
    # what is checked (the figures and the report would add half a minute)
    run_snakemake(tmp_path, "--nocolor", "results/ols/all_coefficients.tsv", "results/compare/predictions.tsv",
                  *(f"results/deploy/fresh/{t}/predictions.tsv" for t in ("G0", "G1")))
    sp = pd.read_csv(tmp_path / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    expr = pd.read_csv(tmp_path / "data/expr.tsv", sep="\t", index_col=0).T
    df = expr.join(sheet.set_index("sample")).loc[sp.index[sp == "train"]]
    allc = pd.read_csv(tmp_path / "results/ols/all_coefficients.tsv", sep="\t")
    assert list(allc.columns) == ["target", "term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high",
                                  "q_value"]
    for target in ["G0", "G1"]:
        ref = smf.ols(f"{target} ~ G2 + G3 + G4 + G5 + C(batch) + dose + C(plate) + G2:G5 + G3:dose", data=df).fit()
        ours = pd.read_csv(tmp_path / f"results/ols/{target}/coefficients.tsv", sep="\t").set_index("term")
        rename = {"Intercept": "const", "C(batch)[T.y]": "batch[T.y]", "C(batch)[T.z]": "batch[T.z]"}
        assert sorted(ours.index) == sorted(rename.get(t, t) for t in ref.params.index)
        for term in ref.params.index:
            np.testing.assert_allclose(ours.loc[rename.get(term, term), "coef"], ref.params[term], rtol=1e-8)
            np.testing.assert_allclose(ours.loc[rename.get(term, term), "p_value"], ref.pvalues[term], rtol=1e-6)
        fit = pd.read_csv(tmp_path / f"results/ols/{target}/fit.tsv", sep="\t").iloc[0]
        np.testing.assert_allclose(fit["r2"], ref.rsquared, rtol=1e-10)
        np.testing.assert_allclose(fit["f_pvalue"], ref.f_pvalue, rtol=1e-6)
        np.testing.assert_allclose(fit["aic"], ref.aic, rtol=1e-10)
        nested = pd.read_csv(tmp_path / f"results/ols/{target}/nested_tests.tsv", sep="\t").set_index("gene_set")
        restricted = smf.ols(f"{target} ~ G2 + C(batch) + dose + C(plate) + G5 + G2:G5", data=df).fit()
        f, p, dfn = ref.compare_f_test(restricted)
        np.testing.assert_allclose(nested.loc["pair", "f_stat"], f, rtol=1e-8)
        np.testing.assert_allclose(nested.loc["pair", "p_value"], p, rtol=1e-8)
        assert nested.loc["pair", "df_num"] == dfn == 3  # G3, G4 and G3:dose
        # removing G5 also removes the interaction G2:G5
        assert nested.loc["g5", "df_num"] == 2
        # the new batch, scored with its own sheet's covariates, as statsmodels predicts it
        new_df = pd.read_csv(tmp_path / "data/new.tsv", sep="\t", index_col=0).T.join(new_sheet.set_index("sample"))
        deployed = pd.read_csv(tmp_path / f"results/deploy/fresh/{target}/predictions.tsv", sep="\t")
        np.testing.assert_allclose(deployed.set_index("sample").loc[new_df.index, "predicted"],
                                   ref.predict(new_df), rtol=1e-8)
    # the target G5 is in the interaction G2:G5 and the gene set g5: neither enters its own model
    ref = smf.ols("G5 ~ G2 + G3 + G4 + C(batch) + dose + C(plate) + G3:dose", data=df).fit()
    ours = pd.read_csv(tmp_path / "results/ols/G5/coefficients.tsv", sep="\t").set_index("term")
    rename = {"Intercept": "const", "C(batch)[T.y]": "batch[T.y]", "C(batch)[T.z]": "batch[T.z]"}
    assert sorted(ours.index) == sorted(rename.get(t, t) for t in ref.params.index)
    np.testing.assert_allclose(ours.loc["G2", "coef"], ref.params["G2"], rtol=1e-8)
    nested = pd.read_csv(tmp_path / "results/ols/G5/nested_tests.tsv", sep="\t").set_index("gene_set")
    assert nested.loc["g5", "df_num"] == 0 and np.isnan(nested.loc["g5", "p_value"])
    log = (tmp_path / "results/logs/ols/G5.log").read_text()
    assert "interaction G2:G5 left out" in log and "gene set 'g5' holds the target itself" in log
    # q-values: BH across both targets and all non-intercept terms, recomputed directly
    tested = allc[allc["term"] != "const"]
    p = tested["p_value"].to_numpy()
    m = len(p)
    order = np.argsort(p)
    q = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1].clip(max=1)
    back = np.empty(m)
    back[order] = q
    np.testing.assert_allclose(tested["q_value"], back, rtol=1e-9)
    assert allc.loc[allc["term"] == "const", "q_value"].isna().all()
    # every target's gene-set tests in one table, q-values by BH over the targets' tests (statsmodels)
    from statsmodels.stats.multitest import multipletests

    alln = pd.read_csv(tmp_path / "results/ols/all_nested_tests.tsv", sep="\t")
    assert len(alln) == 6 and set(alln["target"]) == {"G0", "G1", "G5"}
    for target in ("G0", "G1", "G5"):
        own = pd.read_csv(tmp_path / f"results/ols/{target}/nested_tests.tsv", sep="\t")
        np.testing.assert_allclose(alln.loc[alln["target"] == target, "p_value"], own["p_value"], rtol=0)
    ok = alln["p_value"].notna()
    assert ok.sum() == 5  # G5's own set g5 is untestable
    np.testing.assert_allclose(alln.loc[ok, "q_value"], multipletests(alln.loc[ok, "p_value"], method="fdr_bh")[1],
                               rtol=1e-12)
    # only the OLS side ran
    pred = pd.read_csv(tmp_path / "results/compare/predictions.tsv", sep="\t")
    assert list(pred.columns) == ["target", "sample", "split", "observed", "ols"]
    assert not (tmp_path / "results/mlp").exists() and not (tmp_path / "results/penalized").exists()

    write_config(tmp_path, models=["ols"], targets=["NOPE"], predictors=["G2", "G3"])
    proc = run_snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "'NOPE'" in out and "not in the collected data" in out and "Traceback" not in proc.stderr
    assert not (tmp_path / "results/data/predictors/NOPE.tsv").exists()  # the failed step leaves no output


def test_jobs_that_hold_the_matrix_ask_for_memory_in_proportion(tmp_path):
    """A 3 GB input matrix (a sparse file: no disk used): collect asks SLURM / --resources for ~28 GB, not a fixed
    4 GB that would get it killed; small inputs keep the floor. Parsing text peaked at 6-8 x a plain TSV's size
    (collect) and 6.4 x (monitor), so collect asks for 6 x, a new batch's deploy job 5 x (x1.5); a .tsv.gz counts
    as 3 x its size (it weighed 2.9 x once read, and collect and monitor peaked at 22 and 19 x its size): a 1 GB
    gzipped matrix or batch asks for more than 19-22 GB, not the 6 GB of its compressed bytes."""
    write_config(tmp_path, new_batches={"fresh": ["data/new.tsv.gz"]})
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data/expr.tsv", "wb") as fh:
        fh.truncate(3 * 10**9)
    with open(tmp_path / "data/new.tsv.gz", "wb") as fh:
        fh.truncate(10**9)
    out = run_snakemake(tmp_path, "-n", "--forceall").stdout

    def mem_mb(rule: str, text: str = out) -> int:
        block = text[text.index(f"rule {rule}:"):]
        line = next(ln for ln in block.splitlines() if ln.strip().startswith("resources:"))
        return int(line.split("mem_mb=")[1].split(",")[0])

    def mb(x: float) -> int:
        return int(-(-x // 100) * 100)

    size_mb = 3 * 10**9 / 1e6  # the rules' input_mb: bytes / 10**6
    assert mem_mb("collect") == mb(1.5 * (400 + 6 * size_mb))
    assert mem_mb("collect") >= 8 * size_mb  # the measured peak, 6-8 x, fits the first attempt
    # normalize's input is not made yet (on SLURM it is submitted with collect in one group): it is sized from
    # the matrix it will read, the 3,000 MB of text as 1.5 x that much float64, not left out of the group's request
    assert mem_mb("normalize") == mb(1.5 * (400 + 5 * 3000 * 1.5))
    assert mem_mb("target_table") == 500
    # the gzipped new batch (1,000 MB on disk) with the best.json not made yet (+ the collected matrix's estimate)
    assert mem_mb("deploy_batch") == mb(1.5 * (400 + 5 * (3 * 1000 + 3000 * 1.5)))
    # a gzipped matrix: 3 x its bytes
    (tmp_path / "data/expr.tsv").unlink()
    with open(tmp_path / "data/expr.tsv.gz", "wb") as fh:
        fh.truncate(10**9)
    write_config(tmp_path, matrices=["data/expr.tsv.gz"])
    out = run_snakemake(tmp_path, "-n", "--forceall").stdout
    assert mem_mb("collect", out) == mb(1.5 * (400 + 6 * 3 * 1000))
    assert mem_mb("collect", out) >= 22 * 1000  # collect's measured peak: 22 x a .tsv.gz's size


def test_regulator_recovery_asks_for_time_in_proportion_to_its_gold_standard(tmp_path):
    """Regulator recovery trains a network per gold-standard target on every candidate regulator: a gold standard of
    20,000 targets x 300 regulators over 1,000 samples asks SLURM for hours (5 x the demo's measured 3.1 minutes
    scaled by targets x regulators x samples), not the fixed hour that would get it killed; the demo's size keeps
    the floor of 60 minutes."""
    write_config(tmp_path, gold_standard="data/gold.tsv")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/expr.tsv").write_text("gene\ts0\nG0\t1\n")
    (tmp_path / "data/gold.tsv").write_text("target\tG0\nG1\t1\n")
    (tmp_path / "results/data").mkdir(parents=True)
    regs = [f"R{j}" for j in range(300)]
    with open(tmp_path / "results/data/gold_standard.tsv", "w") as fh:
        fh.write("target\t" + "\t".join(regs) + "\n")
        row = "\t".join("0" * 300) + "\n"
        fh.writelines(f"T{i}\t{row}" for i in range(20000))
    pd.DataFrame({"sample": [f"s{i}" for i in range(1000)], "split": "train"}).to_csv(
        tmp_path / "results/data/splits.tsv", sep="\t", index=False)

    def runtime() -> int:
        out = run_snakemake(tmp_path, "-n", "--forceall").stdout
        block = out[out.index("rule regulator_recovery:"):]
        line = next(ln for ln in block.splitlines() if ln.strip().startswith("resources:"))
        return int(line.split("runtime=")[1].split(",")[0])

    work = 20000 * 300 * 1000 / (4891 * 239 * 236)
    assert runtime() == -(-(5 * 3.1 * work) // 1) > 60 * 4
    with open(tmp_path / "results/data/gold_standard.tsv", "w") as fh:
        fh.write("target\t" + "\t".join(regs[:239]) + "\n")
        fh.writelines(f"T{i}\t" + "\t".join("0" * 239) + "\n" for i in range(4891))
    pd.DataFrame({"sample": [f"s{i}" for i in range(236)], "split": "train"}).to_csv(
        tmp_path / "results/data/splits.tsv", sep="\t", index=False)
    assert runtime() == 60


def test_adding_a_target_makes_only_its_jobs(tmp_path):
    """Each target's set-up (folds, predictors) and models are jobs of their own: a target added to a finished
    run makes that target's jobs and the tables across targets, and leaves the others' models as they were
    (before, every target's set-up and models were made again)."""
    make_dataset(tmp_path, n_samples=30, n_genes=8)
    # the models and the gathered tables only (the figures, bundles and report would add a minute)
    wanted = ["results/data/predictors.tsv", "results/data/folds.tsv", "results/compare/metrics.tsv"]
    write_config(tmp_path, models=["ols"], targets=["G0"])
    run_snakemake(tmp_path, "--nocolor", *wanted)  # a flag first: --configfile takes several values
    g0 = tmp_path / "results/ols/G0/coefficients.tsv"
    before = (g0.read_bytes(), g0.stat().st_mtime_ns)
    write_config(tmp_path, models=["ols"], targets=["G0", "G1"])
    proc = run_snakemake(tmp_path, "--nocolor", *wanted)
    ran = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    wildcards: target=(\w+)", proc.stdout + proc.stderr,
                     re.M)
    # the set-up and the model of G1 only (a full run also redraws both targets' figures and bundles, which
    # show the tables across targets: seconds)
    assert sorted(ran) == [("folds", "G1"), ("ols", "G1"), ("select_predictors", "G1")], ran
    assert (g0.read_bytes(), g0.stat().st_mtime_ns) == before
    # the gathered tables hold both targets, in the config's order
    pred = pd.read_csv(tmp_path / "results/data/predictors.tsv", sep="\t")
    assert list(dict.fromkeys(pred["target"])) == ["G0", "G1"]
    folds = pd.read_csv(tmp_path / "results/data/folds.tsv", sep="\t")
    assert list(dict.fromkeys(folds["target"])) == ["G0", "G1"]


def test_impute_mean_fills_predictors_never_the_response(tmp_path):
    """missing: impute_mean fills a predictor gene's missing values with its training mean, but a target's
    samples without a measured value are left out of its folds, fits and judgement (before, the target's own
    training mean was learnt and scored as if measured). Expected numbers from numpy least squares."""
    make_dataset(tmp_path, n_samples=40, n_genes=8)
    expr = pd.read_csv(tmp_path / "data/expr.tsv", sep="\t", index_col=0)
    gone_y = expr.columns[::5]  # 8 samples without G0
    expr.loc["G0", gone_y] = np.nan
    expr.loc["G2", expr.columns[3]] = np.nan  # a predictor's missing value: imputed
    expr.to_csv(tmp_path / "data/expr.tsv", sep="\t", na_rep="NA")
    write_config(tmp_path, models=["ols"], targets=["G0", "G1"], predictors=["G2", "G3", "G4"],
                 missing="impute_mean")
    run_snakemake(tmp_path, "--nocolor", "results/data/folds.tsv", "results/compare/metrics.tsv")
    sp = pd.read_csv(tmp_path / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    X = expr.T
    train_all = sp.index[sp == "train"]
    g2 = X["G2"].fillna(X.loc[train_all, "G2"].mean())
    pred = pd.read_csv(tmp_path / "results/ols/G0/predictions.tsv", sep="\t", dtype={"sample": str})
    assert set(pred["sample"]) == set(X.index) - set(gone_y)
    train = [s for s in train_all if s not in set(gone_y)]
    A = np.column_stack([np.ones(len(train)), g2[train], X.loc[train, "G3"], X.loc[train, "G4"]])
    beta = np.linalg.lstsq(A, X.loc[train, "G0"].to_numpy(), rcond=None)[0]
    coefs = pd.read_csv(tmp_path / "results/ols/G0/coefficients.tsv", sep="\t")
    np.testing.assert_allclose(coefs["coef"], beta, rtol=1e-8)
    folds = pd.read_csv(tmp_path / "results/data/folds.tsv", sep="\t", dtype={"sample": str})
    assert set(folds.loc[folds["target"] == "G0", "sample"]) == set(train)
    assert set(folds.loc[folds["target"] == "G1", "sample"]) == set(train_all)
    # G1 keeps every sample; the log says what G0 left out
    assert len(pd.read_csv(tmp_path / "results/ols/G1/predictions.tsv", sep="\t")) == len(X)
    log = " ".join((tmp_path / "results/logs/ols/G0.log").read_text().split())
    assert f"target G0: {len(gone_y)} samples without a measured value" in log


def test_a_targets_bundle_figures_and_deploy_need_only_its_own_jobs(tmp_path):
    """What a target's bundle, figures and deploy jobs are made from is that target's jobs alone (and the
    shared data steps), so that adding or removing a target in a finished run leaves the other targets' bundles,
    figures and deploy results as they are (README: a target added makes only its own jobs and the tables and
    figures across targets). Checked on the plan Snakemake makes for G0's outputs from scratch: no job of G1."""
    make_dataset(tmp_path, n_samples=24, n_genes=8)
    make_dataset(tmp_path, n_samples=12, n_genes=8, seed=8, name="new.tsv", prefix="N")
    write_config(tmp_path, new_batches={"fresh": ["data/new.tsv"]})
    goals = ["results/models/G0/best.json", "results/plots/G0/observed_vs_predicted.png",
             "results/deploy/fresh/G0/verdict.json"]
    proc = run_snakemake(tmp_path, "-n", "--forceall", *goals)
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", proc.stdout, flags=re.M)
    per_target = {(rule, dict(w.split("=", 1) for w in wildcards.split(", "))["target"]) for rule, wildcards in jobs}
    assert {("ols", "G0"), ("mlp", "G0"), ("bundle", "G0"), ("deploy_batch", "G0")} <= per_target, per_target
    assert {t for _, t in per_target} == {"G0"}, sorted(per_target)
    assert not re.search(r"^(?:local)?rule compare:", proc.stdout, flags=re.M)


def test_the_run_asks_for_the_gene_set_tests_across_targets(tmp_path):
    """rule all asks for results/ols/all_nested_tests.tsv by name. Snakemake remakes a job for a missing output
    only when something asks for that file, so in a run finished before ols_summary wrote it (pulled in a later
    version), nothing remade it and snakemake --report stopped on 'marked for report but does not exist' with
    ols.gene_sets. Checked on the inputs of rule all in a dry run."""
    make_dataset(tmp_path, n_samples=24, n_genes=8)
    write_config(tmp_path, models=["ols"], predictors=["G2", "G3", "G4"], ols={"gene_sets": {"pair": ["G3", "G4"]}})
    proc = run_snakemake(tmp_path, "-n", "--forceall", "--nocolor")
    wanted = re.search(r"^(?:local)?rule all:\n    input: (.*)$", proc.stdout + proc.stderr, flags=re.M)
    assert wanted and "results/ols/all_nested_tests.tsv" in wanted.group(1).split(", ")


def _planned_jobs(proc) -> dict[tuple[str, str], dict[str, str]]:
    """{(rule, wildcards): {"input": ..., "shell": ...}} of a dry run's plan (snakemake -n -p)."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:\n)", proc.stdout + proc.stderr):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):\n", block)
        if not head:
            continue
        field = lambda name: (re.search(rf"^    {name}: (.*)$", block, re.M) or [None, ""])[1]  # noqa: E731
        shell = (re.search(r"^Shell command: (.*)$", block, re.M) or [None, ""])[1]
        jobs[(head.group(1), field("wildcards"))] = {"input": field("input").split(", "), "shell": shell}
    return jobs


def test_a_predictor_or_target_list_file_is_an_input_of_the_jobs_that_read_it(tmp_path):
    """predictors: {from: file} and targets: {file: ...} are read by the commands through a path in their params;
    as params, an edited file made nothing again (measured: a finished run whose candidates file was rewritten,
    G2..G5 -> G6, G7, said 'Nothing to be done' and kept G2 and G3 as G0's predictors). As inputs, a changed file
    makes the jobs that read it again."""
    make_dataset(tmp_path, n_samples=24, n_genes=8)
    (tmp_path / "data/tfs.txt").write_text("G2\nG3\nG4\nG5\n")
    (tmp_path / "data/targets.txt").write_text("G0\nG1\n")
    gold = pd.DataFrame(1, index=["G0"], columns=["G2", "G3"])
    gold.to_csv(tmp_path / "data/gold.tsv", sep="\t", index_label="target")
    write_config(tmp_path, models=["ols"], predictors={"top_correlated": 2, "from": "data/tfs.txt"},
                 gold_standard="data/gold.tsv")
    jobs = _planned_jobs(run_snakemake(tmp_path, "-n", "-p", "--forceall", "--nocolor"))
    for key in [("select_predictors", "target=G0"), ("select_predictors", "target=G1"), ("regulator_recovery", "")]:
        assert "data/tfs.txt" in jobs[key]["input"], (key, jobs[key])
    write_config(tmp_path, models=["ols"], targets={"file": "data/targets.txt"}, predictors={"from": "data/tfs.txt"})
    jobs = _planned_jobs(run_snakemake(tmp_path, "-n", "-p", "--forceall", "--nocolor"))
    assert {"data/tfs.txt", "data/targets.txt"} <= set(jobs[("genome_plan", "")]["input"]), jobs[("genome_plan", "")]


def test_settings_a_model_job_does_not_use_leave_its_command_as_it_was(tmp_path):
    """Snakemake makes a job again when its params change. With importance off (repeats 0) the models' commands
    carried importance.seed and (the network's) ols.fdr, and with the grid search search.seed and n_candidates:
    changing any of them made every OLS, penalized and network job again, and everything after them (measured on
    a finished run: 22 jobs for importance.seed, the networks' included; now none, and for ols.fdr only the
    tables and figures that show q-values)."""
    make_dataset(tmp_path, n_samples=24, n_genes=8)

    def commands(**overrides) -> dict:
        write_config(tmp_path, **overrides)
        jobs = _planned_jobs(run_snakemake(tmp_path, "-n", "-p", "--forceall", "--nocolor"))
        return {key: job["shell"] for key, job in jobs.items() if key[0] in ("ols", "penalized", "mlp")}

    base = commands()
    assert len(base) == 6 and all(base.values()), base
    changed = commands(importance={"repeats": 0, "seed": 7, "interaction_genes": 3},
                       ols={"fdr": 0.2}, search={"mlp": {"hidden": [[], [8]]}, "penalized": {"n_alphas": 6},
                                                 "seed": 5, "n_candidates": 3})
    assert changed == base
    # what a job uses still reaches its command: the importance seed with importance on, the draw's seed with the
    # random strategy
    used = commands(importance={"repeats": 2, "seed": 7},
                    search={"mlp": {"hidden": [[], [8]]}, "penalized": {"n_alphas": 6}, "strategy": "random", "seed": 5})
    assert all("--importance-seed 7" in used[key] for key in base)
    assert '"seed": 5' in used[("mlp", "target=G0")]
