from mammo.runner import logged

with logged(snakemake.log[0], "plot_collections"):
    from mammo.stages.tiles import plot_collections

    plot_collections(list(snakemake.input.tables), snakemake.params.seed, snakemake.output[0])
