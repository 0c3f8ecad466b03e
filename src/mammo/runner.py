"""Run a stage with its output in a log file and bad input reported as one clear line, not a traceback."""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path

from mammo.io import FormatError

# Bad input (files, tables, config values); anything else is a bug and keeps its traceback.
USER_ERRORS = (FormatError, OSError, ValueError)


def run_stage(log_path: str | Path | None, stage, *args, **kwargs):
    """Call `stage(*args, **kwargs)` with stdout/stderr in the log.

    On bad input the log gets the traceback and the terminal one line naming
    the problem, and the process exits with status 1.
    """
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
