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
include: "workflow/rules/crossval.smk"
include: "workflow/rules/scans.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/uci.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        FINAL_OUTPUTS,
        "results/tables/benchmarks.md",
