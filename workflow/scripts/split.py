from mammo.runner import logged

inputs = snakemake.input
with logged(snakemake.log[0], "split_dataset"):
    from mammo.stages.tiles import split_dataset

    split_dataset(
        list(inputs.tables),
        [*inputs.rejected, inputs.cbis_rejected, inputs.ddsm_rejected],
        {"cbis_rois": inputs.cbis_rois, "ddsm_scans": inputs.ddsm_scans},
        snakemake.params.recipe,
        snakemake.output.tiles,
        snakemake.output.audit,
        snakemake.output.rejected,
        snakemake.output.summary,
    )
