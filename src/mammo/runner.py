"""Run a stage with its output in a log file and bad input reported as one clear line, not a traceback."""

from __future__ import annotations

import contextlib
import resource
import sys
import time
import traceback
from pathlib import Path

from mammo.io import FormatError

# Bad input (files, tables, config values); anything else is a bug and keeps its traceback.
USER_ERRORS = (FormatError, OSError, ValueError)


def run_stage(log_path: str | Path | None, stage, *args, benchmark_path: str | None = None, **kwargs):
    """Call `stage(*args, **kwargs)` with stdout/stderr in the log.

    On bad input the log gets the traceback and the terminal one line naming
    the problem, and the process exits with status 1. `benchmark_path`: write
    the wall time and peak memory as Snakemake's benchmark files do (for rules
    cached between workflows, where Snakemake allows no benchmark directive).
    """
    if benchmark_path:
        started = time.perf_counter()
        result = run_stage(log_path, stage, *args, **kwargs)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
        Path(benchmark_path).parent.mkdir(parents=True, exist_ok=True)
        Path(benchmark_path).write_text(f"s\tmax_rss\n{time.perf_counter() - started:.4f}\t{peak_mb:.2f}\n")
        return result
    log = open(log_path, "w") if log_path else contextlib.nullcontext(sys.stderr)
    terminal = sys.stderr
    with log as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            return stage(*args, **kwargs)
        except USER_ERRORS as err:
            message = f"ERROR in {getattr(stage, '__name__', stage)}: {err}"
            if log_path:
                traceback.print_exc(file=stream)
            print(message, file=stream)
            if log_path:
                print(message, file=terminal)
            raise SystemExit(1) from None
