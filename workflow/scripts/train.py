from mammo.runner import run_stage
from mammo.stages.train import train_model

run_stage(
    snakemake.log[0],
    train_model,
    list(snakemake.input.train),
    list(snakemake.input.val),
    {**snakemake.params.settings, "threads": snakemake.threads, "init": (list(snakemake.input.init) or [None])[0]},
    snakemake.params.out_dir,
)
