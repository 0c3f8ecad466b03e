from mammo.runner import logged

with logged(snakemake.log[0], "tiles_ddsm_abnormal", benchmark_path=snakemake.params.benchmark):
    from mammo.stages.tiles import tiles_ddsm_abnormal

    tiles_ddsm_abnormal(
        snakemake.input.rois,
        snakemake.wildcards.dataset,
        snakemake.params.recipe,
        snakemake.params.audit,
        int(snakemake.wildcards.chunk),
        snakemake.params.chunks,
        dict(snakemake.output.items()),
    )
