from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "tiles_mias", benchmark_path=snakemake.params.benchmark):
    from mammo.stages.tiles import tiles_mias

    tiles_mias(
        snakemake.input.images,
        snakemake.input.rois,
        snakemake.wildcards.dataset,
        snakemake.params.recipe,
        output.tiles,
        output.table,
        output.rejected,
        output.summary,
    )
