"""Read one scan in any supported format: DDSM LJPEG (with its .ics), DICOM, PGM, PNG."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import cv2
import numpy as np

from mammo.intensity import raw_to_uint16, uint8_to_uint16
from mammo.io import FormatError, check_declared_size
from mammo.io.dicom import read_dicom
from mammo.io.ics import read_ics
from mammo.io.ljpeg import decode_ljpeg, parse_header, read_bytes
from mammo.io.mias import read_mias_scan, read_pgm


def ics_for(ljpeg_path: Path) -> Path:
    """The case header beside a DDSM scan: A_0002_1.LEFT_CC.LJPEG -> A-0002-1.ics."""
    return ljpeg_path.with_name(ljpeg_path.name.split(".")[0].replace("_", "-") + ".ics")


def read_scan(path: str | Path, raw: bool = False) -> np.ndarray:
    """A scan in the shared 16-bit intensity space, or its stored values with `raw`.

    An LJPEG without its `.ics` is decoded with the stream's own geometry and
    returned as stored, with a warning: the digitizer, hence the calibration, is unknown.
    A 16-bit PNG is taken to be in the shared space already; an 8-bit one is stretched.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "file not found")
    name = path.name.lower()
    if name.endswith((".ljpeg", ".ljpeg.gz")):
        return _read_ljpeg(path, raw)
    if name.endswith(".pgm"):
        return read_pgm(path) if raw else read_mias_scan(path)
    if name.endswith(".png"):
        return _read_png(path, raw)
    if name.endswith(".dcm") or has_dicom_preamble(path):
        return read_dicom(path)  # CBIS-DDSM stores the 16-bit space already
    raise FormatError(path, "unknown scan format (expected .LJPEG with its .ics, DICOM, PGM or PNG)")


def _read_png(path: Path, raw: bool) -> np.ndarray:
    # decoded from bytes read here: OpenCV's imread crashes on a file name that is not UTF-8
    data = path.read_bytes()
    size = png_size(data)
    if size is None:
        raise FormatError(path, "OpenCV could not decode the PNG (it does not start with a PNG signature and IHDR chunk)")
    check_declared_size(path, *size)  # before OpenCV allocates what the IHDR declares
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FormatError(path, "OpenCV could not decode the PNG")
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise FormatError(path, f"expected an 8- or 16-bit greyscale PNG, got {image.dtype} shape {image.shape}")
    return uint8_to_uint16(image) if image.dtype == np.uint8 and not raw else image


def png_size(head: bytes) -> tuple[int, int] | None:
    """(rows, columns) that a PNG declares in its IHDR chunk, from the file's first 24 bytes (or more); None where
    they do not start as a PNG does."""
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an 8- or 16-bit greyscale PNG, encoded in memory (OpenCV's imwrite crashes on a file name that is
    not UTF-8)."""
    encoded, data = cv2.imencode(".png", image)
    if not encoded:
        raise OSError(f"{path}: OpenCV could not encode the PNG")
    Path(path).write_bytes(data.tobytes())


def has_dicom_preamble(path: str | Path) -> bool:
    """Whether a file starts as a DICOM file does (128 bytes, then DICM), whatever its name."""
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _read_ljpeg(path: Path, raw: bool) -> np.ndarray:
    ics_path = ics_for(path)
    if not ics_path.exists():
        warnings.warn(
            f"{path}: no {ics_path.name}; using the stream's own geometry and its stored values"
            " (the digitizer, hence the optical-density calibration, is unknown)",
            stacklevel=3,
        )
        header = parse_header(read_bytes(path), path)
        return decode_ljpeg(path, header.rows, header.columns)
    case = read_ics(ics_path)
    view = path.name.split(".")[1]
    if view not in case.views:
        raise FormatError(path, f"view {view} is not listed in {ics_path}")
    geometry = case.views[view]
    image = decode_ljpeg(path, geometry.lines, geometry.pixels_per_line)
    return image if raw else raw_to_uint16(image, case.digitizer_family, case.site)
