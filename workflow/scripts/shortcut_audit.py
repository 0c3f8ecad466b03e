from mammo.runner import logged

with logged(snakemake.log[0], "shortcut_audit"):
    from mammo.stages.report import shortcut_audit

    shortcut_audit(
        snakemake.input.model,
        snakemake.input.tiles,
        snakemake.input.audit,
        {**snakemake.params.settings, "threads": snakemake.threads},
        snakemake.params.evaluation,
        snakemake.params.inference,
        snakemake.output.result,
        snakemake.output.plot,
    )
