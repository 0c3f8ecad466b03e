"""CBIS-DDSM case description tables (`*_case_description_*_set.csv`)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from mammo.io import FormatError
from mammo.labels import class_code
from mammo.tables import REJECTED_COLUMNS

CSV_NAMES = (
    "mass_case_description_train_set.csv",
    "calc_case_description_train_set.csv",
    "mass_case_description_test_set.csv",
    "calc_case_description_test_set.csv",
)
PATH_COLUMNS = ("image_file_path", "cropped_image_file_path", "roi_mask_file_path")
ROI_COLUMNS = [
    "roi_id",
    "patient_id",
    "division",
    "side",
    "view",
    "abnormality_id",
    "abnormality_type",
    "pathology",
    "pathology_original",
    "class_code",
    "breast_density",
    "subtlety",
    "assessment",
    "shape_or_type",
    "margins_or_distribution",
    "out_of_range",
    "scan_id",
    *PATH_COLUMNS,
    "source_file",
    "row",
]
_RENAME = {
    "breast density": "breast_density",  # quirk: the calc tables spell it with a space
    "left or right breast": "side",
    "image view": "view",
    "abnormality id": "abnormality_id",
    "abnormality type": "abnormality_type",
    "mass shape": "shape_or_type",
    "calc type": "shape_or_type",
    "mass margins": "margins_or_distribution",
    "calc distribution": "margins_or_distribution",
    "image file path": "image_file_path",
    "cropped image file path": "cropped_image_file_path",
    "roi mask file path": "roi_mask_file_path",
}
_PATHOLOGY = {"MALIGNANT": "MALIGNANT", "BENIGN": "BENIGN", "BENIGN_WITHOUT_CALLBACK": "BENIGN"}


def read_case_descriptions(paths: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read CBIS-DDSM description CSVs into one ROI table and a rejected table.

    One output row per ROI (labels per ROI, never per image); every input row
    is either in the ROI table or in the rejected table with its reason.
    """
    tables, rejected = [], []
    for path in paths:
        table, bad = _read_one(Path(path))
        tables.append(table)
        rejected.extend(bad)
    rois = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=ROI_COLUMNS)
    duplicated = rois.duplicated("roi_id", keep="first")
    for _, row in rois[duplicated].iterrows():
        rejected.append(_reject(row["source_file"], row["row"], f"duplicate ROI {row['roi_id']}", row["roi_id"]))
    rois = rois[~duplicated].reset_index(drop=True)
    return rois[ROI_COLUMNS], pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def _column_name(header: str) -> str:
    """The one name a CBIS-DDSM header spelling stands for (the tables spell some with spaces, some with underscores)."""
    return _RENAME.get(header.lower(), header.lower().replace(" ", "_"))


def _read_one(path: Path) -> tuple[pd.DataFrame, list[dict]]:
    raw = read_csv_table(path, _column_name)
    missing = {"patient_id", "side", "view", "abnormality_id", "abnormality_type", "pathology", *PATH_COLUMNS} - set(raw.columns)
    if missing:
        raise FormatError(path, f"missing columns {sorted(missing)}")
    division = "test" if "_test_" in path.name else "train"
    rows, rejected = [], []
    for row_number, record in enumerate(raw.to_dict("records"), start=1):  # data record number (records may span lines)
        for column in list(record):
            if record[column] in ("NA", "N/A", ""):
                record[column] = None
        problem = _row_problem(record)
        if problem:
            rejected.append(_reject(path, row_number, problem))
            continue
        abnormality_type = "calcification" if record["abnormality_type"].lower().startswith("calc") else "mass"
        pathology = _PATHOLOGY[record["pathology"].upper()]
        prefix = record["image_file_path"].split("/")[0]
        scan_id = prefix if prefix else f"{record['patient_id']}_{record['side']}_{record['view']}"
        rows.append(
            {
                "roi_id": f"{scan_id}_{int(record['abnormality_id'])}",
                "patient_id": record["patient_id"],
                "division": division,
                "side": record["side"].upper(),
                "view": record["view"].upper(),
                "abnormality_id": int(record["abnormality_id"]),
                "abnormality_type": abnormality_type,
                "pathology": pathology,
                "pathology_original": record["pathology"].upper(),
                "class_code": class_code(abnormality_type, pathology),
                "breast_density": _int_or_none(record.get("breast_density")),
                "subtlety": _int_or_none(record.get("subtlety")),
                "assessment": _int_or_none(record.get("assessment")),
                "shape_or_type": record.get("shape_or_type"),
                "margins_or_distribution": record.get("margins_or_distribution"),
                # Quirk: a few rows carry 0 where the scale starts at 1 (subtlety) or density 1-4.
                "out_of_range": _out_of_range(record),
                "scan_id": scan_id,
                **{column: record[column] for column in PATH_COLUMNS},
                "source_file": str(path),
                "row": row_number,
            }
        )
    table = pd.DataFrame(rows, columns=ROI_COLUMNS)
    for column in ("breast_density", "subtlety", "assessment"):
        table[column] = table[column].astype("Int64")
    return table, rejected


def read_csv_table(path: Path, column_name: Callable[[str], str] = str) -> pd.DataFrame:
    """A CSV's records as stripped text, indexed by the line each starts on (line 1: the header), its columns named
    by `column_name` (header spelling -> name); read strictly, every problem a FormatError naming the line.

    Read: UTF-8 (a BOM allowed), CRLF, fields quoted where needed or all quoted, rows indented, a trailing comma,
    blank lines, line breaks inside quoted fields at their end (CBIS-DDSM's paths). Refused: two columns of one
    name, a record of another width than the header, and a line break inside a field's text: a lost closing quote,
    which swallows the records after it into one field without any parser error.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise FormatError(path, f"line {line}: not UTF-8 (byte {data[err.start]:#04x}); save the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    header, records, end = None, {}, 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            fields = [field.strip() for field in fields]
            if fields in ([], [""]):
                continue  # a blank line
            if any("\n" in field or "\r" in field for field in fields):
                raise FormatError(path, f"line {start}: a field runs over a line break (a lost closing quote?)")
            if header is not None and len(fields) == len(header) + 1 and fields[-1] == "":
                fields = fields[:-1]  # a trailing comma
            if header is None:
                header = fields[:-1] if len(fields) > 1 and fields[-1] == "" else fields
                names = _column_names(path, start, header, column_name)
            elif len(fields) != len(header):
                raise FormatError(path, f"line {start}: {len(fields)} fields, the header has {len(header)}")
            else:
                records[start] = fields
    except csv.Error as err:
        raise FormatError(path, f"line {reader.line_num}: {err} (a lost closing quote?)") from None
    if header is None:
        raise FormatError(path, "empty CSV: no header line")
    return pd.DataFrame(list(records.values()), index=list(records), columns=names, dtype=str)


def _column_names(path: Path, line: int, header: list[str], column_name: Callable[[str], str]) -> list[str]:
    """The header's names by `column_name`; two spellings of one name are refused (which column would be meant?)."""
    spellings: dict[str, str] = {}
    for spelling in header:
        name = column_name(spelling)
        if name in spellings:
            raise FormatError(path, f"line {line}: columns {spellings[name]!r} and {spelling!r} both mean {name}")
        spellings[name] = spelling
    return list(spellings)


def csv_records(paths: list[str | Path]) -> list[tuple[str, int]]:
    """(file, record number) of every data record in the CSVs: what the ROI and rejected tables must account for."""
    return [(str(path), number) for path in paths for number in range(1, len(read_csv_table(Path(path), _column_name)) + 1)]


def _row_problem(record: dict) -> str | None:
    if not record.get("patient_id"):
        return "missing patient_id"
    if (record.get("pathology") or "").upper() not in _PATHOLOGY:
        return f"unknown pathology {record.get('pathology')!r}"
    if (record.get("abnormality_type") or "").lower() not in ("mass", "calcification", "calc"):
        return f"unknown abnormality type {record.get('abnormality_type')!r}"
    if not (record.get("abnormality_id") or "").isdigit():
        return f"abnormality id {record.get('abnormality_id')!r} is not a positive integer"
    if (record.get("side") or "").upper() not in ("LEFT", "RIGHT"):
        return f"unknown side {record.get('side')!r}"
    if (record.get("view") or "").upper() not in ("CC", "MLO"):
        return f"unknown view {record.get('view')!r}"
    for column in PATH_COLUMNS:
        problem = path_problem(record.get(column))
        if problem:
            return f"{column}: {problem}"
    return None


def path_problem(relative: str | None, root: str = "the data root") -> str | None:
    """Why a path read from a table cannot be used under its collection's folder (`root`, as the reason names it),
    or None: missing, absolute (a drive letter too), or with a `..` part (either separator)."""
    if not relative:
        return "missing path"
    posix = PurePosixPath(relative.replace("\\", "/"))
    if posix.is_absolute() or re.match(r"^[A-Za-z]:", relative):
        return f"absolute path {relative!r} escapes {root}"
    if ".." in posix.parts:
        return f"path {relative!r} escapes {root}"
    return None


def resolve(root: str | Path, relative: str) -> Path:
    """Resolve a CSV path under the data root: the CSV folder layout, else the layout of TCIA's downloader.

    Quirk: TCIA's downloader writes `<scan>/<date>-DDSM-NA-<last 5 digits of the study UID>/
    <n>.000000-<description>-<last 5 digits of the series UID>/1-<k>.dcm` (under an optional
    `CBIS-DDSM/` folder), with 1-1.dcm for the CSV's 000000.dcm and 1-2.dcm for 000001.dcm.
    Either layout may lie under a `CBIS-DDSM/` folder of the root.
    When neither layout has the file, the CSV-layout path is returned (and reported missing).
    """
    csv_layout = Path(root) / PurePosixPath(relative.replace("\\", "/"))
    for candidate in (csv_layout, Path(root) / "CBIS-DDSM" / PurePosixPath(relative.replace("\\", "/"))):
        if candidate.exists():
            return candidate
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if len(parts) != 4 or not parts[3][:-4].isdigit():
        return csv_layout
    scan_folder, study_uid, series_uid, file_name = parts
    file_name = f"1-{int(file_name[:-4]) + 1}.dcm"
    matches = [
        path
        for top in (Path(root), Path(root) / "CBIS-DDSM")
        for path in (top / scan_folder).glob(f"*-{study_uid[-5:]}/*-{series_uid[-5:]}/{file_name}")
    ]
    return matches[0] if len(matches) == 1 else csv_layout


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _out_of_range(record: dict) -> bool:
    subtlety = _int_or_none(record.get("subtlety"))
    density = _int_or_none(record.get("breast_density"))
    return (subtlety is not None and not 1 <= subtlety <= 5) or (density is not None and not 1 <= density <= 4)


def _reject(path, row, reason: str, item: str = "") -> dict:
    return {"file": str(path), "row": row, "item": item, "stage": "read_csv", "reason": reason}


def is_mask(candidate: np.ndarray, scan_shape: tuple[int, int], tolerance: float = 1e-3) -> bool:
    """A mask is binary (0 and one other value) and has the scan's size or aspect ratio; a crop is neither."""
    values = np.unique(candidate[:: max(1, candidate.shape[0] // 256), :: max(1, candidate.shape[1] // 256)])
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        return False
    return aspect_matches(candidate.shape, scan_shape, tolerance)


def aspect_matches(shape_a: tuple[int, int], shape_b: tuple[int, int], tolerance: float = 1e-3) -> bool:
    return abs(shape_a[0] / shape_a[1] - shape_b[0] / shape_b[1]) <= tolerance * (shape_b[0] / shape_b[1])
