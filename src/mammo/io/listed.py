"""Collections listed in tables of images and findings (VinDr-Mammo's CSVs, a user's own CSV): each image read at
the CBIS-DDSM scale by its pixel size, each finding drawn as a mask from its box, its centre and radius, or its mask
file, in the image as read (upscaled, and flipped where read_dicom flipped it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom

from mammo.io import FormatError, check_declared_size
from mammo.io.cbis import read_csv_table
from mammo.io.dicom import checked_pixel_mm, dicom_geometry
from mammo.io.scan import has_dicom_preamble, png_size, read_scan
from mammo.tables import REJECTED_COLUMNS

# The CBIS-DDSM scale, in mm per pixel: DDSM's digitizers scanned at 42 (DBA), 43.5 (HOWTEK) and 50 (LUMISYS) microns
# and CBIS-DDSM kept their pixels; a full-field digital image is brought to it by its own pixel size.
CBIS_PIXEL_MM = 0.045
# the tables a listed collection's index writes (images.tsv, findings.tsv); empty cells where a column does not apply
IMAGE_COLUMNS = [
    "scan_id",
    "patient_id",
    "path",
    "side",
    "view",
    "height",
    "width",
    "pixel_mm",
    "density",
    "split",
    "label_normal",
]
BOX = ["box_top", "box_left", "box_bottom", "box_right"]
CIRCLE = ["centre_row", "centre_col", "radius"]
FINDING_COLUMNS = ["roi_id", "scan_id", "patient_id", "abnormality_type", "categories", "pathology", "class_code"]
FINDING_COLUMNS += [*BOX, *CIRCLE, "mask_path"]


def read_listed_scan(path: str | Path, pixel_mm: float | None = None) -> tuple[np.ndarray, float, bool]:
    """(image, factor, mirrored): an image as mammo.io.scan reads it (a DICOM presented: VOI LUT or window,
    MONOCHROME1, orientation); `factor` = its pixel size / CBIS_PIXEL_MM (`pixel_mm`, else the DICOM's pixel
    spacing), the upscaling that brings it to the CBIS-DDSM scale; `mirrored`: read_dicom flipped it, so its
    findings are flipped too."""
    spacing, mirrored = _spacing_and_flip(path, pixel_mm)
    if spacing is None:
        raise FormatError(
            path, "no pixel size (a pixel_mm column, or the DICOM's PixelSpacing): its scale to the CBIS-DDSM scale is unknown"
        )
    return read_scan(path), spacing / CBIS_PIXEL_MM, mirrored


def listed_scale(path: str | Path, pixel_mm: float | None) -> float:
    """CBIS-DDSM pixels per pixel of a listed image (its Windowing.scale): its pixel size / CBIS_PIXEL_MM, 1 where
    it has none (reading it for tiles rejects it then)."""
    spacing, _ = _spacing_and_flip(path, pixel_mm)
    return 1.0 if spacing is None else spacing / CBIS_PIXEL_MM


def mirrored(path: str | Path) -> bool:
    """Whether read_dicom flips this image (a DICOM stored mirrored); never for another format."""
    return _spacing_and_flip(path, None)[1]


def _spacing_and_flip(path: str | Path, pixel_mm: float | None) -> tuple[float | None, bool]:
    """(pixel size in mm or None, mirrored) of a listed image: `pixel_mm` where given (an index read back keeps an
    empty cell as ""), else a DICOM's spacing; only a DICOM is ever flipped."""
    spacing, flipped = dicom_geometry(path) if _is_dicom(path) else (None, False)
    return (spacing if _empty(pixel_mm) else checked_pixel_mm(path, float(pixel_mm), "pixel_mm")), flipped


def finding_mask(finding: pd.Series, shape: tuple[int, int], factor: float, mirrored: bool, width: int) -> np.ndarray:
    """A finding as a mask of an image read with `factor` and `mirrored` (read_listed_scan), clipped to it: its box
    (image pixels of the stored image, `width` columns), else its circle, else its mask file (non-zero = lesion)."""
    if not _empty(finding.get("mask_path")):
        stored = read_scan(finding["mask_path"], raw=True) > 0
        stored = stored[:, ::-1] if mirrored else stored
        return cv2.resize(stored.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    mask = np.zeros(shape, np.uint8)
    if not _empty(finding.get("box_left")):
        left, right = float(finding["box_left"]), float(finding["box_right"])
        if mirrored:
            left, right = width - right, width - left
        top, bottom = (int(round(float(finding[key]) * factor)) for key in ("box_top", "box_bottom"))
        left, right = int(round(left * factor)), int(round(right * factor))
        mask[max(top, 0) : min(bottom, shape[0]), max(left, 0) : min(right, shape[1])] = 1
    else:
        column = width - 1 - float(finding["centre_col"]) if mirrored else float(finding["centre_col"])
        centre = (int(round(column * factor)), int(round(float(finding["centre_row"]) * factor)))
        cv2.circle(mask, centre, max(1, int(round(float(finding["radius"]) * factor))), 1, thickness=-1)
    return mask.astype(bool)


def findings_by_type(findings: pd.DataFrame) -> dict[str, int]:
    """Located findings counted by abnormality type (a summary's and `mammo check`'s `findings`)."""
    return {str(kind): int(count) for kind, count in findings["abnormality_type"].value_counts().sort_index().items()}


def listed_rois(images: pd.DataFrame, findings: pd.DataFrame, stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ROIs, rejected) for tiling: the located findings of the study's types, each with its image's fields (path,
    pixel_mm, side, view, density, split, width); rejected with the reason: a finding of neither type (no class of
    the study: asymmetry, architectural distortion, ...), and an abnormal image with no located finding (neither
    normal tissue nor an ROI)."""
    image_fields = images[["scan_id", "path", "pixel_mm", "side", "view", "density", "split", "width"]]
    rois = findings.merge(image_fields, on="scan_id", how="inner")
    other = rois["abnormality_type"] == "other"
    rejected = [
        _rejected(
            row["path"],
            row["roi_id"],
            stage,
            f"finding {row['categories']} is neither a mass nor a calcification: no class of the study",
        )
        for _, row in rois[other].iterrows()
    ]
    unlocated = images[(images["label_normal"] == 1) & ~images["scan_id"].isin(findings["scan_id"])]
    rejected += [
        _rejected(
            row["path"], row["scan_id"], stage, "abnormal image without a located finding: neither normal tissue nor an ROI"
        )
        for _, row in unlocated.iterrows()
    ]
    rois = rois[~other].assign(class_code=lambda table: table["class_code"].astype(int))
    return rois.reset_index(drop=True), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def read_listed_csv(path: Path, required: list[str], where: str) -> pd.DataFrame:
    """A listed collection's CSV as stripped text, indexed by the line each row starts on (line 1 is the header),
    read by the one strict CSV reader (mammo.io.cbis.read_csv_table); a missing file or required column is an error
    naming it (`where`: what the file is expected beside)."""
    if not path.exists():
        raise FormatError(path, f"not found ({where})")
    table = read_csv_table(path)
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise FormatError(path, f"missing columns {', '.join(missing)} (required: {', '.join(required)})")
    return table


def image_size(path: str | Path) -> tuple[int, int]:
    """(rows, columns) of a DICOM or PNG from its header, without decoding the pixels; a size beyond any mammogram
    (check_declared_size) is an error."""
    if _is_dicom(path):
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        size = int(dataset.Rows), int(dataset.Columns)
    else:
        with open(path, "rb") as handle:
            size = png_size(handle.read(24))
        if size is None:
            raise FormatError(path, "neither a DICOM nor a PNG image")
    check_declared_size(path, *size)
    return size


def _is_dicom(path: str | Path) -> bool:
    if str(path).lower().endswith((".dcm", ".dicom")):
        return True
    try:
        return has_dicom_preamble(path)
    except OSError:
        return False


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == ""


def _rejected(path, item: str, stage: str, reason: str) -> dict:
    return {"file": str(path), "row": item, "item": item, "stage": stage, "reason": reason}
