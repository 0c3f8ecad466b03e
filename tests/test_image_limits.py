"""Hostile image files: names that are not UTF-8, declared sizes beyond any mammogram, pixel data shorter than the
header declares, PGM values above their maxval, DICOM pixel spacings no scanner has. Each is read correctly or
refused in one line naming the file, before anything is allocated."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from mammo.io import FormatError
from mammo.io.dicom import dicom_geometry, read_dicom, write_dicom
from mammo.io.listed import image_size, listed_scale
from mammo.io.mias import read_mias_scan, read_pgm, write_pgm
from mammo.io.scan import read_scan

MAMMO = Path(sys.executable).with_name("mammo")
FILM = (np.arange(1024 * 1024) % 251).reshape(1024, 1024).astype(np.uint8)


def _non_utf8(folder: Path, name: bytes) -> Path:
    """A path whose file name holds a byte that is not UTF-8 (as Python gives it: surrogate-escaped)."""
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))
    assert not path.name.isascii()
    return path


def _png(width: int, height: int, rows_of_data: int = 1) -> bytes:
    """An 8-bit greyscale PNG declaring width x height pixels, holding only its first rows (a few KB at most)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * (width + 1) * rows_of_data, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- file names that are not UTF-8
def test_convert_reads_a_pgm_named_in_latin1(tmp_path):
    # OpenCV's imread crashed (exit 139) on such a name; the command line now reads it like any other
    path = _non_utf8(tmp_path, b"mdb\xe9.pgm")
    write_pgm(path, FILM)
    result = subprocess.run([str(MAMMO), "convert", os.fsencode(path), str(tmp_path / "o.npy")], capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert os.fsencode(path) in result.stdout  # the name as given
    write_pgm(tmp_path / "mdb001.pgm", FILM)
    assert np.array_equal(np.load(tmp_path / "o.npy"), read_mias_scan(tmp_path / "mdb001.pgm"))


def test_png_named_in_latin1_is_written_and_read(tmp_path):
    from mammo.io.scan import write_png

    image = (np.arange(64 * 48).reshape(64, 48) * 20).astype(np.uint16)
    path = _non_utf8(tmp_path, b"scan\xe9.png")
    write_png(path, image)
    assert cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED).tolist() == image.tolist()
    assert np.array_equal(read_scan(path), image)
    assert image_size(path) == (64, 48)


# ----------------------------------------------------------------------------- PGM: declared size, data present, maxval
def test_pgm_declaring_a_huge_film_is_refused_before_reading(tmp_path):
    path = tmp_path / "mdb001.pgm"
    path.write_bytes(b"P5\n100000 100000\n255\n" + bytes(1024))
    with pytest.raises(FormatError, match="mdb001.pgm: declares 100000x100000 pixels, beyond the largest image read"):
        read_pgm(path)


@pytest.mark.parametrize("maxval, sample_bytes", [(255, 1), (4095, 2)])
def test_pgm_shorter_than_its_header_says_is_truncated(tmp_path, maxval, sample_bytes):
    path = tmp_path / "mdb002.pgm"
    path.write_bytes(f"P5\n1024 1024\n{maxval}\n".encode() + bytes(1000))
    declared = 1024 * 1024 * sample_bytes
    with pytest.raises(FormatError, match=f"mdb002.pgm: truncated: header declares {declared} bytes of pixels, file holds 1000"):
        read_pgm(path)


def _pgm(magic: str, maxval: int, pixels: np.ndarray) -> bytes:
    header = f"{magic}\n# a comment\n{pixels.shape[1]} {pixels.shape[0]}\n{maxval}\n".encode()
    if magic == "P2":
        return header + " ".join(pixels.ravel().astype(str)).encode() + b"\n"
    return header + pixels.astype(">u2" if maxval > 255 else np.uint8).tobytes()


@pytest.mark.parametrize("magic, maxval, value", [("P5", 100, 242), ("P5", 4095, 5000), ("P2", 100, 242), ("P2", 1000, 1001)])
def test_pgm_value_above_maxval_is_refused_with_its_position(tmp_path, magic, maxval, value):
    # such a value wrapped around in the 16-bit space (maxval 100, stored 242: 27523) and the film was read
    pixels = np.minimum(FILM.astype(np.uint16), maxval)
    pixels[700, 5] = pixels[900, 1] = value
    path = tmp_path / "mdb003.pgm"
    path.write_bytes(_pgm(magic, maxval, pixels))
    with pytest.raises(FormatError, match=f"mdb003.pgm: pixel at row 700, column 5 holds {value}, above the header's maxval"):
        read_mias_scan(path)


@pytest.mark.parametrize("magic, maxval", [("P5", 255), ("P5", 100), ("P5", 4095), ("P5", 65535), ("P2", 255), ("P2", 4095)])
def test_pgm_pixels_are_opencvs(tmp_path, magic, maxval):
    # the reader decodes PGMs itself now: the same pixels (and type) as OpenCV's decoder gave
    pixels = (np.arange(1024 * 1024).reshape(1024, 1024) * 7919 % (maxval + 1)).astype(np.uint16)
    data = _pgm(magic, maxval, pixels)
    (tmp_path / "mdb004.pgm").write_bytes(data)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    image = read_pgm(tmp_path / "mdb004.pgm")
    assert image.dtype == expected.dtype and np.array_equal(image, expected)


# ----------------------------------------------------------------------------- PNG and DICOM: declared size
def test_png_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png(30000, 30000))  # OpenCV allocated 900 MB for it before finding the data short
    for read in (read_scan, image_size):
        with pytest.raises(FormatError, match="huge.png: declares 30000x30000 pixels, beyond the largest image read"):
            read(path)


def test_dicom_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "000000.dcm"
    write_dicom(path, np.zeros((4, 4), np.uint16), "P_00001", "1.2", "1.2.3", "1.2.3.4", header={"Rows": 60000, "Columns": 60000})
    for read in (read_dicom, image_size):
        with pytest.raises(FormatError, match="000000.dcm: declares 60000x60000 pixels, beyond the largest image read"):
            read(path)


# ----------------------------------------------------------------------------- DICOM: pixel spacing
@pytest.mark.parametrize("keyword", ["PixelSpacing", "ImagerPixelSpacing"])
@pytest.mark.parametrize("value", [1000.0, float("inf"), float("nan"), 0.0, -0.1])
def test_implausible_pixel_spacing_is_refused(tmp_path, keyword, value):
    path = tmp_path / "image.dcm"
    write_dicom(path, np.zeros((4, 4), np.uint16), "P_00001", "1.2", "1.2.3", "1.2.3.4", header={keyword: [value, value]})
    for read in (dicom_geometry, lambda p: listed_scale(p, None)):
        with pytest.raises(FormatError, match=rf"image.dcm: {keyword} {value:g} mm is outside 0.01\.\.1 mm"):
            read(path)


def test_plausible_pixel_spacing_is_kept(tmp_path):
    path = tmp_path / "image.dcm"
    write_dicom(path, np.zeros((4, 4), np.uint16), "P_00001", "1.2", "1.2.3", "1.2.3.4", header={"PixelSpacing": [0.07, 0.07]})
    assert dicom_geometry(path) == (0.07, False)


def test_dicom_of_several_frames_is_refused_before_decoding(tmp_path):
    path = tmp_path / "000000.dcm"
    write_dicom(path, np.zeros((12, 4), np.uint16), "P_00001", "1.2", "1.2.3", "1.2.3.4", header={"Rows": 4, "NumberOfFrames": 3})
    with pytest.raises(FormatError, match="000000.dcm: expected one greyscale frame, the header declares 3 frames of 1 samples"):
        read_dicom(path)


@pytest.mark.parametrize("pixel_mm", ["1000", "inf", "nan", "0", "-0.07"])
def test_implausible_pixel_mm_column_is_refused(tmp_path, pixel_mm):
    path = tmp_path / "image.png"
    path.write_bytes(_png(8, 8, rows_of_data=8))
    with pytest.raises(FormatError, match=rf"image.png: pixel_mm {float(pixel_mm):g} mm is outside 0.01\.\.1 mm"):
        listed_scale(path, pixel_mm)


@pytest.mark.parametrize("field", ["Rows", "Columns"])
def test_dicom_whose_pixel_data_outgrow_its_declared_size_is_refused(tmp_path, field):
    """Rows 1 on a 40x48 image: pydicom read the extra bytes as 40 frames, and `mammo convert` wrote a 3-D array."""
    path = tmp_path / "r.dcm"
    write_dicom(path, np.full((40, 48), 30000, np.uint16), "P1", "1.2.3", "1.2.4", "1.2.5")
    dataset = pydicom.dcmread(path)
    setattr(dataset, field, 1)
    dataset.save_as(path)
    with pytest.raises(FormatError, match=r"r.dcm: cannot decode pixel data .*the header declares"):
        read_scan(path)
