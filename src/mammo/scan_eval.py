"""Scan-level evaluation: which scans to score, lesion hits of the top regions, scan ROC-AUC, localisation and FROC."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from mammo.evaluate import binary_metrics
from mammo.film_scores import logit
from mammo.io.cbis import resolve
from mammo.io.listed import CBIS_PIXEL_MM
from mammo.io.mias import MIAS_PIXEL_MM, mias_centre
from mammo.sources import windowing_scale

TARGET_COLUMNS = ["scan_id", "set", "source", "patient_id", "path", "scale", "label_normal"]
FP_RATES = (1, 2, 4)
# a scan's top regions: lesions_hit (the box criterion) and lesions_centred (the centre criterion) list the lesions
# each region finds, ';'-joined ('' for a false positive)
REGION_COLUMNS = ["scan_id", "rank", "box", "score", "calibrated", "lesions_hit", "lesions_centred"]
# A region finds a lesion when its centre lies within this distance of the lesion: unlike "the box overlaps the
# lesion", the criterion does not loosen as windows grow (a window 2.58x wider overlaps 2.58x more lesions).
LESION_MARGIN_MM = 10.0


def scan_targets(
    tiles: pd.DataFrame,
    cbis_rois: pd.DataFrame,
    ddsm_scans: pd.DataFrame,
    mias_images: pd.DataFrame,
    cbis_root: str,
    mias_scale: float,
    ddsm_rois: pd.DataFrame | None = None,
    listed: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Every scan of the test split's patients (CBIS-DDSM abnormal, DDSM's outlined views where the recipe reads
    them, DDSM normal, the images of listed collections, `listed`: source -> images with their `scale` column) and
    every mini-MIAS scan.

    Patients come from the split (never a training or validation patient); all of a test patient's
    scans are scored, including normal scans that gave no tile. A DDSM film that is also a CBIS-DDSM film is scored
    once, as CBIS-DDSM's (its DDSM woman took the CBIS-DDSM patient id in the split).
    """

    test_patients = set(tiles.loc[tiles["split"] == "test", "patient_id"])

    def of_test_patients(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
        return table[(prefix + table["patient_id"].astype(str)).isin(test_patients)].drop_duplicates("scan_id")

    cbis = of_test_patients(cbis_rois, "cbis:")
    ddsm = of_test_patients(ddsm_scans, "ddsm:")
    none = pd.DataFrame(columns=["scan_id", "patient_id", "path", "scale", "label_normal"])
    outlined = of_test_patients(none if ddsm_rois is None else ddsm_rois, "ddsm:")
    listed = {source: of_test_patients(images, f"{source}:") for source, images in (listed or {}).items()}
    parts = [
        pd.DataFrame(
            {
                "scan_id": cbis["scan_id"],
                "set": "test",
                "source": "cbis-ddsm",
                "patient_id": "cbis:" + cbis["patient_id"],
                "path": [str(resolve(cbis_root, p)) for p in cbis["image_file_path"]],
                "scale": 1.0,
                "label_normal": 1,
            }
        ),
        *(
            pd.DataFrame(
                {
                    "scan_id": table["scan_id"],
                    "set": "test",
                    "source": "ddsm",
                    "patient_id": "ddsm:" + table["patient_id"],
                    "path": table["path"],
                    "scale": 1.0,
                    "label_normal": label,
                }
            )
            for table, label in ((outlined, 1), (ddsm, 0))
        ),
        *(
            pd.DataFrame(
                {
                    "scan_id": images["scan_id"],
                    "set": "test",
                    "source": source,
                    "patient_id": f"{source}:" + images["patient_id"],
                    "path": images["path"],
                    "scale": images["scale"],
                    "label_normal": images["label_normal"],
                }
            )
            for source, images in listed.items()
        ),
        pd.DataFrame(
            {
                "scan_id": "mias:" + mias_images["refnum"],
                "set": "mias",
                "source": "mias",
                "patient_id": mias_images["patient_id"],
                "path": mias_images["path"],
                "scale": windowing_scale(mias_scale),
                "label_normal": mias_images["label_normal"],
            }
        ),
    ]
    return pd.concat(parts, ignore_index=True)[TARGET_COLUMNS].sort_values(["set", "scan_id"], ignore_index=True)


def circle_mask(shape: tuple[int, int], row: float, col: float, radius: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (int(round(col)), int(round(row))), max(1, int(round(radius))), 1, thickness=-1)
    return mask.astype(bool)


def lesions_hit(box, lesions: dict[str, np.ndarray]) -> list[str]:
    """The lesions (id -> mask at scan size) that a region's box overlaps (the box criterion)."""
    top, left, bottom, right = box
    return [lesion for lesion, mask in lesions.items() if mask[top:bottom, left:right].any()]


def margin_pixels(source: str, scale: float) -> float:
    """LESION_MARGIN_MM in pixels of a scan of `source` read at `scale` (CBIS-DDSM pixels per scan pixel). A
    mini-MIAS film's pixel is its own 200 microns: its window scale is the study's upscaling, not a pixel size."""
    pixel_mm = MIAS_PIXEL_MM if source == "mias" else CBIS_PIXEL_MM * scale
    return LESION_MARGIN_MM / pixel_mm


def lesions_centred(box, lesions: dict[str, np.ndarray], margin: float) -> list[str]:
    """The lesions (id -> mask at scan size) whose outline grown by `margin` pixels holds the region's centre (the
    centre criterion): only the mask within `margin` of the centre is looked at."""
    top, left, bottom, right = box
    row, col = (top + bottom - 1) / 2, (left + right - 1) / 2
    found = []
    for lesion, mask in lesions.items():
        first_row, first_col = max(0, int(np.floor(row - margin))), max(0, int(np.floor(col - margin)))
        near = mask[first_row : int(np.ceil(row + margin)) + 1, first_col : int(np.ceil(col + margin)) + 1]
        rows, cols = np.nonzero(near)
        if len(rows) and ((rows + first_row - row) ** 2 + (cols + first_col - col) ** 2).min() <= margin**2:
            found.append(lesion)
    return found


def mias_lesions(rois: pd.DataFrame, scan_id: str, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """A mini-MIAS film's lesions (id -> mask at the film's own size): its Info.txt circles (`rois`: the ROI index)."""
    film = rois[rois["refnum"] == scan_id.removeprefix("mias:")]
    return {roi["roi_id"]: circle_mask(shape, *mias_centre(roi, 1.0, shape[0]), int(roi["radius"])) for _, roi in film.iterrows()}


def region_hits(box, lesions: dict[str, np.ndarray], margin: float) -> dict[str, str]:
    """A region's columns of a regions table: the lesions its box overlaps and those that hold its centre."""
    return {
        "lesions_hit": ";".join(lesions_hit(box, lesions)),
        "lesions_centred": ";".join(lesions_centred(box, lesions, margin)),
    }


def lesion_window_ranks(windows: np.ndarray, scores: np.ndarray, lesions: dict[str, np.ndarray], margin: float) -> str:
    """Where each lesion stands among its film's windows: the rank (1: the film's strongest window) of the strongest
    window whose centre lies on the lesion by the centre criterion, as "lesion:rank" joined by ";" (an empty rank where
    no scored window is centred on it). It tells a tile model that does not see a lesion from one that sees it while
    windows elsewhere on the same film score higher, which the top region and the film score cannot tell apart."""
    ranks = []
    centred = [lesions_centred(box, lesions, margin) for box in windows]
    for lesion in lesions:
        on_it = [score for score, hit in zip(scores, centred) if lesion in hit]
        ranks.append(f"{lesion}:{int((scores > max(on_it)).sum()) + 1}" if on_it else f"{lesion}:")
    return ";".join(ranks)


def froc(regions: pd.DataFrame, scans: pd.DataFrame, hits: str = "lesions_centred") -> pd.DataFrame:
    """Sensitivity (lesions found by a region scoring >= t) against false-positive regions per scan, for every t.

    `regions`: scan_id, score and the column `hits`: the lesions each region finds (';'-joined ids, '' for a false
    positive), lesions_centred (the centre criterion) or lesions_hit (the box criterion);
    `scans`: scan_id, lesions (';'-joined ids of the lesions with a known outline).
    """
    total_lesions = sum(len(_ids(value)) for value in scans["lesions"])
    rows = []
    ordered = regions.sort_values("score", ascending=False, kind="stable")
    found: set[str] = set()
    false_positives = 0
    for threshold, group in ordered.groupby("score", sort=False):
        for hit in group[hits]:
            ids = _ids(hit)  # lesion ids are unique across scans (ROI ids)
            found.update(ids)
            false_positives += not ids
        rows.append(
            {
                "threshold": float(threshold),
                "fp_per_scan": false_positives / max(len(scans), 1),
                "sensitivity": len(found) / total_lesions if total_lesions else None,
            }
        )
    return pd.DataFrame(rows, columns=["threshold", "fp_per_scan", "sensitivity"])


def _ids(value) -> list[str]:
    return [item for item in str(value).split(";") if item and item != "nan"]


def sensitivity_at(curve: pd.DataFrame, rate: float) -> float | None:
    """The highest sensitivity reached with at most `rate` false positives per scan."""
    if curve["sensitivity"].isna().all():
        return None  # no lesion with a known outline
    within = curve.loc[curve["fp_per_scan"] <= rate, "sensitivity"]
    return round(float(within.max()), 4) if len(within) else 0.0


def scan_metrics(
    scans: pd.DataFrame,
    regions: pd.DataFrame,
    threshold: float,
    replicates: int = 0,
    seed: int = 0,
    lesion_classes: dict[str, str] | None = None,
    densities: dict[str, str] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Scan-level metrics of one set (max window score as the scan score; localisation and FROC from the
    regions of these scans), and the FROC curve they were read from. With `replicates`, 95% intervals from a bootstrap
    over women (`ci95`), and the same for women (`women`: a woman's score the highest of her films', abnormal when a
    film of hers is). With `lesion_classes` (lesion id -> its class, e.g. mini-MIAS CIRC, CALC), the top region's
    localisation per class of lesion (`localisation.by_class`). With `densities` (scan id -> the breast's density,
    e.g. mini-MIAS F, G, D), the film rates among the films of each density (`by_density`): a score that follows
    density rather than lesions ranks well among fatty films and badly among dense ones."""
    scored = scans[scans["windows_scored"] > 0]
    result = {
        "scans": int(len(scans)),
        "scans_without_breast_windows": int(len(scans) - len(scored)),
        "abnormal": int(scans["label_normal"].sum()),
        **film_metrics(scored, "max_score", threshold, replicates, seed),
    }
    if densities is not None:
        result["by_density"] = rates_by_density(scored, "max_score", threshold, densities, replicates, seed)
    located = scans[(scans["label_normal"] == 1) & (scans["lesions"].map(lambda v: len(_ids(v)) > 0))]

    def localisation(hits: str) -> tuple[dict, pd.DataFrame]:
        top = regions[regions["rank"] == 1].set_index("scan_id")[hits]
        on_lesion = [len(_ids(top.get(scan_id, ""))) > 0 for scan_id in located["scan_id"]]
        curve = froc(regions, scans, hits)
        return {
            "top_region_on_lesion": round(float(np.mean(on_lesion)), 4) if on_lesion else None,
            "sensitivity_at_fp_per_scan": {str(rate): sensitivity_at(curve, rate) for rate in FP_RATES},
        }, curve

    centred, curve = localisation("lesions_centred")
    result["localisation"] = {
        "abnormal_scans_with_outline": int(len(located)),
        "criterion": f"the region's centre within {LESION_MARGIN_MM:g} mm of the lesion",
        **centred,
        "box_criterion": localisation("lesions_hit")[0],
    }
    result["localisation"]["lesion_window_rank"] = _lesion_window_rank(located)
    if lesion_classes is not None:
        result["localisation"]["by_class"] = _top_region_by_class(located, regions, lesion_classes)
    return result, curve


def film_metrics(films: pd.DataFrame, score: str, threshold: float | None, replicates: int = 0, seed: int = 0) -> dict:
    """Rates of the films' `score` column; with `replicates`, 95% intervals from a bootstrap over women (`ci95`), and
    the same for women (`women`: a woman's score the highest of her films', abnormal when a film of hers is)."""
    women = films["patient_id"].to_numpy() if replicates else None
    result = binary_metrics(films["label_normal"].to_numpy(), films[score].to_numpy(), threshold, women, replicates, seed)
    if replicates:
        per_woman = films.groupby("patient_id")[["label_normal", score]].max()
        result["women"] = {
            "score": "the highest of her films' scores",
            **binary_metrics(
                per_woman["label_normal"].to_numpy(),
                per_woman[score].to_numpy(),
                threshold,
                per_woman.index.to_numpy(),
                replicates,
                seed,
            ),
        }
    return result


def rates_by_density(
    films: pd.DataFrame, score: str, threshold: float | None, densities: dict[str, str], replicates: int = 0, seed: int = 0
) -> dict:
    """film_metrics of the films of each breast density (`densities`: scan id -> density, e.g. mini-MIAS F, G, D)."""
    return {
        str(density): {"abnormal": int(group["label_normal"].sum()), **film_metrics(group, score, threshold, replicates, seed)}
        for density, group in films.groupby(films["scan_id"].map(densities).fillna("unknown"), sort=True)
    }


def froc_above_film(regions: pd.DataFrame, scans: pd.DataFrame, window_scores: dict[str, np.ndarray]) -> dict:
    """The FROC of the regions ranked across films by their logit above the median logit of their own film's windows
    (`window_scores`: scan id -> its scored windows' P(abnormal)), as a film's above_film score ranks films; within a
    film the order, and so the top region, stays as it was."""
    medians = {scan_id: float(np.median(logit(window_scores[scan_id]))) for scan_id in regions["scan_id"].unique()}
    relative = regions.assign(score=logit(regions["score"].to_numpy(float)) - regions["scan_id"].map(medians).to_numpy())
    curve = froc(relative, scans)
    return {"sensitivity_at_fp_per_scan": {str(rate): sensitivity_at(curve, rate) for rate in FP_RATES}}


def _lesion_window_rank(located: pd.DataFrame) -> dict | None:
    """How the located lesions' strongest windows rank within their own films (`lesion_ranks` of the scans table):
    the median rank, the median share of the film's scored windows that score higher, and the share of lesions whose
    window is within the film's first 1, 3 and 10."""
    if "lesion_ranks" not in located:
        return None  # scans scored before the ranks were recorded
    ranks, shares, unwindowed = [], [], 0
    for _, scan in located.iterrows():
        for entry in _ids(scan["lesion_ranks"]):
            rank = entry.rpartition(":")[2]
            if not rank:
                unwindowed += 1
                continue
            ranks.append(int(rank))
            shares.append((int(rank) - 1) / scan["windows_scored"])
    if not ranks:
        return {"lesions": 0, "without_a_window": unwindowed}
    ranks = np.array(ranks)
    return {
        "lesions": int(len(ranks)),
        "without_a_window": unwindowed,
        "median_rank": float(np.median(ranks)),
        "median_share_of_windows_above": round(float(np.median(shares)), 4),
        **{f"within_{top}": round(float(np.mean(ranks <= top)), 4) for top in (1, 3, 10)},
    }


def _top_region_by_class(located: pd.DataFrame, regions: pd.DataFrame, lesion_classes: dict[str, str]) -> dict:
    """Per class of lesion: how many lesions, and the share of them whose film's top region lies on them (centre
    criterion)."""
    top = regions[regions["rank"] == 1].set_index("scan_id")["lesions_centred"]
    found: dict[str, list[bool]] = {}
    for _, scan in located.iterrows():
        hit = set(_ids(top.get(scan["scan_id"], "")))
        for lesion in _ids(scan["lesions"]):
            found.setdefault(lesion_classes.get(lesion, "unknown"), []).append(lesion in hit)
    return {
        name: {"lesions": len(hits), "top_region_on_lesion": round(float(np.mean(hits)), 4)}
        for name, hits in sorted(found.items())
    }
