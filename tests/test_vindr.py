"""VinDr-Mammo reader: both CSVs in the layout of the PhysioNet download (see ../shared/README.md), DICOMs written
by pydicom; every row accepted or rejected with its reason, BI-RADS mapped by one table, split kept by study."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo.io import FormatError
from mammo.io.dicom import write_dicom
from mammo.io.listed import CBIS_PIXEL_MM, finding_mask, listed_rois, read_listed_scan
from mammo.io.vindr import BREAST_CSV, FINDING_CSV, read_vindr
from mammo.tiles import upscale

MAMMO = Path(sys.executable).with_name("mammo")


def _read_at_cbis_scale(path, pixel_mm=None):
    """An image as the tile jobs read it: at the CBIS-DDSM scale (upscaled by its factor)."""
    image, factor, mirrored = read_listed_scan(path, pixel_mm)
    return upscale(image, factor), factor, mirrored


IMAGE = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width"]

# study, image, laterality, view, breast BI-RADS, density, split, DICOM written
BREASTS = [
    ("s1", "i1", "L", "CC", "BI-RADS 1", "DENSITY B", "training", True),
    ("s1", "i2", "R", "MLO", "BI-RADS 4", "DENSITY B", "training", True),
    ("s2", "i3", "L", "CC", "BI-RADS 2", "DENSITY C", "test", True),
    ("s2", "i4", "L", "MLO", "BI-RADS 2", "DENSITY C", "training", True),  # study s2 in both splits
    ("s3", "i5", "X", "CC", "BI-RADS 1", "DENSITY A", "training", True),  # laterality
    ("s3", "i6", "R", "CC", "BI-RADS 1", "DENSITY A", "training", False),  # no DICOM
    ("s4", "i7", "R", "CC", "BI-RADS 5", "DENSITY D", "test", True),
]
# image, categories, finding BI-RADS, box (xmin, ymin, xmax, ymax) or None
FINDINGS = [
    ("i1", "['No Finding']", "", None),
    ("i2", "['Mass', 'Skin Retraction']", "BI-RADS 4", (10.5, 20.0, 30.0, 44.0)),
    ("i2", "['Suspicious Calcification']", "BI-RADS 3", (1, 1, 5, 5)),
    ("i7", "['Architectural Distortion']", "BI-RADS 5", (0, 0, 48, 64)),  # the whole image
    ("i7", "['Mass']", "BI-RADS 5", (40, 40, 70, 50)),  # leaves the 64x48 image (width 48)
    ("i7", "Mass", "BI-RADS 5", (1, 1, 2, 2)),  # not a list literal
    ("i7", "['Mass']", "BI-RADS 1", (1, 1, 2, 2)),  # a negative with a box
    ("i5", "['Mass']", "BI-RADS 4", (1, 1, 2, 2)),  # its image was rejected
]


@pytest.fixture
def vindr(tmp_path) -> Path:
    rows = []
    for study, image, side, view, birads, density, split, written in BREASTS:
        rows.append(
            {
                "study_id": study,
                "series_id": f"{study}.1",
                "image_id": image,
                "laterality": side,
                "view_position": view,
                "height": 64,
                "width": 48,
                "breast_birads": birads,
                "breast_density": density,
                "split": split,
            }
        )
        if written:
            (tmp_path / "images" / study).mkdir(parents=True, exist_ok=True)
            write_dicom(tmp_path / "images" / study / f"{image}.dicom", np.zeros((64, 48), np.uint16), study, "1.2", "1.2.3")
    breasts = pd.DataFrame(rows)
    breasts.to_csv(tmp_path / BREAST_CSV, index=False)
    by_image = breasts.set_index("image_id")
    findings = []
    for image, categories, birads, box in FINDINGS:
        row = {column: by_image.loc[image, column] for column in IMAGE if column != "image_id"}
        box = box or ("", "", "", "")
        findings.append(
            {
                **row,
                "image_id": image,
                "breast_birads": by_image.loc[image, "breast_birads"],
                "breast_density": by_image.loc[image, "breast_density"],
                "finding_categories": categories,
                "finding_birads": birads,
                **dict(zip(("xmin", "ymin", "xmax", "ymax"), box)),
                "split": by_image.loc[image, "split"],
            }
        )
    pd.DataFrame(findings).to_csv(tmp_path / FINDING_CSV, index=False)
    return tmp_path


def test_images_are_indexed_by_study_with_birads_labels(vindr):
    images, _, rejected = read_vindr(vindr)
    assert list(images["scan_id"]) == ["i1", "i2", "i3", "i7"]
    assert list(images["patient_id"]) == ["s1", "s1", "s2", "s4"] and list(images["split"]) == ["train", "train", "test", "test"]
    assert list(images["label_normal"]) == [0, 1, 1, 1]  # BI-RADS 1 is the only normal breast
    assert list(images["side"]) == ["LEFT", "RIGHT", "LEFT", "RIGHT"] and list(images["density"]) == ["B", "B", "C", "D"]
    assert images.loc[0, "path"].endswith("images/s1/i1.dicom")
    reasons = dict(zip(rejected["item"], rejected["reason"]))
    assert "study s2 is in both splits" in reasons["i4"]
    assert "laterality 'X'" in reasons["i5"] and "images/s3/i6.dicom not found" in reasons["i6"]
    assert (rejected.loc[rejected["item"] == "i4", "row"] == 5).all()  # the CSV line


def test_findings_take_their_type_and_birads_pathology_from_one_table(vindr):
    _, findings, rejected = read_vindr(vindr)
    assert list(findings["scan_id"]) == ["i2", "i2", "i7"]
    mass, calcification, distortion = (findings.iloc[i] for i in range(3))
    assert (mass["abnormality_type"], mass["pathology"], mass["class_code"]) == ("mass", "MALIGNANT", 4)
    assert (mass["box_left"], mass["box_top"], mass["box_right"], mass["box_bottom"]) == (10, 20, 30, 44)
    assert mass["categories"] == "Mass; Skin Retraction"
    assert (calcification["abnormality_type"], calcification["pathology"], calcification["class_code"]) == (
        "calcification",
        "BENIGN",
        1,
    )
    assert distortion["abnormality_type"] == "other" and np.isnan(distortion["class_code"])
    reasons = [reason for item, reason in zip(rejected["item"], rejected["reason"]) if "#" in item]
    assert len(reasons) == 4
    assert any("leaves the 48x64 image" in reason for reason in reasons)
    assert any("is not a list of names" in reason for reason in reasons)
    assert any("'BI-RADS 1' is not BI-RADS 2-5" in reason for reason in reasons)
    assert any("image i5 is not an accepted row" in reason for reason in reasons)


def test_missing_csv_or_column_is_a_clear_error(vindr):
    (vindr / FINDING_CSV).unlink()
    with pytest.raises(FormatError, match="finding_annotations.csv: not found"):
        read_vindr(vindr)
    pd.read_csv(vindr / BREAST_CSV).drop(columns="split").to_csv(vindr / BREAST_CSV, index=False)
    with pytest.raises(FormatError, match="breast-level_annotations.csv: missing columns split"):
        read_vindr(vindr)


def test_mammo_check_counts_a_vindr_download(vindr):
    result = subprocess.run([MAMMO, "check", "--vindr", str(vindr), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["vindr"]
    assert (report["rows"], report["patients"], report["scans"]) == (7, 3, 4)
    assert report["missing_files"] == ["images/s3/i6.dicom"] and len(report["rejected"]) == 3 + 4
    assert report["findings"] == {"calcification": 1, "mass": 1, "other": 1}


def test_the_demos_vindr_collection_reads_back(demo_root, demo_counts):
    """Studies of four views, BI-RADS 1 breasts normal, every fifth study in test, boxes around the lesions and
    one box past the image's edge rejected; the presented images bright where the breast is."""
    images, findings, rejected = read_vindr(demo_root / "vindr")
    assert len(images) == demo_counts["vindr_images"] == 12 and images["patient_id"].nunique() == 3
    assert (images.groupby("patient_id").size() == 4).all()
    assert len(findings) == demo_counts["vindr_boxes"] - 1 and len(rejected) == 1 and "leaves the" in rejected["reason"][0]
    assert set(findings["abnormality_type"]) <= {"mass", "calcification"} and (findings["finding_birads"] > 1).all()
    assert images.loc[images["breast_birads"] == 1, "label_normal"].eq(0).all()
    by_id = images.set_index("scan_id")
    for _, finding in findings.iterrows():
        image, factor, mirrored = _read_at_cbis_scale(by_id.loc[finding["scan_id"], "path"])
        box = finding_mask(finding, image.shape, factor, mirrored, int(by_id.loc[finding["scan_id"], "width"]))
        assert image[box].mean() > np.median(image)  # the lesion lies in the breast, which the presentation makes bright


def test_the_three_presentations_of_one_image_agree(tmp_path):
    """A window, the same window over MONOCHROME1 values and a VOI LUT doing the same: read back through pydicom's
    transforms, one image to 1% of the range (the window's half-pixel offsets aside)."""
    from mammo.demo import anatomy
    from mammo.demo.collections import _presented_ffdm
    from mammo.io.dicom import read_dicom

    od, breast = anatomy.normal_breast((300, 240), np.random.default_rng(5), chest_wall_left=True)
    read = {}
    for variant in ("window", "monochrome1", "voi_lut"):
        pixels, header = _presented_ffdm(od, breast, variant)
        write_dicom(tmp_path / f"{variant}.dcm", pixels, "p", "1.2", "1.2.3", header=header)
        read[variant] = read_dicom(tmp_path / f"{variant}.dcm").astype(np.float64)
    for variant in ("monochrome1", "voi_lut"):
        assert np.abs(read[variant] - read["window"]).max() < 0.01 * 65535, variant
    assert read["window"][breast].mean() > 4 * read["window"][~breast].mean()  # bright = dense


def test_an_image_comes_to_the_cbis_scale_and_its_boxes_follow_a_flip(tmp_path):
    """Pixel spacing 0.09 mm -> upscaled 2x to the CBIS-DDSM scale (0.045 mm); a right breast stored with its chest
    wall at the left edge (PatientOrientation A) is flipped, and a box drawn on the stored image follows it."""
    stored = np.zeros((40, 30), np.uint16)
    stored[10:20, 2:8] = 60000  # a bright lesion near the stored image's left edge
    header = {"PixelSpacing": [2 * CBIS_PIXEL_MM] * 2, "ImageLaterality": "R", "PatientOrientation": ["A", "L"]}
    write_dicom(tmp_path / "r.dicom", stored, "s", "1.2", "1.3", header=header)
    image, factor, mirrored = _read_at_cbis_scale(tmp_path / "r.dicom")
    assert factor == pytest.approx(2.0) and mirrored and image.shape == (80, 60)
    box = pd.Series({"box_top": 10, "box_left": 2, "box_bottom": 20, "box_right": 8})
    mask = finding_mask(box, image.shape, factor, mirrored, 30)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (20, 40, 44, 56)  # now at the right edge
    assert image[mask].mean() > 50000 and image[~mask].mean() < 5000
    write_dicom(tmp_path / "n.dicom", stored, "s", "1.2", "1.3")
    with pytest.raises(FormatError, match="no pixel size"):
        _read_at_cbis_scale(tmp_path / "n.dicom")


def test_rois_for_tiling_reject_findings_of_no_class_and_abnormal_breasts_without_a_box(vindr):
    images, findings, _ = read_vindr(vindr)
    rois, rejected = listed_rois(images, findings, "tiles_vindr")
    assert sorted(rois["roi_id"]) == ["i2#3", "i2#4"] and rois["class_code"].tolist() == [4, 1]
    assert {"path", "side", "view", "density", "split", "width"} <= set(rois.columns)
    reasons = dict(zip(rejected["item"], rejected["reason"]))
    assert "neither a mass nor a calcification" in reasons["i7#5"]
    assert set(reasons) == {"i7#5", "i3"}
    assert reasons["i3"].startswith("abnormal image without a located finding")  # BI-RADS 2, no box


# ----------------------------------------------------------------------------- hostile CSV text and ids
def test_ids_that_lead_out_of_images_are_rejected(vindr):
    """A study_id or image_id of `..` parts or an absolute path read DICOMs outside the download's images/ folder."""
    outside = vindr.parent / f"{vindr.name}_outside"
    outside.mkdir()
    for image in ("i8", "i9", "i10"):
        write_dicom(outside / f"{image}.dicom", np.zeros((64, 48), np.uint16), "s5", "1.2", "1.2.3")
    breasts = pd.read_csv(vindr / BREAST_CSV, dtype=str, keep_default_na=False)
    escaping = [("../../" + outside.name, "i8"), (str(outside), "i9"), ("s1", f"../../../{outside.name}/i10")]
    added = [breasts.iloc[0].to_dict() | {"study_id": study, "image_id": image} for study, image in escaping]
    pd.concat([breasts, pd.DataFrame(added)]).to_csv(vindr / BREAST_CSV, index=False)
    images, _, rejected = read_vindr(vindr)
    assert list(images["scan_id"]) == ["i1", "i2", "i3", "i7"]
    breast_rows = rejected[rejected["file"].str.endswith(BREAST_CSV)]
    reasons = dict(zip(breast_rows["row"], breast_rows["reason"]))
    assert reasons[9] == f"study_id: path '../../{outside.name}' escapes images/"
    assert reasons[10] == f"study_id: absolute path '{outside}' escapes images/"
    assert reasons[11] == f"image_id: path '../../../{outside.name}/i10' escapes images/"


def test_a_fully_quoted_indented_csv_reads_as_the_plain_one(vindr):
    expected = [table.astype(str).to_dict("list") for table in read_vindr(vindr)]
    for name in (BREAST_CSV, FINDING_CSV):
        table = pd.read_csv(vindr / name, dtype=str, keep_default_na=False)
        text = table.to_csv(index=False, quoting=csv.QUOTE_ALL)
        (vindr / name).write_text(text.replace('\n"', '\n  "'))  # every row indented
    assert [table.astype(str).to_dict("list") for table in read_vindr(vindr)] == expected


def test_two_columns_of_one_name_are_refused(vindr):
    text = (vindr / BREAST_CSV).read_text().splitlines()
    (vindr / BREAST_CSV).write_text("\n".join([text[0] + ",split", *(line + ",test" for line in text[1:])]) + "\n")
    with pytest.raises(FormatError, match="breast-level_annotations.csv: line 1: columns 'split' and 'split' both mean split"):
        read_vindr(vindr)


def test_an_image_listed_twice_is_rejected_as_a_repeat(vindr):
    """A repeated image_id stopped the reader with an accounting error (one key, two rows) instead of a rejected row."""
    breasts = pd.read_csv(vindr / BREAST_CSV, dtype=str, keep_default_na=False)
    pd.concat([breasts, breasts.iloc[[1]]]).to_csv(vindr / BREAST_CSV, index=False)
    images, _, rejected = read_vindr(vindr)
    assert list(images["scan_id"]) == ["i1", "i2", "i3", "i7"]
    repeat = rejected[rejected["item"] == "i2#9"]
    assert repeat["row"].tolist() == [9] and repeat["reason"].tolist() == ["image i2 is listed again (first on line 3)"]
