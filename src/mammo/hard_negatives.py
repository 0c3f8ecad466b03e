"""Hard negatives from whole films, in rounds: after a training round, the windows that whole-film scanning scores
highest on the TRAINING women's films, clear of every lesion, join the normal examples of the next round (hard
negative mining from whole images, as patch-to-image systems trained on small sets do).

Windows are the scanner's own (mammo.heatmap.scan_windows: breast outside the pectoral muscle, everything outside
the breast black), cut as the scanner shows them to the model. Each mined window is placed by what lies under it, so
that a round's false positives can be counted by where they lie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np
import pandas as pd

from mammo.evaluate import p_abnormal
from mammo.film_scores import breast_frame
from mammo.heatmap import Predict, ScanWindows, Windowing, batches, scan_windows, segmented, top_regions, working_image
from mammo.tiles import TILE_SIZE, box_sum

LOCATIONS = ("label", "pectoral muscle", "skin line or film border", "dense tissue", "fatty tissue")
HARD_NEGATIVE_COLUMNS = ["round", "kept", "scan_id", "patient_id", "score", "location", "box"]
PLACE_COLUMNS = ["roi_index", "scan_id", "partner", "patient_id", "distance", "location", "box"]


@dataclass(frozen=True)
class HardNegatives:
    rounds: int = 0  # mining rounds, each followed by more training (0: none)
    windows_per_film: int = 4  # the best windows of each training film clear of every lesion
    weight: float = 1.0  # loss weight of a hard negative (a normal tile's is 1)
    epochs: int = 2  # training epochs after each round's mining
    stride: int = 598  # scanning stride while mining, native pixels at the CBIS-DDSM scale (as scans.stride)
    undo_worse_rounds: bool = True  # a round that lowers the inner validation's PR-AUC is undone and ends the rounds

    def __post_init__(self):
        if self.rounds < 0 or self.windows_per_film < 1 or self.weight <= 0 or self.epochs < 1 or self.stride < 1:
            raise ValueError(f"hard negatives: rounds >= 0, windows_per_film >= 1, weight > 0, epochs >= 1 needed, got {self}")


@dataclass(frozen=True)
class TrainingFilm:
    scan_id: str
    patient_id: str
    scan16: np.ndarray
    lesions: tuple[tuple[float, float, float], ...]  # (row, column, radius) of every lesion, in scan pixels


def mine_films(
    films: Iterable[TrainingFilm], predict: Predict, windowing: Windowing, per_film: int, margin: float
) -> tuple[np.ndarray, pd.DataFrame]:
    """The `per_film` highest-scoring windows of each film whose every pixel lies `margin` model pixels or more from
    every lesion circle, overlapping a better one by at most `windowing.overlap` (IoU): the tiles (uint8, n x 299 x
    299) and their table (scan, woman, score, location, box in model pixels)."""
    tiles, rows = [], []
    for film in films:
        found = scan_windows(film.scan16, windowing)
        if not len(found.corners):
            continue
        scores = p_abnormal(np.concatenate([predict(batch) for batch in batches(found.image8, found.corners, windowing)]))
        clear = _clear_of_lesions(found, film.lesions, windowing.factor, margin)
        boxes, clear_scores = np.concatenate([found.corners, found.corners + TILE_SIZE], axis=1)[clear], scores[clear]
        chosen = top_regions(boxes, clear_scores, per_film, windowing.overlap)
        view = np.lib.stride_tricks.sliding_window_view(found.image8, (TILE_SIZE, TILE_SIZE))
        breast_median = float(np.median(found.working[found.breast]))
        for index in chosen:
            top, left = boxes[index, :2]
            tiles.append(np.array(view[top, left]))
            rows.append(
                {
                    "scan_id": film.scan_id,
                    "patient_id": film.patient_id,
                    "score": round(float(clear_scores[index]), 6),
                    "location": window_location(found, int(top), int(left), breast_median),
                    "box": ",".join(str(int(value)) for value in boxes[index]),
                }
            )
    stacked = np.stack(tiles) if tiles else np.zeros((0, TILE_SIZE, TILE_SIZE), np.uint8)
    return stacked, pd.DataFrame(rows, columns=HARD_NEGATIVE_COLUMNS[2:])


@dataclass(frozen=True)
class OtherBreastNegatives:
    per_lesion: int = 0  # windows of the other breast at each training lesion's place (0: none)
    weight: float = 1.0  # loss weight of such a window (a normal tile's is 1)

    def __post_init__(self):
        if self.per_lesion < 0 or self.weight <= 0:
            raise ValueError(f"other-breast negatives: per_lesion >= 0 and weight > 0 needed, got {self}")


@dataclass(frozen=True)
class OtherWomenNegatives:
    films: int = 0  # normal films of other training women, of the lesion film's density, per lesion film (0: none)
    per_film: int = 2  # windows of each such film at the lesion's place
    weight: float = 1.0  # loss weight of such a window (a normal tile's is 1)

    def __post_init__(self):
        if self.films < 0 or self.per_film < 1 or self.weight <= 0:
            raise ValueError(f"other women's negatives: films >= 0, per_film >= 1 and weight > 0 needed, got {self}")


@dataclass(frozen=True)
class LesionPlace:
    """Where a lesion lies in its breast's frame (mammo.film_scores.BreastFrame.to_frame), so that the same place can
    be found on another breast."""

    scan_id: str
    patient_id: str
    roi_index: int  # the lesion's index in its film's TrainingFilm.lesions
    depth: float
    height: float


def lesion_places(film: TrainingFilm, windowing: Windowing) -> list[LesionPlace]:
    """The places of a film's lesions in its breast's frame (none where its breast is not found)."""
    # the breast's outline is all a place needs: no muscle fit, no windows
    frame = breast_frame(segmented(working_image(film.scan16, windowing))[1], windowing.factor)
    if frame is None:
        return []
    return [
        LesionPlace(
            film.scan_id, film.patient_id, index, *(float(value[0]) for value in frame.to_frame(np.array([row]), np.array([col])))
        )
        for index, (row, col, _) in enumerate(film.lesions)
    ]


def windows_at_places(
    places: Iterable[LesionPlace], partner: TrainingFilm, windowing: Windowing, per_place: int, margin: float
) -> tuple[np.ndarray, pd.DataFrame]:
    """For each lesion place, the `per_place` windows of `partner` (the woman's other breast, or another woman's
    breast) nearest it, matched through the partner's breast frame (depth from its own chest wall, height from the
    nipple), whose centres lie within one window side of it and whose every pixel lies `margin` model pixels or more
    from the partner's own lesions: the same place without the lesion. Windows are the scanner's (breast outside the
    muscle), cut as it shows them: the tiles (uint8, n x 299 x 299) and their table (the lesion's film, index and
    woman, the partner, distance from the matched place and box in model pixels, location)."""
    found = scan_windows(partner.scan16, windowing)
    frame = breast_frame(found.breast, windowing.factor)
    places = list(places)
    tiles, rows = [], []
    if places and frame is not None and len(found.corners):
        clear = _clear_of_lesions(found, partner.lesions, windowing.factor, margin)
        centres = found.corners + TILE_SIZE / 2
        view = np.lib.stride_tricks.sliding_window_view(found.image8, (TILE_SIZE, TILE_SIZE))
        breast_median = float(np.median(found.working[found.breast]))
        for place in places:
            matched = np.array(frame.from_frame(np.array([place.depth]), np.array([place.height]))).ravel()
            distance = np.hypot(*(centres - matched * windowing.factor).T)
            near = np.flatnonzero(clear & (distance <= TILE_SIZE))
            for chosen in near[np.argsort(distance[near], kind="stable")[:per_place]]:
                top, left = (int(value) for value in found.corners[chosen])
                tiles.append(np.array(view[top, left]))
                rows.append(
                    {
                        "roi_index": place.roi_index,
                        "scan_id": place.scan_id,
                        "partner": partner.scan_id,
                        "patient_id": place.patient_id,
                        "distance": round(float(distance[chosen]), 1),
                        "location": window_location(found, top, left, breast_median),
                        "box": f"{top},{left},{top + TILE_SIZE},{left + TILE_SIZE}",
                    }
                )
    stacked = np.stack(tiles) if tiles else np.zeros((0, TILE_SIZE, TILE_SIZE), np.uint8)
    return stacked, pd.DataFrame(rows, columns=PLACE_COLUMNS)


def _clear_of_lesions(found: ScanWindows, lesions, factor: float, margin: float) -> np.ndarray:
    """Which windows hold no pixel of any lesion circle grown by `margin` (model pixels)."""
    mask = np.zeros(found.image8.shape, np.uint8)
    for row, col, radius in lesions:
        centre = (int(round(col * factor)), int(round(row * factor)))
        cv2.circle(mask, centre, int(round(radius * factor + margin)), 1, thickness=-1)
    integral = cv2.integral(mask)
    tops, lefts = found.corners[:, 0], found.corners[:, 1]
    return box_sum(integral, tops, lefts, tops + TILE_SIZE, lefts + TILE_SIZE) == 0


def window_location(found: ScanWindows, top: int, left: int, breast_median: float) -> str:
    """Where a window lies, the first that holds of: a film label (saturated pixels outside the breast in it), the
    pectoral muscle (5% of it or more), the skin line or film border (under 98% breast, or touching the film's edge),
    dense tissue (its breast brighter than `breast_median`, the film's breast's, computed once per film), else fatty
    tissue."""
    window = (slice(top, top + TILE_SIZE), slice(left, left + TILE_SIZE))
    breast, working = found.breast[window], found.working[window]
    area = TILE_SIZE * TILE_SIZE
    if ((working >= 250) & ~breast).sum() >= 0.001 * area:
        return "label"
    if found.muscle[window].sum() >= 0.05 * area:
        return "pectoral muscle"
    rows, cols = found.image8.shape
    if breast.sum() < 0.98 * area or top == 0 or left == 0 or top + TILE_SIZE >= rows or left + TILE_SIZE >= cols:
        return "skin line or film border"
    if np.median(working[breast]) > breast_median:
        return "dense tissue"
    return "fatty tissue"


def location_shares(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per round, the share of mined windows at each location (every location listed, 0 where none)."""
    return {
        str(number): {location: round(float((part["location"] == location).mean()), 4) for location in LOCATIONS}
        for number, part in table.groupby("round")
    }
