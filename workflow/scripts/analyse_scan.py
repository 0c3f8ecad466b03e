from mammo.heatmap import Windowing
from mammo.runner import run_stage
from mammo.stages.scans import analyse_scan

params, output = snakemake.params, snakemake.output
run_stage(
    snakemake.log[0],
    analyse_scan,
    snakemake.input.scan,
    snakemake.input.model,
    params.out_dir,
    Windowing(**params.windowing),
    stem=snakemake.wildcards.name,
)
