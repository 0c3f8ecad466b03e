# Synthetic pre-training of the mias_cv recipe (mias_cv.pretrain): the recipe's own tiles, split and training on
# generated mini-MIAS films (the fold rules with no woman held out), once per version of what it depends on (the
# films' count and seed, the recipe's tiling, the model entry); every fold's model, and the final model, then start
# from its weights. Versioned by path: other films or another seed make another folder, and an earlier one stays.


rule pretrain_films:
    """Demo mini-MIAS films for pre-training, in the official layout (Info.txt and mdbNNN.pgm), seeded."""
    output:
        info=f"{PRETRAIN_FILMS}/Info.txt",
    log:
        f"logs/{PRETRAIN_NAME}/films.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/films.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        root=lambda wildcards, output: os.path.dirname(output.info),
        films=config["mias_cv"]["pretrain"]["films"],
        seed=config["mias_cv"]["pretrain"]["seed"],
    script:
        "../scripts/pretrain_films.py"


use rule index_mias as index_pretrain_films with:
    input:
        info=rules.pretrain_films.output.info,
    output:
        images=f"{PRETRAIN}/sources/images.tsv",
        rois=f"{PRETRAIN}/sources/rois.tsv",
        rejected=f"{PRETRAIN}/sources/rejected.tsv",
        summary=f"{PRETRAIN}/sources/summary.json",
    log:
        f"logs/{PRETRAIN_NAME}/index.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/index.tsv"
    threads: 1


use rule tiles_mias_cv as tiles_pretrain with:
    input:
        images=rules.index_pretrain_films.output.images,
        rois=rules.index_pretrain_films.output.rois,
        scans=[rules.pretrain_films.output.info],
    output:
        tiles=f"{PRETRAIN}/tiles.npy",
        table=f"{PRETRAIN}/tiles.tsv",
        rejected=f"{PRETRAIN}/rejected.tsv",
        summary=f"{PRETRAIN}/summary.json",
        contexts=f"{PRETRAIN}/lesion_contexts.npy",
        contexts_table=f"{PRETRAIN}/lesion_contexts.tsv",
    log:
        f"logs/{PRETRAIN_NAME}/tiles.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/tiles.tsv"
    threads: 1
    params:
        settings=tiling_recipe(pretrain_recipe()),
        scans=config["scans"],


use rule mias_cv_fold as pretrain_split with:
    input:
        tiles=rules.tiles_pretrain.output.table,
        images=rules.index_pretrain_films.output.images,
    output:
        split=f"{PRETRAIN}/split.tsv",
        summary=f"{PRETRAIN}/split.json",
    log:
        f"logs/{PRETRAIN_NAME}/split.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/split.tsv"
    threads: 1
    params:
        settings=pretrain_recipe(),


use rule records_mias_cv as records_pretrain with:
    input:
        tiles=rules.pretrain_split.output.split,
        arrays=rules.tiles_pretrain.output.tiles,
    output:
        f"{PRETRAIN}/records/{{split}}-{{shard}}-of-{{shards}}.tfrecord",
    log:
        f"logs/{PRETRAIN_NAME}/records_{{split}}-{{shard}}-of-{{shards}}.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/records_{{split}}-{{shard}}-of-{{shards}}.tsv"
    threads: 1


use rule context_records_mias_cv as context_records_pretrain with:
    input:
        tiles=rules.pretrain_split.output.split,
        contexts=rules.tiles_pretrain.output.contexts,
        contexts_table=rules.tiles_pretrain.output.contexts_table,
    output:
        f"{PRETRAIN}/records/lesions-train.tfrecord",
    log:
        f"logs/{PRETRAIN_NAME}/context_records.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/context_records.tsv"
    threads: 1


use rule train_mias_cv as train_pretrain with:
    input:
        train=[f"{PRETRAIN}/records/train-0-of-1.tfrecord"],
        val=[f"{PRETRAIN}/records/val-0-of-1.tfrecord"],
        lesions=online_crops_input(f"{PRETRAIN}/records/lesions-train.tfrecord"),
        split=rules.pretrain_split.output.split,
        images=rules.index_pretrain_films.output.images,
        rois=rules.index_pretrain_films.output.rois,
        scans=mining_input(pretrain_recipe(), [rules.pretrain_films.output.info]),
        init=[],
    output:
        model=f"{PRETRAIN}/model_{{model}}/model.keras",
        history=f"{PRETRAIN}/model_{{model}}/history.csv",
        hard_negatives=f"{PRETRAIN}/model_{{model}}/hard_negatives.tsv",
        hard_negatives_picture=f"{PRETRAIN}/model_{{model}}/hard_negatives.png",
    log:
        f"logs/{PRETRAIN_NAME}/train_{{model}}.log",
    benchmark:
        f"benchmarks/{PRETRAIN_NAME}/train_{{model}}.tsv"
    threads: 2
    params:
        settings=lambda wc: {
            **config["models"][wc.model],
            **epoch_draws(pretrain_recipe()),
            "epochs": config["mias_cv"]["pretrain"]["epochs"],
            "average_last": 0,  # weight averaging is the real-film training's, not the pre-training's
        },
        out_dir=lambda wc, output: os.path.dirname(output.model),
        mining={"recipe": pretrain_recipe(), "scans": windowing_settings()},
