rule mlp:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        folds="results/data/folds/{target}.tsv",
        predictors="results/data/predictors/{target}.tsv",
        fold_predictors="results/data/fold_predictors/{target}.tsv",
        normalization="results/data/normalization.json",
        labels=target_labels_file,
    output:
        model="results/mlp/{target}/model.pt",
        meta="results/mlp/{target}/model.json",
        history="results/mlp/{target}/history.tsv",
        predictions="results/mlp/{target}/predictions.tsv",
        cv_predictions="results/mlp/{target}/cv_predictions.tsv",
        search=report(
            "results/mlp/{target}/search.tsv",
            caption="../report/search.rst",
            category="4. Prediction",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="mlp", table="network search (CV)"),
        ),
        **importance_output("mlp"),
    log:
        "results/logs/mlp/{target}.log",
    benchmark:
        "results/benchmarks/mlp/{target}.tsv"
    params:
        target=target_name,
        settings=mlp_settings(),
        search=search_settings(),
        covariates=lambda wc: covariate_args(),
        labels=lambda wc, input: labels_arg(input),
        out_dir=subpath(output.model, parent=True),
        importance=importance_args("mlp"),
        # the numbers and names the report's captions show (report_helpers.smk, included later)
        facts=lambda wc: caption_facts(wc),
    threads: 1
    resources:
        mem_mb=mlp_mem_mb,
        runtime=mlp_runtime,
        gpu=mlp_gpus,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred mlp --data {input.data:q} --splits {input.splits:q} --predictors {input.predictors:q}"
        " --target {params.target:q} --normalization-ref {input.normalization:q} {params.covariates}"
        " {params.labels} --folds {input.folds:q} --fold-predictors {input.fold_predictors:q} --settings {params.settings:q} --search {params.search:q}"
        " --threads {threads} {params.importance} --out-dir {params.out_dir:q} --log {log:q}"
