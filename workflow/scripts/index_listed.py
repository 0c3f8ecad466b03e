from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_listed"):
    from mammo.stages.sources import index_listed

    index_listed(
        snakemake.wildcards.listed, snakemake.params.root, output.images, output.findings, output.rejected, output.summary
    )
