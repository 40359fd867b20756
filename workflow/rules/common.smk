import importlib.util
import json
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import update_config, validate

# ----------------------------------------------------------------------------- config
# With --configfile, use the user's file(s) (and any --config) over the schema defaults
# only: the demo's config/config.yaml must not leak data paths, targets or predictor
# lists into a run on other data. Without --configfile, the demo config is used.
if workflow.overwrite_configfiles:
    _user = {}
    update_config(_user, workflow.config_settings.overwrite_config)
    config.clear()
    config.update(_user)
    logger.info(
        "gexpred: using "
        + ", ".join(str(f) for f in workflow.overwrite_configfiles)
        + " with the schema's defaults (config/config.yaml is not merged in)."
    )



def _config_problems(cfg):
    """Every schema violation of ``cfg`` as one readable line, with 'did you mean' for typos."""
    import difflib

    import jsonschema
    import yaml

    schema_path = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    problems = []
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties":
            known = list(err.schema.get("properties", {}))
            for k in [k for k in err.instance if k not in known]:
                key = f"{where}.{k}" if where else str(k)
                hint = difflib.get_close_matches(str(k), known, n=1)
                problems.append(
                    f"unknown key '{key}'"
                    + (f": did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(known)})")
                )
        elif err.validator == "required":
            problems.append(f"{err.message} (in {where or 'the top level'})")
        else:
            desc = err.schema.get("description", "")
            problems.append(f"'{where}': {err.message}" + (f" ({desc.strip()})" if desc else ""))
    return problems


_problems = _config_problems(config)
if _problems:
    raise WorkflowError(
        "gexpred: the configuration has "
        + (f"{len(_problems)} problems" if len(_problems) > 1 else "a problem")
        + ":\n  - "
        + "\n  - ".join(_problems)
        + "\nFix the config file; every key is described in config/README.md."
    )
validate(config, schema="../schemas/config.schema.yaml")


def _load_naming():
    """Load gexpred.naming by path: the workflow needs it before the package is installed."""
    path = Path(workflow.basedir) / "src" / "gexpred" / "naming.py"
    spec = importlib.util.spec_from_file_location("gexpred_naming", path)
    naming = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(naming)
    return naming


def _check_inputs():
    missing = [p for p in config["matrices"] if not Path(p).is_file()]
    for key in ("sample_sheet", "gold_standard"):
        if config.get(key) and not Path(config[key]).is_file():
            missing.append(config[key])
    pred = config["predictors"]
    if isinstance(pred, dict) and isinstance(pred.get("from"), str):
        if not Path(pred["from"]).is_file():
            missing.append(pred["from"])
    if config["ols"]["covariates"] and not config.get("sample_sheet"):
        raise WorkflowError(
            "gexpred: 'ols.covariates' names sample-sheet columns, but no 'sample_sheet' is set. "
            "Add the sample sheet (a TSV with a 'sample' column) or remove the covariates."
        )
    if missing:
        raise WorkflowError(
            "gexpred: input file(s) not found: "
            + ", ".join(repr(str(p)) for p in missing)
            + f". Paths are relative to the directory you run snakemake from ({Path.cwd()}); "
            "fix them in your config."
        )


_check_inputs()

# Genome-wide mode: `targets: all` or `{file: ...}`; OLS for all targets at once, in chunks.
GENOME = not isinstance(config["targets"], list)
if GENOME and isinstance(config["targets"], dict) and not Path(config["targets"]["file"]).is_file():
    raise WorkflowError(
        f"gexpred: targets file {config['targets']['file']!r} not found (paths are relative to {Path.cwd()})."
    )
try:
    TARGET_DIRS = (
        {} if GENOME else _load_naming().safe_names([str(t) for t in config["targets"]])
    )
except ValueError as exc:
    raise WorkflowError(f"gexpred: {exc}")
TARGETS = {d: t for t, d in TARGET_DIRS.items()}  # directory name -> gene id
MODELS = list(config["models"])
CLASSIFICATION = config["task"] == "classification"
if CLASSIFICATION and GENOME:
    raise WorkflowError(
        "gexpred: classification targets are sample-sheet columns or binarized genes, listed one by one; "
        "genome-wide mode (targets: all or {file: ...}) is for regression."
    )
if CLASSIFICATION and "penalized" in MODELS:
    logger.warning(
        "gexpred: the 'penalized' model (ridge/lasso regression) is for regression targets; it is skipped "
        "for classification (ols.penalized: true gives a ridge logistic fit where classes are separated)."
    )
    MODELS = [m for m in MODELS if m != "penalized"]
if config["binarize"] and not CLASSIFICATION:
    raise WorkflowError("gexpred: 'binarize' makes classification targets; set task: classification.")
if GENOME and "penalized" in MODELS:
    logger.warning(
        "gexpred: genome-wide mode fits OLS with the batched engine and networks per chunk of targets; "
        "penalized regression is fitted per target only, so it is skipped in this run."
    )
if GENOME and "ols" not in MODELS:
    raise WorkflowError("gexpred: genome-wide mode (targets: all or {file: ...}) needs 'ols' in 'models'.")
BATCHES = list(config["new_batches"])
if BATCHES and GENOME:
    raise WorkflowError("gexpred: new_batches (deploy and monitor) needs targets listed one by one, not genome-wide mode.")
_missing_batch = [p for paths in config["new_batches"].values() for p in paths if not Path(p).is_file()]
if _missing_batch:
    raise WorkflowError(
        "gexpred: new_batches file(s) not found: "
        + ", ".join(repr(p) for p in _missing_batch)
        + f". Paths are relative to {Path.cwd()}."
    )
NORMALIZATION = config["normalization"]
NORMALIZATION_STEPS = [NORMALIZATION] if isinstance(NORMALIZATION, str) else list(NORMALIZATION)


wildcard_constraints:
    target="|".join(re.escape(t) for t in sorted(TARGETS)) if TARGETS else "NO_TARGETS",
    batch="|".join(re.escape(b) for b in sorted(BATCHES)) if BATCHES else "NO_BATCHES",


# ----------------------------------------------------------------------------- helpers
def target_name(wildcards):
    """The gene id behind a target directory name."""
    return TARGETS[wildcards.target]


def predictor_spec():
    """The predictors setting as JSON for the command line."""
    return json.dumps(config["predictors"])


def required_genes():
    """Genes every target's model must contain: those of interactions and gene sets."""
    genes = [g for pair in config["ols"]["interactions"] for g in pair]
    genes += [g for members in config["ols"]["gene_sets"].values() for g in members]
    return list(dict.fromkeys(genes))


def labels_input():
    """The class labels table, for classification runs only."""
    return "results/data/labels.tsv" if CLASSIFICATION else []


def labels_arg(input):
    return f"--labels {shlex.quote(input.labels)}" if input.labels else ""


def covariate_args():
    return " ".join(f"--covariate {shlex.quote(c)}" for c in config["ols"]["covariates"])


def mlp_settings():
    return json.dumps(config["mlp"], sort_keys=True)


def search_settings():
    """The search section as JSON for the command line."""
    return json.dumps(config["search"], sort_keys=True)


def mlp_gpus(wildcards):
    """Ask the scheduler for a GPU only when the config asks for CUDA."""
    return 1 if config["mlp"]["device"] == "cuda" else 0


def model_predictions():
    return [
        f"results/{model}/{target}/predictions.tsv"
        for target in TARGETS
        for model in MODELS
    ]


def model_cv_predictions():
    """Out-of-fold predictions of every model and target (the same folds for all)."""
    return [
        f"results/{model}/{target}/cv_predictions.tsv"
        for target in TARGETS
        for model in MODELS
    ]


def batch_files(wildcards):
    """The matrices of a new batch."""
    return config["new_batches"][wildcards.batch]


def genome_chunk_files(wildcards):
    """Per-chunk outputs of the genome-wide run (known once the plan checkpoint has run)."""
    plan = checkpoints.genome_plan.get().output.plan
    import csv

    with open(plan) as fh:
        chunks = sorted({int(row["chunk"]) for row in csv.DictReader(fh, delimiter="\t")})
    return {
        kind: [f"results/ols/genome/chunks/{c:05d}.{kind}.tsv" for c in chunks]
        for kind in ("coefficients", "fit", "metrics")
    }


def genome_compare_inputs(wildcards):
    """The merged OLS metrics and, with networks, every chunk's network metrics."""
    inputs = {"metrics": ["results/ols/genome/metrics.tsv"]}
    if "mlp" in MODELS:
        chunks = genome_chunk_files(wildcards)["metrics"]
        inputs["metrics"] += [p.replace("results/ols/genome/", "results/mlp/genome/") for p in chunks]
    return inputs


def all_outputs():
    """Every output of a run (report_outputs() is in report_helpers.smk)."""
    if GENOME:
        return [
            "results/ols/genome/coefficients.tsv",
            "results/ols/genome/fits.tsv",
            "results/ols/genome/metrics.tsv",
            "results/plots/genome_ols.png",
            "results/compare/genome_summary.tsv",
            "results/plots/genome_comparison.png",
        ] + report_outputs()
    out = [
        "results/data/targets.tsv",
        "results/compare/predictions.tsv",
        "results/compare/metrics.tsv",
        "results/compare/cv_metrics.tsv",
        "results/compare/summary.tsv",
        "results/plots/activation_functions.png",
    ]
    if "ols" in MODELS:
        out += ["results/ols/all_coefficients.tsv", "results/ols/all_fits.tsv"]
        if config.get("gold_standard") and not CLASSIFICATION:
            out += ["results/ols/regulator_recovery.tsv", "results/plots/regulator_recovery.png"]
    if BATCHES:
        out.append("results/deploy/verdicts.tsv")
    for target in TARGETS:
        out += [f"results/models/{target}/{model}" for model in MODELS]
        out.append(f"results/models/{target}/best.json")
        for batch in BATCHES:
            out += [f"results/deploy/{batch}/{target}/predictions.tsv", f"results/deploy/{batch}/{target}/drift.png"]
        out.append(f"results/plots/{target}/observed_vs_predicted.png")
        if "ols" in MODELS:
            out += [
                f"results/ols/{target}/coefficients.tsv",
                f"results/ols/{target}/summary.txt",
                f"results/ols/{target}/nested_tests.tsv",
                f"results/plots/{target}/coefficients.png",
            ]
            if not CLASSIFICATION:
                out.append(f"results/plots/{target}/diagnostics.png")
        if "penalized" in MODELS:
            out += [
                f"results/penalized/{target}/coefficients.tsv",
                f"results/penalized/{target}/search.tsv",
            ]
        if "mlp" in MODELS:
            out += [
                f"results/mlp/{target}/search.tsv",
                f"results/mlp/{target}/model.pt",
                f"results/mlp/{target}/model.json",
                f"results/mlp/{target}/history.tsv",
                f"results/plots/{target}/loss.png",
            ]
    return out + report_outputs()
