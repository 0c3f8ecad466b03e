from mammo.runner import logged

with logged(snakemake.log[0], "generate"):
    from mammo.demo.collections import DemoSpec, generate

    generate(*snakemake.params.roots, DemoSpec(**snakemake.params.demo), workers=snakemake.threads)
