from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_cbis"):
    from mammo.stages.sources import index_cbis

    index_cbis(list(snakemake.input.csvs), output.rois, output.rejected, output.summary)
