from mammo.runner import logged

inputs, output = snakemake.input, snakemake.output
with logged(snakemake.log[0], "evaluate_scans"):
    from mammo.stages.scans import evaluate_scans

    evaluate_scans(
        list(inputs.scans),
        list(inputs.regions),
        list(inputs.heatmaps),
        snakemake.params.threshold,
        snakemake.params.evaluation,
        output.metrics,
        output.froc,
        output.froc_plot,
        output.cases,
        inputs.get("mias_rois"),  # mias_cv: the localisation per class of lesion
        inputs.get("films"),  # mias_cv: the learnt film scores beside the maximum window
        inputs.get("mias_images"),  # mias_cv: the film rates per breast density
    )
