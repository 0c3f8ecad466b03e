from mammo.runner import logged

inputs, output = snakemake.input, snakemake.output
with logged(snakemake.log[0], "card_mias_final"):
    from mammo.stages.crossval import final_card

    final_card(
        inputs.card,
        inputs.validation_scans,
        inputs.validation_heatmaps,
        inputs.split,
        snakemake.params.film_score,
        output.card,
        output.aggregates,
    )
