# The report: figures, the sortable model-comparison table and the numbers the captions state.
# Categories follow the modelling lifecycle: 1. Data, 2. Preprocessing, 3. Hypothesis evaluation,
# 4. Prediction, 5. Model comparison, 6. Deploy & monitoring; subcategories per target; labels
# (target, model, figure/table) let a reviewer filter.

include: "report_helpers.smk"


rule plot_observed:
    input:
        predictions="results/compare/predictions.tsv",
        metrics="results/compare/metrics.tsv",
    output:
        report(
            "results/plots/{target}/observed_vs_predicted.png",
            caption="../report/observed_vs_predicted.rst",
            category="5. Model comparison",
            subcategory="{target}",
            labels={"target": "{target}", "model": "all", "figure": "observed vs predicted (test split)"},
        ),
    log:
        "results/logs/plots/{target}/observed.log",
    benchmark:
        "results/benchmarks/plots/{target}/observed.tsv"
    params:
        target=target_name,
        models=" ".join(MODELS),
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot observed --target {params.target:q} --models {params.models}"
        " --predictions {input.predictions:q} --metrics {input.metrics:q} --out {output:q} --log {log:q}"


rule plot_coefficients:
    input:
        "results/ols/{target}/coefficients.tsv",
    output:
        report(
            "results/plots/{target}/coefficients.png",
            caption="../report/coefficients.rst",
            category="3. Hypothesis evaluation",
            subcategory="{target}",
            labels={"target": "{target}", "model": "ols", "figure": "coefficients with 95% CI"},
        ),
    log:
        "results/logs/plots/{target}/coefficients.log",
    benchmark:
        "results/benchmarks/plots/{target}/coefficients.tsv"
    params:
        target=target_name,
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot coefficients --target {params.target:q} --coefficients {input:q}"
        " --out {output:q} --log {log:q}"


rule plot_diagnostics:
    input:
        predictions="results/ols/{target}/predictions.tsv",
        influence="results/ols/{target}/influence.tsv",
        diagnostics="results/ols/{target}/diagnostics.tsv",
    output:
        report(
            "results/plots/{target}/diagnostics.png",
            caption="../report/diagnostics.rst",
            category="3. Hypothesis evaluation",
            subcategory="{target}",
            labels={"target": "{target}", "model": "ols", "figure": "residuals, QQ, influence"},
        ),
    log:
        "results/logs/plots/{target}/diagnostics.log",
    benchmark:
        "results/benchmarks/plots/{target}/diagnostics.tsv"
    params:
        target=target_name,
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot diagnostics --target {params.target:q} --predictions {input.predictions:q}"
        " --influence {input.influence:q} --diagnostics {input.diagnostics:q} --out {output:q} --log {log:q}"


rule plot_loss:
    input:
        history="results/mlp/{target}/history.tsv",
        meta="results/mlp/{target}/model.json",
    output:
        report(
            "results/plots/{target}/loss.png",
            caption="../report/loss.rst",
            category="4. Prediction",
            subcategory="{target}",
            # no "model" label: Snakemake's report turns a label with two values, each on half of a
            # subcategory's results, into a toggle, which fails when a combination is missing.
            labels={"target": "{target}", "figure": "network loss per epoch"},
        ),
    log:
        "results/logs/plots/{target}/loss.log",
    benchmark:
        "results/benchmarks/plots/{target}/loss.tsv"
    params:
        target=target_name,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot loss --target {params.target:q} --history {input.history:q}"
        " --model-json {input.meta:q} --out {output:q} --log {log:q}"


rule plot_importance:
    input:
        unpack(importance_inputs),
    output:
        report(
            "results/plots/{target}/importance.png",
            caption="../report/importance.rst",
            category="3. Hypothesis evaluation",
            subcategory="{target}",
            labels={"target": "{target}", "figure": "predictor importance and network interactions"},
        ),
    log:
        "results/logs/plots/{target}/importance.log",
    benchmark:
        "results/benchmarks/plots/{target}/importance.tsv"
    params:
        target=target_name,
        tables=lambda wc, input: " ".join(
            f"--importance {m}={shlex.quote(input[m])}" for m in MODELS if m in input.keys()
        ),
        interactions=lambda wc, input: (
            f"--interactions {shlex.quote(input['interactions'])}" if "interactions" in input.keys() else ""
        ),
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot importance --target {params.target:q} {params.tables} {params.interactions}"
        " --out {output:q} --log {log:q}"


rule plot_activations:
    output:
        report(
            "results/plots/activation_functions.png",
            caption="../report/activation_functions.rst",
            category="4. Prediction",
            subcategory="architecture",
            labels={"model": "mlp", "figure": "activation functions"},
        ),
    log:
        "results/logs/plots/activation_functions.log",
    benchmark:
        "results/benchmarks/plots/activation_functions.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot activations --out {output:q} --log {log:q}"


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


rule plot_pvalues:
    input:
        "results/ols/all_coefficients.tsv",
    output:
        report(
            "results/plots/pvalues.png",
            caption="../report/pvalues.rst",
            category="3. Hypothesis evaluation",
            subcategory="all targets",
            labels={"figure": "p-value histogram and QQ plot"},
        ),
    log:
        "results/logs/plots/pvalues.log",
    benchmark:
        "results/benchmarks/plots/pvalues.tsv"
    params:
        fdr=config["ols"]["fdr"],
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot pvalues --coefficients {input:q} --fdr {params.fdr} --out {output:q} --log {log:q}"


rule plot_comparison:
    input:
        "results/compare/metrics.tsv",
    output:
        report(
            "results/plots/model_comparison.png",
            caption="../report/model_comparison.rst",
            category="5. Model comparison",
            labels={"figure": "test metrics of all targets and models"},
        ),
    log:
        "results/logs/plots/model_comparison.log",
    benchmark:
        "results/benchmarks/plots/model_comparison.tsv"
    params:
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot comparison --metrics {input:q} --out {output:q} --log {log:q}"


rule plot_cv:
    input:
        CV_METRICS,
    output:
        report(
            "results/plots/cv_metrics.png",
            caption="../report/cv_figure.rst",
            category="5. Model comparison",
            labels={"figure": "cross-validation R² per model"},
        ),
    log:
        "results/logs/plots/cv_metrics.log",
    benchmark:
        "results/benchmarks/plots/cv_metrics.tsv"
    params:
        facts=caption_facts,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot cv --cv-metrics {input:q} --metric r2 --out {output:q} --log {log:q}"


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
            for key in ("fits", "coefficients", "cv_metrics", "summary", "recovery")
            if key in input.keys()
        )
        + "".join(
            f" --{key} " + " ".join(shlex.quote(p) for p in input[key])
            for key in ("importance", "interactions")
            if key in input.keys()
        ),
        test_fraction=config["split"]["test_fraction"],
        seed=config["split"]["seed"],
        fdr=config["ols"]["fdr"],
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
        " --out-facts {output.facts:q} --out-table {output.table:q} --log {log:q}"
