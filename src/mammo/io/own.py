"""A user's own images: a folder of DICOM or PNG files and one CSV describing them (README, "Your own images").

One row per image, or per lesion of an abnormal image. Required columns: patient, image (a path relative to the
CSV's folder), laterality (L/R or LEFT/RIGHT), view (CC, MLO, ...), label (normal, benign or malignant). Optional:
lesion_type (mass or calcification: a lesion's class), the lesion as a box (xmin, ymin, xmax, ymax), or a centre
and radius (x, y, radius), or a mask file (mask: a path, the image's size, non-zero on the lesion), all in pixels of
the stored image; pixel_mm (else the DICOM's PixelSpacing), split (train or test: an official division), density.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mammo.io import FormatError
from mammo.io.cbis import path_problem
from mammo.io.dicom import PIXEL_MM_RANGE
from mammo.io.listed import BOX, CIRCLE, FINDING_COLUMNS, IMAGE_COLUMNS, image_size, read_listed_csv
from mammo.labels import class_code
from mammo.tables import REJECTED_COLUMNS, account

OWN_CSV = "images.csv"  # its name in the demo and under a data root (own/images.csv); data.own may name any CSV
REQUIRED = ["patient", "image", "laterality", "view", "label"]
OPTIONAL = ["lesion_type", "xmin", "ymin", "xmax", "ymax", "x", "y", "radius", "mask", "pixel_mm", "split", "density"]
SIDES = {"L": "LEFT", "LEFT": "LEFT", "R": "RIGHT", "RIGHT": "RIGHT"}
LABELS = {"normal": None, "benign": "BENIGN", "malignant": "MALIGNANT"}
LESION_TYPES = ("mass", "calcification")
SPLITS = ("train", "test")
_GEOMETRY = {"box": ["xmin", "ymin", "xmax", "ymax"], "circle": ["x", "y", "radius"], "mask": ["mask"]}


def read_own(csv_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(images, findings, rejected) in mammo.io.listed's tables: every CSV row is an image's row, a finding, or
    rejected with its line and reason. An image's rows must agree (patient, side, view, label, pixel size, split);
    an image whose rows disagree is rejected whole."""
    csv_path = Path(csv_path)
    table = read_listed_csv(csv_path, REQUIRED, "the CSV of your own images")
    for column in OPTIONAL:
        table[column] = table[column].str.strip() if column in table.columns else ""
    root = csv_path.parent
    images, findings, rejected = [], [], []

    def reject(line, item, reason):
        rejected.append({"file": str(csv_path), "row": line, "item": item, "stage": "index_own", "reason": reason})

    for image, rows in table.groupby("image", sort=True):
        scan_id = _scan_id(image)
        problem = _image_problem(rows, root, image)
        if problem is None:
            try:
                height, width = image_size(root / image)
            except (FormatError, OSError, ValueError, AttributeError) as err:
                problem = f"not a DICOM or PNG image ({getattr(err, 'reason', err)})"
        if problem is not None:
            for line in rows.index:
                reject(str(line), f"{scan_id}#{line}", problem)
            continue
        first = rows.iloc[0]
        label = first["label"].strip().lower()
        images.append(
            {
                "scan_id": scan_id,
                "patient_id": first["patient"],
                "path": str(root / image),
                "side": SIDES[first["laterality"].strip().upper()],
                "view": first["view"].strip().upper(),
                "height": height,
                "width": width,
                "pixel_mm": float(first["pixel_mm"]) if first["pixel_mm"] else np.nan,
                "density": first["density"],
                "split": first["split"].strip().lower(),
                "label_normal": int(label != "normal"),
            }
        )
        for line, row in rows.iterrows():
            if label == "normal":
                continue  # the image's row; a normal image has no finding
            finding, reason = _finding(row, LABELS[label], root, (height, width))
            if reason is not None:
                reject(str(line), f"{scan_id}#{line}", reason)
            else:
                findings.append({"roi_id": f"{scan_id}#{line}", "scan_id": scan_id, "patient_id": first["patient"], **finding})
    normal = {i["scan_id"] for i in images if not i["label_normal"]}
    rows = [(_scan_id(image), line) for line, image in table["image"].items()]
    account(
        [f"{scan_id}#{line}" for scan_id, line in rows],
        [f"{scan_id}#{line}" for scan_id, line in rows if scan_id in normal] + [f["roi_id"] for f in findings],
        [r["item"] for r in rejected],
    )
    return (
        pd.DataFrame(images, columns=IMAGE_COLUMNS),
        pd.DataFrame(findings, columns=FINDING_COLUMNS),
        pd.DataFrame(rejected, columns=REJECTED_COLUMNS),
    )


def _scan_id(image: str) -> str:
    """An image's id: its path under the CSV's folder, "/" made "_" (tile ids are parted at "/")."""
    return image.replace("/", "_")


def _image_problem(rows: pd.DataFrame, root: Path, image: str) -> str | None:
    """Why an image's rows cannot be used, if they cannot (before its header is read); `image`: its path under the
    CSV's folder `root`."""
    for column in ("patient", "laterality", "view", "label", "pixel_mm", "split"):
        if rows[column].str.strip().str.lower().nunique() > 1:
            return f"its rows disagree on {column} ({', '.join(sorted(set(rows[column])))})"
    first = rows.iloc[0]
    if not first["patient"].strip():
        return "no patient"
    if first["laterality"].strip().upper() not in SIDES:
        return f"laterality {first['laterality']!r} is not L, R, LEFT or RIGHT"
    if not first["view"].strip():
        return "no view"
    if first["label"].strip().lower() not in LABELS:
        return f"label {first['label']!r} is not normal, benign or malignant"
    lesion_columns = ["lesion_type", *(column for columns in _GEOMETRY.values() for column in columns)]
    if first["label"].strip().lower() == "normal" and (rows[lesion_columns] != "").any(axis=None):
        return "labelled normal, but a row gives a lesion"
    if first["split"] and first["split"].strip().lower() not in SPLITS:
        return f"split {first['split']!r} is not train or test"
    if first["pixel_mm"] and not (
        _number(first["pixel_mm"]) and PIXEL_MM_RANGE[0] <= float(first["pixel_mm"]) <= PIXEL_MM_RANGE[1]
    ):
        return f"pixel_mm {first['pixel_mm']!r} is not a number in {PIXEL_MM_RANGE[0]:g}..{PIXEL_MM_RANGE[1]:g} (a mammogram's pixel size in mm)"
    if problem := path_problem(image, "the CSV's folder"):
        return problem
    if not (root / image).exists():
        return f"{Path(image).name} not found"
    return None


def _finding(row: pd.Series, pathology: str, root: Path, shape: tuple[int, int]) -> tuple[dict | None, str | None]:
    """A lesion row of an abnormal image as a finding, or the reason it is not one."""
    kind = row["lesion_type"].strip().lower()
    if kind not in LESION_TYPES:
        return None, f"lesion_type {row['lesion_type']!r} is not mass or calcification (a lesion's class)"
    given = [name for name, columns in _GEOMETRY.items() if any(row[column] for column in columns)]
    if len(given) != 1:
        return None, "a lesion needs one of: a box (xmin, ymin, xmax, ymax), a centre and radius (x, y, radius), a mask"
    geometry = given[0]
    values = {column: row[column] for column in _GEOMETRY[geometry]}
    if geometry != "mask" and not all(_number(value) for value in values.values()):
        return None, f"{geometry} {', '.join(values.values())} is not numbers"
    rows, cols = shape
    finding = {"abnormality_type": kind, "categories": kind, "pathology": pathology, "class_code": class_code(kind, pathology)}
    if geometry == "box":
        left, top, right, bottom = (float(values[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
        if not (0 <= left < right <= cols and 0 <= top < bottom <= rows):
            return None, f"box ({left:g}, {top:g}, {right:g}, {bottom:g}) is empty or leaves the {cols}x{rows} image"
        return {**finding, **dict(zip(BOX, (top, left, bottom, right)))}, None
    if geometry == "circle":
        x, y, radius = (float(values[c]) for c in ("x", "y", "radius"))
        if not (0 <= x < cols and 0 <= y < rows and radius > 0):
            return None, f"centre ({x:g}, {y:g}) radius {radius:g} is not inside the {cols}x{rows} image"
        return {**finding, **dict(zip(CIRCLE, (y, x, radius)))}, None
    if problem := path_problem(values["mask"], "the CSV's folder"):
        return None, f"mask: {problem}"
    mask = root / values["mask"]
    if not mask.exists():
        return None, f"mask {values['mask']} not found"
    try:
        mask_shape = image_size(mask)
    except (FormatError, OSError, ValueError, AttributeError):
        return None, f"mask {values['mask']} is not a DICOM or PNG image"
    if mask_shape != shape:
        return None, f"mask {values['mask']} is {mask_shape[1]}x{mask_shape[0]}, the image {cols}x{rows}"
    return {**finding, "mask_path": str(mask)}, None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
