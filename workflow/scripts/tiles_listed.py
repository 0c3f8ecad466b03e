from mammo.runner import logged

with logged(snakemake.log[0], "tiles_listed", benchmark_path=snakemake.params.benchmark):
    from mammo.stages.tiles import tiles_listed

    tiles_listed(
        snakemake.wildcards.listed,
        snakemake.input.images,
        snakemake.input.findings,
        snakemake.wildcards.dataset,
        snakemake.params.recipe,
        snakemake.params.audit,
        int(snakemake.wildcards.chunk),
        snakemake.params.chunks,
        dict(snakemake.output.items()),
    )
