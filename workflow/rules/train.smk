rule train:
    """Train one configured model on one dataset; resumes from its last epoch when interrupted."""
    input:
        train=lambda wc: shard_paths(wc.dataset, "train"),
        val=lambda wc: shard_paths(wc.dataset, "val"),
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


rule evaluate:
    """Metrics over the whole validation, test and external MIAS sets (no augmentation, test-time contrast only)."""
    input:
        model=rules.train.output.model,
        val=lambda wc: shard_paths(wc.dataset, "val"),
        test=lambda wc: shard_paths(wc.dataset, "test"),
        mias=lambda wc: shard_paths(wc.dataset, "mias"),
    output:
        metrics="results/{dataset}/model_{model}/metrics.json",
        predictions="results/{dataset}/model_{model}/predictions.tsv",
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
    script:
        "../scripts/evaluate.py"


rule plot_model:
    """Training curves, ROC and precision-recall curves of one trained model."""
    input:
        history=rules.train.output.history,
        predictions=rules.evaluate.output.predictions,
    output:
        curves=report(
            "results/{dataset}/model_{model}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Models",
            subcategory="{dataset} {model}",
        ),
        roc=report(
            "results/{dataset}/model_{model}/roc_pr.png",
            caption="../report/roc_pr.rst",
            category="Models",
            subcategory="{dataset} {model}",
        ),
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
