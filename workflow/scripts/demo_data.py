from mammo.runner import logged

with logged(snakemake.log[0], "generate"):
    from mammo.demo.collections import DemoSpec, generate

    spec = DemoSpec(**snakemake.params.demo)
    params = snakemake.params
    generate(*params.roots, spec, workers=snakemake.threads, vindr_root=params.vindr_root, own_root=params.own_root)
