from mammo.runner import run_stage
from mammo.stages.train import evaluate_model

run_stage(
    snakemake.log[0],
    evaluate_model,
    snakemake.input.model,
    {name: list(snakemake.input[name]) for name in ("val", "test", "mias") if name in snakemake.input.keys()},
    list(snakemake.input.tiles),
    {**snakemake.params.settings, "threads": snakemake.threads},
    snakemake.params.evaluation,
    dict(snakemake.output.items()),
)
