rule penalized:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        folds="results/data/folds/{target}.tsv",
        predictors="results/data/predictors/{target}.tsv",
        fold_predictors="results/data/fold_predictors/{target}.tsv",
        normalization="results/data/normalization.json",
    output:
        coefficients=report(
            "results/penalized/{target}/coefficients.tsv",
            caption="../report/penalized_coefficients.rst",
            category="4. Prediction",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="penalized", table="coefficients"),
        ),
        search=report(
            "results/penalized/{target}/search.tsv",
            caption="../report/penalized_search.rst",
            category="4. Prediction",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="penalized", table="penalty search (CV)"),
        ),
        meta="results/penalized/{target}/model.json",
        predictions="results/penalized/{target}/predictions.tsv",
        cv_predictions="results/penalized/{target}/cv_predictions.tsv",
        **importance_output("penalized"),
    log:
        "results/logs/penalized/{target}.log",
    benchmark:
        "results/benchmarks/penalized/{target}.tsv"
    params:
        target=target_name,
        covariates=lambda wc: covariate_args(),
        methods=" ".join(config["search"]["penalized"]["methods"]),
        n_alphas=config["search"]["penalized"]["n_alphas"],
        importance=importance_args("penalized"),
        out_dir=subpath(output.coefficients, parent=True),
        # the numbers and names the report's captions show (report_helpers.smk, included later)
        facts=lambda wc: caption_facts(wc),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3, 2000),
        runtime=whole_matrix_runtime(30),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred penalized --data {input.data:q} --splits {input.splits:q} --predictors {input.predictors:q}"
        " --target {params.target:q} --normalization-ref {input.normalization:q} {params.covariates}"
        " --folds {input.folds:q} --fold-predictors {input.fold_predictors:q} --method {params.methods} --n-alphas {params.n_alphas} {params.importance}"
        " --out-dir {params.out_dir:q} --log {log:q}"
