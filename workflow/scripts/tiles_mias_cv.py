from mammo.runner import run_stage
from mammo.stages.crossval import tiles_mias_cv

output = snakemake.output
run_stage(
    snakemake.log[0],
    tiles_mias_cv,
    snakemake.input.images,
    snakemake.input.rois,
    snakemake.params.settings,
    snakemake.params.scans,
    output.tiles,
    output.table,
    output.rejected,
    output.summary,
)
