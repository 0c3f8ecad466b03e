from mammo.runner import run_stage
from mammo.stages.crossval import mias_cv_fold

run_stage(
    snakemake.log[0],
    mias_cv_fold,
    snakemake.input.tiles,
    snakemake.input.images,
    int(snakemake.wildcards.fold),
    snakemake.params.settings,
    snakemake.output.split,
    snakemake.output.films,
)
