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

from mammo.io.cbis import path_problem
from mammo.io.listed import FINDING_COLUMNS, IMAGE_COLUMNS, read_listed_csv
from mammo.labels import class_code
from mammo.tables import REJECTED_COLUMNS, account

BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
VINDR_CSVS = (BREAST_CSV, FINDING_CSV)
CSV_IMAGE_COLUMNS = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width", "split"]
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
    where = "a VinDr-Mammo download holds it beside images/"
    breasts = read_listed_csv(breast_csv, CSV_IMAGE_COLUMNS + ["breast_birads", "breast_density"], where)
    images, rejected, image_keys = [], [], []
    studies_split: dict[str, str] = {}
    first_lines: dict[str, int] = {}
    for number, row in breasts.iterrows():
        key = row["image_id"]
        item = f"{key}#{number}" if key in first_lines else key  # a repeated row is an input of its own
        image_keys.append(item)
        if key in first_lines:
            reason = f"image {key} is listed again (first on line {first_lines[key]})"
        else:
            reason = _image_problem(row, root)
            first_lines[key] = number
        split = SPLITS.get(row["split"])
        if reason is None and studies_split.setdefault(row["study_id"], split) != split:
            reason = f"study {row['study_id']} is in both splits (training and test)"
        if reason is not None:
            rejected.append(_rejected(breast_csv, number, item, reason))
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
                "pixel_mm": np.nan,  # from each DICOM's pixel spacing
                "breast_birads": birads,
                "density": _DENSITY.match(row["breast_density"]).group(1),
                "split": split,
                "label_normal": int(birads > 1),
            }
        )
    images = pd.DataFrame(images, columns=_IMAGE_OUTPUT)
    account(image_keys, list(images["scan_id"]), [r["item"] for r in rejected])

    finding_rows = read_listed_csv(finding_csv, CSV_IMAGE_COLUMNS + ["finding_categories", "finding_birads", *BOX_COLUMNS], where)
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


_IMAGE_OUTPUT = [*IMAGE_COLUMNS, "breast_birads"]
_FINDING_OUTPUT = [*FINDING_COLUMNS, "finding_birads"]


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
    for column in ("study_id", "image_id"):  # they name the DICOM's folder and file
        if problem := path_problem(row[column], "images/"):
            return f"{column}: {problem}"
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
