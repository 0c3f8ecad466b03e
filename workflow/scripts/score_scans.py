from mammo.runner import logged

inputs, params, output = snakemake.input, snakemake.params, snakemake.output
with logged(snakemake.log[0], "score_scans"):
    from mammo.stages.scans import score_scans

    lesions = ("_rois", "_images", "_findings")
    score_scans(
        inputs.targets,
        {key: inputs[key] for key in inputs.keys() if key.endswith(lesions)},
        params.cbis_root,
        inputs.model,
        {**params.settings, "threads": snakemake.threads},
        params.inference,
        params.windowing,
        int(snakemake.wildcards.get("chunk", 0)),
        params.chunks,
        output.scans,
        output.regions,
        output.heatmaps,
        output.rejected,
        inputs.card,
    )
