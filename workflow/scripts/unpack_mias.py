from mammo.runner import logged

with logged(snakemake.log[0], "unpack_mias"):
    from mammo.stages.sources import unpack_mias

    unpack_mias(snakemake.input[0], snakemake.output.info)
