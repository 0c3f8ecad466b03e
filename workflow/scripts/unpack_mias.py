from mammo.runner import run_stage
from mammo.stages.sources import unpack_mias

run_stage(snakemake.log[0], unpack_mias, snakemake.input[0], snakemake.output.info)
