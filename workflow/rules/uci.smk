rule uci:
    """UCI Wisconsin baselines: six scaled classifiers tuned inside repeated stratified 10-fold CV (nested)."""
    output:
        metrics="results/uci/metrics.json",
        plot=report(
            "results/uci/features.png",
            caption="../report/uci_features.rst",
            category="UCI Wisconsin",
        ),
    log:
        "logs/uci.log",
    benchmark:
        "benchmarks/uci.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        settings=config["uci"],
    script:
        "../scripts/uci.py"
