"""`mammo check`: what a download holds, what is missing and what would be rejected, per table."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from mammo.io import FormatError
from mammo.io.cbis import CSV_NAMES, PATH_COLUMNS, read_case_descriptions, resolve
from mammo.io.ddsm import find_abnormal_rois, find_normal_scans
from mammo.io.listed import findings_by_type
from mammo.io.mias import extract_archive, is_archive, read_info
from mammo.io.own import OWN_CSV, read_own
from mammo.io.vindr import BREAST_CSV, read_vindr


def check_cbis(csv_paths: list[str | Path], root: str | Path | None = None) -> dict:
    """CSV rows, patients, scans; every referenced DICOM looked up under root (default: the CSVs' folder)."""
    rois, rejected = read_case_descriptions(csv_paths)
    root = Path(root) if root else Path(csv_paths[0]).parent
    referenced = sorted({path for column in PATH_COLUMNS for path in rois[column]})
    missing = [path for path in referenced if not resolve(root, path).exists()]
    return {
        "rows": int(len(rois) + len(rejected)),
        "patients": int(rois["patient_id"].nunique()),
        "scans": int(rois["image_file_path"].nunique()),
        "files_found": len(referenced) - len(missing),
        "missing_files": missing,
        "rejected": _rows(rejected),
    }


def check_mias(info_path: str | Path) -> dict:
    """Info.txt rows, patients (left/right pairs mdb001-002, ...), images, and the PGMs beside it; `info_path` may
    be the official archive (all-mias.tar.gz), checked and unpacked into a temporary folder."""
    if is_archive(info_path):
        with tempfile.TemporaryDirectory() as folder:
            return check_mias(extract_archive(info_path, folder))
    table, rejected = read_info(info_path)
    folder = Path(info_path).parent
    images = sorted(set(table["refnum"]))
    missing = [f"{refnum}.pgm" for refnum in images if not (folder / f"{refnum}.pgm").exists()]
    patients = {(int(refnum[3:]) + 1) // 2 for refnum in images}
    return {
        "rows": int(len(table) + len(rejected)),
        "patients": len(patients),
        "scans": len(images),
        "files_found": len(images) - len(missing),
        "missing_files": missing,
        "rejected": _rows(rejected),
    }


def check_ddsm(root: str | Path) -> dict:
    """Views listed in the `.ics` headers, cases, and the LJPEG files found."""
    scans, rejected = find_normal_scans(root)
    missing = rejected.loc[rejected["reason"].str.contains("not found"), "file"].tolist()
    return {
        "rows": int(len(scans) + len(rejected)),
        "patients": int(scans["patient_id"].nunique()) if len(scans) else 0,
        "scans": int(len(scans)),
        "files_found": int(len(scans)),
        "missing_files": missing,
        "rejected": _rows(rejected),
    }


def check_ddsm_abnormal(root: str | Path) -> dict | None:
    """The abnormalities outlined in `.OVERLAY` files under a DDSM root (cases/cancers/, benigns/, ...): rows are
    abnormalities and views that failed; None where the root holds no abnormal case."""
    rois, rejected = find_abnormal_rois(root)
    if not len(rois) and not len(rejected):
        return None
    missing = rejected.loc[rejected["reason"].str.contains("not found"), "file"].tolist()
    scans = int(rois["scan_id"].nunique())
    return {
        "rows": int(len(rois) + len(rejected)),
        "patients": int(rois["patient_id"].nunique()),
        "scans": scans,
        "files_found": scans,
        "missing_files": missing,
        "rejected": _rows(rejected),
    }


def check_vindr(root: str | Path) -> dict:
    """Image rows (breast-level CSV), studies (VinDr's patients), images and their DICOMs, boxed findings by type;
    the rejected rows of both CSVs."""
    images, findings, rejected = read_vindr(root)
    missing = rejected.loc[rejected["reason"].str.endswith(".dicom not found"), "reason"].str.removesuffix(" not found")
    return {
        "rows": int(len(images) + rejected["file"].str.endswith(BREAST_CSV).sum()),
        "patients": int(images["patient_id"].nunique()),
        "scans": int(len(images)),
        "files_found": int(len(images)),
        "missing_files": missing.tolist(),
        "rejected": _rows(rejected),
        "findings": findings_by_type(findings),
    }


def check_own(csv_path: str | Path) -> dict:
    """A user's own CSV: its rows (images, or lesions of abnormal images), patients, images found, located lesions
    by type; the rejected rows with their line and reason."""
    images, findings, rejected = read_own(csv_path)
    missing = rejected.loc[rejected["reason"].str.endswith(" not found"), "reason"].str.removesuffix(" not found")
    return {
        "rows": int(len(pd.read_csv(csv_path, dtype=str))),
        "patients": int(images["patient_id"].nunique()),
        "scans": int(len(images)),
        "files_found": int(len(images)),
        "missing_files": sorted(set(missing)),
        "rejected": _rows(rejected),
        "findings": findings_by_type(findings),
    }


def check_root(root: str | Path) -> dict:
    """Check the collections laid out under one data root (cbis-ddsm/, ddsm/, mias/, vindr/, own/images.csv)."""
    root = Path(root)
    report = {}
    csvs = [root / "cbis-ddsm" / name for name in CSV_NAMES if (root / "cbis-ddsm" / name).exists()]
    if csvs:
        report["cbis-ddsm"] = check_cbis(csvs)
    if (root / "ddsm").is_dir():
        report["ddsm"] = check_ddsm(root / "ddsm")
        if abnormal := check_ddsm_abnormal(root / "ddsm"):
            report["ddsm-abnormal"] = abnormal
    if (root / "mias" / "Info.txt").exists():
        report["mias"] = check_mias(root / "mias" / "Info.txt")
    if (root / "vindr" / BREAST_CSV).exists():
        report["vindr"] = check_vindr(root / "vindr")
    if (root / "own" / OWN_CSV).exists():
        report["own"] = check_own(root / "own" / OWN_CSV)
    if not report:
        raise FormatError(
            root, f"no cbis-ddsm/*_case_description_*.csv, ddsm/, mias/Info.txt, vindr/{BREAST_CSV} or own/{OWN_CSV} here"
        )
    return report


def format_report(report: dict) -> str:
    """A plain table, one line per collection, then the rejected rows and missing files."""
    lines = [f"{'table':<12}{'rows':>8}{'patients':>10}{'scans':>8}{'found':>8}{'missing':>9}{'rejected':>10}"]
    for name, entry in report.items():
        lines.append(
            f"{name:<12}{entry['rows']:>8}{entry['patients']:>10}{entry['scans']:>8}{entry['files_found']:>8}"
            f"{len(entry['missing_files']):>9}{len(entry['rejected']):>10}"
        )
    for name, entry in report.items():
        for row in entry["rejected"]:
            lines.append(f"{name}: rejected {row['file']} row {row['row']}: {row['reason']}")
        for path in entry["missing_files"]:
            lines.append(f"{name}: missing {path}")
    return "\n".join(lines)


def _rows(rejected) -> list[dict]:
    return [{"file": str(r["file"]), "row": str(r["row"]), "reason": r["reason"]} for _, r in rejected.iterrows()]
