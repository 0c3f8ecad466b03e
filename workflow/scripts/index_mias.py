from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_mias"):
    from mammo.stages.sources import index_mias

    index_mias(snakemake.input.info, output.images, output.rois, output.rejected, output.summary)
