from mammo.runner import run_stage
from mammo.stages.tiles import tiles_cbis

run_stage(
    snakemake.log[0],
    tiles_cbis,
    snakemake.input.rois,
    snakemake.params.root,
    snakemake.wildcards.dataset,
    snakemake.params.recipe,
    snakemake.params.audit,
    int(snakemake.wildcards.chunk),
    snakemake.params.chunks,
    snakemake.output.tiles,
    snakemake.output.table,
    snakemake.output.rejected,
    benchmark_path=snakemake.params.benchmark,
)
