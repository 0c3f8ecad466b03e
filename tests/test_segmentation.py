"""Breast and pectoral muscle segmentation for whole-film reading: synthetic cases, and real films pinned after their
outlines were drawn and looked at (mini-MIAS MLO views; the real CBIS-DDSM CC view has no muscle)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mammo.heatmap import (
    BREAST_COLOUR,
    MUSCLE_COLOUR,
    Windowing,
    chest_wall_on_left,
    overlay,
    pectoral_muscle,
    score_scan,
    segmented,
    tissue_windows,
    working_image,
)
from mammo.io.mias import MIAS_SCALE, read_mias_scan
from mammo.io.scan import read_scan
from mammo.sources import windowing_scale
from mammo.tiles import TILE_SIZE

# label boxes (left, top, width, height in the 1024-pixel film) of films whose label lies near the breast
LABELS = {
    "mdb005": (188, 0, 153, 102),
    "mdb006": (628, 0, 92, 113),
    "mdb012": (557, 0, 99, 116),
    "mdb057": (252, 0, 155, 106),
    "mdb078": (723, 0, 83, 123),
    "mdb083": (230, 16, 91, 141),
}
# share of the film that is breast, and of the breast that is muscle, as drawn and looked at
BREAST_SHARES = {"mdb005": 0.4216, "mdb006": 0.4536, "mdb012": 0.3006, "mdb057": 0.3569, "mdb078": 0.3344, "mdb083": 0.3835}
MUSCLE_SHARES = {"mdb005": 0.158, "mdb006": 0.093, "mdb017": 0.299, "mdb025": 0.172, "mdb046": 0.245, "mdb083": 0.099}


def breast_and_muscle(image8):
    """What whole-film scoring segments: the blacked image, the breast and its pectoral muscle."""
    image, breast = segmented(image8)
    return image, breast, pectoral_muscle(image8, breast)


def synthetic_mlo(muscle: bool = True, chest_wall_left: bool = True) -> np.ndarray:
    """An 8-bit MLO-like breast on a black film (the chest wall along one side, widest in the middle) with a bright
    muscle triangle in its top chest-wall corner."""
    image = np.zeros((400, 300), np.uint8)
    rows, cols = np.indices(image.shape)
    image[cols < 140 + 140 * np.sin(np.pi * rows / 400)] = 110
    if muscle:
        image[cols < 100 - 0.6 * rows] = 190
    return image if chest_wall_left else image[:, ::-1].copy()


def test_a_bright_top_chest_wall_triangle_is_the_muscle_on_either_side():
    for chest_wall_left in (True, False):
        image = synthetic_mlo(chest_wall_left=chest_wall_left)
        _, breast, muscle = breast_and_muscle(image)
        assert chest_wall_on_left(breast) is chest_wall_left
        truth = (image == 190) & breast
        assert (muscle & truth).sum() / (muscle | truth).sum() > 0.9


def test_a_breast_without_a_bright_corner_has_no_muscle():
    image = synthetic_mlo(muscle=False)
    assert not pectoral_muscle(image, breast_and_muscle(image)[1]).any()


def test_windows_are_chosen_on_breast_that_is_not_muscle():
    """The top chest-wall window is all breast but about 28% muscle: scored on breast alone, skipped without muscle."""
    film = cv2.resize(synthetic_mlo(), (2 * TILE_SIZE, 2 * TILE_SIZE), interpolation=cv2.INTER_NEAREST)
    _, breast, muscle = breast_and_muscle(film)
    assert muscle.any() and (segmented(film)[1] == breast).all()  # edge tiles keep choosing on the whole breast
    windowing = Windowing(stride=2 * TILE_SIZE, scale=2.0, min_tissue=0.8)  # model scale = scan scale: four windows
    assert [0, 0] in tissue_windows(breast, windowing)[0].tolist()
    result = score_scan(film.astype(np.uint16) * 257, lambda batch: np.tile([[0.5, 0.5]], (len(batch), 1)), windowing)
    assert result.windows_total == 4 and [0, 0, TILE_SIZE, TILE_SIZE] not in result.windows.tolist()
    assert result.breast.shape == result.muscle.shape == film.shape and (result.muscle == muscle).all()


def test_the_overlay_outlines_the_breast_and_hatches_the_muscle():
    image = synthetic_mlo()
    _, breast, muscle = breast_and_muscle(image)
    picture = overlay(image, 1.0, np.full((2, 2), np.nan), [], breast=breast, muscle=muscle)
    hatched = (picture == MUSCLE_COLOUR).all(axis=2)
    outlined = (picture == BREAST_COLOUR).all(axis=2)
    near_muscle = cv2.dilate(muscle.astype(np.uint8), np.ones((3, 3))) > 0  # the outline's diagonals may stray a pixel
    assert hatched[muscle].mean() > 0.1 and not hatched[~near_muscle].any()
    interior = cv2.erode(breast.astype(np.uint8), np.ones((3, 3)), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    assert outlined.sum() > 2 * image.shape[0] and not outlined[interior].any()
    assert (overlay(image, 1.0, np.full((2, 2), np.nan), []) == cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)).all()  # no masks


@pytest.fixture(scope="module")
def mias_films(real_mias_archive, tmp_path_factory) -> Path:
    """The named real films, unpacked from the shared archive into a temporary folder."""
    folder = tmp_path_factory.mktemp("mias-segmentation")
    wanted = {f"{name}.pgm" for name in {*LABELS, *MUSCLE_SHARES}}
    with tarfile.open(real_mias_archive) as tar:
        tar.extractall(folder, members=[m for m in tar.getmembers() if Path(m.name).name in wanted], filter="data")
    return next(folder.rglob("mdb005.pgm")).parent


def mias_segmentation(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Breast and muscle of a real film as the scan sees it (mini-MIAS windowing)."""
    image8 = working_image(read_mias_scan(folder / f"{name}.pgm"), Windowing(scale=windowing_scale(MIAS_SCALE)))
    return breast_and_muscle(image8)[1:]


@pytest.mark.parametrize("name", sorted(LABELS))
def test_real_breast_masks_leave_the_film_label_out(mias_films, name):
    breast, _ = mias_segmentation(mias_films, name)
    factor = breast.shape[0] / 1024
    left, top, width, height = (round(v * factor) for v in LABELS[name])
    assert not breast[top : top + height, left : left + width].any()
    assert breast.mean() == pytest.approx(BREAST_SHARES[name], abs=0.01)


@pytest.mark.parametrize("name", sorted(MUSCLE_SHARES))
def test_real_mlo_muscle_lies_in_the_upper_chest_wall_corner(mias_films, name):
    breast, muscle = mias_segmentation(mias_films, name)
    assert muscle.sum() / breast.sum() == pytest.approx(MUSCLE_SHARES[name], abs=0.02)
    assert not (muscle & ~breast).any()
    rows, cols = np.nonzero(breast)
    muscle_rows, muscle_cols = np.nonzero(muscle)
    chest_wall_col = cols.min() if int(name[3:]) % 2 == 0 else cols.max()  # in these films even = left breast
    assert chest_wall_on_left(breast) == (chest_wall_col == cols.min())
    assert muscle_rows.min() == rows.min() and chest_wall_col in muscle_cols  # touches the top and the chest wall
    assert muscle_rows.max() < rows.min() + 0.8 * (rows.max() - rows.min())  # upper part of the breast (mdb017: 78%)
    assert np.abs(muscle_cols - chest_wall_col).max() < 0.7 * (cols.max() - cols.min())  # chest-wall side


def test_real_cc_view_has_no_muscle(shared):
    paths = sorted((shared / "data" / "cbis-ddsm-real").rglob("*.dcm"))
    if not paths:
        pytest.skip("../shared/data/cbis-ddsm-real holds no DICOM")
    _, breast, muscle = breast_and_muscle(working_image(read_scan(paths[0]), Windowing()))
    assert chest_wall_on_left(breast)  # a LEFT CC: the chest wall on the film's left
    assert breast.mean() == pytest.approx(0.184, abs=0.01) and not muscle.any()


def test_skip_muscle_false_chooses_windows_on_the_whole_breast():
    """The switch (config scans.skip_muscle) that measures what leaving the muscle out does: off, the top chest-wall
    window (all breast, about 28% muscle) is scored again."""
    film = cv2.resize(synthetic_mlo(), (2 * TILE_SIZE, 2 * TILE_SIZE), interpolation=cv2.INTER_NEAREST)
    windowing = Windowing(stride=2 * TILE_SIZE, scale=2.0, min_tissue=0.8, skip_muscle=False)
    result = score_scan(film.astype(np.uint16) * 257, lambda batch: np.tile([[0.5, 0.5]], (len(batch), 1)), windowing)
    assert [0, 0, TILE_SIZE, TILE_SIZE] in result.windows.tolist() and result.muscle.any()
