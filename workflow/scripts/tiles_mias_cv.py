from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "tiles_mias_cv"):
    from mammo.stages.crossval import tiles_mias_cv

    tiles_mias_cv(
        snakemake.input.images,
        snakemake.input.rois,
        snakemake.params.settings,
        snakemake.params.scans,
        output.tiles,
        output.table,
        output.rejected,
        output.summary,
        output.contexts,
        output.contexts_table,
    )
