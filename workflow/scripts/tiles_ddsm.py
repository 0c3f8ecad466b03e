from mammo.runner import logged

with logged(snakemake.log[0], "tiles_ddsm", benchmark_path=snakemake.params.benchmark):
    from mammo.stages.tiles import tiles_ddsm

    tiles_ddsm(
        snakemake.input.scans,
        snakemake.wildcards.dataset,
        snakemake.params.recipe,
        int(snakemake.wildcards.chunk),
        snakemake.params.chunks,
        dict(snakemake.output.items()),
    )
