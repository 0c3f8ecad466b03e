# mammoflow: native mammography collections -> tiles -> TFRecords -> ConvNets -> metrics.
from snakemake.utils import min_version, validate

min_version("9.0")


# A config file given with --configfile replaces the default instead of being merged into it, so a
# recipe or model left out of that file is left out of the run (--config values apply either way).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/tiles.smk"
include: "workflow/rules/records.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/scans.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/uci.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        expand(
            "results/{dataset}/model_{model}/{name}",
            dataset=list(config["datasets"]),
            model=list(config["models"]),
            name=[
                "metrics.json",
                "training_curves.png",
                "roc_pr.png",
                "reliability.png",
                "thresholds.png",
                "confusion.png",
                "errors.png",
                "shortcut.png",
                "scans/metrics.json",
            ],
        ),
        expand("results/{dataset}/montage.png", dataset=list(config["datasets"])),
        "results/uci/metrics.json",
        expand("results/tables/{table}.md", table=STUDY_TABLES),
