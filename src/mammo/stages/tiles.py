"""Stages of workflow/rules/tiles.smk: tiles of one chunk of scans per collection, the patient-level split with its
reconciliation, the tile montage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mammo import split as splitting
from mammo.extract import (
    BackgroundTiles,
    CbisScans,
    DdsmScans,
    ListedScans,
    ddsm_normal_tiles,
    joined,
    mias_tiles,
    normal_scan_tiles,
    roi_tiles,
)
from mammo.graph import in_chunk
from mammo.io.listed import listed_rois
from mammo.records import tile_loader
from mammo.same_film import match_films
from mammo.sources import LISTED, SOURCES
from mammo.tables import REJECTED_COLUMNS, account, read_table, write_json, write_table
from mammo.tiles import NormalThresholds, NormalTiling, roi_method


def tiles_cbis(
    rois_path: str, root: str, dataset: str, recipe: dict, audit: dict, chunk: int, chunks: int, outputs: dict[str, str]
) -> None:
    """ROI tiles of one chunk of CBIS-DDSM scans, the recipe's background negatives if any, the shortcut audit's
    tissue tiles, and each scan's fingerprint. `outputs`: tiles, table, rejected, fingerprints."""
    _outlined_tiles(CbisScans(root), _chunk_rows(rois_path, "cbis", chunk, chunks), dataset, recipe, audit, outputs)


def tiles_ddsm_abnormal(
    rois_path: str, dataset: str, recipe: dict, audit: dict, chunk: int, chunks: int, outputs: dict[str, str]
) -> None:
    """The same for one chunk of DDSM abnormal cases: their outlines through the same ROI extraction."""
    _outlined_tiles(DdsmScans(), _chunk_rows(rois_path, "ddsm_abnormal", chunk, chunks), dataset, recipe, audit, outputs)


def _outlined_tiles(
    reader: CbisScans | DdsmScans, rois: pd.DataFrame, dataset: str, recipe: dict, audit: dict, outputs: dict[str, str]
) -> None:
    method, seed = roi_method(recipe["roi"]), recipe["seed"]
    write_chunk(roi_tiles(rois, reader, dataset, method, seed, outputs["tiles"], _negatives(recipe, audit)), outputs)


def tiles_listed(
    source: str,
    images_path: str,
    findings_path: str,
    dataset: str,
    recipe: dict,
    audit: dict,
    chunk: int,
    chunks: int,
    outputs: dict[str, str],
) -> None:
    """One chunk of the patients of a listed collection (VinDr-Mammo, a user's own CSV; mammo.io.listed): its
    located findings through the same ROI extraction (a box, circle or mask file as the mask), lesion-free tiles of
    their images, and the tissue grid of its normal images, all at the CBIS-DDSM scale."""
    images = _chunk_rows(images_path, source, chunk, chunks)
    rois, unused = listed_rois(images, read_table(findings_path), f"tiles_{source}")
    method, seed = roi_method(recipe["roi"]), recipe["seed"]
    found = roi_tiles(rois, ListedScans(source), dataset, method, seed, outputs["tiles"], _negatives(recipe, audit))
    normals = recipe["normals"]
    normal = images[images["label_normal"] == 0]
    grid = normal_scan_tiles(
        normal, ListedScans(source), dataset, _scanner_thresholds(normals), tiling(normals), seed, outputs["tiles"]
    )
    tiles, table, rejected, fingerprints = joined(found, grid)
    write_chunk((tiles, table, pd.concat([rejected, unused], ignore_index=True), fingerprints), outputs)


def _negatives(recipe: dict, audit: dict) -> dict[str, BackgroundTiles]:
    """Lesion-free tiles of the abnormal scans: the shortcut audit's, and the recipe's training negatives if any."""
    negatives = {"audit": _background(audit)}
    if "cbis_background" in recipe:
        negatives["background"] = _background(recipe["cbis_background"])
    return negatives


def _background(settings: dict) -> BackgroundTiles:
    thresholds = NormalThresholds(**settings["thresholds"])
    return BackgroundTiles(settings["per_scan"], settings["max_overlap"], settings["margin"], tiling(settings), thresholds)


def tiles_ddsm(scans_path: str, dataset: str, recipe: dict, chunk: int, chunks: int, outputs: dict[str, str]) -> None:
    """Normal-tissue tiles of one chunk of DDSM normal cases. `outputs`: tiles, table, rejected."""
    scans = _chunk_rows(scans_path, "ddsm", chunk, chunks)
    normals = recipe["normals"]
    found = ddsm_normal_tiles(scans, dataset, _scanner_thresholds(normals), tiling(normals), recipe["seed"], outputs["tiles"])
    write_chunk(found, outputs)


def _chunk_rows(index_path: str, kind: str, chunk: int, chunks: int) -> pd.DataFrame:
    """The index rows of one chunk job, by the chunk key the job graph uses for its files (mammo.sources.SOURCES)."""
    return in_chunk(read_table(index_path), SOURCES[kind].chunk_key, chunk, chunks)


def _scanner_thresholds(normals: dict) -> dict[str, NormalThresholds]:
    """A recipe's tissue thresholds by scanner (its `normals.thresholds`)."""
    return {scanner: NormalThresholds(**values) for scanner, values in normals["thresholds"].items()}


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
    write_chunk((tiles, table, rejected), {"tiles": tiles_out, "table": table_out, "rejected": rejected_out})
    write_json(mias_summary(images, rois, table, rejected), summary_out)


def mias_summary(images: pd.DataFrame, rois: pd.DataFrame, table: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    """Every ROI with coordinates and every normal scan is tiled or rejected; normal tiles of abnormal scans (lesion-free
    and edge tiles) are counted beside them."""
    items = rois["roi_id"].tolist() + [f"mias:{refnum}" for refnum in images.loc[images["label_normal"] == 0, "refnum"]]
    abnormal_scans = set(images.loc[images["label_normal"] != 0, "refnum"])
    beside = table["scan_id"].isin(abnormal_scans) & table["method"].isin(["lesion_free", "edge"])
    lesion_free = table["method"] == "lesion_free"
    tiled = roi_ids(table.loc[~beside]).unique().tolist()
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


def write_chunk(found: tuple, outputs: dict[str, str]) -> None:
    """A tile job's outputs: `found` is (tiles, table, rejected) and, where the job reads ROI scans, their
    fingerprints; `outputs` names their files (tiles, table, rejected, fingerprints)."""
    images, table, rejected, *fingerprints = found
    Path(outputs["tiles"]).parent.mkdir(parents=True, exist_ok=True)
    np.save(outputs["tiles"], images)
    write_table(table, outputs["table"])
    write_table(rejected, outputs["rejected"])
    if fingerprints:
        write_table(fingerprints[0], outputs["fingerprints"])
    print(f"{len(table)} tiles, {len(rejected)} rejected")


def split_dataset(
    tile_tables: list[str],
    rejected_tables: list[str],
    fingerprint_tables: list[str],
    sources: dict[str, str],
    recipe: dict,
    outputs: dict[str, str],
) -> None:
    """Assign patient-level splits, balance, and reconcile: every input ROI/scan is tiled or rejected.

    With both abnormal sources, a DDSM film that is also a CBIS-DDSM film is used once (CBIS-DDSM's) and its woman is
    one patient in both. The shortcut audit's tissue tiles are set apart (never trained on) and follow their
    patient's split. `outputs`: tiles, audit, rejected, same_films, summary.
    """
    tiles = pd.concat([read_table(p) for p in tile_tables], ignore_index=True)
    rejected = pd.concat([read_table(p) for p in rejected_tables], ignore_index=True)[REJECTED_COLUMNS]
    fingerprints = pd.concat([read_table(p) for p in fingerprint_tables], ignore_index=True)
    same, closest = match_films(*_by_collection(fingerprints))
    tiles, dropped = prefer_cbis(tiles, fingerprints, same)
    rejected = pd.concat([rejected, dropped], ignore_index=True)
    is_audit = tiles["method"] == "audit"
    audit, tiles = tiles[is_audit].copy(), tiles[~is_audit]
    tiles = splitting.assign_splits(tiles, recipe["seed"])
    tiles = splitting.balance(tiles, recipe["abnormal_fraction"], recipe["seed"])
    patient_split = tiles.drop_duplicates("patient_id").set_index("patient_id")["split"]
    audit["split"] = audit["patient_id"].map(patient_split).fillna("")  # "": a patient none of whose ROIs was tiled
    summary = splitting.summary(tiles)
    summary["reconciliation"] = reconcile(tiles, rejected, sources)
    summary["same_films"] = {
        "pairs": len(same),
        "women": int(same["patient_id"].nunique()),
        "lowest_correlation": float(same["correlation"].min()) if len(same) else None,
        "closest_other_film": closest,
    }
    summary["audit_tiles"] = {str(k): int(v) for k, v in audit["split"].value_counts().sort_index().items()}
    write_table(tiles, outputs["tiles"])
    write_table(audit, outputs["audit"])
    write_table(rejected, outputs["rejected"])
    write_table(same, outputs["same_films"])
    write_json(summary, outputs["summary"])


def _by_collection(fingerprints: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CBIS-DDSM's and DDSM's scans of a fingerprint table."""
    return fingerprints[fingerprints["source"] == "cbis-ddsm"], fingerprints[fingerprints["source"] == "ddsm"]


def prefer_cbis(tiles: pd.DataFrame, fingerprints: pd.DataFrame, same: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where a DDSM abnormal film is also a CBIS-DDSM film (`same`: the pairs of match_films), its ROIs are rejected
    (CBIS-DDSM's outline of the film is used) and its lesion-free tiles dropped, and every tile of that DDSM woman
    takes the CBIS-DDSM patient id, so that the split keeps the woman whole. Returns the tiles and the rejected ROIs."""
    if not len(same):
        return tiles, pd.DataFrame(columns=REJECTED_COLUMNS)
    film = dict(zip(same["other_scan_id"], same["scan_id"]))
    correlation = dict(zip(same["other_scan_id"], same["correlation"]))
    path = dict(zip(fingerprints["scan_id"], fingerprints["path"]))
    from_ddsm = (tiles["source"] == "ddsm") & tiles["scan_id"].isin(film)
    dropped_rois = roi_tiles_of(tiles[from_ddsm], "ddsm")
    dropped_rois = dropped_rois.assign(roi_id=roi_ids(dropped_rois)).drop_duplicates("roi_id")
    rejected = pd.DataFrame(
        {
            "file": dropped_rois["scan_id"].map(path),
            "row": dropped_rois["view"],
            "item": dropped_rois["roi_id"],
            "stage": "same_film",
            "reason": [
                f"the same film as CBIS-DDSM {film[scan]} (correlation {correlation[scan]}): CBIS-DDSM's ROIs are used"
                for scan in dropped_rois["scan_id"]
            ],
        },
        columns=REJECTED_COLUMNS,
    )
    tiles = tiles[~from_ddsm].copy()
    tiles["patient_id"] = tiles["patient_id"].replace(one_woman(same))
    return tiles.reset_index(drop=True), rejected


def one_woman(same: pd.DataFrame) -> dict[str, str]:
    """Patient ids that name one woman: each DDSM patient of a shared film -> the CBIS-DDSM patient (the smallest,
    should two CBIS-DDSM ids ever share a DDSM case: all of them then map to it as well)."""
    parent: dict[str, str] = {}

    def root(patient: str) -> str:
        while parent.get(patient, patient) != patient:
            patient = parent[patient]
        return patient

    for cbis, ddsm in zip(same["patient_id"], same["other_patient_id"]):
        first, second = sorted((root(cbis), root(ddsm)), key=lambda p: (not p.startswith("cbis:"), p))
        parent[second] = first
    return {patient: root(patient) for patient in parent}


def reconcile(tiles: pd.DataFrame, rejected: pd.DataFrame, sources: dict[str, str]) -> dict:
    """Count inputs per source (CBIS-DDSM ROIs, DDSM abnormal ROIs, DDSM normal scans, VinDr-Mammo findings and
    images; those the recipe reads) and prove each is in the tile table or the rejected table."""
    rejected_items = set(rejected["item"].astype(str))
    counts = {}
    for name, source, column in (
        ("cbis_rois", "cbis-ddsm", "roi_id"),
        ("ddsm_rois", "ddsm", "roi_id"),
        ("ddsm_scans", "ddsm", "scan_id"),
        *((f"{source}_findings", source, "roi_id") for source in LISTED),
    ):
        if name not in sources:
            continue
        inputs = set(read_table(sources[name])[column])
        if column == "roi_id":
            tiled = set(roi_ids(roi_tiles_of(tiles, source)))
        else:
            tiled = set(tiles.loc[(tiles["source"] == source) & (tiles["method"] == "normal_grid"), "scan_id"])
        lost = sorted(inputs - tiled - rejected_items)
        if lost:
            raise ValueError(f"{name}: inputs neither tiled nor rejected: {lost[:5]}")
        counts[name], counts[f"{name}_tiled"] = len(inputs), len(tiled & inputs)
    for source in LISTED:  # every listed image: tiled, holding findings (counted above), or rejected
        if f"{source}_images" in sources:
            images, findings = read_table(sources[f"{source}_images"]), read_table(sources[f"{source}_findings"])
            lost = sorted(set(images["scan_id"]) - set(tiles["scan_id"]) - set(findings["scan_id"]) - rejected_items)
            if lost:
                raise ValueError(f"{source}_images: inputs neither tiled nor rejected: {lost[:5]}")
            counts[f"{source}_images"] = len(images)
    counts["rejected_rows"] = len(rejected)
    return counts


def roi_tiles_of(tiles: pd.DataFrame, source: str) -> pd.DataFrame:
    """The ROI tiles (extraction method 1 or 2) of one source."""
    return tiles[(tiles["source"] == source) & tiles["method"].isin(["method1", "method2"])]


def roi_ids(tiles: pd.DataFrame) -> pd.Series:
    """The ROI (or scan) each tile was cut for: tile ids are <dataset>/<roi or scan id>/<name>."""
    return tiles["tile_id"].str.split("/").str[1]


def plot_montage(tile_tables: list[str], seed: int, out: str) -> None:
    from mammo.plots import montage  # here, not above: the tiling jobs need no Matplotlib (half a second each)

    tiles = pd.concat([read_table(path) for path in tile_tables], ignore_index=True)
    montage(splitting.kept(tiles), tile_loader(), out, seed=seed)


def plot_collections(tile_tables: list[str], seed: int, out: str) -> None:
    """Normal and abnormal tiles of each collection side by side (one recipe per ROI source and the mini-MIAS set):
    how each collection's intensities come to the shared 8-bit tile space. A tile in several recipes (DDSM normals)
    is drawn once."""
    from mammo.plots import montage

    tiles = pd.concat([read_table(path) for path in tile_tables], ignore_index=True)
    tiles = tiles[~tiles["method"].isin(["audit"])].drop_duplicates(["source", "scan_id", "box", "method"])
    montage(tiles, tile_loader(), out, seed=seed, rows="source", blocks="label_normal")
