checkpoint index_cbis:
    """One table of CBIS-DDSM ROIs from the four case description CSVs (bad rows to the rejected table)."""
    input:
        csvs=lambda wc: cbis_csvs(),
    output:
        rois="results/sources/cbis/rois.tsv",
        rejected="results/sources/cbis/rejected.tsv",
        summary="results/sources/cbis/summary.json",
    log:
        "logs/sources/index_cbis.log",
    benchmark:
        "benchmarks/sources/index_cbis.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../scripts/index_cbis.py"


checkpoint index_ddsm:
    """One row per DDSM normal scan listed in the .ics headers."""
    input:
        lambda wc: ddsm_inputs(),
    output:
        scans="results/sources/ddsm/scans.tsv",
        rejected="results/sources/ddsm/rejected.tsv",
        summary="results/sources/ddsm/summary.json",
    log:
        "logs/sources/index_ddsm.log",
    benchmark:
        "benchmarks/sources/index_ddsm.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        root=lambda wildcards: config["data"]["ddsm"],
    script:
        "../scripts/index_ddsm.py"


checkpoint index_ddsm_abnormal:
    """One row per abnormality outlined in DDSM's .OVERLAY files (cases/cancers, benigns, benign_without_callbacks)."""
    input:
        lambda wc: ddsm_inputs(),
    output:
        rois="results/sources/ddsm_abnormal/rois.tsv",
        rejected="results/sources/ddsm_abnormal/rejected.tsv",
        summary="results/sources/ddsm_abnormal/summary.json",
    log:
        "logs/sources/index_ddsm_abnormal.log",
    benchmark:
        "benchmarks/sources/index_ddsm_abnormal.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        root=lambda wildcards: config["data"]["ddsm"],
    script:
        "../scripts/index_ddsm_abnormal.py"


checkpoint index_listed:
    """One row per image of a listed collection (VinDr-Mammo: data.vindr; your own CSV: data.own) and per located
    finding; a study (VinDr-Mammo) or a woman is the patient, an official split is kept.
    """
    input:
        lambda wc: listed_inputs(wc.listed),
    output:
        images="results/sources/{listed}/images.tsv",
        findings="results/sources/{listed}/findings.tsv",
        rejected="results/sources/{listed}/rejected.tsv",
        summary="results/sources/{listed}/summary.json",
    log:
        "logs/sources/index_{listed}.log",
    benchmark:
        "benchmarks/sources/index_{listed}.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        root=lambda wc: data_root(wc.listed),
    script:
        "../scripts/index_listed.py"


if is_archive(config["data"]["mias"]):

    rule unpack_mias:
        """The official mini-MIAS archive unpacked once (checked: complete, every Info.txt film present, no path escaping)."""
        input:
            config["data"]["mias"],
        output:
            info=mias_info(checked=False),
        log:
            "logs/sources/unpack_mias.log",
        benchmark:
            "benchmarks/sources/unpack_mias.tsv"
        conda:
            "../../envs/mammo.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=10,
        script:
            "../scripts/unpack_mias.py"


checkpoint index_mias:
    """Image-level labels and ROIs from mini-MIAS Info.txt (rows without coordinates to the rejected table)."""
    input:
        info=lambda wc: mias_info(),
    output:
        images="results/sources/mias/images.tsv",
        rois="results/sources/mias/rois.tsv",
        rejected="results/sources/mias/rejected.tsv",
        summary="results/sources/mias/summary.json",
    log:
        "logs/sources/index_mias.log",
    benchmark:
        "benchmarks/sources/index_mias.tsv"
    conda:
        "../../envs/mammo.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../scripts/index_mias.py"
