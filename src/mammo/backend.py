"""The Keras backend of a process: TensorFlow (the default) or JAX for training, TensorFlow wherever a saved model is
loaded (export, evaluation, the TensorFlow inference engine).

Keras reads KERAS_BACKEND once, when it is first imported (importing TensorFlow imports it too), and keeps that
backend for the life of the process. So a stage chooses before anything imports keras or tensorflow, and a process
already running another backend is refused with the reason rather than left to record a backend it does not run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"


def model_backend(settings: dict) -> str:
    """The backend a model entry of the config trains on."""
    return settings.get("backend", DEFAULT_BACKEND)


def use_keras_backend(name: str) -> None:
    """Make `name` the Keras backend of this process, overriding KERAS_BACKEND; a clear error where Keras was already
    imported on another backend (it cannot switch)."""
    if name not in BACKENDS:
        raise ValueError(f"Keras backend {name!r}: one of {', '.join(BACKENDS)}")
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise ValueError(
            f"this needs Keras on {name}, but this process already runs Keras on {keras.backend.backend()} (taken from "
            f"KERAS_BACKEND or ~/.keras/keras.json when it was first imported); run it in a process of its own, with "
            f"KERAS_BACKEND={name} set before anything imports keras or tensorflow"
        )
    os.environ["KERAS_BACKEND"] = name


def cpu_computes_bfloat16() -> bool:
    """Whether this machine's CPU has bfloat16 arithmetic (avx512_bf16 or AMX); elsewhere bfloat16 is emulated, slower
    than float32. Read from /proc/cpuinfo: no Keras, TensorFlow or runtime imported for it."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    return bool(flags & {"avx512_bf16", "amx_bf16"})
