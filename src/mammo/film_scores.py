"""A film's score from its windows and from the other breast's: a frame of the breast, the matching windows of the
woman's other breast, film features, and a small logistic aggregate fitted on inner-validation women.

The frame aligns two breasts by their outlines and the nipple/chest-wall axis: a point is its distance from the chest
wall in units of the breast's depth (chest wall to nipple), and its height above or below the nipple in units of the
breast's extent above or below it. Measured from each film's own chest wall, the other breast is mirrored by
construction. A window of one breast is compared with the best window of the other breast near the matching point
(Kooi and Karssemeijer 2017 compare a candidate with the same place of the other breast; an asymmetry is a finding
between the two breasts).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import cv2
import numpy as np
import pandas as pd

from mammo.heatmap import ScanScores, chest_wall_on_left
from mammo.sources import partners

FRAME_SIDE = 256  # pixels of the longer side of the mask copy a breast's frame is read on
FRAME_OPENING = 9  # pixels across the disc that opens that copy
NIPPLE_BAND = 0.02  # of the breast's depth: the farthest columns, whose rows' mean is the nipple's row
BORDER_TISSUE = 0.95  # a window with less breast than this reaches over the skin line or the film border
TOP_WINDOWS = 3  # windows in the top-k features
EPSILON = 1e-4  # scores are clipped to [EPSILON, 1 - EPSILON] before their logit
LEVEL_SCALE = 10.0  # grey levels of the two breasts' level difference that make one logit of the asymmetry scores

FEATURES = ("max", "top3_mean", "share_above_half", "border_share_top3")
OTHER_BREAST_FEATURES = ("other_breast_max_difference", "other_breast_film_difference", "other_breast_level_difference")
# the film scores cross-validation compares; the relative ones need no fitting (RELATIVE_SCORES)
FILM_SCORES = ("max", "above_film", "above_woman", "asymmetry", "max_and_asymmetry", "learned", "learned_other_breast")
RELATIVE_SCORES = {
    "above_film": {"method": "above_median", "uses_other_breast": False},
    "above_woman": {"method": "above_median", "uses_other_breast": True},
    "asymmetry": {"method": "level_difference", "uses_other_breast": True, "plus_max": False},
    "max_and_asymmetry": {"method": "level_difference", "uses_other_breast": True, "plus_max": True},
}


@dataclass(frozen=True)
class BreastFrame:
    """Where a breast lies on its film, in scan pixels."""

    chest_left: bool  # the chest wall on the film's left
    wall: float  # column of the chest wall
    depth: float  # columns from the chest wall to the nipple
    nipple_row: float
    top: float  # first and last rows of the breast
    bottom: float

    def to_frame(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scan pixels -> (depth from the chest wall over the breast's depth, height from the nipple: -1 at the
        breast's top, +1 at its bottom)."""
        depth = (cols - self.wall) * (1 if self.chest_left else -1) / self.depth
        above, below = max(self.nipple_row - self.top, 1.0), max(self.bottom - self.nipple_row, 1.0)
        height = np.where(rows < self.nipple_row, (rows - self.nipple_row) / above, (rows - self.nipple_row) / below)
        return depth, height

    def from_frame(self, depth: np.ndarray, height: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of to_frame."""
        above, below = max(self.nipple_row - self.top, 1.0), max(self.bottom - self.nipple_row, 1.0)
        rows = self.nipple_row + np.where(height < 0, height * above, height * below)
        cols = self.wall + depth * self.depth * (1 if self.chest_left else -1)
        return rows, cols

    def as_array(self) -> np.ndarray:
        return np.array(astuple(self), np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> BreastFrame:
        chest_left, *rest = (float(v) for v in values)
        return cls(bool(chest_left), *rest)


def breast_frame(breast: np.ndarray, factor: float) -> BreastFrame | None:
    """The frame of a breast mask drawn at `factor` times the scan's size (ScanScores.breast), in scan pixels; None
    where the mask is empty. Read on a copy FRAME_SIDE pixels long, opened by a disc FRAME_OPENING across: a thin strip
    the mask keeps along a film edge (a scanner border) would otherwise pass for the breast's farthest point."""
    shrink = min(1.0, FRAME_SIDE / max(breast.shape))
    size = (max(1, round(breast.shape[1] * shrink)), max(1, round(breast.shape[0] * shrink)))
    small = cv2.resize(breast.astype(np.uint8), size, interpolation=cv2.INTER_AREA)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (FRAME_OPENING, FRAME_OPENING))
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, disc)
    rows, cols = np.nonzero(opened if opened.any() else small)
    if not len(rows):
        return None
    chest_left = chest_wall_on_left(breast)
    wall, far = (cols.min(), cols.max()) if chest_left else (cols.max(), cols.min())
    depth = max(abs(far - wall), 1)
    tip = np.abs(cols - far) <= NIPPLE_BAND * depth
    to_scan = 1 / (factor * shrink)
    return BreastFrame(
        chest_left,
        wall * to_scan,
        depth * to_scan,
        rows[tip].mean() * to_scan,
        rows.min() * to_scan,
        rows.max() * to_scan,
    )


@dataclass
class FilmWindows:
    """What a film's score is made of: its scored windows and its breast's frame."""

    boxes: np.ndarray  # (n, 4) top, left, bottom, right in scan pixels
    scores: np.ndarray  # (n,) P(abnormal)
    tissue: np.ndarray  # (n,) share of each window inside the breast
    frame: BreastFrame | None
    level: float = float("nan")  # the breast's grey level (mammo.heatmap.breast_level); NaN where unknown

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.boxes[:, 0] + self.boxes[:, 2]) / 2, (self.boxes[:, 1] + self.boxes[:, 3]) / 2


def other_breast_scores(film: FilmWindows, other: FilmWindows) -> np.ndarray:
    """For each window of `film`, the score of the matching place of the other breast: its windows' best whose centre
    lies within one window side of the point the frames match (NaN where either film has no frame or no window)."""
    if film.frame is None or other.frame is None or not len(other.scores) or not len(film.scores):
        return np.full(len(film.scores), np.nan)
    rows, cols = other.frame.from_frame(*film.frame.to_frame(*film.centres()))
    other_rows, other_cols = other.centres()
    distance = np.hypot(rows[:, None] - other_rows[None, :], cols[:, None] - other_cols[None, :])
    side = np.median(other.boxes[:, 2] - other.boxes[:, 0])
    near = distance <= side
    # where no window of the other breast lies that near (its muscle, or a point beyond its outline): the nearest one
    near[np.arange(len(rows)), distance.argmin(axis=1)] |= ~near.any(axis=1)
    return np.where(near, other.scores[None, :], -np.inf).max(axis=1)


def logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(scores, np.float64), EPSILON, 1 - EPSILON)
    return np.log(clipped / (1 - clipped))


def above_median(film: FilmWindows, other: FilmWindows | None = None) -> float:
    """The strongest window's logit above the median logit of the film's windows (given `other`, of both her films'
    windows), through the logistic function: a level set by the film, or the woman, itself. Not a probability, a rank:
    the tile model's scores rise with breast density over a whole film (dense films' windows all score higher), while
    a lesion stands out of its own film (docs/results.md)."""
    windows = film.scores if other is None else np.concatenate([film.scores, other.scores])
    return float(1 / (1 + np.exp(np.median(logit(windows)) - logit(film.scores.max()))))


def level_difference(film: FilmWindows, other: FilmWindows | None) -> float | None:
    """How much brighter (denser) the film's breast is than the woman's other breast, in grey levels; None where either
    level is unknown."""
    if other is None or not np.isfinite(film.level) or not np.isfinite(other.level):
        return None
    return float(film.level - other.level)


def film_features(film: FilmWindows, other: FilmWindows | None = None) -> dict[str, float]:
    """The features a film's score is learnt from (FEATURES; with the other breast's film, OTHER_BREAST_FEATURES too):
    the strongest window and the mean of the TOP_WINDOWS strongest (as logits), the share of windows at P >= 0.5, the
    share of the strongest windows reaching over the skin line or film border, the largest difference between a
    window and the other breast's matching place, the difference of the two films' strongest windows, and the
    difference of the two breasts' grey levels (more bright tissue on one side: an asymmetric density; 0 where either
    level is unknown)."""
    order = np.argsort(-film.scores, kind="stable")[:TOP_WINDOWS]
    features = {
        "max": float(logit(film.scores.max())),
        "top3_mean": float(logit(film.scores[order].mean())),
        "share_above_half": float((film.scores >= 0.5).mean()),
        "border_share_top3": float((film.tissue[order] < BORDER_TISSUE).mean()),
    }
    if other is not None:
        matched = other_breast_scores(film, other)
        known = ~np.isnan(matched)
        features["other_breast_max_difference"] = (
            float((logit(film.scores[known]) - logit(matched[known])).max()) if known.any() else 0.0
        )
        features["other_breast_film_difference"] = (
            float(logit(film.scores.max()) - logit(other.scores.max())) if len(other.scores) else 0.0
        )
        difference = level_difference(film, other)
        features["other_breast_level_difference"] = 0.0 if difference is None else difference
    return features


def fit_aggregate(features: list[dict[str, float]], labels, fitted_on: dict, without_other_breast: dict | None = None) -> dict:
    """A logistic regression (L2, C = 1, on standardised features) from film features to P(abnormal film), as JSON
    (mammo.card's scanning.aggregate). Given `without_other_breast` (an aggregate fitted without them), it learns from
    the other breast's features too and keeps that one inside it for films whose partner is missing. `fitted_on`
    says which films it learnt from (counted, never listed)."""
    from sklearn.linear_model import LogisticRegression

    names = FEATURES + (OTHER_BREAST_FEATURES if without_other_breast is not None else ())
    matrix = np.array([[row[name] for name in names] for row in features], np.float64).reshape(-1, len(names))
    labels = np.asarray(labels).astype(int)
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"a film score needs normal and abnormal films to learn from; got {len(labels)} film(s) of one kind")
    mean, scale = matrix.mean(axis=0), matrix.std(axis=0)
    scale[scale < 1e-6] = 1.0  # a feature constant over these films (rounding would make its scale 0)
    model = LogisticRegression(C=1.0).fit((matrix - mean) / scale, labels)
    aggregate = {
        "method": "logistic",
        "features": list(names),
        "mean": mean.round(6).tolist(),
        "scale": scale.round(6).tolist(),
        "coefficients": model.coef_[0].round(6).tolist(),
        "intercept": round(float(model.intercept_[0]), 6),
        "uses_other_breast": without_other_breast is not None,
        "fitted_on": fitted_on,
    }
    if without_other_breast is not None:
        aggregate["without_other_breast"] = without_other_breast
    return aggregate


def film_score(aggregate: dict, film: FilmWindows, other: FilmWindows | None = None) -> tuple[float, bool]:
    """A film's score by the aggregate (the card's scanning.aggregate; max: its strongest window's P(abnormal);
    above_median: above_median, of the woman's two films where it uses the other breast and that film has windows), and
    whether the other breast's film was used: without it (none given, or an aggregate that does not use it) a
    logistic aggregate that uses it scores the film by its `without_other_breast`. level_difference, nothing learnt:
    the logistic of the two breasts' level difference over LEVEL_SCALE (asymmetry; the windows unread; 0.5 without
    the other breast), with plus_max added to the strongest window's logit (max_and_asymmetry: two readings as
    independent evidence; the max alone without the other breast)."""
    if aggregate["method"] == "max":
        return float(film.scores.max()), False
    if aggregate["method"] == "level_difference":
        difference = level_difference(film, other)
        evidence = float(logit(film.scores.max())) if aggregate["plus_max"] else 0.0
        if difference is not None:
            evidence += difference / LEVEL_SCALE
        return float(1 / (1 + np.exp(-evidence))), difference is not None
    if aggregate["method"] == "above_median":
        partnered = bool(aggregate["uses_other_breast"]) and other is not None and len(other.scores) > 0
        return above_median(film, other if partnered else None), partnered
    if aggregate["uses_other_breast"] and other is None:
        return film_score(aggregate["without_other_breast"], film)[0], False
    features = film_features(film, other if aggregate["uses_other_breast"] else None)
    values = (np.array([features[name] for name in aggregate["features"]]) - aggregate["mean"]) / aggregate["scale"]
    linear = float(values @ np.array(aggregate["coefficients"]) + aggregate["intercept"])
    return 1 / (1 + np.exp(-linear)), bool(aggregate["uses_other_breast"])


def film_windows(result: ScanScores, factor: float) -> FilmWindows:
    """A scored scan's windows and frame (`factor`: scan pixels -> the model scale of its masks)."""
    return FilmWindows(result.windows, result.scores, result.tissue, breast_frame(result.breast, factor), result.level)


def film_arrays(scan_id: str, film: FilmWindows) -> dict[str, np.ndarray]:
    """A film's windows and frame as arrays of a scans' .npz archive (beside its heatmap), read by read_film."""
    arrays = {
        f"{scan_id}/boxes": film.boxes.astype(np.int32),
        f"{scan_id}/scores": film.scores.astype(np.float32),
        f"{scan_id}/tissue": film.tissue.astype(np.float32),
    }
    if film.frame is not None:
        arrays[f"{scan_id}/frame"] = film.frame.as_array()
    if np.isfinite(film.level):
        arrays[f"{scan_id}/level"] = np.float32(film.level)
    return arrays


def read_film(archive, scan_id: str) -> FilmWindows:
    """A film's windows, frame and level from a scans' .npz archive (film_arrays)."""
    frame = archive[f"{scan_id}/frame"] if f"{scan_id}/frame" in archive else None
    return FilmWindows(
        archive[f"{scan_id}/boxes"],
        archive[f"{scan_id}/scores"].astype(np.float64),
        archive[f"{scan_id}/tissue"].astype(np.float64),
        None if frame is None else BreastFrame.from_array(frame),
        float(archive[f"{scan_id}/level"]) if f"{scan_id}/level" in archive else float("nan"),
    )


@dataclass
class ScoredFilm:
    """A film scored whole by the workflow (a row of its scans table and its windows), with its partner's windows."""

    scan_id: str
    woman: str
    label: int
    windows: FilmWindows
    partner: str | None  # the scan id of her other breast's film of the same view, where that was scored
    other: FilmWindows | None

    def features(self, other_breast: bool = False) -> dict[str, float]:
        return film_features(self.windows, self.other if other_breast else None)


def scored_films(scans: pd.DataFrame, heatmaps_path: str) -> list[ScoredFilm]:
    """The films of a scans table with at least one scored window, each with its partner's windows (paired by
    mammo.sources.partners from their files) where the partner was scored too."""
    scans = scans[pd.to_numeric(scans["windows_scored"]) > 0]
    partner_of = partners(scans["path"].tolist())
    scan_id_of = dict(zip(scans["path"], scans["scan_id"]))
    with np.load(heatmaps_path) as archive:
        windows = {scan_id: read_film(archive, scan_id) for scan_id in scans["scan_id"]}
    films = []
    for _, row in scans.iterrows():
        partner = scan_id_of.get(partner_of.get(row["path"]))
        films.append(
            ScoredFilm(
                row["scan_id"],
                str(row["patient_id"]),
                int(row["label_normal"]),
                windows[row["scan_id"]],
                partner,
                windows.get(partner),
            )
        )
    return films
