"""mini-MIAS: Info.txt annotations and P5 PGM scans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammo.io import FormatError
from mammo.io.mias import INFO_COLUMNS, index_info, parse_info, read_info, read_pgm, write_pgm


# ----------------------------------------------------------------------------- the real Info.txt
@pytest.fixture(scope="module")
def real_info(shared):
    return read_info(shared / "data" / "mias" / "Info.txt")


def test_real_info_rows(real_info):
    table, rejected = real_info
    assert len(table) == 330
    assert table["refnum"].nunique() == 322
    assert len(rejected) == 0
    assert list(table.columns) == INFO_COLUMNS + ["row"]
    assert table["refnum"].tolist() == sorted(table["refnum"]), "rows keep file order"
    assert set(table["refnum"]) == {f"mdb{n:03d}" for n in range(1, 323)}


def test_real_info_classes(real_info):
    table, _ = real_info
    counts = table["abnormality_class"].value_counts().to_dict()
    assert counts["NORM"] == 207
    assert counts["CALC"] == 30
    assert counts == {"NORM": 207, "CALC": 30, "CIRC": 25, "ARCH": 19, "SPIC": 19, "MISC": 15, "ASYM": 15}
    assert set(table["background"]) == {"F", "G", "D"}
    normal = table["abnormality_class"] == "NORM"
    assert table.loc[normal, "severity"].isna().all()
    assert table.loc[~normal, "severity"].isin(["B", "M"]).all()
    assert table.loc[normal, ["x", "y", "radius"]].isna().all().all()


def test_real_info_rows_without_coordinates(real_info):
    table, _ = real_info
    abnormal = table["abnormality_class"] != "NORM"
    missing = table[abnormal & table["x"].isna()]
    assert sorted(missing["refnum"]) == ["mdb059", "mdb216", "mdb233", "mdb245"]
    assert missing[["y", "radius"]].isna().all().all()
    mdb059 = missing.set_index("refnum").loc["mdb059"]
    assert (mdb059["background"], mdb059["abnormality_class"], mdb059["severity"]) == ("F", "CIRC", "B")
    for refnum in ("mdb216", "mdb233", "mdb245"):  # the '*NOTE 3*' rows
        assert missing.set_index("refnum").loc[refnum, "abnormality_class"] == "CALC"
    with_coordinates = table[abnormal & table["x"].notna()]
    assert len(with_coordinates) == 330 - 207 - 4
    assert with_coordinates[["y", "radius"]].notna().all().all()
    assert with_coordinates["x"].between(0, 1023).all() and with_coordinates["y"].between(0, 1023).all()


def test_real_info_several_rows_per_image(real_info):
    table, _ = real_info
    per_image = table["refnum"].value_counts()
    assert per_image.max() > 1
    assert per_image.sum() - len(per_image) == 330 - 322


def test_real_info_first_abnormal_row(real_info):
    table, _ = real_info
    first = table.set_index("refnum").loc["mdb001"]
    assert (first["background"], first["abnormality_class"], first["severity"]) == ("G", "CIRC", "B")
    assert (first["x"], first["y"], first["radius"]) == (535, 425, 197)


# ----------------------------------------------------------------------------- synthetic Info.txt
def test_parse_info_quirks():
    text = "\n".join(
        [
            "   MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY",  # prose
            "1st column: MIAS database reference number.",
            "mdb001 G CIRC B 535 425 197",
            "mdb002  G  CIRC  B  522  280  69  ",  # irregular spaces
            "mdb003 D NORM ",
            "mdb004\tF CALC M *NOTE 3*",
            "mdb005 F CIRC B",
            "mdb005 F CIRC B 477 133 30",
            "mdb006 F ASYM",  # abnormal without severity: rejected
            "mdb0x7 F NORM",  # unparseable: rejected
            "=================",
        ]
    )
    table, rejected = parse_info(text, "Info.txt")
    assert table["refnum"].tolist() == ["mdb001", "mdb002", "mdb003", "mdb004", "mdb005", "mdb005"]
    assert table["x"].tolist()[:2] == [535, 522]
    assert table["radius"].tolist()[1] == 69
    assert pd.isna(table.loc[2, "severity"])
    assert table[["x", "y", "radius"]].iloc[[2, 3, 4]].isna().all().all()
    assert table["row"].tolist() == [3, 4, 5, 6, 7, 8]
    assert rejected["row"].tolist() == [9, 10]
    assert "severity" in rejected.loc[0, "reason"]
    assert set(rejected["file"]) == {"Info.txt"}


# ----------------------------------------------------------------------------- PGM
def test_read_pgm_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024)).astype(np.uint8)
    image[0, 0], image[-1, -1] = 0, 255
    path = tmp_path / "mdb001.pgm"
    write_pgm(path, image)
    data = path.read_bytes()
    assert data.startswith(b"P5\n1024 1024\n255\n")
    assert len(data) == len(b"P5\n1024 1024\n255\n") + 1024 * 1024
    out = read_pgm(path)
    assert out.dtype == np.uint8 and out.shape == (1024, 1024)
    assert np.array_equal(out, image)


def test_read_pgm_handwritten_header(tmp_path):
    # a header as MIAS wrote it by hand: comment line and width before height
    pixels = (np.arange(1024 * 1024) % 251).astype(np.uint8).reshape(1024, 1024)
    path = tmp_path / "mdb005.pgm"
    path.write_bytes(b"P5\n# comment\n1024 1024\n255\n" + pixels.tobytes())
    assert np.array_equal(read_pgm(path), pixels)


@pytest.mark.parametrize("content", [b"P6\n1 1\n255\n\0\0\0", b"", b"\x89PNG\r\n"])
def test_bad_magic_raises(tmp_path, content):
    path = tmp_path / "mdb002.pgm"
    path.write_bytes(content)
    with pytest.raises(FormatError, match="magic") as info:
        read_pgm(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [2, 8, 15, 1000, 1024 * 1024])
def test_truncated_pgm_raises(tmp_path, keep):
    path = tmp_path / "mdb003.pgm"
    write_pgm(path, np.full((1024, 1024), 100, np.uint8))
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(FormatError) as info:
        read_pgm(path)
    assert str(path) in str(info.value)


def test_sixteen_bit_pgm_is_read_and_scaled_by_maxval(tmp_path):
    from mammo.io.mias import read_mias_scan

    pixels = (np.arange(1024 * 1024) % 4096).astype(">u2").reshape(1024, 1024)
    path = tmp_path / "deep.pgm"
    path.write_bytes(b"P5\n1024 1024\n4095\n" + pixels.tobytes())
    image = read_pgm(path)
    assert image.dtype == np.uint16 and np.array_equal(image, pixels.astype(np.uint16))
    scan = read_mias_scan(path)
    assert scan.max() == 65535 and scan[0, 1] == round(65535 / 4095)


def test_plain_p2_pgm_is_read(tmp_path):
    pixels = (np.arange(1024 * 1024) % 200).astype(np.uint8).reshape(1024, 1024)
    body = "\n".join(" ".join(map(str, row)) for row in pixels)
    path = tmp_path / "mdb007.pgm"
    path.write_text(f"P2\n# written by hand\n1024 1024\n255\n{body}\n")
    assert np.array_equal(read_pgm(path), pixels)


def test_non_mias_size_raises(tmp_path):
    path = tmp_path / "mdb004.pgm"
    write_pgm(path, np.zeros((512, 512), np.uint8))
    with pytest.raises(FormatError):
        read_pgm(path)


def test_mias_scan_in_the_shared_16_bit_space(tmp_path):
    from mammo.intensity import to_uint8
    from mammo.io.mias import read_mias_scan

    pixels = (np.arange(1024 * 1024) % 256).astype(np.uint8).reshape(1024, 1024)
    path = tmp_path / "mdb010.pgm"
    write_pgm(path, pixels)
    scan = read_mias_scan(path)
    assert scan.dtype == np.uint16 and scan.max() == 65535 and scan.min() == 0
    assert np.array_equal(to_uint8(scan), pixels)  # the one 16 -> 8 bit function gives the PGM back


# ----------------------------------------------------------------------------- index: images, ROIs, rejected
def test_index_info_on_the_real_file(shared):
    images, rois, rejected, counts = index_info(shared / "data" / "mias" / "Info.txt")
    assert counts == {"inputs": 330, "accepted": 326, "rejected": 4}
    assert len(images) == 322 and images["label_normal"].sum() == 115
    assert len(rois) == 330 - 207 - 4
    # rows without coordinates: excluded from ROI extraction with the reason, image-level label kept
    assert sorted(rejected["row"]) == [163, 322, 342, 355]
    assert rejected["reason"].str.startswith("no coordinates").all()
    labels = images.set_index("refnum")
    assert labels.loc["mdb059", "label_normal"] == 1 and labels.loc["mdb059", "classes"] == "2"  # benign mass
    assert labels.loc["mdb216", "classes"] == "3"  # malignant calcification
    assert labels.loc["mdb003", "classes"] == "0"
    # CALC -> calcification, every other abnormality class -> mass
    assert set(rois.loc[rois["abnormality_class"] == "CALC", "abnormality_type"]) == {"calcification"}
    assert set(rois.loc[rois["abnormality_class"] != "CALC", "abnormality_type"]) == {"mass"}
    assert rois.set_index("refnum").loc["mdb001", "class_code"] == 2


def test_index_info_pairs_and_sides(tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text("prose\nmdb001 G CIRC B 535 425 197\nmdb002 G NORM\nmdb003 F CALC M *NOTE 3*\nmdb003 F SPIC M 10 20 5\n")
    images, rois, rejected, counts = index_info(info)
    assert images["patient_id"].tolist() == ["mias:001", "mias:001", "mias:002"]
    assert images["side"].tolist() == ["RIGHT", "LEFT", "RIGHT"]  # quirk: even numbers are left breasts
    assert images["classes"].tolist() == ["2", "0", "3,4"]
    assert rois["roi_id"].tolist() == ["mias:mdb001:2", "mias:mdb003:5"]
    assert rejected["item"].tolist() == ["mias:mdb003:4"] and rejected["row"].tolist() == [4]
    assert counts == {"inputs": 4, "accepted": 3, "rejected": 1}
    assert images["path"].tolist()[0] == str(tmp_path / "mdb001.pgm")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("mdb001 G CIRC B abc def 12", "three integers"),
        ("mdb001 G CIRC B 535 425", "three integers"),
        ("mdb001 G CIRC B 1024 425 20", "outside the 1024x1024 film"),
        ("mdb001 G CIRC B 535 -3 20", "three integers"),
        ("mdb001 G CIRC B 535 425 0", "radius 0"),
        ("mdb001 G CIRC B 535 425 2000", "radius 2000"),
    ],
)
def test_rows_that_cannot_be_right_are_rejected_with_their_line(line, reason):
    table, rejected = parse_info(f"header\n{line}\nmdb002 G NORM\n", "Info.txt")
    assert table["refnum"].tolist() == ["mdb002"]
    assert rejected["row"].tolist() == [2] and reason in rejected["reason"].iloc[0]


def test_a_film_listed_as_normal_and_abnormal_is_rejected_whole():
    table, rejected = parse_info("mdb001 G NORM\nmdb001 G CIRC B 535 425 20\nmdb002 G NORM\n", "Info.txt")
    assert table["refnum"].tolist() == ["mdb002"]
    assert sorted(rejected["row"]) == [1, 2] and rejected["reason"].str.contains("both as NORM").all()


def test_note_markers_and_missing_coordinates_stay_accepted():
    table, rejected = parse_info("mdb216 D CALC M *NOTE 3*\nmdb233 G CALC M\n", "Info.txt")
    assert rejected.empty and table["x"].isna().all() and len(table) == 2


# ----------------------------------------------------------------------------- hostile Info.txt rows
def test_a_bom_and_an_upper_case_refnum_are_the_rows_they_encode(tmp_path):
    """A byte order mark before the first row and `MDB013` were dropped unseen (the accounting did not count them)."""
    table, rejected = parse_info("\ufeffmdb001 G CIRC B 535 425 197\nMDB013 G NORM\n", "Info.txt")
    assert table["refnum"].tolist() == ["mdb001", "mdb013"] and rejected.empty
    info = tmp_path / "Info.txt"
    info.write_text("mdb001 G CIRC B 535 425 197\nMDB013 G NORM\n", encoding="utf-8-sig")
    images, rois, rejected, counts = index_info(info)
    assert counts == {"inputs": 2, "accepted": 2, "rejected": 0}
    assert images["path"].tolist() == [str(tmp_path / "mdb001.pgm"), str(tmp_path / "mdb013.pgm")]


@pytest.mark.parametrize(
    "line, reason",
    [
        ("mdb001 G XXXX B 535 425 197", "abnormality class 'XXXX' is not one of CALC, CIRC, SPIC, MISC, ARCH, ASYM, NORM"),
        ("mdb001 G norm", "abnormality class 'norm' is not one of"),
        ("mdb001 X CIRC B 535 425 197", "background 'X' is not F, G or D"),
        ("mdb001 G CIRC Q 535 425 197", "severity 'Q' is not B or M"),
    ],
)
def test_unknown_codes_are_rejected_with_their_line(line, reason):
    """An unknown class code (XXXX) was read as a mass."""
    table, rejected = parse_info(f"header\n{line}\nmdb002 G NORM\n", "Info.txt")
    assert table["refnum"].tolist() == ["mdb002"]
    assert rejected["row"].tolist() == [2] and reason in rejected["reason"].iloc[0]


def test_an_exact_duplicate_row_is_rejected_as_a_duplicate(tmp_path):
    """A repeated lesion row became two ROIs of one lesion; irregular spaces do not make it another row."""
    info = tmp_path / "Info.txt"
    info.write_text(
        "mdb001 G CIRC B 535 425 197\nmdb001  G CIRC B 535 425  197\nmdb001 G CIRC B 10 20 5\nmdb002 G NORM\nmdb002 G NORM\n"
    )
    table, rejected = read_info(info)
    assert table["row"].tolist() == [1, 3, 4]
    assert rejected["row"].tolist() == [2, 5] and rejected["reason"].str.startswith("duplicate of line ").all()
    assert rejected["reason"].str.contains("duplicate of line 1: ").iloc[0] and "line 4" in rejected["reason"].iloc[1]
    images, rois, rejected, counts = index_info(info)
    assert rois["row"].tolist() == [1, 3] and counts == {"inputs": 5, "accepted": 3, "rejected": 2}
