from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_ddsm_abnormal"):
    from mammo.stages.sources import index_ddsm_abnormal

    index_ddsm_abnormal(snakemake.params.root, output.rois, output.rejected, output.summary)
