from mammo.runner import run_stage
from mammo.stages.sources import index_cbis

output = snakemake.output
run_stage(snakemake.log[0], index_cbis, list(snakemake.input.csvs), output.rois, output.rejected, output.summary)
