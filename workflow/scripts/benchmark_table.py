from mammo.runner import run_stage
from mammo.stages.report import benchmark_table

run_stage(
    snakemake.log[0],
    benchmark_table,
    snakemake.params.folder,
    snakemake.output.table,
    snakemake.output.markdown,
)
