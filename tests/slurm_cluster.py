"""A throw-away one-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd.

No systemd and nothing in /etc: key, config, state, spool, logs and socket live in one folder,
clients find the config through SLURM_CONF, and the daemons run in the foreground as children
of the test, so that they are stopped by their own process ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
CPUS = 2
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """The binaries are missing or the daemons did not come up; the message says which and why."""


def missing_binaries(path: str | None = None) -> list[str]:
    """The SLURM and MUNGE programs not found on PATH (or on the given search path)."""
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=path) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    """MemTotal in MB: a job asking for more memory than the node declares is refused at submission."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4000


def _tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace").strip() if path.is_file() else ""
    return f"--- {path.name}\n" + "\n".join(text.splitlines()[-lines:]) if text else ""


class SlurmCluster:
    """One node of `CPUS` CPUs and no GPU in the default partition `debug`; jobs run as root."""

    def __init__(self, root: Path):
        self.root = root
        # slurmctld only starts where SlurmctldHost names this machine's short host name.
        self.node = socket.gethostname().split(".")[0]
        self.memory_mb = _memory_mb()
        self.conf = root / "slurm.conf"
        self.socket = root / "munge" / "munge.socket"
        self.jobcomp = root / "log" / "jobcomp.txt"
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment, without an outer SLURM job's variables, pointed at this cluster."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def start(self) -> SlurmCluster:
        """Start munged, slurmctld and slurmd and wait for an idle node; SlurmUnavailable says why not."""
        missing = missing_binaries()
        if missing:
            raise SlurmUnavailable(f"SLURM/MUNGE binaries not on PATH: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd has to run as root to launch jobs")
        try:
            for folder in ("bin", "munge", "state", "spool", "log"):
                (self.root / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._write_srun()
            self._write_conf()
            key = self.root / "munge" / "munge.key"
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True, text=True)
            munge, log = self.root / "munge", self.root / "log"
            # --force: munged would refuse a socket folder that others cannot traverse.
            self._spawn(
                "munged",
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={self.socket}",
                f"--pid-file={munge / 'munged.pid'}",
                f"--seed-file={munge / 'seed'}",
                f"--log-file={log / 'munged.log'}",
            )
            self._wait(self.socket.exists, "the munged socket")
            self._spawn("slurmctld", "-D", "-f", str(self.conf))
            self._spawn("slurmd", "-D", "-N", self.node, "-f", str(self.conf))
            self._wait(lambda: self.node_state() == "idle", f"node {self.node} to be idle")
            self._smoke_test()
        except (SlurmUnavailable, OSError, subprocess.CalledProcessError) as error:
            self.stop()
            detail = error.stderr.strip() if isinstance(error, subprocess.CalledProcessError) else ""
            # In the foreground the daemons copy their logs to stderr, early fatal errors included.
            logs = [_tail(self.root / "log" / f"{name}.out") for name in ("munged", "slurmctld", "slurmd")]
            raise SlurmUnavailable("\n".join(filter(None, [str(error), detail, *logs]))) from None
        return self

    def _smoke_test(self) -> None:
        """One batch job with a job step: daemons that run but cannot launch jobs (an unresolvable
        host name, say) fail here, with the job's output, rather than in the middle of a workflow."""
        output = self.root / "log" / "smoke.out"
        submitted = self.run("sbatch", "--parsable", f"--output={output}", "--wrap", "srun true")
        if submitted.returncode != 0:
            raise SlurmUnavailable(f"sbatch failed: {submitted.stderr.strip()}")
        job_id = submitted.stdout.strip().split(";")[0]
        running = (None, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
        self._wait(lambda: self.job(job_id).get("JobState") not in running, "a test job to end")
        state = self.job(job_id).get("JobState")
        if state != "COMPLETED":
            printed = output.read_text(errors="replace").strip() if output.is_file() else ""
            raise SlurmUnavailable(f"test job {job_id} ended {state}: {printed}")

    def _write_srun(self) -> None:
        """An srun first on PATH that finds this cluster's config.

        snakemake-executor-plugin-slurm-jobstep 0.6.1 clears all SLURM_* variables but the job ids
        before it calls srun inside a job, SLURM_CONF included, so srun finds no config on a cluster
        configured through SLURM_CONF alone (sites with /etc/slurm or configless slurmd are fine).
        """
        srun = self.root / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{shutil.which("srun")}" "$@"\n')
        srun.chmod(0o755)

    def _write_conf(self) -> None:
        root = self.root
        settings = {
            "ClusterName": "mammotest",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            # Free ports: a site's own SLURM on the default ports is left alone.
            "SlurmctldPort": _free_port(),
            "SlurmdPort": _free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.socket}",
            "StateSaveLocation": root / "state",
            "SlurmdSpoolDir": root / "spool",
            "SlurmctldPidFile": root / "slurmctld.pid",
            "SlurmdPidFile": root / "slurmd.pid",
            "SlurmctldLogFile": root / "log" / "slurmctld.log",
            "SlurmdLogFile": root / "log" / "slurmd.log",
            # An empty SPANK plugin list instead of the one in /etc.
            "PlugStackConfig": root / "plugstack.conf",
            # No cgroups without systemd; plain process tracking does for one node.
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            # No slurmdbd, so sacct cannot answer: job states come from squeue, which keeps
            # finished jobs for MinJobAge seconds (far longer than the test).
            "AccountingStorageType": "accounting_storage/none",
            "MinJobAge": 3600,
            # One line per finished job, a record that outlives slurmctld.
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp,
            "SchedulerType": "sched/backfill",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            # The CPUs and memory declared below count, whatever the hardware's layout.
            "SlurmdParameters": "config_overrides",
            "MpiDefault": "none",
            "ReturnToService": 2,
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines.append(f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={self.memory_mb} State=UNKNOWN")
        lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        (root / "plugstack.conf").write_text("")
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.root / "log" / f"{name}.out", "w") as output:
            self.processes[name] = subprocess.Popen([name, *args], env=self.env, stdout=output, stderr=subprocess.STDOUT)

    def _wait(self, ready, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with status {process.returncode} while waiting for {what}")
            if ready():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")

    def run(self, *command: str) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)

    def node_state(self) -> str:
        result = self.run("sinfo", "--noheader", "--format=%t", "--nodes", self.node)
        return result.stdout.strip() if result.returncode == 0 else ""

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (fields whose values hold spaces are cut, none needed here)."""
        text = self.run("scontrol", "--oneliner", "show", "job", job_id).stdout
        return dict(field.split("=", 1) for field in text.split() if "=" in field)

    def stop(self) -> None:
        """Cancel leftover jobs, then end each daemon by its process id: TERM, KILL after 10 s."""
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--user", str(os.geteuid()))
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
