from mammo.runner import run_stage
from mammo.stages.tiles import tiles_mias

output = snakemake.output
run_stage(
    snakemake.log[0],
    tiles_mias,
    snakemake.input.images,
    snakemake.input.rois,
    snakemake.wildcards.dataset,
    snakemake.params.recipe,
    output.tiles,
    output.table,
    output.rejected,
    output.summary,
    benchmark_path=snakemake.params.benchmark,
)
