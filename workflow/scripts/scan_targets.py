from mammo.runner import logged

inputs, params = snakemake.input, snakemake.params
with logged(snakemake.log[0], "list_scan_targets"):
    from mammo.stages.scans import list_scan_targets

    list_scan_targets(dict(inputs.items()), params.cbis_root, params.mias_scale, snakemake.output[0])
