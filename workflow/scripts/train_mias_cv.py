from mammo.runner import logged

with logged(snakemake.log[0], "train_fold"):
    from mammo.stages.crossval import train_fold

    train_fold(
        list(snakemake.input.train),
        list(snakemake.input.val),
        list(snakemake.input.get("lesions", [])),  # online crops only
        {**snakemake.params.settings, "threads": snakemake.threads, "init": (list(snakemake.input.get("init", [])) or [None])[0]},
        snakemake.params.out_dir,
        snakemake.input.split,
        snakemake.input.images,
        snakemake.input.rois,
        snakemake.params.mining,
    )
