from mammo.runner import run_stage
from mammo.stages.scans import evaluate_scans

inputs, output = snakemake.input, snakemake.output
run_stage(
    snakemake.log[0],
    evaluate_scans,
    list(inputs.scans),
    list(inputs.regions),
    list(inputs.heatmaps),
    snakemake.params.threshold,
    output.metrics,
    output.froc,
    output.froc_plot,
    output.cases,
)
