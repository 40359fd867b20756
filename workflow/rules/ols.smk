rule ols:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        predictors="results/data/predictors.tsv",
        normalization="results/data/normalization.json",
    output:
        coefficients=report(
            "results/ols/{target}/coefficients.tsv",
            caption="../report/coefficients_table.rst",
            category="3. Hypothesis evaluation",
            subcategory="{target}",
            labels={"target": "{target}", "model": "ols", "table": "coefficients"},
        ),
        summary="results/ols/{target}/summary.txt",
        model="results/ols/{target}/model.json",
        predictions="results/ols/{target}/predictions.tsv",
    log:
        "results/logs/ols/{target}.log",
    benchmark:
        "results/benchmarks/ols/{target}.tsv"
    params:
        target=target_name,
        out_dir=subpath(output.coefficients, parent=True),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred ols --data {input.data:q} --splits {input.splits:q} --predictors {input.predictors:q}"
        " --target {params.target:q} --normalization-ref {input.normalization:q}"
        " --out-dir {params.out_dir:q} --log {log:q}"
