from pathlib import Path

from mammo.runner import run_stage
from mammo.stages.report import comparison_tables

run_stage(
    snakemake.log[0],
    comparison_tables,
    list(snakemake.input.metrics),
    list(snakemake.input.shortcuts),
    snakemake.params.runs,
    str(Path(snakemake.output.markdown[0]).parent),
)
