from mammo.runner import logged

with logged(snakemake.log[0], "mias_cv_fold"):
    from mammo.stages.crossval import mias_cv_fold

    fold = snakemake.wildcards.get("fold")  # none: the final model's split (rule mias_final_split)
    mias_cv_fold(
        snakemake.input.tiles,
        snakemake.input.images,
        None if fold is None else int(fold),
        snakemake.params.settings,
        snakemake.output.split,
        snakemake.output.get("films"),
        snakemake.output.get("validation_films"),
    )
