from mammo.runner import logged

wildcards = snakemake.wildcards
with logged(snakemake.log[0], "write_records"):
    from mammo.stages.records import write_records

    write_records(
        snakemake.input.tiles,
        wildcards.split,
        int(wildcards.shard),
        int(wildcards.shards),
        snakemake.output[0],
    )
