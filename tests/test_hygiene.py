"""Workflow hygiene: ruff, snakefmt and snakemake --lint clean, conda pins equal to the package pins."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_ruff_check_and_format_are_clean():
    """No unused or undefined name, imports in order, the code as the formatter lays it out (pyproject.toml, [tool.ruff])."""
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(BIN / "ruff"), *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_snakefmt_check_is_clean():
    result = subprocess.run([str(BIN / "snakefmt"), "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def test_snakemake_lint_is_clean():
    result = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Congratulations" in result.stdout + result.stderr


def _pins(requirements) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, version = re.fullmatch(r"([A-Za-z0-9_.\[\]-]+)==(\S+)", requirement).groups()
        pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_conda_environment_pins_mirror_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    package_pins = _pins(project["dependencies"] + project["optional-dependencies"]["workflow"])
    # The workflow engine and its plugins run the rules; they are not needed inside them.
    package_pins = {name: version for name, version in package_pins.items() if not name.startswith("snakemake")}
    environment = yaml.safe_load((ROOT / "envs" / "mammo.yaml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == package_pins
    assert project["requires-python"] == ">=3.11,<3.12"
    assert "python=3.11" in environment["dependencies"]


PARSED_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings, StorageSettings

snakefile, root = Path(sys.argv[1]), Path(sys.argv[2])

def path_of(rule):
    # a rule made by `use rule ... with:` names its file as a source-file object, not as a path
    return rule.snakefile if isinstance(rule.snakefile, str) else rule.snakefile.get_path_or_uri(secret_free=True)

with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                            snakefile=snakefile, workdir=root)._workflow
    print(json.dumps([{"name": rule.name, "checkpoint": rule.is_checkpoint, "log": bool(rule.log),
                       "benchmark": bool(rule.benchmark), "conda": bool(rule.conda_env),
                       "cached": bool(rule.cache), "params": list(rule.params._names),
                       "resources": sorted(name for name in rule.resources if not name.startswith("_")),
                       "file": path_of(rule), "line": workflow.linemaps[path_of(rule)][rule.lineno]}
                      for rule in workflow.rules]))
"""


def parsed_rules(snakefile: Path = ROOT / "workflow" / "Snakefile", root: Path = ROOT) -> list[dict]:
    """Every rule and checkpoint as Snakemake itself parses the workflow (not a text search of the rule files)."""
    result = subprocess.run(
        [sys.executable, "-c", PARSED_RULES, str(snakefile), str(root)], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def declares(rule: dict, directive: str) -> bool:
    """Whether the rule's own block (from its line to the next unindented line) has `directive` as a directive."""
    lines = Path(rule["file"]).read_text().splitlines()[rule["line"] :]
    block = []
    for line in lines:
        if line and not line[0].isspace():
            break
        block.append(line)
    return any(re.match(rf"\s+{directive}:", line) for line in block)


def undeclared(rules: list[dict]) -> list[str]:
    """Rules or checkpoints lacking log, benchmark, conda, resources (mem_mb, runtime) or threads, with what they lack."""
    problems = []
    for rule in rules:
        if rule["name"] == "all":
            continue  # the default target only names files
        where = f"{Path(rule['file']).name}:{rule['line']}: {'checkpoint' if rule['checkpoint'] else 'rule'} {rule['name']}"
        # Snakemake refuses benchmark: on a rule cached between workflows; those stages write it themselves
        lacks = [
            name
            for name, ok in (
                ("log", rule["log"]),
                ("conda", rule["conda"]),
                ("benchmark", rule["benchmark"] or (rule["cached"] and "benchmark" in rule["params"])),
                ("resources", {"mem_mb", "runtime"} <= set(rule["resources"])),
                ("threads", declares(rule, "threads")),
            )
            if not ok
        ]
        problems += [f"{where} lacks {name}" for name in lacks]
    return problems


def test_every_rule_and_checkpoint_declares_log_benchmark_threads_resources_and_conda():
    rules = parsed_rules()
    assert len(rules) >= 25 and sum(rule["checkpoint"] for rule in rules) >= 4
    assert undeclared(rules) == []


def test_the_check_finds_a_checkpoint_without_log(tmp_path):
    """A fixture workflow: one complete rule, one checkpoint without log: (a regex over `rule ` would not see it)."""
    (tmp_path / "env.yaml").write_text("dependencies: [python=3.11]\n")
    block = """
    output: "{name}.txt"
    benchmark: "{name}.bench"
    conda: "env.yaml"
    threads: 1
    resources:
        mem_mb=10,
        runtime=1,
    shell: "touch {{output}}"
"""
    complete = "rule complete:" + block.format(name="a").replace("    output:", '    log: "a.log"\n    output:', 1)
    (tmp_path / "Snakefile").write_text(complete + "\n\ncheckpoint unlogged:" + block.format(name="b"))
    rules = parsed_rules(tmp_path / "Snakefile", tmp_path)
    assert {rule["name"] for rule in rules} == {"complete", "unlogged"}
    assert undeclared(rules) == ["Snakefile:13: checkpoint unlogged lacks log"]


def test_stage_modules_leave_libraries_that_few_of_their_jobs_need_to_those_jobs():
    """Every Snakemake job imports its stage module: TensorFlow and Keras (seconds), Matplotlib and SciPy's optimiser
    (about half a second each) are imported by the functions that use them (training and export; plots; the
    temperature fit), so that the many tiling, scoring and evaluation jobs do not pay for them."""
    heavy = ("tensorflow", "keras", "matplotlib", "scipy.optimize")
    modules = ("sources", "tiles", "records", "train", "scans", "crossval")
    code = f"import sys; import {', '.join(f'mammo.stages.{module}' for module in modules)}; print(sorted(set({heavy}) & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
