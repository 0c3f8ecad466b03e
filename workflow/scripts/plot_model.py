from mammo.runner import run_stage
from mammo.stages import plot_model

run_stage(
    snakemake.log[0],
    plot_model,
    snakemake.input.history,
    snakemake.input.predictions,
    snakemake.output.curves,
    snakemake.output.roc,
)
