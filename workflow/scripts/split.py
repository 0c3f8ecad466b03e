from mammo.runner import run_stage
from mammo.stages.tiles import split_dataset

inputs = snakemake.input
run_stage(
    snakemake.log[0],
    split_dataset,
    list(inputs.tables),
    [*inputs.rejected, inputs.cbis_rejected, inputs.ddsm_rejected],
    {"cbis_rois": inputs.cbis_rois, "ddsm_scans": inputs.ddsm_scans},
    snakemake.params.recipe,
    snakemake.output.tiles,
    snakemake.output.audit,
    snakemake.output.rejected,
    snakemake.output.summary,
)
