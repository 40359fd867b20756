# gathering per-target tables is a few milliseconds: on a cluster it runs where Snakemake runs
localrules:
    gather_predictors,
    gather_labels,


rule collect:
    input:
        matrices=config["matrices"],
        sample_sheet=config["sample_sheet"] or [],
    output:
        h5ad="results/data/collected.h5ad",
        dropped=report(
            "results/data/dropped.tsv",
            caption="../report/dropped.rst",
            category="1. Data",
            subcategory="all targets",
            labels={"table": "genes and samples dropped"},
        ),
    log:
        "results/logs/collect.log",
    benchmark:
        "results/benchmarks/collect.tsv"
    params:
        matrices=lambda wc, input: " ".join(f"--matrix {shlex.quote(p)}" for p in input.matrices),
        sheet=lambda wc, input: (
            f"--sample-sheet {shlex.quote(input.sample_sheet)}" if input.sample_sheet else ""
        ),
        missing=config["missing"],
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(6),  # parsing text: 6-8 x the file (input_mb)
        runtime=whole_matrix_runtime(30),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred collect {params.matrices} {params.sheet} --out {output.h5ad:q}"
        " --dropped {output.dropped:q} --missing {params.missing} --log {log:q}"


rule labels:
    input:
        "results/data/collected.h5ad",
    output:
        "results/data/labels/{target}.tsv",
    log:
        "results/logs/labels/{target}.log",
    benchmark:
        "results/benchmarks/labels/{target}.tsv"
    params:
        target=target_name,
        # this target's threshold only: another target's does not make this one's labels again
        binarize=lambda wc: cli_json({t: v for t, v in config["binarize"].items() if t == TARGETS[wc.target]}),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3, 2000),
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred labels --data {input:q} --target {params.target:q} --binarize {params.binarize:q} --out {output:q}"
        " --log {log:q}"


rule split:
    input:
        data="results/data/collected.h5ad",
        labels=split_labels(),
    output:
        "results/data/splits.tsv",
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    params:
        test_fraction=config["split"]["test_fraction"],
        seed=config["split"]["seed"],
        labels=lambda wc, input: labels_arg(input),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred split --data {input.data:q} {params.labels} --test-fraction {params.test_fraction}"
        " --seed {params.seed} --out {output:q} --log {log:q}"


rule folds:
    input:
        data="results/data/collected.h5ad",
        splits="results/data/splits.tsv",
        labels=target_labels_file,
    output:
        "results/data/folds/{target}.tsv",
    log:
        "results/logs/folds/{target}.log",
    benchmark:
        "results/benchmarks/folds/{target}.tsv"
    params:
        target=target_name,
        k=config["split"]["folds"],
        seed=config["split"]["seed"],
        labels=lambda wc, input: labels_arg(input),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3, 2000),
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred folds --data {input.data:q} --splits {input.splits:q} --target {params.target:q} {params.labels}"
        " --k {params.k} --seed {params.seed} --out {output:q} --log {log:q}"


rule normalize:
    input:
        data="results/data/collected.h5ad",
        splits="results/data/splits.tsv",
    output:
        h5ad="results/data/normalized.h5ad",
        params="results/data/normalization.json",
    log:
        "results/logs/normalize.log",
    benchmark:
        "results/benchmarks/normalize.tsv"
    params:
        methods=" ".join(f"--method {m}" for m in NORMALIZATION_STEPS),
        missing=config["missing"],
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(5),
        runtime=whole_matrix_runtime(30),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred normalize --data {input.data:q} --splits {input.splits:q} {params.methods}"
        " --missing {params.missing} --out {output.h5ad:q} --params {output.params:q} --log {log:q}"


rule select_predictors:
    input:
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        folds="results/data/folds/{target}.tsv",
        labels=target_labels_file,
        candidates=predictor_file(),
    output:
        predictors="results/data/predictors/{target}.tsv",
        # chosen again on each fold's training part: cross-validation judges the choice too
        fold_predictors="results/data/fold_predictors/{target}.tsv",
    log:
        "results/logs/select_predictors/{target}.log",
    benchmark:
        "results/benchmarks/select_predictors/{target}.tsv"
    params:
        target=target_name,
        spec=lambda wc: predictor_spec(),
        required=lambda wc: " ".join(f"--required {shlex.quote(cli_text(g))}" for g in required_genes()),
        labels=lambda wc, input: labels_arg(input),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3),
        runtime=whole_matrix_runtime(30),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred select --data {input.data:q} --splits {input.splits:q} --target {params.target:q}"
        " --spec {params.spec:q} {params.required} {params.labels} --folds {input.folds:q}"
        " --out {output.predictors:q} --out-folds {output.fold_predictors:q} --log {log:q}"


# Each target's set-up steps (labels, folds, predictors) are jobs of their own, so that adding a target to a
# finished run makes only the new target's jobs; these tables gather them for the report and the steps across
# targets.
rule gather_predictors:
    input:
        predictors=expand("results/data/predictors/{target}.tsv", target=TARGETS),
        fold_predictors=expand("results/data/fold_predictors/{target}.tsv", target=TARGETS),
        folds=expand("results/data/folds/{target}.tsv", target=TARGETS),
    output:
        predictors=report(
            "results/data/predictors.tsv",
            caption="../report/predictors.rst",
            category="2. Preprocessing",
            subcategory="all targets",
            labels={"table": "predictors per target"},
        ),
        fold_predictors="results/data/fold_predictors.tsv",
        folds="results/data/folds.tsv",
    log:
        "results/logs/gather_predictors.log",
    benchmark:
        "results/benchmarks/gather_predictors.tsv"
    params:
        predictors=lambda wc, input: " ".join(f"--table {shlex.quote(p)}" for p in input.predictors),
        fold_predictors=lambda wc, input: " ".join(f"--table {shlex.quote(p)}" for p in input.fold_predictors),
        folds=lambda wc, input: " ".join(f"--table {shlex.quote(p)}" for p in input.folds),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "(gexpred gather {params.predictors} --out {output.predictors:q}"
        " && gexpred gather {params.fold_predictors} --out {output.fold_predictors:q}"
        " && gexpred gather {params.folds} --out {output.folds:q}) > {log:q} 2>&1"


rule gather_labels:
    input:
        expand("results/data/labels/{target}.tsv", target=TARGETS),
    output:
        report(
            "results/data/labels.tsv",
            caption="../report/labels.rst",
            category="1. Data",
            subcategory="all targets",
            labels={"table": "class labels"},
        ),
    log:
        "results/logs/gather_labels.log",
    benchmark:
        "results/benchmarks/gather_labels.tsv"
    params:
        tables=lambda wc, input: " ".join(f"--table {shlex.quote(p)}" for p in input),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred gather {params.tables} --how columns --out {output:q} --log {log:q}"


rule target_table:
    output:
        "results/data/targets.tsv",
    log:
        "results/logs/target_table.log",
    benchmark:
        "results/benchmarks/target_table.tsv"
    params:
        targets=lambda wc: " ".join(f"--target {shlex.quote(cli_text(t))}" for t in TARGETS.values()),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred targets {params.targets} --out {output:q} --log {log:q}"
