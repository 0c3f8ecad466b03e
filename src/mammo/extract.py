"""Stages from indexed scans to tiles: each returns (tiles uint8 Nx299x299, tile table, rejected table).

Every input row ends in the tile table or in the rejected table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo.heatmap import Windowing, segmented, tissue_windows
from mammo.intensity import INVERTED_INTENSITY, inverted_intensity, to_uint8
from mammo.io import FormatError
from mammo.io.cbis import aspect_matches, is_mask, resolve
from mammo.io.ddsm import outline_mask, read_ddsm_scan
from mammo.io.dicom import read_dicom
from mammo.io.listed import finding_mask, read_listed_scan
from mammo.io.mias import mias_centre, read_mias_scan
from mammo.labels import label_normal
from mammo.online_crops import OnlineCrops, lesion_context
from mammo.same_film import FINGERPRINT_COLUMNS, fingerprint_row
from mammo.tables import REJECTED_COLUMNS, TILE_COLUMNS
from mammo.tiles import (
    TILE_SIZE,
    Method1,
    Method2,
    NormalThresholds,
    NormalTiling,
    Surround,
    augment,
    box_sum,
    item_rng,
    mask_box,
    normal_tiles,
    resize_mask,
    surround_view,
    upscale,
    with_surround,
)


@dataclass(frozen=True)
class BackgroundTiles:
    """Negative tiles cut from CBIS-DDSM scans away from every ROI (recipe ds9b), so that normal tissue
    comes from both collections and a model cannot tell normal from abnormal by the collection."""

    per_scan: int
    max_overlap: float  # largest share of a tile (grown by `margin` on every side) that may lie on an ROI mask
    margin: int  # pixels: outlines are drawn loosely, specks of a cluster may lie just outside
    tiling: NormalTiling
    thresholds: NormalThresholds  # mostly breast tissue, as for DDSM normal tiles


class CbisScans:
    """How CBIS-DDSM's indexed ROIs are read: scans and masks are DICOMs named relative to the download."""

    source, scan_column, mask_column = "cbis-ddsm", "image_file_path", "roi_mask_file_path"

    def __init__(self, root: str | Path):
        self.root = root

    def read_scan(self, first: pd.Series) -> np.ndarray:
        return read_dicom(_existing(resolve(self.root, first["image_file_path"])))

    def mask(self, roi: pd.Series, shape: tuple[int, int]) -> np.ndarray:
        return roi_mask(self.root, roi, shape)

    def scan_fields(self, first: pd.Series) -> dict:
        return {
            "source": self.source,
            "patient_id": f"cbis:{first['patient_id']}",
            "scan_id": first["scan_id"],
            "view": f"{first['side']}_{first['view']}",
            "density": first["breast_density"],
            "scanner": "cbis",
            "division": first["division"],
        }

    def reject(self, path, roi: pd.Series, stage: str, reason: str) -> dict:
        return _reject(path, roi, stage, reason)


class DdsmScans:
    """How DDSM's indexed scans are read (normal scans, and the views of outlined abnormalities): the LJPEG through
    its digitizer's optical density, an abnormality's BOUNDARY chain code filled (clipped to the image); DDSM has
    no official division."""

    source, scan_column, mask_column = "ddsm", "path", "overlay_path"

    def read_scan(self, first: pd.Series) -> np.ndarray:
        _existing(Path(first["path"]))
        return read_ddsm_scan(first)

    def mask(self, roi: pd.Series, shape: tuple[int, int]) -> np.ndarray:
        return outline_mask(roi, shape)

    def scan_fields(self, first: pd.Series) -> dict:
        return {
            "source": self.source,
            "patient_id": f"ddsm:{first['patient_id']}",
            "scan_id": first["scan_id"],
            "view": first["view"],
            "density": first["density"],
            "scanner": first["digitizer"],
            "division": "",
        }

    def reject(self, path, row: pd.Series, stage: str, reason: str) -> dict:
        """An abnormality (its view names the row) or a normal scan (its .ics names the row)."""
        item, line = (row["roi_id"], row["view"]) if "roi_id" in row else (row["scan_id"], row["ics_path"])
        return {"file": str(path), "row": line, "item": item, "stage": stage, "reason": reason}


class ListedScans:
    """How a collection listed in tables of images and findings is read (mammo.io.listed: VinDr-Mammo, a user's own
    CSV): each image at the CBIS-DDSM scale by its pixel size; a finding's box, circle or mask file is its mask (the
    method-2 box rule then cuts around it); the collection's patient (VinDr-Mammo: the study) and official split,
    if any, as its division."""

    scan_column, mask_column = "path", "path"

    def __init__(self, source: str):
        self.source = source
        self._read: dict[str, tuple[float, bool]] = {}  # path -> (factor, mirrored) of the scan read last

    def read_scan(self, first: pd.Series) -> np.ndarray:
        image, factor, mirrored = read_listed_scan(_existing(Path(first["path"])), first.get("pixel_mm"))
        self._read = {first["path"]: (factor, mirrored)}
        return upscale(image, factor)

    def mask(self, finding: pd.Series, shape: tuple[int, int]) -> np.ndarray:
        factor, mirrored = self._read[finding["path"]]
        return finding_mask(finding, shape, factor, mirrored, int(finding["width"]))

    def scan_fields(self, first: pd.Series) -> dict:
        return {
            "source": self.source,
            "patient_id": f"{self.source}:{first['patient_id']}",
            "scan_id": first["scan_id"],
            "view": f"{first['side']}_{first['view']}",
            "density": first["density"],
            "scanner": self.source,
            "division": first["split"],
        }

    def reject(self, path, row: pd.Series, stage: str, reason: str) -> dict:
        item = row["roi_id"] if "roi_id" in row else row["scan_id"]
        return {"file": str(path), "row": item, "item": item, "stage": stage, "reason": reason}


ScanReader = CbisScans | DdsmScans | ListedScans


def cbis_tiles(
    rois: pd.DataFrame,
    root: str | Path,
    dataset: str,
    method: Method1 | Method2,
    seed: int,
    tiles_file: str,
    negatives: dict[str, BackgroundTiles] | None = None,
):
    """:func:`roi_tiles` of CBIS-DDSM ROIs (rois.tsv of index_cbis) under the download's root."""
    return roi_tiles(rois, CbisScans(root), dataset, method, seed, tiles_file, negatives)


def roi_tiles(
    rois: pd.DataFrame,
    reader: ScanReader,
    dataset: str,
    method: Method1 | Method2,
    seed: int,
    tiles_file: str,
    negatives: dict[str, BackgroundTiles] | None = None,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The recipe's extraction method for every ROI of a collection whose lesions are masks (CBIS-DDSM's mask
    DICOMs, DDSM's outlines); the scan is read once for all its ROIs.

    `negatives` maps a method name ("background": training negatives of ds9b, "audit": tiles for the
    shortcut audit) to the lesion-free tiles to cut from each scan as well. The fourth table holds a content
    fingerprint of every scan read (mammo.same_film), so that a breast in two collections is recognised.
    """
    images, rows, rejected, prints = [], [], [], []
    for image_path, scan_rois in tqdm(rois.groupby(reader.scan_column, sort=True), desc=f"{reader.source} scans"):
        first = scan_rois.iloc[0]
        try:
            scan = _positive(reader.read_scan(first), image_path)
        except FormatError as err:
            rejected += [reader.reject(err.path, roi, "read_scan", err.reason) for _, roi in scan_rois.iterrows()]
            continue
        scan_fields = {"dataset": dataset, **reader.scan_fields(first)}
        prints.append(fingerprint_row(scan, scan_fields, image_path))
        lesions = np.zeros(scan.shape, bool)
        for _, roi in scan_rois.iterrows():
            try:
                mask = reader.mask(roi, scan.shape)
            except FormatError as err:
                rejected.append(reader.reject(err.path, roi, "read_mask", err.reason))
                continue
            lesions |= mask
            box = mask_box(mask)
            if box is None:
                rejected.append(reader.reject(roi[reader.mask_column], roi, "read_mask", "ROI mask is empty"))
                continue
            tiles = method.tiles(scan, box, item_rng(seed, roi["roi_id"]))
            if not tiles:
                rejected.append(reader.reject(image_path, roi, "extract", "every crop was mostly background"))
                continue
            for number, tile in enumerate(tiles):
                rows.append(
                    _tile_row(scan_fields, f"{dataset}/{roi['roi_id']}/{number}", method.name, box, tiles_file, len(images), roi)
                )
                images.append(tile)
        if not lesions.any():
            continue  # a scan whose every mask failed has no known lesion-free area
        for name, params in (negatives or {}).items():
            rng = item_rng(seed, f"{first['scan_id']}/{name}")
            for number, (tile, box) in enumerate(background_tiles(scan, lesions, params, rng)):
                rows.append(
                    _tile_row(scan_fields, f"{dataset}/{first['scan_id']}/{name}{number}", name, box, tiles_file, len(images))
                )
                images.append(tile)
    return (
        _stack(images),
        pd.DataFrame(rows, columns=TILE_COLUMNS),
        pd.DataFrame(rejected, columns=REJECTED_COLUMNS),
        pd.DataFrame(prints, columns=FINGERPRINT_COLUMNS),
    )


def _tile_row(scan_fields: dict, tile_id: str, method: str, box, tiles_file: str, tile_index: int, lesion=None) -> dict:
    """One tile table row: the scan's fields, and the lesion's class and attributes (none for normal tissue)."""
    code = 0 if lesion is None else int(lesion["class_code"])
    return {
        **scan_fields,
        "tile_id": tile_id,
        "class_code": code,
        "label_normal": label_normal(code),
        "abnormality_type": "" if lesion is None else lesion["abnormality_type"],
        "pathology": "" if lesion is None else lesion["pathology"],
        "subtlety": "" if lesion is None else lesion.get("subtlety", ""),
        "method": method,
        "box": ",".join(map(str, box)),
        "tiles_file": tiles_file,
        "tile_index": tile_index,
    }


def background_tiles(
    scan16: np.ndarray, lesions: np.ndarray, params: BackgroundTiles, rng: np.random.Generator, surround: Surround | None = None
):
    """Up to `per_scan` tissue tiles (299 uint8, box) of a scan, each overlapping the lesion masks by at most
    `max_overlap` (each with its surround channel where `surround` is given)."""
    integral = cv2.integral(lesions.astype(np.uint8))
    candidates = []
    for tile, box in normal_tiles(scan16, params.thresholds, rng, params.tiling, surround):
        if _lesion_share(integral, box, params.margin) <= params.max_overlap:
            candidates.append((tile, box))
    if len(candidates) > params.per_scan:
        chosen = np.sort(rng.choice(len(candidates), params.per_scan, replace=False))
        candidates = [candidates[i] for i in chosen]
    return candidates


def roi_mask(root, roi: pd.Series, scan_shape: tuple[int, int]) -> np.ndarray:
    """The ROI mask, told from the crop by content; resized when only its size (not aspect) differs."""
    candidates = []
    for column in ("roi_mask_file_path", "cropped_image_file_path"):
        path = _existing(resolve(root, roi[column]))
        pixels = read_dicom(path)
        if is_mask(pixels, scan_shape):
            candidates.append(pixels)
    if not candidates:
        raise FormatError(
            resolve(root, roi["roi_mask_file_path"]),
            f"neither ROI file is a binary mask with the scan's aspect ratio (scan {scan_shape[0]}x{scan_shape[1]})",
        )
    mask = candidates[0]
    if mask.shape != scan_shape:
        if not aspect_matches(mask.shape, scan_shape):
            raise FormatError(roi["roi_mask_file_path"], f"mask {mask.shape} does not match scan {scan_shape}")
        mask = resize_mask(mask, scan_shape)
    return mask > 0


def ddsm_normal_tiles(
    scans: pd.DataFrame,
    dataset: str,
    thresholds: dict[str, NormalThresholds],
    tiling: NormalTiling,
    seed: int,
    tiles_file: str,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Normal-tissue tiles of DDSM normal scans with per-scanner thresholds."""
    return normal_scan_tiles(scans, DdsmScans(), dataset, thresholds, tiling, seed, tiles_file)


def normal_scan_tiles(
    scans: pd.DataFrame,
    reader: ScanReader,
    dataset: str,
    thresholds: dict[str, NormalThresholds],
    tiling: NormalTiling,
    seed: int,
    tiles_file: str,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """The tissue grid of normal scans, with the thresholds of each scan's scanner (DDSM's digitizers, "vindr")."""
    images, rows, rejected = [], [], []
    for _, scan in tqdm(scans.iterrows(), total=len(scans), desc=f"{reader.source} normal scans"):
        try:
            image = _positive(reader.read_scan(scan), scan["path"])
        except FormatError as err:
            rejected.append(reader.reject(err.path, scan, "read_scan", err.reason))
            continue
        scan_fields = {"dataset": dataset, **reader.scan_fields(scan)}
        if scan_fields["scanner"] not in thresholds:
            rejected.append(
                reader.reject(scan["path"], scan, "extract", f"no tile thresholds for scanner {scan_fields['scanner']}")
            )
            continue
        tiles = normal_tiles(image, thresholds[scan_fields["scanner"]], item_rng(seed, scan["scan_id"]), tiling)
        if not tiles:
            rejected.append(reader.reject(scan["path"], scan, "extract", "no tile passed the tissue thresholds"))
            continue
        for number, (tile, box) in enumerate(tiles):
            rows.append(
                _tile_row(scan_fields, f"{dataset}/{scan['scan_id']}/{number}", "normal_grid", box, tiles_file, len(images))
            )
            images.append(tile)
    return _stack(images), pd.DataFrame(rows, columns=TILE_COLUMNS), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


def joined(first: tuple, second: tuple) -> tuple:
    """Two tile results of one job as one (tiles, table, rejected[, fingerprints]): the second's tile_index shifted."""
    table = second[1].assign(tile_index=second[1]["tile_index"] + len(first[0]))
    parts = [np.concatenate([first[0], second[0]]), pd.concat([first[1], table], ignore_index=True)]
    parts += [pd.concat([a, b], ignore_index=True) for a, b in zip(first[2:], second[2:])]
    return (*parts, *first[len(second) :])


@dataclass(frozen=True)
class EdgeTiles:
    """Negative tiles from the windows of a film's breast that the tissue grid never gives: those the tissue
    thresholds reject (skin line, pectoral muscle, labels) and those reaching into the border the grid leaves out
    (the chest-wall film edge), so that the model has seen them as normal before it scans a film. Windows on the
    pectoral muscle stay among them although whole-film scanning now leaves them out: the muscle still fills part
    of the windows beside it, and the training recipe stays the one the real-film figures were measured with."""

    per_film: int
    windowing: Windowing  # the whole-film scan's windows (stride, min_tissue), at the tile scale
    border_crop: float  # the tissue grid's border, as a share of each side (NormalTiling.border_crop)


def edge_tiles(
    image8: np.ndarray,
    breast: np.ndarray,
    lesions: np.ndarray,
    params: EdgeTiles,
    thresholds: NormalThresholds,
    margin: int,
    rng: np.random.Generator,
    surround: Surround | None = None,
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Up to `per_film` scanned windows of a film that the tissue grid never gives (they fail `thresholds` or reach
    into its border) and that stay `margin` pixels clear of every lesion.

    They are cut as the scan sees them: from the film segmented as whole-film scanning segments it (`image8` and
    `breast` from mammo.heatmap.segmented: everything outside the breast black), each with its surround channel where
    `surround` is given.
    """
    integral = cv2.integral(lesions.astype(np.uint8))
    rows, cols = image8.shape
    first_row, last_row = params.border_crop * rows, (1 - params.border_crop) * rows
    first_col, last_col = params.border_crop * cols, (1 - params.border_crop) * cols
    corners, _ = tissue_windows(breast, params.windowing)
    candidates = []
    for top, left in corners:
        bottom, right = top + TILE_SIZE, left + TILE_SIZE
        if _lesion_share(integral, (top, left, bottom, right), margin) > 0:
            continue
        tile = image8[top:bottom, left:right]
        in_grid = first_row <= top and bottom <= last_row and first_col <= left and right <= last_col
        if in_grid and thresholds.accepts(tile):
            continue
        candidates.append((tile, (int(top), int(left), int(bottom), int(right))))
    if len(candidates) > params.per_film:
        candidates = [candidates[i] for i in np.sort(rng.choice(len(candidates), params.per_film, replace=False))]
    return [(augment(with_surround(tile, box[0], box[1], surround), rng), box) for tile, box in candidates]


def _lesion_share(integral: np.ndarray, box, margin: int) -> float:
    """Share of a box, grown by `margin` on every side (clipped to the image), that lies on the lesion masks whose
    summed-area table is `integral`."""
    rows, cols = integral.shape[0] - 1, integral.shape[1] - 1
    top, left = max(box[0] - margin, 0), max(box[1] - margin, 0)
    bottom, right = min(box[2] + margin, rows), min(box[3] + margin, cols)
    return box_sum(integral, top, left, bottom, right) / ((bottom - top) * (right - left))


def mias_tiles(
    images: pd.DataFrame,
    rois: pd.DataFrame,
    dataset: str,
    method: Method1 | Method2,
    thresholds: NormalThresholds,
    tiling: NormalTiling,
    scale: float,
    seed: int,
    tiles_file: str,
    lesion_free: BackgroundTiles | None = None,
    edges: EdgeTiles | None = None,
    surround: bool = False,
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """mini-MIAS scans upscaled by `scale`, ROIs by method 2 and normal scans tiled.

    Tiles are cut at `method.tile` / `tiling.tile` pixels of the upscaled scan (299: no resizing).
    ROIs of abnormal scans are the items; a normal scan is an item. With `lesion_free`, an abnormal scan whose
    every abnormality has coordinates also gives normal tiles away from every lesion circle (method
    "lesion_free"); otherwise abnormal scans give no normal tiles. With `edges`, every film that gives normal tiles also
    gives edge tiles (method "edge", `lesion_free.margin` clear of lesions). With `surround`, every tile has a second
    channel: its surroundings on the film as whole-film scanning shows it (segmented), mammo.tiles.surround_view; the
    edge tiles are cut from that segmented film too, which is made once per film.
    """
    tiles, rows, rejected = [], [], []
    for _, image in tqdm(images.iterrows(), total=len(images), desc="mini-MIAS scans"):
        image_rois = rois[rois["refnum"] == image["refnum"]]
        items = [roi["roi_id"] for _, roi in image_rois.iterrows()] if image["label_normal"] else [f"mias:{image['refnum']}"]
        if not items:
            continue  # every row of this abnormal scan lacks coordinates: rejected when indexed
        try:
            scan = upscale(_positive(read_mias_scan(_existing(Path(image["path"]))), image["path"]), scale)
        except FormatError as err:
            rejected += [_reject_mias(err.path, image, item, "read_scan", err.reason) for item in items]
            continue
        cut = []  # (ROI or None, method, tile, box)
        seen = segmented(to_uint8(scan)) if surround or edges is not None else None  # (image8, breast) as scanned
        film_surround = partial(surround_view, seen[0]) if surround else None
        if image["label_normal"]:
            for _, roi in image_rois.iterrows():
                (row, col), half = mias_centre(roi, scale, scan.shape[0]), roi["radius"] * scale
                box = tuple(int(round(v)) for v in (row - half, col - half, row + half, col + half))
                roi_tiles = method.tiles(scan, box, item_rng(seed, roi["roi_id"]), film_surround)
                if not roi_tiles:
                    rejected.append(
                        _reject_mias(image["path"], image, roi["roi_id"], "extract", "every crop was mostly background")
                    )
                cut += [(roi, method.name, tile, box) for tile in roi_tiles]
            if lesion_free is not None and not image["unlocated"]:
                lesions = _lesion_circles(scan.shape, image_rois, scale)
                rng = item_rng(seed, f"mias:{image['refnum']}/lesion_free")
                found = background_tiles(scan, lesions, lesion_free, rng, film_surround)
                cut += [(None, "lesion_free", tile, box) for tile, box in found]
                if edges is not None:
                    rng = item_rng(seed, f"mias:{image['refnum']}/edges")
                    found = edge_tiles(*seen, lesions, edges, thresholds, lesion_free.margin, rng, film_surround)
                    cut += [(None, "edge", tile, box) for tile, box in found]
        else:
            cut = [
                (None, "normal_grid", tile, box)
                for tile, box in normal_tiles(scan, thresholds, item_rng(seed, items[0]), tiling, film_surround)
            ]
            if not cut:
                rejected.append(_reject_mias(image["path"], image, items[0], "extract", "no tile passed the tissue thresholds"))
            elif edges is not None:
                rng = item_rng(seed, f"{items[0]}/edges")
                found = edge_tiles(*seen, np.zeros(scan.shape, bool), edges, thresholds, 0, rng, film_surround)
                cut += [(None, "edge", tile, box) for tile, box in found]
        # mini-MIAS holds MLO views only; its density is the background tissue letter (F/G/D)
        scan_fields = {
            "dataset": dataset,
            "source": "mias",
            "patient_id": image["patient_id"],
            "scan_id": image["refnum"],
            "view": f"{image['side']}_MLO",
            "density": image["background"],
            "scanner": "mias",
            "division": "",
        }
        counters: dict[str, int] = {}
        for roi, kind, tile, box in cut:
            item = f"mias:{image['refnum']}" if roi is None else roi["roi_id"]
            counters[item] = counters.get(item, -1) + 1
            rows.append(_tile_row(scan_fields, f"{dataset}/{item}/{counters[item]}", kind, box, tiles_file, len(tiles), roi))
            tiles.append(tile)
    return _stack(tiles), pd.DataFrame(rows, columns=TILE_COLUMNS), pd.DataFrame(rejected, columns=REJECTED_COLUMNS)


LESION_CONTEXT_COLUMNS = ["roi_id", "patient_id", "scan_id", "class_code", "label_normal", "radius", "context_index"]


def mias_lesion_contexts(
    images: pd.DataFrame, rois: pd.DataFrame, table: pd.DataFrame, scale: float, params: OnlineCrops
) -> tuple[np.ndarray, pd.DataFrame]:
    """The context patch (mammo.online_crops) of every mini-MIAS lesion that gave ROI tiles in `table` (the others
    are in the rejected table already), with its woman, class and radius in patch pixels, in the index's order."""
    roi_tiles = table[table["label_normal"] == 1]
    tiled = set(roi_tiles["tile_id"].str.split("/").str[1])
    contexts, rows = [], []
    for refnum, film_rois in tqdm(rois[rois["roi_id"].isin(tiled)].groupby("refnum", sort=False), desc="lesion contexts"):
        image = images[images["refnum"] == refnum].iloc[0]
        scan = upscale(read_mias_scan(Path(image["path"])), scale)
        for _, roi in film_rois.iterrows():
            contexts.append(lesion_context(scan, mias_centre(roi, scale, scan.shape[0]), params))
            rows.append(
                {
                    "roi_id": roi["roi_id"],
                    "patient_id": image["patient_id"],
                    "scan_id": refnum,
                    "class_code": int(roi["class_code"]),
                    "label_normal": label_normal(int(roi["class_code"])),
                    "radius": float(roi["radius"] * scale),
                    "context_index": len(rows),
                }
            )
    side = 2 * params.context_half + 1
    stacked = np.stack(contexts) if contexts else np.zeros((0, side, side), np.uint8)
    return stacked, pd.DataFrame(rows, columns=LESION_CONTEXT_COLUMNS)


def _lesion_circles(shape: tuple[int, int], rois: pd.DataFrame, scale: float) -> np.ndarray:
    """Every mini-MIAS lesion of a scan as a filled circle (Info.txt centre and radius) at the upscaled scale."""
    mask = np.zeros(shape, np.uint8)
    for _, roi in rois.iterrows():
        row, col = mias_centre(roi, scale, shape[0])
        cv2.circle(mask, (int(round(col)), int(round(row))), int(round(roi["radius"] * scale)), 1, thickness=-1)
    return mask.astype(bool)


def _reject_mias(path, image: pd.Series, item: str, stage: str, reason: str) -> dict:
    return {"file": str(path), "row": image["refnum"], "item": item, "stage": stage, "reason": reason}


def _positive(scan16: np.ndarray, path) -> np.ndarray:
    """The scan, unless it is a negative (a wrong calibration, MONOCHROME1 read as MONOCHROME2, a new digitizer)."""
    if inverted_intensity(scan16):
        raise FormatError(path, INVERTED_INTENSITY)
    return scan16


def _existing(path: Path) -> Path:
    if not path.exists():
        raise FormatError(path, "file not found")
    return path


def _reject(path, roi: pd.Series, stage: str, reason: str) -> dict:
    return {
        "file": str(path),
        "row": f"{roi['source_file']}:{roi['row']}",
        "item": roi["roi_id"],
        "stage": stage,
        "reason": reason,
    }


def _stack(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images) if images else np.zeros((0, TILE_SIZE, TILE_SIZE), dtype=np.uint8)
