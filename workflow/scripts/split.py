from mammo.runner import logged

inputs = snakemake.input
with logged(snakemake.log[0], "split_dataset"):
    from mammo.stages.tiles import split_dataset

    indexes = ("cbis_rois", "ddsm_rois", "ddsm_scans")
    index_rejected = ("cbis_rois_rejected", "ddsm_rois_rejected", "ddsm_rejected")
    split_dataset(
        list(inputs.tables),
        [*inputs.rejected, *(inputs[key] for key in index_rejected if key in inputs.keys())],
        list(inputs.fingerprints),
        {key: inputs[key] for key in indexes if key in inputs.keys()},
        snakemake.params.recipe,
        dict(snakemake.output.items()),
    )
