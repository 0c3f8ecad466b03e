from mammo.runner import logged

with logged(snakemake.log[0], "generate"):
    from mammo.demo.collections import DemoSpec, generate

    spec = DemoSpec(**snakemake.params.demo)
    generate(*snakemake.params.roots, spec, workers=snakemake.threads, vindr_root=snakemake.params.vindr_root)
