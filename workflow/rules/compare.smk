rule compare:
    input:
        model_predictions(),
    output:
        predictions="results/compare/predictions.tsv",
        metrics=report(
            "results/compare/metrics.tsv",
            caption="../report/metrics.rst",
            category="5. Model comparison",
            labels={"table": "metrics (all targets, models, splits)"},
        ),
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    params:
        models=" ".join(MODELS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred compare --models {params.models} --predictions {input:q}"
        " --out-predictions {output.predictions:q} --out-metrics {output.metrics:q} --log {log:q}"
