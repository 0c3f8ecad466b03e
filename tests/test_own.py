"""Your own images: a folder of DICOM or PNG files and one CSV (mammo.io.own); every row an image's, a lesion, or
rejected with its line and reason; lesions as boxes, circles or mask files drawn where they lie in the image as read."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mammo.io import FormatError
from mammo.io.dicom import write_dicom
from mammo.io.listed import CBIS_PIXEL_MM, finding_mask, listed_rois, read_listed_scan
from mammo.io.own import OWN_CSV, read_own
from mammo.tiles import upscale

MAMMO = Path(sys.executable).with_name("mammo")


def _read_at_cbis_scale(path, pixel_mm=None):
    """An image as the tile jobs read it: at the CBIS-DDSM scale (upscaled by its factor)."""
    image, factor, mirrored = read_listed_scan(path, pixel_mm)
    return upscale(image, factor), factor, mirrored


HEADER = ["patient", "image", "laterality", "view", "label", "lesion_type", "xmin", "ymin", "xmax", "ymax"]
HEADER += ["x", "y", "radius", "mask", "pixel_mm", "split"]


def _image(path: Path, lesion: tuple[int, int, int, int] | None = None, dicom: bool = False) -> None:
    """A 60x40 image, dark, with a bright rectangle (rows top..bottom, columns left..right) as its lesion."""
    pixels = np.full((60, 40), 3000, np.uint16)
    if lesion:
        top, left, bottom, right = lesion
        pixels[top:bottom, left:right] = 60000
    path.parent.mkdir(parents=True, exist_ok=True)
    if dicom:
        write_dicom(path, pixels, "w", "1.2", "1.3", header={"PixelSpacing": [2 * CBIS_PIXEL_MM] * 2})
    else:
        cv2.imwrite(str(path), pixels)


@pytest.fixture
def own(tmp_path) -> Path:
    _image(tmp_path / "img/a.png", (10, 5, 20, 15))
    _image(tmp_path / "img/b.dcm", (30, 20, 40, 30), dicom=True)
    _image(tmp_path / "img/c.png")
    _image(tmp_path / "img/d.png", (40, 10, 50, 20))
    mask = np.zeros((60, 40), np.uint8)
    mask[40:50, 10:20] = 255
    cv2.imwrite(str(tmp_path / "img/d_mask.png"), mask)
    cv2.imwrite(str(tmp_path / "img/small_mask.png"), mask[:30])
    rows = [
        ["w1", "img/a.png", "L", "CC", "malignant", "mass", 5, 10, 15, 20, "", "", "", "", 0.09, "train"],  # 2: box
        ["w1", "img/c.png", "R", "CC", "normal", "", "", "", "", "", "", "", "", "", 0.09, "train"],  # 3: normal
        ["w2", "img/b.dcm", "right", "MLO", "benign", "calcification", "", "", "", "", 25, 35, 5, "", "", "test"],  # 4: circle
        ["w3", "img/d.png", "L", "CC", "benign", "mass", "", "", "", "", "", "", "", "img/d_mask.png", 0.09, ""],  # 5: mask
        ["w3", "img/d.png", "L", "CC", "benign", "", 1, 1, 5, 5, "", "", "", "", 0.09, ""],  # 6: no lesion type
        ["w3", "img/d.png", "L", "CC", "benign", "mass", 1, 1, 5, 5, 3, 3, 2, "", 0.09, ""],  # 7: two geometries
        ["w3", "img/d.png", "L", "CC", "benign", "mass", 30, 50, 45, 70, "", "", "", "", 0.09, ""],  # 8: box leaves
        ["w3", "img/d.png", "L", "CC", "benign", "mass", "", "", "", "", "", "", "", "img/small_mask.png", 0.09, ""],  # 9
        ["w4", "img/e.png", "L", "CC", "normal", "", "", "", "", "", "", "", "", "", 0.09, ""],  # 10: no file
        ["w5", "img/c.png", "X", "CC", "normal", "", "", "", "", "", "", "", "", "", 0.09, ""],  # 11: c.png's rows disagree
        ["w6", "img/f.png", "L", "CC", "sick", "", "", "", "", "", "", "", "", "", 0.09, ""],  # 12: label
    ]
    pd.DataFrame(rows, columns=HEADER).to_csv(tmp_path / OWN_CSV, index=False)
    return tmp_path


def test_every_row_is_an_image_a_lesion_or_rejected_with_its_line(own):
    images, findings, rejected = read_own(own / OWN_CSV)
    assert sorted(images["scan_id"]) == ["img_a.png", "img_b.dcm", "img_d.png"]
    by_id = images.set_index("scan_id")
    assert by_id.loc["img_b.dcm", "side"] == "RIGHT" and by_id.loc["img_b.dcm", "split"] == "test"
    assert np.isnan(by_id.loc["img_b.dcm", "pixel_mm"]) and by_id.loc["img_a.png", "pixel_mm"] == 0.09
    assert (by_id.loc["img_a.png", "height"], by_id.loc["img_a.png", "width"]) == (60, 40)
    assert sorted(findings["roi_id"]) == ["img_a.png#2", "img_b.dcm#4", "img_d.png#5"]
    assert findings.set_index("roi_id")["class_code"].to_dict() == {"img_a.png#2": 4, "img_b.dcm#4": 1, "img_d.png#5": 2}
    reasons = dict(zip(rejected["row"].astype(int), rejected["reason"]))
    assert "lesion_type '' is not mass or calcification" in reasons[6]
    assert "a lesion needs one of" in reasons[7]
    assert "leaves the 40x60 image" in reasons[8]
    assert "small_mask.png is 40x30, the image 40x60" in reasons[9]
    assert reasons[10] == "e.png not found"
    assert "rows disagree on patient" in reasons[3] and "rows disagree on patient" in reasons[11]
    assert "label 'sick' is not normal, benign or malignant" in reasons[12]
    assert len(images[images["label_normal"] == 0]) + len(findings) + len(rejected) == 11  # every row once


def test_missing_columns_are_named(own):
    pd.read_csv(own / OWN_CSV).drop(columns=["label", "view"]).to_csv(own / OWN_CSV, index=False)
    with pytest.raises(FormatError, match="missing columns view, label"):
        read_own(own / OWN_CSV)


def test_lesions_are_drawn_where_they_lie_in_the_image_as_read(own):
    """Box, circle and mask file at the CBIS-DDSM scale (pixel 0.09 mm: 2x), on the bright lesion of each image."""
    images, findings, _ = read_own(own / OWN_CSV)
    rois, _ = listed_rois(images, findings, "tiles_own")
    for _, roi in rois.iterrows():
        image, factor, mirrored = _read_at_cbis_scale(roi["path"], roi["pixel_mm"])
        assert factor == pytest.approx(2.0) and image.shape == (120, 80) and not mirrored
        mask = finding_mask(roi, image.shape, factor, mirrored, int(roi["width"]))
        assert mask.sum() > 50 and image[mask].mean() > 40000, roi["roi_id"]


def test_a_normal_image_with_a_lesion_is_rejected(own):
    table = pd.read_csv(own / OWN_CSV, dtype=str, keep_default_na=False)
    table.loc[1, "lesion_type"] = "mass"
    table.iloc[:2].to_csv(own / OWN_CSV, index=False)
    images, _, rejected = read_own(own / OWN_CSV)
    assert list(images["scan_id"]) == ["img_a.png"] and "labelled normal, but a row gives a lesion" in rejected["reason"][0]


def test_mammo_check_counts_your_own_csv(own):
    result = subprocess.run([MAMMO, "check", "--own", str(own / OWN_CSV), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["own"]
    assert (report["rows"], report["patients"], report["scans"]) == (11, 3, 3)
    assert report["findings"] == {"calcification": 1, "mass": 2} and len(report["rejected"]) == 8
    assert report["missing_files"] == ["e.png"]  # f.png's row fails on its label first


def test_the_demos_own_images_read_back_and_tile(demo_root, demo_counts):
    """The demo's own CSV: PNGs (16- and 8-bit) with pixel_mm, DICOMs with PixelSpacing, lesions as boxes, circles
    and masks; its two rows a user might get wrong rejected; every lesion tiled by the same ROI extraction."""
    from mammo.extract import ListedScans, roi_tiles
    from mammo.tiles import Method2

    images, findings, rejected = read_own(demo_root / "own" / OWN_CSV)
    assert len(images) + len(rejected) - 1 == demo_counts["own_rows"] - 1  # the rejected lesion row's image stays
    assert sorted(rejected["reason"].str.split(" ").str[0]) == ["lesion_type", "not_scanned.png"]
    assert {"box_top", "centre_row", "mask_path"} <= set(findings.dropna(axis=1, how="all").columns)
    rois, unused = listed_rois(images, findings, "tiles_own")
    tiles, table, problems, _ = roi_tiles(rois, ListedScans("own"), "ds9_own", Method2(), 3, "t.npy")
    assert unused.empty and problems.empty and len(table) == 3 * len(rois) and set(table["source"]) == {"own"}


# ----------------------------------------------------------------------------- hostile CSV text and paths
def _read_back(own):
    return [table.astype(str).to_dict("list") for table in read_own(own / OWN_CSV)]  # as text: NaN equals no NaN


@pytest.mark.parametrize("variant", ["trailing comma", "fully quoted", "indented rows"])
def test_csv_dialects_read_as_the_plain_table(own, variant):
    """A trailing comma on the rows gave a TypeError traceback; quoted or indented rows must read the same."""
    expected = _read_back(own)
    rows = list(csv.reader((own / OWN_CSV).read_text().splitlines()))
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL if variant == "fully quoted" else csv.QUOTE_MINIMAL)
    writer.writerows([rows[0], *([*row, ""] for row in rows[1:])] if variant == "trailing comma" else rows)
    text = buffer.getvalue().replace("\nw", "\n  w") if variant == "indented rows" else buffer.getvalue()
    (own / OWN_CSV).write_text(text)
    assert _read_back(own) == expected


def test_a_csv_that_is_not_utf8_is_an_error_naming_the_file_and_line(own):
    text = (own / OWN_CSV).read_text().replace("w6,", "wé,")
    (own / OWN_CSV).write_bytes(text.encode("latin-1"))
    with pytest.raises(FormatError, match=r"line 12: not UTF-8 \(byte 0xe9\)") as info:
        read_own(own / OWN_CSV)
    assert str(own / OWN_CSV) in str(info.value)


def test_two_columns_of_one_name_are_refused(own):
    text = (own / OWN_CSV).read_text().splitlines()
    (own / OWN_CSV).write_text("\n".join([text[0] + ",image", *(line + ",img/c.png" for line in text[1:])]) + "\n")
    with pytest.raises(FormatError, match="line 1: columns 'image' and 'image' both mean image"):
        read_own(own / OWN_CSV)


def test_paths_that_leave_the_csvs_folder_are_rejected(own):
    """An absolute or `../` image or mask path read files outside the collection."""
    outside = own.parent / f"{own.name}_outside"
    _image(outside / "x.png", (10, 5, 20, 15))
    cv2.imwrite(str(outside / "m.png"), np.full((60, 40), 255, np.uint8))
    rows = [
        ["w7", f"../{outside.name}/x.png", "L", "CC", "normal", *[""] * 9, 0.09, ""],
        ["w8", str(outside / "x.png"), "L", "CC", "normal", *[""] * 9, 0.09, ""],
        ["w1", "img/a.png", "L", "CC", "malignant", "mass", *[""] * 7, f"../{outside.name}/m.png", 0.09, "train"],
    ]
    table = pd.read_csv(own / OWN_CSV, dtype=str, keep_default_na=False)
    pd.concat([table.iloc[[0]], pd.DataFrame(rows, columns=HEADER)]).to_csv(own / OWN_CSV, index=False)
    images, findings, rejected = read_own(own / OWN_CSV)
    assert list(images["scan_id"]) == ["img_a.png"] and list(findings["roi_id"]) == ["img_a.png#2"]
    reasons = dict(zip(rejected["row"].astype(int), rejected["reason"]))
    assert f"path '../{outside.name}/x.png' escapes the CSV's folder" in reasons[3]
    assert f"absolute path '{outside / 'x.png'}' escapes the CSV's folder" in reasons[4]
    assert f"mask: path '../{outside.name}/m.png' escapes the CSV's folder" in reasons[5]


@pytest.mark.parametrize("pixel_mm", ["1000", "inf", "nan", "0", "-0.1", "0.001", "wide"])
def test_an_implausible_pixel_size_is_rejected_at_the_index(own, pixel_mm):
    """A pixel_mm that no mammogram has (0.01..1 mm) is a rejected row when the CSV is read, not an error at tiling."""
    table = pd.read_csv(own / OWN_CSV, dtype=str, keep_default_na=False)
    table.loc[0, "pixel_mm"] = pixel_mm
    table.iloc[:1].to_csv(own / OWN_CSV, index=False)
    images, _, rejected = read_own(own / OWN_CSV)
    assert images.empty and f"pixel_mm '{pixel_mm}' is not a number in 0.01..1" in rejected["reason"][0]
