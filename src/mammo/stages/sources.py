"""Stages of workflow/rules/sources.smk: index each collection (every row indexed or rejected) and unpack the mini-MIAS
archive.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mammo.io.cbis import csv_records, read_case_descriptions
from mammo.io.ddsm import find_abnormal_rois, find_normal_scans, listed_scans
from mammo.io.listed import findings_by_type
from mammo.io.mias import index_info, unpack_archive
from mammo.sources import LISTED
from mammo.tables import account, write_json, write_table


def index_cbis(csv_paths: list[str], rois_out: str, rejected_out: str, summary_out: str) -> None:
    rois, rejected = read_case_descriptions(csv_paths)
    accepted = list(zip(rois["source_file"], rois["row"].astype(int)))
    counts = account(csv_records(csv_paths), accepted, list(zip(rejected["file"], rejected["row"].astype(int))))
    summary = {
        "collection": "cbis-ddsm",
        "unit": "CSV records (one ROI each)",
        **counts,
        "patients": int(rois["patient_id"].nunique()),
        "scans": int(rois["scan_id"].nunique()),
    }
    _write_index(summary, summary_out, {rois_out: rois, rejected_out: rejected})


def index_ddsm(root: str, scans_out: str, rejected_out: str, summary_out: str) -> None:
    scans, rejected = find_normal_scans(root)
    counts = account(listed_scans(root), scans["scan_id"].tolist(), rejected["item"].tolist())
    summary = {
        "collection": "ddsm",
        "unit": "views listed in .ics files (an unreadable .ics counts once)",
        **counts,
        "patients": int(scans["patient_id"].nunique()),
        "cases": int(scans["case"].nunique()),
    }
    _write_index(summary, summary_out, {scans_out: scans, rejected_out: rejected})


def index_ddsm_abnormal(root: str, rois_out: str, rejected_out: str, summary_out: str) -> None:
    """The abnormalities outlined in DDSM's `.OVERLAY` files. Accounted per outlined view: its overlay was read (its
    abnormalities indexed or rejected one by one) or the view was rejected whole (no overlay, no LJPEG, unreadable);
    and per stray `.OVERLAY` (of a view the .ics does not mark), rejected."""
    rois, rejected = find_abnormal_rois(root)
    views = listed_scans(root, outlined=True)
    whole = rejected["item"].isin(views)
    read = sorted(set(rois["scan_id"]) | {item.rsplit(".", 1)[0] for item in rejected.loc[~whole, "item"]})
    summary = {
        "collection": "ddsm-abnormal",
        "unit": "views marked OVERLAY in .ics files, and stray .OVERLAY files",
        **account(views, read, rejected.loc[whole, "item"].tolist()),
        "abnormalities": len(rois),
        "abnormalities_rejected": int((~whole).sum()),
        "patients": int(rois["patient_id"].nunique()),
        "per_class": {str(k): int(v) for k, v in rois["class_code"].value_counts().sort_index().items()},
    }
    _write_index(summary, summary_out, {rois_out: rois, rejected_out: rejected})


def index_listed(kind: str, root: str, images_out: str, findings_out: str, rejected_out: str, summary_out: str) -> None:
    """A listed collection (mammo.sources.LISTED: VinDr-Mammo, your own CSV): its reader proves every row of its
    tables an image, a located finding or rejected."""
    images, findings, rejected = LISTED[kind].read(root)
    summary = {
        "collection": kind,
        "unit": "rows: images and located findings accepted, rows rejected",
        "inputs": int(len(images) + len(findings) + len(rejected)),
        "accepted": int(len(images) + len(findings)),
        "rejected": int(len(rejected)),
        **_listed_counts(images, findings, rejected),
    }
    _write_index(summary, summary_out, {images_out: images, findings_out: findings, rejected_out: rejected})


def _listed_counts(images: pd.DataFrame, findings: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    return {
        "images": len(images),
        "patients": int(images["patient_id"].nunique()),
        "abnormal_images": int(images["label_normal"].sum()),
        "findings": findings_by_type(findings),
        "rejected_rows": len(rejected),
        "splits": {str(split): int(count) for split, count in images["split"].value_counts().sort_index().items()},
    }


def index_mias(info_path: str, images_out: str, rois_out: str, rejected_out: str, summary_out: str) -> None:
    images, rois, rejected, counts = index_info(info_path)
    summary = {
        "collection": "mini-mias",
        "unit": "Info.txt annotation rows",
        **counts,
        "images": len(images),
        "abnormal_images": int(images["label_normal"].sum()),
        "rois": len(rois),
    }
    _write_index(summary, summary_out, {images_out: images, rois_out: rois, rejected_out: rejected})


def _write_index(summary: dict, summary_out: str, tables: dict[str, pd.DataFrame]) -> None:
    """Write a source's tables and its summary, which states inputs = accepted + rejected."""
    for path, table in tables.items():
        write_table(table, path)
    write_json(summary, summary_out)


def unpack_mias(archive: str, info_out: str) -> None:
    """The official mini-MIAS archive, checked and unpacked once, so that its folder holds Info.txt and the films."""
    info = unpack_archive(archive, Path(info_out).parent)
    print(f"{archive} -> {info.parent}")
