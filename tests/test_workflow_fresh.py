"""Workflow tests that need no finished tiny run, each in a folder of its own: plans (dry runs), config checks at
start, the output cache between two workflows and the code trigger. A module apart from tests/test_workflow.py so
that they run beside the tiny run's tests (pytest-xdist schedules by module)."""

from __future__ import annotations

import re
import shutil

import pytest
from snakemake_run import ROOT, TINY, job_counts, snakemake, tiny_config, write_config

TARGET = "results/ds9/model_1.0.0.35/metrics.json"


@pytest.mark.workflow
def test_dry_run_of_default_config_lists_every_stage(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    result = snakemake(tmp_path, TARGET, "-n", "--quiet", "rules")
    rules = ("demo_data", "index_cbis", "index_ddsm", "index_mias", "tiles_cbis", "tiles_ddsm", "tiles_mias", "split", "records")
    for rule in (*rules, "train", "evaluate"):
        assert rule in result.stdout, rule


@pytest.mark.workflow
def test_study_rows_are_targets_of_the_default_config_and_all_builds_the_runs(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    targets = [
        "results/ds8/model_1.0.0.29n/metrics.json",
        "results/ds9/model_vgg16_lite/metrics.json",
        "results/ds6/model_1.0.0.35l.b/metrics.json",
    ]
    counts = job_counts(snakemake(tmp_path, *targets, "-n", "--quiet", "rules").stdout)
    assert counts["evaluate"] == 3 and counts["train"] == 4  # 1.0.0.35l.b starts from 1.0.0.35l, trained first
    counts = job_counts(snakemake(tmp_path, "all", "-n", "--quiet", "rules").stdout)
    assert counts["train"] == 4 and counts["evaluate"] == 4  # `runs`: the demo model on ds9, ds9b, ds8, ds6


@pytest.mark.workflow
@pytest.mark.parametrize(
    "root, problem",
    [("resources/demo/cbis-ddsm", "is the demo's folder but data.demo is false"), ("/nonexistent/cbis", "does not exist")],
)
def test_real_data_roots_are_checked_when_needed(tmp_path, root, problem):
    """With data.demo false, a root left at the demo's folder (which an earlier demo run leaves behind) or one that does
    not exist stops the run, naming the key; a root the target does not need may stay unset."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "real.yaml").write_text(f"data:\n  demo: false\n  cbis_ddsm: {root}\n  mias: mias\n")
    (tmp_path / "mias").mkdir()
    (tmp_path / "mias" / "Info.txt").write_text("mdb001 G NORM\n")
    result = snakemake(tmp_path, TARGET, "-n", "--configfile", "config/config.yaml", "real.yaml", check=False)
    assert result.returncode != 0 and f"data.cbis_ddsm: {root} {problem}" in result.stdout + result.stderr
    snakemake(tmp_path, "results/sources/mias/summary.json", "-n", "--configfile", "config/config.yaml", "real.yaml")


@pytest.mark.workflow
def test_config_error_names_the_key(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    bad = tmp_path / "config" / "bad.yaml"
    bad.write_text("chunks: zero\n")
    result = snakemake(tmp_path, TARGET, "-n", "--configfile", *TINY, str(bad), check=False)
    assert result.returncode != 0
    assert "chunks" in result.stderr + result.stdout


@pytest.mark.workflow
def test_tiles_are_cached_between_workflows(tmp_path):
    """Two workflows (configs that differ in a model, share dataset ds9) with one SNAKEMAKE_OUTPUT_CACHE:
    the second takes the decoded-and-tiled chunks from the cache instead of decoding the scans again."""
    import os

    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    workdirs = [tmp_path / "first", tmp_path / "second"]
    for workdir in workdirs:
        shutil.copytree(ROOT / "config", workdir / "config")
    config = tiny_config()
    config["models"]["1.0.0.35"]["epochs"] = 2
    write_config(workdirs[1], "tiny", config)  # the second workflow's config/tiny.yaml: a model differs
    targets = ("results/ds9/tiles.tsv", "results/ds9/mias/summary.json")
    snakemake(workdirs[0], *targets, "--cores", "2", "--cache", "--configfile", *TINY, env=env)
    # the named outputs of 2 CBIS-DDSM chunks (with their fingerprints), 2 DDSM chunks and the MIAS tiles
    assert len(list(cache.iterdir())) == 2 * 4 + 2 * 3 + 4
    # the same collections in the second folder, as two projects would share a download (not generated again)
    shutil.copytree(workdirs[0] / "resources", workdirs[1] / "resources")
    second = snakemake(workdirs[1], *targets, "--cores", "2", "--cache", "--configfile", *TINY, env=env)
    assert "from cache" in second.stdout + second.stderr and "demo_data" not in second.stdout + second.stderr
    for name in ("tiles/cbis_0.npy", "tiles/ddsm_1.tsv", "mias/tiles.npy", "tiles.tsv"):
        assert (workdirs[1] / "results/ds9" / name).read_bytes() == (workdirs[0] / "results/ds9" / name).read_bytes()
    # no tile stage ran in the second workflow: empty logs (Snakemake creates them), no stage benchmark, outputs from the cache
    assert all(log.stat().st_size == 0 for log in (workdirs[1] / "logs/ds9").glob("tiles_*.log"))
    assert not list((workdirs[1] / "benchmarks/ds9").glob("tiles_*.tsv"))
    assert (workdirs[1] / "results/ds9/tiles/cbis_0.npy").resolve().parent == cache.resolve()
    assert (workdirs[1] / "logs/ds9/split.log").exists()


@pytest.mark.workflow
def test_edited_script_reruns_its_rule_only(tmp_path):
    """The code trigger: a changed script reruns its rule (a copy of the project, as the path is part of the code)."""
    project = tmp_path / "project"
    project.mkdir()
    for folder in ("workflow", "envs", "config"):
        shutil.copytree(ROOT / folder, project / folder)
    target = ("results/sources/mias/images.tsv", "--configfile", *TINY)  # the demo, then its mini-MIAS index
    snakemake(project, *target, "--cores", "2", project=project)
    script = project / "workflow/scripts/index_mias.py"
    script.write_text(script.read_text() + "# edited\n")
    plan = snakemake(project, *target, "-n", "--quiet", "rules", project=project).stdout
    assert {line.split()[0] for line in plan.splitlines() if re.match(r"^[a-z_]+\s+\d+$", line)} == {"index_mias", "total"}
