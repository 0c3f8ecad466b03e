checkpoint scan_targets:
    """The scans to analyse whole: every scan of the test split's patients, and every mini-MIAS scan."""
    input:
        unpack(lambda wc: recipe_indexes(wc.dataset)),
        tiles=rules.split.output.tiles,
        mias_images=rules.index_mias.output.images,
    output:
        "results/{dataset}/scans/targets.tsv",
    log:
        "logs/{dataset}/scan_targets.log",
    benchmark:
        "benchmarks/{dataset}/scan_targets.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        cbis_root=config["data"]["cbis_ddsm"],
        mias_scale=lambda wc: config["datasets"][wc.dataset]["mias"]["scale"],
    script:
        "../scripts/scan_targets.py"


rule score_scans:
    """Sliding-window heatmaps and top regions of one chunk of whole scans."""
    input:
        unpack(lambda wc: lesion_indexes(wc.dataset)),
        targets=rules.scan_targets.output[0],
        scans=scan_files("targets"),
        mias_rois=rules.index_mias.output.rois,
        model=rules.train.output.model,
        onnx=exported(rules.train.output.model),
        card=rules.evaluate.output.card,
    output:
        scans="results/{dataset}/model_{model}/scans/chunk_{chunk}.scans.tsv",
        regions="results/{dataset}/model_{model}/scans/chunk_{chunk}.regions.tsv",
        heatmaps="results/{dataset}/model_{model}/scans/chunk_{chunk}.heatmaps.npz",
        rejected="results/{dataset}/model_{model}/scans/chunk_{chunk}.rejected.tsv",
    log:
        "logs/{dataset}/score_scans_{model}_{chunk}.log",
    benchmark:
        "benchmarks/{dataset}/score_scans_{model}_{chunk}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=2500,  # peak RSS 1.7 GB on the demo, 1.26 GB for a 5300x3100 scan (bench/)
        runtime=120,
    params:
        cbis_root=config["data"]["cbis_ddsm"],
        settings=lambda wc: config["models"][wc.model],
        inference=config["inference"],
        windowing=windowing_settings(),
        chunks=config["chunks"],
    script:
        "../scripts/score_scans.py"


rule scan_metrics:
    """Scan-level ROC-AUC (maximum window score), localisation, FROC and heatmaps of right and wrong cases."""
    input:
        scans=lambda wc: scan_chunks(wc, "scans.tsv"),
        regions=lambda wc: scan_chunks(wc, "regions.tsv"),
        heatmaps=lambda wc: scan_chunks(wc, "heatmaps.npz"),
    output:
        metrics="results/{dataset}/model_{model}/scans/metrics.json",
        froc="results/{dataset}/model_{model}/scans/froc.tsv",
        froc_plot=report(
            "results/{dataset}/model_{model}/scans/froc.png",
            caption="../report/froc.rst",
            category="Whole scans",
            subcategory="{dataset} {model}",
        ),
        cases=report(
            "results/{dataset}/model_{model}/scans/cases.png",
            caption="../report/scan_cases.rst",
            category="Whole scans",
            subcategory="{dataset} {model}",
        ),
    log:
        "logs/{dataset}/scan_metrics_{model}.log",
    benchmark:
        "benchmarks/{dataset}/scan_metrics_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        threshold=lambda wc: config["models"][wc.model]["threshold"],
        evaluation=config["evaluation"],
    script:
        "../scripts/scan_metrics.py"


rule analyse_scan:
    """Heatmap, overlay and top regions of one scan named in the config (scans.files), with one trained model."""
    input:
        scan=lambda wc: config["scans"]["files"][wc.name],
        model=rules.train.output.model,
        onnx=exported(rules.train.output.model),
        card=rules.evaluate.output.card,
    output:
        heatmap="results/{dataset}/model_{model}/scan/{name}.heatmap.npy",
        overlay=report(
            "results/{dataset}/model_{model}/scan/{name}.overlay.png",
            caption="../report/scan_overlay.rst",
            category="Whole scans",
            subcategory="{dataset} {model}",
        ),
        regions="results/{dataset}/model_{model}/scan/{name}.regions.json",
    log:
        "logs/{dataset}/analyse_scan_{model}_{name}.log",
    benchmark:
        "benchmarks/{dataset}/analyse_scan_{model}_{name}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        windowing=lambda wc: scan_windowing(wc.name),
        inference=config["inference"],
        out_dir=subpath(output.regions, parent=True),
    script:
        "../scripts/analyse_scan.py"
