"""mini-MIAS: `Info.txt` annotations and `mdbNNN.pgm` scans."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mammo.intensity import uint8_to_uint16
from mammo.io import FormatError

MIAS_SIZE = 1024
INFO_COLUMNS = ["refnum", "background", "abnormality_class", "severity", "x", "y", "radius"]
_ROW = re.compile(r"^(mdb\d{3})\s+([FGD])\s+([A-Z]{4})\b(.*)$")


def parse_info(text: str, path: str | Path = "Info.txt") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse Info.txt into (rows, rejected).

    Quirks: prose header and footer; irregular spaces; several rows per image;
    some abnormal rows have no coordinates (widely distributed calcifications,
    kept with missing x/y/radius); `*NOTE 3*` markers stand in for coordinates.
    """
    rows, rejected = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ROW.match(line.strip())
        if not match:
            if line.strip().startswith("mdb"):
                rejected.append({"file": str(path), "row": number, "reason": f"unparseable annotation {line.strip()!r}"})
            continue
        refnum, background, abnormality_class, rest = match.groups()
        fields = rest.split()
        severity = fields[0] if fields and fields[0] in ("B", "M") else None
        numbers = [int(f) for f in fields[1 if severity else 0 :] if f.isdigit()]
        x, y, radius = (numbers + [None, None, None])[:3] if len(numbers) == 3 else (None, None, None)
        if abnormality_class != "NORM" and severity is None:
            rejected.append({"file": str(path), "row": number, "reason": f"abnormal row without severity: {line.strip()!r}"})
            continue
        rows.append(
            {
                "refnum": refnum,
                "background": background,
                "abnormality_class": abnormality_class,
                "severity": severity,
                "x": x,
                "y": y,
                "radius": radius,
                "row": number,
            }
        )
    table = pd.DataFrame(rows, columns=INFO_COLUMNS + ["row"])
    for column in ("x", "y", "radius"):
        table[column] = table[column].astype("Int64")
    return table, pd.DataFrame(rejected, columns=["file", "row", "reason"])


def read_info(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return parse_info(Path(path).read_text(errors="replace"), path)


def read_pgm(path: str | Path) -> np.ndarray:
    """Read an 8-bit binary PGM (P5) with OpenCV; size must be the MIAS 1024x1024."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic != b"P5":
        raise FormatError(path, f"not a binary PGM (magic {magic!r})")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FormatError(path, "OpenCV could not decode the PGM (truncated?)")
    if image.dtype != np.uint8 or image.ndim != 2:
        raise FormatError(path, f"expected 8-bit greyscale, got {image.dtype} {image.shape}")
    if image.shape != (MIAS_SIZE, MIAS_SIZE):
        raise FormatError(path, f"expected the mini-MIAS {MIAS_SIZE}x{MIAS_SIZE}, got {image.shape[1]}x{image.shape[0]}")
    return image


def read_mias_scan(path: str | Path) -> np.ndarray:
    """A mini-MIAS scan in the shared 16-bit intensity space (8-bit stretched by 257)."""
    return uint8_to_uint16(read_pgm(path))


def write_pgm(path: str | Path, image: np.ndarray) -> None:
    """Write a P5 PGM the way MIAS distributes it (header, maxval 255, raw bytes)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    header = f"P5\n{image.shape[1]} {image.shape[0]}\n255\n".encode()
    Path(path).write_bytes(header + image.tobytes())
