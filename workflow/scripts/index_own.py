from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_own"):
    from mammo.stages.sources import index_own

    index_own(snakemake.input.csv, output.images, output.findings, output.rejected, output.summary)
