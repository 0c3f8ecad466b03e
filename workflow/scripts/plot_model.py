from mammo.runner import run_stage
from mammo.stages.train import plot_model

inputs = snakemake.input
run_stage(
    snakemake.log[0],
    plot_model,
    {name: inputs[name] for name in ("history", "metrics", "predictions", "sweep", "reliability")},
    dict(snakemake.output.items()),
)
