"""Whole-scan analysis: breast segmentation, sliding windows at the training geometry, heatmaps and top regions.

A window is 598 pixels at the CBIS-DDSM scale, seen by the model at 299 (the
geometry of dataset 9). Everything outside the segmented breast is set to 0. The scan is converted to 8 bit and area-downscaled by
2 once; 299 windows of that image equal 598 crops downscaled one by one
(for windows on even pixels), without cutting 598 crops at all. Windows are
gathered in batches from a strided view, so memory holds the scan, its
half-size copy and one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import cv2
import numpy as np

from mammo.evaluate import p_abnormal
from mammo.intensity import to_uint8
from mammo.tiles import NATIVE_TILE, TILE_SIZE, box_sum, surround_view

# uint8 (n, 299, 299), or (n, 299, 299, 2) with the surround channel -> class probabilities (n, classes)
Predict = Callable[[np.ndarray], np.ndarray]

BREAST_COLOUR = (0, 255, 0)  # BGR: the breast outline on the overlay
MUSCLE_COLOUR = (255, 0, 255)  # the pectoral muscle's hatching and outline
# the breast's level is this percentile of its grey levels: how much bright (dense) tissue it holds, read against the
# woman's other breast (a mass or an asymmetry adds dense tissue to one side only)
LEVEL_PERCENTILE = 90


@dataclass(frozen=True)
class Windowing:
    """How a scan is windowed. In the scans given to mammo.stages.scans.analyse_scans a field None is the model card's
    (a scale None: the scan's own for that model)."""

    stride: int = 299  # native pixels at the CBIS-DDSM scale
    scale: float = 1.0  # CBIS-scale pixels per scan pixel (mini-MIAS: windowing_scale(2.58) = 5.16)
    # windows with less breast that is not pectoral muscle are skipped (ds9 models call mostly-background windows
    # abnormal, and most false positives of whole-film reading lay on the muscle)
    min_tissue: float = 0.75
    batch_size: int = 32
    top: int = 8  # regions reported per scan
    overlap: float = 0.25  # regions overlapping a better one by more than this (IoU) are dropped
    skip_muscle: bool = True  # False: windows are chosen on the whole breast, the pectoral muscle included (as before)
    surround: bool = False  # each window shown with its surroundings as a second channel (mammo.tiles.surround_view)

    @property
    def factor(self) -> float:
        """Scan pixels -> model pixels (windows of NATIVE_TILE at the CBIS scale become TILE_SIZE)."""
        return self.scale * TILE_SIZE / NATIVE_TILE

    @property
    def step(self) -> int:
        """Stride in model pixels."""
        return max(1, int(round(self.stride * TILE_SIZE / NATIVE_TILE)))


@dataclass
class ScanScores:
    heatmap: np.ndarray  # mean P(abnormal) of the windows covering each stride cell; NaN where nothing was scored
    windows: np.ndarray  # (n, 4) boxes top, left, bottom, right in scan pixels
    scores: np.ndarray  # (n,) P(abnormal) per scored window
    probabilities: np.ndarray  # (n, classes)
    windows_total: int  # scored + skipped as background or muscle
    shape: tuple[int, int]  # scan shape
    breast: np.ndarray  # breast mask over the whole scan, at model scale
    muscle: np.ndarray  # pectoral muscle mask (a part of the breast), likewise
    tissue: np.ndarray  # (n,) share of each scored window inside the breast
    level: float  # the breast's grey level (breast_level); NaN for a film without breast


def breast_level(image8: np.ndarray, breast: np.ndarray) -> float:
    """The LEVEL_PERCENTILE percentile of the 8-bit grey levels inside the breast (the pectoral muscle included, as the
    windows show it): a film's amount of bright tissue, comparable between two films of one woman digitised alike."""
    return float(np.percentile(image8[breast], LEVEL_PERCENTILE)) if breast.any() else float("nan")


def working_image(scan16: np.ndarray, windowing: Windowing) -> np.ndarray:
    """The scan in 8 bit at model scale (area interpolation down, bilinear up), at least one window in size."""
    image8 = to_uint8(scan16)
    factor = windowing.factor
    size = (max(1, int(round(image8.shape[1] * factor))), max(1, int(round(image8.shape[0] * factor))))
    if size != (image8.shape[1], image8.shape[0]):
        image8 = cv2.resize(image8, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    rows, cols = max(image8.shape[0], TILE_SIZE), max(image8.shape[1], TILE_SIZE)
    if (rows, cols) != image8.shape:
        padded = np.zeros((rows, cols), np.uint8)
        padded[: image8.shape[0], : image8.shape[1]] = image8
        image8 = padded
    return image8


def breast_mask(image8: np.ndarray, saturated: int = 250) -> np.ndarray:
    """The breast: the largest bright connected region (Otsu threshold on a blurred copy), holes filled.

    Saturated pixels (film labels, scanner borders; the study zeroed 255) are left out first, so
    that a label touching the border, or a border touching the breast, does not join the breast.
    """
    blurred = cv2.GaussianBlur(np.where(image8 >= saturated, 0, image8).astype(np.uint8), (0, 0), 3)
    level, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    foreground = (blurred > max(level, 10)).astype(np.uint8)
    foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    if count <= 1:
        return np.zeros(image8.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    breast = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(breast, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(breast, contours, -1, 1, thickness=cv2.FILLED)
    return breast.astype(bool)


MUSCLE_ROWS = 256  # the muscle is looked for on a copy of the breast this many rows high: quick, and its edge is coarse


def chest_wall_on_left(breast: np.ndarray) -> bool:
    """Whether the chest wall is on the left of the film: the side where the breast is tallest (the film edge cuts
    the breast along the chest wall; the other side rounds off to the nipple)."""
    cols = np.flatnonzero(breast.any(axis=0))
    if not len(cols):
        return True
    band = max(1, (cols[-1] - cols[0] + 1) // 20)
    return bool(breast[:, cols[0] : cols[0] + band].sum() >= breast[:, cols[-1] - band + 1 : cols[-1] + 1].sum())


def pectoral_muscle(image8: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The pectoral muscle of an MLO view: the part of the breast above a straight edge cutting the top chest-wall
    corner; empty where no such corner is found (CC views, films without a clear muscle).

    A classical threshold and straight-line fit after Kwok et al. 2004 ("Automatic pectoral muscle segmentation on
    mediolateral oblique view mammograms", IEEE TMI 23(9)), without their curve refinement. On a blurred copy
    MUSCLE_ROWS high, turned so that the chest wall is on the left, each of a range of thresholds (percentiles of
    the breast's top 3/4 and chest-wall 7/10) gives the bright region holding most of the top chest-wall corner;
    its width per row is fitted by a line narrowing downwards, which makes a triangle. The triangle that best
    matches its region (IoU) is the muscle if it is plausibly one: it reaches down 10% to 100% of the breast, covers
    2% to 50% of it, matches its region by IoU 0.7 or more, and is brighter by 8 grey levels than the band beyond
    its edge. The edge is then drawn at full size.
    """
    muscle = np.zeros(breast.shape, bool)
    rows, cols = np.flatnonzero(breast.any(axis=1)), np.flatnonzero(breast.any(axis=0))
    if not len(rows):
        return muscle
    top, bottom, first, last = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    turned = not chest_wall_on_left(breast)
    image, mask = image8[top:bottom, first:last], breast[top:bottom, first:last]
    if turned:
        image, mask = image[:, ::-1], mask[:, ::-1]
    factor = min(1.0, MUSCLE_ROWS / image.shape[0])
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    small = cv2.GaussianBlur(cv2.resize(image, size, interpolation=cv2.INTER_AREA), (0, 0), 2)
    small_breast = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    edge = _muscle_edge(small, small_breast)
    if edge is None:
        return muscle
    slope, intercept = edge  # width of the muscle in small pixels = intercept + slope * small row
    inside = np.arange(last - first)[None, :] * factor < intercept + slope * np.arange(bottom - top)[:, None] * factor
    muscle[top:bottom, first:last] = (inside[:, ::-1] if turned else inside) & breast[top:bottom, first:last]
    return muscle


def _muscle_edge(image: np.ndarray, breast: np.ndarray) -> tuple[float, float] | None:
    """(slope, intercept) of the muscle's edge, its width per row, in a breast image turned chest wall left; None
    where no threshold gives a plausible muscle (pectoral_muscle says which is)."""
    height, width = image.shape
    search = (slice(0, int(0.75 * height)), slice(0, int(0.7 * width)))
    region, region_breast = image[search], breast[search]
    if not region_breast.any():
        return None
    row_index, col_index = np.mgrid[: region.shape[0], : region.shape[1]]
    best_iou, best = 0.7, None
    for level in np.unique(np.percentile(region[region_breast], np.arange(30, 100, 5))):
        count, labels = cv2.connectedComponents(((region >= level) & region_breast).astype(np.uint8), connectivity=8)
        in_corner = np.bincount(labels[: max(1, height // 10), : max(1, width // 10)].ravel(), minlength=count)[1:]
        if not in_corner.any():
            continue
        bright = labels == 1 + int(np.argmax(in_corner))
        widths = bright.sum(axis=1)
        fitted_rows = np.arange(np.flatnonzero(widths)[-1] + 1)
        if len(fitted_rows) < 3:  # a sliver along the top edge: no edge to fit
            continue
        slope, intercept = np.polyfit(fitted_rows, widths[fitted_rows], 1)
        if slope >= 0 or intercept <= 0:
            continue
        boundary = intercept + slope * row_index
        triangle = (col_index < boundary) & region_breast
        beyond = (col_index >= boundary) & (col_index < boundary + 0.1 * width) & (boundary > 0) & region_breast
        if not triangle.any() or not beyond.any():
            continue
        iou = (triangle & bright).sum() / (triangle | bright).sum()
        plausible = (
            0.1 * height <= -intercept / slope <= height
            and 0.02 <= triangle.sum() / breast.sum() <= 0.5
            and region[triangle].mean() - region[beyond].mean() >= 8
        )
        if plausible and iou >= best_iou:
            best_iou, best = iou, (slope, intercept)
    return best


def segmented(image8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-bit image with everything outside the breast black (labels, borders), and the breast mask."""
    breast = breast_mask(image8)
    return np.where(breast, image8, 0).astype(np.uint8), breast


def window_starts(length: int, step: int, size: int = TILE_SIZE) -> np.ndarray:
    """Starts along one axis every `step`, the last flush with the far edge so the whole axis is covered.

    A last window within half a step of the edge moves there instead of gaining a near-copy beside it.
    """
    starts = list(range(0, length - size + 1, step))
    gap = length - size - starts[-1]
    if gap and 2 * gap < step and len(starts) > 1:
        starts[-1] = length - size
    elif gap:
        starts.append(length - size)
    return np.array(starts)


def tissue_windows(mask: np.ndarray, windowing: Windowing) -> tuple[np.ndarray, int]:
    """(n, 2) top-left corners of the windows holding at least `min_tissue` of `mask`, and the number of windows in all."""
    rows = window_starts(mask.shape[0], windowing.step)
    cols = window_starts(mask.shape[1], windowing.step)
    integral = cv2.integral(mask.astype(np.uint8))
    tops, lefts = np.meshgrid(rows, cols, indexing="ij")
    tops, lefts = tops.ravel(), lefts.ravel()
    inside = box_sum(integral, tops, lefts, tops + TILE_SIZE, lefts + TILE_SIZE)
    keep = inside >= windowing.min_tissue * TILE_SIZE * TILE_SIZE
    return np.stack([tops[keep], lefts[keep]], axis=1), len(tops)


def batches(image8: np.ndarray, corners: np.ndarray, windowing: Windowing) -> Iterator[np.ndarray]:
    """Windows gathered from a strided view, one batch at a time, each with its surround channel where the windowing
    says so."""
    view = np.lib.stride_tricks.sliding_window_view(image8, (TILE_SIZE, TILE_SIZE))
    for start in range(0, len(corners), windowing.batch_size):
        chosen = corners[start : start + windowing.batch_size]
        windows = view[chosen[:, 0], chosen[:, 1]]
        if windowing.surround:
            surroundings = [surround_view(image8, int(top), int(left), TILE_SIZE) for top, left in chosen]
            windows = np.stack([windows, np.stack(surroundings)], axis=-1)
        yield windows


@dataclass
class ScanWindows:
    working: np.ndarray  # the scan in 8 bit at model scale (working_image)
    image8: np.ndarray  # the same, everything outside the breast black: what the windows show the model
    breast: np.ndarray
    muscle: np.ndarray
    corners: np.ndarray  # (n, 2) top-left corners, in model pixels, of the windows to score
    total: int  # windows in all, scored or skipped as background or muscle


def scan_windows(scan16: np.ndarray, windowing: Windowing) -> ScanWindows:
    """The windows of a scan that hold enough breast that is not pectoral muscle, as whole-film scanning scores them."""
    working = working_image(scan16, windowing)
    image8, breast = segmented(working)
    muscle = pectoral_muscle(working, breast)  # left out of the windows' choice, not of the image (tiles saw it)
    corners, total = tissue_windows(breast & ~muscle if windowing.skip_muscle else breast, windowing)
    return ScanWindows(working, image8, breast, muscle, corners, total)


def score_scan(scan16: np.ndarray, predict: Predict, windowing: Windowing = Windowing()) -> ScanScores:
    """Score every window of a scan holding enough breast that is not pectoral muscle, and assemble the heatmap."""
    found = scan_windows(scan16, windowing)
    image8, breast, muscle, corners, total = found.image8, found.breast, found.muscle, found.corners, found.total
    probabilities = [predict(batch) for batch in batches(image8, corners, windowing)]
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, 2), np.float32)
    scores = p_abnormal(probabilities)
    heatmap = _heatmap(image8.shape, corners, scores, windowing.step)
    tops, lefts = corners[:, 0], corners[:, 1]
    tissue = box_sum(cv2.integral(breast.astype(np.uint8)), tops, lefts, tops + TILE_SIZE, lefts + TILE_SIZE) / TILE_SIZE**2
    windows = _to_scan(np.concatenate([corners, corners + TILE_SIZE], axis=1), windowing.factor, scan16.shape)
    # the masks less the padding working_image may add, so that they span the scan as its thumbnail does
    rows, cols = (max(1, int(round(side * windowing.factor))) for side in scan16.shape)
    scan_shape = tuple(scan16.shape)
    return ScanScores(
        heatmap,
        windows,
        scores,
        probabilities,
        total,
        scan_shape,
        breast[:rows, :cols],
        muscle[:rows, :cols],
        tissue,
        breast_level(found.working, breast),
    )


def _heatmap(shape: tuple[int, int], corners: np.ndarray, scores: np.ndarray, step: int) -> np.ndarray:
    """Mean score over the windows covering each cell of `step` pixels."""
    cells = (-(-shape[0] // step), -(-shape[1] // step))
    total, count = np.zeros(cells), np.zeros(cells)
    for (top, left), score in zip(corners, scores):
        rows = slice(top // step, -(-(top + TILE_SIZE) // step))
        cols = slice(left // step, -(-(left + TILE_SIZE) // step))
        total[rows, cols] += score
        count[rows, cols] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _to_scan(boxes: np.ndarray, factor: float, shape: tuple[int, int]) -> np.ndarray:
    scaled = np.round(boxes / factor).astype(int)
    scaled[:, [0, 2]] = np.clip(scaled[:, [0, 2]], 0, shape[0])
    scaled[:, [1, 3]] = np.clip(scaled[:, [1, 3]], 0, shape[1])
    return scaled.reshape(-1, 4)


def top_regions(windows: np.ndarray, scores: np.ndarray, count: int, overlap: float) -> list[int]:
    """Indices of the best windows, each overlapping a better one by at most `overlap` (IoU): greedy suppression."""
    chosen: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if len(chosen) == count:
            break
        if all(_iou(windows[index], windows[other]) <= overlap for other in chosen):
            chosen.append(int(index))
    return chosen


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    rows = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    cols = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = rows * cols
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def regions(result: ScanScores, windowing: Windowing, temperature: float | None = None) -> list[dict]:
    """The top regions of a scored scan: box in scan pixels, score, calibrated probability when a temperature is known."""
    chosen = top_regions(result.windows, result.scores, windowing.top, windowing.overlap)
    calibrated_scores = p_abnormal(result.probabilities, temperature) if temperature else None
    return [
        {
            "box": [int(v) for v in result.windows[index]],
            "score": round(float(result.scores[index]), 6),
            "calibrated": None if calibrated_scores is None else round(float(calibrated_scores[index]), 6),
        }
        for index in chosen
    ]


def thumbnail(scan16: np.ndarray, max_side: int = 1024) -> tuple[np.ndarray, float]:
    """The scan in 8 bit with its longer side at most `max_side`, and the factor from scan pixels to it."""
    factor = min(1.0, max_side / max(scan16.shape))
    size = (max(1, int(scan16.shape[1] * factor)), max(1, int(scan16.shape[0] * factor)))
    return cv2.resize(to_uint8(scan16), size, interpolation=cv2.INTER_AREA), factor


def overlay(
    image8: np.ndarray,
    factor: float,
    heatmap: np.ndarray,
    found: list[dict],
    boxed: float = 0.5,
    breast: np.ndarray | None = None,
    muscle: np.ndarray | None = None,
) -> np.ndarray:
    """BGR picture of a thumbnail (scan pixels x `factor`): heat in colour, more opaque where higher; regions boxed;
    the breast outlined and the pectoral muscle hatched where their masks (over the whole scan) are given.

    The first region and every region scoring at least `boxed` get a box with rank and score.
    """
    size = (image8.shape[1], image8.shape[0])
    grey = cv2.cvtColor(image8, cv2.COLOR_GRAY2BGR).astype(np.float32)
    heat = cv2.resize(np.nan_to_num(heatmap).astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
    alpha = (0.2 + 0.5 * heat)[..., None] * (heat > 0)[..., None]
    picture = (grey * (1 - alpha) + colour * alpha).astype(np.uint8)
    if muscle is not None:
        # hatched rather than tinted, so that the heat of windows reaching into the muscle stays readable
        muscle = cv2.resize(muscle.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        rows, cols = np.indices(muscle.shape)
        picture[muscle & ((rows + cols) % 8 == 0)] = MUSCLE_COLOUR
        _outline(picture, muscle, MUSCLE_COLOUR)
    if breast is not None:
        _outline(picture, cv2.resize(breast.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool), BREAST_COLOUR)
    for rank, region in enumerate(found, start=1):
        if rank > 1 and region["score"] < boxed:
            continue
        top, left, bottom, right = (int(v * factor) for v in region["box"])
        cv2.rectangle(picture, (left, top), (right - 1, bottom - 1), (255, 255, 255), 2)
        cv2.putText(
            picture, f"{rank}: {region['score']:.2f}", (left + 4, top + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1
        )
    return picture


EXAM_SIDE = 768  # pixels of the longer side of each film in an exam picture
EXAM_BACKGROUND = (40, 40, 40)  # BGR: between the films, and where a film is missing


def hung_overlay(scan16: np.ndarray, result: ScanScores, found: list[dict], side: str) -> np.ndarray:
    """A film's overlay (heat, top regions, breast and muscle) as radiologists hang it beside the other breast: the
    right breast on the viewer's left with its chest wall on its right edge, the left breast on the viewer's right with
    its chest wall on its left edge, so the chest walls face each other. A film stored the other way round (its chest
    wall found by chest_wall_on_left) is mirrored before the overlay is drawn, so the labels stay readable."""
    image8, factor = thumbnail(scan16, EXAM_SIDE)
    heatmap, breast, muscle = result.heatmap, result.breast, result.muscle
    if chest_wall_on_left(result.breast) == (side == "R"):
        width = result.shape[1]
        image8, heatmap, breast, muscle = (np.ascontiguousarray(a[:, ::-1]) for a in (image8, heatmap, breast, muscle))
        found = [
            {**region, "box": [region["box"][0], width - region["box"][3], region["box"][2], width - region["box"][1]]}
            for region in found
        ]
    return overlay(image8, factor, heatmap, found, breast=breast, muscle=muscle)


def exam_picture(rows: list[tuple[tuple[np.ndarray | None, str], tuple[np.ndarray | None, str]]]) -> np.ndarray:
    """BGR picture of one woman's films: a row per (right, left) pair, each film (hung_overlay) under its caption, a
    missing film a blank panel of its partner's size under its own caption."""
    gap = 16
    lines = []
    for row in rows:
        shape = next(panel.shape[:2] for panel, _ in row if panel is not None)
        right, left = (_captioned(panel, caption, shape) for panel, caption in row)
        height = max(right.shape[0], left.shape[0])
        spacer = np.full((height, gap, 3), EXAM_BACKGROUND, np.uint8)
        lines.append(np.hstack([_padded(right, height, right.shape[1]), spacer, _padded(left, height, left.shape[1])]))
    width = max(line.shape[1] for line in lines)
    return np.vstack([_padded(line, line.shape[0] + gap, width) for line in lines])[:-gap]


def _captioned(panel: np.ndarray | None, caption: str, shape: tuple[int, int], band: int = 32) -> np.ndarray:
    """A panel (a blank one of `shape` where None) under a band holding its caption."""
    body = panel if panel is not None else np.full((*shape, 3), EXAM_BACKGROUND, np.uint8)
    head = np.full((band, body.shape[1], 3), EXAM_BACKGROUND, np.uint8)
    cv2.putText(head, caption, (6, band - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return np.vstack([head, body])


def _padded(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The image at the top left of a background canvas of rows x cols."""
    canvas = np.full((rows, cols, 3), EXAM_BACKGROUND, np.uint8)
    canvas[: image.shape[0], : image.shape[1]] = image
    return canvas


def _outline(picture: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Draw the outer edge of a mask as a thin line."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(picture, contours, -1, colour, 1)
