"""Hostile names and safe artifacts (issue 8, items 2 and 5), on one tiny end-to-end run.

The run's target and predictor genes and its sample ids hold ``/``, ``..``, spaces, quotes, unicode,
HTML and a 200-character name, and three of its values are missing (``missing: impute_mean``).
The run must succeed, create nothing outside ``results/`` (and
Snakemake's own ``.snakemake/``), map every target to a safe directory in ``results/data/targets.tsv``,
keep the ids exactly in its tables, and escape them in its HTML. None of its outputs may be a pickle:
models load with ``torch.load(weights_only=True)``, no ``.pkl``/``.pickle``/``.joblib`` file, no file
starting with a pickle protocol header, and no pickled (opaque) data inside the ``.h5ad`` files.
(tests/test_workflow.py opens the report of a run with hostile ids in Chromium.)
"""

from __future__ import annotations

import html
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gexpred.naming import safe_name
from test_workflow import run_snakemake, write_config

pytestmark = pytest.mark.slow

LONG = "é基因/" + "L" * 200
TARGETS = ["../../escape", f"<img src=x onerror=alert(1)> q'uo\"te {LONG}"]
PREDICTORS = ["../pred", "p q", "<b>P</b>", "/etc/passwd", "ünï'\""]
OTHERS = ["..", ".", "ok_gene"]
SAMPLES = ["../s0", "s 1", "<i>s2</i>", "'s3\"", "样本4", "S" * 150 + "/5", "/etc/6", ".."] + [
    f"plain{i:02d}" for i in range(8, 40)]
SAFE_DIR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def _snapshot(root: Path) -> set[Path]:
    return {Path(dirpath, name) for dirpath, dirnames, files in os.walk(root) for name in [*dirnames, *files]}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A tiny run nested two levels deep, so that '../..' in a path would still land inside the sandbox."""
    sandbox = tmp_path_factory.mktemp("hostile")
    root = sandbox / "a" / "b" / "run"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(11)
    genes = [*TARGETS, *PREDICTORS, *OTHERS]
    n = len(SAMPLES)
    X = rng.normal(6.0, 1.0, (n, len(genes)))
    for k in range(len(TARGETS)):  # each target a linear function of two predictors
        X[:, k] = 1.0 + X[:, len(TARGETS) + k] - 0.5 * X[:, len(TARGETS) + k + 1] + rng.normal(0, 0.3, n)
    expr = pd.DataFrame(X.T, index=pd.Index(genes, name="gene"), columns=SAMPLES)
    # missing values in a predictor and another gene, imputed by their training means (missing: impute_mean)
    expr.loc["p q", ["s 1", "plain20"]] = np.nan
    expr.loc["ok_gene", "../s0"] = np.inf
    expr.to_csv(root / "data" / "expr.tsv", sep="\t")
    batch = pd.DataFrame(rng.normal(6.0, 1.0, (len(genes), 6)), index=pd.Index(genes, name="gene"),
                         columns=[f"new <{i}>/../x" for i in range(6)])
    batch.to_csv(root / "data" / "batch.tsv", sep="\t")
    write_config(root, targets=TARGETS, predictors=PREDICTORS,
                 mlp={"hidden": [4], "epochs": 20, "patience": 5, "batch_size": 16, "ensemble": 2},
                 search={"mlp": {"hidden": [[], [4]]}, "penalized": {"n_alphas": 4}},
                 new_batches={"fresh": ["data/batch.tsv"]}, missing="impute_mean")
    before = _snapshot(sandbox)
    run_snakemake(root)
    created = _snapshot(sandbox) - before
    return root, expr, created


def test_hostile_run_creates_files_only_under_results(hostile_run):
    root, _, created = hostile_run
    assert created, "the run created nothing"
    allowed = [root / "results", root / ".snakemake"]
    outside = sorted(str(p) for p in created if not any(p == a or a in p.parents for a in allowed))
    assert outside == [], f"files created outside results/: {outside}"
    for p in created:  # no link that leads out of the run either
        if p.is_symlink():
            assert root.resolve() in p.resolve().parents, p
        rel = p.relative_to(root)
        assert ".." not in rel.parts


def test_hostile_targets_map_to_safe_unique_directories(hostile_run):
    root, _, _ = hostile_run
    table = pd.read_csv(root / "results/data/targets.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert table["target"].tolist() == TARGETS
    assert table["directory"].tolist() == [safe_name(t) for t in TARGETS]
    assert table["directory"].is_unique
    for d in table["directory"]:
        assert SAFE_DIR.match(d) and d not in {".", ".."}
        for model in ("ols", "penalized", "mlp"):
            assert (root / "results" / model / d / "predictions.tsv").is_file()
        assert (root / "results" / "models" / d / "best.json").is_file()
        assert (root / "results" / "deploy" / "fresh" / d / "predictions.tsv").is_file()
    # every directory the run made under results/ is a safe name
    for p in (root / "results").rglob("*"):
        assert SAFE_DIR.match(p.name) or p.name.startswith("."), p


def test_hostile_ids_kept_exactly_in_tables(hostile_run):
    root, expr, _ = hostile_run
    pred = pd.read_csv(root / "results/compare/predictions.tsv", sep="\t", dtype={"target": str, "sample": str},
                       keep_default_na=False, na_values=[""], float_precision="round_trip")
    assert sorted(set(pred["target"])) == sorted(TARGETS)
    assert sorted(set(pred["sample"])) == sorted(SAMPLES)
    chosen = pd.read_csv(root / "results/data/predictors.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert set(chosen["gene"]) == set(PREDICTORS)
    coefs = pd.read_csv(root / "results/ols/all_coefficients.tsv", sep="\t", dtype={"target": str, "term": str},
                        keep_default_na=False, na_values=[""])
    assert set(coefs["term"]) == {"const", *PREDICTORS}
    # the observed values are the input's, sample by sample
    for t in TARGETS:
        sub = pred[pred["target"] == t].set_index("sample")
        np.testing.assert_array_equal(sub["observed"].to_numpy(), expr.loc[t, sub.index].to_numpy())
    deployed = pd.read_csv(root / "results/deploy/fresh" / safe_name(TARGETS[0]) / "predictions.tsv", sep="\t",
                           dtype={"sample": str})
    assert sorted(deployed["sample"]) == sorted(f"new <{i}>/../x" for i in range(6))


def test_hostile_ids_escaped_in_html(hostile_run):
    root, _, _ = hostile_run
    pages = list((root / "results").rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(errors="replace")
        for raw in ["<img src=x onerror=alert(1)>", "<b>P</b>", "<i>s2</i>"]:
            assert raw not in text, f"{raw!r} unescaped in {page}"
        assert html.escape("<img src=x onerror=alert(1)>", quote=False) in text or "&lt;img" in text


def test_missing_values_imputed_and_reported(hostile_run):
    """missing: impute_mean through the workflow: listed in dropped.tsv, means in normalization.json, caption."""
    root, expr, _ = hostile_run
    dropped = pd.read_csv(root / "results/data/dropped.tsv", sep="\t", dtype=str)
    assert dropped[["kind", "id"]].values.tolist() == [["imputed", "p q"], ["imputed", "ok_gene"]]
    params = json.loads((root / "results/data/normalization.json").read_text())
    assert params["imputed"]["genes"] == ["p q", "ok_gene"] and params["imputed"]["n_values"] == 3
    splits = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str).set_index("sample")["split"]
    train = [s for s in SAMPLES if splits[s] == "train" and s not in ("s 1", "plain20")]
    assert params["imputed"]["means"][0] == pytest.approx(expr.loc["p q", train].mean(), rel=1e-12)
    assert "replaced 3 missing values" in (root / "results/logs/normalize.log").read_text()
    facts = json.loads((root / "results/report/facts.json").read_text())
    assert "2 genes (e.g. p q, ok\\_gene) had missing or infinite values, replaced by the gene's mean" in facts["data"]


# --------------------------------------------------------------------------- safe artifacts (item 5)
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".npy", ".npz", ".dill", ".cloudpickle"}


def _is_pickle(head: bytes) -> bool:
    """Protocol 2+ pickles start with PROTO (0x80) and the protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _h5_problems(path: Path) -> list[str]:
    import h5py

    problems = []

    def visit(name, obj):
        for key, value in obj.attrs.items():
            if isinstance(value, (bytes, np.void)) and _is_pickle(bytes(value)[:2]):
                problems.append(f"{name}@{key}: pickled attribute")
        if isinstance(obj, h5py.Dataset):
            dt = obj.dtype
            if dt.kind in "biuf" or h5py.check_string_dtype(dt) is not None:
                return
            if dt.kind == "V" and dt.names:  # compound (e.g. sparse/categorical parts): check its fields
                if all(dt[f].kind in "biuf" or h5py.check_string_dtype(dt[f]) for f in dt.names):
                    return
            problems.append(f"{name}: dtype {dt} (opaque or object data)")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return problems


def test_no_pickle_in_outputs(hostile_run):
    root, _, _ = hostile_run
    files = [p for p in (root / "results").rglob("*") if p.is_file()]
    assert len(files) > 50
    seen = {"pt": 0, "h5ad": 0}
    for p in files:
        assert p.suffix.lower() not in PICKLE_SUFFIXES, f"pickle-like file {p}"
        head = p.read_bytes()[:2]
        assert not _is_pickle(head), f"{p} starts with a pickle header"
        if p.suffix == ".pt" or zipfile.is_zipfile(p):
            assert p.suffix == ".pt", f"unexpected archive {p}"
            state = torch.load(p, map_location="cpu", weights_only=True)
            assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()), p
            seen["pt"] += 1
        if p.suffix == ".h5ad":
            assert _h5_problems(p) == [], p
            seen["h5ad"] += 1
    # 2 targets: results/mlp/*/model.pt and results/models/*/mlp/weights.pt
    assert seen["pt"] == 4 and seen["h5ad"] >= 2, seen


# --------------------------------------------------------------------------- ids that look like wildcards
BRACED = "{wildcard}"  # Snakemake fills "{name}" in a rule's plain-string params from the job's wildcards


def test_braced_ids_reach_the_commands_exactly(tmp_path):
    """A gene id or sample-sheet column written like a Snakemake wildcard (``{wildcard}``) is a name like any
    other: the plan is made and the commands get the id as it is, as predictor, interaction and gene-set gene,
    covariate, and in genome-wide mode (a dry run: the names reach every command that takes them)."""
    rng = np.random.default_rng(5)
    genes = ["G0", "G1", BRACED, "G3", "G4"]
    samples = [f"S{i:02d}" for i in range(24)]
    (tmp_path / "data").mkdir()
    pd.DataFrame(rng.normal(6.0, 1.0, (len(genes), len(samples))), index=pd.Index(genes, name="gene"),
                 columns=samples).to_csv(tmp_path / "data" / "expr.tsv", sep="\t")
    pd.DataFrame({"sample": samples, "{batch}": ["a", "b"] * 12}).to_csv(tmp_path / "data" / "sheet.tsv", sep="\t",
                                                                          index=False)
    write_config(tmp_path, targets=["G0"], predictors=[BRACED, "G3", "G4"], sample_sheet="data/sheet.tsv",
                 ols={"covariates": ["{batch}"], "interactions": [[BRACED, "G3"]], "gene_sets": {"s": [BRACED]}})
    proc = run_snakemake(tmp_path, "-n", "--printshellcmds", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f'--spec \'["{BRACED}", "G3", "G4"]\'' in out
    assert f"--required '{BRACED}'" in out and "--covariate '{batch}'" in out
    assert f'--interactions \'[["{BRACED}", "G3"]]\'' in out and f'--gene-sets \'{{"s": ["{BRACED}"]}}\'' in out

    write_config(tmp_path, targets="all", models=["ols"], predictors=[BRACED, "G3"], sample_sheet="data/sheet.tsv",
                 ols={"covariates": ["{batch}"], "interactions": [[BRACED, "G3"]], "gene_sets": {"s": [BRACED]}})
    proc = run_snakemake(tmp_path, "-n", "--printshellcmds", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f'--spec \'["{BRACED}", "G3"]\'' in out and "--covariate '{batch}'" in out
    assert f'--interactions \'[["{BRACED}", "G3"]]\'' in out and f'--gene-sets \'{{"s": ["{BRACED}"]}}\'' in out
    assert not (tmp_path / "results").exists()
