rule records:
    """One TFRecord shard of one split (the schema lives in mammo.records)."""
    input:
        unpack(split_tiles),
    output:
        "results/{dataset}/records/{split}-{shard}-of-{shards}.tfrecord",
    log:
        "logs/{dataset}/records_{split}-{shard}-of-{shards}.log",
    benchmark:
        "benchmarks/{dataset}/records_{split}-{shard}-of-{shards}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../scripts/records.py"
