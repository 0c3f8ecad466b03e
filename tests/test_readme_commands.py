"""Every command line of the shell blocks of the README and the documentation pages (docs/*.md) runs as written (as a
dry run): a wrong option order or a config that does not resolve fails here, not on a user's fresh checkout."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
from snakemake_run import ROOT, SNAKEMAKE

BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def documented_pages() -> list:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """Shell lines of the README and docs pages (comments dropped) that start the workflow: `make run ...` or
    `.venv/bin/snakemake ...`, each after the `export`s of its block."""
    lines = []
    blocks = [block for page in documented_pages() for block in BLOCK.findall(page.read_text())]
    for block in blocks:
        exports = []
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command.startswith("# the same: "):
                command = command.removeprefix("# the same: ")
            if command.startswith("export "):
                exports.append(command.removeprefix("export "))
            if command.startswith(("make run", ".venv/bin/snakemake")):
                lines.append(" ".join([*exports, command]))
    return list(dict.fromkeys(lines))  # a command shown on two pages is checked once


def test_the_readme_has_commands_to_check():
    commands = readme_commands()
    assert any(c.startswith("make run") for c in commands) and any(c.startswith(".venv/bin/snakemake") for c in commands)
    assert any("profiles/slurm" in c for c in commands)  # a docs page's (running.md), not only the README's


def snakemake_line(command: str) -> list[str]:
    """The snakemake command a README line runs: itself, or what `make` would run for it."""
    if command.startswith("make run"):
        shown = subprocess.run(
            ["make", "-n", "-s", *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True, check=True
        )
        command = [line for line in shown.stdout.splitlines() if "bin/snakemake" in line][-1]
    words = shlex.split(command)
    return [str(SNAKEMAKE), *words[1:]]


def split_exports(command: str) -> tuple[dict[str, str], str]:
    words = shlex.split(command)
    exports = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    return exports, shlex.join(word for word in words if word.split("=", 1)[0] not in exports)


@pytest.mark.workflow
@pytest.mark.parametrize("command", [c for c in readme_commands() if "--report" not in c])  # a report needs finished outputs
def test_readme_command_dry_runs_as_written(command, tmp_path):
    for folder in ("config", "profiles"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "my.yaml").write_text("chunks: 2\n")  # the README's user overlay
    exports, command = split_exports(command)
    env = {**os.environ, **{name: str(tmp_path / "exported" / name) for name in exports}}  # paths of the block, made local
    words = snakemake_line(command)
    result = subprocess.run(
        [*words, "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(tmp_path), "-n", "--quiet", "rules"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Job stats" in result.stdout or "Nothing to be done" in result.stdout
