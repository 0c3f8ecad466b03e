"""Run a stage with its output in a log file and bad input reported as one clear line, not a traceback."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from mammo.io import FormatError

USER_ERRORS = (FormatError, FileNotFoundError, ValueError, KeyError)


def run_stage(log_path: str | Path | None, stage, *args, **kwargs):
    """Call `stage(*args, **kwargs)` with stdout/stderr in the log; exit 1 with the message on bad input."""
    log = open(log_path, "w") if log_path else contextlib.nullcontext(sys.stderr)
    terminal = sys.stderr
    with log as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            return stage(*args, **kwargs)
        except USER_ERRORS as err:
            message = f"ERROR in {getattr(stage, '__name__', stage)}: {err}"
            print(message, file=stream)
            print(message, file=terminal)
            raise SystemExit(1) from None
