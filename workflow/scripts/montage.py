from mammo.runner import run_stage
from mammo.stages import plot_montage

run_stage(snakemake.log[0], plot_montage, snakemake.input.tiles, snakemake.params.seed, snakemake.output[0])
