# mias_cv: k-fold cross-validation on mini-MIAS films, folds grouped by woman; any model of the config. mias_final:
# the same recipe trained once on every woman, the model to take away (its rules below are the fold rules' own).


rule tiles_mias_cv:
    """Tiles of every mini-MIAS film (ROIs, normal films, abnormal films away from lesions), each with its woman's fold."""
    input:
        images=rules.index_mias.output.images,
        rois=rules.index_mias.output.rois,
        scans=scan_files("mias"),
    output:
        tiles="results/mias_cv/tiles.npy",
        table="results/mias_cv/tiles.tsv",
        rejected="results/mias_cv/rejected.tsv",
        summary="results/mias_cv/summary.json",
        contexts="results/mias_cv/lesion_contexts.npy",
        contexts_table="results/mias_cv/lesion_contexts.tsv",
    log:
        "logs/mias_cv/tiles.log",
    benchmark:
        "benchmarks/mias_cv/tiles.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        settings=tiling_recipe(config["mias_cv"]),
        scans=config["scans"],
    script:
        "../scripts/tiles_mias_cv.py"


rule mias_cv_fold:
    """One fold's split: its women are the test set, an inner validation of the other women, the rest train."""
    input:
        tiles=rules.tiles_mias_cv.output.table,
        images=rules.index_mias.output.images,
    output:
        split="results/mias_cv/fold_{fold}/tiles.tsv",
        summary="results/mias_cv/fold_{fold}/tiles.json",
        films="results/mias_cv/fold_{fold}/films.tsv",
        validation_films="results/mias_cv/fold_{fold}/validation_films.tsv",
    log:
        "logs/mias_cv/fold_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/fold_{fold}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        settings=config["mias_cv"],
    script:
        "../scripts/mias_cv_fold.py"


rule records_mias_cv:
    """One fold's train, inner validation or held-out tiles as a TFRecord shard."""
    input:
        tiles=rules.mias_cv_fold.output.split,
        arrays=rules.tiles_mias_cv.output.tiles,
    output:
        "results/mias_cv/fold_{fold}/records/{split}-{shard}-of-{shards}.tfrecord",
    log:
        "logs/mias_cv/records_{fold}_{split}-{shard}-of-{shards}.log",
    benchmark:
        "benchmarks/mias_cv/records_{fold}_{split}-{shard}-of-{shards}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=2000 if config["mias_cv"]["surround"] else 1000,  # peak RSS 0.6 GB; 1.2 GB with the surround channel
        runtime=30,
    script:
        "../scripts/records.py"


rule context_records_mias_cv:
    """The context patches of one fold's training lesions, from which training cuts new crops every epoch."""
    input:
        tiles=rules.mias_cv_fold.output.split,
        contexts=rules.tiles_mias_cv.output.contexts,
        contexts_table=rules.tiles_mias_cv.output.contexts_table,
    output:
        "results/mias_cv/fold_{fold}/records/lesions-train.tfrecord",
    log:
        "logs/mias_cv/context_records_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/context_records_{fold}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/context_records.py"


rule train_mias_cv:
    """One model trained on one fold's training women (early stopping and calibration see the inner validation), with
    the recipe's online lesion crops and rounds of hard negatives mined from the training women's films.
    """
    input:
        train=["results/mias_cv/fold_{fold}/records/train-0-of-1.tfrecord"],
        val=["results/mias_cv/fold_{fold}/records/val-0-of-1.tfrecord"],
        lesions=online_crops_input(
            "results/mias_cv/fold_{fold}/records/lesions-train.tfrecord"
        ),
        init=pretrained_input(),
        split=rules.mias_cv_fold.output.split,
        images=rules.index_mias.output.images,
        rois=rules.index_mias.output.rois,
        scans=mining_input(config["mias_cv"], scan_files("mias")),
    output:
        model="results/mias_cv/model_{model}/fold_{fold}/model.keras",
        history="results/mias_cv/model_{model}/fold_{fold}/history.csv",
        hard_negatives="results/mias_cv/model_{model}/fold_{fold}/hard_negatives.tsv",
        hard_negatives_picture="results/mias_cv/model_{model}/fold_{fold}/hard_negatives.png",
    log:
        "logs/mias_cv/train_{model}_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/train_{model}_{fold}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        # peak RSS 3.8 GB with every training tile of a mini-MIAS fold cached, 6.2 GB with the surround channel
        mem_mb=7500 if config["mias_cv"]["surround"] else 4500,
        runtime=240,
    params:
        settings=lambda wc: {
            **config["models"][wc.model],
            **epoch_draws(config["mias_cv"]),
        },
        out_dir=subpath(output.model, parent=True),
        mining={"recipe": config["mias_cv"], "scans": windowing_settings()},
    script:
        "../scripts/train_mias_cv.py"


rule evaluate_mias_cv:
    """One fold's model on its inner validation (temperature, operating points) and on its held-out women."""
    input:
        model=rules.train_mias_cv.output.model,
        onnx=exported(rules.train_mias_cv.output.model),
        init=pretrained_input(),
        val=rules.train_mias_cv.input.val,
        test=["results/mias_cv/fold_{fold}/records/test-0-of-1.tfrecord"],
        tiles=[rules.mias_cv_fold.output.split],
    output:
        metrics="results/mias_cv/model_{model}/fold_{fold}/metrics.json",
        predictions="results/mias_cv/model_{model}/fold_{fold}/predictions.tsv",
        card="results/mias_cv/model_{model}/fold_{fold}/model.json",
        sweep="results/mias_cv/model_{model}/fold_{fold}/thresholds.tsv",
        reliability="results/mias_cv/model_{model}/fold_{fold}/reliability.tsv",
        subgroups="results/mias_cv/model_{model}/fold_{fold}/subgroups.tsv",
    log:
        "logs/mias_cv/evaluate_{model}_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/evaluate_{model}_{fold}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=2500,
        runtime=30,
    params:
        settings=lambda wc: {
            **config["models"][wc.model],
            **epoch_draws(config["mias_cv"]),
        },
        evaluation=lambda wc: {
            **config["evaluation"],
            "contrast_sweep": [config["models"][wc.model]["test_contrast"]],
        },
        inference=config["inference"],
        scanning=scanning_section("mias", config["mias_cv"]["scale"], mias_windowing()),
    script:
        "../scripts/evaluate.py"


rule mias_cv_metrics:
    """Pooled out-of-fold metrics with intervals from a bootstrap over women, per-fold figures and their spread."""
    input:
        metrics=expand(
            "results/mias_cv/model_{{model}}/fold_{fold}/metrics.json",
            fold=range(config["mias_cv"]["folds"]),
        ),
        predictions=expand(
            "results/mias_cv/model_{{model}}/fold_{fold}/predictions.tsv",
            fold=range(config["mias_cv"]["folds"]),
        ),
    output:
        metrics="results/mias_cv/model_{model}/metrics.json",
        predictions="results/mias_cv/model_{model}/predictions.tsv",
    log:
        "logs/mias_cv/metrics_{model}.log",
    benchmark:
        "benchmarks/mias_cv/metrics_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
    params:
        settings=lambda wc: {
            **config["mias_cv"],
            "threshold": config["models"][wc.model]["threshold"],
        },
        evaluation=config["evaluation"],
    script:
        "../scripts/mias_cv_metrics.py"


rule score_films_mias_cv:
    """Heatmaps and top regions of one fold's held-out films, every film of its women, scored by that fold's model."""
    input:
        targets=rules.mias_cv_fold.output.films,
        scans=scan_files("mias"),
        mias_rois=rules.index_mias.output.rois,
        model=rules.train_mias_cv.output.model,
        onnx=exported(rules.train_mias_cv.output.model),
        card=rules.evaluate_mias_cv.output.card,
    output:
        scans="results/mias_cv/model_{model}/scans/fold_{fold}.scans.tsv",
        regions="results/mias_cv/model_{model}/scans/fold_{fold}.regions.tsv",
        heatmaps="results/mias_cv/model_{model}/scans/fold_{fold}.heatmaps.npz",
        rejected="results/mias_cv/model_{model}/scans/fold_{fold}.rejected.tsv",
    log:
        "logs/mias_cv/score_films_{model}_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/score_films_{model}_{fold}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 2
    resources:
        mem_mb=2500,
        runtime=60,
    params:
        cbis_root="",
        settings=lambda wc: config["models"][wc.model],
        inference=config["inference"],
        windowing=windowing_settings(),
        chunks=1,
    script:
        "../scripts/score_scans.py"


use rule score_films_mias_cv as score_validation_films_mias_cv with:
    input:
        targets=rules.mias_cv_fold.output.validation_films,
        scans=scan_files("mias"),
        mias_rois=rules.index_mias.output.rois,
        model=rules.train_mias_cv.output.model,
        onnx=exported(rules.train_mias_cv.output.model),
        card=rules.evaluate_mias_cv.output.card,
    output:
        scans="results/mias_cv/model_{model}/fold_{fold}/validation_scans/scans.tsv",
        regions="results/mias_cv/model_{model}/fold_{fold}/validation_scans/regions.tsv",
        heatmaps="results/mias_cv/model_{model}/fold_{fold}/validation_scans/heatmaps.npz",
        rejected="results/mias_cv/model_{model}/fold_{fold}/validation_scans/rejected.tsv",
    log:
        "logs/mias_cv/score_validation_films_{model}_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/score_validation_films_{model}_{fold}.tsv"
    threads: 2


rule film_scores_mias_cv:
    """One fold's film score learnt from its inner-validation women's films (with and without the other breast), and
    its held-out films scored by it and by their maximum window."""
    input:
        validation_scans=rules.score_validation_films_mias_cv.output.scans,
        validation_heatmaps=rules.score_validation_films_mias_cv.output.heatmaps,
        scans=rules.score_films_mias_cv.output.scans,
        heatmaps=rules.score_films_mias_cv.output.heatmaps,
        split=rules.mias_cv_fold.output.split,
    output:
        aggregates="results/mias_cv/model_{model}/fold_{fold}/film_scores.json",
        films="results/mias_cv/model_{model}/scans/fold_{fold}.films.tsv",
    log:
        "logs/mias_cv/film_scores_{model}_{fold}.log",
    benchmark:
        "benchmarks/mias_cv/film_scores_{model}_{fold}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/film_scores.py"


rule mias_cv_scan_metrics:
    """Film-level detection pooled over the folds: ROC-AUC of the maximum window and of the learnt film scores,
    localisation, FROC, worst cases."""
    input:
        scans=expand(
            "results/mias_cv/model_{{model}}/scans/fold_{fold}.scans.tsv",
            fold=range(config["mias_cv"]["folds"]),
        ),
        regions=expand(
            "results/mias_cv/model_{{model}}/scans/fold_{fold}.regions.tsv",
            fold=range(config["mias_cv"]["folds"]),
        ),
        heatmaps=expand(
            "results/mias_cv/model_{{model}}/scans/fold_{fold}.heatmaps.npz",
            fold=range(config["mias_cv"]["folds"]),
        ),
        mias_rois=rules.index_mias.output.rois,
        mias_images=rules.index_mias.output.images,
        films=expand(
            "results/mias_cv/model_{{model}}/scans/fold_{fold}.films.tsv",
            fold=range(config["mias_cv"]["folds"]),
        ),
    output:
        metrics="results/mias_cv/model_{model}/scans/metrics.json",
        froc="results/mias_cv/model_{model}/scans/froc.tsv",
        froc_plot=report(
            "results/mias_cv/model_{model}/scans/froc.png",
            caption="../report/froc.rst",
            category="Whole scans",
            subcategory="mias_cv {model}",
        ),
        cases=report(
            "results/mias_cv/model_{model}/scans/cases.png",
            caption="../report/scan_cases.rst",
            category="Whole scans",
            subcategory="mias_cv {model}",
        ),
    log:
        "logs/mias_cv/scan_metrics_{model}.log",
    benchmark:
        "benchmarks/mias_cv/scan_metrics_{model}.tsv"
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


# The model to take away: the fold rules above with no held-out women. Every woman trains or is in the inner
# validation (drawn as a fold's), which alone stops training, fits the temperature and chooses the thresholds.


use rule mias_cv_fold as mias_final_split with:
    output:
        split="results/mias_final/tiles.tsv",
        summary="results/mias_final/tiles.json",
        validation_films="results/mias_final/validation_films.tsv",
    log:
        "logs/mias_final/split.log",
    benchmark:
        "benchmarks/mias_final/split.tsv"
    threads: 1


use rule records_mias_cv as records_mias_final with:
    input:
        tiles=rules.mias_final_split.output.split,
        arrays=rules.tiles_mias_cv.output.tiles,
    output:
        "results/mias_final/records/{split}-{shard}-of-{shards}.tfrecord",
    log:
        "logs/mias_final/records_{split}-{shard}-of-{shards}.log",
    benchmark:
        "benchmarks/mias_final/records_{split}-{shard}-of-{shards}.tsv"
    threads: 1


use rule context_records_mias_cv as context_records_mias_final with:
    input:
        tiles=rules.mias_final_split.output.split,
        contexts=rules.tiles_mias_cv.output.contexts,
        contexts_table=rules.tiles_mias_cv.output.contexts_table,
    output:
        "results/mias_final/records/lesions-train.tfrecord",
    log:
        "logs/mias_final/context_records.log",
    benchmark:
        "benchmarks/mias_final/context_records.tsv"
    threads: 1


use rule train_mias_cv as train_mias_final with:
    input:
        train=["results/mias_final/records/train-0-of-1.tfrecord"],
        val=["results/mias_final/records/val-0-of-1.tfrecord"],
        lesions=online_crops_input("results/mias_final/records/lesions-train.tfrecord"),
        init=pretrained_input(),
        split=rules.mias_final_split.output.split,
        images=rules.index_mias.output.images,
        rois=rules.index_mias.output.rois,
        scans=mining_input(config["mias_cv"], scan_files("mias")),
    output:
        model="results/mias_final/model_{model}/model.keras",
        history="results/mias_final/model_{model}/history.csv",
        hard_negatives="results/mias_final/model_{model}/hard_negatives.tsv",
        hard_negatives_picture="results/mias_final/model_{model}/hard_negatives.png",
    log:
        "logs/mias_final/train_{model}.log",
    benchmark:
        "benchmarks/mias_final/train_{model}.tsv"
    threads: 2


use rule evaluate_mias_cv as evaluate_mias_final with:
    input:
        model=rules.train_mias_final.output.model,
        onnx=exported(rules.train_mias_final.output.model),
        init=pretrained_input(),
        val=rules.train_mias_final.input.val,
        tiles=[rules.mias_final_split.output.split],
    output:
        metrics="results/mias_final/model_{model}/metrics.json",
        predictions="results/mias_final/model_{model}/predictions.tsv",
        card="results/mias_final/model_{model}/inner_validation/model.json",
        sweep="results/mias_final/model_{model}/thresholds.tsv",
        reliability="results/mias_final/model_{model}/reliability.tsv",
        subgroups="results/mias_final/model_{model}/subgroups.tsv",
    log:
        "logs/mias_final/evaluate_{model}.log",
    benchmark:
        "benchmarks/mias_final/evaluate_{model}.tsv"
    threads: 2


use rule score_films_mias_cv as score_validation_films_mias_final with:
    input:
        targets=rules.mias_final_split.output.validation_films,
        scans=scan_files("mias"),
        mias_rois=rules.index_mias.output.rois,
        model=rules.train_mias_final.output.model,
        onnx=exported(rules.train_mias_final.output.model),
        card=rules.evaluate_mias_final.output.card,
    output:
        scans="results/mias_final/model_{model}/inner_validation/scans.tsv",
        regions="results/mias_final/model_{model}/inner_validation/regions.tsv",
        heatmaps="results/mias_final/model_{model}/inner_validation/heatmaps.npz",
        rejected="results/mias_final/model_{model}/inner_validation/rejected.tsv",
    log:
        "logs/mias_final/score_validation_films_{model}.log",
    benchmark:
        "benchmarks/mias_final/score_validation_films_{model}.tsv"
    threads: 2


rule card_mias_final:
    """The take-away model's card: its evaluation's, with the film score of mias_cv.film_score learnt from its
    inner-validation women's films (every learnt score beside it, film_scores.json)."""
    input:
        card=rules.evaluate_mias_final.output.card,
        validation_scans=rules.score_validation_films_mias_final.output.scans,
        validation_heatmaps=rules.score_validation_films_mias_final.output.heatmaps,
        split=rules.mias_final_split.output.split,
    output:
        card="results/mias_final/model_{model}/model.json",
        aggregates="results/mias_final/model_{model}/film_scores.json",
    log:
        "logs/mias_final/card_{model}.log",
    benchmark:
        "benchmarks/mias_final/card_{model}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        film_score=config["mias_cv"]["film_score"],
    script:
        "../scripts/card_mias_final.py"
