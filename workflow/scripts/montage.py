from mammo.runner import run_stage
from mammo.stages.tiles import plot_montage

run_stage(snakemake.log[0], plot_montage, list(snakemake.input.tables), snakemake.params.seed, snakemake.output[0])
