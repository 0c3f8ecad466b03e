from mammo.runner import logged

with logged(snakemake.log[0], "comparison_tables"):
    from pathlib import Path

    from mammo.stages.report import comparison_tables

    comparison_tables(
        list(snakemake.input.metrics),
        list(snakemake.input.shortcuts),
        snakemake.params.runs,
        str(Path(snakemake.output.markdown[0]).parent),
    )
