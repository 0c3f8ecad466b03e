from mammo.runner import logged

params, output = snakemake.params, snakemake.output
with logged(snakemake.log[0], "analyse_scan"):
    from mammo.heatmap import Windowing
    from mammo.stages.scans import analyse_scan

    analyse_scan(
        snakemake.input.scan,
        snakemake.input.model,
        params.out_dir,
        Windowing(**params.windowing),
        {**params.inference, "threads": snakemake.threads},
        stem=snakemake.wildcards.name,
    )
