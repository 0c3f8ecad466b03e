rule shortcut_audit:
    """Does the score tell tissue of the scans with ROIs (CBIS-DDSM's, DDSM's outlined cases) from DDSM normal tissue?
    Collection AUC with its patient-bootstrap interval."""
    input:
        model=rules.train.output.model,
        onnx=exported(rules.train.output.model),
        tiles=rules.split.output.tiles,
        audit=rules.split.output.audit,
        arrays=lambda wc: chunk_outputs(wc.dataset, "npy"),
    output:
        result="results/{dataset}/model_{model}/shortcut.json",
        plot=report(
            "results/{dataset}/model_{model}/shortcut.png",
            caption="../report/shortcut.rst",
            category="Models",
            subcategory="{dataset} {model}",
        ),
    log:
        "logs/{dataset}/shortcut_audit_{model}.log",
    benchmark:
        "benchmarks/{dataset}/shortcut_audit_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=2500,
        runtime=20,
    params:
        settings=lambda wc: config["models"][wc.model],
        evaluation=config["evaluation"],
        inference=config["inference"],
    script:
        "../scripts/shortcut_audit.py"


rule tables:
    """The study's Tables 1-3 for every configured dataset and model, each cell with its 95% interval."""
    input:
        metrics=[
            f"results/{run['dataset']}/model_{run['model']}/metrics.json"
            for run in RUNS
        ],
        shortcuts=[
            f"results/{run['dataset']}/model_{run['model']}/shortcut.json"
            for run in RUNS
        ],
    output:
        **{
            table: report(
                f"results/tables/{table}.csv",
                caption="../report/tables.rst",
                category="Comparison tables",
            )
            for table in STUDY_TABLES
        },
        markdown=expand("results/tables/{table}.md", table=STUDY_TABLES),
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        runs=RUNS,
    script:
        "../scripts/tables.py"


rule benchmark_table:
    """Wall time and peak memory of every job behind the final outputs (Snakemake's benchmark files)."""
    input:
        FINAL_OUTPUTS,
    output:
        table=report(
            "results/tables/benchmarks.csv",
            caption="../report/benchmarks.rst",
            category="Comparison tables",
        ),
        markdown="results/tables/benchmarks.md",
    log:
        "logs/benchmark_table.log",
    benchmark:
        "benchmarks/benchmark_table.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        folder="benchmarks",
    script:
        "../scripts/benchmark_table.py"
