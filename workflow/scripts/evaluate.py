from mammo.runner import logged

with logged(snakemake.log[0], "evaluate_model"):
    from mammo.stages.train import evaluate_model

    evaluate_model(
        [snakemake.input.model, snakemake.input.onnx],
        {name: list(snakemake.input[name]) for name in ("val", "test", "mias") if name in snakemake.input.keys()},
        list(snakemake.input.tiles),
        # a model that started from pre-trained weights (mias_cv.pretrain) names them in its card
        {
            **snakemake.params.settings,
            "threads": snakemake.threads,
            "initialised_from": (list(snakemake.input.get("init", [])) or [None])[0],
        },
        snakemake.params.evaluation,
        snakemake.params.inference,
        snakemake.params.scanning,
        dict(snakemake.output.items()),
    )
