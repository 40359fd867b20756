# The report: figures, the sortable model-comparison table and the numbers the captions state.
# Categories follow the modelling lifecycle: 1. Data, 2. Preprocessing, 3. Hypothesis evaluation,
# 4. Prediction, 5. Model comparison, 6. Deploy & monitoring; subcategories per target; labels
# (target, model, figure/table) let a reviewer filter.

include: "report_helpers.smk"


rule plot_target:
    # One job draws every figure of a target (which ones: target_figures() in report_helpers.smk):
    # a job's interpreter and library start-up cost more than drawing one figure.
    input:
        unpack(target_figure_inputs),
    output:
        **{
            kind: report(
                f"results/plots/{{target}}/{figure['file']}",
                caption=f"../report/{figure['caption']}",
                category=figure["category"],
                subcategory=target_subcategory,
                labels=figure_labels(figure["labels"]),
            )
            for kind, figure in target_figures().items()
        },
    log:
        "results/logs/plots/{target}/figures.log",
    benchmark:
        "results/benchmarks/plots/{target}/figures.tsv"
    params:
        target=target_name,
        models=" ".join(MODELS),
        args=figure_args,
        alpha=config["ols"]["alpha"],
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot target --target {params.target:q} --models {params.models} {params.args} "
        "--alpha {params.alpha} --log {log:q}"


rule plot_samples:
    input:
        data="results/data/collected.h5ad",
        normalized="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
    output:
        report(
            "results/plots/data/samples.png",
            caption="../report/samples.rst",
            category="1. Data",
            labels={"figure": "samples: PCA and correlation"},
        ),
    log:
        "results/logs/plots/samples.log",
    benchmark:
        "results/benchmarks/plots/samples.tsv"
    params:
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(2),
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot samples --data {input.data:q} --normalized {input.normalized:q}"
        " --splits {input.splits:q} --out {output:q} --log {log:q}"


rule plot_normalization:
    input:
        data="results/data/collected.h5ad",
        normalized="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
    output:
        report(
            "results/plots/data/normalization.png",
            caption="../report/normalization.rst",
            category="2. Preprocessing",
            labels={"figure": "expression before and after normalization"},
        ),
    log:
        "results/logs/plots/normalization.log",
    benchmark:
        "results/benchmarks/plots/normalization.tsv"
    params:
        method=" + ".join(NORMALIZATION_STEPS),
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3),
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot normalization --data {input.data:q} --normalized {input.normalized:q}"
        " --splits {input.splits:q} --method {params.method:q} --out {output:q} --log {log:q}"


rule plot_overview:
    # One job draws the figures across targets (which ones: overview_figures() in report_helpers.smk).
    input:
        unpack(overview_figure_inputs),
    output:
        **{
            kind: report(
                f"results/plots/{figure['file']}",
                caption=f"../report/{figure['caption']}",
                category=figure["category"],
                **({"subcategory": figure["subcategory"]} if "subcategory" in figure else {}),
                labels=figure["labels"],
            )
            for kind, figure in overview_figures().items()
        },
    log:
        "results/logs/plots/overview.log",
    benchmark:
        "results/benchmarks/plots/overview.tsv"
    params:
        args=figure_args,
        fdr=config["ols"]["fdr"],
        cv_metric=CV_FIGURE_METRIC,
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot overview {params.args} --fdr {params.fdr} --metric {params.cv_metric} --log {log:q}"


rule report_summary:
    input:
        **report_summary_input(),
    output:
        facts=REPORT_FACTS,
        table=report(
            "results/compare/model_comparison.html",
            caption="../report/model_table.rst",
            category="5. Model comparison",
            labels={"table": "model comparison (sortable)"},
        ),
    log:
        "results/logs/report_summary.log",
    benchmark:
        "results/benchmarks/report_summary.tsv"
    params:
        optional=lambda wc, input: " ".join(
            f"--{key.replace('_', '-')} {shlex.quote(input[key])}"
            for key in ("fits", "coefficients", "cv_metrics", "summary", "recovery", "edges")
            if key in input.keys()
        )
        + (f" --ranking {shlex.quote(RECOVERY['ranking'])}" if "edges" in input.keys() else "")
        + "".join(
            f" --{key} " + " ".join(shlex.quote(p) for p in input[key])
            for key in ("importance", "interactions")
            if key in input.keys()
        ),
        test_fraction=config["split"]["test_fraction"],
        seed=config["split"]["seed"],
        fdr=config["ols"]["fdr"],
        min_strength=config["importance"]["min_strength"],
        covariates=lambda wc: covariate_args(),
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred report-summary --data {input.data:q} --dropped {input.dropped:q} --splits {input.splits:q}"
        " --targets {input.targets:q} --metrics {input.metrics:q} --predictors {input.predictors:q}"
        " {params.optional} --test-fraction {params.test_fraction} --seed {params.seed} --fdr {params.fdr}"
        " --min-strength {params.min_strength}"
        " {params.covariates} --out-facts {output.facts:q} --out-table {output.table:q} --log {log:q}"
