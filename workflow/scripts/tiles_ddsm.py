from mammo.runner import run_stage
from mammo.stages.tiles import tiles_ddsm

run_stage(
    snakemake.log[0],
    tiles_ddsm,
    snakemake.input.scans,
    snakemake.wildcards.dataset,
    snakemake.params.recipe,
    int(snakemake.wildcards.chunk),
    snakemake.params.chunks,
    snakemake.output.tiles,
    snakemake.output.table,
    snakemake.output.rejected,
    benchmark_path=snakemake.params.benchmark,
)
