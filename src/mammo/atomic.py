"""Outputs written whole or not at all: each into a hidden partial file beside its target, then renamed over it."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import cv2
import numpy as np


def write_atomically(outputs: dict[str | Path, bytes]) -> None:
    """Each output's bytes into `.<name>.partial` beside it, then every partial file renamed over its target. A failed
    write (a full disk) leaves no partial file and changes none of the targets, so a set of outputs (a scan's heatmap,
    overlay and regions) is written together or not at all. A symlink at a target is replaced, never followed: a link
    planted at a partial name is removed first and the partial file is created exclusively."""
    partials = {Path(target): Path(target).with_name(f".{Path(target).name}.partial") for target in outputs}
    target = None
    try:
        for target, data in outputs.items():
            partial = partials[Path(target)]
            partial.unlink(missing_ok=True)
            with open(partial, "xb") as handle:
                handle.write(data)
        for target, partial in partials.items():
            os.replace(partial, target)
    except OSError as err:
        for partial in partials.values():
            with contextlib.suppress(OSError):  # the error to report is the write's
                partial.unlink(missing_ok=True)
        raise OSError(f"{target}: could not write ({err.strerror or err})") from None


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png_bytes(image: np.ndarray, target: str | Path) -> bytes:
    """The image encoded as PNG (8 or 16 bit, grey or BGR), to be written to `target`."""
    encoded, data = cv2.imencode(".png", image)
    if not encoded:
        raise OSError(f"{target}: could not write (OpenCV could not encode the PNG)")
    return data.tobytes()
