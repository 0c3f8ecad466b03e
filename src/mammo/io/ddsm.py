"""DDSM cases: find the normal scans and the abnormalities outlined in `.OVERLAY` files under a root, and read
scans into the CBIS 16-bit space."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.intensity import raw_to_uint16
from mammo.io import FormatError
from mammo.io.ics import read_ics
from mammo.io.ljpeg import decode_ljpeg
from mammo.io.overlay import Outline, lesion_descriptors, read_overlay
from mammo.labels import class_code
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
        abnormal = any(geometry.overlay for geometry in header.views.values())
        for view, geometry in header.views.items():
            path = scan_path(ics_path, header.name, view)
            if abnormal:  # a case from cancers/ or benigns/ under the root: its other views are not normal tissue either
                rejected.append(
                    {
                        "file": str(ics_path),
                        "row": view,
                        "item": f"{header.name}.{view}",
                        "stage": "index",
                        "reason": "an abnormal case (its .ics marks OVERLAY views): not a normal scan",
                    }
                )
                continue
            if not path.exists():
                rejected.append(
                    {
                        "file": str(path),
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
                    **_view_reading(header, geometry),
                }
            )
    return pd.DataFrame(rows, columns=SCAN_COLUMNS), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def _view_reading(header, geometry) -> dict:
    """What read_ddsm_scan needs of a view besides its path (an index row carries it): its size and bit depth from
    the .ics, its digitizer and site (the optical-density calibration), and the case's density."""
    return {
        "digitizer": header.digitizer_family,
        "site": header.site,
        "lines": geometry.lines,
        "pixels_per_line": geometry.pixels_per_line,
        "bits": geometry.bits_per_pixel,
        "density": "" if header.density is None else header.density,
    }


def view_file(ics_path: Path, name: str, view: str, suffix: str) -> Path:
    """A view's file (LJPEG, OVERLAY) beside its `.ics`."""
    # Quirk: .ics names use dashes (A-0002-1), image and overlay names underscores (A_0002_1).
    return ics_path.parent / f"{name.replace('-', '_')}.{view}.{suffix}"


def scan_path(ics_path: Path, name: str, view: str) -> Path:
    """The LJPEG of a view beside its `.ics` (gzipped where only that exists)."""
    base = view_file(ics_path, name, view, "LJPEG")
    gzipped = base.with_name(base.name + ".gz")
    return gzipped if gzipped.exists() and not base.exists() else base


ROI_COLUMNS = [
    "roi_id",
    "scan_id",
    "patient_id",
    "case",
    "view",
    "path",
    "overlay_path",
    "volume",
    "abnormality_type",
    "lesion_type",
    "pathology",
    "assessment",
    "subtlety",
    "class_code",
    "cores",
    "outside_share",
    "abnormality",
    "lines",
    "pixels_per_line",
    "bits",
    "digitizer",
    "site",
    "density",
]
DDSM_TYPES = {"MASS": "mass", "CALCIFICATION": "calcification"}
# BENIGN_WITHOUT_CALLBACK is benign (as in CBIS-DDSM); UNPROVEN has no pathology to learn from
DDSM_PATHOLOGIES = {"MALIGNANT": "MALIGNANT", "BENIGN": "BENIGN", "BENIGN_WITHOUT_CALLBACK": "BENIGN"}
MAX_OUTSIDE_SHARE = 0.5  # an outline mostly off the image is a wrong outline, not a lesion at the edge


def find_abnormal_rois(root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per abnormality outlined in the `.OVERLAY` of each view that its `.ics` marks OVERLAY, under root
    (the real layout: cases/{cancers,benigns,benign_without_callbacks}/<volume>/caseNNNN/); `volume` is the
    folder two levels up (cancer_01, ...). Rejected with the reason: an overlay or LJPEG not found, an overlay
    that does not parse, an abnormality without a BOUNDARY, a BOUNDARY more than half outside the image (one
    partly outside is clipped, its share outside kept), a lesion type that is neither MASS nor CALCIFICATION, a
    pathology that is not MALIGNANT, BENIGN or BENIGN_WITHOUT_CALLBACK (UNPROVEN)."""
    rows, rejected = [], []

    def reject(file, view, item, reason):
        rejected.append({"file": str(file), "row": view, "item": item, "stage": "index_abnormal", "reason": reason})

    for ics_path in case_headers(root):
        try:
            header = read_ics(ics_path)
        except FormatError:
            continue  # find_normal_scans rejects an unreadable header
        for stray in stray_overlays(ics_path, header):
            reject(stray, "", stray.name, "an .OVERLAY for a view its .ics does not list as OVERLAY (a mismatched view name?)")
        for view, geometry in header.views.items():
            if not geometry.overlay:
                continue
            scan_id = f"{header.name}.{view}"
            path = scan_path(ics_path, header.name, view)
            overlay_path = view_file(ics_path, header.name, view, "OVERLAY")
            if not overlay_path.exists():
                reject(overlay_path, view, scan_id, ".ics marks this view OVERLAY but its .OVERLAY is not found")
                continue
            if not path.exists():
                reject(path, view, scan_id, "the LJPEG of an outlined view is not found")
                continue
            try:
                abnormalities = read_overlay(overlay_path)
            except FormatError as err:
                reject(overlay_path, view, scan_id, err.reason)
                continue
            shape = (geometry.lines, geometry.pixels_per_line)
            for abnormality in abnormalities:
                roi_id = f"{scan_id}.{abnormality.number}"
                lesion = (abnormality.lesion_types or [{"type": None}])[0]["type"]
                boundary = abnormality.boundary
                if boundary is None:
                    reject(overlay_path, view, roi_id, f"abnormality {abnormality.number} has no BOUNDARY outline")
                    continue
                outside = _outside_share(boundary, shape)
                if outside > MAX_OUTSIDE_SHARE:
                    reject(
                        overlay_path,
                        view,
                        roi_id,
                        f"abnormality {abnormality.number}: {outside:.0%} of its BOUNDARY lies outside the {shape[0]}x{shape[1]} image",
                    )
                    continue
                if lesion not in DDSM_TYPES:
                    reject(
                        overlay_path,
                        view,
                        roi_id,
                        f"abnormality {abnormality.number}: lesion type {lesion} is neither MASS nor CALCIFICATION",
                    )
                    continue
                if abnormality.pathology not in DDSM_PATHOLOGIES:
                    reject(
                        overlay_path,
                        view,
                        roi_id,
                        f"abnormality {abnormality.number}: pathology {abnormality.pathology} is not a label to learn",
                    )
                    continue
                rows.append(
                    {
                        "roi_id": roi_id,
                        "scan_id": scan_id,
                        "patient_id": header.patient_id,
                        "case": header.name,
                        "view": view,
                        "path": str(path),
                        "overlay_path": str(overlay_path),
                        "volume": ics_path.parent.parent.name,
                        "abnormality_type": DDSM_TYPES[lesion],
                        "lesion_type": lesion_descriptors(abnormality.lesion_types[0]),
                        "pathology": abnormality.pathology,
                        "assessment": abnormality.assessment,
                        "subtlety": abnormality.subtlety,
                        "class_code": class_code(DDSM_TYPES[lesion], DDSM_PATHOLOGIES[abnormality.pathology]),
                        "cores": sum(outline.kind == "CORE" for outline in abnormality.outlines),
                        "outside_share": round(outside, 4),
                        "abnormality": abnormality.number,
                        **_view_reading(header, geometry),
                    }
                )
    return pd.DataFrame(rows, columns=ROI_COLUMNS), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def outline_mask(roi: pd.Series, shape: tuple[int, int], kind: str = "BOUNDARY") -> np.ndarray:
    """An indexed abnormality's outline (BOUNDARY, or its CORE outlines together) filled at the scan's shape, clipped
    to the image; an overlay that changed since it was indexed is an error naming it."""
    found = [a for a in read_overlay(roi["overlay_path"]) if a.number == int(roi["abnormality"])]
    if not found:
        raise FormatError(roi["overlay_path"], f"abnormality {roi['abnormality']} is no longer in the overlay")
    mask = np.zeros(shape, bool)
    for outline in found[0].outlines:
        if outline.kind == kind:
            mask |= outline.mask(shape)
    return mask


def stray_overlays(ics_path: Path, header) -> list[Path]:
    """The `.OVERLAY` files beside a case's `.ics` that belong to none of the views it marks OVERLAY."""
    expected = {view_file(ics_path, header.name, view, "OVERLAY").name for view, g in header.views.items() if g.overlay}
    return sorted(path for path in ics_path.parent.glob("*.OVERLAY") if path.name not in expected)


def _outside_share(outline: Outline, shape: tuple[int, int]) -> float:
    """The share of the outline's filled area that lies outside the image (drawn on a canvas holding both)."""
    polygon = outline.polygon()
    top, left = (int(value) for value in np.minimum(polygon.min(axis=0), 0))
    bottom, right = (int(value) for value in np.maximum(polygon.max(axis=0) + 1, shape))
    shifted = Outline(outline.kind, outline.start_col - left, outline.start_row - top, outline.directions)
    whole = shifted.mask((bottom - top, right - left))
    total = whole.sum()
    return float(1 - whole[-top : shape[0] - top, -left : shape[1] - left].sum() / total) if total else 1.0


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


def listed_scans(root: str | Path, outlined: bool = False) -> list[str]:
    """What the `.ics` files under root list: a scan id per view, or the file itself when its header is unreadable.
    With `outlined`: a scan id per view marked OVERLAY and the name of each stray `.OVERLAY` beside it (unreadable
    headers are left to the normal index)."""
    listed = []
    for ics_path in case_headers(root):
        try:
            header = read_ics(ics_path)
        except FormatError:
            listed += [] if outlined else [str(ics_path)]
            continue
        listed += [f"{header.name}.{view}" for view, geometry in header.views.items() if geometry.overlay or not outlined]
        listed += [path.name for path in stray_overlays(ics_path, header)] if outlined else []
    return listed


def read_ddsm_scan(scan: pd.Series) -> np.ndarray:
    """Decode one indexed scan (a normal scan, or the view of an abnormality) and map it through its digitizer's optical density to the 16-bit space."""
    raw = decode_ljpeg(scan["path"], int(scan["lines"]), int(scan["pixels_per_line"]))
    if raw.max() >= 2 ** int(scan["bits"]):
        raise FormatError(scan["path"], f"values exceed the {scan['bits']}-bit range given by the .ics")
    return raw_to_uint16(raw, scan["digitizer"], scan["site"])
