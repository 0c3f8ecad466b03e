from mammo.runner import logged

with logged(snakemake.log[0], "write_context_records"):
    from mammo.stages.records import write_context_records

    write_context_records(
        snakemake.input.tiles,
        snakemake.input.contexts_table,
        snakemake.input.contexts,
        "train",
        snakemake.output[0],
    )
