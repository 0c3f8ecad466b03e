from mammo.runner import run_stage
from mammo.stages.records import write_records

wildcards = snakemake.wildcards
run_stage(
    snakemake.log[0],
    write_records,
    snakemake.input.tiles,
    wildcards.split,
    int(wildcards.shard),
    int(wildcards.shards),
    snakemake.output[0],
)
