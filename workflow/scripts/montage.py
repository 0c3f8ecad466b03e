from mammo.runner import logged

with logged(snakemake.log[0], "plot_montage"):
    from mammo.stages.tiles import plot_montage

    plot_montage(list(snakemake.input.tables), snakemake.params.seed, snakemake.output[0])
