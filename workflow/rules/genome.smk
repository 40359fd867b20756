# Genome-wide mode (targets: all or {file: ...}): OLS for thousands of targets on one shared
# design, with one factorisation per chunk of targets (gexpred.batched).


checkpoint genome_plan:
    input:
        data="results/data/normalized.h5ad",
        candidates=predictor_file(),
        targets=targets_file(),
    output:
        plan="results/ols/genome/plan.tsv",
        design="results/ols/genome/design.json",
    log:
        "results/logs/genome_plan.log",
    benchmark:
        "results/benchmarks/genome_plan.tsv"
    params:
        spec=lambda wc: predictor_spec(),
        targets=lambda wc: cli_json(config["targets"]),
        chunk_size=config["ols"]["chunk_size"],
        covariates=lambda wc: covariate_args(),
        interactions=lambda wc: cli_json(config["ols"]["interactions"]),
        gene_sets=lambda wc: cli_json(config["ols"]["gene_sets"]),
        # the steps that keep a target's imputed values (fitted on one shared set of samples), named in the log
        keepers="".join(([" --networks"] if "mlp" in MODELS else [])
                        + ([" --recovery"] if config.get("gold_standard") else [])),
    threads: 1
    resources:
        mem_mb=genome_plan_mem_mb,
        runtime=30,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred genome-plan --data {input.data:q} --spec {params.spec:q} --targets {params.targets:q}"
        " --chunk-size {params.chunk_size} {params.covariates} --interactions {params.interactions:q}"
        " --gene-sets {params.gene_sets:q}{params.keepers}"
        " --out {output.plan:q} --out-design {output.design:q} --log {log:q}"


rule ols_chunk:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        plan="results/ols/genome/plan.tsv",
        design="results/ols/genome/design.json",
    output:
        coefficients="results/ols/genome/chunks/{chunk}.coefficients.parquet",
        fit="results/ols/genome/chunks/{chunk}.fit.tsv",
        metrics="results/ols/genome/chunks/{chunk}.metrics.tsv",
        nested="results/ols/genome/chunks/{chunk}.nested.tsv",
    log:
        "results/logs/ols_chunk/{chunk}.log",
    benchmark:
        "results/benchmarks/ols_chunk/{chunk}.tsv"
    wildcard_constraints:
        chunk=r"\d{5}",
    params:
        chunk=lambda wc: int(wc.chunk),
        alpha=config["ols"]["alpha"],
        cov_type=config["ols"]["cov_type"],
        out_dir=subpath(output.coefficients, parent=True),
    threads: 2
    resources:
        mem_mb=ols_chunk_mem_mb,
        runtime=ols_chunk_runtime,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred ols-chunk --data {input.data:q} --splits {input.splits:q} --plan {input.plan:q}"
        " --design {input.design:q} --chunk {params.chunk} --alpha {params.alpha} --cov-type {params.cov_type}"
        " --out-dir {params.out_dir:q} --log {log:q}"


rule ols_genome_merge:
    input:
        unpack(genome_chunk_files),
    output:
        coefficients="results/ols/genome/coefficients.parquet",
        significant=report(
            "results/ols/genome/significant.tsv",
            caption="../report/genome_coefficients.rst",
            category="3. Hypothesis evaluation",
            subcategory="genome-wide",
            labels={"table": "significant coefficients (q below the FDR)"},
        ),
        fits=report(
            "results/ols/genome/fits.tsv",
            caption="../report/genome_fits.rst",
            category="3. Hypothesis evaluation",
            subcategory="genome-wide",
            labels={"table": "fit per target"},
        ),
        metrics="results/ols/genome/metrics.tsv",
        nested=(
            report(
                "results/ols/genome/nested_tests.tsv",
                caption="../report/genome_nested.rst",
                category="3. Hypothesis evaluation",
                subcategory="genome-wide",
                labels={"table": "gene-set F-tests"},
            )
            if config["ols"]["gene_sets"]
            else "results/ols/genome/nested_tests.tsv"
        ),
        figure=report(
            "results/plots/genome_ols.png",
            caption="../report/genome_ols.rst",
            category="3. Hypothesis evaluation",
            subcategory="genome-wide",
            labels={"figure": "genome-wide OLS summary"},
        ),
    log:
        "results/logs/ols_genome_merge.log",
    benchmark:
        "results/benchmarks/ols_genome_merge.tsv"
    params:
        fdr=config["ols"]["fdr"],
        coefficients=input_paths("coefficients"),
        fits=input_paths("fit"),
        metrics=input_paths("metrics"),
        nested=input_paths("nested"),
    threads: 1
    resources:
        mem_mb=genome_merge_mem_mb,
        runtime=genome_merge_runtime,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred ols-merge --coefficients {params.coefficients} --fits {params.fits}"
        " --metrics {params.metrics} --nested {params.nested} --out-nested {output.nested:q}"
        " --fdr {params.fdr} --out-coefficients {output.coefficients:q}"
        " --out-significant {output.significant:q}"
        " --out-fits {output.fits:q} --out-metrics {output.metrics:q} --out-figure {output.figure:q} --log {log:q}"


rule mlp_chunk:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        plan="results/ols/genome/plan.tsv",
        design="results/ols/genome/design.json",
    output:
        metrics="results/mlp/genome/chunks/{chunk}.metrics.tsv",
        model="results/mlp/genome/chunks/{chunk}.model.pt",
        meta="results/mlp/genome/chunks/{chunk}.model.json",
        history="results/mlp/genome/chunks/{chunk}.history.tsv",
        search="results/mlp/genome/chunks/{chunk}.search.tsv",
    log:
        "results/logs/mlp_chunk/{chunk}.log",
    benchmark:
        "results/benchmarks/mlp_chunk/{chunk}.tsv"
    wildcard_constraints:
        chunk=r"\d{5}",
    params:
        chunk=lambda wc: int(wc.chunk),
        settings=mlp_settings(genome=True),
        search=search_settings(),
        mode=config["mlp"]["genome_mode"],
        out_dir=subpath(output.metrics, parent=True),
    threads: 2
    resources:
        mem_mb=mlp_chunk_mem_mb,
        runtime=mlp_chunk_runtime,
        gpu=mlp_gpus,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred mlp-chunk --data {input.data:q} --splits {input.splits:q} --plan {input.plan:q}"
        " --design {input.design:q} --chunk {params.chunk} --settings {params.settings:q}"
        " --search {params.search:q} --mode {params.mode}"
        " --threads {threads} --out-dir {params.out_dir:q} --log {log:q}"


rule genome_compare:
    input:
        unpack(genome_compare_inputs),
    output:
        metrics="results/compare/genome_metrics.tsv",
        summary=report(
            "results/compare/genome_summary.tsv",
            caption="../report/genome_summary.rst",
            category="5. Model comparison",
            subcategory="genome-wide",
            labels={"table": "models across all targets"},
        ),
        targets=report(
            "results/compare/genome_targets.tsv",
            caption="../report/genome_targets.rst",
            category="5. Model comparison",
            subcategory="genome-wide",
            labels={"table": "test R² per target and model"},
        ),
        # the networks' search: in the report only where networks are trained (without them the table is empty)
        search=(
            report(
                "results/compare/genome_search.tsv",
                caption="../report/genome_search.rst",
                category="5. Model comparison",
                subcategory="genome-wide",
                labels={"table": "network search per chunk"},
            )
            if "mlp" in MODELS
            else "results/compare/genome_search.tsv"
        ),
        figure=report(
            "results/plots/genome_comparison.png",
            caption="../report/genome_comparison.rst",
            category="5. Model comparison",
            subcategory="genome-wide",
            labels={"figure": "models across all targets"},
        ),
    log:
        "results/logs/genome_compare.log",
    benchmark:
        "results/benchmarks/genome_compare.tsv"
    params:
        metrics=input_paths("metrics"),
        search=input_paths("search"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred genome-compare --metrics {params.metrics} --search {params.search}"
        " --out-metrics {output.metrics:q} --out-search {output.search:q}"
        " --out-summary {output.summary:q} --out-targets {output.targets:q} --out-figure {output.figure:q}"
        " --log {log:q}"


rule genome_recovery:
    input:
        unpack(genome_recovery_inputs),
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        plan="results/ols/genome/plan.tsv",
        design="results/ols/genome/design.json",
        gold_standard="results/data/gold_standard.tsv",
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
        "results/logs/genome_recovery.log",
    benchmark:
        "results/benchmarks/genome_recovery.tsv"
    params:
        models=input_paths("models"),
        coefficients=input_paths("coefficients"),
        ranking=RECOVERY["ranking"],
        normalization=RECOVERY["normalization"],
        top_edges=RECOVERY["top_edges"],
        prior_folds=RECOVERY["prior_folds"],
        k=config["split"]["folds"],
        seed=config["split"]["seed"],
    threads: 2
    resources:
        mem_mb=whole_matrix_mem_mb(3, 3000),
        runtime=whole_matrix_runtime(60),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred genome-recovery --data {input.data:q} --splits {input.splits:q} --design {input.design:q}"
        " --plan {input.plan:q} --gold-standard {input.gold_standard:q} --coefficients {params.coefficients}"
        " --mlp-models {params.models} --ranking {params.ranking} --normalization {params.normalization}"
        " --top-edges {params.top_edges} --prior-folds {params.prior_folds} --k {params.k} --seed {params.seed} --threads {threads}"
        " --out {output.table:q} --out-figure {output.figure:q} --out-edges {output.edges:q} --log {log:q}"


# regulator recovery: from the batched fits in genome-wide mode, from its own fits otherwise
if GENOME:

    ruleorder: genome_recovery > regulator_recovery

else:

    ruleorder: regulator_recovery > genome_recovery
