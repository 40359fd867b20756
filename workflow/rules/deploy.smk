rule bundle:
    input:
        model_dir="results/{model}/{target}/predictions.tsv",
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        normalization="results/data/normalization.json",
        metrics="results/compare/metrics.tsv",
        cv_metrics="results/compare/cv_metrics.tsv",
        labels=labels_input(),
    output:
        directory("results/models/{target}/{model}"),
    log:
        "results/logs/bundle/{target}/{model}.log",
    benchmark:
        "results/benchmarks/bundle/{target}/{model}.tsv"
    wildcard_constraints:
        model="ols|penalized|mlp",
    params:
        target=target_name,
        model_dir=lambda wc, input: str(Path(input.model_dir).parent),
        labels=lambda wc, input: labels_arg(input),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred bundle --target {params.target:q} --model {wildcards.model} --model-dir {params.model_dir:q}"
        " --data {input.data:q} --splits {input.splits:q} --normalization {input.normalization:q}"
        " {params.labels} --metrics {input.metrics:q} --cv-metrics {input.cv_metrics:q} --out {output:q}"
        " --log {log:q}"


rule best_model:
    input:
        summary="results/compare/summary.tsv",
        bundles=lambda wc: expand("results/models/{target}/{model}", target=wc.target, model=MODELS),
    output:
        "results/models/{target}/best.json",
    log:
        "results/logs/bundle/{target}/best.log",
    benchmark:
        "results/benchmarks/bundle/{target}/best.tsv"
    params:
        target=target_name,
        models=" ".join(MODELS),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred best --summary {input.summary:q} --target {params.target:q} --models {params.models}"
        " --out {output:q} --log {log:q}"


rule predict_batch:
    input:
        best="results/models/{target}/best.json",
        batch=batch_files,
    output:
        "results/deploy/{batch}/{target}/predictions.tsv",
    log:
        "results/logs/deploy/{batch}/{target}/predict.log",
    benchmark:
        "results/benchmarks/deploy/{batch}/{target}/predict.tsv"
    params:
        bundle=lambda wc, input: str(Path(input.best).parent),
        inputs=lambda wc, input: " ".join(f"--input {shlex.quote(p)}" for p in input.batch),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred predict --bundle {params.bundle:q} {params.inputs} --out {output:q} --log {log:q}"


rule monitor_batch:
    input:
        best="results/models/{target}/best.json",
        batch=batch_files,
    output:
        drift="results/deploy/{batch}/{target}/drift.tsv",
        performance="results/deploy/{batch}/{target}/performance.tsv",
        verdict="results/deploy/{batch}/{target}/verdict.json",
        figure=report(
            "results/deploy/{batch}/{target}/drift.png",
            caption="../report/drift.rst",
            category="6. Deploy & monitoring",
            subcategory="{batch}",
            labels={"batch": "{batch}", "target": "{target}", "figure": "drift and accuracy"},
        ),
    log:
        "results/logs/deploy/{batch}/{target}/monitor.log",
    benchmark:
        "results/benchmarks/deploy/{batch}/{target}/monitor.tsv"
    params:
        bundle=lambda wc, input: str(Path(input.best).parent),
        inputs=lambda wc, input: " ".join(f"--input {shlex.quote(p)}" for p in input.batch),
        truth="--truth-from-input" if not CLASSIFICATION else "",
        thresholds=json.dumps(config["monitor"], sort_keys=True),
        out_dir=subpath(output.verdict, parent=True),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred monitor --bundle {params.bundle:q} {params.inputs} {params.truth}"
        " --thresholds {params.thresholds:q} --out-dir {params.out_dir:q} --log {log:q}"


rule deploy_summary:
    input:
        verdicts=expand("results/deploy/{batch}/{target}/verdict.json", batch=BATCHES, target=TARGETS),
        performance=expand("results/deploy/{batch}/{target}/performance.tsv", batch=BATCHES, target=TARGETS),
    output:
        report(
            "results/deploy/verdicts.tsv",
            caption="../report/verdicts.rst",
            category="6. Deploy & monitoring",
            subcategory="all batches",
            labels={"table": "monitoring verdicts"},
        ),
    log:
        "results/logs/deploy/summary.log",
    benchmark:
        "results/benchmarks/deploy/summary.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred deploy-summary --verdicts {input.verdicts:q} --performance {input.performance:q}"
        " --out {output:q} --log {log:q}"
