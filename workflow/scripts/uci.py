from mammo.runner import logged

settings = snakemake.params.settings
with logged(snakemake.log[0], "uci_baselines"):
    from mammo.stages.uci import uci_baselines

    uci_baselines(
        settings["seed"],
        settings["repeats"],
        settings["folds"],
        snakemake.threads,
        snakemake.output.metrics,
        snakemake.output.plot,
    )
