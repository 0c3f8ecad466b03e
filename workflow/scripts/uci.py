from mammo.runner import run_stage
from mammo.stages.uci import uci_baselines

settings = snakemake.params.settings
run_stage(
    snakemake.log[0],
    uci_baselines,
    settings["seed"],
    settings["repeats"],
    snakemake.threads,
    snakemake.output.metrics,
    snakemake.output.plot,
)
