import importlib.util
import json
import re
import shlex
import urllib.parse
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
            problems.extend(_unknown_keys(err, where))
        elif err.validator == "required":
            problems.append(f"{err.message} (in {where or 'the top level'})")
        else:
            desc = err.schema.get("description", "")
            found = _branch_errors(err) if err.validator in ("oneOf", "anyOf") else []
            problems.extend((f"'{p}': {m}" + (f" ({desc.strip()})" if desc else "")) if p else m
                            for p, m in (found or [(where, err.message)]))
    return problems


def _unknown_keys(err, where):
    """'unknown key' lines, with 'did you mean' for a close match, of an additionalProperties error."""
    import difflib

    known = list(err.schema.get("properties", {}))
    out = []
    for k in [k for k in err.instance if k not in known]:
        key = f"{where}.{k}" if where else str(k)
        hint = difflib.get_close_matches(str(k), known, n=1)
        out.append(f"unknown key '{key}'" + (f": did you mean '{hint[0]}'?" if hint else f" (known: {', '.join(known)})"))
    return out


def _branch_errors(err):
    """For a value valid under none of a oneOf/anyOf's forms: the errors of the one form whose type the value
    has (a list against the list form), each as (path, message) with a fix where one is known; empty when no
    single form fits the value's type (the generic message is kept then)."""
    by_branch = {}
    for sub in err.context:
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errs for errs in by_branch.values()
               if not any(e.validator in ("type", "const", "enum") and not e.relative_path for e in errs)]
    if not fitting and isinstance(err.instance, str):
        import difflib

        forms = err.schema.get("oneOf") or err.schema.get("anyOf") or []
        path = ".".join(str(p) for p in err.absolute_path)
        # a word the key takes on its own (an enum or const form): a misspelling of one of them is no list
        words = [str(v) for f in forms for v in ([f["const"]] if "const" in f else f.get("enum", []))]
        hint = difflib.get_close_matches(err.instance, words, n=1)
        if hint or any("enum" in f for f in forms):
            listed = any(f.get("type") == "array" for f in forms) and not any("enum" in f for f in forms)
            return [(path, f"{err.instance!r} is not one of {', '.join(words)}"
                           + (f": did you mean {hint[0]!r}?" if hint else "")
                           + (f" (a single id is a list: write [{err.instance}])" if listed else ""))]
        if any(f.get("type") == "array" for f in forms):
            return [(path, f"{err.instance!r} is a single value where a list is expected: write [{err.instance}]")]
    if len(fitting) != 1:
        return []
    out = []
    for e in fitting[0]:
        path = ".".join(str(p) for p in (*err.absolute_path, *e.relative_path))
        msg = e.message
        if e.validator == "additionalProperties":
            out.extend(("", line) for line in _unknown_keys(e, path))
            continue
        if e.validator in ("oneOf", "anyOf") and not all(set(f) == {"required"} for f in e.validator_value):
            nested = _branch_errors(e)
            if nested:
                out.extend(nested)
                continue
        if e.validator == "anyOf" and all(set(f) == {"required"} for f in e.validator_value):
            names = [n for f in e.validator_value for n in f["required"]]
            present = [n for n in names if isinstance(e.instance, dict) and n in e.instance]
            if not present:
                out.append((path, "needs " + " or ".join(repr(n) for n in names)))
                continue
        if e.validator == "type" and isinstance(e.instance, (int, float)) and not isinstance(e.instance, bool):
            msg = (f"{e.instance!r} is a number in YAML, but ids and names are text here: quote it "
                   f"('{e.instance}')")
        elif e.validator == "uniqueItems":
            seen, dups = set(), []
            for v in e.instance:
                key = json.dumps(v, sort_keys=True)
                if key in seen and v not in dups:
                    dups.append(v)
                seen.add(key)
            msg = f"lists {', '.join(repr(d) for d in dups)} more than once; keep one of each"
        out.append((path, msg))
    return out


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


def paths_hint() -> str:
    """Where the config's relative paths are read from, for the messages of files not found: Snakemake's working
    directory, which ``--directory`` moves away from the directory snakemake was started in."""
    return (
        f"Paths in the config are relative to Snakemake's working directory, {Path.cwd()} (the directory you run "
        "snakemake from, or the one --directory names), not to the config file's directory"
    )


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
        h5ad = [p for p in config["matrices"] if str(p).lower().endswith(".h5ad")]
        raise WorkflowError(
            "gexpred: 'ols.covariates' names sample-sheet columns, but no 'sample_sheet' is set. "
            "Add the sample sheet (a TSV with a 'sample' column) or remove the covariates."
            + (
                f" The obs columns of {h5ad[0]!r} are read as covariates only when it is named as the sample "
                f"sheet too: set sample_sheet: {h5ad[0]}."
                if h5ad else ""
            )
        )
    if missing:
        raise WorkflowError(
            "gexpred: input file(s) not found: "
            + ", ".join(repr(str(p)) for p in missing)
            + f". {paths_hint()}; fix them in your config."
        )


_check_inputs()

# Genome-wide mode: `targets: all` or `{file: ...}`; OLS for all targets at once, in chunks.
GENOME = not isinstance(config["targets"], list)
if GENOME and isinstance(config["targets"], dict) and not Path(config["targets"]["file"]).is_file():
    raise WorkflowError(
        f"gexpred: targets file {config['targets']['file']!r} not found. {paths_hint()}."
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
    if not MODELS:  # nothing left to fit: the comparison would get no model at all
        raise WorkflowError(
            "gexpred: 'models' is [penalized], which is for regression targets, but task is classification: no "
            "model would be fitted. Use models: [ols] (logistic regression; ols.penalized: true for a ridge "
            "logistic fit where the classes are separated), [mlp], or both."
        )
if config["binarize"] and not CLASSIFICATION:
    raise WorkflowError("gexpred: 'binarize' makes classification targets; set task: classification.")
if GENOME and "penalized" in MODELS:
    logger.warning(
        "gexpred: genome-wide mode fits OLS with the batched engine and networks per chunk of targets; "
        "penalized regression is fitted per target only, so it is skipped in this run."
    )
if GENOME and isinstance(config["predictors"], dict) and config["predictors"].get("top_correlated") is not None:
    raise WorkflowError(
        "gexpred: genome-wide mode (targets: all or {file: ...}) fits every target on one shared design, but "
        "'predictors.top_correlated' (the default when 'predictors' is not set) chooses different predictors per "
        "target. Give 'predictors' as a list of genes or as {from: file-or-list} (all of those genes), e.g. the "
        "transcription factors."
    )
if not GENOME and isinstance(config["predictors"], dict) and config["predictors"].get("top_correlated") is None:
    raise WorkflowError(
        "gexpred: 'predictors' is {from: ...} without 'top_correlated'. For targets listed one by one, give "
        "'top_correlated: K' beside 'from' (per target the K candidates most correlated with it on the training split) "
        "or the predictors as a list of genes; 'from' alone (all of those genes) is the shared design of genome-wide "
        "mode (targets: all or {file: ...})."
    )
if not GENOME and isinstance(config["predictors"], list):
    # refused here, before anything runs, as the select step would refuse it after the data steps
    # (gexpred.design.select_predictors)
    _both = [str(t) for t in config["targets"] if str(t) in {str(g) for g in config["predictors"]}]
    if _both:
        raise WorkflowError(
            f"gexpred: {', '.join(repr(t) for t in _both[:5])}{' ...' if len(_both) > 5 else ''} "
            f"{'is' if len(_both) == 1 else 'are'} listed both in 'targets' and in 'predictors'; a gene cannot "
            f"predict itself. Remove {'it' if len(_both) == 1 else 'them'} from 'predictors' (or from 'targets')."
        )
if GENOME and "ols" not in MODELS:
    raise WorkflowError("gexpred: genome-wide mode (targets: all or {file: ...}) needs 'ols' in 'models'.")
BATCHES = list(config["new_batches"])
if BATCHES and GENOME:
    raise WorkflowError("gexpred: new_batches (deploy and monitor) needs targets listed one by one, not genome-wide mode.")
_unknown_sheets = sorted(set(config["new_batch_sheets"]) - set(BATCHES))
if _unknown_sheets:
    raise WorkflowError(
        "gexpred: new_batch_sheets names batches that are not in new_batches: "
        + ", ".join(repr(b) for b in _unknown_sheets)
        + ". Use the names of new_batches (" + (", ".join(repr(b) for b in BATCHES) or "none set") + ")."
    )
for _key, _paths in (("new_batches", [p for paths in config["new_batches"].values() for p in paths]),
                     ("new_batch_sheets", list(config["new_batch_sheets"].values()))):
    _missing = [p for p in _paths if not Path(p).is_file()]
    if _missing:
        raise WorkflowError(
            f"gexpred: {_key} file(s) not found: " + ", ".join(repr(p) for p in _missing)
            + f". {paths_hint()}."
        )
NORMALIZATION = config["normalization"]
NORMALIZATION_STEPS = [NORMALIZATION] if isinstance(NORMALIZATION, str) else list(NORMALIZATION)


wildcard_constraints:
    target="|".join(re.escape(t) for t in sorted(TARGETS)) if TARGETS else "NO_TARGETS",
    batch="|".join(re.escape(b) for b in sorted(BATCHES)) if BATCHES else "NO_BATCHES",


# ----------------------------------------------------------------------------- helpers
# Rule params are shown in the report, inside a <script> block as JSON that Snakemake writes without escaping
# '<' or backslashes: an id holding '</script' would end the block, a backslash can break the JSON. Such text
# reaches the gexpred command in a form without them, which the command decodes (gexpred.cli.decode_arg).
_UNSAFE_IN_REPORT = re.compile(r"[<>&\\\x00-\x1f\x7f]")
ENCODED_ARG = "gexpred-enc:"


def cli_text(text):
    """A name (a gene id, a covariate) for the gexpred command, in the params of a job: as it is, or percent-encoded
    behind ENCODED_ARG when it holds a character the report cannot show verbatim."""
    text = str(text)
    return ENCODED_ARG + urllib.parse.quote(text, safe="") if _UNSAFE_IN_REPORT.search(text) else text


def cli_json(value):
    """``value`` as JSON for the params of a job (keys sorted: the same config in another key order is the same
    param), with backslashes, quotes in strings and <, >, & written as JSON's unicode escapes."""
    text = json.dumps(value, sort_keys=True)
    for raw, escaped in (("\\\\", "\\u005c"), ('\\"', "\\u0022"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text


def target_name(wildcards):
    """The gene id behind a target directory name (as cli_text writes it for the command)."""
    return cli_text(TARGETS[wildcards.target])


def predictor_spec():
    """The predictors setting as JSON for the command line."""
    return cli_json(config["predictors"])


def predictor_file():
    """The file of ``predictors.from`` (candidates one per line), an input of every job that reads it: the command
    reads it by the path in --spec, and Snakemake makes a job again when an input's content changes, not when a
    file named in its params does (an edited list of candidates left the chosen predictors as they were)."""
    pred = config["predictors"]
    return pred["from"] if isinstance(pred, dict) and isinstance(pred.get("from"), str) else []


def targets_file():
    """The file of ``targets: {file: ...}`` (genome-wide mode), an input of the plan for the same reason."""
    targets = config["targets"]
    return targets["file"] if isinstance(targets, dict) else []


def required_genes():
    """Genes every target's model must contain: those of interactions and gene sets. An interaction factor that
    names a covariate (a numeric sample-sheet column, ``[gene, age]``) is a column of the design, not a gene."""
    covariates = {str(c) for c in config["ols"]["covariates"]}
    genes = [g for pair in config["ols"]["interactions"] for g in pair if str(g) not in covariates]
    genes += [g for members in config["ols"]["gene_sets"].values() for g in members]
    return list(dict.fromkeys(genes))


def target_labels_file(wildcards):
    """A target's class labels table, for classification runs only."""
    return f"results/data/labels/{wildcards.target}.tsv" if CLASSIFICATION else []


def split_labels():
    """The class labels that stratify the train/test split: the first target's (classification runs only)."""
    return f"results/data/labels/{next(iter(TARGETS))}.tsv" if CLASSIFICATION and TARGETS else []


def labels_arg(input):
    return f"--labels {shlex.quote(input.labels)}" if input.labels else ""


def covariate_args():
    return " ".join(f"--covariate {shlex.quote(cli_text(c))}" for c in config["ols"]["covariates"])


def mlp_settings(genome=False):
    """The mlp section as JSON for the command line: only what the rule's command reads, so that changing
    another key (genome_mode in a per-target run) does not rerun the networks."""
    mlp = dict(config["mlp"])
    if not genome:
        mlp.pop("genome_mode", None)
    return cli_json(mlp)


if config["ols"]["cov_type"] != "nonrobust" and CLASSIFICATION:
    raise WorkflowError(
        f"gexpred: ols.cov_type is {config['ols']['cov_type']!r}, a heteroskedasticity-consistent covariance of "
        f"OLS fits; this run has classification targets, whose logistic regressions use the classical covariance "
        f"of their likelihood. Set ols.cov_type: nonrobust, or use regression targets for robust tests."
    )
IMPORTANCE = config["importance"]["repeats"] > 0
RECOVERY = config["recovery"]
COMBINED_RANKINGS = ["clr_mean", "rank_average"]  # gexpred.recovery.COMBINED (not importable before installation)
if RECOVERY["ranking"] == "tf_activity" and RECOVERY["prior_folds"] == 0:
    raise WorkflowError(
        "gexpred: recovery.ranking is 'tf_activity', which needs recovery.prior_folds above 0 (it is 0). "
        "Set recovery.prior_folds (default 5) or choose another ranking."
    )
if not GENOME and RECOVERY["ranking"] not in [*RECOVERY["sources"], *COMBINED_RANKINGS, "tf_activity"]:
    raise WorkflowError(
        f"gexpred: recovery.ranking is {RECOVERY['ranking']!r} but recovery.sources "
        f"({', '.join(RECOVERY['sources'])}) does not compute it. Add it to recovery.sources or set "
        "recovery.ranking to one of them, clr_mean, rank_average or tf_activity."
    )
if not GENOME and RECOVERY["ranking"] in COMBINED_RANKINGS and len(RECOVERY["sources"]) < 2:
    raise WorkflowError(
        f"gexpred: recovery.ranking is {RECOVERY['ranking']}, which combines at least two recovery.sources; "
        f"there is one ({RECOVERY['sources'][0]}). Add a source or rank by that one."
    )
# regulator recovery of a regression run against its gold standard (genome-wide mode: genome.smk)
RECOVERY_RUN = bool(config.get("gold_standard")) and not CLASSIFICATION and not GENOME


def importance_output(model):
    """The importance tables of a per-target model job (none when importance.repeats is 0)."""
    if not IMPORTANCE:
        return {}
    out = {"importance": f"results/{model}/{{target}}/importance.tsv"}
    if model == "mlp":
        out["interactions"] = "results/mlp/{target}/interactions.tsv"
    return out


def importance_args(model):
    """The importance settings for a model's command; with importance off (repeats 0) that alone, so that a
    setting the job does not use (importance.seed, ols.fdr for the network's interaction tests) does not make
    the models, networks included, again when it changes."""
    c = config["importance"]
    if not IMPORTANCE:
        return "--importance-repeats 0"
    args = f"--importance-repeats {c['repeats']} --importance-seed {c['seed']}"
    if model == "mlp":
        args += (f" --interaction-genes {c['interaction_genes']} --interactions-tested {c['interactions_tested']}"
                 f" --h-points {c['h_points']} --min-strength {c['min_strength']} --fdr {config['ols']['fdr']}")
    return args


def search_settings():
    """The network search's settings as JSON for the command line (the search section without the penalised
    regression's, nor, with the grid strategy, the random draw's size and seed, which it does not use: changing
    those does not rerun the networks)."""
    unused = {"penalized"} | ({"n_candidates", "seed"} if config["search"]["strategy"] == "grid" else set())
    return cli_json({k: v for k, v in config["search"].items() if k not in unused})


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


def importance_inputs(wildcards):
    """Every model's importance table of a target, and the network's interactions."""
    inputs = {m: f"results/{m}/{wildcards.target}/importance.tsv" for m in MODELS}
    if "mlp" in MODELS:
        inputs["interactions"] = f"results/mlp/{wildcards.target}/interactions.tsv"
    return inputs


def batch_files(wildcards):
    """The matrices of a new batch."""
    return config["new_batches"][wildcards.batch]


def batch_sheet(wildcards):
    """The sample sheet of a new batch: with covariates, the batch's own (new_batch_sheets) or the run's, to read
    them from; without, for classification, the batch's own if given, whose target columns label the batch (the
    monitor's truth); else none."""
    own = config["new_batch_sheets"].get(wildcards.batch)
    if config["ols"]["covariates"]:
        return [own or config["sample_sheet"]]
    return [own] if CLASSIFICATION and own else []


def input_paths(name):
    """A params function: the input files ``name`` quoted for the shell, or nothing while the checkpoint that
    defines them has not run (a dry run formats the command before genome_plan exists)."""
    def paths(wildcards, input):
        value = getattr(input, name, [])
        return " ".join(shlex.quote(str(p)) for p in ([value] if isinstance(value, str) else value))

    return paths


def genome_chunk_files(wildcards):
    """Per-chunk outputs of the genome-wide run (known once the plan checkpoint has run)."""
    plan = checkpoints.genome_plan.get().output.plan
    import csv

    with open(plan) as fh:
        chunks = sorted({int(row["chunk"]) for row in csv.DictReader(fh, delimiter="\t")})
    ext = {"coefficients": "parquet", "fit": "tsv", "metrics": "tsv", "nested": "tsv"}
    return {
        kind: [f"results/ols/genome/chunks/{c:05d}.{kind}.{ext[kind]}" for c in chunks]
        for kind in ext
    }


GENOME_RECOVERY_OUTPUTS = [
    "results/recovery/regulator_recovery.tsv",
    "results/recovery/edges.tsv",
    "results/plots/regulator_recovery.png",
]


def genome_recovery_inputs(wildcards):
    """The batched fits the genome-wide regulator recovery reads: the merged OLS coefficients and, with
    networks, every chunk's model."""
    inputs = {"coefficients": "results/ols/genome/coefficients.parquet", "models": []}
    if "mlp" in MODELS:
        inputs["models"] = [
            p.replace("results/ols/genome/", "results/mlp/genome/").replace(".metrics.tsv", ".model.pt")
            for p in genome_chunk_files(wildcards)["metrics"]
        ]
        inputs["meta"] = [p.replace(".model.pt", ".model.json") for p in inputs["models"]]
    return inputs


def genome_compare_inputs(wildcards):
    """The merged OLS metrics and, with networks, every chunk's network metrics and search table."""
    inputs = {"metrics": ["results/ols/genome/metrics.tsv"], "search": []}
    if "mlp" in MODELS:
        chunks = genome_chunk_files(wildcards)["metrics"]
        inputs["metrics"] += [p.replace("results/ols/genome/", "results/mlp/genome/") for p in chunks]
        inputs["search"] = [p.replace("results/ols/genome/", "results/mlp/genome/").replace(".metrics.", ".search.")
                            for p in chunks]
    return inputs


def all_outputs():
    """Every output of a run (report_outputs() is in report_helpers.smk)."""
    if GENOME:
        return [
            "results/ols/genome/coefficients.parquet",
            "results/ols/genome/significant.tsv",
            "results/ols/genome/fits.tsv",
            "results/ols/genome/metrics.tsv",
            "results/ols/genome/nested_tests.tsv",
            "results/plots/genome_ols.png",
            "results/compare/genome_summary.tsv",
            "results/plots/genome_comparison.png",
        ] + (GENOME_RECOVERY_OUTPUTS if config.get("gold_standard") else []) + report_outputs()
    out = [
        "results/data/targets.tsv",
        "results/data/predictors.tsv",
        "results/data/fold_predictors.tsv",
        "results/data/folds.tsv",
        *(["results/data/labels.tsv"] if CLASSIFICATION else []),
        "results/compare/predictions.tsv",
        "results/compare/metrics.tsv",
        "results/compare/cv_metrics.tsv",
        "results/compare/summary.tsv",
        "results/plots/activation_functions.png",
    ]
    if "ols" in MODELS:
        # all_nested_tests.tsv asked for by name: Snakemake remakes a job for a missing output only when something
        # asks for it, so a run finished before ols_summary wrote it would otherwise never get it (and
        # snakemake --report, which lists it with ols.gene_sets, would stop on the missing file)
        out += ["results/ols/all_coefficients.tsv", "results/ols/all_fits.tsv", "results/ols/all_nested_tests.tsv"]
    if RECOVERY_RUN:
        out += ["results/recovery/regulator_recovery.tsv", "results/recovery/edges.tsv",
                "results/plots/regulator_recovery.png"]
    if BATCHES:
        out.append("results/deploy/verdicts.tsv")
    for target in TARGETS:
        out += [f"results/models/{target}/{model}" for model in MODELS]
        out.append(f"results/models/{target}/best.json")
        for batch in BATCHES:
            out += [f"results/deploy/{batch}/{target}/predictions.tsv", f"results/deploy/{batch}/{target}/drift.png"]
        out.append(f"results/plots/{target}/observed_vs_predicted.png")
        if IMPORTANCE:
            out.append(f"results/plots/{target}/importance.png")
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


# ----------------------------------------------------------------------------- cluster resources
# mem_mb (MB) and runtime (minutes) of the jobs whose work grows with the data: what SLURM is asked
# for (--mem, -t) and what `--resources mem_mb=...` limits locally. Each estimate is the job's work
# (targets, samples, predictors, candidates x folds, epochs; read from the small tables the job takes
# as input, which exist when the job is scheduled) times a safety factor, never below the floor, and
# multiplied by `attempt`, so a job killed for memory or time is retried (profile: retries) with more.
# Calibration (2 cores): an ols_chunk of 2,000 targets x 301 terms on 600 samples peaked at 393 MB
# resident and took 13 s; a job's interpreter and imports are 150-250 MB (torch: 400 MB).
def _table_rows(path, column=None, value=None):
    """Data rows of a small TSV (all, or those whose `column` equals `value`); 0 if not written yet."""
    import csv

    p = Path(str(path))
    if not p.is_file():
        return 0
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return sum(1 for row in reader if column is None or row.get(column) == value)


def _design_predictors(path, default=100):
    """Number of shared predictors of a genome-wide run (design.json)."""
    try:
        return len(json.loads(Path(str(path)).read_text())["predictors"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def _mb(value, attempt, floor):
    """Round up to 100 MB, at least `floor`, times the attempt."""
    return int(attempt * max(floor, -(-value // 100) * 100))


def _minutes(value, attempt, floor):
    return int(attempt * max(floor, -(-value // 1)))


def _genome_chunk_shape(wildcards, input):
    """(targets in this chunk, samples, shared predictors) of a genome-wide chunk job."""
    targets = _table_rows(input.plan, "chunk", str(int(wildcards.chunk))) or config["ols"]["chunk_size"]
    samples = _table_rows(input.splits) or 1000
    return targets, samples, _design_predictors(input.design)


def ols_chunk_mem_mb(wildcards, input, attempt):
    """The chunk's columns of the data (read 64 MB of samples at a time, gexpred.io.read_h5ad_columns), X/Y/fitted
    copies, and the coefficient table (a row per target x term); with ols.cov_type HC0-HC3 also the residuals, H
    and H*H (samples x targets, twice samples x terms) and the robust Wald tests' blocks (32 MB)."""
    targets, samples, p = _genome_chunk_shape(wildcards, input)
    rows = targets * (p + 1)
    need = 300 + 64 + samples * (p + targets) * 8 * 4 / 1e6 + rows * 400 / 1e6
    if config["ols"]["cov_type"] != "nonrobust":
        need += samples * (2 * p + targets) * 8 / 1e6 + 32
    return _mb(1.5 * need, attempt, 2000)


def ols_chunk_runtime(wildcards, input, attempt):
    """Minutes: reading the data plus writing the table (measured: ~45,000 rows a second); x5 margin."""
    targets, samples, p = _genome_chunk_shape(wildcards, input)
    return _minutes(5 * (1 + input.size_mb / 200 + targets * (p + 1) / 45000 / 60), attempt, 15)


def genome_merge_mem_mb(wildcards, input, attempt):
    """The merge streams one chunk's tables at a time (pandas: 3-4 times the TSV's size) after a first
    pass over every p-value (16 bytes a row of ~130 bytes of TSV)."""
    chunk_mb = input.size_mb / max(1, len(getattr(input, "coefficients", [])))
    return _mb(1.5 * (600 + 4 * chunk_mb + input.size_mb * 16 / 130), attempt, 2000)


def genome_merge_runtime(wildcards, input, attempt):
    return _minutes(10 + input.size_mb / 100, attempt, 30)


def genome_plan_mem_mb(wildcards, input, attempt):
    return _mb(1000 + 3 * input.size_mb, attempt, 2000)


def _matrices_mb():
    """What the combined matrix weighs once collected (float64 .h5ad), estimated from the configured files:
    a gzipped text file holds about a third of it, any other file about two thirds."""
    total = 0.0
    for m in config["matrices"]:
        p = Path(m)
        if p.is_file():
            total += p.stat().st_size / 1e6 * (GZ_EXPANSION if p.suffix == ".gz" else 1.5)
    return total


GZ_EXPANSION = 3.0
"""A gzipped input counts as this many times its size on disk (input_mb): what its values weigh once read as
float64, as _matrices_mb estimates the collected matrix."""


def input_mb(input):
    """MB of a job's inputs; a gzipped one (a matrix or new batch as .tsv.gz) as GZ_EXPANSION times its size, what
    it weighs once read, not its compressed bytes (collect and monitor peaked at 22 and 19 times a .tsv.gz's size,
    6-8 times a plain TSV's). An input not made yet counts as the collected matrix (at most once): a job
    submitted with its group (workflow/profiles/slurm: the prepare steps in one allocation) would otherwise
    have no size, and the group would ask for the memory and time of its first steps only."""
    total, missing = 0.0, False
    for f in input:
        p = Path(str(f))
        if p.is_file():
            total += p.stat().st_size / 1e6 * (GZ_EXPANSION if p.name.endswith(".gz") else 1.0)
        else:
            missing = True
    return total + (_matrices_mb() if missing else 0.0)


def _matrix_shape(path):
    """(data rows, columns after the first) of a TSV matrix such as results/data/gold_standard.tsv; (0, 0) if not
    written yet."""
    p = Path(str(path))
    if not p.is_file():
        return 0, 0
    with open(p) as fh:
        columns = len(fh.readline().rstrip("\n").split("\t")) - 1
        return sum(1 for line in fh if line.strip()), columns


def recovery_runtime(wildcards, input, attempt):
    """Minutes of regulator recovery, nearly all of it one network per gold-standard target on every candidate
    regulator: measured 186 s on the demo (gold standard 4,891 targets x 239 regulators, 236 samples, 300 epochs,
    3 weight decays, 2 threads); scaled by targets x regulators x samples (x epochs x weight decays of
    recovery.network when the network is a source); x5 margin, at least 60."""
    targets, regulators = _matrix_shape(input.gold_standard)
    samples = _table_rows(input.splits) or 1000
    work = targets * regulators * samples / (4891 * 239 * 236)
    if "network" in RECOVERY["sources"]:
        net = RECOVERY["network"]
        work *= net.get("epochs", 300) / 300 * len(net.get("weight_decays", [0.01, 0.1, 1.0])) / 3
    else:
        work *= 0.3  # ridge, OLS and correlation: about a third of the demo's time
    return _minutes(max(5 * 3.1 * work, input_mb(input) / 100), attempt, 60)


def whole_matrix_mem_mb(factor, floor=4000):
    """mem_mb of a job that holds the whole expression matrix: interpreter and imports (400 MB) plus `factor`
    times the size of its inputs, x1.5. Measured at 20,000 genes x 1,300 samples (208 MB .h5ad; bench_scale):
    collect 685 MB, normalize 1,120 MB, the samples and normalization figures 707 and 935 MB (two .h5ad
    inputs); a fixed 4,000 MB would be too little from ~5,000 samples of 20,000 genes. Text inputs cost more:
    collect peaked at 6-8 x a plain TSV's size (4,218 x 3,000 and 20,000 x 600 values), monitor at 6.4 x, hence
    their factors 6 and 5; a .tsv.gz counts as 3 x its size (input_mb)."""

    def mem_mb(wildcards, input, attempt):
        return _mb(1.5 * (400 + factor * input_mb(input)), attempt, floor)

    return mem_mb


def whole_matrix_runtime(floor):
    """Minutes: `floor`, or 1 a 100 MB of input (text parsing and writing included) if more."""

    def runtime(wildcards, input, attempt):
        return _minutes(input_mb(input) / 100, attempt, floor)

    return runtime


def _mlp_params(p, outputs=1):
    """Parameters of the largest network the mlp section (or its search) builds on p inputs."""
    sizes = []
    for hidden in [config["mlp"]["hidden"]] + list(config["search"]["mlp"].get("hidden", [])):
        widths = [p] + list(hidden) + [outputs]
        sizes.append(sum(a * b + b for a, b in zip(widths[:-1], widths[1:])))
    return max(sizes)


def _mlp_seconds(networks, epochs, samples, params):
    """Training time of `networks` same-size networks as one program: bench_mlp.py measured 3.6 s for
    200 networks x 100 epochs x 300 samples x 1,441 parameters (4.2e-10 s per unit) on 2 cores."""
    return networks * epochs * samples * params * 4.2e-10


def mlp_chunk_mem_mb(wildcards, input, attempt):
    """per_target: a network per target (weights, gradients, Adam moments, best weights) and the stacked
    training inputs; multi_output: one network with an output per target. The data: the chunk's columns, read
    64 MB of samples at a time."""
    targets, samples, p = _genome_chunk_shape(wildcards, input)
    if config["mlp"].get("genome_mode") == "multi_output":
        nets = _mlp_params(p, targets) * 4 * 6 + samples * (p + targets) * 4 * 4
    else:
        nets = targets * (_mlp_params(p) * 4 * 6 + samples * (p + 1) * 4 * 2)
    return _mb(1.5 * (600 + 64 + samples * (p + targets) * 8 * 2 / 1e6 + nets / 1e6), attempt, 2000)


def mlp_chunk_runtime(wildcards, input, attempt):
    """Minutes: every epoch of every network of every search candidate (trained one candidate after the
    other; no early stopping assumed), x3 margin."""
    targets, samples, p = _genome_chunk_shape(wildcards, input)
    epochs = _search_epochs()
    if config["mlp"].get("genome_mode") == "multi_output":
        seconds = _mlp_seconds(1, epochs, samples, _mlp_params(p, targets))
    else:
        seconds = _mlp_seconds(targets, epochs, samples, _mlp_params(p))
    return _minutes(10 + 3 * _search_candidates() * seconds / 60, attempt, 30)


def _search_candidates():
    """Network candidates of the search (search.mlp)."""
    grid = 1
    for values in config["search"]["mlp"].values():
        grid *= len(values)
    if config["search"]["strategy"] == "random":
        grid = min(grid, config["search"]["n_candidates"])
    return grid


def _search_fits(choice_checked=False):
    """Networks one mlp job trains at once at most: search candidates x folds, then the chosen one's ensemble
    cross-validated (folds x members) and refitted (members). ``choice_checked``: all it trains, with the folds
    whose other folds chose another candidate (at most folds x members more, trained after the search; the
    comparison's cross-validation of the choice, gexpred.search.other_fold_choices)."""
    members = int(config["mlp"].get("ensemble", 1))
    folds = config["split"]["folds"]
    extra = folds * members if choice_checked and _search_candidates() > 1 else 0
    return _search_candidates() * folds + (folds + 1) * members + extra


def _mlp_shape(wildcards, input):
    """(samples, predictors of this target) of an mlp job."""
    samples = _table_rows(input.splits) or 1000
    p = _table_rows(input.predictors, "target", TARGETS[wildcards.target]) or 50
    return samples, p + len(config["ols"]["covariates"]) * 4


def _search_epochs():
    return max([config["mlp"]["epochs"]] + list(config["search"]["mlp"].get("epochs", [])))


def mlp_mem_mb(wildcards, input, attempt):
    """candidates x folds networks trained as a few vectorised programs, each with its inputs stacked."""
    samples, p = _mlp_shape(wildcards, input)
    per_net = _mlp_params(p) * 4 * 6 + samples * (p + 1) * 4 * 2
    return _mb(1.5 * (600 + 2 * input_mb(input) + _search_fits() * per_net / 1e6), attempt, 2000)


def mlp_runtime(wildcards, input, attempt):
    """Minutes: every epoch of every candidate on every fold (no early stopping assumed), x3 margin."""
    samples, p = _mlp_shape(wildcards, input)
    seconds = _mlp_seconds(_search_fits(choice_checked=True), _search_epochs(), samples, _mlp_params(p))
    return _minutes(10 + 3 * seconds / 60, attempt, 30)
