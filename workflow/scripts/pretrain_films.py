from mammo.runner import logged

with logged(snakemake.log[0], "generate_mias"):
    from mammo.demo.collections import DemoSpec, generate_mias

    films = generate_mias(snakemake.params.root, DemoSpec(seed=snakemake.params.seed, mias_images=snakemake.params.films))
    print(f"{films} demo mini-MIAS films in {snakemake.params.root}")
