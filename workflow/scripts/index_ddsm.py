from mammo.runner import run_stage
from mammo.stages import index_ddsm

run_stage(snakemake.log[0], index_ddsm, snakemake.params.root, snakemake.output.scans, snakemake.output.rejected)
