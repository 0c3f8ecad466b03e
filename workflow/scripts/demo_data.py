from mammo.demo.collections import DemoSpec, generate
from mammo.runner import run_stage

run_stage(
    snakemake.log[0],
    generate,
    *snakemake.params.roots,
    DemoSpec(**snakemake.params.demo),
    workers=snakemake.threads,
)
