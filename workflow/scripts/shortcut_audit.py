from mammo.runner import run_stage
from mammo.stages.report import shortcut_audit

run_stage(
    snakemake.log[0],
    shortcut_audit,
    snakemake.input.model,
    snakemake.input.tiles,
    snakemake.input.audit,
    {**snakemake.params.settings, "threads": snakemake.threads},
    snakemake.params.evaluation,
    snakemake.output.result,
    snakemake.output.plot,
)
