from mammo.runner import run_stage
from mammo.stages import score_scans

inputs, params, output = snakemake.input, snakemake.params, snakemake.output
run_stage(
    snakemake.log[0],
    score_scans,
    inputs.targets,
    inputs.cbis_rois,
    inputs.mias_rois,
    params.cbis_root,
    inputs.model,
    {**params.settings, "threads": snakemake.threads},
    params.windowing,
    int(snakemake.wildcards.chunk),
    params.chunks,
    output.scans,
    output.regions,
    output.heatmaps,
    output.rejected,
)
