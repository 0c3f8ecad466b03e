"""The documentation: the site builds strictly (a warning, a broken link or anchor fails), the README stays a short
landing page, and nothing of the long README it replaced was lost in the move to docs/."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake_run import ROOT

# Headings and table rows of the README before it was cut into docs/ (commit 3c00fac), stored so that a fresh
# or shallow clone checks them without git history.
OUTLINE = Path(__file__).with_name("readme_outline_3c00fac.txt")
FENCE = re.compile(r"^\s*```")
INCLUDE = re.compile(r'^--8<-- "([^"]+)"', re.M)


def outline(text: str) -> list[str]:
    """Headings (their text, any level) and table rows (separator rows left out) of a Markdown text, code left out."""
    items, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            items.append(line.lstrip("#").strip())
        elif not in_code and line.startswith("|") and not re.match(r"^\|[-| :]+\|$", line):
            items.append(line)
    return items


def documentation() -> str:
    """README.md and every docs page, with the files the pages include (config/README.md, BENCHMARKS.md, ...)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = [page.read_text() for page in pages]
    included = [(ROOT / name).read_text() for text in texts for name in INCLUDE.findall(text)]
    return "\n".join(texts + included)


def row_key(row: str, first_cells: list[str]) -> tuple[str, ...]:
    """What names a table row: its first cell, or its first two where the first repeats (`| density | D |`)."""
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    return tuple(cells[:2]) if first_cells.count(cells[0]) > 1 else (cells[0],)


def test_stored_outline_is_the_old_readmes():
    shown = subprocess.run(["git", "show", "3c00fac:README.md"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip("commit 3c00fac not in this clone's history (a shallow clone): the stored outline stands")
    assert OUTLINE.read_text().splitlines() == outline(shown.stdout)


def test_nothing_of_the_old_readme_is_lost():
    """Every heading of the old README is a heading of README or a docs page; every table row is there as it was,
    or re-measured: a row of the same name (first cell) is there."""
    old = OUTLINE.read_text().splitlines()
    now = outline(documentation())
    old_rows = [item for item in old if item.startswith("|")]
    first_cells = [row_key(row, [])[0] for row in old_rows]
    lost_headings = [item for item in old if not item.startswith("|") and item not in now]
    now_keys = {row_key(row, first_cells) for row in now if row.startswith("|")}
    lost_rows = [row for row in old_rows if row not in now and row_key(row, first_cells) not in now_keys]
    assert lost_headings == [] and lost_rows == []


def test_readme_is_a_short_landing_page_with_the_quick_start():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    quick_start = (
        "```bash\n"
        "make run     # set-up + snakemake --cores 2 results/ds9/model_1.0.0.35/metrics.json\n"
        "make test    # set-up + the test suite (pytest)\n"
        "```\n"
    )
    assert quick_start in readme


def test_job_graph_keeps_only_edges_no_path_implies():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    edges = [("index", "tiles"), ("tiles", "split"), ("index", "split"), ("split", "all"), ("index", "all")]
    assert hooks.without_implied_edges(edges) == [("index", "tiles"), ("tiles", "split"), ("split", "all")]


def test_site_builds_strictly(tmp_path):
    """`make docs`: MkDocs with warnings as errors, so a broken link, anchor or included file fails here (CI)."""
    result = subprocess.run(
        [Path(sys.executable).with_name("mkdocs"), "build", "--strict", "--site-dir", tmp_path / "site"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "job-graph.svg").stat().st_size > 0
    landing = (tmp_path / "site" / "index.html").read_text()
    assert "Quick start" in landing and "Results on real films" in landing  # the README, made the landing page
