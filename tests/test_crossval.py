"""mini-MIAS cross-validation: the official archive, folds grouped by woman, fold splits, lesion-free tiles."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo.extract import BackgroundTiles, EdgeTiles, edge_tiles, mias_tiles
from mammo.heatmap import Windowing, breast_mask, segmented
from mammo.intensity import to_uint8
from mammo.io import FormatError
from mammo.io.mias import index_info, is_archive, unpack_archive
from mammo.split import SplitLeakError, check_patient_disjoint, fold_splits, woman_folds
from mammo.tiles import TILE_SIZE, Method2, NormalThresholds, NormalTiling

REAL_ARCHIVE = Path("data") / "mias-real" / "all-mias-dev.tar.gz"


@pytest.fixture(scope="module")
def real_films(shared, tmp_path_factory) -> Path:
    """Info.txt of the real films, unpacked from the shared archive by the project's own unpacker."""
    archive = shared / REAL_ARCHIVE
    if not archive.is_file():
        pytest.skip(f"../shared/{REAL_ARCHIVE} not available")
    return unpack_archive(archive, tmp_path_factory.mktemp("mias-real"))


# ----------------------------------------------------------------------------- folds
def films(women: int, abnormal_women: set[int]) -> tuple[pd.Series, pd.Series]:
    patients = pd.Series([f"mias:{w:03d}" for w in range(women) for _ in (0, 1)])
    abnormal = pd.Series([w in abnormal_women and side == 0 for w in range(women) for side in (0, 1)])
    return patients, abnormal


def test_woman_folds_never_split_a_woman_and_stratify_abnormal_women():
    patients, abnormal = films(23, set(range(0, 23, 3)))
    fold_of = woman_folds(patients, abnormal, 5, seed=1)
    assert set(fold_of) == set(patients)
    sizes = np.bincount(list(fold_of.values()), minlength=5)
    assert sizes.max() - sizes.min() <= 1
    abnormal_per_fold = np.bincount([fold_of[f"mias:{w:03d}"] for w in range(0, 23, 3)], minlength=5)
    assert abnormal_per_fold.max() - abnormal_per_fold.min() <= 1


def test_woman_folds_are_seeded_and_independent_of_film_order():
    patients, abnormal = films(20, {1, 4, 9, 12})
    first = woman_folds(patients, abnormal, 4, seed=3)
    order = np.random.default_rng(0).permutation(len(patients))
    assert woman_folds(patients.iloc[order], abnormal.iloc[order], 4, seed=3) == first
    assert woman_folds(patients, abnormal, 4, seed=4) != first


@pytest.mark.parametrize("folds, women", [(1, 10), (6, 5)])
def test_woman_folds_refuse_impossible_requests(folds, women):
    patients, abnormal = films(women, {0})
    with pytest.raises(ValueError, match="fold"):
        woman_folds(patients, abnormal, folds, seed=0)


def tile_table(fold_of: dict[str, int]) -> pd.DataFrame:
    rows = []
    for index, woman in enumerate(sorted(fold_of)):
        for number in range(3):
            rows.append(
                {
                    "tile_id": f"{woman}/{number}",
                    "patient_id": woman,
                    "label_normal": int(index % 4 == 0 and number == 0),
                    "class_code": 2 if index % 4 == 0 and number == 0 else 0,
                    "source": "mias",
                }
            )
    return pd.DataFrame(rows)


def test_fold_splits_hold_out_one_fold_with_an_inner_validation_of_the_others():
    patients, abnormal = films(30, set(range(0, 30, 4)))
    fold_of = woman_folds(patients, abnormal, 5, seed=2)
    tiles = tile_table(fold_of)
    seen_in_test = set()
    for fold in range(5):
        split = fold_splits(tiles, fold_of, fold, inner_val=0.25, seed=2)
        women = split.groupby("split")["patient_id"].agg(set)
        assert women["test"] == {w for w, f in fold_of.items() if f == fold}
        assert not (women["val"] & women["test"]) and not (women["train"] & women["val"])
        assert len(women["val"]) == pytest.approx(0.25 * (len(women["train"]) + len(women["val"])), abs=2)
        seen_in_test |= women["test"]
    assert seen_in_test == set(fold_of)  # every woman held out exactly once over the folds


def test_the_final_split_holds_no_woman_out_and_no_woman_twice(tmp_path):
    """The final model's split (fold None; rule mias_final_split): every woman trains or is in the inner validation,
    never both (the project's split check), about inner_val of them validate, drawn seeded by abnormal woman."""
    from mammo.stages.crossval import mias_cv_fold
    from mammo.tables import read_table, write_table

    patients, abnormal = films(30, set(range(0, 30, 4)))
    fold_of = woman_folds(patients, abnormal, 5, seed=2)
    tiles = tile_table(fold_of)
    split = fold_splits(tiles, fold_of, None, inner_val=0.25, seed=2)
    check_patient_disjoint(split)
    women = split.groupby("split")["patient_id"].agg(set)
    assert set(women.index) == {"train", "val"} and women["train"] | women["val"] == set(fold_of)
    assert len(women["val"]) == pytest.approx(0.25 * len(fold_of), abs=2)
    abnormal_women = set(tiles.loc[tiles["label_normal"] == 1, "patient_id"])
    assert women["val"] & abnormal_women and women["train"] & abnormal_women
    assert split.equals(fold_splits(tiles, fold_of, None, inner_val=0.25, seed=2))
    # the stage that rule runs: the recipe's tiles with their folds, no held-out films
    images = pd.DataFrame({"refnum": [f"mdb{n + 1:03d}" for n in range(60)], "patient_id": patients})
    images["label_normal"] = abnormal.astype(int)
    images["path"] = images["refnum"] + ".pgm"
    write_table(images, tmp_path / "images.tsv")
    write_table(tiles.assign(fold=tiles["patient_id"].map(fold_of), method="grid"), tmp_path / "tiles.tsv")
    settings = {"folds": 5, "seed": 2, "inner_val": 0.25, "abnormal_fraction": 0.25, "fresh_normals": True}
    mias_cv_fold(str(tmp_path / "tiles.tsv"), str(tmp_path / "images.tsv"), None, settings, str(tmp_path / "split.tsv"))
    written = read_table(tmp_path / "split.tsv")
    check_patient_disjoint(written)
    assert set(written["split"]) == {"train", "val"} and set(written["patient_id"]) == set(fold_of)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images.tsv", "split.json", "split.tsv", "tiles.tsv"]


def test_fold_splits_refuse_tiles_of_a_woman_without_a_fold():
    fold_of = {"mias:001": 0, "mias:002": 1}
    tiles = tile_table({**fold_of, "mias:003": 0})
    with pytest.raises(SplitLeakError, match="mias:003"):
        fold_splits(tiles, fold_of, 0, 0.2, 0)


def test_real_films_no_woman_in_two_folds(real_films):
    images, rois, rejected, accounting = index_info(real_films)
    assert len(images) == 216 and images["patient_id"].nunique() == 108 and images["label_normal"].sum() == 77
    fold_of = woman_folds(images["patient_id"], images["label_normal"], 5, seed=13)
    folds_per_woman = images.assign(fold=images["patient_id"].map(fold_of)).groupby("patient_id")["fold"].nunique()
    assert folds_per_woman.max() == 1
    # the pair mdb(2k-1), mdb(2k) is one woman
    number = images["refnum"].str[3:].astype(int)
    assert (images["patient_id"] == [f"mias:{(n + 1) // 2:03d}" for n in number]).all()
    # every Info.txt row is accounted for: normal film, ROI with coordinates, or rejected with a reason
    assert accounting["inputs"] == accounting["accepted"] + accounting["rejected"]
    assert len(rois) + int(images["unlocated"].sum()) == 82


# ----------------------------------------------------------------------------- the official archive
def write_archive(path: Path, files: dict[str, bytes], compress: bool = True) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue()) if compress else buffer.getvalue())
    return path


PGM = b"P5\n2 2\n255\n\x00\x01\x02\x03"
INFO = b"header\nmdb001 G NORM\nmdb002 F CIRC B 535 425 20\n"


def test_unpack_archive_flattens_the_archive_folder(tmp_path):
    archive = write_archive(
        tmp_path / "all-mias.tar.gz", {"all-mias/Info.txt": INFO, "all-mias/mdb001.pgm": PGM, "all-mias/mdb002.pgm": PGM}
    )
    info = unpack_archive(archive, tmp_path / "out")
    assert info == tmp_path / "out" / "Info.txt"
    assert sorted(p.name for p in info.parent.iterdir()) == ["Info.txt", "mdb001.pgm", "mdb002.pgm"]
    assert is_archive(archive) and not is_archive(tmp_path / "out")


def test_unpack_archive_names_a_missing_film(tmp_path):
    archive = write_archive(tmp_path / "all-mias.tar.gz", {"Info.txt": INFO, "mdb001.pgm": PGM})
    with pytest.raises(FormatError, match="mdb002") as info:
        unpack_archive(archive, tmp_path / "out")
    assert "all-mias.tar.gz" in str(info.value)


@pytest.mark.parametrize("name", ["../escape.pgm", "/etc/escape.pgm"])
def test_unpack_archive_refuses_paths_that_escape(tmp_path, name):
    archive = write_archive(tmp_path / "all-mias.tar.gz", {"Info.txt": INFO, name: PGM})
    with pytest.raises(FormatError, match="not a plain file or folder inside"):
        unpack_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.pgm").exists()


def test_unpack_archive_refuses_a_truncated_download(tmp_path):
    archive = write_archive(tmp_path / "all-mias.tar.gz", {"Info.txt": INFO, "mdb001.pgm": PGM * 400, "mdb002.pgm": PGM})
    archive.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2])
    with pytest.raises(FormatError, match="corrupt or truncated archive"):
        unpack_archive(archive, tmp_path / "out")


def test_unpack_archive_refuses_an_archive_without_info(tmp_path):
    archive = write_archive(tmp_path / "all-mias.tar", {"mdb001.pgm": PGM}, compress=False)
    with pytest.raises(FormatError, match="one Info.txt"):
        unpack_archive(archive, tmp_path / "out")


# ----------------------------------------------------------------------------- tiles of abnormal films away from lesions
def test_abnormal_films_give_lesion_free_tiles_that_never_touch_a_lesion(real_films):
    images, rois, _, _ = index_info(real_films)
    chosen = images[images["refnum"].isin(["mdb001", "mdb002", "mdb005", "mdb006"])]
    thresholds = NormalThresholds(mean_min=38, var_min=20, var_max=2000)
    tiling = NormalTiling(tile=299, stride=200, border_crop=0.07)
    margin = 60
    lesion_free = BackgroundTiles(10**9, 0.0, margin, tiling, thresholds)
    tiles, table, rejected = mias_tiles(chosen, rois, "cv", Method2(tile=299), thresholds, tiling, 2.58, 1, "t.npy", lesion_free)
    assert rejected.empty
    free = table[table["method"] == "lesion_free"]
    abnormal_films = set(chosen.loc[chosen["label_normal"] == 1, "refnum"])
    assert set(free["scan_id"]) == abnormal_films
    assert (free["class_code"] == 0).all() and (free["label_normal"] == 0).all()
    for _, tile in free.iterrows():
        top, left, bottom, right = map(int, tile["box"].split(","))
        for _, roi in rois[rois["refnum"] == tile["scan_id"]].iterrows():
            row, col, radius = 1024 * 2.58 - roi["y"] * 2.58, roi["x"] * 2.58, roi["radius"] * 2.58
            nearest_row, nearest_col = np.clip(row, top - margin, bottom + margin), np.clip(col, left - margin, right + margin)
            assert np.hypot(nearest_row - row, nearest_col - col) > radius - 1, (tile["tile_id"], roi["roi_id"])
    # without lesion_free, abnormal films give ROI tiles only (the external test set of the other recipes)
    _, plain, _ = mias_tiles(chosen, rois, "cv", Method2(tile=299), thresholds, tiling, 2.58, 1, "t.npy")
    assert "lesion_free" not in set(plain["method"]) and len(plain) == len(table) - len(free)


# ----------------------------------------------------------------------------- edge tiles: what scanning sees, thresholds reject
def synthetic_film() -> np.ndarray:
    """A 16-bit film: a half-disc breast against the chest wall (left), textured tissue, a bright flat pectoral
    corner, a dark background; 1,200 pixels square."""
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[0:1200, 0:1200]
    breast = (rows - 600) ** 2 + cols**2 < 900**2
    tissue = 30000 + 6000 * np.sin(rows / 23.0) * np.cos(cols / 31.0) + rng.normal(0, 1500, (1200, 1200))
    pectoral = rows + 2 * cols < 500
    film = np.where(breast, np.where(pectoral, 60000, tissue), 1500)
    return np.clip(film, 0, 65535).astype(np.uint16)


def test_edge_tiles_are_scanned_windows_the_thresholds_reject_away_from_lesions():
    film = synthetic_film()
    seen = segmented(to_uint8(film))  # the film as whole-film scanning segments it
    thresholds = NormalThresholds(mean_min=38, var_min=20, var_max=2000)
    windowing = Windowing(stride=299, min_tissue=0.75)
    lesions = np.zeros(film.shape, bool)
    lesions[550:650, 550:650] = True
    margin = 60
    found = edge_tiles(*seen, lesions, EdgeTiles(10**6, windowing, 0.07), thresholds, margin, np.random.default_rng(0))
    assert found
    breast = breast_mask(to_uint8(film))
    for tile, (top, left, bottom, right) in found:
        assert tile.shape == (TILE_SIZE, TILE_SIZE) and bottom - top == right - left == TILE_SIZE
        assert breast[top:bottom, left:right].mean() >= 0.75  # a window whole-film scanning scores
        in_grid = 0.07 * 1200 <= top and bottom <= 0.93 * 1200 and 0.07 * 1200 <= left and right <= 0.93 * 1200
        assert not (in_grid and thresholds.accepts(tile))  # ... that the tissue grid never gives
        assert not lesions[max(top - margin, 0) : bottom + margin, max(left - margin, 0) : right + margin].any()
        assert (tile == 0).sum() == (~breast[top:bottom, left:right]).sum()  # cut as scanned: black outside the breast
    # the pectoral corner, the skin line and the background-touching windows are there; capped and seeded
    assert any(top == 0 and left == 0 for _, (top, left, _, _) in found)
    chest_wall = [tile for tile, (top, left, _, _) in found if left == 0 and top >= 600]
    assert any(thresholds.accepts(tile) for tile in chest_wall)  # tissue at the film's edge, which the grid leaves out
    capped = edge_tiles(*seen, lesions, EdgeTiles(3, windowing, 0.07), thresholds, margin, np.random.default_rng(0))
    again = edge_tiles(*seen, lesions, EdgeTiles(3, windowing, 0.07), thresholds, margin, np.random.default_rng(0))
    assert len(capped) == 3 and [box for _, box in capped] == [box for _, box in again]
    assert all((a == b).all() for (a, _), (b, _) in zip(capped, again))


def test_edge_tiles_of_real_films_are_normal_clear_of_lesions_and_counted(real_films):
    images, rois, _, _ = index_info(real_films)
    chosen = images[images["refnum"].isin(["mdb001", "mdb002", "mdb005", "mdb006"])]
    thresholds = NormalThresholds(mean_min=38, var_min=20, var_max=2000)
    tiling = NormalTiling(tile=299, stride=200, border_crop=0.07)
    lesion_free = BackgroundTiles(10**9, 0.0, 60, tiling, thresholds)
    edges = EdgeTiles(8, Windowing(stride=299, min_tissue=0.75), 0.07)
    _, table, rejected = mias_tiles(
        chosen, rois, "cv", Method2(tile=299), thresholds, tiling, 2.58, 1, "t.npy", lesion_free, edges
    )
    _, without, _ = mias_tiles(chosen, rois, "cv", Method2(tile=299), thresholds, tiling, 2.58, 1, "t.npy", lesion_free)
    edge = table[table["method"] == "edge"]
    assert rejected.empty and set(edge["scan_id"]) == set(chosen["refnum"]) and edge.groupby("scan_id").size().max() <= 8
    assert (edge["class_code"] == 0).all() and len(table) == len(without) + len(edge)
    for _, tile in edge.iterrows():  # the lesion circle grown by the margin stays outside every edge window
        top, left, bottom, right = map(int, tile["box"].split(","))
        for _, roi in rois[rois["refnum"] == tile["scan_id"]].iterrows():
            row, col, radius = 1024 * 2.58 - roi["y"] * 2.58, roi["x"] * 2.58, roi["radius"] * 2.58
            nearest_row, nearest_col = np.clip(row, top, bottom), np.clip(col, left, right)
            assert np.hypot(nearest_row - row, nearest_col - col) > radius + 60 - 2, (tile["tile_id"], roi["roi_id"])


def test_check_reads_the_archive_and_names_missing_films(tmp_path):
    from mammo.check import check_mias

    archive = write_archive(tmp_path / "all-mias.tar.gz", {"all-mias/Info.txt": INFO, "all-mias/mdb001.pgm": PGM})
    report = check_mias(archive)
    assert report["scans"] == 2 and report["files_found"] == 1 and report["missing_files"] == ["mdb002.pgm"]
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(FormatError, match="cut.tar.gz: corrupt or truncated archive"):
        check_mias(truncated)


def test_check_of_the_real_archive(real_films, shared):
    from mammo.check import check_mias

    report = check_mias(shared / REAL_ARCHIVE)
    assert (report["scans"], report["patients"], report["files_found"], report["missing_files"]) == (216, 108, 216, [])
