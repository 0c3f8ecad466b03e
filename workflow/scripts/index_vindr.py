from mammo.runner import logged

output = snakemake.output
with logged(snakemake.log[0], "index_vindr"):
    from mammo.stages.sources import index_vindr

    index_vindr(snakemake.params.root, output.images, output.findings, output.rejected, output.summary)
