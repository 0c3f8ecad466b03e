from mammo.runner import logged

with logged(snakemake.log[0], "mias_cv_metrics"):
    from mammo.stages.crossval import mias_cv_metrics

    mias_cv_metrics(
        list(snakemake.input.metrics),
        list(snakemake.input.predictions),
        snakemake.params.settings,
        snakemake.params.evaluation,
        snakemake.output.metrics,
        snakemake.output.predictions,
    )
