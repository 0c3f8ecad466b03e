from mammo.runner import logged

inputs, output = snakemake.input, snakemake.output
with logged(snakemake.log[0], "film_scores"):
    from mammo.stages.crossval import fold_film_scores

    fold_film_scores(
        inputs.validation_scans,
        inputs.validation_heatmaps,
        inputs.scans,
        inputs.heatmaps,
        inputs.split,
        output.aggregates,
        output.films,
    )
