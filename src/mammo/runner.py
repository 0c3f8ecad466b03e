"""Run a stage with its output in a log file and bad input reported as one clear line, not a traceback."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

from mammo.io import FormatError

# Bad input (files, tables, config values); anything else is a bug and keeps its traceback.
USER_ERRORS = (FormatError, OSError, ValueError)


@contextlib.contextmanager
def logged(log_path: str | Path | None, name: str = "stage", benchmark_path: str | None = None):
    """Everything written inside the block goes to the log: Python's output and what libraries write to the process's
    own descriptors (TensorFlow's start-up lines, oneDNN notes), so the terminal keeps Snakemake's progress only.

    Bad input (USER_ERRORS) puts the traceback in the log and one line naming the problem on the terminal, and
    ends the process with status 1. Without a log (the command line), any other failure (a bug, memory running out)
    ends so too, its line naming a temporary file that holds the traceback; with a log, it keeps its traceback.
    `benchmark_path`: write the wall time and peak memory as Snakemake's benchmark files do (for rules cached between
    workflows, where Snakemake allows no benchmark directive).
    """
    started = time.perf_counter()
    message = None
    with output_to(log_path) as stream:
        try:
            yield
        except USER_ERRORS as err:
            message = f"ERROR in {name}: {_one_line(err)}"
            if log_path:
                traceback.print_exc(file=stream)
            print(message, file=stream, flush=True)
        except Exception as err:
            if log_path:
                raise
            message = f"ERROR in {name}: {type(err).__name__}: {_one_line(err)} (unexpected; traceback in {_traceback_log(name)})"
            print(message, file=stream, flush=True)
    if message is not None:
        if log_path:
            print(message, file=sys.stderr, flush=True)
        raise SystemExit(1)
    if benchmark_path:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
        Path(benchmark_path).parent.mkdir(parents=True, exist_ok=True)
        Path(benchmark_path).write_text(f"s\tmax_rss\n{time.perf_counter() - started:.4f}\t{peak_mb:.2f}\n")


def _one_line(err: Exception) -> str:
    """An exception's message on one line (some libraries' messages span several)."""
    return " ".join(str(err).split())


def _traceback_log(name: str) -> str:
    """A new temporary file holding the traceback of the exception being handled; its path."""
    handle, path = tempfile.mkstemp(prefix=f"mammo-{name}-", suffix=".log")
    with os.fdopen(handle, "w") as stream:
        traceback.print_exc(file=stream)
    return path


def run_stage(log_path: str | Path | None, stage, *args, benchmark_path: str | None = None, **kwargs):
    """`stage(*args, **kwargs)` inside `logged` (without a log: output and errors on the terminal, as the CLI wants)."""
    with logged(log_path, getattr(stage, "__name__", str(stage)), benchmark_path):
        return stage(*args, **kwargs)


@contextlib.contextmanager
def output_to(log_path: str | Path | None):
    """Python's stdout/stderr and descriptors 1 and 2 into the log file, restored afterwards; no log: unchanged."""
    if not log_path:
        yield sys.stderr
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "w") as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield stream
        finally:
            stream.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
