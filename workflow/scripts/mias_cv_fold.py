from mammo.runner import logged

with logged(snakemake.log[0], "mias_cv_fold"):
    from mammo.stages.crossval import mias_cv_fold

    mias_cv_fold(
        snakemake.input.tiles,
        snakemake.input.images,
        int(snakemake.wildcards.fold),
        snakemake.params.settings,
        snakemake.output.split,
        snakemake.output.films,
    )
