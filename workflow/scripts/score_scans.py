from mammo.runner import run_stage
from mammo.stages.scans import score_scans

inputs, params, output = snakemake.input, snakemake.params, snakemake.output
run_stage(
    snakemake.log[0],
    score_scans,
    inputs.targets,
    getattr(inputs, "cbis_rois", None),  # mias_cv scores mini-MIAS films only
    inputs.mias_rois,
    params.cbis_root,
    inputs.model,
    {**params.settings, "threads": snakemake.threads},
    params.windowing,
    int(snakemake.wildcards.get("chunk", 0)),
    params.chunks,
    output.scans,
    output.regions,
    output.heatmaps,
    output.rejected,
)
