"""Stages of workflow/rules/tiles.smk: tiles of one chunk of scans per collection, the patient-level split with its
reconciliation, the tile montage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mammo import split as splitting
from mammo.extract import BackgroundTiles, cbis_tiles, ddsm_normal_tiles, mias_tiles
from mammo.graph import in_chunk
from mammo.plots import montage
from mammo.records import tile_loader
from mammo.tables import REJECTED_COLUMNS, account, read_table, write_json, write_table
from mammo.tiles import NormalThresholds, NormalTiling, roi_method


def tiles_cbis(
    rois_path: str,
    root: str,
    dataset: str,
    recipe: dict,
    audit: dict,
    chunk: int,
    chunks: int,
    tiles_out: str,
    table_out: str,
    rejected_out: str,
) -> None:
    """ROI tiles of one chunk of scans, the recipe's background negatives if any, and the shortcut audit's tissue tiles."""
    rois = read_table(rois_path)
    rois = in_chunk(rois, "scan_id", chunk, chunks)
    method = roi_method(recipe["roi"])
    negatives = {"audit": _background(audit)}
    if "cbis_background" in recipe:
        negatives["background"] = _background(recipe["cbis_background"])
    images, table, rejected = cbis_tiles(rois, root, dataset, method, recipe["seed"], tiles_out, negatives)
    write_chunk(images, table, rejected, tiles_out, table_out, rejected_out)


def _background(settings: dict) -> BackgroundTiles:
    thresholds = NormalThresholds(**settings["thresholds"])
    return BackgroundTiles(settings["per_scan"], settings["max_overlap"], settings["margin"], tiling(settings), thresholds)


def tiles_ddsm(
    scans_path: str, dataset: str, recipe: dict, chunk: int, chunks: int, tiles_out: str, table_out: str, rejected_out: str
) -> None:
    scans = read_table(scans_path)
    scans = in_chunk(scans, "case", chunk, chunks)
    normals = recipe["normals"]
    thresholds = {scanner: NormalThresholds(**values) for scanner, values in normals["thresholds"].items()}
    images, table, rejected = ddsm_normal_tiles(scans, dataset, thresholds, tiling(normals), recipe["seed"], tiles_out)
    write_chunk(images, table, rejected, tiles_out, table_out, rejected_out)


def tiles_mias(
    images_path: str,
    rois_path: str,
    dataset: str,
    recipe: dict,
    tiles_out: str,
    table_out: str,
    rejected_out: str,
    summary_out: str,
) -> None:
    """The external test set of one recipe; every ROI and normal scan is tiled or rejected (summary.json says so)."""
    images, rois = read_table(images_path), read_table(rois_path)
    mias = recipe["mias"]
    method = roi_method(recipe["roi"], tile=mias["tile"])
    thresholds = NormalThresholds(**mias["thresholds"])
    tiles, table, rejected = mias_tiles(
        images, rois, dataset, method, thresholds, tiling(mias), mias["scale"], recipe["seed"], tiles_out
    )
    table["split"], table["kept"] = "mias", True
    write_chunk(tiles, table, rejected, tiles_out, table_out, rejected_out)
    write_json(mias_summary(images, rois, table, rejected), summary_out)


def mias_summary(images: pd.DataFrame, rois: pd.DataFrame, table: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    """Every ROI with coordinates and every normal scan is tiled or rejected; normal tiles of abnormal scans (lesion-free
    and edge tiles) are counted beside them."""
    items = rois["roi_id"].tolist() + [f"mias:{refnum}" for refnum in images.loc[images["label_normal"] == 0, "refnum"]]
    abnormal_scans = set(images.loc[images["label_normal"] != 0, "refnum"])
    beside = table["scan_id"].isin(abnormal_scans) & table["method"].isin(["lesion_free", "edge"])
    lesion_free = table["method"] == "lesion_free"
    tiled = table.loc[~beside, "tile_id"].str.split("/").str[1].unique().tolist()
    return {
        "collection": "mini-mias",
        "unit": "ROIs with coordinates and normal scans",
        **account(items, tiled, rejected["item"].tolist()),
        "tiles": len(table),
        "lesion_free_tiles": int(lesion_free.sum()),
        "lesion_free_scans": int(table.loc[lesion_free, "scan_id"].nunique()),
        "edge_tiles": int((table["method"] == "edge").sum()),
        "per_class": {str(k): int(v) for k, v in table["class_code"].value_counts().sort_index().items()},
    }


def tiling(settings: dict) -> NormalTiling:
    """The tissue grid of a recipe entry (normals, mias, cbis_background)."""
    downscale = tuple(settings["downscale"]) if "downscale" in settings else None
    stride = settings["stride"] if isinstance(settings["stride"], int) else tuple(settings["stride"])
    return NormalTiling(tile=settings["tile"], stride=stride, border_crop=settings["border_crop"], downscale=downscale)


def write_chunk(images, table, rejected, tiles_out, table_out, rejected_out) -> None:
    Path(tiles_out).parent.mkdir(parents=True, exist_ok=True)
    np.save(tiles_out, images)
    write_table(table, table_out)
    write_table(rejected, rejected_out)
    print(f"{len(table)} tiles, {len(rejected)} rejected")


def split_dataset(
    tile_tables: list[str],
    rejected_tables: list[str],
    sources: dict[str, str],
    recipe: dict,
    tiles_out: str,
    audit_out: str,
    rejected_out: str,
    summary_out: str,
) -> None:
    """Assign patient-level splits, balance, and reconcile: every input ROI/scan is tiled or rejected.

    The shortcut audit's tissue tiles are set apart (never trained on) and follow their patient's split.
    """
    tiles = pd.concat([read_table(p) for p in tile_tables], ignore_index=True)
    rejected = pd.concat([read_table(p) for p in rejected_tables], ignore_index=True)[REJECTED_COLUMNS]
    is_audit = tiles["method"] == "audit"
    audit, tiles = tiles[is_audit].copy(), tiles[~is_audit]
    tiles = splitting.assign_splits(tiles, recipe["seed"])
    tiles = splitting.balance(tiles, recipe["abnormal_fraction"], recipe["seed"])
    patient_split = tiles.drop_duplicates("patient_id").set_index("patient_id")["split"]
    audit["split"] = audit["patient_id"].map(patient_split).fillna("")  # "": a patient none of whose ROIs was tiled
    summary = splitting.summary(tiles)
    summary["reconciliation"] = reconcile(tiles, rejected, sources)
    summary["audit_tiles"] = {str(k): int(v) for k, v in audit["split"].value_counts().sort_index().items()}
    write_table(tiles, tiles_out)
    write_table(audit, audit_out)
    write_table(rejected, rejected_out)
    write_json(summary, summary_out)


def reconcile(tiles: pd.DataFrame, rejected: pd.DataFrame, sources: dict[str, str]) -> dict:
    """Count inputs per source and prove each is in the tile table or the rejected table."""
    rois = read_table(sources["cbis_rois"])
    scans = read_table(sources["ddsm_scans"])
    roi_tiles = tiles[(tiles["source"] == "cbis-ddsm") & tiles["method"].isin(["method1", "method2"])]
    tiled_rois = {tile_id.split("/")[1] for tile_id in roi_tiles["tile_id"]}
    tiled_scans = set(tiles.loc[tiles["source"] == "ddsm", "scan_id"])
    rejected_items = set(rejected["item"].astype(str))
    lost_rois = sorted(set(rois["roi_id"]) - tiled_rois - rejected_items)
    lost_scans = sorted(set(scans["scan_id"]) - tiled_scans - rejected_items)
    if lost_rois or lost_scans:
        raise ValueError(f"inputs neither tiled nor rejected: ROIs {lost_rois[:5]}, scans {lost_scans[:5]}")
    return {
        "cbis_rois": len(rois),
        "cbis_rois_tiled": len(tiled_rois),
        "ddsm_scans": len(scans),
        "ddsm_scans_tiled": len(tiled_scans),
        "rejected_rows": len(rejected),
    }


def plot_montage(tile_tables: list[str], seed: int, out: str) -> None:
    tiles = pd.concat([read_table(path) for path in tile_tables], ignore_index=True)
    montage(splitting.kept(tiles), tile_loader(), out, seed=seed)
