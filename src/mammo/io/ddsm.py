"""DDSM normal cases: find scans under the data root and read them into the CBIS 16-bit space."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.intensity import raw_to_uint16
from mammo.io import FormatError
from mammo.io.ics import read_ics
from mammo.io.ljpeg import decode_ljpeg
from mammo.tables import REJECTED_COLUMNS

SCAN_COLUMNS = [
    "scan_id",
    "patient_id",
    "case",
    "view",
    "path",
    "ics_path",
    "digitizer",
    "site",
    "lines",
    "pixels_per_line",
    "bits",
    "density",
]


def find_normal_scans(root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per view listed in each `.ics` under root; missing files and bad headers are rejected.

    The rejected `item` is the scan id, or the `.ics` path for a header that cannot be read.
    """
    rows, rejected = [], []
    for ics_path in case_headers(root):
        try:
            header = read_ics(ics_path)
        except FormatError as err:
            rejected.append({"file": str(ics_path), "row": "", "item": str(ics_path), "stage": "index", "reason": err.reason})
            continue
        for view, geometry in header.views.items():
            # Quirk: .ics names use dashes (A-0002-1), image names underscores (A_0002_1).
            base = ics_path.parent / f"{header.name.replace('-', '_')}.{view}.LJPEG"
            path = base if base.exists() else base.with_name(base.name + ".gz")
            if not path.exists():
                rejected.append(
                    {
                        "file": str(base),
                        "row": view,
                        "item": f"{header.name}.{view}",
                        "stage": "index",
                        "reason": "scan listed in .ics not found",
                    }
                )
                continue
            rows.append(
                {
                    "scan_id": f"{header.name}.{view}",
                    "patient_id": header.patient_id,
                    "case": header.name,
                    "view": view,
                    "path": str(path),
                    "ics_path": str(ics_path),
                    "digitizer": header.digitizer_family,
                    "site": header.site,
                    "lines": geometry.lines,
                    "pixels_per_line": geometry.pixels_per_line,
                    "bits": geometry.bits_per_pixel,
                    "density": "" if header.density is None else header.density,
                }
            )
    return pd.DataFrame(rows, columns=SCAN_COLUMNS), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def case_headers(root: str | Path) -> list[Path]:
    """Every `.ics` under root, symlinked folders followed (a volume linked in from another disk counts).

    A root that does not exist, or holds no `.ics`, is an error naming what was expected: never an empty success.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(root, "DDSM folder not found")
    found = sorted(
        Path(folder) / name for folder, _, names in os.walk(root, followlinks=True) for name in names if name.endswith(".ics")
    )
    if not found:
        raise FormatError(root, "no DDSM case header (.ics) under this folder; expected normals/normal_NN/caseNNNN/X-NNNN-1.ics")
    return found


def listed_scans(root: str | Path) -> list[str]:
    """What the `.ics` files under root list: a scan id per view, or the file itself when its header is unreadable."""
    listed = []
    for ics_path in case_headers(root):
        try:
            header = read_ics(ics_path)
        except FormatError:
            listed.append(str(ics_path))
            continue
        listed += [f"{header.name}.{view}" for view in header.views]
    return listed


def read_normal_scan(scan: pd.Series) -> np.ndarray:
    """Decode one indexed scan and map it through its digitizer's optical density to the 16-bit space."""
    raw = decode_ljpeg(scan["path"], int(scan["lines"]), int(scan["pixels_per_line"]))
    if raw.max() >= 2 ** int(scan["bits"]):
        raise FormatError(scan["path"], f"values exceed the {scan['bits']}-bit range given by the .ics")
    return raw_to_uint16(raw, scan["digitizer"], scan["site"])
