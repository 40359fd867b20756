rule bundle:
    input:
        predictions=lambda wc: expand("results/{model}/{target}/predictions.tsv", model=MODELS, target=wc.target),
        # out-of-fold predictions: each regression model's prediction interval (cross-validation residuals)
        cv_predictions=lambda wc: expand("results/{model}/{target}/cv_predictions.tsv", model=MODELS,
                                         target=wc.target),
        data="results/data/normalized.h5ad",
        splits="results/data/splits.tsv",
        normalization="results/data/normalization.json",
        # this target's rows of results/compare/*.tsv (rule compare_target)
        metrics="results/compare/targets/{target}/metrics.tsv",
        cv_metrics="results/compare/targets/{target}/cv_metrics.tsv",
        summary="results/compare/targets/{target}/summary.tsv",
        labels=target_labels_file,
    output:
        bundles=[directory(f"results/models/{{target}}/{m}") for m in MODELS],
        best="results/models/{target}/best.json",
    log:
        "results/logs/bundle/{target}.log",
    benchmark:
        "results/benchmarks/bundle/{target}.tsv"
    params:
        target=target_name,
        models=" ".join(MODELS),
        model_dirs=lambda wc, input: " ".join(shlex.quote(str(Path(p).parent)) for p in input.predictions),
        outs=lambda wc, output: " ".join(shlex.quote(p) for p in output.bundles),
        labels=lambda wc, input: labels_arg(input),
        # a binarized gene's threshold, kept in the card so that the monitor can label a batch measuring it
        binarize=lambda wc: (f"--binarize-threshold {float(config['binarize'][TARGETS[wc.target]])!r}"
                             if TARGETS[wc.target] in config["binarize"] else ""),
        alpha=config["ols"]["alpha"],
        interval=config["prediction_interval"]["method"],
        neighbours=config["prediction_interval"]["neighbours"],
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(1.5, 2000),
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred bundle --target {params.target:q} --model {params.models} --model-dir {params.model_dirs}"
        " --data {input.data:q} --splits {input.splits:q} --normalization {input.normalization:q}"
        " {params.labels} {params.binarize} --alpha {params.alpha} --interval {params.interval}"
        " --interval-neighbours {params.neighbours} --metrics {input.metrics:q}"
        " --cv-metrics {input.cv_metrics:q} --out {params.outs}"
        " --summary {input.summary:q} --out-best {output.best:q} --log {log:q}"


rule deploy_batch:
    input:
        best="results/models/{target}/best.json",
        batch=batch_files,
        sheet=batch_sheet,
    output:
        predictions="results/deploy/{batch}/{target}/predictions.tsv",
        drift="results/deploy/{batch}/{target}/drift.tsv",
        performance="results/deploy/{batch}/{target}/performance.tsv",
        verdict="results/deploy/{batch}/{target}/verdict.json",
        figure=report(
            "results/deploy/{batch}/{target}/drift.png",
            caption="../report/drift.rst",
            category="6. Deploy & monitoring",
            subcategory="{batch}",
            # no observed-vs-predicted panel for classification (its accuracy, if labelled: performance.tsv)
            labels=lambda wc: {
                "batch": wc.batch,
                **target_labels(wc, figure="drift" if CLASSIFICATION else "drift and accuracy"),
            },
        ),
    log:
        "results/logs/deploy/{batch}/{target}.log",
    benchmark:
        "results/benchmarks/deploy/{batch}/{target}.tsv"
    params:
        bundle=lambda wc, input: str(Path(input.best).parent),
        inputs=lambda wc, input: " ".join(f"--input {shlex.quote(p)}" for p in input.batch),
        sheet=lambda wc, input: " ".join(f"--sample-sheet {shlex.quote(p)}" for p in input.sheet),
        # regression: the target gene where the batch measures it; classification: a binarized gene there, or
        # the batch sheet's label column
        truth="--truth-if-measured",
        thresholds=cli_json(config["monitor"]),
        out_dir=subpath(output.verdict, parent=True),
        # the numbers and names the report's captions show (report_helpers.smk, included later)
        facts=lambda wc: caption_facts(wc),
    threads: 1
    resources:
        mem_mb=whole_matrix_mem_mb(5),  # parsing the batch's text: 6.4 x the file (input_mb)
        runtime=whole_matrix_runtime(10),
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred monitor --bundle {params.bundle:q} {params.inputs} {params.sheet} {params.truth}"
        " --thresholds {params.thresholds:q} --out-dir {params.out_dir:q}"
        " --out-predictions {output.predictions:q} --log {log:q}"


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
