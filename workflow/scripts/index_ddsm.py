from mammo.runner import run_stage
from mammo.stages.sources import index_ddsm

output = snakemake.output
run_stage(snakemake.log[0], index_ddsm, snakemake.params.root, output.scans, output.rejected, output.summary)
