from mammo.runner import logged

inputs = snakemake.input
with logged(snakemake.log[0], "plot_model"):
    from mammo.stages.train import plot_model

    plot_model(
        {name: inputs[name] for name in ("history", "metrics", "predictions", "sweep", "reliability")},
        dict(snakemake.output.items()),
    )
