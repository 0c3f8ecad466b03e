from mammo.runner import run_stage
from mammo.stages import evaluate_model

run_stage(
    snakemake.log[0],
    evaluate_model,
    snakemake.input.model,
    {"val": list(snakemake.input.val), "test": list(snakemake.input.test)},
    snakemake.params.settings,
    snakemake.output.metrics,
    snakemake.output.predictions,
)
