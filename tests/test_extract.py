"""Stages from indexed scans to tiles, on the generated demo: every input is tiled or rejected."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest

from mammo.extract import BackgroundTiles, background_tiles, cbis_tiles, ddsm_normal_tiles, mias_tiles
from mammo.graph import chunk_of, in_chunk
from mammo.io.cbis import CSV_NAMES, read_case_descriptions, resolve
from mammo.io.ddsm import find_normal_scans
from mammo.io.mias import index_info
from mammo.tiles import Method2, NormalThresholds, NormalTiling, item_rng

SEED = 9
# The small demo's scans are smaller than the real ones: tile the normals at 200 pixels.
SMALL_TILING = NormalTiling(tile=200, stride=150, border_crop=0.07)
THRESHOLDS = {
    "DBA": NormalThresholds(38, 20, 1500),
    "LUMISYS": NormalThresholds(28, 10, 10000),
    "HOWTEK": NormalThresholds(30, 10, 10000),
}


@pytest.fixture(scope="module")
def cbis_copy(demo_root, tmp_path_factory):
    """A private copy of the demo's CBIS-DDSM folder (tests here damage files)."""
    root = tmp_path_factory.mktemp("cbis") / "cbis"
    shutil.copytree(demo_root / "cbis", root)
    rois, rejected = read_case_descriptions([root / name for name in CSV_NAMES])
    assert rejected.empty
    return root, rois


def test_every_roi_gives_three_labelled_tiles(cbis_copy):
    root, rois = cbis_copy
    images, table, rejected, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED, "tiles.npy")
    assert rejected.empty
    assert images.shape == (3 * len(rois), 299, 299) and images.dtype == np.uint8
    per_roi = table.assign(roi_id=table["tile_id"].str.split("/").str[1]).groupby("roi_id")
    assert per_roi.size().eq(3).all() and set(per_roi.groups) == set(rois["roi_id"])
    labels = per_roi["class_code"].first().reindex(rois["roi_id"]).to_numpy()
    assert np.array_equal(labels, rois["class_code"].to_numpy())  # labels per ROI, not per image
    for column, source in (("density", "breast_density"), ("subtlety", "subtlety")):  # subgroups of the evaluation
        assert np.array_equal(per_roi[column].first().reindex(rois["roi_id"]).to_numpy(), rois[source].to_numpy())
    assert (table["label_normal"] == 1).all()
    assert table["patient_id"].str.startswith("cbis:P_").all()
    assert np.array_equal(table["tile_index"].to_numpy(), np.arange(len(table)))


def test_tiles_do_not_depend_on_chunking_or_order(cbis_copy):
    root, rois = cbis_copy
    whole, table, _, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED, "t.npy")
    parts = [cbis_tiles(in_chunk(rois, "scan_id", c, 2), root, "ds9", Method2(), SEED, "t.npy") for c in (0, 1)]
    by_id = {tile_id: whole[i] for i, tile_id in enumerate(table["tile_id"])}
    for images, part_table, _, _ in parts:
        for i, tile_id in enumerate(part_table["tile_id"]):
            assert np.array_equal(images[i], by_id[tile_id])
    again, _, _, _ = cbis_tiles(rois.iloc[::-1], root, "ds9", Method2(), SEED, "t.npy")
    assert sorted(map(bytes, again)) == sorted(map(bytes, whole))
    other, _, _, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED + 1, "t.npy")
    assert not np.array_equal(other, whole)


def test_mask_is_told_from_crop_by_content(cbis_copy):
    root, rois = cbis_copy
    swapped = rois.copy()
    swapped[["cropped_image_file_path", "roi_mask_file_path"]] = rois[
        ["roi_mask_file_path", "cropped_image_file_path"]
    ].to_numpy()
    expected, _, _, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED, "t.npy")
    images, _, rejected, _ = cbis_tiles(swapped, root, "ds9", Method2(), SEED, "t.npy")
    assert rejected.empty
    assert np.array_equal(images, expected)


def _rewrite_mask(root, roi, new_mask):
    path = resolve(root, roi["roi_mask_file_path"])
    dataset = pydicom.dcmread(path)
    if not set(np.unique(dataset.pixel_array)) <= {0, 255}:  # the CSV columns are right in the demo
        raise AssertionError("expected a mask")
    dataset.Rows, dataset.Columns = new_mask.shape
    dataset.PixelData = new_mask.astype(np.uint8).tobytes()
    dataset.save_as(path)


def test_mask_of_another_size_is_resized_or_rejected(cbis_copy, tmp_path):
    source, rois = cbis_copy
    root = tmp_path / "cbis"
    shutil.copytree(source, root)
    first, second = rois.iloc[0], rois.iloc[-1]
    mask = pydicom.dcmread(resolve(root, first["roi_mask_file_path"])).pixel_array
    _rewrite_mask(root, first, mask.repeat(2, axis=0).repeat(2, axis=1))  # same aspect ratio, twice the size: resized
    _rewrite_mask(root, second, np.full((50, 200), 255, np.uint8))  # other aspect ratio: rejected
    expected, expected_table, _, _ = cbis_tiles(rois.iloc[[0]], source, "ds9", Method2(), SEED, "t.npy")
    images, table, rejected, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED, "t.npy")
    tiled = set(table["tile_id"].str.split("/").str[1])
    assert first["roi_id"] in tiled
    resized = table["tile_id"].str.contains(first["roi_id"], regex=False).to_numpy()
    assert np.array_equal(images[resized], expected)  # same box as with the original mask
    assert list(rejected["item"]) == [second["roi_id"]]
    assert "aspect" in rejected["reason"].iloc[0]
    assert len(tiled) + len(rejected) == len(rois)


def test_missing_scan_rejects_each_of_its_rois(cbis_copy, tmp_path):
    source, rois = cbis_copy
    root = tmp_path / "cbis"
    shutil.copytree(source, root)
    victim = rois["image_file_path"].iloc[0]
    resolve(root, victim).unlink()
    _, table, rejected, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED, "t.npy")
    assert set(rejected["item"]) == set(rois.loc[rois["image_file_path"] == victim, "roi_id"])
    assert (rejected["reason"] == "file not found").all()
    assert rejected["file"].str.endswith(victim).all()
    assert rejected["row"].str.contains("case_description").all()


def test_normal_tiles_per_scanner_and_rejections(demo_root, tmp_path):
    root = tmp_path / "ddsm"
    shutil.copytree(demo_root / "ddsm" / "normals", root / "normals")  # the normal cases only
    scans, index_rejected = find_normal_scans(root)
    assert index_rejected.empty and len(scans) == 16
    images, table, rejected = ddsm_normal_tiles(scans, "ds9", THRESHOLDS, SMALL_TILING, SEED, "n.npy")
    assert len(table) == len(images) > 0
    assert (table["class_code"] == 0).all() and (table["label_normal"] == 0).all()
    assert set(table["scan_id"]) | set(rejected["item"]) == set(scans["scan_id"])
    assert set(table["scanner"]) <= set(THRESHOLDS)
    density_of_scan = dict(zip(scans["scan_id"], scans["density"]))
    assert all(density_of_scan[s] == d in (1, 2, 3, 4) for s, d in zip(table["scan_id"], table["density"]))
    # break one scan and drop the thresholds of one scanner
    victim = scans.iloc[0]
    data = open(victim["path"], "rb").read()
    open(victim["path"], "wb").write(data[: len(data) // 2])
    dropped = scans.loc[scans["digitizer"] != victim["digitizer"], "digitizer"].iloc[0]
    thresholds = {k: v for k, v in THRESHOLDS.items() if k != dropped}
    _, table2, rejected2 = ddsm_normal_tiles(scans, "ds9", thresholds, SMALL_TILING, SEED, "n.npy")
    reasons = dict(zip(rejected2["item"], rejected2["reason"]))
    assert "truncated" in reasons[victim["scan_id"]]
    assert rejected2.loc[rejected2["item"] == victim["scan_id"], "file"].iloc[0] == victim["path"]
    for scan_id in scans.loc[scans["digitizer"] == dropped, "scan_id"]:
        assert reasons[scan_id] == f"no tile thresholds for scanner {dropped}"
    assert set(table2["scan_id"]) | set(rejected2["item"]) == set(scans["scan_id"])


def test_normal_tiles_are_mid_grey_tissue(demo_root):
    scans, _ = find_normal_scans(demo_root / "ddsm")
    images, table, _ = ddsm_normal_tiles(scans, "ds9", THRESHOLDS, SMALL_TILING, SEED, "n.npy")
    means = images.reshape(len(images), -1).mean(axis=1)
    assert ((means > 28) & (means < 200)).all()
    boxes = pd.DataFrame(table["box"].str.split(",").tolist()).astype(int)
    assert ((boxes[2] - boxes[0]) == 200).all()


def test_tcia_downloader_layout_is_resolved(cbis_copy, tmp_path):
    """The same scans moved into the folder layout of TCIA's downloader give the same tiles."""
    source, rois = cbis_copy
    root = tmp_path / "download"
    for column in ("image_file_path", "cropped_image_file_path", "roi_mask_file_path"):
        for relative in rois[column]:
            scan, study, series, name = relative.split("/")
            target = (
                root
                / "CBIS-DDSM"
                / scan
                / f"07-20-2016-DDSM-NA-{study[-5:]}"
                / f"1.000000-full mammogram images-{series[-5:]}"
                / f"1-{int(name[:-4]) + 1}.dcm"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(resolve(source, relative), target)
    assert not (root / rois["image_file_path"].iloc[0]).exists()
    assert resolve(root, rois["image_file_path"].iloc[0]).name == "1-1.dcm"
    expected, _, _, _ = cbis_tiles(rois, source, "ds9", Method2(), SEED, "t.npy")
    images, _, rejected, _ = cbis_tiles(rois, root, "ds9", Method2(), SEED, "t.npy")
    assert rejected.empty
    assert np.array_equal(images, expected)


# ----------------------------------------------------------------------------- mini-MIAS external test set
MIAS_METHOD = Method2(tile=299)
MIAS_TILING = NormalTiling(tile=299, stride=200, border_crop=0.07)
MIAS_THRESHOLDS = NormalThresholds(38, 20, 2000)


def test_mias_tiles_cut_rois_on_the_lesion_and_tile_normals(demo_root):
    images, rois, _, _ = index_info(demo_root / "mias" / "Info.txt")
    tiles, table, rejected = mias_tiles(images, rois, "ds9", MIAS_METHOD, MIAS_THRESHOLDS, MIAS_TILING, 2.58, SEED, "m.npy")
    assert rejected.empty and len(tiles) == len(table) > 0
    abnormal = table[table["label_normal"] == 1]
    assert abnormal.groupby(abnormal["tile_id"].str.split("/").str[1]).size().to_dict() == {r: 3 for r in rois["roi_id"]}
    normal_scans = set(images.loc[images["label_normal"] == 0, "refnum"])
    assert set(table.loc[table["label_normal"] == 0, "scan_id"]) == normal_scans
    assert (table["source"] == "mias").all() and set(table["patient_id"]) <= set(images["patient_id"])
    assert set(table["density"]) <= {"F", "G", "D"}  # mini-MIAS background tissue
    for _, roi in rois.iterrows():  # the context box holds the ROI centre in upscaled pixels (y from the bottom)
        box = table.loc[table["tile_id"].str.startswith(f"ds9/{roi['roi_id']}/"), "box"].iloc[0]
        top, left, bottom, right = map(int, box.split(","))
        assert abs((top + bottom) / 2 - (round(1024 * 2.58) - roi["y"] * 2.58)) <= 1
        assert abs((left + right) / 2 - roi["x"] * 2.58) <= 1
    # a generated lesion is brighter than the tissue around it: ROI tiles are brighter than normal ones on average
    means = tiles.reshape(len(tiles), -1).mean(axis=1)
    assert means[abnormal["tile_index"]].max() > np.median(means[table.loc[table["label_normal"] == 0, "tile_index"]])


def test_mias_missing_scan_rejects_its_rois(demo_root, tmp_path):
    images, rois, _, _ = index_info(demo_root / "mias" / "Info.txt")
    victim = rois["refnum"].iloc[0]
    images.loc[images["refnum"] == victim, "path"] = str(tmp_path / "gone.pgm")
    _, table, rejected = mias_tiles(images, rois, "ds9", MIAS_METHOD, MIAS_THRESHOLDS, MIAS_TILING, 2.58, SEED, "m.npy")
    assert sorted(rejected["item"]) == sorted(rois.loc[rois["refnum"] == victim, "roi_id"])
    assert (rejected["reason"] == "file not found").all() and victim not in set(table["scan_id"])


# ----------------------------------------------------------------------------- CBIS-DDSM background negatives (ds9b)
def test_background_tiles_keep_away_from_lesions():
    rng = np.random.default_rng(3)
    scan = (rng.integers(90, 160, (2000, 1600)) * 256).astype(np.uint16)
    lesions = np.zeros(scan.shape, bool)
    lesions[900:1000, 700:800] = True
    params = BackgroundTiles(
        per_scan=100, max_overlap=0.0, margin=60, tiling=NormalTiling(400, 200, 0.0), thresholds=NormalThresholds(38, 20, 2000)
    )
    found = background_tiles(scan, lesions, params, item_rng(1, "s"))
    assert found and all(tile.shape == (299, 299) and tile.dtype == np.uint8 for tile, _ in found)
    for _, (top, left, bottom, right) in found:
        assert not lesions[max(top - 60, 0) : bottom + 60, max(left - 60, 0) : right + 60].any()
    all_boxes = {box for _, box in background_tiles(scan, np.zeros_like(lesions), params, item_rng(1, "s"))}
    assert len(found) < len(all_boxes)  # the tiles near the lesion were left out
    capped = background_tiles(scan, lesions, BackgroundTiles(2, 0.0, 60, params.tiling, params.thresholds), item_rng(1, "s"))
    assert len(capped) == 2 and {box for _, box in capped} <= {box for _, box in found}


def test_cbis_background_and_audit_tiles_are_normal_tiles_of_the_same_patient(cbis_copy):
    root, rois = cbis_copy
    params = BackgroundTiles(
        per_scan=3, max_overlap=0.0, margin=20, tiling=SMALL_TILING, thresholds=NormalThresholds(30, 10, 3000)
    )
    plain_images, plain, _, _ = cbis_tiles(rois, root, "ds9b", Method2(), SEED, "t.npy")
    images, table, rejected, _ = cbis_tiles(rois, root, "ds9b", Method2(), SEED, "t.npy", {"background": params, "audit": params})
    assert rejected.empty and len(table) == len(images)
    patient_of_scan = dict(zip(rois["scan_id"], "cbis:" + rois["patient_id"]))
    for name in ("background", "audit"):
        negatives = table[table["method"] == name]
        assert len(negatives) > 0 and negatives["tile_id"].str.contains(f"/{name}").all()
        assert (negatives["label_normal"] == 0).all() and (negatives["class_code"] == 0).all()
        assert (negatives[["abnormality_type", "pathology", "subtlety"]] == "").all().all()
        assert negatives.groupby("scan_id").size().max() <= 3
        assert all(patient_of_scan[s] == p for s, p in zip(negatives["scan_id"], negatives["patient_id"]))
    roi_rows = table[table["method"] == "method2"].drop(columns="tile_index").reset_index(drop=True).astype(str)
    assert roi_rows.equals(plain.drop(columns="tile_index").reset_index(drop=True).astype(str))  # ROI tiles unchanged


# ----------------------------------------------------------------------------- the files each chunk job declares
def test_chunk_jobs_declare_the_image_files_they_read(demo_root, tmp_path):
    from mammo.graph import chunk_scan_files

    root = tmp_path / "cbis"
    shutil.copytree(demo_root / "cbis", root)
    rois, _ = read_case_descriptions([root / name for name in CSV_NAMES])
    rois.to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    parts = [chunk_scan_files(str(tmp_path / "rois.tsv"), "cbis", chunk, 2, str(root)) for chunk in (0, 1)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(str(p) for p in root.rglob("*.dcm"))  # scans, crops and masks
    victim = rois.iloc[0]
    chunk = chunk_of(victim["scan_id"], 2)
    (root / victim["image_file_path"]).unlink()  # a missing scan is not declared: its job rejects its ROIs
    assert set(chunk_scan_files(str(tmp_path / "rois.tsv"), "cbis", chunk, 2, str(root))) == set(parts[chunk]) - {
        str(root / victim["image_file_path"])
    }
    scans, _ = find_normal_scans(demo_root / "ddsm")
    scans.to_csv(tmp_path / "scans.tsv", sep="\t", index=False)
    ddsm = [chunk_scan_files(str(tmp_path / "scans.tsv"), "ddsm", chunk, 3, "") for chunk in range(3)]
    assert sorted(sum(ddsm, [])) == sorted(scans["path"])
    for chunk, files in enumerate(ddsm):  # a case's views stay in one chunk
        assert {chunk_of(case, 3) for case in scans.loc[scans["path"].isin(files), "case"]} <= {chunk}


def test_joined_results_keep_each_rows_tile_index():
    """Two tile results of one job written as one array: the second's rows point past the first's tiles."""
    from mammo.extract import joined
    from mammo.same_film import FINGERPRINT_COLUMNS

    def result(count, start):
        tiles = np.full((count, 299, 299), start, np.uint8)
        table = pd.DataFrame({"tile_id": [f"t{start + i}" for i in range(count)], "tile_index": range(count)})
        return tiles, table, pd.DataFrame({"item": [f"r{start}"]})

    first = (*result(2, 0), pd.DataFrame(columns=FINGERPRINT_COLUMNS))
    tiles, table, rejected, fingerprints = joined(first, result(3, 10))
    assert len(tiles) == 5 and list(table["tile_index"]) == [0, 1, 2, 3, 4]
    assert all(tiles[index][0, 0] == (0 if index < 2 else 10) for index in table["tile_index"])
    assert list(rejected["item"]) == ["r0", "r10"] and fingerprints.empty
