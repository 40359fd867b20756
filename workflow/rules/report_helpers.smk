# Helpers of report.smk: what the report adds to the default target, and how captions read the
# numbers of results/report/facts.json.
import json
import shlex
from pathlib import Path


REPORT_FACTS = "results/report/facts.json"
# Cross-validation metrics, when a rule of the workflow makes them (compare.smk).
CV_METRICS = "results/compare/cv_metrics.tsv"
CV_SUMMARY = "results/compare/summary.tsv"
HAS_CV = any(CV_METRICS in [str(f) for f in r.output] for r in workflow.rules)
HAS_CV_SUMMARY = any(CV_SUMMARY in [str(f) for f in r.output] for r in workflow.rules)


class CaptionFacts:
    """The sentences of REPORT_FACTS for one report caption, read when the report is built.

    Snakemake renders captions with the rule's params but cannot read result files itself.
    A parameter of this type is not a plain value, so Snakemake leaves it out of its
    params-change check: it never triggers a re-run, and the file is read only when a
    caption calls load() or target().
    """

    def __init__(self, path, target=None):
        self.path = path
        self.target_dir = target

    def __repr__(self):
        return f"numbers from {self.path}"

    def load(self):
        try:
            return json.loads(Path(self.path).read_text())
        except (OSError, ValueError):
            return {}

    def target(self):
        return self.load().get("targets", {}).get(self.target_dir, {})

    def classes(self, model_json):
        """The classes of a classification model (``classes`` of its model.json, the reference first), each
        as reStructuredText that shows the name as it is (empty when the file has none)."""
        try:
            classes = json.loads(Path(model_json).read_text()).get("classes") or []
        except (OSError, ValueError):
            return []
        return [rst_text(c) for c in classes]


def rst_text(text):
    """``text`` as reStructuredText that shows exactly these characters: gexpred.facts.rst, which the
    workflow cannot import (the package need not be installed where Snakemake runs)."""
    words = " ".join(str(text).split())
    return "".join(ch if (ch.isalnum() and ch.isascii()) or ch == " " else f"\\{ch}" for ch in words)


def caption_facts(wildcards):
    return CaptionFacts(REPORT_FACTS, wildcards.get("target"))


def report_name(text):
    """A name from users' data (a gene id) as a report subcategory or label value, shown as these characters.

    Snakemake renders subcategories and labels as text, but first substitutes ``{wildcard}`` patterns in
    them and writes them into the report as JSON inside a <script> element, where a ``</script`` or ``<!--``
    in a name would end the script. A word joiner (U+2060, invisible and zero-width) after every ``<`` and
    ``{`` keeps both from happening; the name reads the same.
    """
    return str(text).replace("<", "<\u2060").replace("{", "{\u2060")


def target_subcategory(wildcards):
    """The report subcategory of a target's results: its id (not the directory name)."""
    return report_name(TARGETS[wildcards.target])


def target_labels(wildcards, **labels):
    """The report labels of a target's result: "target", its id (not the directory name), then ``labels``.

    The rules of the per-target models call it from a lambda: they are defined before this file is included.
    """
    return {"target": target_subcategory(wildcards), **labels}


def figure_labels(labels):
    """A report ``labels`` argument for a figure of target_figures(): its labels with the target's id."""
    return lambda wildcards: {k: target_subcategory(wildcards) if k == "target" else v for k, v in labels.items()}


# Cross-validation figure and caption sentence: R² per fold for regression; for classification the
# log-loss, the metric cross-validation chooses each target's model by (summary.tsv).
CV_FIGURE_METRIC = "log_loss" if CLASSIFICATION else "r2"
CV_FIGURE_NAMES = {"log_loss": "log-loss", "r2": "R²"}


def target_figures():
    """The figures drawn per target in this run (kind -> file, caption, report category and labels).

    One rule (plot_target) draws them all; which ones depend on the models and the task.
    """
    figures = {
        "observed": {"file": "observed_vs_predicted.png", "caption": "observed_vs_predicted.rst",
                     "category": "5. Model comparison",
                     "labels": {"target": "{target}", "model": "all", "figure": "observed vs predicted (test split)"}},
    }
    if "ols" in MODELS:
        figures["coefficients"] = {
            "file": "coefficients.png", "caption": "coefficients.rst", "category": "3. Hypothesis evaluation",
            "labels": {"target": "{target}", "model": "ols",
                       "figure": "coefficients with %.4g%% CI" % (100 * (1 - config["ols"]["alpha"]))}}
        if not CLASSIFICATION:
            figures["diagnostics"] = {
                "file": "diagnostics.png", "caption": "diagnostics.rst", "category": "3. Hypothesis evaluation",
                "labels": {"target": "{target}", "model": "ols", "figure": "residuals, QQ, influence"}}
    if "mlp" in MODELS:
        # no "model" label: Snakemake's report turns a label with two values, each on half of a
        # subcategory's results, into a toggle, which fails when a combination is missing.
        figures["loss"] = {"file": "loss.png", "caption": "loss.rst", "category": "4. Prediction",
                           "labels": {"target": "{target}", "figure": "network loss per epoch"}}
    if IMPORTANCE:
        figures["importance"] = {
            "file": "importance.png", "caption": "importance.rst", "category": "3. Hypothesis evaluation",
            "labels": {"target": "{target}", "figure": "predictor importance and network interactions"}}
    return figures


def target_figure_inputs(wildcards):
    """The tables behind each figure of target_figures()."""
    t = wildcards.target
    figures = target_figures()
    # this target's rows of results/compare/*.tsv, made by compare_target: another target does not redraw them
    inputs = {"predictions": f"results/compare/targets/{t}/predictions.tsv",
              "metrics": f"results/compare/targets/{t}/metrics.tsv"}
    if "coefficients" in figures:
        inputs["coefficients"] = f"results/ols/{t}/coefficients.tsv"
    if "diagnostics" in figures:
        inputs.update(ols_predictions=f"results/ols/{t}/predictions.tsv", influence=f"results/ols/{t}/influence.tsv",
                      diagnostics=f"results/ols/{t}/diagnostics.tsv")
    if "loss" in figures:
        inputs.update(history=f"results/mlp/{t}/history.tsv", model_json=f"results/mlp/{t}/model.json")
    if "importance" in figures:
        inputs.update({f"importance_{k}": v for k, v in importance_inputs(wildcards).items()})
    return inputs


def overview_figures():
    """The figures across targets drawn in this run (kind -> file, caption, report category and labels);
    one rule (plot_overview) draws them all."""
    figures = {
        "activations": {"file": "activation_functions.png", "caption": "activation_functions.rst",
                        "category": "4. Prediction", "subcategory": "architecture",
                        "labels": {"model": "mlp", "figure": "activation functions"}},
        "comparison": {"file": "model_comparison.png", "caption": "model_comparison.rst",
                       "category": "5. Model comparison",
                       "labels": {"figure": "test metrics of all targets and models"}},
    }
    if "ols" in MODELS:
        figures["pvalues"] = {"file": "pvalues.png", "caption": "pvalues.rst", "category": "3. Hypothesis evaluation",
                              "subcategory": "all targets", "labels": {"figure": "p-value histogram and QQ plot"}}
    if HAS_CV:
        figures["cv"] = {"file": "cv_metrics.png", "caption": "cv_figure.rst", "category": "5. Model comparison",
                         "labels": {"figure": f"cross-validation {CV_FIGURE_NAMES[CV_FIGURE_METRIC]} per model"}}
    return figures


def overview_figure_inputs(wildcards):
    """The tables behind each figure of overview_figures()."""
    figures = overview_figures()
    inputs = {"metrics": "results/compare/metrics.tsv"}
    if "pvalues" in figures:
        inputs["coefficients"] = "results/ols/all_coefficients.tsv"
    if "cv" in figures:
        inputs["cv_metrics"] = CV_METRICS
    return inputs


def figure_args(wildcards, input, output):
    """The command-line arguments of `gexpred plot target` and `plot overview`: every input and figure, quoted."""
    q = shlex.quote
    args = [f"--out-{kind} {q(path)}" for kind, path in output.items()]
    for name, path in input.items():
        if name == "importance_interactions":
            args.append(f"--interactions {q(path)}")
        elif name.startswith("importance_"):
            model = name.removeprefix("importance_")
            args.append(f"--importance {q(f'{model}={path}')}")
        else:
            args.append(f"--{name.replace('_', '-')} {q(path)}")
    return " ".join(args)


def report_summary_input():
    inputs = {
        "data": "results/data/collected.h5ad",
        "dropped": "results/data/dropped.tsv",
        "splits": "results/data/splits.tsv",
        "targets": "results/data/targets.tsv",
        "metrics": "results/compare/metrics.tsv",
        "predictors": "results/data/predictors.tsv",
    }
    if "ols" in MODELS:
        inputs["fits"] = "results/ols/all_fits.tsv"
        inputs["coefficients"] = "results/ols/all_coefficients.tsv"
    if HAS_CV:
        inputs["cv_metrics"] = CV_METRICS
    if HAS_CV_SUMMARY:
        inputs["summary"] = CV_SUMMARY
    if IMPORTANCE and not GENOME:
        inputs["importance"] = [f"results/{m}/{t}/importance.tsv" for t in TARGETS for m in MODELS]
        if "mlp" in MODELS:
            inputs["interactions"] = [f"results/mlp/{t}/interactions.tsv" for t in TARGETS]
    if RECOVERY_RUN:
        inputs["recovery"] = "results/recovery/regulator_recovery.tsv"
        inputs["edges"] = "results/recovery/edges.tsv"
    return inputs


def report_outputs():
    """What the report adds to the default target."""
    out = ["results/plots/data/samples.png", "results/plots/data/normalization.png"]
    if GENOME:
        return out
    out += ["results/plots/model_comparison.png", REPORT_FACTS, "results/compare/model_comparison.html"]
    if "ols" in MODELS:
        out.append("results/plots/pvalues.png")
    if HAS_CV:
        out.append("results/plots/cv_metrics.png")
    return out
