"""VinDr-Mammo (PhysioNet): `breast-level_annotations.csv`, `finding_annotations.csv` and
`images/<study_id>/<image_id>.dicom` (full-field digital; the DICOM reader applies each file's VOI LUT or window).

VinDr-Mammo has no biopsy pathology and no patient id: a study (one exam of one woman) is the patient, and the
radiologist's BI-RADS stands in for pathology, by one table (FINDING_CLASSES, BIRADS_PATHOLOGY) used everywhere.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.io import FormatError
from mammo.io.dicom import dicom_geometry, read_dicom
from mammo.labels import class_code
from mammo.tables import REJECTED_COLUMNS, account
from mammo.tiles import upscale

BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
VINDR_CSVS = (BREAST_CSV, FINDING_CSV)
IMAGE_COLUMNS = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width", "split"]
BOX_COLUMNS = ["xmin", "ymin", "xmax", "ymax"]
SIDES = {"L": "LEFT", "R": "RIGHT"}
SPLITS = {"training": "train", "test": "test"}
# The finding categories that are a lesion type of the study's classes; other findings (asymmetries,
# architectural distortion, skin or nipple changes, lymph nodes) are abnormal but of neither type.
FINDING_CLASSES = {"Mass": "mass", "Suspicious Calcification": "calcification"}
# BI-RADS as the pathology's stand-in: 2-3 probably benign, 4-5 suspicious of malignancy; 1 (negative) has no finding.
BIRADS_PATHOLOGY = {2: "BENIGN", 3: "BENIGN", 4: "MALIGNANT", 5: "MALIGNANT"}
_BIRADS = re.compile(r"^BI-RADS ([1-5])$")
_DENSITY = re.compile(r"^DENSITY ([A-D])$")


def read_vindr(root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(images, findings, rejected) of a VinDr-Mammo download.

    images: one row per image of breast-level_annotations.csv (scan_id = image_id, patient_id = study_id, path,
    side, view, breast_birads 1-5, density A-D, split train/test, label_normal: 0 for BI-RADS 1, else 1).
    findings: one row per finding with a box (box_top, box_left, box_bottom, box_right in image pixels,
    abnormality_type mass / calcification / other, finding_birads, pathology from BIRADS_PATHOLOGY, class_code
    where the type is one of the study's). Every row of both CSVs is in a table or in `rejected`, with its reason.
    """
    root = Path(root)
    breast_csv, finding_csv = root / BREAST_CSV, root / FINDING_CSV
    breasts = _read_csv(breast_csv, IMAGE_COLUMNS + ["breast_birads", "breast_density"])
    images, rejected, image_keys = [], [], []
    studies_split: dict[str, str] = {}
    for number, row in breasts.iterrows():
        key = row["image_id"]
        image_keys.append(key)
        reason = _image_problem(row, root)
        split = SPLITS.get(row["split"])
        if reason is None and studies_split.setdefault(row["study_id"], split) != split:
            reason = f"study {row['study_id']} is in both splits (training and test)"
        if reason is not None:
            rejected.append(_rejected(breast_csv, number, key, reason))
            continue
        birads = int(_BIRADS.match(row["breast_birads"]).group(1))
        images.append(
            {
                "scan_id": key,
                "patient_id": row["study_id"],
                "path": str(root / "images" / row["study_id"] / f"{key}.dicom"),
                "side": SIDES[row["laterality"]],
                "view": row["view_position"],
                "height": int(row["height"]),
                "width": int(row["width"]),
                "breast_birads": birads,
                "density": _DENSITY.match(row["breast_density"]).group(1),
                "split": split,
                "label_normal": int(birads > 1),
            }
        )
    images = pd.DataFrame(images, columns=_IMAGE_OUTPUT)
    account(image_keys, list(images["scan_id"]), [r["item"] for r in rejected])

    finding_rows = _read_csv(finding_csv, IMAGE_COLUMNS + ["finding_categories", "finding_birads", *BOX_COLUMNS])
    known = images.set_index("scan_id")
    findings, finding_rejected, boxed = [], [], []
    for number, row in finding_rows.iterrows():
        item = f"{row['image_id']}#{number}"  # an image may have several findings: its id and the CSV line
        if row[BOX_COLUMNS].eq("").all():
            continue  # an image without a finding: its breast row says all there is
        boxed.append(item)
        reason = _finding_problem(row, known)
        if reason is not None:
            finding_rejected.append(_rejected(finding_csv, number, item, reason))
            continue
        categories = ast.literal_eval(row["finding_categories"])
        kind = next((FINDING_CLASSES[name] for name in categories if name in FINDING_CLASSES), "other")
        birads = int(_BIRADS.match(row["finding_birads"]).group(1))
        pathology = BIRADS_PATHOLOGY[birads]
        left, top, right, bottom = (int(round(float(row[column]))) for column in BOX_COLUMNS)
        findings.append(
            {
                "roi_id": item,
                "scan_id": row["image_id"],
                "patient_id": row["study_id"],
                "abnormality_type": kind,
                "categories": "; ".join(categories),
                "finding_birads": birads,
                "pathology": pathology,
                "class_code": class_code(kind, pathology) if kind != "other" else np.nan,
                "box_top": top,
                "box_left": left,
                "box_bottom": bottom,
                "box_right": right,
            }
        )
    account(boxed, [f["roi_id"] for f in findings], [r["item"] for r in finding_rejected])
    findings = pd.DataFrame(findings, columns=_FINDING_OUTPUT)
    return images, findings, pd.DataFrame(rejected + finding_rejected, columns=REJECTED_COLUMNS)


_IMAGE_OUTPUT = [
    "scan_id",
    "patient_id",
    "path",
    "side",
    "view",
    "height",
    "width",
    "breast_birads",
    "density",
    "split",
    "label_normal",
]
_FINDING_OUTPUT = [
    "roi_id",
    "scan_id",
    "patient_id",
    "abnormality_type",
    "categories",
    "finding_birads",
    "pathology",
    "class_code",
    "box_top",
    "box_left",
    "box_bottom",
    "box_right",
]


def vindr_rois(images: pd.DataFrame, findings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ROIs, rejected) for tiling: the boxed findings of the study's types, each with its image's fields (path,
    side, view, density, split, width); rejected with the reason: a finding of neither type (no class of the study:
    asymmetry, architectural distortion, ...), and an abnormal breast (BI-RADS 2-5) with no boxed finding (neither
    normal tissue nor an ROI)."""
    image_fields = images[["scan_id", "path", "side", "view", "density", "split", "width"]]
    rois = findings.merge(image_fields, on="scan_id", how="inner")
    other = rois["abnormality_type"] == "other"
    rejected = [
        {
            "file": row["path"],
            "row": row["roi_id"],
            "item": row["roi_id"],
            "stage": "index_vindr",
            "reason": f"finding {row['categories']} is neither a mass nor a calcification: no class of the study",
        }
        for _, row in rois[other].iterrows()
    ]
    unboxed = images[(images["label_normal"] == 1) & ~images["scan_id"].isin(findings["scan_id"])]
    rejected += [
        {
            "file": row["path"],
            "row": row["scan_id"],
            "item": row["scan_id"],
            "stage": "index_vindr",
            "reason": f"BI-RADS {row['breast_birads']} breast without a boxed finding: neither normal tissue nor an ROI",
        }
        for _, row in unboxed.iterrows()
    ]
    rois = rois[~other].assign(class_code=lambda table: table["class_code"].astype(int))
    return rois.reset_index(drop=True), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


# The CBIS-DDSM scale, in mm per pixel: DDSM's digitizers scanned at 42 (DBA), 43.5 (HOWTEK) and 50 (LUMISYS) microns
# and CBIS-DDSM kept their pixels; a full-field digital image is brought to it by its own pixel spacing.
CBIS_PIXEL_MM = 0.045


def read_vindr_scan(path: str | Path) -> tuple[np.ndarray, float, bool]:
    """(image, factor, mirrored): a VinDr-Mammo DICOM as read_dicom presents it (VOI LUT or window, MONOCHROME1,
    orientation), upscaled by `factor` = its pixel spacing / CBIS_PIXEL_MM to the CBIS-DDSM scale; `mirrored`: it
    was flipped, so its boxes are flipped too (vindr_box_mask)."""
    spacing, mirrored = dicom_geometry(path)
    if spacing is None:
        raise FormatError(path, "no PixelSpacing or ImagerPixelSpacing: its scale to the CBIS-DDSM scale is unknown")
    factor = spacing / CBIS_PIXEL_MM
    return upscale(read_dicom(path), factor), factor, mirrored


def vindr_box_mask(finding: pd.Series, shape: tuple[int, int], factor: float, mirrored: bool, width: int) -> np.ndarray:
    """A finding's box (image pixels of the stored DICOM, `width` columns) as a mask of an image read with `factor`
    and `mirrored` (read_vindr_scan), clipped to it: the box stands in for the lesion's outline."""
    left, right = int(finding["box_left"]), int(finding["box_right"])
    if mirrored:
        left, right = width - right, width - left
    top, bottom = (int(round(finding[key] * factor)) for key in ("box_top", "box_bottom"))
    left, right = int(round(left * factor)), int(round(right * factor))
    mask = np.zeros(shape, bool)
    mask[max(top, 0) : min(bottom, shape[0]), max(left, 0) : min(right, shape[1])] = True
    return mask


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise FormatError(path, "not found (a VinDr-Mammo download holds it beside images/)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise FormatError(path, f"missing columns {', '.join(missing)}")
    table.index = table.index + 2  # the CSV line of each row (line 1 is the header)
    return table


def _image_problem(row: pd.Series, root: Path) -> str | None:
    if row["laterality"] not in SIDES:
        return f"laterality {row['laterality']!r} is not L or R"
    if row["view_position"] not in ("CC", "MLO"):
        return f"view_position {row['view_position']!r} is not CC or MLO"
    if row["split"] not in SPLITS:
        return f"split {row['split']!r} is not training or test"
    if not _BIRADS.match(row["breast_birads"]):
        return f"breast_birads {row['breast_birads']!r} is not BI-RADS 1-5"
    if not _DENSITY.match(row["breast_density"]):
        return f"breast_density {row['breast_density']!r} is not DENSITY A-D"
    if not (row["height"].isdigit() and row["width"].isdigit()):
        return f"height/width {row['height']!r}x{row['width']!r} are not pixel counts"
    if not (root / "images" / row["study_id"] / f"{row['image_id']}.dicom").exists():
        return f"images/{row['study_id']}/{row['image_id']}.dicom not found"
    return None


def _finding_problem(row: pd.Series, images: pd.DataFrame) -> str | None:
    if row["image_id"] not in images.index:
        return f"image {row['image_id']} is not an accepted row of {BREAST_CSV}"
    try:
        categories = ast.literal_eval(row["finding_categories"])
    except (ValueError, SyntaxError):
        categories = None
    if not (isinstance(categories, list) and categories and all(isinstance(name, str) for name in categories)):
        return f"finding_categories {row['finding_categories']!r} is not a list of names"
    match = _BIRADS.match(row["finding_birads"])
    if not match or int(match.group(1)) not in BIRADS_PATHOLOGY:
        return f"finding_birads {row['finding_birads']!r} is not BI-RADS 2-5 (a boxed finding)"
    try:
        left, top, right, bottom = (float(row[column]) for column in BOX_COLUMNS)
    except ValueError:
        return f"box {', '.join(row[BOX_COLUMNS])} is not numbers"
    image = images.loc[row["image_id"]]
    if not (0 <= left < right <= image["width"] and 0 <= top < bottom <= image["height"]):
        return f"box ({left:g}, {top:g}, {right:g}, {bottom:g}) is empty or leaves the {image['width']}x{image['height']} image"
    return None


def _rejected(path: Path, row: int, item: str, reason: str) -> dict:
    return {"file": str(path), "row": row, "item": item, "stage": "index_vindr", "reason": reason}
