from mammo.runner import run_stage
from mammo.stages.sources import index_mias

output = snakemake.output
run_stage(snakemake.log[0], index_mias, snakemake.input.info, output.images, output.rois, output.rejected, output.summary)
