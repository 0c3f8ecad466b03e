from mammo.runner import run_stage
from mammo.stages import index_cbis

run_stage(snakemake.log[0], index_cbis, list(snakemake.input.csvs), snakemake.output.rois, snakemake.output.rejected)
