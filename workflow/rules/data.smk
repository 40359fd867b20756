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
        mem_mb=whole_matrix_mem_mb(3),
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
        report(
            "results/data/labels.tsv",
            caption="../report/labels.rst",
            category="1. Data",
            subcategory="all targets",
            labels={"table": "class labels"},
        ),
    log:
        "results/logs/labels.log",
    benchmark:
        "results/benchmarks/labels.tsv"
    params:
        targets=lambda wc: " ".join(f"--target {shlex.quote(t)}" for t in TARGETS.values()),
        binarize=json.dumps(config["binarize"], sort_keys=True),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3, 2000),
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred labels --data {input:q} {params.targets} --binarize {params.binarize:q} --out {output:q}"
        " --log {log:q}"


rule split:
    input:
        data="results/data/collected.h5ad",
        labels=labels_input(),
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
        labels=labels_input(),
    output:
        "results/data/folds.tsv",
    log:
        "results/logs/folds.log",
    benchmark:
        "results/benchmarks/folds.tsv"
    params:
        targets=lambda wc: " ".join(f"--target {shlex.quote(t)}" for t in TARGETS.values()),
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
        "gexpred folds --data {input.data:q} --splits {input.splits:q} {params.targets} {params.labels}"
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
        folds="results/data/folds.tsv",
        labels=labels_input(),
    output:
        predictors=report(
            "results/data/predictors.tsv",
            caption="../report/predictors.rst",
            category="2. Preprocessing",
            subcategory="all targets",
            labels={"table": "predictors per target"},
        ),
        # chosen again on each fold's training part: cross-validation judges the choice too
        fold_predictors="results/data/fold_predictors.tsv",
    log:
        "results/logs/select_predictors.log",
    benchmark:
        "results/benchmarks/select_predictors.tsv"
    params:
        targets=lambda wc: " ".join(f"--target {shlex.quote(t)}" for t in TARGETS.values()),
        spec=predictor_spec(),
        required=" ".join(f"--required {shlex.quote(g)}" for g in required_genes()),
        labels=lambda wc, input: labels_arg(input),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(3),
        runtime=whole_matrix_runtime(30),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred select --data {input.data:q} --splits {input.splits:q} {params.targets}"
        " --spec {params.spec:q} {params.required} {params.labels} --folds {input.folds:q}"
        " --out {output.predictors:q} --out-folds {output.fold_predictors:q} --log {log:q}"


rule target_table:
    output:
        "results/data/targets.tsv",
    log:
        "results/logs/target_table.log",
    benchmark:
        "results/benchmarks/target_table.tsv"
    params:
        targets=lambda wc: " ".join(f"--target {shlex.quote(t)}" for t in TARGETS.values()),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred targets {params.targets} --out {output:q} --log {log:q}"
