"""CBIS-DDSM case description tables and telling masks from crops."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from mammo.io import FormatError
from mammo.io.cbis import ROI_COLUMNS, aspect_matches, is_mask, path_problem, read_case_descriptions, resolve
from mammo.tables import REJECTED_COLUMNS

# The real header spellings (mass: breast_density; calc: "breast density", calc type/distribution).
MASS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,"
    "mass shape,mass margins,assessment,pathology,subtlety,image file path,cropped image file path,"
    "ROI mask file path"
).split(",")
CALC_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,"
    "calc type,calc distribution,assessment,pathology,subtlety,image file path,cropped image file path,"
    "ROI mask file path"
).split(",")


# ----------------------------------------------------------------------------- the real tables
@pytest.fixture(scope="module")
def real_rois(shared):
    folder = shared / "data" / "cbis-ddsm"
    paths = [folder / "mass_case_description_train_set.csv", folder / "calc_case_description_train_set.csv"]
    return read_case_descriptions(paths)


def test_real_tables_give_one_row_per_roi(real_rois):
    rois, rejected = real_rois
    assert len(rois) == 1318 + 1546 == 2864
    assert len(rejected) == 0
    assert list(rois.columns) == ROI_COLUMNS
    assert list(rejected.columns) == REJECTED_COLUMNS
    assert rois["roi_id"].is_unique
    assert (rois["abnormality_type"] == "mass").sum() == 1318
    assert (rois["abnormality_type"] == "calcification").sum() == 1546
    assert set(rois["division"]) == {"train"}


def test_real_tables_patients_and_scans_per_collection(real_rois):
    rois, _ = real_rois
    mass = rois[rois["abnormality_type"] == "mass"]
    calc = rois[rois["abnormality_type"] == "calcification"]
    assert (mass["patient_id"].nunique(), calc["patient_id"].nunique()) == (691, 602)
    assert (mass["image_file_path"].nunique(), calc["image_file_path"].nunique()) == (1231, 1227)
    assert (mass["scan_id"].nunique(), calc["scan_id"].nunique()) == (1231, 1227)


def test_real_tables_labels_per_roi(real_rois):
    rois, _ = real_rois
    assert set(rois["class_code"]) == {1, 2, 3, 4}
    calc, mass = rois["abnormality_type"] == "calcification", rois["abnormality_type"] == "mass"
    assert set(rois.loc[calc, "class_code"]) == {1, 3}
    assert set(rois.loc[mass, "class_code"]) == {2, 4}
    malignant = rois["pathology"] == "MALIGNANT"
    assert (rois.loc[malignant, "class_code"] >= 3).all() and (rois.loc[~malignant, "class_code"] <= 2).all()
    # several ROIs of one scan keep their own labels (the study's flaw was one label per image)
    per_scan = rois.groupby("scan_id")["pathology"].nunique()
    assert (per_scan > 1).any()


def test_real_tables_benign_without_callback(real_rois):
    rois, _ = real_rois
    assert set(rois["pathology"]) == {"BENIGN", "MALIGNANT"}
    assert set(rois["pathology_original"]) == {"BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT"}
    bwc = rois["pathology_original"] == "BENIGN_WITHOUT_CALLBACK"
    assert bwc.sum() > 0
    assert (rois.loc[bwc, "pathology"] == "BENIGN").all()
    assert (rois.loc[bwc, "class_code"].isin([1, 2])).all()


def test_real_tables_paths_are_clean(real_rois, shared):
    rois, _ = real_rois
    raw = (shared / "data" / "cbis-ddsm" / "calc_case_description_train_set.csv").read_text()
    assert '.dcm\n"' in raw, "the real calc table has newlines inside quoted paths"
    for column in ("image_file_path", "cropped_image_file_path", "roi_mask_file_path"):
        values = rois[column]
        assert not values.str.contains("\n").any(), column
        assert not values.str.contains("\r").any(), column
        assert values.str.endswith(".dcm").all(), column
        assert (values.map(path_problem).isna()).all(), column
    # the scan id is the image folder, and the ROI id adds the abnormality number
    assert (rois["image_file_path"].str.split("/").str[0] == rois["scan_id"]).all()
    assert (rois["roi_id"] == rois["scan_id"] + "_" + rois["abnormality_id"].astype(str)).all()


def test_real_tables_breast_density_for_both_spellings(real_rois):
    rois, _ = real_rois
    for kind in ("mass", "calcification"):
        density = rois.loc[rois["abnormality_type"] == kind, "breast_density"]
        assert density.notna().all(), kind
        assert set(density.astype(int)) <= {0, 1, 2, 3, 4}
        assert density.nunique() >= 3
    assert rois["subtlety"].notna().all() and rois["assessment"].notna().all()


def test_real_tables_first_row(real_rois):
    rois, _ = real_rois
    first = rois.iloc[0]
    assert first["roi_id"] == "Mass-Training_P_00001_LEFT_CC_1"
    assert (first["patient_id"], first["side"], first["view"], first["abnormality_id"]) == ("P_00001", "LEFT", "CC", 1)
    assert (first["pathology"], first["class_code"], first["breast_density"], first["subtlety"]) == ("MALIGNANT", 4, 3, 4)
    assert first["row"] == 1


# ----------------------------------------------------------------------------- synthetic tables
def _path(folder, number=0):
    return f"{folder}/1.3.6.1.4.1.9590.100.1.2.1/1.3.6.1.4.1.9590.100.1.2.2/00000{number}.dcm"


def _row(
    patient="P_00001",
    side="LEFT",
    view="CC",
    abnormality=1,
    pathology="MALIGNANT",
    kind="mass",
    density="3",
    image=None,
    crop=None,
    mask=None,
    subtlety="4",
):
    scan = f"{'Mass' if kind == 'mass' else 'Calc'}-Training_{patient}_{side}_{view}"
    return [
        patient,
        density,
        side,
        view,
        str(abnormality),
        kind,
        "OVAL",
        "NA",
        "4",
        pathology,
        subtlety,
        image or _path(scan),
        crop or _path(f"{scan}_{abnormality}", 0),
        mask or _path(f"{scan}_{abnormality}", 1),
    ]


def _write_csv(path, header, rows, crlf=False):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode())
    return path


def test_synthetic_rows_rejected_with_reasons(tmp_path):
    rows = [
        _row("P_00001"),  # good
        _row("P_00002", image="../outside/000000.dcm"),
        _row("P_00003", crop="/abs/path/000000.dcm"),
        _row("P_00004", mask="C:\\data\\000001.dcm"),
        _row("P_00005", pathology="UNPROVEN"),
        _row(""),  # missing patient
        _row("P_00006", side="MIDDLE"),
        _row("P_00007", view="ML"),
        _row("P_00008", abnormality="x"),
        _row("P_00009", kind="tumour"),
        _row("P_00010", mask="NA"),
        _row("P_00011", pathology="benign_without_callback", side="right", view="mlo"),  # good: case-insensitive
        _row("P_00012", image=_path("Mass-Training_P_00012_LEFT_CC\\sub")),  # backslash, still relative: good
    ]
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", MASS_HEADER, rows, crlf=True)
    rois, rejected = read_case_descriptions([path])
    assert len(rows) == len(rois) + len(rejected)
    assert sorted(rois["patient_id"]) == ["P_00001", "P_00011", "P_00012"]
    reasons = dict(zip(rejected["row"], rejected["reason"]))
    assert "escapes the data root" in reasons[2] and "image_file_path" in reasons[2]
    assert "absolute" in reasons[3] and "cropped_image_file_path" in reasons[3]
    assert "absolute" in reasons[4] and "roi_mask_file_path" in reasons[4]
    assert "pathology" in reasons[5] and "UNPROVEN" in reasons[5]
    assert "patient" in reasons[6]
    assert "side" in reasons[7]
    assert "view" in reasons[8]
    assert "abnormality id" in reasons[9]
    assert "abnormality type" in reasons[10]
    assert "missing path" in reasons[11]
    assert set(rejected["file"]) == {str(path)}
    assert set(rejected["stage"]) == {"read_csv"}
    good = rois.set_index("patient_id").loc["P_00011"]
    assert (good["side"], good["view"], good["pathology"], good["pathology_original"]) == (
        "RIGHT",
        "MLO",
        "BENIGN",
        "BENIGN_WITHOUT_CALLBACK",
    )
    assert good["class_code"] == 2


def test_division_and_calc_header(tmp_path):
    mass = _write_csv(tmp_path / "mass_case_description_test_set.csv", MASS_HEADER, [_row("P_00001", pathology="BENIGN")])
    calc = _write_csv(
        tmp_path / "calc_case_description_train_set.csv",
        CALC_HEADER,
        [
            _row("P_00002", kind="calcification", density="2"),
            _row("P_00002", kind="calcification", abnormality=2, pathology="BENIGN"),
        ],
    )
    rois, rejected = read_case_descriptions([mass, calc])
    assert len(rejected) == 0
    assert rois["division"].tolist() == ["test", "train", "train"]
    assert rois["class_code"].tolist() == [2, 3, 1]
    assert rois["breast_density"].tolist() == [3, 2, 3]
    assert rois["abnormality_type"].tolist() == ["mass", "calcification", "calcification"]
    assert rois["roi_id"].tolist() == [
        "Mass-Training_P_00001_LEFT_CC_1",
        "Calc-Training_P_00002_LEFT_CC_1",
        "Calc-Training_P_00002_LEFT_CC_2",
    ]
    assert rois["source_file"].tolist() == [str(mass), str(calc), str(calc)]
    assert rois["margins_or_distribution"].isna().all(), "'NA' is read as missing"


def test_quoted_newline_and_crlf(tmp_path):
    row = _row("P_00001")
    row[13] = row[13] + "\n"  # as in the real tables: the last path ends with a newline inside quotes
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", MASS_HEADER, [row, _row("P_00002")], crlf=True)
    assert b'.dcm\n"\r\n' in path.read_bytes()
    rois, rejected = read_case_descriptions([path])
    assert len(rois) == 2 and len(rejected) == 0
    assert rois.loc[0, "roi_mask_file_path"] == row[13].strip()
    assert rois["row"].tolist() == [1, 2]  # data records, not physical lines


def test_duplicate_roi_rejected(tmp_path):
    path = _write_csv(
        tmp_path / "mass_case_description_train_set.csv",
        MASS_HEADER,
        [_row("P_00001"), _row("P_00001"), _row("P_00001", abnormality=2)],
    )
    rois, rejected = read_case_descriptions([path])
    assert len(rois) == 2 and len(rejected) == 1
    assert "duplicate" in rejected.loc[0, "reason"]
    assert rejected.loc[0, "item"] == "Mass-Training_P_00001_LEFT_CC_1"
    assert rejected.loc[0, "row"] == 2


def test_out_of_range_flag(tmp_path):
    path = _write_csv(
        tmp_path / "mass_case_description_train_set.csv",
        MASS_HEADER,
        [_row("P_00001", subtlety="0"), _row("P_00002", density="5"), _row("P_00003")],
    )
    rois, _ = read_case_descriptions([path])
    assert rois["out_of_range"].tolist() == [True, True, False]
    assert rois["subtlety"].tolist()[0] == 0


def test_missing_columns_raise(tmp_path):
    header = [c for c in MASS_HEADER if c != "pathology"]
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", header, [_row()[:9] + _row()[10:]])
    with pytest.raises(FormatError, match="pathology") as info:
        read_case_descriptions([path])
    assert str(path) in str(info.value)


def test_no_tables_gives_empty_results():
    rois, rejected = read_case_descriptions([])
    assert len(rois) == 0 and list(rois.columns) == ROI_COLUMNS
    assert len(rejected) == 0


@pytest.mark.parametrize(
    "relative, problem",
    [
        ("a/b/000000.dcm", None),
        ("a\\b\\000000.dcm", None),
        ("", "missing"),
        (None, "missing"),
        ("../a/000000.dcm", "escapes"),
        ("a/../../b.dcm", "escapes"),
        ("/a/b.dcm", "absolute"),
        ("\\a\\b.dcm", "absolute"),
        ("C:/a/b.dcm", "absolute"),
        ("d:\\a\\b.dcm", "absolute"),
    ],
)
def test_path_problem(relative, problem):
    result = path_problem(relative)
    if problem is None:
        assert result is None
    else:
        assert problem in result


def test_resolve_uses_posix_and_backslash_separators(tmp_path):
    assert resolve(tmp_path, "a/b/c.dcm") == tmp_path / "a" / "b" / "c.dcm"
    assert resolve(tmp_path, "a\\b\\c.dcm") == tmp_path / "a" / "b" / "c.dcm"


# ----------------------------------------------------------------------------- mask or crop
SCAN = (530, 310)


def _binary(shape, value=255, box=(0.3, 0.4, 0.6, 0.7)):
    mask = np.zeros(shape, np.uint8)
    top, left, bottom, right = (int(f * s) for f, s in zip(box, shape * 2))
    mask[top:bottom, left:right] = value
    return mask


def test_full_size_binary_mask_is_a_mask():
    assert is_mask(_binary(SCAN), SCAN)
    assert is_mask(_binary(SCAN, value=1).astype(np.uint16), SCAN)


def test_same_aspect_smaller_mask_is_a_mask():
    assert is_mask(_binary((265, 155)), SCAN)
    assert is_mask(_binary((5300 // 4, 3100 // 4)), (5300, 3100))


def test_large_mask_sampled_still_a_mask():
    assert is_mask(_binary((5300, 3100)), (5300, 3100))


def test_crop_is_not_a_mask():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 65536, (120, 97)).astype(np.uint16)
    assert not is_mask(crop, SCAN)
    # even a full-size non-binary image is not a mask
    assert not is_mask(rng.integers(0, 65536, SCAN).astype(np.uint16), SCAN)


def test_wrong_aspect_binary_mask_is_not_a_mask():
    assert not is_mask(_binary((300, 300)), SCAN)
    assert not is_mask(_binary((310, 530)), SCAN)  # transposed
    # Mass-Test_P_00145_LEFT_CC: mask 4386x1789, image 5041x2056: aspect 2.4517 vs 2.4518 -> same aspect
    assert is_mask(_binary((4386, 1789)), (5041, 2056))


def test_binary_without_zero_background_is_not_a_mask():
    assert not is_mask(np.where(_binary(SCAN) > 0, 255, 1).astype(np.uint8), SCAN)


def test_aspect_matches_tolerance():
    assert aspect_matches((1000, 500), (2000, 1000))
    assert aspect_matches((1001, 500), (2000, 1000))  # 1e-3 relative
    assert not aspect_matches((1003, 500), (2000, 1000))


def test_csv_layout_under_a_cbis_ddsm_folder_is_found(tmp_path):
    """`csv/CBIS-DDSM/<CSV path>` is a layout users have (the downloader's top folder kept); it was reported missing."""
    relative = "Mass-Training_P_00001_LEFT_CC/1.3.6.1/1.3.6.2/000000.dcm"
    nested = tmp_path / "CBIS-DDSM" / relative
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"")
    assert resolve(tmp_path, relative) == nested
    assert (
        resolve(tmp_path, "Mass-Training_P_00002_LEFT_CC/1.3/1.4/000000.dcm")
        == tmp_path / "Mass-Training_P_00002_LEFT_CC/1.3/1.4/000000.dcm"
    )


def test_lost_closing_quotes_are_caught_and_located(tmp_path):
    """Without the check, the parser paired the open quotes among themselves: 5 rows for 10 records, no error; the
    first record swallowed the next line into its last field."""
    rows = [_row(f"P_{n:05d}") for n in range(1, 11)]
    for row in rows:
        row[-1] = row[-1] + "\n"  # a path with a line break inside its quotes, as in the originals
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", MASS_HEADER, rows, crlf=True)
    assert len(read_case_descriptions([path])[0]) == 10
    path.write_text(path.read_text().replace('.dcm\n"', ".dcm\n"))  # every closing quote lost
    assert len(pd.read_csv(path, dtype=str, keep_default_na=False)) == 5  # what a plain read makes of it
    with pytest.raises(FormatError, match=r"line 2: a field runs over a line break \(a lost closing quote\?\)") as info:
        read_case_descriptions([path])
    assert str(path) in str(info.value)


def test_a_csv_that_is_not_utf8_is_an_error_naming_the_line(tmp_path):
    rows = [_row("P_00001"), _row("P_00173é")]
    path = tmp_path / "mass_case_description_train_set.csv"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([MASS_HEADER, *rows])
    path.write_bytes(buffer.getvalue().encode("latin-1"))
    with pytest.raises(FormatError, match=r"line 3: not UTF-8 \(byte 0xe9\)"):
        read_case_descriptions([path])
    path.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode())  # UTF-8 with a BOM is fine
    assert read_case_descriptions([path])[0]["patient_id"].tolist() == ["P_00001", "P_00173é"]


def test_an_empty_csv_is_an_error_naming_it(tmp_path):
    path = tmp_path / "calc_case_description_test_set.csv"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty CSV") as info:
        read_case_descriptions([path])
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- hostile CSV text
def _rows_of(path):
    rois, rejected = read_case_descriptions([path])
    return rois.drop(columns="source_file"), rejected


@pytest.mark.parametrize(
    "variant",
    [
        "trailing comma",  # a TypeError traceback
        "fully quoted",  # refused as "an unbalanced quote near line None"
        "indented rows",  # likewise
    ],
)
def test_csv_dialects_read_as_the_plain_table(tmp_path, variant):
    rows = [_row("P_00001"), _row("P_00002", pathology="UNPROVEN"), _row("P_00003", kind="calcification")]
    rows[0][13] += "\n"  # the originals' line break inside a quoted path
    (tmp_path / "plain").mkdir()
    plain = _write_csv(tmp_path / "plain" / "mass_case_description_train_set.csv", MASS_HEADER, rows, crlf=True)
    buffer = io.StringIO()
    quoting = csv.QUOTE_ALL if variant == "fully quoted" else csv.QUOTE_MINIMAL
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=quoting)
    writer.writerow(MASS_HEADER)
    writer.writerows([[*row, ""] for row in rows] if variant == "trailing comma" else rows)
    text = buffer.getvalue()
    if variant == "indented rows":
        text = text.replace("\r\nP_", "\r\n   P_")
    path = tmp_path / "mass_case_description_train_set.csv"
    path.write_text(text, newline="")
    expected_rois, expected_rejected = _rows_of(plain)
    rois, rejected = _rows_of(path)
    pd.testing.assert_frame_equal(rois, expected_rois)
    assert rejected.drop(columns="file").equals(expected_rejected.drop(columns="file")) and len(rejected) == 1


def test_two_columns_of_one_meaning_are_refused(tmp_path):
    """Both `image file path` and `image_file_path`: the last one was taken without a word."""
    header = [*MASS_HEADER, "image_file_path"]
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", header, [[*_row(), "elsewhere/000000.dcm"]])
    with pytest.raises(FormatError, match="line 1: columns 'image file path' and 'image_file_path' both mean image_file_path"):
        read_case_descriptions([path])


def test_a_record_of_the_wrong_width_is_refused_with_its_line(tmp_path):
    path = _write_csv(tmp_path / "mass_case_description_train_set.csv", MASS_HEADER, [_row("P_00001"), _row("P_00002")[:-2]])
    with pytest.raises(FormatError, match="line 3: 12 fields, the header has 14") as info:
        read_case_descriptions([path])
    assert str(path) in str(info.value)
