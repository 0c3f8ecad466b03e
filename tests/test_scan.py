"""One scan in any supported format, and `mammo convert`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mammo.intensity import raw_to_uint16
from mammo.io import FormatError
from mammo.io.ddsm import find_normal_scans
from mammo.io.dicom import read_dicom
from mammo.io.ljpeg import decode_ljpeg
from mammo.io.scan import ics_for, read_scan

MAMMO = Path(sys.executable).with_name("mammo")


def test_ljpeg_with_its_ics_in_the_shared_space_or_raw(demo_root):
    scans, _ = find_normal_scans(demo_root / "ddsm")
    scan = scans.iloc[0]
    path = Path(scan["path"])
    assert ics_for(path) == Path(scan["ics_path"])
    stored = decode_ljpeg(path, scan["lines"], scan["pixels_per_line"])
    assert np.array_equal(read_scan(path, raw=True), stored)
    assert np.array_equal(read_scan(path), raw_to_uint16(stored, scan["digitizer"], scan["site"]))


def test_ljpeg_without_ics_uses_the_stream_header_and_warns(demo_root, tmp_path):
    scans, _ = find_normal_scans(demo_root / "ddsm")
    scan = scans.iloc[0]
    path = tmp_path / Path(scan["path"]).name
    shutil.copy(scan["path"], path)
    stored = decode_ljpeg(scan["path"], scan["lines"], scan["pixels_per_line"])
    for raw in (False, True):
        with pytest.warns(UserWarning, match="own geometry and its stored values"):
            assert np.array_equal(read_scan(path, raw=raw), stored)


def test_png_sixteen_bit_as_is_eight_bit_stretched(tmp_path):
    import cv2

    image16 = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 20
    cv2.imwrite(str(tmp_path / "a.png"), image16)
    assert np.array_equal(read_scan(tmp_path / "a.png"), image16)
    image8 = (image16 >> 8).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "b.png"), image8)
    assert np.array_equal(read_scan(tmp_path / "b.png", raw=True), image8)
    assert read_scan(tmp_path / "b.png").dtype == np.uint16 and read_scan(tmp_path / "b.png").max() > 255
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(FormatError, match="could not decode"):
        read_scan(tmp_path / "c.png")


def test_dicom_and_pgm(demo_root):
    dicom = next((demo_root / "cbis").rglob("000000.dcm"))
    assert np.array_equal(read_scan(dicom), read_dicom(dicom))
    pgm = demo_root / "mias" / "mdb001.pgm"
    assert read_scan(pgm).dtype == np.uint16 and read_scan(pgm, raw=True).dtype == np.uint8


def test_unknown_and_missing_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(FormatError, match="unknown scan format"):
        read_scan(text)
    with pytest.raises(FormatError, match="file not found"):
        read_scan(tmp_path / "missing.dcm")


def test_convert_command_writes_16_bit_png_and_npy(demo_root, tmp_path):
    source = demo_root / "mias" / "mdb002.pgm"
    png, npy = tmp_path / "scan.png", tmp_path / "scan.npy"
    for target in (png, npy):
        result = subprocess.run([str(MAMMO), "convert", str(source), str(target)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    written = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and np.array_equal(written, np.load(npy))


def test_convert_command_fails_clearly_on_unreadable_input(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not a dicom")
    result = subprocess.run([str(MAMMO), "convert", str(bad), str(tmp_path / "x.png")], capture_output=True, text=True)
    assert result.returncode == 1
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("suffix", ["npy", "png"])
def test_convert_to_a_full_disk_keeps_the_earlier_file_and_leaves_no_partial(demo_root, tmp_path, monkeypatch, full_disk, suffix):
    from mammo.cli import convert_scan

    target = tmp_path / f"scan.{suffix}"
    target.write_bytes(b"an earlier conversion")
    full_disk("partial")
    with pytest.raises(OSError, match=f"scan.{suffix}: could not write \\(No space left on device\\)"):
        convert_scan(str(demo_root / "mias" / "mdb002.pgm"), str(target), raw=False)
    monkeypatch.undo()
    assert target.read_bytes() == b"an earlier conversion"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"scan.{suffix}"]
