"""Intensity direction pinned to real films, not to the code's own inverse.

A mammogram is black film (high optical density) where X-rays missed the breast, and clearer film
(low optical density) where tissue absorbed them: in the shared 16-bit space the background is dark
and the breast bright, as in real CBIS-DDSM films. A DDSM scanner's raw grey level grows with the
light through the film, so raw LJPEG values are low in the background too.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mammo import extract
from mammo.demo.collections import DemoSpec, write_ddsm_normals
from mammo.extract import ddsm_normal_tiles
from mammo.heatmap import breast_mask
from mammo.intensity import (
    CALIBRATIONS,
    INVERTED_INTENSITY,
    inverted_intensity,
    od_to_uint16,
    raw_to_uint16,
    to_uint8,
    uint16_to_od,
)
from mammo.io.ddsm import find_normal_scans
from mammo.io.dicom import read_dicom
from mammo.io.mias import read_mias_scan
from mammo.io.scan import read_scan
from mammo.tiles import NormalThresholds, NormalTiling

MAMMO = Path(sys.executable).with_name("mammo")
BITS = {"DBA": 16, "HOWTEK": 12, "LUMISYS": 12}


def direct_exposure_level(image16: np.ndarray, inset: float = 0.07) -> int:
    """The most frequent 8-bit level away from the film's edges: the flat background of direct exposure."""
    height, width = image16.shape
    top, left = int(inset * height), int(inset * width)
    return int(np.bincount(to_uint8(image16[top : height - top, left : width - left]).ravel(), minlength=256).argmax())


def border_and_breast(image16: np.ndarray, step: int = 4) -> tuple[float, float]:
    """(median outside the segmented breast, 95th percentile inside it) of a scan."""
    sampled = image16[::step, ::step]
    breast = breast_mask(to_uint8(sampled))
    return float(np.median(sampled[~breast])), float(np.percentile(sampled[breast], 95))


@pytest.fixture(scope="module")
def real_cbis_path(shared) -> Path:
    paths = sorted((shared / "data" / "cbis-ddsm-real").rglob("*.dcm"))
    if not paths:
        pytest.skip("../shared/data/cbis-ddsm-real holds no DICOM")
    return paths[0]


@pytest.fixture(scope="module")
def real_mias_films(shared, tmp_path_factory) -> list[Path]:
    archive = shared / "data" / "mias-real" / "all-mias-dev.tar.gz"
    if not archive.is_file():
        pytest.skip("../shared/data/mias-real/all-mias-dev.tar.gz not available")
    folder = tmp_path_factory.mktemp("mias-real")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return sorted(folder.rglob("*.pgm"))


@pytest.fixture(scope="module")
def demo_ddsm(tmp_path_factory) -> Path:
    """Demo DDSM normals covering all four digitizer calibrations (DBA and HOWTEK at MGH, HOWTEK at ISMD, LUMISYS)."""
    root = tmp_path_factory.mktemp("ddsm-polarity")
    write_ddsm_normals(root, DemoSpec(seed=1, scale=0.08, ddsm_normal_cases=8))
    return root


# ----------------------------------------------------------------------------- real films
def test_real_cbis_film_has_a_dark_background_and_a_bright_breast(real_cbis_path):
    scan = read_dicom(real_cbis_path)
    border, breast = border_and_breast(scan)
    assert border < 8000, border
    assert breast > 25000, breast
    assert direct_exposure_level(scan) < 32
    assert not inverted_intensity(scan)


def _breast_on_the_left(scan: np.ndarray) -> bool:
    """Whether the breast (the brightest 40% of the middle rows) lies mostly in the image's left half."""
    band = scan[scan.shape[0] // 4 : 3 * scan.shape[0] // 4].astype(np.float64)
    return bool(np.nonzero(band > np.percentile(band, 60))[1].mean() < scan.shape[1] / 2)


def test_real_films_pin_the_one_orientation(real_cbis_path, real_mias_films):
    """The orientation read_dicom normalises to (a left breast's chest wall at the image's left edge, a right
    breast's at its right edge) is that of the real films: CBIS-DDSM's LEFT_CC (its PatientOrientation "CC" says
    nothing, so it is taken as stored), and mini-MIAS's even (left) and odd (right) films, but for a few whose
    labels and artefacts fool this simple measure."""
    from mammo.io.dicom import dicom_geometry

    assert dicom_geometry(real_cbis_path) == (None, False) and _breast_on_the_left(read_dicom(real_cbis_path))
    left = [_breast_on_the_left(read_mias_scan(path)) for path in real_mias_films if int(path.stem[3:]) % 2 == 0]
    right = [not _breast_on_the_left(read_mias_scan(path)) for path in real_mias_films if int(path.stem[3:]) % 2 == 1]
    assert np.mean(left) > 0.9 and np.mean(right) > 0.9, (np.mean(left), np.mean(right))


def test_real_mias_films_have_the_polarity_of_the_real_cbis_film(real_mias_films):
    assert len(real_mias_films) == 216
    for path in real_mias_films:
        scan = read_mias_scan(path)
        assert direct_exposure_level(scan) < 32, path.name
        assert not inverted_intensity(scan), path.name
        assert inverted_intensity(np.iinfo(np.uint16).max - scan), path.name  # and its negative is caught


# ----------------------------------------------------------------------------- calibrations
@pytest.mark.parametrize("digitizer, site", sorted(CALIBRATIONS))
def test_black_film_is_dark_and_the_digitizer_maximum_bright(digitizer, site):
    top = 2 ** BITS[digitizer] - 1
    ends = raw_to_uint16(np.array([0, top]), digitizer, site)
    assert ends.tolist() == [0, 65535]
    every = raw_to_uint16(np.arange(top + 1), digitizer, site).astype(np.int64)
    assert np.all(np.diff(every) >= 0)


def test_clear_film_is_bright_and_black_film_dark():
    assert od_to_uint16(np.array([0.05, 3.0])).tolist() == [65535, 0]
    assert uint16_to_od(np.array([0, 65535])).tolist() == pytest.approx([3.0, 0.05])


# ----------------------------------------------------------------------------- the demo speaks the same physics
def _demo_scans(root: Path) -> list[tuple[str, str, Path]]:
    scans, rejected = find_normal_scans(root)
    assert rejected.empty
    return [(row.digitizer, row.site, Path(row.path)) for row in scans.itertuples()]


def test_demo_covers_every_calibration(demo_ddsm):
    assert {(d, s) for d, s, _ in _demo_scans(demo_ddsm)} == set(CALIBRATIONS)


def test_demo_raw_ljpeg_background_is_darker_than_its_tissue_in_raw_values(demo_ddsm):
    """Geometry, not segmentation, says where the breast is: against the chest wall (left for LEFT views)."""
    for digitizer, site, path in _demo_scans(demo_ddsm):
        raw = read_scan(path, raw=True)
        height, width = raw.shape
        middle = raw[height // 3 : 2 * height // 3]
        chest_wall, far_side = middle[:, : width // 5], middle[:, -width // 10 :]
        if ".RIGHT_" in path.name:
            chest_wall, far_side = middle[:, -width // 5 :], middle[:, : width // 10]
        assert np.median(far_side) < np.median(chest_wall), (digitizer, site, path.name)


def test_calibrated_demo_ddsm_scan_has_the_polarity_of_real_films(demo_ddsm):
    for _, _, path in _demo_scans(demo_ddsm):
        scan = read_scan(path)
        border, breast = border_and_breast(scan, step=1)
        assert border < 8000 and breast > 25000, path.name
        assert direct_exposure_level(scan) < 32, path.name


def test_convert_gives_real_cbis_and_demo_ddsm_the_same_polarity(real_cbis_path, demo_ddsm, tmp_path):
    _, _, ljpeg = _demo_scans(demo_ddsm)[0]
    for source in (real_cbis_path, ljpeg):
        target = tmp_path / f"{Path(source).stem}.npy"
        subprocess.run([str(MAMMO), "convert", str(source), str(target)], check=True, capture_output=True)
        border, breast = border_and_breast(np.load(target), step=1 if source == ljpeg else 4)
        assert border < 8000 < 25000 < breast, source


# ----------------------------------------------------------------------------- the polarity guard
def test_a_negative_ddsm_scan_is_rejected_and_counted(demo_ddsm, monkeypatch):
    """A wrong calibration (or MONOCHROME1 read as MONOCHROME2) must not produce negatives silently."""
    scans, _ = find_normal_scans(demo_ddsm)
    scans = scans.head(4)
    negative = scans.iloc[1]["scan_id"]
    real_reader = extract.read_ddsm_scan

    def reader(scan):
        image = real_reader(scan)
        return np.iinfo(np.uint16).max - image if scan["scan_id"] == negative else image

    monkeypatch.setattr("mammo.extract.read_ddsm_scan", reader)
    thresholds = {d: NormalThresholds(0, 0, 1e9) for d in scans["digitizer"].unique()}
    _, table, rejected = ddsm_normal_tiles(scans, "t", thresholds, NormalTiling(tile=100, stride=100), 0, "t.npy")
    assert rejected["reason"].tolist() == [INVERTED_INTENSITY]
    assert rejected["item"].tolist() == [negative]
    assert set(table["scan_id"]) | set(rejected["item"]) == set(scans["scan_id"])
