# gexpred: predict a target gene's expression from other genes' expression.
# Run the demo:      snakemake --cores 4
# Your own data:     snakemake --cores 4 --configfile my.yaml
# Report:            snakemake --report results/report.html

from snakemake.utils import min_version

min_version("9.14.8")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/ols.smk"
include: "workflow/rules/genome.smk"
include: "workflow/rules/penalized.smk"
include: "workflow/rules/mlp.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/deploy.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
