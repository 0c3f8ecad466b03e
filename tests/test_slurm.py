"""The tiny workflow through a real one-node SLURM cluster with the `profiles/slurm` profile.

munged, slurmctld and slurmd run on localhost for this module (see slurm_cluster.py); the
test proves every job was a SLURM job and that the tiles equal those of a local run. Where the
binaries are missing or the daemons do not come up, the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from slurm_cluster import CPUS, PARTITION, SlurmCluster, SlurmUnavailable, missing_binaries
from snakemake_run import ROOT, TINY, snakemake, tiny_workdir

BIN = Path(sys.executable).parent
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
# Every stage up to training, the GPU rule; evaluation would add a minute of SLURM round trips.
TARGET = "results/ds9/model_1.0.0.35/model.keras"
# Rules the SLURM run must include, whatever else the DAG grows.
RULES = ("demo_data", "index_cbis", "index_ddsm", "tiles_cbis", "tiles_ddsm", "split", "records", "train")

pytestmark = pytest.mark.slurm


def fit_to_node(profile: dict, cpus: int, mem_mb: int) -> dict:
    """Overrides of the profile's per-rule requests for a small CPU-only node.

    GPU rules get gpu=0 (TensorFlow falls back to the CPUs), and no rule asks for more CPUs,
    threads or memory than the node has. Snakemake replaces a profile's whole set-resources
    with a later profile's, so every rule is carried over, not only the changed ones.
    """
    resources = {}
    for rule, requests in profile.get("set-resources", {}).items():
        fitted = dict(requests)
        if "gpu" in fitted:
            fitted["gpu"] = 0
        fitted.pop("gres", None)
        fitted.pop("gpu_model", None)
        if "cpus_per_task" in fitted:
            fitted["cpus_per_task"] = min(fitted["cpus_per_task"], cpus)
        if "mem_mb" in fitted:
            fitted["mem_mb"] = min(fitted["mem_mb"], mem_mb)
        resources[rule] = fitted
    threads = {rule: min(count, cpus) for rule, count in profile.get("set-threads", {}).items()}
    return {"set-resources": resources, "set-threads": threads}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    except SlurmUnavailable as error:
        pytest.skip(f"no local SLURM cluster: {error}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> tuple[Path, str]:
    """The tiny config up to the trained model, every job submitted by the SLURM executor."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    shutil.copytree(ROOT / "config", workdir / "config")
    overlay = fit_to_node(yaml.safe_load(PROFILE.read_text()), CPUS, cluster.memory_mb)
    overlay.update(
        {
            # No slurmdbd here, so sacct has nothing to say; squeue sees jobs for MinJobAge.
            "slurm-status-command": "squeue",
            # Poll soon after submission: the tiny jobs take seconds, not hours.
            "slurm-init-seconds-before-status-checks": 1,
            # The SLURM log of every job stays, as evidence, not only those of failed jobs.
            "slurm-keep-successful-logs": True,
        }
    )
    (workdir / "node-profile").mkdir()
    (workdir / "node-profile" / "config.yaml").write_text(yaml.safe_dump(overlay))
    env = cluster.env
    # Jobs inherit the submitting environment (sbatch --export=ALL): this virtual environment.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    result = snakemake(
        workdir,
        TARGET,
        "--configfile",
        *TINY,
        "--profile",
        str(PROFILE.parent),
        "--profile",
        str(workdir / "node-profile"),
        env=env,
    )
    return workdir, result.stdout + result.stderr


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The same config run here with --cores, up to the split: the stages with deterministic outputs."""
    return tiny_workdir(tmp_path_factory, "local_run", "results/ds9/summary.json")


def submitted_jobs(output: str) -> dict[str, str]:
    """SLURM job id -> Snakemake job id, from the executor's submission messages."""
    pairs = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)
    return {slurm_id: job_id for job_id, slurm_id in pairs}


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's first "Job stats" table, the plan of the run."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.mark.workflow
def test_every_job_ran_as_a_completed_slurm_job(cluster, slurm_run):
    workdir, output = slurm_run
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    jobs = submitted_jobs(output)
    plan = planned_jobs(output)
    assert set(RULES) <= set(plan)
    assert len(jobs) == sum(plan.values()), (plan, jobs)
    rules = Counter()
    for slurm_id in jobs:
        job = cluster.job(slurm_id)
        assert job["JobState"] == "COMPLETED", (slurm_id, job)
        assert job["JobName"] == run_id and job["Partition"] == PARTITION
        rules[re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)] += 1
        # The executor's per-job log, named after the SLURM job id.
        assert list((workdir / ".snakemake" / "slurm_logs").glob(f"rule_*/**/{slurm_id}.log")), slurm_id
    assert rules == plan
    # slurmctld's job completion record names the same jobs.
    recorded = set(re.findall(r"JobId=(\d+) .*JobState=COMPLETED", cluster.jobcomp.read_text()))
    assert set(jobs) <= recorded
    assert (workdir / TARGET).is_file()


class Resources(dict):
    """Just enough of a Snakemake job's resources for the executor's sbatch helpers."""

    __getattr__ = dict.__getitem__


def test_profile_asks_slurm_for_a_gpu_for_training_and_none_after_the_fallback():
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    train = yaml.safe_load(PROFILE.read_text())["set-resources"]["train"]
    assert set_gres_string(SimpleNamespace(resources=Resources(train))).split() == ["--gpus=1"]
    fitted = fit_to_node({"set-resources": {"train": train}}, CPUS, 4000)["set-resources"]["train"]
    assert set_gres_string(SimpleNamespace(resources=Resources(fitted))) == ""


@pytest.mark.workflow
def test_gpu_rule_fell_back_to_the_cpus(cluster, slurm_run):
    """With gpu=0 on this GPU-less node, training was a plain CPU job and still wrote its model."""
    workdir, output = slurm_run
    jobs = [cluster.job(slurm_id) for slurm_id in submitted_jobs(output)]
    train = [job for job in jobs if job["Comment"].startswith("rule_train_")]
    assert len(train) == 1
    assert "gpu" not in train[0].get("TresPerJob", "") + train[0].get("TresPerNode", "")
    assert train[0]["NumCPUs"] == str(CPUS)
    assert (workdir / TARGET).stat().st_size > 1_000_000


@pytest.mark.workflow
def test_slurm_outputs_equal_a_local_run(slurm_run, local_run):
    """Indexes, tiles, tile tables and split summary are deterministic: the same bytes either way."""
    workdir, _ = slurm_run
    local = sorted(path.relative_to(local_run) for path in (local_run / "results").rglob("*") if path.is_file())
    assert {"results/ds9/tiles.tsv", "results/ds9/summary.json"} <= set(map(str, local))
    for name in local:
        assert (workdir / name).read_bytes() == (local_run / name).read_bytes(), name


def test_fit_to_node_drops_the_gpu_and_caps_cpus_and_memory():
    train = {"gpu": 1, "gres": "gpu:1", "cpus_per_task": 8, "mem_mb": 32000, "runtime": 60}
    profile = {"set-threads": {"train": 8}, "set-resources": {"train": train, "split": {"mem_mb": 500}}}
    fitted = fit_to_node(profile, cpus=2, mem_mb=4000)
    assert fitted["set-resources"]["train"] == {"gpu": 0, "cpus_per_task": 2, "mem_mb": 4000, "runtime": 60}
    assert fitted["set-resources"]["split"] == {"mem_mb": 500}
    assert fitted["set-threads"] == {"train": 2}


def test_skipped_with_a_reason_without_slurm_binaries(tmp_path):
    """No SLURM on PATH: the cluster tests report a skip and say why, they never pass silently."""
    assert "slurmctld" in missing_binaries(path=str(tmp_path))
    env = {**os.environ, "PATH": str(tmp_path)}
    test = f"{__file__}::test_every_job_ran_as_a_completed_slurm_job"
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout, result.stdout
    assert "no local SLURM cluster: SLURM/MUNGE binaries not on PATH: munged, mungekey, slurmctld" in result.stdout


def test_a_daemon_that_does_not_start_is_reported_and_the_others_stopped(tmp_path, monkeypatch):
    """A slurmd that dies at once gives the reason the fixture skips with; munged and slurmctld end."""
    if missing_binaries() or os.geteuid() != 0:
        pytest.skip("needs the SLURM and MUNGE binaries and root")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "slurmd").write_text("#!/bin/sh\necho 'slurmd: fatal: broken on purpose' >&2\nexit 1\n")
    (fake / "slurmd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    cluster = SlurmCluster(tmp_path / "slurm")
    with pytest.raises(SlurmUnavailable, match=r"slurmd exited with status 1(.|\n)*broken on purpose"):
        cluster.start()
    assert set(cluster.processes) == {"munged", "slurmctld", "slurmd"}
    assert all(process.poll() is not None for process in cluster.processes.values())
