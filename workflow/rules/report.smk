rule plot_observed:
    input:
        predictions="results/compare/predictions.tsv",
        metrics="results/compare/metrics.tsv",
    output:
        report(
            "results/plots/{target}/observed_vs_predicted.png",
            caption="../report/observed_vs_predicted.rst",
            category="5. Model comparison",
            subcategory="{target}",
            labels={"target": "{target}", "figure": "observed vs predicted (test split)"},
        ),
    log:
        "results/logs/plots/{target}/observed.log",
    benchmark:
        "results/benchmarks/plots/{target}/observed.tsv"
    params:
        target=target_name,
        models=" ".join(MODELS),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot observed --target {params.target:q} --models {params.models}"
        " --predictions {input.predictions:q} --metrics {input.metrics:q} --out {output:q} --log {log:q}"


rule plot_coefficients:
    input:
        "results/ols/{target}/coefficients.tsv",
    output:
        report(
            "results/plots/{target}/coefficients.png",
            caption="../report/coefficients.rst",
            category="3. Hypothesis evaluation",
            subcategory="{target}",
            labels={"target": "{target}", "figure": "OLS coefficients with 95% CI"},
        ),
    log:
        "results/logs/plots/{target}/coefficients.log",
    benchmark:
        "results/benchmarks/plots/{target}/coefficients.tsv"
    params:
        target=target_name,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot coefficients --target {params.target:q} --coefficients {input:q}"
        " --out {output:q} --log {log:q}"


rule plot_diagnostics:
    input:
        predictions="results/ols/{target}/predictions.tsv",
        influence="results/ols/{target}/influence.tsv",
        diagnostics="results/ols/{target}/diagnostics.tsv",
    output:
        report(
            "results/plots/{target}/diagnostics.png",
            caption="../report/diagnostics.rst",
            category="3. Hypothesis evaluation",
            subcategory="{target}",
            labels={"target": "{target}", "figure": "OLS diagnostics"},
        ),
    log:
        "results/logs/plots/{target}/diagnostics.log",
    benchmark:
        "results/benchmarks/plots/{target}/diagnostics.tsv"
    params:
        target=target_name,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot diagnostics --target {params.target:q} --predictions {input.predictions:q}"
        " --influence {input.influence:q} --diagnostics {input.diagnostics:q} --out {output:q} --log {log:q}"


rule plot_loss:
    input:
        history="results/mlp/{target}/history.tsv",
        meta="results/mlp/{target}/model.json",
    output:
        report(
            "results/plots/{target}/loss.png",
            caption="../report/loss.rst",
            category="4. Prediction",
            subcategory="{target}",
            labels={"target": "{target}", "figure": "network loss per epoch"},
        ),
    log:
        "results/logs/plots/{target}/loss.log",
    benchmark:
        "results/benchmarks/plots/{target}/loss.tsv"
    params:
        target=target_name,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot loss --target {params.target:q} --history {input.history:q}"
        " --model-json {input.meta:q} --out {output:q} --log {log:q}"


rule plot_activations:
    output:
        report(
            "results/plots/activation_functions.png",
            caption="../report/activation_functions.rst",
            category="4. Prediction",
            subcategory="architecture",
            labels={"figure": "activation functions"},
        ),
    log:
        "results/logs/plots/activation_functions.log",
    benchmark:
        "results/benchmarks/plots/activation_functions.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/gexpred.yaml"
    shell:
        "gexpred plot activations --out {output:q} --log {log:q}"
