from mammo.runner import logged

inputs = snakemake.input
with logged(snakemake.log[0], "split_dataset"):
    from mammo.stages.tiles import split_dataset

    named = inputs.keys()
    split_dataset(
        list(inputs.tables),
        [*inputs.rejected, *(inputs[key] for key in named if key.endswith("_rejected"))],
        list(inputs.fingerprints),
        {key: inputs[key] for key in named if key.endswith(("_rois", "_scans", "_images", "_findings"))},
        snakemake.params.recipe,
        dict(snakemake.output.items()),
    )
