rule mlp:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        predictors="results/data/predictors.tsv",
        normalization="results/data/normalization.json",
    output:
        model="results/mlp/{target}/model.pt",
        meta="results/mlp/{target}/model.json",
        history="results/mlp/{target}/history.tsv",
        predictions="results/mlp/{target}/predictions.tsv",
    log:
        "results/logs/mlp/{target}.log",
    benchmark:
        "results/benchmarks/mlp/{target}.tsv"
    params:
        target=target_name,
        settings=mlp_settings(),
        covariates=covariate_args(),
        out_dir=subpath(output.model, parent=True),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=mlp_gpus,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred mlp --data {input.data:q} --splits {input.splits:q} --predictors {input.predictors:q}"
        " --target {params.target:q} --normalization-ref {input.normalization:q} {params.covariates}"
        " --settings {params.settings:q} --threads {threads} --out-dir {params.out_dir:q} --log {log:q}"
