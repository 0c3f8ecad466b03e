"""What a release and the workflow catalog read: one version everywhere, a changelog entry for it, the CI workflow
running the same checks as here, the catalog's usage file."""

from __future__ import annotations

import re
import tomllib

import yaml
from snakemake_run import ROOT

import mammo


def test_one_version_everywhere_with_a_changelog_entry():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert mammo.__version__ == version
    entries = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    released = entries[1:] if entries[0] == "Unreleased" else entries  # changes since the release: above it
    assert released[0] == version, "the newest released CHANGELOG entry names the package version"


def test_ci_workflow_runs_lint_and_the_test_command_on_python_311():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers and "pull_request" in triggers
    steps = {name: job["steps"] for name, job in workflow["jobs"].items()}
    commands = {name: " ".join(step.get("run", "") for step in job) for name, job in steps.items()}
    assert "make lint" in commands["lint"] and ".ci/run" in commands["test"]
    for job in steps.values():
        versions = [step["with"]["python-version"] for step in job if "setup-python" in step.get("uses", "")]
        assert versions == ["3.11"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # the README's test command
    assert workflow["jobs"]["test"]["timeout-minutes"] <= 90


def test_catalog_usage_file():
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert (ROOT / "config" / "README.md").is_file() and "config/README.md" in usage["mandatory-flags"]["desc"]
