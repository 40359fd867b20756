rule compare:
    input:
        predictions=model_predictions(),
        cv_predictions=model_cv_predictions(),
    output:
        predictions="results/compare/predictions.tsv",
        metrics=report(
            "results/compare/metrics.tsv",
            caption="../report/metrics.rst",
            category="5. Model comparison",
            subcategory="all targets",
            labels={"table": "metrics (all targets, models, splits)"},
        ),
        cv_metrics=report(
            "results/compare/cv_metrics.tsv",
            caption="../report/cv_metrics.rst",
            category="5. Model comparison",
            subcategory="all targets",
            labels={"table": "cross-validation metrics per fold"},
        ),
        summary=report(
            "results/compare/summary.tsv",
            caption="../report/summary.rst",
            category="5. Model comparison",
            subcategory="all targets",
            labels={"table": "verdict per target: network or regression"},
        ),
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    params:
        models=" ".join(MODELS),
        alpha=config["ols"]["alpha"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred compare --models {params.models} --predictions {input.predictions:q}"
        " --cv-predictions {input.cv_predictions:q} --alpha {params.alpha}"
        " --out-predictions {output.predictions:q} --out-metrics {output.metrics:q}"
        " --out-cv-metrics {output.cv_metrics:q} --out-summary {output.summary:q} --log {log:q}"


# The same tables for one target, from its own models only: what the target's bundle and figures read, so that a
# target added to (or removed from) a finished run does not make every other target's bundle, figures and
# deploy jobs again (they would, reading the tables across targets above, which change with any target).
rule compare_target:
    input:
        predictions=lambda wc: expand("results/{model}/{target}/predictions.tsv", model=MODELS, target=wc.target),
        cv_predictions=lambda wc: expand("results/{model}/{target}/cv_predictions.tsv", model=MODELS,
                                         target=wc.target),
    output:
        predictions="results/compare/targets/{target}/predictions.tsv",
        metrics="results/compare/targets/{target}/metrics.tsv",
        cv_metrics="results/compare/targets/{target}/cv_metrics.tsv",
        summary="results/compare/targets/{target}/summary.tsv",
    log:
        "results/logs/compare/{target}.log",
    benchmark:
        "results/benchmarks/compare/{target}.tsv"
    params:
        models=" ".join(MODELS),
        alpha=config["ols"]["alpha"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred compare --models {params.models} --predictions {input.predictions:q}"
        " --cv-predictions {input.cv_predictions:q} --alpha {params.alpha}"
        " --out-predictions {output.predictions:q} --out-metrics {output.metrics:q}"
        " --out-cv-metrics {output.cv_metrics:q} --out-summary {output.summary:q} --log {log:q}"
