rule train:
    """Train one configured model on one dataset; resumes from its last epoch when interrupted."""
    input:
        train=lambda wc: shard_paths(wc.dataset, "train"),
        val=lambda wc: shard_paths(wc.dataset, "val"),
        init=lambda wc: transfer_source(wc.dataset, wc.model),
    output:
        model="results/{dataset}/model_{model}/model.keras",
        history="results/{dataset}/model_{model}/history.csv",
    log:
        "logs/{dataset}/train_{model}.log",
    benchmark:
        "benchmarks/{dataset}/train_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=4500,  # peak RSS 2.9 GB on the demo (benchmarks/)
        runtime=240,
    params:
        settings=lambda wc: config["models"][wc.model],
        out_dir=subpath(output.model, parent=True),
    script:
        "../scripts/train.py"


rule export_model:
    """The trained model as ONNX beside it, test-time contrast inside the graph: OpenVINO or ONNX Runtime run it
    without TensorFlow (mammo.inference), in this workflow and in `mammo scan`.
    """
    input:
        model="results/{trained}/model.keras",
    output:
        onnx="results/{trained}/model.onnx",
    log:
        "logs/{trained}/export.log",
    benchmark:
        "benchmarks/{trained}/export.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=4000,  # peak RSS 2.9 GB for model 1.0.0.35 (benchmarks/)
        runtime=10,
    script:
        "../scripts/export_model.py"


rule evaluate:
    """Metrics over the whole validation, test and external MIAS sets (no augmentation, test-time contrast only):
    patient-bootstrap intervals, temperature and operating points from validation, subgroups, contrast sweep.
    """
    input:
        model=rules.train.output.model,
        onnx=exported(rules.train.output.model),
        val=lambda wc: shard_paths(wc.dataset, "val"),
        test=lambda wc: shard_paths(wc.dataset, "test"),
        mias=lambda wc: shard_paths(wc.dataset, "mias"),
        tiles=[rules.split.output.tiles, rules.tiles_mias.output.table],
    output:
        metrics="results/{dataset}/model_{model}/metrics.json",
        predictions="results/{dataset}/model_{model}/predictions.tsv",
        card="results/{dataset}/model_{model}/model.json",
        sweep="results/{dataset}/model_{model}/thresholds.tsv",
        reliability="results/{dataset}/model_{model}/reliability.tsv",
        subgroups="results/{dataset}/model_{model}/subgroups.tsv",
    log:
        "logs/{dataset}/evaluate_{model}.log",
    benchmark:
        "benchmarks/{dataset}/evaluate_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=2500,  # peak RSS 1.6 GB on the demo
        runtime=30,
    params:
        settings=lambda wc: config["models"][wc.model],
        evaluation={k: v for k, v in config["evaluation"].items() if k != "shortcut"},
        inference=config["inference"],
        scanning=scanning_section("cbis", CBIS_TILE_SCALE, windowing_settings()),
    script:
        "../scripts/evaluate.py"


rule plot_model:
    """Training curves, ROC/PR, reliability, threshold and confusion plots, and the most confident mistakes."""
    input:
        history=rules.train.output.history,
        metrics=rules.evaluate.output.metrics,
        predictions=rules.evaluate.output.predictions,
        sweep=rules.evaluate.output.sweep,
        reliability=rules.evaluate.output.reliability,
        arrays=lambda wc: chunk_outputs(wc.dataset, "npy"),
        mias_arrays=rules.tiles_mias.output.tiles,
    output:
        curves=model_report("training_curves.png", "training_curves.rst"),
        roc=model_report("roc_pr.png", "roc_pr.rst"),
        reliability=model_report("reliability.png", "reliability.rst"),
        thresholds=model_report("thresholds.png", "thresholds.rst"),
        confusion=model_report("confusion.png", "confusion.rst"),
        errors=model_report("errors.png", "errors.rst"),
    log:
        "logs/{dataset}/plot_model_{model}.log",
    benchmark:
        "benchmarks/{dataset}/plot_model_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_model.py"
