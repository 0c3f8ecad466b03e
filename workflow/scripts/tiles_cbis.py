from mammo.runner import logged

with logged(snakemake.log[0], "tiles_cbis", benchmark_path=snakemake.params.benchmark):
    from mammo.stages.tiles import tiles_cbis

    tiles_cbis(
        snakemake.input.rois,
        snakemake.params.root,
        snakemake.wildcards.dataset,
        snakemake.params.recipe,
        snakemake.params.audit,
        int(snakemake.wildcards.chunk),
        snakemake.params.chunks,
        dict(snakemake.output.items()),
    )
