"""Run the project's workflow in a scratch folder, as the workflow and SLURM tests do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from stand_in_model import LIGHT_MODEL

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TINY = ("config/config.yaml", "config/tiny.yaml")  # the tests' run: the tiny overlay merged over the default config


def tiny_config(root: Path = ROOT) -> dict:
    """The tiny run's whole config, merged as Snakemake merges --configfile A B (to derive a test's own config)."""
    import copy

    import yaml
    from snakemake.utils import update_config

    config = copy.deepcopy(yaml.safe_load((root / TINY[0]).read_text()))
    update_config(config, yaml.safe_load((root / TINY[1]).read_text()))
    return config


def write_config(workdir: Path, name: str, config: dict) -> str:
    """A config (whole, or an overlay) written as workdir's config/<name>.yaml: its path for --configfile."""
    import yaml

    (workdir / "config" / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return f"config/{name}.yaml"


def light_config(workdir: Path) -> str:
    """The tiny run's config with a LIGHT_MODEL entry (the tiny run's training settings on the light network), written
    into workdir's config/ (write_config)."""
    config = tiny_config()
    config["models"][LIGHT_MODEL] = {**config["models"]["1.0.0.35"], "model": LIGHT_MODEL}
    return write_config(workdir, "light", config)


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None, project: Path = ROOT
) -> subprocess.CompletedProcess:
    """Run the workflow (of `project`) in workdir; give targets first (options such as --configfile take several values)."""
    command = [str(SNAKEMAKE), "--snakefile", str(project / "workflow" / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


def job_counts(plan: str) -> dict[str, int]:
    """Rule -> job count from the first table of `snakemake -n --quiet rules`."""
    table = plan.split("Job stats:")[1].split("total")[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def tiny_workdir(tmp_path_factory, name: str, target: str) -> Path:
    """A scratch folder with the project's configs in which `target` was made locally from config/tiny.yaml."""
    workdir = tmp_path_factory.mktemp(name)
    shutil.copytree(ROOT / "config", workdir / "config")
    snakemake(workdir, target, "--cores", "2", "--configfile", *TINY)
    return workdir
