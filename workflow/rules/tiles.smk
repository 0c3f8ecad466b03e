rule tiles_cbis:
    """The recipe's ROI extraction for the CBIS-DDSM ROIs of one chunk of scans, lesion-free tiles of the same scans,
    and each scan's fingerprint (the same film in DDSM is found by it)."""
    input:
        rois=rules.index_cbis.output.rois,
        scans=scan_files("cbis"),
    output:
        tiles="results/{dataset}/tiles/cbis_{chunk}.npy",
        table="results/{dataset}/tiles/cbis_{chunk}.tsv",
        rejected="results/{dataset}/tiles/cbis_{chunk}.rejected.tsv",
        fingerprints="results/{dataset}/tiles/cbis_{chunk}.fingerprints.tsv",
    log:
        "logs/{dataset}/tiles_cbis_{chunk}.log",
    cache: True  # between workflows (--cache); Snakemake allows no benchmark: here, the stage writes one
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=lambda wc: wc.dataset,  # part of the cache key: cached tiles name their dataset
        benchmark=lambda wc: f"benchmarks/{wc.dataset}/tiles_cbis_{wc.chunk}.tsv",
        root=config["data"]["cbis_ddsm"],
        recipe=lambda wc: recipe_part(wc.dataset, "roi", "cbis_background"),
        audit=config["evaluation"]["shortcut"]["tiles"],
        chunks=config["chunks"],
    script:
        "../scripts/tiles_cbis.py"


rule tiles_ddsm_abnormal:
    """The same ROI extraction for the outlines of one chunk of DDSM abnormal cases (recipes with abnormal ddsm or
    both), lesion-free tiles of the same scans, and each scan's fingerprint."""
    input:
        rois=rules.index_ddsm_abnormal.output.rois,
        scans=scan_files("ddsm_abnormal"),
    output:
        tiles="results/{dataset}/tiles/ddsm_abnormal_{chunk}.npy",
        table="results/{dataset}/tiles/ddsm_abnormal_{chunk}.tsv",
        rejected="results/{dataset}/tiles/ddsm_abnormal_{chunk}.rejected.tsv",
        fingerprints="results/{dataset}/tiles/ddsm_abnormal_{chunk}.fingerprints.tsv",
    log:
        "logs/{dataset}/tiles_ddsm_abnormal_{chunk}.log",
    cache: True  # between workflows (--cache); Snakemake allows no benchmark: here, the stage writes one
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=lambda wc: wc.dataset,  # part of the cache key: cached tiles name their dataset
        benchmark=lambda wc: f"benchmarks/{wc.dataset}/tiles_ddsm_abnormal_{wc.chunk}.tsv",
        recipe=lambda wc: recipe_part(wc.dataset, "roi", "cbis_background"),
        audit=config["evaluation"]["shortcut"]["tiles"],
        chunks=config["chunks"],
    script:
        "../scripts/tiles_ddsm_abnormal.py"


rule tiles_listed:
    """One chunk of the patients of a listed collection (VinDr-Mammo, a user's own CSV; recipes with abnormal vindr or
    own): located findings through the same ROI extraction, lesion-free tiles of their images, the tissue grid of the
    normal images, at the CBIS-DDSM scale."""
    input:
        images="results/sources/{listed}/images.tsv",
        findings="results/sources/{listed}/findings.tsv",
        scans=scan_files("listed"),
    output:
        tiles="results/{dataset}/tiles/{listed}_{chunk}.npy",
        table="results/{dataset}/tiles/{listed}_{chunk}.tsv",
        rejected="results/{dataset}/tiles/{listed}_{chunk}.rejected.tsv",
        fingerprints="results/{dataset}/tiles/{listed}_{chunk}.fingerprints.tsv",
    log:
        "logs/{dataset}/tiles_{listed}_{chunk}.log",
    cache: True  # between workflows (--cache); Snakemake allows no benchmark: here, the stage writes one
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        dataset=lambda wc: wc.dataset,  # part of the cache key: cached tiles name their dataset
        benchmark=lambda wc: f"benchmarks/{wc.dataset}/tiles_{wc.listed}_{wc.chunk}.tsv",
        recipe=lambda wc: recipe_part(wc.dataset, "roi", "normals", "cbis_background"),
        audit=config["evaluation"]["shortcut"]["tiles"],
        chunks=config["chunks"],
    script:
        "../scripts/tiles_listed.py"


rule tiles_ddsm:
    """Normal-tissue tiles of one chunk of DDSM normal cases."""
    input:
        scans=rules.index_ddsm.output.scans,
        images=scan_files("ddsm"),
    output:
        tiles="results/{dataset}/tiles/ddsm_{chunk}.npy",
        table="results/{dataset}/tiles/ddsm_{chunk}.tsv",
        rejected="results/{dataset}/tiles/ddsm_{chunk}.rejected.tsv",
    log:
        "logs/{dataset}/tiles_ddsm_{chunk}.log",
    cache: True  # between workflows (--cache); Snakemake allows no benchmark: here, the stage writes one
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=lambda wc: wc.dataset,  # part of the cache key: cached tiles name their dataset
        benchmark=lambda wc: f"benchmarks/{wc.dataset}/tiles_ddsm_{wc.chunk}.tsv",
        recipe=lambda wc: recipe_part(wc.dataset, "normals"),
        chunks=config["chunks"],
    script:
        "../scripts/tiles_ddsm.py"


rule tiles_mias:
    """The recipe's external test set: mini-MIAS upscaled to the CBIS scale, ROIs and normal scans tiled."""
    input:
        images=rules.index_mias.output.images,
        rois=rules.index_mias.output.rois,
        scans=scan_files("mias"),
    output:
        tiles="results/{dataset}/mias/tiles.npy",
        table="results/{dataset}/mias/tiles.tsv",
        rejected="results/{dataset}/mias/rejected.tsv",
        summary="results/{dataset}/mias/summary.json",
    log:
        "logs/{dataset}/tiles_mias.log",
    cache: True  # between workflows (--cache); Snakemake allows no benchmark: here, the stage writes one
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        dataset=lambda wc: wc.dataset,  # part of the cache key: cached tiles name their dataset
        benchmark=lambda wc: f"benchmarks/{wc.dataset}/tiles_mias.tsv",
        recipe=lambda wc: recipe_part(wc.dataset, "roi", "mias"),
    script:
        "../scripts/tiles_mias.py"


rule split:
    """Patient-level train/val/test split (one woman in both abnormal sources: one patient), class balance,
    reconciliation of every input."""
    input:
        unpack(split_inputs),
    output:
        tiles="results/{dataset}/tiles.tsv",
        audit="results/{dataset}/audit_tiles.tsv",
        rejected="results/{dataset}/rejected.tsv",
        same_films="results/{dataset}/same_films.tsv",
        summary="results/{dataset}/summary.json",
    log:
        "logs/{dataset}/split.log",
    benchmark:
        "benchmarks/{dataset}/split.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        recipe=lambda wc: recipe_part(wc.dataset, "abnormal", "abnormal_fraction"),
    script:
        "../scripts/split.py"


rule montage:
    """Random tiles per class and split (the MIAS test set included), for visual review."""
    input:
        tables=[rules.split.output.tiles, rules.tiles_mias.output.table],
        arrays=lambda wc: chunk_outputs(wc.dataset, "npy"),
        mias=rules.tiles_mias.output.tiles,
    output:
        report(
            "results/{dataset}/montage.png",
            caption="../report/montage.rst",
            category="Datasets",
            subcategory="{dataset}",
        ),
    log:
        "logs/{dataset}/montage.log",
    benchmark:
        "benchmarks/{dataset}/montage.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seed=lambda wc: config["datasets"][wc.dataset]["seed"],
    script:
        "../scripts/montage.py"


rule collections_montage:
    """Normal and abnormal tiles of every collection side by side (one recipe per ROI source, the mini-MIAS set): how
    each collection's intensities come to the shared 8-bit tile space."""
    input:
        tables=lambda wc: collection_tables(),
        arrays=lambda wc: [
            array
            for dataset in collection_recipes()
            for array in chunk_outputs(dataset, "npy")
        ],
        mias=lambda wc: f"results/{collection_recipes()[0]}/mias/tiles.npy",
    output:
        report(
            "results/collections/montage.png",
            caption="../report/collections.rst",
            category="Datasets",
            subcategory="collections",
        ),
    log:
        "logs/collections_montage.log",
    benchmark:
        "benchmarks/collections_montage.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seed=0,
    script:
        "../scripts/collections_montage.py"
