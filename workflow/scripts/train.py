from mammo.runner import logged

with logged(snakemake.log[0], "train_model"):
    from mammo.stages.train import train_model

    train_model(
        list(snakemake.input.train),
        list(snakemake.input.val),
        {**snakemake.params.settings, "threads": snakemake.threads, "init": (list(snakemake.input.init) or [None])[0]},
        snakemake.params.out_dir,
    )
