"""Workflow hygiene: snakefmt and snakemake --lint clean, conda pins equal to the package pins."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


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
    package_pins = _pins(project["dependencies"])
    # The workflow engine and its plugins run the rules; they are not needed inside them.
    package_pins = {name: version for name, version in package_pins.items() if not name.startswith("snakemake")}
    environment = yaml.safe_load((ROOT / "envs" / "mammo.yaml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == package_pins
    assert project["requires-python"] == ">=3.11,<3.12"
    assert "python=3.11" in environment["dependencies"]


def test_every_rule_declares_log_benchmark_threads_resources_and_conda():
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        for rule in re.split(r"\n(?=\s*rule )", text):
            if not re.match(r"\s*rule ", rule):
                continue
            name = re.match(r"\s*rule (\w+)", rule).group(1)
            for directive in ("log:", "benchmark:", "threads:", "resources:", "conda:"):
                assert directive in rule, f"{path.name}: rule {name} lacks {directive}"
