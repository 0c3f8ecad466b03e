"""Damaged copies of VALID files, for every reader: random byte flips and truncations end in the project's error
type (naming the file) or in a result of the right form, never in another exception. Each test prints how many
cases ran and how they ended: identical to the original, rejected, or read differently (possible only where the
format has no redundancy to notice the damage, e.g. pixel bytes of a PGM or DICOM).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_properties import HEADER, ICS, OVERLAY, ROW

from mammo.io import FormatError
from mammo.io.cbis import read_case_descriptions
from mammo.io.dicom import read_dicom, write_dicom
from mammo.io.ics import parse_ics
from mammo.io.ljpeg import decode_ljpeg, encode_ljpeg
from mammo.io.mias import parse_info, read_mias_scan, unpack_archive, write_pgm
from mammo.io.overlay import parse_overlay
from mammo.io.scan import read_scan, write_png

CASES = 60


def damaged_copies(data: bytes, seed: int, cases: int = CASES, protect: int = 0):
    """Seeded damage: 1-20 flipped bytes (after the first `protect` bytes), or a cut at a random length."""
    rng = np.random.default_rng(seed)
    for _ in range(cases):
        copy = bytearray(data)
        if rng.random() < 0.7:
            for position in rng.integers(protect, len(copy), size=int(rng.integers(1, 21))):
                copy[position] ^= int(rng.integers(1, 256))
        else:
            del copy[int(rng.integers(0, len(copy))) :]
        yield bytes(copy)


def run_cases(data: bytes, path: Path, read, same, seed: int, protect: int = 0) -> Counter:
    """Write each damaged copy to `path`, read it; count outcomes. Anything but FormatError propagates (a failure)."""
    original = read(path.write_bytes(data) and path)
    outcomes = Counter()
    for copy in damaged_copies(data, seed, protect=protect):
        path.write_bytes(copy)
        try:
            result = read(path)
        except FormatError as err:
            assert str(path) in str(err) or path.name in str(err), err
            outcomes["rejected"] += 1
            continue
        outcomes["identical" if same(result, original) else "read differently"] += 1
    print(f"{path.name}: {CASES} damaged copies: {dict(outcomes)}")
    return outcomes


def test_damaged_ljpeg_streams(tmp_path):
    rows, cols = np.mgrid[0:96, 0:80]
    image = (1500 + 8 * rows + 5 * cols + (rows * cols) % 37).astype(np.uint16)
    outcomes = run_cases(
        encode_ljpeg(image, 12), tmp_path / "A_0001_1.LEFT_CC.LJPEG", lambda p: decode_ljpeg(p, 96, 80), np.array_equal, seed=1
    )
    assert outcomes["read differently"] <= CASES // 3  # 17 measured: Huffman codes resynchronise, small flips stay in sync


def test_damaged_gzipped_ljpeg_streams(tmp_path):
    image = (np.arange(64 * 48).reshape(64, 48) * 7 % 4096).astype(np.uint16)
    outcomes = run_cases(
        gzip.compress(encode_ljpeg(image, 12)),
        tmp_path / "A_0001_1.LEFT_CC.LJPEG.gz",
        lambda p: decode_ljpeg(p, 64, 48),
        np.array_equal,
        seed=2,
    )
    assert outcomes["read differently"] == 0  # gzip's CRC notices every change


def test_damaged_dicom_files(tmp_path):
    write_dicom(
        tmp_path / "valid.dcm", (np.arange(40 * 30).reshape(40, 30) * 50).astype(np.uint16), "P_00001", "1.2", "1.2.3", "1.2.3.4"
    )
    outcomes = run_cases(
        (tmp_path / "valid.dcm").read_bytes(),
        tmp_path / "000000.dcm",
        read_dicom,
        lambda a, b: a.shape == b.shape and np.array_equal(a, b),
        seed=3,
    )
    assert outcomes["rejected"] > 0


def test_damaged_pgm_films(tmp_path):
    write_pgm(tmp_path / "valid.pgm", (np.arange(1024 * 1024) % 251).reshape(1024, 1024).astype(np.uint8))
    outcomes = run_cases((tmp_path / "valid.pgm").read_bytes(), tmp_path / "mdb001.pgm", read_mias_scan, np.array_equal, seed=4)
    assert outcomes["rejected"] > 0


def test_damaged_png_images(tmp_path):
    image = (np.arange(96 * 80).reshape(96, 80) * 7).astype(np.uint16)
    write_png(tmp_path / "valid.png", image)
    outcomes = run_cases((tmp_path / "valid.png").read_bytes(), tmp_path / "image.png", read_scan, np.array_equal, seed=8)
    assert outcomes["read differently"] == 0  # every PNG chunk carries a CRC


@pytest.mark.parametrize(
    "name, text, parse",
    [
        ("Info.txt", "head\nmdb001 G CIRC B 535 425 197\nmdb002 G NORM\nmdb003 D CALC M *NOTE 3*\n", parse_info),
        ("A-0001-1.ics", ICS, parse_ics),
        ("A_0001_1.LEFT_CC.OVERLAY", OVERLAY, parse_overlay),
    ],
)
def test_damaged_text_headers(tmp_path, name, text, parse):
    def read(path):
        try:
            return parse(path.read_bytes().decode("utf-8"), path)
        except UnicodeDecodeError:
            raise FormatError(path, "not UTF-8 text") from None

    run_cases(text.encode(), tmp_path / name, read, lambda a, b: repr(a) == repr(b), seed=5)


def test_damaged_cbis_csvs_are_read_or_rejected_row_by_row(tmp_path):
    text = (HEADER + "\r\n" + "\r\n".join(ROW.replace("P_00001", f"P_{n:05d}") for n in range(1, 9)) + "\r\n").encode()

    def read(path):
        rois, rejected = read_case_descriptions([path])
        return pd.concat([rois["roi_id"], rejected["row"].astype(str)]).tolist()

    run_cases(text, tmp_path / "mass_case_description_train_set.csv", read, lambda a, b: a == b, seed=6, protect=len(HEADER))


def test_damaged_mias_archives(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("all-mias/Info.txt", b"mdb001 G NORM\n"), ("all-mias/mdb001.pgm", b"P5\n2 2\n255\n\0\1\2\3")):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    counter = iter(range(CASES + 1))

    def read(path):
        return (unpack_archive(path, tmp_path / f"out{next(counter)}").parent / "mdb001.pgm").read_bytes()

    outcomes = run_cases(buffer.getvalue(), tmp_path / "all-mias.tar.gz", read, lambda a, b: a == b, seed=7)
    assert outcomes["read differently"] == 0  # gzip's CRC again


def test_damaged_pvrg_ljpeg_streams(shared, tmp_path):
    """A predictor-6 stream of the DDSM encoder (PVRG): decoded by libjpeg-turbo, checked, then rebuilt as PVRG predicts."""
    stream = (shared / "fixtures" / "ljpeg" / "howtek_12bit_k6.LJPEG").read_bytes()
    outcomes = run_cases(stream, tmp_path / "D_4606_1.LEFT_CC.LJPEG", lambda p: decode_ljpeg(p, 320, 224), np.array_equal, seed=9)
    assert outcomes["read differently"] <= CASES // 3  # 10 measured, the same as with imagecodecs' own decoder alone
