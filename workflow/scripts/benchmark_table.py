from mammo.runner import logged

with logged(snakemake.log[0], "benchmark_table"):
    from mammo.stages.report import benchmark_table

    benchmark_table(snakemake.params.folder, snakemake.output.table, snakemake.output.markdown)
