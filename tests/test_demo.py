"""The demo collections are written exactly as the real downloads lay them out."""

from __future__ import annotations

import csv
import io
import re

import imagecodecs
import numpy as np
import pydicom
import pytest

from mammo.demo.collections import (
    CALC_HEADER,
    MASS_HEADER,
    DemoSpec,
    ddsm_abnormal_case,
    ddsm_ics_paths,
    generate,
    write_ddsm_normals,
)
from mammo.io.cbis import CSV_NAMES, is_mask, read_case_descriptions, resolve
from mammo.io.ddsm import find_normal_scans, read_ddsm_scan
from mammo.io.dicom import read_dicom
from mammo.io.ics import read_ics
from mammo.io.mias import read_info, read_pgm

REAL_MASS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,"
    "mass shape,mass margins,assessment,pathology,subtlety,image file path,cropped image file path,"
    "ROI mask file path"
)
REAL_CALC_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,"
    "calc type,calc distribution,assessment,pathology,subtlety,image file path,"
    "cropped image file path,ROI mask file path"
)
PATH_COLUMNS = ("image file path", "cropped image file path", "ROI mask file path")


def _csv_records(path):
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(), newline="")))


@pytest.fixture(scope="module")
def cbis_records(demo_root):
    root = demo_root / "cbis"
    return {name: _csv_records(root / name) for name in CSV_NAMES}


# ----------------------------------------------------------------------------- CBIS-DDSM
def test_four_csvs_with_the_real_header_spellings(demo_root):
    root = demo_root / "cbis"
    for name in CSV_NAMES:
        data = (root / name).read_bytes()
        header = data.split(b"\n", 1)[0].rstrip(b"\r").decode()
        assert header == (REAL_MASS_HEADER if name.startswith("mass") else REAL_CALC_HEADER), name
    assert ",".join(MASS_HEADER) == REAL_MASS_HEADER and ",".join(CALC_HEADER) == REAL_CALC_HEADER


def test_real_csv_headers_match_the_demo(shared):
    folder = shared / "data" / "cbis-ddsm"
    for name, header in [("mass", REAL_MASS_HEADER), ("calc", REAL_CALC_HEADER)]:
        first = (folder / f"{name}_case_description_train_set.csv").read_bytes().split(b"\n", 1)[0]
        assert first.rstrip(b"\r").decode() == header


def test_line_endings_and_quoted_newlines(demo_root, cbis_records):
    root = demo_root / "cbis"
    newline_paths = 0
    for name in CSV_NAMES:
        data = (root / name).read_bytes()
        if name.startswith("mass"):
            assert data.count(b"\r\n") == data.count(b"\n") - data.count(b'.dcm\n"'), f"{name}: CRLF records"
            assert data.split(b"\n", 1)[0].endswith(b"\r")
        else:
            assert b"\r" not in data
        for record in cbis_records[name]:
            newline_paths += sum(record[c].endswith("\n") for c in PATH_COLUMNS)
            assert sum(record[c].endswith("\n") for c in PATH_COLUMNS) == 1
    assert newline_paths > 0, "some quoted path holds a newline, as in the real tables"


def test_csvs_read_without_rejections(demo_root, demo_counts, cbis_records):
    root = demo_root / "cbis"
    rois, rejected = read_case_descriptions([root / name for name in CSV_NAMES])
    assert len(rejected) == 0
    assert len(rois) == demo_counts["cbis_rois"] == sum(len(r) for r in cbis_records.values())
    assert set(rois["division"]) == {"train", "test"}
    assert rois["patient_id"].nunique() == 3 + 2
    # a patient is in one division only
    assert rois.groupby("patient_id")["division"].nunique().max() == 1
    assert set(rois["class_code"]) <= {1, 2, 3, 4}
    for _, roi in rois.iterrows():
        assert roi["image_file_path"].startswith(f"{roi['scan_id']}/")
        assert re.fullmatch(r"(Mass|Calc)-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)", roi["scan_id"])
        assert ("Test" in roi["scan_id"]) == (roi["division"] == "test")
        roi_folder = roi["cropped_image_file_path"].rsplit("/", 1)[0]
        assert roi["roi_mask_file_path"].rsplit("/", 1)[0] == roi_folder, "crop and mask share one folder"
        assert roi_folder.startswith(f"{roi['scan_id']}_{roi['abnormality_id']}/")


def test_every_referenced_dicom_opens(demo_root, cbis_records):
    root = demo_root / "cbis"
    seen = 0
    for records in cbis_records.values():
        for record in records:
            scan_path = resolve(root, record["image file path"].strip())
            scan = pydicom.dcmread(scan_path)
            assert scan.BitsAllocated == 16 and scan.BitsStored == 16
            assert scan.PhotometricInterpretation == "MONOCHROME2"
            assert scan.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            assert scan.pixel_array.dtype == np.uint16
            shape = scan.pixel_array.shape
            roi_files = [resolve(root, record[c].strip()) for c in ("cropped image file path", "ROI mask file path")]
            crop, mask = (read_dicom(p) for p in roi_files)
            for path in roi_files:
                assert pydicom.dcmread(path).PhotometricInterpretation == "MONOCHROME2"
            # told apart by content: the mask is binary and full-size, the crop is neither
            assert is_mask(mask, shape) and mask.shape == shape
            assert set(np.unique(pydicom.dcmread(roi_files[1]).pixel_array)) == {0, 255}  # stored as CBIS-DDSM's 8-bit masks
            assert set(np.unique(mask)) == {0, 65535}  # read into the shared 16-bit space
            assert not is_mask(crop, shape)
            assert crop.dtype == np.uint16
            # the crop is the mask's bounding box cut from the scan
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            box = scan.pixel_array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            assert np.array_equal(crop, box)
            seen += 1
    assert seen > 0


def test_scan_intensities_use_the_cbis_scale(demo_root, cbis_records):
    root = demo_root / "cbis"
    record = next(r for records in cbis_records.values() for r in records)
    scan = read_dicom(resolve(root, record["image file path"].strip()))
    # background OD 0.12 -> about 1555 on the 16-bit scale; tissue much denser
    assert scan.min() < 3000
    assert np.percentile(scan, 90) > 20000


# ----------------------------------------------------------------------------- DDSM normals
def test_ics_files_where_expected(demo_root):
    root = demo_root / "ddsm"
    expected = ddsm_ics_paths(DemoSpec(ddsm_normal_cases=4))
    abnormal = [f"{folder}/{name}.ics" for folder, name in map(ddsm_abnormal_case, range(4))]
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.ics")) == sorted(expected + abnormal)
    for relative in expected:
        header = read_ics(root / relative)
        assert (root / relative).read_text().startswith("\nics_version 1.0\n")
        assert (root / relative).name == f"{header.name}.ics"
        assert list(header.views) == ["LEFT_CC", "LEFT_MLO", "RIGHT_CC", "RIGHT_MLO"]


def test_each_ljpeg_decodes_to_the_ics_geometry(demo_root):
    root = demo_root / "ddsm"
    count = 0
    for ics in sorted(root.rglob("*.ics")):
        header = read_ics(ics)
        for view, geometry in header.views.items():
            path = ics.parent / f"{header.name.replace('-', '_')}.{view}.LJPEG"
            assert path.exists(), path
            image = imagecodecs.ljpeg_decode(path.read_bytes())
            assert image.shape == (geometry.lines, geometry.pixels_per_line)
            assert image.max() < 2**geometry.bits_per_pixel
            assert image.max() > image.min()
            expected_bits = 16 if header.digitizer_family == "DBA" else 12
            assert geometry.bits_per_pixel == expected_bits
            count += 1
    assert count == 16 + 4 * 4  # normal and abnormal cases


def test_ddsm_index_and_read(demo_root, demo_counts):
    scans, rejected = find_normal_scans(demo_root / "ddsm")
    assert len(rejected) == 4 * 4 and rejected["reason"].str.startswith("an abnormal case").all()  # the abnormal volumes
    assert len(scans) == demo_counts["ddsm_normal_scans"] == 16
    assert scans["patient_id"].nunique() == 4
    assert set(scans["site"]) <= {"MGH", "WFU", "ISMD"}
    for _, scan in scans.iterrows():
        image = read_ddsm_scan(scan)
        assert image.dtype == np.uint16
        assert image.shape == (scan["lines"], scan["pixels_per_line"])
        # film artefacts are near the top of the OD scale, background near the bottom
        assert image.max() > 60000 and image.min() < 5000


# ----------------------------------------------------------------------------- mini-MIAS
def test_pgms_and_info(demo_root, demo_counts):
    root = demo_root / "mias"
    pgms = sorted(root.glob("*.pgm"))
    assert [p.name for p in pgms] == [f"mdb{n:03d}.pgm" for n in range(1, 9)]
    assert demo_counts["mias_images"] == 8
    for path in pgms:
        assert path.read_bytes().startswith(b"P5\n1024 1024\n255\n")
        image = read_pgm(path)
        assert image.shape == (1024, 1024) and image.dtype == np.uint8
    table, rejected = read_info(root / "Info.txt")
    assert len(rejected) == 0
    assert table["refnum"].tolist() == [f"mdb{n:03d}" for n in range(1, 9)]
    assert set(table["abnormality_class"]) <= {"NORM", "CALC", "CIRC", "SPIC", "MISC"}


# ----------------------------------------------------------------------------- determinism
TINY = dict(scale=0.05, cbis_train_patients=1, cbis_test_patients=1, ddsm_normal_cases=2, mias_images=1)


def _generate(folder, seed):
    generate(folder / "cbis", folder / "ddsm", folder / "mias", DemoSpec(seed=seed, **TINY), vindr_root=folder / "vindr")
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    return _generate(base / "a", 11), _generate(base / "b", 11), _generate(base / "c", 12)


def test_same_seed_same_files(tiny_runs):
    first, second, _ = tiny_runs
    assert list(first) == list(second)
    non_dicom = [name for name in first if not name.endswith(".dcm")]
    assert any(n.endswith(".LJPEG") for n in non_dicom) and any(n.endswith(".csv") for n in non_dicom)
    assert any(n.endswith(".pgm") for n in non_dicom) and any(n.endswith(".ics") for n in non_dicom)
    for name in non_dicom:
        assert first[name].read_bytes() == second[name].read_bytes(), name
    for name in first:
        if name.endswith(".dcm"):
            assert np.array_equal(read_dicom(first[name]), read_dicom(second[name])), name


def test_same_seed_byte_identical_dicoms(tiny_runs):
    first, second, _ = tiny_runs
    for name in first:
        if name.endswith(".dcm"):
            assert first[name].read_bytes() == second[name].read_bytes(), name


def test_different_seed_different_files(tiny_runs):
    first, _, other = tiny_runs
    assert (
        first["cbis/mass_case_description_train_set.csv"].read_bytes()
        + first["cbis/calc_case_description_train_set.csv"].read_bytes()
    ) != (
        other["cbis/mass_case_description_train_set.csv"].read_bytes()
        + other["cbis/calc_case_description_train_set.csv"].read_bytes()
    )
    assert first["mias/mdb001.pgm"].read_bytes() != other["mias/mdb001.pgm"].read_bytes()
    ljpegs = [name for name in first if name.endswith(".LJPEG")]
    assert ljpegs == [name for name in other if name.endswith(".LJPEG")]  # same layout
    assert all(first[n].read_bytes() != other[n].read_bytes() for n in ljpegs)


def test_ddsm_workers_do_not_change_the_files(tmp_path):
    spec = DemoSpec(seed=5, scale=0.04, ddsm_normal_cases=2)
    assert write_ddsm_normals(tmp_path / "one", spec, workers=1) == 8
    assert write_ddsm_normals(tmp_path / "two", spec, workers=2) == 8
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()}
    assert one == two and len(one) == 2 * 5


def test_mammo_demo_writes_every_collection_and_its_counts(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    options = ["--scale", "0.05", "--cbis-train-patients", "1", "--cbis-test-patients", "2", "--ddsm-normal-cases", "3"]
    options += ["--ddsm-abnormal-cases", "1", "--mias-images", "2", "--vindr-studies", "1", "--own-patients", "3"]
    mammo = Path(sys.executable).with_name("mammo")
    result = subprocess.run([mammo, "demo", str(tmp_path), *options], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["ddsm_normal_scans"] == 12 and counts["ddsm_abnormal_rois"] == 2 and counts["vindr_images"] == 4
    assert counts["mias_images"] == 2 and counts["cbis_rois"] >= 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cbis-ddsm", "ddsm", "mias", "own", "vindr"]
    assert (tmp_path / "ddsm/cancers/cancer_01/case1001/A-1001-1.ics").exists()
