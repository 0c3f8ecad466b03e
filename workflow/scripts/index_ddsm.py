from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_ddsm"):
    from mammo.stages.sources import index_ddsm

    index_ddsm(snakemake.params.root, output.scans, output.rejected, output.summary)
