rule ols:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        predictors="results/data/predictors/{target}.tsv",
        fold_predictors="results/data/fold_predictors/{target}.tsv",
        normalization="results/data/normalization.json",
        folds="results/data/folds/{target}.tsv",
        labels=target_labels_file,
    output:
        coefficients=report(
            "results/ols/{target}/coefficients.tsv",
            caption="../report/coefficients_table.rst",
            category="3. Hypothesis evaluation",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="ols", table="coefficients"),
        ),
        fit=report(
            "results/ols/{target}/fit.tsv",
            caption="../report/fit.rst",
            category="3. Hypothesis evaluation",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="ols", table="model fit"),
        ),
        diagnostics=report(
            "results/ols/{target}/diagnostics.tsv",
            caption="../report/diagnostics_table.rst",
            category="3. Hypothesis evaluation",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="ols", table="assumption checks"),
        ),
        influence="results/ols/{target}/influence.tsv",
        nested=report(
            "results/ols/{target}/nested_tests.tsv",
            caption="../report/nested_tests.rst",
            category="3. Hypothesis evaluation",
            subcategory=lambda wc: target_subcategory(wc),
            labels=lambda wc: target_labels(wc, model="ols", table="nested F-tests"),
        ),
        summary="results/ols/{target}/summary.txt",
        model="results/ols/{target}/model.json",
        **importance_output("ols"),
        predictions="results/ols/{target}/predictions.tsv",
        cv_predictions="results/ols/{target}/cv_predictions.tsv",
    log:
        "results/logs/ols/{target}.log",
    benchmark:
        "results/benchmarks/ols/{target}.tsv"
    params:
        target=target_name,
        covariates=lambda wc: covariate_args(),
        interactions=lambda wc: cli_json(config["ols"]["interactions"]),
        gene_sets=lambda wc: cli_json(config["ols"]["gene_sets"]),
        alpha=config["ols"]["alpha"],
        labels=lambda wc, input: labels_arg(input),
        penalized="--penalized" if config["ols"]["penalized"] else "",
        stop="--stop-on-separation" if config["ols"]["stop_on_separation"] else "",
        cov_type=config["ols"]["cov_type"],
        importance=importance_args("ols"),
        out_dir=subpath(output.coefficients, parent=True),
        # the numbers and names the report's captions show (report_helpers.smk, included later)
        facts=lambda wc: caption_facts(wc),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3),
        runtime=whole_matrix_runtime(30),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred ols --data {input.data:q} --splits {input.splits:q} --predictors {input.predictors:q}"
        " --target {params.target:q} --normalization-ref {input.normalization:q} {params.covariates}"
        " --interactions {params.interactions:q} --gene-sets {params.gene_sets:q} --alpha {params.alpha}"
        " {params.labels} {params.penalized} {params.stop} --cov-type {params.cov_type} --folds {input.folds:q}"
        " --fold-predictors {input.fold_predictors:q} {params.importance}"
        " --out-dir {params.out_dir:q} --log {log:q}"


rule ols_summary:
    input:
        coefficients=expand("results/ols/{target}/coefficients.tsv", target=TARGETS),
        fits=expand("results/ols/{target}/fit.tsv", target=TARGETS),
        diagnostics=expand("results/ols/{target}/diagnostics.tsv", target=TARGETS),
        models=expand("results/ols/{target}/model.json", target=TARGETS),
        nested=expand("results/ols/{target}/nested_tests.tsv", target=TARGETS),
    output:
        coefficients=report(
            "results/ols/all_coefficients.tsv",
            caption="../report/all_coefficients.rst",
            category="3. Hypothesis evaluation",
            subcategory="all targets",
            labels={"table": "all coefficients with q-values"},
        ),
        fits=report(
            "results/ols/all_fits.tsv",
            caption="../report/all_fits.rst",
            category="3. Hypothesis evaluation",
            subcategory="all targets",
            labels={"table": "model fit and failed assumptions"},
        ),
        nested=(
            report(
                "results/ols/all_nested_tests.tsv",
                caption="../report/all_nested_tests.rst",
                category="3. Hypothesis evaluation",
                subcategory="all targets",
                labels={"table": "gene-set tests with q-values"},
            )
            if config["ols"]["gene_sets"]
            else "results/ols/all_nested_tests.tsv"
        ),
    log:
        "results/logs/ols_summary.log",
    benchmark:
        "results/benchmarks/ols_summary.tsv"
    params:
        dirs=lambda wc, input: " ".join(
            shlex.quote(str(Path(p).parent)) for p in input.models
        ),
        fdr=config["ols"]["fdr"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred ols-summary --dirs {params.dirs} --fdr {params.fdr}"
        " --out-coefficients {output.coefficients:q} --out-fits {output.fits:q}"
        " --out-nested {output.nested:q} --log {log:q}"


rule gold_standard:
    input:
        config["gold_standard"] or [],
    output:
        "results/data/gold_standard.tsv",
    log:
        "results/logs/gold_standard.log",
    benchmark:
        "results/benchmarks/gold_standard.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred gold-standard --input {input:q} --out {output:q} --log {log:q}"


rule regulator_recovery:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        predictors="results/data/predictors.tsv",
        gold_standard="results/data/gold_standard.tsv",
        candidates=predictor_file(),
    output:
        table=report(
            "results/recovery/regulator_recovery.tsv",
            caption="../report/regulator_recovery_table.rst",
            category="3. Hypothesis evaluation",
            subcategory="regulator recovery",
            labels={"table": "regulator recovery (AUROC, AUPR)"},
        ),
        figure=report(
            "results/plots/regulator_recovery.png",
            caption="../report/regulator_recovery.rst",
            category="3. Hypothesis evaluation",
            subcategory="regulator recovery",
            labels={"figure": "regulator recovery ROC and PR curves"},
        ),
        edges=report(
            "results/recovery/edges.tsv",
            caption="../report/regulator_edges.rst",
            category="3. Hypothesis evaluation",
            subcategory="regulator recovery",
            labels={"table": "inferred network (top pairs)"},
        ),
    log:
        "results/logs/regulator_recovery.log",
    benchmark:
        "results/benchmarks/regulator_recovery.tsv"
    params:
        spec=lambda wc: predictor_spec(),
        sources=" ".join(RECOVERY["sources"]),
        network=cli_json(RECOVERY["network"]),
        ranking=RECOVERY["ranking"],
        normalization=RECOVERY["normalization"],
        top_edges=RECOVERY["top_edges"],
        prior_folds=RECOVERY["prior_folds"],
        k=config["split"]["folds"],
        seed=config["split"]["seed"],
    threads: 2
    resources:
        mem_mb=whole_matrix_mem_mb(3, 3000),
        runtime=recovery_runtime,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred recovery --data {input.data:q} --splits {input.splits:q} --predictors {input.predictors:q}"
        " --gold-standard {input.gold_standard:q} --spec {params.spec:q} --sources {params.sources}"
        " --network {params.network:q} --ranking {params.ranking} --normalization {params.normalization}"
        " --top-edges {params.top_edges} --prior-folds {params.prior_folds} --k {params.k} --seed {params.seed} --threads {threads}"
        " --out {output.table:q} --out-figure {output.figure:q} --out-edges {output.edges:q} --log {log:q}"
